//! Guards `raftfs config`: the example it prints loads as it is (`config check` accepts it),
//! and a file with an unknown key is refused with a message naming the key and its table.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::process::Output;

fn raftfs(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_raftfs"))
        .args(args)
        .output()
        .expect("run raftfs")
}

#[test]
fn the_printed_example_passes_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let example = raftfs(&["config", "example"]);
    assert!(example.status.success());
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, &example.stdout).unwrap();
    let loaded = server::config::ClusterFile::load(&path).unwrap();
    assert_eq!(loaded.member.len(), 3);
    let check = raftfs(&["config", "check", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert!(stdout.starts_with("ok: 3 members"), "{stdout}");
}

#[test]
fn config_check_names_an_unknown_key_and_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    let text = "[client_limits]\nidle_timeout_s = 5\nreply_buffer = 4096\n\
                [[member]]\nid = 1\npeer = \"a:1\"\nclient = \"a:2\"\n";
    std::fs::write(&path, text).unwrap();
    let check = raftfs(&["config", "check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 3 (in [client_limits])"), "{stderr}");
    assert!(stderr.contains("unknown field `reply_buffer`"), "{stderr}");
}
