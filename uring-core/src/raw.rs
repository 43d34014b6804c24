//! The one module that does pointer arithmetic on ring memory.
//!
//! [`RawSq`] and [`RawCq`] hold pointers into the shared ring memory, computed once from the
//! offsets the kernel (or the simulated kernel) reported. Every other module reaches head/tail
//! words, the SQ index array, SQE slots and CQE slots through the accessors here.
//!
//! Ring memory may be the kernel's mapping or a heap block serviced by the simulated kernel (`sim`); the
//! accessors do not care. Under `cfg(loom)` the simulated kernel allocates every shared word as
//! a separate loom atomic and every SQE/CQE slot as a [`loom::cell::UnsafeCell`] (see
//! [`SqeSlot`]), so that loom checks not only the orderings of the head/tail words but also that
//! each read of a slot happens after the write it depends on, and each write after the last read
//! of the slot's previous use. The slot accessors below are the only code that touches slots.

use crate::sync::AtomicU32;
#[cfg(not(loom))]
use uring_sys::io_uring_params;
use uring_sys::{io_uring_cqe, io_uring_sqe};

/// One SQE slot of ring memory: the kernel's struct itself.
#[cfg(not(loom))]
pub(crate) type SqeSlot = io_uring_sqe;
/// One SQE slot of ring memory: under loom a tracked cell, so that loom checks the causality of
/// every slot access.
#[cfg(loom)]
pub(crate) type SqeSlot = loom::cell::UnsafeCell<io_uring_sqe>;
/// One CQE slot of ring memory: the kernel's struct itself.
#[cfg(not(loom))]
pub(crate) type CqeSlot = io_uring_cqe;
/// One CQE slot of ring memory: under loom a tracked cell (see [`SqeSlot`]).
#[cfg(loom)]
pub(crate) type CqeSlot = loom::cell::UnsafeCell<io_uring_cqe>;

/// Pointers into the submission ring.
///
/// Invariant (from [`RawSq::new`]'s contract): every pointer is valid for the life of the memory
/// owner that made it, which outlives this value; `head`, `tail`, `flags`, `dropped` are 4-aligned
/// `u32` words shared with the kernel; `sqes` holds `entries << sqe_shift` [`SqeSlot`]s; `array`
/// is null (`IORING_SETUP_NO_SQARRAY`) or holds `entries` `u32` slots.
#[derive(Debug)]
pub(crate) struct RawSq {
    head: *const AtomicU32,
    tail: *const AtomicU32,
    flags: *const AtomicU32,
    dropped: *const AtomicU32,
    array: *mut u32,
    sqes: *mut SqeSlot,
    /// `entries - 1`; `entries` is a power of two.
    pub(crate) mask: u32,
    /// Number of SQ slots.
    pub(crate) entries: u32,
    /// 0 for 64-byte SQEs, 1 for `IORING_SETUP_SQE128`.
    pub(crate) sqe_shift: u32,
}

/// Pointers into the completion ring. Same invariant as [`RawSq`]; `cqes` holds
/// `entries << cqe_shift` [`CqeSlot`]s; `flags` may be null (kernels before 5.8).
#[derive(Debug)]
pub(crate) struct RawCq {
    /// The SQ ring's flags word, read on the completion side for `CQ_OVERFLOW` / `TASKRUN`.
    sq_flags: *const AtomicU32,
    head: *const AtomicU32,
    tail: *const AtomicU32,
    flags: *const AtomicU32,
    overflow: *const AtomicU32,
    cqes: *mut CqeSlot,
    /// `entries - 1`; `entries` is a power of two.
    pub(crate) mask: u32,
    /// Number of CQ slots.
    pub(crate) entries: u32,
    /// 0 for 16-byte CQEs, 1 for `IORING_SETUP_CQE32`.
    pub(crate) cqe_shift: u32,
}

// SAFETY: the pointers refer to ring memory owned by the backend, which is `Send + Sync`; all
// shared words are accessed atomically, and SQE/CQE slots are only touched by the one side that
// owns them at the time (the protocol enforced by head/tail).
unsafe impl Send for RawSq {}
// SAFETY: as above.
unsafe impl Sync for RawSq {}
// SAFETY: as above.
unsafe impl Send for RawCq {}
// SAFETY: as above.
unsafe impl Sync for RawCq {}

/// Ring memory as laid out by `io_uring_setup`: the SQ ring, the CQ ring (possibly the same
/// block) and the SQE array, with the offsets in `p`.
#[cfg(not(loom))]
pub(crate) struct RingMemory {
    pub(crate) sq_ring: *mut u8,
    pub(crate) cq_ring: *mut u8,
    pub(crate) sqes: *mut io_uring_sqe,
}

/// The kernel's `SMP_CACHE_BYTES` on this architecture: the alignment of the SQ index array
/// after the CQEs in the ring memory (see [`ArrayLayout`]).
#[cfg(not(loom))]
const SMP_CACHE_BYTES: u64 = if cfg!(target_arch = "s390x") {
    256
} else if cfg!(any(target_arch = "powerpc64", target_arch = "powerpc")) {
    128
} else {
    64
};

/// How a kernel lays out the SQ index array after the CQEs (its `rings_size`): kernels differ
/// for 32-byte CQEs.
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArrayLayout {
    /// `ALIGN(cqes + cq_entries * cqe_size, SMP_CACHE_BYTES)` (Linux 7.x).
    Linear,
    /// `ALIGN(struct_size(rings, cqes, cq_entries) * 2, SMP_CACHE_BYTES)` with `CQE32`, the
    /// header counted twice (Linux 6.18 and before); the same as `Linear` without `CQE32`.
    Doubled,
}

#[cfg(not(loom))]
impl ArrayLayout {
    /// Which layout put the array where the kernel reported it at setup (`p`), if either
    /// (none without an array).
    pub(crate) fn detect(p: &io_uring_params) -> Option<ArrayLayout> {
        if p.flags & uring_sys::IORING_SETUP_NO_SQARRAY != 0 {
            return None;
        }
        [ArrayLayout::Doubled, ArrayLayout::Linear]
            .into_iter()
            .find(|l| l.sq_array_offset(p) == Some(p.sq_off.array))
    }

    /// Where the SQ index array is in ring memory laid out as `p` says, which a resize does not
    /// report (`IORING_REGISTER_RESIZE_RINGS` leaves `sq_off.array` 0). `None` on overflow.
    pub(crate) fn sq_array_offset(self, p: &io_uring_params) -> Option<u32> {
        let cqe32 = p.flags & uring_sys::IORING_SETUP_CQE32 != 0;
        let cqes = u64::from(p.cq_off.cqes);
        let entries = u64::from(p.cq_entries);
        let end = match (self, cqe32) {
            (ArrayLayout::Doubled, true) => (cqes + entries * 16) * 2,
            (_, _) => cqes + entries * (16 << u32::from(cqe32)),
        };
        u32::try_from(end.div_ceil(SMP_CACHE_BYTES) * SMP_CACHE_BYTES).ok()
    }
}

#[cfg(not(loom))]
impl RawSq {
    /// Computes the SQ pointers from ring memory and the offsets in `p`.
    ///
    /// # Safety
    ///
    /// `mem` must describe live ring memory laid out as `p` says (as returned by
    /// `io_uring_setup` for that ring, or built the same way by the simulated kernel), valid for
    /// as long as the returned value is used.
    pub(crate) unsafe fn new(mem: &RingMemory, p: &io_uring_params, no_sqarray: bool) -> Self {
        let base = mem.sq_ring;
        let o = &p.sq_off;
        // SAFETY: the caller guarantees every offset lies inside the SQ ring block.
        unsafe {
            let mask = *base.add(o.ring_mask as usize).cast::<u32>();
            let entries = *base.add(o.ring_entries as usize).cast::<u32>();
            Self {
                head: base.add(o.head as usize).cast(),
                tail: base.add(o.tail as usize).cast(),
                flags: base.add(o.flags as usize).cast(),
                dropped: base.add(o.dropped as usize).cast(),
                array: if no_sqarray {
                    std::ptr::null_mut()
                } else {
                    base.add(o.array as usize).cast()
                },
                sqes: mem.sqes,
                mask,
                entries,
                sqe_shift: u32::from(p.flags & uring_sys::IORING_SETUP_SQE128 != 0),
            }
        }
    }
}

#[cfg(not(loom))]
impl RawCq {
    /// Computes the CQ pointers from ring memory and the offsets in `p`.
    ///
    /// # Safety
    ///
    /// As for [`RawSq::new`].
    pub(crate) unsafe fn new(mem: &RingMemory, p: &io_uring_params) -> Self {
        let base = mem.cq_ring;
        let o = &p.cq_off;
        // SAFETY: the caller guarantees every offset lies inside the CQ ring block, and the SQ
        // flags offset inside the SQ ring block.
        unsafe {
            Self {
                sq_flags: mem.sq_ring.add(p.sq_off.flags as usize).cast(),
                head: base.add(o.head as usize).cast(),
                tail: base.add(o.tail as usize).cast(),
                flags: if o.flags == 0 {
                    std::ptr::null()
                } else {
                    base.add(o.flags as usize).cast()
                },
                overflow: base.add(o.overflow as usize).cast(),
                cqes: base.add(o.cqes as usize).cast(),
                mask: *base.add(o.ring_mask as usize).cast::<u32>(),
                entries: *base.add(o.ring_entries as usize).cast::<u32>(),
                cqe_shift: u32::from(p.flags & uring_sys::IORING_SETUP_CQE32 != 0),
            }
        }
    }
}

#[cfg(loom)]
impl RawSq {
    /// Builds the SQ view from separately allocated words (loom's atomics cannot live in a
    /// kernel-layout block).
    ///
    /// # Safety
    ///
    /// Every pointer must stay valid while the value is used; `entries` is a power of two,
    /// `sqes` holds `entries` slots and `array` is null or holds `entries` slots.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn from_parts(
        head: *const AtomicU32,
        tail: *const AtomicU32,
        flags: *const AtomicU32,
        dropped: *const AtomicU32,
        array: *mut u32,
        sqes: *mut SqeSlot,
        entries: u32,
    ) -> Self {
        Self {
            head,
            tail,
            flags,
            dropped,
            array,
            sqes,
            mask: entries - 1,
            entries,
            sqe_shift: 0,
        }
    }
}

#[cfg(loom)]
impl RawCq {
    /// Builds the CQ view from separately allocated words.
    ///
    /// # Safety
    ///
    /// As for [`RawSq::from_parts`]; `cqes` holds `entries` slots.
    pub(crate) unsafe fn from_parts(
        sq_flags: *const AtomicU32,
        head: *const AtomicU32,
        tail: *const AtomicU32,
        flags: *const AtomicU32,
        overflow: *const AtomicU32,
        cqes: *mut CqeSlot,
        entries: u32,
    ) -> Self {
        Self {
            sq_flags,
            head,
            tail,
            flags,
            overflow,
            cqes,
            mask: entries - 1,
            entries,
            cqe_shift: 0,
        }
    }
}

impl RawSq {
    /// The SQ head: written by the kernel as it consumes SQEs.
    #[inline]
    pub(crate) fn head(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned and live by the type's invariant.
        unsafe { &*self.head }
    }

    /// The SQ tail: written by us to publish SQEs.
    #[inline]
    pub(crate) fn tail(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned and live by the type's invariant.
        unsafe { &*self.tail }
    }

    /// The SQ flags (`IORING_SQ_*`): written by the kernel.
    #[inline]
    pub(crate) fn flags(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned and live by the type's invariant.
        unsafe { &*self.flags }
    }

    /// Count of invalid SQEs the kernel dropped: written by the kernel.
    #[inline]
    pub(crate) fn dropped(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned and live by the type's invariant.
        unsafe { &*self.dropped }
    }

    /// A copy of where the SQE slots are, to keep in registers while SQEs are written.
    #[inline]
    pub(crate) fn slots(&self) -> SqeSlots {
        SqeSlots {
            sqes: self.sqes,
            mask: self.mask,
            slot_shift: 6 + self.sqe_shift,
        }
    }

    /// Points every SQ index-array slot at the SQE of the same number, once at setup, so that
    /// SQE `i & mask` is always the one submitted at position `i` (no per-op array write).
    pub(crate) fn init_identity_array(&self) {
        if self.array.is_null() {
            return;
        }
        for i in 0..self.entries {
            // SAFETY: `i < entries`, inside the array. Written before the ring is used, so the
            // kernel reads it only after our first `Release` store of the tail.
            unsafe { self.array.add(i as usize).write(i) };
        }
    }

    /// The simulated kernel's view: which SQE the array slot for `index` names.
    #[inline]
    #[cfg(any(test, loom, feature = "test-util"))]
    pub(crate) fn array_entry(&self, index: u32) -> u32 {
        if self.array.is_null() {
            index & self.mask
        } else {
            // SAFETY: `index & mask < entries`, inside the array.
            unsafe { self.array.add((index & self.mask) as usize).read() }
        }
    }

    /// The simulated kernel's read: a copy of the SQE in slot number `slot` (as named by the SQ
    /// array, not a free-running index), or `None` when `slot` is out of range.
    ///
    /// # Safety
    ///
    /// The slot must hold a published SQE: its position is between the SQ head and a tail read
    /// with `Acquire`, so the ring wrote it before its `Release` store of that tail and will not
    /// write it again before the kernel's `Release` store of a head past it.
    #[inline]
    #[cfg(any(test, loom, feature = "test-util"))]
    pub(crate) unsafe fn read_sqe_at_slot(&self, slot: u32) -> Option<io_uring_sqe> {
        if slot >= self.entries {
            return None;
        }
        // SAFETY: `slot < entries`, inside the SQE array.
        let cell = unsafe { self.sqes.add((slot << self.sqe_shift) as usize) };
        #[cfg(not(loom))]
        // SAFETY: in bounds and initialised (zeroed at allocation); no concurrent write by the
        // caller's contract.
        return Some(unsafe { cell.read() });
        #[cfg(loom)]
        // SAFETY: as above; loom checks the read happens after the slot's last write.
        Some(unsafe { (*cell).with(|p| p.read()) })
    }
}

#[cfg(not(loom))]
impl RawSq {
    /// Whether the ring has an SQ index array (no `IORING_SETUP_NO_SQARRAY`).
    pub(crate) fn has_array(&self) -> bool {
        !self.array.is_null()
    }

    /// After a resize: copies the SQEs at the free-running positions `head..tail` (whole
    /// slots: 128 bytes with `SQE128`) from `old`, the ring's previous memory, into the same
    /// positions of this one.
    ///
    /// The kernel copies them itself, but until upstream commit 45cd95763e19 ("io_uring/register:
    /// fix ring resizing with mixed/large SQEs/CQEs", 2026, taken by the stable kernels) it
    /// copied 64 bytes from and to the wrong places for `SQE128` rings: copying again makes
    /// every kernel's result right (and rewrites the same bytes on fixed kernels).
    ///
    /// # Safety
    ///
    /// `old` describes the ring's previous memory, still mapped, that the kernel no longer
    /// uses; nobody else reads or writes the slots `head..tail` of either now (the kernel
    /// consumes SQEs of this one only when entered, with no SQPOLL thread, and the caller holds
    /// the submission queue); `old` has the same slot size; `tail - head` is at most both
    /// rings' sizes (the kernel refuses a resize that would not hold them).
    pub(crate) unsafe fn copy_sqes_from(&self, old: &RawSq, head: u32, tail: u32) {
        debug_assert_eq!(self.sqe_shift, old.sqe_shift);
        let units = 1usize << self.sqe_shift;
        let (new_slots, old_slots) = (self.slots(), old.slots());
        let mut i = head;
        while i != tail {
            // SAFETY: both slots are `units` SQE units inside their arrays (see
            // `SqeSlots::sqe`), in different mappings, touched by no one else (the caller's
            // contract).
            unsafe {
                std::ptr::copy_nonoverlapping(old_slots.sqe(i), new_slots.sqe(i), units);
            }
            i = i.wrapping_add(1);
        }
    }
}

#[cfg(not(loom))]
impl RawCq {
    /// After a resize: copies the CQEs at the free-running positions `head..tail` (whole
    /// slots: 32 bytes with `CQE32`) from `old`, the ring's previous memory, into the same
    /// positions of this one, for the reason given on [`RawSq::copy_sqes_from`] (the kernel's
    /// own copy was wrong for `CQE32` rings).
    ///
    /// # Safety
    ///
    /// `old` describes the ring's previous memory, still mapped, that the kernel no longer
    /// uses; `head..tail` are the positions the kernel copied (its CQ head and tail when it
    /// swapped the rings): this ring's kernel posts new CQEs only at and past `tail` and never
    /// reads CQEs, and the caller holds the completion queue; `old` has the same slot size;
    /// `tail - head` is at most both rings' sizes.
    pub(crate) unsafe fn copy_cqes_from(&self, old: &RawCq, head: u32, tail: u32) {
        debug_assert_eq!(self.cqe_shift, old.cqe_shift);
        let units = 1usize << self.cqe_shift;
        let (new_slots, old_slots) = (self.slots(), old.slots());
        let mut i = head;
        while i != tail {
            // SAFETY: both slots are `units` CQE units inside their arrays (see
            // `CqeSlots::cqe_slot`), in different mappings, touched by no one else (the
            // caller's contract).
            unsafe {
                std::ptr::copy_nonoverlapping(old_slots.cqe_slot(i), new_slots.cqe_slot(i), units);
            }
            i = i.wrapping_add(1);
        }
    }
}

/// Where the SQE slots of a ring are: the SQE array, the index mask and the slot size.
///
/// A `Copy` of [`RawSq`]'s slot geometry. A [`crate::Reservation`] holds one as a local value,
/// so that writing SQE fields through the slot pointers cannot make the compiler reload the
/// geometry from the queue for every SQE (which it must do when the geometry is reached through
/// `&mut SubmissionQueue`, since a raw SQE pointer might alias it).
///
/// Invariant: `sqes` holds the ring's [`SqeSlot`]s (`(mask + 1) << (slot_shift - 6)` 64-byte
/// SQE units), live for as long as the [`RawSq`] it was copied from; `slot_shift` is 6 (64-byte
/// SQEs) or 7 (`SQE128`, never under loom).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqeSlots {
    sqes: *mut SqeSlot,
    mask: u32,
    /// log2 of the slot size in bytes.
    slot_shift: u32,
}

impl SqeSlots {
    /// The SQE slot for the free-running index `index`, for the submitting side to fill in
    /// before publishing it.
    ///
    /// Under loom this records a write of the slot by the calling thread now: loom checks that
    /// it happens after the kernel's last read of the slot (made visible by the `Acquire` load of
    /// the SQ head) and that the kernel's next read happens after it (the `Release` store of the
    /// SQ tail). The caller must then write only between this call and that store.
    #[inline]
    pub(crate) fn sqe(&self, index: u32) -> *mut io_uring_sqe {
        #[cfg(not(loom))]
        {
            let offset = ((index & self.mask) as usize) << self.slot_shift;
            // SAFETY: `index & mask` is a slot number below `entries`, and each slot is
            // `1 << slot_shift` bytes, so the offset is inside the SQE array (type invariant).
            unsafe { self.sqes.byte_add(offset) }
        }
        #[cfg(loom)]
        // SAFETY: `index & mask < entries` (one cell per slot under loom): a live slot cell by
        // the type invariant; the pointer handed out is the cell's own data pointer, and the
        // access is recorded by `with_mut`.
        unsafe {
            (*self.sqes.add((index & self.mask) as usize)).with_mut(|p| p)
        }
    }

    /// Whether slots are 128 bytes (`IORING_SETUP_SQE128`).
    #[inline]
    pub(crate) fn is_sqe128(&self) -> bool {
        self.slot_shift == 7
    }

    /// The 80-byte command area of a 128-byte SQE (its bytes 48..128), or `None` for 64-byte
    /// SQEs.
    #[inline]
    pub(crate) fn big_cmd(&self, index: u32) -> Option<*mut [u8; 80]> {
        self.is_sqe128().then(|| {
            // SAFETY: with SQE128 the slot is 128 bytes; bytes 48..128 are inside it.
            unsafe { self.sqe(index).byte_add(48).cast::<[u8; 80]>() }
        })
    }

    /// Zeroes the whole SQE slot for the free-running index `index`: 64 bytes, or 128 with
    /// `IORING_SETUP_SQE128` (whose second half holds the command area).
    ///
    /// # Safety
    ///
    /// The slot must be free: not published to the kernel, or already consumed by it (its head
    /// read with `Acquire` is past `index`), and not borrowed elsewhere.
    #[inline]
    pub(crate) unsafe fn clear(&self, index: u32) {
        let p = self.sqe(index);
        // SAFETY: the slot is one or (with SQE128) two SQE units inside the array (see `sqe`),
        // and the caller guarantees nobody else reads or writes it now; all-zero is a valid
        // `io_uring_sqe` (plain integers and unions of them).
        unsafe {
            p.write(std::mem::zeroed());
            if self.is_sqe128() {
                p.add(1).write(std::mem::zeroed());
            }
        }
    }
}

impl RawCq {
    /// The SQ ring's flags (`IORING_SQ_CQ_OVERFLOW`, `IORING_SQ_TASKRUN`): written by the kernel.
    #[inline]
    pub(crate) fn sq_flags(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned and live by the type's invariant.
        unsafe { &*self.sq_flags }
    }

    /// The CQ head: written by us after reading CQEs.
    #[inline]
    pub(crate) fn head(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned and live by the type's invariant.
        unsafe { &*self.head }
    }

    /// The CQ tail: written by the kernel after posting CQEs.
    #[inline]
    pub(crate) fn tail(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned and live by the type's invariant.
        unsafe { &*self.tail }
    }

    /// The CQ flags (`IORING_CQ_EVENTFD_DISABLED`): written by us, read by the kernel.
    #[inline]
    pub(crate) fn flags(&self) -> Option<&AtomicU32> {
        // SAFETY: null or valid, aligned and live by the type's invariant.
        unsafe { self.flags.as_ref() }
    }

    /// Count of completions the kernel could not post (no `IORING_FEAT_NODROP` behaviour).
    #[inline]
    pub(crate) fn overflow(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned and live by the type's invariant.
        unsafe { &*self.overflow }
    }

    /// The CQE slot (the first of two on a CQE32 ring) for the free-running index `index`.
    #[inline]
    #[cfg(any(test, loom, feature = "test-util"))]
    fn cqe_slot(&self, index: u32) -> *mut CqeSlot {
        self.slots().cqe_slot(index)
    }

    /// A copy of where the CQE slots are, to keep in registers while CQEs are read.
    #[inline]
    pub(crate) fn slots(&self) -> CqeSlots {
        CqeSlots {
            cqes: self.cqes,
            mask: self.mask,
            cqe_shift: self.cqe_shift,
        }
    }

    /// The simulated kernel's post: writes the CQE (and, on a CQE32 ring, its 16 extra bytes) at
    /// the free-running index `index`.
    ///
    /// # Safety
    ///
    /// The slot must be free: `index` is before the CQ head read with `Acquire` plus `entries`,
    /// so the ring has read its previous use, and only the (one) kernel writes CQE slots.
    #[inline]
    #[cfg(any(test, loom, feature = "test-util"))]
    pub(crate) unsafe fn write_cqe(&self, index: u32, cqe: io_uring_cqe, extra: [u64; 2]) {
        let cell = self.cqe_slot(index);
        #[cfg(not(loom))]
        // SAFETY: in bounds; the slot is not read concurrently by the caller's contract.
        unsafe {
            cell.write(cqe);
            if self.cqe_shift == 1 {
                cell.add(1).cast::<[u64; 2]>().write(extra);
            }
        }
        #[cfg(loom)]
        // SAFETY: as above (no CQE32 under loom); loom checks the write happens after the read
        // of the slot's previous use.
        unsafe {
            let _ = extra;
            (*cell).with_mut(|p| p.write(cqe));
        }
    }
}

/// Where the CQE slots of a ring are: the CQE array, the index mask and the slot size.
///
/// A `Copy` of [`RawCq`]'s slot geometry, the completion-side twin of [`SqeSlots`]. A
/// [`crate::Batch`] holds one as a local value, so that a caller's stores while it iterates
/// (into its own bookkeeping, through pointers the compiler cannot tell apart from the queue)
/// do not make it reload the geometry from the queue for every CQE.
///
/// Invariant: `cqes` holds the ring's [`CqeSlot`]s (`(mask + 1) << cqe_shift` 16-byte CQE
/// units), live for as long as the [`RawCq`] it was copied from; `cqe_shift` is 0 or 1
/// (`CQE32`, never under loom).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CqeSlots {
    cqes: *mut CqeSlot,
    mask: u32,
    /// 0 for 16-byte CQEs, 1 for `IORING_SETUP_CQE32`.
    cqe_shift: u32,
}

// SAFETY: a copy of part of a `RawCq`, which is `Send` and `Sync` (see there); it only reads
// CQE slots, on the side that owns them at the time. (Keeps a `crate::Batch` `Send`.)
unsafe impl Send for CqeSlots {}
// SAFETY: as above.
unsafe impl Sync for CqeSlots {}

impl CqeSlots {
    /// The CQE slot (the first of two on a CQE32 ring) for the free-running index `index`.
    #[inline]
    fn cqe_slot(&self, index: u32) -> *mut CqeSlot {
        #[cfg(not(loom))]
        {
            // Slots are 16 bytes, or 32 with CQE32: one shift by the byte size, not two.
            let offset = ((index & self.mask) as usize) << (4 + self.cqe_shift);
            // SAFETY: `index & mask < entries` and each slot is `16 << cqe_shift` bytes, so the
            // offset is inside the CQE array by the type's invariant.
            unsafe { self.cqes.byte_add(offset) }
        }
        #[cfg(loom)]
        {
            let slot = ((index & self.mask) << self.cqe_shift) as usize;
            // SAFETY: `slot < entries << cqe_shift`, inside the CQE array by the type's invariant.
            unsafe { self.cqes.add(slot) }
        }
    }

    /// Copies out the CQE at the free-running index `index`, and the 16 extra bytes of a 32-byte
    /// CQE (`IORING_SETUP_CQE32`; zeros otherwise).
    ///
    /// # Safety
    ///
    /// `index` must be at or past our head and before a CQ tail read with `Acquire`: the kernel
    /// wrote the slot before its `Release` store of that tail and will not write it again before
    /// our `Release` store of a head past it.
    #[inline]
    pub(crate) unsafe fn read_cqe(&self, index: u32) -> (io_uring_cqe, [u64; 2]) {
        let cell = self.cqe_slot(index);
        #[cfg(not(loom))]
        // SAFETY: in bounds and initialised; not written concurrently by the caller's contract.
        // With CQE32 every slot is two 16-byte units and the second is inside the array too.
        unsafe {
            let extra = if self.cqe_shift == 1 {
                cell.add(1).cast::<[u64; 2]>().read()
            } else {
                [0; 2]
            };
            (cell.read(), extra)
        }
        #[cfg(loom)]
        // SAFETY: as above (no CQE32 under loom); loom checks the read happens after the write.
        unsafe {
            ((*cell).with(|p| p.read()), [0; 2])
        }
    }
}

#[cfg(all(test, not(loom)))]
#[path = "raw_tests.rs"]
mod tests;
