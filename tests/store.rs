//! The store's logic on the in-memory backend (the same cases run on
//! IndexedDB in `tests/store_in_browser.rs`), plus what only a memory
//! backend can fake natively: a full disk.
#![cfg(not(target_arch = "wasm32"))]

#[macro_use]
mod store_cases;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use localtune::store::memory::MemoryBackend;
use localtune::store::{SaveDetails, Store, StoreBackend, StorePolicy};
use localtune::{Head, HeadArchitecture};
use store_cases::Fixture;

#[derive(Default)]
struct Memory(RefCell<HashMap<String, Rc<MemoryBackend>>>);

impl Fixture for Memory {
    type Backend = Rc<MemoryBackend>;
    async fn fresh(&self, name: &str) -> Self::Backend {
        let backend = Rc::new(MemoryBackend::new());
        self.0.borrow_mut().insert(name.into(), backend.clone());
        backend
    }
    async fn reopen(&self, name: &str) -> Self::Backend {
        self.0.borrow()[name].clone()
    }
}

/// The memory backend never waits, so its futures finish on the first poll
/// (the join of two of them on the second).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("a memory-backend future did not finish");
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            block_on(store_cases::$name(&Memory::default()));
        }
    )*};
}

all_store_cases!(cases);

#[test]
fn a_full_disk_is_a_clear_error_and_nothing_is_half_written() {
    let shipped =
        Head::new_seeded(8, HeadArchitecture::Linear, vec!["a".into(), "b".into()], 0).unwrap();
    let backend = MemoryBackend::with_quota(4_000);
    let store = block_on(Store::open(
        backend,
        "e",
        &shipped,
        StorePolicy::default(),
        0.0,
    ))
    .unwrap();
    let mut added = 0;
    let error = loop {
        match block_on(store.add_sample(
            &format!("sample number {added} {}", "x".repeat(200)),
            "a",
            0.0,
            Some(&[0.5; 8]),
        )) {
            Ok(_) => added += 1,
            Err(e) => break e,
        }
        assert!(added < 100, "the quota never ran out");
    };
    assert_eq!(error.code(), "QuotaExceededError");
    assert!(error.to_string().contains("nothing was written"), "{error}");
    assert_eq!(
        block_on(store.sample_count()).unwrap(),
        added,
        "the refused sample is not there"
    );
    assert_eq!(
        block_on(store.backend().features("e")).unwrap().len(),
        added,
        "nor its vector"
    );

    let before = block_on(store.backend().snapshot()).unwrap();
    let big = Head::new_seeded(
        8,
        HeadArchitecture::Linear,
        (0..200).map(|i| format!("label {i}")).collect(),
        0,
    )
    .unwrap();
    let error = block_on(store.save_version(&big, SaveDetails::default(), 1.0)).unwrap_err();
    assert_eq!(error.code(), "QuotaExceededError");
    assert_eq!(
        block_on(store.backend().snapshot()).unwrap(),
        before,
        "no version, no weights, same current"
    );
}

#[test]
fn eviction_order_is_stated_and_stable() {
    use localtune::store::{eviction_victims, Sample};
    let s = |id, label: &str, time| Sample {
        id,
        text: String::new(),
        label: label.into(),
        time_ms: time,
    };
    // Equal counts: the label whose oldest sample is older loses it first.
    let samples = [
        s(1, "a", 5.0),
        s(2, "b", 1.0),
        s(3, "a", 6.0),
        s(4, "b", 7.0),
        s(5, "c", 0.0),
    ];
    assert_eq!(eviction_victims(&samples, 4), [2]);
    assert_eq!(eviction_victims(&samples, 3), [2, 1]);
    assert_eq!(eviction_victims(&samples, 5), Vec::<u64>::new());
}

#[test]
fn ids_from_javascript_are_whole_numbers_in_range_never_rounded() {
    use localtune::store::id_from_number;
    assert_eq!(id_from_number("sample id", 1.0).unwrap(), 1);
    let max = 9_007_199_254_740_991.0; // 2^53 − 1
    assert_eq!(id_from_number("version", max).unwrap(), (1 << 53) - 1);
    for bad in [0.0, -1.0, 1.5, max + 1.0, f64::NAN, f64::INFINITY, 1e300] {
        let err = id_from_number("sample id", bad).unwrap_err();
        assert_eq!(err.code(), "ConfigError", "{bad}: {err}");
        assert!(err.to_string().contains("sample id"), "{err}");
    }
}

#[test]
fn missing_vectors_are_embedded_in_slices_of_512_and_each_slice_is_kept() {
    use localtune::store::{MissingSoFar, EMBED_MISSING_TEXTS};
    let shipped =
        Head::new_seeded(8, HeadArchitecture::Linear, vec!["a".into(), "b".into()], 0).unwrap();
    let store = block_on(Store::open(
        MemoryBackend::new(),
        "e",
        &shipped,
        StorePolicy::default(),
        0.0,
    ))
    .unwrap();
    // 1,100 samples stored without a vector (as an import or an encoder
    // change leaves them).
    for i in 0..1_100 {
        block_on(store.add_sample(&format!("sample {i}"), "a", 0.0, None)).unwrap();
    }
    let mut calls = Vec::new();
    let data = block_on(store.training_data_embedding_missing(
        &mut async |texts: &[&str], so_far: MissingSoFar| {
            calls.push((texts.len(), so_far.done, so_far.total));
            Ok(vec![0.125; texts.len() * 8])
        },
    ))
    .unwrap();
    // Each slice is told how far the job is.
    let slice = EMBED_MISSING_TEXTS;
    assert_eq!(
        calls,
        [
            (slice, 0, 1_100),
            (slice, slice, 1_100),
            (76, 2 * slice, 1_100)
        ]
    );
    assert!(data.missing.is_empty() && data.labels.len() == 1_100);

    // An embedding that fails on the third slice keeps the first two.
    for i in 0..1_100 {
        block_on(store.add_sample(&format!("more {i}"), "b", 0.0, None)).unwrap();
    }
    let mut slices = 0;
    let error = block_on(
        store.training_data_embedding_missing(&mut async |texts: &[&str], _| {
            slices += 1;
            if slices == 3 {
                return Err(localtune::Error::Cancelled);
            }
            Ok(vec![0.125; texts.len() * 8])
        }),
    )
    .unwrap_err();
    assert!(matches!(error, localtune::Error::Cancelled));
    assert_eq!(
        block_on(store.training_data()).unwrap().missing.len(),
        1_100 - 2 * EMBED_MISSING_TEXTS
    );
}
