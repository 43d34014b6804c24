//! Reads and writes through registered buffers: `READ_FIXED`, `WRITE_FIXED`.

use crate::buf::{IoBuf, IoBufMut};
use crate::fixed_buf::FixedBuf;
use crate::op::{res_to_io, Op, SqeOptions, Target};
use std::io;
use uring_core::{sys, Sqe};

/// Reads into a registered buffer from a file at an offset (`IORING_OP_READ_FIXED`, Linux 5.1).
///
/// The kernel uses the pages it pinned at registration instead of mapping the buffer for each
/// read. The buffer must come from the [`crate::FixedBufs`] registered with the ring the op is
/// pushed to; one from another ring's pool fails with `EFAULT` (the kernel checks the address
/// range against its own registration).
///
/// Owns the buffer until completion. Returns the byte count and the buffer, whose length grows
/// to the count if shorter. `offset` `u64::MAX` means the file position.
#[derive(Debug)]
pub struct ReadFixed {
    target: Target,
    buf: FixedBuf,
    offset: u64,
    len: u32,
    rw_flags: i32,
    opts: SqeOptions,
}

impl ReadFixed {
    /// Reads into `buf` (its whole capacity) from `target` at `offset`.
    pub fn new(target: impl Into<Target>, buf: FixedBuf, offset: u64) -> Self {
        let len = buf.capacity().min(u32::MAX as usize) as u32;
        ReadFixed {
            target: target.into(),
            buf,
            offset,
            len,
            rw_flags: 0,
            opts: SqeOptions::new(),
        }
    }

    /// Reads at most `len` bytes (capped at the buffer's capacity).
    pub fn len(mut self, len: u32) -> Self {
        self.len = len.min(self.buf.capacity().min(u32::MAX as usize) as u32);
        self
    }

    /// `RWF_*` flags (`preadv2(2)`).
    pub fn rw_flags(mut self, flags: i32) -> Self {
        self.rw_flags = flags;
        self
    }

    /// The buffer, back, without reading.
    pub fn into_buf(self) -> FixedBuf {
        self.buf
    }
}
super::sqe_options!(ReadFixed);

// SAFETY: the SQE names the buffer's bytes in the pool's heap block (stable across moves, kept
// allocated and registered by the `FixedBuf`'s share of the pool) for `len <= capacity` bytes
// of writes, under the index it was registered with; the op owns the buffer until `complete`.
unsafe impl Op for ReadFixed {
    const OPCODE: u8 = sys::IORING_OP_READ_FIXED as u8;
    const NAME: &'static str = "ReadFixed";
    // The SQE names the pool's heap block (shared ownership), which does not move with the op.
    const SQE_POINTS_INTO_SELF: bool = false;
    type Output = (io::Result<usize>, FixedBuf);

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE)
            .set_addr(self.buf.stable_mut_ptr() as u64)
            .set_len(self.len)
            .set_off(self.offset)
            .set_rw_flags(self.rw_flags)
            .set_buf_index(self.buf.index());
        self.target.apply(sqe);
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    /// A read or write that moves fewer bytes than asked for fails its link.
    fn fails_link(&self, res: i32) -> bool {
        crate::op::short_transfer(res, self.len as usize)
    }

    fn complete(mut self, res: i32, _flags: u32) -> Self::Output {
        let r = res_to_io(res).map(|n| n as usize);
        if let Ok(n) = r {
            // SAFETY: the kernel wrote `n <= len <= capacity` bytes from the start.
            unsafe { self.buf.set_init(n) };
        }
        (r, self.buf)
    }
}

/// Writes a registered buffer's data to a file at an offset (`IORING_OP_WRITE_FIXED`,
/// Linux 5.1).
///
/// As for [`ReadFixed`], the buffer must come from the pool registered with this ring.
///
/// Owns the buffer until completion. Returns the byte count and the buffer.
#[derive(Debug)]
pub struct WriteFixed {
    target: Target,
    buf: FixedBuf,
    offset: u64,
    len: u32,
    rw_flags: i32,
    opts: SqeOptions,
}

impl WriteFixed {
    /// Writes `buf`'s data (its first [`FixedBuf::len`] bytes) to `target` at `offset`
    /// (`u64::MAX`: the file position).
    pub fn new(target: impl Into<Target>, buf: FixedBuf, offset: u64) -> Self {
        let len = buf.len().min(u32::MAX as usize) as u32;
        WriteFixed {
            target: target.into(),
            buf,
            offset,
            len,
            rw_flags: 0,
            opts: SqeOptions::new(),
        }
    }

    /// Writes only the first `len` bytes (capped at the buffer's data).
    pub fn len(mut self, len: u32) -> Self {
        self.len = len.min(self.buf.len().min(u32::MAX as usize) as u32);
        self
    }

    /// `RWF_*` flags (`pwritev2(2)`).
    pub fn rw_flags(mut self, flags: i32) -> Self {
        self.rw_flags = flags;
        self
    }

    /// The buffer, back, without writing.
    pub fn into_buf(self) -> FixedBuf {
        self.buf
    }
}
super::sqe_options!(WriteFixed);

// SAFETY: the SQE names `len <= len()` bytes of the buffer's data in the pool's heap block,
// kept allocated and registered by the `FixedBuf`; the op owns the buffer until `complete`.
unsafe impl Op for WriteFixed {
    const OPCODE: u8 = sys::IORING_OP_WRITE_FIXED as u8;
    const NAME: &'static str = "WriteFixed";
    // The SQE names the pool's heap block (shared ownership), which does not move with the op.
    const SQE_POINTS_INTO_SELF: bool = false;
    type Output = (io::Result<usize>, FixedBuf);

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE)
            .set_addr(self.buf.stable_ptr() as u64)
            .set_len(self.len)
            .set_off(self.offset)
            .set_rw_flags(self.rw_flags)
            .set_buf_index(self.buf.index());
        self.target.apply(sqe);
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    /// A read or write that moves fewer bytes than asked for fails its link.
    fn fails_link(&self, res: i32) -> bool {
        crate::op::short_transfer(res, self.len as usize)
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        (res_to_io(res).map(|n| n as usize), self.buf)
    }
}
