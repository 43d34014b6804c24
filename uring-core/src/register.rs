//! Typed registration (`io_uring_register(2)`).
//!
//! Every call here is one `io_uring_register` on the ring's fd; a failure is
//! [`Error::Os`] whose `call` names the register op (`"IORING_REGISTER_BUFFERS"`, ...) and whose
//! source carries the kernel's errno. The kernel version in each doc is the one that introduced
//! the op; older kernels answer `EINVAL`.

use crate::backend::Kernel;
use crate::error::{Error, Result};
use crate::ring::Ring;
use crate::sqe::SqeFlags;
use std::io;
use std::marker::PhantomData;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;
use uring_sys as sys;

/// Which opcodes the running kernel supports (`IORING_REGISTER_PROBE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    last_op: u8,
    supported: [u64; 4],
}

impl Probe {
    /// Whether the kernel supports `opcode` (`IORING_OP_*`).
    pub fn supports(&self, opcode: u8) -> bool {
        self.supported[usize::from(opcode / 64)] & (1 << (opcode % 64)) != 0
    }

    /// The highest opcode the kernel knows.
    pub fn last_op(&self) -> u8 {
        self.last_op
    }
}

/// One entry of a ring's allowlist, registered with [`Registrar::register_restrictions`] on a
/// ring built with [`crate::Builder::disabled`] (`struct io_uring_restriction`).
///
/// Once restrictions are registered and the ring enabled, the kernel refuses with `EACCES`
/// every register op and every SQE opcode not allowed here, and every SQE whose flags are not
/// within the allowed ones or lack a required one. An SQE refused this way completes with
/// `-EACCES` and does nothing else.
///
/// Since Linux 7.0 the two kinds are separate: register ops are restricted only when the set
/// has at least one [`Restriction::RegisterOp`], SQEs only when it has at least one of the
/// others. Before, any restriction restricted both. To refuse every register op on every
/// kernel, allow one that is harmless once the ring runs, such as
/// `IORING_REGISTER_ENABLE_RINGS` (an enabled ring refuses it with `EBADFD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Restriction {
    /// Allow this register op (`IORING_REGISTER_*`) after the ring is enabled
    /// (`IORING_RESTRICTION_REGISTER_OP`).
    RegisterOp(u8),
    /// Allow SQEs with this opcode (`IORING_OP_*`; `IORING_RESTRICTION_SQE_OP`).
    SqeOp(u8),
    /// SQE flags that may be set (`IORING_RESTRICTION_SQE_FLAGS_ALLOWED`). Without it no SQE
    /// may carry any flag outside those required.
    SqeFlagsAllowed(SqeFlags),
    /// SQE flags that every SQE must carry (`IORING_RESTRICTION_SQE_FLAGS_REQUIRED`).
    SqeFlagsRequired(SqeFlags),
}

impl Restriction {
    fn to_raw(self) -> sys::io_uring_restriction {
        let mut r = sys::io_uring_restriction::default();
        let (kind, value) = match self {
            Restriction::RegisterOp(op) => (sys::IORING_RESTRICTION_REGISTER_OP, op),
            Restriction::SqeOp(op) => (sys::IORING_RESTRICTION_SQE_OP, op),
            Restriction::SqeFlagsAllowed(f) => {
                (sys::IORING_RESTRICTION_SQE_FLAGS_ALLOWED, f.bits())
            }
            Restriction::SqeFlagsRequired(f) => {
                (sys::IORING_RESTRICTION_SQE_FLAGS_REQUIRED, f.bits())
            }
        };
        r.opcode = kind as u16;
        // `register_op`, `sqe_op` and `sqe_flags` are the same byte of the union.
        r.__bindgen_anon_1.sqe_op = value;
        r
    }
}

/// What a synchronous cancel ([`Registrar::cancel_sync`]) matches
/// (`struct io_uring_sync_cancel_reg`).
///
/// Without [`Cancel::all`] the first matching request is cancelled; with it, every one.
#[derive(Debug, Clone, Copy)]
pub struct Cancel<'fd> {
    addr: u64,
    fd: i32,
    flags: u32,
    opcode: u8,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl Cancel<'static> {
    /// Requests whose user data is `user_data`.
    pub fn user_data(user_data: u64) -> Self {
        Cancel::new(user_data, -1, 0, 0)
    }

    /// Requests on the registered file at `index` (`IORING_ASYNC_CANCEL_FD_FIXED`, Linux 6.0).
    pub fn fixed_fd(index: u32) -> Self {
        Cancel::new(
            0,
            index as i32,
            sys::IORING_ASYNC_CANCEL_FD | sys::IORING_ASYNC_CANCEL_FD_FIXED,
            0,
        )
    }

    /// Requests with opcode `op` (`IORING_ASYNC_CANCEL_OP`, Linux 6.6).
    pub fn opcode(op: u8) -> Self {
        Cancel::new(0, -1, sys::IORING_ASYNC_CANCEL_OP, op)
    }

    /// Every request in flight on the ring (`IORING_ASYNC_CANCEL_ANY`, Linux 5.19).
    pub fn any() -> Self {
        Cancel::new(0, -1, sys::IORING_ASYNC_CANCEL_ANY, 0)
    }
}

impl<'fd> Cancel<'fd> {
    fn new(addr: u64, fd: i32, flags: u32, opcode: u8) -> Self {
        Cancel {
            addr,
            fd,
            flags,
            opcode,
            _fd: PhantomData,
        }
    }

    /// Requests on file `fd` (`IORING_ASYNC_CANCEL_FD`, Linux 5.19).
    pub fn fd(fd: BorrowedFd<'fd>) -> Self {
        Cancel::new(0, fd.as_raw_fd(), sys::IORING_ASYNC_CANCEL_FD, 0)
    }

    /// Cancel every matching request, not only the first (`IORING_ASYNC_CANCEL_ALL`,
    /// Linux 5.19).
    pub fn all(mut self) -> Self {
        self.flags |= sys::IORING_ASYNC_CANCEL_ALL;
        self
    }

    /// Whether the kernel reports a count (with `ALL` or `ANY`) rather than 0 for success.
    fn counts(&self) -> bool {
        self.flags & (sys::IORING_ASYNC_CANCEL_ALL | sys::IORING_ASYNC_CANCEL_ANY) != 0
    }
}

/// Registration on a kernel ring; obtained from [`Ring::register`] or [`Kernel::register`].
///
/// All methods take `&self`: the kernel serialises register calls on a ring, and none of them
/// touches the ring memory this crate manages.
#[derive(Debug, Clone, Copy)]
pub struct Registrar<'a> {
    kernel: &'a Kernel,
}

impl Ring<Kernel> {
    /// Typed registration for this ring.
    pub fn register(&self) -> Registrar<'_> {
        Registrar {
            kernel: self.backend(),
        }
    }
}

impl Kernel {
    /// Typed registration for this ring.
    pub fn register(&self) -> Registrar<'_> {
        Registrar { kernel: self }
    }
}

/// `len` as the `u32` count the kernel takes; a slice too long for it is refused the way the
/// kernel refuses over-long tables.
fn count(call: &'static str, len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::os(call, io::Error::from_raw_os_error(libc::EINVAL)))
}

impl Registrar<'_> {
    /// `io_uring_register` with the ring's fd; `name` is the register op's name for errors.
    ///
    /// # Safety
    ///
    /// As for [`uring_sys::io_uring_register`]: `arg` is valid for what `opcode` does with it
    /// (reads, and writes where the op writes back), for `nr_args` entries.
    ///
    /// Registering or unregistering the ring fd this way bypasses the ring's record of it
    /// (which decides how it enters the kernel): use [`Registrar::register_ring_fd`].
    /// Enabling the ring this way is recorded as [`Registrar::enable_rings`] records it.
    pub unsafe fn raw(
        &self,
        name: &'static str,
        opcode: u32,
        arg: *mut libc::c_void,
        nr_args: u32,
    ) -> Result<u32> {
        // SAFETY: forwarded to the caller.
        let r = unsafe { sys::io_uring_register(self.kernel.as_fd(), opcode, arg, nr_args) }
            .map_err(|e| Error::os(name, e))?;
        if opcode & !sys::IORING_REGISTER_USE_REGISTERED_RING == sys::IORING_REGISTER_ENABLE_RINGS {
            self.kernel.mark_enabled();
        }
        Ok(r)
    }

    /// A register op that takes no argument.
    fn no_arg(&self, name: &'static str, opcode: u32, nr_args: u32) -> Result<u32> {
        // SAFETY: callers pass only ops that take no argument pointer (the kernel ignores or
        // requires a null `arg` for them), so no memory is read or written.
        unsafe { self.raw(name, opcode, std::ptr::null_mut(), nr_args) }
    }

    /// `IORING_REGISTER_PROBE` (Linux 5.6): which opcodes this kernel supports.
    pub fn probe(&self) -> Result<Probe> {
        const N: usize = 256;
        #[repr(C)]
        struct Buf {
            hdr: sys::io_uring_probe,
            ops: [sys::io_uring_probe_op; N],
        }
        // SAFETY: plain integers; all-zero is valid (the kernel requires a zeroed probe).
        let mut buf: Box<Buf> = Box::new(unsafe { std::mem::zeroed() });
        const _: () = assert!(size_of::<Buf>() == 16 + N * 8);
        // SAFETY: `buf` is writable for the header and N entries, as `nr_args` says.
        unsafe {
            self.raw(
                "IORING_REGISTER_PROBE",
                sys::IORING_REGISTER_PROBE,
                (&mut *buf as *mut Buf).cast(),
                N as u32,
            )
        }?;
        let mut supported = [0u64; 4];
        for op in buf.ops.iter().take(usize::from(buf.hdr.ops_len)) {
            if u32::from(op.flags) & sys::IO_URING_OP_SUPPORTED != 0 {
                supported[usize::from(op.op / 64)] |= 1 << (op.op % 64);
            }
        }
        Ok(Probe {
            last_op: buf.hdr.last_op,
            supported,
        })
    }

    // --- restrictions -------------------------------------------------------------------

    /// `IORING_REGISTER_RESTRICTIONS` (Linux 5.10): the allowlist of register ops, SQE opcodes
    /// and SQE flags that applies once the ring is enabled with [`Registrar::enable_rings`].
    ///
    /// Only on a ring built with [`crate::Builder::disabled`] (else `EBADFD`), and only once
    /// (else `EBUSY`).
    pub fn register_restrictions(&self, restrictions: &[Restriction]) -> Result<()> {
        const NAME: &str = "IORING_REGISTER_RESTRICTIONS";
        let mut raw: Vec<sys::io_uring_restriction> =
            restrictions.iter().map(|r| r.to_raw()).collect();
        let n = count(NAME, raw.len())?;
        // SAFETY: `raw` holds `n` restrictions; the kernel only reads them.
        unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_RESTRICTIONS,
                raw.as_mut_ptr().cast(),
                n,
            )
        }?;
        Ok(())
    }

    /// `IORING_REGISTER_ENABLE_RINGS` (Linux 5.10): starts a ring built with
    /// [`crate::Builder::disabled`]; its restrictions, if any, apply from now on. Before this,
    /// submitting fails with `EBADFD`; on a ring that is not disabled this fails with `EBADFD`.
    ///
    /// Once this succeeds, [`Ring::info`] no longer reports [`crate::SetupFlags::R_DISABLED`].
    pub fn enable_rings(&self) -> Result<()> {
        self.no_arg(
            "IORING_REGISTER_ENABLE_RINGS",
            sys::IORING_REGISTER_ENABLE_RINGS,
            0,
        )?;
        Ok(())
    }

    // --- buffers ------------------------------------------------------------------------

    /// `IORING_REGISTER_BUFFERS` (Linux 5.1): registers `bufs` as the ring's fixed buffers,
    /// index `i` being `bufs[i]`, for `READ_FIXED`/`WRITE_FIXED` and other ops that take a
    /// `buf_index`. The kernel pins the pages; each buffer is at most 1 GiB of anonymous (or
    /// huge-page) memory. Fails with `EBUSY` if buffers are already registered.
    ///
    /// # Safety
    ///
    /// Each `iovec` must describe memory valid for reads and writes that stays allocated,
    /// unmoved and not reused for anything else until its slot is replaced
    /// ([`Registrar::update_buffers`]), the buffers are unregistered, or the ring is closed,
    /// and that Rust code does not access while an op on it is in flight: the kernel writes
    /// into the pinned pages whenever a fixed op says so, whatever Rust believes about them.
    pub unsafe fn register_buffers(&self, bufs: &[libc::iovec]) -> Result<()> {
        const NAME: &str = "IORING_REGISTER_BUFFERS";
        let n = count(NAME, bufs.len())?;
        // SAFETY: `bufs` holds `n` iovecs, which the kernel only reads; what they point at is
        // the caller's promise (above).
        unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_BUFFERS,
                bufs.as_ptr().cast_mut().cast(),
                n,
            )
        }?;
        Ok(())
    }

    /// `IORING_REGISTER_BUFFERS2` with `IORING_RSRC_REGISTER_SPARSE` (Linux 5.19): a table of
    /// `n` empty buffer slots, to fill with [`Registrar::update_buffers`]. An op using an empty
    /// slot fails with `EFAULT`.
    pub fn register_buffers_sparse(&self, n: u32) -> Result<()> {
        self.register_sparse("IORING_REGISTER_BUFFERS2", sys::IORING_REGISTER_BUFFERS2, n)
    }

    /// A sparse table of `n` empty slots through `opcode` (`IORING_REGISTER_BUFFERS2` or
    /// `IORING_REGISTER_FILES2`), with `IORING_RSRC_REGISTER_SPARSE`.
    fn register_sparse(&self, name: &'static str, opcode: u32, n: u32) -> Result<()> {
        let mut rr = sys::io_uring_rsrc_register {
            nr: n,
            flags: sys::IORING_RSRC_REGISTER_SPARSE,
            ..Default::default()
        };
        // SAFETY: `rr` is a live `io_uring_rsrc_register`, its size passed as `nr_args`; the
        // kernel only reads it, and with the sparse flag and `data == 0` reads nothing else.
        unsafe {
            self.raw(
                name,
                opcode,
                (&mut rr as *mut sys::io_uring_rsrc_register).cast(),
                size_of::<sys::io_uring_rsrc_register>() as u32,
            )
        }?;
        Ok(())
    }

    /// `IORING_REGISTER_BUFFERS_UPDATE` (Linux 5.13): replaces the fixed buffers at
    /// `offset..offset + bufs.len()`; an `iovec` with a null base and zero length empties its
    /// slot. A replaced buffer is released once no op in flight uses it.
    ///
    /// Returns how many slots were updated: fewer than `bufs.len()` if the kernel stopped at
    /// an error after updating some.
    ///
    /// # Safety
    ///
    /// As for [`Registrar::register_buffers`], for each non-empty `iovec`.
    pub unsafe fn update_buffers(&self, offset: u32, bufs: &[libc::iovec]) -> Result<u32> {
        const NAME: &str = "IORING_REGISTER_BUFFERS_UPDATE";
        let mut up = sys::io_uring_rsrc_update2 {
            offset,
            data: bufs.as_ptr() as u64,
            nr: count(NAME, bufs.len())?,
            ..Default::default()
        };
        // SAFETY: `up` is a live `io_uring_rsrc_update2`, its size passed as `nr_args`, pointing
        // at `nr` iovecs; the kernel only reads both. What the iovecs point at is the caller's
        // promise (above).
        unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_BUFFERS_UPDATE,
                (&mut up as *mut sys::io_uring_rsrc_update2).cast(),
                size_of::<sys::io_uring_rsrc_update2>() as u32,
            )
        }
    }

    /// `IORING_UNREGISTER_BUFFERS` (Linux 5.1): drops the fixed-buffer table (`ENXIO` if there
    /// is none). Buffers still used by ops in flight are released when those complete.
    pub fn unregister_buffers(&self) -> Result<()> {
        self.no_arg(
            "IORING_UNREGISTER_BUFFERS",
            sys::IORING_UNREGISTER_BUFFERS,
            0,
        )?;
        Ok(())
    }

    // --- files --------------------------------------------------------------------------

    /// `IORING_REGISTER_FILES` (Linux 5.1): registers `fds` as the ring's fixed files, index
    /// `i` being `fds[i]`, for SQEs with [`SqeFlags::FIXED_FILE`]. The kernel takes its own
    /// reference to each file: closing an fd afterwards does not affect its slot. Fails with
    /// `EBUSY` if files are already registered.
    pub fn register_files(&self, fds: &[BorrowedFd<'_>]) -> Result<()> {
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        self.register_files_raw(&raw)
    }

    /// [`Registrar::register_files`] with raw fd numbers, `-1` for an empty slot (Linux 5.5).
    ///
    /// The kernel looks each number up in this process's fd table during the call (`EBADF`
    /// if one is not open) and from then on refers to the file, not the number.
    pub fn register_files_raw(&self, fds: &[RawFd]) -> Result<()> {
        const NAME: &str = "IORING_REGISTER_FILES";
        let n = count(NAME, fds.len())?;
        // SAFETY: `fds` holds `n` fds; the kernel only reads them.
        unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_FILES,
                fds.as_ptr().cast_mut().cast(),
                n,
            )
        }?;
        Ok(())
    }

    /// `IORING_REGISTER_FILES2` with `IORING_RSRC_REGISTER_SPARSE` (Linux 5.19): a table of `n`
    /// empty file slots, to fill with [`Registrar::update_files`] or by ops that install
    /// direct descriptors. An SQE naming an empty slot fails with `EBADF`.
    pub fn register_files_sparse(&self, n: u32) -> Result<()> {
        self.register_sparse("IORING_REGISTER_FILES2", sys::IORING_REGISTER_FILES2, n)
    }

    /// `IORING_REGISTER_FILES_UPDATE` (Linux 5.5): puts `fds` into the fixed-file slots
    /// `offset..offset + fds.len()`, releasing what was there.
    ///
    /// Returns how many slots were updated: fewer than `fds.len()` if the kernel stopped at an
    /// error after updating some.
    pub fn update_files(&self, offset: u32, fds: &[BorrowedFd<'_>]) -> Result<u32> {
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        self.update_files_raw(offset, &raw)
    }

    /// [`Registrar::update_files`] with raw fd numbers: `-1` empties a slot and
    /// `IORING_REGISTER_FILES_SKIP` (`-2`) leaves it as it is.
    pub fn update_files_raw(&self, offset: u32, fds: &[RawFd]) -> Result<u32> {
        const NAME: &str = "IORING_REGISTER_FILES_UPDATE";
        let n = count(NAME, fds.len())?;
        let mut up = sys::io_uring_files_update {
            offset,
            resv: 0,
            fds: fds.as_ptr() as u64,
        };
        // SAFETY: `up` is a live `io_uring_files_update` pointing at `n` fds, as `nr_args`
        // says; the kernel only reads both.
        unsafe {
            self.raw(
                NAME,
                sys::IORING_REGISTER_FILES_UPDATE,
                (&mut up as *mut sys::io_uring_files_update).cast(),
                n,
            )
        }
    }

    /// `IORING_UNREGISTER_FILES` (Linux 5.1): drops the fixed-file table (`ENXIO` if there is
    /// none).
    pub fn unregister_files(&self) -> Result<()> {
        self.no_arg("IORING_UNREGISTER_FILES", sys::IORING_UNREGISTER_FILES, 0)?;
        Ok(())
    }

    /// `IORING_REGISTER_FILE_ALLOC_RANGE` (Linux 6.0): ops that install a direct descriptor
    /// with `IORING_FILE_INDEX_ALLOC` pick a free slot in `offset..offset + len` only.
    pub fn register_file_alloc_range(&self, offset: u32, len: u32) -> Result<()> {
        let mut range = sys::io_uring_file_index_range {
            off: offset,
            len,
            resv: 0,
        };
        // SAFETY: `range` is a live `io_uring_file_index_range`; the kernel only reads it.
        unsafe {
            self.raw(
                "IORING_REGISTER_FILE_ALLOC_RANGE",
                sys::IORING_REGISTER_FILE_ALLOC_RANGE,
                (&mut range as *mut sys::io_uring_file_index_range).cast(),
                0,
            )
        }?;
        Ok(())
    }

    // --- eventfd ------------------------------------------------------------------------

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

    // --- personality --------------------------------------------------------------------

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

    // --- io-wq --------------------------------------------------------------------------

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

    // --- registered ring fd -------------------------------------------------------------

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
    /// any thread, fails with [`Error::RingFd`] until [`Registrar::unregister_ring_fd`] is
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
    /// the parent's registration, so this fails there with [`Error::RingFd`].
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
    /// [`Error::RingFd`] when nothing is registered or another thread registered it.
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

    // --- synchronous cancel -------------------------------------------------------------

    /// `IORING_REGISTER_SYNC_CANCEL` (Linux 6.0): cancels the requests `what` matches and
    /// returns once they are cancelled, waiting up to `timeout` (`None`: as long as it takes)
    /// for any that were already running. Each cancelled request still posts its CQE
    /// (usually `-ECANCELED`).
    ///
    /// Returns how many requests were cancelled: the kernel's count with [`Cancel::all`] or
    /// [`Cancel::any`] (0 if none matched), else 1.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] with `ENOENT` when nothing matched (without `all`/`any`), `ETIME` when the
    /// timeout passed first, `EINTR` on a signal, `EBADF` for a bad fd, `EINVAL` for flags
    /// this kernel does not know.
    pub fn cancel_sync(&self, what: Cancel<'_>, timeout: Option<Duration>) -> Result<u32> {
        let timeout = match timeout {
            // -1/-1: no timeout.
            None => sys::__kernel_timespec {
                tv_sec: -1,
                tv_nsec: -1,
            },
            Some(t) => sys::__kernel_timespec {
                tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: i64::from(t.subsec_nanos()),
            },
        };
        let mut reg = sys::io_uring_sync_cancel_reg {
            addr: what.addr,
            fd: what.fd,
            flags: what.flags,
            timeout,
            opcode: what.opcode,
            ..Default::default()
        };
        // SAFETY: `reg` is a live `io_uring_sync_cancel_reg` (pads zeroed, as the kernel
        // requires), one entry as `nr_args` says; the kernel only reads it.
        let n = unsafe {
            self.raw(
                "IORING_REGISTER_SYNC_CANCEL",
                sys::IORING_REGISTER_SYNC_CANCEL,
                (&mut reg as *mut sys::io_uring_sync_cancel_reg).cast(),
                1,
            )
        }?;
        // Without ALL/ANY the kernel reports the one cancellation as 0.
        Ok(if what.counts() { n } else { 1 })
    }
}
