//! The store's contract, run against every backend: in memory natively
//! (`tests/store.rs`) and on IndexedDB in headless Chromium
//! (`tests/store_in_browser.rs`). Each case takes a [`Fixture`] that makes
//! empty backends and reopens them (a reload, another tab).
#![allow(dead_code)] // each harness runs the cases its backend supports

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};

use localtune::error::Error;
use localtune::head::train::UpdateEventKind;
use localtune::store::{
    CachedFeatures, SaveDetails, Store, StoreBackend, StorePolicy, TrainingData, VersionStatus,
    MAX_SAMPLE_TEXT_BYTES,
};
use localtune::{Head, HeadArchitecture, UpdateConfig};

#[allow(async_fn_in_trait)]
pub trait Fixture {
    type Backend: StoreBackend;
    /// An empty backend called `name` (whatever an earlier run left is gone).
    async fn fresh(&self, name: &str) -> Self::Backend;
    /// A second connection to the same data: a reload, or another tab.
    async fn reopen(&self, name: &str) -> Self::Backend;
}

const ENCODER_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ENCODER_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const DIM: usize = 8;

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A head with distinct, non-zero weights, so bit-exact comparisons mean
/// something.
fn head(names: &[&str], seed: u64) -> Head {
    Head::new_seeded(
        DIM,
        HeadArchitecture::Mlp { hidden: 5 },
        labels(names),
        seed,
    )
    .unwrap()
}

fn shipped() -> Head {
    head(&["lights", "music"], 1)
}

/// A deterministic stand-in for an encoder in these logic tests (the real
/// one runs in the page tests): words hashed into `dim` buckets, normalised.
fn embed(texts: &[&str], dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(texts.len() * dim);
    for text in texts {
        let mut v = vec![0.0f32; dim];
        for word in text.split_whitespace() {
            let h = word
                .bytes()
                .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
            v[h as usize % dim] += 1.0;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        out.extend(v.iter().map(|x| x / norm));
    }
    out
}

fn vector(text: &str) -> Vec<f32> {
    embed(&[text], DIM)
}

async fn open<B: StoreBackend>(backend: B, policy: StorePolicy) -> Store<B> {
    Store::open(backend, ENCODER_A, &shipped(), policy, 1000.0)
        .await
        .unwrap()
}

fn same_bits(a: &Head, b: &Head) -> bool {
    localtune::head::codec::encode(a) == localtune::head::codec::encode(b)
}

/// Polls two futures until both are done, interleaving them: two tabs
/// saving "at once" on one thread.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    struct Join<A: Future, B: Future> {
        a: Pin<Box<A>>,
        b: Pin<Box<B>>,
        ra: Option<A::Output>,
        rb: Option<B::Output>,
    }
    impl<A: Future, B: Future> Future for Join<A, B> {
        type Output = (A::Output, B::Output);
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = unsafe { self.get_unchecked_mut() };
            if this.ra.is_none() {
                if let Poll::Ready(v) = this.a.as_mut().poll(cx) {
                    this.ra = Some(v);
                }
            }
            if this.rb.is_none() {
                if let Poll::Ready(v) = this.b.as_mut().poll(cx) {
                    this.rb = Some(v);
                }
            }
            if this.ra.is_some() && this.rb.is_some() {
                Poll::Ready((this.ra.take().unwrap(), this.rb.take().unwrap()))
            } else {
                Poll::Pending
            }
        }
    }
    Join {
        a: Box::pin(a),
        b: Box::pin(b),
        ra: None,
        rb: None,
    }
    .await
}

// ---- samples ---------------------------------------------------------------

pub async fn samples_are_added_listed_and_really_deleted<F: Fixture>(f: &F) {
    let store = open(f.fresh("samples").await, StorePolicy::default()).await;
    let a = store
        .add_sample(
            "turn on the lights",
            "lights",
            10.0,
            Some(&vector("turn on the lights")),
        )
        .await
        .unwrap();
    let b = store
        .add_sample("play jazz", "music", 11.0, None)
        .await
        .unwrap();
    let c = store
        .add_sample(
            "dim the lamp",
            "lights",
            12.0,
            Some(&vector("dim the lamp")),
        )
        .await
        .unwrap();
    assert!(
        a.sample.id < b.sample.id && b.sample.id < c.sample.id,
        "ids increase"
    );
    assert_eq!(store.sample_count().await.unwrap(), 3);
    let listed = store.samples().await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(),
        ["turn on the lights", "play jazz", "dim the lamp"]
    );
    assert_eq!(listed[1].label, "music");
    assert_eq!(listed[1].time_ms, 11.0);

    // Training data: cached vectors where given, the rest listed as missing.
    let data = store.training_data().await.unwrap();
    assert_eq!(data.sample_ids, [a.sample.id, c.sample.id]);
    assert_eq!(
        &data.features[..DIM],
        vector("turn on the lights").as_slice()
    );
    assert_eq!(data.missing.len(), 1);
    assert_eq!(data.missing[0].id, b.sample.id);
    store
        .cache_vectors(&[CachedFeatures {
            sample_id: b.sample.id,
            values: vector("play jazz"),
        }])
        .await
        .unwrap();
    assert!(store.training_data().await.unwrap().missing.is_empty());

    // Deleting one sample deletes its cached vector too.
    store.delete_sample(a.sample.id).await.unwrap();
    assert_eq!(store.sample_count().await.unwrap(), 2);
    let cached = store.backend().features(ENCODER_A).await.unwrap();
    assert!(
        cached.iter().all(|row| row.sample_id != a.sample.id),
        "the vector went with the sample"
    );
    assert!(matches!(
        store.delete_sample(a.sample.id).await,
        Err(Error::NotFound(_))
    ));

    store.delete_all_samples().await.unwrap();
    assert_eq!(store.sample_count().await.unwrap(), 0);
    assert!(store
        .backend()
        .features(ENCODER_A)
        .await
        .unwrap()
        .is_empty());
    // Ids are never reused.
    let d = store
        .add_sample("louder", "music", 13.0, None)
        .await
        .unwrap();
    assert!(d.sample.id > c.sample.id);
}

pub async fn bad_samples_are_refused_and_store_nothing<F: Fixture>(f: &F) {
    let store = open(f.fresh("bad-samples").await, StorePolicy::default()).await;
    store
        .add_sample("keep me", "lights", 1.0, None)
        .await
        .unwrap();
    let huge = "a".repeat(100 * 1024);
    let long_label = "x".repeat(201);
    let mut nan = vector("x");
    nan[3] = f32::NAN;
    let cases: Vec<(&str, &str, Option<Vec<f32>>, &str)> = vec![
        ("", "lights", None, "InvalidSampleError"),
        ("  \n\t", "lights", None, "InvalidSampleError"),
        (&huge, "lights", None, "InvalidSampleError"),
        ("fine", "", None, "ConfigError"),
        ("fine", "   ", None, "ConfigError"),
        ("fine", &long_label, None, "ConfigError"),
        ("fine", "lights", Some(vec![0.5; DIM + 1]), "ShapeError"),
        ("fine", "lights", Some(nan), "NonFiniteError"),
    ];
    for (text, label, features, code) in cases {
        let err = store
            .add_sample(text, label, 2.0, features.as_deref())
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{} bytes / {label:?}: {err}", text.len());
    }
    let err = store
        .add_sample(&huge, "lights", 2.0, None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("{MAX_SAMPLE_TEXT_BYTES}")),
        "{err}"
    );
    assert_eq!(store.sample_count().await.unwrap(), 1, "nothing was stored");
}

pub async fn odd_text_and_labels_round_trip_exactly<F: Fixture>(f: &F) {
    let store = open(f.fresh("odd").await, StorePolicy::default()).await;
    let text = "请把客厅的灯关掉 🔥 \"quotes\" <b>tags</b> \u{0} nul";
    let label = "Küche / 'lights' <b> & 🔥";
    store.add_sample(text, label, 1.0, None).await.unwrap();
    let back = &store.samples().await.unwrap()[0];
    assert_eq!(back.text, text);
    assert_eq!(back.label, label);
}

pub async fn past_the_cap_the_largest_labels_oldest_sample_goes<F: Fixture>(f: &F) {
    let policy = StorePolicy {
        max_samples: 4,
        ..StorePolicy::default()
    };
    let store = open(f.fresh("cap").await, policy).await;
    let mut ids = Vec::new();
    for (i, (text, label)) in [
        ("l1", "lights"),
        ("l2", "lights"),
        ("m1", "music"),
        ("l3", "lights"),
    ]
    .iter()
    .enumerate()
    {
        let added = store
            .add_sample(text, label, i as f64, Some(&vector(text)))
            .await
            .unwrap();
        assert!(added.evicted.is_empty());
        ids.push(added.sample.id);
    }
    // A fifth sample: "lights" has the most (3), its oldest (l1) goes.
    let added = store.add_sample("w1", "weather", 10.0, None).await.unwrap();
    assert_eq!(added.evicted, [ids[0]]);
    let added = store.add_sample("w2", "weather", 11.0, None).await.unwrap();
    assert_eq!(added.evicted, [ids[1]], "lights still has the most");
    let texts: Vec<String> = store
        .samples()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.text)
        .collect();
    assert_eq!(
        texts,
        ["m1", "l3", "w1", "w2"],
        "the single music sample survives"
    );
    assert!(store
        .backend()
        .features(ENCODER_A)
        .await
        .unwrap()
        .iter()
        .all(|r| r.sample_id != ids[0]));
}

pub async fn a_store_at_a_large_cap_evicts_to_its_low_water_mark<F: Fixture>(f: &F) {
    let policy = StorePolicy {
        max_samples: 200,
        ..StorePolicy::default()
    };
    assert_eq!(policy.eviction_low_water(), 198);
    let store = open(f.fresh("low-water").await, policy).await;
    for i in 0..200 {
        let label = if i % 4 == 0 { "music" } else { "lights" };
        let added = store
            .add_sample(&format!("t{i}"), label, i as f64, None)
            .await
            .unwrap();
        assert!(added.evicted.is_empty());
    }
    assert_eq!(store.count_samples_after(0).await.unwrap(), 200);
    assert_eq!(store.count_samples_after(150).await.unwrap(), 50);
    assert_eq!(store.count_samples_after(u64::MAX).await.unwrap(), 0);
    // The 201st sample takes the store to 198 at once: the three oldest
    // "lights" samples (ids 2, 3, 4) go, so the next two corrections
    // evict nothing.
    let added = store
        .add_sample("t200", "music", 200.0, None)
        .await
        .unwrap();
    assert_eq!(added.evicted, [2, 3, 4]);
    assert_eq!(store.sample_count().await.unwrap(), 198);
    for i in 201..203 {
        let added = store
            .add_sample(&format!("t{i}"), "music", i as f64, None)
            .await
            .unwrap();
        assert!(added.evicted.is_empty());
    }
    assert_eq!(store.sample_count().await.unwrap(), 200);
    assert_eq!(store.count_samples_after(200).await.unwrap(), 3);
}

// ---- versions --------------------------------------------------------------

pub async fn the_shipped_head_is_stored_once_and_current<F: Fixture>(f: &F) {
    let store = open(f.fresh("shipped").await, StorePolicy::default()).await;
    let shipped_info = store.shipped();
    assert_eq!(shipped_info.meta.status, VersionStatus::Shipped);
    assert_eq!(shipped_info.meta.encoder_sha256, ENCODER_A);
    let loaded = store.load_current().await.unwrap();
    assert_eq!(loaded.info.version, shipped_info.version);
    assert!(same_bits(&loaded.head, &shipped()));
    assert!(loaded.problems.is_empty() && !loaded.encoder_changed);
    drop(store);
    let again = open(f.reopen("shipped").await, StorePolicy::default()).await;
    assert_eq!(
        again.versions().await.unwrap().len(),
        1,
        "opening again adds nothing"
    );
    assert_eq!(again.shipped().version, shipped_info.version);
}

pub async fn versions_save_load_roll_back_and_reset<F: Fixture>(f: &F) {
    let store = open(f.fresh("versions").await, StorePolicy::default()).await;
    let shipped_v = store.shipped().version;
    let h1 = head(&["lights", "music"], 7);
    let mut h2 = head(&["lights", "music"], 8);
    h2.add_label("weather").unwrap();
    let details = |parent| SaveDetails {
        parent: Some(parent),
        sample_count: 50,
        ..Default::default()
    };
    let v1 = store
        .save_version(&h1, details(shipped_v), 2000.0)
        .await
        .unwrap();
    let v2 = store
        .save_version(&h2, details(v1.version), 3000.0)
        .await
        .unwrap();
    assert!(shipped_v < v1.version && v1.version < v2.version);
    assert_eq!(v2.meta.parent, Some(v1.version));
    assert_eq!(v2.meta.labels, labels(&["lights", "music", "weather"]));
    assert_eq!(v2.meta.status, VersionStatus::Accepted);
    assert_eq!(v2.meta.sample_count, 50);
    assert_eq!(v2.meta.created_ms, 3000.0);
    assert_eq!(v2.meta.checksum.len(), 64);

    assert_eq!(store.current_version().await.unwrap(), Some(v2.version));
    let loaded = store.load_current().await.unwrap();
    assert!(same_bits(&loaded.head, &h2), "loaded bit for bit");
    let listed: Vec<u64> = store
        .versions()
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(listed, [shipped_v, v1.version, v2.version]);

    let back = store.rollback(v1.version).await.unwrap();
    assert_eq!(back.version, v1.version);
    assert!(same_bits(&store.load_current().await.unwrap().head, &h1));
    store.reset_to_shipped().await.unwrap();
    assert!(same_bits(
        &store.load_current().await.unwrap().head,
        &shipped()
    ));
    assert_eq!(
        store.versions().await.unwrap().len(),
        3,
        "rollback and reset delete nothing"
    );
    assert!(matches!(store.rollback(999).await, Err(Error::NotFound(_))));
}

pub async fn a_rejected_version_is_kept_but_not_current<F: Fixture>(f: &F) {
    let store = open(f.fresh("rejected").await, StorePolicy::default()).await;
    let before = store.current_version().await.unwrap();
    let rejected = SaveDetails {
        rejected: true,
        ..Default::default()
    };
    let v = store
        .save_version(&head(&["lights", "music"], 3), rejected, 1.0)
        .await
        .unwrap();
    assert_eq!(v.meta.status, VersionStatus::Rejected);
    assert_eq!(store.current_version().await.unwrap(), before);
    assert_eq!(
        store.load_current().await.unwrap().info.version,
        before.unwrap()
    );
    // The user may still choose it explicitly.
    store.rollback(v.version).await.unwrap();
    assert_eq!(store.load_current().await.unwrap().info.version, v.version);
}

pub async fn current_and_shipped_versions_cannot_be_deleted<F: Fixture>(f: &F) {
    let store = open(f.fresh("protected").await, StorePolicy::default()).await;
    let shipped_v = store.shipped().version;
    let v1 = store
        .save_version(&head(&["lights", "music"], 3), SaveDetails::default(), 1.0)
        .await
        .unwrap();
    let v2 = store
        .save_version(&head(&["lights", "music"], 4), SaveDetails::default(), 2.0)
        .await
        .unwrap();
    assert_eq!(
        store.delete_version(v2.version).await.unwrap_err().code(),
        "InvalidStateError"
    );
    assert_eq!(
        store.delete_version(shipped_v).await.unwrap_err().code(),
        "InvalidStateError"
    );
    assert_eq!(
        store.delete_version(12345).await.unwrap_err().code(),
        "NotFoundError"
    );
    // A batch with one protected version deletes nothing.
    let err = store
        .backend()
        .delete_versions(&[v1.version, v2.version])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InvalidStateError");
    assert_eq!(store.versions().await.unwrap().len(), 3);
    store.delete_version(v1.version).await.unwrap();
    let left: Vec<u64> = store
        .versions()
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(left, [shipped_v, v2.version]);
    assert!(
        store.backend().weights(v1.version).await.unwrap().is_none(),
        "its weights went too"
    );
}

pub async fn retention_keeps_the_newest_the_current_and_the_shipped<F: Fixture>(f: &F) {
    let policy = StorePolicy {
        keep_versions: 3,
        ..StorePolicy::default()
    };
    let store = open(f.fresh("retention").await, policy).await;
    let shipped_v = store.shipped().version;
    let first = store
        .save_version(&head(&["lights", "music"], 10), SaveDetails::default(), 1.0)
        .await
        .unwrap();
    store.rollback(first.version).await.unwrap();
    let mut saved = Vec::new();
    for seed in 11..16 {
        // Rejected candidates: they count as versions but never become current.
        let details = SaveDetails {
            rejected: true,
            ..Default::default()
        };
        saved.push(
            store
                .save_version(&head(&["lights", "music"], seed), details, seed as f64)
                .await
                .unwrap()
                .version,
        );
    }
    let left: Vec<u64> = store
        .versions()
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(
        left,
        [shipped_v, first.version, saved[2], saved[3], saved[4]]
    );
    assert!(same_bits(
        &store.load_current().await.unwrap().head,
        &head(&["lights", "music"], 10)
    ));
}

pub async fn a_corrupt_weight_record_falls_back_and_is_reported<F: Fixture>(f: &F) {
    let store = open(f.fresh("corrupt").await, StorePolicy::default()).await;
    let good = head(&["lights", "music"], 21);
    let v1 = store
        .save_version(
            &good,
            SaveDetails {
                parent: Some(store.shipped().version),
                ..Default::default()
            },
            1.0,
        )
        .await
        .unwrap();
    let v2 = store
        .save_version(
            &head(&["lights", "music"], 22),
            SaveDetails {
                parent: Some(v1.version),
                ..Default::default()
            },
            2.0,
        )
        .await
        .unwrap();

    // One flipped bit in v2's weights, written behind the store's back.
    let mut snapshot = store.backend().snapshot().await.unwrap();
    let record = snapshot
        .weights
        .iter_mut()
        .find(|w| w.version == v2.version)
        .unwrap();
    let middle = record.bytes.len() / 2;
    record.bytes[middle] ^= 0x10;
    store.backend().replace_all(&snapshot).await.unwrap();

    let loaded = store.load_current().await.unwrap();
    assert_eq!(loaded.info.version, v1.version, "fell back to the parent");
    assert!(same_bits(&loaded.head, &good));
    assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
    assert_eq!(loaded.problems[0].name, "CorruptRecordError");
    assert_eq!(loaded.problems[0].version, Some(v2.version));
    assert!(
        loaded.problems[0].message.contains("checksum"),
        "{}",
        loaded.problems[0].message
    );
    assert_eq!(
        store.current_version().await.unwrap(),
        Some(v1.version),
        "current moved to the good one"
    );
    assert_eq!(
        store.rollback(v2.version).await.unwrap_err().code(),
        "CorruptRecordError"
    );

    // v1's weights gone too: its parent, the shipped head, is next in line.
    store.rollback(v1.version).await.unwrap();
    let mut snapshot = store.backend().snapshot().await.unwrap();
    snapshot.weights.retain(|w| w.version != v1.version);
    store.backend().replace_all(&snapshot).await.unwrap();
    let loaded = store.load_current().await.unwrap();
    assert_eq!(loaded.info.version, store.shipped().version);
    assert_eq!(
        loaded
            .problems
            .iter()
            .map(|p| p.version.unwrap())
            .collect::<Vec<_>>(),
        [v1.version]
    );
    assert!(
        loaded.problems[0].message.contains("missing"),
        "{}",
        loaded.problems[0].message
    );
}

pub async fn a_reopened_store_has_everything<F: Fixture>(f: &F) {
    let store = open(f.fresh("reopen").await, StorePolicy::default()).await;
    store
        .add_sample(
            "lights please",
            "lights",
            1.0,
            Some(&vector("lights please")),
        )
        .await
        .unwrap();
    let h = head(&["lights", "music"], 31);
    let v = store
        .save_version(&h, SaveDetails::default(), 2.0)
        .await
        .unwrap();
    drop(store);
    let store = open(f.reopen("reopen").await, StorePolicy::default()).await;
    assert_eq!(store.sample_count().await.unwrap(), 1);
    assert_eq!(
        store.training_data().await.unwrap().missing.len(),
        0,
        "the cached vector is there"
    );
    let loaded = store.load_current().await.unwrap();
    assert_eq!(loaded.info, v);
    assert!(same_bits(&loaded.head, &h));
}

pub async fn a_rollback_moves_the_memory_mark_for_every_connection<F: Fixture>(f: &F) {
    let store = open(f.fresh("memory-mark").await, StorePolicy::default()).await;
    let add = |text: &'static str, label: &'static str| {
        let store = &store;
        async move {
            store
                .add_sample(text, label, 1.0, Some(&vector(text)))
                .await
                .unwrap()
                .sample
                .id
        }
    };
    let first = add("lights please", "lights").await;
    let second = add("music please", "music").await;
    let ids = |data: TrainingData| data.sample_ids;
    assert_eq!(
        ids(store.remembered_corrections().await.unwrap()),
        [first, second],
        "every correction counts until a rollback"
    );
    let v = store
        .save_version(&head(&["lights", "music"], 5), SaveDetails::default(), 2.0)
        .await
        .unwrap();
    assert_eq!(
        ids(store.remembered_corrections().await.unwrap()),
        [first, second],
        "an update does not move the mark"
    );
    store.rollback(store.shipped().version).await.unwrap();
    assert!(
        ids(store.remembered_corrections().await.unwrap()).is_empty(),
        "a rollback forgets the corrections made so far"
    );
    let third = add("weather please", "weather").await;
    let remembered = store.remembered_corrections().await.unwrap();
    assert_eq!(remembered.sample_ids, [third]);
    assert_eq!(remembered.labels, labels(&["weather"]));
    assert_eq!(remembered.features, vector("weather please"));
    assert_eq!(
        store.sample_count().await.unwrap(),
        3,
        "nothing was deleted"
    );
    drop(store);

    // Another connection (a reload, another tab) sees the same mark.
    let store = open(f.reopen("memory-mark").await, StorePolicy::default()).await;
    assert_eq!(ids(store.remembered_corrections().await.unwrap()), [third]);
    // Rolling forward again moves it past the third too.
    store.rollback(v.version).await.unwrap();
    assert!(ids(store.remembered_corrections().await.unwrap()).is_empty());
}

pub async fn two_connections_saving_at_once_both_keep_their_versions<F: Fixture>(f: &F) {
    let a = open(f.fresh("two-tabs").await, StorePolicy::default()).await;
    let b = open(f.reopen("two-tabs").await, StorePolicy::default()).await;
    let (ha, hb) = (
        head(&["lights", "music"], 41),
        head(&["lights", "music"], 42),
    );
    let (va, vb) = join(
        a.save_version(&ha, SaveDetails::default(), 1.0),
        b.save_version(&hb, SaveDetails::default(), 1.0),
    )
    .await;
    let (va, vb) = (va.unwrap(), vb.unwrap());
    assert_ne!(va.version, vb.version);
    let (_, back_a) = a.load_version(va.version).await.unwrap();
    let (_, back_b) = a.load_version(vb.version).await.unwrap();
    assert!(same_bits(&back_a, &ha) && same_bits(&back_b, &hb));
    let current = a.current_version().await.unwrap().unwrap();
    assert!(current == va.version || current == vb.version);
}

pub async fn a_new_encoder_never_uses_old_heads_and_retrains<F: Fixture>(f: &F) {
    let old = open(f.fresh("encoder-change").await, StorePolicy::default()).await;
    let texts = [
        ("turn on the lights", "lights"),
        ("lights off in the kitchen", "lights"),
        ("dim the lights", "lights"),
        ("play some jazz music", "music"),
        ("next song please", "music"),
        ("music louder", "music"),
        ("will it rain tomorrow", "weather"),
        ("weather forecast for today", "weather"),
    ];
    for (i, (text, label)) in texts.iter().enumerate() {
        old.add_sample(text, label, i as f64, Some(&vector(text)))
            .await
            .unwrap();
    }
    let mut trained = shipped();
    trained.add_label("weather").unwrap();
    old.save_version(&trained, SaveDetails::default(), 10.0)
        .await
        .unwrap();
    drop(old);

    // The new encoder has another identity and another output size.
    const NEW_DIM: usize = 12;
    let new_shipped = Head::new_seeded(
        NEW_DIM,
        HeadArchitecture::Linear,
        labels(&["lights", "music"]),
        0,
    )
    .unwrap();
    let store = Store::open(
        f.reopen("encoder-change").await,
        ENCODER_B,
        &new_shipped,
        StorePolicy::default(),
        20.0,
    )
    .await
    .unwrap();
    let loaded = store.load_current().await.unwrap();
    assert!(loaded.encoder_changed);
    assert_eq!(
        loaded.info.meta.encoder_sha256, ENCODER_B,
        "old heads are not used with the new encoder"
    );
    assert_eq!(loaded.problems[0].name, "EncoderChangedError");
    assert_eq!(
        store.training_data().await.unwrap().missing.len(),
        texts.len()
    );
    // Rolling back to an old-encoder head is refused.
    let old_version = store
        .versions()
        .await
        .unwrap()
        .iter()
        .find(|v| v.meta.encoder_sha256 == ENCODER_A && v.meta.status == VersionStatus::Accepted)
        .unwrap()
        .version;
    assert_eq!(
        store.rollback(old_version).await.unwrap_err().code(),
        "InvalidStateError"
    );

    let mut calls = 0;
    let mut embed_new = |batch: &[&str]| {
        calls += 1;
        Ok(embed(batch, NEW_DIM))
    };
    let config = UpdateConfig {
        validation_fraction: 0.0,
        ..UpdateConfig::default()
    };
    let mut events = Vec::new();
    let (info, outcome) = store
        .retrain_for_encoder(&mut embed_new, &config, &|| 0.0, &mut |event| {
            events.push(event.kind);
            ControlFlow::Continue(())
        })
        .await
        .unwrap()
        .expect("samples exist");
    assert_eq!(calls, 1, "8 texts, one batch");
    assert_eq!(
        events.first(),
        Some(&UpdateEventKind::Began),
        "the update's events reach the caller"
    );
    assert_eq!(events.last(), Some(&UpdateEventKind::Done));
    assert_eq!(info.meta.encoder_sha256, ENCODER_B);
    assert_eq!(info.meta.parent, Some(store.shipped().version));
    assert_eq!(info.meta.sample_count, texts.len());
    assert_eq!(outcome.train_accuracy, 1.0);
    assert!(
        store.training_data().await.unwrap().missing.is_empty(),
        "vectors cached under the new encoder"
    );
    let loaded = store.load_current().await.unwrap();
    assert!(!loaded.encoder_changed && loaded.problems.is_empty());
    assert_eq!(loaded.info.version, info.version);
    assert_eq!(
        loaded
            .head
            .predict(&embed(&["will it rain tomorrow"], NEW_DIM))
            .unwrap()[0]
            .label,
        "weather"
    );

    // A store with no samples has nothing to retrain.
    store.delete_all_samples().await.unwrap();
    assert!(store
        .retrain_for_encoder(
            &mut |b: &[&str]| Ok(embed(b, NEW_DIM)),
            &config,
            &|| 0.0,
            &mut |_| { ControlFlow::Continue(()) }
        )
        .await
        .unwrap()
        .is_none());
}

pub async fn export_then_import_into_a_fresh_profile_predicts_the_same<F: Fixture>(f: &F) {
    let source = open(f.fresh("export-source").await, StorePolicy::default()).await;
    source
        .add_sample(
            "turn on the lights",
            "lights",
            1.0,
            Some(&vector("turn on the lights")),
        )
        .await
        .unwrap();
    source.add_sample("jazz", "music", 2.0, None).await.unwrap();
    let mut h = head(&["lights", "music"], 51);
    h.add_label("kitchen").unwrap();
    source
        .save_version(
            &h,
            SaveDetails {
                sample_count: 2,
                ..Default::default()
            },
            3.0,
        )
        .await
        .unwrap();
    let file = source.export(4.0).await.unwrap();

    let target = open(f.fresh("export-target").await, StorePolicy::default()).await;
    target
        .add_sample("to be replaced", "music", 9.0, None)
        .await
        .unwrap();
    let before = target.backend().snapshot().await.unwrap();

    // Damaged files are refused and change nothing.
    let mut flipped = file.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 1;
    let truncated = &file[..file.len() - 1];
    let newer = String::from_utf8(file.clone()).unwrap().replacen(
        "\"schemaVersion\":1",
        "\"schemaVersion\":2",
        1,
    );
    for (bad, why) in [
        (&flipped[..], "integrity"),
        (truncated, "truncated"),
        (newer.as_bytes(), "schema version 2"),
        (b"{}" as &[u8], "no header line"),
    ] {
        let err = target.import(bad, 5.0).await.unwrap_err();
        assert_eq!(err.code(), "ImportError");
        assert!(err.to_string().contains(why), "{err}");
        assert_eq!(
            target.backend().snapshot().await.unwrap(),
            before,
            "unchanged after {why}"
        );
    }

    // Well-formed hostile files: edited, with the checksum recomputed (as
    // `export::write` does), so only their content gives them away.
    use localtune::store::{export, sha256_hex};
    let exported = source.backend().snapshot().await.unwrap();
    let learned = exported
        .versions
        .iter()
        .find(|v| v.meta.status != localtune::store::VersionStatus::Shipped)
        .unwrap()
        .version;
    let edited = |edit: &dyn Fn(&mut localtune::store::Snapshot)| {
        let mut s = exported.clone();
        edit(&mut s);
        export::write(&s, 4.0)
    };
    let renumber = |s: &mut localtune::store::Snapshot, to: u64| {
        s.versions
            .iter_mut()
            .filter(|v| v.version == learned)
            .for_each(|v| v.version = to);
        s.weights
            .iter_mut()
            .filter(|w| w.version == learned)
            .for_each(|w| w.version = to);
        if s.current == Some(learned) {
            s.current = Some(to);
        }
    };
    let wider = Head::new_seeded(
        DIM + 1,
        HeadArchitecture::Mlp { hidden: 5 },
        h.labels().to_vec(),
        52,
    )
    .unwrap();
    let dim_mismatch = format!(
        "its head reads {} values, this store's encoder gives {DIM}",
        DIM + 1
    );
    let hostile: Vec<(Vec<u8>, &str)> = vec![
        (
            edited(&|s| s.samples[0].id = u64::MAX),
            "sample id 18446744073709551615 is outside",
        ),
        (
            edited(&|s| s.samples[0].id = 1 << 53),
            "sample id 9007199254740992 is outside",
        ),
        (edited(&|s| s.samples[0].id = 0), "sample id 0 is outside"),
        (
            edited(&|s| renumber(s, 1 << 53)),
            "version id 9007199254740992 is outside",
        ),
        (
            edited(&|s| s.samples[0].text = "x".repeat(20_000)),
            "the text is 20000 bytes",
        ),
        (
            edited(&|s| s.samples[1].label = String::new()),
            "must not be empty",
        ),
        (
            edited(&|s| {
                let bytes = localtune::head::codec::encode(&wider);
                let checksum = sha256_hex(&bytes);
                for v in s.versions.iter_mut().filter(|v| v.version == learned) {
                    v.meta.checksum = checksum.clone();
                }
                for w in s.weights.iter_mut().filter(|w| w.version == learned) {
                    w.checksum = checksum.clone();
                    w.bytes = bytes.clone();
                }
            }),
            &dim_mismatch,
        ),
    ];
    for (bad, why) in &hostile {
        let err = target.import(bad, 5.0).await.unwrap_err();
        assert_eq!(err.code(), "ImportError", "{err}");
        assert!(err.to_string().contains(why), "{err} (expected: {why})");
        assert_eq!(
            target.backend().snapshot().await.unwrap(),
            before,
            "unchanged after {why}"
        );
    }
    // More samples than the importing store keeps.
    let small = open(
        f.reopen("export-target").await,
        StorePolicy {
            max_samples: 1,
            ..StorePolicy::default()
        },
    )
    .await;
    let err = small.import(&file, 5.0).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the file holds 2 samples; this store keeps at most 1"),
        "{err}"
    );
    assert_eq!(small.backend().snapshot().await.unwrap(), before);
    // A file over the size cap is refused before any of it is read: here,
    // the real file padded with spaces (JSON would accept them).
    let max = small.import_limits().max_file_bytes();
    let mut padded = file.clone();
    padded.resize(max as usize + 1, b' ');
    let err = small.import(&padded, 5.0).await.unwrap_err();
    assert_eq!(err.code(), "ImportError");
    assert!(
        err.to_string()
            .contains(&format!("this store imports at most {max}")),
        "{err}"
    );
    drop(padded);
    assert_eq!(small.backend().snapshot().await.unwrap(), before);
    drop(small);

    // More labels than a classifier learns (each sample its own label).
    let many = open(
        f.reopen("export-target").await,
        StorePolicy {
            max_samples: 2_000,
            ..StorePolicy::default()
        },
    )
    .await;
    let crowded = edited(&|s| {
        let template = s.samples[0].clone();
        s.samples = (1..=localtune::head::MAX_LABELS as u64 + 1)
            .map(|id| localtune::store::Sample {
                id,
                label: format!("label {id}"),
                ..template.clone()
            })
            .collect();
    });
    let err = many.import(&crowded, 5.0).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the samples have more than 1000 labels"),
        "{err}"
    );
    assert_eq!(many.backend().snapshot().await.unwrap(), before);
    drop(many);

    let (samples, versions) = target.import(&file, 5.0).await.unwrap();
    assert_eq!((samples, versions), (2, 2));
    let x = vector("turn on the lights");
    let from_source = source
        .load_current()
        .await
        .unwrap()
        .head
        .probabilities(&x)
        .unwrap();
    let from_target = target
        .load_current()
        .await
        .unwrap()
        .head
        .probabilities(&x)
        .unwrap();
    assert_eq!(from_source, from_target, "same predictions, bit for bit");
    assert_eq!(
        target.samples().await.unwrap(),
        source.samples().await.unwrap()
    );
    assert_eq!(
        target.reset_to_shipped().await.unwrap().meta.status,
        VersionStatus::Shipped
    );
    // Vectors are not exported: the imported samples are listed for embedding.
    assert_eq!(target.training_data().await.unwrap().missing.len(), 2);
}

pub async fn head_bytes_round_trip_and_damage_is_detected<F: Fixture>(_: &F) {
    use localtune::head::codec::{decode, encode};
    let mut h = head(&["lights", "music"], 61);
    h.add_label("Küche 🔥").unwrap();
    let bytes = encode(&h);
    assert!(same_bits(&decode(&bytes).unwrap(), &h));
    assert_eq!(decode(&bytes).unwrap(), h);
    for (damaged, why) in [
        (bytes[..bytes.len() - 4].to_vec(), "need"),
        (bytes[..bytes.len() - 1].to_vec(), "whole number"),
        ([b"XXHEAD01", &bytes[8..]].concat(), "signature"),
        (bytes[..10].to_vec(), "header"),
        (Vec::new(), "signature"),
    ] {
        let err = decode(&damaged).unwrap_err();
        assert_eq!(err.code(), "CorruptRecordError");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    // A NaN smuggled into the weights is caught by the head's own checks.
    let mut nan = bytes.clone();
    let at = nan.len() - 4;
    nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(decode(&nan).unwrap_err().code(), "NonFiniteError");
}

/// Calls `$m!(case, case, …)` with every case above, so each harness runs
/// all of them without keeping its own list.
pub async fn erasing_everything_leaves_a_first_visits_store<F: Fixture>(f: &F) {
    let store = open(f.fresh("erase").await, StorePolicy::default()).await;
    for (i, text) in ["turn on the lights", "play jazz", "dim the lamp"]
        .iter()
        .enumerate()
    {
        store
            .add_sample(text, "mine", i as f64, Some(&vector(text)))
            .await
            .unwrap();
    }
    let mut h = head(&["lights", "music"], 61);
    h.add_label("mine").unwrap();
    store
        .save_version(&h, SaveDetails::default(), 5.0)
        .await
        .unwrap();
    let shipped = store.erase_everything(9.0).await.unwrap();
    assert_eq!(shipped.meta.status, VersionStatus::Shipped);
    assert!(store.samples().await.unwrap().is_empty());
    assert!(store.training_data().await.unwrap().features.is_empty());
    assert_eq!(
        store.versions().await.unwrap(),
        std::slice::from_ref(&shipped)
    );
    assert_eq!(
        store.current_version().await.unwrap(),
        Some(shipped.version)
    );
    assert_eq!(store.memory_from().await.unwrap(), 0);
    // Another connection (a reload) finds the same, and the store goes on;
    // ids are never reused (an app holding an old one cannot delete a new
    // correction with it).
    let again = open(f.reopen("erase").await, StorePolicy::default()).await;
    assert!(again.samples().await.unwrap().is_empty());
    assert_eq!(again.versions().await.unwrap(), [shipped]);
    let added = store
        .add_sample("hello", "music", 10.0, None)
        .await
        .unwrap();
    assert_eq!(added.sample.id, 4);
}

macro_rules! all_store_cases {
    ($m:ident) => {
        $m!(
            samples_are_added_listed_and_really_deleted,
            bad_samples_are_refused_and_store_nothing,
            odd_text_and_labels_round_trip_exactly,
            past_the_cap_the_largest_labels_oldest_sample_goes,
            a_store_at_a_large_cap_evicts_to_its_low_water_mark,
            the_shipped_head_is_stored_once_and_current,
            versions_save_load_roll_back_and_reset,
            a_rejected_version_is_kept_but_not_current,
            current_and_shipped_versions_cannot_be_deleted,
            retention_keeps_the_newest_the_current_and_the_shipped,
            a_corrupt_weight_record_falls_back_and_is_reported,
            a_reopened_store_has_everything,
            a_rollback_moves_the_memory_mark_for_every_connection,
            two_connections_saving_at_once_both_keep_their_versions,
            a_new_encoder_never_uses_old_heads_and_retrains,
            export_then_import_into_a_fresh_profile_predicts_the_same,
            head_bytes_round_trip_and_damage_is_detected,
            erasing_everything_leaves_a_first_visits_store,
        );
    };
}
