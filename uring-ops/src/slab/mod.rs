//! Where in-flight submissions live: a slab of slots that never move.
//!
//! Each slot stores one [`Entry`] of any type, inline when it fits ([`INLINE`] bytes), boxed
//! otherwise, behind a small table of functions for that type. Slots are allocated in chunks
//! that are never reallocated, so an entry's address is stable from `prepare` until its
//! completion: ops may hand the kernel pointers into themselves (a timespec, an iovec array).
//!
//! The key of a slot is its index plus a generation that changes on every reuse, so a stale or
//! duplicated key can never reach a live entry. A slot is freed through its key (taking or
//! detaching, by ticket or by completion record), and a slot whose generation would wrap is
//! retired rather than reused, so a key never comes to name a later entry: while a ticket
//! exists, its slot holds the entry it was issued for or is free. A ticket's entry type is
//! therefore checked only in debug builds; a record's, which may come from anywhere, always.
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

mod checked;
mod key;
mod records;
mod storage;
mod vacant;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

pub(crate) use key::{is_internal, key_of, slot_index, INTERNAL_INDEX, MAX_ENTRIES, SUB_BITS};
pub(crate) use vacant::Vacant;

use crate::op::{Entry, Progress};
use crate::uring::WAKE;
use key::*;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use storage::*;
use uring_core::{Backend, Batch};

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
    /// The records of tagged entries' completions, oldest first, until handed out
    /// ([`Slab::next_completion`]). Reused: it allocates only to grow.
    done: records::Records,
    /// The id of the ring the slab belongs to, which its records carry.
    ring: u64,
    /// Completions with the user data [`WAKE`] seen (wrapping): a context's wake-ups.
    wakes: u64,
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

/// Moves the `E` out of a live slot keyed `key`; the caller frees the slot at once
/// ([`Slab::release`]).
#[inline]
fn read_out_slot<E: Entry>(slot: &mut Slot, key: u64) -> (E, i32, u32) {
    debug_assert_eq!(key_of(slot.tag), key);
    debug_assert!(holds::<E>(slot));
    // SAFETY: the slot holds a live `E`; it is moved out once and the slot freed by the caller.
    let e = unsafe {
        let p = entry_ptr::<E>(&mut slot.storage);
        if fits::<E>() {
            p.read()
        } else {
            *Box::from_raw(p)
        }
    };
    let (res, flags) = unpack_result(slot.result);
    (e, res, flags)
}

impl Slab {
    /// Frees slot `p` (`slot`), keyed `key`, whose entry is gone: its tag becomes its next key
    /// (state and `SINGLE` bits zero, which `insert` relies on; the generation one up), and it
    /// goes on the free list. Its stale vtable is never read: every reader checks the state
    /// first.
    ///
    /// Unless the generation would wrap: a ticket may outlive its entry (the entry was taken
    /// through its completion record), and after 2^32 reuses the slot's key would be that
    /// ticket's again, naming an entry of any type. Such a slot is retired instead, never
    /// used again (one slot per 2^32 uses of it).
    #[inline]
    fn release(&mut self, p: *mut Slot, slot: &mut Slot, key: u64) {
        let next = key.wrapping_add(GEN_ONE);
        slot.tag = next;
        if next < GEN_ONE {
            slot.link = Link {
                next_free: ptr::null_mut(),
            };
            return;
        }
        slot.link = Link {
            next_free: self.free,
        };
        self.free = p;
    }

    /// An empty slab for the ring with id `ring`.
    pub(crate) fn new(ring: u64) -> Self {
        Slab {
            chunks: Vec::new(),
            slots: Vec::new(),
            free: ptr::null_mut(),
            in_flight: 0,
            max_chunks: MAX_CHUNKS,
            to_cancel: Vec::new(),
            done: records::Records::default(),
            ring,
            wakes: 0,
        }
    }

    /// The id of the ring the slab belongs to.
    #[inline]
    pub(crate) fn ring_id(&self) -> u64 {
        self.ring
    }

    /// Wake-up completions ([`WAKE`]) seen so far (wrapping).
    #[inline]
    pub(crate) fn wakes(&self) -> u64 {
        self.wakes
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
                link: Link {
                    next_free: ptr::null_mut(),
                },
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
                (*first.add(i)).link = Link {
                    next_free: if i + 1 < CHUNK {
                        first.add(i + 1)
                    } else {
                        self.free
                    },
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
        Some(Vacant {
            slab: self,
            tag: None,
        })
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
        let (e, _, _) = read_out_slot::<E>(slot, key);
        self.release(p, slot, key);
        self.in_flight -= 1;
        drop(e);
    }

    /// Records a completion with user data `ud` (the SQE's key and number) for the entry it
    /// names, and queues its record if the entry is tagged; [`Completed::Stale`] when it names
    /// no live entry (a slot's key must match whole, and an [`Entry::SINGLE`] entry takes only
    /// SQE number 0).
    #[inline]
    pub(crate) fn complete(&mut self, ud: u64, res: i32, flags: u32) -> Completed {
        let Some(p) = self.slot_ptr(ud) else {
            return self.complete_slow(ud, res, flags);
        };
        // SAFETY: a slot of a live chunk; `&mut self` excludes every other access to it.
        let slot = unsafe { &mut *p };
        // Fast path: an untagged single-CQE entry kept for redemption. The sum equals the tag
        // only when the slot is that (see `FAST`) and `ud` is its key exactly: SQE number 0 (a
        // number of 241 or more carries into the index, which then names another slot).
        if slot.tag == ud.wrapping_add(FAST) {
            slot.result = pack_result(res, flags);
            slot.tag = ud.wrapping_add(QUIET | SINGLE | DONE);
            self.in_flight -= 1;
            return Completed::Done;
        }
        self.complete_slow(ud, res, flags)
    }

    /// Records every completion of `batch`, as [`Slab::complete`] does for each, for a caller
    /// that needs nothing back from them. Returns how many there were.
    #[inline(always)]
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
                if slot.tag == ud.wrapping_add(FAST) {
                    slot.result = pack_result(cqe.raw_result(), cqe.raw_flags());
                    slot.tag = ud.wrapping_add(QUIET | SINGLE | DONE);
                    continue;
                }
                // A tagged single-CQE entry: as in `complete_slow`, without the call.
                if slot.tag == ud.wrapping_add(SINGLE | IN_FLIGHT) && ud & SUB_MASK == 0 {
                    let (res, flags) = (cqe.raw_result(), cqe.raw_flags());
                    slot.result = pack_result(res, flags);
                    slot.tag = ud.wrapping_add(QUIET | SINGLE | DONE);
                    // SAFETY: the slot held a tagged entry in flight (`QUIET` clear): its
                    // link is the tag.
                    let tag = unsafe { slot.link.tag };
                    self.record(ud, tag, res, flags, None);
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

    /// Everything but the fast path: a tagged single-CQE entry first (its own short path),
    /// then entries of several completions, detached ones, stale user data and wake-ups.
    #[inline(never)]
    fn complete_slow(&mut self, ud: u64, res: i32, flags: u32) -> Completed {
        let Some(p) = self.slot_ptr(ud) else {
            if ud == WAKE {
                self.wakes = self.wakes.wrapping_add(1);
            }
            return Completed::Stale;
        };
        // SAFETY: a slot of a live chunk; `&mut self` excludes every other access to it.
        let slot = unsafe { &mut *p };
        // A tagged single-CQE entry kept for redemption: its tag is `ud + (SINGLE |
        // IN_FLIGHT)` with SQE number 0 and for nothing else (a `QUIET` tag would need a
        // nonzero number; a lower state borrows into the index).
        if slot.tag == ud.wrapping_add(SINGLE | IN_FLIGHT) && ud & SUB_MASK == 0 {
            slot.result = pack_result(res, flags);
            // `QUIET` from now on: the record is queued, nothing more will be reported, and
            // a finished entry has one tag whether it was tagged or not.
            slot.tag = ud.wrapping_add(QUIET | SINGLE | DONE);
            // SAFETY: the slot holds a tagged entry (`QUIET` clear, in flight): its link is
            // the tag.
            let tag = unsafe { slot.link.tag };
            self.in_flight -= 1;
            self.record(ud, tag, res, flags, None);
            return Completed::Done;
        }
        let (key, sub) = (key_of(ud), (ud & SUB_MASK) as u32);
        let state = slot.tag & STATE_MASK;
        let kind = slot.tag & (SINGLE | QUIET);
        if key_of(slot.tag) != key
            || !(state == IN_FLIGHT || state == DETACHED)
            || (kind & SINGLE != 0 && sub != 0)
        {
            return Completed::Stale;
        }
        // The union is read only for a tagged slot, whose link holds the tag.
        let tag = if kind & QUIET == 0 {
            // SAFETY: the slot is live (in flight or detached) and tagged: its link is its tag.
            Some(unsafe { slot.link.tag })
        } else {
            None
        };
        match slot.vtable.and_then(|vt| Some((vt, vt.on_cqe?))) {
            None => slot.result = pack_result(res, flags),
            Some((vt, on_cqe)) => {
                // SAFETY: the slot is in flight, so it holds a live entry of the vtable's type.
                let progress = unsafe { on_cqe(&mut slot.storage, sub, res, flags) };
                if progress != Progress::Done {
                    // SAFETY: as above; the entry is not borrowed any more.
                    if let Some(other) = unsafe { (vt.link_to_cancel)(&mut slot.storage, sub, res) }
                    {
                        self.to_cancel.push(key | u64::from(other));
                    }
                    if let Progress::Item(n) = progress {
                        if state == DETACHED {
                            // Nobody will take the items of a detached op: drop each as it
                            // comes (an accepted socket is closed now, not when the op ends).
                            // SAFETY: the slot holds a live entry of the vtable's type, not
                            // borrowed any more.
                            unsafe { (vt.drop_items)(&mut slot.storage) };
                        } else if let Some(tag) = tag {
                            self.record(key, tag, res, flags, Some(n));
                        }
                    }
                    return Completed::Pending;
                }
            }
        }
        self.in_flight -= 1;
        if let Some(tag) = tag {
            self.record(key, tag, res, flags, None);
        }
        if state == IN_FLIGHT {
            // `QUIET`: see the tagged single entry above.
            slot.tag = key | kind | QUIET | DONE;
            return Completed::Done;
        }
        // Detached: the entry finished, the kernel no longer uses it; dispose of it once (an
        // entry recorded without a vtable has nothing to drop or discard).
        if let Some(vt) = slot.vtable {
            // SAFETY: the slot holds a live, finished entry of the vtable's type.
            unsafe { (vt.discard)(&mut slot.storage, res, flags) };
        }
        slot.vtable = None;
        self.release(p, slot, key);
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
        // `key` has its low bits clear: an add (one `lea`) sets the state. (A finished entry's
        // tag has `QUIET` set, tagged or not.)
        if slot.tag != key.wrapping_add(QUIET | if E::SINGLE { SINGLE | DONE } else { DONE }) {
            return Err(key_of(slot.tag) == key && slot.tag & STATE_MASK == IN_FLIGHT);
        }
        let (e, res, flags) = read_out_slot::<E>(slot, key);
        self.release(p, slot, key);
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
                let (e, res, flags) = read_out_slot::<E>(slot, key);
                // On the free list before the entry is discarded, so that a panic in its `Drop`
                // does not lose the slot.
                self.release(p, slot, key);
                e.discard(res, flags);
            }
            IN_FLIGHT => {
                slot.tag = key | (slot.tag & (SINGLE | QUIET)) | DETACHED;
                // The items it made so far are nobody's now (later ones are dropped as they
                // come: see `complete_slow`).
                if let Some(vt) = slot.vtable {
                    // SAFETY: the slot holds a live entry of the vtable's type; `drop_items`
                    // touches no memory an SQE names.
                    unsafe { (vt.drop_items)(&mut slot.storage) };
                }
            }
            _ => return false,
        }
        true
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
