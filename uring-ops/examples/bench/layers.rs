//! The `core`, `ops` and `io-uring` layers' side of the loop ([`Driver`]), and the typed work
//! (a NOP, or a read into a slot's buffer) that the `ops` and `ctx` layers push.

use crate::file::BLOCK;
use crate::run::{raw_result, Driver};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;
use uring_core::{sys, Builder, Ring, SqeFlags};
use uring_ops::ops::{Nop, Read};
use uring_ops::{AlignedBuf, FixedBuf, FixedBufs, IoBufMut, Op, Target, Uring};

/// How long an idle SQPOLL poller spins before it sleeps (it never idles during a run).
pub const SQPOLL_IDLE: Duration = Duration::from_secs(2);

/// A ring of `depth` SQ entries (and the default CQ of twice that), with SQPOLL if asked.
pub fn builder(depth: u32, sqpoll: bool) -> Builder {
    let b = Builder::new(depth);
    if sqpoll {
        b.sqpoll(SQPOLL_IDLE)
    } else {
        b
    }
}

/// Busy-waiting on an SQPOLL ring, the same for every layer: spins a while, then yields the
/// CPU at each turn (on a machine with few CPUs the poller thread may need this one).
#[derive(Default)]
pub struct Spin(u32);

impl Spin {
    #[inline]
    pub fn wait(&mut self) {
        if self.0 < 100 {
            self.0 += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// What the typed layers push, slot by slot: the op for a slot (a read takes the slot's
/// buffer into it), and its result as a CQE's (the buffer goes back to the slot).
pub trait Work: Send + 'static {
    /// `Nop`, or `Read<B>`.
    type Op: Op;
    /// The op of slot `slot`, reading at `offset` (a NOP ignores both).
    fn op(&mut self, slot: u32, offset: u64) -> Self::Op;
    /// The result of slot `slot`'s op, from its output.
    fn finish(&mut self, slot: u32, out: <Self::Op as Op>::Output) -> i32;
}

/// NOPs: no state at all.
pub struct NopWork;

impl Work for NopWork {
    type Op = Nop;
    #[inline]
    fn op(&mut self, _: u32, _: u64) -> Nop {
        Nop::new()
    }
    #[inline]
    fn finish(&mut self, _: u32, out: std::io::Result<u32>) -> i32 {
        raw_result(out)
    }
}

/// 4 KiB reads of one file (a share of an `Fd`, or registered file 0) into each slot's buffer
/// of type `B`: [`AlignedBuf`], or [`FixedBuf`] (`READ_FIXED`).
pub struct Reads<B> {
    target: Target,
    /// Each slot's buffer while no op holds it.
    bufs: Vec<Option<B>>,
}

impl<B> Reads<B> {
    pub fn new(target: Target, bufs: Vec<B>) -> Self {
        Reads {
            target,
            bufs: bufs.into_iter().map(Some).collect(),
        }
    }
}

impl<B: IoBufMut> Work for Reads<B> {
    type Op = Read<B>;
    #[inline]
    fn op(&mut self, slot: u32, offset: u64) -> Read<B> {
        let buf = self.bufs[slot as usize]
            .take()
            .expect("a free slot's buffer");
        Read::new(self.target.clone(), buf, offset)
    }
    #[inline]
    fn finish(&mut self, slot: u32, (res, buf): (std::io::Result<usize>, B)) -> i32 {
        self.bufs[slot as usize] = Some(buf);
        raw_result(res)
    }
}

/// `depth` buffers of [`BLOCK`] bytes aligned to [`BLOCK`], one per slot.
pub fn aligned_bufs(depth: u32) -> Result<Vec<AlignedBuf>, String> {
    (0..depth)
        .map(|_| AlignedBuf::new(BLOCK, BLOCK).map_err(|e| format!("a read buffer: {e}")))
        .collect()
}

/// `depth` registered buffers of 4 KiB from a pool registered with `ring`.
pub fn fixed_bufs(ring: &Uring, depth: u32) -> Result<Vec<FixedBuf>, String> {
    let pool = FixedBufs::register(ring, depth as usize, BLOCK)
        .map_err(|e| format!("registering {depth} buffers: {e}"))?;
    Ok((0..depth).map_while(|_| pool.get()).collect())
}

/// The read setup of the layers that write SQEs themselves (`core`, `io-uring`): without
/// `read`, nothing (no buffers, no file); else `depth` aligned buffers and the descriptor the
/// SQEs name, which with `fixed` is 0 after `register(fd, iovecs)` has registered the file as
/// file 0 and the buffers as buffers `0..depth`.
fn raw_read_setup(
    read: bool,
    depth: u32,
    file: Option<BorrowedFd<'_>>,
    fixed: bool,
    register: impl FnOnce(RawFd, &[libc::iovec]) -> Result<(), String>,
) -> Result<(Vec<AlignedBuf>, RawFd), String> {
    let Some(file) = file.filter(|_| read) else {
        return Ok((Vec::new(), -1));
    };
    let mut bufs = aligned_bufs(depth)?;
    let fd = file.as_raw_fd();
    if !fixed {
        return Ok((bufs, fd));
    }
    let iovecs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.stable_mut_ptr().cast(),
            iov_len: BLOCK,
        })
        .collect();
    register(fd, &iovecs)?;
    Ok((bufs, 0))
}

/// Registers `fd` as the ring's file 0.
fn register_file(ring: &Ring, fd: BorrowedFd<'_>) -> Result<(), String> {
    ring.register()
        .register_files(&[fd])
        .map_err(|e| format!("registering the file: {e}"))
}

/// The `core` layer: SQEs reserved in the ring a batch at a time and written in place
/// (`uring-core`'s `reserve`), completions read as one batch.
pub struct Core<const READ: bool> {
    ring: Ring,
    /// The file: a descriptor, or (with `--fixed`) registered file 0.
    fd: RawFd,
    fixed: bool,
    sqpoll: bool,
    /// Ops in flight: if any are left when this is dropped, `bufs` is leaked, not freed.
    in_flight: u32,
    bufs: Vec<AlignedBuf>,
}

impl<const READ: bool> Core<READ> {
    /// A ring of `depth` entries; for reads (`READ`, with `file`), with `depth` aligned
    /// buffers, and with the file and the buffers registered when `fixed`.
    pub fn new(
        depth: u32,
        sqpoll: bool,
        file: Option<BorrowedFd<'_>>,
        fixed: bool,
    ) -> Result<Self, String> {
        let ring = builder(depth, sqpoll)
            .build()
            .map_err(|e| format!("ring setup: {e}"))?;
        let (bufs, fd) = raw_read_setup(READ, depth, file, fixed, |fd, iovecs| {
            ring.register()
                .register_files_raw(&[fd])
                .map_err(|e| format!("registering the file: {e}"))?;
            // SAFETY: the buffers stay allocated while the ring lives: `ring` is dropped before
            // `bufs` (field order), and they are leaked if ops are still in flight (`Drop`).
            unsafe { ring.register().register_buffers(iovecs) }
                .map_err(|e| format!("registering {depth} buffers: {e}"))
        })?;
        Ok(Core {
            ring,
            fd,
            fixed,
            sqpoll,
            in_flight: 0,
            bufs,
        })
    }
}

impl<const READ: bool> Drop for Core<READ> {
    fn drop(&mut self) {
        if self.in_flight > 0 {
            // The kernel may still write into them.
            std::mem::forget(std::mem::take(&mut self.bufs));
        }
    }
}

impl<const READ: bool> Driver for Core<READ> {
    #[inline]
    fn queue(&mut self, n: u32, mut next: impl FnMut() -> (u32, u64)) -> Result<(), String> {
        if self.sqpoll {
            // The poller posts completions before it moves the SQ head past their SQEs, so
            // the SQ may not have room yet for as many ops as have completed.
            let mut spin = Spin::default();
            while self.ring.sq().free() < n {
                spin.wait();
            }
        }
        let mut r = self
            .ring
            .sq()
            .reserve(n)
            .map_err(|e| format!("reserving {n} SQEs: {e}"))?;
        for i in 0..n {
            let (slot, offset) = next();
            let sqe = r.get(i).expect("reserved");
            if READ {
                let addr = self.bufs[slot as usize].stable_mut_ptr() as u64;
                sqe.set_fd(self.fd)
                    .set_addr(addr)
                    .set_len(BLOCK as u32)
                    .set_off(offset);
                if self.fixed {
                    sqe.set_opcode(sys::IORING_OP_READ_FIXED as u8)
                        .add_flags(SqeFlags::FIXED_FILE)
                        .set_buf_index(slot as u16);
                } else {
                    sqe.set_opcode(sys::IORING_OP_READ as u8);
                }
            } else {
                sqe.set_opcode(sys::IORING_OP_NOP as u8);
            }
            sqe.set_user_data(u64::from(slot));
        }
        // SAFETY: a read names its slot's buffer, which is not reused until its completion is
        // reaped and stays allocated while the ring may use it (see `Drop`), and `fd`, which
        // the caller keeps open for the ring's life (or registered file 0); a NOP names
        // nothing.
        unsafe { r.commit() };
        self.in_flight += n;
        Ok(())
    }

    #[inline]
    fn submit(&mut self, want: u32) -> Result<(), String> {
        if self.sqpoll {
            self.ring.submit().map_err(|e| format!("submit: {e}"))?;
            let mut spin = Spin::default();
            while self.ring.cq().ready() < want {
                spin.wait();
            }
            return Ok(());
        }
        self.ring
            .submit_and_wait(want)
            .map_err(|e| format!("submit_and_wait: {e}"))?;
        Ok(())
    }

    #[inline]
    fn complete(&mut self, mut done: impl FnMut(u32, i32)) -> Result<u32, String> {
        let mut n = 0;
        for cqe in self.ring.cq().batch() {
            done(cqe.user_data() as u32, cqe.raw_result());
            n += 1;
        }
        self.in_flight -= n;
        Ok(n)
    }

    fn enters(&self) -> Option<u64> {
        Some(self.ring.backend().enter_count())
    }
}

/// The `ops` layer: typed ops pushed one at a time into a `Uring`, each holding its slot's
/// buffer and tagged with its slot; the ring reports what finished, each output redeemed from
/// its completion record.
pub struct Ops<W: Work> {
    ring: Uring,
    work: W,
    sqpoll: bool,
}

impl<W: Work> Ops<W> {
    /// `ring` (with any registration done) and the work.
    pub fn new(ring: Uring, work: W) -> Self {
        let sqpoll = ring
            .ring()
            .info()
            .flags
            .contains(uring_core::SetupFlags::SQPOLL);
        Ops { ring, work, sqpoll }
    }
}

/// An `ops` ring of `depth` SQ entries, with SQPOLL if asked.
pub fn ops_ring(depth: u32, sqpoll: bool) -> Result<Uring, String> {
    Uring::with_builder(&builder(depth, sqpoll)).map_err(|e| format!("ring setup: {e}"))
}

/// Registers `fd` as `ring`'s file 0.
pub fn ops_register_file(ring: &Uring, fd: BorrowedFd<'_>) -> Result<(), String> {
    register_file(ring.ring(), fd)
}

impl<W: Work> Driver for Ops<W> {
    #[inline]
    fn queue(&mut self, n: u32, mut next: impl FnMut() -> (u32, u64)) -> Result<(), String> {
        for _ in 0..n {
            let (slot, offset) = next();
            // The completion record redeems the output: the ticket is not needed.
            let _ticket = self
                .ring
                .push_tagged(self.work.op(slot, offset), u64::from(slot))
                .map_err(|e| format!("push: {}", e.error))?;
        }
        Ok(())
    }

    #[inline]
    fn submit(&mut self, want: u32) -> Result<(), String> {
        if self.sqpoll {
            self.ring.submit().map_err(|e| format!("submit: {e}"))?;
            let mut spin = Spin::default();
            while self.ring.completions().len() < want as usize {
                spin.wait();
            }
            return Ok(());
        }
        self.ring
            .submit_and_wait(want)
            .map_err(|e| format!("submit_and_wait: {e}"))?;
        Ok(())
    }

    #[inline]
    fn complete(&mut self, mut done: impl FnMut(u32, i32)) -> Result<u32, String> {
        let mut n = 0;
        while let Some(c) = self.ring.next_completion() {
            let out = self
                .ring
                .take::<W::Op>(&c)
                .map_err(|e| format!("redeeming a completion: {e}"))?;
            let slot = c.tag() as u32;
            done(slot, self.work.finish(slot, out));
            n += 1;
        }
        Ok(n)
    }

    fn enters(&self) -> Option<u64> {
        Some(self.ring.ring().backend().enter_count())
    }
}

/// The `io-uring` crate's layer: each SQE built as an `Entry` and pushed (the crate's way),
/// completions iterated from its completion queue.
pub struct IoUringLayer<const READ: bool> {
    ring: io_uring::IoUring,
    fd: RawFd,
    fixed: bool,
    sqpoll: bool,
    /// Ops in flight: if any are left when this is dropped, `bufs` is leaked, not freed.
    in_flight: u32,
    bufs: Vec<AlignedBuf>,
}

impl<const READ: bool> IoUringLayer<READ> {
    /// As [`Core::new`].
    pub fn new(
        depth: u32,
        sqpoll: bool,
        file: Option<BorrowedFd<'_>>,
        fixed: bool,
    ) -> Result<Self, String> {
        let mut b = io_uring::IoUring::builder();
        if sqpoll {
            b.setup_sqpoll(SQPOLL_IDLE.as_millis() as u32);
        }
        let ring = b.build(depth).map_err(|e| format!("ring setup: {e}"))?;
        let (bufs, fd) = raw_read_setup(READ, depth, file, fixed, |fd, iovecs| {
            ring.submitter()
                .register_files(&[fd])
                .map_err(|e| format!("registering the file: {e}"))?;
            // SAFETY: as in `Core::new`: the ring is dropped before the buffers, which are
            // leaked if ops are still in flight.
            unsafe { ring.submitter().register_buffers(iovecs) }
                .map_err(|e| format!("registering {depth} buffers: {e}"))
        })?;
        Ok(IoUringLayer {
            ring,
            fd,
            fixed,
            sqpoll,
            in_flight: 0,
            bufs,
        })
    }
}

impl<const READ: bool> Drop for IoUringLayer<READ> {
    fn drop(&mut self) {
        if self.in_flight > 0 {
            std::mem::forget(std::mem::take(&mut self.bufs));
        }
    }
}

impl<const READ: bool> Driver for IoUringLayer<READ> {
    #[inline]
    fn queue(&mut self, n: u32, mut next: impl FnMut() -> (u32, u64)) -> Result<(), String> {
        use io_uring::{opcode, types};
        let mut sq = self.ring.submission();
        if self.sqpoll {
            // As in `Core::queue`: wait for the poller to move the SQ head.
            let mut spin = Spin::default();
            while sq.capacity() - sq.len() < n as usize {
                spin.wait();
                sq.sync();
            }
        }
        for _ in 0..n {
            let (slot, offset) = next();
            let e = if READ {
                let addr = self.bufs[slot as usize].stable_mut_ptr();
                if self.fixed {
                    opcode::ReadFixed::new(types::Fixed(0), addr, BLOCK as u32, slot as u16)
                        .offset(offset)
                        .build()
                } else {
                    opcode::Read::new(types::Fd(self.fd), addr, BLOCK as u32)
                        .offset(offset)
                        .build()
                }
            } else {
                opcode::Nop::new().build()
            };
            // SAFETY: as for `Core::queue`.
            unsafe { sq.push(&e.user_data(u64::from(slot))) }
                .map_err(|_| "the submission queue is full".to_string())?;
        }
        self.in_flight += n;
        Ok(())
    }

    #[inline]
    fn submit(&mut self, want: u32) -> Result<(), String> {
        if self.sqpoll {
            self.ring.submit().map_err(|e| format!("submit: {e}"))?;
            let mut cq = self.ring.completion();
            let mut spin = Spin::default();
            while cq.len() < want as usize {
                spin.wait();
                cq.sync();
            }
            return Ok(());
        }
        self.ring
            .submit_and_wait(want as usize)
            .map_err(|e| format!("submit_and_wait: {e}"))?;
        Ok(())
    }

    #[inline]
    fn complete(&mut self, mut done: impl FnMut(u32, i32)) -> Result<u32, String> {
        let mut n = 0;
        for cqe in self.ring.completion() {
            done(cqe.user_data() as u32, cqe.result());
            n += 1;
        }
        self.in_flight -= n;
        Ok(n)
    }
}
