//! Moving bytes between files through a pipe, without copying them to user space: `SPLICE`,
//! `TEE`.

use super::define::op;
use crate::fd::IntoTarget;
use crate::op::{res_to_io, short_transfer};
use std::io;
use uring_core::sys;

bitflags::bitflags! {
    /// `SPLICE_F_*` flags (`splice(2)`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SpliceFlags: u32 {
        /// Move pages rather than copy them, where possible (a hint).
        const MOVE = libc::SPLICE_F_MOVE;
        /// Do not block on the pipes.
        const NONBLOCK = libc::SPLICE_F_NONBLOCK;
        /// More data will follow (a hint for sockets).
        const MORE = libc::SPLICE_F_MORE;
    }
}

/// An offset for the kernel: `-1` for none (the file position; the only choice for a pipe).
fn offset(o: Option<u64>) -> u64 {
    o.unwrap_or(u64::MAX)
}

op! {
    /// Moves up to `len` bytes from one file to another, one of which must be a pipe
    /// (`IORING_OP_SPLICE`, Linux 5.7): the `splice(2)` of io_uring.
    ///
    /// Owns a share of both files until completion (either may be a registered-file slot).
    /// Returns the number of bytes moved (0 at the end of the input). Inside a chain, fewer
    /// bytes than asked for count as a failure, as for reads.
    pub struct Splice {
        fn with { file_in: file(), off_in: plain(Option<u64>), file_out: file(), off_out: plain(Option<u64>), len: plain(u32) }
        set {
            /// `SPLICE_F_*` flags.
            flags: SpliceFlags = SpliceFlags::empty(),
        }
    }
    opcode = sys::IORING_OP_SPLICE;
    prepare(op, sqe) {
        let mut flags = op.flags.bits();
        if op.file_in.is_fixed() {
            flags |= sys::SPLICE_F_FD_IN_FIXED;
        }
        sqe.set_target(&op.file_out)
            .set_off(offset(op.off_out))
            .set_splice_off_in(offset(op.off_in))
            .set_splice_fd_in(op.file_in.raw())
            .set_len(op.len)
            .set_op_flags(flags);
    }
    complete(_op, res, _flags) -> io::Result<usize> { res_to_io(res).map(|n| n as usize) }
    fails_link(op, res) { short_transfer(res, op.len as usize) }
}

impl Splice {
    /// Moves up to `len` bytes from `file_in` (at `off_in`, or its position when `None`) to
    /// `file_out` (at `off_out`, or its position). A pipe's offset must be `None`.
    pub fn new(
        file_in: impl IntoTarget,
        off_in: Option<u64>,
        file_out: impl IntoTarget,
        off_out: Option<u64>,
        len: u32,
    ) -> Self {
        Self::with(file_in, off_in, file_out, off_out, len)
    }
}

op! {
    /// Copies up to `len` bytes from one pipe to another without consuming them
    /// (`IORING_OP_TEE`, Linux 5.8): the `tee(2)` of io_uring.
    ///
    /// Owns a share of both pipes until completion (either may be a registered-file slot).
    /// Returns the number of bytes copied. Inside a chain, fewer than asked for count as a
    /// failure.
    pub struct Tee {
        /// Copies up to `len` bytes from pipe `pipe_in` to pipe `pipe_out`.
        pub fn new { pipe_in: file(), pipe_out: file(), len: plain(u32) }
        set {
            /// `SPLICE_F_*` flags.
            flags: SpliceFlags = SpliceFlags::empty(),
        }
    }
    opcode = sys::IORING_OP_TEE;
    prepare(op, sqe) {
        let mut flags = op.flags.bits();
        if op.pipe_in.is_fixed() {
            flags |= sys::SPLICE_F_FD_IN_FIXED;
        }
        sqe.set_target(&op.pipe_out)
            .set_splice_fd_in(op.pipe_in.raw())
            .set_len(op.len)
            .set_op_flags(flags);
    }
    complete(_op, res, _flags) -> io::Result<usize> { res_to_io(res).map(|n| n as usize) }
    fails_link(op, res) { short_transfer(res, op.len as usize) }
}
