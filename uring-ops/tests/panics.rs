//! A panic inside an op's `prepare` (user code, run by `push`) leaves the ring as if the push
//! never happened: no slot held for the op (which is dropped once, by the unwinding), no SQE
//! queued, the in-flight count right, and the ring usable and promptly droppable afterwards.

mod common;

use common::tagged_nop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uring_ops::core::{sys, Sqe};
use uring_ops::ops::Nop;
use uring_ops::{Chain, Context, Op, Uring};

/// An op whose `prepare` panics; counts its drops. `INTO_SELF` is its
/// `SQE_POINTS_INTO_SELF` (the ring prepares such an op in its slot, others before moving
/// them there).
struct PanicsInPrepare<const INTO_SELF: bool> {
    drops: Arc<AtomicUsize>,
    _owned: Vec<u8>,
}

impl<const INTO_SELF: bool> PanicsInPrepare<INTO_SELF> {
    fn new(drops: &Arc<AtomicUsize>) -> Self {
        PanicsInPrepare {
            drops: drops.clone(),
            _owned: vec![1; 64],
        }
    }
}

impl<const INTO_SELF: bool> Drop for PanicsInPrepare<INTO_SELF> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: `prepare` writes nothing (it panics before); the op names no memory.
unsafe impl<const INTO_SELF: bool> Op for PanicsInPrepare<INTO_SELF> {
    const OPCODE: u8 = sys::IORING_OP_NOP as u8;
    const NAME: &'static str = "PanicsInPrepare";
    const SQE_POINTS_INTO_SELF: bool = INTO_SELF;
    type Output = i32;

    fn prepare(&mut self, _sqe: &mut Sqe) {
        panic!("prepare failed (on purpose)");
    }

    fn complete(self, res: i32, _flags: u32) -> i32 {
        res
    }
}

/// Drops `ring` and checks it took well under the drain timeout it would wait for a phantom
/// op that never completes.
fn drops_promptly<R>(ring: R) {
    let start = Instant::now();
    drop(ring);
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "the drop waited {took:?} (for an op the kernel never saw?)"
    );
}

/// Pushes `make()` on a `Uring`, expecting the push to panic; then checks the ring.
fn uring_survives<T: uring_ops::Submit>(make: impl FnOnce(&Arc<AtomicUsize>) -> T) {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut ring = Uring::new(8).unwrap();
    let op = make(&drops);
    let pushed = catch_unwind(AssertUnwindSafe(|| ring.push(op).map(drop)));
    assert!(pushed.is_err(), "the push did not panic");
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the op is dropped once");
    assert_eq!(ring.in_flight(), 0, "a phantom op is left in flight");
    // Nothing of the failed push reaches the kernel: one push, one SQE.
    let (nop, want) = tagged_nop(5);
    let t = ring.push(nop).unwrap();
    assert_eq!(ring.submit().unwrap(), 1);
    assert_eq!(ring.wait(t).unwrap().unwrap(), want);
    assert_eq!(ring.in_flight(), 0);
    drops_promptly(ring);
}

#[test]
fn uring_push_survives_a_panic_in_prepare_in_place() {
    uring_survives(PanicsInPrepare::<true>::new);
}

#[test]
fn uring_push_survives_a_panic_in_prepare_before_the_move() {
    uring_survives(PanicsInPrepare::<false>::new);
}

#[test]
fn uring_push_survives_a_panic_in_a_later_link_of_a_chain() {
    uring_survives(|drops| Chain::new(Nop::new()).then(PanicsInPrepare::<true>::new(drops)));
}

#[test]
fn context_push_survives_a_panic_in_prepare() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ctx = Context::new(8).unwrap();
    let pushed = catch_unwind(AssertUnwindSafe(|| {
        ctx.push(Chain::new(Nop::new()).then(PanicsInPrepare::<true>::new(&drops)))
            .map(drop)
    }));
    assert!(pushed.is_err(), "the push did not panic");
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the op is dropped once");
    assert_eq!(ctx.in_flight(), 0, "a phantom op is left in flight");
    let pushed = catch_unwind(AssertUnwindSafe(|| {
        ctx.push(PanicsInPrepare::<false>::new(&drops)).map(drop)
    }));
    assert!(pushed.is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert_eq!(ctx.in_flight(), 0);
    // The context still works, from this thread and others (its locks were poisoned by the
    // panic, which it tolerates).
    let (nop, want) = tagged_nop(5);
    let t = ctx.push(nop).unwrap();
    assert_eq!(ctx.wait(t).unwrap().unwrap(), want);
    std::thread::scope(|s| {
        s.spawn(|| {
            let (nop, want) = tagged_nop(6);
            let t = ctx.push(nop).unwrap();
            assert_eq!(ctx.wait(t).unwrap().unwrap(), want);
        });
    });
    assert_eq!(ctx.in_flight(), 0);
    drops_promptly(ctx);
}
