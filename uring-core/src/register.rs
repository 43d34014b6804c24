//! Typed registration (`io_uring_register(2)`).

use crate::backend::Kernel;
use crate::error::{Error, Result};
use crate::ring::Ring;
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

/// Registration on a kernel ring; obtained from [`Ring::register`].
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

impl Registrar<'_> {
    /// `io_uring_register` with the ring's fd.
    ///
    /// # Safety
    ///
    /// As for [`uring_sys::io_uring_register`].
    pub unsafe fn raw(
        &self,
        name: &'static str,
        opcode: u32,
        arg: *mut libc::c_void,
        nr_args: u32,
    ) -> Result<u32> {
        // SAFETY: forwarded to the caller.
        unsafe { sys::io_uring_register(self.kernel.as_fd(), opcode, arg, nr_args) }
            .map_err(|e| Error::os(name, e))
    }

    /// `IORING_REGISTER_PROBE`: which opcodes this kernel supports.
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
}
