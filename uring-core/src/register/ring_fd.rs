//! The registered ring fd (`IORING_REGISTER_RING_FDS`).

use super::Registrar;
use crate::error::{Error, Result};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use uring_sys as sys;

impl Registrar<'_> {
    /// `IORING_REGISTER_RING_FDS` (Linux 5.18): registers the ring fd in the calling thread's
    /// table of registered rings and returns its index there. From then on this thread
    /// enters the kernel with the index and `IORING_ENTER_REGISTERED_RING`, which skips the
    /// fd lookup on every `io_uring_enter`.
    ///
    /// # Threads
    ///
    /// The kernel keeps this table per thread, so the index means nothing elsewhere: other
    /// threads keep entering through the plain fd (correct, just not faster). Register on the
    /// thread that submits. Only one registration per ring is recorded: a second one, from
    /// any thread, fails with [`Error::RingFd`](crate::Error::RingFd) until [`Registrar::unregister_ring_fd`] is
    /// called on the registering thread.
    ///
    /// The entry holds a reference to the ring: if the ring is dropped on another thread while
    /// registered, the ring lives on until the registering thread exits. (Dropped on the
    /// registering thread, it is unregistered first.) Each thread has at most 16 entries
    /// (`EBUSY` when full).
    ///
    /// # Fork
    ///
    /// A forked child does not inherit the table: in the child no thread counts as the
    /// registering one, so the child enters through the plain fd, and neither
    /// [`Registrar::unregister_ring_fd`] nor dropping the ring there touches the parent's
    /// index. (The first registration installs a `pthread_atfork` child handler for this.) The
    /// child cannot register the ring fd itself either: its copy of the ring still records
    /// the parent's registration, so this fails there with [`Error::RingFd`](crate::Error::RingFd).
    pub fn register_ring_fd(&self) -> Result<u32> {
        const NAME: &str = "IORING_REGISTER_RING_FDS";
        let _guard = self.kernel.lock_ring_fd();
        if self.kernel.registered_index().is_some() {
            return Err(Error::RingFd(
                "already registered; unregister it on the thread that registered it first",
            ));
        }
        let mut up = sys::io_uring_rsrc_update {
            // u32::MAX (-1): let the kernel pick a free index.
            offset: u32::MAX,
            resv: 0,
            data: self.kernel.as_fd().as_raw_fd() as u64,
        };
        // SAFETY: `up` is a live, exclusively borrowed `io_uring_rsrc_update`, one entry as
        // `nr_args` says: the kernel reads the fd and writes the chosen index into `offset`.
        let n = unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_RING_FDS,
                (&mut up as *mut sys::io_uring_rsrc_update).cast(),
                1,
            )
        }?;
        if n != 1 {
            return Err(Error::os(NAME, io::Error::from_raw_os_error(libc::EIO)));
        }
        if let Err(why) = self.kernel.set_registered_index(Some(up.offset)) {
            // The registration cannot be recorded: undo, so no entry pins the ring unseen.
            self.unregister_ring_index(up.offset)?;
            return Err(Error::RingFd(why));
        }
        Ok(up.offset)
    }

    /// `IORING_UNREGISTER_RING_FDS` (Linux 5.18): removes the ring fd registered by
    /// [`Registrar::register_ring_fd`]; entering goes back to the plain fd.
    ///
    /// Must be called on the thread that registered it: the kernel would look the index up
    /// in the calling thread's own table, where it may name another ring. Fails with
    /// [`Error::RingFd`](crate::Error::RingFd) when nothing is registered or another thread registered it.
    pub fn unregister_ring_fd(&self) -> Result<()> {
        let _guard = self.kernel.lock_ring_fd();
        let Some(index) = self.kernel.registered_index() else {
            return Err(Error::RingFd("not registered"));
        };
        if !self.kernel.registered_here() {
            return Err(Error::RingFd(
                "registered by another thread; the kernel's table is per thread, \
                 so only that thread can unregister it",
            ));
        }
        self.unregister_ring_index(index)?;
        // Forgetting cannot fail.
        let _ = self.kernel.set_registered_index(None);
        Ok(())
    }

    fn unregister_ring_index(&self, index: u32) -> Result<()> {
        let mut up = sys::io_uring_rsrc_update {
            offset: index,
            ..Default::default()
        };
        // SAFETY: `up` is a live `io_uring_rsrc_update`, one entry as `nr_args` says; the
        // kernel only reads it.
        unsafe {
            self.raw(
                "IORING_UNREGISTER_RING_FDS",
                sys::IORING_UNREGISTER_RING_FDS,
                (&mut up as *mut sys::io_uring_rsrc_update).cast(),
                1,
            )
        }?;
        Ok(())
    }
}
