//! Ring setup: the flags, the builder that checks them before the kernel does, and the typed
//! answer (features, real sizes).

use crate::error::{Error, Result};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;
use uring_sys as sys;

/// The kernel's limit on SQ entries (`IORING_MAX_ENTRIES` in `io_uring/io_uring.h`).
pub const MAX_ENTRIES: u32 = 32768;
/// The kernel's limit on CQ entries (`IORING_MAX_CQ_ENTRIES`).
pub const MAX_CQ_ENTRIES: u32 = 2 * MAX_ENTRIES;

bitflags::bitflags! {
    /// `IORING_SETUP_*` flags, as passed to `io_uring_setup(2)`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SetupFlags: u32 {
        /// Busy-poll for completions (`O_DIRECT` files on polling-capable devices only).
        const IOPOLL = sys::IORING_SETUP_IOPOLL;
        /// A kernel thread polls the SQ: submission needs no system call while it is awake.
        const SQPOLL = sys::IORING_SETUP_SQPOLL;
        /// Pin the SQPOLL thread to `sq_thread_cpu`.
        const SQ_AFF = sys::IORING_SETUP_SQ_AFF;
        /// The CQ size is given in `cq_entries`.
        const CQSIZE = sys::IORING_SETUP_CQSIZE;
        /// Clamp too-large sizes to the maximum instead of failing.
        const CLAMP = sys::IORING_SETUP_CLAMP;
        /// Share the io-wq worker pool of the ring in `wq_fd`.
        const ATTACH_WQ = sys::IORING_SETUP_ATTACH_WQ;
        /// Start disabled: register restrictions, then enable.
        const R_DISABLED = sys::IORING_SETUP_R_DISABLED;
        /// Keep submitting a batch after an SQE fails to prepare.
        const SUBMIT_ALL = sys::IORING_SETUP_SUBMIT_ALL;
        /// Run completion task work cooperatively (no IPI to interrupt the task).
        const COOP_TASKRUN = sys::IORING_SETUP_COOP_TASKRUN;
        /// Set `IORING_SQ_TASKRUN` when task work is pending.
        const TASKRUN_FLAG = sys::IORING_SETUP_TASKRUN_FLAG;
        /// 128-byte SQEs.
        const SQE128 = sys::IORING_SETUP_SQE128;
        /// 32-byte CQEs.
        const CQE32 = sys::IORING_SETUP_CQE32;
        /// Only one task submits.
        const SINGLE_ISSUER = sys::IORING_SETUP_SINGLE_ISSUER;
        /// Defer task work until the issuer waits for completions.
        const DEFER_TASKRUN = sys::IORING_SETUP_DEFER_TASKRUN;
        /// The application provides the ring memory (not supported by this crate's setup).
        const NO_MMAP = sys::IORING_SETUP_NO_MMAP;
        /// The ring fd is registered and not installed in the file table.
        const REGISTERED_FD_ONLY = sys::IORING_SETUP_REGISTERED_FD_ONLY;
        /// No SQ index array: SQEs are consumed in ring order.
        const NO_SQARRAY = sys::IORING_SETUP_NO_SQARRAY;
        /// Hybrid IOPOLL (sleep before polling).
        const HYBRID_IOPOLL = sys::IORING_SETUP_HYBRID_IOPOLL;
    }
}

bitflags::bitflags! {
    /// `IORING_FEAT_*` bits: what the running kernel offers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Features: u32 {
        /// SQ and CQ rings share one mapping.
        const SINGLE_MMAP = sys::IORING_FEAT_SINGLE_MMAP;
        /// Completions are never dropped: an overflowing CQ is backed by a kernel list.
        const NODROP = sys::IORING_FEAT_NODROP;
        /// Data for an SQE is stable once it is submitted.
        const SUBMIT_STABLE = sys::IORING_FEAT_SUBMIT_STABLE;
        /// Offset -1 means the file position.
        const RW_CUR_POS = sys::IORING_FEAT_RW_CUR_POS;
        /// Requests run with the submitting task's credentials.
        const CUR_PERSONALITY = sys::IORING_FEAT_CUR_PERSONALITY;
        /// Internal poll for readiness instead of async workers.
        const FAST_POLL = sys::IORING_FEAT_FAST_POLL;
        /// 32-bit poll masks.
        const POLL_32BITS = sys::IORING_FEAT_POLL_32BITS;
        /// SQPOLL works with non-registered files.
        const SQPOLL_NONFIXED = sys::IORING_FEAT_SQPOLL_NONFIXED;
        /// `IORING_ENTER_EXT_ARG` is supported.
        const EXT_ARG = sys::IORING_FEAT_EXT_ARG;
        /// Workers are native threads of the task.
        const NATIVE_WORKERS = sys::IORING_FEAT_NATIVE_WORKERS;
        /// Resource tags are supported.
        const RSRC_TAGS = sys::IORING_FEAT_RSRC_TAGS;
        /// `IOSQE_CQE_SKIP_SUCCESS` is supported.
        const CQE_SKIP = sys::IORING_FEAT_CQE_SKIP;
        /// Linked requests resolve files at execution time.
        const LINKED_FILE = sys::IORING_FEAT_LINKED_FILE;
        /// Registering a registered ring is supported.
        const REG_REG_RING = sys::IORING_FEAT_REG_REG_RING;
        /// Send/recv bundles.
        const RECVSEND_BUNDLE = sys::IORING_FEAT_RECVSEND_BUNDLE;
        /// A minimum wait time in the extended argument.
        const MIN_TIMEOUT = sys::IORING_FEAT_MIN_TIMEOUT;
        /// Read/write attributes.
        const RW_ATTR = sys::IORING_FEAT_RW_ATTR;
        /// `IORING_ENTER_NO_IOWAIT`.
        const NO_IOWAIT = sys::IORING_FEAT_NO_IOWAIT;
    }
}

/// What the kernel answered to `io_uring_setup`: real sizes, features, and the flags in force.
///
/// A snapshot, from [`crate::Ring::info`]: a copy taken before the ring is enabled keeps
/// reporting [`SetupFlags::R_DISABLED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingInfo {
    /// Number of SQ entries (a power of two, at least what was asked for).
    pub sq_entries: u32,
    /// Number of CQ entries.
    pub cq_entries: u32,
    /// Features of the running kernel.
    pub features: Features,
    /// The setup flags in force: those the ring was made with, except
    /// [`SetupFlags::R_DISABLED`] once the ring has been enabled (see [`crate::Ring::info`]).
    pub flags: SetupFlags,
}

/// The size the kernel gives a ring asked for `requested` entries (at least 1), `max` being
/// its limit: clamped to `max`, then rounded up to a power of two (`roundup_pow_of_two` in
/// `io_uring_create`). Both maxima are powers of two, so the result is at most `max`.
pub(crate) fn ring_size(requested: u32, max: u32) -> u32 {
    requested.min(max).next_power_of_two()
}

/// Refuses ring sizes the kernel would refuse (`io_uring_fill_params`), at setup and at a
/// resize: `entries` SQ entries, `cq` CQ entries when given (else twice the SQ), with `clamp`
/// (`IORING_SETUP_CLAMP`) or not.
pub(crate) fn check_sizes(entries: u32, cq: Option<u32>, clamp: bool) -> Result<()> {
    if entries == 0 {
        return Err(Error::ZeroEntries);
    }
    if entries > MAX_ENTRIES && !clamp {
        return Err(Error::TooManyEntries {
            requested: entries,
            max: MAX_ENTRIES,
        });
    }
    if let Some(cq) = cq {
        if cq == 0 {
            return Err(Error::InvalidSetup("CQSIZE with 0 CQ entries"));
        }
        if cq > MAX_CQ_ENTRIES && !clamp {
            return Err(Error::TooManyCqEntries {
                requested: cq,
                max: MAX_CQ_ENTRIES,
            });
        }
        // The kernel compares the sizes it will make: each clamped to its maximum (with
        // CLAMP; without it, larger ones were refused above), then rounded up to a power of
        // two. So `new(10).cq_entries(9)` is two rings of 16, and fine.
        let sq = ring_size(entries, MAX_ENTRIES);
        let cq = ring_size(cq, MAX_CQ_ENTRIES);
        if cq < sq {
            return Err(Error::CqSmallerThanSq { cq, sq });
        }
    }
    Ok(())
}

/// Builds a ring. Every setup flag of current kernels has a method; input the kernel would
/// reject is refused by [`Builder::build`] first, with an error that names it.
///
/// # Examples
///
/// ```
/// # if cfg!(miri) { return Ok(()); } // Miri cannot make io_uring system calls.
/// let ring = uring_core::Builder::new(64).cq_entries(256).build()?;
/// assert_eq!(ring.info().sq_entries, 64);
/// assert_eq!(ring.info().cq_entries, 256);
/// # Ok::<(), uring_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    pub(crate) entries: u32,
    pub(crate) params: sys::io_uring_params,
    /// CPU set for SQPOLL without SQPOLL itself: remembered to be refused by `validate`.
    sq_thread_cpu_set: bool,
    sq_thread_idle_set: bool,
}

impl Builder {
    /// A ring with at least `entries` SQ entries (rounded up to a power of two by the kernel)
    /// and, unless [`Builder::cq_entries`] says otherwise, twice as many CQ entries.
    pub fn new(entries: u32) -> Self {
        Builder {
            entries,
            params: sys::io_uring_params::default(),
            sq_thread_cpu_set: false,
            sq_thread_idle_set: false,
        }
    }

    fn flag(mut self, f: SetupFlags) -> Self {
        self.params.flags |= f.bits();
        self
    }

    /// Sets raw setup flags in addition to those the other methods set.
    pub fn flags(self, f: SetupFlags) -> Self {
        self.flag(f)
    }

    /// `IORING_SETUP_CQSIZE`: at least `n` CQ entries (rounded up to a power of two by the
    /// kernel, which must not be below the SQ's, also rounded: `new(10).cq_entries(9)` makes
    /// both 16).
    pub fn cq_entries(mut self, n: u32) -> Self {
        self.params.cq_entries = n;
        self.flag(SetupFlags::CQSIZE)
    }

    /// `IORING_SETUP_CLAMP`: clamp sizes above the maximum instead of failing.
    pub fn clamp(self) -> Self {
        self.flag(SetupFlags::CLAMP)
    }

    /// `IORING_SETUP_SQPOLL`: a kernel thread polls the SQ, sleeping after `idle` without work.
    pub fn sqpoll(mut self, idle: Duration) -> Self {
        self.params.sq_thread_idle = u32::try_from(idle.as_millis()).unwrap_or(u32::MAX);
        self.sq_thread_idle_set = true;
        self.flag(SetupFlags::SQPOLL)
    }

    /// `IORING_SETUP_SQ_AFF`: pin the SQPOLL thread to `cpu` (needs [`Builder::sqpoll`]).
    pub fn sqpoll_cpu(mut self, cpu: u32) -> Self {
        self.params.sq_thread_cpu = cpu;
        self.sq_thread_cpu_set = true;
        self.flag(SetupFlags::SQ_AFF)
    }

    /// `IORING_SETUP_IOPOLL`: busy-poll for completions.
    pub fn iopoll(self) -> Self {
        self.flag(SetupFlags::IOPOLL)
    }

    /// `IORING_SETUP_ATTACH_WQ`: share the io-wq workers of another ring.
    pub fn attach_wq(mut self, ring: BorrowedFd<'_>) -> Self {
        self.params.wq_fd = ring.as_raw_fd() as u32;
        self.flag(SetupFlags::ATTACH_WQ)
    }

    /// `IORING_SETUP_R_DISABLED`: start disabled, to register restrictions before enabling.
    pub fn disabled(self) -> Self {
        self.flag(SetupFlags::R_DISABLED)
    }

    /// `IORING_SETUP_SUBMIT_ALL`: keep submitting a batch after an SQE fails to prepare.
    pub fn submit_all(self) -> Self {
        self.flag(SetupFlags::SUBMIT_ALL)
    }

    /// `IORING_SETUP_COOP_TASKRUN`.
    pub fn coop_taskrun(self) -> Self {
        self.flag(SetupFlags::COOP_TASKRUN)
    }

    /// `IORING_SETUP_TASKRUN_FLAG` (needs COOP_TASKRUN or DEFER_TASKRUN).
    pub fn taskrun_flag(self) -> Self {
        self.flag(SetupFlags::TASKRUN_FLAG)
    }

    /// `IORING_SETUP_SINGLE_ISSUER`: only the task that sets up the ring submits.
    pub fn single_issuer(self) -> Self {
        self.flag(SetupFlags::SINGLE_ISSUER)
    }

    /// `IORING_SETUP_DEFER_TASKRUN` (needs SINGLE_ISSUER).
    pub fn defer_taskrun(self) -> Self {
        self.flag(SetupFlags::DEFER_TASKRUN)
    }

    /// `IORING_SETUP_NO_SQARRAY`: no SQ index array.
    pub fn no_sqarray(self) -> Self {
        self.flag(SetupFlags::NO_SQARRAY)
    }

    /// `IORING_SETUP_SQE128`: 128-byte SQEs (for `URING_CMD` passthrough).
    pub fn sqe128(self) -> Self {
        self.flag(SetupFlags::SQE128)
    }

    /// `IORING_SETUP_CQE32`: 32-byte CQEs with 16 bytes of extra data.
    pub fn cqe32(self) -> Self {
        self.flag(SetupFlags::CQE32)
    }

    /// The flags set so far.
    pub fn setup_flags(&self) -> SetupFlags {
        SetupFlags::from_bits_retain(self.params.flags)
    }

    /// Refuses what the kernel would refuse, naming the problem.
    pub(crate) fn validate(&self) -> Result<()> {
        let f = self.setup_flags();
        // Flags such as CQE_MIXED change the ring layout: refuse what the queues do not know.
        let unknown = f.bits() & !SetupFlags::all().bits();
        if unknown != 0 {
            return Err(Error::UnknownSetupFlags(unknown));
        }
        check_sizes(
            self.entries,
            f.contains(SetupFlags::CQSIZE)
                .then_some(self.params.cq_entries),
            f.contains(SetupFlags::CLAMP),
        )?;
        if f.contains(SetupFlags::DEFER_TASKRUN) && !f.contains(SetupFlags::SINGLE_ISSUER) {
            return Err(Error::InvalidSetup(
                "DEFER_TASKRUN needs SINGLE_ISSUER (call single_issuer())",
            ));
        }
        if f.contains(SetupFlags::DEFER_TASKRUN) && f.contains(SetupFlags::SQPOLL) {
            return Err(Error::InvalidSetup(
                "DEFER_TASKRUN cannot be used with SQPOLL",
            ));
        }
        if f.contains(SetupFlags::SQPOLL)
            && f.intersects(SetupFlags::COOP_TASKRUN | SetupFlags::TASKRUN_FLAG)
        {
            // The kernel refuses them (EINVAL): task work runs on the SQPOLL thread, which
            // interrupts no user task anyway.
            return Err(Error::InvalidSetup(
                "COOP_TASKRUN and TASKRUN_FLAG cannot be used with SQPOLL",
            ));
        }
        if (self.sq_thread_cpu_set || f.contains(SetupFlags::SQ_AFF))
            && !f.contains(SetupFlags::SQPOLL)
        {
            return Err(Error::InvalidSetup(
                "an SQPOLL CPU (sqpoll_cpu / SQ_AFF) needs SQPOLL (call sqpoll())",
            ));
        }
        if self.sq_thread_idle_set && !f.contains(SetupFlags::SQPOLL) {
            return Err(Error::InvalidSetup("an SQPOLL idle time needs SQPOLL"));
        }
        if f.contains(SetupFlags::TASKRUN_FLAG)
            && !f.intersects(SetupFlags::COOP_TASKRUN | SetupFlags::DEFER_TASKRUN)
        {
            return Err(Error::InvalidSetup(
                "TASKRUN_FLAG needs COOP_TASKRUN or DEFER_TASKRUN",
            ));
        }
        if f.contains(SetupFlags::NO_MMAP) {
            return Err(Error::InvalidSetup(
                "NO_MMAP (user-provided ring memory) is not supported by this builder",
            ));
        }
        if f.contains(SetupFlags::REGISTERED_FD_ONLY) {
            return Err(Error::InvalidSetup(
                "REGISTERED_FD_ONLY needs NO_MMAP, which this builder does not support",
            ));
        }
        if f.contains(SetupFlags::HYBRID_IOPOLL) && !f.contains(SetupFlags::IOPOLL) {
            return Err(Error::InvalidSetup("HYBRID_IOPOLL needs IOPOLL"));
        }
        if f.contains(SetupFlags::ATTACH_WQ) && self.params.wq_fd as i32 == -1 {
            return Err(Error::InvalidSetup("ATTACH_WQ needs a ring fd"));
        }
        Ok(())
    }

    /// Sets the ring up on the running kernel.
    ///
    /// # Errors
    ///
    /// The validation errors above, or [`Error::Os`] with the kernel's errno.
    #[cfg(not(loom))]
    pub fn build(&self) -> Result<crate::Ring> {
        self.validate()?;
        crate::ring::Ring::with_kernel(self)
    }

    /// Sets the ring up over heap memory serviced by an in-process simulated kernel (feature
    /// `test-util`).
    ///
    /// # Errors
    ///
    /// The validation errors of [`Builder::build`].
    #[cfg(any(test, loom, feature = "test-util"))]
    pub fn build_sim(&self) -> Result<crate::Ring<crate::sim::Sim>> {
        self.build_sim_with(crate::sim::SimConfig::default())
    }

    /// As [`Builder::build_sim`], with the simulated kernel configured by `config` (feature
    /// `test-util`).
    ///
    /// # Errors
    ///
    /// The validation errors of [`Builder::build`].
    #[cfg(any(test, loom, feature = "test-util"))]
    pub fn build_sim_with(
        &self,
        config: crate::sim::SimConfig,
    ) -> Result<crate::Ring<crate::sim::Sim>> {
        self.validate()?;
        crate::ring::Ring::with_sim(self, config)
    }
}
