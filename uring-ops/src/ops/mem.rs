//! Memory advice: `MADVISE`.

use super::define::op;
use super::fs::split_len;
use crate::op::res_to_io;
use crate::pages::Pages;
use std::io;
use uring_core::sys;

/// The advice of [`Madvise`] (`MADV_*`, `madvise(2)`): those that keep the memory readable and
/// writable, with the same contents or zeros. Advice that would unmap pages in a child
/// (`MADV_DONTFORK`), make them fault (`MADV_GUARD_INSTALL`, `MADV_HWPOISON`) or let them
/// change value later, behind the owner's back (`MADV_FREE`), is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemAdvice {
    /// No particular pattern.
    Normal,
    /// Random access: less readahead.
    Random,
    /// Sequential access: more readahead.
    Sequential,
    /// The pages will be needed soon.
    WillNeed,
    /// Drop the pages now: they read back as zeros.
    DontNeed,
    /// Deactivate the pages, keeping their contents (Linux 5.4).
    Cold,
    /// Reclaim (swap out) the pages, keeping their contents (Linux 5.4).
    PageOut,
    /// Fault the pages in, readable (Linux 5.14).
    PopulateRead,
    /// Fault the pages in, writable (Linux 5.14).
    PopulateWrite,
    /// Back the pages with huge pages where possible.
    HugePage,
    /// Do not back the pages with huge pages.
    NoHugePage,
    /// Leave the pages out of core dumps.
    DontDump,
    /// Include the pages in core dumps again.
    DoDump,
    /// A child made by `fork` gets the pages zeroed (Linux 4.14).
    WipeOnFork,
    /// A child made by `fork` gets the pages' contents again.
    KeepOnFork,
}

impl MemAdvice {
    fn raw(self) -> i32 {
        match self {
            MemAdvice::Normal => libc::MADV_NORMAL,
            MemAdvice::Random => libc::MADV_RANDOM,
            MemAdvice::Sequential => libc::MADV_SEQUENTIAL,
            MemAdvice::WillNeed => libc::MADV_WILLNEED,
            MemAdvice::DontNeed => libc::MADV_DONTNEED,
            MemAdvice::Cold => 20,
            MemAdvice::PageOut => 21,
            MemAdvice::PopulateRead => 22,
            MemAdvice::PopulateWrite => 23,
            MemAdvice::HugePage => libc::MADV_HUGEPAGE,
            MemAdvice::NoHugePage => libc::MADV_NOHUGEPAGE,
            MemAdvice::DontDump => libc::MADV_DONTDUMP,
            MemAdvice::DoDump => libc::MADV_DODUMP,
            MemAdvice::WipeOnFork => 18,
            MemAdvice::KeepOnFork => 19,
        }
    }
}

op! {
    /// Gives the kernel advice about memory the op owns (`IORING_OP_MADVISE`, Linux 5.6): the
    /// `madvise(2)` of io_uring, over whole [`Pages`].
    ///
    /// Owns the pages until completion (so the advice concerns memory nothing else uses
    /// meanwhile), and gives them back: after [`MemAdvice::DontNeed`] they read as zeros.
    /// Returns `Ok(())` or the errno (`EINVAL` for advice the kernel lacks).
    pub struct Madvise {
        /// Advice `advice` for all of `pages`.
        pub fn new { pages: buf(Pages), advice: plain(MemAdvice) }
    }
    opcode = sys::IORING_OP_MADVISE;
    prepare(op, sqe) {
        // The whole mapping; a length beyond 32 bits travels in `off` (Linux 6.12).
        let (short, long) = split_len(op.pages.len() as u64);
        sqe.set_fd(-1)
            .set_buf_mut(&mut op.pages, short)
            .set_off(long)
            .set_op_flags(op.advice.raw() as u32);
    }
    complete(op, res, _flags) -> (io::Result<()>, Pages) {
        (res_to_io(res).map(drop), op.pages)
    }
}
