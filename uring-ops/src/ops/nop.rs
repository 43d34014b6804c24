//! `IORING_OP_NOP`.

use super::define::op;
use crate::error::Error;
use crate::op::{res_to_io, MAX_ERRNO};
use std::io;
use uring_core::sys;

op! {
    /// Does nothing, and completes (Linux 5.1). Useful to wake a waiter or to test the ring.
    ///
    /// Owns nothing. Returns `Ok(())`, or with [`Nop::inject_result`] the injected result.
    #[derive(Clone, Copy)]
    pub struct Nop {
        /// A NOP.
        pub fn new {}
        state { inject: Option<i32> = None }
    }
    opcode = sys::IORING_OP_NOP;
    prepare(op, sqe) {
        if let Some(res) = op.inject {
            sqe.set_nop_flags(sys::IORING_NOP_INJECT_RESULT)
                .set_len(res as u32);
        }
    }
    complete(_op, res, _flags) -> io::Result<u32> { res_to_io(res) }
    check(op) {
        match op.inject {
            Some(res) if res < -MAX_ERRNO => Err(Error::NotAnErrno { res }),
            _ => Ok(()),
        }
    }
}

impl Default for Nop {
    fn default() -> Self {
        Nop::new()
    }
}

impl Nop {
    /// Completes with `res` instead of 0 (`IORING_NOP_INJECT_RESULT`, Linux 6.12): a count,
    /// or a negative errno (-1 to -4095). A push refuses any other negative value with
    /// [`Error::NotAnErrno`]. Older kernels refuse the flag (6.1 refuses any NOP flag): the NOP
    /// then fails with `EINVAL` as it is prepared, which in a chain fails the whole chain.
    pub fn inject_result(mut self, res: i32) -> Self {
        self.inject = Some(res);
        self
    }
}
