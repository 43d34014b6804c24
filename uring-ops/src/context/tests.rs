use super::*;
use crate::ops::{Nop, Readv, Writev};
use std::time::Duration;
use std::time::Instant;

/// On an SQPOLL ring a waiter does not wait for the SQ lock before waiting: its holder may
/// be a push waiting for the poller to make room, for as long as the poller is busy, while
/// the waiter's op is done already. Here the test holds the SQ lock itself, so a waiter
/// that took it would block until the end of the test.
#[test]
fn sqpoll_waiters_do_not_wait_behind_the_sq_lock() {
    let builder = Builder::new(4).sqpoll(Duration::from_millis(5));
    let ctx = match Context::with_builder(&builder) {
        Ok(ctx) => ctx,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => {
            // Straight to stderr: the test harness captures `eprintln!`.
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!("sqpoll_waiters_do_not_wait_behind_the_sq_lock: skipped: no SQPOLL ring here: {e}\n"),
            );
            return;
        }
        Err(e) => panic!("setup: {e}"),
    };
    // Tells its completion from `done`'s: 9, or EINVAL where NOP refuses the flag (6.1).
    let t = ctx.push(Nop::new().inject_result(9)).unwrap();
    let done = ctx.push(Nop::new()).unwrap();
    assert_eq!(ctx.wait(done).unwrap().unwrap(), 0);
    let guard = lock(&ctx.sq);
    let (finished, got) = std::thread::scope(|s| {
        let waiter = s.spawn(|| ctx.wait_timeout(t, Duration::from_secs(10)));
        let start = Instant::now();
        while !waiter.is_finished() && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let finished = waiter.is_finished();
        drop(guard);
        (finished, waiter.join().unwrap())
    });
    assert!(finished, "the waiter blocked on the SQ lock");
    match got {
        Ok(crate::Outcome::Done(Ok(res))) => assert_eq!(res, 9),
        Ok(crate::Outcome::Done(Err(e))) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL)),
        _ => panic!("the NOP did not complete"),
    }
}

/// The allowlist is the kernel's too: with the library's own check bypassed, a refused
/// opcode fails in the kernel with `EACCES`, and allowed ones (with SQE flags) still run.
#[test]
fn kernel_enforces_the_allowlist() {
    let mut ctx = Context::builder(8)
        .allow::<Readv<Vec<u8>>>()
        .allow::<Nop>()
        .build()
        .unwrap();
    let f = crate::Fd::new(std::fs::File::open("/dev/null").unwrap());
    let refused = ctx
        .push(Writev::new(&f, vec![vec![0u8; 4]], 0))
        .unwrap_err();
    assert!(matches!(refused.error, Error::NotAllowed { op: "WRITEV" }));
    ctx.ops = OpCheck::new(OpSet::all(), OpSet::all());
    let t = ctx.push(Writev::new(&f, vec![vec![0u8; 4]], 0)).unwrap();
    let (res, _) = ctx.wait(t).unwrap();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EACCES));
    let t = ctx.push(crate::OpExt::asynchronous(Nop::new())).unwrap();
    assert_eq!(ctx.wait(t).unwrap().unwrap(), 0);
}

/// `allow_register` alone restricts the ring too (it used to build an unrestricted one):
/// no op is allowed, by the library or by the kernel, and only the register op named.
#[test]
fn allow_register_alone_restricts_the_ring() {
    let personality = |ctx: &Context| {
        // SAFETY: IORING_REGISTER_PERSONALITY takes no argument (null, 0).
        unsafe {
            sys::io_uring_register(
                ctx.as_fd(),
                sys::IORING_REGISTER_PERSONALITY,
                std::ptr::null_mut(),
                0,
            )
        }
    };
    let mut ctx = Context::builder(8)
        .allow_register(sys::IORING_REGISTER_PERSONALITY as u8)
        .build()
        .unwrap();
    assert!(personality(&ctx).unwrap() > 0);
    let refused = ctx.push(Nop::new()).unwrap_err();
    assert!(matches!(refused.error, Error::NotAllowed { op: "NOP" }));
    let f = crate::Fd::new(std::fs::File::open("/dev/null").unwrap());
    ctx.ops = OpCheck::new(OpSet::all(), OpSet::all());
    let t = ctx.push(Writev::new(&f, vec![vec![0u8; 4]], 0)).unwrap();
    let (res, _) = ctx.wait(t).unwrap();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EACCES));
}

/// `restrict` with nothing allowed: every op is refused, by the library and (with the
/// library's check bypassed) by the kernel, and so is every registration; the context's
/// own SQEs (the wake-up NOP, the cancel on drop) still run.
#[test]
fn kernel_enforces_an_empty_allowlist() {
    let mut ctx = Context::builder(8).restrict().build().unwrap();
    for op in [
        sys::IORING_OP_NOP,
        sys::IORING_OP_WRITEV,
        sys::IORING_OP_READV,
    ] {
        assert!(!ctx.allows(op as u8), "{op}");
    }
    let refused = ctx.push(Nop::new()).unwrap_err();
    assert!(matches!(refused.error, Error::NotAllowed { op: "NOP" }));
    // SAFETY: IORING_REGISTER_PERSONALITY takes no argument (null, 0).
    let reg = unsafe {
        sys::io_uring_register(
            ctx.as_fd(),
            sys::IORING_REGISTER_PERSONALITY,
            std::ptr::null_mut(),
            0,
        )
    };
    assert_eq!(reg.unwrap_err().raw_os_error(), Some(libc::EACCES));
    ctx.wake().unwrap();
    assert!(ctx.wait_completions().unwrap().is_empty());
    let f = crate::Fd::new(std::fs::File::open("/dev/null").unwrap());
    ctx.ops = OpCheck::new(OpSet::all(), OpSet::all());
    let t = ctx.push(Writev::new(&f, vec![vec![0u8; 4]], 0)).unwrap();
    let (res, _) = ctx.wait(t).unwrap();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EACCES));
    // A read of a pipe nobody writes stays in flight until the drop cancels it: the
    // context's own ASYNC_CANCEL is allowed by the kernel.
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe returned two new descriptors that nothing else owns.
    let (rx, _tx) = unsafe {
        use std::os::fd::{FromRawFd, OwnedFd};
        (
            crate::Fd::new(OwnedFd::from_raw_fd(fds[0])),
            OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let read = ctx
        .push(Readv::new(&rx, vec![vec![0u8; 4]], u64::MAX))
        .unwrap();
    ctx.detach(read);
    let start = Instant::now();
    drop(ctx);
    assert!(
        start.elapsed() < DROP_DRAIN_TIMEOUT,
        "{:?}",
        start.elapsed()
    );
}

/// Registration is refused once the ring is restricted, except the register ops allowed.
#[test]
fn kernel_enforces_allowed_register_ops() {
    let register = |ctx: &Context, op| {
        // SAFETY: PERSONALITY and ENABLE_RINGS take no argument (null, 0).
        unsafe { sys::io_uring_register(ctx.as_fd(), op, std::ptr::null_mut(), 0) }
    };
    let personality = |ctx: &Context| register(ctx, sys::IORING_REGISTER_PERSONALITY);
    let closed = Context::builder(8).allow::<Nop>().build().unwrap();
    let err = personality(&closed).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    // The one register op every allowlist names (see `restrict`) does nothing any more.
    let err = register(&closed, sys::IORING_REGISTER_ENABLE_RINGS).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADFD));
    let open = Context::builder(8)
        .allow::<Nop>()
        .allow_register(sys::IORING_REGISTER_PERSONALITY as u8)
        .build()
        .unwrap();
    assert!(personality(&open).unwrap() > 0);
}
