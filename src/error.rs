//! The crate's one error type. Every failure a user can cause (bad model
//! bytes, bad tokenizer, bad configuration) is a variant with a message that
//! says what was expected and what was found; nothing a user controls panics.

use thiserror::Error;

/// Errors from every part of localtune.
#[derive(Debug, Error)]
pub enum Error {
    /// The model bytes are not a readable ONNX file (or compiled encoder).
    #[error("the encoder model file is not valid: {0}")]
    ModelFormat(String),

    /// The ONNX graph's inputs or outputs do not fit a sentence encoder.
    #[error("the encoder model's interface does not fit: expected {expected}; found {found}")]
    ModelInterface { expected: String, found: String },

    /// tract could not analyse, optimise or run the graph.
    #[error("the encoder model could not be {stage}: {message}")]
    ModelRuntime {
        stage: &'static str,
        message: String,
    },

    /// The tokenizer.json could not be loaded or used.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),

    /// A configuration value is out of its allowed range.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// Sizes that must agree do not.
    #[error("{what} do not fit: expected {expected}; found {found}")]
    ShapeMismatch {
        what: String,
        expected: String,
        found: String,
    },

    /// A NaN or infinity where only finite numbers make sense.
    #[error("{what} contain a non-finite value ({value}) at index {index}")]
    NonFinite {
        what: String,
        index: usize,
        value: f32,
    },

    /// A label the head does not know.
    #[error("unknown label {label:?}; the head knows {known:?}")]
    UnknownLabel { label: String, known: Vec<String> },

    /// The samples cannot be trained on, or training diverged.
    #[error("training failed: {0}")]
    Training(String),

    /// The caller cancelled an update (the previous head is untouched) or
    /// an embedding of many texts.
    #[error("cancelled; nothing was changed (an update leaves the previous head as it was)")]
    Cancelled,

    /// A feedback sample that cannot be stored (empty text, too long).
    #[error("invalid sample: {0}")]
    InvalidSample(String),

    /// The browser's storage refused or failed an operation; nothing of it
    /// was written.
    #[error("storage failed during {operation}: {message}")]
    Storage { operation: String, message: String },

    /// The origin's storage quota is used up; nothing of the operation was
    /// written.
    #[error("storage quota exceeded during {operation}; nothing was written ({message})")]
    QuotaExceeded { operation: String, message: String },

    /// A stored record failed its checksum or could not be decoded.
    #[error("corrupt record ({what}): {detail}")]
    CorruptRecord { what: String, detail: String },

    /// A sample or version that does not exist.
    #[error("not found: {0}")]
    NotFound(String),

    /// The operation is not allowed in the store's current state (deleting
    /// the current or the shipped version, rolling back to a head trained on
    /// another encoder).
    #[error("not allowed: {0}")]
    InvalidState(String),

    /// A model bundle that cannot be used: `field` is the manifest field.
    #[error("bundle: {field}: {problem}")]
    Bundle { field: String, problem: String },

    /// An export file that cannot be imported; the store is unchanged.
    #[error("cannot import: {0}")]
    Import(String),

    /// Something this build leaves out: the npm package's page modules have
    /// no ONNX importer (they load compiled encoders).
    #[error("not in this build: {0}")]
    Unsupported(String),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short, stable code for each variant, for the JavaScript side
    /// (`error.name`), where matching on message text would be brittle.
    pub fn code(&self) -> &'static str {
        match self {
            Error::ModelFormat(_) => "ModelFormatError",
            Error::ModelInterface { .. } => "ModelInterfaceError",
            Error::ModelRuntime { .. } => "ModelRuntimeError",
            Error::Tokenizer(_) => "TokenizerError",
            Error::Config(_) => "ConfigError",
            Error::ShapeMismatch { .. } => "ShapeError",
            Error::NonFinite { .. } => "NonFiniteError",
            Error::UnknownLabel { .. } => "UnknownLabelError",
            Error::Training(_) => "TrainingError",
            // The DOM's name for a cancelled operation, which is what an
            // AbortSignal-driven caller checks for.
            Error::Cancelled => "AbortError",
            Error::InvalidSample(_) => "InvalidSampleError",
            Error::Storage { .. } => "StorageError",
            // The DOMException name IndexedDB itself uses.
            Error::QuotaExceeded { .. } => "QuotaExceededError",
            Error::CorruptRecord { .. } => "CorruptRecordError",
            Error::NotFound(_) => "NotFoundError",
            Error::InvalidState(_) => "InvalidStateError",
            Error::Import(_) => "ImportError",
            Error::Bundle { .. } => "BundleError",
            Error::Unsupported(_) => "UnsupportedError",
        }
    }
}
