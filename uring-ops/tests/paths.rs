//! Real-kernel tests of the path ops (mkdirat, symlinkat, linkat, renameat, statx, unlinkat)
//! and the extended-attribute ops.

mod common;

use common::temp_dir;
use std::os::unix::fs::MetadataExt;
use uring_ops::ops::{
    FGetXattr, FSetXattr, GetXattr, LinkAt, MkdirAt, RenameAt, SetXattr, Statx, SymlinkAt,
    UnlinkAt, XattrFlags,
};
use uring_ops::{Error, Fd, Target, Uring};

#[test]
fn a_tree_is_made_linked_renamed_stated_and_removed() {
    let mut ring = Uring::new(16).unwrap();
    require_op!(ring, MkdirAt);
    require_op!(ring, SymlinkAt);
    require_op!(ring, LinkAt);
    require_op!(ring, RenameAt);
    require_op!(ring, UnlinkAt);
    require_op!(ring, Statx);
    let dir = temp_dir("paths-tree");
    let root = &dir.fd;

    let t = ring
        .push(MkdirAt::new(root, "sub").unwrap().mode(0o750))
        .unwrap();
    ring.wait(t).unwrap().unwrap();
    let meta = std::fs::metadata(dir.path.join("sub")).unwrap();
    assert!(meta.is_dir());
    let t = ring.push(MkdirAt::new(root, "sub").unwrap()).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EEXIST)
    );

    std::fs::write(dir.path.join("sub/file"), b"0123456789").unwrap();
    let sub = Fd::new(std::fs::File::open(dir.path.join("sub")).unwrap());
    let t = ring
        .push(SymlinkAt::new("sub/file", root, "sym").unwrap())
        .unwrap();
    ring.wait(t).unwrap().unwrap();
    assert_eq!(
        std::fs::read_link(dir.path.join("sym")).unwrap(),
        std::path::Path::new("sub/file")
    );
    let t = ring
        .push(LinkAt::new(&sub, "file", root, "hard").unwrap())
        .unwrap();
    ring.wait(t).unwrap().unwrap();

    // Stat through the symbolic link, of the link itself, and of an open file.
    let t = ring.push(Statx::new(root, "sym").unwrap()).unwrap();
    let st = ring.wait(t).unwrap().unwrap();
    assert_eq!((st.stx_size, st.stx_nlink), (10, 2));
    assert_eq!(u32::from(st.stx_mode) & libc::S_IFMT, libc::S_IFREG);
    let t = ring
        .push(
            Statx::new(root, "sym")
                .unwrap()
                .flags(libc::AT_SYMLINK_NOFOLLOW),
        )
        .unwrap();
    let st = ring.wait(t).unwrap().unwrap();
    assert_eq!(u32::from(st.stx_mode) & libc::S_IFMT, libc::S_IFLNK);
    let f = std::fs::File::open(dir.path.join("hard")).unwrap();
    let ino = f.metadata().unwrap().ino();
    let t = ring.push(Statx::file(f)).unwrap();
    let st = ring.wait(t).unwrap().unwrap();
    assert_eq!((st.stx_ino, st.stx_size), (ino, 10));

    // Rename, and refuse to replace.
    let t = ring
        .push(RenameAt::new(root, "hard", &sub, "moved").unwrap())
        .unwrap();
    ring.wait(t).unwrap().unwrap();
    assert_eq!(
        std::fs::read(dir.path.join("sub/moved")).unwrap(),
        b"0123456789"
    );
    assert!(!dir.path.join("hard").exists());
    let t = ring
        .push(
            RenameAt::new(&sub, "moved", &sub, "file")
                .unwrap()
                .flags(libc::RENAME_NOREPLACE),
        )
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::EEXIST)
    );

    // Remove: a non-empty directory is refused, then emptied and removed.
    let t = ring
        .push(UnlinkAt::new(root, "sub").unwrap().dir())
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    for name in ["file", "moved"] {
        let t = ring.push(UnlinkAt::new(&sub, name).unwrap()).unwrap();
        ring.wait(t).unwrap().unwrap();
    }
    let t = ring.push(UnlinkAt::new(root, "sym").unwrap()).unwrap();
    ring.wait(t).unwrap().unwrap();
    let t = ring
        .push(UnlinkAt::new(root, "sub").unwrap().dir())
        .unwrap();
    ring.wait(t).unwrap().unwrap();
    assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 0);
    let t = ring.push(Statx::new(root, "sub").unwrap()).unwrap();
    assert_eq!(
        ring.wait(t).unwrap().unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
}

#[test]
fn paths_with_a_nul_and_directories_given_as_slots_are_refused() {
    assert!(matches!(
        RenameAt::paths("a", "b\0"),
        Err(Error::InteriorNul { position: 1, .. })
    ));
    assert!(LinkAt::paths("\0", "b").is_err());
    assert!(SymlinkAt::paths("t\0", "l").is_err());
    assert!(MkdirAt::path("x\0").is_err());
    assert!(UnlinkAt::path("x\0").is_err());
    assert!(Statx::path("x\0").is_err());
    assert!(GetXattr::new("p", "user.\0", vec![0u8; 4]).is_err());

    let mut ring = Uring::new(4).unwrap();
    // The new directory of a rename travels as a number: a slot there would name another file.
    let err = ring
        .push(RenameAt::new(Target::cwd(), "a", Target::fixed(0), "b").unwrap())
        .unwrap_err();
    assert!(
        matches!(
            err.error,
            Error::FixedFileNotAccepted {
                op: "RenameAt",
                what: "the new directory",
                index: 0
            }
        ),
        "{:?}",
        err.error
    );
    let err = ring
        .push(LinkAt::new(Target::fixed(3), "a", Target::cwd(), "b").unwrap())
        .unwrap_err();
    assert!(matches!(
        err.error,
        Error::FixedFileNotAccepted {
            op: "LinkAt",
            index: 3,
            ..
        }
    ));
}

#[test]
fn extended_attributes_are_set_and_read_back() {
    let mut ring = Uring::new(8).unwrap();
    require_op!(ring, SetXattr<Vec<u8>>);
    require_op!(ring, GetXattr<Vec<u8>>);
    require_op!(ring, FSetXattr<Vec<u8>>);
    require_op!(ring, FGetXattr<Vec<u8>>);
    let f = common::temp_file("xattr", b"");
    let t = ring
        .push(SetXattr::new(&f.path, "user.uring", b"by path".to_vec()).unwrap())
        .unwrap();
    match ring.wait(t).unwrap().0 {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            common::skip("the temp directory's file system has no user extended attributes");
            return;
        }
        r => r.unwrap(),
    }
    // Create-only refuses an existing attribute.
    let t = ring
        .push(
            SetXattr::new(&f.path, "user.uring", b"again".to_vec())
                .unwrap()
                .flags(XattrFlags::CREATE),
        )
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().0.unwrap_err().raw_os_error(),
        Some(libc::EEXIST)
    );

    // The size alone (no room), then the value.
    let t = ring
        .push(GetXattr::new(&f.path, "user.uring", Vec::new()).unwrap())
        .unwrap();
    let (n, empty) = ring.wait(t).unwrap();
    assert_eq!((n.unwrap(), empty.len()), (7, 0));
    let t = ring
        .push(GetXattr::new(&f.path, "user.uring", Vec::with_capacity(64)).unwrap())
        .unwrap();
    let (n, value) = ring.wait(t).unwrap();
    assert_eq!((n.unwrap(), &value[..]), (7, &b"by path"[..]));
    // Too small a buffer.
    let t = ring
        .push(GetXattr::new(&f.path, "user.uring", Vec::with_capacity(3)).unwrap())
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().0.unwrap_err().raw_os_error(),
        Some(libc::ERANGE)
    );

    // Through the open file.
    let t = ring
        .push(FSetXattr::new(&f.fd, "user.other", b"by fd".to_vec()).unwrap())
        .unwrap();
    ring.wait(t).unwrap().0.unwrap();
    let t = ring
        .push(FGetXattr::new(&f.fd, "user.other", vec![0u8; 16].into_boxed_slice()).unwrap())
        .unwrap();
    let (n, value) = ring.wait(t).unwrap();
    assert_eq!(&value[..n.unwrap()], b"by fd");
    let t = ring
        .push(FGetXattr::new(&f.fd, "user.missing", Vec::with_capacity(8)).unwrap())
        .unwrap();
    assert_eq!(
        ring.wait(t).unwrap().0.unwrap_err().raw_os_error(),
        Some(libc::ENODATA)
    );
}
