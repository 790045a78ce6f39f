//! Encoder behaviour on the tiny encoder (fast): exact values against numpy,
//! batching, truncation, odd input, and every way a model file can be wrong.
//! Runs natively and, as wasm, in Node.

mod common;

use common::{tiny_encoder, TINY_ENCODER, TINY_TOKENIZER, WRONG_IO_MODEL};
use localtune::{
    Encoder, EncoderConfig, Error, TokenBatch, EMBED_CHUNK_ROWS, MAX_BATCH_ROWS, MAX_SEQ_LEN_LIMIT,
};
use serde::Deserialize;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[derive(Deserialize)]
struct Expected {
    text: String,
    max_seq_len: usize,
    token_ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn expected() -> Vec<Expected> {
    serde_json::from_str(include_str!("fixtures/tiny/expected.json")).unwrap()
}

fn config(max_seq_len: usize) -> EncoderConfig {
    EncoderConfig {
        max_seq_len,
        ..EncoderConfig::default()
    }
}

#[test]
fn tiny_embeddings_match_numpy_reference() {
    for case in expected() {
        let encoder = tiny_encoder(config(case.max_seq_len));
        let batch = encoder.tokenize(&[&case.text]).unwrap();
        let ids: Vec<u32> = batch.input_ids.iter().map(|&i| i as u32).collect();
        assert_eq!(ids, case.token_ids, "token ids of {:?}", case.text);
        let got = encoder.embed(&[&case.text]).unwrap();
        assert_eq!(got.len(), 1);
        let diff = common::max_abs_diff(got.row(0), &case.embedding);
        assert!(diff < 1e-6, "{:?}: max abs diff {diff}", case.text);
    }
}

#[test]
fn a_batch_gives_the_same_vectors_as_one_text_at_a_time() {
    let encoder = tiny_encoder(EncoderConfig::default());
    let texts = [
        "turn off the lights",
        "",
        "what time is it in the kitchen today",
        "hello",
    ];
    let batch = encoder.tokenize(&texts).unwrap();
    // Padded to the longest text of this batch, not to a fixed length.
    assert_eq!(
        batch.seq_len,
        (0..texts.len())
            .map(|r| batch.tokens_in_row(r))
            .max()
            .unwrap()
    );
    assert!(batch.seq_len < 128);
    let together = encoder.embed(&texts).unwrap();
    for (i, text) in texts.iter().enumerate() {
        let alone = encoder.embed(&[text]).unwrap();
        assert!(
            common::max_abs_diff(together.row(i), alone.row(0)) < 1e-6,
            "{text:?}"
        );
    }
}

/// `n` texts of 0 to ~60 words, their lengths shuffled by the index
/// arithmetic, so the runs `embed` makes (sorted by length) hold texts from
/// all over the call.
fn mixed_length_texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| "lights on ".repeat((i * 37) % 31) + &format!("room {i}"))
        .collect()
}

#[test]
fn three_thousand_texts_in_one_call_run_in_bounded_chunks_in_order() {
    let encoder = tiny_encoder(EncoderConfig::default());
    let texts = mixed_length_texts(3_000);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let together = encoder.embed(&refs).unwrap();
    assert_eq!(together.len(), 3_000);
    for i in (0..3_000).step_by(97).chain([2_999]) {
        let alone = encoder.embed(&[refs[i]]).unwrap();
        assert!(
            common::max_abs_diff(together.row(i), alone.row(0)) < 1e-5,
            "text {i} came back out of place or changed"
        );
    }
}

#[test]
fn many_texts_on_any_number_of_threads_give_embeds_vectors_exactly() {
    use std::ops::ControlFlow;
    let encoder = tiny_encoder(EncoderConfig::default());
    // 1,000 texts: 32 runs, handed out to the threads.
    let texts = mixed_length_texts(1_000);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let one = encoder.embed(&refs).unwrap();
    // 2, 3 and 7 threads share the 32 runs; 64 are more than the runs. In
    // wasm32 (no threads) every count runs on one, with the same result.
    for threads in [1, 2, 3, 7, 64] {
        let mut seen = Vec::new();
        let on_threads = encoder
            .embed_on_threads(&refs, threads, &mut |done| {
                seen.push(done);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(on_threads, one, "{threads} threads");
        // One report a run, each further on, the last at every text.
        assert_eq!(seen.len(), 32, "{threads} threads");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{threads} threads");
        assert_eq!(seen.last(), Some(&1_000));
    }
    // Cancelling stops the work: nothing is returned, and the encoder
    // embeds as before.
    for threads in [1, 3] {
        let mut reports = 0;
        let result = encoder.embed_on_threads(&refs, threads, &mut |_| {
            reports += 1;
            ControlFlow::Break(())
        });
        assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
        assert_eq!(reports, 1, "{threads} threads: reports after the cancel");
    }
    assert_eq!(encoder.embed(&refs).unwrap(), one);
    // No texts: no vectors, no report.
    let empty = encoder
        .embed_on_threads(&[], 4, &mut |_| panic!("nothing to report"))
        .unwrap();
    assert_eq!(empty.len(), 0);
}

#[test]
fn each_run_embedded_alone_gives_embeds_vectors_exactly() {
    // What a pool of workers does: each run's texts, in the run's order,
    // through `embed` on an encoder of its own (built from the same bytes),
    // placed at the run's indices, in reverse order of the runs.
    let encoder = tiny_encoder(EncoderConfig::default());
    let worker = tiny_encoder(EncoderConfig::default());
    let texts = mixed_length_texts(1_000);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let runs = encoder.embedding_runs(&refs).unwrap();
    assert_eq!(runs, worker.embedding_runs(&refs).unwrap());
    assert_eq!(runs.len(), 1_000usize.div_ceil(EMBED_CHUNK_ROWS));
    assert!(runs
        .iter()
        .all(|run| !run.is_empty() && run.len() <= EMBED_CHUNK_ROWS));
    let mut every: Vec<usize> = runs.concat();
    let tokens = |i: usize| encoder.tokenize(&[refs[i]]).unwrap().seq_len;
    assert!(
        every.windows(2).all(|w| tokens(w[0]) <= tokens(w[1])),
        "sorted by length"
    );
    every.sort_unstable();
    assert_eq!(every, (0..1_000).collect::<Vec<_>>(), "every text once");

    let dim = encoder.dim();
    let mut pooled = vec![f32::NAN; refs.len() * dim];
    for run in runs.iter().rev() {
        let run_texts: Vec<&str> = run.iter().map(|&i| refs[i]).collect();
        let vectors = worker.embed(&run_texts).unwrap();
        for (k, &i) in run.iter().enumerate() {
            pooled[i * dim..(i + 1) * dim].copy_from_slice(vectors.row(k));
        }
    }
    assert_eq!(pooled, encoder.embed(&refs).unwrap().as_slice());
    assert!(encoder.embedding_runs(&[]).unwrap().is_empty());
}

#[test]
fn every_vector_is_unit_length_and_finite() {
    let encoder = tiny_encoder(EncoderConfig::default());
    let hundred_kb = "kitchen lights ".repeat(100 * 1024 / 15);
    let texts = [
        "",
        " \t\n ",
        "🔥😂👍",
        "客厅的灯",
        "\u{0}\u{7}",
        hundred_kb.as_str(),
    ];
    let embeddings = encoder.embed(&texts).unwrap();
    assert_eq!(embeddings.len(), texts.len());
    for (row, text) in embeddings.rows().zip(texts) {
        assert_eq!(row.len(), encoder.dim());
        assert!(row.iter().all(|x| x.is_finite()), "{text:?}");
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "{:?}: norm {norm}",
            &text[..text.len().min(20)]
        );
    }
}

#[test]
fn long_text_is_truncated_to_max_seq_len() {
    for max in [2, 5, 128] {
        let encoder = tiny_encoder(config(max));
        let text = "turn off the lights ".repeat(5_000); // 100 KB
        let batch = encoder.tokenize(&[&text]).unwrap();
        assert_eq!(batch.seq_len, max);
        // Truncation keeps [CLS] first and [SEP] last.
        assert_eq!(batch.input_ids[0], 2);
        assert_eq!(batch.input_ids[max - 1], 3);
    }
}

#[test]
fn a_huge_text_is_read_up_to_its_first_8192_characters() {
    use localtune::encoder::{capped, MAX_TEXT_CHARS};
    let encoder = tiny_encoder(config(128));
    // 20 MB, multi-byte characters included: cut on a character boundary.
    let huge = "héllo wörld ".repeat(1_600_000);
    assert_eq!(capped(&huge).chars().count(), MAX_TEXT_CHARS);
    assert_eq!(capped("short"), "short");
    let whole = encoder.embed(&[huge.as_str()]).unwrap();
    let first = encoder.embed(&[capped(&huge)]).unwrap();
    assert_eq!(whole.as_slice(), first.as_slice());
}

#[test]
fn no_texts_give_no_vectors() {
    let encoder = tiny_encoder(EncoderConfig::default());
    let embeddings = encoder.embed(&[]).unwrap();
    assert!(embeddings.is_empty());
    assert_eq!(embeddings.dim(), 8);
}

#[test]
fn identity_is_the_model_files_sha256() {
    let encoder = tiny_encoder(EncoderConfig::default());
    assert_eq!(
        encoder.sha256(),
        "78f7496df56d28e9ddb64525cef0ca07d207704f17aee9a37b0cda5ce43ef385"
    );
    assert_eq!(encoder.dim(), 8);
    assert_eq!(encoder.vocab_size(), 147);
}

fn load_err(model: &[u8], tokenizer: &[u8], config: EncoderConfig) -> Error {
    Encoder::from_bytes(model, tokenizer, config).expect_err("must be refused")
}

#[test]
fn wrong_interface_names_expected_and_found() {
    let err = load_err(WRONG_IO_MODEL, TINY_TOKENIZER, EncoderConfig::default());
    assert_eq!(err.code(), "ModelInterfaceError");
    let msg = err.to_string();
    assert!(
        msg.contains("expected inputs input_ids and attention_mask"),
        "{msg}"
    );
    assert!(
        msg.contains("found inputs [x (float [1, 4])], outputs [y (float [1, 4])]"),
        "{msg}"
    );
}

#[test]
fn bytes_that_are_not_onnx_are_refused() {
    for bytes in [&b""[..], b"not a model at all", &[0xff; 64], TINY_TOKENIZER] {
        let err = load_err(bytes, TINY_TOKENIZER, EncoderConfig::default());
        assert!(
            matches!(err.code(), "ModelFormatError" | "ModelInterfaceError"),
            "{bytes:?}: {err}"
        );
    }
    let truncated = &TINY_ENCODER[..TINY_ENCODER.len() / 2];
    let err = load_err(truncated, TINY_TOKENIZER, EncoderConfig::default());
    assert_eq!(err.code(), "ModelFormatError", "{err}");
}

#[test]
fn a_broken_tokenizer_is_refused() {
    for tokenizer in [&b""[..], b"{}", b"{\"model\": 3}", TINY_ENCODER] {
        let err = load_err(TINY_ENCODER, tokenizer, EncoderConfig::default());
        assert_eq!(err.code(), "TokenizerError", "{err}");
    }
}

#[test]
fn max_seq_len_out_of_range_is_refused() {
    for max in [0, 1, 513, usize::MAX] {
        let err = load_err(TINY_ENCODER, TINY_TOKENIZER, config(max));
        assert_eq!(err.code(), "ConfigError");
        assert!(err.to_string().contains("between 2 and 512"), "{err}");
    }
}

#[test]
fn a_malformed_token_batch_is_refused() {
    let encoder = tiny_encoder(EncoderConfig::default());
    let mut batch = encoder.tokenize(&["hello"]).unwrap();
    batch.attention_mask.pop();
    let err = encoder.embed_tokens(&batch).unwrap_err();
    assert_eq!(err.code(), "ConfigError", "{err}");
}

/// tract plans the graph for 1..=MAX_BATCH_ROWS rows of 1..=MAX_SEQ_LEN_LIMIT
/// tokens; a batch outside that is refused before it reaches the graph.
#[test]
fn a_token_batch_outside_the_planned_ranges_is_refused() {
    let encoder = tiny_encoder(EncoderConfig::default());
    let batch = |rows: usize, seq_len: usize| TokenBatch {
        rows,
        seq_len,
        input_ids: vec![101; rows * seq_len],
        attention_mask: vec![1; rows * seq_len],
        token_type_ids: vec![0; rows * seq_len],
    };
    for (rows, seq_len) in [
        (1, 0),
        (3, 0),
        (1, MAX_SEQ_LEN_LIMIT + 1),
        (MAX_BATCH_ROWS + 1, 1),
    ] {
        let err = encoder.embed_tokens(&batch(rows, seq_len)).unwrap_err();
        assert_eq!(err.code(), "ConfigError", "{rows} × {seq_len}: {err}");
        assert!(
            err.to_string()
                .contains(&format!("{rows} rows × {seq_len} tokens")),
            "{err}"
        );
    }
    // No rows at all is an empty answer, not an error.
    assert!(encoder.embed_tokens(&batch(0, 0)).unwrap().is_empty());
    assert!(encoder.hidden_states(&batch(0, 4)).unwrap().is_empty());
    // The edges themselves run.
    assert_eq!(encoder.embed_tokens(&batch(1, 1)).unwrap().len(), 1);
}

#[test]
fn simd128_is_compiled_in_on_wasm() {
    // .cargo/config.toml adds +simd128; an exported RUSTFLAGS would silently drop it.
    assert_eq!(localtune::simd128_enabled(), cfg!(target_arch = "wasm32"));
}

// ---- the compiled encoder (Encoder::compile / Encoder::from_compiled) -----

fn tiny_compiled() -> Vec<u8> {
    Encoder::compile(TINY_ENCODER).expect("the tiny encoder compiles")
}

fn compiled_err(compiled: &[u8], config: EncoderConfig) -> Error {
    Encoder::from_compiled(compiled, TINY_TOKENIZER, config).expect_err("must be refused")
}

#[test]
fn the_compiled_encoder_is_the_encoder_it_was_compiled_from() {
    let compiled = tiny_compiled();
    assert_eq!(compiled, tiny_compiled(), "compiling is deterministic");
    let from_onnx = tiny_encoder(EncoderConfig::default());
    let from_compiled =
        Encoder::from_compiled(&compiled, TINY_TOKENIZER, EncoderConfig::default()).unwrap();
    assert_eq!(from_compiled.sha256(), from_onnx.sha256());
    assert_eq!(from_compiled.dim(), from_onnx.dim());
    assert_eq!(
        from_compiled.gather_first_lookups(),
        from_onnx.gather_first_lookups()
    );
    let long = "lights ".repeat(15_000); // ~100 KB
    let texts = [
        "turn on the lights",
        "",
        "   ",
        "🔥🔥",
        "请开灯",
        long.as_str(),
    ];
    let batch = from_onnx.tokenize(&texts).unwrap();
    assert_eq!(
        from_compiled.hidden_states(&batch).unwrap(),
        from_onnx.hidden_states(&batch).unwrap(),
        "bit for bit"
    );
    // max_seq_len is the tokenizer's: it applies to a compiled encoder too.
    let short = Encoder::from_compiled(&compiled, TINY_TOKENIZER, config(4)).unwrap();
    assert_eq!(short.tokenize(&[long.as_str()]).unwrap().seq_len, 4);
}

#[test]
fn files_that_are_not_a_compiled_encoder_are_refused() {
    for bytes in [
        &b""[..],
        b"not a model at all",
        &[0u8; 1024],
        TINY_ENCODER,
        TINY_TOKENIZER,
    ] {
        let err = compiled_err(bytes, EncoderConfig::default());
        assert_eq!(err.code(), "ModelFormatError", "{err}");
    }
    let err = compiled_err(TINY_ENCODER, EncoderConfig::default());
    assert!(
        err.to_string().contains("not a compiled localtune encoder"),
        "an ONNX file: {err}"
    );
    let compiled = tiny_compiled();
    let truncated = &compiled[..compiled.len() / 2];
    let err = compiled_err(truncated, EncoderConfig::default());
    assert_eq!(err.code(), "ModelFormatError", "{err}");
}

#[test]
fn a_file_compiled_for_another_tract_is_refused_with_both_versions() {
    let other = common::with_compiled_header(&tiny_compiled(), |h| {
        h["tractVersion"] = "0.0.1".into();
    });
    let err = compiled_err(&other, EncoderConfig::default());
    assert_eq!(err.code(), "ModelFormatError");
    let msg = err.to_string();
    assert!(
        msg.contains("compiled for tract 0.0.1")
            && msg.contains(localtune::encoder::compiled::TRACT_VERSION),
        "{msg}"
    );
    let newer = common::with_compiled_header(&tiny_compiled(), |h| {
        h["formatVersion"] = 99.into();
    });
    let msg = compiled_err(&newer, EncoderConfig::default()).to_string();
    assert!(msg.contains("format version 99"), "{msg}");
    let wrong_inputs = common::with_compiled_header(&tiny_compiled(), |h| {
        h["inputs"] = serde_json::json!(["input_ids"]);
    });
    let msg = compiled_err(&wrong_inputs, EncoderConfig::default()).to_string();
    assert!(msg.contains("has 3 inputs; its header names 1"), "{msg}");
}

#[test]
fn a_compiled_encoder_is_checked_like_an_onnx_one() {
    let compiled = tiny_compiled();
    let err = compiled_err(&compiled, config(1));
    assert_eq!(err.code(), "ConfigError");
    let err = compiled_err(
        &compiled,
        EncoderConfig {
            gather_before_dequantize: false,
            ..EncoderConfig::default()
        },
    );
    assert_eq!(err.code(), "ConfigError", "{err}");
    let err = Encoder::from_compiled(&compiled, b"{}", EncoderConfig::default()).unwrap_err();
    assert_eq!(err.code(), "TokenizerError", "{err}");
    // Compiling checks the interface as loading does.
    let err = Encoder::compile(WRONG_IO_MODEL).unwrap_err();
    assert_eq!(err.code(), "ModelInterfaceError", "{err}");
    let err = Encoder::compile(b"not a model").unwrap_err();
    assert_eq!(err.code(), "ModelFormatError", "{err}");
}

/// The npm package's page modules have no ONNX importer, so the browser
/// tests load the tiny encoder compiled: `tests/fixtures/tiny/
/// encoder.compiled.tar`. Compiling is deterministic; the file must be what
/// this build writes (after a tract upgrade, regenerate it with
/// `node scripts/compile-encoder.mjs tests/fixtures/tiny/encoder.onnx
/// tests/fixtures/tiny/encoder.compiled.tar`), and it is the same encoder.
#[test]
fn the_compiled_tiny_encoder_fixture_is_current() {
    let fixture = include_bytes!("fixtures/tiny/encoder.compiled.tar");
    let compiled = Encoder::compile(TINY_ENCODER).unwrap();
    assert!(
        compiled == fixture,
        "tests/fixtures/tiny/encoder.compiled.tar is stale ({} bytes; compile writes {})",
        fixture.len(),
        compiled.len()
    );
    assert_loads_as_the_onnx_encoder(fixture);
}

/// `compiled` loads, with the tiny ONNX encoder's identity and vectors.
fn assert_loads_as_the_onnx_encoder(compiled: &[u8]) {
    let from_compiled = Encoder::from_compiled(compiled, TINY_TOKENIZER, config(128)).unwrap();
    let from_onnx = tiny_encoder(config(128));
    let texts = ["turn on the lights", "what is the weather"];
    assert_eq!(
        from_compiled.embed(&texts).unwrap(),
        from_onnx.embed(&texts).unwrap()
    );
    assert_eq!(from_compiled.sha256(), from_onnx.sha256());
}

/// Format 1 (before the weight products were stored as the encoder runs
/// them) still loads: `encoder.compiled.format1.tar` is the tiny fixture
/// as builds before format 2 wrote it.
#[test]
fn a_compiled_encoder_of_format_1_still_loads() {
    let format1 = include_bytes!("fixtures/tiny/encoder.compiled.format1.tar");
    let header = localtune::encoder::compiled::read_header(format1).unwrap();
    assert_eq!(header.format_version, 1);
    assert_loads_as_the_onnx_encoder(format1);
}
