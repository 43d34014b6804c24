//! Real-kernel tests of the socket ops: socket, bind, listen, accept (one-shot, multishot,
//! into registered slots), connect, send, recv, shutdown. Everything on 127.0.0.1, port 0.

mod common;

use common::run;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;
use uring_ops::ops::{Accept, AsyncCancel, Bind, Connect, Listen, Recv, Send, Shutdown, Socket};
use uring_ops::{Error, Fd, NewSlot, Op, SockAddr, Uring};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A connected TCP pair over loopback (std's, for the side the test does not exercise).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(local()).unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

#[test]
fn socket_bind_listen_accept_connect_exchange_bytes() {
    let mut ring = Uring::new(16).unwrap();
    require_op!(ring, Socket);
    require_op!(ring, Bind);
    require_op!(ring, Listen);
    require_op!(ring, Accept);
    require_op!(ring, Connect);
    let sock = |ring: &mut Uring| {
        let t = ring
            .push(Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0))
            .unwrap();
        Fd::new(ring.wait(t).unwrap().unwrap())
    };
    let server = sock(&mut ring);
    run(&mut ring, Bind::new(&server, local())).unwrap();
    run(&mut ring, Listen::new(&server, 8)).unwrap();
    // The kernel picked a port: read it back with std on a duplicate.
    let addr = TcpListener::from(server.as_fd_dup()).local_addr().unwrap();
    assert_eq!(addr.ip(), local().ip());
    assert_ne!(addr.port(), 0);

    let accept = ring.push(Accept::new(&server).peer_addr()).unwrap();
    let client = sock(&mut ring);
    let connect = ring.push(Connect::new(&client, addr)).unwrap();
    ring.wait(connect).unwrap().unwrap();
    let (conn, peer) = ring.wait(accept).unwrap().unwrap();
    let client_addr = TcpStream::from(client.as_fd_dup()).local_addr().unwrap();
    assert_eq!(peer.as_socket_addr(), Some(client_addr));
    // The accepted socket is close-on-exec, like std's.
    // SAFETY: F_GETFD on a descriptor this test owns.
    let fdflags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&conn), libc::F_GETFD) };
    assert_eq!(fdflags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);

    let conn = Fd::new(conn);
    let (n, _) = run(&mut ring, Send::new(&client, b"ping".to_vec()));
    assert_eq!(n.unwrap(), 4);
    let (n, buf) = run(&mut ring, Recv::new(&conn, Vec::with_capacity(16)));
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"ping"[..]));
    // Shut the client's writing half: the server reads the end of the stream.
    run(&mut ring, Shutdown::new(&client, std::net::Shutdown::Write)).unwrap();
    let (n, buf) = run(&mut ring, Recv::new(&conn, Vec::with_capacity(16)));
    assert_eq!((n.unwrap(), buf.len()), (0, 0));
}

/// `Fd` → a duplicate `OwnedFd`, to look at the socket with std.
trait DupFd {
    fn as_fd_dup(&self) -> OwnedFd;
}

impl DupFd for Fd {
    fn as_fd_dup(&self) -> OwnedFd {
        std::os::fd::AsFd::as_fd(self).try_clone_to_owned().unwrap()
    }
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Connect);
    // A port nobody listens on: bind one, note it, close it.
    let port = TcpListener::bind(local()).unwrap().local_addr().unwrap();
    let sock = socket2_tcp();
    let r = run(&mut ring, Connect::new(sock, port));
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ECONNREFUSED));
}

/// A fresh, unconnected TCP socket (with libc, as std has no unconnected TCP socket).
fn socket2_tcp() -> OwnedFd {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "{}", std::io::Error::last_os_error());
    // SAFETY: a new descriptor nothing else owns.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

#[test]
fn multishot_accept_takes_every_connection_until_cancelled() {
    let mut ring = Uring::new(16).unwrap();
    require_op!(ring, Accept);
    require_kernel!(5, 19, "multishot accept");
    let listener = TcpListener::bind(local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let t = ring.push(Accept::new(listener).multishot()).unwrap();
    ring.submit().unwrap();
    let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut conns = Vec::new();
    while conns.len() < 3 {
        let items = ring.wait_items(&t, Duration::from_secs(5)).unwrap();
        assert!(!items.is_empty(), "accepted only {}", conns.len());
        conns.extend(items.into_iter().map(|r| TcpStream::from(r.unwrap())));
    }
    // Each accepted connection is one of the clients: match them by address.
    let mut peers: Vec<_> = conns.iter().map(|c| c.peer_addr().unwrap()).collect();
    let mut locals: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    peers.sort();
    locals.sort();
    assert_eq!(peers, locals);
    run(&mut ring, AsyncCancel::ticket(&t)).unwrap();
    let out = ring.wait(t).unwrap();
    assert!(out.items.is_empty());
    assert_eq!(out.last.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
}

#[test]
fn accept_into_a_registered_slot_and_send_through_it() {
    let mut ring = Uring::new(16).unwrap();
    require_op!(ring, Accept<NewSlot>);
    require_kernel!(5, 19, "sparse file tables and accept into any slot");
    ring.ring().register().register_files_sparse(8).unwrap();
    let listener = Fd::new(TcpListener::bind(local()).unwrap());
    let addr = TcpListener::from(listener.as_fd_dup())
        .local_addr()
        .unwrap();

    let t = ring
        .push(Accept::new(&listener).into_slot(NewSlot::at(5)))
        .unwrap();
    let mut c1 = TcpStream::connect(addr).unwrap();
    let slot = ring.wait(t).unwrap().unwrap();
    assert_eq!(slot.index(), 5);
    let (n, _) = run(&mut ring, Send::new(slot, b"fixed".to_vec()));
    assert_eq!(n.unwrap(), 5);
    let mut got = [0u8; 5];
    c1.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"fixed");

    // Any free slot: the kernel says which.
    let t = ring
        .push(Accept::new(&listener).into_slot(NewSlot::alloc()))
        .unwrap();
    let mut c2 = TcpStream::connect(addr).unwrap();
    let any = ring.wait(t).unwrap().unwrap();
    assert!(any.index() < 8 && any.index() != 5, "{any:?}");
    c2.write_all(b"back").unwrap();
    let (n, buf) = run(&mut ring, Recv::new(any, Vec::with_capacity(8)));
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"back"[..]));

    // A multishot accept cannot aim at one named slot.
    let e = ring
        .push(Accept::new(&listener).into_slot(NewSlot::at(1)).multishot())
        .unwrap_err();
    assert!(
        matches!(e.error, Error::BadArgument { op: "Accept", .. }),
        "{}",
        e.error
    );
    // A slot past the table: the kernel refuses it.
    let t = ring
        .push(Accept::new(&listener).into_slot(NewSlot::at(u32::MAX)))
        .unwrap();
    let _c3 = TcpStream::connect(addr).unwrap();
    let e = ring.wait(t).unwrap().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
}

#[test]
fn socket_into_any_slot() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Socket<NewSlot>);
    ring.ring().register().register_files_sparse(4).unwrap();
    let t = ring
        .push(Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).into_slot(NewSlot::alloc()))
        .unwrap();
    let slot = ring.wait(t).unwrap().unwrap();
    assert!(slot.index() < 4);
    // The slot holds a TCP socket: connecting through it reaches a listener.
    require_op!(ring, Connect);
    let l = TcpListener::bind(local()).unwrap();
    let t = ring
        .push(Connect::new(slot, l.local_addr().unwrap()))
        .unwrap();
    ring.wait(t).unwrap().unwrap();
    let (_conn, _) = l.accept().unwrap();
}

#[test]
fn send_to_an_address_and_receive_datagrams() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Send<Vec<u8>>);
    require_kernel!(6, 0, "IORING_OP_SEND to an address");
    let rx = UdpSocket::bind(local()).unwrap();
    let to = rx.local_addr().unwrap();
    let tx = UdpSocket::bind(local()).unwrap();
    let from = tx.local_addr().unwrap();
    let t = ring
        .push(Send::new(tx, b"datagram".to_vec()).to(to))
        .unwrap();
    assert_eq!(ring.wait(t).unwrap().0.unwrap(), 8);
    let mut buf = [0u8; 16];
    let (n, src) = rx.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], src), (&b"datagram"[..], from));
    // Receiving a datagram longer than the buffer: cut, as recv(2) does.
    let rx = Fd::new(rx);
    UdpSocket::bind(local())
        .unwrap()
        .send_to(b"0123456789", to)
        .unwrap();
    let (n, buf) = run(&mut ring, Recv::new(&rx, Vec::with_capacity(4)));
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"0123"[..]));
}

#[test]
fn send_and_recv_honour_len_and_waitall() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Recv<Vec<u8>>);
    let (a, mut b) = UnixStream::pair().unwrap();
    let a = Fd::new(a);
    let t = ring.push(Send::new(&a, b"abcdef".to_vec()).len(3)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(
        (n.unwrap(), buf.len()),
        (3, 6),
        "the whole buffer comes back"
    );
    let mut got = [0u8; 3];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abc");
    // MSG_WAITALL: the receive waits for all 6 bytes, sent in two writes.
    let t = ring
        .push(Recv::new(&a, Vec::with_capacity(6)).flags(libc::MSG_WAITALL))
        .unwrap();
    ring.submit().unwrap();
    b.write_all(b"123").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    b.write_all(b"456").unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!((n.unwrap(), &buf[..]), (6, &b"123456"[..]));
    // The peer gone: the next send fails (no SIGPIPE: the kernel adds MSG_NOSIGNAL).
    drop(b);
    let (n, _) = run(&mut ring, Send::new(&a, b"x".to_vec()));
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::EPIPE));
}

#[test]
fn a_short_receive_fails_a_link_only_with_waitall() {
    let recv = Recv::new(common::bad_fd(), Vec::with_capacity(8));
    assert!(!recv.fails_link(3), "a short receive is a success");
    assert!(recv.fails_link(-libc::EAGAIN));
    let recv = Recv::new(common::bad_fd(), Vec::with_capacity(8)).flags(libc::MSG_WAITALL);
    assert!(recv.fails_link(3));
    assert!(!recv.fails_link(8));
    let send = Send::new(common::bad_fd(), vec![0u8; 8]).flags(libc::MSG_WAITALL);
    assert!(send.fails_link(7) && !send.fails_link(8));
}

#[test]
fn unix_socket_paths_bind_and_connect() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Bind);
    require_op!(ring, Listen);
    let path = std::env::temp_dir().join(format!("uring-ops-{}-unix", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: a new descriptor nothing else owns.
    let server = Fd::new(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    let addr = SockAddr::unix(&path).unwrap();
    run(&mut ring, Bind::new(&server, addr)).unwrap();
    run(&mut ring, Listen::new(&server, 1)).unwrap();
    let accept = ring.push(Accept::new(&server).peer_addr()).unwrap();
    let mut client = UnixStream::connect(&path).unwrap();
    let (conn, peer) = ring.wait(accept).unwrap().unwrap();
    assert_eq!(peer.family(), libc::AF_UNIX, "{peer:?}");
    client.write_all(b"u").unwrap();
    let mut conn = UnixStream::from(conn);
    let mut b = [0u8; 1];
    conn.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"u");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_pair_of_sockets_exchanges_through_the_ring_both_ways() {
    let mut ring = Uring::new(8).unwrap();
    let (a, b) = tcp_pair();
    let (a, b) = (Fd::new(a), Fd::new(b));
    for (from, to, msg) in [(&a, &b, &b"there"[..]), (&b, &a, &b"back"[..])] {
        let r = ring.push(Recv::new(to, Vec::with_capacity(64))).unwrap();
        let s = ring.push(Send::new(from, msg)).unwrap();
        assert_eq!(ring.wait(s).unwrap().0.unwrap(), msg.len());
        let (n, buf) = ring.wait(r).unwrap();
        assert_eq!((n.unwrap(), &buf[..]), (msg.len(), msg));
    }
}

#[test]
fn a_detached_accept_closes_the_connection_it_made() {
    let mut ring = Uring::new(8).unwrap();
    let listener = TcpListener::bind(local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let t = ring.push(Accept::new(listener)).unwrap();
    ring.submit().unwrap();
    assert!(ring.detach(t));
    let mut client = TcpStream::connect(addr).unwrap();
    while ring.in_flight() > 0 {
        ring.submit_and_wait(1).unwrap();
        ring.reap();
    }
    // Nobody took the connection: the ring closed it, so the client reads the end of stream.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!(client.read(&mut b).unwrap(), 0);
}

/// Whether the server end of `client` is closed: its read sees end-of-file (waiting at most
/// `wait`), driving `ring` meanwhile so that completions are routed to their ops.
fn closed_by_server(client: &mut TcpStream, ring: &mut Uring, wait: Duration) -> bool {
    use std::io::Read as _;
    client
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < wait {
        ring.submit().unwrap();
        ring.reap();
        match client.read(&mut [0u8; 1]) {
            Ok(0) => return true,
            Ok(_) => panic!("the server sent nothing"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("client read: {e}"),
        }
    }
    false
}

/// A detached multishot op's items are nobody's: those made before the detach are dropped at
/// the detach, later ones as they come, so a detached multishot accept does not keep the
/// connections it accepted open until it ends.
#[test]
fn a_detached_multishot_accept_closes_what_it_accepts() {
    let mut ring = Uring::new(16).unwrap();
    require_op!(ring, Accept);
    require_kernel!(5, 19, "multishot accept");
    let listener = TcpListener::bind(local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let t = ring
        .push_tagged(Accept::new(listener).multishot(), 7)
        .unwrap();
    let mut a = TcpStream::connect(addr).unwrap();
    // A's connection is accepted: its record says so, the item stays in the op.
    assert_eq!(ring.wait_completions(Duration::from_secs(5)).unwrap(), 1);
    let c = ring.next_completion().unwrap();
    assert!(c.more() && c.res() >= 0, "{c:?}");
    assert!(!closed_by_server(
        &mut a,
        &mut ring,
        Duration::from_millis(100)
    ));
    ring.detach(t);
    assert!(
        closed_by_server(&mut a, &mut ring, Duration::from_secs(5)),
        "A's item was kept"
    );
    let mut b = TcpStream::connect(addr).unwrap();
    assert!(
        closed_by_server(&mut b, &mut ring, Duration::from_secs(5)),
        "B's item was kept"
    );
    assert!(
        ring.next_completion().is_none(),
        "no record after the detach"
    );
    assert_eq!(ring.cancel_all(Duration::from_secs(5)), 0);
}
