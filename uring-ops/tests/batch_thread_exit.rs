//! Ops pushed in a [`Batch`](uring_ops::Batch) by a thread that has exited since: what "Threads"
//! on `Context` and on `Batch` say, checked. The kernel ties every op of a batch to the thread
//! that submits the batch (the thread that holds it, also for the SQEs a batch hands over when
//! the SQ fills, before its end); once that thread has exited, a read waiting for its pipe is
//! completed with `ECANCELED` when the pipe becomes ready (nothing is read), a timeout still
//! fires, and a chain under a link timeout still completes (the context cancels the guarded
//! link itself when the kernel does not: see tests/exited_thread.rs for the kernels' answers).
//! Ops of a live thread are unaffected, and on an SQPOLL ring the poller thread owns them all.
//!
//! Every wait is bounded: no op may be left hanging.

mod common;

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::thread;
use std::time::{Duration, Instant};
use uring_ops::core::Builder as CoreBuilder;
use uring_ops::ops::{LinkTimeoutOutcome, Read, Timeout, TimeoutFired};
use uring_ops::{Chain, Context, ContextBuilder, Fd, Outcome, Submit, Ticket};

/// Longest any op here may take once it can complete.
const LIMIT: Duration = Duration::from_secs(5);

fn read_of(rx: &Fd) -> Read<Vec<u8>> {
    Read::new(rx, Vec::with_capacity(4), u64::MAX)
}

/// Pushes `ops` in one batch on a thread that submits it (explicitly, or by dropping the
/// batch) and exits; returns the tickets once that thread has exited.
fn batch_from_exiting_thread<T: Submit + Send>(
    ctx: &Context,
    ops: Vec<T>,
    explicit_submit: bool,
) -> Vec<Ticket<T>> {
    thread::scope(|s| {
        s.spawn(|| {
            let mut b = ctx.batch().unwrap();
            let tickets: Vec<_> = ops
                .into_iter()
                .map(|op| b.push(op).map_err(|e| e.error).unwrap())
                .collect();
            if explicit_submit {
                b.submit().unwrap();
            }
            tickets
        })
        .join()
        .unwrap()
    })
}

/// The same from this (live) thread.
fn batch_here<T: Submit>(ctx: &Context, ops: Vec<T>) -> Vec<Ticket<T>> {
    let mut b = ctx.batch().unwrap();
    ops.into_iter()
        .map(|op| b.push(op).map_err(|e| e.error).unwrap())
        .collect()
}

/// Checks that a read has not completed (its pipe is empty), and hands its ticket back.
fn still_waiting<T: Submit>(ctx: &Context, t: Ticket<T>, what: &str) -> Ticket<T>
where
    T::Output: std::fmt::Debug,
{
    match ctx.wait_timeout(t, Duration::from_millis(20)).unwrap() {
        Outcome::Pending(t) => t,
        Outcome::Done(out) => panic!("{what}: completed before its pipe was written: {out:?}"),
    }
}

fn write(tx: &OwnedFd, data: &[u8]) {
    std::fs::File::from(tx.try_clone().unwrap())
        .write_all(data)
        .unwrap();
}

/// The output of a read that must complete now.
fn read_now(
    ctx: &Context,
    t: Ticket<Read<Vec<u8>>>,
    what: &str,
) -> (std::io::Result<usize>, Vec<u8>) {
    match ctx.wait_timeout(t, LIMIT).unwrap() {
        Outcome::Done(out) => out,
        Outcome::Pending(_) => {
            panic!("{what}: still in flight {LIMIT:?} after its pipe was written")
        }
    }
}

/// A pipe read pushed in a batch by a thread that has exited is cancelled when its pipe
/// becomes ready (the data stays in the pipe), whether the batch was submitted explicitly or
/// by its drop; a read pushed in a batch by a live thread, in flight at the same time, reads.
#[test]
fn a_batch_read_of_an_exited_thread_is_cancelled_when_its_pipe_becomes_ready() {
    for explicit_submit in [true, false] {
        let what = if explicit_submit { "submit" } else { "drop" };
        let ctx = Context::new(8).unwrap();
        let (rx, tx) = common::pipe();
        let (live_rx, live_tx) = common::pipe();
        let orphan = batch_from_exiting_thread(&ctx, vec![read_of(&rx)], explicit_submit)
            .pop()
            .unwrap();
        let live = batch_here(&ctx, vec![read_of(&live_rx)]).pop().unwrap();
        let orphan = still_waiting(&ctx, orphan, what);
        let live = still_waiting(&ctx, live, what);
        // Another thread submitting and waiting does not adopt the exited thread's op.
        ctx.submit().unwrap();

        write(&tx, b"left");
        write(&live_tx, b"mine");
        let (res, buf) = read_now(&ctx, orphan, what);
        assert_eq!(
            res.unwrap_err().raw_os_error(),
            Some(libc::ECANCELED),
            "{what}"
        );
        assert!(buf.is_empty(), "{what}: {buf:?}");
        let (res, buf) = read_now(&ctx, live, what);
        assert_eq!((res.unwrap(), &buf[..]), (4, &b"mine"[..]), "{what}");

        // The cancelled read took nothing: a read of a live thread gets the bytes.
        let again = ctx.push(read_of(&rx)).unwrap();
        let (res, buf) = read_now(&ctx, again, what);
        assert_eq!((res.unwrap(), &buf[..]), (4, &b"left"[..]), "{what}");
        assert_eq!(ctx.in_flight(), 0, "{what}");
    }
}

/// A batch of more reads than the SQ holds is handed to the kernel in parts (when the SQ
/// fills, then at its end), all from the thread that holds it: every one of them belongs to
/// that thread, and is cancelled once it has exited. The same batch from a live thread reads.
#[test]
fn every_part_of_a_batch_larger_than_the_sq_belongs_to_its_thread() {
    const READS: usize = 10;
    for exited in [true, false] {
        let what = if exited { "exited" } else { "live" };
        let ctx = Context::new(4).unwrap();
        assert!(ctx.info().sq_entries < READS as u32, "{:?}", ctx.info());
        let pipes: Vec<(Fd, OwnedFd)> = (0..READS).map(|_| common::pipe()).collect();
        let reads = pipes.iter().map(|(rx, _)| read_of(rx)).collect();
        let tickets = if exited {
            batch_from_exiting_thread(&ctx, reads, false)
        } else {
            batch_here(&ctx, reads)
        };
        let tickets: Vec<_> = tickets
            .into_iter()
            .map(|t| still_waiting(&ctx, t, what))
            .collect();
        for (i, (_, tx)) in pipes.iter().enumerate() {
            write(tx, &[i as u8; 4]);
        }
        for (i, t) in tickets.into_iter().enumerate() {
            let (res, buf) = read_now(&ctx, t, what);
            if exited {
                assert_eq!(
                    res.unwrap_err().raw_os_error(),
                    Some(libc::ECANCELED),
                    "read {i}"
                );
                assert!(buf.is_empty(), "read {i}: {buf:?}");
            } else {
                assert_eq!((res.unwrap(), &buf[..]), (4, &[i as u8; 4][..]), "read {i}");
            }
        }
        assert_eq!(ctx.in_flight(), 0, "{what}");
    }
}

/// A timeout pushed in a batch by a thread that has exited still fires.
#[test]
fn a_batch_timeout_of_an_exited_thread_fires() {
    let ctx = Context::new(8).unwrap();
    let t = batch_from_exiting_thread(&ctx, vec![Timeout::new(Duration::from_millis(20))], true)
        .pop()
        .unwrap();
    match ctx.wait_timeout(t, LIMIT).unwrap() {
        Outcome::Done(fired) => assert_eq!(fired.unwrap(), TimeoutFired::Expired),
        Outcome::Pending(_) => panic!("the timeout did not fire in {LIMIT:?}"),
    }
}

/// A chain under a link timeout, pushed in a batch by a thread that exits at once: the chain
/// completes (the read cancelled, by the kernel if the timer fired while the thread was alive,
/// else by the context), and no op is left in flight. Also with the thread pushing a second
/// chain after the first, so that the context's cancel of one does not wait for the other.
#[test]
fn a_batch_chain_under_a_link_timeout_of_an_exited_thread_completes() {
    let ctx = Context::new(8).unwrap();
    let pipes: Vec<(Fd, OwnedFd)> = (0..2).map(|_| common::pipe()).collect();
    let chains = pipes
        .iter()
        .map(|(rx, _)| Chain::new(read_of(rx)).link_timeout(Duration::from_millis(10)))
        .collect();
    let start = Instant::now();
    let tickets = batch_from_exiting_thread(&ctx, chains, true);
    for (i, t) in tickets.into_iter().enumerate() {
        let (read, timeout) = match ctx.wait_timeout(t, LIMIT).unwrap() {
            Outcome::Done(out) => out,
            Outcome::Pending(_) => {
                panic!("chain {i}: not complete in {LIMIT:?}: its read was never cancelled")
            }
        };
        let (res, buf) = read.into_inner();
        assert_eq!(
            res.unwrap_err().raw_os_error(),
            Some(libc::ECANCELED),
            "chain {i}: the read"
        );
        assert!(buf.is_empty(), "chain {i}: {buf:?}");
        // The kernel's word for the timeout: -ETIME if it fired while the thread was alive;
        // after, -ECANCELED on 6.18 (`Disarmed`), -ENOENT on 6.1 (tests/exited_thread.rs).
        let timeout: std::io::Result<LinkTimeoutOutcome> = timeout.into_inner();
        assert!(
            matches!(
                &timeout,
                Ok(LinkTimeoutOutcome::Fired | LinkTimeoutOutcome::Disarmed)
            ) || timeout.as_ref().unwrap_err().raw_os_error() == Some(libc::ENOENT),
            "chain {i}: the timeout: {timeout:?}"
        );
    }
    assert!(start.elapsed() < LIMIT, "took {:?}", start.elapsed());
    assert_eq!(ctx.in_flight(), 0);
    // The pipes' write ends were open throughout: the reads ended by cancellation, not EOF.
    drop(pipes);
}

/// On an SQPOLL ring the kernel's poller thread issues every op of a batch: a read pushed in
/// a batch by a thread that has exited since is not cancelled, and reads its data.
#[test]
fn sqpoll_batch_ops_outlive_the_thread_that_pushed_them() {
    let b = ContextBuilder::with_builder(CoreBuilder::new(8).sqpoll(Duration::from_millis(1)));
    let ctx = match b.build() {
        Ok(ctx) => ctx,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::EPERM | libc::EOPNOTSUPP)
            ) =>
        {
            common::skip(format_args!(
                "sqpoll_batch_ops_outlive_the_thread_that_pushed_them: the kernel refused an \
                 SQPOLL ring: {e}"
            ));
            return;
        }
        Err(e) => panic!("an SQPOLL context: {e}"),
    };
    let (rx, tx) = common::pipe();
    let t = batch_from_exiting_thread(&ctx, vec![read_of(&rx)], false)
        .pop()
        .unwrap();
    let t = still_waiting(&ctx, t, "sqpoll");
    write(&tx, b"kept");
    let (res, buf) = read_now(&ctx, t, "sqpoll");
    assert_eq!((res.unwrap(), &buf[..]), (4, &b"kept"[..]));
}
