//! The file the `read` mode reads.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek, SeekFrom, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Bytes per read, and the alignment of every buffer and offset (`O_DIRECT` needs the file's
/// direct-I/O alignment, `uring_ops::DioAlign`; 4096 covers every common one, and keeps every
/// layer and every file system reading alike).
pub const BLOCK: usize = 4096;

/// Size of the temporary file made when no `--file` is given.
pub const TEMP_SIZE: u64 = 256 << 20;

/// The file being read, opened for the whole program.
pub struct BenchFile {
    pub file: File,
    pub path: PathBuf,
    /// Whether it is open with `O_DIRECT`.
    pub direct: bool,
    /// Whole 4096-byte blocks in it: reads go to random ones.
    pub blocks: u64,
    /// One line saying what is read and how (for the output).
    pub about: String,
    /// The temporary file, removed when this is dropped.
    _temp: Option<tempfile::TempPath>,
}

/// Opens `path` (or makes a 256 MiB temporary file) for reads: with `O_DIRECT` unless
/// `buffered`, falling back to the page cache, and saying so, where the file system refuses it.
pub fn open(path: Option<&Path>, buffered: bool) -> Result<BenchFile, String> {
    let (path, temp, origin) = match path {
        Some(p) => (p.to_path_buf(), None, String::new()),
        None => {
            let temp = make_temp()?;
            let p = temp.to_path_buf();
            (p, Some(temp), "a temporary file of ".to_string())
        }
    };
    let name = path.display();
    let mut opts = OpenOptions::new();
    opts.read(true);
    let (file, direct, why) = if buffered {
        let f = opts
            .open(&path)
            .map_err(|e| format!("cannot open {name}: {e}"))?;
        (f, false, "page cache (--buffered)".to_string())
    } else {
        match opts.clone().custom_flags(libc::O_DIRECT).open(&path) {
            Ok(f) => (f, true, "O_DIRECT".to_string()),
            // tmpfs and some other file systems refuse O_DIRECT at open.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let f = opts
                    .open(&path)
                    .map_err(|e| format!("cannot open {name}: {e}"))?;
                let why = "page cache: the file system refuses O_DIRECT (EINVAL)".to_string();
                (f, false, why)
            }
            Err(e) => return Err(format!("cannot open {name}: {e}")),
        }
    };
    let mut file = file;
    // Seeking to the end also sizes a block device, whose metadata says 0.
    let size = file
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("cannot find the size of {name}: {e}"))?;
    let blocks = size / BLOCK as u64;
    if blocks == 0 {
        return Err(format!(
            "{name} holds {size} bytes: it needs at least one {BLOCK}-byte block to read"
        ));
    }
    if !direct {
        warm(&mut file, size, &name.to_string())?;
    }
    let fs = fs_name(&file);
    let mut about = format!("{name} ({origin}{} MiB, {fs}), {why}", size >> 20);
    if direct && fs == "tmpfs" {
        // Linux 6.6 and later accept O_DIRECT on tmpfs; the file is in memory all the same.
        about.push_str(" (accepted by tmpfs, whose files are in memory: no disk is read)");
    }
    Ok(BenchFile {
        file,
        path,
        direct,
        blocks,
        about,
        _temp: temp,
    })
}

/// A 256 MiB file of pseudo-random bytes in the temporary directory, written through and
/// synced, so that no write-back runs while the benchmark does. Removed when dropped.
fn make_temp() -> Result<tempfile::TempPath, String> {
    let dir = std::env::temp_dir();
    let mut f = tempfile::Builder::new()
        .prefix("uring-bench-")
        .tempfile_in(&dir)
        .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let name = f.path().display().to_string();
    for _ in 0..TEMP_SIZE / chunk.len() as u64 {
        for word in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&chunk)
            .map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    f.as_file()
        .sync_all()
        .map_err(|e| format!("cannot sync {name}: {e}"))?;
    Ok(f.into_temp_path())
}

/// Reads a file of at most 4 GiB once, so that page-cache reads start with it cached for
/// every layer alike (a larger one is left as it is).
fn warm(file: &mut File, size: u64, name: &str) -> Result<(), String> {
    if size > 4 << 30 {
        return Ok(());
    }
    let mut buf = vec![0u8; 1 << 20];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| loop {
            if file.read(&mut buf)? == 0 {
                return Ok(());
            }
        })
        .map_err(|e: io::Error| format!("cannot read {name}: {e}"))
}

/// The name of the file system holding `file` (from `fstatfs`), or its magic number.
fn fs_name(file: &File) -> String {
    // SAFETY: fstatfs writes a `statfs` into the zeroed one it is given.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open (owned by `file`) and `st` is a valid `statfs` to fill.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return "file system unknown".to_string();
    }
    #[allow(clippy::unnecessary_cast)] // f_type's integer type differs between targets
    let magic = st.f_type as u64;
    let name = match magic {
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794c_7630 => "overlayfs",
        0x6573_5546 => "fuse",
        0x6969 => "nfs",
        0x2fc1_2fc1 => "zfs",
        0xf2f5_2010 => "f2fs",
        0x4d44 => "vfat",
        0x6264_6576 => "devtmpfs (a block device)",
        _ => return format!("file system {magic:#x}"),
    };
    name.to_string()
}
