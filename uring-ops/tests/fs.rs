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
