//! Typed variants of a bundle's graph for strongly typed TensorRT
//! (11.x, TensorRT-RTX), which takes precision from the model itself.
//!
//! [`to_fp16`]: every float weight and every intermediate tensor in half
//! precision, the I/O as the bundle contract says (f32 `images` in, f32
//! `probs` out) through a Cast at each end. Deterministic, so the engine
//! cache key (the sha256 of the derived graph) is stable.

use prost::Message;
use tract_onnx::pb::{
    self, attribute_proto::AttributeType, tensor_proto::DataType, type_proto::Value as TypeValue,
};

const FLOAT: i32 = DataType::Float as i32;
const FLOAT16: i32 = DataType::Float16 as i32;

fn tensor_to_fp16(t: &mut pb::TensorProto) -> Result<(), String> {
    if t.data_type != FLOAT {
        return Ok(());
    }
    let values = super::onnx::f32_values(t)?;
    t.float_data.clear();
    t.raw_data = values
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    t.data_type = FLOAT16;
    Ok(())
}

fn retype(v: &mut pb::ValueInfoProto) {
    if let Some(TypeValue::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        if t.elem_type == FLOAT {
            t.elem_type = FLOAT16;
        }
    }
}

fn cast(input: &str, output: &str, to: i32) -> pb::NodeProto {
    pb::NodeProto {
        name: format!("{output}_cast"),
        op_type: "Cast".into(),
        input: vec![input.into()],
        output: vec![output.into()],
        attribute: vec![pb::AttributeProto {
            name: "to".into(),
            r#type: AttributeType::Int as i32,
            i: to as i64,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The FP16 variant of an FP32 ONNX model (see the module doc).
pub fn to_fp16(onnx: &[u8]) -> Result<Vec<u8>, String> {
    let mut model = pb::ModelProto::decode(onnx).map_err(|e| format!("not an ONNX model: {e}"))?;
    let g = model.graph.as_mut().ok_or("the model has no graph")?;
    for t in &mut g.initializer {
        tensor_to_fp16(t)?;
    }
    for n in &mut g.node {
        for a in &mut n.attribute {
            if let Some(t) = a.t.as_mut() {
                tensor_to_fp16(t)?;
            }
            if n.op_type == "Cast" && a.name == "to" && a.i == FLOAT as i64 {
                a.i = FLOAT16 as i64;
            }
        }
    }
    for v in &mut g.value_info {
        retype(v);
    }
    let initialised: std::collections::HashSet<String> =
        g.initializer.iter().map(|t| t.name.clone()).collect();
    let mut head = vec![];
    for input in g.input.iter().filter(|i| !initialised.contains(&i.name)) {
        let inner = format!("{}_fp16", input.name);
        for n in &mut g.node {
            for x in &mut n.input {
                if *x == input.name {
                    x.clone_from(&inner);
                }
            }
        }
        head.push(cast(&input.name, &inner, FLOAT16));
    }
    let mut tail = vec![];
    for output in &g.output {
        let inner = format!("{}_fp16", output.name);
        for n in &mut g.node {
            for x in &mut n.output {
                if *x == output.name {
                    x.clone_from(&inner);
                }
            }
            for x in &mut n.input {
                if *x == output.name {
                    x.clone_from(&inner);
                }
            }
        }
        tail.push(cast(&inner, &output.name, FLOAT));
    }
    head.append(&mut g.node);
    head.append(&mut tail);
    g.node = head;
    model.doc_string =
        "FP16 variant (stylecam): half-precision weights and compute, f32 I/O".into();
    Ok(model.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numerics (onnxruntime runs the FP16 graph; tract does not take every
    /// FP16 op) are checked in tests/tensorrt.rs.
    #[test]
    fn the_fp16_demo_graph_is_half_precision_inside_with_f32_io() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-bundle");
        let fp32 = std::fs::read(dir.join("model.onnx")).unwrap();
        let fp16 = to_fp16(&fp32).unwrap();
        assert_eq!(to_fp16(&fp32).unwrap(), fp16, "deterministic");
        let m = pb::ModelProto::decode(fp16.as_slice()).unwrap();
        let g = m.graph.unwrap();
        assert!(!g.initializer.is_empty());
        assert!(g
            .initializer
            .iter()
            .all(|t| t.data_type == FLOAT16 && t.float_data.is_empty()));
        let (first, last) = (g.node.first().unwrap(), g.node.last().unwrap());
        assert_eq!(
            (first.op_type.as_str(), first.input[0].as_str()),
            ("Cast", "images")
        );
        assert_eq!(
            (last.op_type.as_str(), last.output[0].as_str()),
            ("Cast", "probs")
        );
        assert_eq!(first.attribute[0].i, FLOAT16 as i64);
        assert_eq!(last.attribute[0].i, FLOAT as i64);
        // Nothing else reads the f32 input or writes the f32 output.
        assert!(g.node[1..]
            .iter()
            .all(|n| !n.input.contains(&"images".to_string())));
        assert!(g.node[..g.node.len() - 1]
            .iter()
            .all(|n| !n.output.contains(&"probs".to_string())));
        let io = crate::bundle::onnx::io_shapes(&fp16).unwrap();
        assert_eq!(
            (io.input_name.as_str(), io.output_name.as_str()),
            ("images", "probs")
        );
        // A weight survives the trip through half precision.
        let w32 = pb::ModelProto::decode(fp32.as_slice())
            .unwrap()
            .graph
            .unwrap()
            .initializer[0]
            .clone();
        let v32 = crate::bundle::onnx::f32_values(&w32).unwrap();
        let v16: Vec<f32> = g.initializer[0]
            .raw_data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        assert_eq!(v32.len(), v16.len());
        for (a, b) in v32.iter().zip(&v16) {
            assert!((a - b).abs() <= a.abs() * 1e-3 + 1e-7, "{a} vs {b}");
        }
    }
}
