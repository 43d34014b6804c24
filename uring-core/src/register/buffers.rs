//! Registered (fixed) buffers, and sharing them between rings.

use super::{count, Registrar};
use crate::error::Result;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};
use uring_sys as sys;

/// Which registered buffers [`Registrar::clone_buffers`] copies, from which ring, to where
/// (`struct io_uring_clone_buffers`).
///
/// By default: the whole table of the source ring, into this ring's buffer indices from 0,
/// which must have no buffer table yet.
#[derive(Debug, Clone, Copy)]
pub struct CloneBuffers<'fd> {
    src: u32,
    flags: u32,
    src_off: u32,
    dst_off: u32,
    nr: u32,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl<'fd> CloneBuffers<'fd> {
    /// The buffers of the ring `src` (its fd).
    pub fn from_ring(src: BorrowedFd<'fd>) -> Self {
        CloneBuffers {
            src: src.as_raw_fd() as u32,
            flags: 0,
            src_off: 0,
            dst_off: 0,
            nr: 0,
            _fd: PhantomData,
        }
    }
}

impl CloneBuffers<'static> {
    /// The buffers of the ring registered at `index` in the calling thread's table of
    /// registered rings ([`Registrar::register_ring_fd`]; `IORING_REGISTER_SRC_REGISTERED`).
    pub fn from_registered(index: u32) -> Self {
        CloneBuffers {
            src: index,
            flags: sys::IORING_REGISTER_SRC_REGISTERED,
            src_off: 0,
            dst_off: 0,
            nr: 0,
            _fd: PhantomData,
        }
    }
}

impl CloneBuffers<'_> {
    /// Only the `nr` buffers from source index `src_off`, to this ring's indices from
    /// `dst_off` (Linux 6.13). `nr` must not be 0 (the kernel reads 0 as "all", and offsets
    /// without a count as an error).
    pub fn range(mut self, src_off: u32, nr: u32, dst_off: u32) -> Self {
        self.src_off = src_off;
        self.nr = nr;
        self.dst_off = dst_off;
        self
    }

    /// Replace this ring's buffer table instead of requiring that it have none
    /// (`IORING_REGISTER_DST_REPLACE`, Linux 6.13): the cloned range is replaced, the rest of
    /// the table kept (below `dst_off`).
    pub fn replace(mut self) -> Self {
        self.flags |= sys::IORING_REGISTER_DST_REPLACE;
        self
    }
}

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

    /// `IORING_REGISTER_BUFFERS2` with tags (Linux 5.13, `IORING_FEAT_RSRC_TAGS`): registers
    /// `bufs` as [`Registrar::register_buffers`] does, with `tags[i]` the tag of buffer `i`
    /// (0: none). When a tagged buffer is released (its slot updated or the table
    /// unregistered, and no op in flight uses it any more), the kernel posts a completion with
    /// user data `tags[i]`, result 0, flags 0: from then on the kernel no longer touches it.
    ///
    /// # Errors
    ///
    /// [`Error::Register`](crate::Error::Register) if `tags` and `bufs` differ in length; from the kernel as for
    /// [`Registrar::register_buffers`], and `EINVAL` before Linux 5.13.
    ///
    /// # Safety
    ///
    /// As for [`Registrar::register_buffers`]; and each non-zero tag becomes the user data of
    /// a completion of this ring, as for [`Registrar::register_files_tagged`].
    pub unsafe fn register_buffers_tagged(&self, bufs: &[libc::iovec], tags: &[u64]) -> Result<()> {
        // SAFETY: `bufs` holds its length of iovecs, which the kernel only reads; the memory
        // and the tags are the caller's promise (above).
        unsafe {
            self.register_tagged(
                "IORING_REGISTER_BUFFERS2",
                sys::IORING_REGISTER_BUFFERS2,
                (bufs.as_ptr() as u64, bufs.len()),
                tags,
                "one tag per buffer is needed (tags and iovecs differ in length)",
            )
        }
    }

    /// `IORING_REGISTER_BUFFERS_UPDATE` with tags (Linux 5.13): as
    /// [`Registrar::update_buffers`], giving each updated slot the tag `tags[i]` (see
    /// [`Registrar::register_buffers_tagged`]). Returns how many slots were updated.
    ///
    /// # Errors
    ///
    /// [`Error::Register`](crate::Error::Register) if `tags` and `bufs` differ in length; from the kernel: `ENXIO`
    /// without a buffer table, `EINVAL` past its end or for a bad iovec.
    ///
    /// # Safety
    ///
    /// As for [`Registrar::register_buffers_tagged`].
    pub unsafe fn update_buffers_tagged(
        &self,
        offset: u32,
        bufs: &[libc::iovec],
        tags: &[u64],
    ) -> Result<u32> {
        // SAFETY: as in `register_buffers_tagged`.
        unsafe {
            self.update_tagged(
                "IORING_REGISTER_BUFFERS_UPDATE",
                sys::IORING_REGISTER_BUFFERS_UPDATE,
                offset,
                (bufs.as_ptr() as u64, bufs.len()),
                tags,
                "one tag per buffer is needed (tags and iovecs differ in length)",
            )
        }
    }

    /// `IORING_REGISTER_CLONE_BUFFERS` (Linux 6.12; ranges and
    /// [`CloneBuffers::replace`] 6.13): gives this ring the registered buffers of another ring,
    /// as [`CloneBuffers`] says. Both rings then refer to the same pinned memory, at the
    /// indices given: an op on either ring may read and write it.
    ///
    /// # Errors
    ///
    /// From the kernel: `EBUSY` when this ring has buffers already (without
    /// [`CloneBuffers::replace`]), `ENXIO` when the source has none, `EINVAL` for a range past
    /// the source's table or unknown flags (and every clone before Linux 6.12), `EOVERFLOW`
    /// for a range past what a table holds, `EEXIST` when either ring is `SINGLE_ISSUER` and
    /// owned by another thread, `EBADF`/`EOPNOTSUPP` for a source that is not a ring;
    /// `ELOOP` on some kernels when the source is this ring.
    ///
    /// # Safety
    ///
    /// The source's buffers become this ring's too: the promise made when they were
    /// registered ([`Registrar::register_buffers`]) must now hold until they are gone from
    /// this ring's table as well (unregistered, replaced, or this ring closed), not only from
    /// the source's.
    pub unsafe fn clone_buffers(&self, what: CloneBuffers<'_>) -> Result<()> {
        let mut arg = sys::io_uring_clone_buffers {
            src_fd: what.src,
            flags: what.flags,
            src_off: what.src_off,
            dst_off: what.dst_off,
            nr: what.nr,
            pad: [0; 3],
        };
        // SAFETY: `arg` is a live `io_uring_clone_buffers` (pads zeroed), one entry as
        // `nr_args` says; the kernel only reads it. What the cloned buffers may be used for is
        // the caller's promise (above).
        unsafe {
            self.raw(
                "IORING_REGISTER_CLONE_BUFFERS",
                sys::IORING_REGISTER_CLONE_BUFFERS,
                (&mut arg as *mut sys::io_uring_clone_buffers).cast(),
                1,
            )
        }?;
        Ok(())
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
