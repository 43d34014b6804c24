//! The async rings on real executors: tokio (current-thread and multi-thread), smol, and a
//! `block_on` with no reactor (the `Thread` reactor). Each scenario asserts the values the
//! blocking API gives for the same ops.
#![cfg(all(feature = "tokio", feature = "async-io"))]

mod async_common;
mod common;

use async_common::{block_on, join_all, settle, AnyRing};
use common::{pipe, temp_file};
use futures_core::Stream;
use std::future::{poll_fn, Future};
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use uring_ops::awaitable::{AsyncIo, Thread, Tokio};
use uring_ops::ops::{Nop, PollAdd, PollEvents, Read, Write};
use uring_ops::{Chain, Error, Fd, LocalRing, SharedBuf, SharedRing};

const BLOCK: usize = 4096;
const BLOCKS: usize = 32;
const SETTLE: Duration = Duration::from_secs(10);

fn data() -> Vec<u8> {
    (0..BLOCK * BLOCKS).map(|i| (i * 7 % 251) as u8).collect()
}

/// 32 reads at once, in one task: each block as written.
async fn reads<G: AnyRing>(ring: &G, file: &Fd, data: &[u8]) {
    type Fut<'a> = Pin<Box<dyn Future<Output = (usize, usize, Vec<u8>)> + 'a>>;
    let futs: Vec<Fut<'_>> = (0..BLOCKS)
        .map(|b| {
            Box::pin(async move {
                let op = Read::new(file, vec![0u8; BLOCK], (b * BLOCK) as u64);
                let (n, buf) = ring.run(op).await.expect("a read is pushed");
                (b, n.expect("the read succeeds"), buf)
            }) as Fut<'_>
        })
        .collect();
    for (b, n, buf) in join_all(futs).await {
        assert_eq!(n, BLOCK, "block {b}");
        assert_eq!(buf, data[b * BLOCK..][..BLOCK], "block {b}");
    }
}

/// A chain (read, then write the same buffer) resolves to each link's output.
async fn chain<G: AnyRing>(ring: &G, src: &Fd, data: &[u8], name: &str) {
    let dst = temp_file(name, b"");
    let buf = SharedBuf::new(vec![0u8; BLOCK]);
    let chain =
        Chain::new(Read::new(src, buf.clone(), BLOCK as u64)).then(Write::new(&dst.fd, buf, 0));
    let (read, write) = ring.run(chain).await.expect("the chain is pushed");
    assert_eq!(read.into_inner().0.unwrap(), BLOCK);
    assert_eq!(write.into_inner().0.unwrap(), BLOCK);
    assert_eq!(std::fs::read(&dst.path).unwrap(), data[BLOCK..][..BLOCK]);
}

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

/// A multishot poll as a stream: an item per readiness; dropped, it is cancelled.
async fn poll_stream<G: AnyRing>(ring: &G) {
    let (rx, tx) = pipe();
    let mut rx_file = std::fs::File::from(rx.as_fd().try_clone_to_owned().unwrap());
    let mut tx = std::fs::File::from(tx);
    let mut items = ring.items(PollAdd::new(&rx, PollEvents::IN).multishot());
    for round in 0..3u8 {
        tx.write_all(&[round; 3]).unwrap();
        let ev = next(&mut items).await.expect("the poll is running");
        let ev = ev.expect("the poll succeeds");
        assert!(ev.contains(PollEvents::IN), "round {round}: {ev:?}");
        let mut back = [0u8; 3];
        rx_file.read_exact(&mut back).unwrap();
        assert_eq!(back, [round; 3]);
    }
    assert!(
        ring.in_flight() >= 1,
        "the poll runs until the stream is dropped"
    );
    drop(items);
    settle(ring, SETTLE).await;
    assert!(items_ended_after_cancel(ring, &rx).await);
}

/// A second stream on the same pipe, cancelled by the kernel's own end of it: ends, and
/// gives the op's last completion.
async fn items_ended_after_cancel<G: AnyRing>(ring: &G, rx: &Fd) -> bool {
    let (rx2, tx2) = pipe();
    drop(tx2);
    let _ = rx;
    // A multishot poll on a pipe whose writer is gone: the kernel reports HUP and, as the
    // file stays ready, keeps firing; what matters here is that items come as a stream.
    let mut items = ring.items(PollAdd::new(&rx2, PollEvents::IN).multishot());
    let ev = next(&mut items)
        .await
        .expect("an item")
        .expect("the poll succeeds");
    assert!(ev.contains(PollEvents::HUP), "{ev:?}");
    drop(items);
    settle(ring, SETTLE).await;
    true
}

/// A multishot op the kernel ends at once (a poll of no file): the stream ends with no item,
/// and gives the op's last completion.
async fn stream_end<G: AnyRing>(ring: &G) {
    let mut items = ring.items(PollAdd::new(common::bad_fd(), PollEvents::IN).multishot());
    assert!(
        next(&mut items).await.is_none(),
        "a poll of no file makes no item"
    );
    let last = items
        .take_end()
        .expect("the stream ended")
        .expect("it was pushed");
    assert_eq!(last.map_err(|e| e.raw_os_error()), Err(Some(libc::EBADF)));
    assert!(items.take_end().is_none(), "given once");
    assert!(
        next(&mut items).await.is_none(),
        "an ended stream stays ended"
    );
}

/// A read dropped after its push is cancelled: it takes nothing the pipe receives later, and
/// nothing stays in flight.
async fn dropped_read<G: AnyRing>(ring: &G) {
    let (rx, tx) = pipe();
    let mut tx = std::fs::File::from(tx);
    let mut rx_file = std::fs::File::from(rx.as_fd().try_clone_to_owned().unwrap());
    {
        let mut fut = ring.run(Read::new(&rx, vec![0u8; 8], 0));
        poll_fn(|cx| {
            assert!(
                Pin::new(&mut fut).poll(cx).is_pending(),
                "an empty pipe reads nothing"
            );
            Poll::Ready(())
        })
        .await;
        // Dropped here, in flight.
    }
    settle(ring, SETTLE).await;
    tx.write_all(b"still here").unwrap();
    let mut back = [0u8; 10];
    rx_file.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here");
}

/// A push the ring refuses resolves to the error, with the op back.
async fn refused<G: AnyRing>(ring: &G) {
    let e = ring
        .run(Nop::new().inject_result(i32::MIN))
        .await
        .expect_err("i32::MIN is no errno");
    assert!(matches!(e.error, Error::NotAnErrno { .. }), "{e}");
}

async fn scenarios<G: AnyRing>(ring: &G, name: &str) {
    let data = data();
    let src = temp_file(&format!("async-src-{name}"), &data);
    reads(ring, &src.fd, &data).await;
    chain(ring, &src.fd, &data, &format!("async-dst-{name}")).await;
    poll_stream(ring).await;
    stream_end(ring).await;
    dropped_read(ring).await;
    refused(ring).await;
    settle(ring, SETTLE).await;
}

#[test]
fn local_ring_on_tokio_current_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, async {
        let ring = LocalRing::new(64).unwrap();
        let driver = tokio::task::spawn_local(ring.driver::<Tokio>().unwrap());
        assert!(matches!(ring.driver::<Tokio>(), Err(Error::DriverRunning)));
        scenarios(&ring, "tokio-local").await;
        drop(ring);
        driver.await.unwrap().expect("the driver ends cleanly");
    });
}

#[test]
fn shared_ring_on_tokio_multi_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let ring = SharedRing::new(64).unwrap();
        let driver = tokio::spawn(ring.driver::<Tokio>().unwrap());
        // Tasks on the workers, each with its own handle.
        let data = data();
        let src = std::sync::Arc::new(temp_file("async-src-tokio-mt-tasks", &data));
        let tasks: Vec<_> = (0..BLOCKS)
            .map(|b| {
                let (ring, src) = (ring.clone(), src.clone());
                tokio::spawn(async move {
                    let op = Read::new(&src.fd, vec![0u8; BLOCK], (b * BLOCK) as u64);
                    let (n, buf) = ring.run(op).await.expect("a read is pushed");
                    (b, n.unwrap(), buf)
                })
            })
            .collect();
        for t in tasks {
            let (b, n, buf) = t.await.unwrap();
            assert_eq!((n, &buf[..]), (BLOCK, &data[b * BLOCK..][..BLOCK]));
        }
        scenarios(&ring, "tokio-shared").await;
        drop(ring);
        driver.await.unwrap().expect("the driver ends cleanly");
    });
}

#[test]
fn tokio_reactor_outside_a_runtime_is_an_error() {
    let ring = LocalRing::new(8).unwrap();
    let e = ring.driver::<Tokio>().expect_err("no runtime here");
    assert!(matches!(e, Error::Core(_)), "{e}");
    // The failed attempt left no driver behind.
    block_on_local_thread_driver(&ring);
}

#[test]
fn tokio_reactor_in_a_runtime_without_io_is_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ring = LocalRing::new(8).unwrap();
    // Tokio's registration panics there; the driver refuses with an error instead.
    let e = rt.block_on(async { ring.driver::<Tokio>().expect_err("no I/O driver") });
    assert!(e.to_string().contains("enable_io"), "{e}");
    block_on_local_thread_driver(&ring);
}

fn block_on_local_thread_driver(ring: &LocalRing) {
    let ex = smol::LocalExecutor::new();
    smol::future::block_on(ex.run(async {
        let driver = ex.spawn(ring.driver::<Thread>().unwrap());
        let (n, buf) = ring
            .run(Read::new(
                Fd::new(std::fs::File::open("/dev/zero").unwrap()),
                vec![9u8; 4],
                0,
            ))
            .await
            .unwrap();
        assert_eq!((n.unwrap(), buf), (4usize, vec![0u8; 4]));
        drop(driver);
    }));
}

#[test]
fn local_ring_on_smol() {
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let ring = LocalRing::new(64).unwrap();
        let driver = ex.spawn(ring.driver::<AsyncIo>().unwrap());
        scenarios(&ring, "smol-local").await;
        drop(ring);
        driver.await.expect("the driver ends cleanly");
    }));
}

#[test]
fn shared_ring_on_smol() {
    smol::block_on(async {
        let ring = SharedRing::new(64).unwrap();
        let driver = smol::spawn(ring.driver::<AsyncIo>().unwrap());
        let data = data();
        let src = std::sync::Arc::new(temp_file("async-src-smol-tasks", &data));
        let tasks: Vec<_> = (0..BLOCKS)
            .map(|b| {
                let (ring, src) = (ring.clone(), src.clone());
                smol::spawn(async move {
                    let op = Read::new(&src.fd, vec![0u8; BLOCK], (b * BLOCK) as u64);
                    let (n, buf) = ring.run(op).await.expect("a read is pushed");
                    (b, n.unwrap(), buf)
                })
            })
            .collect();
        for t in tasks {
            let (b, n, buf) = t.await;
            assert_eq!((n, &buf[..]), (BLOCK, &data[b * BLOCK..][..BLOCK]));
        }
        scenarios(&ring, "smol-shared").await;
        drop(ring);
        driver.await.expect("the driver ends cleanly");
    });
}

#[test]
fn local_ring_with_no_reactor() {
    // smol's `future::block_on` parks the thread: no reactor; the `Thread` reactor wakes it.
    let ex = smol::LocalExecutor::new();
    smol::future::block_on(ex.run(async {
        let ring = LocalRing::new(64).unwrap();
        let driver = ex.spawn(ring.driver::<Thread>().unwrap());
        scenarios(&ring, "thread-local").await;
        drop(ring);
        driver.await.expect("the driver ends cleanly");
    }));
}

#[test]
fn shared_ring_with_no_reactor() {
    let ring = SharedRing::new(64).unwrap();
    let driver = ring.driver::<Thread>().unwrap();
    let driver = std::thread::spawn(move || block_on(driver));
    block_on(scenarios(&ring, "thread-shared"));
    drop(ring);
    driver.join().unwrap().expect("the driver ends cleanly");
}

#[test]
fn setup_flags_an_async_ring_cannot_use_are_refused() {
    let b = uring_ops::core::Builder::new(8)
        .single_issuer()
        .defer_taskrun();
    let e = LocalRing::with_builder(&b).expect_err("DEFER_TASKRUN");
    assert!(
        matches!(
            e,
            Error::AsyncSetupFlag {
                flag: "DEFER_TASKRUN",
                ..
            }
        ),
        "{e}"
    );
    let e =
        LocalRing::with_builder(&uring_ops::core::Builder::new(8).iopoll()).expect_err("IOPOLL");
    assert!(
        matches!(e, Error::AsyncSetupFlag { flag: "IOPOLL", .. }),
        "{e}"
    );
    // A ring made first, then handed over, is checked the same way.
    match uring_ops::Uring::with_builder(&b) {
        Ok(uring) => {
            let e = LocalRing::from_uring(uring).expect_err("DEFER_TASKRUN");
            assert!(
                matches!(
                    e,
                    Error::AsyncSetupFlag {
                        flag: "DEFER_TASKRUN",
                        ..
                    }
                ),
                "{e}"
            );
        }
        Err(e) => common::skip(format_args!("a DEFER_TASKRUN ring: {e}")),
    }
    assert!(LocalRing::from_uring(uring_ops::Uring::new(8).unwrap()).is_ok());
}
