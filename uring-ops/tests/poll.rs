//! Real-kernel tests of polling: one-shot, multishot, removal.

mod common;

use common::pipe;
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd;
use std::time::Duration;
use uring_ops::ops::{PollAdd, PollEvents, PollRemove};
use uring_ops::Outcome;
use uring_ops::Uring;

#[test]
fn one_shot_poll_reports_a_pipe_becoming_readable() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, PollAdd);
    let (rx, tx) = pipe();
    let t = ring.push(PollAdd::new(&rx, PollEvents::IN)).unwrap();
    // Nothing to read yet: the poll stays pending.
    let t = match ring.wait_timeout(t, Duration::from_millis(50)) {
        Ok(Outcome::Pending(t)) => t,
        other => panic!("the poll completed on an empty pipe: {other:?}"),
    };
    std::fs::File::from(tx).write_all(b"x").unwrap();
    let events = ring.wait(t).unwrap().unwrap();
    assert!(events.contains(PollEvents::IN), "{events:?}");
    assert!(
        !events.contains(PollEvents::OUT),
        "not asked for: {events:?}"
    );
}

#[test]
fn one_shot_poll_on_a_closed_writer_reports_hangup() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, PollAdd);
    let (rx, tx) = pipe();
    drop(tx);
    let t = ring.push(PollAdd::new(&rx, PollEvents::IN)).unwrap();
    let events = ring.wait(t).unwrap().unwrap();
    assert!(events.contains(PollEvents::HUP), "{events:?}");
}

#[test]
fn multishot_poll_fires_on_every_readiness_until_removed() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, PollAdd);
    require_kernel!(5, 13, "multishot poll (IORING_POLL_ADD_MULTI)");
    let (rx, tx) = pipe();
    let mut rx_file = std::fs::File::from(rx.as_fd().try_clone_to_owned().unwrap());
    let mut tx = std::fs::File::from(tx);
    let t = ring
        .push(PollAdd::new(&rx, PollEvents::IN).multishot())
        .unwrap();
    ring.submit().unwrap();
    // No readiness yet: nothing arrives.
    assert!(ring
        .wait_items(&t, Duration::from_millis(30))
        .unwrap()
        .is_empty());
    let mut seen = 0;
    for round in 0..4u8 {
        tx.write_all(&[round; 3]).unwrap();
        let items = ring.wait_items(&t, Duration::from_secs(5)).unwrap();
        assert!(
            !items.is_empty(),
            "round {round}: no completion flagged MORE (op ended: {})",
            ring.is_done(&t)
        );
        for ev in &items {
            let ev = ev.as_ref().unwrap();
            assert!(ev.contains(PollEvents::IN), "round {round}: {ev:?}");
        }
        seen += items.len();
        // Every completion so far carried IORING_CQE_F_MORE: the op is still in flight.
        assert!(!ring.is_done(&t), "round {round}: the multishot poll ended");
        let mut back = [0u8; 3];
        rx_file.read_exact(&mut back).unwrap();
        assert_eq!(back, [round; 3]);
    }
    assert!(seen >= 4, "one completion per readiness at least: {seen}");

    let remove = ring.push(PollRemove::ticket(&t)).unwrap();
    ring.wait(remove).unwrap().unwrap();
    // The last completion (without MORE) says the poll was cancelled.
    let out = ring.wait(t).unwrap();
    let err = out.last.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
    assert!(out.items.iter().all(|e| e.is_ok()));
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn poll_remove_of_a_one_shot_poll_cancels_it() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, PollRemove);
    let (rx, _tx) = pipe();
    let t = ring.push(PollAdd::new(&rx, PollEvents::IN)).unwrap();
    ring.submit().unwrap();
    let remove = ring.push(PollRemove::ticket(&t)).unwrap();
    ring.wait(remove).unwrap().unwrap();
    let err = ring.wait(t).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
}

#[test]
fn poll_remove_of_an_unknown_key_is_enoent() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, PollRemove);
    let t = ring.push(PollRemove::new(0x1234_5678)).unwrap();
    let err = ring.wait(t).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
}

#[test]
fn a_poll_update_changes_what_an_armed_poll_waits_for() {
    use uring_ops::ops::PollUpdate;
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, PollUpdate);
    let (rx, tx) = common::pipe();
    // Kept open: a closed writer would report a hang-up, which no mask holds back.
    let mut tx = std::fs::File::from(tx);
    tx.write_all(b"ready").unwrap();
    // Readable already, but it waits for priority data only.
    let t = ring.push(PollAdd::new(&rx, PollEvents::PRI)).unwrap();
    ring.submit().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(10));
    ring.reap();
    assert!(!ring.is_done(&t));
    let u = ring.push(PollUpdate::new(&t, PollEvents::IN)).unwrap();
    ring.wait(u).unwrap().unwrap();
    let ready = ring.wait(t).unwrap().unwrap();
    assert!(ready.contains(PollEvents::IN), "{ready:?}");
    // Nothing armed under that key any more.
    let t = ring.push(PollAdd::new(&rx, PollEvents::IN)).unwrap();
    while !ring.is_done(&t) {
        ring.submit_and_wait(1).unwrap();
        ring.reap();
    }
    let u = ring.push(PollUpdate::new(&t, PollEvents::OUT)).unwrap();
    assert_eq!(
        ring.wait(u).unwrap().unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
    ring.wait(t).unwrap().unwrap();
    drop(tx);
}
