//! Ring setup on the real kernel: what the builder refuses before the syscall, what the kernel
//! answers, and that rings made with each setup flag actually complete work.
// Real io_uring system calls: Miri cannot run them (the sim tests cover Miri).
#![cfg(not(miri))]

mod common;

use common::{build_or_skip, push_nops, push_timeout, skip, timespec, Tally};
use std::os::fd::AsFd;
use std::time::Duration;
use uring_core::{sys, Builder, Error, Features, Ring, SetupFlags, MAX_CQ_ENTRIES, MAX_ENTRIES};

/// Builds with `b`, expecting a refusal; also checks the simulated backend refuses the same way
/// (both go through the same validation, before any system call).
fn refused(b: Builder) -> Error {
    let e = b.build().expect_err("the builder should refuse this");
    assert!(
        !matches!(e, Error::Os { .. }),
        "refused by the kernel, not before the syscall: {e}"
    );
    let sim = b
        .build_sim()
        .expect_err("the simulated setup should refuse it too");
    assert_eq!(sim.to_string(), e.to_string());
    e
}

#[test]
fn refuses_zero_entries() {
    assert!(matches!(refused(Builder::new(0)), Error::ZeroEntries));
    // Clamping does not make zero valid.
    assert!(matches!(
        refused(Builder::new(0).clamp()),
        Error::ZeroEntries
    ));
}

#[test]
fn refuses_too_many_entries_without_clamp() {
    match refused(Builder::new(MAX_ENTRIES + 1)) {
        Error::TooManyEntries { requested, max } => {
            assert_eq!((requested, max), (MAX_ENTRIES + 1, MAX_ENTRIES));
        }
        e => panic!("wrong error: {e:?}"),
    }
    match refused(Builder::new(8).cq_entries(MAX_CQ_ENTRIES + 1)) {
        Error::TooManyCqEntries { requested, max } => {
            assert_eq!((requested, max), (MAX_CQ_ENTRIES + 1, MAX_CQ_ENTRIES));
        }
        e => panic!("wrong error: {e:?}"),
    }
    // The limits themselves are accepted.
    let ring = Builder::new(MAX_ENTRIES).build().unwrap();
    assert_eq!(ring.info().sq_entries, MAX_ENTRIES);
}

#[test]
fn refuses_cq_smaller_than_sq() {
    match refused(Builder::new(64).cq_entries(16)) {
        Error::CqSmallerThanSq { cq, sq } => assert_eq!((cq, sq), (16, 64)),
        e => panic!("wrong error: {e:?}"),
    }
    // The sizes compared, and named, are the kernel's: rounded up to powers of two.
    match refused(Builder::new(33).cq_entries(20)) {
        Error::CqSmallerThanSq { cq, sq } => assert_eq!((cq, sq), (32, 64)),
        e => panic!("wrong error: {e:?}"),
    }
    // Equal sizes are fine.
    let ring = Builder::new(64).cq_entries(64).build().unwrap();
    assert_eq!((ring.info().sq_entries, ring.info().cq_entries), (64, 64));
}

/// The builder's size rules are the kernel's: both sizes are clamped (with `CLAMP`) and
/// rounded up to powers of two before the CQ is compared with the SQ, so `new(10)
/// .cq_entries(9)` (both 16) is accepted. Checked against `io_uring_setup` itself at the edges
/// (0, 1, around powers of two, the maxima and one past them, `u32::MAX`), with and without
/// `CLAMP`: the builder refuses exactly what the kernel refuses, and otherwise the ring has the
/// kernel's sizes.
#[test]
fn size_rules_match_the_kernel() {
    let sq_sizes = [
        0,
        1,
        2,
        3,
        9,
        10,
        16,
        17,
        MAX_ENTRIES - 1,
        MAX_ENTRIES,
        MAX_ENTRIES + 1,
        u32::MAX,
    ];
    let cq_sizes = [
        None,
        Some(0),
        Some(1),
        Some(8),
        Some(9),
        Some(16),
        Some(17),
        Some(MAX_ENTRIES),
        Some(MAX_CQ_ENTRIES - 1),
        Some(MAX_CQ_ENTRIES),
        Some(MAX_CQ_ENTRIES + 1),
        Some(u32::MAX),
    ];
    let mut checked = 0;
    for clamp in [false, true] {
        for sq in sq_sizes {
            for cq in cq_sizes {
                let mut b = Builder::new(sq);
                if let Some(cq) = cq {
                    b = b.cq_entries(cq);
                }
                if clamp {
                    b = b.clamp();
                }
                let case = format!("sq {sq}, cq {cq:?}, clamp {clamp}");
                let mut params = sys::io_uring_params {
                    flags: b.setup_flags().bits(),
                    cq_entries: cq.unwrap_or(0),
                    ..Default::default()
                };
                let kernel = sys::io_uring_setup(sq, &mut params)
                    .map(|_fd| (params.sq_entries, params.cq_entries));
                match (b.build(), kernel) {
                    (Ok(ring), Ok(sizes)) => {
                        let info = ring.info();
                        assert_eq!((info.sq_entries, info.cq_entries), sizes, "{case}");
                    }
                    (Err(e), Err(k)) => {
                        assert_eq!(k.raw_os_error(), Some(libc::EINVAL), "{case}: {k}");
                        assert!(
                            !matches!(e, Error::Os { .. }),
                            "{case}: refused by the kernel, not before the syscall: {e}"
                        );
                    }
                    (Ok(ring), Err(k)) => {
                        panic!("{case}: built {:?}, the kernel refuses: {k}", ring.info())
                    }
                    (Err(e), Ok(sizes)) => {
                        panic!("{case}: refused ({e}), the kernel makes {sizes:?}")
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * sq_sizes.len() * cq_sizes.len());
}

#[test]
fn refuses_bad_flag_combinations() {
    let sqpoll = || Builder::new(8).sqpoll(Duration::from_millis(10));
    let cases: [(Builder, &str); 5] = [
        (Builder::new(8).defer_taskrun(), "SINGLE_ISSUER"),
        (Builder::new(8).sqpoll_cpu(0), "SQPOLL"),
        (Builder::new(8).taskrun_flag(), "COOP_TASKRUN"),
        (
            sqpoll().coop_taskrun(),
            "COOP_TASKRUN and TASKRUN_FLAG cannot be used with SQPOLL",
        ),
        (
            sqpoll().coop_taskrun().taskrun_flag(),
            "COOP_TASKRUN and TASKRUN_FLAG cannot be used with SQPOLL",
        ),
    ];
    for (b, names) in cases {
        let flags = b.setup_flags();
        match refused(b) {
            Error::InvalidSetup(why) => assert!(
                why.contains(names),
                "{flags:?}: the message {why:?} should name {names}"
            ),
            e => panic!("{flags:?}: wrong error {e:?}"),
        }
    }
}

#[test]
fn clamp_builds_a_huge_ring_with_clamped_sizes() {
    let ring = Builder::new(MAX_ENTRIES * 4)
        .cq_entries(MAX_CQ_ENTRIES * 4)
        .clamp()
        .build()
        .unwrap();
    let info = ring.info();
    assert_eq!(info.sq_entries, MAX_ENTRIES);
    assert_eq!(info.cq_entries, MAX_CQ_ENTRIES);
    assert!(info.flags.contains(SetupFlags::CLAMP | SetupFlags::CQSIZE));
}

#[test]
fn ring_info_reports_real_sizes_and_features() {
    // The kernel rounds up to powers of two; the CQ defaults to twice the SQ.
    let mut ring = Builder::new(100).build().unwrap();
    let info = ring.info();
    assert_eq!((info.sq_entries, info.cq_entries), (128, 256));
    assert_eq!(info.flags, SetupFlags::empty());
    assert_eq!(ring.sq().capacity(), 128);
    assert_eq!(ring.cq().capacity(), 256);

    let ring = Builder::new(100).cq_entries(300).build().unwrap();
    assert_eq!((ring.info().sq_entries, ring.info().cq_entries), (128, 512));
    assert_eq!(ring.info().flags, SetupFlags::CQSIZE);

    // Features every kernel this crate targets (5.11+) reports, typed.
    let f = ring.info().features;
    for want in [
        Features::SINGLE_MMAP,
        Features::NODROP,
        Features::SUBMIT_STABLE,
        Features::EXT_ARG,
    ] {
        assert!(f.contains(want), "{want:?} missing from {f:?}");
    }
}

/// Pushes `rounds` rounds of `per_round` NOPs through `ring`, waiting for each round, and
/// checks every completion once. Enough rounds wrap the SQ and CQ slots.
fn nops_complete(ring: &mut Ring, rounds: u32, per_round: u32) {
    let mut tally = Tally::new();
    for round in 0..rounds {
        push_nops(ring, per_round, u64::from(round * per_round));
        assert_eq!(ring.submit_and_wait(per_round).unwrap(), per_round);
        for cqe in ring.cq().batch() {
            tally.add(cqe);
        }
    }
    tally.assert_exactly(u64::from(rounds * per_round));
    assert_eq!(ring.cq().ready(), 0);
}

#[test]
fn coop_taskrun_with_taskrun_flag() {
    let b = Builder::new(8).coop_taskrun().taskrun_flag();
    let Some(mut ring) = build_or_skip("coop_taskrun_with_taskrun_flag", &b) else {
        return;
    };
    assert!(ring
        .info()
        .flags
        .contains(SetupFlags::COOP_TASKRUN | SetupFlags::TASKRUN_FLAG));
    nops_complete(&mut ring, 6, 8);
    // A timeout completes through task work. With COOP_TASKRUN the kernel runs it on the task's
    // next return to user space (any syscall or interrupt), so whether `IORING_SQ_TASKRUN` is
    // ever seen set is a race; only the completion itself is checked here (the DEFER_TASKRUN
    // test below checks the flag, where it is deterministic).
    let ts = timespec(Duration::from_millis(5));
    // SAFETY: `ts` outlives the timeout's completion, reaped below.
    unsafe { push_timeout(&mut ring, &ts, 77) };
    assert_eq!(ring.submit().unwrap(), 1);
    assert_eq!(ring.wait_timeout(1, Duration::from_secs(2)).unwrap(), 1);
    let cqe = ring.cq().pop().unwrap();
    assert_eq!((cqe.user_data(), cqe.raw_result()), (77, -libc::ETIME));
    drop(ts);
}

#[test]
fn single_issuer_with_defer_taskrun() {
    let b = Builder::new(8)
        .single_issuer()
        .defer_taskrun()
        .taskrun_flag();
    let Some(mut ring) = build_or_skip("single_issuer_with_defer_taskrun", &b) else {
        return;
    };
    nops_complete(&mut ring, 6, 8);
    taskrun_flag_forces_entering(&mut ring);
}

/// A timeout completes through task work, which on a DEFER_TASKRUN ring only runs when the
/// task enters the kernel to wait. The kernel says so with `IORING_SQ_TASKRUN`: the CQ looks
/// empty, yet a wait must enter and then finds the completion.
fn taskrun_flag_forces_entering(ring: &mut Ring) {
    let ts = timespec(Duration::from_millis(5));
    // SAFETY: `ts` outlives the timeout's completion, reaped below.
    unsafe { push_timeout(ring, &ts, 77) };
    assert_eq!(ring.submit().unwrap(), 1);
    // Wait in user space (no io_uring syscall, so no task work runs) until the kernel flags it.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !ring.cq().kernel_has_more() {
        assert!(
            std::time::Instant::now() < deadline,
            "IORING_SQ_TASKRUN never set"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_ne!(ring.sq().raw_flags() & sys::IORING_SQ_TASKRUN, 0);
    assert_eq!(ring.cq().ready(), 0, "the completion needs task work first");
    // `wait(1)` must not trust the empty-looking CQ: it enters, the task work runs, and the
    // timeout's CQE appears.
    assert_eq!(ring.wait_timeout(1, Duration::from_secs(2)).unwrap(), 1);
    let cqe = ring.cq().pop().unwrap();
    assert_eq!((cqe.user_data(), cqe.raw_result()), (77, -libc::ETIME));
    assert!(!ring.cq().kernel_has_more());
    drop(ts);
}

#[test]
fn no_sqarray() {
    let b = Builder::new(4).no_sqarray();
    let Some(mut ring) = build_or_skip("no_sqarray", &b) else {
        return;
    };
    assert!(ring.info().flags.contains(SetupFlags::NO_SQARRAY));
    nops_complete(&mut ring, 5, 3); // 15 SQEs through 4 slots: the ring order wraps
}

/// An SQE the kernel cannot prepare (an unknown opcode) in the middle of a batch: without
/// SUBMIT_ALL the kernel stops there and the rest stays queued (and is not overwritten); with
/// SUBMIT_ALL it consumes the whole batch.
fn batch_with_bad_sqe(ring: &mut Ring) -> u32 {
    let mut r = ring.sq().reserve(8).unwrap();
    for i in 0..8 {
        let sqe = r.get(i).unwrap();
        sqe.set_user_data(u64::from(i));
        sqe.set_opcode(if i == 4 {
            0xfe
        } else {
            sys::IORING_OP_NOP as u8
        });
    }
    // SAFETY: NOPs and an unknown opcode name no memory.
    unsafe { r.commit() };
    ring.submit().unwrap()
}

#[test]
fn submit_all_keeps_going_after_a_bad_sqe() {
    // Without SUBMIT_ALL: 5 consumed (the bad one included), 3 left queued.
    let mut ring = Builder::new(8).build().unwrap();
    assert_eq!(batch_with_bad_sqe(&mut ring), 5);
    assert_eq!(ring.sq().pending(), 3);
    assert_eq!(ring.sq().submit().unwrap(), 3);
    ring.wait(8).unwrap();
    // In any order: 6.1 posts the refused SQE's completion at once and the NOPs' at the end of
    // the submission, later kernels all at the end.
    let mut got: Vec<_> = ring
        .cq()
        .batch()
        .map(|c| (c.user_data(), c.raw_result()))
        .collect();
    got.sort_unstable();
    let want: Vec<_> = (0..8u64)
        .map(|i| (i, if i == 4 { -libc::EINVAL } else { 0 }))
        .collect();
    assert_eq!(got, want);

    let b = Builder::new(8).submit_all();
    let Some(mut ring) = build_or_skip("submit_all_keeps_going_after_a_bad_sqe", &b) else {
        return;
    };
    assert_eq!(batch_with_bad_sqe(&mut ring), 8);
    assert_eq!(ring.sq().pending(), 0);
    ring.wait(8).unwrap();
    let mut got: Vec<_> = ring
        .cq()
        .batch()
        .map(|c| (c.user_data(), c.raw_result()))
        .collect();
    got.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn sqe128() {
    let b = Builder::new(4).sqe128();
    let Some(mut ring) = build_or_skip("sqe128", &b) else {
        return;
    };
    {
        let mut r = ring.sq().reserve(2).unwrap();
        let cmd = r
            .big_cmd(1)
            .expect("the 80-byte command area on an SQE128 ring");
        assert_eq!(cmd, &[0u8; 80], "reserved SQEs are zeroed, all 128 bytes");
        cmd.fill(0xaa);
        assert!(r.big_cmd(2).is_none(), "past the reservation");
        // Dropped without commit: the slots are given back.
    }
    nops_complete(&mut ring, 5, 3);

    // A slot comes back zeroed in all 128 bytes after a previous use filled its command area:
    // stale command bytes would reach a driver's URING_CMD.
    for round in 0..3u64 {
        for slot in 0..4u32 {
            let mut r = ring.sq().reserve(1).unwrap();
            let cmd = r.big_cmd(0).unwrap();
            assert_eq!(
                cmd, &[0u8; 80],
                "round {round}, slot {slot}: reserved SQE not zeroed"
            );
            cmd.fill(0x5a);
            r.first()
                .set_opcode(sys::IORING_OP_NOP as u8)
                .set_user_data(round * 4 + u64::from(slot));
            // SAFETY: a NOP names no memory (the command bytes are ignored).
            unsafe { r.commit() };
            ring.submit_and_wait(1).unwrap();
            assert_eq!(ring.cq().pop().unwrap().raw_result(), 0);
        }
    }
    // A 64-byte-SQE ring has no command area.
    let mut plain = Ring::new(4).unwrap();
    assert!(plain.sq().reserve(1).unwrap().big_cmd(0).is_none());
}

#[test]
fn cqe32() {
    let b = Builder::new(4).cqe32();
    let Some(mut ring) = build_or_skip("cqe32", &b) else {
        return;
    };
    // Plain NOPs, through every CQ slot twice: the extra half reads as zeros.
    let mut tally = Tally::new();
    for round in 0..4u32 {
        push_nops(&mut ring, 4, u64::from(round * 4));
        ring.submit_and_wait(4).unwrap();
        for cqe in ring.cq().batch() {
            assert_eq!(cqe.extra(), [0, 0]);
            tally.add(cqe);
        }
    }
    tally.assert_exactly(16);

    // IORING_NOP_CQE32 (Linux 6.18) echoes `off` and `addr` into the extra words.
    for i in 0..3u64 {
        let mut r = ring.sq().reserve(1).unwrap();
        r.first()
            .set_opcode(sys::IORING_OP_NOP as u8)
            .set_nop_flags(sys::IORING_NOP_CQE32)
            .set_off(0x1111_0000 + i)
            .set_addr(0x2222_0000 + i)
            .set_user_data(100 + i);
        // SAFETY: a NOP reads nothing through `addr`.
        unsafe { r.commit() };
    }
    ring.submit_and_wait(3).unwrap();
    let cqes: Vec<_> = ring.cq().batch().collect();
    assert_eq!(cqes.len(), 3);
    if cqes[0].raw_result() == -libc::EINVAL {
        skip(
            "cqe32",
            "this kernel's NOP has no IORING_NOP_CQE32 (extra words checked as zeros only)",
        );
        return;
    }
    for (i, cqe) in (0u64..).zip(&cqes) {
        assert_eq!((cqe.user_data(), cqe.raw_result()), (100 + i, 0));
        assert_eq!(cqe.extra(), [0x1111_0000 + i, 0x2222_0000 + i]);
    }
}

#[test]
fn attach_wq_shares_workers() {
    let first = Ring::new(8).unwrap();
    let b = Builder::new(8).attach_wq(first.as_fd());
    let Some(mut ring) = build_or_skip("attach_wq_shares_workers", &b) else {
        return;
    };
    assert!(ring.info().flags.contains(SetupFlags::ATTACH_WQ));
    let mut tally = Tally::new();
    for round in 0..3u32 {
        push_nops(&mut ring, 8, u64::from(round * 8));
        ring.submit_and_wait(8).unwrap();
        for cqe in ring.cq().batch() {
            tally.add(cqe);
        }
    }
    // Then NOPs with IOSQE_ASYNC, which go to the (shared) io-wq workers.
    let mut r = ring.sq().reserve(8).unwrap();
    for i in 0..8 {
        r.get(i)
            .unwrap()
            .set_opcode(sys::IORING_OP_NOP as u8)
            .set_flags(uring_core::SqeFlags::ASYNC)
            .set_user_data(24 + u64::from(i));
    }
    // SAFETY: NOPs name no memory.
    unsafe { r.commit() };
    ring.submit_and_wait(8).unwrap();
    for cqe in ring.cq().batch() {
        tally.add(cqe);
    }
    tally.assert_exactly(32);
    drop(first);

    // Attaching to something that is not a ring is the kernel's refusal, reported as such.
    let not_a_ring = std::fs::File::open("/dev/null").unwrap();
    match Builder::new(8).attach_wq(not_a_ring.as_fd()).build() {
        Err(e @ Error::Os { .. }) => assert!(
            matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EBADF)),
            "{e}"
        ),
        other => panic!("attach to /dev/null: {other:?}"),
    }
}

/// Flag bits the queues cannot drive (here `IORING_SETUP_CQE_MIXED`, which changes the CQ
/// layout) are refused before the kernel is asked.
#[test]
fn unknown_setup_flags_are_refused() {
    let raw = uring_core::sys::IORING_SETUP_CQE_MIXED;
    let b = Builder::new(4).flags(uring_core::SetupFlags::from_bits_retain(raw));
    match b.build() {
        Err(Error::UnknownSetupFlags(bits)) => assert_eq!(bits, raw),
        other => panic!("expected UnknownSetupFlags, got {other:?}"),
    }
}
