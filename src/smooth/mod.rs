//! Per-camera temporal smoothing and change detection.
//!
//! [`Smoother`] averages recent frames' probabilities (median over a window,
//! or an exponential moving average); the decision runs on the smoothed
//! scores; [`Hysteresis`] then admits a tag only after `enter` consecutive
//! frames that decide it and drops it only after `leave` consecutive frames
//! without it. A tag that flickers for one frame makes no event: only a
//! change of the stable set does ([`Change`]). Pure state, no I/O.

use crate::config::{SmoothingConfig, SmoothingMethod};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub enum Method {
    Median { window: usize },
    Ema { alpha: f32 },
}

/// Smooths one camera's probability vectors over time.
#[derive(Debug, Clone)]
pub struct Smoother {
    method: Method,
    recent: VecDeque<Vec<f32>>,
    ema: Option<Vec<f32>>,
}

impl Smoother {
    pub fn new(method: Method) -> Self {
        Self {
            method,
            recent: VecDeque::new(),
            ema: None,
        }
    }

    pub fn from_config(c: &SmoothingConfig) -> Self {
        Self::new(match c.method {
            SmoothingMethod::Ema => Method::Ema { alpha: c.ema_alpha },
            SmoothingMethod::Median => Method::Median { window: c.window },
        })
    }

    /// Adds a frame's probabilities and returns the smoothed ones.
    pub fn push(&mut self, p: &[f32]) -> Vec<f32> {
        match self.method {
            Method::Median { window } => {
                if self.recent.len() == window {
                    self.recent.pop_front();
                }
                self.recent.push_back(p.to_vec());
                (0..p.len())
                    .map(|a| {
                        let mut col: Vec<f32> = self.recent.iter().map(|r| r[a]).collect();
                        col.sort_by(f32::total_cmp);
                        let m = col.len() / 2;
                        if col.len() % 2 == 1 {
                            col[m]
                        } else {
                            (col[m - 1] + col[m]) / 2.0
                        }
                    })
                    .collect()
            }
            Method::Ema { alpha } => {
                let next = match &self.ema {
                    None => p.to_vec(),
                    Some(prev) => prev
                        .iter()
                        .zip(p)
                        .map(|(o, n)| alpha * n + (1.0 - alpha) * o)
                        .collect(),
                };
                self.ema = Some(next.clone());
                next
            }
        }
    }
}

/// A change of a camera's stable tag set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The stable set after the change, ascending class indices.
    pub tags: Vec<usize>,
    pub added: Vec<usize>,
    pub removed: Vec<usize>,
}

/// Admits and retires tags with hysteresis.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    enter: u32,
    leave: u32,
    on: Vec<u32>,
    off: Vec<u32>,
    stable: Vec<bool>,
}

impl Hysteresis {
    pub fn new(classes: usize, enter: u32, leave: u32) -> Self {
        Self {
            enter: enter.max(1),
            leave: leave.max(1),
            on: vec![0; classes],
            off: vec![0; classes],
            stable: vec![false; classes],
        }
    }

    /// Starts from `tags` as the stable set (a person's first decision:
    /// later changes need `enter` / `leave` agreeing decisions in a row).
    pub fn seeded(classes: usize, enter: u32, leave: u32, tags: &[usize]) -> Self {
        let mut h = Self::new(classes, enter, leave);
        for &a in tags.iter().filter(|&&a| a < classes) {
            h.stable[a] = true;
            h.on[a] = h.enter;
        }
        h
    }

    /// The current stable set.
    pub fn tags(&self) -> Vec<usize> {
        (0..self.stable.len()).filter(|&a| self.stable[a]).collect()
    }

    /// Feeds one frame's decided labels; returns the change, if any.
    pub fn update(&mut self, labels: &[usize]) -> Option<Change> {
        let (mut added, mut removed) = (vec![], vec![]);
        for a in 0..self.stable.len() {
            if labels.contains(&a) {
                self.on[a] += 1;
                self.off[a] = 0;
                if !self.stable[a] && self.on[a] >= self.enter {
                    self.stable[a] = true;
                    added.push(a);
                }
            } else {
                self.off[a] += 1;
                self.on[a] = 0;
                if self.stable[a] && self.off[a] >= self.leave {
                    self.stable[a] = false;
                    removed.push(a);
                }
            }
        }
        (!added.is_empty() || !removed.is_empty()).then(|| Change {
            tags: self.tags(),
            added,
            removed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_ignores_a_single_outlier() {
        let mut s = Smoother::new(Method::Median { window: 3 });
        s.push(&[0.1]);
        s.push(&[0.1]);
        assert_eq!(s.push(&[0.9]), vec![0.1]);
        assert_eq!(s.push(&[0.9]), vec![0.9]);
    }

    #[test]
    fn ema_by_hand() {
        let mut s = Smoother::new(Method::Ema { alpha: 0.25 });
        assert_eq!(s.push(&[1.0]), vec![1.0]);
        assert_eq!(s.push(&[0.0]), vec![0.75]);
    }

    #[test]
    fn a_seeded_set_changes_only_on_agreeing_decisions() {
        let mut h = Hysteresis::seeded(3, 2, 2, &[1]);
        assert_eq!(h.tags(), vec![1]);
        assert_eq!(h.update(&[1, 2]), None, "one decision adds nothing");
        assert_eq!(h.update(&[1]), None, "and the count restarts");
        assert_eq!(h.update(&[]), None);
        let c = h.update(&[]).unwrap();
        assert_eq!((c.tags, c.added, c.removed), (vec![], vec![], vec![1]));
    }

    #[test]
    fn one_frame_flicker_makes_no_event() {
        let mut h = Hysteresis::new(3, 2, 2);
        assert_eq!(h.update(&[0]), None);
        let c = h.update(&[0]).unwrap();
        assert_eq!(
            (c.tags.clone(), c.added, c.removed),
            (vec![0], vec![0], vec![])
        );
        // Class 1 flickers in for one frame, class 0 out for one frame: nothing.
        assert_eq!(h.update(&[1]), None);
        assert_eq!(h.update(&[0]), None);
        // Class 0 gone for two frames while class 2 arrives for two.
        assert_eq!(h.update(&[2]), None);
        let c = h.update(&[2]).unwrap();
        assert_eq!((c.tags, c.added, c.removed), (vec![2], vec![2], vec![0]));
    }
}
