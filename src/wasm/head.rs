//! The `Head` class: predicting from feature vectors and the synchronous
//! update (training) over cached vectors. The promise-based, Worker-side
//! API is built on top of this.

use std::ops::ControlFlow;

use js_sys::{Float32Array, Function, Reflect};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::{config_error, js_error, options_json, performance_now};
use crate::classifier::options::update_config_over;
use crate::error::Error;
use crate::head::train::{run_update, TrainingSet, UpdateConfig};
use crate::head::{Head, HeadArchitecture};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/**
 * Settings of one update: every field of `UpdateSettings` is optional (the
 * defaults: `defaultUpdateOptions()`; docs/api.md), and `signal` is checked
 * between mini-batches: an aborted signal cancels with an `AbortError`.
 * (`UpdateSettings` and the other value types are derived from the Rust
 * types the binding sends and reads.)
 */
export interface UpdateOptions extends UpdateSettings {
  signal?: AbortSignal;
}

/** What a finished update returns: the new head (the old one is unchanged) and how it went. */
export interface UpdateOutcome extends UpdateFigures {
  head: Head;
}

/** @deprecated The same type under its old name: use `UpdateOutcome`. */
export type UpdateResult = UpdateOutcome;
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "HeadArchitecture")]
    pub type HeadArchitectureArg;
    #[wasm_bindgen(typescript_type = "UpdateOptions")]
    pub type UpdateOptionsArg;
    #[wasm_bindgen(typescript_type = "(event: UpdateEvent) => boolean | void")]
    pub type UpdateEventCallback;
    #[wasm_bindgen(typescript_type = "UpdateOutcome")]
    pub type UpdateOutcomeJs;
    #[wasm_bindgen(typescript_type = "LabelProbability[]")]
    pub type LabelProbabilities;
}

/// A classifier head over feature vectors (see the crate docs).
#[wasm_bindgen(js_name = Head)]
pub struct JsHead {
    pub(crate) inner: Head,
}

#[wasm_bindgen(js_class = Head)]
impl JsHead {
    /// A freshly initialised head (seeded: same seed, same weights).
    pub fn seeded(
        input_dim: usize,
        labels: Vec<String>,
        architecture: Option<HeadArchitectureArg>,
        seed: Option<f64>,
    ) -> Result<JsHead, JsValue> {
        let architecture = match architecture.map(JsValue::from) {
            None => HeadArchitecture::Linear,
            Some(value) if value.is_undefined() || value.is_null() => HeadArchitecture::Linear,
            Some(value) => serde_wasm_bindgen::from_value(value)
                .map_err(|e| config_error(format!("head architecture: {e}")))?,
        };
        let seed = seed.unwrap_or(0.0);
        if !(seed >= 0.0 && seed.fract() == 0.0 && seed <= 2f64.powi(53)) {
            return Err(config_error(format!(
                "seed must be a non-negative integer; found {seed}"
            )));
        }
        let inner =
            Head::new_seeded(input_dim, architecture, labels, seed as u64).map_err(js_error)?;
        Ok(JsHead { inner })
    }

    #[wasm_bindgen(getter)]
    pub fn labels(&self) -> Vec<String> {
        self.inner.labels().to_vec()
    }

    #[wasm_bindgen(getter, js_name = inputDim)]
    pub fn input_dim(&self) -> usize {
        self.inner.input_dim()
    }

    #[wasm_bindgen(getter, js_name = parameterCount)]
    pub fn parameter_count(&self) -> usize {
        self.inner.parameter_count()
    }

    /// Adds a label (or finds an existing one) and returns its index; the
    /// other labels' weights are kept exactly.
    #[wasm_bindgen(js_name = addLabel)]
    pub fn add_label(&mut self, label: &str) -> Result<usize, JsValue> {
        self.inner.add_label(label).map_err(js_error)
    }

    /// Softmax probabilities for one feature vector, in label order.
    pub fn probabilities(&self, features: &[f32]) -> Result<Float32Array, JsValue> {
        let p = self.inner.probabilities(features).map_err(js_error)?;
        Ok(Float32Array::from(p.as_slice()))
    }

    /// Every label with its probability, most probable first.
    pub fn predict(&self, features: &[f32]) -> Result<LabelProbabilities, JsValue> {
        let ranked = self.inner.predict(features).map_err(js_error)?;
        Ok(to_js(&ranked)?.unchecked_into())
    }

    /// Trains a copy of this head on `features` (`labels.length × inputDim`
    /// floats) and returns it with a report; this head is not changed. New
    /// labels must be added with `addLabel` first. `onEvent` sees every
    /// event; returning `false` (or aborting `options.signal`) cancels
    /// between mini-batches with an `AbortError`. An exception thrown by
    /// `onEvent` cancels too and is rethrown.
    pub fn update(
        &self,
        features: &[f32],
        labels: Vec<String>,
        options: Option<UpdateOptionsArg>,
        on_event: Option<UpdateEventCallback>,
    ) -> Result<UpdateOutcomeJs, JsValue> {
        let (config, mut observer) = read_update_options(options, on_event)?;
        let label_indices = labels
            .iter()
            .map(|l| self.inner.label_index(l))
            .collect::<Result<Vec<_>, Error>>()
            .map_err(js_error)?;
        let samples = TrainingSet {
            features,
            labels: &label_indices,
        };
        let outcome = run_update(
            &self.inner,
            None,
            samples,
            &config,
            &performance_now,
            &mut |event| observer.observe(event),
        );
        observer.rethrow()?;
        let outcome = outcome.map_err(js_error)?;
        let report = to_js(&outcome)?;
        Reflect::set(
            &report,
            &"head".into(),
            &JsHead {
                inner: outcome.head,
            }
            .into(),
        )?;
        Ok(report.unchecked_into())
    }
}

/// Reads `UpdateOptions` (over the crate's defaults) and the event
/// callback of an update.
pub(crate) fn read_update_options(
    options: Option<UpdateOptionsArg>,
    on_event: Option<UpdateEventCallback>,
) -> Result<(UpdateConfig, JsObserver), JsValue> {
    let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
    let config = update_config_over(
        &UpdateConfig::default(),
        &options_json(&options, &["signal"])?,
    )
    .map_err(js_error)?;
    Ok((config, observer(&options, on_event)?))
}

/// The observer of an update: `on_event`, and `options.signal` if given.
pub(crate) fn observer(
    options: &JsValue,
    on_event: Option<UpdateEventCallback>,
) -> Result<JsObserver, JsValue> {
    let signal = if options.is_object() {
        Reflect::get(options, &"signal".into())?
    } else {
        JsValue::UNDEFINED
    };
    Ok(JsObserver {
        callback: on_event.map(|f| f.unchecked_into()),
        signal,
        thrown: None,
    })
}

/// The observer of `options.onProgress` and `options.signal`.
pub(crate) fn observer_in_options(options: &JsValue) -> Result<JsObserver, JsValue> {
    let callback = if options.is_object() {
        Reflect::get(options, &"onProgress".into())?
    } else {
        JsValue::UNDEFINED
    };
    let callback = match callback.is_undefined() {
        true => None,
        false => Some(
            callback
                .dyn_into::<Function>()
                .map_err(|_| js_error(Error::Config("onProgress must be a function".into())))?,
        ),
    };
    observer(options, callback.map(JsCast::unchecked_into))
}

/// Passes update events (or an import's progress) to a JS callback and
/// checks an `AbortSignal`: `false` from the callback, an exception in it,
/// or an aborted signal stops the update between mini-batches.
pub(crate) struct JsObserver {
    callback: Option<Function>,
    signal: JsValue,
    thrown: Option<JsValue>,
}

impl JsObserver {
    pub(crate) fn observe(&mut self, event: &impl Serialize) -> ControlFlow<()> {
        if let Some(callback) = &self.callback {
            let answer = to_js(event).and_then(|event| callback.call1(&JsValue::NULL, &event));
            match answer {
                Ok(answer) if answer == JsValue::FALSE => return ControlFlow::Break(()),
                Ok(_) => {}
                Err(e) => {
                    self.thrown = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        if self.aborted() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// The `AbortSignal` has fired.
    pub(crate) fn aborted(&self) -> bool {
        !self.signal.is_undefined()
            && Reflect::get(&self.signal, &"aborted".into()).is_ok_and(|a| a.is_truthy())
    }

    /// The exception the callback threw, if it did: the caller's error wins
    /// over our `AbortError`.
    pub(crate) fn rethrow(&mut self) -> Result<(), JsValue> {
        match self.thrown.take() {
            Some(thrown) => Err(thrown),
            None => Ok(()),
        }
    }
}

/// The settings an update uses when `UpdateOptions` leaves them out.
#[wasm_bindgen(js_name = defaultUpdateOptions)]
pub fn default_update_options() -> Result<UpdateOptionsArg, JsValue> {
    Ok(to_js(&UpdateConfig::default())?.unchecked_into())
}

/// Serialises plain data for JS: structs become objects, `None` undefined.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsValue::from(js_sys::Error::new(&e.to_string())))
}
