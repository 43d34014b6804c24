//! The Linux UAPI headers kept in `uapi/`: the only input of `regen-bindings`, and `--update`,
//! which replaces them with the headers of another kernel.
//!
//! `uapi/include` holds exactly the headers clang opens for the bindings (nothing more: `--check`
//! fails on a header it does not read; nothing less: clang runs with `-nostdinc`), laid out like
//! the output of the kernel's `make headers_install`, with the architecture's `asm/` beside
//! `linux/`. The first line of `uapi/ORIGIN` says where they come from and is quoted in the
//! generated files.

use crate::{apt, bindings, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The folder of the kept headers, relative to the workspace root.
pub(crate) const DIR: &str = "uapi";
/// The Debian suite `--update` fetches `linux-libc-dev` from unless `--suite` names another.
pub(crate) const DEFAULT_SUITE: &str = "trixie-backports";
/// Multiarch folder of the UAPI `asm/` headers in Debian's `linux-libc-dev`.
const MULTIARCH: &str = "x86_64-linux-gnu";

/// Where `--update` takes the new headers from.
#[derive(Debug, PartialEq)]
pub(crate) enum Source {
    /// Debian's `linux-libc-dev` from `suite`: `version`, or the newest there.
    Debian {
        version: Option<String>,
        suite: String,
    },
    /// A UAPI include tree on disk (`make headers_install` output, or a distribution's
    /// `/usr/include`).
    Dir(PathBuf),
}

/// The first line of `uapi/ORIGIN`: where the kept headers come from.
pub(crate) fn origin(uapi: &Path) -> Result<String> {
    let path = uapi.join("ORIGIN");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    match text.lines().next().map(str::trim) {
        Some(first) if !first.is_empty() => Ok(first.to_string()),
        _ => Err(format!(
            "{}: the first line must say where the headers come from",
            path.display()
        )),
    }
}

/// A header tree to copy from.
struct Tree {
    /// Include folders, in clang's search order.
    include_dirs: Vec<PathBuf>,
    /// The text of the new `uapi/ORIGIN`.
    origin: String,
}

/// Replaces `uapi/include` by the headers clang opens in the tree `source` names, and
/// `uapi/ORIGIN` by a note of where they come from.
pub(crate) fn update(root: &Path, source: &Source) -> Result<()> {
    let tree = match source {
        Source::Debian { version, suite } => debian_tree(root, version.as_deref(), suite)?,
        Source::Dir(dir) => local_tree(dir)?,
    };
    let first = tree.origin.lines().next().unwrap_or_default();
    let generated = bindings::generate(&tree.include_dirs, first)?;
    let files = relative(&tree.include_dirs, &generated.opened)?;
    // Read everything before deleting anything: DIR may be the kept copy itself.
    let mut contents = Vec::new();
    for (rel, from) in &files {
        let bytes = fs::read(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
        contents.push((rel, bytes));
    }
    let uapi = root.join(DIR);
    let include = uapi.join("include");
    if include.exists() {
        fs::remove_dir_all(&include).map_err(|e| format!("removing {}: {e}", include.display()))?;
    }
    for (rel, bytes) in &contents {
        let to = include.join(rel);
        let parent = to.parent().expect("a header path has a folder");
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        fs::write(&to, bytes).map_err(|e| format!("writing {}: {e}", to.display()))?;
    }
    let origin = uapi.join("ORIGIN");
    fs::write(&origin, &tree.origin).map_err(|e| format!("writing {}: {e}", origin.display()))?;
    println!(
        "replaced {DIR}/include by the {} headers bindgen reads, from {first}",
        files.len()
    );
    Ok(())
}

/// Downloads `linux-libc-dev` (`version`, or the newest in `suite`) and unpacks it under
/// `target/xtask/`.
fn debian_tree(root: &Path, version: Option<&str>, suite: &str) -> Result<Tree> {
    apt::require_tools("or pass --headers DIR with a UAPI include tree")?;
    let work = root.join("target/xtask/uapi-update");
    if work.exists() {
        fs::remove_dir_all(&work).map_err(|e| format!("removing {}: {e}", work.display()))?;
    }
    fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let package = match version {
        Some(v) => format!("linux-libc-dev={v}"),
        None => "linux-libc-dev".to_string(),
    };
    let debs = apt::download(&work, suite, &[package]).map_err(|e| match version {
        Some(_) => {
            format!("{e} (is that version in {suite}? without one, --update takes the newest)")
        }
        None => e,
    })?;
    let [deb] = debs.as_slice() else {
        return Err(format!("expected one .deb in {}", work.display()));
    };
    let version = apt::field(deb, "Version")?;
    let sha256 = sha256(deb)?;
    apt::extract(deb, &work.join("root"))?;
    let include = work.join("root/usr/include");
    if !include.join("linux/io_uring.h").exists() {
        return Err(format!("{} has no linux/io_uring.h", deb.display()));
    }
    let file = deb.file_name().unwrap_or_default().to_string_lossy();
    let origin = format!(
        "Debian linux-libc-dev {version} from {suite}\n\
         \n\
         Package file: {file}\n\
         SHA-256: {sha256}\n\
         Copied: the headers clang opens for uring-sys's bindings, from the package's usr/include/\n\
         (usr/include/{MULTIARCH}/asm/ becomes asm/).\n\
         Written by `cargo xtask regen-bindings --update`; the first line is quoted in the\n\
         generated files.\n"
    );
    Ok(Tree {
        include_dirs: vec![include.join(MULTIARCH), include],
        origin,
    })
}

/// A UAPI include tree on disk: `dir` itself or its `include/`.
fn local_tree(dir: &Path) -> Result<Tree> {
    let dir = fs::canonicalize(dir).map_err(|e| format!("--headers {}: {e}", dir.display()))?;
    let include = if dir.join("include/linux/io_uring.h").exists() {
        dir.join("include")
    } else {
        dir
    };
    if !include.join("linux/io_uring.h").exists() {
        return Err(format!("{} has no linux/io_uring.h", include.display()));
    }
    let mut include_dirs = Vec::new();
    if include.join(MULTIARCH).is_dir() {
        include_dirs.push(include.join(MULTIARCH));
    }
    include_dirs.push(include.clone());
    let version = fs::read_to_string(include.join("linux/version.h"))
        .ok()
        .and_then(|text| kernel_version(&text));
    let what = match version {
        Some(v) => format!("Linux {v} UAPI headers"),
        None => "Linux UAPI headers of unknown version (no linux/version.h)".to_string(),
    };
    let origin = format!(
        "{what} from a local include tree\n\
         \n\
         Copied: the headers clang opens for uring-sys's bindings, from a UAPI include tree\n\
         (`make headers_install` output or a distribution's /usr/include).\n\
         Written by `cargo xtask regen-bindings --update --headers DIR`; the first line is quoted\n\
         in the generated files.\n"
    );
    Ok(Tree {
        include_dirs,
        origin,
    })
}

/// The kernel version `linux/version.h` names (`"7.3.4"`).
fn kernel_version(version_h: &str) -> Option<String> {
    let define = |name: &str| {
        version_h.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("#define")?.trim_start();
            rest.strip_prefix(name)?
                .strip_prefix(|c: char| c.is_whitespace())?
                .trim()
                .parse::<u32>()
                .ok()
        })
    };
    if let (Some(a), Some(b), Some(c)) = (
        define("LINUX_VERSION_MAJOR"),
        define("LINUX_VERSION_PATCHLEVEL"),
        define("LINUX_VERSION_SUBLEVEL"),
    ) {
        return Some(format!("{a}.{b}.{c}"));
    }
    // Older headers have only the packed code: (a << 16) + (b << 8) + c.
    let code = define("LINUX_VERSION_CODE")?;
    Some(format!(
        "{}.{}.{}",
        code >> 16,
        (code >> 8) & 0xff,
        code & 0xff
    ))
}

/// `opened` (files as clang found them: an include folder joined with the name in `#include`)
/// relative to the folder each was found under (the longest of `include_dirs` that holds it),
/// with the file to copy. Paths are compared as written, not resolved: Debian's `asm/` headers
/// are symbolic links into another folder.
fn relative(
    include_dirs: &[PathBuf],
    opened: &BTreeSet<PathBuf>,
) -> Result<BTreeMap<PathBuf, PathBuf>> {
    let mut files = BTreeMap::new();
    for file in opened {
        let rel = include_dirs
            .iter()
            .filter_map(|d| file.strip_prefix(d).ok())
            .min_by_key(|rel| rel.components().count())
            .ok_or_else(|| {
                format!(
                    "clang opened {}, outside the include folders",
                    file.display()
                )
            })?;
        if let Some(other) = files.insert(rel.to_path_buf(), file.clone()) {
            return Err(format!(
                "{} and {} would both be kept as {}",
                other.display(),
                file.display(),
                rel.display()
            ));
        }
    }
    Ok(files)
}

/// The files under `include` that clang did not open (relative paths, sorted).
pub(crate) fn unused(include: &Path, opened: &BTreeSet<PathBuf>) -> Result<Vec<String>> {
    let mut unused = Vec::new();
    let mut dirs = vec![include.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if !opened.contains(&path) {
                let rel = path.strip_prefix(include).unwrap_or(&path);
                unused.push(rel.display().to_string());
            }
        }
    }
    unused.sort();
    Ok(unused)
}

/// The SHA-256 of `file`, in hex (`sha256sum`).
fn sha256(file: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(hash) if out.status.success() && hash.len() == 64 => Ok(hash.to_string()),
        _ => Err(format!("sha256sum {} failed", file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_version_from_either_form() {
        let new = "#define LINUX_VERSION_CODE 459524\n\
                   #define KERNEL_VERSION(a,b,c) (((a) << 16) + ((b) << 8) + (c))\n\
                   #define LINUX_VERSION_MAJOR 7\n\
                   #define LINUX_VERSION_PATCHLEVEL 3\n\
                   #define LINUX_VERSION_SUBLEVEL 4\n";
        assert_eq!(kernel_version(new).as_deref(), Some("7.3.4"));
        let old = "#define LINUX_VERSION_CODE 393473\n";
        assert_eq!(kernel_version(old).as_deref(), Some("6.1.1"));
        assert_eq!(kernel_version("#define LINUX_VERSION_CODEX 1\n"), None);
    }

    #[test]
    fn kept_paths_are_relative_to_the_deepest_include_folder() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = fs::canonicalize(dir.path()).unwrap();
        let arch = tmp.join(MULTIARCH);
        for f in [
            "linux/types.h",
            "x86_64-linux-gnu/asm/types.h",
            "linux/unused.h",
        ] {
            let path = tmp.join(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "").unwrap();
        }
        let opened: BTreeSet<PathBuf> = [arch.join("asm/types.h"), tmp.join("linux/types.h")]
            .into_iter()
            .collect();
        let files = relative(&[arch.clone(), tmp.clone()], &opened).unwrap();
        let rels: Vec<&Path> = files.keys().map(PathBuf::as_path).collect();
        assert_eq!(rels, [Path::new("asm/types.h"), Path::new("linux/types.h")]);
        let outside: BTreeSet<PathBuf> = [tmp.join("linux/types.h")].into_iter().collect();
        assert!(relative(&[arch], &outside)
            .unwrap_err()
            .contains("outside the include folders"));
        assert_eq!(unused(&tmp, &opened).unwrap(), ["linux/unused.h"]);
    }
}
