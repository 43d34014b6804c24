//! Driving an async ring: the [`Driver`] future, and the [`Reactor`]s it waits on.

use super::AsyncRing;
use crate::error::{Error, PushError, Result};
use crate::ops::AsyncCancel;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use uring_core::SetupFlags;

/// How many turns a driver makes in one poll before it yields to the executor's other tasks
/// (it asks to be polled again).
const TURNS_PER_POLL: usize = 32;

/// What waits for a ring's completions on behalf of its [`Driver`]: it watches the ring's fd,
/// which is readable while completions are ready.
///
/// Implemented here for tokio ([`Tokio`]), async-io ([`AsyncIo`]) and a thread of its own
/// ([`Thread`]); implement it to plug in another reactor.
pub trait Reactor: Unpin + Sized {
    /// Starts watching `fd`, a ring's fd.
    ///
    /// # Safety
    ///
    /// `fd` is open, and stays open and names the same file for as long as the reactor
    /// lives (a [`Driver`] holds the ring, and drops its reactor first).
    ///
    /// # Errors
    ///
    /// The reactor's own (no runtime, registration refused).
    unsafe fn new(fd: RawFd) -> io::Result<Self>;

    /// `Ready` when the fd became readable since the last `Ready`, and counts as handled
    /// (the driver then reaps everything ready); `Pending` otherwise, with `cx`'s waker woken
    /// when it becomes readable. A completion posted after a `Ready` is not missed: it makes
    /// the fd readable again, or it was ready for the reap that follows the `Ready`.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// The driver of an async ring ([`crate::LocalRing::driver`], [`crate::SharedRing::driver`]):
/// a future that hands what the ring's futures queued to the kernel, reaps, and wakes each
/// future whose op completed, waiting on reactor `R` in between. Spawn it once per ring; it
/// resolves to `Ok(())` when every handle of the ring but its own is gone (the ring is then
/// dropped), or to the ring's error.
#[must_use = "the ring's futures resolve only while its driver is polled: spawn it"]
pub struct Driver<G: AsyncRing, R: Reactor> {
    // Dropped before the ring, whose fd it watches.
    reactor: R,
    ring: G,
}

impl<G: AsyncRing + fmt::Debug, R: Reactor> fmt::Debug for Driver<G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl<G: AsyncRing, R: Reactor> Driver<G, R> {
    pub(crate) fn new(ring: &G) -> Result<Self> {
        let ring = ring.claim_driver()?;
        // SAFETY: the ring's fd is open while the ring is; the driver holds the ring and drops
        // the reactor before it (field order).
        match unsafe { R::new(ring.ring_fd()) } {
            Ok(reactor) => Ok(Driver { reactor, ring }),
            Err(e) => {
                ring.release_driver();
                Err(uring_core::Error::Os {
                    call: "the reactor's registration of the ring's fd",
                    source: e,
                }
                .into())
            }
        }
    }
}

impl<G: AsyncRing + Unpin, R: Reactor> Future for Driver<G, R> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        for _ in 0..TURNS_PER_POLL {
            // Registered before the work is looked at: work queued after this wakes it.
            this.ring.register_driver(cx.waker());
            if this.ring.orphaned() {
                return Poll::Ready(Ok(()));
            }
            match this.ring.turn() {
                Ok(_) => {}
                // The kernel pushes back (`EBUSY`/`EAGAIN`: completions it cannot post yet):
                // not the ring's end; look again soon.
                Err(Error::Core(uring_core::Error::Busy(_))) => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
            match this.reactor.poll_ready(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(uring_core::Error::Os {
                        call: "the reactor's wait for the ring's fd",
                        source: e,
                    }
                    .into()))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<G: AsyncRing, R: Reactor> Drop for Driver<G, R> {
    fn drop(&mut self) {
        self.ring.release_driver();
    }
}

/// Refuses the setup flags an async ring cannot be driven with.
pub(super) fn check_setup(f: SetupFlags) -> Result<()> {
    if f.contains(SetupFlags::DEFER_TASKRUN) {
        return Err(Error::AsyncSetupFlag {
            flag: "DEFER_TASKRUN",
            why: "its completions are posted only when the ring's thread asks for them, which \
                  a reactor watching the ring's fd does not",
        });
    }
    if f.intersects(SetupFlags::IOPOLL | SetupFlags::HYBRID_IOPOLL) {
        return Err(Error::AsyncSetupFlag {
            flag: "IOPOLL",
            why: "a polled ring completes only while a thread busy-polls it, and its fd never \
                  becomes readable for a reactor",
        });
    }
    Ok(())
}

/// Queues a cancel for each user data in `cancels` through `push` (which detaches it), from
/// the last, until the SQ is full; the rest stay for the next turn. A cancel the ring refuses
/// otherwise (an allowlist without `AsyncCancel`) is dropped: its op then ends on its own.
pub(super) fn flush_cancels(
    cancels: &mut Vec<u64>,
    mut push: impl FnMut(AsyncCancel) -> Result<bool, PushError<AsyncCancel>>,
) {
    while let Some(&ud) = cancels.last() {
        match push(AsyncCancel::new(ud)) {
            Err(PushError {
                error: Error::QueueFull { .. },
                ..
            }) => break,
            _ => {
                cancels.pop();
            }
        }
    }
}

/// A reactor of its own, for any executor: a thread (one per driver) that sleeps in
/// `poll(2)` on the ring's fd and wakes the driver when completions are ready. It costs a
/// thread and a wake-up across threads per batch of completions; prefer the executor's own
/// reactor ([`Tokio`], [`AsyncIo`]) where there is one.
#[derive(Debug)]
pub struct Thread {
    shared: Arc<Watch>,
    /// An eventfd that ends the thread's `poll`.
    stop: Arc<OwnedFd>,
}

#[derive(Debug, Default)]
struct Watch {
    state: Mutex<WatchState>,
    armed: Condvar,
}

#[derive(Debug, Default)]
struct WatchState {
    /// The driver's waker while it waits (the thread polls only then).
    waker: Option<Waker>,
    /// The fd was seen readable since the driver last looked.
    fired: bool,
    stop: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reactor for Thread {
    unsafe fn new(fd: RawFd) -> io::Result<Self> {
        // The thread watches its own duplicate of the ring's fd: closing the ring while the
        // thread sleeps in `poll` cannot make it watch a file that took the number.
        // SAFETY: `fcntl(F_DUPFD_CLOEXEC)` reads no memory; `fd` is open (`new`'s contract),
        // and the new descriptor, when there is one, is ours alone.
        let ring = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if ring < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `ring` was just returned by `fcntl`, open and owned by nobody else.
        let ring = unsafe { OwnedFd::from_raw_fd(ring) };
        // SAFETY: `eventfd` reads no memory.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as for `ring`.
        let stop = Arc::new(unsafe { OwnedFd::from_raw_fd(stop) });
        let shared = Arc::new(Watch::default());
        let (watch, stopper) = (Arc::clone(&shared), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("uring-driver".into())
            .spawn(move || watch.run(&ring, &stopper))?;
        Ok(Thread { shared, stop })
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = lock(&self.shared.state);
        if std::mem::take(&mut st.fired) {
            return Poll::Ready(Ok(()));
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        drop(st);
        self.shared.armed.notify_one();
        Poll::Pending
    }
}

impl Watch {
    /// The thread: while the driver waits, sleeps until the ring's fd is readable, then wakes
    /// the driver; ends when `stop` is readable or the reactor is dropped.
    fn run(&self, ring: &OwnedFd, stop: &OwnedFd) {
        loop {
            {
                let mut st = lock(&self.state);
                while st.waker.is_none() && !st.stop {
                    st = self.armed.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
                if st.stop {
                    return;
                }
            }
            let mut fds = [
                libc::pollfd {
                    fd: ring.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: stop.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of 2 `pollfd`s for the call's duration.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if fds[1].revents != 0 {
                return;
            }
            let w = {
                let mut st = lock(&self.state);
                if st.stop {
                    return;
                }
                // A failed `poll` (out of memory) wakes the driver too, which looks and
                // arms the thread again.
                st.fired = true;
                st.waker.take()
            };
            if let Some(w) = w {
                w.wake();
            }
        }
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.armed.notify_one();
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from `one`, which lives for the call, to our eventfd. A
        // failure (the counter full, which one write per reactor cannot make) leaves the
        // thread to see `stop` at its next look.
        let _ = unsafe { libc::write(self.stop.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }
}

/// A ring's fd as the reactors' I/O object: watched, never read, written or closed by them.
#[derive(Debug)]
#[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
struct RingFd(RawFd);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// tokio's reactor (feature `tokio`): the ring's fd registered with tokio's I/O driver
/// (`tokio::io::unix::AsyncFd`). The driver must be made inside a tokio runtime whose I/O is
/// enabled.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct Tokio {
    fd: tokio::io::unix::AsyncFd<RingFd>,
}

#[cfg(feature = "tokio")]
impl Reactor for Tokio {
    unsafe fn new(fd: RawFd) -> io::Result<Self> {
        // Registration panics outside a runtime, and in a runtime built without I/O: refuse
        // with an error instead.
        tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let registered = std::panic::catch_unwind(|| {
            // SAFETY: `fd` stays open, naming the same file, while the `AsyncFd` lives
            // (`new`'s contract), and `RingFd::as_raw_fd` always returns it.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    RingFd(fd),
                    tokio::io::Interest::READABLE,
                )
            }
        })
        .map_err(|_| {
            io::Error::other("the tokio runtime has no I/O driver (build it with enable_io)")
        })?;
        let fd = registered.map_err(|e| e.into_parts().1)?;
        Ok(Tokio { fd })
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.fd.poll_read_ready(cx) {
            Poll::Ready(Ok(mut guard)) => {
                // Cleared before the driver reaps: a completion posted after the reap makes
                // the fd readable anew, which tokio reports as a new event.
                guard.clear_ready();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// async-io's reactor (feature `async-io`; smol and async-std run on it): the ring's fd
/// registered with `async_io::Async`.
#[cfg(feature = "async-io")]
#[derive(Debug)]
pub struct AsyncIo {
    fd: async_io::Async<RingFd>,
}

#[cfg(feature = "async-io")]
impl std::os::fd::AsFd for RingFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the fd is a ring's, open for as long as the reactor that holds this value
        // lives (`Reactor::new`'s contract).
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
    }
}

#[cfg(feature = "async-io")]
impl Reactor for AsyncIo {
    unsafe fn new(fd: RawFd) -> io::Result<Self> {
        // `new_nonblocking`: the ring's fd is never read, so its file flags stay as they are.
        let fd = async_io::Async::new_nonblocking(RingFd(fd))?;
        Ok(AsyncIo { fd })
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.fd.poll_readable(cx)
    }
}
