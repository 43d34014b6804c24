//! Entering the kernel under a stream of signals, and timed waits.
//!
//! A `SIGALRM` handler is installed without `SA_RESTART`, and a helper thread sends the signal
//! to the one test thread that is waiting (`pthread_kill`), so that `io_uring_enter` keeps failing
//! with `EINTR`. No completion may be lost or counted twice, waits must return the right count,
//! and a timed wait must not restart its clock after a signal.
// Real io_uring system calls: Miri cannot run them (the sim tests cover Miri).
#![cfg(not(miri))]

mod common;

use common::{push_nops, push_timeout, timespec, Tally};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uring_core::{Builder, Error, Ring};

thread_local! {
    /// Signals handled on this thread. Const-initialised with no destructor, so touching it from
    /// a signal handler is async-signal-safe.
    static HITS: Cell<u64> = const { Cell::new(0) };
}

extern "C" fn on_alarm(_: libc::c_int) {
    HITS.with(|h| h.set(h.get() + 1));
}

fn hits() -> u64 {
    HITS.with(Cell::get)
}

/// Installs the `SIGALRM` handler once for the process, without `SA_RESTART`.
fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid starting point; the handler only touches a
        // const-initialised thread-local `Cell` (async-signal-safe); `sa_flags` is 0, so no
        // SA_RESTART and no SA_SIGINFO.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_alarm as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()), 0);
        }
    });
}

/// A thread that sends `SIGALRM` to one target thread every `period`, for at most `max`.
/// Stopped (and joined) when dropped, which happens before the target thread can exit, so the
/// target's `pthread_t` is never used after the thread is gone.
struct Signaller {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl Signaller {
    /// Starts signalling the calling thread.
    fn start(period: Duration, max: Duration) -> Self {
        install_handler();
        // SAFETY: `pthread_self` has no preconditions.
        let target = unsafe { libc::pthread_self() };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let end = Instant::now() + max;
            let mut sent = 0;
            // Relaxed: a plain stop request; nothing is published through it.
            while !flag.load(Ordering::Relaxed) && Instant::now() < end {
                // SAFETY: `target` is alive: the `Signaller` that owns this thread is dropped
                // (and joins it) on the target thread before that thread can exit.
                let r = unsafe { libc::pthread_kill(target, libc::SIGALRM) };
                assert_eq!(r, 0, "pthread_kill");
                sent += 1;
                std::thread::sleep(period);
            }
            sent
        });
        Signaller {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops and returns how many signals were sent.
    fn finish(mut self) -> u64 {
        self.join()
    }

    fn join(&mut self) -> u64 {
        // Relaxed: see the loop above.
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map_or(0, |h| h.join().expect("signaller thread"))
    }
}

impl Drop for Signaller {
    fn drop(&mut self) {
        self.join();
    }
}

/// A thread blocked in `wait(n)` for timeouts firing over ~100 ms, signalled every 0.5 ms: the
/// wait returns exactly `n` and every completion is there once.
#[test]
fn wait_under_a_stream_of_signals_loses_nothing() {
    let mut ring = Builder::new(64).build().unwrap();
    const TIMEOUTS: u32 = 32;
    const NOPS: u32 = 16;
    let specs: Vec<_> = (0..TIMEOUTS)
        .map(|i| timespec(Duration::from_millis(20 + 3 * u64::from(i))))
        .collect();
    for (i, ts) in (0u64..).zip(&specs) {
        // SAFETY: `specs` outlives every completion, all reaped below.
        unsafe { push_timeout(&mut ring, ts, i) };
    }
    push_nops(&mut ring, NOPS, u64::from(TIMEOUTS));

    // Signals arrive before the timers are armed, however long the signaller takes to start
    // (tens of ms in an emulated VM); the clock starts before the submit that arms them.
    let hits0 = hits();
    let signaller = Signaller::start(Duration::from_micros(500), Duration::from_secs(5));
    while hits() == hits0 {
        std::thread::yield_now();
    }
    let started = Instant::now();
    assert_eq!(ring.submit().unwrap(), TIMEOUTS + NOPS);
    let enters0 = ring.backend().enter_count();
    let ready = ring.wait(TIMEOUTS + NOPS).unwrap();
    let waited = started.elapsed();
    let sent = signaller.finish();
    assert_eq!(ready, TIMEOUTS + NOPS, "wait must return the right count");
    assert!(waited >= Duration::from_millis(100), "{waited:?}");

    // The signals did interrupt the wait, and the wait was entered again each time.
    let handled = hits() - hits0;
    let enters = ring.backend().enter_count() - enters0;
    assert!(sent > 0 && handled > 0, "sent {sent}, handled {handled}");
    assert!(
        enters >= 2,
        "no EINTR seen ({enters} enters, {handled} signals)"
    );

    let mut tally = Tally::new();
    for cqe in ring.cq().batch() {
        let res = if cqe.user_data() < u64::from(TIMEOUTS) {
            -libc::ETIME
        } else {
            0
        };
        tally.add_expecting(cqe, res);
    }
    tally.assert_exactly(u64::from(TIMEOUTS + NOPS));
    // Nothing more (no duplicate) turns up later.
    assert!(matches!(
        ring.wait_timeout(1, Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    drop(specs);
}

/// Submitting (and waiting as part of the submit) while signals keep arriving: every
/// `submit_and_wait` reports exactly what was committed, and every round's completions arrive
/// once.
#[test]
fn submit_path_under_a_stream_of_signals() {
    let mut ring = Builder::new(16).build().unwrap();
    let ts = timespec(Duration::from_millis(1));
    let hits0 = hits();
    let enters0 = ring.backend().enter_count();
    let signaller = Signaller::start(Duration::from_micros(300), Duration::from_secs(10));
    let mut tally = Tally::new();
    const ROUNDS: u64 = 60;
    for round in 0..ROUNDS {
        // Four NOPs and a 1 ms timeout: the wait part of the entry blocks and is interrupted;
        // the kernel then reports the SQEs it consumed, never EINTR.
        push_nops(&mut ring, 4, round * 10);
        // SAFETY: `ts` outlives every completion, all reaped below.
        unsafe { push_timeout(&mut ring, &ts, round * 10 + 4) };
        assert_eq!(ring.submit_and_wait(5).unwrap(), 5);
        let mut n = 0;
        for cqe in ring.cq().batch() {
            let res = if cqe.user_data() % 10 == 4 {
                -libc::ETIME
            } else {
                0
            };
            tally.add_expecting(cqe, res);
            n += 1;
        }
        assert_eq!(n, 5, "round {round}");

        // Nothing to submit, only waiting: here the kernel does return EINTR, which the
        // submit path must retry rather than report.
        // SAFETY: as above.
        unsafe { push_timeout(&mut ring, &ts, round * 10 + 5) };
        assert_eq!(ring.submit().unwrap(), 1);
        assert_eq!(ring.sq().submit_and_wait(1).unwrap(), 0);
        let cqe = ring.cq().pop().expect("the waited-for timeout");
        tally.add_expecting(cqe, -libc::ETIME);
        assert_eq!(ring.cq().ready(), 0);
    }
    let sent = signaller.finish();
    assert_eq!(tally.count() as u64, ROUNDS * 6);
    let handled = hits() - hits0;
    let enters = ring.backend().enter_count() - enters0;
    assert!(sent > 0 && handled > 0, "sent {sent}, handled {handled}");
    // Two submissions per round, plus at least one retry after EINTR somewhere.
    assert!(
        enters > 2 * ROUNDS,
        "no interrupted entry ({enters} enters, {handled} signals)"
    );
    assert_eq!(ring.sq().pending(), 0);
    drop(ts);
}

/// Nothing in flight: a timed wait gives `Error::Timeout` after about the asked time.
#[test]
fn timed_wait_with_nothing_in_flight_times_out() {
    let mut ring = Ring::new(4).unwrap();
    let asked = Duration::from_millis(100);
    let started = Instant::now();
    let r = ring.wait_timeout(1, asked);
    let took = started.elapsed();
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(took >= asked, "returned early: {took:?}");
    assert!(
        took < asked + Duration::from_secs(2),
        "far too late: {took:?}"
    );
    // The error names its errno, and keeps it through conversion to `io::Error`.
    let e = r.unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ETIME));
    let io = std::io::Error::from(e);
    assert_eq!(io.raw_os_error(), Some(libc::ETIME), "{io:?}");
}

/// A completion that arrives before the deadline ends a timed wait early, with a count.
#[test]
fn timed_wait_returns_when_the_completion_arrives() {
    let mut ring = Ring::new(4).unwrap();
    let ts = timespec(Duration::from_millis(20));
    // SAFETY: `ts` outlives the completion, reaped below.
    unsafe { push_timeout(&mut ring, &ts, 9) };
    ring.submit().unwrap();
    let started = Instant::now();
    assert_eq!(ring.wait_timeout(1, Duration::from_secs(5)).unwrap(), 1);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    let cqe = ring.cq().pop().unwrap();
    assert_eq!((cqe.user_data(), cqe.raw_result()), (9, -libc::ETIME));
    drop(ts);
}

/// Signals every 5 ms for up to 3 s during a 300 ms timed wait: the wait still ends after about
/// 300 ms. Were the clock restarted by each `EINTR`, it would run until the signals stop.
#[test]
fn signals_do_not_restart_the_timed_wait_clock() {
    let mut ring = Ring::new(4).unwrap();
    let asked = Duration::from_millis(300);
    let hits0 = hits();
    let enters0 = ring.backend().enter_count();
    let signaller = Signaller::start(Duration::from_millis(5), Duration::from_secs(3));
    let started = Instant::now();
    let r = ring.wait_timeout(1, asked);
    let took = started.elapsed();
    let sent = signaller.finish();
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(took >= asked, "returned early: {took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "the clock restarted: {took:?} for {asked:?} ({sent} signals)"
    );
    let handled = hits() - hits0;
    let enters = ring.backend().enter_count() - enters0;
    assert!(handled > 0, "no signal arrived during the wait");
    assert!(
        enters >= 2,
        "the wait was not interrupted ({enters} enters)"
    );
}
