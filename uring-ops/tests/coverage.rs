//! Every opcode of the bindings has a typed op: regenerating the bindings against newer kernel
//! headers makes this test name each new opcode until it has one.

use uring_ops::core::{opcode_name, sys};
use uring_ops::ops::*;
use uring_ops::Op;

/// `(opcode, op type name)` of each typed op (a type standing for two opcodes is listed
/// once per opcode).
macro_rules! typed {
    ($($t:ty),* $(,)?) => {
        vec![$((<$t as Op>::OPCODE, <$t as Op>::NAME)),*]
    };
}

/// Opcodes with no typed op yet, each for a reason given here. Zero-copy receive (`RECV_ZC`,
/// Linux 6.15) needs an interface queue registered for it (`IORING_REGISTER_ZCRX_IFQ`: a NIC
/// queue with header split and flow steering, and its memory area), none of which this crate
/// registers yet, nor can test on loopback.
const NOT_TYPED_YET: &[&str] = &["RECV_ZC"];

/// Opcodes of 128-byte SQEs in a ring of mixed SQE sizes (`IORING_SETUP_SQE_MIXED`,
/// Linux 6.18): one takes two SQ slots, which the push path does not reserve yet. Each must
/// get its op once it does.
const NEEDS_128_BYTE_SQES: &[&str] = &["NOP128", "URING_CMD128"];

#[test]
fn every_opcode_in_the_bindings_has_a_typed_op() {
    let mut typed = typed![
        Nop,
        Readv<Vec<u8>>,
        Writev<Vec<u8>>,
        Fsync,
        ReadFixed,
        WriteFixed,
        PollAdd,
        PollRemove,
        PollUpdate,
        SyncFileRange,
        Timeout,
        TimeoutRemove,
        TimeoutUpdate,
        AsyncCancel,
        LinkTimeout,
        Fallocate,
        OpenAt,
        Close,
        FilesUpdate,
        Statx,
        Read<Vec<u8>>,
        Write<Vec<u8>>,
        Fadvise,
        Madvise,
        OpenAt2,
        EpollCtl,
        Splice,
        Tee,
        RenameAt,
        UnlinkAt,
        MkdirAt,
        SymlinkAt,
        LinkAt,
        MsgRing,
        FSetXattr<Vec<u8>>,
        SetXattr<Vec<u8>>,
        FGetXattr<Vec<u8>>,
        GetXattr<Vec<u8>>,
        UringCmd<()>,
        WaitId,
        FutexWait,
        FutexWake,
        FutexWaitV,
        FixedFdInstall,
        Ftruncate,
        EpollWait,
        ReadvFixed,
        WritevFixed,
        Pipe,
        SendMsg<Vec<u8>>,
        RecvMsg<Vec<u8>>,
        Accept,
        Connect,
        Send<Vec<u8>>,
        Recv<Vec<u8>>,
        ProvideBuffers,
        RemoveBuffers,
        Shutdown,
        Socket,
        SendZcOp<Vec<u8>>,
        SendMsgZcOp<Vec<u8>>,
        Bind,
        Listen,
    ];
    typed.push((ReadMulti::MULTISHOT_OPCODE, "ReadMulti::multishot"));

    let mut missing = Vec::new();
    for op in 0..sys::IORING_OP_LAST as u8 {
        let name = opcode_name(op);
        let has = typed.iter().any(|&(o, _)| o == op)
            || NOT_TYPED_YET.contains(&name)
            || NEEDS_128_BYTE_SQES.contains(&name);
        if !has {
            missing.push(format!("IORING_OP_{name} ({op})"));
        }
    }
    assert!(
        missing.is_empty(),
        "opcodes of the bindings with no typed op: {}",
        missing.join(", ")
    );

    // Every name listed as not typed yet or pending is an opcode of the bindings, and is
    // not typed here already (or the lists would hide a stale entry).
    let names: Vec<&str> = (0..sys::IORING_OP_LAST as u8).map(opcode_name).collect();
    for &name in NOT_TYPED_YET.iter().chain(NEEDS_128_BYTE_SQES) {
        assert!(names.contains(&name), "{name} is no opcode of the bindings");
        assert!(
            !typed.iter().any(|&(o, _)| opcode_name(o) == name),
            "{name} is typed here: take it off the lists"
        );
    }
    // A typed op's opcode is one of the bindings'.
    for &(op, name) in &typed {
        assert!(
            op < sys::IORING_OP_LAST as u8,
            "{name}: opcode {op} past the bindings"
        );
    }
}

#[test]
fn typed_ops_carry_the_opcode_their_name_says() {
    let pairs = typed![
        OpenAt,
        Close,
        Pipe,
        FutexWaitV,
        MsgRing,
        ReadvFixed,
        UringCmd<()>
    ];
    let names: Vec<_> = pairs.iter().map(|&(op, _)| opcode_name(op)).collect();
    assert_eq!(
        names,
        [
            "OPENAT",
            "CLOSE",
            "PIPE",
            "FUTEX_WAITV",
            "MSG_RING",
            "READV_FIXED",
            "URING_CMD"
        ]
    );
    assert_eq!(opcode_name(ReadMulti::MULTISHOT_OPCODE), "READ_MULTISHOT");
    assert_eq!(opcode_name(<ReadMulti as Op>::OPCODE), "READ");
    assert_eq!(<TimeoutUpdate as Op>::NAME, "TimeoutUpdate");
    assert_eq!(opcode_name(<TimeoutUpdate as Op>::OPCODE), "TIMEOUT_REMOVE");
    assert_eq!(opcode_name(<PollUpdate as Op>::OPCODE), "POLL_REMOVE");
    // The receives into provided buffers share their opcodes with the plain ones; the socket
    // commands are URING_CMDs.
    let pairs = typed![
        RecvProvided,
        RecvBundle,
        RecvMsgMulti,
        SiocInq,
        GetSockOpt<Vec<u8>>,
        SendZcOp<Vec<u8>>,
        SendMsgZcOp<Vec<u8>>,
        Accept<uring_ops::NewSlot>,
    ];
    let names: Vec<_> = pairs.iter().map(|&(op, _)| opcode_name(op)).collect();
    assert_eq!(
        names,
        [
            "RECV",
            "RECV",
            "RECVMSG",
            "URING_CMD",
            "URING_CMD",
            "SEND_ZC",
            "SENDMSG_ZC",
            "ACCEPT"
        ]
    );
    assert_eq!(<SendZcOp<Vec<u8>> as Op>::NAME, "SendZc");
}
