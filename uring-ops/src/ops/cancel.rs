//! Cancellation of in-flight ops: `ASYNC_CANCEL`.

use super::define::op;
use crate::fd::{IntoTarget, Target};
use crate::op::res_to_io;
use crate::uring::Ticket;
use std::io;
use uring_core::sys;

/// What an [`AsyncCancel`] matches.
#[derive(Debug, Clone)]
enum Match {
    /// The op whose SQE carried this user data.
    Key(u64),
    /// Ops on this file (`IORING_ASYNC_CANCEL_FD`, or `_FD_FIXED` for a fixed index), which
    /// the cancel keeps open: the kernel looks the descriptor up when the cancel runs.
    File(Target),
    /// Every op in the ring (`IORING_ASYNC_CANCEL_ANY`).
    Any,
}

op! {
    /// Cancels in-flight ops of this ring (`IORING_OP_ASYNC_CANCEL`, Linux 5.5): the one with a
    /// given key ([`AsyncCancel::new`], [`AsyncCancel::ticket`]), ops on a file
    /// ([`AsyncCancel::fd`], Linux 5.19), or any op ([`AsyncCancel::any`], Linux 5.19); with
    /// [`AsyncCancel::all`] (Linux 5.19), every match rather than the first.
    ///
    /// A cancelled op completes as usual, with `ECANCELED` (or `EINTR` for some ops already
    /// running), and still gives back what it owns through its own ticket: cancelling frees
    /// nothing.
    ///
    /// Owns a share of the file for [`AsyncCancel::fd`] (a key is a number the kernel compares;
    /// a key naming no op is harmless). Returns `Ok(0)` when one op was found and cancelled,
    /// `Ok(n)` with the number cancelled for `all`/`any`; `ENOENT` when nothing matched,
    /// `EALREADY` when the match was already running (cancellation was attempted), `EINVAL` on
    /// kernels older than 5.19 for the fd/any/all forms.
    #[derive(Clone)]
    pub struct AsyncCancel {
        fn matching { what: plain(Match) }
        state { all: bool = matches!(what, Match::Any) }
    }
    opcode = sys::IORING_OP_ASYNC_CANCEL;
    prepare(op, sqe) {
        let mut flags = 0;
        match &op.what {
            Match::Key(key) => {
                sqe.set_fd(-1).set_addr(*key);
            }
            Match::File(target) => {
                flags |= sys::IORING_ASYNC_CANCEL_FD;
                if target.is_fixed() {
                    flags |= sys::IORING_ASYNC_CANCEL_FD_FIXED;
                }
                // The fd field carries the descriptor (or index) to match, with no
                // `IOSQE_FIXED_FILE`: the cancel itself works on no file.
                sqe.set_fd(target.raw());
            }
            Match::Any => {
                flags |= sys::IORING_ASYNC_CANCEL_ANY;
                sqe.set_fd(-1);
            }
        }
        if op.all && !matches!(op.what, Match::Any) {
            flags |= sys::IORING_ASYNC_CANCEL_ALL;
        }
        sqe.set_cancel_flags(flags);
    }
    complete(_op, res, _flags) -> io::Result<u32> { res_to_io(res) }
}

impl AsyncCancel {
    /// Cancels the op whose SQE carried `user_data` (for ops of this crate, a ticket's
    /// [`Ticket::user_data`]).
    pub fn new(user_data: u64) -> Self {
        Self::matching(Match::Key(user_data))
    }

    /// Cancels the op (or the first link of the chain) that `ticket` stands for.
    pub fn ticket<T>(ticket: &Ticket<T>) -> Self {
        Self::new(ticket.user_data())
    }

    /// Cancels an op working on `file` (`IORING_ASYNC_CANCEL_FD`, or
    /// `IORING_ASYNC_CANCEL_FD_FIXED` for a registered-file index; Linux 5.19). The cancel
    /// keeps the file open until it completes, so it cannot match another file that took the
    /// number.
    pub fn fd(file: impl IntoTarget) -> Self {
        Self::matching(Match::File(file.into_target()))
    }

    /// Cancels every match, not just the first (`IORING_ASYNC_CANCEL_ALL`, Linux 5.19).
    /// Returns how many.
    pub fn all(mut self) -> Self {
        self.all = true;
        self
    }

    /// Cancels every op in flight in the ring (`IORING_ASYNC_CANCEL_ANY`, Linux 5.19). Returns
    /// how many.
    pub fn any() -> Self {
        Self::matching(Match::Any)
    }
}
