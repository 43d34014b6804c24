//! Real-kernel tests of reads into provided buffers: one-shot and multishot, from a buffer
//! group and a buffer ring.

mod common;

use common::{pipe, run};
use std::io::Write as _;
use uring_ops::ops::{ProvideBuffers, ReadMulti};
use uring_ops::{BufGroup, BufRing, Uring};

#[test]
fn a_read_takes_a_provided_buffer() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, ProvideBuffers);
    let group = BufGroup::new(4, 16).unwrap();
    assert_eq!(run(&mut ring, ProvideBuffers::new(&group)).unwrap(), 4);
    let (rx, tx) = pipe();
    std::fs::File::from(tx).write_all(b"hello").unwrap();
    let buf = run(&mut ring, ReadMulti::new(&rx, &group)).unwrap();
    assert_eq!(&buf[..], b"hello");
    assert!(buf.bid().is_some(), "the kernel names the buffer it filled");
    assert_eq!(group.provided(), 3);
    // A group with no buffers provided to this ring.
    let empty = BufGroup::new(1, 16).unwrap();
    let e = run(&mut ring, ReadMulti::new(&rx, &empty)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS));
}

#[test]
fn a_multishot_read_fills_one_buffer_per_write() {
    let mut ring = Uring::new(8).unwrap();
    if !ring.supports(ReadMulti::MULTISHOT_OPCODE) {
        common::skip("the running kernel lacks IORING_OP_READ_MULTISHOT (ReadMulti::multishot)");
        return;
    }
    let bufs = BufRing::register(&ring, 4, 16).unwrap();
    let (rx, tx) = pipe();
    let mut tx = std::fs::File::from(tx);
    let t = ring.push(ReadMulti::new(&rx, &bufs).multishot()).unwrap();
    ring.submit().unwrap();
    let mut got = Vec::new();
    for word in [&b"one"[..], b"two", b"three"] {
        tx.write_all(word).unwrap();
        let items = ring
            .wait_items(&t, std::time::Duration::from_secs(5))
            .unwrap();
        for item in items {
            got.push(item.unwrap().to_vec()); // the buffer goes back to the ring here
        }
    }
    assert_eq!(got.concat(), b"onetwothree");
    assert_eq!(bufs.available(), 4);
    // The write end closes: the read ends (end of file) and the op finishes.
    drop(tx);
    let out = ring.wait(t).unwrap();
    assert!(out
        .items
        .iter()
        .all(|i| i.as_ref().is_ok_and(|b| b.is_empty())));
    match out.last {
        Ok(b) => assert!(b.is_empty(), "the end of the pipe"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "{e}"),
    }
}
