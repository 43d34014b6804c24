//! A benchmark of the async layer (issue 11, item 4): `--tasks` tasks on one thread each read
//! 4 KiB at random offsets from a file in the page cache, awaiting each read, until `--ops`
//! reads are done; prints the reads per second.
//!
//! ```sh
//! cargo run --release -p uring-ops --features tokio --example async_reads -- \
//!     [--ring local|shared] [--tasks N] [--ops N] [--file PATH]
//! ```
//!
//! The tasks run on tokio's current-thread runtime (a `LocalSet`); the ring is a
//! [`LocalRing`] (the default) or a [`SharedRing`], driven on tokio's reactor. The file (by
//! default a 64 MiB temporary file it writes, so that it is in the page cache) is read with
//! buffered reads. Each read's result is checked (4096 bytes, and the block's first byte).
//! For instruction counts, run it under callgrind at two `--ops` and take the difference.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;
use uring_ops::awaitable::Tokio;
use uring_ops::ops::Read;
use uring_ops::{Fd, LocalRing, SharedRing};

const BLOCK: usize = 4096;
const FILE_BLOCKS: u64 = 16384; // 64 MiB
const USAGE: &str = "usage: async_reads [--ring local|shared] [--tasks N] [--ops N] [--file PATH]";

struct Args {
    shared: bool,
    tasks: u64,
    ops: u64,
    file: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut a = Args {
        shared: false,
        tasks: 32,
        ops: 1_000_000,
        file: None,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("ring") => {
                a.shared = match parser.value()?.to_str() {
                    Some("local") => false,
                    Some("shared") => true,
                    _ => return Err("--ring: expected local or shared".into()),
                }
            }
            Long("tasks") => a.tasks = number("--tasks", parser.value()?, 1, 4096)?,
            Long("ops") => a.ops = number("--ops", parser.value()?, 1, 1 << 40)?,
            Long("file") => a.file = Some(PathBuf::from(parser.value()?)),
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(a))
}

fn number(option: &str, value: OsString, min: u64, max: u64) -> Result<u64, lexopt::Error> {
    let text = value.to_string_lossy();
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{option} {text}: expected a number from {min} to {max}").into()),
    }
}

/// xorshift64*: the offsets, one generator per task.
fn next(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Block `b` of the file begins with byte `b as u8` (and is zero after).
fn make_file(path: Option<&PathBuf>) -> Result<(Fd, u64, Option<tempfile::TempPath>), String> {
    let (file, temp) = match path {
        Some(p) => (
            std::fs::File::open(p).map_err(|e| format!("opening {}: {e}", p.display()))?,
            None,
        ),
        None => {
            let mut f = tempfile::NamedTempFile::new_in("/var/tmp")
                .or_else(|_| tempfile::NamedTempFile::new())
                .map_err(|e| format!("making the file: {e}"))?;
            let mut block = vec![0u8; BLOCK];
            for b in 0..FILE_BLOCKS {
                block[0] = b as u8;
                f.write_all(&block)
                    .map_err(|e| format!("writing the file: {e}"))?;
            }
            let (file, path) = f.into_parts();
            (file, Some(path))
        }
    };
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let blocks = len / BLOCK as u64;
    if blocks == 0 {
        return Err("the file is shorter than one block".into());
    }
    Ok((Fd::new(file), blocks, temp))
}

macro_rules! task {
    ($ring:expr, $file:expr, $blocks:expr, $n:expr, $seed:expr, $check:expr) => {
        async move {
            let mut s = $seed;
            let mut buf = vec![0u8; BLOCK];
            for _ in 0..$n {
                let b = next(&mut s) % $blocks;
                let op = Read::new(&*$file, buf, b * BLOCK as u64);
                let (n, back) = $ring.run(op).await.map_err(|e| e.to_string())?;
                let n = n.map_err(|e| format!("read at block {b}: {e}"))?;
                if n != BLOCK || ($check && back[0] != b as u8) {
                    return Err(format!(
                        "read at block {b}: {n} bytes, first byte {}",
                        back[0]
                    ));
                }
                buf = back;
            }
            Ok::<(), String>(())
        }
    };
}

fn run(a: &Args) -> Result<f64, String> {
    let (file, blocks, _temp) = make_file(a.file.as_ref())?;
    let check = a.file.is_none();
    let file = Rc::new(file);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    let per_task = a.ops / a.tasks;
    let entries = (a.tasks as u32).next_power_of_two().max(8);
    let started = Instant::now();
    tokio::task::LocalSet::new().block_on(&rt, async {
        let mut handles = Vec::new();
        if a.shared {
            let ring = SharedRing::new(entries).map_err(|e| e.to_string())?;
            tokio::task::spawn_local(ring.driver::<Tokio>().map_err(|e| e.to_string())?);
            for t in 0..a.tasks {
                let (ring, file) = (ring.clone(), Rc::clone(&file));
                let seed = (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                handles.push(tokio::task::spawn_local(task!(
                    ring, file, blocks, per_task, seed, check
                )));
            }
        } else {
            let ring = LocalRing::new(entries).map_err(|e| e.to_string())?;
            tokio::task::spawn_local(ring.driver::<Tokio>().map_err(|e| e.to_string())?);
            for t in 0..a.tasks {
                let (ring, file) = (ring.clone(), Rc::clone(&file));
                let seed = (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                handles.push(tokio::task::spawn_local(task!(
                    ring, file, blocks, per_task, seed, check
                )));
            }
        }
        for h in handles {
            h.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    Ok((per_task * a.tasks) as f64 / secs.max(1e-9))
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("async_reads: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
        Ok(iops) => {
            println!(
                "RESULT ring={} tasks={} ops={} reads_per_sec={iops:.0}",
                if a.shared { "shared" } else { "local" },
                a.tasks,
                a.ops / a.tasks * a.tasks
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("async_reads: {e}");
            ExitCode::FAILURE
        }
    }
}
