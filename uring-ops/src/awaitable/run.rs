//! [`Run`]: the future of one submission; [`Items`]: the stream of a multishot op's items.

use super::{AsyncRing, Polled, Pushed};
use crate::completion::Outcome;
use crate::error::PushError;
use crate::multishot::{Multishot, MultishotOp};
use crate::op::Submit;
use crate::uring::Ticket;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future of one submission on an async ring ([`crate::LocalRing::run`],
/// [`crate::SharedRing::run`]): resolves to the submission's output (what
/// [`crate::Uring::wait`] gives: the result, with what the op owned), or to the
/// [`PushError`] (with the op back) if the ring refuses it.
///
/// The op is pushed at the first poll. Dropping the future before the op completes detaches
/// it: it stays in the ring until its completion (the kernel is asked to cancel it), and is
/// dropped then; nothing the kernel may touch is freed before (the op may still complete:
/// see "Dropping a future" in the module docs). `mem::forget` leaves the op in the ring until
/// the ring is dropped.
///
/// # Panics
///
/// Polled again after it resolved (as most futures do).
#[must_use = "a future does nothing unless polled: the op is pushed at its first poll"]
pub struct Run<'a, G: AsyncRing, T: Submit> {
    ring: &'a G,
    /// The op, until its push (kept apart from the ticket, so that a poll in flight moves
    /// only the ticket, never the op).
    op: Option<T>,
    /// Once pushed: its ticket, and how many SQEs to cancel if the future is dropped.
    ticket: Option<(Ticket<T>, u32)>,
}

// The op is moved out of the future at its first poll, never pinned.
impl<G: AsyncRing, T: Submit> Unpin for Run<'_, G, T> {}

impl<G: AsyncRing, T: Submit> fmt::Debug for Run<'_, G, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (&self.op, &self.ticket) {
            (Some(_), _) => "new",
            (None, Some(_)) => "in flight",
            (None, None) => "finished",
        };
        f.debug_struct("Run").field("state", &state).finish()
    }
}

impl<'a, G: AsyncRing, T: Submit> Run<'a, G, T> {
    pub(crate) fn new(ring: &'a G, op: T) -> Self {
        Run {
            ring,
            op: Some(op),
            ticket: None,
        }
    }
}

impl<G: AsyncRing, T: Submit> Future for Run<'_, G, T> {
    type Output = Result<T::Output, PushError<T>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some((t, sqes)) = this.ticket.take() {
            return match this.ring.poll_ticket(t, cx.waker()) {
                Ok(Outcome::Done(out)) => Poll::Ready(Ok(out)),
                Ok(Outcome::Pending(t)) => {
                    this.ticket = Some((t, sqes));
                    Poll::Pending
                }
                // The ring refused to look (a forked child's copy of a shared ring): the op
                // stays in the ring, as if the future were forgotten; this future never
                // resolves.
                Err(_) => Poll::Pending,
            };
        }
        let Some(op) = this.op.take() else {
            panic!("a uring_ops::Run polled after it resolved");
        };
        match this.ring.push_waking(op, cx.waker()) {
            Pushed::Queued(t, sqes) => {
                this.ticket = Some((t, sqes));
                Poll::Pending
            }
            Pushed::Retry(op) => {
                this.op = Some(op);
                Poll::Pending
            }
            Pushed::Refused(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<G: AsyncRing, T: Submit> Drop for Run<'_, G, T> {
    fn drop(&mut self) {
        if let Some((t, sqes)) = self.ticket.take() {
            self.ring.abandon(t, sqes);
        }
    }
}

/// The stream of a multishot op's items ([`crate::LocalRing::items`],
/// [`crate::SharedRing::items`]): each item, in completion order, as
/// [`crate::Uring::drain`] gives them; the stream ends when the op does, and
/// [`Items::take_end`] then gives the op's last completion (for a cancelled op, `ECANCELED`),
/// or the [`PushError`] if the ring refused the op.
///
/// The op is pushed at the first poll. Dropping the stream while the op runs detaches it and
/// asks the kernel to cancel it; the op, and the items nobody took, are dropped when its last
/// completion arrives.
#[must_use = "a stream does nothing unless polled: the op is pushed at its first poll"]
pub struct Items<'a, G: AsyncRing, O: MultishotOp> {
    ring: &'a G,
    state: ItemsState<O>,
    /// Items taken from the ring and not yet yielded.
    ready: VecDeque<O::Item>,
}

enum ItemsState<O: MultishotOp> {
    New(Multishot<O>),
    Running(Ticket<Multishot<O>>),
    Ended(Option<Result<O::Output, PushError<Multishot<O>>>>),
}

impl<G: AsyncRing, O: MultishotOp> Unpin for Items<'_, G, O> {}

impl<G: AsyncRing, O: MultishotOp> fmt::Debug for Items<'_, G, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            ItemsState::New(_) => "new",
            ItemsState::Running(..) => "running",
            ItemsState::Ended(_) => "ended",
        };
        f.debug_struct("Items")
            .field("state", &state)
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl<'a, G: AsyncRing, O: MultishotOp> Items<'a, G, O> {
    pub(crate) fn new(ring: &'a G, op: Multishot<O>) -> Self {
        Items {
            ring,
            state: ItemsState::New(op),
            ready: VecDeque::new(),
        }
    }

    /// Once the stream has ended: the op's own output for its last completion (`Ok`), or the
    /// ring's refusal of the op, with the op back (`Err`). `None` before the end, and after
    /// the first call.
    pub fn take_end(&mut self) -> Option<Result<O::Output, PushError<Multishot<O>>>> {
        match &mut self.state {
            ItemsState::Ended(end) if self.ready.is_empty() => end.take(),
            _ => None,
        }
    }
}

impl<G: AsyncRing, O: MultishotOp> futures_core::Stream for Items<'_, G, O> {
    type Item = O::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<O::Item>> {
        let this = self.get_mut();
        if let Some(item) = this.ready.pop_front() {
            return Poll::Ready(Some(item));
        }
        let t = match std::mem::replace(&mut this.state, ItemsState::Ended(None)) {
            // Pushed, then looked at at once like a running op: an item may have come (and
            // its record been taken by the driver) before the push stored the waker, which
            // only the check of the items under the waiters' guard sees.
            ItemsState::New(op) => match this.ring.push_waking(op, cx.waker()) {
                Pushed::Queued(t, _) => t,
                Pushed::Retry(op) => {
                    this.state = ItemsState::New(op);
                    return Poll::Pending;
                }
                Pushed::Refused(e) => {
                    this.state = ItemsState::Ended(Some(Err(e)));
                    return Poll::Ready(None);
                }
            },
            ItemsState::Running(t) => t,
            ended @ ItemsState::Ended(_) => {
                this.state = ended;
                return Poll::Ready(None);
            }
        };
        match this.ring.poll_items(t, &mut this.ready, cx.waker()) {
            Ok(Polled::Running(t)) => this.state = ItemsState::Running(t),
            Ok(Polled::Finished(last)) => this.state = ItemsState::Ended(Some(Ok(last))),
            // As for `Run`: a forked child's copy; the op stays in the ring.
            Err(_) => return Poll::Pending,
        }
        match this.ready.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if matches!(this.state, ItemsState::Ended(_)) => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

impl<G: AsyncRing, O: MultishotOp> Drop for Items<'_, G, O> {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut self.state, ItemsState::Ended(None));
        if let ItemsState::Running(t) = state {
            self.ring.abandon(t, 1);
        }
    }
}
