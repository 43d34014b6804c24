//! Socket addresses the ops hand to the kernel, and those the kernel writes back.

use crate::error::{Error, Result};
use std::fmt;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An owned socket address: a `sockaddr_storage` and its length, for the ops that name an
/// address (`Connect`, `Bind`, a `Send` to an address, `SendMsg`, ...) and for the addresses the
/// kernel reports (`Accept`'s peer, `RecvMsg`'s source).
///
/// Made from a [`SocketAddr`] (`.into()`), a Unix socket path ([`SockAddr::unix`]), a name in
/// Linux's abstract Unix namespace ([`SockAddr::unix_abstract`]), or raw bytes
/// ([`SockAddr::from_raw`]).
///
/// # Examples
///
/// ```
/// use uring_ops::SockAddr;
/// let a = SockAddr::from("127.0.0.1:80".parse::<std::net::SocketAddr>()?);
/// assert_eq!(a.family(), libc::AF_INET);
/// assert_eq!(a.as_socket_addr(), Some("127.0.0.1:80".parse()?));
/// assert!(SockAddr::unix("/no\0such").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct SockAddr {
    storage: libc::sockaddr_storage,
    /// Bytes of `storage` that hold the address: at most `size_of::<sockaddr_storage>()`.
    len: libc::socklen_t,
}

const STORAGE: usize = size_of::<libc::sockaddr_storage>();
/// Where `sun_path` starts in a `sockaddr_un`.
const SUN_PATH: usize = std::mem::offset_of!(libc::sockaddr_un, sun_path);
/// Room in `sun_path`.
const SUN_LEN: usize = size_of::<libc::sockaddr_un>() - SUN_PATH;

impl SockAddr {
    fn zeroed() -> Self {
        SockAddr {
            // SAFETY: plain integers; all-zero is valid.
            storage: unsafe { MaybeUninit::zeroed().assume_init() },
            len: 0,
        }
    }

    /// A Unix socket bound to, or reached at, `path` in the file system.
    ///
    /// # Errors
    ///
    /// [`Error::BadSockAddr`] if the path holds a NUL byte or does not fit `sun_path` (107
    /// bytes and a NUL).
    pub fn unix(path: impl AsRef<Path>) -> Result<Self> {
        let bytes = path.as_ref().as_os_str().as_bytes();
        if bytes.contains(&0) {
            return Err(Error::BadSockAddr {
                why: "a Unix socket path holds no NUL byte",
                len: bytes.len(),
            });
        }
        if bytes.len() >= SUN_LEN {
            return Err(Error::BadSockAddr {
                why: "a Unix socket path is at most 107 bytes",
                len: bytes.len(),
            });
        }
        Ok(Self::unix_bytes(bytes, 1))
    }

    /// A Unix socket named `name` in Linux's abstract namespace (no file; `sun_path` starts
    /// with a NUL byte). `name` may hold any bytes.
    ///
    /// # Errors
    ///
    /// [`Error::BadSockAddr`] if `name` is longer than 107 bytes.
    pub fn unix_abstract(name: &[u8]) -> Result<Self> {
        if name.len() >= SUN_LEN {
            return Err(Error::BadSockAddr {
                why: "an abstract Unix socket name is at most 107 bytes",
                len: name.len(),
            });
        }
        let mut with_nul = Vec::with_capacity(name.len() + 1);
        with_nul.push(0);
        with_nul.extend_from_slice(name);
        Ok(Self::unix_bytes(&with_nul, 0))
    }

    /// `sun_path` = `bytes`, length counting `extra` bytes past them (the path's NUL).
    fn unix_bytes(bytes: &[u8], extra: usize) -> Self {
        let mut a = Self::zeroed();
        // SAFETY: a sockaddr_un fits a sockaddr_storage, which is aligned for any sockaddr.
        let un = unsafe {
            &mut *(&mut a.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_un>()
        };
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in un.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        a.len = (SUN_PATH + bytes.len() + extra) as libc::socklen_t;
        a
    }

    /// An address from its raw form: the first `len` bytes of `storage`.
    ///
    /// # Errors
    ///
    /// [`Error::BadSockAddr`] if `len` is larger than a `sockaddr_storage`.
    pub fn from_raw(storage: libc::sockaddr_storage, len: libc::socklen_t) -> Result<Self> {
        if len as usize > STORAGE {
            return Err(Error::BadSockAddr {
                why: "a socket address is at most 128 bytes (sockaddr_storage)",
                len: len as usize,
            });
        }
        Ok(SockAddr { storage, len })
    }

    /// The address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, ...), or `AF_UNSPEC` (0) for an
    /// empty address.
    pub fn family(&self) -> i32 {
        if self.len == 0 {
            return libc::AF_UNSPEC;
        }
        i32::from(self.storage.ss_family)
    }

    /// The bytes of `sockaddr_storage` that hold the address.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// The raw storage, for `libc` calls.
    pub fn as_raw(&self) -> &libc::sockaddr_storage {
        &self.storage
    }

    /// An IPv4 or IPv6 address as a [`SocketAddr`]; `None` for other families.
    pub fn as_socket_addr(&self) -> Option<SocketAddr> {
        let p = &self.storage as *const libc::sockaddr_storage;
        match self.family() {
            libc::AF_INET if self.len as usize >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the storage holds a sockaddr_in (family and length checked); it is
                // aligned for any sockaddr.
                let sin = unsafe { &*p.cast::<libc::sockaddr_in>() };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if self.len as usize >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for a sockaddr_in6.
                let sin6 = unsafe { &*p.cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// A Unix socket's path (`None` for other families, unnamed and abstract sockets).
    pub fn as_unix_path(&self) -> Option<&Path> {
        let path = self.unix_path_bytes()?;
        if path.first() == Some(&0) || path.is_empty() {
            return None;
        }
        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
        Some(Path::new(std::ffi::OsStr::from_bytes(&path[..end])))
    }

    /// An abstract Unix socket's name (without the leading NUL), `None` otherwise.
    pub fn as_unix_abstract(&self) -> Option<&[u8]> {
        match self.unix_path_bytes()? {
            [0, name @ ..] => Some(name),
            _ => None,
        }
    }

    /// The bytes of `sun_path` that the length covers, for a Unix address.
    fn unix_path_bytes(&self) -> Option<&[u8]> {
        if self.family() != libc::AF_UNIX {
            return None;
        }
        let n = (self.len as usize).checked_sub(SUN_PATH)?.min(SUN_LEN);
        // SAFETY: the storage is 128 initialised bytes; `SUN_PATH + n` stays inside it.
        Some(unsafe {
            std::slice::from_raw_parts(
                (&self.storage as *const libc::sockaddr_storage)
                    .cast::<u8>()
                    .add(SUN_PATH),
                n,
            )
        })
    }

    /// No address (family `AF_UNSPEC`, length 0).
    pub fn empty() -> Self {
        Self::zeroed()
    }

    /// Room for any address (zeroed, length `sizeof(sockaddr_storage)`), for the kernel to
    /// write.
    pub(crate) fn room() -> Self {
        let mut a = Self::zeroed();
        a.len = STORAGE as libc::socklen_t;
        a
    }

    /// Pointer to the address, for the SQE.
    pub(crate) fn ptr(&self) -> *const libc::sockaddr_storage {
        &self.storage
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(a: SocketAddr) -> Self {
        match a {
            SocketAddr::V4(a) => a.into(),
            SocketAddr::V6(a) => a.into(),
        }
    }
}

impl From<SocketAddrV4> for SockAddr {
    fn from(a: SocketAddrV4) -> Self {
        let mut s = Self::zeroed();
        // SAFETY: a sockaddr_in fits a sockaddr_storage, which is aligned for any sockaddr.
        let sin = unsafe {
            &mut *(&mut s.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
        };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = a.port().to_be();
        sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
        s.len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        s
    }
}

impl From<SocketAddrV6> for SockAddr {
    fn from(a: SocketAddrV6) -> Self {
        let mut s = Self::zeroed();
        // SAFETY: a sockaddr_in6 fits a sockaddr_storage, which is aligned for any sockaddr.
        let sin6 = unsafe {
            &mut *(&mut s.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
        };
        sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sin6.sin6_port = a.port().to_be();
        sin6.sin6_addr.s6_addr = a.ip().octets();
        sin6.sin6_flowinfo = a.flowinfo();
        sin6.sin6_scope_id = a.scope_id();
        s.len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        s
    }
}

impl PartialEq for SockAddr {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for SockAddr {}

impl SockAddr {
    /// The address's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the storage is 128 initialised bytes and `len` is at most that.
        unsafe {
            std::slice::from_raw_parts(
                (&self.storage as *const libc::sockaddr_storage).cast::<u8>(),
                self.len as usize,
            )
        }
    }
}

impl fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(a) = self.as_socket_addr() {
            return write!(f, "SockAddr({a})");
        }
        if let Some(p) = self.as_unix_path() {
            return write!(f, "SockAddr(unix {})", p.display());
        }
        if let Some(n) = self.as_unix_abstract() {
            return write!(
                f,
                "SockAddr(unix abstract {:?})",
                String::from_utf8_lossy(n)
            );
        }
        write!(f, "SockAddr(family {}, {} bytes)", self.family(), self.len)
    }
}

/// An address the kernel writes back (an accepted connection's peer): storage on the heap, so
/// that the op holding it can move, and its length, which the kernel updates.
#[derive(Default)]
pub struct PeerAddr {
    slot: Option<Box<SockAddr>>,
}

impl PeerAddr {
    /// Room for an address.
    pub(crate) fn wanted() -> Self {
        PeerAddr {
            slot: Some(Box::new(SockAddr::room())),
        }
    }

    /// The storage and length pointers for the SQE (`addr`, `addr2`), or null for none.
    pub(crate) fn pointers(&mut self) -> (u64, u64) {
        match &mut self.slot {
            Some(b) => (
                std::ptr::addr_of_mut!(b.storage) as u64,
                std::ptr::addr_of_mut!(b.len) as u64,
            ),
            None => (0, 0),
        }
    }

    /// What the kernel wrote, after a successful completion (a length beyond the storage,
    /// which the kernel reports when it truncated, is clamped).
    pub(crate) fn take(self) -> Option<SockAddr> {
        self.slot.map(|b| {
            let mut a = *b;
            a.len = a.len.min(STORAGE as libc::socklen_t);
            a
        })
    }
}

impl fmt::Debug for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.slot.is_some() {
            "PeerAddr(wanted)"
        } else {
            "PeerAddr(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_round_trip() {
        for s in [
            "127.0.0.1:0",
            "10.1.2.3:65535",
            "[::1]:443",
            "[fe80::1%3]:8080",
        ] {
            let a: SocketAddr = s.parse().unwrap();
            let sa = SockAddr::from(a);
            assert_eq!(sa.as_socket_addr(), Some(a), "{s}");
            assert_eq!(sa.as_unix_path(), None);
        }
        let v4 = SockAddr::from("1.2.3.4:5".parse::<SocketAddr>().unwrap());
        assert_eq!(v4.len() as usize, size_of::<libc::sockaddr_in>());
        assert_eq!(
            &v4.bytes()[2..8],
            &[0, 5, 1, 2, 3, 4],
            "port and address big-endian"
        );
    }

    #[test]
    fn unix_paths() {
        let a = SockAddr::unix("/tmp/sock").unwrap();
        assert_eq!(a.family(), libc::AF_UNIX);
        assert_eq!(a.as_unix_path(), Some(Path::new("/tmp/sock")));
        assert_eq!(a.len() as usize, SUN_PATH + 10);
        assert_eq!(a.as_socket_addr(), None);
        let long = "x".repeat(108);
        assert!(matches!(
            SockAddr::unix(&long),
            Err(Error::BadSockAddr { len: 108, .. })
        ));
        let max = SockAddr::unix("x".repeat(107)).unwrap();
        assert_eq!(max.len() as usize, size_of::<libc::sockaddr_un>());
        let e = SockAddr::unix("a\0b").unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let ab = SockAddr::unix_abstract(b"name\0with nul").unwrap();
        assert_eq!(ab.as_unix_abstract(), Some(&b"name\0with nul"[..]));
        assert_eq!(ab.as_unix_path(), None);
        assert!(SockAddr::unix_abstract(&[1; 108]).is_err());
    }

    #[test]
    fn raw_and_peer() {
        // SAFETY: plain integers; all-zero is valid.
        let st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        assert!(SockAddr::from_raw(st, 129).is_err());
        let empty = SockAddr::from_raw(st, 0).unwrap();
        assert_eq!(empty.family(), libc::AF_UNSPEC);
        assert_eq!(format!("{empty:?}"), "SockAddr(family 0, 0 bytes)");
        let mut p = PeerAddr::default();
        assert_eq!(p.pointers(), (0, 0));
        assert!(p.take().is_none());
        let mut p = PeerAddr::wanted();
        let (a, l) = p.pointers();
        assert!(a != 0 && l != 0);
        // SAFETY: `l` points at the live length inside `p`'s box.
        unsafe { *(l as *mut libc::socklen_t) = 1000 };
        assert_eq!(p.take().unwrap().len() as usize, STORAGE, "clamped");
    }
}
