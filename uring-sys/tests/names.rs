//! The generated name tables (`names.rs`) against the bindings' constants.

use uring_sys::*;

#[test]
fn opcode_names_follow_the_opcodes() {
    assert_eq!(opcode_name(IORING_OP_NOP as u8), "NOP");
    assert_eq!(opcode_name(IORING_OP_READV as u8), "READV");
    assert_eq!(opcode_name(IORING_OP_OPENAT2 as u8), "OPENAT2");
    assert_eq!(opcode_name(IORING_OP_URING_CMD128 as u8), "URING_CMD128");
    assert_eq!(opcode_name(IORING_OP_LAST as u8), "UNKNOWN");
    assert_eq!(opcode_name(u8::MAX), "UNKNOWN");
    // Every opcode below IORING_OP_LAST has a real name.
    for op in 0..IORING_OP_LAST as u8 {
        assert_ne!(opcode_name(op), "UNKNOWN", "opcode {op}");
    }
}

#[test]
fn feature_names_list_the_set_bits_lowest_first() {
    let names: Vec<&str> =
        feature_names(IORING_FEAT_EXT_ARG | IORING_FEAT_NODROP | IORING_FEAT_NO_IOWAIT).collect();
    assert_eq!(names, ["NODROP", "EXT_ARG", "NO_IOWAIT"]);
    assert_eq!(feature_names(0).count(), 0);
    // A bit the UAPI does not name is left out; every named bit is there once.
    let all: Vec<&str> = feature_names(u32::MAX).collect();
    assert!(all.contains(&"SINGLE_MMAP") && all.contains(&"RW_ATTR"));
    let highest_named = (IORING_FEAT_NO_IOWAIT << 1) - 1;
    assert_eq!(all.len(), feature_names(highest_named).count());
    assert_eq!(all.len(), highest_named.count_ones() as usize);
}
