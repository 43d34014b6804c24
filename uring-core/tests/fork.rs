//! A forked child cannot use a ring its parent set up, and never enters the kernel with its
//! parent's registered ring fd.
//!
//! The child inherits the ring's fd, and its memory shared with the parent, but its copy of
//! the queues keeps the parent's positions. At the fork the child's view of the ring memory is
//! replaced by a private copy, and every step that would reach the kernel or the parent's
//! completions is refused with `Error::ForkedChild`, so the parent's ring is undisturbed. The
//! kernel's table of registered rings (`IORING_REGISTER_RING_FDS`) belongs to the task and is
//! not inherited by a forked child, but the child's memory, thread-locals included, is a copy
//! of the forking thread's: a child that believed it was the registering thread would
//! unregister an index that means nothing in its own table.
//!
//! This file holds one test so that it runs in a process of its own: forking a test binary
//! whose other tests run on other threads would copy their state mid-way. The child only
//! touches the ring and reads `/proc/self/maps` (no printing, no panic) and reports through its
//! exit status.
// Real io_uring system calls and fork: Miri can run neither.
#![cfg(not(miri))]

mod common;

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;
use uring_core::{sys, Backend, Error, Ring, Sqe};

/// The child's exit statuses besides 0 (success).
const NO_ROOM: i32 = 2;
const NO_COMPLETION: i32 = 3;
const WRONG_COMPLETION: i32 = 4;
const STALE_UNREGISTER: i32 = 5;
const CHILD_REGISTER: i32 = 6;
const DROP_UNREGISTERED: i32 = 7;
const RESERVED: i32 = 8;
const PUSHED: i32 = 9;
const SUBMITTED: i32 = 10;
const WAITED: i32 = 11;
const REAPED: i32 = 12;
const FLUSHED: i32 = 13;
const ENTERED: i32 = 14;
const SHARED: i32 = 15;
const REGISTERED: i32 = 16;
/// An error with an errno `e` exits with `ERRNO + e` (errnos of interest are below 100).
const ERRNO: i32 = 100;
const USER_DATA: u64 = 0x5EED;

/// Pushes a NOP and waits for it; returns 0 if it completed with result 0, else the exit
/// status describing what went wrong. (The parent's, before and after the child.)
fn nop(ring: &mut Ring) -> i32 {
    let Ok(mut r) = ring.sq().reserve(1) else {
        return NO_ROOM;
    };
    r.first()
        .set_opcode(sys::IORING_OP_NOP as u8)
        .set_user_data(USER_DATA);
    // SAFETY: a NOP names no memory.
    unsafe { r.commit() };
    if let Err(e) = ring.submit_and_wait(1) {
        return ERRNO + e.raw_os_error().unwrap_or(99).clamp(0, 99);
    }
    match ring.cq().pop() {
        None => NO_COMPLETION,
        Some(cqe) if cqe.user_data() != USER_DATA || cqe.raw_result() != 0 => WRONG_COMPLETION,
        Some(_) => 0,
    }
}

/// Counts the mappings of the ring fd in `/proc/self/maps` (shown as `anon_inode:[io_uring]`).
fn ring_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|maps| maps.lines().filter(|l| l.contains("io_uring")).count())
        .unwrap_or(usize::MAX)
}

/// Tries every use of the inherited queues. Writing SQEs works, into the child's private copy
/// of the ring memory (the parent's mapping is gone from the child); every step that would
/// reach the kernel or hand out a completion is refused with `ForkedChild` (or, for the calls
/// that cannot fail, does nothing), and the kernel is never entered. Returns 0, or the exit
/// status naming the first use that was not refused.
///
/// Runs in the child: cannot panic on any path the kernel can reach.
fn uses_are_refused(ring: &mut Ring) -> i32 {
    let forked = |r: Result<u32, Error>| matches!(r, Err(Error::ForkedChild));
    let entered = ring.backend().enter_count();
    if ring_mappings() != 0 {
        return SHARED;
    }
    // Into the child's own copy of the SQ: harmless, and not refused.
    match ring.sq().reserve(1) {
        Ok(mut r) => {
            r.first()
                .set_opcode(sys::IORING_OP_NOP as u8)
                .set_user_data(USER_DATA);
            // SAFETY: a NOP names no memory.
            unsafe { r.commit() };
        }
        Err(_) => return RESERVED,
    }
    let mut sqe = Sqe::zeroed();
    sqe.set_opcode(sys::IORING_OP_NOP as u8)
        .set_user_data(USER_DATA);
    // SAFETY: a NOP names no memory.
    if unsafe { ring.push(&sqe) }.is_err() {
        return PUSHED;
    }
    if !forked(ring.submit()) || !forked(ring.submit_and_wait(1)) {
        return SUBMITTED;
    }
    if !forked(ring.sq().wait_for_room(1)) {
        return SUBMITTED;
    }
    if !forked(ring.wait(1))
        || !forked(ring.wait_timeout(1, Duration::from_millis(10)))
        || !forked(ring.cq().wait(0))
    {
        return WAITED;
    }
    if ring.cq().batch().next().is_some() || ring.cq().pop().is_some() {
        return REAPED;
    }
    if ring.sq().flush() != 0 || ring.cq().set_eventfd_enabled(false) {
        return FLUSHED;
    }
    let direct = ring.backend().enter(1, 0, 0, None);
    if direct.map_err(|e| e.raw_os_error()) != Err(Some(libc::EPERM)) {
        return ENTERED;
    }
    if ring.backend().enter_count() != entered || !ring.backend().is_inherited() {
        return ENTERED;
    }
    0
}

/// The child's whole life: every use of the inherited ring refused, then checks that the
/// parent's registration is not taken for the child's own, by unregistering or by dropping the
/// ring.
///
/// Allocates only to read `/proc/self/maps` and in the final drop (glibc's allocator is usable
/// in a fork child).
fn child(mut ring: Ring, index: u32) -> i32 {
    match uses_are_refused(&mut ring) {
        0 => {}
        failed => return failed,
    }
    // The registration is the parent's: the child may not unregister it (the index would name
    // whatever the child's own table holds there).
    match ring.register().unregister_ring_fd() {
        Err(Error::RingFd(_)) => {}
        _ => return STALE_UNREGISTER,
    }
    // The child registers the ring in its own table at the parent's index, behind the ring's
    // back (the raw system call: the ring's registrar refuses every registration in a child).
    // Dropping the ring must leave that entry alone.
    let mut up = sys::io_uring_rsrc_update {
        offset: index,
        resv: 0,
        data: ring.as_raw_fd() as u64,
    };
    // SAFETY: `up` is a live io_uring_rsrc_update, one entry: the kernel reads the fd and
    // writes the index back.
    let refused = unsafe {
        ring.register().raw(
            "IORING_REGISTER_RING_FDS",
            sys::IORING_REGISTER_RING_FDS,
            (&mut up as *mut sys::io_uring_rsrc_update).cast(),
            1,
        )
    };
    if !matches!(refused, Err(Error::ForkedChild)) {
        return REGISTERED;
    }
    // SAFETY: as above.
    let registered = unsafe {
        sys::io_uring_register(
            ring.backend().as_fd(),
            sys::IORING_REGISTER_RING_FDS,
            (&mut up as *mut sys::io_uring_rsrc_update).cast(),
            1,
        )
    };
    if registered.ok() != Some(1) || up.offset != index {
        return CHILD_REGISTER;
    }
    drop(ring);
    // The entry holds its own reference to the ring: entering through it (submitting nothing,
    // waiting for nothing) works as long as the entry is there, and fails with EBADF if the
    // drop removed it.
    // SAFETY: submits nothing; no argument pointer.
    let entered = unsafe {
        sys::io_uring_enter_raw(
            index as i32,
            0,
            0,
            sys::IORING_ENTER_REGISTERED_RING,
            std::ptr::null(),
            0,
        )
    };
    match entered {
        Ok(_) => 0,
        Err(_) => DROP_UNREGISTERED,
    }
}

fn describe(code: i32) -> String {
    match code {
        NO_ROOM => "no room in the SQ".into(),
        NO_COMPLETION => "no completion after waiting".into(),
        WRONG_COMPLETION => "a completion with the wrong user data or result".into(),
        STALE_UNREGISTER => "unregistering the parent's ring fd was not refused".into(),
        CHILD_REGISTER => "the child could not register the ring at the parent's index".into(),
        REGISTERED => "the ring's registrar was not refused with ForkedChild in the child".into(),
        DROP_UNREGISTERED => "dropping the ring removed the child's own registration".into(),
        RESERVED => "reserve failed in the child's copy of the ring".into(),
        PUSHED => "push failed in the child's copy of the ring".into(),
        SUBMITTED => "a submit (or wait_for_room) was not refused with ForkedChild".into(),
        WAITED => "a wait was not refused with ForkedChild".into(),
        REAPED => "a completion was handed out in the child".into(),
        FLUSHED => "flush or set_eventfd_enabled acted in the child".into(),
        ENTERED => "the child entered the kernel, or its ring is not inherited".into(),
        SHARED => "the child still maps the parent's ring memory".into(),
        c if c >= ERRNO => format!(
            "submit_and_wait failed: {}",
            std::io::Error::from_raw_os_error(c - ERRNO)
        ),
        c => format!("exit status {c}"),
    }
}

#[test]
fn forked_child_cannot_use_the_ring_nor_the_parents_registered_ring_fd() {
    let mut ring = Ring::new(4).unwrap();
    // Registered from this thread: the one that forks.
    let index = match ring.register().register_ring_fd() {
        Ok(index) => index,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            common::skip(
                "forked_child_cannot_use_the_ring_nor_the_parents_registered_ring_fd",
                "this kernel refuses IORING_REGISTER_RING_FDS with EINVAL (too old?)",
            );
            return;
        }
        Err(e) => panic!("register_ring_fd: {e}"),
    };
    assert_eq!(ring.backend().registered_index(), Some(index));
    assert!(ring_mappings() > 0, "the parent maps its ring");
    // The parent's own entries go through the index and work.
    let enters = ring.backend().enter_count();
    let code = nop(&mut ring);
    assert_eq!(code, 0, "in the parent: {}", describe(code));
    assert!(ring.backend().enter_count() > enters);

    // SAFETY: the child runs only `child` (ring operations that take no lock another thread
    // could have held at the fork, and allocate nothing but a `free`) and then `_exit`, which
    // skips every destructor and atexit handler of the copied process state.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = child(ring, index);
        // SAFETY: ends the child at once, as above.
        unsafe { libc::_exit(code) };
    }

    // The child shares the ring memory: stay off the ring until it has exited.
    let mut status = 0;
    loop {
        // SAFETY: `status` is a live, writable int; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.raw_os_error(), Some(libc::EINTR), "waitpid: {err}");
    }
    assert!(libc::WIFEXITED(status), "child did not exit: {status:#x}");
    let code = libc::WEXITSTATUS(status);
    assert_eq!(code, 0, "child: {}", describe(code));
    // The parent's registration is untouched by the child, and so is its ring, which it goes
    // on using.
    assert_eq!(ring.backend().registered_index(), Some(index));
    assert!(!ring.backend().is_inherited());
    let code = nop(&mut ring);
    assert_eq!(
        code,
        0,
        "in the parent, after the child: {}",
        describe(code)
    );
}
