//! Teaching the box the store's own styles (DESIGN.md "Teaching it a
//! store's styles"): collecting person crops on the box (off by default;
//! the pixels the classifier saw, masks painted, bounded and expiring),
//! the label store the page writes, and the quick trainer (frozen
//! features, a trained head, `tune`, one fused bundle) with its background
//! job.

pub mod blur;
pub mod job;
pub mod labels;
pub mod picker;
pub mod quick;
pub mod sidecar;
pub mod store;
pub mod writer;

pub use picker::{Picker, ProbsTx};
pub use sidecar::{Sidecar, SidecarBundle};
pub use writer::{Model, Session};
