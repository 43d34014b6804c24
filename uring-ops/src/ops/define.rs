//! `op!`: the one place an op is defined.
//!
//! ```text
//! op! {
//!     /// Docs.
//!     pub struct Name<B: Bound> {          // at most one type parameter (`= Default` allowed)
//!         /// Docs of the constructor.
//!         pub fn new { file: file(), buf: buf(B), offset: plain(u64) }
//!         set { /// Docs of the setter.
//!               rw_flags: i32 = 0 }         // optional, with a setter named after it
//!         state { len: u32 = u32::MAX }    // derived or set by hand-written methods
//!     }
//!     opcode = sys::IORING_OP_READ;        // optional `name = "...";` (default: the type's)
//!     prepare(op, sqe) { sqe.set_target(&op.file).set_buf_mut(&mut op.buf, op.len); }
//!     complete(op, res, flags) -> Output { ... }
//!     fails_link(op, res) { ... }          // optional: default `res < 0`
//!     check(op) { ... }                    // optional: argument checks at push
//!     discard(op, res, flags) { ... }      // optional: disposing of an unredeemed result
//! }
//! ```
//!
//! Required fields become the constructor's parameters, in order, each of a kind
//! ([`super::kinds`]): `file()` takes `impl IntoTarget`, `buf(B)` a buffer, `bufs(B)` /
//! `bufs_mut(B)` a `Vec<B>` (kept with its iovec array), `timespec()` a `Duration` (kept inline,
//! so the op is prepared in place), `path()` a [`crate::CPath`], `boxed(T)` a `T` (boxed),
//! `array(T)` a `Vec<T>`, `futex()` an `Arc<AtomicU32>`, `futexv()`, `fds()`, `closing()`
//! their kinds' types, `sockaddr()` an `impl Into<SockAddr>` (kept inline, so the op is
//! prepared in place), `group()` a provided-buffer ring or group (`impl IntoGroup`),
//! `provision()` the group whose free buffers to hand to the kernel, `msg(B)` / `msg_mut(B)` a
//! `Vec<B>` (kept with its iovec array in a heap `msghdr`), `plain(T)` a `T`. The kinds `dest`
//! and `peer` are optional: `state` fields set by hand-written methods. `prepare` writes every
//! address through
//! [`super::kinds::SqeKinds`]; the ring writes the opcode after it, and applies
//! [`crate::SqeOptions`] through [`crate::WithOptions`].
//!
//! The `unsafe impl Op` is written here once. Its argument: the SQE names nothing but what the
//! kinds keep valid (the kinds table), with lengths bounded by the kind's writer; a
//! `timespec` field makes `SQE_POINTS_INTO_SELF` true, so its address is taken at the op's
//! final place; every other field is a number. What remains per op, and is checked by each op's
//! test against the kernel, is that its `prepare` puts each kind in the SQE field its opcode
//! reads with that meaning.
//!
//! An op whose completion leaves something to dispose of (a descriptor the kernel created for
//! it, or one it closed) has a `discard` block: the ring runs it instead of a plain drop when
//! the op finishes with nobody to redeem it ([`crate::Op::discard`]).

macro_rules! op {
    (
        $(#[$meta:meta])*
        pub struct $name:ident $(<$g:ident : $bound:path $(= $gdef:ty)?>)? {
            $(#[$ndoc:meta])*
            $nvis:vis fn $ctor:ident {
                $($field:ident : $kind:ident ( $($karg:ty)? )),* $(,)?
            }
            $(set {
                $($(#[$odoc:meta])* $opt:ident : $oty:ty = $odef:expr),* $(,)?
            })?
            $(state {
                $($st:ident : $sty:ty = $sdef:expr),* $(,)?
            })?
        }
        opcode = $opcode:expr;
        $(name = $opname:expr;)?
        prepare($p:ident, $sqe:ident) $prep:block
        complete($c:ident, $res:ident, $flags:ident) -> $out:ty $comp:block
        $(fails_link($fl:ident, $flres:ident) $flbody:block)?
        $(check($ck:ident) $ckbody:block)?
        $(discard($d:ident, $dres:ident, $dflags:ident) $dbody:block)?
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name $(<$g $(= $gdef)?>)? {
            $($field: <$crate::ops::kinds::markers::$kind<$($karg)?> as $crate::ops::kinds::Kind>::Ty,)*
            $($($opt: $oty,)*)?
            $($($st: $sty,)*)?
        }

        impl $(<$g: $bound>)? $name $(<$g>)? {
            $(#[$ndoc])*
            #[allow(clippy::new_without_default)]
            $nvis fn $ctor($($field: $crate::ops::define::op!(@pty $kind $($karg)?)),*) -> Self {
                $(let $field = $crate::ops::define::op!(@init $kind $field);)*
                $($(let $opt: $oty = $odef;)*)?
                $($(let $st: $sty = $sdef;)*)?
                $name {
                    $($field,)*
                    $($($opt,)*)?
                    $($($st,)*)?
                }
            }

            $($(
                $(#[$odoc])*
                pub fn $opt(mut self, $opt: $oty) -> Self {
                    self.$opt = $opt;
                    self
                }
            )*)?
        }

        // SAFETY: the one argument for every op defined with `op!` (module `define`): the SQE
        // names only what the field kinds keep valid while the op lives (files kept open,
        // owned heap buffers within the lengths their writers bound, inline timespecs at the
        // op's final address, which `SQE_POINTS_INTO_SELF` asks for), and plain numbers.
        unsafe impl $(<$g: $bound>)? $crate::Op for $name $(<$g>)? {
            const OPCODE: u8 = $opcode as u8;
            const NAME: &'static str = $crate::ops::define::op!(@name $name $($opname)?);
            const SQE_POINTS_INTO_SELF: bool =
                false $(|| <$crate::ops::kinds::markers::$kind<$($karg)?> as $crate::ops::kinds::Kind>::PINS)*;
            type Output = $out;

            $(
                #[inline]
                fn check(&self) -> $crate::Result<()> {
                    let $ck = self;
                    $ckbody
                }
            )?

            #[inline]
            fn prepare(&mut self, sqe: &mut uring_core::Sqe) {
                #[allow(unused_imports)]
                use $crate::ops::kinds::SqeKinds as _;
                let $p = self;
                let $sqe = sqe;
                $prep
            }

            #[inline]
            fn complete(self, $res: i32, $flags: u32) -> $out {
                let $c = self;
                $comp
            }

            $(
                fn fails_link(&self, $flres: i32) -> bool {
                    let $fl = self;
                    $flbody
                }
            )?

            $(
                const DISCARDS: bool = true;

                fn discard(self, $dres: i32, $dflags: u32) {
                    let $d = self;
                    $dbody
                }
            )?
        }
    };

    // Constructor parameter types of the kinds.
    (@pty file) => { impl $crate::IntoTarget };
    (@pty buf $t:ty) => { $t };
    (@pty bufs $t:ty) => { Vec<$t> };
    (@pty bufs_mut $t:ty) => { Vec<$t> };
    (@pty timespec) => { std::time::Duration };
    (@pty plain $t:ty) => { $t };
    (@pty sockaddr) => { impl Into<$crate::SockAddr> };
    (@pty group) => { impl $crate::IntoGroup };
    (@pty provision) => { impl $crate::IntoGroup };
    (@pty msg $t:ty) => { Vec<$t> };
    (@pty msg_mut $t:ty) => { Vec<$t> };
    (@pty path) => { $crate::CPath };
    (@pty boxed $t:ty) => { $t };
    (@pty array $t:ty) => { Vec<$t> };
    (@pty futex) => { std::sync::Arc<std::sync::atomic::AtomicU32> };
    (@pty futexv) => { $crate::ops::kinds::FutexWaits };
    (@pty fds) => { $crate::ops::kinds::FdList };
    (@pty closing) => { $crate::ops::kinds::Closing };
    (@pty fixed_vecs) => { $crate::ops::kinds::FixedVecs };

    // From a constructor parameter to the field.
    (@init file $v:ident) => { $crate::IntoTarget::into_target($v) };
    (@init buf $v:ident) => { $v };
    (@init bufs $v:ident) => { $crate::ops::kinds::IoVecs::readable($v) };
    (@init bufs_mut $v:ident) => { $crate::ops::kinds::IoVecs::writable($v) };
    (@init timespec $v:ident) => { $crate::ops::kinds::Timespec::new($v) };
    (@init plain $v:ident) => { $v };
    (@init sockaddr $v:ident) => { Into::<$crate::SockAddr>::into($v) };
    (@init group $v:ident) => { $crate::IntoGroup::into_group($v) };
    (@init provision $v:ident) => {
        $crate::ops::kinds::Provision::reserve($crate::IntoGroup::into_group($v), u16::MAX)
    };
    (@init msg $v:ident) => { $crate::ops::kinds::MsgHdr::readable($v) };
    (@init msg_mut $v:ident) => { $crate::ops::kinds::MsgHdr::writable($v) };
    (@init path $v:ident) => { $v };
    (@init boxed $v:ident) => { Box::new($v) };
    (@init array $v:ident) => { $v };
    (@init futex $v:ident) => { $v };
    (@init futexv $v:ident) => { $v };
    (@init fds $v:ident) => { $v };
    (@init closing $v:ident) => { $v };
    (@init fixed_vecs $v:ident) => { $v };

    (@name $name:ident) => { stringify!($name) };
    (@name $name:ident $opname:expr) => { $opname };
}

pub(crate) use op;
