//! The kernel's ring memory, mapped into the process.

use crate::error::{Error, Result};
use crate::fork::Region;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// A shared, read-write mapping of ring memory, unmapped on drop; recorded for the fork
/// child handler while it lives (see `crate::fork`).
#[derive(Debug)]
pub(crate) struct Mmap {
    pub(crate) ptr: NonNull<u8>,
    len: usize,
    region: Option<Region>,
}

impl Mmap {
    pub(crate) fn new(fd: BorrowedFd<'_>, offset: u64, len: usize) -> Result<Self> {
        // SAFETY: a fresh shared mapping of the ring fd at an offset the kernel defines; the
        // result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::os("mmap", io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr.cast())
            .ok_or_else(|| Error::os("mmap", io::Error::from_raw_os_error(libc::EFAULT)))?;
        let mut map = Mmap {
            ptr,
            len,
            region: None,
        };
        // Recorded once mapped, so that a forked child gets a private copy of it. On
        // failure `map` is dropped, which unmaps it.
        map.region = Some(
            Region::new(ptr.as_ptr(), len)
                .ok_or_else(|| Error::os("mmap", io::Error::from_raw_os_error(libc::ENOMEM)))?,
        );
        Ok(map)
    }
}

impl Mmap {
    /// The mapping's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // Forgotten by the fork handler before it is unmapped.
        drop(self.region.take());
        // SAFETY: `ptr`/`len` are exactly a mapping made in `Mmap::new`, unmapped once here,
        // after every user of the ring memory is gone (the mapping lives in the backend,
        // which the queues keep alive through an `Arc`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
