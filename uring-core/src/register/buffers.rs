//! Registered (fixed) buffers.

use super::{count, Registrar};
use crate::error::Result;
use uring_sys as sys;

impl Registrar<'_> {
    /// `IORING_REGISTER_BUFFERS` (Linux 5.1): registers `bufs` as the ring's fixed buffers,
    /// index `i` being `bufs[i]`, for `READ_FIXED`/`WRITE_FIXED` and other ops that take a
    /// `buf_index`. The kernel pins the pages; each buffer is at most 1 GiB of anonymous (or
    /// huge-page) memory. Fails with `EBUSY` if buffers are already registered.
    ///
    /// # Safety
    ///
    /// Each `iovec` must describe memory valid for reads and writes that stays allocated,
    /// unmoved and not reused for anything else until its slot is replaced
    /// ([`Registrar::update_buffers`]), the buffers are unregistered, or the ring is closed,
    /// and that Rust code does not access while an op on it is in flight: the kernel writes
    /// into the pinned pages whenever a fixed op says so, whatever Rust believes about them.
    pub unsafe fn register_buffers(&self, bufs: &[libc::iovec]) -> Result<()> {
        const NAME: &str = "IORING_REGISTER_BUFFERS";
        let n = count(NAME, bufs.len())?;
        // SAFETY: `bufs` holds `n` iovecs, which the kernel only reads; what they point at is
        // the caller's promise (above).
        unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_BUFFERS,
                bufs.as_ptr().cast_mut().cast(),
                n,
            )
        }?;
        Ok(())
    }

    /// `IORING_REGISTER_BUFFERS2` with `IORING_RSRC_REGISTER_SPARSE` (Linux 5.19): a table of
    /// `n` empty buffer slots, to fill with [`Registrar::update_buffers`]. An op using an empty
    /// slot fails with `EFAULT`.
    pub fn register_buffers_sparse(&self, n: u32) -> Result<()> {
        self.register_sparse("IORING_REGISTER_BUFFERS2", sys::IORING_REGISTER_BUFFERS2, n)
    }

    /// A sparse table of `n` empty slots through `opcode` (`IORING_REGISTER_BUFFERS2` or
    /// `IORING_REGISTER_FILES2`), with `IORING_RSRC_REGISTER_SPARSE`.
    pub(super) fn register_sparse(&self, name: &'static str, opcode: u32, n: u32) -> Result<()> {
        let mut rr = sys::io_uring_rsrc_register {
            nr: n,
            flags: sys::IORING_RSRC_REGISTER_SPARSE,
            ..Default::default()
        };
        // SAFETY: `rr` is a live `io_uring_rsrc_register`, its size passed as `nr_args`; the
        // kernel only reads it, and with the sparse flag and `data == 0` reads nothing else.
        unsafe {
            self.raw(
                name,
                opcode,
                (&mut rr as *mut sys::io_uring_rsrc_register).cast(),
                size_of::<sys::io_uring_rsrc_register>() as u32,
            )
        }?;
        Ok(())
    }

    /// `IORING_REGISTER_BUFFERS_UPDATE` (Linux 5.13): replaces the fixed buffers at
    /// `offset..offset + bufs.len()`; an `iovec` with a null base and zero length empties its
    /// slot. A replaced buffer is released once no op in flight uses it.
    ///
    /// Returns how many slots were updated: fewer than `bufs.len()` if the kernel stopped at
    /// an error after updating some.
    ///
    /// # Safety
    ///
    /// As for [`Registrar::register_buffers`], for each non-empty `iovec`.
    pub unsafe fn update_buffers(&self, offset: u32, bufs: &[libc::iovec]) -> Result<u32> {
        const NAME: &str = "IORING_REGISTER_BUFFERS_UPDATE";
        let mut up = sys::io_uring_rsrc_update2 {
            offset,
            data: bufs.as_ptr() as u64,
            nr: count(NAME, bufs.len())?,
            ..Default::default()
        };
        // SAFETY: `up` is a live `io_uring_rsrc_update2`, its size passed as `nr_args`, pointing
        // at `nr` iovecs; the kernel only reads both. What the iovecs point at is the caller's
        // promise (above).
        unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_BUFFERS_UPDATE,
                (&mut up as *mut sys::io_uring_rsrc_update2).cast(),
                size_of::<sys::io_uring_rsrc_update2>() as u32,
            )
        }
    }

    /// `IORING_UNREGISTER_BUFFERS` (Linux 5.1): drops the fixed-buffer table (`ENXIO` if there
    /// is none). Buffers still used by ops in flight are released when those complete.
    pub fn unregister_buffers(&self) -> Result<()> {
        self.no_arg(
            "IORING_UNREGISTER_BUFFERS",
            sys::IORING_UNREGISTER_BUFFERS,
            0,
        )?;
        Ok(())
    }
}
