//! Stable hashes of generated inputs and objects: SHA-256 over canonical JSON (object keys sorted,
//! as `serde_json::Map` keeps them), so the same input hashes the same in every process and
//! provider version.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Length of the hex hashes we store in annotations.
const HEX_LEN: usize = 16;

/// Errors hashing a value.
#[derive(Debug, thiserror::Error)]
#[error("serialising {what} for hashing: {source}")]
pub struct HashError {
    what: &'static str,
    #[source]
    source: serde_json::Error,
}

/// The first 16 hex digits of SHA-256 of the canonical JSON of `value`.
pub fn stable_hash<T: Serialize>(what: &'static str, value: &T) -> Result<String, HashError> {
    // Through `Value` so map keys are sorted whatever the source type's field order.
    let canonical = serde_json::to_value(value).map_err(|source| HashError { what, source })?;
    let bytes = serde_json::to_vec(&canonical).map_err(|source| HashError { what, source })?;
    Ok(hex_prefix(&bytes))
}

/// The first 16 hex digits of SHA-256 of `bytes`.
pub fn hex_prefix(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = hex::encode(digest);
    s.truncate(HEX_LEN);
    s
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn key_order_does_not_matter() {
        let mut a = HashMap::new();
        let mut b = HashMap::new();
        for i in 0..50 {
            a.insert(format!("k{i}"), i);
        }
        for i in (0..50).rev() {
            b.insert(format!("k{i}"), i);
        }
        assert_eq!(stable_hash("a", &a).unwrap(), stable_hash("b", &b).unwrap());
    }

    #[test]
    fn known_value_is_pinned() {
        // Pinned: a change here would roll every control plane on provider upgrade.
        assert_eq!(
            stable_hash("x", &serde_json::json!({"b": 1, "a": [true]})).unwrap(),
            hex_prefix(br#"{"a":[true],"b":1}"#)
        );
        assert_eq!(hex_prefix(b""), "e3b0c44298fc1c14");
    }
}
