//! NAPI busy polling (`IORING_REGISTER_NAPI`, `IORING_UNREGISTER_NAPI`).

use super::Registrar;
use crate::error::Result;
use std::time::Duration;
use uring_sys as sys;

/// How the ring learns which NAPI instances (network device queues) to busy-poll
/// (`enum io_uring_napi_tracking_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NapiTracking {
    /// From the sockets of the ring's network ops (`IO_URING_NAPI_TRACKING_DYNAMIC`; the only
    /// strategy before Linux 6.13).
    Dynamic,
    /// Only the NAPI ids added with [`Registrar::napi_add_id`]
    /// (`IO_URING_NAPI_TRACKING_STATIC`, Linux 6.13).
    Static,
    /// No busy polling (`IO_URING_NAPI_TRACKING_INACTIVE`): what a ring reports before
    /// registration and after [`Registrar::unregister_napi`] (Linux 6.13; earlier kernels
    /// report [`NapiTracking::Dynamic`]). Registering it is refused (`EINVAL`).
    Inactive,
    /// A strategy this crate does not know, as the kernel reported it.
    Other(u32),
}

impl NapiTracking {
    fn to_raw(self) -> u32 {
        match self {
            NapiTracking::Dynamic => sys::IO_URING_NAPI_TRACKING_DYNAMIC,
            NapiTracking::Static => sys::IO_URING_NAPI_TRACKING_STATIC,
            NapiTracking::Inactive => sys::IO_URING_NAPI_TRACKING_INACTIVE,
            NapiTracking::Other(v) => v,
        }
    }

    fn from_raw(v: u32) -> Self {
        match v {
            sys::IO_URING_NAPI_TRACKING_DYNAMIC => NapiTracking::Dynamic,
            sys::IO_URING_NAPI_TRACKING_STATIC => NapiTracking::Static,
            sys::IO_URING_NAPI_TRACKING_INACTIVE => NapiTracking::Inactive,
            other => NapiTracking::Other(other),
        }
    }
}

/// A ring's NAPI busy-poll settings (`struct io_uring_napi`), given to
/// [`Registrar::register_napi`] and reported back by it and by
/// [`Registrar::unregister_napi`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Napi {
    /// How long a wait busy-polls the network queues before sleeping, in microseconds'
    /// resolution (longer than `u32::MAX` microseconds is taken as that; since Linux 6.14 the
    /// kernel caps it at 10 ms). Zero: no busy polling.
    pub busy_poll_timeout: Duration,
    /// Set `SO_PREFER_BUSY_POLL` on the polled queues.
    pub prefer_busy_poll: bool,
    /// Which queues are polled.
    pub tracking: NapiTracking,
}

impl Napi {
    /// Dynamic tracking with this busy-poll time and no preference.
    pub fn new(busy_poll_timeout: Duration) -> Self {
        Napi {
            busy_poll_timeout,
            prefer_busy_poll: false,
            tracking: NapiTracking::Dynamic,
        }
    }

    fn to_raw(self, opcode: u32, op_param: u32) -> sys::io_uring_napi {
        let us = self.busy_poll_timeout.as_micros().min(u128::from(u32::MAX)) as u32;
        sys::io_uring_napi {
            busy_poll_to: us,
            prefer_busy_poll: u8::from(self.prefer_busy_poll),
            opcode: opcode as u8,
            op_param,
            ..Default::default()
        }
    }

    fn from_raw(n: &sys::io_uring_napi) -> Self {
        Napi {
            busy_poll_timeout: Duration::from_micros(u64::from(n.busy_poll_to)),
            prefer_busy_poll: n.prefer_busy_poll != 0,
            tracking: NapiTracking::from_raw(n.op_param),
        }
    }
}

impl Registrar<'_> {
    /// `IORING_REGISTER_NAPI` (Linux 6.9; [`Napi::tracking`] 6.13): turns on busy polling of
    /// the network queues while this ring waits, with these settings, replacing earlier
    /// ones (and, since 6.13, forgetting the NAPI ids tracked so far). Returns the settings in
    /// force before (their `tracking` reads [`NapiTracking::Dynamic`] before 6.13, which did
    /// not report it).
    ///
    /// # Errors
    ///
    /// From the kernel: `EINVAL` on an IOPOLL ring, for a tracking strategy it does not know
    /// (or any but dynamic before 6.13), and before Linux 6.9.
    pub fn register_napi(&self, settings: Napi) -> Result<Napi> {
        let raw = settings.to_raw(sys::IO_URING_NAPI_REGISTER_OP, settings.tracking.to_raw());
        self.napi_call(raw).map(|old| Napi::from_raw(&old))
    }

    /// Adds the NAPI instance `id` (as `SO_INCOMING_NAPI_ID` reports a socket's) to those this
    /// ring busy-polls (`IORING_REGISTER_NAPI` with `IO_URING_NAPI_STATIC_ADD_ID`, Linux 6.13).
    /// Only with [`NapiTracking::Static`].
    ///
    /// # Errors
    ///
    /// From the kernel: `EINVAL` without static tracking (and before 6.13) or for a number
    /// below the first NAPI id (ids start past the kernel's CPU count), `EEXIST` for an id
    /// already added. The id is not checked against the devices: one no device has is
    /// polled for nothing.
    pub fn napi_add_id(&self, id: u32) -> Result<()> {
        self.napi_id(sys::IO_URING_NAPI_STATIC_ADD_ID, id)
    }

    /// Stops busy-polling the NAPI instance `id` (`IO_URING_NAPI_STATIC_DEL_ID`, Linux 6.13).
    ///
    /// # Errors
    ///
    /// From the kernel: `EINVAL` without static tracking, `ENOENT` for an id not added.
    pub fn napi_del_id(&self, id: u32) -> Result<()> {
        self.napi_id(sys::IO_URING_NAPI_STATIC_DEL_ID, id)
    }

    fn napi_id(&self, opcode: u32, id: u32) -> Result<()> {
        let settings = Napi::new(Duration::ZERO);
        self.napi_call(settings.to_raw(opcode, id)).map(drop)
    }

    fn napi_call(&self, mut raw: sys::io_uring_napi) -> Result<sys::io_uring_napi> {
        // SAFETY: `raw` is a live, exclusively borrowed `io_uring_napi` (pads zeroed, as the
        // kernel requires), one entry as `nr_args` says: the kernel reads the new settings
        // from it and writes the old ones back.
        unsafe {
            self.raw(
                "IORING_REGISTER_NAPI",
                sys::IORING_REGISTER_NAPI,
                (&mut raw as *mut sys::io_uring_napi).cast(),
                1,
            )
        }?;
        Ok(raw)
    }

    /// `IORING_UNREGISTER_NAPI` (Linux 6.9): turns busy polling off. Returns the busy-poll
    /// time and preference in force before (the kernel does not report the tracking: it reads
    /// [`NapiTracking::Dynamic`]).
    ///
    /// # Errors
    ///
    /// From the kernel: `EINVAL` before Linux 6.9.
    pub fn unregister_napi(&self) -> Result<Napi> {
        let mut raw = sys::io_uring_napi::default();
        // SAFETY: `raw` is a live, writable `io_uring_napi`, one entry as `nr_args` says; the
        // kernel writes the old settings into it.
        unsafe {
            self.raw(
                "IORING_UNREGISTER_NAPI",
                sys::IORING_UNREGISTER_NAPI,
                (&mut raw as *mut sys::io_uring_napi).cast(),
                1,
            )
        }?;
        Ok(Napi::from_raw(&raw))
    }
}
