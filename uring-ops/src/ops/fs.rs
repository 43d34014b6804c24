//! File operations: `FSYNC`, `FALLOCATE`.

use crate::op::{res_to_io, Op, SqeOptions, Target};
use std::io;
use uring_core::{sys, Sqe};

/// Flushes a file's data (and metadata) to its storage (`IORING_OP_FSYNC`, Linux 5.1): the
/// `fsync(2)` of io_uring, or `fdatasync(2)` with [`Fsync::datasync`].
///
/// Owns nothing: names only the file. Returns `Ok(())` or the errno.
#[derive(Debug, Clone, Copy)]
pub struct Fsync {
    target: Target,
    flags: u32,
    offset: u64,
    len: u32,
    opts: SqeOptions,
}

impl Fsync {
    /// Syncs the whole of `target`.
    pub fn new(target: impl Into<Target>) -> Self {
        Fsync {
            target: target.into(),
            flags: 0,
            offset: 0,
            len: 0,
            opts: SqeOptions::new(),
        }
    }

    /// `IORING_FSYNC_DATASYNC`: sync the data and only the metadata needed to read it back
    /// (`fdatasync(2)`).
    pub fn datasync(mut self) -> Self {
        self.flags |= sys::IORING_FSYNC_DATASYNC;
        self
    }

    /// Syncs only the `len` bytes from `offset` (`sync_file_range`-like; the kernel syncs
    /// `offset..offset + len`). Without it, or with both 0, the whole file is synced.
    pub fn range(mut self, offset: u64, len: u32) -> Self {
        self.offset = offset;
        self.len = len;
        self
    }
}
super::sqe_options!(Fsync);

// SAFETY: an fsync names no memory, only a file.
unsafe impl Op for Fsync {
    const OPCODE: u8 = sys::IORING_OP_FSYNC as u8;
    const NAME: &'static str = "Fsync";
    // The SQE names no memory.
    const SQE_POINTS_INTO_SELF: bool = false;
    type Output = io::Result<()>;

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE)
            .set_fsync_flags(self.flags)
            .set_off(self.offset)
            .set_len(self.len);
        self.target.apply(sqe);
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    fn complete(self, res: i32, _flags: u32) -> io::Result<()> {
        res_to_io(res).map(drop)
    }
}

bitflags::bitflags! {
    /// The `mode` of [`Fallocate`] (`FALLOC_FL_*`, `fallocate(2)`). Empty: allocate, and
    /// extend the file if the range passes its end.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct FallocateMode: i32 {
        /// Do not change the file size, even if the range passes its end.
        const KEEP_SIZE = libc::FALLOC_FL_KEEP_SIZE;
        /// Deallocate the range: it reads back as zeros (needs `KEEP_SIZE`).
        const PUNCH_HOLE = libc::FALLOC_FL_PUNCH_HOLE;
        /// Remove the range, shifting what follows down.
        const COLLAPSE_RANGE = libc::FALLOC_FL_COLLAPSE_RANGE;
        /// Zero the range (allocating it).
        const ZERO_RANGE = libc::FALLOC_FL_ZERO_RANGE;
        /// Insert a hole at the range, shifting what follows up.
        const INSERT_RANGE = libc::FALLOC_FL_INSERT_RANGE;
        /// Unshare shared (reflinked) blocks in the range.
        const UNSHARE_RANGE = libc::FALLOC_FL_UNSHARE_RANGE;
    }
}

/// Allocates, deallocates or zeroes a byte range of a file (`IORING_OP_FALLOCATE`,
/// Linux 5.6): the `fallocate(2)` of io_uring.
///
/// Owns nothing: names only the file. Returns `Ok(())` or the errno (`EOPNOTSUPP` when the
/// file system lacks the mode).
///
/// # Examples
///
/// Punching a hole (the range reads back as zeros, the size stays):
///
/// ```no_run
/// use uring_ops::ops::{Fallocate, FallocateMode};
/// # let f = std::fs::File::open("/dev/null")?;
/// let op = Fallocate::new(&f, 4096, 8192)
///     .mode(FallocateMode::PUNCH_HOLE | FallocateMode::KEEP_SIZE);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Fallocate {
    target: Target,
    offset: u64,
    len: u64,
    mode: FallocateMode,
    opts: SqeOptions,
}

impl Fallocate {
    /// Allocates `len` bytes of `target` from `offset` (mode empty: the file grows if needed).
    pub fn new(target: impl Into<Target>, offset: u64, len: u64) -> Self {
        Fallocate {
            target: target.into(),
            offset,
            len,
            mode: FallocateMode::empty(),
            opts: SqeOptions::new(),
        }
    }

    /// The mode: what to do with the range.
    pub fn mode(mut self, mode: FallocateMode) -> Self {
        self.mode = mode;
        self
    }
}
super::sqe_options!(Fallocate);

// SAFETY: a fallocate names no memory, only a file (the length travels in `addr` as a number).
unsafe impl Op for Fallocate {
    const OPCODE: u8 = sys::IORING_OP_FALLOCATE as u8;
    const NAME: &'static str = "Fallocate";
    // The SQE names no memory.
    const SQE_POINTS_INTO_SELF: bool = false;
    type Output = io::Result<()>;

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE)
            .set_off(self.offset)
            .set_addr(self.len)
            .set_len(self.mode.bits() as u32);
        self.target.apply(sqe);
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    fn complete(self, res: i32, _flags: u32) -> io::Result<()> {
        res_to_io(res).map(drop)
    }
}
