//! Sets up a ring with the raw syscalls, prints what the kernel offers, and pushes one NOP
//! through the rings by hand.
//!
//! ```sh
//! cargo run -p uring-sys --example probe -- [--entries N]
//! ```

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitCode;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use uring_sys::*;

const USAGE: &str = "usage: probe [--entries N]";

const HELP: &str = "\
Sets up an io_uring instance with the raw syscalls, prints the ring sizes and the features and
opcodes the running kernel supports, and pushes one NOP through the rings by hand.

options:
  --entries N    SQ entries to ask for, 1 to 32768 (default 4; the kernel rounds up to a
                 power of two)
  -h, --help     print this help";

/// What the command line asks for: the SQ entries, or help.
fn parse_args() -> Result<Option<u32>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut entries = 4;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("entries") => {
                let value = parser.value()?;
                let text = value.to_string_lossy();
                entries = text
                    .parse()
                    .ok()
                    .filter(|n| (1..=32768).contains(n))
                    .ok_or_else(|| {
                        format!("--entries {text}: expected a number from 1 to 32768")
                    })?;
            }
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(entries))
}

fn main() -> ExitCode {
    let entries = match parse_args() {
        Ok(Some(entries)) => entries,
        Ok(None) => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("probe: {e}\n{USAGE}\n(probe --help for more)");
            return ExitCode::from(2);
        }
    };
    match probe(entries) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(entries: u32) -> io::Result<()> {
    let mut p = io_uring_params::default();
    let ring = io_uring_setup(entries, &mut p)
        .map_err(|e| io::Error::new(e.kind(), format!("io_uring_setup({entries}): {e}")))?;
    println!(
        "ring fd {}: {} SQ entries, {} CQ entries",
        ring.as_raw_fd(),
        p.sq_entries,
        p.cq_entries
    );
    let feats: Vec<&str> = feature_names(p.features).collect();
    println!("features 0x{:x}: {}", p.features, feats.join(" "));

    // Probe: which opcodes this kernel supports.
    const N: usize = 256;
    let mut buf =
        vec![0u64; (size_of::<io_uring_probe>() + N * size_of::<io_uring_probe_op>()) / 8];
    // SAFETY: `buf` is 8-aligned and writable for the header plus N entries, as nr_args says.
    unsafe {
        io_uring_register(
            ring.as_fd(),
            IORING_REGISTER_PROBE,
            buf.as_mut_ptr().cast(),
            N as u32,
        )?
    };
    // SAFETY: the kernel filled the header and `ops_len` entries after it, inside `buf`.
    let ops = unsafe {
        let hdr = &*(buf.as_ptr() as *const io_uring_probe);
        std::slice::from_raw_parts(
            buf.as_ptr().add(2) as *const io_uring_probe_op,
            hdr.ops_len as usize,
        )
    };
    let (mut yes, mut no) = (Vec::new(), Vec::new());
    for op in ops {
        let name = opcode_name(op.op);
        if op.flags as u32 & IO_URING_OP_SUPPORTED != 0 {
            yes.push(name)
        } else {
            no.push(name)
        }
    }
    println!("kernel supports {} opcodes: {}", yes.len(), yes.join(" "));
    if !no.is_empty() {
        println!("kernel lacks: {}", no.join(" "));
    }

    // One NOP through the rings by hand (IORING_FEAT_SINGLE_MMAP: SQ and CQ share a mapping).
    if p.features & IORING_FEAT_SINGLE_MMAP == 0 {
        return Err(io::Error::other(
            "the kernel lacks IORING_FEAT_SINGLE_MMAP (Linux 5.4), which this example needs",
        ));
    }
    let ring_len = (p.sq_off.array as usize + p.sq_entries as usize * 4)
        .max(p.cq_off.cqes as usize + p.cq_entries as usize * size_of::<io_uring_cqe>());
    let sqes_len = p.sq_entries as usize * size_of::<io_uring_sqe>();
    // SAFETY: mapping the ring fd at the offsets the kernel documents; checked for MAP_FAILED.
    let (rings, sqes) = unsafe {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_SHARED | libc::MAP_POPULATE;
        let r = libc::mmap(
            ptr::null_mut(),
            ring_len,
            prot,
            flags,
            ring.as_raw_fd(),
            IORING_OFF_SQ_RING as i64,
        );
        let s = libc::mmap(
            ptr::null_mut(),
            sqes_len,
            prot,
            flags,
            ring.as_raw_fd(),
            IORING_OFF_SQES as i64,
        );
        if r == libc::MAP_FAILED || s == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        (r.cast::<u8>(), s.cast::<io_uring_sqe>())
    };
    // SAFETY: every offset comes from the kernel's params and lies inside the mapping; the
    // head/tail words are 4-aligned u32s shared with the kernel, so they are accessed atomically.
    unsafe {
        let at = |off: u32| &*(rings.add(off as usize) as *const AtomicU32);
        let sq_tail = at(p.sq_off.tail);
        let mask = *(rings.add(p.sq_off.ring_mask as usize) as *const u32);
        let tail = sq_tail.load(Ordering::Relaxed); // only we write the SQ tail
        let idx = tail & mask;
        let sqe = &mut *sqes.add(idx as usize);
        *sqe = io_uring_sqe::default();
        sqe.opcode = IORING_OP_NOP as u8;
        sqe.user_data = 0x5eed;
        *(rings.add(p.sq_off.array as usize) as *mut u32).add(idx as usize) = idx;
        // Release: publishes the SQE and array slot to the kernel's acquire of the SQ tail.
        sq_tail.store(tail.wrapping_add(1), Ordering::Release);
        let submitted = io_uring_enter(ring.as_fd(), 1, 1, IORING_ENTER_GETEVENTS)?;
        // Acquire: pairs with the kernel's release store of the CQ tail after writing the CQE.
        let cq_tail = at(p.cq_off.tail).load(Ordering::Acquire);
        let cq_head = at(p.cq_off.head).load(Ordering::Relaxed); // only we write the CQ head
        let cq_mask = *(rings.add(p.cq_off.ring_mask as usize) as *const u32);
        let cqe = &*(rings.add(p.cq_off.cqes as usize) as *const io_uring_cqe)
            .add((cq_head & cq_mask) as usize);
        println!(
            "NOP: submitted {submitted}, {} completion(s) ready, user_data 0x{:x}, res {}",
            cq_tail.wrapping_sub(cq_head),
            cqe.user_data,
            cqe.res
        );
        // Release: hands the CQE slot back; pairs with the kernel's acquire of the CQ head.
        at(p.cq_off.head).store(cq_head.wrapping_add(1), Ordering::Release);
        libc::munmap(sqes.cast(), sqes_len);
        libc::munmap(rings.cast(), ring_len);
    }
    Ok(())
}
