//! The learning-curve image: a training's history drawn as a PNG with `plotters`, in memory,
//! with an embedded font (no system fonts needed). One panel each for the losses, the other
//! metrics and the learning rate, over epochs (a validation within an epoch sits at the
//! fraction of the epoch it followed).

use crate::trainer::EpochRecord;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Width of the image in pixels.
pub const WIDTH: u32 = 800;
/// Height of one panel in pixels.
pub const PANEL_HEIGHT: u32 = 300;

/// The family plotters' labels use by default; the embedded font is registered under it.
const FONT: &str = "sans-serif";

/// Distinguishable line colours on white (matplotlib's tab10).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Registers the embedded font once per process.
fn font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FONT, FontStyle::Normal, ttf_noto_sans::REGULAR)
                .map_err(|_| "the embedded font could not be read".to_string())
        })
        .clone()
}

/// Values beyond this magnitude (a diverged loss) are left out like non-finite ones: an axis
/// spanning them would overflow.
const MAX_DRAWN: f64 = 1e300;

/// A metric's points: (epochs done, value).
type Series = Vec<(f64, f64)>;

/// The PNG of the curves of `history`, a fit's that started at `start_step` (0, or the step
/// it resumed from): [`WIDTH`] wide, [`PANEL_HEIGHT`] per panel (losses; other metrics;
/// learning rate — the ones with values). Values that are not finite, or beyond ±1e300, are
/// left out.
pub fn learning_curve(history: &[EpochRecord], start_step: u64) -> Result<Vec<u8>, String> {
    font()?;
    let panels: Vec<(&str, Vec<(&str, Series)>)> = [
        ("loss", Panel::Loss),
        ("metrics", Panel::Metrics),
        ("learning rate", Panel::LearningRate),
    ]
    .into_iter()
    .map(|(title, panel)| (title, series(history, start_step, panel)))
    .filter(|(_, s)| !s.is_empty())
    .collect();
    let count = u32::try_from(panels.len().max(1)).unwrap_or(1);
    let height = PANEL_HEIGHT * count;
    let mut rgb = vec![0u8; (WIDTH as usize) * (height as usize) * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((count as usize, 1));
        for ((title, lines), area) in panels.iter().zip(&areas) {
            draw_panel(area, title, lines)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    encode_png(&rgb, WIDTH, height)
}

/// The PNG of one metric of several runs, one line each (`(label, points)`, points as
/// (epochs done, value)): [`WIDTH`] by [`PANEL_HEIGHT`].
pub fn compare(metric: &str, runs: &[(String, Vec<(f64, f64)>)]) -> Result<Vec<u8>, String> {
    font()?;
    let lines: Vec<(&str, Series)> = runs
        .iter()
        .map(|(label, points)| {
            let drawn = points
                .iter()
                .copied()
                .filter(|(_, y)| y.is_finite() && y.abs() <= MAX_DRAWN)
                .collect();
            (label.as_str(), drawn)
        })
        .collect();
    let mut rgb = vec![0u8; (WIDTH as usize) * (PANEL_HEIGHT as usize) * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, PANEL_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw_panel(&root, metric, &lines)?;
        root.present().map_err(|e| e.to_string())?;
    }
    encode_png(&rgb, WIDTH, PANEL_HEIGHT)
}

/// Which metrics a panel shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Panel {
    Loss,
    Metrics,
    LearningRate,
}

impl Panel {
    fn of(metric: &str) -> Self {
        if metric.starts_with("lr-") {
            Self::LearningRate
        } else if metric.contains("loss") {
            Self::Loss
        } else {
            Self::Metrics
        }
    }
}

/// The finite points of every metric `panel` shows, by name, for a fit that started at
/// `start_step`. A record at an epoch's end sits at `epoch + 1`; one within an epoch at the
/// fraction of that epoch's steps done by then.
fn series(history: &[EpochRecord], start_step: u64, panel: Panel) -> Vec<(&str, Series)> {
    let mut epoch_ends: BTreeMap<u32, u64> = BTreeMap::new();
    for record in history {
        let end = epoch_ends.entry(record.epoch).or_insert(record.global_step);
        *end = (*end).max(record.global_step);
    }
    let mut by_name: BTreeMap<&str, Series> = BTreeMap::new();
    for record in history {
        let start = epoch_ends
            .range(..record.epoch)
            .next_back()
            .map_or(start_step, |(_, step)| *step);
        let end = epoch_ends
            .get(&record.epoch)
            .copied()
            .unwrap_or(record.global_step);
        let fraction = if end > start {
            record.global_step.saturating_sub(start) as f64 / (end - start) as f64
        } else {
            1.0
        };
        let x = f64::from(record.epoch) + fraction;
        for (name, value) in &record.metrics {
            if Panel::of(name) == panel && value.is_finite() && value.abs() <= MAX_DRAWN {
                by_name.entry(name).or_default().push((x, *value));
            }
        }
    }
    by_name.into_iter().collect()
}

/// The panel's x extent (from 0, at least 1) and its y range: the values' with a 5% margin
/// (a flat line gets one around it); a range past f64's is refused, as plotters loops
/// forever on an infinite one.
fn panel_range(title: &str, lines: &[(&str, Series)]) -> Result<(f64, (f64, f64)), String> {
    let points = lines.iter().flat_map(|(_, s)| s.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if y_min > y_max {
        (y_min, y_max) = (0.0, 1.0);
    }
    let span = y_max - y_min;
    let pad = if span > 0.0 {
        span * 0.05
    } else {
        y_min.abs().max(1e-3) * 0.1
    };
    let (y_low, y_high) = (y_min - pad, y_max + pad);
    if !(y_low.is_finite() && y_high.is_finite() && y_low < y_high) {
        return Err(format!(
            "cannot plot {title} values from {y_min} to {y_max}"
        ));
    }
    Ok((x_max, (y_low, y_high)))
}

/// One panel: its lines (with a marker per point, so a single point shows) and a legend.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    lines: &[(&str, Series)],
) -> Result<(), String> {
    let (x_max, (y_low, y_high)) = panel_range(title, lines)?;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, y_low..y_high)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(10)
        .y_labels(6)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for ((name, points), color) in lines.iter().zip(COLORS.iter().cycle()) {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    // The legend goes to the corner the curves end away from.
    let ends: Vec<f64> = lines
        .iter()
        .filter_map(|(_, s)| s.last().map(|(_, y)| *y))
        .collect();
    let ends_high = ends.iter().sum::<f64>() / ends.len().max(1) as f64 > (y_low + y_high) / 2.0;
    chart
        .configure_series_labels()
        .position(if ends_high {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        })
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())
}

/// `rgb` (8-bit RGB rows) as PNG bytes.
fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainer::Metrics;

    fn record(epoch: u32, global_step: u64, metrics: &[(&str, f64)]) -> EpochRecord {
        EpochRecord {
            epoch,
            global_step,
            metrics: metrics
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Metrics>(),
        }
    }

    /// The (width, height) a PNG's header declares, after decoding the whole image.
    fn decoded_size(png_bytes: &[u8]) -> (u32, u32) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut pixels = vec![0; reader.output_buffer_size().unwrap_or(0)];
        let frame = reader
            .next_frame(&mut pixels)
            .expect("a decodable PNG frame");
        (frame.width, frame.height)
    }

    #[test]
    fn validations_within_an_epoch_sit_at_their_fraction_of_it() {
        let history = [
            record(0, 4, &[("val_loss", 1.0)]),
            record(0, 8, &[("val_loss", 0.5), ("train_loss", 0.7)]),
            record(1, 12, &[("val_loss", 0.4)]),
            record(1, 16, &[("val_loss", 0.3), ("train_loss", 0.35)]),
        ];
        let lines = series(&history, 0, Panel::Loss);
        let val: Vec<(f64, f64)> = lines
            .iter()
            .find(|(n, _)| *n == "val_loss")
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        assert_eq!(val, [(0.5, 1.0), (1.0, 0.5), (1.5, 0.4), (2.0, 0.3)]);
    }

    #[test]
    fn the_image_has_one_panel_per_kind_of_metric() {
        let history: Vec<EpochRecord> = (0..5)
            .map(|e| {
                record(
                    e,
                    u64::from(e + 1) * 10,
                    &[
                        ("train_loss", 1.0 / f64::from(e + 1)),
                        ("val_acc", 0.5 + 0.1 * f64::from(e)),
                        ("lr-Adam", 0.01),
                    ],
                )
            })
            .collect();
        let png = learning_curve(&history, 0).expect("a learning curve");
        assert_eq!(decoded_size(&png), (WIDTH, 3 * PANEL_HEIGHT));
        let losses_only = [record(0, 1, &[("train_loss", 0.5)])];
        let png = learning_curve(&losses_only, 0).expect("a learning curve");
        assert_eq!(decoded_size(&png), (WIDTH, PANEL_HEIGHT));
    }

    #[test]
    fn odd_values_draw_or_fail_without_panicking() {
        for metrics in [
            vec![("train_loss", f64::NAN), ("val_loss", f64::INFINITY)],
            vec![("train_loss", 3.0), ("val_loss", 3.0)],
            vec![("train_loss", 1e300), ("val_loss", -1e300)],
        ] {
            let history = [record(0, 1, &metrics), record(1, 2, &metrics)];
            assert!(learning_curve(&history, 0).is_ok(), "{metrics:?}");
        }
        assert!(learning_curve(&[], 0).is_ok());
        let too_wide = [record(0, 1, &[("a_loss", f64::MAX), ("b_loss", -f64::MAX)])];
        assert!(learning_curve(&too_wide, 0).is_ok());
        assert!(series(&too_wide, 0, Panel::Loss).is_empty());
    }
}
