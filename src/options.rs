//! Reading an app's option objects. Every options struct is plain serde
//! data with `deny_unknown_fields` and defaults, read from JSON here, so
//! which keys exist and what a bad one says are decided once, in the core,
//! and tested natively; the JavaScript layer only turns an object into JSON
//! (`src/wasm/mod.rs`, `options_json`).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Deserialises an options object (`null` reads as `{}`: every default).
/// Errors are [`Error::Config`] under `what`, naming the key path
/// (`autoUpdate.threshold: invalid value…`, `maxSeqLenn: unknown field…`).
pub fn read_options<T: DeserializeOwned>(what: &str, value: Value) -> Result<T> {
    let value = match value {
        Value::Null => Value::Object(Map::new()),
        Value::Object(_) => value,
        _ => return Err(Error::Config(format!("{what} must be an object"))),
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            Error::Config(format!("{what}: {inner}"))
        } else {
            Error::Config(format!("{what}: {path}: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SaveDetails, StorePolicy};
    use crate::EncoderConfig;
    use serde_json::json;

    #[test]
    fn every_options_object_refuses_unknown_keys_and_names_bad_ones() {
        let policy: StorePolicy =
            read_options("store options", json!({ "maxSamples": 7 })).unwrap();
        assert_eq!(policy.max_samples, 7);
        assert_eq!(policy.keep_versions, StorePolicy::default().keep_versions);
        let error = read_options::<StorePolicy>("store options", json!({ "maxSample": 7 }))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("store options: maxSample: unknown field `maxSample`"),
            "{error}"
        );

        let config: EncoderConfig = read_options("encoder options", Value::Null).unwrap();
        assert_eq!(config, EncoderConfig::default());
        let error =
            read_options::<EncoderConfig>("encoder options", json!({ "maxSeqLen": "long" }))
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("encoder options: maxSeqLen: invalid type"),
            "{error}"
        );

        let details: SaveDetails = read_options(
            "save options",
            json!({ "rejected": true, "metrics": { "steps": 3 } }),
        )
        .unwrap();
        assert!(details.rejected);
        assert_eq!(details.metrics.steps, Some(3));
        let error = read_options::<SaveDetails>("save options", json!({ "sampleCounts": 3 }))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("save options: sampleCounts: unknown field"),
            "{error}"
        );
        let error =
            read_options::<SaveDetails>("save options", json!({ "metrics": { "steps": -1 } }))
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("save options: metrics.steps: invalid value"),
            "{error}"
        );
        let error = read_options::<SaveDetails>("save options", json!(3)).unwrap_err();
        assert_eq!(error.code(), "ConfigError");
    }
}
