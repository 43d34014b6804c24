//! The completion records of tagged submissions, on `Uring` and on `Context`: what they
//! report, in which order, redeeming from them (type-checked), multishot items, chains,
//! detached submissions, and the errors of misuse.

mod common;

use common::pipe;
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd;
use std::time::Duration;
use uring_ops::ops::{AsyncCancel, Nop, PollAdd, PollEvents, Read, ReadFixed, Timeout};
use uring_ops::{Chain, Completion, Context, Error, FixedBufs, Linked, Multishot, Outcome, Uring};

/// Every record queued so far on `ring`, waiting for at least `n` (at most 5 s).
fn records(ring: &mut Uring, n: usize) -> Vec<Completion> {
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while got.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(
            !left.is_zero(),
            "{} of {n} records in 5 s: {got:?}",
            got.len()
        );
        ring.wait_completions_into(&mut got, left).unwrap();
    }
    got
}

#[test]
fn tagged_submissions_report_once_in_completion_order_and_untagged_ones_not_at_all() {
    let mut ring = Uring::new(16).unwrap();
    let mut tickets = Vec::new();
    for i in 0..8u64 {
        tickets.push(ring.push_tagged(Nop::new(), 100 + i).unwrap());
        // Untagged submissions in between: no record.
        let untagged = ring.push(Nop::new()).unwrap();
        ring.detach(untagged);
    }
    let got = records(&mut ring, 8);
    // NOPs complete in submission order.
    let tags: Vec<u64> = got.iter().map(|c| c.tag()).collect();
    assert_eq!(tags, (100..108).collect::<Vec<_>>());
    for (c, t) in got.iter().zip(&tickets) {
        assert_eq!(c.key(), t.user_data());
        assert_eq!((c.res(), c.more()), (0, false));
        assert_eq!(c.result().unwrap(), 0);
    }
    // Nothing else was recorded, and nothing is left in flight.
    assert_eq!(ring.completions().count(), 0);
    assert_eq!(ring.in_flight(), 0);
    // Each record redeems its own op once; its ticket then redeems nothing.
    for (i, c) in got.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(ring.take::<Nop>(c).unwrap().unwrap(), 0);
            assert!(matches!(ring.take::<Nop>(c), Err(Error::UnknownTicket)));
        }
    }
    for (i, (c, t)) in got.iter().zip(tickets).enumerate() {
        if i % 2 == 0 {
            assert!(matches!(ring.try_take(t), Err(Error::UnknownTicket)));
        } else {
            // Redeemed by ticket first: the record then finds nothing.
            assert_eq!(ring.try_take(t).unwrap().done().unwrap().unwrap(), 0);
            assert!(matches!(ring.take::<Nop>(c), Err(Error::UnknownTicket)));
        }
    }
}

#[test]
fn a_record_redeems_only_as_its_own_type_and_only_on_its_ring() {
    let f = common::temp_file("completions-type", b"0123456789");
    let mut ring = Uring::new(8).unwrap();
    let t = ring
        .push_tagged(Read::new(&f.fd, Vec::with_capacity(4), 2), 7)
        .unwrap();
    let c = records(&mut ring, 1)[0];
    assert_eq!((c.tag(), c.res()), (7, 4));
    // Another type: refused, naming both, and nothing taken.
    match ring.take::<Nop>(&c) {
        Err(Error::WrongType { expected, found }) => {
            assert!(expected.contains("Nop"), "{expected}");
            assert!(found.contains("Read"), "{found}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ring.take::<Read<Box<[u8]>>>(&c),
        Err(Error::WrongType { .. })
    ));
    // Another ring, with an op of the same type in the same slot: not its record.
    let mut other = Uring::new(8).unwrap();
    let t2 = other
        .push_tagged(Read::new(&f.fd, Vec::with_capacity(4), 0), 7)
        .unwrap();
    let c2 = records(&mut other, 1)[0];
    assert_eq!(
        c2.key(),
        c.key(),
        "the same slot and generation on both rings"
    );
    assert!(matches!(
        other.take::<Read<Vec<u8>>>(&c),
        Err(Error::UnknownTicket)
    ));
    let (n, buf) = other.take::<Read<Vec<u8>>>(&c2).unwrap();
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"0123"[..]));
    drop(t2);
    // The right type on the right ring.
    let (n, buf) = ring.take::<Read<Vec<u8>>>(&c).unwrap();
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"2345"[..]));
    drop(t);
    // (A record cannot be forged to name an untagged op: its fields are read-only.)
}

#[test]
fn a_detached_tagged_submission_reports_and_is_dropped_at_once() {
    let mut ring = Uring::new(8).unwrap();
    let pool = FixedBufs::register(&ring, 2, 64).unwrap();
    let f = common::temp_file("completions-detach", &[5u8; 64]);
    let t = ring
        .push_tagged(ReadFixed::new(&f.fd, pool.get().unwrap(), 0), 9)
        .unwrap();
    assert_eq!(pool.available(), 1);
    assert!(ring.detach(t));
    let c = records(&mut ring, 1)[0];
    assert_eq!((c.tag(), c.res(), c.more()), (9, 64, false));
    // Dropped when its record was queued: the buffer is back in the pool.
    assert_eq!(pool.available(), 2);
    assert!(matches!(
        ring.take::<ReadFixed>(&c),
        Err(Error::UnknownTicket)
    ));
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn a_tagged_chain_reports_once_for_its_last_link() {
    let mut ring = Uring::new(8).unwrap();
    // The middle link tells its result apart where NOP injects results (6.1's NOP refuses
    // the flag, and would fail the chain).
    let (middle, want) = common::tagged_nop(3);
    let chain = Chain::new(Nop::new()).then(middle).then(Nop::new());
    let t = ring.push_tagged(chain, 1).unwrap();
    let c = records(&mut ring, 1)[0];
    assert_eq!((c.tag(), c.key(), c.more()), (1, t.user_data(), false));
    assert_eq!(ring.completions().count(), 0, "one record for three links");
    let (a, b, c3) = ring.take::<Chain<(Nop, Nop, Nop)>>(&c).unwrap();
    assert!(matches!(a, Linked::Ran(Ok(0))));
    assert!(matches!(b, Linked::Ran(Ok(n)) if n == want));
    assert!(matches!(c3, Linked::Ran(Ok(0))));
    drop(t);
}

/// Multishot poll items through records: each item taken once, by record, in any order; an
/// item nobody takes comes back with the op's output.
#[test]
fn multishot_items_come_as_records_and_are_taken_once() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, PollAdd);
    require_kernel!(5, 13, "multishot poll (IORING_POLL_ADD_MULTI)");
    let (rx, tx) = pipe();
    let mut rx_file = std::fs::File::from(rx.as_fd().try_clone_to_owned().unwrap());
    let mut tx = std::fs::File::from(tx);
    let t = ring
        .push_tagged(PollAdd::new(&rx, PollEvents::IN).multishot(), 42)
        .unwrap();
    let mut items = Vec::new();
    for round in 0..3u8 {
        tx.write_all(&[round]).unwrap();
        let got = records(&mut ring, 1);
        for c in &got {
            assert_eq!(
                (c.tag(), c.key(), c.more()),
                (42, t.user_data(), true),
                "{c:?}"
            );
        }
        items.extend(got);
        let mut back = [0u8; 1];
        rx_file.read_exact(&mut back).unwrap();
    }
    assert!(items.len() >= 3, "{items:?}");
    // The op still runs: its output is not there yet.
    assert!(matches!(
        ring.take::<Multishot<PollAdd>>(&items[0]),
        Err(Error::NotFinished)
    ));
    // Taken in any order, each once.
    let last = *items.last().unwrap();
    let ev = ring.take_item::<PollAdd>(&last).unwrap().unwrap();
    assert!(ev.contains(PollEvents::IN), "{ev:?}");
    assert!(matches!(
        ring.take_item::<PollAdd>(&last),
        Err(Error::ItemTaken)
    ));
    assert!(matches!(
        ring.take_item::<uring_ops::ops::Accept>(&items[0]),
        Err(Error::WrongType { .. })
    ));
    ring.take_item::<PollAdd>(&items[0]).unwrap().unwrap();
    // Cancel it: the last record ends it, and the untaken items come with its output.
    let cancel = ring.push(AsyncCancel::ticket(&t)).unwrap();
    ring.detach(cancel);
    let mut fin = None;
    while fin.is_none() {
        for c in records(&mut ring, 1) {
            if !c.more() {
                fin = Some(c);
            } else {
                items.push(c);
            }
        }
    }
    let fin = fin.unwrap();
    assert_eq!((fin.tag(), fin.res()), (42, -libc::ECANCELED));
    assert!(matches!(
        ring.take_item::<PollAdd>(&fin),
        Err(Error::NotAnItem)
    ));
    let out = ring.take::<Multishot<PollAdd>>(&fin).unwrap();
    assert_eq!(
        out.items.len(),
        items.len() - 2,
        "the untaken ones, each once"
    );
    assert_eq!(out.last.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    // Its items went with the output.
    assert!(matches!(
        ring.take_item::<PollAdd>(&items[1]),
        Err(Error::UnknownTicket)
    ));
    drop(t);
}

/// A timed wait for records gives up with nothing; a timeout's record comes when it fires.
#[test]
fn waiting_for_records_times_out_and_untagged_completions_do_not_end_it() {
    let mut ring = Uring::new(8).unwrap();
    let nop = ring.push(Nop::new()).unwrap();
    // A tagged op that will not finish during the test, so that a record could still come.
    let long = ring
        .push_tagged(Timeout::new(Duration::from_secs(60)), 9)
        .unwrap();
    let start = std::time::Instant::now();
    assert_eq!(ring.wait_completions(Duration::from_millis(30)).unwrap(), 0);
    assert!(start.elapsed() >= Duration::from_millis(30));
    // The untagged NOP completed meanwhile, and was routed to its op.
    assert!(ring.is_done(&nop));
    let t = ring
        .push_tagged(Timeout::new(Duration::from_millis(10)), 3)
        .unwrap();
    assert_eq!(ring.wait_completions(Duration::MAX).unwrap(), 1);
    let c = ring.next_completion().unwrap();
    assert_eq!((c.tag(), c.res()), (3, -libc::ETIME));
    assert!(ring.take::<Timeout>(&c).unwrap().is_ok());
    assert!(ring.next_completion().is_none());
    drop((t, ring.wait(nop)));
    assert_eq!(
        ring.cancel_all(Duration::from_secs(5)),
        0,
        "nothing left in flight"
    );
    let c = ring
        .next_completion()
        .expect("the cancelled timeout's record");
    assert_eq!((c.tag(), c.res()), (9, -libc::ECANCELED));
    assert!(ring.take::<Timeout>(&c).is_ok());
    drop(long);
}

#[test]
fn timed_redemption_returns_a_flat_outcome() {
    let mut ring = Uring::new(8).unwrap();
    let (rx, tx) = pipe();
    let t = ring.push(Read::new(&rx, Vec::with_capacity(2), 0)).unwrap();
    let t = match ring.wait_timeout(t, Duration::from_millis(10)).unwrap() {
        Outcome::Pending(t) => t,
        Outcome::Done(out) => panic!("done before its pipe was written: {out:?}"),
    };
    let t = ring.try_take(t).unwrap().pending().expect("not finished");
    std::fs::File::from(tx).write_all(b"ok").unwrap();
    let (n, buf) = ring
        .wait_timeout(t, Duration::from_secs(5))
        .unwrap()
        .done()
        .unwrap();
    assert_eq!((n.unwrap(), &buf[..]), (2, &b"ok"[..]));
}

// --- Context ------------------------------------------------------------------------------

#[test]
fn context_records_redeem_under_one_lock_or_one_by_one() {
    let ctx = Context::new(32).unwrap();
    let mut batch = ctx.batch().unwrap();
    for i in 0..16u64 {
        drop(
            batch
                .push_tagged(common::tagged_nop(i as u32).0, i)
                .unwrap(),
        );
    }
    assert_eq!(batch.queued(), 16);
    assert_eq!(batch.submit().unwrap(), 16);
    drop(batch);
    let mut seen = Vec::new();
    while seen.len() < 8 {
        let mut cs = ctx.wait_for_completions(Duration::from_secs(5)).unwrap();
        assert!(cs.len() > 0, "timed out");
        // Redeemed under the iterator's one lock.
        while let Some(c) = cs.next() {
            let n = cs.redeem::<Nop>(&c).unwrap().unwrap();
            assert_eq!(n, common::tagged_nop(c.tag() as u32).1);
            seen.push(c.tag());
            if seen.len() == 8 {
                break;
            }
        }
    }
    // The rest one by one.
    let mut rest = Vec::new();
    while seen.len() + rest.len() < 16 {
        ctx.wait_completions_into(&mut rest, Duration::from_secs(5))
            .unwrap();
    }
    for c in &rest {
        assert_eq!(
            ctx.take::<Nop>(c).unwrap().unwrap(),
            common::tagged_nop(c.tag() as u32).1
        );
        assert!(matches!(ctx.take::<Nop>(c), Err(Error::UnknownTicket)));
    }
    seen.extend(rest.iter().map(|c| c.tag()));
    assert_eq!(seen, (0..16).collect::<Vec<_>>());
    assert_eq!(ctx.in_flight(), 0);
}

#[test]
fn context_multishot_items_by_record_and_by_ticket() {
    let ctx = Context::new(8).unwrap();
    require_op!(ctx, PollAdd);
    require_kernel!(5, 13, "multishot poll (IORING_POLL_ADD_MULTI)");
    let (rx, tx) = pipe();
    let mut rx_file = std::fs::File::from(rx.as_fd().try_clone_to_owned().unwrap());
    let mut tx = std::fs::File::from(tx);
    let t = ctx
        .push_tagged(PollAdd::new(&rx, PollEvents::IN).multishot(), 5)
        .unwrap();
    tx.write_all(b"a").unwrap();
    let got = ctx
        .wait_completions_timeout(Duration::from_secs(5))
        .unwrap();
    assert!(!got.is_empty(), "no item in 5 s");
    let c = got[0];
    assert!(c.more());
    assert!(ctx
        .take_item::<PollAdd>(&c)
        .unwrap()
        .unwrap()
        .contains(PollEvents::IN));
    rx_file.read_exact(&mut [0u8; 1]).unwrap();
    // By ticket: drain and wait_items, as on a Uring.
    tx.write_all(b"b").unwrap();
    let items = ctx.wait_items(&t, Duration::from_secs(5)).unwrap();
    assert!(!items.is_empty());
    // The records of items drained by ticket find them gone.
    let recs = ctx
        .wait_completions_timeout(Duration::from_secs(5))
        .unwrap();
    for c in &recs {
        assert!(matches!(ctx.take_item::<PollAdd>(c), Err(Error::ItemTaken)));
    }
    assert!(ctx.drain(&t).unwrap().is_empty());
    rx_file.read_exact(&mut [0u8; 1]).unwrap();
    let cancel = ctx.push(AsyncCancel::ticket(&t)).unwrap();
    ctx.detach(cancel);
    let out = ctx.wait(t).unwrap();
    assert_eq!(out.last.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
}

#[test]
fn context_registers_and_runs_fixed_buffers_like_a_uring() {
    let ctx = Context::new(8).unwrap();
    let pool = FixedBufs::register(&ctx, 4, 4096).unwrap();
    let f = common::temp_file("completions-ctx-fixed", &[9u8; 4096]);
    let t = ctx
        .push(ReadFixed::new(&f.fd, pool.get().unwrap(), 0))
        .unwrap();
    let (n, buf) = ctx.wait(t).unwrap();
    assert_eq!(n.unwrap(), 4096);
    assert!(buf.iter().all(|&b| b == 9));
    drop(buf);
    assert_eq!(pool.available(), 4);
    // Registration through the context: files, then a fixed-file read.
    ctx.register().register_files(&[f.fd.as_fd()]).unwrap();
    let t = ctx
        .push(Read::new(uring_ops::Target::fixed(0), vec![0u8; 8], 0))
        .unwrap();
    let (n, buf) = ctx.wait(t).unwrap();
    assert_eq!((n.unwrap(), &buf[..]), (8, &[9u8; 8][..]));
    // Information and registration the same way as on a Uring.
    let ring = Uring::new(8).unwrap();
    ring.register().register_files(&[f.fd.as_fd()]).unwrap();
    assert_eq!(ctx.info().sq_entries, ring.info().sq_entries);
    assert_eq!(ctx.info().features, ring.info().features);
}

#[test]
fn holds_of_two_contexts_may_end_in_any_order() {
    let (c1, c2) = (Context::new(8).unwrap(), Context::new(8).unwrap());
    // c2's records held, then a batch of c1; the records end first.
    let records = c2.completions();
    let mut batch = c1.batch().unwrap();
    drop(records);
    // c1 is still held by the batch: a push on it from this thread is refused (it would
    // deadlock), while c2 is free again.
    assert!(matches!(
        c1.push(Nop::new()).map_err(|e| e.error),
        Err(Error::Reentrant)
    ));
    let t = c2.push(Nop::new()).unwrap();
    assert_eq!(c2.wait(t).unwrap().unwrap(), 0);
    let t = batch.push(Nop::new()).unwrap();
    drop(batch);
    assert_eq!(c1.wait(t).unwrap().unwrap(), 0);
    // The other order: a batch of c1, then c2's records; the batch ends first.
    let batch = c1.batch().unwrap();
    let records = c2.completions();
    drop(batch);
    assert!(c1.submit().is_ok(), "c1 is not held any more");
    assert_eq!(c1.in_flight(), 0);
    drop(records);
    assert!(c2.submit().is_ok());
}

#[test]
fn a_uring_wait_for_records_ends_when_nothing_is_left_in_flight() {
    let mut ring = Uring::new(4).unwrap();
    // Nothing at all in flight.
    assert_eq!(ring.wait_completions(Duration::MAX).unwrap(), 0);
    // Only an untagged op, which reports no record: the wait routes its completion, then
    // ends, instead of sleeping for a record that cannot come.
    let t = ring.push(Nop::new()).unwrap();
    ring.detach(t);
    assert_eq!(ring.wait_completions(Duration::MAX).unwrap(), 0);
    assert_eq!(ring.in_flight(), 0);
}
