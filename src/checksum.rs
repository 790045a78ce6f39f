//! sha256 of files and records, in lowercase hex: the encoder's identity,
//! the bundle's file checks and the store's record checks.

use sha2::{Digest, Sha256};

/// Bytes hashed per call into the compression function (see [`sha256_hex`]).
const CHUNK: usize = 64 << 10;

/// sha256 of `bytes`, lowercase hex.
///
/// Fed in 64 KiB pieces rather than in one call. WebAssembly engines start
/// every function in a baseline tier and switch to optimised code only at a
/// later *call* (V8 cannot replace a running wasm frame), so a single call
/// that hashes a 23 MB model ran entirely in the baseline tier: ~2 s of a
/// 3.8 s cold start. In pieces, the optimised code takes over after the
/// first few; the digest is the same.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for piece in bytes.chunks(CHUNK) {
        hasher.update(piece);
    }
    lowercase_hex(&hasher.finalize())
}

/// A digest's bytes as lowercase hex (how manifests and records write them).
pub fn lowercase_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_known_digests_across_piece_boundaries() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Longer than one piece, not a multiple of it: same as one call.
        let long: Vec<u8> = (0..CHUNK * 2 + 77).map(|i| (i % 251) as u8).collect();
        let one_call: String = Sha256::digest(&long)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha256_hex(&long), one_call);
    }
}
