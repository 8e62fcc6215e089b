//! Inbound webhooks: each provider's verification scheme and payload format, translated into
//! `model::InboundEvent`s. Pure functions of the request and the account's credentials; the
//! HTTP route (`channels::webhook`) stores what they return.
//!
//! Every adapter verifies the request (signature, token or handshake) before it reads the
//! body, and never panics on what it reads: a body that is signed but unreadable is a
//! `BadRequest`, and an item inside a readable body that lacks what we need (an id, a sender)
//! is skipped, so one odd event does not make the provider redeliver a whole batch forever.

mod line;
mod meta;
mod telegram;
mod twilio;
mod viber;
mod wechat;
mod whatsapp;

use axum::http::{HeaderMap, Method};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value as Json};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::model::{Content, InboundEvent, MediaKind};
use super::ChannelType;

/// What the webhook route hands an adapter.
pub struct WebhookRequest<'a> {
    pub method: &'a Method,
    /// The full URL the provider called, as it signs it (Twilio): the server's public base
    /// URL, the path, and the query string if any.
    pub url: &'a str,
    /// The raw query string, without `?` ("" when none).
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What to answer a verified request.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// A set-up handshake (Meta's `hub.challenge`, WeChat's `echostr`): answer 200 with this
    /// text and store nothing.
    Challenge(String),
    /// A verified delivery: store these events, then acknowledge (`acknowledgement`).
    Events(Vec<InboundEvent>),
}

#[derive(Debug, PartialEq)]
pub enum WebhookError {
    /// Signature or token missing or wrong: 401, nothing stored.
    Unauthorized(String),
    /// Signed correctly but unreadable: 400, nothing stored.
    BadRequest(String),
    /// A method the provider never uses for this channel: 405.
    MethodNotAllowed,
}

/// The account's decrypted credentials, as `channels::checked_credentials` stored them.
pub type Credentials = Map<String, Json>;

/// Verifies and parses one webhook request for an account of type `kind`.
pub fn receive(
    kind: ChannelType,
    credentials: &Credentials,
    request: &WebhookRequest<'_>,
) -> Result<Reply, WebhookError> {
    match kind {
        ChannelType::Whatsapp => whatsapp::receive(credentials, request),
        ChannelType::Instagram => meta::receive(meta::Product::Instagram, credentials, request),
        ChannelType::Messenger => meta::receive(meta::Product::Messenger, credentials, request),
        ChannelType::Wechat => wechat::receive(credentials, request),
        ChannelType::Line => line::receive(credentials, request),
        ChannelType::Telegram => telegram::receive(credentials, request),
        ChannelType::Viber => viber::receive(credentials, request),
        ChannelType::Sms => twilio::receive(credentials, request),
        // The widget talks to the GraphQL API; nothing calls a webhook for it.
        ChannelType::LiveChat => Err(WebhookError::MethodNotAllowed),
    }
}

/// The content type and body that acknowledge a stored delivery, as each provider expects.
///
/// Meta, Telegram, LINE and Viber only look at the status code. WeChat treats anything but
/// "success" (or an empty body) as a reply to show the user, and Twilio reads the body as
/// TwiML, so both get the "do nothing" answer their documentation gives.
pub fn acknowledgement(kind: ChannelType) -> (&'static str, &'static str) {
    match kind {
        ChannelType::Wechat => ("text/plain", "success"),
        ChannelType::Sms => (
            "text/xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#,
        ),
        ChannelType::Whatsapp
        | ChannelType::Instagram
        | ChannelType::Messenger
        | ChannelType::Line
        | ChannelType::Telegram
        | ChannelType::Viber
        | ChannelType::LiveChat => ("text/plain", "ok"),
    }
}

// ---- Helpers the adapters share ---------------------------------------------------------

/// The longest text we keep from a provider (bodies, captions, titles, payloads).
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// A credential the account must have: without it no request can be verified, so the
/// request is refused rather than trusted.
fn credential<'a>(credentials: &'a Credentials, key: &str) -> Result<&'a str, WebhookError> {
    credentials
        .get(key)
        .and_then(Json::as_str)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            WebhookError::Unauthorized(format!("the account has no {key} to verify with"))
        })
}

/// A credential the account may have.
fn optional_credential<'a>(credentials: &'a Credentials, key: &str) -> Option<&'a str> {
    credentials
        .get(key)
        .and_then(Json::as_str)
        .filter(|value| !value.is_empty())
}

/// A request header as text; a header that is not visible ASCII counts as absent.
fn header<'a>(request: &'a WebhookRequest<'_>, name: &str) -> Option<&'a str> {
    request
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// The first value of a query parameter, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Only POST carries deliveries for the providers without a GET handshake.
fn require_post(request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
    if request.method == Method::POST {
        Ok(())
    } else {
        Err(WebhookError::MethodNotAllowed)
    }
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Whether `signature` is the HMAC-SHA256 of `message` under `key` (compared in constant
/// time by `verify_slice`).
fn hmac_sha256_matches(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    // HMAC takes keys of any length, so this only fails in theory.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(message);
    mac.verify_slice(signature).is_ok()
}

/// Whether `signature` is the HMAC-SHA1 of `message` under `key` (constant time).
fn hmac_sha1_matches(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return false;
    };
    mac.update(message);
    mac.verify_slice(signature).is_ok()
}

/// Reads a JSON body. The reason names the position, never the content: bodies may hold
/// personal data and reasons end up in logs.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, WebhookError> {
    serde_json::from_slice(body).map_err(|error| {
        WebhookError::BadRequest(format!(
            "the body is not a {what} JSON payload (line {}, column {})",
            error.line(),
            error.column()
        ))
    })
}

/// A provider time in unix seconds; the current time when absent or out of range.
fn unix_seconds(seconds: Option<i64>) -> DateTime<Utc> {
    seconds
        .filter(|seconds| *seconds > 0)
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .unwrap_or_else(Utc::now)
}

/// A provider time in unix milliseconds; the current time when absent or out of range.
fn unix_millis(millis: Option<i64>) -> DateTime<Utc> {
    millis
        .filter(|millis| *millis > 0)
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(Utc::now)
}

/// Caps provider text at `MAX_TEXT_BYTES`, cutting on a character boundary.
fn cap_text(mut text: String) -> String {
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// `cap_text` for optional text, dropping empty strings (providers send "" for "none").
fn cap_optional(text: Option<String>) -> Option<String> {
    text.filter(|text| !text.is_empty()).map(cap_text)
}

/// Content of a type we do not handle, under the provider's name for it.
fn unsupported(provider_type: &str) -> Content {
    Content::Unsupported {
        provider_type: if provider_type.is_empty() {
            "unknown".into()
        } else {
            cap_text(provider_type.to_string())
        },
    }
}

/// The kind of file a MIME type names, for providers that only give the type (Twilio).
fn media_kind_for_mime(mime: &str) -> MediaKind {
    let mime = mime.to_ascii_lowercase();
    if mime.starts_with("image/") {
        MediaKind::Image
    } else if mime.starts_with("video/") {
        MediaKind::Video
    } else if mime.starts_with("audio/") {
        MediaKind::Audio
    } else {
        MediaKind::Document
    }
}

/// Gives the parts of one provider message that carries text and several files (Messenger,
/// Instagram, Twilio MMS) an id each, stable across redeliveries: the first part keeps the
/// provider's id, and file `n` (its position in the provider's list) of the others gets
/// `<id>/<n>`.
fn split_parts(id: &str, text: Option<Content>, files: Vec<Content>) -> Vec<(String, Content)> {
    let has_text = text.is_some();
    let mut parts = Vec::with_capacity(files.len() + 1);
    if let Some(text) = text {
        parts.push((id.to_string(), text));
    }
    for (n, file) in files.into_iter().enumerate() {
        let part_id = if n == 0 && !has_text {
            id.to_string()
        } else {
            format!("{id}/{n}")
        };
        parts.push((part_id, file));
    }
    parts
}

/// Deserializers for fields that providers send as a number in one payload and a string in
/// another (WhatsApp's string timestamps, Viber's numeric message tokens, ...). Anything else
/// (null, an object) reads as absent rather than failing the whole delivery.
mod lenient {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value as Json;

    /// A string, or a number written out as digits.
    pub(super) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<Json>::deserialize(d)? {
            Some(Json::String(text)) => Some(text),
            Some(Json::Number(number)) => Some(number.to_string()),
            _ => None,
        })
    }

    /// An integer, or a string of digits.
    pub(super) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(match Option::<Json>::deserialize(d)? {
            Some(Json::Number(number)) => number.as_i64(),
            Some(Json::String(text)) => text.trim().parse().ok(),
            _ => None,
        })
    }

    /// A finite number, or a string holding one.
    pub(super) fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let value = match Option::<Json>::deserialize(d)? {
            Some(Json::Number(number)) => number.as_f64(),
            Some(Json::String(text)) => text.trim().parse().ok(),
            _ => None,
        };
        Ok(value.filter(|value: &f64| value.is_finite()))
    }

    /// `true`, or the string "true"; anything else is false.
    pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(match Option::<Json>::deserialize(d)? {
            Some(Json::Bool(flag)) => flag,
            Some(Json::String(text)) => text == "true",
            _ => false,
        })
    }
}

#[cfg(test)]
mod testing {
    //! Building requests and poking adapters with garbage, for the providers' tests.

    use super::*;
    use crate::channels::model::{InboundMessage, StatusUpdate};
    use axum::http::{HeaderName, HeaderValue};

    /// An owned request, lent out as a `WebhookRequest`.
    pub(super) struct TestRequest {
        pub method: Method,
        pub url: String,
        pub query: String,
        pub headers: HeaderMap,
        pub body: Vec<u8>,
    }

    impl TestRequest {
        pub fn post(body: impl Into<Vec<u8>>) -> Self {
            TestRequest {
                method: Method::POST,
                url: "https://obrol.example/webhooks/test/0190".into(),
                query: String::new(),
                headers: HeaderMap::new(),
                body: body.into(),
            }
        }

        pub fn get(query: &str) -> Self {
            TestRequest {
                method: Method::GET,
                query: query.into(),
                ..TestRequest::post("")
            }
        }

        pub fn header(mut self, name: &str, value: &str) -> Self {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                self.headers.insert(name, value);
            }
            self
        }

        pub fn as_request(&self) -> WebhookRequest<'_> {
            WebhookRequest {
                method: &self.method,
                url: &self.url,
                query: &self.query,
                headers: &self.headers,
                body: &self.body,
            }
        }
    }

    pub(super) fn credentials(pairs: &[(&str, &str)]) -> Credentials {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), Json::String(value.to_string())))
            .collect()
    }

    pub(super) fn hmac_sha256(key: &str, message: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    pub(super) fn hmac_sha1(key: &str, message: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("any key length");
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    pub(super) fn events(reply: Result<Reply, WebhookError>) -> Vec<InboundEvent> {
        match reply {
            Ok(Reply::Events(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    pub(super) fn messages(reply: Result<Reply, WebhookError>) -> Vec<InboundMessage> {
        events(reply)
            .into_iter()
            .filter_map(|event| match event {
                InboundEvent::Message(message) => Some(message),
                _ => None,
            })
            .collect()
    }

    pub(super) fn statuses(reply: Result<Reply, WebhookError>) -> Vec<StatusUpdate> {
        events(reply)
            .into_iter()
            .filter_map(|event| match event {
                InboundEvent::Status(status) => Some(status),
                _ => None,
            })
            .collect()
    }

    pub(super) fn is_unauthorized(reply: &Result<Reply, WebhookError>) -> bool {
        matches!(reply, Err(WebhookError::Unauthorized(_)))
    }

    pub(super) fn is_bad_request(reply: &Result<Reply, WebhookError>) -> bool {
        matches!(reply, Err(WebhookError::BadRequest(_)))
    }

    /// Bodies no provider sends: bytes that are not text, JSON of the wrong shape, deep
    /// nesting, XML and form fragments, and every prefix and many one-byte corruptions of a
    /// valid `sample`. `deliver` gets each one (signing it as it must) and must not panic.
    pub(super) fn garbage_survives(sample: &[u8], mut deliver: impl FnMut(&[u8])) {
        let mut bodies: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![0xff, 0xfe, 0x00, 0x80],
            b"null".to_vec(),
            b"true".to_vec(),
            b"42".to_vec(),
            b"\"text\"".to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
            b"{\"entry\":5,\"events\":\"x\",\"message\":[]}".to_vec(),
            b"{\"object\":\"page\",\"entry\":[{\"messaging\":[{\"message\":7}]}]}".to_vec(),
            b"{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"field\":\"messages\",\"value\":[]}]}]}".to_vec(),
            b"{\"update_id\":1,\"message\":{\"chat\":{}}}".to_vec(),
            b"{\"events\":[{\"type\":\"message\",\"message\":{\"type\":\"location\",\"latitude\":\"x\"}}]}".to_vec(),
            b"{\"event\":\"message\",\"message\":{\"type\":\"location\",\"location\":{\"lat\":1e999}}}".to_vec(),
            "[".repeat(10_000).into_bytes(),
            "{\"a\":".repeat(10_000).into_bytes(),
            b"<xml><MsgType><![CDATA[text]]></MsgType><Content>".to_vec(),
            b"<xml><a><b><c></a></xml>".to_vec(),
            b"<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><Content>&e;</Content></xml>".to_vec(),
            "<xml>".repeat(10_000).into_bytes(),
            b"MessageSid&&==&%zz=%ff&NumMedia=99999999999999999999".to_vec(),
            b"NumMedia=-1&MediaUrl0=&From=".to_vec(),
            "é".repeat(40_000).into_bytes(),
        ];
        for end in 0..sample.len() {
            bodies.push(sample.get(..end).unwrap_or_default().to_vec());
        }
        // A small deterministic generator: the same corruptions on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        if !sample.is_empty() {
            for _ in 0..500 {
                let mut body = sample.to_vec();
                let at = (next() % body.len() as u64) as usize;
                let byte = b"{}[]\":,0a<>&%= \\\xff"[(next() % 17) as usize];
                if let Some(slot) = body.get_mut(at) {
                    *slot = byte;
                }
                bodies.push(body);
            }
        }
        for body in &bodies {
            deliver(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_chat_has_no_webhook() {
        let request = testing::TestRequest::post("{}");
        let reply = receive(
            ChannelType::LiveChat,
            &Credentials::new(),
            &request.as_request(),
        );
        assert_eq!(reply, Err(WebhookError::MethodNotAllowed));
    }

    #[test]
    fn acknowledgements_match_what_providers_expect() {
        assert_eq!(
            acknowledgement(ChannelType::Wechat),
            ("text/plain", "success")
        );
        let (content_type, body) = acknowledgement(ChannelType::Sms);
        assert_eq!(content_type, "text/xml");
        assert_eq!(
            body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>"
        );
        for kind in [
            ChannelType::Whatsapp,
            ChannelType::Instagram,
            ChannelType::Messenger,
            ChannelType::Line,
            ChannelType::Telegram,
            ChannelType::Viber,
        ] {
            assert_eq!(acknowledgement(kind), ("text/plain", "ok"));
        }
    }

    #[test]
    fn missing_credentials_refuse_instead_of_trusting() {
        let request = testing::TestRequest::post("{}");
        for kind in [
            ChannelType::Whatsapp,
            ChannelType::Instagram,
            ChannelType::Messenger,
            ChannelType::Line,
            ChannelType::Telegram,
            ChannelType::Viber,
            ChannelType::Sms,
        ] {
            let reply = receive(kind, &Credentials::new(), &request.as_request());
            assert!(testing::is_unauthorized(&reply), "{kind:?}: {reply:?}");
        }
        let request = testing::TestRequest {
            query: "signature=x&timestamp=1&nonce=2".into(),
            ..testing::TestRequest::post("<xml/>")
        };
        let reply = receive(
            ChannelType::Wechat,
            &Credentials::new(),
            &request.as_request(),
        );
        assert!(testing::is_unauthorized(&reply), "{reply:?}");
    }

    #[test]
    fn text_is_capped_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT_BYTES);
        let capped = cap_text(long);
        assert!(capped.len() <= MAX_TEXT_BYTES);
        assert!(capped.len() >= MAX_TEXT_BYTES - 1);
        assert_eq!(cap_text("short".into()), "short");
    }

    #[test]
    fn times_fall_back_to_now() {
        let before = Utc::now();
        assert!(unix_seconds(None) >= before);
        assert!(unix_seconds(Some(i64::MAX)) >= before);
        assert!(unix_millis(Some(-5)) >= before);
        assert_eq!(unix_seconds(Some(1_700_000_000)).timestamp(), 1_700_000_000);
        assert_eq!(
            unix_millis(Some(1_700_000_000_123)).timestamp_millis(),
            1_700_000_000_123
        );
    }

    #[test]
    fn split_parts_keeps_the_provider_id_for_the_first_part() {
        let text = Content::Text { body: "hi".into() };
        let file = || Content::Unsupported {
            provider_type: "x".into(),
        };
        let ids =
            |parts: Vec<(String, Content)>| parts.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        assert_eq!(
            ids(split_parts("m", Some(text.clone()), vec![file(), file()])),
            ["m", "m/0", "m/1"]
        );
        assert_eq!(
            ids(split_parts("m", None, vec![file(), file()])),
            ["m", "m/1"]
        );
        assert_eq!(ids(split_parts("m", Some(text), vec![])), ["m"]);
    }
}
