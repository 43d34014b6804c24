//! Real-kernel tests of message sends and receives: addresses, ancillary data, truncation,
//! multishot receives into provided buffers.

mod common;

use common::run;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use uring_ops::ops::{AsyncCancel, RecvMsg, RecvMsgMulti, SendMsg};
use uring_ops::{BufRing, Error, Fd, Uring};

fn udp() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

#[test]
fn sendmsg_and_recvmsg_scatter_gather_with_addresses() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, SendMsg<Vec<u8>>);
    require_op!(ring, RecvMsg<Vec<u8>>);
    let (tx, from) = udp();
    let (rx, to) = udp();
    let rx = Fd::new(rx);
    let (n, bufs) = run(
        &mut ring,
        SendMsg::new(tx, vec![b"ab".to_vec(), b"cde".to_vec()]).to(to),
    );
    assert_eq!(n.unwrap(), 5);
    assert_eq!(bufs, [b"ab".to_vec(), b"cde".to_vec()]);
    let got = run(
        &mut ring,
        RecvMsg::new(&rx, vec![Vec::with_capacity(3), Vec::with_capacity(8)]).source(),
    );
    assert_eq!(got.result.unwrap(), 5);
    assert_eq!(got.bufs, [b"abc".to_vec(), b"de".to_vec()]);
    assert_eq!(got.source.unwrap().as_socket_addr(), Some(from));
    assert_eq!(got.flags & libc::MSG_TRUNC, 0);
    assert!(got.control.is_empty());

    // A datagram longer than the buffers: cut, and flagged.
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(&[7; 100], to)
        .unwrap();
    let got = run(&mut ring, RecvMsg::new(&rx, vec![Vec::with_capacity(10)]));
    assert_eq!(got.result.unwrap(), 10);
    assert_eq!(got.bufs[0], [7; 10]);
    assert_eq!(got.flags & libc::MSG_TRUNC, libc::MSG_TRUNC);
    assert!(got.source.is_none(), "not asked for");
}

/// `SCM_RIGHTS` control bytes passing `fd`.
fn scm_rights(fd: RawFd) -> Vec<u8> {
    // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic.
    let (space, len) = unsafe { (libc::CMSG_SPACE(4) as usize, libc::CMSG_LEN(4) as usize) };
    // SAFETY: as above.
    let data_off = unsafe { libc::CMSG_LEN(0) } as usize;
    let mut c = vec![0u8; space];
    // SAFETY: `c` has room for a cmsghdr (space >= its size); written unaligned.
    unsafe {
        c.as_mut_ptr()
            .cast::<libc::cmsghdr>()
            .write_unaligned(libc::cmsghdr {
                cmsg_len: len as _,
                cmsg_level: libc::SOL_SOCKET,
                cmsg_type: libc::SCM_RIGHTS,
            })
    };
    c[data_off..data_off + 4].copy_from_slice(&fd.to_ne_bytes());
    c
}

/// The descriptor an `SCM_RIGHTS` control message carries.
fn received_fd(c: &[u8]) -> OwnedFd {
    // SAFETY: `c` holds at least a cmsghdr (checked by the caller's length assertion).
    let h = unsafe { c.as_ptr().cast::<libc::cmsghdr>().read_unaligned() };
    assert_eq!(
        (h.cmsg_level, h.cmsg_type),
        (libc::SOL_SOCKET, libc::SCM_RIGHTS)
    );
    // SAFETY: arithmetic.
    let off = unsafe { libc::CMSG_LEN(0) } as usize;
    let fd = i32::from_ne_bytes(c[off..off + 4].try_into().unwrap());
    // SAFETY: the kernel installed this descriptor for us on receipt; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[test]
fn ancillary_data_passes_a_descriptor() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, SendMsg<Vec<u8>>);
    let (a, b) = UnixDatagram::pair().unwrap();
    let file = common::temp_file("scm", b"passed");
    let (n, _) = run(
        &mut ring,
        SendMsg::new(a, vec![b"fd".to_vec()]).control(scm_rights(file.file.as_raw_fd())),
    );
    assert_eq!(n.unwrap(), 2);
    let got = run(
        &mut ring,
        RecvMsg::new(b, vec![Vec::with_capacity(8)]).control(64),
    );
    assert_eq!(got.result.unwrap(), 2);
    assert!(got.control.len() >= std::mem::size_of::<libc::cmsghdr>() + 4);
    let passed = std::fs::File::from(received_fd(&got.control));
    let (m1, m2) = (passed.metadata().unwrap(), file.file.metadata().unwrap());
    assert_eq!((m1.dev(), m1.ino()), (m2.dev(), m2.ino()), "the same file");
    // No room for the control data: cut, and flagged.
    let (a, b) = UnixDatagram::pair().unwrap();
    let (n, _) = run(
        &mut ring,
        SendMsg::new(a, vec![b"x".to_vec()]).control(scm_rights(file.file.as_raw_fd())),
    );
    n.unwrap();
    let got = run(&mut ring, RecvMsg::new(b, vec![Vec::with_capacity(8)]));
    assert_eq!(got.flags & libc::MSG_CTRUNC, libc::MSG_CTRUNC);
}

#[test]
fn multishot_recvmsg_into_a_buffer_ring_reports_each_datagram_and_sender() {
    let mut ring = Uring::new(16).unwrap();
    require_op!(ring, RecvMsgMulti);
    require_kernel!(6, 0, "multishot recvmsg");
    let bufs = BufRing::register(&ring, 8, 256).unwrap();
    let (rx, to) = udp();
    let (tx, from) = udp();
    // MSG_TRUNC: the header reports a datagram's full length even when it was cut.
    let t = ring
        .push(
            RecvMsgMulti::new(rx, &bufs)
                .source()
                .flags(libc::MSG_TRUNC)
                .multishot(),
        )
        .unwrap();
    ring.submit().unwrap();
    let sent: Vec<Vec<u8>> = (1..=3u8).map(|i| vec![i; usize::from(i) * 10]).collect();
    for m in &sent {
        tx.send_to(m, to).unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let items = ring.wait_items(&t, Duration::from_secs(5)).unwrap();
        assert!(!items.is_empty(), "got {} of 3", got.len());
        got.extend(items.into_iter().map(Result::unwrap));
    }
    for (m, out) in sent.iter().zip(&got) {
        assert_eq!(out.payload(), &m[..]);
        assert_eq!(out.payload_len(), m.len());
        assert_eq!(out.source().unwrap().as_socket_addr(), Some(from));
        assert!(out.control().is_empty());
        assert_eq!(out.flags() & libc::MSG_TRUNC, 0);
    }
    // A datagram bigger than what a buffer holds after the header and address: cut.
    tx.send_to(&[9; 300], to).unwrap();
    let big = ring.wait_items(&t, Duration::from_secs(5)).unwrap();
    let big = big.into_iter().next().unwrap().unwrap();
    assert_eq!(big.payload_len(), 300);
    assert!(big.payload().len() < 300 && big.payload().iter().all(|&b| b == 9));
    assert_eq!(big.flags() & libc::MSG_TRUNC, libc::MSG_TRUNC);
    drop(got);
    drop(big);
    run(&mut ring, AsyncCancel::ticket(&t)).unwrap();
    let out = ring.wait(t).unwrap();
    assert_eq!(out.last.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(bufs.available(), 8);
}

#[test]
fn recvmsg_multi_is_pushed_in_its_multishot_form_only() {
    let mut ring = Uring::new(8).unwrap();
    let bufs = BufRing::register(&ring, 2, 64).unwrap();
    let (rx, _) = udp();
    let e = ring.push(RecvMsgMulti::new(rx, &bufs)).unwrap_err();
    assert!(
        matches!(
            e.error,
            Error::BadArgument {
                op: "RecvMsgMulti",
                ..
            }
        ),
        "{}",
        e.error
    );
    let rx = e.op;
    let e = ring
        .push(uring_ops::Multishot::new(rx.flags(libc::MSG_WAITALL)))
        .unwrap_err();
    assert_eq!(e.error.raw_os_error(), Some(libc::EINVAL));
}
