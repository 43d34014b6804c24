//! Sockets: `SOCKET`, `BIND`, `LISTEN`, `ACCEPT` (one-shot and multishot, into a registered
//! slot or not), `CONNECT`, `SHUTDOWN`.

use super::define::op;
use crate::addr::{PeerAddr, SockAddr};
use crate::fd::{Dest, IntoTarget, NewFd, NewSlot};
use crate::multishot::{Multishot, MultishotOp};
use crate::op::{res_to_io, Op};
use std::fmt;
use std::io;
use uring_core::{sys, Sqe};

/// `flags` without `cloexec` when the descriptor goes into a registered slot (which has no
/// close-on-exec flag: the kernel refuses it there), with it otherwise.
fn cloexec(file_index: u32, flags: i32, cloexec: i32) -> i32 {
    if file_index == 0 {
        flags | cloexec
    } else {
        flags & !cloexec
    }
}

op! {
    /// Creates a socket (`IORING_OP_SOCKET`, Linux 5.19), like `socket(2)`.
    ///
    /// Owns nothing. Returns the new socket as an [`std::os::fd::OwnedFd`] (close-on-exec), or,
    /// made with [`Socket::into_slot`], installed in the ring's registered-file table as a
    /// [`crate::FixedFd`]. A socket nobody takes (a detached ticket) is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use uring_ops::{ops::Socket, Uring};
    /// let mut ring = Uring::new(8)?;
    /// # if !ring.supports(uring_ops::core::sys::IORING_OP_SOCKET as u8) { return Ok(()); }
    /// let t = ring.push(Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0))?;
    /// let sock = std::net::TcpStream::from(ring.wait(t)??);
    /// assert!(sock.peer_addr().is_err(), "not connected");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct Socket<D: Dest = NewFd> {
        fn with { domain: plain(i32), ty: plain(i32), protocol: plain(i32), dest: plain(D) }
    }
    opcode = sys::IORING_OP_SOCKET;
    prepare(op, sqe) {
        let index = op.dest.file_index();
        sqe.set_fd(op.domain)
            .set_off(cloexec(index, op.ty, libc::SOCK_CLOEXEC) as u32 as u64)
            .set_len(op.protocol as u32)
            .set_file_index(index);
    }
    complete(op, res, _flags) -> io::Result<D::Created> {
        let n = res_to_io(res)?;
        // SAFETY: a successful socket op created descriptor (or filled slot) `n` for this op.
        Ok(unsafe { op.dest.created(n as i32, 0) })
    }
    discard(op, res, flags) { drop(Op::complete(op, res, flags)); }
}

impl Socket<NewFd> {
    /// A socket of `domain` (`AF_INET`, ...), `ty` (`SOCK_STREAM`, ..., with `SOCK_NONBLOCK`
    /// if wanted; `SOCK_CLOEXEC` is always added for a plain descriptor) and `protocol` (0:
    /// the default).
    pub fn new(domain: i32, ty: i32, protocol: i32) -> Self {
        Self::with(domain, ty, protocol, NewFd)
    }

    /// Into a slot of the ring's registered-file table instead (a given one, replacing its
    /// file, or one the kernel picks: [`NewSlot::alloc`]; Linux 5.19): the result is a
    /// [`crate::FixedFd`].
    pub fn into_slot(self, slot: NewSlot) -> Socket<NewSlot> {
        Socket::with(self.domain, self.ty, self.protocol, slot)
    }
}

op! {
    /// Binds a socket to an address (`IORING_OP_BIND`, Linux 6.11), like `bind(2)`.
    ///
    /// Owns the address (inside the op, which is therefore prepared in place) and a share of
    /// the socket until completion. Returns `Ok(())` or the errno.
    pub struct Bind {
        /// Binds `file` to `addr` (a [`std::net::SocketAddr`], or a [`SockAddr`] for a Unix
        /// path).
        pub fn new { file: file(), addr: sockaddr() }
    }
    opcode = sys::IORING_OP_BIND;
    prepare(op, sqe) { sqe.set_target(&op.file).set_sockaddr(&op.addr); }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

op! {
    /// Marks a socket as accepting connections (`IORING_OP_LISTEN`, Linux 6.11), like
    /// `listen(2)`.
    ///
    /// Owns a share of the socket until completion. Returns `Ok(())` or the errno.
    pub struct Listen {
        /// `file` listens with a queue of `backlog` pending connections (the kernel caps it
        /// at `net.core.somaxconn`).
        pub fn new { file: file(), backlog: plain(u32) }
    }
    opcode = sys::IORING_OP_LISTEN;
    prepare(op, sqe) { sqe.set_target(&op.file).set_len(op.backlog); }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

/// Where an [`Accept`] puts the connection, and what it hands back: a [`Dest`] ([`NewFd`]:
/// an `OwnedFd`, [`NewSlot`]: a `FixedFd`), or [`WithPeer`] of one, which adds the peer's
/// address. Implemented by these types only.
pub trait AcceptDest: fmt::Debug + Send + 'static {
    /// What the accept hands back.
    type Accepted: fmt::Debug + Send + 'static;
    /// The SQE's `file_index`.
    #[doc(hidden)]
    fn file_index(&self) -> u32;
    /// The output for a connection the kernel reported as `raw`, with what it wrote as the
    /// peer's address.
    ///
    /// # Safety
    ///
    /// As for [`Dest::created`].
    #[doc(hidden)]
    unsafe fn accepted(&self, raw: i32, peer: PeerAddr) -> Self::Accepted;
}

impl<D: Dest> AcceptDest for D {
    type Accepted = D::Created;
    fn file_index(&self) -> u32 {
        Dest::file_index(self)
    }
    unsafe fn accepted(&self, raw: i32, _peer: PeerAddr) -> D::Created {
        // SAFETY: forwarded.
        unsafe { self.created(raw, 0) }
    }
}

/// A [`Dest`] for [`Accept`], with the peer's address ([`Accept::peer_addr`]).
#[derive(Debug, Clone, Copy)]
pub struct WithPeer<D>(D);

impl<D: Dest> AcceptDest for WithPeer<D> {
    type Accepted = (D::Created, SockAddr);
    fn file_index(&self) -> u32 {
        self.0.file_index()
    }
    unsafe fn accepted(&self, raw: i32, peer: PeerAddr) -> (D::Created, SockAddr) {
        // SAFETY: forwarded.
        let fd = unsafe { self.0.created(raw, 0) };
        // `peer_addr` made room, so the kernel wrote an address there.
        (fd, peer.take().unwrap_or_else(SockAddr::empty))
    }
}

op! {
    /// Accepts a connection (`IORING_OP_ACCEPT`, Linux 5.5), like `accept4(2)`.
    ///
    /// Owns a share of the listening socket, and with [`Accept::peer_addr`] room for the
    /// peer's address on the heap, until completion. Returns the connection as an
    /// [`std::os::fd::OwnedFd`] (close-on-exec); made with [`Accept::into_slot`] (Linux 5.15; a
    /// slot the kernel picks, 5.19), installed in the ring's registered-file table as a
    /// [`crate::FixedFd`]; with [`Accept::peer_addr`], paired with the peer's address. A
    /// connection nobody takes (a detached ticket) is closed.
    ///
    /// [`Accept::multishot`] (Linux 5.19) keeps accepting, one completion per connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use uring_ops::{ops::Accept, Uring};
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let mut ring = Uring::new(8)?;
    /// let t = ring.push(Accept::new(listener).peer_addr())?;
    /// let client = std::net::TcpStream::connect(addr)?;
    /// let (conn, peer) = ring.wait(t)??;
    /// assert_eq!(peer.as_socket_addr(), Some(client.local_addr()?));
    /// # drop(conn);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct Accept<D: AcceptDest = NewFd> {
        fn with { file: file(), dest: plain(D) }
        set {
            /// `accept4(2)` flags (`SOCK_NONBLOCK`). `SOCK_CLOEXEC` is always added for a
            /// plain descriptor (a registered slot has no such flag).
            flags: i32 = 0,
        }
        state { peer: PeerAddr = PeerAddr::default() }
    }
    opcode = sys::IORING_OP_ACCEPT;
    prepare(op, sqe) {
        let index = op.dest.file_index();
        sqe.set_target(&op.file)
            .set_peer(&mut op.peer)
            .set_accept_flags(cloexec(index, op.flags, libc::SOCK_CLOEXEC) as u32)
            .set_file_index(index);
    }
    complete(op, res, _flags) -> io::Result<D::Accepted> {
        let n = res_to_io(res)?;
        // SAFETY: a successful accept created descriptor (or filled slot) `n` for this op.
        Ok(unsafe { op.dest.accepted(n as i32, op.peer) })
    }
    discard(op, res, flags) { drop(Op::complete(op, res, flags)); }
}

impl Accept<NewFd> {
    /// Accepts a connection on the listening socket `file`.
    pub fn new(file: impl IntoTarget) -> Self {
        Self::with(file, NewFd)
    }

    /// Into a slot of the ring's registered-file table instead: a given one, replacing its
    /// file (Linux 5.15; not with [`Accept::multishot`]), or one the kernel picks
    /// ([`NewSlot::alloc`], Linux 5.19). The result is a [`crate::FixedFd`].
    pub fn into_slot(self, slot: NewSlot) -> Accept<NewSlot> {
        Accept::with(self.file, slot).flags(self.flags)
    }
}

impl<D: Dest> Accept<D> {
    /// Also reports the peer's address (the kernel writes it into room this op owns). Not with
    /// [`Accept::multishot`].
    pub fn peer_addr(self) -> Accept<WithPeer<D>> {
        let mut a = Accept::with(self.file, WithPeer(self.dest)).flags(self.flags);
        a.peer = PeerAddr::wanted();
        a
    }

    /// The multishot form (`IORING_ACCEPT_MULTISHOT`, Linux 5.19): one completion per
    /// accepted connection, flagged `IORING_CQE_F_MORE`, until cancelled or failed. Into the
    /// registered-file table only in slots the kernel picks ([`NewSlot::alloc`]; a given
    /// slot is refused at push).
    pub fn multishot(self) -> Multishot<Accept<D>> {
        Multishot::new(self)
    }
}

// SAFETY: the multishot flag goes in `ioprio`; the SQE names nothing more than `prepare`'s (no
// peer address: `Accept<WithPeer<_>>` has no multishot form).
unsafe impl<D: Dest> MultishotOp for Accept<D> {
    /// One accepted connection.
    type Item = io::Result<D::Created>;

    fn prepare_multishot(&mut self, sqe: &mut Sqe) {
        sqe.set_ioprio(sys::IORING_ACCEPT_MULTISHOT as u16);
    }

    fn item(&mut self, res: i32, _flags: u32) -> io::Result<D::Created> {
        let n = res_to_io(res)?;
        // SAFETY: each successful completion of a multishot accept reports a connection
        // created for it; this is the one place it is taken.
        Ok(unsafe { self.dest.created(n as i32, 0) })
    }

    fn check_multishot(&self) -> crate::Result<()> {
        let index = Dest::file_index(&self.dest);
        if index != 0 && index != sys::IORING_FILE_INDEX_ALLOC {
            return Err(crate::Error::BadArgument {
                op: "Accept",
                why: "a multishot accept installs into slots the kernel picks (NewSlot::alloc), not a given one",
            });
        }
        Ok(())
    }
}

op! {
    /// Connects a socket to an address (`IORING_OP_CONNECT`, Linux 5.5), like `connect(2)`.
    ///
    /// Owns the address (inside the op, which is therefore prepared in place) and a share of
    /// the socket until completion. Returns `Ok(())` or the errno (`ECONNREFUSED`, ...).
    pub struct Connect {
        /// Connects `file` to `addr` (a [`std::net::SocketAddr`], or a [`SockAddr`] for a Unix
        /// path).
        pub fn new { file: file(), addr: sockaddr() }
    }
    opcode = sys::IORING_OP_CONNECT;
    prepare(op, sqe) { sqe.set_target(&op.file).set_sockaddr(&op.addr); }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

op! {
    /// Shuts down part of a full-duplex connection (`IORING_OP_SHUTDOWN`, Linux 5.11), like
    /// `shutdown(2)`.
    ///
    /// Owns a share of the socket until completion. Returns `Ok(())` or the errno.
    pub struct Shutdown {
        /// Shuts down `how` (reading, writing or both) of `file`.
        pub fn new { file: file(), how: plain(std::net::Shutdown) }
    }
    opcode = sys::IORING_OP_SHUTDOWN;
    prepare(op, sqe) {
        let how = match op.how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        sqe.set_target(&op.file).set_len(how as u32);
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}
