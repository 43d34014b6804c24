//! The synchronisation primitives the ring logic and the simulated kernel use: `std`'s, or
//! loom's under `cfg(loom)` so that the loom tests can explore every interleaving of our side
//! against the simulated kernel.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(all(not(loom), any(test, feature = "test-util")))]
pub(crate) use std::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;
