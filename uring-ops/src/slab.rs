//! Where in-flight submissions live: a slab of slots that never move.
//!
//! Each slot stores one [`Entry`] of any type, inline when it fits ([`INLINE`] bytes), boxed
//! otherwise, behind a small table of functions for that type. Slots are allocated in chunks
//! that are never reallocated, so an entry's address is stable from `prepare` until its
//! completion: ops may hand the kernel pointers into themselves (a timespec, an iovec array).
//!
//! The key of a slot is its index plus a generation that changes on every reuse, so a stale or
//! duplicated key can never reach a live entry; the type is checked on redemption.

use crate::op::Entry;
use std::any::TypeId;
use std::mem::{align_of, size_of, MaybeUninit};

/// Bytes of inline storage per slot.
pub(crate) const INLINE: usize = 128;
const CHUNK: usize = 64;
const NONE: u32 = u32::MAX;
/// Generations are 23 bits wide (they share the user data with the index and sub-entry).
pub(crate) const GEN_MASK: u32 = (1 << 23) - 1;

struct VTable {
    drop: unsafe fn(*mut Storage),
    on_cqe: unsafe fn(*mut Storage, u32, i32, u32) -> bool,
    type_id: fn() -> TypeId,
}

type Storage = MaybeUninit<[u64; INLINE / 8]>;

const fn fits<E>() -> bool {
    size_of::<E>() <= INLINE && align_of::<E>() <= align_of::<u64>()
}

/// # Safety
///
/// `s` holds a live `E` (inline or boxed, as `fits::<E>()` says).
unsafe fn entry_ptr<E>(s: *mut Storage) -> *mut E {
    if fits::<E>() {
        s.cast::<E>()
    } else {
        // SAFETY: the caller guarantees the storage holds the box's pointer.
        unsafe { s.cast::<*mut E>().read() }
    }
}

unsafe fn drop_entry<E: Entry>(s: *mut Storage) {
    // SAFETY: the caller guarantees `s` holds a live `E`, dropped once here.
    unsafe {
        if fits::<E>() {
            std::ptr::drop_in_place(s.cast::<E>());
        } else {
            drop(Box::from_raw(entry_ptr::<E>(s)));
        }
    }
}

unsafe fn on_cqe_entry<E: Entry>(s: *mut Storage, sub: u32, res: i32, flags: u32) -> bool {
    // SAFETY: the caller guarantees `s` holds a live `E`, not otherwise borrowed.
    unsafe { (*entry_ptr::<E>(s)).on_cqe(sub, res, flags) }
}

struct Table<E>(std::marker::PhantomData<E>);
impl<E: Entry> Table<E> {
    const VTABLE: VTable = VTable {
        drop: drop_entry::<E>,
        on_cqe: on_cqe_entry::<E>,
        type_id: TypeId::of::<E>,
    };
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Free,
    /// The kernel may still use the entry.
    InFlight,
    /// Finished; the entry waits to be redeemed.
    Done,
}

struct Slot {
    gen: u32,
    state: State,
    /// Free the entry when it finishes instead of keeping it for redemption.
    detached: bool,
    next_free: u32,
    vtable: Option<&'static VTable>,
    storage: Storage,
}

/// A slab of in-flight entries.
pub(crate) struct Slab {
    chunks: Vec<Box<[Slot]>>,
    free: u32,
    in_flight: usize,
}

impl std::fmt::Debug for Slab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slab")
            .field("slots", &(self.chunks.len() * CHUNK))
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

/// What `complete` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Completed {
    /// The entry needs more completions.
    Pending,
    /// The entry finished and waits to be redeemed.
    Done,
    /// The entry finished and was freed (it was detached).
    Freed,
    /// No live entry has this key.
    Stale,
}

impl Slab {
    pub(crate) fn new() -> Self {
        Slab {
            chunks: Vec::new(),
            free: NONE,
            in_flight: 0,
        }
    }

    /// Entries the kernel may still use.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    #[inline]
    fn slot(&self, index: u32) -> Option<&Slot> {
        let i = index as usize;
        self.chunks.get(i / CHUNK).map(|c| &c[i % CHUNK])
    }

    #[inline]
    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot> {
        let i = index as usize;
        self.chunks.get_mut(i / CHUNK).map(|c| &mut c[i % CHUNK])
    }

    fn grow(&mut self) {
        let base = (self.chunks.len() * CHUNK) as u32;
        let chunk: Box<[Slot]> = (0..CHUNK as u32)
            .map(|i| Slot {
                gen: 0,
                state: State::Free,
                detached: false,
                next_free: if i + 1 < CHUNK as u32 {
                    base + i + 1
                } else {
                    self.free
                },
                vtable: None,
                storage: MaybeUninit::uninit(),
            })
            .collect();
        self.chunks.push(chunk);
        self.free = base;
    }

    /// Stores `e` in a free slot, marked in flight. Returns the slot's key `(index, gen)`.
    #[inline]
    pub(crate) fn insert<E: Entry>(&mut self, e: E) -> (u32, u32) {
        if self.free == NONE {
            self.grow();
        }
        let index = self.free;
        let i = index as usize;
        let slot = &mut self.chunks[i / CHUNK][i % CHUNK];
        self.free = slot.next_free;
        debug_assert_eq!(slot.state, State::Free);
        slot.state = State::InFlight;
        slot.detached = false;
        slot.vtable = Some(&Table::<E>::VTABLE);
        let s = slot.storage.as_mut_ptr().cast::<[u64; INLINE / 8]>();
        let s = s.cast::<Storage>();
        if fits::<E>() {
            // SAFETY: the storage is free, large and aligned enough for `E` (`fits`).
            unsafe { s.cast::<E>().write(e) };
        } else {
            // SAFETY: the storage is free and holds a pointer.
            unsafe { s.cast::<*mut E>().write(Box::into_raw(Box::new(e))) };
        }
        let gen = slot.gen;
        self.in_flight += 1;
        (index, gen)
    }

    /// The entry just inserted at `index`, to prepare its SQEs.
    #[inline]
    pub(crate) fn entry_mut<E: Entry>(&mut self, index: u32) -> &mut E {
        let slot = self.slot_mut(index).expect("a live slot");
        debug_assert_eq!(slot.vtable.map(|v| (v.type_id)()), Some(TypeId::of::<E>()));
        // SAFETY: the slot holds a live `E` (just inserted by the caller with this type).
        unsafe { &mut *entry_ptr::<E>(&mut slot.storage) }
    }

    fn read_out<E: Entry>(&mut self, index: u32) -> E {
        let free = self.free;
        let slot = self.slot_mut(index).expect("a live slot");
        debug_assert_eq!(slot.vtable.map(|v| (v.type_id)()), Some(TypeId::of::<E>()));
        // SAFETY: the slot holds a live `E`; it is moved out once and the slot marked free.
        let e = unsafe {
            let p = entry_ptr::<E>(&mut slot.storage);
            if fits::<E>() {
                p.read()
            } else {
                *Box::from_raw(p)
            }
        };
        slot.state = State::Free;
        slot.vtable = None;
        slot.gen = slot.gen.wrapping_add(1) & GEN_MASK;
        slot.next_free = free;
        self.free = index;
        e
    }

    /// Records a completion for the entry keyed `(index, gen)`.
    #[inline]
    pub(crate) fn complete(
        &mut self,
        index: u32,
        gen: u32,
        sub: u32,
        res: i32,
        flags: u32,
    ) -> Completed {
        let i = index as usize;
        let Some(slot) = self.chunks.get_mut(i / CHUNK).map(|c| &mut c[i % CHUNK]) else {
            return Completed::Stale;
        };
        if slot.gen != gen || slot.state != State::InFlight {
            return Completed::Stale;
        }
        let vt = slot.vtable.expect("a live slot has a vtable");
        // SAFETY: the slot is in flight, so it holds a live entry of the vtable's type.
        let finished = unsafe { (vt.on_cqe)(&mut slot.storage, sub, res, flags) };
        if !finished {
            return Completed::Pending;
        }
        self.in_flight -= 1;
        if slot.detached {
            // SAFETY: the entry finished: the kernel no longer uses it; dropped once.
            unsafe { (vt.drop)(&mut slot.storage) };
            let free = self.free;
            slot.state = State::Free;
            slot.vtable = None;
            slot.gen = slot.gen.wrapping_add(1) & GEN_MASK;
            slot.next_free = free;
            self.free = index;
            Completed::Freed
        } else {
            slot.state = State::Done;
            Completed::Done
        }
    }

    /// Whether `(index, gen)` names a finished entry of type `E`.
    #[inline]
    pub(crate) fn is_done<E: Entry>(&self, index: u32, gen: u32) -> bool {
        self.slot(index).is_some_and(|s| {
            s.gen == gen
                && s.state == State::Done
                && s.vtable.is_some_and(|v| (v.type_id)() == TypeId::of::<E>())
        })
    }

    /// Whether `(index, gen)` names a live entry (in flight or finished) of type `E`.
    #[inline]
    pub(crate) fn is_live<E: Entry>(&self, index: u32, gen: u32) -> bool {
        self.slot(index).is_some_and(|s| {
            s.gen == gen
                && s.state != State::Free
                && s.vtable.is_some_and(|v| (v.type_id)() == TypeId::of::<E>())
        })
    }

    /// The live entry (in flight or finished) keyed `(index, gen)`, if it is an `E`.
    ///
    /// An in-flight entry's owned memory may still be in use by the kernel: callers touch only
    /// the parts of `E` that no SQE names (as `Entry::on_cqe` does).
    #[inline]
    pub(crate) fn get_mut<E: Entry>(&mut self, index: u32, gen: u32) -> Option<&mut E> {
        if !self.is_live::<E>(index, gen) {
            return None;
        }
        let slot = self.slot_mut(index)?;
        // SAFETY: the slot is live and holds an `E` (checked just above), not otherwise borrowed.
        Some(unsafe { &mut *entry_ptr::<E>(&mut slot.storage) })
    }

    /// Takes a finished entry of type `E`, or `None` if `(index, gen)` names none.
    #[inline]
    pub(crate) fn take<E: Entry>(&mut self, index: u32, gen: u32) -> Option<E> {
        if !self.is_done::<E>(index, gen) {
            return None;
        }
        Some(self.read_out::<E>(index))
    }

    /// Gives up on redeeming `(index, gen)`: a finished entry is dropped now, an in-flight one
    /// when it finishes. Returns whether the key was live.
    pub(crate) fn detach<E: Entry>(&mut self, index: u32, gen: u32) -> bool {
        if !self.is_live::<E>(index, gen) {
            return false;
        }
        if self.is_done::<E>(index, gen) {
            drop(self.read_out::<E>(index));
        } else if let Some(slot) = self.slot_mut(index) {
            slot.detached = true;
        }
        true
    }
}

impl Drop for Slab {
    /// Drops finished entries. A chunk holding an entry still in flight is leaked whole: the
    /// kernel may still use that entry's memory, so it is never freed.
    fn drop(&mut self) {
        for mut chunk in std::mem::take(&mut self.chunks) {
            let mut leak = false;
            for slot in chunk.iter_mut() {
                match (slot.state, slot.vtable) {
                    (State::Done, Some(vt)) => {
                        // SAFETY: a finished entry of the vtable's type, dropped once.
                        unsafe { (vt.drop)(&mut slot.storage) };
                        slot.state = State::Free;
                    }
                    (State::InFlight, _) => leak = true,
                    _ => {}
                }
            }
            if leak {
                Box::leak(chunk);
            }
        }
    }
}
