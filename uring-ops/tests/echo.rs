//! The `echo` example as a user runs it: its command line, and 100 clients at once whose every
//! byte must come back.
//!
//! `cargo test` builds the examples before it runs the tests; the binary is found next to this
//! test's (target/<profile>/examples). When it is not there (tests filtered to this target
//! only), the tests say they are skipped.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The example binary, if cargo built it.
fn example() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join("echo");
    if !path.is_file() {
        common::skip("the echo example is not built (cargo test builds it unless filtered)");
        return None;
    }
    Some(path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_goes_to_stdout_and_bad_arguments_exit_2() {
    let Some(exe) = example() else { return };
    let out = Command::new(&exe).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("usage: echo"), "{stdout}");
    assert!(stdout.contains("--buf-size BYTES"), "{stdout}");
    assert!(out.stderr.is_empty());
    for (args, msg) in [
        (
            &["--buffers", "0"][..],
            "--buffers 0: expected a number from 1 to 32768",
        ),
        (
            &["--buf-size", "x"][..],
            "--buf-size x: expected a number from 1 to 1048576",
        ),
        (
            &["--addr", "nowhere"][..],
            "--addr nowhere: expected an address",
        ),
        (&["--bogus"][..], "invalid option '--bogus'"),
    ] {
        let out = Command::new(&exe).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(msg), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: echo"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// Byte `i` of client `c`'s stream.
fn pattern(c: usize, i: usize) -> u8 {
    ((i * 7 + c * 13) % 251) as u8
}

#[test]
fn a_hundred_clients_at_once_get_every_byte_back() {
    let Some(exe) = example() else { return };
    const CLIENTS: usize = 100;
    const BYTES: usize = 200_000;
    // Few small buffers: the ring runs dry under this load, so the receives get re-armed.
    let mut server = Command::new(exe)
        .args(["--conns", "100", "--buffers", "64", "--buf-size", "2048"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                // A guard against a server that loses data, not a speed limit: under emulation
                // (the kernel matrix, on a busy machine) a client can wait for its echo for more
                // than 30 s.
                s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
                barrier.wait(); // all connected: now they all talk at once
                let mut w = s.try_clone().unwrap();
                let writer = std::thread::spawn(move || {
                    let data: Vec<u8> = (0..BYTES).map(|i| pattern(c, i)).collect();
                    let (mut off, mut step) = (0, c + 1);
                    while off < BYTES {
                        let n = step.min(BYTES - off);
                        w.write_all(&data[off..off + n]).unwrap();
                        off += n;
                        step = step * 31 % 7000 + 1;
                    }
                    w.shutdown(std::net::Shutdown::Write).unwrap();
                });
                let mut got = Vec::with_capacity(BYTES);
                (&s).read_to_end(&mut got).unwrap();
                writer.join().unwrap();
                assert_eq!(got.len(), BYTES, "client {c}");
                let bad = got
                    .iter()
                    .enumerate()
                    .position(|(i, &b)| b != pattern(c, i));
                assert_eq!(bad, None, "client {c}: first wrong byte");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let status = server.wait().unwrap();
    assert!(status.success());
    let mut last = String::new();
    out.read_to_string(&mut last).unwrap();
    assert!(
        last.starts_with("served 100 connections, 20000000 bytes echoed"),
        "{last}"
    );
}
