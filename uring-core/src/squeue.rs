//! The submission side: reserving SQEs in place, publishing them, entering the kernel.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::raw::RawSq;
use crate::sqe::Sqe;
use crate::sync::{fence, Ordering};
use std::fmt;
use std::sync::Arc;
use uring_sys as sys;

/// The submission half of a ring. `Send` (and usable from one thread at a time through
/// `&mut`), so it can live on a different thread from the [`crate::CompletionQueue`].
pub struct SubmissionQueue<B: Backend> {
    raw: RawSq,
    /// Our tail: SQEs up to here are committed (written and vouched for). Published to the
    /// kernel's tail word by [`SubmissionQueue::flush`]. Always in `khead ..= khead + entries`.
    tail: u32,
    /// Our last reading of the kernel's head: stale (behind the real head) but never ahead of it,
    /// so free space computed from it is never overestimated.
    head: u32,
    sqpoll: bool,
    backend: Arc<B>,
}

impl<B: Backend> fmt::Debug for SubmissionQueue<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmissionQueue")
            .field("entries", &self.raw.entries)
            .field("tail", &self.tail)
            .field("cached_head", &self.head)
            .field("sqpoll", &self.sqpoll)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> SubmissionQueue<B> {
    pub(crate) fn new(raw: RawSq, sqpoll: bool, backend: Arc<B>) -> Self {
        raw.init_identity_array();
        // Acquire: pairs with the kernel's release of the SQ head (0 on a new ring).
        let head = raw.head().load(Ordering::Acquire);
        // Relaxed: only we write the SQ tail.
        let tail = raw.tail().load(Ordering::Relaxed);
        SubmissionQueue {
            raw,
            tail,
            head,
            sqpoll,
            backend,
        }
    }

    /// The backend this queue submits to.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Number of SQ slots.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.raw.entries
    }

    /// Refreshes the cached kernel head.
    #[inline]
    fn sync_head(&mut self) {
        // Acquire: pairs with the kernel's release store of the SQ head after it has read the
        // SQEs up to it, so those slots may be overwritten from here on.
        self.head = self.raw.head().load(Ordering::Acquire);
    }

    /// SQEs committed but not yet consumed by the kernel (as of the last head reading).
    #[inline]
    pub fn pending(&mut self) -> u32 {
        self.sync_head();
        self.tail.wrapping_sub(self.head)
    }

    /// Free SQ slots now.
    #[inline]
    pub fn free(&mut self) -> u32 {
        self.raw.entries - self.pending()
    }

    /// Whether no slot is free.
    #[inline]
    pub fn is_full(&mut self) -> bool {
        self.free() == 0
    }

    /// Reserves `n` consecutive SQEs, all or nothing, zeroed and ready to fill in place.
    ///
    /// Nothing reaches the kernel until [`Reservation::commit`]; dropping the reservation gives
    /// the slots back.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] when fewer than `n` slots are free (the queue is left unchanged).
    #[inline]
    pub fn reserve(&mut self, n: u32) -> Result<Reservation<'_, B>> {
        let entries = self.raw.entries;
        if entries - self.tail.wrapping_sub(self.head) < n {
            self.sync_head();
            let free = entries - self.tail.wrapping_sub(self.head);
            if free < n {
                return Err(Error::NoSpace {
                    needed: n,
                    free,
                    capacity: entries,
                });
            }
        }
        for i in 0..n {
            // SAFETY: slot `tail + i` is free (the kernel's head is past its previous use, by the
            // Acquire above or an earlier one), so nobody else reads or writes it now.
            unsafe {
                self.raw
                    .sqe_for_write(self.tail.wrapping_add(i))
                    .write(Sqe::zeroed().0)
            };
        }
        Ok(Reservation { sq: self, n })
    }

    /// Publishes committed SQEs to the kernel's tail and returns how many are not yet consumed.
    #[inline]
    pub fn flush(&mut self) -> u32 {
        // Release: publishes the SQE slots (and the identity index array) written before it;
        // pairs with the kernel's acquire load of the SQ tail in `io_sqring_entries`.
        self.raw.tail().store(self.tail, Ordering::Release);
        self.tail
            .wrapping_sub(self.raw.head().load(Ordering::Acquire))
    }

    /// Whether the SQPOLL thread sleeps and must be woken. Only meaningful for SQPOLL rings.
    #[inline]
    fn sqpoll_needs_wakeup(&self) -> bool {
        // SeqCst fence: orders our tail store before this flags load; pairs with the SQPOLL
        // thread's full barrier between setting NEED_WAKEUP and re-reading the tail, so either
        // it sees our new tail or we see its NEED_WAKEUP.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        self.raw.flags().load(Ordering::Relaxed) & sys::IORING_SQ_NEED_WAKEUP != 0
    }

    /// Publishes committed SQEs and has the kernel consume them. Returns the number consumed.
    ///
    /// On an SQPOLL ring no system call is made while the poller is awake. SQEs the kernel did
    /// not consume stay queued (and their slots stay taken) until a later submit.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] for `EAGAIN`/`EBUSY` (reap completions, then submit again), [`Error::Os`]
    /// otherwise. `EINTR` is retried.
    #[inline]
    pub fn submit(&mut self) -> Result<u32> {
        self.submit_and_wait(0)
    }

    /// As [`SubmissionQueue::submit`], and enters the kernel waiting until `want` completions are
    /// in the CQ. Returns the number of SQEs consumed.
    ///
    /// The wait ends early when a signal interrupts it after SQEs were consumed; use
    /// [`crate::CompletionQueue::wait`] to be sure.
    pub fn submit_and_wait(&mut self, want: u32) -> Result<u32> {
        let mut to_submit = self.flush();
        let mut flags = if want > 0 {
            sys::IORING_ENTER_GETEVENTS
        } else {
            0
        };
        if self.sqpoll {
            if self.sqpoll_needs_wakeup() {
                flags |= sys::IORING_ENTER_SQ_WAKEUP;
            } else if want == 0 {
                return Ok(to_submit);
            }
        } else if to_submit == 0 && want == 0 {
            return Ok(0);
        }
        let total = to_submit;
        loop {
            match self.backend.enter(to_submit, want, flags, None) {
                Ok(n) => {
                    if self.sqpoll {
                        return Ok(total);
                    }
                    self.sync_head();
                    return Ok(total - (to_submit - n));
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => {
                        // The kernel's head says what was consumed; submit the rest.
                        self.sync_head();
                        to_submit = self.tail.wrapping_sub(self.head);
                        if to_submit == 0 && want == 0 {
                            return Ok(total);
                        }
                    }
                    Some(libc::EAGAIN) | Some(libc::EBUSY) => return Err(Error::Busy(e)),
                    _ => return Err(Error::os("io_uring_enter", e)),
                },
            }
        }
    }

    /// Number of invalid SQEs the kernel dropped (`sq_off.dropped`).
    pub fn dropped(&self) -> u32 {
        // Relaxed: a statistics counter written by the kernel; nothing is read through it.
        self.raw.dropped().load(Ordering::Relaxed)
    }

    /// The raw SQ flags word (`IORING_SQ_NEED_WAKEUP`, `IORING_SQ_CQ_OVERFLOW`,
    /// `IORING_SQ_TASKRUN`).
    pub fn raw_flags(&self) -> u32 {
        // Relaxed: a hint word written by the kernel; nothing is read through it.
        self.raw.flags().load(Ordering::Relaxed)
    }
}

/// `n` SQEs reserved in place in the submission queue, zeroed. Fill them with the [`Sqe`]
/// setters, then [`Reservation::commit`]; dropping a reservation gives the slots back.
pub struct Reservation<'a, B: Backend> {
    sq: &'a mut SubmissionQueue<B>,
    n: u32,
}

impl<B: Backend> fmt::Debug for Reservation<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation").field("n", &self.n).finish()
    }
}

impl<'a, B: Backend> Reservation<'a, B> {
    /// How many SQEs are reserved.
    #[inline]
    pub fn len(&self) -> u32 {
        self.n
    }

    /// Whether nothing is reserved.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `i`th reserved SQE, or `None` past the end.
    #[inline]
    pub fn get(&mut self, i: u32) -> Option<&mut Sqe> {
        if i >= self.n {
            return None;
        }
        let p = self.sq.raw.sqe_for_write(self.sq.tail.wrapping_add(i));
        // SAFETY: the slot is reserved for us (free in the kernel's view, not yet published) and
        // `Sqe` is a transparent wrapper of `io_uring_sqe`; the borrow is tied to `&mut self`.
        Some(unsafe { &mut *p.cast::<Sqe>() })
    }

    /// The first reserved SQE (panics on an empty reservation, which `reserve(0)` makes).
    #[inline]
    pub fn first(&mut self) -> &mut Sqe {
        self.get(0).expect("a reservation of at least one SQE")
    }

    /// The 128-byte command area of SQE `i` on an `IORING_SETUP_SQE128` ring (the 80 bytes
    /// starting at `cmd`), or `None` on a 64-byte-SQE ring.
    pub fn big_cmd(&mut self, i: u32) -> Option<&mut [u8; 80]> {
        if i >= self.n || self.sq.raw.sqe_shift == 0 {
            return None;
        }
        let p = self.sq.raw.sqe_for_write(self.sq.tail.wrapping_add(i));
        // SAFETY: with SQE128 each slot is 128 bytes; bytes 48..128 are the command area.
        Some(unsafe { &mut *p.cast::<u8>().add(48).cast::<[u8; 80]>() })
    }

    /// Commits the reserved SQEs (in order) to the queue; [`SubmissionQueue::submit`] or
    /// [`SubmissionQueue::flush`] then hands them to the kernel.
    ///
    /// # Safety
    ///
    /// Every address, length and file the SQEs name must be valid for what their opcodes do
    /// (read, write, keep) until their completions are reaped: buffers, iovec arrays and what
    /// they point to, paths, timespecs, sockaddrs, registered buffer and file indices.
    #[inline]
    pub unsafe fn commit(self) {
        self.sq.tail = self.sq.tail.wrapping_add(self.n);
    }
}
