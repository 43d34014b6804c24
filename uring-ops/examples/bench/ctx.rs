//! The `ctx` layer: typed ops through a shared `uring_ops::Context`.
//!
//! With one thread, that thread pushes a round of ops in one batch (`push_tagged`, the slot as
//! tag), learns what finished from the completion records, and redeems each output from its
//! record: the same loop as the other layers ([`crate::run::drive`]). With `--threads N`, N pushing threads keep `depth` ops each in
//! flight on one context, and `--reapers M` threads take the completions and hand each slot
//! back to its pusher.

use crate::file::BLOCK;
use crate::layers::{builder, Work};
use crate::run::{bad_result, thread_cpu, Done, Driver, Mode, Offsets, Plan};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Barrier, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};
use uring_core::MAX_CQ_ENTRIES;
use uring_ops::{Context, ContextBuilder};

/// A context for `pushers` threads of `depth` ops each: an SQ of `depth` entries (a push
/// hands its SQE to the kernel at once) and room in the CQ for every op in flight.
pub fn context(depth: u32, pushers: u32, sqpoll: bool) -> Result<Context, String> {
    let cq = (u64::from(depth) * u64::from(pushers) * 2)
        .next_power_of_two()
        .clamp(u64::from(depth) * 2, u64::from(MAX_CQ_ENTRIES)) as u32;
    ContextBuilder::with_builder(builder(depth, sqpoll).cq_entries(cq))
        .build()
        .map_err(|e| format!("context setup: {e}"))
}

/// One thread on a context: [`crate::run::drive`]'s side for the `ctx` layer. Each round's
/// pushes go in one [`uring_ops::Batch`] (one system call), and the outputs are redeemed from
/// the completion records under one lock ([`uring_ops::Completions::redeem`]).
pub struct Ctx1<W: Work> {
    ctx: Context,
    work: W,
}

impl<W: Work> Ctx1<W> {
    pub fn new(ctx: Context, work: W) -> Self {
        Ctx1 { ctx, work }
    }
}

impl<W: Work> Driver for Ctx1<W> {
    #[inline]
    fn queue(&mut self, n: u32, mut next: impl FnMut() -> (u32, u64)) -> Result<(), String> {
        let mut batch = self.ctx.batch().map_err(|e| format!("batch: {e}"))?;
        for _ in 0..n {
            let (slot, offset) = next();
            // The completion record redeems the output: the ticket is not needed.
            let _ticket = batch
                .push_tagged(self.work.op(slot, offset), u64::from(slot))
                .map_err(|e| format!("push: {}", e.error))?;
        }
        batch.submit().map_err(|e| format!("submit: {e}"))?;
        Ok(())
    }

    #[inline]
    fn submit(&mut self, want: u32) -> Result<(), String> {
        if want > 0 {
            // Until at least one record is queued; they stay queued for `complete`.
            drop(
                self.ctx
                    .wait_for_completions(Duration::MAX)
                    .map_err(|e| format!("wait_for_completions: {e}"))?,
            );
        }
        Ok(())
    }

    #[inline]
    fn complete(&mut self, mut done: impl FnMut(u32, i32)) -> Result<u32, String> {
        let mut n = 0;
        let mut records = self.ctx.completions();
        while let Some(c) = records.next() {
            let out = records
                .redeem::<W::Op>(&c)
                .map_err(|e| format!("redeeming a completion: {e}"))?;
            let slot = c.tag() as u32;
            done(slot, self.work.finish(slot, out));
            n += 1;
        }
        Ok(n)
    }
}

/// A slot of the threaded `ctx` run: its work (of one slot: its buffer while free).
struct Slot<W: Work> {
    work: W,
}

/// What the pushers and reapers of a threaded `ctx` run share.
pub struct Threaded<W: Work> {
    ctx: Context,
    plan: Plan,
    pushers: u32,
    /// Slot `pusher * depth + i`; its tag is its index.
    slots: Vec<Mutex<Slot<W>>>,
    /// Freed slots, back to their pusher.
    /// Freed slots, back to their pusher: handed over a reaper's round at a time, with one
    /// wake-up per pusher per round.
    returned: Vec<Returned>,
    pushed: AtomicU64,
    completed: AtomicU64,
    pushers_left: AtomicU32,
    finished: AtomicBool,
    error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: Work> Threaded<W> {
    /// `plan.threads` pushers with `plan.depth` slots each, whose work is `works` (of one
    /// slot each: `depth` per pusher, in order).
    pub fn new(ctx: Context, plan: Plan, works: Vec<W>) -> Self {
        let pushers = plan.threads;
        Threaded {
            ctx,
            pushers,
            slots: works
                .into_iter()
                .map(|work| Mutex::new(Slot { work }))
                .collect(),
            returned: (0..pushers).map(|_| Returned::default()).collect(),
            pushed: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            pushers_left: AtomicU32::new(pushers),
            finished: AtomicBool::new(false),
            error: Mutex::new(None),
            plan,
        }
    }

    /// Thread `i`: a pusher below `pushers`, a reaper from there on.
    pub fn thread(&self, i: u32, start: &Barrier, progress: &AtomicU64) -> Result<Done, String> {
        let r = if i < self.pushers {
            self.pusher(i, start)
        } else {
            self.reaper(start, progress)
        };
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        match lock(&self.error).clone() {
            Some(e) => Err(e),
            None => r,
        }
    }

    /// Ends the run: every reaper returns from its wait and stops.
    fn finish(&self) {
        // SeqCst, as every flag and count here: a reaper that sees `finished` stops.
        if !self.finished.swap(true, Ordering::SeqCst) {
            for _ in 0..self.plan.reapers {
                let _ = self.ctx.wake();
            }
        }
    }

    fn fail(&self, e: String) {
        lock(&self.error).get_or_insert(e);
        self.finish();
    }

    /// Whether every op pushed has been taken, with every pusher done.
    fn all_done(&self) -> bool {
        self.pushers_left.load(Ordering::SeqCst) == 0
            && self.completed.load(Ordering::SeqCst) == self.pushed.load(Ordering::SeqCst)
    }

    fn pusher(&self, i: u32, start: &Barrier) -> Result<Done, String> {
        let p = &self.plan;
        let returned = &self.returned[i as usize];
        start.wait();
        let cpu = thread_cpu();
        let t0 = Instant::now();
        let r = (|| {
            let quota = match p.length {
                crate::run::Length::Ops(n) => crate::run::share(n, i, self.pushers),
                crate::run::Length::Secs(_) => u64::MAX,
            };
            let deadline = match p.length {
                crate::run::Length::Secs(s) => Some(t0 + Duration::from_secs_f64(s)),
                crate::run::Length::Ops(_) => None,
            };
            let mut offsets = Offsets::new(u64::from(i) + 1, p.blocks.max(1));
            let mut free: Vec<u32> = (0..p.depth).rev().collect();
            let mut pushed = 0u64;
            while pushed < quota
                && !self.finished.load(Ordering::SeqCst)
                && match deadline {
                    Some(d) => Instant::now() < d,
                    None => true,
                }
            {
                let wait = free.is_empty();
                if !returned.take_into(&mut free, wait) {
                    continue;
                }
                let k = (free.len() as u64)
                    .min(u64::from(p.batch))
                    .min(quota - pushed);
                // One batch: one system call for its `k` ops.
                let mut batch = self.ctx.batch().map_err(|e| format!("batch: {e}"))?;
                for _ in 0..k {
                    let slot = free.pop().expect("counted");
                    let g = (i * p.depth + slot) as usize;
                    let offset = if p.mode == Mode::Read {
                        offsets.next()
                    } else {
                        0
                    };
                    // The slot's lock is not held across the push: a reaper holding the
                    // context's records takes slot locks.
                    let op = lock(&self.slots[g]).work.op(0, offset);
                    self.pushed.fetch_add(1, Ordering::SeqCst);
                    // The completion record redeems the output: the ticket is not needed.
                    let _ticket = batch
                        .push_tagged(op, g as u64)
                        .map_err(|e| format!("push: {}", e.error))?;
                }
                batch.submit().map_err(|e| format!("submit: {e}"))?;
                drop(batch);
                pushed += k;
            }
            Ok(())
        })();
        self.pushers_left.fetch_sub(1, Ordering::SeqCst);
        if self.all_done() {
            self.finish();
        }
        r.map(|()| Done {
            ops: 0,
            start: t0,
            end: t0,
            enters: None,
            cpu: thread_cpu().saturating_sub(cpu),
        })
    }

    fn reaper(&self, start: &Barrier, progress: &AtomicU64) -> Result<Done, String> {
        let expect = match self.plan.mode {
            Mode::Nop => 0,
            Mode::Read => BLOCK as i32,
        };
        start.wait();
        let cpu = thread_cpu();
        let t0 = Instant::now();
        let mut end = t0;
        let mut n = 0u64;
        let mut outs: Vec<(usize, <W::Op as uring_ops::Op>::Output)> = Vec::new();
        let mut back: Vec<Vec<u32>> = (0..self.pushers).map(|_| Vec::new()).collect();
        while !self.finished.load(Ordering::SeqCst) {
            {
                // Many records redeemed under one lock; the slots' locks after it.
                let mut records = self
                    .ctx
                    .wait_for_completions(Duration::from_millis(100))
                    .map_err(|e| format!("wait_for_completions: {e}"))?;
                while let Some(c) = records.next() {
                    let out = records
                        .redeem::<W::Op>(&c)
                        .map_err(|e| format!("redeeming a completion: {e}"))?;
                    outs.push((c.tag() as usize, out));
                }
            }
            let got = outs.len() as u64;
            for (g, out) in outs.drain(..) {
                let res = lock(&self.slots[g]).work.finish(0, out);
                if res != expect {
                    return Err(bad_result(self.plan.mode, res, expect));
                }
                let depth = self.plan.depth as usize;
                back[g / depth].push((g % depth) as u32);
            }
            for (r, slots) in self.returned.iter().zip(&mut back) {
                r.give(slots);
            }
            if got > 0 {
                n += got;
                end = Instant::now();
                self.completed.fetch_add(got, Ordering::SeqCst);
                // Relaxed: a progress figure.
                progress.store(n, Ordering::Relaxed);
            }
            if self.all_done() {
                self.finish();
            }
        }
        Ok(Done {
            ops: n,
            start: t0,
            end,
            enters: None,
            cpu: thread_cpu().saturating_sub(cpu),
        })
    }
}

/// A pusher's freed slots, handed back by the reapers.
#[derive(Default)]
struct Returned {
    slots: Mutex<Vec<u32>>,
    ready: Condvar,
}

impl Returned {
    /// Hands `slots` over (emptying it), waking the pusher if it waits.
    fn give(&self, slots: &mut Vec<u32>) {
        if slots.is_empty() {
            return;
        }
        let mut g = lock(&self.slots);
        let was_empty = g.is_empty();
        g.append(slots);
        drop(g);
        if was_empty {
            self.ready.notify_one();
        }
    }

    /// Moves the returned slots into `free`; if `wait`, waits (at most 50 ms, so the pusher
    /// rechecks its deadline) for at least one. Returns whether `free` has any.
    fn take_into(&self, free: &mut Vec<u32>, wait: bool) -> bool {
        let mut g = lock(&self.slots);
        // With more threads than cores, yielding a few times first lets a reaper run and
        // hand slots back without a sleep and a wake-up.
        let mut spins = 0;
        while wait && g.is_empty() && spins < 8 {
            drop(g);
            std::thread::yield_now();
            spins += 1;
            g = lock(&self.slots);
        }
        if wait && g.is_empty() {
            g = self
                .ready
                .wait_timeout(g, Duration::from_millis(50))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        free.append(&mut g);
        !free.is_empty()
    }
}
