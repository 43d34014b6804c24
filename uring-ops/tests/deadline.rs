//! A timeout too long for `Instant` to represent (`Duration::MAX`) means no deadline: every
//! timed wait of the library blocks until what it waits for arrives, instead of panicking on
//! the overflow ("overflow when adding duration to instant").

mod common;

use common::{pipe, tagged_nop};
use std::io::Write as _;
use std::thread;
use std::time::Duration;
use uring_ops::ops::{PollAdd, PollEvents, Read};
use uring_ops::{Context, Uring};

/// Writes `data` into the pipe's write end after a short delay, from another thread, so that
/// the wait that needs it has blocked by then.
fn write_later(tx: std::os::fd::OwnedFd, data: &'static [u8]) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        std::fs::File::from(tx).write_all(data).unwrap();
    })
}

#[test]
fn uring_wait_timeout_of_duration_max_waits_for_the_op() {
    let mut ring = Uring::new(8).unwrap();
    let (rx, tx) = pipe();
    let t = ring
        .push(Read::new(&rx, Vec::with_capacity(4), u64::MAX))
        .unwrap();
    let writer = write_later(tx, b"late");
    let (n, buf) = ring.wait_timeout(t, Duration::MAX).unwrap().done().unwrap();
    writer.join().unwrap();
    assert_eq!(n.unwrap(), 4);
    assert_eq!(buf, b"late");
}

#[test]
fn uring_wait_items_of_duration_max_waits_for_an_item() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, PollAdd);
    require_kernel!(5, 13, "multishot poll (IORING_POLL_ADD_MULTI)");
    let (rx, tx) = pipe();
    let t = ring
        .push(PollAdd::new(&rx, PollEvents::IN).multishot())
        .unwrap();
    let writer = write_later(tx, b"x");
    let items = ring.wait_items(&t, Duration::MAX).unwrap();
    writer.join().unwrap();
    assert!(!items.is_empty());
    assert!(items[0].as_ref().unwrap().contains(PollEvents::IN));
    assert!(ring.detach(t));
}

#[test]
fn uring_cancel_all_of_duration_max_waits_for_the_cancellations() {
    let mut ring = Uring::new(8).unwrap();
    let (rx, _tx) = pipe();
    let t = ring
        .push(Read::new(&rx, Vec::with_capacity(4), u64::MAX))
        .unwrap();
    ring.submit().unwrap();
    assert_eq!(ring.cancel_all(Duration::MAX), 0);
    assert_eq!(ring.in_flight(), 0);
    let (n, _) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
}

#[test]
fn context_wait_timeout_of_duration_max_waits_for_the_op() {
    let ctx = Context::new(8).unwrap();
    let (rx, tx) = pipe();
    let t = ctx
        .push(Read::new(&rx, Vec::with_capacity(4), u64::MAX))
        .unwrap();
    let writer = write_later(tx, b"late");
    let (n, buf) = ctx.wait_timeout(t, Duration::MAX).unwrap().done().unwrap();
    writer.join().unwrap();
    assert_eq!(n.unwrap(), 4);
    assert_eq!(buf, b"late");
    let (nop, want) = tagged_nop(3);
    let nop = ctx.push(nop).unwrap();
    assert_eq!(
        ctx.wait_timeout(nop, Duration::MAX)
            .unwrap()
            .done()
            .unwrap()
            .unwrap(),
        want
    );
}

#[test]
fn context_wait_completions_timeout_of_duration_max_waits_for_a_completion() {
    let ctx = Context::new(8).unwrap();
    let (rx, tx) = pipe();
    let t = ctx
        .push_tagged(Read::new(&rx, Vec::with_capacity(2), u64::MAX), 42)
        .unwrap();
    let writer = write_later(tx, b"ok");
    let done = ctx.wait_completions_timeout(Duration::MAX).unwrap();
    writer.join().unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].tag(), done[0].res()), (42, 2));
    assert_eq!(ctx.wait(t).unwrap().1, b"ok");
}
