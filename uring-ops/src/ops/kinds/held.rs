//! What the kinds added for the remaining opcodes hold: plain structs and arrays the kernel
//! reads or fills, futex words, descriptor numbers, ranges of a registered buffer, a
//! descriptor to close (see the table in [`super`]).

use crate::buf::IoBufMut;
use crate::fd::Target;
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use uring_core::sys;

/// A plain-data struct the kernel reads or fills through an address in an SQE (`boxed` and
/// `array` kinds).
///
/// # Safety
///
/// Every bit pattern is a valid value (the kernel may write any bytes into it), and the kernel
/// follows no address inside it.
pub unsafe trait Plain: Send + 'static {}

// SAFETY: integers and arrays of them.
unsafe impl Plain for libc::statx {}
// SAFETY: three `u64`s.
unsafe impl Plain for sys::open_how {}
// SAFETY: `u32` events and `u64` data: the kernel copies the data back, never follows it.
unsafe impl Plain for libc::epoll_event {}
// SAFETY: bytes; the kernel fills them (a `siginfo_t`), follows nothing in them.
unsafe impl Plain for SigInfoBuf {}

/// Room for a `siginfo_t` (128 bytes, 8-aligned), which the kernel fills (`WAITID`).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct SigInfoBuf(pub(crate) [u8; 128]);

const _: () = assert!(
    std::mem::size_of::<SigInfoBuf>() == std::mem::size_of::<libc::siginfo_t>()
        && std::mem::align_of::<SigInfoBuf>() >= std::mem::align_of::<libc::siginfo_t>()
);

impl fmt::Debug for SigInfoBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigInfoBuf")
    }
}
// SAFETY: two descriptor numbers the kernel writes.
unsafe impl Plain for [i32; 2] {}

/// `struct futex_waitv` (`linux/futex.h`): one word of a `FUTEX_WAITV`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct FutexWaitv {
    /// The value to wait on.
    val: u64,
    /// The word's address.
    uaddr: u64,
    /// `FUTEX2_*` flags.
    flags: u32,
    reserved: u32,
}

const _: () = assert!(std::mem::size_of::<FutexWaitv>() == 24);

/// The `futex_waitv` array of a `FUTEX_WAITV`, and a share of each futex word it names (so
/// each word stays allocated while the op lives).
pub struct FutexWaits {
    words: Vec<Arc<AtomicU32>>,
    /// One entry per word, naming its address. Built once, never changed.
    pub(super) waitv: Vec<FutexWaitv>,
}

// SAFETY: the entries only point at the words, which are `Send + Sync` (atomics in `Arc`s).
unsafe impl Send for FutexWaits {}

impl FutexWaits {
    /// The words, each with the value to wait on and its futex2 flags.
    pub(crate) fn new(waits: Vec<(Arc<AtomicU32>, u32)>, flags: u32) -> Self {
        let waitv = waits
            .iter()
            .map(|(w, val)| FutexWaitv {
                val: u64::from(*val),
                uaddr: w.as_ptr() as u64,
                flags,
                reserved: 0,
            })
            .collect();
        FutexWaits {
            words: waits.into_iter().map(|(w, _)| w).collect(),
            waitv,
        }
    }

    /// How many words.
    pub(crate) fn len(&self) -> usize {
        self.waitv.len()
    }

    /// The words, back.
    pub(crate) fn into_words(self) -> Vec<Arc<AtomicU32>> {
        self.words
    }
}

impl fmt::Debug for FutexWaits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FutexWaits")
            .field("words", &self.words.len())
            .finish()
    }
}

/// Descriptor numbers for the kernel (`FILES_UPDATE`), each kept open by the target it came
/// from; -1 clears a slot.
#[derive(Debug)]
pub struct FdList {
    keep: Vec<Option<Target>>,
    /// The numbers; the kernel writes allocated slot indices back into it.
    pub(super) raw: Vec<i32>,
}

impl FdList {
    /// The files (`None`: clear the slot).
    pub(crate) fn new(files: Vec<Option<Target>>) -> Self {
        let raw = files
            .iter()
            .map(|f| f.as_ref().map_or(-1, Target::raw))
            .collect();
        FdList { keep: files, raw }
    }

    /// The targets.
    pub(crate) fn targets(&self) -> &[Option<Target>] {
        &self.keep
    }

    /// The numbers, as the kernel left them.
    pub(crate) fn raw(&self) -> &[i32] {
        &self.raw
    }
}

/// Ranges of one registered buffer and the iovec array naming them (`READV_FIXED`,
/// `WRITEV_FIXED`). Each range must lie inside the buffer's room (reads) or data (writes):
/// [`FixedVecs::check`], at push, refuses the op otherwise.
pub struct FixedVecs {
    pub(super) buf: crate::FixedBuf,
    ranges: Vec<std::ops::Range<usize>>,
    /// The bytes of the buffer the ranges may cover.
    limit: usize,
    /// One per range, naming its bytes of the buffer. Built once, never changed.
    pub(super) iovecs: Vec<libc::iovec>,
}

// SAFETY: the iovecs only point into the buffer, which is `Send`.
unsafe impl Send for FixedVecs {}

impl FixedVecs {
    /// `ranges` of `buf`, to lie within its first `limit` bytes.
    pub(crate) fn new(
        mut buf: crate::FixedBuf,
        ranges: Vec<std::ops::Range<usize>>,
        limit: usize,
    ) -> Self {
        let base = IoBufMut::stable_mut_ptr(&mut buf);
        let iovecs = ranges
            .iter()
            .map(|r| libc::iovec {
                // Only an address (wrapping: not dereferenced here); `check` keeps a range
                // outside the buffer from reaching the kernel.
                iov_base: base.wrapping_add(r.start).cast(),
                iov_len: r.end.wrapping_sub(r.start),
            })
            .collect();
        FixedVecs {
            buf,
            ranges,
            limit,
            iovecs,
        }
    }

    /// `Ok` when every range lies inside the buffer's first `limit` bytes; otherwise the
    /// error naming the first that does not.
    pub(crate) fn check(&self, op: &'static str) -> crate::Result<()> {
        let Some(r) = self
            .ranges
            .iter()
            .find(|r| r.start > r.end || r.end > self.limit)
        else {
            return Ok(());
        };
        let what = if r.start > r.end {
            "a range's start (past its end)"
        } else {
            "a range's end (past the buffer's usable bytes)"
        };
        let value = r.start.max(r.end) as u64;
        Err(crate::Error::out_of_range(
            op,
            what,
            value,
            0,
            self.limit as u64,
        ))
    }

    /// Bytes the ranges cover (once checked).
    pub(crate) fn total(&self) -> usize {
        self.iovecs
            .iter()
            .map(|v| v.iov_len)
            .fold(0, usize::saturating_add)
    }

    /// Records that the kernel filled `n` bytes, the ranges in order: the buffer's length
    /// grows to cover the last byte written.
    pub(crate) fn filled(&mut self, mut n: usize) {
        let mut end = 0;
        for r in &self.ranges {
            let k = n.min(r.end - r.start);
            if k > 0 {
                end = end.max(r.start + k);
            }
            n -= k;
        }
        // SAFETY: a registered buffer's bytes are all initialised (zeroed at allocation).
        unsafe { self.buf.set_init(end) };
    }

    /// The buffer and the ranges.
    pub(crate) fn into_parts(self) -> (crate::FixedBuf, Vec<std::ops::Range<usize>>) {
        (self.buf, self.ranges)
    }
}

impl fmt::Debug for FixedVecs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedVecs")
            .field("buf", &self.buf)
            .field("ranges", &self.ranges)
            .finish()
    }
}

/// What a `CLOSE` closes: a descriptor the op owns until the kernel closed it, or a slot of
/// the ring's registered-file table.
#[derive(Debug)]
pub enum Closing {
    /// The descriptor (`None` once handed back or forgotten).
    Fd(Option<OwnedFd>),
    /// The slot's index.
    Slot(u32),
}
