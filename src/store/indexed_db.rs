//! The IndexedDB backend, on web-sys directly.
//!
//! Why not a wrapper crate: every guarantee here rests on exactly when a
//! transaction commits, so this module issues each operation's requests
//! inside one transaction, never awaits anything but that transaction's own
//! requests while it is open (an await on anything else would let it
//! auto-commit half done), asks for `durability: "strict"` on writes (a
//! saved version is on disk when the promise resolves, not merely queued),
//! and maps DOMException names (QuotaExceededError above all) to our errors.
//! The one wrapper that fits (`idb`) pulls in tokio for its futures; the
//! request→future adapter it would save is twenty lines.
//!
//! Schema (database `localtune:<name>`, version [`SCHEMA_VERSION`]):
//!
//! | object store | key | value |
//! |---|---|---|
//! | `samples`  | `id` (auto-increment) | `{id, text, label, timeMs}` |
//! | `features` | `[sampleId, encoder]`, index `byEncoder` | `{sampleId, encoder, values: Float32Array}` |
//! | `versions` | `version` (auto-increment) | version metadata ([`VersionInfo`]) |
//! | `weights`  | `version` | `{version, checksum, bytes: Uint8Array}` |
//! | `meta`     | `"current"` | the current version number |

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Float32Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    BroadcastChannel, DomException, IdbDatabase, IdbFactory, IdbKeyRange, IdbObjectStore,
    IdbObjectStoreParameters, IdbOpenDbRequest, IdbRequest, IdbTransaction, IdbVersionChangeEvent,
    MessageEvent,
};

use super::backend::*;
use crate::error::{Error, Result};

/// The schema this build writes; [`upgrade`] brings older databases to it.
pub const SCHEMA_VERSION: u32 = 1;

/// How long an open blocked by other connections waits for them to close
/// before it fails.
const BLOCKED_GRACE_MS: u32 = 2_000;

const SAMPLES: &str = "samples";
const FEATURES: &str = "features";
const VERSIONS: &str = "versions";
const WEIGHTS: &str = "weights";
const META: &str = "meta";
const CURRENT: &str = "current";
/// The memory mark (see `StoreBackend::memory_from`), beside "current".
const MEMORY_FROM: &str = "memoryFrom";

/// Whether, and why, a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    Open,
    /// [`IndexedDbBackend::close`].
    ByCaller,
    /// Another tab opened the database with a newer schema.
    ForNewerSchema,
    /// Another tab deleted the database.
    Deleted,
    /// Another tab erased every record ([`StoreBackend::erase`]): what this
    /// one holds in memory may be trained on them.
    ErasedElsewhere,
}

/// What a backend tells the others on its database's broadcast channel
/// when it has erased every record.
const ERASED_MESSAGE: &str = "erased";

/// One open IndexedDB database.
pub struct IndexedDbBackend {
    connection: Connection,
    name: String,
    /// Settles when the last transaction begun has settled: the next one
    /// starts only then (see [`IndexedDbBackend::begin`]).
    last_transaction: RefCell<Promise>,
}

/// A connection and what closes it.
struct Connection {
    db: IdbDatabase,
    closed: Rc<Cell<Closed>>,
    /// Closes this connection when another one (a newer tab) needs to
    /// upgrade the schema or delete the database, instead of blocking it.
    _on_version_change: Closure<dyn FnMut(IdbVersionChangeEvent)>,
    /// The database's broadcast channel (named after it): closes this
    /// connection when another tab erases the store. None where the
    /// context has no BroadcastChannel.
    erasures: Option<ErasureChannel>,
}

/// A database's broadcast channel and the handler listening on it.
type ErasureChannel = (BroadcastChannel, Closure<dyn FnMut(MessageEvent)>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.close();
        if let Some((channel, _)) = &self.erasures {
            channel.set_onmessage(None);
            channel.close();
        }
    }
}

fn factory() -> Result<IdbFactory> {
    let unavailable = |why: String| Error::Storage {
        operation: "opening the database".into(),
        message: format!("IndexedDB is not available here ({why})"),
    };
    let global = js_sys::global();
    let value = Reflect::get(&global, &JsValue::from_str("indexedDB"))
        .map_err(|e| unavailable(describe(&e)))?;
    if value.is_null() || value.is_undefined() {
        return Err(unavailable("no indexedDB in this context".into()));
    }
    value
        .dyn_into::<IdbFactory>()
        .map_err(|_| unavailable("indexedDB is not an IDBFactory".into()))
}

/// The database name for an app or bundle.
pub fn database_name(name: &str) -> String {
    format!("localtune:{name}")
}

impl IndexedDbBackend {
    /// Opens (creating or upgrading) the database for `name`.
    pub async fn open(name: &str) -> Result<Self> {
        Self::open_at_schema(name, SCHEMA_VERSION).await
    }

    /// Opens the database as a build whose schema is `schema_version`
    /// would: how the browser tests play a newer build of the library
    /// against this one. Apps call [`IndexedDbBackend::open`].
    #[doc(hidden)]
    pub async fn open_at_schema(name: &str, schema_version: u32) -> Result<Self> {
        let full_name = database_name(name);
        Ok(IndexedDbBackend {
            connection: Connection::open(&full_name, schema_version).await?,
            name: full_name,
            last_transaction: RefCell::new(Promise::resolve(&JsValue::UNDEFINED)),
        })
    }

    /// Deletes the whole database for `name` (every sample and version).
    pub async fn delete_database(name: &str) -> Result<()> {
        delete_database(&database_name(name)).await
    }

    pub fn database_name(&self) -> &str {
        &self.name
    }

    /// Closes the connection; later operations fail with a StorageError.
    pub fn close(&self) {
        let connection = &self.connection;
        connection.closed.set(Closed::ByCaller);
        connection.db.close();
    }

    /// Begins a transaction once every transaction begun before it has
    /// settled, so this connection never has two in flight. Why: WebKit
    /// leaves a database unable to run any transaction again, in any tab and
    /// after reloads, when a worker ends while its connection has a
    /// read-write and a read-only transaction in flight (WebKit bug 324094;
    /// the worker ends when its page reloads or is closed, at any moment).
    /// IndexedDB runs overlapping transactions one after another anyway, so
    /// the queue costs next to nothing.
    async fn begin(&self, stores: &[&str], write: bool, operation: &'static str) -> Result<Tx> {
        let turn = Turn::new();
        let previous = self.last_transaction.replace(turn.promise.clone());
        // Settles either way: it is this queue's own promise.
        let _ = JsFuture::from(previous).await;
        let tx = self.connection.begin(stores, write, operation)?;
        turn.pass_when_settled(&tx.done);
        Ok(tx)
    }

    /// A write transaction over every object store, each cleared in it:
    /// what an import writes into, and what erasing commits.
    async fn begin_cleared(&self, operation: &'static str) -> Result<Tx> {
        let every = [SAMPLES, FEATURES, VERSIONS, WEIGHTS, META];
        let tx = self.begin(&every, true, operation).await?;
        for name in every {
            tx.send(tx.store(name)?.clear())?;
        }
        Ok(tx)
    }
}

/// A place in the transaction queue: its promise settles when the
/// transaction begun in it settles, or at once if none is (the caller's
/// future dropped while waiting, or the transaction refused), so the queue
/// never waits for a transaction that does not exist.
struct Turn {
    promise: Promise,
    pass: Option<Function>,
}

impl Turn {
    fn new() -> Self {
        let mut pass = None;
        let promise = Promise::new(&mut |resolve, _| pass = Some(resolve));
        Turn { promise, pass }
    }

    /// Passes the turn on once `done` (a transaction's outcome) settles.
    fn pass_when_settled(mut self, done: &Promise) {
        if let Some(pass) = self.pass.take() {
            let settled = Promise::all_settled(&Array::of1(done));
            let _ = pass.call1(&JsValue::NULL, &settled);
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(pass) = self.pass.take() {
            let _ = pass.call0(&JsValue::NULL);
        }
    }
}

/// Deletes the database `full_name`. If other connections hold it, the
/// deletion waits until they close: this library's close theirs at once
/// (their `versionchange` handler), saying why.
async fn delete_database(full_name: &str) -> Result<()> {
    let op = "deleting the database";
    let request = factory()?
        .delete_database(full_name)
        .map_err(|e| storage_error(op, &e))?;
    let request: IdbRequest = request.unchecked_into();
    await_request(&request)
        .await
        .map_err(|e| storage_error(op, &e))?;
    Ok(())
}

impl Connection {
    async fn open(full_name: &str, schema_version: u32) -> Result<Self> {
        let op = "opening the database";
        let request: IdbOpenDbRequest = factory()?
            .open_with_u32(full_name, schema_version)
            .map_err(|e| storage_error(op, &e))?;
        let on_upgrade = Closure::<dyn FnMut(IdbVersionChangeEvent)>::new({
            let request = request.clone();
            move |event: IdbVersionChangeEvent| {
                if upgrade(&request, event.old_version() as u32).is_err() {
                    // Aborting the upgrade fails the open request, which
                    // reports the error; the old schema stays as it was.
                    if let Some(tx) = request.transaction() {
                        let _ = tx.abort();
                    }
                }
            }
        });
        request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
        let blocked_message = JsValue::from_str(
            "another tab has this database open with an older schema and did not close it; close other tabs",
        );
        // `blocked` also fires while the other connections are already
        // closing, each waiting for its last transaction (this library's
        // own close on `versionchange`): give them a moment before telling
        // the caller to close other tabs. The timer calls a bound JS
        // function, so this handler can go once the open settles.
        let give_up: RefCell<Option<Function>> = RefCell::new(None);
        let opened = Promise::new(&mut |resolve, reject| {
            request.set_onsuccess(Some(&resolve));
            request.set_onerror(Some(&reject));
            *give_up.borrow_mut() = Some(
                JsValue::from(reject.bind1(&JsValue::NULL, &blocked_message)).unchecked_into(),
            );
        });
        let give_up = give_up.into_inner().expect("the executor runs at once");
        let on_blocked = Closure::<dyn FnMut()>::new(move || {
            let set_timeout: Option<Function> =
                Reflect::get(&js_sys::global(), &"setTimeout".into())
                    .ok()
                    .and_then(|f| f.dyn_into().ok());
            let waited = set_timeout.and_then(|set_timeout| {
                set_timeout
                    .call2(&JsValue::NULL, &give_up, &BLOCKED_GRACE_MS.into())
                    .ok()
            });
            if waited.is_none() {
                let _ = give_up.call0(&JsValue::NULL);
            }
        });
        request.set_onblocked(Some(on_blocked.as_ref().unchecked_ref()));
        let outcome = JsFuture::from(opened).await;
        request.set_onblocked(None);
        drop(on_blocked);
        if outcome.is_err() {
            // A blocked request stays queued after the caller has been told
            // it failed: once the other tab closes, the browser would run
            // its upgrade after all, and open a connection nobody holds
            // (which would block the next open in turn). Abort that
            // upgrade instead, so a failed open changes nothing and a
            // later open starts clean.
            let abandon = Closure::once_into_js({
                let request = request.clone();
                move || {
                    if let Some(tx) = request.transaction() {
                        let _ = tx.abort();
                    }
                }
            });
            request.set_onupgradeneeded(Some(abandon.unchecked_ref()));
        } else {
            request.set_onupgradeneeded(None);
        }
        drop(on_upgrade);
        if let Err(e) = outcome {
            let error = request
                .error()
                .ok()
                .flatten()
                .map(JsValue::from)
                .unwrap_or(e);
            return Err(storage_error(op, &error));
        }
        let db: IdbDatabase = request
            .result()
            .map_err(|e| storage_error(op, &e))?
            .unchecked_into();
        let closed = Rc::new(Cell::new(Closed::Open));
        let on_version_change = Closure::<dyn FnMut(IdbVersionChangeEvent)>::new({
            let db = db.clone();
            let closed = closed.clone();
            move |event: IdbVersionChangeEvent| {
                closed.set(match event.new_version() {
                    Some(_) => Closed::ForNewerSchema,
                    None => Closed::Deleted,
                });
                db.close()
            }
        });
        db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        let erasures = BroadcastChannel::new(full_name).ok().map(|channel| {
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
                let db = db.clone();
                let closed = closed.clone();
                move |event: MessageEvent| {
                    if event.data().as_string().as_deref() == Some(ERASED_MESSAGE)
                        && closed.get() == Closed::Open
                    {
                        closed.set(Closed::ErasedElsewhere);
                        db.close();
                    }
                }
            });
            channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            (channel, on_message)
        });
        Ok(Connection {
            db,
            closed,
            _on_version_change: on_version_change,
            erasures,
        })
    }

    fn begin(&self, stores: &[&str], write: bool, operation: &'static str) -> Result<Tx> {
        let why = match self.closed.get() {
            Closed::Open => None,
            Closed::ByCaller => Some("the store was closed"),
            Closed::ForNewerSchema => Some(
                "another tab opened this database with a newer version of the library, \
                 so this connection was closed; reload the page",
            ),
            Closed::Deleted => Some("another tab deleted this database; reload the page"),
            Closed::ErasedElsewhere => {
                Some("another tab erased this store (deleteEverything); reload the page")
            }
        };
        if let Some(why) = why {
            return Err(Error::Storage {
                operation: operation.into(),
                message: why.into(),
            });
        }
        let names: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
        let options = Object::new();
        if write {
            Reflect::set(&options, &"durability".into(), &"strict".into()).expect("plain object");
        }
        let mode = if write { "readwrite" } else { "readonly" };
        // `transaction(stores, mode, options)` through Reflect: web-sys
        // gates the options dictionary (durability) behind unstable APIs.
        let transaction: Function = Reflect::get(&self.db, &"transaction".into())
            .map_err(|e| storage_error(operation, &e))?
            .unchecked_into();
        let tx: IdbTransaction = transaction
            .call3(&self.db, &names, &mode.into(), &options)
            .map_err(|e| storage_error(operation, &e))?
            .unchecked_into();
        let done = Promise::new(&mut |resolve, reject| {
            tx.set_oncomplete(Some(&resolve));
            tx.set_onabort(Some(&reject));
            tx.set_onerror(Some(&reject));
        });
        // Nobody awaits the outcome of a read, or of a write given up early
        // (its error already returned): without a handler its rejection
        // would reach the page as an unhandled one.
        IGNORE_REJECTION.with(|ignore| {
            let _ = done.catch(ignore);
        });
        Ok(Tx {
            tx,
            done,
            operation,
            write,
            settled: Cell::new(false),
        })
    }
}

/// Creates or migrates the object stores, inside the upgrade transaction.
fn upgrade(request: &IdbOpenDbRequest, old_version: u32) -> std::result::Result<(), JsValue> {
    let db: IdbDatabase = request.result()?.unchecked_into();
    if old_version < 1 {
        let auto = |key: &str| {
            let p = IdbObjectStoreParameters::new();
            p.set_key_path(&JsValue::from_str(key));
            p.set_auto_increment(true);
            p
        };
        let keyed = |key: &JsValue| {
            let p = IdbObjectStoreParameters::new();
            p.set_key_path(key);
            p
        };
        db.create_object_store_with_optional_parameters(SAMPLES, &auto("id"))?;
        let features = db.create_object_store_with_optional_parameters(
            FEATURES,
            &keyed(&Array::of2(&"sampleId".into(), &"encoder".into())),
        )?;
        features.create_index_with_str("byEncoder", "encoder")?;
        db.create_object_store_with_optional_parameters(VERSIONS, &auto("version"))?;
        db.create_object_store_with_optional_parameters(WEIGHTS, &keyed(&"version".into()))?;
        db.create_object_store(META)?;
    }
    // Later schema versions add `if old_version < 2 { … }` here, so every
    // older database is migrated step by step.
    Ok(())
}

thread_local! {
    /// A rejection handler that does nothing (one for every transaction).
    static IGNORE_REJECTION: Closure<dyn FnMut(JsValue)> = Closure::new(|_: JsValue| {});
}

/// One transaction and the promise of its outcome.
///
/// A write transaction must end in [`Tx::commit`] or [`Tx::abort_with`]:
/// one dropped before that (a `?` returning early between its requests, or
/// its future dropped) is aborted, so the requests it already sent — the
/// clears of an import, say — do not commit by themselves.
struct Tx {
    tx: IdbTransaction,
    done: Promise,
    operation: &'static str,
    write: bool,
    settled: Cell<bool>,
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.write && !self.settled.get() {
            let _ = self.tx.abort();
        }
    }
}

impl Tx {
    fn store(&self, name: &str) -> Result<IdbObjectStore> {
        self.tx
            .object_store(name)
            .map_err(|e| storage_error(self.operation, &e))
    }

    /// Awaits one request of this transaction. If it fails, the transaction
    /// aborts; its error (e.g. QuotaExceededError) says more than the
    /// request's, so that is the one reported.
    async fn run(&self, request: std::result::Result<IdbRequest, JsValue>) -> Result<JsValue> {
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                let _ = self.tx.abort();
                return Err(storage_error(self.operation, &e));
            }
        };
        match await_request(&request).await {
            Ok(value) => Ok(value),
            Err(e) => Err(self.failure(e).await),
        }
    }

    /// Issues a request whose result nobody needs; its failure still aborts
    /// the transaction and surfaces in [`Tx::commit`].
    fn send(&self, request: std::result::Result<IdbRequest, JsValue>) -> Result<()> {
        request.map(drop).map_err(|e| {
            let _ = self.tx.abort();
            storage_error(self.operation, &e)
        })
    }

    /// Waits until the transaction is durably committed (it commits by
    /// itself once its last request is done).
    async fn commit(self) -> Result<()> {
        self.settled.set(true);
        match JsFuture::from(self.done.clone()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failure(e).await),
        }
    }

    async fn abort_with(self, error: Error) -> Error {
        self.settled.set(true);
        let _ = self.tx.abort();
        let _ = JsFuture::from(self.done.clone()).await;
        error
    }

    /// The transaction's error, else that of the request whose failure
    /// `fallback` (the rejection: an error or an `error`/`abort` event)
    /// reports: WebKit aborts a write refused for quota with no error on
    /// the transaction, only on the failed request, the target of the
    /// `error` event that bubbles up to the transaction (tests/js/
    /// store.test.mjs, the full quota in WebKit).
    async fn failure(&self, fallback: JsValue) -> Error {
        let _ = JsFuture::from(self.done.clone()).await;
        let from_event = || {
            let target = fallback.dyn_ref::<web_sys::Event>()?.target()?;
            let request = target.dyn_into::<IdbRequest>().ok()?;
            request.error().ok().flatten()
        };
        match self.tx.error().or_else(from_event) {
            Some(dom) => storage_error(self.operation, &dom.into()),
            None => storage_error(self.operation, &fallback),
        }
    }
}

/// Resolves with the request's result once it succeeds.
async fn await_request(request: &IdbRequest) -> std::result::Result<JsValue, JsValue> {
    let settled = Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    match JsFuture::from(settled).await {
        Ok(_) => request.result(),
        Err(event) => Err(request
            .error()
            .ok()
            .flatten()
            .map(JsValue::from)
            .unwrap_or(event)),
    }
}

/// Maps a DOMException (or any thrown value) to our error type.
fn storage_error(operation: &str, error: &JsValue) -> Error {
    let message = describe(error);
    let dom = error.dyn_ref::<DomException>();
    match dom.map(|d| d.name()) {
        Some(name) if name == "QuotaExceededError" || refused_by_quota(dom) => {
            Error::QuotaExceeded {
                operation: operation.into(),
                message,
            }
        }
        _ => Error::Storage {
            operation: operation.into(),
            message,
        },
    }
}

/// Firefox refuses a record larger than the storage quota leaves room for
/// at the `put` itself, with an InvalidStateError that names no quota
/// (tests/js/store.test.mjs, the full quota in Firefox): it is a full store
/// all the same, and the app should hear so.
fn refused_by_quota(dom: Option<&DomException>) -> bool {
    dom.is_some_and(|d| {
        d.name() == "InvalidStateError" && d.message().contains("did not allow mutations")
    })
}

fn describe(error: &JsValue) -> String {
    if let Some(dom) = error.dyn_ref::<DomException>() {
        return format!("{}: {}", dom.name(), dom.message());
    }
    if let Some(e) = error.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}

fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| Error::Storage {
            operation: "encoding a record".into(),
            message: e.to_string(),
        })
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::CorruptRecord {
        what: what.into(),
        detail: detail.to_string(),
    }
}

fn from_js<T: serde::de::DeserializeOwned>(what: &str, value: JsValue) -> Result<T> {
    serde_wasm_bindgen::from_value(value).map_err(|e| corrupt(what, e))
}

fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn record(entries: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (key, value) in entries {
        Reflect::set(&object, &JsValue::from_str(key), value).expect("plain object");
    }
    object.into()
}

fn features_record(sample_id: SampleId, encoder: &str, values: &[f32]) -> JsValue {
    record(&[
        ("sampleId", JsValue::from_f64(sample_id as f64)),
        ("encoder", JsValue::from_str(encoder)),
        ("values", Float32Array::from(values).into()),
    ])
}

/// Every feature key of one sample: `[id]` < `[id, any string]` < `[id, []]`.
fn sample_features_range(id: SampleId) -> Result<IdbKeyRange> {
    let id = JsValue::from_f64(id as f64);
    IdbKeyRange::bound(&Array::of1(&id), &Array::of2(&id, &Array::new()))
        .map_err(|e| storage_error("key range", &e))
}

fn read_weights(value: JsValue, version: VersionNumber) -> Result<WeightsRecord> {
    let what = format!("weights record of version {version}");
    let checksum = get(&value, "checksum")
        .as_string()
        .ok_or_else(|| corrupt(&what, "no checksum"))?;
    let bytes = get(&value, "bytes")
        .dyn_into::<Uint8Array>()
        .map_err(|_| corrupt(&what, "the weights are not bytes"))?
        .to_vec();
    Ok(WeightsRecord {
        version,
        checksum,
        bytes,
    })
}

fn weights_record(version: VersionNumber, checksum: &str, bytes: &[u8]) -> JsValue {
    record(&[
        ("version", JsValue::from_f64(version as f64)),
        ("checksum", JsValue::from_str(checksum)),
        ("bytes", Uint8Array::from(bytes).into()),
    ])
}

fn number(value: &JsValue, what: &str) -> Result<u64> {
    match value.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(n as u64),
        _ => Err(corrupt(
            what,
            format!("expected a whole number, found {value:?}"),
        )),
    }
}

fn versions_from(value: JsValue) -> Result<Vec<VersionInfo>> {
    let array: Array = value.unchecked_into();
    array
        .iter()
        .map(|v| {
            let what = format!("version record {:?}", get(&v, "version").as_f64());
            from_js(&what, v)
        })
        .collect()
}

impl StoreBackend for IndexedDbBackend {
    async fn add_sample(
        &self,
        sample: NewSample,
        features: Option<(&str, &[f32])>,
    ) -> Result<Sample> {
        let tx = self
            .begin(&[SAMPLES, FEATURES], true, "adding a sample")
            .await?;
        let value = record(&[
            ("text", JsValue::from_str(&sample.text)),
            ("label", JsValue::from_str(&sample.label)),
            ("timeMs", JsValue::from_f64(sample.time_ms)),
        ]);
        let key = tx.run(tx.store(SAMPLES)?.add(&value)).await?;
        let id = number(&key, "sample key")?;
        if let Some((encoder, values)) = features {
            tx.send(
                tx.store(FEATURES)?
                    .put(&features_record(id, encoder, values)),
            )?;
        }
        tx.commit().await?;
        Ok(Sample {
            id,
            text: sample.text,
            label: sample.label,
            time_ms: sample.time_ms,
        })
    }

    async fn samples(&self) -> Result<Vec<Sample>> {
        let tx = self.begin(&[SAMPLES], false, "reading samples").await?;
        let all = tx.run(tx.store(SAMPLES)?.get_all()).await?;
        let array: Array = all.unchecked_into();
        array.iter().map(|v| from_js("sample record", v)).collect()
    }

    async fn sample_count(&self) -> Result<usize> {
        let tx = self.begin(&[SAMPLES], false, "counting samples").await?;
        let n = tx.run(tx.store(SAMPLES)?.count()).await?;
        Ok(number(&n, "sample count")? as usize)
    }

    async fn count_samples_after(&self, id: SampleId) -> Result<usize> {
        let op = "counting samples";
        let tx = self.begin(&[SAMPLES], false, op).await?;
        // Ids are below 2^53 (the key generator's limit), so the f64 is exact.
        let above = IdbKeyRange::lower_bound_with_open(&JsValue::from_f64(id as f64), true)
            .map_err(|e| storage_error(op, &e))?;
        let n = tx.run(tx.store(SAMPLES)?.count_with_key(&above)).await?;
        Ok(number(&n, "sample count")? as usize)
    }

    async fn delete_samples(&self, ids: &[SampleId]) -> Result<usize> {
        let tx = self
            .begin(&[SAMPLES, FEATURES], true, "deleting samples")
            .await?;
        let samples = tx.store(SAMPLES)?;
        let features = tx.store(FEATURES)?;
        let mut existed = 0;
        for &id in ids {
            let key = JsValue::from_f64(id as f64);
            let n = tx.run(samples.count_with_key(&key)).await?;
            existed += number(&n, "sample count")? as usize;
            tx.send(samples.delete(&key))?;
            tx.send(features.delete(&sample_features_range(id)?.into()))?;
        }
        tx.commit().await?;
        Ok(existed)
    }

    async fn delete_all_samples(&self) -> Result<()> {
        let tx = self
            .begin(&[SAMPLES, FEATURES], true, "deleting all samples")
            .await?;
        tx.send(tx.store(SAMPLES)?.clear())?;
        tx.send(tx.store(FEATURES)?.clear())?;
        tx.commit().await
    }

    async fn put_features(&self, encoder_sha256: &str, rows: &[CachedFeatures]) -> Result<()> {
        let tx = self
            .begin(&[SAMPLES, FEATURES], true, "caching feature vectors")
            .await?;
        let samples = tx.store(SAMPLES)?;
        let features = tx.store(FEATURES)?;
        for row in rows {
            let n = tx
                .run(samples.count_with_key(&JsValue::from_f64(row.sample_id as f64)))
                .await?;
            if number(&n, "sample count")? > 0 {
                tx.send(features.put(&features_record(
                    row.sample_id,
                    encoder_sha256,
                    &row.values,
                )))?;
            }
        }
        tx.commit().await
    }

    async fn features(&self, encoder_sha256: &str) -> Result<Vec<CachedFeatures>> {
        let tx = self
            .begin(&[FEATURES], false, "reading feature vectors")
            .await?;
        let index = tx
            .store(FEATURES)?
            .index("byEncoder")
            .map_err(|e| storage_error("reading feature vectors", &e))?;
        let all: Array = tx
            .run(index.get_all_with_key(&JsValue::from_str(encoder_sha256)))
            .await?
            .unchecked_into();
        all.iter()
            .map(|v| {
                let sample_id = number(&get(&v, "sampleId"), "feature record")?;
                let values = get(&v, "values")
                    .dyn_into::<Float32Array>()
                    .map_err(|_| corrupt("feature record", "values are not a Float32Array"))?
                    .to_vec();
                Ok(CachedFeatures { sample_id, values })
            })
            .collect()
    }

    async fn versions(&self) -> Result<Vec<VersionInfo>> {
        let tx = self.begin(&[VERSIONS], false, "listing versions").await?;
        versions_from(tx.run(tx.store(VERSIONS)?.get_all()).await?)
    }

    async fn weights(&self, version: VersionNumber) -> Result<Option<WeightsRecord>> {
        let tx = self.begin(&[WEIGHTS], false, "reading weights").await?;
        let value = tx
            .run(tx.store(WEIGHTS)?.get(&JsValue::from_f64(version as f64)))
            .await?;
        if value.is_undefined() {
            return Ok(None);
        }
        read_weights(value, version).map(Some)
    }

    async fn commit_version(
        &self,
        meta: VersionMeta,
        weights: Vec<u8>,
        make_current: bool,
    ) -> Result<VersionInfo> {
        let tx = self
            .begin(&[VERSIONS, WEIGHTS, META], true, "saving a head version")
            .await?;
        // The key generator numbers the version inside this transaction, so
        // two tabs saving at once get distinct numbers: the metadata is
        // stored without a `version` and the key path adds it.
        let key = tx.run(tx.store(VERSIONS)?.add(&to_js(&meta)?)).await?;
        let version = number(&key, "version key")?;
        tx.send(
            tx.store(WEIGHTS)?
                .put(&weights_record(version, &meta.checksum, &weights)),
        )?;
        if make_current {
            tx.send(tx.store(META)?.put_with_key(&key, &CURRENT.into()))?;
        }
        tx.commit().await?;
        Ok(VersionInfo { version, meta })
    }

    async fn current(&self) -> Result<Option<VersionNumber>> {
        let tx = self
            .begin(&[META], false, "reading the current version")
            .await?;
        let value = tx.run(tx.store(META)?.get(&CURRENT.into())).await?;
        if value.is_undefined() {
            return Ok(None);
        }
        number(&value, "current pointer").map(Some)
    }

    async fn set_current(
        &self,
        version: VersionNumber,
        memory_from: Option<SampleId>,
    ) -> Result<()> {
        let tx = self
            .begin(&[VERSIONS, META], true, "changing the current version")
            .await?;
        let key = JsValue::from_f64(version as f64);
        let n = number(
            &tx.run(tx.store(VERSIONS)?.count_with_key(&key)).await?,
            "version count",
        )?;
        if n == 0 {
            return Err(tx
                .abort_with(Error::NotFound(format!("head version {version}")))
                .await);
        }
        tx.send(tx.store(META)?.put_with_key(&key, &CURRENT.into()))?;
        if let Some(mark) = memory_from {
            tx.send(
                tx.store(META)?
                    .put_with_key(&JsValue::from_f64(mark as f64), &MEMORY_FROM.into()),
            )?;
        }
        tx.commit().await
    }

    async fn memory_from(&self) -> Result<SampleId> {
        let tx = self
            .begin(&[META], false, "reading the memory mark")
            .await?;
        let value = tx.run(tx.store(META)?.get(&MEMORY_FROM.into())).await?;
        if value.is_undefined() {
            return Ok(0);
        }
        number(&value, "memory mark")
    }

    async fn delete_versions(&self, versions: &[VersionNumber]) -> Result<()> {
        let tx = self
            .begin(&[VERSIONS, WEIGHTS, META], true, "deleting versions")
            .await?;
        let current = tx.run(tx.store(META)?.get(&CURRENT.into())).await?;
        let current = current.as_f64().map(|n| n as u64);
        let store = tx.store(VERSIONS)?;
        for &v in versions {
            let key = JsValue::from_f64(v as f64);
            let value = tx.run(store.get(&key)).await?;
            let info: Option<VersionInfo> = if value.is_undefined() {
                None
            } else {
                Some(from_js("version record", value)?)
            };
            if let Err(e) = super::memory::refuse_protected(v, current, info.as_ref()) {
                return Err(tx.abort_with(e).await);
            }
            tx.send(store.delete(&key))?;
            tx.send(tx.store(WEIGHTS)?.delete(&key))?;
        }
        tx.commit().await
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        let tx = self
            .begin(&[SAMPLES, VERSIONS, WEIGHTS, META], false, "exporting")
            .await?;
        let samples: Array = tx.run(tx.store(SAMPLES)?.get_all()).await?.unchecked_into();
        let versions = versions_from(tx.run(tx.store(VERSIONS)?.get_all()).await?)?;
        let weights: Array = tx.run(tx.store(WEIGHTS)?.get_all()).await?.unchecked_into();
        let current = tx.run(tx.store(META)?.get(&CURRENT.into())).await?;
        Ok(Snapshot {
            samples: samples
                .iter()
                .map(|v| from_js("sample record", v))
                .collect::<Result<_>>()?,
            versions,
            weights: weights
                .iter()
                .map(|v| read_weights(v.clone(), number(&get(&v, "version"), "weights record")?))
                .collect::<Result<_>>()?,
            current: current.as_f64().map(|n| n as u64),
        })
    }

    async fn replace_all(&self, snapshot: &Snapshot) -> Result<()> {
        let tx = self.begin_cleared("importing").await?;
        let samples = tx.store(SAMPLES)?;
        for s in &snapshot.samples {
            tx.send(samples.put(&to_js(s)?))?;
        }
        let versions = tx.store(VERSIONS)?;
        for v in &snapshot.versions {
            tx.send(versions.put(&to_js(v)?))?;
        }
        let weights = tx.store(WEIGHTS)?;
        for w in &snapshot.weights {
            tx.send(weights.put(&weights_record(w.version, &w.checksum, &w.bytes)))?;
        }
        if let Some(current) = snapshot.current {
            tx.send(
                tx.store(META)?
                    .put_with_key(&JsValue::from_f64(current as f64), &CURRENT.into()),
            )?;
        }
        tx.commit().await
    }

    /// Every record goes, in one durable transaction, and the other tabs'
    /// connections to the store close (they may hold what was learned from
    /// the records in memory), through the database's broadcast channel.
    ///
    /// The database itself stays, empty (its id counters go on: an id never
    /// names two corrections). Deleting it would wait for every other
    /// connection to close, and WebKit keeps a connection open for good
    /// when a worker ends with a transaction in flight (a page left while
    /// its worker wrote): the deletion, and every open queued behind it,
    /// then never finished (tests/js/worker.test.mjs).
    async fn erase(&self) -> Result<()> {
        self.begin_cleared("erasing the store")
            .await?
            .commit()
            .await?;
        if let Some((channel, _)) = &self.connection.erasures {
            let _ = channel.post_message(&ERASED_MESSAGE.into());
        }
        Ok(())
    }
}
