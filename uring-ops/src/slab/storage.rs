//! Type-erased storage: an entry of any type in a slot, inline when it fits, boxed otherwise,
//! behind a small table of functions for that type.

use super::key::*;
use crate::op::{Entry, Progress};
use std::any::TypeId;
use std::mem::{align_of, size_of, MaybeUninit};

/// Bytes of inline storage per slot: what makes a slot 256 bytes (see [`SLOT_SIZE`]).
pub(crate) const INLINE: usize = 224;
/// A slot's size: four cache lines, aligned, with the slot's bookkeeping and the first 32
/// bytes of its entry in the first.
pub(super) const SLOT_SIZE: usize = 256;

/// Records completion `(sub, res, flags)` in the entry at the storage.
pub(super) type OnCqe = unsafe fn(*mut Storage, u32, i32, u32) -> Progress;

/// [`Entry::link_to_cancel`] of the entry at the storage.
pub(super) type LinkToCancel = unsafe fn(*mut Storage, u32, i32) -> Option<u32>;

pub(super) struct VTable {
    /// Disposes of a finished entry nobody will redeem ([`Entry::discard`]), given the result
    /// the slot kept.
    pub(super) discard: unsafe fn(*mut Storage, i32, u32),
    /// `None` for [`Entry::SINGLE`] entries: the slot keeps the result itself.
    pub(super) on_cqe: Option<OnCqe>,
    /// Asked when `on_cqe` says the entry needs more completions.
    pub(super) link_to_cancel: LinkToCancel,
    /// [`Entry::drop_items`] of the entry at the storage: it was detached.
    pub(super) drop_items: unsafe fn(*mut Storage),
    /// The entry's type, for redeeming by key ([`super::Slab::take_checked`]), where only a
    /// run-time check stands between a caller's claim and the slot's contents.
    pub(super) type_id: fn() -> TypeId,
    /// The entry's type name, for [`crate::Error::WrongType`].
    pub(super) type_name: fn() -> &'static str,
}

pub(super) type Storage = MaybeUninit<[u64; INLINE / 8]>;

pub(super) const fn fits<E>() -> bool {
    size_of::<E>() <= INLINE && align_of::<E>() <= align_of::<u64>()
}

/// # Safety
///
/// `s` holds a live `E` (inline or boxed, as `fits::<E>()` says).
#[inline]
pub(super) unsafe fn entry_ptr<E>(s: *mut Storage) -> *mut E {
    if fits::<E>() {
        s.cast::<E>()
    } else {
        // SAFETY: the caller guarantees the storage holds the box's pointer.
        unsafe { s.cast::<*mut E>().read() }
    }
}

pub(super) unsafe fn discard_entry<E: Entry>(s: *mut Storage, res: i32, flags: u32) {
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

pub(super) unsafe fn on_cqe_entry<E: Entry>(
    s: *mut Storage,
    sub: u32,
    res: i32,
    flags: u32,
) -> Progress {
    // SAFETY: the caller guarantees `s` holds a live `E`, not otherwise borrowed.
    unsafe { (*entry_ptr::<E>(s)).on_cqe(sub, res, flags) }
}

pub(super) unsafe fn drop_items_entry<E: Entry>(s: *mut Storage) {
    // SAFETY: the caller guarantees `s` holds a live `E`, not otherwise borrowed.
    unsafe { (*entry_ptr::<E>(s)).drop_items() }
}

pub(super) unsafe fn link_to_cancel_entry<E: Entry>(
    s: *mut Storage,
    sub: u32,
    res: i32,
) -> Option<u32> {
    // SAFETY: the caller guarantees `s` holds a live `E`, not mutably borrowed.
    unsafe { (*entry_ptr::<E>(s)).link_to_cancel(sub, res) }
}

/// Whether an untagged `E` may be recorded without a vtable: a [`Entry::SINGLE`] entry
/// without drop glue stored inline and nothing to discard needs none (the slot keeps its
/// result; nothing to drop). An entry that does not fit inline is boxed, and its box must be
/// freed: it keeps its table. Recording `None` is one store of a constant, where a table is an
/// address computed and stored. A tagged entry always records its table: its type must be
/// checked when it is redeemed by key.
#[inline]
pub(super) const fn needs_no_vtable<E: Entry>() -> bool {
    E::SINGLE && !std::mem::needs_drop::<E>() && !E::DISCARDS && fits::<E>()
}

/// The vtable a slot holding an `E` records (see [`needs_no_vtable`]).
#[inline]
pub(super) fn vtable_of<E: Entry>(tagged: bool) -> Option<&'static VTable> {
    if !tagged && needs_no_vtable::<E>() {
        None
    } else {
        Some(&Table::<E>::VTABLE)
    }
}

/// Whether the slot's vtable says it holds an `E`: exactly, when it has one (a pointer compare
/// first, the type ids when the same table was emitted twice); without one, whether `E` is a
/// type that may go without (a debug check only: keys redeemed this way come with a ticket).
#[inline]
pub(super) fn holds<E: Entry>(slot: &Slot) -> bool {
    match slot.vtable {
        Some(v) => std::ptr::eq(v, &Table::<E>::VTABLE) || (v.type_id)() == TypeId::of::<E>(),
        None => needs_no_vtable::<E>(),
    }
}

/// [`crate::Error::WrongType`]: an `E` was asked of `slot`, which holds something else.
#[cold]
pub(super) fn wrong_type<E: Entry>(slot: &Slot) -> crate::Error {
    crate::Error::WrongType {
        expected: std::any::type_name::<E>(),
        found: slot
            .vtable
            .map_or("an untagged op, whose type is not recorded", |v| {
                (v.type_name)()
            }),
    }
}

/// Whether the slot's vtable is `E`'s own (the same address): it surely holds an `E`. (Not
/// conversely: a vtable may be instantiated once per codegen unit; see [`holds`].)
#[inline]
pub(super) fn is_vtable_of<E: Entry>(slot: &Slot) -> bool {
    slot.vtable
        .is_some_and(|v| std::ptr::eq(v, &Table::<E>::VTABLE))
}

/// Whether the slot's vtable says it holds an `E`, with no doubt left: it must have one.
#[inline]
pub(super) fn surely_holds<E: Entry>(slot: &Slot) -> bool {
    slot.vtable.is_some() && holds::<E>(slot)
}

pub(super) struct Table<E>(std::marker::PhantomData<E>);
impl<E: Entry> Table<E> {
    const VTABLE: VTable = VTable {
        discard: discard_entry::<E>,
        on_cqe: if E::SINGLE {
            None
        } else {
            Some(on_cqe_entry::<E>)
        },
        link_to_cancel: link_to_cancel_entry::<E>,
        drop_items: drop_items_entry::<E>,
        type_id: TypeId::of::<E>,
        type_name: std::any::type_name::<E>,
    };
}

#[repr(C, align(64))]
pub(super) struct Slot {
    /// The slot's current key (generation and index) with its state in the low bits.
    pub(super) tag: u64,
    /// The next free slot while this one is free; the caller's tag while it holds a tagged
    /// entry.
    pub(super) link: Link,
    /// The result of a [`Entry::SINGLE`] entry: `res` in the low half, the CQE flags in the
    /// high half (one word, so that it is copied with one load and one store).
    pub(super) result: u64,
    pub(super) vtable: Option<&'static VTable>,
    pub(super) storage: Storage,
}

/// A free slot's successor on the free list, or a live slot's tag: the two are never needed at
/// once, so they share a word.
#[derive(Clone, Copy)]
pub(super) union Link {
    /// While the slot is free: the next free slot (null at the end of the list).
    pub(super) next_free: *mut Slot,
    /// While the slot holds an entry pushed with a tag: the tag.
    pub(super) tag: u64,
}

const _: () = assert!(size_of::<Slot>() == SLOT_SIZE && SLOT_SIZE.is_power_of_two());
const _: () = assert!(INTERNAL_INDEX as usize >= MAX_ENTRIES);
