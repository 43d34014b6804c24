//! [`BufRing`]: a registered provided-buffer ring.

use super::{alloc_group_id, free_group_id, Mode, Pool};
use crate::as_ring::AsRing;
use crate::error::Result;
use std::fmt;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use uring_core::{sys, BufRingFlags, BufRingMem};

/// A provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19): `count` buffers of `size`
/// bytes that receives with buffer select ([`crate::ops::RecvProvided`], ...) take from as
/// data arrives, each handed over as an owned [`super::ProvidedBuf`] that goes back into the
/// ring when dropped (no system call: a store to the ring's tail).
///
/// Cloning gives another handle to the same ring. Ops that select from it hold a handle until
/// their completion is reaped; the ring stays registered, and its memory allocated, until the
/// last handle, op and buffer are gone, then it is unregistered and freed (leaked if
/// unregistering fails). Why the kernel never writes into memory Rust can reach: see the
/// module documentation of [`crate::pbuf`](super).
///
/// Its group id is chosen here, unique among this process's rings and groups: an op pushed to
/// another io_uring than this one finds no buffers of ours there (`ENOBUFS`).
///
/// When the ring is empty (every buffer received and not yet dropped), receives fail with
/// `ENOBUFS`, and a multishot receive ends with it: drop buffers and push it again.
///
/// # Examples
///
/// ```
/// use std::io::Write as _;
/// use uring_ops::{ops::RecvProvided, BufRing, Uring};
/// let mut ring = Uring::new(8)?;
/// let bufs = BufRing::register(&ring, 4, 64)?;
/// let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
/// a.write_all(b"hello")?;
/// let t = ring.push(RecvProvided::new(b, &bufs))?;
/// let buf = ring.wait(t)??;
/// assert_eq!(&buf[..], b"hello");
/// assert_eq!(bufs.available(), 3);
/// drop(buf); // back into the ring
/// assert_eq!(bufs.available(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BufRing {
    pool: Arc<Pool>,
}

/// Settings of a [`BufRing`] before it is registered ([`BufRing::builder`]).
#[derive(Debug, Clone, Copy)]
pub struct BufRingBuilder {
    count: u32,
    size: u32,
    inc: bool,
}

impl BufRingBuilder {
    /// Incremental consumption (`IOU_PBUF_RING_INC`, Linux 6.12): the kernel fills a buffer in
    /// pieces, one per completion, each handed over as a [`super::ProvidedBuf`] of its own
    /// (at a growing [`super::ProvidedBuf::offset`]); the buffer returns to the ring once the
    /// kernel has used it up and every piece is dropped. Large buffers then serve many small
    /// receives. Use one such ring per socket (see the module documentation). Older kernels
    /// refuse the registration with `EINVAL`.
    pub fn incremental(mut self) -> Self {
        self.inc = true;
        self
    }

    /// Allocates the buffers and the ring, registers the ring with `ring` under a fresh group
    /// id, and publishes every buffer.
    ///
    /// # Errors
    ///
    /// [`crate::Error::ProvidedBufShape`] for a count outside `1..=32768` or a size outside
    /// `1..=1 GiB`; [`crate::Error::NoBufGroupId`]; [`crate::Error::Core`] when the kernel
    /// refuses (`EINVAL` before Linux 5.19, or for incremental consumption before 6.12).
    pub fn build(&self, ring: &impl AsRing) -> Result<BufRing> {
        let layout = Pool::layout(self.count, self.size)?;
        let entries = self.count.next_power_of_two();
        let mem = BufRingMem::new(entries)?;
        let dup = crate::as_ring::dup_ring_fd(ring)?;
        let flags = if self.inc {
            BufRingFlags::INC
        } else {
            BufRingFlags::empty()
        };
        // Ids taken by hand on this io_uring (through uring-core) answer `EEXIST`: skip them.
        let mut skipped = Vec::new();
        let bgid = loop {
            let bgid = alloc_group_id(&skipped)?;
            // SAFETY: `mem` moves into the pool below (its heap memory does not move), which
            // keeps it until the group is unregistered or, if that fails, forever; its entries
            // are pushed only by `Pool::publish`, which keeps `BufRingMem::push`'s promises; the
            // id is one no other pool of this process holds, and the only reader of this
            // group's completions is the pool (module documentation).
            let r = unsafe {
                ring.kernel()
                    .register()
                    .register_pbuf_ring(&mem, bgid, flags)
            };
            match r {
                Ok(()) => break bgid,
                Err(e) => {
                    free_group_id(bgid);
                    if e.raw_os_error() != Some(libc::EEXIST) || skipped.len() >= 64 {
                        return Err(e.into());
                    }
                    skipped.push(bgid);
                }
            }
        };
        let mode = Mode::Ring {
            mem: ManuallyDrop::new(mem),
            bid_at: vec![0; entries as usize],
            inc: self.inc,
        };
        let mut pool = match Pool::new(layout, self.count, self.size, mode, bgid) {
            Ok(p) => p,
            Err(e) => {
                // The buffers could not be allocated: undo the registration (the ring memory
                // went down with `mode` only if that succeeds; see `Pool::drop`'s reasoning).
                if unregister(&dup, bgid) {
                    free_group_id(bgid);
                }
                return Err(e);
            }
        };
        pool.ring_fd = Some(dup);
        {
            let mut st = pool.lock();
            for bid in 0..self.count as u16 {
                pool.publish(&mut st, bid);
            }
        }
        Ok(BufRing {
            pool: Arc::new(pool),
        })
    }
}

impl BufRing {
    /// A ring of `count` buffers (at most 32768) of `size` bytes each, registered with `ring`;
    /// see [`BufRingBuilder::build`].
    ///
    /// # Errors
    ///
    /// As for [`BufRingBuilder::build`].
    pub fn register(ring: &impl AsRing, count: u32, size: u32) -> Result<Self> {
        Self::builder(count, size).build(ring)
    }

    /// Settings for a ring of `count` buffers of `size` bytes, to register with
    /// [`BufRingBuilder::build`].
    pub fn builder(count: u32, size: u32) -> BufRingBuilder {
        BufRingBuilder {
            count,
            size,
            inc: false,
        }
    }

    /// The buffer group id (what the SQEs of ops selecting from it carry).
    pub fn bgid(&self) -> u16 {
        self.pool.bgid
    }

    /// How many buffers the ring has.
    pub fn count(&self) -> u32 {
        u32::from(self.pool.count)
    }

    /// The size of each buffer.
    pub fn buf_size(&self) -> u32 {
        self.pool.size
    }

    /// Whether the kernel consumes buffers incrementally ([`BufRingBuilder::incremental`]).
    pub fn is_incremental(&self) -> bool {
        matches!(self.pool.lock().mode, Mode::Ring { inc: true, .. })
    }

    /// How many buffers are in the ring, for the kernel to fill (the others are out as
    /// [`super::ProvidedBuf`]s, or, with incremental consumption, partly filled).
    pub fn available(&self) -> usize {
        self.pool
            .lock()
            .bufs
            .iter()
            .filter(|b| b.kernel && b.off == 0 && b.pieces == 0)
            .count()
    }
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("bgid", &self.bgid())
            .field("count", &self.count())
            .field("buf_size", &self.buf_size())
            .field("available", &self.available())
            .finish()
    }
}

super::into_group!(BufRing);

/// `IORING_UNREGISTER_PBUF_RING` of group `bgid` through `fd` (a duplicate of the io_uring
/// fd, which keeps the kernel's ring alive however the `Uring` was dropped). Whether it
/// succeeded.
pub(super) fn unregister(fd: &OwnedFd, bgid: u16) -> bool {
    let mut reg = sys::io_uring_buf_reg {
        bgid,
        ..Default::default()
    };
    // SAFETY: `reg` is a live `io_uring_buf_reg`, one entry as `nr_args` says; the kernel only
    // reads it; `fd` is an io_uring fd (duplicated from one).
    let r = unsafe {
        sys::io_uring_register(
            fd.as_fd(),
            sys::IORING_UNREGISTER_PBUF_RING,
            (&mut reg as *mut sys::io_uring_buf_reg).cast(),
            1,
        )
    };
    r.is_ok()
}
