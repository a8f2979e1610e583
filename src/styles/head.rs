//! A linear head trained on frozen features with the paper's loss choices.
