//! The atomics the ring logic uses: `std`'s, or loom's under `cfg(loom)` so that the loom tests
//! can explore every interleaving of our side against the simulated kernel.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, Ordering};
