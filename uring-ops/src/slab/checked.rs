//! Redeeming by a key that comes with no proof of its type (a completion record): the entry's
//! type is checked at run time.

use super::key::*;
use super::storage::*;
use super::{read_out_slot, Slab};
use crate::error::Error;
use crate::op::Entry;

impl Slab {
    /// The slot of live key `key` (in flight or finished, not detached) if it surely holds an
    /// `E`: for keys that come with no proof of their type (a completion record, which the
    /// caller may have altered, or taken to another ring).
    fn checked_slot<E: Entry>(&mut self, key: u64) -> Result<&mut Slot, Error> {
        if !self.is_live(key) {
            return Err(Error::UnknownTicket);
        }
        // SAFETY: a slot of a live chunk (`is_live` found it); `&mut self` excludes every
        // other access to it.
        let slot = unsafe { &mut *self.slot_ptr(key).ok_or(Error::UnknownTicket)? };
        if !surely_holds::<E>(slot) {
            return Err(wrong_type::<E>(slot));
        }
        Ok(slot)
    }

    /// Takes the finished entry keyed `key` if it is an `E` (checked at run time, so `key` may
    /// come from anywhere).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`] if `key` names no live entry; [`Error::NotFinished`] if it is
    /// in flight; [`Error::WrongType`] if it is not an `E` (or may not be: one recorded
    /// without its type, which only untagged entries are).
    #[inline]
    pub(crate) fn take_checked<E: Entry>(&mut self, key: u64) -> Result<E::Output, Error> {
        // The common case in one compare of the tag and one of the vtable: a finished entry
        // of type `E` keyed exactly `key` (with no SQE number or state bits, which would make
        // the sum name another tag).
        if let Some(p) = self.slot_ptr(key) {
            // SAFETY: a slot of a live chunk (bounds-checked); `&mut self` excludes every
            // other access to it.
            let slot = unsafe { &mut *p };
            if key_of(key) == key
                && slot.tag
                    == key.wrapping_add(QUIET | if E::SINGLE { SINGLE | DONE } else { DONE })
                && is_vtable_of::<E>(slot)
            {
                let (e, res, flags) = read_out_slot::<E>(slot, key);
                self.release(p, slot, key);
                return Ok(if E::SINGLE {
                    e.finish_with(res, flags)
                } else {
                    e.finish()
                });
            }
        }
        self.take_checked_slow::<E>(key)
    }

    /// [`Slab::take_checked`] for every case but the common one: the errors, and a type told
    /// by its `TypeId` (the vtable's address may differ between codegen units).
    #[inline(never)]
    fn take_checked_slow<E: Entry>(&mut self, key: u64) -> Result<E::Output, Error> {
        let slot = self.checked_slot::<E>(key)?;
        if slot.tag & STATE_MASK != DONE {
            return Err(Error::NotFinished);
        }
        // SAFETY: the key is this slab's (it names a live slot, found above with the bounds
        // check), and the slot holds an `E` (checked), which is what `take_issued` relies on.
        match unsafe { self.take_issued::<E>(key) } {
            Ok(out) => Ok(out),
            Err(_) => unreachable!("a finished entry of the right type is taken"),
        }
    }

    /// The live entry (in flight or finished, not detached) keyed `key`, if it is an `E`
    /// (checked at run time; as for [`Slab::get_mut`], the kernel may still use an in-flight
    /// entry's owned memory).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTicket`] or [`Error::WrongType`], as for [`Slab::take_checked`].
    pub(crate) fn get_checked<E: Entry>(&mut self, key: u64) -> Result<&mut E, Error> {
        let slot = self.checked_slot::<E>(key)?;
        // SAFETY: the slot is live and holds an `E` (checked), not otherwise borrowed.
        Ok(unsafe { &mut *entry_ptr::<E>(&mut slot.storage) })
    }
}
