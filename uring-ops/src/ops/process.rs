//! Waiting for child processes: `WAITID`.

use super::define::op;
use super::kinds::SigInfoBuf;
use crate::fd::{IntoTarget, Target};
use crate::op::res_to_io;
use std::io;
use uring_core::sys;

/// Which children a [`WaitId`] waits for (`idtype_t`, `waitid(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    All,
    Pid(u32),
    Pgid(u32),
    Pidfd,
}

/// How a child changed state, from the `siginfo_t` the kernel filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitStatus {
    /// The child's process id (0 with `WNOHANG` when no child had changed state).
    pub pid: u32,
    /// Its real user id.
    pub uid: u32,
    /// What happened (`si_code`): `CLD_EXITED`, `CLD_KILLED`, `CLD_DUMPED`, `CLD_STOPPED`,
    /// `CLD_TRAPPED`, `CLD_CONTINUED`.
    pub code: i32,
    /// Its exit status for `CLD_EXITED`, otherwise the signal.
    pub status: i32,
}

op! {
    /// Waits for a child process to change state (`IORING_OP_WAITID`, Linux 6.7): the
    /// `waitid(2)` of io_uring. By default waits for it to exit (`WEXITED`), and reaps it.
    ///
    /// Owns the `siginfo_t` the kernel fills (on the heap) and, for [`WaitId::pidfd`], a share
    /// of the pidfd until completion. Returns the [`WaitStatus`]; `ECHILD` when there is no
    /// such child (or it was reaped already).
    pub struct WaitId {
        fn with { which: plain(Which), pidfd: file(), info: boxed(SigInfoBuf) }
        set {
            /// `W*` options (`waitid(2)`): `WEXITED`, `WSTOPPED`, `WCONTINUED`, `WNOHANG`,
            /// `WNOWAIT` (leave the child reapable); default `WEXITED`.
            options: i32 = libc::WEXITED,
        }
    }
    opcode = sys::IORING_OP_WAITID;
    prepare(op, sqe) {
        let (idtype, id) = match op.which {
            Which::All => (libc::P_ALL, 0),
            Which::Pid(p) => (libc::P_PID, p as i32),
            Which::Pgid(p) => (libc::P_PGID, p as i32),
            // The pidfd travels in `fd`, as a descriptor number (kept open).
            Which::Pidfd => (libc::P_PIDFD, op.pidfd.raw()),
        };
        sqe.set_fd(id)
            .set_len(idtype)
            .set_file_index(op.options as u32)
            .set_struct2(&mut op.info);
    }
    complete(op, res, _flags) -> io::Result<WaitStatus> {
        res_to_io(res)?;
        let p = std::ptr::addr_of!(op.info.0).cast::<libc::siginfo_t>();
        // SAFETY: the buffer has a `siginfo_t`'s size and alignment (asserted where it is
        // defined) and holds what the kernel filled (integers): `si_pid`, `si_uid` and
        // `si_status` read the child fields of a `SIGCHLD` siginfo, which waitid fills.
        Ok(unsafe {
            WaitStatus {
                pid: (*p).si_pid() as u32,
                uid: (*p).si_uid(),
                code: (*p).si_code,
                status: (*p).si_status(),
            }
        })
    }
    check(op) { op.pidfd.require_descriptor("WaitId", "the pidfd") }
}

impl WaitId {
    fn make(which: Which, pidfd: Target) -> Self {
        Self::with(which, pidfd, SigInfoBuf([0; 128]))
    }

    /// Waits for the child `pid`.
    pub fn pid(pid: u32) -> Self {
        Self::make(Which::Pid(pid), Target::cwd())
    }

    /// Waits for any child in process group `pgid`.
    pub fn pgid(pgid: u32) -> Self {
        Self::make(Which::Pgid(pgid), Target::cwd())
    }

    /// Waits for any child.
    pub fn any() -> Self {
        Self::make(Which::All, Target::cwd())
    }

    /// Waits for the child a pidfd names (`P_PIDFD`, `pidfd_open(2)`), which the op keeps
    /// open.
    pub fn pidfd(pidfd: impl IntoTarget) -> Self {
        Self::make(Which::Pidfd, pidfd.into_target())
    }
}
