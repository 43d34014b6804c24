//! [`Context`]: redeeming tickets, what finished (completion records), multishot items.

use super::{lock, Context, Shared};
use crate::completion::{Completion, Completions, Outcome};
use crate::error::{Error, Result};
use crate::multishot::{MultiEntry, Multishot, MultishotOp};
use crate::op::Submit;
use crate::uring::Ticket;
use std::time::Duration;
use uring_core::deadline_after;

/// Redeems the ticket's entry if finished (`None` while in flight): `Err` for a ticket that is
/// not live here.
fn take_entry<T: Submit>(sh: &mut Shared, t: &Ticket<T>) -> Option<Result<T::Output>> {
    match sh.slab.take::<T::Entry>(t.key) {
        Ok(out) => Some(Ok(out)),
        Err(true) => None,
        Err(false) => Some(Err(Error::UnknownTicket)),
    }
}

/// Redeeming tickets.
impl Context {
    /// Whether the ticket's submission has finished (as of the last reap).
    pub fn is_done<T: Submit>(&self, t: &Ticket<T>) -> bool {
        self.assert_not_held();
        t.ring == self.id && lock(&self.shared).slab.is_done(t.key)
    }

    /// Redeems a finished submission without blocking (reaping ready completions first, if no
    /// other thread is): [`Outcome::Done`] with its output, or [`Outcome::Pending`] with the
    /// ticket back if it has not finished. Does not submit.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`] if the ticket is not this context's, or its submission was
    /// redeemed through its completion record ([`Context::take`]).
    pub fn try_take<T: Submit>(&self, t: Ticket<T>) -> Result<Outcome<T>> {
        self.check_process()?;
        if t.ring != self.id {
            return Err(Error::UnknownTicket);
        }
        for reaped in [false, true] {
            if reaped {
                self.reap();
            }
            let taken = take_entry(&mut lock(&self.shared), &t);
            if let Some(out) = taken {
                return out.map(Outcome::Done);
            }
        }
        Ok(Outcome::Pending(t))
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
        match self.block_until(None, |sh| take_entry(sh, &t))? {
            Some(out) => out,
            None => unreachable!("an untimed wait returns only when ready"),
        }
    }

    /// As [`Context::wait`], giving up after `timeout`: [`Outcome::Pending`] hands the ticket
    /// back when the time runs out. A timeout too long for `Instant` ([`Duration::MAX`]) is no
    /// deadline.
    ///
    /// # Errors
    ///
    /// As for [`Context::wait`].
    pub fn wait_timeout<T: Submit>(&self, t: Ticket<T>, timeout: Duration) -> Result<Outcome<T>> {
        if t.ring != self.id {
            return Err(Error::UnknownTicket);
        }
        match self.block_until(deadline_after(timeout), |sh| take_entry(sh, &t))? {
            Some(out) => out.map(Outcome::Done),
            None => Ok(Outcome::Pending(t)),
        }
    }

    /// Gives up the ticket: the op and what it owns are dropped once it completes (now, if it
    /// already has). A tagged op's completion is still reported (its record comes, and then
    /// nothing is left to take). Returns whether the ticket was live.
    pub fn detach<T: Submit>(&self, t: Ticket<T>) -> bool {
        self.assert_not_held();
        t.ring == self.id && lock(&self.shared).slab.detach::<T::Entry>(t.key)
    }
}

/// What finished: the records of submissions pushed with [`Context::push_tagged`] (see
/// [`Completion`]), each handed out once, to one caller, in completion order.
///
/// - [`Context::wait_completions_into`] moves them into the caller's `Vec` (one lock for
///   all), [`Context::wait_completions`] returns a new one (crosvm's `wait`); then
///   [`Context::take`] and [`Context::take_item`] redeem each (one lock each).
/// - [`Context::wait_for_completions`] returns them as a [`Completions`] iterator that keeps
///   the context's bookkeeping locked while it lives, so that many are redeemed for one lock
///   ([`Completions::redeem`]); other threads' pushes and reaps wait meanwhile.
impl Context {
    /// crosvm's `wait`: submits what is queued, then blocks until completion records are
    /// available and returns all of them. Returns an empty list when woken by [`Context::wake`]
    /// with none available (a wake-up is consumed by the call that sees it, with or without
    /// records).
    ///
    /// Untagged submissions are redeemed by ticket only and are not reported here.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn wait_completions(&self) -> Result<Vec<Completion>> {
        let mut v = Vec::new();
        self.wait_completions_into(&mut v, Duration::MAX)?;
        Ok(v)
    }

    /// As [`Context::wait_completions`], returning an empty list after `timeout` (never, for a
    /// timeout too long for `Instant`, such as [`Duration::MAX`]).
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn wait_completions_timeout(&self, timeout: Duration) -> Result<Vec<Completion>> {
        let mut v = Vec::new();
        self.wait_completions_into(&mut v, timeout)?;
        Ok(v)
    }

    /// As [`Context::wait_completions_timeout`], moving the records to the end of `into` (no
    /// allocation once `into` has grown to the size of a batch). Returns how many were moved:
    /// 0 when the time ran out, or a wake-up came with none.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn wait_completions_into(
        &self,
        into: &mut Vec<Completion>,
        timeout: Duration,
    ) -> Result<usize> {
        let n = self.block_until(deadline_after(timeout), |sh| {
            let woken = sh.take_wake();
            match sh.slab.move_completions(into) {
                0 if !woken => None,
                n => Some(n),
            }
        })?;
        Ok(n.unwrap_or(0))
    }

    /// The records queued now (after reaping ready completions, if no other thread is), as an
    /// iterator that holds the context's bookkeeping lock while it lives (see
    /// [`Completions`]). Does not block on the kernel.
    pub fn completions(&self) -> Completions<'_> {
        self.reap();
        Completions::locked(lock(&self.shared), self.id)
    }

    /// Submits what is queued, blocks until completion records are available (at most
    /// `timeout`), and returns them as an iterator that holds the context's bookkeeping lock
    /// while it lives, so that each is redeemed without another lock
    /// ([`Completions::redeem`]). Empty when the time ran out, or a wake-up came with none.
    ///
    /// While it lives, other threads' pushes and reaps wait for it, and this thread's other
    /// calls to the context fail with [`Error::Reentrant`] (or panic, those that return no
    /// `Result`) rather than deadlock: take what is needed, then drop it.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with the kernel's errno.
    pub fn wait_for_completions(&self, timeout: Duration) -> Result<Completions<'_>> {
        let (sh, _) = self.wait_locked(deadline_after(timeout), |sh| {
            let woken = sh.take_wake();
            woken || sh.slab.completions_queued() > 0
        })?;
        Ok(Completions::locked(sh, self.id))
    }

    /// Redeems the finished submission that record `c` reports, as a `T`, as
    /// [`crate::Uring::take`] does.
    ///
    /// # Errors
    ///
    /// As for [`crate::Uring::take`].
    pub fn take<T: Submit>(&self, c: &Completion) -> Result<T::Output> {
        self.check_process()?;
        lock(&self.shared).slab.take_completed::<T>(c)
    }

    /// Takes the item that record `c` reports, of a `Multishot<O>`, as
    /// [`crate::Uring::take_item`] does.
    ///
    /// # Errors
    ///
    /// As for [`crate::Uring::take_item`].
    pub fn take_item<O: MultishotOp>(&self, c: &Completion) -> Result<O::Item> {
        self.check_process()?;
        lock(&self.shared).slab.take_item_of::<O>(c)
    }
}

/// Multishot ops: reading their items while they stay in flight, by ticket.
impl Context {
    /// Takes the items a multishot op has produced so far (after reaping what is ready, if no
    /// other thread is), without ending it and without blocking, as [`crate::Uring::drain`].
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`] if the ticket is not this context's, or already redeemed.
    pub fn drain<O: MultishotOp>(&self, t: &Ticket<Multishot<O>>) -> Result<Vec<O::Item>> {
        self.check_process()?;
        self.reap();
        self.with_multishot(t, MultiEntry::take_items)
    }

    /// Waits, at most `timeout`, until a multishot op has produced at least one item or has
    /// finished (submitting what is queued), and takes its items, as
    /// [`crate::Uring::wait_items`]. An empty result means the time ran out, or the op
    /// finished with no item left.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`], or the ring failing ([`Error::Core`]).
    pub fn wait_items<O: MultishotOp>(
        &self,
        t: &Ticket<Multishot<O>>,
        timeout: Duration,
    ) -> Result<Vec<O::Item>> {
        if t.ring != self.id {
            return Err(Error::UnknownTicket);
        }
        let got = self.block_until(deadline_after(timeout), |sh| {
            let done = sh.slab.is_done(t.key);
            match sh.slab.get_mut::<MultiEntry<O>>(t.key) {
                None => Some(Err(Error::UnknownTicket)),
                Some(e) if done || e.pending() > 0 => Some(Ok(e.take_items())),
                Some(_) => None,
            }
        })?;
        got.unwrap_or(Ok(Vec::new()))
    }

    fn with_multishot<O: MultishotOp, R>(
        &self,
        t: &Ticket<Multishot<O>>,
        f: impl FnOnce(&mut MultiEntry<O>) -> R,
    ) -> Result<R> {
        if t.ring != self.id {
            return Err(Error::UnknownTicket);
        }
        let mut sh = lock(&self.shared);
        let e = sh
            .slab
            .get_mut::<MultiEntry<O>>(t.key)
            .ok_or(Error::UnknownTicket)?;
        Ok(f(e))
    }
}
