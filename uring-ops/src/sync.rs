//! The synchronisation primitives of the async layer's hand-offs ([`crate::awaitable`]):
//! `std`'s, or loom's under `cfg(uring_ops_loom)`, so that `tests/loom.rs` explores every
//! interleaving of the code that runs, not of a copy of it.

#[cfg(uring_ops_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(uring_ops_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(uring_ops_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(uring_ops_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: the hand-offs' critical sections only move wakers and flags,
/// which are consistent at every step, and a panicking waker must not stop the ring.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
