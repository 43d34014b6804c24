//! One struct per opcode, grouped by subject.
//!
//! Each op is built with its required arguments in `new` and optional ones as chained setters,
//! has a `const` opcode ([`crate::Op::OPCODE`]), owns what the kernel touches until its
//! completion is reaped, and gives it back with the result.

mod cancel;
mod fixed;
mod fs;
mod link_timeout;
mod nop;
mod poll;
mod rw;
mod timeout;

#[cfg(test)]
mod tests;

pub use cancel::AsyncCancel;
pub use fixed::{ReadFixed, WriteFixed};
pub use fs::{Fallocate, FallocateMode, Fsync};
pub use link_timeout::{LinkTimeout, LinkTimeoutOutcome};
pub use nop::Nop;
pub use poll::{PollAdd, PollEvents, PollRemove};
pub use rw::{Read, Readv, Write, Writev};
pub use timeout::{Clock, Timeout, TimeoutFired, TimeoutRemove};

/// Implements the common SQE option setters for an op struct with an `opts: SqeOptions` field.
macro_rules! sqe_options {
    ($t:ident $(< $($g:ident : $b:path),* >)?) => {
        impl $(< $($g: $b),* >)? $t $(< $($g),* >)? {
            /// Sets the SQE options (drain, async, personality, ...).
            pub fn options(mut self, opts: $crate::SqeOptions) -> Self {
                self.opts = opts;
                self
            }
        }
    };
}
pub(crate) use sqe_options;
