//! [`Uring`]: what finished (the records of tagged submissions) and multishot items.

use super::{Ticket, Uring};
use crate::completion::{Completion, Completions};
use crate::error::{Error, Result};
use crate::multishot::{MultiEntry, Multishot, MultishotOp};
use crate::op::Submit;
use std::time::Duration;
use uring_core::deadline_after;

/// What finished: the records of submissions pushed with [`Uring::push_tagged`].
///
/// An event loop waits with [`Uring::wait_completions`], takes the records one by one with
/// [`Uring::next_completion`] (or all at once with [`Uring::completions`]), and redeems each
/// submission's output from its record with [`Uring::take`] (a multishot op's items with
/// [`Uring::take_item`]), so it never scans its tickets:
///
/// ```
/// use std::time::Duration;
/// use uring_ops::{ops::{Nop, Timeout}, Uring};
/// let mut ring = Uring::new(8)?;
/// const NOP: u64 = 1;
/// const TIMER: u64 = 2;
/// let nop = ring.push_tagged(Nop::new(), NOP)?;
/// ring.detach(nop); // its record will do
/// let timer = ring.push_tagged(Timeout::new(Duration::from_millis(5)), TIMER)?;
/// ring.detach(timer);
/// let mut seen = Vec::new();
/// while seen.len() < 2 {
///     ring.wait_completions(Duration::MAX)?;
///     while let Some(c) = ring.next_completion() {
///         seen.push(c.tag()); // the outputs are gone with the detached tickets
///     }
/// }
/// assert_eq!(seen, [NOP, TIMER]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl Uring {
    /// The records queued so far, in completion order, after bringing in the completions that
    /// are ready (no system call). The iterator hands each record out once; those it does not
    /// hand out stay queued.
    #[inline]
    pub fn completions(&mut self) -> Completions<'_> {
        self.reap();
        Completions::new(&mut self.slab)
    }

    /// The oldest record not handed out yet, bringing in the completions that are ready first
    /// if none is queued (no system call). For loops that push while they go through the
    /// records (which [`Uring::completions`]' borrow does not allow).
    #[inline]
    pub fn next_completion(&mut self) -> Option<Completion> {
        if let Some(c) = self.slab.next_completion() {
            return Some(c);
        }
        self.reap();
        self.slab.next_completion()
    }

    /// Hands queued SQEs to the kernel, and waits, at most `timeout`, until at least one record
    /// is queued (untagged completions are routed to their ops meanwhile). Returns how many
    /// records are queued: 0 when the time ran out, or when nothing is in flight any more
    /// (so no record can come). A timeout too long for `Instant`
    /// ([`Duration::MAX`]) is no deadline.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn wait_completions(&mut self, timeout: Duration) -> Result<usize> {
        let deadline = deadline_after(timeout);
        loop {
            self.reap();
            self.submit()?;
            self.reap();
            let n = self.slab.completions_queued();
            if n > 0 {
                return Ok(n);
            }
            if self.slab.in_flight() == 0 {
                // Nothing could report a record: waiting would never end (a `Uring` has no
                // wake-up from another thread).
                return Ok(0);
            }
            match self.ring.cq().wait_deadline(1, deadline) {
                Ok(_) => {}
                Err(uring_core::Error::Timeout) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// As [`Uring::wait_completions`], moving the records to the end of `into` (no allocation
    /// once `into` has grown to the size of a batch). Returns how many were moved.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn wait_completions_into(
        &mut self,
        into: &mut Vec<Completion>,
        timeout: Duration,
    ) -> Result<usize> {
        self.wait_completions(timeout)?;
        Ok(self.slab.move_completions(into))
    }

    /// Redeems the finished submission that record `c` reports, as a `T`: its output, with
    /// what its op owned, as its ticket would give it. Then its ticket, if still held, redeems
    /// nothing ([`Error::UnknownTicket`]), and the other way round.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`] if the submission was redeemed already (by ticket or record),
    /// was detached, or the record is another ring's; [`Error::WrongType`] if it is not a `T`;
    /// [`Error::NotFinished`] for the record of an item (its op still runs: see
    /// [`Uring::take_item`]).
    #[inline]
    pub fn take<T: Submit>(&mut self, c: &Completion) -> Result<T::Output> {
        self.slab.take_completed::<T>(c)
    }

    /// Takes the item that record `c` reports, of a `Multishot<O>`: each item is made once, at
    /// its completion, and kept in its op until taken this way, by a drain ([`Uring::drain`]),
    /// or with the op's output. Items may be taken in any order.
    ///
    /// # Errors
    ///
    /// [`Error::NotAnItem`] for a record that is not an item's; [`Error::ItemTaken`] if this
    /// item was taken already; [`Error::UnknownTicket`] if its op was redeemed or detached
    /// (which gives up its items) or the record is another ring's; [`Error::WrongType`] if the
    /// op is not a `Multishot<O>`.
    pub fn take_item<O: MultishotOp>(&mut self, c: &Completion) -> Result<O::Item> {
        self.slab.take_item_of::<O>(c)
    }
}

/// For event loops that wait on the ring's fd (the async drivers).
impl Uring {
    /// Reaps what is ready, and first, if the kernel holds completions back (an overflowed CQ,
    /// or task work it flagged with `IORING_SQ_TASKRUN`), enters the kernel without waiting to
    /// bring them in. Returns how many CQEs were processed.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno (not for `EBUSY`/`EAGAIN`: a later call
    /// retries).
    #[cfg(feature = "async")]
    pub(crate) fn reap_all(&mut self) -> Result<usize> {
        let mut n = self.reap();
        if self.ring.cq().kernel_has_more() {
            match self.ring.cq().wait(0) {
                Ok(_) | Err(uring_core::Error::Busy(_)) => {}
                Err(e) => return Err(e.into()),
            }
            n += self.reap();
        }
        Ok(n)
    }
}

/// Multishot ops: reading their items while they stay in flight.
impl Uring {
    /// Takes the items a multishot op has produced so far (after reaping what is ready),
    /// without ending it and without blocking. An op that has finished gives its last items
    /// here too; its ticket then still redeems the final output.
    ///
    /// Items accumulate in the ring until taken: here, one by one from their completion
    /// records ([`Uring::take_item`], for an op pushed with a tag), or with the op's output.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`] if the ticket is not this ring's, or already redeemed.
    pub fn drain<O: MultishotOp>(&mut self, t: &Ticket<Multishot<O>>) -> Result<Vec<O::Item>> {
        self.reap();
        self.multishot_entry(t).map(MultiEntry::take_items)
    }

    /// Waits, at most `timeout`, until a multishot op has produced at least one item or has
    /// finished (submitting what is queued), and takes its items. An empty result means the
    /// time ran out, or the op finished with no item left (see [`Uring::is_done`]).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`], or the ring failing ([`Error::Core`]).
    pub fn wait_items<O: MultishotOp>(
        &mut self,
        t: &Ticket<Multishot<O>>,
        timeout: Duration,
    ) -> Result<Vec<O::Item>> {
        let deadline = deadline_after(timeout);
        loop {
            self.reap();
            let done = self.is_done(t);
            let e = self.multishot_entry(t)?;
            if done || e.pending() > 0 {
                return Ok(e.take_items());
            }
            self.submit()?;
            if self.reap() > 0 {
                continue;
            }
            match self.ring.cq().wait_deadline(1, deadline) {
                Ok(_) => {}
                Err(uring_core::Error::Timeout) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn multishot_entry<O: MultishotOp>(
        &mut self,
        t: &Ticket<Multishot<O>>,
    ) -> Result<&mut MultiEntry<O>> {
        if t.ring != self.id {
            return Err(Error::UnknownTicket);
        }
        self.slab
            .get_mut::<MultiEntry<O>>(t.key)
            .ok_or(Error::UnknownTicket)
    }
}
