//! SQPOLL rings: while the kernel's poller thread is awake, submitting makes no system call
//! (counted with `Kernel::enter_count`); once it has gone idle, a submit wakes it
//! (`IORING_SQ_NEED_WAKEUP` → `IORING_ENTER_SQ_WAKEUP`) and the work completes.
// Real io_uring system calls: Miri cannot run them (the sim tests cover Miri).
#![cfg(not(miri))]

mod common;

use common::{build_or_skip, push_nops, Tally};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use uring_core::{sys, Builder, Error, Ring, SetupFlags};

/// Polls the CQ in user space (no system call) until `n` completions have been tallied.
fn poll_cq(ring: &mut Ring, tally: &mut Tally, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while tally.count() < n {
        match ring.cq().pop() {
            Some(cqe) => tally.add(cqe),
            None => {
                assert!(
                    Instant::now() < deadline,
                    "{} of {n} completions after {within:?}",
                    tally.count()
                );
                std::hint::spin_loop();
            }
        }
    }
}

fn needs_wakeup(ring: &mut Ring) -> bool {
    ring.sq().raw_flags() & sys::IORING_SQ_NEED_WAKEUP != 0
}

#[test]
fn sqpoll_submits_without_entering_while_the_poller_is_awake() {
    const TEST: &str = "sqpoll_submits_without_entering_while_the_poller_is_awake";
    // A long idle time, so that the poller stays awake for the whole test even on a busy machine.
    let b = Builder::new(32).sqpoll(Duration::from_secs(2));
    let Some(mut ring) = build_or_skip(TEST, &b) else {
        return;
    };
    assert!(ring.info().flags.contains(SetupFlags::SQPOLL));
    let mut tally = Tally::new();

    // Get the poller running (the first submit may have to wake it).
    push_nops(&mut ring, 1, 0);
    ring.submit().unwrap();
    poll_cq(&mut ring, &mut tally, 1, Duration::from_secs(5));

    const N: u64 = 1000;
    let enters = ring.backend().enter_count();
    let mut next = 1u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    while next <= N || tally.count() < (N + 1) as usize {
        assert!(
            Instant::now() < deadline,
            "stuck: {next} pushed, {} completed",
            tally.count()
        );
        // Push in small groups as room allows; the poller frees slots as it consumes.
        if next <= N && ring.sq().free() >= 4 {
            let n = 4.min(N + 1 - next) as u32;
            push_nops(&mut ring, n, next);
            ring.submit().unwrap();
            next += u64::from(n);
        }
        while let Some(cqe) = ring.cq().pop() {
            tally.add(cqe);
        }
        std::hint::spin_loop();
    }
    tally.assert_exactly(N + 1);
    let made = ring.backend().enter_count() - enters;
    assert!(!needs_wakeup(&mut ring), "the poller fell asleep mid-test");
    assert_eq!(
        made, 0,
        "{made} io_uring_enter calls for {N} NOPs while the poller was awake"
    );
}

#[test]
fn sqpoll_submit_wakes_an_idle_poller() {
    const TEST: &str = "sqpoll_submit_wakes_an_idle_poller";
    let idle = Duration::from_millis(10);
    let b = Builder::new(8).sqpoll(idle);
    let Some(mut ring) = build_or_skip(TEST, &b) else {
        return;
    };
    let mut tally = Tally::new();
    for round in 0..3u64 {
        // Let the poller go idle: it sets IORING_SQ_NEED_WAKEUP before sleeping.
        let deadline = Instant::now() + Duration::from_secs(5);
        std::thread::sleep(idle * 5);
        while !needs_wakeup(&mut ring) {
            assert!(Instant::now() < deadline, "the poller never went idle");
            std::thread::sleep(idle);
        }
        // A submit must notice it and enter once, with IORING_ENTER_SQ_WAKEUP.
        let enters = ring.backend().enter_count();
        push_nops(&mut ring, 3, round * 3);
        ring.submit().unwrap();
        assert_eq!(ring.backend().enter_count(), enters + 1, "round {round}");
        // The woken poller consumes and completes the work; the CQ is polled, not waited on.
        poll_cq(
            &mut ring,
            &mut tally,
            (round as usize + 1) * 3,
            Duration::from_secs(5),
        );
    }
    tally.assert_exactly(9);

    // Waiting on an SQPOLL ring enters the kernel as usual; a timed wait still times out.
    assert!(matches!(
        ring.wait_timeout(1, Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
}

/// Runs `f` on its own thread and fails the test if it takes longer than `limit`.
fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hung for {limit:?}"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(_) => unreachable!("the thread sends before it returns"),
        },
    }
}

/// A full SQ on an SQPOLL ring empties on the poller's time: `wait_for_room` wakes a sleeping
/// poller and waits (`IORING_ENTER_SQ_WAIT`) until the slots asked for are free.
#[test]
fn wait_for_room_wakes_the_poller_and_waits_for_it() {
    const TEST: &str = "wait_for_room_wakes_the_poller_and_waits_for_it";
    let idle = Duration::from_millis(5);
    let b = Builder::new(4).sqpoll(idle);
    let Some(mut ring) = build_or_skip(TEST, &b) else {
        return;
    };
    bounded(TEST, Duration::from_secs(20), move || {
        let mut tally = Tally::new();
        for round in 0..3u64 {
            // Let the poller fall asleep, then fill the whole SQ and only publish it (no
            // wake-up): the slots stay taken until someone wakes the poller.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !needs_wakeup(&mut ring) {
                assert!(Instant::now() < deadline, "the poller never went idle");
                std::thread::sleep(idle);
            }
            push_nops(&mut ring, 4, round * 4);
            ring.sq().flush();
            assert_eq!(ring.sq().wait_for_room(4).unwrap(), 4, "round {round}");
            poll_cq(
                &mut ring,
                &mut tally,
                (round as usize + 1) * 4,
                Duration::from_secs(5),
            );
        }
        tally.assert_exactly(12);
        match ring.sq().wait_for_room(5) {
            Err(Error::NoSpace {
                needed: 5,
                capacity: 4,
                ..
            }) => {}
            other => panic!("more room than the SQ has: {other:?}"),
        }
    });
}

/// Without SQPOLL the kernel consumes SQEs only when submitting: `wait_for_room` reports the
/// free slots without entering the kernel.
#[test]
fn wait_for_room_without_sqpoll_does_not_wait() {
    let mut ring = Builder::new(4).build().unwrap();
    push_nops(&mut ring, 3, 0);
    let enters = ring.backend().enter_count();
    assert_eq!(ring.sq().wait_for_room(4).unwrap(), 1);
    assert_eq!(ring.backend().enter_count(), enters);
    assert_eq!(ring.submit().unwrap(), 3);
    assert_eq!(ring.sq().wait_for_room(4).unwrap(), 4);
}

/// `wait_for_room` publishes what is committed, so it must also wake a sleeping poller when
/// there is room already: otherwise the published SQEs sit in the SQ, consumed by nobody,
/// until the next submit (and the CQ, polled here without a system call, stays empty).
#[test]
fn wait_for_room_wakes_the_poller_when_there_is_room() {
    const TEST: &str = "wait_for_room_wakes_the_poller_when_there_is_room";
    let idle = Duration::from_millis(5);
    let b = Builder::new(4).sqpoll(idle);
    let Some(mut ring) = build_or_skip(TEST, &b) else {
        return;
    };
    let mut tally = Tally::new();
    for round in 0..3u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !needs_wakeup(&mut ring) {
            assert!(Instant::now() < deadline, "the poller never went idle");
            std::thread::sleep(idle);
        }
        // Committed, not published: the sleeping poller cannot have taken it.
        push_nops(&mut ring, 1, round);
        let enters = ring.backend().enter_count();
        assert_eq!(ring.sq().wait_for_room(1).unwrap(), 3, "round {round}");
        assert_eq!(
            ring.backend().enter_count(),
            enters + 1,
            "round {round}: one entry, to wake the poller"
        );
        poll_cq(
            &mut ring,
            &mut tally,
            round as usize + 1,
            Duration::from_secs(5),
        );
    }
    tally.assert_exactly(3);
}

/// The kernel waits only for a full SQ to get a first free slot (`IORING_ENTER_SQ_WAIT`
/// returns at once otherwise): waiting for more slots while the poller is busy must not spin
/// on `io_uring_enter`. The poller is kept busy by a large read of `/dev/zero`, which it
/// copies inline for milliseconds before it consumes the NOPs queued behind it.
#[test]
fn wait_for_room_for_several_slots_does_not_spin() {
    const TEST: &str = "wait_for_room_for_several_slots_does_not_spin";
    const LEN: usize = 64 << 20;
    // A long idle time: the poller stays awake for the whole test.
    let b = Builder::new(4).sqpoll(Duration::from_secs(2));
    let Some(mut ring) = build_or_skip(TEST, &b) else {
        return;
    };
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let mut buf = vec![1u8; LEN];
    bounded(TEST, Duration::from_secs(20), move || {
        let mut tally = Tally::new();
        // Wake the poller and see it work.
        push_nops(&mut ring, 1, 0);
        ring.submit().unwrap();
        poll_cq(&mut ring, &mut tally, 1, Duration::from_secs(5));

        let mut r = ring.sq().reserve(1).unwrap();
        r.first()
            .set_opcode(sys::IORING_OP_READ as u8)
            .set_fd(zero.as_raw_fd())
            .set_addr(buf.as_mut_ptr() as u64)
            .set_len(LEN as u32)
            .set_user_data(100);
        // SAFETY: `buf` and `zero` outlive the read: the read's completion is reaped below,
        // before they are dropped.
        unsafe { r.commit() };
        push_nops(&mut ring, 2, 1);
        ring.submit().unwrap();
        let enters = ring.backend().enter_count();
        let started = Instant::now();
        assert_eq!(ring.sq().wait_for_room(4).unwrap(), 4);
        let waited_ms = started.elapsed().as_millis() as u64;
        let made = ring.backend().enter_count() - enters;
        // With back-off: a wake-up at most, then an entry per sleep, the sleeps growing to
        // 1 ms within about ten rounds; so about one entry per millisecond waited, however
        // long a loaded machine keeps the poller busy. Spinning makes thousands a millisecond.
        assert!(
            made <= 20 + waited_ms,
            "{made} io_uring_enter calls while waiting {waited_ms} ms"
        );

        let deadline = Instant::now() + Duration::from_secs(5);
        let mut read = None;
        while tally.count() < 3 || read.is_none() {
            assert!(
                Instant::now() < deadline,
                "the read and NOPs did not complete"
            );
            match ring.cq().pop() {
                Some(cqe) if cqe.user_data() == 100 => read = Some(cqe.raw_result()),
                Some(cqe) => tally.add(cqe),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        tally.assert_exactly(3);
        let n = read.unwrap();
        assert!(n > 0, "read of /dev/zero: {n}");
        assert!(buf[..n as usize].iter().all(|&b| b == 0));
        drop(zero);
    });
}

/// A disabled SQPOLL ring is never served by its poller: waiting for room fails (`EBADFD`)
/// instead of waiting forever, whether the SQ is full (blocking in the kernel) or has room
/// but not enough (backing off in user space).
#[test]
fn wait_for_room_on_a_disabled_ring_fails() {
    const TEST: &str = "wait_for_room_on_a_disabled_ring_fails";
    let b = Builder::new(4).sqpoll(Duration::from_millis(5)).disabled();
    let Some(mut ring) = build_or_skip(TEST, &b) else {
        return;
    };
    bounded(TEST, Duration::from_secs(20), move || {
        push_nops(&mut ring, 2, 0);
        let e = ring.sq().wait_for_room(4).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADFD), "{e}");
        push_nops(&mut ring, 2, 2);
        let e = ring.sq().wait_for_room(1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADFD), "{e}");
    });
}
