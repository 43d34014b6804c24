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

mod batch;
mod builder;
mod poller;
mod take;
#[cfg(test)]
mod tests;

pub use batch::Batch;
pub use builder::ContextBuilder;
pub(crate) use poller::Shared;

use crate::error::{Error, PushError, Result};
use crate::op::{OpCheck, OpSet, Submit};
use crate::push;
use crate::slab::Slab;
use crate::uring::{cancel_all, next_ring_id, Ticket, DROP_DRAIN_TIMEOUT, WAKE};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use uring_core::{
    sys, Builder, CompletionQueue, Kernel, Registrar, Ring, RingInfo, SubmissionQueue,
};

/// How many times a submit refused with `EBUSY`/`EAGAIN` reaps and tries again.
const BUSY_RETRIES: u32 = 16;

thread_local! {
    /// The id of a context whose locks the thread holds through a [`Batch`] or a
    /// [`crate::Completions`] (0: none). Every call to a context checks it: a `Cell` without
    /// drop glue costs a load.
    static HELD: Cell<u64> = const { Cell::new(0) };
    /// How many holds [`MORE_HELD`] lists: holds of other contexts while `HELD` is taken.
    static MORE_COUNT: Cell<usize> = const { Cell::new(0) };
    /// The ids of those further holds (rare: a thread holding two contexts at once).
    static MORE_HELD: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// A thread's hold of a context's locks, for as long as a [`Batch`] or a
/// [`crate::Completions`] lives: calling the context again from that thread would deadlock,
/// so the calls check it first ([`Context::check_process`]). Holds of several contexts may
/// end in any order: each clears its own record.
#[derive(Debug)]
pub(crate) struct Held {
    id: u64,
    /// Recorded in `HELD` (else in `MORE_HELD`).
    first: bool,
}

impl Held {
    pub(crate) fn enter(id: u64) -> Self {
        if HELD.with(Cell::get) == 0 {
            HELD.with(|h| h.set(id));
            return Held { id, first: true };
        }
        MORE_HELD.with(|m| m.borrow_mut().push(id));
        MORE_COUNT.with(|n| n.set(n.get() + 1));
        Held { id, first: false }
    }

    #[inline]
    fn by_this_thread(id: u64) -> bool {
        HELD.with(Cell::get) == id
            || (MORE_COUNT.with(Cell::get) > 0 && MORE_HELD.with(|m| m.borrow().contains(&id)))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.first {
            HELD.with(|h| h.set(0));
            return;
        }
        MORE_HELD.with(|m| {
            let mut m = m.borrow_mut();
            if let Some(i) = m.iter().rposition(|&x| x == self.id) {
                m.swap_remove(i);
            }
        });
        MORE_COUNT.with(|n| n.set(n.get() - 1));
    }
}

#[cold]
#[track_caller]
fn reentrant() -> ! {
    panic!("{}", Error::Reentrant)
}

/// Locks `m`, ignoring poisoning: every critical section leaves the data consistent for memory
/// safety at each step (a slab slot is either fully inserted or not), and a panicking user op
/// must not make the ring unusable, or undroppable, for the other threads.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
/// is always the thread that pushed, never a thread that happened to submit or wait later; and
/// because only a [`Batch`] submits what it queued, an op pushed through a batch belongs to
/// the thread that holds the batch (`tests/batch_thread_exit.rs` checks both).
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
    /// The kernel's ring (its fd, for registration), which both queue halves share.
    kernel: Arc<Kernel>,
    pub(crate) id: u64,
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
            .field("fd", &self.as_raw_fd())
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
        let kernel = ring.backend_handle();
        let (sq, cq) = ring.into_split();
        let id = next_ring_id();
        Context {
            sq: Mutex::new(sq),
            cq: Mutex::new(cq),
            shared: Mutex::new(Shared {
                slab: Slab::new(id),
                wakes_taken: 0,
                polling: false,
                reaps: 0,
            }),
            cond: Condvar::new(),
            ops: OpCheck::new(supported, allowed),
            info,
            kernel,
            id,
            // The ring was set up just now, in this process.
            generation: uring_core::fork_generation(),
            links_to_cancel: AtomicBool::new(false),
        }
    }

    /// Refuses the use of a context inherited through `fork` ([`Error::Core`] with
    /// [`uring_core::Error::ForkedChild`]), before any lock is taken (another thread of the
    /// parent may have held one when it forked), and a call from the thread that holds a
    /// [`Batch`] or a [`crate::Completions`] of this context ([`Error::Reentrant`]: its locks
    /// are held, and taking them again would deadlock).
    #[inline]
    fn check_process(&self) -> Result<()> {
        if uring_core::fork_generation() != self.generation {
            return Err(uring_core::Error::ForkedChild.into());
        }
        if Held::by_this_thread(self.id) {
            return Err(Error::Reentrant);
        }
        Ok(())
    }

    /// As [`Context::check_process`]'s reentrance check, for the calls that return no
    /// `Result`.
    ///
    /// # Panics
    ///
    /// On the thread that holds a [`Batch`] or a [`crate::Completions`] of this context
    /// (rather than deadlock).
    #[inline]
    fn assert_not_held(&self) {
        if Held::by_this_thread(self.id) {
            reentrant();
        }
    }

    /// What the kernel answered at setup: real sizes, features, flags (as
    /// [`crate::Uring::info`]).
    pub fn info(&self) -> RingInfo {
        self.info
    }

    /// Registration on the context's ring (files, buffers, eventfd, personalities, ...), as
    /// [`crate::Uring::register`] on a `Uring`. For registered buffers the ops take,
    /// use [`crate::FixedBufs::register`], and for provided buffers [`crate::BufRing`], which
    /// take a context as they take a `Uring`.
    ///
    /// The kernel refuses registration from any thread but the one that made the ring on a
    /// `SINGLE_ISSUER` ring, and, with an allowlist, whatever
    /// [`ContextBuilder::allow_register`] did not permit (`EACCES`).
    pub fn register(&self) -> Registrar<'_> {
        self.kernel.register()
    }

    /// The kernel ring's backend: its fd, and what registration and the fork check need.
    pub(crate) fn kernel(&self) -> &Kernel {
        &self.kernel
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
        self.assert_not_held();
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

    #[inline]
    fn push_inner<T: Submit>(&self, op: T, tag: Option<u64>) -> Result<Ticket<T>, PushError<T>> {
        let entry = op.into_entry();
        let n = match push::check(&entry, &self.ops).and_then(|n| self.check_process().map(|()| n))
        {
            Ok(n) => n,
            Err(error) => return Err(push::refused(error, entry)),
        };
        let mut sq = lock(&self.sq);
        let mut sh = None;
        let key = self.queue_locked(&mut sq, &mut sh, entry, n, tag)?;
        drop(sh);
        // Hand the SQEs over now, still holding the SQ, so that the kernel ties the op to this
        // thread and not to whichever thread submits next (see "Threads" on `Context`). A
        // failure leaves them queued: the next submit or wait retries, and reports it.
        let _ = self.submit_locked(&mut sq);
        Ok(Ticket::new(key, self.id))
    }

    /// Queues `entry` (checked, `n` SQEs) with the SQ held, without handing it to the kernel:
    /// makes room if needed (handing queued SQEs over, with the bookkeeping lock released
    /// first, as no system call is made under it), reserves, takes the bookkeeping lock into
    /// `sh` unless it is held there already, moves the entry into a slot and commits its SQEs.
    /// Returns its key.
    #[inline(always)]
    fn queue_locked<'s, T: Submit>(
        &'s self,
        sq: &mut SubmissionQueue<Kernel>,
        sh: &mut Option<MutexGuard<'s, Shared>>,
        entry: T::Entry,
        n: u32,
        tag: Option<u64>,
    ) -> Result<u64, PushError<T>> {
        if sq.free() < n {
            *sh = None;
            if let Err(error) = self.make_room(sq, n) {
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
        let sh = sh.get_or_insert_with(|| lock(&self.shared));
        let Some(slot) = sh.slab.vacant() else {
            return Err(push::slab_full(entry));
        };
        let key = push::fill(&mut r, slot.tagged(tag), entry, n);
        // SAFETY: the SQEs name only memory the entry owns (the `Entry`/`Op` contract), and the
        // entry stays in its slab slot, unmoved and undropped, until its last completion is
        // reaped (slots are freed only by `take`/`detach` after completion, and a slab dropped
        // with entries in flight leaks them).
        unsafe { r.commit() };
        Ok(key)
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
        self.kernel.as_fd()
    }
}

impl AsRawFd for Context {
    fn as_raw_fd(&self) -> RawFd {
        self.kernel.as_fd().as_raw_fd()
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
