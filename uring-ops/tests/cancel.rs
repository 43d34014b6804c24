//! Real-kernel tests of async cancellation: by key, by fd, all matches, any op.

mod common;

use common::pipe;
use std::time::{Duration, Instant};
use uring_ops::core::Builder;
use uring_ops::ops::{AsyncCancel, Read};
use uring_ops::{Fd, Ticket, Uring, DROP_DRAIN_TIMEOUT};

type PendingRead = Ticket<Read<Vec<u8>>>;

/// Queues a read of an empty pipe (it stays pending) and hands it to the kernel.
fn pending_read(ring: &mut Uring, fd: &Fd) -> PendingRead {
    let t = ring.push(Read::new(fd, vec![7u8; 8], u64::MAX)).unwrap();
    ring.submit().unwrap();
    t
}

fn assert_cancelled(ring: &mut Uring, t: PendingRead) {
    let (r, buf) = ring.wait(t).unwrap();
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(buf, vec![7u8; 8], "the buffer comes back untouched");
}

#[test]
fn cancel_by_key() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, AsyncCancel);
    let (rx, _tx) = pipe();
    let read = pending_read(&mut ring, &rx);
    let c = ring.push(AsyncCancel::ticket(&read)).unwrap();
    assert_eq!(ring.wait(c).unwrap().unwrap(), 0);
    assert_cancelled(&mut ring, read);
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn cancel_by_unknown_key_is_enoent() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, AsyncCancel);
    let c = ring.push(AsyncCancel::new(0xdead_beef)).unwrap();
    let err = ring.wait(c).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
}

#[test]
fn cancel_by_fd() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, AsyncCancel);
    require_kernel!(5, 19, "IORING_ASYNC_CANCEL_FD");
    let (rx, _tx) = pipe();
    let (other, _other_tx) = pipe();
    let read = pending_read(&mut ring, &rx);
    let untouched = pending_read(&mut ring, &other);
    let c = ring.push(AsyncCancel::fd(&rx)).unwrap();
    assert_eq!(ring.wait(c).unwrap().unwrap(), 0);
    assert_cancelled(&mut ring, read);
    // The read of the other pipe was not matched.
    assert!(!ring.is_done(&untouched));
    assert_eq!(ring.in_flight(), 1);
    let c = ring.push(AsyncCancel::ticket(&untouched)).unwrap();
    assert_eq!(ring.wait(c).unwrap().unwrap(), 0);
    assert_cancelled(&mut ring, untouched);
}

#[test]
fn cancel_all_on_an_fd_returns_the_count() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, AsyncCancel);
    require_kernel!(5, 19, "IORING_ASYNC_CANCEL_ALL");
    let (rx, _tx) = pipe();
    let reads: Vec<_> = (0..3).map(|_| pending_read(&mut ring, &rx)).collect();
    let c = ring.push(AsyncCancel::fd(&rx).all()).unwrap();
    assert_eq!(ring.wait(c).unwrap().unwrap(), 3);
    for t in reads {
        assert_cancelled(&mut ring, t);
    }
    // Nothing left to match: ALL reports zero, not an error.
    let c = ring.push(AsyncCancel::fd(&rx).all()).unwrap();
    assert_eq!(ring.wait(c).unwrap().unwrap(), 0);
}

#[test]
fn cancel_all_by_key_returns_the_count() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, AsyncCancel);
    require_kernel!(5, 19, "IORING_ASYNC_CANCEL_ALL");
    let (rx, _tx) = pipe();
    let read = pending_read(&mut ring, &rx);
    let c = ring.push(AsyncCancel::ticket(&read).all()).unwrap();
    assert_eq!(ring.wait(c).unwrap().unwrap(), 1);
    assert_cancelled(&mut ring, read);
}

#[test]
fn cancel_any_cancels_every_op_in_flight() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, AsyncCancel);
    require_kernel!(5, 19, "IORING_ASYNC_CANCEL_ANY");
    let (a, _atx) = pipe();
    let (b, _btx) = pipe();
    let reads = [
        pending_read(&mut ring, &a),
        pending_read(&mut ring, &b),
        pending_read(&mut ring, &b),
    ];
    let c = ring.push(AsyncCancel::any()).unwrap();
    assert_eq!(ring.wait(c).unwrap().unwrap(), 3);
    for t in reads {
        assert_cancelled(&mut ring, t);
    }
    assert_eq!(ring.in_flight(), 0);
}

/// On an SQPOLL ring the poller empties the SQ on its own time: cancelling everything with
/// the SQ full (as a drop may find it) waits for room for its cancel SQE instead of giving up
/// on cancelling and leaving the ops to the drain timeout.
#[test]
fn cancel_all_on_a_full_sqpoll_ring() {
    let idle = Duration::from_millis(5);
    let mut ring = match Uring::with_builder(&Builder::new(4).sqpoll(idle)) {
        Ok(ring) => ring,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => {
            common::skip(format_args!(
                "cancel_all_on_a_full_sqpoll_ring: no SQPOLL ring here: {e}"
            ));
            return;
        }
        Err(e) => panic!("setup: {e}"),
    };
    require_op!(ring, AsyncCancel);
    require_kernel!(5, 19, "IORING_ASYNC_CANCEL_ANY");
    // The poller falls asleep with nothing to do; the reads fill the SQ without a submit.
    std::thread::sleep(idle * 10);
    let (rx, _tx) = pipe();
    let reads: Vec<PendingRead> = (0..4)
        .map(|_| ring.push(Read::new(&rx, vec![7u8; 8], u64::MAX)).unwrap())
        .collect();
    let t0 = Instant::now();
    assert_eq!(
        ring.cancel_all(DROP_DRAIN_TIMEOUT),
        0,
        "reads left in flight"
    );
    assert!(t0.elapsed() < DROP_DRAIN_TIMEOUT);
    for t in reads {
        assert_cancelled(&mut ring, t);
    }
}
