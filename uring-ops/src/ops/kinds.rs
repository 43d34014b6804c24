//! The kinds of op fields that name something to the kernel, and the only way op code writes
//! them into an SQE.
//!
//! Each kind keeps what it names valid for as long as the op lives, so an SQE that names
//! nothing else stays valid from `prepare` until the op's completion:
//!
//! | kind | what the SQE names | kept valid by |
//! |---|---|---|
//! | `file` ([`Target`]) | a descriptor or registered-file index | a share of an [`crate::Fd`] held by the op, or the ring's table |
//! | `buf` ([`IoBuf`]/[`IoBufMut`]) | heap memory, at most the buffer's data (reads) or room (writes) | the buffer, owned by the op; its address survives moves |
//! | `bufs` ([`IoVecs`]) | an iovec array on the heap naming owned buffers | the array and buffers, owned by the op |
//! | `timespec` ([`Timespec`]) | a timespec inside the op | the ring, which keeps the op at one address until completion (the op is prepared in place) |
//! | `sockaddr` ([`SockAddr`]) | a socket address inside the op, for the kernel to read | as for `timespec`: the op is prepared in place |
//! | `dest` ([`DestAddr`], optional: a `state` field) | an optional socket address on the heap, for the kernel to read | the box, owned by the op |
//! | `peer` ([`PeerAddr`], optional: a `state` field) | an optional socket address and its length on the heap, for the kernel to write | the box, owned by the op |
//! | `msg`, `msg_mut` ([`MsgHdr`]) | a `msghdr` on the heap naming owned buffers (an iovec array), an owned address and owned control bytes | the box, the array and the buffers, owned by the op |
//! | `group` ([`GroupRef`]) | a provided-buffer group the kernel picks a buffer from and writes into | a share of the group's memory held by the op; the group's own bookkeeping (module [`crate::pbuf`]) |
//! | `provision` ([`Provision`]) | buffers of a group given to the kernel, to write into later | a share of the group's memory, and the group's bookkeeping, which never frees buffers the kernel may hold |
//! | `path` ([`CPath`]) | a NUL-terminated string on the heap, read up to its NUL | the op, which owns it |
//! | `boxed` ([`Plain`] in a `Box`) | one struct on the heap, of the size the opcode reads or fills | the op, which owns the box |
//! | `array` ([`Plain`] in a `Vec`) | an array on the heap and its length | the op, which owns the vector and never resizes it |
//! | `futex` (`Arc<AtomicU32>`) | a 32-bit futex word on the heap | the share of the word the op holds |
//! | `futexv` ([`FutexWaits`]) | an array of `futex_waitv` naming futex words, and its length | the op, which owns the array and a share of each word |
//! | `fds` ([`FdList`]) | an array of descriptor numbers and its length | the op, which owns the array and keeps each descriptor open |
//! | `fixed_vecs` ([`FixedVecs`]) | an iovec array naming ranges of one registered buffer, and `buf_index` | the op, which owns the array and the buffer |
//! | `closing` ([`Closing`]) | a descriptor for the kernel to close, or a registered-file slot | the op, which owns the descriptor until the kernel closed it |
//! | `plain` | numbers (offsets, flags, keys the kernel only compares) | nothing to keep |
//!
//! [`SqeKinds`] writes the address and length of a kind together (a length never exceeds what
//! the kind vouches for), and op code writes addresses through nothing else.

pub use crate::addr::PeerAddr;
use crate::addr::SockAddr;
use crate::buf::{IoBuf, IoBufMut};
use crate::fd::Target;
pub use crate::ops::msg_hdr::MsgHdr;
use crate::path::CPath;
pub use crate::pbuf::GroupRef;
pub(crate) use crate::pbuf::Provision;
use std::fmt;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;
use uring_core::{sys, Sqe};

mod held;

pub use held::{Closing, FdList, FixedVecs, FutexWaits, Plain, SigInfoBuf};

/// How many bytes of `buf`'s room a read of at most `want` bytes may fill.
#[inline]
pub(crate) fn room<B: IoBufMut>(buf: &B, want: u32) -> u32 {
    want.min(buf.bytes_total().min(u32::MAX as usize) as u32)
}

/// How many bytes of `buf`'s data a write of at most `want` bytes sends.
#[inline]
pub(crate) fn data<B: IoBuf>(buf: &B, want: u32) -> u32 {
    want.min(buf.bytes_init().min(u32::MAX as usize) as u32)
}

/// The SQE writers of the field kinds (see the module documentation).
pub(crate) trait SqeKinds {
    /// The file: `fd` (and `IOSQE_FIXED_FILE` for a registered index).
    fn set_target(&mut self, t: &Target) -> &mut Self;
    /// `addr`/`len` for the kernel to write at most `want` bytes into `buf` (never past its
    /// room), and `buf_index` for a registered buffer.
    fn set_buf_mut<B: IoBufMut>(&mut self, buf: &mut B, want: u32) -> &mut Self;
    /// `addr`/`len` for the kernel to read at most `want` bytes of `buf`'s data, and
    /// `buf_index` for a registered buffer.
    fn set_buf<B: IoBuf>(&mut self, buf: &B, want: u32) -> &mut Self;
    /// `addr`/`len`: the iovec array and its length.
    fn set_iovecs<B>(&mut self, v: &IoVecs<B>) -> &mut Self;
    /// `addr`/`len`: one timespec, inside the op.
    fn set_timespec(&mut self, ts: &Timespec) -> &mut Self;
    /// `optval`/`optlen`: room for a socket option's value, at most `buf`'s room.
    fn set_opt_room<B: IoBufMut>(&mut self, buf: &mut B) -> &mut Self;
    /// `optval`/`optlen`: a socket option's value, `buf`'s data.
    fn set_opt_value<B: IoBuf>(&mut self, buf: &B) -> &mut Self;
    /// `addr`/`addr2`: a socket address inside the op and its length (connect, bind).
    fn set_sockaddr(&mut self, a: &SockAddr) -> &mut Self;
    /// `addr2`/`addr_len`: a destination address on the heap and its length (a send to an
    /// address), or nothing.
    fn set_dest(&mut self, a: &DestAddr) -> &mut Self;
    /// `addr`/`addr2`: room for an address and its length on the heap, for the kernel to write
    /// (accept), or nothing.
    fn set_peer(&mut self, a: &mut PeerAddr) -> &mut Self;
    /// `addr`/`len`: a `msghdr` on the heap, filled in to name the header's owned parts.
    fn set_msghdr<B>(&mut self, m: &mut MsgHdr<B>) -> &mut Self;
    /// `IOSQE_BUFFER_SELECT` and `buf_group`: the kernel picks a buffer of the group.
    fn set_group(&mut self, g: &GroupRef) -> &mut Self;
    /// `addr`/`len`/`fd`/`off`/`buf_group`: buffers of a group handed to the kernel.
    fn set_provision(&mut self, p: &mut Provision) -> &mut Self;
    /// `addr2`: one timespec, inside the op (updating a timeout, whose key is in `addr`).
    fn set_timespec2(&mut self, ts: &Timespec) -> &mut Self;
    /// `addr2`/`len`: the kernel writes at most `want` bytes into `buf` (never past its room).
    fn set_buf_mut2<B: IoBufMut>(&mut self, buf: &mut B, want: u32) -> &mut Self;
    /// `addr2`/`len`: the kernel reads at most `want` bytes of `buf`'s data.
    fn set_buf2<B: IoBuf>(&mut self, buf: &B, want: u32) -> &mut Self;
    /// `addr`: a path (or name).
    fn set_path(&mut self, p: &CPath) -> &mut Self;
    /// `addr2`: a second path.
    fn set_path2(&mut self, p: &CPath) -> &mut Self;
    /// `addr3`: a path, where `addr` and `addr2` hold other things (an attribute's name and
    /// value).
    fn set_path3(&mut self, p: &CPath) -> &mut Self;
    /// `addr`: one struct of the size the opcode reads or fills.
    fn set_struct<T: Plain>(&mut self, b: &mut Box<T>) -> &mut Self;
    /// `addr2`: one struct of the size the opcode reads or fills.
    fn set_struct2<T: Plain>(&mut self, b: &mut Box<T>) -> &mut Self;
    /// `addr2`/`len`: one struct and its size (the kernel reads at most that much).
    fn set_sized_struct2<T: Plain>(&mut self, b: &mut Box<T>) -> &mut Self;
    /// `addr`/`len`: an array and its number of elements.
    fn set_array<T: Plain>(&mut self, v: &mut Vec<T>) -> &mut Self;
    /// `addr`: a futex word.
    fn set_futex(&mut self, word: &Arc<AtomicU32>) -> &mut Self;
    /// `addr`/`len`: the `futex_waitv` array and its length.
    fn set_futexv(&mut self, v: &FutexWaits) -> &mut Self;
    /// `addr`/`len`: the descriptor numbers and how many.
    fn set_fd_list(&mut self, v: &mut FdList) -> &mut Self;
    /// `fd` (a descriptor to close) or `file_index` (a slot + 1).
    fn set_closing(&mut self, c: &Closing) -> &mut Self;
    /// `addr`/`len`/`buf_index`: iovecs into one registered buffer, and its index.
    fn set_fixed_vecs(&mut self, v: &FixedVecs) -> &mut Self;
}

impl SqeKinds for Sqe {
    #[inline]
    fn set_target(&mut self, t: &Target) -> &mut Self {
        t.apply(self);
        self
    }

    #[inline]
    fn set_buf_mut<B: IoBufMut>(&mut self, buf: &mut B, want: u32) -> &mut Self {
        let len = room(buf, want);
        self.set_addr(buf.stable_mut_ptr() as u64).set_len(len);
        if B::FIXED {
            self.set_buf_index(buf.fixed_index().unwrap_or(0));
        }
        self
    }

    #[inline]
    fn set_buf<B: IoBuf>(&mut self, buf: &B, want: u32) -> &mut Self {
        let len = data(buf, want);
        self.set_addr(buf.stable_ptr() as u64).set_len(len);
        if B::FIXED {
            self.set_buf_index(buf.fixed_index().unwrap_or(0));
        }
        self
    }

    #[inline]
    fn set_iovecs<B>(&mut self, v: &IoVecs<B>) -> &mut Self {
        self.set_addr(v.iovecs.as_ptr() as u64)
            .set_len(v.iovecs.len().min(u32::MAX as usize) as u32)
    }

    #[inline]
    fn set_timespec(&mut self, ts: &Timespec) -> &mut Self {
        self.set_addr(std::ptr::addr_of!(ts.0) as u64).set_len(1)
    }

    #[inline]
    fn set_opt_room<B: IoBufMut>(&mut self, buf: &mut B) -> &mut Self {
        let len = room(buf, u32::MAX);
        self.set_optval(buf.stable_mut_ptr() as u64).set_optlen(len)
    }

    #[inline]
    fn set_opt_value<B: IoBuf>(&mut self, buf: &B) -> &mut Self {
        let len = data(buf, u32::MAX);
        self.set_optval(buf.stable_ptr() as u64).set_optlen(len)
    }

    #[inline]
    fn set_sockaddr(&mut self, a: &SockAddr) -> &mut Self {
        self.set_addr(a.ptr() as u64).set_addr2(u64::from(a.len()))
    }

    #[inline]
    fn set_dest(&mut self, a: &DestAddr) -> &mut Self {
        match &a.0 {
            Some(a) => self.set_addr2(a.ptr() as u64).set_addr_len(a.len() as u16),
            None => self,
        }
    }

    #[inline]
    fn set_peer(&mut self, a: &mut PeerAddr) -> &mut Self {
        let (addr, len) = a.pointers();
        self.set_addr(addr).set_addr2(len)
    }

    #[inline]
    fn set_msghdr<B>(&mut self, m: &mut MsgHdr<B>) -> &mut Self {
        self.set_addr(m.fill() as u64).set_len(1)
    }

    #[inline]
    fn set_group(&mut self, g: &GroupRef) -> &mut Self {
        self.add_flags(uring_core::SqeFlags::BUFFER_SELECT)
            .set_buf_group(g.bgid())
    }

    #[inline]
    fn set_provision(&mut self, p: &mut Provision) -> &mut Self {
        let (addr, size, n, start, bgid) = p.sqe_fields();
        self.set_addr(addr)
            .set_len(size)
            .set_fd(i32::from(n))
            .set_off(u64::from(start))
            .set_buf_group(bgid)
    }

    fn set_timespec2(&mut self, ts: &Timespec) -> &mut Self {
        self.set_addr2(std::ptr::addr_of!(ts.0) as u64)
    }

    #[inline]
    fn set_buf_mut2<B: IoBufMut>(&mut self, buf: &mut B, want: u32) -> &mut Self {
        let len = room(buf, want);
        self.set_addr2(buf.stable_mut_ptr() as u64).set_len(len)
    }

    #[inline]
    fn set_buf2<B: IoBuf>(&mut self, buf: &B, want: u32) -> &mut Self {
        let len = data(buf, want);
        self.set_addr2(buf.stable_ptr() as u64).set_len(len)
    }

    #[inline]
    fn set_path(&mut self, p: &CPath) -> &mut Self {
        self.set_addr(p.addr())
    }

    #[inline]
    fn set_path2(&mut self, p: &CPath) -> &mut Self {
        self.set_addr2(p.addr())
    }

    #[inline]
    fn set_path3(&mut self, p: &CPath) -> &mut Self {
        self.set_addr3(p.addr())
    }

    #[inline]
    fn set_struct<T: Plain>(&mut self, b: &mut Box<T>) -> &mut Self {
        self.set_addr(std::ptr::addr_of_mut!(**b) as u64)
    }

    #[inline]
    fn set_struct2<T: Plain>(&mut self, b: &mut Box<T>) -> &mut Self {
        self.set_addr2(std::ptr::addr_of_mut!(**b) as u64)
    }

    #[inline]
    fn set_sized_struct2<T: Plain>(&mut self, b: &mut Box<T>) -> &mut Self {
        self.set_struct2(b).set_len(std::mem::size_of::<T>() as u32)
    }

    #[inline]
    fn set_array<T: Plain>(&mut self, v: &mut Vec<T>) -> &mut Self {
        self.set_addr(v.as_mut_ptr() as u64)
            .set_len(v.len().min(u32::MAX as usize) as u32)
    }

    #[inline]
    fn set_futex(&mut self, word: &Arc<AtomicU32>) -> &mut Self {
        self.set_addr(word.as_ptr() as u64)
    }

    #[inline]
    fn set_futexv(&mut self, v: &FutexWaits) -> &mut Self {
        self.set_addr(v.waitv.as_ptr() as u64)
            .set_len(v.waitv.len().min(u32::MAX as usize) as u32)
    }

    #[inline]
    fn set_fd_list(&mut self, v: &mut FdList) -> &mut Self {
        self.set_addr(v.raw.as_mut_ptr() as u64)
            .set_len(v.raw.len().min(u32::MAX as usize) as u32)
    }

    #[inline]
    fn set_fixed_vecs(&mut self, v: &FixedVecs) -> &mut Self {
        self.set_addr(v.iovecs.as_ptr() as u64)
            .set_len(v.iovecs.len().min(u32::MAX as usize) as u32)
            .set_buf_index(v.buf.index())
    }

    #[inline]
    fn set_closing(&mut self, c: &Closing) -> &mut Self {
        match c {
            Closing::Fd(Some(fd)) => self.set_fd(fd.as_raw_fd()),
            // The kernel takes the slot plus one (0: not a slot); an index past any table
            // is sent as one it refuses.
            Closing::Slot(i) => self
                .set_fd(0)
                .set_file_index(i.saturating_add(1).min(u32::MAX - 1)),
            // Already given back: never prepared (an op is prepared once, before completion).
            Closing::Fd(None) => self.set_fd(-1),
        }
    }
}

/// An optional destination address held on the heap (a send to an address).
#[derive(Debug, Default)]
pub struct DestAddr(Option<Box<SockAddr>>);

impl DestAddr {
    /// Send to `a`.
    pub(crate) fn to(a: SockAddr) -> Self {
        DestAddr(Some(Box::new(a)))
    }
}

/// Owned buffers and the iovec array that names them, for vectored reads and writes.
pub struct IoVecs<B> {
    bufs: Vec<B>,
    /// One entry per buffer, naming its heap memory: its room (to be written) or its data (to
    /// be read). Built once, when the buffers are taken, and never changed.
    iovecs: Vec<libc::iovec>,
}

// SAFETY: the iovecs only point into the buffers, which are `Send`.
unsafe impl<B: Send> Send for IoVecs<B> {}

impl<B: IoBufMut> IoVecs<B> {
    /// The buffers, for the kernel to fill (each its whole room).
    pub(crate) fn writable(mut bufs: Vec<B>) -> Self {
        let iovecs = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.stable_mut_ptr().cast(),
                iov_len: b.bytes_total(),
            })
            .collect();
        IoVecs { bufs, iovecs }
    }

    /// Records that the kernel filled `n` bytes, the buffers in order.
    pub(crate) fn filled(&mut self, mut n: usize) {
        for b in &mut self.bufs {
            let k = n.min(b.bytes_total());
            // SAFETY: the kernel filled the buffers in order; `k` bytes of this one.
            unsafe { b.set_init(k) };
            n -= k;
        }
    }
}

impl<B: IoBuf> IoVecs<B> {
    /// The buffers, for the kernel to read (each its data).
    pub(crate) fn readable(bufs: Vec<B>) -> Self {
        let iovecs = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.stable_ptr() as *mut libc::c_void,
                iov_len: b.bytes_init(),
            })
            .collect();
        IoVecs { bufs, iovecs }
    }
}

impl<B> IoVecs<B> {
    /// No buffer.
    pub(crate) fn empty() -> Self {
        IoVecs {
            bufs: Vec::new(),
            iovecs: Vec::new(),
        }
    }

    /// The iovec array, for a `msghdr`.
    pub(crate) fn as_iovecs(&mut self) -> &mut [libc::iovec] {
        &mut self.iovecs
    }

    /// Bytes the iovecs cover.
    pub(crate) fn total(&self) -> usize {
        self.iovecs
            .iter()
            .map(|v| v.iov_len)
            .fold(0, usize::saturating_add)
    }

    /// The buffers.
    pub(crate) fn into_bufs(self) -> Vec<B> {
        self.bufs
    }
}

impl<B> fmt::Debug for IoVecs<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoVecs")
            .field("bufs", &self.bufs.len())
            .field("bytes", &self.total())
            .finish()
    }
}

/// A `__kernel_timespec` held inside an op (the SQE points at it).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Timespec(sys::__kernel_timespec);

impl Timespec {
    /// `d`; durations beyond `i64::MAX` seconds are clamped.
    pub(crate) fn new(d: Duration) -> Self {
        Timespec(sys::__kernel_timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        })
    }

    #[cfg(test)]
    pub(crate) fn parts(&self) -> (i64, i64) {
        (self.0.tv_sec, self.0.tv_nsec)
    }
}

impl fmt::Debug for Timespec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}s", self.0.tv_sec, self.0.tv_nsec)
    }
}

/// A field kind, for `op!`: the field's type, and whether the SQE names it inside the op.
/// (Public inside this private module only so that op structs can name it.)
pub trait Kind {
    /// The field's type.
    type Ty;
    /// Whether the SQE points at the field itself, inside the op (which must then be prepared
    /// at its final address).
    const PINS: bool = false;
}

/// The kinds, named in `op!` blocks by these names.
pub mod markers {
    use super::{IoVecs, Target, Timespec};
    use std::marker::PhantomData;

    /// A file the op keeps open: a [`Target`].
    #[allow(non_camel_case_types)]
    pub struct file {}
    impl super::Kind for file {
        type Ty = Target;
    }

    /// An owned buffer.
    #[allow(non_camel_case_types)]
    pub struct buf<B> {
        _t: PhantomData<B>,
    }
    impl<B> super::Kind for buf<B> {
        type Ty = B;
    }

    /// Owned buffers the kernel reads, with their iovec array.
    #[allow(non_camel_case_types)]
    pub struct bufs<B> {
        _t: PhantomData<B>,
    }
    impl<B> super::Kind for bufs<B> {
        type Ty = IoVecs<B>;
    }

    /// Owned buffers the kernel fills, with their iovec array.
    #[allow(non_camel_case_types)]
    pub struct bufs_mut<B> {
        _t: PhantomData<B>,
    }
    impl<B> super::Kind for bufs_mut<B> {
        type Ty = IoVecs<B>;
    }

    /// A timespec inside the op.
    #[allow(non_camel_case_types)]
    pub struct timespec {}
    impl super::Kind for timespec {
        type Ty = Timespec;
        const PINS: bool = true;
    }

    /// A socket address inside the op.
    #[allow(non_camel_case_types)]
    pub struct sockaddr {}
    impl super::Kind for sockaddr {
        type Ty = crate::addr::SockAddr;
        const PINS: bool = true;
    }

    /// A `msghdr` on the heap with the buffers it names.
    #[allow(non_camel_case_types)]
    pub struct msg<B> {
        _t: PhantomData<B>,
    }
    impl<B> super::Kind for msg<B> {
        type Ty = super::MsgHdr<B>;
    }

    /// A `msghdr` on the heap with the buffers it names, for the kernel to fill.
    #[allow(non_camel_case_types)]
    pub struct msg_mut<B> {
        _t: PhantomData<B>,
    }
    impl<B> super::Kind for msg_mut<B> {
        type Ty = super::MsgHdr<B>;
    }

    /// A provided-buffer group the kernel selects from.
    #[allow(non_camel_case_types)]
    pub struct group {}
    impl super::Kind for group {
        type Ty = super::GroupRef;
    }

    /// Buffers of a group handed to the kernel.
    #[allow(non_camel_case_types)]
    pub struct provision {}
    impl super::Kind for provision {
        type Ty = super::Provision;
    }

    /// A path (or name) the op owns.
    #[allow(non_camel_case_types)]
    pub struct path {}
    impl super::Kind for path {
        type Ty = super::CPath;
    }

    /// One plain struct on the heap.
    #[allow(non_camel_case_types)]
    pub struct boxed<T> {
        _t: PhantomData<T>,
    }
    impl<T> super::Kind for boxed<T> {
        type Ty = Box<T>;
    }

    /// An array of plain structs on the heap.
    #[allow(non_camel_case_types)]
    pub struct array<T> {
        _t: PhantomData<T>,
    }
    impl<T> super::Kind for array<T> {
        type Ty = Vec<T>;
    }

    /// A futex word the op holds a share of.
    #[allow(non_camel_case_types)]
    pub struct futex {}
    impl super::Kind for futex {
        type Ty = std::sync::Arc<std::sync::atomic::AtomicU32>;
    }

    /// Futex words to wait on, with their `futex_waitv` array.
    #[allow(non_camel_case_types)]
    pub struct futexv {}
    impl super::Kind for futexv {
        type Ty = super::FutexWaits;
    }

    /// Descriptor numbers kept open.
    #[allow(non_camel_case_types)]
    pub struct fds {}
    impl super::Kind for fds {
        type Ty = super::FdList;
    }

    /// Ranges of one registered buffer.
    #[allow(non_camel_case_types)]
    pub struct fixed_vecs {}
    impl super::Kind for fixed_vecs {
        type Ty = super::FixedVecs;
    }

    /// A descriptor (or slot) for the kernel to close.
    #[allow(non_camel_case_types)]
    pub struct closing {}
    impl super::Kind for closing {
        type Ty = super::Closing;
    }

    /// A number: nothing for the kernel to dereference.
    #[allow(non_camel_case_types)]
    pub struct plain<T> {
        _t: PhantomData<T>,
    }
    impl<T> super::Kind for plain<T> {
        type Ty = T;
    }
}
