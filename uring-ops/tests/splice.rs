//! Real-kernel tests of splice and tee.

mod common;

use common::{pipe, temp_file};
use std::io::{Read as _, Seek, SeekFrom};
use uring_ops::ops::{Read, Splice, Tee};
use uring_ops::{Chain, Fd, Uring};

#[test]
fn splice_moves_a_file_range_into_a_pipe_and_tee_copies_it() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Splice);
    require_op!(ring, Tee);
    let f = temp_file("splice", b"0123456789abcdef");
    let (rx1, tx1) = pipe();
    let tx1 = Fd::new(tx1);
    let (rx2, tx2) = pipe();
    // File bytes 4..12 into pipe 1, then copied (not consumed) into pipe 2.
    let t = ring
        .push(Chain::new(Splice::new(&f.fd, Some(4), &tx1, None, 8)).then(Tee::new(&rx1, tx2, 8)))
        .unwrap();
    let (moved, copied) = ring.wait(t).unwrap();
    assert_eq!(moved.into_inner().unwrap(), 8);
    assert_eq!(copied.into_inner().unwrap(), 8);
    let t = ring.push(Read::new(&rx1, vec![0; 32], 0)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(&buf[..n.unwrap()], b"456789ab");
    let mut second = [0u8; 8];
    std::fs::File::from(rx2.try_into_owned().unwrap())
        .read_exact(&mut second)
        .unwrap();
    assert_eq!(&second, b"456789ab");
    // Without an offset, the file's position is used, and moved.
    let mut file = &f.file;
    assert_eq!(file.seek(SeekFrom::Start(0)).unwrap(), 0);
    let t = ring.push(Splice::new(&f.fd, None, &tx1, None, 4)).unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), 4);
    assert_eq!(file.stream_position().unwrap(), 4);
    let t = ring.push(Read::new(&rx1, vec![0; 32], 0)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(&buf[..n.unwrap()], b"0123");
}

#[test]
fn splice_between_two_files_is_refused_by_the_kernel() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Splice);
    let a = temp_file("splice-a", b"abc");
    let b = temp_file("splice-b", b"");
    let t = ring
        .push(Splice::new(&a.fd, Some(0), &b.fd, Some(0), 3))
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EINVAL)
    );
}

#[test]
fn splice_through_registered_slots() {
    let mut ring = common::ring_with_slots(8, 2);
    require_op!(ring, Splice);
    let f = temp_file("splice-fixed", b"fixed files");
    let (rx, tx) = pipe();
    let t = ring
        .push(uring_ops::ops::FilesUpdate::new(
            0,
            [Some(&f.fd), Some(&Fd::new(tx))],
        ))
        .unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap().len(), 2);
    let t = ring
        .push(Splice::new(
            uring_ops::Target::fixed(0),
            Some(0),
            uring_ops::Target::fixed(1),
            None,
            5,
        ))
        .unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), 5);
    let t = ring.push(Read::new(&rx, vec![0; 16], 0)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(&buf[..n.unwrap()], b"fixed");
}
