//! Sealing secrets at rest (TOTP seeds now, channel tokens later) with XChaCha20-Poly1305
//! under the server's 32-byte key. A sealed value is `nonce (24 bytes) || ciphertext`.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the secret key must be 64 hexadecimal characters (32 bytes)")]
    BadKey,
    #[error("a secret could not be sealed")]
    Seal,
    #[error("a sealed secret could not be opened (wrong key or damaged data)")]
    Open,
}

impl Sealer {
    pub fn from_hex(key_hex: &str) -> Result<Self, SealError> {
        let key = hex::decode(key_hex.trim()).map_err(|_| SealError::BadKey)?;
        if key.len() != 32 {
            return Err(SealError::BadKey);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&key).map_err(|_| SealError::BadKey)?;
        Ok(Self { cipher })
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .map_err(|_| SealError::Seal)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 24 {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| SealError::Open)
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key() {
        let sealer = Sealer::from_hex(&"11".repeat(32)).unwrap();
        let sealed = sealer.seal(b"totp seed").unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"totp seed"));
        assert_eq!(sealer.open(&sealed).unwrap(), b"totp seed");
        let other = Sealer::from_hex(&"22".repeat(32)).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(Sealer::from_hex("abc").is_err());
    }
}
