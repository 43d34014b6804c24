//! What the ring does for the tasks that use it: eventfd notifications, personalities (credentials), io-wq worker limits.

use super::Registrar;
use crate::error::{Error, Result};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use uring_sys as sys;

impl Registrar<'_> {
    // --- eventfd ---

    /// `IORING_REGISTER_EVENTFD` (Linux 5.2): the kernel adds 1 to the eventfd's counter
    /// whenever it posts completions (unless disabled with
    /// [`crate::CompletionQueue::set_eventfd_enabled`]). The kernel keeps its own reference to
    /// the eventfd. Fails with `EBUSY` if one is registered.
    pub fn register_eventfd(&self, eventfd: BorrowedFd<'_>) -> Result<()> {
        self.eventfd(
            "IORING_REGISTER_EVENTFD",
            sys::IORING_REGISTER_EVENTFD,
            eventfd,
        )
    }

    /// `IORING_REGISTER_EVENTFD_ASYNC` (Linux 5.6): like [`Registrar::register_eventfd`], but
    /// signalled only for completions posted from the kernel's async workers, not for those
    /// that complete inline while submitting.
    pub fn register_eventfd_async(&self, eventfd: BorrowedFd<'_>) -> Result<()> {
        self.eventfd(
            "IORING_REGISTER_EVENTFD_ASYNC",
            sys::IORING_REGISTER_EVENTFD_ASYNC,
            eventfd,
        )
    }

    fn eventfd(&self, name: &'static str, opcode: u32, eventfd: BorrowedFd<'_>) -> Result<()> {
        let mut fd: RawFd = eventfd.as_raw_fd();
        // SAFETY: `fd` is a live `i32`, one entry as `nr_args` says; the kernel only reads it.
        unsafe { self.raw(name, opcode, (&mut fd as *mut RawFd).cast(), 1) }?;
        Ok(())
    }

    /// `IORING_UNREGISTER_EVENTFD` (Linux 5.2): stops signalling the registered eventfd
    /// (`ENXIO` if there is none).
    pub fn unregister_eventfd(&self) -> Result<()> {
        self.no_arg(
            "IORING_UNREGISTER_EVENTFD",
            sys::IORING_UNREGISTER_EVENTFD,
            0,
        )?;
        Ok(())
    }

    // --- personality ---

    /// `IORING_REGISTER_PERSONALITY` (Linux 5.6): records the calling thread's credentials and
    /// returns their id, for [`crate::Sqe::set_personality`]: an SQE with that id runs with
    /// these credentials.
    pub fn register_personality(&self) -> Result<u16> {
        const NAME: &str = "IORING_REGISTER_PERSONALITY";
        let id = self.no_arg(NAME, sys::IORING_REGISTER_PERSONALITY, 0)?;
        // The kernel allocates ids in 1..=u16::MAX.
        u16::try_from(id).map_err(|_| Error::os(NAME, io::Error::from_raw_os_error(libc::ERANGE)))
    }

    /// `IORING_UNREGISTER_PERSONALITY` (Linux 5.6): forgets personality `id` (`EINVAL` if
    /// unknown). Later SQEs naming it complete with `-EINVAL`.
    pub fn unregister_personality(&self, id: u16) -> Result<()> {
        self.no_arg(
            "IORING_UNREGISTER_PERSONALITY",
            sys::IORING_UNREGISTER_PERSONALITY,
            u32::from(id),
        )?;
        Ok(())
    }

    // --- io-wq ---

    /// `IORING_REGISTER_IOWQ_MAX_WORKERS` (Linux 5.15): caps the async workers of the calling
    /// thread's io-wq at `[bounded, unbounded]` (bounded: regular-file and block I/O;
    /// unbounded: everything else); a 0 leaves that limit as it is, so `[0, 0]` only reads
    /// them. The caps also apply to other threads using this ring.
    ///
    /// Returns the previous limits, or `[0, 0]` if the calling thread has no io-wq yet (a
    /// thread gets one when it sets up or first submits to an io_uring); the new limits then
    /// still apply to the threads using the ring. Values above `i32::MAX` fail with `EINVAL`.
    pub fn register_iowq_max_workers(&self, limits: [u32; 2]) -> Result<[u32; 2]> {
        let mut values = limits;
        // SAFETY: `values` is a live, exclusively borrowed `[u32; 2]`, as `nr_args` says: the
        // kernel reads the new limits from it and writes the old ones back.
        unsafe {
            self.raw(
                "IORING_REGISTER_IOWQ_MAX_WORKERS",
                sys::IORING_REGISTER_IOWQ_MAX_WORKERS,
                values.as_mut_ptr().cast(),
                2,
            )
        }?;
        Ok(values)
    }

    /// `IORING_REGISTER_IOWQ_AFF` (Linux 5.14): pins the async workers of the calling thread's
    /// io-wq (of the SQPOLL thread's, on an SQPOLL ring) to `cpus`. Fails with `EINVAL` if the
    /// thread has no io-wq yet (it has neither set up nor submitted to an io_uring) or if
    /// `cpus` is not
    /// within the CPUs the thread's cpuset allows. CPUs past the kernel's CPU count are ignored.
    pub fn register_iowq_aff(&self, cpus: &libc::cpu_set_t) -> Result<()> {
        // SAFETY: `cpus` is a live `cpu_set_t` of the length passed as `nr_args`; the kernel
        // only reads it.
        unsafe {
            self.raw(
                "IORING_REGISTER_IOWQ_AFF",
                sys::IORING_REGISTER_IOWQ_AFF,
                (cpus as *const libc::cpu_set_t).cast_mut().cast(),
                size_of::<libc::cpu_set_t>() as u32,
            )
        }?;
        Ok(())
    }

    /// `IORING_UNREGISTER_IOWQ_AFF` (Linux 5.14): lets the async workers run on every CPU the
    /// thread may use again.
    pub fn unregister_iowq_aff(&self) -> Result<()> {
        self.no_arg(
            "IORING_UNREGISTER_IOWQ_AFF",
            sys::IORING_UNREGISTER_IOWQ_AFF,
            0,
        )?;
        Ok(())
    }
}
