//! Maintainer commands for the uring workspace.
//!
//! Run with `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).
//!
//! - `regen-bindings [--check | --update [VERSION] [--suite SUITE] | --update --headers DIR]`:
//!   regenerate `uring-sys/src/bindings.rs` and `names.rs` from the Linux UAPI headers kept in
//!   `uapi/` (see [`bindings`]), or replace those headers first (see [`uapi`]).
//! - `kernel-matrix [--kernel K]... [--fs FS]... [--binary NAME]...`: run the test binaries
//!   on each supported kernel, booted under qemu (see [`kernel_matrix`]).

mod apt;
mod bindings;
mod kernel_matrix;
mod names;
mod uapi;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("regen-bindings") => bindings::regen_bindings(&args[1..]),
        Some("kernel-matrix") => kernel_matrix::kernel_matrix(&args[1..]),
        Some("help") | Some("--help") | None => {
            print_help();
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`; run `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <command>\n\n\
         commands:\n  \
         regen-bindings [--check]\n      \
         regenerate uring-sys/src/{{bindings,names}}.rs from the UAPI headers in uapi/\n      \
         (no network; needs libclang and rustfmt)\n      \
         --check     fail if a checked-in file differs from a fresh generation\n  \
         regen-bindings --update [VERSION] [--suite SUITE]\n      \
         replace uapi/ by Debian's linux-libc-dev VERSION (default: the newest) from\n      \
         SUITE (default: {}), fetched with apt-get download, then regenerate\n  \
         regen-bindings --update --headers DIR\n      \
         replace uapi/ from a UAPI include tree (e.g. `make headers_install`), then\n      \
         regenerate\n  \
         kernel-matrix [--kernel 6.1|6.12|newest]... [--fs ext4|tmpfs]... [--binary NAME]...\n      \
         run the workspace's test binaries on Debian's 6.1, 6.12 and newest kernels under\n      \
         qemu (default: all three; kernels and images cached in target/kernel-matrix/)\n      \
         --fs        where the tests' files go (TMPDIR); default: a run on each\n      \
         --binary    only the test binaries whose source path contains NAME",
        uapi::DEFAULT_SUITE,
    );
}

fn workspace_root() -> PathBuf {
    // xtask/ lives directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

/// Runs `cmd`; on failure, the error names `what` and the last line the command printed.
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("{what} failed: {last}"))
    }
}
