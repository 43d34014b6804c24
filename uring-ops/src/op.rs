//! The op trait, the file an op names, and the SQE options every op takes.

use crate::error::{Error, Result};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use uring_core::{Sqe, SqeFlags};

/// The file an op works on: a descriptor, or an index into the ring's registered file table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A file descriptor, resolved by the kernel when the SQE is submitted.
    Fd(RawFd),
    /// A registered (fixed) file index (`IOSQE_FIXED_FILE`).
    Fixed(u32),
}

impl Target {
    /// A descriptor. The kernel looks it up at submission: keep it open until then.
    pub fn fd(fd: BorrowedFd<'_>) -> Self {
        Target::Fd(fd.as_raw_fd())
    }

    /// A registered file index.
    pub fn fixed(index: u32) -> Self {
        Target::Fixed(index)
    }

    /// Writes the fd field (and `IOSQE_FIXED_FILE` for a fixed index).
    #[inline]
    pub fn apply(self, sqe: &mut Sqe) {
        match self {
            Target::Fd(fd) => {
                sqe.set_fd(fd);
            }
            Target::Fixed(i) => {
                sqe.set_fd(i as i32).add_flags(SqeFlags::FIXED_FILE);
            }
        }
    }
}

impl<'a> From<BorrowedFd<'a>> for Target {
    fn from(fd: BorrowedFd<'a>) -> Self {
        Target::fd(fd)
    }
}

impl<'a, T: std::os::fd::AsFd> From<&'a T> for Target {
    fn from(f: &'a T) -> Self {
        Target::fd(f.as_fd())
    }
}

/// SQE options common to every op: drain, async, skip-success, personality, buffer select.
///
/// Link and hard-link flags are set by [`crate::Chain`], which is the safe way to link ops.
/// Packed in one word so that "no options" costs one comparison on the hot path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqeOptions {
    /// `IOSQE_*` flags in bits 0..8, personality in 8..24, buffer group in 24..40.
    bits: u64,
}

impl SqeOptions {
    const PERSONALITY: u32 = 8;
    const BUF_GROUP: u32 = 24;

    /// No options.
    pub const fn new() -> Self {
        SqeOptions { bits: 0 }
    }

    fn with_flag(mut self, f: SqeFlags) -> Self {
        self.bits |= u64::from(f.bits());
        self
    }

    /// `IOSQE_IO_DRAIN`: start only after every earlier op has completed.
    pub fn drain(self) -> Self {
        self.with_flag(SqeFlags::IO_DRAIN)
    }

    /// `IOSQE_ASYNC`: always issue from an async worker.
    pub fn asynchronous(self) -> Self {
        self.with_flag(SqeFlags::ASYNC)
    }

    /// `IOSQE_CQE_SKIP_SUCCESS`: no completion on success. [`crate::Uring::push`] refuses it
    /// on lone ops (they would never be seen to finish) and in chains (see [`crate::Chain`],
    /// "Skip-success"); it is here for the raw path and for future multi-SQE entries.
    pub fn skip_success(self) -> Self {
        self.with_flag(SqeFlags::CQE_SKIP_SUCCESS)
    }

    /// Run with the credentials registered as personality `id`.
    pub fn personality(mut self, id: u16) -> Self {
        self.bits =
            (self.bits & !(0xffff << Self::PERSONALITY)) | (u64::from(id) << Self::PERSONALITY);
        self
    }

    /// `IOSQE_BUFFER_SELECT` from provided-buffer group `group`, for ops that read into a
    /// kernel-chosen buffer. Every op of this crate so far owns its buffer, so pushing one with
    /// this option is refused ([`crate::Error::InvalidArgument`]).
    pub fn buffer_select(mut self, group: u16) -> Self {
        self.bits =
            (self.bits & !(0xffff << Self::BUF_GROUP)) | (u64::from(group) << Self::BUF_GROUP);
        self.with_flag(SqeFlags::BUFFER_SELECT)
    }

    /// The `IOSQE_*` flags set.
    pub fn flags(&self) -> SqeFlags {
        SqeFlags::from_bits_retain(self.bits as u8)
    }

    /// Whether skip-success is set.
    pub fn skips_success(&self) -> bool {
        self.flags().contains(SqeFlags::CQE_SKIP_SUCCESS)
    }

    /// Writes the options into `sqe` (after the op prepared it).
    #[inline]
    pub fn apply(&self, sqe: &mut Sqe) {
        if self.bits == 0 {
            return;
        }
        sqe.add_flags(self.flags());
        let personality = (self.bits >> Self::PERSONALITY) as u16;
        if personality != 0 {
            sqe.set_personality(personality);
        }
        if self.flags().contains(SqeFlags::BUFFER_SELECT) {
            sqe.set_buf_group((self.bits >> Self::BUF_GROUP) as u16);
        }
    }
}

/// One io_uring operation: a struct per opcode, owning everything the kernel touches.
///
/// # Safety
///
/// Implementors guarantee that the SQE written by [`Op::prepare`] names only memory that
/// `self` owns and that stays valid, at the same address, for what the opcode does with it, as
/// long as `self` is neither dropped nor moved: heap memory owned by `self`, or memory inside
/// `self` (the ring keeps an op at one place from `prepare` until its completion).
/// [`Op::prepare`] writes [`Op::OPCODE`] as the SQE's opcode (the ring's support and allowlist
/// checks go by it).
/// An op that sets [`Op::SQE_POINTS_INTO_SELF`] to `false` further guarantees that its SQE
/// names no memory inside `self`, so that it stays valid when `self` is moved after `prepare`.
/// [`Op::complete`] is called once, after the kernel is done with the op.
pub unsafe trait Op: Send + 'static {
    /// The `IORING_OP_*` opcode.
    const OPCODE: u8;
    /// The op's type name, for messages.
    const NAME: &'static str;
    /// What the op gives back on completion: its result, and what it owned.
    type Output;

    /// Whether the SQE may point into `self` (a timespec, an iovec array or a sockaddr held
    /// inline). `true`, the default, has the ring call [`Op::prepare`] with `self` already at
    /// its final address in the ring.
    ///
    /// An op whose SQE names only heap memory it owns (whose address a move does not change,
    /// like an [`crate::IoBuf`]'s), or no memory at all, may set `false`: the ring then
    /// prepares the SQE from the op before moving it into its slot, which spares reloading
    /// the op from the slot. Setting `false` is part of this trait's safety contract.
    const SQE_POINTS_INTO_SELF: bool = true;

    /// Writes the SQE (except `user_data`, which the ring owns). Called once, with `self` at
    /// its final address (or, when [`Op::SQE_POINTS_INTO_SELF`] is `false`, just before `self`
    /// is moved there).
    fn prepare(&mut self, sqe: &mut Sqe);

    /// The SQE options of this op.
    fn options(&self) -> SqeOptions {
        SqeOptions::new()
    }

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
}

/// Converts a kernel result into `io::Result`.
#[inline]
pub(crate) fn res_to_io(res: i32) -> std::io::Result<u32> {
    if res < 0 {
        Err(std::io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as u32)
    }
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

/// Something the ring can take: one op ([`Op`]) or a chain. Implemented by the crate.
///
/// # Safety
///
/// Implemented only in this crate; the contract is [`Entry`]'s.
pub unsafe trait Submit: Send + 'static {
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
///
/// # Safety
///
/// `prepare` must name only memory owned by `self` (valid and unmoved while `self` is neither
/// dropped nor moved; with [`Entry::SQE_POINTS_INTO_SELF`] `false`, valid after moves too),
/// and `on_cqe` must return `true` exactly when no further completion can arrive for this
/// entry.
#[doc(hidden)]
pub unsafe trait Entry: Send + 'static {
    /// What [`Entry::finish`] returns.
    type Output;
    /// As [`Op::SQE_POINTS_INTO_SELF`]: `false` lets the ring prepare the SQEs before it moves
    /// the entry into its slot.
    const SQE_POINTS_INTO_SELF: bool = true;
    /// Number of SQEs.
    fn sqe_count(&self) -> u32;
    /// Checks every opcode against the kernel's support and the ring's allowlist, naming the
    /// first refused one.
    fn check(&self, ops: &OpCheck) -> Result<()>;
    /// Writes SQE `i` (of `sqe_count`), user data excluded.
    fn prepare(&mut self, i: u32, sqe: &mut Sqe);
    /// Records completion of SQE `sub`; `true` when the entry is finished.
    fn on_cqe(&mut self, sub: u32, res: i32, flags: u32) -> bool;
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
}

/// The entry of a single op.
#[doc(hidden)]
#[derive(Debug)]
pub struct Single<O> {
    op: O,
}

// SAFETY: `prepare` forwards to the op's `prepare`, whose contract is the same (so is
// `SQE_POINTS_INTO_SELF`'s: the entry is the op and nothing else); one SQE yields exactly one
// completion (skip-success is refused for lone ops at push).
unsafe impl<O: Op> Entry for Single<O> {
    type Output = O::Output;
    const SQE_POINTS_INTO_SELF: bool = O::SQE_POINTS_INTO_SELF;

    #[inline]
    fn sqe_count(&self) -> u32 {
        1
    }

    #[inline]
    fn check(&self, ops: &OpCheck) -> Result<()> {
        if O::OPCODE == uring_core::sys::IORING_OP_LINK_TIMEOUT as u8 {
            return Err(Error::InvalidArgument(format!(
                "{} pushed alone: a link timeout guards the link before it, so it can only \
                 follow a link in a Chain",
                O::NAME
            )));
        }
        if self.op.options().skips_success() {
            return Err(Error::InvalidArgument(format!(
                "skip_success on a lone {}: its completion would never be seen",
                O::NAME
            )));
        }
        refuse_buffer_select(&self.op.options(), O::NAME)?;
        ops.check::<O>()
    }

    #[inline]
    fn prepare(&mut self, _i: u32, sqe: &mut Sqe) {
        self.op.prepare(sqe);
        debug_assert_eq!(
            sqe.opcode(),
            O::OPCODE,
            "{} prepared another opcode",
            O::NAME
        );
        self.op.options().apply(sqe);
    }

    /// Not called: a single op is [`Entry::SINGLE`], its result is kept by the slab.
    #[inline]
    fn on_cqe(&mut self, _sub: u32, _res: i32, _flags: u32) -> bool {
        true
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
}

/// Refuses `IOSQE_BUFFER_SELECT`: every op of this crate owns the buffer it names, and with
/// buffer select the kernel would read into a provided buffer instead while the op marked its
/// own buffer as filled (uninitialised bytes) and lost the data.
#[inline]
pub(crate) fn refuse_buffer_select(opts: &SqeOptions, name: &str) -> Result<()> {
    if opts.flags().contains(SqeFlags::BUFFER_SELECT) {
        return Err(Error::InvalidArgument(format!(
            "buffer_select on {name}: it owns the buffer it reads into, so it cannot use a \
             kernel-provided one"
        )));
    }
    Ok(())
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

    /// Checks one op type, naming it when refused.
    #[inline]
    pub fn check<O: Op>(&self) -> Result<()> {
        self.check_opcode(O::OPCODE, O::NAME)
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

// SAFETY: a single op is one entry; the contract is `Op`'s.
unsafe impl<O: Op> Submit for O {
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
