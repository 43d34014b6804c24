//! Whole pages of anonymous memory: a buffer that memory advice ([`crate::ops::Madvise`])
//! can act on without touching anything else.

use crate::buf::{IoBuf, IoBufMut};
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Whole pages of private anonymous memory (`mmap`), zeroed, owned, unmapped when dropped.
///
/// A buffer like a `Vec<u8>` (it reads and writes as one), whose start and length are
/// page-aligned, so that advice about its pages ([`crate::ops::Madvise`]) concerns it alone:
/// advice on the pages of a heap buffer would also act on the allocations sharing them.
///
/// # Examples
///
/// ```
/// let mut p = uring_ops::Pages::new(10_000)?;
/// assert_eq!(p.len() % 4096, 0);
/// p[0] = 7;
/// assert_eq!(p[..2], [7, 0]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Pages {
    /// Start of the mapping (page-aligned), `len` bytes, readable and writable.
    ptr: NonNull<u8>,
    /// A positive multiple of the page size.
    len: usize,
}

// SAFETY: the mapping is owned by this value alone, and reached only through it.
unsafe impl Send for Pages {}
// SAFETY: `&Pages` only reads.
unsafe impl Sync for Pages {}

/// The page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

impl Pages {
    /// At least `len` bytes: `len` rounded up to whole pages, zeroed.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a length of 0 or one that overflows when rounded up; `mmap`'s
    /// error (`ENOMEM`) otherwise.
    pub fn new(len: usize) -> io::Result<Self> {
        let page = page_size();
        let rounded = len
            .checked_add(page - 1)
            .map(|l| l & !(page - 1))
            .filter(|&l| l > 0 && l <= isize::MAX as usize)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("Pages::new({len}): the length must be between 1 and isize::MAX rounded down to a page"),
                )
            })?;
        // SAFETY: a new private anonymous mapping; no address hint, so nothing else is
        // affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                rounded,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Pages {
            ptr: NonNull::new(p.cast())
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?,
            len: rounded,
        })
    }
}

impl Deref for Pages {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` readable, initialised (zeroed) bytes, owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Pages {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: `len` writable bytes, owned by `self`, borrowed mutably with it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; no op holds it (an op owns the
        // `Pages` while the kernel uses them).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl fmt::Debug for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages").field("len", &self.len).finish()
    }
}

// SAFETY: the mapping does not move with the value and holds `len` initialised bytes.
unsafe impl IoBuf for Pages {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.len
    }
}

// SAFETY: as above, writable; always fully initialised.
unsafe impl IoBufMut for Pages {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, _n: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_zeroed_pages_and_edges() {
        let page = page_size();
        let mut p = Pages::new(1).unwrap();
        assert_eq!(p.len(), page);
        assert_eq!(p.as_ptr() as usize % page, 0);
        assert!(p.iter().all(|&b| b == 0));
        p[page - 1] = 9;
        assert_eq!(p[page - 1], 9);
        assert_eq!(Pages::new(page + 1).unwrap().len(), 2 * page);
        for bad in [0, usize::MAX, usize::MAX - page + 2] {
            let e = Pages::new(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
