//! The progress bar of a load run: elapsed time (or operations, with `--ops`) and the live
//! rate of answers. It draws only on a terminal.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{LoadArgs, Shared};

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(250);

/// A running progress bar; [`Progress::finish`] clears it.
pub(super) struct Progress {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

impl Progress {
    pub(super) fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// Starts the bar (hidden where standard error is not a terminal).
pub(super) fn show(shared: &Arc<Shared>, args: &LoadArgs) -> Progress {
    let by_ops = args.ops;
    let total = match by_ops {
        Some(ops) => ops,
        None => ((args.warmup + args.duration) * 10.0).ceil() as u64,
    };
    let bar = ProgressBar::new(total);
    let template = if by_ops.is_some() {
        "{prefix} [{bar:30}] {pos}/{len} ops {msg}"
    } else {
        "{prefix} [{bar:30}] {elapsed}/{duration} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("{} {}", args.target.name(), args.connections));
    let shared = shared.clone();
    let progress = bar.clone();
    let ticker = tokio::spawn(async move {
        shared.schedule.begun().await;
        let (start, measure_from, _) = shared.schedule.times();
        let mut last = (Instant::now(), shared.answered.load(Ordering::Relaxed));
        let mut interval = tokio::time::interval(TICK);
        loop {
            interval.tick().await;
            let now = Instant::now();
            let answered = shared.answered.load(Ordering::Relaxed);
            let rate = (answered - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
            last = (now, answered);
            let phase = if now < measure_from {
                "warm-up"
            } else {
                "measuring"
            };
            progress.set_message(format!("{phase} {rate:.0} ops/s"));
            match by_ops {
                Some(_) => {
                    let measured = shared
                        .recorder
                        .lock()
                        .map(|r| r.measured())
                        .unwrap_or_default();
                    progress.set_position(measured);
                }
                None => progress.set_position(((now - start).as_secs_f64() * 10.0) as u64),
            }
        }
    });
    Progress { bar, ticker }
}
