//! The package's TypeScript types are written by hand in the wasm layer's
//! `typescript_custom_section`s (src/wasm/*.rs); this test fails when one of
//! them and the Rust type it describes disagree on a field name — at the
//! top level and in inline object types (`metrics: { … }`). Each Rust value
//! is serialised the way the binding sends it (serde, camelCase) and its
//! keys are compared with the interface's members.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeMap, BTreeSet};

use localtune::classifier::options::ClassifierOptions;
use localtune::classifier::{Feedback, Prediction, Stats, UpdateReport, UpdateSummary};
use localtune::head::train::{StopReason, UpdateEventKind};
use localtune::head::LabelProbability;
use localtune::store::{
    AddedSample, Sample, SaveDetails, StorePolicy, StoreProblem, VersionInfo, VersionMeta,
    VersionMetrics, VersionStatus,
};
use localtune::{EncoderConfig, Head, HeadArchitecture, UpdateConfig, UpdateEvent, UpdateOutcome};
use serde::Serialize;
use serde_json::Value;

const WASM_SOURCES: [&str; 4] = [
    include_str!("../src/wasm/classifier.rs"),
    include_str!("../src/wasm/head.rs"),
    include_str!("../src/wasm/store.rs"),
    include_str!("../src/wasm/encoder.rs"),
];

/// An interface's members: name → nested members for an inline `{ … }`
/// type (empty otherwise).
#[derive(Debug, Default, PartialEq)]
struct Members(BTreeMap<String, Members>);

/// Every `export interface Name { … }` in the TypeScript sections.
fn interfaces() -> BTreeMap<String, Members> {
    let mut found = BTreeMap::new();
    for source in WASM_SOURCES {
        let mut rest = source;
        while let Some(start) = rest.find("export interface ") {
            rest = &rest[start + "export interface ".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let open = rest.find('{').expect("an interface body");
            let (members, len) = parse_members(&rest[open + 1..]);
            found.insert(name, members);
            rest = &rest[open + 1 + len..];
        }
    }
    found
}

/// Parses members up to the closing brace; returns them and the length
/// consumed (through the brace).
fn parse_members(body: &str) -> (Members, usize) {
    let bytes = body.as_bytes();
    let mut members = Members::default();
    let mut i = 0;
    loop {
        // Separators, white space and comments between members.
        while i < bytes.len() {
            if bytes[i].is_ascii_whitespace() || matches!(bytes[i], b';' | b',') {
                i += 1;
            } else if body[i..].starts_with("/*") {
                i += body[i..].find("*/").expect("a closed comment") + 2;
            } else if body[i..].starts_with("//") {
                i += body[i..].find('\n').unwrap_or(body.len() - i);
            } else {
                break;
            }
        }
        assert!(
            i < bytes.len(),
            "an interface body without its closing brace"
        );
        if bytes[i] == b'}' {
            return (members, i + 1);
        }
        let name: String = body[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        assert!(
            !name.is_empty(),
            "not a member: {}",
            &body[i..(i + 40).min(body.len())]
        );
        i += name.len();
        i += usize::from(bytes.get(i) == Some(&b'?'));
        assert_eq!(bytes.get(i), Some(&b':'), "member {name:?} has no type");
        i += 1;
        let start = i;
        i += type_length(&body[i..]);
        let ty = body[start..i].trim();
        // An inline object type (not a union of them): check its members too.
        let nested = if ty.starts_with('{') && closing_brace(&ty[1..]) + 2 == ty.len() {
            parse_members(&ty[1..]).0
        } else {
            Members::default()
        };
        members.0.insert(name, nested);
    }
}

/// Where the brace that closes an already opened one is.
fn closing_brace(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.bytes().enumerate() {
        match c {
            b'{' => depth += 1,
            b'}' if depth == 0 => return i,
            b'}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// The length of a member's type: up to `;`, `,` or a line end outside
/// brackets, or the enclosing `}`.
fn type_length(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes.get(i + 1) == Some(&b'>') => i += 1,
            b'{' | b'(' | b'[' | b'<' => depth += 1,
            b'}' | b')' | b']' | b'>' if depth == 0 => return i,
            b'}' | b')' | b']' | b'>' => depth -= 1,
            b';' | b',' | b'\n' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    i
}

/// The keys of a serialised value, nested objects included (`nested`
/// names the members whose object value is described inline).
fn keys_of(value: &Value, described: &Members) -> Members {
    let Value::Object(map) = value else {
        panic!("not an object: {value}")
    };
    Members(
        map.iter()
            .map(|(key, value)| {
                let nested = match described.0.get(key) {
                    Some(inline) if !inline.0.is_empty() => keys_of(value, inline),
                    _ => Members::default(),
                };
                (key.clone(), nested)
            })
            .collect(),
    )
}

/// Checks `interface` against `value`'s keys plus `js_only` members (those
/// the binding adds or reads itself: callbacks, signals, storage figures).
fn check<T: Serialize>(
    interfaces: &BTreeMap<String, Members>,
    interface: &str,
    value: &T,
    js_only: &[&str],
) {
    let declared = interfaces
        .get(interface)
        .unwrap_or_else(|| panic!("no TypeScript interface {interface}"));
    let mut actual = keys_of(&serde_json::to_value(value).unwrap(), declared);
    for key in js_only {
        actual.0.insert((*key).into(), Members::default());
    }
    let names = |m: &Members| m.0.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(
        names(declared),
        names(&actual),
        "TypeScript interface {interface} (left) and its Rust type (right) disagree"
    );
    for (key, inline) in &declared.0 {
        if !inline.0.is_empty() {
            assert_eq!(
                names(inline),
                names(&actual.0[key]),
                "{interface}.{key}: TypeScript (left) and Rust (right) disagree"
            );
        }
    }
}

fn outcome() -> UpdateOutcome {
    UpdateOutcome {
        head: Head::new_seeded(2, HeadArchitecture::Linear, vec!["a".into(), "b".into()], 0)
            .unwrap(),
        stop_reason: StopReason::EpochsDone,
        epochs: 1,
        steps: 1,
        training_samples: 1,
        validation_samples: 0,
        train_loss: 0.0,
        train_accuracy: 1.0,
        validation_loss: None,
        validation_accuracy: None,
        best_epoch: 1,
        millis: 1.0,
    }
}

fn version() -> VersionInfo {
    VersionInfo {
        version: 2,
        meta: VersionMeta {
            parent: Some(1),
            status: VersionStatus::Accepted,
            encoder_sha256: "00".into(),
            labels: vec!["a".into()],
            architecture: HeadArchitecture::Linear,
            sample_count: 1,
            trained_through_sample: Some(1),
            metrics: VersionMetrics::default(),
            created_ms: 0.0,
            checksum: "00".into(),
        },
    }
}

#[test]
fn the_typescript_types_name_the_fields_the_rust_types_send_and_read() {
    let ts = interfaces();
    let sample = Sample {
        id: 1,
        text: "t".into(),
        label: "a".into(),
        time_ms: 0.0,
    };
    let probability = LabelProbability {
        label: "a".into(),
        probability: 1.0,
    };
    check(&ts, "Sample", &sample, &[]);
    check(&ts, "VersionInfo", &version(), &[]);
    check(&ts, "LabelProbability", &probability, &[]);
    check(
        &ts,
        "StoreProblem",
        &StoreProblem {
            name: "CorruptRecordError".into(),
            message: "m".into(),
            version: None,
        },
        &[],
    );
    check(&ts, "StoreOptions", &StorePolicy::default(), &[]);
    check(&ts, "SaveOptions", &SaveDetails::default(), &[]);
    check(&ts, "EncoderOptions", &EncoderConfig::default(), &[]);
    check(&ts, "UpdateOptions", &UpdateConfig::default(), &["signal"]);
    check(
        &ts,
        "UpdateEvent",
        &UpdateEvent {
            kind: UpdateEventKind::Began,
            epoch: 0,
            batch: 0,
            step: 0,
            train_loss: 0.0,
            train_accuracy: 0.0,
            validation_loss: None,
            validation_accuracy: None,
        },
        &[],
    );
    check(&ts, "UpdateOutcome", &outcome(), &["head"]);
    check(
        &ts,
        "Prediction",
        &Prediction {
            label: "a".into(),
            probability: 1.0,
            probabilities: vec![probability],
        },
        &[],
    );
    check(
        &ts,
        "Feedback",
        &Feedback {
            added: AddedSample {
                sample,
                evicted: vec![],
            },
            pending: 1,
        },
        &[],
    );
    check(
        &ts,
        "UpdateReport",
        &UpdateReport {
            summary: UpdateSummary {
                accepted: true,
                gate: "g".into(),
                candidate_accuracy: None,
                current_accuracy: None,
                held_out_samples: 0,
                user_samples: 1,
                rehearsal_samples: 0,
                rehearsal_overridden: 0,
                untouched_accuracy: Some(0.9),
                untouched_accuracy_shipped: None,
                untouched_samples: 400,
                outcome: outcome(),
            },
            version: version(),
        },
        &[],
    );
    check(
        &ts,
        "ClassifierStats",
        &Stats {
            sample_count: 1,
            pending_count: 1,
            current_version: version(),
            version_count: 1,
            auto_update_threshold: 50,
        },
        &["storage", "bundleCacheBytes"],
    );
    check(
        &ts,
        "ClassifierOptions",
        &ClassifierOptions::default(),
        &["onAutoUpdate", "onLoadProgress"],
    );
}

#[test]
fn the_parser_reads_nested_members_and_ignores_comments() {
    let (members, _) = parse_members(
        " /** a; b: c */ a?: number; b: { c: string | null;\n d: Array<{ e: 1 }> };\n f: (x: { y: 1 }) => void }",
    );
    let names: Vec<&str> = members.0.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "b", "f"]);
    let nested: Vec<&str> = members.0["b"].0.keys().map(String::as_str).collect();
    assert_eq!(nested, ["c", "d"]);
}
