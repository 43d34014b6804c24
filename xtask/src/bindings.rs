//! `cargo xtask regen-bindings`: `uring-sys/src/bindings.rs` from Linux UAPI headers, by
//! bindgen.

use crate::{apt, workspace_root, Result};
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Debian `linux-libc-dev` version the checked-in bindings come from.
pub(crate) const PINNED_VERSION: &str = "7.3.4-1~bpo13+1";
/// The Debian suite that carries [`PINNED_VERSION`].
pub(crate) const PINNED_SUITE: &str = "trixie-backports";
/// Multiarch folder of the UAPI `asm/` headers inside the package.
const MULTIARCH: &str = "x86_64-linux-gnu";

pub(crate) fn regen_bindings(args: &[String]) -> Result<()> {
    let mut check = false;
    let mut headers: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--headers" => {
                let dir = it.next().ok_or("--headers needs a directory")?;
                headers = Some(PathBuf::from(dir));
            }
            other => return Err(format!("unknown argument `{other}` for regen-bindings")),
        }
    }
    let root = workspace_root();
    let (include_dirs, source) = match headers {
        Some(dir) => {
            let dir =
                fs::canonicalize(&dir).map_err(|e| format!("--headers {}: {e}", dir.display()))?;
            // Accept either the tree itself or a `make headers_install` prefix (with include/).
            let inc = if dir.join("include/linux/io_uring.h").exists() {
                dir.join("include")
            } else {
                dir
            };
            if !inc.join("linux/io_uring.h").exists() {
                return Err(format!("{} has no linux/io_uring.h", inc.display()));
            }
            let source = format!("UAPI headers from --headers {}", inc.display());
            (vec![inc.join(MULTIARCH), inc], source)
        }
        None => {
            let inc = fetch_pinned_headers(&root)?;
            let source = format!("Debian linux-libc-dev {PINNED_VERSION} ({PINNED_SUITE})");
            (vec![inc.join(MULTIARCH), inc], source)
        }
    };
    let generated = generate(&include_dirs, &source)?;
    let out = root.join("uring-sys/src/bindings.rs");
    if check {
        let current = fs::read_to_string(&out).unwrap_or_default();
        if current != generated {
            return Err(
                "bindings.rs is out of date: run `cargo xtask regen-bindings` and commit".into(),
            );
        }
        println!("bindings.rs is up to date ({source})");
    } else {
        fs::write(&out, generated).map_err(|e| format!("writing {}: {e}", out.display()))?;
        println!("wrote {} ({source})", out.display());
    }
    Ok(())
}

/// Downloads and unpacks the pinned `linux-libc-dev` into `target/xtask/`, once.
///
/// Returns the `usr/include` folder of the unpacked package.
fn fetch_pinned_headers(root: &Path) -> Result<PathBuf> {
    let base = root
        .join("target/xtask/linux-libc-dev")
        .join(PINNED_VERSION);
    let include = base.join("root/usr/include");
    if include.join("linux/io_uring.h").exists() {
        return Ok(include);
    }
    apt::require_tools("or pass --headers DIR with a UAPI include tree")?;
    fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
    let debs = apt::download(
        &base,
        PINNED_SUITE,
        &[format!("linux-libc-dev={PINNED_VERSION}")],
    )
    .map_err(|e| {
        format!(
            "{e} (is the pinned version still in {PINNED_SUITE}? if not, bump PINNED_VERSION in \
             xtask/src/bindings.rs)"
        )
    })?;
    for deb in &debs {
        apt::extract(deb, &base.join("root"))?;
    }
    if !include.join("linux/io_uring.h").exists() {
        return Err(format!("{} has no linux/io_uring.h", base.display()));
    }
    Ok(include)
}

/// Looks for libclang the way clang-sys does, so a missing one is a one-line error.
fn libclang_present() -> bool {
    if let Ok(p) = env::var("LIBCLANG_PATH") {
        return Path::new(&p).exists();
    }
    let mut dirs = vec![
        PathBuf::from("/usr/lib"),
        PathBuf::from("/usr/lib64"),
        PathBuf::from("/usr/lib/x86_64-linux-gnu"),
        PathBuf::from("/usr/local/lib"),
    ];
    if let Ok(rd) = fs::read_dir("/usr/lib") {
        dirs.extend(
            rd.filter_map(|e| e.ok().map(|e| e.path().join("lib")))
                .filter(|p| p.to_string_lossy().contains("llvm")),
        );
    }
    dirs.iter().any(|d| {
        fs::read_dir(d).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok())
                .any(|e| is_libclang_name(&e.file_name().to_string_lossy()))
        })
    })
}

/// Whether clang-sys takes a file of this name for libclang's C library: `libclang.so`,
/// `libclang-*.so`, `libclang.so.*`, `libclang-*.so.*`, but not Clang's C++ library
/// (`libclang-cpp.so.N`), which machines with LLVM's development files have without it.
fn is_libclang_name(name: &str) -> bool {
    !name.contains("-cpp.")
        && (name == "libclang.so"
            || name.starts_with("libclang.so.")
            || (name.starts_with("libclang-") && (name.ends_with(".so") || name.contains(".so."))))
}

/// Kernel integer typedefs that come out as plain Rust integers.
const INT_TYPEDEFS: &[(&str, &str)] = &[
    ("__u8", "u8"),
    ("__s8", "i8"),
    ("__u16", "u16"),
    ("__s16", "i16"),
    ("__u32", "u32"),
    ("__s32", "i32"),
    ("__u64", "u64"),
    ("__s64", "i64"),
    ("__kernel_rwf_t", "i32"),
];

/// C integer types that are the same Rust integer on every Linux target.
const C_INTS: &[(&str, &str)] = &[
    ("::core::ffi::c_uchar", "u8"),
    ("::core::ffi::c_ushort", "u16"),
    ("::core::ffi::c_uint", "u32"),
    ("::core::ffi::c_int", "i32"),
    ("::core::ffi::c_ulonglong", "u64"),
    ("::core::ffi::c_longlong", "i64"),
];

fn generate(include_dirs: &[PathBuf], source: &str) -> Result<String> {
    if !libclang_present() {
        return Err(
            "libclang not found: install it (`apt-get install -y libclang-dev`) or set LIBCLANG_PATH"
                .into(),
        );
    }
    let headers = ["linux/io_uring.h", "linux/io_uring/zcrx.h"];
    let base_wrapper = "#include <linux/io_uring.h>\n#include <linux/openat2.h>\n";
    // bindgen's macro evaluator cannot follow macros built from enum values (IOSQE_*) and gives
    // `~0U` a signed type; clang can. Such macros are re-declared as typed constants that clang
    // evaluates, then renamed back.
    let fallback = fallback_macros(include_dirs, &headers, base_wrapper)?;
    let mut wrapper = base_wrapper.to_string();
    for name in &fallback {
        writeln!(
            wrapper,
            "static const __typeof__({name}) {FALLBACK_PREFIX}{name} = {name};"
        )
        .unwrap();
    }
    let mut builder = builder(include_dirs, &wrapper).allowlist_var(format!("{FALLBACK_PREFIX}.*"));
    for name in &fallback {
        builder = builder.blocklist_item(name);
    }
    let raw = run_bindgen(builder)?.replace(FALLBACK_PREFIX, "");
    let mut text = String::new();
    writeln!(
        text,
        "// Generated by `cargo xtask regen-bindings` from {source}: linux/io_uring.h, \
         linux/io_uring/zcrx.h, __kernel_timespec, open_how. Do not edit by hand."
    )
    .unwrap();
    text.push_str(
        "#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]\n\
         #![allow(missing_docs, missing_debug_implementations)]\n",
    );
    text.push_str("#![allow(clippy::all, clippy::undocumented_unsafe_blocks)]\n\n");
    text.push_str(&raw);
    // Format first so that every item is on lines of its own, then make integer types plain
    // (`__u32` and `c_uint` become `u32`: identical on every Linux target) and format again.
    let text = replace_int_typedefs(&rustfmt(&text)?);
    rustfmt(&text)
}

const FALLBACK_PREFIX: &str = "uring_xtask_fallback_";

fn builder(include_dirs: &[PathBuf], wrapper: &str) -> bindgen::Builder {
    let mut builder = bindgen::Builder::default()
        .header_contents("uring_wrapper.h", wrapper)
        .clang_arg("-nostdinc")
        .allowlist_file(".*/linux/io_uring\\.h")
        .allowlist_file(".*/linux/io_uring/zcrx\\.h")
        .allowlist_type("__kernel_timespec")
        .allowlist_type("open_how")
        .allowlist_var("RESOLVE_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .derive_debug(true)
        .derive_copy(true)
        .layout_tests(true)
        .use_core()
        .wrap_unsafe_ops(true)
        .generate_comments(false)
        .formatter(bindgen::Formatter::None);
    for dir in include_dirs {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    builder
}

fn run_bindgen(builder: bindgen::Builder) -> Result<String> {
    let bindings =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()))
            .map_err(|_| {
                "bindgen panicked (is libclang usable? `apt-get install -y libclang-dev`)"
            })?
            .map_err(|e| format!("bindgen failed: {e}"))?;
    Ok(bindings.to_string())
}

/// Object-like macros of `headers` that a plain bindgen run drops or types wrongly.
fn fallback_macros(
    include_dirs: &[PathBuf],
    headers: &[&str],
    wrapper: &str,
) -> Result<Vec<String>> {
    let plain = run_bindgen(builder(include_dirs, wrapper))?;
    let mut names = Vec::new();
    for header in headers {
        let path = include_dirs
            .iter()
            .map(|d| d.join(header))
            .find(|p| p.exists())
            .ok_or_else(|| format!("{header} not found in the include path"))?;
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("#define") else {
                continue;
            };
            let rest = rest.trim_start();
            let name_len = rest
                .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                .unwrap_or(rest.len());
            let (name, body) = rest.split_at(name_len);
            // Skip function-like macros and valueless ones (include guards).
            if body.starts_with('(') || body.trim().is_empty() {
                continue;
            }
            let emitted = plain.contains(&format!("pub const {name}:"));
            if !emitted || body.contains('~') {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Replaces the kernel's integer typedef names by Rust integer types and drops their aliases.
fn replace_int_typedefs(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let t = line.trim_start();
        if INT_TYPEDEFS
            .iter()
            .any(|(c, _)| t.starts_with(&format!("pub type {c} =")))
        {
            continue;
        }
        let mut line = replace_idents(line);
        for (c, rust) in C_INTS {
            line = line.replace(c, rust);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn replace_idents(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let bytes = line.as_bytes();
    let is_ident = |b: u8| b == b'_' || b.is_ascii_alphanumeric();
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if is_ident(bytes[i]) && (i == 0 || !is_ident(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            if let Some((_, rust)) = INT_TYPEDEFS.iter().find(|(c, _)| *c == &line[start..i]) {
                out.push_str(&line[copied..start]);
                out.push_str(rust);
                copied = i;
            }
        } else {
            i += 1;
        }
    }
    out.push_str(&line[copied..]);
    out
}

fn rustfmt(src: &str) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running rustfmt (`rustup component add rustfmt`): {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(src.as_bytes())
        .map_err(|e| format!("feeding rustfmt: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "rustfmt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("rustfmt output: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn libclang_names_are_those_clang_sys_loads() {
        for name in [
            "libclang.so",
            "libclang.so.1",
            "libclang-14.so",
            "libclang-14.so.1",
            "libclang-14.0.6.so",
        ] {
            assert!(super::is_libclang_name(name), "{name}");
        }
        for name in [
            "libclang-cpp.so.14",
            "libclang-cpp.so",
            "libclangAST.a",
            "libclang-14.a",
            "libclang.a",
        ] {
            assert!(!super::is_libclang_name(name), "{name}");
        }
    }
}
