//! Cutting a bundle's graph at its pooled features and fusing a new head onto it.
//!
//! The cut is the value that feeds the final classifier: the output of a
//! `Flatten` / `Reshape` / `Squeeze` (or a `GlobalAveragePool` straight
//! into it) that is the data input of a `MatMul` or `Gemm` whose weight is
//! a 2-D initializer (Identity nodes in between are looked through, so a
//! bundle this module fused can be cut again). [`features_graph`] keeps the nodes that value needs
//! and names it `features [N, D]`; [`fused_graph`] adds
//! `MatMul(W [D,C]) → Add(b) → Sigmoid → probs [N, C]`, the bundle
//! contract's output.

use super::onnx::f32_values;
use prost::Message;
use std::collections::{HashMap, HashSet};
use tract_onnx::pb::{self, tensor_shape_proto::dimension::Value as Dim};

/// Where the pooled features are in a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    /// The value holding the features.
    pub value: String,
    /// Feature count.
    pub dim: usize,
    /// The classifier's weight `[D, C]` (a Gemm's `transB` undone) and bias.
    pub weight: Vec<f32>,
    pub classes: usize,
    pub bias: Vec<f32>,
}

/// A model that [`find_cut`] cannot cut, with the fix.
pub fn no_cut(what: &str) -> String {
    format!("{what}: its model has no pooled-feature layer before a MatMul/Gemm head; use an EfficientNet-Lite0 ImageNet bundle: `stylecam bench imagenet-bundle --out DIR` (needs the train feature) — set teach.features")
}

fn decode(bytes: &[u8]) -> Result<pb::ModelProto, String> {
    pb::ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))
}

fn attr_i(n: &pb::NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// Through Identity nodes (a fused bundle names its features with one) to
/// the value that holds the features.
fn source<'a>(producer: &HashMap<&'a str, &'a pb::NodeProto>, mut v: &'a str) -> &'a str {
    while let Some(n) = producer.get(v).filter(|n| n.op_type == "Identity") {
        v = n.input[0].as_str();
    }
    v
}

/// Finds the pooled features and the classifier behind them. `what` names
/// the bundle in the error.
pub fn find_cut(bytes: &[u8], what: &str) -> Result<Cut, String> {
    let model = decode(bytes).map_err(|e| format!("{what}: {e}"))?;
    let g = model.graph.as_ref().ok_or_else(|| no_cut(what))?;
    let inits: HashMap<&str, &pb::TensorProto> =
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let producer: HashMap<&str, &pb::NodeProto> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let pooled = |v: &str| match producer.get(v) {
        Some(n) if matches!(n.op_type.as_str(), "Flatten" | "Reshape" | "Squeeze") => true,
        Some(n) => n.op_type == "GlobalAveragePool",
        None => false,
    };
    for n in &g.node {
        let op = n.op_type.as_str();
        if !(op == "MatMul" || op == "Gemm") || n.input.len() < 2 {
            continue;
        }
        let (data, w) = (source(&producer, &n.input[0]), n.input[1].as_str());
        let Some(wt) = inits.get(w) else { continue };
        if wt.dims.len() != 2 || !pooled(data) {
            continue;
        }
        let trans_b = op == "Gemm" && attr_i(n, "transB") == Some(1);
        if op == "Gemm" && attr_i(n, "transA") == Some(1) {
            continue;
        }
        let values = f32_values(wt).map_err(|e| format!("{what}: {e}"))?;
        let (r, c) = (wt.dims[0] as usize, wt.dims[1] as usize);
        let (dim, classes, weight) = if trans_b {
            let mut t = vec![0.0; r * c];
            for i in 0..r {
                for j in 0..c {
                    t[j * r + i] = values[i * c + j];
                }
            }
            (c, r, t)
        } else {
            (r, c, values)
        };
        let bias = if op == "Gemm" && n.input.len() > 2 {
            let alpha = n.attribute.iter().find(|a| a.name == "alpha").map(|a| a.f);
            let beta = n.attribute.iter().find(|a| a.name == "beta").map(|a| a.f);
            if alpha.is_some_and(|a| a != 1.0) || beta.is_some_and(|b| b != 1.0) {
                continue;
            }
            inits
                .get(n.input[2].as_str())
                .map(|t| f32_values(t))
                .transpose()
                .map_err(|e| format!("{what}: {e}"))?
                .unwrap_or_default()
        } else {
            // MatMul followed by Add(initializer).
            g.node
                .iter()
                .find(|a| a.op_type == "Add" && a.input.iter().any(|i| i == &n.output[0]))
                .and_then(|a| a.input.iter().find_map(|i| inits.get(i.as_str())))
                .map(|t| f32_values(t))
                .transpose()
                .map_err(|e| format!("{what}: {e}"))?
                .unwrap_or_default()
        };
        let bias = if bias.len() == classes {
            bias
        } else {
            vec![0.0; classes]
        };
        return Ok(Cut {
            value: data.to_string(),
            dim,
            weight,
            classes,
            bias,
        });
    }
    Err(no_cut(what))
}

fn dims(v: &[Option<i64>]) -> pb::TypeProto {
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: pb::tensor_proto::DataType::Float as i32,
            shape: Some(pb::TensorShapeProto {
                dim: v
                    .iter()
                    .map(|d| pb::tensor_shape_proto::Dimension {
                        value: Some(match d {
                            Some(v) => Dim::DimValue(*v),
                            None => Dim::DimParam("N".into()),
                        }),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    }
}

/// The model's nodes up to `cut.value` (and the initializers and value
/// infos they use), its output a copy of that value named `out`.
fn truncated(bytes: &[u8], cut: &Cut, out: &str) -> Result<pb::ModelProto, String> {
    let mut model = decode(bytes)?;
    let g = model.graph.as_mut().ok_or("ONNX model has no graph")?;
    let producer: HashMap<String, usize> = g
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.clone(), i)))
        .collect();
    let mut keep = HashSet::new();
    let mut todo = vec![cut.value.clone()];
    while let Some(v) = todo.pop() {
        if let Some(&i) = producer.get(&v) {
            if keep.insert(i) {
                todo.extend(g.node[i].input.iter().filter(|s| !s.is_empty()).cloned());
            }
        }
    }
    let nodes: Vec<pb::NodeProto> = std::mem::take(&mut g.node)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, n)| n)
        .collect();
    let used: HashSet<&str> = nodes
        .iter()
        .flat_map(|n| n.input.iter().chain(&n.output))
        .map(String::as_str)
        .collect();
    g.initializer.retain(|t| used.contains(t.name.as_str()));
    g.value_info.retain(|v| used.contains(v.name.as_str()));
    g.input
        .retain(|v| used.contains(v.name.as_str()) || v.name == "images");
    let used_owned: HashSet<String> = used.iter().map(|s| s.to_string()).collect();
    g.node = nodes;
    g.output = vec![];
    if used_owned.contains(out) || g.input.iter().any(|i| i.name == out) {
        return Err(format!("the model already has a value named {out:?}"));
    }
    g.node.push(pb::NodeProto {
        name: format!("stylecam_{out}"),
        op_type: "Identity".into(),
        input: vec![cut.value.clone()],
        output: vec![out.into()],
        ..Default::default()
    });
    Ok(model)
}

/// The features graph: input unchanged, output `features [N, D]`.
pub fn features_graph(bytes: &[u8], cut: &Cut) -> Result<Vec<u8>, String> {
    let mut model = truncated(bytes, cut, "features")?;
    let g = model.graph.as_mut().expect("checked");
    g.output.push(pb::ValueInfoProto {
        name: "features".into(),
        r#type: Some(dims(&[None, Some(cut.dim as i64)])),
        ..Default::default()
    });
    Ok(model.encode_to_vec())
}

/// The fused graph: the features then `sigmoid(features·W + b)` as
/// `probs [N, C]`; `weight` is `[dim, classes]` row-major.
pub fn fused_graph(
    bytes: &[u8],
    cut: &Cut,
    weight: &[f32],
    bias: &[f32],
) -> Result<Vec<u8>, String> {
    let classes = bias.len();
    if weight.len() != cut.dim * classes || classes == 0 {
        return Err(format!(
            "head weight of {} values for {} features × {classes} classes",
            weight.len(),
            cut.dim
        ));
    }
    let mut model = truncated(bytes, cut, "stylecam_features")?;
    let g = model.graph.as_mut().expect("checked");
    let tensor = |name: &str, d: Vec<i64>, v: &[f32]| pb::TensorProto {
        name: name.into(),
        dims: d,
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: v.to_vec(),
        ..Default::default()
    };
    g.initializer.push(tensor(
        "stylecam_head_w",
        vec![cut.dim as i64, classes as i64],
        weight,
    ));
    g.initializer
        .push(tensor("stylecam_head_b", vec![classes as i64], bias));
    let node = |op: &str, input: &[&str], output: &str| pb::NodeProto {
        name: format!("{output}_node"),
        op_type: op.into(),
        input: input.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    };
    g.node.push(node(
        "MatMul",
        &["stylecam_features", "stylecam_head_w"],
        "stylecam_logits_raw",
    ));
    g.node.push(node(
        "Add",
        &["stylecam_logits_raw", "stylecam_head_b"],
        "stylecam_logits",
    ));
    g.node.push(node("Sigmoid", &["stylecam_logits"], "probs"));
    g.output.push(pb::ValueInfoProto {
        name: "probs".into(),
        r#type: Some(dims(&[None, Some(classes as i64)])),
        ..Default::default()
    });
    Ok(model.encode_to_vec())
}
