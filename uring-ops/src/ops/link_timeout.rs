//! `IORING_OP_LINK_TIMEOUT`.

use super::define::op;
use super::Clock;
use std::io;
use std::time::Duration;
use uring_core::sys;

op! {
    /// A deadline for the link before it in a [`crate::Chain`] (`IORING_OP_LINK_TIMEOUT`,
    /// Linux 5.5).
    ///
    /// If the guarded link has not completed when the timer expires, the kernel cancels it (its
    /// result is then `ECANCELED`, or `EINTR` if it was blocked in an io-wq worker), which fails
    /// it like any error: the links after it are cancelled unless it was hard-linked. If the
    /// guarded link completes first, the timer is disarmed. Either way the timeout then leaves
    /// the chain; its own result never cancels anything.
    ///
    /// The kernel starts the timer when the guarded link's first attempt returns. When the link
    /// before it finished in an io-wq worker (as reads of tmpfs files do: Linux 6.12 and later
    /// hand them all to a worker), the kernel may start the guarded link in that worker,
    /// blocking: a read of an empty pipe or socket then waits inside that first attempt, the
    /// timer never starts, and the chain waits until the read completes or is cancelled (seen
    /// with a tmpfs read before a pipe read on Linux 6.1, 6.12, 6.18 and 7.3).
    /// [`crate::SqeOptions::asynchronous`] on the guarded link avoids it: a worker waits for a
    /// pollable file by polling, after the timer has started.
    ///
    /// Usable only inside a chain, right after the link it guards ([`crate::Chain::link_timeout`]
    /// or [`crate::Chain::then`]): [`crate::Uring::push`] refuses it alone
    /// ([`crate::Error::LinkTimeoutAlone`]), as the first link, or right after another link
    /// timeout ([`crate::Error::MisplacedLinkTimeout`]).
    ///
    /// Owns its `__kernel_timespec` (the kernel reads it when the SQE is submitted). Durations
    /// beyond `i64::MAX` seconds are clamped. Returns [`LinkTimeoutOutcome::Fired`] (`-ETIME`)
    /// or [`LinkTimeoutOutcome::Disarmed`] (`-ECANCELED`); any other result (for example
    /// `EALREADY`, when the timer fired but the guarded link could no longer be cancelled) is an
    /// error.
    ///
    /// If the timer fires after the thread that submitted the chain has exited, the kernel
    /// completes the timeout (`-ECANCELED`, so `Disarmed`; `-ENOENT` on Linux 6.1) without
    /// cancelling the guarded link; the ring then cancels that link itself, so that the chain
    /// still completes (see "Threads" on [`crate::Context`]).
    #[derive(Clone, Copy)]
    pub struct LinkTimeout {
        /// A timeout of `after`, from when the guarded link starts.
        pub fn new { ts: timespec() }
        set {
            /// Runs on `clock` (Linux 5.15 for `Boottime` and `Realtime`).
            clock: Clock = Clock::Monotonic,
        }
        state { flags: u32 = 0 }
    }
    opcode = sys::IORING_OP_LINK_TIMEOUT;
    prepare(op, sqe) {
        sqe.set_fd(-1)
            .set_timespec(&op.ts)
            .set_timeout_flags(op.timeout_flags());
    }
    complete(_op, res, _flags) -> io::Result<LinkTimeoutOutcome> {
        match res {
            r if r == -libc::ETIME => Ok(LinkTimeoutOutcome::Fired),
            r if r == -libc::ECANCELED => Ok(LinkTimeoutOutcome::Disarmed),
            r if r < 0 => Err(io::Error::from_raw_os_error(-r)),
            // The kernel never reports success for a link timeout; read it as disarmed.
            _ => Ok(LinkTimeoutOutcome::Disarmed),
        }
    }
}

/// What a [`LinkTimeout`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkTimeoutOutcome {
    /// The timer expired and the guarded link was cancelled (the kernel's `-ETIME`).
    Fired,
    /// The guarded link completed first and the timer was disarmed (the kernel's
    /// `-ECANCELED`). In a chain, a timeout whose guarded link never started reports this
    /// inside [`crate::Linked::Cancelled`], and so does one whose guarded link failed when
    /// every link of the chain failed (see [`crate::Linked`]).
    Disarmed,
}

impl LinkTimeout {
    /// A deadline: fires when the clock (monotonic unless [`LinkTimeout::clock`] says
    /// otherwise) reaches `at` (`IORING_TIMEOUT_ABS`), e.g.
    /// `Clock::Monotonic.now() + Duration::from_millis(5)`.
    pub fn absolute(at: Duration) -> Self {
        LinkTimeout {
            flags: sys::IORING_TIMEOUT_ABS,
            ..Self::new(at)
        }
    }

    fn timeout_flags(&self) -> u32 {
        self.flags | self.clock.flags()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Op;
    use uring_core::Sqe;

    #[test]
    fn timespec_and_flags() {
        let t = LinkTimeout::new(Duration::new(3, 500)).clock(Clock::Boottime);
        assert_eq!(t.ts.parts(), (3, 500));
        assert_eq!(t.timeout_flags(), sys::IORING_TIMEOUT_BOOTTIME);
        let t = LinkTimeout::absolute(Duration::from_secs(9)).clock(Clock::Realtime);
        assert_eq!(
            t.timeout_flags(),
            sys::IORING_TIMEOUT_REALTIME | sys::IORING_TIMEOUT_ABS
        );
        let t = LinkTimeout::new(Duration::MAX);
        assert_eq!(t.ts.parts().0, i64::MAX);
        let mut sqe = Sqe::zeroed();
        let mut t = LinkTimeout::absolute(Duration::from_millis(5));
        crate::op::prepare_op(&mut t, &mut sqe);
        assert_eq!(sqe.opcode(), LinkTimeout::OPCODE);
        assert_eq!(sqe.addr(), std::ptr::addr_of!(t.ts) as u64);
        assert_eq!((sqe.len(), sqe.fd()), (1, -1));
        assert_eq!(sqe.op_flags(), sys::IORING_TIMEOUT_ABS);
    }

    #[test]
    fn outcomes() {
        let t = LinkTimeout::new(Duration::ZERO);
        assert_eq!(
            t.complete(-libc::ETIME, 0).unwrap(),
            LinkTimeoutOutcome::Fired
        );
        assert_eq!(
            t.complete(-libc::ECANCELED, 0).unwrap(),
            LinkTimeoutOutcome::Disarmed
        );
        let e = t.complete(-libc::EALREADY, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EALREADY));
    }
}
