//! Copies a file with linked read→write chains kept in flight, then fsyncs and checks the size.
//!
//! ```sh
//! cargo run --release -p uring-ops --example copy -- SRC DST [--depth N] [--block BYTES]
//! ```
//!
//! Each chain reads one block into a buffer and writes that same buffer out (`IOSQE_IO_LINK`,
//! one [`SharedBuf`] per chain, no copy in user space); `--depth` chains are in flight at once.
//! A short read (the source shrank) fails its link, so the write is cancelled and the copy stops
//! with the offset that failed.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;
use std::time::Instant;
use uring_ops::ops::{Fsync, Read, Write};
use uring_ops::{Chain, Fd, Linked, SharedBuf, Ticket, Uring};

type CopyChain = Chain<(Read<SharedBuf<Vec<u8>>>, Write<SharedBuf<Vec<u8>>>)>;

struct Args {
    src: String,
    dst: String,
    depth: u32,
    block: usize,
}

const USAGE: &str = "usage: copy SRC DST [--depth N] [--block BYTES]";

fn parse_args() -> Result<Args, String> {
    let mut pos = Vec::new();
    let mut depth = 8u32;
    let mut block = 128 * 1024usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--depth" => {
                let v = it.next().ok_or("--depth needs a number")?;
                depth = v
                    .parse()
                    .ok()
                    .filter(|d| (1..=4096).contains(d))
                    .ok_or(format!("--depth {v}: expected 1 to 4096"))?;
            }
            "--block" => {
                let v = it.next().ok_or("--block needs a byte count")?;
                block = v
                    .parse()
                    .ok()
                    .filter(|b| (1..=(1usize << 30)).contains(b))
                    .ok_or(format!("--block {v}: expected 1 to 1073741824 bytes"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => pos.push(a),
        }
    }
    let [src, dst]: [String; 2] = pos
        .try_into()
        .map_err(|_| format!("expected SRC and DST\n{USAGE}"))?;
    Ok(Args {
        src,
        dst,
        depth,
        block,
    })
}

/// One chain in flight: the ticket, where it copies, and which buffer it uses.
struct InFlight {
    ticket: Ticket<CopyChain>,
    offset: u64,
    len: usize,
    buf: usize,
}

fn copy(args: &Args) -> Result<(u64, f64), String> {
    let src = File::open(&args.src).map_err(|e| format!("{}: {e}", args.src))?;
    let src_meta = src.metadata().map_err(|e| format!("{}: {e}", args.src))?;
    // Refuse a copy onto itself before the destination is truncated.
    if let Ok(dst_meta) = std::fs::metadata(&args.dst) {
        if dst_meta.dev() == src_meta.dev() && dst_meta.ino() == src_meta.ino() {
            return Err(format!(
                "{} and {} are the same file: refusing to copy a file onto itself",
                args.src, args.dst
            ));
        }
    }
    let dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&args.dst)
        .map_err(|e| format!("{}: {e}", args.dst))?;
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
    let mut queue: VecDeque<InFlight> = VecDeque::new();
    let mut next = 0u64;

    while next < size || !queue.is_empty() {
        // Keep `depth` chains in flight.
        while next < size {
            let Some(b) = free.pop() else { break };
            let len = block.min(size - next) as usize;
            let chain = Chain::new(Read::new(&src, bufs[b].clone(), next).len(len as u32))
                .then(Write::new(&dst, bufs[b].clone(), next).len(len as u32));
            let ticket = ring
                .push(chain)
                .map_err(|e| format!("queueing the copy at offset {next}: {}", e.error))?;
            queue.push_back(InFlight {
                ticket,
                offset: next,
                len,
                buf: b,
            });
            next += len as u64;
        }
        ring.submit()
            .map_err(|e| format!("submitting at offset {next}: {e}"))?;
        let Some(oldest) = queue.pop_front() else {
            break;
        };
        let (read, write) = ring
            .wait(oldest.ticket)
            .map_err(|e| format!("waiting at offset {}: {e}", oldest.offset))?;
        let at = oldest.offset;
        match read {
            Linked::Ran((Ok(n), _)) if n == oldest.len => {}
            Linked::Ran((Ok(n), _)) => {
                return Err(format!(
                "copy failed at offset {at}: short read ({n} of {} bytes; did the source shrink?)",
                oldest.len
            ))
            }
            Linked::Ran((Err(e), _)) | Linked::Cancelled((Err(e), _)) => {
                return Err(format!("copy failed at offset {at}: read: {e}"))
            }
            Linked::Cancelled(_) => {
                return Err(format!("copy failed at offset {at}: read cancelled"))
            }
        }
        match write {
            Linked::Ran((Ok(n), _)) if n == oldest.len => {}
            Linked::Ran((Ok(n), _)) => {
                return Err(format!(
                    "copy failed at offset {at}: short write ({n} of {} bytes)",
                    oldest.len
                ))
            }
            Linked::Ran((Err(e), _)) => {
                return Err(format!("copy failed at offset {at}: write: {e}"))
            }
            Linked::Cancelled(_) => {
                return Err(format!("copy failed at offset {at}: write cancelled"))
            }
        }
        // The chain's handles are dropped with its output: the buffer can take the next block.
        free.push(oldest.buf);
    }

    let t = ring
        .push(Fsync::new(&dst))
        .map_err(|e| format!("queueing fsync: {}", e.error))?;
    ring.wait(t)
        .map_err(|e| format!("fsync: {e}"))?
        .map_err(|e| format!("fsync {}: {e}", args.dst))?;
    let seconds = started.elapsed().as_secs_f64();

    let written = std::fs::metadata(&args.dst)
        .map_err(|e| format!("{}: {e}", args.dst))?
        .len();
    if written != size {
        return Err(format!(
            "size check failed: {} has {written} bytes, {} has {size}",
            args.dst, args.src
        ));
    }
    bufs.clear();
    Ok((size, seconds))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
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
