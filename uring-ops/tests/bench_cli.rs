//! The `bench` example as a script runs it: its command line, its errors, and runs of an
//! exact number of ops on every layer, whose `RESULT` lines must have the documented form.
//!
//! `cargo test` builds the examples before it runs the tests; the binary is found next to this
//! test's (target/<profile>/examples). When it is not there (tests filtered to this target
//! only), the tests say they are skipped.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `bench` with `args`, or reports the test skipped when it is not built.
fn bench(args: &[&str]) -> Option<Output> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test> -> target/<profile>/examples/bench
    let path = exe.parent()?.parent()?.join("examples").join("bench");
    if !path.is_file() {
        common::skip("the bench example is not built (cargo test builds it unless filtered)");
        return None;
    }
    Some(Command::new(path).args(args).output().unwrap())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The fields of every `RESULT` line, checked against the documented form
/// `RESULT mode=M layer=L depth=D batch=B threads=T secs=S.SS ops=N ops_per_sec=R`.
fn results(stdout: &str) -> Vec<Vec<(String, String)>> {
    let keys = [
        "mode",
        "layer",
        "depth",
        "batch",
        "threads",
        "secs",
        "ops",
        "ops_per_sec",
    ];
    stdout
        .lines()
        .filter(|l| l.starts_with("RESULT"))
        .map(|l| {
            let fields: Vec<(String, String)> = l
                .split(' ')
                .skip(1)
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("key=value");
                    (k.to_string(), v.to_string())
                })
                .collect();
            let got: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(got, keys, "{l}");
            let secs = &fields[5].1;
            assert!(
                secs.split_once('.').is_some_and(|(_, d)| d.len() == 2),
                "{l}"
            );
            for (k, v) in &fields[2..] {
                assert!(
                    v.replace('.', "").chars().all(|c| c.is_ascii_digit()),
                    "{k}={v} in {l}"
                );
            }
            fields
        })
        .collect()
}

fn field<'a>(r: &'a [(String, String)], key: &str) -> &'a str {
    &r.iter().find(|(k, _)| k == key).unwrap().1
}

/// A 1 MiB file for the read runs, removed when dropped.
struct ReadFile(PathBuf);

impl ReadFile {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("uring-bench-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        ReadFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ReadFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn help_goes_to_stdout_and_succeeds() {
    for flag in ["--help", "-h"] {
        let Some(out) = bench(&[flag]) else { return };
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with("usage: bench [nop|read]"), "{stdout}");
        assert!(stdout.contains("--layer L"), "{stdout}");
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    }
}

#[test]
fn bad_arguments_print_the_problem_and_usage_to_stderr_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--depth", "0"],
            "--depth 0: expected a number from 1 to 4096",
        ),
        (
            &["--depth", "x"],
            "--depth x: expected a number from 1 to 4096",
        ),
        (&["--batch", "33"], "--batch 33 is above --depth 32"),
        (
            &["--depth", "8", "--batch", "9"],
            "--batch 9 is above --depth 8",
        ),
        (&["frob"], "unknown mode \"frob\": expected nop or read"),
        (
            &["--layer", "x"],
            "--layer x: expected core, ops, ctx or io-uring",
        ),
        (
            &["--secs", "0"],
            "--secs 0: expected a number of seconds above 0",
        ),
        (
            &["--secs", "1", "--ops", "5"],
            "--secs and --ops cannot both be given",
        ),
        (
            &["--ops", "5", "--secs", "1"],
            "--secs and --ops cannot both be given",
        ),
        (
            &["--threads", "0"],
            "--threads 0: expected a number from 1 to 64",
        ),
        (&["nop", "--fixed"], "--fixed applies to the read mode only"),
        (
            &["nop", "--file", "x"],
            "--file applies to the read mode only",
        ),
        (
            &["--layer", "ctx", "--fixed"],
            "--fixed is not available on the ctx layer",
        ),
        (&["nop", "read"], "unexpected argument"),
        (&["--frob"], "invalid option '--frob'"),
        (&["--depth"], "missing argument for option '--depth'"),
    ];
    for (args, want) in cases {
        let Some(out) = bench(args) else { return };
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{args:?}: want {want:?} in {stderr:?}"
        );
        assert!(stderr.contains("usage: bench"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

#[test]
fn a_file_it_cannot_open_is_named() {
    let missing = std::env::temp_dir().join(format!("uring-bench-cli-{}-none", std::process::id()));
    let missing = missing.to_str().unwrap();
    let Some(out) = bench(&["read", "--layer", "core", "--file", missing]) else {
        return;
    };
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot open {missing}")),
        "{stderr}"
    );
    let empty = ReadFile::new("empty");
    std::fs::write(&empty.0, b"").unwrap();
    let Some(out) = bench(&["read", "--layer", "ops", "--file", empty.arg()]) else {
        return;
    };
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{} holds 0 bytes", empty.arg())),
        "{stderr}"
    );
}

/// `--ops N` stops after exactly N ops, on every layer, in both modes and with several
/// threads (on `ctx`: pushers and reapers), and says how the file is read.
#[test]
fn exact_op_counts_on_every_layer() {
    let file = ReadFile::new("read");
    for layer in ["core", "ops", "ctx", "io-uring"] {
        for (args, ops) in [
            (vec!["nop", "--ops", "1000"], "1000"),
            (vec!["nop", "--ops", "1001", "--threads", "3"], "1001"),
            (vec!["read", "--ops", "301", "--file", file.arg()], "301"),
            (
                vec![
                    "read",
                    "--ops",
                    "302",
                    "--threads",
                    "2",
                    "--depth",
                    "4",
                    "--batch",
                    "3",
                ],
                "302",
            ),
        ] {
            let mut args = args.clone();
            if args[0] == "read" && !args.contains(&"--file") {
                args.extend(["--file", file.arg(), "--buffered"]);
            }
            args.extend(["--layer", layer]);
            let Some(out) = bench(&args) else { return };
            let stdout = text(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?}: {}",
                text(&out.stderr)
            );
            let rs = results(&stdout);
            assert_eq!(rs.len(), 1, "{args:?}: {stdout}");
            assert_eq!(field(&rs[0], "ops"), ops, "{args:?}: {stdout}");
            assert_eq!(field(&rs[0], "layer"), layer, "{args:?}");
            assert_eq!(field(&rs[0], "mode"), args[0], "{args:?}");
            if args[0] == "read" {
                let how = ["O_DIRECT", "page cache"];
                assert!(how.iter().any(|h| stdout.contains(h)), "{args:?}: {stdout}");
            }
        }
    }
}

/// With no mode and no layer: both modes on every layer, a `RESULT` line per run, and the
/// table, whose `io-uring` rows are the reference (ratio 1.000).
#[test]
fn the_comparison_runs_every_layer_and_prints_the_table() {
    let file = ReadFile::new("table");
    let args = ["--ops", "640", "--rounds", "2", "--file", file.arg()];
    let Some(out) = bench(&args) else { return };
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rs = results(&stdout);
    assert_eq!(rs.len(), 2 * 4 * 2, "{stdout}");
    assert!(rs.iter().all(|r| field(r, "ops") == "640"), "{stdout}");
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("mode "))
        .skip(1)
        .take_while(|l| l.starts_with("nop ") || l.starts_with("read "))
        .collect();
    assert_eq!(table.len(), 2 * 4, "{stdout}");
    for l in &table {
        // mode (one or two words), layer, ops/s, ratio, CPU ns/op, ratio.
        let cols: Vec<&str> = l.split_whitespace().rev().take(5).collect();
        let (cpu_ratio, cpu, ratio, layer) = (cols[0], cols[1], cols[2], cols[4]);
        if layer == "io-uring" {
            assert_eq!((ratio, cpu_ratio), ("1.000", "1.000"), "{l}");
        }
        for v in [cpu_ratio, cpu, ratio] {
            assert!(v.parse::<f64>().unwrap() > 0.0, "{l}");
        }
    }
}
