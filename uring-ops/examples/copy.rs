//! Copies a file with linked read→write chains kept in flight, then fsyncs and checks the size.
//!
//! ```sh
//! cargo run --release -p uring-ops --example copy -- SRC DST [--depth N] [--block BYTES]
//! cargo run --release -p uring-ops --example copy -- --help
//! ```
//!
//! Each chain reads one block into a buffer and writes that same buffer out (`IOSQE_IO_LINK`,
//! one [`SharedBuf`] per chain, no copy in user space); `--depth` chains are in flight at once.
//! A short read (the source shrank) fails its link, so the write is cancelled and the copy stops
//! with the offset that failed.

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::ops::RangeInclusive;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};
use uring_ops::ops::{Fsync, Read, Write};
use uring_ops::{Chain, Fd, Linked, SharedBuf, Uring};

type CopyChain = Chain<(Read<SharedBuf<Vec<u8>>>, Write<SharedBuf<Vec<u8>>>)>;

struct Args {
    src: PathBuf,
    dst: PathBuf,
    depth: u32,
    block: usize,
}

const USAGE: &str = "usage: copy SRC DST [--depth N] [--block BYTES]";

const HELP: &str = "\
Copies SRC to DST with linked read->write chains through io_uring, fsyncs DST and checks its
size. Prints the bytes copied, the seconds taken and the rate.

options:
  --depth N        chains in flight at once, 1 to 4096 (default 8)
  --block BYTES    bytes each chain copies, 1 to 1073741824 (default 131072)
  -h, --help       print this help";

/// What the command line asks for.
enum Command {
    Copy(Args),
    Help,
}

fn parse_args() -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut paths = Vec::new();
    let mut depth = 8u32;
    let mut block = 128 * 1024usize;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("depth") => depth = number("--depth", parser.value()?, 1..=4096)?,
            Long("block") => block = number("--block", parser.value()?, 1..=1 << 30)?,
            Short('h') | Long("help") => return Ok(Command::Help),
            Value(path) if paths.len() < 2 => paths.push(PathBuf::from(path)),
            _ => return Err(arg.unexpected()),
        }
    }
    let [src, dst]: [PathBuf; 2] = paths
        .try_into()
        .map_err(|_| "expected SRC and DST".to_string())?;
    Ok(Command::Copy(Args {
        src,
        dst,
        depth,
        block,
    }))
}

/// `value` as a number in `range`; the error names the option and the range.
fn number<T>(option: &str, value: OsString, range: RangeInclusive<T>) -> Result<T, lexopt::Error>
where
    T: FromStr + PartialOrd + fmt::Display,
{
    let text = value.to_string_lossy();
    match text.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "{option} {text}: expected a number from {} to {}",
            range.start(),
            range.end()
        )
        .into()),
    }
}

/// What a chain in flight copies (kept by the index of its buffer, which is its tag).
#[derive(Clone, Copy, Default)]
struct Block {
    offset: u64,
    len: usize,
}

/// The outcome of the chain that copied `len` bytes at offset `at`, as an error message if it
/// did not copy them all.
fn check(
    read: Linked<(std::io::Result<usize>, SharedBuf<Vec<u8>>)>,
    write: Linked<(std::io::Result<usize>, SharedBuf<Vec<u8>>)>,
    at: u64,
    len: usize,
) -> Result<(), String> {
    match read {
        Linked::Ran((Ok(n), _)) if n == len => {}
        Linked::Ran((Ok(n), _)) => {
            return Err(format!(
            "copy failed at offset {at}: short read ({n} of {len} bytes; did the source shrink?)"
        ))
        }
        Linked::Ran((Err(e), _)) | Linked::Cancelled((Err(e), _)) => {
            return Err(format!("copy failed at offset {at}: read: {e}"))
        }
        Linked::Cancelled(_) => return Err(format!("copy failed at offset {at}: read cancelled")),
    }
    match write {
        Linked::Ran((Ok(n), _)) if n == len => Ok(()),
        Linked::Ran((Ok(n), _)) => Err(format!(
            "copy failed at offset {at}: short write ({n} of {len} bytes)"
        )),
        Linked::Ran((Err(e), _)) => Err(format!("copy failed at offset {at}: write: {e}")),
        Linked::Cancelled(_) => Err(format!("copy failed at offset {at}: write cancelled")),
    }
}

fn copy(args: &Args) -> Result<(u64, f64), String> {
    let (src_name, dst_name) = (args.src.display(), args.dst.display());
    let src = File::open(&args.src).map_err(|e| format!("opening {src_name}: {e}"))?;
    let src_meta = src
        .metadata()
        .map_err(|e| format!("reading {src_name}'s size: {e}"))?;
    // Refuse a copy onto itself before the destination is truncated.
    if let Ok(dst_meta) = std::fs::metadata(&args.dst) {
        if dst_meta.dev() == src_meta.dev() && dst_meta.ino() == src_meta.ino() {
            return Err(format!(
                "{} and {} are the same file: refusing to copy a file onto itself",
                src_name, dst_name
            ));
        }
    }
    let dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&args.dst)
        .map_err(|e| format!("opening {dst_name}: {e}"))?;
    let size = src_meta.len();
    let block = args.block as u64;
    // Shared handles: every op holds one, so a file stays open until its last op completes.
    let (src, dst) = (Fd::new(src), Fd::new(dst));

    let started = Instant::now();
    let mut ring = Uring::new(2 * args.depth).map_err(|e| format!("setting up the ring: {e}"))?;
    let mut bufs: Vec<SharedBuf<Vec<u8>>> = (0..args.depth)
        .map(|_| SharedBuf::new(vec![0u8; args.block]))
        .collect();
    let mut free: Vec<usize> = (0..bufs.len()).collect();
    let mut blocks = vec![Block::default(); bufs.len()];
    let mut next = 0u64;

    while next < size || free.len() < bufs.len() {
        // Keep `depth` chains in flight, each tagged with its buffer's index.
        while next < size {
            let Some(b) = free.pop() else { break };
            let len = block.min(size - next) as usize;
            let chain = Chain::new(Read::new(&src, bufs[b].clone(), next).len(len as u32))
                .then(Write::new(&dst, bufs[b].clone(), next).len(len as u32));
            // The completion record brings the output back: the ticket is not needed.
            let _ticket = ring
                .push_tagged(chain, b as u64)
                .map_err(|e| format!("queueing the copy at offset {next}: {e}"))?;
            blocks[b] = Block { offset: next, len };
            next += len as u64;
        }
        // Submits, and waits until at least one chain has finished.
        ring.wait_completions(Duration::MAX)
            .map_err(|e| format!("waiting at offset {next}: {e}"))?;
        while let Some(c) = ring.next_completion() {
            let b = c.tag() as usize;
            let Block { offset: at, len } = blocks[b];
            let (read, write) = ring
                .take::<CopyChain>(&c)
                .map_err(|e| format!("collecting the copy at offset {at}: {e}"))?;
            check(read, write, at, len)?;
            // The chain's handles are dropped with its output: the buffer can take the next
            // block.
            free.push(b);
        }
    }

    let t = ring
        .push(Fsync::new(&dst))
        .map_err(|e| format!("queueing fsync: {e}"))?;
    ring.wait(t)
        .map_err(|e| format!("fsync: {e}"))?
        .map_err(|e| format!("fsync {dst_name}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();

    let written = std::fs::metadata(&args.dst)
        .map_err(|e| format!("reading {dst_name}'s size: {e}"))?
        .len();
    if written != size {
        return Err(format!(
            "size check failed: {dst_name} has {written} bytes, {src_name} has {size}"
        ));
    }
    bufs.clear();
    Ok((size, seconds))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Command::Copy(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("copy: {e}\n{USAGE}\n(copy --help for more)");
            return ExitCode::from(2);
        }
    };
    match copy(&args) {
        Ok((bytes, seconds)) => {
            let mib = bytes as f64 / (1024.0 * 1024.0);
            println!(
                "copied {bytes} bytes in {seconds:.3} s: {:.1} MiB/s (depth {}, block {} bytes)",
                mib / seconds.max(1e-9),
                args.depth,
                args.block
            );
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("copy: {msg}");
            ExitCode::FAILURE
        }
    }
}
