//! [`SharedRing`]: a ring for tasks on any thread, over a [`Context`].

use super::drive::flush_cancels;
use super::waiters::{Notify, Waiters};
use super::{sqes, AsyncRing, Items, Polled, Pushed, Run};
use crate::completion::{Completion, Outcome};
use crate::context::Context;
use crate::error::{Error, PushError, Result};
use crate::multishot::{Multishot, MultishotOp};
use crate::op::Submit;
use crate::push::user_data;
use crate::sync::{lock, Mutex};
use crate::uring::Ticket;
use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;

/// A ring for tasks on any thread (`Send + Sync`), over a [`Context`]: every op and chain
/// becomes a future ([`SharedRing::run`]), every multishot op a stream
/// ([`SharedRing::items`]), awaited from any executor, on any thread.
///
/// As with [`crate::LocalRing`], one [`super::Driver`] per ring ([`SharedRing::driver`],
/// `Send`: spawn it on any worker) reaps completions and wakes the futures; a push hands its
/// op to the kernel at once, from the thread that polled the future (see "Threads" on
/// [`Context`]: the thread should outlive the op, as a runtime's worker threads do).
///
/// A handle is cheap to clone (a reference count). The driver ends when every handle is gone,
/// and the context is then dropped (what is in flight is cancelled and waited for, at most
/// [`crate::DROP_DRAIN_TIMEOUT`], and otherwise leaked, never freed).
///
/// # Examples
///
/// On tokio's multi-thread runtime:
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use uring_ops::{awaitable::Tokio, ops::Read, Fd, SharedRing};
/// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_io().build()?;
/// rt.block_on(async {
///     let ring = SharedRing::new(64)?;
///     tokio::spawn(ring.driver::<Tokio>()?);
///     let file = Fd::new(std::fs::File::open("/dev/zero")?);
///     let task = tokio::spawn({
///         let ring = ring.clone();
///         async move { ring.run(Read::new(&file, vec![1u8; 16], 0)).await }
///     });
///     let (n, buf) = task.await??;
///     assert_eq!((n?, buf), (16, vec![0u8; 16]));
///     Ok(())
/// })
/// # }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
pub struct SharedRing {
    inner: Arc<Shared>,
    /// Whether this is the driver's handle (which does not keep the driver running).
    driver: bool,
}

struct Shared {
    ctx: Context,
    /// Locked by a future to check its op and store its waker, and by the driver to take the
    /// wakers of the records it took: never while holding one of the context's locks.
    waiters: Mutex<Waiters>,
    notify: Notify,
    /// Handles other than the driver's.
    handles: AtomicUsize,
    driven: AtomicBool,
    /// The driver's buffers, and cancels waiting for room in the SQ.
    turn: Mutex<Turn>,
    fd: RawFd,
}

#[derive(Default)]
struct Turn {
    records: Vec<Completion>,
    woken: Vec<Waker>,
    cancels: Vec<u64>,
}

const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<SharedRing>();
};

impl fmt::Debug for SharedRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRing")
            .field("ctx", &self.inner.ctx)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

impl Clone for SharedRing {
    fn clone(&self) -> Self {
        // Relaxed: a count of handles; the decrement that may reach zero orders itself.
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        SharedRing {
            inner: Arc::clone(&self.inner),
            driver: false,
        }
    }
}

impl Drop for SharedRing {
    fn drop(&mut self) {
        if self.driver {
            return;
        }
        // AcqRel: the driver's Acquire load that reads zero sees everything this handle did.
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.notify.notify();
        }
    }
}

impl SharedRing {
    /// A ring with `entries` SQ entries, every op permitted.
    ///
    /// # Errors
    ///
    /// As for [`Context::new`].
    pub fn new(entries: u32) -> Result<Self> {
        Ok(Self::from_context(Context::new(entries)?))
    }

    /// Takes over `ctx` (set up with an allowlist, registered files, ...). Its completion
    /// records ([`Context::completions`]) are the driver's from now on; tickets of ops pushed
    /// before still redeem through [`SharedRing::context`].
    pub fn from_context(ctx: Context) -> Self {
        let fd = ctx.as_raw_fd();
        SharedRing {
            inner: Arc::new(Shared {
                ctx,
                waiters: Mutex::new(Waiters::default()),
                notify: Notify::default(),
                handles: AtomicUsize::new(1),
                driven: AtomicBool::new(false),
                turn: Mutex::new(Turn::default()),
                fd,
            }),
            driver: false,
        }
    }

    /// The context, for its registration and setup information. Taking its completion
    /// records would take them from the driver, whose futures would then not be woken.
    pub fn context(&self) -> &Context {
        &self.inner.ctx
    }

    /// As [`crate::LocalRing::run`]: the future of one submission.
    pub fn run<T: Submit>(&self, op: T) -> Run<'_, SharedRing, T> {
        Run::new(self, op)
    }

    /// The stream of a multishot op's items (see [`Items`]).
    pub fn items<O: MultishotOp>(&self, op: Multishot<O>) -> Items<'_, SharedRing, O> {
        Items::new(self, op)
    }

    /// The ring's driver, waiting for completions on reactor `R` (see [`super::Reactor`]).
    /// Spawn it once, on any thread; it ends, with `Ok(())`, once every other handle is gone.
    ///
    /// # Errors
    ///
    /// [`Error::DriverRunning`] if the ring already has a driver; the reactor's own, as
    /// [`Error::Core`].
    pub fn driver<R: super::Reactor>(&self) -> Result<super::Driver<SharedRing, R>> {
        super::Driver::new(self)
    }

    /// Ops pushed whose completions have not all been reaped.
    pub fn in_flight(&self) -> usize {
        self.inner.ctx.in_flight()
    }

    /// With the waiters locked: whether `t`'s op is done; if not, stores `w` for it.
    fn check_or_wait<T: Submit>(&self, t: &Ticket<T>, w: &Waker) {
        let mut waiters = lock(&self.inner.waiters);
        if self.inner.ctx.is_done(t) {
            w.wake_by_ref();
        } else {
            waiters.set(t.key, w);
        }
    }
}

impl crate::op::sealed::Sealed for SharedRing {}

impl AsyncRing for SharedRing {
    fn push_waking<T: Submit>(&self, op: T, w: &Waker) -> Pushed<T> {
        let (op, n) = sqes(op);
        let pushed = match self.inner.ctx.push_tagged(op, 0) {
            Ok(t) => {
                // The op may have completed already, and its record been taken by the driver:
                // check under the waiters' lock before storing the waker.
                self.check_or_wait(&t, w);
                Pushed::Queued(t, n)
            }
            Err(PushError {
                error: Error::QueueFull { .. },
                op,
            }) => {
                w.wake_by_ref();
                Pushed::Retry(op)
            }
            Err(e) => Pushed::Refused(e),
        };
        // A push may reap (to make room): the driver must look at the records.
        self.inner.notify.notify();
        pushed
    }

    fn poll_ticket<T: Submit>(&self, t: Ticket<T>, w: &Waker) -> Result<Outcome<T>> {
        let out = {
            let mut waiters = lock(&self.inner.waiters);
            let out = self.inner.ctx.try_take(t)?;
            if let Outcome::Pending(t) = &out {
                waiters.set(t.key, w);
            }
            out
        };
        // `try_take` may reap: the driver must look at the records.
        self.inner.notify.notify();
        Ok(out)
    }

    fn poll_items<O: MultishotOp>(
        &self,
        t: Ticket<Multishot<O>>,
        into: &mut VecDeque<O::Item>,
        w: &Waker,
    ) -> Result<Polled<O>> {
        let polled = {
            let mut waiters = lock(&self.inner.waiters);
            into.extend(self.inner.ctx.drain(&t)?);
            if self.inner.ctx.is_done(&t) {
                match self.inner.ctx.try_take(t)? {
                    Outcome::Done(out) => {
                        into.extend(out.items);
                        Polled::Finished(out.last)
                    }
                    Outcome::Pending(t) => Polled::Running(t),
                }
            } else {
                if into.is_empty() {
                    waiters.set(t.key, w);
                }
                Polled::Running(t)
            }
        };
        self.inner.notify.notify();
        Ok(polled)
    }

    fn abandon<T: Submit>(&self, t: Ticket<T>, sqes: u32) {
        let key = t.key;
        let _ = lock(&self.inner.waiters).take(key);
        let ctx = &self.inner.ctx;
        let finished = ctx.is_done(&t);
        ctx.detach(t);
        if !finished {
            let mut cancels: Vec<u64> = (0..sqes).map(|sub| user_data(key, sub)).collect();
            flush_cancels(&mut cancels, |c| ctx.push(c).map(|t| ctx.detach(t)));
            if !cancels.is_empty() {
                lock(&self.inner.turn).cancels.append(&mut cancels);
            }
            // Always: a push that met a full CQ reaps (records queued, CQ emptied) while the
            // driver's own reap may have found the CQ taken, so the reactor may see nothing
            // new; the driver must look at the records.
            self.inner.notify.notify();
        }
    }

    fn ring_fd(&self) -> RawFd {
        self.inner.fd
    }

    fn register_driver(&self, w: &Waker) -> bool {
        self.inner.notify.register(w)
    }

    fn turn(&self) -> Result<usize> {
        let ctx = &self.inner.ctx;
        let mut guard = lock(&self.inner.turn);
        let turn = &mut *guard;
        flush_cancels(&mut turn.cancels, |c| ctx.push(c).map(|t| ctx.detach(t)));
        ctx.submit()?;
        ctx.reap();
        turn.records.extend(ctx.completions());
        {
            let mut waiters = lock(&self.inner.waiters);
            for c in turn.records.drain(..) {
                if let Some(w) = waiters.take(c.key()) {
                    turn.woken.push(w);
                }
            }
        }
        let mut woken = std::mem::take(&mut turn.woken);
        drop(guard);
        let n = woken.len();
        for w in woken.drain(..) {
            w.wake();
        }
        let mut turn = lock(&self.inner.turn);
        if turn.woken.capacity() < woken.capacity() {
            turn.woken = woken;
        }
        Ok(n)
    }

    fn orphaned(&self) -> bool {
        // Acquire: pairs with the handles' AcqRel decrements.
        self.inner.handles.load(Ordering::Acquire) == 0
    }

    fn claim_driver(&self) -> Result<Self> {
        // AcqRel: a driver's end (Release in `release_driver`) is seen by the next claim.
        if self.inner.driven.swap(true, Ordering::AcqRel) {
            return Err(Error::DriverRunning);
        }
        Ok(SharedRing {
            inner: Arc::clone(&self.inner),
            driver: true,
        })
    }

    fn release_driver(&self) {
        self.inner.driven.store(false, Ordering::Release);
    }
}
