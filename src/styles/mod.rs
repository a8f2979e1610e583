//! Style decision core (the extreme-WJLD method, DESIGN.md "Style decision").
//!
//! Pure functions over probabilities and labels, no I/O except the label
//! file readers: the [`Taxonomy`] (data, from the bundle), the relation
//! matrix `R[a][b] = P(a|b)` ([`RelationMatrix`]), the decision of eq. 2 with
//! thresholds and 1..=5 cardinality ([`DecisionParams::decide`]), F2 metrics
//! ([`metrics`]) and the searches that fit the parameters ([`search::tune`]).

pub mod cascade;
pub mod decision;
pub mod head;
pub mod labels;
pub mod metrics;
pub mod relation;
pub mod search;
pub mod simulate;
pub mod taxonomy;

pub use decision::{Decision, DecisionParams};
pub use labels::{LabelTable, TableKind};
pub use relation::RelationMatrix;
pub use taxonomy::{Class, Taxonomy};
