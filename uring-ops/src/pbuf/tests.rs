//! The pool's bookkeeping, driven by hand-made completions (no kernel).

use super::*;

const BUF: u32 = sys::IORING_CQE_F_BUFFER;
const MORE: u32 = sys::IORING_CQE_F_BUF_MORE;

fn flags(bid: u16) -> u32 {
    BUF | (u32::from(bid) << sys::IORING_CQE_BUFFER_SHIFT)
}

/// An unregistered ring-mode pool with every buffer published, each filled with its id.
fn ring(count: u32, size: u32, inc: bool) -> Arc<Pool> {
    let entries = count.next_power_of_two();
    let mode = Mode::Ring {
        mem: ManuallyDrop::new(BufRingMem::new(entries).unwrap()),
        bid_at: vec![0; entries as usize],
        inc,
    };
    let bgid = alloc_group_id(&[]).unwrap();
    let pool = Pool::new(Pool::layout(count, size).unwrap(), count, size, mode, bgid).unwrap();
    {
        let mut st = pool.lock();
        for bid in 0..count as u16 {
            // SAFETY: no kernel: the test is the only user of the memory.
            unsafe { std::ptr::write_bytes(pool.buf_ptr(bid), bid as u8, size as usize) };
            pool.publish(&mut st, bid);
        }
    }
    Arc::new(pool)
}

fn held(p: &Pool) -> Vec<u16> {
    let st = p.lock();
    (0..p.count)
        .filter(|&b| st.bufs[usize::from(b)].kernel)
        .collect()
}

#[test]
fn one_buffer_per_completion_and_back_when_dropped() {
    let p = ring(4, 8, false);
    let b = p.take(5, flags(2), false).unwrap().pop().unwrap();
    assert_eq!((b.bid(), &b[..]), (Some(2), &[2u8; 5][..]));
    assert_eq!(held(&p), [0, 1, 3]);
    // The same buffer reported again while the user has it: refused, nothing handed out.
    let e = p.take(5, flags(2), false).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("buffer 2"), "{e}");
    // An id past the pool, or an error result: nothing changes.
    assert!(p.take(1, flags(9), false).is_err());
    assert_eq!(
        p.take(-libc::ENOBUFS, flags(0), false)
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOBUFS)
    );
    assert_eq!(held(&p), [0, 1, 3]);
    drop(b);
    assert_eq!(held(&p), [0, 1, 2, 3]);
    assert_eq!(
        p.lock().bufs[2].pos,
        4,
        "published again after the first four"
    );
    // End of stream: an empty buffer, consumed and given back.
    let e = p.take(0, flags(1), false).unwrap().pop().unwrap();
    assert!(e.is_empty() && e.bid() == Some(1));
    drop(e);
    // No buffer named.
    assert!(p.take(0, 0, false).unwrap().is_empty());
    // More bytes than a buffer holds (MSG_TRUNC): cut to the buffer.
    assert_eq!(p.take(100, flags(0), false).unwrap()[0].len(), 8);
}

#[test]
fn bundles_follow_the_publication_order() {
    let p = ring(4, 8, false);
    let v = p.take(20, flags(0), true).unwrap();
    let got: Vec<_> = v.iter().map(|b| (b.bid().unwrap(), b.len())).collect();
    assert_eq!(got, [(0, 8), (1, 8), (2, 4)]);
    assert_eq!(held(&p), [3]);
    // Buffer 1 returns first: published at position 4, after buffer 3.
    let mut v = v;
    drop(v.remove(1));
    let w = p.take(9, flags(3), true).unwrap();
    let got: Vec<_> = w.iter().map(|b| (b.bid().unwrap(), b.len())).collect();
    assert_eq!(got, [(3, 8), (1, 1)]);
    assert_eq!(&w[1][..], &[1]);
    // A zero-byte bundle consumes nothing.
    drop(v);
    let z = p.take(0, flags(0), true).unwrap();
    assert!(z.iter().all(|b| b.bid().is_none()));
    assert_eq!(held(&p), [0, 2]);
    // A bundle running into a buffer the user has: refused whole.
    assert!(
        p.take(16, flags(2), true).is_err(),
        "2 is followed by 3, which is out"
    );
    assert_eq!(held(&p), [0, 2]);
    drop(w);
}

#[test]
fn incremental_pieces_and_when_a_buffer_returns() {
    let p = ring(2, 10, true);
    let a = p.take(3, flags(0) | MORE, false).unwrap().pop().unwrap();
    let b = p.take(4, flags(0) | MORE, false).unwrap().pop().unwrap();
    assert_eq!((a.offset(), a.len(), b.offset(), b.len()), (0, 3, 3, 4));
    // A zero-byte completion leaves the buffer with the kernel (whatever the flags say).
    let z = p.take(0, flags(0), false).unwrap().pop().unwrap();
    assert!(z.is_empty());
    drop(z);
    assert_eq!(held(&p), [0, 1]);
    let c = p.take(3, flags(0), false).unwrap().pop().unwrap();
    assert_eq!((c.offset(), c.len()), (7, 3));
    assert_eq!(held(&p), [1], "used up, and the kernel let go");
    drop(a);
    drop(c);
    assert_eq!(held(&p), [1], "b still holds a piece");
    drop(b);
    assert_eq!(held(&p), [0, 1]);
    assert_eq!(p.lock().bufs[0].off, 0);
    // More bytes than the buffer has left, in a single-buffer receive: refused.
    let d = p.take(11, flags(0) | MORE, false).unwrap_err();
    assert_eq!(d.kind(), io::ErrorKind::InvalidData);
    // Used up but the kernel says it keeps it: it stays the kernel's (a buffer lost, never
    // one handed out twice).
    let e = p.take(10, flags(1) | MORE, false).unwrap().pop().unwrap();
    drop(e);
    assert_eq!(held(&p), [0, 1]);
    assert!(p.take(1, flags(1), false).is_err(), "nothing left of it");
}

#[test]
fn incremental_bundles_spill_into_the_next_buffer() {
    let p = ring(3, 10, true);
    let a = p.take(4, flags(0) | MORE, true).unwrap();
    let v = p.take(12, flags(0) | MORE, true).unwrap();
    let got: Vec<_> = v
        .iter()
        .map(|b| (b.bid().unwrap(), b.offset(), b.len()))
        .collect();
    assert_eq!(got, [(0, 4, 6), (1, 0, 6)]);
    drop(a);
    drop(v);
    assert_eq!(
        held(&p),
        [0, 1, 2],
        "0 back at the end, 1 still with the kernel"
    );
    assert_eq!(p.lock().bufs[0].pos, 3);
}

#[test]
fn group_ids_are_unique_and_given_back() {
    let a = ring(1, 1, false);
    let b = ring(1, 1, false);
    assert_ne!(a.bgid, b.bgid);
    let id = a.bgid;
    drop(a);
    let ids = group_ids();
    assert_eq!(
        ids[usize::from(id / 64)] & (1 << (id % 64)),
        0,
        "freed with the pool"
    );
}

#[test]
fn shapes_are_checked() {
    for (count, size) in [(0, 1), (32769, 1), (1, 0), (1, (1 << 30) + 1)] {
        let e = Pool::layout(count, size).unwrap_err();
        assert!(
            matches!(e, Error::ProvidedBufShape { count: c, size: s, .. } if c == count && s == size),
            "{e}"
        );
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
    assert!(Pool::layout(32768, 1).is_ok());
}
