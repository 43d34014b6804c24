//! Operations on paths: `STATX`, `RENAMEAT`, `UNLINKAT`, `MKDIRAT`, `SYMLINKAT`, `LINKAT`.
//!
//! Each takes its directories as descriptors kept open (or [`Target::cwd`]), never as
//! registered-file slots: the kernel reads them as descriptor numbers (a slot is refused at
//! push with [`crate::Error::FixedFileNotAccepted`]), and its paths as owned C strings.

use super::define::op;
use crate::error::Result;
use crate::fd::{IntoTarget, Target};
use crate::op::res_to_io;
use crate::path::{CPath, IntoCPath};
use std::io;
use uring_core::sys;

/// A zeroed `statx` for the kernel to fill.
fn empty_statx() -> libc::statx {
    // SAFETY: `statx` is integers and arrays of them: all zeros is a valid value.
    unsafe { std::mem::zeroed() }
}

op! {
    /// A file's status (`IORING_OP_STATX`, Linux 5.6): the `statx(2)` of io_uring.
    ///
    /// Owns the path, a share of the directory (or file) and the `statx` buffer the kernel
    /// fills (on the heap) until completion. Returns the filled buffer, which fields
    /// [`Statx::mask`] asked for (`stx_mask` says which the kernel filled).
    ///
    /// # Examples
    ///
    /// ```
    /// use uring_ops::{ops::Statx, Uring};
    /// let mut ring = Uring::new(8)?;
    /// let t = ring.push(Statx::path("/dev/null")?)?;
    /// let st = ring.wait(t)??;
    /// assert_eq!(u32::from(st.stx_mode) & libc::S_IFMT, libc::S_IFCHR);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct Statx {
        fn with { dir: file(), path: path(), buf: boxed(libc::statx) }
        set {
            /// `AT_*` flags: `AT_SYMLINK_NOFOLLOW` (the link itself), `AT_STATX_SYNC_AS_STAT`,
            /// `AT_STATX_FORCE_SYNC`, `AT_STATX_DONT_SYNC` (remote file systems).
            flags: i32 = 0,
            /// The fields wanted (`STATX_*`); default `STATX_BASIC_STATS`.
            mask: u32 = libc::STATX_BASIC_STATS,
        }
    }
    opcode = sys::IORING_OP_STATX;
    prepare(op, sqe) {
        sqe.set_target(&op.dir)
            .set_path(&op.path)
            .set_len(op.mask)
            .set_struct2(&mut op.buf)
            .set_op_flags(op.flags as u32);
    }
    complete(op, res, _flags) -> io::Result<Box<libc::statx>> {
        res_to_io(res).map(|_| op.buf)
    }
    check(op) { op.dir.require_descriptor("Statx", "the directory") }
}

impl Statx {
    /// The status of `path`, relative to the directory `dir`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path has a NUL byte.
    pub fn new(dir: impl IntoTarget, path: impl IntoCPath) -> Result<Self> {
        Ok(Self::with(dir, path.into_cpath()?, empty_statx()))
    }

    /// The status of `path`, relative to the current directory.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path has a NUL byte.
    pub fn path(path: impl IntoCPath) -> Result<Self> {
        Self::new(Target::cwd(), path)
    }

    /// The status of an open file (`AT_EMPTY_PATH`, the `fstat` of io_uring).
    pub fn file(file: impl IntoTarget) -> Self {
        Self::with(file, CPath::empty(), empty_statx()).flags(libc::AT_EMPTY_PATH)
    }
}

op! {
    /// Renames a file (`IORING_OP_RENAMEAT`, Linux 5.11): the `renameat2(2)` of io_uring.
    ///
    /// Owns both paths and a share of both directories until completion. Returns `Ok(())` or
    /// the errno.
    pub struct RenameAt {
        fn with { old_dir: file(), old: path(), new_dir: file(), new: path() }
        set {
            /// `RENAME_NOREPLACE` (fail with `EEXIST`), `RENAME_EXCHANGE` (swap the two),
            /// `RENAME_WHITEOUT`.
            flags: u32 = 0,
        }
    }
    opcode = sys::IORING_OP_RENAMEAT;
    prepare(op, sqe) {
        // The new directory travels in `len`, as a descriptor number (kept open).
        sqe.set_target(&op.old_dir)
            .set_path(&op.old)
            .set_len(op.new_dir.raw() as u32)
            .set_path2(&op.new)
            .set_op_flags(op.flags);
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
    check(op) {
        op.old_dir.require_descriptor("RenameAt", "the old directory")?;
        op.new_dir.require_descriptor("RenameAt", "the new directory")
    }
}

impl RenameAt {
    /// Renames `old` (relative to `old_dir`) to `new` (relative to `new_dir`).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when a path has a NUL byte.
    pub fn new(
        old_dir: impl IntoTarget,
        old: impl IntoCPath,
        new_dir: impl IntoTarget,
        new: impl IntoCPath,
    ) -> Result<Self> {
        Ok(Self::with(
            old_dir,
            old.into_cpath()?,
            new_dir,
            new.into_cpath()?,
        ))
    }

    /// Renames `old` to `new`, both relative to the current directory.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when a path has a NUL byte.
    pub fn paths(old: impl IntoCPath, new: impl IntoCPath) -> Result<Self> {
        Self::new(Target::cwd(), old, Target::cwd(), new)
    }
}

op! {
    /// Removes a name, or with [`UnlinkAt::dir`] an empty directory (`IORING_OP_UNLINKAT`,
    /// Linux 5.11): the `unlinkat(2)` of io_uring.
    ///
    /// Owns the path and a share of the directory until completion. Returns `Ok(())` or the
    /// errno.
    pub struct UnlinkAt {
        fn with { dir: file(), path: path() }
        state { flags: i32 = 0 }
    }
    opcode = sys::IORING_OP_UNLINKAT;
    prepare(op, sqe) {
        sqe.set_target(&op.dir).set_path(&op.path).set_op_flags(op.flags as u32);
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
    check(op) { op.dir.require_descriptor("UnlinkAt", "the directory") }
}

impl UnlinkAt {
    /// Removes `path`, relative to `dir`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path has a NUL byte.
    pub fn new(dir: impl IntoTarget, path: impl IntoCPath) -> Result<Self> {
        Ok(Self::with(dir, path.into_cpath()?))
    }

    /// Removes `path`, relative to the current directory.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path has a NUL byte.
    pub fn path(path: impl IntoCPath) -> Result<Self> {
        Self::new(Target::cwd(), path)
    }

    /// Removes a directory (`AT_REMOVEDIR`, the `rmdir(2)` of io_uring), which must be empty.
    pub fn dir(mut self) -> Self {
        self.flags |= libc::AT_REMOVEDIR;
        self
    }
}

op! {
    /// Makes a directory (`IORING_OP_MKDIRAT`, Linux 5.15): the `mkdirat(2)` of io_uring.
    ///
    /// Owns the path and a share of the directory it is made in until completion. Returns
    /// `Ok(())` or the errno.
    pub struct MkdirAt {
        fn with { dir: file(), path: path() }
        set {
            /// Its permissions, before the umask (default `0o777`).
            mode: u32 = 0o777,
        }
    }
    opcode = sys::IORING_OP_MKDIRAT;
    prepare(op, sqe) {
        sqe.set_target(&op.dir).set_path(&op.path).set_len(op.mode);
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
    check(op) { op.dir.require_descriptor("MkdirAt", "the directory") }
}

impl MkdirAt {
    /// Makes `path`, relative to `dir`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path has a NUL byte.
    pub fn new(dir: impl IntoTarget, path: impl IntoCPath) -> Result<Self> {
        Ok(Self::with(dir, path.into_cpath()?))
    }

    /// Makes `path`, relative to the current directory.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path has a NUL byte.
    pub fn path(path: impl IntoCPath) -> Result<Self> {
        Self::new(Target::cwd(), path)
    }
}

op! {
    /// Makes a symbolic link (`IORING_OP_SYMLINKAT`, Linux 5.15): the `symlinkat(2)` of
    /// io_uring.
    ///
    /// Owns both strings and a share of the directory until completion. Returns `Ok(())` or the
    /// errno.
    pub struct SymlinkAt {
        fn with { target: path(), dir: file(), link: path() }
    }
    opcode = sys::IORING_OP_SYMLINKAT;
    prepare(op, sqe) {
        sqe.set_target(&op.dir).set_path(&op.target).set_path2(&op.link);
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
    check(op) { op.dir.require_descriptor("SymlinkAt", "the directory") }
}

impl SymlinkAt {
    /// Makes `link` (relative to `dir`) a symbolic link whose contents are `target` (not
    /// checked: it may name nothing).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when a string has a NUL byte.
    pub fn new(target: impl IntoCPath, dir: impl IntoTarget, link: impl IntoCPath) -> Result<Self> {
        Ok(Self::with(target.into_cpath()?, dir, link.into_cpath()?))
    }

    /// Makes `link` (relative to the current directory) a symbolic link to `target`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when a string has a NUL byte.
    pub fn paths(target: impl IntoCPath, link: impl IntoCPath) -> Result<Self> {
        Self::new(target, Target::cwd(), link)
    }
}

op! {
    /// Makes a hard link (`IORING_OP_LINKAT`, Linux 5.15): the `linkat(2)` of io_uring.
    ///
    /// Owns both paths and a share of both directories until completion. Returns `Ok(())` or
    /// the errno.
    pub struct LinkAt {
        fn with { old_dir: file(), old: path(), new_dir: file(), new: path() }
        set {
            /// `AT_SYMLINK_FOLLOW` (link what a symbolic link names, not the link), or
            /// `AT_EMPTY_PATH` (link the old directory descriptor's own file).
            flags: i32 = 0,
        }
    }
    opcode = sys::IORING_OP_LINKAT;
    prepare(op, sqe) {
        // The new directory travels in `len`, as a descriptor number (kept open).
        sqe.set_target(&op.old_dir)
            .set_path(&op.old)
            .set_len(op.new_dir.raw() as u32)
            .set_path2(&op.new)
            .set_op_flags(op.flags as u32);
    }
    complete(_op, res, _flags) -> io::Result<()> { res_to_io(res).map(drop) }
    check(op) {
        op.old_dir.require_descriptor("LinkAt", "the old directory")?;
        op.new_dir.require_descriptor("LinkAt", "the new directory")
    }
}

impl LinkAt {
    /// Links `new` (relative to `new_dir`) to the file `old` (relative to `old_dir`).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when a path has a NUL byte.
    pub fn new(
        old_dir: impl IntoTarget,
        old: impl IntoCPath,
        new_dir: impl IntoTarget,
        new: impl IntoCPath,
    ) -> Result<Self> {
        Ok(Self::with(
            old_dir,
            old.into_cpath()?,
            new_dir,
            new.into_cpath()?,
        ))
    }

    /// Links `new` to `old`, both relative to the current directory.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when a path has a NUL byte.
    pub fn paths(old: impl IntoCPath, new: impl IntoCPath) -> Result<Self> {
        Self::new(Target::cwd(), old, Target::cwd(), new)
    }
}
