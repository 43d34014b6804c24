//! A chain in the ring: its links' SQEs, flags and completions, and how each link ended.

use super::{Chain, Links, LINK_TIMEOUT, MAX_LINKS};
use crate::error::{Error, Result};
use crate::op::{sealed, Entry, OpCheck, Submit};
use std::fmt;
use uring_core::{sys, Sqe, SqeFlags};

/// The in-ring form of a [`Chain`].
#[doc(hidden)]
pub struct ChainEntry<L: Links> {
    links: L,
    meta: L::Meta,
    /// SQEs whose final completion has not arrived, in `0..=MAX_LINKS`.
    remaining: u32,
}

impl<L: Links> fmt::Debug for ChainEntry<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainEntry")
            .field("links", &self.links.link_count())
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl<L: Links> ChainEntry<L> {
    /// The link flag SQE `i` carries (all but the last): a link timeout carries the flag of the
    /// link it guards, so that what follows is linked the same way.
    fn link_flag(&self, i: usize) -> SqeFlags {
        let meta = self.meta.as_ref();
        let from = if i > 0 && self.links.opcode(i) == LINK_TIMEOUT {
            i - 1
        } else {
            i
        };
        if meta[from].hard {
            SqeFlags::IO_HARDLINK
        } else {
            SqeFlags::IO_LINK
        }
    }

    /// Marks the links the kernel never started, from the results, following the kernel's
    /// rules:
    ///
    /// - At run time, the first link that fails while soft-linked cancels every SQE after it
    ///   (`-ECANCELED`); a link timeout never breaks the chain itself (the kernel unlinks it),
    ///   it is cancelled only with the link it guards.
    /// - At submission, an SQE the kernel refuses (its own error, such as `-EINVAL`) fails the
    ///   whole chain: every other link, the first one included, gets `-ECANCELED`, hard links
    ///   too. So when every link failed, no link timeout fired and some link has an error of
    ///   its own, every `-ECANCELED` link was never started.
    fn mark_cancelled(&mut self) {
        let n = self.links.link_count();
        let is_timeout = |links: &L, i: usize| i > 0 && links.opcode(i) == LINK_TIMEOUT;
        let mut broken = false;
        let mut guarded_cancelled = false;
        for i in 0..n {
            let res = self.meta.as_ref()[i].res;
            if is_timeout(&self.links, i) {
                self.meta.as_mut()[i].cancelled = guarded_cancelled && res == -libc::ECANCELED;
                continue;
            }
            // An unexpected result after a failure (the kernel ran a link it should have
            // cancelled) is reported as run: the output says what happened.
            let cancelled = broken && res == -libc::ECANCELED;
            guarded_cancelled = cancelled;
            let m = &mut self.meta.as_mut()[i];
            m.cancelled = cancelled;
            if !broken && !m.hard && self.links.fails_link(i, res) {
                broken = true;
            }
        }
        let meta = self.meta.as_ref();
        let all_failed = meta.iter().all(|m| m.res < 0);
        let timeout_fired =
            (0..n).any(|i| is_timeout(&self.links, i) && meta[i].res != -libc::ECANCELED);
        let own_error = (0..n).any(|i| {
            !is_timeout(&self.links, i) && meta[i].res < 0 && meta[i].res != -libc::ECANCELED
        });
        if all_failed && !timeout_fired && own_error {
            for m in self.meta.as_mut() {
                m.cancelled = m.res == -libc::ECANCELED;
            }
        }
    }
}

impl<L: Links> sealed::Sealed for ChainEntry<L> {}

// SAFETY: `prepare` forwards to the links' `Op::prepare` (each names only memory and files its
// op owns, and the ops stay inside this entry, unmoved, while the ring holds it); the entry
// finishes when every one of its SQEs has posted its final completion (no op can set
// skip-success, and a CQE flagged `IORING_CQE_F_MORE` is not final), so no completion, and no
// kernel access to the entry's memory, can follow.
unsafe impl<L: Links> Entry for ChainEntry<L> {
    type Output = L::Output;

    #[inline]
    fn sqe_count(&self) -> u32 {
        u32::try_from(self.links.link_count()).unwrap_or(u32::MAX)
    }

    fn check(&self, ops: &OpCheck) -> Result<()> {
        let n = self.links.link_count();
        if n == 0 {
            return Err(Error::EmptyChain);
        }
        if n > MAX_LINKS {
            return Err(Error::ChainTooLong {
                links: n,
                max: MAX_LINKS,
            });
        }
        for i in 0..n {
            self.links.check(i, ops)?;
            if self.links.opcode(i) == LINK_TIMEOUT
                && (i == 0 || self.links.opcode(i - 1) == LINK_TIMEOUT)
            {
                return Err(Error::MisplacedLinkTimeout {
                    link: i,
                    op: self.links.name(i),
                });
            }
        }
        Ok(())
    }

    #[inline]
    fn prepare(&mut self, i: u32, sqe: &mut Sqe) {
        let i = i as usize;
        self.links.prepare(i, sqe);
        if i + 1 < self.links.link_count() {
            sqe.add_flags(self.link_flag(i));
        }
    }

    #[inline]
    fn on_cqe(&mut self, sub: u32, res: i32, flags: u32) -> bool {
        if flags & sys::IORING_CQE_F_MORE != 0 {
            // Not a link's last word (a multishot op's intermediate result): more will come.
            return false;
        }
        if let Some(m) = self.meta.as_mut().get_mut(sub as usize) {
            debug_assert!(!m.done, "a second final completion for link {sub}");
            if !m.done {
                m.done = true;
                m.res = res;
                m.flags = flags;
                self.remaining -= 1;
            }
        }
        self.remaining == 0
    }

    /// A link timeout whose completion arrives while the link it guards has not completed,
    /// with another result than `-ETIME` (which says the kernel cancelled that link): the
    /// kernel did not, and will not, end the guarded link. It happens when the timer fires
    /// after the thread that submitted the chain has exited: the timeout's work then runs in a
    /// kernel worker, which completes the timeout (`-ECANCELED` on Linux 6.18, `-ENOENT` on
    /// 6.1) without cancelling anything. The guarded link is returned, for the ring to cancel.
    /// (When the guarded link completes first, its completion is posted before the timeout's
    /// `-ECANCELED`, so this does not ask for a cancel; if it ever did, the cancel would find
    /// nothing and change nothing.)
    fn link_to_cancel(&self, sub: u32, res: i32) -> Option<u32> {
        let i = sub as usize;
        if i == 0 || res == -libc::ETIME || self.links.opcode(i) != LINK_TIMEOUT {
            return None;
        }
        let guarded = self.meta.as_ref().get(i - 1)?;
        (!guarded.done).then_some(sub - 1)
    }

    fn finish(mut self) -> L::Output {
        self.mark_cancelled();
        self.links.complete(self.meta.as_ref())
    }
}

impl<L: Links> Submit for Chain<L> {
    type Output = L::Output;
    type Entry = ChainEntry<L>;

    #[inline]
    fn into_entry(self) -> ChainEntry<L> {
        let remaining = u32::try_from(self.links.link_count()).unwrap_or(u32::MAX);
        ChainEntry {
            links: self.links,
            meta: self.meta,
            remaining,
        }
    }

    #[inline]
    fn from_entry(e: ChainEntry<L>) -> Self {
        Chain {
            links: e.links,
            meta: e.meta,
        }
    }
}
