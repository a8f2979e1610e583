//! Where training images come from, and the bounded prefetch that decodes
//! and augments the next batches on worker threads while the current one
//! trains.
//!
//! A labelled folder is either decoded once into memory (HWC u8 at the
//! model's input size) or, when that would not fit the configured budget,
//! decoded from its files every time an image is used ([`ImageFiles`]).
//! Either way batches are built by [`prefetch`]: at most `workers × depth`
//! batches exist ahead of the one being trained, so memory stays bounded
//! however large the folder is.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use crate::preprocess::{ResizeMode, Spec};

/// Images by sample index, as HWC u8 at the model's input size.
pub trait ImageSource: Sync {
    fn load(&self, i: usize) -> Result<Cow<'_, [u8]>, String>;
}

/// Images already decoded and resized.
impl ImageSource for Vec<Vec<u8>> {
    fn load(&self, i: usize) -> Result<Cow<'_, [u8]>, String> {
        Ok(Cow::Borrowed(&self[i]))
    }
}

/// Image files decoded (and resized: shorter side, centre crop) on every
/// load.
pub struct ImageFiles {
    pub paths: Vec<PathBuf>,
    pub size: usize,
}

impl ImageSource for ImageFiles {
    fn load(&self, i: usize) -> Result<Cow<'_, [u8]>, String> {
        decode(&self.paths[i], self.size).map(Cow::Owned)
    }
}

/// Decodes an image file and resizes it to `size`×`size` HWC u8 (shorter
/// side to `size`, centre crop: the daemon's preprocessing).
pub fn decode(path: &Path, size: usize) -> Result<Vec<u8>, String> {
    let spec = Spec {
        width: size as u32,
        height: size as u32,
        resize: ResizeMode::ShorterSideCrop,
        mean: [0.0; 3],
        std: [1.0; 3],
    };
    let frame = crate::capture::files::image_frame(path, "train")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let chw = crate::preprocess::preprocess(&frame, &spec)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let n = size * size;
    let mut hwc = vec![0u8; n * 3];
    for c in 0..3 {
        for p in 0..n {
            hwc[p * 3 + c] = (chw[c * n + p] * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(hwc)
}

/// Decoder threads for [`prefetch`]: one per core.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs `make(j)` for jobs `0..jobs` on `workers` threads and hands the
/// results to `consume` in job order, with at most `depth` finished results
/// waiting per worker (bounded memory). Worker `w` makes jobs `w, w +
/// workers, …`, so results arrive in order without reordering. An error
/// from `consume` stops the workers and is returned.
pub fn prefetch<T: Send, E>(
    jobs: usize,
    workers: usize,
    depth: usize,
    make: impl Fn(usize) -> T + Sync,
    mut consume: impl FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E> {
    let workers = workers.clamp(1, jobs.max(1));
    std::thread::scope(|s| {
        let make = &make;
        let receivers: Vec<_> = (0..workers)
            .map(|w| {
                let (tx, rx) = sync_channel(depth.max(1));
                s.spawn(move || {
                    for j in (w..jobs).step_by(workers) {
                        if tx.send(make(j)).is_err() {
                            return; // the consumer stopped
                        }
                    }
                });
                rx
            })
            .collect();
        for j in 0..jobs {
            let item = receivers[j % workers]
                .recv()
                .expect("a prefetch worker panicked");
            consume(j, item)?;
        }
        Ok(())
    })
}

/// Whether a decoded copy of `n` images at `size` fits `budget_mib`.
pub fn fits_in_memory(n: usize, size: usize, budget_mib: usize) -> bool {
    (n as u64) * (size * size * 3) as u64 <= budget_mib as u64 * (1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn prefetch_keeps_order_and_bounds_work_ahead() {
        let made = AtomicUsize::new(0);
        let mut seen = Vec::new();
        let r: Result<(), ()> = prefetch(
            50,
            3,
            2,
            |j| {
                made.fetch_add(1, Ordering::SeqCst);
                j * 10
            },
            |j, v| {
                // Made so far ≤ consumed + 3 workers × (2 queued + 1 in hand).
                assert!(made.load(Ordering::SeqCst) <= j + 1 + 9);
                seen.push(v);
                Ok(())
            },
        );
        assert!(r.is_ok());
        assert_eq!(seen, (0..50).map(|j| j * 10).collect::<Vec<_>>());
    }

    #[test]
    fn prefetch_stops_at_the_first_error() {
        let made = AtomicUsize::new(0);
        let r = prefetch(
            1000,
            2,
            1,
            |j| {
                made.fetch_add(1, Ordering::SeqCst);
                j
            },
            |j, _| if j == 5 { Err(j) } else { Ok(()) },
        );
        assert_eq!(r, Err(5));
        assert!(made.load(Ordering::SeqCst) < 20, "workers stopped early");
    }

    #[test]
    fn memory_budget() {
        assert!(fits_in_memory(1000, 224, 1024));
        assert!(!fits_in_memory(55_000, 224, 4096)); // the JD set: ~8 GiB
    }
}
