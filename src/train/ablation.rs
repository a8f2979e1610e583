//! The paper's ablation (Table IV style) on the synthetic garment dataset:
//! the baseline, then augmentation, resampling with the cost-sensitive loss,
//! relations and thresholds added one at a time, each scored by macro F2 on
//! held-out images; the final model is written as a bundle the daemon serves.

use std::time::Instant;

use burn::module::Module;

use super::augment::Augment;
use super::backbones::{Arch, Net};
use super::data::ImageSource;
use super::fit::{predict_rows, Loss, Plan, Trainer};
use super::recipe::{paper_fn_weights, DEFAULT_NEGATIVES_PER_POSITIVE};
use super::sampler::stratified_split;
use super::synthetic;
use crate::preprocess::Spec;
use crate::styles::decision::DecisionParams;
use crate::styles::metrics::macro_f2;
use crate::styles::search::tune;
use crate::styles::RelationMatrix;

pub struct AblationConfig {
    pub arch: Arch,
    /// Images generated for train + validation (split 80/20, stratified).
    pub train_val: usize,
    /// Held-out images the table is scored on.
    pub test: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

pub struct Row {
    pub name: &'static str,
    pub macro_f2: f64,
}

pub struct Ablation {
    pub rows: Vec<Row>,
    pub net: Net,
    pub decision: DecisionParams,
    pub spec: Spec,
    /// Held-out images (HWC u8) and labels, for serving checks.
    pub test_images: Vec<Vec<u8>>,
    pub test_labels: Vec<Vec<f32>>,
}

impl Ablation {
    pub fn table(&self) -> String {
        let mut out =
            String::from("step                                   macro F2 (held-out)   gain\n");
        let mut prev: Option<f64> = None;
        for r in &self.rows {
            let gain = prev.map_or(String::new(), |p| format!("{:+.4}", r.macro_f2 - p));
            out += &format!("{:<40} {:>8.4}          {gain}\n", r.name, r.macro_f2);
            prev = Some(r.macro_f2);
        }
        out
    }
}

struct Variant {
    augment: Augment,
    resample: bool,
    fn_weight: Vec<f32>,
}

fn train_variant(
    cfg: &AblationConfig,
    v: &Variant,
    images: &dyn ImageSource,
    labels: &[Vec<f32>],
    train: &[usize],
    spec: &Spec,
) -> Net {
    // Every variant starts from the same weights: the rows differ by recipe only.
    let net = Net::seeded(cfg.arch, 13, cfg.seed);
    let mut trainer = Trainer::new(
        net,
        Loss::WeightedBce {
            fn_weight: v.fn_weight.clone(),
        },
        1e-4,
    );
    let plan = Plan {
        images,
        labels,
        train,
        spec,
        augment: v.augment.clone(),
        resample: v.resample,
        // The resampling step undersamples negatives as `train` does by default.
        negative_keep: if v.resample {
            super::sampler::negative_keep(train, labels, Some(DEFAULT_NEGATIVES_PER_POSITIVE), &[])
        } else {
            vec![]
        },
        batch_size: cfg.batch_size,
        epochs: cfg.epochs,
        lr: cfg.lr,
        seed: cfg.seed,
    };
    let ok: Result<(), ()> = plan.run(&mut trainer, 1, |_, _| {}, |_, _, _, _| Ok(()));
    ok.expect("no epoch hook fails");
    trainer.into_net()
}

fn f2_with(params: &DecisionParams, preds: &[Vec<f32>], truth: &[Vec<f32>]) -> f64 {
    let chosen: Vec<Vec<usize>> = preds.iter().map(|p| params.decide(p).labels).collect();
    macro_f2(&chosen, truth, 13)
}

/// Runs the ablation; `progress` gets one line per finished step.
pub fn run(cfg: &AblationConfig, mut progress: impl FnMut(&str)) -> Ablation {
    let size = cfg.arch.input_size();
    let spec = cfg.arch.spec();
    let (images, labels) = synthetic::generate(cfg.train_val, size, cfg.seed);
    let (test_images, test_labels) = synthetic::generate(cfg.test, size, cfg.seed + 1);
    let (train, val) = stratified_split(&labels, 0.2, cfg.seed);
    let relation = RelationMatrix::from_labels(train.iter().map(|&i| labels[i].as_slice()), 13);
    let val_labels: Vec<Vec<f32>> = val.iter().map(|&i| labels[i].clone()).collect();
    let test_idx: Vec<usize> = (0..test_images.len()).collect();
    let fixed = DecisionParams::fixed(13, 0.5);

    let variants = [
        (
            "baseline (BCE, no augmentation, t = 0.5)",
            Variant {
                augment: Augment::NONE,
                resample: false,
                fn_weight: vec![1.0; 13],
            },
        ),
        (
            "+ augmentation",
            Variant {
                augment: Augment::recipe(),
                resample: false,
                fn_weight: vec![1.0; 13],
            },
        ),
        (
            "+ resampling + cost-sensitive (1.5)",
            Variant {
                augment: Augment::recipe(),
                resample: true,
                fn_weight: paper_fn_weights(),
            },
        ),
    ];
    let mut rows = Vec::new();
    let mut last = None;
    for (name, v) in variants {
        let start = Instant::now();
        let net = train_variant(cfg, &v, &images, &labels, &train, &spec);
        let test_preds = predict_rows(&net, &test_images, &test_idx, &spec);
        let f = f2_with(&fixed, &test_preds, &test_labels);
        progress(&format!(
            "{name}: macro F2 {f:.4} ({:.0} s)",
            start.elapsed().as_secs_f64()
        ));
        rows.push(Row { name, macro_f2: f });
        last = Some((net, test_preds));
    }
    let (net, test_preds) = last.expect("three variants");
    let val_preds = predict_rows(&net, &images, &val, &spec);

    // + relations at fixed thresholds: α/β on validation, scored on test.
    let mut best = (f64::MIN, fixed.clone());
    for ai in 0..=5 {
        for bi in 0..=10 {
            let p = DecisionParams {
                alpha: 1.0 - 0.1 * ai as f32,
                beta: vec![0.05 * bi as f32; 13],
                relation: relation.clone(),
                ..fixed.clone()
            };
            let f = f2_with(&p, &val_preds, &val_labels);
            if f > best.0 + 1e-12 {
                best = (f, p);
            }
        }
    }
    let f = f2_with(&best.1, &test_preds, &test_labels);
    progress(&format!("+ relations (eq. 2, t = 0.5): macro F2 {f:.4}"));
    rows.push(Row {
        name: "+ relations (eq. 2, α/β on validation)",
        macro_f2: f,
    });

    // + thresholds: the full `tune` on validation, scored on test.
    let report = tune(&val_preds, &val_labels, relation);
    let decision = report.best().params.clone();
    let f = f2_with(&decision, &test_preds, &test_labels);
    progress(&format!("+ thresholds (tune): macro F2 {f:.4}"));
    rows.push(Row {
        name: "+ thresholds t, t', cardinality (tune)",
        macro_f2: f,
    });
    Ablation {
        rows,
        net: net.valid(),
        decision,
        spec,
        test_images,
        test_labels,
    }
}
