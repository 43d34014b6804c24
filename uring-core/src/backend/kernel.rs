//! [`Kernel`]: the running Linux kernel as a ring's backend.

use super::mmap::Mmap;
use super::thread_id::{current_thread_id, thread_id};
use super::{Backend, Sealed};
use std::fmt;
use std::io;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::raw::{ArrayLayout, RingMemory};
use crate::setup::{Builder, Features};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use uring_sys as sys;

/// The running Linux kernel: a ring fd and its mappings.
///
/// Dropping it unregisters the ring fd if the dropping thread registered it, then closes
/// the fd and then unmaps the rings; it is dropped only when both queue halves are gone.
pub struct Kernel {
    fd: OwnedFd,
    /// The registered ring fd (`IORING_REGISTER_RING_FDS`) and the thread that registered
    /// it, in one word so that `enter` can never pair an index with the wrong thread:
    /// 0 when none, else `thread << 32 | index` with `thread` the registering thread's
    /// [`thread_id`] (never 0). The kernel's table of registered rings is per thread, and
    /// not inherited by a forked child, whose thread gets a new id.
    registered: AtomicU64,
    /// Held while registering or unregistering the ring fd, so that two threads cannot both
    /// register it (the loser's table entry would pin the ring until that thread exits).
    ring_fd_lock: Mutex<()>,
    /// Number of `io_uring_enter` calls made through [`Backend::enter`], for tests and
    /// diagnostics (see [`Kernel::enter_count`]; feature `test-util`).
    #[cfg(any(test, feature = "test-util"))]
    enters: AtomicU64,
    /// The process's [`crate::fork_generation`] at setup: a process where it differs is a
    /// forked descendant, which must not use the ring (see [`Kernel::is_inherited`]).
    generation: u64,
    /// What `enter` compares the process's fork generation with: `generation`, or [`LOST`]
    /// once a resize has left the ring without a mapping of its memory (see
    /// [`Kernel::remap`]). One load either way, the same cost as a plain field.
    gate: AtomicU64,
    /// Set once `IORING_REGISTER_ENABLE_RINGS` has succeeded through
    /// [`crate::Registrar`]: the ring no longer is disabled, whatever the setup flags say
    /// (see [`crate::Ring::info`]).
    enabled: AtomicBool,
    /// A number no other ring of this process has had, for registrations that must be used
    /// with this ring only (see [`crate::WaitArgs`]).
    id: u64,
    /// Whether the kernel maps the SQ and CQ rings as one (`IORING_FEAT_SINGLE_MMAP`).
    single_mmap: bool,
    /// How this kernel laid out the SQ index array at setup (`None`: no array, or a layout
    /// this crate does not know): a resize, which does not report the array's place, needs it.
    array_layout: Option<ArrayLayout>,
    /// The ring memory's mappings. Read at setup and replaced by a resize, which holds both
    /// queue halves (`&mut`), so no view into the old ones is left; the lock only keeps the
    /// swap itself sound, since a `&Kernel` may be on other threads.
    maps: Mutex<Maps>,
}

/// The mappings of a ring's memory: the SQ ring, the CQ ring (none when it shares the SQ
/// ring's mapping) and the SQE array.
#[derive(Debug)]
pub(crate) struct Maps {
    sq: Mmap,
    cq: Option<Mmap>,
    sqes: Mmap,
}

impl Maps {
    /// Maps the rings of `fd` as `p` lays them out.
    fn new(fd: BorrowedFd<'_>, p: &sys::io_uring_params, single: bool) -> Result<Maps> {
        let cqe_size = std::mem::size_of::<sys::io_uring_cqe>()
            << u32::from(p.flags & sys::IORING_SETUP_CQE32 != 0);
        let sqe_size = std::mem::size_of::<sys::io_uring_sqe>()
            << u32::from(p.flags & sys::IORING_SETUP_SQE128 != 0);
        let mut sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
        let mut cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * cqe_size;
        if single {
            sq_len = sq_len.max(cq_len);
            cq_len = sq_len;
        }
        let sq = Mmap::new(fd, sys::IORING_OFF_SQ_RING, sq_len)?;
        let cq = if single {
            None
        } else {
            Some(Mmap::new(fd, sys::IORING_OFF_CQ_RING, cq_len)?)
        };
        let sqes = Mmap::new(fd, sys::IORING_OFF_SQES, p.sq_entries as usize * sqe_size)?;
        Ok(Maps { sq, cq, sqes })
    }

    fn memory(&self) -> RingMemory {
        let sq_ring = self.sq.ptr.as_ptr();
        RingMemory {
            sq_ring,
            cq_ring: self.cq.as_ref().map_or(sq_ring, |m| m.ptr.as_ptr()),
            sqes: self.sqes.ptr.as_ptr().cast(),
        }
    }
}

/// [`Kernel::gate`]'s value once the ring has lost its mapping: no fork generation reaches it.
const LOST: u64 = u64::MAX;

/// The source of [`Kernel::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("fd", &self.fd.as_raw_fd())
            .field("registered", &self.registered_index())
            .finish_non_exhaustive()
    }
}

// SAFETY: the raw mapping pointers are only handed out as `RingMemory` to the queues, which
// access the shared words atomically; the fd is thread-safe.
unsafe impl Send for Kernel {}
// SAFETY: as above; `&Kernel` only allows `io_uring_enter`/`register`, which are thread-safe.
unsafe impl Sync for Kernel {}

impl Sealed for Kernel {
    const SHARED_AFTER_FORK: bool = true;

    fn setup_generation(&self) -> u64 {
        self.generation
    }

    fn enabled_since_setup(&self) -> bool {
        // Relaxed: pairs with the store in `mark_enabled`; a plain flag that publishes no
        // memory. A thread ordered after the enabling (by whatever ordered it) sees it.
        self.enabled.load(Ordering::Relaxed)
    }
}

impl Kernel {
    /// `io_uring_setup` with the builder's parameters, then maps the rings.
    pub(crate) fn setup(b: &Builder) -> Result<(Kernel, sys::io_uring_params)> {
        // Before the generation is recorded and the rings mapped: every later fork then
        // moves it on and privatizes the mappings in the child.
        if !crate::fork::install() {
            return Err(Error::os(
                "pthread_atfork",
                io::Error::from_raw_os_error(libc::ENOMEM),
            ));
        }
        let generation = crate::fork::fork_generation();
        let mut p = b.params;
        let fd =
            sys::io_uring_setup(b.entries, &mut p).map_err(|e| Error::os("io_uring_setup", e))?;
        let single = Features::from_bits_retain(p.features).contains(Features::SINGLE_MMAP);
        let array_layout = ArrayLayout::detect(&p);
        let maps = Maps::new(fd.as_fd(), &p, single)?;
        let kernel = Kernel {
            fd,
            registered: AtomicU64::new(0),
            ring_fd_lock: Mutex::new(()),
            generation,
            gate: AtomicU64::new(generation),
            #[cfg(any(test, feature = "test-util"))]
            enters: AtomicU64::new(0),
            enabled: AtomicBool::new(false),
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            single_mmap: single,
            array_layout,
            maps: Mutex::new(maps),
        };
        Ok((kernel, p))
    }

    /// The ring memory as mapped now.
    pub(crate) fn memory(&self) -> RingMemory {
        self.lock_maps().memory()
    }

    fn lock_maps(&self) -> MutexGuard<'_, Maps> {
        // A panic while holding it (only in `remap`, between two moves) leaves whole maps.
        self.maps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After `IORING_REGISTER_RESIZE_RINGS` succeeded with the layout `p`: maps the new rings,
    /// makes them the ones [`Kernel::memory`] reports, and returns them with the old
    /// mappings, which the caller keeps until it has copied what it needs out of them (the
    /// kernel no longer uses them; they stay readable while mapped).
    ///
    /// If the new rings cannot be mapped, the ring is lost: the kernel moved to memory this
    /// process cannot reach, so from then on every entry fails with `EBADFD` (rather than
    /// submitting SQEs written where the kernel does not look, or waiting for completions
    /// posted where the queues do not look), and the old mappings stay as they are.
    pub(crate) fn remap(&self, p: &sys::io_uring_params) -> Result<(RingMemory, Maps)> {
        match Maps::new(self.fd.as_fd(), p, self.single_mmap) {
            Ok(new) => {
                let memory = new.memory();
                let old = std::mem::replace(&mut *self.lock_maps(), new);
                Ok((memory, old))
            }
            Err(e) => {
                self.mark_lost();
                Err(e)
            }
        }
    }

    /// Makes every later entry fail with `EBADFD`: the ring's memory is out of reach (see
    /// [`Kernel::remap`]).
    pub(crate) fn mark_lost(&self) {
        // Relaxed: read by `enter` of any thread; it publishes no memory.
        self.gate.store(LOST, Ordering::Relaxed);
    }

    /// How the kernel lays out this ring's SQ index array (see `array_layout`).
    pub(crate) fn array_layout(&self) -> Option<ArrayLayout> {
        self.array_layout
    }

    /// A number unique to this ring in the process.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The index of the registered ring fd (`IORING_REGISTER_RING_FDS`), if one is
    /// registered. It is an index into the registering thread's table: only that thread
    /// enters the kernel with it (with `IORING_ENTER_REGISTERED_RING`); other threads use the
    /// plain fd.
    pub fn registered_index(&self) -> Option<u32> {
        // Relaxed: a plain value used as a syscall argument; it publishes no memory.
        let word = self.registered.load(Ordering::Relaxed);
        (word != 0).then_some(word as u32)
    }

    /// How many times this ring has entered the kernel (`io_uring_enter` calls, including
    /// those that failed, e.g. with `EINTR`), since setup.
    ///
    /// This is how a caller (or a test) can check that a path made no system call, such as
    /// submission on an SQPOLL ring whose poller is awake. Feature `test-util` (counting
    /// costs an atomic add per system call).
    #[cfg(any(test, feature = "test-util"))]
    pub fn enter_count(&self) -> u64 {
        // Relaxed: a statistics counter; nothing is published through it.
        self.enters.load(Ordering::Relaxed)
    }

    /// Whether the ring fd is registered by the calling thread (never in a forked child
    /// of the registering thread).
    pub(crate) fn registered_here(&self) -> bool {
        // Relaxed: see `registered_index`.
        let word = self.registered.load(Ordering::Relaxed);
        word != 0 && word >> 32 == current_thread_id()
    }

    /// Whether the calling process is a forked descendant of the one that set the ring up
    /// (through libc's `fork`): it shares the kernel's ring, but the ring's queues are not
    /// its to use. See [`crate::Error::ForkedChild`].
    #[inline]
    pub fn is_inherited(&self) -> bool {
        crate::fork::fork_generation() != self.generation
    }

    /// Records that `IORING_REGISTER_ENABLE_RINGS` succeeded: the ring is enabled.
    pub(crate) fn mark_enabled(&self) {
        // Relaxed: pairs with the load in `enabled_since_setup`; see there.
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Serialises registering and unregistering the ring fd.
    pub(crate) fn lock_ring_fd(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic while holding it leaves nothing inconsistent.
        self.ring_fd_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the registered ring index of the calling thread (`Some`), or forgets it
    /// (`None`). Call with [`Kernel::lock_ring_fd`] held, right after the kernel agreed.
    ///
    /// Fails, recording nothing, if the calling thread's id does not fit the 32 bits it is
    /// stored in (after four billion threads): the ring is then entered through its plain
    /// fd, which is always correct. (The fork handler that keeps a forked child from using
    /// the index was installed before the ring was set up.)
    pub(crate) fn set_registered_index(
        &self,
        index: Option<u32>,
    ) -> std::result::Result<(), &'static str> {
        let word = match index {
            None => 0,
            Some(i) => match u32::try_from(thread_id()) {
                Ok(t) => u64::from(t) << 32 | u64::from(i),
                Err(_) => return Err("this thread's id is too large to record"),
            },
        };
        // Relaxed: see `registered_index`; the lock orders writers.
        self.registered.store(word, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // A registered ring fd holds a reference to the ring file in the registering thread's
        // table: drop it here when that is this thread, or the ring would outlive `Kernel`
        // until the thread exits. (From another thread it cannot be reached; see
        // `Registrar::register_ring_fd`.)
        if self.registered_here() {
            let mut up = sys::io_uring_rsrc_update {
                // Relaxed: see `registered_index`; the index is the word's low half.
                offset: self.registered.load(Ordering::Relaxed) as u32,
                ..Default::default()
            };
            // SAFETY: `up` is a live `io_uring_rsrc_update`, one entry as `nr_args` says; the
            // kernel only reads it. The result is ignored: there is no one left to tell.
            let _ = unsafe {
                sys::io_uring_register(
                    self.fd.as_fd(),
                    sys::IORING_UNREGISTER_RING_FDS,
                    (&mut up as *mut sys::io_uring_rsrc_update).cast(),
                    1,
                )
            };
        }
    }
}

impl AsFd for Kernel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Backend for Kernel {
    #[inline]
    fn enter(
        &self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        timeout: Option<Duration>,
    ) -> io::Result<u32> {
        let ts;
        let arg;
        let (flags, argp, argsz) = match timeout {
            Some(t) => {
                ts = sys::__kernel_timespec {
                    tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
                    tv_nsec: i64::from(t.subsec_nanos()),
                };
                arg = sys::io_uring_getevents_arg {
                    ts: &ts as *const _ as u64,
                    ..Default::default()
                };
                (
                    flags | sys::IORING_ENTER_EXT_ARG,
                    &arg as *const sys::io_uring_getevents_arg as *const libc::c_void,
                    std::mem::size_of::<sys::io_uring_getevents_arg>(),
                )
            }
            None => (flags, std::ptr::null(), 0),
        };
        // SAFETY: the SQEs between head and tail were vouched for when committed; `argp` is
        // null or points at `arg`/`ts`, alive for the call.
        unsafe { self.enter_raw(to_submit, min_complete, flags, argp, argsz) }
    }
}

impl Kernel {
    /// `io_uring_enter` through the registered ring index on the thread that registered it,
    /// the plain fd elsewhere; refused in a forked child (`EPERM`) and on a lost ring
    /// (`EBADFD`, see [`Kernel::remap`]).
    ///
    /// # Safety
    ///
    /// As for [`uring_sys::io_uring_enter_raw`], for `argp`/`argsz` and what `flags` says of
    /// them.
    #[inline]
    pub(crate) unsafe fn enter_raw(
        &self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        argp: *const libc::c_void,
        argsz: usize,
    ) -> io::Result<u32> {
        // Relaxed: `gate` is the setup generation (or LOST), written once; the fork handler
        // moves the process's generation on in the child before `fork` returns there.
        let gate = self.gate.load(Ordering::Relaxed);
        if crate::fork::fork_generation() != gate {
            // A forked child: the kernel would consume the parent's SQEs for this process,
            // or hand it the parent's completions (see `crate::fork`). The queues turn this
            // into `Error::ForkedChild`. No system call is made, and none counted. Cost:
            // a load and a comparison per system call.
            let errno = if gate == LOST {
                libc::EBADFD
            } else {
                libc::EPERM
            };
            return Err(io::Error::from_raw_os_error(errno));
        }
        // Relaxed: a statistics counter; nothing is published through it. Counted only with
        // feature `test-util`: one `lock xadd` per system call, and the counter's cache line
        // moving between cores when both queue halves enter from two threads at once.
        #[cfg(any(test, feature = "test-util"))]
        self.enters.fetch_add(1, Ordering::Relaxed);
        // Relaxed: see `registered_index`. Index and thread come from one load, so they
        // always belong to the same registration.
        let reg = self.registered.load(Ordering::Relaxed);
        // A registered ring index is only meaningful on the thread that registered it (the
        // kernel keeps the table per task, and a forked child's thread has a new id);
        // elsewhere the real fd is used. A thread without an id registered nothing.
        if reg != 0 && reg >> 32 == current_thread_id() {
            // SAFETY: forwarded to the caller; the index is this thread's registration.
            return unsafe {
                sys::io_uring_enter_raw(
                    reg as u32 as i32,
                    to_submit,
                    min_complete,
                    flags | sys::IORING_ENTER_REGISTERED_RING,
                    argp,
                    argsz,
                )
            };
        }
        // SAFETY: forwarded to the caller.
        unsafe {
            sys::io_uring_enter_raw(
                self.fd.as_raw_fd(),
                to_submit,
                min_complete,
                flags,
                argp,
                argsz,
            )
        }
    }
}
