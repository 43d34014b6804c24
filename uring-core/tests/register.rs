//! Typed registration on the real kernel: each register op does what it says, checked by
//! values the kernel hands back or by I/O that depends on it.
//!
//! Tests that touch per-thread kernel state (io-wq limits and affinity, registered ring fds)
//! run in a thread of their own so that they neither see nor leave state on a shared thread.
// Real io_uring system calls: Miri cannot run them (the sim tests cover Miri).
#![cfg(not(miri))]

mod common;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;
use uring_core::{sys, Builder, Cancel, Error, Restriction, Ring, SetupFlags, Sqe, SqeFlags};

// --- helpers ------------------------------------------------------------------------------

/// A temp file with known contents, removed on drop.
struct TempFile {
    path: PathBuf,
    file: File,
}

impl TempFile {
    fn new(test: &str, contents: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("uring-core-register-{}-{test}", std::process::id()));
        let mut file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.write_all(contents).unwrap();
        TempFile { path, file }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// 4 KiB of a pattern that differs at every offset that matters here.
fn pattern() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7 + i / 256) as u8).collect()
}

/// Pushes one SQE prepared by `prep`, submits, waits, and returns its completion's
/// `(user_data, res)`.
///
/// # Safety
///
/// As for `Reservation::commit`: what the SQE names stays valid until this returns (it waits
/// for the completion).
unsafe fn run(ring: &mut Ring, prep: impl FnOnce(&mut Sqe)) -> (u64, i32) {
    let mut r = ring.sq().reserve(1).unwrap();
    prep(r.first());
    // SAFETY: forwarded to the caller.
    unsafe { r.commit() };
    ring.submit_and_wait(1).unwrap();
    let cqe = ring.cq().pop().unwrap();
    (cqe.user_data(), cqe.raw_result())
}

/// A NOP with `user_data`; its result.
fn nop(ring: &mut Ring, user_data: u64, flags: SqeFlags, personality: u16) -> i32 {
    // SAFETY: a NOP names no memory.
    let (ud, res) = unsafe {
        run(ring, |s| {
            s.set_opcode(sys::IORING_OP_NOP as u8)
                .set_user_data(user_data)
                .set_flags(flags)
                .set_personality(personality);
        })
    };
    assert_eq!(ud, user_data);
    res
}

fn errno<T: std::fmt::Debug>(r: Result<T, Error>) -> i32 {
    r.unwrap_err().raw_os_error().unwrap()
}

/// The call an `Error::Os` names.
fn call<T: std::fmt::Debug>(r: &Result<T, Error>) -> &'static str {
    match r {
        Err(Error::Os { call, .. }) => call,
        other => panic!("expected Error::Os, got {other:?}"),
    }
}

/// `true` (after printing why) if the kernel lacks `op`.
fn lacks_op(ring: &Ring, op: u32, name: &str) -> bool {
    let probe = ring.register().probe().unwrap();
    if probe.supports(op as u8) {
        return false;
    }
    common::skip(
        module_path!(),
        format_args!("this kernel does not support IORING_OP_{name}"),
    );
    true
}

/// `true` (after printing why) if a register op failed with `EINVAL`, the answer of kernels
/// that do not know it.
fn lacks_register_op<T: std::fmt::Debug>(r: &Result<T, Error>, name: &str) -> bool {
    if let Err(e) = r {
        if e.raw_os_error() == Some(libc::EINVAL) {
            common::skip(
                module_path!(),
                format_args!("this kernel refuses {name} with EINVAL (too old?)"),
            );
            return true;
        }
    }
    false
}

fn iovec(buf: &mut [u8]) -> libc::iovec {
    libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }
}

/// `READ_FIXED` of `len` bytes at file offset `off` into `buf` (inside registered buffer
/// `index`); its result.
///
/// # Safety
///
/// `buf` lies in registered buffer `index`, which stays registered until this returns.
unsafe fn read_fixed(ring: &mut Ring, fd: i32, buf: &mut [u8], off: u64, index: u16) -> i32 {
    let (addr, len) = (buf.as_mut_ptr() as u64, buf.len() as u32);
    // SAFETY: `buf` is exclusively borrowed until the completion, which `run` waits for.
    unsafe {
        run(ring, |s| {
            s.set_opcode(sys::IORING_OP_READ_FIXED as u8)
                .set_fd(fd)
                .set_addr(addr)
                .set_len(len)
                .set_off(off)
                .set_buf_index(index)
                .set_user_data(u64::from(index));
        })
    }
    .1
}

fn eventfd() -> OwnedFd {
    // SAFETY: plain syscall; the result is checked before it is owned.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    assert!(fd >= 0, "eventfd: {}", io::Error::last_os_error());
    // SAFETY: `fd` was just opened and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The eventfd counter (reading resets it) once it is non-zero or `wait` has passed; 0 if it
/// stayed 0. (Waiting covers a completion posted from an io-wq worker, which signals the
/// eventfd just after making the CQE visible.)
fn eventfd_count(fd: &OwnedFd, wait: Duration) -> u64 {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as libc::c_int) };
    assert!(rc >= 0, "poll: {}", io::Error::last_os_error());
    let mut buf = [0u8; 8];
    match File::from(fd.try_clone().unwrap()).read(&mut buf) {
        Ok(8) => u64::from_ne_bytes(buf),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        other => panic!("reading the eventfd: {other:?}"),
    }
}

const SIGNALLED: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(50);

// --- probe --------------------------------------------------------------------------------

#[test]
fn probe_reports_supported_ops() {
    let ring = Ring::new(4).unwrap();
    let probe = ring.register().probe().unwrap();
    assert!(probe.supports(sys::IORING_OP_NOP as u8));
    assert!(probe.supports(sys::IORING_OP_READV as u8));
    assert!(!probe.supports(255));
    assert!(probe.last_op() >= sys::IORING_OP_READV as u8);
    assert!(!probe.supports(probe.last_op().saturating_add(1)) || probe.last_op() == 255);
    // The kernel-side Kernel view gives the same answer.
    assert_eq!(ring.backend().register().probe().unwrap(), probe);
}

// --- restrictions -------------------------------------------------------------------------

#[test]
fn restricted_ring_allows_only_its_allowlist() {
    let file = TempFile::new("restrict", &pattern());
    let mut ring = Builder::new(8).disabled().build().unwrap();
    let reg = ring.register();
    reg.register_restrictions(&[
        Restriction::SqeOp(sys::IORING_OP_NOP as u8),
        Restriction::RegisterOp(sys::IORING_REGISTER_PROBE as u8),
        Restriction::SqeFlagsAllowed(SqeFlags::IO_LINK),
    ])
    .unwrap();
    // Only once.
    let again = reg.register_restrictions(&[Restriction::SqeOp(sys::IORING_OP_READV as u8)]);
    assert_eq!(call(&again), "IORING_REGISTER_RESTRICTIONS");
    assert_eq!(errno(again), libc::EBUSY);

    // A disabled ring takes no SQEs.
    let mut r = ring.sq().reserve(1).unwrap();
    r.first().set_opcode(sys::IORING_OP_NOP as u8);
    // SAFETY: a NOP names no memory.
    unsafe { r.commit() };
    assert_eq!(errno(ring.submit()), libc::EBADFD);

    ring.register().enable_rings().unwrap();
    // The NOP queued before is consumed now, then a fresh one.
    ring.submit_and_wait(1).unwrap();
    assert_eq!(ring.cq().pop().unwrap().raw_result(), 0);
    assert_eq!(nop(&mut ring, 1, SqeFlags::empty(), 0), 0);
    assert_eq!(nop(&mut ring, 2, SqeFlags::IO_LINK, 0), 0);
    // A flag outside the allowed ones.
    assert_eq!(nop(&mut ring, 3, SqeFlags::IO_DRAIN, 0), -libc::EACCES);

    // An op outside the allowlist completes with EACCES and reads nothing.
    let mut buf = vec![0xA5u8; 64];
    let iov = iovec(&mut buf);
    // SAFETY: `iov` and `buf` live until `run` returns after the completion.
    let (_, res) = unsafe {
        run(&mut ring, |s| {
            s.set_opcode(sys::IORING_OP_READV as u8)
                .set_fd(file.file.as_raw_fd())
                .set_addr(&iov as *const libc::iovec as u64)
                .set_len(1)
                .set_off(0)
                .set_user_data(4);
        })
    };
    assert_eq!(res, -libc::EACCES);
    assert!(buf.iter().all(|&b| b == 0xA5), "the refused READV wrote");

    // Register ops: the allowed one works, others are refused.
    assert!(ring.register().probe().unwrap().supports(0));
    let sparse = ring.register().register_buffers_sparse(1);
    assert_eq!(call(&sparse), "IORING_REGISTER_BUFFERS2");
    assert_eq!(errno(sparse), libc::EACCES);
    let more = ring
        .register()
        .register_restrictions(&[Restriction::SqeOp(sys::IORING_OP_READV as u8)]);
    assert_eq!(errno(more), libc::EACCES);
    assert_eq!(errno(ring.register().enable_rings()), libc::EACCES);
}

#[test]
fn restrictions_only_before_enable() {
    // Allowing the restrictions op itself shows the kernel's second line of defence: the ring
    // is no longer disabled.
    let ring = Builder::new(4).disabled().build().unwrap();
    ring.register()
        .register_restrictions(&[
            Restriction::SqeOp(sys::IORING_OP_NOP as u8),
            Restriction::RegisterOp(sys::IORING_REGISTER_RESTRICTIONS as u8),
            Restriction::RegisterOp(sys::IORING_REGISTER_ENABLE_RINGS as u8),
        ])
        .unwrap();
    ring.register().enable_rings().unwrap();
    let after = ring
        .register()
        .register_restrictions(&[Restriction::SqeOp(sys::IORING_OP_READV as u8)]);
    assert_eq!(errno(after), libc::EBADFD);
    assert_eq!(errno(ring.register().enable_rings()), libc::EBADFD);

    // And on a ring that never was disabled.
    let plain = Ring::new(4).unwrap();
    let r = plain
        .register()
        .register_restrictions(&[Restriction::SqeOp(0)]);
    assert_eq!(errno(r), libc::EBADFD);
}

#[test]
fn info_stops_reporting_disabled_once_enabled() {
    let mut ring = Builder::new(4).disabled().build().unwrap();
    let before = ring.info();
    assert!(before.flags.contains(SetupFlags::R_DISABLED));
    // A failed enabling (restrictions refusing it) changes nothing.
    ring.register()
        .register_restrictions(&[
            Restriction::SqeOp(sys::IORING_OP_NOP as u8),
            Restriction::RegisterOp(sys::IORING_REGISTER_PROBE as u8),
        ])
        .unwrap();
    assert!(ring.info().flags.contains(SetupFlags::R_DISABLED));

    ring.register().enable_rings().unwrap();
    let after = ring.info();
    assert!(!after.flags.contains(SetupFlags::R_DISABLED));
    // Nothing else changed.
    assert_eq!(after.flags, before.flags - SetupFlags::R_DISABLED);
    assert_eq!(
        (after.sq_entries, after.cq_entries, after.features),
        (before.sq_entries, before.cq_entries, before.features)
    );
    assert_eq!(nop(&mut ring, 1, SqeFlags::empty(), 0), 0);

    // The refused second enabling leaves it enabled.
    assert_eq!(errno(ring.register().enable_rings()), libc::EACCES);
    assert!(!ring.info().flags.contains(SetupFlags::R_DISABLED));

    // Enabling through the raw register call counts too.
    let raw = Builder::new(4).disabled().build().unwrap();
    // SAFETY: ENABLE_RINGS takes no argument.
    unsafe {
        raw.register().raw(
            "IORING_REGISTER_ENABLE_RINGS",
            sys::IORING_REGISTER_ENABLE_RINGS,
            std::ptr::null_mut(),
            0,
        )
    }
    .unwrap();
    assert!(!raw.info().flags.contains(SetupFlags::R_DISABLED));

    // A ring that never was disabled never says so.
    let plain = Ring::new(4).unwrap();
    assert!(!plain.info().flags.contains(SetupFlags::R_DISABLED));
    assert_eq!(errno(plain.register().enable_rings()), libc::EBADFD);
    assert!(!plain.info().flags.contains(SetupFlags::R_DISABLED));
}

// --- buffers ------------------------------------------------------------------------------

#[test]
fn registered_buffers_serve_read_fixed() {
    let data = pattern();
    let file = TempFile::new("buffers", &data);
    let mut ring = Ring::new(8).unwrap();
    if lacks_op(&ring, sys::IORING_OP_READ_FIXED, "READ_FIXED") {
        return;
    }
    let mut a = vec![0x11u8; 4096];
    let mut b = vec![0x22u8; 4096];
    let iovs = [iovec(&mut a), iovec(&mut b)];
    // SAFETY: `a` and `b` outlive the registration (unregistered below) and are only read by
    // this test while no op is in flight.
    unsafe { ring.register().register_buffers(&iovs) }.unwrap();
    // SAFETY: as above; the second registration attempt must fail before using anything.
    let twice = unsafe { ring.register().register_buffers(&iovs) };
    assert_eq!(errno(twice), libc::EBUSY);

    let fd = file.file.as_raw_fd();
    // SAFETY: `b[100..164]` lies in registered buffer 1.
    let res = unsafe { read_fixed(&mut ring, fd, &mut b[100..164], 1000, 1) };
    assert_eq!(res, 64);
    assert_eq!(&b[100..164], &data[1000..1064]);
    assert!(b[..100].iter().chain(&b[164..]).all(|&x| x == 0x22));
    assert!(a.iter().all(|&x| x == 0x11));
    // SAFETY: `a` is registered buffer 0.
    let res = unsafe { read_fixed(&mut ring, fd, &mut a[..], 0, 0) };
    assert_eq!(res, 4096);
    assert_eq!(a, data);

    // An address outside the named buffer is refused.
    // SAFETY: the kernel checks the range against buffer 0 and refuses; nothing is written.
    let res = unsafe { read_fixed(&mut ring, fd, &mut b[..16], 0, 0) };
    assert_eq!(res, -libc::EFAULT);
    assert!(b[..16].iter().all(|&x| x == 0x22));

    ring.register().unregister_buffers().unwrap();
    let r = ring.register().unregister_buffers();
    assert_eq!(call(&r), "IORING_UNREGISTER_BUFFERS");
    assert_eq!(errno(r), libc::ENXIO);
    // SAFETY: nothing is registered any more: the kernel refuses the read.
    let res = unsafe { read_fixed(&mut ring, fd, &mut a[..16], 0, 0) };
    assert_eq!(res, -libc::EFAULT);
}

#[test]
fn sparse_buffers_filled_by_update() {
    let data = pattern();
    let file = TempFile::new("sparse-buffers", &data);
    let mut ring = Ring::new(8).unwrap();
    if lacks_op(&ring, sys::IORING_OP_READ_FIXED, "READ_FIXED") {
        return;
    }
    let sparse = ring.register().register_buffers_sparse(4);
    if lacks_register_op(&sparse, "IORING_REGISTER_BUFFERS2 (sparse)") {
        return;
    }
    sparse.unwrap();
    let fd = file.file.as_raw_fd();
    let mut buf = vec![0u8; 512];

    // An empty slot serves nothing.
    // SAFETY: slot 2 is empty: the kernel refuses the read and writes nothing.
    let res = unsafe { read_fixed(&mut ring, fd, &mut buf, 0, 2) };
    assert_eq!(res, -libc::EFAULT);
    assert!(buf.iter().all(|&x| x == 0));

    // SAFETY: `buf` outlives its slot (emptied below) and is read only between ops.
    let n = unsafe { ring.register().update_buffers(2, &[iovec(&mut buf)]) }.unwrap();
    assert_eq!(n, 1);
    // SAFETY: `buf` is registered buffer 2.
    assert_eq!(unsafe { read_fixed(&mut ring, fd, &mut buf, 512, 2) }, 512);
    assert_eq!(&buf[..], &data[512..1024]);

    // A null, empty iovec empties the slot again.
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    // SAFETY: an empty slot names no memory.
    let n = unsafe { ring.register().update_buffers(2, &[empty]) }.unwrap();
    assert_eq!(n, 1);
    buf.fill(0);
    // SAFETY: slot 2 is empty again: refused, nothing written.
    let res = unsafe { read_fixed(&mut ring, fd, &mut buf, 0, 2) };
    assert_eq!(res, -libc::EFAULT);
    assert!(buf.iter().all(|&x| x == 0));

    // Past the table's end.
    // SAFETY: refused before any memory is used.
    let past = unsafe { ring.register().update_buffers(4, &[empty]) };
    assert_eq!(call(&past), "IORING_REGISTER_BUFFERS_UPDATE");
    assert_eq!(errno(past), libc::EINVAL);
}

// --- files --------------------------------------------------------------------------------

/// `READ` of `buf.len()` bytes at offset `off` from fixed file `index`; its result.
fn read_fixed_file(ring: &mut Ring, index: u32, buf: &mut [u8], off: u64) -> i32 {
    let (addr, len) = (buf.as_mut_ptr() as u64, buf.len() as u32);
    // SAFETY: `buf` is exclusively borrowed until the completion, which `run` waits for.
    unsafe {
        run(ring, |s| {
            s.set_opcode(sys::IORING_OP_READ as u8)
                .set_flags(SqeFlags::FIXED_FILE)
                .set_fd(index as i32)
                .set_addr(addr)
                .set_len(len)
                .set_off(off)
                .set_user_data(u64::from(index));
        })
    }
    .1
}

#[test]
fn sparse_files_filled_by_update_serve_fixed_reads() {
    let data = pattern();
    let file = TempFile::new("sparse-files", &data);
    let mut ring = Ring::new(8).unwrap();
    if lacks_op(&ring, sys::IORING_OP_READ, "READ") {
        return;
    }
    let sparse = ring.register().register_files_sparse(4);
    if lacks_register_op(&sparse, "IORING_REGISTER_FILES2 (sparse)") {
        return;
    }
    sparse.unwrap();
    let mut buf = vec![0u8; 100];
    assert_eq!(
        read_fixed_file(&mut ring, 3, &mut buf, 0),
        -libc::EBADF,
        "an empty slot"
    );

    assert_eq!(
        ring.register()
            .update_files(3, &[file.file.as_fd()])
            .unwrap(),
        1
    );
    assert_eq!(read_fixed_file(&mut ring, 3, &mut buf, 200), 100);
    assert_eq!(&buf[..], &data[200..300]);
    assert_eq!(read_fixed_file(&mut ring, 2, &mut buf, 0), -libc::EBADF);

    // -2 (skip) leaves slot 3 alone and -1 empties slot 2 (already empty); both count.
    assert_eq!(
        ring.register()
            .update_files_raw(2, &[-1, sys::IORING_REGISTER_FILES_SKIP])
            .unwrap(),
        2
    );
    assert_eq!(read_fixed_file(&mut ring, 3, &mut buf, 0), 100);
    assert_eq!(ring.register().update_files_raw(3, &[-1]).unwrap(), 1);
    assert_eq!(read_fixed_file(&mut ring, 3, &mut buf, 0), -libc::EBADF);

    let past = ring.register().update_files(4, &[file.file.as_fd()]);
    assert_eq!(call(&past), "IORING_REGISTER_FILES_UPDATE");
    assert_eq!(errno(past), libc::EINVAL);

    // Direct-descriptor allocation range inside the table.
    let range = ring.register().register_file_alloc_range(1, 2);
    if !lacks_register_op(&range, "IORING_REGISTER_FILE_ALLOC_RANGE") {
        range.unwrap();
        let r = ring.register().register_file_alloc_range(3, 2);
        assert_eq!(errno(r), libc::EINVAL, "a range past the table");
    }

    ring.register().unregister_files().unwrap();
    assert_eq!(errno(ring.register().unregister_files()), libc::ENXIO);
    assert_eq!(read_fixed_file(&mut ring, 0, &mut buf, 0), -libc::EBADF);
}

#[test]
fn registered_files_with_empty_slots() {
    let data = pattern();
    let file = TempFile::new("files", &data);
    let mut ring = Ring::new(8).unwrap();
    if lacks_op(&ring, sys::IORING_OP_READ, "READ") {
        return;
    }
    ring.register()
        .register_files_raw(&[-1, file.file.as_raw_fd()])
        .unwrap();
    let twice = ring.register().register_files(&[file.file.as_fd()]);
    assert_eq!(call(&twice), "IORING_REGISTER_FILES");
    assert_eq!(errno(twice), libc::EBUSY);

    let mut buf = vec![0u8; 10];
    assert_eq!(read_fixed_file(&mut ring, 1, &mut buf, 4000), 10);
    assert_eq!(&buf[..], &data[4000..4010]);
    assert_eq!(read_fixed_file(&mut ring, 0, &mut buf, 0), -libc::EBADF);
    ring.register().unregister_files().unwrap();

    // The typed form, and an fd that is not open.
    ring.register()
        .register_files(&[file.file.as_fd()])
        .unwrap();
    assert_eq!(read_fixed_file(&mut ring, 0, &mut buf, 0), 10);
    assert_eq!(&buf[..], &data[..10]);
    ring.register().unregister_files().unwrap();
    assert_eq!(
        errno(ring.register().register_files_raw(&[1 << 29])),
        libc::EBADF
    );
}

// --- eventfd ------------------------------------------------------------------------------

#[test]
fn eventfd_counts_completions() {
    let mut ring = Ring::new(8).unwrap();
    let efd = eventfd();
    ring.register().register_eventfd(efd.as_fd()).unwrap();
    let twice = ring.register().register_eventfd(efd.as_fd());
    assert_eq!(call(&twice), "IORING_REGISTER_EVENTFD");
    assert_eq!(errno(twice), libc::EBUSY);

    assert_eq!(eventfd_count(&efd, QUIET), 0);
    assert_eq!(nop(&mut ring, 1, SqeFlags::empty(), 0), 0);
    assert!(eventfd_count(&efd, SIGNALLED) >= 1);

    ring.register().unregister_eventfd().unwrap();
    assert_eq!(nop(&mut ring, 2, SqeFlags::empty(), 0), 0);
    assert_eq!(
        eventfd_count(&efd, QUIET),
        0,
        "signalled after unregistering"
    );
    assert_eq!(errno(ring.register().unregister_eventfd()), libc::ENXIO);
}

#[test]
fn async_eventfd_counts_only_async_completions() {
    let mut ring = Ring::new(8).unwrap();
    let efd = eventfd();
    let r = ring.register().register_eventfd_async(efd.as_fd());
    if lacks_register_op(&r, "IORING_REGISTER_EVENTFD_ASYNC") {
        return;
    }
    r.unwrap();
    // A NOP completes inline, while submitting: no signal.
    assert_eq!(nop(&mut ring, 1, SqeFlags::empty(), 0), 0);
    assert_eq!(eventfd_count(&efd, QUIET), 0);
    // Forced to an io-wq worker, it completes from there: signalled.
    assert_eq!(nop(&mut ring, 2, SqeFlags::ASYNC, 0), 0);
    assert!(eventfd_count(&efd, SIGNALLED) >= 1);
    ring.register().unregister_eventfd().unwrap();
}

// --- personality --------------------------------------------------------------------------

#[test]
fn personality_ids_are_honoured_until_unregistered() {
    let mut ring = Ring::new(8).unwrap();
    let id = ring.register().register_personality().unwrap();
    assert!(id >= 1, "the kernel hands out ids from 1");
    let other = ring.register().register_personality().unwrap();
    assert_ne!(id, other);
    assert_eq!(nop(&mut ring, 1, SqeFlags::empty(), id), 0);

    ring.register().unregister_personality(id).unwrap();
    assert_eq!(nop(&mut ring, 2, SqeFlags::empty(), id), -libc::EINVAL);
    assert_eq!(nop(&mut ring, 3, SqeFlags::empty(), other), 0);
    let again = ring.register().unregister_personality(id);
    assert_eq!(call(&again), "IORING_UNREGISTER_PERSONALITY");
    assert_eq!(errno(again), libc::EINVAL);
    ring.register().unregister_personality(other).unwrap();
}

// --- io-wq --------------------------------------------------------------------------------

#[test]
fn iowq_max_workers_returns_the_previous_limits() {
    std::thread::spawn(|| {
        // Setting the ring up gives this thread its io-wq, with the kernel's default limits.
        let mut ring = Ring::new(8).unwrap();
        let reg = ring.register();
        let defaults = reg.register_iowq_max_workers([0, 0]);
        if lacks_register_op(&defaults, "IORING_REGISTER_IOWQ_MAX_WORKERS") {
            return;
        }
        let defaults = defaults.unwrap();
        // SAFETY: a plain libc query.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } as u32;
        assert_eq!(defaults[0], ring.info().sq_entries.min(4 * cpus), "bounded");
        // SAFETY: an all-zero rlimit is valid; `getrlimit` fills it in.
        let mut nproc: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: a live rlimit to write into.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut nproc) };
        assert_eq!(rc, 0);
        if nproc.rlim_cur <= i32::MAX as libc::rlim_t {
            assert_eq!(u64::from(defaults[1]), nproc.rlim_cur as u64, "unbounded");
        }

        assert_eq!(reg.register_iowq_max_workers([2, 3]).unwrap(), defaults);
        assert_eq!(reg.register_iowq_max_workers([0, 0]).unwrap(), [2, 3]);
        assert_eq!(reg.register_iowq_max_workers([5, 0]).unwrap(), [2, 3]);
        assert_eq!(reg.register_iowq_max_workers([0, 0]).unwrap(), [5, 3]);
        let big = reg.register_iowq_max_workers([u32::MAX, 0]);
        assert_eq!(call(&big), "IORING_REGISTER_IOWQ_MAX_WORKERS");
        assert_eq!(errno(big), libc::EINVAL);

        // The io-wq is per thread: one that never used io_uring has none to report.
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(reg.register_iowq_max_workers([0, 0]).unwrap(), [0, 0]));
        });

        assert_eq!(reg.register_iowq_max_workers(defaults).unwrap(), [5, 3]);
        assert_eq!(reg.register_iowq_max_workers([0, 0]).unwrap(), defaults);
        // Work still runs on the workers.
        assert_eq!(nop(&mut ring, 1, SqeFlags::ASYNC, 0), 0);
    })
    .join()
    .unwrap();
}

#[test]
fn iowq_affinity_needs_an_iowq() {
    std::thread::spawn(|| {
        // Setting the ring up gives this thread its io-wq.
        let mut ring = Ring::new(8).unwrap();
        // SAFETY: an all-zero cpu_set_t is the empty set.
        let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: asks for this thread's allowed CPUs into a live set of the given size.
        let rc = unsafe {
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed)
        };
        assert_eq!(rc, 0);
        let first = ring.register().register_iowq_aff(&allowed);
        if lacks_register_op(&first, "IORING_REGISTER_IOWQ_AFF") {
            return;
        }
        first.unwrap();

        // One allowed CPU.
        let first_cpu = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `i` is within the set.
            .find(|&i| unsafe { libc::CPU_ISSET(i, &allowed) })
            .unwrap();
        // SAFETY: an all-zero cpu_set_t is the empty set.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `first_cpu` is within the set.
        unsafe { libc::CPU_SET(first_cpu, &mut one) };
        ring.register().register_iowq_aff(&one).unwrap();
        assert_eq!(nop(&mut ring, 1, SqeFlags::ASYNC, 0), 0);

        // CPUs past the kernel's CPU count are ignored, not refused (EINVAL is only for a CPU
        // the kernel has but the thread's cpuset excludes, which this test cannot arrange).
        // SAFETY: a plain libc query.
        let configured = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) } as usize;
        // SAFETY: `configured` is below CPU_SETSIZE on any machine this runs on.
        unsafe { libc::CPU_SET(configured, &mut one) };
        ring.register().register_iowq_aff(&one).unwrap();

        // The io-wq is per thread: one that never used io_uring has none to pin.
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = ring.register().register_iowq_aff(&one);
                assert_eq!(errno(r), libc::EINVAL);
            });
        });

        ring.register().unregister_iowq_aff().unwrap();
        assert_eq!(nop(&mut ring, 2, SqeFlags::ASYNC, 0), 0);
    })
    .join()
    .unwrap();
}

// --- registered ring fd -------------------------------------------------------------------

#[test]
fn registered_ring_fd_is_used_on_its_thread() {
    std::thread::spawn(|| {
        let mut ring = Ring::new(8).unwrap();
        let first = ring.register().register_ring_fd();
        if lacks_register_op(&first, "IORING_REGISTER_RING_FDS") {
            return;
        }
        let index = first.unwrap();
        assert_eq!(ring.backend().registered_index(), Some(index));
        assert_eq!(nop(&mut ring, 1, SqeFlags::empty(), 0), 0);
        assert!(matches!(
            ring.register().register_ring_fd(),
            Err(Error::RingFd(_))
        ));

        // Another thread enters through the plain fd and cannot unregister it.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(nop(&mut ring, 2, SqeFlags::empty(), 0), 0);
                assert!(matches!(
                    ring.register().unregister_ring_fd(),
                    Err(Error::RingFd(_))
                ));
                assert!(matches!(
                    ring.register().register_ring_fd(),
                    Err(Error::RingFd(_))
                ));
            });
        });

        ring.register().unregister_ring_fd().unwrap();
        assert_eq!(ring.backend().registered_index(), None);
        assert!(matches!(
            ring.register().unregister_ring_fd(),
            Err(Error::RingFd(_))
        ));
        assert_eq!(nop(&mut ring, 3, SqeFlags::empty(), 0), 0);
    })
    .join()
    .unwrap();
}

#[test]
fn entering_really_uses_the_registered_index() {
    std::thread::spawn(|| {
        let mut ring = Ring::new(8).unwrap();
        let first = ring.register().register_ring_fd();
        if lacks_register_op(&first, "IORING_REGISTER_RING_FDS") {
            return;
        }
        let index = first.unwrap();
        // Remove the kernel's entry behind the ring's back: if entering uses the index, the
        // kernel now finds nothing there (EBADF); through the plain fd it would still work.
        let mut up = sys::io_uring_rsrc_update {
            offset: index,
            ..Default::default()
        };
        // SAFETY: `up` is a live io_uring_rsrc_update, one entry; the kernel only reads it.
        unsafe {
            ring.register().raw(
                "IORING_UNREGISTER_RING_FDS",
                sys::IORING_UNREGISTER_RING_FDS,
                (&mut up as *mut sys::io_uring_rsrc_update).cast(),
                1,
            )
        }
        .unwrap();
        let mut r = ring.sq().reserve(1).unwrap();
        r.first().set_opcode(sys::IORING_OP_NOP as u8);
        // SAFETY: a NOP names no memory.
        unsafe { r.commit() };
        let res = ring.submit();
        assert_eq!(call(&res), "io_uring_enter");
        assert_eq!(errno(res), libc::EBADF);
    })
    .join()
    .unwrap();
}

#[test]
fn dropping_the_ring_frees_its_registered_slot() {
    std::thread::spawn(|| {
        let ring = Ring::new(4).unwrap();
        let first = ring.register().register_ring_fd();
        if lacks_register_op(&first, "IORING_REGISTER_RING_FDS") {
            return;
        }
        let index = first.unwrap();
        drop(ring);
        // The kernel hands out the lowest free index: the same one if the drop freed it.
        let ring = Ring::new(4).unwrap();
        assert_eq!(ring.register().register_ring_fd().unwrap(), index);
    })
    .join()
    .unwrap();
}

// --- synchronous cancel -------------------------------------------------------------------

/// Queues an hour-long `TIMEOUT` with `user_data`.
///
/// # Safety
///
/// `ts` stays alive until the timeout's completion is reaped.
unsafe fn queue_timeout(ring: &mut Ring, ts: &sys::__kernel_timespec, user_data: u64) {
    let mut r = ring.sq().reserve(1).unwrap();
    r.first()
        .set_opcode(sys::IORING_OP_TIMEOUT as u8)
        .set_addr(ts as *const sys::__kernel_timespec as u64)
        .set_len(1)
        .set_off(0)
        .set_user_data(user_data);
    // SAFETY: forwarded to the caller.
    unsafe { r.commit() };
    assert_eq!(ring.submit().unwrap(), 1);
}

#[test]
fn sync_cancel_cancels_by_user_data() {
    // Declared before the ring, so that it outlives any timeout still queued on an early return.
    let ts = sys::__kernel_timespec {
        tv_sec: 3600,
        tv_nsec: 0,
    };
    let mut ring = Ring::new(8).unwrap();
    if lacks_op(&ring, sys::IORING_OP_TIMEOUT, "TIMEOUT") {
        return;
    }
    // SAFETY: `ts` outlives every timeout: each is cancelled and reaped below.
    unsafe { queue_timeout(&mut ring, &ts, 42) };
    let missing = ring
        .register()
        .cancel_sync(Cancel::user_data(43), Some(Duration::from_secs(1)));
    if lacks_register_op(&missing, "IORING_REGISTER_SYNC_CANCEL") {
        return;
    }
    assert_eq!(call(&missing), "IORING_REGISTER_SYNC_CANCEL");
    assert_eq!(errno(missing), libc::ENOENT);
    assert_eq!(ring.cq().ready(), 0, "the timeout fired or was cancelled");

    let n = ring
        .register()
        .cancel_sync(Cancel::user_data(42), Some(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(n, 1);
    ring.wait(1).unwrap();
    let cqe = ring.cq().pop().unwrap();
    assert_eq!((cqe.user_data(), cqe.raw_result()), (42, -libc::ECANCELED));

    // With ALL: every match, counted; none is 0, not an error.
    // SAFETY: as above.
    unsafe {
        queue_timeout(&mut ring, &ts, 7);
        queue_timeout(&mut ring, &ts, 7);
        queue_timeout(&mut ring, &ts, 8);
    }
    let n = ring
        .register()
        .cancel_sync(Cancel::user_data(7).all(), None)
        .unwrap();
    assert_eq!(n, 2);
    ring.wait(2).unwrap();
    let got: Vec<_> = ring
        .cq()
        .batch()
        .map(|c| (c.user_data(), c.raw_result()))
        .collect();
    assert_eq!(got, vec![(7, -libc::ECANCELED), (7, -libc::ECANCELED)]);
    assert_eq!(
        ring.register()
            .cancel_sync(Cancel::user_data(7).all(), None)
            .unwrap(),
        0
    );
    // ANY takes the rest.
    assert_eq!(ring.register().cancel_sync(Cancel::any(), None).unwrap(), 1);
    ring.wait(1).unwrap();
    let cqe = ring.cq().pop().unwrap();
    assert_eq!((cqe.user_data(), cqe.raw_result()), (8, -libc::ECANCELED));
}

/// A `READ` of up to `buf.len()` bytes from `fd` (a fixed-file index with `fixed`), queued and
/// submitted but not waited for.
///
/// # Safety
///
/// `buf` stays alive and untouched until the read's completion is reaped.
unsafe fn queue_read(ring: &mut Ring, fd: i32, fixed: bool, buf: &mut [u8], user_data: u64) {
    let mut r = ring.sq().reserve(1).unwrap();
    let sqe = r.first();
    sqe.set_opcode(sys::IORING_OP_READ as u8)
        .set_fd(fd)
        .set_addr(buf.as_mut_ptr() as u64)
        .set_len(buf.len() as u32)
        .set_off(u64::MAX) // the current position: a pipe has no offsets
        .set_user_data(user_data);
    if fixed {
        sqe.set_flags(SqeFlags::FIXED_FILE);
    }
    // SAFETY: forwarded to the caller.
    unsafe { r.commit() };
    assert_eq!(ring.submit().unwrap(), 1);
}

/// Waits for `n` completions and returns them sorted by user data.
fn reap(ring: &mut Ring, n: u32) -> Vec<(u64, i32)> {
    ring.wait(n).unwrap();
    let mut got: Vec<_> = ring
        .cq()
        .batch()
        .map(|c| (c.user_data(), c.raw_result()))
        .collect();
    got.sort_unstable();
    got
}

#[test]
fn sync_cancel_by_fd_fixed_fd_and_opcode() {
    let mut ring = Ring::new(8).unwrap();
    if lacks_op(&ring, sys::IORING_OP_READ, "READ") {
        return;
    }
    let mut fds = [0; 2];
    // SAFETY: a live array of two fds to fill in.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just opened and are owned by nobody else.
    let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    ring.register().register_files(&[rx.as_fd()]).unwrap();
    let mut bufs = [[0u8; 8]; 3];
    let [a, b, c] = &mut bufs;

    // By fd: reads on an empty pipe wait until cancelled.
    // SAFETY: `a` is not touched until its completion is reaped below.
    unsafe { queue_read(&mut ring, rx.as_raw_fd(), false, a, 1) };
    let n = ring.register().cancel_sync(Cancel::fd(rx.as_fd()), None);
    if lacks_register_op(&n, "IORING_REGISTER_SYNC_CANCEL") {
        // End the read (EOF, nothing written) before `a` goes away.
        drop(tx);
        assert_eq!(reap(&mut ring, 1), vec![(1, 0)]);
        return;
    }
    assert_eq!(n.unwrap(), 1);
    assert_eq!(reap(&mut ring, 1), vec![(1, -libc::ECANCELED)]);

    // By fixed file.
    // SAFETY: as above, for `b`.
    unsafe { queue_read(&mut ring, 0, true, b, 2) };
    let n = ring
        .register()
        .cancel_sync(Cancel::fixed_fd(0), None)
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(reap(&mut ring, 1), vec![(2, -libc::ECANCELED)]);
    let none = ring.register().cancel_sync(Cancel::fixed_fd(0), None);
    assert_eq!(errno(none), libc::ENOENT);
    let bad = ring.register().cancel_sync(Cancel::fixed_fd(5), None);
    assert_eq!(errno(bad), libc::EBADF);

    // By opcode, every one (Linux 6.6).
    // SAFETY: as above, for `a` and `c`.
    unsafe {
        queue_read(&mut ring, rx.as_raw_fd(), false, a, 3);
        queue_read(&mut ring, 0, true, c, 4);
    }
    let by_op = ring
        .register()
        .cancel_sync(Cancel::opcode(sys::IORING_OP_READ as u8).all(), None);
    if lacks_register_op(&by_op, "IORING_ASYNC_CANCEL_OP") {
        // Clean up with ANY so that nothing is left to write into the buffers.
        assert_eq!(ring.register().cancel_sync(Cancel::any(), None).unwrap(), 2);
        reap(&mut ring, 2);
        return;
    }
    assert_eq!(by_op.unwrap(), 2);
    assert_eq!(
        reap(&mut ring, 2),
        vec![(3, -libc::ECANCELED), (4, -libc::ECANCELED)]
    );
    assert!(bufs.iter().flatten().all(|&x| x == 0));
}
