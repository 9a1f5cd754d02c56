//! The machine a comparison ran on and the versions it compared, as BENCHMARKS.md states them.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The machine and the software measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model (`model name` of /proc/cpuinfo).
    pub cpu: String,
    /// Logical CPUs this process may use.
    pub cores: usize,
    /// Memory in MiB (`MemTotal`).
    pub memory_mib: u64,
    /// The kernel release.
    pub kernel: String,
    /// The distribution (`PRETTY_NAME` of /etc/os-release).
    pub os: String,
    /// `etcd --version`'s first line.
    pub etcd: String,
    /// ZooKeeper's Debian package version.
    pub zookeeper: String,
    /// raftfs's version and commit.
    pub raftfs: String,
    /// The Java runtime (`java -version`'s first line).
    pub java: String,
}

const UNKNOWN: &str = "unknown";

impl Machine {
    /// Looks everything up; what cannot be found is "unknown" (it only labels the results).
    pub fn describe(etcd: &Path, java: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        Machine {
            cpu: cpu_model(&cpuinfo).unwrap_or(UNKNOWN).to_owned(),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_mib: mem_total_kib(&meminfo).unwrap_or(0) / 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| UNKNOWN.to_owned(), |s| s.trim().to_owned()),
            os: os_name(&os_release).unwrap_or(UNKNOWN).to_owned(),
            etcd: first_line(etcd, &["--version"]).unwrap_or_else(|| UNKNOWN.to_owned()),
            zookeeper: first_line(
                Path::new("dpkg-query"),
                &["-W", "-f", "${Version}", "zookeeper"],
            )
            .map_or_else(|| UNKNOWN.to_owned(), |v| format!("{v} (Debian package)")),
            raftfs: raftfs_version(),
            java: first_line(java, &["-version"]).unwrap_or_else(|| UNKNOWN.to_owned()),
        }
    }
}

/// The first non-empty line a command prints (on stdout, or stderr where `java -version`
/// prints), if it succeeds.
fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
}

/// The crate's version, with `git describe` of the current directory's repository if any.
fn raftfs_version() -> String {
    let version = env!("CARGO_PKG_VERSION");
    match first_line(
        Path::new("git"),
        &["describe", "--always", "--dirty", "--tags"],
    ) {
        Some(commit) => format!("{version} ({commit})"),
        None => version.to_owned(),
    }
}

/// The first `model name` of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> Option<&str> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim())
    })
}

/// `MemTotal` of /proc/meminfo, in KiB.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// `PRETTY_NAME` of /etc/os-release, unquoted.
pub fn os_name(os_release: &str) -> Option<&str> {
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|name| name.trim().trim_matches('"'))
}

/// Now as `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(seconds)
}

/// Unix time `seconds` as `YYYY-MM-DD HH:MM UTC` (the proleptic Gregorian calendar).
pub fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let (hour, minute) = ((seconds % 86_400) / 3600, (seconds % 3600) / 60);
    // Howard Hinnant's days-to-civil: eras of 400 years from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_796_129_580), "2026-12-01 12:53 UTC");
    }

    #[test]
    fn proc_files() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(cpu_model(cpuinfo), Some("Intel(R) Xeon(R) CPU @ 2.20GHz"));
        assert_eq!(
            mem_total_kib("MemTotal:       24684032 kB\nMemFree: 1 kB\n"),
            Some(24_684_032)
        );
        assert_eq!(
            os_name("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }
}
