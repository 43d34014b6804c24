//! What finished: the records a ring keeps of its tagged submissions, in completion order, and
//! redeeming an op's output from its record.
//!
//! A submission pushed with a tag ([`crate::Uring::push_tagged`],
//! [`crate::Context::push_tagged`]) reports each of its completions that means something to
//! the caller as a [`Completion`]: once when it finishes (a chain: when its last link has), and
//! once per item of a multishot op. The ring queues the records as it routes completions to
//! their ops (a reused queue, no allocation per op), and hands them out in the order the kernel
//! posted them. Untagged submissions queue nothing.

use crate::context::{Held, Shared};
use crate::error::{Error, Result};
use crate::multishot::{MultiEntry, Multishot, MultishotOp};
use crate::op::{res_to_io, Submit};
use crate::slab::Slab;
use crate::uring::Ticket;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::MutexGuard;

/// A completion of a submission pushed with a tag, as the ring reports it (in completion
/// order, each once).
///
/// Two kinds, told apart by [`Completion::more`]:
///
/// - **finished** (`more == false`): the submission is done. Its typed output (result and
///   owned buffers) comes from [`crate::Uring::take`] / [`crate::Context::take`] with this
///   record, or from its ticket, whichever comes first; the other then finds nothing
///   ([`Error::UnknownTicket`]). A chain reports this once, for its last link; a detached
///   submission too, after which it is dropped at once (nothing is left to take).
/// - **an item** (`more == true`): a multishot op made one item and keeps running. The item is
///   kept in the op until [`crate::Uring::take_item`] / [`crate::Context::take_item`] takes it
///   with this record (or a drain of the op takes it with the others); an item nobody takes is
///   given back with the op's output, or dropped with the op.
///
/// The record identifies its submission by [`Completion::key`] (the key of its ticket, unique
/// among live submissions) and carries the caller's [`Completion::tag`] (only reported back:
/// equal tags are harmless). Redeeming from a record is type-checked at run time: a record
/// does not know its op's type, so asking for another type is [`Error::WrongType`], never a
/// misread. A record redeems only at the ring that made it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The key the library assigned to the submission: its ticket's [`Ticket::user_data`].
    key: u64,
    /// The caller's tag, given at push.
    tag: u64,
    /// The raw result of the completion (a negative errno on failure). For a finished chain,
    /// that of its last completion; the typed output has each link's.
    res: i32,
    /// The completion's flags (`IORING_CQE_F_*`).
    flags: u32,
    /// Whether the submission keeps running: an item of a multishot op.
    more: bool,
    /// For an item, its number within its op (wrapping).
    item: u32,
    /// The low half of the id of the ring that made the record.
    ring: u32,
}

impl Completion {
    /// The key the library assigned to the submission: its ticket's [`Ticket::user_data`].
    #[inline]
    pub fn key(&self) -> u64 {
        self.key
    }

    /// The caller's tag, given at push.
    #[inline]
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// The raw result of the completion (a negative errno on failure). For a finished chain,
    /// that of its last completion; the typed output has each link's.
    #[inline]
    pub fn res(&self) -> i32 {
        self.res
    }

    /// The completion's flags (`IORING_CQE_F_*`).
    #[inline]
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Whether the submission keeps running: an item of a multishot op.
    #[inline]
    pub fn more(&self) -> bool {
        self.more
    }

    /// A record of ring `ring` (its full id; the low half is kept).
    #[inline]
    pub(crate) fn new(
        ring: u64,
        key: u64,
        tag: u64,
        res: i32,
        flags: u32,
        item: Option<u32>,
    ) -> Self {
        Completion {
            key,
            tag,
            res,
            flags,
            more: item.is_some(),
            item: item.unwrap_or(0),
            ring: ring as u32,
        }
    }

    /// [`Completion::res`] as `io::Result`.
    pub fn result(&self) -> io::Result<u32> {
        res_to_io(self.res)
    }

    /// Whether ring `id` made this record.
    #[inline]
    pub(crate) fn is_of(&self, id: u64) -> bool {
        self.ring == id as u32
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Completion");
        d.field("key", &format_args!("{:#x}", self.key))
            .field("tag", &self.tag)
            .field("res", &self.res)
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("more", &self.more);
        if self.more {
            d.field("item", &self.item);
        }
        d.finish()
    }
}

/// What a non-blocking or timed redemption found: the output, or the ticket handed back
/// because the submission has not finished (yet, or before the time ran out).
///
/// ```
/// use uring_ops::{ops::Nop, Outcome, Uring};
/// let mut ring = Uring::new(4)?;
/// let t = ring.push(Nop::new())?;
/// let t = match ring.try_take(t)? {
///     Outcome::Done(_) => unreachable!("not submitted yet"),
///     Outcome::Pending(t) => t,
/// };
/// ring.submit_and_wait(1)?;
/// ring.reap();
/// assert_eq!(ring.try_take(t)?.done().expect("finished")?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a pending outcome holds the ticket, the only claim to the op's output"]
pub enum Outcome<T: Submit> {
    /// The submission finished: its output.
    Done(T::Output),
    /// It has not finished: the ticket, back.
    Pending(Ticket<T>),
}

impl<T: Submit> Outcome<T> {
    /// The output, if finished (a pending ticket is dropped: its op stays in the ring until
    /// the ring is dropped).
    pub fn done(self) -> Option<T::Output> {
        match self {
            Outcome::Done(out) => Some(out),
            Outcome::Pending(_) => None,
        }
    }

    /// The ticket, if the submission has not finished (the output of a finished one is
    /// dropped).
    pub fn pending(self) -> Option<Ticket<T>> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Pending(t) => Some(t),
        }
    }

    /// Whether the submission finished.
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done(_))
    }
}

impl<T: Submit> fmt::Debug for Outcome<T>
where
    T::Output: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Done(out) => f.debug_tuple("Done").field(out).finish(),
            Outcome::Pending(t) => f.debug_tuple("Pending").field(t).finish(),
        }
    }
}

/// Redeeming from records, on a slab (shared by [`crate::Uring`] and [`crate::Context`]).
impl Slab {
    /// The output of the finished submission `c` names, if it is a `T`.
    pub(crate) fn take_completed<T: Submit>(&mut self, c: &Completion) -> Result<T::Output> {
        if !c.is_of(self.ring_id()) {
            return Err(Error::UnknownTicket);
        }
        self.take_checked::<T::Entry>(c.key)
    }

    /// The item record `c` names, if its op is a `Multishot<O>`.
    pub(crate) fn take_item_of<O: MultishotOp>(&mut self, c: &Completion) -> Result<O::Item> {
        if !c.is_of(self.ring_id()) {
            return Err(Error::UnknownTicket);
        }
        if !c.more {
            return Err(Error::NotAnItem);
        }
        let e = self.get_checked::<<Multishot<O> as Submit>::Entry>(c.key)?;
        MultiEntry::take_item(e, c.item).ok_or(Error::ItemTaken)
    }
}

/// The completion records a ring holds, handed out in completion order: an iterator, with
/// [`Completions::redeem`] and [`Completions::take_item`] to redeem from them while it lives
/// (`redeem` rather than `take`, which is [`Iterator::take`]'s name).
///
/// From [`crate::Uring::completions`] (which brings ready completions in first) or
/// [`crate::Context::completions`] (which holds the context's bookkeeping lock while it
/// lives: drop it before calling the context again from this thread, where such a call fails
/// with [`Error::Reentrant`], or panics if it returns no `Result`, rather than deadlock). A
/// record the iterator has not handed out stays queued for the next call.
///
/// ```
/// use uring_ops::{ops::Nop, Uring};
/// let mut ring = Uring::new(8)?;
/// for i in 0..3 {
///     let t = ring.push_tagged(Nop::new(), i)?;
///     ring.detach(t); // the record says when it is done; the ticket is not needed
/// }
/// ring.submit_and_wait(3)?;
/// let tags: Vec<u64> = ring.completions().map(|c| c.tag()).collect();
/// assert_eq!(tags, [0, 1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Completions<'a> {
    /// The slab the records and entries are in: borrowed from a `Uring` for `'a`, or inside
    /// the context's bookkeeping that `_lock` keeps locked.
    slab: NonNull<Slab>,
    /// Dropped before the lock (field order): the thread's hold ends with it.
    _held: Option<Held>,
    _lock: Option<MutexGuard<'a, Shared>>,
    _slab: PhantomData<&'a mut Slab>,
}

impl fmt::Debug for Completions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completions")
            .field("queued", &self.len())
            .finish()
    }
}

impl<'a> Completions<'a> {
    /// The records of a slab borrowed for `'a`.
    #[inline]
    pub(crate) fn new(slab: &'a mut Slab) -> Self {
        Completions {
            slab: NonNull::from(slab),
            _held: None,
            _lock: None,
            _slab: PhantomData,
        }
    }

    /// The records of the slab of context `id`, locked for `'a` (and the thread's hold of it
    /// recorded, so that a call back into the context fails instead of deadlocking).
    pub(crate) fn locked(mut lock: MutexGuard<'a, Shared>, id: u64) -> Self {
        Completions {
            slab: NonNull::from(&mut lock.slab),
            _held: Some(Held::enter(id)),
            _lock: Some(lock),
            _slab: PhantomData,
        }
    }

    #[inline]
    fn slab(&mut self) -> &mut Slab {
        // SAFETY: the slab is borrowed mutably for `'a` (`new`), or is inside the data of a
        // mutex whose guard this value holds (`locked`: the data does not move with the
        // guard); either way nothing else reaches it while `self` is borrowed mutably.
        unsafe { self.slab.as_mut() }
    }

    #[inline]
    fn slab_ref(&self) -> &Slab {
        // SAFETY: as for `slab`, shared.
        unsafe { self.slab.as_ref() }
    }

    /// Redeems the finished submission `c` names, as a `T` (its output, with what its op
    /// owned), as [`crate::Uring::take`] does.
    ///
    /// # Errors
    ///
    /// As for [`crate::Uring::take`].
    #[inline]
    pub fn redeem<T: Submit>(&mut self, c: &Completion) -> Result<T::Output> {
        self.slab().take_completed::<T>(c)
    }

    /// Takes the item `c` reports, of a `Multishot<O>`, as [`crate::Uring::take_item`] does.
    ///
    /// # Errors
    ///
    /// As for [`crate::Uring::take_item`].
    pub fn take_item<O: MultishotOp>(&mut self, c: &Completion) -> Result<O::Item> {
        self.slab().take_item_of::<O>(c)
    }
}

impl Iterator for Completions<'_> {
    type Item = Completion;

    #[inline]
    fn next(&mut self) -> Option<Completion> {
        self.slab().next_completion()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.slab_ref().completions_queued();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Completions<'_> {}
