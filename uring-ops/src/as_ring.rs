//! [`AsRing`]: what registered resources attach to, a [`Uring`] or a [`Context`].

use crate::context::Context;
use crate::error::Result;
use crate::op::sealed;
use crate::uring::Uring;
use std::os::fd::{AsFd, OwnedFd};
use uring_core::Kernel;

/// A ring that resources are registered with: a [`Uring`] or a [`Context`]
/// ([`crate::FixedBufs::register`], [`crate::BufRing::register`]). Sealed.
pub trait AsRing: sealed::Sealed {
    /// The kernel's ring: its fd and its registration calls.
    #[doc(hidden)]
    fn kernel(&self) -> &Kernel;

    /// The library's id of the ring (what its tickets and records carry).
    #[doc(hidden)]
    fn ring_id(&self) -> u64;
}

impl sealed::Sealed for Uring {}
impl AsRing for Uring {
    fn kernel(&self) -> &Kernel {
        self.ring().backend()
    }

    fn ring_id(&self) -> u64 {
        self.id()
    }
}

impl sealed::Sealed for Context {}
impl AsRing for Context {
    fn kernel(&self) -> &Kernel {
        Context::kernel(self)
    }

    fn ring_id(&self) -> u64 {
        self.id
    }
}

/// A duplicate of `ring`'s fd, which keeps the kernel's ring (and what is registered with it)
/// alive after the ring is dropped, so that a pool can unregister whatever the drop order.
pub(crate) fn dup_ring_fd(ring: &(impl AsRing + ?Sized)) -> Result<OwnedFd> {
    ring.kernel().as_fd().try_clone_to_owned().map_err(|e| {
        uring_core::Error::Os {
            call: "dup of the ring fd",
            source: e,
        }
        .into()
    })
}
