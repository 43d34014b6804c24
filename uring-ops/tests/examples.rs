//! The `copy` example as a user runs it: its command line, its errors, and a real copy.
//!
//! `cargo test` builds the examples before it runs the tests; the binary is found next to this
//! test's (target/<profile>/examples). When it is not there (tests filtered to this target
//! only), the tests say they are skipped.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The example binary `name`, if cargo built it.
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let path = exe.parent()?.parent()?.join("examples").join(name);
    path.is_file().then_some(path)
}

/// Runs `copy` with `args`, or reports the test skipped when it is not built.
fn copy(args: &[&str]) -> Option<Output> {
    let Some(exe) = example("copy") else {
        common::skip("the copy example is not built (cargo test builds it unless filtered)");
        return None;
    };
    Some(Command::new(exe).args(args).output().unwrap())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_goes_to_stdout_and_succeeds() {
    for flag in ["--help", "-h"] {
        let Some(out) = copy(&[flag]) else { return };
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with("usage: copy SRC DST"), "{stdout}");
        assert!(stdout.contains("--depth N"), "{stdout}");
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    }
}

#[test]
fn bad_arguments_print_the_problem_and_usage_to_stderr_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["a", "b", "--depth", "0"],
            "--depth 0: expected a number from 1 to 4096",
        ),
        (
            &["a", "b", "--depth", "x"],
            "--depth x: expected a number from 1 to 4096",
        ),
        (
            &["a", "b", "--block", "0"],
            "--block 0: expected a number from 1 to 1073741824",
        ),
        (
            &["a", "b", "--block", "1073741825"],
            "expected a number from 1 to 1073741824",
        ),
        (
            &["a", "b", "--block"],
            "missing argument for option '--block'",
        ),
        (&["a", "b", "--frob"], "invalid option '--frob'"),
        (&["a"], "expected SRC and DST"),
        (&[], "expected SRC and DST"),
        (&["a", "b", "c"], "unexpected argument \"c\""),
    ];
    for (args, problem) in cases {
        let Some(out) = copy(args) else { return };
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(problem), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: copy SRC DST"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_file_that_cannot_be_opened_is_named() {
    let dir = std::env::temp_dir().join(format!("uring-ops-{}-examples", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("no-such-source");
    let src = common::temp_file("examples-src", b"data");
    let unwritable = dir.join("no-such-dir").join("dst");
    for (args, named) in [
        ([&missing, &dir.join("dst")], &missing),
        ([&src.path, &unwritable], &unwritable),
    ] {
        let args: Vec<&str> = args.iter().map(|p| p.to_str().unwrap()).collect();
        let Some(out) = copy(&args) else { return };
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("opening {}: ", named.display())),
            "{stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn copies_a_file_whose_size_is_not_a_multiple_of_the_block() {
    let data: Vec<u8> = (0..100_003u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let src = common::temp_file("examples-copy-src", &data);
    let dst = std::env::temp_dir().join(format!("uring-ops-{}-examples-dst", std::process::id()));
    let (s, d) = (src.path.to_str().unwrap(), dst.to_str().unwrap());
    let Some(out) = copy(&[s, d, "--depth", "3", "--block", "4096"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("copied 100003 bytes"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read(&dst).unwrap(), data);
    std::fs::remove_file(&dst).unwrap();
}
