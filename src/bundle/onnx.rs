//! Reading and writing ONNX with the prost types tract exposes
//! (`tract_onnx::pb`): shape inspection for bundle checks, and a small
//! graph builder for models our own code produces.

use prost::Message;
use tract_onnx::pb::{
    self, attribute_proto::AttributeType, tensor_proto::DataType,
    tensor_shape_proto::dimension::Value as Dim, type_proto::Value as TypeValue,
};

/// Names and shapes (`None` = symbolic) of a model's first input and output.
#[derive(Debug, Clone, PartialEq)]
pub struct IoShapes {
    pub input_name: String,
    pub input: Vec<Option<i64>>,
    pub output_name: String,
    pub output: Vec<Option<i64>>,
}

pub fn fmt_shape(s: &[Option<i64>]) -> String {
    let d: Vec<String> = s
        .iter()
        .map(|d| d.map_or("N".into(), |v| v.to_string()))
        .collect();
    format!("[{}]", d.join(","))
}

fn value_shape(v: &pb::ValueInfoProto) -> Vec<Option<i64>> {
    let Some(TypeValue::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return vec![];
    };
    t.shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(Dim::DimValue(v)) if v > 0 => Some(v),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes a model and reports its single real input and output.
pub fn io_shapes(bytes: &[u8]) -> Result<IoShapes, String> {
    let model = pb::ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))?;
    let graph = model.graph.ok_or("ONNX model has no graph")?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    if inputs.len() != 1 || graph.output.len() != 1 {
        return Err(format!(
            "the model must have one input and one output, it has {} and {}",
            inputs.len(),
            graph.output.len()
        ));
    }
    Ok(IoShapes {
        input_name: inputs[0].name.clone(),
        input: value_shape(inputs[0]),
        output_name: graph.output[0].name.clone(),
        output: value_shape(&graph.output[0]),
    })
}

/// The values of an f32 tensor, held in `float_data` or `raw_data`.
pub fn f32_values(t: &pb::TensorProto) -> Result<Vec<f32>, String> {
    if !t.float_data.is_empty() {
        Ok(t.float_data.clone())
    } else if t.data_location == Some(1) {
        Err(format!(
            "tensor {} is stored outside the model file; give a self-contained ONNX",
            t.name
        ))
    } else {
        Ok(t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

/// Builds an ONNX graph node by node.
pub struct GraphBuilder {
    graph: pb::GraphProto,
    next: usize,
}

fn tensor_type(dims: &[Option<i64>]) -> pb::TypeProto {
    pb::TypeProto {
        value: Some(TypeValue::TensorType(pb::type_proto::Tensor {
            elem_type: DataType::Float as i32,
            shape: Some(pb::TensorShapeProto {
                dim: dims
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

/// An attribute for [`GraphBuilder::node`].
pub enum Attr {
    Ints(Vec<i64>),
    Int(i64),
    Float(f32),
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        Self {
            graph: pb::GraphProto {
                name: name.into(),
                ..Default::default()
            },
            next: 0,
        }
    }

    pub fn input(&mut self, name: &str, dims: &[Option<i64>]) -> String {
        self.graph.input.push(pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(tensor_type(dims)),
            ..Default::default()
        });
        name.into()
    }

    pub fn output(&mut self, name: &str, dims: &[Option<i64>]) {
        self.graph.output.push(pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(tensor_type(dims)),
            ..Default::default()
        });
    }

    /// A constant f32 tensor.
    pub fn weight(&mut self, name: &str, dims: &[i64], values: Vec<f32>) -> String {
        assert_eq!(
            dims.iter().product::<i64>() as usize,
            values.len(),
            "weight {name}"
        );
        self.graph.initializer.push(pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: DataType::Float as i32,
            float_data: values,
            ..Default::default()
        });
        name.into()
    }

    /// Adds a node; returns the name of its output (`out` if given).
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        out: Option<&str>,
    ) -> String {
        self.next += 1;
        let output = out
            .map(String::from)
            .unwrap_or_else(|| format!("{}_{}", op.to_lowercase(), self.next));
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = pb::AttributeProto {
                    name: name.into(),
                    ..Default::default()
                };
                match a {
                    Attr::Ints(v) => {
                        p.r#type = AttributeType::Ints as i32;
                        p.ints = v;
                    }
                    Attr::Int(v) => {
                        p.r#type = AttributeType::Int as i32;
                        p.i = v;
                    }
                    Attr::Float(v) => {
                        p.r#type = AttributeType::Float as i32;
                        p.f = v;
                    }
                }
                p
            })
            .collect();
        self.graph.node.push(pb::NodeProto {
            name: format!("n{}_{op}", self.next),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        output
    }

    /// Serialises the graph as an opset-13 model.
    pub fn finish(self, producer: &str) -> Vec<u8> {
        let model = pb::ModelProto {
            ir_version: 8,
            producer_name: producer.into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(self.graph),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}
