//! Registered wait arguments: a memory region shared with the kernel whose slots a wait names
//! instead of copying its arguments in (`IORING_REGISTER_MEM_REGION` with
//! `IORING_MEM_REGION_REG_WAIT_ARG`, and `IORING_ENTER_EXT_ARG_REG`).

use super::Registrar;
use crate::backend::mmap::Mmap;
use crate::backend::Kernel;
use crate::cqueue::CompletionQueue;
use crate::error::{Error, Result};
use std::fmt;
use std::mem::size_of;
use std::os::fd::AsFd;
use std::time::Duration;
use uring_sys as sys;

/// Slots of wait arguments registered with a ring ([`Registrar::register_wait_args`]), for
/// [`CompletionQueue::wait_with_args`]: a wait names a slot, and the kernel reads its
/// timeout and minimum wait time from this memory, shared with it, instead of copying an
/// argument in on every wait.
///
/// The slots are written with [`WaitArgs::set`] (which takes `&mut self`, so no wait reads a
/// slot while it changes) and start out empty: no timeout, no minimum wait.
pub struct WaitArgs {
    /// The region, mapped from the ring (its memory is the kernel's; the mapping keeps it
    /// alive for as long as this value, whatever happens to the ring).
    map: Mmap,
    /// Usable slots: the region holds one more, never used (see `register_wait_args`).
    slots: u32,
    /// [`Kernel::id`] of the ring it is registered with.
    ring: u64,
}

impl fmt::Debug for WaitArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitArgs")
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

// SAFETY: the mapping is plain memory shared with the kernel, written only through `&mut self`
// (`set`) and read by the kernel only during a wait, which borrows `&self`.
unsafe impl Send for WaitArgs {}
// SAFETY: as above: `&WaitArgs` allows no write.
unsafe impl Sync for WaitArgs {}

const SLOT: usize = size_of::<sys::io_uring_reg_wait>();

impl WaitArgs {
    /// How many slots there are (`0..len()`).
    pub fn len(&self) -> u32 {
        self.slots
    }

    /// Whether there are none (never: registration makes at least one).
    pub fn is_empty(&self) -> bool {
        self.slots == 0
    }

    fn slot(&self, index: u32) -> Result<*mut sys::io_uring_reg_wait> {
        if index >= self.slots {
            return Err(Error::Register {
                op: "IORING_ENTER_EXT_ARG_REG",
                why: "no such wait-argument slot (index past WaitArgs::len)",
            });
        }
        // SAFETY: `index < slots` and the mapping holds `slots + 1` slots of `SLOT` bytes, so
        // the offset is inside it; the mapping is page-aligned, so every slot is aligned.
        Ok(unsafe { self.map.ptr.as_ptr().add(index as usize * SLOT) }.cast())
    }

    /// Sets slot `index`: a wait naming it gives up after `timeout` (`None`: waits as long
    /// as it takes), and when `min_wait` is given (Linux 6.12, `IORING_FEAT_MIN_TIMEOUT`),
    /// returns after that long with whatever completions have arrived, once one has.
    ///
    /// # Errors
    ///
    /// [`Error::Register`] for an index past [`WaitArgs::len`].
    pub fn set(&mut self, index: u32, timeout: Option<Duration>, min_wait: Duration) -> Result<()> {
        let slot = self.slot(index)?;
        let mut w = sys::io_uring_reg_wait {
            min_wait_usec: min_wait.as_micros().min(u128::from(u32::MAX)) as u32,
            ..Default::default()
        };
        if let Some(t) = timeout {
            w.ts = sys::__kernel_timespec {
                tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: i64::from(t.subsec_nanos()),
            };
            w.flags = sys::IORING_REG_WAIT_TS;
        }
        // SAFETY: `slot` is an aligned slot inside the mapping (checked above), which the
        // kernel reads only during a wait, and no wait runs now: waits borrow `&self`.
        unsafe { slot.write_volatile(w) };
        Ok(())
    }
}

impl Registrar<'_> {
    /// `IORING_REGISTER_MEM_REGION` with `IORING_MEM_REGION_REG_WAIT_ARG` (Linux 6.13): a
    /// region of at least `slots` wait-argument slots, allocated by the kernel and mapped
    /// here, for [`CompletionQueue::wait_with_args`]. Only on a ring built with
    /// [`crate::Builder::disabled`] and not yet enabled (the kernel wants no waiter while it
    /// sets the region up), once per ring; the region lives as long as the ring.
    ///
    /// (The region is the only use the kernel has for `IORING_REGISTER_MEM_REGION` so far, so
    /// this is its one entry point.)
    ///
    /// # Errors
    ///
    /// [`Error::Register`] for 0 slots or more than a region holds; from the kernel:
    /// `EINVAL` on an enabled ring (and before Linux 6.13), `EBUSY` when a region is
    /// registered already, `ENOMEM`; `mmap`'s errors mapping it.
    pub fn register_wait_args(&self, slots: u32) -> Result<WaitArgs> {
        const NAME: &str = "IORING_REGISTER_MEM_REGION";
        const PAGE: usize = 4096;
        // One slot more than asked: Linux 6.13 refuses the region's last slot (its bounds
        // check is off by one), so it is never used.
        let bytes = (slots as usize)
            .checked_add(1)
            .and_then(|n| n.checked_mul(SLOT))
            .filter(|_| slots > 0 && slots <= 1 << 20)
            .ok_or(Error::Register {
                op: NAME,
                why: "wait-argument slots must be 1 to 1048576",
            })?;
        let size = bytes.div_ceil(PAGE) * PAGE;
        let mut desc = sys::io_uring_region_desc {
            size: size as u64,
            ..Default::default()
        };
        let mut reg = sys::io_uring_mem_region_reg {
            region_uptr: (&mut desc as *mut sys::io_uring_region_desc) as u64,
            flags: u64::from(sys::IORING_MEM_REGION_REG_WAIT_ARG),
            ..Default::default()
        };
        // SAFETY: `reg` and `desc` are live, exclusively borrowed, reserved fields zeroed;
        // `desc` asks for kernel memory (no user address, type 0). The kernel reads both and
        // writes the region's mmap offset back into `desc`.
        unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_MEM_REGION,
                (&mut reg as *mut sys::io_uring_mem_region_reg).cast(),
                1,
            )
        }?;
        let map = Mmap::new(self.kernel.as_fd(), desc.mmap_offset, size)?;
        Ok(WaitArgs {
            slots: (map.len() / SLOT - 1) as u32,
            map,
            ring: self.kernel.id(),
        })
    }
}

impl CompletionQueue<Kernel> {
    /// As [`CompletionQueue::wait`], with the timeout and minimum wait of slot `index` of
    /// `args` (`IORING_ENTER_EXT_ARG_REG`, Linux 6.13): the kernel reads them from the
    /// registered region instead of copying an argument in. The timeout starts again at a
    /// wait resumed after a signal.
    ///
    /// # Errors
    ///
    /// [`Error::Register`] for `args` of another ring or an index past [`WaitArgs::len`];
    /// [`Error::Timeout`] when the slot's timeout passes first; otherwise as for
    /// [`CompletionQueue::wait`].
    pub fn wait_with_args(&mut self, want: u32, args: &WaitArgs, index: u32) -> Result<u32> {
        if args.ring != self.backend().id() {
            return Err(Error::Register {
                op: "IORING_ENTER_EXT_ARG_REG",
                why: "these wait arguments are registered with another ring",
            });
        }
        args.slot(index)?;
        let offset = index as usize * SLOT;
        self.wait_entering(want, |kernel, min| {
            let flags = sys::IORING_ENTER_GETEVENTS
                | sys::IORING_ENTER_EXT_ARG
                | sys::IORING_ENTER_EXT_ARG_REG;
            // SAFETY: with EXT_ARG_REG the argument is an offset into the ring's registered
            // region, which the kernel checks against the region's size; no memory of ours is
            // named.
            unsafe { kernel.enter_raw(0, min, flags, offset as *const libc::c_void, SLOT) }
        })
    }
}
