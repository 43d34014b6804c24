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
//!
//! A key is already in the shape of the user data of its entry's SQEs (see [`SUB_BITS`]):
//! generation in the high 32 bits, index in bits 8..32, the SQE's number within its entry in
//! the low 8. A slot's tag is its current key with the slot's state in those low bits, so one
//! comparison of a completion's user data against a tag checks generation, index, SQE number
//! and state at once, and issuing the key is reading the tag.
//!
//! Free slots are linked by address, so that taking one needs no look-up by index (its tag
//! holds its key, index included). Finding a slot from a key or a CQE's user data is one
//! bounds-checked load from a table of every slot's address, by index. Every slot address
//! derives from its chunk's raw pointer (made once from the chunk's `Box`), never from a
//! reference to the chunk, so that the addresses kept in the free list and the table stay
//! valid while other slots of the chunk are used.

use crate::op::Entry;
use std::any::TypeId;
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};
use std::ptr::{self, NonNull};
use uring_core::{Backend, Batch};

/// Bytes of inline storage per slot: what makes a slot 256 bytes (see [`SLOT_SIZE`]).
pub(crate) const INLINE: usize = 224;
/// The low bits of user data that number the SQEs of one entry (a chain has up to 256); a key
/// has them clear. The slot index is above them, up to bit 32; the generation above that.
pub(crate) const SUB_BITS: u32 = 8;
const SUB_MASK: u64 = (1 << SUB_BITS) - 1;
/// A slot's size: four cache lines, aligned, with the slot's bookkeeping and the first 32
/// bytes of its entry in the first.
const SLOT_SIZE: usize = 256;
const CHUNK_SHIFT: u32 = 6;
const CHUNK: usize = 1 << CHUNK_SHIFT;
/// Slot indices are 24 bits (user data bits 8..32): at most this many chunks (16,777,152
/// slots). The index with every bit set, in a chunk never made, is the ring's own
/// ([`INTERNAL_INDEX`]).
const MAX_CHUNKS: usize = (1 << (32 - SUB_BITS - CHUNK_SHIFT)) - 1;
/// The most entries a slab holds at once.
pub(crate) const MAX_ENTRIES: usize = MAX_CHUNKS * CHUNK;
/// A slot index no slot has: user data with it names the ring's own SQEs (wake-ups,
/// cancel-all), which completion routing finds stale without touching a slot.
pub(crate) const INTERNAL_INDEX: u32 = (1 << (32 - SUB_BITS)) - 1;
/// One generation step: the generation is the user data's high 32 bits, and wraps.
const GEN_ONE: u64 = 1 << 32;

/// Slot states, in the low two bits of a slot's tag; bit 2 marks an [`Entry::SINGLE`] entry;
/// the key is above them.
///
/// `IN_FLIGHT` is the largest state, so that `SINGLE | IN_FLIGHT` is the largest low byte any
/// tag has: the completion fast path (`tag == ud + (SINGLE | IN_FLIGHT)`) then matches only
/// that state, since for every other tag the user data it would need (`tag - 7`) borrows into
/// the index bits and so names another slot.
const FREE: u64 = 0;
/// Finished; the entry waits to be redeemed.
const DONE: u64 = 1;
/// The kernel may still use the entry; it is dropped when it finishes (its key is gone).
const DETACHED: u64 = 2;
/// The kernel may still use the entry; it is kept for redemption.
const IN_FLIGHT: u64 = 3;
const STATE_MASK: u64 = 3;
/// The entry is [`Entry::SINGLE`]: its result is kept in the slot.
const SINGLE: u64 = 4;
const _: () = assert!(SINGLE | IN_FLIGHT == SINGLE | STATE_MASK && FREE == 0);

/// The key of a tag or of user data: generation and index, without SQE number or state.
#[inline]
pub(crate) const fn key_of(ud: u64) -> u64 {
    ud & !SUB_MASK
}

/// The slot index in a key (or user data), for tables kept beside the slab.
#[inline]
pub(crate) const fn slot_index(ud: u64) -> usize {
    ((ud as u32) >> SUB_BITS) as usize
}

/// Whether user data names the ring's own SQEs rather than a slot.
#[inline]
pub(crate) const fn is_internal(ud: u64) -> bool {
    (ud as u32) >> SUB_BITS == INTERNAL_INDEX
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

/// [`Entry::link_to_cancel`] of the entry at the storage.
type LinkToCancel = unsafe fn(*mut Storage, u32, i32) -> Option<u32>;

struct VTable {
    /// Disposes of a finished entry nobody will redeem ([`Entry::discard`]), given the result
    /// the slot kept.
    discard: unsafe fn(*mut Storage, i32, u32),
    /// `None` for [`Entry::SINGLE`] entries: the slot keeps the result itself.
    on_cqe: Option<OnCqe>,
    /// Asked when `on_cqe` says the entry needs more completions.
    link_to_cancel: LinkToCancel,
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

unsafe fn discard_entry<E: Entry>(s: *mut Storage, res: i32, flags: u32) {
    // SAFETY: the caller guarantees `s` holds a live, finished `E`, moved out once here.
    let e = unsafe {
        if fits::<E>() {
            s.cast::<E>().read()
        } else {
            *Box::from_raw(entry_ptr::<E>(s))
        }
    };
    e.discard(res, flags);
}

unsafe fn on_cqe_entry<E: Entry>(s: *mut Storage, sub: u32, res: i32, flags: u32) -> bool {
    // SAFETY: the caller guarantees `s` holds a live `E`, not otherwise borrowed.
    unsafe { (*entry_ptr::<E>(s)).on_cqe(sub, res, flags) }
}

unsafe fn link_to_cancel_entry<E: Entry>(s: *mut Storage, sub: u32, res: i32) -> Option<u32> {
    // SAFETY: the caller guarantees `s` holds a live `E`, not mutably borrowed.
    unsafe { (*entry_ptr::<E>(s)).link_to_cancel(sub, res) }
}

/// The vtable a slot holding an `E` records: none for a [`Entry::SINGLE`] entry without drop
/// glue stored inline and nothing to discard, which needs neither (the slot keeps its result;
/// nothing to drop). An
/// entry that does not fit inline is boxed, and its box must be freed: it keeps its table.
/// Recording `None` is one store of a constant, where a table is an address computed and stored.
#[inline]
fn vtable_of<E: Entry>() -> Option<&'static VTable> {
    if E::SINGLE && !std::mem::needs_drop::<E>() && !E::DISCARDS && fits::<E>() {
        None
    } else {
        Some(&Table::<E>::VTABLE)
    }
}

/// Whether the slot's vtable is one an `E` records (a debug check of a key's type).
fn holds<E: Entry>(slot: &Slot) -> bool {
    match slot.vtable {
        Some(v) => (v.type_id)() == TypeId::of::<E>(),
        None => vtable_of::<E>().is_none(),
    }
}

struct Table<E>(std::marker::PhantomData<E>);
impl<E: Entry> Table<E> {
    const VTABLE: VTable = VTable {
        discard: discard_entry::<E>,
        on_cqe: if E::SINGLE {
            None
        } else {
            Some(on_cqe_entry::<E>)
        },
        link_to_cancel: link_to_cancel_entry::<E>,
        type_id: TypeId::of::<E>,
    };
}

#[repr(C, align(64))]
struct Slot {
    /// The slot's current key (generation and index) with its state in the low bits.
    tag: u64,
    /// The next free slot while this one is free (null at the end of the list).
    next_free: *mut Slot,
    /// The result of a [`Entry::SINGLE`] entry: `res` in the low half, the CQE flags in the
    /// high half (one word, so that it is copied with one load and one store).
    result: u64,
    vtable: Option<&'static VTable>,
    storage: Storage,
}

const _: () = assert!(size_of::<Slot>() == SLOT_SIZE && SLOT_SIZE.is_power_of_two());
const _: () = assert!(INTERNAL_INDEX as usize >= MAX_ENTRIES);

/// A slab of in-flight entries.
pub(crate) struct Slab {
    /// Each chunk is a `Box<[Slot; CHUNK]>` turned into a raw pointer to its first slot, owned
    /// by the slab: freed in `Drop`, or leaked if the kernel may still use an entry in it.
    chunks: Vec<NonNull<Slot>>,
    /// The address of every slot, by index (derived from its chunk's pointer): finding a slot
    /// is one load (8 bytes a slot, 3% of the slot's own size). Only ever grows.
    slots: Vec<NonNull<Slot>>,
    /// The first free slot, or null. Every slot on the free list lies in a chunk of `chunks`.
    free: *mut Slot,
    in_flight: usize,
    /// At most this many chunks ([`MAX_CHUNKS`]; fewer in tests).
    max_chunks: usize,
    /// User data of SQEs of in-flight entries that the ring must ask the kernel to cancel
    /// ([`Entry::link_to_cancel`]), oldest first; taken by [`Slab::take_links_to_cancel`].
    to_cancel: Vec<u64>,
}

// SAFETY: the slab owns its chunks exclusively (the raw pointers name only its own
// allocations, and no other value holds them), and every entry stored in it is `Send`
// (`Entry: Send`); moving the slab to another thread moves all of that with it.
unsafe impl Send for Slab {}

impl std::fmt::Debug for Slab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slab")
            .field("slots", &self.slots.len())
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

/// An entry just inserted, whose SQEs are being prepared: see [`Vacant::insert_uncommitted`].
pub(crate) struct Uncommitted<'a, E: Entry> {
    slab: &'a mut Slab,
    /// The entry's slot, in one of the slab's chunks (not inside `*slab`, so the two
    /// references do not overlap).
    slot: *mut Slot,
    key: u64,
    _entry: PhantomData<E>,
}

impl<E: Entry> Uncommitted<'_, E> {
    /// The entry's key.
    #[cfg(test)]
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// The entry, in place, to prepare its SQEs.
    #[inline]
    pub(crate) fn entry(&mut self) -> &mut E {
        // SAFETY: the slot holds the live `E` inserted under `key` (only `remove_uncommitted`,
        // from `drop`, takes it out); the borrow is tied to `&mut self`, which also holds the
        // slab's `&mut`, so nothing else reaches the slot meanwhile.
        unsafe { &mut *entry_ptr::<E>(&mut (*self.slot).storage) }
    }

    /// The SQEs are prepared (and are being committed): the entry stays, in flight. Returns
    /// its key.
    #[inline]
    pub(crate) fn keep(self) -> u64 {
        let key = self.key;
        std::mem::forget(self);
        key
    }
}

impl<E: Entry> Drop for Uncommitted<'_, E> {
    /// Reached only without [`Uncommitted::keep`]: by a panic while preparing.
    fn drop(&mut self) {
        self.slab.remove_uncommitted::<E>(self.slot, self.key);
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

/// Moves the `E` out of a live slot keyed `key` and marks it free, linked to `free`.
#[inline]
fn read_out_slot<E: Entry>(slot: &mut Slot, key: u64, free: *mut Slot) -> (E, i32, u32) {
    debug_assert_eq!(key_of(slot.tag), key);
    debug_assert!(holds::<E>(slot));
    // SAFETY: the slot holds a live `E`; it is moved out once and the slot marked free.
    let e = unsafe {
        let p = entry_ptr::<E>(&mut slot.storage);
        if fits::<E>() {
            p.read()
        } else {
            *Box::from_raw(p)
        }
    };
    // A free slot's tag is its next key: state and SINGLE bits zero (`insert` relies on
    // it), the generation one up (wrapping). Its stale vtable is never read: every reader
    // checks the state first.
    slot.tag = key.wrapping_add(GEN_ONE);
    slot.next_free = free;
    let (res, flags) = unpack_result(slot.result);
    (e, res, flags)
}

impl Slab {
    pub(crate) fn new() -> Self {
        Slab {
            chunks: Vec::new(),
            slots: Vec::new(),
            free: ptr::null_mut(),
            in_flight: 0,
            max_chunks: MAX_CHUNKS,
            to_cancel: Vec::new(),
        }
    }

    /// Whether SQEs wait to be cancelled ([`Slab::take_links_to_cancel`]).
    #[inline]
    pub(crate) fn has_links_to_cancel(&self) -> bool {
        !self.to_cancel.is_empty()
    }

    /// The user data of the SQEs the ring must ask the kernel to cancel (see
    /// [`Entry::link_to_cancel`]), taken out. Each names an SQE of an entry that was in flight
    /// when it was recorded; one that has finished since is found by nothing (its slot's
    /// generation has moved on if it was reused), so the cancel is harmless.
    pub(crate) fn take_links_to_cancel(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.to_cancel)
    }

    /// Gives back, first in line, the user data of SQEs still to cancel (those taken by
    /// [`Slab::take_links_to_cancel`] that could not be queued).
    pub(crate) fn ask_to_cancel(&mut self, mut first: Vec<u64>) {
        if !first.is_empty() {
            first.append(&mut self.to_cancel);
            self.to_cancel = first;
        }
    }

    /// Entries the kernel may still use.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The address of the slot that user data `ud` (or a key) names, or `None` past the last
    /// slot. `ud` may come from anywhere (a CQE): only its index bits are used, bounds-checked.
    #[inline]
    fn slot_ptr(&self, ud: u64) -> Option<*mut Slot> {
        self.slots.get(slot_index(ud)).map(|p| p.as_ptr())
    }

    #[inline]
    fn slot(&self, ud: u64) -> Option<&Slot> {
        // SAFETY: a slot of a live chunk (the slab owns it until it is dropped); `&self` keeps
        // every mutable access away for the borrow's life.
        self.slot_ptr(ud).map(|p| unsafe { &*p })
    }

    #[cold]
    fn grow(&mut self) -> bool {
        if self.chunks.len() >= self.max_chunks {
            return false;
        }
        let base = (self.chunks.len() * CHUNK) as u64;
        let chunk: Box<[Slot; CHUNK]> = (0..CHUNK as u64)
            .map(|i| Slot {
                // Generation 0, state FREE.
                tag: (base + i) << SUB_BITS,
                next_free: ptr::null_mut(),
                result: 0,
                vtable: None,
                storage: MaybeUninit::uninit(),
            })
            .collect::<Box<[Slot]>>()
            .try_into()
            .unwrap_or_else(|_| unreachable!("CHUNK slots were collected"));
        self.chunks.reserve(1);
        self.slots.reserve(CHUNK);
        // From here on, the chunk is only reached through this pointer and those derived from it.
        let first = Box::into_raw(chunk).cast::<Slot>();
        for i in 0..CHUNK {
            // SAFETY: `i < CHUNK`, inside the chunk just made; nothing else refers to it yet;
            // `Box::into_raw` never returns null, so neither does an offset inside it.
            unsafe {
                (*first.add(i)).next_free = if i + 1 < CHUNK {
                    first.add(i + 1)
                } else {
                    self.free
                };
                self.slots.push(NonNull::new_unchecked(first.add(i)));
            }
        }
        // SAFETY: `Box::into_raw` never returns null.
        self.chunks.push(unsafe { NonNull::new_unchecked(first) });
        self.free = first;
        true
    }

    /// A free slot to store an entry in ([`Vacant::insert`]), growing the slab if needed;
    /// `None` when the slab already holds [`MAX_ENTRIES`]. (Separate from the insert itself
    /// so that a refused entry is never moved in and back out: the push path keeps it where
    /// it is.)
    #[inline]
    pub(crate) fn vacant(&mut self) -> Option<Vacant<'_>> {
        if self.free.is_null() && !self.grow() {
            return None;
        }
        Some(Vacant { slab: self })
    }

    /// Stores `e` in a free slot, marked in flight. Returns the slot's key and the entry, in
    /// place, to prepare its SQEs; or `e` back when the slab already holds [`MAX_ENTRIES`].
    #[cfg(test)]
    pub(crate) fn insert<E: Entry>(&mut self, e: E) -> Result<(u64, &mut E), E> {
        match self.vacant() {
            Some(v) => Ok(v.insert(e)),
            None => Err(e),
        }
    }

    /// Takes back the `E` inserted in slot `p` under `key`, whose SQEs were never committed
    /// (its `prepare` panicked): the slot is freed (on the free list before the entry is
    /// dropped, so that a panic in its `Drop` does not lose it) and the entry dropped. The
    /// kernel never saw the entry, so nothing else is owed to it.
    #[cold]
    fn remove_uncommitted<E: Entry>(&mut self, p: *mut Slot, key: u64) {
        // SAFETY: `p` is the slot `Vacant::store` gave `key`, in a live chunk, still holding that
        // entry (nothing frees a slot whose key was not handed out); `&mut self` excludes every
        // other access to it.
        let slot = unsafe { &mut *p };
        let (e, _, _) = read_out_slot::<E>(slot, key, self.free);
        self.free = p;
        self.in_flight -= 1;
        drop(e);
    }

    /// Records a completion with user data `ud` (the SQE's key and number) for the entry it
    /// names; [`Completed::Stale`] when it names no live entry (a slot's key must match whole,
    /// and an [`Entry::SINGLE`] entry takes only SQE number 0).
    #[inline]
    pub(crate) fn complete(&mut self, ud: u64, res: i32, flags: u32) -> Completed {
        let Some(p) = self.slot_ptr(ud) else {
            return Completed::Stale;
        };
        // SAFETY: a slot of a live chunk; `&mut self` excludes every other access to it.
        let slot = unsafe { &mut *p };
        // Fast path: a single-CQE entry kept for redemption. The sum equals the tag only when
        // the slot is that (see `IN_FLIGHT`) and `ud` is its key exactly: SQE number 0 (a
        // number of 249 or more carries into the index, which then names another slot).
        if slot.tag == ud.wrapping_add(SINGLE | IN_FLIGHT) {
            slot.result = pack_result(res, flags);
            slot.tag = ud.wrapping_add(SINGLE | DONE);
            self.in_flight -= 1;
            return Completed::Done;
        }
        self.complete_slow(ud, res, flags)
    }

    /// Records every completion of `batch`, as [`Slab::complete`] does for each, for a caller
    /// that needs nothing back from them. Returns how many there were.
    #[inline]
    pub(crate) fn complete_batch<B: Backend>(&mut self, mut batch: Batch<'_, B>) -> usize {
        let n = batch.remaining() as usize;
        // The slot table does not change while completions are recorded (only `insert` grows
        // it): read once, so that the records' stores do not make the compiler reload it.
        let (slots, slot_count) = (self.slots.as_ptr(), self.slots.len());
        // Completions whose in-flight count is settled: the fast path's are settled together at
        // the end (or before a slow one, so that a panic there leaves the count right).
        let mut settled = 0;
        while let Some(cqe) = batch.next() {
            let ud = cqe.user_data();
            let i = slot_index(ud);
            if i < slot_count {
                // SAFETY: `i` is below the number of slots (checked), and the table does not
                // change while this runs: a slot of a live chunk, and `&mut self` excludes
                // every other access to it.
                let slot = unsafe { &mut *(*slots.add(i)).as_ptr() };
                // As in `complete`.
                if slot.tag == ud.wrapping_add(SINGLE | IN_FLIGHT) {
                    slot.result = pack_result(cqe.raw_result(), cqe.raw_flags());
                    slot.tag = ud.wrapping_add(SINGLE | DONE);
                    continue;
                }
            }
            let seen = n - batch.remaining() as usize;
            self.in_flight -= seen - 1 - settled;
            settled = seen;
            self.complete_slow(ud, cqe.raw_result(), cqe.raw_flags());
        }
        self.in_flight -= n - settled;
        n
    }

    #[inline(never)]
    fn complete_slow(&mut self, ud: u64, res: i32, flags: u32) -> Completed {
        let Some(p) = self.slot_ptr(ud) else {
            return Completed::Stale;
        };
        // SAFETY: a slot of a live chunk; `&mut self` excludes every other access to it.
        let slot = unsafe { &mut *p };
        let (key, sub) = (key_of(ud), (ud & SUB_MASK) as u32);
        let state = slot.tag & STATE_MASK;
        let single = slot.tag & SINGLE;
        if key_of(slot.tag) != key
            || !(state == IN_FLIGHT || state == DETACHED)
            || (single != 0 && sub != 0)
        {
            return Completed::Stale;
        }
        match slot.vtable.and_then(|vt| Some((vt, vt.on_cqe?))) {
            None => slot.result = pack_result(res, flags),
            Some((vt, on_cqe)) => {
                // SAFETY: the slot is in flight, so it holds a live entry of the vtable's type.
                if !unsafe { on_cqe(&mut slot.storage, sub, res, flags) } {
                    // SAFETY: as above; the entry is not borrowed any more.
                    if let Some(other) = unsafe { (vt.link_to_cancel)(&mut slot.storage, sub, res) }
                    {
                        self.to_cancel.push(key | u64::from(other));
                    }
                    return Completed::Pending;
                }
            }
        }
        self.in_flight -= 1;
        if state == IN_FLIGHT {
            slot.tag = key | single | DONE;
            return Completed::Done;
        }
        // Detached: the entry finished, the kernel no longer uses it; dispose of it once (an
        // entry recorded without a vtable has nothing to drop or discard).
        if let Some(vt) = slot.vtable {
            // SAFETY: the slot holds a live, finished entry of the vtable's type.
            unsafe { (vt.discard)(&mut slot.storage, res, flags) };
        }
        slot.tag = key.wrapping_add(GEN_ONE);
        slot.vtable = None;
        slot.next_free = self.free;
        self.free = p;
        Completed::Freed
    }

    /// The state of the live slot keyed `key`, or `None`.
    #[inline]
    fn live_state(&self, key: u64) -> Option<u64> {
        let s = self.slot(key)?;
        let state = s.tag & STATE_MASK;
        (key_of(s.tag) == key && state != FREE).then_some(state)
    }

    /// Whether `key` names a finished entry.
    #[inline]
    pub(crate) fn is_done(&self, key: u64) -> bool {
        self.live_state(key) == Some(DONE)
    }

    /// Whether `key` names a live entry (in flight or finished, not detached).
    #[inline]
    pub(crate) fn is_live(&self, key: u64) -> bool {
        matches!(self.live_state(key), Some(IN_FLIGHT | DONE))
    }

    /// The address of the slot of a key this slab issued, without a bounds check.
    ///
    /// # Safety
    ///
    /// `key` was returned by this slab's [`Slab::insert`] (so its slot exists: slots are
    /// only added).
    #[inline]
    unsafe fn issued_slot_ptr(&self, key: u64) -> *mut Slot {
        debug_assert!(slot_index(key) < self.slots.len());
        // SAFETY: the caller guarantees the slot exists.
        unsafe { self.slots.get_unchecked(slot_index(key)).as_ptr() }
    }

    /// Takes the finished entry keyed `key`, which must have been inserted as an `E`:
    /// `Ok(output)`, `Err(true)` while it is in flight, `Err(false)` if the key names no live
    /// entry.
    #[inline]
    pub(crate) fn take<E: Entry>(&mut self, key: u64) -> Result<E::Output, bool> {
        if self.slot_ptr(key).is_none() {
            return Err(false);
        }
        // SAFETY: the key's chunk exists (checked), which is all `take_issued` relies on.
        unsafe { self.take_issued::<E>(key) }
    }

    /// As [`Slab::take`], for a key known to come from this slab: no bounds check.
    ///
    /// # Safety
    ///
    /// `key` was returned by this slab's [`Slab::insert`] (it may have been redeemed since:
    /// a stale key is refused). A ticket whose ring id is this ring's is such a key.
    #[inline]
    pub(crate) unsafe fn take_issued<E: Entry>(&mut self, key: u64) -> Result<E::Output, bool> {
        // SAFETY: forwarded to the caller.
        let p = unsafe { self.issued_slot_ptr(key) };
        // SAFETY: a slot of a live chunk; `&mut self` excludes every other access to it.
        let slot = unsafe { &mut *p };
        // `key` has its low bits clear: an add (one `lea`) sets the state.
        if slot.tag != key.wrapping_add(if E::SINGLE { SINGLE | DONE } else { DONE }) {
            return Err(key_of(slot.tag) == key && slot.tag & STATE_MASK == IN_FLIGHT);
        }
        let (e, res, flags) = read_out_slot::<E>(slot, key, self.free);
        self.free = p;
        Ok(if E::SINGLE {
            e.finish_with(res, flags)
        } else {
            e.finish()
        })
    }

    /// The live entry (in flight or finished, not detached) keyed `key`, which must have been
    /// inserted as an `E` (the key's invariant; checked in debug builds).
    ///
    /// An in-flight entry's owned memory may still be in use by the kernel: callers touch only
    /// the parts of `E` that no SQE names (as `Entry::on_cqe` does).
    #[inline]
    pub(crate) fn get_mut<E: Entry>(&mut self, key: u64) -> Option<&mut E> {
        if !self.is_live(key) {
            return None;
        }
        // SAFETY: a slot of a live chunk (`is_live` found it); `&mut self` excludes every
        // other access to it.
        let slot = unsafe { &mut *self.slot_ptr(key)? };
        debug_assert!(holds::<E>(slot));
        // SAFETY: the slot is live and holds an `E` (the key's invariant), not otherwise
        // borrowed.
        Some(unsafe { &mut *entry_ptr::<E>(&mut slot.storage) })
    }

    /// Gives up on redeeming `key` (an `E`): a finished entry is discarded
    /// ([`Entry::discard`]) now, an in-flight one when it finishes. Returns whether the key was
    /// live.
    pub(crate) fn detach<E: Entry>(&mut self, key: u64) -> bool {
        let Some(state) = self.live_state(key) else {
            return false;
        };
        let Some(p) = self.slot_ptr(key) else {
            return false;
        };
        // SAFETY: a slot of a live chunk; `&mut self` excludes every other access to it.
        let slot = unsafe { &mut *p };
        match state {
            DONE => {
                let (e, res, flags) = read_out_slot::<E>(slot, key, self.free);
                // On the free list before the entry is discarded, so that a panic in its `Drop`
                // does not lose the slot.
                self.free = p;
                e.discard(res, flags);
            }
            IN_FLIGHT => slot.tag = key | (slot.tag & SINGLE) | DETACHED,
            _ => return false,
        }
        true
    }
}

/// A free slot of a slab, found by [`Slab::vacant`].
pub(crate) struct Vacant<'a> {
    /// `slab.free` is not null.
    slab: &'a mut Slab,
}

impl<'a> Vacant<'a> {
    /// Stores `e` in the free slot, marked in flight. Returns the slot's key and the entry, in
    /// place, to prepare its SQEs.
    #[inline]
    pub(crate) fn insert<E: Entry>(self, e: E) -> (u64, &'a mut E) {
        let (_, key, p) = self.store(e);
        // SAFETY: the slot now holds a live `E`, borrowed mutably with the slab.
        (key, unsafe { &mut *entry_ptr::<E>(&mut (*p).storage) })
    }

    /// As [`Vacant::insert`], for an entry whose SQEs are about to be prepared and committed:
    /// the [`Uncommitted`] guard takes the entry back out of the slab, and drops it, if it is
    /// dropped before [`Uncommitted::keep`] (when the entry's `prepare` panics), so that no
    /// slot is left in flight for SQEs that never reached the kernel.
    #[inline]
    pub(crate) fn insert_uncommitted<E: Entry>(self, e: E) -> Uncommitted<'a, E> {
        let (slab, key, slot) = self.store(e);
        Uncommitted {
            slab,
            slot,
            key,
            _entry: PhantomData,
        }
    }

    /// Stores `e` in the free slot, marked in flight: the slab back, the slot's key and its
    /// address.
    #[inline]
    fn store<E: Entry>(self, e: E) -> (&'a mut Slab, u64, *mut Slot) {
        let slab = self.slab;
        let p = slab.free;
        // SAFETY: a slot on the free list (not null: `Vacant`'s invariant), in a live chunk
        // (the field's invariant); `&mut` to the slab excludes every other access to it.
        let slot = unsafe { &mut *p };
        slab.free = slot.next_free;
        // A free slot's tag is its key alone (state FREE, SINGLE clear): adding the new state
        // is enough.
        let key = slot.tag;
        debug_assert_eq!(key, key_of(key));
        // An add rather than an or (the low bits are clear): the compiler makes it one `lea`.
        slot.tag = key + (IN_FLIGHT | if E::SINGLE { SINGLE } else { 0 });
        slot.vtable = vtable_of::<E>();
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
        slab.in_flight += 1;
        (slab, key, p)
    }
}

impl Drop for Slab {
    /// Discards finished entries ([`Entry::discard`]). A chunk holding an entry still in flight
    /// is leaked whole: the kernel may still use that entry's memory, so it is never freed.
    fn drop(&mut self) {
        self.free = ptr::null_mut();
        self.slots.clear();
        for first in std::mem::take(&mut self.chunks) {
            let mut leak = false;
            for i in 0..CHUNK {
                // SAFETY: `i < CHUNK`, a slot of this live chunk, not otherwise borrowed.
                let slot = unsafe { &mut *first.as_ptr().add(i) };
                match (slot.tag & STATE_MASK, slot.vtable) {
                    (DONE, Some(vt)) => {
                        let (res, flags) = unpack_result(slot.result);
                        // SAFETY: a finished entry of the vtable's type, discarded once.
                        unsafe { (vt.discard)(&mut slot.storage, res, flags) };
                        slot.tag = FREE;
                    }
                    (IN_FLIGHT | DETACHED, _) => leak = true,
                    _ => {}
                }
            }
            if !leak {
                // SAFETY: `first` came from `Box::into_raw` of a `Box<[Slot; CHUNK]>` in
                // `grow`, and is freed once, here; no entry in it is live any more.
                drop(unsafe { Box::from_raw(first.as_ptr().cast::<[Slot; CHUNK]>()) });
            }
        }
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    //! The slab on its own (no kernel), so that Miri can check its pointer discipline:
    //! `cargo +nightly miri test -p uring-ops --lib slab`.

    use super::*;
    use crate::op::{OpCheck, Single, Submit};
    use crate::ops::Nop;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use uring_core::Sqe;

    /// A two-SQE entry that owns heap memory and counts its drops; `N` bytes inline.
    struct Multi<const N: usize> {
        seen: u32,
        _heap: Vec<u8>,
        _inline: [u8; N],
        drops: Arc<AtomicUsize>,
    }

    impl<const N: usize> Multi<N> {
        fn new(drops: &Arc<AtomicUsize>) -> Self {
            Multi {
                seen: 0,
                _heap: vec![7; 16],
                _inline: [0; N],
                drops: drops.clone(),
            }
        }
    }

    impl<const N: usize> Drop for Multi<N> {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl<const N: usize> crate::op::sealed::Sealed for Multi<N> {}
    // SAFETY: prepares nothing; finishes after both of its completions.
    unsafe impl<const N: usize> Entry for Multi<N> {
        type Output = u32;
        fn sqe_count(&self) -> u32 {
            2
        }
        fn check(&self, _ops: &OpCheck) -> crate::Result<()> {
            Ok(())
        }
        fn prepare(&mut self, _i: u32, _sqe: &mut Sqe) {}
        fn on_cqe(&mut self, _sub: u32, res: i32, _flags: u32) -> bool {
            self.seen += res as u32;
            self.seen >= 2
        }
        fn finish(self) -> u32 {
            self.seen
        }
    }

    #[test]
    fn single_entries_across_chunks_and_stale_keys() {
        let mut slab = Slab::new();
        let n = if cfg!(miri) {
            3 * CHUNK as u32 / 2
        } else {
            5 * CHUNK as u32
        };
        let mut keys = Vec::new();
        for i in 0..n {
            let (key, _) = slab
                .insert(Nop::new().inject_result(i as i32).into_entry())
                .ok()
                .unwrap();
            assert_eq!(key, key_of(key), "a key leaves the SQE number clear");
            keys.push(key);
        }
        assert_eq!(slab.in_flight(), n as usize);
        // Not finished yet: the ticket is handed back.
        assert_eq!(slab.take::<Single<Nop>>(keys[0]).err(), Some(true));
        for (i, &key) in keys.iter().enumerate() {
            // A single entry has one SQE: user data with another SQE number names nothing,
            // also when the number carries into the index (255 + 7).
            for sub in [1, 4, 249, 255] {
                assert_eq!(slab.complete(key | sub, 0, 0), Completed::Stale);
            }
            assert_eq!(slab.complete(key, i as i32, 0), Completed::Done);
            assert_eq!(
                slab.complete(key, i as i32, 0),
                Completed::Stale,
                "done once"
            );
        }
        // The ring's own user data names no slot.
        let internal = u64::from(INTERNAL_INDEX) << SUB_BITS;
        assert!(is_internal(internal | 1) && !is_internal(keys[0]));
        assert_eq!(slab.complete(internal, 0, 0), Completed::Stale);
        assert_eq!(slab.complete(internal | 1, 0, 0), Completed::Stale);
        assert_eq!(slab.in_flight(), 0);
        for (i, &key) in keys.iter().enumerate() {
            let out = slab.take::<Single<Nop>>(key).ok().unwrap();
            assert_eq!(out.unwrap(), i as u32);
        }
        // Taken keys are stale, also once their slots are reused.
        let (key, _) = slab.insert(Nop::new().into_entry()).ok().unwrap();
        let last = *keys.last().unwrap();
        assert_eq!(
            key,
            last.wrapping_add(GEN_ONE),
            "the last slot freed is reused first"
        );
        for &k in &keys {
            assert_eq!(slab.take::<Single<Nop>>(k).err(), Some(false));
            assert_eq!(slab.complete(k, 0, 0), Completed::Stale);
        }
        assert_eq!(slab.complete(key, 5, 0), Completed::Done);
        assert_eq!(slab.take::<Single<Nop>>(key).ok().unwrap().unwrap(), 5);
        assert_eq!(
            slab.take::<Single<Nop>>(internal).err(),
            Some(false),
            "checked"
        );
    }

    /// A full slab hands the entry back untouched, and takes entries again once a slot is freed.
    #[test]
    fn full_slab_hands_the_entry_back() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut slab = Slab::new();
        slab.max_chunks = 1;
        let keys: Vec<u64> = (0..CHUNK)
            .map(|_| slab.insert(Multi::<8>::new(&drops)).ok().unwrap().0)
            .collect();
        let Err(back) = slab.insert(Multi::<8>::new(&drops)) else {
            panic!("a slab of one chunk holds {CHUNK} entries")
        };
        assert_eq!((back._heap.len(), drops.load(Ordering::Relaxed)), (16, 0));
        drop(back);
        assert_eq!(slab.in_flight(), CHUNK);
        assert_eq!(slab.complete(keys[5], 1, 0), Completed::Pending);
        assert_eq!(slab.complete(keys[5] | 1, 1, 0), Completed::Done);
        assert_eq!(slab.take::<Multi<8>>(keys[5]).ok(), Some(2));
        let (key, _) = slab.insert(Multi::<8>::new(&drops)).ok().unwrap();
        assert_eq!(
            key,
            keys[5].wrapping_add(GEN_ONE),
            "the freed slot, next generation"
        );
        for key in keys.iter().filter(|&&k| k != keys[5]).chain([&key]) {
            for sub in 0..2 {
                slab.complete(key | sub, 1, 0);
            }
        }
        assert_eq!(slab.in_flight(), 0);
    }

    /// An entry inserted uncommitted is taken back out, and dropped once, when its guard is
    /// dropped without `keep` (a panic while preparing); kept, it stays in flight.
    #[test]
    fn uncommitted_entries_are_taken_back_unless_kept() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut slab = Slab::new();
        let mut slot = slab
            .vacant()
            .unwrap()
            .insert_uncommitted(Multi::<8>::new(&drops));
        let key = slot.key();
        assert_eq!(slot.entry().seen, 0);
        drop(slot);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert_eq!(slab.in_flight(), 0);
        assert!(!slab.is_live(key));
        assert_eq!(slab.complete(key, 1, 0), Completed::Stale);
        let kept = slab
            .vacant()
            .unwrap()
            .insert_uncommitted(Multi::<8>::new(&drops));
        let again = kept.keep();
        assert_eq!(
            again,
            key.wrapping_add(GEN_ONE),
            "the slot, next generation"
        );
        assert_eq!(slab.in_flight(), 1);
        assert_eq!(slab.complete(again, 1, 0), Completed::Pending);
        assert_eq!(slab.complete(again | 1, 1, 0), Completed::Done);
        assert_eq!(slab.take::<Multi<8>>(again).ok(), Some(2));
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    }

    /// A slot's generation wraps around after 2^32 reuses, staying clear of index and state.
    #[test]
    fn generation_wraps() {
        let mut slab = Slab::new();
        let (key, _) = slab.insert(Nop::new().into_entry()).ok().unwrap();
        // Age the slot to the last generation (as 2^32 - 1 reuses would).
        // SAFETY: the slot is live and in flight; only its generation bits change.
        unsafe { (*slab.slot_ptr(key).unwrap()).tag |= !0 << 32 };
        let old = key | (!0 << 32);
        assert_eq!(slab.complete(key, 0, 0), Completed::Stale);
        assert_eq!(slab.complete(old, 3, 0), Completed::Done);
        assert_eq!(slab.take::<Single<Nop>>(old).ok().unwrap().unwrap(), 3);
        let (again, _) = slab.insert(Nop::new().into_entry()).ok().unwrap();
        assert_eq!(again, key, "generation 0 again, same index");
        assert_eq!(slab.take::<Single<Nop>>(old).err(), Some(false));
        assert!(slab.detach::<Single<Nop>>(again));
        assert_eq!(slab.complete(again, 0, 0), Completed::Freed);
    }

    fn multi_entries<const N: usize>() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut slab = Slab::new();
        let mut keys = Vec::new();
        for _ in 0..CHUNK + 3 {
            let (key, _) = slab.insert(Multi::<N>::new(&drops)).ok().unwrap();
            keys.push(key);
        }
        for &key in &keys {
            assert_eq!(slab.complete(key, 1, 0), Completed::Pending);
        }
        // Detach one in flight (dropped when it finishes) and one finished (dropped now).
        let (a, b) = (keys[1], keys[CHUNK + 1]);
        assert!(slab.detach::<Multi<N>>(a));
        assert_eq!(slab.complete(a | 1, 1, 0), Completed::Freed);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert_eq!(slab.complete(b | 1, 1, 0), Completed::Done);
        assert!(slab.detach::<Multi<N>>(b));
        assert_eq!(drops.load(Ordering::Relaxed), 2);
        assert!(!slab.detach::<Multi<N>>(b), "a detached key is dead");
        // Finish and redeem one; leave the rest finished but unredeemed, for Drop.
        let c = keys[2];
        assert_eq!(slab.complete(c | 1, 1, 0), Completed::Done);
        assert_eq!(slab.take::<Multi<N>>(c).ok(), Some(2));
        assert_eq!(drops.load(Ordering::Relaxed), 3);
        for &key in &keys {
            if ![a, b, c].contains(&key) {
                assert_eq!(slab.complete(key | 1, 1, 0), Completed::Done);
            }
        }
        assert_eq!(slab.in_flight(), 0);
        drop(slab);
        assert_eq!(drops.load(Ordering::Relaxed), keys.len());
    }

    #[test]
    fn multi_entries_inline() {
        multi_entries::<8>();
    }

    #[test]
    fn multi_entries_boxed() {
        multi_entries::<{ INLINE }>();
    }

    /// A single-CQE entry without drop glue that is still boxed in its slot: too large (or,
    /// with `A`, too aligned) to be stored inline.
    #[repr(C)]
    struct Boxed<A, const N: usize> {
        words: [u64; N],
        _align: [A; 0],
    }

    impl<A: Send + 'static, const N: usize> crate::op::sealed::Sealed for Boxed<A, N> {}
    // SAFETY: prepares nothing; one SQE, one completion.
    unsafe impl<A: Send + 'static, const N: usize> Entry for Boxed<A, N> {
        type Output = (u64, i32);
        const SQE_POINTS_INTO_SELF: bool = false;
        const SINGLE: bool = true;
        fn sqe_count(&self) -> u32 {
            1
        }
        fn check(&self, _ops: &OpCheck) -> crate::Result<()> {
            Ok(())
        }
        fn prepare(&mut self, _i: u32, _sqe: &mut Sqe) {}
        fn on_cqe(&mut self, _sub: u32, _res: i32, _flags: u32) -> bool {
            true
        }
        fn finish(self) -> (u64, i32) {
            (self.words[N - 1], 0)
        }
        fn finish_with(self, res: i32, _flags: u32) -> (u64, i32) {
            (self.words[N - 1], res)
        }
    }

    /// A boxed entry without drop glue still has its box to free: dropped when it finishes
    /// detached, and when the slab is dropped with it finished. (Under Miri, a box left behind
    /// is a leak, which fails the run.)
    fn boxed_single_entries_are_freed<A: Send + 'static, const N: usize>() {
        assert!(!fits::<Boxed<A, N>>() && !std::mem::needs_drop::<Boxed<A, N>>());
        assert!(
            vtable_of::<Boxed<A, N>>().is_some(),
            "a boxed entry records how to free its box"
        );
        let new = |v| Boxed::<A, N> {
            words: [v; N],
            _align: [],
        };
        let mut slab = Slab::new();
        let (taken, _) = slab.insert(new(1)).ok().unwrap();
        let (detached, _) = slab.insert(new(2)).ok().unwrap();
        let (left, _) = slab.insert(new(3)).ok().unwrap();
        let (detached_done, _) = slab.insert(new(4)).ok().unwrap();
        assert!(slab.detach::<Boxed<A, N>>(detached));
        for key in [taken, detached, left, detached_done] {
            let want = if key == detached {
                Completed::Freed
            } else {
                Completed::Done
            };
            assert_eq!(slab.complete(key, 7, 0), want);
        }
        assert_eq!(slab.take::<Boxed<A, N>>(taken).ok(), Some((1, 7)));
        assert!(slab.detach::<Boxed<A, N>>(detached_done));
        assert_eq!(slab.in_flight(), 0);
        drop(slab);
    }

    #[test]
    fn boxed_single_entries_are_freed_large() {
        boxed_single_entries_are_freed::<u8, { INLINE / 8 + 1 }>();
    }

    #[test]
    fn boxed_single_entries_are_freed_aligned() {
        boxed_single_entries_are_freed::<u128, 1>();
    }

    /// Discards recorded by [`Discarding`]: the results its entries were discarded with.
    static DISCARDED: std::sync::Mutex<Vec<(u64, i32, u32)>> = std::sync::Mutex::new(Vec::new());

    /// A single-CQE entry with no drop glue that asks to be discarded ([`Entry::DISCARDS`]),
    /// as an op whose result names a descriptor the kernel made does.
    struct Discarding(u64);

    impl crate::op::sealed::Sealed for Discarding {}
    // SAFETY: prepares nothing; one SQE, one completion.
    unsafe impl Entry for Discarding {
        type Output = i32;
        const SINGLE: bool = true;
        const DISCARDS: bool = true;
        fn sqe_count(&self) -> u32 {
            1
        }
        fn check(&self, _ops: &OpCheck) -> crate::Result<()> {
            Ok(())
        }
        fn prepare(&mut self, _i: u32, _sqe: &mut Sqe) {}
        fn on_cqe(&mut self, _sub: u32, _res: i32, _flags: u32) -> bool {
            true
        }
        fn finish(self) -> i32 {
            0
        }
        fn finish_with(self, res: i32, _flags: u32) -> i32 {
            res
        }
        fn discard(self, res: i32, flags: u32) {
            DISCARDED.lock().unwrap().push((self.0, res, flags));
        }
    }

    /// A finished entry nobody redeems is discarded with its result, not dropped: detached in
    /// flight (at its completion), detached finished (at once), left in a dropped slab.
    #[test]
    fn unredeemed_entries_are_discarded_with_their_result() {
        assert!(!std::mem::needs_drop::<Discarding>() && fits::<Discarding>());
        assert!(
            vtable_of::<Discarding>().is_some(),
            "it records how to discard"
        );
        let mut slab = Slab::new();
        let (in_flight, _) = slab.insert(Discarding(1)).ok().unwrap();
        let (finished, _) = slab.insert(Discarding(2)).ok().unwrap();
        let (left, _) = slab.insert(Discarding(3)).ok().unwrap();
        let (taken, _) = slab.insert(Discarding(4)).ok().unwrap();
        assert!(slab.detach::<Discarding>(in_flight));
        assert!(
            DISCARDED.lock().unwrap().is_empty(),
            "not before it finishes"
        );
        assert_eq!(slab.complete(in_flight, 10, 1), Completed::Freed);
        assert_eq!(slab.complete(finished, 20, 2), Completed::Done);
        assert!(slab.detach::<Discarding>(finished));
        assert_eq!(slab.complete(left, 30, 3), Completed::Done);
        assert_eq!(slab.complete(taken, 40, 4), Completed::Done);
        assert_eq!(
            slab.take::<Discarding>(taken).ok(),
            Some(40),
            "redeemed, not discarded"
        );
        drop(slab);
        assert_eq!(
            *DISCARDED.lock().unwrap(),
            [(1, 10, 1), (2, 20, 2), (3, 30, 3)]
        );
    }

    /// A slab dropped with an entry in flight leaks that entry (and its chunk) rather than
    /// freeing memory the kernel may still use. (Skipped under Miri, which reports the leak.)
    #[test]
    #[cfg_attr(miri, ignore)]
    fn drop_leaks_what_is_in_flight() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut slab = Slab::new();
        let (key, _) = slab.insert(Multi::<8>::new(&drops)).ok().unwrap();
        let _ = slab.insert(Multi::<8>::new(&drops));
        assert_eq!(slab.complete(key, 2, 0), Completed::Done);
        drop(slab);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "only the finished entry is dropped"
        );
    }
}
