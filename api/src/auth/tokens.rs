//! Opaque bearer tokens: 32 random bytes, URL-safe base64, with a prefix that says what kind
//! of token it is. Only the sha256 of a token is ever stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const SESSION_PREFIX: &str = "obs_";
pub const API_KEY_PREFIX: &str = "obk_";
pub const INVITE_PREFIX: &str = "obi_";

/// A new random token with `prefix`, and its hash.
pub fn generate(prefix: &str) -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = hash(&token);
    (token, digest)
}

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hashed() {
        let (a, hash_a) = generate(SESSION_PREFIX);
        let (b, _) = generate(SESSION_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("obs_"));
        assert_eq!(a.len(), 4 + 43);
        assert_eq!(hash(&a), hash_a);
        assert_ne!(hash(&a), hash(&b));
    }
}
