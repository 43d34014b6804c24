//! Thread ids for the registered ring fd: the kernel's table of registered rings is per
//! thread, so a registered index is only used by the thread that registered it.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The next thread id to hand out. Ids are never reused, unlike TLS addresses or tids.
static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The calling thread's id from [`thread_id`], or 0 until it asks for one. A forked
    /// child's only thread is reset to 0 by [`in_fork_child`].
    ///
    /// Const-initialised, `Copy` and without a destructor: reading or writing it never
    /// allocates, takes a lock or panics, which is what the fork handler relies on.
    static THREAD_ID: Cell<u64> = const { Cell::new(0) };
}

/// The calling thread's id, or 0 if it never asked for one (so it registered nothing).
/// One thread-local load: this is what `enter` pays.
#[inline]
pub(super) fn current_thread_id() -> u64 {
    THREAD_ID.with(Cell::get)
}

/// A process-unique id of the calling thread, never 0, given out on first use.
///
/// After `fork` the child's thread gets a fresh id (see [`in_fork_child`]):
/// the kernel's table of registered rings is per task and not inherited, so the child
/// must not pass for the thread that registered a ring in the parent.
pub(super) fn thread_id() -> u64 {
    match current_thread_id() {
        0 => {
            // Relaxed: pairs with no other access; only uniqueness matters, which the
            // read-modify-write alone gives, and no memory is published with the id.
            let id = NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed);
            THREAD_ID.with(|t| t.set(id));
            id
        }
        id => id,
    }
}

/// For the fork child handler (see `crate::fork`): the child's only thread (a copy of the
/// forking one, thread-locals included) forgets its id and gets a fresh one when it next
/// asks, so it never enters with, nor unregisters, a ring fd registered in the parent.
///
/// Async-signal-safe as the handler needs: a single store to a const-initialised
/// thread-local without a destructor (no allocation, no lock, no panic path). (Were this
/// crate in a `dlopen`ed library, glibc might allocate the thread's TLS block on a first
/// access here; glibc's allocator is usable in a fork child.)
pub(crate) fn forget_thread_id_in_child() {
    THREAD_ID.with(|t| t.set(0));
}
