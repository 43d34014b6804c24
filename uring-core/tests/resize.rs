//! Resizing live rings (`IORING_REGISTER_RESIZE_RINGS`) on the real kernel: SQEs queued,
//! completions unread, completions in the kernel's overflow list and ops in flight all come
//! through once each, and the queues use the new memory (a stale mapping would never see the
//! completions posted after the resize, nor hold more SQEs than the old SQ).
// Real io_uring system calls: Miri cannot run them.
#![cfg(not(miri))]

mod common;

use common::{push_nops, push_timeout, reap_until_expecting, skip, timespec, Tally};
use std::time::Duration;
use uring_core::{Builder, CompletionQueue, Error, Kernel, Resize, Ring, SetupFlags};

/// A `DEFER_TASKRUN` ring (the only kind the kernel resizes), or `None` (reported) where the
/// kernel cannot make one or cannot resize.
fn resizable(test: &str, b: Builder) -> Option<Ring> {
    let b = b.single_issuer().defer_taskrun();
    let mut ring = common::build_or_skip(test, &b)?;
    // A resize to the same sizes tells whether the kernel has the op at all.
    let same = Resize::new(ring.info().sq_entries).cq_entries(ring.info().cq_entries);
    match ring.resize(&same) {
        Ok(_) => Some(ring),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            skip(
                test,
                format_args!("no IORING_REGISTER_RESIZE_RINGS (Linux 6.13): {e}"),
            );
            None
        }
        Err(e) => panic!("{test}: resizing to the same sizes failed: {e}"),
    }
}

/// User data of the timeouts (the NOPs count up from 0).
const TIMEOUTS: u64 = 1000;

#[test]
fn grow_with_sqes_queued_completions_unread_overflowed_and_in_flight() {
    let test = "grow_with_sqes_queued_completions_unread_overflowed_and_in_flight";
    let Some(mut ring) = resizable(test, Builder::new(4).cq_entries(8)) else {
        return;
    };
    assert_eq!((ring.info().sq_entries, ring.info().cq_entries), (4, 8));
    // 24 timeouts in flight, firing after the resize: their completions can only be seen
    // through the new CQ.
    let ts = timespec(Duration::from_millis(300));
    for batch in 0..6u64 {
        for i in 0..4 {
            // SAFETY: `ts` outlives every completion: the test reaps them all below.
            unsafe { push_timeout(&mut ring, &ts, TIMEOUTS + batch * 4 + i) };
        }
        assert_eq!(ring.submit().unwrap(), 4);
    }
    // 16 NOPs complete at once: 8 fill the CQ, 8 wait in the kernel's overflow list.
    for batch in 0..4 {
        push_nops(&mut ring, 4, batch * 4);
        assert_eq!(ring.submit().unwrap(), 4);
    }
    // 3 NOPs committed and not submitted: the SQ holds them across the resize.
    push_nops(&mut ring, 3, 16);
    assert_eq!(ring.cq().ready(), 8, "the old CQ is full");

    let info = ring.resize(&Resize::new(16).cq_entries(64)).unwrap();
    assert_eq!((info.sq_entries, info.cq_entries), (16, 64));
    assert_eq!(ring.info(), info);
    assert_eq!((ring.sq().capacity(), ring.cq().capacity()), (16, 64));
    assert_eq!(ring.sq().pending(), 3, "the queued SQEs are still queued");
    assert_eq!(
        ring.cq().ready(),
        8,
        "the unread completions are still ready"
    );

    // The new SQ takes 13 more at once (the old one held 4).
    push_nops(&mut ring, 13, 19);
    assert_eq!(ring.submit().unwrap(), 16);

    let mut tally = Tally::new();
    reap_until_expecting(
        &mut ring,
        &mut tally,
        32 + 24,
        Duration::from_secs(10),
        |cqe| {
            if cqe.user_data() >= TIMEOUTS {
                -libc::ETIME
            } else {
                0
            }
        },
    );
    for ud in (0..32).chain(TIMEOUTS..TIMEOUTS + 24) {
        assert!(tally.contains(ud), "user data {ud} never completed");
    }
    assert!(ring.cq().batch().next().is_none(), "nothing more");
}

#[test]
fn shrink_keeps_what_fits_and_refuses_what_does_not() {
    let test = "shrink_keeps_what_fits_and_refuses_what_does_not";
    let Some(mut ring) = resizable(test, Builder::new(16).cq_entries(32)) else {
        return;
    };
    push_nops(&mut ring, 12, 0);
    assert_eq!(ring.submit().unwrap(), 12);
    assert_eq!(ring.cq().ready(), 12);
    // 12 unread completions cannot go into 8 CQ slots: refused, nothing changed.
    let e = ring.resize(&Resize::new(4).cq_entries(8)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EOVERFLOW), "{e}");
    assert_eq!((ring.info().sq_entries, ring.info().cq_entries), (16, 32));
    // 5 queued SQEs cannot go into 4 SQ slots either.
    push_nops(&mut ring, 5, 12);
    let e = ring.resize(&Resize::new(4).cq_entries(32)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EOVERFLOW), "{e}");
    assert_eq!(ring.sq().pending(), 5);
    // Read 6 and submit the 5: the 11 unread completions fit a CQ of 16.
    let mut tally = Tally::new();
    for cqe in ring.cq().batch().take(6) {
        tally.add(cqe);
    }
    assert_eq!(ring.submit().unwrap(), 5);
    let info = ring.resize(&Resize::new(2).cq_entries(16)).unwrap();
    assert_eq!((info.sq_entries, info.cq_entries), (2, 16));
    assert_eq!(ring.cq().ready(), 11);
    reap_until_expecting(&mut ring, &mut tally, 17, Duration::from_secs(5), |_| 0);
    tally.assert_exactly(17);
    // The SQ is 2 now.
    assert!(matches!(
        ring.sq().reserve(3),
        Err(Error::NoSpace { capacity: 2, .. })
    ));
}

/// 128-byte SQEs and 32-byte CQEs carried over: kernels without the 2026 fix copy them wrong,
/// the queues copy them again.
#[test]
fn sqe128_and_cqe32_entries_carry_over() {
    let test = "sqe128_and_cqe32_entries_carry_over";
    let Some(mut ring) = resizable(test, Builder::new(8).cq_entries(8).sqe128().cqe32()) else {
        return;
    };
    // Slots 0..6 of the CQ hold completions 0..6; slots 6, 7, 0, 1, 2 of the SQ hold NOPs
    // 6..11 (the SQ has wrapped, so positions and slots differ).
    push_nops(&mut ring, 6, 0);
    assert_eq!(ring.submit().unwrap(), 6);
    push_nops(&mut ring, 5, 6);
    let info = ring.resize(&Resize::new(32).cq_entries(64)).unwrap();
    assert!(info.flags.contains(SetupFlags::SQE128 | SetupFlags::CQE32));
    assert_eq!(ring.cq().ready(), 6);
    assert_eq!(ring.sq().pending(), 5);
    assert_eq!(ring.submit().unwrap(), 5);
    let mut tally = Tally::new();
    reap_until_expecting(&mut ring, &mut tally, 11, Duration::from_secs(5), |cqe| {
        assert_eq!(cqe.extra(), [0, 0], "a NOP's CQE32 half is zero: {cqe:?}");
        0
    });
    tally.assert_exactly(11);
}

#[test]
fn sizes_are_checked_before_the_kernel_sees_them() {
    let test = "sizes_are_checked_before_the_kernel_sees_them";
    let Some(mut ring) = resizable(test, Builder::new(8)) else {
        return;
    };
    assert!(matches!(
        ring.resize(&Resize::new(0)),
        Err(Error::ZeroEntries)
    ));
    assert!(matches!(
        ring.resize(&Resize::new(64).cq_entries(16)),
        Err(Error::CqSmallerThanSq { cq: 16, sq: 64 })
    ));
    assert!(matches!(
        ring.resize(&Resize::new(u32::MAX)),
        Err(Error::TooManyEntries { .. })
    ));
    // Clamped, the same is the kernel's largest ring.
    let info = ring.resize(&Resize::new(u32::MAX).clamp()).unwrap();
    assert_eq!(info.sq_entries, uring_core::MAX_ENTRIES);
    assert_eq!(info.cq_entries, uring_core::MAX_CQ_ENTRIES);
    push_nops(&mut ring, 1, 7);
    ring.submit_and_wait(1).unwrap();
    assert_eq!(ring.cq().pop().unwrap().user_data(), 7);
}

#[test]
fn rings_without_defer_taskrun_are_refused_unchanged() {
    let test = "rings_without_defer_taskrun_are_refused_unchanged";
    if resizable(test, Builder::new(4)).is_none() {
        return;
    }
    let mut ring = Builder::new(4).build().unwrap();
    push_nops(&mut ring, 2, 0);
    let e = ring.resize(&Resize::new(8)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    assert_eq!(ring.info().sq_entries, 4);
    ring.submit_and_wait(2).unwrap();
    assert_eq!(ring.cq().batch().count(), 2);
}

#[test]
fn sqpoll_rings_are_refused_before_the_kernel() {
    let test = "sqpoll_rings_are_refused_before_the_kernel";
    let Some(mut ring) =
        common::build_or_skip(test, &Builder::new(4).sqpoll(Duration::from_millis(10)))
    else {
        return;
    };
    assert!(matches!(
        ring.resize(&Resize::new(8)),
        Err(Error::Register {
            op: "IORING_REGISTER_RESIZE_RINGS",
            ..
        })
    ));
}

/// The kernel lets only a `SINGLE_ISSUER` ring's own thread resize it.
#[test]
fn another_thread_cannot_resize() {
    let test = "another_thread_cannot_resize";
    let Some(ring) = resizable(test, Builder::new(4)) else {
        return;
    };
    let mut ring = std::thread::spawn(move || {
        let mut ring = ring;
        let e = ring.resize(&Resize::new(8)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
        ring
    })
    .join()
    .unwrap();
    assert_eq!(ring.info().sq_entries, 4);
    ring.resize(&Resize::new(8)).unwrap();
    assert_eq!(ring.sq().capacity(), 8);
}

#[test]
fn split_halves_resize_together_and_only_together() {
    let test = "split_halves_resize_together_and_only_together";
    let Some(mut ring) = resizable(test, Builder::new(4)) else {
        return;
    };
    let mut other = Builder::new(4).build().unwrap();
    push_nops(&mut ring, 2, 0);
    let (sq, cq) = ring.split();
    let (_, other_cq): (_, &mut CompletionQueue<Kernel>) = other.split();
    assert!(matches!(
        Resize::new(8).apply_to_halves(sq, other_cq),
        Err(Error::Register { .. })
    ));
    assert_eq!(Resize::new(8).apply_to_halves(sq, cq).unwrap(), (8, 16));
    assert_eq!((sq.capacity(), cq.capacity()), (8, 16));
    assert_eq!(sq.submit_and_wait(2).unwrap(), 2);
    assert_eq!(
        cq.batch().map(|c| c.user_data()).collect::<Vec<_>>(),
        [0, 1]
    );
}
