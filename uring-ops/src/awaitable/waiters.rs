//! The two waker hand-offs of the async layer, and why neither loses a wake-up.
//!
//! **An op's waker** ([`Waiters`]): one per op in flight, in a table indexed by the op's slot
//! index (the middle bits of its key), so that routing a completion record to its waker is one
//! bounds-checked load, whatever the number of ops. Each entry keeps the key it was stored for,
//! so a record of an op that left the slot (a dropped future's) never wakes the task of the
//! op that took the slot next. The two sides of the race:
//!
//! - the future: *is my op done? if not, store my waker*;
//! - the driver: *the ring marked the op done (and queued its record); take its waker*.
//!
//! On a [`crate::LocalRing`] both run on one thread, one after the other. On a
//! [`crate::SharedRing`] the future does its check and its store in one critical section of
//! the table's lock, and the driver takes the waker under that lock only after the ring has
//! marked the op done. So either the future's check comes after the op was marked done (it
//! sees it), or its store comes before the driver's take (which finds the waker): no wake-up
//! is lost. A dropped future removes its waker under the same lock.
//!
//! **The driver's notification** ([`Notify`], and [`LocalNotify`] for one thread): a push
//! queues work (SQEs, cancels, records reaped outside the driver) and must make sure the
//! driver looks at it, without a system call or a lock per op. Pushes set a flag with one
//! atomic swap, and only the push that finds it clear wakes the driver; the driver, each time
//! it is polled, stores its waker and then clears the flag, and then does everything queued.
//! A push's swap either reads the flag clear (after the driver's last clear, whose waker was
//! stored before that clear: it wakes the driver, which is polled again) or reads it set (by a
//! push that woke, or will wake, the driver, or before the driver's first poll, which is still
//! to come); either way a poll of the driver follows whose clear reads the push's swap or a
//! later one, and so sees what the push queued.
//!
//! Both are modelled with loom in `tests/loom.rs` (a push against the driver's polls, on
//! `Notify` itself; a future's check-and-store against the driver's mark-and-take, on
//! `Waiters` inside a copy of the protocol around it): under `cfg(uring_ops_loom)` the
//! atomics and locks here are loom's (`crate::sync`).

use crate::slab::slot_index;
use crate::sync::{lock, AtomicBool, Mutex, Ordering};
use std::cell::Cell;
use std::fmt;
use std::task::Waker;

/// One waker per op in flight, by slot index. See the module documentation for the rule that
/// keeps it free of lost wake-ups.
#[derive(Default)]
pub struct Waiters {
    /// By slot index: the key of the op the waker awaits, and the waker. Grows with the slab,
    /// never shrinks.
    wakers: Vec<Option<(u64, Waker)>>,
}

impl fmt::Debug for Waiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = self.wakers.iter().filter(|w| w.is_some()).count();
        f.debug_struct("Waiters")
            .field("waiting", &waiting)
            .finish()
    }
}

impl Waiters {
    /// Stores `w` as the waker of the op keyed `key` (cloned only if it would not wake the
    /// same task as the one already stored).
    #[inline]
    pub fn set(&mut self, key: u64, w: &Waker) {
        let i = slot_index(key);
        if i >= self.wakers.len() {
            self.grow(i);
        }
        let slot = &mut self.wakers[i];
        match slot {
            Some((k, old)) if *k == key && old.will_wake(w) => {}
            _ => *slot = Some((key, w.clone())),
        }
    }

    #[cold]
    fn grow(&mut self, i: usize) {
        // The slab grows by chunks of 64 slots: so does the table (at least).
        let len = (i + 1).next_multiple_of(64);
        self.wakers.resize_with(len, || None);
    }

    /// Takes the waker stored for the op keyed `key`, if there is one.
    #[inline]
    pub fn take(&mut self, key: u64) -> Option<Waker> {
        let slot = self.wakers.get_mut(slot_index(key))?;
        match slot {
            Some((k, _)) if *k == key => slot.take().map(|(_, w)| w),
            _ => None,
        }
    }
}

/// The driver's notification, for a ring shared between threads: pushes on any thread, the
/// driver polled on any thread. See the module documentation for why no push is missed.
#[derive(Default)]
pub struct Notify {
    /// Set by a push since the driver last cleared it.
    notified: AtomicBool,
    /// The driver's waker, stored at each of its polls, taken by the push that sets the flag.
    waker: Mutex<Option<Waker>>,
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify")
            .field("notified", &self.notified.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Notify {
    /// After queueing work: makes sure the driver is polled after this call. One atomic swap
    /// when a notification is already pending; otherwise also a lock and a wake.
    #[inline]
    pub fn notify(&self) {
        // AcqRel: Release publishes the work queued before this call to the driver's clear
        // that reads this value (or a later one of this read-modify-write chain); Acquire
        // orders the waker taken below after the driver's store of it.
        if self.notified.swap(true, Ordering::AcqRel) {
            return;
        }
        let w = lock(&self.waker).take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// The driver, at each poll: stores its waker, then clears the flag. Returns whether it
    /// was set (work was queued since the last clear). Work queued by a push whose swap this
    /// clear reads is visible after it; a later push wakes the waker stored here.
    #[inline]
    pub fn register(&self, w: &Waker) -> bool {
        {
            let mut slot = lock(&self.waker);
            match &*slot {
                Some(old) if old.will_wake(w) => {}
                _ => *slot = Some(w.clone()),
            }
        }
        // AcqRel: Acquire pairs with the Release of the pushes' swaps (their work is visible
        // after this); Release orders the waker store above before a push's take.
        self.notified.swap(false, Ordering::AcqRel)
    }
}

/// The driver's notification for a ring used by one thread: [`Notify`] without atomics or
/// locks (the same protocol, with no interleaving to fear).
#[derive(Default)]
pub(crate) struct LocalNotify {
    notified: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl fmt::Debug for LocalNotify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalNotify")
            .field("notified", &self.notified.get())
            .finish_non_exhaustive()
    }
}

impl LocalNotify {
    /// As [`Notify::notify`].
    #[inline]
    pub(crate) fn notify(&self) {
        if !self.notified.replace(true) {
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }

    /// As [`Notify::register`].
    #[inline]
    pub(crate) fn register(&self, w: &Waker) -> bool {
        let keep = match self.waker.take() {
            Some(old) if old.will_wake(w) => old,
            _ => w.clone(),
        };
        self.waker.set(Some(keep));
        self.notified.replace(false)
    }
}
