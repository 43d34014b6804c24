//! Futures dropped at random points (`select!` between a read of a pipe or a socket and a
//! timeout, writers racing both), on tokio: every op is counted exactly once, every message
//! written is found exactly once (read by a future that won, left in the pipe, or read by an
//! op whose future was dropped), and no buffer is touched after its drop.
#![cfg(feature = "tokio")]

mod async_common;
mod common;

use async_common::{settle, sleep, AnyRing};
use common::pipe;
use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uring_ops::awaitable::Tokio;
use uring_ops::ops::{Read, Timeout};
use uring_ops::{Fd, IoBuf, IoBufMut, LocalRing, SharedRing};

const SLOT: usize = 64;
const POISON: u8 = 0xA5;

/// Memory that outlives every ring (leaked), carved into buffers of `SLOT` bytes.
#[derive(Debug)]
struct Arena {
    base: *mut u8,
    slots: usize,
    /// How many times each slot's buffer was dropped (exactly once, in the end).
    drops: Vec<AtomicU32>,
    /// Buffers dropped holding their message, which the test never saw: read by an op whose
    /// future was dropped.
    consumed_unseen: AtomicUsize,
}

// SAFETY: the arena's memory is only reached through the one `Tracked` buffer per slot (and,
// after every buffer is gone, by the final check).
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

impl Arena {
    fn new(slots: usize) -> Arc<Self> {
        let mem: &'static mut [u8] = Box::leak(vec![0u8; slots * SLOT].into_boxed_slice());
        Arc::new(Arena {
            base: mem.as_mut_ptr(),
            slots,
            drops: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            consumed_unseen: AtomicUsize::new(0),
        })
    }

    fn slot(&self, i: usize) -> *mut u8 {
        assert!(i < self.slots);
        // SAFETY: in bounds of the leaked block.
        unsafe { self.base.add(i * SLOT) }
    }

    /// After every buffer is gone: each dropped once, each still poisoned (nothing wrote into
    /// it after its drop).
    fn check(&self, used: usize, seed: u64) {
        for i in 0..used {
            assert_eq!(
                self.drops[i].load(Ordering::Acquire),
                1,
                "slot {i} (seed {seed:#x})"
            );
            // SAFETY: in bounds; no buffer of this slot is alive (each was dropped).
            let mem = unsafe { std::slice::from_raw_parts(self.slot(i), SLOT) };
            assert!(
                mem.iter().all(|&b| b == POISON),
                "slot {i} was written after its buffer was dropped (seed {seed:#x}): {mem:?}"
            );
        }
    }
}

/// A buffer of one arena slot, expecting message `msg`.
#[derive(Debug)]
struct Tracked {
    arena: Arc<Arena>,
    slot: usize,
    msg: [u8; 8],
    init: usize,
    /// The test got it back from a read that won: its message was seen.
    seen: bool,
}

// SAFETY: the slot's memory is in the leaked arena: valid, never moved, never freed; this
// buffer is the only one of its slot.
unsafe impl IoBuf for Tracked {
    fn stable_ptr(&self) -> *const u8 {
        self.arena.slot(self.slot)
    }
    fn bytes_init(&self) -> usize {
        self.init
    }
    fn bytes_total(&self) -> usize {
        SLOT
    }
}

// SAFETY: as above, valid for writes of `SLOT` bytes.
unsafe impl IoBufMut for Tracked {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.arena.slot(self.slot)
    }
    unsafe fn set_init(&mut self, n: usize) {
        self.init = self.init.max(n);
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let p = self.arena.slot(self.slot);
        // SAFETY: the slot's memory; the kernel is done with it (the property under test).
        let head = unsafe { std::slice::from_raw_parts(p, 8) };
        if !self.seen && head == self.msg {
            self.arena.consumed_unseen.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { std::ptr::write_bytes(p, POISON, SLOT) };
        self.arena.drops[self.slot].fetch_add(1, Ordering::AcqRel);
    }
}

/// xorshift64*: random points, repeatable from the seed printed on failure.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    let s = std::env::var("URING_ASYNC_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("async_drop seed: {s:#x} (set URING_ASYNC_SEED to repeat)");
    s | 1
}

/// Bytes waiting to be read in a pipe or socket.
fn queued(fd: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to `n`, which lives for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}

/// A pipe or a connected stream socket: (read end for ops, a second handle to it, write end).
fn channel(socket: bool) -> (Fd, OwnedFd, std::fs::File) {
    if socket {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peek = OwnedFd::from(a.try_clone().unwrap());
        (Fd::new(a), peek, std::fs::File::from(OwnedFd::from(b)))
    } else {
        let (rx, tx) = pipe();
        let peek = rx.as_fd_owned();
        (rx, peek, std::fs::File::from(tx))
    }
}

trait DupFd {
    fn as_fd_owned(&self) -> OwnedFd;
}
impl DupFd for Fd {
    fn as_fd_owned(&self) -> OwnedFd {
        use std::os::fd::AsFd;
        self.as_fd().try_clone_to_owned().unwrap()
    }
}

#[derive(Default)]
struct Tally {
    written: usize,
    won: usize,
    left: usize,
}

/// One round: a read of a fresh pipe or socket raced by a timeout, the message written
/// before, during or after the race. Returns whether the read won, and a handle to the
/// channel, to see at the end (once everything dropped futures left has run out) whether the
/// message is still queued.
async fn round<G: AnyRing>(
    ring: &G,
    arena: &Arc<Arena>,
    slot: usize,
    r: &mut Rng,
) -> (bool, OwnedFd) {
    let socket = r.below(2) == 0;
    let (rx, peek, mut tx) = channel(socket);
    let msg = (slot as u64 + 1).to_le_bytes();
    let buf = Tracked {
        arena: Arc::clone(arena),
        slot,
        msg,
        init: 0,
        seen: false,
    };
    let timeout = Duration::from_micros(r.below(300));
    let when = r.below(3);
    let mut won_it = false;
    if when == 0 {
        tx.write_all(&msg).unwrap();
    }
    let race = async {
        tokio::select! {
            out = ring.run(Read::new(&rx, buf, 0)) => Some(out.expect("a read is pushed")),
            _ = ring.run(Timeout::new(timeout)) => None,
        }
    };
    let writer = async {
        if when == 1 {
            sleep(ring, Duration::from_micros(r.below(300))).await;
            tx.write_all(&msg).unwrap();
        }
    };
    let (won, ()) = tokio::join!(race, writer);
    if let Some((n, mut buf)) = won {
        let n = n.expect("the read succeeds");
        assert_eq!(n, 8, "a read that won got the message whole");
        assert_eq!(buf.msg, msg);
        // SAFETY: the op is over: the buffer is ours.
        let got = unsafe { std::slice::from_raw_parts(buf.stable_ptr(), 8) };
        assert_eq!(got, msg);
        buf.seen = true;
        won_it = true;
    }
    if when == 2 {
        tx.write_all(&msg).unwrap();
    }
    (won_it, peek)
}

/// The rounds' outcome, once nothing is in flight: each message is either still queued, or was
/// read by the op of a dropped future (its buffer counted it at its drop), or by a read that
/// won.
async fn tally<G: AnyRing>(ring: &G, outcomes: Vec<(bool, OwnedFd)>) -> Tally {
    settle(ring, Duration::from_secs(10)).await;
    let mut t = Tally::default();
    for (won, peek) in outcomes {
        t.written += 1;
        t.won += usize::from(won);
        match queued(&peek) {
            0 => {}
            8 => t.left += 1,
            n => panic!("{n} bytes queued: a message was split"),
        }
    }
    eprintln!(
        "{} messages: {} read by a future that won, {} left queued, the rest read by dropped ops",
        t.written, t.won, t.left
    );
    t
}

async fn stress<G: AnyRing>(ring: &G, arena: &Arc<Arena>, rounds: usize, seed: u64) {
    let mut r = Rng(seed);
    let mut outcomes = Vec::new();
    for slot in 0..rounds {
        outcomes.push(round(ring, arena, slot, &mut r).await);
    }
    let total = tally(ring, outcomes).await;
    let unseen = arena.consumed_unseen.load(Ordering::Relaxed);
    assert_eq!(
        total.won + total.left + unseen,
        total.written,
        "every message exactly once: won {}, left {}, read by dropped ops {unseen} (seed {seed:#x})",
        total.won,
        total.left
    );
    assert!(total.won > 0, "no read ever won (seed {seed:#x})");
}

// (Each round keeps one descriptor open until the end: 4 × 150 stays under the usual limit
// of 1024.)
const ROUNDS: usize = 150;

#[test]
fn dropped_futures_on_a_local_ring() {
    let seed = seed();
    let arena = Arena::new(ROUNDS + 8);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, async {
        let ring = LocalRing::new(64).unwrap();
        let driver = tokio::task::spawn_local(ring.driver::<Tokio>().unwrap());
        stress(&ring, &arena, ROUNDS, seed).await;
        // Forgotten futures, in flight on pipes nobody writes: the ring's drop cancels them
        // and frees their buffers.
        let pipes: Vec<_> = (0..8).map(|_| pipe()).collect();
        for (i, (rx, _)) in pipes.iter().enumerate() {
            let buf = Tracked {
                arena: Arc::clone(&arena),
                slot: ROUNDS + i,
                msg: [0xff; 8],
                init: 0,
                seen: false,
            };
            let mut fut = Box::pin(ring.run(Read::new(rx, buf, 0)));
            std::future::poll_fn(|cx| {
                assert!(fut.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
            std::mem::forget(fut);
        }
        sleep(&ring, Duration::from_millis(1)).await;
        assert!(ring.in_flight() >= 8, "the forgotten reads are in flight");
        drop(ring);
        let start = Instant::now();
        driver.await.unwrap().expect("the driver ends cleanly");
        assert!(start.elapsed() < uring_ops::DROP_DRAIN_TIMEOUT);
    });
    arena.check(ROUNDS + 8, seed);
}

use std::future::Future as _;

#[test]
fn dropped_futures_on_a_shared_ring() {
    let seed = seed();
    let arena = Arena::new(4 * ROUNDS);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ring = SharedRing::new(64).unwrap();
        let driver = tokio::spawn(ring.driver::<Tokio>().unwrap());
        // Four tasks on the workers, each with its own slots and seed.
        let tasks: Vec<_> = (0..4u64)
            .map(|k| {
                let (ring, arena) = (ring.clone(), Arc::clone(&arena));
                tokio::spawn(async move {
                    let mut r = Rng(seed ^ (k + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
                    let mut outcomes = Vec::new();
                    for i in 0..ROUNDS {
                        let slot = k as usize * ROUNDS + i;
                        outcomes.push(round(&ring, &arena, slot, &mut r).await);
                    }
                    outcomes
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.extend(t.await.unwrap());
        }
        let total = tally(&ring, outcomes).await;
        assert!(total.won > 0, "no read ever won (seed {seed:#x})");
        let unseen = arena.consumed_unseen.load(Ordering::Relaxed);
        assert_eq!(
            total.won + total.left + unseen,
            total.written,
            "every message exactly once (seed {seed:#x})"
        );
        drop(ring);
        driver.await.unwrap().expect("the driver ends cleanly");
    });
    arena.check(4 * ROUNDS, seed);
}
