//! Reads into buffers the kernel picks from a provided-buffer group: `READ` with
//! `IOSQE_BUFFER_SELECT`, and its multishot form `READ_MULTISHOT`.

use super::define::op;
use crate::multishot::{Multishot, MultishotOp};
use crate::op::res_to_io;
use std::io;
use uring_core::{sys, Sqe, SqeFlags};

/// What one read into a provided buffer gave: how many bytes, into which buffer of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvidedRead {
    /// Bytes read (0: end of file, or nothing ready on a non-blocking file).
    pub len: usize,
    /// The id of the buffer the kernel filled (`IORING_CQE_F_BUFFER`), now the reader's to
    /// consume and give back to the group; `None` when the kernel used none.
    pub buf_id: Option<u16>,
}

/// The result of one completion of a [`ReadMulti`].
fn provided(res: i32, flags: u32) -> io::Result<ProvidedRead> {
    let len = res_to_io(res)? as usize;
    let buf_id = (flags & sys::IORING_CQE_F_BUFFER != 0)
        .then_some((flags >> sys::IORING_CQE_BUFFER_SHIFT) as u16);
    Ok(ProvidedRead { len, buf_id })
}

op! {
    /// Reads into a buffer the kernel picks from a provided-buffer group: pushed as is, once
    /// (`IORING_OP_READ` with `IOSQE_BUFFER_SELECT`, Linux 5.7); in its [`ReadMulti::multishot`]
    /// form, again each time data is ready, until the group runs out of buffers, the end of
    /// file or an error (`IORING_OP_READ_MULTISHOT`, Linux 6.7; pipes, sockets, eventfds and
    /// other pollable files only).
    ///
    /// Owns a share of the file until completion; the buffers belong to the group (provided
    /// with `PROVIDE_BUFFERS` or a registered buffer ring, whose owner keeps them valid), and
    /// the kernel says which one it filled. Returns a [`ProvidedRead`] per completion;
    /// `ENOBUFS` when the group is empty.
    pub struct ReadMulti {
        /// Reads `file` (at its position) into buffers of group `group`.
        pub fn new { file: file(), group: plain(u16) }
        set {
            /// Reads at most `len` bytes each time (0, the default: a whole buffer).
            len: u32 = 0,
        }
    }
    opcode = sys::IORING_OP_READ;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_len(op.len)
            .set_off(u64::MAX)
            .set_buf_group(op.group)
            .add_flags(SqeFlags::BUFFER_SELECT);
    }
    complete(_op, res, flags) -> io::Result<ProvidedRead> { provided(res, flags) }
}

impl ReadMulti {
    /// The multishot form (`IORING_OP_READ_MULTISHOT`, Linux 6.7): one completion per read,
    /// flagged `IORING_CQE_F_MORE`, until it stops.
    pub fn multishot(self) -> Multishot<ReadMulti> {
        Multishot::new(self)
    }

    /// The multishot opcode, for probes and allowlists (the one-shot form is `READ`).
    pub const MULTISHOT_OPCODE: u8 = sys::IORING_OP_READ_MULTISHOT as u8;
}

// SAFETY: the multishot form changes the opcode and the offset (a number); the SQE names
// nothing more than `prepare`'s (the file, kept open; the group is a number).
unsafe impl MultishotOp for ReadMulti {
    type Item = io::Result<ProvidedRead>;

    fn multishot_opcode(&self) -> u8 {
        Self::MULTISHOT_OPCODE
    }

    fn prepare_multishot(&mut self, sqe: &mut Sqe) {
        // The multishot read takes no offset other than the file position (0 or -1).
        sqe.set_off(0);
    }

    fn item(res: i32, flags: u32) -> io::Result<ProvidedRead> {
        provided(res, flags)
    }
}
