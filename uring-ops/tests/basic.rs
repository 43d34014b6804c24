//! First real-kernel checks of typed ops and ownership.

mod common;

use common::{pipe, tagged_nop};
use std::io::{Read as _, Write as _};
use uring_ops::ops::{Nop, Read, Readv, Write, Writev};
use uring_ops::{Error, Fd, OpExt, Target, Uring};

fn temp_file(name: &str, contents: &[u8]) -> (Fd, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("uring-ops-{}-{name}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.write_all(contents).unwrap();
    (Fd::new(f), path)
}

#[test]
fn nop_and_injected_result() {
    if !nop_injects_or_skip!("nop_and_injected_result") {
        return;
    }
    let mut ring = Uring::new(8).unwrap();
    let a = ring.push(Nop::new()).unwrap();
    let b = ring.push(Nop::new().inject_result(-libc::EPERM)).unwrap();
    assert_eq!(ring.wait(a).unwrap().unwrap(), 0);
    let err = ring.wait(b).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    assert_eq!(ring.in_flight(), 0);
}

/// A result that is neither a count nor an errno is refused at push (it would otherwise reach
/// the completion as a value no errno conversion can hold: `-i32::MIN` overflows).
#[test]
fn an_injected_result_below_the_errnos_is_refused() {
    let mut ring = Uring::new(8).unwrap();
    for res in [i32::MIN, -4096] {
        let err = ring.push(Nop::new().inject_result(res)).unwrap_err();
        assert!(
            matches!(err.error, Error::NotAnErrno { res: r } if r == res),
            "{}",
            err.error
        );
        assert_eq!(err.error.raw_os_error(), Some(libc::EINVAL));
    }
    // The edges of what is accepted: the last errno, and the largest count.
    if !nop_injects_or_skip!("the edges of the injected results accepted") {
        return;
    }
    let a = ring.push(Nop::new().inject_result(-4095)).unwrap();
    let b = ring.push(Nop::new().inject_result(i32::MAX)).unwrap();
    assert_eq!(
        ring.wait(a).unwrap().unwrap_err().raw_os_error(),
        Some(4095)
    );
    assert_eq!(ring.wait(b).unwrap().unwrap(), i32::MAX as u32);
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn read_and_write_give_buffers_back() {
    let (f, path) = temp_file("rw", b"hello, uring");
    let mut ring = Uring::new(8).unwrap();
    let t = ring.push(Read::new(&f, vec![0u8; 5], 7)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), 5);
    assert_eq!(&buf, b"uring");
    let t = ring.push(Write::new(&f, buf, 0)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!((n.unwrap(), buf.len()), (5, 5));
    let mut s = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "uring, uring");
    // A read into spare capacity grows the Vec's length to the count.
    let t = ring.push(Read::new(&f, Vec::with_capacity(64), 0)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), 12);
    assert_eq!(buf, b"uring, uring");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn readv_and_writev() {
    let (f, path) = temp_file("rwv", b"");
    let mut ring = Uring::new(8).unwrap();
    let bufs = vec![b"abc".to_vec(), b"defg".to_vec()];
    let t = ring.push(Writev::new(&f, bufs, 0)).unwrap();
    let (n, _) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), 7);
    let bufs: Vec<Box<[u8]>> = vec![vec![0; 2].into(), vec![0; 10].into()];
    let t = ring.push(Readv::new(&f, bufs, 0)).unwrap();
    let (n, bufs) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), 7);
    assert_eq!(&bufs[0][..], b"ab");
    assert_eq!(&bufs[1][..5], b"cdefg");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn queue_full_gives_the_op_back() {
    let mut ring = Uring::new(2).unwrap();
    let _a = ring.push(Nop::new()).unwrap();
    let _b = ring.push(Nop::new()).unwrap();
    let err = ring
        .push(Read::new(Target::fixed(0), vec![7u8; 3], 0))
        .unwrap_err();
    assert!(
        matches!(err.error, Error::QueueFull { needed: 1, free: 0 }),
        "{err}"
    );
    assert_eq!(err.op.into_buf(), vec![7u8; 3]);
}

#[test]
fn dropped_and_forgotten_tickets_keep_buffers_alive() {
    let (rx, tx) = pipe();
    let mut ring = Uring::new(8).unwrap();
    let a = ring.push(Read::new(&rx, vec![0u8; 4], u64::MAX)).unwrap();
    let b = ring.push(Read::new(&rx, vec![0u8; 4], u64::MAX)).unwrap();
    ring.submit().unwrap();
    drop(a);
    // Tickets have no destructor by design; forgetting one must be as safe as dropping it.
    #[allow(clippy::forget_non_drop)]
    std::mem::forget(b);
    // The kernel writes into both buffers after their tickets are gone.
    let mut w = std::fs::File::from(tx);
    w.write_all(b"12345678").unwrap();
    let t = ring.push(Nop::new()).unwrap();
    ring.wait(t).unwrap().unwrap();
    while ring.in_flight() > 0 {
        ring.submit_and_wait(1).unwrap();
        ring.reap();
    }
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn dropping_the_ring_with_ops_in_flight_cancels_them() {
    let (rx, _tx) = pipe();
    let mut ring = Uring::new(8).unwrap();
    for _ in 0..4 {
        let t = ring.push(Read::new(&rx, vec![0u8; 64], u64::MAX)).unwrap();
        drop(t);
    }
    ring.submit().unwrap();
    assert_eq!(ring.in_flight(), 4);
    let left = ring.cancel_all(std::time::Duration::from_secs(2));
    assert_eq!(left, 0, "reads of an empty pipe are cancellable");
    drop(ring);
}

/// An op whose SQE points into the op itself: a write of bytes held inline.
#[derive(Debug)]
struct InlineWrite {
    fd: std::os::fd::RawFd,
    data: [u8; 16],
}

// SAFETY: the SQE names `data`, inside the op, for 16 bytes of reads; the op keeps the default
// `SQE_POINTS_INTO_SELF = true`, so the ring prepares it at its final address. The descriptor
// is the test's pipe, open until every op is redeemed.
unsafe impl uring_ops::Op for InlineWrite {
    const OPCODE: u8 = uring_ops::core::sys::IORING_OP_WRITE as u8;
    const NAME: &'static str = "InlineWrite";
    type Output = std::io::Result<u32>;

    fn prepare(&mut self, sqe: &mut uring_ops::core::Sqe) {
        sqe.set_opcode(Self::OPCODE)
            .set_fd(self.fd)
            .set_addr(self.data.as_ptr() as u64)
            .set_len(self.data.len() as u32)
            .set_off(u64::MAX);
    }

    fn complete(self, res: i32, _flags: u32) -> std::io::Result<u32> {
        if res < 0 {
            Err(std::io::Error::from_raw_os_error(-res))
        } else {
            Ok(res as u32)
        }
    }
}

/// Fills a stretch of stack with junk, so that bytes a dangling SQE might still name are gone.
#[inline(never)]
fn scribble_stack() {
    let junk = std::hint::black_box([0xeeu8; 4096]);
    std::hint::black_box(&junk);
}

#[test]
fn an_op_pointing_into_itself_is_prepared_at_its_final_address() {
    use std::os::fd::AsRawFd;
    let (rx, tx) = pipe();
    let mut ring = Uring::new(16).unwrap();
    let mut tickets = Vec::new();
    for i in 0..8u8 {
        let op = InlineWrite {
            fd: tx.as_raw_fd(),
            data: [b'a' + i; 16],
        };
        tickets.push(ring.push(op).unwrap());
        scribble_stack();
    }
    for t in tickets {
        assert_eq!(ring.wait(t).unwrap().unwrap(), 16);
    }
    let mut got = vec![0u8; 128];
    std::fs::File::from(rx.try_into_owned().unwrap())
        .read_exact(&mut got)
        .unwrap();
    let mut chunks: Vec<&[u8]> = got.chunks(16).collect();
    chunks.sort();
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(
            *c,
            &[b'a' + i as u8; 16][..],
            "write {i} sent the op's own bytes"
        );
    }
}

/// SQE options reach the kernel: drain and async on a read (which still reads), and a
/// personality the ring never registered, which the kernel refuses (`EINVAL`).
#[test]
fn sqe_options_reach_the_kernel() {
    let (f, path) = temp_file("opts", b"data");
    let mut ring = Uring::new(4).unwrap();
    let t = ring
        .push(Read::new(&f, vec![0u8; 4], 0).drain().asynchronous())
        .unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"data"[..]));
    let t = ring
        .push(Read::new(&f, vec![0u8; 4], 0).personality(0x7fff))
        .unwrap();
    let (n, _) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap_err().raw_os_error(), Some(libc::EINVAL));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn from_ring_refuses_a_ring_with_pending_work() {
    let mut core = uring_core::Builder::new(4).build().unwrap();
    let mut r = core.sq().reserve(1).unwrap();
    r.first()
        .set_opcode(uring_core::sys::IORING_OP_NOP as u8)
        .set_user_data(0);
    // SAFETY: a NOP names no memory.
    unsafe { r.commit() };
    core.submit_and_wait(1).unwrap();
    // SAFETY: nothing else posts into this ring; the check below refuses it anyway, because a
    // completion is still waiting in the CQ.
    let err = unsafe { Uring::from_ring(core) }.unwrap_err();
    assert!(
        matches!(
            err,
            Error::RingNotQuiet {
                queued: 0,
                ready: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn raw_sqe_through_the_typed_ring() {
    let (f, path) = temp_file("raw", b"raw path!");
    let mut buf = vec![0u8; 8];
    let mut ring = Uring::new(4).unwrap();
    let mut sqe = uring_core::Sqe::zeroed();
    sqe.set_opcode(uring_core::sys::IORING_OP_READ as u8)
        .set_fd(std::os::fd::AsRawFd::as_raw_fd(&f))
        .set_addr(buf.as_mut_ptr() as u64)
        .set_len(8)
        .set_off(0)
        .set_user_data(12345);
    // SAFETY: `buf` outlives the completion, redeemed just below, and nothing else touches it.
    let t = ring.push(unsafe { uring_ops::RawSqe::new(sqe) }).unwrap();
    let c = ring.wait(t).unwrap();
    assert_eq!(c.result().unwrap(), 8);
    assert_eq!(&buf, b"raw path");
    // An opcode the kernel lacks is refused by name, with the SQE handed back.
    let mut bogus = uring_core::Sqe::zeroed();
    bogus.set_opcode(250);
    // SAFETY: refused before it reaches the kernel.
    let err = ring
        .push(unsafe { uring_ops::RawSqe::new(bogus) })
        .unwrap_err();
    assert!(
        matches!(
            err.error,
            Error::Unsupported {
                op: "UNKNOWN",
                name: "RawSqe"
            }
        ),
        "{}",
        err.error
    );
    assert_eq!(err.op.into_sqe().opcode(), 250);
    std::fs::remove_file(path).unwrap();
}

/// On an SQPOLL ring the kernel's poller consumes SQEs on its own time: a push that finds the
/// SQ full waits for it to make room instead of failing with `QueueFull` (which a push/submit
/// retry loop could only spin on). 64 NOPs through a 4-entry SQ, never calling `submit`.
#[test]
fn push_waits_for_the_sqpoll_thread_to_make_room() {
    let builder = uring_core::Builder::new(4).sqpoll(std::time::Duration::from_millis(5));
    let mut ring = match Uring::with_builder(&builder) {
        Ok(ring) => ring,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => {
            let _ = writeln!(
                std::io::stderr(),
                "push_waits_for_the_sqpoll_thread_to_make_room: skipped: no SQPOLL ring here: {e}"
            );
            return;
        }
        Err(e) => panic!("setup: {e}"),
    };
    let mut tickets = Vec::new();
    for i in 0..64 {
        let (nop, want) = tagged_nop(i);
        match ring.push(nop) {
            Ok(t) => tickets.push((t, want)),
            Err(e) => panic!("push {i} on a 4-entry SQPOLL ring: {}", e.error),
        }
    }
    for (t, want) in tickets {
        assert_eq!(ring.wait(t).unwrap().unwrap(), want);
    }
    assert_eq!(ring.in_flight(), 0);
}
