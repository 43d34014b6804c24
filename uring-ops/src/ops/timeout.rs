//! Timers: `TIMEOUT` (relative, absolute, completion count) and `TIMEOUT_REMOVE`.
//!
//! (`LINK_TIMEOUT` belongs to chains.)

use crate::op::{res_to_io, Op, SqeOptions};
use crate::uring::Ticket;
use std::io;
use std::time::Duration;
use uring_core::{sys, Sqe};

/// The clock a [`Timeout`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// `CLOCK_MONOTONIC` (the default): does not count time suspended.
    #[default]
    Monotonic,
    /// `CLOCK_BOOTTIME` (`IORING_TIMEOUT_BOOTTIME`, Linux 5.15): counts time suspended.
    Boottime,
    /// `CLOCK_REALTIME` (`IORING_TIMEOUT_REALTIME`, Linux 5.15): wall-clock time since the
    /// Unix epoch; follows clock changes.
    Realtime,
}

impl Clock {
    /// The clock's current time (`clock_gettime(2)`), as a point for [`Timeout::absolute`].
    pub fn now(self) -> Duration {
        let id = match self {
            Clock::Monotonic => libc::CLOCK_MONOTONIC,
            Clock::Boottime => libc::CLOCK_BOOTTIME,
            Clock::Realtime => libc::CLOCK_REALTIME,
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to fill; these clocks exist on every Linux this
        // crate runs on (io_uring needs 5.1), so the call cannot fail.
        unsafe { libc::clock_gettime(id, &mut ts) };
        Duration::new(
            ts.tv_sec.max(0) as u64,
            ts.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    }

    fn flags(self) -> u32 {
        match self {
            Clock::Monotonic => 0,
            Clock::Boottime => sys::IORING_TIMEOUT_BOOTTIME,
            Clock::Realtime => sys::IORING_TIMEOUT_REALTIME,
        }
    }
}

/// How a [`Timeout`] ended, when it was not removed or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutFired {
    /// The time ran out (the kernel's `-ETIME`).
    Expired,
    /// The requested number of other completions happened first (the kernel's 0); see
    /// [`Timeout::count`].
    CountReached,
}

/// A timer (`IORING_OP_TIMEOUT`, Linux 5.4): completes when the time runs out, or, with
/// [`Timeout::count`], when that many other completions have been posted, whichever comes
/// first.
///
/// The time is relative ([`Timeout::new`]) or a point on the clock ([`Timeout::absolute`],
/// `IORING_TIMEOUT_ABS`), on the monotonic clock or the one set with [`Timeout::clock`].
///
/// Owns its `__kernel_timespec`, inside the op (the ring keeps the op at one address until it
/// completes). Returns which way it fired ([`TimeoutFired`]), or the errno: `ECANCELED` when
/// removed ([`TimeoutRemove`]) or cancelled.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use uring_ops::ops::{Timeout, TimeoutFired};
/// use uring_ops::Uring;
/// let mut ring = Uring::new(8)?;
/// let t = ring.push(Timeout::new(Duration::from_millis(10)))?;
/// assert_eq!(ring.wait(t)??, TimeoutFired::Expired);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Timeout {
    ts: sys::__kernel_timespec,
    count: u32,
    flags: u32,
    clock: Clock,
    opts: SqeOptions,
}

fn timespec(d: Duration) -> sys::__kernel_timespec {
    sys::__kernel_timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

impl Timeout {
    /// Fires `after` from when the kernel starts the op.
    pub fn new(after: Duration) -> Self {
        Timeout {
            ts: timespec(after),
            count: 0,
            flags: 0,
            clock: Clock::Monotonic,
            opts: SqeOptions::new(),
        }
    }

    /// Fires when the clock (monotonic unless [`Timeout::clock`] says otherwise) reaches `at`
    /// (`IORING_TIMEOUT_ABS`), e.g. `Clock::Monotonic.now() + Duration::from_millis(5)`.
    /// A point already past fires at once.
    pub fn absolute(at: Duration) -> Self {
        Timeout {
            flags: sys::IORING_TIMEOUT_ABS,
            ..Self::new(at)
        }
    }

    /// Runs on `clock` (Linux 5.15 for `Boottime` and `Realtime`).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Also completes, with [`TimeoutFired::CountReached`], once `n` other completions have
    /// been posted after it started (0: time only).
    pub fn count(mut self, n: u32) -> Self {
        self.count = n;
        self
    }
}
super::sqe_options!(Timeout);

// SAFETY: the SQE names `self.ts`, inside the op, which the ring keeps at one address (not
// dropped, not moved) until the timeout's completion; the kernel only reads it.
unsafe impl Op for Timeout {
    const OPCODE: u8 = sys::IORING_OP_TIMEOUT as u8;
    const NAME: &'static str = "Timeout";
    type Output = io::Result<TimeoutFired>;

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE)
            .set_fd(-1)
            .set_addr(&self.ts as *const sys::__kernel_timespec as u64)
            .set_len(1)
            .set_off(u64::from(self.count))
            .set_timeout_flags(self.flags | self.clock.flags());
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    fn complete(self, res: i32, _flags: u32) -> io::Result<TimeoutFired> {
        if res == -libc::ETIME {
            return Ok(TimeoutFired::Expired);
        }
        res_to_io(res).map(|_| TimeoutFired::CountReached)
    }
}

/// Removes a pending [`Timeout`] (`IORING_OP_TIMEOUT_REMOVE`, Linux 5.5), found by its user
/// data: the removed timeout completes with `ECANCELED`.
///
/// Owns nothing (the key is a number; a key naming no timeout is harmless). Returns `Ok(())`,
/// or `ENOENT` when no pending timeout has that key, `EALREADY` when it is already firing.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutRemove {
    key: u64,
    opts: SqeOptions,
}

impl TimeoutRemove {
    /// Removes the timeout whose SQE carried `user_data`.
    pub fn new(user_data: u64) -> Self {
        TimeoutRemove {
            key: user_data,
            opts: SqeOptions::new(),
        }
    }

    /// Removes the timeout that `ticket` stands for.
    pub fn ticket(ticket: &Ticket<Timeout>) -> Self {
        Self::new(ticket.user_data())
    }
}
super::sqe_options!(TimeoutRemove);

// SAFETY: the key travels in `addr` as a number the kernel compares, never dereferences.
unsafe impl Op for TimeoutRemove {
    const OPCODE: u8 = sys::IORING_OP_TIMEOUT_REMOVE as u8;
    const NAME: &'static str = "TimeoutRemove";
    type Output = io::Result<()>;

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE).set_fd(-1).set_addr(self.key);
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    fn complete(self, res: i32, _flags: u32) -> io::Result<()> {
        res_to_io(res).map(drop)
    }
}
