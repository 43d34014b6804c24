//! Commands for a file's driver: `URING_CMD` (the 16-byte form).

use super::define::op;
use crate::fd::IntoTarget;
use crate::op::res_to_io;
use std::io;
use uring_core::sys;

/// What a [`UringCmd`] may keep alive for its command: anything `Send + 'static`.
pub trait CmdKeep: Send + 'static {}
impl<T: Send + 'static> CmdKeep for T {}

op! {
    /// A driver-specific command for a file (`IORING_OP_URING_CMD`, Linux 5.19): a socket
    /// command (`SOCKET_URING_OP_*`, Linux 6.7), an NVMe passthrough, a block-device discard
    /// (Linux 6.12), ... in the 16 bytes of a 64-byte SQE. (The 80-byte form needs a ring set
    /// up with `IORING_SETUP_SQE128`.)
    ///
    /// What the command does with its bytes is up to the driver: they may hold addresses it
    /// reads or writes. So a command is made with `unsafe` ([`UringCmd::new`]), and keeps
    /// alive until completion whatever it names (`keep`: a buffer, a boxed struct), besides a
    /// share of the file. Returns the driver's result (a count, or a value) and `keep`.
    pub struct UringCmd<K: CmdKeep> {
        fn with { file: file(), cmd_op: plain(u32), cmd: plain([u8; 16]), keep: plain(K) }
    }
    opcode = sys::IORING_OP_URING_CMD;
    prepare(op, sqe) {
        sqe.set_target(&op.file).set_cmd_op(op.cmd_op).set_cmd(&op.cmd);
    }
    complete(op, res, _flags) -> (io::Result<u32>, K) { (res_to_io(res), op.keep) }
}

impl<K: CmdKeep> UringCmd<K> {
    /// Command `cmd_op` with the 16 bytes `cmd` for `file`'s driver, keeping `keep` until it
    /// completes.
    ///
    /// # Safety
    ///
    /// Every address the driver takes from `cmd` (or from memory it points to) must stay valid
    /// for what the driver does with it until the command completes: point into memory `keep`
    /// owns on the heap (an address into `keep` itself would move with the op), or memory
    /// that lives for the program.
    pub unsafe fn new(file: impl IntoTarget, cmd_op: u32, cmd: [u8; 16], keep: K) -> Self {
        Self::with(file, cmd_op, cmd, keep)
    }
}
