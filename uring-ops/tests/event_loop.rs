//! An event loop driven only by completion records (issue 10, item 5): reads, writes,
//! timeouts, a multishot poll and chains in flight together, each output checked exactly once,
//! on a `Uring` and on a `Context` (pushed in batches).

mod common;

use common::pipe;
use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use uring_ops::ops::{AsyncCancel, PollAdd, PollEvents, Read, Timeout, TimeoutFired, Write};
use uring_ops::{
    Chain, Completion, Context, Fd, Linked, Multishot, MultishotOp, Result, Submit, Ticket, Uring,
};

/// What a loop needs of a ring: push with a tag, wait for records, redeem from them.
trait Ring {
    fn push<T: Submit>(&mut self, op: T, tag: u64) -> Ticket<T>;
    /// Hands what was pushed to the kernel (a no-op where pushes do).
    fn flush(&mut self) {}
    fn records(&mut self, into: &mut Vec<Completion>);
    fn take<T: Submit>(&mut self, c: &Completion) -> Result<T::Output>;
    fn take_item<O: MultishotOp>(&mut self, c: &Completion) -> Result<O::Item>;
}

impl Ring for Uring {
    fn push<T: Submit>(&mut self, op: T, tag: u64) -> Ticket<T> {
        self.push_tagged(op, tag).map_err(|e| e.error).unwrap()
    }
    fn records(&mut self, into: &mut Vec<Completion>) {
        self.wait_completions_into(into, Duration::from_secs(1))
            .unwrap();
    }
    fn take<T: Submit>(&mut self, c: &Completion) -> Result<T::Output> {
        Uring::take::<T>(self, c)
    }
    fn take_item<O: MultishotOp>(&mut self, c: &Completion) -> Result<O::Item> {
        Uring::take_item::<O>(self, c)
    }
}

/// A context whose pushes go into one batch until the loop waits.
struct Batched<'a> {
    ctx: &'a Context,
    batch: Option<uring_ops::Batch<'a>>,
}

impl Ring for Batched<'_> {
    fn push<T: Submit>(&mut self, op: T, tag: u64) -> Ticket<T> {
        let ctx = self.ctx;
        let b = self.batch.get_or_insert_with(|| ctx.batch().unwrap());
        b.push_tagged(op, tag).map_err(|e| e.error).unwrap()
    }
    fn flush(&mut self) {
        if let Some(mut b) = self.batch.take() {
            b.submit().unwrap();
        }
    }
    fn records(&mut self, into: &mut Vec<Completion>) {
        self.flush();
        self.ctx
            .wait_completions_into(into, Duration::from_secs(1))
            .unwrap();
    }
    // The thread holding a batch must not call the context otherwise: submit it first.
    fn take<T: Submit>(&mut self, c: &Completion) -> Result<T::Output> {
        self.flush();
        self.ctx.take::<T>(c)
    }
    fn take_item<O: MultishotOp>(&mut self, c: &Completion) -> Result<O::Item> {
        self.flush();
        self.ctx.take_item::<O>(c)
    }
}

const WRITE: u64 = 1;
const READ: u64 = 2;
const TIMER: u64 = 3;
const CHAIN: u64 = 4;
const POLL: u64 = 5;
const CANCEL: u64 = 6;

fn tag(kind: u64, i: u64) -> u64 {
    kind << 32 | i
}

const BLOCKS: u64 = 24;
const BLOCK: usize = 512;
const TIMERS: u64 = 6;
const CHAINS: u64 = 8;

fn block(i: u64) -> Vec<u8> {
    (0..BLOCK).map(|k| (i as usize * 7 + k) as u8).collect()
}

/// The loop: writes `BLOCKS` blocks, reads each back once its write is done; `TIMERS`
/// timeouts, each of which, when it fires, writes a byte into a pipe watched by a multishot
/// poll; `CHAINS` write → read chains. Every submission is tagged; the loop learns what
/// finished only from records, and checks that each is reported once and redeems once.
fn run(ring: &mut impl Ring, file: &Fd, rx: &Fd, tx: OwnedFd) {
    let mut tx = std::fs::File::from(tx);
    // Tags of the submissions not finished yet (items of the poll do not count).
    let mut live: HashMap<u64, &'static str> = HashMap::new();
    let poll = ring.push(PollAdd::new(rx, PollEvents::IN).multishot(), tag(POLL, 0));
    live.insert(tag(POLL, 0), "poll");
    for i in 0..BLOCKS {
        drop(ring.push(Write::new(file, block(i), i * BLOCK as u64), tag(WRITE, i)));
        live.insert(tag(WRITE, i), "write");
    }
    for i in 0..TIMERS {
        let d = Duration::from_millis(5 * (i + 1));
        drop(ring.push(Timeout::new(d), tag(TIMER, i)));
        live.insert(tag(TIMER, i), "timer");
    }
    for i in 0..CHAINS {
        let off = (BLOCKS + i) * BLOCK as u64;
        let chain = Chain::new(Write::new(file, block(100 + i), off)).then(Read::new(
            file,
            Vec::with_capacity(BLOCK),
            off,
        ));
        drop(ring.push(chain, tag(CHAIN, i)));
        live.insert(tag(CHAIN, i), "chain");
    }
    let (mut reads, mut fired, mut chains, mut poked, mut items) = (0, 0, 0, 0u64, 0u64);
    let mut cancelled = false;
    let mut recs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !live.is_empty() {
        assert!(Instant::now() < deadline, "stuck with {live:?}");
        // Every item seen and every timer fired: end the poll.
        if fired == TIMERS && items >= 1 && poked == TIMERS && !cancelled {
            let t = ring.push(AsyncCancel::ticket(&poll), tag(CANCEL, 0));
            drop(t);
            live.insert(tag(CANCEL, 0), "cancel");
            cancelled = true;
        }
        recs.clear();
        ring.records(&mut recs);
        for c in &recs {
            let (kind, i) = (c.tag() >> 32, c.tag() & 0xffff_ffff);
            if c.more() {
                assert_eq!(kind, POLL, "only the poll has items: {c:?}");
                let ev = ring.take_item::<PollAdd>(c).unwrap().unwrap();
                assert!(ev.contains(PollEvents::IN), "{ev:?}");
                assert!(
                    ring.take_item::<PollAdd>(c).is_err(),
                    "an item is taken once"
                );
                items += 1;
                // Empty the pipe, so that the next byte makes the next readiness.
                let mut buf = [0u8; 64];
                // SAFETY: a plain non-blocking read into a local buffer.
                let n = unsafe {
                    libc::read(
                        std::os::fd::AsRawFd::as_raw_fd(&rx.as_fd()),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                };
                let again = std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN);
                assert!(n > 0 || (n < 0 && again), "read of the pipe: {n}");
                continue;
            }
            assert!(
                live.remove(&c.tag()).is_some(),
                "reported twice or never pushed: {c:?}"
            );
            match kind {
                WRITE => {
                    let (n, buf) = ring.take::<Write<Vec<u8>>>(c).unwrap();
                    assert_eq!((n.unwrap(), buf), (BLOCK, block(i)));
                    let off = i * BLOCK as u64;
                    drop(ring.push(
                        Read::new(file, Vec::with_capacity(BLOCK), off),
                        tag(READ, i),
                    ));
                    live.insert(tag(READ, i), "read");
                }
                READ => {
                    let (n, buf) = ring.take::<Read<Vec<u8>>>(c).unwrap();
                    assert_eq!((n.unwrap(), buf), (BLOCK, block(i)), "block {i}");
                    reads += 1;
                }
                TIMER => {
                    let out = ring.take::<Timeout>(c).unwrap();
                    assert_eq!(out.unwrap(), TimeoutFired::Expired);
                    fired += 1;
                    tx.write_all(&[i as u8]).unwrap();
                    poked += 1;
                }
                CHAIN => {
                    let (w, r) = ring
                        .take::<Chain<(Write<Vec<u8>>, Read<Vec<u8>>)>>(c)
                        .unwrap();
                    let (Linked::Ran((wn, _)), Linked::Ran((rn, buf))) = (w, r) else {
                        panic!("a link was cancelled: chain {i}");
                    };
                    assert_eq!((wn.unwrap(), rn.unwrap()), (BLOCK, BLOCK));
                    assert_eq!(buf, block(100 + i));
                    chains += 1;
                }
                POLL => {
                    let out = ring.take::<Multishot<PollAdd>>(c).unwrap();
                    assert_eq!(out.last.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
                    // Every item was taken from its record.
                    assert!(out.items.is_empty(), "{} items left", out.items.len());
                }
                CANCEL => {
                    ring.take::<AsyncCancel>(c).unwrap().unwrap();
                }
                _ => panic!("unknown tag {c:?}"),
            }
            // A record redeems once.
            assert!(ring.take::<Timeout>(c).is_err());
        }
    }
    assert_eq!((reads, fired, chains), (BLOCKS, TIMERS, CHAINS));
    assert!(
        (1..=TIMERS).contains(&items),
        "{items} poll items for {TIMERS} bytes"
    );
    drop(poll);
}

/// A pipe whose read end does not block (the loop empties it after each poll item).
fn nonblocking_pipe() -> (Fd, OwnedFd) {
    let (rx, tx) = pipe();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&rx.as_fd());
    // SAFETY: fcntl on a descriptor this test owns.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    assert_eq!(r, 0);
    (rx, tx)
}

#[test]
fn an_event_loop_on_a_uring_runs_on_records_alone() {
    let mut ring = Uring::new(64).unwrap();
    require_op!(ring, PollAdd);
    require_kernel!(5, 13, "multishot poll (IORING_POLL_ADD_MULTI)");
    let f = common::temp_file("event-loop-uring", &[]);
    let (rx, tx) = nonblocking_pipe();
    run(&mut ring, &f.fd, &rx, tx);
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn an_event_loop_on_a_context_runs_on_records_alone() {
    let ctx = Context::new(64).unwrap();
    require_op!(ctx, PollAdd);
    require_kernel!(5, 13, "multishot poll (IORING_POLL_ADD_MULTI)");
    let f = common::temp_file("event-loop-context", &[]);
    let (rx, tx) = nonblocking_pipe();
    run(
        &mut Batched {
            ctx: &ctx,
            batch: None,
        },
        &f.fd,
        &rx,
        tx,
    );
    assert_eq!(ctx.in_flight(), 0);
}
