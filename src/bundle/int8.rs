//! INT8 with explicit quantize/dequantize (Q/DQ) nodes, for strongly typed
//! TensorRT (11.x, TensorRT-RTX), which has no calibrators and takes INT8
//! only from the model.
//!
//! [`calibrate`] runs the FP32 graph (tract, on the CPU) over calibration
//! images already through our own preprocessing and records, for every
//! activation that feeds a Conv, Gemm or MatMul, a histogram of |x|; from it
//! each tensor's clipping range `amax` by one of two methods:
//!
//! - **percentile**: the smallest `amax` that covers the given percentile
//!   of |x| (99.99 keeps all but one value in 10 000);
//! - **entropy**: TensorRT's KL-divergence method (its
//!   `IInt8EntropyCalibrator2`): of the clipping points from 128 to 2048
//!   histogram bins, the one whose 128-level quantised distribution is
//!   closest to the clipped one (the spike of exact zeros a ReLU leaves in
//!   bin 0 counted as bin 1, as NVIDIA's pytorch-quantization does).
//!
//! The result is a [`Scales`] file in the calibration folder, keyed by the
//! FP32 graph's sha256. [`to_int8`] derives the Q/DQ graph from the FP32
//! graph and those scales: each quantised activation gets one per-tensor
//! symmetric `QuantizeLinear` → `DequantizeLinear` pair (zero point 0),
//! each Conv/Gemm/MatMul weight becomes an INT8 initializer with
//! per-channel symmetric scales (`max |w| / 127` per output channel) and a
//! `DequantizeLinear` on the output-channel axis; biases and everything
//! else stay FP32, as do the graph's input and output (the bundle
//! contract). The layout is the one TensorRT documents for explicit
//! quantisation and the one onnxruntime's `quantize_static` writes in its
//! QDQ format. Deterministic, so the engine cache key is stable.

use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use tract_onnx::pb::{self, attribute_proto::AttributeType, tensor_proto::DataType};
use tract_onnx::prelude::*;

const FLOAT: i32 = DataType::Float as i32;
const INT8: i32 = DataType::Int8 as i32;
/// Histogram bins over [0, max |x|] per tensor (TensorRT's count).
const BINS: usize = 2048;
/// Quantised levels on one side of zero (symmetric INT8).
const LEVELS: usize = 128;

/// How a tensor's clipping range is chosen from its histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "method")]
pub enum Method {
    /// The `amax` covering this percentile of |x| (e.g. 99.99).
    Percentile { percentile: f64 },
    /// TensorRT's minimum-KL-divergence threshold.
    Entropy,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::Percentile { percentile } => write!(f, "percentile {percentile}"),
            Method::Entropy => write!(f, "entropy"),
        }
    }
}

/// Per-tensor activation ranges for one FP32 graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scales {
    /// sha256 of the FP32 graph these were measured on.
    pub onnx_sha256: String,
    #[serde(flatten)]
    pub method: Method,
    /// Calibration images used.
    pub images: usize,
    /// Activation tensor → clipping range (scale = amax / 127).
    pub amax: BTreeMap<String, f32>,
}

impl Scales {
    /// The file the scales of the graph with this sha256 live in.
    pub fn file_name(onnx_sha256: &str) -> String {
        format!("int8-{}.json", &onnx_sha256[..16.min(onnx_sha256.len())])
    }

    /// Writes `dir/int8-<sha>.json` (atomically); returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(Self::file_name(&self.onnx_sha256));
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text + "\n")
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// The scales for the FP32 graph `fp32` in `dir` (the error: why there
    /// are none; `stylecam calibrate` makes them).
    pub fn for_graph(dir: &Path, fp32: &[u8]) -> Result<Self, String> {
        let sha = super::sha256_hex(fp32);
        let path = dir.join(Self::file_name(&sha));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "no INT8 scales for this graph (sha256 {}…) in {} (model.calibration)",
                    &sha[..16],
                    dir.display()
                ))
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let s: Scales = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a scales file: {e}", path.display()))?;
        if s.onnx_sha256 != sha {
            return Err(format!(
                "{} was measured on another graph (sha256 {}…, this one is {}…)",
                path.display(),
                &s.onnx_sha256[..16.min(s.onnx_sha256.len())],
                &sha[..16]
            ));
        }
        Ok(s)
    }
}

fn decode(onnx: &[u8]) -> Result<pb::ModelProto, String> {
    pb::ModelProto::decode(onnx).map_err(|e| format!("not an ONNX model: {e}"))
}

/// Ops whose inputs are quantised.
fn quantised_op(op: &str) -> bool {
    matches!(op, "Conv" | "Gemm" | "MatMul")
}

/// How many of a quantised op's first inputs may be activations: both of
/// a MatMul's, the data input of a Conv or Gemm (the other is its weight).
fn activation_inputs(op: &str) -> usize {
    if op == "MatMul" {
        2
    } else {
        1
    }
}

/// The activations [`to_int8`] quantises: input 0 of every Conv, Gemm and
/// MatMul (and input 1 of a MatMul of two activations), in graph order.
pub fn activations(onnx: &[u8]) -> Result<Vec<String>, String> {
    let model = decode(onnx)?;
    let g = model.graph.ok_or("the model has no graph")?;
    let constant: HashSet<&str> = g
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .chain(
            g.node
                .iter()
                .filter(|n| n.op_type == "Constant")
                .flat_map(|n| n.output.iter().map(String::as_str)),
        )
        .collect();
    let mut seen = HashSet::new();
    let mut out = vec![];
    for n in g.node.iter().filter(|n| quantised_op(&n.op_type)) {
        let take = activation_inputs(&n.op_type);
        for x in n.input.iter().take(take) {
            if !constant.contains(x.as_str()) && seen.insert(x.clone()) {
                out.push(x.clone());
            }
        }
    }
    Ok(out)
}

/// |x| histograms of the tensors being calibrated.
struct Histograms {
    max: Vec<f32>,
    bins: Vec<Vec<u64>>,
}

impl Histograms {
    fn add(&mut self, t: usize, values: &[f32]) {
        let max = self.max[t];
        if max <= 0.0 {
            return;
        }
        let h = &mut self.bins[t];
        let per = BINS as f32 / max;
        for v in values {
            let b = ((v.abs() * per) as usize).min(BINS - 1);
            h[b] += 1;
        }
    }
}

/// The clipping range of one histogram (`max`: its upper edge).
pub fn amax(hist: &[u64], max: f32, method: Method) -> f32 {
    let width = max / hist.len() as f32;
    let total: u64 = hist.iter().sum();
    if total == 0 || max <= 0.0 {
        return max.max(0.0);
    }
    match method {
        Method::Percentile { percentile } => {
            let want = (total as f64 * percentile / 100.0).ceil() as u64;
            let mut sum = 0;
            for (i, c) in hist.iter().enumerate() {
                sum += c;
                if sum >= want {
                    return (i + 1) as f32 * width;
                }
            }
            max
        }
        Method::Entropy => {
            // A ReLU's output is mostly exact zeros; that spike would
            // outweigh the tail in every candidate, so bin 0 counts as bin
            // 1 does (as NVIDIA's pytorch-quantization does).
            let mut h = hist.to_vec();
            if h.len() > 1 {
                h[0] = h[0].min(h[1]);
            }
            (entropy_bins(&h) as f32 + 0.5) * width
        }
    }
}

/// TensorRT's entropy calibration: the number of bins `i` (128..=len)
/// minimising KL(P‖Q), where P is the histogram clipped at `i` (the tail
/// folded into the last bin) and Q is P's first `i` bins merged into 128
/// levels and spread back over their non-empty bins.
fn entropy_bins(hist: &[u64]) -> usize {
    let n = hist.len();
    if n <= LEVELS {
        return n;
    }
    let mut best = (f64::INFINITY, n);
    // Counts beyond the clipping point, folded into P's last bin.
    let mut outliers: u64 = hist[LEVELS..].iter().sum();
    for i in LEVELS..=n {
        if i > LEVELS {
            outliers -= hist[i - 1];
        }
        let mut p: Vec<f64> = hist[..i].iter().map(|&c| c as f64).collect();
        p[i - 1] += outliers as f64;
        let mut q = vec![0f64; i];
        for j in 0..LEVELS {
            // i ≥ LEVELS, so every level merges at least one bin.
            let (start, end) = (j * i / LEVELS, (j + 1) * i / LEVELS);
            let sum: f64 = hist[start..end].iter().map(|&c| c as f64).sum();
            let nonzero = hist[start..end].iter().filter(|&&c| c != 0).count();
            if nonzero == 0 {
                continue;
            }
            for k in start..end {
                if hist[k] != 0 {
                    q[k] = sum / nonzero as f64;
                }
            }
        }
        let kl = kl_divergence(&mut p, &mut q);
        if kl < best.0 {
            best = (kl, i);
        }
    }
    best.1
}

/// KL(P‖Q) of two unnormalised histograms; Q is smoothed where P has mass
/// and Q none (as TensorRT and MXNet do), so every candidate is finite.
fn kl_divergence(p: &mut [f64], q: &mut [f64]) -> f64 {
    const EPS: f64 = 1e-4;
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp == 0.0 || sq == 0.0 {
        return f64::INFINITY;
    }
    for v in p.iter_mut() {
        *v /= sp;
    }
    for v in q.iter_mut() {
        *v /= sq;
    }
    let zeros = q.iter().filter(|&&v| v == 0.0).count();
    let nonzero = q.len() - zeros;
    if zeros > 0 && nonzero > 0 {
        let take = EPS * zeros as f64 / nonzero as f64;
        for v in q.iter_mut() {
            *v = if *v == 0.0 { EPS } else { *v - take };
        }
    }
    p.iter()
        .zip(q.iter())
        .filter(|(&a, _)| a > 0.0)
        .map(|(&a, &b)| a * (a / b.max(1e-12)).ln())
        .sum()
}

/// Progress of [`calibrate`]: `(pass, image)` with pass 1 (ranges) and 2
/// (histograms).
pub type Tick<'a> = &'a mut dyn FnMut(usize, usize);

/// Measures the activation ranges of `fp32` over `samples` (each one
/// preprocessed `[3, h, w]` image) by `method`.
pub fn calibrate(
    fp32: &[u8],
    sample: [usize; 3],
    samples: &[Vec<f32>],
    method: Method,
    tick: Tick,
) -> Result<Scales, String> {
    if samples.is_empty() {
        return Err("no calibration images".into());
    }
    require_opset_13(&decode(fp32)?)?;
    let names = activations(fp32)?;
    if names.is_empty() {
        return Err("the graph has no Conv, Gemm or MatMul to quantise".into());
    }
    let plan = probe_plan(fp32, sample, &names)?;
    let [c, h, w] = sample;
    let run = |x: &[f32]| -> Result<TVec<TValue>, String> {
        let t = Tensor::from_shape(&[1, c, h, w], x).map_err(|e| format!("{e:#}"))?;
        plan.run(tvec!(t.into_tvalue()))
            .map_err(|e| format!("running the FP32 graph: {e:#}"))
    };
    let mut hist = Histograms {
        max: vec![0.0; names.len()],
        bins: vec![vec![0; BINS]; names.len()],
    };
    for (i, x) in samples.iter().enumerate() {
        for (t, v) in run(x)?.iter().enumerate() {
            let m = values(v)?.iter().fold(0f32, |m, x| m.max(x.abs()));
            hist.max[t] = hist.max[t].max(m);
        }
        tick(1, i + 1);
    }
    for (i, x) in samples.iter().enumerate() {
        for (t, v) in run(x)?.iter().enumerate() {
            hist.add(t, values(v)?);
        }
        tick(2, i + 1);
    }
    let amax = names
        .iter()
        .enumerate()
        .map(|(t, n)| (n.clone(), amax(&hist.bins[t], hist.max[t], method)))
        .collect();
    Ok(Scales {
        onnx_sha256: super::sha256_hex(fp32),
        method,
        images: samples.len(),
        amax,
    })
}

/// A calibrated tensor's values (the graph is FP32, so each one is f32).
fn values(v: &TValue) -> Result<&[f32], String> {
    v.try_as_plain_ram()
        .and_then(|view| view.as_slice::<f32>())
        .map_err(|e| format!("{e:#}"))
}

/// The FP32 graph with the calibrated tensors as its outputs.
fn probe_plan(
    fp32: &[u8],
    [c, h, w]: [usize; 3],
    names: &[String],
) -> Result<std::sync::Arc<TypedRunnableModel>, String> {
    let err = |e: TractError| format!("{e:#}");
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(fp32))
        .map_err(err)?;
    let input = model.input_outlets().map_err(err)?[0];
    let input_name = super::onnx::io_shapes(fp32)?.input_name;
    let outlets = names
        .iter()
        .map(|n| {
            if *n == input_name {
                Ok(input)
            } else {
                model
                    .find_outlet_label(n)
                    .ok_or_else(|| format!("tensor {n} is not in the graph tract loaded"))
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    model.select_output_outlets(&outlets).map_err(err)?;
    model
        .with_input_fact(0, f32::fact([1, c, h, w]).into())
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(err)
}

fn scalar_f32(name: &str, v: f32) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        data_type: FLOAT,
        raw_data: v.to_le_bytes().to_vec(),
        ..Default::default()
    }
}

fn int8_tensor(name: &str, dims: Vec<i64>, v: &[i8]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims,
        data_type: INT8,
        raw_data: v.iter().map(|&b| b as u8).collect(),
        ..Default::default()
    }
}

fn qdq_node(op: &str, inputs: [&str; 3], output: &str, axis: Option<i64>) -> pb::NodeProto {
    pb::NodeProto {
        name: format!("{output}_{}", op.to_lowercase()),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: axis
            .map(|a| pb::AttributeProto {
                name: "axis".into(),
                r#type: AttributeType::Int as i32,
                i: a,
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

/// Per-channel symmetric INT8 of a weight along `axis`: the values and
/// one scale per channel (`max |w| / 127`; 1 for an all-zero channel).
pub fn quantise_per_channel(w: &[f32], dims: &[i64], axis: usize) -> (Vec<i8>, Vec<f32>) {
    let channels = dims[axis] as usize;
    let inner: usize = dims[axis + 1..].iter().product::<i64>() as usize;
    let channel = |i: usize| (i / inner) % channels;
    let mut amax = vec![0f32; channels];
    for (i, v) in w.iter().enumerate() {
        let c = channel(i);
        amax[c] = amax[c].max(v.abs());
    }
    let scales: Vec<f32> = amax
        .iter()
        .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (v / scales[channel(i)])
                .round_ties_even()
                .clamp(-127.0, 127.0) as i8
        })
        .collect();
    (q, scales)
}

/// The weight axis that holds output channels, for `node`'s input 1.
fn weight_axis(node: &pb::NodeProto, rank: usize) -> Option<usize> {
    match node.op_type.as_str() {
        "Conv" => Some(0),
        "Gemm" => {
            let trans_b = node
                .attribute
                .iter()
                .any(|a| a.name == "transB" && a.i != 0);
            Some(if trans_b { 0 } else { 1 })
        }
        "MatMul" if rank == 2 => Some(1),
        _ => None,
    }
}

/// Per-channel `DequantizeLinear` (its `axis`) is opset 13.
fn require_opset_13(model: &pb::ModelProto) -> Result<(), String> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    if opset < 13 {
        return Err(format!(
            "INT8 needs an ONNX graph of opset 13 or newer (per-channel DequantizeLinear); this one is opset {opset}. Fix: re-export it at opset 13, or convert it: python3 -c 'import onnx, sys; from onnx import version_converter as v; onnx.save(v.convert_version(onnx.load(sys.argv[1]), 13), sys.argv[2])' IN.onnx OUT.onnx"
        ));
    }
    Ok(())
}

/// Input 1 of `n` where it is an FP32 initializer with an output-channel
/// axis: its name, index among the initializers, and that axis.
fn fp32_weight(
    n: &pb::NodeProto,
    weights: &HashMap<String, usize>,
    initializers: &[pb::TensorProto],
) -> Option<(String, usize, usize)> {
    let w = n.input.get(1)?;
    let &i = weights.get(w)?;
    let t = &initializers[i];
    let axis = weight_axis(n, t.dims.len()).filter(|_| t.data_type == FLOAT)?;
    Some((w.clone(), i, axis))
}

/// A weight as INT8 with per-channel scales on `axis`: the
/// DequantizeLinear that gives it back, and the three initializers it reads.
fn dequantised_weight(
    t: &pb::TensorProto,
    axis: usize,
) -> Result<(pb::NodeProto, Vec<pb::TensorProto>), String> {
    let w = &t.name;
    let values = super::onnx::f32_values(t)?;
    // The graph's own word on the weight's shape is checked before it is
    // used to index the values (a file is outside input).
    let held = t.dims.iter().try_fold(1usize, |n, &d| {
        usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
    });
    if t.dims.iter().any(|&d| d <= 0) || held != Some(values.len()) || axis >= t.dims.len() {
        return Err(format!(
            "weight `{w}`: its dims {:?} do not describe its {} values",
            t.dims,
            values.len()
        ));
    }
    let (q, s) = quantise_per_channel(&values, &t.dims, axis);
    let (qn, sn, zn) = (
        format!("{w}_int8"),
        format!("{w}_int8_scale"),
        format!("{w}_int8_zero"),
    );
    let channels = vec![s.len() as i64];
    let tensors = vec![
        int8_tensor(&qn, t.dims.clone(), &q),
        pb::TensorProto {
            name: sn.clone(),
            dims: channels.clone(),
            data_type: FLOAT,
            raw_data: s.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        },
        int8_tensor(&zn, channels, &vec![0; s.len()]),
    ];
    let dq = qdq_node(
        "DequantizeLinear",
        [&qn, &sn, &zn],
        &format!("{w}_int8_dq"),
        Some(axis as i64),
    );
    Ok((dq, tensors))
}

/// The Q/DQ INT8 variant of an FP32 graph (see the module doc).
pub fn to_int8(fp32: &[u8], scales: &Scales) -> Result<Vec<u8>, String> {
    let sha = super::sha256_hex(fp32);
    if sha != scales.onnx_sha256 {
        return Err("the scales were measured on another graph".into());
    }
    let mut model = decode(fp32)?;
    require_opset_13(&model)?;
    let g = model.graph.as_mut().ok_or("the model has no graph")?;
    let weights: HashMap<String, usize> = g
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let zero = "stylecam_int8_zero".to_string();
    let mut extra = vec![int8_tensor(&zero, vec![], &[0])];
    let mut nodes = Vec::with_capacity(g.node.len() * 2);
    let mut activation_dq: HashMap<String, String> = HashMap::new();
    let mut weight_dq: HashMap<String, String> = HashMap::new();
    let mut replaced: HashSet<usize> = HashSet::new();
    for mut n in std::mem::take(&mut g.node) {
        if quantised_op(&n.op_type) {
            let take = activation_inputs(&n.op_type);
            for k in 0..n.input.len().min(take) {
                let x = n.input[k].clone();
                let Some(&amax) = scales.amax.get(&x) else {
                    continue;
                };
                let dq = activation_dq.entry(x.clone()).or_insert_with(|| {
                    let (s, q, dq) = (
                        format!("{x}_int8_scale"),
                        format!("{x}_int8"),
                        format!("{x}_int8_dq"),
                    );
                    extra.push(scalar_f32(&s, if amax > 0.0 { amax / 127.0 } else { 1.0 }));
                    nodes.push(qdq_node("QuantizeLinear", [&x, &s, &zero], &q, None));
                    nodes.push(qdq_node("DequantizeLinear", [&q, &s, &zero], &dq, None));
                    dq
                });
                n.input[k].clone_from(dq);
            }
            if let Some((w, i, axis)) = fp32_weight(&n, &weights, &g.initializer) {
                if !weight_dq.contains_key(&w) {
                    let (dq, mut tensors) = dequantised_weight(&g.initializer[i], axis)?;
                    weight_dq.insert(w.clone(), dq.output[0].clone());
                    nodes.push(dq);
                    extra.append(&mut tensors);
                    replaced.insert(i);
                }
                n.input[1].clone_from(&weight_dq[&w]);
            }
        }
        nodes.push(n);
    }
    // An FP32 weight nothing reads any more is dropped (its INT8 copy stays).
    let still_read: HashSet<&str> = nodes
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let (kept, dropped): (Vec<_>, Vec<_>) = std::mem::take(&mut g.initializer)
        .into_iter()
        .enumerate()
        .partition(|(i, t)| !replaced.contains(i) || still_read.contains(t.name.as_str()));
    // Old graphs (IR < 4) also list initializers as inputs.
    let dropped: HashSet<String> = dropped.into_iter().map(|(_, t)| t.name).collect();
    g.input.retain(|i| !dropped.contains(&i.name));
    g.initializer = kept.into_iter().map(|(_, t)| t).collect();
    g.initializer.extend(extra);
    g.node = nodes;
    model.doc_string = format!(
        "INT8 Q/DQ variant (stylecam): per-channel weights, per-tensor activations ({}, {} images), f32 I/O",
        scales.method, scales.images
    );
    Ok(model.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weight_whose_dims_do_not_describe_its_values_is_an_error() {
        // Found by fuzzing (fuzz/regressions/onnx/crash-weight-dims-zero):
        // a conv weight claiming 0 output channels indexed an empty scale list.
        let weight = |dims: Vec<i64>| pb::TensorProto {
            name: "conv1.w".into(),
            dims,
            data_type: FLOAT,
            float_data: vec![0.5; 27],
            ..Default::default()
        };
        for dims in [vec![0, 3, 3, 3], vec![2, 3, 3, 3], vec![-1, 3, 3, 3]] {
            let e = dequantised_weight(&weight(dims.clone()), 0).unwrap_err();
            assert!(
                e.contains("conv1.w") && e.contains("27 values"),
                "{dims:?}: {e}"
            );
        }
        assert!(
            dequantised_weight(&weight(vec![1, 3, 3, 3]), 4).is_err(),
            "axis past the dims"
        );
        let (_, tensors) = dequantised_weight(&weight(vec![1, 3, 3, 3]), 0).unwrap();
        assert_eq!(tensors.len(), 3);
    }

    #[test]
    fn percentile_covers_the_share_it_names_and_entropy_clips_a_long_tail() {
        // 10 000 values: most in the first tenth of the range, a few far out.
        let mut hist = vec![0u64; BINS];
        for (i, h) in hist.iter_mut().enumerate().take(200) {
            *h = 50 - (i as u64 / 4);
        }
        hist[BINS - 1] = 1;
        let total: u64 = hist.iter().sum();
        let p = amax(&hist, 10.0, Method::Percentile { percentile: 99.0 });
        let covered: u64 = hist[..(p / 10.0 * BINS as f32).round() as usize]
            .iter()
            .sum();
        assert!(covered as f64 >= 0.99 * total as f64, "{covered}/{total}");
        assert!(p < 1.0, "the outlier is not covered at 99%: {p}");
        let all = amax(&hist, 10.0, Method::Percentile { percentile: 100.0 });
        assert_eq!(all, 10.0);
        let e = amax(&hist, 10.0, Method::Entropy);
        assert!(e > 0.5 && e < 2.0, "entropy clips near the bulk: {e}");
    }

    #[test]
    fn entropy_keeps_the_whole_range_of_a_flat_histogram() {
        let hist = vec![100u64; BINS];
        let e = amax(&hist, 4.0, Method::Entropy);
        assert!(e > 3.9, "{e}");
    }

    #[test]
    fn per_channel_weights_use_each_channels_own_range() {
        // Two output channels of 3 values: one small, one large.
        let w = [0.1, -0.4, 0.3, 1.0, -4.0, 3.0];
        let (q, s) = quantise_per_channel(&w, &[2, 3], 0);
        assert_eq!(s, vec![0.4 / 127.0, 4.0 / 127.0]);
        assert_eq!(q, vec![32, -127, 95, 32, -127, 95]);
        // Axis 1 of a [3, 2] matrix (Gemm without transB).
        let w = [1.0, 0.15, -1.0, 0.2, 0.3, -0.05];
        let (q, s) = quantise_per_channel(&w, &[3, 2], 1);
        assert_eq!(s, vec![1.0 / 127.0, 0.2 / 127.0]);
        assert_eq!(q, vec![127, 95, -127, 127, 38, -32]);
    }

    #[test]
    fn the_int8_demo_graph_has_qdq_around_every_conv_and_gemm() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-bundle");
        let fp32 = std::fs::read(dir.join("model.onnx")).unwrap();
        let names = activations(&fp32).unwrap();
        assert!(names.contains(&"images".to_string()), "{names:?}");
        let mut rng = crate::rng::Rng::new(3);
        let samples: Vec<Vec<f32>> = (0..3)
            .map(|_| (0..3 * 224 * 224).map(|_| rng.normal()).collect())
            .collect();
        let mut ticks = vec![];
        let scales = calibrate(
            &fp32,
            [3, 224, 224],
            &samples,
            Method::Entropy,
            &mut |p, i| ticks.push((p, i)),
        )
        .unwrap();
        assert_eq!(ticks.len(), 6);
        assert_eq!(scales.amax.len(), names.len());
        assert!(scales.amax.values().all(|&a| a > 0.0 && a.is_finite()));
        let int8 = to_int8(&fp32, &scales).unwrap();
        assert_eq!(to_int8(&fp32, &scales).unwrap(), int8, "deterministic");
        let g = decode(&int8).unwrap().graph.unwrap();
        let producer: HashMap<&str, &str> = g
            .node
            .iter()
            .flat_map(|n| {
                n.output
                    .iter()
                    .map(move |o| (o.as_str(), n.op_type.as_str()))
            })
            .collect();
        let mut quantised = 0;
        for n in g
            .node
            .iter()
            .filter(|n| matches!(n.op_type.as_str(), "Conv" | "Gemm"))
        {
            assert_eq!(
                producer.get(n.input[0].as_str()),
                Some(&"DequantizeLinear"),
                "{}",
                n.name
            );
            assert_eq!(
                producer.get(n.input[1].as_str()),
                Some(&"DequantizeLinear"),
                "{}",
                n.name
            );
            quantised += 1;
        }
        assert!(quantised > 0);
        assert!(g
            .initializer
            .iter()
            .any(|t| t.data_type == INT8 && t.dims.len() == 4));
        let io = crate::bundle::onnx::io_shapes(&int8).unwrap();
        assert_eq!(
            (io.input_name.as_str(), io.output_name.as_str()),
            ("images", "probs")
        );
        // Another graph's scales are refused.
        let mut other = scales.clone();
        other.onnx_sha256 = "0".repeat(64);
        assert!(to_int8(&fp32, &other).is_err());
    }

    #[test]
    fn scales_are_found_by_the_graphs_sha_and_a_missing_file_says_how_to_make_it() {
        let dir = tempfile::tempdir().unwrap();
        let fp32 = b"not really onnx".to_vec();
        let err = Scales::for_graph(dir.path(), &fp32).unwrap_err();
        assert!(
            err.contains("no INT8 scales") && err.contains("model.calibration"),
            "{err}"
        );
        let s = Scales {
            onnx_sha256: super::super::sha256_hex(&fp32),
            method: Method::Percentile { percentile: 99.99 },
            images: 4,
            amax: [("x".to_string(), 1.5)].into_iter().collect(),
        };
        s.write(dir.path()).unwrap();
        assert_eq!(Scales::for_graph(dir.path(), &fp32).unwrap(), s);
        assert!(Scales::for_graph(dir.path(), b"another graph").is_err());
    }
}
