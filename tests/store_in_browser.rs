//! The store's contract on IndexedDB in headless Chromium: the same cases as
//! `tests/store.rs` runs on the memory backend. What needs a real page
//! (reloads, closed tabs, quota, the real encoder) is in
//! `tests/js/store.test.mjs`.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod store_cases;

use localtune::store::indexed_db::IndexedDbBackend;
use store_cases::Fixture;
use wasm_bindgen_test::wasm_bindgen_test;

struct IndexedDb;

impl Fixture for IndexedDb {
    type Backend = IndexedDbBackend;
    async fn fresh(&self, name: &str) -> Self::Backend {
        IndexedDbBackend::delete_database(name).await.unwrap();
        IndexedDbBackend::open(name).await.unwrap()
    }
    async fn reopen(&self, name: &str) -> Self::Backend {
        IndexedDbBackend::open(name).await.unwrap()
    }
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {$(
        #[wasm_bindgen_test]
        async fn $name() {
            store_cases::$name(&IndexedDb).await;
        }
    )*};
}

cases!(
    samples_are_added_listed_and_really_deleted,
    bad_samples_are_refused_and_store_nothing,
    odd_text_and_labels_round_trip_exactly,
    past_the_cap_the_largest_labels_oldest_sample_goes,
    the_shipped_head_is_stored_once_and_current,
    versions_save_load_roll_back_and_reset,
    a_rejected_version_is_kept_but_not_current,
    current_and_shipped_versions_cannot_be_deleted,
    retention_keeps_the_newest_the_current_and_the_shipped,
    a_corrupt_weight_record_falls_back_and_is_reported,
    a_reopened_store_has_everything,
    two_connections_saving_at_once_both_keep_their_versions,
    a_new_encoder_never_uses_old_heads_and_retrains,
    export_then_import_into_a_fresh_profile_predicts_the_same,
    head_bytes_round_trip_and_damage_is_detected,
);

#[wasm_bindgen_test]
async fn the_schema_is_created_at_its_version() {
    let backend = IndexedDb.fresh("schema").await;
    assert_eq!(backend.database_name(), "localtune:schema");
    drop(backend);
    // Opening again (already at the schema version) runs no upgrade and
    // keeps the data.
    let again = IndexedDb.reopen("schema").await;
    use localtune::store::StoreBackend;
    assert_eq!(again.sample_count().await.unwrap(), 0);
}

#[wasm_bindgen_test]
async fn a_closed_store_fails_clearly() {
    use localtune::store::StoreBackend;
    let backend = IndexedDb.fresh("closed").await;
    backend.close();
    let err = backend.sample_count().await.unwrap_err();
    assert_eq!(err.code(), "StorageError");
    assert!(err.to_string().contains("closed"), "{err}");
}
