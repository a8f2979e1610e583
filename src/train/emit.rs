//! The ONNX emitter every trainable block writes through: a graph under a
//! name prefix, so several backbones can share one graph. A leaf of the
//! trainer (layers and export both use it).

use crate::bundle::onnx::{Attr, GraphBuilder};

/// Names nodes and constants under a prefix so that several backbones can
/// share one graph.
pub struct Emitter<'a> {
    pub g: &'a mut GraphBuilder,
    prefix: String,
    next: usize,
}

impl<'a> Emitter<'a> {
    pub fn new(g: &'a mut GraphBuilder, prefix: &str) -> Self {
        Self {
            g,
            prefix: prefix.to_string(),
            next: 0,
        }
    }

    pub fn constant(&mut self, dims: &[i64], values: Vec<f32>) -> String {
        self.next += 1;
        let name = format!("{}c{}", self.prefix, self.next);
        self.g.weight(&name, dims, values)
    }

    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.next += 1;
        let out = format!("{}{}{}", self.prefix, op.to_lowercase(), self.next);
        self.g.node(op, inputs, attrs, Some(&out))
    }
}
