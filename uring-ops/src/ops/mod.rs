//! One struct per opcode, grouped by subject.
//!
//! Each op is built with its required arguments in `new` and optional ones as chained setters,
//! has a `const` opcode ([`crate::Op::OPCODE`]), owns what the kernel touches until its
//! completion is reaped — buffers, and a share of the file it names ([`crate::Target`]) — and
//! gives it back with the result. SQE options (drain, async, personality) are added to any op
//! with [`crate::OpExt`].
//!
//! # How an op is defined
//!
//! Every op here is one `op!` block: its fields, each of a *kind* that says what it names to
//! the kernel and what keeps that valid (a file kept open, an owned buffer, a timespec inside
//! the op, a plain number), its optional setters, its opcode, how it fills the SQE (through the
//! kinds' writers only), and its output. The `unsafe impl Op` behind them is written once, in
//! the macro, and its safety argument follows from the kinds.

pub(crate) mod define;
pub(crate) mod kinds;

mod cancel;
mod cmd;
mod epoll;
mod fs;
mod futex;
mod link_timeout;
mod mem;
mod msg;
pub(crate) mod msg_hdr;
mod msg_ring;
mod net;
mod nop;
mod open;
mod path;
mod poll;
mod process;
mod provide;
mod read_multi;
mod rw;
mod sendrecv;
mod sockcmd;
mod splice;
mod timeout;
mod xattr;
mod zc;

#[cfg(test)]
mod tests;

pub use cancel::AsyncCancel;
pub use cmd::{CmdKeep, UringCmd};
pub use epoll::{EpollCtl, EpollEvent, EpollEvents, EpollWait, EPOLL_MAX_EVENTS};
pub use fs::{
    Fadvise, Fallocate, FallocateMode, FileAdvice, Fsync, Ftruncate, SyncFileRange, SyncRange,
};
pub use futex::{FutexWait, FutexWaitV, FutexWake, FUTEX_WAITV_MAX};
pub use link_timeout::{LinkTimeout, LinkTimeoutOutcome};
pub use mem::{Madvise, MemAdvice};
pub use msg::{MsgReceived, RecvMsg, RecvMsgMulti, RecvMsgOut, SendMsg};
pub use msg_ring::{MsgRing, RingFd};
pub use net::{Accept, AcceptDest, Bind, Connect, Listen, Shutdown, Socket, WithPeer};
pub use nop::Nop;
pub use open::{Close, CloseError, FilesUpdate, FixedFdInstall, OpenAt, OpenAt2, Pipe, Resolve};
pub use path::{LinkAt, MkdirAt, RenameAt, Statx, SymlinkAt, UnlinkAt};
pub use poll::{PollAdd, PollEvents, PollRemove, PollUpdate};
pub use process::{WaitId, WaitStatus};
pub use provide::{ProvideBuffers, RemoveBuffers};
pub use read_multi::ReadMulti;
pub use rw::{Read, ReadFixed, Readv, ReadvFixed, Write, WriteFixed, Writev, WritevFixed};
pub use sendrecv::{Recv, RecvBundle, RecvProvided, Send};
pub use sockcmd::{GetSockOpt, SetSockOpt, SiocInq, SiocOutq};
pub use splice::{Splice, SpliceFlags, Tee};
pub use timeout::{Clock, Timeout, TimeoutFired, TimeoutRemove, TimeoutUpdate};
pub use xattr::{FGetXattr, FSetXattr, GetXattr, SetXattr, XattrFlags};
pub use zc::{SendMsgZc, SendZc, ZcNotification, ZcSent};
#[doc(hidden)]
pub use zc::{SendMsgZcOp, SendZcOp, ZcEntry};
