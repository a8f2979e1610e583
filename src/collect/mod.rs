//! Teaching the box the store's own styles (DESIGN.md "Teaching it a
//! store's styles"): collecting person crops on the box (off by default;
//! the pixels the classifier saw, masks painted, bounded and expiring),
//! the label store the page writes, and the quick trainer (frozen
//! features, a trained head, `tune`, one fused bundle) with its background
//! job.

pub mod job;
pub mod labels;
pub mod quick;
pub mod sidecar;

pub use sidecar::{Sidecar, SidecarBundle};
