//! Real-kernel tests of the ops that make and close descriptors: openat, openat2, close,
//! pipe, fixed_fd_install, files_update; and that a descriptor nobody takes is closed.

mod common;

use common::{open_on, pipe, ring_with_slots, temp_dir};
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd, OwnedFd};
use uring_ops::ops::{
    Close, FilesUpdate, FixedFdInstall, Nop, OpenAt, OpenAt2, Pipe, Read, Resolve, Statx, Write,
};
use uring_ops::{Chain, Error, Fd, NewSlot, Target, Uring};

#[test]
fn a_file_is_created_written_closed_and_read_back() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, OpenAt);
    require_op!(ring, Close);
    let dir = temp_dir("open-create");
    let create = OpenAt::new(&dir.fd, "made")
        .unwrap()
        .flags(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC)
        .mode(0o640);
    let t = ring.push(create).unwrap();
    let fd: OwnedFd = ring.wait(t).unwrap().unwrap();
    let t = ring
        .push(Write::new(
            Fd::new(fd.try_clone().unwrap()),
            b"made by io_uring".to_vec(),
            0,
        ))
        .unwrap();
    assert_eq!(ring.wait(t).unwrap().0.unwrap(), 16);
    let t = ring.push(Close::new(fd)).unwrap();
    ring.wait(t).unwrap().unwrap();

    let meta = std::fs::metadata(dir.path.join("made")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o640 & !umask());
    // O_EXCL: a second create fails.
    let again = OpenAt::new(&dir.fd, "made")
        .unwrap()
        .flags(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL);
    let t = ring.push(again).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EEXIST)
    );

    let t = ring
        .push(OpenAt::path(dir.path.join("made")).unwrap())
        .unwrap();
    let mut f = std::fs::File::from(ring.wait(t).unwrap().unwrap());
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "made by io_uring");
}

fn umask() -> u32 {
    // SAFETY: umask only swaps a process attribute; it is set straight back.
    unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    }
}

#[test]
fn a_path_with_a_nul_is_refused_before_the_kernel() {
    let e = OpenAt::path("a\0b").unwrap_err();
    assert!(matches!(e, Error::InteriorNul { position: 1, .. }), "{e:?}");
    assert!(OpenAt2::new(Target::cwd(), b"\0".to_vec()).is_err());
}

#[test]
fn a_directory_given_as_a_slot_is_refused_at_push() {
    let mut ring = ring_with_slots(4, 4);
    let err = ring
        .push(OpenAt::new(Target::fixed(2), "x").unwrap())
        .unwrap_err();
    assert!(
        matches!(
            err.error,
            Error::FixedFileNotAccepted {
                op: "OpenAt",
                index: 2,
                ..
            }
        ),
        "{:?}",
        err.error
    );
    assert_eq!(err.error.raw_os_error(), Some(libc::EBADF));
}

#[test]
fn open_into_a_given_and_an_allocated_slot_then_close_the_slot() {
    let mut ring = ring_with_slots(8, 4);
    require_op!(ring, OpenAt);
    let f = common::temp_file("open-slot", b"slot contents");
    let t = ring
        .push(OpenAt::path(&f.path).unwrap().into_slot(NewSlot::at(2)))
        .unwrap();
    let slot = ring.wait(t).unwrap().unwrap();
    assert_eq!(slot.index(), 2);
    let t = ring.push(Read::new(slot, vec![0; 64], 0)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(&buf[..n.unwrap()], b"slot contents");

    if common::kernel_at_least(5, 19) {
        let t = ring
            .push(OpenAt::path(&f.path).unwrap().into_slot(NewSlot::alloc()))
            .unwrap();
        let other = ring.wait(t).unwrap().unwrap();
        assert!(other.index() < 4 && other.index() != 2, "{other:?}");
    } else {
        common::skip("allocated slots need Linux 5.19");
    }

    let t = ring.push(Close::slot(slot)).unwrap();
    ring.wait(t).unwrap().unwrap();
    let t = ring.push(Read::new(slot, vec![0; 8], 0)).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().0.unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
}

#[test]
fn openat2_resolves_beneath_and_refuses_unknown_flags() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, OpenAt2);
    let dir = temp_dir("openat2");
    std::fs::write(dir.path.join("inside"), b"in").unwrap();
    let t = ring
        .push(
            OpenAt2::new(&dir.fd, "inside")
                .unwrap()
                .resolve(Resolve::BENEATH),
        )
        .unwrap();
    let mut s = String::new();
    std::fs::File::from(ring.wait(t).unwrap().unwrap())
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "in");
    let t = ring
        .push(
            OpenAt2::new(&dir.fd, "../..")
                .unwrap()
                .resolve(Resolve::BENEATH),
        )
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EXDEV)
    );
    // A mode without O_CREAT is refused by openat2 (openat would ignore it).
    let t = ring
        .push(OpenAt2::new(&dir.fd, "inside").unwrap().mode(0o600))
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EINVAL)
    );
    // Into a slot.
    let mut ring = ring_with_slots(4, 2);
    let t = ring
        .push(
            OpenAt2::new(&dir.fd, "inside")
                .unwrap()
                .into_slot(NewSlot::at(1)),
        )
        .unwrap();
    assert_eq!(ring.wait(t).unwrap().unwrap().index(), 1);
}

#[test]
fn close_hands_the_descriptor_to_the_kernel() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Close);
    let (rx, tx) = pipe();
    let t = ring.push(Close::new(tx)).unwrap();
    ring.wait(t).unwrap().unwrap();
    // The only write end is closed: the reader sees the end of the pipe.
    let t = ring.push(Read::new(&rx, vec![0; 8], 0)).unwrap();
    assert_eq!(ring.wait(t).unwrap().0.unwrap(), 0);
}

#[test]
fn close_of_a_shared_descriptor_waits_for_its_last_handle() {
    let (rx, _tx) = pipe();
    let other = rx.clone();
    let rx = Close::last(rx).unwrap_err();
    drop(other);
    assert!(Close::last(rx).is_ok());
}

#[test]
fn a_cancelled_close_gives_the_descriptor_back_open() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Close);
    let (rx, tx) = pipe();
    let raw = tx.as_raw_fd();
    // The first link fails (no such descriptor), so the close never runs.
    let chain = Chain::new(Read::new(common::bad_fd(), vec![0u8; 1], 0)).then(Close::new(tx));
    let t = ring.push(chain).unwrap();
    let (first, close) = ring.wait(t).unwrap();
    assert_eq!(
        first.into_inner().0.unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    assert!(close.is_cancelled());
    let err = close.into_inner().unwrap_err();
    assert_eq!(err.error.raw_os_error(), Some(libc::ECANCELED));
    let tx = err.fd.expect("a cancelled close hands the descriptor back");
    assert_eq!(tx.as_raw_fd(), raw);
    let mut w = std::fs::File::from(tx);
    w.write_all(b"still open").unwrap();
    drop(w);
    let t = ring.push(Read::new(&rx, vec![0; 16], 0)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(&buf[..n.unwrap()], b"still open");
}

#[test]
fn pipe_makes_two_owned_ends_or_two_slots() {
    let mut ring = ring_with_slots(8, 4);
    require_op!(ring, Pipe);
    let t = ring.push(Pipe::new()).unwrap();
    let (r, w) = ring.wait(t).unwrap().unwrap();
    std::fs::File::from(w).write_all(b"through").unwrap();
    let mut s = String::new();
    std::fs::File::from(r).read_to_string(&mut s).unwrap();
    assert_eq!(s, "through");

    let t = ring.push(Pipe::new().into_slot(NewSlot::at(1))).unwrap();
    let (r, w) = ring.wait(t).unwrap().unwrap();
    assert_eq!((r.index(), w.index()), (1, 2));
    let t = ring.push(Write::new(w, b"fixed".to_vec(), 0)).unwrap();
    assert_eq!(ring.wait(t).unwrap().0.unwrap(), 5);
    let t = ring.push(Read::new(r, vec![0; 8], 0)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(&buf[..n.unwrap()], b"fixed");

    let t = ring.push(Pipe::new().into_slot(NewSlot::alloc())).unwrap();
    let (r, w) = ring.wait(t).unwrap().unwrap();
    assert!(r.index() != w.index() && [r.index(), w.index()].iter().all(|&i| i == 0 || i == 3));
}

#[test]
fn fixed_fd_install_makes_a_descriptor_for_a_slot() {
    let mut ring = ring_with_slots(8, 2);
    require_op!(ring, FixedFdInstall);
    let f = common::temp_file("install", b"installed");
    let t = ring
        .push(OpenAt::path(&f.path).unwrap().into_slot(NewSlot::at(0)))
        .unwrap();
    let slot = ring.wait(t).unwrap().unwrap();
    let t = ring.push(FixedFdInstall::new(slot)).unwrap();
    let fd = ring.wait(t).unwrap().unwrap();
    // SAFETY: F_GETFD reads the descriptor's flags; `fd` is open.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    assert_eq!(s, "installed");
    let t = ring.push(FixedFdInstall::new(slot).inheritable()).unwrap();
    let fd = ring.wait(t).unwrap().unwrap();
    // SAFETY: as above.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert_eq!(flags & libc::FD_CLOEXEC, 0);
}

#[test]
fn files_update_fills_given_and_allocated_slots() {
    let mut ring = ring_with_slots(8, 4);
    require_op!(ring, FilesUpdate);
    let a = common::temp_file("update-a", b"aaa");
    let b = common::temp_file("update-b", b"bbb");
    let t = ring
        .push(FilesUpdate::new(1, [Some(&a.fd), None, Some(&b.fd)]))
        .unwrap();
    let slots = ring.wait(t).unwrap().unwrap();
    assert_eq!(
        slots
            .iter()
            .map(|s| s.map(|s| s.index()))
            .collect::<Vec<_>>(),
        [Some(1), None, Some(3)]
    );
    let t = ring
        .push(Read::new(Target::fixed(3), vec![0; 8], 0))
        .unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(&buf[..n.unwrap()], b"bbb");
    // A slot given as a file is refused: the kernel would read its index as a descriptor.
    let err = ring
        .push(FilesUpdate::new(0, [Some(Target::fixed(1))]))
        .unwrap_err();
    assert!(matches!(
        err.error,
        Error::FixedFileNotAccepted {
            op: "FilesUpdate",
            ..
        }
    ));

    if !common::kernel_at_least(5, 19) {
        common::skip("files_update into allocated slots needs Linux 5.19");
        return;
    }
    let t = ring.push(FilesUpdate::alloc([&a.fd])).unwrap();
    let slots = ring.wait(t).unwrap().unwrap();
    let slot = slots[0].unwrap();
    assert!(slot.index() == 0 || slot.index() == 2, "{slot:?}");
    let t = ring.push(Read::new(slot, vec![0; 8], 0)).unwrap();
    let (n, buf) = ring.wait(t).unwrap();
    assert_eq!(&buf[..n.unwrap()], b"aaa");
}

/// A file in `dir` that this process does not hold open.
struct Closed {
    path: std::path::PathBuf,
}

fn closed_file(dir: &common::TempDir, name: &str) -> Closed {
    let path = dir.path.join(name);
    std::fs::write(&path, name).unwrap();
    assert!(!open_on(&path));
    Closed { path }
}

#[test]
fn a_descriptor_nobody_takes_is_closed() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, OpenAt);
    let dir = temp_dir("discard");
    let f = closed_file(&dir, "detached");
    // Detached before it completes: closed when it does.
    let t = ring.push(OpenAt::path(&f.path).unwrap()).unwrap();
    assert!(ring.detach(t));
    // Detached after it completed: closed at once.
    let done = ring.push(OpenAt::path(&f.path).unwrap()).unwrap();
    let probe = ring.push(Statx::path(&f.path).unwrap()).unwrap();
    ring.wait(probe).unwrap().unwrap();
    while !ring.is_done(&done) {
        ring.submit_and_wait(1).unwrap();
        ring.reap();
    }
    assert!(ring.in_flight() == 0);
    assert!(ring.detach(done));
    assert!(!open_on(&f.path), "a detached open leaked its descriptor");

    // Left finished in a dropped ring.
    let g = closed_file(&dir, "dropped");
    let t = ring.push(OpenAt::path(&g.path).unwrap()).unwrap();
    while !ring.is_done(&t) {
        ring.submit_and_wait(1).unwrap();
        ring.reap();
    }
    assert!(open_on(&g.path), "the open ran");
    let _unredeemed = t;
    drop(ring);
    assert!(
        !open_on(&g.path),
        "a dropped ring leaked an open's descriptor"
    );
}

#[test]
fn a_descriptor_in_a_detached_chain_is_closed() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, OpenAt);
    let dir = temp_dir("discard-chain");
    let f = closed_file(&dir, "chained");
    let t = ring
        .push(Chain::new(OpenAt::path(&f.path).unwrap()).then(Nop::new()))
        .unwrap();
    assert!(ring.detach(t));
    while ring.in_flight() > 0 {
        ring.submit_and_wait(1).unwrap();
        ring.reap();
    }
    assert!(
        !open_on(&f.path),
        "a detached chain leaked its open's descriptor"
    );
}

#[test]
fn a_detached_close_does_not_close_the_number_again() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, Close);
    let (_rx, tx) = pipe();
    let raw = tx.as_raw_fd();
    let t = ring.push(Close::new(tx)).unwrap();
    assert!(ring.detach(t));
    // The close completes, but is not reaped yet: its number is free, take it.
    ring.submit_and_wait(1).unwrap();
    let reuse = std::fs::File::open("/dev/null").unwrap();
    if reuse.as_raw_fd() != raw {
        common::skip("another test took the closed descriptor's number first");
        return;
    }
    ring.reap();
    assert_eq!(ring.in_flight(), 0);
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let still = unsafe { libc::fcntl(reuse.as_raw_fd(), libc::F_GETFD) };
    assert!(
        still >= 0,
        "discarding the close closed the number a second time"
    );
}
