//! Cancellation of in-flight ops: `ASYNC_CANCEL`.

use crate::op::{res_to_io, Op, SqeOptions, Target};
use crate::uring::Ticket;
use std::io;
use uring_core::{sys, Sqe};

/// What an [`AsyncCancel`] matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// The op whose SQE carried this user data.
    Key(u64),
    /// Ops on this file (`IORING_ASYNC_CANCEL_FD`, or `_FD_FIXED` for a fixed index).
    Fd(Target),
    /// Every op in the ring (`IORING_ASYNC_CANCEL_ANY`).
    Any,
}

/// Cancels in-flight ops of this ring (`IORING_OP_ASYNC_CANCEL`, Linux 5.5): the one with a
/// given key ([`AsyncCancel::new`], [`AsyncCancel::ticket`]), ops on a file
/// ([`AsyncCancel::fd`], Linux 5.19), or any op ([`AsyncCancel::any`], Linux 5.19); with
/// [`AsyncCancel::all`] (Linux 5.19), every match rather than the first.
///
/// A cancelled op completes as usual, with `ECANCELED` (or `EINTR` for some ops already
/// running), and still gives back what it owns through its own ticket: cancelling frees
/// nothing.
///
/// Owns nothing (a key is a number the kernel compares; a key naming no op is harmless).
/// Returns `Ok(0)` when one op was found and cancelled, `Ok(n)` with the number cancelled for
/// `all`/`any`; `ENOENT` when nothing matched, `EALREADY` when the match was already running
/// (cancellation was attempted), `EINVAL` on kernels older than 5.19 for the fd/any/all forms.
#[derive(Debug, Clone, Copy)]
pub struct AsyncCancel {
    what: Match,
    all: bool,
    opts: SqeOptions,
}

impl AsyncCancel {
    /// Cancels the op whose SQE carried `user_data` (for ops of this crate, a ticket's
    /// [`Ticket::user_data`]).
    pub fn new(user_data: u64) -> Self {
        AsyncCancel {
            what: Match::Key(user_data),
            all: false,
            opts: SqeOptions::new(),
        }
    }

    /// Cancels the op (or the first link of the chain) that `ticket` stands for.
    pub fn ticket<T>(ticket: &Ticket<T>) -> Self {
        Self::new(ticket.user_data())
    }

    /// Cancels an op working on `target` (`IORING_ASYNC_CANCEL_FD`, or
    /// `IORING_ASYNC_CANCEL_FD_FIXED` for a fixed-file index; Linux 5.19).
    pub fn fd(target: impl Into<Target>) -> Self {
        AsyncCancel {
            what: Match::Fd(target.into()),
            all: false,
            opts: SqeOptions::new(),
        }
    }

    /// Cancels every op in flight in the ring (`IORING_ASYNC_CANCEL_ANY`, Linux 5.19). Returns
    /// how many.
    pub fn any() -> Self {
        AsyncCancel {
            what: Match::Any,
            all: true,
            opts: SqeOptions::new(),
        }
    }

    /// Cancels every match, not just the first (`IORING_ASYNC_CANCEL_ALL`, Linux 5.19).
    /// Returns how many.
    pub fn all(mut self) -> Self {
        self.all = true;
        self
    }
}
super::sqe_options!(AsyncCancel);

// SAFETY: a cancel names no memory: the key travels in `addr` as a number the kernel compares,
// never dereferences, and the fd is only matched against other requests.
unsafe impl Op for AsyncCancel {
    const OPCODE: u8 = sys::IORING_OP_ASYNC_CANCEL as u8;
    const NAME: &'static str = "AsyncCancel";
    // The SQE names no memory (a key, an fd, flags).
    const SQE_POINTS_INTO_SELF: bool = false;
    type Output = io::Result<u32>;

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        let mut flags = 0;
        sqe.set_opcode(Self::OPCODE);
        match self.what {
            Match::Key(key) => {
                sqe.set_fd(-1).set_addr(key);
            }
            Match::Fd(Target::Fd(fd)) => {
                flags |= sys::IORING_ASYNC_CANCEL_FD;
                sqe.set_fd(fd);
            }
            Match::Fd(Target::Fixed(index)) => {
                flags |= sys::IORING_ASYNC_CANCEL_FD | sys::IORING_ASYNC_CANCEL_FD_FIXED;
                sqe.set_fd(index as i32);
            }
            Match::Any => {
                flags |= sys::IORING_ASYNC_CANCEL_ANY;
                sqe.set_fd(-1);
            }
        }
        if self.all && self.what != Match::Any {
            flags |= sys::IORING_ASYNC_CANCEL_ALL;
        }
        sqe.set_cancel_flags(flags);
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    fn complete(self, res: i32, _flags: u32) -> io::Result<u32> {
        res_to_io(res)
    }
}
