//! Writes the demo bundle: `cargo run --example make_demo_bundle -- assets/demo-bundle`.
//!
//! The model is `stylecam::demo_model::cnn` with seed 2018 (random
//! weights), its head calibrated on the photos in `assets/photos` so the
//! tags differ between them. It is not trained.

use stylecam::capture;
use stylecam::config::CameraConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "assets/demo-bundle".into());
    let photos = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "assets/photos".into());
    let spec = stylecam::demo_model::demo_spec();
    let mut cam = CameraConfig::files("calibration", &photos);
    cam.files_mut().unwrap().looping = false;
    cam.fps = 0.0;
    let mut source = capture::open(&cam)?;
    let mut images = vec![];
    while let Some(frame) = source.next_frame()? {
        images.push(stylecam::preprocess::preprocess(&frame, &spec)?);
    }
    stylecam::demo_model::write_demo_bundle(std::path::Path::new(&out), &images)?;
    println!(
        "wrote {out}/model.onnx and {out}/bundle.toml (calibrated on {} photos)",
        images.len()
    );
    Ok(())
}
