//! [`LocalRing`]: a ring for the tasks of one thread, awaited from any executor.

use super::drive::{check_setup, flush_cancels};
use super::waiters::{LocalNotify, Waiters};
use super::{sqes, AsyncRing, Items, Polled, Pushed, Run};
use crate::completion::Outcome;
use crate::error::{Error, PushError, Result};
use crate::multishot::{Multishot, MultishotOp};
use crate::op::Submit;
use crate::push::user_data;
use crate::uring::{Ticket, Uring};
use std::cell::{RefCell, RefMut};
use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::Waker;
use uring_core::{Builder, Kernel, Ring};

/// A ring for the tasks of one thread (`!Send`): every op and chain becomes a future
/// ([`LocalRing::run`]), every multishot op a stream ([`LocalRing::items`]), awaited from any
/// executor, with no lock and no atomic operation of its own on the way.
///
/// The ring is driven by its [`super::Driver`] ([`LocalRing::driver`]), a future spawned once
/// on the same thread's executor: it submits what the futures pushed, one `io_uring_enter` per
/// batch, and wakes each future whose op completed. Until it runs, no future resolves.
///
/// A handle is cheap to clone (a reference count): give each task its own. The ring lives
/// while a handle (or its driver) does; the driver ends when it holds the last one, and the
/// ring is then dropped as a [`Uring`] is: what is still in flight is cancelled and waited for
/// (at most [`crate::DROP_DRAIN_TIMEOUT`], blocking the thread) and otherwise leaked, never
/// freed.
///
/// # Examples
///
/// On tokio's current-thread runtime (a `LocalSet` runs `!Send` tasks):
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use uring_ops::{awaitable::Tokio, ops::Read, Fd, LocalRing};
/// let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
/// tokio::task::LocalSet::new().block_on(&rt, async {
///     let ring = LocalRing::new(64)?;
///     tokio::task::spawn_local(ring.driver::<Tokio>()?);
///     let file = Fd::new(std::fs::File::open("/dev/zero")?);
///     let (n, buf) = ring.run(Read::new(&file, vec![1u8; 16], 0)).await?;
///     assert_eq!((n?, buf), (16, vec![0u8; 16]));
///     Ok(())
/// })
/// # }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct LocalRing {
    inner: Rc<Local>,
}

struct Local {
    state: RefCell<State>,
    notify: LocalNotify,
    fd: RawFd,
}

/// What the `RefCell` guards: the ring with its slab, and what lives beside it.
struct State {
    uring: Uring,
    waiters: Waiters,
    /// User data of SQEs to cancel (dropped futures' ops) not yet queued: the SQ was full.
    cancels: Vec<u64>,
    /// Wakers taken by a turn, woken once the `RefCell` is released (a waker may run code
    /// that uses the ring). Reused: it allocates only to grow.
    woken: Vec<Waker>,
    /// Whether a driver exists (at most one: see [`Error::DriverRunning`]).
    driven: bool,
}

impl fmt::Debug for LocalRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LocalRing");
        d.field("fd", &self.inner.fd);
        if let Ok(st) = self.inner.state.try_borrow() {
            d.field("in_flight", &st.uring.in_flight());
        }
        d.finish_non_exhaustive()
    }
}

impl LocalRing {
    /// A ring with `entries` SQ entries and default settings.
    ///
    /// # Errors
    ///
    /// As for [`Uring::with_builder`].
    pub fn new(entries: u32) -> Result<Self> {
        Self::with_builder(&Builder::new(entries))
    }

    /// A ring set up by `builder`.
    ///
    /// # Errors
    ///
    /// [`Error::AsyncSetupFlag`] for `IORING_SETUP_DEFER_TASKRUN` (its completions are posted
    /// only when the ring's thread asks, which a reactor waiting on the ring's fd does not)
    /// and `IORING_SETUP_IOPOLL` (its fd never becomes readable); otherwise as for [`Uring::with_builder`].
    pub fn with_builder(builder: &Builder) -> Result<Self> {
        check_setup(builder.setup_flags())?;
        Ok(Self::from_uring_unchecked(Uring::with_builder(builder)?))
    }

    /// Takes over `uring`, with what it has in flight (those ops keep running and are dropped
    /// with the ring; tickets the caller kept can no longer be redeemed). Its completion
    /// records ([`Uring::completions`]) are the driver's from now on.
    ///
    /// # Errors
    ///
    /// [`Error::AsyncSetupFlag`] for a ring set up with `IORING_SETUP_DEFER_TASKRUN` or
    /// `IORING_SETUP_IOPOLL` (see [`LocalRing::with_builder`]).
    pub fn from_uring(uring: Uring) -> Result<Self> {
        check_setup(uring.info().flags)?;
        Ok(Self::from_uring_unchecked(uring))
    }

    fn from_uring_unchecked(uring: Uring) -> Self {
        let fd = uring.ring().as_raw_fd();
        LocalRing {
            inner: Rc::new(Local {
                state: RefCell::new(State {
                    uring,
                    waiters: Waiters::default(),
                    cancels: Vec::new(),
                    woken: Vec::new(),
                    driven: false,
                }),
                notify: LocalNotify::default(),
                fd,
            }),
        }
    }

    /// The future of one submission (an op, with or without [`crate::SqeOptions`], or a
    /// [`crate::Chain`]): it pushes the submission at its first poll and resolves to the same
    /// output as [`Uring::wait`] gives, with what the op owned. A push the ring refuses
    /// resolves to the [`PushError`], with the op back.
    ///
    /// Dropping the future before its op completes never blocks: the op stays in the ring
    /// (with its buffers) until its completion, the kernel is asked to cancel it, and what it
    /// owned is dropped then.
    pub fn run<T: Submit>(&self, op: T) -> Run<'_, LocalRing, T> {
        Run::new(self, op)
    }

    /// The stream of a multishot op's items (see [`Items`]).
    pub fn items<O: MultishotOp>(&self, op: Multishot<O>) -> Items<'_, LocalRing, O> {
        Items::new(self, op)
    }

    /// The ring's driver, waiting for completions on reactor `R` (see [`super::Reactor`]).
    /// Spawn it on this thread's executor; it ends, with `Ok(())`, once no handle but its own
    /// is left.
    ///
    /// # Errors
    ///
    /// [`Error::DriverRunning`] if the ring already has a driver; the reactor's own, as
    /// [`Error::Core`].
    pub fn driver<R: super::Reactor>(&self) -> Result<super::Driver<LocalRing, R>> {
        super::Driver::new(self)
    }

    /// Ops pushed whose completions have not all been reaped.
    pub fn in_flight(&self) -> usize {
        self.inner
            .state
            .try_borrow()
            .map_or(0, |st| st.uring.in_flight())
    }

    /// Whether the running kernel supports `opcode` (`IORING_OP_*`).
    pub fn supports(&self, opcode: u8) -> bool {
        self.inner
            .state
            .try_borrow()
            .is_ok_and(|st| st.uring.supports(opcode))
    }

    /// Calls `f` with the underlying ring (its setup information and registration: files,
    /// buffers, ...).
    ///
    /// # Errors
    ///
    /// [`Error::Reentrant`] when called from code the ring runs (an op's `Drop`).
    pub fn with_ring<R>(&self, f: impl FnOnce(&Ring<Kernel>) -> R) -> Result<R> {
        let st = self
            .inner
            .state
            .try_borrow()
            .map_err(|_| Error::Reentrant)?;
        Ok(f(st.uring.ring()))
    }

    /// The rest of a push the ring refused: a full SQ is handed to the kernel (the one case
    /// where a future enters the kernel) and the push tried again.
    #[cold]
    #[inline(never)]
    fn push_refused<T: Submit>(
        &self,
        mut st: RefMut<'_, State>,
        e: PushError<T>,
        n: u32,
        w: &Waker,
    ) -> Pushed<T> {
        let pushed = match e {
            PushError {
                error: Error::QueueFull { .. },
                op,
            } => match st.uring.submit() {
                // The SQ was full of what the futures pushed since the driver last ran.
                Ok(_) => st.uring.push_tagged(op, 0),
                // The kernel pushes back: as a full SQ (retried once the driver reaped).
                Err(Error::Core(uring_core::Error::Busy(_))) => Err(PushError {
                    error: Error::QueueFull { needed: n, free: 0 },
                    op,
                }),
                Err(error) => Err(PushError { error, op }),
            },
            e => Err(e),
        };
        let pushed = match pushed {
            Ok(t) => {
                st.waiters.set(t.key, w);
                Pushed::Queued(t, n)
            }
            // Still full: the kernel did not take the SQEs (it pushes back while completions
            // overflow). Try again once the driver has reaped.
            Err(PushError {
                error: Error::QueueFull { .. },
                op,
            }) => {
                w.wake_by_ref();
                Pushed::Retry(op)
            }
            Err(e) => Pushed::Refused(e),
        };
        drop(st);
        // The submit may have reaped: the driver must look at the records.
        self.inner.notify.notify();
        pushed
    }

    fn borrow(&self) -> Result<RefMut<'_, State>> {
        self.inner
            .state
            .try_borrow_mut()
            .map_err(|_| Error::Reentrant)
    }

    /// Wakes the wakers a turn took, with the `RefCell` released, and gives the list back.
    fn wake_taken(&self, mut woken: Vec<Waker>) -> usize {
        let n = woken.len();
        for w in woken.drain(..) {
            w.wake();
        }
        if let Ok(mut st) = self.inner.state.try_borrow_mut() {
            if st.woken.capacity() < woken.capacity() {
                st.woken = woken;
            }
        }
        n
    }
}

impl Drop for LocalRing {
    fn drop(&mut self) {
        // The driver's handle and this one: the driver is about to be alone, and must look.
        if Rc::strong_count(&self.inner) == 2 {
            self.inner.notify.notify();
        }
    }
}

impl State {
    /// Queues the cancels waiting for room, submits, reaps (entering the kernel if it holds
    /// completions back), and takes the wakers of the ops whose records came in.
    fn turn(&mut self) -> Result<()> {
        flush_cancels(&mut self.cancels, |c| {
            self.uring.push(c).map(|t| self.uring.detach(t))
        });
        self.uring.submit()?;
        if !self.cancels.is_empty() {
            flush_cancels(&mut self.cancels, |c| {
                self.uring.push(c).map(|t| self.uring.detach(t))
            });
            self.uring.submit()?;
        }
        self.uring.reap_all()?;
        while let Some(c) = self.uring.next_completion() {
            if let Some(w) = self.waiters.take(c.key()) {
                self.woken.push(w);
            }
        }
        Ok(())
    }
}

impl crate::op::sealed::Sealed for LocalRing {}

impl AsyncRing for LocalRing {
    #[inline]
    fn push_waking<T: Submit>(&self, op: T, w: &Waker) -> Pushed<T> {
        let Ok(mut st) = self.borrow() else {
            return Pushed::Refused(PushError {
                error: Error::Reentrant,
                op,
            });
        };
        let (op, n) = sqes(op);
        match st.uring.push_tagged(op, 0) {
            Ok(t) => {
                st.waiters.set(t.key, w);
                drop(st);
                self.inner.notify.notify();
                Pushed::Queued(t, n)
            }
            Err(e) => self.push_refused(st, e, n, w),
        }
    }

    #[inline]
    fn poll_ticket<T: Submit>(&self, t: Ticket<T>, w: &Waker) -> Result<Outcome<T>> {
        let Ok(mut st) = self.borrow() else {
            // Polled from code the ring runs: not done as far as this poll can tell; poll
            // again.
            w.wake_by_ref();
            return Ok(Outcome::Pending(t));
        };
        let out = st.uring.try_take(t)?;
        if let Outcome::Pending(t) = &out {
            st.waiters.set(t.key, w);
        }
        Ok(out)
    }

    fn poll_items<O: MultishotOp>(
        &self,
        t: Ticket<Multishot<O>>,
        into: &mut VecDeque<O::Item>,
        w: &Waker,
    ) -> Result<Polled<O>> {
        let Ok(mut st) = self.borrow() else {
            w.wake_by_ref();
            return Ok(Polled::Running(t));
        };
        // `drain` reaps: the driver must look at the records that brought in.
        into.extend(st.uring.drain(&t)?);
        let polled = if st.uring.is_done(&t) {
            match st.uring.try_take(t)? {
                Outcome::Done(out) => {
                    into.extend(out.items);
                    Polled::Finished(out.last)
                }
                Outcome::Pending(t) => Polled::Running(t),
            }
        } else {
            if into.is_empty() {
                st.waiters.set(t.key, w);
            }
            Polled::Running(t)
        };
        drop(st);
        self.inner.notify.notify();
        Ok(polled)
    }

    fn abandon<T: Submit>(&self, t: Ticket<T>, sqes: u32) {
        let Ok(mut st) = self.borrow() else {
            // Dropped by code the ring runs (an op's `Drop`): the ring cannot be touched now,
            // so the op stays in it, as if the future were forgotten (a ticket is only a key).
            drop(t);
            return;
        };
        let key = t.key;
        let _ = st.waiters.take(key);
        let finished = st.uring.is_done(&t);
        st.uring.detach(t);
        if !finished {
            st.cancels.extend((0..sqes).map(|sub| user_data(key, sub)));
            drop(st);
            self.inner.notify.notify();
        }
    }

    fn ring_fd(&self) -> RawFd {
        self.inner.fd
    }

    #[inline]
    fn register_driver(&self, w: &Waker) -> bool {
        self.inner.notify.register(w)
    }

    fn turn(&self) -> Result<usize> {
        let woken = {
            let mut st = self.borrow()?;
            st.turn()?;
            std::mem::take(&mut st.woken)
        };
        Ok(self.wake_taken(woken))
    }

    fn orphaned(&self) -> bool {
        Rc::strong_count(&self.inner) == 1
    }

    fn claim_driver(&self) -> Result<Self> {
        let mut st = self.borrow()?;
        if st.driven {
            return Err(Error::DriverRunning);
        }
        st.driven = true;
        Ok(self.clone())
    }

    fn release_driver(&self) {
        if let Ok(mut st) = self.inner.state.try_borrow_mut() {
            st.driven = false;
        }
    }
}
