//! What the member processes cost, from `/proc`: CPU seconds (user + system, all threads) and
//! resident memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::bench::proc_status_kib;

/// utime and stime (fields 14 and 15 of `/proc/PID/stat`) in clock ticks.
///
/// The command name (field 2) is in parentheses and may itself hold spaces and parentheses,
/// so the fields are counted from the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `Z` for a process that exited and was not
/// reaped yet, ...), the field after the command name.
pub fn parse_stat_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Whether process `pid` still runs: it has a `/proc` entry and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| parse_stat_state(&stat))
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Clock ticks per second, the unit of `/proc/PID/stat`'s times.
pub fn clock_ticks() -> anyhow::Result<u64> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .context("sysconf(_SC_CLK_TCK) failed")?
        .context("sysconf(_SC_CLK_TCK) has no value")?;
    u64::try_from(ticks)
        .ok()
        .filter(|&t| t > 0)
        .with_context(|| format!("sysconf(_SC_CLK_TCK) is {ticks}"))
}

/// CPU time process `pid` has used so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_stat_ticks(&text).with_context(|| format!("cannot parse {path}: {text:?}"))
}

/// CPU time of all of `pids` so far, in clock ticks.
pub fn total_cpu_ticks(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&pid| cpu_ticks(pid)).sum()
}

/// Resident memory of a set of processes, summed over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident now (VmRSS), in KiB.
    pub rss_kib: u64,
    /// The peak each reached (VmHWM) since it started, in KiB.
    pub hwm_kib: u64,
}

/// The resident memory of `pids` now.
pub fn memory(pids: &[u32]) -> anyhow::Result<Memory> {
    let mut total = Memory {
        rss_kib: 0,
        hwm_kib: 0,
    };
    for &pid in pids {
        total.rss_kib += proc_status_kib(pid, "VmRSS")?;
        total.hwm_kib += proc_status_kib(pid, "VmHWM")?;
    }
    Ok(total)
}

/// How often [`CpuSampler`] reads the members' CPU time: the error of a measured window's
/// ends, against 8 s windows.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// When a sample was taken, and the CPU ticks used until then.
type Sample = (Instant, u64);

/// Reads the CPU time of a set of processes every [`SAMPLE_EVERY`] on its own thread (the load
/// runs on the runtime's), so the CPU used in a window known only afterwards can be looked up:
/// the load generator reports how long it measured, not when it started.
#[derive(Debug)]
pub struct CpuSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<Vec<Sample>>>>,
}

impl CpuSampler {
    /// Starts sampling `pids`; the first sample is taken before this returns.
    pub fn start(pids: Vec<u32>) -> anyhow::Result<CpuSampler> {
        let first = (Instant::now(), total_cpu_ticks(&pids)?);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cpu-sampler".to_owned())
            .spawn(move || {
                let mut samples = vec![first];
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(SAMPLE_EVERY);
                    samples.push((Instant::now(), total_cpu_ticks(&pids)?));
                }
                // One last sample at the stop, so the window's end is exact.
                samples.push((Instant::now(), total_cpu_ticks(&pids)?));
                Ok(samples)
            })
            .context("cannot start the CPU sampler thread")?;
        Ok(CpuSampler {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops sampling and returns the CPU ticks used from `window` before now until now (from
    /// the last sample at or before the window's start).
    pub fn finish(mut self, window: Duration) -> anyhow::Result<u64> {
        let end = Instant::now();
        let samples = self.join()?;
        let start = end.checked_sub(window).unwrap_or(end);
        Ok(ticks_between(&samples, start))
    }

    fn join(&mut self) -> anyhow::Result<Vec<Sample>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(thread) => match thread.join() {
                Ok(samples) => samples,
                Err(_) => anyhow::bail!("the CPU sampler thread panicked"),
            },
            None => anyhow::bail!("the CPU sampler was already stopped"),
        }
    }
}

impl Drop for CpuSampler {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

/// Ticks from the last sample at or before `start` (or the first sample) to the last sample.
fn ticks_between(samples: &[Sample], start: Instant) -> u64 {
    let from = samples
        .iter()
        .rev()
        .find(|(at, _)| *at <= start)
        .or(samples.first())
        .map_or(0, |&(_, ticks)| ticks);
    let to = samples.last().map_or(0, |&(_, ticks)| ticks);
    to.saturating_sub(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        // A real line of /proc/PID/stat, with a name holding a space and a parenthesis.
        let line = "4242 (java (zk) x) S 1 4242 4242 0 -1 4194560 19263 0 0 0 1234 567 0 0 20 0 \
                    38 0 1153 4861440000 52318 18446744073709551615 1 1 0 0 0 0 0 4096 16796879 \
                    0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_ticks(line), Some(1234 + 567));
        assert_eq!(parse_stat_state(line), Some('S'));
        assert_eq!(parse_stat_state("1 (x) Z 0"), Some('Z'));
        assert_eq!(parse_stat_ticks("4242 (etcd) S 1 2"), None);
        assert_eq!(parse_stat_ticks("no name at all"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(is_running(pid));
        let before = cpu_ticks(pid).unwrap();
        assert!(total_cpu_ticks(&[pid, pid]).unwrap() >= 2 * before);
        assert!(clock_ticks().unwrap() >= 1);
        let memory = memory(&[pid]).unwrap();
        assert!(memory.rss_kib > 0 && memory.hwm_kib >= memory.rss_kib);
    }

    #[test]
    fn a_window_starts_at_the_sample_before_it() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let samples = [(at(0), 10), (at(50), 20), (at(100), 35), (at(150), 60)];
        assert_eq!(ticks_between(&samples, at(60)), 60 - 20);
        assert_eq!(ticks_between(&samples, at(100)), 60 - 35);
        // A window longer than the sampling counts from the first sample.
        assert_eq!(ticks_between(&samples, t0), 50);
        assert_eq!(ticks_between(&[], t0), 0);
    }
}
