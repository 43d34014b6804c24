//! The one module that does pointer arithmetic on ring memory.
//!
//! [`RawSq`] and [`RawCq`] hold pointers into the shared ring memory, computed once from the
//! offsets the kernel (or the simulated kernel) reported. Every other module reaches head/tail
//! words, the SQ index array, SQE slots and CQE slots through the accessors here.
//!
//! Ring memory may be the kernel's mapping or a heap block serviced by [`crate::sim`]; the
//! accessors do not care.

use crate::sync::AtomicU32;
use uring_sys::{io_uring_cqe, io_uring_params, io_uring_sqe};

/// Pointers into the submission ring.
///
/// Invariant (from [`RawSq::new`]'s contract): every pointer is valid for the life of the memory
/// owner that made it, which outlives this value; `head`, `tail`, `flags`, `dropped` are 4-aligned
/// `u32` words shared with the kernel; `sqes` holds `entries << sqe_shift` 64-byte slots; `array`
/// is null (`IORING_SETUP_NO_SQARRAY`) or holds `entries` `u32` slots.
#[derive(Debug)]
pub(crate) struct RawSq {
    head: *const AtomicU32,
    tail: *const AtomicU32,
    flags: *const AtomicU32,
    dropped: *const AtomicU32,
    array: *mut u32,
    sqes: *mut io_uring_sqe,
    /// `entries - 1`; `entries` is a power of two.
    pub(crate) mask: u32,
    /// Number of SQ slots.
    pub(crate) entries: u32,
    /// 0 for 64-byte SQEs, 1 for `IORING_SETUP_SQE128`.
    pub(crate) sqe_shift: u32,
}

/// Pointers into the completion ring. Same invariant as [`RawSq`]; `cqes` holds
/// `entries << cqe_shift` 16-byte slots; `flags` may be null (kernels before 5.8).
#[derive(Debug)]
pub(crate) struct RawCq {
    /// The SQ ring's flags word, read on the completion side for `CQ_OVERFLOW` / `TASKRUN`.
    sq_flags: *const AtomicU32,
    head: *const AtomicU32,
    tail: *const AtomicU32,
    flags: *const AtomicU32,
    overflow: *const AtomicU32,
    cqes: *mut io_uring_cqe,
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
    /// Every pointer must stay valid while the value is used; `sqes` holds `entries` slots and
    /// `array` is null or holds `entries` slots.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn from_parts(
        head: *const AtomicU32,
        tail: *const AtomicU32,
        flags: *const AtomicU32,
        dropped: *const AtomicU32,
        array: *mut u32,
        sqes: *mut io_uring_sqe,
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
        cqes: *mut io_uring_cqe,
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
    pub(crate) fn array_entry(&self, index: u32) -> u32 {
        if self.array.is_null() {
            index & self.mask
        } else {
            // SAFETY: `index & mask < entries`, inside the array.
            unsafe { self.array.add((index & self.mask) as usize).read() }
        }
    }

    /// The SQE at slot number `slot` (not a free-running index), for the simulated kernel.
    #[inline]
    pub(crate) fn sqe_at_slot(&self, slot: u32) -> Option<*const io_uring_sqe> {
        (slot < self.entries)
            // SAFETY: `slot < entries`, inside the SQE array.
            .then(|| unsafe { self.sqes.add((slot << self.sqe_shift) as usize) } as *const _)
    }
}

/// Where the SQE slots of a ring are: the SQE array, the index mask and the slot size.
///
/// A `Copy` of [`RawSq`]'s slot geometry. A [`crate::Reservation`] holds one as a local value,
/// so that writing SQE fields through the slot pointers cannot make the compiler reload the
/// geometry from the queue for every SQE (which it must do when the geometry is reached through
/// `&mut SubmissionQueue`, since a raw SQE pointer might alias it).
///
/// Invariant: `sqes` holds `(mask + 1) << (slot_shift - 6)` 64-byte SQE units, live for as long
/// as the [`RawSq`] it was copied from; `slot_shift` is 6 (64-byte SQEs) or 7 (`SQE128`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqeSlots {
    sqes: *mut io_uring_sqe,
    mask: u32,
    /// log2 of the slot size in bytes.
    slot_shift: u32,
}

impl SqeSlots {
    /// The SQE slot for the free-running index `index`.
    #[inline]
    pub(crate) fn sqe(&self, index: u32) -> *mut io_uring_sqe {
        let offset = ((index & self.mask) as usize) << self.slot_shift;
        // SAFETY: `index & mask` is a slot number below `entries`, and each slot is
        // `1 << slot_shift` bytes, so the offset is inside the SQE array (type invariant).
        unsafe { self.sqes.byte_add(offset) }
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

    /// The CQE slot for the free-running index `index`.
    #[inline]
    pub(crate) fn cqe(&self, index: u32) -> *mut io_uring_cqe {
        // Slots are 16 bytes, or 32 with CQE32: one shift by the byte size, not two.
        let offset = ((index & self.mask) as usize) << (4 + self.cqe_shift);
        // SAFETY: `index & mask < entries` and each slot is `16 << cqe_shift` bytes, so the
        // offset is inside the CQE array by the type's invariant.
        unsafe { self.cqes.byte_add(offset) }
    }

    /// The 16 extra bytes of a 32-byte CQE (`IORING_SETUP_CQE32`) at `index`, or `None`.
    #[inline]
    pub(crate) fn cqe_extra(&self, index: u32) -> Option<*mut [u64; 2]> {
        (self.cqe_shift == 1).then(|| {
            // SAFETY: with CQE32 every slot is two 16-byte units; the second is inside the array.
            unsafe { self.cqe(index).add(1).cast::<[u64; 2]>() }
        })
    }
}
