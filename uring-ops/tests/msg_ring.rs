//! Real-kernel tests of messages between rings: a wake-up, a descriptor passed into another
//! ring's table, and raw data into a ring of uring-core.

mod common;

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uring_ops::ops::{MsgRing, OpenAt, Read, RingFd};
use uring_ops::{Context, Fd, NewSlot, Target, Uring};

#[test]
fn a_message_wakes_a_context_waiter() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, MsgRing);
    let ctx = Arc::new(Context::new(8).unwrap());
    let to = RingFd::of_context(&ctx).unwrap();
    let waiter = {
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let got = ctx
                .wait_completions_timeout(Duration::from_secs(20))
                .unwrap();
            (got.len(), start.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let t = ring.push(MsgRing::wake(&to)).unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), 0);
    let (n, waited) = waiter.join().unwrap();
    assert_eq!(n, 0, "a wake-up carries no completion");
    assert!(
        waited < Duration::from_secs(10),
        "woken by the message, not the timeout ({waited:?})"
    );
}

#[test]
fn a_descriptor_passes_into_another_rings_table() {
    let mut sender = common::ring_with_slots(8, 2);
    require_op!(sender, MsgRing);
    if !common::kernel_at_least(6, 0) {
        common::skip("passing descriptors between rings needs Linux 6.0");
        return;
    }
    let mut receiver = common::ring_with_slots(8, 4);
    let f = common::temp_file("msg-fd", b"passed along");
    let t = sender
        .push(OpenAt::path(&f.path).unwrap().into_slot(NewSlot::at(1)))
        .unwrap();
    let source = sender.wait(t).unwrap().unwrap();
    let to = RingFd::of(&receiver).unwrap();

    let t = sender
        .push(MsgRing::send_fd(&to, source, NewSlot::at(3)))
        .unwrap();
    assert_eq!(sender.wait(t).unwrap().unwrap(), 3);
    if common::kernel_at_least(5, 19) {
        let t = sender
            .push(MsgRing::send_fd(&to, source, NewSlot::alloc()))
            .unwrap();
        let slot = sender.wait(t).unwrap().unwrap();
        assert!(slot < 3, "a free slot of the receiver: {slot}");
    }
    // The receiver reads through its own slot; the completions the messages posted into it
    // are its own kind, and ignored.
    let t = receiver
        .push(Read::new(Target::fixed(3), vec![0; 32], 0))
        .unwrap();
    let (n, buf) = receiver.wait(t).unwrap();
    assert_eq!(&buf[..n.unwrap()], b"passed along");
    assert_eq!(receiver.in_flight(), 0);
    // The sender keeps its slot.
    let t = sender.push(Read::new(source, vec![0; 6], 0)).unwrap();
    assert_eq!(sender.wait(t).unwrap().0.unwrap(), 6);
    // An empty source slot.
    let t = sender
        .push(MsgRing::send_fd(&to, source, NewSlot::at(0)))
        .unwrap();
    sender.wait(t).unwrap().unwrap();
    let t = sender.push(uring_ops::ops::Close::slot(source)).unwrap();
    sender.wait(t).unwrap().unwrap();
    let t = sender
        .push(MsgRing::send_fd(&to, source, NewSlot::at(0)))
        .unwrap();
    assert_eq!(
        sender.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
}

#[test]
fn raw_data_reaches_a_uring_core_ring() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, MsgRing);
    let mut raw = uring_ops::core::Builder::new(4).build().unwrap();
    let target = Fd::new(raw.as_fd().try_clone_to_owned().unwrap());
    // SAFETY: the target is a raw ring whose owner (this test) reads the completion itself.
    let t = ring
        .push(unsafe { MsgRing::data(&target, 99, 0xabc) })
        .unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), 0);
    raw.wait(1).unwrap();
    let cqe = raw.cq().pop().unwrap();
    assert_eq!((cqe.user_data(), cqe.raw_result()), (0xabc, 99));
    // Not a ring: the kernel refuses.
    let (rx, _tx) = common::pipe();
    // SAFETY: not a ring, so nothing is posted anywhere.
    let t = ring.push(unsafe { MsgRing::data(&rx, 1, 1) }).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EBADFD)
    );
}
