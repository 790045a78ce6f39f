//! The classifier natively with the tiny bundle: feedback, the pending
//! count, the validation gate, rehearsal overrides, and the order of
//! changes (an update and a rollback asked for together). The same code runs
//! in the browser in tests/js/classifier.test.mjs with the real encoder and
//! IndexedDB.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::ops::ControlFlow;
use std::rc::Rc;

use common::tiny_bundle::{block_on, bundle_files, load};
use localtune::classifier::at_once::AtOnceSettings;
use localtune::classifier::auto_update::AutoUpdatePolicy;
use localtune::classifier::{rehearsal_rows_to_keep, Classifier};
use localtune::head::personal::PersonalRules;
use localtune::store::memory::MemoryBackend;
use localtune::store::{StorePolicy, VersionStatus};
use localtune::UpdateConfig;

fn open() -> Classifier<MemoryBackend> {
    block_on(Classifier::open(
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
    assert_eq!(p.current_version().meta.status, VersionStatus::Shipped);
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
    // 20 MB of text, or a label that is blank, is refused before the
    // encoder runs (tokenizing 20 MB alone took seconds), and nothing is
    // stored.
    let huge = "turn on the lights ".repeat(1_100_000);
    let err = block_on(p.add_feedback(&huge, "doors", 9.0)).unwrap_err();
    assert_eq!(err.code(), "InvalidSampleError");
    assert!(
        err.to_string().contains("the text is 20900000 bytes"),
        "{err}"
    );
    let err = block_on(p.add_feedback("open the shed", " ", 9.0)).unwrap_err();
    assert_eq!(err.code(), "ConfigError", "{err}");
    assert_eq!(block_on(p.pending_count()).unwrap(), texts.len());
    let report = block_on(p.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert!(report.summary.accepted, "{}", report.summary.gate);
    assert_eq!(report.summary.held_out_samples, 1, "20% of 6 doors samples");
    assert_eq!(report.summary.user_samples, 5);
    // The held-out "doors" text is scored by both heads (what the tiny
    // encoder lets the new head make of it varies).
    assert!(report.summary.candidate_accuracy.is_some());
    assert_eq!(
        report.summary.current_accuracy,
        Some(0.0),
        "the shipped head has no doors label"
    );
    assert_eq!(report.version.meta.parent, Some(1));
    assert_eq!(report.version.meta.trained_through_sample, Some(6));
    assert_eq!(report.version.meta.metrics.gate_samples, Some(1));
    assert_eq!(p.current_version().version, report.version.version);
    assert_eq!(block_on(p.pending_count()).unwrap(), 0);
    assert_eq!(p.predict(&["open the garage"]).unwrap()[0].label, "doors");
    // The labels nobody corrected are still there, thanks to rehearsal.
    assert_eq!(p.predict(&["weather today"]).unwrap()[0].label, "weather");
    assert_eq!(p.predict(&["play music"]).unwrap()[0].label, "music");

    // Moved to another profile: same predictions; the export file carries
    // no vectors, and the import embeds the samples (in batches).
    let file = block_on(p.store().export(1.0)).unwrap();
    let q = open();
    block_on(q.import(&file, 2.0)).unwrap();
    assert_eq!(q.current_version(), p.current_version());
    assert_eq!(
        q.predict(&["open the garage"]).unwrap(),
        p.predict(&["open the garage"]).unwrap()
    );
    assert!(block_on(q.store().training_data())
        .unwrap()
        .missing
        .is_empty());
    assert_eq!(q.remembered_corrections(), 6);
    block_on(q.add_feedback("lock the garage", "doors", 20.0)).unwrap();
    let report = block_on(q.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert_eq!(
        report.summary.user_samples + report.summary.held_out_samples,
        7
    );
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
    assert!(good.summary.accepted);
    block_on(p.add_feedback("lock the garage", "doors", 10.0)).unwrap();
    // One tiny step from the shipped head cannot learn "doors".
    let weak = UpdateConfig {
        epochs: 1,
        learning_rate: 1e-4,
        ..UpdateConfig::default()
    };
    let report = block_on(p.update(&weak, &|| 0.0, &mut |_| ControlFlow::Continue(()))).unwrap();
    assert!(!report.summary.accepted, "{}", report.summary.gate);
    assert!(
        report
            .summary
            .gate
            .starts_with("rejected: 0.0% on 2 held-out samples, below the current head's"),
        "{}",
        report.summary.gate
    );
    assert_eq!(report.summary.candidate_accuracy, Some(0.0));
    assert!(report.summary.current_accuracy > Some(0.0));
    assert_eq!(report.version.meta.status, VersionStatus::Rejected);
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

/// Three corrections that teach the tiny bundle a label it lacks.
const DOOR_TEXTS: [&str; 3] = ["open the garage", "close the garage", "lock the door"];

fn teach_doors<B: localtune::store::StoreBackend>(p: &Classifier<B>) {
    for (i, text) in DOOR_TEXTS.iter().enumerate() {
        block_on(p.add_feedback(text, "doors", i as f64)).unwrap();
    }
}

/// A classifier on a store that another instance may share: a reload, or
/// another tab.
fn open_on(backend: Rc<MemoryBackend>) -> Classifier<Rc<MemoryBackend>> {
    block_on(Classifier::open(
        load(bundle_files()).unwrap(),
        backend,
        StorePolicy::default(),
        0.0,
    ))
    .unwrap()
}

/// Polls a future once with a no-op waker.
fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

#[test]
fn a_rollback_asked_for_during_an_update_runs_after_it_and_a_second_update_is_refused() {
    let p = open();
    let shipped = p.current_version().version;
    teach_doors(&p);
    let session = block_on(p.begin_update()).unwrap();
    assert!(p.update_pending());
    let second = block_on(p.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap_err();
    assert_eq!(second.code(), "InvalidStateError", "{second}");

    // The rollback waits for the update's commit, then undoes it: the
    // database and the classifier agree on the shipped head.
    let mut rollback = std::pin::pin!(p.rollback(shipped));
    let mut idle = std::pin::pin!(p.when_idle());
    assert!(poll_once(rollback.as_mut()).is_none());
    assert!(poll_once(idle.as_mut()).is_none());
    let candidate = block_on(session.train(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert!(
        poll_once(rollback.as_mut()).is_none(),
        "still holding the lock"
    );
    let report = block_on(session.commit(candidate, 5.0)).unwrap();
    assert!(report.summary.accepted, "{}", report.summary.gate);
    assert_eq!(p.current_version().version, report.version.version);
    assert!(poll_once(idle.as_mut()).is_some());
    let rolled_back = block_on(rollback).unwrap();
    assert_eq!(rolled_back.version, shipped);
    assert_eq!(p.current_version().version, shipped);
    assert_eq!(
        block_on(p.store().current_version()).unwrap(),
        Some(shipped)
    );
    assert!(!p.update_pending());
}

#[test]
fn the_bundles_threshold_starts_one_automatic_update() {
    let p = open(); // the tiny bundle's threshold is 5
    let mut due = Vec::new();
    for i in 0..6 {
        let feedback =
            block_on(p.add_feedback(&format!("open door {i}"), "doors", i as f64)).unwrap();
        due.push(p.auto_update_due(&feedback));
        if p.auto_update_due(&feedback) {
            assert!(p.begin_auto_update_attempt(&feedback));
            assert!(!p.begin_auto_update_attempt(&feedback), "claimed once");
        }
    }
    assert_eq!(due, [false, false, false, false, true, false]);
}

#[test]
fn a_correction_counts_before_the_next_prediction_and_after_a_reload() {
    let backend = Rc::new(MemoryBackend::new());
    let p = open_on(backend.clone());
    let text = "how many steps did I walk today";
    let before = p.predict(&[text]).unwrap().remove(0);
    assert_ne!(before.label, "Fitness");
    assert!(!p.labels().contains(&"Fitness".to_string()));
    // A text predicted again reuses its vector; the answer is the encoder's,
    // bit for bit.
    let fresh = p.bundle().encoder.embed(&[text]).unwrap();
    assert_eq!(p.predict(&[text]).unwrap()[0], before);
    assert_eq!(p.predict_vectors(fresh.as_slice()).unwrap()[0], before);

    block_on(p.add_feedback(text, "Fitness", 1.0)).unwrap();
    let after = p.predict(&[text]).unwrap().remove(0);
    assert_eq!(after.label, "Fitness", "{after:?}");
    assert!(after.probability >= 0.95, "{after:?}");
    assert!(p.labels().ends_with(&["Fitness".to_string()]));
    assert_eq!(p.remembered_corrections(), 1);

    // The memory made that answer: the working head learns the correction
    // a slice of optimizer steps at a time, and until it has, predictions
    // use the previous one (here the shipped head).
    assert!(!p.working_head_settled());
    assert_eq!(p.working_head(), p.current_head());
    let slice = p.at_once().slice_steps;
    let mut slices = 0;
    while !p.relearn_some(slice).unwrap() {
        slices += 1;
        // Between slices the instance answers, and the correction holds.
        assert_eq!(p.predict(&[text]).unwrap()[0].label, "Fitness");
    }
    // Setting up is a slice of its own; then the steps, `slice` at a time
    // (the last slice returns true).
    assert_eq!(slices, p.at_once().steps.div_ceil(slice));
    assert!(p.working_head_settled());
    assert!(p.relearn_some(slice).unwrap(), "nothing left to learn");
    // Now the working head has learned it too: the new label is one of its
    // outputs, and it gives it to the corrected text on its own.
    let working = p.working_head();
    assert!(working.labels().contains(&"Fitness".to_string()));
    let vector = p.bundle().encoder.embed(&[text]).unwrap();
    assert_eq!(
        working.predict(vector.as_slice()).unwrap()[0].label,
        "Fitness"
    );
    assert_ne!(working, p.current_head(), "the version itself is unchanged");

    // Another instance on the same store (a reload, another tab) honours it,
    // with the same working head, bit for bit: it is derived from the store.
    let q = open_on(backend.clone());
    assert_eq!(q.predict(&[text]).unwrap()[0].label, "Fitness");
    assert_eq!(q.working_head(), working);
    // A text the correction is far from keeps the working head's answer
    // exactly (the memory does not move it).
    let far = "turn off the kitchen lights";
    let nearest = q.predict(&[far]).unwrap().remove(0);
    let similarity = {
        let e = q.bundle().encoder.embed(&[far, text]).unwrap();
        let rows: Vec<&[f32]> = e.rows().collect();
        rows[0].iter().zip(rows[1]).map(|(a, b)| a * b).sum::<f32>()
    };
    if similarity < 0.85 {
        let head = q
            .working_head()
            .predict(q.bundle().encoder.embed(&[far]).unwrap().as_slice());
        assert_eq!(nearest.probabilities, head.unwrap());
    }

    // The same text corrected again: the newest correction wins.
    block_on(q.add_feedback(text, "Steps", 2.0)).unwrap();
    assert_eq!(q.predict(&[text]).unwrap()[0].label, "Steps");
    // After an update (whatever the gate decides) the corrections still count.
    block_on(q.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert_eq!(q.predict(&[text]).unwrap()[0].label, "Steps");
    // Exported (texts and labels, no vectors) and imported into a fresh
    // store: the import embeds them, and they count at once.
    let file = block_on(q.store().export(3.0)).unwrap();
    let r = open();
    block_on(r.import(&file, 4.0)).unwrap();
    assert_eq!(r.remembered_corrections(), 2);
    assert_eq!(r.predict(&[text]).unwrap()[0].label, "Steps");
}

#[test]
fn the_working_head_learned_correction_by_correction_is_the_one_a_fresh_instance_learns() {
    // The classifier keeps each recent correction's similarities to the
    // rehearsal vectors between corrections; a fresh instance computes
    // them all at once. A window of 3 recent corrections and 6 of them: the
    // window slides with each one, and a deletion brings an older one back.
    let settings = AtOnceSettings {
        recent: 3,
        ..AtOnceSettings::default()
    };
    let backend = Rc::new(MemoryBackend::new());
    let p = open_on(backend.clone()).with_at_once(settings).unwrap();
    let corrections = [
        ("how many steps did I walk today", "Fitness"),
        ("turn off the kitchen lights", "music"),
        ("play some jazz", "Jazz"),
        ("how far did I run", "Fitness"),
        ("is it going to rain", "lights"),
        ("dim the hallway", "Jazz"),
    ];
    let mut ids = Vec::new();
    for (n, (text, label)) in corrections.iter().enumerate() {
        ids.push(
            block_on(p.add_feedback(text, label, n as f64))
                .unwrap()
                .added
                .sample
                .id,
        );
        p.finish_relearning().unwrap();
        let fresh = open_on(backend.clone()).with_at_once(settings).unwrap();
        assert_eq!(p.working_head(), fresh.working_head(), "after {n}");
    }
    block_on(p.delete_sample(ids[4])).unwrap();
    p.finish_relearning().unwrap();
    let fresh = open_on(backend.clone()).with_at_once(settings).unwrap();
    assert_eq!(p.working_head(), fresh.working_head(), "after the deletion");
    assert_ne!(p.working_head(), p.current_head());
}

#[test]
fn a_rollback_answers_as_that_version_did_and_later_corrections_count_at_once() {
    let backend = Rc::new(MemoryBackend::new());
    let p = open_on(backend.clone());
    let shipped = p.current_version().version;
    let text = "how many steps did I walk today";
    let before = p.predict(&[text]).unwrap().remove(0);
    block_on(p.add_feedback(text, "Fitness", 1.0)).unwrap();
    assert_eq!(p.predict(&[text]).unwrap()[0].label, "Fitness");

    block_on(p.reset_to_shipped()).unwrap();
    assert_eq!(p.current_version().version, shipped);
    assert_eq!(p.remembered_corrections(), 0);
    assert_eq!(
        p.working_head(),
        p.current_head(),
        "nothing to fine-tune on"
    );
    assert_eq!(
        p.predict(&[text]).unwrap().remove(0),
        before,
        "the shipped head's answer, exactly"
    );
    assert_eq!(block_on(p.store().sample_count()).unwrap(), 1, "kept");
    // Another tab that reloads agrees.
    let q = open_on(backend.clone());
    assert_eq!(q.predict(&[text]).unwrap().remove(0), before);

    // A correction after the reset counts at once, here and after a reload.
    block_on(p.add_feedback(text, "Steps", 2.0)).unwrap();
    assert_eq!(p.predict(&[text]).unwrap()[0].label, "Steps");
    block_on(q.reload()).unwrap();
    assert_eq!(q.predict(&[text]).unwrap()[0].label, "Steps");
    assert_eq!(q.remembered_corrections(), 1);
}

#[test]
fn an_update_leaves_the_rows_of_labels_no_correction_touches_exactly_as_shipped() {
    // By default a shipped label a correction displaces learns, whichever
    // label the correction gives; with `keep_displaced_labels`, one that
    // only the user's own labels displace keeps its row too.
    for keep_displaced_labels in [false, true] {
        let config = UpdateConfig {
            personal: PersonalRules {
                keep_displaced_labels,
                ..PersonalRules::default()
            },
            ..UpdateConfig::default()
        };
        let p = open();
        let policy = AutoUpdatePolicy {
            config: config.clone(),
            ..p.auto_update().policy().clone()
        };
        let p = p.with_auto_update(policy);
        let shipped = p.bundle().head.clone();
        teach_doors(&p);
        let embed = |text: &str| p.bundle().encoder.embed(&[text]).unwrap();
        let given = |text: &str| {
            shipped.predict(embed(text).row(0)).unwrap()[0]
                .label
                .clone()
        };
        let displaced_by_doors: Vec<String> = DOOR_TEXTS.iter().map(|t| given(t)).collect();
        let mut touched = vec!["doors".to_string()];
        if keep_displaced_labels {
            // And a correction from one shipped label to another: both of
            // those learn, while a label only "doors" displaces does not.
            let (text, label) = ("pause music", "weather");
            block_on(p.add_feedback(text, label, 9.0)).unwrap();
            touched.extend([label.to_string(), given(text)]);
            assert!(
                displaced_by_doors.iter().any(|l| !touched.contains(l)),
                "the shipped head gives a door text a label no other correction touches"
            );
        } else {
            touched.extend(displaced_by_doors);
        }
        let report =
            block_on(p.update(&config, &|| 0.0, &mut |_| ControlFlow::Continue(()))).unwrap();
        let trained = &report.summary.outcome.head;
        let row = |head: &localtune::Head, label: &str| {
            let out = head.layers().last().unwrap();
            let i = head.label_index(label).unwrap();
            (
                out.weights[i * out.inputs..(i + 1) * out.inputs].to_vec(),
                out.bias[i],
            )
        };
        let mut untouched = 0;
        for label in shipped.labels() {
            if touched.contains(label) {
                assert_ne!(
                    row(trained, label),
                    row(&shipped, label),
                    "{label} learns ({keep_displaced_labels})"
                );
            } else {
                assert_eq!(
                    row(trained, label),
                    row(&shipped, label),
                    "{label} ({keep_displaced_labels})"
                );
                untouched += 1;
            }
        }
        assert!(
            untouched > 0,
            "the tiny bundle has a label none of these touch"
        );
        // The working head, fine-tuned on the same corrections, too.
        p.finish_relearning().unwrap();
        let working = p.working_head();
        assert_ne!(working, p.current_head());
        for label in shipped.labels().iter().filter(|l| !touched.contains(l)) {
            assert_eq!(
                row(&working, label),
                row(&p.current_head(), label),
                "{label} ({keep_displaced_labels})"
            );
        }
    }
}

/// The user's corrections, as the store holds them.
fn stored_texts<B: localtune::store::StoreBackend>(p: &Classifier<B>) -> Vec<String> {
    block_on(p.samples())
        .unwrap()
        .into_iter()
        .map(|s| s.text)
        .collect()
}

#[test]
fn a_deleted_correction_stops_counting_at_once_and_an_unknown_id_changes_nothing() {
    let p = open();
    let text = "how many steps did I walk today";
    let shipped = p.predict(&[text]).unwrap().remove(0).label;
    block_on(p.add_feedback("open the garage", "doors", 1.0)).unwrap();
    let fitness = block_on(p.add_feedback(text, "Fitness", 2.0)).unwrap();
    p.finish_relearning().unwrap();
    assert_eq!(p.predict(&[text]).unwrap()[0].label, "Fitness");

    let unknown = block_on(p.delete_sample(fitness.added.sample.id + 1)).unwrap_err();
    assert_eq!(unknown.code(), "NotFoundError", "{unknown}");
    assert_eq!(stored_texts(&p), ["open the garage", text]);
    assert_eq!(p.predict(&[text]).unwrap()[0].label, "Fitness");

    block_on(p.delete_sample(fitness.added.sample.id)).unwrap();
    assert_eq!(stored_texts(&p), ["open the garage"]);
    assert_eq!(p.remembered_corrections(), 1);
    // Neither the memory nor the working head knows it any more, and the
    // label it alone taught is gone from the labels a prediction can give.
    p.finish_relearning().unwrap();
    assert_eq!(p.predict(&[text]).unwrap()[0].label, shipped);
    assert!(!p.labels().contains(&"Fitness".to_string()));
    assert_eq!(block_on(p.pending_count()).unwrap(), 1);
}

#[test]
fn deleting_every_correction_keeps_the_versions_and_what_they_learned() {
    let p = open();
    teach_doors(&p);
    let report = block_on(p.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert!(report.summary.accepted, "{}", report.summary.gate);
    block_on(p.delete_all_samples()).unwrap();
    assert!(stored_texts(&p).is_empty());
    assert_eq!(p.remembered_corrections(), 0);
    assert_eq!(p.current_version().version, report.version.version);
    assert_eq!(block_on(p.store().versions()).unwrap().len(), 2);
    assert!(p.labels().contains(&"doors".to_string()));
    assert_eq!(block_on(p.pending_count()).unwrap(), 0);
}

#[test]
fn deleting_everything_leaves_a_first_visits_store_and_the_instance_working() {
    let backend = Rc::new(MemoryBackend::new());
    let p = open_on(backend.clone());
    let shipped_head = p.current_head();
    // Five corrections make the tiny bundle's automatic update due; it is
    // claimed (an attempt through sample 5).
    for i in 0..5 {
        let feedback =
            block_on(p.add_feedback(&format!("open door {i}"), "doors", i as f64)).unwrap();
        if p.auto_update_due(&feedback) {
            assert!(p.begin_auto_update_attempt(&feedback));
        }
    }
    block_on(p.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    block_on(p.add_feedback("how many steps did I walk today", "Fitness", 9.0)).unwrap();

    let info = block_on(p.delete_everything(10.0)).unwrap();
    assert_eq!(info.meta.status, VersionStatus::Shipped);
    assert_eq!(p.current_version(), info);
    assert_eq!(p.current_head(), shipped_head);
    assert_eq!(p.working_head(), shipped_head);
    assert_eq!(p.remembered_corrections(), 0);
    assert!(!p.labels().iter().any(|l| l == "doors" || l == "Fitness"));
    // What the store holds is what a first visit stores: the shipped head.
    let snapshot = block_on(localtune::store::StoreBackend::snapshot(&*backend)).unwrap();
    assert!(snapshot.samples.is_empty());
    assert_eq!(snapshot.versions, std::slice::from_ref(&info));
    assert_eq!(snapshot.current, Some(info.version));
    // And another instance on the same store sees the same.
    let again = open_on(backend);
    assert_eq!(again.current_version(), info);
    assert_eq!(again.remembered_corrections(), 0);

    // The instance goes on: a new correction counts at once, its id is
    // never one an erased correction had (six were stored), and the next
    // automatic update is not held back by the attempt before the erase.
    let first = block_on(p.add_feedback("open the garage", "doors", 11.0)).unwrap();
    assert_eq!(first.added.sample.id, 7);
    assert_eq!(p.predict(&["open the garage"]).unwrap()[0].label, "doors");
    let due: Vec<bool> = (1..5)
        .map(|i| {
            let feedback =
                block_on(p.add_feedback(&format!("shut door {i}"), "doors", 12.0)).unwrap();
            p.auto_update_due(&feedback)
        })
        .collect();
    assert_eq!(due, [false, false, false, true]);
}

#[test]
fn a_deletion_asked_for_during_an_update_runs_after_its_commit() {
    let p = open();
    teach_doors(&p);
    let session = block_on(p.begin_update()).unwrap();
    let mut delete = std::pin::pin!(p.delete_all_samples());
    assert!(poll_once(delete.as_mut()).is_none(), "waits for the update");
    let candidate = block_on(session.train(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert_eq!(stored_texts(&p).len(), 3, "not deleted mid-update");
    let report = block_on(session.commit(candidate, 5.0)).unwrap();
    block_on(delete).unwrap();
    // The version trained on them stays, and stays current; the samples
    // are gone, from the store and from the predictions' memory.
    assert!(stored_texts(&p).is_empty());
    assert_eq!(p.remembered_corrections(), 0);
    assert_eq!(p.current_version().version, report.version.version);
}

/// The largest classifier the library admits: 1,000 labels, 10,000
/// corrections, skewed as a real one is (one label holds 9,003 of them).
/// The update does bounded work (its class-balanced epochs are capped at
/// 4× the rows, so the steps follow the rows, not labels × the largest
/// label), predictions answer, and a 1,001st label is refused before
/// anything is stored.
#[test]
fn a_thousand_labels_and_ten_thousand_skewed_corrections_stay_bounded() {
    use localtune::head::MAX_LABELS;
    let policy = StorePolicy {
        max_samples: 10_000,
        ..StorePolicy::default()
    };
    let backend = Rc::new(MemoryBackend::new());
    let p = block_on(Classifier::open(
        load(bundle_files()).unwrap(),
        backend.clone(),
        policy,
        0.0,
    ))
    .unwrap();
    let shipped = p.labels().len();
    let new_labels = MAX_LABELS - shipped;
    for i in 0..10_000 {
        let (text, label) = if i < new_labels {
            (format!("request number {i}"), format!("intent {i}"))
        } else {
            (format!("play something, take {i}"), "music".to_string())
        };
        block_on(p.store().add_sample(&text, &label, i as f64, None)).unwrap();
    }
    // Reopened on the same store, as a reload would.
    let p = block_on(Classifier::open(
        load(bundle_files()).unwrap(),
        backend,
        policy,
        0.0,
    ))
    .unwrap();
    // Two epochs show the per-epoch bound as well as sixty would.
    let config = UpdateConfig {
        epochs: 2,
        ..UpdateConfig::default()
    };
    let report = block_on(p.update(&config, &|| 0.0, &mut |_| ControlFlow::Continue(()))).unwrap();
    let metrics = &report.version.meta.metrics;
    let rows = report.summary.user_samples + report.summary.rehearsal_samples;
    // Each label gets at most ⌈4 × rows / labels⌉ rows of an epoch.
    let max_steps_per_epoch = (4 * rows + MAX_LABELS).div_ceil(config.batch_size);
    let steps = metrics.steps.unwrap();
    assert!(
        steps <= metrics.epochs.unwrap() * max_steps_per_epoch,
        "{steps} steps for {rows} rows"
    );
    // Without the cap, balancing would draw every label as often as the
    // largest: 1,000 × ~7,200 rows an epoch, over 100 times this.
    assert!(steps * config.batch_size < 2 * 1_000 * 7_200 / 100);
    assert_eq!(block_on(p.store().sample_count()).unwrap(), 10_000);
    let labels_now = report.version.meta.labels.len();
    assert_eq!(labels_now, MAX_LABELS);
    assert_eq!(p.predict(&["request number 7"]).unwrap().len(), 1);

    let err = block_on(p.add_feedback("one label too many", "intent 100000", 1e6)).unwrap_err();
    assert_eq!(err.code(), "ConfigError");
    assert!(err.to_string().contains("1000"), "{err}");
    assert_eq!(block_on(p.store().sample_count()).unwrap(), 10_000);
    // A label it knows is still welcome.
    block_on(p.add_feedback("one more song", "music", 1e6)).unwrap();
}

/// A real pool natively: each run on a thread of its own, with one of two
/// encoders built from the bundle's bytes (as each Web Worker builds one),
/// counting what it was asked.
struct ThreadPool {
    encoders: std::sync::Arc<Vec<localtune::Encoder>>,
    /// After how many runs it fails (a worker that could not load), if set.
    fail_after_runs: Option<usize>,
    /// After how many runs it never answers (a worker the browser froze), if set.
    silent_after_runs: Option<usize>,
    releases: std::cell::Cell<usize>,
    failures: std::cell::Cell<usize>,
    runs_asked: std::cell::Cell<usize>,
    started: std::time::Instant,
}

impl ThreadPool {
    fn new(fail_after_runs: Option<usize>) -> Self {
        let encoders = (0..2)
            .map(|_| load(bundle_files()).unwrap().encoder)
            .collect();
        ThreadPool {
            encoders: std::sync::Arc::new(encoders),
            fail_after_runs,
            silent_after_runs: None,
            releases: Default::default(),
            failures: Default::default(),
            runs_asked: Default::default(),
            started: std::time::Instant::now(),
        }
    }
}

impl localtune::classifier::embedding_pool::EmbeddingPool for ThreadPool {
    fn workers(&self) -> usize {
        1
    }

    fn embed_run(
        &self,
        texts: Vec<String>,
    ) -> localtune::classifier::embedding_pool::PoolFuture<localtune::Result<Vec<f32>>> {
        let n = self.runs_asked.get();
        self.runs_asked.set(n + 1);
        if self.fail_after_runs.is_some_and(|after| n >= after) {
            return Box::pin(async { Err(localtune::Error::Config("a worker stopped".into())) });
        }
        if self.silent_after_runs.is_some_and(|after| n >= after) {
            return Box::pin(std::future::pending());
        }
        let encoders = self.encoders.clone();
        let thread = std::thread::spawn(move || {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            Ok(encoders[n % 2].embed(&texts)?.into_vec())
        });
        // Ready once the thread is done (the tests' block_on polls again).
        let mut thread = Some(thread);
        Box::pin(std::future::poll_fn(move |cx| {
            if thread.as_ref().unwrap().is_finished() {
                std::task::Poll::Ready(thread.take().unwrap().join().unwrap())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }))
    }

    fn breathe(&self) -> localtune::classifier::embedding_pool::PoolFuture<()> {
        Box::pin(async {})
    }

    fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    fn release(&self) {
        self.releases.set(self.releases.get() + 1);
    }

    fn failed(&self, _error: &localtune::Error) {
        self.failures.set(self.failures.get() + 1);
    }
}

/// An export of `n` corrections of varied length (texts of 1 to 12 words).
fn export_of(n: usize) -> Vec<u8> {
    let p = open();
    for i in 0..n {
        let words = ["turn", "the", "music", "up", "a", "bit", "please", "now"];
        let text: Vec<&str> = (0..1 + i % 12)
            .map(|k| words[(i + k) % words.len()])
            .collect();
        let text = format!("{} {i}", text.join(" "));
        let label = ["music", "lights", "Garden"][i % 3];
        block_on(p.add_feedback(&text, label, i as f64)).unwrap();
    }
    block_on(p.store().export(1.0)).unwrap()
}

#[test]
fn a_big_import_embeds_on_the_pool_with_the_same_vectors_and_says_how_far_it_is() {
    use localtune::classifier::embedding_pool::{EmbeddingProgress, POOL_FROM_TEXTS};
    let file = export_of(600);
    let alone = open();
    block_on(alone.import(&file, 2.0)).unwrap();
    let expected = block_on(alone.store().training_data()).unwrap();

    let pooled = open();
    let pool = Rc::new(ThreadPool::new(None));
    pooled.set_embedding_pool(Some(pool.clone()));
    let mut seen: Vec<EmbeddingProgress> = Vec::new();
    block_on(pooled.import_with_progress(&file, 2.0, &mut |p| {
        seen.push(p);
        ControlFlow::Continue(())
    }))
    .unwrap();
    let data = block_on(pooled.store().training_data()).unwrap();
    assert!(data.missing.is_empty());
    // Bit for bit the vectors the classifier's own encoder computed.
    assert_eq!(data.features, expected.features);
    assert_eq!(
        pooled.remembered_corrections(),
        alone.remembered_corrections()
    );
    // Runs of at most 32 texts, shared between the pool and this thread.
    let asked = pool.runs_asked.get();
    assert!(
        asked > 0 && asked < 600usize.div_ceil(32),
        "{asked} runs of 19 on the pool"
    );
    assert_eq!(pool.releases.get(), 1, "the workers go when the job ends");
    // Progress: from nothing to all, never backwards, on 2 workers.
    assert_eq!(seen.first().map(|p| p.done), Some(0));
    assert_eq!(seen.last().map(|p| p.done), Some(600));
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert!(seen.iter().all(|p| p.total == 600 && p.workers == 1));

    // A small job stays on this thread: starting workers would cost more.
    let small = open();
    small.set_embedding_pool(Some(pool.clone()));
    let runs_before = pool.runs_asked.get();
    let mut workers = Vec::new();
    block_on(
        small.import_with_progress(&export_of(POOL_FROM_TEXTS - 1), 2.0, &mut |p| {
            workers.push(p.workers);
            ControlFlow::Continue(())
        }),
    )
    .unwrap();
    assert_eq!(pool.runs_asked.get(), runs_before);
    assert!(workers.iter().all(|&w| w == 0));
}

#[test]
fn a_cancelled_import_changes_nothing_and_a_failing_pool_falls_back() {
    let file = export_of(600);
    // Cancelled after two runs are in: the texts are embedded before anything is
    // stored, so the store and the instance are as they were, and work.
    let p = open();
    block_on(p.add_feedback("open the garage", "doors", 1.0)).unwrap();
    let pool = Rc::new(ThreadPool::new(None));
    p.set_embedding_pool(Some(pool.clone()));
    let mut calls = 0;
    let error = block_on(p.import_with_progress(&file, 2.0, &mut |_| {
        calls += 1;
        if calls == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }))
    .unwrap_err();
    assert!(matches!(error, localtune::Error::Cancelled), "{error}");
    assert_eq!(
        pool.releases.get(),
        1,
        "a cancelled job lets its workers go"
    );
    assert_eq!(stored_texts(&p), ["open the garage"]);
    assert_eq!(p.remembered_corrections(), 1);
    assert_eq!(p.predict(&["open the garage"]).unwrap()[0].label, "doors");
    // And the same import goes through afterwards.
    block_on(p.import(&file, 3.0)).unwrap();
    assert_eq!(block_on(p.store().samples()).unwrap().len(), 600);
    assert_eq!(p.remembered_corrections(), 600);

    // A pool that fails from its 3rd run on (a worker could not load the
    // encoder): it is told once, the job finishes on this thread, same
    // vectors.
    let alone = open();
    block_on(alone.import(&file, 2.0)).unwrap();
    let failing = Rc::new(ThreadPool::new(Some(2)));
    let q = open();
    q.set_embedding_pool(Some(failing.clone()));
    let mut seen = Vec::new();
    block_on(q.import_with_progress(&file, 2.0, &mut |p| {
        seen.push(p.done);
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert_eq!(failing.failures.get(), 1);
    // Progress never went back, though the texts started over.
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&600));
    assert!(failing.runs_asked.get() >= 3);
    assert_eq!(
        block_on(q.store().training_data()).unwrap().features,
        block_on(alone.store().training_data()).unwrap().features
    );
    // The next job tries the pool again, and is told again.
    block_on(q.import(&file, 3.0)).unwrap();
    assert_eq!(failing.failures.get(), 2);

    // A pool that answers its first 2 runs and then never again: this
    // thread waits for its last runs only so long (twice its own time for
    // as many texts), then embeds them itself. The job ends, same vectors,
    // and nothing failed.
    let silent = Rc::new(ThreadPool {
        silent_after_runs: Some(2),
        ..ThreadPool::new(None)
    });
    let r = open();
    r.set_embedding_pool(Some(silent.clone()));
    block_on(r.import(&file, 2.0)).unwrap();
    assert!(silent.runs_asked.get() > 2);
    assert_eq!(silent.failures.get(), 0);
    assert_eq!(silent.releases.get(), 1);
    assert_eq!(
        block_on(r.store().training_data()).unwrap().features,
        block_on(alone.store().training_data()).unwrap().features
    );
}

#[test]
fn an_update_says_how_far_the_embedding_of_vectorless_corrections_is() {
    // 600 corrections without vectors under this encoder, as an encoder
    // change leaves them: imported by the store alone.
    let p = open();
    block_on(p.store().import(&export_of(600), 2.0)).unwrap();
    assert_eq!(
        block_on(p.store().training_data()).unwrap().missing.len(),
        600
    );
    p.set_embedding_pool(Some(Rc::new(ThreadPool::new(None))));
    let mut embedding = Vec::new();
    let mut kinds = Vec::new();
    block_on(p.update(&UpdateConfig::default(), &|| 0.0, &mut |e| {
        kinds.push(e.kind);
        if let Some(progress) = e.embedding {
            embedding.push((progress.done, progress.workers));
        }
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert_eq!(kinds[0], localtune::head::train::UpdateEventKind::Embedding);
    assert_eq!(embedding.first(), Some(&(0, 1)));
    assert_eq!(embedding.last(), Some(&(600, 1)));
    let began = kinds
        .iter()
        .position(|k| *k == localtune::head::train::UpdateEventKind::Began)
        .unwrap();
    assert_eq!(
        began,
        embedding.len(),
        "the embedding comes before training"
    );
    assert!(block_on(p.store().training_data())
        .unwrap()
        .missing
        .is_empty());
}
