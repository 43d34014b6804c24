//! Fetching Debian packages without installing them: a private apt state under `target/`,
//! pointed at the Debian archive the machine's own apt sources already use (so no package host
//! is named in this repository), `apt-get download`, and `dpkg -x`.

use crate::{run, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Checks that `apt-get` and `dpkg` exist, naming what to do instead in the error.
pub(crate) fn require_tools(instead: &str) -> Result<()> {
    for tool in ["apt-get", "dpkg"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(format!(
                "`{tool}` not found: this needs Debian's apt; {instead}"
            ));
        }
    }
    Ok(())
}

/// Downloads `packages` (`name` or `name=version`) from `suite` of the machine's Debian archive
/// into `dir`, with apt's lists and cache kept under `dir/apt`. Returns the `.deb` files in
/// `dir` afterwards.
pub(crate) fn download(dir: &Path, suite: &str, packages: &[String]) -> Result<Vec<PathBuf>> {
    Suite::update(dir, suite)?.download(dir, packages)
}

/// One suite of the machine's Debian archive, with a private apt state (lists and cache) kept
/// under `dir/apt`: nothing is read from or written to the machine's own apt state.
pub(crate) struct Suite {
    name: String,
    opts: Vec<String>,
}

impl Suite {
    /// Creates the private state under `dir/apt` and runs `apt-get update` for `suite`.
    pub(crate) fn update(dir: &Path, suite: &str) -> Result<Suite> {
        let mirror = debian_mirror()?;
        let apt = dir.join("apt");
        for d in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(apt.join(d))
                .map_err(|e| format!("creating {}: {e}", apt.display()))?;
        }
        let sources = apt.join("sources.list");
        fs::write(
            &sources,
            format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {suite} main\n"
            ),
        )
        .map_err(|e| format!("writing {}: {e}", sources.display()))?;
        let opts = vec![
            format!("-oDir::Etc::SourceList={}", sources.display()),
            "-oDir::Etc::SourceParts=/dev/null".to_string(),
            format!("-oDir::State::Lists={}", apt.join("lists").display()),
            format!("-oDir::Cache={}", apt.join("cache").display()),
            "-oDir::State::status=/dev/null".to_string(),
            "-oAPT::Sandbox::User=root".to_string(),
            // Without this, `apt-get update` that cannot reach the archive exits 0 with a
            // warning, and the failure shows up later as a confusing "Unable to locate package".
            "-oAPT::Update::Error-Mode=any".to_string(),
            "-qq".to_string(),
        ];
        run(
            Command::new("apt-get").args(&opts).arg("update"),
            &format!("apt-get update ({suite})"),
        )?;
        Ok(Suite {
            name: suite.to_string(),
            opts,
        })
    }

    /// Downloads `packages` (`name` or `name=version`) into `dir`. Returns the `.deb` files in
    /// `dir` afterwards.
    pub(crate) fn download(&self, dir: &Path, packages: &[String]) -> Result<Vec<PathBuf>> {
        run(
            Command::new("apt-get")
                .args(&self.opts)
                .arg("download")
                .args(packages)
                .current_dir(dir),
            &format!("apt-get download {} from {}", packages.join(" "), self.name),
        )?;
        let debs: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        if debs.is_empty() {
            return Err(format!(
                "apt-get download {} produced no .deb",
                packages.join(" ")
            ));
        }
        Ok(debs)
    }

    /// The version apt would pick for `package` in this suite, and the names of the packages
    /// it depends on (each alternative of an `a | b` counts).
    pub(crate) fn candidate(&self, package: &str) -> Result<(String, Vec<String>)> {
        let what = format!("apt-cache show {package} ({})", self.name);
        let out = Command::new("apt-cache")
            .args(&self.opts)
            .args(["show", "--no-all-versions", package])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{what}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let version = field("Version").ok_or_else(|| format!("{what}: no Version"))?;
        let depends = field("Depends")
            .unwrap_or("")
            .split([',', '|'])
            .filter_map(|d| d.split_whitespace().next())
            .map(str::to_string)
            .collect();
        Ok((version.to_string(), depends))
    }
}

/// Unpacks `deb` into `into` (`dpkg -x`).
pub(crate) fn extract(deb: &Path, into: &Path) -> Result<()> {
    run(
        Command::new("dpkg").arg("-x").arg(deb).arg(into),
        &format!("dpkg -x {}", deb.display()),
    )
}

/// The control field `name` of `deb` (`dpkg-deb -f`), e.g. its `Version`.
pub(crate) fn field(deb: &Path, name: &str) -> Result<String> {
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg(name)
        .output()
        .map_err(|e| format!("dpkg-deb -f {}: {e}", deb.display()))?;
    let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || value.is_empty() {
        return Err(format!("{} has no {name} field", deb.display()));
    }
    Ok(value)
}

/// The first plain Debian archive URI among the machine's apt sources.
pub(crate) fn debian_mirror() -> Result<String> {
    let mut candidates = Vec::new();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut extra: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        extra.sort();
        files.extend(extra);
    }
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("URIs:") {
                candidates.extend(rest.split_whitespace().map(str::to_string));
            } else if let Some(rest) = line.strip_prefix("deb ") {
                // deb [opts] URI suite components...
                let rest = if rest.trim_start().starts_with('[') {
                    rest.split_once(']').map_or("", |(_, r)| r)
                } else {
                    rest
                };
                if let Some(uri) = rest.split_whitespace().next() {
                    candidates.push(uri.to_string());
                }
            }
        }
    }
    candidates
        .into_iter()
        .find(|u| u.trim_end_matches('/').ends_with("/debian"))
        .ok_or_else(|| {
            "no Debian archive in the apt sources: pass --headers DIR with a UAPI include tree"
                .to_string()
        })
}
