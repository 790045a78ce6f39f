//! The `Classifier` class: what a web app imports. Loads a bundle (URL or
//! bytes), predicts, takes corrections, updates itself when enough of them
//! are pending, and keeps its versions in IndexedDB. Async methods clone an
//! `Rc` into their futures; no borrow of the JS object outlives a call.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};

use super::head::{read_update_options, to_js, UpdateEventCallback, UpdateOptionsArg};
use super::{js_error, performance_now, read_options};
use crate::bundle::{Bundle, EncoderSpec, MANIFEST_FILE};
use crate::error::Error;
use crate::personalize::Personalizer;
use crate::store::indexed_db::IndexedDbBackend;
use crate::store::StorePolicy;
use crate::UpdateConfig;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Where a bundle comes from: the URL of its manifest.json (or of its folder, ending in "/"), or its files' bytes by name. */
export type BundleSource = string | Record<string, Uint8Array> | Map<string, Uint8Array>;

export interface ClassifierOptions {
  /** The IndexedDB store's name (default: the bundle's name). */
  storeName?: string;
  maxSamples?: number;
  keepVersions?: number;
  autoUpdate?: {
    /** Default true. */
    enabled?: boolean;
    /** Pending corrections that start an update (default: the bundle's, the seed's 50). */
    threshold?: number;
    /** Wait for requestIdleCallback where the browser has it. */
    onlyWhenIdle?: boolean;
    /** Only while charging, where the Battery Status API exists (elsewhere: always). */
    onlyWhileCharging?: boolean;
    /** Settings of automatic updates (default: the bundle's). */
    options?: UpdateOptions;
  };
  /** Sees automatic updates start, progress, finish or fail. */
  onAutoUpdate?: (event: AutoUpdateEvent) => void;
}

export type AutoUpdateEvent =
  | { phase: "started"; pending: number }
  | { phase: "progress"; event: UpdateEvent }
  | { phase: "finished"; report: UpdateReport }
  | { phase: "failed"; error: Error };

export interface Prediction { label: string; probability: number; probabilities: LabelProbability[] }

export interface Feedback { sample: Sample; evicted: number[]; pending: number }

export interface UpdateReport {
  accepted: boolean;
  gate: string;
  version: VersionInfo;
  candidateAccuracy: number | null;
  currentAccuracy: number | null;
  heldOutSamples: number;
  userSamples: number;
  rehearsalSamples: number;
  rehearsalOverridden: number;
  outcome: Omit<UpdateResult, "head">;
}

export interface ClassifierStats {
  sampleCount: number;
  pendingCount: number;
  currentVersion: VersionInfo;
  versionCount: number;
  autoUpdateThreshold: number;
  storage: StorageStatus;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "BundleSource")]
    pub type BundleSourceArg;
    #[wasm_bindgen(typescript_type = "ClassifierOptions")]
    pub type ClassifierOptionsArg;
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct AutoUpdateOptions {
    enabled: Option<bool>,
    threshold: Option<usize>,
    only_when_idle: bool,
    only_while_charging: bool,
}

struct AutoUpdate {
    enabled: bool,
    threshold: usize,
    only_when_idle: bool,
    only_while_charging: bool,
    config: UpdateConfig,
    listener: Option<Function>,
}

struct Inner {
    personalizer: Personalizer<IndexedDbBackend>,
    auto: AutoUpdate,
    /// One update at a time, manual or automatic.
    updating: Cell<bool>,
    /// The newest sample when the last automatic update started: after a
    /// rejected candidate, the next one waits for `threshold` new samples
    /// instead of retrying on every correction.
    auto_attempted_through: Cell<u64>,
    /// Resolvers waiting for the running update to finish.
    idle_waiters: RefCell<Vec<Function>>,
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
    let fetch: Function = Reflect::get(&js_sys::global(), &"fetch".into())?.dyn_into()?;
    let response = JsFuture::from(
        fetch
            .call1(&JsValue::NULL, &url.into())?
            .dyn_into::<Promise>()?,
    )
    .await
    .map_err(|e| {
        err(Error::Bundle {
            field: url.into(),
            problem: format!("could not be fetched: {}", describe(&e)),
        })
    })?;
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
    let buffer: Function = Reflect::get(&response, &"arrayBuffer".into())?.dyn_into()?;
    let buffer = JsFuture::from(buffer.call0(&response)?.dyn_into::<Promise>()?).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Every file a bundle names, read from its source.
async fn read_bundle(source: JsValue) -> Result<Bundle, JsValue> {
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let manifest = if let Some(url) = source.as_string() {
        let manifest_url = if url.ends_with('/') {
            format!("{url}{MANIFEST_FILE}")
        } else {
            url
        };
        let manifest = fetch_bytes(&manifest_url).await?;
        let parsed = crate::bundle::parse_manifest(&manifest).map_err(err)?;
        let base = web_sys_url(&manifest_url)?;
        // The compiled encoder stands in for the ONNX file when this build
        // can load it: then the ONNX file is not fetched at all.
        let mut names = vec![];
        match &parsed.encoder.compiled {
            Some(c) => {
                let compiled = fetch_bytes(&resolve(&c.file, &base)?).await?;
                if !EncoderSpec::compiled_is_loadable(&compiled) {
                    names.push(parsed.encoder.file.clone());
                }
                files.insert(c.file.clone(), compiled);
            }
            None => names.push(parsed.encoder.file.clone()),
        }
        names.extend([parsed.tokenizer.file.clone(), parsed.head.file.clone()]);
        names.extend(parsed.training.rehearsal.iter().map(|r| r.file.clone()));
        for name in names {
            let url = resolve(&name, &base)?;
            files.insert(name, fetch_bytes(&url).await?);
        }
        manifest
    } else if source.is_object() {
        let entries: js_sys::Array = if source.is_instance_of::<js_sys::Map>() {
            js_sys::Array::from(&source.unchecked_ref::<js_sys::Map>().entries())
        } else {
            Object::entries(source.unchecked_ref::<Object>())
        };
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
            files.insert(name, bytes.to_vec());
        }
        files.remove(MANIFEST_FILE).ok_or_else(|| {
            err(Error::Bundle {
                field: MANIFEST_FILE.into(),
                problem: "the file is missing".into(),
            })
        })?
    } else {
        return Err(err(Error::Config(
            "a bundle source is a manifest URL or an object of file bytes".into(),
        )));
    };
    Bundle::load(&manifest, &mut |name| files.remove(name)).map_err(err)
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
        if !options.is_undefined() && !options.is_null() {
            let known = [
                "storeName",
                "maxSamples",
                "keepVersions",
                "autoUpdate",
                "onAutoUpdate",
            ];
            for key in Object::keys(options.unchecked_ref::<Object>()).iter() {
                let key = key.as_string().unwrap_or_default();
                if !known.contains(&key.as_str()) {
                    return Err(err(Error::Config(format!(
                        "classifier options: unknown option {key:?} (known: {})",
                        known.join(", ")
                    ))));
                }
            }
        }
        let get = |key: &str| {
            if options.is_object() {
                Reflect::get(&options, &key.into()).unwrap_or(JsValue::UNDEFINED)
            } else {
                JsValue::UNDEFINED
            }
        };
        let store_name = get("storeName").as_string();
        let mut policy = StorePolicy::default();
        if let Some(n) = get("maxSamples").as_f64() {
            policy.max_samples = n as usize;
        }
        if let Some(n) = get("keepVersions").as_f64() {
            policy.keep_versions = n as usize;
        }
        let auto_js = get("autoUpdate");
        let auto_settings = if auto_js.is_object() {
            Reflect::get(&auto_js, &"options".into())?
        } else {
            JsValue::UNDEFINED
        };
        let auto_plain = if auto_js.is_object() {
            let copy = Object::assign(&Object::new(), auto_js.unchecked_ref());
            Reflect::delete_property(&copy, &"options".into())?;
            JsValue::from(copy)
        } else {
            JsValue::UNDEFINED
        };
        let auto: AutoUpdateOptions = read_options(
            "autoUpdate",
            auto_plain,
            &["enabled", "threshold", "onlyWhenIdle", "onlyWhileCharging"],
        )?;
        let listener = get("onAutoUpdate").dyn_into::<Function>().ok();
        let auto_overrides = auto_settings;
        Ok(future_to_promise(async move {
            let bundle = read_bundle(source.into()).await?;
            let training = bundle.manifest.training.clone();
            let mut config: UpdateConfig = training.defaults.clone();
            if auto_overrides.is_object() {
                let (c, _) = read_update_options(
                    Some(merge_defaults(&config, &auto_overrides)?.unchecked_into()),
                    None,
                )?;
                config = c;
            }
            training.check_config(&config).map_err(err)?;
            let name = store_name.unwrap_or_else(|| bundle.manifest.name.clone());
            let backend = IndexedDbBackend::open(&name).await.map_err(err)?;
            let personalizer = Personalizer::open(bundle, backend, policy, now())
                .await
                .map_err(err)?;
            let auto = AutoUpdate {
                enabled: auto.enabled.unwrap_or(true),
                threshold: auto
                    .threshold
                    .unwrap_or(training.auto_update_threshold)
                    .max(1),
                only_when_idle: auto.only_when_idle,
                only_while_charging: auto.only_while_charging,
                config,
                listener,
            };
            let inner = Rc::new(Inner {
                personalizer,
                auto,
                updating: Cell::new(false),
                auto_attempted_through: Cell::new(0),
                idle_waiters: RefCell::new(Vec::new()),
            });
            Ok(JsClassifier { inner }.into())
        }))
    }

    /// The labels the current head predicts.
    #[wasm_bindgen(getter)]
    pub fn labels(&self) -> Vec<String> {
        self.inner.personalizer.current_head().labels().to_vec()
    }

    /// The current head's version.
    #[wasm_bindgen(getter, js_name = currentVersion, unchecked_return_type = "VersionInfo")]
    pub fn current_version(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.personalizer.current_version())
    }

    /// What loading found wrong (corrupt records skipped, an encoder change).
    #[wasm_bindgen(getter, unchecked_return_type = "StoreProblem[]")]
    pub fn problems(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.personalizer.problems())
    }

    /// The bundle's manifest.
    #[wasm_bindgen(getter, unchecked_return_type = "Record<string, unknown>")]
    pub fn manifest(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.personalizer.bundle().manifest)
    }

    /// The most probable label of `text`, with every label's probability.
    #[wasm_bindgen(unchecked_return_type = "Prediction")]
    pub fn predict(&self, text: &str) -> Result<JsValue, JsValue> {
        let mut out = self.inner.personalizer.predict(&[text]).map_err(err)?;
        to_js(&out.remove(0))
    }

    /// `predict` for many texts, encoded as one batch.
    #[wasm_bindgen(js_name = predictMany, unchecked_return_type = "Prediction[]")]
    pub fn predict_many(&self, texts: Vec<String>) -> Result<JsValue, JsValue> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        to_js(&self.inner.personalizer.predict(&refs).map_err(err)?)
    }

    /// Records "`text` is `label`" (a new label is fine). May start an
    /// automatic update once enough corrections are pending.
    #[wasm_bindgen(js_name = addFeedback, unchecked_return_type = "Promise<Feedback>")]
    pub fn add_feedback(&self, text: String, label: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let feedback = inner
                .personalizer
                .add_feedback(&text, &label, now())
                .await
                .map_err(err)?;
            maybe_auto_update(&inner, feedback.pending, feedback.added.sample.id);
            to_js(&feedback)
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
        let defaults = self
            .inner
            .personalizer
            .bundle()
            .manifest
            .training
            .defaults
            .clone();
        let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        let merged = merge_defaults(&defaults, &options)?;
        let (config, observer) = read_update_options(Some(merged.unchecked_into()), on_progress)?;
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            run_update_task(&inner, config, observer).await
        }))
    }

    /// Resolves when no update is running (at once if none is).
    #[wasm_bindgen(js_name = whenIdle, unchecked_return_type = "Promise<void>")]
    pub fn when_idle(&self) -> Promise {
        if !self.inner.updating.get() {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let inner = self.inner.clone();
        Promise::new(&mut |resolve, _| inner.idle_waiters.borrow_mut().push(resolve))
    }

    /// Every version, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo[]>")]
    pub fn versions(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            to_js(&inner.personalizer.store().versions().await.map_err(err)?)
        })
    }

    /// Makes an earlier version current, and the head predictions use.
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo>")]
    pub fn rollback(&self, version: f64) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            to_js(
                &inner
                    .personalizer
                    .rollback(version as u64)
                    .await
                    .map_err(err)?,
            )
        })
    }

    /// Goes back to the bundle's head; corrections and versions stay.
    #[wasm_bindgen(js_name = resetToShipped, unchecked_return_type = "Promise<VersionInfo>")]
    pub fn reset_to_shipped(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            to_js(&inner.personalizer.reset_to_shipped().await.map_err(err)?)
        })
    }

    /// Everything the user owns (corrections, versions) as one checksummed file.
    #[wasm_bindgen(js_name = exportData, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_data(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let bytes = inner
                .personalizer
                .store()
                .export(now())
                .await
                .map_err(err)?;
            Ok(Uint8Array::from(bytes.as_slice()).into())
        })
    }

    /// Replaces everything with an export file's contents (checked first).
    #[wasm_bindgen(js_name = importData, unchecked_return_type = "Promise<{ samples: number; versions: number }>")]
    pub fn import_data(&self, file: Vec<u8>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let (samples, versions) = inner.personalizer.import(&file, now()).await.map_err(err)?;
            let out = Object::new();
            Reflect::set(&out, &"samples".into(), &(samples as f64).into())?;
            Reflect::set(&out, &"versions".into(), &(versions as f64).into())?;
            Ok(out.into())
        })
    }

    /// Counts for a status line, and the origin's storage use.
    #[wasm_bindgen(unchecked_return_type = "Promise<ClassifierStats>")]
    pub fn stats(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let stats = to_js(&inner.personalizer.stats().await.map_err(err)?)?;
            let storage = JsFuture::from(super::store::storage_status()).await?;
            Reflect::set(&stats, &"storage".into(), &storage)?;
            Ok(stats)
        })
    }

    /// Asks the browser to keep this origin's storage under pressure.
    #[wasm_bindgen(js_name = requestPersistence, unchecked_return_type = "Promise<boolean>")]
    pub fn request_persistence(&self) -> Promise {
        super::store::request_persistence()
    }

    /// Re-reads the current head from the store (another tab may have updated it).
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo>")]
    pub fn reload(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { to_js(&inner.personalizer.reload().await.map_err(err)?) })
    }
}

/// `options` over the bundle's defaults, as one options object (so a
/// partial `optimizer` is not half-defaulted by the crate's own defaults).
fn merge_defaults(defaults: &UpdateConfig, options: &JsValue) -> Result<JsValue, JsValue> {
    let merged = Object::assign(&Object::new(), to_js(defaults)?.unchecked_ref());
    if options.is_object() {
        Object::assign(&merged, options.unchecked_ref());
    }
    // `null` (json for None) is not a valid number option.
    for key in ["maxSteps", "timeBudgetMs"] {
        if Reflect::get(&merged, &key.into())?.is_null() {
            Reflect::delete_property(&merged, &key.into())?;
        }
    }
    Ok(merged.into())
}

async fn run_update_task(
    inner: &Rc<Inner>,
    config: UpdateConfig,
    mut observer: super::head::JsObserver,
) -> Result<JsValue, JsValue> {
    if inner.updating.replace(true) {
        return Err(err(Error::InvalidState(
            "an update is already running; wait for it (whenIdle) before starting another".into(),
        )));
    }
    let report = async {
        let candidate = inner
            .personalizer
            .train_candidate(&config, &performance_now, &mut |e| observer.observe(e))
            .await?;
        // In a Web Worker, a cancel posted during training is only
        // delivered now: let the event loop run, then drop the candidate
        // (storing nothing) if it asked to.
        next_task().await;
        if observer.aborted() {
            return Err(Error::Cancelled);
        }
        inner.personalizer.commit(candidate, now()).await
    }
    .await;
    inner.updating.set(false);
    for resolve in inner.idle_waiters.take() {
        let _ = resolve.call0(&JsValue::NULL);
    }
    observer.rethrow()?;
    to_js(&report.map_err(err)?)
}

/// Starts an automatic update if one is due and allowed.
fn maybe_auto_update(inner: &Rc<Inner>, pending: usize, newest_sample: u64) {
    let auto = &inner.auto;
    let since_last_attempt =
        newest_sample.saturating_sub(inner.auto_attempted_through.get()) as usize;
    if !auto.enabled
        || pending < auto.threshold
        || since_last_attempt < auto.threshold
        || inner.updating.get()
    {
        return;
    }
    inner.auto_attempted_through.set(newest_sample);
    let inner = inner.clone();
    spawn_local(async move {
        if inner.auto.only_while_charging && !charging_or_unknown().await {
            return;
        }
        if inner.auto.only_when_idle {
            idle().await;
        }
        if inner.updating.get() {
            return;
        }
        let notify = |event: JsValue| {
            if let Some(listener) = &inner.auto.listener {
                let _ = listener.call1(&JsValue::NULL, &event);
            }
        };
        notify(phase("started", "pending", &(pending as f64).into()));
        let listener = inner.auto.listener.clone();
        let progress = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            if let Some(listener) = &listener {
                let _ = listener.call1(&JsValue::NULL, &phase("progress", "event", &event));
            }
        });
        let callback: UpdateEventCallback =
            JsValue::from(progress.as_ref().unchecked_ref::<Function>().clone()).unchecked_into();
        let outcome = match read_update_options(None, Some(callback)) {
            Ok((_, observer)) => run_update_task(&inner, inner.auto.config.clone(), observer).await,
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

/// Resolves on the event loop's next task (after pending messages).
async fn next_task() {
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

/// False only when the Battery Status API exists and says "not charging".
async fn charging_or_unknown() -> bool {
    let Ok(navigator) = Reflect::get(&js_sys::global(), &"navigator".into()) else {
        return true;
    };
    let Ok(get_battery) =
        Reflect::get(&navigator, &"getBattery".into()).and_then(|f| f.dyn_into::<Function>())
    else {
        return true;
    };
    let Ok(promise) = get_battery
        .call0(&navigator)
        .and_then(|p| p.dyn_into::<Promise>())
    else {
        return true;
    };
    match JsFuture::from(promise).await {
        Ok(battery) => Reflect::get(&battery, &"charging".into()).map_or(true, |c| c.is_truthy()),
        Err(_) => true,
    }
}
