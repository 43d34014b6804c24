//! Real-kernel tests of provided buffers: buffer rings (plain, bundles, incremental), the older
//! provide/remove group, and their lifetimes.

mod common;

use common::run;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use uring_ops::core::{BufRingFlags, BufRingMem};
use uring_ops::ops::{AsyncCancel, ProvideBuffers, RecvBundle, RecvProvided, RemoveBuffers, Send};
use uring_ops::{BufGroup, BufRing, Error, Fd, ProvidedBuf, Uring};

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Byte `i` of the test stream.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// Writes `total` bytes of the pattern in chunks of varying size, from another thread.
fn writer(mut s: TcpStream, total: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let data: Vec<u8> = (0..total).map(pattern).collect();
        let mut off = 0;
        let mut step = 1;
        while off < total {
            let n = step.min(total - off);
            s.write_all(&data[off..off + n]).unwrap();
            off += n;
            step = step * 7 % 9000 + 1;
        }
    })
}

/// Whether the ring can be registered here; skips (and says why) when the kernel refuses.
fn ring_or_skip(ring: &Uring, count: u32, size: u32, inc: bool, what: &str) -> Option<BufRing> {
    let b = BufRing::builder(count, size);
    let b = if inc { b.incremental() } else { b };
    match b.build(ring) {
        Ok(r) => Some(r),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            common::skip(format_args!(
                "{what}: the kernel refuses the buffer ring: {e}"
            ));
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn multishot_recv_with_a_buffer_ring_counts_every_byte() {
    let mut ring = Uring::new(32).unwrap();
    require_op!(ring, RecvProvided);
    let Some(bufs) = ring_or_skip(&ring, 16, 4096, false, "multishot_recv") else {
        return;
    };
    const TOTAL: usize = 1 << 20;
    let (tx, rx) = tcp_pair();
    let rx = Fd::new(rx);
    let w = writer(tx, TOTAL);
    let (mut got, mut rearmed) = (0usize, 0);
    'outer: loop {
        let t = ring
            .push(RecvProvided::new(&rx, &bufs).multishot())
            .unwrap();
        loop {
            let items = ring.wait_items(&t, Duration::from_secs(10)).unwrap();
            let done = ring.is_done(&t);
            assert!(!items.is_empty() || done, "no data for 10 s at byte {got}");
            for b in items {
                let b = b.unwrap();
                assert!(b.len() <= 4096);
                for (i, &x) in b.iter().enumerate() {
                    assert_eq!(x, pattern(got + i), "byte {}", got + i);
                }
                got += b.len();
                // Dropping `b` returns the buffer to the ring.
            }
            if done {
                let out = ring.wait(t).unwrap();
                for b in out.items {
                    let b = b.unwrap();
                    assert!(b.iter().enumerate().all(|(i, &x)| x == pattern(got + i)));
                    got += b.len();
                }
                match out.last {
                    Ok(b) if b.is_empty() => break 'outer, // end of stream
                    Ok(b) => got += b.len(),
                    // The ring ran dry before buffers came back: push it again.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => rearmed += 1,
                    Err(e) => panic!("{e}"),
                }
                continue 'outer;
            }
        }
    }
    w.join().unwrap();
    assert_eq!(got, TOTAL, "re-armed {rearmed} times");
    assert_eq!(bufs.available(), 16, "every buffer is back in the ring");
}

#[test]
fn a_received_buffer_is_sent_back_without_a_copy() {
    let mut ring = Uring::new(8).unwrap();
    let Some(bufs) = ring_or_skip(&ring, 2, 64, false, "send_back") else {
        return;
    };
    let (mut a, b) = UnixStream::pair().unwrap();
    let b = Fd::new(b);
    a.write_all(b"echo me").unwrap();
    let buf: ProvidedBuf = run(&mut ring, RecvProvided::new(&b, &bufs)).unwrap();
    let bid = buf.bid().unwrap();
    assert_eq!(bufs.available(), 1);
    let (n, buf) = run(&mut ring, Send::new(&b, buf));
    assert_eq!(n.unwrap(), 7);
    assert_eq!((buf.bid(), &buf[..]), (Some(bid), &b"echo me"[..]));
    let mut got = [0u8; 7];
    a.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"echo me");
    drop(buf);
    assert_eq!(bufs.available(), 2);
}

#[test]
fn an_empty_ring_answers_enobufs() {
    let mut ring = Uring::new(8).unwrap();
    let Some(bufs) = ring_or_skip(&ring, 1, 16, false, "enobufs") else {
        return;
    };
    let (mut a, b) = UnixStream::pair().unwrap();
    let b = Fd::new(b);
    a.write_all(b"1").unwrap();
    let held = run(&mut ring, RecvProvided::new(&b, &bufs)).unwrap();
    a.write_all(b"2").unwrap();
    let e = run(&mut ring, RecvProvided::new(&b, &bufs)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS));
    drop(held);
    let next = run(&mut ring, RecvProvided::new(&b, &bufs)).unwrap();
    assert_eq!(&next[..], b"2");
}

#[test]
fn bundles_fill_several_buffers_in_one_completion() {
    let mut ring = Uring::new(8).unwrap();
    require_kernel!(6, 10, "bundle receives (IORING_RECVSEND_BUNDLE)");
    let Some(bufs) = ring_or_skip(&ring, 8, 16, false, "bundles") else {
        return;
    };
    // TCP: the kernel sizes a bundle by how much the socket says is queued (msg_inq), and a
    // Unix socket says nothing on Linux 6.12, where its every bundle is one buffer.
    let (mut a, b) = tcp_pair();
    let b = Fd::new(b);
    let data: Vec<u8> = (0..40).map(pattern).collect();
    a.write_all(&data).unwrap();
    // The kernel may split the 40 bytes over several bundles; each fills whole buffers but
    // its last, in order.
    let mut joined = Vec::new();
    let mut most = 0;
    let mut held = Vec::new();
    while joined.len() < data.len() {
        let v = run(&mut ring, RecvBundle::new(&b, &bufs)).unwrap();
        let n = v.len();
        assert!(n > 0);
        assert!(v[..n - 1].iter().all(|b| b.len() == 16));
        most = most.max(n);
        joined.extend(v.iter().flat_map(|b| b.iter().copied()));
        held.extend(v);
    }
    assert_eq!(joined, data);
    assert!(most > 1, "some completion filled several buffers");
    assert_eq!(bufs.available(), 8 - held.len());
    drop(held);
    assert_eq!(bufs.available(), 8);
    // Multishot bundles until the peer closes: every byte, then an empty last completion.
    let t = ring.push(RecvBundle::new(&b, &bufs).multishot()).unwrap();
    a.write_all(&data).unwrap();
    drop(a);
    let out = ring.wait(t).unwrap();
    let joined: Vec<u8> = out
        .items
        .into_iter()
        .flat_map(|r| r.unwrap())
        .flat_map(|b| b.to_vec())
        .collect();
    assert_eq!(joined, data);
    assert!(out.last.unwrap().is_empty());
    // Bundles need a ring, and refuse the flags that hide what they consumed.
    let g = BufGroup::new(1, 8).unwrap();
    let e = ring.push(RecvBundle::new(&b, &g)).unwrap_err();
    assert!(matches!(
        e.error,
        Error::BadArgument {
            op: "RecvBundle",
            ..
        }
    ));
    let e = ring
        .push(RecvBundle::new(&b, &bufs).flags(libc::MSG_WAITALL))
        .unwrap_err();
    assert_eq!(e.error.raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn incremental_consumption_hands_out_pieces_of_one_buffer() {
    let mut ring = Uring::new(8).unwrap();
    require_kernel!(6, 12, "incremental buffer consumption (IOU_PBUF_RING_INC)");
    let Some(bufs) = ring_or_skip(&ring, 2, 64, true, "incremental") else {
        return;
    };
    assert!(bufs.is_incremental());
    let (mut a, b) = UnixStream::pair().unwrap();
    let b = Fd::new(b);
    let mut pieces = Vec::new();
    let mut sent = Vec::new();
    for i in 0..5u8 {
        let msg = vec![i; 10 + usize::from(i)];
        a.write_all(&msg).unwrap();
        sent.extend_from_slice(&msg);
        let p = run(&mut ring, RecvProvided::new(&b, &bufs)).unwrap();
        assert_eq!(&p[..], &msg[..]);
        pieces.push(p);
    }
    // The first 60 bytes went into one buffer, piece after piece.
    let first = pieces[0].bid();
    let offsets: Vec<(Option<u16>, u32)> = pieces.iter().map(|p| (p.bid(), p.offset())).collect();
    assert_eq!(
        offsets,
        [
            (first, 0),
            (first, 10),
            (first, 21),
            (first, 33),
            (first, 46)
        ]
    );
    assert_eq!(
        bufs.available(),
        1,
        "the partly used buffer is not in the ring whole"
    );
    drop(pieces);
    // Not used up: the kernel keeps filling it.
    a.write_all(&[9; 4]).unwrap();
    let p = run(&mut ring, RecvProvided::new(&b, &bufs)).unwrap();
    assert_eq!((p.bid(), p.offset(), p.len()), (first, 60, 4));
    drop(p);
    assert_eq!(
        bufs.available(),
        2,
        "used up and every piece dropped: back whole"
    );
}

#[test]
fn a_buffer_group_provided_received_and_removed() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, ProvideBuffers);
    require_op!(ring, RemoveBuffers);
    let group = BufGroup::new(4, 32).unwrap();
    assert_eq!(group.free(), 4);
    assert_eq!(run(&mut ring, ProvideBuffers::new(&group)).unwrap(), 4);
    assert_eq!((group.free(), group.provided()), (0, 4));
    // Nothing free: refused before the kernel.
    let e = ring.push(ProvideBuffers::new(&group)).unwrap_err();
    assert!(matches!(e.error, Error::BadArgument { .. }), "{}", e.error);
    let (mut a, b) = UnixStream::pair().unwrap();
    let b = Fd::new(b);
    a.write_all(b"legacy").unwrap();
    let buf = run(&mut ring, RecvProvided::new(&b, &group)).unwrap();
    assert_eq!(&buf[..], b"legacy");
    assert_eq!(group.provided(), 3);
    drop(buf);
    assert_eq!(group.free(), 1, "free again, to provide with the next op");
    // An op dropped before it is pushed gives its buffers back.
    let op = ProvideBuffers::new(&group);
    assert_eq!(group.free(), 0);
    drop(op);
    assert_eq!(group.free(), 1);
    // Remove two of the three the kernel holds: the kernel does not say which, so they stay
    // counted as its own; then nothing is left to receive into.
    assert_eq!(run(&mut ring, RemoveBuffers::new(&group, 2)).unwrap(), 2);
    assert_eq!((group.free(), group.provided()), (1, 3));
    a.write_all(b"x").unwrap();
    let r = run(&mut ring, RecvProvided::new(&b, &group)).unwrap();
    assert_eq!(&r[..], b"x", "the one left");
    let e = run(&mut ring, RecvProvided::new(&b, &group)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS));
}

#[test]
fn the_ring_outlives_its_handle_while_an_op_uses_it_and_unregisters_after() {
    let mut ring = Uring::new(8).unwrap();
    let Some(bufs) = ring_or_skip(&ring, 4, 64, false, "lifetime") else {
        return;
    };
    let bgid = bufs.bgid();
    let (mut a, b) = UnixStream::pair().unwrap();
    let t = ring.push(RecvProvided::new(b, bufs).multishot()).unwrap();
    ring.submit().unwrap();
    // The only handle is now the op's.
    a.write_all(b"still here").unwrap();
    let items = ring.wait_items(&t, Duration::from_secs(5)).unwrap();
    assert_eq!(&items[0].as_ref().unwrap()[..], b"still here");
    drop(items);
    // While the op lives, the group is registered: the id is taken on this io_uring.
    assert!(register_raw(&ring, bgid).is_err());
    run(&mut ring, AsyncCancel::ticket(&t)).unwrap();
    let out = ring.wait(t).unwrap();
    assert_eq!(
        out.last.as_ref().unwrap_err().raw_os_error(),
        Some(libc::ECANCELED)
    );
    drop(out);
    // The op, its items and the last handle are gone: the ring was unregistered.
    register_raw(&ring, bgid).unwrap();
    ring.ring().register().unregister_pbuf_ring(bgid).unwrap();
}

/// Registers an empty ring by hand under `bgid`: fails with `EEXIST` while a group holds it.
fn register_raw(ring: &Uring, bgid: u16) -> uring_ops::core::Result<()> {
    let mem = Box::leak(Box::new(BufRingMem::new(1).unwrap()));
    // SAFETY: the memory is leaked (never freed), and no entry is ever published, so the
    // kernel never picks a buffer from it.
    unsafe {
        ring.ring()
            .register()
            .register_pbuf_ring(mem, bgid, BufRingFlags::empty())
    }
}

#[test]
fn dropping_the_uring_first_leaves_the_ring_to_unregister_later() {
    let ring = Uring::new(8).unwrap();
    let Some(bufs) = ring_or_skip(&ring, 2, 16, false, "drop order") else {
        return;
    };
    drop(ring);
    // The pool's own duplicate of the io_uring fd keeps the registration reachable.
    assert_eq!(bufs.available(), 2);
    drop(bufs);
}

#[test]
fn bad_shapes_are_refused() {
    let ring = Uring::new(8).unwrap();
    for (count, size) in [(0, 16), (40000, 16), (4, 0)] {
        let e = BufRing::register(&ring, count, size).unwrap_err();
        assert!(matches!(e, Error::ProvidedBufShape { .. }), "{e}");
        assert!(BufGroup::new(count, size).is_err());
    }
}

#[test]
fn multishot_recv_rejects_waitall() {
    let mut ring = Uring::new(8).unwrap();
    let Some(bufs) = ring_or_skip(&ring, 2, 16, false, "waitall") else {
        return;
    };
    let (_a, b) = UnixStream::pair().unwrap();
    let e = ring
        .push(
            RecvProvided::new(b, &bufs)
                .flags(libc::MSG_WAITALL)
                .multishot(),
        )
        .unwrap_err();
    assert!(matches!(e.error, Error::BadArgument { .. }), "{}", e.error);
}

#[test]
fn an_op_pushed_to_another_ring_finds_no_buffers_of_its_pool() {
    let ring_a = Uring::new(8).unwrap();
    let mut ring_b = Uring::new(8).unwrap();
    let Some(bufs) = ring_or_skip(&ring_a, 2, 16, false, "other ring") else {
        return;
    };
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"x").unwrap();
    // The group id is unique in the process: ring B has no group under it.
    let e = run(&mut ring_b, RecvProvided::new(b, &bufs)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS));
    assert_eq!(bufs.available(), 2);
}

#[test]
fn a_detached_receive_gives_its_buffer_back() {
    let mut ring = Uring::new(8).unwrap();
    let Some(bufs) = ring_or_skip(&ring, 2, 16, false, "detach") else {
        return;
    };
    let (mut a, b) = UnixStream::pair().unwrap();
    let t = ring.push(RecvProvided::new(b, &bufs)).unwrap();
    ring.submit().unwrap();
    assert!(ring.detach(t));
    a.write_all(b"unwanted").unwrap();
    // The completion arrives with nobody to redeem it: the buffer it names goes back.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ring.in_flight() > 0 {
        assert!(std::time::Instant::now() < deadline);
        ring.submit_and_wait(1).unwrap();
        ring.reap();
    }
    assert_eq!(bufs.available(), 2);
}
