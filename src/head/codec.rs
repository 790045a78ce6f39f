//! The head as bytes: what a stored version, an export and a bundle carry.
//!
//! ```text
//! "LTHEAD01"                      8 bytes, format and version
//! header length                   u32, little-endian
//! header                          JSON: {"labels": [...], "layers": [{"inputs", "outputs"}, ...]}
//! per layer: weights, then bias   f32, little-endian, row-major [outputs][inputs]
//! ```
//!
//! Floats are stored bit for bit, so a decoded head predicts exactly what the
//! encoded one did. Decoding checks every length and then validates the head
//! like any other ([`Head::from_layers`]), so truncated or altered bytes give
//! an error, never a head with garbage in it. Integrity against bit flips is
//! the store's checksum's job, not this format's.

use serde::{Deserialize, Serialize};

use super::{DenseLayer, Head};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"LTHEAD01";

#[derive(Serialize, Deserialize)]
struct Header {
    labels: Vec<String>,
    layers: Vec<LayerShape>,
}

#[derive(Serialize, Deserialize)]
struct LayerShape {
    inputs: usize,
    outputs: usize,
}

/// Encodes `head` (labels, shapes and every weight, exactly).
pub fn encode(head: &Head) -> Vec<u8> {
    let header = Header {
        labels: head.labels().to_vec(),
        layers: head
            .layers()
            .iter()
            .map(|layer| LayerShape {
                inputs: layer.inputs,
                outputs: layer.outputs,
            })
            .collect(),
    };
    let header = serde_json::to_vec(&header).expect("labels and sizes serialise");
    let floats: usize = head.layers().iter().map(DenseLayer::parameter_count).sum();
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + header.len() + 4 * floats);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    for layer in head.layers() {
        for value in layer.weights.iter().chain(&layer.bias) {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
    }
    bytes
}

/// Decodes bytes written by [`encode`], checking every length and value.
pub fn decode(bytes: &[u8]) -> Result<Head> {
    let corrupt = |detail: String| Error::CorruptRecord {
        what: "head weights".into(),
        detail,
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt("not a localtune head (no LTHEAD01 signature)".into()))?;
    if rest.len() < 4 {
        return Err(corrupt("truncated before the header length".into()));
    }
    let header_len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let rest = &rest[4..];
    if rest.len() < header_len {
        return Err(corrupt(format!(
            "header says {header_len} bytes; only {} follow",
            rest.len()
        )));
    }
    let header: Header = serde_json::from_slice(&rest[..header_len])
        .map_err(|e| corrupt(format!("unreadable header: {e}")))?;
    let mut floats = rest[header_len..].chunks_exact(4);
    if !floats.remainder().is_empty() {
        return Err(corrupt(
            "weight bytes are not a whole number of f32s".into(),
        ));
    }
    let expected: usize = header
        .layers
        .iter()
        .map(|l| l.inputs.saturating_mul(l.outputs).saturating_add(l.outputs))
        .fold(0usize, usize::saturating_add);
    if floats.len() != expected {
        return Err(corrupt(format!(
            "the header's layer shapes need {expected} weights; found {}",
            floats.len()
        )));
    }
    let mut take = |n: usize| -> Vec<f32> {
        (&mut floats)
            .take(n)
            .map(|b| f32::from_le_bytes(b.try_into().expect("chunks of 4")))
            .collect()
    };
    let layers = header
        .layers
        .iter()
        .map(|shape| DenseLayer {
            inputs: shape.inputs,
            outputs: shape.outputs,
            weights: take(shape.inputs * shape.outputs),
            bias: take(shape.outputs),
        })
        .collect();
    Head::from_layers(header.labels, layers)
}
