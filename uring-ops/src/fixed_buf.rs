//! Registered (fixed) buffers: a pool of equal buffers registered with a ring
//! (`IORING_REGISTER_BUFFERS`), for [`crate::ops::ReadFixed`] and [`crate::ops::WriteFixed`].
//! Why the memory outlives everything that can reach it: see [`FixedBufs`].

use crate::as_ring::{dup_ring_fd, AsRing};
use crate::buf::{IoBuf, IoBufMut};
use crate::error::{Error, Result};
use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};
use uring_core::sys;

/// Most buffers one registration takes (`IORING_MAX_REG_BUFFERS`).
pub const MAX_FIXED_BUFS: usize = 1 << 14;
/// Largest registered buffer the kernel accepts (1 GiB).
pub const MAX_FIXED_BUF_SIZE: usize = 1 << 30;
/// Alignment of the pool's memory (a page).
const ALIGN: usize = 4096;

/// The registered memory, shared by the pool handle and every buffer handed out.
struct Pool {
    /// Start of `count * size` bytes, zeroed at allocation, registered as `count` buffers.
    ptr: NonNull<u8>,
    layout: Layout,
    size: usize,
    count: usize,
    /// Indices of the buffers not handed out.
    free: Mutex<Vec<u16>>,
    /// The rings whose buffer table holds the pool: the one it was registered with, first,
    /// and those it was cloned into ([`FixedBufs::clone_into`]), each as its `Uring` id and a
    /// duplicate of its fd, which keeps the kernel's ring (and the table) alive and lets the
    /// pool unregister from every one of them before it frees the memory.
    rings: Mutex<Vec<(u64, OwnedFd)>>,
    /// The process's [`uring_core::fork_generation`] when the pool was registered: a forked
    /// child's copy of the pool must not unregister the parent's buffers.
    generation: u64,
}

// SAFETY: the memory is a plain heap block; each buffer's bytes are reached only through the
// one `FixedBuf` holding that index (the free list hands each index out once), and the free
// list is behind a mutex.
unsafe impl Send for Pool {}
// SAFETY: as above; `&Pool` gives access to nothing but the mutex-protected free list.
unsafe impl Sync for Pool {}

impl Drop for Pool {
    /// Unregisters, then frees. Runs when no [`FixedBuf`] and no [`FixedBufs`] is left, so no
    /// op owns a buffer and no SQE names one.
    fn drop(&mut self) {
        if uring_core::fork_generation() != self.generation {
            // A forked child's copy: the registration is the parent's (the kernel's ring is
            // shared), so leave it, and this copy of the memory with it.
            return;
        }
        let rings = self.rings.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut all = true;
        for (_, ring) in rings.iter() {
            // SAFETY: IORING_UNREGISTER_BUFFERS takes no argument; `ring` is an io_uring fd.
            let r = unsafe {
                sys::io_uring_register(
                    ring.as_fd(),
                    sys::IORING_UNREGISTER_BUFFERS,
                    std::ptr::null_mut(),
                    0,
                )
            };
            all &= r.is_ok();
        }
        if all {
            // SAFETY: allocated in `FixedBufs::register` with this layout; unregistered just
            // now from every ring that held it, and nothing else refers to it (this is the
            // last reference to the pool).
            unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
        }
        // Otherwise the kernel may still hold the pages: leak the memory rather than free it
        // (see "Implementation notes" on `FixedBufs`).
    }
}

impl Pool {
    fn buf_ptr(&self, index: u16) -> *mut u8 {
        // SAFETY: `index < count`, so the offset stays inside the allocation.
        unsafe { self.ptr.as_ptr().add(usize::from(index) * self.size) }
    }

    fn free_list(&self) -> std::sync::MutexGuard<'_, Vec<u16>> {
        // A panic while holding the lock cannot leave the list inconsistent (push/pop only).
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A pool of `count` buffers of `size` bytes each, registered with a ring as its fixed buffers
/// (Linux 5.1), handing out [`FixedBuf`]s for [`crate::ops::ReadFixed`] and
/// [`crate::ops::WriteFixed`].
///
/// Cloning gives another handle to the same pool. The memory stays allocated, and registered,
/// until the last handle and the last buffer are dropped; then it is unregistered and freed.
///
/// # Implementation notes
///
/// Registering pins the pages: the kernel keeps using them, by physical page, until the
/// buffers are unregistered. Freeing registered memory back to the allocator would let the
/// kernel write into whatever the allocator puts there next. So the memory belongs to one
/// shared, reference-counted pool, held by every `FixedBufs` handle and every [`FixedBuf`]
/// handed out; when the last of them goes, the pool unregisters the buffers and only then
/// frees the memory. If unregistering fails, the memory is leaked, never freed (this happens
/// when the ring is `SINGLE_ISSUER` and the last reference is dropped on another thread: the
/// kernel refuses registration calls from other tasks).
///
/// The pool keeps its own duplicate of the ring's file descriptor (of each ring's, once cloned
/// into others with [`FixedBufs::clone_into`]), so it can unregister whatever the order of
/// drops:
///
/// - **pool dropped before the ring**: with no buffer out, the pool unregisters at once; the
///   ring carries on without registered buffers (and may register a new pool).
/// - **ring dropped before the pool**: the duplicate fd keeps the kernel's ring object (and the
///   registration) alive until the pool goes, which then unregisters and frees.
/// - **a [`FixedBuf`] inside an in-flight op**: the op owns the buffer, the buffer keeps the pool
///   alive; a dropped ticket leaves the op in the ring, and a ring dropped with the op still in
///   flight after its bounded drain leaks the op, hence the buffer, hence the pool's memory.
///
/// A ring has one registered-buffer table: registering a second pool on the same ring fails
/// with `EBUSY` until the first is gone. The pool unregisters "the ring's table", not "this
/// pool's": if the table is unregistered behind the pool's back (`ring().register()
/// .unregister_buffers()`) and another pool registered, dropping the first pool removes the
/// second's table, whose fixed ops then fail with `EFAULT`. Memory safety is unaffected (the
/// kernel checks every fixed op's range against its current table, and a pool's memory is
/// freed only after its unregistration succeeded); do not unregister a pool's buffers by hand.
///
/// # Examples
///
/// ```
/// use uring_ops::{ops::WriteFixed, FixedBufs, Uring};
/// let mut ring = Uring::new(8)?;
/// let pool = FixedBufs::register(&ring, 2, 4096)?;
/// let mut buf = pool.get().expect("a free buffer");
/// buf.extend_from_slice(b"hello");
/// let f = std::fs::File::create(std::env::temp_dir().join("fixed-doc"))?;
/// let t = ring.push(WriteFixed::new(f, buf, 0))?;
/// let (n, buf) = ring.wait(t)?;
/// assert_eq!(n?, 5);
/// drop(buf); // back to the pool
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct FixedBufs {
    pool: Arc<Pool>,
}

impl fmt::Debug for FixedBufs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBufs")
            .field("count", &self.pool.count)
            .field("size", &self.pool.size)
            .field("available", &self.available())
            .finish()
    }
}

impl FixedBufs {
    /// Allocates `count` zeroed buffers of `size` bytes (one page-aligned block) and registers
    /// them with `ring` (a [`crate::Uring`] or a [`crate::Context`]) as buffers `0..count`.
    ///
    /// # Errors
    ///
    /// [`Error::FixedBufShape`] for a zero or too large `count` (at most
    /// [`MAX_FIXED_BUFS`]) or `size` (at most [`MAX_FIXED_BUF_SIZE`]);
    /// [`Error::OutOfMemory`] when the allocator refuses the `count * size` bytes (`ENOMEM`);
    /// [`Error::Core`] when the kernel refuses (`EBUSY` if the ring already has registered
    /// buffers, `ENOMEM` past the locked-memory limit, `RLIMIT_MEMLOCK`), or with
    /// [`uring_core::Error::ForkedChild`] for a ring inherited through `fork`.
    pub fn register(ring: &impl AsRing, count: usize, size: usize) -> Result<Self> {
        if ring.kernel().is_inherited() {
            return Err(uring_core::Error::ForkedChild.into());
        }
        let shape = |why| Error::FixedBufShape { count, size, why };
        if count == 0 || count > MAX_FIXED_BUFS {
            return Err(shape("the count must be in 1..=16384 (MAX_FIXED_BUFS)"));
        }
        if size == 0 || size > MAX_FIXED_BUF_SIZE {
            return Err(shape("the size must be in 1..=1 GiB (MAX_FIXED_BUF_SIZE)"));
        }
        let layout = count
            .checked_mul(size)
            .and_then(|total| Layout::from_size_align(total, ALIGN).ok())
            .ok_or_else(|| shape("the pool's size overflows"))?;
        let dup = dup_ring_fd(ring)?;
        // SAFETY: the layout's size is at least 1 (count and size are).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        // A refusal is the caller's to handle (a pool sized from input, say), not an abort.
        let ptr = NonNull::new(ptr).ok_or(Error::OutOfMemory {
            bytes: layout.size(),
        })?;
        let iovecs: Vec<libc::iovec> = (0..count)
            .map(|i| libc::iovec {
                // SAFETY: `i < count`: the offset stays inside the allocation.
                iov_base: unsafe { ptr.as_ptr().add(i * size) }.cast(),
                iov_len: size,
            })
            .collect();
        // SAFETY: `iovecs` names `count` buffers inside our live allocation, which stays
        // allocated until it is unregistered (by `Pool::drop`) or, if unregistering fails,
        // forever; Rust code reaches a buffer only through the one `FixedBuf` handed out for it.
        let r = unsafe { ring.kernel().register().register_buffers(&iovecs) };
        if let Err(e) = r {
            // SAFETY: just allocated with this layout; the kernel refused it, so nothing holds it.
            unsafe { alloc::dealloc(ptr.as_ptr(), layout) };
            return Err(e.into());
        }
        // Hand out low indices first.
        let free = (0..count as u16).rev().collect();
        Ok(FixedBufs {
            pool: Arc::new(Pool {
                ptr,
                layout,
                size,
                count,
                free: Mutex::new(free),
                rings: Mutex::new(vec![(ring.ring_id(), dup)]),
                // The ring's own generation: it is not inherited (checked above).
                generation: uring_core::fork_generation(),
            }),
        })
    }

    /// Shares the pool's buffers with `ring` (`IORING_REGISTER_CLONE_BUFFERS`, Linux 6.12):
    /// its buffer table becomes a copy of the table the pool registered, so that a
    /// [`FixedBuf`] of the pool serves fixed ops on `ring` too. The pool then unregisters from
    /// `ring` as well before it frees its memory, and keeps a duplicate of its fd until then.
    ///
    /// A [`FixedBuf`] is valid on the ring the pool was registered with and on each ring it
    /// was cloned into, and on no other: there the kernel fails its fixed ops with `EFAULT`
    /// (the range is in no buffer of that ring's table).
    ///
    /// # Errors
    ///
    /// [`Error::Core`]: with [`uring_core::Error::ForkedChild`] in a forked child; from the
    /// kernel, `EBUSY` when `ring` has registered buffers already (this pool's or another's:
    /// a ring has one table), `EEXIST` when either ring is `SINGLE_ISSUER` and owned by
    /// another thread, `ENXIO` when the pool's table was unregistered behind its back,
    /// `EINVAL` before Linux 6.12.
    pub fn clone_into(&self, ring: &impl AsRing) -> Result<()> {
        if ring.kernel().is_inherited() {
            return Err(uring_core::Error::ForkedChild.into());
        }
        let dup = dup_ring_fd(ring)?;
        let mut rings = self
            .pool
            .rings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let source = uring_core::CloneBuffers::from_ring(rings[0].1.as_fd());
        // SAFETY: the cloned buffers are the pool's memory, which stays allocated until it is
        // unregistered from every ring recorded here (`Pool::drop`), `ring` now included, or,
        // if unregistering fails, forever; Rust code reaches a buffer only through its one
        // `FixedBuf`.
        unsafe { ring.kernel().register().clone_buffers(source) }?;
        rings.push((ring.ring_id(), dup));
        Ok(())
    }

    /// Whether the pool's buffers serve fixed ops on `ring`: it was registered with `ring` or
    /// cloned into it ([`FixedBufs::clone_into`]).
    pub fn is_registered_with(&self, ring: &impl AsRing) -> bool {
        let rings = self
            .pool
            .rings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        rings.iter().any(|&(id, _)| id == ring.ring_id())
    }

    /// A free buffer (empty: length 0, capacity [`FixedBufs::buf_size`]), or `None` if all are
    /// out. It returns to the pool when dropped.
    pub fn get(&self) -> Option<FixedBuf> {
        let index = self.pool.free_list().pop()?;
        Some(FixedBuf {
            pool: Arc::clone(&self.pool),
            index,
            len: 0,
        })
    }

    /// How many buffers the pool registered.
    pub fn count(&self) -> usize {
        self.pool.count
    }

    /// The size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.pool.size
    }

    /// How many buffers are free now.
    pub fn available(&self) -> usize {
        self.pool.free_list().len()
    }
}

/// One registered buffer of a [`FixedBufs`] pool: owned access to its bytes, and its index
/// ([`IoBuf::fixed_index`]) for the fixed read and write ops.
///
/// Like a `Vec<u8>` with a fixed capacity: it dereferences to its first [`FixedBuf::len`] bytes.
/// All its bytes are always initialised (zeroed when the pool was made). Dropping it returns it
/// to the pool; it keeps the pool's memory allocated and registered while it lives.
pub struct FixedBuf {
    pool: Arc<Pool>,
    index: u16,
    /// Bytes holding data: in `0..=pool.size`.
    len: usize,
}

impl fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuf")
            .field("index", &self.index)
            .field("len", &self.len)
            .field("capacity", &self.pool.size)
            .finish()
    }
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        self.pool.free_list().push(self.index);
    }
}

impl FixedBuf {
    /// The registered buffer index.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Bytes holding data.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte holds data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.pool.size
    }

    /// Sets the length. The bytes past the old length keep what they held (zeros, or what an
    /// earlier use left).
    ///
    /// # Panics
    ///
    /// If `len > capacity()`.
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.pool.size,
            "FixedBuf::set_len({len}) past its capacity of {}",
            self.pool.size
        );
        self.len = len;
    }

    /// Empties the buffer (length 0).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `data`.
    ///
    /// # Panics
    ///
    /// If it does not fit (`len() + data.len() > capacity()`).
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        assert!(
            end <= self.pool.size,
            "FixedBuf::extend_from_slice: {end} bytes past its capacity of {}",
            self.pool.size
        );
        // SAFETY: `len..end` is inside this buffer, which only this `FixedBuf` reaches; `data`
        // cannot overlap it (it would need a borrow of `self`).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.pool.buf_ptr(self.index).add(self.len),
                data.len(),
            )
        };
        self.len = end;
    }

    /// All `capacity()` bytes, whatever the length.
    pub fn as_full_slice_mut(&mut self) -> &mut [u8] {
        // SAFETY: the buffer's `size` bytes are initialised and reached only through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.pool.buf_ptr(self.index), self.pool.size) }
    }
}

impl Deref for FixedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len <= size` initialised bytes of this buffer, reached only through `self`.
        unsafe { std::slice::from_raw_parts(self.pool.buf_ptr(self.index), self.len) }
    }
}

impl DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, with `&mut self` for exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.pool.buf_ptr(self.index), self.len) }
    }
}

// SAFETY: the pointer is into the pool's heap block, which does not move and stays allocated
// while any `FixedBuf` holds the pool (so across moves of `self`); it is valid for `size`
// bytes, all initialised. `fixed_index` is the index this memory was registered under.
unsafe impl IoBuf for FixedBuf {
    const FIXED: bool = true;
    fn stable_ptr(&self) -> *const u8 {
        self.pool.buf_ptr(self.index)
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.pool.size
    }
    fn fixed_index(&self) -> Option<u16> {
        Some(self.index)
    }
}

// SAFETY: as above; the buffer's bytes are reached only through this `FixedBuf`, so the kernel
// may write all `size` of them.
unsafe impl IoBufMut for FixedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.pool.buf_ptr(self.index)
    }
    /// Grows the length to `n` if the kernel filled past it; never shrinks it (as for `Vec`).
    unsafe fn set_init(&mut self, n: usize) {
        self.len = self.len.max(n.min(self.pool.size));
    }
}
