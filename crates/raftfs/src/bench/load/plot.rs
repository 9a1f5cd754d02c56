//! `--plot FILE.svg`: throughput and p99 latency per second over the run, one above the other.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use super::Report;

/// Draws `report`'s timeline to an SVG file at `path`.
pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    draw_svg(report, path)
        .map_err(|err| anyhow::anyhow!("{err}"))
        .with_context(|| format!("cannot draw {}", path.display()))
}

fn draw_svg(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "{} {}: {} connections x {} in flight, {:.0} ops/s",
        report.system, report.workload, report.connections, report.pipeline, report.ops_per_s
    );
    let root = root.titled(&title, ("sans-serif", 18))?;
    let (top, bottom) = root.split_vertically(270);
    let seconds = report.timeline.len().max(1) as u64;
    panel(&top, seconds, "ops/s", &BLUE, report, |s| s.ops as f64)?;
    panel(&bottom, seconds, "p99 ms", &RED, report, |s| {
        s.p99_us as f64 / 1e3
    })?;
    root.present()?;
    Ok(())
}

/// One chart of the timeline: `value` of each second, from 0 to a tenth above its largest.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    seconds: u64,
    label: &str,
    color: &RGBColor,
    report: &Report,
    value: impl Fn(&super::Second) -> f64,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let peak = report.timeline.iter().map(&value).fold(0.0, f64::max);
    let y_max = if peak > 0.0 { peak * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0u64..seconds, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("second")
        .y_desc(label)
        .draw()?;
    chart.draw_series(LineSeries::new(
        report.timeline.iter().map(|s| (s.second, value(s))),
        color,
    ))?;
    Ok(())
}
