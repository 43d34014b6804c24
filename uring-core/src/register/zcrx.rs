//! Zero-copy receive: a network device's receive queue filling memory of the application's
//! (`IORING_REGISTER_ZCRX_IFQ`, `IORING_REGISTER_ZCRX_CTRL`).
//!
//! Registration only: the refill ring that hands received buffers back to the kernel, and the
//! `RECV_ZC` op that reads from it, are not driven by this crate yet.

use super::Registrar;
use crate::error::{Error, Result};
use std::os::fd::{FromRawFd, OwnedFd};
use uring_sys as sys;

/// Memory that a zero-copy receive queue writes packets into (`struct io_uring_zcrx_area_reg`).
#[derive(Debug, Clone, Copy)]
pub struct ZcrxArea {
    addr: u64,
    len: u64,
    flags: u32,
    dmabuf_fd: u32,
}

impl ZcrxArea {
    /// `len` bytes of the process's memory at `addr` (page-aligned, a multiple of the page
    /// size).
    ///
    /// # Safety
    ///
    /// Once registered, the device and the kernel write into the memory whenever packets
    /// arrive, until the ring is closed (a queue cannot be unregistered): it must stay
    /// allocated, and not be read or written by Rust code as anything but bytes the kernel may
    /// change at any time, until then.
    pub unsafe fn from_raw(addr: *mut u8, len: usize) -> Self {
        ZcrxArea {
            addr: addr as u64,
            len: len as u64,
            flags: 0,
            dmabuf_fd: 0,
        }
    }

    fn to_raw(self) -> sys::io_uring_zcrx_area_reg {
        sys::io_uring_zcrx_area_reg {
            addr: self.addr,
            len: self.len,
            flags: self.flags,
            dmabuf_fd: self.dmabuf_fd,
            ..Default::default()
        }
    }
}

/// What [`Registrar::register_zcrx_ifq`] registers (`struct io_uring_zcrx_ifq_reg`).
#[derive(Debug, Clone, Copy)]
pub struct ZcrxIfqReg {
    if_idx: u32,
    if_rxq: u32,
    rq_entries: u32,
    flags: u32,
    area: ZcrxArea,
}

impl ZcrxIfqReg {
    /// Receive queue `rx_queue` of the network interface `if_index` (as `if_nametoindex`
    /// gives it), writing into `area`, with a refill ring of `rq_entries` entries (a power of
    /// two; the kernel caps it at 32768).
    pub fn new(if_index: u32, rx_queue: u32, rq_entries: u32, area: ZcrxArea) -> Self {
        ZcrxIfqReg {
            if_idx: if_index,
            if_rxq: rx_queue,
            rq_entries,
            flags: 0,
            area,
        }
    }

    /// No network device: data reaches the area by copy (`ZCRX_REG_NODEV`, Linux 7.1); the
    /// interface and queue are ignored.
    pub fn without_device(rq_entries: u32, area: ZcrxArea) -> Self {
        ZcrxIfqReg {
            flags: sys::ZCRX_REG_NODEV,
            ..ZcrxIfqReg::new(0, 0, rq_entries, area)
        }
    }
}

/// A registered zero-copy receive queue, as [`Registrar::register_zcrx_ifq`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZcrxIfq {
    /// Its id, for `RECV_ZC` SQEs and [`Registrar::zcrx_flush_rq`].
    pub id: u32,
    /// Refill ring entries (the kernel's rounding of what was asked).
    pub rq_entries: u32,
    /// Offsets of the refill ring's head, tail and entries in its memory.
    pub rq_head: u32,
    /// See [`ZcrxIfq::rq_head`].
    pub rq_tail: u32,
    /// See [`ZcrxIfq::rq_head`].
    pub rq_entries_offset: u32,
    /// Where to `mmap` the refill ring (on the ring's fd), and its size.
    pub rq_mmap_offset: u64,
    /// See [`ZcrxIfq::rq_mmap_offset`].
    pub rq_size: u64,
    /// The area's token, for refill entries (`rq_area_token`).
    pub area_token: u64,
}

const IFQ: &str = "IORING_REGISTER_ZCRX_IFQ";
const CTRL: &str = "IORING_REGISTER_ZCRX_CTRL";

impl Registrar<'_> {
    /// `IORING_REGISTER_ZCRX_IFQ` (Linux 6.15): has a network receive queue (or, with
    /// [`ZcrxIfqReg::without_device`], none) deliver packets straight into the registered
    /// area, with the refill ring in memory the kernel allocates (mapped by the caller at
    /// [`ZcrxIfq::rq_mmap_offset`]). The ring must be set up with `DEFER_TASKRUN` and `CQE32`,
    /// and the caller needs `CAP_NET_ADMIN`.
    ///
    /// # Errors
    ///
    /// [`Error::Register`] for a refill ring of 0 or more than 32768 entries; from the
    /// kernel: `EPERM` without `CAP_NET_ADMIN`, `EINVAL` for a ring without
    /// `DEFER_TASKRUN`/`CQE32`, bad area or flags, and before Linux 6.15 (or without
    /// `CONFIG_IO_URING_ZCRX`), `ENODEV` for no such interface, `EOPNOTSUPP` or `EINVAL` for a
    /// device or queue without header split and queue management, `EEXIST` for a queue taken.
    ///
    /// # Safety
    ///
    /// As for [`ZcrxArea::from_raw`]: the area is written until the ring is closed.
    pub unsafe fn register_zcrx_ifq(&self, reg: &ZcrxIfqReg) -> Result<ZcrxIfq> {
        if reg.rq_entries == 0 || reg.rq_entries > 32768 {
            return Err(Error::Register {
                op: IFQ,
                why: "a refill ring needs 1 to 32768 entries",
            });
        }
        let mut area = reg.area.to_raw();
        // One page for the ring's header, then 16 bytes per entry, in whole pages.
        let page = 4096u64;
        let size =
            (page + u64::from(reg.rq_entries.next_power_of_two()) * 16).div_ceil(page) * page;
        let mut region = sys::io_uring_region_desc {
            size,
            ..Default::default()
        };
        let mut raw = sys::io_uring_zcrx_ifq_reg {
            if_idx: reg.if_idx,
            if_rxq: reg.if_rxq,
            rq_entries: reg.rq_entries,
            flags: reg.flags,
            area_ptr: (&mut area as *mut sys::io_uring_zcrx_area_reg) as u64,
            region_ptr: (&mut region as *mut sys::io_uring_region_desc) as u64,
            ..Default::default()
        };
        // SAFETY: `raw`, `area` and `region` are live and exclusively borrowed (reserved
        // fields zeroed); the kernel reads them and writes back the id, offsets, region offset
        // and area token. `region` asks for kernel memory (no user address). The area's
        // memory is the caller's promise (above).
        unsafe {
            self.raw(
                IFQ,
                sys::IORING_REGISTER_ZCRX_IFQ,
                (&mut raw as *mut sys::io_uring_zcrx_ifq_reg).cast(),
                1,
            )
        }?;
        Ok(ZcrxIfq {
            id: raw.zcrx_id,
            rq_entries: raw.rq_entries,
            rq_head: raw.offsets.head,
            rq_tail: raw.offsets.tail,
            rq_entries_offset: raw.offsets.rqes,
            rq_mmap_offset: region.mmap_offset,
            rq_size: region.size,
            area_token: area.rq_area_token,
        })
    }

    fn zcrx_ctrl(&self, ctrl: &mut sys::zcrx_ctrl) -> Result<u32> {
        // SAFETY: `ctrl` is a live, exclusively borrowed `zcrx_ctrl` (reserved fields zeroed);
        // the kernel reads it and may write back into it (an exported fd). `nr_args` must be 0.
        unsafe {
            self.raw(
                CTRL,
                sys::IORING_REGISTER_ZCRX_CTRL,
                (ctrl as *mut sys::zcrx_ctrl).cast(),
                0,
            )
        }
    }

    /// `IORING_REGISTER_ZCRX_CTRL` with `ZCRX_CTRL_FLUSH_RQ` (Linux 6.19): has the kernel take
    /// back now the buffers queued in zero-copy receive queue `id`'s refill ring.
    ///
    /// # Errors
    ///
    /// From the kernel: `ENXIO` for no queue `id` on this ring, `EOPNOTSUPP` without
    /// `CONFIG_IO_URING_ZCRX`, `EINVAL` before Linux 6.19.
    pub fn zcrx_flush_rq(&self, id: u32) -> Result<()> {
        let mut ctrl = sys::zcrx_ctrl {
            zcrx_id: id,
            op: sys::ZCRX_CTRL_FLUSH_RQ,
            ..Default::default()
        };
        self.zcrx_ctrl(&mut ctrl).map(drop)
    }

    /// `IORING_REGISTER_ZCRX_CTRL` with `ZCRX_CTRL_EXPORT` (Linux 6.19): a file standing for
    /// zero-copy receive queue `id`, which another ring can import (`ZCRX_REG_IMPORT`) to
    /// share it.
    ///
    /// # Errors
    ///
    /// As for [`Registrar::zcrx_flush_rq`], and `EMFILE` when the fd table is full.
    pub fn zcrx_export(&self, id: u32) -> Result<OwnedFd> {
        let mut ctrl = sys::zcrx_ctrl {
            zcrx_id: id,
            op: sys::ZCRX_CTRL_EXPORT,
            ..Default::default()
        };
        let ret = self.zcrx_ctrl(&mut ctrl)?;
        // The first kernels returned the fd; later ones write it into the argument.
        let fd = if ret > 0 {
            ret
        } else {
            // SAFETY: the union member the kernel writes for an export (all members are
            // plain integers, zeroed above).
            unsafe { ctrl.__bindgen_anon_1.zc_export.zcrx_fd }
        };
        if fd == 0 {
            return Err(Error::os(
                CTRL,
                std::io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        // SAFETY: the kernel installed this fd for us just now (`O_CLOEXEC`); nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}
