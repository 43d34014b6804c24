//! `cargo xtask kernel-matrix`: the workspace's test binaries, booted under qemu on each kernel
//! the project supports.
//!
//! 1. Builds the test binaries (`cargo test --workspace --no-run`, debug, with uring-ops'
//!    async features so that its async tests run too).
//! 2. Resolves each kernel from Debian's package lists (the candidate of `linux-image-amd64` in
//!    the kernel's suite), downloads and unpacks it under `target/kernel-matrix/`, once per
//!    version.
//! 3. Boots each kernel with `qemu-system-x86_64` (see [`vm`]), which runs every binary once
//!    with its files (`TMPDIR`) on ext4 and once on tmpfs.
//! 4. Prints one line per kernel, file system and binary, the `skipped:` lines, and the whole
//!    output of any binary that failed. Fails if any did.

mod vm;

use crate::{apt, workspace_root, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use vm::{find_in_path, mkdir, write, Outcome, BINARY_TIMEOUT_SECS};

/// A kernel the project claims to support, as Debian ships it.
struct KernelSpec {
    /// What `--kernel` selects it by.
    name: &'static str,
    /// The Debian suite whose `linux-image-amd64` is this kernel.
    suite: &'static str,
    /// The version the suite's kernel must start with, if the name promises one.
    series: Option<&'static str>,
}

/// The oldest LTS kernel we claim (Debian 12), the current LTS (Debian 13), and the newest
/// Debian ships (trixie-backports). Versions are not pinned: each run takes the suite's current
/// kernel, so security updates and new backports are tested as they land.
const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        name: "6.1",
        suite: "bookworm",
        series: Some("6.1."),
    },
    KernelSpec {
        name: "6.12",
        suite: "trixie",
        series: Some("6.12."),
    },
    KernelSpec {
        name: "newest",
        suite: "trixie-backports",
        series: None,
    },
];

/// Where the tests put their files (`TMPDIR`), one run of every binary each: ext4 on the VM's
/// disk (a disk file system: page cache, every fallocate mode, `O_DIRECT`) and tmpfs (what
/// `/tmp` is on many systems, Debian 13's included), whose reads and writes io_uring may hand
/// to its io-wq workers where ext4's complete inline.
const FILE_SYSTEMS: &[(&str, &str)] = &[("ext4", "/mnt/tmp"), ("tmpfs", "/tmpfs")];

/// A workspace test binary: what to call it, and where cargo put it.
struct TestBinary {
    /// Its source, relative to the workspace root (`uring-ops/tests/chain.rs`).
    label: String,
    exe: PathBuf,
}

/// A kernel ready to boot.
struct Kernel {
    /// `6.1 (6.1.176-1, 6.1.0-50-amd64)`: the name, the package version and the release.
    title: String,
    vmlinuz: PathBuf,
    /// `lib/modules/<release>` inside the unpacked packages.
    modules: PathBuf,
}

/// What to run: `--kernel K`... (default: all), `--fs FS`... (default: all), `--binary NAME`...
/// (default: all; a binary is chosen when its source path contains a NAME).
struct Options {
    kernels: Vec<&'static KernelSpec>,
    file_systems: Vec<&'static (&'static str, &'static str)>,
    binaries: Vec<String>,
}

pub(crate) fn kernel_matrix(args: &[String]) -> Result<()> {
    let options = parse_args(args)?;
    for tool in [
        "qemu-system-x86_64",
        "busybox",
        "mkfs.ext4",
        "cpio",
        "ldd",
        "xz",
    ] {
        find_in_path(tool).ok_or_else(|| {
            format!("`{tool}` not found (Debian: qemu-system-x86 busybox-static e2fsprogs cpio libc-bin xz-utils)")
        })?;
    }
    apt::require_tools("the kernel images come from Debian's archive")?;
    let root = workspace_root();
    let work = root.join("target/kernel-matrix");
    let (mut binaries, examples) = build_test_binaries(&root)?;
    if !options.binaries.is_empty() {
        binaries.retain(|b| {
            options
                .binaries
                .iter()
                .any(|n| b.label.contains(n.as_str()))
        });
        if binaries.is_empty() {
            return Err(format!(
                "no test binary matches {}",
                options.binaries.join(", ")
            ));
        }
    }
    let disk = vm::make_disk(&root, &work, &binaries, &examples)?;

    let mut failed = Vec::new();
    for spec in options.kernels {
        let kernel = fetch_kernel(&work, spec)?;
        let initramfs = vm::make_initramfs(
            &work.join(format!("vm-{}", spec.name)),
            &kernel,
            binaries.iter().map(|b| &b.exe).chain(&examples),
            &options.file_systems,
        )?;
        println!("\n== {}", kernel.title);
        let console = work.join(format!("vm-{}/console.log", spec.name));
        let outcomes = vm::boot(&kernel, &initramfs, &disk, &console)?;
        if !report(&kernel, &binaries, &options.file_systems, &outcomes) {
            println!("   (kernel log: {})", console.display());
            failed.push(kernel.title);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("tests failed on {}", failed.join(", ")))
    }
}

fn parse_args(args: &[String]) -> Result<Options> {
    use lexopt::Arg::Long;
    let names = || {
        KERNELS
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parser = lexopt::Parser::from_args(args);
    let mut selected: Vec<&'static KernelSpec> = Vec::new();
    let mut binaries = Vec::new();
    let mut file_systems = Vec::new();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("kernel") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                let name = value.to_string_lossy();
                let spec = KERNELS
                    .iter()
                    .find(|k| k.name == name)
                    .ok_or_else(|| format!("unknown kernel `{name}`: one of {}", names()))?;
                if !selected.iter().any(|s| s.name == spec.name) {
                    selected.push(spec);
                }
            }
            Long("fs") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                let name = value.to_string_lossy();
                let fs = FILE_SYSTEMS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| format!("unknown file system `{name}`: ext4 or tmpfs"))?;
                if !file_systems.contains(&fs) {
                    file_systems.push(fs);
                }
            }
            Long("binary") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                binaries.push(value.to_string_lossy().into_owned());
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if selected.is_empty() {
        selected = KERNELS.iter().collect();
    }
    if file_systems.is_empty() {
        file_systems = FILE_SYSTEMS.iter().collect();
    }
    Ok(Options {
        kernels: selected,
        file_systems,
        binaries,
    })
}

/// `cargo test --workspace --no-run` (debug; with uring-ops' async features, whose tests are
/// empty without them): the test executables it reports but xtask's, and
/// the examples (which tests run, from `../examples/` beside their own executable).
fn build_test_binaries(root: &Path) -> Result<(Vec<TestBinary>, Vec<PathBuf>)> {
    println!("building the test binaries (cargo test --workspace --no-run)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--workspace", "--no-run"])
        .args(["--features", "uring-ops/tokio,uring-ops/async-io"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err("building the test binaries failed".into());
    }
    let mut binaries = Vec::new();
    let mut examples = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = msg["reason"] == "compiler-artifact" && msg["profile"]["test"] == true;
        let (Some(exe), Some(src)) = (
            msg["executable"].as_str(),
            msg["target"]["src_path"].as_str(),
        ) else {
            continue;
        };
        let src = Path::new(src);
        let label = src.strip_prefix(root).unwrap_or(src).display().to_string();
        // xtask's own tests touch no kernel interface (built anyway: excluding it would change
        // the workspace's feature resolution and rebuild what `cargo test --workspace` built).
        if is_test && !label.starts_with("xtask/") {
            binaries.push(TestBinary {
                label,
                exe: PathBuf::from(exe),
            });
        } else if msg["target"]["kind"][0] == "example" {
            examples.push(PathBuf::from(exe));
        }
    }
    binaries.sort_by(|a, b| a.label.cmp(&b.label));
    if binaries.is_empty() {
        return Err("cargo reported no test executables".into());
    }
    Ok((binaries, examples))
}

/// The file name a binary has on the test disk.
fn disk_name(b: &TestBinary) -> String {
    b.label.trim_end_matches(".rs").replace('/', ".")
}

/// Resolves `spec`'s kernel from its suite's package lists and unpacks it (once per version)
/// under `work/<suite>/<version>/`.
fn fetch_kernel(work: &Path, spec: &KernelSpec) -> Result<Kernel> {
    let dir = work.join(spec.suite);
    mkdir(&dir)?;
    let suite = apt::Suite::update(&dir, spec.suite)?;
    // The metapackage depends on the current image; the image on the packages holding the
    // kernel and its modules (older kernels: the image itself; newer: linux-binary-*, ...).
    let (meta_version, meta_deps) = suite.candidate("linux-image-amd64")?;
    let image = meta_deps
        .iter()
        .find(|d| d.starts_with("linux-image-"))
        .ok_or_else(|| {
            format!(
                "{}: linux-image-amd64 depends on no linux-image-*",
                spec.suite
            )
        })?;
    let release = image.trim_start_matches("linux-image-").to_string();
    if let Some(series) = spec.series {
        if !meta_version.starts_with(series) {
            return Err(format!(
                "{}'s kernel is now {meta_version}, not {series}x: update KERNELS in \
                 xtask/src/kernel_matrix.rs",
                spec.suite
            ));
        }
    }
    let title = format!("{} ({meta_version}, {release})", spec.name);
    let unpacked = dir.join(&meta_version);
    let root = unpacked.join("root");
    let done = unpacked.join("unpacked");
    if !done.exists() {
        println!(
            "fetching Debian's kernel {meta_version} from {}",
            spec.suite
        );
        // Older versions of this suite's kernel are of no more use.
        for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "apt") {
                fs::remove_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        mkdir(&unpacked)?;
        let (_, image_deps) = suite.candidate(image)?;
        let mut packages = vec![image.clone()];
        packages.extend(image_deps.into_iter().filter(|d| d.ends_with(&release)));
        for deb in suite.download(&unpacked, &packages)? {
            apt::extract(&deb, &root)?;
            fs::remove_file(&deb).map_err(|e| format!("{}: {e}", deb.display()))?;
        }
        write(&done, "")?;
    }
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(&release))
        .find(|d| d.is_dir())
        .ok_or_else(|| format!("{title}: no modules directory in the packages"))?;
    let vmlinuz = [
        root.join("boot").join(format!("vmlinuz-{release}")),
        modules.join("vmlinuz"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or_else(|| format!("{title}: no vmlinuz in the packages"))?;
    Ok(Kernel {
        title,
        vmlinuz,
        modules,
    })
}

/// Prints one line per file system and binary (and its skip lines, and the whole output of a
/// failed one). Returns whether every binary passed.
fn report(
    kernel: &Kernel,
    binaries: &[TestBinary],
    file_systems: &[&(&str, &str)],
    outcomes: &[Outcome],
) -> bool {
    let mut all_ok = true;
    for ((fs, _), b) in file_systems
        .iter()
        .flat_map(|fs| binaries.iter().map(move |b| (fs, b)))
    {
        let name = disk_name(b);
        let outcome = outcomes.iter().find(|o| o.fs == *fs && o.label == name);
        let (verdict, ok) = match outcome {
            None => ("NOT RUN".to_string(), false),
            Some(o) => summarize(o),
        };
        all_ok &= ok;
        println!(
            "{:<7} {:<6} {:<34} {verdict}",
            kernel_short(kernel),
            fs,
            b.label
        );
        let Some(o) = outcome else { continue };
        for line in o.stderr.iter().filter(|l| l.contains("skipped:")) {
            println!("      {line}");
        }
        if !ok {
            for line in o.output.iter().chain(&o.stderr) {
                println!("    | {line}");
            }
        }
    }
    all_ok
}

fn kernel_short(kernel: &Kernel) -> &str {
    kernel.title.split(" (").next().unwrap_or(&kernel.title)
}

/// `ok: 12 passed, 1 ignored` or `FAILED (exit 101): 2 of 14 failed: a, b`.
fn summarize(o: &Outcome) -> (String, bool) {
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    for line in &o.output {
        // test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...
        let Some(rest) = line.strip_prefix("test result: ") else {
            continue;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let n: u32 = n.parse().unwrap_or(0);
            match what {
                "passed" => passed += n,
                "failed" => failed += n,
                "ignored" => ignored += n,
                _ => {}
            }
        }
    }
    let failures: Vec<&str> = o
        .output
        .iter()
        .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .collect();
    let ignored = if ignored > 0 {
        format!(", {ignored} ignored")
    } else {
        String::new()
    };
    match o.status {
        Some(0) => (format!("ok: {passed} passed{ignored}"), true),
        Some(124) | Some(143) => (
            format!("FAILED: timed out after {BINARY_TIMEOUT_SECS} s"),
            false,
        ),
        Some(code) => (
            format!(
                "FAILED (exit {code}): {failed} of {} failed: {}",
                passed + failed,
                failures.join(", ")
            ),
            false,
        ),
        None => ("FAILED: the VM stopped while it ran".to_string(), false),
    }
}
