//! [`Context`]: a ring shared by threads. Submit from any of them, complete from any of them.
//!
//! The successor of crosvm's `URingContext`, with the same abilities (any-thread submission and
//! completion, a crosvm-style [`Context::wait_completions`], [`Context::wake`], an allowlist of
//! op types set up with `IORING_SETUP_R_DISABLED` and restrictions) and the typed, owning ops of
//! [`crate::Uring`]: each op lives in the ring's slab from before its SQE is published until it
//! is redeemed by its [`Ticket`], and its completion is keyed by the slot (index and generation)
//! that the library assigned, never by a caller's tag.
//!
//! # Implementation notes: locks
//!
//! Three mutexes and one condition variable:
//!
//! - `sq`: the submission half. Held to reserve, prepare and commit SQEs and to enter the kernel
//!   for submission (on an SQPOLL ring, also to wait in the kernel for the poller to free SQ
//!   slots, which it does without any lock of ours).
//! - `cq`: the completion half. Held to drain the CQ ring, and by *the poller* (see below) while
//!   it sleeps in the kernel waiting for completions.
//! - `shared`: the slab of in-flight ops, the tags, the completions waiting for
//!   [`Context::wait_completions`], the wake tokens, and the poller flag. Held only for memory
//!   work (insert + prepare, dispatch of a batch, take), never across a system call.
//!
//! Lock order: `sq` → `cq` → `shared`. A thread holding `shared` takes no other lock; a thread
//! holding `cq` never takes `sq`; the one place that wants `cq` while holding `sq` (reaping when
//! the kernel answers `EBUSY` to a submit) only *tries* it. So submitters and completers meet
//! only on `shared`, for the time it takes to touch memory.
//!
//! # Implementation notes: why no wake-up is lost
//!
//! At most one thread at a time is *the poller* (`shared.polling`): it is the only thread that
//! sleeps in the kernel, and it does so holding `cq`, so no other thread can take a completion
//! from the CQ while it sleeps. Every other waiter sleeps on the condition variable. Then:
//!
//! 1. A waiter checks its condition (its ticket is done; a completion or wake token is queued)
//!    and `polling` under `shared`, and either becomes the poller or sleeps on the condition
//!    variable, which releases `shared` atomically.
//! 2. Everything that can make a condition true is a dispatch of CQEs, done under `shared`,
//!    followed by `notify_all`. A waiter that saw the condition false was already asleep before
//!    the dispatch could take `shared`, so the notification reaches it.
//! 3. The poller ends its turn by clearing `polling` under `shared` and notifying all (on every
//!    path, including errors and panics), so some waiter takes over.
//! 4. The poller itself could miss a dispatch made by another thread (an opportunistic
//!    [`Context::reap`]) between its check and its taking `cq`. It records a dispatch counter
//!    with its check, and after taking `cq` and finding the CQ empty it compares: if anything was
//!    dispatched meanwhile it returns to re-check instead of sleeping. Once it holds `cq` with
//!    the counter unchanged, nothing can be dispatched until a CQE arrives, and a CQE arriving
//!    wakes its kernel wait (the kernel compares the CQ tail with the head we published).
//! 5. [`Context::wake`] is an internal NOP, so it is just another completion: it ends a kernel
//!    wait, and its token stays queued until a [`Context::wait_completions`] consumes it.

mod builder;
mod poller;
#[cfg(test)]
mod tests;

pub use builder::ContextBuilder;
use poller::Shared;

use crate::error::{Error, PushError, Result};
use crate::op::{res_to_io, OpCheck, OpSet, Submit};
use crate::push;
use crate::slab::Slab;
use crate::uring::{cancel_all, next_ring_id, Ticket, DROP_DRAIN_TIMEOUT, WAKE};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use uring_core::{
    deadline_after, sys, Builder, CompletionQueue, Kernel, Ring, RingInfo, SubmissionQueue,
};

/// How many times a submit refused with `EBUSY`/`EAGAIN` reaps and tries again.
const BUSY_RETRIES: u32 = 16;

/// Locks `m`, ignoring poisoning: every critical section leaves the data consistent for memory
/// safety at each step (a slab slot is either fully inserted or not), and a panicking user op
/// must not make the ring unusable, or undroppable, for the other threads.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A finished submission pushed with [`Context::push_tagged`], as
/// [`Context::wait_completions`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The key the library assigned to the submission: its ticket's [`Ticket::user_data`].
    /// Unique among live submissions (slot index and generation).
    pub key: u64,
    /// The caller's tag, given at push. Only reported back: duplicates are harmless.
    pub tag: u64,
    /// The raw result of the completion that finished the submission (a negative errno on
    /// failure); for a chain, that of its last completion. The typed output, with each link's
    /// result and the buffers, comes from the ticket.
    pub res: i32,
    /// The flags of that completion (`IORING_CQE_F_*`).
    pub flags: u32,
}

impl Completion {
    /// [`Completion::res`] as `io::Result`.
    pub fn result(&self) -> io::Result<u32> {
        res_to_io(self.res)
    }
}

/// A ring shared between threads (`Send + Sync`, used through `&self`, typically in an `Arc`):
/// push typed ops and redeem their results from any thread.
///
/// - [`Context::push`] takes the same ops and chains as [`crate::Uring::push`] and returns a
///   [`Ticket`]; any thread redeems it with [`Context::wait`], [`Context::wait_timeout`] or
///   [`Context::try_take`]. The op, and everything it owns, stays in the ring until then.
/// - [`Context::push_tagged`] also reports the completion, with the caller's tag, to
///   [`Context::wait_completions`] (crosvm's `wait`): it blocks until completions are available
///   and returns each exactly once, to one caller. Detach the ticket ([`Context::detach`]) to
///   have the op dropped at completion, or keep it to get the op's output.
/// - [`Context::wake`] makes one [`Context::wait_completions`] return, even one blocked in the
///   kernel.
/// - [`Context::builder`] sets up an allowlist of op types, enforced by the kernel.
///
/// # Queueing
///
/// `push` hands its op to the kernel before it returns, so the submission queue holds SQEs
/// only for the length of a push, and `push` fails with [`Error::QueueFull`] only if the
/// kernel refuses to take queued SQEs (`EBUSY`), which a caller answers by reaping (waiting
/// for something) and pushing again. The number of ops in flight is not bounded by the ring's
/// size: completions past the CQ size wait in the kernel's overflow list and are all
/// delivered. SQEs the kernel refused stay queued and go at the next [`Context::submit`] or
/// wait, by any thread.
///
/// On an SQPOLL ring ([`ContextBuilder::with_builder`]) `push` hands its SQEs to the kernel's
/// poller thread (waking it if it sleeps) and does not wait for it to consume them; when the
/// SQ is full, `push` waits for the poller to make room instead of failing.
///
/// # Threads
///
/// The kernel ties each request to the thread that submitted it. Because `push` submits, that
/// is always the thread that pushed, never a thread that happened to submit or wait later.
/// Completions reach, and tickets are redeemed by, any thread; but what becomes of a request
/// once its thread has exited depends on what it is waiting for (as observed on Linux 6.18,
/// and checked by `tests/exited_thread.rs`):
///
/// - A request waiting for readiness (a read of a pipe or socket, a poll, also one pushed with
///   `IOSQE_ASYNC`) stays in flight. When its file becomes ready the kernel does not do the
///   work: it completes the request with `ECANCELED` (nothing is read). If the file never
///   becomes ready, the request stays in flight until it is cancelled (an
///   [`AsyncCancel`](crate::ops::AsyncCancel), or the context's drop, which cancels
///   everything).
/// - A timeout ([`Timeout`](crate::ops::Timeout)) still fires (`ETIME`).
/// - A link timeout that fires completes without cancelling the link it guards (the kernel
///   runs the timeout's work in a kernel worker, which may not cancel): its result is
///   `ECANCELED` (reported as [`LinkTimeoutOutcome::Disarmed`](crate::ops::LinkTimeoutOutcome),
///   though the timer fired; `ENOENT` on 6.1). The context sees that the guarded link
///   has not completed and cancels it itself (an internal `IORING_OP_ASYNC_CANCEL`, queued by
///   the next submit, which every wait makes), so the link ends with `ECANCELED` and the chain
///   completes; no wait is left hanging on it.
///
/// So push long-lived ops from threads that outlive them: an op of an exited thread is not
/// guaranteed to run.
///
/// On an SQPOLL ring the kernel's poller thread issues every request, so ops belong to it, not
/// to the thread that pushed them, and outlive that thread.
///
/// Dropping the context cancels what is in flight, waits up to [`DROP_DRAIN_TIMEOUT`], and
/// leaks (never frees) whatever the kernel may still use.
///
/// # Fork
///
/// As for [`crate::Uring`] ("Fork"), with one difference: [`Context::push`] itself is refused
/// in a forked child (the op handed back), as are [`Context::submit`], the waits and
/// [`Context::wake`], all with [`uring_core::Error::ForkedChild`] (`EPERM`) and before any
/// lock is taken (a lock another thread of the parent held at the fork stays held in the
/// child). Its drop leaves the parent's ops alone.
///
/// # Caveats
///
/// - An op's own code (`prepare`, `complete`, its `Drop`, a multishot item) runs under the
///   context's internal locks: it must not call back into the same context (that deadlocks).
/// - A ticket given to a context that did not issue it, or to a wait that fails, is consumed:
///   its op stays in its own context until that context is dropped.
/// - `push` submits at once; when the kernel refuses SQEs for lack of resources (`EAGAIN`,
///   `EBUSY`) while another thread is reaping, they stay queued until the next submit or wait.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use uring_ops::{ops::Nop, Context};
/// let ctx = Arc::new(Context::new(8)?);
/// let t = ctx.push(Nop::new())?;
/// let other = Arc::clone(&ctx);
/// let res = std::thread::spawn(move || other.wait(t)).join().unwrap()?;
/// assert_eq!(res?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Implementation notes
///
/// The submission and completion halves have separate locks, and the slab is touched under a
/// third one only for memory work; one waiting thread sleeps in the kernel and the others on a
/// condition variable. The module documentation gives the lock order and why no wake-up is lost.
pub struct Context {
    sq: Mutex<SubmissionQueue<Kernel>>,
    cq: Mutex<CompletionQueue<Kernel>>,
    shared: Mutex<Shared>,
    /// Signalled (all waiters) after every dispatch and at the end of every poller turn.
    cond: Condvar,
    ops: OpCheck,
    info: RingInfo,
    /// The ring's fd, owned by the `Kernel` backend that both queue halves keep alive.
    fd: RawFd,
    id: u64,
    /// The process's fork generation when the ring was set up: a forked child's copy of the
    /// context refuses every use before it takes a lock (see "Fork").
    generation: u64,
    /// Set when a dispatch left SQEs for the ring to cancel in the slab (see
    /// [`crate::Entry::link_to_cancel`]): the next submit queues the cancels.
    links_to_cancel: AtomicBool,
}

const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Context>();
};

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("fd", &self.fd)
            .field("info", &self.info)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context with `entries` SQ entries, every op permitted.
    ///
    /// # Errors
    ///
    /// As for [`ContextBuilder::build`].
    pub fn new(entries: u32) -> Result<Self> {
        ContextBuilder::new(entries).build()
    }

    /// A builder, for the CQ size and an allowlist.
    pub fn builder(entries: u32) -> ContextBuilder {
        ContextBuilder::new(entries)
    }

    /// A context, every op permitted, on a ring set up by `builder` (as
    /// [`crate::Uring::with_builder`]); [`ContextBuilder::with_builder`] adds an allowlist.
    ///
    /// # Errors
    ///
    /// As for [`ContextBuilder::build`]: setup flags a context refuses are named in an
    /// [`Error::ContextSetupFlag`] before any ring is made.
    pub fn with_builder(builder: &Builder) -> Result<Self> {
        ContextBuilder::with_builder(builder.clone()).build()
    }

    pub(super) fn from_parts(ring: Ring<Kernel>, supported: OpSet, allowed: OpSet) -> Self {
        let info = ring.info();
        let fd = ring.as_raw_fd();
        let (sq, cq) = ring.into_split();
        Context {
            sq: Mutex::new(sq),
            cq: Mutex::new(cq),
            shared: Mutex::new(Shared {
                slab: Slab::new(),
                tags: Vec::new(),
                events: Vec::new(),
                wakes: 0,
                polling: false,
                reaps: 0,
            }),
            cond: Condvar::new(),
            ops: OpCheck::new(supported, allowed),
            info,
            fd,
            id: next_ring_id(),
            // The ring was set up just now, in this process.
            generation: uring_core::fork_generation(),
            links_to_cancel: AtomicBool::new(false),
        }
    }

    /// Refuses the use of a context inherited through `fork` ([`Error::Core`] with
    /// [`uring_core::Error::ForkedChild`]), before any lock is taken (another thread of the
    /// parent may have held one when it forked).
    #[inline]
    fn check_process(&self) -> Result<()> {
        if uring_core::fork_generation() != self.generation {
            return Err(uring_core::Error::ForkedChild.into());
        }
        Ok(())
    }

    /// What the kernel answered at setup: real sizes, features, flags.
    pub fn info(&self) -> &RingInfo {
        &self.info
    }

    /// Whether the running kernel supports `opcode` (`IORING_OP_*`).
    pub fn supports(&self, opcode: u8) -> bool {
        self.ops.supports(opcode)
    }

    /// Whether the allowlist permits `opcode` (always, without an allowlist).
    pub fn allows(&self, opcode: u8) -> bool {
        self.ops.allows(opcode)
    }

    /// Ops pushed whose completions have not all arrived (as of the last reap).
    pub fn in_flight(&self) -> usize {
        lock(&self.shared).slab.in_flight()
    }

    /// Submits an op (or a chain): checks that the kernel supports it and the allowlist
    /// permits it, reserves its SQEs (all or none), moves it into the ring, prepares its SQEs in
    /// place (its slot exists before they are committed), and hands them to the kernel from
    /// this thread before returning.
    ///
    /// # Errors
    ///
    /// The op comes back untouched inside the [`PushError`]: [`Error::Unsupported`] and
    /// [`Error::NotAllowed`] naming the op, [`Error::QueueFull`] when the submission queue is
    /// still full after handing its SQEs to the kernel (the kernel refused them, or the op
    /// needs more SQEs than the ring has), [`Error::TooManyOps`] when the ring already tracks
    /// its maximum of ops, the op's own argument errors, [`Error::Core`].
    pub fn push<T: Submit>(&self, op: T) -> Result<Ticket<T>, PushError<T>> {
        self.push_inner(op, None)
    }

    /// As [`Context::push`], and the completion is reported with `tag` to
    /// [`Context::wait_completions`] (once, to one caller). The tag is only reported back: the
    /// completion is matched to the op by the key the library assigned, so equal tags are
    /// harmless.
    ///
    /// # Errors
    ///
    /// As for [`Context::push`].
    pub fn push_tagged<T: Submit>(&self, op: T, tag: u64) -> Result<Ticket<T>, PushError<T>> {
        self.push_inner(op, Some(tag))
    }

    fn push_inner<T: Submit>(&self, op: T, tag: Option<u64>) -> Result<Ticket<T>, PushError<T>> {
        let entry = op.into_entry();
        let n = match push::check(&entry, &self.ops).and_then(|n| self.check_process().map(|()| n))
        {
            Ok(n) => n,
            Err(error) => return Err(push::refused(error, entry)),
        };
        let mut sq = lock(&self.sq);
        if sq.free() < n {
            if let Err(error) = self.make_room(&mut sq, n) {
                return Err(push::refused(error, entry));
            }
        }
        let mut r = match sq.reserve(n) {
            Ok(r) => r,
            Err(uring_core::Error::NoSpace { needed, free, .. }) => {
                return Err(push::refused(Error::QueueFull { needed, free }, entry))
            }
            Err(e) => return Err(push::refused(e.into(), entry)),
        };
        let key = {
            let mut sh = lock(&self.shared);
            let Some(slot) = sh.slab.vacant() else {
                return Err(push::slab_full(entry));
            };
            let key = push::fill(&mut r, slot, entry, n);
            sh.set_tag(key, tag);
            key
        };
        // SAFETY: the SQEs name only memory the entry owns (the `Entry`/`Op` contract), and the
        // entry stays in its slab slot, unmoved and undropped, until its last completion is
        // reaped (slots are freed only by `take`/`detach` after completion, and a slab dropped
        // with entries in flight leaks them).
        unsafe { r.commit() };
        // Hand the SQEs over now, still holding the SQ, so that the kernel ties the op to this
        // thread and not to whichever thread submits next (see "Threads" on `Context`). A
        // failure leaves them queued: the next submit or wait retries, and reports it.
        let _ = self.submit_locked(&mut sq);
        Ok(Ticket::new(key, self.id))
    }

    /// Whether the ticket's submission has finished (as of the last reap).
    pub fn is_done<T: Submit>(&self, t: &Ticket<T>) -> bool {
        t.ring == self.id && lock(&self.shared).slab.is_done(t.key)
    }

    /// Redeems the ticket's entry if finished (`None` while in flight): `Err` for a ticket
    /// that is not live here.
    fn take_entry<T: Submit>(sh: &mut Shared, t: &Ticket<T>) -> Option<Result<T::Output>> {
        match sh.slab.take::<T::Entry>(t.key) {
            Ok(out) => Some(Ok(out)),
            Err(true) => None,
            Err(false) => Some(Err(Error::UnknownTicket)),
        }
    }

    /// Redeems a finished submission without blocking (reaping ready completions first, if no
    /// other thread is); gives the ticket back if it has not finished. Does not submit.
    ///
    /// # Errors
    ///
    /// `Err(Ok(ticket))` if still in flight; `Err(Err(Error::UnknownTicket))` if the ticket is
    /// not this context's.
    #[allow(clippy::type_complexity)]
    pub fn try_take<T: Submit>(
        &self,
        t: Ticket<T>,
    ) -> std::result::Result<T::Output, std::result::Result<Ticket<T>, Error>> {
        if t.ring != self.id {
            return Err(Err(Error::UnknownTicket));
        }
        for reaped in [false, true] {
            if reaped {
                self.reap();
            }
            let taken = Self::take_entry(&mut lock(&self.shared), &t);
            match taken {
                Some(Ok(out)) => return Ok(out),
                Some(Err(e)) => return Err(Err(e)),
                None => {}
            }
        }
        Err(Ok(t))
    }

    /// Waits until the ticket's submission has finished (submitting what is queued) and
    /// redeems it. Any thread may wait for any ticket; completions reaped meanwhile are
    /// dispatched for every other waiter too.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`], or the ring failing ([`Error::Core`]).
    pub fn wait<T: Submit>(&self, t: Ticket<T>) -> Result<T::Output> {
        if t.ring != self.id {
            return Err(Error::UnknownTicket);
        }
        match self.block_until(None, |sh| Self::take_entry(sh, &t))? {
            Some(out) => out,
            None => unreachable!("an untimed wait returns only when ready"),
        }
    }

    /// As [`Context::wait`], giving up after `timeout` and handing the ticket back. A timeout
    /// too long for `Instant` ([`Duration::MAX`]) is no deadline.
    ///
    /// # Errors
    ///
    /// `Err(Ok(ticket))` on timeout; `Err(Err(e))` on other failures.
    #[allow(clippy::type_complexity)]
    pub fn wait_timeout<T: Submit>(
        &self,
        t: Ticket<T>,
        timeout: Duration,
    ) -> std::result::Result<T::Output, std::result::Result<Ticket<T>, Error>> {
        if t.ring != self.id {
            return Err(Err(Error::UnknownTicket));
        }
        match self.block_until(deadline_after(timeout), |sh| Self::take_entry(sh, &t)) {
            Ok(Some(Ok(out))) => Ok(out),
            Ok(Some(Err(e))) | Err(e) => Err(Err(e)),
            Ok(None) => Err(Ok(t)),
        }
    }

    /// Gives up the ticket: the op and what it owns are dropped once it completes (now, if it
    /// already has). A tagged op's completion is still reported to
    /// [`Context::wait_completions`]. Returns whether the ticket was live.
    pub fn detach<T: Submit>(&self, t: Ticket<T>) -> bool {
        t.ring == self.id && lock(&self.shared).slab.detach::<T::Entry>(t.key)
    }

    /// crosvm's `wait`: submits what is queued, then blocks until completions of tagged
    /// submissions ([`Context::push_tagged`]) are available and returns all of them, each
    /// reported exactly once across all callers. Returns an empty list when woken by
    /// [`Context::wake`] with none available (a wake-up is consumed by the call that sees it,
    /// with or without completions).
    ///
    /// Untagged submissions are redeemed by ticket only and are not reported here.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn wait_completions(&self) -> Result<Vec<Completion>> {
        Ok(self
            .block_until(None, Shared::take_events)?
            .unwrap_or_default())
    }

    /// As [`Context::wait_completions`], returning an empty list after `timeout` (never, for a
    /// timeout too long for `Instant`, such as [`Duration::MAX`]).
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn wait_completions_timeout(&self, timeout: Duration) -> Result<Vec<Completion>> {
        Ok(self
            .block_until(deadline_after(timeout), Shared::take_events)?
            .unwrap_or_default())
    }

    /// Wakes one [`Context::wait_completions`] (now, or the next one to come): pushes and
    /// submits an internal NOP, whose completion ends a wait blocked in the kernel and leaves
    /// a wake token for one caller. Waits for tickets are not ended by it.
    ///
    /// # Errors
    ///
    /// [`Error::QueueFull`] if the kernel will not take queued SQEs to make room; [`Error::Core`]
    /// with the kernel's errno.
    pub fn wake(&self) -> Result<()> {
        self.check_process()?;
        let mut sq = lock(&self.sq);
        if sq.free() == 0 {
            self.make_room(&mut sq, 1)?;
        }
        let mut r = sq.reserve(1).map_err(|e| match e {
            uring_core::Error::NoSpace { needed, free, .. } => Error::QueueFull { needed, free },
            e => e.into(),
        })?;
        r.first()
            .set_opcode(sys::IORING_OP_NOP as u8)
            .set_user_data(WAKE);
        // SAFETY: a NOP names no memory.
        unsafe { r.commit() };
        self.submit_locked(&mut sq)?;
        Ok(())
    }
}

impl AsFd for Context {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` is the ring's fd, owned by the `Kernel` backend that the queue halves in
        // `self` keep alive (it is closed only when both are dropped, with `self`).
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl AsRawFd for Context {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Drop for Context {
    /// Cancels what is in flight and waits up to [`DROP_DRAIN_TIMEOUT`] for it; whatever the
    /// kernel may still touch after that is leaked, never freed.
    fn drop(&mut self) {
        let sq = self.sq.get_mut().unwrap_or_else(PoisonError::into_inner);
        let cq = self.cq.get_mut().unwrap_or_else(PoisonError::into_inner);
        let sh = self
            .shared
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        cancel_all(sq, cq, &mut sh.slab, DROP_DRAIN_TIMEOUT);
    }
}
