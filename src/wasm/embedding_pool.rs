//! The core's [`EmbeddingPool`] over a JavaScript object — the package's
//! `EmbeddingPool` (src/js/embedding-pool.js: Web Workers, each with the
//! bundle's encoder), or anything of its shape — and `Encoder.fromBundle`,
//! which builds such a worker's encoder. The rules (when a job is worth
//! the pool, which texts go together, what a failure means) are the core's
//! (`crate::classifier::embedding_pool`).

use std::rc::Rc;

use js_sys::{Array, Float32Array, Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use super::classifier::{next_task, read_bundle, BundleSourceArg};
use super::encoder::JsEncoder;
use super::js_error;
use crate::classifier::embedding_pool::{EmbeddingPool, PoolFuture};
use crate::error::{Error, Result};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Where a Classifier's big embedding jobs run (an import's, an update's after an encoder change): `EmbeddingPool` from `localtune/embedding-pool`, or any object of this shape. */
export interface EmbeddingPoolLike {
  /** Threads it embeds on besides the classifier's (its workers). */
  readonly workers: number;
  /** One run of texts' vectors (row-major), each as `Encoder.embed` on the bundle's encoder gives them, from whichever worker is free; runs are handed out in the order asked. */
  embedRun(texts: string[]): Promise<Float32Array>;
  /** Stops the workers (runs still pending reject); the next `embedRun` starts them again. */
  release(): void;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(message: &str);
}

pub(crate) struct JsEmbeddingPool {
    pool: JsValue,
    workers: usize,
    embed_run: Function,
    release: Function,
}

impl JsEmbeddingPool {
    /// `options.embeddingPool` if there is one, checked for the shape.
    pub(crate) fn from_options(options: &JsValue) -> Result<Option<Rc<Self>>, JsValue> {
        if !options.is_object() {
            return Ok(None);
        }
        let pool = Reflect::get(options, &"embeddingPool".into())?;
        if pool.is_undefined() || pool.is_null() {
            return Ok(None);
        }
        let method = |name: &str| -> Result<Function, JsValue> {
            Reflect::get(&pool, &name.into())?
                .dyn_into::<Function>()
                .map_err(|_| {
                    js_error(Error::Config(format!(
                        "embeddingPool.{name} must be a function (an EmbeddingPool from \
                         localtune/embedding-pool)"
                    )))
                })
        };
        let workers = Reflect::get(&pool, &"workers".into())?
            .as_f64()
            .filter(|w| w.fract() == 0.0 && (0.0..=1024.0).contains(w))
            .ok_or_else(|| {
                js_error(Error::Config(
                    "embeddingPool.workers must be a whole number from 0 to 1024".into(),
                ))
            })?;
        Ok(Some(Rc::new(JsEmbeddingPool {
            embed_run: method("embedRun")?,
            release: method("release")?,
            workers: workers as usize,
            pool,
        })))
    }
}

/// Resolves once the messages already waiting for this thread (the
/// pool's answers) have been delivered: a message to itself on a fresh
/// `MessageChannel`, queued behind them. `setTimeout(0)` did the same, but
/// after the browser's 4 ms minimum for nested timers — after every run the
/// classifier's thread embeds, ~4% of a pool job in Chromium. Not for
/// background work: the working head's relearning yields to the worker's
/// requests on a timer (`classifier::next_task` says what this cost it).
async fn after_pending_messages() {
    let Ok(channel) = web_sys::MessageChannel::new() else {
        return next_task().await;
    };
    let (inbox, outbox) = (channel.port1(), channel.port2());
    let delivered = Promise::new(&mut |resolve, _| inbox.set_onmessage(Some(&resolve)));
    if outbox.post_message(&JsValue::NULL).is_ok() {
        let _ = JsFuture::from(delivered).await;
    } else {
        next_task().await;
    }
    inbox.close();
    outbox.close();
}

/// A rejection of the pool's, as the core's error.
fn pool_error(e: JsValue) -> Error {
    let message = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    Error::ModelRuntime {
        stage: "run in the embedding pool",
        message,
    }
}

impl EmbeddingPool for JsEmbeddingPool {
    fn workers(&self) -> usize {
        self.workers
    }

    fn embed_run(&self, texts: Vec<String>) -> PoolFuture<Result<Vec<f32>>> {
        let texts: Array = texts.iter().map(|t| JsValue::from_str(t)).collect();
        let answer = self.embed_run.call1(&self.pool, &texts);
        Box::pin(async move {
            let answer = JsFuture::from(Promise::resolve(&answer.map_err(pool_error)?));
            let vectors: Float32Array = answer
                .await
                .map_err(pool_error)?
                .dyn_into()
                .map_err(|_| pool_error("a run's vectors are not a Float32Array".into()))?;
            Ok(vectors.to_vec())
        })
    }

    fn breathe(&self) -> PoolFuture<()> {
        Box::pin(after_pending_messages())
    }

    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    fn release(&self) {
        let _ = self.release.call0(&self.pool);
    }

    fn failed(&self, error: &Error) {
        console_warn(&format!(
            "localtune: the embedding pool failed ({error}); embedding on this thread instead"
        ));
    }
}

#[wasm_bindgen(js_class = Encoder)]
impl JsEncoder {
    /// The encoder of a bundle (a manifest URL, or its files' bytes by
    /// name), every file checked as `Classifier.load` checks it, and read
    /// from the bundle cache when it holds them (`options.bundleCache:
    /// false` reads the network only): what each worker of an
    /// `EmbeddingPool` embeds with.
    #[wasm_bindgen(js_name = fromBundle, unchecked_return_type = "Promise<Encoder>")]
    pub fn from_bundle(
        source: BundleSourceArg,
        options: Option<EncoderFromBundleOptionsArg>,
    ) -> Result<Promise, JsValue> {
        let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        let use_cache = !options.is_object()
            || Reflect::get(&options, &"bundleCache".into())? != JsValue::FALSE;
        Ok(future_to_promise(async move {
            let (bundle, _) = read_bundle(source.into(), use_cache, &Default::default()).await?;
            Ok(JsEncoder {
                inner: Rc::new(bundle.encoder),
            }
            .into())
        }))
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "{ bundleCache?: boolean }")]
    pub type EncoderFromBundleOptionsArg;
}
