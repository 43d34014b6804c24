//! An epoll instance driven from the ring: `EPOLL_CTL`, `EPOLL_WAIT`.

use super::define::op;
use crate::error::{Error, Result};
use crate::fd::IntoTarget;
use crate::op::res_to_io;
use std::io;
use uring_core::sys;

bitflags::bitflags! {
    /// Epoll events (`EPOLL*`, `epoll_ctl(2)`): what to watch for, and what happened.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct EpollEvents: u32 {
        /// Ready to read.
        const IN = libc::EPOLLIN as u32;
        /// Ready to write.
        const OUT = libc::EPOLLOUT as u32;
        /// Urgent data to read.
        const PRI = libc::EPOLLPRI as u32;
        /// An error (always reported).
        const ERR = libc::EPOLLERR as u32;
        /// Hang up (always reported).
        const HUP = libc::EPOLLHUP as u32;
        /// The peer shut down its writing half.
        const RDHUP = libc::EPOLLRDHUP as u32;
        /// Edge-triggered.
        const ET = libc::EPOLLET as u32;
        /// Disarm after one event (re-arm with a modify).
        const ONESHOT = libc::EPOLLONESHOT as u32;
        /// Keep the system awake while the event is pending.
        const WAKEUP = libc::EPOLLWAKEUP as u32;
        /// Wake one of several epoll instances on the same file.
        const EXCLUSIVE = libc::EPOLLEXCLUSIVE as u32;
    }
}

/// One event of an [`EpollWait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpollEvent {
    /// What happened.
    pub events: EpollEvents,
    /// The data registered with the file ([`EpollCtl::add`]).
    pub data: u64,
}

op! {
    /// Adds a file to an epoll instance, changes its events, or removes it
    /// (`IORING_OP_EPOLL_CTL`, Linux 5.6): the `epoll_ctl(2)` of io_uring.
    ///
    /// Owns its `epoll_event` (on the heap) and a share of both the epoll instance and the
    /// file until completion: the kernel reads both as descriptor numbers when the op runs,
    /// so neither may be a registered-file slot. Returns `Ok(())` or the errno (`EEXIST`
    /// adding a file twice, `ENOENT` changing one not added).
    pub struct EpollCtl {
        fn with { epoll: file(), file: file(), event: boxed(libc::epoll_event), op: plain(i32) }
    }
    opcode = sys::IORING_OP_EPOLL_CTL;
    prepare(op, sqe) {
        // The watched file travels in `off`, as a descriptor number (kept open).
        sqe.set_fd(op.epoll.raw())
            .set_struct(&mut op.event)
            .set_len(op.op as u32)
            .set_off(op.file.raw() as u32 as u64);
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
    check(op) {
        op.epoll.require_descriptor("EpollCtl", "the epoll instance")?;
        op.file.require_descriptor("EpollCtl", "the file")
    }
}

impl EpollCtl {
    fn make(
        epoll: impl IntoTarget,
        file: impl IntoTarget,
        op: i32,
        events: EpollEvents,
        data: u64,
    ) -> Self {
        let event = libc::epoll_event {
            events: events.bits(),
            u64: data,
        };
        Self::with(epoll, file, event, op)
    }

    /// Watches `file` for `events`; its events carry `data`.
    pub fn add(
        epoll: impl IntoTarget,
        file: impl IntoTarget,
        events: EpollEvents,
        data: u64,
    ) -> Self {
        Self::make(epoll, file, libc::EPOLL_CTL_ADD, events, data)
    }

    /// Changes the events and data of a watched `file`.
    pub fn modify(
        epoll: impl IntoTarget,
        file: impl IntoTarget,
        events: EpollEvents,
        data: u64,
    ) -> Self {
        Self::make(epoll, file, libc::EPOLL_CTL_MOD, events, data)
    }

    /// Stops watching `file`.
    pub fn delete(epoll: impl IntoTarget, file: impl IntoTarget) -> Self {
        Self::make(epoll, file, libc::EPOLL_CTL_DEL, EpollEvents::empty(), 0)
    }
}

/// The most events one wait takes (`EP_MAX_EVENTS`: `INT_MAX` over the size of one).
pub const EPOLL_MAX_EVENTS: u32 =
    (i32::MAX as usize / std::mem::size_of::<libc::epoll_event>()) as u32;

op! {
    /// Waits for events of an epoll instance (`IORING_OP_EPOLL_WAIT`, Linux 6.15): the
    /// `epoll_wait(2)` of io_uring, without a timeout (add a link timeout, or cancel it).
    ///
    /// Owns the events array (on the heap) and a share of the epoll instance until
    /// completion. Returns the events that were ready (at least one).
    pub struct EpollWait {
        fn with { epoll: file(), events: array(libc::epoll_event) }
    }
    opcode = sys::IORING_OP_EPOLL_WAIT;
    prepare(op, sqe) { sqe.set_target(&op.epoll).set_array(&mut op.events); }
    complete(op, res, _flags) -> io::Result<Vec<EpollEvent>> {
        let n = res_to_io(res)? as usize;
        Ok(op.events[..n.min(op.events.len())]
            .iter()
            .map(|e| EpollEvent { events: EpollEvents::from_bits_retain(e.events), data: e.u64 })
            .collect())
    }
}

impl EpollWait {
    /// Waits for at most `max` events of `epoll`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] unless `max` is in `1..=EPOLL_MAX_EVENTS` (checked before the
    /// array is allocated).
    pub fn new(epoll: impl IntoTarget, max: u32) -> Result<Self> {
        if !(1..=EPOLL_MAX_EVENTS).contains(&max) {
            return Err(Error::out_of_range(
                "EpollWait",
                "the most events",
                u64::from(max),
                1,
                u64::from(EPOLL_MAX_EVENTS),
            ));
        }
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; max as usize];
        Ok(Self::with(epoll, events))
    }
}
