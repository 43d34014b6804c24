//! Provided-buffer rings: the ring memory the kernel takes buffers from
//! (`struct io_uring_buf_ring`), and its registration (`IORING_REGISTER_PBUF_RING`, Linux 5.19).
//!
//! A provided-buffer ring is a power-of-two array of `struct io_uring_buf` entries (address,
//! length, buffer id) shared with the kernel, plus a 16-bit tail that only we write. An op with
//! `IOSQE_BUFFER_SELECT` and the ring's group id takes the entry at the kernel's private head
//! when it needs a buffer, writes into that buffer, and reports the buffer id in its completion
//! (`IORING_CQE_F_BUFFER`). [`BufRingMem`] owns the entries and is the only code that does
//! pointer arithmetic on them; what the entries point at, and when a buffer may be pushed again,
//! is the caller's business (in `uring-ops`, its `BufRing`), which is why pushing is `unsafe`.
//!
//! # Memory ordering
//!
//! | word | written by | our access |
//! |---|---|---|
//! | entries at positions `>= tail` | us | plain writes, before the tail store that publishes them |
//! | tail | us | `Release` store after the entry writes; pairs with the kernel's `smp_load_acquire(&br->tail)` in buffer selection |
//! | entries in `head..tail` | the kernel, with `IOU_PBUF_RING_INC` (it advances `addr`, shrinks `len`) | never read or written by us |

use crate::error::{Error, Result};
#[cfg(not(loom))]
use crate::register::Registrar;
use std::alloc::{self, Layout};
use std::fmt;
use std::mem::{offset_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use uring_sys as sys;

/// Most entries a provided-buffer ring may have: the kernel's head and tail are 16 bits and a
/// full ring must differ from an empty one.
pub const MAX_BUF_RING_ENTRIES: u32 = 1 << 15;

bitflags::bitflags! {
    /// Flags of a provided-buffer ring registration (`IOU_PBUF_RING_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct BufRingFlags: u16 {
        /// Incremental consumption (`IOU_PBUF_RING_INC`, Linux 6.12): the kernel uses a buffer
        /// in pieces, one per completion, at increasing offsets, and flags every completion
        /// that leaves part of it in the ring with `IORING_CQE_F_BUF_MORE`.
        const INC = sys::IOU_PBUF_RING_INC as u16;
    }
}

/// The entries of a provided-buffer ring, in page-aligned memory that this value owns.
///
/// Entries are written with [`BufRingMem::push`] (not yet visible to the kernel) and made
/// visible together with [`BufRingMem::publish`]. Dropping it frees the memory: the caller of
/// [`Registrar::register_pbuf_ring`] keeps it alive until the group is unregistered.
pub struct BufRingMem {
    /// `entries` entries of 16 bytes; the tail is the last two bytes of entry 0.
    ptr: NonNull<sys::io_uring_buf>,
    layout: Layout,
    entries: u32,
    /// Our next position (free-running, like the kernel's head). Positions from the published
    /// tail up to here are written and not yet published.
    tail: u16,
    /// The tail last published.
    published: u16,
}

// SAFETY: the memory is a heap block owned by this value; the kernel's accesses are those of
// the registration, which does not depend on the thread.
unsafe impl Send for BufRingMem {}
// SAFETY: `&self` methods only read fields of this struct, never the shared memory.
unsafe impl Sync for BufRingMem {}

/// The tail: the `u16` at byte 14, overlapping entry 0's `resv` (`struct io_uring_buf_ring`).
const TAIL_OFFSET: usize = 14;
const _: () = {
    assert!(size_of::<sys::io_uring_buf>() == 16);
    assert!(offset_of!(sys::io_uring_buf, resv) == TAIL_OFFSET);
    assert!(offset_of!(sys::io_uring_buf_ring__bindgen_ty_1__bindgen_ty_1, tail) == TAIL_OFFSET);
};

impl BufRingMem {
    /// Zeroed memory for `entries` entries (a power of two in `1..=`[`MAX_BUF_RING_ENTRIES`]),
    /// page-aligned as the kernel requires.
    ///
    /// # Errors
    ///
    /// [`Error::BufRingEntries`] for any other count.
    pub fn new(entries: u32) -> Result<Self> {
        if !entries.is_power_of_two() || entries > MAX_BUF_RING_ENTRIES {
            return Err(Error::BufRingEntries(entries));
        }
        // SAFETY: sysconf has no memory preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096);
        let size = entries as usize * size_of::<sys::io_uring_buf>();
        let layout = Layout::from_size_align(size.max(page), page)
            .map_err(|_| Error::BufRingEntries(entries))?;
        // SAFETY: the layout's size is at least one page.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr.cast()) else {
            alloc::handle_alloc_error(layout);
        };
        Ok(BufRingMem {
            ptr,
            layout,
            entries,
            tail: 0,
            published: 0,
        })
    }

    /// Number of entries.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// The address the kernel is given at registration.
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// The position the next [`BufRingMem::push`] writes (free-running, like the kernel's head).
    pub fn position(&self) -> u16 {
        self.tail
    }

    /// Entries pushed and not yet published.
    pub fn unpublished(&self) -> u16 {
        self.tail.wrapping_sub(self.published)
    }

    /// Writes an entry at the next position: buffer `bid`, `len` bytes at `addr`. The kernel
    /// sees it only after [`BufRingMem::publish`].
    ///
    /// # Safety
    ///
    /// - Once published, the kernel may write up to `len` bytes at `addr` at any time until it
    ///   reports that it consumed the buffer (a completion naming `bid`; with
    ///   [`BufRingFlags::INC`], the last one without `IORING_CQE_F_BUF_MORE`) or the group is
    ///   unregistered: that memory must stay valid for writes, and not be accessed by Rust
    ///   code, for that long.
    /// - The position written must not hold an entry the kernel may still read: at most
    ///   [`BufRingMem::entries`] buffers may be in the ring (published and not consumed, plus
    ///   pushed and not published) at once.
    pub unsafe fn push(&mut self, addr: u64, len: u32, bid: u16) {
        let mask = (self.entries - 1) as u16;
        let i = usize::from(self.tail & mask);
        // SAFETY: `i < entries`, inside the allocation. The three fields are written one by one
        // so that entry 0's `resv` bytes, which are the tail, are never written here; the
        // kernel does not read this position (the caller's second promise), so nothing races.
        unsafe {
            let e = self.ptr.as_ptr().add(i);
            std::ptr::addr_of_mut!((*e).addr).write(addr);
            std::ptr::addr_of_mut!((*e).len).write(len);
            std::ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every pushed entry visible to the kernel.
    pub fn publish(&mut self) {
        if self.tail == self.published {
            return;
        }
        // SAFETY: the tail is a 2-aligned `u16` inside the allocation (byte 14 of 16-aligned
        // memory), accessed only atomically: by this store and by the kernel's loads.
        let tail =
            unsafe { AtomicU16::from_ptr(self.ptr.as_ptr().cast::<u8>().add(TAIL_OFFSET).cast()) };
        // Release: publishes the entry writes of `push` before the kernel sees the new tail
        // (its `smp_load_acquire(&br->tail)` when it selects a buffer).
        tail.store(self.tail, Ordering::Release);
        self.published = self.tail;
    }

    /// The entry at position `pos` (for tests): address, length and buffer id.
    #[cfg(test)]
    fn entry(&self, pos: u16) -> (u64, u32, u16) {
        let i = usize::from(pos & (self.entries - 1) as u16);
        // SAFETY: `i < entries`; only our own writes happen in tests (no kernel).
        unsafe {
            let e = self.ptr.as_ptr().add(i);
            (
                std::ptr::addr_of!((*e).addr).read(),
                std::ptr::addr_of!((*e).len).read(),
                std::ptr::addr_of!((*e).bid).read(),
            )
        }
    }
}

impl Drop for BufRingMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout. The registration's contract keeps this
        // value alive while the kernel may use it.
        unsafe { alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) };
    }
}

impl fmt::Debug for BufRingMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRingMem")
            .field("entries", &self.entries)
            .field("tail", &self.tail)
            .field("published", &self.published)
            .finish()
    }
}

#[cfg(not(loom))]
impl Registrar<'_> {
    /// `IORING_REGISTER_PBUF_RING` (Linux 5.19; [`BufRingFlags::INC`] 6.12): registers `ring`
    /// as buffer group `bgid`, from which ops with `IOSQE_BUFFER_SELECT` and that group take
    /// buffers. Fails with `EEXIST` if the group exists, `EINVAL` for flags this kernel lacks.
    ///
    /// # Safety
    ///
    /// `ring` must stay alive (not dropped, its memory not reused) until the group is
    /// unregistered ([`Registrar::unregister_pbuf_ring`]) or the ring is closed, and its
    /// entries must keep the promises of [`BufRingMem::push`]. Whoever reads the buffer ids of
    /// this group's completions must know this ring's buffers: an op that selects from group
    /// `bgid` while another ring of buffers is registered under that id (on this or another
    /// io_uring) is given one of those buffers instead.
    pub unsafe fn register_pbuf_ring(
        &self,
        ring: &BufRingMem,
        bgid: u16,
        flags: BufRingFlags,
    ) -> Result<()> {
        let mut reg = sys::io_uring_buf_reg {
            ring_addr: ring.addr(),
            ring_entries: ring.entries(),
            bgid,
            flags: flags.bits(),
            ..Default::default()
        };
        // SAFETY: `reg` is a live `io_uring_buf_reg` (reserved fields zero), one entry as
        // `nr_args` says; the kernel only reads it. The memory it names is the caller's promise.
        unsafe {
            self.raw(
                "IORING_REGISTER_PBUF_RING",
                sys::IORING_REGISTER_PBUF_RING,
                (&mut reg as *mut sys::io_uring_buf_reg).cast(),
                1,
            )
        }?;
        Ok(())
    }

    /// `IORING_UNREGISTER_PBUF_RING` (Linux 5.19): removes buffer group `bgid`'s ring; the kernel
    /// no longer selects from it (`ENOENT` if there is no such group, `EINVAL` if it is not a
    /// ring). Buffers already selected by requests in flight stay theirs: the memory must
    /// outlive those requests too.
    pub fn unregister_pbuf_ring(&self, bgid: u16) -> Result<()> {
        let mut reg = sys::io_uring_buf_reg {
            bgid,
            ..Default::default()
        };
        // SAFETY: `reg` is a live `io_uring_buf_reg`, one entry; the kernel only reads it.
        unsafe {
            self.raw(
                "IORING_UNREGISTER_PBUF_RING",
                sys::IORING_UNREGISTER_PBUF_RING,
                (&mut reg as *mut sys::io_uring_buf_reg).cast(),
                1,
            )
        }?;
        Ok(())
    }

    /// `IORING_REGISTER_PBUF_STATUS` (Linux 6.8): the kernel's head of group `bgid`'s ring, the
    /// position of the next entry it will take (free-running, 16 bits).
    pub fn pbuf_status(&self, bgid: u16) -> Result<u16> {
        let mut st = sys::io_uring_buf_status {
            buf_group: u32::from(bgid),
            ..Default::default()
        };
        // SAFETY: `st` is a live, exclusively borrowed `io_uring_buf_status`, one entry: the
        // kernel reads the group and writes the head.
        unsafe {
            self.raw(
                "IORING_REGISTER_PBUF_STATUS",
                sys::IORING_REGISTER_PBUF_STATUS,
                (&mut st as *mut sys::io_uring_buf_status).cast(),
                1,
            )
        }?;
        Ok(st.head as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_must_be_a_power_of_two_up_to_32768() {
        for bad in [0, 3, 65536, 1 << 16, u32::MAX] {
            assert!(
                matches!(BufRingMem::new(bad), Err(Error::BufRingEntries(n)) if n == bad),
                "{bad}"
            );
        }
        let r = BufRingMem::new(MAX_BUF_RING_ENTRIES).unwrap();
        assert_eq!(r.entries(), 32768);
        assert_eq!(BufRingMem::new(1).unwrap().entries(), 1);
        let e = Error::BufRingEntries(3);
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        assert!(e.to_string().contains("power of two"), "{e}");
    }

    #[test]
    fn push_writes_entries_and_publish_the_tail() {
        let mut r = BufRingMem::new(4).unwrap();
        assert_eq!(r.addr() % 4096, 0, "page-aligned");
        let tail = |r: &BufRingMem| {
            // SAFETY: reads the tail word of the live allocation; no kernel in this test.
            unsafe { *r.ptr.as_ptr().cast::<u8>().add(TAIL_OFFSET).cast::<u16>() }
        };
        // SAFETY: no kernel reads these entries; the addresses are never dereferenced.
        unsafe {
            r.push(0x1000, 64, 0);
            r.push(0x2000, 64, 1);
        }
        assert_eq!((r.unpublished(), tail(&r)), (2, 0));
        assert_eq!(r.entry(0), (0x1000, 64, 0));
        r.publish();
        assert_eq!((r.unpublished(), tail(&r)), (0, 2));
        // Wrapping around: position 4 is index 0 again, and its writes leave the tail alone.
        // SAFETY: as above.
        unsafe {
            r.push(0x3000, 8, 2);
            r.push(0x4000, 8, 3);
            r.push(0x5000, 8, 4);
        }
        r.publish();
        assert_eq!(tail(&r), 5);
        assert_eq!(r.entry(4), (0x5000, 8, 4));
        assert_eq!(r.entry(0), (0x5000, 8, 4));
        assert_eq!(r.entry(1), (0x2000, 64, 1));
    }
}
