//! [`MsgHdr`]: the `msghdr` of `SendMsg`/`RecvMsg` and what it names, owned together.

use super::kinds::IoVecs;
use crate::addr::SockAddr;
use crate::buf::{IoBuf, IoBufMut};
use std::fmt;

/// A `msghdr` on the heap, with what it names: the buffers (and their iovec array), an
/// address (the destination of a send, room for the source of a receive) and control bytes
/// (ancillary data to send, room for what a receive gets).
pub struct MsgHdr<B> {
    bufs: IoVecs<B>,
    parts: Box<Parts>,
}

/// The heap part, at an address that does not change when the op moves.
struct Parts {
    /// Filled in by [`MsgHdr::fill`], read back after a receive.
    hdr: libc::msghdr,
    /// The address (`len` 0: none). For a receive, `len` is the room offered.
    name: SockAddr,
    /// Control bytes: to send, or room (zeroed) for a receive.
    control: Vec<u8>,
}

// SAFETY: the raw pointers in `hdr` point only into this box and into the buffers' heap memory
// (the iovec array), all owned by the `MsgHdr`; nothing is shared with another thread.
unsafe impl Send for Parts {}

impl<B: IoBuf> MsgHdr<B> {
    /// A header naming `bufs` (each its data), to send.
    pub(crate) fn readable(bufs: Vec<B>) -> Self {
        Self::new(IoVecs::readable(bufs))
    }
}

impl<B: IoBufMut> MsgHdr<B> {
    /// A header naming `bufs` (each its room), to receive into.
    pub(crate) fn writable(bufs: Vec<B>) -> Self {
        Self::new(IoVecs::writable(bufs))
    }

    /// Records that the kernel filled `n` bytes, the buffers in order.
    pub(crate) fn filled(&mut self, n: usize) {
        self.bufs.filled(n);
    }
}

impl<B> MsgHdr<B> {
    fn new(bufs: IoVecs<B>) -> Self {
        MsgHdr {
            bufs,
            parts: Box::new(Parts {
                // SAFETY: plain integers and null pointers; all-zero is valid.
                hdr: unsafe { std::mem::zeroed() },
                name: SockAddr::from_raw(
                    // SAFETY: as above.
                    unsafe { std::mem::zeroed() },
                    0,
                )
                .expect("length 0 fits"),
                control: Vec::new(),
            }),
        }
    }

    /// A header naming no buffer (for a multishot receive, where the buffers are provided).
    pub(crate) fn empty() -> Self {
        Self::new(IoVecs::empty())
    }

    /// The address: where to send, or (with [`SockAddr`] of full length) room for the source.
    pub(crate) fn set_name(&mut self, a: SockAddr) {
        self.parts.name = a;
    }

    /// Room for the source address of a receive.
    pub(crate) fn want_name(&mut self) {
        self.parts.name = SockAddr::room();
    }

    /// Control bytes to send.
    pub(crate) fn set_control(&mut self, c: Vec<u8>) {
        self.parts.control = c;
    }

    /// `n` zeroed bytes of room for control data received.
    pub(crate) fn control_room(&mut self, n: usize) {
        self.parts.control = vec![0; n];
    }

    /// The name room and control room requested, for a multishot receive's layout.
    pub(crate) fn rooms(&self) -> (u32, u32) {
        (self.parts.name.len(), self.parts.control.len() as u32)
    }

    /// Points the header at its parts and returns it, for the SQE.
    pub(crate) fn fill(&mut self) -> *mut libc::msghdr {
        let iov = self.bufs.as_iovecs();
        let p = &mut *self.parts;
        p.hdr.msg_iov = if iov.is_empty() {
            std::ptr::null_mut()
        } else {
            iov.as_mut_ptr()
        };
        p.hdr.msg_iovlen = iov.len() as _;
        if p.name.len() == 0 {
            p.hdr.msg_name = std::ptr::null_mut();
            p.hdr.msg_namelen = 0;
        } else {
            p.hdr.msg_name = p.name.ptr().cast_mut().cast();
            p.hdr.msg_namelen = p.name.len();
        }
        if p.control.is_empty() {
            p.hdr.msg_control = std::ptr::null_mut();
            p.hdr.msg_controllen = 0;
        } else {
            p.hdr.msg_control = p.control.as_mut_ptr().cast();
            p.hdr.msg_controllen = p.control.len() as _;
        }
        p.hdr.msg_flags = 0;
        &mut p.hdr
    }

    /// Bytes the buffers cover.
    pub(crate) fn total(&self) -> usize {
        self.bufs.total()
    }

    /// After a receive: the source address the kernel wrote (`None` if none was asked for or
    /// the socket reported none).
    pub(crate) fn name_out(&self) -> Option<SockAddr> {
        let p = &self.parts;
        if p.name.len() == 0 || p.hdr.msg_namelen == 0 {
            return None;
        }
        SockAddr::from_raw(*p.name.as_raw(), p.hdr.msg_namelen.min(p.name.len())).ok()
    }

    /// After a receive: `msg_flags` (`MSG_TRUNC`, `MSG_CTRUNC`, ...).
    pub(crate) fn flags_out(&self) -> i32 {
        self.parts.hdr.msg_flags
    }

    /// The buffers, and the control bytes (after a receive, cut to what the kernel wrote;
    /// `received` says whether a receive completed).
    pub(crate) fn into_parts(self, received: bool) -> (Vec<B>, Vec<u8>) {
        let mut parts = self.parts;
        if received {
            // `msg_controllen` is `size_t` in glibc, `socklen_t` in musl.
            #[allow(clippy::unnecessary_cast)]
            let n = (parts.hdr.msg_controllen as usize).min(parts.control.len());
            parts.control.truncate(n);
        }
        (self.bufs.into_bufs(), parts.control)
    }
}

impl<B> fmt::Debug for MsgHdr<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsgHdr")
            .field("bufs", &self.bufs)
            .field("name", &self.parts.name)
            .field("control", &self.parts.control.len())
            .finish()
    }
}
