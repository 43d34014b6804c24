//! Real-kernel tests of epoll_ctl and epoll_wait.

mod common;

use common::pipe;
use std::io::Write as _;
use std::os::fd::{FromRawFd, OwnedFd};
use uring_ops::ops::{EpollCtl, EpollEvent, EpollEvents, EpollWait, EPOLL_MAX_EVENTS};
use uring_ops::{Error, Fd, Target, Uring};

fn epoll() -> Fd {
    // SAFETY: epoll_create1 has no memory preconditions; it returns a new descriptor.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: a new descriptor nothing else owns.
    Fd::new(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Events ready now (`epoll_wait` with no timeout).
fn ready(ep: &Fd) -> Vec<(u32, u64)> {
    use std::os::fd::AsRawFd;
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
    // SAFETY: `evs` has room for 8 events.
    let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), 8, 0) };
    assert!(n >= 0);
    evs[..n as usize]
        .iter()
        .map(|e| (e.events, e.u64))
        .collect()
}

#[test]
fn epoll_ctl_adds_modifies_and_deletes() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, EpollCtl);
    let ep = epoll();
    let (rx, tx) = pipe();
    std::fs::File::from(tx).write_all(b"x").unwrap();
    let t = ring
        .push(EpollCtl::add(&ep, &rx, EpollEvents::IN, 42))
        .unwrap();
    ring.wait(t).unwrap().unwrap();
    assert_eq!(
        ready(&ep),
        [(libc::EPOLLIN as u32 | libc::EPOLLHUP as u32, 42)]
    );
    let t = ring
        .push(EpollCtl::add(&ep, &rx, EpollEvents::IN, 1))
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EEXIST)
    );
    let t = ring
        .push(EpollCtl::modify(&ep, &rx, EpollEvents::IN, 43))
        .unwrap();
    ring.wait(t).unwrap().unwrap();
    assert_eq!(ready(&ep)[0].1, 43);
    let t = ring.push(EpollCtl::delete(&ep, &rx)).unwrap();
    ring.wait(t).unwrap().unwrap();
    assert!(ready(&ep).is_empty());
    // Both descriptors travel as numbers: slots are refused.
    let err = ring
        .push(EpollCtl::add(&ep, Target::fixed(0), EpollEvents::IN, 0))
        .unwrap_err();
    assert!(matches!(
        err.error,
        Error::FixedFileNotAccepted {
            op: "EpollCtl",
            what: "the file",
            ..
        }
    ));
}

#[test]
fn epoll_wait_returns_the_ready_events() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, EpollWait);
    let ep = epoll();
    let (rx, tx) = pipe();
    use std::os::fd::AsRawFd;
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 7,
    };
    // SAFETY: adds the pipe's read end; `ev` is read during the call.
    let r =
        unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, rx.as_raw_fd(), &mut ev) };
    assert_eq!(r, 0);
    let t = ring.push(EpollWait::new(&ep, 4).unwrap()).unwrap();
    ring.submit().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(10));
    ring.reap();
    assert!(!ring.is_done(&t), "nothing is ready yet");
    std::fs::File::from(tx).write_all(b"now").unwrap();
    let events = ring.wait(t).unwrap().unwrap();
    assert_eq!(events.len(), 1);
    let EpollEvent { events, data } = events[0];
    assert!(events.contains(EpollEvents::IN));
    assert_eq!(data, 7);

    for bad in [0, EPOLL_MAX_EVENTS + 1] {
        assert!(matches!(
            EpollWait::new(&ep, bad),
            Err(Error::OutOfRange(r)) if r.op == "EpollWait" && r.value == u64::from(bad)
        ));
    }
}
