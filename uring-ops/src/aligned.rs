//! Owned buffers aligned for direct I/O (`O_DIRECT`), and the alignment a file asks for.

use crate::buf::{IoBuf, IoBufMut};
use crate::error::{Error, Result};
use std::alloc::{self, Layout};
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;

/// The alignment used where the kernel does not report one: a page on the common machines,
/// and a multiple of every common logical block size (512, 4096).
pub const DIO_FALLBACK_ALIGN: usize = 4096;

/// What direct I/O on a file needs aligned, from its `statx` (`STATX_DIOALIGN`).
///
/// `O_DIRECT` reads and writes must start at a memory address that is a multiple of
/// [`DioAlign::mem_align`], and both their file offset and their length must be multiples of
/// [`DioAlign::offset_align`]; otherwise the kernel refuses them with `EINVAL` (or, on some
/// file systems, quietly goes through the page cache).
///
/// The kernel reports these since Linux 6.1 (`stx_dio_mem_align`, `stx_dio_offset_align`), for
/// block devices and the file systems that fill them in (ext4, xfs and f2fs from 6.1; others
/// since).
/// Where it does not, both are [`DIO_FALLBACK_ALIGN`] and [`DioAlign::source`] says so.
/// (Linux 6.14 can also report a smaller offset alignment for reads alone,
/// `STATX_DIO_READ_ALIGN`; [`DioAlign::offset_align`] holds for reads and writes alike, so it
/// is the one given here.)
///
/// # Examples
///
/// ```
/// use uring_ops::{DioAlign, DioSource};
/// let file = std::fs::File::open(std::env::current_exe()?)?;
/// let dio = DioAlign::of(&file)?;
/// assert!(dio.mem_align.is_power_of_two() && dio.offset_align.is_power_of_two());
/// if dio.source != DioSource::Statx {
///     assert_eq!((dio.mem_align, dio.offset_align), (4096, 4096));
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DioAlign {
    /// What the start of a buffer must be a multiple of (`stx_dio_mem_align`).
    pub mem_align: usize,
    /// What file offsets and lengths must be multiples of (`stx_dio_offset_align`; it holds
    /// for reads and writes alike).
    pub offset_align: usize,
    /// Where the two come from.
    pub source: DioSource,
}

/// Where a [`DioAlign`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DioSource {
    /// The file's `statx` reported them (`STATX_DIOALIGN`).
    Statx,
    /// The kernel (before Linux 6.1, or without `statx`) or the file system (tmpfs, for one)
    /// does not report them: both are [`DIO_FALLBACK_ALIGN`].
    NotReported,
    /// The file system reports that this file does not support direct I/O (both fields 0):
    /// both are [`DIO_FALLBACK_ALIGN`], and `O_DIRECT` will be refused or not be direct.
    NoDirectIo,
}

impl DioAlign {
    /// The fallback: [`DIO_FALLBACK_ALIGN`] for both.
    const fn fallback(source: DioSource) -> Self {
        DioAlign {
            mem_align: DIO_FALLBACK_ALIGN,
            offset_align: DIO_FALLBACK_ALIGN,
            source,
        }
    }

    /// The direct-I/O alignment of an open file (or block device), from its `statx`.
    ///
    /// # Errors
    ///
    /// `statx`'s own error (a kernel without `statx`, `ENOSYS`, is not one: it gives
    /// [`DioSource::NotReported`]).
    pub fn of(file: &impl AsFd) -> io::Result<Self> {
        // SAFETY: `statx` is plain integers: all zeros is a valid value.
        let mut st: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: the descriptor is open (borrowed through `AsFd`), the path is an empty C
        // string (with AT_EMPTY_PATH: the descriptor itself) and `st` is a `statx` to fill.
        let r = unsafe {
            libc::statx(
                file.as_fd().as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH | libc::AT_STATX_SYNC_AS_STAT,
                libc::STATX_DIOALIGN,
                &mut st,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOSYS) => Ok(Self::fallback(DioSource::NotReported)),
                _ => Err(e),
            };
        }
        // Kernels before 6.1 ignore the bit they do not know and leave it out of the mask.
        if st.stx_mask & libc::STATX_DIOALIGN == 0 {
            return Ok(Self::fallback(DioSource::NotReported));
        }
        if st.stx_dio_mem_align == 0 && st.stx_dio_offset_align == 0 {
            return Ok(Self::fallback(DioSource::NoDirectIo));
        }
        Ok(DioAlign {
            mem_align: st.stx_dio_mem_align as usize,
            offset_align: st.stx_dio_offset_align as usize,
            source: DioSource::Statx,
        })
    }

    /// The alignment [`AlignedBuf::for_file`] gives its buffers: the larger of the two, so
    /// that a buffer also starts on an offset-alignment boundary (a block), not only on the
    /// memory alignment (which can be as small as 4).
    pub fn buf_align(&self) -> usize {
        self.mem_align.max(self.offset_align)
    }
}

/// An owned, zeroed heap buffer whose start is aligned to a power of two: a buffer for direct
/// I/O (`O_DIRECT`) that the ops own like a `Vec<u8>`.
///
/// Like a `Vec<u8>` with a fixed capacity: it dereferences to its first [`AlignedBuf::len`]
/// bytes, a read fills up to its capacity ([`IoBufMut`]) and a write sends its length
/// ([`IoBuf`]). All its bytes are always initialised (zeroed when it is made), so
/// [`AlignedBuf::set_len`] is safe. It never reallocates: its start stays aligned.
///
/// [`AlignedBuf::for_file`] takes the alignment (and rounds the capacity) from the file's
/// [`DioAlign`]; [`AlignedBuf::new`] takes them as given. A direct read or write also needs
/// its file offset and length to be multiples of [`DioAlign::offset_align`]: the buffer sees
/// to the address, the caller to those.
///
/// # Examples
///
/// Write a block with `O_DIRECT` and read it back (the example falls back to the page cache
/// where the file system refuses `O_DIRECT`, as tmpfs before Linux 6.6 does):
///
/// ```
/// use std::os::unix::fs::OpenOptionsExt;
/// use uring_ops::ops::{Read, Write};
/// use uring_ops::{AlignedBuf, Fd, Uring};
///
/// let path = std::env::temp_dir().join(format!("aligned-doc-{}", std::process::id()));
/// let mut open = std::fs::OpenOptions::new();
/// open.read(true).write(true).create(true);
/// let file = match open.clone().custom_flags(libc::O_DIRECT).open(&path) {
///     Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open.open(&path)?,
///     f => f?,
/// };
/// let (mut buf, dio) = AlignedBuf::for_file(&file, 4096)?;
/// assert_eq!(buf.as_ptr() as usize % dio.mem_align, 0);
/// assert_eq!(buf.capacity() % dio.offset_align, 0);
/// buf.set_len(buf.capacity())?;
/// buf.fill(0x5a);
///
/// let file = Fd::new(file);
/// let mut ring = Uring::new(4)?;
/// let t = ring.push(Write::new(&file, buf, 0))?;
/// let (n, mut buf) = ring.wait(t)?;
/// assert_eq!(n?, buf.len());
///
/// buf.clear();
/// let t = ring.push(Read::new(&file, buf, 0))?;
/// let (n, buf) = ring.wait(t)?;
/// assert_eq!(n?, buf.capacity());
/// assert!(buf.iter().all(|&b| b == 0x5a));
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AlignedBuf {
    /// Start of `cap` bytes, aligned to `align`, all initialised; owned by this value alone.
    ptr: NonNull<u8>,
    /// Bytes holding data: in `0..=cap`.
    len: usize,
    /// Bytes of room: at least 1.
    cap: usize,
    /// A power of two.
    align: usize,
}

// SAFETY: the heap block is owned by this value alone and reached only through it.
unsafe impl Send for AlignedBuf {}
// SAFETY: `&AlignedBuf` only reads the block.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// The largest alignment [`AlignedBuf::new`] takes: 2 MiB, a huge page (no file system
    /// asks for more than a page).
    pub const MAX_ALIGN: usize = 1 << 21;

    /// An empty buffer (length 0) of `capacity` zeroed bytes whose start is a multiple of
    /// `align`.
    ///
    /// # Errors
    ///
    /// [`Error::BadAlignment`] when `align` is not a power of two (0 included) or is above
    /// [`AlignedBuf::MAX_ALIGN`];
    /// [`Error::OutOfRange`] for a capacity of 0; [`Error::OutOfMemory`] when the allocator
    /// refuses it, or `capacity` rounded up to `align` passes `isize::MAX` (`ENOMEM`).
    ///
    /// # Examples
    ///
    /// ```
    /// use uring_ops::{AlignedBuf, Error};
    /// let buf = AlignedBuf::new(512, 512)?;
    /// assert_eq!((buf.len(), buf.capacity(), buf.as_ptr() as usize % 512), (0, 512, 0));
    /// assert!(matches!(AlignedBuf::new(512, 3), Err(Error::BadAlignment { align: 3 })));
    /// assert!(matches!(
    ///     AlignedBuf::new(usize::MAX, 4096),
    ///     Err(Error::OutOfMemory { bytes: usize::MAX })
    /// ));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(capacity: usize, align: usize) -> Result<Self> {
        if !align.is_power_of_two() || align > Self::MAX_ALIGN {
            return Err(Error::BadAlignment { align });
        }
        if capacity == 0 {
            return Err(Error::out_of_range(
                "AlignedBuf::new",
                "capacity",
                0,
                1,
                isize::MAX as u64,
            ));
        }
        let layout = Layout::from_size_align(capacity, align)
            .map_err(|_| Error::OutOfMemory { bytes: capacity })?;
        // SAFETY: the layout's size is at least 1.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        // A refusal is the caller's to handle (a size from input, say), not an abort.
        let ptr = NonNull::new(ptr).ok_or(Error::OutOfMemory { bytes: capacity })?;
        Ok(AlignedBuf {
            ptr,
            len: 0,
            cap: capacity,
            align,
        })
    }

    /// An empty buffer for direct I/O on `file`: aligned to its [`DioAlign::buf_align`], with
    /// room for `capacity` bytes rounded up to a multiple of its [`DioAlign::offset_align`]
    /// (so that a read can fill all of it). Returns the alignment it found too.
    ///
    /// # Errors
    ///
    /// `statx`'s error ([`DioAlign::of`]); the errors of [`AlignedBuf::new`], as an
    /// [`io::Error`] keeping the [`Error`] inside (`get_ref` and `downcast_ref` reach it).
    pub fn for_file(file: &impl AsFd, capacity: usize) -> io::Result<(Self, DioAlign)> {
        let dio = DioAlign::of(file)?;
        let rounded = if dio.offset_align.is_power_of_two() {
            capacity
                .checked_next_multiple_of(dio.offset_align)
                .ok_or(Error::OutOfMemory { bytes: capacity })?
        } else {
            capacity
        };
        Ok((AlignedBuf::new(rounded, dio.buf_align())?, dio))
    }

    /// Bytes holding data.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte holds data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer's size (what a read may fill).
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// What the buffer's start is a multiple of (a power of two).
    pub fn align(&self) -> usize {
        self.align
    }

    /// Sets the length. The bytes past the old length keep what they held (zeros, or what an
    /// earlier use left).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] when `len > capacity()`; the length is then unchanged.
    pub fn set_len(&mut self, len: usize) -> Result<()> {
        if len > self.cap {
            return Err(self.past_capacity("AlignedBuf::set_len", len));
        }
        self.len = len;
        Ok(())
    }

    /// Empties the buffer (length 0).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `data`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] when it does not fit (`len() + data.len() > capacity()`); nothing
    /// is appended then.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> Result<()> {
        // Both are at most isize::MAX: the sum fits.
        let end = self.len + data.len();
        if end > self.cap {
            return Err(self.past_capacity("AlignedBuf::extend_from_slice", end));
        }
        // SAFETY: `len..end` is inside the block, which only `self` reaches; `data` cannot
        // overlap it (that would need a borrow of `self`).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.ptr.as_ptr().add(self.len),
                data.len(),
            )
        };
        self.len = end;
        Ok(())
    }

    /// All `capacity()` bytes, whatever the length.
    pub fn as_full_slice_mut(&mut self) -> &mut [u8] {
        // SAFETY: `cap` initialised bytes, owned by `self`, borrowed mutably with it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    fn past_capacity(&self, op: &'static str, len: usize) -> Error {
        Error::out_of_range(op, "length", len as u64, 0, self.cap as u64)
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this size and alignment (a valid layout then), and
        // freed only here; no op holds it (an op owns the buffer while the kernel uses it).
        unsafe {
            alloc::dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.cap, self.align),
            )
        };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len <= cap` initialised bytes, owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, with `&mut self` for exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.cap)
            .field("align", &self.align)
            .finish()
    }
}

// SAFETY: the heap block does not move with the value and stays allocated until it is dropped;
// it is valid for reads of `cap >= len` bytes, all initialised (zeroed at allocation).
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.cap
    }
}

// SAFETY: as above; only this value reaches the block, so the kernel may write all `cap`
// bytes of it.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    /// Grows the length to `n` if the kernel filled past it; never shrinks it (as for `Vec`).
    unsafe fn set_init(&mut self, n: usize) {
        self.len = self.len.max(n.min(self.cap));
    }
}

#[cfg(test)]
mod tests;
