//! Helpers shared by the real-kernel integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};
use uring_core::{sys, Backend, Cqe, Error, Ring};

/// Reports a test that could not run on this kernel. Written straight to the process's stderr
/// (not through `eprintln!`, which the test harness captures), so it shows in a plain
/// `cargo test` run.
pub fn skip(test: &str, why: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{test}: skipped: {why}");
}

/// Whether the running kernel is at least `major.minor` (from its release), for behaviour no
/// probe or errno shows.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// Builds a ring, or reports the test skipped when the kernel refuses the setup with
/// `EINVAL`/`EPERM`/`EOPNOTSUPP` (a flag it does not know or does not allow).
pub fn build_or_skip(test: &str, b: &uring_core::Builder) -> Option<Ring> {
    match b.build() {
        Ok(r) => Some(r),
        Err(e @ Error::Os { .. })
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL) | Some(libc::EPERM) | Some(libc::EOPNOTSUPP)
            ) =>
        {
            skip(
                test,
                format_args!("the kernel refused {:?}: {e}", b.setup_flags()),
            );
            None
        }
        Err(e) => panic!("{test}: setup failed: {e}"),
    }
}

/// Reserves `n` NOPs with user data `first ..` and commits them.
pub fn push_nops<B: Backend>(ring: &mut Ring<B>, n: u32, first: u64) {
    let mut r = ring.sq().reserve(n).expect("room for the NOPs");
    for i in 0..n {
        r.get(i)
            .unwrap()
            .set_opcode(sys::IORING_OP_NOP as u8)
            .set_user_data(first + u64::from(i));
    }
    // SAFETY: NOPs name no memory.
    unsafe { r.commit() };
}

/// Checks off completions: every user data must be expected and seen once, with result 0.
#[derive(Debug, Default)]
pub struct Tally {
    seen: HashSet<u64>,
}

impl Tally {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn count(&self) -> usize {
        self.seen.len()
    }

    /// Whether a completion with this user data was seen.
    pub fn contains(&self, user_data: u64) -> bool {
        self.seen.contains(&user_data)
    }

    /// Records one completion; panics on a duplicate or a failed NOP.
    pub fn add(&mut self, cqe: Cqe) {
        self.add_expecting(cqe, 0);
    }

    /// Records one completion whose result must be `res`; panics on a duplicate.
    pub fn add_expecting(&mut self, cqe: Cqe, res: i32) {
        assert_eq!(
            cqe.raw_result(),
            res,
            "completion {cqe:?}: unexpected result"
        );
        assert!(
            self.seen.insert(cqe.user_data()),
            "user data {} completed twice",
            cqe.user_data()
        );
    }

    /// Panics unless exactly the user data `0..n` were seen.
    pub fn assert_exactly(&self, n: u64) {
        assert_eq!(self.seen.len() as u64, n, "number of distinct completions");
        assert!(
            self.seen.iter().all(|&u| u < n),
            "unexpected user data among the completions"
        );
    }
}

/// Reaps (without blocking in the kernel for long) until `n` completions have been tallied, or
/// panics at the deadline. Enters the kernel with short timed waits so overflowed completions
/// are flushed in.
pub fn reap_until<B: Backend>(ring: &mut Ring<B>, tally: &mut Tally, n: usize, within: Duration) {
    reap_until_expecting(ring, tally, n, within, |_| 0);
}

/// As [`reap_until`], each completion's result being `res(&cqe)`.
pub fn reap_until_expecting<B: Backend>(
    ring: &mut Ring<B>,
    tally: &mut Tally,
    n: usize,
    within: Duration,
    res: impl Fn(&Cqe) -> i32,
) {
    let deadline = Instant::now() + within;
    while tally.count() < n {
        for cqe in ring.cq().batch() {
            let want = res(&cqe);
            tally.add_expecting(cqe, want);
        }
        if tally.count() >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} completions within {within:?}",
            tally.count()
        );
        match ring.wait_timeout(1, Duration::from_millis(50)) {
            Ok(_) | Err(Error::Timeout) => {}
            Err(e) => panic!("wait failed: {e}"),
        }
    }
    assert_eq!(tally.count(), n, "more completions than submitted");
}

/// A relative timeout's timespec, boxed so that its address stays put while the kernel may read
/// it (the kernel copies it when the SQE is prepared, but the contract is "until completion").
pub fn timespec(d: Duration) -> Box<sys::__kernel_timespec> {
    Box::new(sys::__kernel_timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    })
}

/// Reserves and commits an `IORING_OP_TIMEOUT` that fires after `*ts` (result `-ETIME`).
///
/// # Safety
///
/// `ts` must stay alive until the timeout's completion is reaped.
pub unsafe fn push_timeout<B: Backend>(
    ring: &mut Ring<B>,
    ts: &sys::__kernel_timespec,
    user_data: u64,
) {
    let mut r = ring.sq().reserve(1).expect("room for the timeout");
    r.first()
        .set_opcode(sys::IORING_OP_TIMEOUT as u8)
        .set_addr(ts as *const _ as u64)
        .set_len(1)
        .set_off(0)
        .set_user_data(user_data);
    // SAFETY: the SQE names only `ts`, which the caller keeps alive.
    unsafe { r.commit() };
}
