//! Resizing a live ring's queues (`IORING_REGISTER_RESIZE_RINGS`).
//!
//! # Implementation notes
//!
//! The kernel allocates new rings, copies the SQEs between the SQ head and tail and the CQEs
//! between the CQ head and tail into them (keeping the free-running positions), and from then on
//! uses only the new memory, which the process must map anew at the usual offsets. What that
//! means here, step by step:
//!
//! 1. Resizing takes both queue halves by `&mut` ([`Ring::resize`], or
//!    [`Resize::apply_to_halves`] with both halves of one ring): no [`crate::Reservation`] and
//!    no [`crate::Batch`] (the only values holding pointers into the ring memory besides the
//!    halves) can be alive, and no other thread can be using either half.
//! 2. Committed SQEs are published and read CQEs handed back, so that the kernel carries over
//!    exactly the SQEs not yet consumed and the CQEs not yet read.
//! 3. After the kernel's answer, the new rings are mapped and replace the old ones in the
//!    backend; the old mappings are kept until the end. The SQEs and CQEs the kernel carried
//!    over are copied again, whole, from the old mappings (see [`RawSq::copy_sqes_from`]:
//!    kernels before a 2026 fix copied `SQE128`/`CQE32` entries wrong), and the new SQ index
//!    array is set up (the kernel leaves it zeroed, which would make every carried-over SQE
//!    read as SQE 0).
//! 4. The halves switch to the new views; then the old mappings are unmapped.
//!
//! Nothing is lost or duplicated: the positions carry over, the kernel posts new CQEs only
//! past the tail it copied (while step 3 rewrites only below it), and completions it could
//! not post (its overflow list) stay in the kernel until the next wait brings them in. The
//! kernel resizes only `DEFER_TASKRUN` rings, so no SQPOLL thread reads the SQ meanwhile;
//! SQPOLL rings are refused here anyway, since their poller would read the new SQ before
//! step 3.

use crate::backend::Kernel;
use crate::cqueue::CompletionQueue;
use crate::error::{Error, Result};
use crate::raw::{RawCq, RawSq};
use crate::ring::Ring;
use crate::setup::{check_sizes, RingInfo};
use crate::squeue::SubmissionQueue;
use uring_sys as sys;

const NAME: &str = "IORING_REGISTER_RESIZE_RINGS";

/// New sizes for a ring's queues, for [`Ring::resize`]: as at setup, `sq_entries` SQ entries
/// (rounded up to a power of two) and twice as many CQ entries unless
/// [`Resize::cq_entries`] says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    sq_entries: u32,
    cq_entries: Option<u32>,
    clamp: bool,
}

impl Resize {
    /// `sq_entries` SQ entries, and twice as many CQ entries.
    pub fn new(sq_entries: u32) -> Self {
        Resize {
            sq_entries,
            cq_entries: None,
            clamp: false,
        }
    }

    /// `n` CQ entries (`IORING_SETUP_CQSIZE`): at least as many as SQ entries.
    pub fn cq_entries(mut self, n: u32) -> Self {
        self.cq_entries = Some(n);
        self
    }

    /// Clamp sizes past the kernel's maxima to them instead of failing (`IORING_SETUP_CLAMP`).
    pub fn clamp(mut self) -> Self {
        self.clamp = true;
        self
    }

    /// Resizes the ring whose two halves these are, as [`Ring::resize`] does, for a ring
    /// split with [`Ring::into_split`]; returns the new `(sq_entries, cq_entries)`.
    ///
    /// # Errors
    ///
    /// As for [`Ring::resize`], and [`Error::Register`] when the halves are not of one ring.
    pub fn apply_to_halves(
        &self,
        sq: &mut SubmissionQueue<Kernel>,
        cq: &mut CompletionQueue<Kernel>,
    ) -> Result<(u32, u32)> {
        if !std::ptr::eq(sq.backend(), cq.backend()) {
            return Err(Error::Register {
                op: NAME,
                why: "the submission and completion halves are of different rings",
            });
        }
        if sq.backend().is_inherited() {
            return Err(Error::ForkedChild);
        }
        if sq.is_sqpoll() {
            return Err(Error::Register {
                op: NAME,
                why: "an SQPOLL ring cannot be resized: its poller would read the new SQ \
                      before the queue sets it up",
            });
        }
        check_sizes(self.sq_entries, self.cq_entries, self.clamp)?;
        let kernel = sq.backend_handle();
        let layout = kernel.array_layout();
        if sq.raw().has_array() && layout.is_none() {
            return Err(Error::Register {
                op: NAME,
                why: "this kernel placed the SQ index array where this crate does not expect it, \
                      and a resize does not report its new place (set the ring up with \
                      NO_SQARRAY to resize it)",
            });
        }
        let mut p = sys::io_uring_params {
            sq_entries: self.sq_entries,
            cq_entries: self.cq_entries.unwrap_or(0),
            flags: if self.cq_entries.is_some() {
                sys::IORING_SETUP_CQSIZE
            } else {
                0
            } | if self.clamp {
                sys::IORING_SETUP_CLAMP
            } else {
                0
            },
            ..Default::default()
        };
        sq.publish_for_resize();
        cq.publish_for_resize();
        // SAFETY: `p` is a live, exclusively borrowed `io_uring_params`, one entry as
        // `nr_args` says: the kernel reads the sizes and flags and writes back the new sizes,
        // flags and ring offsets. No SQE is consumed: the kernel only copies them.
        unsafe {
            kernel.register().raw(
                NAME,
                sys::IORING_REGISTER_RESIZE_RINGS,
                (&mut p as *mut sys::io_uring_params).cast(),
                1,
            )
        }?;
        // What the new rings inherit (`COPY_FLAGS` in the kernel), from the old views rather
        // than from what the kernel wrote back.
        let (old_sq, old_cq) = (sq.raw(), cq.raw());
        if old_sq.sqe_shift == 1 {
            p.flags |= sys::IORING_SETUP_SQE128;
        }
        if old_cq.cqe_shift == 1 {
            p.flags |= sys::IORING_SETUP_CQE32;
        }
        if !old_sq.has_array() {
            p.flags |= sys::IORING_SETUP_NO_SQARRAY;
        } else if p.sq_off.array == 0 {
            // The kernel does not report it: where setup put it, by the same formula
            // (checked against setup's answer above).
            match layout.and_then(|l| l.sq_array_offset(&p)) {
                Some(offset) => p.sq_off.array = offset,
                // Cannot happen within the kernel's size limits; were it to, the kernel has
                // moved to memory the queues could not find their way in.
                None => {
                    kernel.mark_lost();
                    return Err(Error::Register {
                        op: NAME,
                        why: "the resized ring's SQ array offset overflows",
                    });
                }
            }
        }
        let (memory, old_maps) = kernel.remap(&p)?;
        // SAFETY: `memory` is the kernel's mapping of the resized rings, laid out as `p` says
        // (the offsets and sizes it wrote back), owned by the backend, which the halves keep
        // alive.
        let (new_sq, new_cq) = unsafe {
            (
                RawSq::new(&memory, &p, !old_sq.has_array()),
                RawCq::new(&memory, &p),
            )
        };
        // The positions the kernel copied: the old rings' heads and tails, which nothing writes
        // any more. Acquire on the kernel's words, pairing with its last release stores to
        // them; ours (SQ tail, CQ head) were written by this thread.
        let (sq_head, sq_tail) = (
            old_sq.head().load(crate::sync::Ordering::Acquire),
            old_sq.tail().load(crate::sync::Ordering::Relaxed),
        );
        let (cq_head, cq_tail) = (
            old_cq.head().load(crate::sync::Ordering::Relaxed),
            old_cq.tail().load(crate::sync::Ordering::Acquire),
        );
        // SAFETY: the old views still point into `old_maps`, mapped until the end of this
        // function, which the kernel no longer uses; the kernel copied exactly these ranges
        // (so they fit both rings); nobody else touches these slots: the SQ has no poller (the
        // kernel resizes DEFER_TASKRUN rings only, which cannot have one) and is entered only
        // by its holder, us; the kernel posts new CQEs past `cq_tail` only and reads no CQE;
        // the slot sizes are the same (`p.flags` has the old rings' SQE128/CQE32).
        unsafe {
            new_sq.copy_sqes_from(old_sq, sq_head, sq_tail);
            new_cq.copy_cqes_from(old_cq, cq_head, cq_tail);
        }
        sq.replace_raw(new_sq);
        cq.replace_raw(new_cq);
        // Only now: the views into them are gone.
        drop(old_maps);
        Ok((p.sq_entries, p.cq_entries))
    }
}

impl Ring<Kernel> {
    /// `IORING_REGISTER_RESIZE_RINGS` (Linux 6.13): gives the live ring queues of the sizes
    /// `new` says, larger or smaller, keeping what is in them: SQEs committed and not yet
    /// consumed stay queued, completions not yet read stay ready, ops in flight complete into
    /// the new CQ. Returns what [`Ring::info`] reports from now on.
    ///
    /// The ring memory moves: the queues switch to the new mapping before this returns. No
    /// [`crate::Reservation`] or [`crate::Batch`] can be alive across it (it takes `&mut
    /// self`); the kernel's rules for what may be resized are below.
    ///
    /// # Kernel rules
    ///
    /// - Only rings set up with `DEFER_TASKRUN` (hence `SINGLE_ISSUER`), and only from their
    ///   submitting thread (`EEXIST` from any other). Not SQPOLL rings (which cannot be
    ///   `DEFER_TASKRUN`; refused here with [`Error::Register`] in any case).
    /// - `SQE128`, `CQE32` and `NO_SQARRAY` carry over; only the sizes change.
    /// - What the queues hold must fit the new sizes: committed, unconsumed SQEs the new SQ,
    ///   unread CQEs the new CQ (`EOVERFLOW` otherwise, and nothing changes: reap or submit
    ///   first). Completions the kernel keeps in its overflow list do not count.
    ///
    /// # Errors
    ///
    /// The size errors of [`crate::Builder::build`] ([`Error::ZeroEntries`],
    /// [`Error::TooManyEntries`], [`Error::CqSmallerThanSq`], ...); [`Error::Register`] for
    /// an SQPOLL ring; [`Error::ForkedChild`] in a forked child; from the kernel, with nothing
    /// changed: `EINVAL` for a ring without `DEFER_TASKRUN` (and before Linux 6.13),
    /// `EOVERFLOW`, `EEXIST`, `ENOMEM`. If mapping the new rings fails ([`Error::Os`] for
    /// `mmap`), the ring cannot be used any more: the kernel has moved to memory this process
    /// could not map, and every entry into the kernel fails with `EBADFD`.
    pub fn resize(&mut self, new: &Resize) -> Result<RingInfo> {
        let (sq, cq) = self.split();
        new.apply_to_halves(sq, cq)?;
        Ok(self.info())
    }
}
