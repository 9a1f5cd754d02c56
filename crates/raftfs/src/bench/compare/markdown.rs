//! BENCHMARKS.md from [`Results`]: how to regenerate it, the set-up and the machine, a summary
//! of throughput, then one table per case with the systems as rows, and the plots.

use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

use super::results::{Results, RunResult, SystemResult};
use super::{CASES, case};

/// The directory links in the report are relative to: the report's own.
pub fn link_base(out: &Path) -> PathBuf {
    out.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The report.
pub fn render(results: &Results, link_base: &Path) -> String {
    let mut md = String::new();
    header(&mut md, results);
    summary(&mut md, results);
    for case in CASES {
        if results
            .systems
            .iter()
            .any(|s| s.runs.iter().any(|r| r.case == case.name))
        {
            case_section(&mut md, results, case.name, case.title, link_base);
        }
    }
    md
}

/// How a system is named in the report.
fn display_name(system: &str) -> &str {
    match system {
        "zookeeper" => "ZooKeeper",
        other => other,
    }
}

fn header(md: &mut String, results: &Results) {
    let m = &results.machine;
    let _ = write!(
        md,
        "# Benchmarks: raftfs, etcd and ZooKeeper\n\n\
         Measured on {date} by `raftfs bench compare`. To regenerate this file, \
         `bench/results.json` and the plots (it installs etcd and ZooKeeper from Debian if \
         they are missing and builds raftfs):\n\n\
         ```sh\nbash bench/compare.sh\n```\n\n\
         Extra arguments go to `raftfs bench compare` (e.g. `--duration 30`, `--cases write-64`); \
         `raftfs bench compare --render-only bench/results.json` renders this file again from \
         the saved results.\n\n\
         ## Set-up\n\n\
         - Each system runs as a cluster of 5 members on 127.0.0.1, with its data on disk and \
         its default fsync behaviour (etcd's defaults; ZooKeeper's `forceSync=yes`; raftfs's \
         defaults), one system at a time. ZooKeeper runs with a {heap} heap, its admin server \
         off and no limit of connections per client address (`maxClientCnxns=0`: every client \
         connects from 127.0.0.1).\n\
         {rounds}\
         - Peer links run in each system's default: raftfs's members authenticate each other \
         and encrypt their traffic with mutual TLS; etcd's and ZooKeeper's peer links are \
         plaintext. Clients speak plaintext to all three.\n\
         - The same load generator (`raftfs bench write|read|mix --target ...`) drives all \
         three: closed loop, {size}-byte values over {files} files, {warmup} s of warm-up, \
         then {duration} s measured per case.\n\
         - Latency is per operation, from send to answer. Errors are operations that got no \
         answer.\n\
         - CPU is the user + system time of the 5 member processes while a case was \
         measured, per 1,000 answered operations (the load generator's own CPU is not \
         counted). RSS is the members' resident memory summed at the end of the case, with the \
         sum of their peaks (VmHWM) so far in parentheses.\n\
         - Members and load generator share {cores} cores, so these figures compare the \
         systems on one machine; they are not a cluster's capacity.\n\n",
        date = results.date,
        size = results.value_size,
        files = thousands(results.files as f64),
        warmup = results.warmup_s,
        duration = results.duration_s,
        cores = m.cores,
        heap = results.zookeeper_heap,
        rounds = rounds_line(results),
    );
    let fsync = match (results.fsync.per_s, &results.fsync.error) {
        (Some(rate), _) => format!(
            "{}/s (256-byte appends to one file, each followed by fdatasync, in the work \
             directory {})",
            thousands(rate),
            results.fsync.dir
        ),
        (None, Some(err)) => format!("not measured: {}", cell(err)),
        (None, None) => "not measured".to_owned(),
    };
    let _ = writeln!(md, "## Machine\n\n| | |\n|---|---|");
    for (key, value) in [
        ("CPU", m.cpu.clone()),
        ("Cores", m.cores.to_string()),
        ("Memory", format!("{:.1} GiB", m.memory_mib as f64 / 1024.0)),
        ("OS", m.os.clone()),
        ("Kernel", m.kernel.clone()),
        ("Disk fsync rate", fsync),
        ("etcd", m.etcd.clone()),
        ("ZooKeeper", m.zookeeper.clone()),
        ("Java", m.java.clone()),
        ("raftfs", m.raftfs.clone()),
    ] {
        let _ = writeln!(md, "| {key} | {} |", cell(&value));
    }
    md.push('\n');
    let starts: Vec<String> = results
        .systems
        .iter()
        .map(|s| match (s.start_s, &s.error) {
            (Some(secs), _) => format!("{} {secs:.1} s", display_name(&s.system)),
            (None, Some(err)) => {
                format!("{} did not start ({})", display_name(&s.system), cell(err))
            }
            (None, None) => format!("{} did not start", display_name(&s.system)),
        })
        .collect();
    if !starts.is_empty() {
        let _ = writeln!(
            md,
            "Time from starting the members until the cluster was healthy: {}.\n",
            starts.join(", ")
        );
    }
}

/// The set-up's line on rounds (none for a single round).
fn rounds_line(results: &Results) -> String {
    if results.rounds <= 1 {
        return String::new();
    }
    let order: Vec<&str> = results
        .systems
        .iter()
        .map(|s| display_name(&s.system))
        .collect();
    format!(
        "- {} rounds, the systems taking turns: each round starts a fresh cluster of {}, \
         one after the other, and runs every case on it, so that a shared machine's drift \
         falls on all of them alike. Every figure below is a case's median round by \
         throughput (its ratios too), with each round's ops/s and p99 latency, in the order \
         they ran, in the last two columns.\n",
        results.rounds,
        order.join(", then ")
    )
}

/// The summary: operations/s per case and system, with raftfs's ratios.
fn summary(md: &mut String, results: &Results) {
    let systems = &results.systems;
    let ratios = ratio_columns(systems);
    let _ = write!(md, "## Summary: operations/s\n\n| Case |");
    for s in systems {
        let _ = write!(md, " {} |", display_name(&s.system));
    }
    for (other, _) in &ratios {
        let _ = write!(md, " raftfs / {} |", display_name(other));
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(systems.len() + ratios.len()));
    md.push('\n');
    for case in CASES {
        let runs: Vec<Option<&RunResult>> = systems.iter().map(|s| run_of(s, case.name)).collect();
        if runs.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(md, "| {} |", case.title);
        for run in &runs {
            let _ = write!(
                md,
                " {} |",
                ops_per_s(*run).map_or("—".to_owned(), thousands)
            );
        }
        for (_, index) in &ratios {
            let raftfs = systems
                .iter()
                .position(|s| s.system == "raftfs")
                .and_then(|i| ops_per_s(runs[i]));
            let other = ops_per_s(runs[*index]);
            let _ = write!(md, " {} |", ratio(raftfs, other));
        }
        md.push('\n');
    }
    md.push('\n');
}

/// The systems raftfs is compared with, and their index, if raftfs ran at all.
fn ratio_columns(systems: &[SystemResult]) -> Vec<(String, usize)> {
    if !systems.iter().any(|s| s.system == "raftfs") {
        return Vec::new();
    }
    systems
        .iter()
        .enumerate()
        .filter(|(_, s)| s.system != "raftfs")
        .map(|(i, s)| (s.system.clone(), i))
        .collect()
}

fn run_of<'a>(system: &'a SystemResult, case: &str) -> Option<&'a RunResult> {
    system.runs.iter().find(|r| r.case == case)
}

fn ops_per_s(run: Option<&RunResult>) -> Option<f64> {
    run?.ops_per_s()
}

fn p99_us(run: Option<&RunResult>) -> Option<f64> {
    run?.p99_us().map(|us| us as f64)
}

/// `a / b` as `1.23×`, or a dash if either is missing or b is 0.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_owned(),
    }
}

fn case_section(md: &mut String, results: &Results, name: &str, title: &str, link_base: &Path) {
    let _ = write!(
        md,
        "## {title}\n\n\
         | System | ops/s | p50 ms | p99 ms | p99.9 ms | CPU s / 1k ops | RSS MiB (peak) | errors |{}\n\
         |---|---:|---:|---:|---:|---:|---:|---:|{}\n",
        if results.rounds > 1 {
            " ops/s by round |"
        } else {
            ""
        },
        if results.rounds > 1 { "---:|" } else { "" },
    );
    let mut notes = Vec::new();
    let mut plots = Vec::new();
    for system in &results.systems {
        let label = display_name(&system.system);
        let Some(run) = run_of(system, name) else {
            if let Some(err) = &system.error {
                let blank = if results.rounds > 1 {
                    " — | — |"
                } else {
                    ""
                };
                let _ = writeln!(md, "| {label} | — | — | — | — | — | — | — |{blank}");
                notes.push(format!("{label} did not run: {}", cell(err)));
            }
            continue;
        };
        match &run.report {
            Some(report) => {
                let errors: u64 = report.errors.values().sum();
                let _ = writeln!(
                    md,
                    "| {label} | {} | {} | {} | {} | {} | {} | {} |{}",
                    thousands(report.ops_per_s),
                    ms(report.latency.p50_us),
                    ms(report.latency.p99_us),
                    ms(report.latency.p999_us),
                    run.cpu_s_per_1k_ops()
                        .map_or("—".to_owned(), |c| format!("{c:.2}")),
                    memory(run.rss_kib, run.hwm_kib),
                    thousands(errors as f64),
                    by_round(results, run),
                );
                if errors > 0 {
                    let kinds: Vec<String> = report
                        .errors
                        .iter()
                        .map(|(kind, n)| format!("{} {}", cell(kind), thousands(*n as f64)))
                        .collect();
                    notes.push(format!("{label}'s errors: {}", kinds.join(", ")));
                }
            }
            None => {
                let _ = writeln!(
                    md,
                    "| {label} | — | — | — | — | — | — | — |{}",
                    by_round(results, run)
                );
                notes.push(format!(
                    "{label} failed: {}",
                    cell(run.error.as_deref().unwrap_or("no report"))
                ));
            }
        }
        if let Some(plot) = &run.plot {
            plots.push(format!(
                "![{label}, {}]({})",
                title.to_lowercase(),
                link(Path::new(plot), link_base)
            ));
        }
    }
    md.push('\n');
    let runs = |system: &str| {
        results
            .systems
            .iter()
            .find(|s| s.system == system)
            .and_then(|s| run_of(s, name))
    };
    // Below the table: the ratios, then notes, one list; then the plots.
    let mut items = Vec::new();
    if let Some(raftfs) = runs("raftfs").filter(|r| r.report.is_some()) {
        for other in results.systems.iter().filter(|s| s.system != "raftfs") {
            let Some(theirs) = run_of(other, name).filter(|r| r.report.is_some()) else {
                continue;
            };
            let label = display_name(&other.system);
            items.push(format!(
                "raftfs / {label}: {} the throughput; {label}'s p99 / raftfs's: {}.",
                ratio(ops_per_s(Some(raftfs)), ops_per_s(Some(theirs))),
                ratio(p99_us(Some(theirs)), p99_us(Some(raftfs))),
            ));
        }
    }
    items.extend(notes);
    if let Some(case) = case(name).filter(|c| c.pipeline > 1) {
        items.push(format!(
            "{} operations in flight on the one connection: pipelined on raftfs, concurrent \
             requests on one client for etcd and ZooKeeper.",
            case.pipeline
        ));
    }
    for item in &items {
        let _ = writeln!(md, "- {item}");
    }
    if !items.is_empty() {
        md.push('\n');
    }
    for plot in plots {
        let _ = writeln!(md, "{plot}\n");
    }
}

/// The last columns with rounds: each round's ops/s and p99, `—` for a failed one.
fn by_round(results: &Results, run: &RunResult) -> String {
    if results.rounds <= 1 {
        return String::new();
    }
    let ops: Vec<String> = run
        .rounds
        .iter()
        .map(|r| r.ops_per_s.map_or("—".to_owned(), thousands))
        .collect();
    let p99: Vec<String> = run
        .rounds
        .iter()
        .map(|r| r.p99_us.map_or("—".to_owned(), ms))
        .collect();
    format!(" {} | {} |", ops.join(" / "), p99.join(" / "))
}

/// Microseconds as milliseconds, with about three significant digits.
fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn memory(rss_kib: Option<u64>, hwm_kib: Option<u64>) -> String {
    let mib = |kib: u64| (kib as f64 / 1024.0).round();
    match (rss_kib, hwm_kib) {
        (Some(rss), Some(hwm)) => format!("{} ({})", mib(rss), mib(hwm)),
        (Some(rss), None) => format!("{}", mib(rss)),
        _ => "—".to_owned(),
    }
}

/// A number rounded to a whole one, with commas every three digits: `12,345`.
pub fn thousands(x: f64) -> String {
    // round() takes halves away from zero; {:.0} alone would round them to even.
    let digits = format!("{:.0}", x.abs().round());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if x < -0.5 {
        out.insert(0, '-');
    }
    out
}

/// Text for a table cell or a list item: one line, no column separators, not too long.
fn cell(text: &str) -> String {
    const MAX: usize = 300;
    let line = text.replace(['\n', '\r'], " ").replace('|', "\\|");
    if line.chars().count() > MAX {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    } else {
        line
    }
}

/// A link to `target` from a file in `base` (both relative to the current directory, or
/// absolute).
fn link(target: &Path, base: &Path) -> String {
    let relative = if target.is_relative() && base.is_relative() {
        let depth = base
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count();
        let ups = base.components().any(|c| matches!(c, Component::ParentDir));
        // A base that climbs out of the current directory cannot be undone by "..": then
        // the link is absolute.
        (!ups).then(|| {
            let mut path = PathBuf::new();
            for _ in 0..depth {
                path.push("..");
            }
            path.join(target)
        })
    } else {
        base.canonicalize()
            .ok()
            .and_then(|b| target.strip_prefix(b).ok().map(Path::to_path_buf))
    };
    let path = relative
        .or_else(|| std::path::absolute(target).ok())
        .unwrap_or_else(|| target.to_path_buf());
    path.display().to_string().replace(' ', "%20")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::bench::compare::machine::Machine;
    use crate::bench::compare::results::Fsync;
    use crate::bench::load::{Latency, Report, Second};

    fn report(system: &str, ops_per_s: f64, p99_us: u64) -> Report {
        Report {
            system: system.to_owned(),
            workload: "write".to_owned(),
            mix: BTreeMap::from([("write".to_owned(), 100)]),
            connections: 64,
            pipeline: 1,
            value_size: 256,
            files: 1000,
            rate: None,
            warmup_s: 1.0,
            elapsed_s: 8.0,
            ops: (ops_per_s * 8.0) as u64,
            ops_per_s,
            outcomes: BTreeMap::from([("ok".to_owned(), (ops_per_s * 8.0) as u64)]),
            errors: BTreeMap::new(),
            latency: Latency {
                count: (ops_per_s * 8.0) as u64,
                mean_us: 900.0,
                p50_us: 812,
                p90_us: 1500,
                p99_us,
                p999_us: 12_345,
                max_us: 20_000,
            },
            latency_by_op: BTreeMap::new(),
            timeline: vec![Second {
                second: 0,
                ops: ops_per_s as u64,
                p99_us,
            }],
        }
    }

    fn run(case: &str, report: Option<Report>, error: Option<&str>) -> RunResult {
        RunResult {
            case: case.to_owned(),
            cpu_s: report.as_ref().map(|r| r.ops as f64 / 1000.0 * 0.5),
            report,
            error: error.map(str::to_owned),
            rss_kib: Some(300 * 1024),
            hwm_kib: Some(420 * 1024),
            plot: None,
            rounds: Vec::new(),
        }
    }

    fn results() -> Results {
        let mut etcd_run = run("write-64", Some(report("etcd", 4000.0, 30_000)), None);
        etcd_run.plot = Some("bench/plots/etcd-write-64.svg".to_owned());
        let mut zk_read = report("zookeeper", 20_000.0, 5000);
        zk_read.errors.insert("io".to_owned(), 3);
        Results {
            date: "2026-12-01 21:00 UTC".to_owned(),
            machine: Machine {
                cpu: "Test CPU @ 2.2GHz".to_owned(),
                cores: 2,
                memory_mib: 24_105,
                kernel: "6.1.0".to_owned(),
                os: "Debian GNU/Linux 12 (bookworm)".to_owned(),
                etcd: "etcd Version: 3.4.23".to_owned(),
                zookeeper: "3.8.0-11+deb12u2 (Debian package)".to_owned(),
                raftfs: "0.1.0 (42c9305)".to_owned(),
                java: "openjdk version \"17.0.15\" 2025-04-15".to_owned(),
            },
            fsync: Fsync {
                per_s: Some(1234.5),
                dir: "/tmp/raftfs-compare-1".to_owned(),
                error: None,
            },
            duration_s: 8.0,
            warmup_s: 1.0,
            rounds: 1,
            value_size: 256,
            files: 1000,
            zookeeper_heap: "512m".to_owned(),
            systems: vec![
                SystemResult {
                    system: "etcd".to_owned(),
                    start_s: Some(1.25),
                    error: None,
                    runs: vec![etcd_run],
                },
                SystemResult {
                    system: "zookeeper".to_owned(),
                    start_s: Some(3.5),
                    error: None,
                    runs: vec![
                        run("write-64", None, Some("connection refused | twice")),
                        run("read-64", Some(zk_read), None),
                    ],
                },
                SystemResult {
                    system: "raftfs".to_owned(),
                    start_s: Some(0.5),
                    error: None,
                    runs: vec![
                        run("write-64", Some(report("raftfs", 10_000.0, 10_000)), None),
                        run("read-64", Some(report("raftfs", 30_000.0, 2500)), None),
                    ],
                },
            ],
        }
    }

    #[test]
    fn the_report_has_every_part() {
        let md = render(&results(), Path::new(""));
        assert!(md.starts_with("# Benchmarks"));
        assert!(md.contains("bash bench/compare.sh\n"));
        assert!(md.contains("a 512m heap"));
        assert!(md.contains("| Disk fsync rate | 1,235/s"));
        assert!(md.contains("| ZooKeeper | 3.8.0-11+deb12u2 (Debian package) |"));
        assert!(md.contains("etcd 1.2 s, ZooKeeper 3.5 s, raftfs 0.5 s"));
        // The summary, with ratios to both.
        assert!(
            md.contains(
                "| Case | etcd | ZooKeeper | raftfs | raftfs / etcd | raftfs / ZooKeeper |"
            )
        );
        assert!(md.contains("| Writes, 64 connections | 4,000 | — | 10,000 | 2.50× | — |"));
        assert!(
            md.contains("| Linearizable reads, 64 connections | — | 20,000 | 30,000 | — | 1.50× |")
        );
        // The per-case table: rows are systems.
        assert!(md.contains("| etcd | 4,000 | 0.81 | 30.0 | 12.3 | 0.50 | 300 (420) | 0 |"));
        assert!(md.contains("| raftfs | 10,000 | 0.81 | 10.0 | 12.3 | 0.50 | 300 (420) | 0 |"));
        assert!(md.contains("| ZooKeeper | — | — | — | — | — | — | — |"));
        assert!(md.contains("- ZooKeeper failed: connection refused \\| twice"));
        assert!(
            md.contains("- raftfs / etcd: 2.50× the throughput; etcd's p99 / raftfs's: 3.00×.")
        );
        assert!(md.contains("- ZooKeeper's errors: io 3"));
        assert!(md.contains("![etcd, writes, 64 connections](bench/plots/etcd-write-64.svg)"));
        // Cases nobody ran have no section.
        assert!(!md.contains("## Writes, 1 connection\n"));
    }

    #[test]
    fn the_results_survive_json() {
        let results = results();
        let text = serde_json::to_string(&results).unwrap();
        let back: Results = serde_json::from_str(&text).unwrap();
        assert_eq!(
            render(&back, Path::new("")),
            render(&results, Path::new(""))
        );
    }

    #[test]
    fn a_system_that_did_not_start() {
        let mut results = results();
        results.systems[0].runs.clear();
        results.systems[0].start_s = None;
        results.systems[0].error = Some("etcd did not come up".to_owned());
        let md = render(&results, Path::new(""));
        assert!(md.contains("etcd did not start (etcd did not come up)"));
        assert!(md.contains("- etcd did not run: etcd did not come up"));
        assert!(md.contains("| Writes, 64 connections | — | — | 10,000 | — | — |"));
    }

    #[test]
    fn rounds_are_merged_to_the_median_and_shown_beside_it() {
        use crate::bench::compare::results::merge_rounds;
        // Three rounds of etcd and raftfs; raftfs's second round of write-64 failed.
        let round = |etcd: f64, raftfs: Option<f64>| {
            let mut r = results();
            r.systems.remove(1);
            r.systems[0].runs = vec![run("write-64", Some(report("etcd", etcd, 30_000)), None)];
            r.systems[1].runs = vec![match raftfs {
                Some(ops) => run("write-64", Some(report("raftfs", ops, 10_000)), None),
                None => run("write-64", None, Some("member 3 died")),
            }];
            r.systems
        };
        let mut results = results();
        results.systems = merge_rounds(vec![
            round(4000.0, Some(12_000.0)),
            round(3000.0, None),
            round(5000.0, Some(10_000.0)),
        ]);
        results.rounds = 3;
        let [etcd, raftfs] = &results.systems[..] else {
            panic!("two systems: {:?}", results.systems);
        };
        // The median of three; of two successes, the lower.
        assert_eq!(etcd.runs[0].ops_per_s(), Some(4000.0));
        assert_eq!(raftfs.runs[0].ops_per_s(), Some(10_000.0));
        let ops: Vec<Option<f64>> = raftfs.runs[0].rounds.iter().map(|r| r.ops_per_s).collect();
        assert_eq!(ops, vec![Some(12_000.0), None, Some(10_000.0)]);
        let md = render(&results, Path::new(""));
        assert!(md.contains("- 3 rounds, the systems taking turns"), "{md}");
        assert!(md.contains("cluster of etcd, then raftfs, one after the other"));
        assert!(md.contains(
            "| etcd | 4,000 | 0.81 | 30.0 | 12.3 | 0.50 | 300 (420) | 0 | 4,000 / 3,000 / 5,000 | \
             30.0 / 30.0 / 30.0 |"
        ));
        assert!(md.contains(
            "| raftfs | 10,000 | 0.81 | 10.0 | 12.3 | 0.50 | 300 (420) | 0 | 12,000 / — / 10,000 | \
             10.0 / — / 10.0 |"
        ));
        // The summary's ratio is of the medians.
        assert!(md.contains("| Writes, 64 connections | 4,000 | 10,000 | 2.50× |"));
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.5), "1,235");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(ms(812), "0.81");
        assert_eq!(ms(30_000), "30.0");
        assert_eq!(ms(123_456), "123");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50×");
        assert_eq!(ratio(Some(3.0), Some(0.0)), "—");
    }

    #[test]
    fn links_are_relative_to_the_report() {
        let plot = Path::new("bench/plots/a.svg");
        assert_eq!(link(plot, Path::new("")), "bench/plots/a.svg");
        assert_eq!(link(plot, Path::new("docs")), "../bench/plots/a.svg");
        assert_eq!(link_base(Path::new("BENCHMARKS.md")), Path::new(""));
    }
}
