//! Typed NOPs through `Uring` against raw NOPs through uring-core, batch 32.
//!
//! `cargo bench -p uring-ops --bench typed_nop -- MODE BATCHES` with MODE `typed`, `raw`,
//! `raw-each`, `raw-one` or `typed-read` (typed 64-byte `Read`s of `/dev/zero`, each buffer
//! reused) runs one loop (for `valgrind --tool=callgrind`); with no arguments it times `raw`
//! and `typed` side by side.
//! See BENCHMARKS.md for the figures and the exact commands.

use std::hint::black_box;
use std::time::Instant;
use uring_core::{sys, Builder, Ring};
use uring_ops::{
    ops::{Nop, Read},
    Outcome, Uring,
};

const BATCH: u32 = 32;

fn raw(ring: &mut Ring, batches: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..batches {
        let mut r = ring.sq().reserve(BATCH).expect("room for a batch");
        for i in 0..BATCH {
            r.get(i)
                .expect("reserved")
                .set_opcode(sys::IORING_OP_NOP as u8)
                .set_user_data(u64::from(i));
        }
        // SAFETY: NOPs name no memory.
        unsafe { r.commit() };
        ring.submit_and_wait(BATCH).expect("submit");
        for cqe in ring.cq().batch() {
            sum += cqe.user_data() + cqe.raw_result() as u64;
        }
    }
    sum
}

/// Raw NOPs pushed one at a time (a 64-byte SQE copied into the ring per op, as
/// `io_uring_get_sqe` + prep does), submitted in batches.
fn raw_each(ring: &mut Ring, batches: u64) -> u64 {
    let mut sum = 0u64;
    let mut sqe = uring_core::Sqe::zeroed();
    sqe.set_opcode(sys::IORING_OP_NOP as u8);
    for _ in 0..batches {
        for i in 0..BATCH {
            sqe.set_user_data(u64::from(i));
            // SAFETY: NOPs name no memory.
            unsafe { ring.push(&sqe) }.expect("room for a batch");
        }
        ring.submit_and_wait(BATCH).expect("submit");
        for cqe in ring.cq().batch() {
            sum += cqe.user_data() + cqe.raw_result() as u64;
        }
    }
    sum
}

/// Raw NOPs reserved and filled in place one at a time (`reserve(1)`, opcode, user data,
/// `commit`), submitted in batches.
fn raw_one(ring: &mut Ring, batches: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..batches {
        for i in 0..BATCH {
            let mut r = ring.sq().reserve(1).expect("room for a batch");
            r.first()
                .set_opcode(sys::IORING_OP_NOP as u8)
                .set_user_data(u64::from(i));
            // SAFETY: NOPs name no memory.
            unsafe { r.commit() };
        }
        ring.submit_and_wait(BATCH).expect("submit");
        for cqe in ring.cq().batch() {
            sum += cqe.user_data() + cqe.raw_result() as u64;
        }
    }
    sum
}

fn typed(ring: &mut Uring, batches: u64) -> u64 {
    let mut sum = 0u64;
    let mut tickets = Vec::with_capacity(BATCH as usize);
    for _ in 0..batches {
        for _ in 0..BATCH {
            tickets.push(ring.push(Nop::new()).expect("room for a batch"));
        }
        ring.submit_and_wait(BATCH).expect("submit");
        ring.reap();
        for t in tickets.drain(..) {
            match ring.try_take(t) {
                Ok(Outcome::Done(r)) => sum += u64::from(r.expect("a NOP succeeds")),
                _ => panic!("a reaped NOP is done"),
            }
        }
    }
    sum
}

/// As [`typed`], through the completion path: each NOP pushed with a tag, its output redeemed
/// from its completion record (no ticket kept).
fn typed_records(ring: &mut Uring, batches: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..batches {
        for i in 0..BATCH {
            let _ticket = ring
                .push_tagged(Nop::new(), u64::from(i))
                .expect("room for a batch");
        }
        ring.submit_and_wait(BATCH).expect("submit");
        let mut n = 0;
        while let Some(c) = ring.next_completion() {
            let r = ring.take::<Nop>(&c).expect("a reported NOP redeems");
            sum += u64::from(r.expect("a NOP succeeds")) + c.tag();
            n += 1;
        }
        assert_eq!(n, BATCH, "a record per NOP");
    }
    sum
}

/// Typed 64-byte reads of `/dev/zero`, batch 32, each op's buffer reused by the next batch.
fn typed_read(ring: &mut Uring, batches: u64) -> u64 {
    let f = uring_ops::Fd::new(std::fs::File::open("/dev/zero").expect("/dev/zero"));
    let mut sum = 0u64;
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(64)).collect();
    let mut tickets = Vec::with_capacity(BATCH as usize);
    for _ in 0..batches {
        for buf in bufs.drain(..) {
            tickets.push(ring.push(Read::new(&f, buf, 0)).expect("room for a batch"));
        }
        ring.submit_and_wait(BATCH).expect("submit");
        ring.reap();
        for t in tickets.drain(..) {
            match ring.try_take(t) {
                Ok(Outcome::Done((r, buf))) => {
                    sum += r.expect("a read of /dev/zero succeeds") as u64;
                    bufs.push(buf);
                }
                _ => panic!("a reaped read is done"),
            }
        }
    }
    sum
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let entries = 2 * BATCH;
    match args.first().map(String::as_str) {
        Some(
            mode @ ("raw" | "raw-each" | "raw-one" | "typed" | "typed-records" | "typed-read"),
        ) => {
            let batches: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
            let s = match mode {
                "raw" => raw(&mut Builder::new(entries).build().expect("ring"), batches),
                "raw-each" => raw_each(&mut Builder::new(entries).build().expect("ring"), batches),
                "raw-one" => raw_one(&mut Builder::new(entries).build().expect("ring"), batches),
                "typed-read" => typed_read(&mut Uring::new(entries).expect("ring"), batches),
                "typed-records" => typed_records(&mut Uring::new(entries).expect("ring"), batches),
                _ => typed(&mut Uring::new(entries).expect("ring"), batches),
            };
            black_box(s);
        }
        _ => {
            let batches = 20_000;
            let mut rr = Builder::new(entries).build().expect("ring");
            let mut tr = Uring::new(entries).expect("ring");
            let (mut tr_ns, mut rr_ns) = (Vec::new(), Vec::new());
            for _ in 0..7 {
                let t0 = Instant::now();
                black_box(raw(&mut rr, batches));
                rr_ns.push(t0.elapsed().as_nanos() as f64 / (batches * u64::from(BATCH)) as f64);
                let t0 = Instant::now();
                black_box(typed(&mut tr, batches));
                tr_ns.push(t0.elapsed().as_nanos() as f64 / (batches * u64::from(BATCH)) as f64);
            }
            let med = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (r, t) = (med(&mut rr_ns), med(&mut tr_ns));
            println!("raw uring-core NOP:  {r:.1} ns/op (median of 7 runs, batch {BATCH})");
            println!("typed uring-ops Nop: {t:.1} ns/op");
            println!("typed / raw: {:.2}", t / r);
        }
    }
}
