//! The quick trainer: frozen features from a bundle the box has, a trained head, `tune`, a fused bundle.
