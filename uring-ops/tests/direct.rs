//! Real-kernel tests of direct I/O (`O_DIRECT`) with [`AlignedBuf`]: what is written is read
//! back exactly, the alignment reported for the file is the one the kernel enforces, and a
//! misaligned length is refused with `EINVAL`.
//!
//! The files go in a directory on a disk file system (the temp directory, or `/var/tmp`),
//! found with `statfs`: tmpfs refuses `O_DIRECT` before Linux 6.6 and, from 6.6, accepts it
//! without any alignment rule (its files are in memory). Where no such directory exists, or the
//! file system refuses `O_DIRECT` (`EINVAL`), the tests say `skipped:` and why.

mod common;

use common::{kernel_at_least, skip};
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use uring_ops::ops::{Read, Write};
use uring_ops::{AlignedBuf, DioAlign, DioSource, Fd, Uring};

/// The file system magic numbers the tests name (`statfs(2)`).
const FILE_SYSTEMS: &[(u64, &str)] = &[
    (0xef53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683e, "btrfs"),
    (0xf2f5_2010, "f2fs"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58f6, "ramfs"),
    (0x794c_7630, "overlayfs"),
];

/// File systems whose files live in memory: no direct I/O to speak of.
const IN_MEMORY: &[&str] = &["tmpfs", "ramfs"];

/// File systems that report `STATX_DIOALIGN` from Linux 6.1 and refuse misaligned direct I/O
/// with `EINVAL` (others, btrfs for one, quietly fall back to the page cache).
const STRICT: &[&str] = &["ext4", "xfs", "f2fs"];

/// The name of the file system holding `path` (or its magic number).
fn fs_name(path: &Path) -> Option<String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `statfs` is plain integers: all zeros is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a `statfs` to fill.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's integer type differs between targets
    let magic = st.f_type as u64;
    Some(match FILE_SYSTEMS.iter().find(|(m, _)| *m == magic) {
        Some((_, name)) => name.to_string(),
        None => format!("{magic:#x}"),
    })
}

/// A file open with `O_DIRECT` on a disk file system, removed when dropped.
struct DirectFile {
    file: std::fs::File,
    /// A handle to the same open file, for ops.
    fd: Fd,
    path: PathBuf,
    /// The file system's name.
    fs: String,
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The first of the temp directory and `/var/tmp` on a disk file system, with its name; or
/// why there is none.
fn disk_dir() -> Result<(PathBuf, String), String> {
    let candidates = [std::env::temp_dir(), PathBuf::from("/var/tmp")];
    let mut seen = Vec::new();
    for dir in candidates {
        let fs = fs_name(&dir).unwrap_or_else(|| "missing".into());
        if fs != "missing" && !IN_MEMORY.contains(&fs.as_str()) {
            return Ok((dir, fs));
        }
        seen.push(format!("{} ({fs})", dir.display()));
    }
    Err(format!(
        "no directory on a disk file system among {}",
        seen.join(", ")
    ))
}

/// A new, empty file open for direct reads and writes, or `None` (having said why) where
/// there is no disk file system to put it on or it refuses `O_DIRECT`.
fn direct_file(test: &str) -> Option<DirectFile> {
    let (dir, fs) = match disk_dir() {
        Ok(d) => d,
        Err(why) => {
            skip(format_args!("direct::{test}: {why}"));
            return None;
        }
    };
    let path = dir.join(format!("uring-ops-{}-{test}", std::process::id()));
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let _ = std::fs::remove_file(&path);
            skip(format_args!(
                "direct::{test}: {} ({fs}) refuses O_DIRECT (EINVAL)",
                dir.display()
            ));
            return None;
        }
        Err(e) => panic!("cannot create {}: {e}", path.display()),
    };
    let fd = Fd::new(file.try_clone().unwrap());
    Some(DirectFile { file, fd, path, fs })
}

/// A direct file for `test`, or a return from the test (having said why there is none).
macro_rules! direct_file_or_skip {
    ($test:expr) => {
        match direct_file($test) {
            Some(f) => f,
            None => return,
        }
    };
}

/// Bytes that differ from block to block and from the zeros of a hole.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// A buffer for `f` holding `data`.
fn filled(f: &DirectFile, data: &[u8]) -> AlignedBuf {
    let (mut buf, _) = AlignedBuf::for_file(&f.file, data.len()).unwrap();
    buf.extend_from_slice(data).unwrap();
    buf
}

fn write(ring: &mut Uring, f: &DirectFile, buf: AlignedBuf, off: u64) -> std::io::Result<usize> {
    let t = ring.push(Write::new(&f.fd, buf, off)).unwrap();
    ring.wait(t).unwrap().0
}

fn read(
    ring: &mut Uring,
    f: &DirectFile,
    buf: AlignedBuf,
    off: u64,
) -> (std::io::Result<usize>, AlignedBuf) {
    let t = ring.push(Read::new(&f.fd, buf, off)).unwrap();
    ring.wait(t).unwrap()
}

#[test]
fn o_direct_write_then_read_back_exactly() {
    let f = direct_file_or_skip!("o_direct_write_then_read_back_exactly");
    // SAFETY: F_GETFL reads the open file's flags; the descriptor is open.
    let flags = unsafe { libc::fcntl(f.file.as_raw_fd(), libc::F_GETFL) };
    assert_ne!(flags & libc::O_DIRECT, 0, "the file is open for direct I/O");
    let mut ring = Uring::new(4).unwrap();
    let dio = DioAlign::of(&f.file).unwrap();
    let block = dio.offset_align;
    let len = 4 * block.max(4096);
    let data = pattern(len, 0x40);
    let off = block as u64;

    let buf = filled(&f, &data);
    assert_eq!(buf.as_ptr() as usize % dio.mem_align, 0);
    assert_eq!(write(&mut ring, &f, buf, off).unwrap(), len);

    let (back, _) = AlignedBuf::for_file(&f.file, len).unwrap();
    let (n, back) = read(&mut ring, &f, back, off);
    assert_eq!(n.unwrap(), len);
    assert_eq!(back.len(), len);
    assert!(
        back[..] == data[..],
        "direct read gives back what was written"
    );

    // The file holds it too, as an ordinary read sees it: a hole, then the data.
    let plain = std::fs::File::open(&f.path).unwrap();
    assert_eq!(plain.metadata().unwrap().len(), off + len as u64);
    let mut all = vec![0xffu8; off as usize + len];
    plain.read_exact_at(&mut all, 0).unwrap();
    assert!(
        all[..off as usize].iter().all(|&b| b == 0),
        "the hole reads as zeros"
    );
    assert!(all[off as usize..] == data[..]);

    // A read past the end is short: only what the file holds.
    let (back, _) = AlignedBuf::for_file(&f.file, 2 * len).unwrap();
    let (n, back) = read(&mut ring, &f, back, off);
    assert_eq!(n.unwrap(), len);
    assert!(back[..] == data[..]);
}

#[test]
fn the_reported_alignment_is_the_one_the_kernel_enforces() {
    let f = direct_file_or_skip!("the_reported_alignment_is_the_one_the_kernel_enforces");
    let dio = DioAlign::of(&f.file).unwrap();
    let strict = STRICT.contains(&f.fs.as_str());
    if !kernel_at_least(6, 1) {
        // Before 6.1 the kernel reports nothing: the fallback.
        assert_eq!(dio.source, DioSource::NotReported, "{dio:?}");
    } else if strict {
        assert_eq!(dio.source, DioSource::Statx, "{} from 6.1: {dio:?}", f.fs);
    }
    if dio.source != DioSource::Statx {
        assert_eq!((dio.mem_align, dio.offset_align), (4096, 4096), "{dio:?}");
    }
    assert!(dio.mem_align.is_power_of_two() && dio.offset_align.is_power_of_two());
    let (buf, used) = AlignedBuf::for_file(&f.file, 1).unwrap();
    assert_eq!(used, dio);
    assert_eq!(buf.align(), dio.mem_align.max(dio.offset_align));
    assert_eq!(
        buf.capacity(),
        dio.offset_align,
        "one byte rounds up to one block"
    );

    // One block at a block's offset: accepted.
    let block = dio.offset_align;
    let mut ring = Uring::new(4).unwrap();
    let data = pattern(2 * block, 3);
    assert_eq!(
        write(&mut ring, &f, filled(&f, &data), 0).unwrap(),
        2 * block
    );
    let (buf, _) = AlignedBuf::for_file(&f.file, block).unwrap();
    let (n, buf) = read(&mut ring, &f, buf, block as u64);
    assert_eq!(n.unwrap(), block);
    assert!(buf[..] == data[block..]);

    if dio.source != DioSource::Statx || block == 1 {
        skip(format_args!(
            "direct::the_reported_alignment_is_the_one_the_kernel_enforces: that half the \
             alignment is refused: {} reports {dio:?}",
            f.fs
        ));
        return;
    }
    // Half a block, in length or in offset: refused, where the file system holds to it.
    let half = block / 2;
    let r = write(&mut ring, &f, filled(&f, &data[..half]), 0);
    let r2 = write(&mut ring, &f, filled(&f, &data[..block]), half as u64);
    if !strict && (r.is_ok() || r2.is_ok()) {
        skip(format_args!(
            "direct::the_reported_alignment_is_the_one_the_kernel_enforces: {} accepts \
             misaligned O_DIRECT (through the page cache): {r:?}, {r2:?}",
            f.fs
        ));
        return;
    }
    assert_eq!(
        r.unwrap_err().raw_os_error(),
        Some(libc::EINVAL),
        "length {half}"
    );
    assert_eq!(
        r2.unwrap_err().raw_os_error(),
        Some(libc::EINVAL),
        "offset {half}"
    );
}

#[test]
fn a_misaligned_length_is_refused_with_einval_and_changes_nothing() {
    let test = "a_misaligned_length_is_refused_with_einval_and_changes_nothing";
    let f = direct_file_or_skip!(test);
    let dio = DioAlign::of(&f.file).unwrap();
    let block = dio.offset_align.max(512);
    let mut ring = Uring::new(4).unwrap();
    let data = pattern(block, 9);
    assert_eq!(write(&mut ring, &f, filled(&f, &data), 0).unwrap(), block);

    // 100 bytes from an aligned buffer: no block size divides it.
    let odd = pattern(100, 0x77);
    let w = write(&mut ring, &f, filled(&f, &odd), 0);
    let small = AlignedBuf::new(100, dio.buf_align()).unwrap();
    let (r, small) = read(&mut ring, &f, small, 0);
    if !STRICT.contains(&f.fs.as_str()) && (w.is_ok() || r.is_ok()) {
        skip(format_args!(
            "direct::{test}: {} accepts misaligned O_DIRECT (through the page cache): {w:?}, \
             {r:?}",
            f.fs
        ));
        return;
    }
    let w = w.unwrap_err();
    assert_eq!(w.raw_os_error(), Some(libc::EINVAL), "the write: {w}");
    let r = r.unwrap_err();
    assert_eq!(r.raw_os_error(), Some(libc::EINVAL), "the read: {r}");
    assert!(small.is_empty(), "a refused read fills nothing");

    // The file is as it was.
    let mut back = vec![0u8; block];
    std::fs::File::open(&f.path)
        .unwrap()
        .read_exact_at(&mut back, 0)
        .unwrap();
    assert!(back == data);
    assert_eq!(f.file.metadata().unwrap().len(), block as u64);
}

#[test]
fn a_file_that_reports_nothing_gets_the_fallback() {
    // No kernel reports a direct-I/O alignment for a pipe.
    let (rx, _tx) = common::pipe();
    let dio = DioAlign::of(&rx).unwrap();
    assert_eq!(
        dio,
        DioAlign {
            mem_align: 4096,
            offset_align: 4096,
            source: DioSource::NotReported
        }
    );
    let (buf, used) = AlignedBuf::for_file(&rx, 1).unwrap();
    assert_eq!(used, dio);
    assert_eq!((buf.capacity(), buf.align(), buf.len()), (4096, 4096, 0));
    assert_eq!(buf.as_ptr() as usize % 4096, 0);
    // Rounding past the largest size is refused, typed, inside the io::Error.
    let e = AlignedBuf::for_file(&rx, usize::MAX).unwrap_err();
    assert_eq!(e.raw_os_error(), None);
    assert_eq!(e.kind(), std::io::ErrorKind::OutOfMemory);
    let inner = e
        .get_ref()
        .and_then(|e| e.downcast_ref::<uring_ops::Error>());
    assert!(
        matches!(
            inner,
            Some(uring_ops::Error::OutOfMemory { bytes: usize::MAX })
        ),
        "{e:?}"
    );
}
