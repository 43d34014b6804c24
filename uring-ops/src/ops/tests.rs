//! An op the kernel lacks is refused, by name, and given back.
//!
//! The running kernel supports every op here, so the ring is built on a real kernel ring with
//! a supported-opcode set that leaves some out, as a probe of an older kernel would: the check
//! on push is the real one.

use super::{Fallocate, Nop, PollAdd, PollEvents, ReadFixed};
use crate::op::OpSet;
use crate::{Error, FixedBufs, Uring};

fn ring_without(missing: &[u8]) -> Uring {
    let core = uring_core::Builder::new(4).build().unwrap();
    let probe = core.register().probe().unwrap();
    let mut supported = OpSet::empty();
    for op in 0..=probe.last_op() {
        if probe.supports(op) && !missing.contains(&op) {
            supported.insert(op);
        }
    }
    Uring::from_parts(core, supported, OpSet::all())
}

#[test]
fn an_unsupported_op_is_refused_by_name_and_given_back() {
    use crate::Op;
    let mut ring = ring_without(&[Fallocate::OPCODE, PollAdd::OPCODE, ReadFixed::OPCODE]);
    assert!(!ring.supports(Fallocate::OPCODE));
    assert!(ring.supports(Nop::OPCODE));
    let f = crate::Fd::new(std::fs::File::open("/dev/null").unwrap());

    let err = ring.push(Fallocate::new(&f, 0, 1)).unwrap_err();
    assert!(
        matches!(
            err.error,
            Error::Unsupported {
                op: "FALLOCATE",
                name: "Fallocate"
            }
        ),
        "{:?}",
        err.error
    );
    assert_eq!(
        err.error.to_string(),
        "the running kernel does not support IORING_OP_FALLOCATE (Fallocate)"
    );
    assert_eq!(err.error.raw_os_error(), Some(libc::EOPNOTSUPP));

    // The multishot form goes through the same check.
    let err = ring
        .push(PollAdd::new(&f, PollEvents::IN).multishot())
        .unwrap_err();
    assert!(matches!(
        err.error,
        Error::Unsupported {
            op: "POLL_ADD",
            name: "PollAdd"
        }
    ));

    // A refused fixed read hands its registered buffer back.
    let pool = FixedBufs::register(&ring, 1, 16).unwrap();
    let mut buf = pool.get().unwrap();
    buf.extend_from_slice(b"kept");
    let err = ring.push(ReadFixed::new(&f, buf, 0)).unwrap_err();
    assert!(matches!(
        err.error,
        Error::Unsupported {
            op: "READ_FIXED",
            ..
        }
    ));
    assert_eq!(&err.op.into_buf()[..], b"kept");

    // Nothing reached the ring; supported ops still work.
    assert_eq!(ring.in_flight(), 0);
    let t = ring.push(Nop::new()).unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap(), 0);
}

/// A submission of more SQEs than their numbers have room for in the user data (256) is
/// refused at push, whole and handed back, before anything is reserved: its completions would
/// otherwise name the next slot. (Chains refuse this themselves; this is the ring's own guard,
/// for any entry.)
#[test]
fn a_submission_of_more_than_256_sqes_is_refused() {
    use crate::op::{Entry, OpCheck, Submit};
    use uring_core::Sqe;

    struct Many(u32);
    impl crate::op::sealed::Sealed for Many {}
    // SAFETY: prepares NOPs naming no memory; finishes after one completion per SQE.
    unsafe impl Entry for Many {
        type Output = ();
        const SQE_POINTS_INTO_SELF: bool = false;
        fn sqe_count(&self) -> u32 {
            self.0
        }
        fn check(&self, _ops: &OpCheck) -> crate::Result<()> {
            Ok(())
        }
        fn prepare(&mut self, _i: u32, sqe: &mut Sqe) {
            sqe.set_opcode(uring_core::sys::IORING_OP_NOP as u8);
        }
        fn on_cqe(&mut self, _sub: u32, _res: i32, _flags: u32) -> bool {
            self.0 -= 1;
            self.0 == 0
        }
        fn finish(self) {}
    }
    impl Submit for Many {
        type Output = ();
        type Entry = Many;
        fn into_entry(self) -> Many {
            self
        }
        fn from_entry(e: Many) -> Many {
            e
        }
    }

    let mut ring = Uring::new(512).unwrap();
    let err = ring.push(Many(257)).unwrap_err();
    assert!(
        matches!(
            err.error,
            Error::TooManySqes {
                sqes: 257,
                max: 256
            }
        ),
        "{:?}",
        err.error
    );
    assert_eq!((err.op.0, ring.in_flight()), (257, 0));
    assert_eq!(ring.submit().unwrap(), 0, "nothing was queued");
    let t = ring.push(Many(256)).map_err(|e| e.error).unwrap();
    ring.wait(t).unwrap();
    assert_eq!(ring.in_flight(), 0);
}
