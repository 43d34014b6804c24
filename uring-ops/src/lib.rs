#![doc = include_str!("../README.md")]
//!
//! # What it holds
//!
//! - [`Uring`] takes ops ([`ops`]: one struct per opcode) and keeps each, at a fixed address,
//!   from push until its completion is reaped, then gives it back with its result through a
//!   [`Ticket`]. Safe code cannot make the kernel touch freed memory: a dropped or forgotten
//!   ticket leaves the op in the ring, and a ring dropped with ops in flight cancels them, waits
//!   a bounded time, and leaks (never frees) what the kernel may still use.
//! - Nor can it make an op act on a file it was not given: an op holds its file open
//!   ([`Target`]: a share of an [`Fd`], or a registered-file index) until its completion is
//!   reaped, however late the kernel looks the descriptor up.
//! - Buffers are anything implementing [`IoBuf`] / [`IoBufMut`]: `Vec<u8>`, `Box<[u8]>`, ...,
//!   and registered buffers ([`FixedBuf`], from a [`FixedBufs`] pool) for the fixed ops;
//!   [`AlignedBuf`] is aligned for direct I/O (`O_DIRECT`), to what the file asks
//!   ([`DioAlign`]).
//! - Multishot ops ([`Multishot`]) stay in flight across many completions; [`Uring::drain`]
//!   takes what has arrived without ending them.
//! - Receives can take their buffer from a provided-buffer ring ([`BufRing`]) as data
//!   arrives; each comes back as an owned [`ProvidedBuf`] that returns to the ring when
//!   dropped (module [`pbuf`]).
//! - Errors on push hand the op back ([`PushError`]), so no buffer is lost.
//! - [`Chain`] links typed ops (`IOSQE_IO_LINK`, hard links, link timeouts) into one
//!   all-or-nothing submission with a typed result per link; [`SharedBuf`] lets its links share
//!   one buffer (read into it, write it out) without a copy.
//! - [`Context`] is the ring to share between threads: push from any thread, redeem tickets or
//!   wait for completions from any thread, wake a waiter, restrict the ring to an allowlist.
//!
//! A prepared SQE can still be pushed through the ring ([`RawSqe`], `unsafe` to make); for raw
//! SQEs with no ring bookkeeping at all, use `uring-core` directly.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod addr;
mod aligned;
mod as_ring;
#[cfg(feature = "async")]
pub mod awaitable;
mod buf;
mod chain;
mod completion;
mod context;
mod error;
mod fd;
mod fixed_buf;
mod multishot;
mod op;
pub mod ops;
mod options;
mod pages;
mod path;
pub mod pbuf;
mod push;
mod raw;
mod shared_buf;
mod slab;
#[cfg(feature = "async")]
mod sync;
mod uring;

pub use addr::SockAddr;
pub use aligned::{AlignedBuf, DioAlign, DioSource, DIO_FALLBACK_ALIGN};
pub use as_ring::AsRing;
#[cfg(feature = "async")]
pub use awaitable::{LocalRing, SharedRing};
pub use buf::{IoBuf, IoBufMut};
pub use chain::{Chain, Linked, MAX_LINKS};
#[doc(hidden)]
pub use chain::{ChainEntry, LinkMeta, Links};
pub use completion::{Completion, Completions, Outcome};
pub use context::{Batch, Context, ContextBuilder};
pub use error::{Error, PushError, RangeError, Result};
pub use fd::{Dest, Fd, FixedFd, IntoTarget, NewFd, NewSlot, Target};
pub use fixed_buf::{FixedBuf, FixedBufs, MAX_FIXED_BUFS, MAX_FIXED_BUF_SIZE};
pub use multishot::{Multishot, MultishotOp, MultishotOutput};
#[doc(hidden)]
pub use op::{Entry, OpCheck};
pub use op::{Op, OpSet, Submit};
pub use options::{OpExt, SqeOptions, WithOptions};
pub use pages::Pages;
pub use path::{CPath, IntoCPath};
pub use pbuf::{BufGroup, BufRing, BufRingBuilder, IntoGroup, ProvidedBuf};
pub use raw::{RawCompletion, RawSqe};
pub use shared_buf::SharedBuf;
pub use uring::{Ticket, Uring, DROP_DRAIN_TIMEOUT};

/// The ring layer, re-exported.
pub use uring_core as core;
