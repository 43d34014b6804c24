//! `cargo xtask kernel-matrix`: the workspace's test binaries, booted under qemu on each kernel
//! the project supports.
//!
//! 1. Builds the test binaries (`cargo test --workspace --no-run`, debug).
//! 2. Resolves each kernel from Debian's package lists (the candidate of `linux-image-amd64` in
//!    the kernel's suite), downloads and unpacks it under `target/kernel-matrix/`, once per
//!    version.
//! 3. Puts the test binaries on an ext4 image (the tests' `TMPDIR` too, so file ops run on a
//!    disk file system as they do on most machines), and makes a small initramfs per kernel:
//!    busybox, the binaries' shared libraries, the modules that reach the disk, and an init
//!    script that runs every binary and powers off.
//! 4. Boots each kernel with `qemu-system-x86_64` (TCG: nested KVM is not relied on), reads the
//!    results from the VM's second serial port, and prints one line per kernel and binary, the
//!    `skipped:` lines, and the full output of any binary that failed.

use crate::{apt, run, workspace_root, Result};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// Modules to load, when the kernel builds them as modules, to reach the ext4 test disk:
/// virtio-pci and virtio-blk for the disk, ext4, and crc32c for ext4's metadata checksums (a
/// soft dependency: the kernel would ask user space for it, and the VM has no modprobe).
/// Their `depends=` are added. Whatever a kernel builds in is simply absent.
const MODULES: &[&str] = &["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"];

/// How long one test binary may run in the VM before it counts as hung.
const BINARY_TIMEOUT_SECS: u32 = 600;
/// How long one kernel's whole run may take.
const VM_TIMEOUT: Duration = Duration::from_secs(45 * 60);
/// Marks the init script's lines on the results port.
const MARK: &str = "@@matrix";

/// A workspace test binary: what to call it, and where cargo put it.
struct TestBinary {
    /// Its source, relative to the workspace root (`uring-ops/tests/chain.rs`).
    label: String,
    exe: PathBuf,
}

/// A kernel ready to boot.
struct Kernel {
    /// `6.1 (6.1.176-1)`.
    title: String,
    vmlinuz: PathBuf,
    /// `lib/modules/<release>` inside the unpacked packages.
    modules: PathBuf,
}

/// What one binary did in one VM.
struct Outcome {
    label: String,
    /// The binary's exit status in the VM (`None`: the VM ended before it did).
    status: Option<i32>,
    output: Vec<String>,
    stderr: Vec<String>,
}

/// What to run: `--kernel K`... (default: all), `--binary NAME`... (default: all; a binary is
/// chosen when its source path contains a NAME).
struct Options {
    kernels: Vec<&'static KernelSpec>,
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
    let mut binaries = build_test_binaries(&root)?;
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
    let disk = make_disk(&root, &work, &binaries)?;

    let mut failed = Vec::new();
    for spec in options.kernels {
        let kernel = fetch_kernel(&work, spec)?;
        let initramfs =
            make_initramfs(&work.join(format!("vm-{}", spec.name)), &kernel, &binaries)?;
        println!("\n== {}", kernel.title);
        let console = work.join(format!("vm-{}/console.log", spec.name));
        let outcomes = boot(&kernel, &initramfs, &disk, &console)?;
        if !report(&kernel, &binaries, &outcomes) {
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
    Ok(Options {
        kernels: selected,
        binaries,
    })
}

/// `cargo test --workspace --no-run` (debug), and the test executables it reports but xtask's.
fn build_test_binaries(root: &Path) -> Result<Vec<TestBinary>> {
    println!("building the test binaries (cargo test --workspace --no-run)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--workspace", "--no-run"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err("building the test binaries failed".into());
    }
    let mut binaries = Vec::new();
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
        }
    }
    binaries.sort_by(|a, b| a.label.cmp(&b.label));
    if binaries.is_empty() {
        return Err("cargo reported no test executables".into());
    }
    Ok(binaries)
}

/// The file name a binary has on the test disk.
fn disk_name(b: &TestBinary) -> String {
    b.label.trim_end_matches(".rs").replace('/', ".")
}

/// An ext4 image holding `bin/` (the test binaries), `tests` (their order), `tmp/` (the tests'
/// `TMPDIR`), and every proptest regressions file beside its source, where proptest looks.
fn make_disk(root: &Path, work: &Path, binaries: &[TestBinary]) -> Result<PathBuf> {
    let staging = work.join("disk");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| format!("clearing {}: {e}", staging.display()))?;
    }
    mkdir(&staging.join("bin"))?;
    mkdir(&staging.join("tmp"))?;
    let mut bytes = 0;
    let mut list = String::new();
    for b in binaries {
        let name = disk_name(b);
        bytes += copy(&b.exe, &staging.join("bin").join(&name))?;
        list.push_str(&name);
        list.push('\n');
        // proptest finds `x.proptest-regressions` beside `x.rs`, from the path `file!()` gave.
        let regressions = root.join(&b.label).with_extension("proptest-regressions");
        if regressions.exists() {
            let source = staging.join(&b.label);
            mkdir(source.parent().expect("a source file has a parent"))?;
            write(&source, "")?;
            copy(&regressions, &source.with_extension("proptest-regressions"))?;
        }
    }
    write(&staging.join("tests"), &list)?;
    let image = work.join("disk.img");
    let _ = fs::remove_file(&image);
    // Room for the binaries and 1 GiB of test files; the file is sparse.
    let size_mib = bytes / (1 << 20) + 1024;
    run(
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-L",
                "uring-tests",
                "-E",
                "root_owner=0:0",
                "-d",
            ])
            .arg(&staging)
            .arg(&image)
            .arg(format!("{size_mib}M")),
        "mkfs.ext4 (the test disk)",
    )?;
    Ok(image)
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

/// The VM's init: loads the modules, mounts the test disk, runs each binary with its output in
/// files, then sends the output to the results port between marker lines, and powers off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /mnt
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s /bin
export PATH=/bin
exec >/dev/ttyS1 2>&1
for m in $(cat /modules/order); do
    insmod "/modules/$m.ko" || echo "MARK insmod $m failed"
done
if ! mount -t ext4 /dev/vda /mnt; then
    echo "MARK fatal: cannot mount the test disk"
    poweroff -f
fi
export TMPDIR=/mnt/tmp HOME=/mnt
cd /mnt
for t in $(cat tests); do
    echo "MARK begin $t"
    timeout TIMEOUT "./bin/$t" --test-threads=2 >/out 2>/err
    rc=$?
    cat /out
    echo "MARK stderr"
    cat /err
    echo "MARK end $t $rc"
done
echo "MARK done"
sync
poweroff -f
"#;

/// The initramfs for `kernel`: busybox, the shared libraries of busybox and the test binaries,
/// the modules (in load order) and the init script, as a `cpio` archive.
fn make_initramfs(dir: &Path, kernel: &Kernel, binaries: &[TestBinary]) -> Result<PathBuf> {
    let staging = dir.join("initramfs");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| format!("clearing {}: {e}", staging.display()))?;
    }
    mkdir(&staging.join("bin"))?;
    mkdir(&staging.join("modules"))?;
    let busybox = find_in_path("busybox").expect("checked at the start");
    copy(&busybox, &staging.join("bin/busybox"))?;
    let mut libs = HashSet::new();
    for exe in std::iter::once(&busybox).chain(binaries.iter().map(|b| &b.exe)) {
        libs.extend(shared_libraries(exe)?);
    }
    for lib in &libs {
        copy(
            lib,
            &staging.join(lib.strip_prefix("/").expect("ldd paths are absolute")),
        )?;
    }
    let order = stage_modules(&kernel.modules, &staging.join("modules"))?;
    write(&staging.join("modules/order"), &order.join("\n"))?;
    let init = INIT
        .replace("MARK", MARK)
        .replace("TIMEOUT", &BINARY_TIMEOUT_SECS.to_string());
    let init_path = staging.join("init");
    write(&init_path, &init)?;
    make_executable(&init_path)?;

    let archive = dir.join("initramfs.cpio");
    let list = walk(&staging)?
        .iter()
        .map(|p| {
            format!(
                "{}\n",
                p.strip_prefix(&staging).expect("walked from it").display()
            )
        })
        .collect::<String>();
    let out = fs::File::create(&archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let mut cpio = Command::new("cpio")
        .args(["--quiet", "-o", "-H", "newc", "-R", "0:0"])
        .current_dir(&staging)
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .map_err(|e| format!("running cpio: {e}"))?;
    std::io::Write::write_all(&mut cpio.stdin.take().expect("piped"), list.as_bytes())
        .map_err(|e| format!("feeding cpio: {e}"))?;
    let status = cpio.wait().map_err(|e| format!("cpio: {e}"))?;
    if !status.success() {
        return Err(format!("cpio failed ({status})"));
    }
    Ok(archive)
}

/// The shared libraries `exe` loads (with the dynamic loader), by `ldd`; none for a static one.
fn shared_libraries(exe: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(exe)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ldd {}: {e}", exe.display()))?;
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}

/// Copies [`MODULES`] that `modules` (a `lib/modules/<release>` folder) has, and what they
/// depend on, into `into` uncompressed (busybox's `insmod` takes plain ELF). Returns their names
/// in load order: every module after those it depends on.
fn stage_modules(modules: &Path, into: &Path) -> Result<Vec<String>> {
    // Module name (`-` read as `_`, as the kernel does) -> file.
    let mut files = HashMap::new();
    for path in walk(&modules.join("kernel"))? {
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        if let Some((stem, _)) = file.split_once(".ko") {
            files.insert(stem.replace('-', "_"), path.clone());
        }
    }
    // Depth first, each module after its dependencies.
    fn visit(
        name: &str,
        files: &HashMap<String, PathBuf>,
        into: &Path,
        order: &mut Vec<String>,
    ) -> Result<()> {
        if order.iter().any(|m| m == name) {
            return Ok(());
        }
        let Some(path) = files.get(name) else {
            return Ok(()); // built in
        };
        let elf = read_module(path)?;
        for dep in modinfo(&elf, "depends")
            .split(',')
            .filter(|d| !d.is_empty())
        {
            visit(&dep.replace('-', "_"), files, into, order)?;
        }
        fs::write(into.join(format!("{name}.ko")), &elf).map_err(|e| format!("{name}: {e}"))?;
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    for name in MODULES {
        visit(name, &files, into, &mut order)?;
    }
    Ok(order)
}

/// A module file's ELF, decompressed if Debian compressed it.
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let tool = match path.extension().and_then(|e| e.to_str()) {
        Some("ko") => return fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => return Err(format!("{}: unknown module compression", path.display())),
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{tool} -dc {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!("{tool} -dc {} failed", path.display()));
    }
    Ok(out.stdout)
}

/// A `key=value` of a module's `.modinfo` section (NUL-separated strings), or "".
fn modinfo(elf: &[u8], key: &str) -> String {
    let needle = format!("\0{key}=");
    elf.windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .map(|at| {
            let rest = &elf[at + needle.len()..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).into_owned()
        })
        .unwrap_or_default()
}

/// Boots `kernel` and collects what each binary did. The kernel's console goes to `console`.
fn boot(kernel: &Kernel, initramfs: &Path, disk: &Path, console: &Path) -> Result<Vec<Outcome>> {
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "2048"])
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,snapshot=on",
            disk.display()
        ))
        // ttyS0: the kernel's console, to a file; ttyS1: the results, to us.
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args(["-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting qemu-system-x86_64: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                break;
            }
        }
    });

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut in_stderr = false;
    let mut done = false;
    let deadline = started + VM_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                println!("   the VM ran longer than {VM_TIMEOUT:?}: stopped");
                break;
            }
        };
        let Some(mark) = line.strip_prefix(MARK).map(str::trim) else {
            if let Some(o) = outcomes.last_mut().filter(|o| o.status.is_none()) {
                if in_stderr {
                    &mut o.stderr
                } else {
                    &mut o.output
                }
                .push(line);
            }
            continue;
        };
        if let Some(name) = mark.strip_prefix("begin ") {
            outcomes.push(Outcome {
                label: name.to_string(),
                status: None,
                output: Vec::new(),
                stderr: Vec::new(),
            });
            in_stderr = false;
        } else if mark == "stderr" {
            in_stderr = true;
        } else if let Some(end) = mark.strip_prefix("end ") {
            if let Some(o) = outcomes.last_mut() {
                o.status = end.rsplit(' ').next().and_then(|s| s.parse().ok());
            }
        } else if mark == "done" {
            done = true;
        } else {
            println!("   {mark}");
        }
    }
    let status = child.wait().map_err(|e| format!("qemu: {e}"))?;
    let mut qemu_err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut qemu_err);
    }
    if !done {
        println!(
            "   the VM stopped before running every binary (qemu: {status}) {}",
            qemu_err.trim()
        );
    }
    println!("   ({:.0} s in the VM)", started.elapsed().as_secs_f64());
    Ok(outcomes)
}

/// Prints one line per binary (and its skip lines, and the whole output of a failed one).
/// Returns whether every binary passed.
fn report(kernel: &Kernel, binaries: &[TestBinary], outcomes: &[Outcome]) -> bool {
    let mut all_ok = true;
    for b in binaries {
        let name = disk_name(b);
        let outcome = outcomes.iter().find(|o| o.label == name);
        let (verdict, ok) = match outcome {
            None => ("NOT RUN".to_string(), false),
            Some(o) => summarize(o),
        };
        all_ok &= ok;
        println!("{:<14} {:<34} {verdict}", kernel_short(kernel), b.label);
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

fn find_in_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Every file and folder under `dir`, sorted.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn mkdir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Copies `from` (following symlinks) to `to`, making `to`'s folder. Returns the bytes copied.
fn copy(from: &Path, to: &Path) -> Result<u64> {
    mkdir(to.parent().expect("a file has a parent"))?;
    fs::copy(from, to).map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}
