//! The VM a kernel boots in: an ext4 disk holding the test binaries, an initramfs (busybox, the
//! binaries' shared libraries, the modules that reach the disk, an init script), and qemu.
//!
//! The init script runs each binary with `--test-threads=2` under a timeout, once per file
//! system, and sends its output to the VM's second serial port between marker lines, which
//! [`boot`] reads back. The kernel's own console goes to a file beside the initramfs.

use super::{disk_name, Kernel, TestBinary};
use crate::{run, Result};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Modules to load, when the kernel builds them as modules, to reach the ext4 test disk:
/// virtio-pci and virtio-blk for the disk, ext4, and crc32c for ext4's metadata checksums (a
/// soft dependency: the kernel would ask user space for it, and the VM has no modprobe).
/// Their `depends=` are added. Whatever a kernel builds in is simply absent.
const MODULES: &[&str] = &["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"];

/// How long one test binary may run in the VM before it counts as hung.
pub(super) const BINARY_TIMEOUT_SECS: u32 = 600;

/// How long one kernel's whole run may take.
const VM_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// Marks the init script's lines on the results port.
const MARK: &str = "@@matrix";

/// What one binary did in one VM.
pub(super) struct Outcome {
    /// The file system of its `TMPDIR` (a name in [`super::FILE_SYSTEMS`]).
    pub(super) fs: String,
    pub(super) label: String,
    /// The binary's exit status in the VM (`None`: the VM ended before it did).
    pub(super) status: Option<i32>,
    pub(super) output: Vec<String>,
    pub(super) stderr: Vec<String>,
}

/// An ext4 image holding `bin/` (the test binaries), `tests` (their order), `examples/` (where
/// tests look for them: `../examples/` from their own folder), `tmp/` (the tests' `TMPDIR` on
/// ext4), and every proptest regressions file beside its source, where proptest looks.
pub(super) fn make_disk(
    root: &Path,
    work: &Path,
    binaries: &[TestBinary],
    examples: &[PathBuf],
) -> Result<PathBuf> {
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
    for exe in examples {
        let name = exe.file_name().expect("an executable has a name");
        bytes += copy(exe, &staging.join("examples").join(name))?;
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
    // The image holds it all now.
    fs::remove_dir_all(&staging).map_err(|e| format!("clearing {}: {e}", staging.display()))?;
    Ok(image)
}

/// The VM's init: brings up the loopback interface (tests use sockets on 127.0.0.1), loads the
/// modules, mounts the test disk and a tmpfs, runs each binary with `TMPDIR` on each file
/// system of PASSES (`name:dir ...`) with its output in files, sends the output to the results
/// port between marker lines, and powers off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /mnt /tmpfs
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s /bin
export PATH=/bin
exec >/dev/ttyS1 2>&1
ip link set lo up
for m in $(cat /modules/order); do
    insmod "/modules/$m.ko" || echo "MARK insmod $m failed"
done
if ! mount -t ext4 /dev/vda /mnt; then
    echo "MARK fatal: cannot mount the test disk"
    poweroff -f
fi
mount -t tmpfs tmpfs /tmpfs
export HOME=/mnt RUST_BACKTRACE=1
cd /mnt
for pass in PASSES; do
    fs=${pass%%:*}
    export TMPDIR=${pass#*:}
    for t in $(cat tests); do
        echo "MARK begin $fs $t"
        timeout TIMEOUT "./bin/$t" --test-threads=2 >/out 2>/err
        rc=$?
        cat /out
        echo "MARK stderr"
        cat /err
        echo "MARK end $fs $t $rc"
    done
done
echo "MARK done"
sync
poweroff -f
"#;

/// The initramfs for `kernel`: busybox, the shared libraries of busybox and `executables`, the
/// modules (in load order) and the init script, as a `cpio` archive.
pub(super) fn make_initramfs<'a>(
    dir: &Path,
    kernel: &Kernel,
    executables: impl Iterator<Item = &'a PathBuf>,
    file_systems: &[&(&str, &str)],
) -> Result<PathBuf> {
    let staging = dir.join("initramfs");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| format!("clearing {}: {e}", staging.display()))?;
    }
    mkdir(&staging.join("bin"))?;
    mkdir(&staging.join("modules"))?;
    let busybox = find_in_path("busybox").expect("checked at the start");
    copy(&busybox, &staging.join("bin/busybox"))?;
    let mut libs: HashSet<PathBuf> = shared_libraries(&busybox)?.into_iter().collect();
    for exe in executables {
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
    let passes: Vec<String> = file_systems
        .iter()
        .map(|(name, dir)| format!("{name}:{dir}"))
        .collect();
    let init = INIT
        .replace("MARK", MARK)
        .replace("PASSES", &passes.join(" "))
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
pub(super) fn boot(
    kernel: &Kernel,
    initramfs: &Path,
    disk: &Path,
    console: &Path,
) -> Result<Vec<Outcome>> {
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
        if let Some((fs, name)) = mark.strip_prefix("begin ").and_then(|m| m.split_once(' ')) {
            outcomes.push(Outcome {
                fs: fs.to_string(),
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

pub(super) fn find_in_path(tool: &str) -> Option<PathBuf> {
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

pub(super) fn mkdir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

pub(super) fn write(path: &Path, text: &str) -> Result<()> {
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
