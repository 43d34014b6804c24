//! A forked child shares its parent's kernel ring (the fd and the ring memory are inherited)
//! but not the parent's bookkeeping: its copy of the ring keeps its own positions in the
//! queues and hands out the same keys as the parent's. So a child must not use an inherited
//! `Uring` or `Context`: its completions would be taken for the parent's ops (which would then
//! be redeemed, and their buffers freed, while the kernel still writes into them), and its
//! drop would cancel the parent's ops. In the child, every step that would reach the kernel is
//! refused with `ForkedChild` (`Uring::push` itself only queues into the child's private copy
//! of the ring), and the child's drop touches nothing of the kernel's.
//!
//! The tests fork one at a time (a lock serialises them), and the child only runs ring
//! operations and `_exit`s, reporting through its exit status.
// Real io_uring system calls and fork: Miri can run neither.
#![cfg(not(miri))]

mod common;

use common::pipe;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uring_ops::core::Builder;
use uring_ops::ops::{Nop, Read};
use uring_ops::Outcome;
use uring_ops::{Context, Error, Fd, Ticket, Uring};

/// One fork at a time in this process.
static FORKING: Mutex<()> = Mutex::new(());

type ReadTicket = Ticket<Read<Vec<u8>>>;

/// The two rings of this crate, for tests that run on both.
trait TestRing: Sized {
    /// Whether `push` itself is refused in a forked child (else only what reaches the kernel).
    const PUSH_REFUSED: bool;
    fn push_read(&mut self, fd: &Fd, cap: usize) -> Result<ReadTicket, Error>;
    /// Pushes a NOP and detaches its ticket.
    fn push_nop(&mut self) -> Result<(), Error>;
    fn submit(&mut self) -> Result<u32, Error>;
    fn wait_timeout(&mut self, t: ReadTicket, d: Duration)
        -> Result<Outcome<Read<Vec<u8>>>, Error>;
}

impl TestRing for Uring {
    const PUSH_REFUSED: bool = false;
    fn push_read(&mut self, fd: &Fd, cap: usize) -> Result<ReadTicket, Error> {
        self.push(Read::new(fd, Vec::with_capacity(cap), u64::MAX))
            .map_err(|e| e.error)
    }
    fn push_nop(&mut self) -> Result<(), Error> {
        let t = self.push(Nop::new()).map_err(|e| e.error)?;
        self.detach(t);
        Ok(())
    }
    fn submit(&mut self) -> Result<u32, Error> {
        Uring::submit(self)
    }
    fn wait_timeout(
        &mut self,
        t: ReadTicket,
        d: Duration,
    ) -> Result<Outcome<Read<Vec<u8>>>, Error> {
        Uring::wait_timeout(self, t, d)
    }
}

impl TestRing for Context {
    const PUSH_REFUSED: bool = true;
    fn push_read(&mut self, fd: &Fd, cap: usize) -> Result<ReadTicket, Error> {
        self.push(Read::new(fd, Vec::with_capacity(cap), u64::MAX))
            .map_err(|e| e.error)
    }
    fn push_nop(&mut self) -> Result<(), Error> {
        let t = self.push(Nop::new()).map_err(|e| e.error)?;
        self.detach(t);
        Ok(())
    }
    fn submit(&mut self) -> Result<u32, Error> {
        Context::submit(self)
    }
    fn wait_timeout(
        &mut self,
        t: ReadTicket,
        d: Duration,
    ) -> Result<Outcome<Read<Vec<u8>>>, Error> {
        Context::wait_timeout(self, t, d)
    }
}

/// Whether `e` is the refusal of a forked child's use of an inherited ring.
fn is_forked_child(e: &Error) -> bool {
    matches!(e, Error::Core(uring_ops::core::Error::ForkedChild))
        && e.raw_os_error() == Some(libc::EPERM)
}

/// The child's exit statuses besides 0.
const PUSHED: i32 = 2;
const SUBMITTED: i32 = 3;
const WAITED: i32 = 4;
const SLOW_DROP: i32 = 5;
const PANICKED: i32 = 6;

fn describe(code: i32) -> String {
    match code {
        PUSHED => "the child's push failed, or was not refused with ForkedChild".into(),
        SUBMITTED => "the child's submit was not refused with ForkedChild".into(),
        WAITED => "the child's wait was not refused with ForkedChild".into(),
        SLOW_DROP => "the child's drop of the ring took 500 ms or more".into(),
        PANICKED => "the child panicked".into(),
        c => format!("exit status {c}"),
    }
}

/// Forks. In the child, runs `child` and `_exit`s with what it returns (never returns); in the
/// parent, waits for the child and returns its exit status.
fn fork_and_wait(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `child` (ring operations of this process's own rings; the other
    // threads of the test harness hold none of their locks) and then `_exit`s, skipping every
    // destructor and atexit handler of the copied process state.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = catch_unwind(AssertUnwindSafe(child)).unwrap_or(PANICKED);
        // SAFETY: ends the child at once, as above.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    loop {
        // SAFETY: `status` is a live, writable int; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = io::Error::last_os_error();
        assert_eq!(err.raw_os_error(), Some(libc::EINTR), "waitpid: {err}");
    }
    assert!(libc::WIFEXITED(status), "child did not exit: {status:#x}");
    libc::WEXITSTATUS(status)
}

/// The child tries every use of the inherited ring (each that would reach the kernel must be
/// refused), then drops it.
///
/// `parents` is a ticket of the parent's (its copy, in the child).
fn child_uses<R: TestRing>(mut ring: R, parents: ReadTicket) -> i32 {
    match ring.push_nop() {
        Err(e) if R::PUSH_REFUSED && is_forked_child(&e) => {}
        Ok(()) if !R::PUSH_REFUSED => {}
        _ => return PUSHED,
    }
    match ring.submit() {
        Err(e) if is_forked_child(&e) => {}
        _ => return SUBMITTED,
    }
    match ring.wait_timeout(parents, Duration::from_millis(100)) {
        Err(e) if is_forked_child(&e) => {}
        _ => return WAITED,
    }
    child_drops(ring)
}

/// The child drops the inherited ring, which must be prompt (no cancelling, no waiting).
fn child_drops<R>(ring: R) -> i32 {
    let start = Instant::now();
    drop(ring);
    if start.elapsed() >= Duration::from_millis(500) {
        return SLOW_DROP;
    }
    0
}

/// Writes `data` into a pipe's write end.
fn write(tx: &OwnedFd, data: &[u8]) {
    std::fs::File::from(tx.try_clone().unwrap())
        .write_all(data)
        .unwrap();
}

/// The parent has a read in flight when it forks; the child tries to push, submit and wait on
/// the inherited ring, then drops it. Afterwards the parent's ring works as if the child had
/// never been: its read in flight completes with the data written, and a new read (which gets
/// the key the child's NOP would have had) is not completed by anything of the child's.
fn child_use_is_refused<R: TestRing>(what: &str, mut ring: R) {
    let (rx_a, tx_a) = pipe();
    let (rx_b, tx_b) = pipe();
    let a = ring.push_read(&rx_a, 8).unwrap();
    ring.submit().unwrap();

    let _one = FORKING.lock().unwrap_or_else(|p| p.into_inner());
    // The child gets the ring and (its copy of) the ticket; the parent keeps both.
    let ring_ptr: *mut R = &mut ring;
    let a_ptr: *const ReadTicket = &a;
    let code = fork_and_wait(|| {
        // SAFETY: in the child, these are the child's own copies of `ring` and `a`, which the
        // child moves out once and then never returns to the frames that own them (`_exit`).
        let (ring, a) = unsafe { (ring_ptr.read(), a_ptr.read()) };
        child_uses(ring, a)
    });

    let mut problems = Vec::new();
    if code != 0 {
        problems.push(format!("child: {}", describe(code)));
    }
    // A new read: its key is the one the child's NOP got in the child's copy of the ring.
    let b = ring.push_read(&rx_b, 64).unwrap();
    ring.submit().unwrap();
    match ring.wait_timeout(b, Duration::from_millis(200)) {
        Ok(Outcome::Pending(b)) => {
            write(&tx_b, b"b-data");
            match ring.wait_timeout(b, Duration::from_secs(5)) {
                Ok(Outcome::Done((n, buf))) if n.as_ref().ok() == Some(&6) && buf == b"b-data" => {}
                other => problems.push(format!("read b: {other:?}")),
            }
        }
        Ok(Outcome::Done((res, buf))) => {
            // Redeemed although the kernel still has the read: its buffer is freed now. Put
            // a canary where it was and let the kernel's read land.
            drop(buf);
            // On the heap, of the freed buffer's size, so that it likely takes its place.
            #[allow(clippy::useless_vec)]
            let canary = vec![0xAAu8; 64];
            write(&tx_b, b"STRAY!");
            std::thread::sleep(Duration::from_millis(100));
            let hit = canary.iter().any(|&b| b != 0xAA);
            problems.push(format!(
                "read b completed ({res:?}) before its pipe was written (by the child's NOP \
                 completion); the kernel then wrote into its freed buffer: canary {}",
                if hit {
                    "overwritten"
                } else {
                    "intact this time"
                }
            ));
        }
        Err(e) => problems.push(format!("read b: {e}")),
    }
    write(&tx_a, b"a-data");
    match ring.wait_timeout(a, Duration::from_secs(5)) {
        Ok(Outcome::Done((n, buf))) if n.as_ref().ok() == Some(&6) && buf == b"a-data" => {}
        other => problems.push(format!("read a (in flight at the fork): {other:?}")),
    }
    assert!(problems.is_empty(), "{what}: {problems:#?}");
    drop((rx_a, rx_b));
}

/// The parent has a read in flight when it forks; the child only drops the inherited ring.
/// The parent's read is not cancelled: it completes with the data written afterwards.
fn child_drop_is_harmless<R: TestRing>(what: &str, mut ring: R) {
    let (rx, tx) = pipe();
    let t = ring.push_read(&rx, 8).unwrap();
    ring.submit().unwrap();

    let _one = FORKING.lock().unwrap_or_else(|p| p.into_inner());
    let ring_ptr: *mut R = &mut ring;
    let code = fork_and_wait(|| {
        // SAFETY: as in `child_use_is_refused`.
        child_drops(unsafe { ring_ptr.read() })
    });

    let mut problems = Vec::new();
    if code != 0 {
        problems.push(format!("child: {}", describe(code)));
    }
    write(&tx, b"intact");
    match ring.wait_timeout(t, Duration::from_secs(5)) {
        Ok(Outcome::Done((n, buf))) if n.as_ref().ok() == Some(&6) && buf == b"intact" => {}
        other => problems.push(format!("the parent's read: {other:?}")),
    }
    assert!(problems.is_empty(), "{what}: {problems:#?}");
}

/// An SQPOLL ring, or `None` (reported as skipped) where the kernel refuses one.
fn sqpoll_uring(test: &str) -> Option<Uring> {
    match Uring::with_builder(&Builder::new(8).sqpoll(Duration::from_millis(50))) {
        Ok(ring) => Some(ring),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => {
            common::skip(format_args!("{test}: no SQPOLL ring here: {e}"));
            None
        }
        Err(e) => panic!("{test}: SQPOLL setup: {e}"),
    }
}

#[test]
fn a_forked_child_cannot_use_an_inherited_uring() {
    child_use_is_refused("Uring", Uring::new(8).unwrap());
}

#[test]
fn a_forked_child_cannot_use_an_inherited_sqpoll_uring() {
    if let Some(ring) = sqpoll_uring("a_forked_child_cannot_use_an_inherited_sqpoll_uring") {
        child_use_is_refused("SQPOLL Uring", ring);
    }
}

#[test]
fn a_forked_child_cannot_use_an_inherited_context() {
    child_use_is_refused("Context", Context::new(8).unwrap());
}

#[test]
fn a_forked_childs_drop_leaves_the_parents_uring_alone() {
    child_drop_is_harmless("Uring", Uring::new(8).unwrap());
}

#[test]
fn a_forked_childs_drop_leaves_the_parents_context_alone() {
    child_drop_is_harmless("Context", Context::new(8).unwrap());
}

/// Registration from a forked child is refused: the kernel's ring is the parent's too, and
/// unregistering its buffers would break the parent's pool behind its back.
#[test]
fn a_forked_child_cannot_register_on_an_inherited_context() {
    let _one = FORKING.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = Context::new(8).unwrap();
    let pool = uring_ops::FixedBufs::register(&ctx, 1, 4096).unwrap();
    let code = fork_and_wait(|| {
        let unregister = ctx.register().unregister_buffers();
        let files = ctx.register().register_files_sparse(4);
        let refused = |r: &Result<(), uring_ops::core::Error>| {
            matches!(r, Err(uring_ops::core::Error::ForkedChild))
        };
        i32::from(!(refused(&unregister) && refused(&files)))
    });
    assert_eq!(
        code, 0,
        "a child's registration was not refused with ForkedChild"
    );
    // The parent's pool still serves fixed reads.
    let f = common::temp_file("fork-register", &[5u8; 64]);
    let t = ctx
        .push(uring_ops::ops::ReadFixed::new(
            &f.fd,
            pool.get().unwrap(),
            0,
        ))
        .unwrap();
    let (n, buf) = ctx.wait(t).unwrap();
    assert_eq!(n.unwrap(), 64);
    assert!(buf.iter().all(|&b| b == 5));
}
