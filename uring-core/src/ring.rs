//! A ring: its two halves, the backend that owns its memory, and what setup answered.

use crate::backend::Backend;
use crate::cqe::Cqe;
use crate::cqueue::CompletionQueue;
use crate::error::{Error, Result};
use crate::raw::{RawCq, RawSq};
use crate::setup::{Builder, Features, RingInfo, SetupFlags};
use crate::sqe::Sqe;
use crate::squeue::SubmissionQueue;
use std::sync::Arc;
use std::time::Duration;
use uring_sys as sys;

use crate::backend::DefaultBackend;
#[cfg(not(loom))]
use crate::backend::Kernel;

/// An io_uring instance: a [`SubmissionQueue`] and a [`CompletionQueue`] over memory owned by a
/// [`Backend`] (the running kernel by default, or the simulated one).
///
/// Used from one thread through `&mut` with no synchronisation at all, or split into its two
/// halves ([`Ring::split`], [`Ring::into_split`]) that live on different threads.
///
/// # Examples
///
/// ```
/// use uring_core::{Builder, Ring};
/// # if cfg!(miri) { return Ok(()); } // Miri cannot make io_uring system calls.
/// let mut ring = Builder::new(8).build()?;
/// let mut r = ring.sq().reserve(1)?;
/// r.first().set_opcode(uring_core::sys::IORING_OP_NOP as u8).set_user_data(7);
/// // SAFETY: a NOP names no memory.
/// unsafe { r.commit() };
/// ring.submit_and_wait(1)?;
/// let cqe = ring.cq().pop().unwrap();
/// assert_eq!((cqe.user_data(), cqe.result()?), (7, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Ring<B: Backend = DefaultBackend> {
    sq: SubmissionQueue<B>,
    cq: CompletionQueue<B>,
    info: RingInfo,
    backend: Arc<B>,
}

// Static assertions: a ring and each of its halves can move to another thread, on either
// backend (the halves are documented as `Send`, and `Ring::into_split` exists for that).
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Ring<DefaultBackend>>();
    assert_send::<SubmissionQueue<DefaultBackend>>();
    assert_send::<CompletionQueue<DefaultBackend>>();
};

#[cfg(any(test, loom, feature = "test-util"))]
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<SubmissionQueue<crate::sim::Sim>>();
    assert_send::<CompletionQueue<crate::sim::Sim>>();
};

impl<B: Backend> Ring<B> {
    /// Builds the two halves over `backend`'s memory.
    ///
    /// # Safety
    ///
    /// `sq` and `cq` must point into memory owned by `backend`, laid out as `p` says.
    unsafe fn from_parts(backend: Arc<B>, sq: RawSq, cq: RawCq, p: &sys::io_uring_params) -> Self {
        let flags = SetupFlags::from_bits_retain(p.flags);
        let info = RingInfo {
            sq_entries: p.sq_entries,
            cq_entries: p.cq_entries,
            features: Features::from_bits_retain(p.features),
            flags,
        };
        Ring {
            sq: SubmissionQueue::new(sq, flags.contains(SetupFlags::SQPOLL), backend.clone()),
            cq: CompletionQueue::new(cq, flags.contains(SetupFlags::IOPOLL), backend.clone()),
            info,
            backend,
        }
    }

    /// What the kernel answered at setup (real sizes, features, flags), with the flags brought
    /// up to date: [`SetupFlags::R_DISABLED`] is reported only while the ring is disabled,
    /// not after [`crate::Registrar::enable_rings`] succeeded (on any thread, through this
    /// ring or its backend).
    ///
    /// Returned by value, since the flags and sizes can change (the sizes with
    /// [`Ring::resize`](crate::Ring::resize), which the queues' capacities always match); the
    /// features never do.
    pub fn info(&self) -> RingInfo {
        let mut info = self.info;
        // The queues' own sizes: a resize may have changed them.
        info.sq_entries = self.sq.capacity();
        info.cq_entries = self.cq.capacity();
        if self.backend.enabled_since_setup() {
            info.flags.remove(SetupFlags::R_DISABLED);
        }
        info
    }

    /// The backend (the kernel's ring fd, or the simulated kernel).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// A shared handle to the backend, which stays valid after the ring is split
    /// ([`Ring::into_split`]): for registration on a ring whose halves live behind locks.
    pub fn backend_handle(&self) -> Arc<B> {
        Arc::clone(&self.backend)
    }

    /// The submission half.
    #[inline]
    pub fn sq(&mut self) -> &mut SubmissionQueue<B> {
        &mut self.sq
    }

    /// The completion half.
    #[inline]
    pub fn cq(&mut self) -> &mut CompletionQueue<B> {
        &mut self.cq
    }

    /// Both halves at once, borrowed (for example to hand them to two scoped threads).
    #[inline]
    pub fn split(&mut self) -> (&mut SubmissionQueue<B>, &mut CompletionQueue<B>) {
        (&mut self.sq, &mut self.cq)
    }

    /// Both halves, owned. Each keeps the ring memory alive; the ring is closed and unmapped
    /// when both are dropped.
    pub fn into_split(self) -> (SubmissionQueue<B>, CompletionQueue<B>) {
        (self.sq, self.cq)
    }

    /// Copies a prepared SQE into the next free slot and commits it (the raw path).
    ///
    /// # Safety
    ///
    /// As for [`crate::Reservation::commit`]: what `sqe` points to stays valid until its
    /// completion is reaped.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] when the SQ is full.
    #[inline]
    pub unsafe fn push(&mut self, sqe: &Sqe) -> Result<()> {
        // SAFETY: forwarded to the caller.
        unsafe { self.sq.push(sqe) }
    }

    /// Submits committed SQEs. See [`SubmissionQueue::submit`].
    #[inline]
    pub fn submit(&mut self) -> Result<u32> {
        self.sq.submit()
    }

    /// Submits committed SQEs and waits until `want` completions are ready, whatever signals
    /// arrive in between. Returns the number of SQEs consumed.
    #[inline]
    pub fn submit_and_wait(&mut self, want: u32) -> Result<u32> {
        let mut total = self.sq.submit_and_wait(want)?;
        if want == 0 {
            return Ok(total);
        }
        // When the kernel takes only part of the batch it returns without waiting; hand it the
        // rest until it has everything (or makes no progress), then wait for the completions.
        while self.cq.ready() < want
            && !self.info.flags.contains(SetupFlags::SQPOLL)
            && self.sq.pending() > 0
        {
            let n = self.sq.submit_and_wait(want)?;
            total += n;
            if n == 0 {
                break;
            }
        }
        // `submit_and_wait` with `want > 0` always enters the kernel, which the kernel backend
        // refuses a forked child: this process set the ring up.
        self.cq.wait_in_owner(want)?;
        Ok(total)
    }

    /// Waits until `want` completions are ready. See [`CompletionQueue::wait`].
    pub fn wait(&mut self, want: u32) -> Result<u32> {
        self.cq.wait(want)
    }

    /// Waits until `want` completions are ready or `timeout` passes ([`Error::Timeout`]). A
    /// timeout too long for `Instant` ([`Duration::MAX`]) is no deadline (see
    /// [`crate::deadline_after`]).
    pub fn wait_timeout(&mut self, want: u32, timeout: Duration) -> Result<u32> {
        self.cq.wait_timeout(want, timeout)
    }

    /// Submits, and when the kernel pushes back (`EAGAIN`/`EBUSY`) reaps ready completions into
    /// `reap` and tries again, until every committed SQE is consumed. Returns the number of SQEs
    /// consumed.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] for other failures; [`Error::Busy`] if the kernel still refuses after the
    /// CQ has been drained and it was waited on 16 times.
    pub fn submit_or_reap(&mut self, mut reap: impl FnMut(Cqe)) -> Result<u32> {
        let mut total = 0;
        let mut refusals = 0;
        loop {
            match self.sq.submit() {
                Ok(n) => {
                    total += n;
                    if self.sq.pending() == 0 || self.info.flags.contains(SetupFlags::SQPOLL) {
                        return Ok(total);
                    }
                }
                Err(Error::Busy(e)) => {
                    refusals += 1;
                    let mut reaped = 0;
                    for cqe in self.cq.batch() {
                        reaped += 1;
                        reap(cqe);
                    }
                    if reaped == 0 {
                        if refusals > 16 {
                            return Err(Error::Busy(e));
                        }
                        // Nothing to reap yet: let the kernel finish something.
                        match self.cq.wait_timeout(1, Duration::from_millis(10)) {
                            // A refusal here counts like one of submit's.
                            Ok(_) | Err(Error::Timeout) | Err(Error::Busy(_)) => {}
                            Err(other) => return Err(other),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(not(loom))]
impl Ring<Kernel> {
    /// A ring on the running kernel with default settings and `entries` SQ entries.
    ///
    /// # Errors
    ///
    /// As for [`Builder::build`].
    pub fn new(entries: u32) -> Result<Self> {
        Builder::new(entries).build()
    }

    pub(crate) fn with_kernel(b: &Builder) -> Result<Self> {
        let (kernel, p) = Kernel::setup(b)?;
        let mem = kernel.memory();
        let no_sqarray = p.flags & sys::IORING_SETUP_NO_SQARRAY != 0;
        // SAFETY: `mem` is the kernel's mapping for this ring, laid out as `p` says, owned by
        // `kernel`, which the queues keep alive through the `Arc`.
        unsafe {
            let sq = RawSq::new(&mem, &p, no_sqarray);
            let cq = RawCq::new(&mem, &p);
            Ok(Ring::from_parts(Arc::new(kernel), sq, cq, &p))
        }
    }
}

#[cfg(not(loom))]
impl std::os::fd::AsFd for Ring<Kernel> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.backend.as_fd()
    }
}

#[cfg(not(loom))]
impl std::os::fd::AsRawFd for Ring<Kernel> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.backend.as_fd().as_raw_fd()
    }
}

#[cfg(any(test, loom, feature = "test-util"))]
impl Ring<crate::sim::Sim> {
    pub(crate) fn with_sim(b: &Builder, config: crate::sim::SimConfig) -> Result<Self> {
        let sim = Arc::new(crate::sim::Sim::new(b, config)?);
        let (sq, cq, p) = sim.views();
        // SAFETY: the views point into `sim`'s heap memory, laid out as `p` says; the queues
        // keep `sim` alive through the `Arc`.
        Ok(unsafe { Ring::from_parts(sim, sq, cq, &p) })
    }

    /// A shared handle to the simulated kernel, for a "kernel" thread that calls
    /// [`crate::sim::Sim::service`] (with [`crate::sim::SimConfig::manual`]) while this ring, or
    /// its halves, submit and reap on other threads. The ring memory lives as long as any handle.
    pub fn sim_handle(&self) -> Arc<crate::sim::Sim> {
        self.backend.clone()
    }
}
