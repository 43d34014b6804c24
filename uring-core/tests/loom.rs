//! loom models of the ring against the simulated kernel running on another thread.
//!
//! Run (release mode, bounded preemptions, a separate target directory):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p uring-core --release --test loom
//! ```
//!
//! Under `cfg(loom)` every shared ring word is a loom atomic and every SQE/CQE slot a loom
//! `UnsafeCell`, so besides the values asserted here loom checks that each slot read happens
//! after the write it depends on (SQE writes before the SQ tail `Release`, CQE reads after the CQ
//! tail `Acquire`) and each slot reuse after the read of its previous use (the head words). The
//! simulated kernel is in manual mode: entering it consumes nothing and takes no lock, so the
//! only synchronisation between the two threads is the ring's own.
//!
//! The submitting side spins with `loom::thread::yield_now` when it can do nothing (SQ full, CQ
//! empty), as the kernel thread does when it has nothing to consume.
#![cfg(loom)]

use loom::thread;
use std::sync::Arc;
use uring_core::sim::{Sim, SimConfig};
use uring_core::{sys, Builder, Error, Ring, Sqe};

fn manual(start_index: u32) -> SimConfig {
    SimConfig {
        manual: true,
        start_index,
        ..SimConfig::default()
    }
}

/// The result each op injects: it travels SQE -> kernel -> CQE, so a stale slot read shows.
fn res_of(i: u32) -> i32 {
    100 + i as i32
}

/// The kernel thread: consume (at most `per_call` SQEs a time: partial consumption) until `n`
/// SQEs are taken and every completion is posted.
fn kernel(sim: Arc<Sim>, n: u32, per_call: u32) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut consumed = 0;
        while consumed < n || sim.backlog_len() > 0 {
            let c = sim.service(per_call);
            consumed += c;
            if c == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(consumed, n);
    })
}

/// How the submitting side hands SQEs over and waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `flush()` to publish, `pop()` to reap: no entry at all.
    FlushPop,
    /// `submit()` and `wait()`: the entry paths (which, in manual mode, only yield).
    SubmitWait,
    /// As `FlushPop`, queueing each SQE with `SubmissionQueue::push` (a copy into a slot that
    /// is not zeroed first) rather than a reservation filled in place.
    PushFlushPop,
}

/// Pushes `n` NOPs (each injecting `res_of(i)`) one at a time into a ring that may be full, and
/// reaps them, asserting each completes once, in order, with its own result.
fn drive(ring: &mut Ring<Sim>, n: u32, mode: Mode) {
    let mut pushed = 0;
    let mut reaped = 0;
    while reaped < n {
        let mut progress = false;
        if pushed < n {
            let nop = |sqe: &mut Sqe| {
                sqe.set_opcode(sys::IORING_OP_NOP as u8)
                    .set_nop_flags(sys::IORING_NOP_INJECT_RESULT)
                    .set_len(res_of(pushed) as u32)
                    .set_user_data(u64::from(pushed));
            };
            let queued = if mode == Mode::PushFlushPop {
                let mut sqe = Sqe::zeroed();
                nop(&mut sqe);
                // SAFETY: a NOP names no memory.
                unsafe { ring.sq().push(&sqe) }
            } else {
                ring.sq().reserve(1).map(|mut r| {
                    nop(r.first());
                    // SAFETY: a NOP names no memory.
                    unsafe { r.commit() };
                })
            };
            match queued {
                Ok(()) => {
                    match mode {
                        Mode::FlushPop | Mode::PushFlushPop => {
                            ring.sq().flush();
                        }
                        Mode::SubmitWait => {
                            // Manual mode: the kernel thread consumes, entering takes nothing.
                            assert_eq!(ring.submit().unwrap(), 0);
                        }
                    }
                    pushed += 1;
                    progress = true;
                }
                Err(Error::NoSpace {
                    needed,
                    free,
                    capacity,
                }) => {
                    assert_eq!((needed, free), (1, 0));
                    assert_eq!(capacity, ring.sq().capacity());
                }
                Err(e) => panic!("{e}"),
            }
        }
        if mode == Mode::SubmitWait && pushed == n {
            // Everything is in: block (yielding) until the kernel thread posts.
            assert!(ring.wait(1).unwrap() >= 1);
        }
        if let Some(cqe) = ring.cq().pop() {
            assert_eq!(cqe.user_data(), u64::from(reaped), "in order, each once");
            assert_eq!(cqe.raw_result(), res_of(reaped), "the SQE's own result");
            reaped += 1;
            progress = true;
        }
        if !progress {
            thread::yield_now();
        }
    }
    assert_eq!(ring.cq().ready(), 0);
}

/// Builds the ring inside the model, starts the kernel thread, drives, joins.
fn model(sq: u32, cq: u32, start: u32, n: u32, per_call: u32, mode: Mode) {
    loom::model(move || {
        let mut ring = Builder::new(sq)
            .cq_entries(cq)
            .build_sim_with(manual(start))
            .unwrap();
        assert_eq!(ring.info().sq_entries, sq);
        assert_eq!(ring.info().cq_entries, cq);
        let k = kernel(ring.sim_handle(), n, per_call);
        drive(&mut ring, n, mode);
        k.join().unwrap();
        // The kernel may post a completion before it releases the SQ head past its SQE (as
        // Linux does), so only once it is done is every SQE sure to be seen consumed.
        assert_eq!(ring.sq().pending(), 0);
        assert_eq!(ring.cq().ready(), 0);
    });
}

/// Submit and complete against a kernel on another thread: more ops than the SQ holds.
#[test]
fn submit_complete() {
    model(2, 4, 0, 3, u32::MAX, Mode::FlushPop);
}

/// The same across the `u32` wrap of every head and tail counter.
#[test]
fn submit_complete_across_u32_wrap() {
    model(2, 4, u32::MAX - 1, 3, u32::MAX, Mode::FlushPop);
}

/// A full SQ and a full CQ: more ops than either holds, so the kernel keeps a backlog and
/// reuses CQ slots only after the ring has read them.
#[test]
fn full_sq_and_cq() {
    model(2, 2, u32::MAX, 4, u32::MAX, Mode::FlushPop);
}

/// As [`full_sq_and_cq`], with a kernel that takes one SQE per pass: published SQEs wait
/// unconsumed while the ring looks for room, and their slots must not be reused early.
#[test]
fn full_rings_partial_consumption() {
    model(2, 2, u32::MAX - 1, 3, 1, Mode::FlushPop);
}

/// The entry paths: `submit` and a blocking `wait` that yields to the kernel thread.
#[test]
fn submit_and_wait_paths() {
    model(2, 2, u32::MAX - 1, 3, u32::MAX, Mode::SubmitWait);
}

/// As [`full_rings_partial_consumption`], queueing with `SubmissionQueue::push`: its copy into
/// a slot happens after the kernel's last read of that slot's previous SQE, and before the
/// kernel reads it.
#[test]
fn push_into_full_rings_partial_consumption() {
    model(2, 2, u32::MAX - 1, 3, 1, Mode::PushFlushPop);
}
