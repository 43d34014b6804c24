//! [`Uring`]: a ring that takes typed ops, owns them while the kernel works, and gives them
//! back with their results.

mod cancel;
mod events;

pub(crate) use cancel::{cancel_all, dispatch, queue_link_cancels};

use crate::completion::Outcome;
use crate::error::{Error, PushError, Result};
use crate::op::{OpCheck, OpSet, Submit};
use crate::push;
use crate::slab::{Slab, INTERNAL_INDEX, SUB_BITS};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use uring_core::{deadline_after, Builder, Kernel, Resize, Ring, RingInfo, SetupFlags};

/// How long dropping a ring with ops in flight waits for them after cancelling them. What has
/// not completed by then is leaked, never freed.
pub const DROP_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// User data of the ring's own SQEs (cancel-all, and those below): its slot index is one no
/// slot has, so it never names an op; the low bits tell the ring's own completions apart.
/// Every such value is listed here, so that no two uses share one.
pub(crate) const INTERNAL: u64 = (INTERNAL_INDEX as u64) << SUB_BITS;

/// User data of [`crate::Context::wake`]'s NOP, and of a [`crate::ops::MsgRing::wake`] message:
/// a `Context` counts it as a wake-up.
pub(crate) const WAKE: u64 = INTERNAL | 1;

/// User data of the ring's cancels of links that would otherwise never complete (see
/// [`queue_link_cancels`]).
pub(crate) const CANCEL_LINK: u64 = INTERNAL | 2;

/// User data of the completion a descriptor passed in by [`crate::ops::MsgRing::send_fd`]
/// posts: the ring ignores it.
pub(crate) const PASSED: u64 = INTERNAL | 3;

static NEXT_RING_ID: AtomicU64 = AtomicU64::new(1);

/// A process-unique ring id, carried by tickets so that a ticket only redeems at its own ring.
pub(crate) fn next_ring_id() -> u64 {
    // Relaxed: only uniqueness matters.
    NEXT_RING_ID.fetch_add(1, Ordering::Relaxed)
}

/// The opcodes the running kernel supports (`IORING_REGISTER_PROBE`).
pub(crate) fn probe(ring: &Ring<Kernel>) -> Result<OpSet> {
    let probe = ring.register().probe()?;
    let mut supported = OpSet::empty();
    for op in 0..=probe.last_op() {
        if probe.supports(op) {
            supported.insert(op);
        }
    }
    Ok(supported)
}

/// The claim to a submission's result: redeem it with [`Uring::wait`] or [`Uring::try_take`]
/// (or the same methods of [`crate::Context`], from any thread).
///
/// A ticket is only a key: dropping it (or `mem::forget`) leaves the op, and everything it
/// owns, in the ring until the ring is dropped; [`Uring::detach`] ([`crate::Context::detach`]) frees it at completion
/// instead. The key carries the ring's id (64-bit, never reused) and the slot's index and
/// generation. Tickets are neither `Clone` nor constructible outside this crate, and redeeming
/// or detaching one consumes it. A slot is freed through its ticket or, for a tagged
/// submission, its completion record ([`Uring::take`]); the generation then moves on, and a
/// slot whose generation would wrap is retired, never reused, so a ticket never names another
/// op: it redeems its own, or nothing ([`Error::UnknownTicket`]).
#[must_use = "an op's result and buffers come back only through its ticket (or detach it)"]
pub struct Ticket<T> {
    /// The slot's key: generation and index, as in the user data of the op's first SQE.
    pub(crate) key: u64,
    pub(crate) ring: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Ticket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("key", &format_args!("{:#x}", self.key))
            .field("ring", &self.ring)
            .finish()
    }
}

impl<T> Ticket<T> {
    pub(crate) fn new(key: u64, ring: u64) -> Self {
        Ticket {
            key,
            ring,
            _t: PhantomData,
        }
    }

    /// The user data of the (first) SQE of this submission, as the kernel sees it.
    pub fn user_data(&self) -> u64 {
        self.key
    }
}

/// A ring for typed ops, used from one thread at a time (`Send`, not `Sync`; see
/// [`crate::Context`] for sharing).
///
/// Every op pushed is moved into the ring, which keeps it, at a fixed address, until the kernel
/// has completed it; the result and the op's buffers come back through its [`Ticket`]. The hot
/// path takes no lock, does no map look-up and allocates nothing per op.
///
/// # Fork
///
/// A ring belongs to the process that made it. A child made with `fork` inherits the kernel's
/// ring (its fd and memory, shared with the parent) but only a copy of the bookkeeping, whose
/// positions and keys are the parent's: used, its completions would be taken for the parent's
/// ops. So at the fork the child's view of the ring memory becomes a private copy, and every
/// step that would reach the kernel is refused with [`uring_core::Error::ForkedChild`]
/// (`EPERM`, as [`Error::Core`]): [`Uring::submit`], the waits, registration
/// ([`Uring::register`], [`crate::FixedBufs::register`]);
/// [`Uring::cancel_all`] cancels nothing. [`Uring::push`] checks nothing (it is the hot path):
/// in a child it queues the op in the child's copy, where it never reaches the kernel, and the
/// next submit or wait fails. Dropping the ring in the child cancels nothing and waits
/// for nothing; the child's copies of ops in flight are leaked (in the child only). The
/// parent's ring, and its ops, are unaffected either way. Set up rings in the child after
/// forking. (Forks through libc's `fork` are detected; a raw `clone` system call is not.)
///
/// # Examples
///
/// ```
/// use uring_ops::{ops::Nop, Uring};
/// let mut ring = Uring::new(8)?;
/// let t = ring.push(Nop::new())?;
/// ring.wait(t)??;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Uring {
    ring: Ring<Kernel>,
    slab: Slab,
    ops: OpCheck,
    id: u64,
    /// Whether the ring has a kernel poller thread (`IORING_SETUP_SQPOLL`).
    sqpoll: bool,
}

impl fmt::Debug for Uring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uring")
            .field("ring", &self.ring)
            .field("slab", &self.slab)
            .finish_non_exhaustive()
    }
}

impl Uring {
    /// A ring with `entries` SQ entries and default settings.
    ///
    /// # Errors
    ///
    /// As for [`Builder::build`], or the probe failing.
    pub fn new(entries: u32) -> Result<Self> {
        Self::with_builder(&Builder::new(entries))
    }

    /// A ring set up by `builder`.
    ///
    /// # Errors
    ///
    /// As for [`Builder::build`], or the probe failing.
    pub fn with_builder(builder: &Builder) -> Result<Self> {
        let ring = builder.build()?;
        let supported = probe(&ring)?;
        Ok(Self::from_parts(ring, supported, OpSet::all()))
    }

    /// Takes over a ring made with uring-core (for example to register resources on it first).
    ///
    /// # Safety
    ///
    /// Completions are routed to ops by their user data alone, so nothing but this `Uring` may
    /// post completions into the ring from now on: no SQE committed through uring-core may be
    /// queued or in the kernel, no completion may be waiting in the ring or in the kernel's
    /// overflow list, and no other ring may post into it (`IORING_OP_MSG_RING`). A stray
    /// completion with a colliding user data would end an op the kernel is still using, and
    /// its buffer could be freed while the kernel writes into it.
    ///
    /// # Errors
    ///
    /// [`Error::RingNotQuiet`] when SQEs are visibly queued or completions visibly pending
    /// (a cheap check that cannot see SQEs already inside the kernel), or the probe
    /// (`IORING_REGISTER_PROBE`) failing.
    pub unsafe fn from_ring(mut ring: Ring<Kernel>) -> Result<Self> {
        let queued = ring.sq().pending();
        let ready = ring.cq().ready() + u32::from(ring.cq().kernel_has_more());
        if queued > 0 || ready > 0 {
            return Err(Error::RingNotQuiet { queued, ready });
        }
        let supported = probe(&ring)?;
        Ok(Self::from_parts(ring, supported, OpSet::all()))
    }

    pub(crate) fn from_parts(ring: Ring<Kernel>, supported: OpSet, allowed: OpSet) -> Self {
        let id = next_ring_id();
        Uring {
            sqpoll: ring.info().flags.contains(SetupFlags::SQPOLL),
            ring,
            slab: Slab::new(id),
            ops: OpCheck::new(supported, allowed),
            id,
        }
    }

    /// What the kernel answered at setup: real sizes, features, flags (as
    /// [`crate::Context::info`]).
    pub fn info(&self) -> RingInfo {
        self.ring.info()
    }

    /// Registration on the ring (files, buffers, eventfd, personalities, ...), as
    /// [`crate::Context::register`] on a context. For registered buffers the ops take, use
    /// [`crate::FixedBufs::register`], and for provided buffers [`crate::BufRing`].
    pub fn register(&self) -> uring_core::Registrar<'_> {
        self.ring.register()
    }

    /// The underlying ring, for its setup information, fd and registration.
    pub fn ring(&self) -> &Ring<Kernel> {
        &self.ring
    }

    /// Whether the running kernel supports `opcode` (`IORING_OP_*`).
    pub fn supports(&self, opcode: u8) -> bool {
        self.ops.supports(opcode)
    }

    /// The ring's process-unique id (the one its tickets carry).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Resizes the ring's queues, keeping every op in flight: their completions arrive in the
    /// new CQ, and their tickets redeem as before. See [`Ring::resize`]
    /// (`IORING_REGISTER_RESIZE_RINGS`, Linux 6.13) for the kernel's rules: only rings set up
    /// with `DEFER_TASKRUN` (by [`Uring::with_builder`]), and only from their thread.
    ///
    /// # Errors
    ///
    /// As for [`Ring::resize`], as [`Error::Core`]; nothing changes on an error from the
    /// kernel.
    pub fn resize(&mut self, new: &Resize) -> Result<RingInfo> {
        Ok(self.ring.resize(new)?)
    }

    /// Ops pushed whose completions have not all arrived.
    pub fn in_flight(&self) -> usize {
        self.slab.in_flight()
    }

    /// Queues an op (or a chain): checks the kernel supports it, reserves its SQEs (all or
    /// none), moves it into the ring and prepares its SQEs in place. It reaches the kernel at the
    /// next [`Uring::submit`] (or any wait).
    ///
    /// # Errors
    ///
    /// The op comes back untouched inside the [`PushError`]: [`Error::Unsupported`] naming the
    /// op, [`Error::NotAllowed`], [`Error::QueueFull`] when the SQ lacks room (the ring is left
    /// unchanged; call [`Uring::submit`] and push again), [`Error::TooManyOps`] when the ring
    /// already tracks its maximum of ops, and the op's own argument errors
    /// ([`Error::NotAnErrno`], ...) or a chain's ([`Error::MisplacedLinkTimeout`], ...).
    ///
    /// On an SQPOLL ring the kernel's poller thread consumes SQEs on its own time, so a full
    /// SQ only means it has not caught up: `push` then publishes what is queued, wakes the
    /// poller if it sleeps, and waits for room (`IORING_ENTER_SQ_WAIT`) instead of failing.
    #[inline]
    pub fn push<T: Submit>(&mut self, op: T) -> Result<Ticket<T>, PushError<T>> {
        self.push_inner(op, None)
    }

    /// As [`Uring::push`], and the submission reports what it did as [`Completion`] records
    /// carrying `tag` ([`Uring::completions`]): once when it finishes (a chain: when its last
    /// link has), and once per item of a multishot op. The tag is only reported back: equal
    /// tags are harmless. Redeem the output with the ticket, or with [`Uring::take`] and the
    /// record; or detach the ticket ([`Uring::detach`]), and the op is dropped as soon as its
    /// record is queued.
    ///
    /// Costs one store more than [`Uring::push`] at push, and a record queued at completion
    /// (a reused queue: no allocation per op).
    ///
    /// # Errors
    ///
    /// As for [`Uring::push`].
    ///
    /// [`Completion`]: crate::Completion
    #[inline]
    pub fn push_tagged<T: Submit>(&mut self, op: T, tag: u64) -> Result<Ticket<T>, PushError<T>> {
        self.push_inner(op, Some(tag))
    }

    #[inline(always)]
    fn push_inner<T: Submit>(
        &mut self,
        op: T,
        tag: Option<u64>,
    ) -> Result<Ticket<T>, PushError<T>> {
        let entry = op.into_entry();
        let n = match push::check(&entry, &self.ops) {
            Ok(n) => n,
            Err(error) => return Err(push::refused(error, entry)),
        };
        let Ok(mut r) = self.ring.sq().reserve(n) else {
            return self.push_when_full(entry, tag, n);
        };
        let Some(slot) = self.slab.vacant() else {
            return Err(push::slab_full(entry));
        };
        let key = push::fill(&mut r, slot.tagged(tag), entry, n);
        // SAFETY: the SQEs name only memory the entry owns (the `Entry`/`Op` contract; memory
        // that moving the entry does not move when they were prepared before the move), and the
        // entry stays in its slab slot, unmoved and undropped, until its last completion is
        // reaped (slots are freed only by `take`/`detach` after completion, and a slab dropped
        // with entries in flight leaks them).
        unsafe { r.commit() };
        Ok(Ticket::new(key, self.id))
    }

    /// The rest of [`Uring::push`] when the SQ had no room for `entry`'s `n` SQEs: on an
    /// SQPOLL ring, whose poller consumes SQEs on its own time, waits for it to make room and
    /// pushes again; otherwise hands the op back with the error. (It asks the SQ again for the
    /// error, so that the push path keeps nothing of its failed reserve alive.)
    #[cold]
    #[inline(never)]
    fn push_when_full<T: Submit>(
        &mut self,
        entry: T::Entry,
        tag: Option<u64>,
        n: u32,
    ) -> Result<Ticket<T>, PushError<T>> {
        let sq = self.ring.sq();
        let error = match sq.reserve(n).map(drop) {
            // Room was made meanwhile (an SQPOLL poller consumed SQEs).
            Ok(()) => return self.push_inner(T::from_entry(entry), tag),
            Err(uring_core::Error::NoSpace { .. }) if self.sqpoll && n <= sq.capacity() => {
                match sq.wait_for_room(n) {
                    // With `&mut self` nobody else takes the room: this push succeeds.
                    Ok(_) => return self.push_inner(T::from_entry(entry), tag),
                    Err(e) => e.into(),
                }
            }
            Err(uring_core::Error::NoSpace { needed, free, .. }) => {
                Error::QueueFull { needed, free }
            }
            Err(e) => e.into(),
        };
        Err(push::refused(error, entry))
    }

    /// Hands queued SQEs to the kernel. Returns how many it consumed.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn submit(&mut self) -> Result<u32> {
        let Uring { ring, slab, .. } = self;
        Ok(ring.submit_or_reap(|cqe| {
            dispatch(slab, cqe);
        })?)
    }

    /// Submits, and waits until at least `want` completions are ready (not reaped yet).
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn submit_and_wait(&mut self, want: u32) -> Result<u32> {
        let n = self.submit()?;
        if want > 0 {
            self.ring.wait(want)?;
        }
        Ok(n)
    }

    /// Moves every ready completion to its op. Returns how many were processed.
    ///
    /// A link the kernel will not end on its own (see "Threads" on [`crate::Context`]) is
    /// cancelled from here: the cancel is queued, and goes with the next submit or wait.
    #[inline(always)]
    pub fn reap(&mut self) -> usize {
        let Uring { ring, slab, .. } = self;
        let n = slab.complete_batch(ring.cq().batch());
        if slab.has_links_to_cancel() {
            queue_link_cancels(ring.sq(), slab);
        }
        n
    }

    /// Whether the ticket's submission has finished (after the last [`Uring::reap`]).
    pub fn is_done<T: Submit>(&self, t: &Ticket<T>) -> bool {
        t.ring == self.id && self.slab.is_done(t.key)
    }

    /// Redeems a finished submission without blocking: [`Outcome::Done`] with its output, or
    /// [`Outcome::Pending`] with the ticket back if it has not finished yet. Call
    /// [`Uring::reap`] (or a wait) to bring completions in.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`] if the ticket is not this ring's, or its submission was
    /// already redeemed through its completion record ([`Uring::take`]).
    #[inline]
    pub fn try_take<T: Submit>(&mut self, t: Ticket<T>) -> Result<Outcome<T>> {
        if t.ring != self.id {
            return Err(Error::UnknownTicket);
        }
        // SAFETY: the ticket carries this ring's id, so its key was issued by this ring's slab.
        match unsafe { self.slab.take_issued::<T::Entry>(t.key) } {
            Ok(out) => Ok(Outcome::Done(out)),
            Err(true) => Ok(Outcome::Pending(t)),
            Err(false) => Err(Error::UnknownTicket),
        }
    }

    /// Waits until the ticket's submission has finished (submitting what is queued) and
    /// redeems it.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`], or the ring failing ([`Error::Core`]).
    pub fn wait<T: Submit>(&mut self, t: Ticket<T>) -> Result<T::Output> {
        if t.ring != self.id || !self.slab.is_live(t.key) {
            return Err(Error::UnknownTicket);
        }
        loop {
            // SAFETY: the ticket carries this ring's id (checked above), so its key was
            // issued by this ring's slab.
            if let Ok(out) = unsafe { self.slab.take_issued::<T::Entry>(t.key) } {
                return Ok(out);
            }
            if self.reap() > 0 {
                continue;
            }
            self.submit()?;
            if self.reap() == 0 {
                self.ring.wait(1)?;
            }
        }
    }

    /// As [`Uring::wait`], giving up after `timeout`: [`Outcome::Pending`] hands the ticket
    /// back when the time runs out. A timeout too long for `Instant` ([`Duration::MAX`]) is no
    /// deadline.
    ///
    /// # Errors
    ///
    /// As for [`Uring::wait`].
    pub fn wait_timeout<T: Submit>(
        &mut self,
        t: Ticket<T>,
        timeout: Duration,
    ) -> Result<Outcome<T>> {
        let deadline = deadline_after(timeout);
        if t.ring != self.id || !self.slab.is_live(t.key) {
            return Err(Error::UnknownTicket);
        }
        loop {
            // SAFETY: the ticket carries this ring's id (checked above), so its key was
            // issued by this ring's slab.
            if let Ok(out) = unsafe { self.slab.take_issued::<T::Entry>(t.key) } {
                return Ok(Outcome::Done(out));
            }
            if self.reap() > 0 {
                continue;
            }
            self.submit()?;
            if self.reap() > 0 {
                continue;
            }
            match self.ring.cq().wait_deadline(1, deadline) {
                Ok(_) => {}
                Err(uring_core::Error::Timeout) => return Ok(Outcome::Pending(t)),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Gives up the ticket: the op and what it owns are dropped once it completes (now, if it
    /// already has). Returns whether the ticket was live.
    pub fn detach<T: Submit>(&mut self, t: Ticket<T>) -> bool {
        t.ring == self.id && self.slab.detach::<T::Entry>(t.key)
    }

    /// Cancels everything in flight and waits, at most `timeout` (no limit for a timeout too
    /// long for `Instant`, such as [`Duration::MAX`]), for it to complete. Returns how many
    /// entries are still in flight.
    pub fn cancel_all(&mut self, timeout: Duration) -> usize {
        let (sq, cq) = self.ring.split();
        cancel_all(sq, cq, &mut self.slab, timeout)
    }
}

impl Drop for Uring {
    /// Cancels what is in flight and waits up to [`DROP_DRAIN_TIMEOUT`] for it; whatever the
    /// kernel may still touch after that is leaked, never freed.
    fn drop(&mut self) {
        self.cancel_all(DROP_DRAIN_TIMEOUT);
    }
}
