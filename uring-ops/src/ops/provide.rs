//! The older provided-buffer interface: `PROVIDE_BUFFERS`, `REMOVE_BUFFERS` (Linux 5.7), on a
//! [`crate::BufGroup`].

use super::define::op;
use crate::op::res_to_io;
use std::io;
use uring_core::sys;

op! {
    /// Hands the group's free buffers to the kernel (`IORING_OP_PROVIDE_BUFFERS`, Linux 5.7),
    /// for the receives with buffer select pushed to the same io_uring to fill.
    ///
    /// Takes the first run of consecutive free buffers of the group when made (a dropped op
    /// gives them back). Owns a share of the group, whose memory the kernel writes into later,
    /// until completion. Returns how many buffers it provided (`EINVAL` when the group had
    /// none free), after which they are the kernel's until a receive reports one or
    /// [`RemoveBuffers`] takes them back.
    pub struct ProvideBuffers {
        /// Provides the free buffers of `group` (a [`crate::BufGroup`]).
        pub fn new { run: provision() }
    }
    opcode = sys::IORING_OP_PROVIDE_BUFFERS;
    prepare(op, sqe) { sqe.set_provision(&mut op.run); }
    complete(op, res, _flags) -> io::Result<u16> {
        let mut op = op;
        let n = op.run.n;
        op.run.settle(res);
        res_to_io(res).map(|_| n)
    }
    check(op) {
        if op.run.group.is_ring() {
            return Err(crate::Error::BadArgument {
                op: "ProvideBuffers",
                why: "a BufRing's buffers return by themselves; ProvideBuffers takes a BufGroup",
            });
        }
        if op.run.n == 0 {
            return Err(crate::Error::BadArgument {
                op: "ProvideBuffers",
                why: "the group has no free buffer to provide",
            });
        }
        Ok(())
    }
    discard(op, res, flags) { drop(crate::Op::complete(op, res, flags)); }
}

op! {
    /// Takes up to `n` of the group's buffers back from the kernel
    /// (`IORING_OP_REMOVE_BUFFERS`, Linux 5.7).
    ///
    /// Owns a share of the group until completion. Returns how many buffers were removed (0,
    /// or `ENOENT` on some kernels, when it held none of the group's; on some kernels, 6.1's
    /// among them, one more than it removed when it ran out). The kernel does not say which: they stay counted as
    /// the kernel's (see [`crate::BufGroup`]).
    pub struct RemoveBuffers {
        /// Removes up to `n` buffers of `group` (a [`crate::BufGroup`]).
        pub fn new { group: group(), n: plain(u16) }
    }
    opcode = sys::IORING_OP_REMOVE_BUFFERS;
    prepare(op, sqe) { sqe.set_fd(i32::from(op.n)).set_buf_group(op.group.bgid()); }
    complete(_op, res, _flags) -> io::Result<u32> { res_to_io(res) }
    check(op) {
        if op.group.is_ring() || op.n == 0 {
            return Err(crate::Error::BadArgument {
                op: "RemoveBuffers",
                why: "removes 1..=65535 buffers of a BufGroup (not a BufRing)",
            });
        }
        Ok(())
    }
}
