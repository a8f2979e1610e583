//! `curves.png`: training loss (left) and validation macro F2 at t = 0.5
//! (right) per epoch, one coloured line per backbone (in `[train].backbones`
//! order), drawn with plotters into a buffer and saved with `image`.
//!
//! Axis numbers, titles and the legend need a TrueType font: the first of
//! `$PLOT_FONT` and the usual DejaVu/Liberation paths that exists is
//! used (pure-Rust rendering, no fontconfig). Without one the curves and
//! grid are drawn without text; the figures themselves are in `log.csv`.

use std::sync::OnceLock;

use image::RgbImage;
use plotters::prelude::*;

use super::fit::EpochLog;

const SIZE: (u32, u32) = (960, 360);
/// The family name our font is registered under.
const FAMILY: &str = "sans-serif";

/// Where Debian, Fedora and Arch put a sans-serif TrueType font.
const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a system font with plotters once; whether text can be drawn.
fn font() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let candidates = std::env::var("PLOT_FONT")
            .ok()
            .into_iter()
            .chain(FONT_PATHS.iter().map(|p| p.to_string()));
        for path in candidates {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                return true;
            }
            log::warn!("{path}: not a usable TrueType font");
        }
        log::info!("no TrueType font found (set PLOT_FONT): curves.png is drawn without text");
        false
    })
}

type Series = Vec<(String, Vec<(usize, f64)>)>;

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    series: &Series,
    legend_at: SeriesLabelPosition,
    text: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let max_epoch = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(2);
    let max_y = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.1;
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if text {
        builder
            .caption(title, (FAMILY, 18))
            .x_label_area_size(36)
            .y_label_area_size(52);
    }
    let mut chart = builder.build_cartesian_2d(1usize..max_epoch, 0.0..max_y)?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(235, 235, 235));
    if text {
        mesh.x_desc("epoch")
            .x_labels(max_epoch.min(10))
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    for (k, (name, points)) in series.iter().enumerate() {
        let colour = Palette99::pick(k).to_rgba();
        let drawn = chart.draw_series(LineSeries::new(
            points.iter().copied(),
            colour.stroke_width(2),
        ))?;
        if text {
            drawn.label(name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        }
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
    }
    if text {
        chart
            .configure_series_labels()
            .position(legend_at)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font((FAMILY, 13))
            .draw()?;
    }
    Ok(())
}

/// Renders the log; `backbones` fixes the colour order.
pub fn curves(log: &[EpochLog], backbones: &[String]) -> Result<RgbImage, String> {
    let pick = |f: &dyn Fn(&EpochLog) -> f64| -> Series {
        backbones
            .iter()
            .map(|b| {
                let points = log
                    .iter()
                    .filter(|e| &e.backbone == b)
                    .map(|e| (e.epoch, f(e)))
                    .collect();
                (b.clone(), points)
            })
            .collect()
    };
    let text = font();
    let mut buf = vec![255u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        let (left, right) = root.split_horizontally(SIZE.0 / 2);
        let draw = || -> Result<(), Box<dyn std::error::Error>> {
            let loss = pick(&|e| e.loss as f64);
            panel(
                &left,
                "training loss",
                &loss,
                SeriesLabelPosition::UpperRight,
                text,
            )?;
            let f2 = pick(&|e| e.val_macro_f2);
            let title = "validation macro F2 (t = 0.5)";
            panel(&right, title, &f2, SeriesLabelPosition::LowerRight, text)?;
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| format!("drawing the curves: {e}"))?;
    }
    Ok(RgbImage::from_raw(SIZE.0, SIZE.1, buf).expect("buffer matches the size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_line_per_backbone_and_its_text() {
        let log: Vec<EpochLog> = (1..=3)
            .flat_map(|e| {
                [("a", 1.0), ("b", 2.0)].map(|(b, k)| EpochLog {
                    backbone: b.into(),
                    epoch: e,
                    loss: k / e as f32,
                    val_macro_f2: 0.1 * k as f64 * e as f64,
                    val_f2: vec![],
                    images_per_s: 1.0,
                })
            })
            .collect();
        let img = curves(&log, &["a".into(), "b".into()]).unwrap();
        if let Ok(path) = std::env::var("SAVE_TEST_PLOT") {
            img.save(path).unwrap();
        }
        let count = |k: usize| {
            let c = Palette99::pick(k).to_rgba();
            img.pixels().filter(|p| p.0 == [c.0, c.1, c.2]).count()
        };
        assert!(
            count(0) > 100 && count(1) > 100,
            "{} {}",
            count(0),
            count(1)
        );
        if font() {
            // Axis numbers sit left of the loss panel's plot area: dark
            // anti-aliased glyph pixels there.
            let dark = (0..52)
                .flat_map(|x| (40..300).map(move |y| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&v| v < 120))
                .count();
            assert!(dark > 30, "axis text drawn: {dark} dark pixels");
        }
    }
}
