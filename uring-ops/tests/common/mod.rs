//! Helpers shared by the real-kernel tests.
#![allow(dead_code)] // each test binary uses some of them

use std::io::Write as _;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use uring_ops::ops::Nop;
use uring_ops::{Fd, Target, Uring};

/// A temp file that is removed when dropped.
pub struct TempFile {
    /// For the standard library's calls.
    pub file: std::fs::File,
    /// For ops: a handle to the same open file (a duplicate descriptor).
    pub fd: Fd,
    pub path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A new temp file holding `contents`, unique to this process and `name`.
pub fn temp_file(name: &str, contents: &[u8]) -> TempFile {
    let path = std::env::temp_dir().join(format!("uring-ops-{}-{name}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.write_all(contents).unwrap();
    let fd = Fd::new(file.try_clone().unwrap());
    TempFile { file, fd, path }
}

/// A pipe: (read end, for ops; write end).
pub fn pipe() -> (Fd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (Fd::new(rx), tx)
}

/// A target naming no open file (descriptor -1): ops on it fail with `EBADF`.
pub fn bad_fd() -> Target {
    // SAFETY: -1 is never an open descriptor, so no file can be acted on through it.
    unsafe { Target::from_raw_fd(-1) }
}

/// Whether the running kernel is at least `major.minor` (from `uname -r`), for op flags the
/// opcode probe cannot report.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// Whether the running kernel's NOP takes `IORING_NOP_INJECT_RESULT` (Linux 6.1's refuses every
/// NOP flag: the NOP fails with `EINVAL`). Probed once per test binary.
pub fn nop_injects() -> bool {
    static INJECTS: OnceLock<bool> = OnceLock::new();
    *INJECTS.get_or_init(|| {
        let mut ring = Uring::new(2).unwrap();
        let t = ring.push(Nop::new().inject_result(1)).unwrap();
        match ring.wait(t).unwrap() {
            Ok(1) => true,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => false,
            other => panic!("a NOP injecting 1 gave {other:?}"),
        }
    })
}

/// A NOP that completes with `tag` where the kernel can inject a result, else a plain one;
/// with the result to expect from it. For tests that tell completions apart by their results
/// where they can, and check plain NOPs where they cannot.
pub fn tagged_nop(tag: u32) -> (Nop, u32) {
    if nop_injects() {
        return (Nop::new().inject_result(tag as i32), tag);
    }
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        skip(format_args!(
            "{}: completions told apart by injected NOP results: the running kernel's NOP \
             refuses IORING_NOP_INJECT_RESULT (EINVAL), so they are checked as plain NOPs",
            module_path!().trim_end_matches("::common")
        ))
    });
    (Nop::new(), 0)
}

/// Reports a test that could not run here. Written straight to the process's stderr (not
/// through `eprintln!`, which the test harness captures), so it shows in a plain `cargo test`.
pub fn skip(why: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// Returns from the test, saying why, when the ring's probe lacks the op.
#[macro_export]
macro_rules! require_op {
    ($ring:expr, $op:ty) => {
        if !$ring.supports(<$op as uring_ops::Op>::OPCODE) {
            $crate::common::skip(format_args!(
                "{}: the running kernel lacks IORING_OP_{} ({})",
                module_path!(),
                uring_ops::core::opcode_name(<$op as uring_ops::Op>::OPCODE),
                <$op as uring_ops::Op>::NAME
            ));
            return;
        }
    };
}

/// Says that the part of a test that needs `IORING_NOP_INJECT_RESULT` did not run, when the
/// kernel lacks it; evaluates to whether it has it.
#[macro_export]
macro_rules! nop_injects_or_skip {
    ($what:expr) => {{
        let injects = $crate::common::nop_injects();
        if !injects {
            $crate::common::skip(format_args!(
                "{}: {}: the running kernel's NOP refuses IORING_NOP_INJECT_RESULT (EINVAL)",
                module_path!(),
                $what
            ));
        }
        injects
    }};
}

/// Returns from the test, saying why, when the kernel is older than `major.minor`.
#[macro_export]
macro_rules! require_kernel {
    ($major:expr, $minor:expr, $what:expr) => {
        if !$crate::common::kernel_at_least($major, $minor) {
            $crate::common::skip(format_args!(
                "{}: {} needs Linux {}.{} or later",
                module_path!(),
                $what,
                $major,
                $minor
            ));
            return;
        }
    };
}

/// A temp directory, removed with its contents when dropped.
pub struct TempDir {
    pub path: PathBuf,
    /// The directory, open, for the `*at` ops.
    pub fd: Fd,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A new, empty temp directory, unique to this process and `name`.
pub fn temp_dir(name: &str) -> TempDir {
    let path = std::env::temp_dir().join(format!("uring-ops-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir(&path).unwrap();
    let fd = Fd::new(std::fs::File::open(&path).unwrap());
    TempDir { path, fd }
}

/// Whether any descriptor of this process is open on `path` (from `/proc/self/fd`).
pub fn open_on(path: &std::path::Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|target| target == path)
}

/// A ring with a sparse registered-file table of `slots` slots.
pub fn ring_with_slots(entries: u32, slots: u32) -> uring_ops::Uring {
    let ring = uring_ops::Uring::new(entries).unwrap();
    ring.ring().register().register_files_sparse(slots).unwrap();
    ring
}

/// Pushes `op`, waits for it and returns its output.
pub fn run<T: uring_ops::Submit>(ring: &mut uring_ops::Uring, op: T) -> T::Output {
    let t = ring.push(op).map_err(|e| e.error).unwrap();
    ring.wait(t).unwrap()
}
