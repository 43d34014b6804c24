//! Futexes: `FUTEX_WAIT`, `FUTEX_WAKE`, `FUTEX_WAITV`.
//!
//! The futex word is an `Arc<AtomicU32>`: the op holds a share of it, so the word the kernel
//! watches stays allocated until the op completes, whoever else drops theirs. Words are
//! private to the process (`FUTEX2_PRIVATE`): a waiter here is woken by a wake of the same
//! word in this process (an op, or the `futex(2)` system call with `FUTEX_WAKE_PRIVATE`).

use super::define::op;
use super::kinds::FutexWaits;
use crate::error::Error;
use crate::op::res_to_io;
use std::io;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use uring_core::sys;

/// `FUTEX2_SIZE_U32 | FUTEX2_PRIVATE`: a 32-bit word, private to the process.
const FUTEX2_U32_PRIVATE: u32 = 0x02 | 128;
/// The most words one `FUTEX_WAITV` takes (`FUTEX_WAITV_MAX`).
pub const FUTEX_WAITV_MAX: usize = 128;

op! {
    /// Waits on a futex word while it holds an expected value (`IORING_OP_FUTEX_WAIT`,
    /// Linux 6.7): the `FUTEX_WAIT_BITSET` of io_uring.
    ///
    /// Owns a share of the word until completion. Returns `Ok(())` when woken; `EAGAIN` when
    /// the word did not hold the value when the op started (so there was nothing to wait for),
    /// `ECANCELED` when cancelled.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::sync::{atomic::AtomicU32, Arc};
    /// use uring_ops::{ops::{FutexWait, FutexWake}, Uring};
    /// let word = Arc::new(AtomicU32::new(0));
    /// let mut ring = Uring::new(8)?;
    /// let wait = ring.push(FutexWait::new(&word, 0))?;
    /// ring.submit()?;
    /// let wake = ring.push(FutexWake::new(&word, 1))?;
    /// assert_eq!(ring.wait(wake)??, 1);
    /// ring.wait(wait)??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct FutexWait {
        fn with { word: futex(), expected: plain(u32) }
        set {
            /// Wakes only for a wake whose mask shares a bit with `mask` (default: all bits,
            /// `FUTEX_BITSET_MATCH_ANY`; 0 is refused by the kernel).
            mask: u32 = u32::MAX,
        }
    }
    opcode = sys::IORING_OP_FUTEX_WAIT;
    prepare(op, sqe) {
        sqe.set_fd(FUTEX2_U32_PRIVATE as i32)
            .set_futex(&op.word)
            .set_off(u64::from(op.expected))
            .set_addr3(u64::from(op.mask));
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
}

impl FutexWait {
    /// Waits on `word` while it holds `expected`.
    pub fn new(word: &Arc<AtomicU32>, expected: u32) -> Self {
        Self::with(word.clone(), expected)
    }
}

op! {
    /// Wakes waiters of a futex word (`IORING_OP_FUTEX_WAKE`, Linux 6.7): the
    /// `FUTEX_WAKE_BITSET` of io_uring. Wakes waiting ops and threads alike.
    ///
    /// Owns a share of the word until completion. Returns how many waiters it woke.
    pub struct FutexWake {
        fn with { word: futex(), count: plain(u32) }
        set {
            /// Wakes only waiters whose mask shares a bit with `mask` (default: any).
            mask: u32 = u32::MAX,
        }
    }
    opcode = sys::IORING_OP_FUTEX_WAKE;
    prepare(op, sqe) {
        sqe.set_fd(FUTEX2_U32_PRIVATE as i32)
            .set_futex(&op.word)
            .set_off(u64::from(op.count))
            .set_addr3(u64::from(op.mask));
    }
    complete(_op, res, _flags) -> io::Result<u32> { res_to_io(res) }
}

impl FutexWake {
    /// Wakes at most `count` waiters of `word` (`u32::MAX`: all).
    pub fn new(word: &Arc<AtomicU32>, count: u32) -> Self {
        Self::with(word.clone(), count)
    }
}

op! {
    /// Waits on several futex words at once, each while it holds its expected value
    /// (`IORING_OP_FUTEX_WAITV`, Linux 6.7): the `futex_waitv(2)` of io_uring.
    ///
    /// Owns the `futex_waitv` array and a share of each word until completion. Returns the
    /// index of the word that was woken; `EAGAIN` when one did not hold its value at the
    /// start. Takes 1 to [`FUTEX_WAITV_MAX`] words (a push refuses other counts).
    pub struct FutexWaitV {
        fn with { words: futexv() }
    }
    opcode = sys::IORING_OP_FUTEX_WAITV;
    prepare(op, sqe) { sqe.set_futexv(&op.words); }
    complete(_op, res, _flags) -> io::Result<usize> { res_to_io(res).map(|i| i as usize) }
    check(op) {
        let n = op.words.len();
        if (1..=FUTEX_WAITV_MAX).contains(&n) {
            return Ok(());
        }
        Err(Error::out_of_range("FutexWaitV", "the number of words", n as u64, 1, FUTEX_WAITV_MAX as u64))
    }
}

impl FutexWaitV {
    /// Waits until one of `words` is woken, each `(word, expected)` waiting while the word
    /// holds `expected`.
    pub fn new<'a>(words: impl IntoIterator<Item = (&'a Arc<AtomicU32>, u32)>) -> Self {
        let waits = words.into_iter().map(|(w, v)| (w.clone(), v)).collect();
        Self::with(FutexWaits::new(waits, FUTEX2_U32_PRIVATE))
    }

    /// The words, back.
    pub fn into_words(self) -> Vec<Arc<AtomicU32>> {
        self.words.into_words()
    }
}
