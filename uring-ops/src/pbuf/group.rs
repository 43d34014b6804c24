//! [`BufGroup`]: buffers given to the kernel with `IORING_OP_PROVIDE_BUFFERS`.

use super::{alloc_group_id, GroupRef, Mode, Pool};
use crate::error::Result;
use std::fmt;
use std::sync::Arc;

/// A group of `count` buffers of `size` bytes for the older provided-buffer interface
/// (Linux 5.7): [`crate::ops::ProvideBuffers`] hands free buffers to the kernel (for the
/// io_uring it is pushed to), receives with buffer select take them as data arrives, and each
/// comes back as an owned [`super::ProvidedBuf`]. A dropped buffer is free again, to be
/// provided by the next `ProvideBuffers`. [`crate::ops::RemoveBuffers`] takes buffers back
/// from the kernel, but the kernel does not say which (and some kernels, 6.1's among them,
/// count one more than they removed when they run out), so those stay counted as the kernel's: never reused, and the group's memory
/// is leaked rather than freed.
///
/// Prefer [`super::BufRing`] where the kernel has it (5.19): buffers return without an op.
///
/// The memory stays allocated while any handle, op or buffer is alive; when the last goes, it
/// is freed if the kernel holds none of the group's buffers (all received), and leaked
/// otherwise. A provision the kernel completed only in part (it may add fewer buffers
/// than asked when short of memory, and still report success) counts as whole, so those
/// buffers are never reused or freed.
///
/// # Examples
///
/// ```
/// use std::io::Write as _;
/// use uring_ops::{ops::{ProvideBuffers, RecvProvided}, BufGroup, Uring};
/// let mut ring = Uring::new(8)?;
/// let group = BufGroup::new(2, 64)?;
/// let t = ring.push(ProvideBuffers::new(&group))?;
/// assert_eq!(ring.wait(t)??, 2);
/// let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
/// a.write_all(b"hi")?;
/// let t = ring.push(RecvProvided::new(b, &group))?;
/// let buf = ring.wait(t)??;
/// assert_eq!(&buf[..], b"hi");
/// drop(buf);
/// assert_eq!(group.free(), 1, "back with us, to provide again");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BufGroup {
    pool: Arc<Pool>,
}

impl BufGroup {
    /// `count` zeroed buffers (at most 32768) of `size` bytes (at most 1 GiB), all free, under
    /// a fresh group id.
    ///
    /// # Errors
    ///
    /// [`crate::Error::ProvidedBufShape`], [`crate::Error::NoBufGroupId`].
    pub fn new(count: u32, size: u32) -> Result<Self> {
        let layout = Pool::layout(count, size)?;
        let bgid = alloc_group_id(&[])?;
        let pool = Pool::new(layout, count, size, Mode::Group, bgid).inspect_err(|_| {
            super::free_group_id(bgid);
        })?;
        Ok(BufGroup {
            pool: Arc::new(pool),
        })
    }

    /// The buffer group id.
    pub fn bgid(&self) -> u16 {
        self.pool.bgid
    }

    /// How many buffers the group has.
    pub fn count(&self) -> u32 {
        u32::from(self.pool.count)
    }

    /// The size of each buffer.
    pub fn buf_size(&self) -> u32 {
        self.pool.size
    }

    /// How many buffers are free: neither provided to the kernel nor out as
    /// [`super::ProvidedBuf`]s.
    pub fn free(&self) -> usize {
        self.pool.lock().bufs.iter().filter(|b| b.is_free()).count()
    }

    /// How many buffers the kernel may hold (provided, not received).
    pub fn provided(&self) -> usize {
        self.pool.lock().bufs.iter().filter(|b| b.kernel).count()
    }
}

impl fmt::Debug for BufGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufGroup")
            .field("bgid", &self.bgid())
            .field("count", &self.count())
            .field("buf_size", &self.buf_size())
            .field("free", &self.free())
            .finish()
    }
}

super::into_group!(BufGroup);

/// Buffers `start..start + n` of a group, reserved for one `ProvideBuffers` op. Once the op
/// is prepared (its SQE may reach the kernel) they count as the kernel's, so that a receive can
/// report them whether or not the op's own completion is ever redeemed; a failed provision
/// makes them free again, and so does dropping the op unsubmitted.
pub struct Provision {
    pub(crate) group: GroupRef,
    pub(crate) start: u16,
    pub(crate) n: u16,
    /// Prepared: the buffers are marked the kernel's.
    armed: bool,
}

impl Provision {
    /// The first run of free buffers, at most `max` long, reserved (none: `n == 0`).
    pub(crate) fn reserve(group: GroupRef, max: u16) -> Self {
        let (start, n) = {
            let mut st = group.pool.lock();
            let start = st.bufs.iter().position(|b| b.is_free()).unwrap_or(0);
            let n = st.bufs[start..]
                .iter()
                .take(usize::from(max))
                .take_while(|b| b.is_free())
                .count();
            for b in &mut st.bufs[start..start + n] {
                b.providing = true;
            }
            (start as u16, n as u16)
        };
        Provision {
            group,
            start,
            n,
            armed: false,
        }
    }

    /// The SQE fields: buffer address, size, count, first id, group. From now on the buffers
    /// are the kernel's.
    pub(crate) fn sqe_fields(&mut self) -> (u64, u32, u16, u16, u16) {
        if !self.armed {
            self.armed = true;
            let mut st = self.group.pool.lock();
            for b in &mut st.bufs[self.range()] {
                b.providing = false;
                b.kernel = true;
            }
        }
        let p = &self.group.pool;
        let addr = if self.n == 0 {
            0
        } else {
            p.buf_ptr(self.start) as u64
        };
        (addr, p.size, self.n, self.start, p.bgid)
    }

    fn range(&self) -> std::ops::Range<usize> {
        usize::from(self.start)..usize::from(self.start) + usize::from(self.n)
    }

    /// The op completed with `res`: on failure the kernel took none of the buffers (it adds
    /// them only on success), so they are free again.
    pub(crate) fn settle(&mut self, res: i32) {
        if res < 0 {
            let mut st = self.group.pool.lock();
            for b in &mut st.bufs[self.range()] {
                b.providing = false;
                b.kernel = false;
            }
        }
        self.n = 0;
    }
}

impl Drop for Provision {
    fn drop(&mut self) {
        // Never prepared (refused at push, or never pushed): nothing reached the kernel. A
        // prepared one dropped without its completion (a detached op) keeps its buffers with
        // the kernel, as a successful provision would.
        if !self.armed && self.n > 0 {
            let mut st = self.group.pool.lock();
            for b in &mut st.bufs[self.range()] {
                b.providing = false;
            }
        }
    }
}

impl fmt::Debug for Provision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Provision({}..{})",
            self.start,
            u32::from(self.start) + u32::from(self.n)
        )
    }
}
