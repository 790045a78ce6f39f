//! Building an encoder from an ONNX file: tract's ONNX importer and
//! analysis, and the compiler that writes what [`Encoder::from_compiled`]
//! reads. Behind the `onnx-import` feature (on by default): the npm
//! package's page modules load compiled encoders only and leave the importer
//! out, the bundle tool's module (and every native build) keeps it.

use tract_onnx::prelude::*;

use super::quantized::QuantizedMatrix;
use super::tokenize::TextTokenizer;
use super::{
    bound_input_dimensions, check_max_seq_len, compiled, hidden_size, integer_products, onnx_graph,
    run_static_constructors_once, runtime_error, CompileOptions, Encoder, EncoderConfig,
};
use crate::error::{Error, Result};

/// Lookups into int8 tables at least this large are rewritten to gather
/// before dequantizing (see [`onnx_graph::gather_before_dequantize`]). Tables
/// below it fit tract's 4 MiB constant-folding budget as f32 and are folded.
const GATHER_FIRST_MIN_ELEMENTS: usize = (4 << 20) / std::mem::size_of::<f32>();

/// An ONNX encoder read, checked and rewritten, ready for tract's analysis.
struct OnnxFrontEnd {
    inference: InferenceModel,
    interface: onnx_graph::Interface,
    gather_first_lookups: usize,
    /// The int8 weights whose dequantization was folded (when asked for).
    folded: Vec<QuantizedMatrix>,
}

impl OnnxFrontEnd {
    fn read(model: &[u8], config: &EncoderConfig) -> Result<Self> {
        let onnx = tract_onnx::onnx().with_ignore_value_info(true);
        if model.is_empty() {
            return Err(Error::ModelFormat("the file is empty".into()));
        }
        let mut proto = onnx
            .proto_model_for_read(&mut &model[..])
            .map_err(|e| Error::ModelFormat(format!("not a readable ONNX file: {e:#}")))?;
        let graph = proto
            .graph
            .as_mut()
            .ok_or_else(|| Error::ModelFormat("the file holds no graph".into()))?;
        let interface = onnx_graph::check_interface(graph)?;
        if let Some(group) = config.word_embeddings_4bit {
            if !(1..=super::four_bit::MAX_GROUP).contains(&group) {
                return Err(Error::Config(format!(
                    "wordEmbeddings4bit: groups of {group} values; give 1 to {}",
                    super::four_bit::MAX_GROUP
                )));
            }
            if onnx_graph::requantize_lookup_tables_4bit(graph, group)? == 0 {
                return Err(Error::Config(
                    "wordEmbeddings4bit: this model has no int8 word-embedding table to store in 4 bits"
                        .into(),
                ));
            }
        }
        let gather_first_lookups = if config.gather_before_dequantize {
            onnx_graph::gather_before_dequantize(graph, GATHER_FIRST_MIN_ELEMENTS)
        } else {
            0
        };
        let folded = onnx_graph::fold_constant_dequantization(graph);

        let mut inference = onnx
            .model_for_proto_model(&proto)
            .map_err(runtime_error("parsed"))?;
        // Wasm memory never shrinks: free the protobuf (a second copy of the
        // weights) before optimisation adds the f32 ones, to lower the peak.
        drop(proto);
        inference
            .select_outputs_by_name([interface.output.as_str()])
            .map_err(runtime_error("parsed"))?;
        Ok(OnnxFrontEnd {
            inference,
            interface,
            gather_first_lookups,
            folded,
        })
    }
}

impl Encoder {
    /// Builds an encoder from the bytes of an ONNX model and a `tokenizer.json`.
    ///
    /// The model must take `input_ids` and `attention_mask` (optionally
    /// `token_type_ids`), int64 `[batch, sequence]`, and give
    /// `last_hidden_state`, float32 `[batch, sequence, hidden]`; anything else
    /// is refused with an error naming what was expected and what was found.
    pub fn from_bytes(model: &[u8], tokenizer_json: &[u8], config: EncoderConfig) -> Result<Self> {
        let sha256 = crate::checksum::sha256_hex(model);
        Self::from_bytes_with_sha256(model, sha256, tokenizer_json, config)
    }

    /// [`Encoder::from_bytes`] for a model whose sha256 the caller has just
    /// computed (a bundle checks it against its manifest): hashing 23 MB
    /// again would cost a tenth of a second in WebAssembly.
    pub(crate) fn from_bytes_with_sha256(
        model: &[u8],
        sha256: String,
        tokenizer_json: &[u8],
        config: EncoderConfig,
    ) -> Result<Self> {
        run_static_constructors_once();
        check_max_seq_len(&config)?;
        let tokenizer = TextTokenizer::from_bytes(tokenizer_json, config.max_seq_len)?;
        let front = OnnxFrontEnd::read(model, &config)?;
        let typed = front
            .inference
            .into_typed()
            .map_err(runtime_error("analysed"))?;
        bound_input_dimensions(&typed)?;
        let mut typed = typed
            .into_decluttered()
            .map_err(runtime_error("analysed"))?;
        let int8_weights: Vec<_> = (front.folded.into_iter())
            .map(integer_products::Int8Weight::by_value)
            .collect();
        integer_products::rewrite(&mut typed, &int8_weights)
            .map_err(runtime_error("prepared to run"))?;
        drop(int8_weights);
        typed.optimize().map_err(runtime_error("optimized"))?;
        Self::ready(
            typed,
            tokenizer,
            front.interface.inputs,
            config.max_seq_len,
            super::encoder_identity(&sha256, config.word_embeddings_4bit),
            front.gather_first_lookups,
        )
    }

    /// Compiles an ONNX sentence encoder ahead of time into the file
    /// [`Encoder::from_compiled`] loads: tract's analysed and decluttered
    /// model (NNEF in a tar), its int8 weights kept as int8, and a header
    /// naming the ONNX file's sha256 and the tract version it is for.
    /// Deterministic: the same ONNX bytes give the same file.
    pub fn compile(model: &[u8]) -> Result<Vec<u8>> {
        Self::compile_with(model, &CompileOptions::default())
    }

    /// [`Encoder::compile`] with options: the word embeddings in 4 bits
    /// (a smaller file with other vectors, [`super::four_bit`]).
    pub fn compile_with(model: &[u8], options: &CompileOptions) -> Result<Vec<u8>> {
        let word_embeddings_4bit = options.word_embeddings_4bit;
        run_static_constructors_once();
        let sha256 = crate::checksum::sha256_hex(model);
        let config = EncoderConfig {
            word_embeddings_4bit,
            ..EncoderConfig::default()
        };
        let front = OnnxFrontEnd::read(model, &config)?;
        let typed = front
            .inference
            .into_typed()
            .map_err(runtime_error("analysed"))?;
        bound_input_dimensions(&typed)?;
        let mut typed = typed
            .into_decluttered()
            .map_err(runtime_error("analysed"))?;
        let hidden_size = hidden_size(&typed)?;
        // The weight products go in the file as the encoder runs them, int8
        // and packed: a load then neither dequantizes nor packs them.
        let int8_weights: Vec<_> = (front.folded.iter().cloned())
            .map(integer_products::Int8Weight::by_value)
            .collect();
        integer_products::rewrite(&mut typed, &int8_weights)
            .map_err(runtime_error("prepared to run"))?;
        drop(int8_weights);
        compiled::write(
            &typed,
            &compiled::Header::new(
                sha256,
                &front.interface.inputs,
                hidden_size,
                front.gather_first_lookups,
                word_embeddings_4bit,
            ),
            &front.folded,
        )
    }
}
