//! Real-kernel tests of the registrations that reach past one ring's setup: resizing a
//! `Uring` with ops in flight, and a registered-buffer pool cloned into other rings.

mod common;

use common::{pipe, skip, temp_file};
use std::io::Write as _;
use uring_ops::core::{Builder, Resize};
use uring_ops::ops::{Nop, Read, ReadFixed};
use uring_ops::{FixedBufs, Uring};

const DATA: &[u8] = b"cloned into the other ring";

/// Ops in flight, completions unread and completions overflowed all come through a resize:
/// 8 reads waiting on pipes and 24 NOPs, through a ring whose CQ held 8.
#[test]
fn a_uring_resized_with_ops_in_flight_completes_them_all() {
    let b = Builder::new(4)
        .cq_entries(8)
        .single_issuer()
        .defer_taskrun();
    let mut ring = match Uring::with_builder(&b) {
        Ok(r) => r,
        Err(e) => return skip(format_args!("DEFER_TASKRUN rings: {e}")),
    };
    let pipes: Vec<_> = (0..8).map(|_| pipe()).collect();
    // Submitted one by one: the SQ holds 4.
    let reads: Vec<_> = pipes
        .iter()
        .map(|(rx, _)| {
            let t = ring.push(Read::new(rx, vec![0u8; 16], u64::MAX)).unwrap();
            ring.submit().unwrap();
            t
        })
        .collect();
    let nops: Vec<_> = (0..24)
        .map(|_| {
            let t = ring.push(Nop::new()).unwrap();
            ring.submit().unwrap();
            t
        })
        .collect();
    assert_eq!(ring.in_flight(), 32);
    match ring.resize(&Resize::new(32).cq_entries(64)) {
        Ok(info) => assert_eq!((info.sq_entries, info.cq_entries), (32, 64)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            return skip(format_args!(
                "no IORING_REGISTER_RESIZE_RINGS (Linux 6.13): {e}"
            ));
        }
        Err(e) => panic!("resize: {e}"),
    }
    for (i, (_, tx)) in pipes.iter().enumerate() {
        std::fs::File::from(tx.try_clone().unwrap())
            .write_all(format!("pipe {i}").as_bytes())
            .unwrap();
    }
    for t in nops {
        ring.wait(t).unwrap().unwrap();
    }
    for (i, t) in reads.into_iter().enumerate() {
        let (n, buf) = ring.wait(t).unwrap();
        let want = format!("pipe {i}");
        assert_eq!(n.unwrap(), want.len());
        assert_eq!(&buf[..want.len()], want.as_bytes());
    }
    assert_eq!(ring.in_flight(), 0);
    // The new SQ takes 32 at once.
    let nops: Vec<_> = (0..32).map(|_| ring.push(Nop::new()).unwrap()).collect();
    for t in nops {
        ring.wait(t).unwrap().unwrap();
    }
}

#[test]
fn a_cloned_pool_serves_its_rings_and_no_other_and_unregisters_from_all() {
    let mut a = Uring::new(4).unwrap();
    let mut b = Uring::new(4).unwrap();
    let mut c = Uring::new(4).unwrap();
    let pool = FixedBufs::register(&a, 2, 4096).unwrap();
    match pool.clone_into(&b) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            return skip(format_args!(
                "no IORING_REGISTER_CLONE_BUFFERS (Linux 6.12): {e}"
            ));
        }
        Err(e) => panic!("clone: {e}"),
    }
    assert!(pool.is_registered_with(&a) && pool.is_registered_with(&b));
    assert!(!pool.is_registered_with(&c));
    let f = temp_file("fixed-clone", DATA);
    let read = |ring: &mut Uring, buf| {
        let t = ring.push(ReadFixed::new(&f.fd, buf, 0)).unwrap();
        ring.wait(t).unwrap()
    };
    let (n, buf) = read(&mut b, pool.get().unwrap());
    assert_eq!(n.unwrap(), DATA.len());
    assert_eq!(&buf[..], DATA);
    let (n, buf) = read(&mut a, buf);
    assert_eq!(
        n.unwrap(),
        DATA.len(),
        "still valid on the ring it was registered with"
    );
    // On no other ring: the kernel finds the range in none of its buffers.
    let (n, mut buf) = read(&mut c, buf);
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::EFAULT));
    buf.clear();
    // A ring with a table of its own takes no clone, and is not recorded.
    let other = FixedBufs::register(&c, 1, 64).unwrap();
    let e = pool.clone_into(&c).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
    assert!(!pool.is_registered_with(&c));
    drop(other);

    // The ring it was registered with goes first: the buffer still serves the clone.
    drop(a);
    let (n, buf) = read(&mut b, buf);
    assert_eq!(n.unwrap(), DATA.len());
    // The pool, once gone, has unregistered from every ring: `b` takes a new table.
    drop((pool, buf));
    let again = FixedBufs::register(&b, 1, 64);
    assert!(
        again.is_ok(),
        "the clone's table was not unregistered: {again:?}"
    );
}
