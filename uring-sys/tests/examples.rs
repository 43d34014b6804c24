//! The `probe` example as a user runs it: its command line, its errors, and a real probe.
//!
//! `cargo test` builds the examples before it runs the tests; the binary is found next to this
//! test's (target/<profile>/examples). When it is not there (tests filtered to this target
//! only), the tests say they are skipped.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `probe` with `args`, or reports the test skipped (on stderr) when it is not built.
fn probe(test: &str, args: &[&str]) -> Option<Output> {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/examples/probe
    let path: PathBuf = exe.parent()?.parent()?.join("examples").join("probe");
    if !path.is_file() {
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: the probe example is not built (cargo test builds it unless filtered)"
        );
        return None;
    }
    Some(Command::new(path).args(args).output().unwrap())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_goes_to_stdout_and_succeeds() {
    let Some(out) = probe("help_goes_to_stdout_and_succeeds", &["--help"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("usage: probe [--entries N]"));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn bad_arguments_print_the_problem_and_usage_to_stderr_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--entries", "0"],
            "--entries 0: expected a number from 1 to 32768",
        ),
        (
            &["--entries", "-1"],
            "--entries -1: expected a number from 1 to 32768",
        ),
        (
            &["--entries", "32769"],
            "--entries 32769: expected a number from 1 to 32768",
        ),
        (&["--entries"], "missing argument for option '--entries'"),
        (&["--frob"], "invalid option '--frob'"),
        (&["extra"], "unexpected argument \"extra\""),
    ];
    for (args, problem) in cases {
        let Some(out) = probe("bad_arguments", args) else {
            return;
        };
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(problem), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: probe"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn probes_the_kernel_and_completes_a_nop() {
    let Some(out) = probe("probes_the_kernel_and_completes_a_nop", &["--entries", "5"]) else {
        return;
    };
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // 5 entries are rounded up to 8; the CQ is twice the SQ.
    assert!(stdout.contains(": 8 SQ entries, 16 CQ entries"), "{stdout}");
    assert!(stdout.contains("opcodes: NOP "), "{stdout}");
    assert!(
        stdout.contains("NOP: submitted 1, 1 completion(s) ready, user_data 0x5eed, res 0"),
        "{stdout}"
    );
}
