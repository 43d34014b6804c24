use super::*;
use crate::error::Error;
use crate::op::{Entry, OpCheck, OpSet, Submit};
use crate::ops::{LinkTimeout, Nop, Read};
use crate::Target;
use std::time::Duration;
use uring_core::{Sqe, SqeFlags};

fn all() -> OpCheck {
    OpCheck::new(OpSet::all(), OpSet::all())
}

fn prepared<L: Links>(c: Chain<L>) -> Vec<Sqe> {
    let mut e = c.into_entry();
    (0..e.sqe_count())
        .map(|i| {
            let mut sqe = Sqe::zeroed();
            e.prepare(i, &mut sqe);
            sqe
        })
        .collect()
}

#[test]
fn link_flags() {
    let c = Chain::new(Nop::new())
        .then(Nop::new())
        .link_timeout(Duration::from_secs(1))
        .then_hard(Nop::new())
        .then(Nop::new());
    let sqes = prepared(c);
    let f: Vec<_> = sqes.iter().map(|s| s.flags()).collect();
    assert_eq!(
        f,
        [
            SqeFlags::IO_LINK,
            SqeFlags::IO_HARDLINK,
            SqeFlags::IO_HARDLINK,
            SqeFlags::IO_LINK,
            SqeFlags::empty()
        ]
    );
    assert_eq!(sqes[2].opcode(), LINK_TIMEOUT);
    let f: Vec<_> = prepared(Chain::from_vec(vec![Nop::new(); 3]).hard_links())
        .iter()
        .map(|s| s.flags())
        .collect();
    assert_eq!(
        f,
        [
            SqeFlags::IO_HARDLINK,
            SqeFlags::IO_HARDLINK,
            SqeFlags::empty()
        ]
    );
}

#[test]
fn refusals() {
    let ops = all();
    let check = |e: ChainEntry<_>| e.check(&ops).unwrap_err();
    assert!(matches!(
        check(Chain::new(LinkTimeout::new(Duration::ZERO)).into_entry()),
        Error::MisplacedLinkTimeout {
            link: 0,
            op: "LinkTimeout"
        }
    ));
    let c = Chain::new(Nop::new())
        .link_timeout(Duration::ZERO)
        .link_timeout(Duration::ZERO);
    let e = c.into_entry().check(&ops).unwrap_err();
    assert!(
        matches!(e, Error::MisplacedLinkTimeout { link: 2, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "link 2 (LinkTimeout) does not follow an op it could guard: a link timeout must \
         come right after the op it guards"
    );
    // An op's own argument check runs for links too.
    let c = Chain::new(Nop::new()).then(Nop::new().inject_result(i32::MIN));
    let e = c.into_entry().check(&ops).unwrap_err();
    assert!(matches!(e, Error::NotAnErrno { res: i32::MIN }), "{e:?}");
    let e = Chain::from_vec(Vec::<Nop>::new())
        .into_entry()
        .check(&ops)
        .unwrap_err();
    assert!(matches!(e, Error::EmptyChain), "{e:?}");
    let e = Chain::from_vec(vec![Nop::new(); 257])
        .into_entry()
        .check(&ops)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ChainTooLong {
                links: 257,
                max: 256
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    assert!(Chain::from_vec(vec![Nop::new(); 256])
        .into_entry()
        .check(&ops)
        .is_ok());
}

#[test]
fn names_the_first_refused_op() {
    let mut supported = OpSet::all();
    let mut allowed = OpSet::empty();
    allowed.insert(Nop::OPCODE);
    let c = Chain::new(Nop::new())
        .then(Read::new(Target::fixed(0), vec![0u8; 1], 0))
        .link_timeout(Duration::ZERO);
    match c.into_entry().check(&OpCheck::new(supported, allowed)) {
        Err(Error::NotAllowed { op: "READ" }) => {}
        other => panic!("{other:?}"),
    }
    supported = OpSet::empty();
    supported.insert(Nop::OPCODE);
    supported.insert(Read::<Vec<u8>>::OPCODE);
    let c = Chain::new(Nop::new())
        .then(Read::new(Target::fixed(0), vec![0u8; 1], 0))
        .link_timeout(Duration::ZERO);
    match c.into_entry().check(&OpCheck::new(supported, OpSet::all())) {
        Err(Error::Unsupported {
            op: "LINK_TIMEOUT",
            name: "LinkTimeout",
        }) => {}
        other => panic!("{other:?}"),
    }
}

fn run<L: Links>(c: Chain<L>, results: &[(u32, i32)]) -> L::Output {
    let mut e = c.into_entry();
    let n = results.len();
    for (k, &(sub, res)) in results.iter().enumerate() {
        assert_eq!(
            e.on_cqe(sub, res, 0).is_done(),
            k + 1 == n,
            "completion {k}"
        );
    }
    e.finish()
}

#[test]
fn finishes_on_the_last_completion_in_any_order() {
    let c = Chain::new(Nop::new()).then(Nop::new()).then(Nop::new());
    let mut e = c.into_entry();
    assert!(!e.on_cqe(2, 0, 0).is_done());
    assert!(
        !e.on_cqe(0, 0, sys::IORING_CQE_F_MORE).is_done(),
        "not final"
    );
    assert!(!e.on_cqe(0, 0, 0).is_done());
    assert!(e.on_cqe(1, 0, 0).is_done());
}

#[test]
fn cancellation_is_reported_as_such() {
    let ecanceled = -libc::ECANCELED;
    // A failed soft link cancels the rest.
    let (a, b, c) = run(
        Chain::new(Nop::new()).then(Nop::new()).then(Nop::new()),
        &[(0, -libc::EIO), (1, ecanceled), (2, ecanceled)],
    );
    assert!(matches!(a, Linked::Ran(Err(_))));
    assert!(b.is_cancelled() && c.is_cancelled());
    // A hard link's failure does not.
    let (a, b, c) = run(
        Chain::new(Nop::new())
            .then_hard(Nop::new())
            .then(Nop::new()),
        &[(0, -libc::EIO), (1, -libc::EBADF), (2, ecanceled)],
    );
    assert!(matches!(a, Linked::Ran(Err(_))));
    assert!(matches!(b, Linked::Ran(Err(_))));
    assert!(c.is_cancelled(), "b failed, soft-linked");
    // A link cancelled while running, after one that succeeded, ran.
    let (a, b, c) = run(
        Chain::new(Nop::new()).then(Nop::new()).then(Nop::new()),
        &[(0, 0), (1, ecanceled), (2, ecanceled)],
    );
    assert!(matches!(a, Linked::Ran(Ok(0))));
    assert!(matches!(b, Linked::Ran(Err(_))));
    assert!(c.is_cancelled());
    // The ambiguous case (see `Linked`): every link failed, one with an error of its own;
    // read as a chain refused at submission.
    let (_, b, _) = run(
        Chain::new(Nop::new())
            .then_hard(Nop::new())
            .then(Nop::new()),
        &[(0, -libc::EIO), (1, ecanceled), (2, ecanceled)],
    );
    assert!(b.is_cancelled());
    // A short read fails its link.
    let (r, n) = run(
        Chain::new(Read::new(Target::fixed(0), vec![0u8; 8], 0)).then(Nop::new()),
        &[(0, 3), (1, ecanceled)],
    );
    assert_eq!(r.ran().unwrap().0.unwrap(), 3);
    assert!(n.is_cancelled());
    // A fired link timeout: the guarded link ran (and failed), the timeout ran, the rest was
    // cancelled. A timeout whose guarded link never started is cancelled with it.
    let (r, t, n, t2) = run(
        Chain::new(Nop::new())
            .link_timeout(Duration::ZERO)
            .then(Nop::new())
            .link_timeout(Duration::ZERO),
        &[
            (1, -libc::ETIME),
            (0, ecanceled),
            (2, ecanceled),
            (3, ecanceled),
        ],
    );
    assert!(matches!(r, Linked::Ran(Err(_))));
    assert!(matches!(
        t,
        Linked::Ran(Ok(crate::ops::LinkTimeoutOutcome::Fired))
    ));
    assert!(n.is_cancelled() && t2.is_cancelled());
    // A disarmed timeout does not break the chain.
    let (r, t, n) = run(
        Chain::new(Nop::new())
            .link_timeout(Duration::ZERO)
            .then(Nop::new()),
        &[(0, 0), (1, ecanceled), (2, 0)],
    );
    assert!(matches!(r, Linked::Ran(Ok(0))));
    assert!(matches!(
        t,
        Linked::Ran(Ok(crate::ops::LinkTimeoutOutcome::Disarmed))
    ));
    assert!(matches!(n, Linked::Ran(Ok(0))));
    // Vec chains.
    let v = run(
        Chain::from_vec(vec![Nop::new(); 3]),
        &[(0, 0), (1, -libc::EBADF), (2, ecanceled)],
    );
    assert_eq!(
        v.iter().map(Linked::is_cancelled).collect::<Vec<_>>(),
        [false, false, true]
    );
}

#[test]
fn a_refused_chain_comes_back_whole() {
    let c = Chain::new(Read::new(Target::fixed(0), vec![1u8, 2], 0)).then(Nop::new());
    let c = Chain::from_entry(c.into_entry());
    let (r, _) = c.into_links();
    assert_eq!(r.into_buf(), [1, 2]);
}
