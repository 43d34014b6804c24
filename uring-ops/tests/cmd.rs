//! Real-kernel test of the 16-byte driver command, on a socket.

mod common;

use std::net::UdpSocket;
use uring_ops::core::sys;
use uring_ops::ops::UringCmd;
use uring_ops::Uring;

#[test]
fn a_socket_command_reports_the_bytes_queued() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, UringCmd<()>);
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.send_to(b"12345", rx.local_addr().unwrap()).unwrap();
    // SAFETY: SIOCINQ reads no address from the command bytes (all zero).
    let cmd = unsafe {
        UringCmd::new(
            rx.try_clone().unwrap(),
            sys::SOCKET_URING_OP_SIOCINQ,
            [0; 16],
            (),
        )
    };
    let t = ring.push(cmd).unwrap();
    match ring.wait(t).unwrap().0 {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            common::skip("socket commands through URING_CMD need Linux 6.7");
        }
        r => assert_eq!(r.unwrap(), 5, "one datagram of 5 bytes is queued"),
    }
    // A file whose driver has no commands.
    let f = common::temp_file("cmd", b"");
    // SAFETY: as above.
    let t = ring
        .push(unsafe { UringCmd::new(&f.fd, 0, [0; 16], ()) })
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().0.unwrap_err().raw_os_error(),
        Some(libc::EOPNOTSUPP)
    );
}
