//! Typed registration (`io_uring_register(2)`).
//!
//! Every call here is one `io_uring_register` on the ring's fd; a failure is
//! [`Error::Os`](crate::Error::Os) whose `call` names the register op (`"IORING_REGISTER_BUFFERS"`, ...) and whose
//! source carries the kernel's errno. The kernel version in each doc is the one that introduced
//! the op; older kernels answer `EINVAL`.

use crate::backend::Kernel;
use crate::error::{Error, Result};
use crate::ring::Ring;
use crate::sqe::SqeFlags;
use std::io;
use std::mem::size_of;
use std::os::fd::AsFd;
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

mod bpf;
mod buffers;
mod cancel;
mod clock;
mod files;
mod msg_ring;
mod napi;
mod query;
mod region;
mod resize;
mod ring_fd;
mod tasks;
mod zcrx;

pub use bpf::{register_task_bpf_filter, BpfFilter};
pub use buffers::CloneBuffers;
pub use cancel::Cancel;
pub use clock::Clock;
pub use msg_ring::send_msg_ring;
pub use napi::{Napi, NapiTracking};
pub use query::{query_opcodes, query_scq, query_zcrx, QueryOpcodes, QueryScq, QueryZcrx};
pub use region::WaitArgs;
pub use resize::Resize;
pub use zcrx::{ZcrxArea, ZcrxIfq, ZcrxIfqReg};

/// Registration on a kernel ring; obtained from [`Ring::register`] or [`Kernel::register`].
///
/// All methods take `&self`: the kernel serialises register calls on a ring, and none of them
/// touches the ring memory this crate manages. In a child forked after the ring was set up,
/// every call is refused with [`Error::ForkedChild`]: the kernel's ring is the parent's too.
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

/// `size_of::<T>()` as the `u32` some register ops take as `nr_args`.
const fn size_u32<T>() -> u32 {
    let n = size_of::<T>();
    assert!(n <= u32::MAX as usize);
    n as u32
}

/// A register op that takes no ring (`fd` -1): `IORING_REGISTER_SEND_MSG_RING`,
/// `IORING_REGISTER_QUERY`, the task-wide BPF filters.
///
/// # Safety
///
/// As for [`Registrar::raw`].
unsafe fn blind(
    name: &'static str,
    opcode: u32,
    arg: *mut libc::c_void,
    nr_args: u32,
) -> Result<u32> {
    // SAFETY: forwarded to the caller.
    unsafe { sys::io_uring_register_raw(-1, opcode, arg, nr_args) }.map_err(|e| Error::os(name, e))
}

impl Registrar<'_> {
    /// A tagged table registration (`IORING_REGISTER_FILES2`, `IORING_REGISTER_BUFFERS2`):
    /// the `len` entries at `data`, `tags[i]` the tag of entry `i`; `mismatch` says what a
    /// different number of tags is.
    ///
    /// # Safety
    ///
    /// `data` points at `len` readable entries of what `opcode` takes, valid as that op
    /// requires; the tags are the caller's promise of [`Registrar::register_files_tagged`].
    unsafe fn register_tagged(
        &self,
        name: &'static str,
        opcode: u32,
        (data, len): (u64, usize),
        tags: &[u64],
        mismatch: &'static str,
    ) -> Result<()> {
        if tags.len() != len {
            return Err(Error::Register {
                op: name,
                why: mismatch,
            });
        }
        let mut rr = sys::io_uring_rsrc_register {
            nr: count(name, len)?,
            data,
            tags: tags.as_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: `rr` is a live `io_uring_rsrc_register` (its size as `nr_args`) naming `nr`
        // entries and tags, which the kernel only reads; the rest is the caller's promise.
        unsafe {
            self.raw(
                name,
                opcode,
                (&mut rr as *mut sys::io_uring_rsrc_register).cast(),
                size_u32::<sys::io_uring_rsrc_register>(),
            )
        }?;
        Ok(())
    }

    /// A tagged table update (`IORING_REGISTER_FILES_UPDATE2`, `IORING_REGISTER_BUFFERS_UPDATE`)
    /// of the slots from `offset`, as [`Registrar::register_tagged`]; returns how many slots
    /// were updated.
    ///
    /// # Safety
    ///
    /// As for [`Registrar::register_tagged`].
    unsafe fn update_tagged(
        &self,
        name: &'static str,
        opcode: u32,
        offset: u32,
        (data, len): (u64, usize),
        tags: &[u64],
        mismatch: &'static str,
    ) -> Result<u32> {
        if tags.len() != len {
            return Err(Error::Register {
                op: name,
                why: mismatch,
            });
        }
        let mut up = sys::io_uring_rsrc_update2 {
            offset,
            data,
            tags: tags.as_ptr() as u64,
            nr: count(name, len)?,
            ..Default::default()
        };
        // SAFETY: `up` is a live `io_uring_rsrc_update2` (its size as `nr_args`) naming `nr`
        // entries and tags, which the kernel only reads; the rest is the caller's promise.
        unsafe {
            self.raw(
                name,
                opcode,
                (&mut up as *mut sys::io_uring_rsrc_update2).cast(),
                size_u32::<sys::io_uring_rsrc_update2>(),
            )
        }
    }
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
        // A forked child shares the kernel's ring with its parent: registering or
        // unregistering from it would change the parent's ring behind the parent's back
        // (unregistering the buffers of a live pool, for one).
        if self.kernel.is_inherited() {
            return Err(Error::ForkedChild);
        }
        // SAFETY: forwarded to the caller.
        let r = unsafe { sys::io_uring_register(self.kernel.as_fd(), opcode, arg, nr_args) }
            .map_err(|e| Error::os(name, e))?;
        if opcode & !sys::IORING_REGISTER_USE_REGISTERED_RING == sys::IORING_REGISTER_ENABLE_RINGS {
            self.kernel.mark_enabled();
        }
        Ok(r)
    }

    /// A register op that takes no argument.
    pub(super) fn no_arg(&self, name: &'static str, opcode: u32, nr_args: u32) -> Result<u32> {
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
}
