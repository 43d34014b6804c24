//! Real-kernel tests of reads into provided buffers: one-shot and multishot.

mod common;

use common::pipe;
use std::io::Write as _;
use uring_ops::core::{sys, Sqe};
use uring_ops::ops::{ProvidedRead, ReadMulti};
use uring_ops::{RawSqe, Uring};

/// Provides `count` buffers of `size` bytes from `mem` to group `group` (`PROVIDE_BUFFERS`,
/// through a raw SQE: the typed provided-buffer API lives with the network ops).
fn provide(ring: &mut Uring, mem: &mut [u8], size: usize, count: usize, group: u16) {
    assert!(mem.len() >= size * count);
    let mut sqe = Sqe::zeroed();
    sqe.set_opcode(sys::IORING_OP_PROVIDE_BUFFERS as u8)
        .set_fd(count as i32)
        .set_addr(mem.as_mut_ptr() as u64)
        .set_len(size as u32)
        .set_off(0)
        .set_buf_group(group);
    // SAFETY: `mem` outlives the ring in every test here (it is dropped after the ring), so
    // the kernel never writes into freed memory.
    let t = ring.push(unsafe { RawSqe::new(sqe) }).unwrap();
    ring.wait(t).unwrap().result().unwrap();
}

#[test]
fn a_read_takes_a_provided_buffer() {
    let mut mem = vec![0u8; 4 * 16];
    let mut ring = Uring::new(8).unwrap();
    provide(&mut ring, &mut mem, 16, 4, 7);
    let (rx, tx) = pipe();
    std::fs::File::from(tx).write_all(b"hello").unwrap();
    let t = ring.push(ReadMulti::new(&rx, 7)).unwrap();
    let ProvidedRead { len, buf_id } = ring.wait(t).unwrap().unwrap();
    let id = usize::from(buf_id.expect("the kernel names the buffer it filled"));
    assert_eq!(&mem[id * 16..id * 16 + len], b"hello");
    // A group with no buffers.
    let t = ring.push(ReadMulti::new(&rx, 8)).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::ENOBUFS)
    );
    drop(ring);
    drop(mem);
}

#[test]
fn a_multishot_read_fills_one_buffer_per_write() {
    let mut mem = vec![0u8; 4 * 16];
    let mut ring = Uring::new(8).unwrap();
    if !ring.supports(ReadMulti::MULTISHOT_OPCODE) {
        common::skip("the running kernel lacks IORING_OP_READ_MULTISHOT (ReadMulti::multishot)");
        return;
    }
    provide(&mut ring, &mut mem, 16, 4, 3);
    let (rx, tx) = pipe();
    let mut tx = std::fs::File::from(tx);
    let t = ring.push(ReadMulti::new(&rx, 3).multishot()).unwrap();
    ring.submit().unwrap();
    let mut got = Vec::new();
    for word in [&b"one"[..], b"two", b"three"] {
        tx.write_all(word).unwrap();
        let items = ring
            .wait_items(&t, std::time::Duration::from_secs(5))
            .unwrap();
        for item in items {
            let r = item.unwrap();
            let id = usize::from(r.buf_id.unwrap());
            got.push(mem[id * 16..id * 16 + r.len].to_vec());
        }
    }
    assert_eq!(got.concat(), b"onetwothree");
    // The write end closes: the read ends (end of file) and the op finishes.
    drop(tx);
    let out = ring.wait(t).unwrap();
    assert!(out
        .items
        .iter()
        .all(|i| i.as_ref().is_ok_and(|r| r.len == 0)));
    match out.last {
        Ok(r) => assert_eq!(r.len, 0, "the end of the pipe"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "{e}"),
    }
    drop(ring);
    drop(mem);
}
