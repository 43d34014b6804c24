//! Message sends and receives: `SENDMSG`, `RECVMSG` (into owned buffers, or multishot into
//! provided buffers).

use super::define::op;
use super::sendrecv::fails_sendrecv;
use crate::addr::SockAddr;
use crate::buf::{IoBuf, IoBufMut};
use crate::multishot::{Multishot, MultishotOp};
use crate::op::res_to_io;
use crate::pbuf::ProvidedBuf;
use std::fmt;
use std::io;
use uring_core::{sys, Sqe};

op! {
    /// Sends a message on a socket (`IORING_OP_SENDMSG`, Linux 5.3), like `sendmsg(2)`: the
    /// buffers in order, to an address ([`SendMsg::to`]), with ancillary data
    /// ([`SendMsg::control`]).
    ///
    /// Owns the buffers, the `msghdr` with the address and control bytes (on the heap) and a
    /// share of the socket until completion. Returns the byte count and the buffers.
    pub struct SendMsg<B: IoBuf> {
        /// Sends `bufs` (each its data) on `file`.
        pub fn new { file: file(), msg: msg(B) }
        set {
            /// `MSG_*` flags (`sendmsg(2)`).
            flags: i32 = 0,
        }
    }
    opcode = sys::IORING_OP_SENDMSG;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_msghdr(&mut op.msg)
            .set_msg_flags(op.flags as u32);
    }
    complete(op, res, _flags) -> (io::Result<usize>, Vec<B>) {
        (res_to_io(res).map(|n| n as usize), op.msg.into_parts(false).0)
    }
    fails_link(op, res) { fails_sendrecv(res, op.msg.total(), op.flags) }
}

impl<B: IoBuf> SendMsg<B> {
    /// Sends to `addr` (`msg_name`), for an unconnected socket.
    pub fn to(mut self, addr: impl Into<SockAddr>) -> Self {
        self.msg.set_name(addr.into());
        self
    }

    /// Sends `control` as ancillary data (`msg_control`: `cmsghdr` records, such as
    /// `SCM_RIGHTS`).
    pub fn control(mut self, control: Vec<u8>) -> Self {
        self.msg.set_control(control);
        self
    }
}

/// What a [`RecvMsg`] gives back.
#[derive(Debug)]
pub struct MsgReceived<B> {
    /// The byte count, or the errno.
    pub result: io::Result<usize>,
    /// The buffers, each with its initialised length covering what was received into it.
    pub bufs: Vec<B>,
    /// The sender's address, when asked for ([`RecvMsg::source`]) and reported.
    pub source: Option<SockAddr>,
    /// Ancillary data received (empty when no room was asked for with [`RecvMsg::control`]).
    pub control: Vec<u8>,
    /// `msg_flags` (`MSG_TRUNC`: the datagram was longer than the buffers, `MSG_CTRUNC`: the
    /// control data longer than its room, ...).
    pub flags: i32,
}

op! {
    /// Receives a message from a socket (`IORING_OP_RECVMSG`, Linux 5.3), like `recvmsg(2)`:
    /// into the buffers in order, with the sender's address ([`RecvMsg::source`]) and
    /// ancillary data ([`RecvMsg::control`]).
    ///
    /// Owns the buffers, the `msghdr` with room for the address and control bytes (on the
    /// heap) and a share of the socket until completion. Returns a [`MsgReceived`].
    pub struct RecvMsg<B: IoBufMut> {
        /// Receives into `bufs` (each its whole room) from `file`.
        pub fn new { file: file(), msg: msg_mut(B) }
        set {
            /// `MSG_*` flags (`recvmsg(2)`).
            flags: i32 = 0,
        }
    }
    opcode = sys::IORING_OP_RECVMSG;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_msghdr(&mut op.msg)
            .set_msg_flags(op.flags as u32);
    }
    complete(op, res, _flags) -> MsgReceived<B> {
        let mut op = op;
        let result = res_to_io(res).map(|n| n as usize);
        let ok = result.is_ok();
        if let Ok(n) = result {
            op.msg.filled(n.min(op.msg.total()));
        }
        let source = if ok { op.msg.name_out() } else { None };
        let flags = if ok { op.msg.flags_out() } else { 0 };
        let (bufs, control) = op.msg.into_parts(ok);
        MsgReceived { result, bufs, source, control, flags }
    }
    fails_link(op, res) { fails_sendrecv(res, op.msg.total(), op.flags) }
}

impl<B: IoBufMut> RecvMsg<B> {
    /// Also reports the sender's address (room for it in the `msghdr`).
    pub fn source(mut self) -> Self {
        self.msg.want_name();
        self
    }

    /// Room for `n` bytes of ancillary data.
    pub fn control(mut self, n: usize) -> Self {
        self.msg.control_room(n);
        self
    }
}

op! {
    /// Receives messages into buffers the kernel picks from a provided-buffer ring or group,
    /// one per completion (`IORING_OP_RECVMSG` with `IORING_RECV_MULTISHOT`, Linux 6.0): push
    /// its [`RecvMsgMulti::multishot`] form.
    ///
    /// Each buffer holds the message's header, the sender's address and ancillary data in the
    /// room asked for ([`RecvMsgMulti::source`], [`RecvMsgMulti::control`]), then the payload:
    /// a [`RecvMsgOut`] reads them. Owns the `msghdr` (on the heap), a share of the socket and
    /// of the ring until the last completion.
    pub struct RecvMsgMulti {
        /// Receives from `file` into buffers of `group` (a [`crate::BufRing`] or
        /// [`crate::BufGroup`]).
        pub fn new { file: file(), group: group() }
        set {
            /// `MSG_*` flags (`recvmsg(2)`; not `MSG_WAITALL`).
            flags: i32 = 0,
        }
        state {
            msg: super::kinds::MsgHdr<Vec<u8>> = super::kinds::MsgHdr::empty(),
            multi: bool = false,
        }
    }
    opcode = sys::IORING_OP_RECVMSG;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_msghdr(&mut op.msg)
            .set_group(&op.group)
            .set_msg_flags(op.flags as u32);
    }
    complete(op, res, flags) -> io::Result<RecvMsgOut> { op.out(res, flags) }
    check(op) {
        if !op.multi {
            return Err(crate::Error::BadArgument {
                op: "RecvMsgMulti",
                why: "push the form RecvMsgMulti::multishot makes",
            });
        }
        Ok(())
    }
    discard(op, res, flags) { drop(crate::Op::complete(op, res, flags)); }
}

impl RecvMsgMulti {
    /// Room for the sender's address in each buffer.
    pub fn source(mut self) -> Self {
        self.msg.want_name();
        self
    }

    /// Room for `n` bytes of ancillary data in each buffer.
    pub fn control(mut self, n: usize) -> Self {
        self.msg.control_room(n);
        self
    }

    /// The multishot form: one completion per message, flagged `IORING_CQE_F_MORE`, until an
    /// error, the ring running out of buffers (`ENOBUFS`) or a cancel.
    pub fn multishot(mut self) -> Multishot<RecvMsgMulti> {
        self.multi = true;
        Multishot::new(self)
    }

    fn out(&self, res: i32, flags: u32) -> io::Result<RecvMsgOut> {
        let buf = self.group.take_one(res, flags)?;
        let (name_room, control_room) = self.msg.rooms();
        if buf.bid().is_some() && buf.len() < HDR + (name_room + control_room) as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a multishot recvmsg buffer of {} bytes is shorter than its header",
                    buf.len()
                ),
            ));
        }
        Ok(RecvMsgOut {
            buf,
            name_room,
            control_room,
        })
    }
}

// SAFETY: the multishot flag goes in `ioprio`; the SQE names nothing more than `prepare`'s
// (the `msghdr`, on the heap, and the group).
unsafe impl MultishotOp for RecvMsgMulti {
    /// One message.
    type Item = io::Result<RecvMsgOut>;

    fn prepare_multishot(&mut self, sqe: &mut Sqe) {
        sqe.set_ioprio(sys::IORING_RECV_MULTISHOT as u16);
    }

    fn item(&mut self, res: i32, flags: u32) -> io::Result<RecvMsgOut> {
        self.out(res, flags)
    }

    fn check_multishot(&self) -> crate::Result<()> {
        if self.flags & libc::MSG_WAITALL != 0 {
            return Err(crate::Error::BadArgument {
                op: "RecvMsgMulti",
                why: "a multishot receive cannot wait for all (MSG_WAITALL)",
            });
        }
        Ok(())
    }
}

/// The size of `struct io_uring_recvmsg_out`, at the start of each buffer.
const HDR: usize = std::mem::size_of::<sys::io_uring_recvmsg_out>();

/// One message received by [`RecvMsgMulti`]: its provided buffer, which holds a header
/// (`struct io_uring_recvmsg_out`), the sender's address and ancillary data in the room asked
/// for, and the payload.
pub struct RecvMsgOut {
    buf: ProvidedBuf,
    name_room: u32,
    control_room: u32,
}

impl RecvMsgOut {
    fn word(&self, i: usize) -> u32 {
        self.buf
            .get(i * 4..i * 4 + 4)
            .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Whether a message is there (the last completion of a finished receive may carry none).
    pub fn is_empty(&self) -> bool {
        self.buf.bid().is_none()
    }

    /// The sender's address, when room was asked for ([`RecvMsgMulti::source`]); cut to the
    /// room if longer.
    pub fn source(&self) -> Option<SockAddr> {
        let len = self.word(0).min(self.name_room) as usize;
        if self.is_empty() || len == 0 {
            return None;
        }
        let mut st: libc::sockaddr_storage =
            // SAFETY: plain integers; all-zero is valid.
            unsafe { std::mem::zeroed() };
        let n = len.min(std::mem::size_of::<libc::sockaddr_storage>());
        // SAFETY: `n` bytes of the buffer (inside it: checked at construction) into the
        // storage, which has room for them.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.buf.as_ptr().add(HDR),
                (&mut st as *mut libc::sockaddr_storage).cast::<u8>(),
                n,
            )
        };
        SockAddr::from_raw(st, n as libc::socklen_t).ok()
    }

    /// The ancillary data received (cut to the room asked for: see [`RecvMsgOut::flags`]'s
    /// `MSG_CTRUNC`).
    pub fn control(&self) -> &[u8] {
        if self.is_empty() {
            return &[];
        }
        let start = HDR + self.name_room as usize;
        let len = self.word(1).min(self.control_room) as usize;
        &self.buf[start..start + len]
    }

    /// The payload received (at most what fit in the buffer: see
    /// [`RecvMsgOut::payload_len`]).
    pub fn payload(&self) -> &[u8] {
        if self.is_empty() {
            return &[];
        }
        &self.buf[HDR + (self.name_room + self.control_room) as usize..]
    }

    /// The payload's length as the socket reported it: with `MSG_TRUNC` among the op's flags,
    /// a datagram's full length, more than [`RecvMsgOut::payload`] holds when it did not fit
    /// (which [`RecvMsgOut::flags`] says with `MSG_TRUNC` either way).
    pub fn payload_len(&self) -> usize {
        self.word(2) as usize
    }

    /// `msg_flags` of the message (`MSG_TRUNC`, `MSG_CTRUNC`, ...).
    pub fn flags(&self) -> i32 {
        self.word(3) as i32
    }

    /// The provided buffer, whole (header included).
    pub fn into_buf(self) -> ProvidedBuf {
        self.buf
    }
}

impl fmt::Debug for RecvMsgOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvMsgOut")
            .field("source", &self.source())
            .field("control", &self.control().len())
            .field("payload", &self.payload().len())
            .field("flags", &self.flags())
            .finish()
    }
}
