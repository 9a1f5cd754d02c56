//! Guards `GET /metrics` against counting wrong or going missing: a 3-member cluster of real
//! processes is scraped before and after a known mix of commands (writes, reads found and not
//! found, a failed cas, a delete, a redirected read, a malformed line), the text is parsed with
//! a Prometheus text-format parser (`prometheus-parse`), and the differences must match what was
//! done: commands by kind and result, latency histograms' counts, commits, and the gauges and
//! cluster counters a dashboard reads.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bytes::Bytes;
use client::Connection;
use common::cluster::TestCluster;
use common::metrics::{present, scrape, value};
use common::name;
use fs::{Command, Reply};
use prometheus_parse::{Scrape, Value};

/// Checks that every histogram's buckets are cumulative and end at `+Inf` with its `_count`.
fn check_histograms(scrape: &Scrape) {
    let mut seen = 0;
    for sample in &scrape.samples {
        let Value::Histogram(buckets) = &sample.value else {
            continue;
        };
        seen += 1;
        let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "{} buckets are cumulative: {counts:?}",
            sample.metric
        );
        let last = buckets.last().unwrap();
        assert!(last.less_than.is_infinite(), "the last bucket is +Inf");
        let labels: Vec<(&str, &str)> = sample
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let count = value(scrape, &format!("{}_count", sample.metric), &labels);
        assert_eq!(
            last.count, count,
            "{} +Inf bucket equals _count",
            sample.metric
        );
    }
    assert!(seen >= 4, "histograms are exposed ({seen} found)");
}

/// The Grafana dashboard (deploy/grafana/raftfs.json) is valid JSON and every metric its
/// queries name is one a member exposes.
fn check_dashboard(scrape: &Scrape) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/raftfs.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("raftfs_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                    .unwrap_or(tail.len());
                names.push(tail[..end].to_owned());
                rest = &tail[end..];
            }
        }
    }
    assert!(names.len() > 20, "the dashboard queries raftfs metrics");
    for name in names {
        let exposed = name
            .strip_suffix("_bucket")
            .map_or_else(|| present(scrape, &name), |h| present(scrape, h));
        assert!(exposed, "the dashboard's {name} is exposed");
    }
}

fn write(file: &str, content: &'static [u8]) -> Command {
    Command::Write {
        name: name(file),
        content: Bytes::from_static(content),
        exptime_s: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_clients_and_the_cluster_did() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    let https: std::collections::BTreeMap<usize, String> = cluster
        .ids()
        .into_iter()
        .map(|i| (i, cluster.http_addr(i)))
        .collect();
    let http = |i: usize| https[&i].clone();
    let before = scrape(&http(leader)).await;

    let mut conn = Connection::connect(&cluster.client_addr(leader))
        .await
        .unwrap();
    const WRITES: u64 = 5;
    for i in 0..WRITES {
        let reply = conn
            .call(&write(&format!("m-{i}"), b"hello"))
            .await
            .unwrap();
        assert!(matches!(reply, Reply::Written { .. }), "{reply:?}");
    }
    for i in 0..3 {
        let reply = conn
            .call(&Command::Read {
                name: name(&format!("m-{i}")),
            })
            .await
            .unwrap();
        assert!(matches!(reply, Reply::Contents { .. }), "{reply:?}");
    }
    for _ in 0..2 {
        let missing = Command::Read {
            name: name("missing"),
        };
        assert_eq!(conn.call(&missing).await.unwrap(), Reply::FileNotFound);
    }
    let cas = Command::Cas {
        name: name("m-0"),
        version: 999_999,
        content: Bytes::from_static(b"x"),
        exptime_s: 0,
    };
    assert!(matches!(
        conn.call(&cas).await.unwrap(),
        Reply::VersionMismatch { .. }
    ));
    let delete = Command::Delete { name: name("m-4") };
    assert_eq!(conn.call(&delete).await.unwrap(), Reply::Deleted);
    // On a connection of its own, in case a malformed line closes it.
    let mut bad = Connection::connect(&cluster.client_addr(leader))
        .await
        .unwrap();
    bad.queue_raw(b"frobnicate\r\n");
    assert_eq!(bad.recv().await.unwrap(), Reply::CmdErr);

    let mut at_follower = Connection::connect(&cluster.client_addr(follower))
        .await
        .unwrap();
    let follower_before = scrape(&http(follower)).await;
    let redirected = at_follower
        .call(&Command::Read { name: name("m-1") })
        .await
        .unwrap();
    assert!(matches!(redirected, Reply::Redirect(_)), "{redirected:?}");

    // Our connection is still open while we scrape.
    let after = scrape(&http(leader)).await;
    let delta = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    let commands = "raftfs_commands_total";
    let expected = [
        ("write", "ok", WRITES),
        ("read", "ok", 3),
        ("read", "not_found", 2),
        ("cas", "version", 1),
        ("delete", "ok", 1),
        ("malformed", "cmd_err", 1),
    ];
    for (kind, result, count) in expected {
        assert_eq!(
            delta(commands, &[("kind", kind), ("result", result)]),
            count as f64,
            "{kind}/{result}"
        );
    }
    for (kind, count) in [("write", WRITES), ("read", 5), ("cas", 1), ("delete", 1)] {
        assert_eq!(
            delta("raftfs_command_duration_seconds_count", &[("kind", kind)]),
            count as f64,
            "latency observations of {kind}"
        );
    }
    let mutations = (WRITES + 2) as f64;
    let commits = delta("raftfs_commit_duration_seconds_count", &[]);
    assert!(
        commits >= mutations,
        "{commits} commits timed, {mutations} mutations"
    );
    assert_eq!(delta("raftfs_proposals_committed_total", &[]), commits);
    assert!(delta("raftfs_apply_duration_seconds_count", &[]) >= 1.0);
    // Not one per mutation: a majority of followers may commit an entry while the leader's own
    // fsync is in flight, and the next entry then shares that fsync.
    assert!(delta("raftfs_wal_fsync_duration_seconds_count", &[]) >= 1.0);
    assert!(delta("raftfs_wal_fsyncs_total", &[]) >= 1.0);
    assert_eq!(delta("raftfs_write_requests_total", &[]), WRITES as f64);
    assert!(delta("raftfs_client_received_bytes_total", &[]) > 0.0);
    assert!(delta("raftfs_client_sent_bytes_total", &[]) > 0.0);
    assert!(delta("raftfs_peer_sent_bytes_total", &[]) > 0.0);
    assert!(value(&after, "raftfs_client_connections", &[]) >= 1.0);
    assert_eq!(value(&after, "raftfs_role", &[("role", "leader")]), 1.0);
    assert_eq!(value(&after, "raftfs_is_leader", &[]), 1.0);
    assert!(value(&after, "raftfs_log_entries", &[]) >= mutations);
    assert!(value(&after, "raftfs_log_bytes", &[]) > 0.0);
    for gauge in [
        "raftfs_pending_proposals",
        "raftfs_term",
        "raftfs_commit_index",
        "raftfs_snapshot_index",
        "raftfs_snapshots_made_total",
        "raftfs_snapshots_sent_total",
        "raftfs_snapshots_installed_total",
        "raftfs_elections_started_total",
        "raftfs_prevotes_started_total",
        "raftfs_proposals_failed_total",
        "raftfs_peer_received_bytes_total",
    ] {
        assert!(present(&after, gauge), "{gauge} is exposed");
    }
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "raftfs_peer_messages_dropped_total"),
        "dropped messages are exposed by reason"
    );
    check_histograms(&after);
    check_dashboard(&after);

    let follower_after = scrape(&http(follower)).await;
    assert_eq!(
        value(
            &follower_after,
            commands,
            &[("kind", "read"), ("result", "redirect")]
        ) - value(
            &follower_before,
            commands,
            &[("kind", "read"), ("result", "redirect")]
        ),
        1.0,
        "the follower counts the read it redirected"
    );
    assert_eq!(
        value(&follower_after, "raftfs_role", &[("role", "follower")]),
        1.0
    );

    // Every member saw at least the first leader; some member ran an election for it.
    let mut elections = 0.0;
    for i in cluster.ids() {
        let s = scrape(&http(i)).await;
        assert!(
            value(&s, "raftfs_leader_changes_total", &[]) >= 1.0,
            "member {i} counted a leader change"
        );
        elections += value(&s, "raftfs_elections_started_total", &[]);
    }
    assert!(elections >= 1.0, "an election was counted");

    // The leader killed: the survivors count the new leader, and the new one its election.
    let survivors: Vec<usize> = cluster.ids().into_iter().filter(|&i| i != leader).collect();
    let mut before_failover = Vec::new();
    for &i in &survivors {
        before_failover.push(scrape(&http(i)).await);
    }
    drop(conn);
    drop(bad);
    cluster.kill9(leader);
    let new_leader = cluster.leader_among(&survivors).await;
    for (&i, before) in survivors.iter().zip(&before_failover) {
        let now = scrape(&http(i)).await;
        let changes = value(&now, "raftfs_leader_changes_total", &[])
            - value(before, "raftfs_leader_changes_total", &[]);
        assert!(changes >= 1.0, "member {i} counted the new leader");
        if i == new_leader {
            let elections = value(&now, "raftfs_elections_started_total", &[])
                - value(before, "raftfs_elections_started_total", &[]);
            assert!(elections >= 1.0, "the new leader counted its election");
            assert_eq!(value(&now, "raftfs_role", &[("role", "leader")]), 1.0);
        }
    }
}
