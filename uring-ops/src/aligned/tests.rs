use super::*;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn is_send_and_sync() {
    assert_send_sync::<AlignedBuf>();
}

#[test]
fn starts_aligned_zeroed_and_empty() {
    // Miri zeroes and checks every byte slowly: it stops at 64 KiB.
    let most = if cfg!(miri) { 1 << 16 } else { 1 << 21 };
    for align in [1, 2, 8, 512, 4096, 1 << 16, most] {
        for cap in [1, 100, 4096, 3 * 4096 + 7] {
            let mut b = AlignedBuf::new(cap, align).unwrap();
            assert_eq!(
                b.stable_ptr() as usize % align,
                0,
                "cap {cap} align {align}"
            );
            assert_eq!((b.len(), b.capacity(), b.align()), (0, cap, align));
            assert_eq!((b.bytes_init(), b.bytes_total()), (0, cap));
            assert!(b.as_full_slice_mut().iter().all(|&x| x == 0));
            assert_eq!(b.stable_mut_ptr() as *const u8, b.stable_ptr());
        }
    }
}

#[test]
fn construction_edges_are_typed_errors() {
    // Alignments that are not powers of two, or above the largest huge page.
    for align in [0, 3, 12, 4095, usize::MAX, 1 << 22, 1 << (usize::BITS - 1)] {
        match AlignedBuf::new(4096, align) {
            Err(Error::BadAlignment { align: a }) => assert_eq!(a, align),
            other => panic!("align {align}: {other:?}"),
        }
    }
    // A zero capacity.
    match AlignedBuf::new(0, 4096) {
        Err(Error::OutOfRange(r)) => {
            assert_eq!((r.what, r.value, r.min), ("capacity", 0, 1));
        }
        other => panic!("{other:?}"),
    }
    // Sizes no allocation can have: refused before the allocator, not an abort.
    for cap in [usize::MAX, isize::MAX as usize, isize::MAX as usize - 4094] {
        match AlignedBuf::new(cap, 4096) {
            Err(Error::OutOfMemory { bytes }) => assert_eq!(bytes, cap),
            other => panic!("cap {cap}: {other:?}"),
        }
    }
    // The largest alignment taken: a buffer of one byte aligned to 2 MiB.
    let b = AlignedBuf::new(1, AlignedBuf::MAX_ALIGN).unwrap();
    assert_eq!(b.stable_ptr() as usize % AlignedBuf::MAX_ALIGN, 0);
    // Each converts to the errno it stands for.
    let e: io::Error = AlignedBuf::new(1, 3).unwrap_err().into();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = AlignedBuf::new(usize::MAX, 8).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOMEM));
    assert_eq!(
        e.to_string(),
        format!("out of memory: could not allocate {} bytes", usize::MAX)
    );
}

#[test]
fn length_moves_within_the_capacity() {
    let mut b = AlignedBuf::new(8, 8).unwrap();
    b.extend_from_slice(b"abc").unwrap();
    b.extend_from_slice(b"de").unwrap();
    assert_eq!(&b[..], b"abcde");
    // Past the capacity: refused, nothing appended.
    match b.extend_from_slice(b"wxyz") {
        Err(Error::OutOfRange(r)) => assert_eq!((r.value, r.max), (9, 8)),
        other => panic!("{other:?}"),
    }
    assert_eq!(&b[..], b"abcde");
    match b.set_len(9) {
        Err(Error::OutOfRange(r)) => assert_eq!((r.what, r.value, r.max), ("length", 9, 8)),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.len(), 5);
    // Growing shows what the bytes held: zeros past what was written.
    b.set_len(8).unwrap();
    assert_eq!(&b[..], b"abcde\0\0\0");
    b[7] = b'!';
    b.clear();
    assert!(b.is_empty());
    assert_eq!(&b.as_full_slice_mut()[..], b"abcde\0\0!");
}

#[test]
fn set_init_grows_never_shrinks_and_stops_at_the_capacity() {
    let mut b = AlignedBuf::new(16, 16).unwrap();
    // SAFETY: every byte of the buffer is initialised (zeroed at allocation).
    unsafe { b.set_init(10) };
    assert_eq!(b.len(), 10);
    // SAFETY: as above.
    unsafe { b.set_init(4) };
    assert_eq!(b.len(), 10, "a shorter fill leaves the length");
    // SAFETY: as above.
    unsafe { b.set_init(100) };
    assert_eq!(b.len(), 16, "never past the capacity");
}

#[test]
fn the_pointer_survives_a_move() {
    let mut b = AlignedBuf::new(4096, 4096).unwrap();
    b.extend_from_slice(&[7; 4096]).unwrap();
    let p = b.stable_ptr();
    let moved = Box::new(b);
    assert_eq!(moved.stable_ptr(), p);
    assert!(moved.iter().all(|&x| x == 7));
}

#[test]
fn the_fallback_is_4096_for_both() {
    let d = DioAlign::fallback(DioSource::NotReported);
    assert_eq!(
        (d.mem_align, d.offset_align, d.buf_align()),
        (4096, 4096, 4096)
    );
    let d = DioAlign {
        mem_align: 4,
        offset_align: 512,
        source: DioSource::Statx,
    };
    assert_eq!(d.buf_align(), 512);
}
