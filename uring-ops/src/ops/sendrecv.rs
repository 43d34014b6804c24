//! Sending and receiving on sockets: `SEND`, `RECV`, and receives into provided buffers
//! (one-shot, multishot, bundles).

use super::define::op;
use super::kinds::{data, room, DestAddr};
use crate::addr::SockAddr;
use crate::buf::{IoBuf, IoBufMut};
use crate::multishot::{Multishot, MultishotOp};
use crate::op::{res_to_io, short_transfer};
use crate::pbuf::ProvidedBuf;
use std::io;
use uring_core::{sys, Sqe};

/// Whether the kernel fails a link for a send or receive of `res` bytes that asked for
/// `want` with `msg_flags`: an error, or with `MSG_WAITALL` fewer bytes (`min_ret`).
pub(crate) fn fails_sendrecv(res: i32, want: usize, msg_flags: i32) -> bool {
    if msg_flags & libc::MSG_WAITALL != 0 {
        short_transfer(res, want)
    } else {
        res < 0
    }
}

/// The SQE of a send of `buf`'s data (`SEND`, `SEND_ZC`): at most `len` bytes, `MSG_*` flags,
/// an optional destination, and `ioprio` (with `IORING_RECVSEND_FIXED_BUF` for a registered
/// buffer).
pub(crate) fn prepare_send<B: IoBuf>(
    sqe: &mut Sqe,
    file: &crate::Target,
    buf: &B,
    len: u32,
    flags: i32,
    dest: &DestAddr,
    ioprio: u16,
) {
    use super::kinds::SqeKinds as _;
    let fixed = if B::FIXED {
        sys::IORING_RECVSEND_FIXED_BUF as u16
    } else {
        0
    };
    sqe.set_target(file)
        .set_buf(buf, len)
        .set_msg_flags(flags as u32)
        .set_dest(dest)
        .set_ioprio(ioprio | fixed);
}

op! {
    /// Sends the buffer's data on a socket (`IORING_OP_SEND`, Linux 5.6), like `send(2)`;
    /// with [`Send::to`], to an address, like `sendto(2)` (Linux 6.0). With a registered
    /// buffer ([`crate::FixedBuf`]) it uses `IORING_RECVSEND_FIXED_BUF` (Linux 6.10).
    ///
    /// Owns the buffer, the destination address (on the heap) and a share of the socket until
    /// completion. Returns the byte count (which, on a stream socket and without
    /// `MSG_WAITALL`, may be short) and the buffer.
    pub struct Send<B: IoBuf> {
        /// Sends `buf`'s data (up to `u32::MAX` bytes) on `file`.
        pub fn new { file: file(), buf: buf(B) }
        set {
            /// `MSG_*` flags (`send(2)`): `MSG_WAITALL` to send everything or fail,
            /// `MSG_MORE`, ... (`MSG_NOSIGNAL` is always added by the kernel).
            flags: i32 = 0,
            /// Sends at most the first `len` bytes (never more than the buffer's data).
            len: u32 = u32::MAX,
        }
        state { dest: DestAddr = DestAddr::default(), ioprio: u16 = 0 }
    }
    opcode = sys::IORING_OP_SEND;
    prepare(op, sqe) {
        prepare_send(sqe, &op.file, &op.buf, op.len, op.flags, &op.dest, op.ioprio);
    }
    complete(op, res, _flags) -> (io::Result<usize>, B) {
        (res_to_io(res).map(|n| n as usize), op.buf)
    }
    fails_link(op, res) { fails_sendrecv(res, data(&op.buf, op.len) as usize, op.flags) }
}

impl<B: IoBuf> Send<B> {
    /// Sends to `addr` (an unconnected datagram socket's destination; Linux 6.0).
    pub fn to(mut self, addr: impl Into<SockAddr>) -> Self {
        self.dest = DestAddr::to(addr.into());
        self
    }

    /// Tries the send only once the socket is writable (`IORING_RECVSEND_POLL_FIRST`, Linux
    /// 5.19), for a socket expected to be full.
    pub fn poll_first(mut self) -> Self {
        self.ioprio |= sys::IORING_RECVSEND_POLL_FIRST as u16;
        self
    }

    /// The buffer, back, without sending.
    pub fn into_buf(self) -> B {
        self.buf
    }
}

op! {
    /// Receives into the buffer from a socket (`IORING_OP_RECV`, Linux 5.6), like `recv(2)`.
    ///
    /// Owns the buffer and a share of the socket until completion. Returns the byte count (0:
    /// the peer closed its end) and the buffer, whose initialised length covers what was
    /// received.
    pub struct Recv<B: IoBufMut> {
        /// Receives into `buf` (its whole room, up to `u32::MAX` bytes) from `file`.
        pub fn new { file: file(), buf: buf(B) }
        set {
            /// `MSG_*` flags (`recv(2)`): `MSG_WAITALL`, `MSG_PEEK`, ...
            flags: i32 = 0,
            /// Receives at most `len` bytes (never more than the buffer's room).
            len: u32 = u32::MAX,
        }
        state { ioprio: u16 = 0 }
    }
    opcode = sys::IORING_OP_RECV;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_buf_mut(&mut op.buf, op.len)
            .set_msg_flags(op.flags as u32)
            .set_ioprio(op.ioprio);
    }
    complete(op, res, _flags) -> (io::Result<usize>, B) {
        let mut op = op;
        let r = res_to_io(res).map(|n| n as usize);
        if let Ok(n) = r {
            // SAFETY: the kernel wrote `n` bytes from the start, at most the room `prepare`
            // named (a stream receive never reports more than it copied; a datagram one only
            // with `MSG_TRUNC`, which the bound below covers).
            unsafe { op.buf.set_init(n.min(room(&op.buf, op.len) as usize)) };
        }
        (r, op.buf)
    }
    fails_link(op, res) { fails_sendrecv(res, room(&op.buf, op.len) as usize, op.flags) }
}

impl<B: IoBufMut> Recv<B> {
    /// Tries the receive only once data is there (`IORING_RECVSEND_POLL_FIRST`, Linux 5.19),
    /// for a socket expected to be empty.
    pub fn poll_first(mut self) -> Self {
        self.ioprio |= sys::IORING_RECVSEND_POLL_FIRST as u16;
        self
    }

    /// The buffer, back, without receiving.
    pub fn into_buf(self) -> B {
        self.buf
    }
}

op! {
    /// Receives into a buffer the kernel picks from a provided-buffer ring or group
    /// (`IORING_OP_RECV` with `IOSQE_BUFFER_SELECT`, Linux 5.7; rings 5.19).
    ///
    /// Owns a share of the socket and of the ring (or group), whose memory the kernel writes
    /// into, until completion. Returns the buffer received into as an owned
    /// [`ProvidedBuf`] (empty when the peer closed its end), which goes back to its ring when
    /// dropped; `ENOBUFS` when the ring had no buffer.
    ///
    /// [`RecvProvided::multishot`] (Linux 6.0) keeps receiving, one buffer per completion.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write as _;
    /// use std::time::Duration;
    /// use uring_ops::{ops::RecvProvided, BufRing, Uring};
    /// let mut ring = Uring::new(8)?;
    /// let bufs = BufRing::register(&ring, 8, 4096)?;
    /// let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let t = ring.push(RecvProvided::new(b, &bufs).multishot())?;
    /// a.write_all(b"one")?;
    /// let got = ring.wait_items(&t, Duration::from_secs(5))?;
    /// assert_eq!(&got[0].as_ref().unwrap()[..], b"one");
    /// drop(a); // the receive ends with the stream: an empty last buffer
    /// let end = ring.wait(t)?;
    /// assert!(end.last?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct RecvProvided {
        /// Receives from `file` into a buffer of `group` (a [`crate::BufRing`] or
        /// [`crate::BufGroup`]).
        pub fn new { file: file(), group: group() }
        set {
            /// `MSG_*` flags (`recv(2)`; not `MSG_WAITALL` for the multishot form).
            flags: i32 = 0,
            /// Receives at most `len` bytes (0, the default: the buffer's size). One-shot only:
            /// the multishot form fills whole buffers.
            len: u32 = 0,
        }
        state { ioprio: u16 = 0 }
    }
    opcode = sys::IORING_OP_RECV;
    prepare(op, sqe) {
        let size = op.group.buf_size();
        let len = if op.len == 0 { size } else { op.len.min(size) };
        sqe.set_target(&op.file)
            .set_group(&op.group)
            .set_len(len)
            .set_msg_flags(op.flags as u32)
            .set_ioprio(op.ioprio);
    }
    complete(op, res, flags) -> io::Result<ProvidedBuf> { op.group.take_one(res, flags) }
    fails_link(op, res) { fails_sendrecv(res, op.group.buf_size() as usize, op.flags) }
    // Unredeemed, the buffer the completion names goes back to its ring.
    discard(op, res, flags) { drop(crate::Op::complete(op, res, flags)); }
}

impl RecvProvided {
    /// The multishot form (`IORING_RECV_MULTISHOT`, Linux 6.0): one completion, with one
    /// buffer, each time data arrives, flagged `IORING_CQE_F_MORE`, until the peer closes
    /// (an empty last buffer), an error, the ring running out of buffers (`ENOBUFS`), or a
    /// cancel.
    pub fn multishot(self) -> Multishot<RecvProvided> {
        Multishot::new(self)
    }

    /// Tries the receive only once data is there (`IORING_RECVSEND_POLL_FIRST`, Linux 5.19).
    pub fn poll_first(mut self) -> Self {
        self.ioprio |= sys::IORING_RECVSEND_POLL_FIRST as u16;
        self
    }
}

// SAFETY: the multishot flag goes in `ioprio` and the length is cleared; the SQE names nothing
// more than `prepare`'s (the group, held by the op).
unsafe impl MultishotOp for RecvProvided {
    /// The buffer of one receive.
    type Item = io::Result<ProvidedBuf>;

    fn prepare_multishot(&mut self, sqe: &mut Sqe) {
        sqe.set_len(0)
            .set_ioprio(self.ioprio | sys::IORING_RECV_MULTISHOT as u16);
    }

    fn item(&mut self, res: i32, flags: u32) -> io::Result<ProvidedBuf> {
        self.group.take_one(res, flags)
    }

    fn check_multishot(&self) -> crate::Result<()> {
        if self.flags & libc::MSG_WAITALL != 0 {
            return Err(crate::Error::BadArgument {
                op: "RecvProvided",
                why: "a multishot receive cannot wait for all (MSG_WAITALL)",
            });
        }
        Ok(())
    }
}

op! {
    /// Receives into as many buffers of a provided-buffer ring as the data fills, in one
    /// completion (`IORING_OP_RECV` with `IORING_RECVSEND_BUNDLE`, Linux 6.10).
    ///
    /// Owns a share of the socket and of the ring until completion. Returns the buffers
    /// filled, in order (each full but the last; none when the peer closed its end), each
    /// going back to the ring when dropped; `ENOBUFS` when the ring had no buffer.
    ///
    /// [`RecvBundle::multishot`] keeps receiving, one bundle per completion.
    pub struct RecvBundle {
        /// Receives from `file` into buffers of `ring` (a [`crate::BufRing`]).
        pub fn new { file: file(), group: group() }
        set {
            /// `MSG_*` flags (`recv(2)`; not `MSG_WAITALL` nor `MSG_TRUNC`).
            flags: i32 = 0,
        }
    }
    opcode = sys::IORING_OP_RECV;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_group(&op.group)
            .set_msg_flags(op.flags as u32)
            .set_ioprio(sys::IORING_RECVSEND_BUNDLE as u16);
    }
    complete(op, res, flags) -> io::Result<Vec<ProvidedBuf>> { bundle(&op.group, res, flags) }
    check(op) {
        if !op.group.is_ring() {
            return Err(crate::Error::BadArgument {
                op: "RecvBundle",
                why: "bundles take buffers from a BufRing, not a BufGroup",
            });
        }
        // With MSG_WAITALL the kernel may retry after a partial receive and consume buffers it
        // does not report; with MSG_TRUNC the result can exceed what it placed. Either way the
        // buffers consumed could not be told from the result.
        if op.flags & (libc::MSG_WAITALL | libc::MSG_TRUNC) != 0 {
            return Err(crate::Error::BadArgument {
                op: "RecvBundle",
                why: "a bundle receive takes neither MSG_WAITALL nor MSG_TRUNC",
            });
        }
        Ok(())
    }
    discard(op, res, flags) { drop(crate::Op::complete(op, res, flags)); }
}

/// The buffers of a bundle completion.
fn bundle(group: &crate::pbuf::GroupRef, res: i32, flags: u32) -> io::Result<Vec<ProvidedBuf>> {
    let mut v = group.take(res, flags, true)?;
    v.retain(|b| b.bid().is_some());
    Ok(v)
}

impl RecvBundle {
    /// The multishot form (Linux 6.10): one completion per bundle, flagged
    /// `IORING_CQE_F_MORE`, until the peer closes, an error, `ENOBUFS` or a cancel.
    pub fn multishot(self) -> Multishot<RecvBundle> {
        Multishot::new(self)
    }
}

// SAFETY: the multishot flag goes in `ioprio`; the SQE names nothing more than `prepare`'s.
unsafe impl MultishotOp for RecvBundle {
    /// The buffers of one bundle.
    type Item = io::Result<Vec<ProvidedBuf>>;

    fn prepare_multishot(&mut self, sqe: &mut Sqe) {
        sqe.set_ioprio((sys::IORING_RECVSEND_BUNDLE | sys::IORING_RECV_MULTISHOT) as u16);
    }

    fn item(&mut self, res: i32, flags: u32) -> io::Result<Vec<ProvidedBuf>> {
        bundle(&self.group, res, flags)
    }
}
