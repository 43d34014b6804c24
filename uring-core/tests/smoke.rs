//! First checks of the ring on the real kernel and the simulated one.
#![cfg(not(loom))]

use uring_core::sim::SimConfig;
use uring_core::{sys, Backend, Builder, Ring};

fn push_nops<B: Backend>(ring: &mut Ring<B>, n: u32, first: u64) {
    let mut r = ring.sq().reserve(n).unwrap();
    for i in 0..n {
        r.get(i)
            .unwrap()
            .set_opcode(sys::IORING_OP_NOP as u8)
            .set_user_data(first + u64::from(i));
    }
    // SAFETY: NOPs name no memory.
    unsafe { r.commit() };
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot make io_uring system calls")]
fn kernel_nop_roundtrip() {
    let mut ring = Builder::new(8).build().unwrap();
    push_nops(&mut ring, 3, 100);
    assert_eq!(ring.submit_and_wait(3).unwrap(), 3);
    let got: Vec<_> = ring
        .cq()
        .batch()
        .map(|c| (c.user_data(), c.raw_result()))
        .collect();
    assert_eq!(got, vec![(100, 0), (101, 0), (102, 0)]);
    assert_eq!(ring.cq().ready(), 0);
}

#[test]
fn sim_nop_roundtrip_across_u32_wrap() {
    let cfg = SimConfig {
        start_index: u32::MAX - 3,
        ..SimConfig::default()
    };
    let mut ring = Builder::new(4).build_sim_with(cfg).unwrap();
    for round in 0..5u64 {
        push_nops(&mut ring, 3, round * 10);
        assert_eq!(ring.submit_and_wait(3).unwrap(), 3);
        let got: Vec<_> = ring.cq().batch().map(|c| c.user_data()).collect();
        assert_eq!(got, vec![round * 10, round * 10 + 1, round * 10 + 2]);
    }
}

/// A timeout too long for `Instant` to represent (`Duration::MAX`) means no deadline: the wait
/// blocks until the completion arrives instead of panicking on the overflow ("overflow when
/// adding duration to instant"), on the ring and on its completion half.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot make io_uring system calls")]
fn wait_timeout_of_duration_max_is_no_deadline() {
    use std::time::{Duration, Instant};
    let mut ring = Builder::new(4).build().unwrap();
    let ts = sys::__kernel_timespec {
        tv_sec: 0,
        tv_nsec: 20_000_000,
    };
    let mut r = ring.sq().reserve(1).unwrap();
    r.first()
        .set_opcode(sys::IORING_OP_TIMEOUT as u8)
        .set_addr(&ts as *const sys::__kernel_timespec as u64)
        .set_len(1)
        .set_user_data(5);
    // SAFETY: the kernel reads `ts` when the SQE is submitted, below, while `ts` is alive.
    unsafe { r.commit() };
    let start = Instant::now();
    ring.submit().unwrap();
    // Nothing is ready yet: this blocks in the kernel until the 20 ms timeout completes.
    assert_eq!(ring.wait_timeout(1, Duration::MAX).unwrap(), 1);
    assert!(
        start.elapsed() >= Duration::from_millis(15),
        "{:?}",
        start.elapsed()
    );
    let cqe = ring.cq().pop().unwrap();
    assert_eq!((cqe.user_data(), cqe.raw_result()), (5, -libc::ETIME));

    push_nops(&mut ring, 1, 6);
    ring.submit().unwrap();
    assert_eq!(ring.cq().wait_timeout(1, Duration::MAX).unwrap(), 1);
    assert_eq!(ring.cq().pop().unwrap().user_data(), 6);
}
