//! `raftfs bench compare`: etcd, ZooKeeper and raftfs under the same load from the same load
//! generator ([`crate::bench::load`]), each as a 5-member cluster on loopback with its data on
//! disk and its default fsync behaviour, one system after the other; with the CPU time and
//! memory of the members, the disk's fsync rate and the machine, saved as JSON and rendered
//! into BENCHMARKS.md. `bench/compare.sh` installs the other systems and runs it.

pub mod machine;
pub mod markdown;
pub mod proc;
pub mod results;
pub mod systems;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::bench::load::{self, LoadArgs, Target, Workload};
use machine::Machine;
use results::{Fsync, Results, RunResult, SystemResult, merge_rounds};
use systems::{Cluster, Setup};

/// Arguments of `raftfs bench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The systems to compare, in this order (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "etcd,zookeeper,raftfs"
    )]
    pub systems: Vec<Target>,
    /// Only these cases (comma-separated; default all): write-1, write-16, write-64,
    /// write-256, read-64, mix-64, write-pipelined-64.
    #[arg(long, value_delimiter = ',', value_parser = parse_case)]
    pub cases: Vec<String>,
    /// Seconds measured per case (after the warm-up).
    #[arg(short = 'd', long, default_value_t = 8.0)]
    pub duration: f64,
    /// Seconds of load before each case is measured.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// How many times every system runs every case. The systems take turns (each round runs
    /// every system once), so a shared machine's drift falls on all of them alike; each case
    /// reports its median round by throughput, with every round's figure beside it.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The markdown report to write (given twice, the last wins: bench/compare.sh passes it).
    #[arg(long, default_value = "BENCHMARKS.md", overrides_with = "out")]
    pub out: PathBuf,
    /// Every run's report as JSON, for `--render-only`.
    #[arg(long, default_value = "bench/results.json", overrides_with = "results")]
    pub results: PathBuf,
    /// Render --out from a results file written before, running nothing.
    #[arg(long, value_name = "RESULTS.json")]
    pub render_only: Option<PathBuf>,
    /// Directory for the plots, `<system>-<case>.svg`.
    #[arg(long, default_value = "bench/plots", overrides_with = "plots_dir")]
    pub plots_dir: PathBuf,
    /// Plot every case (default: only write-64, to keep the repository light).
    #[arg(long)]
    pub plot_all: bool,
    /// The clusters' data and the members' logs go in a new directory under this one (default:
    /// the system's temporary directory); the data are deleted after each system, the logs
    /// kept only if something failed.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// First port of the ranges the clusters use: etcd base..base+14, ZooKeeper
    /// base+100..base+124, raftfs base+1000..base+3004.
    #[arg(long, default_value_t = 23000)]
    pub base_port: u16,
    /// Seconds each cluster may take to become healthy.
    #[arg(long, default_value_t = 60)]
    pub start_timeout: u64,
    /// Seconds of the fsync measurement in the work directory.
    #[arg(long, default_value_t = 3)]
    pub fsync_seconds: u64,
    /// The etcd server to run.
    #[arg(long, default_value = "etcd")]
    pub etcd: PathBuf,
    /// The etcd client, for health checks and to find the leader (stopped last).
    #[arg(long, default_value = "etcdctl")]
    pub etcdctl: PathBuf,
    /// The Java runtime to run ZooKeeper with.
    #[arg(long, default_value = "java")]
    pub java: PathBuf,
    /// ZooKeeper's class path (Debian's jar, whose manifest names its dependencies, and a
    /// logger binding so the members' logs reach their log files).
    #[arg(
        long,
        default_value = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
    )]
    pub zookeeper_classpath: String,
    /// ZooKeeper's maximum heap per member, as java's -Xmx takes it.
    #[arg(long, default_value = "512m")]
    pub zookeeper_heap: String,
}

/// One workload of the comparison.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Short name, in `--cases`, file names and the results.
    pub name: &'static str,
    /// Heading in BENCHMARKS.md.
    pub title: &'static str,
    /// The load generator's workload.
    pub workload: Workload,
    /// Connections.
    pub connections: usize,
    /// Operations in flight per connection.
    pub pipeline: usize,
}

/// The cases, in the order they run.
pub const CASES: [Case; 7] = [
    Case {
        name: "write-1",
        title: "Writes, 1 connection",
        workload: Workload::Write,
        connections: 1,
        pipeline: 1,
    },
    Case {
        name: "write-16",
        title: "Writes, 16 connections",
        workload: Workload::Write,
        connections: 16,
        pipeline: 1,
    },
    Case {
        name: "write-64",
        title: "Writes, 64 connections",
        workload: Workload::Write,
        connections: 64,
        pipeline: 1,
    },
    Case {
        name: "write-256",
        title: "Writes, 256 connections",
        workload: Workload::Write,
        connections: 256,
        pipeline: 1,
    },
    Case {
        name: "read-64",
        title: "Linearizable reads, 64 connections",
        workload: Workload::Read,
        connections: 64,
        pipeline: 1,
    },
    Case {
        name: "mix-64",
        title: "90% reads, 10% writes, 64 connections",
        workload: Workload::Mix,
        connections: 64,
        pipeline: 1,
    },
    Case {
        name: "write-pipelined-64",
        title: "Writes, 1 connection with 64 in flight",
        workload: Workload::Write,
        connections: 1,
        pipeline: 64,
    },
];

/// The case called `name`.
pub fn case(name: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.name == name)
}

fn parse_case(name: &str) -> Result<String, String> {
    match case(name) {
        Some(case) => Ok(case.name.to_owned()),
        None => Err(format!(
            "no case {name:?} (cases: {})",
            CASES.map(|c| c.name).join(", ")
        )),
    }
}

/// The case whose plot is drawn unless `--plot-all`.
const PLOTTED: &str = "write-64";

/// Bytes per value and files, the same for every case.
const VALUE_SIZE: usize = 256;
const FILES: usize = 1000;

/// Runs the comparison (or only renders, with `--render-only`) and writes the report.
pub async fn run(args: CompareArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.render_only {
        let results = Results::load(path)?;
        return write_report(&args, &results);
    }
    if !(args.duration > 0.0 && args.warmup >= 0.0) {
        bail!("--duration must be above 0 and --warmup at least 0");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work_dir = parent.join(format!("raftfs-compare-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    eprintln!(
        "raftfs bench compare: clusters and logs under {}",
        work_dir.display()
    );
    let setup = Setup {
        log_dir: work_dir.join("logs"),
        work_dir: work_dir.clone(),
        base_port: args.base_port,
        etcd: args.etcd.clone(),
        etcdctl: args.etcdctl.clone(),
        java: args.java.clone(),
        zookeeper_classpath: args.zookeeper_classpath.clone(),
        zookeeper_heap: args.zookeeper_heap.clone(),
        start_timeout: Duration::from_secs(args.start_timeout),
    };
    // Ctrl-C or SIGTERM drops the comparison's future, and with it the running cluster, whose
    // guard stops its members: none is left behind.
    let results = tokio::select! {
        results = compare(&args, &setup) => results?,
        () = server::stop_signal() => {
            bail!("interrupted; logs kept in {}", setup.log_dir.display())
        }
    };
    results.save(&args.results)?;
    eprintln!(
        "raftfs bench compare: results in {}",
        args.results.display()
    );
    write_report(&args, &results)?;
    let failed = failures(&results);
    if failed.is_empty() {
        let _ = std::fs::remove_dir_all(&work_dir);
        Ok(())
    } else {
        // The first few say enough; all are in the report.
        let more = failed.len().saturating_sub(3);
        bail!(
            "{} failed: {}{}; member logs kept in {}",
            failed.len(),
            failed[..failed.len() - more].join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            },
            setup.log_dir.display()
        )
    }
}

/// Renders the results into `--out`.
fn write_report(args: &CompareArgs, results: &Results) -> anyhow::Result<()> {
    let text = markdown::render(results, &markdown::link_base(&args.out));
    results::write_creating_dir(&args.out, &text)?;
    eprintln!("raftfs bench compare: wrote {}", args.out.display());
    Ok(())
}

/// What failed, one line each.
fn failures(results: &Results) -> Vec<String> {
    let mut failed = Vec::new();
    for system in &results.systems {
        if let Some(err) = &system.error {
            failed.push(format!("{}: {err}", system.system));
        }
        for run in &system.runs {
            if let Some(err) = &run.error {
                failed.push(format!("{} {}: {err}", system.system, run.case));
            }
        }
    }
    failed
}

/// Measures the fsync rate and every system, and returns the results.
async fn compare(args: &CompareArgs, setup: &Setup) -> anyhow::Result<Results> {
    let cases: Vec<&Case> = if args.cases.is_empty() {
        CASES.iter().collect()
    } else {
        CASES
            .iter()
            .filter(|c| args.cases.iter().any(|n| n == c.name))
            .collect()
    };
    let date = machine::now_utc();
    let machine = Machine::describe(&args.etcd, &args.java);
    let fsync = measure_fsync(&setup.work_dir, args.fsync_seconds);
    let ticks_per_s = proc::clock_ticks()?;
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        eprintln!("raftfs bench compare: round {round} of {}", args.rounds);
        let mut systems = Vec::new();
        for &system in &args.systems {
            systems.push(measure_system(args, setup, system, &cases, ticks_per_s, round).await);
        }
        rounds.push(systems);
    }
    let mut systems = merge_rounds(rounds);
    keep_median_plots(args, &mut systems)?;
    Ok(Results {
        date,
        machine,
        fsync,
        duration_s: args.duration,
        warmup_s: args.warmup,
        rounds: args.rounds,
        value_size: VALUE_SIZE,
        files: FILES,
        zookeeper_heap: args.zookeeper_heap.clone(),
        systems,
    })
}

/// Where the plot of `case` against `system` goes: `<system>-<case>.svg`, or with a
/// `-round<N>` suffix for a round's plot while there are rounds to choose from.
fn plot_path(args: &CompareArgs, system: &str, case: &str, round: Option<usize>) -> PathBuf {
    let suffix = round.map_or(String::new(), |round| format!("-round{round}"));
    args.plots_dir.join(format!("{system}-{case}{suffix}.svg"))
}

/// Renames each case's median-round plot to the plain name and deletes the other rounds'.
fn keep_median_plots(args: &CompareArgs, systems: &mut [SystemResult]) -> anyhow::Result<()> {
    if args.rounds <= 1 {
        return Ok(());
    }
    for system in systems {
        for run in &mut system.runs {
            let Some(chosen) = run.plot.take() else {
                continue;
            };
            let kept = plot_path(args, &system.system, &run.case, None);
            std::fs::rename(&chosen, &kept)
                .with_context(|| format!("cannot rename {chosen} to {}", kept.display()))?;
            run.plot = Some(kept.display().to_string());
            for round in 1..=args.rounds {
                // The other rounds' plots; the chosen one was renamed away already.
                let _ =
                    std::fs::remove_file(plot_path(args, &system.system, &run.case, Some(round)));
            }
        }
    }
    Ok(())
}

fn measure_fsync(dir: &Path, seconds: u64) -> Fsync {
    eprintln!("raftfs bench compare: fsync rate in {} ...", dir.display());
    let (per_s, error) = match crate::bench::fsync_rate(dir, Duration::from_secs(seconds)) {
        Ok((_, rate)) => {
            // No disk syncs this fast: the comparison would measure memory, not fsync.
            if rate > 100_000.0 {
                eprintln!(
                    "raftfs bench compare: warning: {rate:.0} fsyncs/s: {} looks like a                      memory file system (tmpfs); pass --work-dir on a disk",
                    dir.display()
                );
            }
            (Some(rate), None)
        }
        Err(err) => (None, Some(format!("{err:#}"))),
    };
    Fsync {
        per_s,
        dir: dir.display().to_string(),
        error,
    }
}

/// Starts `system`'s cluster, runs every case against it, and stops it.
async fn measure_system(
    args: &CompareArgs,
    setup: &Setup,
    system: Target,
    cases: &[&Case],
    ticks_per_s: u64,
    round: usize,
) -> SystemResult {
    let name = systems::name(system);
    let mut result = SystemResult {
        system: name.to_owned(),
        start_s: None,
        error: None,
        runs: Vec::new(),
    };
    eprintln!("raftfs bench compare: starting 5 {name} members ...");
    let mut cluster = match systems::start(system, setup).await {
        Ok(cluster) => cluster,
        Err(err) => {
            result.error = Some(format!("{err:#}"));
            eprintln!("raftfs bench compare: {name}: {err:#}");
            return result;
        }
    };
    result.start_s = Some(cluster.start_time.as_secs_f64());
    eprintln!(
        "raftfs bench compare: {name} healthy after {:.1}s",
        cluster.start_time.as_secs_f64()
    );
    for case in cases {
        let run = measure_case(args, &mut cluster, case, ticks_per_s, &setup.log_dir, round).await;
        if let Some(err) = &run.error {
            eprintln!("raftfs bench compare: {name} {}: {err}", case.name);
        }
        result.runs.push(run);
    }
    let stopping = std::time::Instant::now();
    match cluster.stop() {
        Ok(()) => eprintln!(
            "raftfs bench compare: {name} stopped and its data deleted in {:.1}s",
            stopping.elapsed().as_secs_f64()
        ),
        Err(err) => result.error = Some(format!("{err:#}")),
    }
    result
}

/// Runs one case and measures the members' CPU time and memory.
async fn measure_case(
    args: &CompareArgs,
    cluster: &mut Cluster,
    case: &Case,
    ticks_per_s: u64,
    log_dir: &Path,
    round: usize,
) -> RunResult {
    let plot = (args.plot_all || case.name == PLOTTED).then(|| {
        let round = (args.rounds > 1).then_some(round);
        plot_path(args, systems::name(cluster.system), case.name, round)
    });
    let mut run = RunResult {
        case: case.name.to_owned(),
        report: None,
        error: None,
        cpu_s: None,
        rss_kib: None,
        hwm_kib: None,
        plot: None,
        rounds: Vec::new(),
    };
    let outcome = async {
        cluster.check_running(log_dir)?;
        if let Some(dir) = &plot.as_ref().and_then(|p| p.parent()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let load = load_args(cluster, case, args, plot.clone());
        let pids = cluster.pids();
        let sampler = proc::CpuSampler::start(pids.clone())?;
        eprintln!(
            "raftfs bench compare: {} {} ...",
            systems::name(cluster.system),
            case.name
        );
        let report = load::measure(case.workload, &load).await?;
        // The CPU window closes as the measurement ends, before printing and plotting.
        let ticks = sampler.finish(Duration::from_secs_f64(report.elapsed_s.max(0.0)))?;
        let memory = proc::memory(&pids)?;
        load::present(&report, &load)?;
        // A member that died mid-run makes the figures meaningless.
        cluster.check_running(log_dir)?;
        anyhow::Ok((report, ticks, memory))
    }
    .await;
    match outcome {
        Ok((report, ticks, memory)) => {
            run.cpu_s = Some(ticks as f64 / ticks_per_s as f64);
            run.rss_kib = Some(memory.rss_kib);
            run.hwm_kib = Some(memory.hwm_kib);
            run.plot = plot.filter(|p| p.exists()).map(|p| p.display().to_string());
            run.report = Some(report);
        }
        Err(err) => run.error = Some(format!("{err:#}")),
    }
    run
}

/// The load generator's options for `case` against `cluster`.
fn load_args(
    cluster: &Cluster,
    case: &Case,
    args: &CompareArgs,
    plot: Option<PathBuf>,
) -> LoadArgs {
    let mix = match case.workload {
        Workload::Mix => BTreeMap::from([("read".to_owned(), 90), ("write".to_owned(), 10)]),
        _ => LoadArgs::default().mix,
    };
    LoadArgs {
        target: cluster.system,
        endpoints: cluster.endpoints.clone(),
        connections: case.connections,
        pipeline: case.pipeline,
        size: VALUE_SIZE,
        files: FILES,
        duration: args.duration,
        ops: None,
        warmup: args.warmup,
        rate: None,
        mix,
        json: false,
        plot,
        ..LoadArgs::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_a_distinct_name_and_parses() {
        for case in &CASES {
            assert_eq!(parse_case(case.name).unwrap(), case.name);
            assert_eq!(CASES.iter().filter(|c| c.name == case.name).count(), 1);
        }
        assert!(parse_case("write-2").is_err());
        assert!(case(PLOTTED).is_some());
    }

    #[test]
    fn defaults_parse() {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: CompareArgs,
        }
        let args = <Wrapper as clap::Parser>::parse_from(["compare"]).args;
        assert_eq!(
            args.systems,
            [Target::Etcd, Target::Zookeeper, Target::Raftfs]
        );
        assert_eq!(args.duration, 8.0);
        assert!(args.cases.is_empty());
    }
}
