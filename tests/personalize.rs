//! The model bundle (manifest checks, each with the field it names), the
//! personalizer (feedback, pending count, the validation gate, rehearsal
//! overrides) and the bundle tool, natively with the tiny encoder. The same
//! code runs in the browser in tests/js/classifier.test.mjs with the real
//! encoder and IndexedDB.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::task::{Context, Poll, Waker};

use localtune::bundle::{
    AllowedRanges, Bundle, EncoderSpec, FileRef, HeadSpec, Manifest, Pooling, Rehearsal,
    TrainingInputs, TrainingSpec, SCHEMA_VERSION,
};
use localtune::head::codec;
use localtune::personalize::{rehearsal_rows_to_keep, Personalizer};
use localtune::store::memory::MemoryBackend;
use localtune::store::{sha256_hex, StorePolicy, VersionStatus};
use localtune::{Encoder, Head, HeadArchitecture, UpdateConfig};

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

const LABELS: [&str; 3] = ["lights", "music", "weather"];
const TRAINING: [(&str, &str); 9] = [
    ("turn off the kitchen lights", "lights"),
    ("turn off the bedroom light", "lights"),
    ("living room lights", "lights"),
    ("play music", "music"),
    ("stop the music", "music"),
    ("pause music", "music"),
    ("weather today", "weather"),
    ("weather tomorrow", "weather"),
    ("what is the weather", "weather"),
];

/// A bundle of the tiny encoder with a head trained on `TRAINING`, as files.
fn bundle_files() -> HashMap<String, Vec<u8>> {
    let encoder = common::tiny_encoder(Default::default());
    let texts: Vec<&str> = TRAINING.iter().map(|t| t.0).collect();
    let vectors = encoder.embed(&texts).unwrap();
    let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
    let indices: Vec<usize> = TRAINING
        .iter()
        .map(|t| LABELS.iter().position(|l| *l == t.1).unwrap())
        .collect();
    let start =
        Head::new_seeded(encoder.dim(), HeadArchitecture::Linear, labels.clone(), 0).unwrap();
    let head = localtune::run_update(
        &start,
        None,
        localtune::TrainingSet {
            features: vectors.as_slice(),
            labels: &indices,
        },
        &UpdateConfig::default(),
        &|| 0.0,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap()
    .head;
    let rehearsal = Rehearsal {
        dim: encoder.dim(),
        features: vectors.as_slice().to_vec(),
        labels: indices.iter().map(|&i| i as u32).collect(),
    };
    let mut files = HashMap::new();
    let mut add = |name: &str, bytes: Vec<u8>| {
        let r = FileRef {
            file: name.into(),
            sha256: sha256_hex(&bytes),
        };
        files.insert(name.to_string(), bytes);
        r
    };
    let enc = add("encoder.onnx", common::TINY_ENCODER.to_vec());
    let compiled = add(
        "encoder.compiled.tar",
        Encoder::compile(common::TINY_ENCODER).unwrap(),
    );
    let tok = add("tokenizer.json", common::TINY_TOKENIZER.to_vec());
    let head_file = add("head.bin", codec::encode(&head));
    let rehearsal_file = add("rehearsal.bin", rehearsal.encode());
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        name: "tiny".into(),
        version: "1".into(),
        description: String::new(),
        encoder: EncoderSpec {
            file: enc.file,
            sha256: enc.sha256,
            pooling: Pooling::Mean,
            normalize: true,
            max_seq_len: 128,
            feature_size: encoder.dim(),
            compiled: Some(compiled),
        },
        tokenizer: tok,
        labels,
        head: HeadSpec {
            file: head_file.file,
            sha256: head_file.sha256,
            architecture: HeadArchitecture::Linear,
            updatable_layers: vec!["output".into()],
        },
        training: TrainingSpec {
            inputs: TrainingInputs::FeatureVectors,
            defaults: UpdateConfig::default(),
            allowed: AllowedRanges::default(),
            auto_update_threshold: 5,
            validation_gate_fraction: 0.2,
            rehearsal: Some(rehearsal_file),
        },
    };
    files.insert(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    files
}

fn load(mut files: HashMap<String, Vec<u8>>) -> localtune::Result<Bundle> {
    let manifest = files.remove("manifest.json").unwrap();
    Bundle::load(&manifest, &mut |name| files.get(name).cloned())
}

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
    let mut files = bundle_files();
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

fn open() -> Personalizer<MemoryBackend> {
    block_on(Personalizer::open(
        load(bundle_files()).unwrap(),
        MemoryBackend::new(),
        StorePolicy::default(),
        0.0,
    ))
    .unwrap()
}

#[test]
fn feedback_counts_as_pending_until_an_update_learns_it() {
    let p = open();
    assert_eq!(p.current_version().status, VersionStatus::Shipped);
    assert_eq!(
        p.predict(&["turn off the kitchen lights"]).unwrap()[0].label,
        "lights"
    );
    let texts = [
        "open the garage door",
        "close the garage door",
        "lock the door",
        "unlock the garage",
        "open the door",
        "close the door",
    ];
    for (i, text) in texts.iter().enumerate() {
        let feedback = block_on(p.add_feedback(text, "doors", i as f64)).unwrap();
        assert_eq!(feedback.pending, i + 1);
    }
    assert_eq!(
        block_on(p.add_feedback("", "doors", 9.0))
            .unwrap_err()
            .code(),
        "InvalidSampleError"
    );
    let report = block_on(p.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert!(report.accepted, "{}", report.gate);
    assert_eq!(report.held_out_samples, 1, "20% of 6 doors samples");
    assert_eq!(report.user_samples, 5);
    assert_eq!(report.candidate_accuracy, Some(1.0));
    assert_eq!(
        report.current_accuracy,
        Some(0.0),
        "the shipped head has no doors label"
    );
    assert_eq!(report.version.parent, Some(1));
    assert_eq!(report.version.trained_through_sample, Some(6));
    assert_eq!(report.version.metrics.gate_samples, Some(1));
    assert_eq!(p.current_version().version, report.version.version);
    assert_eq!(block_on(p.pending_count()).unwrap(), 0);
    assert_eq!(p.predict(&["open the garage"]).unwrap()[0].label, "doors");
    // The labels nobody corrected are still there, thanks to rehearsal.
    assert_eq!(p.predict(&["weather today"]).unwrap()[0].label, "weather");
    assert_eq!(p.predict(&["play music"]).unwrap()[0].label, "music");

    // Moved to another profile: same predictions; the imported samples
    // have no vectors until the next update embeds them, in batches.
    let file = block_on(p.store().export(1.0)).unwrap();
    let q = open();
    block_on(q.import(&file, 2.0)).unwrap();
    assert_eq!(q.current_version(), p.current_version());
    assert_eq!(
        q.predict(&["open the garage"]).unwrap(),
        p.predict(&["open the garage"]).unwrap()
    );
    assert_eq!(
        block_on(q.store().training_data()).unwrap().missing.len(),
        6
    );
    block_on(q.add_feedback("lock the garage", "doors", 20.0)).unwrap();
    let report = block_on(q.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert_eq!(report.user_samples + report.held_out_samples, 7);
    assert!(block_on(q.store().training_data())
        .unwrap()
        .missing
        .is_empty());
}

#[test]
fn a_candidate_worse_than_the_current_head_is_kept_but_rejected() {
    let p = open();
    let doors = [
        "open the garage door",
        "close the garage door",
        "lock the door",
        "unlock the garage",
        "open the door",
        "close the door",
        "lock the garage door",
        "unlock the door",
        "open the garage",
        "close the garage",
    ];
    for (i, text) in doors.iter().enumerate() {
        block_on(p.add_feedback(text, "doors", i as f64)).unwrap();
    }
    let good = block_on(p.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert!(good.accepted);
    block_on(p.add_feedback("lock the garage", "doors", 10.0)).unwrap();
    // One tiny step from the shipped head cannot learn "doors".
    let weak = UpdateConfig {
        epochs: 1,
        learning_rate: 1e-4,
        ..UpdateConfig::default()
    };
    let report = block_on(p.update(&weak, &|| 0.0, &mut |_| ControlFlow::Continue(()))).unwrap();
    assert!(!report.accepted, "{}", report.gate);
    assert!(
        report
            .gate
            .starts_with("rejected: 0.0% on 2 held-out samples, below the current head's"),
        "{}",
        report.gate
    );
    assert_eq!(report.candidate_accuracy, Some(0.0));
    assert!(report.current_accuracy > Some(0.0));
    assert_eq!(report.version.status, VersionStatus::Rejected);
    assert_eq!(
        p.current_version().version,
        good.version.version,
        "the current head stays"
    );
    assert_eq!(block_on(p.pending_count()).unwrap(), 1);
    // Settings outside the bundle's ranges are refused before training.
    let wild = UpdateConfig {
        epochs: 1000,
        ..UpdateConfig::default()
    };
    let err = block_on(p.update(&wild, &|| 0.0, &mut |_| ControlFlow::Continue(()))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: epochs must be in [1, 500] for this bundle; found 1000"
    );
}

#[test]
fn an_update_without_feedback_says_so() {
    let p = open();
    let err = block_on(p.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap_err();
    assert_eq!(err.code(), "TrainingError");
    assert!(err.to_string().contains("no feedback"), "{err}");
}

#[test]
fn corrections_override_only_the_rehearsal_rows_they_sit_closest_to() {
    let e = |x: f32, y: f32| {
        let n = (x * x + y * y).sqrt();
        [x / n, y / n]
    };
    // Two shipped labels: 0 around (1, 0), 1 around (0, 1).
    let rows = [e(1.0, 0.1), e(1.0, -0.1), e(0.1, 1.0), e(-0.1, 1.0)];
    let features: Vec<f32> = rows.iter().flatten().copied().collect();
    let labels = [0, 0, 1, 1];
    // The user relabels the label-0 region as label 2.
    let user = [e(1.0, 0.0), e(1.0, 0.05)];
    let user: Vec<(&[f32], usize)> = user.iter().map(|u| (u.as_slice(), 2)).collect();
    assert_eq!(rehearsal_rows_to_keep(&features, &labels, 2, &user), [2, 3]);
    // Corrections that agree with the shipped label override nothing.
    let agreeing: Vec<(&[f32], usize)> = user.iter().map(|(u, _)| (*u, 0)).collect();
    assert_eq!(
        rehearsal_rows_to_keep(&features, &labels, 2, &agreeing),
        [0, 1, 2, 3]
    );
    assert_eq!(
        rehearsal_rows_to_keep(&features, &labels, 2, &[]),
        [0, 1, 2, 3]
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
    let p = block_on(Personalizer::open(
        bundle,
        MemoryBackend::new(),
        StorePolicy::default(),
        0.0,
    ))
    .unwrap();
    for (i, text) in [
        "open the garage door",
        "close the garage door",
        "lock the door",
        "unlock the garage",
    ]
    .iter()
    .enumerate()
    {
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
    assert_ne!(
        trained.layers()[1].weights[..16],
        p.bundle().head.layers()[1].weights[..16]
    );

    let bad = run(&["--label-column", "intent"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no column \"intent\""));
    let bad = run(&["--architecture", "deep"]);
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("--architecture: \"deep\" is neither linear nor mlp:H"));
    std::fs::remove_dir_all(&dir).unwrap();
}
