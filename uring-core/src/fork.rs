//! Rings and `fork`: a child must not touch the rings its parent set up.
//!
//! A child made with `fork` inherits the ring fds and the ring memory, a shared mapping (the
//! parent's, and the kernel's), along with a copy of everything else, the queues' positions
//! and a `uring-ops` ring's keys included. Were the child to write SQEs, publish a tail or a CQ
//! head, or enter the kernel, it would overwrite SQEs the parent has published, move the
//! parent's positions, run the parent's SQEs, or take its completions. So:
//!
//! - A `pthread_atfork` child handler, installed before the first ring is set up, replaces the
//!   child's view of every ring mapping with a private copy of it ([`privatize`]): whatever the
//!   child's copies of the queues write lands in its own memory. This is what lets the hot
//!   paths (reserving SQEs, `Ring::push`) write SQEs without any check.
//! - The handler moves the process's [`fork_generation`] on. The paths that enter the kernel or
//!   hand out completions compare it with the generation recorded when the ring was set up, and
//!   in a child fail with [`crate::Error::ForkedChild`]; the kernel backend refuses to enter
//!   from a child too (`EPERM`).
//! - It also makes the child's thread forget its id for the registered ring fd (see
//!   `backend`).
//!
//! Only forks through libc's `fork` run the handler; a raw `clone` system call does not.

use std::sync::atomic::{AtomicU64, Ordering};

/// The process's fork generation: see [`fork_generation`].
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The calling process's fork generation: a number that changes in the child of every `fork`
/// made after this crate set up its first ring in this process (or an ancestor), and never
/// otherwise. A value recorded when a resource was made therefore differs from the current one
/// exactly when the calling process is a forked descendant of the one that made it, which
/// shares the kernel's ring with it but not its own bookkeeping.
///
/// Forks made through libc's `fork` (which runs `pthread_atfork` handlers) are counted; a raw
/// `clone` system call without `CLONE_VM` is not.
#[inline]
pub fn fork_generation() -> u64 {
    // Relaxed: pairs with the increment in the fork child handler, which runs in the child
    // before `fork` returns there (with one thread); no memory is published through it.
    FORK_GENERATION.load(Ordering::Relaxed)
}

#[cfg(not(loom))]
pub(crate) use handlers::{install, Region};

#[cfg(not(loom))]
mod handlers {
    use super::*;
    use std::cell::UnsafeCell;
    use std::sync::atomic::{AtomicBool, AtomicI32};

    /// The ring mappings of this process (address and length), for the child handler to
    /// privatize. Guarded by `locked`, a spin lock that the `prepare` handler holds across
    /// `fork`, so that the child finds the list whole.
    struct Registry {
        locked: AtomicBool,
        regions: UnsafeCell<Vec<(usize, usize)>>,
    }

    // SAFETY: `regions` is only reached with `locked` held (see `Locked`), by one thread at a
    // time; in a fork child by its only thread, while the lock taken before the fork is held.
    unsafe impl Sync for Registry {}

    static REGISTRY: Registry = Registry {
        locked: AtomicBool::new(false),
        regions: UnsafeCell::new(Vec::new()),
    };

    /// Holds the registry's lock; releases it when dropped.
    struct Locked;

    impl Locked {
        fn take() -> Locked {
            // Acquire: pairs with the Release in `release`, so the list as the last holder left
            // it is visible.
            while REGISTRY
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                // Held only for a few instructions (and an allocation, in `Region::new`).
                std::thread::yield_now();
            }
            Locked
        }

        fn regions(&mut self) -> &mut Vec<(usize, usize)> {
            // SAFETY: the lock is held (by `self`), so nothing else reaches the list; the
            // borrow is tied to `&mut self`.
            unsafe { &mut *REGISTRY.regions.get() }
        }
    }

    impl Drop for Locked {
        fn drop(&mut self) {
            release();
        }
    }

    fn release() {
        // Release: publishes the list's changes to the next holder.
        REGISTRY.locked.store(false, Ordering::Release);
    }

    /// A ring mapping recorded in the registry for its life, so that a forked child gets a
    /// private copy of it instead of the parent's memory.
    #[derive(Debug)]
    pub(crate) struct Region {
        addr: usize,
    }

    impl Region {
        /// Records the mapping at `addr` of `len` bytes; `None` when the registry cannot grow
        /// (out of memory).
        pub(crate) fn new(addr: *mut u8, len: usize) -> Option<Region> {
            let addr = addr as usize;
            let mut locked = Locked::take();
            let regions = locked.regions();
            regions.try_reserve(1).ok()?;
            regions.push((addr, len));
            Some(Region { addr })
        }
    }

    impl Drop for Region {
        /// Forgets the mapping; call before unmapping it.
        fn drop(&mut self) {
            let mut locked = Locked::take();
            let regions = locked.regions();
            if let Some(i) = regions.iter().position(|&(a, _)| a == self.addr) {
                regions.swap_remove(i);
            }
        }
    }

    /// `prepare`: the registry stays whole across the fork (held by the forking thread).
    extern "C" fn before_fork() {
        std::mem::forget(Locked::take());
    }

    /// `parent`: lets go of the registry.
    extern "C" fn in_parent() {
        release();
    }

    /// `child`: makes every ring mapping private, moves the fork generation on, resets the
    /// thread id, and lets go of the registry (taken in this thread before the fork).
    ///
    /// Async-signal-safe as a fork child handler must be: system calls, a copy of memory, a
    /// store to a const-initialised thread-local, atomics; no allocation, no lock taken, no
    /// panic path.
    extern "C" fn in_child() {
        crate::backend::forget_thread_id_in_child();
        // Relaxed: see `fork_generation`.
        FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the registry's lock was taken by `before_fork` in the thread that forked,
        // which is this process's only thread; the list is whole and nothing else reaches it.
        let regions = unsafe { &*REGISTRY.regions.get() };
        for &(addr, len) in regions {
            // SAFETY: each region is a live ring mapping of `len` bytes at `addr` (recorded by
            // `Region::new` after mapping it, forgotten before unmapping it).
            unsafe { privatize(addr as *mut u8, len) };
        }
        release();
    }

    /// Replaces the mapping at `addr` (`len` bytes, shared with the parent) with a private,
    /// anonymous copy of its contents, atomically (`mremap` over it). If that cannot be done,
    /// maps inaccessible memory there instead: the child's use of the ring then faults rather
    /// than reach the parent's ring (and the address range stays taken, so that no other
    /// mapping of the child's lands where the ring's queues point).
    ///
    /// # Safety
    ///
    /// `addr` is a mapping of `len` bytes this process may read, and nothing else in the
    /// process uses it meanwhile (the child handler runs with one thread).
    unsafe fn privatize(addr: *mut u8, len: usize) {
        // SAFETY: a fresh anonymous mapping, checked below.
        let copy = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if copy != libc::MAP_FAILED {
            // SAFETY: both ranges are `len` bytes, mapped readable (and the copy writable), and
            // distinct mappings. The kernel may be writing the ring meanwhile (for the
            // parent): the copy is a snapshot that the child only ever reads from its own
            // queues' copies, never submits from.
            unsafe { std::ptr::copy_nonoverlapping(addr, copy.cast::<u8>(), len) };
            // SAFETY: moves the copy over the ring mapping (which `MREMAP_FIXED` unmaps), at
            // the same address and size; the result is checked.
            let moved = unsafe {
                libc::mremap(
                    copy,
                    len,
                    len,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    addr.cast::<libc::c_void>(),
                )
            };
            if moved != libc::MAP_FAILED {
                return;
            }
            // SAFETY: the copy, not moved, is ours to unmap.
            unsafe { libc::munmap(copy, len) };
        }
        // SAFETY: replaces the mapping at `addr` with an inaccessible one of the same size.
        // Nothing can be done if this fails too (it would take the process at its mapping
        // limit); the enter and completion paths still refuse the child (`ForkedChild`).
        unsafe {
            libc::mmap(
                addr.cast::<libc::c_void>(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
    }

    /// Whether the handlers are installed (set once, by `install_once`).
    static INSTALLED: AtomicBool = AtomicBool::new(false);

    /// `pthread_once` state of `install_once`. glibc's `pthread_once` is safe across `fork`: an
    /// initialisation that a fork interrupted is run again in the child.
    static ONCE: AtomicI32 = AtomicI32::new(libc::PTHREAD_ONCE_INIT);

    extern "C" fn install_once() {
        // SAFETY: the three handlers are `extern "C" fn()`s that live as long as the process;
        // the child one is async-signal-safe, and the other two only take and release the
        // registry's lock.
        let r = unsafe { libc::pthread_atfork(Some(before_fork), Some(in_parent), Some(in_child)) };
        // Release: pairs with the Acquire in `install`.
        INSTALLED.store(r == 0, Ordering::Release);
    }

    /// Installs the fork handlers, once per process; `false` if `pthread_atfork` failed (out of
    /// memory), in which case no ring may be set up. Called before every ring is set up.
    pub(crate) fn install() -> bool {
        // Acquire: pairs with the Release in `install_once`, so that a `true` read here means
        // the handlers are in libc's list before this thread sets up a ring (or forks).
        if INSTALLED.load(Ordering::Acquire) {
            return true;
        }
        // SAFETY: `ONCE` is a `pthread_once_t` (an `int` on Linux) used only here, for the
        // process's life.
        unsafe { libc::pthread_once(ONCE.as_ptr(), install_once) };
        INSTALLED.load(Ordering::Acquire)
    }
}
