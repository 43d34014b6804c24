//! The `sum` example as a user runs it: its command line, a tree summed both ways, errors.
//!
//! `cargo test` builds the examples before it runs the tests; the binary is found next to this
//! test's (target/<profile>/examples). When it is not there, the tests say they are skipped.

mod common;

use std::process::{Command, Output};

/// Runs `sum` with `args`, or reports the test skipped when it is not built.
fn sum(args: &[&str]) -> Option<Output> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join("sum");
    if !path.is_file() {
        common::skip("the sum example is not built (cargo test builds it unless filtered)");
        return None;
    }
    Some(Command::new(path).args(args).output().unwrap())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_goes_to_stdout_and_bad_arguments_exit_2() {
    let Some(out) = sum(&["--help"]) else { return };
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("usage: sum DIR"));
    assert!(out.stderr.is_empty());
    let cases: &[(&[&str], &str)] = &[
        (
            &["d", "--depth", "0"],
            "--depth 0: expected a number from 1 to 4096",
        ),
        (
            &["d", "--mode", "fast"],
            "--mode fast: expected uring, std or both",
        ),
        (
            &["d", "--buf", "100"],
            "--buf 100: expected a number from 4096 to 67108864",
        ),
        (
            &["d", "--threads"],
            "missing argument for option '--threads'",
        ),
        (&[], "expected DIR"),
        (&["d", "e"], "unexpected argument \"e\""),
        (&["--make", "d", "e"], "--make takes its DIR as its value"),
    ];
    for (args, problem) in cases {
        let Some(out) = sum(args) else { return };
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(problem), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: sum DIR"), "{args:?}: {stderr}");
    }
}

#[test]
fn both_ways_find_every_byte_and_the_same_checksum() {
    let dir = common::temp_dir("example-sum");
    let root = dir.path.to_str().unwrap();
    // Files smaller than, equal to, and several times the buffer (4096), and empty ones.
    for (sub, files, size) in [
        ("a", "20", "100"),
        ("b", "3", "4096"),
        ("c", "2", "10000"),
        ("d", "2", "0"),
    ] {
        let d = format!("{root}/{sub}");
        let Some(out) = sum(&["--make", &d, "--files", files, "--size", size]) else {
            return;
        };
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let Some(out) = sum(&[
        root,
        "--mode",
        "both",
        "--depth",
        "4",
        "--rings",
        "2",
        "--threads",
        "3",
        "--buf",
        "4096",
        "--rounds",
        "2",
    ]) else {
        return;
    };
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let bytes = 20 * 100 + 3 * 4096 + 2 * 10000;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    let want = format!("27 files, {bytes} bytes, checksum ");
    let checksum = |l: &str| l.split("checksum ").nth(1).unwrap()[..16].to_string();
    for l in &lines[..4] {
        assert!(l.contains(&want), "{l}");
        assert_eq!(checksum(l), checksum(lines[0]));
    }
    assert!(lines[0].starts_with("uring") && lines[1].starts_with("std"));
    assert!(
        lines[4].starts_with("median of 2: uring (2 ring(s))"),
        "{}",
        lines[4]
    );
}

#[test]
fn an_unreadable_file_is_named_and_fails_the_run() {
    let dir = common::temp_dir("example-sum-denied");
    std::fs::write(dir.path.join("ok"), b"fine").unwrap();
    let denied = dir.path.join("denied");
    std::fs::write(&denied, b"secret").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&denied, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&denied).is_ok() {
        common::skip("running with the power to read a mode-000 file (root)");
        return;
    }
    for mode in ["uring", "std"] {
        let Some(out) = sum(&[dir.path.to_str().unwrap(), "--mode", mode]) else {
            return;
        };
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("{}", denied.display())),
            "{stderr}"
        );
        assert!(
            text(&out.stdout).contains("1 files, 4 bytes"),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn a_missing_directory_is_named() {
    let Some(out) = sum(&["/no/such/dir/for/sum"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("reading /no/such/dir/for/sum: "));
}
