//! Teaching the box the store's own styles: the label store the page
//! writes, and the quick trainer (frozen features, a trained head, `tune`,
//! one fused ONNX).

pub mod labels;
pub mod quick;
