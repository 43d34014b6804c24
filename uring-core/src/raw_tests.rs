//! The copies a resize makes from the old ring memory (Miri checks their pointer arithmetic),
//! and the SQ array layouts.

use super::ArrayLayout;
use crate::{Builder, Ring};
use uring_sys as sys;

type SimRing = Ring<crate::sim::Sim>;

fn ring(entries: u32, wide: bool) -> SimRing {
    let b = Builder::new(entries).cq_entries(entries * 2);
    let b = if wide { b.sqe128().cqe32() } else { b };
    b.build_sim().unwrap()
}

/// SQEs at positions 6..11 of an 8-slot ring (slots 6, 7, 0, 1, 2) land at the same positions
/// of a 32-slot ring, whole (the second half of a 128-byte SQE too).
fn copies_sqes(wide: bool) {
    let mut old = ring(8, wide);
    let new = ring(32, wide);
    // Move the positions on by 6 first, so that the copied range wraps in the old ring.
    let mut r = old.sq().reserve(6).unwrap();
    for i in 0..6 {
        r.get(i).unwrap().set_opcode(sys::IORING_OP_NOP as u8);
    }
    // SAFETY: NOPs name no memory.
    unsafe { r.commit() };
    old.submit_and_wait(6).unwrap();
    assert_eq!(old.cq().batch().count(), 6);
    let mut r = old.sq().reserve(5).unwrap();
    for i in 0..5 {
        r.get(i)
            .unwrap()
            .set_opcode(sys::IORING_OP_NOP as u8)
            .set_user_data(100 + u64::from(i));
        if let Some(cmd) = r.big_cmd(i) {
            cmd.fill(i as u8 + 1);
        }
    }
    // SAFETY: NOPs name no memory; they are never submitted.
    unsafe { r.commit() };
    let (old_sq, _, _) = old.sim_handle().views();
    let (new_sq, _, _) = new.sim_handle().views();
    // SAFETY: both views are live (their rings are); the simulated kernel of neither ring runs
    // (nothing enters it); the 5 positions fit both rings.
    unsafe { new_sq.copy_sqes_from(&old_sq, 6, 11) };
    for pos in 6..11u32 {
        let slot = new_sq.slots().sqe(pos);
        // SAFETY: a slot of the new ring, written just above, read by nobody else.
        let sqe = unsafe { slot.read() };
        assert_eq!(sqe.user_data, 100 + u64::from(pos - 6));
        if wide {
            // SAFETY: with SQE128 the slot's second half follows it.
            let cmd = unsafe { slot.add(1).cast::<[u8; 64]>().read() };
            assert!(
                cmd.iter().all(|&b| b == (pos - 6) as u8 + 1),
                "slot {pos}: {cmd:?}"
            );
        }
    }
}

#[test]
fn sqes_are_copied_whole_to_the_same_positions() {
    copies_sqes(false);
    copies_sqes(true);
}

fn copies_cqes(wide: bool) {
    let old = ring(4, wide);
    let new = ring(16, wide);
    let (_, old_cq, _) = old.sim_handle().views();
    let (_, new_cq, _) = new.sim_handle().views();
    for pos in 5..9u32 {
        let cqe = sys::io_uring_cqe {
            user_data: u64::from(pos),
            res: pos as i32,
            ..Default::default()
        };
        // SAFETY: nothing reads the old ring; positions 5..9 are 4 slots of 8.
        unsafe { old_cq.write_cqe(pos, cqe, [u64::from(pos), 7]) };
    }
    // SAFETY: as in `copies_sqes`; the 4 positions fit both rings.
    unsafe { new_cq.copy_cqes_from(&old_cq, 5, 9) };
    for pos in 5..9u32 {
        // SAFETY: written just above, read by nobody else.
        let (cqe, extra) = unsafe { new_cq.slots().read_cqe(pos) };
        assert_eq!((cqe.user_data, cqe.res), (u64::from(pos), pos as i32));
        assert_eq!(extra, if wide { [u64::from(pos), 7] } else { [0, 0] });
    }
}

#[test]
fn cqes_are_copied_whole_to_the_same_positions() {
    copies_cqes(false);
    copies_cqes(true);
}

/// The array offsets of the two kernel layouts, against what Linux 6.18 reported at setup
/// (x86-64): 8 SQ and 8 CQ entries put the array at 192, or with SQE128 and CQE32 at 384; a
/// 7.x kernel puts the latter at 320.
#[test]
fn sq_array_layouts() {
    let mut p = sys::io_uring_params {
        sq_entries: 8,
        cq_entries: 8,
        ..Default::default()
    };
    p.cq_off.cqes = 64;
    p.sq_off.array = 192;
    if cfg!(target_arch = "x86_64") {
        assert_eq!(ArrayLayout::detect(&p), Some(ArrayLayout::Doubled));
        assert_eq!(ArrayLayout::Linear.sq_array_offset(&p), Some(192));
    }
    p.flags = sys::IORING_SETUP_CQE32 | sys::IORING_SETUP_SQE128;
    p.sq_off.array = 384;
    if cfg!(target_arch = "x86_64") {
        assert_eq!(ArrayLayout::detect(&p), Some(ArrayLayout::Doubled));
        assert_eq!(ArrayLayout::Linear.sq_array_offset(&p), Some(320));
        p.sq_off.array = 320;
        assert_eq!(ArrayLayout::detect(&p), Some(ArrayLayout::Linear));
        p.sq_off.array = 512;
        assert_eq!(ArrayLayout::detect(&p), None, "an unknown layout");
    }
    p.flags |= sys::IORING_SETUP_NO_SQARRAY;
    assert_eq!(ArrayLayout::detect(&p), None, "no array");
}
