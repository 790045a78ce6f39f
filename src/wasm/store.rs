//! The `Store` class: the IndexedDB store as promises. Every method clones
//! an `Rc` of the store into its future and never holds a borrow of the JS
//! object across an await, so overlapping calls from JS are safe.

use std::rc::Rc;

use js_sys::{Float32Array, Promise, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use super::encoder::JsEncoder;
use super::head::{read_update_options, to_js, JsHead, UpdateEventCallback, UpdateOptionsArg};
use super::{js_error, options_json, performance_now};
use crate::error::Error;
use crate::options::read_options;
use crate::store::indexed_db::IndexedDbBackend;
use crate::store::{id_from_number, CachedFeatures, SaveDetails, Store, StorePolicy};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** The head in use, and what had to be skipped to find it. */
export interface LoadedHead { version: VersionInfo; head: Head; problems: StoreProblem[]; encoderChanged: boolean }

/** Samples joined with their cached vectors (`vectors`: row-major, a row per id); `missing`: samples with no vector under this store's encoder. */
export interface TrainingData { sampleIds: number[]; vectors: Float32Array; labels: string[]; missing: Sample[] }
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "StoreOptions")]
    pub type StoreOptionsArg;
    #[wasm_bindgen(typescript_type = "SaveOptions")]
    pub type SaveOptionsArg;
}

/// The origin's storage: whether the browser keeps it under pressure, and
/// its use and quota in bytes where the browser says.
#[derive(Serialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(missing_as_null)]
pub(crate) struct StorageStatus {
    persisted: bool,
    usage_bytes: Option<f64>,
    quota_bytes: Option<f64>,
}

/// Samples and head versions of one app, in the browser's IndexedDB.
#[wasm_bindgen(js_name = Store)]
pub struct JsStore {
    inner: Rc<Store<IndexedDbBackend>>,
}

/// Runs `work` on a clone of the store as a Promise.
fn spawn<F, T>(
    store: &Rc<Store<IndexedDbBackend>>,
    work: impl FnOnce(Rc<Store<IndexedDbBackend>>) -> F,
) -> Promise
where
    F: std::future::Future<Output = Result<T, JsValue>> + 'static,
    T: Into<JsValue>,
{
    let future = work(store.clone());
    future_to_promise(async move { future.await.map(Into::into) })
}

fn err(e: Error) -> JsValue {
    js_error(e)
}

fn now() -> f64 {
    js_sys::Date::now()
}

#[wasm_bindgen(js_class = Store)]
impl JsStore {
    /// Opens (creating or upgrading) the store `name` (IndexedDB database
    /// `localtune:<name>`) for the encoder `encoderSha256`, whose generic
    /// head is `shipped`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Store>")]
    pub fn open(
        name: String,
        encoder_sha256: String,
        shipped: &JsHead,
        options: Option<StoreOptionsArg>,
    ) -> Result<Promise, JsValue> {
        let policy: StorePolicy = read_options(
            "store options",
            options_json(&options.map_or(JsValue::UNDEFINED, Into::into), &[])?,
        )
        .map_err(err)?;
        let shipped = shipped.inner.clone();
        Ok(future_to_promise(async move {
            let backend = IndexedDbBackend::open(&name).await.map_err(err)?;
            let store = Store::open(backend, &encoder_sha256, &shipped, policy, now())
                .await
                .map_err(err)?;
            Ok(JsStore {
                inner: Rc::new(store),
            }
            .into())
        }))
    }

    /// Deletes the store `name` and everything in it.
    #[wasm_bindgen(js_name = deleteDatabase, unchecked_return_type = "Promise<void>")]
    pub fn delete_database(name: String) -> Promise {
        future_to_promise(async move {
            IndexedDbBackend::delete_database(&name)
                .await
                .map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    #[wasm_bindgen(getter, js_name = encoderSha256)]
    pub fn encoder_sha256(&self) -> String {
        self.inner.encoder_sha256().into()
    }

    #[wasm_bindgen(getter, js_name = databaseName)]
    pub fn database_name(&self) -> String {
        self.inner.backend().database_name().into()
    }

    /// The shipped head's version.
    #[wasm_bindgen(getter, unchecked_return_type = "VersionInfo")]
    pub fn shipped(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.shipped())
    }

    /// Stores "`text` is `label`" (with its feature vector under this
    /// store's encoder, if given), evicting past the cap.
    #[wasm_bindgen(js_name = addSample, unchecked_return_type = "Promise<{ sample: Sample; evicted: number[] }>")]
    pub fn add_sample(&self, text: String, label: String, vector: Option<Vec<f32>>) -> Promise {
        spawn(&self.inner, |store| async move {
            let added = store
                .add_sample(&text, &label, now(), vector.as_deref())
                .await
                .map_err(err)?;
            to_js(&added)
        })
    }

    #[wasm_bindgen(js_name = sampleCount, unchecked_return_type = "Promise<number>")]
    pub fn sample_count(&self) -> Promise {
        spawn(&self.inner, |store| async move {
            Ok(JsValue::from_f64(
                store.sample_count().await.map_err(err)? as f64
            ))
        })
    }

    /// Every sample, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<Sample[]>")]
    pub fn samples(&self) -> Promise {
        spawn(&self.inner, |store| async move {
            to_js(&store.samples().await.map_err(err)?)
        })
    }

    #[wasm_bindgen(js_name = deleteSample, unchecked_return_type = "Promise<void>")]
    pub fn delete_sample(&self, id: f64) -> Promise {
        spawn(&self.inner, |store| async move {
            store
                .delete_sample(id_from_number("sample id", id).map_err(err)?)
                .await
                .map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Deletes every sample and every cached feature vector.
    #[wasm_bindgen(js_name = deleteAllSamples, unchecked_return_type = "Promise<void>")]
    pub fn delete_all_samples(&self) -> Promise {
        spawn(&self.inner, |store| async move {
            store.delete_all_samples().await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Samples joined with their cached vectors; `missing` lists samples
    /// that have none under this store's encoder.
    #[wasm_bindgen(js_name = trainingData, unchecked_return_type = "Promise<TrainingData>")]
    pub fn training_data(&self) -> Promise {
        spawn(&self.inner, |store| async move {
            let data = store.training_data().await.map_err(err)?;
            let out = js_sys::Object::new();
            Reflect::set(&out, &"sampleIds".into(), &to_js(&data.sample_ids)?)?;
            Reflect::set(
                &out,
                &"vectors".into(),
                &Float32Array::from(data.features.as_slice()),
            )?;
            Reflect::set(&out, &"labels".into(), &to_js(&data.labels)?)?;
            Reflect::set(&out, &"missing".into(), &to_js(&data.missing)?)?;
            Ok(JsValue::from(out))
        })
    }

    /// Caches vectors (`sampleIds.length × dim` floats) for samples that
    /// lacked them.
    #[wasm_bindgen(js_name = cacheVectors, unchecked_return_type = "Promise<void>")]
    pub fn cache_vectors(&self, sample_ids: Vec<f64>, vectors: Vec<f32>) -> Promise {
        spawn(&self.inner, |store| async move {
            let rows = sample_ids.len();
            if rows == 0 || !vectors.len().is_multiple_of(rows) {
                return Err(err(Error::ShapeMismatch {
                    what: "sample ids and vectors".into(),
                    expected: "a whole vector per sample id".into(),
                    found: format!("{rows} ids, {} floats", vectors.len()),
                }));
            }
            let dim = vectors.len() / rows;
            let rows: Vec<CachedFeatures> = sample_ids
                .iter()
                .zip(vectors.chunks_exact(dim))
                .map(|(id, v)| {
                    Ok(CachedFeatures {
                        sample_id: id_from_number("sample id", *id).map_err(err)?,
                        values: v.to_vec(),
                    })
                })
                .collect::<Result<_, JsValue>>()?;
            store.cache_vectors(&rows).await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Saves `head` as a new version: weights, metadata and (unless
    /// `rejected`) the current pointer in one transaction.
    #[wasm_bindgen(js_name = saveVersion, unchecked_return_type = "Promise<VersionInfo>")]
    pub fn save_version(
        &self,
        head: &JsHead,
        options: Option<SaveOptionsArg>,
    ) -> Result<Promise, JsValue> {
        let details: SaveDetails = read_options(
            "save options",
            options_json(&options.map_or(JsValue::UNDEFINED, Into::into), &[])?,
        )
        .map_err(err)?;
        let head = head.inner.clone();
        Ok(spawn(&self.inner, |store| async move {
            to_js(
                &store
                    .save_version(&head, details, now())
                    .await
                    .map_err(err)?,
            )
        }))
    }

    /// The head to use on start (see docs/store.md: falls back past corrupt
    /// records and heads of another encoder, and says so in `problems`).
    #[wasm_bindgen(js_name = loadCurrent, unchecked_return_type = "Promise<LoadedHead>")]
    pub fn load_current(&self) -> Promise {
        spawn(&self.inner, |store| async move {
            let loaded = store.load_current().await.map_err(err)?;
            let out = js_sys::Object::new();
            Reflect::set(&out, &"version".into(), &to_js(&loaded.info)?)?;
            Reflect::set(&out, &"head".into(), &JsHead { inner: loaded.head }.into())?;
            Reflect::set(&out, &"problems".into(), &to_js(&loaded.problems)?)?;
            Reflect::set(
                &out,
                &"encoderChanged".into(),
                &loaded.encoder_changed.into(),
            )?;
            Ok(JsValue::from(out))
        })
    }

    /// One version's head, checked against its checksum.
    #[wasm_bindgen(js_name = loadVersion, unchecked_return_type = "Promise<{ version: VersionInfo; head: Head }>")]
    pub fn load_version(&self, version: f64) -> Promise {
        spawn(&self.inner, |store| async move {
            let (info, head) = store
                .load_version(id_from_number("version", version).map_err(err)?)
                .await
                .map_err(err)?;
            let out = js_sys::Object::new();
            Reflect::set(&out, &"version".into(), &to_js(&info)?)?;
            Reflect::set(&out, &"head".into(), &JsHead { inner: head }.into())?;
            Ok(JsValue::from(out))
        })
    }

    /// Every version, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo[]>")]
    pub fn versions(&self) -> Promise {
        spawn(&self.inner, |store| async move {
            to_js(&store.versions().await.map_err(err)?)
        })
    }

    #[wasm_bindgen(js_name = currentVersion, unchecked_return_type = "Promise<number | undefined>")]
    pub fn current_version(&self) -> Promise {
        spawn(&self.inner, |store| async move {
            let current = store.current_version().await.map_err(err)?;
            Ok(current.map_or(JsValue::UNDEFINED, |v| JsValue::from_f64(v as f64)))
        })
    }

    /// Makes an earlier (intact, same-encoder) version current.
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo>")]
    pub fn rollback(&self, version: f64) -> Promise {
        spawn(&self.inner, |store| async move {
            to_js(
                &store
                    .rollback(id_from_number("version", version).map_err(err)?)
                    .await
                    .map_err(err)?,
            )
        })
    }

    /// Makes the shipped head current; samples and versions stay.
    #[wasm_bindgen(js_name = resetToShipped, unchecked_return_type = "Promise<VersionInfo>")]
    pub fn reset_to_shipped(&self) -> Promise {
        spawn(&self.inner, |store| async move {
            to_js(&store.reset_to_shipped().await.map_err(err)?)
        })
    }

    /// Deletes a version (not the current one, not the shipped head).
    #[wasm_bindgen(js_name = deleteVersion, unchecked_return_type = "Promise<void>")]
    pub fn delete_version(&self, version: f64) -> Promise {
        spawn(&self.inner, |store| async move {
            store
                .delete_version(id_from_number("version", version).map_err(err)?)
                .await
                .map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// After an encoder change: embeds the samples with `encoder` (whose
    /// sha256 must be this store's), caches the vectors, retrains the
    /// shipped head on all samples and saves it as current. Resolves to
    /// `undefined` if there are no samples.
    #[wasm_bindgen(
        js_name = retrainForEncoder,
        unchecked_return_type = "Promise<{ version: VersionInfo; result: Omit<UpdateOutcome, \"head\"> } | undefined>"
    )]
    pub fn retrain_for_encoder(
        &self,
        encoder: &JsEncoder,
        options: Option<UpdateOptionsArg>,
        on_event: Option<UpdateEventCallback>,
    ) -> Result<Promise, JsValue> {
        if encoder.inner.sha256() != self.inner.encoder_sha256() {
            return Err(err(Error::InvalidState(format!(
                "this store is for encoder {}; the encoder given is {}",
                self.inner.encoder_sha256(),
                encoder.inner.sha256()
            ))));
        }
        let encoder = encoder.inner.clone();
        let (config, mut observer) = read_update_options(options, on_event)?;
        Ok(spawn(&self.inner, |store| async move {
            let mut embed = |texts: &[&str]| encoder.embed(texts).map(|e| e.into_vec());
            let outcome = store
                .retrain_for_encoder(&mut embed, &config, &performance_now, &mut |e| {
                    observer.observe(e)
                })
                .await;
            observer.rethrow()?;
            let Some((info, outcome)) = outcome.map_err(err)? else {
                return Ok(JsValue::UNDEFINED);
            };
            let out = js_sys::Object::new();
            Reflect::set(&out, &"version".into(), &to_js(&info)?)?;
            Reflect::set(&out, &"result".into(), &to_js(&outcome)?)?;
            Ok(JsValue::from(out))
        }))
    }

    /// Everything the user owns (samples, versions) as one checksummed file.
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export(&self) -> Promise {
        spawn(&self.inner, |store| async move {
            let bytes = store.export(now()).await.map_err(err)?;
            Ok(JsValue::from(Uint8Array::from(bytes.as_slice())))
        })
    }

    /// Replaces everything with an export file's contents, after checking
    /// all of it (an `ImportError` changes nothing).
    #[wasm_bindgen(unchecked_return_type = "Promise<{ samples: number; versions: number }>")]
    pub fn import(&self, file: &Uint8Array) -> Promise {
        // Sized before it is copied into the module's memory.
        let file = self
            .inner
            .import_limits()
            .check_file_size(file.length().into())
            .map(|()| file.to_vec());
        spawn(&self.inner, |store| async move {
            let file = file.map_err(err)?;
            let (samples, versions) = store.import(&file, now()).await.map_err(err)?;
            let out = js_sys::Object::new();
            Reflect::set(&out, &"samples".into(), &(samples as f64).into())?;
            Reflect::set(&out, &"versions".into(), &(versions as f64).into())?;
            Ok(JsValue::from(out))
        })
    }

    /// Whether the origin's storage is persistent (not evicted under
    /// pressure) and what `navigator.storage.estimate()` reports.
    #[wasm_bindgen(js_name = storageStatus, unchecked_return_type = "Promise<StorageStatus>")]
    pub fn storage_status(&self) -> Promise {
        future_to_promise(async move { to_js(&storage_status().await) })
    }

    /// Asks the browser to keep this origin's storage under pressure
    /// (`navigator.storage.persist()`); resolves to whether it agreed.
    #[wasm_bindgen(js_name = requestPersistence, unchecked_return_type = "Promise<boolean>")]
    pub fn request_persistence(&self) -> Promise {
        request_persistence()
    }

    /// Closes the database connection; later calls fail with a StorageError.
    pub fn close(&self) {
        self.inner.backend().close();
    }
}

/// `navigator.storage`, in a window or a worker, if there is one.
fn storage_manager() -> Option<web_sys::StorageManager> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let storage = Reflect::get(&navigator, &"storage".into()).ok()?;
    storage.dyn_into().ok()
}

/// `navigator.storage.persisted()` and `estimate()`.
pub(crate) async fn storage_status() -> StorageStatus {
    let Some(manager) = storage_manager() else {
        return StorageStatus {
            persisted: false,
            usage_bytes: None,
            quota_bytes: None,
        };
    };
    let persisted = match manager.persisted() {
        Ok(p) => JsFuture::from(p)
            .await
            .map(|v| v.is_truthy())
            .unwrap_or(false),
        Err(_) => false,
    };
    let estimate = match manager.estimate() {
        Ok(p) => JsFuture::from(p).await.ok(),
        Err(_) => None,
    };
    let field = |name: &str| {
        estimate
            .as_ref()
            .and_then(|e| Reflect::get(e, &name.into()).ok())
            .and_then(|v| v.as_f64())
    };
    StorageStatus {
        persisted,
        usage_bytes: field("usage"),
        quota_bytes: field("quota"),
    }
}

/// `navigator.storage.persist()`; false where there is no storage manager.
pub(crate) fn request_persistence() -> Promise {
    future_to_promise(async move {
        let Some(manager) = storage_manager() else {
            return Ok(JsValue::FALSE);
        };
        match manager.persist() {
            Ok(p) => Ok(JsFuture::from(p)
                .await
                .map(|v| v.is_truthy())
                .unwrap_or(false)
                .into()),
            Err(_) => Ok(JsValue::FALSE),
        }
    })
}
