//! [`Chain`]: typed ops linked with `IOSQE_IO_LINK` / `IOSQE_IO_HARDLINK`, placed into the SQ
//! all at once, completing into one typed result per link.

use crate::error::{Error, Result};
use crate::op::{check_op, prepare_op, sealed, Entry, Op, OpCheck, Submit};
use std::fmt;
use uring_core::{sys, Sqe, SqeFlags};

/// Most links in one chain: the user data of each SQE carries its link's index in 8 bits.
pub const MAX_LINKS: usize = 256;

const LINK_TIMEOUT: u8 = sys::IORING_OP_LINK_TIMEOUT as u8;

/// Ops linked so that each starts when the one before it has completed, submitted to the kernel
/// as one unit and completing into one typed result per link ([`Linked`]).
///
/// - [`Chain::new`] starts a chain; [`Chain::then`] appends a link that runs only if the
///   previous one succeeded (`IOSQE_IO_LINK`), [`Chain::then_hard`] one that runs whatever the
///   previous result (`IOSQE_IO_HARDLINK`), and [`Chain::link_timeout`] puts a deadline on the
///   previous link ([`LinkTimeout`](crate::ops::LinkTimeout)). Up to 8 links of different types
///   make a tuple; [`Chain::from_vec`] links up to [`MAX_LINKS`] ops of one type.
/// - [`Uring::push`](crate::Uring::push) places all of a chain's SQEs in the submission queue
///   or none of them ([`Error::QueueFull`], the chain handed back), after checking every op
///   against the kernel's support and the ring's allowlist (the error names the first refused
///   op).
/// - Its ticket yields a tuple of [`Linked`] outputs, one per link (a `Vec` for
///   [`Chain::from_vec`]). A link the kernel never started, because an earlier link failed, is
///   [`Linked::Cancelled`], its output made from `-ECANCELED` (which gives back what the op
///   owned); every other link is [`Linked::Ran`].
///
/// # Failures that cancel the rest
///
/// With `then`, a link fails the chain when its result is an error **or a short transfer**: a
/// read (or write) that moves fewer bytes than asked for, at the end of a file for instance,
/// cancels the links after it, exactly as an error would ([`Op::fails_link`]). Size the reads
/// of a copy chain to what the file holds. A link timeout that fires cancels the link it
/// guards, which then fails. Once a link fails, every later link is cancelled, hard-linked or
/// not; hard links only keep their *own* failure from cancelling the rest. A link the kernel
/// refuses when the chain is submitted (an invalid argument, say) fails the whole chain: it
/// reports its own error and every other link, the first one included, is cancelled.
///
/// # Sharing a buffer between links
///
/// A later link can use the memory an earlier one fills through a [`SharedBuf`](crate::SharedBuf):
/// each op owns a handle (a reference count, no copy), the kernel uses the one buffer, and the
/// buffer comes back at the end through the outputs (see the example).
///
/// # Skip-success
///
/// No link can ask for `IOSQE_CQE_SKIP_SUCCESS` ([`crate::SqeOptions`] does not offer it). A
/// chain is finished when every SQE has posted its completion; with skipped successes the ring
/// would have to infer that from the kernel's rule that a failed skip-success link silences the
/// rest of the chain, which is only sound if the kernel submits the chain as one unit. It does
/// not promise to: an SQPOLL thread shared between rings submits at most 8 SQEs per round, and
/// a submission cut short (a failed request allocation) can end in the middle of a chain, whose
/// tail then runs as a chain of its own. Finishing early in those cases would free memory the
/// kernel still uses, so every link posts its completion and the chain finishes on the last.
///
/// # Examples
///
/// A copy: read a block into a shared buffer, write the same buffer out, get it back.
///
/// ```
/// use std::io::Write as _;
/// use uring_ops::ops::{Read, Write};
/// use uring_ops::{Chain, Linked, SharedBuf, Uring};
///
/// let dir = std::env::temp_dir();
/// let (src_path, dst_path) = (dir.join("chain-doc-src"), dir.join("chain-doc-dst"));
/// std::fs::File::create(&src_path)?.write_all(b"linked!")?;
/// let src = std::fs::File::open(&src_path)?;
/// let dst = std::fs::File::create(&dst_path)?; // moved into the write: closed when it is done
///
/// let mut ring = Uring::new(8)?;
/// let buf = SharedBuf::new(vec![0u8; 7]);
/// let chain = Chain::new(Read::new(src, buf.clone(), 0)).then(Write::new(dst, buf, 0));
/// let ticket = ring.push(chain)?;
/// let (read, write) = ring.wait(ticket)?;
/// assert_eq!(read.into_inner().0?, 7); // the read's handle is dropped here
/// let (written, buf) = write.into_inner();
/// assert_eq!(written?, 7);
/// assert_eq!(buf.try_into_inner().unwrap(), b"linked!");
/// assert_eq!(std::fs::read(&dst_path)?, b"linked!");
///
/// // A failed first link cancels the rest, and says so.
/// use uring_ops::ops::Nop;
/// let chain = Chain::new(Nop::new().inject_result(-libc::EIO)).then(Nop::new());
/// let ticket = ring.push(chain)?;
/// let (first, second) = ring.wait(ticket)?;
/// assert!(first.into_inner().is_err());
/// match second {
///     Linked::Cancelled(out) => assert_eq!(out.unwrap_err().raw_os_error(), Some(libc::ECANCELED)),
///     Linked::Ran(_) => unreachable!("the first link failed"),
/// }
/// # std::fs::remove_file(src_path)?; std::fs::remove_file(dst_path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Chain<L: Links> {
    links: L,
    meta: L::Meta,
}

impl<L: Links + fmt::Debug> fmt::Debug for Chain<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("links", &self.links)
            .field("meta", &self.meta.as_ref())
            .finish()
    }
}

impl<A: Op> Chain<(A,)> {
    /// A chain whose first link is `op`.
    pub fn new(op: A) -> Self {
        let links = (op,);
        Chain {
            meta: links.new_meta(),
            links,
        }
    }
}

impl<O: Op> Chain<Vec<O>> {
    /// A chain of ops of one type, linked in order (up to [`MAX_LINKS`]; more is refused at
    /// push with [`Error::ChainTooLong`], none with [`Error::EmptyChain`]). It completes into
    /// a `Vec` of [`Linked`] outputs, in order.
    pub fn from_vec(ops: Vec<O>) -> Self {
        Chain {
            meta: ops.new_meta(),
            links: ops,
        }
    }
}

impl<L: Links> Chain<L> {
    /// Number of links (SQEs, link timeouts included).
    pub fn len(&self) -> usize {
        self.links.link_count()
    }

    /// Whether the chain has no link (only possible with [`Chain::from_vec`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hard-links link `index` to what follows (`IOSQE_IO_HARDLINK`): its failure does not
    /// cancel the links after it. On a link timeout, applies to the link it guards. Out of range
    /// does nothing.
    pub fn hard(mut self, index: usize) -> Self {
        let mut i = index;
        if i > 0 && i < self.len() && self.links.opcode(i) == LINK_TIMEOUT {
            i -= 1;
        }
        if let Some(m) = self.meta.as_mut().get_mut(i) {
            m.hard = true;
        }
        self
    }

    /// Hard-links every link: each runs whatever the results before it.
    pub fn hard_links(mut self) -> Self {
        for m in self.meta.as_mut() {
            m.hard = true;
        }
        self
    }

    /// The ops, back, unsubmitted (for example after a refused push).
    pub fn into_links(self) -> L {
        self.links
    }
}

/// The result of one link of a chain: the op's output, and whether the op ran at all.
///
/// Whether a link ran is inferred from the chain's results with the kernel's rules (see
/// [`Chain`], "Failures that cancel the rest", and [`Op::fails_link`]). One case cannot be told
/// apart from a chain the kernel refused at submission: when every link failed, no link timeout
/// fired, and some link failed with an error of its own, every link that ended with
/// `ECANCELED` reads as never started. That includes a link cancelled while running by an
/// `AsyncCancel`, and a link timeout disarmed because the link it guards failed (a first link
/// failing with `EBADF`, say, and its timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a link's output holds its result and the buffers it owned"]
pub enum Linked<T> {
    /// The kernel ran the op (or tried to): its output, success or error. An op that ran and was
    /// then cancelled (by its link timeout, or an `AsyncCancel`) is here, with its error.
    Ran(T),
    /// The kernel never started the op: an earlier link failed (an error, a short transfer, a
    /// fired link timeout), so it was cancelled with `ECANCELED`. The output is the op's output
    /// for `-ECANCELED` (an `Err` of `ECANCELED` for most ops), with what it owned.
    Cancelled(T),
}

impl<T> Linked<T> {
    /// The op's output, however the link ended.
    pub fn into_inner(self) -> T {
        match self {
            Linked::Ran(t) | Linked::Cancelled(t) => t,
        }
    }

    /// The op's output, by reference.
    pub fn output(&self) -> &T {
        match self {
            Linked::Ran(t) | Linked::Cancelled(t) => t,
        }
    }

    /// Whether the kernel never started the op because an earlier link failed.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Linked::Cancelled(_))
    }

    /// The output if the op ran, `None` if it was cancelled.
    pub fn ran(self) -> Option<T> {
        match self {
            Linked::Ran(t) => Some(t),
            Linked::Cancelled(_) => None,
        }
    }

    /// Maps the output, keeping how the link ended.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Linked<U> {
        match self {
            Linked::Ran(t) => Linked::Ran(f(t)),
            Linked::Cancelled(t) => Linked::Cancelled(f(t)),
        }
    }
}

/// Per-link bookkeeping: how it is linked, and its completion once posted.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkMeta {
    /// `IOSQE_IO_HARDLINK` instead of `IOSQE_IO_LINK` to the next link.
    hard: bool,
    /// The final completion arrived.
    done: bool,
    /// Never started (set when the chain finishes).
    cancelled: bool,
    res: i32,
    flags: u32,
}

/// The links of a [`Chain`]: tuples of 1 to 8 ops, or a `Vec` of ops of one type. Implemented
/// by this crate only.
#[doc(hidden)]
pub trait Links: sealed::Sealed + Send + 'static {
    /// One [`Linked`] output per link.
    type Output;
    /// Per-link bookkeeping storage.
    type Meta: AsRef<[LinkMeta]> + AsMut<[LinkMeta]> + Send + 'static;
    /// Fresh bookkeeping for these links.
    fn new_meta(&self) -> Self::Meta;
    /// Number of links.
    fn link_count(&self) -> usize;
    /// Opcode of link `i`.
    fn opcode(&self, i: usize) -> u8;
    /// Type name of link `i`.
    fn name(&self, i: usize) -> &'static str;
    /// Checks link `i`'s op against the ring, and its arguments.
    fn check(&self, i: usize, ops: &OpCheck) -> Result<()>;
    /// Prepares link `i`'s SQE (the op's `prepare`, then its opcode).
    fn prepare(&mut self, i: usize, sqe: &mut Sqe);
    /// Whether `res` fails link `i` ([`Op::fails_link`]).
    fn fails_link(&self, i: usize, res: i32) -> bool;
    /// Completes every link from its bookkeeping.
    fn complete(self, meta: &[LinkMeta]) -> Self::Output;
}

fn linked<O: Op>(op: O, m: &LinkMeta) -> Linked<O::Output> {
    let out = op.complete(m.res, m.flags);
    if m.cancelled {
        Linked::Cancelled(out)
    } else {
        Linked::Ran(out)
    }
}

macro_rules! tuple_links {
    ($n:literal; $($T:ident $i:tt),+) => {
        impl<$($T: Op),+> sealed::Sealed for ($($T,)+) {}

        impl<$($T: Op),+> Links for ($($T,)+) {
            type Output = ($(Linked<$T::Output>,)+);
            type Meta = [LinkMeta; $n];

            fn new_meta(&self) -> Self::Meta {
                [LinkMeta::default(); $n]
            }
            #[inline]
            fn link_count(&self) -> usize {
                $n
            }
            fn opcode(&self, i: usize) -> u8 {
                match i {
                    $($i => self.$i.opcode(),)+
                    _ => u8::MAX,
                }
            }
            fn name(&self, i: usize) -> &'static str {
                match i {
                    $($i => $T::NAME,)+
                    _ => "?",
                }
            }
            fn check(&self, i: usize, ops: &OpCheck) -> Result<()> {
                match i {
                    $($i => check_op(&self.$i, ops),)+
                    _ => Ok(()),
                }
            }
            #[inline]
            fn prepare(&mut self, i: usize, sqe: &mut Sqe) {
                match i {
                    $($i => prepare_op(&mut self.$i, sqe),)+
                    _ => {}
                }
            }
            fn fails_link(&self, i: usize, res: i32) -> bool {
                match i {
                    $($i => self.$i.fails_link(res),)+
                    _ => res < 0,
                }
            }
            fn complete(self, meta: &[LinkMeta]) -> Self::Output {
                ($(linked(self.$i, &meta[$i]),)+)
            }
        }
    };
}

tuple_links!(1; A 0);
tuple_links!(2; A 0, B 1);
tuple_links!(3; A 0, B 1, C 2);
tuple_links!(4; A 0, B 1, C 2, D 3);
tuple_links!(5; A 0, B 1, C 2, D 3, E 4);
tuple_links!(6; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_links!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_links!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

macro_rules! tuple_then_n {
    ($n:literal; $($T:ident $i:tt),+) => {
        impl<$($T: Op),+> Chain<($($T,)+)> {
            /// Appends `op`, linked with `IOSQE_IO_LINK`: it starts when the previous link has
            /// completed, and only if that one succeeded (otherwise it is cancelled).
            pub fn then<N: Op>(self, op: N) -> Chain<($($T,)+ N,)> {
                let mut meta = [LinkMeta::default(); $n + 1];
                meta[..$n].copy_from_slice(&self.meta);
                Chain {
                    links: ($(self.links.$i,)+ op,),
                    meta,
                }
            }

            /// Appends `op`, hard-linked (`IOSQE_IO_HARDLINK`): it starts when the previous
            /// link has completed, whatever its result. After a link timeout, the link it
            /// guards is hard-linked too (so that its timing out does not cancel `op`).
            pub fn then_hard<N: Op>(self, op: N) -> Chain<($($T,)+ N,)> {
                self.hard($n - 1).then(op)
            }

            /// Appends a [`LinkTimeout`](crate::ops::LinkTimeout) of `after` guarding the
            /// previous link: if that link has not completed in time, the kernel cancels it.
            /// The timeout's outcome is a link of the output like any other. For a deadline or
            /// another clock, append `LinkTimeout::absolute(..)` / `.clock(..)` with `then`.
            pub fn link_timeout(
                self,
                after: std::time::Duration,
            ) -> Chain<($($T,)+ crate::ops::LinkTimeout,)> {
                self.then(crate::ops::LinkTimeout::new(after))
            }
        }
    };
}

tuple_then_n!(1; A 0);
tuple_then_n!(2; A 0, B 1);
tuple_then_n!(3; A 0, B 1, C 2);
tuple_then_n!(4; A 0, B 1, C 2, D 3);
tuple_then_n!(5; A 0, B 1, C 2, D 3, E 4);
tuple_then_n!(6; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_then_n!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);

impl<O: Op> sealed::Sealed for Vec<O> {}

impl<O: Op> Links for Vec<O> {
    type Output = Vec<Linked<O::Output>>;
    type Meta = Vec<LinkMeta>;

    fn new_meta(&self) -> Self::Meta {
        vec![LinkMeta::default(); self.len()]
    }
    #[inline]
    fn link_count(&self) -> usize {
        self.len()
    }
    fn opcode(&self, i: usize) -> u8 {
        self.get(i).map_or(u8::MAX, Op::opcode)
    }
    fn name(&self, _i: usize) -> &'static str {
        O::NAME
    }
    fn check(&self, i: usize, ops: &OpCheck) -> Result<()> {
        self.get(i).map_or(Ok(()), |op| check_op(op, ops))
    }
    #[inline]
    fn prepare(&mut self, i: usize, sqe: &mut Sqe) {
        if let Some(op) = self.get_mut(i) {
            prepare_op(op, sqe);
        }
    }
    fn fails_link(&self, i: usize, res: i32) -> bool {
        self.get(i).map_or(res < 0, |op| op.fails_link(res))
    }
    fn complete(self, meta: &[LinkMeta]) -> Self::Output {
        self.into_iter()
            .zip(meta)
            .map(|(op, m)| linked(op, m))
            .collect()
    }
}

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
impl<L: Links> sealed::Sealed for Chain<L> {}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::OpSet;
    use crate::ops::{LinkTimeout, Nop, Read};
    use crate::Target;
    use std::time::Duration;

    fn all() -> OpCheck {
        OpCheck::new(OpSet::all(), OpSet::all())
    }

    fn prepared<L: Links>(c: Chain<L>) -> Vec<Sqe> {
        let mut e = c.into_entry();
        (0..e.sqe_count())
            .map(|i| {
                let mut sqe = Sqe::zeroed();
                e.prepare(i, &mut sqe);
                sqe
            })
            .collect()
    }

    #[test]
    fn link_flags() {
        let c = Chain::new(Nop::new())
            .then(Nop::new())
            .link_timeout(Duration::from_secs(1))
            .then_hard(Nop::new())
            .then(Nop::new());
        let sqes = prepared(c);
        let f: Vec<_> = sqes.iter().map(|s| s.flags()).collect();
        assert_eq!(
            f,
            [
                SqeFlags::IO_LINK,
                SqeFlags::IO_HARDLINK,
                SqeFlags::IO_HARDLINK,
                SqeFlags::IO_LINK,
                SqeFlags::empty()
            ]
        );
        assert_eq!(sqes[2].opcode(), LINK_TIMEOUT);
        let f: Vec<_> = prepared(Chain::from_vec(vec![Nop::new(); 3]).hard_links())
            .iter()
            .map(|s| s.flags())
            .collect();
        assert_eq!(
            f,
            [
                SqeFlags::IO_HARDLINK,
                SqeFlags::IO_HARDLINK,
                SqeFlags::empty()
            ]
        );
    }

    #[test]
    fn refusals() {
        let ops = all();
        let check = |e: ChainEntry<_>| e.check(&ops).unwrap_err();
        assert!(matches!(
            check(Chain::new(LinkTimeout::new(Duration::ZERO)).into_entry()),
            Error::MisplacedLinkTimeout {
                link: 0,
                op: "LinkTimeout"
            }
        ));
        let c = Chain::new(Nop::new())
            .link_timeout(Duration::ZERO)
            .link_timeout(Duration::ZERO);
        let e = c.into_entry().check(&ops).unwrap_err();
        assert!(
            matches!(e, Error::MisplacedLinkTimeout { link: 2, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "link 2 (LinkTimeout) does not follow an op it could guard: a link timeout must \
             come right after the op it guards"
        );
        // An op's own argument check runs for links too.
        let c = Chain::new(Nop::new()).then(Nop::new().inject_result(i32::MIN));
        let e = c.into_entry().check(&ops).unwrap_err();
        assert!(matches!(e, Error::NotAnErrno { res: i32::MIN }), "{e:?}");
        let e = Chain::from_vec(Vec::<Nop>::new())
            .into_entry()
            .check(&ops)
            .unwrap_err();
        assert!(matches!(e, Error::EmptyChain), "{e:?}");
        let e = Chain::from_vec(vec![Nop::new(); 257])
            .into_entry()
            .check(&ops)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::ChainTooLong {
                    links: 257,
                    max: 256
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        assert!(Chain::from_vec(vec![Nop::new(); 256])
            .into_entry()
            .check(&ops)
            .is_ok());
    }

    #[test]
    fn names_the_first_refused_op() {
        let mut supported = OpSet::all();
        let mut allowed = OpSet::empty();
        allowed.insert(Nop::OPCODE);
        let c = Chain::new(Nop::new())
            .then(Read::new(Target::fixed(0), vec![0u8; 1], 0))
            .link_timeout(Duration::ZERO);
        match c.into_entry().check(&OpCheck::new(supported, allowed)) {
            Err(Error::NotAllowed { op: "READ" }) => {}
            other => panic!("{other:?}"),
        }
        supported = OpSet::empty();
        supported.insert(Nop::OPCODE);
        supported.insert(Read::<Vec<u8>>::OPCODE);
        let c = Chain::new(Nop::new())
            .then(Read::new(Target::fixed(0), vec![0u8; 1], 0))
            .link_timeout(Duration::ZERO);
        match c.into_entry().check(&OpCheck::new(supported, OpSet::all())) {
            Err(Error::Unsupported {
                op: "LINK_TIMEOUT",
                name: "LinkTimeout",
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    fn run<L: Links>(c: Chain<L>, results: &[(u32, i32)]) -> L::Output {
        let mut e = c.into_entry();
        let n = results.len();
        for (k, &(sub, res)) in results.iter().enumerate() {
            assert_eq!(e.on_cqe(sub, res, 0), k + 1 == n, "completion {k}");
        }
        e.finish()
    }

    #[test]
    fn finishes_on_the_last_completion_in_any_order() {
        let c = Chain::new(Nop::new()).then(Nop::new()).then(Nop::new());
        let mut e = c.into_entry();
        assert!(!e.on_cqe(2, 0, 0));
        assert!(!e.on_cqe(0, 0, sys::IORING_CQE_F_MORE), "not final");
        assert!(!e.on_cqe(0, 0, 0));
        assert!(e.on_cqe(1, 0, 0));
    }

    #[test]
    fn cancellation_is_reported_as_such() {
        let ecanceled = -libc::ECANCELED;
        // A failed soft link cancels the rest.
        let (a, b, c) = run(
            Chain::new(Nop::new()).then(Nop::new()).then(Nop::new()),
            &[(0, -libc::EIO), (1, ecanceled), (2, ecanceled)],
        );
        assert!(matches!(a, Linked::Ran(Err(_))));
        assert!(b.is_cancelled() && c.is_cancelled());
        // A hard link's failure does not.
        let (a, b, c) = run(
            Chain::new(Nop::new())
                .then_hard(Nop::new())
                .then(Nop::new()),
            &[(0, -libc::EIO), (1, -libc::EBADF), (2, ecanceled)],
        );
        assert!(matches!(a, Linked::Ran(Err(_))));
        assert!(matches!(b, Linked::Ran(Err(_))));
        assert!(c.is_cancelled(), "b failed, soft-linked");
        // A link cancelled while running, after one that succeeded, ran.
        let (a, b, c) = run(
            Chain::new(Nop::new()).then(Nop::new()).then(Nop::new()),
            &[(0, 0), (1, ecanceled), (2, ecanceled)],
        );
        assert!(matches!(a, Linked::Ran(Ok(0))));
        assert!(matches!(b, Linked::Ran(Err(_))));
        assert!(c.is_cancelled());
        // The ambiguous case (see `Linked`): every link failed, one with an error of its own;
        // read as a chain refused at submission.
        let (_, b, _) = run(
            Chain::new(Nop::new())
                .then_hard(Nop::new())
                .then(Nop::new()),
            &[(0, -libc::EIO), (1, ecanceled), (2, ecanceled)],
        );
        assert!(b.is_cancelled());
        // A short read fails its link.
        let (r, n) = run(
            Chain::new(Read::new(Target::fixed(0), vec![0u8; 8], 0)).then(Nop::new()),
            &[(0, 3), (1, ecanceled)],
        );
        assert_eq!(r.ran().unwrap().0.unwrap(), 3);
        assert!(n.is_cancelled());
        // A fired link timeout: the guarded link ran (and failed), the timeout ran, the rest was
        // cancelled. A timeout whose guarded link never started is cancelled with it.
        let (r, t, n, t2) = run(
            Chain::new(Nop::new())
                .link_timeout(Duration::ZERO)
                .then(Nop::new())
                .link_timeout(Duration::ZERO),
            &[
                (1, -libc::ETIME),
                (0, ecanceled),
                (2, ecanceled),
                (3, ecanceled),
            ],
        );
        assert!(matches!(r, Linked::Ran(Err(_))));
        assert!(matches!(
            t,
            Linked::Ran(Ok(crate::ops::LinkTimeoutOutcome::Fired))
        ));
        assert!(n.is_cancelled() && t2.is_cancelled());
        // A disarmed timeout does not break the chain.
        let (r, t, n) = run(
            Chain::new(Nop::new())
                .link_timeout(Duration::ZERO)
                .then(Nop::new()),
            &[(0, 0), (1, ecanceled), (2, 0)],
        );
        assert!(matches!(r, Linked::Ran(Ok(0))));
        assert!(matches!(
            t,
            Linked::Ran(Ok(crate::ops::LinkTimeoutOutcome::Disarmed))
        ));
        assert!(matches!(n, Linked::Ran(Ok(0))));
        // Vec chains.
        let v = run(
            Chain::from_vec(vec![Nop::new(); 3]),
            &[(0, 0), (1, -libc::EBADF), (2, ecanceled)],
        );
        assert_eq!(
            v.iter().map(Linked::is_cancelled).collect::<Vec<_>>(),
            [false, false, true]
        );
    }

    #[test]
    fn a_refused_chain_comes_back_whole() {
        let c = Chain::new(Read::new(Target::fixed(0), vec![1u8, 2], 0)).then(Nop::new());
        let c = Chain::from_entry(c.into_entry());
        let (r, _) = c.into_links();
        assert_eq!(r.into_buf(), [1, 2]);
    }
}
