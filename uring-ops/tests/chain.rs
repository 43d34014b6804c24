//! Linked chains on the real kernel: typed results per link, cancellation reported as such,
//! link timeouts, hard links, all-or-nothing placement, shared buffers.

mod common;

use common::{bad_fd, pipe, tagged_nop, temp_file};
use std::io::{self, Write as _};
use std::time::{Duration, Instant};
use uring_ops::core::{sys, Sqe};
use uring_ops::ops::{
    Clock, Fsync, LinkTimeout, LinkTimeoutOutcome, Nop, Read, Readv, Write, Writev,
};
use uring_ops::{Chain, Error, Linked, Op, OpExt, SharedBuf, SqeOptions, Target, Uring};

/// Any op, completing into the kernel's raw result: to assert the exact values the kernel gives.
#[derive(Debug)]
struct Raw<O>(O);

// SAFETY: forwards to `O`, whose contract is the same (the ring writes `O::OPCODE`, the same);
// the op is dropped at completion.
unsafe impl<O: Op> Op for Raw<O> {
    const OPCODE: u8 = O::OPCODE;
    const NAME: &'static str = O::NAME;
    type Output = i32;

    fn prepare(&mut self, sqe: &mut Sqe) {
        self.0.prepare(sqe);
    }

    fn fails_link(&self, res: i32) -> bool {
        self.0.fails_link(res)
    }

    fn complete(self, res: i32, _flags: u32) -> i32 {
        res
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn errno<T>(r: &io::Result<T>) -> Option<i32> {
    r.as_ref().err().and_then(io::Error::raw_os_error)
}

/// Submits and reaps until nothing is in flight.
fn drain(ring: &mut Uring) {
    while ring.in_flight() > 0 {
        ring.submit_and_wait(1).unwrap();
        ring.reap();
    }
}

#[test]
fn readv_writev_fsync_chain_copies_a_file() {
    let data = pattern(10_000);
    let src = temp_file("rwf-src", &data);
    let dst = temp_file("rwf-dst", b"");
    let a = SharedBuf::new(vec![0u8; 4096]);
    let b = SharedBuf::new(vec![0u8; 10_000 - 4096]);
    let mut ring = Uring::new(8).unwrap();
    let chain = Chain::new(Readv::new(&src.fd, vec![a.clone(), b.clone()], 0))
        .then(Writev::new(&dst.fd, vec![a, b], 0))
        .then(Fsync::new(&dst.fd));
    assert_eq!(chain.len(), 3);
    let t = ring.push(chain).unwrap();
    let (read, write, sync) = ring.wait(t).unwrap();
    let (n, read_bufs) = read.ran().expect("the readv ran");
    assert_eq!(n.unwrap(), 10_000);
    let (n, write_bufs) = write.ran().expect("the writev ran");
    assert_eq!(n.unwrap(), 10_000);
    sync.ran().expect("the fsync ran").unwrap();
    assert_eq!(std::fs::read(&dst.path).unwrap(), data);
    // The buffers come back through the outputs: drop one set of handles, unwrap the other.
    drop(read_bufs);
    let back: Vec<Vec<u8>> = write_bufs
        .into_iter()
        .map(|b| b.try_into_inner().unwrap())
        .collect();
    assert_eq!(back.concat(), data);
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn copy_chain_shares_one_buffer_and_hands_it_back() {
    let data = pattern(16 * 1024);
    let src = temp_file("copy-src", &data);
    let dst = temp_file("copy-dst", b"");
    let mut ring = Uring::new(32).unwrap();
    // Four blocks in flight at once, each chain reading into and writing out its own buffer.
    let mut tickets = Vec::new();
    for block in 0..4u64 {
        let buf = SharedBuf::new(vec![0u8; 4096]);
        let off = block * 4096;
        let chain =
            Chain::new(Read::new(&src.fd, buf.clone(), off)).then(Write::new(&dst.fd, buf, off));
        tickets.push(ring.push(chain).unwrap());
    }
    for (block, t) in tickets.into_iter().enumerate() {
        let (read, write) = ring.wait(t).unwrap();
        assert_eq!(read.into_inner().0.unwrap(), 4096);
        let (n, buf) = write.into_inner();
        assert_eq!(n.unwrap(), 4096);
        let buf = buf.try_into_inner().expect("the read's handle is gone");
        assert_eq!(buf, &data[block * 4096..][..4096]);
    }
    assert_eq!(std::fs::read(&dst.path).unwrap(), data);
}

#[test]
fn a_failed_first_link_cancels_the_rest_as_such() {
    let src = temp_file("fail-src", b"never read");
    let dst = temp_file("fail-dst", b"");
    let mut ring = Uring::new(8).unwrap();

    // A NOP with an injected error (Linux 6.12).
    if nop_injects_or_skip!("a NOP failing with an injected error as a first link") {
        let buf = SharedBuf::new(vec![0u8; 10]);
        let chain = Chain::new(Nop::new().inject_result(-libc::EIO))
            .then(Read::new(&src.fd, buf.clone(), 0))
            .then(Write::new(&dst.fd, buf.clone(), 0));
        let t = ring.push(chain).unwrap();
        let (nop, read, write) = ring.wait(t).unwrap();
        assert_eq!(errno(&nop.ran().expect("the NOP ran")), Some(libc::EIO));
        for link in [read, write] {
            assert!(link.is_cancelled(), "{link:?}");
            let (r, b) = link.into_inner();
            assert_eq!(errno(&r), Some(libc::ECANCELED));
            drop(b);
        }
        assert_eq!(buf.try_into_inner().unwrap(), [0; 10], "nothing was read");
    }

    // A read of an invalid descriptor.
    let chain = Chain::new(Read::new(bad_fd(), vec![0u8; 4], 0))
        .then(Write::new(&dst.fd, b"xyz".to_vec(), 0))
        .then(Nop::new());
    let t = ring.push(chain).unwrap();
    let (read, write, nop) = ring.wait(t).unwrap();
    assert!(matches!(read, Linked::Ran((Err(ref e), _)) if e.raw_os_error() == Some(libc::EBADF)));
    let Linked::Cancelled((r, b)) = write else {
        panic!("the write should be cancelled: {write:?}")
    };
    assert_eq!((errno(&r), b), (Some(libc::ECANCELED), b"xyz".to_vec()));
    assert!(
        matches!(nop, Linked::Cancelled(Err(ref e)) if e.raw_os_error() == Some(libc::ECANCELED))
    );
    assert_eq!(
        std::fs::read(&dst.path).unwrap(),
        b"",
        "nothing was written"
    );

    // A failed link's timeout is disarmed. When every link failed, that reads as cancelled
    // (see `Linked`); when an earlier link succeeded, as run.
    let chain =
        Chain::new(Read::new(bad_fd(), vec![0u8; 4], 0)).link_timeout(Duration::from_secs(10));
    let t = ring.push(chain).unwrap();
    let (read, timeout) = ring.wait(t).unwrap();
    assert!(matches!(read, Linked::Ran((Err(ref e), _)) if e.raw_os_error() == Some(libc::EBADF)));
    assert!(matches!(
        timeout,
        Linked::Cancelled(Ok(LinkTimeoutOutcome::Disarmed))
    ));
    let chain = Chain::new(Nop::new())
        .then(Read::new(bad_fd(), vec![0u8; 4], 0))
        .link_timeout(Duration::from_secs(10));
    let t = ring.push(chain).unwrap();
    let (_, read, timeout) = ring.wait(t).unwrap();
    assert!(matches!(read, Linked::Ran((Err(ref e), _)) if e.raw_os_error() == Some(libc::EBADF)));
    assert!(matches!(
        timeout,
        Linked::Ran(Ok(LinkTimeoutOutcome::Disarmed))
    ));
}

fn opts(asynchronous: bool) -> SqeOptions {
    if asynchronous {
        SqeOptions::new().asynchronous()
    } else {
        SqeOptions::new()
    }
}

#[test]
fn a_link_timeout_fires_on_a_read_of_an_empty_pipe() {
    for asynchronous in [false, true] {
        let (rx, _tx) = pipe();
        let mut ring = Uring::new(8).unwrap();
        let read = Read::new(&rx, vec![0u8; 16], u64::MAX).options(opts(asynchronous));
        let chain = Chain::new(read)
            .link_timeout(Duration::from_millis(20))
            .then(Nop::new());
        let start = Instant::now();
        let t = ring.push(chain).unwrap();
        let (read, timeout, nop) = ring.wait(t).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(20));
        // The read ran and was cancelled by its timeout. Linux 6.18 reports ECANCELED both
        // ways: a pipe can be polled, so even from an io-wq worker (`IOSQE_ASYNC`) the read
        // waits on a poll, which the timeout cancels. (Kernels that block an io-wq worker in
        // the read report EINTR instead.)
        let want = libc::ECANCELED;
        let (r, _) = read.ran().expect("the read started");
        assert_eq!(errno(&r), Some(want), "asynchronous: {asynchronous}");
        assert_eq!(
            timeout.ran().expect("the timeout was armed").unwrap(),
            LinkTimeoutOutcome::Fired
        );
        assert!(nop.is_cancelled());
        assert_eq!(errno(&nop.into_inner()), Some(libc::ECANCELED));

        // The raw results: -ECANCELED for the read, -ETIME for the timeout, -ECANCELED for
        // the link after them.
        let read = Read::new(&rx, vec![0u8; 16], u64::MAX).options(opts(asynchronous));
        let chain = Chain::new(Raw(read))
            .then(Raw(LinkTimeout::new(Duration::from_millis(5))))
            .then(Raw(Nop::new()));
        let t = ring.push(chain).unwrap();
        let (read, timeout, nop) = ring.wait(t).unwrap();
        assert_eq!(
            (read, timeout, nop),
            (
                Linked::Ran(-libc::ECANCELED),
                Linked::Ran(-libc::ETIME),
                Linked::Cancelled(-libc::ECANCELED)
            )
        );
    }
}

#[test]
fn an_absolute_link_timeout_fires_at_its_deadline() {
    let (rx, _tx) = pipe();
    let mut ring = Uring::new(8).unwrap();
    let deadline = Clock::Monotonic.now() + Duration::from_millis(20);
    let chain = Chain::new(Read::new(&rx, vec![0u8; 4], u64::MAX))
        .then(LinkTimeout::absolute(deadline))
        .then(Nop::new());
    let t = ring.push(chain).unwrap();
    let (read, timeout, nop) = ring.wait(t).unwrap();
    assert!(Clock::Monotonic.now() >= deadline);
    assert_eq!(errno(&read.ran().unwrap().0), Some(libc::ECANCELED));
    assert_eq!(timeout.ran().unwrap().unwrap(), LinkTimeoutOutcome::Fired);
    assert!(nop.is_cancelled());
}

#[test]
fn a_link_timeout_is_disarmed_when_its_link_completes_first() {
    let (rx, tx) = pipe();
    std::fs::File::from(tx).write_all(b"ready").unwrap();
    let mut ring = Uring::new(8).unwrap();
    let chain = Chain::new(Read::new(&rx, vec![0u8; 5], u64::MAX))
        .link_timeout(Duration::from_secs(10))
        .then(Nop::new());
    let start = Instant::now();
    let t = ring.push(chain).unwrap();
    let (read, timeout, nop) = ring.wait(t).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    let (n, buf) = read.ran().unwrap();
    assert_eq!((n.unwrap(), buf), (5, b"ready".to_vec()));
    assert_eq!(
        timeout.ran().unwrap().unwrap(),
        LinkTimeoutOutcome::Disarmed
    );
    assert_eq!(nop.ran().unwrap().unwrap(), 0);

    // The raw result of a disarmed timeout is -ECANCELED.
    let (rx, tx) = pipe();
    std::fs::File::from(tx).write_all(b"x").unwrap();
    let chain = Chain::new(Raw(Read::new(&rx, vec![0u8; 1], u64::MAX)))
        .then(Raw(LinkTimeout::new(Duration::from_secs(10))));
    let t = ring.push(chain).unwrap();
    let (read, timeout) = ring.wait(t).unwrap();
    assert_eq!(
        (read, timeout),
        (Linked::Ran(1), Linked::Ran(-libc::ECANCELED))
    );
}

#[test]
fn a_hard_linked_chain_continues_after_a_failure() {
    let dst = temp_file("hard-dst", b"");
    let mut ring = Uring::new(8).unwrap();
    let injects = nop_injects_or_skip!("hard-linked NOPs failing with injected errors");
    if injects {
        let chain = Chain::new(Nop::new().inject_result(-libc::EPERM))
            .then_hard(Read::new(bad_fd(), vec![0u8; 3], 0))
            .then_hard(Write::new(&dst.fd, b"still".to_vec(), 0))
            .then(Nop::new());
        let t = ring.push(chain).unwrap();
        let (a, b, c, d) = ring.wait(t).unwrap();
        assert_eq!(errno(&a.ran().unwrap()), Some(libc::EPERM));
        assert_eq!(errno(&b.ran().unwrap().0), Some(libc::EBADF));
        assert_eq!(c.ran().unwrap().0.unwrap(), 5);
        assert_eq!(d.ran().unwrap().unwrap(), 0);
        assert_eq!(std::fs::read(&dst.path).unwrap(), b"still");
    }

    // A timed-out link, hard-linked, does not cancel what follows.
    let (rx, _tx) = pipe();
    let chain = Chain::new(Read::new(&rx, vec![0u8; 4], u64::MAX))
        .link_timeout(Duration::from_millis(10))
        .then_hard(Nop::new());
    let t = ring.push(chain).unwrap();
    let (read, timeout, nop) = ring.wait(t).unwrap();
    assert_eq!(errno(&read.ran().unwrap().0), Some(libc::ECANCELED));
    assert_eq!(timeout.ran().unwrap().unwrap(), LinkTimeoutOutcome::Fired);
    assert_eq!(nop.ran().expect("hard-linked: it ran").unwrap(), 0);

    // Every link of a `hard_links` chain runs.
    if !injects {
        return;
    }
    let chain = Chain::from_vec(vec![
        Nop::new().inject_result(-libc::EIO),
        Nop::new(),
        Nop::new().inject_result(-libc::EINVAL),
        Nop::new(),
    ])
    .hard_links();
    let t = ring.push(chain).unwrap();
    let out = ring.wait(t).unwrap();
    let errnos: Vec<_> = out
        .into_iter()
        .map(|l| errno(&l.ran().expect("ran")))
        .collect();
    assert_eq!(errnos, [Some(libc::EIO), None, Some(libc::EINVAL), None]);
}

#[test]
fn a_chain_that_does_not_fit_is_refused_whole() {
    let mut ring = Uring::new(4).unwrap();
    let a = ring.push(Nop::new()).unwrap();
    let b = ring.push(Nop::new()).unwrap();
    let chain = Chain::new(Read::new(Target::fixed(0), vec![1u8, 2, 3], 0))
        .then(Write::new(Target::fixed(1), vec![4u8, 5], 0))
        .then(Nop::new());
    let err = ring.push(chain).unwrap_err();
    assert!(
        matches!(err.error, Error::QueueFull { needed: 3, free: 2 }),
        "{}",
        err.error
    );
    assert_eq!(ring.in_flight(), 2);
    // The chain comes back intact.
    let (read, write, _nop) = err.op.into_links();
    assert_eq!(read.into_buf(), [1, 2, 3]);
    assert_eq!(write.into_buf(), [4, 5]);
    // Nothing of it reached the SQ: one more op fits, and a submit hands the kernel exactly the
    // three ops queued, which are all that complete.
    let (nop, want) = tagged_nop(7);
    let c = ring.push(nop).unwrap();
    assert_eq!(ring.submit().unwrap(), 3);
    assert_eq!(ring.wait(c).unwrap().unwrap(), want);
    assert_eq!(ring.wait(a).unwrap().unwrap(), 0);
    assert_eq!(ring.wait(b).unwrap().unwrap(), 0);
    assert_eq!(ring.in_flight(), 0);
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(ring.reap(), 0, "no stray completion");
    // And now the chain fits.
    let chain = Chain::new(Nop::new()).then(Nop::new()).then(Nop::new());
    let t = ring.push(chain).unwrap();
    let (x, y, z) = ring.wait(t).unwrap();
    for link in [x, y, z] {
        assert_eq!(link.ran().unwrap().unwrap(), 0);
    }
}

#[test]
fn a_short_read_cancels_the_write() {
    let src = temp_file("short-src", &pattern(100));
    let dst = temp_file("short-dst", b"");
    let mut ring = Uring::new(8).unwrap();
    let buf = SharedBuf::new(vec![0u8; 4096]);
    let chain =
        Chain::new(Read::new(&src.fd, buf.clone(), 0)).then(Write::new(&dst.fd, buf.clone(), 0));
    let t = ring.push(chain).unwrap();
    let (read, write) = ring.wait(t).unwrap();
    // The read ran and returned 100 of 4096 bytes: a failure for the kernel's link rules.
    assert_eq!(read.ran().expect("the read ran").0.unwrap(), 100);
    assert!(write.is_cancelled());
    assert_eq!(errno(&write.into_inner().0), Some(libc::ECANCELED));
    assert_eq!(
        std::fs::read(&dst.path).unwrap(),
        b"",
        "nothing was written"
    );
    // The bytes that were read are in the buffer, the rest untouched.
    let back = buf.try_into_inner().unwrap();
    assert_eq!(&back[..100], &pattern(100)[..]);
    assert!(back[100..].iter().all(|&b| b == 0));

    // Reading exactly what the file holds (`Read::len`) copies it.
    let buf = SharedBuf::new(vec![0u8; 4096]);
    let chain = Chain::new(Read::new(&src.fd, buf.clone(), 0).len(100))
        .then(Write::new(&dst.fd, buf, 0).len(100));
    let t = ring.push(chain).unwrap();
    let (read, write) = ring.wait(t).unwrap();
    assert_eq!(read.ran().unwrap().0.unwrap(), 100);
    assert_eq!(write.ran().unwrap().0.unwrap(), 100);
    assert_eq!(std::fs::read(&dst.path).unwrap(), pattern(100));
}

#[test]
fn dropping_a_chain_ticket_in_flight_is_safe() {
    let (rx, tx) = pipe();
    let dst = temp_file("dropped-dst", b"");
    let mut ring = Uring::new(8).unwrap();
    let buf = SharedBuf::new(vec![0u8; 8]);
    // One handle escapes the chain: it keeps the memory alive too.
    let mut escaped = buf.clone();
    let chain = Chain::new(Read::new(&rx, buf.clone(), u64::MAX)).then(Write::new(&dst.fd, buf, 0));
    let t = ring.push(chain).unwrap();
    ring.submit().unwrap();
    drop(t);
    assert!(escaped.bytes().is_none(), "the kernel may be writing it");
    // The kernel fills the buffer and writes it out after the ticket is gone.
    std::fs::File::from(tx).write_all(b"12345678").unwrap();
    drain(&mut ring);
    assert_eq!(std::fs::read(&dst.path).unwrap(), b"12345678");
    assert!(
        escaped.bytes().is_none(),
        "the finished chain keeps its handles until the ring goes"
    );
    drop(ring);
    assert_eq!(escaped.bytes().unwrap(), b"12345678");

    // Detached: freed at completion.
    let (rx, tx) = pipe();
    let mut ring = Uring::new(8).unwrap();
    let buf = SharedBuf::new(vec![0u8; 4]);
    let mut escaped = buf.clone();
    let chain = Chain::new(Read::new(&rx, buf.clone(), u64::MAX)).then(Write::new(&dst.fd, buf, 0));
    let t = ring.push(chain).unwrap();
    ring.submit().unwrap();
    assert!(ring.detach(t));
    std::fs::File::from(tx).write_all(b"abcd").unwrap();
    drain(&mut ring);
    assert_eq!(escaped.bytes().unwrap(), b"abcd");
}

#[test]
fn dropping_the_ring_with_a_chain_in_flight_cancels_it() {
    let (rx, _tx) = pipe();
    let dst = temp_file("ringdrop-dst", b"");
    let mut ring = Uring::new(16).unwrap();
    let buf = SharedBuf::new(vec![0u8; 8]);
    let mut escaped = buf.clone();
    for _ in 0..3 {
        let chain = Chain::new(Read::new(&rx, buf.clone(), u64::MAX))
            .link_timeout(Duration::from_secs(60))
            .then(Write::new(&dst.fd, buf.clone(), 0));
        let _ = ring.push(chain).unwrap();
    }
    drop(buf);
    ring.submit().unwrap();
    assert_eq!(ring.in_flight(), 3);
    assert_eq!(ring.cancel_all(Duration::from_secs(2)), 0);
    drop(ring);
    assert_eq!(escaped.bytes().unwrap(), [0; 8]);
    assert_eq!(std::fs::read(&dst.path).unwrap(), b"");
}

#[test]
fn a_link_timeout_needs_a_link_before_it() {
    let mut ring = Uring::new(8).unwrap();
    let err = ring
        .push(LinkTimeout::new(Duration::from_secs(1)))
        .unwrap_err();
    assert!(
        matches!(err.error, Error::LinkTimeoutAlone { op: "LinkTimeout" }),
        "{}",
        err.error
    );
    let err = ring
        .push(Chain::new(LinkTimeout::new(Duration::from_secs(1))).then(Nop::new()))
        .unwrap_err();
    assert!(
        matches!(err.error, Error::MisplacedLinkTimeout { link: 0, .. }),
        "{}",
        err.error
    );
    let err = ring
        .push(
            Chain::new(Nop::new())
                .link_timeout(Duration::from_secs(1))
                .link_timeout(Duration::from_secs(1)),
        )
        .unwrap_err();
    assert!(
        matches!(err.error, Error::MisplacedLinkTimeout { link: 2, .. }),
        "{}",
        err.error
    );
    assert_eq!(ring.in_flight(), 0);
    assert_eq!(ring.submit().unwrap(), 0, "nothing was queued");
}

#[test]
fn up_to_256_links() {
    let mut ring = Uring::new(512).unwrap();
    let chain = Chain::from_vec((0..256).map(|i| tagged_nop(i).0).collect());
    let t = ring.push(chain).unwrap();
    let out = ring.wait(t).unwrap();
    assert_eq!(out.len(), 256);
    for (i, link) in (0..).zip(out) {
        assert_eq!(link.ran().unwrap().unwrap(), tagged_nop(i).1);
    }
    let err = ring
        .push(Chain::from_vec(vec![Nop::new(); 257]))
        .unwrap_err();
    assert!(
        matches!(
            err.error,
            Error::ChainTooLong {
                links: 257,
                max: 256
            }
        ),
        "{}",
        err.error
    );
    assert_eq!(err.op.len(), 257);
    assert_eq!(ring.submit().unwrap(), 0);
}

/// A NOP the kernel refuses when preparing it (unknown `nop_flags`): `-EINVAL` at submission.
#[derive(Debug)]
struct BadNop;

// SAFETY: a NOP names no memory.
unsafe impl Op for BadNop {
    const OPCODE: u8 = sys::IORING_OP_NOP as u8;
    const NAME: &'static str = "BadNop";
    type Output = i32;

    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE).set_nop_flags(1 << 31);
    }

    fn complete(self, res: i32, _flags: u32) -> i32 {
        res
    }
}

/// A link the kernel refuses at submission fails the whole chain: it reports its own error,
/// every other link (the first one too, and hard links) `-ECANCELED`, and none of those started.
#[test]
fn a_link_refused_at_submission_fails_the_whole_chain() {
    let c = -libc::ECANCELED;
    let mut ring = Uring::new(8).unwrap();
    let chain = Chain::new(Raw(Nop::new()))
        .then(BadNop)
        .then(Raw(Nop::new()));
    let t = ring.push(chain).unwrap();
    let out = ring.wait(t).unwrap();
    assert_eq!(
        out,
        (
            Linked::Cancelled(c),
            Linked::Ran(-libc::EINVAL),
            Linked::Cancelled(c)
        )
    );

    let chain = Chain::new(Raw(Nop::new()))
        .link_timeout(Duration::from_secs(10))
        .then_hard(Raw(Nop::new()))
        .then_hard(BadNop)
        .then(Raw(Nop::new()));
    let t = ring.push(chain).unwrap();
    let (a, timeout, b, bad, d) = ring.wait(t).unwrap();
    assert_eq!(
        (a, b, bad, d),
        (
            Linked::Cancelled(c),
            Linked::Cancelled(c),
            Linked::Ran(-libc::EINVAL),
            Linked::Cancelled(c)
        )
    );
    assert!(timeout.is_cancelled(), "{timeout:?}");

    let chain = Chain::new(BadNop)
        .then_hard(Raw(Nop::new()))
        .then(Raw(Nop::new()));
    let t = ring.push(chain).unwrap();
    let out = ring.wait(t).unwrap();
    assert_eq!(
        out,
        (
            Linked::Ran(-libc::EINVAL),
            Linked::Cancelled(c),
            Linked::Cancelled(c)
        )
    );
}
