//! A simulated kernel: ring memory on the heap, serviced in-process.
//!
//! It lets Miri and loom check the ring logic (the pointer arithmetic, the unsafe slot accesses
//! and the orderings), which no real system call allows. It behaves like the kernel's side of
//! the protocol: it reads the SQ tail with `Acquire`, consumes SQEs in order and releases the SQ
//! head, posts CQEs and releases the CQ tail, reads the CQ head with `Acquire` before reusing a
//! slot, and on a full CQ either keeps a backlog and raises `IORING_SQ_CQ_OVERFLOW` (the
//! `IORING_FEAT_NODROP` behaviour) or drops the completion and counts it in `overflow`.
//!
//! Supported opcodes: `IORING_OP_NOP` (result 0, or `len` with `IORING_NOP_INJECT_RESULT`, as
//! on the real kernel). Anything else completes with `-EINVAL`. `IOSQE_IO_LINK` chains are
//! honoured: after a failed link the rest of the chain completes with `-ECANCELED`;
//! `IOSQE_CQE_SKIP_SUCCESS` suppresses successful completions.
//!
//! Work is consumed when the ring enters the "kernel" ([`crate::Backend::enter`]) or, in
//! [`crate::sim::SimConfig::manual`] mode, when another thread calls
//! [`crate::sim::Sim::service`] (get that thread a handle with [`crate::Ring::sim_handle`]). In manual mode a wait does not fail: it yields
//! until the kernel thread has posted enough, as a real wait blocks.
//!
//! # Memory
//!
//! Normally one heap block is laid out exactly as `io_uring_setup` lays out a single-mmap ring,
//! and the ring reaches it through the same offsets as the kernel's mapping. Under `cfg(loom)`
//! that cannot work (loom's atomics are not plain words in memory), so each shared word is a
//! separate loom `AtomicU32` and each SQE/CQE slot a `loom::cell::UnsafeCell`; the ring reaches
//! them through the same accessors in the one module that does ring pointer arithmetic. 128-byte
//! SQEs and 32-byte CQEs are not simulated under loom.
//!
//! The simulated kernel's own bookkeeping (fault injection, statistics, the manual switch) uses
//! `std` atomics even under loom: it is test scaffolding, and loom atomics there would add
//! happens-before edges that could hide a missing `Release`/`Acquire` on the ring words.

use crate::backend::{Backend, Sealed};
use crate::error::Result;
use crate::raw::{RawCq, RawSq};
use crate::setup::{Builder, SetupFlags};
use crate::sync::{yield_now, Mutex, Ordering};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32 as StdAtomicU32, AtomicU64 as StdAtomicU64};
use std::time::Duration;
use uring_sys as sys;

/// How the simulated kernel behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// Keep a backlog of completions that do not fit the CQ (like `IORING_FEAT_NODROP`), or
    /// drop them and count them in `overflow` (like kernels before 5.5).
    pub nodrop: bool,
    /// Consume at most this many SQEs per entry (to test partial submission).
    pub max_consume: Option<u32>,
    /// Do not consume on entry; only [`Sim::service`] consumes (for a "kernel" thread). A wait
    /// then yields to that thread until enough completions are ready, instead of failing.
    pub manual: bool,
    /// Where the free-running head/tail counters start (to test `u32` wrap-around). Only read
    /// when the ring is built ([`Builder::build_sim_with`]).
    pub start_index: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodrop: true,
            max_consume: None,
            manual: false,
            start_index: 0,
        }
    }
}

/// What only the simulated kernel touches, under its lock.
#[derive(Debug, Default)]
struct State {
    config: SimConfig,
    /// Completions waiting for CQ space (nodrop mode), oldest first: (user data, res, flags).
    backlog: VecDeque<(u64, i32, u32)>,
    /// A failed link: SQEs up to the end of its chain are cancelled.
    cancel_chain: bool,
}

/// Fault injection, statistics and the manual switch: `std` atomics even under loom (see the
/// module documentation). All accesses are `Relaxed`: no ring memory is published through them.
#[derive(Debug, Default)]
struct Control {
    /// Mirror of `SimConfig::manual`, read on every entry without taking the lock.
    manual: AtomicBool,
    /// The next this many entries fail with `EINTR` before doing anything.
    eintr: StdAtomicU32,
    /// The next this many entries fail with `EBUSY` before doing anything.
    ebusy: StdAtomicU32,
    /// Number of entries made.
    enters: StdAtomicU64,
}

/// Takes one from a non-zero counter; whether it was non-zero.
fn take_one(counter: &StdAtomicU32) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    // Relaxed: a test-scaffolding counter (see `Control`). (A compare-exchange loop, not
    // `fetch_update`: Rust 1.99 deprecates that for `try_update`, which the MSRV lacks.)
    let mut n = counter.load(Relaxed);
    while n > 0 {
        match counter.compare_exchange_weak(n, n - 1, Relaxed, Relaxed) {
            Ok(_) => return true,
            Err(now) => n = now,
        }
    }
    false
}

/// The simulated kernel and the heap memory of its ring. A [`crate::Backend`].
pub struct Sim {
    mem: SimMemory,
    /// The kernel's view of the SQ.
    sq: RawSq,
    /// The kernel's view of the CQ.
    cq: RawCq,
    params: sys::io_uring_params,
    state: Mutex<State>,
    ctl: Control,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("sq_entries", &self.params.sq_entries)
            .field("cq_entries", &self.params.cq_entries)
            .finish_non_exhaustive()
    }
}

impl Sealed for Sim {}

/// Heap memory laid out the way `io_uring_setup` lays out a single-mmap ring.
#[cfg(not(loom))]
struct SimMemory {
    ring: *mut u8,
    ring_layout: std::alloc::Layout,
    sqes: *mut sys::io_uring_sqe,
    sqes_layout: std::alloc::Layout,
}

/// Under loom: every shared word its own loom atomic, every slot a loom cell. Each pointer comes
/// from `Box::into_raw` and is freed once, on drop.
#[cfg(loom)]
struct SimMemory {
    words: *mut SimWords,
    /// Null with `IORING_SETUP_NO_SQARRAY`.
    array: *mut [u32],
    sqes: *mut [crate::raw::SqeSlot],
    cqes: *mut [crate::raw::CqeSlot],
}

/// The shared words of a ring, one loom atomic each.
#[cfg(loom)]
struct SimWords {
    sq_head: crate::sync::AtomicU32,
    sq_tail: crate::sync::AtomicU32,
    sq_flags: crate::sync::AtomicU32,
    sq_dropped: crate::sync::AtomicU32,
    cq_head: crate::sync::AtomicU32,
    cq_tail: crate::sync::AtomicU32,
    cq_flags: crate::sync::AtomicU32,
    cq_overflow: crate::sync::AtomicU32,
}

// SAFETY: the memory is only reached through `RawSq`/`RawCq`, whose shared words are atomics and
// whose slots are handed between the two sides by the head/tail protocol.
unsafe impl Send for SimMemory {}
// SAFETY: as above.
unsafe impl Sync for SimMemory {}

#[cfg(not(loom))]
impl Drop for SimMemory {
    fn drop(&mut self) {
        // SAFETY: both blocks were allocated in `SimMemory::new` with these layouts, freed once
        // here, after every view into them is gone (the views live in the `Sim` and in the ring
        // halves, which hold the `Sim` in an `Arc`).
        unsafe {
            std::alloc::dealloc(self.ring, self.ring_layout);
            std::alloc::dealloc(self.sqes.cast(), self.sqes_layout);
        }
    }
}

#[cfg(loom)]
impl Drop for SimMemory {
    fn drop(&mut self) {
        // SAFETY: each pointer came from `Box::into_raw` in `SimMemory::new` and is freed once
        // here, after every view into them is gone (as above).
        unsafe {
            drop(Box::from_raw(self.words));
            if !self.array.is_null() {
                drop(Box::from_raw(self.array));
            }
            drop(Box::from_raw(self.sqes));
            drop(Box::from_raw(self.cqes));
        }
    }
}

#[cfg(not(loom))]
fn align_up(x: u32, a: u32) -> u32 {
    (x + a - 1) & !(a - 1)
}

/// Ring sizes and shifts, as the kernel would choose them.
struct Geometry {
    sq_entries: u32,
    cq_entries: u32,
    /// Read by the kernel-layout allocation only (no SQE128/CQE32 under loom).
    #[cfg_attr(loom, allow(dead_code))]
    sqe_shift: u32,
    #[cfg_attr(loom, allow(dead_code))]
    cqe_shift: u32,
    /// Read by the loom allocation only (the kernel layout finds it in the params' flags).
    #[cfg_attr(not(loom), allow(dead_code))]
    no_sqarray: bool,
}

#[cfg(not(loom))]
impl SimMemory {
    /// Allocates zeroed memory laid out with kernel-style offsets, which it writes into `p`.
    fn new(g: &Geometry, p: &mut sys::io_uring_params, start_index: u32) -> SimMemory {
        p.sq_off = sys::io_sqring_offsets {
            head: 0,
            tail: 64,
            ring_mask: 128,
            ring_entries: 132,
            flags: 136,
            dropped: 140,
            array: 192,
            ..Default::default()
        };
        let cq_base = align_up(192 + 4 * g.sq_entries, 64);
        p.cq_off = sys::io_cqring_offsets {
            head: cq_base,
            tail: cq_base + 64,
            ring_mask: cq_base + 128,
            ring_entries: cq_base + 132,
            overflow: cq_base + 136,
            flags: cq_base + 140,
            cqes: cq_base + 192,
            ..Default::default()
        };
        let ring_len = (p.cq_off.cqes + (g.cq_entries << g.cqe_shift) * 16) as usize;
        let ring_layout = std::alloc::Layout::from_size_align(ring_len, 64).expect("ring layout");
        let sqes_layout =
            std::alloc::Layout::array::<sys::io_uring_sqe>((g.sq_entries << g.sqe_shift) as usize)
                .expect("sqe layout");
        // SAFETY: both layouts have non-zero size.
        let ring = unsafe { std::alloc::alloc_zeroed(ring_layout) };
        if ring.is_null() {
            std::alloc::handle_alloc_error(ring_layout);
        }
        // SAFETY: as above.
        let sqes = unsafe { std::alloc::alloc_zeroed(sqes_layout) }.cast::<sys::io_uring_sqe>();
        if sqes.is_null() {
            std::alloc::handle_alloc_error(sqes_layout);
        }
        let put = |off: u32, v: u32| {
            // SAFETY: every offset written is a 4-aligned word inside the `ring` block just
            // allocated; nothing else uses the block yet.
            unsafe { ring.add(off as usize).cast::<u32>().write(v) }
        };
        put(p.sq_off.ring_mask, g.sq_entries - 1);
        put(p.sq_off.ring_entries, g.sq_entries);
        put(p.cq_off.ring_mask, g.cq_entries - 1);
        put(p.cq_off.ring_entries, g.cq_entries);
        for off in [p.sq_off.head, p.sq_off.tail, p.cq_off.head, p.cq_off.tail] {
            put(off, start_index);
        }
        SimMemory {
            ring,
            ring_layout,
            sqes,
            sqes_layout,
        }
    }

    /// A view of the rings, for the kernel side or the ring side.
    fn views(&self, p: &sys::io_uring_params) -> (RawSq, RawCq) {
        let rm = crate::raw::RingMemory {
            sq_ring: self.ring,
            cq_ring: self.ring,
            sqes: self.sqes,
        };
        let no_sqarray = p.flags & sys::IORING_SETUP_NO_SQARRAY != 0;
        // SAFETY: `rm` describes the blocks of `self`, laid out as `p` says (written by `new`);
        // `self` lives in the `Sim` that the views' users keep alive.
        unsafe { (RawSq::new(&rm, p, no_sqarray), RawCq::new(&rm, p)) }
    }
}

#[cfg(loom)]
impl SimMemory {
    /// Allocates the loom words and cells. `p` keeps zero offsets: nothing is reached by offset.
    fn new(g: &Geometry, _p: &mut sys::io_uring_params, start_index: u32) -> SimMemory {
        use crate::raw::{CqeSlot, SqeSlot};
        use crate::sync::AtomicU32;
        let words = Box::into_raw(Box::new(SimWords {
            sq_head: AtomicU32::new(start_index),
            sq_tail: AtomicU32::new(start_index),
            sq_flags: AtomicU32::new(0),
            sq_dropped: AtomicU32::new(0),
            cq_head: AtomicU32::new(start_index),
            cq_tail: AtomicU32::new(start_index),
            cq_flags: AtomicU32::new(0),
            cq_overflow: AtomicU32::new(0),
        }));
        let array: *mut [u32] = if g.no_sqarray {
            std::ptr::slice_from_raw_parts_mut(std::ptr::null_mut(), 0)
        } else {
            Box::into_raw(vec![0u32; g.sq_entries as usize].into_boxed_slice())
        };
        let sqes: Box<[SqeSlot]> = (0..g.sq_entries)
            .map(|_| SqeSlot::new(crate::sqe::Sqe::zeroed().0))
            .collect();
        let cqes: Box<[CqeSlot]> = (0..g.cq_entries)
            .map(|_| CqeSlot::new(sys::io_uring_cqe::default()))
            .collect();
        SimMemory {
            words,
            array,
            sqes: Box::into_raw(sqes),
            cqes: Box::into_raw(cqes),
        }
    }

    /// A view of the rings, for the kernel side or the ring side.
    fn views(&self, p: &sys::io_uring_params) -> (RawSq, RawCq) {
        let w = self.words;
        // SAFETY: every pointer is into a live allocation of `self` (`words` from `Box`, the
        // slot and array slices of `sq_entries`/`cq_entries` elements, or a null array); `self`
        // lives in the `Sim` that the views' users keep alive.
        unsafe {
            let sq = RawSq::from_parts(
                std::ptr::addr_of!((*w).sq_head),
                std::ptr::addr_of!((*w).sq_tail),
                std::ptr::addr_of!((*w).sq_flags),
                std::ptr::addr_of!((*w).sq_dropped),
                self.array.cast::<u32>(),
                self.sqes.cast(),
                p.sq_entries,
            );
            let cq = RawCq::from_parts(
                std::ptr::addr_of!((*w).sq_flags),
                std::ptr::addr_of!((*w).cq_head),
                std::ptr::addr_of!((*w).cq_tail),
                std::ptr::addr_of!((*w).cq_flags),
                std::ptr::addr_of!((*w).cq_overflow),
                self.cqes.cast(),
                p.cq_entries,
            );
            (sq, cq)
        }
    }
}

impl Sim {
    /// Sizes the rings as the kernel would (powers of two, CQ twice the SQ unless CQSIZE), and
    /// allocates zeroed ring memory.
    ///
    /// # Errors
    ///
    /// Under loom, [`crate::Error::InvalidSetup`] for `SQE128`/`CQE32` (not simulated there).
    pub(crate) fn new(b: &Builder, config: SimConfig) -> Result<Sim> {
        let flags = b.setup_flags();
        #[cfg(loom)]
        if flags.intersects(SetupFlags::SQE128 | SetupFlags::CQE32) {
            return Err(crate::Error::InvalidSetup(
                "SQE128/CQE32 are not simulated under loom",
            ));
        }
        use crate::setup::{ring_size, MAX_CQ_ENTRIES, MAX_ENTRIES};
        let sq_entries = ring_size(b.entries, MAX_ENTRIES);
        let cq_entries = if flags.contains(SetupFlags::CQSIZE) {
            ring_size(b.params.cq_entries, MAX_CQ_ENTRIES)
        } else {
            2 * sq_entries
        };
        let g = Geometry {
            sq_entries,
            cq_entries,
            sqe_shift: u32::from(flags.contains(SetupFlags::SQE128)),
            cqe_shift: u32::from(flags.contains(SetupFlags::CQE32)),
            no_sqarray: flags.contains(SetupFlags::NO_SQARRAY),
        };
        let mut p = sys::io_uring_params {
            sq_entries,
            cq_entries,
            flags: flags.bits(),
            features: sys::IORING_FEAT_SINGLE_MMAP
                | sys::IORING_FEAT_NODROP
                | sys::IORING_FEAT_EXT_ARG,
            ..Default::default()
        };
        let mem = SimMemory::new(&g, &mut p, config.start_index);
        let (sq, cq) = mem.views(&p);
        let ctl = Control::default();
        // Relaxed: see `Control`.
        ctl.manual
            .store(config.manual, std::sync::atomic::Ordering::Relaxed);
        Ok(Sim {
            mem,
            sq,
            cq,
            params: p,
            state: Mutex::new(State {
                config,
                ..State::default()
            }),
            ctl,
        })
    }

    /// The user-side views of the ring, and the parameters "setup" returned.
    pub(crate) fn views(&self) -> (RawSq, RawCq, sys::io_uring_params) {
        let (sq, cq) = self.mem.views(&self.params);
        (sq, cq, self.params)
    }

    fn state(&self) -> impl std::ops::DerefMut<Target = State> + '_ {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes how the simulated kernel behaves from now on (`start_index` is ignored).
    pub fn configure(&self, config: SimConfig) {
        let mut st = self.state();
        st.config = config;
        // Relaxed: see `Control`.
        self.ctl
            .manual
            .store(config.manual, std::sync::atomic::Ordering::Relaxed);
    }

    /// Makes the next `n` entries fail with `EINTR` before consuming or waiting.
    pub fn inject_eintr(&self, n: u32) {
        // Relaxed: see `Control`.
        self.ctl
            .eintr
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Makes the next `n` entries fail with `EBUSY` before consuming or waiting.
    pub fn inject_ebusy(&self, n: u32) {
        // Relaxed: see `Control`.
        self.ctl
            .ebusy
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Number of times the ring entered this kernel.
    pub fn enter_count(&self) -> u64 {
        // Relaxed: see `Control`.
        self.ctl.enters.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Completions held back because the CQ was full.
    pub fn backlog_len(&self) -> usize {
        self.state().backlog.len()
    }

    /// The SQ tail word as the kernel sees it: what the ring has published so far.
    pub fn sq_tail(&self) -> u32 {
        // Relaxed: an observation for tests; nothing is read through it.
        self.sq.tail().load(Ordering::Relaxed)
    }

    /// The CQ head word as the kernel sees it: how far the ring has handed CQ slots back.
    pub fn cq_head(&self) -> u32 {
        // Relaxed: an observation for tests; nothing is read through it.
        self.cq.head().load(Ordering::Relaxed)
    }

    /// Consumes up to `max` published SQEs and posts their completions; moves backlog entries
    /// into the CQ as room allows. Returns the number of SQEs consumed.
    ///
    /// This is the kernel's side of the ring: call it from one thread at a time.
    pub fn service(&self, max: u32) -> u32 {
        let mut st = self.state();
        self.service_locked(&mut st, max)
    }

    fn service_locked(&self, st: &mut State, max: u32) -> u32 {
        self.flush_backlog(st);
        // Relaxed: only the kernel writes the SQ head.
        let head = self.sq.head().load(Ordering::Relaxed);
        // Acquire: pairs with the ring's Release store of the SQ tail in `flush`, making the
        // SQEs before it visible.
        let tail = self.sq.tail().load(Ordering::Acquire);
        let n = tail.wrapping_sub(head).min(max);
        for i in 0..n {
            let slot = self.sq.array_entry(head.wrapping_add(i));
            // SAFETY: position `head + i` is between the kernel's head and the tail read with
            // Acquire above, so the ring wrote the slot before its Release store of that tail,
            // and will not touch it until our Release store of the head below.
            let Some(sqe) = (unsafe { self.sq.read_sqe_at_slot(slot) }) else {
                // An out-of-range index in the SQ array: the kernel drops such entries.
                // Relaxed: a statistics counter written only by the kernel.
                let d = self.sq.dropped();
                d.store(d.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
                continue;
            };
            self.execute(st, &sqe);
        }
        if n > 0 {
            // Release: the SQE reads above happen before the ring may reuse their slots; pairs
            // with the ring's Acquire load of the SQ head.
            self.sq
                .head()
                .store(head.wrapping_add(n), Ordering::Release);
        }
        n
    }

    fn execute(&self, st: &mut State, sqe: &sys::io_uring_sqe) {
        let flags = u32::from(sqe.flags);
        let linked = flags & (sys::IOSQE_IO_LINK | sys::IOSQE_IO_HARDLINK) != 0;
        let res = if st.cancel_chain {
            -libc::ECANCELED
        } else {
            match u32::from(sqe.opcode) {
                sys::IORING_OP_NOP => {
                    // SAFETY: reading a plain-integer union member; every bit pattern is valid.
                    let nop_flags = unsafe { sqe.__bindgen_anon_3.nop_flags };
                    if nop_flags & sys::IORING_NOP_INJECT_RESULT != 0 {
                        sqe.len as i32
                    } else {
                        0
                    }
                }
                _ => -libc::EINVAL,
            }
        };
        // A failed (soft-)linked SQE cancels the rest of its chain; the chain ends at the
        // first SQE without a link flag.
        if !st.cancel_chain && res < 0 && flags & sys::IOSQE_IO_LINK != 0 {
            st.cancel_chain = true;
        } else if !linked {
            st.cancel_chain = false;
        }
        if res >= 0 && flags & sys::IOSQE_CQE_SKIP_SUCCESS != 0 {
            return;
        }
        self.post(st, sqe.user_data, res, 0);
    }

    /// Posts a completion, or backlogs/drops it when the CQ is full.
    fn post(&self, st: &mut State, user_data: u64, res: i32, flags: u32) {
        if !st.backlog.is_empty() || !self.try_post(user_data, res, flags) {
            if st.config.nodrop {
                st.backlog.push_back((user_data, res, flags));
                // Relaxed RMW: a hint flag, paired with the ring's Relaxed load in
                // `kernel_has_more`; the ring then enters the kernel, and the CQEs themselves
                // are published by the CQ tail.
                self.sq
                    .flags()
                    .fetch_or(sys::IORING_SQ_CQ_OVERFLOW, Ordering::Relaxed);
            } else {
                // Relaxed: a statistics counter written only by the kernel, read by the ring's
                // `overflow()`.
                let o = self.cq.overflow();
                o.store(o.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            }
        }
    }

    fn try_post(&self, user_data: u64, res: i32, flags: u32) -> bool {
        // Relaxed: only the kernel writes the CQ tail.
        let tail = self.cq.tail().load(Ordering::Relaxed);
        // Acquire: pairs with the ring's Release store of the CQ head after reading CQEs, so the
        // slot we are about to overwrite has been read.
        let head = self.cq.head().load(Ordering::Acquire);
        if tail.wrapping_sub(head) == self.cq.entries {
            return false;
        }
        let cqe = sys::io_uring_cqe {
            user_data,
            res,
            flags,
            big_cqe: Default::default(),
        };
        // SAFETY: the slot at `tail` is free (the ring's head, read with Acquire, is past its
        // previous use), and only the kernel writes CQE slots (under `state`'s lock).
        unsafe { self.cq.write_cqe(tail, cqe, [0; 2]) };
        // Release: publishes the CQE written above; pairs with the ring's Acquire load of the
        // CQ tail.
        self.cq
            .tail()
            .store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    fn flush_backlog(&self, st: &mut State) {
        // The overflow flag is only ever set with a non-empty backlog, so there is nothing to do
        // (and, under loom, no access to add to the interleavings to explore).
        if st.backlog.is_empty() {
            return;
        }
        while let Some(&(u, r, f)) = st.backlog.front() {
            if !self.try_post(u, r, f) {
                return;
            }
            st.backlog.pop_front();
        }
        // Relaxed RMW: see `post`.
        self.sq
            .flags()
            .fetch_and(!sys::IORING_SQ_CQ_OVERFLOW, Ordering::Relaxed);
    }

    /// Completions in the CQ now, as the kernel counts them.
    fn ready(&self) -> u32 {
        // Relaxed (both): only counting, no CQE is read through these loads, and they must add
        // no synchronisation that loom could mistake for the ring's own.
        let tail = self.cq.tail().load(Ordering::Relaxed);
        tail.wrapping_sub(self.cq.head().load(Ordering::Relaxed))
    }
}

impl Backend for Sim {
    /// Fails first with any injected `EINTR`/`EBUSY`. Then, unless in manual mode, consumes
    /// SQEs, and with `IORING_ENTER_GETEVENTS` flushes the backlog. Everything completes at
    /// once, so a wait that cannot be satisfied would block forever on a real kernel; here it
    /// fails with `ETIME` instead. In manual mode nothing is consumed here, and a wait for more
    /// than is ready yields once to let the kernel thread run and returns `Ok(0)`, so that the
    /// caller's wait loop checks again (without a deadline it waits as long as it takes).
    fn enter(
        &self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        _timeout: Option<Duration>,
    ) -> io::Result<u32> {
        // Relaxed: see `Control`.
        self.ctl
            .enters
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if take_one(&self.ctl.eintr) {
            return Err(io::Error::from_raw_os_error(libc::EINTR));
        }
        if take_one(&self.ctl.ebusy) {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        let getevents = flags & sys::IORING_ENTER_GETEVENTS != 0;
        // Relaxed: see `Control`.
        if self.ctl.manual.load(std::sync::atomic::Ordering::Relaxed) {
            // No lock taken: under loom, entering must add no happens-before edge between the
            // ring and the kernel thread beyond the ring words themselves.
            if getevents && self.ready() < min_complete {
                yield_now();
            }
            return Ok(0);
        }
        let mut st = self.state();
        let max = st.config.max_consume.unwrap_or(u32::MAX).min(to_submit);
        let consumed = self.service_locked(&mut st, max);
        if getevents {
            self.flush_backlog(&mut st);
            if consumed == 0 && self.ready() < min_complete {
                return Err(io::Error::from_raw_os_error(libc::ETIME));
            }
        }
        Ok(consumed)
    }
}
