//! Real-kernel tests of registered buffers: the pool, fixed reads and writes, drop orders.

mod common;

use common::{pipe, temp_file};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use uring_ops::ops::{ReadFixed, WriteFixed};
use uring_ops::{Error, FixedBufs, IoBuf, Uring, MAX_FIXED_BUFS, MAX_FIXED_BUF_SIZE};

const DATA: &[u8] = b"registered buffers, pinned by the kernel";

#[test]
fn write_fixed_then_read_fixed_round_trip() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, ReadFixed);
    require_op!(ring, WriteFixed);
    let f = temp_file("fixed-rt", b"");
    let pool = FixedBufs::register(&ring, 4, 4096).unwrap();
    assert_eq!(
        (pool.count(), pool.buf_size(), pool.available()),
        (4, 4096, 4)
    );

    let mut w = pool.get().unwrap();
    assert_eq!((w.index(), w.len(), w.capacity()), (0, 0, 4096));
    w.extend_from_slice(DATA);
    let t = ring.push(WriteFixed::new(&f.fd, w, 3)).unwrap();
    let (n, w) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), DATA.len());
    assert_eq!(&w[..], DATA, "the buffer comes back with its data");

    let mut on_disk = vec![0xffu8; 3 + DATA.len()];
    f.file.read_exact_at(&mut on_disk, 0).unwrap();
    assert_eq!(&on_disk[..3], &[0, 0, 0]);
    assert_eq!(&on_disk[3..], DATA);

    let r = pool.get().unwrap();
    assert_eq!(r.index(), 1);
    let t = ring.push(ReadFixed::new(&f.fd, r, 3)).unwrap();
    let (n, r) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), DATA.len());
    assert_eq!(&r[..], DATA);
    assert_eq!(r.fixed_index(), Some(1));

    // A shorter read with `len`, at another offset.
    let t = ring.push(ReadFixed::new(&f.fd, r, 3 + 11).len(7)).unwrap();
    let (n, mut r) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), 7);
    r.clear();
    drop((w, r));
    assert_eq!(pool.available(), 4);
}

#[test]
fn the_pool_hands_each_buffer_out_once() {
    let ring = Uring::new(4).unwrap();
    let pool = FixedBufs::register(&ring, 2, 64).unwrap();
    let a = pool.get().unwrap();
    let b = pool.get().unwrap();
    assert_ne!(a.index(), b.index());
    assert!(pool.get().is_none(), "both are out");
    assert_eq!(pool.available(), 0);
    let index = a.index();
    drop(a);
    assert_eq!(pool.available(), 1);
    let c = pool.get().unwrap();
    assert_eq!(c.index(), index, "a dropped buffer returns to the pool");
    assert_ne!(c.stable_ptr(), b.stable_ptr());
}

#[test]
fn invalid_pool_sizes_are_refused() {
    let ring = Uring::new(4).unwrap();
    for (count, size) in [(0, 64), (1, 0), (uring_ops::MAX_FIXED_BUFS + 1, 64)] {
        let err = FixedBufs::register(&ring, count, size).unwrap_err();
        assert!(
            matches!(err, Error::FixedBufShape { count: c, size: s, .. } if (c, s) == (count, size)),
            "{count}x{size}: {err}"
        );
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}

#[test]
fn a_ring_takes_one_pool_at_a_time_and_dropping_it_unregisters() {
    let ring = Uring::new(4).unwrap();
    let pool = FixedBufs::register(&ring, 2, 64).unwrap();
    let err = FixedBufs::register(&ring, 2, 64).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
    // Pool dropped before the ring: unregistered, so a new one can be registered.
    drop(pool);
    let pool = FixedBufs::register(&ring, 2, 64).unwrap();
    // A buffer outliving its pool handle keeps the registration (and memory) alive.
    let mut buf = pool.get().unwrap();
    drop(pool);
    let err = FixedBufs::register(&ring, 2, 64).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
    buf.extend_from_slice(b"still mine");
    assert_eq!(&buf[..], b"still mine");
    drop(buf);
    FixedBufs::register(&ring, 2, 64).unwrap();
}

#[test]
fn ring_dropped_before_the_pool() {
    let mut ring = Uring::new(4).unwrap();
    require_op!(ring, WriteFixed);
    let f = temp_file("fixed-ring-first", b"");
    let pool = FixedBufs::register(&ring, 2, 128).unwrap();
    let mut buf = pool.get().unwrap();
    buf.extend_from_slice(DATA);
    let t = ring.push(WriteFixed::new(&f.fd, buf, 0)).unwrap();
    let (n, mut buf) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), DATA.len());
    drop(ring);
    // The memory is still ours, and still registered with the (now closed) ring's kernel
    // object, which the pool keeps alive until it unregisters.
    buf.as_full_slice_mut()[..4].copy_from_slice(b"ABCD");
    assert_eq!(&buf[..6], b"ABCDst");
    drop(pool);
    drop(buf);
}

#[test]
fn a_fixed_buffer_in_flight_keeps_the_pool_alive() {
    let mut ring = Uring::new(4).unwrap();
    require_op!(ring, ReadFixed);
    let (rx, tx) = pipe();
    let pool = FixedBufs::register(&ring, 1, 64).unwrap();
    let t = ring
        .push(ReadFixed::new(&rx, pool.get().unwrap(), u64::MAX))
        .unwrap();
    ring.submit().unwrap();
    // The only references left to the pool are inside the op the kernel is working on.
    drop(pool);
    std::fs::File::from(tx).write_all(DATA).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), DATA.len());
    assert_eq!(&buf[..], DATA);
}

#[test]
fn dropping_the_ring_with_a_fixed_read_in_flight_returns_the_buffer() {
    let mut ring = Uring::new(4).unwrap();
    require_op!(ring, ReadFixed);
    let (rx, _tx) = pipe();
    let pool = FixedBufs::register(&ring, 2, 64).unwrap();
    let t = ring
        .push(ReadFixed::new(&rx, pool.get().unwrap(), u64::MAX))
        .unwrap();
    drop(t);
    ring.submit().unwrap();
    assert_eq!(pool.available(), 1);
    // The ring cancels the read, waits for it, and only then drops the op and its buffer.
    drop(ring);
    assert_eq!(pool.available(), 2);
}

#[test]
fn a_buffer_of_another_rings_pool_is_refused_by_the_kernel() {
    let mut ring = Uring::new(4).unwrap();
    require_op!(ring, ReadFixed);
    let other = Uring::new(4).unwrap();
    let _mine = FixedBufs::register(&ring, 1, 64).unwrap();
    let theirs = FixedBufs::register(&other, 1, 64).unwrap();
    let f = temp_file("fixed-other", DATA);
    let t = ring
        .push(ReadFixed::new(&f.fd, theirs.get().unwrap(), 0))
        .unwrap();
    let (n, mut buf) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::EFAULT));
    assert!(
        buf.as_full_slice_mut().iter().all(|&b| b == 0),
        "nothing was written"
    );
}

#[test]
fn writev_fixed_then_readv_fixed_scatter_ranges_of_one_buffer() {
    use uring_ops::ops::{ReadvFixed, WritevFixed};
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, WritevFixed);
    require_op!(ring, ReadvFixed);
    let f = temp_file("fixed-vec", b"");
    let pool = FixedBufs::register(&ring, 2, 64).unwrap();
    let mut w = pool.get().unwrap();
    w.extend_from_slice(b"0123456789");
    // Gathers 6..10, then 0..3: "6789" + "012".
    let t = ring
        .push(WritevFixed::new(&f.fd, w, vec![6..10, 0..3], 0))
        .unwrap();
    let (n, w, ranges) = ring.wait(t).unwrap();
    assert_eq!((n.unwrap(), ranges), (7, vec![6..10, 0..3]));
    let mut on_disk = [0u8; 7];
    f.file.read_exact_at(&mut on_disk, 0).unwrap();
    assert_eq!(&on_disk, b"6789012");

    // Scatters the 7 bytes into 20..23 and 40..44 of another buffer.
    let r = pool.get().unwrap();
    let t = ring
        .push(ReadvFixed::new(&f.fd, r, vec![20..23, 40..50], 0))
        .unwrap();
    let (n, r, _) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), 7);
    assert_eq!(r.len(), 44, "the length covers the last byte read");
    assert_eq!(&r[20..23], b"678");
    assert_eq!(&r[40..44], b"9012");
    drop(w);

    // A range outside the buffer is refused at push, the op (and buffer) handed back.
    let err = ring
        .push(ReadvFixed::new(&f.fd, r, vec![0..8, 60..65], 0))
        .unwrap_err();
    assert!(
        matches!(
            &err.error,
            Error::OutOfRange(r) if r.op == "ReadvFixed" && r.value == 65 && r.max == 64
        ),
        "{:?}",
        err.error
    );
    let r = err.op.into_buf();
    // A write may only gather the buffer's data (its length, 44 here).
    let err = ring
        .push(WritevFixed::new(&f.fd, r, vec![0..4, 40..45], 0))
        .unwrap_err();
    assert!(matches!(
        &err.error,
        Error::OutOfRange(r) if r.op == "WritevFixed" && r.value == 45 && r.max == 44
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = vec![0..1, 5..2];
    let err = ring
        .push(WritevFixed::new(&f.fd, err.op.into_buf(), backwards, 0))
        .unwrap_err();
    assert!(matches!(&err.error, Error::OutOfRange(r) if r.value == 5));
}

/// `MemTotal + SwapTotal` from `/proc/meminfo`, in bytes.
fn memory_and_swap() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib = |key: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (kib("MemTotal:") + kib("SwapTotal:")) * 1024
}

/// A pool whose memory cannot be allocated is refused with a typed error that names the size
/// (`ENOMEM`), instead of aborting the process. Sizes past the machine's memory and swap,
/// where the kernel refuses the allocation outright (unless overcommit is unlimited).
#[test]
fn a_pool_too_large_to_allocate_is_an_error() {
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap();
    if overcommit.trim() == "1" {
        common::skip(
            "a_pool_too_large_to_allocate_is_an_error: vm.overcommit_memory is 1, so the \
             allocation cannot fail (it would be zeroed and then registered instead)",
        );
        return;
    }
    let ring = Uring::new(8).unwrap();
    for (count, size) in [(64, 1 << 30), (MAX_FIXED_BUFS, MAX_FIXED_BUF_SIZE)] {
        let bytes = count * size;
        if bytes as u64 <= memory_and_swap() {
            common::skip(format_args!(
                "a_pool_too_large_to_allocate_is_an_error: {count} buffers of {size} bytes \
                 fit in this machine's memory"
            ));
            continue;
        }
        match FixedBufs::register(&ring, count, size) {
            Err(e @ Error::OutOfMemory { bytes: b }) => {
                assert_eq!(b, bytes);
                assert_eq!(e.raw_os_error(), Some(libc::ENOMEM));
                assert!(e.to_string().contains(&bytes.to_string()), "{e}");
                let io: std::io::Error = e.into();
                assert_eq!(io.kind(), std::io::ErrorKind::OutOfMemory);
            }
            other => panic!("{count} x {size} bytes: {other:?}"),
        }
    }
    // The ring is unharmed: a pool that fits registers.
    let pool = FixedBufs::register(&ring, 2, 4096).unwrap();
    assert_eq!(pool.available(), 2);
}
