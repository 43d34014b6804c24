//! Real-kernel tests of timeouts: relative, absolute on each clock, completion count, removal.

mod common;

use std::time::{Duration, Instant};
use uring_ops::ops::{Clock, Nop, Timeout, TimeoutFired, TimeoutRemove};
use uring_ops::Outcome;
use uring_ops::Uring;

const ASKED: Duration = Duration::from_millis(50);
/// Generous: the machine is shared; the lower bound is what is exact (timers never fire early).
const LATE: Duration = Duration::from_secs(3);

#[test]
fn relative_timeout_expires_after_the_asked_time() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Timeout);
    let start = Instant::now();
    let t = ring.push(Timeout::new(ASKED)).unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), TimeoutFired::Expired);
    let took = start.elapsed();
    assert!(took >= ASKED, "fired early: {took:?}");
    assert!(took < ASKED + LATE, "fired far too late: {took:?}");
}

#[test]
fn count_timeout_completes_after_n_other_completions() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Timeout);
    let start = Instant::now();
    let t = ring
        .push(Timeout::new(Duration::from_secs(30)).count(3))
        .unwrap();
    ring.submit().unwrap();
    for _ in 0..2 {
        let n = ring.push(Nop::new()).unwrap();
        ring.wait(n).unwrap().unwrap();
    }
    // Two completions: not yet.
    let t = match ring.wait_timeout(t, Duration::from_millis(50)) {
        Ok(Outcome::Pending(t)) => t,
        other => panic!("fired after 2 of 3 completions: {other:?}"),
    };
    let n = ring.push(Nop::new()).unwrap();
    ring.wait(n).unwrap().unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), TimeoutFired::CountReached);
    assert!(start.elapsed() < Duration::from_secs(30) - LATE);
}

#[test]
fn count_timeout_still_expires_on_time() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Timeout);
    let t = ring.push(Timeout::new(ASKED).count(100)).unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), TimeoutFired::Expired);
}

fn absolute_on(clock: Clock) {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Timeout);
    let start = Instant::now();
    let at = clock.now() + ASKED;
    let t = ring.push(Timeout::absolute(at).clock(clock)).unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), TimeoutFired::Expired);
    let took = start.elapsed();
    assert!(clock.now() >= at, "{clock:?}: fired before the point");
    // Instant is monotonic; other clocks may be adjusted, hence only a rough check there.
    if clock == Clock::Monotonic {
        assert!(took >= ASKED, "fired early: {took:?}");
    }
    assert!(
        took < ASKED + LATE,
        "{clock:?}: fired far too late: {took:?}"
    );

    // A point already past fires at once.
    let t = ring
        .push(Timeout::absolute(clock.now() - Duration::from_secs(1)).clock(clock))
        .unwrap();
    let start = Instant::now();
    assert_eq!(ring.wait(t).unwrap().unwrap(), TimeoutFired::Expired);
    assert!(start.elapsed() < LATE);
}

#[test]
fn absolute_timeout_monotonic() {
    absolute_on(Clock::Monotonic);
}

#[test]
fn absolute_timeout_boottime() {
    require_kernel!(5, 15, "IORING_TIMEOUT_BOOTTIME");
    absolute_on(Clock::Boottime);
}

#[test]
fn absolute_timeout_realtime() {
    require_kernel!(5, 15, "IORING_TIMEOUT_REALTIME");
    absolute_on(Clock::Realtime);
}

#[test]
fn timeout_remove_cancels_the_timeout() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, TimeoutRemove);
    let start = Instant::now();
    let t = ring.push(Timeout::new(Duration::from_secs(30))).unwrap();
    ring.submit().unwrap();
    let r = ring.push(TimeoutRemove::ticket(&t)).unwrap();
    ring.wait(r).unwrap().unwrap();
    let err = ring.wait(t).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
    assert!(start.elapsed() < LATE);
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn timeout_remove_of_an_unknown_key_is_enoent() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, TimeoutRemove);
    let r = ring.push(TimeoutRemove::new(0xabcdef)).unwrap();
    let err = ring.wait(r).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
}

#[test]
fn dropping_the_ring_with_a_pending_timeout_cancels_it() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Timeout);
    let t = ring.push(Timeout::new(Duration::from_secs(30))).unwrap();
    drop(t);
    ring.submit().unwrap();
    let start = Instant::now();
    assert_eq!(ring.cancel_all(Duration::from_secs(2)), 0);
    assert!(start.elapsed() < Duration::from_secs(2));
    drop(ring);
}

#[test]
fn a_timeout_update_brings_the_deadline_in() {
    use uring_ops::ops::TimeoutUpdate;
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, TimeoutUpdate);
    let start = std::time::Instant::now();
    let t = ring.push(Timeout::new(Duration::from_secs(30))).unwrap();
    ring.submit().unwrap();
    let u = ring
        .push(TimeoutUpdate::new(&t, Duration::from_millis(1)))
        .unwrap();
    ring.wait(u).unwrap().unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), TimeoutFired::Expired);
    assert!(start.elapsed() < Duration::from_secs(20));
    // A timeout that already fired is no longer pending.
    let t = ring.push(Timeout::new(Duration::from_millis(1))).unwrap();
    while !ring.is_done(&t) {
        ring.submit_and_wait(1).unwrap();
        ring.reap();
    }
    let u = ring
        .push(TimeoutUpdate::new(&t, Duration::from_secs(1)))
        .unwrap();
    assert_eq!(
        ring.wait(u).unwrap().unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
    ring.wait(t).unwrap().unwrap();
}

#[test]
fn a_link_timeout_update_cancels_the_guarded_op_sooner() {
    use uring_ops::ops::{LinkTimeoutOutcome, PollAdd, PollEvents, TimeoutUpdate};
    use uring_ops::Chain;
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, TimeoutUpdate);
    require_kernel!(5, 15, "updating a link timeout");
    let (rx, _tx) = common::pipe();
    let start = std::time::Instant::now();
    let t = ring
        .push(Chain::new(PollAdd::new(&rx, PollEvents::IN)).link_timeout(Duration::from_secs(30)))
        .unwrap();
    ring.submit().unwrap();
    let u = ring
        .push(TimeoutUpdate::link(&t, 1, Duration::from_millis(1)))
        .unwrap();
    ring.wait(u).unwrap().unwrap();
    let (poll, timeout) = ring.wait(t).unwrap();
    assert_eq!(
        poll.into_inner().unwrap_err().raw_os_error(),
        Some(libc::ECANCELED)
    );
    assert_eq!(timeout.into_inner().unwrap(), LinkTimeoutOutcome::Fired);
    assert!(start.elapsed() < Duration::from_secs(20));
}
