//! Async: every op and chain as a [`Future`](std::future::Future), every multishot op as a
//! [`Stream`](futures_core::Stream), on any executor (feature `async`).
//!
//! Two rings:
//!
//! - [`LocalRing`]: for the tasks of one thread (`!Send`, no lock and no atomic operation on
//!   the way of an op), for thread-per-core runtimes and `LocalSet`s;
//! - [`SharedRing`]: for tasks on any thread (`Send + Sync`), over a [`crate::Context`].
//!
//! `ring.run(op)` is a future ([`Run`]) that resolves to what the blocking API gives for the
//! op ([`crate::Uring::wait`]: the result, with the buffers the op owned); `ring.items(op)` a
//! stream ([`Items`]) of a multishot op's items. Each ring has one [`Driver`], a future to
//! spawn once on the executor: it hands what the futures queued to the kernel (one
//! `io_uring_enter` per batch, on a [`LocalRing`]) and wakes each future whose op completed.
//! The driver waits for completions on a [`Reactor`]: tokio's ([`Tokio`], feature `tokio`),
//! async-io's ([`AsyncIo`], feature `async-io`, which smol uses), or a thread of its own that
//! needs no reactor at all ([`Thread`], for any other executor).
//!
//! # Dropping a future
//!
//! Dropping a future before its op completes never blocks and never frees what the kernel may
//! still touch: the op stays in the ring (detached, with its buffers), an
//! `IORING_OP_ASYNC_CANCEL` is queued for each of its SQEs, and the op is dropped when its
//! completion arrives. `mem::forget` of a future leaves the op in the ring until the ring is
//! dropped (which cancels it and waits for it, as a [`crate::Uring`] does).
//!
//! The cancel is a request: the op may still complete (the kernel may have started it, or
//! finish it before the cancel is seen). A dropped read may so have consumed data, which is
//! dropped with its buffer; a dropped write may still land. Racing a read of a stream against
//! a timer in a loop (`select!`, `timeout`) can therefore lose data: keep the read's future
//! across iterations instead of dropping it.
//!
//! # When the driver ends
//!
//! The futures of a ring resolve only while its driver runs. If the driver ends — it returned
//! an error, it panicked (a panic in the `Drop` of an op it disposes of unwinds through it),
//! or its task was aborted — the futures wait, pending, until another driver is spawned for
//! the ring, which picks them up. Handle the driver's result: log it and spawn a new driver,
//! or shut down. (A future of a forked child's copy of a ring never resolves either.)
//!
//! # Re-entrancy
//!
//! An op nobody redeems (its future was dropped) is dropped by the driver as its completion
//! arrives, under the ring's locks on a [`crate::SharedRing`]: its `Drop` (a buffer type of
//! your own, with an `unsafe impl IoBuf`) must not use the same ring (see [`crate::IoBuf`]).
//!
//! # Implementation notes
//!
//! The futures use the ring's public completion path: an op is pushed with a tag
//! ([`crate::Uring::push_tagged`]), so that its completion queues a [`crate::Completion`]
//! record; the driver takes the records in completion order and wakes the waker stored for
//! each (a table beside the slab, by slot index: see `waiters`); the future redeems its
//! output by ticket. A future that finds its op unfinished stores its waker; the module
//! `waiters` says why no wake-up is lost.

mod drive;
mod local;
mod run;
mod shared;
mod waiters;

#[cfg(feature = "async-io")]
pub use drive::AsyncIo;
#[cfg(feature = "tokio")]
pub use drive::Tokio;
pub use drive::{Driver, Reactor, Thread};
pub use local::LocalRing;
pub use run::{Items, Run};
pub use shared::SharedRing;
/// The hand-offs, for the loom model (`tests/loom.rs`) only.
#[cfg(uring_ops_loom)]
#[doc(hidden)]
pub use waiters::{Notify, Waiters};

use crate::completion::Outcome;
use crate::error::{PushError, Result};
use crate::multishot::{Multishot, MultishotOp};
use crate::op::{sealed, Entry, Submit};
use crate::uring::Ticket;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::task::Waker;

/// What a first poll's push did.
#[doc(hidden)]
#[derive(Debug)]
pub enum Pushed<T: Submit> {
    /// Queued (the driver is notified): the ticket and the number of SQEs.
    Queued(Ticket<T>, u32),
    /// The SQ has no room yet: poll again (the waker is woken).
    Retry(T),
    /// Refused, with the op back.
    Refused(PushError<T>),
}

/// What polling a multishot op found.
#[doc(hidden)]
#[derive(Debug)]
pub enum Polled<O: MultishotOp> {
    /// Still running (its waker stored if it gave no item).
    Running(Ticket<Multishot<O>>),
    /// Finished: the output of its last completion (its last items are given too).
    Finished(O::Output),
}

/// A ring that submissions can be awaited on: [`LocalRing`] or [`SharedRing`]. Sealed; its
/// methods are for the futures and the driver, not for direct use.
pub trait AsyncRing: sealed::Sealed {
    /// Pushes `op` and stores `w` as its waker.
    #[doc(hidden)]
    fn push_waking<T: Submit>(&self, op: T, w: &Waker) -> Pushed<T>;

    /// Redeems the ticket's output if finished, else stores `w` as its waker.
    #[doc(hidden)]
    fn poll_ticket<T: Submit>(&self, t: Ticket<T>, w: &Waker) -> Result<Outcome<T>>;

    /// Moves the items a multishot op made into `into`; when it has finished, redeems it.
    /// Stores `w` as its waker if it is running and `into` is still empty.
    #[doc(hidden)]
    fn poll_items<O: MultishotOp>(
        &self,
        t: Ticket<Multishot<O>>,
        into: &mut VecDeque<O::Item>,
        w: &Waker,
    ) -> Result<Polled<O>>;

    /// A future dropped with its op in flight: forgets its waker, detaches the op (dropped at
    /// completion) and asks the kernel to cancel each of its `sqes` SQEs. Never blocks.
    #[doc(hidden)]
    fn abandon<T: Submit>(&self, t: Ticket<T>, sqes: u32);

    /// The ring's fd, which the reactor waits on.
    #[doc(hidden)]
    fn ring_fd(&self) -> RawFd;

    /// The driver, at each poll: stores its waker and takes the push notification.
    #[doc(hidden)]
    fn register_driver(&self, w: &Waker) -> bool;

    /// The driver's work: submits what is queued, reaps, wakes the finished ops' tasks.
    /// Returns how many tasks it woke.
    #[doc(hidden)]
    fn turn(&self) -> Result<usize>;

    /// Whether only the driver still holds the ring (it then ends).
    #[doc(hidden)]
    fn orphaned(&self) -> bool;

    /// Makes a driver's handle: fails if the ring has one.
    #[doc(hidden)]
    fn claim_driver(&self) -> Result<Self>
    where
        Self: Sized;

    /// The driver is gone: another may be made.
    #[doc(hidden)]
    fn release_driver(&self);
}

/// The number of SQEs `op` takes (a chain: one per link), with the op back.
#[inline]
fn sqes<T: Submit>(op: T) -> (T, u32) {
    if <T::Entry as Entry>::SINGLE {
        // One SQE by definition: no need to move the op through its entry form.
        return (op, 1);
    }
    let e = op.into_entry();
    let n = e.sqe_count();
    (T::from_entry(e), n)
}
