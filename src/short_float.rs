//! Serialises f32 values by their shortest decimal form (0.485, not
//! 0.48500001430511475), so hand-read files like `bundle.toml` stay tidy.
//! Use with `#[serde(serialize_with = "…")]`; deserialising needs nothing.

use serde::ser::{SerializeSeq, Serializer};

fn short(x: f32) -> f64 {
    // f32's Display is the shortest string that reads back to the same f32.
    x.to_string().parse().unwrap_or(x as f64)
}

pub fn one<S: Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(short(*x))
}

pub fn seq<S: Serializer>(xs: &[f32], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(xs.len()))?;
    for &x in xs {
        seq.serialize_element(&short(x))?;
    }
    seq.end()
}

pub fn matrix<S: Serializer>(rows: &[Vec<f32>], s: S) -> Result<S::Ok, S::Error> {
    let rows: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().map(|&x| short(x)).collect())
        .collect();
    serde::Serialize::serialize(&rows, s)
}
