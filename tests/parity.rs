//! Parity of the real encoder (int8 all-MiniLM-L6-v2) with onnxruntime, for
//! the fixture's texts: natively and, as wasm, in Node. The same check runs
//! in headless Chromium from tests/browser.rs.

mod common;

use localtune::{Encoder, EncoderConfig};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[test]
fn real_encoder_matches_onnxruntime() {
    let encoder = common::real_encoder(EncoderConfig::default());
    let (cos, diff) = common::assert_parity(&encoder);
    println!("worst cosine {cos}, worst max abs diff {diff}");
}

#[test]
fn gathering_before_dequantizing_is_bit_identical() {
    let texts = ["turn off the kitchen lights", "", "请把客厅的灯关掉 🔥"];
    let rewritten = common::real_encoder(EncoderConfig::default());
    let as_shipped = common::real_encoder(EncoderConfig {
        gather_before_dequantize: false,
        ..EncoderConfig::default()
    });
    // The word-embedding table is rewritten; the small position table is left to folding.
    assert_eq!(rewritten.gather_first_lookups(), 1);
    assert_eq!(as_shipped.gather_first_lookups(), 0);
    let batch = rewritten.tokenize(&texts).unwrap();
    assert_eq!(
        rewritten.hidden_states(&batch).unwrap(),
        as_shipped.hidden_states(&batch).unwrap()
    );
}

#[test]
fn the_compiled_real_encoder_matches_onnxruntime_and_the_onnx_build() {
    let (model, tokenizer) = common::real_model();
    let compiled = Encoder::compile(&model).unwrap();
    // Its int8 weights stay int8: about the ONNX file's size, not the
    // 55 MB tract's f32 serialisation would take.
    assert!(
        compiled.len() < model.len() * 11 / 10,
        "{} bytes compiled from {}",
        compiled.len(),
        model.len()
    );
    let from_compiled = Encoder::from_compiled(&compiled, &tokenizer, EncoderConfig::default())
        .expect("the compiled encoder loads");
    drop(compiled);
    let (cos, diff) = common::assert_parity(&from_compiled);
    println!("compiled: worst cosine {cos}, worst max abs diff {diff}");
    let from_onnx = common::real_encoder(EncoderConfig::default());
    assert_eq!(from_compiled.sha256(), from_onnx.sha256());
    let texts = [
        "turn off the kitchen lights",
        "",
        "请把客厅的灯关掉 🔥",
        &"word ".repeat(200),
    ];
    let batch = from_onnx.tokenize(&texts).unwrap();
    assert_eq!(
        from_compiled.hidden_states(&batch).unwrap(),
        from_onnx.hidden_states(&batch).unwrap(),
        "bit for bit"
    );
}

/// The optional smaller encoder file (`--word-embeddings 4bit`): the word
/// embeddings in 4 bits in groups of 32. The file shrinks by a fifth, the
/// compiled file and the ONNX file built with the option give the same
/// vectors bit for bit (on every target: the levels decode to int8 in
/// integers), and those stay within cosine 0.99 of the int8 model's.
#[test]
fn four_bit_word_embeddings_shrink_the_file_and_keep_the_vectors() {
    let (model, tokenizer) = common::real_model();
    let four_bit = Some(localtune::encoder::four_bit::DEFAULT_GROUP);
    let int8_file = Encoder::compile(&model).unwrap();
    let four_bit_file = Encoder::compile_with(
        &model,
        &localtune::CompileOptions {
            word_embeddings_4bit: four_bit,
        },
    )
    .unwrap();
    assert!(
        four_bit_file.len() < int8_file.len() * 4 / 5,
        "{} bytes against int8's {}",
        four_bit_file.len(),
        int8_file.len()
    );
    let texts: Vec<String> = common::fixture().cases.iter().map(|c| c.text()).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let int8 = Encoder::from_compiled(&int8_file, &tokenizer, EncoderConfig::default()).unwrap();
    drop(int8_file);
    let int8_vectors = int8.embed(&texts).unwrap();
    let int8_identity = int8.sha256().to_string();
    drop(int8);

    let compiled = Encoder::from_compiled(&four_bit_file, &tokenizer, EncoderConfig::default())
        .expect("a 4-bit file loads without being told");
    let batch = compiled.tokenize(&texts).unwrap();
    let compiled_states = compiled.hidden_states(&batch).unwrap();
    let vectors = compiled.embed(&texts).unwrap();
    let identity = compiled.sha256().to_string();
    drop(compiled);
    assert_ne!(identity, int8_identity, "other vectors, another identity");
    for (i, text) in texts.iter().enumerate() {
        let cos = common::cosine(vectors.row(i), int8_vectors.row(i));
        assert!(cos >= 0.99, "{text:?}: cosine {cos} to the int8 model");
    }
    let err = Encoder::from_compiled(
        &four_bit_file,
        &tokenizer,
        EncoderConfig {
            word_embeddings_4bit: Some(64),
            ..EncoderConfig::default()
        },
    )
    .expect_err("a config that disagrees with the file");
    assert_eq!(err.code(), "ConfigError", "{err}");
    drop(four_bit_file);

    let from_onnx = common::real_encoder(EncoderConfig {
        word_embeddings_4bit: four_bit,
        ..EncoderConfig::default()
    });
    assert_eq!(from_onnx.sha256(), identity);
    assert_eq!(
        from_onnx.hidden_states(&batch).unwrap(),
        compiled_states,
        "bit for bit"
    );
}

/// The tokenizer.json reader (a WordPiece vocabulary parsed once) against
/// the `tokenizers` crate's own, on every sentence of the intents dataset
/// and on texts made to find differences: the same ids.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn the_tokenizer_reader_tokenizes_as_the_tokenizers_crate_does() {
    use localtune::encoder::read_tokenizer_json;
    let (_, json) = common::real_model();
    let ours = read_tokenizer_json(&json).unwrap();
    let theirs = tokenizers::Tokenizer::from_bytes(&json).unwrap();
    let csv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bench/data/home-assistant-intents-en.csv"
    );
    let mut texts: Vec<String> = csv::Reader::from_path(csv)
        .unwrap()
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();
    assert!(texts.len() > 5000, "{} texts", texts.len());
    texts.extend(
        [
            "",
            "   ",
            "[CLS] [SEP] [PAD] [MASK] [UNK] [cls]",
            "請把客厅的灯关掉 🔥 naïve café Ünïcödé",
            "supercalifragilisticexpialidocious antidisestablishmentarianism",
            &"x".repeat(150),
            &"word ".repeat(600),
            "Turn OFF the Lights!!! ...?",
            "\u{0}\t\n\r\u{200b}",
        ]
        .map(String::from),
    );
    for text in &texts {
        for special in [true, false] {
            let a = ours.encode(text.as_str(), special).unwrap();
            let b = theirs.encode(text.as_str(), special).unwrap();
            assert_eq!(a.get_ids(), b.get_ids(), "{text:?}");
            assert_eq!(a.get_type_ids(), b.get_type_ids(), "{text:?}");
            assert_eq!(a.get_attention_mask(), b.get_attention_mask(), "{text:?}");
        }
    }
    assert_eq!(ours.get_vocab(true), theirs.get_vocab(true));
    assert_eq!(
        ours.get_added_tokens_decoder(),
        theirs.get_added_tokens_decoder()
    );
    // Neither type compares; their debug forms do.
    let debug =
        |t: &tokenizers::Tokenizer| format!("{:?} {:?}", t.get_padding(), t.get_truncation());
    assert_eq!(debug(&ours), debug(&theirs));
}
