//! An op acts only on the file it was given, however late the kernel looks its descriptor up:
//! at the next submit of a `Uring`, whenever an SQPOLL poller gets to it, or only when a later
//! link of a chain starts (`IORING_FEAT_LINKED_FILE`).
//!
//! Each test gives an op a file `x`, drops the caller's handle to `x` before the kernel looks
//! the descriptor up, and opens a file `y`, which would get `x`'s number if `x` had been
//! closed. The op's data must land in `x`, never in `y`. (With ops that held only a
//! descriptor number, as this crate's did before, `y` got the data: see the issue's
//! reproduction.)

mod common;

use common::{pipe, skip};
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;
use uring_ops::ops::{Read, Write};
use uring_ops::{Chain, Context, Fd, Uring};

const DATA: &[u8] = b"DATA-FOR-X";

/// Two files, `x` and `y`, removed at the end.
struct Files {
    x: PathBuf,
    y: PathBuf,
}

impl Files {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir();
        let id = std::process::id();
        Files {
            x: dir.join(format!("uring-ops-{id}-{name}-x")),
            y: dir.join(format!("uring-ops-{id}-{name}-y")),
        }
    }

    /// Creates `x`, as a shared handle, and its descriptor number.
    fn create_x(&self) -> (Fd, i32) {
        let x = Fd::new(std::fs::File::create(&self.x).unwrap());
        let raw = x.as_raw_fd();
        (x, raw)
    }

    /// Creates `y`, now that the caller's handle to `x` is gone, and checks it did not get
    /// `x`'s number: the op still holds `x` open.
    fn create_y(&self, x_raw: i32) -> std::fs::File {
        let y = std::fs::File::create(&self.y).unwrap();
        assert_ne!(y.as_raw_fd(), x_raw, "x was closed while its op was queued");
        y
    }

    /// The data went to `x`, and nothing to `y`.
    fn check(&self) {
        assert_eq!(std::fs::read(&self.x).unwrap(), DATA, "x holds the data");
        assert_eq!(std::fs::read(&self.y).unwrap(), b"", "y got nothing");
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.x);
        let _ = std::fs::remove_file(&self.y);
    }
}

/// `Uring` looks the descriptor up at the next submit, after the caller dropped its handle.
#[test]
fn a_queued_write_acts_on_its_own_file() {
    let files = Files::new("uring");
    let (x, x_raw) = files.create_x();
    let mut ring = Uring::new(8).unwrap();
    let t = ring.push(Write::new(&x, DATA.to_vec(), 0)).unwrap();
    drop(x);
    let _y = files.create_y(x_raw);
    ring.submit().unwrap();
    let (n, _) = ring.wait(t).unwrap();
    assert_eq!(n.unwrap(), DATA.len());
    files.check();
}

/// A chain's second link on a `Context` (which submits at push): the kernel looks its
/// descriptor up only when the link starts, here after the pipe read before it ends.
#[test]
fn a_later_link_acts_on_its_own_file_on_a_context() {
    let files = Files::new("ctx");
    let (x, x_raw) = files.create_x();
    let (rd, wr) = pipe();
    let ctx = Context::new(8).unwrap();
    let t = ctx
        .push(
            Chain::new(Read::new(&rd, Vec::with_capacity(4), u64::MAX)).then(Write::new(
                &x,
                DATA.to_vec(),
                0,
            )),
        )
        .unwrap();
    drop(x);
    let _y = files.create_y(x_raw);
    std::fs::File::from(wr).write_all(b"go!!").unwrap();
    let (read, write) = ctx.wait(t).unwrap();
    assert_eq!(read.into_inner().0.unwrap(), 4);
    assert_eq!(write.ran().expect("the write ran").0.unwrap(), DATA.len());
    files.check();
}

/// The same on an SQPOLL ring, whose poller thread consumes the SQEs on its own time.
#[test]
fn a_later_link_acts_on_its_own_file_on_an_sqpoll_ring() {
    let builder = uring_core::Builder::new(8).sqpoll(Duration::from_millis(10));
    let mut ring = match Uring::with_builder(&builder) {
        Ok(ring) => ring,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => {
            skip(format_args!(
                "a_later_link_acts_on_its_own_file_on_an_sqpoll_ring: no SQPOLL ring here: {e}"
            ));
            return;
        }
        Err(e) => panic!("setup: {e}"),
    };
    let files = Files::new("sqpoll");
    let (x, x_raw) = files.create_x();
    let (rd, wr) = pipe();
    let t = ring
        .push(
            Chain::new(Read::new(&rd, Vec::with_capacity(4), u64::MAX)).then(Write::new(
                &x,
                DATA.to_vec(),
                0,
            )),
        )
        .unwrap();
    ring.submit().unwrap();
    drop(x);
    let _y = files.create_y(x_raw);
    std::fs::File::from(wr).write_all(b"go!!").unwrap();
    let (read, write) = ring.wait(t).unwrap();
    assert_eq!(read.into_inner().0.unwrap(), 4);
    assert_eq!(write.ran().expect("the write ran").0.unwrap(), DATA.len());
    files.check();
}

/// A file moved into an op (the caller keeps no handle) stays open until the op is done: its
/// number stays taken until the op's completion is reaped.
#[test]
fn a_file_moved_into_an_op_stays_open_until_it_completes() {
    let files = Files::new("owned");
    let x = std::fs::File::create(&files.x).unwrap();
    let x_raw = x.as_raw_fd();
    let mut ring = Uring::new(8).unwrap();
    let t = ring.push(Write::new(x, DATA.to_vec(), 0)).unwrap();
    let _y = files.create_y(x_raw);
    ring.submit().unwrap();
    assert_eq!(ring.wait(t).unwrap().0.unwrap(), DATA.len());
    files.check();
}
