//! The shareable `Context` on the real kernel: the behaviour of crosvm's `URingContext` tests,
//! ported (with the multi-submitter, multi-completer test crosvm had to disable run 200 times),
//! and the context's own guarantees (tickets from any thread, wake-ups, the allowlist, drop).
//!
//! Every test that could hang runs under a watchdog that fails it instead.

mod common;

use common::temp_file;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read as _, Seek, SeekFrom, Write as _};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use uring_ops::core::{Builder as CoreBuilder, Error as CoreError, SetupFlags as CoreSetupFlags};
use uring_ops::ops::{
    Fallocate, FallocateMode, Fsync, Nop, PollAdd, PollEvents, Read, Readv, Write, Writev,
};
use uring_ops::Outcome;
use uring_ops::{Completion, Context, ContextBuilder, Error, Fd, Op, DROP_DRAIN_TIMEOUT};

/// Runs `f` on its own thread and fails the test if it takes longer than `limit`.
fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().unwrap(),
        Err(RecvTimeoutError::Timeout) => panic!("{what}: hung (no result in {limit:?})"),
        Err(RecvTimeoutError::Disconnected) => match h.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(_) => unreachable!("the thread sends before it returns"),
        },
    }
}

const LIMIT: Duration = Duration::from_secs(20);

/// A pipe: (read end, for ops; write end).
fn pipe() -> (Fd, std::fs::File) {
    let (rx, tx) = common::pipe();
    (rx, std::fs::File::from(tx))
}

/// Calls `wait_completions` until `n` completions have come, asserting no duplicate key.
fn collect(ctx: &Context, n: usize) -> Vec<Completion> {
    let mut all = Vec::new();
    while all.len() < n {
        all.extend(ctx.wait_completions().unwrap());
    }
    assert_eq!(all.len(), n, "more completions than submissions");
    let keys: HashSet<u64> = all.iter().map(|c| c.key()).collect();
    assert_eq!(keys.len(), n, "a completion was reported twice");
    all
}

/// crosvm `read_parallel`: far more reads than the ring holds (640 through 16 SQ entries),
/// every one delivering its block.
#[test]
fn read_parallel_more_ops_than_the_ring_holds() {
    bounded("read_parallel", LIMIT, || {
        const QUEUE: usize = 10;
        const BLOCK: usize = 0x1000;
        let contents: Vec<u8> = (0..QUEUE * BLOCK).map(|i| (i / BLOCK) as u8 + 1).collect();
        let f = temp_file("parallel", &contents);
        let ctx = Context::new(QUEUE as u32).unwrap();
        assert_eq!(ctx.info().sq_entries, 16);
        let mut pending = VecDeque::new();
        let mut done = 0;
        let check = |(i, (n, buf)): (usize, (std::io::Result<usize>, Vec<u8>))| {
            assert_eq!(n.unwrap(), BLOCK);
            let want = (i % QUEUE) as u8 + 1;
            assert!(
                buf.iter().all(|&b| b == want),
                "read {i} got the wrong block"
            );
        };
        for i in 0..QUEUE * 64 {
            let mut op = Read::new(&f.fd, vec![0u8; BLOCK], ((i % QUEUE) * BLOCK) as u64);
            loop {
                match ctx.push(op) {
                    Ok(t) => {
                        pending.push_back((i, t));
                        break;
                    }
                    // The ring is full and the kernel would not take more: complete the oldest.
                    Err(e) if matches!(e.error, Error::QueueFull { .. }) => {
                        op = e.op;
                        let (j, t) = pending.pop_front().unwrap();
                        check((j, ctx.wait(t).unwrap()));
                        done += 1;
                    }
                    Err(e) => panic!("push: {}", e.error),
                }
            }
        }
        assert!(ctx.in_flight() > ctx.info().sq_entries as usize || done > 0);
        for (i, t) in pending {
            check((i, ctx.wait(t).unwrap()));
            done += 1;
        }
        assert_eq!(done, QUEUE * 64);
        assert_eq!(ctx.in_flight(), 0);
    });
}

/// crosvm `read_readv`: single reads and one-buffer readvs, alternating, each reported by
/// `wait_completions` with its tag.
#[test]
fn read_and_readv_alternate() {
    bounded("read_readv", LIMIT, || {
        let contents: Vec<u8> = (0..0x2000).map(|i| (i / 0x1000) as u8 + 7).collect();
        let f = temp_file("readreadv", &contents);
        let ctx = Context::new(128).unwrap();
        for i in 0..256u64 {
            let off = (i % 2) * 0x1000;
            let t = ctx
                .push_tagged(Read::new(&f.fd, vec![0u8; 0x1000], off), i)
                .unwrap();
            let c = ctx.wait_completions().unwrap();
            assert_eq!(c.len(), 1);
            assert_eq!(
                (c[0].tag(), c[0].key(), c[0].res()),
                (i, t.user_data(), 0x1000)
            );
            let (_, buf) = ctx.try_take(t).unwrap().done().unwrap();
            assert!(buf.iter().all(|&b| b == (i % 2) as u8 + 7));
            let t = ctx
                .push_tagged(Readv::new(&f.fd, vec![vec![0u8; 0x1000]], off), i)
                .unwrap();
            let c = ctx.wait_completions().unwrap();
            assert_eq!((c.len(), c[0].tag(), c[0].res()), (1, i, 0x1000));
            let (_, bufs) = ctx.try_take(t).unwrap().done().unwrap();
            assert!(bufs[0].iter().all(|&b| b == (i % 2) as u8 + 7));
        }
    });
}

/// crosvm `readv_vec`: one readv into three buffers.
#[test]
fn readv_several_buffers() {
    bounded("readv_vec", LIMIT, || {
        const BUF: usize = 0x2000;
        let contents: Vec<u8> = (0..BUF * 6).map(|i| (i % 251) as u8).collect();
        let f = temp_file("readv", &contents);
        let ctx = Context::new(128).unwrap();
        let bufs = vec![vec![0u8; BUF], vec![0u8; BUF], vec![0u8; BUF]];
        let t = ctx.push_tagged(Readv::new(&f.fd, bufs, 0), 55).unwrap();
        let c = ctx.wait_completions().unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].tag(), c[0].key()), (55, t.user_data()));
        assert_eq!(c[0].result().unwrap(), (3 * BUF) as u32);
        let (n, bufs) = ctx.try_take(t).unwrap().done().unwrap();
        assert_eq!(n.unwrap(), 3 * BUF);
        for (k, b) in bufs.iter().enumerate() {
            assert_eq!(&b[..], &contents[k * BUF..(k + 1) * BUF]);
        }
    });
}

/// crosvm `writev_vec`: a writev of three buffers at an offset, read back.
#[test]
fn writev_then_read_back() {
    bounded("writev_vec", LIMIT, || {
        const BUF: usize = 0x2000;
        const OFFSET: u64 = 0x2000;
        let mut f = temp_file("writev", &[0u8; BUF * 6]);
        let ctx = Context::new(128).unwrap();
        let bufs = vec![vec![0xaau8; BUF], vec![0xffu8; BUF], vec![0x55u8; BUF]];
        let t = ctx
            .push_tagged(Writev::new(&f.fd, bufs, OFFSET), 55)
            .unwrap();
        let c = ctx.wait_completions().unwrap();
        assert_eq!((c.len(), c[0].tag()), (1, 55));
        assert_eq!(c[0].result().unwrap(), (3 * BUF) as u32);
        let (n, bufs) = ctx.wait(t).unwrap();
        assert_eq!((n.unwrap(), bufs.len()), (3 * BUF, 3));
        let mut back = vec![0u8; BUF];
        f.file.seek(SeekFrom::Start(OFFSET)).unwrap();
        for want in [0xaa, 0xff, 0x55] {
            f.file.read_exact(&mut back).unwrap();
            assert!(back.iter().all(|&b| b == want));
        }
    });
}

/// crosvm `fallocate_fsync`: fallocate, three writes with an fsync among them, then a punched
/// hole; the file keeps its size and reads zeros in the hole.
#[test]
fn fallocate_writes_fsync_punch_hole() {
    bounded("fallocate_fsync", LIMIT, || {
        const INIT: u64 = 3 * 4096;
        const GROW: u64 = 50 << 20;
        let f = temp_file("falloc", &[0u8; INIT as usize]);
        let ctx = Context::new(16).unwrap();
        let t = ctx.push(Fallocate::new(&f.fd, 0, INIT + GROW)).unwrap();
        match ctx.wait(t).unwrap() {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                skip(
                    "fallocate_writes_fsync_punch_hole",
                    "the temp file system has no fallocate",
                );
                return;
            }
            r => r.unwrap(),
        }
        assert_eq!(f.file.metadata().unwrap().len(), INIT + GROW);
        let mut pending: HashMap<u64, u64> = HashMap::new();
        for (tag, off) in [(67u64, 0u64), (68, 4096), (69, 8192)] {
            let t = ctx
                .push_tagged(Write::new(&f.fd, vec![tag as u8; 4096], off), tag)
                .unwrap();
            pending.insert(tag, t.user_data());
            ctx.detach(t);
        }
        let t = ctx.push_tagged(Fsync::new(&f.fd), 70).unwrap();
        pending.insert(70, t.user_data());
        ctx.detach(t);
        let mut calls = 0;
        while !pending.is_empty() && calls < 10 {
            for c in ctx.wait_completions().unwrap() {
                let want = if c.tag() == 70 { 0 } else { 4096 };
                assert_eq!(c.result().unwrap(), want, "tag {}", c.tag());
                assert_eq!(pending.remove(&c.tag()), Some(c.key()));
            }
            calls += 1;
        }
        assert!(pending.is_empty(), "left: {pending:?}");
        let hole = Fallocate::new(&f.fd, 4096, 4096)
            .mode(FallocateMode::PUNCH_HOLE | FallocateMode::KEEP_SIZE);
        let t = ctx.push(hole).unwrap();
        ctx.wait(t).unwrap().unwrap();
        let data = std::fs::read(&f.path).unwrap();
        assert_eq!(
            data.len() as u64,
            INIT + GROW,
            "punching a hole keeps the size"
        );
        assert!(data[..4096].iter().all(|&b| b == 67));
        assert!(
            data[4096..8192].iter().all(|&b| b == 0),
            "the hole reads zeros"
        );
        assert!(data[8192..12288].iter().all(|&b| b == 69));
    });
}

/// crosvm `dev_zero_readable`: a poll for input on /dev/zero completes at once with POLLIN.
#[test]
fn dev_zero_readable() {
    bounded("dev_zero", LIMIT, || {
        let f = Fd::new(std::fs::File::open("/dev/zero").unwrap());
        let ctx = Context::new(16).unwrap();
        let t = ctx
            .push_tagged(PollAdd::new(&f, PollEvents::IN), 454)
            .unwrap();
        let c = ctx.wait_completions().unwrap();
        assert_eq!((c.len(), c[0].tag()), (1, 454));
        assert_eq!(c[0].res(), libc::POLLIN as i32);
        let events = ctx.try_take(t).unwrap().done().unwrap().unwrap();
        assert!(events.contains(PollEvents::IN));
    });
}

/// crosvm `queue_many_ebusy_retry`: three full SQs of polls on /dev/zero and one more,
/// submitted before any completion is reaped, overflow the 32-entry CQ; every completion is
/// still delivered once, each POLLIN.
#[test]
fn queue_past_the_cq_size() {
    bounded("queue_many", LIMIT, || {
        let ctx = Context::new(16).unwrap();
        assert_eq!(ctx.info().cq_entries, 32);
        let zero = Fd::new(std::fs::File::open("/dev/zero").unwrap());
        let poll = || PollAdd::new(&zero, PollEvents::IN);
        for batch in 0..3u64 {
            for i in 0..16 {
                ctx.detach(ctx.push_tagged(poll(), batch * 16 + i).unwrap());
            }
            // Each push already handed its poll to the kernel: nothing is left queued.
            assert_eq!(ctx.submit().unwrap(), 0);
        }
        ctx.detach(ctx.push_tagged(poll(), 48).unwrap());
        let all = collect(&ctx, 49);
        let mut tags: Vec<u64> = all.iter().map(|c| c.tag()).collect();
        tags.sort_unstable();
        assert_eq!(tags, (0..49).collect::<Vec<_>>());
        assert!(all.iter().all(|c| c.res() == libc::POLLIN as i32));
        assert_eq!(ctx.in_flight(), 0);
        assert!(ctx
            .wait_completions_timeout(Duration::from_millis(1))
            .unwrap()
            .is_empty());
    });
}

/// crosvm `wake_with_nop`: a thread blocked waiting for a pipe read is woken by a NOP from
/// another thread, then by `wake`, and finally gets its read.
#[test]
fn wake_a_waiter_with_a_nop() {
    bounded("wake_with_nop", LIMIT, || {
        const DATA: [u8; 16] = [0xf4; 16];
        let ctx = Arc::new(Context::new(4).unwrap());
        let (rx_fd, mut tx_file) = pipe();
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let ctx = Arc::clone(&ctx);
            thread::spawn(move || {
                let t = ctx
                    .push_tagged(Read::new(&rx_fd, vec![0u8; DATA.len()], 0), 0)
                    .unwrap();
                tx.send(()).unwrap();
                let c = ctx.wait_completions().unwrap();
                assert_eq!((c.len(), c[0].tag(), c[0].res()), (1, 1, 0), "the NOP");
                tx.send(()).unwrap();
                let c = ctx.wait_completions().unwrap();
                assert!(c.is_empty(), "woken by wake(): {c:?}");
                tx.send(()).unwrap();
                let c = ctx.wait_completions().unwrap();
                assert_eq!((c.len(), c[0].tag()), (1, 0));
                assert_eq!(c[0].result().unwrap(), DATA.len() as u32);
                let (_, buf) = ctx.try_take(t).unwrap().done().unwrap();
                assert_eq!(buf, DATA);
                drop(rx_fd);
            })
        };
        let settle = Duration::from_millis(20); // let the waiter reach the kernel
        rx.recv_timeout(LIMIT).unwrap();
        thread::sleep(settle);
        ctx.detach(ctx.push_tagged(Nop::new(), 1).unwrap());
        ctx.submit().unwrap();
        rx.recv_timeout(LIMIT).unwrap();
        thread::sleep(settle);
        ctx.wake().unwrap();
        rx.recv_timeout(LIMIT).unwrap();
        thread::sleep(settle);
        tx_file.write_all(&DATA).unwrap();
        waiter.join().unwrap();
    });
}

/// crosvm `complete_from_any_thread`: 48 NOPs, completed by 7 threads, none seen twice.
#[test]
fn complete_from_seven_threads() {
    bounded("complete_from_any_thread", LIMIT, || {
        const THREADS: usize = 7;
        const TOTAL: usize = 48;
        let ctx = Context::new(16).unwrap();
        for batch in 0..3 {
            for i in 0..16 {
                ctx.detach(ctx.push_tagged(Nop::new(), batch * 16 + i).unwrap());
            }
            ctx.submit().unwrap();
        }
        let seen = Mutex::new(Vec::new());
        let barrier = std::sync::Barrier::new(THREADS);
        thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    barrier.wait();
                    while seen.lock().unwrap().len() < TOTAL {
                        let c = ctx.wait_completions().unwrap();
                        let mut seen = seen.lock().unwrap();
                        let before = seen.len();
                        seen.extend(c);
                        if before < TOTAL && seen.len() >= TOTAL {
                            // The last ones: release the threads still waiting.
                            for _ in 0..THREADS {
                                ctx.wake().unwrap();
                            }
                        }
                    }
                });
            }
        });
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), TOTAL);
        let tags: HashSet<u64> = seen.iter().map(|c| c.tag()).collect();
        assert_eq!(tags, (0..TOTAL as u64).collect());
        let keys: HashSet<u64> = seen.iter().map(|c| c.key()).collect();
        assert_eq!(keys.len(), TOTAL);
        assert!(seen.iter().all(|c| c.res() == 0));
    });
}

/// crosvm `submit_from_any_thread`: 7 threads × 113 NOPs through a 16-entry ring, completed by
/// the main thread. The tags are crosvm's (`idx * 7 + iter`), which collide across threads:
/// completions are keyed by the library, so each is still delivered once, with its own tag.
#[test]
fn submit_from_seven_threads() {
    bounded("submit_from_any_thread", LIMIT, || {
        const THREADS: usize = 7;
        const ITERATIONS: usize = 113;
        const ENTRIES: usize = 16;
        let ctx = Context::new(ENTRIES as u32).unwrap();
        let in_flight = Mutex::new(0isize);
        let cv = Condvar::new();
        let seen = thread::scope(|s| {
            for idx in 0..THREADS {
                let (ctx, in_flight, cv) = (&ctx, &in_flight, &cv);
                s.spawn(move || {
                    for iter in 0..ITERATIONS {
                        let tag = (idx * THREADS + iter) as u64;
                        loop {
                            match ctx.push_tagged(Nop::new(), tag) {
                                Ok(t) => {
                                    ctx.detach(t);
                                    *in_flight.lock().unwrap() += 1;
                                }
                                Err(e) if matches!(e.error, Error::QueueFull { .. }) => {
                                    let mut n = in_flight.lock().unwrap();
                                    while *n > ENTRIES as isize {
                                        n = cv.wait(n).unwrap();
                                    }
                                    continue;
                                }
                                Err(e) => panic!("push: {}", e.error),
                            }
                            ctx.submit().unwrap();
                            break;
                        }
                    }
                });
            }
            let mut seen = Vec::new();
            while seen.len() < THREADS * ITERATIONS {
                let c = ctx.wait_completions().unwrap();
                *in_flight.lock().unwrap() -= c.len() as isize;
                cv.notify_all();
                seen.extend(c);
            }
            seen
        });
        assert_eq!(seen.len(), THREADS * ITERATIONS);
        assert_eq!(*in_flight.lock().unwrap(), 0);
        let keys: HashSet<u64> = seen.iter().map(|c| c.key()).collect();
        assert_eq!(keys.len(), seen.len(), "a completion was reported twice");
        let mut got: HashMap<u64, usize> = HashMap::new();
        for c in &seen {
            assert_eq!(c.res(), 0);
            *got.entry(c.tag()).or_default() += 1;
        }
        let mut want: HashMap<u64, usize> = HashMap::new();
        for idx in 0..THREADS {
            for iter in 0..ITERATIONS {
                *want.entry((idx * THREADS + iter) as u64).or_default() += 1;
            }
        }
        assert_eq!(got, want);
        assert_eq!(ctx.in_flight(), 0);
        assert!(ctx
            .wait_completions_timeout(Duration::from_millis(1))
            .unwrap()
            .is_empty());
    });
}

/// crosvm `multi_thread_submit_and_complete` (disabled there as flaky): 7 submitters × 113
/// NOPs and 3 completers on one 16-entry ring, 200 times. Each round must finish (no hang),
/// with every completion delivered (no loss) exactly once (no duplicate).
#[test]
fn seven_submitters_three_completers_200_times() {
    const SUBMITTERS: usize = 7;
    const COMPLETERS: usize = 3;
    const ITERATIONS: usize = 113;
    const TOTAL: usize = SUBMITTERS * ITERATIONS;
    let start = Instant::now();
    for round in 0..200 {
        let seen = bounded(
            &format!("round {round}"),
            Duration::from_secs(10),
            move || {
                let ctx = Context::new(16).unwrap();
                let seen = Mutex::new(Vec::with_capacity(TOTAL));
                let finished = AtomicBool::new(false);
                thread::scope(|s| {
                    for idx in 0..SUBMITTERS {
                        let ctx = &ctx;
                        s.spawn(move || {
                            for iter in 0..ITERATIONS {
                                let t = ctx
                                    .push_tagged(Nop::new(), (idx * ITERATIONS + iter) as u64)
                                    .unwrap();
                                ctx.detach(t);
                                ctx.submit().unwrap();
                            }
                        });
                    }
                    for _ in 0..COMPLETERS {
                        s.spawn(|| {
                            while !finished.load(Ordering::Acquire) {
                                let c = ctx.wait_completions().unwrap();
                                let mut seen = seen.lock().unwrap();
                                seen.extend(c);
                                if seen.len() == TOTAL && !finished.swap(true, Ordering::AcqRel) {
                                    for _ in 0..COMPLETERS {
                                        ctx.wake().unwrap();
                                    }
                                }
                            }
                        });
                    }
                });
                assert_eq!(ctx.in_flight(), 0);
                seen.into_inner().unwrap()
            },
        );
        assert_eq!(seen.len(), TOTAL, "round {round}: lost completions");
        let mut tags: Vec<u64> = seen.iter().map(|c| c.tag()).collect();
        tags.sort_unstable();
        assert_eq!(tags, (0..TOTAL as u64).collect::<Vec<_>>(), "round {round}");
        let keys: HashSet<u64> = seen.iter().map(|c| c.key()).collect();
        assert_eq!(
            keys.len(),
            TOTAL,
            "round {round}: a completion reported twice"
        );
        assert!(seen.iter().all(|c| c.res() == 0));
    }
    eprintln!(
        "200 rounds of 7 × 113 NOPs, 3 completers: {:?}",
        start.elapsed()
    );
}

/// Tickets are redeemed from any thread; a timed wait hands the ticket back.
#[test]
fn ticket_waited_from_another_thread() {
    bounded("ticket", LIMIT, || {
        let ctx = Arc::new(Context::new(8).unwrap());
        let (rx_fd, mut tx_file) = pipe();
        let t = ctx.push(Read::new(&rx_fd, vec![0u8; 5], 0)).unwrap();
        let t = ctx
            .wait_timeout(t, Duration::from_millis(30))
            .unwrap()
            .pending()
            .unwrap();
        assert!(!ctx.is_done(&t));
        assert_eq!(ctx.in_flight(), 1);
        let waiter = {
            let ctx = Arc::clone(&ctx);
            thread::spawn(move || ctx.wait(t).unwrap())
        };
        thread::sleep(Duration::from_millis(20));
        tx_file.write_all(b"hello").unwrap();
        let (n, buf) = waiter.join().unwrap();
        assert_eq!((n.unwrap(), &buf[..]), (5, &b"hello"[..]));
        assert_eq!(ctx.in_flight(), 0);
        // Many waiters for many tickets at once, one op each.
        let tickets: Vec<_> = (0..32).map(|_| ctx.push(Nop::new()).unwrap()).collect();
        thread::scope(|s| {
            for t in tickets {
                s.spawn(|| assert_eq!(ctx.wait(t).unwrap().unwrap(), 0));
            }
        });
        drop(rx_fd);
    });
}

/// Two ops with the same tag: each completion names its own key, and each ticket redeems its
/// own buffer, whichever finishes first.
#[test]
fn duplicate_tags_never_free_a_live_buffer() {
    bounded("duplicate tags", LIMIT, || {
        let ctx = Context::new(8).unwrap();
        let (a_rx, mut a_tx) = pipe();
        let (b_rx, mut b_tx) = pipe();
        let a = ctx
            .push_tagged(Read::new(&a_rx, vec![0u8; 3], 0), 7)
            .unwrap();
        let b = ctx
            .push_tagged(Read::new(&b_rx, vec![0u8; 3], 0), 7)
            .unwrap();
        assert_ne!(a.user_data(), b.user_data());
        b_tx.write_all(b"bbb").unwrap();
        let c = ctx.wait_completions().unwrap();
        assert_eq!((c.len(), c[0].tag(), c[0].key()), (1, 7, b.user_data()));
        let a = ctx.try_take(a).unwrap().pending().unwrap();
        let (_, buf) = ctx.try_take(b).unwrap().done().unwrap();
        assert_eq!(buf, b"bbb");
        a_tx.write_all(b"aaa").unwrap();
        let (_, buf) = ctx.wait(a).unwrap();
        assert_eq!(buf, b"aaa");
        let c = ctx.wait_completions().unwrap();
        assert_eq!((c.len(), c[0].tag()), (1, 7));
    });
}

/// The allowlist: refused ops come back with their buffers and an error naming the op;
/// allowed ones run; wake-ups and the cancellation on drop still work.
#[test]
fn allowlist() {
    bounded("allowlist", LIMIT, || {
        let f = temp_file("allow", b"allowed");
        let ctx = Context::builder(16)
            .allow::<Readv<Vec<u8>>>()
            .allow::<Nop>()
            .build()
            .unwrap();
        assert!(ctx.allows(<Nop as Op>::OPCODE));
        assert!(!ctx.allows(<Writev<Vec<u8>> as Op>::OPCODE));
        let e = ctx
            .push(Writev::new(&f.fd, vec![b"xyz".to_vec()], 0))
            .unwrap_err();
        assert!(matches!(e.error, Error::NotAllowed { op: "WRITEV" }));
        assert_eq!(e.error.raw_os_error(), Some(libc::EACCES));
        assert_eq!(e.op.into_bufs(), vec![b"xyz".to_vec()]);
        let e = ctx.push(Read::new(&f.fd, vec![0u8; 4], 0)).unwrap_err();
        assert!(matches!(e.error, Error::NotAllowed { op: "READ" }));
        let t = ctx.push(Readv::new(&f.fd, vec![vec![0u8; 7]], 0)).unwrap();
        let (n, bufs) = ctx.wait(t).unwrap();
        assert_eq!((n.unwrap(), &bufs[0][..]), (7, &b"allowed"[..]));
        assert_eq!(ctx.wait(ctx.push(Nop::new()).unwrap()).unwrap().unwrap(), 0);
        ctx.wake().unwrap();
        assert!(ctx.wait_completions().unwrap().is_empty());
        // An op that never completes by itself is cancelled on drop (ASYNC_CANCEL is
        // registered with the kernel even though it is not in the user's allowlist).
        let (rx_fd, _tx) = pipe();
        drop(ctx.push(Readv::new(&rx_fd, vec![vec![0u8; 8]], 0)).unwrap());
        ctx.submit().unwrap();
        let t0 = Instant::now();
        drop(ctx);
        assert!(
            t0.elapsed() < DROP_DRAIN_TIMEOUT,
            "the read was not cancelled"
        );
    });
}

/// Dropping a context with ops in flight (tickets dropped or held) cancels them. (A ticket has
/// no `Drop`: forgetting one is the same as dropping it.)
#[test]
fn drop_cancels_in_flight() {
    bounded("drop", LIMIT, || {
        let ctx = Context::new(8).unwrap();
        let (rx_fd, _tx) = pipe();
        let held = ctx.push(Read::new(&rx_fd, vec![0u8; 8], 0)).unwrap();
        drop(ctx.push(Read::new(&rx_fd, vec![0u8; 8], 0)).unwrap());
        drop(ctx.push(Read::new(&rx_fd, vec![0u8; 8], 0)).unwrap());
        ctx.submit().unwrap();
        assert_eq!(ctx.in_flight(), 3);
        let t0 = Instant::now();
        drop(ctx);
        assert!(t0.elapsed() < DROP_DRAIN_TIMEOUT);
        drop(held);
    });
}

/// crosvm `write_one_submit_poll`: the ring's fd polls readable once a completion is ready.
#[test]
fn ring_fd_polls_readable() {
    bounded("poll ring fd", LIMIT, || {
        let ctx = Context::new(16).unwrap();
        assert_eq!(ctx.as_fd().as_raw_fd(), ctx.as_raw_fd());
        let poll = |timeout_ms| {
            let mut p = libc::pollfd {
                fd: ctx.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, alive for the call.
            let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
            assert!(n >= 0);
            n == 1 && p.revents & libc::POLLIN != 0
        };
        assert!(!poll(1));
        let f = temp_file("pollfd", &[0u8; 4096]);
        let t = ctx
            .push_tagged(Write::new(&f.fd, vec![1u8; 4096], 0), 55)
            .unwrap();
        ctx.submit().unwrap();
        assert!(poll(5000));
        let c = ctx.wait_completions().unwrap();
        assert_eq!((c.len(), c[0].tag(), c[0].res()), (1, 55, 4096));
        ctx.detach(t);
        assert!(!poll(1));
    });
}

/// Both kinds of waiter on one ring at once, so the poller role passes between them: threads
/// waiting for their own tickets (pipe reads that complete after the wait began, and timed
/// waits that first expire) next to tagged NOPs completed by `wait_completions` threads.
#[test]
fn tickets_and_completions_mixed() {
    const ECHOES: usize = 4;
    const READS: usize = 100;
    const SUBMITTERS: usize = 2;
    const NOPS: usize = 300;
    const COMPLETERS: usize = 2;
    for round in 0..10 {
        bounded(&format!("mixed round {round}"), LIMIT, move || {
            let ctx = Context::new(8).unwrap();
            let seen = Mutex::new(Vec::new());
            let finished = AtomicBool::new(false);
            thread::scope(|s| {
                for e in 0..ECHOES {
                    let ctx = &ctx;
                    s.spawn(move || {
                        let (rx_fd, mut tx_file) = pipe();
                        for i in 0..READS {
                            let byte = (e * READS + i) as u8;
                            let t = ctx.push(Read::new(&rx_fd, vec![0u8; 1], 0)).unwrap();
                            let t = if i % 10 == 0 {
                                // Nothing written yet: the timed wait expires.
                                match ctx.wait_timeout(t, Duration::from_millis(1)) {
                                    Ok(Outcome::Pending(t)) => t,
                                    other => panic!("read {i} finished early: {:?}", other.err()),
                                }
                            } else {
                                t
                            };
                            tx_file.write_all(&[byte]).unwrap();
                            let (n, buf) = ctx.wait(t).unwrap();
                            assert_eq!((n.unwrap(), buf[0]), (1, byte));
                        }
                    });
                }
                for idx in 0..SUBMITTERS {
                    let ctx = &ctx;
                    s.spawn(move || {
                        for i in 0..NOPS {
                            let t = ctx.push_tagged(Nop::new(), (idx * NOPS + i) as u64);
                            ctx.detach(t.unwrap());
                            ctx.submit().unwrap();
                        }
                    });
                }
                for _ in 0..COMPLETERS {
                    s.spawn(|| {
                        while !finished.load(Ordering::Acquire) {
                            let c = ctx.wait_completions().unwrap();
                            let mut seen = seen.lock().unwrap();
                            seen.extend(c);
                            if seen.len() == SUBMITTERS * NOPS
                                && !finished.swap(true, Ordering::AcqRel)
                            {
                                for _ in 0..COMPLETERS {
                                    ctx.wake().unwrap();
                                }
                            }
                        }
                    });
                }
            });
            let seen = seen.into_inner().unwrap();
            let mut tags: Vec<u64> = seen.iter().map(|c| c.tag()).collect();
            tags.sort_unstable();
            assert_eq!(tags, (0..(SUBMITTERS * NOPS) as u64).collect::<Vec<_>>());
            assert_eq!(ctx.in_flight(), 0);
        });
    }
}

/// The kernel's rule, as documented on `Context`: an op belongs to the thread that pushed it
/// (push submits). Another thread's submit does not take it over, so that thread exiting does
/// not affect it; but once its own thread has exited, a read waiting for a pipe is cancelled
/// (`ECANCELED`) when the pipe becomes readable, and leaves the data in the pipe.
#[test]
fn ops_belong_to_the_thread_that_pushed_them() {
    bounded("thread exit", LIMIT, || {
        let ctx = Context::new(8).unwrap();
        let (rx_fd, mut tx_file) = pipe();
        let mine = ctx.push(Read::new(&rx_fd, vec![0u8; 4], 0)).unwrap();
        thread::scope(|s| {
            s.spawn(|| {
                ctx.detach(ctx.push(Nop::new()).unwrap());
                ctx.submit().unwrap();
            });
        });
        tx_file.write_all(b"mine").unwrap();
        let (n, buf) = ctx.wait(mine).unwrap();
        assert_eq!((n.unwrap(), &buf[..]), (4, &b"mine"[..]));

        let orphan = thread::scope(|s| {
            s.spawn(|| ctx.push(Read::new(&rx_fd, vec![0u8; 4], 0)).unwrap())
                .join()
                .unwrap()
        });
        let orphan = ctx
            .wait_timeout(orphan, Duration::from_millis(20))
            .unwrap()
            .pending()
            .unwrap();
        tx_file.write_all(b"left").unwrap();
        let (n, _) = ctx.wait(orphan).unwrap();
        assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        let again = ctx.push(Read::new(&rx_fd, vec![0u8; 4], 0)).unwrap();
        let (n, buf) = ctx.wait(again).unwrap();
        assert_eq!((n.unwrap(), &buf[..]), (4, &b"left"[..]));
    });
}

/// Reports a test that could not run on this kernel, straight to the process's stderr (which
/// the test harness does not capture), so that a plain `cargo test` shows it.
fn skip(test: &str, why: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{test}: skipped: {why}");
}

/// Builds the context, or reports the test skipped when the kernel refuses the setup with
/// `EINVAL`/`EPERM`/`EOPNOTSUPP` (a setup flag it lacks, or does not allow this user).
fn build_or_skip(test: &str, b: ContextBuilder) -> Option<Context> {
    match b.build() {
        Ok(ctx) => Some(ctx),
        Err(Error::Core(e @ CoreError::Os { .. }))
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL) | Some(libc::EPERM) | Some(libc::EOPNOTSUPP)
            ) =>
        {
            skip(
                test,
                format_args!("the kernel refused the ring's setup: {e}"),
            );
            None
        }
        Err(e) => panic!("{test}: build failed: {e}"),
    }
}

/// Two threads push NOPs and readvs of a known file through a 4-entry SQPOLL ring whose
/// poller idles after 1 ms (pauses let it fall asleep): the SQ fills and pushes wait for the
/// poller to make room instead of failing, and every completion arrives exactly once with
/// the right data. Also with SINGLE_ISSUER, which SQPOLL makes the poller's.
#[test]
fn sqpoll_two_submitting_threads() {
    const TEST: &str = "sqpoll_two_submitting_threads";
    const PER_THREAD: u64 = 120;
    const BLOCK: usize = 512;
    let contents: Vec<u8> = (0..8 * BLOCK).map(|i| (i / BLOCK) as u8 + 1).collect();
    let f = Arc::new(temp_file("sqpoll", &contents));
    let sqpoll = || CoreBuilder::new(4).sqpoll(Duration::from_millis(1));
    for (what, builder) in [
        ("SQPOLL", sqpoll()),
        ("SQPOLL|SINGLE_ISSUER", sqpoll().single_issuer()),
    ] {
        let want = builder.setup_flags();
        let Some(ctx) = build_or_skip(TEST, ContextBuilder::with_builder(builder)) else {
            continue;
        };
        assert!(ctx.info().flags.contains(want), "{what}: {:?}", ctx.info());
        let ctx = Arc::new(ctx);
        let f = Arc::clone(&f);
        bounded(what, LIMIT, move || {
            let pushers: Vec<_> = (0..2u64)
                .map(|t| {
                    let (ctx, f) = (Arc::clone(&ctx), Arc::clone(&f));
                    thread::spawn(move || {
                        let (mut nops, mut reads) = (Vec::new(), Vec::new());
                        for i in 0..PER_THREAD {
                            let tag = t * 1000 + i;
                            if i % 2 == 0 {
                                nops.push(ctx.push_tagged(Nop::new(), tag).unwrap());
                            } else {
                                let block = (tag % 8) as usize;
                                let op = Readv::new(
                                    &f.fd,
                                    vec![vec![0u8; BLOCK]],
                                    (block * BLOCK) as u64,
                                );
                                reads.push((block, ctx.push_tagged(op, tag).unwrap()));
                            }
                            if i % 30 == 29 {
                                thread::sleep(Duration::from_millis(5));
                            }
                        }
                        (nops, reads)
                    })
                })
                .collect();
            let all = collect(&ctx, 2 * PER_THREAD as usize);
            let tags: HashSet<u64> = all.iter().map(|c| c.tag()).collect();
            let want: HashSet<u64> = (0..2)
                .flat_map(|t| (0..PER_THREAD).map(move |i| t * 1000 + i))
                .collect();
            assert_eq!(tags, want);
            for c in &all {
                let len = if c.tag() % 2 == 0 { 0 } else { BLOCK as i32 };
                assert_eq!(c.res(), len, "tag {}", c.tag());
            }
            for h in pushers {
                let (nops, reads) = h.join().unwrap();
                for t in nops {
                    assert_eq!(ctx.try_take(t).unwrap().done().unwrap().unwrap(), 0);
                }
                for (block, t) in reads {
                    let (n, bufs) = ctx.try_take(t).unwrap().done().unwrap();
                    assert_eq!(n.unwrap(), BLOCK);
                    assert!(
                        bufs[0].iter().all(|&b| b == block as u8 + 1),
                        "block {block}"
                    );
                }
            }
            assert_eq!(ctx.in_flight(), 0);
            assert!(ctx
                .wait_completions_timeout(Duration::from_millis(5))
                .unwrap()
                .is_empty());
        });
    }
}

/// On an SQPOLL ring the poller thread issues every request: an op pushed by a thread that
/// has exited since is not cancelled (compare `ops_belong_to_the_thread_that_pushed_them`).
#[test]
fn sqpoll_ops_outlive_the_thread_that_pushed_them() {
    const TEST: &str = "sqpoll_ops_outlive_the_thread_that_pushed_them";
    let b = ContextBuilder::with_builder(CoreBuilder::new(8).sqpoll(Duration::from_millis(1)));
    let Some(ctx) = build_or_skip(TEST, b) else {
        return;
    };
    bounded(TEST, LIMIT, move || {
        let (rx_fd, mut tx_file) = pipe();
        let orphan = thread::scope(|s| {
            s.spawn(|| ctx.push(Read::new(&rx_fd, vec![0u8; 4], 0)).unwrap())
                .join()
                .unwrap()
        });
        let orphan = ctx
            .wait_timeout(orphan, Duration::from_millis(20))
            .unwrap()
            .pending()
            .unwrap();
        tx_file.write_all(b"kept").unwrap();
        let (n, buf) = ctx.wait(orphan).unwrap();
        assert_eq!((n.unwrap(), &buf[..]), (4, &b"kept"[..]));
    });
}

/// COOP_TASKRUN (with and without TASKRUN_FLAG): a pipe read finishes through the task work
/// of the thread that pushed it, which the kernel no longer interrupts. That thread is asleep
/// on a channel while another thread waits for the read: the kernel still wakes it to run the
/// work, and the waiter gets the data. NOPs from two threads complete as usual.
#[test]
fn coop_taskrun_completes_ops_of_a_sleeping_submitter() {
    const TEST: &str = "coop_taskrun_completes_ops_of_a_sleeping_submitter";
    for builder in [
        CoreBuilder::new(8).coop_taskrun(),
        CoreBuilder::new(8).coop_taskrun().taskrun_flag(),
    ] {
        let want = builder.setup_flags();
        let Some(ctx) = build_or_skip(TEST, ContextBuilder::with_builder(builder)) else {
            return;
        };
        assert!(ctx.info().flags.contains(want), "{:?}", ctx.info());
        let ctx = Arc::new(ctx);
        bounded(TEST, LIMIT, move || {
            let (rx_fd, mut tx_file) = pipe();
            let (ticket_tx, ticket_rx) = mpsc::channel();
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let submitter = {
                let ctx = Arc::clone(&ctx);
                thread::spawn(move || {
                    let t = ctx.push(Read::new(&rx_fd, vec![0u8; 4], 0)).unwrap();
                    ticket_tx.send(t).unwrap();
                    // Asleep in the kernel (a futex wait) until the read has been redeemed.
                    let _ = done_rx.recv();
                    let t = ctx.push(Nop::new()).unwrap();
                    assert_eq!(ctx.wait(t).unwrap().unwrap(), 0);
                })
            };
            let t = ticket_rx.recv().unwrap();
            thread::sleep(Duration::from_millis(20));
            tx_file.write_all(b"coop").unwrap();
            let (n, buf) = match ctx.wait_timeout(t, Duration::from_secs(5)) {
                Ok(Outcome::Done(out)) => out,
                _ => panic!("the read never completed"),
            };
            assert_eq!((n.unwrap(), &buf[..]), (4, &b"coop"[..]));
            let t = ctx.push(Nop::new()).unwrap();
            assert_eq!(ctx.wait(t).unwrap().unwrap(), 0);
            done_tx.send(()).unwrap();
            submitter.join().unwrap();
            assert_eq!(ctx.in_flight(), 0);
        });
    }
}

/// The setup flags a context cannot honour are refused with `ContextSetupFlag` naming the
/// flag, before any ring is made: the builders below have 0 entries, which uring-core and the
/// kernel would refuse with another error, so the context's check comes first.
#[test]
fn refuses_setup_flags_it_cannot_honour() {
    let cases = |entries: u32| {
        let b = || CoreBuilder::new(entries);
        let sqpoll = || b().sqpoll(Duration::from_millis(10));
        [
            (
                ContextBuilder::with_builder(b().single_issuer().defer_taskrun()),
                "IORING_SETUP_DEFER_TASKRUN",
            ),
            (
                ContextBuilder::with_builder(b().single_issuer()),
                "IORING_SETUP_SINGLE_ISSUER: without SQPOLL",
            ),
            (
                ContextBuilder::with_builder(b().single_issuer()).allow::<Nop>(),
                "IORING_SETUP_SINGLE_ISSUER: without SQPOLL",
            ),
            (
                ContextBuilder::with_builder(b().iopoll()),
                "IORING_SETUP_IOPOLL",
            ),
            (
                ContextBuilder::with_builder(sqpoll().iopoll()),
                "IORING_SETUP_IOPOLL",
            ),
            (
                ContextBuilder::with_builder(b().iopoll().flags(CoreSetupFlags::HYBRID_IOPOLL)),
                "IORING_SETUP_IOPOLL",
            ),
            (
                ContextBuilder::with_builder(b().disabled()),
                "IORING_SETUP_R_DISABLED",
            ),
            (
                ContextBuilder::with_builder(b().disabled()).allow::<Nop>(),
                "IORING_SETUP_R_DISABLED",
            ),
        ]
    };
    for entries in [0, 8] {
        for (b, name) in cases(entries) {
            match b.build() {
                Err(e @ Error::ContextSetupFlag { flag, .. }) => {
                    let why = e.to_string();
                    assert!(
                        name.contains(flag) && why.contains(name),
                        "{entries} entries: {why:?} should name {name}"
                    );
                    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
                }
                other => panic!("{entries} entries, {name}: {other:?}"),
            }
        }
    }
    let refused = Context::with_builder(&CoreBuilder::new(0).iopoll()).unwrap_err();
    assert!(
        matches!(&refused, Error::ContextSetupFlag { flag: "IOPOLL", .. }),
        "{refused:?}"
    );
}

/// An allowlist on a caller's builder: the context adds R_DISABLED (to register the
/// restrictions, then enables the ring, so `info` no longer reports it) and keeps every flag
/// and size of the builder; ops outside the list are refused, those in it run. Once with
/// plain flags, once with SQPOLL.
#[test]
fn allowlist_on_a_user_builder_keeps_its_flags() {
    const TEST: &str = "allowlist_on_a_user_builder_keeps_its_flags";
    let f = temp_file("allow-builder", b"allowed");
    for builder in [
        CoreBuilder::new(8).cq_entries(64).clamp().submit_all(),
        CoreBuilder::new(8)
            .cq_entries(64)
            .sqpoll(Duration::from_millis(10)),
    ] {
        let want = builder.setup_flags();
        let b = ContextBuilder::with_builder(builder)
            .allow::<Readv<Vec<u8>>>()
            .allow::<Nop>();
        let Some(ctx) = build_or_skip(TEST, b) else {
            continue;
        };
        let info = ctx.info();
        // Every flag of the builder, and not R_DISABLED: the ring was enabled once restricted.
        assert_eq!(info.flags, want, "{info:?}");
        assert_eq!((info.sq_entries, info.cq_entries), (8, 64));
        let e = ctx
            .push(Writev::new(&f.fd, vec![b"xyz".to_vec()], 0))
            .unwrap_err();
        assert!(
            matches!(e.error, Error::NotAllowed { op: "WRITEV" }),
            "{want:?}"
        );
        assert_eq!(e.op.into_bufs(), vec![b"xyz".to_vec()]);
        let t = ctx.push(Readv::new(&f.fd, vec![vec![0u8; 7]], 0)).unwrap();
        let (n, bufs) = ctx.wait(t).unwrap();
        assert_eq!((n.unwrap(), &bufs[0][..]), (7, &b"allowed"[..]));
        assert_eq!(ctx.wait(ctx.push(Nop::new()).unwrap()).unwrap().unwrap(), 0);
        // The context's own SQEs still pass the kernel's restrictions.
        ctx.wake().unwrap();
        assert!(ctx.wait_completions().unwrap().is_empty());
    }
}
