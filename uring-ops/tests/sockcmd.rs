//! Real-kernel tests of the socket commands (`IORING_OP_URING_CMD` on sockets, Linux 6.7),
//! each checked against the same query made with a plain system call.

mod common;

use common::run;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use uring_ops::ops::{GetSockOpt, SetSockOpt, SiocInq, SiocOutq};
use uring_ops::{Fd, Uring};

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

fn ioctl_int(fd: RawFd, req: libc::c_ulong) -> i32 {
    let mut v: libc::c_int = -1;
    // SAFETY: SIOCINQ/SIOCOUTQ write one int.
    assert_eq!(unsafe { libc::ioctl(fd, req as _, &mut v) }, 0);
    v
}

fn getsockopt_int(fd: RawFd, level: i32, name: i32) -> i32 {
    let mut v: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for getsockopt to write an int.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    v
}

#[test]
fn siocinq_and_siocoutq_agree_with_ioctl() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, SiocInq);
    require_kernel!(6, 7, "socket commands through IORING_OP_URING_CMD");
    let (mut a, b) = tcp_pair();
    a.write_all(b"12345").unwrap();
    // Wait until the five bytes are queued at the receiver (loopback delivers them at once,
    // but not necessarily before the write returns).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ioctl_int(b.as_raw_fd(), libc::FIONREAD as _) < 5 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let (a, b) = (Fd::new(a), Fd::new(b));
    assert_eq!(run(&mut ring, SiocInq::new(&b)).unwrap(), 5);
    assert_eq!(run(&mut ring, SiocInq::new(&a)).unwrap(), 0);
    let outq = run(&mut ring, SiocOutq::new(&a)).unwrap();
    // SIOCOUTQ is TIOCOUTQ on Linux.
    assert_eq!(outq as i32, ioctl_int(a.as_raw_fd(), libc::TIOCOUTQ as _));
    // A Unix socket's protocol has no such query.
    let (u, _u2) = std::os::unix::net::UnixStream::pair().unwrap();
    let e = run(&mut ring, SiocInq::new(u)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP));
}

#[test]
fn getsockopt_and_setsockopt_agree_with_the_system_calls() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, GetSockOpt<Vec<u8>>);
    require_kernel!(6, 7, "socket commands through IORING_OP_URING_CMD");
    let (a, _b) = tcp_pair();
    let a = Fd::new(a);
    let (n, v) = run(
        &mut ring,
        GetSockOpt::int(&a, libc::SOL_SOCKET, libc::SO_RCVBUF),
    );
    assert_eq!(n.unwrap(), 4);
    let rcvbuf = i32::from_ne_bytes(v[..4].try_into().unwrap());
    assert_eq!(
        rcvbuf,
        getsockopt_int(a.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF)
    );

    assert_eq!(
        getsockopt_int(a.as_raw_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        0
    );
    let (r, _) = run(
        &mut ring,
        SetSockOpt::int(&a, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
    );
    r.unwrap();
    assert_eq!(
        getsockopt_int(a.as_raw_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        1
    );
    // setsockopt takes any level.
    let (r, _) = run(
        &mut ring,
        SetSockOpt::int(&a, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1),
    );
    r.unwrap();
    assert_eq!(
        getsockopt_int(a.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY),
        1
    );
    // getsockopt serves SOL_SOCKET only.
    let (r, _) = run(
        &mut ring,
        GetSockOpt::int(&a, libc::IPPROTO_TCP, libc::TCP_NODELAY),
    );
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EOPNOTSUPP));
    // An unknown option: the kernel's answer, as for the system call.
    let (r, _) = run(&mut ring, SetSockOpt::int(&a, libc::SOL_SOCKET, 9999, 1));
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENOPROTOOPT));
}
