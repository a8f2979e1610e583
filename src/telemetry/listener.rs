//! The HTTP listener's counters: connections held now, and requests or
//! connections turned away, by reason (`/metrics`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct ListenerCounters {
    open: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl ListenerCounters {
    pub fn refused(&self, reason: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    pub fn set_open(&self, n: usize) {
        self.open.store(n as u64, Relaxed);
    }

    pub fn open(&self) -> u64 {
        self.open.load(Relaxed)
    }

    /// (reason, count) for every reason seen.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}
