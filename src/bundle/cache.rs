//! What a browser keeps of a bundle between visits, by the rules here; the
//! browser adapter (`src/wasm/classifier.rs`) only moves bytes in and out
//! of the Cache API.
//!
//! - One cache per manifest URL ([`cache_name`]): bundles at other URLs
//!   (another app on the same origin) are never touched.
//! - A file is kept under its sha256 ([`file_key`]), as the manifest names
//!   it, so a file that did not change between two versions of a bundle is
//!   not downloaded again, and a cached copy is used only if its bytes still
//!   hash to it ([`usable`]): a damaged entry is fetched again.
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
use crate::checksum::sha256_hex;

/// The cache's name for the bundle at `manifest_url`.
pub fn cache_name(manifest_url: &str) -> String {
    format!("localtune-bundle {manifest_url}")
}

/// The key a file with this sha256 is kept under: a URL (the Cache API
/// keys requests), on a reserved domain so it can never be fetched.
pub fn file_key(sha256: &str) -> String {
    format!("https://bundle-cache.localtune.invalid/sha256/{sha256}")
}

/// Whether cached `bytes` may stand in for the file with this sha256.
pub fn usable(bytes: &[u8], sha256: &str) -> bool {
    sha256_hex(bytes) == sha256
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
