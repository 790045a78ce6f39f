//! What an app may tell a classifier, read from JSON and resolved against
//! the bundle's defaults here in the core, so the rules (which keys exist,
//! what overrides what, what is out of range) are tested natively and the
//! JavaScript layer only converts values.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auto_update::AutoUpdatePolicy;
use crate::bundle::TrainingSpec;
use crate::error::{Error, Result};
use crate::options::read_options;
use crate::store::StorePolicy;
use crate::UpdateConfig;

/// `Classifier.load`'s options (functions such as `onAutoUpdate` are taken
/// out by the binding before these are read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[cfg_attr(
    target_arch = "wasm32",
    derive(tsify::Tsify),
    tsify(missing_as_null, rename = "ClassifierConfig")
)]
pub struct ClassifierOptions {
    /// The IndexedDB store's name (default: the bundle's name).
    pub store_name: Option<String>,
    /// At most this many corrections are kept (default 5,000); past it the
    /// oldest of the label with the most go first.
    pub max_samples: Option<usize>,
    /// Keep the newest this-many versions (default 20), besides the current
    /// and the shipped head.
    pub keep_versions: Option<usize>,
    /// When an update starts by itself.
    pub auto_update: AutoUpdateOptions,
    /// Keep the bundle's files in the browser's Cache API between visits,
    /// keyed by their sha256: a second visit fetches only the manifest
    /// (revalidated), an offline one nothing. Default true; a refused or
    /// full cache falls back to the network (see `bundle::cache`).
    pub bundle_cache: Option<bool>,
}

/// `autoUpdate` in [`ClassifierOptions`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify), tsify(missing_as_null))]
pub struct AutoUpdateOptions {
    /// Default true.
    pub enabled: Option<bool>,
    /// Pending corrections that start an update (default: the bundle's, the
    /// seed's 50).
    pub threshold: Option<usize>,
    /// Wait for `requestIdleCallback` where the browser has it.
    pub only_when_idle: bool,
    /// Only while charging, where the Battery Status API exists (elsewhere:
    /// always).
    pub only_while_charging: bool,
    /// Update settings over the bundle's defaults.
    #[cfg_attr(target_arch = "wasm32", tsify(type = "UpdateSettings"))]
    pub options: Option<Value>,
}

/// Everything [`ClassifierOptions`] decides, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierSettings {
    /// `None`: the bundle's name.
    pub store_name: Option<String>,
    pub store_policy: StorePolicy,
    pub auto_update: AutoUpdatePolicy,
}

impl ClassifierOptions {
    /// Reads the options object; unknown keys and wrong types are a
    /// [`Error::Config`] naming them.
    pub fn from_json(value: Value) -> Result<Self> {
        read_options("classifier options", value)
    }

    /// Whether a bundle loaded by URL is kept in the browser's Cache API
    /// (default yes).
    pub fn use_bundle_cache(&self) -> bool {
        self.bundle_cache.unwrap_or(true)
    }

    /// The settings these options give with `training` (the bundle's
    /// training section) as the defaults.
    pub fn resolve(&self, training: &TrainingSpec) -> Result<ClassifierSettings> {
        let defaults = StorePolicy::default();
        let store_policy = StorePolicy {
            max_samples: self.max_samples.unwrap_or(defaults.max_samples),
            keep_versions: self.keep_versions.unwrap_or(defaults.keep_versions),
        };
        store_policy.validate()?;
        let auto = &self.auto_update;
        let config = match &auto.options {
            Some(options) => update_config_over(&training.defaults, options)
                .map_err(|e| prefix(e, "autoUpdate.options"))?,
            None => training.defaults.clone(),
        };
        training.check_config(&config)?;
        if auto.threshold == Some(0) {
            return Err(Error::Config(
                "autoUpdate.threshold must be at least 1".into(),
            ));
        }
        Ok(ClassifierSettings {
            store_name: self.store_name.clone(),
            store_policy,
            auto_update: AutoUpdatePolicy {
                enabled: auto.enabled.unwrap_or(true),
                threshold: auto
                    .threshold
                    .unwrap_or(training.auto_update_threshold)
                    .max(1),
                only_when_idle: auto.only_when_idle,
                only_while_charging: auto.only_while_charging,
                config,
            },
        })
    }
}

/// `options` (a JSON object of update settings, each optional) over
/// `defaults`, key by key: a key given replaces the default whole, so a
/// partial `optimizer` gets the optimizer's own defaults, not a mix with
/// the bundle's optimizer. Unknown keys are refused; `null` or an absent
/// key keeps the default. The result is range-checked.
pub fn update_config_over(defaults: &UpdateConfig, options: &Value) -> Result<UpdateConfig> {
    let given = match options {
        Value::Null => return Ok(defaults.clone()),
        Value::Object(map) => map,
        _ => return Err(Error::Config("update options must be an object".into())),
    };
    let Value::Object(mut merged) = serde_json::to_value(defaults).expect("plain data") else {
        unreachable!("UpdateConfig serialises as an object")
    };
    for (key, value) in given {
        if !value.is_null() {
            merged.insert(key.clone(), value.clone());
        }
    }
    let config: UpdateConfig = read_options("update options", Value::Object(merged))?;
    config.validate()?;
    Ok(config)
}

fn prefix(error: Error, what: &str) -> Error {
    match error {
        Error::Config(message) => Error::Config(format!("{what}: {message}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{AllowedRanges, TrainingInputs, TrainingSpec};
    use crate::Optimizer;
    use serde_json::json;

    fn training() -> TrainingSpec {
        TrainingSpec {
            defaults: UpdateConfig {
                epochs: 30,
                optimizer: Optimizer::Sgd { momentum: 0.5 },
                max_steps: Some(500),
                ..UpdateConfig::default()
            },
            allowed: AllowedRanges::default(),
            auto_update_threshold: 50,
            validation_gate_fraction: 0.2,
            rehearsal: None,
            shipped_check: None,
            shipped_margin: 0.01,
            inputs: TrainingInputs::FeatureVectors,
        }
    }

    #[test]
    fn nothing_given_means_the_bundle_and_store_defaults() {
        let settings = ClassifierOptions::from_json(Value::Null)
            .unwrap()
            .resolve(&training())
            .unwrap();
        assert_eq!(settings.store_name, None);
        assert_eq!(settings.store_policy, StorePolicy::default());
        let auto = settings.auto_update;
        assert!(auto.enabled && !auto.only_when_idle && !auto.only_while_charging);
        assert_eq!(auto.threshold, 50);
        assert_eq!(auto.config, training().defaults);
    }

    #[test]
    fn given_options_override_the_defaults() {
        let options = ClassifierOptions::from_json(json!({
            "storeName": "mine",
            "maxSamples": 100,
            "keepVersions": 3,
            "bundleCache": false,
            "autoUpdate": {
                "enabled": false,
                "threshold": 6,
                "onlyWhenIdle": true,
                "onlyWhileCharging": true,
                "options": { "epochs": 12, "optimizer": { "kind": "adam" } }
            }
        }))
        .unwrap();
        let settings = options.resolve(&training()).unwrap();
        assert!(!options.use_bundle_cache());
        assert!(ClassifierOptions::default().use_bundle_cache());
        assert_eq!(settings.store_name.as_deref(), Some("mine"));
        assert_eq!(settings.store_policy.max_samples, 100);
        assert_eq!(settings.store_policy.keep_versions, 3);
        let auto = settings.auto_update;
        assert!(!auto.enabled && auto.only_when_idle && auto.only_while_charging);
        assert_eq!(auto.threshold, 6);
        assert_eq!(auto.config.epochs, 12);
        // A given optimizer replaces the bundle's whole, with its own defaults.
        assert_eq!(auto.config.optimizer, Optimizer::default());
        assert_eq!(
            auto.config.max_steps,
            Some(500),
            "untouched keys keep the bundle's"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_config_errors_that_name_them() {
        let message = |value: Value| {
            let error = ClassifierOptions::from_json(value)
                .and_then(|o| o.resolve(&training()))
                .unwrap_err();
            assert_eq!(error.code(), "ConfigError", "{error}");
            error.to_string()
        };
        assert!(message(json!({ "maxSample": 3 })).contains("unknown field `maxSample`"));
        assert!(message(json!({ "autoUpdate": { "treshold": 3 } }))
            .contains("autoUpdate.treshold: unknown field `treshold`"));
        assert!(
            message(json!({ "autoUpdate": { "options": { "learningRte": 1 } } })).contains(
                "autoUpdate.options: update options: learningRte: unknown field `learningRte`"
            )
        );
        assert!(message(json!({ "maxSamples": -1 })).contains("maxSamples"));
        assert!(message(json!({ "maxSamples": 0 })).contains("maxSamples must be at least 1"));
        assert!(message(json!({ "autoUpdate": { "threshold": 0 } })).contains("threshold"));
        assert!(message(json!("fast")).contains("must be an object"));
        assert!(
            message(json!({ "autoUpdate": { "options": { "learningRate": 50 } } }))
                .contains("learningRate")
        );
    }

    #[test]
    fn update_options_merge_key_by_key_and_null_keeps_the_default() {
        let defaults = training().defaults;
        let merged = update_config_over(
            &defaults,
            &json!({ "learningRate": 0.05, "maxSteps": null, "timeBudgetMs": 20 }),
        )
        .unwrap();
        assert_eq!(merged.learning_rate, 0.05);
        assert_eq!(merged.max_steps, Some(500));
        assert_eq!(merged.time_budget_ms, Some(20.0));
        assert_eq!(merged.optimizer, defaults.optimizer);
        assert_eq!(
            update_config_over(&defaults, &Value::Null).unwrap(),
            defaults
        );
        let error = update_config_over(&defaults, &json!({ "batchSize": 0 })).unwrap_err();
        assert!(error.to_string().contains("batchSize"), "{error}");
        let error = update_config_over(&defaults, &json!([1])).unwrap_err();
        assert!(error.to_string().contains("must be an object"), "{error}");
    }
}
