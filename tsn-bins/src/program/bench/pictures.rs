//! The pictures `tsn-bench --pictures <dir>` draws, as SVG: the delivery latencies'
//! distribution, and a failover's timeline.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

use crate::cli::Fatal;

/// The left end of the delivery picture's time axis, in milliseconds.
const FASTEST: f64 = 0.1;

/// The width of a timeline's bars.
const BIN: Duration = Duration::from_millis(10);

/// Where a failover's posts were shown, from the moment of the kill.
pub(super) struct Timeline {
    /// When each post of the trial showed on the reader's screen, before (negative) or
    /// after the kill, in seconds.
    pub(super) shown: Vec<f64>,
}

/// Draws the fraction of posts delivered within each latency, one line per series of
/// `(name, samples)`, to `path`. The time axis is logarithmic, from 0.1 ms, so that idle
/// deliveries of a millisecond and loaded ones of a hundred both show.
pub(super) fn delivery(path: &Path, series: &[(&str, &[Duration])]) -> Result<(), Fatal> {
    let failed = |e: &dyn std::fmt::Display| Fatal(format!("cannot draw {}: {e}", path.display()));
    let most = series
        .iter()
        .flat_map(|(_, samples)| samples.iter())
        .max()
        .map_or(1.0, |d| d.as_secs_f64() * 1000.0);
    let area = SVGBackend::new(path, (800, 400)).into_drawing_area();
    area.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "delivery, tsc to tsc: share of posts shown within a time",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((FASTEST..most.max(1.0) * 1.2).log_scale(), 0f64..1.0)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("milliseconds from typing to showing (logarithmic)")
        .y_desc("share of posts")
        .draw()
        .map_err(|e| failed(&e))?;
    for (i, (name, samples)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut sorted: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        sorted.sort_by(f64::total_cmp);
        let count = sorted.len() as f64;
        let points = sorted
            .iter()
            .enumerate()
            .map(|(k, &ms)| (ms.max(FASTEST), (k + 1) as f64 / count));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| failed(&e))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| failed(&e))?;
    area.present().map_err(|e| failed(&e))
}

/// Draws how many posts showed on the reader's screen in each 10 ms around a failover's
/// kill (at 0), to `path`.
pub(super) fn failover(path: &Path, timeline: &Timeline) -> Result<(), Fatal> {
    let failed = |e: &dyn std::fmt::Display| Fatal(format!("cannot draw {}: {e}", path.display()));
    let bin = BIN.as_secs_f64();
    let first = timeline.shown.iter().copied().fold(0.0, f64::min);
    let last = timeline.shown.iter().copied().fold(0.0, f64::max);
    let bins = ((last - first) / bin).ceil() as usize + 1;
    let mut counts = vec![0u32; bins];
    for &at in &timeline.shown {
        counts[((at - first) / bin) as usize] += 1;
    }
    let highest = counts.iter().copied().max().unwrap_or(1).max(1);
    let area = SVGBackend::new(path, (800, 400)).into_drawing_area();
    area.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "failover: posts shown per 10 ms around the kill -9 of the master (at 0)",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(first..last + bin, 0u32..highest + 1)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds from the kill")
        .y_desc("posts shown")
        .draw()
        .map_err(|e| failed(&e))?;
    let bars = counts
        .iter()
        .enumerate()
        .filter(|&(_, &count)| count > 0)
        .map(|(i, &count)| {
            let from = first + i as f64 * bin;
            Rectangle::new([(from, 0), (from + bin, count)], BLUE.filled())
        });
    chart.draw_series(bars).map_err(|e| failed(&e))?;
    let kill = [(0.0, 0), (0.0, highest + 1)];
    chart
        .draw_series(LineSeries::new(kill, RED.stroke_width(2)))
        .map_err(|e| failed(&e))?;
    area.present().map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pictures_are_svg_with_their_series_named_and_a_bar_per_busy_10_ms() {
        let dir = tempfile::tempdir().expect("a folder");
        let near = [1, 2, 3].map(Duration::from_millis);
        let far = [2, 4].map(Duration::from_millis);
        let delivery = dir.path().join("delivery.svg");
        super::delivery(&delivery, &[("near", &near), ("far", &far)]).expect("drawn");
        let text = std::fs::read_to_string(&delivery).expect("written");
        assert!(text.starts_with("<svg"), "{text:.80}");
        assert!(
            text.contains("near") && text.contains("far"),
            "both series named"
        );

        // Two posts before the kill, a gap, three at once after it.
        let timeline = Timeline {
            shown: vec![-0.05, -0.025, 1.203, 1.204, 1.206],
        };
        let failover = dir.path().join("failover.svg");
        super::failover(&failover, &timeline).expect("drawn");
        let text = std::fs::read_to_string(&failover).expect("written");
        let bars = text.matches("fill=\"#0000FF\"").count();
        assert_eq!(
            bars, 3,
            "one bar for each busy 10 ms: two before, one after"
        );
    }
}
