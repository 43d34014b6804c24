//! `cargo xtask regen-bindings`: the files of `uring-sys` generated from the Linux UAPI headers
//! kept in `uapi/include` (see [`crate::uapi`]): `bindings.rs` by bindgen, and `names.rs` from
//! `bindings.rs` (see [`crate::names`]).
//!
//! Generating and checking read only files in the repository (and need libclang and rustfmt);
//! `--update` is the one mode that fetches headers, and it replaces the kept copy first.

use crate::uapi::{self, Source};
use crate::{names, workspace_root, Result};
use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// The generated files, relative to the workspace root.
const BINDINGS_RS: &str = "uring-sys/src/bindings.rs";
const NAMES_RS: &str = "uring-sys/src/names.rs";

/// What `regen-bindings` was asked to do.
#[derive(Debug, PartialEq)]
struct Options {
    /// Compare instead of writing.
    check: bool,
    /// Replace `uapi/include` from this source first.
    update: Option<Source>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        use lexopt::prelude::*;
        let mut parser = lexopt::Parser::from_args(args);
        let (mut check, mut update) = (false, false);
        let (mut version, mut suite, mut headers) = (None, None, None);
        let err = |e: lexopt::Error| format!("regen-bindings: {e}");
        while let Some(arg) = parser.next().map_err(err)? {
            match arg {
                Long("check") => check = true,
                Long("update") => update = true,
                Long("suite") => {
                    suite = Some(parser.value().and_then(|v| v.string()).map_err(err)?)
                }
                Long("headers") => headers = Some(PathBuf::from(parser.value().map_err(err)?)),
                Value(v) if update && version.is_none() && headers.is_none() => {
                    version = Some(v.string().map_err(err)?)
                }
                _ => return Err(err(arg.unexpected())),
            }
        }
        if check && update {
            return Err("regen-bindings: --check and --update exclude each other".into());
        }
        if !update && (suite.is_some() || headers.is_some()) {
            return Err(
                "regen-bindings: --suite and --headers go with --update (the bindings are always \
                 generated from uapi/include)"
                    .into(),
            );
        }
        let update = match (update, headers) {
            (false, _) => None,
            (true, Some(dir)) => {
                if version.is_some() || suite.is_some() {
                    return Err(
                        "regen-bindings: --headers takes the headers from DIR, not a VERSION or \
                         --suite"
                            .into(),
                    );
                }
                Some(Source::Dir(dir))
            }
            (true, None) => Some(Source::Debian {
                version,
                suite: suite.unwrap_or_else(|| uapi::DEFAULT_SUITE.to_string()),
            }),
        };
        Ok(Options { check, update })
    }
}

pub(crate) fn regen_bindings(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let root = workspace_root();
    if let Some(source) = &opts.update {
        uapi::update(&root, source)?;
    }
    let include = root.join(uapi::DIR).join("include");
    let origin = uapi::origin(&root.join(uapi::DIR))?;
    let generated = generate(std::slice::from_ref(&include), &origin)?;
    let names = names::generate(&generated.text, &origin)?;
    // Only what clang opens is kept: a header nothing reads is one nobody reviews on update.
    let unused = uapi::unused(&include, &generated.opened)?;
    let unused = (!unused.is_empty()).then(|| {
        format!(
            "{}/include holds headers bindgen does not read: {}; delete them (or run \
             `cargo xtask regen-bindings --update`)",
            uapi::DIR,
            unused.join(", ")
        )
    });
    let outputs = [(BINDINGS_RS, generated.text), (NAMES_RS, names)];
    if opts.check {
        let mut problems: Vec<String> = outputs
            .iter()
            .filter_map(|(path, fresh)| {
                let current = fs::read_to_string(root.join(path)).unwrap_or_default();
                up_to_date(path, &current, fresh).err()
            })
            .collect();
        problems.extend(unused.map(|e| e + " and commit"));
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        println!("{BINDINGS_RS} and {NAMES_RS} are up to date (uapi/include: {origin})");
    } else {
        if let Some(e) = unused {
            return Err(e);
        }
        for (path, fresh) in &outputs {
            let file = root.join(path);
            if fs::read_to_string(&file).is_ok_and(|current| current == *fresh) {
                println!("{path} is unchanged");
            } else {
                fs::write(&file, fresh).map_err(|e| format!("writing {}: {e}", file.display()))?;
                println!("wrote {path}");
            }
        }
        println!("(from uapi/include: {origin})");
    }
    Ok(())
}

/// `Ok` when the checked-in `current` text of `path` equals a `fresh` generation; otherwise the
/// error `--check` reports, naming the first line that differs.
pub(crate) fn up_to_date(path: &str, current: &str, fresh: &str) -> Result<()> {
    if current == fresh {
        return Ok(());
    }
    let line = current
        .lines()
        .zip(fresh.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| current.lines().count().min(fresh.lines().count()))
        + 1;
    Err(format!(
        "{path} differs from a fresh generation at line {line}: not up to date, run \
         `cargo xtask regen-bindings` and commit"
    ))
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

/// A fresh `bindings.rs`, and the headers clang opened to make it.
pub(crate) struct Generated {
    /// The text of `bindings.rs`, formatted.
    pub(crate) text: String,
    /// Every header the include chain reached, as clang found it (the wrapper's own includes
    /// and theirs, transitively).
    pub(crate) opened: BTreeSet<PathBuf>,
}

/// Collects the files clang includes while bindgen parses.
#[derive(Debug, Default, Clone)]
struct Opened(Arc<Mutex<BTreeSet<PathBuf>>>);

impl bindgen::callbacks::ParseCallbacks for Opened {
    fn include_file(&self, filename: &str) {
        self.0
            .lock()
            .expect("bindgen does not panic while holding the lock")
            .insert(PathBuf::from(filename));
    }
}

/// The io_uring headers whose items the bindings keep (`zcrx.h` is included by `io_uring.h`;
/// `query.h` and `bpf_filter.h` describe the arguments of `IORING_REGISTER_QUERY` and
/// `IORING_REGISTER_BPF_FILTER` and are included by nothing).
const HEADERS: [&str; 4] = [
    "linux/io_uring.h",
    "linux/io_uring/zcrx.h",
    "linux/io_uring/query.h",
    "linux/io_uring/bpf_filter.h",
];

/// Runs bindgen over the UAPI headers found in `include_dirs` (and only there: `-nostdinc`).
/// `origin` is quoted in the first line of the result.
pub(crate) fn generate(include_dirs: &[PathBuf], origin: &str) -> Result<Generated> {
    if !libclang_present() {
        return Err(
            "libclang not found: install it (`apt-get install -y libclang-dev`) or set LIBCLANG_PATH"
                .into(),
        );
    }
    let headers = HEADERS;
    let mut base_wrapper = String::new();
    for h in HEADERS.iter().chain(&["linux/openat2.h"]) {
        writeln!(base_wrapper, "#include <{h}>").unwrap();
    }
    let base_wrapper = base_wrapper.as_str();
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
    let opened = Opened::default();
    let mut builder = builder(include_dirs, &wrapper)
        .allowlist_var(format!("{FALLBACK_PREFIX}.*"))
        .parse_callbacks(Box::new(opened.clone()));
    for name in &fallback {
        builder = builder.blocklist_item(name);
    }
    let raw = run_bindgen(builder)?.replace(FALLBACK_PREFIX, "");
    let mut text = String::new();
    writeln!(
        text,
        "// Generated by `cargo xtask regen-bindings` from uapi/include ({origin}): \
         {}, __kernel_timespec, open_how. Do not edit by hand.",
        HEADERS.join(", ")
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
    let text = rustfmt(&replace_int_typedefs(&rustfmt(&text)?))?;
    let opened = std::mem::take(&mut *opened.0.lock().expect("bindgen has returned"));
    Ok(Generated { text, opened })
}

const FALLBACK_PREFIX: &str = "uring_xtask_fallback_";

fn builder(include_dirs: &[PathBuf], wrapper: &str) -> bindgen::Builder {
    let mut builder = bindgen::Builder::default()
        .header_contents("uring_wrapper.h", wrapper)
        .clang_arg("-nostdinc")
        .allowlist_file(".*/linux/io_uring\\.h")
        .allowlist_file(".*/linux/io_uring/(zcrx|query|bpf_filter)\\.h")
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

pub(crate) fn rustfmt(src: &str) -> Result<String> {
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
    use super::*;

    fn parse(args: &[&str]) -> Result<Options> {
        Options::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments() {
        let plain = Options {
            check: false,
            update: None,
        };
        assert_eq!(parse(&[]).unwrap(), plain);
        assert!(parse(&["--check"]).unwrap().check);
        let debian = |version: Option<&str>, suite: &str| Options {
            check: false,
            update: Some(Source::Debian {
                version: version.map(str::to_string),
                suite: suite.to_string(),
            }),
        };
        assert_eq!(
            parse(&["--update"]).unwrap(),
            debian(None, uapi::DEFAULT_SUITE)
        );
        assert_eq!(
            parse(&["--update", "7.4.1-1", "--suite", "sid"]).unwrap(),
            debian(Some("7.4.1-1"), "sid")
        );
        assert_eq!(
            parse(&["--update", "--headers", "/h"]).unwrap().update,
            Some(Source::Dir(PathBuf::from("/h")))
        );
        for bad in [
            &["--check", "--update"][..],
            &["--headers", "/h"],
            &["--suite", "sid"],
            &["7.4.1-1"],
            &["--update", "1", "2"],
            &["--update", "1", "--headers", "/h"],
            &["--update", "--headers"],
            &["--frobnicate"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_one_character_edit_is_caught() {
        let fresh = "// Generated\npub const A: u32 = 1;\npub const B: u32 = 2;\n";
        assert!(up_to_date("x.rs", fresh, fresh).is_ok());
        let edited = fresh.replace("B: u32 = 2", "B: u32 = 3");
        let err = up_to_date("x.rs", &edited, fresh).unwrap_err();
        assert_eq!(
            err,
            "x.rs differs from a fresh generation at line 3: not up to date, run \
             `cargo xtask regen-bindings` and commit"
        );
        // A missing last line, and a missing file (read as empty).
        let short = "// Generated\npub const A: u32 = 1;\n";
        assert!(up_to_date("x.rs", short, fresh)
            .unwrap_err()
            .contains("at line 3"));
        assert!(up_to_date("x.rs", "", fresh)
            .unwrap_err()
            .contains("at line 1"));
    }

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
