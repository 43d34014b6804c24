//! Real-kernel tests of the file ops: fsync, fdatasync, fallocate.

mod common;

use common::{bad_fd, temp_file};
use std::os::unix::fs::FileExt;
use uring_ops::ops::{Fallocate, FallocateMode, Fsync};
use uring_ops::Uring;

#[test]
fn fsync_and_fdatasync_succeed() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Fsync);
    let f = temp_file("fsync", b"durable bytes");
    let full = ring.push(Fsync::new(&f.fd)).unwrap();
    let data = ring.push(Fsync::new(&f.fd).datasync()).unwrap();
    let range = ring.push(Fsync::new(&f.fd).range(0, 4)).unwrap();
    ring.wait(full).unwrap().unwrap();
    ring.wait(data).unwrap().unwrap();
    ring.wait(range).unwrap().unwrap();
}

#[test]
fn fsync_of_a_bad_descriptor_is_ebadf() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Fsync);
    let t = ring.push(Fsync::new(bad_fd())).unwrap();
    let err = ring.wait(t).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
}

#[test]
fn fallocate_extends_a_file() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Fallocate);
    let f = temp_file("falloc-extend", b"abc");
    let t = ring.push(Fallocate::new(&f.fd, 0, 1 << 20)).unwrap();
    ring.wait(t).unwrap().unwrap();
    let meta = f.file.metadata().unwrap();
    assert_eq!(meta.len(), 1 << 20);
    // The old bytes are kept, the new ones read as zeros.
    let mut head = [0xffu8; 8];
    f.file.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(&head, b"abc\0\0\0\0\0");

    // KEEP_SIZE allocates past the end without growing the file.
    let t = ring
        .push(Fallocate::new(&f.fd, 1 << 20, 1 << 20).mode(FallocateMode::KEEP_SIZE))
        .unwrap();
    ring.wait(t).unwrap().unwrap();
    assert_eq!(f.file.metadata().unwrap().len(), 1 << 20);
}

#[test]
fn fallocate_punch_hole_zeroes_a_range_and_keeps_the_size() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Fallocate);
    const BLOCK: usize = 4096;
    let f = temp_file("falloc-punch", &[0xab; 3 * BLOCK]);
    let t = ring
        .push(
            Fallocate::new(&f.fd, BLOCK as u64, BLOCK as u64)
                .mode(FallocateMode::PUNCH_HOLE | FallocateMode::KEEP_SIZE),
        )
        .unwrap();
    match ring.wait(t).unwrap() {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            common::skip("the temp directory's file system cannot punch holes");
            return;
        }
        r => r.unwrap(),
    }
    assert_eq!(f.file.metadata().unwrap().len(), 3 * BLOCK as u64);
    let mut back = vec![0u8; 3 * BLOCK];
    f.file.read_exact_at(&mut back, 0).unwrap();
    assert!(back[..BLOCK].iter().all(|&b| b == 0xab));
    assert!(
        back[BLOCK..2 * BLOCK].iter().all(|&b| b == 0),
        "the hole reads as zeros"
    );
    assert!(back[2 * BLOCK..].iter().all(|&b| b == 0xab));
}

#[test]
fn fallocate_with_an_invalid_mode_is_refused_by_the_kernel() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Fallocate);
    let f = temp_file("falloc-bad", b"x");
    // PUNCH_HOLE without KEEP_SIZE is invalid (fallocate(2)).
    let t = ring
        .push(Fallocate::new(&f.fd, 0, 1).mode(FallocateMode::PUNCH_HOLE))
        .unwrap();
    let err = ring.wait(t).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP));
}

#[test]
fn fadvise_and_sync_file_range_act_on_the_file_they_are_given() {
    use uring_ops::ops::{Fadvise, FileAdvice, SyncFileRange};
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Fadvise);
    require_op!(ring, SyncFileRange);
    let f = temp_file("advise", &[7u8; 8192]);
    for advice in [
        FileAdvice::Sequential,
        FileAdvice::WillNeed,
        FileAdvice::DontNeed,
    ] {
        let t = ring.push(Fadvise::new(&f.fd, 0, 8192, advice)).unwrap();
        ring.wait(t).unwrap().unwrap();
    }
    let t = ring.push(SyncFileRange::new(&f.fd, 0, 4096)).unwrap();
    ring.wait(t).unwrap().unwrap();
    // On a pipe, both refuse (no page cache): the kernel ran them on that file.
    let (rx, _tx) = common::pipe();
    let t = ring
        .push(Fadvise::new(&rx, 0, 0, FileAdvice::Random))
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::ESPIPE)
    );
    let t = ring.push(SyncFileRange::new(&rx, 0, 0)).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::ESPIPE)
    );
}

#[test]
fn ftruncate_shrinks_and_grows_a_file() {
    use uring_ops::ops::Ftruncate;
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Ftruncate);
    let f = temp_file("truncate", b"0123456789");
    let t = ring.push(Ftruncate::new(&f.fd, 4)).unwrap();
    ring.wait(t).unwrap().unwrap();
    assert_eq!(std::fs::read(&f.path).unwrap(), b"0123");
    let t = ring.push(Ftruncate::new(&f.fd, 6)).unwrap();
    ring.wait(t).unwrap().unwrap();
    assert_eq!(std::fs::read(&f.path).unwrap(), b"0123\0\0");
    let t = ring.push(Ftruncate::new(&f.fd, u64::MAX)).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EINVAL)
    );
    // A file open read-only cannot be truncated.
    let ro = uring_ops::Fd::new(std::fs::File::open(&f.path).unwrap());
    let t = ring.push(Ftruncate::new(&ro, 0)).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EINVAL)
    );
}

#[test]
fn madvise_dontneed_zeroes_the_pages_the_op_owns() {
    use uring_ops::ops::{Madvise, MemAdvice};
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Madvise);
    let mut pages = uring_ops::Pages::new(3 * 4096).unwrap();
    pages.fill(0xab);
    let t = ring.push(Madvise::new(pages, MemAdvice::WillNeed)).unwrap();
    let (r, pages) = ring.wait(t).unwrap();
    r.unwrap();
    assert!(
        pages.iter().all(|&b| b == 0xab),
        "WillNeed keeps the contents"
    );
    let t = ring.push(Madvise::new(pages, MemAdvice::DontNeed)).unwrap();
    let (r, pages) = ring.wait(t).unwrap();
    r.unwrap();
    assert!(
        pages.iter().all(|&b| b == 0),
        "DontNeed drops the pages: they read as zeros"
    );
}
