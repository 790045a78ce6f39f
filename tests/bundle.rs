//! The model bundle natively with the tiny encoder: manifest checks (each
//! error names its field), which files a loader fetches and reads, and the
//! bundle tool. The same checks run in the browser in
//! tests/js/classifier.test.mjs.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::HashMap;
use std::ops::ControlFlow;

use common::tiny_bundle::{block_on, bundle_files, load, LABELS, TRAINING};
use localtune::bundle::{Bundle, BundleFile, Rehearsal};
use localtune::classifier::Classifier;
use localtune::head::personal::nearest_rehearsal_similarity;
use localtune::store::memory::MemoryBackend;
use localtune::store::{sha256_hex, StorePolicy};
use localtune::{Encoder, HeadArchitecture, UpdateConfig};

fn with_manifest(change: impl FnOnce(&mut serde_json::Value)) -> HashMap<String, Vec<u8>> {
    let mut files = bundle_files();
    let mut m: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    change(&mut m);
    files.insert("manifest.json".into(), serde_json::to_vec(&m).unwrap());
    files
}

type ManifestChange = Box<dyn FnOnce(&mut serde_json::Value)>;

/// Loads a bundle and says which files were read.
fn load_reading(files: HashMap<String, Vec<u8>>) -> (localtune::Result<Bundle>, Vec<String>) {
    let mut files = files;
    let manifest = files.remove("manifest.json").unwrap();
    let mut read = Vec::new();
    let bundle = Bundle::load(&manifest, &mut |name| {
        read.push(name.to_string());
        files.get(name).cloned()
    });
    (bundle, read)
}

/// The bundle with its compiled encoder replaced by `compiled` (and the
/// manifest's sha256 of it updated).
fn with_compiled(compiled: Vec<u8>) -> HashMap<String, Vec<u8>> {
    replace_compiled(bundle_files(), compiled)
}

/// `files` (a bundle) with its compiled encoder replaced, likewise.
fn replace_compiled(
    mut files: HashMap<String, Vec<u8>>,
    compiled: Vec<u8>,
) -> HashMap<String, Vec<u8>> {
    let mut manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    manifest["encoder"]["compiled"]["sha256"] = sha256_hex(&compiled).into();
    files.insert("encoder.compiled.tar".into(), compiled);
    files.insert(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    files
}

#[test]
fn a_bundle_loads_its_compiled_encoder_and_not_the_onnx_file() {
    let (bundle, read) = load_reading(bundle_files());
    let bundle = bundle.unwrap();
    assert!(
        read.contains(&"encoder.compiled.tar".to_string()),
        "{read:?}"
    );
    assert!(!read.contains(&"encoder.onnx".to_string()), "{read:?}");
    assert_eq!(bundle.encoder.sha256(), sha256_hex(common::TINY_ENCODER));
    // So the ONNX file may be left out of what an app fetches.
    let mut files = bundle_files();
    files.remove("encoder.onnx");
    load(files).unwrap();
}

#[test]
fn a_sha256_the_loader_computed_is_checked_like_one_computed_here() {
    // A browser loader hands over WebCrypto's digests (`BundleFile::sha256`);
    // the manifest decides either way.
    let load_with = |digest: &dyn Fn(&str, &[u8]) -> String| {
        let mut files = bundle_files();
        let manifest = files.remove("manifest.json").unwrap();
        Bundle::load_files(&manifest, &mut |name| {
            let bytes = files.get(name)?.clone();
            let sha256 = Some(digest(name, &bytes));
            Some(BundleFile { bytes, sha256 })
        })
    };
    load_with(&|_, bytes| sha256_hex(bytes)).unwrap();
    let wrong = "0".repeat(64);
    let refused = load_with(&|name, bytes| {
        if name == "head.bin" {
            wrong.clone()
        } else {
            sha256_hex(bytes)
        }
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        refused.contains(&format!(
            "head.sha256: \"head.bin\" has sha256 {wrong}; the manifest says"
        )),
        "{refused}"
    );
}

#[test]
fn a_compiled_encoder_this_build_cannot_load_falls_back_to_the_onnx_file() {
    let compiled = Encoder::compile(common::TINY_ENCODER).unwrap();
    let other_tract = common::with_compiled_header(&compiled, |h| {
        h["tractVersion"] = "0.0.1".into();
    });
    let (bundle, read) = load_reading(with_compiled(other_tract.clone()));
    assert_eq!(
        bundle.unwrap().encoder.sha256(),
        sha256_hex(common::TINY_ENCODER)
    );
    assert!(read.contains(&"encoder.onnx".to_string()), "{read:?}");
    // Without the ONNX file, the error says which file is missing.
    let mut files = with_compiled(other_tract);
    files.remove("encoder.onnx");
    assert_eq!(
        bundle_error(files),
        "bundle: encoder: the file \"encoder.onnx\" is missing"
    );
}

#[test]
fn a_compiled_encoder_from_another_model_or_damaged_is_refused() {
    let compiled = Encoder::compile(common::TINY_ENCODER).unwrap();
    let other_model = common::with_compiled_header(&compiled, |h| {
        h["sourceSha256"] = "ab".repeat(32).into();
    });
    let msg = bundle_error(with_compiled(other_model));
    assert!(
        msg.starts_with("bundle: encoder.compiled: \"encoder.compiled.tar\" was compiled from the encoder with sha256 abab"),
        "{msg}"
    );
    let mut files = bundle_files();
    files.get_mut("encoder.compiled.tar").unwrap()[600] ^= 1;
    assert!(bundle_error(files)
        .starts_with("bundle: encoder.compiled.sha256: \"encoder.compiled.tar\" has sha256 "));
    let msg = bundle_error(with_compiled(b"not a tar at all".to_vec()));
    assert!(
        msg.starts_with(
            "bundle: encoder.compiled: the encoder model file is not valid: \
             not a compiled localtune encoder"
        ),
        "{msg}"
    );
}

fn bundle_error(files: HashMap<String, Vec<u8>>) -> String {
    match load(files) {
        Ok(_) => panic!("the bundle loaded"),
        Err(e) => {
            assert_eq!(e.code(), "BundleError", "{e}");
            e.to_string()
        }
    }
}

#[test]
fn a_bundle_loads_and_every_misfit_names_its_field() {
    let bundle = load(bundle_files()).unwrap();
    assert_eq!(bundle.head.labels(), LABELS);
    assert_eq!(bundle.rehearsal.labels.len(), TRAINING.len());

    let mut files = bundle_files();
    files.get_mut("head.bin").unwrap()[20] ^= 1;
    assert!(bundle_error(files).starts_with("bundle: head.sha256: \"head.bin\" has sha256 "));
    let mut files = bundle_files();
    files.remove("tokenizer.json");
    assert_eq!(
        bundle_error(files),
        "bundle: tokenizer: the file \"tokenizer.json\" is missing"
    );
    let cases: Vec<(ManifestChange, &str)> = vec![
        (
            Box::new(|m| m["schemaVersion"] = 2.into()),
            "bundle: schemaVersion: 2 is not supported",
        ),
        (
            Box::new(|m| {
                m.as_object_mut().unwrap().remove("schemaVersion");
            }),
            "bundle: schemaVersion: missing",
        ),
        (
            Box::new(|m| m["encoder"]["featureSize"] = 384.into()),
            "bundle: encoder.featureSize: the manifest says 384; the encoder outputs 8",
        ),
        (
            Box::new(|m| m["labels"] = serde_json::json!(["music", "lights", "weather"])),
            "bundle: labels: differ from the head file's labels",
        ),
        (
            Box::new(|m| m["training"]["defaults"]["learningRate"] = 5.0.into()),
            "bundle: training.defaults: invalid configuration: learningRate must be in [0.0001, 1]",
        ),
        (
            Box::new(|m| m["training"]["defaults"]["epochs"] = 0.into()),
            "bundle: training.defaults: invalid configuration: epochs must be in [1, 100000]",
        ),
        (
            Box::new(|m| m["head"]["updatableLayers"] = serde_json::json!(["hidden"])),
            "bundle: head.updatableLayers: \"hidden\" is not a layer of this head",
        ),
        (
            Box::new(|m| {
                m["head"]["architecture"] = serde_json::json!({"kind": "mlp", "hidden": 4})
            }),
            "bundle: head.architecture: the manifest says Mlp { hidden: 4 }; the head file is Linear",
        ),
        (
            Box::new(|m| m["head"]["updatableLayers"] = serde_json::json!([])),
            "bundle: head.updatableLayers: must include \"output\"",
        ),
        (
            Box::new(|m| m["encoder"]["normalize"] = false.into()),
            "bundle: encoder.normalize: only L2-normalised",
        ),
        (
            Box::new(|m| m["encoder"]["maxSeqLen"] = 1.into()),
            "bundle: encoder.maxSeqLen: must be in [2, 512]",
        ),
        (
            Box::new(|m| m["encoder"]["pooling"] = "max".into()),
            "bundle: manifest.json: unknown variant `max`",
        ),
        (
            Box::new(|m| m["extra"] = 1.into()),
            "bundle: manifest.json: unknown field `extra`",
        ),
        (
            Box::new(|m| m["training"]["autoUpdateThreshold"] = 0.into()),
            "bundle: training.autoUpdateThreshold: must be at least 1",
        ),
        // File names that would fetch from elsewhere than the bundle's folder.
        (
            Box::new(|m| m["head"]["file"] = "https://elsewhere.example/head.bin".into()),
            "bundle: head.file: \"https://elsewhere.example/head.bin\" has ':'",
        ),
        (
            Box::new(|m| m["tokenizer"]["file"] = "//elsewhere.example/t.json".into()),
            "bundle: tokenizer.file: \"//elsewhere.example/t.json\" must stay in the manifest's folder",
        ),
        (
            Box::new(|m| m["encoder"]["file"] = "/encoder.onnx".into()),
            "bundle: encoder.file: \"/encoder.onnx\" must stay in the manifest's folder",
        ),
        (
            Box::new(|m| m["head"]["file"] = "models/../../head.bin".into()),
            "bundle: head.file: \"models/../../head.bin\" must stay in the manifest's folder",
        ),
        (
            Box::new(|m| m["head"]["file"] = "%2e%2e/head.bin".into()),
            "bundle: head.file: \"%2e%2e/head.bin\" has '%'",
        ),
        (
            Box::new(|m| m["training"]["rehearsal"]["file"] = "r\\..\\x.bin".into()),
            "bundle: training.rehearsal.file: \"r\\\\..\\\\x.bin\" has '\\\\'",
        ),
        (
            Box::new(|m| {
                m["training"]["allowed"]["epochs"] = serde_json::json!({"min": 5, "max": 1})
            }),
            "bundle: training.defaults: bundle: epochs: min 5 is above max 1",
        ),
    ];
    for (change, expected) in cases {
        let message = bundle_error(with_manifest(change));
        assert!(
            message.starts_with(expected),
            "{message}\n  expected to start with: {expected}"
        );
    }
    // A rehearsal file of the wrong width.
    let mut files = bundle_files();
    let wide = Rehearsal {
        dim: 9,
        features: vec![0.1; 9],
        labels: vec![0],
        nearest: Vec::new(),
    }
    .encode();
    let mut m: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    m["training"]["rehearsal"]["sha256"] = sha256_hex(&wide).into();
    files.insert("rehearsal.bin".into(), wide);
    files.insert("manifest.json".into(), serde_json::to_vec(&m).unwrap());
    assert_eq!(
        bundle_error(files),
        "bundle: training.rehearsal: vectors have 9 values; features have 8"
    );
    assert_eq!(
        bundle_error(HashMap::from([("manifest.json".into(), b"{".to_vec())]))
            .split(':')
            .take(2)
            .collect::<Vec<_>>(),
        ["bundle", " manifest.json"]
    );
}

#[test]
fn the_bundle_tool_trains_reports_and_writes_a_bundle_that_loads() {
    let dir = std::env::temp_dir().join(format!("localtune-bundle-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("data.csv");
    let mut rows = String::from("text,label,split\n");
    for (i, (text, label)) in TRAINING.iter().chain(TRAINING.iter()).enumerate() {
        rows.push_str(&format!(
            "\"{text}, {i}\",{label},{}\n",
            if i >= TRAINING.len() { "test" } else { "train" }
        ));
    }
    std::fs::write(&csv, rows).unwrap();
    let encoder = dir.join("encoder.onnx");
    let tokenizer = dir.join("tokenizer.json");
    std::fs::write(&encoder, common::TINY_ENCODER).unwrap();
    std::fs::write(&tokenizer, common::TINY_TOKENIZER).unwrap();
    let out = dir.join("bundle");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_localtune-bundle"))
            .args([
                "--encoder",
                encoder.to_str().unwrap(),
                "--tokenizer",
                tokenizer.to_str().unwrap(),
            ])
            .args([
                "--data",
                csv.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = run(&[
        "--split-column",
        "split",
        "--epochs",
        "40",
        "--architecture",
        "mlp:16",
    ]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("read 18 rows, 3 labels"), "{stdout}");
    assert!(
        stdout.contains("held-out accuracy: ") && stdout.contains(" / 9 samples)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(3 labels, 9 rehearsal vectors)"),
        "3 training rows per label, all kept: {stdout}"
    );
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    let bundle = Bundle::load(&manifest, &mut |f| std::fs::read(out.join(f)).ok()).unwrap();
    assert_eq!(
        bundle.head.architecture(),
        HeadArchitecture::Mlp { hidden: 16 }
    );
    assert_eq!(bundle.manifest.head.updatable_layers, ["hidden", "output"]);
    // The rehearsal vectors come with their nearest similarities, so a
    // classifier need not compute them as it opens.
    assert_eq!(
        bundle.rehearsal.nearest,
        nearest_rehearsal_similarity(&bundle.rehearsal.features, bundle.rehearsal.dim)
    );

    // A bundle whose hidden layer stays fixed on the device.
    let frozen = run(&[
        "--split-column",
        "split",
        "--epochs",
        "40",
        "--architecture",
        "mlp:16",
        "--freeze-hidden",
        "yes",
    ]);
    assert!(
        frozen.status.success(),
        "{}",
        String::from_utf8_lossy(&frozen.stderr)
    );
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    let bundle = Bundle::load(&manifest, &mut |f| std::fs::read(out.join(f)).ok()).unwrap();
    assert_eq!(bundle.manifest.head.updatable_layers, ["output"]);
    let shipped_hidden = bundle.head.layers()[0].clone();
    let p = block_on(Classifier::open(
        bundle,
        MemoryBackend::new(),
        StorePolicy::default(),
        0.0,
    ))
    .unwrap();
    let door_texts = [
        "open the garage door",
        "close the garage door",
        "lock the door",
        "unlock the garage",
    ];
    // The shipped labels the door texts are given, before any correction.
    let displaced: Vec<usize> = p
        .predict(&door_texts)
        .unwrap()
        .iter()
        .map(|prediction| p.bundle().head.label_index(&prediction.label).unwrap())
        .collect();
    for (i, text) in door_texts.iter().enumerate() {
        block_on(p.add_feedback(text, "doors", i as f64)).unwrap();
    }
    block_on(p.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    let newest = block_on(p.store().versions())
        .unwrap()
        .last()
        .unwrap()
        .version;
    let (_, trained) = block_on(p.store().load_version(newest)).unwrap();
    assert_eq!(
        trained.layers()[0],
        shipped_hidden,
        "the hidden layer did not move"
    );
    // The output layer learned "doors"; of the shipped labels, only those
    // the door texts were given learned (giving way to "doors"), every
    // other row is exactly as shipped.
    let (out, shipped_out) = (&trained.layers()[1], &p.bundle().head.layers()[1]);
    let doors = trained.label_index("doors").unwrap();
    assert_eq!(doors, shipped_out.outputs);
    assert!(out.row(doors).iter().any(|&w| w != 0.0));
    for label in 0..shipped_out.outputs {
        assert_eq!(
            out.row(label) != shipped_out.row(label),
            displaced.contains(&label),
            "row of {}",
            p.bundle().head.labels()[label]
        );
    }

    let bad = run(&["--label-column", "intent"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no column \"intent\""));
    let bad = run(&["--architecture", "deep"]);
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("--architecture: \"deep\" is neither linear nor mlp:H"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_loader_fetches_the_onnx_file_only_without_a_loadable_compiled_encoder() {
    let files = bundle_files();
    let manifest = localtune::bundle::parse_manifest(&files["manifest.json"]).unwrap();
    assert_eq!(
        manifest.compiled_encoder_file(),
        Some("encoder.compiled.tar")
    );
    let rest = ["tokenizer.json", "head.bin", "rehearsal.bin"];
    assert_eq!(
        manifest.files_to_fetch(Some(&files["encoder.compiled.tar"])),
        rest
    );
    let with_onnx = |compiled: Option<&[u8]>| {
        let mut expected = vec!["encoder.onnx"];
        expected.extend(rest);
        assert_eq!(manifest.files_to_fetch(compiled), expected);
    };
    with_onnx(None);
    with_onnx(Some(b"not a compiled encoder"));
    with_onnx(Some(common::TINY_ENCODER));
    // A bundle without a compiled encoder or rehearsal vectors.
    let mut plain = manifest.clone();
    plain.encoder.compiled = None;
    plain.training.rehearsal = None;
    assert_eq!(plain.compiled_encoder_file(), None);
    assert_eq!(
        plain.files_to_fetch(None),
        ["encoder.onnx", "tokenizer.json", "head.bin"]
    );
}

#[test]
fn the_bundle_cache_keeps_each_file_by_its_sha256_and_forgets_what_a_new_version_dropped() {
    use localtune::bundle::cache::{cache_name, file_key, retry_from_network, stale_keys};
    let files = bundle_files();
    let manifest = localtune::bundle::parse_manifest(&files["manifest.json"]).unwrap();
    // Every file the manifest names, each with the sha256 of its bytes.
    let refs = manifest.file_refs();
    let mut names: Vec<&str> = refs.iter().map(|(name, _)| *name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "encoder.compiled.tar",
            "encoder.onnx",
            "head.bin",
            "rehearsal.bin",
            "tokenizer.json"
        ]
    );
    for (name, sha256) in &refs {
        assert_eq!(manifest.sha256_of(name), Some(*sha256));
        assert_eq!(
            *sha256,
            localtune::store::sha256_hex(&files[*name]),
            "{name}"
        );
    }
    // A refused bundle is fetched again from the network once, and only if
    // some of it came from the cache.
    assert!(retry_from_network(0, true));
    assert!(!retry_from_network(0, false));
    assert!(!retry_from_network(1, true));
    assert_eq!(manifest.sha256_of("other.bin"), None);
    assert_ne!(
        cache_name("https://a.test/m.json"),
        cache_name("https://b.test/m.json")
    );

    // A new version changes the head: the old head's entry goes, the
    // manifest's own and the unchanged files' stay.
    let url = "https://app.test/bundles/default/manifest.json";
    let mut cached: Vec<String> = refs.iter().map(|(_, sha)| file_key(sha)).collect();
    cached.push(url.into());
    let old_head = file_key(&manifest.head.sha256);
    let mut next = manifest.clone();
    next.head.sha256 = "f".repeat(64);
    assert_eq!(stale_keys(&cached, url, &next), [old_head]);
    assert!(stale_keys(&cached, url, &manifest).is_empty());
}

#[test]
fn build_embeds_trains_scores_and_assembles_a_bundle_that_loads() {
    use localtune::bundle::build::{build, BuildOptions, BuildProgress, LabelledText};
    let rows = |held_out_every: usize| -> Vec<LabelledText> {
        TRAINING
            .iter()
            .chain(TRAINING.iter())
            .enumerate()
            .map(|(i, (text, label))| LabelledText {
                text: format!("{text}, {i}"),
                label: label.to_string(),
                held_out: held_out_every > 0 && i % held_out_every == 0,
            })
            .collect()
    };
    let options = BuildOptions {
        name: "tiny-built".into(),
        epochs: Some(40),
        rehearsal_per_label: 2,
        ..BuildOptions::default()
    };
    let mut seen = Vec::new();
    let built = build(
        common::TINY_ENCODER,
        common::TINY_TOKENIZER,
        rows(3),
        &options,
        &|| 0.0,
        &mut |p| seen.push(p),
    )
    .unwrap();
    assert_eq!(
        seen[0],
        BuildProgress::Read {
            rows: 18,
            labels: 3,
            held_out: 6
        }
    );
    assert!(seen.contains(&BuildProgress::Embedded {
        done: 18,
        total: 18
    }));
    assert!(seen
        .iter()
        .any(|p| matches!(p, BuildProgress::Trained(t) if t.samples == 12 && t.epochs == 40)));
    assert!(seen
        .iter()
        .any(|p| matches!(p, BuildProgress::HeldOutAccuracy { total: 6, .. })));
    assert_eq!(built.rehearsal_vectors, 6, "2 per label");
    let names: Vec<&str> = built.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "encoder.onnx",
            "encoder.compiled.tar",
            "tokenizer.json",
            "head.bin",
            "rehearsal.bin",
            "shipped-check.bin",
            "manifest.json"
        ]
    );
    let files: HashMap<String, Vec<u8>> = built.files.into_iter().collect();
    let bundle = load(files).unwrap();
    assert_eq!(bundle.manifest.name, "tiny-built");
    assert_eq!(bundle.head.labels(), LABELS);
    // The same inputs build the same bundle, byte for byte.
    let again = build(
        common::TINY_ENCODER,
        common::TINY_TOKENIZER,
        rows(3),
        &options,
        &|| 0.0,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        again.files.last().unwrap().1,
        serde_json::to_vec_pretty(&bundle.manifest).unwrap()
    );

    // Without held-out rows: a seeded 10% of each label (none of 6 rows).
    let mut read = None;
    build(
        common::TINY_ENCODER,
        common::TINY_TOKENIZER,
        rows(0),
        &options,
        &|| 0.0,
        &mut |p| {
            if let BuildProgress::Read { held_out, .. } = p {
                read = Some(held_out)
            }
        },
    )
    .unwrap();
    assert_eq!(read, Some(0));

    let error = |rows: Vec<LabelledText>, options: &BuildOptions| {
        let error = build(
            common::TINY_ENCODER,
            common::TINY_TOKENIZER,
            rows,
            options,
            &|| 0.0,
            &mut |_| {},
        )
        .err()
        .expect("refused");
        assert_eq!(error.code(), "ConfigError", "{error}");
        error.to_string()
    };
    let one_label: Vec<LabelledText> = rows(0).into_iter().filter(|r| r.label == "music").collect();
    assert!(error(one_label, &options).contains("at least 2 labels"));
    let mut blank = rows(0);
    blank[4].label = "  ".into();
    assert!(error(blank, &options).contains("row 5 has an empty label"));
    assert!(error(Vec::new(), &options).contains("no rows"));
    let frozen_linear = BuildOptions {
        freeze_hidden: true,
        ..options.clone()
    };
    assert!(error(rows(0), &frozen_linear).contains("needs an MLP head"));
}

#[test]
fn a_bundle_built_on_more_threads_has_the_same_bytes() {
    use localtune::bundle::build::{build, BuildOptions, LabelledText};
    // 40 copies of the training texts: 360 texts, 12 runs of the encoder.
    let rows: Vec<LabelledText> = (0..40)
        .flat_map(|copy| {
            TRAINING.iter().map(move |(text, label)| LabelledText {
                text: format!("{text} {}", "please ".repeat(copy % 7)),
                label: label.to_string(),
                held_out: false,
            })
        })
        .collect();
    let built = |threads| {
        let options = BuildOptions {
            epochs: Some(5),
            threads,
            ..BuildOptions::default()
        };
        build(
            common::TINY_ENCODER,
            common::TINY_TOKENIZER,
            rows.clone(),
            &options,
            &|| 0.0,
            &mut |_| {},
        )
        .unwrap()
        .files
    };
    let one = built(1);
    for threads in [2, 5, 0] {
        assert!(built(threads) == one, "{threads} threads");
    }
}

/// The bundle tool's shell in memory: files by path, written files by
/// name, printed lines.
#[derive(Default)]
struct MemoryShell {
    inputs: HashMap<String, Vec<u8>>,
    written: std::cell::RefCell<Vec<(String, Vec<u8>)>>,
    printed: std::cell::RefCell<Vec<String>>,
}

impl localtune::bundle::tool::ToolIo for MemoryShell {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.inputs
            .get(path)
            .cloned()
            .ok_or(format!("{path}: no such file"))
    }
    fn write(&self, _dir: &str, name: &str, bytes: &[u8]) -> Result<(), String> {
        self.written
            .borrow_mut()
            .push((name.into(), bytes.to_vec()));
        Ok(())
    }
    fn print(&self, line: &str) {
        self.printed.borrow_mut().push(line.into());
    }
    fn now_ms(&self) -> f64 {
        0.0
    }
}

#[test]
fn the_tool_cut_at_the_embedding_writes_the_same_bundle_from_vectors_made_elsewhere() {
    use localtune::bundle::tool::{prepare, run, ToolIo};
    // What the npm tool's pool does: the tool up to the embedding, the runs
    // embedded by encoders of their own (in reverse order here), the
    // vectors handed back.
    let mut csv = String::from("text,label\n");
    for copy in 0..40 {
        for (text, label) in TRAINING {
            csv.push_str(&format!("{text} {},{label}\n", "please ".repeat(copy % 7)));
        }
    }
    let shell = || MemoryShell {
        inputs: HashMap::from([
            ("e.onnx".to_string(), common::TINY_ENCODER.to_vec()),
            ("t.json".to_string(), common::TINY_TOKENIZER.to_vec()),
            ("d.csv".to_string(), csv.clone().into_bytes()),
        ]),
        ..MemoryShell::default()
    };
    let args: Vec<String> = [
        "--encoder",
        "e.onnx",
        "--tokenizer",
        "t.json",
        "--data",
        "d.csv",
        "--out",
        "b",
        "--epochs",
        "5",
        "--threads",
        "3",
    ]
    .map(String::from)
    .to_vec();

    let whole = shell();
    run(&args, &whole).unwrap();

    let cut = shell();
    let build = prepare(&args, &cut).unwrap().expect("a build, not --help");
    assert_eq!(build.threads(), 3);
    assert_eq!(build.workers(2), 3, "--threads over the cores");
    let one_per_core = prepare(&args[..8], &shell()).unwrap().unwrap();
    assert_eq!(one_per_core.workers(5), 5);
    assert_eq!(one_per_core.workers(64), 8, "a few hundred MB each");
    let many = prepare(
        &[&args[..8], &["--threads".into(), "64".into()]].concat(),
        &shell(),
    );
    assert_eq!(
        many.unwrap().unwrap().workers(2),
        12,
        "no more than the runs"
    );
    assert_eq!(
        cut.printed.borrow().as_slice(),
        ["read 360 rows, 3 labels (36 held out)"]
    );
    let texts: Vec<String> = build.texts().into_iter().map(String::from).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (model, tokenizer, config) = build.encoder();
    let worker = Encoder::from_bytes(model, tokenizer, config).unwrap();
    let dim = worker.dim();
    let mut vectors = vec![f32::NAN; texts.len() * dim];
    let mut done = 0;
    for run in worker.embedding_runs(&refs).unwrap().iter().rev() {
        let run_texts: Vec<&str> = run.iter().map(|&i| refs[i]).collect();
        let run_vectors = worker.embed(&run_texts).unwrap();
        for (k, &i) in run.iter().enumerate() {
            vectors[i * dim..(i + 1) * dim].copy_from_slice(run_vectors.row(k));
        }
        done += run.len();
        if let Some(line) = build.embedded_line(done) {
            cut.print(&line);
        }
    }
    build.finish(Some(&vectors), &cut).unwrap();
    assert!(cut.written.borrow().as_slice() == whole.written.borrow().as_slice());
    // The same lines, but the time in the last.
    let without_time = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l.split(" in ").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        without_time(&cut.printed.borrow()),
        without_time(&whole.printed.borrow())
    );

    // Vectors that do not fit: the tool's error naming the data, nothing
    // written.
    let wrong = shell();
    let build = prepare(&args, &wrong).unwrap().unwrap();
    let error = build.finish(Some(&vectors[dim..]), &wrong).unwrap_err();
    assert_eq!(
        error,
        format!(
            "d.csv: {} values are not 360 rows of {dim}-value vectors",
            359 * dim
        )
    );
    assert!(wrong.written.borrow().is_empty());
    // --help: the usage, and nothing to build.
    let help = shell();
    assert!(prepare(&["--help".to_string()], &help).unwrap().is_none());
    assert!(help.printed.borrow()[0].starts_with("usage: localtune-bundle"));
}

#[test]
fn rehearsal_vectors_are_stored_as_int8_and_the_f32_format_still_reads() {
    // Unit vectors like the encoder's (on its real rehearsal vectors the
    // int8 copies' cosine to the originals is at least 0.99994).
    let dim = 384;
    let rows: Vec<Vec<f32>> = (0..5)
        .map(|r| {
            let v: Vec<f32> = (0..dim)
                .map(|i| ((i * 7 + r * 13) % 23) as f32 - 11.0 + if i == r { 12.0 } else { 0.0 })
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect()
        })
        .collect();
    let rehearsal = Rehearsal {
        dim,
        features: rows.concat(),
        labels: vec![0, 1, 2, 1, 0],
        nearest: Vec::new(),
    };
    let bytes = rehearsal.encode();
    assert_eq!(&bytes[..8], b"LTREHE02");
    assert_eq!(bytes.len(), 16 + 5 * 8 + 5 * dim, "a byte per value");
    let back = Rehearsal::decode(&bytes).unwrap();
    assert_eq!((back.dim, &back.labels), (dim, &rehearsal.labels));
    for (r, row) in rows.iter().enumerate() {
        let got = &back.features[r * dim..(r + 1) * dim];
        let cosine: f32 = row.iter().zip(got).map(|(a, b)| a * b).sum::<f32>()
            / got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(cosine > 0.9999, "row {r}: cosine {cosine}");
    }

    // The first format: f32 values, read exactly.
    let mut f32_file = b"LTREHE01".to_vec();
    f32_file.extend_from_slice(&1u32.to_le_bytes());
    f32_file.extend_from_slice(&2u32.to_le_bytes());
    f32_file.extend_from_slice(&3u32.to_le_bytes());
    for v in [0.6f32, -0.8] {
        f32_file.extend_from_slice(&v.to_le_bytes());
    }
    let old = Rehearsal::decode(&f32_file).unwrap();
    assert_eq!(
        (old.dim, old.labels, old.features),
        (2, vec![3], vec![0.6, -0.8])
    );

    // A header whose sizes multiply past any address space is refused, not
    // wrapped around.
    let mut huge = b"LTREHE02".to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = Rehearsal::decode(&huge).unwrap_err().to_string();
    assert!(
        err.contains("4294967295 rows of 4294967295 values need"),
        "{err}"
    );
    let truncated = &bytes[..bytes.len() - 1];
    assert!(Rehearsal::decode(truncated).is_err());

    // With each row's nearest similarity (what the bundle tool writes): the
    // similarities of the values a bundle reads back, 4 bytes a row more.
    let shipped = rehearsal.clone().with_nearest().unwrap();
    let bytes = shipped.encode();
    assert_eq!(&bytes[..8], b"LTREHE03");
    assert_eq!(bytes.len(), 16 + 5 * 12 + 5 * dim);
    let back = Rehearsal::decode(&bytes).unwrap();
    assert_eq!(back.labels, rehearsal.labels);
    assert_eq!(
        back.nearest,
        nearest_rehearsal_similarity(&back.features, dim),
        "exactly what a classifier would compute from the file"
    );
    assert_eq!(
        back.features,
        Rehearsal::decode(&rehearsal.encode()).unwrap().features
    );
    // A lone row's nearest is -inf, and reads back.
    let lone = Rehearsal {
        features: rows[0].clone(),
        labels: vec![0],
        ..rehearsal.clone()
    }
    .with_nearest()
    .unwrap();
    assert_eq!(lone.nearest, [f32::NEG_INFINITY]);
    assert_eq!(
        Rehearsal::decode(&lone.encode()).unwrap().nearest,
        lone.nearest
    );
    // A nearest similarity that is no cosine (a file damaged, or written
    // by hand with its checksum recomputed) is refused with the reason.
    let nearest_at = 16 + 5 * 8;
    for bad in [f32::NAN, 2.0, -3.0, f32::INFINITY] {
        let mut damaged = bytes.clone();
        damaged[nearest_at + 4..nearest_at + 8].copy_from_slice(&bad.to_le_bytes());
        let err = Rehearsal::decode(&damaged).unwrap_err().to_string();
        assert!(err.contains("is not a cosine"), "{bad}: {err}");
    }
}

#[test]
fn a_bundle_with_4bit_word_embeddings_gives_the_same_vectors_compiled_or_from_onnx() {
    use localtune::bundle::build::{build, BuildOptions, LabelledText};
    use localtune::encoder::encoder_identity;
    let rows: Vec<LabelledText> = TRAINING
        .iter()
        .map(|(text, label)| LabelledText {
            text: text.to_string(),
            label: label.to_string(),
            held_out: false,
        })
        .collect();
    // Groups of 4: the tiny encoder's word table has rows of 8 values.
    let options = BuildOptions {
        name: "tiny-4bit".into(),
        epochs: Some(20),
        rehearsal_per_label: 2,
        word_embeddings_4bit: Some(4),
        ..BuildOptions::default()
    };
    let built = build(
        common::TINY_ENCODER,
        common::TINY_TOKENIZER,
        rows,
        &options,
        &|| 0.0,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(built.manifest.encoder.word_embeddings_4bit, Some(4));
    let files: HashMap<String, Vec<u8>> = built.files.into_iter().collect();
    let (compiled, read) = load_reading(files.clone());
    let compiled = compiled.unwrap();
    assert!(!read.contains(&"encoder.onnx".to_string()), "{read:?}");
    // Its own identity: heads and cached vectors of the int8 encoder are not
    // taken for its own.
    let int8 = sha256_hex(common::TINY_ENCODER);
    assert_eq!(compiled.encoder.sha256(), encoder_identity(&int8, Some(4)));
    assert_ne!(compiled.encoder.sha256(), int8);

    // The ONNX fallback (a compiled file this build cannot load) requantizes
    // the table the same way: the very same vectors.
    let other_tract = common::with_compiled_header(&files["encoder.compiled.tar"], |h| {
        h["tractVersion"] = "0.0.1".into();
    });
    let fallback = replace_compiled(files.clone(), other_tract);
    let (from_onnx, read) = load_reading(fallback);
    let from_onnx = from_onnx.unwrap();
    assert!(read.contains(&"encoder.onnx".to_string()), "{read:?}");
    assert_eq!(from_onnx.encoder.sha256(), compiled.encoder.sha256());
    let texts = [
        "play some jazz",
        "what is the weather",
        "turn on the lights in the hall",
    ];
    let a = compiled.encoder.embed(&texts).unwrap();
    let b = from_onnx.encoder.embed(&texts).unwrap();
    assert_eq!(a, b, "bit for bit");
    let int8_vectors = common::tiny_encoder(Default::default())
        .embed(&texts)
        .unwrap();
    assert_ne!(a, int8_vectors, "4 bits are not int8");

    // A manifest that disagrees with the compiled file is refused by field.
    let mut files_without = files.clone();
    let mut manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    manifest["encoder"]
        .as_object_mut()
        .unwrap()
        .remove("wordEmbeddings4bit");
    files_without.insert(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    assert_eq!(
        bundle_error(files_without),
        "bundle: encoder.wordEmbeddings4bit: \"encoder.compiled.tar\" holds word embeddings \
         4-bit in groups of 4; the manifest says int8"
    );
}
