//! Names of the UAPI's opcodes, for messages and tools.

use crate::bindings::IORING_OP_LAST;

/// Opcode names of the pinned UAPI (see the first line of `bindings.rs`), indexed by opcode,
/// without the `IORING_OP_` prefix.
const OP_NAMES: &[&str] = &[
    "NOP",
    "READV",
    "WRITEV",
    "FSYNC",
    "READ_FIXED",
    "WRITE_FIXED",
    "POLL_ADD",
    "POLL_REMOVE",
    "SYNC_FILE_RANGE",
    "SENDMSG",
    "RECVMSG",
    "TIMEOUT",
    "TIMEOUT_REMOVE",
    "ACCEPT",
    "ASYNC_CANCEL",
    "LINK_TIMEOUT",
    "CONNECT",
    "FALLOCATE",
    "OPENAT",
    "CLOSE",
    "FILES_UPDATE",
    "STATX",
    "READ",
    "WRITE",
    "FADVISE",
    "MADVISE",
    "SEND",
    "RECV",
    "OPENAT2",
    "EPOLL_CTL",
    "SPLICE",
    "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS",
    "TEE",
    "SHUTDOWN",
    "RENAMEAT",
    "UNLINKAT",
    "MKDIRAT",
    "SYMLINKAT",
    "LINKAT",
    "MSG_RING",
    "FSETXATTR",
    "SETXATTR",
    "FGETXATTR",
    "GETXATTR",
    "SOCKET",
    "URING_CMD",
    "SEND_ZC",
    "SENDMSG_ZC",
    "READ_MULTISHOT",
    "WAITID",
    "FUTEX_WAIT",
    "FUTEX_WAKE",
    "FUTEX_WAITV",
    "FIXED_FD_INSTALL",
    "FTRUNCATE",
    "BIND",
    "LISTEN",
    "RECV_ZC",
    "EPOLL_WAIT",
    "READV_FIXED",
    "WRITEV_FIXED",
    "PIPE",
    "NOP128",
    "URING_CMD128",
];
const _: () = assert!(OP_NAMES.len() == IORING_OP_LAST as usize);

/// The name of opcode `op` without the `IORING_OP_` prefix (`"READV"`), or `"UNKNOWN"` for an
/// opcode past the pinned UAPI's last.
pub fn opcode_name(op: u8) -> &'static str {
    OP_NAMES.get(op as usize).copied().unwrap_or("UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{IORING_OP_NOP, IORING_OP_READV, IORING_OP_URING_CMD128};

    #[test]
    fn names_follow_the_opcodes() {
        assert_eq!(opcode_name(IORING_OP_NOP as u8), "NOP");
        assert_eq!(opcode_name(IORING_OP_READV as u8), "READV");
        assert_eq!(opcode_name(IORING_OP_URING_CMD128 as u8), "URING_CMD128");
        assert_eq!(opcode_name(IORING_OP_LAST as u8), "UNKNOWN");
    }
}
