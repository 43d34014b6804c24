//! What the running kernel's io_uring offers, asked without a ring (`IORING_REGISTER_QUERY`).

use super::blind;
use crate::error::{Error, Result};
use crate::setup::{Features, SetupFlags};
use crate::sqe::SqeFlags;
use std::io;
use std::mem::size_of;
use uring_sys as sys;

/// What [`query_opcodes`] reports (`struct io_uring_query_opcode`): the kernel's counts and
/// masks, without setting a ring up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryOpcodes {
    /// How many SQE opcodes the kernel knows (`IORING_OP_LAST`): opcodes `0..request_opcodes`.
    pub request_opcodes: u32,
    /// How many register opcodes it knows (`IORING_REGISTER_LAST`).
    pub register_opcodes: u32,
    /// Every `IORING_FEAT_*` bit it sets on a new ring.
    pub features: Features,
    /// Every `IORING_SETUP_*` flag it accepts (bits this crate does not name included).
    pub setup_flags: SetupFlags,
    /// Every `IORING_ENTER_*` flag it accepts.
    pub enter_flags: u32,
    /// Every `IOSQE_*` flag it accepts.
    pub sqe_flags: SqeFlags,
    /// How many query ops it knows (0 from kernels that do not report it).
    pub query_opcodes: u32,
}

/// What [`query_zcrx`] reports (`struct io_uring_query_zcrx`): the zero-copy receive
/// interface of the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryZcrx {
    /// The `ZCRX_REG_*` flags of [`crate::ZcrxIfqReg`] it accepts.
    pub register_flags: u64,
    /// The `IORING_ZCRX_AREA_*` flags it accepts.
    pub area_flags: u64,
    /// How many `ZCRX_CTRL_*` ops it knows.
    pub ctrl_opcodes: u32,
    /// The `ZCRX_FEATURE_*` bits it has.
    pub features: u32,
    /// Size of the refill ring's header, in bytes.
    pub rq_header_size: u32,
    /// Alignment of the refill ring's header, in bytes.
    pub rq_header_alignment: u32,
}

/// What [`query_scq`] reports (`struct io_uring_query_scq`): the layout of the SQ/CQ rings'
/// header, for rings in memory the application provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryScq {
    /// Size of the header, in bytes.
    pub header_size: u64,
    /// Its alignment, in bytes.
    pub header_alignment: u64,
}

const NAME: &str = "IORING_REGISTER_QUERY";

/// One query: `op` (`IO_URING_QUERY_*`) answered into a zeroed `T` (plain integers).
fn query<T: Default>(op: u32) -> Result<T> {
    let mut data = T::default();
    let mut hdr = sys::io_uring_query_hdr {
        query_data: (&mut data as *mut T) as u64,
        query_op: op,
        size: size_of::<T>() as u32,
        ..Default::default()
    };
    // SAFETY: `hdr` is a live, exclusively borrowed `io_uring_query_hdr` whose `next_entry`
    // is 0 (one entry), naming `data`, exclusively borrowed and writable for `size` bytes: the
    // kernel writes the answer there and its status into `hdr`. `nr_args` must be 0.
    unsafe {
        blind(
            NAME,
            sys::IORING_REGISTER_QUERY,
            (&mut hdr as *mut sys::io_uring_query_hdr).cast(),
            0,
        )
    }?;
    if hdr.result < 0 {
        return Err(Error::os(NAME, io::Error::from_raw_os_error(-hdr.result)));
    }
    // Fields past `hdr.size` (an older kernel's shorter struct) were zeroed by the kernel.
    Ok(data)
}

/// `IORING_REGISTER_QUERY` with `IO_URING_QUERY_OPCODES` (Linux 6.18): the opcode counts and
/// the flag masks of the running kernel, without a ring.
///
/// # Errors
///
/// From the kernel: `EINVAL` before Linux 6.18.
pub fn query_opcodes() -> Result<QueryOpcodes> {
    let q: sys::io_uring_query_opcode = query(sys::IO_URING_QUERY_OPCODES)?;
    Ok(QueryOpcodes {
        request_opcodes: q.nr_request_opcodes,
        register_opcodes: q.nr_register_opcodes,
        features: Features::from_bits_retain(q.feature_flags as u32),
        setup_flags: SetupFlags::from_bits_retain(q.ring_setup_flags as u32),
        enter_flags: q.enter_flags as u32,
        sqe_flags: SqeFlags::from_bits_retain(q.sqe_flags as u8),
        query_opcodes: q.nr_query_opcodes,
    })
}

/// `IORING_REGISTER_QUERY` with `IO_URING_QUERY_ZCRX` (after Linux 6.18): what the kernel's
/// zero-copy receive accepts.
///
/// # Errors
///
/// From the kernel: `EOPNOTSUPP` where the query op is unknown (Linux 6.18), `EINVAL` before
/// Linux 6.18.
pub fn query_zcrx() -> Result<QueryZcrx> {
    let q: sys::io_uring_query_zcrx = query(sys::IO_URING_QUERY_ZCRX)?;
    Ok(QueryZcrx {
        register_flags: q.register_flags,
        area_flags: q.area_flags,
        ctrl_opcodes: q.nr_ctrl_opcodes,
        features: q.features,
        rq_header_size: q.rq_hdr_size,
        rq_header_alignment: q.rq_hdr_alignment,
    })
}

/// `IORING_REGISTER_QUERY` with `IO_URING_QUERY_SCQ` (after Linux 6.18): the layout of the
/// rings' header.
///
/// # Errors
///
/// As for [`query_zcrx`].
pub fn query_scq() -> Result<QueryScq> {
    let q: sys::io_uring_query_scq = query(sys::IO_URING_QUERY_SCQ)?;
    Ok(QueryScq {
        header_size: q.hdr_size,
        header_alignment: q.hdr_alignment,
    })
}
