//! The newer register ops on the real kernel (issue 16): each checked by what the kernel hands
//! back, by a completion it posts, or by I/O that depends on it; an op the running kernel lacks
//! is reported skipped with the version that brought it.
// Real io_uring system calls: Miri cannot run them.
#![cfg(not(miri))]

mod common;

use common::{push_nops, skip};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};
use uring_core::{
    query_opcodes, query_scq, query_zcrx, send_msg_ring, sys, BpfFilter, Builder, Clock,
    CloneBuffers, Error, Napi, NapiTracking, Ring, SqeFlags,
};

/// The errno of a failed call, or panics on success.
fn errno<T: std::fmt::Debug>(r: Result<T, Error>) -> i32 {
    r.unwrap_err().raw_os_error().unwrap()
}

/// `true` (and the test reported skipped) when `r` failed with `EINVAL`, which is how kernels
/// before `version` answer `op`.
fn lacks<T>(test: &str, r: &Result<T, Error>, op: &str, version: &str) -> bool {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            skip(test, format_args!("{op} needs Linux {version} ({e})"));
            true
        }
        _ => false,
    }
}

/// How long a released resource's tag may take: Linux 6.1 posts tags from a work item it
/// delays by a second (`io_rsrc_node_ref_zero`: `mod_delayed_work(.., HZ)`).
const TAG_WAIT: Duration = Duration::from_secs(5);

/// Waits (up to [`TAG_WAIT`]) for one completion and returns `(user_data, res, flags)`.
fn next(ring: &mut Ring) -> (u64, i32, u32) {
    ring.wait_timeout(1, TAG_WAIT)
        .expect("a completion within TAG_WAIT");
    let cqe = ring.cq().pop().unwrap();
    (cqe.user_data(), cqe.raw_result(), cqe.raw_flags())
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just created and are owned by nothing else.
    unsafe {
        (
            std::os::fd::FromRawFd::from_raw_fd(fds[0]),
            std::os::fd::FromRawFd::from_raw_fd(fds[1]),
        )
    }
}

// --- tags ----------------------------------------------------------------------------------

#[test]
fn tagged_files_and_buffers_post_their_tags_when_released() {
    let mut ring = Ring::new(8).unwrap();
    let (r, w) = pipe();
    // SAFETY: tags 100/101/200 are no user data of this test's SQEs.
    let reg = unsafe {
        ring.register()
            .register_files_tagged(&[r.as_raw_fd(), w.as_raw_fd(), -1], &[100, 101, 0])
    };
    reg.unwrap();
    // SAFETY: as above.
    let n = unsafe { ring.register().update_files_tagged(0, &[-1], &[0]) }.unwrap();
    assert_eq!(n, 1);
    assert_eq!(next(&mut ring), (100, 0, 0), "slot 0's file released");
    // The slot filled again with a tag, then emptied by unregistering the table.
    // SAFETY: as above.
    unsafe {
        ring.register()
            .update_files_tagged(2, &[r.as_raw_fd()], &[102])
    }
    .unwrap();
    ring.register().unregister_files().unwrap();
    // Since Linux 6.13 the table's files are released through their resource nodes, tags and
    // all; before, unregistering just drops them (`__io_sqe_files_unregister`), and only a
    // slot an update empties or refills posts its tag.
    if common::kernel_at_least(6, 13) {
        let mut tags = vec![next(&mut ring), next(&mut ring)];
        tags.sort();
        assert_eq!(tags, [(101, 0, 0), (102, 0, 0)]);
    } else {
        skip(
            "tagged_files_and_buffers_post_their_tags_when_released",
            "(partly) unregistering a file table posts its files' tags from Linux 6.13 on",
        );
    }
    assert!(ring.cq().pop().is_none(), "untagged slots post nothing");
    assert!(matches!(
        // SAFETY: nothing is registered (refused before the call).
        unsafe { ring.register().register_files_tagged(&[r.as_raw_fd()], &[]) },
        Err(Error::Register {
            op: "IORING_REGISTER_FILES2",
            ..
        })
    ));

    let mut buf = vec![0u8; 4096];
    let iov = [libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }];
    // SAFETY: `buf` outlives the registration (released below, before `buf` is dropped, and
    // its tag's completion is waited for); no op uses it.
    unsafe { ring.register().register_buffers_tagged(&iov, &[200]) }.unwrap();
    let empty = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }];
    // SAFETY: an empty iovec names no memory.
    let n = unsafe { ring.register().update_buffers_tagged(0, &empty, &[0]) }.unwrap();
    assert_eq!(n, 1);
    assert_eq!(next(&mut ring), (200, 0, 0), "the buffer released");
    ring.register().unregister_buffers().unwrap();
    drop(buf);
}

// --- cloned buffers ------------------------------------------------------------------------

/// A `READ_FIXED` of `len` bytes of `file` into `addr` through buffer `index`: its result.
fn read_fixed(ring: &mut Ring, file: &std::fs::File, index: u16, addr: *mut u8, len: u32) -> i32 {
    let mut r = ring.sq().reserve(1).unwrap();
    r.first()
        .set_opcode(sys::IORING_OP_READ_FIXED as u8)
        .set_fd(file.as_raw_fd())
        .set_addr(addr as u64)
        .set_len(len)
        .set_off(0)
        .set_buf_index(index)
        .set_user_data(9);
    // SAFETY: `addr..addr + len` is inside memory registered with (or cloned into) this ring
    // and kept alive by the caller until this returns, which it waits for; the kernel checks
    // the range against the ring's table and fails otherwise.
    unsafe { r.commit() };
    ring.submit_and_wait(1).unwrap();
    ring.cq().pop().unwrap().raw_result()
}

#[test]
fn cloned_buffers_serve_the_clone_and_no_other_ring() {
    let test = "cloned_buffers_serve_the_clone_and_no_other_ring";
    let path = std::env::temp_dir().join(format!("uring-core-clone-{}", std::process::id()));
    std::fs::write(&path, b"cloned buffers work").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();

    let src = Ring::new(4).unwrap();
    let mut bufs = vec![0u8; 2 * 4096];
    let base = bufs.as_mut_ptr();
    let iovs: Vec<libc::iovec> = (0..2)
        .map(|i| libc::iovec {
            // SAFETY: both halves are inside `bufs`.
            iov_base: unsafe { base.add(i * 4096) }.cast(),
            iov_len: 4096,
        })
        .collect();
    // SAFETY: `bufs` outlives every ring below (dropped last), and is read only after the
    // fixed reads into it completed.
    unsafe { src.register().register_buffers(&iovs) }.unwrap();

    let mut clone = Ring::new(4).unwrap();
    // SAFETY: the cloned buffers are `bufs`, alive until after `clone` is dropped.
    let r = unsafe {
        clone
            .register()
            .clone_buffers(CloneBuffers::from_ring(src.as_fd()))
    };
    if lacks(test, &r, "IORING_REGISTER_CLONE_BUFFERS", "6.12") {
        return;
    }
    r.unwrap();
    assert_eq!(
        read_fixed(&mut clone, &file, 1, iovs[1].iov_base.cast(), 19),
        19
    );
    assert_eq!(&bufs[4096..4096 + 19], b"cloned buffers work");
    // A second clone into a ring with a table: refused unless replacing.
    // SAFETY: as above.
    let again = unsafe {
        clone
            .register()
            .clone_buffers(CloneBuffers::from_ring(src.as_fd()))
    };
    assert_eq!(errno(again), libc::EBUSY);

    // A ring the table was not cloned into: the same buffer is out of its (empty) table.
    let mut other = Ring::new(4).unwrap();
    assert_eq!(
        read_fixed(&mut other, &file, 1, iovs[1].iov_base.cast(), 19),
        -libc::EFAULT
    );

    // Only buffer 1, as the other ring's buffer 0 (Linux 6.13): buffer 0's memory is not in it.
    let part = CloneBuffers::from_ring(src.as_fd()).range(1, 1, 0);
    // SAFETY: as above.
    let r = unsafe { other.register().clone_buffers(part) };
    if lacks(test, &r, "a range of IORING_REGISTER_CLONE_BUFFERS", "6.13") {
        return;
    }
    r.unwrap();
    bufs[4096..].fill(0);
    assert_eq!(
        read_fixed(&mut other, &file, 0, iovs[1].iov_base.cast(), 19),
        19
    );
    assert_eq!(&bufs[4096..4096 + 19], b"cloned buffers work");
    assert_eq!(
        read_fixed(&mut other, &file, 0, iovs[0].iov_base.cast(), 19),
        -libc::EFAULT
    );
    // Replacing: now buffer 0 of `other` is the source's buffer 0.
    let replace = CloneBuffers::from_ring(src.as_fd())
        .range(0, 1, 0)
        .replace();
    // SAFETY: as above.
    unsafe { other.register().clone_buffers(replace) }.unwrap();
    assert_eq!(
        read_fixed(&mut other, &file, 0, iovs[0].iov_base.cast(), 6),
        6
    );
    assert_eq!(&bufs[..6], b"cloned");
    assert_eq!(
        read_fixed(&mut other, &file, 0, iovs[1].iov_base.cast(), 6),
        -libc::EFAULT
    );
    drop((clone, other, src));
    drop(bufs);
}

#[test]
fn clone_from_a_registered_ring_index() {
    let test = "clone_from_a_registered_ring_index";
    std::thread::spawn(move || {
        let src = Ring::new(4).unwrap();
        let mut buf = vec![0u8; 4096];
        let iov = [libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        }];
        // SAFETY: `buf` outlives both rings (dropped last).
        unsafe { src.register().register_buffers(&iov) }.unwrap();
        let index = src.register().register_ring_fd().unwrap();
        let dst = Ring::new(4).unwrap();
        // SAFETY: as above.
        let r = unsafe {
            dst.register()
                .clone_buffers(CloneBuffers::from_registered(index))
        };
        if !lacks(test, &r, "IORING_REGISTER_CLONE_BUFFERS", "6.12") {
            r.unwrap();
            // The table is there: a second clone is refused as such.
            // SAFETY: as above.
            let again = unsafe {
                dst.register()
                    .clone_buffers(CloneBuffers::from_registered(index))
            };
            assert_eq!(errno(again), libc::EBUSY);
        }
        drop((dst, src));
        drop(buf);
    })
    .join()
    .unwrap();
}

// --- clock ---------------------------------------------------------------------------------

#[test]
fn waits_end_at_a_deadline_on_the_registered_clock() {
    let test = "waits_end_at_a_deadline_on_the_registered_clock";
    let mut ring = Ring::new(4).unwrap();
    let r = ring.register().register_clock(Clock::Boottime);
    if lacks(test, &r, "IORING_REGISTER_CLOCK", "6.12") {
        return;
    }
    r.unwrap();
    let start = Instant::now();
    let deadline = Clock::Boottime.now() + Duration::from_millis(100);
    // Read as a relative timeout, the deadline would be decades away: this would hang.
    assert!(matches!(
        ring.cq().wait_until(1, deadline),
        Err(Error::Timeout)
    ));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(90), "ended early: {took:?}");
    assert!(took < Duration::from_secs(5), "ended late: {took:?}");
    // A deadline already past: at once.
    let start = Instant::now();
    assert!(matches!(
        ring.cq().wait_until(1, Clock::Boottime.now()),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() < Duration::from_secs(1));
    // Completions end it first.
    push_nops(&mut ring, 1, 5);
    ring.submit().unwrap();
    let far = Clock::Boottime.now() + Duration::from_secs(60);
    assert_eq!(ring.cq().wait_until(1, far).unwrap(), 1);
    assert_eq!(ring.cq().pop().unwrap().user_data(), 5);
    ring.register().register_clock(Clock::Monotonic).unwrap();
    let start = Instant::now();
    let deadline = Clock::Monotonic.now() + Duration::from_millis(50);
    assert!(matches!(
        ring.cq().wait_until(1, deadline),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() >= Duration::from_millis(45));
    // The two clocks differ only by the time the machine spent suspended.
    let gap = Clock::Boottime.now().saturating_sub(Clock::Monotonic.now());
    if gap < Duration::from_secs(1) {
        skip(
            test,
            format_args!(
                "(partly) BOOTTIME is only {gap:?} ahead of MONOTONIC here (never suspended): \
                 a wait cannot tell which clock the kernel used"
            ),
        );
    } else {
        // On BOOTTIME a MONOTONIC reading is in the past: the wait ends at once.
        ring.register().register_clock(Clock::Boottime).unwrap();
        let start = Instant::now();
        let deadline = Clock::Monotonic.now() + Duration::from_millis(200);
        assert!(matches!(
            ring.cq().wait_until(1, deadline),
            Err(Error::Timeout)
        ));
        assert!(start.elapsed() < Duration::from_millis(150));
    }
}

// --- NAPI ----------------------------------------------------------------------------------

/// The NAPI lines of the ring's `/proc/self/fdinfo` entry.
fn napi_fdinfo(ring: &Ring) -> String {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", ring.as_raw_fd())).unwrap();
    info.lines()
        .filter(|l| l.to_ascii_lowercase().contains("napi"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn napi_settings_are_set_reported_and_cleared() {
    let test = "napi_settings_are_set_reported_and_cleared";
    let ring = Ring::new(4).unwrap();
    let first = Napi {
        busy_poll_timeout: Duration::from_micros(50),
        prefer_busy_poll: true,
        tracking: NapiTracking::Dynamic,
    };
    let r = ring.register().register_napi(first);
    if lacks(test, &r, "IORING_REGISTER_NAPI", "6.9") {
        return;
    }
    let before = r.unwrap();
    assert!(!before.prefer_busy_poll);
    assert!(
        napi_fdinfo(&ring).contains("enabled"),
        "{}",
        napi_fdinfo(&ring)
    );
    let second = Napi::new(Duration::from_micros(100));
    assert_eq!(ring.register().register_napi(second).unwrap(), first);
    let last = ring.register().unregister_napi().unwrap();
    assert_eq!(
        (last.busy_poll_timeout, last.prefer_busy_poll),
        (Duration::from_micros(100), false)
    );
    assert!(
        napi_fdinfo(&ring).contains("disabled"),
        "{}",
        napi_fdinfo(&ring)
    );
    // Static tracking (6.13): ids added and removed by hand; adding needs static tracking.
    let id = 1 << 24;
    assert_eq!(errno(ring.register().napi_add_id(id)), libc::EINVAL);
    let fixed = Napi {
        tracking: NapiTracking::Static,
        ..second
    };
    let r = ring.register().register_napi(fixed);
    if lacks(test, &r, "static NAPI tracking", "6.13") {
        return;
    }
    assert_eq!(r.unwrap().tracking, NapiTracking::Inactive);
    assert!(
        napi_fdinfo(&ring).contains("static"),
        "{}",
        napi_fdinfo(&ring)
    );
    ring.register().napi_add_id(id).unwrap();
    assert_eq!(errno(ring.register().napi_add_id(id)), libc::EEXIST);
    ring.register().napi_del_id(id).unwrap();
    assert_eq!(errno(ring.register().napi_del_id(id)), libc::ENOENT);
    // Not a NAPI id: those start past the CPU ids.
    assert_eq!(errno(ring.register().napi_add_id(1)), libc::EINVAL);
}

// --- SEND_MSG_RING -------------------------------------------------------------------------

#[test]
fn a_message_without_a_ring_posts_its_completion() {
    let test = "a_message_without_a_ring_posts_its_completion";
    let mut target = Ring::new(4).unwrap();
    // SAFETY: 77 and 78 are no user data of this test's own SQEs.
    let r = unsafe { send_msg_ring(target.as_fd(), 77, 5, None) };
    if lacks(test, &r, "IORING_REGISTER_SEND_MSG_RING", "6.13") {
        return;
    }
    r.unwrap();
    assert_eq!(next(&mut target), (77, 5, 0));
    // SAFETY: as above.
    unsafe { send_msg_ring(target.as_fd(), 78, -3, Some(0x1234_0000)) }.unwrap();
    assert_eq!(next(&mut target), (78, -3, 0x1234_0000));
    let (r, _w) = pipe();
    // SAFETY: not a ring: nothing is posted.
    let refused = unsafe { send_msg_ring(r.as_fd(), 1, 0, None) };
    assert_eq!(errno(refused), libc::EBADFD);
    // A disabled ring takes no message.
    let disabled = Builder::new(4).disabled().build().unwrap();
    // SAFETY: refused, nothing is posted.
    let refused = unsafe { send_msg_ring(disabled.as_fd(), 1, 0, None) };
    assert_eq!(errno(refused), libc::EBADFD);
}

// --- QUERY ---------------------------------------------------------------------------------

#[test]
fn query_agrees_with_the_probe_and_setup() {
    let test = "query_agrees_with_the_probe_and_setup";
    let q = query_opcodes();
    if lacks(test, &q, "IORING_REGISTER_QUERY", "6.18") {
        return;
    }
    let q = q.unwrap();
    let ring = Ring::new(4).unwrap();
    let probe = ring.register().probe().unwrap();
    assert_eq!(q.request_opcodes, u32::from(probe.last_op()) + 1);
    assert_eq!(q.features, ring.info().features);
    assert!(q.register_opcodes > sys::IORING_REGISTER_QUERY, "{q:?}");
    assert!(q.sqe_flags.contains(SqeFlags::all()), "{q:?}");
    assert!(q.setup_flags.contains(ring.info().flags), "{q:?}");
    assert_ne!(q.enter_flags & sys::IORING_ENTER_GETEVENTS, 0);
    for (name, r) in [
        ("IO_URING_QUERY_ZCRX", query_zcrx().map(drop)),
        ("IO_URING_QUERY_SCQ", query_scq().map(drop)),
    ] {
        match r {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => skip(
                test,
                format_args!("(partly) the kernel has no {name} query ({e})"),
            ),
            Err(e) => panic!("{name}: {e}"),
        }
    }
    if let (Ok(scq), Ok(z)) = (query_scq(), query_zcrx()) {
        assert!(
            scq.header_size > 0 && scq.header_alignment.is_power_of_two(),
            "{scq:?}"
        );
        assert!(z.rq_header_alignment.is_power_of_two(), "{z:?}");
    }
}

// --- BPF filters ---------------------------------------------------------------------------

/// Refuses SQEs whose user data's low word is 13 (little-endian: its first 4 bytes).
fn deny_13() -> [libc::sock_filter; 4] {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    [
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, 13),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 1),
    ]
}

fn nop_result(ring: &mut Ring, user_data: u64) -> i32 {
    push_nops(ring, 1, user_data);
    ring.submit_and_wait(1).unwrap();
    let cqe = ring.cq().pop().unwrap();
    assert_eq!(cqe.user_data(), user_data);
    cqe.raw_result()
}

#[test]
fn bpf_filters_refuse_what_they_reject() {
    let test = "bpf_filters_refuse_what_they_reject";
    let mut ring = Ring::new(4).unwrap();
    assert!(matches!(
        ring.register()
            .register_bpf_filter(&BpfFilter::new(sys::IORING_OP_NOP as u8, &[])),
        Err(Error::Register { .. })
    ));
    let prog = deny_13();
    let r = ring
        .register()
        .register_bpf_filter(&BpfFilter::new(sys::IORING_OP_NOP as u8, &prog));
    if lacks(test, &r, "IORING_REGISTER_BPF_FILTER", "7.0") {
        return;
    }
    r.unwrap();
    assert_eq!(nop_result(&mut ring, 13), -libc::EACCES);
    assert_eq!(nop_result(&mut ring, 14), 0);
    // The task's own filters apply to the rings it sets up afterwards (a thread of its own:
    // they cannot be removed).
    std::thread::spawn(move || {
        let before = Ring::new(4).unwrap();
        let filter = BpfFilter::new(sys::IORING_OP_NOP as u8, &prog);
        uring_core::register_task_bpf_filter(&filter).unwrap();
        let mut after = Ring::new(4).unwrap();
        assert_eq!(nop_result(&mut after, 13), -libc::EACCES);
        assert_eq!(nop_result(&mut after, 12), 0);
        let mut before = before;
        assert_eq!(
            nop_result(&mut before, 13),
            0,
            "rings set up before are unaffected"
        );
    })
    .join()
    .unwrap();
}

// --- zero-copy receive ---------------------------------------------------------------------

#[test]
fn zcrx_ctrl_names_queues_by_id() {
    let test = "zcrx_ctrl_names_queues_by_id";
    let ring = Ring::new(4).unwrap();
    match ring.register().zcrx_flush_rq(0) {
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => skip(
            test,
            format_args!("IORING_REGISTER_ZCRX_CTRL needs Linux 6.19 ({e})"),
        ),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => skip(
            test,
            format_args!("kernel built without CONFIG_IO_URING_ZCRX ({e})"),
        ),
        other => panic!("a ring with no zero-copy receive queue: {other:?}"),
    }
    assert!(ring.register().zcrx_export(0).is_err());
}

/// Zero-copy receive needs a NIC with header split and queue management (or, from Linux 7.1,
/// none at all): every interface of this machine is tried, and the test says which refused.
#[test]
fn zcrx_ifq_registers_where_a_capable_device_exists() {
    let test = "zcrx_ifq_registers_where_a_capable_device_exists";
    let b = Builder::new(8).single_issuer().defer_taskrun().cqe32();
    let Some(ring) = common::build_or_skip(test, &b) else {
        return;
    };
    const AREA: usize = 1 << 21;
    // SAFETY: a fresh anonymous mapping, checked below.
    let area = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            AREA,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(area, libc::MAP_FAILED);
    // SAFETY: the mapping is unmapped only after the ring is dropped (below), and not
    // touched by this test.
    let zarea = unsafe { uring_core::ZcrxArea::from_raw(area.cast(), AREA) };
    let mut tried = Vec::new();
    let mut candidates = vec![(
        "(no device)".to_string(),
        uring_core::ZcrxIfqReg::without_device(64, zarea),
    )];
    for entry in std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(index) = std::fs::read_to_string(entry.path().join("ifindex")) else {
            continue;
        };
        if let Ok(index) = index.trim().parse() {
            candidates.push((name, uring_core::ZcrxIfqReg::new(index, 0, 64, zarea)));
        }
    }
    let mut registered = None;
    for (name, reg) in &candidates {
        // SAFETY: the area is left alone until the ring is dropped.
        match unsafe { ring.register().register_zcrx_ifq(reg) } {
            Ok(ifq) => {
                registered = Some((name.clone(), ifq));
                break;
            }
            Err(e) => tried.push(format!(
                "{name}: {}",
                e.raw_os_error()
                    .map_or(e.to_string(), |n| std::io::Error::from_raw_os_error(n)
                        .to_string())
            )),
        }
    }
    match registered {
        Some((name, ifq)) => {
            assert!(ifq.rq_entries >= 64, "{name}: {ifq:?}");
            assert!(ifq.rq_size >= 4096 + 64 * 16, "{name}: {ifq:?}");
            assert_ne!(ifq.rq_mmap_offset, 0, "{name}: {ifq:?}");
            let flushed = ring.register().zcrx_flush_rq(ifq.id);
            assert!(flushed.is_ok() || flushed.unwrap_err().raw_os_error() == Some(libc::EINVAL));
        }
        None => skip(
            test,
            format_args!("no zero-copy receive capable device: {}", tried.join("; ")),
        ),
    }
    drop(ring);
    // SAFETY: the ring that might have written the area is gone.
    unsafe { libc::munmap(area, AREA) };
    let _ = std::io::stderr().flush();
}

// --- registered wait arguments -------------------------------------------------------------

#[test]
fn registered_wait_arguments_time_waits() {
    let test = "registered_wait_arguments_time_waits";
    let mut ring = Builder::new(4).disabled().build().unwrap();
    let r = ring.register().register_wait_args(4);
    if lacks(test, &r, "IORING_REGISTER_MEM_REGION", "6.13") {
        return;
    }
    let mut args = r.unwrap();
    assert!(args.len() >= 4, "{args:?}");
    assert_eq!(errno(ring.register().register_wait_args(4)), libc::EBUSY);
    ring.register().enable_rings().unwrap();
    args.set(0, Some(Duration::from_millis(80)), Duration::ZERO)
        .unwrap();
    args.set(1, None, Duration::ZERO).unwrap();
    let start = Instant::now();
    assert!(matches!(
        ring.cq().wait_with_args(1, &args, 0),
        Err(Error::Timeout)
    ));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(70) && took < Duration::from_secs(5),
        "{took:?}"
    );
    push_nops(&mut ring, 1, 3);
    ring.submit().unwrap();
    assert_eq!(ring.cq().wait_with_args(1, &args, 1).unwrap(), 1);
    assert_eq!(ring.cq().pop().unwrap().user_data(), 3);
    assert!(matches!(
        ring.cq().wait_with_args(1, &args, args.len()),
        Err(Error::Register { .. })
    ));
    assert!(matches!(
        args.set(args.len(), None, Duration::ZERO),
        Err(Error::Register { .. })
    ));
    let mut other = Ring::new(4).unwrap();
    assert!(matches!(
        other.cq().wait_with_args(1, &args, 0),
        Err(Error::Register { .. })
    ));
    // Only a disabled ring takes a region.
    assert_eq!(errno(other.register().register_wait_args(1)), libc::EINVAL);
    assert!(matches!(
        ring.register().register_wait_args(0),
        Err(Error::Register { .. })
    ));
}
