//! File operations: `FSYNC`, `FALLOCATE`, `FADVISE`, `SYNC_FILE_RANGE`, `FTRUNCATE`.

use super::define::op;
use crate::op::res_to_io;
use std::io;
use uring_core::sys;

op! {
    /// Flushes a file's data (and metadata) to its storage (`IORING_OP_FSYNC`, Linux 5.1): the
    /// `fsync(2)` of io_uring, or `fdatasync(2)` with [`Fsync::datasync`].
    ///
    /// Owns a share of the file until completion. Returns `Ok(())` or the errno.
    #[derive(Clone)]
    pub struct Fsync {
        /// Syncs the whole of `file`.
        pub fn new { file: file() }
        state { flags: u32 = 0, offset: u64 = 0, len: u32 = 0 }
    }
    opcode = sys::IORING_OP_FSYNC;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_fsync_flags(op.flags)
            .set_off(op.offset)
            .set_len(op.len);
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

impl Fsync {
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

op! {
    /// Allocates, deallocates or zeroes a byte range of a file (`IORING_OP_FALLOCATE`,
    /// Linux 5.6): the `fallocate(2)` of io_uring.
    ///
    /// Owns a share of the file until completion. Returns `Ok(())` or the errno (`EOPNOTSUPP`
    /// when the file system lacks the mode).
    ///
    /// # Examples
    ///
    /// Punching a hole (the range reads back as zeros, the size stays):
    ///
    /// ```no_run
    /// use uring_ops::ops::{Fallocate, FallocateMode};
    /// # let f = uring_ops::Fd::new(std::fs::File::open("/dev/null")?);
    /// let op = Fallocate::new(&f, 4096, 8192)
    ///     .mode(FallocateMode::PUNCH_HOLE | FallocateMode::KEEP_SIZE);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Fallocate {
        /// Allocates `len` bytes of `file` from `offset` (mode empty: the file grows if needed).
        pub fn new { file: file(), offset: plain(u64), len: plain(u64) }
        set {
            /// The mode: what to do with the range.
            mode: FallocateMode = FallocateMode::empty(),
        }
    }
    opcode = sys::IORING_OP_FALLOCATE;
    prepare(op, sqe) {
        // The length travels in `addr`, as a number.
        sqe.set_target(&op.file)
            .set_off(op.offset)
            .set_addr(op.len)
            .set_len(op.mode.bits() as u32);
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

/// The advice of [`Fadvise`] (`POSIX_FADV_*`, `posix_fadvise(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FileAdvice {
    /// No particular pattern (the default readahead).
    #[default]
    Normal,
    /// Random access: less readahead.
    Random,
    /// Sequential access: more readahead.
    Sequential,
    /// The range will be needed soon: start reading it into the page cache.
    WillNeed,
    /// The range will not be needed soon: drop its clean cached pages.
    DontNeed,
    /// The range will be read once.
    NoReuse,
}

impl FileAdvice {
    fn raw(self) -> i32 {
        match self {
            FileAdvice::Normal => libc::POSIX_FADV_NORMAL,
            FileAdvice::Random => libc::POSIX_FADV_RANDOM,
            FileAdvice::Sequential => libc::POSIX_FADV_SEQUENTIAL,
            FileAdvice::WillNeed => libc::POSIX_FADV_WILLNEED,
            FileAdvice::DontNeed => libc::POSIX_FADV_DONTNEED,
            FileAdvice::NoReuse => libc::POSIX_FADV_NOREUSE,
        }
    }
}

/// Writes a 64-bit length: in `len` when it fits in 32 bits (every kernel), otherwise in
/// `field` (Linux 6.12; older kernels refuse it with `EINVAL`).
#[inline]
pub(crate) fn split_len(len: u64) -> (u32, u64) {
    match u32::try_from(len) {
        Ok(short) => (short, 0),
        Err(_) => (0, len),
    }
}

op! {
    /// Tells the kernel how a file range will be used (`IORING_OP_FADVISE`, Linux 5.6): the
    /// `posix_fadvise(2)` of io_uring. A length beyond 32 bits needs Linux 6.12.
    ///
    /// Owns a share of the file until completion. Returns `Ok(())` or the errno.
    #[derive(Clone)]
    pub struct Fadvise {
        /// Advice `advice` for `len` bytes of `file` from `offset` (`len` 0: to the end).
        pub fn new { file: file(), offset: plain(u64), len: plain(u64), advice: plain(FileAdvice) }
    }
    opcode = sys::IORING_OP_FADVISE;
    prepare(op, sqe) {
        let (short, long) = split_len(op.len);
        sqe.set_target(&op.file)
            .set_off(op.offset)
            .set_len(short)
            .set_addr(long)
            .set_op_flags(op.advice.raw() as u32);
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

bitflags::bitflags! {
    /// What [`SyncFileRange`] does (`SYNC_FILE_RANGE_*`, `sync_file_range(2)`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SyncRange: u32 {
        /// Wait for write-out already under way in the range first.
        const WAIT_BEFORE = libc::SYNC_FILE_RANGE_WAIT_BEFORE;
        /// Start write-out of the dirty pages in the range.
        const WRITE = libc::SYNC_FILE_RANGE_WRITE;
        /// Wait for the write-out to finish.
        const WAIT_AFTER = libc::SYNC_FILE_RANGE_WAIT_AFTER;
    }
}

op! {
    /// Starts or waits for write-out of a file range (`IORING_OP_SYNC_FILE_RANGE`, Linux 5.2):
    /// the `sync_file_range(2)` of io_uring. It flushes no metadata and no disk cache: it is
    /// no durability guarantee (that is [`Fsync`]).
    ///
    /// Owns a share of the file until completion. Returns `Ok(())` or the errno.
    #[derive(Clone)]
    pub struct SyncFileRange {
        /// `len` bytes of `file` from `offset` (`len` 0: to the end), with `WRITE |
        /// WAIT_AFTER` unless [`SyncFileRange::flags`] says otherwise.
        pub fn new { file: file(), offset: plain(u64), len: plain(u32) }
        set {
            /// What to do.
            flags: SyncRange = SyncRange::WRITE | SyncRange::WAIT_AFTER,
        }
    }
    opcode = sys::IORING_OP_SYNC_FILE_RANGE;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_off(op.offset)
            .set_len(op.len)
            .set_op_flags(op.flags.bits());
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

op! {
    /// Sets a file's size (`IORING_OP_FTRUNCATE`, Linux 6.9): the `ftruncate(2)` of io_uring.
    /// Bytes past the new end are dropped; growing adds zeros.
    ///
    /// Owns a share of the file until completion. Returns `Ok(())` or the errno (`EINVAL` for
    /// a file not open for writing, or a size beyond `i64::MAX`).
    #[derive(Clone)]
    pub struct Ftruncate {
        /// Makes `file` `len` bytes long.
        pub fn new { file: file(), len: plain(u64) }
    }
    opcode = sys::IORING_OP_FTRUNCATE;
    prepare(op, sqe) { sqe.set_target(&op.file).set_off(op.len); }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}
