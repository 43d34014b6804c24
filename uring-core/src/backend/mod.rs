//! Where ring memory comes from and how the "kernel" is entered: the real kernel ([`Kernel`]),
//! or the in-process simulation (`sim::Sim`, feature `test-util`).

use std::fmt;
use std::io;
use std::time::Duration;

mod sealed {
    pub trait Sealed {
        /// Whether a forked child inherits this backend's ring shared with its parent (the
        /// kernel's rings: the fd and the ring memory, a shared mapping), rather than a copy
        /// of its own (the simulated kernel, plain process memory). When `true`, the queues
        /// refuse to be used in a process other than the one that set the ring up; see
        /// [`crate::Error::ForkedChild`].
        const SHARED_AFTER_FORK: bool = false;

        /// The process's [`crate::fork_generation`] when the ring was set up (meaningful only
        /// when [`Sealed::SHARED_AFTER_FORK`]).
        fn setup_generation(&self) -> u64 {
            0
        }

        /// Whether a ring set up disabled (`IORING_SETUP_R_DISABLED`) has been enabled since
        /// (`IORING_REGISTER_ENABLE_RINGS`). Only the kernel's rings can be; the simulated
        /// kernel has no disabled state.
        fn enabled_since_setup(&self) -> bool {
            false
        }
    }
}
pub(crate) use sealed::Sealed;

/// The owner of a ring's memory and the way into the kernel that services it.
///
/// Implemented by [`Kernel`] (the running Linux kernel) and `sim::Sim` (feature `test-util`);
/// sealed.
pub trait Backend: Sealed + Send + Sync + fmt::Debug + 'static {
    /// `io_uring_enter`: consume up to `to_submit` published SQEs, and with
    /// `IORING_ENTER_GETEVENTS` wait until `min_complete` CQEs are ready or `timeout` passes
    /// (`ETIME`). Returns the number of SQEs consumed.
    ///
    /// Safe: only SQEs already published through an `unsafe` commit can be consumed. The
    /// kernel backend refuses (`EPERM`) in a forked child of the process that set the ring up
    /// (see [`crate::Error::ForkedChild`]).
    fn enter(
        &self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        timeout: Option<Duration>,
    ) -> io::Result<u32>;
}

#[cfg(not(loom))]
mod kernel;
#[cfg(not(loom))]
pub(crate) mod mmap;
#[cfg(not(loom))]
mod thread_id;

#[cfg(not(loom))]
pub use kernel::Kernel;
#[cfg(not(loom))]
pub(crate) use thread_id::forget_thread_id_in_child;

/// The backend of a [`crate::Ring`] when none is named: the kernel (the simulation under loom,
/// where no system call may be made).
#[cfg(not(loom))]
pub type DefaultBackend = Kernel;
/// The backend of a [`crate::Ring`] when none is named.
#[cfg(loom)]
pub type DefaultBackend = crate::sim::Sim;
