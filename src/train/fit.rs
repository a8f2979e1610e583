//! One optimisation step and batched prediction for a [`Net`]: the loss
//! (softmax cross-entropy, or the paper's cost-sensitive BCE), Adam with
//! decoupled weight decay, and a warm-up + cosine learning-rate schedule.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_sigmoid, log_softmax, sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use std::borrow::Cow;

use super::backbones::Net;
use super::data::{prefetch, workers, ImageSource};
use super::layers::values;
use crate::rng::Rng;

/// What the network is trained to predict.
#[derive(Clone, Debug, PartialEq)]
pub enum Loss {
    /// One class per image (targets are one-hot rows).
    Softmax,
    /// Multi-label BCE; `fn_weight[c]` multiplies the loss of a missed
    /// positive of class c (cost-sensitive: 1.5 for the paper's classes
    /// 1,4,7,8,11,12,13, 1.0 for the baseline).
    WeightedBce { fn_weight: Vec<f32> },
}

/// The learning rate at `step`: linear warm-up, then cosine decay to 1% of
/// the peak at `total` steps. A pure function of the step, so a resumed run
/// continues on the same curve.
pub fn lr_at(step: usize, total: usize, peak: f64, warmup: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let t = ((step - warmup) as f64 / span).min(1.0);
    let floor = peak * 0.01;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// A batch of images `[n, 3, h, w]` (normalised) with its targets `[n, C]`
/// and, for BCE, which negatives count in the loss (`[n, C]`, 1 or 0;
/// `None`: all).
pub struct Batch {
    pub images: Vec<f32>,
    pub shape: [usize; 4],
    pub targets: Vec<f32>,
    pub negatives: Option<Vec<f32>>,
}

fn adamw(weight_decay: f32) -> ModuleOptimizer {
    AdamWConfig::new().with_weight_decay(weight_decay).init()
}

pub struct Trainer {
    net: Option<Net>,
    optim: ModuleOptimizer,
    weight_decay: f32,
    device: Device,
    pub loss: Loss,
    pub step: usize,
}

impl Trainer {
    pub fn new(net: Net, loss: Loss, weight_decay: f32) -> Self {
        let device = net.head.weight.device();
        Self {
            net: Some(net.train()),
            optim: adamw(weight_decay),
            weight_decay,
            device,
            loss,
            step: 0,
        }
    }

    pub fn net(&self) -> &Net {
        self.net.as_ref().expect("net present between steps")
    }

    /// The optimiser (its state goes into checkpoints).
    pub fn optimizer(&self) -> &ModuleOptimizer {
        &self.optim
    }

    /// Continues from the optimiser state saved beside checkpoint `path`;
    /// on error the optimiser starts fresh (new moments).
    pub fn restore_optimizer(
        &mut self,
        path: &std::path::Path,
    ) -> Result<(), super::checkpoint::CheckpointError> {
        let optim = std::mem::replace(&mut self.optim, adamw(self.weight_decay));
        self.optim = super::checkpoint::load_optimizer(path, optim)?;
        Ok(())
    }

    /// Takes the trained net out (in inference mode).
    pub fn into_net(self) -> Net {
        self.net.expect("net present").valid()
    }

    /// One optimisation step; returns the batch's mean loss.
    pub fn step(&mut self, batch: &Batch, lr: f64) -> f32 {
        let net = self.net.take().expect("net present between steps");
        let classes = net.classes();
        let n = batch.shape[0];
        let x = Tensor::<4>::from_data(
            TensorData::new(batch.images.clone(), batch.shape),
            &self.device,
        );
        let y = Tensor::<2>::from_data(
            TensorData::new(batch.targets.clone(), [n, classes]),
            &self.device,
        );
        let mask = batch.negatives.as_ref().map(|m| {
            Tensor::<2>::from_data(TensorData::new(m.clone(), [n, classes]), &self.device)
        });
        let logits = net.forward(x);
        let loss = self.loss_of(logits, y, mask);
        let value = values(loss.clone().without_autodiff())[0];
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let net = self.optim.step(lr, net, grads);
        net.sync_running_stats();
        self.net = Some(net);
        self.step += 1;
        value
    }

    fn loss_of(&self, logits: Tensor<2>, y: Tensor<2>, negatives: Option<Tensor<2>>) -> Tensor<1> {
        match &self.loss {
            Loss::Softmax => (log_softmax(logits, 1) * y).sum_dim(1).mean().neg(),
            Loss::WeightedBce { fn_weight } => {
                let c = fn_weight.len();
                let w = Tensor::<2>::from_data(
                    TensorData::new(fn_weight.clone(), [1, c]),
                    &self.device,
                );
                let pos = log_sigmoid(logits.clone()) * y.clone() * w;
                let mut neg = log_sigmoid(logits.neg()) * (y.neg() + 1.0);
                if let Some(m) = negatives {
                    neg = neg * m;
                }
                (pos + neg).mean().neg()
            }
        }
    }
}

/// Probabilities from a net in inference mode.
pub fn predict(net: &Net, loss: &Loss, images: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let device = net.head.weight.device().without_autodiff();
    let x = Tensor::<4>::from_data(TensorData::new(images.to_vec(), shape), &device);
    let logits = net.forward(x);
    match loss {
        Loss::Softmax => values(softmax(logits, 1)),
        Loss::WeightedBce { .. } => values(sigmoid(logits)),
    }
}

/// Normalised CHW f32 for HWC u8 images of `size`×`size`.
pub fn to_chw<I: AsRef<[u8]>>(
    images: &[I],
    size: usize,
    spec: &crate::preprocess::Spec,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(images.len() * 3 * size * size);
    for img in images {
        let img = img.as_ref();
        for c in 0..3 {
            for p in 0..size * size {
                out.push((img[p * 3 + c] as f32 / 255.0 - spec.mean[c]) / spec.std[c]);
            }
        }
    }
    out
}

/// Multi-label (sigmoid) probability rows for the images `idx` of `source`,
/// 64 at a time, decoded ahead on worker threads. An image that can no
/// longer be read (a file removed or corrupted since the run started) is
/// predicted as mid-grey and reported in the log.
pub fn predict_rows(
    net: &Net,
    source: &dyn ImageSource,
    idx: &[usize],
    spec: &crate::preprocess::Spec,
) -> Vec<Vec<f32>> {
    let size = spec.width as usize;
    let loss = Loss::WeightedBce { fn_weight: vec![] };
    let classes = net.classes();
    let chunks: Vec<&[usize]> = idx.chunks(64).collect();
    let mut out = Vec::with_capacity(idx.len());
    let ok: Result<(), ()> = prefetch(
        chunks.len(),
        workers(),
        2,
        |j| {
            let imgs: Vec<Cow<[u8]>> = chunks[j]
                .iter()
                .map(|&i| {
                    source.load(i).unwrap_or_else(|why| {
                        log::warn!("validation image unreadable, predicted as grey: {why}");
                        Cow::Owned(vec![128; size * size * 3])
                    })
                })
                .collect();
            to_chw(&imgs, size, spec)
        },
        |j, x| {
            let p = predict(net, &loss, &x, [chunks[j].len(), 3, size, size]);
            out.extend(p.chunks(classes).map(<[f32]>::to_vec));
            Ok(())
        },
    );
    ok.expect("consume never fails");
    out
}

/// A multi-label training run over images by sample index.
pub struct Plan<'a> {
    pub images: &'a dyn ImageSource,
    pub labels: &'a [Vec<f32>],
    pub train: &'a [usize],
    pub spec: &'a crate::preprocess::Spec,
    pub augment: super::augment::Augment,
    /// Positives of every class in every batch (see [`super::sampler`]).
    pub resample: bool,
    /// Per class, the fraction of negatives that count in the loss
    /// ([`super::sampler::negative_keep`]); empty: all.
    pub negative_keep: Vec<f32>,
    pub batch_size: usize,
    pub epochs: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Plan<'_> {
    /// Trains epochs `first..=epochs`. `on_step(trainer, mean loss so far)`
    /// after each step; `on_epoch(epoch, trainer, mean loss, images/s)`
    /// after each epoch (validation, checkpoints); its error stops the run.
    /// Batches are decoded and augmented ahead on worker threads
    /// ([`prefetch`]); an image that can no longer be read is left out of
    /// its batch and reported in the log.
    pub fn run<E>(
        &self,
        trainer: &mut Trainer,
        first: usize,
        mut on_step: impl FnMut(&Trainer, f32),
        mut on_epoch: impl FnMut(usize, &Trainer, f32, f64) -> Result<(), E>,
    ) -> Result<(), E> {
        let size = self.spec.width as usize;
        let mut sampler =
            super::sampler::Sampler::new(self.train, self.labels, self.batch_size, self.resample);
        let mut rng = Rng::new(self.seed ^ first as u64);
        let per_epoch = sampler.batches_per_epoch(self.train.len());
        let total = per_epoch * self.epochs;
        let warmup = per_epoch / 2 + 1;
        for epoch in first..=self.epochs {
            let start = std::time::Instant::now();
            let (mut loss_sum, mut seen) = (0.0f32, 0usize);
            let batches = sampler.epoch(self.train, &mut rng);
            let make = |b: usize| {
                // Augmentation draws from its own generator per batch, so a
                // batch is the same whichever worker makes it.
                let mut rng =
                    Rng::new(self.seed ^ ((epoch as u64) << 40) ^ ((b as u64) << 8) ^ 0x5eed);
                let mut kept = Vec::with_capacity(batches[b].len());
                let mut imgs = Vec::with_capacity(batches[b].len());
                for &i in &batches[b] {
                    match self.images.load(i) {
                        Ok(img) => {
                            kept.push(i);
                            imgs.push(img);
                        }
                        Err(why) => log::warn!("training image left out: {why}"),
                    }
                }
                let mut x = to_chw(&imgs, size, self.spec);
                for img in x.chunks_mut(3 * size * size) {
                    self.augment.apply(img, 3, size, size, &mut rng);
                }
                let targets: Vec<f32> = kept
                    .iter()
                    .flat_map(|&i| self.labels[i].iter().copied())
                    .collect();
                let negatives = (!self.negative_keep.is_empty()).then(|| {
                    let classes = self.negative_keep.len();
                    targets
                        .iter()
                        .enumerate()
                        .map(|(k, &y)| {
                            let keep = y >= 0.5 || rng.uniform() < self.negative_keep[k % classes];
                            f32::from(u8::from(keep))
                        })
                        .collect()
                });
                Batch {
                    images: x,
                    shape: [kept.len(), 3, size, size],
                    targets,
                    negatives,
                }
            };
            prefetch(batches.len(), workers(), 2, make, |_, batch| {
                let n = batch.shape[0];
                if n == 0 {
                    return Ok(());
                }
                let loss = trainer.step(&batch, lr_at(trainer.step, total, self.lr, warmup));
                loss_sum += loss * n as f32;
                seen += n;
                on_step(trainer, loss_sum / seen as f32);
                Ok::<(), E>(())
            })?;
            let ips = seen as f64 / start.elapsed().as_secs_f64();
            on_epoch(epoch, trainer, loss_sum / seen.max(1) as f32, ips)?;
        }
        Ok(())
    }

    /// Optimiser steps in the whole run (for progress bars).
    pub fn total_steps(&self) -> usize {
        super::sampler::Sampler::new(self.train, self.labels, self.batch_size, self.resample)
            .batches_per_epoch(self.train.len())
            * self.epochs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((lr_at(0, 100, 1.0, 10) - 0.1).abs() < 1e-9);
        assert!((lr_at(9, 100, 1.0, 10) - 1.0).abs() < 1e-9);
        assert!((lr_at(10, 100, 1.0, 10) - 1.0).abs() < 1e-9);
        assert!(lr_at(55, 100, 1.0, 10) < 0.6);
        assert!((lr_at(100, 100, 1.0, 10) - 0.01).abs() < 1e-9);
    }
}

/// One line of the training log.
#[derive(Debug, serde::Serialize)]
pub struct EpochLog {
    pub backbone: String,
    pub epoch: usize,
    pub loss: f32,
    pub val_macro_f2: f64,
    pub val_f2: Vec<f64>,
    pub images_per_s: f64,
}
