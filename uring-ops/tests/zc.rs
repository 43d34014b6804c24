//! Real-kernel tests of zero-copy sends: both completions, the buffer back only after the
//! notification, registered buffers, through a `Context` too.

mod common;

use common::run;
use std::io::Read as _;
use std::net::{TcpListener, TcpStream, UdpSocket};
use uring_ops::ops::{SendMsgZc, SendZc, SendZcOp};
use uring_ops::{Context, FixedBufs, Uring};

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

#[test]
fn send_zc_reports_its_result_then_its_notification() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, SendZcOp<Vec<u8>>);
    let (tx, mut rx) = tcp_pair();
    let data: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
    let sent = run(&mut ring, SendZc::new(tx, data.clone()));
    assert_eq!(sent.result.unwrap(), data.len());
    let n = sent
        .notification
        .expect("a send that used the buffer is notified");
    assert_eq!(n.copied(), None, "usage not asked for");
    assert_eq!(sent.buf, data, "the buffer comes back, untouched");
    let mut got = vec![0u8; data.len()];
    rx.read_exact(&mut got).unwrap();
    assert_eq!(got, data);
}

#[test]
fn send_zc_reports_whether_loopback_copied() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, SendZcOp<Vec<u8>>);
    require_kernel!(6, 2, "IORING_SEND_ZC_REPORT_USAGE");
    let (tx, mut rx) = tcp_pair();
    let sent = run(&mut ring, SendZc::new(tx, vec![1u8; 4096]).report_usage());
    assert_eq!(sent.result.unwrap(), 4096);
    // Loopback delivers the pages to a local receiver, which the kernel does by copying them.
    assert_eq!(sent.notification.unwrap().copied(), Some(true));
    let mut got = vec![0u8; 4096];
    rx.read_exact(&mut got).unwrap();
}

#[test]
fn a_failed_send_zc_gives_the_buffer_back() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, SendZcOp<Vec<u8>>);
    let (tx, rx) = tcp_pair();
    drop(rx);
    // The peer is gone: sends fail (first with ECONNRESET or EPIPE) and the buffer returns.
    let mut errs = Vec::new();
    for _ in 0..4 {
        let sent = run(
            &mut ring,
            SendZc::new(tx.try_clone().unwrap(), vec![5u8; 1000]),
        );
        assert_eq!(sent.buf, [5u8; 1000]);
        if let Err(e) = sent.result {
            errs.push(e.raw_os_error().unwrap());
        }
    }
    assert!(!errs.is_empty());
    assert!(
        errs.iter()
            .all(|&e| e == libc::EPIPE || e == libc::ECONNRESET),
        "{errs:?}"
    );
}

#[test]
fn send_zc_from_a_registered_buffer() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, SendZcOp<Vec<u8>>);
    let pool = FixedBufs::register(&ring, 1, 4096).unwrap();
    let mut buf = pool.get().unwrap();
    buf.extend_from_slice(b"registered");
    let (tx, mut rx) = tcp_pair();
    let sent = run(&mut ring, SendZc::new(tx, buf));
    assert_eq!(*sent.result.as_ref().unwrap(), 10);
    assert!(sent.notification.is_some());
    assert_eq!(
        pool.available(),
        0,
        "the buffer is still out: the ticket gave it back"
    );
    drop(sent);
    assert_eq!(pool.available(), 1);
    let mut got = [0u8; 10];
    rx.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"registered");
}

#[test]
fn sendmsg_zc_to_an_address() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, uring_ops::ops::SendMsgZcOp<Vec<u8>>);
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let from = tx.local_addr().unwrap();
    let sent = run(
        &mut ring,
        SendMsgZc::new(tx, vec![b"zero".to_vec(), b"copy".to_vec()]).to(rx.local_addr().unwrap()),
    );
    assert_eq!(sent.result.unwrap(), 8);
    assert_eq!(sent.buf.len(), 2);
    let mut b = [0u8; 16];
    let (n, src) = rx.recv_from(&mut b).unwrap();
    assert_eq!((&b[..n], src), (&b"zerocopy"[..], from));
}

#[test]
fn send_zc_through_a_context() {
    let ctx = Context::new(8).unwrap();
    if !ctx.supports(uring_ops::core::sys::IORING_OP_SEND_ZC as u8) {
        common::skip("send_zc_through_a_context: no IORING_OP_SEND_ZC");
        return;
    }
    let (tx, mut rx) = tcp_pair();
    let t = ctx.push(SendZc::new(tx, b"ctx".to_vec())).unwrap();
    let sent = ctx.wait(t).unwrap();
    assert_eq!(sent.result.unwrap(), 3);
    assert!(sent.notification.is_some());
    let mut got = [0u8; 3];
    rx.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ctx");
}
