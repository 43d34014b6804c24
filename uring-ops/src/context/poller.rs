//! The completion side of a [`Context`]: the state the threads share, how queued SQEs are
//! handed over, and how one waiting thread at a time sleeps in the kernel while the others
//! wait on a condition variable (see the module documentation of `context` for why no
//! wake-up is lost).

use super::{lock, Context, BUSY_RETRIES};
use crate::error::Result;
use crate::slab::Slab;
use crate::uring::queue_link_cancels;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, MutexGuard, PoisonError, TryLockError};
use std::time::Instant;
use uring_core::{CompletionQueue, Kernel, SubmissionQueue};

/// How many times a poller yields the CPU, watching the CQ, before it sleeps in the kernel.
const SPIN_YIELDS: u32 = 8;

/// What the threads share under the `shared` lock.
pub(crate) struct Shared {
    /// The ops, and the completion records of the tagged ones (and the count of wake-ups).
    pub(crate) slab: Slab,
    /// Wake-ups consumed by the waits for records, of those the slab has seen (wrapping).
    pub(super) wakes_taken: u64,
    /// Whether a thread is the poller (the one that may sleep in the kernel).
    pub(super) polling: bool,
    /// Bumped by every dispatch of CQEs (wrapping; compared for equality only).
    pub(super) reaps: u64,
}

impl Shared {
    /// Consumes one wake-up token ([`Context::wake`]) if one is left; says whether it did.
    pub(super) fn take_wake(&mut self) -> bool {
        if self.wakes_taken == self.slab.wakes() {
            return false;
        }
        self.wakes_taken = self.wakes_taken.wrapping_add(1);
        true
    }
}

/// Ends a poller's turn, on every path out of it (errors and panics included).
pub(super) struct PollerTurn<'a>(&'a Context);

impl Drop for PollerTurn<'_> {
    fn drop(&mut self) {
        lock(&self.0.shared).polling = false;
        self.0.cond.notify_all();
    }
}

impl Context {
    /// Hands queued SQEs to the kernel. Returns how many it consumed. On an SQPOLL ring, where
    /// the kernel's poller thread consumes them on its own time, it returns instead how many
    /// it had not consumed yet at the time of this call, those handed over by earlier pushes
    /// and submits included (see [`SubmissionQueue::submit`]).
    ///
    /// When the kernel pushes back (`EBUSY`/`EAGAIN`) this reaps and tries again; if another
    /// thread is reaping at that moment, the SQEs stay queued for the next submit or wait.
    ///
    /// # Errors
    ///
    /// [`Error::Core`](crate::Error::Core) with the kernel's errno.
    pub fn submit(&self) -> Result<u32> {
        self.check_process()?;
        self.submit_locked(&mut lock(&self.sq))
    }

    /// Hands queued SQEs (that the kernel has not taken yet) over to free `n` slots. On an
    /// SQPOLL ring, where the kernel's poller consumes them on its own time, also waits until
    /// it has; elsewhere the kernel consumes during the submit, and SQEs it refused stay
    /// until it agrees.
    pub(super) fn make_room(&self, sq: &mut SubmissionQueue<Kernel>, n: u32) -> Result<()> {
        self.submit_locked(sq)?;
        if n <= sq.capacity() {
            sq.wait_for_room(n)?;
        }
        Ok(())
    }

    /// Hands queued SQEs over before a wait, unless another thread holds the SQ: every holder
    /// hands over what it queued before it lets go (a push submits, a batch at its submit or
    /// drop; on an SQPOLL ring it publishes and wakes the poller), so there is nothing a
    /// waiter must hand over, and a waiter, whose op may be done already, must not wait
    /// behind a batch being filled or a push waiting for the SQPOLL thread to make room. SQEs
    /// the kernel refused for lack of room in the CQ (`EBUSY`) stay queued only while
    /// completions wait to be reaped, so a waiter does not sleep past them: after reaping it
    /// comes back here.
    pub(super) fn submit_before_waiting(&self) -> Result<()> {
        self.check_process()?;
        let mut sq = match self.sq.try_lock() {
            Ok(sq) => sq,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // Except when cancels of stalled links wait to be queued (rare): this waiter may be
            // the one that would otherwise sleep until they go.
            // Relaxed: see `drain_ring`.
            Err(TryLockError::WouldBlock) if self.links_to_cancel.load(Ordering::Relaxed) => {
                lock(&self.sq)
            }
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        self.submit_locked(&mut sq).map(drop)
    }

    pub(super) fn submit_locked(&self, sq: &mut SubmissionQueue<Kernel>) -> Result<u32> {
        // Relaxed: see `drain_ring`; a flag set by another thread just after this load is seen
        // by the next submit (every waiter submits before it sleeps).
        if self.links_to_cancel.load(Ordering::Relaxed) {
            self.links_to_cancel.store(false, Ordering::Relaxed);
            let mut sh = lock(&self.shared);
            queue_link_cancels(sq, &mut sh.slab);
            if sh.slab.has_links_to_cancel() {
                self.links_to_cancel.store(true, Ordering::Relaxed);
            }
        }
        let mut refusals = 0;
        loop {
            match sq.submit() {
                Ok(n) => return Ok(n),
                Err(uring_core::Error::Busy(e)) => {
                    refusals += 1;
                    // Lock order sq → cq: only try the CQ lock here.
                    match self.try_reap() {
                        // Another thread holds the CQ and is reaping: leave the SQEs queued.
                        None => return Ok(0),
                        Some(0) if refusals > BUSY_RETRIES => {
                            return Err(uring_core::Error::Busy(e).into())
                        }
                        Some(_) => {}
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Brings ready completions in (marks their ops done, queues tagged completions) unless
    /// another thread is doing so. Returns how many CQEs were processed. Never blocks on the
    /// kernel.
    pub fn reap(&self) -> usize {
        self.assert_not_held();
        self.try_reap().unwrap_or(0)
    }

    /// `None` when another thread holds the CQ.
    pub(super) fn try_reap(&self) -> Option<usize> {
        let mut cq = match self.cq.try_lock() {
            Ok(cq) => cq,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(self.drain_cq(&mut cq))
    }

    /// Dispatches every CQE in the ring, and those the kernel holds back (overflow), with `cq`
    /// held by the caller.
    pub(super) fn drain_cq(&self, cq: &mut CompletionQueue<Kernel>) -> usize {
        let mut total = self.drain_ring(cq);
        // Completions that overflowed the CQ wait in the kernel: a GETEVENTS enter with no
        // minimum moves them into the ring.
        for _ in 0..BUSY_RETRIES {
            if !cq.kernel_has_more() || cq.wait(0).is_err() {
                break;
            }
            let n = self.drain_ring(cq);
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    }

    pub(super) fn drain_ring(&self, cq: &mut CompletionQueue<Kernel>) -> usize {
        let batch = cq.batch();
        let n = batch.len();
        if n == 0 {
            return 0;
        }
        // Waiters are told even if user code run by a dispatch (a detached op's `Drop`, a
        // multishot item) panics half-way: the count moves before the first dispatch (under the
        // same lock, so no waiter can see the old count and then miss the results), and the
        // notification comes from a guard.
        struct Notify<'a>(&'a Condvar);
        impl Drop for Notify<'_> {
            fn drop(&mut self) {
                self.0.notify_all();
            }
        }
        let _notify = Notify(&self.cond);
        let mut sh = lock(&self.shared);
        sh.reaps = sh.reaps.wrapping_add(1);
        sh.slab.complete_batch(batch);
        if sh.slab.has_links_to_cancel() {
            // The CQ is held, so the SQ cannot be taken here (lock order): the next submit,
            // by a waiter before it sleeps or by a push, queues the cancels.
            // Relaxed: a hint; the list itself is read under the shared lock.
            self.links_to_cancel.store(true, Ordering::Relaxed);
        }
        drop(sh);
        n
    }

    /// Blocks until `ready` gives a value (checked under the shared lock, after every dispatch),
    /// or `deadline` passes (`Ok(None)`). Submits first.
    pub(super) fn block_until<R>(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&mut Shared) -> Option<R>,
    ) -> Result<Option<R>> {
        let mut out = None;
        drop(self.wait_locked(deadline, |sh| {
            out = ready(sh);
            out.is_some()
        })?);
        Ok(out)
    }

    /// Blocks until `ready` says so (checked under the shared lock, after every dispatch), or
    /// `deadline` passes; returns the shared lock, held, and whether `ready` said so. Submits
    /// first.
    pub(super) fn wait_locked(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&mut Shared) -> bool,
    ) -> Result<(MutexGuard<'_, Shared>, bool)> {
        self.check_process()?;
        self.submit_before_waiting()?;
        self.reap();
        let mut sh = lock(&self.shared);
        loop {
            if ready(&mut sh) {
                return Ok((sh, true));
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok((sh, false));
                    }
                    Some(left)
                }
            };
            if !sh.polling {
                sh.polling = true;
                let seen = sh.reaps;
                drop(sh);
                let turn = PollerTurn(self);
                let polled = self.poll(seen, deadline);
                drop(turn);
                polled?;
                sh = lock(&self.shared);
                continue;
            }
            // The poller notifies when it dispatches and when its turn ends.
            sh = match left {
                None => self.cond.wait(sh).unwrap_or_else(PoisonError::into_inner),
                Some(left) => {
                    self.cond
                        .wait_timeout(sh, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// A poller's turn: hands queued SQEs over, then, holding the CQ, reaps, sleeping in the
    /// kernel until a completion arrives, unless something was dispatched since the caller's
    /// check (`seen`), or `deadline` passes.
    pub(super) fn poll(&self, seen: u64, deadline: Option<Instant>) -> Result<()> {
        self.submit_before_waiting()?;
        let mut cq = lock(&self.cq);
        loop {
            if self.drain_cq(&mut cq) > 0 || lock(&self.shared).reaps != seen {
                return Ok(());
            }
            // Before sleeping in the kernel, let the threads that are ready run a few times:
            // with more threads than cores, the one whose SQEs this wait is for often runs
            // now, and the wait ends without a sleep and a wake-up (each costs a context
            // switch). With nothing else to run, `sched_yield` returns at once: a few system
            // calls before an idle sleep.
            let mut spins = 0;
            while spins < SPIN_YIELDS && cq.ready() == 0 {
                std::thread::yield_now();
                spins += 1;
            }
            if spins > 0 && cq.ready() > 0 {
                continue;
            }
            // We hold the CQ and nothing was dispatched since the caller looked: nothing can be
            // until a CQE arrives, which ends this wait.
            match cq.wait_deadline(1, deadline) {
                Ok(_) => {}
                Err(uring_core::Error::Timeout) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
