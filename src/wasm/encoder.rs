//! The `Encoder` class.

use js_sys::{Float32Array, Object, Reflect, Uint32Array};
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use super::{config_error, js_error, options_json};
use crate::encoder::{CompileOptions, Encoder, EncoderConfig, TokenBatch};
use crate::options::read_options;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Token ids of a batch, padded to its longest text (row-major). */
export interface TokenBatch {
  rows: number;
  seqLen: number;
  inputIds: Uint32Array;
  attentionMask: Uint32Array;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "EncoderOptions")]
    pub type EncoderOptionsArg;
    #[wasm_bindgen(typescript_type = "CompileOptions")]
    pub type CompileOptionsArg;
    #[wasm_bindgen(typescript_type = "TokenBatch")]
    pub type TokenBatchJs;
}

fn encoder_config(options: Option<EncoderOptionsArg>) -> Result<EncoderConfig, JsValue> {
    read_options(
        "encoder options",
        options_json(&options.map_or(JsValue::UNDEFINED, Into::into), &[])?,
    )
    .map_err(js_error)
}

/// The frozen sentence encoder (see the crate docs): text → L2-normalised
/// feature vectors.
#[wasm_bindgen(js_name = Encoder)]
pub struct JsEncoder {
    /// Shared so an async task (re-embedding samples for a store) can keep
    /// using the encoder without holding a borrow of this JS object.
    pub(crate) inner: Rc<Encoder>,
}

#[wasm_bindgen(js_class = Encoder)]
impl JsEncoder {
    /// Builds an encoder from the bytes of an ONNX model and a tokenizer.json.
    #[wasm_bindgen(constructor)]
    pub fn new(
        model: &[u8],
        tokenizer_json: &[u8],
        options: Option<EncoderOptionsArg>,
    ) -> Result<JsEncoder, JsValue> {
        let config = encoder_config(options)?;
        let inner = Encoder::from_bytes(model, tokenizer_json, config).map_err(js_error)?;
        Ok(JsEncoder {
            inner: Rc::new(inner),
        })
    }

    /// Builds an encoder from a compiled encoder (`Encoder.compile`) and a
    /// tokenizer.json: the same encoder as from the ONNX file, same vectors
    /// and same `sha256`, in about two thirds of the start-up time.
    #[wasm_bindgen(js_name = fromCompiled)]
    pub fn from_compiled(
        compiled: &[u8],
        tokenizer_json: &[u8],
        options: Option<EncoderOptionsArg>,
    ) -> Result<JsEncoder, JsValue> {
        let config = encoder_config(options)?;
        let inner = Encoder::from_compiled(compiled, tokenizer_json, config).map_err(js_error)?;
        Ok(JsEncoder {
            inner: Rc::new(inner),
        })
    }

    /// Compiles an ONNX encoder ahead of time (at build time: it takes as
    /// long as building an encoder) into the bytes `Encoder.fromCompiled`
    /// loads. Loadable by builds of localtune with the same tract version.
    pub fn compile(model: &[u8], options: Option<CompileOptionsArg>) -> Result<Vec<u8>, JsValue> {
        let options: CompileOptions = read_options(
            "compile options",
            options_json(&options.map_or(JsValue::UNDEFINED, Into::into), &[])?,
        )
        .map_err(js_error)?;
        Encoder::compile_with(model, &options).map_err(js_error)
    }

    /// Feature vectors of `texts`, concatenated: `texts.length × dim` floats.
    pub fn embed(&self, texts: Vec<String>) -> Result<Float32Array, JsValue> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let embeddings = self.inner.embed(&refs).map_err(js_error)?;
        Ok(Float32Array::from(embeddings.as_slice()))
    }

    /// The runs `embed` cuts `texts` into (indices into `texts`, sorted by
    /// length, at most 32 a run): `embed` of one run's texts in this order
    /// gives them the vectors `embed` of all `texts` gives them, bit for
    /// bit, so workers with an encoder each can share the runs.
    #[wasm_bindgen(js_name = embeddingRuns)]
    pub fn embedding_runs(&self, texts: Vec<String>) -> Result<Vec<Uint32Array>, JsValue> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let runs = self.inner.embedding_runs(&refs).map_err(js_error)?;
        Ok(runs
            .iter()
            .map(|run| {
                let indices: Vec<u32> = run.iter().map(|&i| i as u32).collect();
                Uint32Array::from(indices.as_slice())
            })
            .collect())
    }

    /// Tokenizes `texts` into one batch padded to its longest text.
    pub fn tokenize(&self, texts: Vec<String>) -> Result<TokenBatchJs, JsValue> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batch = self.inner.tokenize(&refs).map_err(js_error)?;
        let to_u32 = |v: &[i64]| v.iter().map(|&x| x as u32).collect::<Vec<u32>>();
        let obj = Object::new();
        let set = |k: &str, v: JsValue| Reflect::set(&obj, &k.into(), &v).map(|_| ());
        set("rows", batch.rows.into())?;
        set("seqLen", batch.seq_len.into())?;
        set(
            "inputIds",
            Uint32Array::from(to_u32(&batch.input_ids).as_slice()).into(),
        )?;
        set(
            "attentionMask",
            Uint32Array::from(to_u32(&batch.attention_mask).as_slice()).into(),
        )?;
        Ok(obj.unchecked_into())
    }

    /// Feature vectors of an already tokenized batch (`rows × seqLen` ids,
    /// zero-padded; the mask is derived from the row lengths). Used by the
    /// benchmark to feed tract and onnxruntime-web the very same ids.
    #[wasm_bindgen(js_name = embedTokenIds)]
    pub fn embed_token_ids(
        &self,
        input_ids: &[u32],
        attention_mask: &[u32],
        rows: usize,
        seq_len: usize,
    ) -> Result<Float32Array, JsValue> {
        // usize is 32 bits here: a product that overflows must not wrap into
        // a length that happens to match.
        let Some(cells) = rows.checked_mul(seq_len) else {
            return Err(config_error(format!(
                "{rows} rows × {seq_len} tokens is more token ids than fit in memory"
            )));
        };
        if input_ids.len() != cells || attention_mask.len() != cells {
            return Err(config_error(format!(
                "expected {rows} × {seq_len} token ids and mask values, got {} and {}",
                input_ids.len(),
                attention_mask.len()
            )));
        }
        let batch = TokenBatch {
            rows,
            seq_len,
            input_ids: input_ids.iter().map(|&x| i64::from(x)).collect(),
            attention_mask: attention_mask.iter().map(|&x| i64::from(x)).collect(),
            token_type_ids: vec![0; cells],
        };
        let embeddings = self.inner.embed_tokens(&batch).map_err(js_error)?;
        Ok(Float32Array::from(embeddings.as_slice()))
    }

    /// Size of each feature vector.
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Longest token sequence read; longer texts are truncated.
    #[wasm_bindgen(getter, js_name = maxSeqLen)]
    pub fn max_seq_len(&self) -> usize {
        self.inner.max_seq_len()
    }

    /// Hex sha256 of the ONNX model: the encoder's identity.
    #[wasm_bindgen(getter)]
    pub fn sha256(&self) -> String {
        self.inner.sha256().to_string()
    }
}
