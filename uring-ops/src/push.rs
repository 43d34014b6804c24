//! The one push path of [`crate::Uring`] and [`crate::Context`]: checking a submission, then
//! moving it into the slab with its SQEs written into a reservation of the SQ. The rings only
//! add what is theirs around it (reserving and committing, and for a context its locks, its
//! tags and submitting at once).

use crate::error::{Error, PushError};
use crate::op::{Entry, OpCheck, Submit};
use crate::slab::{Vacant, MAX_ENTRIES, SUB_BITS};
use uring_core::{Kernel, Reservation};

/// The most SQEs one submission may have: their numbers share the user data's low
/// [`SUB_BITS`] bits with nothing else (a chain has at most [`crate::MAX_LINKS`]).
pub(crate) const MAX_SQES: u32 = 1 << SUB_BITS;

/// The user data of SQE number `sub` of the entry keyed `key` (the key has those bits clear;
/// `sub` is below [`MAX_SQES`], which every push checks).
#[inline]
pub(crate) fn user_data(key: u64, sub: u32) -> u64 {
    debug_assert!(sub < 1 << SUB_BITS);
    key | u64::from(sub)
}

/// Checks a submission against the ring (the kernel's support and the allowlist, the ops' own
/// arguments, at most [`MAX_SQES`] SQEs); returns its number of SQEs. (It takes the entry by
/// reference, so that the push path moves it once, into its slot.)
#[inline(always)]
pub(crate) fn check<E: Entry>(entry: &E, ops: &OpCheck) -> Result<u32, Error> {
    entry.check(ops)?;
    let n = entry.sqe_count();
    if n > MAX_SQES {
        return Err(Error::TooManySqes {
            sqes: n,
            max: MAX_SQES,
        });
    }
    Ok(n)
}

/// Moves `entry` into the free slot `slot` and writes its `n` SQEs into `r` (reserved for
/// them), user data included. Returns the entry's key; the caller commits `r`.
///
/// A panic in the entry's `prepare` (user code) leaves nothing in the slab and nothing
/// committed: the entry is dropped where it is, or taken back out of its slot.
#[inline(always)]
pub(crate) fn fill<E: Entry>(
    r: &mut Reservation<'_, Kernel>,
    slot: Vacant<'_>,
    mut entry: E,
    n: u32,
) -> u64 {
    let key = if E::SQE_POINTS_INTO_SELF {
        // Prepared in place: the SQEs may point into the entry, which is at its final address
        // in the slab by now. A panic in `prepare` drops the guard, which takes the entry back
        // out of its slot.
        let mut slot = slot.insert_uncommitted(entry);
        let e = slot.entry();
        for i in 0..n {
            e.prepare(i, r.get(i).expect("reserved"));
        }
        slot.keep()
    } else {
        // The SQEs name no memory inside the entry, so they may be written from the entry where
        // it is now (in registers, for a small op), before it moves into the slab.
        for i in 0..n {
            entry.prepare(i, r.get(i).expect("reserved"));
        }
        slot.insert(entry).0
    };
    for i in 0..n {
        r.get(i).expect("reserved").set_user_data(user_data(key, i));
    }
    key
}

/// A refusal: the error, and the submission handed back.
#[inline]
pub(crate) fn refused<T: Submit>(error: Error, entry: T::Entry) -> PushError<T> {
    PushError {
        error,
        op: T::from_entry(entry),
    }
}

/// The refusal of a submission because the ring already holds [`MAX_ENTRIES`] of them.
#[cold]
pub(crate) fn slab_full<T: Submit>(entry: T::Entry) -> PushError<T> {
    refused(Error::TooManyOps { limit: MAX_ENTRIES }, entry)
}
