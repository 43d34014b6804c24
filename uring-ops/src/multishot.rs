//! Ops that complete more than once (multishot).
//!
//! A multishot op posts one completion per event, each flagged `IORING_CQE_F_MORE`, and a
//! last one without that flag when it ends (removed, cancelled, failed, or stopped by the
//! kernel). The ring keeps every completion flagged `MORE` as an item of the op, which the user
//! takes while the op runs with [`crate::Uring::drain`] or [`crate::Uring::wait_items`]; the
//! last completion finishes the op, and its ticket then gives back the items not yet drained
//! and the op's own output for that last completion ([`MultishotOutput`]).
//!
//! Single-shot ops are untouched by this: they go through their own, leaner entry.

use crate::error::Result;
use crate::op::{sealed, Entry, Op, OpCheck, Progress, Submit};
use std::collections::VecDeque;
use std::fmt;
use uring_core::{sys, Sqe};

/// An op that has a multishot form.
///
/// # Safety
///
/// As for [`Op`]: after [`MultishotOp::prepare_multishot`], the SQE names only memory that
/// `self` owns and that stays valid and unmoved while `self` is neither dropped nor moved. The
/// ring keeps the op, unmoved, until the completion without `IORING_CQE_F_MORE`.
pub unsafe trait MultishotOp: Op {
    /// What one completion flagged `IORING_CQE_F_MORE` means.
    type Item: Send + 'static;

    /// The opcode of the multishot form: the op's own ([`Op::opcode`]) unless the kernel has a
    /// separate opcode for it (`READ_MULTISHOT` for a read). The ring checks this one against
    /// the kernel's support and its allowlist, and writes it into the SQE after
    /// [`MultishotOp::prepare_multishot`].
    #[inline]
    fn multishot_opcode(&self) -> u8 {
        self.opcode()
    }

    /// Turns the SQE written by [`Op::prepare`] into the multishot form (sets the op's
    /// multishot flag).
    fn prepare_multishot(&mut self, sqe: &mut Sqe);

    /// The item for a completion flagged `IORING_CQE_F_MORE` (`res`, CQE flags). Called once
    /// per such completion, in completion order, while the op is in the ring (an op that
    /// receives into provided buffers takes the buffer the completion names).
    fn item(&mut self, res: i32, flags: u32) -> Self::Item;

    /// Checks the op's arguments for its multishot form (some flags or slots go only with the
    /// one-shot form), after [`Op::check`]. Default: nothing more to check.
    ///
    /// # Errors
    ///
    /// The op's own, naming the argument.
    fn check_multishot(&self) -> Result<()> {
        Ok(())
    }
}

/// The multishot form of an op: pushed like any op, it stays in flight across many completions.
///
/// Obtained from the op's own `multishot()` setter (e.g.
/// [`crate::ops::PollAdd::multishot`]) or [`Multishot::new`].
#[derive(Debug)]
pub struct Multishot<O> {
    op: O,
}

impl<O: MultishotOp> Multishot<O> {
    /// The multishot form of `op`.
    pub fn new(op: O) -> Self {
        Multishot { op }
    }

    /// The op, back (for instance from a [`crate::PushError`]).
    pub fn into_inner(self) -> O {
        self.op
    }
}

/// What a finished multishot op gives back.
pub struct MultishotOutput<O: MultishotOp> {
    /// Items that arrived and were not drained before the op ended, oldest first.
    pub items: Vec<O::Item>,
    /// The last completion (the one without `IORING_CQE_F_MORE`), as the op's own output: for
    /// a removed or cancelled op, `ECANCELED`.
    pub last: O::Output,
}

impl<O: MultishotOp> fmt::Debug for MultishotOutput<O>
where
    O::Item: fmt::Debug,
    O::Output: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultishotOutput")
            .field("items", &self.items)
            .field("last", &self.last)
            .finish()
    }
}

/// The in-ring form of a multishot op: the op, and the items received and not yet taken.
#[doc(hidden)]
pub struct MultiEntry<O: MultishotOp> {
    op: O,
    /// The items made and not yet taken, from item number `first` on (numbers wrap); `None`
    /// where one was taken by its number ([`MultiEntry::take_item`]) before those in front.
    items: VecDeque<Option<O::Item>>,
    /// The number of the item at the front of `items`.
    first: u32,
    /// How many of `items` are `Some`.
    live: usize,
    res: i32,
    flags: u32,
}

impl<O: MultishotOp> fmt::Debug for MultiEntry<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiEntry")
            .field("op", &O::NAME)
            .field("pending", &self.live)
            .finish_non_exhaustive()
    }
}

impl<O: MultishotOp> MultiEntry<O> {
    /// Takes every item received and not yet taken, oldest first.
    pub(crate) fn take_items(&mut self) -> Vec<O::Item> {
        let n = self.items.len() as u32;
        self.first = self.first.wrapping_add(n);
        self.live = 0;
        self.items.drain(..).flatten().collect()
    }

    /// Takes item number `n` (as [`crate::op::Progress::Item`] gave it), if it has not been
    /// taken yet.
    pub(crate) fn take_item(&mut self, n: u32) -> Option<O::Item> {
        let i = n.wrapping_sub(self.first) as usize;
        let item = self.items.get_mut(i)?.take()?;
        self.live -= 1;
        while let Some(None) = self.items.front() {
            self.items.pop_front();
            self.first = self.first.wrapping_add(1);
        }
        Some(item)
    }

    /// Items received and not yet taken.
    pub(crate) fn pending(&self) -> usize {
        self.live
    }
}

impl<O: MultishotOp> sealed::Sealed for MultiEntry<O> {}
impl<O: MultishotOp> sealed::Sealed for Multishot<O> {}

// SAFETY: `prepare` writes the op's SQE (`Op::prepare` then `prepare_multishot`), whose
// contract is the same as `Entry`'s; the entry finishes exactly at the completion without
// `IORING_CQE_F_MORE`, after which the kernel posts nothing more for this request (no op can
// set skip-success).
unsafe impl<O: MultishotOp> Entry for MultiEntry<O> {
    type Output = MultishotOutput<O>;

    fn sqe_count(&self) -> u32 {
        1
    }

    fn check(&self, ops: &OpCheck) -> Result<()> {
        ops.check_opcode(self.op.multishot_opcode(), O::NAME)?;
        self.op.check()?;
        self.op.check_multishot()
    }

    fn prepare(&mut self, _i: u32, sqe: &mut Sqe) {
        self.op.prepare(sqe);
        self.op.prepare_multishot(sqe);
        sqe.set_opcode(self.op.multishot_opcode());
    }

    fn on_cqe(&mut self, _sub: u32, res: i32, flags: u32) -> Progress {
        if flags & sys::IORING_CQE_F_MORE != 0 {
            let item = self.op.item(res, flags);
            let n = self.first.wrapping_add(self.items.len() as u32);
            self.items.push_back(Some(item));
            self.live += 1;
            return Progress::Item(n);
        }
        self.res = res;
        self.flags = flags;
        Progress::Done
    }

    fn drop_items(&mut self) {
        drop(self.take_items());
    }

    fn finish(self) -> MultishotOutput<O> {
        MultishotOutput {
            items: self.items.into_iter().flatten().collect(),
            last: self.op.complete(self.res, self.flags),
        }
    }
}

impl<O: MultishotOp> Submit for Multishot<O> {
    type Output = MultishotOutput<O>;
    type Entry = MultiEntry<O>;

    fn into_entry(self) -> MultiEntry<O> {
        MultiEntry {
            op: self.op,
            items: VecDeque::new(),
            first: 0,
            live: 0,
            res: 0,
            flags: 0,
        }
    }

    fn from_entry(e: MultiEntry<O>) -> Self {
        Multishot { op: e.op }
    }
}
