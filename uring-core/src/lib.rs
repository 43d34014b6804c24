#![doc = include_str!("../README.md")]
//!
//! # What it holds
//!
//! This crate owns the ring memory and every atomic access to it; what an SQE points at is the
//! caller's business, which is why committing SQEs is `unsafe` (the typed, owning layer is
//! `uring-ops`).
//!
//! - [`Builder`] sets a ring up (every setup flag, checked before the kernel sees it) and
//!   [`Ring`] holds it: a [`SubmissionQueue`] and a [`CompletionQueue`], usable together through
//!   `&mut` at no synchronisation cost, or split to live on two threads.
//! - SQEs are prepared in place: [`SubmissionQueue::reserve`] gives `n` zeroed [`Sqe`]s (all or
//!   nothing, for chains), [`Reservation::commit`] queues them, `submit` hands them over.
//! - Completions come as [`Cqe`]s from a [`Batch`]: the CQ head is published once per batch.
//! - [`Ring::register`] gives typed registration: every register op of the kernel (probe,
//!   restrictions, buffers and files, eventfd, personalities, io-wq limits, the ring fd,
//!   synchronous cancel, the wait clock, NAPI, queries, BPF filters, zero-copy receive, wait
//!   arguments, provided-buffer rings: [`BufRingMem`]); [`Ring::resize`] resizes a live
//!   ring's queues.
//! - The `sim` backend (feature `test-util`) runs the same ring code over heap memory serviced
//!   in-process, which is what Miri and loom check.
//!
//! # Memory ordering
//!
//! | word | written by | our access |
//! |---|---|---|
//! | SQ tail | us | `Release` store after the SQE writes |
//! | SQ head | kernel | `Acquire` load before reusing a slot |
//! | CQ tail | kernel | `Acquire` load before reading CQEs |
//! | CQ head | us | `Release` store after the CQEs are read |
//! | SQ flags (SQPOLL) | kernel | `SeqCst` fence after the tail store, then a load |
//!
//! Head and tail are free-running `u32` counters compared with `wrapping_sub`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod backend;
mod buf_ring;
mod cqe;
mod cqueue;
mod error;
mod fork;
mod raw;
#[cfg(not(loom))]
mod register;
mod ring;
mod setup;
/// The simulated kernel (feature `test-util`; always under loom).
#[cfg(any(test, loom, feature = "test-util"))]
pub mod sim;
mod sqe;
mod squeue;
mod sync;

#[cfg(not(loom))]
pub use backend::Kernel;
pub use backend::{Backend, DefaultBackend};
pub use buf_ring::{BufRingFlags, BufRingMem, MAX_BUF_RING_ENTRIES};
pub use cqe::{Cqe, CqeFlags};
pub use cqueue::{deadline_after, Batch, CompletionQueue};
pub use error::{Error, Result};
pub use fork::fork_generation;
#[cfg(not(loom))]
pub use register::*;
pub use ring::Ring;
pub use setup::{Builder, Features, RingInfo, SetupFlags, MAX_CQ_ENTRIES, MAX_ENTRIES};
pub use sqe::{Sqe, SqeFlags};
pub use squeue::{Reservation, SubmissionQueue};
pub use uring_sys::opcode_name;

/// The raw kernel ABI this crate is built on, for what the typed API does not cover.
pub use uring_sys as sys;
