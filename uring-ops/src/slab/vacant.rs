//! Putting an entry into a free slot: [`Vacant`], and the guard that takes an entry back out
//! if preparing its SQEs panics ([`Uncommitted`]).

use super::key::*;
use super::storage::*;
use super::Slab;
use crate::op::Entry;
use std::marker::PhantomData;

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

/// A free slot of a slab, found by [`Slab::vacant`].
pub(crate) struct Vacant<'a> {
    /// `slab.free` is not null.
    pub(super) slab: &'a mut Slab,
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
