//! The links of a chain: tuples of ops and `Vec`s of one op type, behind one trait.

use super::Linked;
use crate::error::Result;
use crate::op::{check_op, prepare_op, sealed, Op, OpCheck};
use uring_core::Sqe;

/// Per-link bookkeeping: how it is linked, and its completion once posted.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkMeta {
    /// `IOSQE_IO_HARDLINK` instead of `IOSQE_IO_LINK` to the next link.
    pub(super) hard: bool,
    /// The final completion arrived.
    pub(super) done: bool,
    /// Never started (set when the chain finishes).
    pub(super) cancelled: bool,
    pub(super) res: i32,
    pub(super) flags: u32,
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
