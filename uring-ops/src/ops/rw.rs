//! Reads and writes: `READ`, `WRITE`, `READV`, `WRITEV`, and through registered buffers
//! `READ_FIXED`, `WRITE_FIXED`, `READV_FIXED`, `WRITEV_FIXED`.

use super::define::op;
use super::kinds::{data, room, FixedVecs};
use crate::buf::{IoBuf, IoBufMut};
use crate::fixed_buf::FixedBuf;
use crate::op::{res_to_io, short_transfer};
use std::io;
use uring_core::sys;

op! {
    /// Reads up to the buffer's room from a file at an offset (`IORING_OP_READ`, Linux 5.6;
    /// with a registered buffer, [`ReadFixed`], `IORING_OP_READ_FIXED`, Linux 5.1).
    ///
    /// Owns the buffer and a share of the file until completion. Returns the byte count and the
    /// buffer, whose initialised length covers what was read (for a `Vec<u8>`: its length grows
    /// to the count if shorter). `offset` `u64::MAX` means the file position (for non-seekable
    /// files use 0 or `u64::MAX`).
    pub struct Read<B: IoBufMut> {
        /// Reads into `buf` (its whole room, up to `u32::MAX` bytes) from `file` at `offset`.
        pub fn new { file: file(), buf: buf(B), offset: plain(u64) }
        set {
            /// `RWF_*` flags (`preadv2(2)`), e.g. `RWF_NOWAIT`.
            rw_flags: i32 = 0,
            /// Reads at most `len` bytes (never more than the buffer's room).
            len: u32 = u32::MAX,
        }
    }
    opcode = if B::FIXED { sys::IORING_OP_READ_FIXED } else { sys::IORING_OP_READ };
    name = if B::FIXED { "ReadFixed" } else { "Read" };
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_buf_mut(&mut op.buf, op.len)
            .set_off(op.offset)
            .set_rw_flags(op.rw_flags);
    }
    complete(op, res, _flags) -> (io::Result<usize>, B) {
        let mut op = op;
        let r = res_to_io(res).map(|n| n as usize);
        if let Ok(n) = r {
            // SAFETY: the kernel wrote `n` bytes from the start, at most the room `prepare`
            // named (`set_buf_mut` bounds it by `bytes_total`).
            unsafe { op.buf.set_init(n) };
        }
        (r, op.buf)
    }
    fails_link(op, res) { short_transfer(res, room(&op.buf, op.len) as usize) }
}

impl<B: IoBufMut> Read<B> {
    /// The buffer, back, without reading.
    pub fn into_buf(self) -> B {
        self.buf
    }
}

op! {
    /// Writes the buffer's data to a file at an offset (`IORING_OP_WRITE`, Linux 5.6; with a
    /// registered buffer, [`WriteFixed`], `IORING_OP_WRITE_FIXED`, Linux 5.1).
    ///
    /// Owns the buffer and a share of the file until completion. Returns the byte count and
    /// the buffer.
    pub struct Write<B: IoBuf> {
        /// Writes `buf`'s data (up to `u32::MAX` bytes) to `file` at `offset` (`u64::MAX`: the
        /// file position).
        pub fn new { file: file(), buf: buf(B), offset: plain(u64) }
        set {
            /// `RWF_*` flags (`pwritev2(2)`), e.g. `RWF_DSYNC`.
            rw_flags: i32 = 0,
            /// Writes only the first `len` bytes (never more than the buffer's data).
            len: u32 = u32::MAX,
        }
    }
    opcode = if B::FIXED { sys::IORING_OP_WRITE_FIXED } else { sys::IORING_OP_WRITE };
    name = if B::FIXED { "WriteFixed" } else { "Write" };
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_buf(&op.buf, op.len)
            .set_off(op.offset)
            .set_rw_flags(op.rw_flags);
    }
    complete(op, res, _flags) -> (io::Result<usize>, B) {
        (res_to_io(res).map(|n| n as usize), op.buf)
    }
    fails_link(op, res) { short_transfer(res, data(&op.buf, op.len) as usize) }
}

impl<B: IoBuf> Write<B> {
    /// The buffer, back, without writing.
    pub fn into_buf(self) -> B {
        self.buf
    }
}

/// [`Read`] into a registered buffer (`IORING_OP_READ_FIXED`, Linux 5.1).
///
/// The kernel uses the pages it pinned at registration instead of mapping the buffer for each
/// read. The buffer must come from the [`crate::FixedBufs`] registered with the ring the op is
/// pushed to, or cloned into it ([`crate::FixedBufs::clone_into`]); one from another ring's
/// pool fails with `EFAULT` (the kernel checks the address range against its own table).
pub type ReadFixed = Read<FixedBuf>;

/// [`Write`] from a registered buffer (`IORING_OP_WRITE_FIXED`, Linux 5.1); as for
/// [`ReadFixed`], the buffer must come from a pool registered with (or cloned into) this ring.
pub type WriteFixed = Write<FixedBuf>;

op! {
    /// Reads into several buffers in order (`IORING_OP_READV`, Linux 5.1).
    ///
    /// Owns the buffers, their iovec array and a share of the file until completion. Returns
    /// the byte count and the buffers, each with its initialised length covering what was read
    /// into it.
    pub struct Readv<B: IoBufMut> {
        /// Reads into `bufs` (each its whole room) from `file` at `offset`.
        pub fn new { file: file(), bufs: bufs_mut(B), offset: plain(u64) }
        set {
            /// `RWF_*` flags.
            rw_flags: i32 = 0,
        }
    }
    opcode = sys::IORING_OP_READV;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_iovecs(&op.bufs)
            .set_off(op.offset)
            .set_rw_flags(op.rw_flags);
    }
    complete(op, res, _flags) -> (io::Result<usize>, Vec<B>) {
        let mut op = op;
        let r = res_to_io(res).map(|n| n as usize);
        if let Ok(n) = r {
            op.bufs.filled(n);
        }
        (r, op.bufs.into_bufs())
    }
    fails_link(op, res) { short_transfer(res, op.bufs.total()) }
}

impl<B: IoBufMut> Readv<B> {
    /// The buffers, back, without reading.
    pub fn into_bufs(self) -> Vec<B> {
        self.bufs.into_bufs()
    }
}

op! {
    /// Writes several buffers in order (`IORING_OP_WRITEV`, Linux 5.1).
    ///
    /// Owns the buffers, their iovec array and a share of the file until completion. Returns
    /// the byte count and the buffers.
    pub struct Writev<B: IoBuf> {
        /// Writes `bufs` (each its data) to `file` at `offset`.
        pub fn new { file: file(), bufs: bufs(B), offset: plain(u64) }
        set {
            /// `RWF_*` flags.
            rw_flags: i32 = 0,
        }
    }
    opcode = sys::IORING_OP_WRITEV;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_iovecs(&op.bufs)
            .set_off(op.offset)
            .set_rw_flags(op.rw_flags);
    }
    complete(op, res, _flags) -> (io::Result<usize>, Vec<B>) {
        (res_to_io(res).map(|n| n as usize), op.bufs.into_bufs())
    }
    fails_link(op, res) { short_transfer(res, op.bufs.total()) }
}

impl<B: IoBuf> Writev<B> {
    /// The buffers, back, without writing.
    pub fn into_bufs(self) -> Vec<B> {
        self.bufs.into_bufs()
    }
}

op! {
    /// Reads into several ranges of one registered buffer, in order (`IORING_OP_READV_FIXED`,
    /// Linux 6.15): a vectored [`ReadFixed`].
    ///
    /// Owns the buffer, the iovec array naming its ranges and a share of the file until
    /// completion. Returns the byte count, the buffer (its length grown to cover the last byte
    /// read) and the ranges.
    pub struct ReadvFixed {
        fn with { file: file(), vecs: fixed_vecs(), offset: plain(u64) }
        set {
            /// `RWF_*` flags.
            rw_flags: i32 = 0,
        }
    }
    opcode = sys::IORING_OP_READV_FIXED;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_fixed_vecs(&op.vecs)
            .set_off(op.offset)
            .set_rw_flags(op.rw_flags);
    }
    complete(op, res, _flags) -> (io::Result<usize>, FixedBuf, Vec<std::ops::Range<usize>>) {
        let mut op = op;
        let r = res_to_io(res).map(|n| n as usize);
        if let Ok(n) = r {
            op.vecs.filled(n);
        }
        let (buf, ranges) = op.vecs.into_parts();
        (r, buf, ranges)
    }
    fails_link(op, res) { short_transfer(res, op.vecs.total()) }
    check(op) { op.vecs.check("ReadvFixed") }
}

impl ReadvFixed {
    /// Reads from `file` at `offset` (`u64::MAX`: its position) into `ranges` of `buf`, in
    /// order. A push refuses a range not inside the buffer's capacity
    /// ([`crate::Error::OutOfRange`]; the op, with its buffer, comes back in the error).
    pub fn new(
        file: impl crate::IntoTarget,
        buf: FixedBuf,
        ranges: Vec<std::ops::Range<usize>>,
        offset: u64,
    ) -> Self {
        let limit = buf.capacity();
        Self::with(file, FixedVecs::new(buf, ranges, limit), offset)
    }

    /// The buffer, back, without reading.
    pub fn into_buf(self) -> FixedBuf {
        self.vecs.into_parts().0
    }
}

op! {
    /// Writes several ranges of one registered buffer, in order (`IORING_OP_WRITEV_FIXED`,
    /// Linux 6.15): a vectored [`WriteFixed`].
    ///
    /// Owns the buffer, the iovec array naming its ranges and a share of the file until
    /// completion. Returns the byte count, the buffer and the ranges.
    pub struct WritevFixed {
        fn with { file: file(), vecs: fixed_vecs(), offset: plain(u64) }
        set {
            /// `RWF_*` flags.
            rw_flags: i32 = 0,
        }
    }
    opcode = sys::IORING_OP_WRITEV_FIXED;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_fixed_vecs(&op.vecs)
            .set_off(op.offset)
            .set_rw_flags(op.rw_flags);
    }
    complete(op, res, _flags) -> (io::Result<usize>, FixedBuf, Vec<std::ops::Range<usize>>) {
        let (buf, ranges) = op.vecs.into_parts();
        (res_to_io(res).map(|n| n as usize), buf, ranges)
    }
    fails_link(op, res) { short_transfer(res, op.vecs.total()) }
    check(op) { op.vecs.check("WritevFixed") }
}

impl WritevFixed {
    /// Writes `ranges` of `buf`'s data, in order, to `file` at `offset` (`u64::MAX`: its
    /// position). A push refuses a range not inside the buffer's data, its first
    /// [`FixedBuf::len`] bytes ([`crate::Error::OutOfRange`]; the op comes back in the error).
    pub fn new(
        file: impl crate::IntoTarget,
        buf: FixedBuf,
        ranges: Vec<std::ops::Range<usize>>,
        offset: u64,
    ) -> Self {
        let limit = buf.len();
        Self::with(file, FixedVecs::new(buf, ranges, limit), offset)
    }

    /// The buffer, back, without writing.
    pub fn into_buf(self) -> FixedBuf {
        self.vecs.into_parts().0
    }
}
