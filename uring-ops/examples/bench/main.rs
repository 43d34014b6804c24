//! The main job, and how fast: NOP round trips and random 4 KiB reads through each layer of
//! this workspace and through the `io-uring` crate, side by side (a tool in the manner of
//! fio's `t/io_uring`).
//!
//! ```sh
//! cargo run --release -p uring-ops --example bench                  # the table
//! cargo run --release -p uring-ops --example bench -- read --layer ops --depth 32 --batch 8
//! cargo run --release -p uring-ops --example bench -- --help
//! ```
//!
//! With no mode and no `--layer` it runs `nop` and `read` on every layer, alternating the
//! layers from round to round (so that a slow moment of a shared machine falls on each in
//! turn), prints a `RESULT` line per run and then a table: each layer's median ops/s and the
//! median of its per-round ratio to the `io-uring` crate. With a mode and a layer it does one
//! run.
//!
//! # How the layers are kept equivalent
//!
//! Every layer runs the same loop, [`run::drive`], monomorphised per layer and per mode (no
//! test of the mode per op, as in a program that does one thing); the layers differ only in
//! the three steps of [`run::Driver`]:
//!
//! - **the loop** (shared): up to `--depth` ops in flight; at most `--batch` queued at a time;
//!   once `--depth` are in flight, one wait for `--batch` completions (fio's `t/io_uring` with
//!   its submit and complete batches both set to `--batch`). Offsets come from the same
//!   xorshift generator. Every result is checked (0 for a NOP, 4096 for a read) and every
//!   completion counted. One ring per thread, of `--depth` SQ entries and twice that in CQ
//!   entries; the same file descriptor.
//! - **buffers**: one 4 KiB buffer per slot (`uring_ops::AlignedBuf`), aligned to 4096 for
//!   `O_DIRECT`, reused by the slot's next op: `core` and `io-uring` write its address into
//!   the SQE; `ops` and `ctx` move it into the op and get it back with the result. With `--fixed` the same buffers
//!   (for `ops`: a `FixedBufs` pool, page-aligned) are registered, with the file as
//!   registered file 0, and the reads are `READ_FIXED`.
//! - **queueing**: `core` reserves the batch's SQEs at once and fills them in place;
//!   `io-uring` builds each `Entry` and pushes it; `ops` pushes one typed op at a time
//!   (`Uring::push`), keeping its ticket; `ctx` pushes with `Context::push_tagged`, which
//!   enters the kernel for each op (that is what a context does today).
//! - **entering and reaping**: one `submit_and_wait(want)` per round, then every ready CQE.
//!   `ops` learns from `Uring::reap` how many finished and redeems its tickets oldest first
//!   until it has that many (ops mostly finish in order, so each ticket is mostly tried once;
//!   `Uring::reap_with` names each finished op's key instead, but the loop would then need a
//!   map from keys back to slots); `ctx` learns which from `wait_completions` and redeems
//!   those tickets.
//! - **SQPOLL** (`--sqpoll`): submitting only publishes the SQ tail (entering the kernel only
//!   to wake a sleeping poller), and the wait busy-polls the CQ, as `t/io_uring` does (the same
//!   spin-then-yield loop on every layer, [`layers::Spin`]); `ctx` still waits in the kernel.
//!   The poller may post completions before it moves the SQ head, so queueing may find the SQ
//!   full: `core` and `io-uring` wait for room with the same loop, `ops` inside `Uring::push`.
//!
//! The threads of a run (`--threads`) each have their own ring, except on `ctx`, where they
//! share one `Context`: N pushing threads of `--depth` ops each, and `--reapers` threads
//! taking the completions and handing each slot back to its pusher.

mod ctx;
mod file;
mod layers;
mod run;

use file::BenchFile;
use layers::{aligned_bufs, fixed_bufs, ops_register_file, ops_ring, Core, IoUringLayer, NopWork};
use layers::{Ops, Reads};
use run::{drive, on_threads, result_line, share, Driver, Layer, Length, Mode, Outcome, Plan};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Barrier};
use uring_ops::{Fd, Target};

const USAGE: &str = "\
usage: bench [nop|read] [--layer core|ops|ctx|io-uring] [--depth N] [--batch N]
             [--secs S | --ops N] [--threads N] [--reapers N] [--rounds N]
             [--file PATH] [--buffered] [--fixed] [--sqpoll]";

const HELP: &str = "
Runs io_uring NOPs or random 4 KiB reads through a layer of this workspace or the io-uring
crate, the same loop on each, and prints one line per run:
  RESULT mode=nop layer=core depth=32 batch=32 threads=1 secs=2.00 ops=26000000 ops_per_sec=13000000
With no mode it runs nop and read; with no --layer, every layer in turn, alternating over
--rounds rounds, and then prints a table of ops/s and each layer's ratio to io-uring.

modes:
  nop              NOP round trips
  read             random 4096-byte reads of --file: O_DIRECT where the file system allows
                   it (the output says which), else through the page cache

options:
  --layer L        core (raw SQEs, uring-core), ops (typed ops, uring_ops::Uring), ctx (a
                   shared uring_ops::Context), io-uring (the io-uring crate)
  --depth N        ops in flight per thread, and SQ entries, 1 to 4096 (default 32)
  --batch N        ops queued per submit, and completions per wait once --depth are in
                   flight, 1 to --depth (default: 32 for nop, 8 for read)
  --secs S         seconds per run (default: 2 for one run, 1 per run of a comparison)
  --ops N          stop after exactly N ops in all (for instruction counts); not with --secs
  --threads N      threads, 1 to 64 (default 1): each with its own ring, or, on ctx, N
                   pushing threads of --depth ops each on one Context
  --reapers N      ctx with --threads above 1: threads taking completions (default N/2)
  --rounds N       rounds of a comparison, 1 to 1000 (default 3)
  --file PATH      the file to read (default: a 256 MiB temporary file, made and removed)
  --buffered       read through the page cache, not O_DIRECT
  --fixed          registered buffers and file (READ_FIXED); not on ctx
  --sqpoll         a kernel thread polls the SQ (IORING_SETUP_SQPOLL); the loop busy-polls
                   the CQ instead of waiting in the kernel (ctx still waits)
  -h, --help       print this help

A progress line is printed every second when stdout is a terminal.";

/// What the command line asks for.
struct Args {
    mode: Option<Mode>,
    layer: Option<Layer>,
    depth: Option<u32>,
    batch: Option<u32>,
    length: Option<Length>,
    threads: u32,
    reapers: Option<u32>,
    rounds: Option<u32>,
    file: Option<PathBuf>,
    buffered: bool,
    fixed: bool,
    sqpoll: bool,
}

enum Command {
    Run(Args),
    Help,
}

fn parse_args() -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut a = Args {
        mode: None,
        layer: None,
        depth: None,
        batch: None,
        length: None,
        threads: 1,
        reapers: None,
        rounds: None,
        file: None,
        buffered: false,
        fixed: false,
        sqpoll: false,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) if a.mode.is_none() => {
                a.mode = Some(match v.to_str() {
                    Some("nop") => Mode::Nop,
                    Some("read") => Mode::Read,
                    _ => return Err(format!("unknown mode {v:?}: expected nop or read").into()),
                })
            }
            Long("layer") => {
                let v = parser.value()?;
                a.layer = Some(match v.to_str() {
                    Some("core") => Layer::Core,
                    Some("ops") => Layer::Ops,
                    Some("ctx") => Layer::Ctx,
                    Some("io-uring") => Layer::IoUring,
                    _ => {
                        return Err(format!(
                            "--layer {}: expected core, ops, ctx or io-uring",
                            v.to_string_lossy()
                        )
                        .into())
                    }
                })
            }
            Long("depth") => a.depth = Some(number("--depth", parser.value()?, 1, 4096)?),
            Long("batch") => a.batch = Some(number("--batch", parser.value()?, 1, 4096)?),
            Long("secs") => {
                let v = parser.value()?;
                let text = v.to_string_lossy();
                match text.parse::<f64>() {
                    _ if matches!(a.length, Some(Length::Ops(_))) => {
                        return Err("--secs and --ops cannot both be given".into())
                    }
                    Ok(s) if s > 0.0 && s <= 86_400.0 => a.length = Some(Length::Secs(s)),
                    _ => {
                        return Err(format!(
                            "--secs {text}: expected a number of seconds above 0, at most 86400"
                        )
                        .into())
                    }
                }
            }
            Long("ops") => {
                let n = number("--ops", parser.value()?, 1, 1u64 << 48)?;
                if matches!(a.length, Some(Length::Secs(_))) {
                    return Err("--secs and --ops cannot both be given".into());
                }
                a.length = Some(Length::Ops(n));
            }
            Long("threads") => a.threads = number("--threads", parser.value()?, 1, 64)?,
            Long("reapers") => a.reapers = Some(number("--reapers", parser.value()?, 1, 64)?),
            Long("rounds") => a.rounds = Some(number("--rounds", parser.value()?, 1, 1000)?),
            Long("file") => a.file = Some(PathBuf::from(parser.value()?)),
            Long("buffered") => a.buffered = true,
            Long("fixed") => a.fixed = true,
            Long("sqpoll") => a.sqpoll = true,
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Command::Run(a))
}

/// `value` as a number in `lo..=hi`; the error names the option and the range.
fn number<T>(option: &str, value: OsString, lo: T, hi: T) -> Result<T, lexopt::Error>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let text = value.to_string_lossy();
    match text.parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(format!("{option} {text}: expected a number from {lo} to {hi}").into()),
    }
}

/// Checks the combinations the parser cannot: the problem, named.
fn check(a: &Args) -> Result<(), String> {
    let read_only = [
        (a.buffered, "--buffered"),
        (a.fixed, "--fixed"),
        (a.file.is_some(), "--file"),
    ];
    if a.mode == Some(Mode::Nop) {
        if let Some((_, name)) = read_only.iter().find(|(set, _)| *set) {
            return Err(format!("{name} applies to the read mode only"));
        }
    }
    if a.fixed && a.layer == Some(Layer::Ctx) {
        return Err(
            "--fixed is not available on the ctx layer: a Context cannot register \
                    buffers or files yet"
                .into(),
        );
    }
    if let Some(b) = a.batch {
        let d = a.depth.unwrap_or(32);
        if b > d {
            return Err(format!("--batch {b} is above --depth {d}"));
        }
    }
    Ok(())
}

/// The plan for `mode` on `layer` from the arguments and the defaults.
fn plan(a: &Args, mode: Mode, layer: Layer, length: Length, blocks: u64) -> Plan {
    let depth = a.depth.unwrap_or(32);
    let batch = a.batch.unwrap_or(match mode {
        Mode::Nop => 32,
        Mode::Read => 8,
    });
    Plan {
        mode,
        layer,
        depth,
        batch: batch.min(depth),
        length,
        threads: a.threads,
        reapers: a.reapers.unwrap_or((a.threads / 2).max(1)),
        sqpoll: a.sqpoll,
        fixed: a.fixed && mode == Mode::Read,
        blocks,
    }
}

/// This thread's share of an `--ops` run.
fn ops_of(p: &Plan, i: u32) -> Option<u64> {
    match p.length {
        Length::Ops(n) => Some(share(n, i, p.threads)),
        Length::Secs(_) => None,
    }
}

/// Sets up (the driver `d`), waits for the other threads, and runs the loop.
fn go<D: Driver>(
    d: Result<D, String>,
    p: &Plan,
    i: u32,
    start: &Barrier,
    counter: &AtomicU64,
) -> Result<run::Done, String> {
    start.wait();
    drive(&mut d?, p, ops_of(p, i), u64::from(i) + 1, counter)
}

/// One run of `p` on `fd` (the file, for reads).
fn run_one(p: &Plan, fd: Option<&Fd>, progress: bool) -> Result<Outcome, String> {
    let label = format!("{} {}", p.mode, p.layer);
    let (p, fd) = (p.clone(), fd.cloned());
    let depth = p.depth;
    match p.layer {
        // Each layer's loop is compiled for its mode, as a program doing one thing would be.
        Layer::Core => on_threads(p.threads, &label, progress, move |i, start, c| {
            let (sqpoll, fixed) = (p.sqpoll, p.fixed);
            match fd.as_ref().map(|f| f.as_fd()) {
                None => go(
                    Core::<false>::new(depth, sqpoll, None, fixed),
                    &p,
                    i,
                    start,
                    c,
                ),
                f => go(Core::<true>::new(depth, sqpoll, f, fixed), &p, i, start, c),
            }
        }),
        Layer::IoUring => on_threads(p.threads, &label, progress, move |i, start, c| {
            let (sqpoll, fixed) = (p.sqpoll, p.fixed);
            match fd.as_ref().map(|f| f.as_fd()) {
                None => go(
                    IoUringLayer::<false>::new(depth, sqpoll, None, fixed),
                    &p,
                    i,
                    start,
                    c,
                ),
                f => go(
                    IoUringLayer::<true>::new(depth, sqpoll, f, fixed),
                    &p,
                    i,
                    start,
                    c,
                ),
            }
        }),
        Layer::Ops => on_threads(p.threads, &label, progress, move |i, start, c| {
            let ring = match ops_ring(depth, p.sqpoll) {
                Ok(r) => r,
                Err(e) => return go(Err::<Ops<NopWork>, _>(e), &p, i, start, c),
            };
            match &fd {
                None => go(Ok(Ops::new(ring, NopWork)), &p, i, start, c),
                Some(fd) if p.fixed => {
                    let d = ops_register_file(&ring, fd.as_fd())
                        .and_then(|()| fixed_bufs(&ring, depth))
                        .map(|b| Ops::new(ring, Reads::new(Target::fixed(0), b)));
                    go(d, &p, i, start, c)
                }
                Some(fd) => {
                    let d = aligned_bufs(depth)
                        .map(|b| Ops::new(ring, Reads::new(Target::from(fd), b)));
                    go(d, &p, i, start, c)
                }
            }
        }),
        Layer::Ctx if p.threads == 1 => on_threads(1, &label, progress, move |i, start, c| {
            let ctx = match ctx::context(depth, 1, p.sqpoll) {
                Ok(ctx) => ctx,
                Err(e) => return go(Err::<ctx::Ctx1<NopWork>, _>(e), &p, i, start, c),
            };
            match &fd {
                None => go(Ok(ctx::Ctx1::new(ctx, NopWork)), &p, i, start, c),
                Some(fd) => {
                    let d = aligned_bufs(depth)
                        .map(|b| ctx::Ctx1::new(ctx, Reads::new(Target::from(fd), b)));
                    go(d, &p, i, start, c)
                }
            }
        }),
        Layer::Ctx => {
            let ctx = ctx::context(depth, p.threads, p.sqpoll)?;
            let threads = p.threads + p.reapers;
            let slots = depth * p.threads;
            match fd {
                None => {
                    let works = (0..slots).map(|_| NopWork).collect();
                    let t = Arc::new(ctx::Threaded::new(ctx, p, works));
                    on_threads(threads, &label, progress, move |i, s, c| t.thread(i, s, c))
                }
                Some(fd) => {
                    // One slot's work each: a share of the file and one buffer.
                    let works = (0..slots)
                        .map(|_| aligned_bufs(1).map(|b| Reads::new(Target::from(&fd), b)))
                        .collect::<Result<_, _>>()?;
                    let t = Arc::new(ctx::Threaded::new(ctx, p, works));
                    on_threads(threads, &label, progress, move |i, s, c| t.thread(i, s, c))
                }
            }
        }
    }
}

/// The runs of one mode in a comparison: per layer, its outcome in each round.
struct Row {
    mode: String,
    layer: Layer,
    ops_per_sec: Vec<f64>,
    cpu_ns: Vec<f64>,
    skipped: Option<&'static str>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The median of the per-round ratios `f(row, base)`: each round's runs share the machine's
/// state, so this is the figure to trust on a noisy machine.
fn paired(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> f64 {
    median(a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect())
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<18} {:<9} {:>14} {:>12} {:>12} {:>12}",
        "mode", "layer", "ops/s", "vs io-uring", "CPU ns/op", "vs io-uring"
    );
    for r in rows {
        let Some(base) = rows
            .iter()
            .find(|b| b.mode == r.mode && b.layer == Layer::IoUring)
        else {
            continue;
        };
        if let Some(why) = r.skipped {
            println!("{:<18} {:<9} {:>14} {:>12}", r.mode, r.layer, "-", why);
            continue;
        }
        println!(
            "{:<18} {:<9} {:>14} {:>12.3} {:>12.1} {:>12.3}",
            r.mode,
            r.layer,
            run::group(median(r.ops_per_sec.clone())),
            paired(&r.ops_per_sec, &base.ops_per_sec, |a, b| a / b),
            median(r.cpu_ns.clone()),
            // As a throughput: io-uring's CPU time per op over this layer's.
            paired(&r.cpu_ns, &base.cpu_ns, |a, b| b / a),
        );
    }
    println!(
        "(vs io-uring: the median over the rounds of each round's ratio, higher is faster; \
         CPU: user and system time of the loop's threads, an SQPOLL poller not included)"
    );
}

/// The running kernel's release.
fn kernel() -> String {
    // SAFETY: uname fills the zeroed struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid utsname to fill.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: uname wrote a NUL-terminated string into `release`.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn bench(a: &Args) -> Result<(), String> {
    let modes = a.mode.map_or(vec![Mode::Nop, Mode::Read], |m| vec![m]);
    let layers = a.layer.map_or(Layer::ALL.to_vec(), |l| vec![l]);
    let compare = layers.len() > 1;
    let rounds = a.rounds.unwrap_or(if compare { 3 } else { 1 });
    let length = a
        .length
        .unwrap_or(Length::Secs(if compare { 1.0 } else { 2.0 }));
    let progress = std::io::stdout().is_terminal();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("bench: Linux {}, {cpus} CPUs", kernel());
    let file: Option<BenchFile> = if modes.contains(&Mode::Read) {
        Some(file::open(a.file.as_deref(), a.buffered)?)
    } else {
        None
    };
    let fd = match &file {
        Some(f) => Some(Fd::new(f.file.try_clone().map_err(|e| {
            format!(
                "cannot duplicate the descriptor of {}: {e}",
                f.path.display()
            )
        })?)),
        None => None,
    };
    if compare {
        let len = match length {
            Length::Secs(s) => format!("{s} s"),
            Length::Ops(n) => format!("{n} ops"),
        };
        println!(
            "{rounds} round(s) of {len} per layer, the layers alternating; threads={}{}{}",
            a.threads,
            if a.sqpoll { ", SQPOLL" } else { "" },
            if a.fixed {
                ", registered buffers and file"
            } else {
                ""
            },
        );
    }
    let mut rows = Vec::new();
    for &mode in &modes {
        let (blocks, mode_name) = match (&file, mode) {
            (Some(f), Mode::Read) => {
                println!("read: {}; random 4096-byte reads", f.about);
                let how = if f.direct { "O_DIRECT" } else { "page cache" };
                (f.blocks, format!("read ({how})"))
            }
            _ => (0, "nop".to_string()),
        };
        let first = rows.len();
        for &layer in &layers {
            let skipped = (layer == Layer::Ctx && mode == Mode::Read && a.fixed)
                .then_some("skipped: --fixed");
            rows.push(Row {
                mode: mode_name.clone(),
                layer,
                ops_per_sec: Vec::new(),
                cpu_ns: Vec::new(),
                skipped,
            });
        }
        for round in 0..rounds {
            for k in 0..layers.len() {
                let row = &mut rows[first + (k + round as usize) % layers.len()];
                if row.skipped.is_some() {
                    continue;
                }
                let p = plan(a, mode, row.layer, length, blocks);
                let o = run_one(
                    &p,
                    if mode == Mode::Read {
                        fd.as_ref()
                    } else {
                        None
                    },
                    progress,
                )?;
                println!("{}", result_line(&p, &o));
                if !compare {
                    println!(
                        "  cpu: {:.1} ns per op (user and system time of the loop's threads)",
                        o.cpu_ns_per_op()
                    );
                }
                if let (Some(e), true) = (o.enters, !compare || a.sqpoll) {
                    println!(
                        "  io_uring_enter: {e} calls, {:.4} per op",
                        e as f64 / o.ops.max(1) as f64
                    );
                }
                row.ops_per_sec.push(o.ops_per_sec());
                row.cpu_ns.push(o.cpu_ns_per_op());
            }
        }
    }
    if compare {
        print_table(&rows);
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Command::Help) => {
            println!("{USAGE}\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(a)) => a,
        Err(e) => {
            eprintln!("bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = check(&args) {
        eprintln!("bench: {e}\n{USAGE}");
        return ExitCode::from(2);
    }
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
