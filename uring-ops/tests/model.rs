//! Model-based test: random sequences of ring operations run against the real kernel and a
//! pure-Rust model of what the ring must do; they must agree.
//!
//! The model knows the SQ capacity and how many SQEs are queued, so it predicts `QueueFull`
//! exactly; it predicts every op's result (NOP → 0, an injected result, a read of a known file →
//! the known bytes and count, a read on a closed fd → EBADF, a read of an empty pipe → blocks
//! until cancelled, then ECANCELED); and it checks every op completes exactly once (each ticket
//! redeems once, detached ops leave nothing in flight at the end).
//!
//! CI runs 1,000 cases. For more: `PROPTEST_CASES=100000 cargo test --release -p uring-ops
//! --test model`.

use proptest::prelude::*;
use std::collections::VecDeque;
use std::io::Write as _;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::Duration;
use uring_ops::ops::{Nop, Read};
use uring_ops::{Error, Target, Ticket, Uring};

const FILE_LEN: usize = 200;
/// A descriptor number above any process's limit: always EBADF.
const CLOSED_FD: i32 = 1 << 30;

fn known_file() -> &'static (std::fs::File, Vec<u8>) {
    static FILE: OnceLock<(std::fs::File, Vec<u8>)> = OnceLock::new();
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
        (f, data)
    })
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[derive(Debug, Clone)]
enum Action {
    Nop,
    Inject(i32),
    ReadFile { off: u64, len: u32 },
    ReadClosedFd,
    ReadEmptyPipe,
    Submit,
    WaitOldest(usize),
    Detach(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => Just(Action::Nop),
        2 => prop_oneof![Just(-libc::EIO), Just(-libc::EPERM), 0..1000i32].prop_map(Action::Inject),
        4 => (0..(FILE_LEN as u64 + 20), 0..80u32).prop_map(|(off, len)| Action::ReadFile { off, len }),
        1 => Just(Action::ReadClosedFd),
        1 => Just(Action::ReadEmptyPipe),
        3 => Just(Action::Submit),
        3 => (1..6usize).prop_map(Action::WaitOldest),
        1 => (0..8usize).prop_map(Action::Detach),
    ]
}

/// What the model says an op completes with.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Value(u32),
    Errno(i32),
    Bytes(Vec<u8>),
    /// Never completes on its own; cancelled at the end.
    Blocks,
}

enum Handle {
    Nop(Ticket<Nop>),
    Read(Ticket<Read<Vec<u8>>>),
}

struct Outstanding {
    handle: Handle,
    expect: Expect,
}

struct Model {
    capacity: u32,
    /// SQEs pushed and not yet handed to the kernel.
    queued: u32,
}

impl Model {
    /// Whether a push of `n` SQEs fits.
    fn fits(&self, n: u32) -> bool {
        self.queued + n <= self.capacity
    }
}

fn check(handle: Handle, expect: &Expect, ring: &mut Uring) -> Result<(), TestCaseError> {
    match handle {
        Handle::Nop(t) => {
            let r = ring.wait(t).unwrap();
            match expect {
                Expect::Value(v) => prop_assert_eq!(r.unwrap(), *v),
                Expect::Errno(e) => prop_assert_eq!(r.unwrap_err().raw_os_error(), Some(*e)),
                other => prop_assert!(false, "model error: {other:?} for a NOP"),
            }
        }
        Handle::Read(t) => {
            let (r, buf) = ring.wait(t).unwrap();
            match expect {
                Expect::Bytes(b) => {
                    prop_assert_eq!(r.unwrap(), b.len());
                    prop_assert_eq!(&buf[..b.len()], &b[..]);
                }
                Expect::Errno(e) => prop_assert_eq!(r.unwrap_err().raw_os_error(), Some(*e)),
                other => prop_assert!(false, "model error: {other:?} for a read"),
            }
        }
    }
    Ok(())
}

fn run(entries: u32, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let (file, data) = known_file();
    let (pipe_rx, _pipe_tx) = pipe();
    let mut ring = Uring::new(entries).unwrap();
    let mut model = Model {
        capacity: ring.ring().info().sq_entries,
        queued: 0,
    };
    let mut outstanding: VecDeque<Outstanding> = VecDeque::new();
    let mut blocked: Vec<Outstanding> = Vec::new();
    let mut detached = 0usize;

    for a in actions {
        let pushed = match a {
            Action::Nop => Some((
                ring.push(Nop::new()).map(Handle::Nop).map_err(|e| e.error),
                Expect::Value(0),
            )),
            Action::Inject(res) => {
                let expect = if res < 0 {
                    Expect::Errno(-res)
                } else {
                    Expect::Value(res as u32)
                };
                Some((
                    ring.push(Nop::new().inject_result(res))
                        .map(Handle::Nop)
                        .map_err(|e| e.error),
                    expect,
                ))
            }
            Action::ReadFile { off, len } => {
                let start = (off as usize).min(FILE_LEN);
                let end = (start + len as usize).min(FILE_LEN);
                let op = Read::new(file, vec![0u8; len as usize], off);
                Some((
                    ring.push(op).map(Handle::Read).map_err(|e| e.error),
                    Expect::Bytes(data[start..end].to_vec()),
                ))
            }
            Action::ReadClosedFd => {
                let op = Read::new(Target::Fd(CLOSED_FD), vec![0u8; 8], 0);
                Some((
                    ring.push(op).map(Handle::Read).map_err(|e| e.error),
                    Expect::Errno(libc::EBADF),
                ))
            }
            Action::ReadEmptyPipe => {
                let op = Read::new(pipe_rx.as_fd(), vec![0u8; 8], u64::MAX);
                Some((
                    ring.push(op).map(Handle::Read).map_err(|e| e.error),
                    Expect::Blocks,
                ))
            }
            Action::Submit => {
                ring.submit().unwrap();
                model.queued = 0;
                None
            }
            Action::WaitOldest(k) => {
                // Submit first, so what is queued afterwards does not depend on whether the
                // waited ops happened to be reaped already.
                ring.submit().unwrap();
                model.queued = 0;
                for _ in 0..k {
                    let Some(o) = outstanding.pop_front() else {
                        break;
                    };
                    check(o.handle, &o.expect, &mut ring)?;
                }
                None
            }
            Action::Detach(i) => {
                if !outstanding.is_empty() {
                    let o = outstanding.remove(i % outstanding.len()).unwrap();
                    let live = match o.handle {
                        Handle::Nop(t) => ring.detach(t),
                        Handle::Read(t) => ring.detach(t),
                    };
                    prop_assert!(live, "a ticket that was never redeemed is live");
                    detached += 1;
                }
                None
            }
        };
        if let Some((result, expect)) = pushed {
            let fits = model.fits(1);
            match result {
                Ok(handle) => {
                    prop_assert!(fits, "push succeeded but the model says the SQ is full");
                    model.queued += 1;
                    let o = Outstanding { handle, expect };
                    if o.expect == Expect::Blocks {
                        blocked.push(o);
                    } else {
                        outstanding.push_back(o);
                    }
                }
                Err(Error::QueueFull { needed, free }) => {
                    prop_assert!(!fits, "QueueFull but the model says there is room");
                    prop_assert_eq!((needed, free), (1, model.capacity - model.queued));
                }
                Err(e) => prop_assert!(false, "unexpected push error {e}"),
            }
        }
    }
    // Everything that can complete does, exactly once, with the predicted result.
    while let Some(o) = outstanding.pop_front() {
        check(o.handle, &o.expect, &mut ring)?;
    }
    // Reads of the empty pipe only end when cancelled.
    ring.submit().unwrap();
    let left = ring.cancel_all(Duration::from_secs(5));
    prop_assert_eq!(left, 0, "every op completes once cancelled");
    for o in blocked {
        let Handle::Read(t) = o.handle else {
            unreachable!()
        };
        let (r, _) = ring.wait(t).unwrap();
        prop_assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    }
    prop_assert_eq!(
        ring.in_flight(),
        0,
        "{} detached ops all completed",
        detached
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ring_agrees_with_model(entries in prop_oneof![Just(2u32), Just(4), Just(8)], actions in prop::collection::vec(action(), 0..40)) {
        run(entries, actions)?;
    }
}
