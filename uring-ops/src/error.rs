//! The errors of `uring-ops`.

use std::io;

/// What can go wrong before an op reaches the kernel, or while waiting for it.
///
/// Errors on push come back with the op itself ([`PushError`]), so no buffer is ever lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The running kernel does not support this op (from the ring's probe).
    #[error("the running kernel does not support IORING_OP_{op} ({name})")]
    Unsupported {
        /// The opcode's name (`READV`).
        op: &'static str,
        /// The op type's name (`Readv`).
        name: &'static str,
    },
    /// The ring's allowlist does not permit this op.
    #[error("IORING_OP_{op} is not in this ring's allowlist")]
    NotAllowed {
        /// The opcode's name.
        op: &'static str,
    },
    /// An argument is out of range (names it and the value).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The ticket does not belong to this ring, or its op was already taken.
    #[error("unknown ticket: not issued by this ring, or already redeemed")]
    UnknownTicket,
    /// The submission queue has no room for the op (or the whole chain); nothing was queued.
    #[error("submission queue full: {needed} SQE(s) needed, {free} free")]
    QueueFull {
        /// SQEs needed.
        needed: u32,
        /// SQEs free.
        free: u32,
    },
    /// The ring already holds as many ops as it can track (in flight, or finished and not yet
    /// redeemed); redeem or detach some first.
    #[error("the ring already holds {limit} ops in flight or unredeemed")]
    TooManyOps {
        /// How many ops a ring holds at most.
        limit: usize,
    },
    /// The ring layer failed.
    #[error(transparent)]
    Core(#[from] uring_core::Error),
}

impl Error {
    /// The errno behind this error, where one applies.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Unsupported { .. } => Some(libc::EOPNOTSUPP),
            Error::NotAllowed { .. } => Some(libc::EACCES),
            Error::InvalidArgument(_) | Error::UnknownTicket => Some(libc::EINVAL),
            Error::QueueFull { .. } | Error::TooManyOps { .. } => Some(libc::EBUSY),
            Error::Core(e) => e.raw_os_error(),
        }
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

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A push that failed: the reason, and the op, handed back untouched with everything it owns.
///
/// `?` turns it into whatever the caller's function returns: `Box<dyn std::error::Error>`
/// (keeping the op inside, for ops that are `Debug + 'static`), this crate's [`Error`] or
/// [`io::Error`] (dropping the op, which the kernel never saw, whatever it holds).
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
    /// Keeps the reason; the op, never queued, is dropped.
    fn from(e: PushError<T>) -> Self {
        e.error
    }
}

impl<T> From<PushError<T>> for io::Error {
    /// Keeps the reason, as `From<Error> for io::Error` does; the op, never queued, is dropped.
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
