//! What the async tests share: one trait over both async rings, a join of futures, and a
//! `block_on` that needs no reactor.
#![allow(dead_code)] // each test binary uses some of them

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use uring_ops::awaitable::{Items, Run};
use uring_ops::ops::Timeout;
use uring_ops::{LocalRing, Multishot, MultishotOp, SharedRing, Submit};

/// Both async rings, for scenarios written once.
pub trait AnyRing: Clone + 'static {
    type R: uring_ops::awaitable::AsyncRing;
    fn run<T: Submit>(&self, op: T) -> Run<'_, Self::R, T>;
    fn items<O: MultishotOp>(&self, op: Multishot<O>) -> Items<'_, Self::R, O>;
    fn in_flight(&self) -> usize;
}

impl AnyRing for LocalRing {
    type R = LocalRing;
    fn run<T: Submit>(&self, op: T) -> Run<'_, LocalRing, T> {
        LocalRing::run(self, op)
    }
    fn items<O: MultishotOp>(&self, op: Multishot<O>) -> Items<'_, LocalRing, O> {
        LocalRing::items(self, op)
    }
    fn in_flight(&self) -> usize {
        LocalRing::in_flight(self)
    }
}

impl AnyRing for SharedRing {
    type R = SharedRing;
    fn run<T: Submit>(&self, op: T) -> Run<'_, SharedRing, T> {
        SharedRing::run(self, op)
    }
    fn items<O: MultishotOp>(&self, op: Multishot<O>) -> Items<'_, SharedRing, O> {
        SharedRing::items(self, op)
    }
    fn in_flight(&self) -> usize {
        SharedRing::in_flight(self)
    }
}

/// Sleeps on the ring itself (a `Timeout` op): no executor timer needed.
pub async fn sleep<G: AnyRing>(ring: &G, d: Duration) {
    let r = ring
        .run(Timeout::new(d))
        .await
        .expect("a timeout is pushed");
    assert!(
        matches!(r, Ok(uring_ops::ops::TimeoutFired::Expired)),
        "{r:?}"
    );
}

/// Waits until nothing is in flight (what dropped futures left is dropped, cancels
/// included), or panics after `limit`.
pub async fn settle<G: AnyRing>(ring: &G, limit: Duration) {
    let start = std::time::Instant::now();
    // The sleep itself is in flight while it runs: look between sleeps.
    while ring.in_flight() > 0 {
        assert!(
            start.elapsed() < limit,
            "{} op(s) still in flight after {limit:?}",
            ring.in_flight()
        );
        sleep(ring, Duration::from_millis(1)).await;
    }
}

/// Polls every future in `futs` to completion, in one task; outputs in order.
pub async fn join_all<'a, T>(futs: Vec<Pin<Box<dyn Future<Output = T> + 'a>>>) -> Vec<T> {
    struct JoinAll<'a, T> {
        futs: Vec<Option<Pin<Box<dyn Future<Output = T> + 'a>>>>,
        out: Vec<Option<T>>,
    }
    impl<T> Unpin for JoinAll<'_, T> {}
    impl<T> Future for JoinAll<'_, T> {
        type Output = Vec<T>;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<T>> {
            let this = self.get_mut();
            let mut pending = false;
            for (f, o) in this.futs.iter_mut().zip(this.out.iter_mut()) {
                if let Some(fut) = f {
                    match fut.as_mut().poll(cx) {
                        Poll::Ready(v) => {
                            *o = Some(v);
                            *f = None;
                        }
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(this.out.iter_mut().map(|o| o.take().unwrap()).collect())
            }
        }
    }
    let n = futs.len();
    JoinAll {
        futs: futs.into_iter().map(Some).collect(),
        out: (0..n).map(|_| None).collect(),
    }
    .await
}

/// Runs `fut` to completion on this thread, parking between polls: an executor with no
/// reactor at all (the [`uring_ops::awaitable::Thread`] reactor wakes it).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
