//! Model-based test: random sequences of ring operations run against the real kernel and a
//! pure-Rust model of what the ring must do; they must agree.
//!
//! The sequences push single ops, push chains, push cancels, submit, wait for some results,
//! settle, drop tickets and detach them. The model knows:
//!
//! - **Capacity.** The SQ's size and how many SQEs are queued, so it predicts `QueueFull` (with
//!   `needed` and `free`) exactly, for one op or for a whole chain (a link timeout is an SQE).
//! - **Results.** NOP → 0; an injected result → that result; a read of a known file → the known
//!   bytes and count (fewer at the end of the file); a read of a descriptor that is not open →
//!   EBADF; a read of an empty pipe → never completes until cancelled, then ECANCELED.
//! - **Chains** (1 to 4 links, some hard-linked, some guarded by a link timeout): every link's
//!   `Linked` status and output, by the kernel's rules (below).
//! - **Cancellation.** An `AsyncCancel` of a ticket whose op (a chain's first link) waits on a
//!   pipe → 0 and the op → ECANCELED; of anything else → ENOENT. `AsyncCancel::any()` and
//!   `AsyncCancel::fd(pipe).all()` → how many ops they cancelled. The cancel consumes an SQE.
//! - **In flight.** Which submissions are still in flight once everything that can complete
//!   has: checked against `Uring::in_flight` and `Uring::is_done` at every settle point, and
//!   `in_flight() == 0` at the end, dropped and detached tickets included.
//! - **Exactly once.** Every ticket redeems once, with the predicted output.
//!
//! # The kernel's rules the model encodes (verified on Linux 6.1, 6.12, 6.18 and 7.3)
//!
//! - SQEs of one submission (one `io_uring_enter`) are issued in order. A NOP, a read of a file
//!   in the page cache, and a read of a bad descriptor complete while being issued. A read of an
//!   empty pipe arms a poll and waits.
//! - A chain's first link is issued with the submission; each later link only once the one
//!   before it has completed, from task work that runs before the kernel returns to user space.
//! - A link fails when its result is an error or a short read (fewer bytes than asked for, e.g.
//!   at the end of the file; a read of 0 bytes is not short). The first failing soft-linked link
//!   cancels every later link (`ECANCELED`, never started), hard-linked or not; a failing
//!   hard-linked link does not.
//! - A link timeout on a read of an empty pipe fires: the read → ECANCELED (it ran), the timeout
//!   → ETIME (`Fired`). A link timeout on a link that completes by itself (here: a 10 s timeout
//!   on anything but a pipe read) is disarmed → ECANCELED (`Disarmed`, it ran). A link timeout
//!   whose link never started is cancelled with it.
//! - `AsyncCancel` by key matches only the SQE carrying that key (a chain's first link): while
//!   it waits on a pipe → 0; once it has completed → ENOENT. Two cancels of the same op in one
//!   submission both find it (→ 0 twice): it leaves the poll table only when its cancellation
//!   runs as task work, after the submission. A later cancel → ENOENT.
//! - The cancelled op completes with ECANCELED, and its chain goes on by the rules above (a
//!   hard-linked next link runs).
//! - Linux 6.1's NOP refuses every flag, `IORING_NOP_INJECT_RESULT` included (checked once at
//!   the start): an injecting NOP alone fails with EINVAL; in a chain, the kernel fails the
//!   chain as it prepares it: that link EINVAL, every other link and link timeout ECANCELED,
//!   none run. When that SQE ends its chain (or stands alone) the kernel also ends the
//!   `io_uring_enter` after it (the ring has no `IORING_SETUP_SUBMIT_ALL`): the ring enters
//!   again for the rest, so the task work of the first part (cancellations) runs in between.
//!
//! And one rule of the library: `Linked` infers "never started" from the results. When every
//! link failed, no link timeout fired and some link failed with an error of its own, it cannot
//! tell a chain the kernel refused at submission from one that ran, so every ECANCELED link reads
//! as `Cancelled` (see `Linked`); the model says so too.
//!
//! # Where the model does not look
//!
//! A link timeout on a pipe read fires after 100 µs, at a moment nothing in the test controls.
//! Until it has, whether a cancel of that read finds it is a race; so the test never cancels a
//! chain whose first link is such a read before a settle point, nor cancels by fd or "any"
//! without settling first. A settle waits until the ring's in-flight count and finished
//! tickets agree with the model; for that to prove every timer has fired, a chain still
//! waiting for one must be one the model counts as finished, so the generated chains never put
//! a pipe read without a timeout after one with a timeout (it could still be waiting on the
//! pipe when the timer has fired, or not yet started when it has not, and look the same).
//! The model predicts the results as if timers fired at once; nothing observes the difference.
//!
//! A read of the file may complete while it is issued, or later in an io-wq worker: which one
//! depends on the kernel and the file system (on tmpfs, Linux 6.12 and later hand every read
//! to a worker, and 6.1 every read that ends short of its length, to read the rest). A cancel
//! can catch such a read in the worker (→ 0 and the read ECANCELED, or EALREADY). So the test
//! treats a submission whose first link reads the file like the timed pipe reads above: it
//! cancels it by key only after a settle, when it is finished. And a chain never has a pipe
//! read after a file read: when the file read finishes in a worker, the kernel starts the next
//! link in that worker, blocking, so a pipe read there waits in the worker (where a cancel
//! finds it running) and its link timeout never starts (the kernel arms it when the first
//! attempt returns). Without pipe reads after them, submissions with a file read complete by
//! themselves, so a settle waits for them.
//!
//! # Running it
//!
//! CI runs 1,000 cases (under two seconds in a debug build). For more, in release mode
//! (100,000 cases take about 15 seconds on a 2-CPU machine):
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release -p uring-ops --test model
//! ```

mod common;

use proptest::prelude::*;
use std::fmt;
use std::io::{self, Write as _};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use uring_ops::core::Sqe;
use uring_ops::ops::{AsyncCancel, LinkTimeout, LinkTimeoutOutcome, Nop, Read};
use uring_ops::Outcome;
use uring_ops::{Chain, Error, Fd, Linked, Links, Op, Target, Ticket, Uring};

const FILE_LEN: usize = 200;
/// A descriptor number above any process's limit: always EBADF.
const CLOSED_FD: i32 = 1 << 30;
/// What read buffers hold before the kernel writes into them.
const FILL: u8 = 0xee;
/// Bytes a read of a pipe asks for.
const PIPE_READ: usize = 8;
/// A link timeout on a pipe read: fires (the pipe stays empty).
const FIRES: Duration = Duration::from_micros(100);
/// A link timeout on anything else: disarmed long before it would fire.
const DISARMED: Duration = Duration::from_secs(10);
/// How long anything the model says completes may take before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(5);

fn known_file() -> &'static (Fd, Vec<u8>) {
    static FILE: OnceLock<(Fd, Vec<u8>)> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("uring-ops-model-{}", std::process::id()));
        let data: Vec<u8> = (0..FILE_LEN).map(|i| (i * 7 + 3) as u8).collect();
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.write_all(&data).unwrap();
        std::fs::remove_file(&path).unwrap();
        (Fd::new(f), data)
    })
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

// ---------------------------------------------------------------------------------------------
// What the test pushes.

/// One op, alone or as a link of a chain.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OpSpec {
    Nop,
    Inject(i32),
    ReadFile {
        off: u64,
        len: u32,
    },
    ReadClosedFd,
    /// A read of one of the two (always empty) pipes.
    ReadPipe(usize),
}

impl OpSpec {
    /// The kernel's result for an op that completes by itself (not for a pipe read).
    fn result(self) -> i32 {
        match self {
            OpSpec::Nop => 0,
            // A kernel without IORING_NOP_INJECT_RESULT (6.1) refuses the NOP as it prepares it.
            OpSpec::Inject(res) if common::nop_injects() => res,
            OpSpec::Inject(_) => -libc::EINVAL,
            OpSpec::ReadFile { off, len } => {
                let start = (off as usize).min(FILE_LEN);
                (FILE_LEN - start).min(len as usize) as i32
            }
            OpSpec::ReadClosedFd => -libc::EBADF,
            OpSpec::ReadPipe(_) => unreachable!("a pipe read completes only when cancelled"),
        }
    }

    /// Whether `res` fails this op as a link: an error, or a short read.
    fn fails_link(self, res: i32) -> bool {
        match self {
            OpSpec::ReadFile { len, .. } => res < 0 || (res as u32) < len,
            OpSpec::ReadPipe(_) => res < 0 || res < PIPE_READ as i32,
            _ => res < 0,
        }
    }

    fn is_read(self) -> bool {
        !matches!(self, OpSpec::Nop | OpSpec::Inject(_))
    }

    /// Bytes the read asks for.
    fn read_len(self) -> usize {
        match self {
            OpSpec::ReadFile { len, .. } => len as usize,
            _ => PIPE_READ,
        }
    }
}

/// One link of a chain: an op, whether a link timeout guards it, whether it is hard-linked to
/// what follows.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LinkSpec {
    op: OpSpec,
    timeout: bool,
    hard: bool,
}

impl LinkSpec {
    fn sqes(&self) -> u32 {
        1 + u32::from(self.timeout)
    }

    /// A pipe read with no link timeout: it waits until cancelled.
    fn blocks(&self) -> bool {
        matches!(self.op, OpSpec::ReadPipe(_)) && !self.timeout
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sweep {
    /// `AsyncCancel::any()`.
    Any,
    /// `AsyncCancel::fd(pipe).all()`.
    Pipe(usize),
}

#[derive(Debug, Clone)]
enum Action {
    /// Push one op.
    Op(OpSpec),
    /// Push a chain.
    Chain(Vec<LinkSpec>),
    /// Push an `AsyncCancel` of a submission's key: one waiting on a pipe if `waiting` (and
    /// there is one), any other one otherwise.
    Cancel {
        waiting: bool,
        pick: usize,
    },
    /// Settle, then push `AsyncCancel::any()` or `::fd(pipe).all()` and submit.
    Sweep(Sweep),
    Submit,
    /// Submit, then redeem the oldest `n` held tickets whose submissions have finished.
    WaitOldest(usize),
    /// Submit and wait until everything that can complete has; check what is in flight.
    Settle,
    /// Drop a held ticket (not detach).
    Drop(usize),
    Detach(usize),
}

fn op_spec() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        4 => Just(OpSpec::Nop),
        2 => prop_oneof![Just(-libc::EIO), Just(-libc::EPERM), 0..1000i32].prop_map(OpSpec::Inject),
        4 => (0..(FILE_LEN as u64 + 20), 0..80u32)
            .prop_map(|(off, len)| OpSpec::ReadFile { off, len }),
        1 => Just(OpSpec::ReadClosedFd),
        2 => (0..2usize).prop_map(OpSpec::ReadPipe),
    ]
}

fn link_spec() -> impl Strategy<Value = LinkSpec> {
    (
        op_spec(),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(op, timeout, hard)| LinkSpec { op, timeout, hard })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => op_spec().prop_map(Action::Op),
        5 => prop::collection::vec(link_spec(), 1..=4).prop_map(|mut links| {
            // Once a pipe read is guarded by a timeout, so are the pipe reads after it: then a
            // chain whose timer has yet to fire is one the model has finished, and a settle
            // waits for it (see "Where the model does not look").
            let mut guarded = false;
            for l in &mut links {
                if let OpSpec::ReadPipe(_) = l.op {
                    guarded |= l.timeout;
                    l.timeout |= guarded;
                }
            }
            // And the chain ends before a pipe read that would follow a file read (see there).
            let is = |l: &LinkSpec, file: bool| match l.op {
                OpSpec::ReadFile { .. } => file,
                OpSpec::ReadPipe(_) => !file,
                _ => false,
            };
            if let Some(file) = links.iter().position(|l| is(l, true)) {
                if let Some(pipe) = links[file..].iter().position(|l| is(l, false)) {
                    links.truncate(file + pipe);
                }
            }
            Action::Chain(links)
        }),
        2 => (any::<bool>(), 0..16usize).prop_map(|(waiting, pick)| Action::Cancel { waiting, pick }),
        1 => prop_oneof![Just(Sweep::Any), (0..2usize).prop_map(Sweep::Pipe)].prop_map(Action::Sweep),
        3 => Just(Action::Submit),
        3 => (1..6usize).prop_map(Action::WaitOldest),
        1 => Just(Action::Settle),
        1 => (0..16usize).prop_map(Action::Drop),
        1 => (0..16usize).prop_map(Action::Detach),
    ]
}

// ---------------------------------------------------------------------------------------------
// Chains of ops chosen at run time.

/// A link of a chain: a NOP or a read. One type for both, so that a chain's type depends only
/// on where its link timeouts are.
#[derive(Debug)]
enum LinkOp {
    Nop(Nop),
    Read(Read<Vec<u8>>),
}

#[derive(Debug)]
enum LinkOut {
    Nop(io::Result<u32>),
    Read(io::Result<usize>, Vec<u8>),
}

// SAFETY: forwards `prepare` and `opcode` to the variant's op, whose contract is the same (it
// names only memory and files that op owns, and the op lives inside `self`); `complete` is
// called once.
unsafe impl Op for LinkOp {
    // The type's opcode, for allowlists by type; each value names its own (`opcode`).
    const OPCODE: u8 = Nop::OPCODE;
    const NAME: &'static str = "LinkOp";
    type Output = LinkOut;

    fn prepare(&mut self, sqe: &mut Sqe) {
        match self {
            LinkOp::Nop(op) => op.prepare(sqe),
            LinkOp::Read(op) => op.prepare(sqe),
        }
    }

    fn opcode(&self) -> u8 {
        match self {
            LinkOp::Nop(op) => op.opcode(),
            LinkOp::Read(op) => op.opcode(),
        }
    }

    fn fails_link(&self, res: i32) -> bool {
        match self {
            LinkOp::Nop(op) => op.fails_link(res),
            LinkOp::Read(op) => op.fails_link(res),
        }
    }

    fn complete(self, res: i32, flags: u32) -> LinkOut {
        match self {
            LinkOp::Nop(op) => LinkOut::Nop(op.complete(res, flags)),
            LinkOp::Read(op) => {
                let (r, buf) = op.complete(res, flags);
                LinkOut::Read(r, buf)
            }
        }
    }
}

/// The output of any link, link timeouts included.
#[derive(Debug)]
enum Out {
    Link(LinkOut),
    Timeout(io::Result<LinkTimeoutOutcome>),
}

trait IntoOut {
    fn into_out(self) -> Out;
}

impl IntoOut for LinkOut {
    fn into_out(self) -> Out {
        Out::Link(self)
    }
}

impl IntoOut for io::Result<LinkTimeoutOutcome> {
    fn into_out(self) -> Out {
        Out::Timeout(self)
    }
}

/// A chain's tuple of outputs, as a list.
trait Outcomes {
    fn outcomes(self) -> Vec<Linked<Out>>;
}

macro_rules! outcomes {
    ($($T:ident $i:tt),+) => {
        impl<$($T: IntoOut),+> Outcomes for ($(Linked<$T>,)+) {
            fn outcomes(self) -> Vec<Linked<Out>> {
                vec![$(self.$i.map(IntoOut::into_out)),+]
            }
        }
    };
}
outcomes!(A 0);
outcomes!(A 0, B 1);
outcomes!(A 0, B 1, C 2);
outcomes!(A 0, B 1, C 2, D 3);
outcomes!(A 0, B 1, C 2, D 3, E 4);
outcomes!(A 0, B 1, C 2, D 3, E 4, F 5);
outcomes!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
outcomes!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// The ticket of a chain of any shape.
trait ChainTicket {
    fn user_data(&self) -> u64;
    fn cancel(&self) -> AsyncCancel;
    fn is_done(&self, ring: &Uring) -> bool;
    fn wait(self: Box<Self>, ring: &mut Uring) -> Option<Vec<Linked<Out>>>;
    fn detach(self: Box<Self>, ring: &mut Uring) -> bool;
}

impl<L: Links> ChainTicket for Ticket<Chain<L>>
where
    L::Output: Outcomes,
{
    fn user_data(&self) -> u64 {
        Ticket::user_data(self)
    }
    fn cancel(&self) -> AsyncCancel {
        AsyncCancel::ticket(self)
    }
    fn is_done(&self, ring: &Uring) -> bool {
        ring.is_done(self)
    }
    fn wait(self: Box<Self>, ring: &mut Uring) -> Option<Vec<Linked<Out>>> {
        ring.wait_timeout(*self, PATIENCE)
            .ok()
            .and_then(Outcome::done)
            .map(Outcomes::outcomes)
    }
    fn detach(self: Box<Self>, ring: &mut Uring) -> bool {
        ring.detach(*self)
    }
}

/// The pipes' read ends.
struct Pipes([Fd; 2]);

impl Pipes {
    fn op(&self, spec: OpSpec) -> LinkOp {
        let (file, _) = known_file();
        match spec {
            OpSpec::Nop => LinkOp::Nop(Nop::new()),
            OpSpec::Inject(res) => LinkOp::Nop(Nop::new().inject_result(res)),
            OpSpec::ReadFile { off, len } => {
                LinkOp::Read(Read::new(file, vec![FILL; len as usize], off).len(len))
            }
            OpSpec::ReadClosedFd => {
                // SAFETY: `CLOSED_FD` is never open in this process (see its definition), so
                // the read cannot act on any file.
                LinkOp::Read(Read::new(
                    unsafe { Target::from_raw_fd(CLOSED_FD) },
                    vec![FILL; PIPE_READ],
                    0,
                ))
            }
            OpSpec::ReadPipe(p) => {
                LinkOp::Read(Read::new(&self.0[p], vec![FILL; PIPE_READ], u64::MAX))
            }
        }
    }
}

/// Sets the hard links and pushes a built chain.
fn push_built<L: Links>(
    ring: &mut Uring,
    mut chain: Chain<L>,
    hard: &[usize],
) -> Result<Box<dyn ChainTicket>, Error>
where
    L::Output: Outcomes,
{
    for &i in hard {
        chain = chain.hard(i);
    }
    let len = chain.len();
    match ring.push(chain) {
        Ok(t) => Ok(Box::new(t)),
        Err(e) => {
            assert_eq!(e.op.len(), len, "a refused chain comes back whole");
            Err(e.error)
        }
    }
}

/// Adds link timeout `$t` (if any), then the next link (if any), up to as many more links as
/// there are tokens in the list, and pushes the chain.
macro_rules! grow {
    ($ring:ident, $links:ident, $hard:ident, $chain:expr, $t:expr, [$($more:tt)*]) => {{
        let chain = $chain;
        match $t {
            Some(t) => grow!(@next $ring, $links, $hard, chain.then(t), [$($more)*]),
            None => grow!(@next $ring, $links, $hard, chain, [$($more)*]),
        }
    }};
    (@next $ring:ident, $links:ident, $hard:ident, $chain:expr, []) => {{
        assert!($links.next().is_none(), "at most 4 links");
        push_built($ring, $chain, &$hard)
    }};
    (@next $ring:ident, $links:ident, $hard:ident, $chain:expr, [$_x:tt $($more:tt)*]) => {{
        let chain = $chain;
        match $links.next() {
            None => push_built($ring, chain, &$hard),
            Some((op, t)) => grow!($ring, $links, $hard, chain.then(op), t, [$($more)*]),
        }
    }};
}

/// Builds the chain `specs` describes (a `LinkTimeout` after each link that has one, hard links
/// set with `Chain::hard`) and pushes it.
fn push_chain(
    ring: &mut Uring,
    pipes: &Pipes,
    specs: &[LinkSpec],
) -> Result<Box<dyn ChainTicket>, Error> {
    let mut hard = Vec::new();
    let mut sqe = 0;
    for s in specs {
        if s.hard {
            hard.push(sqe);
        }
        sqe += s.sqes() as usize;
    }
    let mut links = specs.iter().map(|s| {
        let after = if matches!(s.op, OpSpec::ReadPipe(_)) {
            FIRES
        } else {
            DISARMED
        };
        (pipes.op(s.op), s.timeout.then(|| LinkTimeout::new(after)))
    });
    let (first, t) = links.next().expect("a chain has a link");
    grow!(ring, links, hard, Chain::new(first), t, [x x x])
}

/// A held ticket.
enum Handle {
    Nop(Ticket<Nop>),
    Read(Ticket<Read<Vec<u8>>>),
    Cancel(Ticket<AsyncCancel>),
    Chain(Box<dyn ChainTicket>),
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Handle::Nop(t) => t.fmt(f),
            Handle::Read(t) => t.fmt(f),
            Handle::Cancel(t) => t.fmt(f),
            Handle::Chain(t) => write!(f, "chain {:#x}", t.user_data()),
        }
    }
}

impl Handle {
    fn user_data(&self) -> u64 {
        match self {
            Handle::Nop(t) => t.user_data(),
            Handle::Read(t) => t.user_data(),
            Handle::Cancel(t) => t.user_data(),
            Handle::Chain(t) => t.user_data(),
        }
    }

    fn cancel(&self) -> AsyncCancel {
        match self {
            Handle::Nop(t) => AsyncCancel::ticket(t),
            Handle::Read(t) => AsyncCancel::ticket(t),
            Handle::Cancel(t) => AsyncCancel::ticket(t),
            Handle::Chain(t) => t.cancel(),
        }
    }

    fn is_done(&self, ring: &Uring) -> bool {
        match self {
            Handle::Nop(t) => ring.is_done(t),
            Handle::Read(t) => ring.is_done(t),
            Handle::Cancel(t) => ring.is_done(t),
            Handle::Chain(t) => t.is_done(ring),
        }
    }

    fn detach(self, ring: &mut Uring) -> bool {
        match self {
            Handle::Nop(t) => ring.detach(t),
            Handle::Read(t) => ring.detach(t),
            Handle::Cancel(t) => ring.detach(t),
            Handle::Chain(t) => t.detach(ring),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model.

/// A result the kernel posted for one SQE, and whether the op ran (false: cancelled before it
/// started).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Res {
    raw: i32,
    ran: bool,
}

impl Res {
    const CANCELLED: Res = Res {
        raw: -libc::ECANCELED,
        ran: false,
    };

    fn ran(raw: i32) -> Res {
        Res { raw, ran: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    /// Pushed, not yet handed to the kernel.
    Queued,
    /// Waiting on a pipe at link `link`; `cancelling` once a cancel found it in the current
    /// submission.
    Waiting { link: usize, cancelling: bool },
    /// Every SQE has completed.
    Done,
}

#[derive(Debug)]
enum Kind {
    /// One op (`chain == false`) or a chain of links.
    Ops {
        links: Vec<LinkSpec>,
        chain: bool,
        /// Per link: its result and, if it has one, its link timeout's.
        res: Vec<(Option<Res>, Option<Res>)>,
        /// The next link to run.
        next: usize,
        /// A soft-linked link failed: the rest is cancelled.
        broken: bool,
    },
    /// `AsyncCancel` of submission `target`'s key.
    Cancel { target: usize, res: Option<i32> },
    /// `AsyncCancel::any()` or `::fd(pipe).all()`.
    Sweep { sweep: Sweep, res: Option<i32> },
}

/// Who holds the ticket.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Holder {
    Test,
    Dropped,
    Detached,
    Redeemed,
}

#[derive(Debug)]
struct Unit {
    kind: Kind,
    status: Status,
    holder: Holder,
    user_data: u64,
    /// Until the next settle, a cancel of it by key may or may not find it: its first link is a
    /// pipe read under a link timeout that may not have fired yet, or a file read that may be
    /// running in an io-wq worker.
    racy: bool,
}

impl Unit {
    fn ops(links: Vec<LinkSpec>, chain: bool) -> Unit {
        let racy = match links[0].op {
            OpSpec::ReadPipe(_) => chain && links[0].timeout,
            OpSpec::ReadFile { .. } => true,
            _ => false,
        };
        Unit {
            kind: Kind::Ops {
                res: vec![(None, None); links.len()],
                links,
                chain,
                next: 0,
                broken: false,
            },
            status: Status::Queued,
            holder: Holder::Test,
            user_data: 0,
            racy,
        }
    }

    fn single(kind: Kind) -> Unit {
        Unit {
            kind,
            status: Status::Queued,
            holder: Holder::Test,
            user_data: 0,
            racy: false,
        }
    }

    fn sqes(&self) -> u32 {
        match &self.kind {
            Kind::Ops { links, .. } => links.iter().map(LinkSpec::sqes).sum(),
            Kind::Cancel { .. } | Kind::Sweep { .. } => 1,
        }
    }

    /// The pipe its current link waits on.
    fn waiting_on(&self) -> Option<usize> {
        match (&self.kind, self.status) {
            (Kind::Ops { links, .. }, Status::Waiting { link, .. }) => match links[link].op {
                OpSpec::ReadPipe(p) => Some(p),
                _ => unreachable!("only pipe reads wait"),
            },
            _ => None,
        }
    }

    /// Whether its last SQE is one the kernel refuses as it prepares it (an injecting NOP where
    /// NOP takes no flags): without `IORING_SETUP_SUBMIT_ALL` the kernel ends the
    /// `io_uring_enter` there, and the ring enters again for the SQEs after it.
    fn ends_enter(&self) -> bool {
        match &self.kind {
            Kind::Ops { links, .. } => {
                let last = links.last().expect("a unit has a link");
                matches!(last.op, OpSpec::Inject(_)) && !last.timeout && !common::nop_injects()
            }
            Kind::Cancel { .. } | Kind::Sweep { .. } => false,
        }
    }

    /// Runs the links the kernel runs from `next` on, until one waits on a pipe or the chain
    /// ends.
    fn advance(&mut self) {
        let Kind::Ops {
            links,
            res,
            next,
            broken,
            chain,
        } = &mut self.kind
        else {
            unreachable!()
        };
        let refused = |l: &LinkSpec| matches!(l.op, OpSpec::Inject(_)) && !common::nop_injects();
        if *chain && *next == 0 && links.iter().any(refused) {
            // A link refused as it is prepared fails the whole chain: that link with its error,
            // every other one (link timeouts too) ECANCELED; none runs.
            for (l, r) in links.iter().zip(res.iter_mut()) {
                let own = if refused(l) {
                    Res {
                        raw: l.op.result(),
                        ran: false,
                    }
                } else {
                    Res::CANCELLED
                };
                *r = (Some(own), l.timeout.then_some(Res::CANCELLED));
            }
            *next = links.len();
            self.status = Status::Done;
            return;
        }
        while *next < links.len() {
            let i = *next;
            let l = links[i];
            if *broken {
                res[i] = (Some(Res::CANCELLED), l.timeout.then_some(Res::CANCELLED));
                *next += 1;
                continue;
            }
            if l.blocks() {
                self.status = Status::Waiting {
                    link: i,
                    cancelling: false,
                };
                return;
            }
            let (r, t) = if matches!(l.op, OpSpec::ReadPipe(_)) {
                // Its link timeout fires and cancels it.
                (-libc::ECANCELED, Some(Res::ran(-libc::ETIME)))
            } else {
                // It completes by itself, disarming its link timeout.
                let r = l.op.result();
                (r, l.timeout.then_some(Res::ran(-libc::ECANCELED)))
            };
            res[i] = (Some(Res::ran(r)), t);
            if l.op.fails_link(r) && !l.hard {
                *broken = true;
            }
            *next += 1;
        }
        self.status = Status::Done;
    }

    /// The pipe read it waits on was cancelled: it completes with ECANCELED and the chain goes
    /// on.
    fn cancelled(&mut self) {
        let Status::Waiting { link, .. } = self.status else {
            unreachable!()
        };
        let Kind::Ops {
            links,
            res,
            next,
            broken,
            ..
        } = &mut self.kind
        else {
            unreachable!()
        };
        res[link].0 = Some(Res::ran(-libc::ECANCELED));
        if !links[link].hard {
            *broken = true;
        }
        *next = link + 1;
        self.advance();
    }
}

struct Model {
    capacity: u32,
    /// SQEs pushed and not yet handed to the kernel.
    queued: u32,
    /// Every submission pushed, in order.
    units: Vec<Unit>,
    /// Submissions not yet handed to the kernel, in order.
    batch: Vec<usize>,
}

impl Model {
    /// Whether a push of `n` SQEs fits.
    fn fits(&self, n: u32) -> bool {
        self.queued + n <= self.capacity
    }

    fn push(&mut self, unit: Unit) -> usize {
        self.queued += unit.sqes();
        self.units.push(unit);
        self.batch.push(self.units.len() - 1);
        self.units.len() - 1
    }

    /// One `io_uring_enter` consuming every queued SQE: issues them in order, then runs what
    /// the cancellations set off (task work) before returning.
    fn submit(&mut self) {
        self.queued = 0;
        for u in std::mem::take(&mut self.batch) {
            match self.units[u].kind {
                Kind::Ops { .. } => self.units[u].advance(),
                Kind::Cancel { target, .. } => {
                    let found = match &mut self.units[target].status {
                        Status::Waiting {
                            link: 0,
                            cancelling,
                        } => {
                            *cancelling = true;
                            true
                        }
                        Status::Queued => unreachable!("a cancel follows its target"),
                        _ => false,
                    };
                    let Kind::Cancel { res, .. } = &mut self.units[u].kind else {
                        unreachable!()
                    };
                    *res = Some(if found { 0 } else { -libc::ENOENT });
                }
                Kind::Sweep { sweep, .. } => {
                    let mut n = 0;
                    for t in &mut self.units {
                        let hit = match (sweep, t.waiting_on()) {
                            (_, None) => false,
                            (Sweep::Any, Some(_)) => true,
                            (Sweep::Pipe(p), Some(q)) => p == q,
                        };
                        if let (true, Status::Waiting { cancelling, .. }) = (hit, &mut t.status) {
                            *cancelling = true;
                            n += 1;
                        }
                    }
                    let Kind::Sweep { res, .. } = &mut self.units[u].kind else {
                        unreachable!()
                    };
                    *res = Some(n);
                }
            }
            if !matches!(self.units[u].kind, Kind::Ops { .. }) {
                self.units[u].status = Status::Done;
            }
            if self.units[u].ends_enter() {
                self.run_task_work();
            }
        }
        self.run_task_work();
    }

    /// What runs as the kernel returns to user space: the cancellations set off complete
    /// their ops, and the chains go on.
    fn run_task_work(&mut self) {
        for unit in &mut self.units {
            if let Status::Waiting {
                cancelling: true, ..
            } = unit.status
            {
                unit.cancelled();
            }
        }
    }

    /// Submissions still in flight (some SQE not completed).
    fn in_flight(&self) -> usize {
        self.units
            .iter()
            .filter(|u| u.status != Status::Done)
            .count()
    }

    fn waiting(&self) -> usize {
        self.units
            .iter()
            .filter(|u| u.waiting_on().is_some())
            .count()
    }

    /// Held tickets, oldest first.
    fn held(&self) -> Vec<usize> {
        (0..self.units.len())
            .filter(|&u| self.units[u].holder == Holder::Test)
            .collect()
    }
}

/// A result with its error as a bare errno (`-1` if it has none), to compare.
fn errno<T: Copy>(r: &io::Result<T>) -> Result<T, i32> {
    r.as_ref()
        .map(|v| *v)
        .map_err(|e| e.raw_os_error().unwrap_or(-1))
}

/// What one link's output must be, `raw` being the kernel's result.
fn expect_link(op: OpSpec, raw: i32, got: &LinkOut) -> Result<(), TestCaseError> {
    match (op.is_read(), got) {
        (false, LinkOut::Nop(r)) => {
            let want = if raw < 0 { Err(-raw) } else { Ok(raw as u32) };
            prop_assert_eq!(errno(r), want, "{:?}", op);
        }
        (true, LinkOut::Read(r, buf)) => {
            let mut want = vec![FILL; op.read_len()];
            if raw < 0 {
                prop_assert_eq!(errno(r), Err(-raw), "{:?}", op);
            } else {
                let n = raw as usize;
                prop_assert_eq!(errno(r), Ok(n), "{:?}", op);
                let OpSpec::ReadFile { off, .. } = op else {
                    unreachable!("only file reads succeed")
                };
                let (_, data) = known_file();
                want[..n].copy_from_slice(&data[(off as usize).min(FILE_LEN)..][..n]);
            }
            prop_assert_eq!(
                buf,
                &want,
                "the buffer holds what was read, the rest untouched"
            );
        }
        (_, got) => prop_assert!(false, "{op:?} gave {got:?}"),
    }
    Ok(())
}

/// Checks a chain's outputs against the model's results, with the library's reading of which
/// links never started.
fn expect_chain(
    links: &[LinkSpec],
    res: &[(Option<Res>, Option<Res>)],
    got: Vec<Linked<Out>>,
) -> Result<(), TestCaseError> {
    let mut want: Vec<(Option<OpSpec>, Res)> = Vec::new();
    for (l, (r, t)) in links.iter().zip(res) {
        want.push((Some(l.op), r.expect("the chain is done")));
        if l.timeout {
            want.push((None, t.expect("the chain is done")));
        }
    }
    // The library's inference (see the module docs and `Linked`): with every link failed, no
    // timeout fired and an error of some link's own, every ECANCELED link reads as cancelled.
    let all_failed = want.iter().all(|(_, r)| r.raw < 0);
    let fired = want
        .iter()
        .any(|(op, r)| op.is_none() && r.raw == -libc::ETIME);
    let own_error = want
        .iter()
        .any(|(op, r)| op.is_some() && r.raw < 0 && r.raw != -libc::ECANCELED);
    let refused_look = all_failed && !fired && own_error;

    prop_assert_eq!(got.len(), want.len());
    for (i, ((op, r), out)) in want.into_iter().zip(got).enumerate() {
        let cancelled = if refused_look {
            r.raw == -libc::ECANCELED
        } else {
            !r.ran
        };
        prop_assert_eq!(
            out.is_cancelled(),
            cancelled,
            "link {} of {:?}: {:?}",
            i,
            links,
            out
        );
        match (op, out.into_inner()) {
            (Some(op), Out::Link(o)) => expect_link(op, r.raw, &o)?,
            (None, Out::Timeout(t)) => {
                let want = match r.raw {
                    e if e == -libc::ETIME => LinkTimeoutOutcome::Fired,
                    e if e == -libc::ECANCELED => LinkTimeoutOutcome::Disarmed,
                    e => unreachable!("the model gives a link timeout {e}"),
                };
                prop_assert_eq!(errno(&t), Ok(want), "link {} of {:?}", i, links);
            }
            (op, out) => prop_assert!(false, "link {i} ({op:?}) gave {out:?}"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The test.

struct Harness {
    ring: Uring,
    pipes: Pipes,
    model: Model,
    /// The tickets the test holds, by submission.
    handles: Vec<Option<Handle>>,
}

impl Harness {
    /// Pushes what `unit` describes, checking `QueueFull` against the model.
    fn push(&mut self, unit: Unit) -> Result<(), TestCaseError> {
        let n = unit.sqes();
        let fits = self.model.fits(n);
        let pushed = match &unit.kind {
            Kind::Ops { links, chain, .. } if *chain => {
                push_chain(&mut self.ring, &self.pipes, links).map(Handle::Chain)
            }
            Kind::Ops { links, .. } => match self.pipes.op(links[0].op) {
                LinkOp::Nop(op) => self.ring.push(op).map(Handle::Nop).map_err(|e| e.error),
                LinkOp::Read(op) => self.ring.push(op).map(Handle::Read).map_err(|e| e.error),
            },
            Kind::Cancel { target, .. } => {
                let op = match &self.handles[*target] {
                    Some(h) => h.cancel(),
                    // A dropped, detached or redeemed ticket: by the key it had.
                    None => AsyncCancel::new(self.model.units[*target].user_data),
                };
                self.ring.push(op).map(Handle::Cancel).map_err(|e| e.error)
            }
            Kind::Sweep { sweep, .. } => {
                let op = match *sweep {
                    Sweep::Any => AsyncCancel::any(),
                    Sweep::Pipe(p) => AsyncCancel::fd(&self.pipes.0[p]).all(),
                };
                self.ring.push(op).map(Handle::Cancel).map_err(|e| e.error)
            }
        };
        match pushed {
            Ok(handle) => {
                prop_assert!(
                    fits,
                    "push of {} SQEs succeeded but the model says the SQ is full",
                    n
                );
                let mut unit = unit;
                unit.user_data = handle.user_data();
                self.model.push(unit);
                self.handles.push(Some(handle));
            }
            Err(Error::QueueFull { needed, free }) => {
                prop_assert!(!fits, "QueueFull but the model says {} SQEs fit", n);
                prop_assert_eq!((needed, free), (n, self.model.capacity - self.model.queued));
            }
            Err(e) => prop_assert!(false, "unexpected push error {e}"),
        }
        Ok(())
    }

    fn submit(&mut self) {
        self.ring.submit().unwrap();
        self.model.submit();
    }

    /// Submits, waits until the ring agrees with the model on what is in flight (every held
    /// ticket done or not as the model says, and the count, dropped and detached submissions
    /// included), and fails if that takes longer than `PATIENCE`.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        self.submit();
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.ring.reap();
            let want = self.model.in_flight();
            let got = self.ring.in_flight();
            let agree = got == want
                && self
                    .handles
                    .iter()
                    .zip(&self.model.units)
                    .all(|(h, u)| match h {
                        Some(h) => h.is_done(&self.ring) == (u.status == Status::Done),
                        None => true,
                    });
            if agree {
                break;
            }
            if Instant::now() > deadline {
                let differ: Vec<_> = self
                    .handles
                    .iter()
                    .zip(&self.model.units)
                    .filter_map(|(h, u)| {
                        let h = h.as_ref()?;
                        (h.is_done(&self.ring) != (u.status == Status::Done)).then_some(u)
                    })
                    .collect();
                prop_assert!(
                    false,
                    "in flight: ring {}, model {}; done differs for {:?}",
                    got,
                    want,
                    differ
                );
            }
            // A NOP through the ring enters the kernel: that flushes an overflowed CQ and runs
            // pending task work. (Timers fire on their own.)
            let t = self.ring.push(Nop::new()).unwrap();
            prop_assert_eq!(self.ring.wait(t).unwrap().unwrap(), 0);
            std::thread::sleep(Duration::from_micros(50));
        }
        // Every pipe-read timeout has fired by now.
        for u in &mut self.model.units {
            u.racy = false;
        }
        Ok(())
    }

    /// Redeems held ticket `u`, which the model says is done, and checks its output.
    fn redeem(&mut self, u: usize) -> Result<(), TestCaseError> {
        let handle = self.handles[u].take().expect("a held ticket");
        let unit = &mut self.model.units[u];
        prop_assert_eq!(unit.status, Status::Done);
        unit.holder = Holder::Redeemed;
        let ring = &mut self.ring;
        let timeout = || TestCaseError::fail(format!("no result within {PATIENCE:?}: {unit:?}"));
        match (&unit.kind, handle) {
            (Kind::Ops { links, res, .. }, Handle::Chain(t)) => {
                let out = t.wait(ring).ok_or_else(timeout)?;
                expect_chain(links, res, out)?;
            }
            (Kind::Ops { links, res, .. }, Handle::Nop(t)) => {
                let r = ring
                    .wait_timeout(t, PATIENCE)
                    .ok()
                    .and_then(Outcome::done)
                    .ok_or_else(timeout)?;
                expect_link(links[0].op, res[0].0.unwrap().raw, &LinkOut::Nop(r))?;
            }
            (Kind::Ops { links, res, .. }, Handle::Read(t)) => {
                let (r, buf) = ring
                    .wait_timeout(t, PATIENCE)
                    .ok()
                    .and_then(Outcome::done)
                    .ok_or_else(timeout)?;
                expect_link(links[0].op, res[0].0.unwrap().raw, &LinkOut::Read(r, buf))?;
            }
            (Kind::Cancel { res, .. } | Kind::Sweep { res, .. }, Handle::Cancel(t)) => {
                let r = ring
                    .wait_timeout(t, PATIENCE)
                    .ok()
                    .and_then(Outcome::done)
                    .ok_or_else(timeout)?;
                let want = match res.expect("done") {
                    n if n < 0 => Err(-n),
                    n => Ok(n as u32),
                };
                prop_assert_eq!(errno(&r), want, "{:?}", unit);
            }
            (kind, h) => unreachable!("{kind:?} with {h:?}"),
        }
        Ok(())
    }

    /// Settles, then cancels every op waiting (on one pipe, or on any).
    fn sweep(&mut self, sweep: Sweep) -> Result<(), TestCaseError> {
        self.settle()?;
        self.push(Unit::single(Kind::Sweep { sweep, res: None }))?;
        self.submit();
        Ok(())
    }

    fn act(&mut self, a: Action) -> Result<(), TestCaseError> {
        match a {
            Action::Op(op) => self.push(Unit::ops(
                vec![LinkSpec {
                    op,
                    timeout: false,
                    hard: false,
                }],
                false,
            ))?,
            Action::Chain(links) => self.push(Unit::ops(links, true))?,
            Action::Cancel { waiting, pick } => {
                let units = &self.model.units;
                let targets: Vec<usize> = (0..units.len())
                    .filter(|&u| {
                        !units[u].racy
                            && (!waiting
                                || matches!(units[u].status, Status::Waiting { link: 0, .. }))
                    })
                    .collect();
                if !targets.is_empty() {
                    let target = targets[pick % targets.len()];
                    self.push(Unit::single(Kind::Cancel { target, res: None }))?;
                }
            }
            Action::Sweep(sweep) => self.sweep(sweep)?,
            Action::Submit => self.submit(),
            Action::WaitOldest(n) => {
                // Submit first, so that what is queued afterwards does not depend on whether the
                // waited ops happened to be reaped already.
                self.submit();
                let done: Vec<usize> = self
                    .model
                    .held()
                    .into_iter()
                    .filter(|&u| self.model.units[u].status == Status::Done)
                    .take(n)
                    .collect();
                for u in done {
                    self.redeem(u)?;
                }
            }
            Action::Settle => self.settle()?,
            Action::Drop(i) | Action::Detach(i) => {
                let held = self.model.held();
                if !held.is_empty() {
                    let u = held[i % held.len()];
                    let handle = self.handles[u].take().expect("held");
                    if matches!(a, Action::Drop(_)) {
                        drop(handle);
                        self.model.units[u].holder = Holder::Dropped;
                    } else {
                        prop_assert!(handle.detach(&mut self.ring), "a held ticket is live");
                        self.model.units[u].holder = Holder::Detached;
                    }
                }
            }
        }
        Ok(())
    }

    /// Redeems every held ticket whose submission the model says is done.
    fn redeem_done(&mut self) -> Result<(), TestCaseError> {
        for u in self.model.held() {
            if self.model.units[u].status == Status::Done {
                self.redeem(u)?;
            }
        }
        Ok(())
    }

    /// Ends the run: everything that completes by itself is redeemed; what waits on a pipe is
    /// cancelled (as often as hard links lead a chain to another pipe read), and redeemed; then
    /// nothing, dropped or detached, is left in flight.
    fn finish(mut self) -> Result<(), TestCaseError> {
        self.settle()?;
        self.redeem_done()?;
        let mut rounds = 0;
        while self.model.waiting() > 0 {
            self.sweep(Sweep::Any)?;
            rounds += 1;
            prop_assert!(rounds <= 4, "a chain has at most 4 pipe reads");
        }
        self.settle()?;
        self.redeem_done()?;
        prop_assert!(self.model.held().is_empty(), "every ticket redeemed");
        prop_assert_eq!(self.model.in_flight(), 0);
        prop_assert_eq!(
            self.ring.in_flight(),
            0,
            "dropped and detached ops completed"
        );
        prop_assert_eq!(self.ring.cancel_all(Duration::from_secs(1)), 0);
        Ok(())
    }
}

fn run(entries: u32, actions: Vec<Action>) -> Result<(), TestCaseError> {
    // The write ends stay open (and empty) until the end: a pipe read waits.
    let [(a, _a_tx), (b, _b_tx)] = [pipe(), pipe()];
    let ring = Uring::new(entries).unwrap();
    let capacity = ring.ring().info().sq_entries;
    let mut h = Harness {
        ring,
        pipes: Pipes([Fd::new(a), Fd::new(b)]),
        model: Model {
            capacity,
            queued: 0,
            units: Vec::new(),
            batch: Vec::new(),
        },
        handles: Vec::new(),
    };
    for a in actions {
        h.act(a)?;
    }
    h.finish()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ring_agrees_with_model(
        entries in prop_oneof![Just(2u32), Just(4), Just(8)],
        actions in prop::collection::vec(action(), 0..40),
    ) {
        run(entries, actions)?;
    }
}
