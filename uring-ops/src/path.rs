//! Paths the kernel reads: owned, NUL-terminated, checked once at construction.

use crate::error::{Error, Result};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// A path (or an extended-attribute name) for the kernel: an owned C string on the heap, so
/// its address survives moves of the op holding it.
///
/// Made from any path-like value ([`IntoCPath`]); a NUL byte inside is refused at once with
/// [`Error::InteriorNul`], since the kernel would read only the part before it and act on
/// another path.
///
/// # Examples
///
/// ```
/// use uring_ops::{CPath, Error};
/// assert_eq!(CPath::new("/tmp/a")?.as_path(), std::path::Path::new("/tmp/a"));
/// assert!(matches!(CPath::new("a\0b"), Err(Error::InteriorNul { position: 1, .. })));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CPath(CString);

impl CPath {
    /// `path`, NUL-terminated.
    ///
    /// # Errors
    ///
    /// [`Error::InteriorNul`] when it has a NUL byte.
    pub fn new(path: impl IntoCPath) -> Result<Self> {
        path.into_cpath()
    }

    /// The empty path (for `AT_EMPTY_PATH`: the directory descriptor's own file).
    pub(crate) fn empty() -> Self {
        CPath(CString::default())
    }

    /// From bytes (which must not hold a NUL).
    fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        CString::new(bytes).map(CPath).map_err(|e| {
            let position = e.nul_position();
            Error::InteriorNul {
                path: PathBuf::from(OsString::from_vec(e.into_vec())),
                position,
            }
        })
    }

    /// The C string the kernel reads.
    pub fn as_c_str(&self) -> &CStr {
        &self.0
    }

    /// The path.
    pub fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(self.0.as_bytes()))
    }

    /// The address of its first byte (stable: the bytes are on the heap).
    pub(crate) fn addr(&self) -> u64 {
        self.0.as_ptr() as u64
    }
}

impl fmt::Debug for CPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_path(), f)
    }
}

/// What an op's constructor takes as a path: `&str`, `String`, `&Path`, `PathBuf`, `&OsStr`,
/// `OsString`, `&[u8]`, `Vec<u8>`, `CString`, `&CStr` or a [`CPath`].
pub trait IntoCPath {
    /// The path, NUL-terminated.
    ///
    /// # Errors
    ///
    /// [`Error::InteriorNul`] when it has a NUL byte.
    fn into_cpath(self) -> Result<CPath>;
}

impl IntoCPath for CPath {
    fn into_cpath(self) -> Result<CPath> {
        Ok(self)
    }
}

impl IntoCPath for &CPath {
    fn into_cpath(self) -> Result<CPath> {
        Ok(self.clone())
    }
}

impl IntoCPath for CString {
    fn into_cpath(self) -> Result<CPath> {
        Ok(CPath(self))
    }
}

impl IntoCPath for &CStr {
    fn into_cpath(self) -> Result<CPath> {
        Ok(CPath(self.to_owned()))
    }
}

impl IntoCPath for Vec<u8> {
    fn into_cpath(self) -> Result<CPath> {
        CPath::from_bytes(self)
    }
}

impl IntoCPath for &[u8] {
    fn into_cpath(self) -> Result<CPath> {
        CPath::from_bytes(self.to_vec())
    }
}

impl IntoCPath for OsString {
    fn into_cpath(self) -> Result<CPath> {
        CPath::from_bytes(self.into_vec())
    }
}

impl IntoCPath for &OsStr {
    fn into_cpath(self) -> Result<CPath> {
        self.as_bytes().into_cpath()
    }
}

impl IntoCPath for PathBuf {
    fn into_cpath(self) -> Result<CPath> {
        self.into_os_string().into_cpath()
    }
}

impl IntoCPath for &Path {
    fn into_cpath(self) -> Result<CPath> {
        self.as_os_str().into_cpath()
    }
}

impl IntoCPath for &PathBuf {
    fn into_cpath(self) -> Result<CPath> {
        self.as_path().into_cpath()
    }
}

impl IntoCPath for String {
    fn into_cpath(self) -> Result<CPath> {
        self.into_bytes().into_cpath()
    }
}

impl IntoCPath for &str {
    fn into_cpath(self) -> Result<CPath> {
        self.as_bytes().into_cpath()
    }
}

impl IntoCPath for &String {
    fn into_cpath(self) -> Result<CPath> {
        self.as_str().into_cpath()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_makes_the_same_c_string() {
        let want = CPath::new("dir/file").unwrap();
        assert_eq!(want.as_c_str().to_bytes_with_nul(), b"dir/file\0");
        let forms = [
            CPath::new(String::from("dir/file")).unwrap(),
            CPath::new(Path::new("dir/file")).unwrap(),
            CPath::new(PathBuf::from("dir/file")).unwrap(),
            CPath::new(OsStr::new("dir/file")).unwrap(),
            CPath::new(&b"dir/file"[..]).unwrap(),
            CPath::new(c"dir/file").unwrap(),
            CPath::new(CString::new("dir/file").unwrap()).unwrap(),
            CPath::new(&want).unwrap(),
        ];
        for f in forms {
            assert_eq!(f, want);
        }
        // Not UTF-8: fine for a path.
        let raw = CPath::new(&b"\xff\xfe"[..]).unwrap();
        assert_eq!(raw.as_c_str().to_bytes(), b"\xff\xfe");
    }

    #[test]
    fn a_nul_inside_is_refused_naming_the_path_and_where() {
        for (p, at) in [("a\0b", 1), ("\0", 0), ("abc\0", 3)] {
            match CPath::new(p) {
                Err(Error::InteriorNul { path, position }) => {
                    assert_eq!((path.as_os_str().as_bytes(), position), (p.as_bytes(), at));
                }
                other => panic!("{p:?}: {other:?}"),
            }
        }
        let e = CPath::new(PathBuf::from("x\0y")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        assert_eq!(
            e.to_string(),
            "path \"x\\0y\" has a NUL byte at 1: the kernel would read only the part before it"
        );
        // The empty path is a valid C string (the kernel answers ENOENT, or with
        // AT_EMPTY_PATH acts on the directory descriptor itself).
        assert_eq!(CPath::new("").unwrap().as_c_str().to_bytes(), b"");
    }
}
