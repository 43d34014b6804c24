//! A message into a ring without a ring to send it from (`IORING_REGISTER_SEND_MSG_RING`).

use super::blind;
use crate::error::Result;
use crate::sqe::Sqe;
use std::os::fd::{AsRawFd, BorrowedFd};
use uring_sys as sys;

/// `IORING_REGISTER_SEND_MSG_RING` (Linux 6.13): posts a completion with `user_data` and the
/// result `res` into the ring `target`, now, from a thread that needs no ring of its own (the
/// synchronous form of `IORING_OP_MSG_RING` with `IORING_MSG_DATA`). With `flags`, the
/// completion carries those CQE flags (`IORING_MSG_RING_FLAGS_PASS`); without, none.
///
/// The message lands as the kernel posts it: in the target's CQ, or for a `DEFER_TASKRUN`
/// target, once its submitting thread next waits.
///
/// # Errors
///
/// From the kernel: `EBADF` for a closed `target`, `EBADFD` for a `target` that is not a ring,
/// or is disabled ([`crate::Builder::disabled`] and not yet enabled), `EOVERFLOW` when the
/// target's CQ is full and cannot take an overflow entry, `EINVAL` before Linux 6.13.
///
/// # Safety
///
/// The completion must not be one that whoever reaps `target` could take for one of its own
/// requests' (a `uring-ops` ring routes completions by user data alone, and would take it for
/// an op's, freeing what the kernel may still use): as for an SQE posting into another ring
/// (see [`crate::Reservation::commit`]).
pub unsafe fn send_msg_ring(
    target: BorrowedFd<'_>,
    user_data: u64,
    res: i32,
    flags: Option<u32>,
) -> Result<()> {
    let mut sqe = Sqe::zeroed();
    sqe.set_opcode(sys::IORING_OP_MSG_RING as u8)
        .set_fd(target.as_raw_fd())
        .set_addr(u64::from(sys::IORING_MSG_DATA))
        .set_len(res as u32)
        .set_off(user_data);
    if let Some(cqe_flags) = flags {
        // `msg_ring_flags` shares the op-flags word; the CQE flags travel in `file_index`.
        sqe.set_op_flags(sys::IORING_MSG_RING_FLAGS_PASS)
            .set_file_index(cqe_flags);
    }
    // SAFETY: `sqe` is a live `io_uring_sqe`, one entry as `nr_args` says; the kernel only
    // reads it (a data message names no memory). What the completion means to the target's
    // owner is the caller's promise (above).
    unsafe {
        blind(
            "IORING_REGISTER_SEND_MSG_RING",
            sys::IORING_REGISTER_SEND_MSG_RING,
            (sqe.as_raw_mut() as *mut sys::io_uring_sqe).cast(),
            1,
        )
    }?;
    Ok(())
}
