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
//! [`SimConfig::manual`] mode, when another thread calls [`Sim::service`].

use crate::backend::{Backend, Sealed};
use crate::raw::{RawCq, RawSq};
use crate::setup::{Builder, SetupFlags};
use crate::sync::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::Mutex;
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
    /// Do not consume on entry; only [`Sim::service`] consumes (for a "kernel" thread).
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

#[derive(Debug, Default)]
struct State {
    config: SimConfig,
    /// Completions waiting for CQ space (nodrop mode), oldest first.
    backlog: VecDeque<(u64, i32, u32)>,
    /// The next this many entries fail with `EINTR` before doing anything.
    eintr: u32,
    /// The next this many entries fail with `EBUSY` before doing anything.
    ebusy: u32,
    /// A failed link: SQEs up to the end of its chain are cancelled.
    cancel_chain: bool,
    /// Number of entries made.
    enters: u64,
}

/// The simulated kernel and the heap memory of its ring. A [`crate::Backend`].
pub struct Sim {
    mem: SimMemory,
    sq: RawSq,
    cq: RawCq,
    params: sys::io_uring_params,
    state: Mutex<State>,
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
struct SimMemory {
    ring: *mut u8,
    ring_layout: std::alloc::Layout,
    sqes: *mut sys::io_uring_sqe,
    sqes_layout: std::alloc::Layout,
}

// SAFETY: the memory is only reached through `RawSq`/`RawCq`, whose shared words are atomics.
unsafe impl Send for SimMemory {}
// SAFETY: as above.
unsafe impl Sync for SimMemory {}

impl Drop for SimMemory {
    fn drop(&mut self) {
        // SAFETY: both blocks were allocated in `Sim::new` with these layouts, freed once here.
        unsafe {
            std::alloc::dealloc(self.ring, self.ring_layout);
            std::alloc::dealloc(self.sqes.cast(), self.sqes_layout);
        }
    }
}

fn align_up(x: u32, a: u32) -> u32 {
    (x + a - 1) & !(a - 1)
}

impl Sim {
    /// Sizes the rings as the kernel would (powers of two, CQ twice the SQ unless CQSIZE), and
    /// allocates zeroed memory laid out with kernel-style offsets.
    pub(crate) fn new(b: &Builder, config: SimConfig) -> Sim {
        let flags = b.setup_flags();
        let clamp = |n: u32, max: u32| n.min(max).next_power_of_two();
        let sq_entries = clamp(b.entries, crate::setup::MAX_ENTRIES);
        let cq_entries = if flags.contains(SetupFlags::CQSIZE) {
            clamp(b.params.cq_entries, crate::setup::MAX_CQ_ENTRIES)
        } else {
            2 * sq_entries
        };
        let sqe_shift = u32::from(flags.contains(SetupFlags::SQE128));
        let cqe_shift = u32::from(flags.contains(SetupFlags::CQE32));
        let mut p = sys::io_uring_params {
            sq_entries,
            cq_entries,
            flags: flags.bits(),
            features: sys::IORING_FEAT_SINGLE_MMAP
                | sys::IORING_FEAT_NODROP
                | sys::IORING_FEAT_EXT_ARG,
            ..Default::default()
        };
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
        let cq_base = align_up(192 + 4 * sq_entries, 64);
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
        let ring_len = (p.cq_off.cqes + (cq_entries << cqe_shift) * 16) as usize;
        let ring_layout = std::alloc::Layout::from_size_align(ring_len, 64).expect("ring layout");
        let sqes_layout =
            std::alloc::Layout::array::<sys::io_uring_sqe>((sq_entries << sqe_shift) as usize)
                .expect("sqe layout");
        // SAFETY: both layouts have non-zero size.
        let (ring, sqes) = unsafe {
            (
                std::alloc::alloc_zeroed(ring_layout),
                std::alloc::alloc_zeroed(sqes_layout).cast::<sys::io_uring_sqe>(),
            )
        };
        if ring.is_null() || sqes.is_null() {
            std::alloc::handle_alloc_error(ring_layout);
        }
        // SAFETY: the offsets written are inside the `ring` block just allocated.
        unsafe {
            let put = |off: u32, v: u32| ring.add(off as usize).cast::<u32>().write(v);
            put(p.sq_off.ring_mask, sq_entries - 1);
            put(p.sq_off.ring_entries, sq_entries);
            put(p.cq_off.ring_mask, cq_entries - 1);
            put(p.cq_off.ring_entries, cq_entries);
            for off in [p.sq_off.head, p.sq_off.tail, p.cq_off.head, p.cq_off.tail] {
                put(off, config.start_index);
            }
        }
        let mem = SimMemory {
            ring,
            ring_layout,
            sqes,
            sqes_layout,
        };
        let rm = crate::raw::RingMemory {
            sq_ring: ring,
            cq_ring: ring,
            sqes,
        };
        let no_sqarray = flags.contains(SetupFlags::NO_SQARRAY);
        // SAFETY: `rm` describes the blocks above, laid out as `p` says, owned by `mem`, which
        // lives as long as the `Sim` that holds these views.
        let (sq, cq) = unsafe { (RawSq::new(&rm, &p, no_sqarray), RawCq::new(&rm, &p)) };
        Sim {
            mem,
            sq,
            cq,
            params: p,
            state: Mutex::new(State {
                config,
                ..State::default()
            }),
        }
    }

    /// The user-side views of the ring, and the parameters "setup" returned.
    pub(crate) fn views(&self) -> (RawSq, RawCq, sys::io_uring_params) {
        let rm = crate::raw::RingMemory {
            sq_ring: self.mem.ring,
            cq_ring: self.mem.ring,
            sqes: self.mem.sqes,
        };
        let no_sqarray = self.params.flags & sys::IORING_SETUP_NO_SQARRAY != 0;
        // SAFETY: as in `new`: the memory is owned by `self`, which outlives the views (the
        // ring keeps the `Sim` in an `Arc`).
        unsafe {
            (
                RawSq::new(&rm, &self.params, no_sqarray),
                RawCq::new(&rm, &self.params),
                self.params,
            )
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes how the simulated kernel behaves from now on.
    pub fn configure(&self, config: SimConfig) {
        self.state().config = config;
    }

    /// Makes the next `n` entries fail with `EINTR` before consuming or waiting.
    pub fn inject_eintr(&self, n: u32) {
        self.state().eintr = n;
    }

    /// Makes the next `n` entries fail with `EBUSY` before consuming or waiting.
    pub fn inject_ebusy(&self, n: u32) {
        self.state().ebusy = n;
    }

    /// Number of times the ring entered this kernel.
    pub fn enter_count(&self) -> u64 {
        self.state().enters
    }

    /// Completions held back because the CQ was full.
    pub fn backlog_len(&self) -> usize {
        self.state().backlog.len()
    }

    /// Consumes up to `max` published SQEs and posts their completions; moves backlog entries
    /// into the CQ as room allows. Returns the number of SQEs consumed.
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
            let Some(sqe) = self.sq.sqe_at_slot(slot) else {
                // An out-of-range index in the SQ array: the kernel drops such entries.
                // Relaxed: a statistics counter.
                let d = self.sq.dropped();
                d.store(d.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
                continue;
            };
            // SAFETY: slot `head + i` is between the kernel's head and the published tail, so
            // the ring wrote it before its Release store, and will not touch it until our
            // Release store of the head below.
            let sqe = unsafe { sqe.read() };
            self.execute(st, &sqe);
        }
        // Release: the SQE reads above happen before the ring may reuse their slots; pairs with
        // the ring's Acquire load of the SQ head.
        self.sq
            .head()
            .store(head.wrapping_add(n), Ordering::Release);
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
                // Relaxed RMW: a hint flag; the ring enters the kernel when it sees it.
                self.sq
                    .flags()
                    .fetch_or(sys::IORING_SQ_CQ_OVERFLOW, Ordering::Relaxed);
            } else {
                // Relaxed: a statistics counter read by the ring's `overflow()`.
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
        // SAFETY: the slot at `tail` is free (the ring's head is past its previous use), and
        // only the kernel writes CQE slots.
        unsafe {
            self.cq.cqe(tail).write(sys::io_uring_cqe {
                user_data,
                res,
                flags,
                big_cqe: Default::default(),
            });
        }
        // Release: publishes the CQE written above; pairs with the ring's Acquire load of the
        // CQ tail.
        self.cq
            .tail()
            .store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    fn flush_backlog(&self, st: &mut State) {
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

    fn ready(&self) -> u32 {
        // Acquire/Relaxed: only counting.
        let tail = self.cq.tail().load(Ordering::Relaxed);
        tail.wrapping_sub(self.cq.head().load(Ordering::Acquire))
    }
}

impl Backend for Sim {
    /// Consumes SQEs (unless in manual mode), then with `IORING_ENTER_GETEVENTS` flushes the
    /// backlog. Everything completes at once, so a wait that cannot be satisfied would block
    /// forever on a real kernel; here it fails with `ETIME` instead.
    fn enter(
        &self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        _timeout: Option<Duration>,
    ) -> io::Result<u32> {
        let mut st = self.state();
        st.enters += 1;
        if st.eintr > 0 {
            st.eintr -= 1;
            return Err(io::Error::from_raw_os_error(libc::EINTR));
        }
        if st.ebusy > 0 {
            st.ebusy -= 1;
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        let consumed = if st.config.manual {
            0
        } else {
            let max = st.config.max_consume.unwrap_or(u32::MAX).min(to_submit);
            self.service_locked(&mut st, max)
        };
        if flags & sys::IORING_ENTER_GETEVENTS != 0 {
            self.flush_backlog(&mut st);
            if consumed == 0 && self.ready() < min_complete {
                return Err(io::Error::from_raw_os_error(libc::ETIME));
            }
        }
        Ok(consumed)
    }
}
