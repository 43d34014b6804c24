//! Messages between rings: `MSG_RING`.
//!
//! A message posts a completion into another ring. A ring of this crate routes completions by
//! user data alone, so a message carrying an arbitrary user data could end one of its ops
//! early and free memory the kernel still uses. The safe forms therefore only target a ring of
//! this crate through a [`RingFd`] its owner handed out, and post there a user data in the
//! range the ring keeps for itself: a wake-up ([`MsgRing::wake`]), or a descriptor passed into
//! its registered-file table ([`MsgRing::send_fd`]), whose completion the target ignores. A
//! message with any user data, for a ring whose owner reads raw completions, is `unsafe`
//! ([`MsgRing::data`]).

use super::define::op;
use crate::context::Context;
use crate::fd::{Dest, Fd, FixedFd, IntoTarget, NewSlot};
use crate::op::res_to_io;
use crate::uring::{Uring, PASSED, WAKE};
use std::io;
use std::os::fd::AsFd;
use uring_core::sys;

/// A ring that messages may target: a ring of this crate, whose owner made this handle (and so
/// agreed to be messaged). Holds a duplicate of the ring's descriptor, so the ring stays alive
/// in the kernel for as long as a message may reach it.
#[derive(Debug, Clone)]
pub struct RingFd {
    fd: Fd,
}

impl RingFd {
    /// A handle on `ring`, for [`MsgRing`] ops pushed to other rings.
    ///
    /// # Errors
    ///
    /// Duplicating the descriptor failed (`EMFILE`).
    pub fn of(ring: &Uring) -> io::Result<Self> {
        Ok(RingFd {
            fd: Fd::new(ring.ring().as_fd().try_clone_to_owned()?),
        })
    }

    /// A handle on `ctx`, for [`MsgRing`] ops pushed to other rings.
    ///
    /// # Errors
    ///
    /// Duplicating the descriptor failed (`EMFILE`).
    pub fn of_context(ctx: &Context) -> io::Result<Self> {
        Ok(RingFd {
            fd: Fd::new(ctx.as_fd().try_clone_to_owned()?),
        })
    }
}

/// What a [`MsgRing`] sends.
#[derive(Debug, Clone, Copy)]
enum Message {
    /// A completion of `res` and `user_data`.
    Data { res: u32, user_data: u64 },
    /// The file in the sender's slot `source`, into the target's slot `dest` (`file_index`),
    /// with a completion of `user_data` there.
    Fd {
        source: u32,
        dest: NewSlot,
        user_data: u64,
    },
}

op! {
    /// Posts a completion into another ring, or passes a registered file into its table
    /// (`IORING_OP_MSG_RING`, Linux 5.18; a descriptor, Linux 6.0).
    ///
    /// Owns a share of the target ring's descriptor until completion. Returns, for a
    /// descriptor sent, the slot it took in the target's table (for a given slot, that one);
    /// for data, 0. Errors: `EBADFD` when the target is no ring (or a disabled one),
    /// `EOVERFLOW` when the target's completion queue overflowed, `EBADF` when the source
    /// slot is empty, `ENFILE` when the target has no free slot.
    pub struct MsgRing {
        fn with { target: file(), msg: plain(Message) }
    }
    opcode = sys::IORING_OP_MSG_RING;
    prepare(op, sqe) {
        sqe.set_target(&op.target);
        match op.msg {
            Message::Data { res, user_data } => {
                sqe.set_addr(u64::from(sys::IORING_MSG_DATA))
                    .set_len(res)
                    .set_off(user_data);
            }
            Message::Fd { source, dest, user_data } => {
                sqe.set_addr(u64::from(sys::IORING_MSG_SEND_FD))
                    .set_addr3(u64::from(source))
                    .set_file_index(dest.file_index())
                    .set_off(user_data);
            }
        }
    }
    complete(op, res, _flags) -> io::Result<u32> {
        let n = res_to_io(res)?;
        Ok(match op.msg {
            // SAFETY: nothing is owned: a slot index, read from the result.
            Message::Fd { dest, .. } => unsafe { dest.created(n as i32, 0) }.index(),
            Message::Data { .. } => n,
        })
    }
}

impl MsgRing {
    /// Wakes the target: a [`crate::Context`]'s blocked [`crate::Context::wait_completions`]
    /// returns, as with [`crate::Context::wake`] (a [`Uring`] target ignores it).
    pub fn wake(target: &RingFd) -> Self {
        Self::with(
            &target.fd,
            Message::Data {
                res: 0,
                user_data: WAKE,
            },
        )
    }

    /// Passes the file in the sender's registered slot `source` into the target's table, at
    /// `dest` (Linux 6.0). The sender keeps its slot; the target gets its own reference to the
    /// file. With [`NewSlot::alloc`] the kernel picks a free slot of the target (never one in
    /// use), and the result says which; [`NewSlot::at`] replaces the target's file there, if
    /// any (its ops in flight keep theirs). The completion posted into the target carries a
    /// user data of the target's own range, which it ignores.
    pub fn send_fd(target: &RingFd, source: FixedFd, dest: NewSlot) -> Self {
        Self::with(
            &target.fd,
            Message::Fd {
                source: source.index(),
                dest,
                user_data: PASSED,
            },
        )
    }

    /// Posts a completion of result `res` and user data `user_data` into the ring `target`
    /// (its descriptor, or its slot in this ring's table).
    ///
    /// # Safety
    ///
    /// The target's owner must not take the completion for one of its own: a ring of this
    /// crate ([`Uring`], [`Context`]) routes completions by user data alone, and one with the
    /// user data of an op in flight there would end it while the kernel still uses its memory.
    /// Target only rings whose owner reads raw completions and expects this one.
    pub unsafe fn data(target: impl IntoTarget, res: u32, user_data: u64) -> Self {
        Self::with(target, Message::Data { res, user_data })
    }

    /// As [`MsgRing::send_fd`], for a ring that is not a [`RingFd`]: posts a completion of
    /// user data `user_data` there, whose result is the slot the file took.
    ///
    /// # Safety
    ///
    /// As for [`MsgRing::data`].
    pub unsafe fn send_fd_raw(
        target: impl IntoTarget,
        source: FixedFd,
        dest: NewSlot,
        user_data: u64,
    ) -> Self {
        Self::with(
            target,
            Message::Fd {
                source: source.index(),
                dest,
                user_data,
            },
        )
    }
}
