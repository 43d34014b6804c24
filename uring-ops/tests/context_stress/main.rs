//! A `Context` under load: 8 pushing threads and 3 reaping threads on one 16-entry ring, mixed
//! ops (NOPs, pipe reads and writes, timeouts, short chains, reads under a link timeout), some
//! pushed one by one and some in batches, some cancelled while in flight, and a watchdog.
//!
//! Every op is pushed with a unique tag that names its pusher, its number and its kind. The
//! test checks that each op's completion record is reported exactly once, across all reapers;
//! that its typed output is redeemed once from the record (a second take finds nothing, as
//! does the op's ticket afterwards); and that the output is right (a read gets the bytes its
//! write wrote, a chain's links ran, ...). A cancel races its target: the target may end
//! normally or with `ECANCELED`, nothing else (and a write whose read was cancelled may find
//! the pipe's read end closed: `EPIPE`). A push refused because the ring is full is retried,
//! and counted once, when it is accepted. Up to [`MAX_IN_FLIGHT`] ops are in flight at once,
//! far more than the ring's 32 CQ entries, so completions also pass through the kernel's
//! overflow list. The mix of ops is fixed (seeded); their timing is whatever the machine makes
//! it (`taskset -c 0` forces other interleavings).

mod check;
#[path = "../common/mod.rs"]
mod common;

use check::{check, ByContext};

use std::collections::HashSet;
use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use uring_ops::ops::{AsyncCancel, Nop, Read, Timeout, Write};
use uring_ops::{Batch, Chain, Context, Error, Fd, Submit};
use uring_ops::{PushError, Ticket};

const PUSHERS: u64 = 8;
const REAPERS: usize = 3;
/// Units of work per pusher (a unit is one op, a few related ops, or a batch of them).
const UNITS: u64 = 1000;
const RING_ENTRIES: u32 = 16;
/// The watchdog fails the test when neither a push nor a completion happened for this long.
const STALL: Duration = Duration::from_secs(30);
/// How long a reaper waits for records before it looks at whether the run is over.
const REAP_WAIT: Duration = Duration::from_millis(50);
/// The bytes each pipe write carries.
const LEN: usize = 8;
/// Pushers pause between units while more ops than this are pushed and not reported: each
/// pipe op holds descriptors until it is redeemed, and a test process may have only 1024.
const MAX_IN_FLIGHT: u64 = 256;

/// What an op is, in the low bits of its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Nop,
    /// A NOP whose ticket was detached in its batch, before the batch was submitted: its
    /// record comes and nothing is left to take.
    NopDetached,
    Timeout,
    /// A read of a fresh pipe, pushed before the write that feeds it.
    PipeRead,
    /// The write feeding the `PipeRead` pushed just before it.
    PipeWrite,
    Cancel,
    /// A chain: a write of a fresh pipe, then a read of it.
    ChainWriteRead,
    /// A chain of three NOPs.
    ChainNops,
    /// A chain: a read of a pipe nobody writes, under a link timeout of a few ms.
    GuardedRead,
}

const KINDS: [Kind; 9] = {
    use Kind::*;
    [
        Nop,
        NopDetached,
        Timeout,
        PipeRead,
        PipeWrite,
        Cancel,
        ChainWriteRead,
        ChainNops,
        GuardedRead,
    ]
};

/// Set in a tag when an `AsyncCancel` targets the op.
const TARGETED: u64 = 0x80;
const KIND_MASK: u64 = 0x7f;

/// Tag: pusher in bits 48.., the op's number (per pusher) in bits 8..48, [`TARGETED`] and the
/// kind in the low byte.
fn make_tag(pusher: u64, seq: u64, kind: Kind, targeted: bool) -> u64 {
    let kind = KINDS.iter().position(|k| *k == kind).unwrap() as u64;
    pusher << 48 | seq << 8 | if targeted { TARGETED } else { 0 } | kind
}

fn kind_of(tag: u64) -> Kind {
    KINDS[(tag & KIND_MASK) as usize]
}

/// The bytes the write of the op with this tag carries (unique per op).
fn payload(tag: u64) -> Vec<u8> {
    (tag >> 8).to_le_bytes().to_vec()
}

/// A tag's number field moved back by one: for a `PipeWrite`, the number its read's payload
/// comes from.
fn previous(tag: u64) -> u64 {
    tag - (1 << 8)
}

/// What every thread shares: the counts, and the set of tags pushed and not yet reported.
#[derive(Default)]
struct State {
    /// Tags pushed (or being pushed) whose record has not come yet.
    outstanding: Mutex<HashSet<u64>>,
    pushed: AtomicU64,
    reaped: AtomicU64,
    /// Pushes refused for lack of room and tried again.
    retries: AtomicU64,
    /// Ops in batches (pushed through a `Batch`).
    batched: AtomicU64,
    /// Records reaped, per kind.
    by_kind: [AtomicU64; KINDS.len()],
    /// Targeted ops that ended with `ECANCELED`.
    cancelled: AtomicU64,
    pushers_done: AtomicU64,
    /// Every op was reported: reapers stop, pushers check their tickets.
    finished: AtomicBool,
    /// A thread failed: the others stop.
    abort: AtomicBool,
}

impl State {
    /// Ops pushed and not yet reported (a record may be counted just before its push is).
    fn in_flight(&self) -> u64 {
        let pushed = self.pushed.load(SeqCst);
        pushed.saturating_sub(self.reaped.load(SeqCst))
    }

    fn stop(&self) -> bool {
        self.finished.load(SeqCst) || self.abort.load(SeqCst)
    }

    fn diagnostic(&self) -> String {
        let mut s = format!(
            "pushed {}, reaped {}, retried {}, batched {}, pushers done {}/{PUSHERS}, \
             cancelled {}; reaped per kind:",
            self.pushed.load(SeqCst),
            self.reaped.load(SeqCst),
            self.retries.load(SeqCst),
            self.batched.load(SeqCst),
            self.pushers_done.load(SeqCst),
            self.cancelled.load(SeqCst),
        );
        for (k, n) in KINDS.iter().zip(&self.by_kind) {
            let _ = write!(s, " {k:?} {}", n.load(SeqCst));
        }
        // `try_lock`: the watchdog must not hang on a lock a stuck thread holds.
        match self.outstanding.try_lock() {
            Ok(o) => {
                let mut tags: Vec<u64> = o.iter().copied().collect();
                tags.sort_unstable();
                let _ = write!(s, "; {} outstanding:", tags.len());
                for t in tags.iter().take(16) {
                    let _ = write!(
                        s,
                        " (pusher {} op {} {:?}{})",
                        t >> 48,
                        (t >> 8) & ((1 << 40) - 1),
                        kind_of(*t),
                        if t & TARGETED != 0 { ", targeted" } else { "" }
                    );
                }
            }
            Err(_) => s.push_str("; outstanding set locked"),
        }
        s
    }
}

/// Runs a worker's body; a panic stops the other workers (so the run ends instead of waiting
/// for them) and goes on to the scope.
fn worker(st: &State, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        st.abort.store(true, SeqCst);
        resume_unwind(p);
    }
}

/// A pipe, both ends for ops: (read end, write end).
fn pipe() -> (Fd, Fd) {
    let (rx, tx) = common::pipe();
    (rx, Fd::new(tx))
}

/// Refusals that mean "the ring is full for now": answered by trying again.
fn retryable(e: &Error) -> bool {
    matches!(
        e,
        Error::QueueFull { .. }
            | Error::TooManyOps { .. }
            | Error::Core(uring_ops::core::Error::Busy(_))
    )
}

/// A check, run at the end, that a ticket redeems nothing (its record redeemed its op).
type TicketCheck<'a> = Box<dyn FnOnce(&Context) -> Option<String> + 'a>;

struct Pusher<'a> {
    ctx: &'a Context,
    st: &'a State,
    id: u64,
    seq: u64,
    rng: u64,
    /// The open batch, while a unit pushes through one.
    batch: Option<Batch<'a>>,
    tickets: Vec<TicketCheck<'a>>,
    /// The pipe the guarded reads wait on, which nobody writes: its write end stays open
    /// until the end, so that those reads wait (a closed pipe reads as end of file at once).
    guarded: (Fd, OwnedFd),
}

impl<'a> Pusher<'a> {
    fn new(ctx: &'a Context, st: &'a State, id: u64) -> Self {
        Pusher {
            ctx,
            st,
            id,
            seq: 0,
            rng: (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            batch: None,
            tickets: Vec::new(),
            guarded: common::pipe(),
        }
    }

    /// xorshift64: a fixed sequence per pusher, so the mix of ops is the same on every run.
    fn rand(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n
    }

    fn tag(&mut self, kind: Kind, targeted: bool) -> u64 {
        self.seq += 1;
        make_tag(self.id, self.seq, kind, targeted)
    }

    /// Pushes `op` with `tag` (through the open batch, if any), trying again while the ring
    /// is full.
    fn push<T: Submit>(&mut self, mut op: T, tag: u64) -> Ticket<T> {
        assert!(
            self.st.outstanding.lock().unwrap().insert(tag),
            "tag {tag:#x} reused"
        );
        loop {
            let pushed = match &mut self.batch {
                Some(b) => b.push_tagged(op, tag),
                None => self.ctx.push_tagged(op, tag),
            };
            match pushed {
                Ok(t) => {
                    self.st.pushed.fetch_add(1, SeqCst);
                    if self.batch.is_some() {
                        self.st.batched.fetch_add(1, SeqCst);
                    }
                    return t;
                }
                Err(PushError { error, op: back }) if retryable(&error) => {
                    op = back;
                    self.st.retries.fetch_add(1, SeqCst);
                    // A batch holds the SQ: let it go (submitting what it has) so that
                    // reapers can make room, then go on in a new one.
                    if self.batch.take().is_some() {
                        thread::yield_now();
                        self.batch = Some(self.ctx.batch().unwrap());
                    } else {
                        thread::yield_now();
                    }
                }
                Err(e) => panic!(
                    "pusher {}: pushing {:?} failed: {}",
                    self.id,
                    kind_of(tag),
                    e.error
                ),
            }
        }
    }

    /// Keeps `t` to check, at the end, that it redeems nothing.
    fn keep<T: Submit + 'static>(&mut self, t: Ticket<T>, tag: u64) {
        self.tickets
            .push(Box::new(move |ctx: &Context| match ctx.try_take(t) {
                Err(Error::UnknownTicket) => None,
                Err(e) => Some(format!("{tag:#x}: the ticket gave {e}")),
                Ok(o) => Some(format!(
                    "{tag:#x} ({:?}): the ticket redeemed an op its record had redeemed \
                     (done: {})",
                    kind_of(tag),
                    o.is_done()
                )),
            }));
    }

    fn cancel<T>(&mut self, target: &Ticket<T>) {
        let tag = self.tag(Kind::Cancel, false);
        let t = self.push(AsyncCancel::ticket(target), tag);
        self.keep(t, tag);
    }

    /// Sometimes lets other threads run, so that cancels meet their targets at every stage.
    fn jitter(&mut self) {
        match self.rand(4) {
            0 => thread::yield_now(),
            1 => thread::sleep(Duration::from_micros(50)),
            _ => {}
        }
    }

    /// One op, or a few related ones.
    fn one(&mut self) {
        match self.rand(100) {
            0..=24 => {
                let tag = self.tag(Kind::Nop, false);
                let t = self.push(Nop::new(), tag);
                self.keep(t, tag);
            }
            25..=29 if self.batch.is_some() => {
                let tag = self.tag(Kind::NopDetached, false);
                let t = self.push(Nop::new(), tag);
                // Still in the batch, not handed to the kernel: the detach comes first.
                assert!(self.batch.as_mut().unwrap().detach(t));
            }
            25..=44 => {
                let targeted = self.rand(3) == 0;
                let tag = self.tag(Kind::Timeout, targeted);
                let after = Duration::from_micros(500 + self.rand(2500));
                let t = self.push(Timeout::new(after), tag);
                if targeted {
                    self.jitter();
                    self.cancel(&t);
                }
                self.keep(t, tag);
            }
            45..=69 => {
                let (rx, tx) = pipe();
                let targeted = self.rand(2) == 0;
                let rtag = self.tag(Kind::PipeRead, targeted);
                // The write is marked too: once its read is cancelled and redeemed, the
                // read end may be closed before the write runs (`EPIPE`).
                let wtag = self.tag(Kind::PipeWrite, targeted);
                let read = self.push(Read::new(&rx, Vec::with_capacity(LEN), u64::MAX), rtag);
                let write = Write::new(tx, payload(rtag), u64::MAX);
                if targeted && self.rand(2) == 0 {
                    self.jitter();
                    self.cancel(&read);
                    let w = self.push(write, wtag);
                    self.keep(w, wtag);
                } else {
                    self.jitter();
                    let w = self.push(write, wtag);
                    self.keep(w, wtag);
                    if targeted {
                        self.cancel(&read);
                    }
                }
                self.keep(read, rtag);
            }
            70..=79 => {
                let (rx, tx) = pipe();
                let tag = self.tag(Kind::ChainWriteRead, false);
                let chain = Chain::new(Write::new(tx, payload(tag), u64::MAX)).then(Read::new(
                    rx,
                    Vec::with_capacity(LEN),
                    u64::MAX,
                ));
                let t = self.push(chain, tag);
                self.keep(t, tag);
            }
            80..=87 => {
                let tag = self.tag(Kind::ChainNops, false);
                let t = self.push(
                    Chain::new(Nop::new()).then(Nop::new()).then(Nop::new()),
                    tag,
                );
                self.keep(t, tag);
            }
            _ => {
                let targeted = self.rand(3) == 0;
                let tag = self.tag(Kind::GuardedRead, targeted);
                let after = Duration::from_micros(500 + self.rand(2500));
                let rx = &self.guarded.0;
                let chain = Chain::new(Read::new(rx, Vec::with_capacity(LEN), u64::MAX))
                    .link_timeout(after);
                let t = self.push(chain, tag);
                if targeted {
                    self.jitter();
                    self.cancel(&t);
                }
                self.keep(t, tag);
            }
        }
    }

    /// A unit: one op pushed alone, or a batch of 1 to 8.
    fn unit(&mut self) {
        if self.rand(4) != 0 {
            return self.one();
        }
        self.batch = Some(self.ctx.batch().unwrap());
        for _ in 0..1 + self.rand(8) {
            self.one();
        }
        let mut b = self.batch.take().unwrap();
        if self.rand(2) == 0 {
            // Else its drop submits.
            match b.submit() {
                Ok(_) => {}
                Err(e) if retryable(&e) => {}
                Err(e) => panic!("pusher {}: batch submit: {e}", self.id),
            }
        }
    }

    fn run(mut self) {
        for _ in 0..UNITS {
            while self.st.in_flight() > MAX_IN_FLIGHT {
                if self.st.abort.load(SeqCst) {
                    return;
                }
                thread::sleep(Duration::from_micros(100));
            }
            if self.st.abort.load(SeqCst) {
                return;
            }
            self.unit();
        }
        self.st.pushers_done.fetch_add(1, SeqCst);
        // Stay alive until every op has completed: the kernel ties an op to the thread that
        // submitted it, and a pipe read of an exited thread is cancelled rather than done
        // (tests/exited_thread.rs).
        while !self.st.stop() {
            thread::sleep(Duration::from_millis(1));
        }
        if self.st.abort.load(SeqCst) {
            return;
        }
        let errors: Vec<String> = self
            .tickets
            .drain(..)
            .filter_map(|check| check(self.ctx))
            .collect();
        assert!(errors.is_empty(), "pusher {}: {errors:#?}", self.id);
    }
}

/// Ends the run once every pusher is done and every op pushed has been reported.
fn finish_if_done(ctx: &Context, st: &State) {
    if st.pushers_done.load(SeqCst) == PUSHERS
        && st.reaped.load(SeqCst) == st.pushed.load(SeqCst)
        && !st.finished.swap(true, SeqCst)
    {
        for _ in 0..REAPERS {
            ctx.wake().unwrap();
        }
    }
}

/// A reaper; each of the three drains records its own way.
fn reap(ctx: &Context, st: &State, style: usize) {
    let mut v = Vec::new();
    while !st.stop() {
        match style {
            0 => {
                v.clear();
                ctx.wait_completions_into(&mut v, REAP_WAIT).unwrap();
                for c in &v {
                    check(st, c, &mut ByContext(ctx));
                }
            }
            1 => {
                // Redeems under the lock the iterator holds.
                let mut cs = ctx.wait_for_completions(REAP_WAIT).unwrap();
                while let Some(c) = cs.next() {
                    check(st, &c, &mut cs);
                }
            }
            _ => {
                for c in ctx.wait_completions_timeout(REAP_WAIT).unwrap() {
                    check(st, &c, &mut ByContext(ctx));
                }
            }
        }
        finish_if_done(ctx, st);
    }
}

fn run(ctx: &Context, st: &State) {
    thread::scope(|s| {
        for id in 0..PUSHERS {
            s.spawn(move || worker(st, || Pusher::new(ctx, st, id).run()));
        }
        for style in 0..REAPERS {
            s.spawn(move || worker(st, || reap(ctx, st, style)));
        }
    });
}

#[test]
fn eight_pushers_three_reapers_mixed_ops_and_cancels() {
    let ctx = Arc::new(Context::new(RING_ENTRIES).unwrap());
    let st = Arc::new(State::default());
    let start = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    let runner = {
        let (ctx, st) = (Arc::clone(&ctx), Arc::clone(&st));
        thread::spawn(move || {
            run(&ctx, &st);
            let _ = done_tx.send(());
        })
    };
    // The watchdog: fail, with what happened so far, if nothing moves for `STALL`.
    let mut last = (0, 0);
    let mut moved = Instant::now();
    loop {
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let now = (st.pushed.load(SeqCst), st.reaped.load(SeqCst));
                if now != last {
                    (last, moved) = (now, Instant::now());
                } else if moved.elapsed() > STALL {
                    st.abort.store(true, SeqCst);
                    panic!("no progress for {STALL:?}: {}", st.diagnostic());
                }
            }
        }
    }
    if let Err(p) = runner.join() {
        eprintln!("at the failure: {}", st.diagnostic());
        resume_unwind(p);
    }
    let summary = st.diagnostic();
    assert_eq!(st.reaped.load(SeqCst), st.pushed.load(SeqCst), "{summary}");
    assert!(st.outstanding.lock().unwrap().is_empty(), "{summary}");
    // The mix is the same on every run (the pushers' random sequences are fixed): each kind
    // was pushed, and some pushes went through batches.
    for (k, n) in KINDS.iter().zip(&st.by_kind) {
        assert!(n.load(SeqCst) > 0, "no {k:?} ran: {summary}");
    }
    assert!(st.batched.load(SeqCst) > 0, "{summary}");
    assert_eq!(ctx.in_flight(), 0, "{summary}");
    assert!(
        ctx.wait_completions_timeout(Duration::from_millis(5))
            .unwrap()
            .is_empty(),
        "a record after the last: {summary}"
    );
    eprintln!("context stress: {summary}; took {:?}", start.elapsed());
}
