//! NOPs in batches of 32 through `uring-core` and through the `io-uring` crate, the same loop on
//! each: prepare 32 NOP SQEs in the SQ, submit and wait for 32 completions in one
//! `io_uring_enter`, reap the 32 CQEs.
//!
//! ```text
//! nop core <batches> [1|32]       uring-core only (for callgrind)
//! nop io-uring <batches> [1|32]   io-uring crate only (for callgrind)
//! nop compare <batches> <rounds>  both, alternating in one process: median ns/NOP and the ratio
//! ```
//!
//! The batch size is 32 unless `1` is given (a compile-time constant either way, as a real
//! caller's fixed batch size would be), to show the per-`io_uring_enter` overhead alone.
//!
//! See BENCHMARKS.md at the repository root for the commands and the figures.

use std::hint::black_box;
use std::time::Instant;
use uring_core::{sys, Builder, Ring};

const BATCH: u32 = 32;

/// One batch loop on `uring-core`: reserve 32 SQEs in place, fill them, commit, submit and wait,
/// reap the batch. Returns a checksum of the user data so nothing is optimised away.
#[inline(never)]
fn run_core<const BATCH: u32>(ring: &mut Ring, batches: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..batches {
        let mut r = ring.sq().reserve(BATCH).expect("an empty SQ has room");
        for i in 0..BATCH {
            r.get(i)
                .expect("reserved")
                .set_opcode(sys::IORING_OP_NOP as u8)
                .set_user_data(u64::from(i));
        }
        // SAFETY: NOPs name no memory.
        unsafe { r.commit() };
        ring.submit_and_wait(BATCH).expect("submit_and_wait");
        let mut n = 0;
        for cqe in ring.cq().batch() {
            assert!(cqe.raw_result() >= 0);
            sum = sum.wrapping_add(cqe.user_data());
            n += 1;
        }
        assert_eq!(n, BATCH);
    }
    sum
}

/// The same loop on the `io-uring` crate: build each NOP entry and push it, submit and wait,
/// iterate the completion queue.
#[inline(never)]
fn run_io_uring<const BATCH: u32>(ring: &mut io_uring::IoUring, batches: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..batches {
        {
            let mut sq = ring.submission();
            for i in 0..BATCH {
                let nop = io_uring::opcode::Nop::new().build().user_data(u64::from(i));
                // SAFETY: NOPs name no memory.
                unsafe { sq.push(&nop) }.expect("an empty SQ has room");
            }
        }
        ring.submit_and_wait(BATCH as usize)
            .expect("submit_and_wait");
        let mut n = 0;
        for cqe in ring.completion() {
            assert!(cqe.result() >= 0);
            sum = sum.wrapping_add(cqe.user_data());
            n += 1;
        }
        assert_eq!(n, BATCH);
    }
    sum
}

fn new_core() -> Ring {
    Builder::new(BATCH).build().expect("uring-core ring")
}

fn new_io_uring() -> io_uring::IoUring {
    io_uring::IoUring::new(BATCH).expect("io-uring ring")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` adds `--bench`; ignore flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().map_or("compare", String::as_str);
    let batches: u64 = args.get(1).map_or(20_000, |s| s.parse().expect("batches"));
    let size: u32 = match args.get(2) {
        Some(s) if mode != "compare" => s.parse().expect("batch size"),
        _ => BATCH,
    };
    let want = |size: u32| batches * u64::from(size * (size - 1) / 2);
    match (mode, size) {
        ("core", 32) => {
            let mut ring = new_core();
            assert_eq!(black_box(run_core::<32>(&mut ring, batches)), want(32));
        }
        ("core", 1) => {
            let mut ring = new_core();
            assert_eq!(black_box(run_core::<1>(&mut ring, batches)), want(1));
        }
        ("io-uring", 32) => {
            let mut ring = new_io_uring();
            assert_eq!(black_box(run_io_uring::<32>(&mut ring, batches)), want(32));
        }
        ("io-uring", 1) => {
            let mut ring = new_io_uring();
            assert_eq!(black_box(run_io_uring::<1>(&mut ring, batches)), want(1));
        }
        ("compare", _) => {
            let want = want(BATCH);
            let rounds: usize = args.get(2).map_or(11, |s| s.parse().expect("rounds"));
            let mut core = new_core();
            let mut iou = new_io_uring();
            // Warm both up (page faults, caches, the kernel's request caches).
            run_core::<BATCH>(&mut core, 1000);
            run_io_uring::<BATCH>(&mut iou, 1000);
            let nops = (batches * u64::from(BATCH)) as f64;
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                // Alternate which goes first, so neither always runs right after the other.
                let mut time_core = || {
                    let t = Instant::now();
                    assert_eq!(black_box(run_core::<BATCH>(&mut core, batches)), want);
                    t.elapsed().as_nanos() as f64 / nops
                };
                let mut time_iou = || {
                    let t = Instant::now();
                    assert_eq!(black_box(run_io_uring::<BATCH>(&mut iou, batches)), want);
                    t.elapsed().as_nanos() as f64 / nops
                };
                if round % 2 == 0 {
                    a.push(time_core());
                    b.push(time_iou());
                } else {
                    b.push(time_iou());
                    a.push(time_core());
                }
            }
            // Each round times both back to back, so the ratio within a round cancels slow
            // drifts of a shared, noisy machine; its median is the figure to trust.
            let mut ratios: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x / y).collect();
            let paired = median(&mut ratios);
            let (ma, mb) = (median(&mut a), median(&mut b));
            println!(
                "{rounds} rounds of {batches} batches of {BATCH} NOPs, alternating in one process"
            );
            println!("uring-core: median {ma:.1} ns/NOP  (all: {a:.1?})");
            println!("io-uring:   median {mb:.1} ns/NOP  (all: {b:.1?})");
            println!("ratio of the medians uring-core / io-uring: {:.3}", ma / mb);
            println!("median of the per-round ratios:           {paired:.3}");
        }
        (mode, size) => {
            eprintln!(
                "unknown mode {mode:?} or batch size {size}: use core, io-uring or compare, \
                 with a batch size of 32 or 1"
            );
            std::process::exit(2);
        }
    }
}
