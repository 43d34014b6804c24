//! Socket commands through `IORING_OP_URING_CMD` (Linux 6.7): the bytes waiting in a socket's
//! queues (`SIOCINQ`, `SIOCOUTQ`) and socket options (`getsockopt`, `setsockopt`).

use super::define::op;
use crate::buf::{IoBuf, IoBufMut};
use crate::op::res_to_io;
use std::io;
use uring_core::sys;

op! {
    /// How many bytes wait in a socket's receive queue, unread (`SOCKET_URING_OP_SIOCINQ`
    /// through `IORING_OP_URING_CMD`, Linux 6.7), like `ioctl(SIOCINQ)`.
    ///
    /// Owns a share of the socket until completion. Returns the byte count, or `EOPNOTSUPP`
    /// for a socket whose protocol has no such query (a Unix socket, for instance).
    pub struct SiocInq {
        /// Asks about `file`.
        pub fn new { file: file() }
    }
    opcode = sys::IORING_OP_URING_CMD;
    prepare(op, sqe) {
        sqe.set_target(&op.file).set_cmd_op(sys::SOCKET_URING_OP_SIOCINQ);
    }
    complete(_op, res, _flags) -> io::Result<usize> { res_to_io(res).map(|n| n as usize) }
}

op! {
    /// How many bytes wait in a socket's send queue, unsent or unacknowledged
    /// (`SOCKET_URING_OP_SIOCOUTQ` through `IORING_OP_URING_CMD`, Linux 6.7), like
    /// `ioctl(SIOCOUTQ)`.
    ///
    /// Owns a share of the socket until completion. Returns the byte count, or `EOPNOTSUPP`.
    pub struct SiocOutq {
        /// Asks about `file`.
        pub fn new { file: file() }
    }
    opcode = sys::IORING_OP_URING_CMD;
    prepare(op, sqe) {
        sqe.set_target(&op.file).set_cmd_op(sys::SOCKET_URING_OP_SIOCOUTQ);
    }
    complete(_op, res, _flags) -> io::Result<usize> { res_to_io(res).map(|n| n as usize) }
}

op! {
    /// Reads a socket option (`SOCKET_URING_OP_GETSOCKOPT` through `IORING_OP_URING_CMD`,
    /// Linux 6.7), like `getsockopt(2)`. The kernel serves only `SOL_SOCKET` options this way
    /// (`EOPNOTSUPP` for other levels).
    ///
    /// Owns the buffer and a share of the socket until completion. Returns the option's length
    /// and the buffer, whose initialised length covers it.
    pub struct GetSockOpt<B: IoBufMut> {
        /// Reads option `name` of `level` of `file` into `buf` (its whole room).
        pub fn new { file: file(), level: plain(i32), name: plain(i32), buf: buf(B) }
    }
    opcode = sys::IORING_OP_URING_CMD;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_cmd_op(sys::SOCKET_URING_OP_GETSOCKOPT)
            .set_level_optname(op.level as u32, op.name as u32)
            .set_opt_room(&mut op.buf);
    }
    complete(op, res, _flags) -> (io::Result<usize>, B) {
        let mut op = op;
        let r = res_to_io(res).map(|n| n as usize);
        if let Ok(n) = r {
            let n = n.min(op.buf.bytes_total());
            // SAFETY: the kernel wrote the option's `n` bytes from the start, within the room
            // `prepare` named.
            unsafe { op.buf.set_init(n) };
        }
        (r, op.buf)
    }
}

impl GetSockOpt<Vec<u8>> {
    /// Reads an `int` option: the value comes back as 4 bytes (`i32::from_ne_bytes`).
    pub fn int(file: impl crate::IntoTarget, level: i32, name: i32) -> Self {
        Self::new(file, level, name, Vec::with_capacity(4))
    }
}

op! {
    /// Sets a socket option (`SOCKET_URING_OP_SETSOCKOPT` through `IORING_OP_URING_CMD`,
    /// Linux 6.7), like `setsockopt(2)`.
    ///
    /// Owns the value and a share of the socket until completion. Returns `Ok(())` or the
    /// errno, and the value.
    pub struct SetSockOpt<B: IoBuf> {
        /// Sets option `name` of `level` of `file` to `value`'s data.
        pub fn new { file: file(), level: plain(i32), name: plain(i32), value: buf(B) }
    }
    opcode = sys::IORING_OP_URING_CMD;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_cmd_op(sys::SOCKET_URING_OP_SETSOCKOPT)
            .set_level_optname(op.level as u32, op.name as u32)
            .set_opt_value(&op.value);
    }
    complete(op, res, _flags) -> (io::Result<()>, B) { (res_to_io(res).map(drop), op.value) }
}

impl SetSockOpt<Vec<u8>> {
    /// Sets an `int` option.
    pub fn int(file: impl crate::IntoTarget, level: i32, name: i32, value: i32) -> Self {
        Self::new(file, level, name, value.to_ne_bytes().to_vec())
    }
}
