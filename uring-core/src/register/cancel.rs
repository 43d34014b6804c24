//! Synchronous cancellation (`IORING_REGISTER_SYNC_CANCEL`).

use super::Registrar;
use crate::error::Result;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;
use uring_sys as sys;

/// What a synchronous cancel ([`Registrar::cancel_sync`]) matches
/// (`struct io_uring_sync_cancel_reg`).
///
/// Without [`Cancel::all`] the first matching request is cancelled; with it, every one.
#[derive(Debug, Clone, Copy)]
pub struct Cancel<'fd> {
    addr: u64,
    fd: i32,
    flags: u32,
    opcode: u8,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl Cancel<'static> {
    /// Requests whose user data is `user_data`.
    pub fn user_data(user_data: u64) -> Self {
        Cancel::new(user_data, -1, 0, 0)
    }

    /// Requests on the registered file at `index` (`IORING_ASYNC_CANCEL_FD_FIXED`, Linux 6.0).
    pub fn fixed_fd(index: u32) -> Self {
        Cancel::new(
            0,
            index as i32,
            sys::IORING_ASYNC_CANCEL_FD | sys::IORING_ASYNC_CANCEL_FD_FIXED,
            0,
        )
    }

    /// Requests with opcode `op` (`IORING_ASYNC_CANCEL_OP`, Linux 6.6).
    pub fn opcode(op: u8) -> Self {
        Cancel::new(0, -1, sys::IORING_ASYNC_CANCEL_OP, op)
    }

    /// Every request in flight on the ring (`IORING_ASYNC_CANCEL_ANY`, Linux 5.19).
    pub fn any() -> Self {
        Cancel::new(0, -1, sys::IORING_ASYNC_CANCEL_ANY, 0)
    }
}

impl<'fd> Cancel<'fd> {
    fn new(addr: u64, fd: i32, flags: u32, opcode: u8) -> Self {
        Cancel {
            addr,
            fd,
            flags,
            opcode,
            _fd: PhantomData,
        }
    }

    /// Requests on file `fd` (`IORING_ASYNC_CANCEL_FD`, Linux 5.19).
    pub fn fd(fd: BorrowedFd<'fd>) -> Self {
        Cancel::new(0, fd.as_raw_fd(), sys::IORING_ASYNC_CANCEL_FD, 0)
    }

    /// Cancel every matching request, not only the first (`IORING_ASYNC_CANCEL_ALL`,
    /// Linux 5.19).
    pub fn all(mut self) -> Self {
        self.flags |= sys::IORING_ASYNC_CANCEL_ALL;
        self
    }

    /// Whether the kernel reports a count (with `ALL` or `ANY`) rather than 0 for success.
    fn counts(&self) -> bool {
        self.flags & (sys::IORING_ASYNC_CANCEL_ALL | sys::IORING_ASYNC_CANCEL_ANY) != 0
    }
}

impl Registrar<'_> {
    /// `IORING_REGISTER_SYNC_CANCEL` (Linux 6.0): cancels the requests `what` matches and
    /// returns once they are cancelled, waiting up to `timeout` (`None`: as long as it takes)
    /// for any that were already running. Each cancelled request still posts its CQE
    /// (usually `-ECANCELED`).
    ///
    /// Returns how many requests were cancelled: the kernel's count with [`Cancel::all`] or
    /// [`Cancel::any`] (0 if none matched), else 1.
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) with `ENOENT` when nothing matched (without `all`/`any`), `ETIME` when the
    /// timeout passed first, `EINTR` on a signal, `EBADF` for a bad fd, `EINVAL` for flags
    /// this kernel does not know.
    pub fn cancel_sync(&self, what: Cancel<'_>, timeout: Option<Duration>) -> Result<u32> {
        let timeout = match timeout {
            // -1/-1: no timeout.
            None => sys::__kernel_timespec {
                tv_sec: -1,
                tv_nsec: -1,
            },
            Some(t) => sys::__kernel_timespec {
                tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: i64::from(t.subsec_nanos()),
            },
        };
        let mut reg = sys::io_uring_sync_cancel_reg {
            addr: what.addr,
            fd: what.fd,
            flags: what.flags,
            timeout,
            opcode: what.opcode,
            ..Default::default()
        };
        // SAFETY: `reg` is a live `io_uring_sync_cancel_reg` (pads zeroed, as the kernel
        // requires), one entry as `nr_args` says; the kernel only reads it.
        let n = unsafe {
            self.raw(
                "IORING_REGISTER_SYNC_CANCEL",
                sys::IORING_REGISTER_SYNC_CANCEL,
                (&mut reg as *mut sys::io_uring_sync_cancel_reg).cast(),
                1,
            )
        }?;
        // Without ALL/ANY the kernel reports the one cancellation as 0.
        Ok(if what.counts() { n } else { 1 })
    }
}
