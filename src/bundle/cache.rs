//! What a browser keeps of a bundle between visits, by the rules here; the
//! browser adapter (`src/wasm/classifier.rs`) only moves bytes in and out
//! of the Cache API.
//!
//! - One cache per manifest URL ([`cache_name`]): bundles at other URLs
//!   (another app on the same origin) are never touched.
//! - A file is kept under its sha256 ([`file_key`]), as the manifest names
//!   it, so a file that did not change between two versions of a bundle is
//!   not downloaded again. A cached copy is used as it is: `Bundle::load`
//!   checks every file's sha256 anyway, once. If the bundle then fails to
//!   load, the entries that load read or wrote are deleted and, if any file
//!   came from the cache, the files are fetched again from the network,
//!   once ([`retry_from_network`]): a damaged entry costs a download, never
//!   the load.
//! - The manifest is kept under its own URL and always asked of the network
//!   first (revalidated); the cached copy is used only when the network
//!   fails, which is what makes an offline start possible.
//! - After a bundle loads, every entry it does not name goes
//!   ([`stale_keys`]): a changed bundle replaces the files it changed.
//!
//! Why the Cache API rather than IndexedDB: it stores the bytes as the
//! browser stores HTTP responses (no structured-clone copy of 16 MB), it is
//! what Transformers.js uses for the same purpose, and it keeps model files
//! apart from the user's data, so deleting the user's data
//! (`deleteEverything`) does not make the next visit download the model.

use super::Manifest;

/// The cache's name for the bundle at `manifest_url`.
pub fn cache_name(manifest_url: &str) -> String {
    format!("localtune-bundle {manifest_url}")
}

/// The key a file with this sha256 is kept under: a URL (the Cache API
/// keys requests), on a reserved domain so it can never be fetched.
pub fn file_key(sha256: &str) -> String {
    format!("https://bundle-cache.localtune.invalid/sha256/{sha256}")
}

/// Whether a load whose bundle `Bundle::load` refused (at attempt
/// `attempt`, from 0) tries again with every file from the network: only
/// the first time, and only if some file came from the cache — the network
/// alone giving a bad bundle is the bundle's error to report.
pub fn retry_from_network(attempt: u32, any_from_cache: bool) -> bool {
    attempt == 0 && any_from_cache
}

/// The cache entries (`cached`, by key) that the bundle of `manifest` at
/// `manifest_url` does not use: everything but the manifest's own URL and
/// the keys of the files it names.
pub fn stale_keys(cached: &[String], manifest_url: &str, manifest: &Manifest) -> Vec<String> {
    let keep: Vec<String> = manifest
        .file_refs()
        .into_iter()
        .map(|(_, sha256)| file_key(sha256))
        .collect();
    cached
        .iter()
        .filter(|key| key.as_str() != manifest_url && !keep.contains(key))
        .cloned()
        .collect()
}
