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

/// Every multi-record write is all or nothing: here the import's clears are
/// sent, then a record fails to encode (a sample id past 2^53 − 1, which a
/// JavaScript number cannot hold), and nothing of it commits.
#[wasm_bindgen_test]
async fn a_write_that_fails_midway_commits_nothing() {
    use localtune::store::{NewSample, StoreBackend};
    let backend = IndexedDb.fresh("midway").await;
    for i in 0..3 {
        let sample = NewSample {
            text: format!("text {i}"),
            label: "lights".into(),
            time_ms: i as f64,
        };
        backend.add_sample(sample, None).await.unwrap();
    }
    let before = backend.snapshot().await.unwrap();
    let mut hostile = before.clone();
    hostile.samples[1].id = u64::MAX;
    let err = backend.replace_all(&hostile).await.unwrap_err();
    assert_eq!(err.code(), "StorageError", "{err}");
    assert_eq!(
        backend.snapshot().await.unwrap(),
        before,
        "record for record"
    );
    assert_eq!(backend.sample_count().await.unwrap(), 3);
    // The connection still works.
    let sample = NewSample {
        text: "after".into(),
        label: "lights".into(),
        time_ms: 9.0,
    };
    backend.add_sample(sample, None).await.unwrap();
    assert_eq!(backend.sample_count().await.unwrap(), 4);
}

/// The page's `indexedDB`, for playing another tab's raw connections.
fn idb_factory() -> web_sys::IdbFactory {
    use wasm_bindgen::JsCast;
    js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into())
        .unwrap()
        .unchecked_into()
}

/// Resolves when `request` succeeds, rejects when it fails.
fn settle(request: web_sys::IdbRequest) -> wasm_bindgen_futures::JsFuture {
    let done = js_sys::Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    wasm_bindgen_futures::JsFuture::from(done)
}

/// Another tab opening the database at a newer schema (a newer version of
/// the library) closes this connection, which then says why instead of
/// failing with the browser's InvalidStateError; so does another tab
/// deleting the database.
#[wasm_bindgen_test]
async fn a_connection_closed_by_another_tab_says_why() {
    use localtune::store::indexed_db::database_name;
    use localtune::store::StoreBackend;
    use wasm_bindgen::JsCast;

    let factory = idb_factory();

    let backend = IndexedDb.fresh("newer").await;
    assert_eq!(backend.sample_count().await.unwrap(), 0);
    let newer = factory
        .open_with_u32(
            &database_name("newer"),
            localtune::store::indexed_db::SCHEMA_VERSION + 1,
        )
        .unwrap();
    settle(newer.clone().unchecked_into()).await.unwrap();
    let err = backend.sample_count().await.unwrap_err();
    assert_eq!(err.code(), "StorageError");
    assert!(
        err.to_string().contains("newer version of the library"),
        "{err}"
    );
    newer
        .result()
        .unwrap()
        .unchecked_into::<web_sys::IdbDatabase>()
        .close();

    let backend = IndexedDb.fresh("deleted").await;
    let deleting = factory.delete_database(&database_name("deleted")).unwrap();
    settle(deleting.unchecked_into()).await.unwrap();
    let err = backend.sample_count().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("another tab deleted this database"),
        "{err}"
    );
    // The way back: opening again gives an empty, working store.
    drop(backend);
    let reopened = IndexedDb.reopen("deleted").await;
    assert_eq!(reopened.sample_count().await.unwrap(), 0);
}

/// A newer build opening the database while another tab holds it at the
/// older schema and does not close it (a tab of some other code; this
/// library's own connections close on `versionchange`): the open fails,
/// after a short grace for connections that are closing, saying so; the
/// blocked request does not upgrade the database later behind the caller's
/// back, and opening again once the tab is closed works.
#[wasm_bindgen_test]
async fn a_blocked_open_fails_clearly_and_changes_nothing() {
    use localtune::store::indexed_db::{database_name, SCHEMA_VERSION};
    use localtune::store::{NewSample, StoreBackend};
    use wasm_bindgen::JsCast;

    let factory = idb_factory();
    let opened = |request: web_sys::IdbOpenDbRequest| async move {
        settle(request.clone().unchecked_into()).await.unwrap();
        request
            .result()
            .unwrap()
            .unchecked_into::<web_sys::IdbDatabase>()
    };

    let backend = IndexedDb.fresh("blocked").await;
    backend
        .add_sample(
            NewSample {
                text: "kept".into(),
                label: "a".into(),
                time_ms: 1.0,
            },
            None,
        )
        .await
        .unwrap();
    drop(backend);
    // The other tab: a connection with no versionchange handler.
    let holder = opened(factory.open(&database_name("blocked")).unwrap()).await;
    assert_eq!(holder.version() as u32, SCHEMA_VERSION);

    let newer = SCHEMA_VERSION + 1;
    let err = match IndexedDbBackend::open_at_schema("blocked", newer).await {
        Ok(_) => panic!("an open blocked by another tab succeeded"),
        Err(err) => err,
    };
    assert_eq!(err.code(), "StorageError");
    assert!(err.to_string().contains("close other tabs"), "{err}");

    // The tab closes. The abandoned request reaches the front of the queue
    // before this open (requests are served in order); it must not have
    // upgraded the database.
    holder.close();
    let after = opened(factory.open(&database_name("blocked")).unwrap()).await;
    assert_eq!(
        after.version() as u32,
        SCHEMA_VERSION,
        "the abandoned open upgraded the database"
    );
    after.close();
    let backend = IndexedDb.reopen("blocked").await;
    assert_eq!(backend.sample_count().await.unwrap(), 1);
    drop(backend);

    // The way back: with no other tab in the way, the newer build opens.
    let upgraded = IndexedDbBackend::open_at_schema("blocked", newer)
        .await
        .unwrap();
    assert_eq!(upgraded.sample_count().await.unwrap(), 1);
    drop(upgraded);
    IndexedDbBackend::delete_database("blocked").await.unwrap();
}
