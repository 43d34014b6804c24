//! Keys: what a slot's tag and an SQE's user data hold, bit by bit, and the slot states.

/// The low bits of user data that number the SQEs of one entry (a chain has up to 256); a key
/// has them clear. The slot index is above them, up to bit 32; the generation above that.
pub(crate) const SUB_BITS: u32 = 8;
pub(super) const SUB_MASK: u64 = (1 << SUB_BITS) - 1;
pub(super) const CHUNK_SHIFT: u32 = 6;
pub(super) const CHUNK: usize = 1 << CHUNK_SHIFT;
/// Slot indices are 24 bits (user data bits 8..32): at most this many chunks (16,777,152
/// slots). The index with every bit set, in a chunk never made, is the ring's own
/// ([`INTERNAL_INDEX`]).
pub(super) const MAX_CHUNKS: usize = (1 << (32 - SUB_BITS - CHUNK_SHIFT)) - 1;
/// The most entries a slab holds at once.
pub(crate) const MAX_ENTRIES: usize = MAX_CHUNKS * CHUNK;
/// A slot index no slot has: user data with it names the ring's own SQEs (wake-ups,
/// cancel-all), which completion routing finds stale without touching a slot.
pub(crate) const INTERNAL_INDEX: u32 = (1 << (32 - SUB_BITS)) - 1;
/// One generation step: the generation is the user data's high 32 bits, and wraps.
pub(super) const GEN_ONE: u64 = 1 << 32;

/// Slot states, in the low two bits of a slot's tag; bit 2 marks an [`Entry::SINGLE`] entry;
/// the key is above them.
///
/// `IN_FLIGHT` is the largest state, so that `SINGLE | IN_FLIGHT` is the largest low byte any
/// tag has: the completion fast path (`tag == ud + (SINGLE | IN_FLIGHT)`) then matches only
/// that state, since for every other tag the user data it would need (`tag - 7`) borrows into
/// the index bits and so names another slot.
pub(super) const FREE: u64 = 0;
/// Finished; the entry waits to be redeemed.
pub(super) const DONE: u64 = 1;
/// The kernel may still use the entry; it is dropped when it finishes (its key is gone).
pub(super) const DETACHED: u64 = 2;
/// The kernel may still use the entry; it is kept for redemption.
pub(super) const IN_FLIGHT: u64 = 3;
pub(super) const STATE_MASK: u64 = 3;
/// The entry is [`Entry::SINGLE`]: its result is kept in the slot.
pub(super) const SINGLE: u64 = 4;
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
pub(super) fn pack_result(res: i32, flags: u32) -> u64 {
    u64::from(res as u32) | (u64::from(flags) << 32)
}

#[inline]
pub(super) fn unpack_result(result: u64) -> (i32, u32) {
    (result as u32 as i32, (result >> 32) as u32)
}
