//! The frozen base encoder: text → one L2-normalised feature vector per text.
//!
//! Built from a compiled encoder ([`compiled`]) or, with the `onnx-import`
//! feature (`onnx_import.rs`), from the bytes of an ONNX sentence encoder,
//! and its `tokenizer.json`; the same code runs natively and in WebAssembly
//! (tract runs the graph, `tokenizers` splits the text).

pub mod compiled;
pub mod four_bit;
mod integer_products;
mod natural_strides;
#[cfg(feature = "onnx-import")]
mod onnx_graph;
#[cfg(feature = "onnx-import")]
mod onnx_import;
mod pooling;
mod quantized;
mod tokenize;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm_gemm;

use std::ops::ControlFlow;
use std::sync::Arc;

use tract_nnef::internal::DimLike;
use tract_nnef::prelude::*;

use crate::error::{Error, Result};
pub use pooling::{l2_normalize, mean_pool_normalized};
use tokenize::TextTokenizer;
pub use tokenize::{capped, read_tokenizer_json, TokenBatch, MAX_TEXT_CHARS};

/// The longest sequence a BERT-family encoder accepts (its position table).
pub const MAX_SEQ_LEN_LIMIT: usize = 512;

/// What the encoder feeds a graph input with (a compiled encoder's header
/// names one per input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum InputRole {
    InputIds,
    AttentionMask,
    TokenTypeIds,
}

/// How an [`Encoder`] is built (`EncoderOptions` in JavaScript).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[cfg_attr(
    target_arch = "wasm32",
    derive(tsify::Tsify),
    tsify(missing_as_null, rename = "EncoderOptions")
)]
pub struct EncoderConfig {
    /// Texts longer than this many tokens (special tokens included) are truncated.
    pub max_seq_len: usize,
    /// Rewrite large int8 embedding lookups to gather the needed rows first and
    /// dequantize only those (bit-identical output, ~16 ms less per sentence in
    /// wasm). Off only to measure what it saves.
    pub gather_before_dequantize: bool,
    /// Word embeddings requantized to 4 bits in groups of this many values
    /// ([`four_bit`]): what an encoder compiled with the option holds, so
    /// building from ONNX with it gives the compiled file's vectors (the
    /// fallback of a bundle built with `--word-embeddings 4bit`). A compiled
    /// encoder says in its header what it holds; given here, it must agree.
    pub word_embeddings_4bit: Option<usize>,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            max_seq_len: 128,
            gather_before_dequantize: true,
            word_embeddings_4bit: None,
        }
    }
}

/// How [`Encoder::compile_with`] writes a compiled encoder (`CompileOptions`
/// in JavaScript).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct CompileOptions {
    /// The word embeddings in 4 bits in groups of this many values
    /// ([`four_bit`]): a smaller file with other vectors (and so another
    /// identity).
    pub word_embeddings_4bit: Option<usize>,
}

/// The identity of an encoder built from the ONNX file with sha256
/// `onnx_sha256`: that digest, or for 4-bit word embeddings (other vectors,
/// so heads and cached vectors must not be taken for the int8 model's) the
/// sha256 of the digest and the variant.
pub fn encoder_identity(onnx_sha256: &str, word_embeddings_4bit: Option<usize>) -> String {
    match word_embeddings_4bit {
        None => onnx_sha256.to_ascii_lowercase(),
        Some(group) => crate::checksum::sha256_hex(
            format!(
                "{}+word-embeddings-4bit-groups-of-{group}",
                onnx_sha256.to_ascii_lowercase()
            )
            .as_bytes(),
        ),
    }
}

/// Feature vectors for a batch of texts: `len()` rows of `dim()` floats,
/// stored contiguously (row-major) so they cross into JavaScript as one
/// `Float32Array` without copying row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
}

impl Embeddings {
    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// The feature vector of the `i`-th text.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim.max(1))
    }
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}

/// A frozen sentence encoder.
pub struct Encoder {
    tokenizer: TextTokenizer,
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<InputRole>,
    dim: usize,
    max_seq_len: usize,
    sha256: String,
    gather_first_lookups: usize,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("dim", &self.dim)
            .field("max_seq_len", &self.max_seq_len)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

fn runtime_error(stage: &'static str) -> impl Fn(TractError) -> Error {
    move |e| Error::ModelRuntime {
        stage,
        message: format!("{e:#}"),
    }
}

/// Runs tract's static constructors once. tract registers its kernels and
/// graph transforms with `inventory`, i.e. static constructors. Natively the
/// loader runs them; in WebAssembly the linker runs them from
/// `__wasm_call_ctors`, and when nothing calls that function explicitly it
/// treats the module as a one-shot "command" and calls it at the top of
/// **every** exported function — 114 constructors on every `predict`, every
/// `update` and every store call (0.3–0.5 ms each, most of a 50-sample head
/// update's fixed cost). Calling it here, once, before tract is used, makes
/// the linker leave the exports alone.
fn run_static_constructors_once() {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    std::hint::black_box(wasm_gemm::linked_kernel_name());
    #[cfg(target_family = "wasm")]
    {
        extern "C" {
            fn __wasm_call_ctors();
        }
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: the linker-made function that runs every static
        // constructor; `Once` runs it a single time, before any tract code.
        ONCE.call_once(|| unsafe { __wasm_call_ctors() });
    }
}

/// In a wasm32 build with SIMD: the kernel tract picks for the encoder's
/// f32 products of 8 columns, and this crate's own kernel for them
/// (`localtune_wasm_f32_4x8`, `…_relaxed_madd` in the relaxed module),
/// which should be the same; natively, where the crate has no kernel of
/// its own, `(None, None)`. For the tests: a binary can be linked without
/// a kernel that registers itself by static constructor, and its encoder
/// then runs another one.
#[doc(hidden)]
pub fn matrix_kernels() -> (Option<String>, Option<String>) {
    run_static_constructors_once();
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        (
            wasm_gemm::kernel_for_columns(8),
            Some(wasm_gemm::linked_kernel_name().to_string()),
        )
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        (None, None)
    }
}

fn check_max_seq_len(config: &EncoderConfig) -> Result<()> {
    if !(2..=MAX_SEQ_LEN_LIMIT).contains(&config.max_seq_len) {
        return Err(Error::Config(format!(
            "max_seq_len must be between 2 and {MAX_SEQ_LEN_LIMIT} tokens, got {}",
            config.max_seq_len
        )));
    }
    Ok(())
}

/// The hidden size of a model whose output is `[batch, sequence, N]`.
fn hidden_size(typed: &TypedModel) -> Result<usize> {
    typed
        .output_fact(0)
        .ok()
        .and_then(|f| {
            (f.rank() == 3)
                .then(|| f.shape[2].to_usize().ok())
                .flatten()
        })
        .ok_or_else(|| Error::ModelInterface {
            expected: "a hidden size known from the model (last_hidden_state [batch, sequence, N])"
                .into(),
            found: typed
                .output_fact(0)
                .map_or_else(|e| format!("{e}"), |f| format!("{f:?}")),
        })
}

/// What a build without the ONNX importer answers where one is needed.
#[cfg(not(feature = "onnx-import"))]
pub fn without_onnx_importer(what: &str) -> Error {
    Error::Unsupported(format!(
        "{what} needs the ONNX importer, which this module leaves out to be smaller \
         (it loads compiled encoders: Encoder.fromCompiled, bundles); the package's \
         localtune_onnx_bg.wasm has it, and is the default in Node"
    ))
}

/// The ONNX entry points of a build without the importer
/// (`--no-default-features`): the same API, refusing with
/// [`Error::Unsupported`], so the page modules have the same API (and
/// TypeScript types) as the module with the importer.
#[cfg(not(feature = "onnx-import"))]
impl Encoder {
    pub fn from_bytes(
        _model: &[u8],
        _tokenizer_json: &[u8],
        _config: EncoderConfig,
    ) -> Result<Self> {
        Err(without_onnx_importer(
            "building an encoder from an ONNX file",
        ))
    }

    pub fn compile(_model: &[u8]) -> Result<Vec<u8>> {
        Err(without_onnx_importer("compiling an ONNX encoder"))
    }

    pub fn compile_with(_model: &[u8], _options: &CompileOptions) -> Result<Vec<u8>> {
        Err(without_onnx_importer("compiling an ONNX encoder"))
    }
}

/// Runs `work` on every item of `items` on `threads` scoped threads (each
/// takes the next item not yet taken) and hands the results to `collect`
/// on this thread as they come, in any order. The first error, or
/// `collect` returning `Break` ([`Error::Cancelled`]), stops the threads
/// after the items they are running.
fn run_on_threads<'a, T, R: Send>(
    items: &[&'a T],
    threads: usize,
    work: impl Fn(&'a T) -> Result<R> + Sync,
    mut collect: impl FnMut(&'a T, R) -> ControlFlow<()>,
) -> Result<()>
where
    T: ?Sized + Sync,
{
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (sender, results) = std::sync::mpsc::channel();
        for _ in 0..threads {
            let sender = sender.clone();
            let (next, stop, work) = (&next, &stop, &work);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&item) = items.get(index) else { break };
                    let result = work(item);
                    let failed = result.is_err();
                    if sender.send((item, result)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(sender);
        // Every result is received (the channel closes when the threads
        // end), so none is left running when this returns.
        let mut outcome = Ok(());
        for (item, result) in results {
            if outcome.is_err() {
                continue;
            }
            outcome = result.and_then(|value| match collect(item, value) {
                ControlFlow::Continue(()) => Ok(()),
                ControlFlow::Break(()) => Err(Error::Cancelled),
            });
            if outcome.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
        }
        outcome
    })
}

/// The indices of `ids` sorted by token count (a stable sort: ties keep
/// their order), the order [`Encoder::embed`] runs texts in.
fn length_order(ids: &[Vec<u32>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    order
}

/// The most texts [`Encoder::embed`] runs the model on at once: enough
/// rows for the matrix kernels to stay busy, few enough that a run's
/// activations stay a few megabytes at 128 tokens.
pub const EMBED_CHUNK_ROWS: usize = 32;

/// The most rows one run of the encoder takes. tract is told so (see
/// [`bound_input_dimensions`]); [`Encoder::embed_tokens`] refuses more.
pub const MAX_BATCH_ROWS: usize = 1 << 16;

/// Tells tract the range of the graph's symbolic dimensions: 1 to
/// [`MAX_BATCH_ROWS`] rows and 1 to [`MAX_SEQ_LEN_LIMIT`] tokens, which every
/// run keeps (checked in [`Encoder::with_hidden_states`]).
///
/// Without bounds tract cannot prove that a tensor of `rows × tokens × 1536`
/// values holds more than a handful (its proofs bound a product only when
/// every factor has both bounds), and leaves every element-wise product with
/// a constant — GELU's, attention's scaling — on its generic broadcasting
/// path instead of its SIMD by-scalar and unicast kernels.
fn bound_input_dimensions(typed: &TypedModel) -> Result<()> {
    let Ok(fact) = typed.input_fact(0) else {
        return Ok(());
    };
    let ranges = [(0, MAX_BATCH_ROWS), (1, MAX_SEQ_LEN_LIMIT)];
    for (axis, max) in ranges {
        let Some(TDim::Sym(symbol)) = fact.shape.dims().get(axis) else {
            continue;
        };
        let known: Vec<String> = typed
            .symbols
            .all_assertions()
            .iter()
            .map(ToString::to_string)
            .collect();
        for assertion in [format!("{symbol} >= 1"), format!("{symbol} <= {max}")] {
            if !known.contains(&assertion) {
                typed
                    .symbols
                    .add_assertion(assertion)
                    .map_err(runtime_error("given its dimensions"))?;
            }
        }
    }
    Ok(())
}

impl Encoder {
    /// Builds an encoder from a compiled encoder ([`Encoder::compile`]) and
    /// a `tokenizer.json`: the same encoder as from the ONNX file it was
    /// compiled from (same outputs, same [`Encoder::sha256`]), without
    /// tract's analysis of the graph: about two thirds of the time, and
    /// ~40 MiB less peak wasm memory for MiniLM.
    ///
    /// A file compiled by a build with another tract version, or anything
    /// that is not a compiled encoder, is refused with an error saying so.
    pub fn from_compiled(
        compiled: &[u8],
        tokenizer_json: &[u8],
        config: EncoderConfig,
    ) -> Result<Self> {
        run_static_constructors_once();
        check_max_seq_len(&config)?;
        if !config.gather_before_dequantize {
            return Err(Error::Config(
                "a compiled encoder always gathers before dequantizing; \
                 build from the ONNX file to measure without it"
                    .into(),
            ));
        }
        let header = compiled::read_header(compiled)?;
        header.check_loadable()?;
        if config
            .word_embeddings_4bit
            .is_some_and(|g| header.word_embeddings_4bit != Some(g))
        {
            return Err(Error::Config(format!(
                "wordEmbeddings4bit is {:?}; the compiled encoder's word embeddings are {}",
                config.word_embeddings_4bit,
                header.describe_word_embeddings()
            )));
        }
        let tokenizer = TextTokenizer::from_bytes(tokenizer_json, config.max_seq_len)?;
        let (mut typed, int8_weights) = compiled::read_model(compiled)?;
        if typed.inputs.len() != header.inputs.len() {
            return Err(Error::ModelFormat(format!(
                "the compiled graph has {} inputs; its header names {}",
                typed.inputs.len(),
                header.inputs.len()
            )));
        }
        // Files compiled before the bounds were written do not carry them.
        bound_input_dimensions(&typed)?;
        integer_products::rewrite(&mut typed, &int8_weights)
            .map_err(runtime_error("prepared to run"))?;
        drop(int8_weights);
        // The file holds the decluttered model: only code generation is
        // left (decluttering again would cost as much as the rest).
        typed.optimize().map_err(runtime_error("optimized"))?;
        let identity = header.identity();
        let encoder = Self::ready(
            typed,
            tokenizer,
            header.inputs,
            config.max_seq_len,
            identity,
            header.gather_first_lookups,
        )?;
        if encoder.dim != header.hidden_size {
            return Err(Error::ModelFormat(format!(
                "the compiled graph gives vectors of {}; its header says {}",
                encoder.dim, header.hidden_size
            )));
        }
        Ok(encoder)
    }

    /// The rest of a build once the model is optimised: the interface
    /// checks and the runnable plan.
    fn ready(
        typed: TypedModel,
        tokenizer: TextTokenizer,
        inputs: Vec<InputRole>,
        max_seq_len: usize,
        sha256: String,
        gather_first_lookups: usize,
    ) -> Result<Self> {
        let dim = hidden_size(&typed)?;
        let mut typed = typed;
        natural_strides::hand_on_natural_strides(&mut typed);
        let plan = typed
            .into_runnable()
            .map_err(runtime_error("prepared to run"))?;
        Ok(Encoder {
            tokenizer,
            plan,
            inputs,
            dim,
            max_seq_len,
            sha256,
            gather_first_lookups,
        })
    }

    /// Size of each feature vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Longest token sequence read; longer texts are truncated.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Lower-case hex sha256 of the ONNX model's bytes (with 4-bit word
    /// embeddings, derived from it: [`encoder_identity`]): the encoder's
    /// identity, recorded by everything trained on its features.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// How many int8 embedding lookups were rewritten to gather before
    /// dequantizing (1 for the default MiniLM: its word-embedding table).
    pub fn gather_first_lookups(&self) -> usize {
        self.gather_first_lookups
    }

    /// Size of the tokenizer's vocabulary (special tokens included).
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.vocab_size()
    }

    /// Tokenizes `texts` into one batch padded to its longest text.
    pub fn tokenize(&self, texts: &[&str]) -> Result<TokenBatch> {
        self.tokenizer.batch(texts)
    }

    /// One L2-normalised feature vector per text, in order. Any string gives
    /// a vector: an empty one encodes as `[CLS] [SEP]`, a long one is
    /// truncated. Any number of texts: they run [`EMBED_CHUNK_ROWS`] at a
    /// time, sorted by length, so each run pads its texts only to the
    /// longest of similar ones and its memory stays bounded (one run of
    /// 3,000 texts padded to the longest asked for gigabytes and trapped
    /// the module). A text's vector does not depend on the others in its
    /// run beyond float rounding (padding is masked).
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings> {
        if texts.len() <= EMBED_CHUNK_ROWS {
            let batch = self.tokenize(texts)?;
            return self.embed_tokens(&batch);
        }
        self.embed_on_threads(texts, 1, &mut |_| ControlFlow::Continue(()))
    }

    /// [`Encoder::embed`] on up to `threads` threads (natively; wasm32 has
    /// none, so one there), telling `progress` how many texts are done after
    /// each run of [`EMBED_CHUNK_ROWS`]; `progress` returning `Break` stops
    /// the work ([`Error::Cancelled`]). The runs are the ones `embed` makes
    /// (sorted by length, then cut), whichever thread runs them, so the
    /// vectors are `embed`'s bit for bit at any thread count: a bundle built
    /// on 2 cores or 64 has the same bytes.
    pub fn embed_on_threads(
        &self,
        texts: &[&str],
        threads: usize,
        progress: &mut dyn FnMut(usize) -> ControlFlow<()>,
    ) -> Result<Embeddings> {
        let ids = self.token_ids(texts)?;
        let by_length = length_order(&ids);
        let runs: Vec<&[usize]> = by_length.chunks(EMBED_CHUNK_ROWS).collect();
        let embed_run = |run: &[usize]| {
            let rows: Vec<&[u32]> = run.iter().map(|&i| ids[i].as_slice()).collect();
            self.embed_tokens(&TokenBatch::from_rows(&rows))
        };
        let dim = self.dim;
        let mut data = vec![0f32; texts.len() * dim];
        let mut done = 0;
        let mut place = |run: &[usize], vectors: Embeddings| {
            for (k, &i) in run.iter().enumerate() {
                data[i * dim..(i + 1) * dim].copy_from_slice(vectors.row(k));
            }
            done += run.len();
            done
        };
        let threads = if cfg!(target_arch = "wasm32") {
            1
        } else {
            threads.clamp(1, runs.len().max(1))
        };
        if threads == 1 {
            for run in &runs {
                let done = place(run, embed_run(run)?);
                if progress(done).is_break() {
                    return Err(Error::Cancelled);
                }
            }
        } else {
            run_on_threads(&runs, threads, embed_run, |run, vectors| {
                progress(place(run, vectors))
            })?;
        }
        Ok(Embeddings { dim, data })
    }

    /// The runs [`Encoder::embed`] cuts `texts` into: indices into `texts`,
    /// sorted by token count (ties in the texts' order), at most
    /// [`EMBED_CHUNK_ROWS`] a run. `embed` of one run's texts, in this
    /// order, gives each of them the vector `embed` of all `texts` gives it,
    /// bit for bit: so workers that each hold an encoder (a pool of Web
    /// Workers or Node worker threads, which share no Rust threads) can
    /// take the runs in any order and still build `embed`'s result exactly.
    pub fn embedding_runs(&self, texts: &[&str]) -> Result<Vec<Vec<usize>>> {
        let ids = self.token_ids(texts)?;
        Ok(length_order(&ids)
            .chunks(EMBED_CHUNK_ROWS)
            .map(<[usize]>::to_vec)
            .collect())
    }

    fn token_ids(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| self.tokenizer.ids(t)).collect()
    }

    /// Feature vectors of an already tokenized batch.
    pub fn embed_tokens(&self, batch: &TokenBatch) -> Result<Embeddings> {
        let data = self.with_hidden_states(batch, |hidden| {
            mean_pool_normalized(
                hidden,
                &batch.attention_mask,
                batch.rows,
                batch.seq_len,
                self.dim,
            )
        })?;
        Ok(Embeddings {
            dim: self.dim,
            data,
        })
    }

    /// The model's per-token output, `[rows, seq_len, dim]` row-major.
    pub fn hidden_states(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        self.with_hidden_states(batch, <[f32]>::to_vec)
    }

    /// Runs the model on `batch` and lends its per-token output to `read`
    /// (pooling reads it in place instead of copying ~200 KB a sentence).
    fn with_hidden_states<T>(
        &self,
        batch: &TokenBatch,
        read: impl FnOnce(&[f32]) -> T,
    ) -> Result<T> {
        // No rows, no hidden states: the graph is not run on an empty batch.
        if batch.rows == 0 {
            return Ok(read(&[]));
        }
        // The ranges tract was told (bound_input_dimensions) and relies on.
        if !(1..=MAX_BATCH_ROWS).contains(&batch.rows)
            || !(1..=MAX_SEQ_LEN_LIMIT).contains(&batch.seq_len)
        {
            return Err(Error::Config(format!(
                "a token batch runs with 1 to {MAX_BATCH_ROWS} rows of 1 to \
                 {MAX_SEQ_LEN_LIMIT} tokens, got {} rows × {} tokens",
                batch.rows, batch.seq_len
            )));
        }
        let expected_len = batch.rows * batch.seq_len;
        if batch.input_ids.len() != expected_len
            || batch.attention_mask.len() != expected_len
            || batch.token_type_ids.len() != expected_len
        {
            return Err(Error::Config(format!(
                "token batch of {} rows × {} tokens has inputs of lengths {}, {}, {}",
                batch.rows,
                batch.seq_len,
                batch.input_ids.len(),
                batch.attention_mask.len(),
                batch.token_type_ids.len()
            )));
        }
        let inputs = self
            .graph_inputs(batch)
            .map_err(runtime_error("given its inputs"))?;
        let outputs = self.plan.run(inputs).map_err(runtime_error("run"))?;
        let output = &outputs[0];
        let expected = [batch.rows, batch.seq_len, self.dim];
        if output.shape() != expected {
            return Err(Error::ModelInterface {
                expected: format!("last_hidden_state of shape {expected:?}"),
                found: format!("shape {:?}", output.shape()),
            });
        }
        let view = output.try_as_plain_ram().map_err(runtime_error("read"))?;
        let hidden = view.as_slice::<f32>().map_err(runtime_error("read"))?;
        Ok(read(hidden))
    }

    /// `batch` as the graph's input tensors, in the order of its inputs.
    fn graph_inputs(&self, batch: &TokenBatch) -> TractResult<TVec<TValue>> {
        let shape = [batch.rows, batch.seq_len];
        self.inputs
            .iter()
            .map(|role| {
                let data = match role {
                    InputRole::InputIds => &batch.input_ids,
                    InputRole::AttentionMask => &batch.attention_mask,
                    InputRole::TokenTypeIds => &batch.token_type_ids,
                };
                Tensor::from_shape(&shape, data).map(IntoTValue::into_tvalue)
            })
            .collect()
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod plan_tests {
    use super::*;

    fn real_model() -> (Vec<u8>, Vec<u8>) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-minilm-l6-v2-int8/");
        let read = |name: &str| {
            std::fs::read(format!("{dir}{name}"))
                .unwrap_or_else(|e| panic!("{dir}{name}: {e} (bash scripts/fetch-model.sh)"))
        };
        (read("model.onnx"), read("tokenizer.json"))
    }

    /// The element-wise operations tract could run on its SIMD by-scalar or
    /// unicast kernels (an operand of one value, or two of the same shape, over
    /// more than one value per row) but left on its generic broadcasting path.
    fn generic_elementwise(encoder: &Encoder) -> Vec<String> {
        let model = encoder.plan.model();
        model
            .nodes()
            .iter()
            .filter(|node| ["Mul", "Add", "Sub", "Div"].contains(&&*node.op.name()))
            .filter(|node| {
                let facts = model.node_input_facts(node.id).unwrap();
                let (a, b) = (&facts[0].shape, &facts[1].shape);
                let big = if a.rank() >= b.rank() { a } else { b };
                let one_value = |s: &ShapeFact| s.volume().is_one();
                (one_value(a) || one_value(b) || a == b) && !big.dims().last().unwrap().is_one()
            })
            .map(|node| format!("{} {}", node.op.name(), node.name))
            .collect()
    }

    /// Runs `encoder` on `texts` and lists the inputs of tract's SIMD
    /// element-wise ops that arrive without natural strides (those ops then
    /// fall back to their generic loop).
    fn unnatural_elementwise_inputs(encoder: &Encoder, texts: &[&str]) -> Vec<String> {
        let batch = encoder.tokenize(texts).unwrap();
        let inputs = encoder.graph_inputs(&batch).unwrap();
        let mut found = Vec::new();
        let mut state = tract_nnef::tract_core::plan::SimpleState::new(&encoder.plan).unwrap();
        state
            .run_plan_with_eval(inputs, |session, op_state, node, inputs| {
                let name = node.op.name();
                if name.starts_with("Opt") && !name.contains("MatMul") {
                    for (ix, t) in inputs.iter().enumerate() {
                        if t.strides() != &*Tensor::natural_strides(t.shape()) {
                            found.push(format!("{} input {ix}: {:?}", node.name, t.strides()));
                        }
                    }
                }
                tract_nnef::tract_core::plan::eval(session, op_state, node, inputs)
            })
            .unwrap();
        found
    }

    /// A batch of one reshapes `[tokens, d]` to `[1, tokens, d]` after every
    /// product; the strides handed on must still be the natural ones.
    #[test]
    fn elementwise_kernels_get_natural_strides() {
        let (model, tokenizer) = real_model();
        let encoder = Encoder::from_bytes(&model, &tokenizer, EncoderConfig::default()).unwrap();
        for texts in [&["one text"][..], &["two", "texts of other lengths"][..]] {
            assert_eq!(
                unnatural_elementwise_inputs(&encoder, texts),
                Vec::<String>::new(),
                "{texts:?}"
            );
        }
    }

    fn integer_products(encoder: &Encoder) -> usize {
        let model = encoder.plan.model();
        model
            .nodes()
            .iter()
            .filter(|node| node.op.name() == "IntegerProduct")
            .count()
    }

    /// Every weight product of MiniLM (6 layers: Q, K, V, the attention
    /// output, the feed-forward pair) runs on int8 weights, from ONNX and
    /// from a compiled file alike; attention's two products stay f32.
    #[test]
    fn the_weight_products_run_as_integers() {
        let (model, tokenizer) = real_model();
        let from_onnx = Encoder::from_bytes(&model, &tokenizer, EncoderConfig::default()).unwrap();
        assert_eq!(integer_products(&from_onnx), 36);
        let compiled = Encoder::compile(&model).unwrap();
        let from_compiled =
            Encoder::from_compiled(&compiled, &tokenizer, EncoderConfig::default()).unwrap();
        assert_eq!(integer_products(&from_compiled), 36);
        let texts = [
            "turn on the kitchen lights",
            "what is the weather like tomorrow",
        ];
        assert_eq!(
            from_onnx.embed(&texts).unwrap(),
            from_compiled.embed(&texts).unwrap(),
            "the same vectors, bit for bit"
        );
    }

    /// With the input dimensions bounded, GELU's products and attention's
    /// scaling run on tract's linalg kernels, from ONNX and from a compiled
    /// file alike (without the bounds: 4 generic products a layer, ~15% of a
    /// 128-token sentence in wasm).
    #[test]
    fn elementwise_products_run_on_linalg_kernels() {
        let (model, tokenizer) = real_model();
        let from_onnx = Encoder::from_bytes(&model, &tokenizer, EncoderConfig::default()).unwrap();
        assert_eq!(generic_elementwise(&from_onnx), Vec::<String>::new());
        let compiled = Encoder::compile(&model).unwrap();
        let from_compiled =
            Encoder::from_compiled(&compiled, &tokenizer, EncoderConfig::default()).unwrap();
        assert_eq!(generic_elementwise(&from_compiled), Vec::<String>::new());
    }
}
