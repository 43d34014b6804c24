//! Real-kernel tests of waitid.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Command;
use uring_ops::ops::{WaitId, WaitStatus};
use uring_ops::{Error, Target, Uring};

#[test]
fn waitid_reaps_an_exited_child_with_its_status() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, WaitId);
    let child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
    let pid = child.id();
    let t = ring.push(WaitId::pid(pid)).unwrap();
    let WaitStatus {
        pid: got,
        code,
        status,
        ..
    } = ring.wait(t).unwrap().unwrap();
    assert_eq!((got, code, status), (pid, libc::CLD_EXITED, 7));
    // Reaped: a second wait finds no such child.
    let t = ring.push(WaitId::pid(pid)).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::ECHILD)
    );
    std::mem::forget(child); // reaped above; std's handle must not wait again
}

#[test]
fn waitid_through_a_pidfd_sees_a_killed_child() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, WaitId);
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        child.kill().unwrap();
        child.wait().unwrap();
        common::skip("pidfd_open is not available");
        return;
    }
    // SAFETY: a new descriptor nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let t = ring.push(WaitId::pidfd(pidfd)).unwrap();
    ring.submit().unwrap();
    // SAFETY: kill has no memory preconditions; `pid` is our child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let st = ring.wait(t).unwrap().unwrap();
    assert_eq!(
        (st.pid, st.code, st.status),
        (pid, libc::CLD_KILLED, libc::SIGKILL)
    );
    std::mem::forget(child);

    let err = ring.push(WaitId::pidfd(Target::fixed(1))).unwrap_err();
    assert!(matches!(
        err.error,
        Error::FixedFileNotAccepted { op: "WaitId", .. }
    ));
}
