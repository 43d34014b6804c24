//! The one loop every layer runs, and running it: threads, progress, the `RESULT` line.

use crate::file::BLOCK;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

/// What the loop does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// NOP round trips.
    Nop,
    /// Random 4 KiB reads.
    Read,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Mode::Nop => "nop",
            Mode::Read => "read",
        })
    }
}

/// Which library runs the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Raw SQEs through `uring-core`.
    Core,
    /// Typed ops through `uring_ops::Uring`.
    Ops,
    /// Typed ops through a shared `uring_ops::Context`.
    Ctx,
    /// The `io-uring` crate.
    IoUring,
}

impl Layer {
    pub const ALL: [Layer; 4] = [Layer::Core, Layer::Ops, Layer::Ctx, Layer::IoUring];
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Layer::Core => "core",
            Layer::Ops => "ops",
            Layer::Ctx => "ctx",
            Layer::IoUring => "io-uring",
        })
    }
}

/// How long a run lasts.
#[derive(Clone, Copy, Debug)]
pub enum Length {
    Secs(f64),
    /// Exactly this many ops in all (split between the threads).
    Ops(u64),
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct Plan {
    pub mode: Mode,
    pub layer: Layer,
    pub depth: u32,
    pub batch: u32,
    pub length: Length,
    pub threads: u32,
    /// Reaping threads of the `ctx` layer with more than one thread.
    pub reapers: u32,
    pub sqpoll: bool,
    pub fixed: bool,
    /// Whole blocks of the file (read mode).
    pub blocks: u64,
}

/// A layer's side of the loop: how it queues ops, enters the kernel and reports completions.
/// Every layer implements the same three steps over the same buffers (one per slot).
pub trait Driver {
    /// Queues `n` ops, each for the `(slot, offset)` that `next` gives (the slot names the
    /// buffer; the offset is unused by NOPs). Does not enter the kernel, except on a layer
    /// that cannot queue (`ctx`).
    fn queue(&mut self, n: u32, next: impl FnMut() -> (u32, u64)) -> Result<(), String>;
    /// Hands what is queued to the kernel, and waits until at least `want` ops have completed
    /// (with SQPOLL: busy-polls for them, entering the kernel only to wake the poller).
    fn submit(&mut self, want: u32) -> Result<(), String>;
    /// Calls `done(slot, result)` for every completed op, in any order; returns how many.
    fn complete(&mut self, done: impl FnMut(u32, i32)) -> Result<u32, String>;
    /// `io_uring_enter` calls so far, where the layer counts them.
    fn enters(&self) -> Option<u64> {
        None
    }
}

/// The state of the random offsets (xorshift64*), seeded per thread.
pub struct Offsets {
    x: u64,
    blocks: u64,
}

impl Offsets {
    pub fn new(seed: u64, blocks: u64) -> Self {
        Offsets {
            x: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            blocks,
        }
    }

    /// A random block's offset.
    #[inline]
    pub fn next(&mut self) -> u64 {
        self.x ^= self.x >> 12;
        self.x ^= self.x << 25;
        self.x ^= self.x >> 27;
        let r = self.x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // A block in 0..blocks without a division.
        let block = ((u128::from(r) * u128::from(self.blocks)) >> 64) as u64;
        block * BLOCK as u64
    }
}

/// What a worker reports.
pub struct Done {
    pub ops: u64,
    pub start: Instant,
    pub end: Instant,
    pub enters: Option<u64>,
    /// CPU time (user and system) the thread spent in the run.
    pub cpu: Duration,
}

/// CPU time (user and system) of the calling thread so far.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec into the one it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The loop: keeps up to `depth` ops in flight on `d`, queueing at most `batch` at a time and,
/// once `depth` are in flight, waiting for `batch` (fio's t/io_uring, with its submit and
/// complete batches both set to `batch`). Checks every result: 0 for a NOP, 4096 for a read.
/// `ops` is this thread's share of an `--ops` run; `secs` of a timed one.
pub fn drive<D: Driver>(
    d: &mut D,
    p: &Plan,
    ops: Option<u64>,
    seed: u64,
    progress: &AtomicU64,
) -> Result<Done, String> {
    let expect = match p.mode {
        Mode::Nop => 0,
        Mode::Read => BLOCK as i32,
    };
    let read = p.mode == Mode::Read;
    let mut offsets = Offsets::new(seed, p.blocks.max(1));
    let mut free: Vec<u32> = (0..p.depth).rev().collect();
    let (mut in_flight, mut queued, mut done) = (0u32, 0u64, 0u64);
    let limit = ops.unwrap_or(u64::MAX);
    let cpu = thread_cpu();
    let start = Instant::now();
    let deadline = match p.length {
        Length::Secs(s) => Some(start + Duration::from_secs_f64(s)),
        Length::Ops(_) => None,
    };
    let mut bad = None;
    let mut stopping = false;
    loop {
        if let Some(deadline) = deadline {
            stopping = stopping || Instant::now() >= deadline;
        }
        let k = if stopping {
            0
        } else {
            (free.len() as u64)
                .min(u64::from(p.batch))
                .min(limit - queued) as u32
        };
        if k > 0 {
            d.queue(k, || {
                let slot = free.pop().expect("a free slot for each op queued");
                (slot, if read { offsets.next() } else { 0 })
            })?;
            in_flight += k;
            queued += u64::from(k);
        }
        if in_flight == 0 {
            if stopping || queued == limit {
                break;
            }
            continue;
        }
        let want = if in_flight == p.depth || k == 0 {
            p.batch.min(in_flight)
        } else {
            0
        };
        d.submit(want)?;
        let n = d.complete(|slot, res| {
            if res != expect {
                bad = Some(res);
            }
            free.push(slot);
        })?;
        in_flight -= n;
        done += u64::from(n);
        if let Some(res) = bad {
            return Err(bad_result(p.mode, res, expect));
        }
        // Relaxed: a progress figure, read by the main thread once a second.
        progress.store(done, Ordering::Relaxed);
    }
    Ok(Done {
        ops: done,
        start,
        end: Instant::now(),
        enters: d.enters(),
        cpu: thread_cpu().saturating_sub(cpu),
    })
}

/// The error for an op whose result is not the one expected.
#[cold]
pub fn bad_result(mode: Mode, res: i32, expect: i32) -> String {
    let what = if res < 0 {
        format!("{} ({})", res, std::io::Error::from_raw_os_error(-res))
    } else {
        res.to_string()
    };
    format!("a {mode} op returned {what}, expected {expect}")
}

/// Converts an op's `io::Result` count into a CQE-style result.
pub fn raw_result(r: std::io::Result<impl TryInto<i32>>) -> i32 {
    match r {
        Ok(n) => n.try_into().unwrap_or(i32::MAX),
        Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
    }
}

/// The share of `total` ops of thread `i` of `n`.
pub fn share(total: u64, i: u32, n: u32) -> u64 {
    total / u64::from(n) + u64::from(u64::from(i) < total % u64::from(n))
}

/// One run's outcome.
pub struct Outcome {
    pub ops: u64,
    pub secs: f64,
    pub enters: Option<u64>,
    /// CPU time of the run's threads (not of an SQPOLL poller, a kernel thread).
    pub cpu: Duration,
}

impl Outcome {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    /// CPU time per op, in ns: on a shared machine, steadier than `ops_per_sec`, which also
    /// counts the time other processes hold the CPU.
    pub fn cpu_ns_per_op(&self) -> f64 {
        self.cpu.as_nanos() as f64 / self.ops.max(1) as f64
    }
}

/// Runs `work` on `threads` threads (each sets up, then all start together), printing a
/// progress line every second when `progress` is on, and sums what they report.
/// `work(i, start, counter)` sets up thread `i`, waits at `start`, runs, and reports.
pub fn on_threads<F>(threads: u32, label: &str, progress: bool, work: F) -> Result<Outcome, String>
where
    F: Fn(u32, &Barrier, &AtomicU64) -> Result<Done, String> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let start = Arc::new(Barrier::new(threads as usize + 1));
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for i in 0..threads {
        let (work, start, counters, tx) = (
            Arc::clone(&work),
            Arc::clone(&start),
            Arc::clone(&counters),
            tx.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let r = work(i, &start, &counters[i as usize]);
            let _ = tx.send(r);
        }));
    }
    drop(tx);
    start.wait();
    let t0 = Instant::now();
    let mut results = Vec::new();
    let mut tick = t0 + Duration::from_secs(1);
    while results.len() < threads as usize {
        let got = if progress {
            match rx.recv_timeout(tick.saturating_duration_since(Instant::now())) {
                Ok(r) => Some(r),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Relaxed: progress figures only.
                    let n: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
                    let s = t0.elapsed().as_secs_f64();
                    println!("  {label}: {s:.0} s, {} ops/s", group(n as f64 / s));
                    tick += Duration::from_secs(1);
                    None
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            rx.recv().ok()
        };
        results.extend(got);
    }
    for h in handles {
        if h.join().is_err() {
            return Err(format!("{label}: a benchmark thread panicked"));
        }
    }
    let mut ops = 0;
    let mut cpu = Duration::ZERO;
    let mut enters = Some(0);
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for r in results {
        let d = r?;
        ops += d.ops;
        cpu += d.cpu;
        enters = enters.zip(d.enters).map(|(a, b)| a + b);
        first = Some(first.map_or(d.start, |f| f.min(d.start)));
        last = Some(last.map_or(d.end, |l| l.max(d.end)));
    }
    let secs = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64().max(1e-9),
        _ => return Err(format!("{label}: no thread reported")),
    };
    Ok(Outcome {
        ops,
        secs,
        enters,
        cpu,
    })
}

/// `n` with thousands separated by commas.
pub fn group(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The line scripts read, in exactly this form.
pub fn result_line(p: &Plan, o: &Outcome) -> String {
    format!(
        "RESULT mode={} layer={} depth={} batch={} threads={} secs={:.2} ops={} ops_per_sec={:.0}",
        p.mode,
        p.layer,
        p.depth,
        p.batch,
        p.threads,
        o.secs,
        o.ops,
        o.ops_per_sec()
    )
}
