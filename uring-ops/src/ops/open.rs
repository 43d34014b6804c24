//! Descriptors made and closed: `OPENAT`, `OPENAT2`, `CLOSE`, `PIPE`, `FIXED_FD_INSTALL`,
//! `FILES_UPDATE`.
//!
//! A descriptor the kernel creates comes back owned: an [`OwnedFd`] ([`NewFd`], the default), or
//! a [`FixedFd`] for one created into a slot of the ring's registered-file table ([`NewSlot`]).
//! If nobody takes the result (a detached ticket, a dropped ring), the descriptor is closed
//! ([`crate::Op::discard`]).

use super::define::op;
use super::kinds::{Closing, FdList};
use crate::error::Result;
use crate::fd::{Dest, FixedFd, IntoTarget, NewFd, NewSlot, Target};
use crate::op::{res_to_io, Op};
use crate::path::IntoCPath;
use std::fmt;
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use uring_core::sys;

/// The `O_*` flags of an open into a slot: the kernel refuses `O_CLOEXEC` there (a slot is
/// not a descriptor of the process, so there is nothing to close on exec).
fn slot_flags<D: Dest>(dest: &D, flags: u64) -> u64 {
    if dest.file_index() == 0 {
        flags
    } else {
        flags & !(libc::O_CLOEXEC as u64)
    }
}

op! {
    /// Opens a file relative to a directory (`IORING_OP_OPENAT`, Linux 5.6; into a slot of the
    /// registered-file table, Linux 5.15): the `openat(2)` of io_uring.
    ///
    /// Owns the path and a share of the directory until completion. Returns the new descriptor:
    /// an [`OwnedFd`], or with [`OpenAt::into_slot`] a [`FixedFd`]. Flags default to
    /// `O_RDONLY | O_CLOEXEC` (`O_CLOEXEC` is left out for a slot, where the kernel refuses it).
    ///
    /// # Examples
    ///
    /// ```
    /// use uring_ops::{ops::OpenAt, Uring};
    /// let mut ring = Uring::new(8)?;
    /// let t = ring.push(OpenAt::path("/dev/null")?)?;
    /// let file = std::fs::File::from(ring.wait(t)??);
    /// assert_eq!(file.metadata()?.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct OpenAt<D: Dest = NewFd> {
        fn with_dest { dir: file(), path: path(), dest: plain(D) }
        set {
            /// `O_*` flags (`open(2)`), e.g. `O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC`.
            flags: i32 = libc::O_RDONLY | libc::O_CLOEXEC,
            /// The permissions of a file it creates (`O_CREAT`, `O_TMPFILE`), before the umask.
            mode: u32 = 0o666,
        }
    }
    opcode = sys::IORING_OP_OPENAT;
    prepare(op, sqe) {
        let flags = slot_flags(&op.dest, op.flags as u32 as u64) as u32;
        sqe.set_target(&op.dir)
            .set_path(&op.path)
            .set_len(op.mode)
            .set_op_flags(flags)
            .set_file_index(op.dest.file_index());
    }
    complete(op, res, _flags) -> io::Result<D::Created> {
        let n = res_to_io(res)?;
        // SAFETY: a successful open created descriptor (or filled slot) `n` for this op.
        Ok(unsafe { op.dest.created(n as i32, 0) })
    }
    check(op) { op.dir.require_descriptor("OpenAt", "the directory") }
    discard(op, res, flags) { drop(Op::complete(op, res, flags)); }
}

impl OpenAt<NewFd> {
    /// Opens `path` relative to the directory `dir` ([`Target::cwd`] for the current one;
    /// an absolute path ignores it).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path has a NUL byte.
    pub fn new(dir: impl IntoTarget, path: impl IntoCPath) -> Result<Self> {
        Ok(Self::with_dest(dir, path.into_cpath()?, NewFd))
    }

    /// Opens `path` relative to the current directory.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path has a NUL byte.
    pub fn path(path: impl IntoCPath) -> Result<Self> {
        Self::new(Target::cwd(), path)
    }

    /// Opens into a slot of the ring's registered-file table instead (Linux 5.15; an allocated
    /// slot, 5.19): the result is a [`FixedFd`].
    pub fn into_slot(self, slot: NewSlot) -> OpenAt<NewSlot> {
        OpenAt {
            dir: self.dir,
            path: self.path,
            dest: slot,
            flags: self.flags,
            mode: self.mode,
        }
    }
}

bitflags::bitflags! {
    /// How [`OpenAt2`] resolves the path (`RESOLVE_*`, `openat2(2)`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Resolve: u64 {
        /// No crossing of mount points (bind mounts included).
        const NO_XDEV = 0x01;
        /// No "magic links" (`/proc/[pid]/fd/*` and the like).
        const NO_MAGICLINKS = 0x02;
        /// No symbolic links at all (implies `NO_MAGICLINKS`).
        const NO_SYMLINKS = 0x04;
        /// The path must stay beneath the directory: no `..` above it, no absolute paths or
        /// links out of it.
        const BENEATH = 0x08;
        /// Resolve as if the directory were the root (`chroot`-like).
        const IN_ROOT = 0x10;
        /// Only from the dentry cache: fail with `EAGAIN` rather than block (Linux 5.12).
        const CACHED = 0x20;
    }
}

op! {
    /// Opens a file relative to a directory, with resolve rules (`IORING_OP_OPENAT2`,
    /// Linux 5.6; into a slot, 5.15): the `openat2(2)` of io_uring, whose unknown flags are
    /// refused (`EINVAL`) rather than ignored.
    ///
    /// Owns the path, its `open_how` (on the heap) and a share of the directory until
    /// completion. Returns the new descriptor, as [`OpenAt`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use uring_ops::{ops::{OpenAt2, Resolve}, Fd, Uring};
    /// let mut ring = Uring::new(8)?;
    /// let dev = Fd::new(std::fs::File::open("/dev")?);
    /// // `..` may not climb out of /dev.
    /// let t = ring.push(OpenAt2::new(&dev, "../etc/hostname")?.resolve(Resolve::BENEATH))?;
    /// assert_eq!(ring.wait(t)?.unwrap_err().raw_os_error(), Some(libc::EXDEV));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct OpenAt2<D: Dest = NewFd> {
        fn with_dest { dir: file(), path: path(), how: boxed(sys::open_how), dest: plain(D) }
    }
    opcode = sys::IORING_OP_OPENAT2;
    prepare(op, sqe) {
        op.how.flags = slot_flags(&op.dest, op.how.flags);
        sqe.set_target(&op.dir)
            .set_path(&op.path)
            .set_sized_struct2(&mut op.how)
            .set_file_index(op.dest.file_index());
    }
    complete(op, res, _flags) -> io::Result<D::Created> {
        let n = res_to_io(res)?;
        // SAFETY: a successful open created descriptor (or filled slot) `n` for this op.
        Ok(unsafe { op.dest.created(n as i32, 0) })
    }
    check(op) { op.dir.require_descriptor("OpenAt2", "the directory") }
    discard(op, res, flags) { drop(Op::complete(op, res, flags)); }
}

impl OpenAt2<NewFd> {
    /// Opens `path` relative to `dir`, `O_RDONLY | O_CLOEXEC`, resolving as `openat(2)` does.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path has a NUL byte.
    pub fn new(dir: impl IntoTarget, path: impl IntoCPath) -> Result<Self> {
        let how = sys::open_how {
            flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: 0,
        };
        Ok(Self::with_dest(dir, path.into_cpath()?, how, NewFd))
    }

    /// Opens into a slot of the ring's registered-file table instead: the result is a
    /// [`FixedFd`].
    pub fn into_slot(self, slot: NewSlot) -> OpenAt2<NewSlot> {
        OpenAt2 {
            dir: self.dir,
            path: self.path,
            how: self.how,
            dest: slot,
        }
    }
}

impl<D: Dest> OpenAt2<D> {
    /// `O_*` flags (`openat2(2)` refuses unknown ones).
    pub fn flags(mut self, flags: i32) -> Self {
        self.how.flags = flags as u32 as u64;
        self
    }

    /// The permissions of a file it creates; must be 0 unless `O_CREAT` or `O_TMPFILE` is set
    /// (the kernel refuses it otherwise).
    pub fn mode(mut self, mode: u32) -> Self {
        self.how.mode = u64::from(mode);
        self
    }

    /// The resolve rules.
    pub fn resolve(mut self, resolve: Resolve) -> Self {
        self.how.resolve = resolve.bits();
        self
    }
}

/// A [`Close`] that failed.
#[derive(Debug)]
pub struct CloseError {
    /// Why.
    pub error: io::Error,
    /// The descriptor, back, when the kernel never got to close it (the op was cancelled:
    /// `ECANCELED`, as a link after a failed one). `None` otherwise: for any other error the
    /// kernel may have removed it from the table already (a file's flush can fail after
    /// that), so it is not closed again, at the cost of a leak in the rare case it was not.
    pub fd: Option<OwnedFd>,
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "close failed: {}", self.error)
    }
}

impl std::error::Error for CloseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<CloseError> for io::Error {
    /// The error (a descriptor handed back is closed).
    fn from(e: CloseError) -> Self {
        e.error
    }
}

op! {
    /// Closes a descriptor, or empties a slot of the registered-file table
    /// (`IORING_OP_CLOSE`, Linux 5.6; a slot, Linux 5.15).
    ///
    /// A descriptor is handed over: the op owns it, so nothing else can close it or use its
    /// number meanwhile, and once the kernel closed it, it is never closed again (not when the
    /// op is dropped, detached or left in a dropped ring). If the op is refused at push, the
    /// descriptor comes back with it. A slot ([`Close::slot`]) is the ring's: ops in flight on
    /// it keep their file; later ones find the slot empty (`EBADF`).
    ///
    /// Returns `Ok(())`, or a [`CloseError`] (with the descriptor when the kernel did not
    /// close it). The kernel refuses to close a ring's own descriptor (`EBADF`).
    ///
    /// # Examples
    ///
    /// ```
    /// use uring_ops::{ops::Close, Uring};
    /// let mut ring = Uring::new(8)?;
    /// let t = ring.push(Close::new(std::fs::File::open("/dev/null")?))?;
    /// ring.wait(t)??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct Close {
        fn closing { what: closing() }
    }
    opcode = sys::IORING_OP_CLOSE;
    prepare(op, sqe) { sqe.set_closing(&op.what); }
    complete(op, res, _flags) -> Result<(), CloseError> {
        let fd = match op.what {
            Closing::Fd(fd) => fd,
            Closing::Slot(_) => None,
        };
        match res_to_io(res) {
            Ok(_) => {
                // The kernel closed it: forget the number, never close it again.
                let _ = fd.map(IntoRawFd::into_raw_fd);
                Ok(())
            }
            Err(error) => {
                let fd = if res == -libc::ECANCELED {
                    fd
                } else {
                    let _ = fd.map(IntoRawFd::into_raw_fd);
                    None
                };
                Err(CloseError { error, fd })
            }
        }
    }
    discard(op, res, flags) { drop(Op::complete(op, res, flags)); }
}

impl Close {
    /// Closes `fd` (a `File`, an `OwnedFd`, a socket: anything that owns its descriptor).
    pub fn new(fd: impl Into<OwnedFd>) -> Self {
        Self::closing(Closing::Fd(Some(fd.into())))
    }

    /// Closes the descriptor of `fd` if this is its last handle; otherwise hands it back (an
    /// op in flight or a clone still uses it, and closing it under them would let the number
    /// name another file).
    ///
    /// # Errors
    ///
    /// `Err(fd)` while other handles exist.
    pub fn last(fd: crate::Fd) -> std::result::Result<Self, crate::Fd> {
        fd.try_into_owned().map(Self::new)
    }

    /// Empties slot `slot` of the ring's registered-file table (Linux 5.15).
    pub fn slot(slot: FixedFd) -> Self {
        Self::closing(Closing::Slot(slot.index()))
    }
}

op! {
    /// Makes a pipe (`IORING_OP_PIPE`, Linux 6.16): the `pipe2(2)` of io_uring.
    ///
    /// Owns the two-descriptor array the kernel fills (on the heap) until completion. Returns
    /// `(read end, write end)`: [`OwnedFd`]s, or with [`Pipe::into_slot`] [`FixedFd`]s (a
    /// given slot takes the read end, the next slot the write end). Flags default to
    /// `O_CLOEXEC` (left out for slots).
    pub struct Pipe<D: Dest = NewFd> {
        fn with_dest { fds: boxed([i32; 2]), dest: plain(D) }
        set {
            /// `O_CLOEXEC`, `O_NONBLOCK`, `O_DIRECT` (`pipe2(2)`).
            flags: i32 = libc::O_CLOEXEC,
        }
    }
    opcode = sys::IORING_OP_PIPE;
    prepare(op, sqe) {
        let flags = slot_flags(&op.dest, op.flags as u32 as u64) as u32;
        sqe.set_struct(&mut op.fds)
            .set_op_flags(flags)
            .set_file_index(op.dest.file_index());
    }
    complete(op, res, _flags) -> io::Result<(D::Created, D::Created)> {
        res_to_io(res)?;
        let [r, w] = *op.fds;
        // SAFETY: a successful pipe created these two descriptors (or filled these slots) for
        // this op, and wrote their numbers into the array.
        Ok(unsafe { (op.dest.created(r, 0), op.dest.created(w, 1)) })
    }
    discard(op, res, flags) { drop(Op::complete(op, res, flags)); }
}

impl Pipe<NewFd> {
    /// A pipe of two new descriptors.
    pub fn new() -> Self {
        Self::with_dest([-1, -1], NewFd)
    }

    /// Puts the ends into slots of the ring's registered-file table instead.
    pub fn into_slot(self, slot: NewSlot) -> Pipe<NewSlot> {
        Pipe {
            fds: self.fds,
            dest: slot,
            flags: self.flags,
        }
    }
}

impl Default for Pipe<NewFd> {
    fn default() -> Self {
        Self::new()
    }
}

op! {
    /// Makes a descriptor of the process for a file in a slot of the ring's registered-file
    /// table (`IORING_OP_FIXED_FD_INSTALL`, Linux 6.8), so that code outside the ring can use
    /// the file. The slot keeps its file.
    ///
    /// Owns nothing (the slot is the ring's). Returns the new descriptor ([`OwnedFd`],
    /// `O_CLOEXEC` unless [`FixedFdInstall::inheritable`]).
    pub struct FixedFdInstall {
        fn with { slot: file() }
        state { flags: u32 = 0 }
    }
    opcode = sys::IORING_OP_FIXED_FD_INSTALL;
    prepare(op, sqe) { sqe.set_target(&op.slot).set_op_flags(op.flags); }
    complete(_op, res, _flags) -> io::Result<OwnedFd> {
        let n = res_to_io(res)?;
        // SAFETY: a successful install created descriptor `n` for this op.
        Ok(unsafe { NewFd.created(n as i32, 0) })
    }
    discard(op, res, flags) { drop(Op::complete(op, res, flags)); }
}

impl FixedFdInstall {
    /// A descriptor for the file in `slot`.
    pub fn new(slot: FixedFd) -> Self {
        Self::with(slot)
    }

    /// Without `O_CLOEXEC`: the descriptor survives `exec` (`IORING_FIXED_FD_NO_CLOEXEC`).
    pub fn inheritable(mut self) -> Self {
        self.flags |= sys::IORING_FIXED_FD_NO_CLOEXEC;
        self
    }
}

/// Where a [`FilesUpdate`] puts its files.
const ALLOC: u64 = sys::IORING_FILE_INDEX_ALLOC as u64;

op! {
    /// Sets slots of the ring's registered-file table (`IORING_OP_FILES_UPDATE`, Linux 5.6):
    /// from a given slot on, or into free slots the kernel picks ([`FilesUpdate::alloc`],
    /// Linux 5.19). The table takes its own reference to each file.
    ///
    /// Owns the array of descriptor numbers and keeps each descriptor open until completion.
    /// Returns the slot of each file set, in order (`None` for a slot cleared); fewer than
    /// given if the kernel stopped early.
    pub struct FilesUpdate {
        fn with { files: fds(), offset: plain(u64) }
    }
    opcode = sys::IORING_OP_FILES_UPDATE;
    prepare(op, sqe) {
        sqe.set_fd(-1).set_fd_list(&mut op.files).set_off(op.offset);
    }
    complete(op, res, _flags) -> io::Result<Vec<Option<FixedFd>>> {
        let n = res_to_io(res)? as usize;
        let files = op.files.targets().iter().zip(op.files.raw()).take(n);
        Ok(if op.offset == ALLOC {
            files.map(|(_, &slot)| Some(FixedFd::new(slot as u32))).collect()
        } else {
            files
                .enumerate()
                .map(|(i, (t, _))| t.as_ref().map(|_| FixedFd::new((op.offset as u32).wrapping_add(i as u32))))
                .collect()
        })
    }
    check(op) {
        for t in op.files.targets().iter().flatten() {
            t.require_descriptor("FilesUpdate", "a file")?;
        }
        Ok(())
    }
}

impl FilesUpdate {
    /// Sets slots `first`, `first + 1`, ... to `files` (`None` clears a slot).
    pub fn new<T: IntoTarget>(first: u32, files: impl IntoIterator<Item = Option<T>>) -> Self {
        let files = files.into_iter().map(|f| f.map(IntoTarget::into_target));
        Self::with(FdList::new(files.collect()), u64::from(first))
    }

    /// Puts `files` into free slots the kernel picks (Linux 5.19).
    pub fn alloc<T: IntoTarget>(files: impl IntoIterator<Item = T>) -> Self {
        let files = files.into_iter().map(|f| Some(f.into_target()));
        Self::with(FdList::new(files.collect()), ALLOC)
    }
}
