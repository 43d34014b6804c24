//! Where in-flight submissions live: a slab of slots that never move.
//!
//! Each slot stores one [`Entry`] of any type, inline when it fits ([`INLINE`] bytes), boxed
//! otherwise, behind a small table of functions for that type. Slots are allocated in chunks
//! that are never reallocated, so an entry's address is stable from `prepare` until its
//! completion: ops may hand the kernel pointers into themselves (a timespec, an iovec array).
//!
//! The key of a slot is its index plus a generation that changes on every reuse, so a stale or
//! duplicated key can never reach a live entry. A slot is freed only through its key (taking or
//! detaching), so while a key exists its slot holds the entry it was issued for; the entry's
//! type is therefore checked only in debug builds.

use crate::op::Entry;
use std::any::TypeId;
use std::mem::{align_of, size_of, MaybeUninit};

/// Bytes of inline storage per slot.
pub(crate) const INLINE: usize = 128;
const CHUNK: usize = 64;
const NONE: u32 = u32::MAX;
/// Generations are 23 bits wide (they share the user data with the index and sub-entry).
pub(crate) const GEN_MASK: u32 = (1 << 23) - 1;

/// Slot states, in the low two bits of a slot's tag; bit 2 marks an [`Entry::SINGLE`] entry;
/// the generation is above them.
const FREE: u32 = 0;
/// The kernel may still use the entry; it is kept for redemption.
const IN_FLIGHT: u32 = 1;
/// Finished; the entry waits to be redeemed.
const DONE: u32 = 2;
/// The kernel may still use the entry; it is dropped when it finishes (its key is gone).
const DETACHED: u32 = 3;
const STATE_MASK: u32 = 3;
/// The entry is [`Entry::SINGLE`]: its result is kept in the slot.
const SINGLE: u32 = 4;
const GEN_SHIFT: u32 = 3;

#[inline]
fn tag(gen: u32, state: u32) -> u32 {
    (gen << GEN_SHIFT) | state
}

#[inline]
fn gen_of(tag: u32) -> u32 {
    tag >> GEN_SHIFT
}

/// A completion's `res` and flags in one word (as a slot keeps them).
#[inline]
fn pack_result(res: i32, flags: u32) -> u64 {
    u64::from(res as u32) | (u64::from(flags) << 32)
}

#[inline]
fn unpack_result(result: u64) -> (i32, u32) {
    (result as u32 as i32, (result >> 32) as u32)
}

/// Records completion `(sub, res, flags)` in the entry at the storage; `true` when finished.
type OnCqe = unsafe fn(*mut Storage, u32, i32, u32) -> bool;

struct VTable {
    drop: unsafe fn(*mut Storage),
    /// `None` for [`Entry::SINGLE`] entries: the slot keeps the result itself.
    on_cqe: Option<OnCqe>,
    type_id: fn() -> TypeId,
}

type Storage = MaybeUninit<[u64; INLINE / 8]>;

const fn fits<E>() -> bool {
    size_of::<E>() <= INLINE && align_of::<E>() <= align_of::<u64>()
}

/// # Safety
///
/// `s` holds a live `E` (inline or boxed, as `fits::<E>()` says).
#[inline]
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
        on_cqe: if E::SINGLE {
            None
        } else {
            Some(on_cqe_entry::<E>)
        },
        type_id: TypeId::of::<E>,
    };
}

struct Slot {
    /// Generation and state (see [`tag`]).
    tag: u32,
    next_free: u32,
    /// The result of a [`Entry::SINGLE`] entry: `res` in the low half, the CQE flags in the
    /// high half (one word, so that it is copied with one load and one store).
    result: u64,
    vtable: Option<&'static VTable>,
    storage: Storage,
}

/// A slab of in-flight entries.
pub(crate) struct Slab {
    chunks: Vec<Box<[Slot; CHUNK]>>,
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

/// Moves the `E` out of a live slot and marks it free, linked to `free`.
#[inline]
fn read_out_slot<E: Entry>(slot: &mut Slot, free: u32) -> (E, i32, u32) {
    debug_assert!(slot
        .vtable
        .is_some_and(|v| (v.type_id)() == TypeId::of::<E>()));
    // SAFETY: the slot holds a live `E`; it is moved out once and the slot marked free.
    let e = unsafe {
        let p = entry_ptr::<E>(&mut slot.storage);
        if fits::<E>() {
            p.read()
        } else {
            *Box::from_raw(p)
        }
    };
    // A free slot's state and SINGLE bits are zero (`insert` relies on it). Its stale
    // vtable is never read: every reader checks the state first.
    slot.tag = tag((gen_of(slot.tag) + 1) & GEN_MASK, FREE);
    slot.next_free = free;
    let (res, flags) = unpack_result(slot.result);
    (e, res, flags)
}

#[inline]
fn slot_in(chunks: &mut [Box<[Slot; CHUNK]>], index: u32) -> Option<&mut Slot> {
    let i = index as usize;
    chunks.get_mut(i / CHUNK).map(|c| &mut c[i % CHUNK])
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

    #[cold]
    fn grow(&mut self) {
        let base = (self.chunks.len() * CHUNK) as u32;
        let next = self.free;
        let chunk: Box<[Slot; CHUNK]> = (0..CHUNK as u32)
            .map(|i| Slot {
                tag: tag(0, FREE),
                next_free: if i + 1 < CHUNK as u32 {
                    base + i + 1
                } else {
                    next
                },
                result: 0,
                vtable: None,
                storage: MaybeUninit::uninit(),
            })
            .collect::<Box<[Slot]>>()
            .try_into()
            .unwrap_or_else(|_| unreachable!("CHUNK slots were collected"));
        self.chunks.push(chunk);
        self.free = base;
    }

    /// Stores `e` in a free slot, marked in flight. Returns the slot's key `(index, gen)` and
    /// the entry, in place, to prepare its SQEs.
    #[inline]
    pub(crate) fn insert<E: Entry>(&mut self, e: E) -> (u32, u32, &mut E) {
        if self.free == NONE {
            self.grow();
        }
        let index = self.free;
        let slot = slot_in(&mut self.chunks, index).expect("free list points at a slot");
        self.free = slot.next_free;
        // A free slot's tag is its generation alone (state FREE, SINGLE clear): or-ing in the
        // new state is enough.
        debug_assert_eq!(slot.tag & (STATE_MASK | SINGLE), FREE);
        let gen = gen_of(slot.tag);
        slot.tag |= IN_FLIGHT | if E::SINGLE { SINGLE } else { 0 };
        slot.vtable = Some(&Table::<E>::VTABLE);
        if fits::<E>() {
            // SAFETY: the storage is free, large and aligned enough for `E` (`fits`).
            unsafe { slot.storage.as_mut_ptr().cast::<E>().write(e) };
        } else {
            // SAFETY: the storage is free and holds a pointer.
            unsafe {
                slot.storage
                    .as_mut_ptr()
                    .cast::<*mut E>()
                    .write(Box::into_raw(Box::new(e)))
            };
        }
        self.in_flight += 1;
        // SAFETY: the slot now holds a live `E`, borrowed mutably with `self`.
        let e = unsafe { &mut *entry_ptr::<E>(&mut slot.storage) };
        (index, gen, e)
    }

    /// Moves the entry out of the live slot `index` (of type `E`) and frees the slot.
    #[inline]
    fn read_out<E: Entry>(&mut self, index: u32) -> (E, i32, u32) {
        let free = self.free;
        let slot = slot_in(&mut self.chunks, index).expect("a live slot");
        let out = read_out_slot::<E>(slot, free);
        self.free = index;
        out
    }

    /// Records a completion for the entry keyed `(index, gen)`. A `gen` above [`GEN_MASK`]
    /// names no entry ([`Completed::Stale`]).
    #[inline]
    pub(crate) fn complete(
        &mut self,
        index: u32,
        gen: u32,
        sub: u32,
        res: i32,
        flags: u32,
    ) -> Completed {
        let Some(slot) = slot_in(&mut self.chunks, index) else {
            return Completed::Stale;
        };
        // Fast path: a single-CQE entry kept for redemption.
        if slot.tag == tag(gen, SINGLE | IN_FLIGHT) {
            slot.result = pack_result(res, flags);
            slot.tag = tag(gen, SINGLE | DONE);
            self.in_flight -= 1;
            return Completed::Done;
        }
        self.complete_slow(index, gen, sub, res, flags)
    }

    #[inline(never)]
    fn complete_slow(&mut self, index: u32, gen: u32, sub: u32, res: i32, flags: u32) -> Completed {
        let Some(slot) = slot_in(&mut self.chunks, index) else {
            return Completed::Stale;
        };
        let state = slot.tag & STATE_MASK;
        if gen_of(slot.tag) != gen || !(state == IN_FLIGHT || state == DETACHED) {
            return Completed::Stale;
        }
        let Some(vt) = slot.vtable else {
            return Completed::Stale;
        };
        match vt.on_cqe {
            None => slot.result = pack_result(res, flags),
            Some(on_cqe) => {
                // SAFETY: the slot is in flight, so it holds a live entry of the vtable's type.
                if !unsafe { on_cqe(&mut slot.storage, sub, res, flags) } {
                    return Completed::Pending;
                }
            }
        }
        self.in_flight -= 1;
        if state == IN_FLIGHT {
            slot.tag = tag(gen, (slot.tag & SINGLE) | DONE);
            return Completed::Done;
        }
        // Detached: the entry finished, the kernel no longer uses it; drop it once.
        // SAFETY: the slot holds a live entry of the vtable's type.
        unsafe { (vt.drop)(&mut slot.storage) };
        slot.tag = tag((gen + 1) & GEN_MASK, FREE);
        slot.vtable = None;
        slot.next_free = self.free;
        self.free = index;
        Completed::Freed
    }

    /// The state of the live slot keyed `(index, gen)`, or `None`.
    #[inline]
    fn live_state(&self, index: u32, gen: u32) -> Option<u32> {
        let s = self.slot(index)?;
        let state = s.tag & STATE_MASK;
        (gen_of(s.tag) == gen && state != FREE).then_some(state)
    }

    /// Whether `(index, gen)` names a finished entry.
    #[inline]
    pub(crate) fn is_done(&self, index: u32, gen: u32) -> bool {
        self.live_state(index, gen) == Some(DONE)
    }

    /// Whether `(index, gen)` names a live entry (in flight or finished, not detached).
    #[inline]
    pub(crate) fn is_live(&self, index: u32, gen: u32) -> bool {
        matches!(self.live_state(index, gen), Some(IN_FLIGHT | DONE))
    }

    /// Takes the finished entry keyed `(index, gen)`, which must have been inserted as an `E`:
    /// `Ok(output)`, `Err(true)` while it is in flight, `Err(false)` if the key names no live
    /// entry.
    #[inline]
    pub(crate) fn take<E: Entry>(&mut self, index: u32, gen: u32) -> Result<E::Output, bool> {
        let free = self.free;
        let Some(slot) = slot_in(&mut self.chunks, index) else {
            return Err(false);
        };
        if slot.tag != tag(gen, if E::SINGLE { SINGLE | DONE } else { DONE }) {
            let state = slot.tag & STATE_MASK;
            return Err(gen_of(slot.tag) == gen && state == IN_FLIGHT);
        }
        let (e, res, flags) = read_out_slot::<E>(slot, free);
        self.free = index;
        Ok(if E::SINGLE {
            e.finish_with(res, flags)
        } else {
            e.finish()
        })
    }

    /// The live entry (in flight or finished, not detached) keyed `(index, gen)`, which must
    /// have been inserted as an `E` (the key's invariant; checked in debug builds).
    ///
    /// An in-flight entry's owned memory may still be in use by the kernel: callers touch only
    /// the parts of `E` that no SQE names (as `Entry::on_cqe` does).
    #[inline]
    pub(crate) fn get_mut<E: Entry>(&mut self, index: u32, gen: u32) -> Option<&mut E> {
        if !self.is_live(index, gen) {
            return None;
        }
        let slot = slot_in(&mut self.chunks, index)?;
        debug_assert!(slot
            .vtable
            .is_some_and(|v| (v.type_id)() == TypeId::of::<E>()));
        // SAFETY: the slot is live and holds an `E` (the key's invariant), not otherwise
        // borrowed.
        Some(unsafe { &mut *entry_ptr::<E>(&mut slot.storage) })
    }

    /// Gives up on redeeming `(index, gen)` (an `E`): a finished entry is dropped now, an
    /// in-flight one when it finishes. Returns whether the key was live.
    pub(crate) fn detach<E: Entry>(&mut self, index: u32, gen: u32) -> bool {
        match self.live_state(index, gen) {
            Some(DONE) => drop(self.read_out::<E>(index)),
            Some(IN_FLIGHT) => {
                if let Some(slot) = slot_in(&mut self.chunks, index) {
                    slot.tag = tag(gen, (slot.tag & SINGLE) | DETACHED);
                }
            }
            _ => return false,
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
                match (slot.tag & STATE_MASK, slot.vtable) {
                    (DONE, Some(vt)) => {
                        // SAFETY: a finished entry of the vtable's type, dropped once.
                        unsafe { (vt.drop)(&mut slot.storage) };
                        slot.tag = FREE;
                    }
                    (IN_FLIGHT | DETACHED, _) => leak = true,
                    _ => {}
                }
            }
            if leak {
                Box::leak(chunk);
            }
        }
    }
}
