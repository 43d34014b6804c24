//! Reads and writes: `READ`, `WRITE`, `READV`, `WRITEV`.

use crate::buf::{IoBuf, IoBufMut};
use crate::op::{res_to_io, short_transfer, Op, SqeOptions, Target};
use std::io;
use uring_core::{sys, Sqe};

/// Reads up to the buffer's room from a file at an offset (`IORING_OP_READ`, Linux 5.6).
///
/// Owns the buffer until completion. Returns the byte count and the buffer, whose initialised
/// length covers what was read (for a `Vec<u8>`: its length grows to the count if shorter).
/// `offset` `u64::MAX` means the file position (for non-seekable files use 0 or `u64::MAX`).
#[derive(Debug)]
pub struct Read<B> {
    target: Target,
    buf: B,
    offset: u64,
    len: u32,
    rw_flags: i32,
    opts: SqeOptions,
}

impl<B: IoBufMut> Read<B> {
    /// Reads into `buf` (its whole room, up to `u32::MAX` bytes) from `target` at `offset`.
    pub fn new(target: impl Into<Target>, buf: B, offset: u64) -> Self {
        let len = buf.bytes_total().min(u32::MAX as usize) as u32;
        Read {
            target: target.into(),
            buf,
            offset,
            len,
            rw_flags: 0,
            opts: SqeOptions::new(),
        }
    }

    /// Reads at most `len` bytes (capped at the buffer's room).
    pub fn len(mut self, len: u32) -> Self {
        self.len = len.min(self.buf.bytes_total().min(u32::MAX as usize) as u32);
        self
    }

    /// `RWF_*` flags (`preadv2(2)`), e.g. `RWF_NOWAIT`.
    pub fn rw_flags(mut self, flags: i32) -> Self {
        self.rw_flags = flags;
        self
    }

    /// The buffer, back, without reading.
    pub fn into_buf(self) -> B {
        self.buf
    }
}
super::sqe_options!(Read<B: IoBufMut>);

// SAFETY: the SQE names the buffer's heap memory (stable across moves by the `IoBufMut`
// contract) for `len <= bytes_total` bytes of writes; the op owns the buffer until `complete`.
unsafe impl<B: IoBufMut> Op for Read<B> {
    const OPCODE: u8 = sys::IORING_OP_READ as u8;
    const NAME: &'static str = "Read";
    // The SQE names only heap memory (the buffer, by the `IoBuf` contract, and the iovec
    // array's heap block), which does not move with the op.
    const SQE_POINTS_INTO_SELF: bool = false;
    type Output = (io::Result<usize>, B);

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE)
            .set_addr(self.buf.stable_mut_ptr() as u64)
            .set_len(self.len)
            .set_off(self.offset)
            .set_rw_flags(self.rw_flags);
        self.target.apply(sqe);
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    /// A read or write that moves fewer bytes than asked for fails its link.
    fn fails_link(&self, res: i32) -> bool {
        short_transfer(res, self.len as usize)
    }

    fn complete(mut self, res: i32, _flags: u32) -> Self::Output {
        let r = res_to_io(res).map(|n| n as usize);
        if let Ok(n) = r {
            // SAFETY: the kernel wrote `n <= len <= bytes_total` bytes from the start.
            unsafe { self.buf.set_init(n) };
        }
        (r, self.buf)
    }
}

/// Writes the buffer's data to a file at an offset (`IORING_OP_WRITE`, Linux 5.6).
///
/// Owns the buffer until completion. Returns the byte count and the buffer.
#[derive(Debug)]
pub struct Write<B> {
    target: Target,
    buf: B,
    offset: u64,
    len: u32,
    rw_flags: i32,
    opts: SqeOptions,
}

impl<B: IoBuf> Write<B> {
    /// Writes `buf`'s data (up to `u32::MAX` bytes) to `target` at `offset` (`u64::MAX`: the
    /// file position).
    pub fn new(target: impl Into<Target>, buf: B, offset: u64) -> Self {
        let len = buf.bytes_init().min(u32::MAX as usize) as u32;
        Write {
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
        self.len = len.min(self.buf.bytes_init().min(u32::MAX as usize) as u32);
        self
    }

    /// `RWF_*` flags (`pwritev2(2)`), e.g. `RWF_DSYNC`.
    pub fn rw_flags(mut self, flags: i32) -> Self {
        self.rw_flags = flags;
        self
    }

    /// The buffer, back, without writing.
    pub fn into_buf(self) -> B {
        self.buf
    }
}
super::sqe_options!(Write<B: IoBuf>);

// SAFETY: the SQE names the buffer's heap memory for `len <= bytes_init` bytes of reads; the op
// owns the buffer until `complete`.
unsafe impl<B: IoBuf> Op for Write<B> {
    const OPCODE: u8 = sys::IORING_OP_WRITE as u8;
    const NAME: &'static str = "Write";
    // The SQE names only heap memory (the buffer, by the `IoBuf` contract, and the iovec
    // array's heap block), which does not move with the op.
    const SQE_POINTS_INTO_SELF: bool = false;
    type Output = (io::Result<usize>, B);

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE)
            .set_addr(self.buf.stable_ptr() as u64)
            .set_len(self.len)
            .set_off(self.offset)
            .set_rw_flags(self.rw_flags);
        self.target.apply(sqe);
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    /// A read or write that moves fewer bytes than asked for fails its link.
    fn fails_link(&self, res: i32) -> bool {
        short_transfer(res, self.len as usize)
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        (res_to_io(res).map(|n| n as usize), self.buf)
    }
}

/// Reads into several buffers in order (`IORING_OP_READV`, Linux 5.1).
///
/// Owns the buffers and the iovec array until completion. Returns the byte count and the
/// buffers, each with its initialised length covering what was read into it.
#[derive(Debug)]
pub struct Readv<B> {
    target: Target,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: u64,
    rw_flags: i32,
    opts: SqeOptions,
}

// SAFETY: the iovecs only point into the buffers, which are `Send`.
unsafe impl<B: Send> Send for Readv<B> {}

impl<B: IoBufMut> Readv<B> {
    /// Reads into `bufs` (each its whole room) from `target` at `offset`.
    pub fn new(target: impl Into<Target>, mut bufs: Vec<B>, offset: u64) -> Self {
        let iovecs = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.stable_mut_ptr().cast(),
                iov_len: b.bytes_total(),
            })
            .collect();
        Readv {
            target: target.into(),
            bufs,
            iovecs,
            offset,
            rw_flags: 0,
            opts: SqeOptions::new(),
        }
    }

    /// `RWF_*` flags.
    pub fn rw_flags(mut self, flags: i32) -> Self {
        self.rw_flags = flags;
        self
    }

    /// The buffers, back, without reading.
    pub fn into_bufs(self) -> Vec<B> {
        self.bufs
    }
}
super::sqe_options!(Readv<B: IoBufMut>);

// SAFETY: the SQE names the iovec array (heap, owned) whose entries name the buffers' heap
// memory for their room; all owned until `complete`.
unsafe impl<B: IoBufMut> Op for Readv<B> {
    const OPCODE: u8 = sys::IORING_OP_READV as u8;
    const NAME: &'static str = "Readv";
    // The SQE names only heap memory (the buffer, by the `IoBuf` contract, and the iovec
    // array's heap block), which does not move with the op.
    const SQE_POINTS_INTO_SELF: bool = false;
    type Output = (io::Result<usize>, Vec<B>);

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE)
            .set_addr(self.iovecs.as_ptr() as u64)
            .set_len(self.iovecs.len() as u32)
            .set_off(self.offset)
            .set_rw_flags(self.rw_flags);
        self.target.apply(sqe);
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    /// A transfer of fewer bytes than the iovecs cover fails its link.
    fn fails_link(&self, res: i32) -> bool {
        let want = self
            .iovecs
            .iter()
            .map(|v| v.iov_len)
            .fold(0usize, usize::saturating_add);
        short_transfer(res, want)
    }

    fn complete(mut self, res: i32, _flags: u32) -> Self::Output {
        let r = res_to_io(res).map(|n| n as usize);
        if let Ok(mut left) = r {
            for b in &mut self.bufs {
                let n = left.min(b.bytes_total());
                // SAFETY: the kernel filled the buffers in order; `n` bytes of this one.
                unsafe { b.set_init(n) };
                left -= n;
            }
        }
        (r, self.bufs)
    }
}

/// Writes several buffers in order (`IORING_OP_WRITEV`, Linux 5.1).
///
/// Owns the buffers and the iovec array until completion. Returns the byte count and the
/// buffers.
#[derive(Debug)]
pub struct Writev<B> {
    target: Target,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: u64,
    rw_flags: i32,
    opts: SqeOptions,
}

// SAFETY: the iovecs only point into the buffers, which are `Send`.
unsafe impl<B: Send> Send for Writev<B> {}

impl<B: IoBuf> Writev<B> {
    /// Writes `bufs` (each its data) to `target` at `offset`.
    pub fn new(target: impl Into<Target>, bufs: Vec<B>, offset: u64) -> Self {
        let iovecs = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.stable_ptr() as *mut libc::c_void,
                iov_len: b.bytes_init(),
            })
            .collect();
        Writev {
            target: target.into(),
            bufs,
            iovecs,
            offset,
            rw_flags: 0,
            opts: SqeOptions::new(),
        }
    }

    /// `RWF_*` flags.
    pub fn rw_flags(mut self, flags: i32) -> Self {
        self.rw_flags = flags;
        self
    }

    /// The buffers, back, without writing.
    pub fn into_bufs(self) -> Vec<B> {
        self.bufs
    }
}
super::sqe_options!(Writev<B: IoBuf>);

// SAFETY: the SQE names the iovec array (heap, owned) whose entries name the buffers' data;
// all owned until `complete`.
unsafe impl<B: IoBuf> Op for Writev<B> {
    const OPCODE: u8 = sys::IORING_OP_WRITEV as u8;
    const NAME: &'static str = "Writev";
    // The SQE names only heap memory (the buffer, by the `IoBuf` contract, and the iovec
    // array's heap block), which does not move with the op.
    const SQE_POINTS_INTO_SELF: bool = false;
    type Output = (io::Result<usize>, Vec<B>);

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE)
            .set_addr(self.iovecs.as_ptr() as u64)
            .set_len(self.iovecs.len() as u32)
            .set_off(self.offset)
            .set_rw_flags(self.rw_flags);
        self.target.apply(sqe);
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    /// A transfer of fewer bytes than the iovecs cover fails its link.
    fn fails_link(&self, res: i32) -> bool {
        let want = self
            .iovecs
            .iter()
            .map(|v| v.iov_len)
            .fold(0usize, usize::saturating_add);
        short_transfer(res, want)
    }

    fn complete(self, res: i32, _flags: u32) -> Self::Output {
        (res_to_io(res).map(|n| n as usize), self.bufs)
    }
}
