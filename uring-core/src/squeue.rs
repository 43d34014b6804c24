//! The submission side: reserving SQEs in place, publishing them, entering the kernel.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::raw::{RawSq, SqeSlots};
use crate::sqe::Sqe;
use crate::sync::{fence, Ordering};
use std::fmt;
use std::io;
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
    /// The process's fork generation when the ring was set up: see
    /// [`SubmissionQueue::check_process`].
    generation: u64,
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
            generation: backend.setup_generation(),
            backend,
        }
    }

    /// Refuses to hand SQEs to the kernel in a forked child of the process that set the ring
    /// up ([`Error::ForkedChild`]): this copy's positions are not the parent's, and the kernel
    /// would consume the parent's SQEs.
    ///
    /// Only the paths that reach the kernel check, and the ones that enter it leave the check
    /// to the kernel backend's `enter` (one per system call), turning its `EPERM` into
    /// `ForkedChild`. `reserve`, `push` and the tail store of a submit write without a check,
    /// which is sound because a forked child's ring memory is a private copy of the parent's
    /// (made by the fork handler, see `crate::fork`), never the parent's ring. One load of a
    /// global and one comparison; nothing on the simulated kernel, whose memory a child copies
    /// anyway.
    #[inline(always)]
    fn check_process(&self) -> Result<()> {
        if self.in_forked_child() {
            return Err(Error::ForkedChild);
        }
        Ok(())
    }

    /// Whether this is a forked child of the process that set the ring up: see
    /// `check_process` (a plain `bool`, so that callers with no error to return make no
    /// `Error` to drop).
    #[inline(always)]
    fn in_forked_child(&self) -> bool {
        B::SHARED_AFTER_FORK && crate::fork::fork_generation() != self.generation
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
    /// (In a forked child this succeeds, in the child's private copy of the ring; submitting
    /// fails with [`Error::ForkedChild`].)
    #[inline]
    pub fn reserve(&mut self, n: u32) -> Result<Reservation<'_, B>> {
        self.make_room(n)?;
        let slots = self.raw.slots();
        let first = self.tail;
        for i in 0..n {
            // SAFETY: slot `first + i` is free (the kernel's head is past its previous use, by
            // the Acquire above or an earlier one), so nobody else reads or writes it now.
            unsafe { slots.clear(first.wrapping_add(i)) };
        }
        Ok(Reservation {
            sq: self,
            slots,
            first,
            n,
        })
    }

    /// Checks that `n` slots are free, re-reading the kernel's head if the cached one says not.
    #[inline]
    fn make_room(&mut self, n: u32) -> Result<()> {
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
        Ok(())
    }

    /// Copies a prepared SQE into the next free slot and commits it (the raw path): one copy,
    /// without zeroing the slot first as [`SubmissionQueue::reserve`] does (with `SQE128` the
    /// slot's second half, which `sqe` does not cover, is zeroed).
    ///
    /// # Safety
    ///
    /// As for [`Reservation::commit`]: what `sqe` points to stays valid until its completion
    /// is reaped.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] when the SQ is full. (As for [`SubmissionQueue::reserve`] in a
    /// forked child.)
    #[inline]
    pub unsafe fn push(&mut self, sqe: &Sqe) -> Result<()> {
        self.make_room(1)?;
        let slots = self.raw.slots();
        let p = slots.sqe(self.tail);
        // SAFETY: slot `tail` is free (as in `reserve`: the kernel's head is past its previous
        // use), so nobody else reads or writes it now; it is one SQE unit, or two with SQE128
        // (see `SqeSlots::sqe`), and all-zero is a valid `io_uring_sqe`.
        unsafe {
            p.write(sqe.0.clone());
            if slots.is_sqe128() {
                p.add(1).write(std::mem::zeroed());
            }
        }
        self.tail = self.tail.wrapping_add(1);
        Ok(())
    }

    /// Waits until at least `n` slots are free, and returns how many are.
    ///
    /// On an SQPOLL ring the kernel's poller thread frees slots on its own time, so a full
    /// queue right after [`SubmissionQueue::submit`] is normal: this publishes what is
    /// committed, wakes the poller if it sleeps with SQEs left to consume (even when there is
    /// room already), and waits until it has consumed enough. It first yields the CPU a few
    /// times (an awake poller frees slots within microseconds, without a system call here);
    /// then, while the queue is full, it blocks in the kernel, which can only wait for a full
    /// queue to have a first free slot (`IORING_ENTER_SQ_WAIT`, Linux 5.10); while it has
    /// room but less than `n`, it sleeps in growing steps of up to 1 ms, instead of spinning
    /// on the system call. On other rings the kernel consumes SQEs only while submitting, so there is
    /// nothing to wait for: this returns the free slots at once (perhaps fewer than `n`;
    /// submit first).
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] when `n` is more than the queue holds; [`Error::Os`] when entering
    /// the kernel fails (`EINTR` is retried); [`Error::ForkedChild`] in a forked child.
    pub fn wait_for_room(&mut self, n: u32) -> Result<u32> {
        self.check_process()?;
        let entries = self.raw.entries;
        if n > entries {
            return Err(Error::NoSpace {
                needed: n,
                free: self.free(),
                capacity: entries,
            });
        }
        if !self.sqpoll {
            return Ok(self.free());
        }
        self.publish();
        // Whether this call has woken the poller: once woken, it does not sleep again while
        // SQEs are queued (it re-reads the tail after announcing its sleep), so one wake-up is
        // enough, except before blocking in the kernel, where checking again costs nothing.
        let mut woken = false;
        let mut round = 0u32;
        loop {
            let free = self.free();
            let enough = free >= n;
            // Only a full queue can be waited for in the kernel; an awake poller usually frees
            // a slot within microseconds (it may post completions before it moves the head
            // past their SQEs), so yield a few rounds before entering the kernel for it.
            let block = !enough && free == 0 && round >= BACK_OFF_YIELDS;
            let mut flags = 0;
            // SQEs are queued (published above): a sleeping poller must be woken to take them,
            // whether or not we wait, or they would sit there until the next submit.
            if free < entries && (block || !woken) && self.sqpoll_needs_wakeup() {
                flags |= sys::IORING_ENTER_SQ_WAKEUP;
            }
            if block {
                // Returns once a slot is free (or a signal arrives).
                flags |= sys::IORING_ENTER_SQ_WAIT;
            } else if !enough && flags == 0 && round >= BACK_OFF_YIELDS {
                // About to sleep: an entry without flags fails if the poller will never
                // consume (a disabled ring: `EBADFD`; the poller gone: `EOWNERDEAD`).
                self.enter_for_room(0)?;
            }
            if flags != 0 && !self.enter_for_room(flags)? {
                continue;
            }
            woken |= flags & sys::IORING_ENTER_SQ_WAKEUP != 0;
            if enough {
                return Ok(free);
            }
            if !block {
                // Not full for long yet, or room but not enough (`IORING_ENTER_SQ_WAIT` would
                // return at once: it waits only while the queue is full): give the awake poller
                // time instead.
                back_off(&mut round);
            }
        }
    }

    /// Enters the kernel for [`SubmissionQueue::wait_for_room`] with `flags` (submitting and
    /// waiting for nothing); `Ok(false)` when interrupted by a signal.
    fn enter_for_room(&self, flags: u32) -> Result<bool> {
        match self.backend.enter(0, 0, flags, None) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(false),
            Err(_) if self.in_forked_child() => Err(Error::ForkedChild),
            Err(e) => Err(Error::os("io_uring_enter", e)),
        }
    }

    /// Publishes committed SQEs to the kernel's tail and returns how many are not yet consumed.
    ///
    /// In a forked child of the process that set the ring up (see [`Error::ForkedChild`]) it
    /// publishes nothing and returns 0.
    #[inline]
    pub fn flush(&mut self) -> u32 {
        if self.in_forked_child() {
            return 0;
        }
        self.publish()
    }

    /// [`SubmissionQueue::flush`] for callers that have checked the process.
    #[inline]
    fn publish(&mut self) -> u32 {
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
    /// On an SQPOLL ring the poller consumes on its own time, so the count returned there is
    /// not of SQEs consumed: it is how many published SQEs the poller had not consumed yet
    /// at the time of this call, those published by earlier calls included (0 once it has
    /// taken them all).
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] for `EAGAIN`/`EBUSY` (reap completions, then submit again),
    /// [`Error::ForkedChild`] in a forked child of the process that set the ring up,
    /// [`Error::Os`] otherwise. `EINTR` is retried.
    #[inline]
    pub fn submit(&mut self) -> Result<u32> {
        self.submit_and_wait(0)
    }

    /// As [`SubmissionQueue::submit`], and enters the kernel waiting until `want` completions are
    /// in the CQ. Returns the number of SQEs consumed (on an SQPOLL ring, as for
    /// [`SubmissionQueue::submit`], the number not consumed yet).
    ///
    /// The wait ends early when a signal interrupts it after SQEs were consumed; use
    /// [`crate::CompletionQueue::wait`] to be sure.
    #[inline]
    pub fn submit_and_wait(&mut self, want: u32) -> Result<u32> {
        // In a forked child this stores into the child's private copy of the ring memory, and
        // the kernel backend refuses the entry below: see `check_process`.
        let to_submit = self.publish();
        let mut flags = if want > 0 {
            sys::IORING_ENTER_GETEVENTS
        } else {
            0
        };
        if self.sqpoll {
            if self.sqpoll_needs_wakeup() {
                flags |= sys::IORING_ENTER_SQ_WAKEUP;
            } else if want == 0 {
                self.check_process()?;
                return Ok(to_submit);
            }
        } else if to_submit == 0 && want == 0 {
            self.check_process()?;
            return Ok(0);
        }
        match self.backend.enter(to_submit, want, flags, None) {
            Ok(n) => Ok(self.consumed(to_submit, to_submit, n)),
            Err(e) => self.enter_failed(e, to_submit, want, flags),
        }
    }

    /// How many of the `total` SQEs of this submit are consumed, after an entry that asked the
    /// kernel for `to_submit` of them and got `n`.
    #[inline]
    fn consumed(&mut self, total: u32, to_submit: u32, n: u32) -> u32 {
        if self.sqpoll {
            // The poller consumes them on its own; the entry only woke it or waited.
            return total;
        }
        self.sync_head();
        total - (to_submit - n)
    }

    /// The rare paths of [`SubmissionQueue::submit_and_wait`], out of line: `EINTR` (retried
    /// with what the kernel has not consumed yet), `EAGAIN`/`EBUSY`, other errors.
    #[cold]
    #[inline(never)]
    fn enter_failed(&mut self, mut e: io::Error, total: u32, want: u32, flags: u32) -> Result<u32> {
        loop {
            match e.raw_os_error() {
                Some(libc::EINTR) => {
                    // The kernel's head says what was consumed; submit the rest.
                    self.sync_head();
                    let to_submit = self.tail.wrapping_sub(self.head);
                    if to_submit == 0 && want == 0 {
                        return Ok(total);
                    }
                    match self.backend.enter(to_submit, want, flags, None) {
                        Ok(n) => return Ok(self.consumed(total, to_submit, n)),
                        Err(next) => e = next,
                    }
                }
                Some(libc::EAGAIN) | Some(libc::EBUSY) => return Err(Error::Busy(e)),
                // The kernel backend's refusal in a forked child.
                Some(libc::EPERM) if self.in_forked_child() => return Err(Error::ForkedChild),
                _ => return Err(Error::os("io_uring_enter", e)),
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

/// The steps of a resize ([`crate::Ring::resize`]) that touch the queue's own state.
#[cfg(not(loom))]
impl<B: Backend> SubmissionQueue<B> {
    /// A handle to the backend, to call it while the queue is borrowed mutably.
    pub(crate) fn backend_handle(&self) -> Arc<B> {
        Arc::clone(&self.backend)
    }

    /// Whether a kernel thread polls the SQ (`IORING_SETUP_SQPOLL`).
    pub(crate) fn is_sqpoll(&self) -> bool {
        self.sqpoll
    }

    /// The views of the ring memory the queue uses now.
    pub(crate) fn raw(&self) -> &RawSq {
        &self.raw
    }

    /// Before the kernel resizes the rings: publishes every committed SQE, so that the kernel
    /// carries it over (it copies the SQEs between its head and tail, and no others).
    pub(crate) fn publish_for_resize(&mut self) {
        self.publish();
    }

    /// After the resize: the queue uses `raw`, the new memory, from now on (its SQ array set
    /// up as at setup). The positions carry over: the kernel gave the new rings the old head
    /// and tail.
    pub(crate) fn replace_raw(&mut self, raw: RawSq) {
        raw.init_identity_array();
        self.raw = raw;
        self.sync_head();
    }
}

/// How many rounds of [`back_off`] yield before it starts sleeping.
const BACK_OFF_YIELDS: u32 = 16;

/// One round of waiting for an SQPOLL poller that is awake and consuming: yields the CPU for
/// the first rounds (the poller usually needs microseconds), then sleeps 1 µs, 2 µs, ... up to
/// 1 ms, so that a poller busy with a long batch is not raced by system calls.
fn back_off(round: &mut u32) {
    if *round < BACK_OFF_YIELDS {
        crate::sync::yield_now();
    } else {
        let exp = (*round - BACK_OFF_YIELDS).min(10);
        std::thread::sleep(std::time::Duration::from_micros(1 << exp));
    }
    *round = round.saturating_add(1);
}

/// `n` SQEs reserved in place in the submission queue, zeroed. Fill them with the [`Sqe`]
/// setters, then [`Reservation::commit`]; dropping a reservation gives the slots back.
pub struct Reservation<'a, B: Backend> {
    sq: &'a mut SubmissionQueue<B>,
    /// The slot geometry, copied so that it stays in registers while SQEs are filled.
    slots: SqeSlots,
    /// The queue's tail when reserved: the reserved SQEs are `first .. first + n`.
    first: u32,
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
        let p = self.slots.sqe(self.first.wrapping_add(i));
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
        if i >= self.n {
            return None;
        }
        let p = self.slots.big_cmd(self.first.wrapping_add(i))?;
        // SAFETY: the slot is reserved for us (see `get`) and the command area lies inside it;
        // the borrow is tied to `&mut self`.
        Some(unsafe { &mut *p })
    }

    /// Commits the reserved SQEs (in order) to the queue; [`SubmissionQueue::submit`] or
    /// [`SubmissionQueue::flush`] then hands them to the kernel.
    ///
    /// # Safety
    ///
    /// Every address, length and file the SQEs name must be valid for what their opcodes do
    /// (read, write, keep) until their completions are reaped: buffers, iovec arrays and what
    /// they point to, paths, timespecs, sockaddrs, registered buffer and file indices. An SQE
    /// that posts a completion into another ring (`IORING_OP_MSG_RING`) must not post one that
    /// ring's owner could take for one of its own (a `uring-ops` ring routes completions by
    /// user data alone).
    #[inline]
    pub unsafe fn commit(self) {
        self.sq.tail = self.first.wrapping_add(self.n);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{sys, Builder, Sqe};

    /// `reserve` hands out zeroed slots, whatever they held, for small and larger reservations
    /// and when the reservation wraps around the end of the SQE array; with `SQE128`, the whole
    /// 128-byte slot.
    #[test]
    fn reserve_zeroes_every_slot_across_the_wrap() {
        for sqe128 in [false, true] {
            let b = Builder::new(8);
            let mut ring = if sqe128 { b.sqe128() } else { b }.build_sim().unwrap();
            // Dirty all 8 slots, then move the tail to slot 5.
            for n in [8, 5] {
                let mut r = ring.sq().reserve(n).unwrap();
                for i in 0..n {
                    r.get(i)
                        .unwrap()
                        .set_opcode(sys::IORING_OP_NOP as u8)
                        .set_len(0xdead)
                        .set_off(u64::MAX)
                        .set_user_data(u64::MAX);
                    if let Some(cmd) = r.big_cmd(i) {
                        cmd.fill(0xab);
                    }
                }
                // SAFETY: NOPs name no memory.
                unsafe { r.commit() };
                assert_eq!(ring.submit_and_wait(n).unwrap(), n);
                assert_eq!(ring.cq().batch().count(), n as usize);
            }
            // 6 slots: 5, 6, 7, then 0, 1, 2; then 3 slots, one at a time.
            for n in [6, 3] {
                let mut r = ring.sq().reserve(n).unwrap();
                for i in 0..n {
                    let sqe: *const Sqe = r.get(i).unwrap();
                    // SAFETY: an `Sqe` is 64 initialised bytes (plain integers and unions of
                    // them), read through a pointer to it.
                    let bytes = unsafe { sqe.cast::<[u8; 64]>().read() };
                    assert_eq!(bytes, [0; 64], "sqe128={sqe128} n={n} slot {i}");
                    if let Some(cmd) = r.big_cmd(i) {
                        assert_eq!(*cmd, [0; 80], "sqe128={sqe128} n={n} slot {i}'s command");
                    }
                }
            }
        }
    }

    /// `push` copies the SQE whole over whatever the slot held, and with `SQE128` zeroes the
    /// slot's second half (which a 64-byte `Sqe` does not cover) instead of leaving a previous
    /// command there.
    #[test]
    fn push_overwrites_the_whole_slot() {
        let mut ring = Builder::new(2).sqe128().build_sim().unwrap();
        let mut r = ring.sq().reserve(2).unwrap();
        for i in 0..2 {
            r.get(i)
                .unwrap()
                .set_opcode(sys::IORING_OP_NOP as u8)
                .set_len(0xdead)
                .set_user_data(9);
            r.big_cmd(i).unwrap().fill(0xab);
        }
        // SAFETY: NOPs name no memory.
        unsafe { r.commit() };
        assert_eq!(ring.submit_and_wait(2).unwrap(), 2);
        assert_eq!(ring.cq().batch().count(), 2);

        let mut sqe = Sqe::zeroed();
        sqe.set_opcode(sys::IORING_OP_NOP as u8).set_user_data(7);
        for _ in 0..2 {
            // SAFETY: a NOP names no memory.
            unsafe { ring.sq().push(&sqe).unwrap() };
        }
        let sq = ring.sq();
        let slots = sq.raw.slots();
        for i in 0..2 {
            // SAFETY: committed, not yet submitted: the kernel does not touch the slot, which
            // is 128 bytes (SQE128).
            let bytes = unsafe {
                slots
                    .sqe(sq.tail.wrapping_sub(2 - i))
                    .cast::<[u8; 128]>()
                    .read()
            };
            let mut want = [0u8; 128];
            want[0] = sys::IORING_OP_NOP as u8;
            want[32..40].copy_from_slice(&7u64.to_ne_bytes());
            assert_eq!(bytes, want, "slot {i}: the new SQE and nothing else");
        }
        assert!(matches!(
            // SAFETY: a NOP names no memory.
            unsafe { sq.push(&sqe) },
            Err(crate::Error::NoSpace {
                needed: 1,
                free: 0,
                capacity: 2
            })
        ));
        assert_eq!(ring.submit_and_wait(2).unwrap(), 2);
        let ud: Vec<u64> = ring.cq().batch().map(|c| c.user_data()).collect();
        assert_eq!(ud, [7, 7]);
    }
}
