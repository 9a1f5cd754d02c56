//! Guards the files of deploy/ (docs/operations.md and deploy/README.md describe them): the
//! example cluster files load as `raftfs serve --config` loads them, the compose file is valid
//! YAML with five members and the certificate service wired together, and every command line
//! that the systemd units, the Dockerfile and the compose file give `raftfs` parses.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::path::{Path, PathBuf};

use clap::Parser;
use server::config::{ClusterFile, NodeConfig};
use yaml_rust2::{Yaml, YamlLoader};

/// The repository's deploy/ directory.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(name: &str) -> String {
    let path = deploy().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// Parses `args` (without the program name) as the `raftfs` command line would.
fn parses(args: &[String]) -> raftfs::cli::Cli {
    let mut argv = vec!["raftfs".to_owned()];
    argv.extend(args.iter().cloned());
    raftfs::cli::Cli::try_parse_from(&argv)
        .unwrap_or_else(|err| panic!("raftfs {args:?} does not parse: {err}"))
}

#[test]
fn the_five_host_cluster_file_loads() {
    let file =
        ClusterFile::load(&deploy().join("cluster.toml")).expect("deploy/cluster.toml loads");
    let ids: Vec<u64> = file.member.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    for m in &file.member {
        let host = format!("raftfs-{}.example.internal", m.id);
        assert_eq!(m.client, format!("{host}:8080"));
        assert_eq!(m.peer, format!("{host}:9080"));
        assert_eq!(m.http.as_deref(), Some(format!("{host}:7080").as_str()));
        // Every member can be started from it, with the certificates where the file's comments
        // and docs/operations.md put them.
        let node = NodeConfig::member_of(&file, m.id, PathBuf::from("/var/lib/raftfs"))
            .expect("a member of the file");
        let tls = node.tls.expect("peer certificates");
        assert_eq!(tls.ca, Path::new("/etc/raftfs/certs/ca.pem"));
        assert_eq!(
            tls.cert,
            PathBuf::from(format!("/etc/raftfs/certs/member-{}.pem", m.id))
        );
        assert_eq!(
            tls.key,
            PathBuf::from(format!("/etc/raftfs/certs/member-{}-key.pem", m.id))
        );
        assert!(!node.insecure_peers);
    }

    // The file says each setting it writes out is the default: it is, so the comments do not
    // mislead. A file of the same members and nothing else must load to the same settings.
    let members: String = file
        .member
        .iter()
        .map(|m| {
            format!(
                "[[member]]\nid = {}\npeer = \"{}\"\nclient = \"{}\"\nhttp = \"{}\"\n",
                m.id,
                m.peer,
                m.client,
                m.http.as_deref().unwrap()
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let minimal_path = dir.path().join("cluster.toml");
    std::fs::write(&minimal_path, members).unwrap();
    let mut minimal = ClusterFile::load(&minimal_path).unwrap();
    minimal.tls = file.tls.clone();
    minimal.dir = file.dir.clone();
    assert_eq!(
        minimal, file,
        "deploy/cluster.toml's settings are the defaults"
    );
}

#[test]
fn the_systemd_units_start_raftfs_as_the_docs_say() {
    for (unit, id) in [("raftfs@.service", Some("3")), ("raftfs.service", None)] {
        let text = read(unit);
        let value = |key: &str| -> String {
            let prefix = format!("{key}=");
            let found: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix(&prefix))
                .collect();
            assert_eq!(found.len(), 1, "{unit} sets {key} once");
            found[0].to_owned()
        };
        let exec = value("ExecStart").replace("%i", id.unwrap_or(""));
        let mut words = exec.split_whitespace().map(str::to_owned);
        assert_eq!(words.next().as_deref(), Some("/usr/local/bin/raftfs"));
        let args: Vec<String> = words.collect();
        parses(&args);
        for (key, expected) in [
            ("User", "raftfs"),
            ("KillSignal", "SIGTERM"),
            ("Restart", "on-failure"),
            ("LimitNOFILE", "65536"),
            ("TimeoutStopSec", "30s"),
        ] {
            assert_eq!(value(key), expected, "{unit}: {key}");
        }
        if let Some(id) = id {
            assert_eq!(
                args,
                [
                    "serve",
                    "--config",
                    "/etc/raftfs/cluster.toml",
                    "--id",
                    id,
                    "--data-dir",
                    &format!("/var/lib/raftfs/{id}")
                ]
            );
            assert_eq!(value("StateDirectory"), "raftfs/%i");
        }
    }
}

/// A compose service's key, looked up in the service and then in what it merges (`<<:`).
fn key<'a>(service: &'a Yaml, name: &str) -> &'a Yaml {
    match &service[name] {
        Yaml::BadValue => &service["<<"][name],
        found => found,
    }
}

fn strings(list: &Yaml) -> Vec<String> {
    list.as_vec()
        .expect("a list")
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn the_compose_file_has_five_members_and_their_certificates() {
    let docs = YamlLoader::load_from_str(&read("docker-compose.yml"))
        .expect("deploy/docker-compose.yml is valid YAML");
    assert_eq!(docs.len(), 1);
    let compose = &docs[0];
    let services = compose["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "certs", "raftfs-1", "raftfs-2", "raftfs-3", "raftfs-4", "raftfs-5"
        ]
    );

    // The init service makes the certificates the members' cluster file expects.
    let certs = &compose["services"]["certs"];
    let script = strings(&certs["command"]).join(" ");
    assert!(
        script.contains("raftfs certs --out /etc/raftfs/certs --members 1,2,3,4,5"),
        "{script}"
    );
    let cert_args: Vec<String> = script
        .split("raftfs ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    parses(&cert_args);
    assert!(strings(&certs["volumes"]).contains(&"certs:/etc/raftfs/certs".to_owned()));
    assert_eq!(
        certs["build"]["dockerfile"].as_str(),
        Some("deploy/Dockerfile")
    );

    let cluster = ClusterFile::load(&deploy().join("compose-cluster.toml"))
        .expect("deploy/compose-cluster.toml loads");
    assert_eq!(cluster.member.len(), 5);
    let declared = compose["volumes"].as_hash().expect("volumes");
    for id in 1..=5u64 {
        let service = &compose["services"][format!("raftfs-{id}").as_str()];
        let command = strings(key(service, "command"));
        assert_eq!(
            command,
            [
                "serve",
                "--config",
                "/etc/raftfs/cluster.toml",
                "--id",
                &id.to_string(),
                "--data-dir",
                "/var/lib/raftfs"
            ]
        );
        parses(&command);
        assert_eq!(
            key(service, "depends_on")["certs"]["condition"].as_str(),
            Some("service_completed_successfully")
        );
        assert_eq!(key(service, "stop_signal").as_str(), Some("SIGTERM"));
        assert_eq!(key(service, "stop_grace_period").as_str(), Some("30s"));
        let volumes = strings(key(service, "volumes"));
        let data = format!("data-{id}");
        for volume in [
            "./compose-cluster.toml:/etc/raftfs/cluster.toml:ro".to_owned(),
            "certs:/etc/raftfs/certs:ro".to_owned(),
            format!("{data}:/var/lib/raftfs"),
        ] {
            assert!(volumes.contains(&volume), "raftfs-{id} mounts {volume}");
        }
        assert!(declared.contains_key(&Yaml::String(data)));
        // Member id's client port is published as 808(id-1), its status port as 708(id-1).
        let ports = strings(key(service, "ports"));
        assert_eq!(
            ports,
            [format!("{}:8080", 8079 + id), format!("{}:7080", 7079 + id)]
        );
        // The address it listens on, on the compose network, is the one the cluster file
        // gives it (and what redirects name).
        let ip = key(service, "networks")["raftfs"]["ipv4_address"]
            .as_str()
            .expect("a fixed address");
        let member = cluster.member(id).expect("in compose-cluster.toml");
        assert_eq!(member.client, format!("{ip}:8080"));
        assert_eq!(member.peer, format!("{ip}:9080"));
        assert_eq!(member.http.as_deref(), Some(format!("{ip}:7080").as_str()));
    }
    assert!(declared.contains_key(&Yaml::String("certs".into())));
}

#[test]
fn the_dockerfile_builds_and_runs_raftfs() {
    let text = read("Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    assert!(froms[0].starts_with("FROM rust:"), "{froms:?}");
    assert!(froms[1].starts_with("FROM debian:") && froms[1].ends_with("-slim"));
    assert!(text.contains("cargo build --release --locked -p raftfs"));
    assert!(text.contains("\nUSER raftfs\n"));
    let cmd = text
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("a CMD");
    let args: Vec<String> = cmd
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|a| a.trim_matches('"').to_owned())
        .collect();
    parses(&args);
}
