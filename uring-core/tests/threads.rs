//! A ring split into its two halves, the submitting half on one thread and the completing half
//! on another: every completion arrives exactly once.
// Real io_uring system calls: Miri cannot run them (the sim tests cover Miri).
#![cfg(not(miri))]

mod common;

use common::Tally;
use std::time::{Duration, Instant};
use uring_core::{sys, Backend, Builder, CompletionQueue, Error, SubmissionQueue};

// Both halves must be `Send` to live on different threads (checked at compile time).
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<SubmissionQueue<uring_core::Kernel>>();
    assert_send::<CompletionQueue<uring_core::Kernel>>();
};

/// Submits NOPs with user data `0..n` in groups of up to 16, as SQ room allows.
fn submit_all<B: Backend>(sq: &mut SubmissionQueue<B>, n: u64, deadline: Instant) {
    let mut next = 0;
    while next < n {
        assert!(Instant::now() < deadline, "submitter stuck at {next}");
        let group = 16.min(n - next) as u32;
        match sq.reserve(group) {
            Ok(mut r) => {
                for i in 0..group {
                    r.get(i)
                        .unwrap()
                        .set_opcode(sys::IORING_OP_NOP as u8)
                        .set_user_data(next + u64::from(i));
                }
                // SAFETY: NOPs name no memory.
                unsafe { r.commit() };
                next += u64::from(group);
            }
            Err(Error::NoSpace { .. }) => {}
            Err(e) => panic!("reserve: {e}"),
        }
        match sq.submit() {
            Ok(_) => {}
            // The kernel pushes back: the completing thread is behind. The SQEs stay queued.
            Err(Error::Busy(_)) => std::thread::yield_now(),
            Err(e) => panic!("submit: {e}"),
        }
    }
    // Hand over whatever is still queued.
    while sq.pending() > 0 {
        assert!(
            Instant::now() < deadline,
            "submitter could not drain the SQ"
        );
        match sq.submit() {
            Ok(_) | Err(Error::Busy(_)) => {}
            Err(e) => panic!("submit: {e}"),
        }
    }
}

/// Reaps until `n` completions, waiting in the kernel when none are ready.
fn complete_all<B: Backend>(cq: &mut CompletionQueue<B>, n: u64, deadline: Instant) -> Tally {
    let mut tally = Tally::new();
    while (tally.count() as u64) < n {
        assert!(
            Instant::now() < deadline,
            "completer stuck at {}",
            tally.count()
        );
        for cqe in cq.batch() {
            tally.add(cqe);
        }
        if (tally.count() as u64) < n {
            match cq.wait_timeout(1, Duration::from_millis(100)) {
                Ok(_) | Err(Error::Timeout) => {}
                Err(e) => panic!("wait: {e}"),
            }
        }
    }
    tally
}

#[test]
fn split_halves_on_two_threads() {
    const N: u64 = 10_000;
    let ring = Builder::new(64).build().unwrap();
    let (mut sq, mut cq) = ring.into_split();
    let deadline = Instant::now() + Duration::from_secs(20);
    let submitter = std::thread::spawn(move || {
        submit_all(&mut sq, N, deadline);
        sq
    });
    let completer = std::thread::spawn(move || {
        let tally = complete_all(&mut cq, N, deadline);
        (tally, cq)
    });
    let sq = submitter.join().expect("submitting thread");
    let (tally, mut cq) = completer.join().expect("completing thread");
    tally.assert_exactly(N);
    // Nothing extra afterwards, and nothing stuck in the kernel.
    assert_eq!(cq.ready(), 0);
    assert!(!cq.kernel_has_more());
    assert_eq!(cq.overflow(), 0);
    assert!(matches!(
        cq.wait_timeout(1, Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    // The ring is closed when the last half goes, whichever it is.
    drop(cq);
    drop(sq);
}

#[test]
fn borrowed_halves_on_scoped_threads() {
    const N: u64 = 2_000;
    let mut ring = Builder::new(16).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (sq, cq) = ring.split();
    let tally = std::thread::scope(|s| {
        s.spawn(|| submit_all(sq, N, deadline));
        s.spawn(|| complete_all(cq, N, deadline)).join().unwrap()
    });
    tally.assert_exactly(N);
    // The ring is whole again and still works.
    common::push_nops(&mut ring, 2, 0);
    assert_eq!(ring.submit_and_wait(2).unwrap(), 2);
    assert_eq!(ring.cq().batch().count(), 2);
}
