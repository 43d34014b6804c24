//! Real-kernel tests of the futex ops: a wait woken by another op, by a thread, and a wait on
//! several words.

mod common;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;
use uring_ops::ops::{FutexWait, FutexWaitV, FutexWake, FUTEX_WAITV_MAX};
use uring_ops::{Error, Uring};

/// Pushes wakes of `word` until the wait `t` finishes; returns how many waiters they woke in
/// all. (The wait may not be armed yet when the first wake runs: the kernel may take its time.)
fn wake_until_done(
    ring: &mut Uring,
    word: &Arc<AtomicU32>,
    t: &uring_ops::Ticket<FutexWait>,
) -> u32 {
    let mut woken = 0;
    for _ in 0..1000 {
        let w = ring.push(FutexWake::new(word, u32::MAX)).unwrap();
        woken += ring.wait(w).unwrap().unwrap();
        ring.reap();
        if ring.is_done(t) {
            return woken;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the futex wait was never woken");
}

#[test]
fn a_futex_wait_is_woken_by_a_wake_op() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, FutexWait);
    require_op!(ring, FutexWake);
    let word = Arc::new(AtomicU32::new(0));
    let t = ring.push(FutexWait::new(&word, 0)).unwrap();
    ring.submit().unwrap();
    // Nothing wakes it yet.
    ring.reap();
    assert!(!ring.is_done(&t));
    let woken = wake_until_done(&mut ring, &word, &t);
    assert_eq!(woken, 1, "one waiter, woken once");
    ring.wait(t).unwrap().unwrap();
}

#[test]
fn a_futex_wait_on_a_changed_word_does_not_wait() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, FutexWait);
    let word = Arc::new(AtomicU32::new(5));
    let t = ring.push(FutexWait::new(&word, 4)).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EAGAIN)
    );
    // No waiter: a wake wakes nobody.
    let t = ring.push(FutexWake::new(&word, 1)).unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), 0);
}

#[test]
fn a_futex_wait_is_woken_by_a_thread_and_keeps_its_word_alive() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, FutexWait);
    let word = Arc::new(AtomicU32::new(0));
    let t = ring.push(FutexWait::new(&word, 0)).unwrap();
    ring.submit().unwrap();
    let w = Arc::downgrade(&word);
    let waker = std::thread::spawn(move || {
        let word = w.upgrade().expect("the op holds a share of the word");
        // The word keeps its value (a store before the wait is armed would make it fail with
        // EAGAIN): wake until a waiter was there.
        loop {
            // SAFETY: FUTEX_WAKE_PRIVATE on a live, aligned u32 reads nothing else.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    i32::MAX,
                )
            };
            if n > 0 {
                return n;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    drop(word);
    assert_eq!(waker.join().unwrap(), 1);
    ring.wait(t).unwrap().unwrap();
}

#[test]
fn futex_waitv_reports_the_word_that_was_woken() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, FutexWaitV);
    let a = Arc::new(AtomicU32::new(0));
    let b = Arc::new(AtomicU32::new(7));
    let t = ring.push(FutexWaitV::new([(&a, 0), (&b, 7)])).unwrap();
    ring.submit().unwrap();
    let mut woken = 0;
    for _ in 0..1000 {
        let w = ring.push(FutexWake::new(&b, 1)).unwrap();
        woken += ring.wait(w).unwrap().unwrap();
        ring.reap();
        if ring.is_done(&t) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(woken, 1);
    assert_eq!(ring.wait(t).unwrap().unwrap(), 1, "the second word");

    // Counts outside 1..=128 are refused before the kernel.
    let err = ring.push(FutexWaitV::new([])).unwrap_err();
    assert!(matches!(
        &err.error,
        Error::OutOfRange(r) if r.op == "FutexWaitV" && r.value == 0
    ));
    let many: Vec<_> = (0..=FUTEX_WAITV_MAX).map(|_| (&a, 0)).collect();
    let err = ring.push(FutexWaitV::new(many)).unwrap_err();
    assert!(matches!(
        &err.error,
        Error::OutOfRange(r) if r.value == 129 && r.max == 128
    ));
    assert_eq!(err.op.into_words().len(), 129);
}
