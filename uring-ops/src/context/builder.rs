//! [`ContextBuilder`]: the ring a context runs on, and its allowlist.

use super::Context;
use crate::error::{Error, Result};
use crate::op::{Op, OpSet};
use crate::uring::probe;
use uring_core::{sys, Builder, Kernel, Restriction, Ring, SetupFlags, SqeFlags};

/// Sets up a [`Context`]: the ring (sizes, or any [`Builder`] with its setup flags), and the
/// allowlist of op types.
///
/// [`ContextBuilder::new`] makes a plain ring of the given size;
/// [`ContextBuilder::with_builder`] takes a [`uring_core::Builder`] prepared by the caller, for
/// SQPOLL, COOP_TASKRUN and the other setup flags (see "Setup flags" below for the few a
/// context refuses).
///
/// Without [`ContextBuilder::allow`], [`ContextBuilder::allow_register`] or
/// [`ContextBuilder::restrict`], every op and every registration is permitted. With any of
/// them, the ring is restricted: it is created disabled (`IORING_SETUP_R_DISABLED`), the
/// allowed opcodes (perhaps none) are registered as `IORING_RESTRICTION_SQE_OP` restrictions
/// (with every `IOSQE_*` flag allowed, and the register ops given to
/// [`ContextBuilder::allow_register`], plus `IORING_REGISTER_ENABLE_RINGS`, which an enabled
/// ring refuses anyway: naming one register op is what makes Linux 7.0 and later refuse the
/// others), and the ring is enabled: the kernel refuses any other opcode, and any other
/// registration, with `EACCES`, and [`Context::push`] refuses an op
/// that is not allowed first with [`Error::NotAllowed`], handing the op back.
///
/// The context's own SQEs need two opcodes, which are therefore always registered with the
/// kernel (but not allowed to [`Context::push`] unless listed): `IORING_OP_NOP` for
/// [`Context::wake`], `IORING_OP_ASYNC_CANCEL` for the cancellation on drop.
///
/// # Setup flags
///
/// A context submits from every thread that pushes (under a lock) and waits, sleeping in the
/// kernel, from every thread that waits. [`ContextBuilder::build`] therefore refuses, with
/// [`Error::ContextSetupFlag`] naming the flag and why, before any ring is made:
///
/// - `IORING_SETUP_DEFER_TASKRUN`: the kernel runs completion work only when the thread that
///   submitted waits for completions, and refuses (`EEXIST`) a wait from any other thread.
/// - `IORING_SETUP_SINGLE_ISSUER` without SQPOLL: the kernel refuses (`EEXIST`) submissions
///   from any thread but the one that made the ring (or enabled it, with an allowlist). With
///   SQPOLL it is accepted: the kernel's poller thread is then the one issuer, whichever
///   thread pushes. Registration (`io_uring_register` on [`Context::as_fd`](std::os::fd::AsFd::as_fd)) is still refused
///   to every thread but the one that built the context.
/// - `IORING_SETUP_IOPOLL` (and `HYBRID_IOPOLL`): completions of a polled ring arrive only
///   while a thread busy-polls it (a wait with nothing on the kernel's poll list returns at
///   once, so a context's blocking waits would spin), and the kernel refuses the
///   `ASYNC_CANCEL` the context's drop relies on. Use [`crate::Uring`] for polled I/O.
/// - `IORING_SETUP_R_DISABLED`: the context starts its ring disabled itself when it has an
///   allowlist, and enables it; a ring left disabled would refuse every submission. Use
///   [`ContextBuilder::allow`] for restrictions.
///
/// The others are the builder's to choose; the context keeps them (see [`Context::info`]):
///
/// - `IORING_SETUP_SQPOLL` (with its idle time and CPU): a kernel thread consumes the SQ.
///   [`Context::push`] publishes an op's SQEs, wakes the poller if it sleeps, and when the
///   SQ is full waits for the poller to make room (`IORING_ENTER_SQ_WAIT`). Every request is
///   issued by the poller thread, so ops no longer belong to the thread that pushed them (see
///   "Threads" on [`Context`]). Before Linux 5.11 (no `IORING_FEAT_SQPOLL_NONFIXED`) the
///   poller only takes registered files, and SQPOLL needs privileges on older kernels.
/// - `IORING_SETUP_COOP_TASKRUN` (and `TASKRUN_FLAG`): the kernel no longer interrupts a
///   thread running in user space to finish its ops (a thread asleep, in a wait or on a lock,
///   is still woken). Completions of ops that finish through the submitting thread's task
///   work (reads of pipes and sockets, polls) then wait until that thread next enters or
///   leaves the kernel, which a busy thread does at least at its next timer tick. Waits still
///   see every completion; with `TASKRUN_FLAG` they enter the kernel when the ring says task
///   work is pending.
/// - The rest (`CQSIZE`, `CLAMP`, `ATTACH_WQ`, `SUBMIT_ALL`, `SQE128`, `CQE32`,
///   `NO_SQARRAY`) change nothing a context relies on.
///
/// # Examples
///
/// ```
/// use uring_ops::{ops::{Nop, Readv, Writev}, Context, Error};
/// let ctx = Context::builder(16).allow::<Readv<Vec<u8>>>().allow::<Nop>().build()?;
/// let f = uring_ops::Fd::new(std::fs::File::open("/dev/null")?);
/// let refused = ctx.push(Writev::new(&f, vec![vec![1u8]], 0)).unwrap_err();
/// assert!(matches!(refused.error, Error::NotAllowed { op: "WRITEV" }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A context on an SQPOLL ring with an allowlist:
///
/// ```
/// use std::time::Duration;
/// use uring_ops::{core::{Builder, SetupFlags}, ops::Nop, ContextBuilder};
/// let ring = Builder::new(64).sqpoll(Duration::from_millis(100));
/// let ctx = match ContextBuilder::with_builder(ring).allow::<Nop>().build() {
///     Ok(ctx) => ctx,
///     // Older kernels allow SQPOLL to privileged users only.
///     Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(()),
///     Err(e) => return Err(e.into()),
/// };
/// assert!(ctx.info().flags.contains(SetupFlags::SQPOLL));
/// assert_eq!(ctx.wait(ctx.push(Nop::new())?)??, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    ring: Builder,
    allowed: Option<OpSet>,
    register_ops: Vec<u8>,
}

impl ContextBuilder {
    /// A context with `entries` SQ entries (rounded up to a power of two by the kernel) and
    /// default setup.
    pub fn new(entries: u32) -> Self {
        Self::with_builder(Builder::new(entries))
    }

    /// A context on a ring set up by `ring`: its sizes and setup flags (SQPOLL with its idle
    /// time and CPU, COOP_TASKRUN, ATTACH_WQ, ...). [`ContextBuilder::build`] refuses the
    /// flags a context cannot honour; the "Setup flags" section above lists them and why.
    /// An allowlist adds `IORING_SETUP_R_DISABLED` to the flags given here, keeping them all.
    pub fn with_builder(ring: Builder) -> Self {
        ContextBuilder {
            ring,
            allowed: None,
            register_ops: Vec::new(),
        }
    }

    /// `n` CQ entries (default: the builder's, else twice the SQ entries). Overrides a size
    /// set on the builder given to [`ContextBuilder::with_builder`].
    pub fn cq_entries(mut self, n: u32) -> Self {
        self.ring = self.ring.cq_entries(n);
        self
    }

    /// Permits op type `O` (by its opcode: `Readv<Vec<u8>>` permits every `Readv`), and turns
    /// the allowlist on.
    pub fn allow<O: Op>(mut self) -> Self {
        self.allowed
            .get_or_insert_with(OpSet::empty)
            .insert(O::OPCODE);
        self
    }

    /// Permits `io_uring_register` opcode `op` (`IORING_REGISTER_*`) once the ring is
    /// restricted, and turns the allowlist on (with no [`ContextBuilder::allow`], no op is
    /// permitted). Every registration not permitted this way is refused (`EACCES`) after
    /// [`ContextBuilder::build`].
    pub fn allow_register(mut self, op: u8) -> Self {
        self.allowed.get_or_insert_with(OpSet::empty);
        self.register_ops.push(op);
        self
    }

    /// Turns the allowlist on, empty: only the ops given to [`ContextBuilder::allow`] (none, if
    /// there is no such call) and the register ops given to
    /// [`ContextBuilder::allow_register`] are permitted. `restrict()` alone makes a ring that
    /// accepts no op at all (a context kept for its wake-ups, or handed to code that must not
    /// submit): [`Context::push`] refuses every op with [`Error::NotAllowed`], and the kernel
    /// every opcode but the context's own with `EACCES`.
    pub fn restrict(mut self) -> Self {
        self.allowed.get_or_insert_with(OpSet::empty);
        self
    }

    /// Creates the ring, probes the kernel's opcodes, and registers the allowlist.
    ///
    /// # Errors
    ///
    /// [`Error::ContextSetupFlag`] naming a setup flag a context refuses (before any ring is
    /// made; see "Setup flags" above); [`Error::Core`]: the setup refused (as for
    /// [`Builder::build`]), the probe, or the restriction or enabling registration failing,
    /// with the kernel's errno.
    pub fn build(&self) -> Result<Context> {
        check_setup_flags(self.ring.setup_flags())?;
        let mut b = self.ring.clone();
        if self.allowed.is_some() {
            b = b.disabled();
        }
        let ring = b.build()?;
        let supported = probe(&ring)?;
        let allowed = match self.allowed {
            None => OpSet::all(),
            Some(allowed) => {
                restrict(&ring, allowed, &self.register_ops)?;
                allowed
            }
        };
        Ok(Context::from_parts(ring, supported, allowed))
    }
}

/// Refuses the setup flags a [`Context`] cannot honour (see "Setup flags" on
/// [`ContextBuilder`]), naming the flag and why.
fn check_setup_flags(f: SetupFlags) -> Result<()> {
    let (flag, why) = if f.contains(SetupFlags::DEFER_TASKRUN) {
        (
            "DEFER_TASKRUN",
            "the kernel runs completion work only when the submitting thread waits, and \
             refuses (EEXIST) a wait from any other thread, while a Context submits and waits \
             from any thread",
        )
    } else if f.contains(SetupFlags::SINGLE_ISSUER) && !f.contains(SetupFlags::SQPOLL) {
        (
            "SINGLE_ISSUER",
            "without SQPOLL the kernel refuses (EEXIST) submissions from any thread but the one \
             that made the ring, while a Context submits from every thread that pushes (with \
             SQPOLL the poller thread is the single issuer, and it is accepted)",
        )
    } else if f.intersects(SetupFlags::IOPOLL | SetupFlags::HYBRID_IOPOLL) {
        (
            "IOPOLL",
            "a polled ring completes only while a thread busy-polls it, so a Context's blocking \
             waits would spin, and it refuses the ASYNC_CANCEL a Context's drop relies on (use \
             Uring for polled I/O)",
        )
    } else if f.contains(SetupFlags::R_DISABLED) {
        (
            "R_DISABLED",
            "a Context disables and enables its ring itself, to register an allowlist \
             (ContextBuilder::allow); a ring left disabled would refuse every submission",
        )
    } else {
        return Ok(());
    };
    Err(Error::ContextSetupFlag { flag, why })
}

/// Registers the restrictions of a disabled ring and enables it.
fn restrict(ring: &Ring<Kernel>, allowed: OpSet, register_ops: &[u8]) -> Result<()> {
    let mut sqe_ops = allowed;
    sqe_ops.insert(sys::IORING_OP_NOP as u8);
    sqe_ops.insert(sys::IORING_OP_ASYNC_CANCEL as u8);
    let mut rs: Vec<Restriction> = (0..=u8::MAX)
        .filter(|&op| sqe_ops.contains(op))
        .map(Restriction::SqeOp)
        .collect();
    rs.push(Restriction::SqeFlagsAllowed(SqeFlags::all()));
    // Since Linux 7.0 the kernel restricts register ops only when the allowlist names at least
    // one ("io_uring: track restrictions separately for IORING_OP and IORING_REGISTER"); before,
    // any restriction refused every register op not named. Naming ENABLE_RINGS, which an
    // enabled ring refuses anyway (EBADFD), keeps every other register op refused on both.
    rs.push(Restriction::RegisterOp(
        sys::IORING_REGISTER_ENABLE_RINGS as u8,
    ));
    rs.extend(register_ops.iter().map(|&op| Restriction::RegisterOp(op)));
    let reg = ring.register();
    reg.register_restrictions(&rs)?;
    reg.enable_rings()?;
    Ok(())
}
