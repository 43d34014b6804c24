//! Readiness polling: `POLL_ADD` (one-shot and multishot), `POLL_REMOVE`, and its update form.

use super::define::op;
use crate::multishot::{Multishot, MultishotOp};
use crate::op::res_to_io;
use crate::uring::Ticket;
use std::io;
use uring_core::{sys, Sqe};

bitflags::bitflags! {
    /// Poll events (`POLL*`, `poll(2)`): what to wait for, and what happened.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct PollEvents: u32 {
        /// There is data to read.
        const IN = libc::POLLIN as u32;
        /// There is exceptional (priority) data.
        const PRI = libc::POLLPRI as u32;
        /// Writing will not block.
        const OUT = libc::POLLOUT as u32;
        /// An error condition (always reported, never needs asking for).
        const ERR = libc::POLLERR as u32;
        /// Hang up: the other end is closed (always reported).
        const HUP = libc::POLLHUP as u32;
        /// The descriptor is not open (always reported).
        const NVAL = libc::POLLNVAL as u32;
        /// Normal data to read.
        const RDNORM = libc::POLLRDNORM as u32;
        /// Priority band data to read.
        const RDBAND = libc::POLLRDBAND as u32;
        /// Normal data may be written.
        const WRNORM = libc::POLLWRNORM as u32;
        /// Priority data may be written.
        const WRBAND = libc::POLLWRBAND as u32;
        /// The peer shut down its writing half (stream sockets).
        const RDHUP = libc::POLLRDHUP as u32;
    }
}

op! {
    /// Waits until a file is ready for the asked events (`IORING_OP_POLL_ADD`, Linux 5.1).
    ///
    /// One-shot: completes once, with the events that are ready. With [`PollAdd::multishot`]
    /// (Linux 5.13) it stays armed and completes each time the file becomes ready, until removed
    /// ([`PollRemove`]) or cancelled; see [`Multishot`] for reading those completions.
    ///
    /// Owns a share of the file until completion. Returns the ready events (`PollEvents`), or
    /// the errno (`ECANCELED` when removed or cancelled).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use uring_ops::ops::{PollAdd, PollEvents};
    /// use uring_ops::{Fd, Uring};
    /// let f = Fd::new(std::fs::File::open("/dev/zero")?);
    /// let mut ring = Uring::new(8)?;
    /// let t = ring.push(PollAdd::new(&f, PollEvents::IN))?;
    /// let ready = ring.wait(t)??;
    /// assert!(ready.contains(PollEvents::IN));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Clone)]
    pub struct PollAdd {
        /// Waits for any of `events` on `file`.
        pub fn new { file: file(), events: plain(PollEvents) }
    }
    opcode = sys::IORING_OP_POLL_ADD;
    prepare(op, sqe) {
        sqe.set_target(&op.file).set_poll32_events(op.events.bits());
    }
    complete(_op, res, _flags) -> io::Result<PollEvents> {
        res_to_io(res).map(PollEvents::from_bits_retain)
    }
}

impl PollAdd {
    /// The multishot form (`IORING_POLL_ADD_MULTI`, Linux 5.13): one completion per
    /// readiness, flagged `IORING_CQE_F_MORE`, until removed.
    pub fn multishot(self) -> Multishot<PollAdd> {
        Multishot::new(self)
    }
}

// SAFETY: the multishot flag goes in `len`; the SQE names nothing more than `prepare`'s.
unsafe impl MultishotOp for PollAdd {
    /// The events of one readiness (the kernel reports errors only in the last completion).
    type Item = io::Result<PollEvents>;

    fn prepare_multishot(&mut self, sqe: &mut Sqe) {
        sqe.set_len(sys::IORING_POLL_ADD_MULTI);
    }

    fn item(&mut self, res: i32, _flags: u32) -> io::Result<PollEvents> {
        res_to_io(res).map(PollEvents::from_bits_retain)
    }
}

op! {
    /// Removes an armed poll (`IORING_OP_POLL_REMOVE`, Linux 5.1), found by its user data: the
    /// removed poll completes with `ECANCELED` (a multishot poll: its last completion).
    ///
    /// Owns nothing (the key is a number the kernel compares; a key naming no poll is
    /// harmless). Returns `Ok(())`, or `ENOENT` when no armed poll has that key, `EALREADY`
    /// when it is already completing.
    #[derive(Clone, Copy)]
    pub struct PollRemove {
        /// Removes the poll whose SQE carried `user_data`.
        pub fn new { key: plain(u64) }
    }
    opcode = sys::IORING_OP_POLL_REMOVE;
    prepare(op, sqe) { sqe.set_fd(-1).set_addr(op.key); }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

impl PollRemove {
    /// Removes the poll (one-shot or multishot) that `ticket` stands for.
    pub fn ticket<T>(ticket: &Ticket<T>) -> Self {
        Self::new(ticket.user_data())
    }
}

op! {
    /// Changes the events an armed poll waits for (`IORING_OP_POLL_REMOVE` with
    /// `IORING_POLL_UPDATE_EVENTS`, Linux 5.13), found by its user data; the poll stays armed
    /// (a one-shot poll stays one-shot, a multishot one multishot) and keeps its user data, so
    /// its ticket still stands for it.
    ///
    /// Owns nothing (the key is a number the kernel compares). Returns `Ok(())`, or `ENOENT`
    /// when no armed poll has that key.
    #[derive(Clone, Copy)]
    pub struct PollUpdate {
        fn with { key: plain(u64), events: plain(PollEvents) }
    }
    opcode = sys::IORING_OP_POLL_REMOVE;
    name = "PollUpdate";
    prepare(op, sqe) {
        // Never `IORING_POLL_UPDATE_USER_DATA` (the ring routes the poll's completions by its
        // user data) nor `IORING_POLL_ADD_MULTI` (its entry expects the completions it was
        // pushed for).
        sqe.set_fd(-1)
            .set_addr(op.key)
            .set_len(sys::IORING_POLL_UPDATE_EVENTS)
            .set_poll32_events(op.events.bits());
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

impl PollUpdate {
    /// Makes the poll (one-shot or multishot) that `ticket` stands for wait for `events`.
    pub fn new<T>(ticket: &Ticket<T>, events: PollEvents) -> Self {
        Self::with(ticket.user_data(), events)
    }
}
