//! Work on the ONNX protobuf before tract sees it: check that the graph has
//! a sentence encoder's interface, rewrite int8 embedding lookups so they
//! gather first and dequantize only the rows they need, and fold the
//! dequantization of int8 weights into f32 constants.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{
    tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, GraphProto, NodeProto,
    TensorProto, ValueInfoProto,
};

use super::quantized::{QuantizedMatrix, Scale};
use super::InputRole;
use crate::error::{Error, Result};

impl InputRole {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "input_ids" => Some(Self::InputIds),
            "attention_mask" => Some(Self::AttentionMask),
            "token_type_ids" => Some(Self::TokenTypeIds),
            _ => None,
        }
    }
}

/// The graph's interface as the encoder will use it.
#[derive(Debug, Clone)]
pub(crate) struct Interface {
    /// One role per graph input, in the graph's input order.
    pub inputs: Vec<InputRole>,
    /// Name of the per-token hidden-state output that is pooled.
    pub output: String,
}

const EXPECTED_INPUTS: &str =
    "inputs input_ids and attention_mask (and optionally token_type_ids), \
     int64 of shape [batch, sequence]";
const EXPECTED_OUTPUT: &str =
    "an output last_hidden_state (or one float32 output) of shape [batch, sequence, hidden]";

/// Checks that the graph is a sentence encoder we can drive, and says what was
/// found when it is not.
pub(crate) fn check_interface(graph: &GraphProto) -> Result<Interface> {
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    // Old exporters also list initializers among the inputs; those are weights.
    let real_inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();

    let mismatch = |expected: &str| Error::ModelInterface {
        expected: expected.to_string(),
        found: format!(
            "inputs [{}], outputs [{}]",
            describe_all(&real_inputs),
            describe_all(&graph.output.iter().collect::<Vec<_>>())
        ),
    };

    let mut roles = Vec::with_capacity(real_inputs.len());
    for input in &real_inputs {
        let role = InputRole::from_name(&input.name).ok_or_else(|| mismatch(EXPECTED_INPUTS))?;
        let (elem, rank) = tensor_type(input);
        let rank_ok = rank.is_none_or(|r| r == 2);
        if elem != Some(DataType::Int64) || !rank_ok {
            return Err(mismatch(EXPECTED_INPUTS));
        }
        roles.push(role);
    }
    for required in [InputRole::InputIds, InputRole::AttentionMask] {
        if !roles.contains(&required) {
            return Err(mismatch(EXPECTED_INPUTS));
        }
    }

    let is_hidden_state = |o: &&ValueInfoProto| {
        let (elem, rank) = tensor_type(o);
        elem == Some(DataType::Float) && rank.is_none_or(|r| r == 3)
    };
    let output = graph
        .output
        .iter()
        .find(|o| o.name == "last_hidden_state" && is_hidden_state(o))
        .or_else(|| {
            let floats: Vec<_> = graph.output.iter().filter(is_hidden_state).collect();
            (floats.len() == 1).then(|| floats[0])
        })
        .ok_or_else(|| mismatch(EXPECTED_OUTPUT))?;

    Ok(Interface {
        inputs: roles,
        output: output.name.clone(),
    })
}

fn tensor_type(v: &ValueInfoProto) -> (Option<DataType>, Option<usize>) {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => (
            DataType::try_from(t.elem_type).ok(),
            t.shape.as_ref().map(|s| s.dim.len()),
        ),
        None => (None, None),
    }
}

fn describe(v: &ValueInfoProto) -> String {
    let (elem, _) = tensor_type(v);
    let elem = elem.map_or("?".to_string(), |e| format!("{e:?}").to_lowercase());
    let dims = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(dimension::Value::DimValue(n)) => n.to_string(),
                    Some(dimension::Value::DimParam(p)) => p.clone(),
                    None => "?".into(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        }),
        None => None,
    };
    match dims {
        Some(d) => format!("{} ({elem} [{d}])", v.name),
        None => format!("{} ({elem})", v.name),
    }
}

fn describe_all(vs: &[&ValueInfoProto]) -> String {
    vs.iter()
        .map(|v| describe(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A lookup `Gather(Mul(Cast(Q), S), ids)` into a dequantized int8/uint8
/// table: the indices of its nodes and the names of its initializers.
struct Lookup {
    gather: usize,
    mul: usize,
    cast: usize,
    /// `Q`, 2-D, int8 or uint8.
    table: String,
    scale: String,
    scale_per_row: bool,
}

/// Every dequantized lookup into a table of at least `min_elements` values.
fn dequantized_lookups(graph: &GraphProto, min_elements: usize) -> Vec<Lookup> {
    let initializers: HashMap<String, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let consumers = consumer_counts(graph);
    let producer = producers(graph);

    let mut lookups = Vec::new();
    for (g_ix, gather) in graph.node.iter().enumerate() {
        if gather.op_type != "Gather" || gather.input.len() != 2 || gather_axis(gather) != 0 {
            continue;
        }
        let Some(&m_ix) = producer.get(gather.input[0].as_str()) else {
            continue;
        };
        let mul = &graph.node[m_ix];
        if mul.op_type != "Mul" || mul.input.len() != 2 || consumers[mul.output[0].as_str()] != 1 {
            continue;
        }
        let Some((c_ix, scale_name)) = cast_and_other_operand(graph, &producer, mul) else {
            continue;
        };
        let scale_name = scale_name.to_string();
        let cast = &graph.node[c_ix];
        if consumers[cast.output[0].as_str()] != 1 || cast_to(cast) != Some(DataType::Float) {
            continue;
        }
        let (Some(q), Some(scale)) = (
            initializers.get(&cast.input[0]),
            initializers.get(&scale_name),
        ) else {
            continue;
        };
        let q_is_int8 = matches!(
            DataType::try_from(q.data_type),
            Ok(DataType::Int8) | Ok(DataType::Uint8)
        );
        let elements: i64 = q.dims.iter().product();
        if !q_is_int8 || q.dims.len() != 2 || (elements as usize) < min_elements {
            continue;
        }
        let scale_per_row = match scale.dims.as_slice() {
            [] | [1] => false,
            [rows, 1] if *rows == q.dims[0] => true,
            _ => continue,
        };
        if DataType::try_from(scale.data_type) != Ok(DataType::Float) {
            continue;
        }
        lookups.push(Lookup {
            gather: g_ix,
            mul: m_ix,
            cast: c_ix,
            table: cast.input[0].clone(),
            scale: scale_name,
            scale_per_row,
        });
    }
    lookups
}

/// Requantizes the table of every dequantized lookup (MiniLM's word
/// embeddings) to 4 bits in groups of `group` values
/// ([`super::four_bit`]), in place, before anything reads them: the table
/// an encoder compiled with 4-bit word embeddings stores, so an encoder built
/// from the ONNX file with the same option gives the same vectors. Returns
/// how many tables it changed.
pub(crate) fn requantize_lookup_tables_4bit(graph: &mut GraphProto, group: usize) -> Result<usize> {
    let tables: HashSet<String> = dequantized_lookups(graph, 0)
        .into_iter()
        .map(|l| l.table)
        .collect();
    let refused = |name: &str, why: String| {
        Error::ModelFormat(format!("4-bit word embeddings: the table {name}: {why}"))
    };
    for t in graph
        .initializer
        .iter_mut()
        .filter(|t| tables.contains(&t.name))
    {
        let signed = DataType::try_from(t.data_type) == Ok(DataType::Int8);
        let cols = t.dims[1] as usize;
        if !t.raw_data.is_empty() {
            super::four_bit::requantize(&mut t.raw_data, cols, group, signed)
                .map_err(|e| refused(&t.name, e))?;
        } else {
            // ONNX may hold 8-bit values one to an int32 instead.
            let mut bytes: Vec<u8> = t.int32_data.iter().map(|&v| v as u8).collect();
            super::four_bit::requantize(&mut bytes, cols, group, signed)
                .map_err(|e| refused(&t.name, e))?;
            for (v, b) in t.int32_data.iter_mut().zip(bytes) {
                *v = if signed { b as i8 as i32 } else { b as i32 };
            }
        }
    }
    Ok(tables.len())
}

/// Rewrites `Gather(Mul(Cast(Q), S), ids)` into `Mul(Cast(Gather(Q, ids)), Gather(S, ids))`
/// for int8/uint8 tables `Q` with per-row (`[rows, 1]`) or scalar scale `S`, when
/// `Q` holds at least `min_elements` values. Returns how many lookups were rewritten.
///
/// Why: the int8 word-embedding table of MiniLM (30522×384) dequantizes to
/// 45 MB of f32, beyond tract's constant-folding budget, so the graph as
/// shipped dequantizes the whole table on every call (~15 ms a sentence in
/// wasm, ~43 ms natively) to read a few dozen rows. Dequantization is an
/// element-wise cast and scale, so doing it after the gather gives
/// bit-identical results for the rows read. Small tables are left alone:
/// tract folds those into f32 constants once, which is cheaper still.
pub(crate) fn gather_before_dequantize(graph: &mut GraphProto, min_elements: usize) -> usize {
    let plans = dequantized_lookups(graph, min_elements);
    let rewritten = plans.len();
    let mut replacements: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut removed: HashSet<usize> = HashSet::new();
    for Lookup {
        gather: g_ix,
        mul: m_ix,
        cast: c_ix,
        table: q_name,
        scale: scale_name,
        scale_per_row: per_row,
    } in plans
    {
        let gather = &graph.node[g_ix];
        let ids = gather.input[1].clone();
        let out = gather.output[0].clone();
        let base = if gather.name.is_empty() {
            out.clone()
        } else {
            gather.name.clone()
        };
        let rows_q = format!("{base}/gathered_int8");
        let rows_f = format!("{base}/gathered_f32");
        let mut nodes = vec![
            node(
                "Gather",
                &format!("{base}/gather_int8"),
                &[&q_name, &ids],
                &rows_q,
                gather,
            ),
            node(
                "Cast",
                &format!("{base}/cast"),
                &[&rows_q],
                &rows_f,
                &graph.node[c_ix],
            ),
        ];
        let scale_input = if per_row {
            let rows_scale = format!("{base}/gathered_scale");
            nodes.push(node(
                "Gather",
                &format!("{base}/gather_scale"),
                &[&scale_name, &ids],
                &rows_scale,
                gather,
            ));
            rows_scale
        } else {
            scale_name
        };
        nodes.push(node(
            "Mul",
            &format!("{base}/dequantize"),
            &[&rows_f, &scale_input],
            &out,
            &graph.node[m_ix],
        ));
        replacements.insert(g_ix, nodes);
        removed.extend([g_ix, m_ix, c_ix]);
    }
    if rewritten > 0 {
        let old = std::mem::take(&mut graph.node);
        for (ix, n) in old.into_iter().enumerate() {
            if let Some(nodes) = replacements.remove(&ix) {
                graph.node.extend(nodes);
            } else if !removed.contains(&ix) {
                graph.node.push(n);
            }
        }
    }
    rewritten
}

/// Replaces every `Mul(Cast(Q), S)` whose operands are initializers — an
/// int8/uint8 weight `Q` cast to f32, times an f32 scale `S` that broadcasts
/// (scalar, per row `[rows, 1]` or per column `[1, cols]`/`[cols]`) — by one
/// f32 initializer holding the product. Returns the folded weights as int8
/// values and scales: a compiled encoder stores them in that form again, and
/// the encoder computes with them as integers ([`super::integer_products`]).
///
/// Why: tract would fold these too, but during its analysis, evaluating the
/// cast and the multiplication of ~10 M weights in a few calls that a
/// WebAssembly engine runs in its baseline tier (it only switches to
/// optimised code at a later call), plus comparing the folded tensors while
/// unifying facts: ~0.5 s of the cold start. Here each row is a call of its
/// own, so the optimised code takes over after the first few. The values are
/// bit-identical: the same cast and the same single multiplication.
pub(crate) fn fold_constant_dequantization(graph: &mut GraphProto) -> Vec<QuantizedMatrix> {
    let mut consumers = consumer_counts(graph);
    let initializer_ix: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(ix, t)| (t.name.clone(), ix))
        .collect();
    let producer = producers(graph);

    // (mul index, cast index, Q initializer index, S initializer index,
    // the weight in quantized form, the product's bytes)
    let mut plans = Vec::new();
    for (m_ix, mul) in graph.node.iter().enumerate() {
        if mul.op_type != "Mul" || mul.output.len() != 1 {
            continue;
        }
        let Some((c_ix, scale_name)) = cast_and_other_operand(graph, &producer, mul) else {
            continue;
        };
        let cast = &graph.node[c_ix];
        if consumers[cast.output[0].as_str()] != 1 || cast_to(cast) != Some(DataType::Float) {
            continue;
        }
        let (Some(&q_ix), Some(&s_ix)) = (
            initializer_ix.get(&cast.input[0]),
            initializer_ix.get(scale_name),
        ) else {
            continue;
        };
        let (q, scale) = (&graph.initializer[q_ix], &graph.initializer[s_ix]);
        if let Some(matrix) = QuantizedMatrix::from_initializers(q, scale) {
            let raw_data = matrix.dequantized_le_bytes();
            plans.push((m_ix, c_ix, q_ix, s_ix, matrix, raw_data));
        }
    }

    let mut new_initializers = Vec::new();
    let mut removed_nodes = HashSet::new();
    let mut unused = HashSet::new();
    let mut folded = Vec::new();
    for (m_ix, c_ix, q_ix, s_ix, matrix, raw_data) in plans {
        folded.push(matrix);
        new_initializers.push(TensorProto {
            name: graph.node[m_ix].output[0].clone(),
            dims: graph.initializer[q_ix].dims.clone(),
            data_type: DataType::Float as i32,
            raw_data,
            ..Default::default()
        });
        removed_nodes.extend([m_ix, c_ix]);
        // The weight was read by the cast alone; a scale may be shared.
        for ix in [q_ix, s_ix] {
            let name = &graph.initializer[ix].name;
            let count = consumers
                .get_mut(name.as_str())
                .expect("an input of the folded nodes");
            *count -= 1;
            if *count == 0 {
                unused.insert(ix);
            }
        }
    }
    let old = std::mem::take(&mut graph.node);
    graph.node = old
        .into_iter()
        .enumerate()
        .filter(|(ix, _)| !removed_nodes.contains(ix))
        .map(|(_, n)| n)
        .collect();
    let old = std::mem::take(&mut graph.initializer);
    graph.initializer = old
        .into_iter()
        .enumerate()
        .filter(|(ix, _)| !unused.contains(ix))
        .map(|(_, t)| t)
        .chain(new_initializers)
        .collect();
    folded
}

impl QuantizedMatrix {
    /// `Q` and `S` of `Mul(Cast(Q), S)`, when `Q` is a 2-D int8/uint8
    /// tensor and `S` an f32 scalar, per-row or per-column scale.
    fn from_initializers(q: &TensorProto, scale: &TensorProto) -> Option<Self> {
        let [rows, cols] = *q.dims.as_slice() else {
            return None;
        };
        let (rows, cols) = (usize::try_from(rows).ok()?, usize::try_from(cols).ok()?);
        let signed = match DataType::try_from(q.data_type).ok()? {
            DataType::Int8 => true,
            DataType::Uint8 => false,
            _ => return None,
        };
        // (int32_data would hold them otherwise; this model family uses raw_data.)
        if q.raw_data.len() != rows * cols {
            return None;
        }
        if DataType::try_from(scale.data_type).ok()? != DataType::Float {
            return None;
        }
        let scales: Vec<f32> = if !scale.float_data.is_empty() {
            scale.float_data.clone()
        } else {
            scale
                .raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let dims: Vec<usize> = scale.dims.iter().map(|&d| d as usize).collect();
        let scale = match (dims.as_slice(), scales.len()) {
            ([] | [1] | [1, 1], 1) => Scale::One(scales[0]),
            ([r, 1], n) if *r == rows && n == rows => Scale::PerRow(scales),
            ([1, c] | [c], n) if *c == cols && n == cols => Scale::PerColumn(scales),
            _ => return None,
        };
        Some(QuantizedMatrix {
            rows,
            cols,
            signed,
            values: q.raw_data.clone(),
            scale,
        })
    }

    /// The dequantized matrix as little-endian bytes (an ONNX initializer's
    /// `raw_data`).
    fn dequantized_le_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.rows * self.cols * 4];
        let mut row = vec![0f32; self.cols];
        for (r, dst) in out.chunks_exact_mut((self.cols * 4).max(1)).enumerate() {
            self.dequantize_row(r, &mut row);
            for (d, v) in dst.chunks_exact_mut(4).zip(&row) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        out
    }
}

/// How many nodes (and graph outputs) read each value.
fn consumer_counts(graph: &GraphProto) -> HashMap<&str, usize> {
    let mut consumers: HashMap<&str, usize> = HashMap::new();
    let node_inputs = graph.node.iter().flat_map(|n| n.input.iter());
    let graph_outputs = graph.output.iter().map(|o| &o.name);
    for name in node_inputs.chain(graph_outputs) {
        *consumers.entry(name.as_str()).or_default() += 1;
    }
    consumers
}

/// The index of the node that produces each value.
fn producers(graph: &GraphProto) -> HashMap<&str, usize> {
    graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(ix, n)| n.output.iter().map(move |o| (o.as_str(), ix)))
        .collect()
}

/// For a two-input `mul` with a `Cast` node as one operand: that Cast's
/// index and the name of the other operand (the scale).
fn cast_and_other_operand<'g>(
    graph: &'g GraphProto,
    producer: &HashMap<&str, usize>,
    mul: &'g NodeProto,
) -> Option<(usize, &'g str)> {
    if mul.input.len() != 2 {
        return None;
    }
    mul.input.iter().enumerate().find_map(|(k, name)| {
        let &c_ix = producer.get(name.as_str())?;
        (graph.node[c_ix].op_type == "Cast").then(|| (c_ix, mul.input[1 - k].as_str()))
    })
}

/// A node of `op_type` carrying over the attributes of `like` (the node it replaces).
fn node(op_type: &str, name: &str, inputs: &[&str], output: &str, like: &NodeProto) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: name.to_string(),
        op_type: op_type.to_string(),
        domain: like.domain.clone(),
        attribute: like.attribute.clone(),
        doc_string: String::new(),
    }
}

fn gather_axis(node: &NodeProto) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == "axis")
        .map_or(0, |a| a.i)
}

fn cast_to(node: &NodeProto) -> Option<DataType> {
    node.attribute
        .iter()
        .find(|a| a.name == "to")
        .and_then(|a| DataType::try_from(a.i as i32).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    const TINY: &[u8] = include_bytes!("../../tests/fixtures/tiny/encoder.onnx");

    fn tiny_graph() -> GraphProto {
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut &TINY[..])
            .unwrap();
        proto.graph.unwrap()
    }

    fn ops(graph: &GraphProto) -> Vec<&str> {
        graph.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    #[test]
    fn rewrites_the_dequantized_lookup_into_gather_first() {
        let mut graph = tiny_graph();
        assert_eq!(gather_before_dequantize(&mut graph, 0), 1);
        let first = &graph.node[0];
        assert_eq!(
            (first.op_type.as_str(), first.input[0].as_str()),
            ("Gather", "word_q")
        );
        assert_eq!(&ops(&graph)[..4], ["Gather", "Cast", "Gather", "Mul"]);
        // The table-sized Cast and Mul are gone.
        assert!(!graph
            .node
            .iter()
            .any(|n| n.input.iter().any(|i| i == "word_f")));
    }

    #[test]
    fn leaves_tables_below_the_threshold_alone() {
        let mut graph = tiny_graph();
        let before = ops(&graph).join(",");
        assert_eq!(gather_before_dequantize(&mut graph, 1 << 20), 0);
        assert_eq!(ops(&graph).join(","), before);
    }

    #[test]
    fn folds_constant_dequantization_into_one_f32_initializer() {
        let mut graph = tiny_graph();
        let q = graph
            .initializer
            .iter()
            .find(|t| t.name == "word_q")
            .unwrap()
            .clone();
        let scale = graph
            .initializer
            .iter()
            .find(|t| t.name == "word_scale")
            .unwrap()
            .clone();
        let kept = fold_constant_dequantization(&mut graph);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].values, q.raw_data);
        assert_eq!(
            &ops(&graph)[..2],
            ["Gather", "Gather"],
            "Cast and Mul are gone"
        );
        let names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        assert!(
            !names.contains(&"word_q") && !names.contains(&"word_scale"),
            "{names:?}"
        );
        let folded = graph
            .initializer
            .iter()
            .find(|t| t.name == "word_emb")
            .unwrap();
        assert_eq!(folded.dims, q.dims);
        assert_eq!(folded.data_type, DataType::Float as i32);
        let scales: Vec<f32> = scale
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .chain(scale.float_data.iter().copied())
            .collect();
        let cols = q.dims[1] as usize;
        let transposed = kept[0].transposed();
        for (i, bytes) in folded.raw_data.chunks_exact(4).enumerate() {
            let expected = q.raw_data[i] as i8 as f32 * scales[i / cols];
            assert_eq!(
                f32::from_le_bytes(bytes.try_into().unwrap()).to_bits(),
                expected.to_bits()
            );
            let (r, c) = (i / cols, i % cols);
            assert_eq!(kept[0].value(r, c).to_bits(), expected.to_bits());
            assert_eq!(transposed.value(c, r).to_bits(), expected.to_bits());
        }
        assert_eq!(
            kept[0].dequantized(),
            folded
                .raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect::<Vec<_>>()
        );
        // Nothing left to fold.
        assert!(fold_constant_dequantization(&mut graph).is_empty());
    }

    #[test]
    fn the_interface_of_the_tiny_encoder_is_accepted() {
        let interface = check_interface(&tiny_graph()).unwrap();
        assert_eq!(
            interface.inputs,
            [
                InputRole::InputIds,
                InputRole::AttentionMask,
                InputRole::TokenTypeIds
            ]
        );
        assert_eq!(interface.output, "last_hidden_state");
    }
}
