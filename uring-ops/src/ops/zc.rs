//! Zero-copy sends: `SEND_ZC`, `SENDMSG_ZC`. Each posts two completions: the send's result,
//! then, once the network stack has let go of the pages, a notification; the buffer comes
//! back only after the second.

use super::define::op;
use super::kinds::{data, DestAddr};
use super::sendrecv::{fails_sendrecv, prepare_send};
use crate::addr::SockAddr;
use crate::buf::IoBuf;
use crate::error::Result;
use crate::op::{check_op, prepare_op, res_to_io, sealed, Entry, Op, OpCheck, Progress, Submit};
use std::fmt;
use std::io;
use uring_core::{sys, Sqe};

op! {
    /// The op behind [`SendZc`] (one SQE; its entry waits for the notification).
    pub struct SendZcOp<B: IoBuf> {
        /// Sends `buf`'s data on `file`.
        pub fn new { file: file(), buf: buf(B) }
        set {
            /// `MSG_*` flags.
            flags: i32 = 0,
            /// Sends at most `len` bytes.
            len: u32 = u32::MAX,
        }
        state { dest: DestAddr = DestAddr::default(), zc_flags: u16 = 0 }
    }
    opcode = sys::IORING_OP_SEND_ZC;
    name = "SendZc";
    prepare(op, sqe) {
        prepare_send(sqe, &op.file, &op.buf, op.len, op.flags, &op.dest, op.zc_flags);
    }
    complete(op, res, _flags) -> (io::Result<usize>, B) {
        (res_to_io(res).map(|n| n as usize), op.buf)
    }
    fails_link(op, res) { fails_sendrecv(res, data(&op.buf, op.len) as usize, op.flags) }
}

op! {
    /// The op behind [`SendMsgZc`].
    pub struct SendMsgZcOp<B: IoBuf> {
        /// Sends `bufs` on `file`.
        pub fn new { file: file(), msg: msg(B) }
        set {
            /// `MSG_*` flags.
            flags: i32 = 0,
        }
        state { zc_flags: u16 = 0 }
    }
    opcode = sys::IORING_OP_SENDMSG_ZC;
    name = "SendMsgZc";
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_msghdr(&mut op.msg)
            .set_msg_flags(op.flags as u32)
            .set_ioprio(op.zc_flags);
    }
    complete(op, res, _flags) -> (io::Result<usize>, Vec<B>) {
        (res_to_io(res).map(|n| n as usize), op.msg.into_parts(false).0)
    }
}

/// Sends the buffer's data on a socket without copying it (`IORING_OP_SEND_ZC`, Linux 6.0):
/// the network stack uses the buffer's pages directly, so the kernel needs them until it
/// posts a notification, after the send's own completion.
///
/// Pushed like an op (not in a [`crate::Chain`]); its ticket gives a [`ZcSent`] once both
/// completions have arrived: the send's result with the buffer, and the notification. Owns the
/// buffer, the destination address (on the heap) and a share of the socket until then.
///
/// With a registered buffer ([`crate::FixedBuf`]) it uses `IORING_RECVSEND_FIXED_BUF`.
///
/// # Examples
///
/// ```
/// use std::io::Read as _;
/// use uring_ops::{ops::SendZc, Uring};
/// let mut ring = Uring::new(8)?;
/// # if !ring.supports(uring_ops::core::sys::IORING_OP_SEND_ZC as u8) { return Ok(()); }
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let client = std::net::TcpStream::connect(listener.local_addr()?)?;
/// let (mut server, _) = listener.accept()?;
/// let t = ring.push(SendZc::new(client, b"zero-copy".to_vec()).report_usage())?;
/// let sent = ring.wait(t)?;
/// assert_eq!(sent.result?, 9);
/// assert!(sent.notification.is_some(), "the buffer came back after the notification");
/// let mut got = [0u8; 9];
/// server.read_exact(&mut got)?;
/// assert_eq!(&got, b"zero-copy");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SendZc<B: IoBuf> {
    op: SendZcOp<B>,
}

impl<B: IoBuf> SendZc<B> {
    /// Sends `buf`'s data (up to `u32::MAX` bytes) on `file`.
    pub fn new(file: impl crate::IntoTarget, buf: B) -> Self {
        SendZc {
            op: SendZcOp::new(file, buf),
        }
    }

    /// `MSG_*` flags (`send(2)`).
    pub fn flags(mut self, flags: i32) -> Self {
        self.op = self.op.flags(flags);
        self
    }

    /// Sends at most the first `len` bytes.
    pub fn len(mut self, len: u32) -> Self {
        self.op = self.op.len(len);
        self
    }

    /// Sends to `addr` (an unconnected datagram socket's destination).
    pub fn to(mut self, addr: impl Into<SockAddr>) -> Self {
        self.op.dest = DestAddr::to(addr.into());
        self
    }

    /// Asks the notification to say whether the kernel had to copy the data after all
    /// ([`ZcNotification::copied`]; `IORING_SEND_ZC_REPORT_USAGE`, Linux 6.2).
    pub fn report_usage(mut self) -> Self {
        self.op.zc_flags |= sys::IORING_SEND_ZC_REPORT_USAGE as u16;
        self
    }

    /// Tries the send only once the socket is writable (`IORING_RECVSEND_POLL_FIRST`).
    pub fn poll_first(mut self) -> Self {
        self.op.zc_flags |= sys::IORING_RECVSEND_POLL_FIRST as u16;
        self
    }

    /// The buffer, back, without sending.
    pub fn into_buf(self) -> B {
        self.op.buf
    }
}

/// Sends a message without copying its data (`IORING_OP_SENDMSG_ZC`, Linux 6.1): as
/// [`crate::ops::SendMsg`], with the two completions of [`SendZc`]. Its ticket gives a
/// [`ZcSent`] with the buffers.
#[derive(Debug)]
pub struct SendMsgZc<B: IoBuf> {
    op: SendMsgZcOp<B>,
}

impl<B: IoBuf> SendMsgZc<B> {
    /// Sends `bufs` (each its data) on `file`.
    pub fn new(file: impl crate::IntoTarget, bufs: Vec<B>) -> Self {
        SendMsgZc {
            op: SendMsgZcOp::new(file, bufs),
        }
    }

    /// `MSG_*` flags (`sendmsg(2)`).
    pub fn flags(mut self, flags: i32) -> Self {
        self.op = self.op.flags(flags);
        self
    }

    /// Sends to `addr` (`msg_name`).
    pub fn to(mut self, addr: impl Into<SockAddr>) -> Self {
        self.op.msg.set_name(addr.into());
        self
    }

    /// Sends `control` as ancillary data (`msg_control`).
    pub fn control(mut self, control: Vec<u8>) -> Self {
        self.op.msg.set_control(control);
        self
    }

    /// As [`SendZc::report_usage`].
    pub fn report_usage(mut self) -> Self {
        self.op.zc_flags |= sys::IORING_SEND_ZC_REPORT_USAGE as u16;
        self
    }
}

/// The notification of a zero-copy send: the kernel no longer uses the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZcNotification {
    res: u32,
    usage: bool,
}

impl ZcNotification {
    /// With [`SendZc::report_usage`]: whether the kernel copied the data after all (it does
    /// for loopback, for instance), `None` without it.
    pub fn copied(&self) -> Option<bool> {
        self.usage
            .then_some(self.res & sys::IORING_NOTIF_USAGE_ZC_COPIED != 0)
    }
}

/// What a zero-copy send gives back, once both its completions have arrived.
#[derive(Debug)]
pub struct ZcSent<T> {
    /// The send's own completion: the byte count (or the errno).
    pub result: io::Result<usize>,
    /// The buffer (for [`SendMsgZc`], the buffers).
    pub buf: T,
    /// The notification, when the kernel posted one (it does whenever the send's completion
    /// says one follows, `IORING_CQE_F_MORE`; a send that failed before using the buffer has
    /// none).
    pub notification: Option<ZcNotification>,
}

/// The in-ring form of a zero-copy send: one SQE, two completions.
#[doc(hidden)]
pub struct ZcEntry<O> {
    op: O,
    usage: bool,
    /// The send's completion.
    sent: Option<(i32, u32)>,
    /// The notification's result.
    notif: Option<u32>,
}

impl<O> fmt::Debug for ZcEntry<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZcEntry")
            .field("sent", &self.sent)
            .field("notif", &self.notif)
            .finish_non_exhaustive()
    }
}

impl<O> sealed::Sealed for ZcEntry<O> {}

// SAFETY: `prepare` is the op's (its contract holds, as does `SQE_POINTS_INTO_SELF`'s). The
// entry finishes only when no completion can follow: the send's completion without
// `IORING_CQE_F_MORE` (no notification comes), or both the send's and the notification
// (`IORING_CQE_F_NOTIF`), which the kernel posts once it no longer uses the buffer. No op can
// set skip-success.
unsafe impl<T: Send + 'static, O: Op<Output = (io::Result<usize>, T)>> Entry for ZcEntry<O> {
    type Output = ZcSent<T>;
    const SQE_POINTS_INTO_SELF: bool = O::SQE_POINTS_INTO_SELF;

    fn sqe_count(&self) -> u32 {
        1
    }

    fn check(&self, ops: &OpCheck) -> Result<()> {
        check_op(&self.op, ops)
    }

    fn prepare(&mut self, _i: u32, sqe: &mut Sqe) {
        prepare_op(&mut self.op, sqe);
    }

    fn on_cqe(&mut self, _sub: u32, res: i32, flags: u32) -> Progress {
        if flags & sys::IORING_CQE_F_NOTIF != 0 {
            self.notif = Some(res as u32);
        } else {
            self.sent = Some((res, flags));
        }
        Progress::done_if(match self.sent {
            Some((_, f)) => f & sys::IORING_CQE_F_MORE == 0 || self.notif.is_some(),
            None => false,
        })
    }

    fn finish(self) -> ZcSent<T> {
        let (res, flags) = self.sent.unwrap_or((-libc::ECANCELED, 0));
        let (result, buf) = self.op.complete(res, flags);
        ZcSent {
            result,
            buf,
            notification: self.notif.map(|res| ZcNotification {
                res,
                usage: self.usage,
            }),
        }
    }
}

macro_rules! zc_submit {
    ($outer:ident, $inner:ident, $out:ty) => {
        impl<B: IoBuf> sealed::Sealed for $outer<B> {}

        impl<B: IoBuf> Submit for $outer<B> {
            type Output = ZcSent<$out>;
            type Entry = ZcEntry<$inner<B>>;

            fn into_entry(self) -> ZcEntry<$inner<B>> {
                ZcEntry {
                    usage: self.op.zc_flags & sys::IORING_SEND_ZC_REPORT_USAGE as u16 != 0,
                    op: self.op,
                    sent: None,
                    notif: None,
                }
            }

            fn from_entry(e: ZcEntry<$inner<B>>) -> Self {
                $outer { op: e.op }
            }
        }
    };
}

zc_submit!(SendZc, SendZcOp, B);
zc_submit!(SendMsgZc, SendMsgZcOp, Vec<B>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;

    #[test]
    fn finishes_after_the_notification_or_without_one() {
        let more = sys::IORING_CQE_F_MORE;
        let notif = sys::IORING_CQE_F_NOTIF;
        let mut e = SendZc::new(Target::fixed(0), vec![1u8; 4])
            .report_usage()
            .into_entry();
        assert!(!e.on_cqe(0, 4, more).is_done(), "a notification follows");
        assert!(e
            .on_cqe(0, sys::IORING_NOTIF_USAGE_ZC_COPIED as i32, notif)
            .is_done());
        let out = e.finish();
        assert_eq!(out.result.unwrap(), 4);
        assert_eq!(out.buf, [1; 4]);
        assert_eq!(out.notification.unwrap().copied(), Some(true));
        // A failed send without a notification.
        let mut e = SendZc::new(Target::fixed(0), vec![0u8; 4]).into_entry();
        assert!(e.on_cqe(0, -libc::EPIPE, 0).is_done());
        let out = e.finish();
        assert_eq!(out.result.unwrap_err().raw_os_error(), Some(libc::EPIPE));
        assert!(out.notification.is_none());
        // Whatever the order the two arrive in.
        let mut e = SendZc::new(Target::fixed(0), vec![0u8; 4]).into_entry();
        assert!(!e.on_cqe(0, 0, notif).is_done());
        assert!(e.on_cqe(0, 4, more).is_done());
        assert_eq!(e.finish().notification.unwrap().copied(), None);
    }
}
