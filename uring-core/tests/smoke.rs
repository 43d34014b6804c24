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
