//! Registered (fixed) files.

use super::{count, Registrar};
use crate::error::Result;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use uring_sys as sys;

impl Registrar<'_> {
    /// `IORING_REGISTER_FILES` (Linux 5.1): registers `fds` as the ring's fixed files, index
    /// `i` being `fds[i]`, for SQEs with [`SqeFlags::FIXED_FILE`](crate::SqeFlags::FIXED_FILE). The kernel takes its own
    /// reference to each file: closing an fd afterwards does not affect its slot. Fails with
    /// `EBUSY` if files are already registered.
    pub fn register_files(&self, fds: &[BorrowedFd<'_>]) -> Result<()> {
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        self.register_files_raw(&raw)
    }

    /// [`Registrar::register_files`] with raw fd numbers, `-1` for an empty slot (Linux 5.5).
    ///
    /// The kernel looks each number up in this process's fd table during the call (`EBADF`
    /// if one is not open) and from then on refers to the file, not the number.
    pub fn register_files_raw(&self, fds: &[RawFd]) -> Result<()> {
        const NAME: &str = "IORING_REGISTER_FILES";
        let n = count(NAME, fds.len())?;
        // SAFETY: `fds` holds `n` fds; the kernel only reads them.
        unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_FILES,
                fds.as_ptr().cast_mut().cast(),
                n,
            )
        }?;
        Ok(())
    }

    /// `IORING_REGISTER_FILES2` with `IORING_RSRC_REGISTER_SPARSE` (Linux 5.19): a table of `n`
    /// empty file slots, to fill with [`Registrar::update_files`] or by ops that install
    /// direct descriptors. An SQE naming an empty slot fails with `EBADF`.
    pub fn register_files_sparse(&self, n: u32) -> Result<()> {
        self.register_sparse("IORING_REGISTER_FILES2", sys::IORING_REGISTER_FILES2, n)
    }

    /// `IORING_REGISTER_FILES_UPDATE` (Linux 5.5): puts `fds` into the fixed-file slots
    /// `offset..offset + fds.len()`, releasing what was there.
    ///
    /// Returns how many slots were updated: fewer than `fds.len()` if the kernel stopped at an
    /// error after updating some.
    pub fn update_files(&self, offset: u32, fds: &[BorrowedFd<'_>]) -> Result<u32> {
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        self.update_files_raw(offset, &raw)
    }

    /// [`Registrar::update_files`] with raw fd numbers: `-1` empties a slot and
    /// `IORING_REGISTER_FILES_SKIP` (`-2`) leaves it as it is.
    pub fn update_files_raw(&self, offset: u32, fds: &[RawFd]) -> Result<u32> {
        const NAME: &str = "IORING_REGISTER_FILES_UPDATE";
        let n = count(NAME, fds.len())?;
        let mut up = sys::io_uring_files_update {
            offset,
            resv: 0,
            fds: fds.as_ptr() as u64,
        };
        // SAFETY: `up` is a live `io_uring_files_update` pointing at `n` fds, as `nr_args`
        // says; the kernel only reads both.
        unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_FILES_UPDATE,
                (&mut up as *mut sys::io_uring_files_update).cast(),
                n,
            )
        }
    }

    /// `IORING_REGISTER_FILES2` with tags (Linux 5.13, `IORING_FEAT_RSRC_TAGS`): registers
    /// `fds` as the ring's fixed files, as [`Registrar::register_files_raw`] (`-1` for an empty
    /// slot), with `tags[i]` the tag of slot `i` (0: none). When the file of a tagged slot is
    /// released (the slot is updated or the table unregistered, and no op in flight uses it
    /// any more), the kernel posts a completion with user data `tags[i]`, result 0, flags 0.
    ///
    /// # Errors
    ///
    /// [`Error::Register`](crate::Error::Register) if `tags` and `fds` differ in length; from the kernel, as
    /// [`Registrar::register_files_raw`] (`EBUSY`, `EBADF`), and `EINVAL` before Linux 5.13.
    ///
    /// # Safety
    ///
    /// Each non-zero tag becomes the user data of a completion of this ring: it must not be
    /// one that whoever reaps the ring could take for one of its own requests' (a `uring-ops`
    /// ring routes completions by user data alone, and would take it for an op's), as for an
    /// SQE posting into another ring (see [`crate::Reservation::commit`]).
    pub unsafe fn register_files_tagged(&self, fds: &[RawFd], tags: &[u64]) -> Result<()> {
        // SAFETY: `fds` holds its length of fds, which the kernel only reads; the tags are the
        // caller's promise (above).
        unsafe {
            self.register_tagged(
                "IORING_REGISTER_FILES2",
                sys::IORING_REGISTER_FILES2,
                (fds.as_ptr() as u64, fds.len()),
                tags,
                "one tag per file is needed (tags and fds differ in length)",
            )
        }
    }

    /// `IORING_REGISTER_FILES_UPDATE2` (Linux 5.13): as [`Registrar::update_files_raw`] (`-1`
    /// empties a slot, `IORING_REGISTER_FILES_SKIP` leaves it), giving each updated slot the
    /// tag `tags[i]` (see [`Registrar::register_files_tagged`]). Returns how many slots were
    /// updated.
    ///
    /// # Errors
    ///
    /// [`Error::Register`](crate::Error::Register) if `tags` and `fds` differ in length; from the kernel: `ENXIO`
    /// without a file table, `EINVAL` past its end, `EBADF` for a bad fd, and `EINVAL` before
    /// Linux 5.13.
    ///
    /// # Safety
    ///
    /// As for [`Registrar::register_files_tagged`].
    pub unsafe fn update_files_tagged(
        &self,
        offset: u32,
        fds: &[RawFd],
        tags: &[u64],
    ) -> Result<u32> {
        // SAFETY: as in `register_files_tagged`.
        unsafe {
            self.update_tagged(
                "IORING_REGISTER_FILES_UPDATE2",
                sys::IORING_REGISTER_FILES_UPDATE2,
                offset,
                (fds.as_ptr() as u64, fds.len()),
                tags,
                "one tag per file is needed (tags and fds differ in length)",
            )
        }
    }

    /// `IORING_UNREGISTER_FILES` (Linux 5.1): drops the fixed-file table (`ENXIO` if there is
    /// none).
    pub fn unregister_files(&self) -> Result<()> {
        self.no_arg("IORING_UNREGISTER_FILES", sys::IORING_UNREGISTER_FILES, 0)?;
        Ok(())
    }

    /// `IORING_REGISTER_FILE_ALLOC_RANGE` (Linux 6.0): ops that install a direct descriptor
    /// with `IORING_FILE_INDEX_ALLOC` pick a free slot in `offset..offset + len` only.
    pub fn register_file_alloc_range(&self, offset: u32, len: u32) -> Result<()> {
        let mut range = sys::io_uring_file_index_range {
            off: offset,
            len,
            resv: 0,
        };
        // SAFETY: `range` is a live `io_uring_file_index_range`; the kernel only reads it.
        unsafe {
            self.raw(
                "IORING_REGISTER_FILE_ALLOC_RANGE",
                sys::IORING_REGISTER_FILE_ALLOC_RANGE,
                (&mut range as *mut sys::io_uring_file_index_range).cast(),
                0,
            )
        }?;
        Ok(())
    }
}
