//! Classic BPF filters on the SQEs a ring runs (`IORING_REGISTER_BPF_FILTER`).

use super::{blind, Registrar};
use crate::error::{Error, Result};
use uring_sys as sys;

/// A classic BPF program run on every SQE with opcode `opcode` before it is issued
/// (`struct io_uring_bpf_filter`): it returns 0 to refuse the SQE (which then completes with
/// `-EACCES` and does nothing) or non-zero to let it run. Filters only ever take permissions
/// away: several filters on one opcode must all allow an SQE, and a filter cannot be removed.
///
/// The program sees a `struct io_uring_bpf_ctx` (user data, opcode, SQE flags, and for some
/// opcodes a few of their arguments: the socket family of a `SOCKET`, the flags of an
/// `OPENAT2`, the address of a `CONNECT`); it may only load 32-bit words at 4-byte aligned
/// offsets of it, and do arithmetic and jumps (no packet access, no maps).
#[derive(Debug, Clone, Copy)]
pub struct BpfFilter<'a> {
    opcode: u8,
    program: &'a [libc::sock_filter],
    flags: u32,
    pdu_size: u8,
}

impl<'a> BpfFilter<'a> {
    /// `program` on the SQEs of `opcode` (`IORING_OP_*`).
    pub fn new(opcode: u8, program: &'a [libc::sock_filter]) -> Self {
        BpfFilter {
            opcode,
            program,
            flags: 0,
            pdu_size: 0,
        }
    }

    /// Also refuse every opcode that has no filter yet (`IO_URING_BPF_FILTER_DENY_REST`).
    pub fn deny_rest(mut self) -> Self {
        self.flags |= sys::IO_URING_BPF_FILTER_DENY_REST;
        self
    }

    /// The size of the opcode-specific part of the context the program was written for: the
    /// kernel refuses the filter (`EMSGSIZE`) if it provides less, or, with
    /// [`BpfFilter::strict`], anything else. 0 (the default) fits every opcode.
    pub fn pdu_size(mut self, size: u8) -> Self {
        self.pdu_size = size;
        self
    }

    /// Refuse the filter unless the kernel's context part is exactly [`BpfFilter::pdu_size`]
    /// (`IO_URING_BPF_FILTER_SZ_STRICT`).
    pub fn strict(mut self) -> Self {
        self.flags |= sys::IO_URING_BPF_FILTER_SZ_STRICT;
        self
    }

    fn to_raw(self, op: &'static str) -> Result<sys::io_uring_bpf> {
        let len = u32::try_from(self.program.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or(Error::Register {
                op,
                why: "a BPF program needs 1 to 4096 instructions",
            })?;
        let mut raw = sys::io_uring_bpf {
            cmd_type: sys::IO_URING_BPF_CMD_FILTER as u16,
            ..Default::default()
        };
        raw.__bindgen_anon_1.filter = sys::io_uring_bpf_filter {
            opcode: u32::from(self.opcode),
            flags: self.flags,
            filter_len: len,
            pdu_size: self.pdu_size,
            filter_ptr: self.program.as_ptr() as u64,
            ..Default::default()
        };
        Ok(raw)
    }
}

const NAME: &str = "IORING_REGISTER_BPF_FILTER";

/// Registers `filter` through `fd` (a ring, or -1 for the calling task) and returns the
/// kernel's size of the opcode's context part, which it writes back.
fn register(fd: Option<&Registrar<'_>>, filter: &BpfFilter<'_>) -> Result<u8> {
    let mut raw = filter.to_raw(NAME)?;
    let arg = (&mut raw as *mut sys::io_uring_bpf).cast();
    match fd {
        // SAFETY: `raw` is a live, exclusively borrowed `io_uring_bpf` (reserved fields
        // zeroed), one entry as `nr_args` says, naming `filter_len` instructions of a live
        // slice, which the kernel only reads (it copies the program); it writes the context
        // size back into `raw`.
        Some(r) => unsafe { r.raw(NAME, sys::IORING_REGISTER_BPF_FILTER, arg, 1) },
        // SAFETY: as above.
        None => unsafe { blind(NAME, sys::IORING_REGISTER_BPF_FILTER, arg, 1) },
    }?;
    // SAFETY: `filter` is the union's only member, written above (and by the kernel).
    Ok(unsafe { raw.__bindgen_anon_1.filter.pdu_size })
}

impl Registrar<'_> {
    /// `IORING_REGISTER_BPF_FILTER` (Linux 7.0): adds `filter` to this ring's, from its next
    /// SQE on. Returns the size of the opcode's context part in the running kernel.
    ///
    /// # Errors
    ///
    /// [`Error::Register`] for an empty program; from the kernel: `EINVAL` for an opcode past
    /// the kernel's last, a program the validator refuses, unknown flags, and before Linux 7.0
    /// (or on a kernel built without BPF); `EMSGSIZE` for a context size that does not fit
    /// ([`BpfFilter::pdu_size`]).
    pub fn register_bpf_filter(&self, filter: &BpfFilter<'_>) -> Result<u8> {
        register(Some(self), filter)
    }
}

/// `IORING_REGISTER_BPF_FILTER` without a ring (Linux 7.0): adds `filter` to the calling
/// thread's own, which apply to every ring it sets up from now on, and are inherited by the
/// threads and processes it creates. They cannot be removed.
///
/// # Errors
///
/// As for [`Registrar::register_bpf_filter`], and `EACCES` unless the thread has
/// `no_new_privs` set or `CAP_SYS_ADMIN`.
pub fn register_task_bpf_filter(filter: &BpfFilter<'_>) -> Result<u8> {
    register(None, filter)
}
