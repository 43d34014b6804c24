//! The typed completion queue entry.

use std::io;
use uring_sys as sys;

bitflags::bitflags! {
    /// `IORING_CQE_F_*` flags of one completion (the upper 16 bits carry a buffer id, see
    /// [`Cqe::buffer_id`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct CqeFlags: u32 {
        /// The upper 16 bits hold the id of the provided buffer used.
        const BUFFER = sys::IORING_CQE_F_BUFFER;
        /// More completions will follow for this request (multishot).
        const MORE = sys::IORING_CQE_F_MORE;
        /// The socket has more data to read.
        const SOCK_NONEMPTY = sys::IORING_CQE_F_SOCK_NONEMPTY;
        /// A zero-copy send notification, not the send's result.
        const NOTIF = sys::IORING_CQE_F_NOTIF;
        /// The provided buffer is not consumed yet (incremental buffers).
        const BUF_MORE = sys::IORING_CQE_F_BUF_MORE;
        /// A skip marker in a mixed-size CQ: no completion.
        const SKIP = sys::IORING_CQE_F_SKIP;
        /// This is a 32-byte CQE in a mixed-size CQ.
        const F_32 = sys::IORING_CQE_F_32;
    }
}

/// One completion, copied out of the CQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cqe {
    user_data: u64,
    res: i32,
    flags: u32,
    extra: [u64; 2],
}

impl Cqe {
    /// A completion with the given fields (for tests and simulated kernels; feature
    /// `test-util`).
    #[cfg(any(test, loom, feature = "test-util"))]
    pub const fn new(user_data: u64, res: i32, flags: u32) -> Self {
        Cqe {
            user_data,
            res,
            flags,
            extra: [0; 2],
        }
    }

    pub(crate) fn from_raw(raw: &sys::io_uring_cqe, extra: [u64; 2]) -> Self {
        Cqe {
            user_data: raw.user_data,
            res: raw.res,
            flags: raw.flags,
            extra,
        }
    }

    /// The user data of the SQE this completes.
    #[inline]
    pub fn user_data(&self) -> u64 {
        self.user_data
    }

    /// The result: `Ok(n)` for a non-negative result, the errno as an [`io::Error`] otherwise.
    #[inline]
    pub fn result(&self) -> io::Result<u32> {
        if self.res < 0 {
            Err(io::Error::from_raw_os_error(-self.res))
        } else {
            Ok(self.res as u32)
        }
    }

    /// The raw `res` field (a negative errno on failure).
    #[inline]
    pub fn raw_result(&self) -> i32 {
        self.res
    }

    /// The flags, without the buffer id bits.
    #[inline]
    pub fn flags(&self) -> CqeFlags {
        CqeFlags::from_bits_truncate(self.flags & ((1 << sys::IORING_CQE_BUFFER_SHIFT) - 1))
    }

    /// The raw `flags` field, buffer id included.
    #[inline]
    pub fn raw_flags(&self) -> u32 {
        self.flags
    }

    /// The provided buffer's id, when [`CqeFlags::BUFFER`] is set.
    #[inline]
    pub fn buffer_id(&self) -> Option<u16> {
        (self.flags & sys::IORING_CQE_F_BUFFER != 0)
            .then_some((self.flags >> sys::IORING_CQE_BUFFER_SHIFT) as u16)
    }

    /// More completions will follow for the same request (multishot).
    #[inline]
    pub fn more(&self) -> bool {
        self.flags & sys::IORING_CQE_F_MORE != 0
    }

    /// The socket had more data after this receive.
    #[inline]
    pub fn sock_nonempty(&self) -> bool {
        self.flags & sys::IORING_CQE_F_SOCK_NONEMPTY != 0
    }

    /// A zero-copy send's buffer-release notification.
    #[inline]
    pub fn notif(&self) -> bool {
        self.flags & sys::IORING_CQE_F_NOTIF != 0
    }

    /// The 16 extra bytes of a 32-byte CQE (`IORING_SETUP_CQE32`); zeros otherwise.
    #[inline]
    pub fn extra(&self) -> [u64; 2] {
        self.extra
    }
}
