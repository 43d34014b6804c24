//! Compile-time checks of the ABI layout that ring code relies on.
//!
//! bindgen's own layout tests cover every field; these name the ones `uring-core` depends on, so
//! a header change that moved them fails here with a readable message.

use crate::*;
use core::mem::{offset_of, size_of};
use static_assertions::{assert_eq_size, const_assert_eq};

assert_eq_size!(io_uring_sqe, [u8; 64]);
assert_eq_size!(io_uring_cqe, [u8; 16]);
assert_eq_size!(io_uring_params, [u8; 120]);
assert_eq_size!(io_sqring_offsets, [u8; 40]);
assert_eq_size!(io_cqring_offsets, [u8; 40]);
assert_eq_size!(io_uring_probe, [u8; 16]);
assert_eq_size!(io_uring_probe_op, [u8; 8]);
assert_eq_size!(io_uring_getevents_arg, [u8; 24]);
assert_eq_size!(io_uring_restriction, [u8; 16]);
assert_eq_size!(io_uring_rsrc_register, [u8; 32]);
assert_eq_size!(io_uring_rsrc_update2, [u8; 32]);
assert_eq_size!(io_uring_files_update, [u8; 16]);
assert_eq_size!(__kernel_timespec, [u8; 16]);
assert_eq_size!(open_how, [u8; 24]);

// io_uring_sqe: the fields every op writes (the unions are reached through their offsets).
const_assert_eq!(offset_of!(io_uring_sqe, opcode), 0);
const_assert_eq!(offset_of!(io_uring_sqe, flags), 1);
const_assert_eq!(offset_of!(io_uring_sqe, ioprio), 2);
const_assert_eq!(offset_of!(io_uring_sqe, fd), 4);
const_assert_eq!(offset_of!(io_uring_sqe, __bindgen_anon_1), 8); // off / addr2
const_assert_eq!(offset_of!(io_uring_sqe, __bindgen_anon_2), 16); // addr / splice_off_in
const_assert_eq!(offset_of!(io_uring_sqe, len), 24);
const_assert_eq!(offset_of!(io_uring_sqe, __bindgen_anon_3), 28); // op flags
const_assert_eq!(offset_of!(io_uring_sqe, user_data), 32);
const_assert_eq!(offset_of!(io_uring_sqe, __bindgen_anon_4), 40); // buf_index / buf_group
const_assert_eq!(offset_of!(io_uring_sqe, personality), 42);
const_assert_eq!(offset_of!(io_uring_sqe, __bindgen_anon_5), 44); // splice_fd_in / file_index
const_assert_eq!(size_of::<io_uring_sqe>() - 16, 48); // addr3 + pad / cmd start at 48

// io_uring_cqe
const_assert_eq!(offset_of!(io_uring_cqe, user_data), 0);
const_assert_eq!(offset_of!(io_uring_cqe, res), 8);
const_assert_eq!(offset_of!(io_uring_cqe, flags), 12);

// io_uring_params: what setup reads and writes.
const_assert_eq!(offset_of!(io_uring_params, sq_entries), 0);
const_assert_eq!(offset_of!(io_uring_params, cq_entries), 4);
const_assert_eq!(offset_of!(io_uring_params, flags), 8);
const_assert_eq!(offset_of!(io_uring_params, sq_thread_cpu), 12);
const_assert_eq!(offset_of!(io_uring_params, sq_thread_idle), 16);
const_assert_eq!(offset_of!(io_uring_params, features), 20);
const_assert_eq!(offset_of!(io_uring_params, wq_fd), 24);
const_assert_eq!(offset_of!(io_uring_params, sq_off), 40);
const_assert_eq!(offset_of!(io_uring_params, cq_off), 80);

// The ring offsets structures: every field is a u32 offset into the mapping, in this order.
const_assert_eq!(offset_of!(io_sqring_offsets, head), 0);
const_assert_eq!(offset_of!(io_sqring_offsets, tail), 4);
const_assert_eq!(offset_of!(io_sqring_offsets, ring_mask), 8);
const_assert_eq!(offset_of!(io_sqring_offsets, ring_entries), 12);
const_assert_eq!(offset_of!(io_sqring_offsets, flags), 16);
const_assert_eq!(offset_of!(io_sqring_offsets, dropped), 20);
const_assert_eq!(offset_of!(io_sqring_offsets, array), 24);
const_assert_eq!(offset_of!(io_cqring_offsets, head), 0);
const_assert_eq!(offset_of!(io_cqring_offsets, tail), 4);
const_assert_eq!(offset_of!(io_cqring_offsets, ring_mask), 8);
const_assert_eq!(offset_of!(io_cqring_offsets, ring_entries), 12);
const_assert_eq!(offset_of!(io_cqring_offsets, overflow), 16);
const_assert_eq!(offset_of!(io_cqring_offsets, cqes), 20);
const_assert_eq!(offset_of!(io_cqring_offsets, flags), 24);

// io_uring_getevents_arg (IORING_ENTER_EXT_ARG).
const_assert_eq!(offset_of!(io_uring_getevents_arg, sigmask), 0);
const_assert_eq!(offset_of!(io_uring_getevents_arg, sigmask_sz), 8);
const_assert_eq!(offset_of!(io_uring_getevents_arg, ts), 16);

// The opcodes of current kernels are present (IORING_OP_PIPE came with Linux 6.16).
const_assert_eq!(IORING_OP_NOP, 0);
const_assert_eq!(IORING_OP_READV, 1);
const_assert_eq!(IORING_OP_PIPE, 62);
