//! Far more completions than the CQ holds: ten times the CQ size of NOPs are submitted before
//! anything is reaped. Every completion must arrive exactly once, in order, none dropped, and
//! the overflow backlog must make waits enter the kernel even when the CQ looks full enough.
// Real io_uring system calls: Miri cannot run them (the sim tests cover Miri).
#![cfg(not(miri))]

mod common;

use common::{build_or_skip, push_nops, skip, Tally};
use uring_core::{sys, Builder, Error, Features};

fn ten_times_the_cq(test: &str, b: Builder) {
    let Some(mut ring) = build_or_skip(test, &b) else {
        return;
    };
    let info = ring.info();
    let (sq, cq) = (info.sq_entries, info.cq_entries);
    let total = 10 * cq;

    // Submit in SQ-sized batches, reaping nothing.
    let mut submitted = 0;
    while submitted < total {
        let n = sq.min(total - submitted);
        push_nops(&mut ring, n, u64::from(submitted));
        match ring.submit() {
            Ok(k) => assert_eq!(k, n, "the kernel consumed part of a NOP batch"),
            // Older kernels refuse new work while the overflow backlog is non-empty.
            Err(Error::Busy(e)) => {
                skip(
                    test,
                    format_args!("the kernel refuses submission with a CQ backlog: {e}"),
                );
                return;
            }
            Err(e) => panic!("{test}: submit: {e}"),
        }
        submitted += n;
    }
    assert_eq!(ring.sq().pending(), 0);

    // The CQ is full, the rest waits in the kernel's backlog and the kernel says so.
    assert_eq!(ring.cq().ready(), cq);
    assert!(ring.cq().kernel_has_more());
    assert_ne!(ring.sq().raw_flags() & sys::IORING_SQ_CQ_OVERFLOW, 0);
    if info.features.contains(Features::NODROP) {
        assert_eq!(ring.cq().overflow(), 0, "NODROP: nothing may be dropped");
    } else {
        skip(test, "no IORING_FEAT_NODROP: overflow count not checked");
    }

    let mut tally = Tally::new();
    let mut next = 0u64;
    let mut check = |tally: &mut Tally, cqe: uring_core::Cqe| {
        assert_eq!(cqe.user_data(), next, "completions out of order");
        next += 1;
        tally.add(cqe);
    };

    // Reap half the CQ. Enough completions are now ready for `wait(1)`, but the backlog flag
    // must make it enter the kernel anyway, which moves backlog into the freed slots.
    for cqe in ring.cq().batch().take((cq / 2) as usize) {
        check(&mut tally, cqe);
    }
    assert_eq!(ring.cq().ready(), cq / 2);
    let enters = ring.backend().enter_count();
    assert!(ring.wait(1).unwrap() >= 1);
    assert_eq!(
        ring.backend().enter_count(),
        enters + 1,
        "a wait with a CQ backlog must enter the kernel"
    );
    assert_eq!(ring.cq().ready(), cq, "the backlog refilled the CQ");

    // Reap the rest, one wait per CQ-full.
    while tally.count() < total as usize {
        for cqe in ring.cq().batch() {
            check(&mut tally, cqe);
        }
        if tally.count() < total as usize {
            ring.wait(1).unwrap();
        }
    }
    tally.assert_exactly(u64::from(total));
    assert_eq!(ring.cq().ready(), 0);
    assert!(
        !ring.cq().kernel_has_more(),
        "backlog left after all came in"
    );
    if info.features.contains(Features::NODROP) {
        assert_eq!(ring.cq().overflow(), 0);
    }

    // The ring still works normally afterwards.
    push_nops(&mut ring, 3, 1_000_000);
    ring.submit_and_wait(3).unwrap();
    assert_eq!(ring.cq().batch().count(), 3);
}

#[test]
fn ten_times_the_cq_before_reaping() {
    ten_times_the_cq(
        "ten_times_the_cq_before_reaping",
        Builder::new(16).cq_entries(32),
    );
}

#[test]
fn ten_times_the_cq_before_reaping_default_cq() {
    ten_times_the_cq(
        "ten_times_the_cq_before_reaping_default_cq",
        Builder::new(64),
    );
}

#[test]
fn ten_times_the_cq_before_reaping_defer_taskrun() {
    ten_times_the_cq(
        "ten_times_the_cq_before_reaping_defer_taskrun",
        Builder::new(16)
            .cq_entries(32)
            .single_issuer()
            .defer_taskrun(),
    );
}
