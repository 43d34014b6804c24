//! Extended attributes: `GETXATTR`, `SETXATTR`, `FGETXATTR`, `FSETXATTR`.
//!
//! Names (`user.comment`, `trusted.x`, ...) and paths are owned C strings ([`crate::CPath`]);
//! values are owned buffers. The kernel takes at most 64 KiB of value (`XATTR_SIZE_MAX`).

use super::define::op;
use super::kinds::room;
use crate::buf::{IoBuf, IoBufMut};
use crate::error::Result;
use crate::fd::IntoTarget;
use crate::op::res_to_io;
use crate::path::IntoCPath;
use std::io;
use uring_core::sys;

/// The value length of a get: the kernel writes at most the buffer's room and reports the
/// attribute's size; with no room it writes nothing and only reports the size.
fn got<B: IoBufMut>(buf: &mut B, res: i32) -> io::Result<usize> {
    let n = res_to_io(res)? as usize;
    if room(buf, u32::MAX) > 0 {
        // SAFETY: with room, the kernel wrote the `n` value bytes (it fails with `ERANGE`
        // when they do not fit).
        unsafe { buf.set_init(n) };
    }
    Ok(n)
}

bitflags::bitflags! {
    /// How [`SetXattr`] and [`FSetXattr`] treat an existing attribute (`setxattr(2)`); empty:
    /// create or replace.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct XattrFlags: u32 {
        /// Fail with `EEXIST` if the attribute exists.
        const CREATE = libc::XATTR_CREATE as u32;
        /// Fail with `ENODATA` if it does not.
        const REPLACE = libc::XATTR_REPLACE as u32;
    }
}

op! {
    /// Reads an extended attribute of a file named by path (`IORING_OP_GETXATTR`,
    /// Linux 5.19): the `getxattr(2)` of io_uring, following symbolic links.
    ///
    /// Owns the path, the name and the buffer until completion. Returns the value's length and
    /// the buffer, holding the value (with an empty buffer, only the length: the room a read
    /// needs); `ENODATA` when the file has no such attribute, `ERANGE` when it does not fit.
    pub struct GetXattr<B: IoBufMut> {
        fn with { path: path(), name: path(), buf: buf(B) }
    }
    opcode = sys::IORING_OP_GETXATTR;
    prepare(op, sqe) {
        sqe.set_path(&op.name)
            .set_buf_mut2(&mut op.buf, u32::MAX)
            .set_path3(&op.path);
    }
    complete(op, res, _flags) -> (io::Result<usize>, B) {
        let mut op = op;
        (got(&mut op.buf, res), op.buf)
    }
}

impl<B: IoBufMut> GetXattr<B> {
    /// Reads attribute `name` of the file at `path` into `buf` (its whole room).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path or name has a NUL byte.
    pub fn new(path: impl IntoCPath, name: impl IntoCPath, buf: B) -> Result<Self> {
        Ok(Self::with(path.into_cpath()?, name.into_cpath()?, buf))
    }
}

op! {
    /// Sets an extended attribute of a file named by path (`IORING_OP_SETXATTR`,
    /// Linux 5.19): the `setxattr(2)` of io_uring, following symbolic links.
    ///
    /// Owns the path, the name and the value until completion. Returns `Ok(())` and the value.
    pub struct SetXattr<B: IoBuf> {
        fn with { path: path(), name: path(), value: buf(B) }
        set {
            /// Create only, or replace only.
            flags: XattrFlags = XattrFlags::empty(),
        }
    }
    opcode = sys::IORING_OP_SETXATTR;
    prepare(op, sqe) {
        sqe.set_path(&op.name)
            .set_buf2(&op.value, u32::MAX)
            .set_path3(&op.path)
            .set_op_flags(op.flags.bits());
    }
    complete(op, res, _flags) -> (io::Result<()>, B) {
        (res_to_io(res).map(drop), op.value)
    }
}

impl<B: IoBuf> SetXattr<B> {
    /// Sets attribute `name` of the file at `path` to `value` (its data).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the path or name has a NUL byte.
    pub fn new(path: impl IntoCPath, name: impl IntoCPath, value: B) -> Result<Self> {
        Ok(Self::with(path.into_cpath()?, name.into_cpath()?, value))
    }
}

op! {
    /// Reads an extended attribute of an open file (`IORING_OP_FGETXATTR`, Linux 5.19): the
    /// `fgetxattr(2)` of io_uring.
    ///
    /// Owns the name, the buffer and a share of the file until completion. Returns as
    /// [`GetXattr`] does.
    pub struct FGetXattr<B: IoBufMut> {
        fn with { file: file(), name: path(), buf: buf(B) }
    }
    opcode = sys::IORING_OP_FGETXATTR;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_path(&op.name)
            .set_buf_mut2(&mut op.buf, u32::MAX);
    }
    complete(op, res, _flags) -> (io::Result<usize>, B) {
        let mut op = op;
        (got(&mut op.buf, res), op.buf)
    }
    check(op) { op.file.require_descriptor("FGetXattr", "the file") }
}

impl<B: IoBufMut> FGetXattr<B> {
    /// Reads attribute `name` of `file` into `buf` (its whole room).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the name has a NUL byte.
    pub fn new(file: impl IntoTarget, name: impl IntoCPath, buf: B) -> Result<Self> {
        Ok(Self::with(file, name.into_cpath()?, buf))
    }
}

op! {
    /// Sets an extended attribute of an open file (`IORING_OP_FSETXATTR`, Linux 5.19): the
    /// `fsetxattr(2)` of io_uring.
    ///
    /// Owns the name, the value and a share of the file until completion. Returns `Ok(())`
    /// and the value.
    pub struct FSetXattr<B: IoBuf> {
        fn with { file: file(), name: path(), value: buf(B) }
        set {
            /// Create only, or replace only.
            flags: XattrFlags = XattrFlags::empty(),
        }
    }
    opcode = sys::IORING_OP_FSETXATTR;
    prepare(op, sqe) {
        sqe.set_target(&op.file)
            .set_path(&op.name)
            .set_buf2(&op.value, u32::MAX)
            .set_op_flags(op.flags.bits());
    }
    complete(op, res, _flags) -> (io::Result<()>, B) {
        (res_to_io(res).map(drop), op.value)
    }
    check(op) { op.file.require_descriptor("FSetXattr", "the file") }
}

impl<B: IoBuf> FSetXattr<B> {
    /// Sets attribute `name` of `file` to `value` (its data).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InteriorNul`] when the name has a NUL byte.
    pub fn new(file: impl IntoTarget, name: impl IntoCPath, value: B) -> Result<Self> {
        Ok(Self::with(file, name.into_cpath()?, value))
    }
}
