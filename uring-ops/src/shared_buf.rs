//! [`SharedBuf`]: one buffer owned by several ops at once, for chains that read into a buffer
//! and write the same buffer out.

use crate::buf::{IoBuf, IoBufMut};
use std::cell::UnsafeCell;
use std::fmt;
use std::sync::Arc;

/// A buffer shared by several ops: a reference-counted `B` whose bytes only the kernel touches
/// while more than one handle exists.
///
/// Clone it into each op of a chain (`Read::new(src, buf.clone(), ..)`, then
/// `Write::new(dst, buf.clone(), ..)`): every handle keeps the memory alive, so the kernel can
/// never write into freed memory, even if a handle escapes the chain or an op is leaked. Once
/// the ops have given their handles back and they are dropped, the last handle gives the
/// buffer back with [`SharedBuf::try_into_inner`], or lends its bytes with
/// [`SharedBuf::bytes`] / [`SharedBuf::bytes_mut`].
///
/// # What the ops see
///
/// The address, the length and the registered-buffer index are taken from `B` once, in
/// [`SharedBuf::new`]. The length is `B`'s initialised length at that point
/// ([`IoBuf::bytes_init`]), and it is both the room a read may fill and the data a write sends:
/// a `Vec<u8>`'s spare capacity is not used, so a read never needs to grow a length that other
/// handles share ([`IoBufMut::set_init`] does nothing). To read and write fewer bytes, set the
/// ops' lengths (`Read::len`, `Write::len`).
///
/// Two ops in flight at the same time that write the same `SharedBuf` leave its contents
/// unspecified (whichever write lands last), which is never unsound: no Rust reference to the
/// bytes exists while they are shared.
///
/// # Examples
///
/// ```
/// use uring_ops::SharedBuf;
/// let mut a = SharedBuf::new(vec![1u8, 2, 3]);
/// let b = a.clone();
/// assert!(a.bytes().is_none(), "shared: the kernel may be using the bytes");
/// drop(b);
/// a.bytes_mut().unwrap()[0] = 9;
/// assert_eq!(a.try_into_inner().unwrap(), [9, 2, 3]);
/// ```
pub struct SharedBuf<B> {
    inner: Arc<Inner<B>>,
}

struct Inner<B> {
    /// Touched through `&mut` only while the `Arc` is unique; never moved while shared.
    buf: UnsafeCell<B>,
    /// `buf`'s memory, taken once after `buf` reached its final place inside the `Arc`.
    ptr: *mut u8,
    len: usize,
    fixed: Option<u16>,
}

// SAFETY: a handle gives no access to `B` except through `&mut self` on the unique handle, so
// moving a handle to another thread moves at most the right to use (and drop) `B` there: `B:
// Send` suffices. The raw pointer is only handed to the kernel.
unsafe impl<B: Send> Send for SharedBuf<B> {}
// SAFETY: through `&SharedBuf` one can only clone the `Arc` and read the address and length
// captured at creation; no `&B` or byte access is reachable without `&mut`.
unsafe impl<B: Send> Sync for SharedBuf<B> {}

impl<B: IoBufMut> SharedBuf<B> {
    /// Shares `buf`: its address, initialised length and registered index are taken now and
    /// stay fixed (see the type's docs).
    pub fn new(buf: B) -> Self {
        let mut inner = Arc::new(Inner {
            buf: UnsafeCell::new(buf),
            ptr: std::ptr::null_mut(),
            len: 0,
            fixed: None,
        });
        let i = Arc::get_mut(&mut inner).expect("a new Arc is unique");
        let b = i.buf.get_mut();
        i.len = b.bytes_init();
        i.fixed = b.fixed_index();
        i.ptr = b.stable_mut_ptr();
        SharedBuf { inner }
    }
}

impl<B> SharedBuf<B> {
    /// How many handles share the buffer (including this one).
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Whether this is the only handle: then no op can be using the buffer.
    ///
    /// Takes `&mut self` so that no clone can appear between the check and what follows.
    pub fn is_unique(&mut self) -> bool {
        Arc::get_mut(&mut self.inner).is_some()
    }

    /// The buffer, if this is the only handle. Only shared access is given: a `&mut B` could
    /// move the memory (a `Vec` that grows) that the captured address names.
    pub fn get(&mut self) -> Option<&B> {
        Arc::get_mut(&mut self.inner).map(|i| &*i.buf.get_mut())
    }

    /// The buffer back, if this is the only handle; otherwise the handle itself.
    ///
    /// # Errors
    ///
    /// `Err(self)` while other handles exist (for example inside ops still in flight, or
    /// outputs not yet dropped).
    pub fn try_into_inner(self) -> Result<B, Self> {
        match Arc::try_unwrap(self.inner) {
            Ok(i) => Ok(i.buf.into_inner()),
            Err(inner) => Err(SharedBuf { inner }),
        }
    }
}

impl<B: IoBuf> SharedBuf<B> {
    /// The shared bytes, if this is the only handle.
    pub fn bytes(&mut self) -> Option<&[u8]> {
        let i = Arc::get_mut(&mut self.inner)?;
        let len = i.len;
        let b = i.buf.get_mut();
        // SAFETY: the handle is unique (no op holds the buffer, so the kernel does not use it),
        // and `B`'s memory is valid for reads of its initialised length, `len`, fixed since
        // creation because `B` was never reachable through `&mut` since then.
        Some(unsafe { std::slice::from_raw_parts(b.stable_ptr(), len) })
    }
}

impl<B: IoBufMut> SharedBuf<B> {
    /// The shared bytes, writable, if this is the only handle.
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        let i = Arc::get_mut(&mut self.inner)?;
        let len = i.len;
        let b = i.buf.get_mut();
        // SAFETY: as in `bytes`, and the borrow of the unique handle makes this the only access;
        // `stable_mut_ptr` is valid for writes of `bytes_total >= len` bytes.
        Some(unsafe { std::slice::from_raw_parts_mut(b.stable_mut_ptr(), len) })
    }
}

impl<B> Clone for SharedBuf<B> {
    /// Another handle to the same buffer (a reference count increment; no copy).
    fn clone(&self) -> Self {
        SharedBuf {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B> fmt::Debug for SharedBuf<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBuf")
            .field("ptr", &self.inner.ptr)
            .field("len", &self.inner.len)
            .field("handles", &self.handles())
            .finish_non_exhaustive()
    }
}

// SAFETY: the address was taken from `B` after it reached its place inside the `Arc`, where it
// stays until the last handle is dropped or unwrapped; `B` is never reachable through `&mut`
// while shared (and `bytes_mut`/`get` on a unique handle cannot move its memory), so the
// address stays valid for `len` bytes (`B`'s initialised length) as long as any handle lives.
unsafe impl<B: IoBufMut> IoBuf for SharedBuf<B> {
    const FIXED: bool = B::FIXED;
    fn stable_ptr(&self) -> *const u8 {
        self.inner.ptr
    }
    fn bytes_init(&self) -> usize {
        self.inner.len
    }
    fn bytes_total(&self) -> usize {
        self.inner.len
    }
    fn fixed_index(&self) -> Option<u16> {
        self.inner.fixed
    }
}

// SAFETY: as above; the `len` bytes were initialised when shared, so they are valid for writes
// and every byte the kernel writes stays initialised.
unsafe impl<B: IoBufMut> IoBufMut for SharedBuf<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.inner.ptr
    }
    /// Nothing to record: all `len` bytes were initialised from the start.
    unsafe fn set_init(&mut self, _n: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn bounds() {
        assert_send_sync::<SharedBuf<Vec<u8>>>();
        assert_send_sync::<SharedBuf<Box<[u8]>>>();
    }

    #[test]
    fn captures_the_initialised_part() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"abcd");
        let ptr = v.as_ptr();
        let mut s = SharedBuf::new(v);
        assert_eq!(s.stable_ptr(), ptr);
        assert_eq!((s.bytes_init(), s.bytes_total()), (4, 4));
        assert_eq!(s.stable_mut_ptr().cast_const(), ptr);
        assert_eq!(s.fixed_index(), None);
        assert_eq!(s.bytes().unwrap(), b"abcd");
    }

    #[test]
    fn access_only_when_unique() {
        let mut a = SharedBuf::new(vec![0u8; 8]);
        let mut b = a.clone();
        assert_eq!((a.handles(), b.handles()), (2, 2));
        assert!(!a.is_unique());
        assert!(a.bytes().is_none() && a.bytes_mut().is_none() && a.get().is_none());
        let a = a.try_into_inner().unwrap_err();
        drop(a);
        assert!(b.is_unique());
        b.bytes_mut().unwrap().copy_from_slice(b"12345678");
        assert_eq!(b.get().unwrap().len(), 8);
        assert_eq!(b.try_into_inner().unwrap(), b"12345678");
    }

    #[test]
    fn handles_on_other_threads() {
        let a = SharedBuf::new(vec![7u8; 4]);
        let b = a.clone();
        let t = std::thread::spawn(move || b.handles());
        assert!(t.join().unwrap() >= 1);
        assert_eq!(a.try_into_inner().unwrap(), [7; 4]);
    }
}
