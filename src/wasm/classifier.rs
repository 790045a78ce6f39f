//! The `Classifier` class: what a web app imports, an adapter over
//! [`crate::classifier::Classifier`] on IndexedDB. It converts arguments,
//! fetches the bundle's files, asks the browser what the core's rules need
//! to know (idle? charging?) and turns results into promises; every decision
//! (options, which files, when to update, what waits for what) is the
//! core's. Async methods clone an `Rc` into their futures; no borrow of the
//! JS object outlives a call.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};

use super::embedding_pool::JsEmbeddingPool;
use super::head::{observer, observer_in_options, to_js, UpdateEventCallback, UpdateOptionsArg};
use super::store::StorageStatus;
use super::{js_error, options_json, performance_now};
use crate::bundle::{self, Bundle, BundleFile, MANIFEST_FILE};
use crate::checksum::lowercase_hex;
use crate::classifier::embedding_pool::EmbeddingPool;
use crate::classifier::options::{update_config_over, ClassifierOptions};
use crate::classifier::{Classifier, Feedback, Stats};
use crate::error::Error;
use crate::store::id_from_number;
use crate::store::indexed_db::IndexedDbBackend;
use crate::UpdateConfig;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Where a bundle comes from: the URL of its manifest.json (or of its folder, ending in "/"), or its files' bytes by name. */
export type BundleSource = string | Record<string, Uint8Array> | Map<string, Uint8Array>;

/** `Classifier.load`'s options: those of `ClassifierConfig`, and the functions that see its events. */
export interface ClassifierOptions extends ClassifierConfig {
  /** Sees automatic updates start, progress, finish or fail. */
  onAutoUpdate?: (event: AutoUpdateEvent) => void;
  /** Sees a bundle loaded by URL arrive: bytes so far, of the files started so far (from the cache at once). */
  onLoadProgress?: (progress: LoadProgress) => void;
  /** Where big embedding jobs run (an import's, an update's after an encoder change): an `EmbeddingPool` (localtune/embedding-pool). Without one, on this thread. */
  embeddingPool?: EmbeddingPoolLike;
}

/** `importData`'s options. */
export interface ImportOptions {
  /** Stops the import while its corrections are embedded (an `AbortError`; nothing was changed). */
  signal?: AbortSignal;
  /** Sees the embedding of the imported corrections: texts done, of how many, on how many workers (0: this thread). Return `false` to cancel. */
  onProgress?: (progress: EmbeddingProgress) => boolean | void;
}

export type AutoUpdateEvent =
  | { phase: "started"; pending: number }
  | { phase: "progress"; event: UpdateEvent }
  | { phase: "finished"; report: UpdateReport }
  | { phase: "failed"; error: Error };

"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "BundleSource")]
    pub type BundleSourceArg;
    #[wasm_bindgen(typescript_type = "ClassifierOptions")]
    pub type ClassifierOptionsArg;
    #[wasm_bindgen(typescript_type = "ImportOptions")]
    pub type ImportOptionsArg;
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(message: &str);
}

/// `Classifier.stats()`: the core's counts, the origin's storage and the
/// bundle's bytes in the Cache API (0: not cached).
#[derive(Serialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(missing_as_null)]
struct ClassifierStats {
    #[serde(flatten)]
    #[tsify(type = "ClassifierCounts")]
    counts: Stats,
    storage: StorageStatus,
    bundle_cache_bytes: f64,
}

struct Inner {
    classifier: Classifier<IndexedDbBackend>,
    /// `onAutoUpdate`: sees automatic updates start, progress, end.
    listener: Option<Function>,
    /// A task runs the working head's relearning between other tasks.
    relearning: Cell<bool>,
    /// Bytes of the bundle kept in the Cache API when it loaded.
    bundle_cache_bytes: f64,
}

/// A personalizable text classifier (see the README's quick start).
#[wasm_bindgen(js_name = Classifier)]
pub struct JsClassifier {
    inner: Rc<Inner>,
}

fn err(e: Error) -> JsValue {
    js_error(e)
}

fn now() -> f64 {
    js_sys::Date::now()
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, JsValue> {
    fetch_bytes_with(url, &JsValue::UNDEFINED).await
}

/// `fetch(url, init)`'s body, or a `BundleError` naming the URL.
async fn fetch_bytes_with(url: &str, init: &JsValue) -> Result<Vec<u8>, JsValue> {
    let response = fetch_response(url, init).await?;
    array_buffer(&response).await
}

/// `fetch(url, init)`'s response if it is a success, or a `BundleError`
/// naming the URL.
async fn fetch_response(url: &str, init: &JsValue) -> Result<JsValue, JsValue> {
    let fetch: Function = Reflect::get(&js_sys::global(), &"fetch".into())?.dyn_into()?;
    let response = JsFuture::from(
        fetch
            .call2(&JsValue::NULL, &url.into(), init)?
            .dyn_into::<Promise>()?,
    )
    .await
    .map_err(|e| not_fetched(url, &e))?;
    let ok = Reflect::get(&response, &"ok".into())?.is_truthy();
    if !ok {
        let status = Reflect::get(&response, &"status".into())?
            .as_f64()
            .unwrap_or(0.0);
        return Err(err(Error::Bundle {
            field: url.into(),
            problem: format!("the file is missing (HTTP {status})"),
        }));
    }
    Ok(response)
}

/// The `BundleError` for a file the network did not deliver.
fn not_fetched(url: &str, e: &JsValue) -> JsValue {
    err(Error::Bundle {
        field: url.into(),
        problem: format!("could not be fetched: {}", describe(e)),
    })
}

async fn array_buffer(response: &JsValue) -> Result<Vec<u8>, JsValue> {
    let buffer: Function = Reflect::get(response, &"arrayBuffer".into())?.dyn_into()?;
    let buffer = JsFuture::from(buffer.call0(response)?.dyn_into::<Promise>()?).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Every file a bundle names, read from its source; with `use_cache`, a
/// bundle given by URL is kept in the Cache API (see [`bundle::cache`]).
/// Also returns the bytes the cache holds for it.
pub(super) async fn read_bundle(
    source: JsValue,
    use_cache: bool,
    progress: &LoadProgress,
) -> Result<(Bundle, f64), JsValue> {
    if let Some(url) = source.as_string() {
        let manifest_url = if url.ends_with('/') {
            format!("{url}{MANIFEST_FILE}")
        } else {
            url
        };
        let base = web_sys_url(&manifest_url)?;
        let manifest_url = Reflect::get(&base, &"href".into())?
            .as_string()
            .unwrap_or(manifest_url);
        let cache = if use_cache {
            BundleCache::open(&manifest_url).await
        } else {
            None
        };
        // The network first (revalidated), the cached copy when offline.
        let revalidate = Object::new();
        Reflect::set(&revalidate, &"cache".into(), &"no-cache".into())?;
        let manifest = match fetch_bytes_with(&manifest_url, &revalidate).await {
            Ok(bytes) => bytes,
            Err(e) => match &cache {
                Some(cache) => cache.get(&manifest_url).await.ok_or(e)?,
                None => return Err(e),
            },
        };
        let parsed = crate::bundle::parse_manifest(&manifest).map_err(err)?;
        // Each file's sha256 is checked once, by `Bundle::load_files`: cached
        // copies are used as they are. If the bundle then fails to load,
        // the entries this load read or wrote are deleted, and files that
        // came from the cache are fetched again, once
        // (`bundle::cache::retry_from_network`).
        let mut attempt = 0;
        loop {
            let mut fetched =
                fetch_bundle_files(&parsed, &base, cache.as_ref(), attempt == 0, progress).await?;
            let mut files = with_sha256(std::mem::take(&mut fetched.files)).await;
            match Bundle::load_files(&manifest, &mut |name| files.remove(name)) {
                Ok(bundle) => {
                    let Some(cache) = cache else {
                        return Ok((bundle, 0.0));
                    };
                    // Only a bundle that loaded is kept (its manifest: what
                    // an offline start reads), and only what it uses.
                    let mut cached_bytes = fetched.cached_bytes;
                    if cache
                        .put(&manifest_url, &Uint8Array::from(manifest.as_slice()))
                        .await
                    {
                        cached_bytes += manifest.len();
                    }
                    cache.forget_stale(&manifest_url, &parsed).await;
                    return Ok((bundle, cached_bytes as f64));
                }
                Err(refused) => {
                    if let Some(cache) = &cache {
                        for key in &fetched.cache_keys {
                            cache.delete(key).await;
                        }
                    }
                    if !bundle::cache::retry_from_network(attempt, fetched.any_from_cache) {
                        return Err(err(refused));
                    }
                    attempt += 1;
                }
            }
        }
    } else if source.is_object() {
        let entries: js_sys::Array = if source.is_instance_of::<js_sys::Map>() {
            js_sys::Array::from(&source.unchecked_ref::<js_sys::Map>().entries())
        } else {
            Object::entries(source.unchecked_ref::<Object>())
        };
        let mut given: HashMap<String, Uint8Array> = HashMap::new();
        for entry in entries.iter() {
            let pair: js_sys::Array = entry.unchecked_into();
            let name = pair.get(0).as_string().unwrap_or_default();
            let bytes = pair.get(1);
            let bytes = bytes.dyn_ref::<Uint8Array>().ok_or_else(|| {
                err(Error::Bundle {
                    field: name.clone(),
                    problem: "must be a Uint8Array".into(),
                })
            })?;
            given.insert(name, bytes.clone());
        }
        let manifest = given.remove(MANIFEST_FILE).ok_or_else(|| {
            err(Error::Bundle {
                field: MANIFEST_FILE.into(),
                problem: "the file is missing".into(),
            })
        })?;
        let manifest = manifest.to_vec();
        let parsed = crate::bundle::parse_manifest(&manifest).map_err(err)?;
        // WebCrypto hashes what the load reads, chosen as a load by URL
        // chooses what to fetch (`Manifest::files_to_fetch`): the compiled
        // encoder, then the rest (the ONNX file only if the compiled one
        // does not load here). Other files stay available, unhashed.
        let mut files: HashMap<String, PendingFile> = HashMap::new();
        if let Some(name) = parsed.compiled_encoder_file() {
            if let Some(bytes) = given.remove(name) {
                files.insert(name.into(), PendingFile::of_js(&bytes));
            }
        }
        let compiled = parsed
            .compiled_encoder_file()
            .and_then(|name| Some(files.get(name)?.bytes.as_slice()));
        for name in parsed.files_to_fetch(compiled) {
            if let Some(bytes) = given.remove(name) {
                files.insert(name.into(), PendingFile::of_js(&bytes));
            }
        }
        for (name, bytes) in given {
            let unread = PendingFile {
                bytes: bytes.to_vec(),
                sha256: None,
            };
            files.insert(name, unread);
        }
        let mut files = with_sha256(files).await;
        let bundle = Bundle::load_files(&manifest, &mut |name| files.remove(name)).map_err(err)?;
        Ok((bundle, 0.0))
    } else {
        Err(err(Error::Config(
            "a bundle source is a manifest URL or an object of file bytes".into(),
        )))
    }
}

/// A bundle file read, with the platform's sha256 of it under way.
struct PendingFile {
    bytes: Vec<u8>,
    sha256: Option<Promise>,
}

impl PendingFile {
    /// `bytes`, hashed from the JS buffer itself (no copy).
    fn of_js(bytes: &Uint8Array) -> Self {
        PendingFile {
            sha256: platform_sha256(bytes),
            bytes: bytes.to_vec(),
        }
    }

    /// `bytes` that are in wasm memory already, with `copy`, their JS copy.
    fn of_wasm(bytes: Vec<u8>, copy: &Uint8Array) -> Self {
        PendingFile {
            sha256: platform_sha256(copy),
            bytes,
        }
    }
}

/// WebCrypto's sha256 of `bytes`, started now: native code off the main
/// thread, so it runs while the loader reads the next file. `None` where
/// there is no WebCrypto (a page served over plain HTTP from another host
/// has no `crypto.subtle`): `Bundle::load_files` hashes those itself.
fn platform_sha256(bytes: &Uint8Array) -> Option<Promise> {
    let subtle = Reflect::get(
        &Reflect::get(&js_sys::global(), &"crypto".into()).ok()?,
        &"subtle".into(),
    )
    .ok()?;
    let digest: Function = Reflect::get(&subtle, &"digest".into())
        .ok()?
        .dyn_into()
        .ok()?;
    digest
        .call2(&subtle, &"SHA-256".into(), bytes)
        .ok()?
        .dyn_into()
        .ok()
}

/// Every file with its sha256 once the platform's are done (one that
/// failed is hashed by `Bundle::load_files` instead).
async fn with_sha256(files: HashMap<String, PendingFile>) -> HashMap<String, BundleFile> {
    let mut settled = HashMap::with_capacity(files.len());
    for (name, file) in files {
        let sha256 = match file.sha256 {
            Some(promise) => JsFuture::from(promise)
                .await
                .ok()
                .map(|digest| lowercase_hex(&Uint8Array::new(&digest).to_vec())),
            None => None,
        };
        settled.insert(
            name,
            BundleFile {
                bytes: file.bytes,
                sha256,
            },
        );
    }
    settled
}

/// The files one attempt at loading a bundle by URL fetched.
struct FetchedFiles {
    files: HashMap<String, PendingFile>,
    /// Cache entries this attempt read or wrote.
    cache_keys: Vec<String>,
    any_from_cache: bool,
    /// The bytes the cache holds of these files.
    cached_bytes: usize,
}

/// Every file the bundle needs (the compiled encoder first: whether this
/// build loads it decides if the ONNX file is fetched), from the cache
/// where `read_cache` and it holds them, else from the network.
async fn fetch_bundle_files(
    parsed: &crate::bundle::Manifest,
    base: &JsValue,
    cache: Option<&BundleCache>,
    read_cache: bool,
    progress: &LoadProgress,
) -> Result<FetchedFiles, JsValue> {
    let mut fetched = FetchedFiles {
        files: HashMap::new(),
        cache_keys: Vec::new(),
        any_from_cache: false,
        cached_bytes: 0,
    };
    let fetch = async |name: &str, fetched: &mut FetchedFiles| -> Result<PendingFile, JsValue> {
        let url = resolve(name, base)?;
        let sha256 = parsed.sha256_of(name).unwrap_or_default();
        let file = fetch_file(cache, &url, sha256, name, read_cache, progress).await?;
        if let Some(key) = file.cache_key {
            fetched.cache_keys.push(key);
        }
        fetched.any_from_cache |= file.from_cache;
        fetched.cached_bytes += if file.kept { file.bytes.bytes.len() } else { 0 };
        Ok(file.bytes)
    };
    let compiled = match parsed.compiled_encoder_file() {
        Some(name) => Some((name, fetch(name, &mut fetched).await?)),
        None => None,
    };
    for name in parsed.files_to_fetch(compiled.as_ref().map(|(_, file)| file.bytes.as_slice())) {
        let bytes = fetch(name, &mut fetched).await?;
        fetched.files.insert(name.into(), bytes);
    }
    if let Some((name, bytes)) = compiled {
        fetched.files.insert(name.into(), bytes);
    }
    Ok(fetched)
}

/// One bundle file and where it came from.
struct FetchedFile {
    bytes: PendingFile,
    /// The cache entry read or written for it.
    cache_key: Option<String>,
    from_cache: bool,
    /// Whether the cache holds it now.
    kept: bool,
}

/// A bundle file: from the cache if `read_cache` and it holds one under
/// the file's sha256 (unchecked here: `Bundle::load_files` checks every file),
/// else from the network, and then kept if the cache takes it.
async fn fetch_file(
    cache: Option<&BundleCache>,
    url: &str,
    sha256: &str,
    name: &str,
    read_cache: bool,
    progress: &LoadProgress,
) -> Result<FetchedFile, JsValue> {
    let key = bundle::cache::file_key(sha256);
    if let (Some(cache), true) = (cache, read_cache) {
        if let Some(bytes) = cache.get_js(&key).await {
            progress.file_done(name, bytes.length() as usize, true);
            return Ok(FetchedFile {
                bytes: PendingFile::of_js(&bytes),
                cache_key: Some(key),
                from_cache: true,
                kept: true,
            });
        }
    }
    let bytes = progress.fetch(name, url).await?;
    // One JS copy of the bytes for WebCrypto and the cache (each takes its
    // own copy of what it is given).
    let copy = Uint8Array::from(bytes.as_slice());
    let bytes = PendingFile::of_wasm(bytes, &copy);
    let kept = match cache {
        Some(cache) => cache.put(&key, &copy).await,
        None => false,
    };
    Ok(FetchedFile {
        bytes,
        cache_key: kept.then_some(key),
        from_cache: false,
        kept,
    })
}

/// What `onLoadProgress` is called with.
#[derive(Serialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(rename = "LoadProgress")]
struct LoadProgressEvent<'a> {
    /// The file whose bytes arrived.
    file: &'a str,
    /// Bytes so far, of the files started so far.
    loaded_bytes: f64,
    total_bytes: f64,
    /// The file came from the Cache API (counted at once).
    from_cache: bool,
}

/// `onLoadProgress`: the bytes of a bundle's files as they arrive, summed
/// over the files so far (the total grows as each file's response says its
/// length; files from the cache count at once).
pub(super) struct LoadProgress {
    callback: Option<Function>,
    /// Bytes of the files finished, and the lengths of those started.
    done: Cell<f64>,
    total: Cell<f64>,
}

impl Default for LoadProgress {
    /// Reporting to no one.
    fn default() -> Self {
        LoadProgress::new(None)
    }
}

impl LoadProgress {
    fn new(callback: Option<Function>) -> Self {
        LoadProgress {
            callback,
            done: Cell::new(0.0),
            total: Cell::new(0.0),
        }
    }

    fn report(&self, file: &str, loaded: f64, from_cache: bool) {
        let Some(callback) = &self.callback else {
            return;
        };
        let event = LoadProgressEvent {
            file,
            loaded_bytes: loaded,
            total_bytes: self.total.get().max(loaded),
            from_cache,
        };
        if let Ok(event) = to_js(&event) {
            let _ = callback.call1(&JsValue::NULL, &event);
        }
    }

    fn file_done(&self, file: &str, bytes: usize, from_cache: bool) {
        self.done.set(self.done.get() + bytes as f64);
        if from_cache {
            self.total.set(self.total.get() + bytes as f64);
        }
        self.report(file, self.done.get(), from_cache);
    }

    /// `url`'s body, read as a stream (reporting as it arrives) when there
    /// is someone to report to.
    async fn fetch(&self, file: &str, url: &str) -> Result<Vec<u8>, JsValue> {
        if self.callback.is_none() {
            return fetch_bytes(url).await;
        }
        let response = fetch_response(url, &JsValue::UNDEFINED).await?;
        let length = Reflect::get(&response, &"headers".into())
            .ok()
            .and_then(|h| {
                let get: Function = Reflect::get(&h, &"get".into()).ok()?.dyn_into().ok()?;
                get.call1(&h, &"content-length".into()).ok()?.as_string()
            })
            .and_then(|l| l.parse::<f64>().ok())
            .unwrap_or(0.0);
        self.total.set(self.total.get() + length);
        let body = Reflect::get(&response, &"body".into())?;
        let reader: Option<JsValue> = Reflect::get(&body, &"getReader".into())
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
            .and_then(|f| f.call0(&body).ok());
        let Some(reader) = reader else {
            let bytes = array_buffer(&response).await?;
            self.file_done(file, bytes.len(), false);
            return Ok(bytes);
        };
        let read: Function = Reflect::get(&reader, &"read".into())?.dyn_into()?;
        let mut bytes = Vec::with_capacity(length as usize);
        loop {
            let chunk = JsFuture::from(read.call0(&reader)?.dyn_into::<Promise>()?)
                .await
                .map_err(|e| not_fetched(url, &e))?;
            if Reflect::get(&chunk, &"done".into())?.is_truthy() {
                break;
            }
            let value: Uint8Array = Reflect::get(&chunk, &"value".into())?.dyn_into()?;
            let start = bytes.len();
            bytes.resize(start + value.length() as usize, 0);
            value.copy_to(&mut bytes[start..]);
            self.report(file, self.done.get() + bytes.len() as f64, false);
        }
        self.done.set(self.done.get() + bytes.len() as f64);
        Ok(bytes)
    }
}

/// One bundle's cache in the Cache API. Every operation that fails (a
/// browser that refuses storage, a full disk) reports `None`/`false`
/// instead of failing the load: the network is always the fallback.
struct BundleCache {
    cache: JsValue,
}

impl BundleCache {
    async fn open(manifest_url: &str) -> Option<Self> {
        let caches = Reflect::get(&js_sys::global(), &"caches".into()).ok()?;
        let open: Function = Reflect::get(&caches, &"open".into())
            .ok()?
            .dyn_into()
            .ok()?;
        let name = bundle::cache::cache_name(manifest_url);
        let promise: Promise = open.call1(&caches, &name.into()).ok()?.dyn_into().ok()?;
        let cache = JsFuture::from(promise).await.ok()?;
        Some(BundleCache { cache })
    }

    async fn call(&self, method: &str, args: &[&JsValue]) -> Option<JsValue> {
        let f: Function = Reflect::get(&self.cache, &method.into())
            .ok()?
            .dyn_into()
            .ok()?;
        let args: js_sys::Array = args.iter().copied().collect();
        let promise: Promise = f.apply(&self.cache, &args).ok()?.dyn_into().ok()?;
        JsFuture::from(promise).await.ok()
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        Some(self.get_js(key).await?.to_vec())
    }

    async fn get_js(&self, key: &str) -> Option<Uint8Array> {
        let response = self.call("match", &[&key.into()]).await?;
        if response.is_undefined() {
            return None;
        }
        let buffer: Function = Reflect::get(&response, &"arrayBuffer".into())
            .ok()?
            .dyn_into()
            .ok()?;
        let promise: Promise = buffer.call0(&response).ok()?.dyn_into().ok()?;
        let buffer = JsFuture::from(promise).await.ok()?;
        Some(Uint8Array::new(&buffer))
    }

    async fn put(&self, key: &str, body: &Uint8Array) -> bool {
        let Ok(response_class) = Reflect::get(&js_sys::global(), &"Response".into())
            .and_then(|r| r.dyn_into::<Function>())
        else {
            return false;
        };
        let Ok(response) = Reflect::construct(&response_class, &js_sys::Array::of1(body)) else {
            return false;
        };
        self.call("put", &[&key.into(), &response]).await.is_some()
    }

    /// Deletes one entry (a failure leaves it for the next load's check).
    async fn delete(&self, key: &str) {
        self.call("delete", &[&key.into()]).await;
    }

    /// Deletes every entry the bundle of `manifest` does not use (what it
    /// cannot delete stays until the next load tries again).
    async fn forget_stale(&self, manifest_url: &str, manifest: &crate::bundle::Manifest) {
        let Some(requests) = self.call("keys", &[]).await else {
            return;
        };
        let cached: Vec<String> = js_sys::Array::from(&requests)
            .iter()
            .filter_map(|r| Reflect::get(&r, &"url".into()).ok()?.as_string())
            .collect();
        for key in bundle::cache::stale_keys(&cached, manifest_url, manifest) {
            self.delete(&key).await;
        }
    }
}

fn web_sys_url(url: &str) -> Result<JsValue, JsValue> {
    // Relative to the page (or worker) location, like fetch() resolves it.
    let location = Reflect::get(&js_sys::global(), &"location".into())?;
    let href = Reflect::get(&location, &"href".into()).unwrap_or(JsValue::UNDEFINED);
    let url_ctor: Function = Reflect::get(&js_sys::global(), &"URL".into())?.dyn_into()?;
    Reflect::construct(&url_ctor, &js_sys::Array::of2(&url.into(), &href))
}

fn resolve(name: &str, base: &JsValue) -> Result<String, JsValue> {
    let url_ctor: Function = Reflect::get(&js_sys::global(), &"URL".into())?.dyn_into()?;
    let url = Reflect::construct(&url_ctor, &js_sys::Array::of2(&name.into(), base))?;
    Ok(Reflect::get(&url, &"href".into())?
        .as_string()
        .unwrap_or_default())
}

#[wasm_bindgen(js_class = Classifier)]
impl JsClassifier {
    /// Loads a bundle, opens the user's store and the current head.
    #[wasm_bindgen(unchecked_return_type = "Promise<Classifier>")]
    pub fn load(
        source: BundleSourceArg,
        options: Option<ClassifierOptionsArg>,
    ) -> Result<Promise, JsValue> {
        let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        let callback = |name: &str| -> Result<Option<Function>, JsValue> {
            if !options.is_object() {
                return Ok(None);
            }
            Ok(Reflect::get(&options, &name.into())?
                .dyn_into::<Function>()
                .ok())
        };
        let listener = callback("onAutoUpdate")?;
        let progress = LoadProgress::new(callback("onLoadProgress")?);
        let pool = JsEmbeddingPool::from_options(&options)?;
        let options = ClassifierOptions::from_json(options_json(
            &options,
            &["onAutoUpdate", "onLoadProgress", "embeddingPool"],
        )?)
        .map_err(err)?;
        Ok(future_to_promise(async move {
            let (bundle, bundle_cache_bytes) =
                read_bundle(source.into(), options.use_bundle_cache(), &progress).await?;
            let settings = options.resolve(&bundle.manifest.training).map_err(err)?;
            let name = settings
                .store_name
                .unwrap_or_else(|| bundle.manifest.name.clone());
            let backend = IndexedDbBackend::open(&name).await.map_err(err)?;
            let classifier = Classifier::open(bundle, backend, settings.store_policy, now())
                .await
                .map_err(err)?
                .with_auto_update(settings.auto_update);
            classifier.set_embedding_pool(pool.map(|p| p as Rc<dyn EmbeddingPool>));
            let inner = Rc::new(Inner {
                classifier,
                listener,
                relearning: Cell::new(false),
                bundle_cache_bytes,
            });
            Ok(JsClassifier { inner }.into())
        }))
    }

    /// Every label a prediction can give: the current head's, then labels
    /// taught by corrections that the head does not know yet.
    #[wasm_bindgen(getter)]
    pub fn labels(&self) -> Vec<String> {
        self.inner.classifier.labels()
    }

    /// The current head's version.
    #[wasm_bindgen(getter, js_name = currentVersion, unchecked_return_type = "VersionInfo")]
    pub fn current_version(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.classifier.current_version())
    }

    /// What loading found wrong (corrupt records skipped, an encoder change).
    #[wasm_bindgen(getter, unchecked_return_type = "StoreProblem[]")]
    pub fn problems(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.classifier.problems())
    }

    /// The bundle's manifest.
    #[wasm_bindgen(getter, unchecked_return_type = "Record<string, unknown>")]
    pub fn manifest(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.classifier.bundle().manifest)
    }

    /// The most probable label of `text`, with every label's probability.
    #[wasm_bindgen(unchecked_return_type = "Prediction")]
    pub fn predict(&self, text: &str) -> Result<JsValue, JsValue> {
        let mut out = self.inner.classifier.predict(&[text]).map_err(err)?;
        to_js(&out.remove(0))
    }

    /// `predict` for many texts, encoded as one batch.
    #[wasm_bindgen(js_name = predictMany, unchecked_return_type = "Prediction[]")]
    pub fn predict_many(&self, texts: Vec<String>) -> Result<JsValue, JsValue> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        to_js(&self.inner.classifier.predict(&refs).map_err(err)?)
    }

    /// Records "`text` is `label`" (a new label is fine). May start an
    /// automatic update once enough corrections are pending.
    #[wasm_bindgen(js_name = addFeedback, unchecked_return_type = "Promise<Feedback>")]
    pub fn add_feedback(&self, text: String, label: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let feedback = inner
                .classifier
                .add_feedback(&text, &label, now())
                .await
                .map_err(err)?;
            let answer = to_js(&feedback);
            keep_relearning(&inner);
            maybe_auto_update(&inner, feedback);
            answer
        })
    }

    /// Trains a new head on every correction (plus the bundle's rehearsal
    /// vectors) and lets it replace the current one only if it is at least
    /// as accurate on a held-out slice of the corrections. `options` are
    /// update settings over the bundle's defaults, with `signal`;
    /// `onProgress` sees the update's events (return `false` to cancel).
    #[wasm_bindgen(unchecked_return_type = "Promise<UpdateReport>")]
    pub fn update(
        &self,
        options: Option<UpdateOptionsArg>,
        on_progress: Option<UpdateEventCallback>,
    ) -> Result<Promise, JsValue> {
        let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        let defaults = &self.inner.classifier.bundle().manifest.training.defaults;
        let config =
            update_config_over(defaults, &options_json(&options, &["signal"])?).map_err(err)?;
        let observer = observer(&options, on_progress)?;
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            run_update_task(&inner, config, observer).await
        }))
    }

    /// Resolves when no update is pending and the head predictions use has
    /// learned every correction (at once if so already).
    #[wasm_bindgen(js_name = whenIdle, unchecked_return_type = "Promise<void>")]
    pub fn when_idle(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            inner.classifier.when_idle().await;
            inner.classifier.finish_relearning().map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Every version, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo[]>")]
    pub fn versions(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(
            async move { to_js(&inner.classifier.store().versions().await.map_err(err)?) },
        )
    }

    /// Makes an earlier version current, and the head predictions use
    /// (after a running update: changes happen one at a time).
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo>")]
    pub fn rollback(&self, version: f64) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            to_js(
                &inner
                    .classifier
                    .rollback(id_from_number("version", version).map_err(err)?)
                    .await
                    .map_err(err)?,
            )
        })
    }

    /// Goes back to the bundle's head; corrections and versions stay.
    #[wasm_bindgen(js_name = resetToShipped, unchecked_return_type = "Promise<VersionInfo>")]
    pub fn reset_to_shipped(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(
            async move { to_js(&inner.classifier.reset_to_shipped().await.map_err(err)?) },
        )
    }

    /// Everything the user owns (corrections, versions) as one checksummed file.
    #[wasm_bindgen(js_name = exportData, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_data(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let bytes = inner.classifier.store().export(now()).await.map_err(err)?;
            Ok(Uint8Array::from(bytes.as_slice()).into())
        })
    }

    /// Replaces everything with an export file's contents (checked first).
    #[wasm_bindgen(js_name = importData, unchecked_return_type = "Promise<{ samples: number; versions: number }>")]
    pub fn import_data(
        &self,
        file: &Uint8Array,
        options: Option<ImportOptionsArg>,
    ) -> Result<Promise, JsValue> {
        // Sized before it is copied into the module's memory.
        let limits = self.inner.classifier.store().import_limits();
        let file = limits
            .check_file_size(file.length().into())
            .map(|()| file.to_vec());
        let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        let mut observer = observer_in_options(&options)?;
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            let file = file.map_err(err)?;
            let imported = inner
                .classifier
                .import_with_progress(&file, now(), &mut |p| observer.observe(&p))
                .await;
            observer.rethrow()?;
            let (samples, versions) = imported.map_err(err)?;
            let out = Object::new();
            Reflect::set(&out, &"samples".into(), &(samples as f64).into())?;
            Reflect::set(&out, &"versions".into(), &(versions as f64).into())?;
            Ok(out.into())
        }))
    }

    /// Counts for a status line, and the origin's storage use.
    #[wasm_bindgen(unchecked_return_type = "Promise<ClassifierStats>")]
    pub fn stats(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            to_js(&ClassifierStats {
                counts: inner.classifier.stats().await.map_err(err)?,
                storage: super::store::storage_status().await,
                bundle_cache_bytes: inner.bundle_cache_bytes,
            })
        })
    }

    /// Asks the browser to keep this origin's storage under pressure.
    #[wasm_bindgen(js_name = requestPersistence, unchecked_return_type = "Promise<boolean>")]
    pub fn request_persistence(&self) -> Promise {
        super::store::request_persistence()
    }

    /// Every stored correction, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<Sample[]>")]
    pub fn samples(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { to_js(&inner.classifier.samples().await.map_err(err)?) })
    }

    /// Deletes one correction (after a running update); versions trained on
    /// it keep what they learned.
    #[wasm_bindgen(js_name = deleteSample, unchecked_return_type = "Promise<void>")]
    pub fn delete_sample(&self, id: f64) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let id = id_from_number("sample id", id).map_err(err)?;
            inner.classifier.delete_sample(id).await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Deletes every correction (after a running update); versions stay.
    #[wasm_bindgen(js_name = deleteAllSamples, unchecked_return_type = "Promise<void>")]
    pub fn delete_all_samples(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            inner.classifier.delete_all_samples().await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Deletes every correction and every version, then goes on with the
    /// shipped head in the emptied store (returned).
    #[wasm_bindgen(js_name = deleteEverything, unchecked_return_type = "Promise<VersionInfo>")]
    pub fn delete_everything(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            to_js(
                &inner
                    .classifier
                    .delete_everything(now())
                    .await
                    .map_err(err)?,
            )
        })
    }

    /// For tests of the trap guard: traps the module as a bug would, at
    /// once or (`later`) inside an async task, where no caller sees it.
    #[wasm_bindgen(js_name = forceTrapForTests, unchecked_return_type = "Promise<void>")]
    pub fn force_trap_for_tests(&self, later: bool) -> Promise {
        if !later {
            core::arch::wasm32::unreachable();
        }
        future_to_promise(async { core::arch::wasm32::unreachable() })
    }

    /// Re-reads the current head from the store (another tab may have updated it).
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo>")]
    pub fn reload(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { to_js(&inner.classifier.reload().await.map_err(err)?) })
    }
}

async fn run_update_task(
    inner: &Rc<Inner>,
    config: UpdateConfig,
    mut observer: super::head::JsObserver,
) -> Result<JsValue, JsValue> {
    let report = async {
        let session = inner.classifier.begin_update().await?;
        let candidate = session
            .train(&config, &performance_now, &mut |e| observer.observe(e))
            .await?;
        // In a Web Worker, a cancel posted during training is only
        // delivered now: let the event loop run, then drop the candidate
        // (storing nothing) if it asked to.
        next_task().await;
        if observer.aborted() {
            return Err(Error::Cancelled);
        }
        session.commit(candidate, now()).await
    }
    .await;
    observer.rethrow()?;
    to_js(&report.map_err(err)?)
}

/// Lets the working head learn the newest corrections a slice of steps per
/// event-loop task (the core's `AtOnceSettings::slice_steps`), so that the
/// messages a worker answers meanwhile wait for one slice, not the whole
/// relearning. One such task at a time; it runs until the working
/// head has caught up with every correction, however many arrive meanwhile.
fn keep_relearning(inner: &Rc<Inner>) {
    if inner.relearning.replace(true) {
        return;
    }
    let inner = inner.clone();
    spawn_local(async move {
        let steps = inner.classifier.at_once().slice_steps.max(1);
        loop {
            next_task().await;
            match inner.classifier.relearn_some(steps) {
                Ok(false) => {}
                Ok(true) => break,
                Err(e) => {
                    // Predictions keep the previous working head and the
                    // memory; the next correction tries again.
                    console_warn(&format!(
                        "localtune: the working head kept its last state: {e}"
                    ));
                    break;
                }
            }
        }
        inner.relearning.set(false);
    });
}

/// Starts the automatic update `feedback` made due, once the browser's
/// gates (charging, idle) allow; the core decides whether it is due and
/// which of several racing corrections starts it.
fn maybe_auto_update(inner: &Rc<Inner>, feedback: Feedback) {
    if !inner.classifier.auto_update_due(&feedback) {
        return;
    }
    let inner = inner.clone();
    spawn_local(async move {
        let auto = inner.classifier.auto_update();
        let policy = auto.policy();
        if policy.only_while_charging {
            until_charging(auto).await;
        }
        if policy.only_when_idle {
            idle().await;
        }
        if !inner.classifier.begin_auto_update_attempt(&feedback) {
            return;
        }
        let notify = |event: JsValue| {
            if let Some(listener) = &inner.listener {
                let _ = listener.call1(&JsValue::NULL, &event);
            }
        };
        notify(phase(
            "started",
            "pending",
            &(feedback.pending as f64).into(),
        ));
        let listener = inner.listener.clone();
        let progress = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            if let Some(listener) = &listener {
                let _ = listener.call1(&JsValue::NULL, &phase("progress", "event", &event));
            }
        });
        let callback: UpdateEventCallback =
            JsValue::from(progress.as_ref().unchecked_ref::<Function>().clone()).unchecked_into();
        let outcome = match observer(&JsValue::UNDEFINED, Some(callback)) {
            Ok(observer) => run_update_task(&inner, policy.config.clone(), observer).await,
            Err(e) => Err(e),
        };
        drop(progress);
        match outcome {
            Ok(report) => notify(phase("finished", "report", &report)),
            Err(error) => notify(phase("failed", "error", &error)),
        }
    });
}

fn phase(name: &str, key: &str, value: &JsValue) -> JsValue {
    let event = Object::new();
    let _ = Reflect::set(&event, &"phase".into(), &name.into());
    let _ = Reflect::set(&event, &key.into(), value);
    event.into()
}

/// Resolves on the event loop's next task, a timer's: the worker's
/// requests and the store's events waiting meanwhile go first. The working
/// head's relearning yields here between slices, as background work should.
/// A message to itself on a `MessageChannel` instead (as the embedding
/// pool's job yields, `embedding_pool::after_pending_messages`) made the
/// relearning no faster and a correction sent while the one before was
/// still being learned 4–5 ms slower to resolve with 50 stored, in
/// Chromium, Firefox and WebKit alike (`bench/correction-latency.sh`,
/// 2026-12-07): its slices then take turns with each of the correction's
/// storage steps.
pub(super) async fn next_task() {
    let Ok(set_timeout) = Reflect::get(&js_sys::global(), &"setTimeout".into())
        .and_then(|f| f.dyn_into::<Function>())
    else {
        return;
    };
    let promise = Promise::new(&mut |resolve, _| {
        let _ = set_timeout.call2(&JsValue::NULL, &resolve, &JsValue::from_f64(0.0));
    });
    let _ = JsFuture::from(promise).await;
}

/// Waits for `requestIdleCallback` where there is one.
async fn idle() {
    let Ok(request) = Reflect::get(&js_sys::global(), &"requestIdleCallback".into()) else {
        return;
    };
    let Ok(request) = request.dyn_into::<Function>() else {
        return;
    };
    let promise = Promise::new(&mut |resolve, _| {
        let _ = request.call1(&JsValue::NULL, &resolve);
    });
    let _ = JsFuture::from(promise).await;
}

/// Waits until the charging gate lets an update start (see
/// `AutoUpdater::charging_allows`): at once where the Battery Status API
/// says the device charges, or where there is no such API; otherwise at
/// the battery's next `chargingchange` that says it does. So a due update
/// is deferred to the charger, not skipped until the next correction.
async fn until_charging(auto: &crate::classifier::auto_update::AutoUpdater) {
    let Some(battery) = battery().await else {
        return;
    };
    loop {
        let charging = Reflect::get(&battery, &"charging".into())
            .ok()
            .map(|c| c.is_truthy());
        if auto.charging_allows(charging) {
            return;
        }
        let Ok(listen) = Reflect::get(&battery, &"addEventListener".into())
            .and_then(|f| f.dyn_into::<Function>())
        else {
            return;
        };
        let changed = Promise::new(&mut |resolve, _| {
            let once = Object::new();
            let _ = Reflect::set(&once, &"once".into(), &true.into());
            let _ = listen.call3(&battery, &"chargingchange".into(), &resolve, &once);
        });
        let _ = JsFuture::from(changed).await;
    }
}

/// The Battery Status API's battery object; `None` where there is no such
/// API or it fails.
async fn battery() -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let get_battery = Reflect::get(&navigator, &"getBattery".into())
        .and_then(|f| f.dyn_into::<Function>())
        .ok()?;
    let promise = get_battery
        .call0(&navigator)
        .and_then(|p| p.dyn_into::<Promise>())
        .ok()?;
    JsFuture::from(promise).await.ok()
}
