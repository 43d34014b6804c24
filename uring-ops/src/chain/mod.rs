//! [`Chain`]: typed ops linked with `IOSQE_IO_LINK` / `IOSQE_IO_HARDLINK`, placed into the SQ
//! all at once, completing into one typed result per link.

mod entry;
mod links;
#[cfg(test)]
mod tests;

pub use entry::ChainEntry;
pub use links::{LinkMeta, Links};

use crate::op::{sealed, Op};
use std::fmt;
use uring_core::sys;

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
///   or none of them ([`Error::QueueFull`](crate::Error::QueueFull), the chain handed back), after checking every op
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
    /// push with [`Error::ChainTooLong`](crate::Error::ChainTooLong), none with [`Error::EmptyChain`](crate::Error::EmptyChain)). It completes into
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

impl<L: Links> sealed::Sealed for Chain<L> {}
