//! SQE options common to every op (drain, async, personality), applied by one wrapper.

use crate::error::Result;
use crate::multishot::MultishotOp;
use crate::op::Op;
use uring_core::{Sqe, SqeFlags};

/// SQE options common to every op: drain, async, personality.
///
/// Attach them to any op with [`OpExt::options`] (or the shorthands [`OpExt::drain`],
/// [`OpExt::asynchronous`], [`OpExt::personality`]), which wraps the op in [`WithOptions`].
/// Link and hard-link flags are set by [`crate::Chain`], the fixed-file flag by
/// [`crate::Target::fixed`]. Skip-success and buffer select are not offered: the ring must see
/// every op's completion, and the ops of this crate read into the buffers they own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqeOptions {
    flags: SqeFlags,
    /// 0: the submitter's own credentials.
    personality: u16,
}

impl SqeOptions {
    /// No options.
    pub const fn new() -> Self {
        SqeOptions {
            flags: SqeFlags::empty(),
            personality: 0,
        }
    }

    /// `IOSQE_IO_DRAIN`: start only after every earlier op has completed.
    pub fn drain(mut self) -> Self {
        self.flags |= SqeFlags::IO_DRAIN;
        self
    }

    /// `IOSQE_ASYNC`: always issue from an async worker.
    pub fn asynchronous(mut self) -> Self {
        self.flags |= SqeFlags::ASYNC;
        self
    }

    /// Run with the credentials registered as personality `id` (0: the submitter's own).
    pub fn personality(mut self, id: u16) -> Self {
        self.personality = id;
        self
    }

    /// The `IOSQE_*` flags set.
    pub fn flags(&self) -> SqeFlags {
        self.flags
    }

    /// The personality id (0 for none).
    pub fn personality_id(&self) -> u16 {
        self.personality
    }

    /// Writes the options into `sqe` (after the op prepared it).
    #[inline]
    pub(crate) fn apply(&self, sqe: &mut Sqe) {
        sqe.add_flags(self.flags);
        if self.personality != 0 {
            sqe.set_personality(self.personality);
        }
    }
}

/// An op with [`SqeOptions`]: pushed, chained and completed exactly as the op itself, whose
/// output it gives.
#[derive(Debug, Clone)]
pub struct WithOptions<O> {
    op: O,
    opts: SqeOptions,
}

impl<O> WithOptions<O> {
    /// The op and its options.
    pub fn into_parts(self) -> (O, SqeOptions) {
        (self.op, self.opts)
    }

    /// The op.
    pub fn op(&self) -> &O {
        &self.op
    }

    /// Replaces the options.
    pub fn options(mut self, opts: SqeOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Adds `IOSQE_IO_DRAIN` ([`SqeOptions::drain`]).
    pub fn drain(mut self) -> Self {
        self.opts = self.opts.drain();
        self
    }

    /// Adds `IOSQE_ASYNC` ([`SqeOptions::asynchronous`]).
    pub fn asynchronous(mut self) -> Self {
        self.opts = self.opts.asynchronous();
        self
    }

    /// Sets the personality ([`SqeOptions::personality`]).
    pub fn personality(mut self, id: u16) -> Self {
        self.opts = self.opts.personality(id);
        self
    }
}

// SAFETY: the SQE is the op's (its contract holds) plus option flags and a personality id,
// which name no memory; `SQE_POINTS_INTO_SELF` is the op's, the op being the only memory here.
unsafe impl<O: Op> Op for WithOptions<O> {
    const OPCODE: u8 = O::OPCODE;
    const NAME: &'static str = O::NAME;
    const SQE_POINTS_INTO_SELF: bool = O::SQE_POINTS_INTO_SELF;
    type Output = O::Output;

    #[inline]
    fn opcode(&self) -> u8 {
        self.op.opcode()
    }

    #[inline]
    fn check(&self) -> Result<()> {
        self.op.check()
    }

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        self.op.prepare(sqe);
        self.opts.apply(sqe);
    }

    #[inline]
    fn complete(self, res: i32, flags: u32) -> O::Output {
        self.op.complete(res, flags)
    }

    fn fails_link(&self, res: i32) -> bool {
        self.op.fails_link(res)
    }

    const DISCARDS: bool = O::DISCARDS;

    fn discard(self, res: i32, flags: u32) {
        self.op.discard(res, flags);
    }
}

// SAFETY: the multishot form is the op's (its contract holds); the options name no memory.
unsafe impl<O: MultishotOp> MultishotOp for WithOptions<O> {
    type Item = O::Item;

    fn multishot_opcode(&self) -> u8 {
        self.op.multishot_opcode()
    }

    fn prepare_multishot(&mut self, sqe: &mut Sqe) {
        self.op.prepare_multishot(sqe);
    }

    fn item(&mut self, res: i32, flags: u32) -> O::Item {
        self.op.item(res, flags)
    }

    fn check_multishot(&self) -> Result<()> {
        self.op.check_multishot()
    }
}

/// SQE options for every op: `op.drain()`, `op.asynchronous()`, `op.personality(id)` or
/// `op.options(opts)` wrap it in [`WithOptions`].
///
/// # Examples
///
/// ```
/// use uring_ops::{ops::Nop, OpExt, Uring};
/// let mut ring = Uring::new(8)?;
/// let t = ring.push(Nop::new().asynchronous().drain())?;
/// assert_eq!(ring.wait(t)??, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait OpExt: Op + Sized {
    /// The op with `opts`.
    fn options(self, opts: SqeOptions) -> WithOptions<Self> {
        WithOptions { op: self, opts }
    }

    /// The op with `IOSQE_IO_DRAIN` ([`SqeOptions::drain`]).
    fn drain(self) -> WithOptions<Self> {
        self.options(SqeOptions::new().drain())
    }

    /// The op with `IOSQE_ASYNC` ([`SqeOptions::asynchronous`]).
    fn asynchronous(self) -> WithOptions<Self> {
        self.options(SqeOptions::new().asynchronous())
    }

    /// The op run with personality `id` ([`SqeOptions::personality`]).
    fn personality(self, id: u16) -> WithOptions<Self> {
        self.options(SqeOptions::new().personality(id))
    }
}

impl<O: Op> OpExt for O {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Nop;

    #[test]
    fn options_are_written_after_the_op() {
        let mut op = Nop::new().asynchronous().drain().personality(3);
        assert_eq!(
            (*op.op()).options(SqeOptions::new()).into_parts().1,
            SqeOptions::new()
        );
        let mut sqe = Sqe::zeroed();
        crate::op::prepare_op(&mut op, &mut sqe);
        assert_eq!(sqe.opcode(), Nop::OPCODE);
        assert_eq!(sqe.flags(), SqeFlags::ASYNC | SqeFlags::IO_DRAIN);
        assert_eq!(sqe.personality(), 3);
    }
}
