//! The ring logic over the simulated kernel: submission, completion, overflow, partial
//! consumption, fault injection, wrap-around of the free-running counters, split halves.
//!
//! Everything here runs under Miri (`cargo +nightly miri test -p uring-core`), which is the point:
//! these paths exercise every unsafe slot access and every ordering pair of the ring. Loops are
//! shorter under `cfg(miri)`.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use uring_core::sim::{Sim, SimConfig};
use uring_core::{sys, Builder, Error, Ring, Sqe, SqeFlags};

/// Where the free-running counters start: at zero, and just before (and at) the `u32` wrap.
const STARTS: [u32; 3] = [0, u32::MAX - 2, u32::MAX];

/// `n` of something, fewer under Miri.
const fn scaled(n: u32, miri: u32) -> u32 {
    if cfg!(miri) {
        miri
    } else {
        n
    }
}

fn sim_ring(entries: u32, config: SimConfig) -> Ring<Sim> {
    Builder::new(entries).build_sim_with(config).unwrap()
}

fn at(start: u32) -> SimConfig {
    SimConfig {
        start_index: start,
        ..SimConfig::default()
    }
}

fn nop(sqe: &mut Sqe, user_data: u64) {
    sqe.set_opcode(sys::IORING_OP_NOP as u8)
        .set_user_data(user_data);
}

/// A NOP completing with `res` (`IORING_NOP_INJECT_RESULT`, `res` carried in `len`).
fn nop_res(sqe: &mut Sqe, user_data: u64, res: i32) {
    nop(sqe, user_data);
    sqe.set_nop_flags(sys::IORING_NOP_INJECT_RESULT)
        .set_len(res as u32);
}

/// Reserves, fills with `fill(i, sqe)` and commits `n` SQEs as one group.
fn push_with(ring: &mut Ring<Sim>, n: u32, mut fill: impl FnMut(u32, &mut Sqe)) {
    let mut r = ring.sq().reserve(n).unwrap();
    for i in 0..n {
        fill(i, r.get(i).unwrap());
    }
    // SAFETY: the simulated kernel dereferences no address in an SQE.
    unsafe { r.commit() };
}

/// Pushes `n` NOPs with user data `first, first + 1, ...`.
fn push_nops(ring: &mut Ring<Sim>, n: u32, first: u64) {
    push_with(ring, n, |i, sqe| nop(sqe, first + u64::from(i)));
}

/// Reaps every ready completion as `(user_data, res)`.
fn reap(ring: &mut Ring<Sim>) -> Vec<(u64, i32)> {
    ring.cq()
        .batch()
        .map(|c| (c.user_data(), c.raw_result()))
        .collect()
}

fn user_data(v: &[(u64, i32)]) -> Vec<u64> {
    v.iter().map(|&(u, _)| u).collect()
}

#[test]
fn nop_and_injected_results() {
    for start in STARTS {
        let mut ring = sim_ring(8, at(start));
        push_with(&mut ring, 5, |i, sqe| match i {
            0 => nop(sqe, 1),
            1 => nop_res(sqe, 2, 42),
            2 => nop_res(sqe, 3, -libc::EIO),
            3 => {
                // An opcode the simulated kernel does not implement.
                sqe.set_opcode(sys::IORING_OP_READV as u8).set_user_data(4);
            }
            _ => nop_res(sqe, 5, 0),
        });
        // The raw path: a prepared SQE copied in.
        let mut sqe = Sqe::zeroed();
        nop_res(&mut sqe, 6, 7);
        // SAFETY: a NOP names no memory.
        unsafe { ring.push(&sqe).unwrap() };
        assert_eq!(ring.submit_and_wait(6).unwrap(), 6);
        assert_eq!(ring.cq().ready(), 6);
        let cqes: Vec<_> = ring.cq().batch().collect();
        let got: Vec<_> = cqes
            .iter()
            .map(|c| (c.user_data(), c.raw_result()))
            .collect();
        assert_eq!(
            got,
            [
                (1, 0),
                (2, 42),
                (3, -libc::EIO),
                (4, -libc::EINVAL),
                (5, 0),
                (6, 7)
            ]
        );
        assert_eq!(cqes[1].result().unwrap(), 42);
        assert_eq!(
            cqes[2].result().unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
        assert!(cqes.iter().all(|c| c.flags().is_empty()));
        assert_eq!(ring.cq().ready(), 0);
        assert_eq!(ring.sq().pending(), 0);
    }
}

#[test]
fn counters_wrap_around_u32_over_many_rounds() {
    let rounds = scaled(300, 24);
    for start in STARTS {
        let mut ring = sim_ring(4, at(start));
        let sim = ring.sim_handle();
        assert_eq!((ring.sq().capacity(), ring.cq().capacity()), (4, 8));
        let mut next = 0u64;
        let mut total = 0u32;
        for round in 0..rounds {
            let n = 1 + round % 4;
            push_nops(&mut ring, n, next);
            assert_eq!(ring.sq().pending(), n);
            assert_eq!(ring.sq().free(), 4 - n);
            assert_eq!(ring.submit().unwrap(), n);
            total = total.wrapping_add(n);
            assert_eq!(sim.sq_tail(), start.wrapping_add(total));
            assert_eq!(ring.cq().ready(), n);
            let got = reap(&mut ring);
            let want: Vec<_> = (next..next + u64::from(n)).map(|u| (u, 0)).collect();
            assert_eq!(got, want, "round {round} from {start:#x}");
            assert_eq!(sim.cq_head(), start.wrapping_add(total));
            next += u64::from(n);
        }
        // The counters really went round: with 4 slots, the slot numbers wrapped many times, and
        // from near u32::MAX the counters themselves passed zero.
        assert!(next > 8);
    }
}

#[test]
fn full_cq_across_the_wrap() {
    for start in STARTS {
        let mut ring = sim_ring(4, at(start));
        let sim = ring.sim_handle();
        for b in 0..3u64 {
            push_nops(&mut ring, 4, b * 4);
            assert_eq!(ring.submit().unwrap(), 4);
        }
        // 8 fit the CQ exactly (tail - head == entries, across the wrap); 4 wait in the backlog.
        assert_eq!(ring.cq().ready(), 8);
        assert_eq!(sim.backlog_len(), 4);
        assert!(ring.cq().kernel_has_more());
        let first = reap(&mut ring);
        assert_eq!(user_data(&first), (0..8).collect::<Vec<_>>());
        assert_eq!(ring.wait(4).unwrap(), 4);
        assert_eq!(user_data(&reap(&mut ring)), (8..12).collect::<Vec<_>>());
        assert!(!ring.cq().kernel_has_more());
        assert_eq!(sim.cq_head(), start.wrapping_add(12));
    }
}

#[test]
fn full_sq_refuses_reservations_and_stays_unchanged() {
    for start in STARTS {
        let mut ring = sim_ring(4, at(start));
        let sim = ring.sim_handle();
        let no_space = |e: Error| match e {
            Error::NoSpace {
                needed,
                free,
                capacity,
            } => (needed, free, capacity),
            other => panic!("expected NoSpace, got {other:?}"),
        };
        // More than the whole queue.
        assert_eq!(no_space(ring.sq().reserve(5).unwrap_err()), (5, 4, 4));
        push_nops(&mut ring, 3, 0);
        // More than is left: refused, nothing reserved, nothing published.
        let e = ring.sq().reserve(2).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY));
        assert_eq!(no_space(e), (2, 1, 4));
        assert_eq!(ring.sq().pending(), 3);
        assert_eq!(ring.sq().free(), 1);
        assert_eq!(
            sim.sq_tail(),
            start,
            "a refused reservation published nothing"
        );
        // The last slot is still usable, then the queue is full.
        push_nops(&mut ring, 1, 3);
        assert!(ring.sq().is_full());
        assert_eq!(no_space(ring.sq().reserve(1).unwrap_err()), (1, 0, 4));
        // A dropped reservation gives its slots back without committing anything.
        assert_eq!(ring.submit().unwrap(), 4);
        {
            let mut r = ring.sq().reserve(4).unwrap();
            nop(r.first(), 99);
        }
        assert_eq!(ring.sq().pending(), 0);
        assert_eq!(ring.submit().unwrap(), 0);
        assert_eq!(
            reap(&mut ring),
            [(0, 0), (1, 0), (2, 0), (3, 0)],
            "each once, in order"
        );
    }
}

#[test]
fn partial_consumption_keeps_unconsumed_sqes_queued() {
    for start in STARTS {
        let mut ring = sim_ring(
            4,
            SimConfig {
                max_consume: Some(2),
                ..at(start)
            },
        );
        let sim = ring.sim_handle();
        push_nops(&mut ring, 4, 0);
        assert_eq!(ring.submit().unwrap(), 2, "the kernel took 2 of 4");
        assert_eq!(ring.sq().pending(), 2);
        assert_eq!(ring.sq().free(), 2);
        // The unconsumed SQEs' slots stay taken.
        match ring.sq().reserve(3) {
            Err(Error::NoSpace {
                needed: 3, free: 2, ..
            }) => {}
            other => panic!("expected NoSpace, got {other:?}"),
        }
        // Reuse the two consumed slots; the two unconsumed ones must not be overwritten.
        push_nops(&mut ring, 2, 10);
        assert_eq!(ring.submit().unwrap(), 2);
        assert_eq!(ring.submit().unwrap(), 2);
        assert_eq!(ring.sq().pending(), 0);
        let enters = sim.enter_count();
        assert_eq!(ring.submit().unwrap(), 0);
        assert_eq!(sim.enter_count(), enters, "nothing to submit: no entry");
        assert_eq!(
            user_data(&reap(&mut ring)),
            [0, 1, 2, 3, 10, 11],
            "every SQE completed once, in order, none overwritten"
        );
    }
}

/// Pushes `total` NOPs in batches of the SQ size, submitting each, without reaping.
fn flood(ring: &mut Ring<Sim>, total: u32) {
    let sq = ring.sq().capacity();
    let mut next = 0;
    while next < total {
        let n = sq.min(total - next);
        push_nops(ring, n, u64::from(next));
        assert_eq!(ring.submit().unwrap(), n);
        next += n;
    }
}

#[test]
fn overflow_with_nodrop_loses_nothing() {
    for start in STARTS {
        let mut ring = sim_ring(4, at(start));
        let sim = ring.sim_handle();
        let cq = ring.cq().capacity();
        let total = 10 * cq;
        flood(&mut ring, total);
        assert_eq!(ring.cq().ready(), cq);
        assert_eq!(sim.backlog_len(), (total - cq) as usize);
        assert_ne!(ring.sq().raw_flags() & sys::IORING_SQ_CQ_OVERFLOW, 0);
        assert!(ring.cq().kernel_has_more());
        assert_eq!(ring.cq().overflow(), 0, "nodrop: nothing dropped");

        // The CQ looks full (and satisfies the wait), but the overflow flag forces an entry.
        let enters = sim.enter_count();
        assert_eq!(ring.wait(cq).unwrap(), cq);
        assert_eq!(sim.enter_count(), enters + 1);
        assert_eq!(ring.wait(1).unwrap(), cq);
        assert_eq!(sim.enter_count(), enters + 2);

        let mut seen = Vec::new();
        for _ in 0..=total {
            seen.extend(user_data(&reap(&mut ring)));
            if seen.len() == total as usize {
                break;
            }
            ring.wait(1).unwrap();
        }
        assert_eq!(seen, (0..u64::from(total)).collect::<Vec<_>>());
        assert_eq!(sim.backlog_len(), 0);
        assert_eq!(ring.sq().raw_flags() & sys::IORING_SQ_CQ_OVERFLOW, 0);
        assert!(!ring.cq().kernel_has_more());
        assert_eq!(ring.cq().ready(), 0);
        // With the flag clear and enough ready, waiting does not enter.
        push_nops(&mut ring, 1, 1000);
        ring.submit().unwrap();
        let enters = sim.enter_count();
        assert_eq!(ring.wait(1).unwrap(), 1);
        assert_eq!(sim.enter_count(), enters);
        assert_eq!(reap(&mut ring), [(1000, 0)]);
    }
}

#[test]
fn overflow_without_nodrop_counts_drops_once() {
    for start in STARTS {
        let mut ring = sim_ring(
            4,
            SimConfig {
                nodrop: false,
                ..at(start)
            },
        );
        let sim = ring.sim_handle();
        let cq = ring.cq().capacity();
        let total = 10 * cq;
        flood(&mut ring, total);
        assert_eq!(ring.cq().ready(), cq);
        assert_eq!(ring.cq().overflow(), total - cq);
        assert_eq!(sim.backlog_len(), 0);
        assert_eq!(ring.sq().raw_flags() & sys::IORING_SQ_CQ_OVERFLOW, 0);
        assert!(!ring.cq().kernel_has_more());
        let got = reap(&mut ring);
        assert_eq!(user_data(&got), (0..u64::from(cq)).collect::<Vec<_>>());
        // Nothing more will come, and nothing is counted twice.
        assert!(matches!(ring.wait(1), Err(Error::Timeout)));
        assert_eq!(ring.cq().ready(), 0);
        assert_eq!(got.len() as u32 + ring.cq().overflow(), total);
        // With room again, completions post normally and the counter stays.
        push_nops(&mut ring, 2, 500);
        ring.submit_and_wait(2).unwrap();
        assert_eq!(user_data(&reap(&mut ring)), [500, 501]);
        assert_eq!(ring.cq().overflow(), total - cq);
    }
}

#[test]
fn eintr_in_submit_and_wait_loses_and_double_counts_nothing() {
    for start in STARTS {
        let mut ring = sim_ring(4, at(start));
        let sim = ring.sim_handle();

        // Submit: three signals, then the entry goes through; the count is the real one.
        push_nops(&mut ring, 4, 0);
        sim.inject_eintr(3);
        let enters = sim.enter_count();
        assert_eq!(ring.submit().unwrap(), 4);
        assert_eq!(sim.enter_count(), enters + 4);
        assert_eq!(ring.sq().pending(), 0);
        assert_eq!(user_data(&reap(&mut ring)), [0, 1, 2, 3]);

        // A signal before a partial consumption: the count is still exactly what was taken.
        sim.configure(SimConfig {
            max_consume: Some(2),
            ..at(start)
        });
        push_nops(&mut ring, 4, 10);
        sim.inject_eintr(1);
        assert_eq!(ring.submit().unwrap(), 2);
        assert_eq!(ring.sq().pending(), 2);
        assert_eq!(ring.submit().unwrap(), 2);
        sim.configure(at(start));
        assert_eq!(user_data(&reap(&mut ring)), [10, 11, 12, 13]);

        // submit_and_wait across signals.
        push_nops(&mut ring, 3, 20);
        sim.inject_eintr(2);
        assert_eq!(ring.submit_and_wait(3).unwrap(), 3);
        assert_eq!(user_data(&reap(&mut ring)), [20, 21, 22]);

        // Wait: completions held in the backlog arrive only by entering; signals interrupt
        // the first two entries.
        flood(&mut ring, 12);
        assert_eq!(user_data(&reap(&mut ring)), (0..8).collect::<Vec<_>>());
        sim.inject_eintr(2);
        let enters = sim.enter_count();
        assert_eq!(ring.wait(4).unwrap(), 4);
        assert_eq!(sim.enter_count(), enters + 3);
        assert_eq!(user_data(&reap(&mut ring)), [8, 9, 10, 11]);
        assert_eq!(ring.cq().ready(), 0);
        assert_eq!(sim.backlog_len(), 0);
    }
}

#[test]
fn ebusy_reports_busy_and_submit_or_reap_retries() {
    for start in STARTS {
        let mut ring = sim_ring(4, at(start));
        let sim = ring.sim_handle();

        push_nops(&mut ring, 4, 0);
        sim.inject_ebusy(1);
        match ring.submit() {
            Err(Error::Busy(e)) => assert_eq!(e.raw_os_error(), Some(libc::EBUSY)),
            other => panic!("expected Busy, got {other:?}"),
        }
        // Nothing was consumed, nothing lost: the SQEs are published and still queued.
        assert_eq!(ring.sq().pending(), 4);
        assert_eq!(sim.sq_tail(), start.wrapping_add(4));
        assert_eq!(ring.cq().ready(), 0);
        assert_eq!(ring.submit().unwrap(), 4);

        // The 4 completions stay unreaped; the kernel pushes back on the next submit, so
        // submit_or_reap reaps them into the closure and retries.
        push_nops(&mut ring, 4, 10);
        sim.inject_ebusy(1);
        let mut reaped = Vec::new();
        let n = ring
            .submit_or_reap(|c| reaped.push((c.user_data(), c.raw_result())))
            .unwrap();
        assert_eq!(n, 4);
        assert_eq!(reaped, [(0, 0), (1, 0), (2, 0), (3, 0)]);
        assert_eq!(user_data(&reap(&mut ring)), [10, 11, 12, 13]);

        // A kernel that keeps refusing: Busy comes back, still nothing lost.
        push_nops(&mut ring, 2, 20);
        sim.inject_ebusy(u32::MAX);
        assert!(matches!(ring.submit_or_reap(|_| {}), Err(Error::Busy(_))));
        assert_eq!(ring.sq().pending(), 2);
        sim.inject_ebusy(0);
        assert_eq!(
            ring.submit_or_reap(|_| panic!("nothing to reap")).unwrap(),
            2
        );
        assert_eq!(user_data(&reap(&mut ring)), [20, 21]);
    }
}

#[test]
fn failed_link_cancels_the_rest_of_its_chain() {
    let mut ring = sim_ring(16, SimConfig::default());
    let link = SqeFlags::IO_LINK;
    push_with(&mut ring, 10, |i, sqe| match i {
        // A chain of three whose head fails.
        0 => {
            nop_res(sqe, 1, -libc::EIO);
            sqe.set_flags(link);
        }
        1 => {
            nop(sqe, 2);
            sqe.set_flags(link);
        }
        2 => nop(sqe, 3),
        // Independent of the chain before it.
        3 => nop(sqe, 4),
        // A chain whose head is an unsupported op.
        4 => {
            sqe.set_opcode(sys::IORING_OP_READV as u8)
                .set_user_data(5)
                .set_flags(link);
        }
        5 => nop(sqe, 6),
        // A chain that fails in the middle: what came before stands.
        6 => {
            nop(sqe, 7);
            sqe.set_flags(link);
        }
        7 => {
            nop_res(sqe, 8, -libc::EPERM);
            sqe.set_flags(link);
        }
        8 => nop(sqe, 9),
        // A hard link: its failure does not cancel the next.
        _ => {
            nop_res(sqe, 10, -libc::EIO);
            sqe.set_flags(SqeFlags::IO_HARDLINK);
        }
    });
    push_with(&mut ring, 1, |_, sqe| nop(sqe, 11));
    assert_eq!(ring.submit().unwrap(), 11);
    let cancelled = -libc::ECANCELED;
    assert_eq!(
        reap(&mut ring),
        [
            (1, -libc::EIO),
            (2, cancelled),
            (3, cancelled),
            (4, 0),
            (5, -libc::EINVAL),
            (6, cancelled),
            (7, 0),
            (8, -libc::EPERM),
            (9, cancelled),
            (10, -libc::EIO),
            (11, 0),
        ]
    );
}

#[test]
fn cqe_skip_success_posts_only_failures() {
    let mut ring = sim_ring(8, SimConfig::default());
    let skip = SqeFlags::CQE_SKIP_SUCCESS;
    push_with(&mut ring, 6, |i, sqe| {
        match i {
            0 => nop(sqe, 1),
            1 => nop(sqe, 2),
            2 => nop_res(sqe, 3, -libc::EIO),
            3 => nop_res(sqe, 4, 5),
            4 => {
                nop_res(sqe, 5, -libc::EIO);
                sqe.add_flags(SqeFlags::IO_LINK);
            }
            _ => nop(sqe, 6),
        }
        if i != 1 {
            sqe.add_flags(skip);
        }
    });
    assert_eq!(ring.submit().unwrap(), 6);
    // 1 and 4 succeed silently; 2 has no skip; 3 and 5 fail; 6 is cancelled, which is a failure.
    assert_eq!(
        reap(&mut ring),
        [
            (2, 0),
            (3, -libc::EIO),
            (5, -libc::EIO),
            (6, -libc::ECANCELED)
        ]
    );
    assert_eq!(ring.cq().ready(), 0);
}

#[test]
fn batch_publishes_the_cq_head_once_on_drop() {
    for start in STARTS {
        let mut ring = sim_ring(4, at(start));
        let sim = ring.sim_handle();
        push_nops(&mut ring, 4, 0);
        ring.submit().unwrap();
        push_nops(&mut ring, 4, 4);
        ring.submit().unwrap();
        assert_eq!(sim.cq_head(), start);
        {
            let mut batch = ring.cq().batch();
            assert_eq!(batch.remaining(), 8);
            assert_eq!(batch.len(), 8);
            let first: Vec<_> = batch.by_ref().take(3).map(|c| c.user_data()).collect();
            assert_eq!(first, [0, 1, 2]);
            assert_eq!(batch.remaining(), 5);
            assert_eq!(
                sim.cq_head(),
                start,
                "the head moves only when the batch drops"
            );
        }
        assert_eq!(sim.cq_head(), start.wrapping_add(3));
        assert_eq!(ring.cq().ready(), 5);

        // While a batch has read every CQE of a full CQ but is not dropped, the kernel cannot
        // reuse a slot: what does not fit stays in its backlog.
        push_nops(&mut ring, 4, 8);
        ring.submit().unwrap();
        assert_eq!(ring.cq().ready(), 8);
        assert_eq!(sim.backlog_len(), 1);
        let head = sim.cq_head();
        {
            let mut batch = ring.cq().batch();
            let read: Vec<_> = batch.by_ref().map(|c| c.user_data()).collect();
            assert_eq!(read, [3, 4, 5, 6, 7, 8, 9, 10]);
            sim.service(0);
            assert_eq!(sim.backlog_len(), 1, "slots read but not handed back");
            assert_eq!(sim.cq_head(), head);
        }
        assert_eq!(sim.cq_head(), head.wrapping_add(8));
        sim.service(0);
        assert_eq!(sim.backlog_len(), 0);
        assert_eq!(ring.cq().pop().map(|c| c.user_data()), Some(11));
        assert_eq!(sim.cq_head(), head.wrapping_add(9));
        assert!(ring.cq().pop().is_none());
        assert_eq!(sim.cq_head(), head.wrapping_add(9));
    }
}

#[test]
fn split_halves_on_two_threads() {
    let total = scaled(3000, 40);
    let ring = sim_ring(4, at(u32::MAX - 5));
    let sim = ring.sim_handle();
    let (mut sq, mut cq) = ring.into_split();
    let seen = std::thread::scope(|s| {
        s.spawn(move || {
            // The submitting half: the kernel consumes on its entries.
            for i in 0..total {
                loop {
                    match sq.reserve(1) {
                        Ok(mut r) => {
                            nop(r.first(), u64::from(i));
                            // SAFETY: a NOP names no memory.
                            unsafe { r.commit() };
                            break;
                        }
                        Err(Error::NoSpace { .. }) => {
                            sq.submit().unwrap();
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                if i % 3 == 0 {
                    sq.submit().unwrap();
                }
            }
            while sq.pending() > 0 {
                sq.submit().unwrap();
            }
        });
        // The completing half, here: reap, and enter the kernel when it holds a backlog.
        let mut seen = Vec::with_capacity(total as usize);
        while seen.len() < total as usize {
            let before = seen.len();
            seen.extend(cq.batch().map(|c| c.user_data()));
            if cq.kernel_has_more() {
                cq.wait(0).unwrap();
            } else if seen.len() == before {
                std::thread::yield_now();
            }
        }
        seen
    });
    assert_eq!(seen, (0..u64::from(total)).collect::<Vec<_>>());
    assert_eq!(cq.ready(), 0);
    assert_eq!(sim.backlog_len(), 0);
}

#[test]
fn manual_kernel_thread_and_a_blocking_wait() {
    let total = scaled(2000, 30);
    let ring = sim_ring(
        2,
        SimConfig {
            manual: true,
            ..at(u32::MAX - 1)
        },
    );
    let sim = ring.sim_handle();
    let done = AtomicBool::new(false);
    let (mut sq, mut cq) = ring.into_split();
    let seen = std::thread::scope(|s| {
        // The "kernel".
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if sim.service(u32::MAX) == 0 {
                    std::thread::yield_now();
                }
            }
        });
        s.spawn(move || {
            for i in 0..total {
                loop {
                    match sq.reserve(1) {
                        Ok(mut r) => {
                            nop(r.first(), u64::from(i));
                            // SAFETY: a NOP names no memory.
                            unsafe { r.commit() };
                            break;
                        }
                        Err(Error::NoSpace { .. }) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
                // Manual mode: entering consumes nothing; the kernel thread does.
                assert_eq!(sq.submit().unwrap(), 0);
            }
        });
        let mut seen = Vec::with_capacity(total as usize);
        while seen.len() < total as usize {
            // Blocks (yielding) until the kernel thread posts.
            assert!(cq.wait(1).unwrap() >= 1);
            seen.extend(cq.batch().map(|c| c.user_data()));
        }
        done.store(true, Ordering::Relaxed);
        seen
    });
    assert_eq!(seen, (0..u64::from(total)).collect::<Vec<_>>());
    assert_eq!(sim.backlog_len(), 0);
}

#[test]
fn waits_without_work_time_out() {
    let mut ring = sim_ring(4, SimConfig::default());
    assert!(matches!(
        ring.wait_timeout(1, std::time::Duration::from_millis(1)),
        Err(Error::Timeout)
    ));
    // In manual mode with no kernel thread, a timed wait waits its time out.
    ring.sim_handle().configure(SimConfig {
        manual: true,
        ..SimConfig::default()
    });
    let t = std::time::Instant::now();
    let d = std::time::Duration::from_millis(3);
    assert!(matches!(ring.wait_timeout(1, d), Err(Error::Timeout)));
    assert!(t.elapsed() >= d);
}

#[test]
fn sqe128_cqe32_and_no_sqarray_rings() {
    let mut ring = Builder::new(4).sqe128().cqe32().build_sim().unwrap();
    let mut r = ring.sq().reserve(2).unwrap();
    nop(r.first(), 1);
    r.big_cmd(0).unwrap().fill(0xab);
    nop(r.get(1).unwrap(), 2);
    assert_eq!(r.big_cmd(1).unwrap()[79], 0, "reserved SQEs come zeroed");
    assert!(r.big_cmd(2).is_none());
    // SAFETY: NOPs name no memory.
    unsafe { r.commit() };
    ring.submit_and_wait(2).unwrap();
    let cqes: Vec<_> = ring.cq().batch().collect();
    assert_eq!(cqes.len(), 2);
    assert_eq!((cqes[0].user_data(), cqes[1].user_data()), (1, 2));
    assert!(cqes.iter().all(|c| c.extra() == [0, 0]));

    let mut plain = sim_ring(4, SimConfig::default());
    let mut r = plain.sq().reserve(1).unwrap();
    assert!(
        r.big_cmd(0).is_none(),
        "64-byte SQEs have no big command area"
    );

    for start in STARTS {
        let mut ring = Builder::new(2)
            .no_sqarray()
            .build_sim_with(at(start))
            .unwrap();
        for round in 0..scaled(20, 6) {
            let ud = u64::from(round) * 2;
            push_nops(&mut ring, 2, ud);
            assert_eq!(ring.submit_and_wait(2).unwrap(), 2);
            assert_eq!(user_data(&reap(&mut ring)), [ud, ud + 1]);
        }
    }
}

/// A partial submission must not leave `submit_and_wait` waiting for completions of SQEs the
/// kernel never took: it hands over the rest first.
#[test]
fn submit_and_wait_after_partial_consumption() {
    let cfg = SimConfig {
        max_consume: Some(2),
        ..SimConfig::default()
    };
    let mut ring = Builder::new(8).build_sim_with(cfg).unwrap();
    let mut r = ring.sq().reserve(5).unwrap();
    for i in 0..5 {
        r.get(i)
            .unwrap()
            .set_opcode(uring_core::sys::IORING_OP_NOP as u8)
            .set_user_data(u64::from(i));
    }
    // SAFETY: NOPs name no memory.
    unsafe { r.commit() };
    assert_eq!(ring.submit_and_wait(5).unwrap(), 5);
    assert_eq!(ring.sq().pending(), 0);
    let got: Vec<u64> = ring.cq().batch().map(|c| c.user_data()).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
}

/// A batch forgotten with `mem::forget` after one `next()` must not hand that completion out
/// again, and the kernel gets the slot back at the next wait.
#[test]
fn forgotten_batch_does_not_duplicate() {
    let mut ring = Builder::new(4).build_sim().unwrap();
    let mut r = ring.sq().reserve(2).unwrap();
    for i in 0..2 {
        r.get(i)
            .unwrap()
            .set_opcode(sys::IORING_OP_NOP as u8)
            .set_user_data(10 + u64::from(i));
    }
    // SAFETY: NOPs name no memory.
    unsafe { r.commit() };
    ring.submit_and_wait(2).unwrap();
    let mut batch = ring.cq().batch();
    assert_eq!(batch.next().unwrap().user_data(), 10);
    std::mem::forget(batch);
    assert_eq!(ring.cq().pop().unwrap().user_data(), 11);
    assert!(ring.cq().pop().is_none());
}
