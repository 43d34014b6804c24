//! The errors of `uring-ops`.

use std::io;

/// What can go wrong before an op reaches the kernel, or while waiting for it.
///
/// Errors on push come back with the op itself ([`PushError`]), so no buffer is ever lost.
/// Every variant names the problem and carries the offending value; [`Error::raw_os_error`]
/// gives the errno it stands for (the kernel's, or the one the kernel would have given for a
/// problem found before the system call), which the conversion to [`io::Error`] keeps.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The running kernel does not support this op (from the ring's probe). `EOPNOTSUPP`.
    #[error("the running kernel does not support IORING_OP_{op} ({name})")]
    Unsupported {
        /// The opcode's name (`READV`).
        op: &'static str,
        /// The op type's name (`Readv`).
        name: &'static str,
    },
    /// The ring's allowlist does not permit this op. `EACCES`.
    #[error("IORING_OP_{op} is not in this ring's allowlist")]
    NotAllowed {
        /// The opcode's name.
        op: &'static str,
    },
    /// The ticket (or completion record) does not belong to this ring, or its op was already
    /// taken (or detached). `EINVAL`.
    #[error("unknown ticket: not issued by this ring, or already redeemed")]
    UnknownTicket,
    /// A completion record redeemed as another type than its op's
    /// ([`crate::Uring::take`], [`crate::Uring::take_item`]). Nothing was taken. `EINVAL`.
    #[error("the op is a {found}, not a {expected}")]
    WrongType {
        /// The type asked for (its in-ring form).
        expected: &'static str,
        /// The op's (its in-ring form).
        found: &'static str,
    },
    /// A submission redeemed from a completion record while it still runs: the record was
    /// one of its items ([`crate::Completion::more`]). `EBUSY`.
    #[error("the submission has not finished: the record is one of its items")]
    NotFinished,
    /// An item asked of a completion record that reports no item
    /// ([`crate::Uring::take_item`] with a record whose `more` is false). `EINVAL`.
    #[error("the completion record reports no item: the submission finished")]
    NotAnItem,
    /// A [`crate::Context`] called from the thread that holds a [`crate::Batch`] or a
    /// [`crate::Completions`] of it: that thread holds the context's locks, so the call would
    /// deadlock. Drop the batch (or the iterator) first. `EDEADLK`.
    #[error("the context was called from the thread that holds its Batch (or Completions); drop that first: the call would deadlock")]
    Reentrant,
    /// The item a completion record reports was taken already (from its record, or by a
    /// drain). `EINVAL`.
    #[error("the item was taken already")]
    ItemTaken,
    /// The submission queue has no room for the op (or the whole chain); nothing was queued.
    /// `EBUSY`.
    #[error("submission queue full: {needed} SQE(s) needed, {free} free")]
    QueueFull {
        /// SQEs needed.
        needed: u32,
        /// SQEs free.
        free: u32,
    },
    /// The ring already holds as many ops as it can track (in flight, or finished and not yet
    /// redeemed); redeem or detach some first. `EBUSY`.
    #[error("the ring already holds {limit} ops in flight or unredeemed")]
    TooManyOps {
        /// How many ops a ring holds at most.
        limit: usize,
    },
    /// A submission has more SQEs than their numbers have room for in the user data.
    /// `EINVAL`.
    #[error("a submission has at most {max} SQEs, this one has {sqes}")]
    TooManySqes {
        /// The submission's SQEs.
        sqes: u32,
        /// The most one submission may have.
        max: u32,
    },
    /// A chain with no link (only possible with [`crate::Chain::from_vec`]). `EINVAL`.
    #[error("a chain needs at least one link")]
    EmptyChain,
    /// A chain with more links than [`crate::MAX_LINKS`]. `EINVAL`.
    #[error("a chain has at most {max} links, this one has {links}")]
    ChainTooLong {
        /// The chain's links.
        links: usize,
        /// The most a chain may have.
        max: usize,
    },
    /// A link timeout pushed alone: it guards the link before it, so it only exists inside a
    /// chain. `EINVAL`.
    #[error("{op} pushed alone: a link timeout guards the link before it, so it can only follow a link in a Chain")]
    LinkTimeoutAlone {
        /// The op type's name.
        op: &'static str,
    },
    /// A link timeout first in a chain, or right after another link timeout: it must follow
    /// the op it guards. `EINVAL`.
    #[error("link {link} ({op}) does not follow an op it could guard: a link timeout must come right after the op it guards")]
    MisplacedLinkTimeout {
        /// Its index in the chain.
        link: usize,
        /// The op type's name.
        op: &'static str,
    },
    /// A raw SQE with `IOSQE_CQE_SKIP_SUCCESS`: the ring would never see it finish. `EINVAL`.
    #[error("a raw SQE with skip-success: its completion would never be seen")]
    SkipSuccess,
    /// An injected result below `-4095` ([`crate::ops::Nop::inject_result`]): neither a count
    /// nor an errno. `EINVAL`.
    #[error("injected result {res} is neither a count nor an errno (-4095..=-1)")]
    NotAnErrno {
        /// The value.
        res: i32,
    },
    /// A ring taken over by [`crate::Uring::from_ring`] has SQEs queued or completions
    /// waiting, which could collide with the ops' keys. `EBUSY`.
    #[error("Uring::from_ring needs a quiet ring: {queued} SQE(s) queued, {ready} completion(s) waiting")]
    RingNotQuiet {
        /// SQEs queued.
        queued: u32,
        /// Completions waiting in the CQ (or the kernel's overflow list, counted as one).
        ready: u32,
    },
    /// A setup flag a [`crate::Context`] cannot honour (see [`crate::ContextBuilder`]).
    /// `EINVAL`.
    #[error("a Context cannot use IORING_SETUP_{flag}: {why}")]
    ContextSetupFlag {
        /// The flag's name (`DEFER_TASKRUN`).
        flag: &'static str,
        /// Why.
        why: &'static str,
    },
    /// A registered-buffer pool of a bad shape ([`crate::FixedBufs::register`]). `EINVAL`.
    #[error("{count} fixed buffers of {size} bytes: {why}")]
    FixedBufShape {
        /// Buffers asked for.
        count: usize,
        /// Bytes each.
        size: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A socket address that cannot be made ([`crate::SockAddr`]). `EINVAL`.
    #[error("bad socket address ({len} bytes): {why}")]
    BadSockAddr {
        /// What is wrong with it.
        why: &'static str,
        /// The length given.
        len: usize,
    },
    /// An op's arguments do not go together (a multishot accept into one named slot, a
    /// bundle receive with `MSG_WAITALL`, ...). `EINVAL`.
    #[error("{op}: {why}")]
    BadArgument {
        /// The op type's name.
        op: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// A provided-buffer ring or group of a bad shape ([`crate::BufRing`],
    /// [`crate::BufGroup`]). `EINVAL`.
    #[error("{count} provided buffers of {size} bytes: {why}")]
    ProvidedBufShape {
        /// Buffers asked for.
        count: u32,
        /// Bytes each.
        size: u32,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Every buffer group id is taken by a live [`crate::BufRing`] or [`crate::BufGroup`] of
    /// this process. `EBUSY`.
    #[error("all 65536 buffer group ids are in use")]
    NoBufGroupId,
    /// A path (or an attribute name) with a NUL byte inside: the kernel reads a C string up to
    /// its first NUL, so it would act on a shorter path than the one given. `EINVAL`.
    #[error(
        "path {path:?} has a NUL byte at {position}: the kernel would read only the part before it"
    )]
    InteriorNul {
        /// The path (or name), as given.
        path: std::path::PathBuf,
        /// Where its first NUL byte is.
        position: usize,
    },
    /// A registered-file index where the kernel takes only a descriptor: the op would refuse it
    /// (`EBADF`), or read the index as a descriptor number and act on another file. `EBADF`.
    #[error(
        "{op}: {what} must be a descriptor (or Target::cwd), not registered-file index {index}"
    )]
    FixedFileNotAccepted {
        /// The op type's name.
        op: &'static str,
        /// Which of its files.
        what: &'static str,
        /// The index given.
        index: u32,
    },
    /// A count, index or offset outside the range the op (or the kernel) takes. `EINVAL`.
    /// (Boxed: the details would make every `Error`, hence every push's result, larger.)
    #[error("{0}")]
    OutOfRange(Box<RangeError>),
    /// Memory could not be allocated (for a [`crate::FixedBufs`] pool, an
    /// [`crate::AlignedBuf`]): the allocator refused `bytes` bytes, or they cannot be asked of
    /// it (more than `isize::MAX`). Nothing was allocated (or registered).
    #[error("out of memory: could not allocate {bytes} bytes")]
    OutOfMemory {
        /// The size of the refused allocation.
        bytes: usize,
    },
    /// A buffer alignment that is not a power of two (0 included), or above
    /// [`crate::AlignedBuf::MAX_ALIGN`] ([`crate::AlignedBuf::new`]). `EINVAL`.
    #[error("alignment {align} is not a power of two of at most 2 MiB")]
    BadAlignment {
        /// The alignment given.
        align: usize,
    },
    /// An async ring (module `awaitable`, feature `async`) was asked for a second driver while
    /// one runs: one driver submits and reaps for all of a ring's futures. `EBUSY`.
    #[error("the async ring already has a driver: spawn one per ring")]
    DriverRunning,
    /// A setup flag an async ring (module `awaitable`) cannot be driven with. `EINVAL`.
    #[error("an async ring cannot use IORING_SETUP_{flag}: {why}")]
    AsyncSetupFlag {
        /// The flag's name (`DEFER_TASKRUN`).
        flag: &'static str,
        /// Why.
        why: &'static str,
    },
    /// The ring layer failed.
    #[error(transparent)]
    Core(#[from] uring_core::Error),
}

impl Error {
    /// The errno behind this error: the kernel's, or the one it would have given.
    pub fn raw_os_error(&self) -> Option<i32> {
        Some(match self {
            Error::Unsupported { .. } => libc::EOPNOTSUPP,
            Error::NotAllowed { .. } => libc::EACCES,
            Error::QueueFull { .. }
            | Error::TooManyOps { .. }
            | Error::RingNotQuiet { .. }
            | Error::NotFinished
            | Error::DriverRunning => libc::EBUSY,
            Error::FixedFileNotAccepted { .. } => libc::EBADF,
            Error::UnknownTicket
            | Error::WrongType { .. }
            | Error::NotAnItem
            | Error::ItemTaken
            | Error::TooManySqes { .. }
            | Error::EmptyChain
            | Error::ChainTooLong { .. }
            | Error::LinkTimeoutAlone { .. }
            | Error::MisplacedLinkTimeout { .. }
            | Error::SkipSuccess
            | Error::NotAnErrno { .. }
            | Error::ContextSetupFlag { .. }
            | Error::AsyncSetupFlag { .. }
            | Error::FixedBufShape { .. }
            | Error::BadSockAddr { .. }
            | Error::BadArgument { .. }
            | Error::ProvidedBufShape { .. }
            | Error::BadAlignment { .. } => libc::EINVAL,
            Error::NoBufGroupId => libc::EBUSY,
            Error::InteriorNul { .. } | Error::OutOfRange { .. } => libc::EINVAL,
            Error::OutOfMemory { .. } => libc::ENOMEM,
            Error::Reentrant => libc::EDEADLK,
            Error::Core(e) => return e.raw_os_error(),
        })
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(e) => e.into(),
            other => {
                let errno = other.raw_os_error().unwrap_or(libc::EINVAL);
                io::Error::new(io::Error::from_raw_os_error(errno).kind(), other)
            }
        }
    }
}

/// What [`Error::OutOfRange`] names: the op, its argument, the value given and the range it
/// must be in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {what} is {value}, outside {min}..={max}")]
pub struct RangeError {
    /// The op type's name.
    pub op: &'static str,
    /// Which argument.
    pub what: &'static str,
    /// Its value.
    pub value: u64,
    /// The least it may be.
    pub min: u64,
    /// The most it may be.
    pub max: u64,
}

impl Error {
    /// [`Error::OutOfRange`] of `what` (of op `op`): `value`, not in `min..=max`.
    pub(crate) fn out_of_range(
        op: &'static str,
        what: &'static str,
        value: u64,
        min: u64,
        max: u64,
    ) -> Self {
        Error::OutOfRange(Box::new(RangeError {
            op,
            what,
            value,
            min,
            max,
        }))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A push that failed: the reason, and the op, handed back untouched with everything it owns.
///
/// `?` turns it into what the caller's function returns: `Box<dyn std::error::Error>`
/// (keeping the op inside), this crate's [`Error`] or [`io::Error`] (dropping the op, which
/// the kernel never saw).
///
/// ```
/// use uring_ops::{ops::Nop, Uring};
/// fn nop(ring: &mut Uring) -> std::io::Result<u32> {
///     let ticket = ring.push(Nop::new())?;
///     Ok(ring.wait(ticket)??)
/// }
/// assert_eq!(nop(&mut Uring::new(4)?)?, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct PushError<T> {
    /// Why the op was not queued.
    #[source]
    pub error: Error,
    /// The op, with its buffers.
    pub op: T,
}

impl<T> PushError<T> {
    /// Drops the op and keeps the error.
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl<T> From<PushError<T>> for Error {
    /// Drops the op and keeps the error, so that `?` works where the op is not wanted back.
    fn from(e: PushError<T>) -> Self {
        e.error
    }
}

impl<T> From<PushError<T>> for io::Error {
    /// Drops the op and keeps the error, with its errno.
    fn from(e: PushError<T>) -> Self {
        e.error.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> PushError<Vec<u8>> {
        PushError {
            error: Error::QueueFull { needed: 2, free: 1 },
            op: vec![7],
        }
    }

    #[test]
    fn a_push_error_converts_with_question_mark_keeping_the_reason() {
        fn to_error() -> Result<()> {
            Err(full())?
        }
        fn to_io() -> io::Result<()> {
            Err(full())?
        }
        fn to_boxed() -> std::result::Result<(), Box<dyn std::error::Error>> {
            Err(full())?
        }
        assert!(matches!(
            to_error(),
            Err(Error::QueueFull { needed: 2, free: 1 })
        ));
        let e = to_io().unwrap_err();
        assert_eq!(e.kind(), io::Error::from_raw_os_error(libc::EBUSY).kind());
        assert_eq!(
            e.to_string(),
            "submission queue full: 2 SQE(s) needed, 1 free"
        );
        // The box keeps the whole `PushError`, op included.
        let boxed = to_boxed().unwrap_err();
        let back = boxed.downcast::<PushError<Vec<u8>>>().unwrap();
        assert_eq!(back.op, [7]);
    }
}
