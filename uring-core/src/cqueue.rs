//! The completion side: batches of ready CQEs, waiting, and the flags that force a kernel entry.

use crate::backend::Backend;
use crate::cqe::Cqe;
use crate::error::{Error, Result};
use crate::raw::{CqeSlots, RawCq};
use crate::sync::Ordering;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uring_sys as sys;

/// The completion half of a ring. `Send`, so it can live on a different thread from the
/// [`crate::SubmissionQueue`].
pub struct CompletionQueue<B: Backend> {
    raw: RawCq,
    /// Our head: every CQE before it has been read (copied out to the caller).
    head: u32,
    /// The head last stored to the kernel's CQ head word: slots before it are handed back.
    /// Behind `head` only while a [`Batch`] is alive (or after one was forgotten).
    published: u32,
    /// IOPOLL rings only complete when the kernel is entered.
    iopoll: bool,
    /// The process's fork generation when the ring was set up: see
    /// [`CompletionQueue::check_process`].
    generation: u64,
    backend: Arc<B>,
}

impl<B: Backend> fmt::Debug for CompletionQueue<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionQueue")
            .field("entries", &self.raw.entries)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// The instant `timeout` from now, or `None` when that lies past what [`Instant`] can represent
/// (a timeout of [`Duration::MAX`], say, or of centuries).
///
/// Every timed wait of this crate (and of `uring-ops`) takes such a timeout as no deadline at
/// all, instead of panicking on the overflow as `Instant + Duration` does.
pub fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// SQ flags that mean "completions are waiting in the kernel": enter it even if the CQ looks
/// like it has enough.
const NEED_ENTER: u32 = sys::IORING_SQ_CQ_OVERFLOW | sys::IORING_SQ_TASKRUN;

impl<B: Backend> CompletionQueue<B> {
    pub(crate) fn new(raw: RawCq, iopoll: bool, backend: Arc<B>) -> Self {
        // Relaxed: only we write the CQ head.
        let head = raw.head().load(Ordering::Relaxed);
        let published = head;
        CompletionQueue {
            raw,
            head,
            published,
            iopoll,
            generation: backend.setup_generation(),
            backend,
        }
    }

    /// Refuses to wait, or to hand out completions, in a forked child of the process that set
    /// the ring up ([`Error::ForkedChild`]): the completions are the parent's (the child's ring
    /// memory is a private copy made at the fork, see `crate::fork`). As
    /// `SubmissionQueue::check_process`: one load and one comparison per call (per batch, not
    /// per completion), nothing on the simulated kernel.
    #[inline(always)]
    fn check_process(&self) -> Result<()> {
        if self.in_forked_child() {
            return Err(Error::ForkedChild);
        }
        Ok(())
    }

    /// Whether this is a forked child of the process that set the ring up: see
    /// `check_process` (a plain `bool`, so that callers with no error to return make no
    /// `Error` to drop).
    #[inline(always)]
    fn in_forked_child(&self) -> bool {
        B::SHARED_AFTER_FORK && crate::fork::fork_generation() != self.generation
    }

    /// The backend this queue waits on.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Number of CQ slots.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.raw.entries
    }

    /// Hands the slots of the CQEs read so far back to the kernel, once.
    #[inline]
    fn publish_head(&mut self) {
        // (In a forked child this stores into the child's private copy of the ring memory.)
        if self.head != self.published {
            self.published = self.head;
            // Release: our reads of the CQEs before `head` happen before the kernel may reuse
            // their slots; pairs with the kernel's acquire load of the CQ head when it checks
            // for free space.
            self.raw.head().store(self.head, Ordering::Release);
        }
    }

    /// Completions ready to read now.
    #[inline]
    pub fn ready(&self) -> u32 {
        // Acquire: pairs with the kernel's release store of the CQ tail after it wrote the CQEs,
        // making every CQE before the tail visible to the reads that follow.
        self.raw
            .tail()
            .load(Ordering::Acquire)
            .wrapping_sub(self.head)
    }

    /// Whether the kernel holds completions the CQ does not show yet (overflow backlog or
    /// pending task work): only entering the kernel brings them in.
    #[inline]
    pub fn kernel_has_more(&self) -> bool {
        // Relaxed: a hint; the CQEs themselves are reached through the tail's Acquire.
        self.raw.sq_flags().load(Ordering::Relaxed) & NEED_ENTER != 0
    }

    /// Takes the next completion, if one is ready, and hands its slot back to the kernel.
    #[inline]
    pub fn pop(&mut self) -> Option<Cqe> {
        let mut batch = self.batch();
        batch.next()
    }

    /// A view of the completions ready now. Iterate it; the slots read are handed back to the
    /// kernel once, when the batch is dropped.
    ///
    /// Empty in a forked child of the process that set the ring up: the completions are the
    /// parent's (see [`Error::ForkedChild`]), and the child's copy of the ring is a snapshot
    /// whose buffers the kernel may have written after the fork, for the parent only.
    #[inline]
    pub fn batch(&mut self) -> Batch<'_, B> {
        // Acquire: pairs with the kernel's release store of the CQ tail (see `ready`).
        let tail = if self.in_forked_child() {
            self.head
        } else {
            self.raw.tail().load(Ordering::Acquire)
        };
        let head = self.head;
        let slots = self.raw.slots();
        Batch {
            cq: self,
            slots,
            head,
            tail,
        }
    }

    /// Waits until at least `want` completions are ready, entering the kernel only when needed
    /// (too few ready, an overflow backlog, pending task work, or an IOPOLL ring). Returns the
    /// number ready. Signals (`EINTR`) are retried.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] for `EAGAIN`/`EBUSY`, [`Error::ForkedChild`] in a forked child of the
    /// process that set the ring up, [`Error::Os`] for other failures.
    #[inline]
    pub fn wait(&mut self, want: u32) -> Result<u32> {
        self.check_process()?;
        self.wait_in_owner(want)
    }

    /// [`CompletionQueue::wait`] for a caller that has just entered the kernel for this ring,
    /// and so knows that this process set it up (see `check_process`).
    #[inline]
    pub(crate) fn wait_in_owner(&mut self, want: u32) -> Result<u32> {
        // Fast path, inlined: enough completions are ready and the kernel holds none back, so
        // there is nothing to enter for (the common case right after `submit_and_wait`).
        if !self.iopoll {
            let ready = self.ready();
            if ready >= want && !self.kernel_has_more() {
                return Ok(ready);
            }
        }
        self.wait_deadline(want, None)
    }

    /// As [`CompletionQueue::wait`], giving up with [`Error::Timeout`] after `timeout`
    /// (uses `IORING_ENTER_EXT_ARG`; a signal does not restart the clock). A timeout too long
    /// for [`Instant`] to represent ([`Duration::MAX`], say) is no deadline: see
    /// [`deadline_after`].
    pub fn wait_timeout(&mut self, want: u32, timeout: Duration) -> Result<u32> {
        self.wait_deadline(want, deadline_after(timeout))
    }

    /// As [`CompletionQueue::wait`], giving up with [`Error::Timeout`] at `deadline`
    /// (`None`: no deadline, as [`CompletionQueue::wait`]). For callers that wait in several
    /// steps towards one deadline.
    pub fn wait_deadline(&mut self, want: u32, deadline: Option<Instant>) -> Result<u32> {
        self.wait_entering(want, |backend, min| {
            let timeout = match deadline {
                Some(d) if min > 0 => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::from_raw_os_error(libc::ETIME));
                    }
                    Some(left)
                }
                _ => None,
            };
            backend.enter(0, min, sys::IORING_ENTER_GETEVENTS, timeout)
        })
    }

    /// The loop of every wait: until `want` completions are ready (and the kernel holds none
    /// back), publishes the head and has `enter(backend, min)` enter the kernel to wait for
    /// `min` of them (0: only to flush what it holds back), which ends with `ETIME` at the
    /// caller's deadline, if any. `EINTR` is retried (with the same deadline: `enter` says
    /// what is left of it).
    pub(crate) fn wait_entering(
        &mut self,
        want: u32,
        mut enter: impl FnMut(&B, u32) -> io::Result<u32>,
    ) -> Result<u32> {
        self.check_process()?;
        let want = want.min(self.raw.entries);
        loop {
            let ready = self.ready();
            let must_enter = self.iopoll || self.kernel_has_more();
            if ready >= want && !must_enter {
                return Ok(ready);
            }
            let min = if ready >= want { 0 } else { want };
            // The kernel must see every slot we have read as free before it is asked for more
            // (only differs from what it sees after a forgotten batch).
            self.publish_head();
            match enter(&self.backend, min) {
                Ok(_) if min == 0 => return Ok(self.ready()),
                Ok(_) => {}
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::ETIME) => {
                        let ready = self.ready();
                        return if ready >= want {
                            Ok(ready)
                        } else {
                            Err(Error::Timeout)
                        };
                    }
                    Some(libc::EAGAIN) | Some(libc::EBUSY) => return Err(Error::Busy(e)),
                    _ => return Err(Error::os("io_uring_enter", e)),
                },
            }
        }
    }

    /// Completions the kernel had to drop because the CQ was full (`cq_off.overflow`). Stays 0
    /// on kernels with `IORING_FEAT_NODROP`, which keep a backlog instead.
    pub fn overflow(&self) -> u32 {
        // Relaxed: a statistics counter written by the kernel.
        self.raw.overflow().load(Ordering::Relaxed)
    }

    /// Turns eventfd notifications for this ring off or on (`IORING_CQ_EVENTFD_DISABLED`).
    /// Returns `false` when the kernel has no CQ flags word, or in a forked child of the
    /// process that set the ring up (the word is the parent's).
    pub fn set_eventfd_enabled(&mut self, enabled: bool) -> bool {
        let Some(flags) = self.raw.flags() else {
            return false;
        };
        if self.in_forked_child() {
            return false;
        }
        // Relaxed: only we write this word; the kernel reads it when posting, with no data
        // published through it.
        let old = flags.load(Ordering::Relaxed);
        let new = if enabled {
            old & !sys::IORING_CQ_EVENTFD_DISABLED
        } else {
            old | sys::IORING_CQ_EVENTFD_DISABLED
        };
        flags.store(new, Ordering::Relaxed);
        true
    }
}

/// The steps of a resize ([`crate::Ring::resize`]) that touch the queue's own state.
#[cfg(not(loom))]
impl<B: Backend> CompletionQueue<B> {
    /// The views of the ring memory the queue uses now.
    pub(crate) fn raw(&self) -> &RawCq {
        &self.raw
    }

    /// Before the kernel resizes the rings: hands back every slot read, so that the kernel
    /// copies only unread CQEs (and needs no more room than they take).
    pub(crate) fn publish_for_resize(&mut self) {
        self.publish_head();
    }

    /// After the resize: the queue reads `raw`, the new memory, from now on. Its head
    /// carries over: the kernel gave the new rings the old head and tail.
    pub(crate) fn replace_raw(&mut self, raw: RawCq) {
        self.raw = raw;
    }
}

/// The completions ready when [`CompletionQueue::batch`] was called. An iterator of [`Cqe`];
/// dropping it hands every slot read back to the kernel with one `Release` store.
pub struct Batch<'a, B: Backend> {
    cq: &'a mut CompletionQueue<B>,
    /// The slot geometry, copied so that it stays in registers while CQEs are read.
    slots: CqeSlots,
    head: u32,
    tail: u32,
}

impl<B: Backend> fmt::Debug for Batch<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("left", &self.tail.wrapping_sub(self.head))
            .finish()
    }
}

impl<B: Backend> Batch<'_, B> {
    /// Completions left in this batch.
    #[inline]
    pub fn remaining(&self) -> u32 {
        self.tail.wrapping_sub(self.head)
    }
}

impl<B: Backend> Iterator for Batch<'_, B> {
    type Item = Cqe;

    #[inline]
    fn next(&mut self) -> Option<Cqe> {
        if self.head == self.tail {
            return None;
        }
        // SAFETY: `head` is before the tail read with Acquire, so the kernel has written this
        // slot and will not touch it until our Release store of a head past it.
        let (raw, extra) = unsafe { self.slots.read_cqe(self.head) };
        let cqe = Cqe::from_raw(&raw, extra);
        self.head = self.head.wrapping_add(1);
        // Counted as read at once: a batch that is forgotten (`mem::forget`) never hands a
        // completion out twice.
        self.cq.head = self.head;
        Some(cqe)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining() as usize;
        (n, Some(n))
    }
}

impl<B: Backend> ExactSizeIterator for Batch<'_, B> {}

impl<B: Backend> Drop for Batch<'_, B> {
    #[inline]
    fn drop(&mut self) {
        self.cq.publish_head();
    }
}
