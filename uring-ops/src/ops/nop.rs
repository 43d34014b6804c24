//! `IORING_OP_NOP`.

use crate::op::{res_to_io, Op, SqeOptions};
use std::io;
use uring_core::{sys, Sqe};

/// Does nothing, and completes (Linux 5.1). Useful to wake a waiter or to test the ring.
///
/// Owns nothing. Returns `Ok(())`, or with [`Nop::inject_result`] the injected result.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nop {
    inject: Option<i32>,
    opts: SqeOptions,
}

impl Nop {
    /// A NOP.
    pub const fn new() -> Self {
        Nop {
            inject: None,
            opts: SqeOptions::new(),
        }
    }

    /// Completes with `res` instead of 0 (`IORING_NOP_INJECT_RESULT`, Linux 6.12): a negative
    /// value is an errno. Older kernels refuse the flag (6.1 refuses any NOP flag): the NOP
    /// then fails with `EINVAL`, as it is prepared, which in a chain fails the whole chain.
    pub const fn inject_result(mut self, res: i32) -> Self {
        self.inject = Some(res);
        self
    }
}
super::sqe_options!(Nop);

// SAFETY: a NOP names no memory (so none inside itself: it may be prepared before it moves).
unsafe impl Op for Nop {
    const OPCODE: u8 = sys::IORING_OP_NOP as u8;
    const NAME: &'static str = "Nop";
    type Output = io::Result<u32>;
    const SQE_POINTS_INTO_SELF: bool = false;

    #[inline]
    fn prepare(&mut self, sqe: &mut Sqe) {
        sqe.set_opcode(Self::OPCODE);
        if let Some(res) = self.inject {
            sqe.set_nop_flags(sys::IORING_NOP_INJECT_RESULT)
                .set_len(res as u32);
        }
    }

    fn options(&self) -> SqeOptions {
        self.opts
    }

    #[inline]
    fn complete(self, res: i32, _flags: u32) -> io::Result<u32> {
        res_to_io(res)
    }
}
