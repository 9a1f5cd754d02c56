//! Guards the command-line contract of docs/protocol.md: every subcommand has --help, and a bad argument,
//! config file or data directory exits non-zero with a one-line reason.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::process::{Command, Output};

fn raftfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftfs"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run raftfs")
}

/// Asserts a failure with exactly one line on stderr that mentions `needle`.
fn fails_with_one_line(output: &Output, needle: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got {stderr:?}");
    assert!(lines[0].starts_with("raftfs: error: "), "{stderr:?}");
    assert!(lines[0].contains(needle), "{stderr:?} mentions {needle:?}");
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["cluster", "--help"],
        &["bench", "--help"],
        &["bench", "write", "--help"],
        &["bench", "read", "--help"],
        &["bench", "cas", "--help"],
        &["bench", "delete", "--help"],
        &["bench", "mix", "--help"],
        &["bench", "read-modes", "--help"],
        &["bench", "fsync", "--help"],
        &["bench", "failover", "--help"],
        &["bench", "snapshots", "--help"],
        &["admin", "--help"],
        &["admin", "members", "--help"],
        &["admin", "add-member", "--help"],
        &["admin", "promote", "--help"],
        &["admin", "remove-member", "--help"],
        &["admin", "transfer-leader", "--help"],
        &["certs", "--help"],
    ] {
        let output = raftfs(args);
        assert!(output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage: raftfs"));
    }
}

#[test]
fn bad_arguments_exit_non_zero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    fails_with_one_line(
        &raftfs(&["serve", "--config", missing.to_str().unwrap(), "--id", "1"]),
        "cannot read config file",
    );

    let garbage = dir.path().join("garbage.toml");
    std::fs::write(&garbage, "[[member]]\nid = 1\nnonsense\n").unwrap();
    fails_with_one_line(
        &raftfs(&["serve", "--config", garbage.to_str().unwrap(), "--id", "1"]),
        "line 3",
    );

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[member]]\nid = 1\npeer = \"127.0.0.1:1\"\nclient = \"127.0.0.1:2\"\n",
    )
    .unwrap();
    fails_with_one_line(
        &raftfs(&["serve", "--config", good.to_str().unwrap(), "--id", "7"]),
        "not a member",
    );

    // A data directory that cannot be created: under a regular file.
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("data");
    fails_with_one_line(
        &raftfs(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            under_file.to_str().unwrap(),
        ]),
        "cannot open data directory",
    );

    fails_with_one_line(&raftfs(&["cluster", "--nodes", "4"]), "--nodes must be odd");
    assert!(!raftfs(&["serve", "--bogus"]).status.success());
}
