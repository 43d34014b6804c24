//! Checksums every file under a directory: each file opened, read and closed by one linked
//! chain into a registered-file slot (`OpenAt` into slot N → `Read` from slot N → `Close` of
//! slot N), many chains in flight; or the same job with the standard library on a thread pool,
//! to compare.
//!
//! ```sh
//! cargo run --release -p uring-ops --example sum -- DIR [--mode uring|std|both] [--depth N]
//! cargo run --release -p uring-ops --example sum -- --make DIR --files N --size BYTES
//! cargo run --release -p uring-ops --example sum -- --help
//! ```
//!
//! A file larger than the buffer is read in chunks from its slot, the last chunk linked to the
//! close. Both modes compute the same checksum (an order-free sum of a 64-bit digest per file)
//! and report the files, bytes, wall time and CPU time (user + system, io-wq workers included)
//! of each round.

use std::ffi::OsString;
use std::fmt;
use std::io::Read as _;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uring_ops::ops::{Close, OpenAt, Read};
use uring_ops::{Chain, FixedFd, Linked, NewSlot, Outcome, Ticket, Uring};

const USAGE: &str = "usage: sum DIR [--mode uring|std|both] [--depth N] [--rings N] [--threads N] [--buf BYTES] [--rounds N] [--drop-caches]
       sum --make DIR [--files N] [--size BYTES]";

const HELP: &str = "\
Checksums every regular file under DIR (symbolic links are not followed). With io_uring, each
file is opened into a registered-file slot, read and closed by one linked chain, --depth
chains in flight on each of --rings rings (a thread each); with std, --threads threads open,
read and close files. Prints, per round, the files, bytes, checksum, wall time and CPU time;
with --mode both, the rounds alternate and the medians and their ratio follow.

options:
  --mode M          uring, std or both (default uring)
  --depth N         io_uring chains in flight per ring, 1 to 4096 (default 64)
  --rings N         io_uring rings, each on its own thread, 1 to 64 (default 1)
  --threads N       std threads, 1 to 1024 (default 8)
  --buf BYTES       read buffer per chain or thread, 4096 to 67108864 (default 131072)
  --rounds N        rounds per mode, 1 to 1000 (default 1)
  --drop-caches     drop the page cache before each round (root: /proc/sys/vm/drop_caches)
  --make DIR        make a tree to sum instead: DIR/dNNN/fNNNNNN, 1000 files a directory
  --files N         files --make makes, 1 to 10000000 (default 10000)
  --size BYTES      bytes per file --make makes, 0 to 1073741824 (default 4096)
  -h, --help        print this help";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Uring,
    Std,
    Both,
}

struct SumArgs {
    dir: PathBuf,
    mode: Mode,
    depth: u32,
    rings: usize,
    threads: usize,
    buf: usize,
    rounds: u32,
    drop_caches: bool,
}

enum Command {
    Sum(SumArgs),
    Make { dir: PathBuf, files: u64, size: u64 },
    Help,
}

fn parse_args() -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut dir = None;
    let mut make = None;
    let (mut mode, mut depth, mut threads, mut buf, mut rounds) =
        (Mode::Uring, 64, 8, 128 << 10, 1);
    let mut rings = 1;
    let (mut files, mut size, mut drop_caches) = (10_000, 4096, false);
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("mode") => {
                let v = parser.value()?;
                mode = match v.to_str() {
                    Some("uring") => Mode::Uring,
                    Some("std") => Mode::Std,
                    Some("both") => Mode::Both,
                    _ => {
                        let v = v.to_string_lossy();
                        return Err(format!("--mode {v}: expected uring, std or both").into());
                    }
                }
            }
            Long("depth") => depth = number("--depth", parser.value()?, 1..=4096)?,
            Long("threads") => threads = number("--threads", parser.value()?, 1..=1024)?,
            Long("rings") => rings = number("--rings", parser.value()?, 1..=64)?,
            Long("buf") => buf = number("--buf", parser.value()?, 4096..=64 << 20)?,
            Long("rounds") => rounds = number("--rounds", parser.value()?, 1..=1000)?,
            Long("drop-caches") => drop_caches = true,
            Long("make") => make = Some(PathBuf::from(parser.value()?)),
            Long("files") => files = number("--files", parser.value()?, 1..=10_000_000)?,
            Long("size") => size = number("--size", parser.value()?, 0..=1 << 30)?,
            Short('h') | Long("help") => return Ok(Command::Help),
            Value(d) if dir.is_none() => dir = Some(PathBuf::from(d)),
            _ => return Err(arg.unexpected()),
        }
    }
    match (make, dir) {
        (Some(dir), None) => Ok(Command::Make { dir, files, size }),
        (Some(_), Some(_)) => Err("--make takes its DIR as its value, not another DIR".into()),
        (None, Some(dir)) => Ok(Command::Sum(SumArgs {
            dir,
            mode,
            depth,
            rings,
            threads,
            buf,
            rounds,
            drop_caches,
        })),
        (None, None) => Err("expected DIR".into()),
    }
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

/// A 64-bit digest of a byte stream, fed in chunks of any size.
#[derive(Default)]
struct Digest {
    h: u64,
    len: u64,
    tail: [u8; 8],
    tail_len: usize,
}

impl Digest {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(Self::K);
        self.h ^= self.h >> 29;
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.tail_len > 0 {
            let k = (8 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + k].copy_from_slice(&data[..k]);
            self.tail_len += k;
            data = &data[k..];
            if self.tail_len < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        let rest = words.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    fn finish(mut self) -> u64 {
        if self.tail_len > 0 {
            self.tail[self.tail_len..].fill(0);
            self.word(u64::from_le_bytes(self.tail));
        }
        self.word(self.len);
        self.h
    }
}

/// A regular file to sum.
struct Entry {
    path: PathBuf,
    len: u64,
}

/// Every regular file under `dir`, not following symbolic links.
fn walk(dir: &Path) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let read = std::fs::read_dir(&d).map_err(|e| format!("reading {}: {e}", d.display()))?;
        for e in read {
            let e = e.map_err(|e| format!("reading {}: {e}", d.display()))?;
            let ty = e
                .file_type()
                .map_err(|err| format!("{}: {err}", e.path().display()))?;
            if ty.is_dir() {
                dirs.push(e.path());
            } else if ty.is_file() {
                let len = e
                    .metadata()
                    .map_err(|err| format!("{}: {err}", e.path().display()))?
                    .len();
                out.push(Entry {
                    path: e.path(),
                    len,
                });
            }
        }
    }
    Ok(out)
}

/// What one round found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sum {
    files: u64,
    bytes: u64,
    checksum: u64,
    /// Files that could not be read, with why.
    failed: Vec<String>,
}

impl Sum {
    fn add(&mut self, d: Digest) {
        self.files += 1;
        self.bytes += d.len;
        self.checksum = self.checksum.wrapping_add(d.finish());
    }
}

/// The standard library on a thread pool: each thread takes the next file, opens it, reads it
/// into its buffer and closes it.
fn sum_std(files: &[Entry], threads: usize, buf: usize) -> Sum {
    let next = AtomicUsize::new(0);
    let total = Mutex::new(Sum::default());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut local = Sum::default();
                let mut b = vec![0u8; buf];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = files.get(i) else { break };
                    let mut d = Digest::default();
                    let r = std::fs::File::open(&e.path).and_then(|mut f| loop {
                        match f.read(&mut b)? {
                            0 => return Ok(()),
                            n => d.update(&b[..n]),
                        }
                    });
                    match r {
                        Ok(()) => local.add(d),
                        Err(err) => local.failed.push(format!("{}: {err}", e.path.display())),
                    }
                }
                let mut t = total.lock().unwrap_or_else(|p| p.into_inner());
                t.files += local.files;
                t.bytes += local.bytes;
                t.checksum = t.checksum.wrapping_add(local.checksum);
                t.failed.append(&mut local.failed);
            });
        }
    });
    total.into_inner().unwrap_or_else(|p| p.into_inner())
}

type Whole = Chain<(OpenAt<NewSlot>, Read<Vec<u8>>, Close)>;
type Head = Chain<(OpenAt<NewSlot>, Read<Vec<u8>>)>;
type Tail = Chain<(Read<Vec<u8>>, Close)>;

/// What a slot has in flight.
enum Pending {
    /// Open → read the whole file → close (hard-linked: the slot is closed whatever the read).
    Whole(Ticket<Whole>),
    /// Open → read the first chunk of a file larger than the buffer.
    Head(Ticket<Head>),
    /// Read a middle chunk from the slot.
    Middle(Ticket<Read<Vec<u8>>>),
    /// Read the last chunk → close (hard-linked).
    Tail(Ticket<Tail>),
    /// Close the slot after a failed read.
    Closing(Ticket<Close>),
}

/// One registered-file slot and the file it is summing.
struct Slot {
    index: u32,
    /// The slot, as ops name it.
    fixed: FixedFd,
    /// The size of its buffer.
    cap: usize,
    pending: Option<Pending>,
    file: usize,
    offset: u64,
    digest: Digest,
    /// The slot's buffer, when no op holds it.
    buf: Option<Vec<u8>>,
}

impl Slot {
    /// The tag of its ops: its index.
    fn tag(&self) -> u64 {
        u64::from(self.index)
    }
}

/// A read's outcome as bytes read, or why the file failed.
fn bytes(
    read: Linked<(std::io::Result<usize>, Vec<u8>)>,
    want: u64,
) -> (Result<usize, String>, Vec<u8>) {
    let cancelled = read.is_cancelled();
    let (r, buf) = read.into_inner();
    let r = match r {
        Ok(n) if n as u64 == want => Ok(n),
        Ok(n) => Err(format!(
            "short read ({n} of {want} bytes: did the file change?)"
        )),
        Err(e) if cancelled => Err(format!("not read: {e}")),
        Err(e) => Err(format!("read: {e}")),
    };
    (r, buf)
}

/// io_uring on `rings` threads, each with its own ring, taking files from a shared index.
fn sum_uring(files: &[Entry], rings: usize, depth: u32, buf: usize) -> Result<Sum, String> {
    let next = AtomicUsize::new(0);
    let sums: Vec<Result<Sum, String>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..rings)
            .map(|_| s.spawn(|| sum_ring(files, &next, depth, buf)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("a ring's thread panicked".into()))
            })
            .collect()
    });
    let mut total = Sum::default();
    for sum in sums {
        let mut sum = sum?;
        total.files += sum.files;
        total.bytes += sum.bytes;
        total.checksum = total.checksum.wrapping_add(sum.checksum);
        total.failed.append(&mut sum.failed);
    }
    Ok(total)
}

/// One ring: `depth` slots, each running files through open → read → close chains.
fn sum_ring(files: &[Entry], next: &AtomicUsize, depth: u32, buf: usize) -> Result<Sum, String> {
    let entries = (3 * depth).next_power_of_two().min(32768);
    let mut ring = Uring::new(entries).map_err(|e| format!("setting up the ring: {e}"))?;
    ring.ring()
        .register()
        .register_files_sparse(depth)
        .map_err(|e| format!("registering {depth} file slots: {e}"))?;
    let mut slots: Vec<Slot> = (0..depth)
        .map(|index| Slot {
            index,
            fixed: NewSlot::at(index)
                .fixed_fd()
                .unwrap_or_else(|| unreachable!("a given slot")),
            cap: buf,
            pending: None,
            file: 0,
            offset: 0,
            digest: Digest::default(),
            buf: Some(Vec::with_capacity(buf)),
        })
        .collect();
    let mut sum = Sum::default();
    let mut busy = 0;
    for s in &mut slots {
        busy += usize::from(start(&mut ring, s, files, next, &mut sum)?);
    }
    while busy > 0 {
        // Each op is pushed tagged with its slot: the completion records say which slots have
        // something finished, and no slot is looked at in vain.
        ring.wait_completions(Duration::MAX)
            .map_err(|e| format!("waiting: {e}"))?;
        while let Some(c) = ring.next_completion() {
            let s = &mut slots[c.tag() as usize];
            let p = s
                .pending
                .take()
                .ok_or("a record for a slot with nothing in flight")?;
            if let Some(p) = step(&mut ring, s, p, files, &mut sum)? {
                s.pending = Some(p);
            } else {
                busy -= 1;
                busy += usize::from(start(&mut ring, s, files, next, &mut sum)?);
            }
        }
    }
    Ok(sum)
}

/// Starts the next file in slot `s`; `false` when there is none left.
fn start(
    ring: &mut Uring,
    s: &mut Slot,
    files: &[Entry],
    next: &AtomicUsize,
    sum: &mut Sum,
) -> Result<bool, String> {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(e) = files.get(i) else { break };
        s.file = i;
        let open = match OpenAt::path(&e.path) {
            Ok(open) => open.into_slot(NewSlot::at(s.index)),
            Err(err) => {
                sum.failed.push(format!("{}: {err}", e.path.display()));
                continue;
            }
        };
        let slot = s.fixed;
        let mut buf = s.buf.take().ok_or("the slot's buffer is in flight")?;
        buf.clear();
        let want = e.len.min(s.cap as u64);
        let read = Read::new(slot, buf, 0).len(want as u32);
        s.digest = Digest::default();
        s.offset = 0;
        s.pending = Some(if want == e.len {
            let chain = Chain::new(open).then(read).then_hard(Close::slot(slot));
            Pending::Whole(
                ring.push_tagged(chain, s.tag())
                    .map_err(|e| format!("queueing: {e}"))?,
            )
        } else {
            Pending::Head(
                ring.push_tagged(Chain::new(open).then(read), s.tag())
                    .map_err(|e| format!("queueing: {e}"))?,
            )
        });
        return Ok(true);
    }
    Ok(false)
}

/// Takes a finished op of slot `s` and queues what follows; `None` when the file is done.
fn step(
    ring: &mut Uring,
    s: &mut Slot,
    p: Pending,
    files: &[Entry],
    sum: &mut Sum,
) -> Result<Option<Pending>, String> {
    macro_rules! take {
        ($t:expr, $variant:ident) => {
            match ring.try_take($t) {
                Ok(Outcome::Done(out)) => out,
                Ok(Outcome::Pending(t)) => return Ok(Some(Pending::$variant(t))),
                Err(e) => return Err(format!("redeeming: {e}")),
            }
        };
    }
    let e = &files[s.file];
    let want = (e.len - s.offset).min(s.cap as u64);
    let (read, closed) = match p {
        Pending::Whole(t) => {
            let (open, read, close) = take!(t, Whole);
            if let Err(err) = open.into_inner() {
                s.buf = Some(read.into_inner().1);
                sum.failed
                    .push(format!("{}: open: {err}", e.path.display()));
                return Ok(None);
            }
            (read, Some(close.into_inner().map_err(|e| e.error)))
        }
        Pending::Head(t) => {
            let (open, read) = take!(t, Head);
            if let Err(err) = open.into_inner() {
                s.buf = Some(read.into_inner().1);
                sum.failed
                    .push(format!("{}: open: {err}", e.path.display()));
                return Ok(None);
            }
            (read, None)
        }
        Pending::Middle(t) => (Linked::Ran(take!(t, Middle)), None),
        Pending::Tail(t) => {
            let (read, close) = take!(t, Tail);
            (read, Some(close.into_inner().map_err(|e| e.error)))
        }
        Pending::Closing(t) => {
            if let Err(err) = take!(t, Closing) {
                sum.failed
                    .push(format!("{}: close: {}", e.path.display(), err.error));
            }
            return Ok(None);
        }
    };
    let (r, buf) = bytes(read, want);
    s.buf = Some(buf);
    let n = match r {
        Ok(n) => n,
        Err(err) => {
            sum.failed.push(format!("{}: {err}", e.path.display()));
            return Ok(match closed {
                Some(_) => None,
                None => Some(Pending::Closing(
                    ring.push_tagged(Close::slot(s.fixed), s.tag())
                        .map_err(|e| format!("queueing: {e}"))?,
                )),
            });
        }
    };
    if let Some(buf) = &s.buf {
        s.digest.update(&buf[..n]);
    }
    s.offset += n as u64;
    if let Some(closed) = closed {
        if let Err(err) = closed {
            sum.failed
                .push(format!("{}: close: {err}", e.path.display()));
        } else {
            sum.add(std::mem::take(&mut s.digest));
        }
        return Ok(None);
    }
    // More to read: a middle chunk, or the last one linked to the close.
    let mut buf = s.buf.take().ok_or("the slot's buffer is in flight")?;
    buf.clear();
    let left = e.len - s.offset;
    let want = left.min(s.cap as u64);
    let read = Read::new(s.fixed, buf, s.offset).len(want as u32);
    Ok(Some(if want == left {
        let chain = Chain::new(read).then_hard(Close::slot(s.fixed));
        Pending::Tail(
            ring.push_tagged(chain, s.tag())
                .map_err(|e| format!("queueing: {e}"))?,
        )
    } else {
        Pending::Middle(
            ring.push_tagged(read, s.tag())
                .map_err(|e| format!("queueing: {e}"))?,
        )
    }))
}

/// Makes `files` files of `size` bytes under `dir`, 1000 to a directory, each with its own
/// contents.
fn make(dir: &Path, files: u64, size: u64) -> Result<(), String> {
    let mut data = vec![0u8; size as usize];
    for i in 0..files {
        let sub = dir.join(format!("d{:03}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&sub).map_err(|e| format!("making {}: {e}", sub.display()))?;
        }
        let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for b in &mut data {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let path = sub.join(format!("f{i:07}"));
        std::fs::write(&path, &data).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// CPU time used by the process so far (user + system, every thread, io-wq workers included).
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given; all zeros is a valid one.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn drop_caches() -> Result<(), String> {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .map_err(|e| format!("--drop-caches: writing /proc/sys/vm/drop_caches: {e}"))
}

/// One timed round of `mode` (not `Both`).
fn round(mode: Mode, files: &[Entry], args: &SumArgs) -> Result<(Sum, Duration, Duration), String> {
    if args.drop_caches {
        drop_caches()?;
    }
    let (wall, cpu) = (Instant::now(), cpu_time());
    let sum = match mode {
        Mode::Std => sum_std(files, args.threads, args.buf),
        _ => sum_uring(files, args.rings, args.depth, args.buf)?,
    };
    Ok((sum, wall.elapsed(), cpu_time().saturating_sub(cpu)))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(args: &SumArgs) -> Result<bool, String> {
    let files = walk(&args.dir)?;
    let modes: &[Mode] = match args.mode {
        Mode::Both => &[Mode::Uring, Mode::Std],
        m => std::slice::from_ref(match m {
            Mode::Uring => &Mode::Uring,
            _ => &Mode::Std,
        }),
    };
    let mut times: Vec<(Vec<Duration>, Vec<Duration>)> = vec![Default::default(); modes.len()];
    let mut first: Option<Sum> = None;
    let mut ok = true;
    for _ in 0..args.rounds {
        for (m, &mode) in modes.iter().enumerate() {
            let (sum, wall, cpu) = round(mode, &files, args)?;
            let name = if mode == Mode::Std { "std" } else { "uring" };
            println!(
                "{name:5} {} files, {} bytes, checksum {:016x}: {:.3} s wall, {:.3} s cpu",
                sum.files,
                sum.bytes,
                sum.checksum,
                wall.as_secs_f64(),
                cpu.as_secs_f64()
            );
            for f in &sum.failed {
                eprintln!("sum: {f}");
            }
            ok &= sum.failed.is_empty();
            match &first {
                Some(s) if *s != sum => {
                    return Err(format!(
                        "{name} found another sum than the first round: {sum:?}"
                    ))
                }
                Some(_) => {}
                None => first = Some(sum),
            }
            times[m].0.push(wall);
            times[m].1.push(cpu);
        }
    }
    if modes.len() == 2 {
        let [(uw, uc), (sw, sc)] =
            [&times[0], &times[1]].map(|(w, c)| (median(w.clone()), median(c.clone())));
        println!(
            "median of {}: uring ({} ring(s)) {:.3} s wall {:.3} s cpu, std ({} threads) {:.3} s wall {:.3} s cpu; std/uring: {:.2}x wall, {:.2}x cpu",
            args.rounds,
            args.rings,
            uw.as_secs_f64(),
            uc.as_secs_f64(),
            args.threads,
            sw.as_secs_f64(),
            sc.as_secs_f64(),
            sw.as_secs_f64() / uw.as_secs_f64().max(1e-9),
            sc.as_secs_f64() / uc.as_secs_f64().max(1e-9),
        );
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let cmd = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sum: {e}\n{USAGE}\n(sum --help for more)");
            return ExitCode::from(2);
        }
    };
    let r = match cmd {
        Command::Help => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Command::Make { dir, files, size } => make(&dir, files, size).map(|()| {
            println!("made {files} files of {size} bytes under {}", dir.display());
            true
        }),
        Command::Sum(args) => run(&args),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(msg) => {
            eprintln!("sum: {msg}");
            ExitCode::FAILURE
        }
    }
}
