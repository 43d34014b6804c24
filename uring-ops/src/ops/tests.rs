//! An op the kernel lacks is refused, by name, and given back.
//!
//! The running kernel supports every op here, so the ring is built on a real kernel ring with
//! a supported-opcode set that leaves some out, as a probe of an older kernel would: the check
//! on push is the real one.

use super::{Fallocate, Nop, PollAdd, PollEvents, ReadFixed};
use crate::op::OpSet;
use crate::{Error, FixedBufs, Uring};
use std::os::fd::AsFd;

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
    let f = std::fs::File::open("/dev/null").unwrap();

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
        .push(PollAdd::new(f.as_fd(), PollEvents::IN).multishot())
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
