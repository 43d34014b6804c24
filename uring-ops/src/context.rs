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

use crate::error::{Error, PushError, Result};
use crate::op::{res_to_io, Entry, Op, OpCheck, OpSet, Submit};
use crate::slab::{slot_index, Completed, Slab};
use crate::uring::{
    cancel_all, dispatch, next_ring_id, probe, slab_full, too_many_sqes, user_data, Ticket,
    DROP_DRAIN_TIMEOUT, INTERNAL, MAX_SQES,
};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};
use uring_core::{
    sys, Builder, CompletionQueue, Cqe, Kernel, Restriction, Ring, RingInfo, SetupFlags, SqeFlags,
    SubmissionQueue,
};

/// User data of the internal NOP that [`Context::wake`] pushes.
const WAKE: u64 = INTERNAL | 1;

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

/// What the threads share under the `shared` lock.
struct Shared {
    slab: Slab,
    /// The tag of the submission in each slot (by slot index), if it was pushed with one.
    tags: Vec<Option<u64>>,
    /// Completions of tagged submissions, waiting for [`Context::wait_completions`].
    events: Vec<Completion>,
    /// Wake-up NOPs reaped and not yet consumed by a [`Context::wait_completions`].
    wakes: u64,
    /// Whether a thread is the poller (the one that may sleep in the kernel).
    polling: bool,
    /// Bumped by every dispatch of CQEs (wrapping; compared for equality only).
    reaps: u64,
}

impl Shared {
    fn set_tag(&mut self, key: u64, tag: Option<u64>) {
        let i = slot_index(key);
        if i >= self.tags.len() {
            if tag.is_none() {
                return;
            }
            self.tags.resize(i + 1, None);
        }
        self.tags[i] = tag;
    }

    fn on_cqe(&mut self, cqe: Cqe) {
        if cqe.user_data() == WAKE {
            self.wakes += 1;
            return;
        }
        let Some((key, done)) = dispatch(&mut self.slab, cqe) else {
            return;
        };
        if matches!(done, Completed::Done | Completed::Freed) {
            if let Some(&Some(tag)) = self.tags.get(slot_index(key)) {
                self.events.push(Completion {
                    key,
                    tag,
                    res: cqe.raw_result(),
                    flags: cqe.raw_flags(),
                });
            }
        }
    }

    /// The condition of [`Context::wait_completions`]: queued completions (all of them) and at
    /// most one wake token.
    fn take_events(&mut self) -> Option<Vec<Completion>> {
        let woken = self.wakes > 0;
        if woken {
            self.wakes -= 1;
        }
        if !self.events.is_empty() {
            return Some(std::mem::take(&mut self.events));
        }
        woken.then(Vec::new)
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
/// The kernel ties each request to the thread that submitted it. Once that thread has exited,
/// the kernel cancels the request (it completes with `ECANCELED`) when it would next run on that
/// thread's behalf: work queued to the thread's io-wq is cancelled at exit, and a request waiting
/// for readiness (a read of a pipe or socket, a poll) is cancelled when the file becomes ready.
/// Because `push` submits, the owning thread is always the one that pushed, never a thread that
/// happened to submit or wait later: push long-lived ops from threads that outlive them.
/// Completions reach, and tickets are redeemed by, any thread.
///
/// On an SQPOLL ring the kernel's poller thread issues every request, so ops belong to it, not
/// to the thread that pushed them, and outlive that thread.
///
/// Dropping the context cancels what is in flight, waits up to [`DROP_DRAIN_TIMEOUT`], and
/// leaks (never frees) whatever the kernel may still use.
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
/// let t = ctx.push(Nop::new()).map_err(|e| e.error)?;
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

/// Sets up a [`Context`]: the ring (sizes, or any [`Builder`] with its setup flags), and the
/// allowlist of op types.
///
/// [`ContextBuilder::new`] makes a plain ring of the given size;
/// [`ContextBuilder::with_builder`] takes a [`uring_core::Builder`] prepared by the caller, for
/// SQPOLL, COOP_TASKRUN and the other setup flags (see "Setup flags" below for the few a
/// context refuses).
///
/// With no [`ContextBuilder::allow`] every op is permitted. With at least one, the ring is
/// created disabled (`IORING_SETUP_R_DISABLED`), the allowed opcodes are registered as
/// `IORING_RESTRICTION_SQE_OP` restrictions (with every `IOSQE_*` flag allowed, and the register
/// ops given to [`ContextBuilder::allow_register`], plus `IORING_REGISTER_ENABLE_RINGS`, which
/// an enabled ring refuses anyway: naming one register op is what makes Linux 7.0 and later
/// refuse the others), and the ring is enabled: the kernel refuses any other opcode with
/// `EACCES`, and [`Context::push`] refuses it first with [`Error::NotAllowed`], handing the op
/// back.
///
/// The context's own SQEs need two opcodes, which are therefore always registered with the
/// kernel (but not allowed to [`Context::push`] unless listed): `IORING_OP_NOP` for
/// [`Context::wake`], `IORING_OP_ASYNC_CANCEL` for the cancellation on drop.
///
/// # Setup flags
///
/// A context submits from every thread that pushes (under a lock) and waits, sleeping in the
/// kernel, from every thread that waits. [`ContextBuilder::build`] therefore refuses, with
/// [`Error::InvalidArgument`] naming the flag and before any ring is made:
///
/// - `IORING_SETUP_DEFER_TASKRUN`: the kernel runs completion work only when the thread that
///   submitted waits for completions, and refuses (`EEXIST`) a wait from any other thread.
/// - `IORING_SETUP_SINGLE_ISSUER` without SQPOLL: the kernel refuses (`EEXIST`) submissions
///   from any thread but the one that made the ring (or enabled it, with an allowlist). With
///   SQPOLL it is accepted: the kernel's poller thread is then the one issuer, whichever
///   thread pushes. Registration (`io_uring_register` on [`Context::as_fd`]) is still refused
///   to every thread but the one that built the context.
/// - `IORING_SETUP_IOPOLL` (and `HYBRID_IOPOLL`): completions of a polled ring arrive only
///   while a thread busy-polls it (a wait with nothing on the kernel's poll list returns at
///   once, so a context's blocking waits would spin), and the kernel refuses the
///   `ASYNC_CANCEL` the context's drop relies on. Use [`crate::Uring`] for polled I/O.
/// - `IORING_SETUP_R_DISABLED`: the context starts its ring disabled itself when it has an
///   allowlist, and enables it; a ring left disabled would refuse every submission. Use
///   [`ContextBuilder::allow`] for restrictions.
///
/// The others are the builder's to choose; the context keeps them (see [`Context::info`]):
///
/// - `IORING_SETUP_SQPOLL` (with its idle time and CPU): a kernel thread consumes the SQ.
///   [`Context::push`] publishes an op's SQEs, wakes the poller if it sleeps, and when the
///   SQ is full waits for the poller to make room (`IORING_ENTER_SQ_WAIT`). Every request is
///   issued by the poller thread, so ops no longer belong to the thread that pushed them (see
///   "Threads" on [`Context`]). Before Linux 5.11 (no `IORING_FEAT_SQPOLL_NONFIXED`) the
///   poller only takes registered files, and SQPOLL needs privileges on older kernels.
/// - `IORING_SETUP_COOP_TASKRUN` (and `TASKRUN_FLAG`): the kernel no longer interrupts a
///   thread running in user space to finish its ops (a thread asleep, in a wait or on a lock,
///   is still woken). Completions of ops that finish through the submitting thread's task
///   work (reads of pipes and sockets, polls) then wait until that thread next enters or
///   leaves the kernel, which a busy thread does at least at its next timer tick. Waits still
///   see every completion; with `TASKRUN_FLAG` they enter the kernel when the ring says task
///   work is pending.
/// - The rest (`CQSIZE`, `CLAMP`, `ATTACH_WQ`, `SUBMIT_ALL`, `SQE128`, `CQE32`,
///   `NO_SQARRAY`) change nothing a context relies on.
///
/// # Examples
///
/// ```
/// use uring_ops::{ops::{Nop, Readv, Writev}, Context, Error};
/// let ctx = Context::builder(16).allow::<Readv<Vec<u8>>>().allow::<Nop>().build()?;
/// let f = std::fs::File::open("/dev/null")?;
/// let refused = ctx.push(Writev::new(&f, vec![vec![1u8]], 0)).unwrap_err();
/// assert!(matches!(refused.error, Error::NotAllowed { op: "WRITEV" }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A context on an SQPOLL ring with an allowlist:
///
/// ```
/// use std::time::Duration;
/// use uring_ops::{core::{Builder, SetupFlags}, ops::Nop, ContextBuilder};
/// let ring = Builder::new(64).sqpoll(Duration::from_millis(100));
/// let ctx = match ContextBuilder::with_builder(ring).allow::<Nop>().build() {
///     Ok(ctx) => ctx,
///     // Older kernels allow SQPOLL to privileged users only.
///     Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(()),
///     Err(e) => return Err(e.into()),
/// };
/// assert!(ctx.info().flags.contains(SetupFlags::SQPOLL));
/// assert_eq!(ctx.wait(ctx.push(Nop::new()).map_err(|e| e.error)?)??, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    ring: Builder,
    allowed: Option<OpSet>,
    register_ops: Vec<u8>,
}

impl ContextBuilder {
    /// A context with `entries` SQ entries (rounded up to a power of two by the kernel) and
    /// default setup.
    pub fn new(entries: u32) -> Self {
        Self::with_builder(Builder::new(entries))
    }

    /// A context on a ring set up by `ring`: its sizes and setup flags (SQPOLL with its idle
    /// time and CPU, COOP_TASKRUN, ATTACH_WQ, ...). [`ContextBuilder::build`] refuses the
    /// flags a context cannot honour; the "Setup flags" section above lists them and why.
    /// An allowlist adds `IORING_SETUP_R_DISABLED` to the flags given here, keeping them all.
    pub fn with_builder(ring: Builder) -> Self {
        ContextBuilder {
            ring,
            allowed: None,
            register_ops: Vec::new(),
        }
    }

    /// `n` CQ entries (default: the builder's, else twice the SQ entries). Overrides a size
    /// set on the builder given to [`ContextBuilder::with_builder`].
    pub fn cq_entries(mut self, n: u32) -> Self {
        self.ring = self.ring.cq_entries(n);
        self
    }

    /// Permits op type `O` (by its opcode: `Readv<Vec<u8>>` permits every `Readv`), and turns
    /// the allowlist on.
    pub fn allow<O: Op>(mut self) -> Self {
        self.allowed
            .get_or_insert_with(OpSet::empty)
            .insert(O::OPCODE);
        self
    }

    /// Permits `io_uring_register` opcode `op` (`IORING_REGISTER_*`) once the ring is
    /// restricted; without it every registration is refused after [`ContextBuilder::build`].
    /// Only meaningful with an allowlist.
    pub fn allow_register(mut self, op: u8) -> Self {
        self.register_ops.push(op);
        self
    }

    /// Creates the ring, probes the kernel's opcodes, and registers the allowlist.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming a setup flag a context refuses (before any ring is
    /// made; see "Setup flags" above); [`Error::Core`]: the setup refused (as for
    /// [`Builder::build`]), the probe, or the restriction or enabling registration failing,
    /// with the kernel's errno.
    pub fn build(&self) -> Result<Context> {
        check_setup_flags(self.ring.setup_flags())?;
        let mut b = self.ring.clone();
        if self.allowed.is_some() {
            b = b.disabled();
        }
        let ring = b.build()?;
        let supported = probe(&ring)?;
        let allowed = match self.allowed {
            None => OpSet::all(),
            Some(allowed) => {
                restrict(&ring, allowed, &self.register_ops)?;
                allowed
            }
        };
        Ok(Context::from_parts(ring, supported, allowed))
    }
}

/// Refuses the setup flags a [`Context`] cannot honour (see "Setup flags" on
/// [`ContextBuilder`]), naming the flag and why.
fn check_setup_flags(f: SetupFlags) -> Result<()> {
    let why = if f.contains(SetupFlags::DEFER_TASKRUN) {
        "IORING_SETUP_DEFER_TASKRUN: the kernel runs completion work only when the submitting \
         thread waits, and refuses (EEXIST) a wait from any other thread, while a Context \
         submits and waits from any thread"
    } else if f.contains(SetupFlags::SINGLE_ISSUER) && !f.contains(SetupFlags::SQPOLL) {
        "IORING_SETUP_SINGLE_ISSUER without SQPOLL: the kernel refuses (EEXIST) submissions \
         from any thread but the one that made the ring, while a Context submits from every \
         thread that pushes (with SQPOLL the poller thread is the single issuer, and it is \
         accepted)"
    } else if f.intersects(SetupFlags::IOPOLL | SetupFlags::HYBRID_IOPOLL) {
        "IORING_SETUP_IOPOLL: a polled ring completes only while a thread busy-polls it, so a \
         Context's blocking waits would spin, and it refuses the ASYNC_CANCEL a Context's drop \
         relies on (use Uring for polled I/O)"
    } else if f.contains(SetupFlags::R_DISABLED) {
        "IORING_SETUP_R_DISABLED: a Context disables and enables its ring itself, to register \
         an allowlist (ContextBuilder::allow); a ring left disabled would refuse every \
         submission"
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument(format!(
        "a Context cannot use {why}"
    )))
}

/// Registers the restrictions of a disabled ring and enables it.
fn restrict(ring: &Ring<Kernel>, allowed: OpSet, register_ops: &[u8]) -> Result<()> {
    let mut sqe_ops = allowed;
    sqe_ops.insert(sys::IORING_OP_NOP as u8);
    sqe_ops.insert(sys::IORING_OP_ASYNC_CANCEL as u8);
    let mut rs: Vec<Restriction> = (0..=u8::MAX)
        .filter(|&op| sqe_ops.contains(op))
        .map(Restriction::SqeOp)
        .collect();
    rs.push(Restriction::SqeFlagsAllowed(SqeFlags::all()));
    // Since Linux 7.0 the kernel restricts register ops only when the allowlist names at least
    // one ("io_uring: track restrictions separately for IORING_OP and IORING_REGISTER"); before,
    // any restriction refused every register op not named. Naming ENABLE_RINGS, which an
    // enabled ring refuses anyway (EBADFD), keeps every other register op refused on both.
    rs.push(Restriction::RegisterOp(
        sys::IORING_REGISTER_ENABLE_RINGS as u8,
    ));
    rs.extend(register_ops.iter().map(|&op| Restriction::RegisterOp(op)));
    let reg = ring.register();
    reg.register_restrictions(&rs)?;
    reg.enable_rings()?;
    Ok(())
}

/// Ends a poller's turn, on every path out of it (errors and panics included).
struct PollerTurn<'a>(&'a Context);

impl Drop for PollerTurn<'_> {
    fn drop(&mut self) {
        lock(&self.0.shared).polling = false;
        self.0.cond.notify_all();
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
    /// [`Error::InvalidArgument`] before any ring is made.
    pub fn with_builder(builder: &Builder) -> Result<Self> {
        ContextBuilder::with_builder(builder.clone()).build()
    }

    fn from_parts(ring: Ring<Kernel>, supported: OpSet, allowed: OpSet) -> Self {
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
        }
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
    /// its maximum of ops, [`Error::InvalidArgument`], [`Error::Core`].
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
        let refuse = |error, entry| {
            Err(PushError {
                error,
                op: T::from_entry(entry),
            })
        };
        if let Err(error) = entry.check(&self.ops) {
            return refuse(error, entry);
        }
        let n = entry.sqe_count();
        if n > MAX_SQES {
            return Err(too_many_sqes(n, entry));
        }
        let mut sq = lock(&self.sq);
        if sq.free() < n {
            if let Err(error) = self.make_room(&mut sq, n) {
                return refuse(error, entry);
            }
        }
        let mut r = match sq.reserve(n) {
            Ok(r) => r,
            Err(uring_core::Error::NoSpace { needed, free, .. }) => {
                return refuse(Error::QueueFull { needed, free }, entry)
            }
            Err(e) => return refuse(e.into(), entry),
        };
        let key = {
            let mut sh = lock(&self.shared);
            let (key, e) = match sh.slab.insert(entry) {
                Ok(k) => k,
                Err(entry) => return Err(slab_full(entry)),
            };
            for i in 0..n {
                let sqe = r.get(i).expect("reserved");
                e.prepare(i, sqe);
                sqe.set_user_data(user_data(key, i));
            }
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
    /// [`Error::Core`] with the kernel's errno.
    pub fn submit(&self) -> Result<u32> {
        self.submit_locked(&mut lock(&self.sq))
    }

    /// Hands queued SQEs (that the kernel has not taken yet) over to free `n` slots. On an
    /// SQPOLL ring, where the kernel's poller consumes them on its own time, also waits until
    /// it has; elsewhere the kernel consumes during the submit, and SQEs it refused stay
    /// until it agrees.
    fn make_room(&self, sq: &mut SubmissionQueue<Kernel>, n: u32) -> Result<()> {
        self.submit_locked(sq)?;
        if n <= sq.capacity() {
            sq.wait_for_room(n)?;
        }
        Ok(())
    }

    /// Hands queued SQEs over before a wait. On an SQPOLL ring, not if another thread holds the
    /// SQ: every holder publishes what it commits and wakes the poller before it lets go, so
    /// there is nothing a waiter must hand over, and the holder may itself be waiting for the
    /// poller to make room (a push into a full SQ), which a waiter, whose op may be done
    /// already, must not wait behind.
    fn submit_before_waiting(&self) -> Result<()> {
        if !self.info.flags.contains(SetupFlags::SQPOLL) {
            return self.submit().map(drop);
        }
        let mut sq = match self.sq.try_lock() {
            Ok(sq) => sq,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        self.submit_locked(&mut sq).map(drop)
    }

    fn submit_locked(&self, sq: &mut SubmissionQueue<Kernel>) -> Result<u32> {
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
        self.try_reap().unwrap_or(0)
    }

    /// `None` when another thread holds the CQ.
    fn try_reap(&self) -> Option<usize> {
        let mut cq = match self.cq.try_lock() {
            Ok(cq) => cq,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(self.drain(&mut cq))
    }

    /// Dispatches every CQE in the ring, and those the kernel holds back (overflow), with `cq`
    /// held by the caller.
    fn drain(&self, cq: &mut CompletionQueue<Kernel>) -> usize {
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

    fn drain_ring(&self, cq: &mut CompletionQueue<Kernel>) -> usize {
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
        for cqe in batch {
            sh.on_cqe(cqe);
        }
        drop(sh);
        n
    }

    /// Blocks until `ready` gives a value (checked under the shared lock, after every dispatch),
    /// or `deadline` passes (`Ok(None)`). Submits first.
    fn block_until<R>(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&mut Shared) -> Option<R>,
    ) -> Result<Option<R>> {
        self.submit_before_waiting()?;
        self.reap();
        let mut sh = lock(&self.shared);
        loop {
            if let Some(r) = ready(&mut sh) {
                return Ok(Some(r));
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
            };
            if !sh.polling {
                sh.polling = true;
                let seen = sh.reaps;
                drop(sh);
                let turn = PollerTurn(self);
                let polled = self.poll(seen, left);
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
    /// check (`seen`), or `timeout` passes.
    fn poll(&self, seen: u64, timeout: Option<Duration>) -> Result<()> {
        self.submit_before_waiting()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut cq = lock(&self.cq);
        loop {
            if self.drain(&mut cq) > 0 || lock(&self.shared).reaps != seen {
                return Ok(());
            }
            // We hold the CQ and nothing was dispatched since the caller looked: nothing can be
            // until a CQE arrives, which ends this wait.
            let waited = match deadline {
                None => cq.wait(1),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(());
                    }
                    cq.wait_timeout(1, left)
                }
            };
            match waited {
                Ok(_) => {}
                Err(uring_core::Error::Timeout) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
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

    /// As [`Context::wait`], giving up after `timeout` and handing the ticket back.
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
        let deadline = Instant::now() + timeout;
        match self.block_until(Some(deadline), |sh| Self::take_entry(sh, &t)) {
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

    /// As [`Context::wait_completions`], returning an empty list after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn wait_completions_timeout(&self, timeout: Duration) -> Result<Vec<Completion>> {
        let deadline = Instant::now() + timeout;
        Ok(self
            .block_until(Some(deadline), Shared::take_events)?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{Nop, Readv, Writev};

    /// On an SQPOLL ring a waiter does not wait for the SQ lock before waiting: its holder may
    /// be a push waiting for the poller to make room, for as long as the poller is busy, while
    /// the waiter's op is done already. Here the test holds the SQ lock itself, so a waiter
    /// that took it would block until the end of the test.
    #[test]
    fn sqpoll_waiters_do_not_wait_behind_the_sq_lock() {
        let builder = Builder::new(4).sqpoll(Duration::from_millis(5));
        let ctx = match Context::with_builder(&builder) {
            Ok(ctx) => ctx,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => {
                // Straight to stderr: the test harness captures `eprintln!`.
                let _ = std::io::Write::write_fmt(
                    &mut std::io::stderr(),
                    format_args!("sqpoll_waiters_do_not_wait_behind_the_sq_lock: skipped: no SQPOLL ring here: {e}\n"),
                );
                return;
            }
            Err(e) => panic!("setup: {e}"),
        };
        // Tells its completion from `done`'s: 9, or EINVAL where NOP refuses the flag (6.1).
        let t = ctx.push(Nop::new().inject_result(9)).unwrap();
        let done = ctx.push(Nop::new()).unwrap();
        assert_eq!(ctx.wait(done).unwrap().unwrap(), 0);
        let guard = lock(&ctx.sq);
        let (finished, got) = std::thread::scope(|s| {
            let waiter = s.spawn(|| ctx.wait_timeout(t, Duration::from_secs(10)));
            let start = Instant::now();
            while !waiter.is_finished() && start.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let finished = waiter.is_finished();
            drop(guard);
            (finished, waiter.join().unwrap())
        });
        assert!(finished, "the waiter blocked on the SQ lock");
        match got {
            Ok(Ok(res)) => assert_eq!(res, 9),
            Ok(Err(e)) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL)),
            Err(_) => panic!("the NOP did not complete"),
        }
    }

    /// The allowlist is the kernel's too: with the library's own check bypassed, a refused
    /// opcode fails in the kernel with `EACCES`, and allowed ones (with SQE flags) still run.
    #[test]
    fn kernel_enforces_the_allowlist() {
        let mut ctx = Context::builder(8)
            .allow::<Readv<Vec<u8>>>()
            .allow::<Nop>()
            .build()
            .unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        let refused = ctx
            .push(Writev::new(&f, vec![vec![0u8; 4]], 0))
            .unwrap_err();
        assert!(matches!(refused.error, Error::NotAllowed { op: "WRITEV" }));
        ctx.ops = OpCheck::new(OpSet::all(), OpSet::all());
        let t = ctx.push(Writev::new(&f, vec![vec![0u8; 4]], 0)).unwrap();
        let (res, _) = ctx.wait(t).unwrap();
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EACCES));
        let t = ctx
            .push(Nop::new().options(crate::SqeOptions::new().asynchronous()))
            .unwrap();
        assert_eq!(ctx.wait(t).unwrap().unwrap(), 0);
    }

    /// Registration is refused once the ring is restricted, except the register ops allowed.
    #[test]
    fn kernel_enforces_allowed_register_ops() {
        let register = |ctx: &Context, op| {
            // SAFETY: PERSONALITY and ENABLE_RINGS take no argument (null, 0).
            unsafe { sys::io_uring_register(ctx.as_fd(), op, std::ptr::null_mut(), 0) }
        };
        let personality = |ctx: &Context| register(ctx, sys::IORING_REGISTER_PERSONALITY);
        let closed = Context::builder(8).allow::<Nop>().build().unwrap();
        let err = personality(&closed).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES));
        // The one register op every allowlist names (see `restrict`) does nothing any more.
        let err = register(&closed, sys::IORING_REGISTER_ENABLE_RINGS).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADFD));
        let open = Context::builder(8)
            .allow::<Nop>()
            .allow_register(sys::IORING_REGISTER_PERSONALITY as u8)
            .build()
            .unwrap();
        assert!(personality(&open).unwrap() > 0);
    }
}
