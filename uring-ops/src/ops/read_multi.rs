//! Reads into buffers the kernel picks from a provided-buffer group: `READ` with
//! `IOSQE_BUFFER_SELECT`, and its multishot form `READ_MULTISHOT`.

use super::define::op;
use crate::multishot::{Multishot, MultishotOp};
use crate::pbuf::ProvidedBuf;
use std::io;
use uring_core::{sys, Sqe};

op! {
    /// Reads into a buffer the kernel picks from a provided-buffer ring or group: pushed as is,
    /// once (`IORING_OP_READ` with `IOSQE_BUFFER_SELECT`, Linux 5.7); in its
    /// [`ReadMulti::multishot`] form, again each time data is ready, until the group runs out
    /// of buffers, the end of file or an error (`IORING_OP_READ_MULTISHOT`, Linux 6.7; pipes,
    /// sockets, eventfds and other pollable files only).
    ///
    /// Owns a share of the file and of the ring (or group), whose memory the kernel writes
    /// into, until completion. Returns the buffer read into as an owned [`ProvidedBuf`]
    /// (empty at the end of the file), which goes back to its ring when dropped; `ENOBUFS`
    /// when the group is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write as _;
    /// use uring_ops::{ops::ReadMulti, BufRing, Fd, Uring};
    /// let mut ring = Uring::new(8)?;
    /// let bufs = BufRing::register(&ring, 4, 64)?;
    /// let (rx, mut tx) = std::os::unix::net::UnixStream::pair()?;
    /// tx.write_all(b"hello")?;
    /// let t = ring.push(ReadMulti::new(rx, &bufs))?;
    /// assert_eq!(&ring.wait(t)??[..], b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct ReadMulti {
        /// Reads `file` (at its position) into buffers of `group` (a [`crate::BufRing`] or
        /// [`crate::BufGroup`]).
        pub fn new { file: file(), group: group() }
        set {
            /// Reads at most `len` bytes (0, the default: a whole buffer). One-shot only: the
            /// multishot form fills whole buffers.
            len: u32 = 0,
        }
    }
    opcode = sys::IORING_OP_READ;
    prepare(op, sqe) {
        let size = op.group.buf_size();
        let len = if op.len == 0 { size } else { op.len.min(size) };
        sqe.set_target(&op.file)
            .set_group(&op.group)
            .set_len(len)
            .set_off(u64::MAX);
    }
    complete(op, res, flags) -> io::Result<ProvidedBuf> { op.group.take_one(res, flags) }
    // Unredeemed, the buffer the completion names goes back to its ring.
    discard(op, res, flags) { drop(crate::Op::complete(op, res, flags)); }
}

impl ReadMulti {
    /// The multishot form (`IORING_OP_READ_MULTISHOT`, Linux 6.7): one completion per read,
    /// each with a buffer, flagged `IORING_CQE_F_MORE`, until it stops.
    pub fn multishot(self) -> Multishot<ReadMulti> {
        Multishot::new(self)
    }

    /// The multishot opcode, for probes and allowlists (the one-shot form is `READ`).
    pub const MULTISHOT_OPCODE: u8 = sys::IORING_OP_READ_MULTISHOT as u8;
}

// SAFETY: the multishot form changes the opcode, the offset and the length (numbers); the SQE
// names nothing more than `prepare`'s (the file, kept open; the group, held by the op).
unsafe impl MultishotOp for ReadMulti {
    /// The buffer of one read.
    type Item = io::Result<ProvidedBuf>;

    fn multishot_opcode(&self) -> u8 {
        Self::MULTISHOT_OPCODE
    }

    fn prepare_multishot(&mut self, sqe: &mut Sqe) {
        // The multishot read takes no offset other than the file position (0 or -1), and
        // fills whole buffers (a length is refused before Linux 6.12).
        sqe.set_off(0).set_len(0);
    }

    fn item(&mut self, res: i32, flags: u32) -> io::Result<ProvidedBuf> {
        self.group.take_one(res, flags)
    }
}
