//! Timers: `TIMEOUT` (relative, absolute, completion count), `TIMEOUT_REMOVE`, and its update
//! form.
//!
//! (`LINK_TIMEOUT` belongs to chains.)

use super::define::op;
use crate::op::res_to_io;
use crate::uring::Ticket;
use std::io;
use std::time::Duration;
use uring_core::sys;

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

    pub(crate) fn flags(self) -> u32 {
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

op! {
    /// A timer (`IORING_OP_TIMEOUT`, Linux 5.4): completes when the time runs out, or, with
    /// [`Timeout::count`], when that many other completions have been posted, whichever comes
    /// first.
    ///
    /// The time is relative ([`Timeout::new`]) or a point on the clock ([`Timeout::absolute`],
    /// `IORING_TIMEOUT_ABS`), on the monotonic clock or the one set with [`Timeout::clock`].
    /// Durations beyond `i64::MAX` seconds are clamped.
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
    #[derive(Clone, Copy)]
    pub struct Timeout {
        /// Fires `after` from when the kernel starts the op.
        pub fn new { ts: timespec() }
        set {
            /// Runs on `clock` (Linux 5.15 for `Boottime` and `Realtime`).
            clock: Clock = Clock::Monotonic,
            /// Also completes, with [`TimeoutFired::CountReached`], once `count` other
            /// completions have been posted after it started (0: time only).
            count: u32 = 0,
        }
        state { flags: u32 = 0 }
    }
    opcode = sys::IORING_OP_TIMEOUT;
    prepare(op, sqe) {
        sqe.set_fd(-1)
            .set_timespec(&op.ts)
            .set_off(u64::from(op.count))
            .set_timeout_flags(op.flags | op.clock.flags());
    }
    complete(_op, res, _flags) -> io::Result<TimeoutFired> {
        if res == -libc::ETIME {
            return Ok(TimeoutFired::Expired);
        }
        res_to_io(res).map(|_| TimeoutFired::CountReached)
    }
}

impl Timeout {
    /// Fires when the clock (monotonic unless [`Timeout::clock`] says otherwise) reaches `at`
    /// (`IORING_TIMEOUT_ABS`), e.g. `Clock::Monotonic.now() + Duration::from_millis(5)`.
    /// A point already past fires at once.
    pub fn absolute(at: Duration) -> Self {
        Timeout {
            flags: sys::IORING_TIMEOUT_ABS,
            ..Self::new(at)
        }
    }
}

op! {
    /// Removes a pending [`Timeout`] (`IORING_OP_TIMEOUT_REMOVE`, Linux 5.5), found by its user
    /// data: the removed timeout completes with `ECANCELED`.
    ///
    /// Owns nothing (the key is a number the kernel compares; a key naming no timeout is
    /// harmless). Returns `Ok(())`, or `ENOENT` when no pending timeout has that key,
    /// `EALREADY` when it is already firing.
    #[derive(Clone, Copy)]
    pub struct TimeoutRemove {
        /// Removes the timeout whose SQE carried `user_data`.
        pub fn new { key: plain(u64) }
    }
    opcode = sys::IORING_OP_TIMEOUT_REMOVE;
    prepare(op, sqe) { sqe.set_fd(-1).set_addr(op.key); }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

impl TimeoutRemove {
    /// Removes the timeout that `ticket` stands for.
    pub fn ticket(ticket: &Ticket<Timeout>) -> Self {
        Self::new(ticket.user_data())
    }
}

op! {
    /// Changes the time of a pending [`Timeout`] (`IORING_OP_TIMEOUT_REMOVE` with
    /// `IORING_TIMEOUT_UPDATE`, Linux 5.11), or of a link timeout inside a chain
    /// ([`TimeoutUpdate::link`], `IORING_LINK_TIMEOUT_UPDATE`, Linux 5.15), found by user data.
    /// The timer restarts from the update with the new time.
    ///
    /// Owns its `__kernel_timespec`, inside the op. Returns `Ok(())`, or `ENOENT` when no
    /// pending timeout has that key.
    #[derive(Clone, Copy)]
    pub struct TimeoutUpdate {
        fn with { key: plain(u64), ts: timespec(), flags: plain(u32) }
        set {
            /// Runs on `clock` from now on (Linux 5.15 for `Boottime` and `Realtime`).
            clock: Clock = Clock::Monotonic,
        }
    }
    opcode = sys::IORING_OP_TIMEOUT_REMOVE;
    name = "TimeoutUpdate";
    prepare(op, sqe) {
        sqe.set_fd(-1)
            .set_addr(op.key)
            .set_timespec2(&op.ts)
            .set_timeout_flags(op.flags | op.clock.flags());
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

impl TimeoutUpdate {
    /// Makes the timeout of `ticket` fire `after` from now.
    pub fn new(ticket: &Ticket<Timeout>, after: Duration) -> Self {
        Self::with(ticket.user_data(), after, sys::IORING_TIMEOUT_UPDATE)
    }

    /// Makes the timeout of `ticket` fire when its clock reaches `at` (`IORING_TIMEOUT_ABS`).
    pub fn absolute(ticket: &Ticket<Timeout>, at: Duration) -> Self {
        Self::with(
            ticket.user_data(),
            at,
            sys::IORING_TIMEOUT_UPDATE | sys::IORING_TIMEOUT_ABS,
        )
    }

    /// Makes the link timeout that is link `link` (its index in the chain, from 0) of the
    /// chain `ticket` stands for fire `after` from now. Naming a link that is no link
    /// timeout finds nothing (`ENOENT`).
    pub fn link<T>(ticket: &Ticket<T>, link: u8, after: Duration) -> Self {
        Self::with(
            crate::push::user_data(ticket.user_data(), u32::from(link)),
            after,
            sys::IORING_TIMEOUT_UPDATE | sys::IORING_LINK_TIMEOUT_UPDATE,
        )
    }
}
