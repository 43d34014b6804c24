//! loom models of the async layer's waker hand-offs (`src/awaitable/waiters.rs`). The first
//! runs the library's `Notify` itself (under `cfg(uring_ops_loom)` its atomics are loom's);
//! the second runs the library's `Waiters` table (`set`, `take`) inside a model of the
//! protocol around it (a future's check-then-store and the driver's mark-then-take, written
//! here after `SharedRing`'s code, not that code itself).
//!
//! Run (release mode, bounded preemptions, a separate target directory):
//!
//! ```text
//! RUSTFLAGS="--cfg uring_ops_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p uring-ops --features async --release --test loom
//! ```
#![cfg(all(uring_ops_loom, feature = "async"))]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use std::task::{Wake, Waker};
use uring_ops::awaitable::{Notify, Waiters};

/// A waker that records that it was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

fn flag() -> (std::sync::Arc<Flag>, Waker) {
    let f = std::sync::Arc::new(Flag(AtomicBool::new(false)));
    let w = Waker::from(std::sync::Arc::clone(&f));
    (f, w)
}

/// Pushes (work counted with Relaxed stores: only the notification orders them) against the
/// driver's poll: after the poll, either the driver saw every push's work, or it was woken
/// (and polls again).
#[test]
fn a_push_is_seen_by_the_driver_or_wakes_it() {
    loom::model(|| {
        let notify = Arc::new(Notify::default());
        let work = Arc::new(AtomicUsize::new(0));
        let pushers: Vec<_> = (0..2)
            .map(|_| {
                let (notify, work) = (Arc::clone(&notify), Arc::clone(&work));
                thread::spawn(move || {
                    work.fetch_add(1, Ordering::Relaxed);
                    notify.notify();
                })
            })
            .collect();
        let (woken, waker) = flag();
        // One poll of the driver: register, then look at the work.
        notify.register(&waker);
        let seen = work.load(Ordering::Relaxed);
        for p in pushers {
            p.join().unwrap();
        }
        if seen < 2 {
            assert!(
                woken.0.load(Ordering::Acquire),
                "the driver saw {seen} of 2 pushes and was not woken"
            );
            // The poll the wake-up brings sees everything.
            notify.register(&waker);
            assert_eq!(work.load(Ordering::Relaxed), 2);
        }
    });
}

/// A future (is my op done? else store my waker, under the table's lock) against the driver
/// (mark the op done, then take its waker under the lock): the future either sees its op
/// done or is woken; and a dropped future's removal leaves nothing for the driver to wake.
#[test]
fn a_completion_is_seen_by_its_future_or_wakes_it() {
    const KEY: u64 = (7 << 8) | (3 << 32);
    loom::model(|| {
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        let done = Arc::new(AtomicBool::new(false));
        let driver = {
            let (waiters, done) = (Arc::clone(&waiters), Arc::clone(&done));
            thread::spawn(move || {
                // The context marks the op done (its own lock, Release here), then the
                // driver takes the waker from its record.
                done.store(true, Ordering::Release);
                let w = waiters.lock().unwrap().take(KEY);
                if let Some(w) = w {
                    w.wake();
                }
            })
        };
        let (woken, waker) = flag();
        let saw_done = {
            let mut table = waiters.lock().unwrap();
            let d = done.load(Ordering::Acquire);
            if !d {
                table.set(KEY, &waker);
            }
            d
        };
        driver.join().unwrap();
        assert!(
            saw_done || woken.0.load(Ordering::Acquire),
            "the op completed, the future did not see it and was not woken"
        );
        // A stale key (the next op of the slot) never takes this op's waker.
        let mut table = waiters.lock().unwrap();
        table.set(KEY, &waker);
        assert!(table.take(KEY + (1 << 32)).is_none());
        assert!(table.take(KEY).is_some());
    });
}
