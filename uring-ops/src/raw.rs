//! The raw path: a prepared SQE pushed through a [`crate::Uring`] or [`crate::Context`], with the
//! ring's bookkeeping (user data, tickets, cancel-on-drop) but no typed op around it.

use crate::error::{Error, Result};
use crate::op::{sealed, Entry, OpCheck, Submit};
use uring_core::{Sqe, SqeFlags};

/// A prepared SQE, pushed as is. Its user data is the ring's (overwritten at push); everything
/// else is the caller's.
///
/// This is the zero-overhead escape hatch: the SQE is copied into the ring at push, and its
/// completion comes back through the [`crate::Ticket`] as a [`RawCompletion`]. The unsafety
/// is all at construction ([`RawSqe::new`]).
pub struct RawSqe {
    sqe: Sqe,
}

impl std::fmt::Debug for RawSqe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RawSqe").field(&self.sqe).finish()
    }
}

impl RawSqe {
    /// Wraps a prepared SQE.
    ///
    /// # Safety
    ///
    /// As for `uring_core::Reservation::commit`: every address, length and file the SQE names
    /// must stay valid, for what its opcode does with it, until its completion is redeemed or,
    /// if its ticket is dropped, until the ring is dropped (the ring keeps nothing of the
    /// caller's alive). Link flags link it to whatever is pushed next.
    pub unsafe fn new(sqe: Sqe) -> Self {
        RawSqe { sqe }
    }

    /// The SQE, back.
    pub fn into_sqe(self) -> Sqe {
        self.sqe
    }
}

/// The completion of a [`RawSqe`]: the kernel's result and CQE flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawCompletion {
    /// The result: a count or value, or a negative errno.
    pub res: i32,
    /// The CQE flags (`IORING_CQE_F_*`).
    pub flags: u32,
}

impl RawCompletion {
    /// The result as `io::Result`.
    pub fn result(&self) -> std::io::Result<u32> {
        crate::op::res_to_io(self.res)
    }
}

// SAFETY: the SQE names only what the caller vouched for at `RawSqe::new` (memory outside
// the entry, so `SQE_POINTS_INTO_SELF` is false); one SQE yields one completion
// (skip-success is refused at push).
unsafe impl Entry for RawSqe {
    type Output = RawCompletion;
    const SQE_POINTS_INTO_SELF: bool = false;
    const SINGLE: bool = true;

    fn sqe_count(&self) -> u32 {
        1
    }

    fn check(&self, ops: &OpCheck) -> Result<()> {
        if self.sqe.flags().contains(SqeFlags::CQE_SKIP_SUCCESS) {
            return Err(Error::SkipSuccess);
        }
        ops.check_opcode(self.sqe.opcode(), "RawSqe")
    }

    fn prepare(&mut self, _i: u32, sqe: &mut Sqe) {
        *sqe = self.sqe.clone();
    }

    fn on_cqe(&mut self, _sub: u32, _res: i32, _flags: u32) -> bool {
        true
    }

    fn finish(self) -> RawCompletion {
        RawCompletion { res: 0, flags: 0 }
    }

    fn finish_with(self, res: i32, flags: u32) -> RawCompletion {
        RawCompletion { res, flags }
    }
}

impl sealed::Sealed for RawSqe {}

impl Submit for RawSqe {
    type Output = RawCompletion;
    type Entry = RawSqe;

    fn into_entry(self) -> RawSqe {
        self
    }

    fn from_entry(e: RawSqe) -> RawSqe {
        e
    }
}
