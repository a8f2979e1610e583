//! A lock-free latency histogram: buckets of doubling width from 1 µs to
//! ~67 s (the last bucket takes everything slower), updated with relaxed
//! atomics; quantiles are read as the upper edge of the bucket they fall in
//! (at most 2× the true value, never below it).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Bucket `i` holds values below 2^i µs (bucket 0: below 1 µs).
const BUCKETS: usize = 27;

#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
}

/// Quantiles of a histogram, in milliseconds (bucket upper edges).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Quantiles {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

fn bucket(d: Duration) -> usize {
    let us = d.as_micros() as u64;
    if us == 0 {
        0
    } else {
        ((64 - us.leading_zeros()) as usize).min(BUCKETS - 1)
    }
}

/// The upper edge of bucket `i`, in ms.
fn edge_ms(i: usize) -> f64 {
    (1u64 << i) as f64 / 1000.0
}

impl Histogram {
    /// Adds `n` values of `each`.
    pub fn record(&self, each: Duration, n: u64) {
        self.counts[bucket(each)].fetch_add(n, Relaxed);
    }

    pub fn quantiles(&self) -> Quantiles {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let at = |q: f64| -> f64 {
            if total == 0 {
                return 0.0;
            }
            let rank = (q * total as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return edge_ms(i);
                }
            }
            edge_ms(BUCKETS - 1)
        };
        Quantiles {
            count: total,
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_bound_the_values_within_a_factor_of_two() {
        let h = Histogram::default();
        // 90 values of 3 ms, 9 of 40 ms, 1 of 700 ms.
        h.record(Duration::from_millis(3), 90);
        h.record(Duration::from_millis(40), 9);
        h.record(Duration::from_millis(700), 1);
        let q = h.quantiles();
        assert_eq!(q.count, 100);
        assert!(q.p50 >= 3.0 && q.p50 < 6.0, "{q:?}");
        assert!(q.p95 >= 40.0 && q.p95 < 80.0, "{q:?}");
        assert!(q.p99 >= 40.0 && q.p99 < 80.0, "{q:?}");
        h.record(Duration::from_millis(700), 10);
        assert!(h.quantiles().p99 >= 700.0);
        assert_eq!(Histogram::default().quantiles(), Quantiles::default());
    }
}
