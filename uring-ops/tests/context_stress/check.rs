//! Checking a record: counted once, its output redeemed once and right.

use super::{kind_of, payload, previous, Kind, State, KINDS, LEN, TARGETED};
use std::io;
use std::sync::atomic::Ordering::SeqCst;
use uring_ops::ops::{AsyncCancel, LinkTimeoutOutcome, Nop, Read, Timeout};
use uring_ops::ops::{TimeoutFired, Write};
use uring_ops::{Chain, Completion, Completions, Context, Error, Linked, Submit};
/// Redeeming from a record: through the context, or a held [`Completions`].
pub(crate) trait Redeem {
    fn redeem<T: Submit>(&mut self, c: &Completion) -> uring_ops::Result<T::Output>;
}

pub(crate) struct ByContext<'a>(pub(crate) &'a Context);

impl Redeem for ByContext<'_> {
    fn redeem<T: Submit>(&mut self, c: &Completion) -> uring_ops::Result<T::Output> {
        self.0.take::<T>(c)
    }
}

impl Redeem for Completions<'_> {
    fn redeem<T: Submit>(&mut self, c: &Completion) -> uring_ops::Result<T::Output> {
        Completions::redeem::<T>(self, c)
    }
}

/// Redeems `c`'s output as a `T`, and checks that a second take finds nothing.
fn take_once<T: Submit>(r: &mut impl Redeem, c: &Completion) -> T::Output {
    let out = r
        .redeem::<T>(c)
        .unwrap_or_else(|e| panic!("{c:?} ({:?}): take: {e}", kind_of(c.tag())));
    match r.redeem::<T>(c) {
        Err(Error::UnknownTicket) => out,
        Err(e) => panic!("{c:?}: a second take gave {e}"),
        Ok(_) => panic!("{c:?}: redeemed twice"),
    }
}

fn errno<T>(r: &io::Result<T>) -> Option<i32> {
    r.as_ref().err().and_then(io::Error::raw_os_error)
}

/// Counts record `c` (exactly once) and checks its op's output.
pub(crate) fn check(st: &State, c: &Completion, r: &mut impl Redeem) {
    let kind = kind_of(c.tag());
    assert!(
        st.outstanding.lock().unwrap().remove(&c.tag()),
        "{c:?} ({kind:?}): reported twice, or never pushed"
    );
    assert!(!c.more(), "{c:?}: an item record from a single-shot op");
    let targeted = c.tag() & TARGETED != 0;
    // A targeted op ended by its cancel (`ECANCELED`) or normally, as checked below.
    let mut cancelled = false;
    match kind {
        Kind::Nop => {
            assert_eq!(take_once::<Nop>(r, c).unwrap(), 0, "{c:?}");
            assert_eq!(c.res(), 0, "{c:?}");
        }
        Kind::NopDetached => {
            assert!(
                matches!(r.redeem::<Nop>(c), Err(Error::UnknownTicket)),
                "{c:?}: a detached op left something to take"
            );
            assert_eq!(c.res(), 0, "{c:?}");
        }
        Kind::Timeout => match take_once::<Timeout>(r, c) {
            Ok(TimeoutFired::Expired) => assert_eq!(c.res(), -libc::ETIME, "{c:?}"),
            e if targeted && errno(&e) == Some(libc::ECANCELED) => cancelled = true,
            other => panic!("{c:?}: timeout: {other:?}"),
        },
        Kind::PipeRead => {
            let (res, buf) = take_once::<Read<Vec<u8>>>(r, c);
            match res {
                Ok(n) => {
                    assert_eq!((n, &buf[..]), (LEN, &payload(c.tag())[..]), "{c:?}");
                    assert_eq!(c.res(), LEN as i32, "{c:?}");
                }
                Err(e) if targeted && e.raw_os_error() == Some(libc::ECANCELED) => {
                    assert!(buf.is_empty(), "{c:?}: a cancelled read filled {buf:?}");
                    cancelled = true;
                }
                Err(e) => panic!("{c:?}: pipe read: {e}"),
            }
        }
        Kind::PipeWrite => {
            let (res, buf) = take_once::<Write<Vec<u8>>>(r, c);
            match res {
                Ok(n) => assert_eq!(n, LEN, "{c:?}"),
                // Its read was cancelled, and its op (the pipe's only read end) dropped first.
                Err(e) if targeted && e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(e) => panic!("{c:?}: pipe write: {e}"),
            }
            assert_eq!(buf, payload(previous(c.tag())), "{c:?}: the write's buffer");
        }
        Kind::Cancel => {
            // Found and cancelled, already gone, or already running (then it ends on its own).
            let res = take_once::<AsyncCancel>(r, c);
            assert!(
                matches!(res, Ok(0)) || matches!(errno(&res), Some(libc::ENOENT | libc::EALREADY)),
                "{c:?}: cancel: {res:?}"
            );
        }
        Kind::ChainWriteRead => {
            let (w, rd) = take_once::<Chain<(Write<Vec<u8>>, Read<Vec<u8>>)>>(r, c);
            let (wres, wbuf) = w
                .ran()
                .unwrap_or_else(|| panic!("{c:?}: the write never ran"));
            assert_eq!(
                (wres.unwrap(), &wbuf[..]),
                (LEN, &payload(c.tag())[..]),
                "{c:?}"
            );
            let (rres, rbuf) = rd
                .ran()
                .unwrap_or_else(|| panic!("{c:?}: the read never ran"));
            assert_eq!(
                (rres.unwrap(), &rbuf[..]),
                (LEN, &payload(c.tag())[..]),
                "{c:?}"
            );
        }
        Kind::ChainNops => {
            let (a, b, d) = take_once::<Chain<(Nop, Nop, Nop)>>(r, c);
            for (i, l) in [a, b, d].into_iter().enumerate() {
                assert!(matches!(l, Linked::Ran(Ok(0))), "{c:?}: link {i}: {l:?}");
            }
        }
        Kind::GuardedRead => {
            let (rd, lt) = take_once::<Chain<(Read<Vec<u8>>, uring_ops::ops::LinkTimeout)>>(r, c);
            // Nobody writes the pipe: the read ends cancelled, by its timer or by the cancel.
            let (res, buf) = rd.into_inner();
            assert_eq!(errno(&res), Some(libc::ECANCELED), "{c:?}: read: {res:?}");
            assert!(buf.is_empty(), "{c:?}: {buf:?}");
            let lt = lt.into_inner();
            if targeted {
                // The cancel and the timer race: the timer fired and cancelled the read, or
                // found it cancelled already (gone, or being cancelled), or was disarmed
                // because the read ended first.
                assert!(
                    matches!(
                        lt,
                        Ok(LinkTimeoutOutcome::Fired | LinkTimeoutOutcome::Disarmed)
                    ) || matches!(errno(&lt), Some(libc::ENOENT | libc::EALREADY)),
                    "{c:?}: link timeout: {lt:?}"
                );
                cancelled = !matches!(lt, Ok(LinkTimeoutOutcome::Fired));
            } else {
                // The pushing thread is alive: the kernel cancels the read when the timer
                // fires (see "Threads" on `Context` for an exited thread).
                assert!(
                    matches!(lt, Ok(LinkTimeoutOutcome::Fired)),
                    "{c:?}: link timeout: {lt:?}"
                );
            }
        }
    }
    if cancelled {
        st.cancelled.fetch_add(1, SeqCst);
    }
    let i = KINDS.iter().position(|k| *k == kind).unwrap();
    st.by_kind[i].fetch_add(1, SeqCst);
    st.reaped.fetch_add(1, SeqCst);
}
