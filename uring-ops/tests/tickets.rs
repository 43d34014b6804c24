//! A ticket only redeems at the ring that issued it. `Uring` redeems without a bounds check on
//! the ticket's slot (it relies on the ring id the ticket carries), so a ticket naming a slot
//! far past the end of another ring's slab, or a `Context`'s ticket, must be refused by that
//! id before the slab is reached.

mod common;

use common::tagged_nop;
use std::time::Duration;
use uring_ops::ops::Nop;
use uring_ops::{Context, Error, Ticket, Uring};

/// Pushes `n` NOPs (growing the slab past its first chunks), each completing with its number
/// where the kernel can inject a result, and keeps the last ticket.
fn last_of(ring: &mut Uring, n: u32) -> Ticket<Nop> {
    let mut last = None;
    for i in 0..n {
        if let Some(t) = last.replace(ring.push(tagged_nop(i).0).unwrap()) {
            ring.detach(t);
        }
        ring.submit().unwrap();
    }
    last.unwrap()
}

#[test]
fn a_ticket_from_another_uring_is_refused_everywhere() {
    let mut big = Uring::new(128).unwrap();
    let mut fresh = Uring::new(8).unwrap();
    // Slot index 299: four chunks into `big`'s slab, past the end of `fresh`'s (empty) one.
    let t = last_of(&mut big, 300);
    assert!(
        t.user_data() >> 8 & 0xff_ffff >= 256,
        "{:#x}",
        t.user_data()
    );
    assert!(!fresh.is_done(&t));
    let t = match fresh.try_take(t) {
        Err(Error::UnknownTicket) => last_of(&mut big, 1),
        other => panic!("{other:?}"),
    };
    assert!(matches!(fresh.wait(t), Err(Error::UnknownTicket)));
    let t = last_of(&mut big, 1);
    assert!(matches!(
        fresh.wait_timeout(t, Duration::from_millis(10)),
        Err(Error::UnknownTicket)
    ));
    let t = last_of(&mut big, 1);
    assert!(!fresh.detach(t));
    // Also once `fresh` has slots of its own, at the same index: a key of the same shape.
    let own = last_of(&mut fresh, 300);
    let t = last_of(&mut big, 1);
    assert!(matches!(fresh.try_take(t), Err(Error::UnknownTicket)));
    assert_eq!(fresh.wait(own).unwrap().unwrap(), tagged_nop(299).1);
    // The issuing ring still redeems its own.
    let t = last_of(&mut big, 1);
    assert_eq!(big.wait(t).unwrap().unwrap(), 0);
}

#[test]
fn tickets_do_not_cross_between_uring_and_context() {
    let mut ring = Uring::new(128).unwrap();
    let ctx = Context::new(128).unwrap();
    let mut ctx_last = None;
    for _ in 0..200 {
        if let Some(t) = ctx_last.replace(ctx.push(tagged_nop(5).0).unwrap()) {
            ctx.detach(t);
        }
        ctx.submit().unwrap();
    }
    let t = ctx_last.unwrap();
    assert!(!ring.is_done(&t));
    let t = match ring.try_take(t) {
        Err(Error::UnknownTicket) => ctx.push(Nop::new()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(matches!(ring.wait(t), Err(Error::UnknownTicket)));
    let ring_t = last_of(&mut ring, 200);
    assert!(!ctx.is_done(&ring_t));
    assert!(matches!(ctx.wait(ring_t), Err(Error::UnknownTicket)));
    let (nop, want) = tagged_nop(7);
    let t = ctx.push(nop).unwrap();
    assert_eq!(ctx.wait(t).unwrap().unwrap(), want);
}

#[test]
fn a_ticket_outlives_its_ring_without_redeeming_elsewhere() {
    let t = {
        let mut old = Uring::new(64).unwrap();
        last_of(&mut old, 100)
    };
    let mut new = Uring::new(64).unwrap();
    let _own = last_of(&mut new, 100);
    assert!(matches!(new.try_take(t), Err(Error::UnknownTicket)));
}
