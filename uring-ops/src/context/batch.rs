//! [`Batch`]: many pushes on a [`Context`], handed to the kernel with one system call, under
//! one take of each lock.

use super::{lock, Context, Held, Shared};
use crate::error::{PushError, Result};
use crate::op::Submit;
use crate::push;
use crate::uring::Ticket;
use std::fmt;
use std::sync::MutexGuard;
use uring_core::{Kernel, SubmissionQueue};

/// Pushes on a [`Context`] that reach the kernel together, from [`Context::batch`].
///
/// A batch holds the context's submission queue from its start to its end, and the context's
/// bookkeeping (its slab of ops) from its first push until it submits: its pushes queue their
/// SQEs without a system call and without taking a lock each, and [`Batch::submit`] (or the
/// batch's drop) hands them all to the kernel with one `io_uring_enter`. A `Context::push`
/// takes both locks and enters the kernel for every op.
///
/// # Threads
///
/// Nothing but the batch hands its SQEs to the kernel: other threads' submits and pushes wait
/// for the SQ lock, and waits leave what a holder of the SQ queued to that holder. So the kernel ties every op of a batch to
/// the thread that submits it, which is the thread that holds the batch (a batch is not
/// `Send`), as it ties a [`Context::push`] to the pushing thread (see "Threads" on
/// [`Context`]; on an SQPOLL ring, the kernel's poller thread issues them all). One exception
/// is the same as for `push`: SQEs the kernel refuses for lack of resources (`EBUSY`,
/// `EAGAIN`) stay queued, and whichever thread submits next hands them over.
///
/// When the SQ fills up the batch submits what it has (releasing the bookkeeping lock first)
/// and goes on, so a batch may hold more ops than the SQ has entries.
///
/// # Caveats
///
/// While a batch lives, other threads' pushes and submits wait for it, and threads that reap
/// completions wait from its first push until it submits: keep it short. The thread holding it pushes through the
/// batch only: its other calls to the context fail with [`crate::Error::Reentrant`] (or
/// panic, those that return no `Result`) rather than deadlock. Drop the batch before waiting.
///
/// # Examples
///
/// ```
/// use uring_ops::{ops::Nop, Context};
/// let ctx = Context::new(64)?;
/// let mut batch = ctx.batch()?;
/// for tag in 0..32 {
///     let t = batch.push_tagged(Nop::new(), tag)?;
///     // The record will say when it is done; this loop needs no ticket.
///     assert!(batch.detach(t));
/// }
/// assert_eq!(batch.submit()?, 32); // one system call for 32 ops
/// drop(batch);
/// let mut done = Vec::new();
/// while done.len() < 32 {
///     ctx.wait_completions_into(&mut done, std::time::Duration::MAX)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Batch<'a> {
    ctx: &'a Context,
    sq: MutexGuard<'a, SubmissionQueue<Kernel>>,
    /// The bookkeeping, held from the first push until the next submit.
    sh: Option<MutexGuard<'a, Shared>>,
    /// The thread's hold of the context, which makes its other calls fail rather than
    /// deadlock.
    _held: Held,
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("ctx", self.ctx)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Starts a batch of pushes that reach the kernel together (see [`Batch`]), holding the
    /// submission queue until the batch is dropped.
    ///
    /// # Errors
    ///
    /// [`uring_core::Error::ForkedChild`] (as [`crate::Error::Core`]) in a forked child.
    pub fn batch(&self) -> Result<Batch<'_>> {
        self.check_process()?;
        Ok(Batch {
            ctx: self,
            sq: lock(&self.sq),
            sh: None,
            _held: Held::enter(self.id),
        })
    }
}

impl Batch<'_> {
    /// Queues an op (or a chain) as [`Context::push`] checks and places it, without handing
    /// it to the kernel yet.
    ///
    /// # Errors
    ///
    /// As for [`Context::push`]; the op comes back untouched.
    #[inline]
    pub fn push<T: Submit>(&mut self, op: T) -> Result<Ticket<T>, PushError<T>> {
        self.push_inner(op, None)
    }

    /// As [`Batch::push`], reporting the op's completion records with `tag` (as
    /// [`Context::push_tagged`]).
    ///
    /// # Errors
    ///
    /// As for [`Context::push`].
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
        // The fork check was made when the batch started: a batch lives in one process.
        let n = match push::check(&entry, &self.ctx.ops) {
            Ok(n) => n,
            Err(error) => return Err(push::refused(error, entry)),
        };
        let key = self
            .ctx
            .queue_locked(&mut self.sq, &mut self.sh, entry, n, tag)?;
        Ok(Ticket::new(key, self.ctx.id))
    }

    /// Gives up a ticket of this context, as [`Context::detach`] does (under the batch's
    /// hold of the bookkeeping). Returns whether the ticket was live.
    pub fn detach<T: Submit>(&mut self, t: Ticket<T>) -> bool {
        let ctx = self.ctx;
        t.ring == ctx.id
            && self
                .sh
                .get_or_insert_with(|| lock(&ctx.shared))
                .slab
                .detach::<T::Entry>(t.key)
    }

    /// SQEs queued and not yet handed to the kernel.
    pub fn queued(&mut self) -> u32 {
        self.sq.pending()
    }

    /// Hands what the batch queued to the kernel, with one `io_uring_enter`, from this thread.
    /// The batch stays open: later pushes go with the next submit (or the drop). Returns how
    /// many SQEs the kernel consumed (on an SQPOLL ring, as for [`Context::submit`]).
    ///
    /// # Errors
    ///
    /// As for [`Context::submit`]; what the kernel did not consume stays queued.
    pub fn submit(&mut self) -> Result<u32> {
        // No system call under the bookkeeping lock: reapers may need it to make room.
        self.sh = None;
        self.ctx.submit_locked(&mut self.sq)
    }
}

impl Drop for Batch<'_> {
    /// Submits what is queued (as [`Batch::submit`]; a failure leaves it queued for the next
    /// submit or wait, by any thread, which reports it).
    fn drop(&mut self) {
        self.sh = None;
        if self.sq.pending() > 0 {
            let _ = self.ctx.submit_locked(&mut self.sq);
        }
    }
}
