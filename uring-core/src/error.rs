//! The errors of `uring-core`.

use std::io;

/// Everything `uring-core` can report. Each variant says what failed and carries the errno or
/// the offending value; every one converts to [`io::Error`] keeping the errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A ring was asked for zero submission queue entries.
    #[error("a ring needs at least one SQ entry (got 0)")]
    ZeroEntries,
    /// More SQ entries than the kernel allows, without [`crate::Builder::clamp`].
    #[error("{requested} SQ entries is more than the kernel maximum of {max} (use clamp())")]
    TooManyEntries {
        /// What was asked for.
        requested: u32,
        /// The kernel's limit.
        max: u32,
    },
    /// More CQ entries than the kernel allows, without [`crate::Builder::clamp`].
    #[error("{requested} CQ entries is more than the kernel maximum of {max} (use clamp())")]
    TooManyCqEntries {
        /// What was asked for.
        requested: u32,
        /// The kernel's limit.
        max: u32,
    },
    /// A completion queue smaller than the submission queue, once the kernel has sized both
    /// (clamped with [`crate::Builder::clamp`], then rounded up to a power of two).
    #[error(
        "the CQ ({cq} entries) must be at least as large as the SQ ({sq} entries), both rounded \
         up to a power of two"
    )]
    CqSmallerThanSq {
        /// CQ entries the kernel would make: the requested number, clamped, rounded up.
        cq: u32,
        /// SQ entries the kernel would make: the requested number, clamped, rounded up.
        sq: u32,
    },
    /// Setup flag bits this crate does not know (and so cannot drive the rings for).
    #[error("unknown setup flag bits {0:#x}: this version of uring-core cannot drive such a ring")]
    UnknownSetupFlags(u32),
    /// A flag combination the kernel rejects.
    #[error("invalid setup: {0}")]
    InvalidSetup(&'static str),
    /// The submission queue lacks room for the SQEs asked for; nothing was reserved.
    #[error("no room in the submission queue: {needed} SQE(s) needed, {free} free of {capacity}")]
    NoSpace {
        /// SQEs asked for.
        needed: u32,
        /// SQEs free at the time.
        free: u32,
        /// Size of the SQ.
        capacity: u32,
    },
    /// A timed wait ended before enough completions arrived.
    #[error("timed out waiting for completions")]
    Timeout,
    /// The kernel is short of resources or the completion queue is backed up: reap completions,
    /// then submit again. SQEs that were not consumed are still queued.
    #[error("the kernel cannot take more work now ({0}): reap completions and retry")]
    Busy(#[source] io::Error),
    /// The registered ring fd cannot be registered or unregistered this way (already
    /// registered, not registered, or registered by another thread: the kernel keeps
    /// registered ring fds per thread). See [`crate::Registrar::register_ring_fd`].
    #[error("registered ring fd: {0}")]
    RingFd(&'static str),
    /// A registration's argument that the kernel would refuse (or that this crate cannot
    /// hand it safely), caught before the system call: `op` is the register op's name.
    #[error("{op}: {why}")]
    Register {
        /// The register op (`"IORING_REGISTER_RESIZE_RINGS"`, ...).
        op: &'static str,
        /// What is wrong with the argument.
        why: &'static str,
    },
    /// A provided-buffer ring of a size the kernel refuses (see
    /// [`crate::BufRingMem::new`]).
    #[error("a provided-buffer ring needs a power of two in 1..=32768 entries, got {0}")]
    BufRingEntries(u32),
    /// The ring was set up by another process: this one is a forked child (or later
    /// descendant) of it (`EPERM`).
    ///
    /// A child inherits the ring's fd, and its memory shared with the parent, but not the
    /// parent's bookkeeping: its copy of the queues would write SQEs over the parent's, run
    /// them, and take completions meant for the parent. So at the fork the child's view of the
    /// ring memory is replaced by a private copy (SQEs reserved there go nowhere), and every
    /// step that would reach the kernel or the parent's completions is refused with this
    /// error: submitting, waiting, waiting for room. A batch of completions is empty. Dropping
    /// the ring in the child is harmless to the parent. Set up a new ring in the child.
    /// (Registration calls, `Ring::register`, are not refused: they act on the kernel's ring,
    /// shared with the parent.)
    #[error(
        "this ring was set up by another process (this one is a fork of it): a forked child \
         must not use an inherited ring; set up a new one"
    )]
    ForkedChild,
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Os {
        /// Which call (`io_uring_setup`, `io_uring_enter`, `mmap`, an `IORING_REGISTER_*` name).
        call: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn os(call: &'static str, source: io::Error) -> Self {
        Error::Os { call, source }
    }

    /// The errno behind this error, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Busy(e) | Error::Os { source: e, .. } => e.raw_os_error(),
            Error::Timeout => Some(libc::ETIME),
            Error::NoSpace { .. } => Some(libc::EBUSY),
            Error::ForkedChild => Some(libc::EPERM),
            _ => Some(libc::EINVAL),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            // The kernel's errno is kept as is (`raw_os_error()` still answers).
            Error::Os { source, .. } | Error::Busy(source) => source,
            // Nothing but the errno to say.
            Error::Timeout => io::Error::from_raw_os_error(libc::ETIME),
            // Errors found before the kernel was asked keep their message (which names the
            // problem) and the kind of the errno they stand for; `Error::raw_os_error` gives it.
            other => {
                let errno = other.raw_os_error().unwrap_or(libc::EINVAL);
                io::Error::new(io::Error::from_raw_os_error(errno).kind(), other)
            }
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
