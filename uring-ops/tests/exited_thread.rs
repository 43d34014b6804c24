//! Ops submitted by a thread that has exited since.
//!
//! The kernel ties a request to the thread that submitted it. A link timeout whose timer fires
//! after that thread has exited runs its work in a kernel worker, which completes the timeout
//! (`-ECANCELED` on Linux 6.18, `-ENOENT` on 6.1) but does not cancel the link it
//! guards. A read of a pipe nobody writes would then never complete, nor would its chain: the
//! ring cancels such a link itself when it sees the timeout's completion.

mod common;

use common::pipe;
use std::thread;
use std::time::{Duration, Instant};
use uring_ops::ops::{LinkTimeout, LinkTimeoutOutcome, Read, Timeout, TimeoutFired};
use uring_ops::Fd;
use uring_ops::Outcome;
use uring_ops::{Chain, Context, Linked, Uring};

/// The chain of the tests: a read of a pipe nobody writes, with a 10 ms link timeout.
fn guarded_read(rx: &Fd) -> Chain<(Read<Vec<u8>>, LinkTimeout)> {
    Chain::new(Read::new(rx, Vec::with_capacity(4), u64::MAX))
        .link_timeout(Duration::from_millis(10))
}

type Output = (
    Linked<(std::io::Result<usize>, Vec<u8>)>,
    Linked<std::io::Result<LinkTimeoutOutcome>>,
);

/// What the chain must end with: the read cancelled (it ran, and was cancelled: by the kernel
/// when the timeout fired for a live thread, by the ring otherwise), and the timeout not an
/// error the caller must handle beyond what the kernel said.
fn check(what: &str, out: Output, waited: Duration) {
    let (read, timeout) = out;
    let (res, buf) = read.into_inner();
    assert_eq!(
        res.unwrap_err().raw_os_error(),
        Some(libc::ECANCELED),
        "{what}: the read"
    );
    assert!(buf.is_empty(), "{what}: {buf:?}");
    // The kernel's word for the timeout, whatever it is (-ETIME, -ECANCELED, -ENOENT).
    let timeout = timeout.into_inner();
    assert!(
        matches!(
            &timeout,
            Ok(LinkTimeoutOutcome::Fired | LinkTimeoutOutcome::Disarmed)
        ) || timeout.as_ref().unwrap_err().raw_os_error() == Some(libc::ENOENT),
        "{what}: the timeout: {timeout:?}"
    );
    assert!(waited < Duration::from_secs(5), "{what}: took {waited:?}");
}

#[test]
fn a_context_chain_pushed_by_an_exited_thread_completes() {
    let ctx = Context::new(8).unwrap();
    let (rx, _tx) = pipe();
    let t = thread::scope(|s| {
        s.spawn(|| ctx.push(guarded_read(&rx)).map_err(|e| e.error).unwrap())
            .join()
            .unwrap()
    });
    // The pushing thread has exited; the timer fires 10 ms after the push.
    let start = Instant::now();
    match ctx.wait_timeout(t, Duration::from_secs(5)) {
        Ok(Outcome::Done(out)) => check("Context", out, start.elapsed()),
        Ok(Outcome::Pending(_)) => {
            panic!("the chain did not complete in 5 s: its read was never cancelled")
        }
        Err(e) => panic!("{e}"),
    }
    assert_eq!(ctx.in_flight(), 0);
}

#[test]
fn a_uring_chain_submitted_by_an_exited_thread_completes() {
    let (rx, _tx) = pipe();
    // A ring handed to another thread after its first owner submitted and exited.
    let (mut ring, t) = thread::spawn(move || {
        let mut ring = Uring::new(8).unwrap();
        let t = ring.push(guarded_read(&rx)).map_err(|e| e.error).unwrap();
        ring.submit().unwrap();
        (ring, t)
    })
    .join()
    .unwrap();
    let start = Instant::now();
    match ring.wait_timeout(t, Duration::from_secs(5)) {
        Ok(Outcome::Done(out)) => check("Uring", out, start.elapsed()),
        Ok(Outcome::Pending(_)) => {
            panic!("the chain did not complete in 5 s: its read was never cancelled")
        }
        Err(e) => panic!("{e}"),
    }
    assert_eq!(ring.in_flight(), 0);
}

/// The same chain from a live thread: the kernel cancels the read itself when the timeout
/// fires (`-ETIME`), and the ring sends no cancel of its own.
#[test]
fn a_chain_of_a_live_thread_times_out_as_usual() {
    let mut ring = Uring::new(8).unwrap();
    let (rx, _tx) = pipe();
    let t = ring.push(guarded_read(&rx)).unwrap();
    let start = Instant::now();
    let (read, timeout) = ring.wait(t).unwrap();
    let waited = start.elapsed();
    assert!(matches!(
        timeout,
        Linked::Ran(Ok(LinkTimeoutOutcome::Fired))
    ));
    check("live", (read, timeout), waited);
}

/// Pushes `op` on `ctx` from a thread that exits right after.
fn push_from_exiting_thread<T: uring_ops::Submit>(ctx: &Context, op: T) -> uring_ops::Ticket<T> {
    thread::scope(|s| {
        s.spawn(|| ctx.push(op).map_err(|e| e.error).unwrap())
            .join()
            .unwrap()
    })
}

/// A read waiting for its pipe, of a thread that has exited: when the pipe becomes ready the
/// kernel completes it with `ECANCELED`, reading nothing (what "Threads" on `Context` says).
#[test]
fn a_read_of_an_exited_thread_is_cancelled_when_its_pipe_becomes_ready() {
    let ctx = Context::new(8).unwrap();
    let (rx, tx) = pipe();
    let read = Read::new(&rx, Vec::with_capacity(4), u64::MAX);
    let t = push_from_exiting_thread(&ctx, read);
    let t = match ctx.wait_timeout(t, Duration::from_millis(100)) {
        Ok(Outcome::Pending(t)) => t,
        other => panic!("the read completed before its pipe was written: {other:?}"),
    };
    std::io::Write::write_all(&mut std::fs::File::from(tx), b"data").unwrap();
    let (res, buf) = ctx
        .wait_timeout(t, Duration::from_secs(5))
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert!(buf.is_empty(), "{buf:?}");
}

/// A timeout of a thread that has exited still fires.
#[test]
fn a_timeout_of_an_exited_thread_fires() {
    let ctx = Context::new(8).unwrap();
    let t = push_from_exiting_thread(&ctx, Timeout::new(Duration::from_millis(20)));
    let fired = ctx
        .wait_timeout(t, Duration::from_secs(5))
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(fired.unwrap(), TimeoutFired::Expired);
}
