//! The clock of a ring's waits (`IORING_REGISTER_CLOCK`), and waits with an absolute deadline
//! on it (`IORING_ENTER_ABS_TIMER`).

use super::Registrar;
use crate::backend::{Backend, Kernel};
use crate::cqueue::CompletionQueue;
use crate::error::Result;
use std::time::Duration;
use uring_sys as sys;

/// A clock the kernel can time a ring's waits on ([`Registrar::register_clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clock {
    /// `CLOCK_MONOTONIC`, every ring's clock until another is registered: stops while the
    /// machine is suspended.
    Monotonic,
    /// `CLOCK_BOOTTIME`: as `CLOCK_MONOTONIC`, but counts the time the machine is suspended.
    Boottime,
}

impl Clock {
    fn id(self) -> libc::clockid_t {
        match self {
            Clock::Monotonic => libc::CLOCK_MONOTONIC,
            Clock::Boottime => libc::CLOCK_BOOTTIME,
        }
    }

    /// What the clock reads now (`clock_gettime`), as time since its epoch: the form
    /// [`CompletionQueue::wait_until`] takes its deadline in.
    pub fn now(self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a live, writable `timespec`; both clock ids exist on every Linux the
        // crate supports, so the call cannot fail (and `ts` stays zero if it did).
        unsafe { libc::clock_gettime(self.id(), &mut ts) };
        Duration::new(
            ts.tv_sec.max(0) as u64,
            ts.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    }
}

impl Registrar<'_> {
    /// `IORING_REGISTER_CLOCK` (Linux 6.12): the clock that this ring's timed waits run on,
    /// [`Clock::Monotonic`] until this is called. A relative timeout
    /// ([`CompletionQueue::wait_timeout`]) then measures time on it (which only matters across
    /// a suspend), and an absolute one ([`CompletionQueue::wait_until`]) is a reading of it.
    /// Timeout ops keep their own clock (their SQE flags).
    ///
    /// # Errors
    ///
    /// From the kernel: `EINVAL` before Linux 6.12.
    pub fn register_clock(&self, clock: Clock) -> Result<()> {
        let mut reg = sys::io_uring_clock_register {
            clockid: clock.id() as u32,
            __resv: [0; 3],
        };
        // SAFETY: `reg` is a live `io_uring_clock_register` (reserved words zeroed, as the
        // kernel requires); the kernel only reads it (`nr_args` must be 0 for this op).
        unsafe {
            self.raw(
                "IORING_REGISTER_CLOCK",
                sys::IORING_REGISTER_CLOCK,
                (&mut reg as *mut sys::io_uring_clock_register).cast(),
                0,
            )
        }?;
        Ok(())
    }
}

impl CompletionQueue<Kernel> {
    /// Waits until `want` completions are ready or the ring's clock reads `deadline`
    /// (`IORING_ENTER_ABS_TIMER`, Linux 6.12): an absolute deadline, as a reading of the clock
    /// registered with [`Registrar::register_clock`] ([`Clock::Monotonic`] by default; see
    /// [`Clock::now`]). A wait interrupted by a signal is resumed towards the same deadline;
    /// one too far for the kernel's timespec (past `i64::MAX` seconds) has none.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) at the deadline (at once for one already
    /// past); [`Error::Os`](crate::Error::Os) for `io_uring_enter` with `EINVAL` before
    /// Linux 6.12; otherwise as for [`CompletionQueue::wait`].
    pub fn wait_until(&mut self, want: u32, deadline: Duration) -> Result<u32> {
        if i64::try_from(deadline.as_secs()).is_err() {
            // Past what a `__kernel_timespec` holds: no deadline at all.
            return self.wait(want);
        }
        self.wait_entering(want, |kernel, min| {
            let flags = sys::IORING_ENTER_GETEVENTS | sys::IORING_ENTER_ABS_TIMER;
            kernel.enter(0, min, flags, Some(deadline))
        })
    }
}
