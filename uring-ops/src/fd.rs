//! The file an op works on, held open for as long as the kernel may look it up.
//!
//! The kernel resolves an op's descriptor number late: when the SQE is submitted (which for a
//! [`crate::Uring`] is the next submit, and on an SQPOLL ring whenever the poller gets to it),
//! and for a later link of a chain only when that link starts (`IORING_FEAT_LINKED_FILE`). If
//! the descriptor were closed before then, its number could already name another file, and the
//! op would act on that one. So an op never holds a bare number: it holds a [`Target`], which
//! keeps the descriptor open (a share of an [`Fd`]) or names a registered-file slot, until the
//! op's completion is reaped and the op is given back or dropped.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use uring_core::{Sqe, SqeFlags};

/// A shared, owned file descriptor: the cheap handle ops hold to keep their file open.
///
/// Made once from anything that owns a descriptor (`File`, `OwnedFd`, `TcpStream`,
/// `UnixStream`, ...); cloning it is a reference-count increment, and the descriptor is closed
/// when the last clone is dropped — by the caller, or by the last op that held it, once its
/// completion is reaped. Passing `&fd` to an op's constructor clones it into the op.
///
/// # Examples
///
/// ```
/// use uring_ops::{ops::Read, Fd, Uring};
/// let f = Fd::new(std::fs::File::open("/dev/zero")?);
/// let mut ring = Uring::new(8)?;
/// let t = ring.push(Read::new(&f, vec![1u8; 16], 0))?;
/// drop(f); // the op keeps the file open until it completes
/// let (n, buf) = ring.wait(t)?;
/// assert_eq!((n?, &buf[..4]), (16, &[0u8; 4][..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Fd {
    inner: Arc<OwnedFd>,
}

impl Fd {
    /// Takes ownership of `fd` (one allocation, for the shared count).
    pub fn new(fd: impl Into<OwnedFd>) -> Self {
        Fd {
            inner: Arc::new(fd.into()),
        }
    }

    /// The descriptor back, if this is the last handle (no op holds it any more); otherwise
    /// the handle itself.
    ///
    /// # Errors
    ///
    /// `Err(self)` while other handles exist (in ops still in flight, or clones).
    pub fn try_into_owned(self) -> Result<OwnedFd, Self> {
        Arc::try_unwrap(self.inner).map_err(|inner| Fd { inner })
    }

    /// How many handles share the descriptor, this one included.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }
}

impl<T: Into<OwnedFd>> From<T> for Fd {
    fn from(fd: T) -> Self {
        Fd::new(fd)
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl fmt::Debug for Fd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fd").field(&self.as_raw_fd()).finish()
    }
}

/// The file an op works on: a descriptor it keeps open, or a registered-file slot.
///
/// Made from an [`Fd`] (`&fd` shares it, `fd` moves it in), from anything that owns a
/// descriptor (`File`, `OwnedFd`, sockets: moved into the op, closed when the op is dropped
/// after its completion), from a registered-file index ([`Target::fixed`]), or, `unsafe`, from
/// a bare number ([`Target::from_raw_fd`]). A borrowed `&File` is deliberately not accepted:
/// the op could outlive the borrow, and the kernel looks the number up late.
#[derive(Clone)]
pub struct Target {
    /// The number written into the SQE: a descriptor, or a registered-file index.
    raw: i32,
    /// Whether `raw` is a registered-file index (`IOSQE_FIXED_FILE`).
    fixed: bool,
    /// What keeps the descriptor `raw` open, for a shared descriptor.
    keep: Option<Arc<OwnedFd>>,
}

impl Target {
    /// A registered (fixed) file: index `index` of the ring's file table (`IOSQE_FIXED_FILE`).
    ///
    /// The slot is the ring's: the kernel looks it up when the op starts, so an op acts on the
    /// file in the slot at that time (replacing the slot's file is the caller's own doing).
    pub fn fixed(index: u32) -> Self {
        Target {
            raw: index as i32,
            fixed: true,
            keep: None,
        }
    }

    /// The current working directory (`AT_FDCWD`), as the directory of the `*at` ops
    /// (`OpenAt`, `Statx`, ...): not a descriptor, so there is nothing to keep open.
    pub fn cwd() -> Self {
        Target {
            raw: libc::AT_FDCWD,
            fixed: false,
            keep: None,
        }
    }

    /// A bare descriptor number.
    ///
    /// # Safety
    ///
    /// `fd` must stay open, naming the same file, until the completion of every op made with
    /// this target has been reaped (for a dropped ticket: until the ring is dropped), since the
    /// kernel may look it up at any time before then.
    pub unsafe fn from_raw_fd(fd: RawFd) -> Self {
        Target {
            raw: fd,
            fixed: false,
            keep: None,
        }
    }

    /// The number the SQE carries: a descriptor, or a registered-file index.
    pub fn raw(&self) -> i32 {
        self.raw
    }

    /// Whether this is a registered-file index.
    pub fn is_fixed(&self) -> bool {
        self.fixed
    }

    /// `Ok` for a descriptor (or [`Target::cwd`]); for a registered-file index, the error an
    /// op gives for a file the kernel takes only as a descriptor (`what`, of op `op`).
    pub(crate) fn require_descriptor(
        &self,
        op: &'static str,
        what: &'static str,
    ) -> crate::Result<()> {
        if self.fixed {
            return Err(crate::Error::FixedFileNotAccepted {
                op,
                what,
                index: self.raw as u32,
            });
        }
        Ok(())
    }

    /// Writes the fd field (and `IOSQE_FIXED_FILE` for a registered-file index).
    #[inline]
    pub(crate) fn apply(&self, sqe: &mut Sqe) {
        sqe.set_fd(self.raw);
        if self.fixed {
            sqe.add_flags(SqeFlags::FIXED_FILE);
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.fixed, &self.keep) {
            (true, _) => write!(f, "Target::fixed({})", self.raw),
            (false, Some(_)) => write!(f, "Target(fd {})", self.raw),
            (false, None) => write!(f, "Target(raw fd {})", self.raw),
        }
    }
}

/// A slot of the ring's registered-file table that an op filled with a descriptor the kernel
/// created (opening, accepting or making a socket into a fixed slot, installing one): its
/// index, typed. Use it as an op's file (it is a [`Target::fixed`]); closing it is the ring's
/// business (a `Close` of the slot, or unregistering the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedFd {
    index: u32,
}

impl FixedFd {
    /// The slot `index`, as the kernel reported it (for the ops that fill slots).
    pub(crate) fn new(index: u32) -> Self {
        FixedFd { index }
    }

    /// Its index in the ring's registered-file table.
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl From<FixedFd> for Target {
    fn from(f: FixedFd) -> Self {
        Target::fixed(f.index)
    }
}

impl IntoTarget for FixedFd {
    #[inline]
    fn into_target(self) -> Target {
        Target::fixed(self.index)
    }
}

impl IntoTarget for &FixedFd {
    #[inline]
    fn into_target(self) -> Target {
        Target::fixed(self.index)
    }
}

mod sealed {
    /// Seals [`super::Dest`].
    pub trait Sealed {}
}

/// Where an op that creates a descriptor (opening, making a pipe, installing a registered
/// file) puts it, and what it hands back for it: [`NewFd`], a descriptor of the process
/// ([`OwnedFd`]), or [`NewSlot`], a slot of the ring's registered-file table ([`FixedFd`]).
/// Sealed.
pub trait Dest: sealed::Sealed + fmt::Debug + Send + 'static {
    /// What the op hands back for each descriptor it created.
    type Created: fmt::Debug + Send + 'static;

    /// The SQE's `file_index`: 0 for a new descriptor, the slot + 1, or
    /// `IORING_FILE_INDEX_ALLOC`.
    #[doc(hidden)]
    fn file_index(&self) -> u32;

    /// The `nth` descriptor the op created (0, or 1 for a pipe's write end), from the number
    /// the kernel reported for it (the completion's result, or what it wrote for a pipe).
    ///
    /// # Safety
    ///
    /// The kernel created that descriptor for this op, just now, and nothing else owns it.
    #[doc(hidden)]
    unsafe fn created(&self, raw: i32, nth: u32) -> Self::Created;
}

/// A new descriptor in the process's table (the default of the ops that create one), handed
/// back as an [`OwnedFd`]: closed when dropped, also when the op's ticket is detached or its
/// ring dropped before the result is taken ([`crate::Op::discard`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewFd;

impl sealed::Sealed for NewFd {}

impl Dest for NewFd {
    type Created = OwnedFd;

    #[inline]
    fn file_index(&self) -> u32 {
        0
    }

    #[inline]
    unsafe fn created(&self, raw: i32, _nth: u32) -> OwnedFd {
        // SAFETY: the caller guarantees the kernel just made `raw` for this op and nothing else
        // owns it.
        unsafe { OwnedFd::from_raw_fd(raw) }
    }
}

/// A slot of the ring's registered-file table (Linux 5.15; an allocated slot, 5.19), handed
/// back as a [`FixedFd`]: a given index (whose previous file, if any, the kernel replaces), or
/// one the kernel picks from the free slots (`IORING_FILE_INDEX_ALLOC`; from the range set with
/// `register_file_alloc_range`, if any). The ring must have a registered-file table
/// (`register_files` or `register_files_sparse`); the slot stays filled until a `Close` of it
/// or the table is unregistered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewSlot {
    /// `None`: allocated by the kernel.
    index: Option<u32>,
}

impl NewSlot {
    /// Slot `index` (its file, if any, is replaced; ops in flight on it keep the old one).
    pub fn at(index: u32) -> Self {
        NewSlot { index: Some(index) }
    }

    /// A free slot the kernel picks (Linux 5.19); the op fails with `ENFILE` when none is free.
    pub fn alloc() -> Self {
        NewSlot { index: None }
    }

    /// The slot asked for (`None`: allocated).
    pub fn index(&self) -> Option<u32> {
        self.index
    }

    /// The handle of the given slot, to name it in the later links of a chain whose first
    /// link fills it (`OpenAt` into the slot → `Read` from it → `Close` of it); `None` for an
    /// allocated slot, which is known only from the result.
    pub fn fixed_fd(&self) -> Option<FixedFd> {
        self.index.map(FixedFd::new)
    }
}

impl sealed::Sealed for NewSlot {}

impl Dest for NewSlot {
    type Created = FixedFd;

    #[inline]
    fn file_index(&self) -> u32 {
        match self.index {
            // The kernel takes the slot plus one (0 means "not into a slot"; all ones is
            // ALLOC). An index past any table (they hold at most 2^20 files) is sent as one
            // the kernel refuses (`EINVAL`), never as ALLOC.
            Some(i) => i.saturating_add(1).min(u32::MAX - 1),
            None => uring_core::sys::IORING_FILE_INDEX_ALLOC,
        }
    }

    #[inline]
    unsafe fn created(&self, raw: i32, nth: u32) -> FixedFd {
        match self.index {
            // The kernel reports 0 for a slot it was given; the second of a pair goes in the
            // next slot.
            Some(i) => FixedFd::new(i.wrapping_add(nth)),
            None => FixedFd::new(raw as u32),
        }
    }
}

/// What an op's constructor takes as its file: an [`Fd`] (`&fd` shares it, `fd` moves it in), a
/// [`Target`], a [`FixedFd`], or anything that owns a descriptor (`File`, `OwnedFd`, sockets: moved into the
/// op and closed when the op is dropped after its completion).
#[diagnostic::on_unimplemented(
    message = "an op needs a file it can keep open until its completion, not `{Self}`",
    label = "not a file the op can own",
    note = "make the file an `uring_ops::Fd` once (`Fd::new(file)`) and pass `&fd`, or move an owned `File`/`OwnedFd` in; a bare descriptor number needs `unsafe {{ Target::from_raw_fd(n) }}`"
)]
pub trait IntoTarget {
    /// The target.
    fn into_target(self) -> Target;
}

impl IntoTarget for Target {
    #[inline]
    fn into_target(self) -> Target {
        self
    }
}

impl IntoTarget for Fd {
    #[inline]
    fn into_target(self) -> Target {
        Target::from(self)
    }
}

impl IntoTarget for &Fd {
    #[inline]
    fn into_target(self) -> Target {
        Target::from(self.clone())
    }
}

/// Owned descriptors of the standard library, moved into the op. (Any other type that owns a
/// descriptor goes through [`Fd::new`].)
macro_rules! owned_targets {
    ($($t:ty),* $(,)?) => {
        $(
            impl IntoTarget for $t {
                fn into_target(self) -> Target {
                    Target::from(Fd::new(self))
                }
            }
        )*
    };
}

owned_targets!(
    OwnedFd,
    std::fs::File,
    std::net::TcpStream,
    std::net::TcpListener,
    std::net::UdpSocket,
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixListener,
    std::os::unix::net::UnixDatagram,
    std::process::ChildStdin,
    std::process::ChildStdout,
    std::process::ChildStderr,
);

impl From<Fd> for Target {
    fn from(fd: Fd) -> Self {
        Target {
            raw: fd.inner.as_raw_fd(),
            fixed: false,
            keep: Some(fd.inner),
        }
    }
}

impl From<&Fd> for Target {
    fn from(fd: &Fd) -> Self {
        Target::from(fd.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_target_keeps_its_descriptor_open() {
        let f = Fd::new(std::fs::File::open("/dev/null").unwrap());
        let raw = f.as_raw_fd();
        let t = Target::from(&f);
        assert_eq!((t.raw(), t.is_fixed(), f.handles()), (raw, false, 2));
        drop(f);
        // Still open, and still the same file: the target holds the last handle.
        // SAFETY: fstat fills the stat buffer it is given.
        let ino = |fd| unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            assert_eq!(libc::fstat(fd, &mut st), 0, "fd {fd} is closed");
            (st.st_dev, st.st_ino)
        };
        let null = std::fs::metadata("/dev/null").unwrap();
        assert_eq!(ino(raw), (null.dev(), null.ino()));
        let mut sqe = Sqe::zeroed();
        t.apply(&mut sqe);
        assert_eq!((sqe.fd(), sqe.flags()), (raw, SqeFlags::empty()));
    }

    #[test]
    fn fixed_and_raw_targets() {
        let mut sqe = Sqe::zeroed();
        Target::fixed(7).apply(&mut sqe);
        assert_eq!((sqe.fd(), sqe.flags()), (7, SqeFlags::FIXED_FILE));
        let mut sqe = Sqe::zeroed();
        FixedFd::new(9).into_target().apply(&mut sqe);
        assert_eq!((sqe.fd(), sqe.flags()), (9, SqeFlags::FIXED_FILE));
        let cwd = Target::cwd();
        assert_eq!((cwd.raw(), cwd.is_fixed()), (libc::AT_FDCWD, false));
        // SAFETY: the target is only written into an SQE that is never submitted.
        let t = unsafe { Target::from_raw_fd(3) };
        assert_eq!((t.raw(), t.is_fixed()), (3, false));
    }

    #[test]
    fn the_last_handle_gives_the_descriptor_back() {
        let f = Fd::new(std::fs::File::open("/dev/null").unwrap());
        let t = Target::from(&f);
        let f = f.try_into_owned().unwrap_err();
        drop(t);
        assert!(f.try_into_owned().is_ok());
    }
}
