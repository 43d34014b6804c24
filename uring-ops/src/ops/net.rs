//! Sockets: `SOCKET`, `BIND`, `LISTEN`, `ACCEPT` (one-shot and multishot, into a registered
//! slot or not), `CONNECT`, `SHUTDOWN`.

use super::define::op;
use crate::addr::{PeerAddr, SockAddr};
use crate::fd::{FixedFd, NewFd, Slot};
use crate::multishot::{Multishot, MultishotOp};
use crate::op::res_to_io;
use std::io;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use uring_core::{sys, Sqe};

op! {
    /// Creates a socket (`IORING_OP_SOCKET`, Linux 5.19), like `socket(2)`.
    ///
    /// Owns nothing. Returns the new socket as an [`OwnedFd`] (close-on-exec), or, made with
    /// [`Socket::into_slot`] / [`Socket::into_any_slot`] (Linux 5.19), installed in the ring's
    /// registered-file table as a [`FixedFd`].
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
    pub struct Socket<T: NewFd> {
        fn with { domain: plain(i32), ty: plain(i32), protocol: plain(i32), slot: plain(Slot) }
        state { _t: PhantomData<fn() -> T> = PhantomData }
    }
    opcode = sys::IORING_OP_SOCKET;
    prepare(op, sqe) {
        sqe.set_fd(op.domain)
            .set_off(op.ty as u32 as u64)
            .set_len(op.protocol as u32)
            .set_file_index(op.slot.file_index());
    }
    complete(op, res, _flags) -> io::Result<T> { T::from_result(res, op.slot) }
    check(op) { op.slot.check("Socket") }
}

impl Socket<OwnedFd> {
    /// A socket of `domain` (`AF_INET`, ...), `ty` (`SOCK_STREAM`, ..., with `SOCK_NONBLOCK`
    /// if wanted; `SOCK_CLOEXEC` is always added) and `protocol` (0: the default).
    pub fn new(domain: i32, ty: i32, protocol: i32) -> Self {
        Self::with(domain, ty | libc::SOCK_CLOEXEC, protocol, Slot::None)
    }

    /// Into slot `index` of the ring's registered-file table (which must exist: a sparse
    /// table, for instance), replacing what was there.
    pub fn into_slot(self, index: u32) -> Socket<FixedFd> {
        // A registered file has no close-on-exec flag: the kernel refuses it.
        Socket::with(
            self.domain,
            self.ty & !libc::SOCK_CLOEXEC,
            self.protocol,
            Slot::Index(index),
        )
    }

    /// Into a free slot of the ring's registered-file table, which the kernel picks from the
    /// allocation range (`IORING_FILE_INDEX_ALLOC`, Linux 5.19).
    pub fn into_any_slot(self) -> Socket<FixedFd> {
        Socket::with(
            self.domain,
            self.ty & !libc::SOCK_CLOEXEC,
            self.protocol,
            Slot::Any,
        )
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

op! {
    /// Accepts a connection (`IORING_OP_ACCEPT`, Linux 5.5), like `accept4(2)`.
    ///
    /// Owns a share of the listening socket, and with [`Accept::peer_addr`] room for the
    /// peer's address on the heap, until completion. Returns the connection as an [`OwnedFd`]
    /// (close-on-exec); made with [`Accept::into_slot`] / [`Accept::into_any_slot`] (Linux
    /// 5.15 / 5.19), installed in the ring's registered-file table as a [`FixedFd`]; with
    /// [`Accept::peer_addr`], paired with the peer's address.
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
    pub struct Accept<T: AcceptOutput> {
        fn with { file: file(), slot: plain(Slot) }
        set {
            /// `accept4(2)` flags (`SOCK_NONBLOCK`). `SOCK_CLOEXEC` is always added for a
            /// plain descriptor (a registered slot has no such flag).
            flags: i32 = 0,
        }
        state {
            peer: PeerAddr = PeerAddr::default(),
            _t: PhantomData<fn() -> T> = PhantomData,
        }
    }
    opcode = sys::IORING_OP_ACCEPT;
    prepare(op, sqe) {
        let cloexec = if op.slot == Slot::None { libc::SOCK_CLOEXEC } else { 0 };
        sqe.set_target(&op.file)
            .set_peer(&mut op.peer)
            .set_accept_flags((op.flags | cloexec) as u32)
            .set_file_index(op.slot.file_index());
    }
    complete(op, res, _flags) -> io::Result<T> { T::accepted(res, op.slot, op.peer) }
    check(op) { op.slot.check("Accept") }
}

impl Accept<OwnedFd> {
    /// Accepts a connection on the listening socket `file`.
    pub fn new(file: impl crate::IntoTarget) -> Self {
        Self::with(file, Slot::None)
    }

    /// Into slot `index` of the ring's registered-file table, replacing what was there (not
    /// with [`Accept::multishot`], which needs [`Accept::into_any_slot`]).
    pub fn into_slot(self, index: u32) -> Accept<FixedFd> {
        self.retype(Slot::Index(index))
    }

    /// Into a free slot of the ring's registered-file table, which the kernel picks from the
    /// allocation range (`IORING_FILE_INDEX_ALLOC`, Linux 5.19).
    pub fn into_any_slot(self) -> Accept<FixedFd> {
        self.retype(Slot::Any)
    }

    fn retype(self, slot: Slot) -> Accept<FixedFd> {
        Accept::with(self.file, slot).flags(self.flags & !libc::SOCK_CLOEXEC)
    }
}

impl<T: NewFd + AcceptOutput> Accept<T> {
    /// Also reports the peer's address (the kernel writes it into room this op owns).
    pub fn peer_addr(self) -> Accept<(T, SockAddr)> {
        let mut a = Accept::with(self.file, self.slot).flags(self.flags);
        a.peer = PeerAddr::wanted();
        a
    }

    /// The multishot form (`IORING_ACCEPT_MULTISHOT`, Linux 5.19): one completion per
    /// accepted connection, flagged `IORING_CQE_F_MORE`, until cancelled or failed. Into the
    /// registered-file table only with [`Accept::into_any_slot`] (a named slot is refused at
    /// push).
    pub fn multishot(self) -> Multishot<Accept<T>> {
        Multishot::new(self)
    }
}

// SAFETY: the multishot flag goes in `ioprio`; the SQE names nothing more than `prepare`'s (no
// peer address: `Accept<(T, SockAddr)>` has no multishot form).
unsafe impl<T: NewFd + AcceptOutput> MultishotOp for Accept<T> {
    /// One accepted connection.
    type Item = io::Result<T>;

    fn prepare_multishot(&mut self, sqe: &mut Sqe) {
        sqe.set_ioprio(sys::IORING_ACCEPT_MULTISHOT as u16);
    }

    fn item(&mut self, res: i32, _flags: u32) -> io::Result<T> {
        T::from_result(res, self.slot)
    }

    fn check_multishot(&self) -> crate::Result<()> {
        match self.slot {
            Slot::Index(_) => Err(crate::Error::BadArgument {
                op: "Accept",
                why: "a multishot accept installs into any free slot (into_any_slot), not a named one",
            }),
            _ => Ok(()),
        }
    }
}

/// What an [`Accept`] gives back: an [`OwnedFd`] or a [`FixedFd`], alone or with the peer's
/// address. Implemented by these four types only.
pub trait AcceptOutput:
    crate::op::sealed::Sealed + Sized + Send + std::fmt::Debug + 'static
{
    /// The output for a completion `res`, for an op installed as `slot` says, with the room
    /// for the peer's address.
    #[doc(hidden)]
    fn accepted(res: i32, slot: Slot, peer: PeerAddr) -> io::Result<Self>;
}

impl<T: NewFd> AcceptOutput for T {
    fn accepted(res: i32, slot: Slot, _peer: PeerAddr) -> io::Result<Self> {
        T::from_result(res, slot)
    }
}

impl<T: NewFd> crate::op::sealed::Sealed for (T, SockAddr) {}

impl<T: NewFd> AcceptOutput for (T, SockAddr) {
    fn accepted(res: i32, slot: Slot, peer: PeerAddr) -> io::Result<Self> {
        let fd = T::from_result(res, slot)?;
        // `peer_addr` always makes room, so the kernel wrote an address.
        let addr = peer.take().unwrap_or_else(|| {
            SockAddr::from_raw(
                // SAFETY: plain integers; all-zero is valid.
                unsafe { std::mem::zeroed() },
                0,
            )
            .expect("length 0 fits")
        });
        Ok((fd, addr))
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
