//! Buffers an op can own while the kernel uses them.

/// A buffer the kernel may read from (the source of a write).
///
/// # Safety
///
/// Implementors guarantee that [`IoBuf::stable_ptr`] is valid for reads of
/// [`IoBuf::bytes_init`] bytes and stays the same, pointing at the same live memory, while the
/// value exists and is not accessed through `&mut` — in particular after the value is moved
/// (heap memory, not memory inside the value). A registered buffer ([`IoBuf::FIXED`]) returns
/// from [`IoBuf::fixed_index`] the index of the registration that covers that memory.
///
/// Dropping the buffer must not use the ring its op was pushed on: an op nobody redeems is
/// dropped while the ring routes completions, under the locks of a [`crate::Context`] (a
/// call back into it deadlocks or fails with [`crate::Error::Reentrant`]).
pub unsafe trait IoBuf: Send + 'static {
    /// Whether the buffer is registered memory ([`crate::FixedBuf`]): ops then use their
    /// `_FIXED` opcode with its [`IoBuf::fixed_index`] (`Read<FixedBuf>` is `READ_FIXED`).
    const FIXED: bool = false;
    /// Start of the buffer.
    fn stable_ptr(&self) -> *const u8;
    /// Bytes that hold data (what a write sends).
    fn bytes_init(&self) -> usize;
    /// Bytes of room (what a read may fill).
    fn bytes_total(&self) -> usize;
    /// The index of the registered buffer this memory belongs to, for `READ_FIXED` /
    /// `WRITE_FIXED`: `Some` exactly when [`IoBuf::FIXED`]. `None` for ordinary memory.
    fn fixed_index(&self) -> Option<u16> {
        None
    }
}

/// A buffer the kernel may write into (the destination of a read).
///
/// # Safety
///
/// As for [`IoBuf`], and [`IoBufMut::stable_mut_ptr`] is valid for writes of
/// [`IoBuf::bytes_total`] bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the buffer, for writing.
    fn stable_mut_ptr(&mut self) -> *mut u8;
    /// Records that the first `n` bytes now hold data (the kernel wrote them).
    ///
    /// # Safety
    ///
    /// The first `n` bytes (`n <= bytes_total()`) must be initialised.
    unsafe fn set_init(&mut self, n: usize);
}

// SAFETY: a Vec's heap block does not move when the Vec is moved; it is valid for `len` bytes of
// reads and `capacity` bytes of writes, and the op owning it never reallocates it.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as above.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    /// Grows the length to `n` if the kernel filled past it; never shrinks it.
    unsafe fn set_init(&mut self, n: usize) {
        if n > self.len() {
            // SAFETY: the caller guarantees the first `n <= capacity` bytes are initialised.
            unsafe { self.set_len(n) };
        }
    }
}

// SAFETY: a boxed slice's heap block does not move with the box and is valid for its length.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as above; a boxed slice is always fully initialised.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _n: usize) {}
}

// SAFETY: a static byte slice never moves and is never freed; it is only ever read.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}
