//! What the ring does on its own behalf, for [`super::Uring`] and [`crate::Context`] alike:
//! routing a completion to its op, cancelling everything in flight, and cancelling links the
//! kernel will not end.

use super::{CANCEL_LINK, INTERNAL};
use crate::slab::{is_internal, key_of, Completed, Slab};
use std::time::Duration;
use uring_core::{deadline_after, sys, CompletionQueue, Kernel, SubmissionQueue};

/// Cancels every op in flight (one `ASYNC_CANCEL` with `IORING_ASYNC_CANCEL_ANY`), then reaps
/// into `slab` until nothing is in flight or `timeout` passes. Returns how many entries are still
/// in flight: the slab's `Drop` leaks those rather than free memory the kernel may still use.
///
/// Shared by [`Uring`] and [`crate::Context`] (which calls it from `Drop`, with `&mut` access to
/// both halves).
pub(crate) fn cancel_all(
    sq: &mut SubmissionQueue<Kernel>,
    cq: &mut CompletionQueue<Kernel>,
    slab: &mut Slab,
    timeout: Duration,
) -> usize {
    if slab.in_flight() == 0 {
        return 0;
    }
    if sq.backend().is_inherited() {
        // A forked child's copy of the ring: the ops in flight are the parent's (the kernel
        // acts on the parent's memory for them), so cancelling would end the parent's ops, and
        // no completion for them is this process's to wait for. Leak the copies instead.
        return slab.in_flight();
    }
    let deadline = deadline_after(timeout);
    let reap = |cq: &mut CompletionQueue<Kernel>, slab: &mut Slab| {
        for cqe in cq.batch() {
            dispatch(slab, cqe);
        }
    };
    // Make room for the cancel SQE if needed.
    if sq.submit().is_err() {
        reap(cq, slab);
        let _ = sq.submit();
    }
    // On an SQPOLL ring the poller thread empties the SQ on its own time: wait for it.
    if sq.free() == 0 {
        let _ = sq.wait_for_room(1);
    }
    if let Ok(mut r) = sq.reserve(1) {
        r.first()
            .set_opcode(sys::IORING_OP_ASYNC_CANCEL as u8)
            .set_fd(-1)
            .set_cancel_flags(sys::IORING_ASYNC_CANCEL_ANY)
            .set_user_data(INTERNAL);
        // SAFETY: a cancel-any SQE names no memory.
        unsafe { r.commit() };
    }
    while slab.in_flight() > 0 {
        if sq.submit().is_err() {
            reap(cq, slab);
            let _ = sq.submit();
        }
        reap(cq, slab);
        if slab.in_flight() == 0 {
            break;
        }
        if cq.wait_deadline(1, deadline).is_err() {
            // Timed out, or the ring failed: what is still in flight is leaked.
            break;
        }
    }
    slab.in_flight()
}

/// Queues an `IORING_OP_ASYNC_CANCEL` for each SQE that `slab` asks to cancel (see
/// [`crate::Entry::link_to_cancel`]), by its user data; they reach the kernel with the next
/// submit. What does not fit in the SQ stays asked for, for the next call.
///
/// The target is named by user data only, and each names an SQE of an entry in flight when it
/// was recorded: if that entry has finished since, the cancel finds nothing (a reused slot has
/// another generation, so another user data), and its completion, like that of every internal
/// SQE, is ignored.
#[cold]
#[inline(never)]
pub(crate) fn queue_link_cancels(sq: &mut SubmissionQueue<Kernel>, slab: &mut Slab) {
    let mut targets = slab.take_links_to_cancel();
    let mut queued = 0;
    for &target in &targets {
        let Ok(mut r) = sq.reserve(1) else {
            break;
        };
        r.first()
            .set_opcode(sys::IORING_OP_ASYNC_CANCEL as u8)
            .set_fd(-1)
            .set_addr(target)
            .set_user_data(CANCEL_LINK);
        // SAFETY: a cancel by user data names no memory.
        unsafe { r.commit() };
        queued += 1;
    }
    targets.drain(..queued);
    slab.ask_to_cancel(targets);
}

/// Routes one completion to its slot. Completions of the ring's own SQEs (user data with the
/// slot index of [`INTERNAL`]) are left alone and give `None`; otherwise the slot's key and
/// what the slab did with the completion.
#[inline]
pub(crate) fn dispatch(slab: &mut Slab, cqe: uring_core::Cqe) -> Option<(u64, Completed)> {
    let ud = cqe.user_data();
    // No separate test for the ring's own SQEs on the hot path: their slot index is one no
    // slot has, so the slab finds them stale with its bounds check, without touching a slot.
    let done = slab.complete(ud, cqe.raw_result(), cqe.raw_flags());
    if done == Completed::Stale {
        debug_assert!(is_internal(ud), "a completion for no live op: {cqe:?}");
        return None;
    }
    Some((key_of(ud), done))
}
