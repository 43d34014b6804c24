//! The raw submission queue entry, with a safe setter for every field.
//!
//! This is the one place that reaches bindgen's anonymous unions; op code above this crate uses
//! the named setters. Setting fields is always safe: what is unsafe is handing the SQE to the
//! kernel ([`crate::Reservation::commit`]), because the kernel then uses the addresses in it.

use std::fmt;
use uring_sys as sys;

bitflags::bitflags! {
    /// `IOSQE_*` flags of one SQE.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SqeFlags: u8 {
        /// `fd` is an index into the registered file table.
        const FIXED_FILE = sys::IOSQE_FIXED_FILE as u8;
        /// Start only after every earlier SQE has completed.
        const IO_DRAIN = sys::IOSQE_IO_DRAIN as u8;
        /// Link the next SQE: it starts after this one succeeds, and is cancelled if it fails.
        const IO_LINK = sys::IOSQE_IO_LINK as u8;
        /// Like `IO_LINK`, but the chain continues whatever this SQE's result.
        const IO_HARDLINK = sys::IOSQE_IO_HARDLINK as u8;
        /// Always issue asynchronously (to io-wq).
        const ASYNC = sys::IOSQE_ASYNC as u8;
        /// Pick a buffer from the group in `buf_group`.
        const BUFFER_SELECT = sys::IOSQE_BUFFER_SELECT as u8;
        /// Post no CQE if the request succeeds.
        const CQE_SKIP_SUCCESS = sys::IOSQE_CQE_SKIP_SUCCESS as u8;
    }
}

/// One submission queue entry, 64 bytes, exactly the kernel's `struct io_uring_sqe`.
///
/// Obtained in place in the ring through [`crate::SubmissionQueue::reserve`], already zeroed.
#[repr(transparent)]
#[derive(Clone, Default)]
pub struct Sqe(pub(crate) sys::io_uring_sqe);

impl fmt::Debug for Sqe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sqe")
            .field("opcode", &self.0.opcode)
            .field("flags", &self.flags())
            .field("fd", &self.0.fd)
            .field("off", &self.off())
            .field("addr", &self.addr())
            .field("len", &self.0.len)
            .field("op_flags", &self.op_flags())
            .field("user_data", &self.0.user_data)
            .finish_non_exhaustive()
    }
}

// SAFETY (for every union read below): all union members are plain integers of the listed
// size at the same offset, every bit pattern is valid, and the SQE is always fully initialised
// (zeroed when reserved), so reading any member is sound.
impl Sqe {
    /// A zeroed SQE (a NOP with user data 0).
    pub const fn zeroed() -> Self {
        // SAFETY: `io_uring_sqe` is plain integers and unions of them; all-zero is valid.
        Sqe(unsafe { std::mem::zeroed() })
    }

    /// Resets every field to zero.
    #[inline]
    pub fn clear(&mut self) -> &mut Self {
        *self = Self::zeroed();
        self
    }

    /// The raw kernel struct.
    pub fn as_raw(&self) -> &sys::io_uring_sqe {
        &self.0
    }

    /// The raw kernel struct, to set what has no setter here.
    pub fn as_raw_mut(&mut self) -> &mut sys::io_uring_sqe {
        &mut self.0
    }

    /// Sets the opcode (`IORING_OP_*`).
    #[inline]
    pub fn set_opcode(&mut self, op: u8) -> &mut Self {
        self.0.opcode = op;
        self
    }
    /// The opcode.
    #[inline]
    pub fn opcode(&self) -> u8 {
        self.0.opcode
    }

    /// Sets the `IOSQE_*` flags.
    #[inline]
    pub fn set_flags(&mut self, flags: SqeFlags) -> &mut Self {
        self.0.flags = flags.bits();
        self
    }
    /// Adds `IOSQE_*` flags to those already set.
    #[inline]
    pub fn add_flags(&mut self, flags: SqeFlags) -> &mut Self {
        self.0.flags |= flags.bits();
        self
    }
    /// The `IOSQE_*` flags.
    #[inline]
    pub fn flags(&self) -> SqeFlags {
        SqeFlags::from_bits_retain(self.0.flags)
    }

    /// Sets the I/O priority (`ioprio`; for some ops, op-specific flags such as
    /// `IORING_RECVSEND_POLL_FIRST` or `IORING_ACCEPT_MULTISHOT`).
    #[inline]
    pub fn set_ioprio(&mut self, ioprio: u16) -> &mut Self {
        self.0.ioprio = ioprio;
        self
    }

    /// Sets the file descriptor (or fixed-file index with [`SqeFlags::FIXED_FILE`]).
    #[inline]
    pub fn set_fd(&mut self, fd: i32) -> &mut Self {
        self.0.fd = fd;
        self
    }
    /// The file descriptor field.
    #[inline]
    pub fn fd(&self) -> i32 {
        self.0.fd
    }

    /// Sets `off` (file offset; for some ops a second address or a count).
    #[inline]
    pub fn set_off(&mut self, off: u64) -> &mut Self {
        self.0.__bindgen_anon_1.off = off;
        self
    }
    /// The `off` field.
    #[inline]
    pub fn off(&self) -> u64 {
        // SAFETY: see the note above this impl.
        unsafe { self.0.__bindgen_anon_1.off }
    }
    /// Sets `addr2` (same word as `off`).
    #[inline]
    pub fn set_addr2(&mut self, addr2: u64) -> &mut Self {
        self.0.__bindgen_anon_1.addr2 = addr2;
        self
    }
    /// Sets `cmd_op` (`URING_CMD`; same word as `off`).
    #[inline]
    pub fn set_cmd_op(&mut self, cmd_op: u32) -> &mut Self {
        self.0.__bindgen_anon_1.__bindgen_anon_1.cmd_op = cmd_op;
        self
    }

    /// Sets `addr` (buffer, iovec array, path, timespec, ... address).
    #[inline]
    pub fn set_addr(&mut self, addr: u64) -> &mut Self {
        self.0.__bindgen_anon_2.addr = addr;
        self
    }
    /// The `addr` field.
    #[inline]
    pub fn addr(&self) -> u64 {
        // SAFETY: see the note above this impl.
        unsafe { self.0.__bindgen_anon_2.addr }
    }
    /// Sets `splice_off_in` (same word as `addr`).
    #[inline]
    pub fn set_splice_off_in(&mut self, off: u64) -> &mut Self {
        self.0.__bindgen_anon_2.splice_off_in = off;
        self
    }
    /// Sets `level` and `optname` (socket-option commands; same word as `addr`).
    #[inline]
    pub fn set_level_optname(&mut self, level: u32, optname: u32) -> &mut Self {
        self.0.__bindgen_anon_2.__bindgen_anon_1.level = level;
        self.0.__bindgen_anon_2.__bindgen_anon_1.optname = optname;
        self
    }

    /// Sets `len` (byte count, iovec count, or an op-specific number).
    #[inline]
    pub fn set_len(&mut self, len: u32) -> &mut Self {
        self.0.len = len;
        self
    }
    /// The `len` field.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a field, not a collection's length
    pub fn len(&self) -> u32 {
        self.0.len
    }

    /// Sets the op-specific flags word (`rw_flags`, `fsync_flags`, `poll32_events`,
    /// `timeout_flags`, `cancel_flags`, `open_flags`, `msg_flags`, ... all share it).
    #[inline]
    pub fn set_op_flags(&mut self, flags: u32) -> &mut Self {
        self.0.__bindgen_anon_3.rw_flags = flags;
        self
    }
    /// The op-specific flags word.
    #[inline]
    pub fn op_flags(&self) -> u32 {
        // SAFETY: see the note above this impl.
        unsafe { self.0.__bindgen_anon_3.rw_flags }
    }
    /// Sets `rw_flags` (`RWF_*`) of a read or write.
    #[inline]
    pub fn set_rw_flags(&mut self, flags: i32) -> &mut Self {
        self.set_op_flags(flags as u32)
    }
    /// Sets `fsync_flags` (`IORING_FSYNC_DATASYNC`).
    #[inline]
    pub fn set_fsync_flags(&mut self, flags: u32) -> &mut Self {
        self.set_op_flags(flags)
    }
    /// Sets `poll32_events` (`POLLIN`, ...; the kernel swaps the halves on big-endian).
    #[inline]
    pub fn set_poll32_events(&mut self, events: u32) -> &mut Self {
        #[cfg(target_endian = "big")]
        let events = events.rotate_left(16);
        self.set_op_flags(events)
    }
    /// Sets `timeout_flags` (`IORING_TIMEOUT_*`).
    #[inline]
    pub fn set_timeout_flags(&mut self, flags: u32) -> &mut Self {
        self.set_op_flags(flags)
    }
    /// Sets `cancel_flags` (`IORING_ASYNC_CANCEL_*`).
    #[inline]
    pub fn set_cancel_flags(&mut self, flags: u32) -> &mut Self {
        self.set_op_flags(flags)
    }
    /// Sets `msg_flags` (`MSG_*`, `send(2)`/`recv(2)`) of a send or receive.
    #[inline]
    pub fn set_msg_flags(&mut self, flags: u32) -> &mut Self {
        self.set_op_flags(flags)
    }
    /// Sets `accept_flags` (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`, `accept4(2)`).
    #[inline]
    pub fn set_accept_flags(&mut self, flags: u32) -> &mut Self {
        self.set_op_flags(flags)
    }
    /// Sets `nop_flags` (`IORING_NOP_*`).
    #[inline]
    pub fn set_nop_flags(&mut self, flags: u32) -> &mut Self {
        self.set_op_flags(flags)
    }

    /// Sets the user data, returned unchanged in the completion.
    #[inline]
    pub fn set_user_data(&mut self, user_data: u64) -> &mut Self {
        self.0.user_data = user_data;
        self
    }
    /// The user data.
    #[inline]
    pub fn user_data(&self) -> u64 {
        self.0.user_data
    }

    /// Sets `buf_index` (registered buffer index for fixed reads/writes).
    #[inline]
    pub fn set_buf_index(&mut self, index: u16) -> &mut Self {
        self.0.__bindgen_anon_4.buf_index = index;
        self
    }
    /// Sets `buf_group` (provided-buffer group with [`SqeFlags::BUFFER_SELECT`]).
    #[inline]
    pub fn set_buf_group(&mut self, group: u16) -> &mut Self {
        self.0.__bindgen_anon_4.buf_group = group;
        self
    }
    /// The `buf_index` / `buf_group` field.
    #[inline]
    pub fn buf_index(&self) -> u16 {
        // SAFETY: see the note above this impl.
        unsafe { self.0.__bindgen_anon_4.buf_index }
    }

    /// Sets the personality (credentials id from `IORING_REGISTER_PERSONALITY`).
    #[inline]
    pub fn set_personality(&mut self, id: u16) -> &mut Self {
        self.0.personality = id;
        self
    }
    /// The personality.
    #[inline]
    pub fn personality(&self) -> u16 {
        self.0.personality
    }

    /// Sets `splice_fd_in`.
    #[inline]
    pub fn set_splice_fd_in(&mut self, fd: i32) -> &mut Self {
        self.0.__bindgen_anon_5.splice_fd_in = fd;
        self
    }
    /// Sets `file_index` (direct descriptor slot + 1 for ops that install files; same word).
    #[inline]
    pub fn set_file_index(&mut self, index: u32) -> &mut Self {
        self.0.__bindgen_anon_5.file_index = index;
        self
    }
    /// Sets `addr_len` (socket address length for send-zc / bind; same word).
    #[inline]
    pub fn set_addr_len(&mut self, len: u16) -> &mut Self {
        self.0.__bindgen_anon_5.__bindgen_anon_1.addr_len = len;
        self
    }
    /// Sets `optlen` (socket-option commands; same word).
    #[inline]
    pub fn set_optlen(&mut self, len: u32) -> &mut Self {
        self.0.__bindgen_anon_5.optlen = len;
        self
    }
    /// The `splice_fd_in` / `file_index` word.
    #[inline]
    pub fn file_index(&self) -> u32 {
        // SAFETY: see the note above this impl.
        unsafe { self.0.__bindgen_anon_5.file_index }
    }

    /// The 16-byte union at byte 48 (`addr3` + pad, `attr_ptr` + `attr_type_mask`, `optval`,
    /// the start of `cmd`) as two `u64` words.
    ///
    /// bindgen models this union with zero-sized `__BindgenUnionField` markers whose `as_mut`
    /// turns a reference to 0 bytes into one to 16: undefined behaviour under Stacked Borrows
    /// (Miri rejects it). A pointer taken from the whole union field covers all 16 bytes.
    #[inline]
    fn words_48(&mut self) -> &mut [u64; 2] {
        let p = std::ptr::addr_of_mut!(self.0.__bindgen_anon_6).cast::<[u64; 2]>();
        // SAFETY: `p` is derived from `&mut self` and spans the whole union, which is 16 bytes and
        // 8-aligned (asserted below); every member is plain integers, so any bits are valid.
        unsafe { &mut *p }
    }

    /// Read-only [`Sqe::words_48`].
    #[inline]
    fn words_48_ref(&self) -> &[u64; 2] {
        let p = std::ptr::addr_of!(self.0.__bindgen_anon_6).cast::<[u64; 2]>();
        // SAFETY: as for `words_48`, shared.
        unsafe { &*p }
    }

    /// Sets `addr3` (a third address, e.g. for `IORING_OP_URING_CMD` or xattr ops).
    #[inline]
    pub fn set_addr3(&mut self, addr3: u64) -> &mut Self {
        self.words_48()[0] = addr3;
        self
    }
    /// Sets `optval` (socket-option commands; same word as `addr3`).
    #[inline]
    pub fn set_optval(&mut self, optval: u64) -> &mut Self {
        self.words_48()[0] = optval;
        self
    }
    /// Sets `attr_ptr` and `attr_type_mask` (read/write attributes, `IORING_FEAT_RW_ATTR`).
    #[inline]
    pub fn set_attr(&mut self, attr_ptr: u64, type_mask: u64) -> &mut Self {
        *self.words_48() = [attr_ptr, type_mask];
        self
    }
    /// The `addr3` word.
    #[inline]
    pub fn addr3(&self) -> u64 {
        self.words_48_ref()[0]
    }
    /// Sets the 16-byte command of `IORING_OP_URING_CMD` on a 64-byte SQE (`cmd`, bytes
    /// 48..64, where `addr3` and its pad are).
    #[inline]
    pub fn set_cmd(&mut self, cmd: &[u8; 16]) -> &mut Self {
        *self.words_48() = [
            u64::from_ne_bytes(std::array::from_fn(|i| cmd[i])),
            u64::from_ne_bytes(std::array::from_fn(|i| cmd[8 + i])),
        ];
        self
    }
    /// The 16-byte command area (bytes 48..64).
    #[inline]
    pub fn cmd(&self) -> [u8; 16] {
        let [a, b] = *self.words_48_ref();
        let mut out = [0; 16];
        out[..8].copy_from_slice(&a.to_ne_bytes());
        out[8..].copy_from_slice(&b.to_ne_bytes());
        out
    }
}

// `Sqe::words_48` views the union at byte 48 as `[u64; 2]`: it must be exactly that big, that
// aligned, and hold the members there in that order.
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    type U = sys::io_uring_sqe__bindgen_ty_6;
    assert!(size_of::<U>() == 16 && align_of::<U>() >= align_of::<u64>());
    assert!(offset_of!(sys::io_uring_sqe, __bindgen_anon_6) == 48);
    assert!(offset_of!(sys::io_uring_sqe__bindgen_ty_6__bindgen_ty_1, addr3) == 0);
    assert!(offset_of!(sys::io_uring_sqe__bindgen_ty_6__bindgen_ty_2, attr_ptr) == 0);
    assert!(
        offset_of!(
            sys::io_uring_sqe__bindgen_ty_6__bindgen_ty_2,
            attr_type_mask
        ) == 8
    );
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setter lands in the kernel field it names, and the getters read it back. Under Miri
    /// this also checks the union accesses (in particular the 16-byte `addr3`/`optval`/`attr`
    /// union, which bindgen models with zero-sized marker fields).
    #[test]
    fn setters_write_the_kernel_fields() {
        let mut s = Sqe::zeroed();
        s.set_opcode(sys::IORING_OP_READV as u8)
            .set_flags(SqeFlags::IO_LINK)
            .add_flags(SqeFlags::ASYNC)
            .set_ioprio(3)
            .set_fd(7)
            .set_off(0x1122_3344_5566_7788)
            .set_addr(0xdead_beef)
            .set_len(4096)
            .set_rw_flags(5)
            .set_user_data(99)
            .set_buf_index(12)
            .set_personality(2)
            .set_file_index(31)
            .set_addr3(0xaaaa_bbbb_cccc_dddd);
        assert_eq!(s.opcode(), sys::IORING_OP_READV as u8);
        assert_eq!(s.flags(), SqeFlags::IO_LINK | SqeFlags::ASYNC);
        assert_eq!(s.as_raw().ioprio, 3);
        assert_eq!(s.fd(), 7);
        assert_eq!(s.off(), 0x1122_3344_5566_7788);
        assert_eq!(s.addr(), 0xdead_beef);
        assert_eq!(s.len(), 4096);
        assert_eq!(s.op_flags(), 5);
        assert_eq!(s.user_data(), 99);
        assert_eq!(s.buf_index(), 12);
        assert_eq!(s.personality(), 2);
        assert_eq!(s.file_index(), 31);
        assert_eq!(s.addr3(), 0xaaaa_bbbb_cccc_dddd);

        // Words shared by several names: the last write wins, at the same offset.
        s.set_addr2(1);
        assert_eq!(s.off(), 1);
        s.set_cmd_op(0x42);
        assert_eq!(s.off() as u32, 0x42);
        s.set_splice_off_in(2);
        assert_eq!(s.addr(), 2);
        s.set_level_optname(3, 4);
        assert_eq!(s.addr(), 3 | (4 << 32));
        s.set_fsync_flags(sys::IORING_FSYNC_DATASYNC);
        assert_eq!(s.op_flags(), sys::IORING_FSYNC_DATASYNC);
        s.set_timeout_flags(6).set_cancel_flags(7).set_nop_flags(8);
        assert_eq!(s.op_flags(), 8);
        s.set_msg_flags(9);
        assert_eq!(s.op_flags(), 9);
        s.set_accept_flags(10);
        assert_eq!(s.op_flags(), 10);
        #[cfg(target_endian = "little")]
        {
            s.set_poll32_events(0x1);
            assert_eq!(s.op_flags(), 0x1);
        }
        s.set_buf_group(9);
        assert_eq!(s.buf_index(), 9);
        s.set_splice_fd_in(-1);
        assert_eq!(s.file_index(), u32::MAX);
        s.set_addr_len(16);
        assert_eq!(s.file_index() & 0xffff, 16);
        s.set_optlen(5);
        s.set_optval(0x55);
        assert_eq!(s.addr3(), 0x55);
        s.set_attr(0x66, 0x77);
        assert_eq!(s.addr3(), 0x66);
        assert_eq!(s.words_48_ref()[1], 0x77);
        let cmd: [u8; 16] = std::array::from_fn(|i| i as u8 + 1);
        s.set_cmd(&cmd);
        assert_eq!(s.cmd(), cmd);
        assert_eq!(s.addr3(), u64::from_ne_bytes([1, 2, 3, 4, 5, 6, 7, 8]));

        s.clear();
        assert_eq!(s.as_raw().opcode, 0);
        assert_eq!(s.user_data(), 0);
        assert_eq!(s.addr3(), 0);
    }
}
