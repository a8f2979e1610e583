//! stylecam: garment style tags from store cameras.
//!
//! capture → preprocess → infer → styles → smooth → publish, each a module
//! with its contract in its `mod.rs`; [`daemon`] wires them. See
//! `DESIGN.md` (shared) and `README.md`.

pub mod bundle;
pub mod capture;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod demo_model;
pub mod detect;
#[doc(hidden)]
pub mod fuzzing;
pub mod infer;
pub mod preprocess;
pub mod publish;
pub mod slot;
pub mod smooth;
pub mod styles;
pub mod telemetry;
#[cfg(feature = "train")]
pub mod train;

mod dl;
pub mod rng;
mod short_float;
