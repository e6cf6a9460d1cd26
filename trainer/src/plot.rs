//! The training curve as a picture: loss (log scale) against the global step, one colour per
//! stage, read from a run's `metrics.jsonl` and written as SVG.

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use std::path::Path;

/// One point of the curve.
#[derive(Clone, Debug, PartialEq)]
pub struct LossPoint {
    pub step: u64,
    pub stage: String,
    pub loss: f64,
}

/// The loss lines of a metrics log (lines without a loss, such as events, are skipped). A resumed
/// run restarts from its last checkpoint and logs the steps after it again, so a `resume` event
/// at step S drops the points already read past S: each step appears once, as trained last.
pub fn read_losses(jsonl: &str) -> Result<Vec<LossPoint>> {
    let mut points = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("metrics line {}", i + 1))?;
        if let ("resume", Some(step)) = (v["event"].as_str().unwrap_or(""), v["step"].as_u64()) {
            points.retain(|p: &LossPoint| p.step <= step);
        }
        if let (Some(step), Some(stage), Some(loss)) =
            (v["step"].as_u64(), v["stage"].as_str(), v["loss"].as_f64())
        {
            points.push(LossPoint {
                step,
                stage: stage.to_string(),
                loss,
            });
        }
    }
    Ok(points)
}

/// Draws the curve of `points` into an SVG file at `out`, written like every run file (see
/// [`crate::checkpoint::write_atomic`]): a failed write is an error naming `out`, never a cut file.
pub fn plot_losses(points: &[LossPoint], title: &str, out: &Path) -> Result<()> {
    let svg = render_svg(points, title)?;
    crate::checkpoint::write_atomic(out, svg.as_bytes())
}

/// The curve of `points` as SVG text.
fn render_svg(points: &[LossPoint], title: &str) -> Result<String> {
    let finite: Vec<&LossPoint> = points
        .iter()
        .filter(|p| p.loss.is_finite() && p.loss > 0.0)
        .collect();
    if finite.is_empty() {
        bail!("no positive, finite loss values to plot");
    }
    let max_step = finite.iter().map(|p| p.step).max().unwrap_or(1).max(1);
    let lo = finite.iter().map(|p| p.loss).fold(f64::INFINITY, f64::min);
    let hi = finite.iter().map(|p| p.loss).fold(0.0, f64::max);
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0u64..max_step, (lo * 0.8..hi * 1.25).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("training loss (log)")
        .draw()?;
    let mut stages: Vec<&str> = Vec::new();
    for p in &finite {
        if !stages.contains(&p.stage.as_str()) {
            stages.push(&p.stage);
        }
    }
    for (i, stage) in stages.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let series: Vec<(u64, f64)> = finite
            .iter()
            .filter(|p| p.stage == *stage)
            .map(|p| (p.step, p.loss))
            .collect();
        chart
            .draw_series(LineSeries::new(series, colour.stroke_width(2)))?
            .label(*stage)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    root.present()?;
    drop(chart);
    drop(root);
    Ok(svg)
}

/// Reads a run's metrics log and writes its curve.
pub fn plot_run(metrics: &Path, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(metrics)
        .with_context(|| format!("reading {}", metrics.display()))?;
    let points = read_losses(&text).with_context(|| format!("parsing {}", metrics.display()))?;
    plot_losses(&points, "Coconut curriculum: training loss", out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_line_per_stage() {
        let log = r#"{"event":"start","step":0}
{"step":1,"stage":"stage0","stage_step":1,"loss":3.0,"lr":0.001}
{"step":2,"stage":"stage0","stage_step":2,"loss":1.0,"lr":0.001}
{"step":3,"stage":"stage1","stage_step":1,"loss":0.5,"lr":0.001}
{"step":4,"stage":"stage1","stage_step":2,"loss":0.01,"lr":0.001}
"#;
        let points = read_losses(log).unwrap();
        assert_eq!(points.len(), 4);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("curve.svg");
        plot_losses(&points, "test", &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("stage0") && svg.contains("stage1"));
        // Curves are drawn 2 px wide and legend marks 3 px wide; the axes and mesh 1 px.
        assert_eq!(
            svg.matches(r#"stroke-width="2""#).count(),
            2,
            "one curve per stage"
        );
        assert_eq!(
            svg.matches(r#"stroke-width="3""#).count(),
            2,
            "one legend mark per stage"
        );
    }

    #[test]
    fn a_resume_replaces_the_steps_logged_after_its_checkpoint() {
        let loss = |step: u64, loss: f64| {
            format!(r#"{{"step":{step},"stage":"s","stage_step":{step},"loss":{loss},"lr":0.001}}"#)
        };
        let resume = r#"{"event":"resume","step":1}"#;
        let log = [
            loss(1, 3.0),
            loss(2, 2.0),
            loss(3, 1.0),
            resume.into(),
            loss(2, 2.5),
            loss(3, 1.5),
        ]
        .join("\n");
        let steps: Vec<(u64, f64)> = read_losses(&log)
            .unwrap()
            .iter()
            .map(|p| (p.step, p.loss))
            .collect();
        assert_eq!(steps, vec![(1, 3.0), (2, 2.5), (3, 1.5)]);
    }

    #[test]
    fn refuses_a_log_without_losses() {
        let dir = tempfile::tempdir().unwrap();
        let e = plot_losses(&[], "x", &dir.path().join("c.svg")).unwrap_err();
        assert!(e.to_string().contains("no positive"));
        assert!(read_losses("{broken").is_err());
    }
}
