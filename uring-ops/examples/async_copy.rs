//! Copies a file with async linked read→write chains, on tokio or on smol, then fsyncs and
//! checks the size: the `copy` example, awaited.
//!
//! ```sh
//! cargo run --release -p uring-ops --features tokio,async-io --example async_copy -- \
//!     SRC DST [--runtime tokio|smol] [--depth N] [--block BYTES]
//! ```
//!
//! `--depth` tasks (futures of one task, on one thread: a [`LocalRing`]) each copy every
//! `depth`-th block: a chain reads the block into a buffer and writes that same buffer out
//! (`IOSQE_IO_LINK`, one [`SharedBuf`] per task, no copy in user space). The ring's driver
//! waits on the runtime's own reactor (tokio's, or async-io's, which smol runs on).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::Instant;
use uring_ops::awaitable::{AsyncIo, Tokio};
use uring_ops::ops::{Fsync, Read, Write};
use uring_ops::{Chain, Fd, Linked, LocalRing, SharedBuf};

const USAGE: &str = "usage: async_copy SRC DST [--runtime tokio|smol] [--depth N] [--block BYTES]";

struct Args {
    src: PathBuf,
    dst: PathBuf,
    smol: bool,
    depth: u32,
    block: usize,
}

fn parse_args() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let (mut paths, mut smol, mut depth, mut block) = (Vec::new(), false, 8u32, 128 * 1024usize);
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("runtime") => {
                smol = match parser.value()?.to_str() {
                    Some("tokio") => false,
                    Some("smol") => true,
                    _ => return Err("--runtime: expected tokio or smol".into()),
                }
            }
            Long("depth") => depth = number("--depth", parser.value()?, 1, 4096)?,
            Long("block") => block = number("--block", parser.value()?, 1, 1 << 30)?,
            Short('h') | Long("help") => return Ok(None),
            Value(path) if paths.len() < 2 => paths.push(PathBuf::from(path)),
            _ => return Err(arg.unexpected()),
        }
    }
    let [src, dst]: [PathBuf; 2] = paths
        .try_into()
        .map_err(|_| "expected SRC and DST".to_string())?;
    Ok(Some(Args {
        src,
        dst,
        smol,
        depth,
        block,
    }))
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    option: &str,
    value: OsString,
    min: T,
    max: T,
) -> Result<T, lexopt::Error> {
    let text = value.to_string_lossy();
    match text.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("{option} {text}: expected a number from {min} to {max}").into()),
    }
}

/// A worker's future.
type Task<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;

/// Polls every future to completion, in one task; the first error, if any.
struct JoinAll<'a>(Vec<Option<Task<'a>>>);

impl Future for JoinAll<'_> {
    type Output = Result<(), String>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut pending = false;
        for slot in self.0.iter_mut() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => *slot = None,
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

/// Task `k` of `depth`: copies blocks `k`, `k + depth`, ... of `size` bytes.
async fn worker(
    ring: &LocalRing,
    (src, dst): (&Fd, &Fd),
    (k, depth, block): (u64, u64, u64),
    size: u64,
) -> Result<(), String> {
    let buf = SharedBuf::new(vec![0u8; block as usize]);
    let mut offset = k * block;
    while offset < size {
        let len = block.min(size - offset) as u32;
        let chain = Chain::new(Read::new(src, buf.clone(), offset).len(len))
            .then(Write::new(dst, buf.clone(), offset).len(len));
        let (read, write) = ring
            .run(chain)
            .await
            .map_err(|e| format!("queueing the copy at offset {offset}: {e}"))?;
        let fail = |what: &str| format!("copy failed at offset {offset}: {what}");
        match read {
            Linked::Ran((Ok(n), _)) if n == len as usize => {}
            Linked::Ran((Ok(n), _)) => return Err(fail(&format!("short read ({n} of {len})"))),
            Linked::Ran((Err(e), _)) | Linked::Cancelled((Err(e), _)) => {
                return Err(fail(&format!("read: {e}")))
            }
            Linked::Cancelled(_) => return Err(fail("read cancelled")),
        }
        match write {
            Linked::Ran((Ok(n), _)) if n == len as usize => {}
            Linked::Ran((Ok(n), _)) => return Err(fail(&format!("short write ({n} of {len})"))),
            Linked::Ran((Err(e), _)) => return Err(fail(&format!("write: {e}"))),
            Linked::Cancelled(_) => return Err(fail("write cancelled")),
        }
        offset += depth * block;
    }
    Ok(())
}

/// The copy, on whichever runtime polls it (the ring's driver is spawned by the caller).
async fn copy(ring: &LocalRing, args: &Args, src: Fd, dst: Fd, size: u64) -> Result<(), String> {
    let (depth, block) = (u64::from(args.depth), args.block as u64);
    let workers = (0..depth)
        .map(|k| {
            Some(
                Box::pin(worker(ring, (&src, &dst), (k, depth, block), size))
                    as Pin<Box<dyn Future<Output = _>>>,
            )
        })
        .collect();
    JoinAll(workers).await?;
    let synced = ring
        .run(Fsync::new(&dst))
        .await
        .map_err(|e| format!("fsync: {e}"))?;
    synced.map_err(|e| format!("fsync {}: {e}", args.dst.display()))
}

fn run(args: &Args) -> Result<(u64, f64), String> {
    let (src_name, dst_name) = (args.src.display(), args.dst.display());
    let src = File::open(&args.src).map_err(|e| format!("opening {src_name}: {e}"))?;
    let meta = src
        .metadata()
        .map_err(|e| format!("reading {src_name}'s size: {e}"))?;
    if let Ok(d) = std::fs::metadata(&args.dst) {
        if d.dev() == meta.dev() && d.ino() == meta.ino() {
            return Err(format!(
                "{src_name} and {dst_name} are the same file: refusing"
            ));
        }
    }
    let dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&args.dst)
        .map_err(|e| format!("opening {dst_name}: {e}"))?;
    let size = meta.len();
    let (src, dst) = (Fd::new(src), Fd::new(dst));
    let started = Instant::now();
    let ring = LocalRing::new(2 * args.depth).map_err(|e| format!("setting up the ring: {e}"))?;
    if args.smol {
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(async {
            let driver = ring.driver::<AsyncIo>().map_err(|e| e.to_string())?;
            let _driver = ex.spawn(driver);
            copy(&ring, args, src, dst, size).await
        }))?;
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| format!("starting tokio: {e}"))?;
        tokio::task::LocalSet::new().block_on(&rt, async {
            let driver = ring.driver::<Tokio>().map_err(|e| e.to_string())?;
            tokio::task::spawn_local(driver);
            copy(&ring, args, src, dst, size).await
        })?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let written = std::fs::metadata(&args.dst)
        .map_err(|e| format!("reading {dst_name}'s size: {e}"))?
        .len();
    if written != size {
        return Err(format!(
            "size check failed: {dst_name} has {written} bytes, {src_name} {size}"
        ));
    }
    Ok((size, seconds))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("async_copy: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok((bytes, seconds)) => {
            let mib = bytes as f64 / (1024.0 * 1024.0);
            println!(
                "copied {bytes} bytes in {seconds:.3} s on {}: {:.1} MiB/s (depth {}, block {})",
                if args.smol { "smol" } else { "tokio" },
                mib / seconds.max(1e-9),
                args.depth,
                args.block
            );
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("async_copy: {msg}");
            ExitCode::FAILURE
        }
    }
}
