//! Signatures as each provider computes them, so tests can post webhooks a real provider
//! would send (and wrongly signed ones).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;

fn hmac256(key: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Meta's `X-Hub-Signature-256` value.
pub fn meta(app_secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac256(app_secret, body)))
}

/// LINE's `X-Line-Signature`.
pub fn line(channel_secret: &str, body: &[u8]) -> String {
    STANDARD.encode(hmac256(channel_secret, body))
}

/// Viber's `X-Viber-Content-Signature`.
pub fn viber(auth_token: &str, body: &[u8]) -> String {
    hex::encode(hmac256(auth_token, body))
}

/// WeChat's `signature` query parameter.
pub fn wechat(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// Twilio's `X-Twilio-Signature` for a form POST to `url`.
pub fn twilio(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}
