//! The op trait, and what the ring takes: single ops, their entries, and the opcode checks.

use crate::error::{Error, Result};
use uring_core::Sqe;

/// One io_uring operation: a struct per opcode, owning everything the kernel touches.
///
/// The ops of [`crate::ops`] are all defined through one macro whose field kinds carry this
/// trait's safety argument (see [`crate::ops`], "How an op is defined"); implement it by hand
/// only for an opcode this crate does not cover, or push a [`crate::RawSqe`] instead.
///
/// # Safety
///
/// Implementors guarantee that the SQE written by [`Op::prepare`] names only memory and files
/// that `self` owns and that stay valid, at the same address and open, for what the opcode
/// does with them, as long as `self` is neither dropped nor moved: heap memory owned by
/// `self`, memory inside `self` (the ring keeps an op at one place from `prepare` until its
/// completion), descriptors kept open by a [`crate::Target`] inside `self`.
/// An op that sets [`Op::SQE_POINTS_INTO_SELF`] to `false` further guarantees that its SQE
/// names no memory inside `self`, so that it stays valid when `self` is moved after `prepare`.
/// [`Op::complete`] is called once, after the kernel is done with the op.
pub unsafe trait Op: Send + 'static {
    /// The `IORING_OP_*` opcode (for a type that stands for several, see [`Op::opcode`]).
    const OPCODE: u8;
    /// The op's type name, for messages.
    const NAME: &'static str;
    /// What the op gives back on completion: its result, and what it owned.
    type Output;

    /// Whether the SQE may point into `self` (a timespec held inline). `true`, the default,
    /// has the ring call [`Op::prepare`] with `self` already at its final address in the ring.
    ///
    /// An op whose SQE names only heap memory it owns (whose address a move does not change,
    /// like an [`crate::IoBuf`]'s), or no memory at all, may set `false`: the ring then
    /// prepares the SQE from the op before moving it into its slot, which spares reloading
    /// the op from the slot. Setting `false` is part of this trait's safety contract.
    const SQE_POINTS_INTO_SELF: bool = true;

    /// The opcode of this op: [`Op::OPCODE`], unless the type stands for several opcodes (an
    /// enum of ops, to chain ops of different types with [`crate::Chain::from_vec`]), whose
    /// values then say which. The ring checks it against the kernel's support and its allowlist,
    /// and writes it into the SQE after [`Op::prepare`], so the opcode checked is the one sent.
    #[inline]
    fn opcode(&self) -> u8 {
        Self::OPCODE
    }

    /// Checks the op's arguments before anything is queued; an `Err` refuses the push and
    /// hands the op back. Default: nothing to check.
    ///
    /// # Errors
    ///
    /// The op's own, naming the argument and its value.
    #[inline]
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Writes the SQE, except its opcode (written by the ring after this) and `user_data`
    /// (the ring's). Called once, with `self` at its final address (or, when
    /// [`Op::SQE_POINTS_INTO_SELF`] is `false`, just before `self` is moved there).
    fn prepare(&mut self, sqe: &mut Sqe);

    /// Turns the completion (`res`, the CQE flags) and the op's owned data into its output.
    fn complete(self, res: i32, flags: u32) -> Self::Output;

    /// Whether the kernel counts result `res` as a failure of this op inside a chain, which
    /// cancels the links after it (`REQ_F_FAIL`). Any error does; so does a transfer of fewer
    /// bytes than asked for by ops that move a count (reads, writes, sends, receives, splices),
    /// which must override this. [`crate::Chain`] uses it to tell a link cancelled because an
    /// earlier one failed from a link that ran and was cancelled. Default: `res < 0`.
    fn fails_link(&self, res: i32) -> bool {
        res < 0
    }

    /// Whether the ring must call [`Op::discard`], rather than just drop the op, when it
    /// finishes with nobody to redeem it. Set by the ops whose completion leaves something to
    /// dispose of: a descriptor the kernel created for them (to close), or one the kernel
    /// closed (not to close again). Default: `false`.
    const DISCARDS: bool = false;

    /// Disposes of the op once it has finished and nobody will redeem its output: its ticket
    /// was detached (or dropped) or the ring is dropped holding it, finished. `res` and `flags`
    /// are its completion's. Called only when [`Op::DISCARDS`] is `true` (otherwise the op is
    /// dropped); the ops that set it complete and drop the output, which closes what the kernel
    /// created (`drop(self.complete(res, flags))`). Default: drops the op.
    fn discard(self, res: i32, flags: u32)
    where
        Self: Sized,
    {
        let _ = (res, flags);
    }
}

/// Prepares `op`'s SQE and writes its opcode (after `prepare`, so that the opcode the ring
/// checked is the one the kernel sees, whatever `prepare` wrote).
#[inline]
pub(crate) fn prepare_op<O: Op>(op: &mut O, sqe: &mut Sqe) {
    op.prepare(sqe);
    sqe.set_opcode(op.opcode());
}

/// Checks `op` against the ring (its opcode) and its own arguments.
#[inline]
pub(crate) fn check_op<O: Op>(op: &O, ops: &OpCheck) -> Result<()> {
    ops.check_opcode(op.opcode(), O::NAME)?;
    op.check()
}

/// The largest errno (`MAX_ERRNO`): a negative result below `-MAX_ERRNO` is not an errno.
pub(crate) const MAX_ERRNO: i32 = 4095;

/// Converts a kernel result into `io::Result`. A negative result that is no errno (only
/// possible when injected, see [`crate::ops::Nop::inject_result`]) is `EINVAL`'s kind with the
/// value in its message.
#[inline]
pub(crate) fn res_to_io(res: i32) -> std::io::Result<u32> {
    if res >= 0 {
        Ok(res as u32)
    } else if res >= -MAX_ERRNO {
        Err(std::io::Error::from_raw_os_error(-res))
    } else {
        Err(not_an_errno(res))
    }
}

#[cold]
fn not_an_errno(res: i32) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("completion result {res} is neither a count nor an errno"),
    )
}

/// Whether a transfer of `res` bytes, `want` asked for, is a failure in the kernel's eyes inside a
/// chain: an error, or fewer bytes than asked for. The kernel caps one transfer at
/// `MAX_RW_COUNT` (`INT_MAX` rounded down to a page), so a transfer of the cap is complete.
#[inline]
pub(crate) fn short_transfer(res: i32, want: usize) -> bool {
    let Ok(got) = usize::try_from(res) else {
        return true;
    };
    if got >= want {
        return false;
    }
    // Below the cap for any page size up to 64 KiB: certainly short.
    if got < (i32::MAX as usize & !0xffff) {
        return true;
    }
    // SAFETY: sysconf has no memory preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
    got < (i32::MAX as usize & !(page - 1))
}

pub(crate) mod sealed {
    /// Seals [`crate::Submit`], [`crate::Entry`] and the chain's links: implemented in this
    /// crate only.
    pub trait Sealed {}
}

/// Something the ring takes: one op ([`Op`], alone or with [`crate::SqeOptions`]), a
/// [`crate::Chain`], a [`crate::Multishot`] op, or a [`crate::RawSqe`]. Sealed.
pub trait Submit: sealed::Sealed + Send + 'static {
    /// What redeeming its ticket gives.
    type Output;
    /// The in-ring form.
    #[doc(hidden)]
    type Entry: Entry<Output = Self::Output>;
    #[doc(hidden)]
    fn into_entry(self) -> Self::Entry;
    #[doc(hidden)]
    fn from_entry(e: Self::Entry) -> Self;
}

/// The in-ring form of a submission: one or more SQEs and what their completions mean.
/// Sealed.
///
/// # Safety
///
/// `prepare` must name only memory and files owned by `self` (valid and unmoved while `self`
/// is neither dropped nor moved; with [`Entry::SQE_POINTS_INTO_SELF`] `false`, valid after
/// moves too), and `on_cqe` must return `true` exactly when no further completion can arrive
/// for this entry.
#[doc(hidden)]
pub unsafe trait Entry: sealed::Sealed + Send + 'static {
    /// What [`Entry::finish`] returns.
    type Output;
    /// As [`Op::SQE_POINTS_INTO_SELF`]: `false` lets the ring prepare the SQEs before it moves
    /// the entry into its slot.
    const SQE_POINTS_INTO_SELF: bool = true;
    /// Number of SQEs.
    fn sqe_count(&self) -> u32;
    /// Checks every opcode against the kernel's support and the ring's allowlist, and the ops'
    /// own arguments, naming the first refused one.
    fn check(&self, ops: &OpCheck) -> Result<()>;
    /// Writes SQE `i` (of `sqe_count`), user data excluded.
    fn prepare(&mut self, i: u32, sqe: &mut Sqe);
    /// Records completion of SQE `sub`: whether the entry has finished, and whether the
    /// completion made an item of a multishot op.
    fn on_cqe(&mut self, sub: u32, res: i32, flags: u32) -> Progress;
    /// Asked after [`Entry::on_cqe`] recorded completion `sub` (`res`) and the entry has not
    /// finished:
    /// the number of another SQE of this entry that will not complete unless the ring asks the
    /// kernel to cancel it, if any. The ring then does (`IORING_OP_ASYNC_CANCEL` by its user
    /// data), and the entry finishes when that SQE's completion arrives.
    ///
    /// The case: a link timeout that fires after the thread that submitted it has exited
    /// completes without cancelling the link it guards (see "Threads" on
    /// [`crate::Context`]). Default: none.
    fn link_to_cancel(&self, sub: u32, res: i32) -> Option<u32> {
        let _ = (sub, res);
        None
    }
    /// Drops what the entry keeps for its owner and no SQE names (a multishot op's items),
    /// because nobody will take it: the entry was detached. Called for an in-flight entry, so
    /// it must not touch memory the kernel may use. Default: nothing.
    fn drop_items(&mut self) {}
    /// The output, once finished.
    fn finish(self) -> Self::Output;

    /// `true` for entries of one SQE that finish at their one completion: the slab then keeps
    /// the result itself (no call into the entry at reap time) and redeems with
    /// [`Entry::finish_with`].
    const SINGLE: bool = false;

    /// The output of a [`Entry::SINGLE`] entry, from the result the slab kept.
    fn finish_with(self, res: i32, flags: u32) -> Self::Output
    where
        Self: Sized,
    {
        let _ = (res, flags);
        self.finish()
    }

    /// Whether a finished [`Entry::SINGLE`] entry with nothing to drop must still be disposed
    /// of through [`Entry::discard`] ([`Op::DISCARDS`]). Entries of several completions are
    /// always disposed of through it.
    const DISCARDS: bool = false;

    /// Disposes of the finished entry nobody will redeem (detached, or left in a dropped
    /// ring), with the result the slab kept for a [`Entry::SINGLE`] entry. Default: finishes it
    /// and drops the output, so that every op in it disposes of what its completion made (a
    /// chain's links, a multishot op's items and last completion).
    fn discard(self, res: i32, flags: u32)
    where
        Self: Sized,
    {
        drop(self.finish_with(res, flags));
    }
}

/// What one completion did to an entry ([`Entry::on_cqe`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More completions will come.
    Pending,
    /// More completions will come; this one made item number `n` (counted from 0, wrapping) of
    /// a multishot op, which the entry keeps until it is taken.
    Item(u32),
    /// The entry has finished: no completion can follow.
    Done,
}

impl Progress {
    /// [`Progress::Done`] if `done`, else [`Progress::Pending`].
    #[inline]
    pub(crate) fn done_if(done: bool) -> Self {
        if done {
            Progress::Done
        } else {
            Progress::Pending
        }
    }

    /// Whether the entry has finished.
    #[cfg(test)]
    pub(crate) fn is_done(self) -> bool {
        self == Progress::Done
    }
}

/// The entry of a single op.
#[doc(hidden)]
#[derive(Debug)]
pub struct Single<O> {
    op: O,
}

impl<O: Op> sealed::Sealed for Single<O> {}

// SAFETY: `prepare` forwards to the op's `prepare`, whose contract is the same (so is
// `SQE_POINTS_INTO_SELF`'s: the entry is the op and nothing else); one SQE yields exactly one
// completion (no op of this crate can set skip-success, and a raw SQE with it is refused).
unsafe impl<O: Op> Entry for Single<O> {
    type Output = O::Output;
    const SQE_POINTS_INTO_SELF: bool = O::SQE_POINTS_INTO_SELF;

    #[inline]
    fn sqe_count(&self) -> u32 {
        1
    }

    #[inline]
    fn check(&self, ops: &OpCheck) -> Result<()> {
        if self.op.opcode() == uring_core::sys::IORING_OP_LINK_TIMEOUT as u8 {
            return Err(Error::LinkTimeoutAlone { op: O::NAME });
        }
        check_op(&self.op, ops)
    }

    #[inline]
    fn prepare(&mut self, _i: u32, sqe: &mut Sqe) {
        prepare_op(&mut self.op, sqe);
    }

    /// Not called: a single op is [`Entry::SINGLE`], its result is kept by the slab.
    #[inline]
    fn on_cqe(&mut self, _sub: u32, _res: i32, _flags: u32) -> Progress {
        Progress::Done
    }

    /// Not called for the same reason; completes with a zero result.
    #[inline]
    fn finish(self) -> O::Output {
        self.op.complete(0, 0)
    }

    const SINGLE: bool = true;

    #[inline]
    fn finish_with(self, res: i32, flags: u32) -> O::Output {
        self.op.complete(res, flags)
    }

    const DISCARDS: bool = O::DISCARDS;

    fn discard(self, res: i32, flags: u32) {
        self.op.discard(res, flags);
    }
}

/// A set of opcodes (256 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpSet([u64; 4]);

impl OpSet {
    /// No opcode.
    pub const fn empty() -> Self {
        OpSet([0; 4])
    }

    /// Every opcode.
    pub const fn all() -> Self {
        OpSet([u64::MAX; 4])
    }

    /// Adds `opcode`.
    pub fn insert(&mut self, opcode: u8) {
        self.0[usize::from(opcode / 64)] |= 1 << (opcode % 64);
    }

    /// Whether `opcode` is in the set.
    #[inline]
    pub fn contains(&self, opcode: u8) -> bool {
        self.0[usize::from(opcode / 64)] & (1 << (opcode % 64)) != 0
    }
}

/// What a ring accepts: the opcodes the kernel supports, and the ring's allowlist.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct OpCheck {
    supported: OpSet,
    allowed: OpSet,
    /// Both at once (`supported ∩ allowed`): the one bit a push tests; the two sets are read
    /// only to name the reason of a refusal.
    usable: OpSet,
}

impl OpCheck {
    /// The opcodes the kernel supports, and those the ring allows.
    pub(crate) fn new(supported: OpSet, allowed: OpSet) -> Self {
        let mut usable = supported;
        for (u, a) in usable.0.iter_mut().zip(allowed.0) {
            *u &= a;
        }
        OpCheck {
            supported,
            allowed,
            usable,
        }
    }

    /// Whether the kernel supports `opcode` (the ring may still refuse it).
    pub(crate) fn supports(&self, opcode: u8) -> bool {
        self.supported.contains(opcode)
    }

    /// Whether the ring's allowlist permits `opcode` (the kernel may still lack it).
    pub(crate) fn allows(&self, opcode: u8) -> bool {
        self.allowed.contains(opcode)
    }

    /// Checks an opcode known only at run time (a raw SQE), naming it when refused.
    #[inline]
    pub fn check_opcode(&self, opcode: u8, name: &'static str) -> Result<()> {
        if self.usable.contains(opcode) {
            return Ok(());
        }
        self.refusal(opcode, name)
    }

    /// Why `opcode` (of the op type `name`) is refused.
    #[cold]
    fn refusal(&self, opcode: u8, name: &'static str) -> Result<()> {
        let op = uring_core::opcode_name(opcode);
        if !self.supported.contains(opcode) {
            return Err(Error::Unsupported { op, name });
        }
        if !self.allowed.contains(opcode) {
            return Err(Error::NotAllowed { op });
        }
        Ok(())
    }
}

impl<O: Op> sealed::Sealed for O {}

impl<O: Op> Submit for O {
    type Output = O::Output;
    type Entry = Single<O>;

    #[inline]
    fn into_entry(self) -> Single<O> {
        Single { op: self }
    }

    #[inline]
    fn from_entry(e: Single<O>) -> O {
        e.op
    }
}
