//! The store's contract on IndexedDB in headless Chromium: the same cases as
//! `tests/store.rs` runs on the memory backend. What needs a real page
//! (reloads, closed tabs, quota, the real encoder) is in
//! `tests/js/store.test.mjs`.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[macro_use]
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

all_store_cases!(cases);

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
