//! Provided buffers: memory the kernel picks a buffer from when a receive (or read) needs one
//! (`IOSQE_BUFFER_SELECT`), handed to the user as an owned [`ProvidedBuf`] that goes back by
//! itself when dropped.
//!
//! Two ways to provide them, one per kernel mechanism:
//!
//! - [`BufRing`]: a provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19). Buffers
//!   return to the ring the moment their [`ProvidedBuf`] is dropped, with no system call.
//!   Optionally incremental (Linux 6.12): the kernel fills one buffer in pieces.
//! - [`BufGroup`]: the older `IORING_OP_PROVIDE_BUFFERS` (Linux 5.7), where giving buffers to
//!   the kernel is an op ([`crate::ops::ProvideBuffers`]).
//!
//! The ops that take buffers from them: [`crate::ops::RecvProvided`] (one-shot or multishot),
//! [`crate::ops::RecvBundle`], [`crate::ops::RecvMsgMulti`]. Each sets `IOSQE_BUFFER_SELECT`
//! and the group itself (which [`crate::SqeOptions`] deliberately does not offer).
//!
//! # Why the kernel never writes into memory Rust can reach
//!
//! A buffer is in one of two hands, and the pool records which, per buffer id, under its
//! lock:
//!
//! 1. **The kernel's**: published in the ring (or provided to the group) and not yet reported
//!    consumed. Rust code never forms a reference to its bytes.
//! 2. **The user's**: reported consumed by a completion, covered by exactly one
//!    [`ProvidedBuf`] (with incremental consumption, by disjoint pieces, each one covering
//!    bytes the kernel has moved past). It goes back to the kernel only when its last piece is
//!    dropped, and only if the kernel has let go of it.
//!
//! The move from 1 to 2 happens only on a completion that says so under the kernel's rules,
//! read conservatively: when a completion could mean either (a zero-byte incremental receive,
//! an error that still names a buffer, a completion that contradicts the record), the buffer
//! stays the kernel's. The worst outcome of a wrong guess that way is a buffer never reused,
//! never one written while the user reads it.
//!
//! And the memory (buffers and ring entries) outlives every request that may write into it:
//!
//! - Every op that selects from a group holds a handle ([`BufRing`] / [`BufGroup`] share one
//!   reference-counted pool), from construction until its completion is reaped and the op is
//!   given back or dropped. A dropped ticket leaves the op in its ring; a ring dropped with the
//!   op still in flight after its bounded drain leaks the op, hence the handle, hence the
//!   memory.
//! - Every [`ProvidedBuf`] holds the pool too.
//! - When the last handle goes, no request of ours can select from the group any more. A ring
//!   is then unregistered (through the pool's own duplicate of the io_uring fd, so the order of
//!   drops does not matter) and its memory freed only if that succeeded; otherwise it is
//!   leaked. A group whose buffers the kernel may still hold is leaked too (nothing can take
//!   them back without an op).
//! - Group ids are unique among the live pools of the process (allocated here, never chosen by
//!   the user), so an op pushed to another io_uring than its pool's finds no group of ours
//!   there under its id (it fails with `ENOBUFS`) rather than another pool's buffers. A group
//!   registered by hand through `uring-core` must not use an id a pool holds
//!   ([`BufRing::bgid`]); that is the contract of its `unsafe` registration.
//!
//! Completions are read in the order the ring delivers them. For a ring, which buffers a
//! completion consumed follows from the buffer id it names and the order in which the ring
//! published them, whatever the completion order. With incremental consumption, *where* in a
//! buffer a completion's bytes lie is inferred from the completions before it on that buffer:
//! use such a ring for one receive at a time (one socket per ring) so that completion order is
//! selection order.

mod group;
mod ring;

pub use group::BufGroup;
pub(crate) use group::Provision;
pub use ring::{BufRing, BufRingBuilder};

use crate::error::{Error, Result};
use std::alloc::{self, Layout};
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use uring_core::{sys, BufRingMem};

/// Most buffers a ring or group holds (the kernel's ring limit; buffer ids are below it).
pub const MAX_PROVIDED_BUFS: u32 = 1 << 15;
/// Largest provided buffer (1 GiB).
pub const MAX_PROVIDED_BUF_SIZE: u32 = 1 << 30;
/// The buffer id of a [`ProvidedBuf`] that holds no buffer (a completion that named none).
const NO_BUF: u16 = u16::MAX;

// --- group ids -----------------------------------------------------------------------------

/// Buffer group ids held by live pools of this process: one bit per id.
static GROUP_IDS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

fn group_ids() -> MutexGuard<'static, Vec<u64>> {
    // Set and clear bits only: a panic cannot leave the map inconsistent.
    let mut g = GROUP_IDS.lock().unwrap_or_else(PoisonError::into_inner);
    if g.is_empty() {
        g.resize(1 << 10, 0);
    }
    g
}

/// Takes the lowest free group id not in `skip`.
fn alloc_group_id(skip: &[u16]) -> Result<u16> {
    let mut ids = group_ids();
    for id in 0..=u16::MAX {
        let (w, b) = (usize::from(id / 64), id % 64);
        if ids[w] & (1 << b) == 0 && !skip.contains(&id) {
            ids[w] |= 1 << b;
            return Ok(id);
        }
    }
    Err(Error::NoBufGroupId)
}

/// Gives a group id back.
fn free_group_id(id: u16) {
    let mut ids = group_ids();
    ids[usize::from(id / 64)] &= !(1 << (id % 64));
}

// --- the pool --------------------------------------------------------------------------------

/// Where one buffer is (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
struct BufState {
    /// The kernel may write into it: published (or provided) and not reported consumed.
    kernel: bool,
    /// A [`group::BufGroup`] buffer taken by a `ProvideBuffers` op not yet completed.
    providing: bool,
    /// Live [`ProvidedBuf`] pieces of it.
    pieces: u32,
    /// With incremental consumption: bytes of it already reported, from its start.
    off: u32,
    /// The ring position it was last published at.
    pos: u16,
}

/// What the pool shares with the kernel.
pub(crate) enum Mode {
    /// A registered ring: its entries, and which buffer each position holds.
    Ring {
        /// Dropped by `Pool::drop` only once the ring is unregistered.
        mem: ManuallyDrop<BufRingMem>,
        /// `bid_at[pos & mask]`: the buffer published at that position.
        bid_at: Vec<u16>,
        inc: bool,
    },
    /// An `IORING_OP_PROVIDE_BUFFERS` group.
    Group,
}

impl BufState {
    /// Neither the kernel's, nor being provided, nor out with the user (group mode).
    fn is_free(&self) -> bool {
        !self.kernel && !self.providing && self.pieces == 0
    }
}

struct State {
    bufs: Vec<BufState>,
    mode: Mode,
}

/// The memory and bookkeeping behind a [`BufRing`] or [`BufGroup`], shared by its handles,
/// the ops using it and every [`ProvidedBuf`].
pub(crate) struct Pool {
    /// `count * size` bytes, zeroed at allocation.
    mem: NonNull<u8>,
    layout: Layout,
    size: u32,
    count: u16,
    bgid: u16,
    state: Mutex<State>,
    /// For a registered ring: a duplicate of the io_uring fd, to unregister it whatever the
    /// drop order (`None` until registered).
    ring_fd: Option<std::os::fd::OwnedFd>,
}

// SAFETY: the memory is a plain heap block; each buffer's bytes are reached by Rust only
// through the `ProvidedBuf` pieces covering them (disjoint, handed out once under the lock),
// and all bookkeeping is behind the mutex.
unsafe impl Send for Pool {}
// SAFETY: as above; `&Pool` reaches nothing but the mutex and immutable fields.
unsafe impl Sync for Pool {}

impl Pool {
    /// The layout of `count` buffers of `size` bytes, checked.
    fn layout(count: u32, size: u32) -> Result<Layout> {
        let shape = |why| Error::ProvidedBufShape { count, size, why };
        if count == 0 || count > MAX_PROVIDED_BUFS {
            return Err(shape("the count must be in 1..=32768"));
        }
        if size == 0 || size > MAX_PROVIDED_BUF_SIZE {
            return Err(shape("the size must be in 1..=1 GiB"));
        }
        (count as usize)
            .checked_mul(size as usize)
            .and_then(|total| Layout::from_size_align(total, 4096).ok())
            .ok_or_else(|| shape("the pool's size overflows"))
    }

    /// Zeroed memory for `count` buffers of `size` bytes (`layout` from [`Pool::layout`]),
    /// owning group id `bgid` (given back when the pool is freed).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfMemory`] when the allocator refuses (the group id is then still the
    /// caller's to give back).
    fn new(layout: Layout, count: u32, size: u32, mode: Mode, bgid: u16) -> Result<Self> {
        // SAFETY: the layout's size is at least 1 (checked by `Pool::layout`).
        let mem = unsafe { alloc::alloc_zeroed(layout) };
        // A refusal is the caller's to handle (a pool sized from input, say), not an abort.
        let mem = NonNull::new(mem).ok_or(Error::OutOfMemory {
            bytes: layout.size(),
        })?;
        Ok(Pool {
            mem,
            layout,
            size,
            count: count as u16,
            bgid,
            state: Mutex::new(State {
                bufs: vec![BufState::default(); count as usize],
                mode,
            }),
            ring_fd: None,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The bookkeeping is updated before anything can panic in a critical section.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        debug_assert!(bid < self.count);
        // SAFETY: `bid < count`: the offset stays inside the allocation.
        unsafe { self.mem.as_ptr().add(usize::from(bid) * self.size as usize) }
    }

    /// Publishes buffer `bid` in the ring (ring mode; the caller holds the lock and the
    /// buffer is the pool's: neither the kernel's nor covered by a piece).
    fn publish(&self, st: &mut State, bid: u16) {
        let Mode::Ring { mem, bid_at, .. } = &mut st.mode else {
            return;
        };
        let pos = mem.position();
        let mask = bid_at.len() - 1;
        bid_at[usize::from(pos) & mask] = bid;
        // SAFETY: the buffer's `size` bytes are inside the pool's memory, which outlives the
        // registration (module documentation), and no piece covers them (the caller's
        // promise), so Rust code does not touch them while the kernel may write. At most
        // `count <= entries` buffers are ever in the ring (each at most once: only a buffer
        // not marked `kernel` is published), so the position written is not one the kernel
        // may still read.
        unsafe { mem.push(self.buf_ptr(bid) as u64, self.size, bid) };
        mem.publish();
        st.bufs[usize::from(bid)] = BufState {
            kernel: true,
            pos,
            ..BufState::default()
        };
    }

    /// A piece `off..off + len` of buffer `bid`, now the user's.
    fn piece(self: &Arc<Self>, bid: u16, off: u32, len: u32) -> ProvidedBuf {
        ProvidedBuf {
            pool: Arc::clone(self),
            bid,
            off,
            len,
        }
    }

    /// The buffer(s) a completion `(res, flags)` of a buffer-selecting op reports, taken from
    /// the kernel's hands into the user's. `bundle`: the op may fill several buffers.
    pub(crate) fn take(
        self: &Arc<Self>,
        res: i32,
        flags: u32,
        bundle: bool,
    ) -> io::Result<Vec<ProvidedBuf>> {
        let n = crate::op::res_to_io(res)?;
        if flags & sys::IORING_CQE_F_BUFFER == 0 {
            return Ok(Vec::new());
        }
        let bid = (flags >> sys::IORING_CQE_BUFFER_SHIFT) as u16;
        let mut st = self.lock();
        let known = st
            .bufs
            .get(usize::from(bid))
            .is_some_and(|b| b.kernel && !b.providing);
        if !known {
            return Err(inconsistent(bid, "is not one the kernel holds"));
        }
        let buf_more = flags & sys::IORING_CQE_F_BUF_MORE != 0;
        match &st.mode {
            Mode::Ring { inc: true, .. } => {
                self.take_incremental(&mut st, bid, n, buf_more, bundle)
            }
            Mode::Ring { .. } if bundle => self.take_bundle(&mut st, bid, n),
            _ => {
                let b = &mut st.bufs[usize::from(bid)];
                b.kernel = false;
                b.pieces += 1;
                Ok(vec![self.piece(bid, 0, n.min(self.size))])
            }
        }
    }

    /// A bundle: `ceil(n / size)` buffers consumed, from `bid`'s position on, in the order the
    /// ring published them (none for `n == 0`: the kernel moves its head by nothing then).
    fn take_bundle(
        self: &Arc<Self>,
        st: &mut State,
        bid: u16,
        n: u32,
    ) -> io::Result<Vec<ProvidedBuf>> {
        if n == 0 {
            return Ok(vec![self.piece(NO_BUF, 0, 0)]);
        }
        let Mode::Ring { bid_at, .. } = &st.mode else {
            unreachable!("bundles are ring-only")
        };
        let mask = bid_at.len() - 1;
        let first = st.bufs[usize::from(bid)].pos;
        let nbufs = n.div_ceil(self.size);
        if nbufs > u32::from(self.count) {
            return Err(inconsistent(bid, "starts a bundle longer than the ring"));
        }
        let mut bids = Vec::with_capacity(nbufs as usize);
        for i in 0..nbufs {
            let pos = first.wrapping_add(i as u16);
            let b = bid_at[usize::from(pos) & mask];
            let s = st.bufs[usize::from(b)];
            if !s.kernel || s.pos != pos {
                return Err(inconsistent(
                    b,
                    "follows in the bundle but is not the kernel's",
                ));
            }
            bids.push(b);
        }
        let mut left = n;
        Ok(bids
            .into_iter()
            .map(|b| {
                let s = &mut st.bufs[usize::from(b)];
                s.kernel = false;
                s.pieces += 1;
                let len = left.min(self.size);
                left -= len;
                self.piece(b, 0, len)
            })
            .collect())
    }

    /// Incremental consumption: `n` bytes from `bid`'s current offset on, spilling into the
    /// buffers published after it (a bundle). A buffer goes to the user when its last byte is
    /// reported; the last one touched only if the kernel also says it let go (no
    /// `IORING_CQE_F_BUF_MORE`).
    fn take_incremental(
        self: &Arc<Self>,
        st: &mut State,
        bid: u16,
        n: u32,
        buf_more: bool,
        bundle: bool,
    ) -> io::Result<Vec<ProvidedBuf>> {
        let Mode::Ring { bid_at, .. } = &st.mode else {
            unreachable!("incremental consumption is ring-only")
        };
        let mask = bid_at.len() - 1;
        // Check first, take after: a completion that does not fit the record takes nothing.
        let mut plan = Vec::new();
        let (mut left, mut b, mut pos) = (n, bid, st.bufs[usize::from(bid)].pos);
        loop {
            let s = st.bufs[usize::from(b)];
            if !s.kernel || s.pos != pos || plan.len() >= usize::from(self.count) {
                return Err(inconsistent(b, "receives bytes but is not the kernel's"));
            }
            let len = left.min(self.size - s.off);
            plan.push((b, s.off, len));
            left -= len;
            if left == 0 {
                break;
            }
            if !bundle {
                return Err(inconsistent(b, "received more bytes than it has left"));
            }
            pos = pos.wrapping_add(1);
            b = bid_at[usize::from(pos) & mask];
        }
        let last = plan.len() - 1;
        Ok(plan
            .into_iter()
            .enumerate()
            .map(|(i, (b, off, len))| {
                let s = &mut st.bufs[usize::from(b)];
                s.off += len;
                s.pieces += 1;
                if s.off == self.size && (i < last || !buf_more) {
                    s.kernel = false;
                }
                self.piece(b, off, len)
            })
            .collect())
    }

    /// A piece was dropped: the buffer goes back to the kernel (ring) or to the pool's free
    /// buffers (group) once no piece is left and the kernel has let go of it.
    fn release(&self, bid: u16) {
        let mut st = self.lock();
        let s = &mut st.bufs[usize::from(bid)];
        s.pieces -= 1;
        if s.pieces == 0 && !s.kernel {
            s.off = 0;
            self.publish(&mut st, bid);
        }
    }
}

impl Drop for Pool {
    /// Runs when no handle, no op and no buffer is left: nothing of ours can select from the
    /// group. A ring is unregistered and freed only if that succeeds; a group whose buffers the
    /// kernel may still hold is leaked.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let free = match &st.mode {
            Mode::Ring { .. } => match &self.ring_fd {
                Some(fd) => ring::unregister(fd, self.bgid),
                None => true, // never registered
            },
            Mode::Group => st.bufs.iter().all(|b| !b.kernel && !b.providing),
        };
        if !free {
            // The kernel may still read the entries and write the buffers: both are leaked (the
            // ring's `ManuallyDrop` is left alone), and the group id stays taken.
            return;
        }
        if let Mode::Ring { mem, .. } = &mut st.mode {
            // SAFETY: unregistered (or never registered): the kernel no longer reads the
            // entries; `mem` is not used again.
            unsafe { ManuallyDrop::drop(mem) };
        }
        // SAFETY: allocated in `Pool::new` with this layout; the kernel can no longer select
        // from it (unregistered, or holding none of its buffers), and nothing else refers to
        // it (this is the last reference).
        unsafe { alloc::dealloc(self.mem.as_ptr(), self.layout) };
        free_group_id(self.bgid);
    }
}

fn inconsistent(bid: u16, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the kernel reported provided buffer {bid}, which {what}; it stays the kernel's"),
    )
}

// --- the user's buffer -----------------------------------------------------------------------

/// A provided buffer (or, with incremental consumption, a piece of one) that the kernel filled
/// and handed over: owned bytes, readable and writable, that go back to their ring or group
/// when dropped.
///
/// It dereferences to the bytes received. It can be sent back out as is (it is an
/// [`crate::IoBuf`]: an echo server sends what it received without a copy), and keeps its
/// pool's memory alive.
pub struct ProvidedBuf {
    pool: Arc<Pool>,
    /// [`NO_BUF`] for none.
    bid: u16,
    off: u32,
    len: u32,
}

impl ProvidedBuf {
    /// The buffer id the kernel reported (`None` when the completion named no buffer).
    pub fn bid(&self) -> Option<u16> {
        (self.bid != NO_BUF).then_some(self.bid)
    }

    /// Where these bytes start in the buffer (non-zero only for later pieces of an
    /// incrementally consumed buffer, or after [`ProvidedBuf::advance`]).
    pub fn offset(&self) -> u32 {
        self.off
    }

    /// Bytes received.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether no byte was received (end of stream, for a receive).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops the first `n` bytes from the view (all of them if fewer), for instance after a
    /// short send. The buffer still returns whole when dropped.
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.len as usize) as u32;
        self.off += n;
        self.len -= n;
    }

    /// Keeps only the first `n` bytes in the view.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n.min(u32::MAX as usize) as u32);
    }

    fn ptr(&self) -> *mut u8 {
        if self.bid == NO_BUF {
            return NonNull::dangling().as_ptr();
        }
        // SAFETY: `off + len <= size`, inside this buffer.
        unsafe { self.pool.buf_ptr(self.bid).add(self.off as usize) }
    }
}

impl Deref for ProvidedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` bytes of this buffer that the kernel has finished writing (the
        // completion that handed them over came after its writes), zero-initialised at
        // allocation, reached only through this piece.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len as usize) }
    }
}

impl DerefMut for ProvidedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, with `&mut self` for exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len as usize) }
    }
}

impl Drop for ProvidedBuf {
    fn drop(&mut self) {
        if self.bid != NO_BUF {
            self.pool.release(self.bid);
        }
    }
}

impl fmt::Debug for ProvidedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvidedBuf")
            .field("bgid", &self.pool.bgid)
            .field("bid", &self.bid())
            .field("offset", &self.off)
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: the pointer is into the pool's heap block, which does not move and stays allocated
// while this piece holds the pool; its `len` bytes are initialised and reached only through it.
unsafe impl crate::IoBuf for ProvidedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len as usize
    }
    fn bytes_total(&self) -> usize {
        self.len as usize
    }
}

/// The handle an op holds on the ring or group it selects from.
#[derive(Clone)]
pub struct GroupRef {
    pub(crate) pool: Arc<Pool>,
}

impl GroupRef {
    /// The group id the SQE carries.
    pub(crate) fn bgid(&self) -> u16 {
        self.pool.bgid
    }

    /// Whether the pool is a ring (bundles and incremental consumption need one).
    pub(crate) fn is_ring(&self) -> bool {
        matches!(self.pool.lock().mode, Mode::Ring { .. })
    }

    /// The size of each buffer.
    pub(crate) fn buf_size(&self) -> u32 {
        self.pool.size
    }

    /// See [`Pool::take`].
    pub(crate) fn take(&self, res: i32, flags: u32, bundle: bool) -> io::Result<Vec<ProvidedBuf>> {
        self.pool.take(res, flags, bundle)
    }

    /// One buffer (or none, as an empty [`ProvidedBuf`]) for a completion of a single-buffer op.
    pub(crate) fn take_one(&self, res: i32, flags: u32) -> io::Result<ProvidedBuf> {
        let mut v = self.pool.take(res, flags, false)?;
        Ok(v.pop().unwrap_or_else(|| self.pool.piece(NO_BUF, 0, 0)))
    }
}

impl fmt::Debug for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupRef({})", self.pool.bgid)
    }
}

/// `IntoGroup` for a handle type (`$t { pool }`), by value and by reference.
macro_rules! into_group {
    ($t:ty) => {
        impl $crate::IntoGroup for &$t {
            fn into_group(self) -> $crate::pbuf::GroupRef {
                $crate::pbuf::GroupRef {
                    pool: std::sync::Arc::clone(&self.pool),
                }
            }
        }

        impl $crate::IntoGroup for $t {
            fn into_group(self) -> $crate::pbuf::GroupRef {
                $crate::pbuf::GroupRef { pool: self.pool }
            }
        }
    };
}
use into_group;

/// What an op's constructor takes as the group to select from: a [`BufRing`] or a
/// [`BufGroup`] (by reference, sharing it).
pub trait IntoGroup {
    /// The handle the op holds.
    #[doc(hidden)]
    fn into_group(self) -> GroupRef;
}

#[cfg(test)]
mod tests;
