//! The raw syscalls against the running kernel.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use uring_sys::*;

fn setup(entries: u32) -> (std::os::fd::OwnedFd, io_uring_params) {
    let mut p = io_uring_params::default();
    let fd = io_uring_setup(entries, &mut p).expect("io_uring_setup");
    (fd, p)
}

#[test]
fn setup_fills_params() {
    let (fd, p) = setup(8);
    assert!(fd.as_raw_fd() >= 0);
    assert_eq!(p.sq_entries, 8, "power-of-two request is kept");
    assert_eq!(p.cq_entries, 16, "CQ defaults to twice the SQ");
    assert_ne!(p.features, 0, "a current kernel reports features");
    assert_ne!(p.features & IORING_FEAT_SINGLE_MMAP, 0);
    assert_ne!(p.features & IORING_FEAT_NODROP, 0);
    assert_ne!(p.features & IORING_FEAT_EXT_ARG, 0);
    // The offsets point inside the rings and do not overlap the head/tail words.
    let sq = p.sq_off;
    assert!(sq.head != sq.tail && sq.ring_mask != sq.ring_entries);
    assert!(sq.array > sq.dropped);
    let cq = p.cq_off;
    assert!(cq.cqes > cq.overflow && cq.cqes % 8 == 0);
    assert!(cq.head != cq.tail);
}

#[test]
fn setup_rounds_up_and_honours_cqsize() {
    let mut p = io_uring_params {
        flags: IORING_SETUP_CQSIZE,
        cq_entries: 100,
        ..Default::default()
    };
    let _fd = io_uring_setup(5, &mut p).expect("setup");
    assert_eq!(p.sq_entries, 8);
    assert_eq!(p.cq_entries, 128);
}

#[test]
fn setup_zero_entries_is_einval() {
    let mut p = io_uring_params::default();
    let err = io_uring_setup(0, &mut p).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn setup_unknown_flag_is_einval() {
    let mut p = io_uring_params {
        flags: 1 << 31,
        ..Default::default()
    };
    let err = io_uring_setup(4, &mut p).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn enter_on_non_ring_fd_fails() {
    let file = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: nothing is submitted; the kernel rejects the descriptor before reading anything.
    let err = unsafe { io_uring_enter(file.as_fd(), 0, 0, 0) }.unwrap_err();
    let errno = err.raw_os_error();
    assert!(
        errno == Some(libc::EOPNOTSUPP) || errno == Some(libc::EBADF),
        "got {err}"
    );
}

#[test]
fn enter_with_nothing_queued_returns_zero() {
    let (fd, _p) = setup(4);
    // SAFETY: the SQ is empty, so the kernel reads no SQE.
    let n = unsafe { io_uring_enter(fd.as_fd(), 0, 0, 0) }.unwrap();
    assert_eq!(n, 0);
}

#[test]
fn enter_ext_arg_times_out() {
    let (fd, _p) = setup(4);
    let ts = __kernel_timespec {
        tv_sec: 0,
        tv_nsec: 20_000_000,
    };
    let arg = io_uring_getevents_arg {
        ts: &ts as *const _ as u64,
        ..Default::default()
    };
    let start = std::time::Instant::now();
    // SAFETY: `ts` outlives the call; the SQ is empty.
    let err =
        unsafe { io_uring_enter_ext(fd.as_fd(), 0, 1, IORING_ENTER_GETEVENTS, &arg) }.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ETIME));
    assert!(start.elapsed() >= std::time::Duration::from_millis(15));
}

fn probe(fd: BorrowedFd<'_>) -> io::Result<Vec<io_uring_probe_op>> {
    const N: usize = 256;
    // io_uring_probe followed by N io_uring_probe_op, 8-byte aligned.
    let mut buf =
        vec![0u64; (size_of::<io_uring_probe>() + N * size_of::<io_uring_probe_op>()) / 8];
    // SAFETY: `buf` is writable for the header and N entries, as nr_args says.
    unsafe { io_uring_register(fd, IORING_REGISTER_PROBE, buf.as_mut_ptr().cast(), N as u32) }?;
    // SAFETY: `buf` is 8-aligned and large enough for the header; the kernel filled it.
    let hdr = unsafe { &*(buf.as_ptr() as *const io_uring_probe) };
    let len = hdr.ops_len as usize;
    // SAFETY: the kernel wrote `ops_len` entries right after the header, inside `buf`.
    let ops = unsafe {
        std::slice::from_raw_parts(
            (buf.as_ptr() as *const u8).add(size_of::<io_uring_probe>())
                as *const io_uring_probe_op,
            len,
        )
    };
    Ok(ops.to_vec())
}

#[test]
fn register_probe_reports_nop() {
    let (fd, _p) = setup(4);
    let ops = probe(fd.as_fd()).expect("probe");
    assert!(ops.len() > IORING_OP_READV as usize);
    let nop = ops[IORING_OP_NOP as usize];
    assert_eq!(nop.op as u32, IORING_OP_NOP);
    assert_ne!(nop.flags as u32 & IO_URING_OP_SUPPORTED, 0);
    assert_ne!(
        ops[IORING_OP_READV as usize].flags as u32 & IO_URING_OP_SUPPORTED,
        0
    );
}

#[test]
fn register_bad_opcode_is_einval() {
    let (fd, _p) = setup(4);
    // SAFETY: the kernel rejects the opcode without touching `arg`.
    let err = unsafe { io_uring_register(fd.as_fd(), 9999, std::ptr::null_mut(), 0) }.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
}
