//! The training loop learns on real garment images: the tiny small CNN on
//! 4,000 Fashion-MNIST training images, evaluated on the 10,000 test images.
//! (The full benchmark is `stylecam bench fashion-mnist`.)

use crate::common::*;
use std::path::Path;
use std::time::Duration;
use stylecam::train::fashion_mnist::{bench, BenchConfig, DEFAULT_DIR};

#[test]
fn small_cnn_learns_fashion_mnist() {
    if !available(
        "Fashion-MNIST (Debian dataset-fashion-mnist)",
        Path::new(DEFAULT_DIR)
            .join("t10k-labels-idx1-ubyte.gz")
            .is_file(),
    ) {
        return;
    }
    let r = bench(&BenchConfig {
        data: DEFAULT_DIR.into(),
        budget: Duration::from_secs(120),
        epochs: 2,
        batch_size: 64,
        lr: 3e-3,
        tiny: true,
        seed: 1,
        limit: Some(4000),
    })
    .unwrap();
    eprintln!(
        "tiny small CNN, 4,000 images × {:.1} epochs in {:.1} s: test accuracy {:.4} ({:.0} img/s)",
        r.epochs_run,
        r.train_time.as_secs_f64(),
        r.accuracy,
        r.images_per_s
    );
    // Chance is 0.10; a linear model on raw pixels reaches ~0.84 with all data.
    assert!(r.accuracy > 0.70, "accuracy {}", r.accuracy);
}
