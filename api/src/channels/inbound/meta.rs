//! Meta's webhooks: the `hub.challenge` handshake and `X-Hub-Signature-256` check that
//! WhatsApp, Messenger and Instagram share, and the `entry[].messaging[]` events of the
//! Messenger Platform and Instagram Messaging (WhatsApp's payload is in `whatsapp.rs`).
//!
//! Meta sends every page or Instagram account an app is subscribed to the same callback, so
//! events for other accounts are skipped: an event is this account's when its entry id or its
//! recipient id is the account's id (Instagram names the account by different ids depending
//! on the login the app uses; accepting either keeps both working).

use axum::http::Method;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    cap_optional, cap_text, credential, header, hmac_sha256_matches, lenient, parse_json,
    query_param, same_secret, split_parts, unix_millis, unsupported, Credentials, Reply,
    WebhookError, WebhookRequest,
};
use crate::channels::model::{
    Content, DeliveryStatus, InboundEvent, InboundMessage, MediaKind, StatusUpdate,
};

/// The two Meta products that share the `messaging[]` payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Product {
    Messenger,
    Instagram,
}

impl Product {
    /// The `object` of its deliveries.
    fn object(self) -> &'static str {
        match self {
            Product::Messenger => "page",
            Product::Instagram => "instagram",
        }
    }

    /// The credential naming the account at Meta.
    fn account_key(self) -> &'static str {
        match self {
            Product::Messenger => "page_id",
            Product::Instagram => "instagram_account_id",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Product::Messenger => "Messenger",
            Product::Instagram => "Instagram",
        }
    }
}

/// Answers the GET set-up handshake, or checks a POST's signature. `Ok(Some(challenge))` is
/// a handshake to answer; `Ok(None)` a delivery whose body is now safe to read.
pub(super) fn verify(
    credentials: &Credentials,
    request: &WebhookRequest<'_>,
) -> Result<Option<String>, WebhookError> {
    if request.method == Method::GET {
        let expected = credential(credentials, "verify_token")?;
        if query_param(request.query, "hub.mode").as_deref() != Some("subscribe") {
            return Err(WebhookError::BadRequest(
                "a verification request has hub.mode=subscribe".into(),
            ));
        }
        let given = query_param(request.query, "hub.verify_token").unwrap_or_default();
        if !same_secret(&given, expected) {
            return Err(WebhookError::Unauthorized(
                "hub.verify_token does not match the account's verify token".into(),
            ));
        }
        return match query_param(request.query, "hub.challenge") {
            Some(challenge) if !challenge.is_empty() => Ok(Some(challenge)),
            _ => Err(WebhookError::BadRequest(
                "a verification request has a hub.challenge".into(),
            )),
        };
    }
    if request.method != Method::POST {
        return Err(WebhookError::MethodNotAllowed);
    }
    let secret = credential(credentials, "app_secret")?;
    let signature = header(request, "x-hub-signature-256")
        .and_then(|value| value.strip_prefix("sha256="))
        .and_then(|hex_digest| hex::decode(hex_digest.trim()).ok())
        .ok_or_else(|| {
            WebhookError::Unauthorized("X-Hub-Signature-256 is missing or malformed".into())
        })?;
    if !hmac_sha256_matches(secret.as_bytes(), request.body, &signature) {
        return Err(WebhookError::Unauthorized(
            "X-Hub-Signature-256 does not match the body".into(),
        ));
    }
    Ok(None)
}

/// A Messenger or Instagram webhook.
pub(super) fn receive(
    product: Product,
    credentials: &Credentials,
    request: &WebhookRequest<'_>,
) -> Result<Reply, WebhookError> {
    if let Some(challenge) = verify(credentials, request)? {
        return Ok(Reply::Challenge(challenge));
    }
    let account_id = credential(credentials, product.account_key())?;
    let delivery: Delivery = parse_json(request.body, product.name())?;
    if delivery.object != product.object() {
        // Another product's events sent to this callback (an app can share one URL): not
        // ours, and nothing to retry.
        return Ok(Reply::Events(Vec::new()));
    }
    let mut events = Vec::new();
    for entry in delivery.entry {
        let entry_is_ours = entry.id.as_deref() == Some(account_id);
        for item in entry.messaging {
            let recipient = item
                .recipient
                .as_ref()
                .and_then(|party| party.id.as_deref());
            if entry_is_ours || recipient == Some(account_id) {
                translate(item, &mut events);
            }
        }
    }
    Ok(Reply::Events(events))
}

// ---- The payload, as Meta documents it (only the fields we read) -------------------------

#[derive(Deserialize)]
struct Delivery {
    #[serde(default)]
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default, deserialize_with = "lenient::text")]
    id: Option<String>,
    /// Absent for `changes[]` deliveries (Instagram comments, mentions), which we skip.
    #[serde(default)]
    messaging: Vec<Messaging>,
}

#[derive(Deserialize)]
struct Messaging {
    sender: Option<Party>,
    recipient: Option<Party>,
    /// Milliseconds.
    #[serde(default, deserialize_with = "lenient::int")]
    timestamp: Option<i64>,
    message: Option<Message>,
    postback: Option<Postback>,
    delivery: Option<DeliveryReceipt>,
    read: Option<ReadReceipt>,
}

#[derive(Deserialize)]
struct Party {
    #[serde(default, deserialize_with = "lenient::text")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    mid: Option<String>,
    text: Option<String>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    quick_reply: Option<QuickReply>,
    /// A message the page or account sent (from us or from Meta's own inbox).
    #[serde(default, deserialize_with = "lenient::flag")]
    is_echo: bool,
    /// The contact unsent the message (Instagram).
    #[serde(default, deserialize_with = "lenient::flag")]
    is_deleted: bool,
    /// Something Instagram cannot show through the API.
    #[serde(default, deserialize_with = "lenient::flag")]
    is_unsupported: bool,
}

#[derive(Deserialize)]
struct Attachment {
    #[serde(rename = "type", default)]
    kind: String,
    /// Older location and link attachments put their title here rather than in `payload`.
    title: Option<String>,
    payload: Option<AttachmentPayload>,
}

#[derive(Deserialize)]
struct AttachmentPayload {
    url: Option<String>,
    title: Option<String>,
    /// Present when an image attachment is a Messenger sticker.
    #[serde(default, deserialize_with = "lenient::text")]
    sticker_id: Option<String>,
    /// A shared location (Messenger).
    coordinates: Option<Coordinates>,
}

#[derive(Deserialize)]
struct Coordinates {
    #[serde(default, deserialize_with = "lenient::float")]
    lat: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    long: Option<f64>,
}

#[derive(Deserialize)]
struct QuickReply {
    #[serde(default)]
    payload: String,
}

#[derive(Deserialize)]
struct Postback {
    mid: Option<String>,
    title: Option<String>,
    #[serde(default)]
    payload: String,
}

#[derive(Deserialize)]
struct DeliveryReceipt {
    #[serde(default)]
    mids: Vec<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    watermark: Option<i64>,
}

#[derive(Deserialize)]
struct ReadReceipt {
    /// Instagram names the message read.
    mid: Option<String>,
    /// Messenger gives a time instead: everything sent before it was read.
    #[serde(default, deserialize_with = "lenient::int")]
    watermark: Option<i64>,
}

// ---- Translation -------------------------------------------------------------------------

/// One `messaging[]` item: a message, a postback, a delivery or a read receipt. Reactions,
/// referrals, opt-ins, edits and handover events are not stored.
fn translate(item: Messaging, events: &mut Vec<InboundEvent>) {
    let Some(sender) = item.sender.and_then(|party| party.id) else {
        return;
    };
    let at = unix_millis(item.timestamp);
    if let Some(message) = item.message {
        message_events(&sender, item.timestamp, message, events);
    } else if let Some(postback) = item.postback {
        let provider_message_id = postback
            .mid
            .clone()
            .filter(|mid| !mid.is_empty())
            .unwrap_or_else(|| derived_postback_id(&sender, item.timestamp, &postback.payload));
        events.push(InboundEvent::Message(InboundMessage {
            provider_message_id,
            from: sender,
            profile_name: None,
            phone: None,
            sent_at: at,
            content: Content::Postback {
                payload: cap_text(postback.payload),
                title: cap_optional(postback.title),
            },
        }));
    } else if let Some(delivery) = item.delivery {
        let delivered_at = unix_millis(delivery.watermark.or(item.timestamp));
        for mid in delivery.mids.into_iter().filter(|mid| !mid.is_empty()) {
            events.push(InboundEvent::Status(StatusUpdate {
                provider_message_id: mid,
                status: DeliveryStatus::Delivered,
                reason: None,
                at: delivered_at,
            }));
        }
    } else if let Some(read) = item.read {
        match read.mid.filter(|mid| !mid.is_empty()) {
            Some(mid) => events.push(InboundEvent::Status(StatusUpdate {
                provider_message_id: mid,
                status: DeliveryStatus::Read,
                reason: None,
                at,
            })),
            None => {
                if let Some(watermark) = read.watermark {
                    events.push(InboundEvent::ReadUpTo {
                        from: sender,
                        up_to: unix_millis(Some(watermark)),
                    });
                }
            }
        }
    }
}

/// A message from the contact. Echoes are our own sends (or an agent's in Meta's inbox) and
/// unsent messages are gone, so both are skipped; a message Instagram cannot show is stored
/// as `Unsupported` so the agent knows something arrived.
fn message_events(
    sender: &str,
    timestamp: Option<i64>,
    message: Message,
    events: &mut Vec<InboundEvent>,
) {
    if message.is_echo || message.is_deleted {
        return;
    }
    let Some(mid) = message.mid.filter(|mid| !mid.is_empty()) else {
        return;
    };
    let text = cap_optional(message.text);
    let parts = if let Some(quick_reply) = message.quick_reply {
        let title = text.unwrap_or_else(|| quick_reply.payload.clone());
        vec![(
            mid,
            Content::InteractiveReply {
                id: cap_text(quick_reply.payload),
                title,
            },
        )]
    } else {
        let files: Vec<Content> = message.attachments.into_iter().map(attachment).collect();
        let text = text.map(|body| Content::Text { body });
        if text.is_none() && files.is_empty() {
            if !message.is_unsupported {
                return;
            }
            vec![(
                mid,
                Content::Unsupported {
                    provider_type: "unsupported".into(),
                },
            )]
        } else {
            split_parts(&mid, text, files)
        }
    };
    let sent_at = unix_millis(timestamp);
    for (provider_message_id, content) in parts {
        events.push(InboundEvent::Message(InboundMessage {
            provider_message_id,
            from: sender.to_string(),
            profile_name: None,
            phone: None,
            sent_at,
            content,
        }));
    }
}

/// One attachment. Files come with a URL Meta serves them at; a shared link (`fallback`)
/// becomes its title and URL as text; anything else (a shared post, a story mention, a
/// template) is `Unsupported` under Meta's type name.
fn attachment(attachment: Attachment) -> Content {
    let payload = attachment.payload;
    let title = attachment
        .title
        .or_else(|| payload.as_ref().and_then(|payload| payload.title.clone()));
    let url = payload
        .as_ref()
        .and_then(|payload| payload.url.clone())
        .filter(|url| !url.is_empty());
    let media = match attachment.kind.as_str() {
        "image" => {
            let is_sticker = payload
                .as_ref()
                .is_some_and(|payload| payload.sticker_id.is_some());
            Some(if is_sticker {
                MediaKind::Sticker
            } else {
                MediaKind::Image
            })
        }
        "video" => Some(MediaKind::Video),
        "audio" => Some(MediaKind::Audio),
        "file" => Some(MediaKind::Document),
        _ => None,
    };
    if let Some(media) = media {
        return Content::Media {
            media,
            url,
            provider_media_id: None,
            mime_type: None,
            filename: None,
            caption: None,
        };
    }
    match attachment.kind.as_str() {
        "location" => {
            let coordinates = payload
                .as_ref()
                .and_then(|payload| payload.coordinates.as_ref());
            match coordinates.and_then(|at| Some((at.lat?, at.long?))) {
                Some((latitude, longitude)) => Content::Location {
                    latitude,
                    longitude,
                    name: cap_optional(title),
                    address: None,
                },
                None => unsupported("location"),
            }
        }
        "fallback" => match url {
            Some(url) => {
                let title = title.unwrap_or_default();
                let body = if title.is_empty() {
                    url
                } else {
                    format!("{title}\n{url}")
                };
                Content::Text {
                    body: cap_text(body),
                }
            }
            None => unsupported("fallback"),
        },
        other => unsupported(other),
    }
}

/// Older postbacks carry no `mid`: this id is the same on every redelivery of the same tap
/// (same sender, time and payload) and different for another tap.
fn derived_postback_id(sender: &str, timestamp: Option<i64>, payload: &str) -> String {
    let digest = Sha256::digest(payload.as_bytes());
    let short = hex::encode(digest.get(..8).unwrap_or_default());
    format!("postback:{sender}:{}:{short}", timestamp.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        credentials, events, garbage_survives, hmac_sha256, is_bad_request, is_unauthorized,
        messages, TestRequest,
    };
    use super::*;
    use chrono::DateTime;
    use serde_json::json;

    const SECRET: &str = "app-secret-0123";

    fn messenger_credentials() -> Credentials {
        credentials(&[
            ("page_access_token", "EAAG..."),
            ("page_id", "1122334455"),
            ("app_secret", SECRET),
            ("verify_token", "verify-me"),
        ])
    }

    fn instagram_credentials() -> Credentials {
        credentials(&[
            ("access_token", "IGQV..."),
            ("instagram_account_id", "17841400000000000"),
            ("app_secret", SECRET),
            ("verify_token", "verify-me"),
        ])
    }

    fn signed(body: &[u8]) -> TestRequest {
        let signature = format!("sha256={}", hex::encode(hmac_sha256(SECRET, body)));
        TestRequest::post(body).header("X-Hub-Signature-256", &signature)
    }

    fn messenger(request: &TestRequest) -> Result<Reply, WebhookError> {
        receive(
            Product::Messenger,
            &messenger_credentials(),
            &request.as_request(),
        )
    }

    fn instagram(request: &TestRequest) -> Result<Reply, WebhookError> {
        receive(
            Product::Instagram,
            &instagram_credentials(),
            &request.as_request(),
        )
    }

    fn page_delivery(messaging: serde_json::Value) -> Vec<u8> {
        json!({
            "object": "page",
            "entry": [{ "id": "1122334455", "time": 1_700_000_000_500_i64, "messaging": messaging }]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn handshake_echoes_the_challenge_for_the_right_token() {
        let request = TestRequest::get(
            "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
        );
        assert_eq!(
            messenger(&request),
            Ok(Reply::Challenge("1158201444".into()))
        );
        assert_eq!(
            instagram(&request),
            Ok(Reply::Challenge("1158201444".into()))
        );
    }

    #[test]
    fn handshake_refuses_a_wrong_token() {
        let request =
            TestRequest::get("hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444");
        assert!(is_unauthorized(&messenger(&request)));
        let request = TestRequest::get("hub.mode=subscribe&hub.challenge=1158201444");
        assert!(is_unauthorized(&messenger(&request)));
        let request = TestRequest::get("hub.mode=unsubscribe&hub.verify_token=verify-me");
        assert!(is_bad_request(&messenger(&request)));
    }

    #[test]
    fn other_methods_are_not_allowed() {
        let mut request = signed(b"{}");
        request.method = Method::PUT;
        assert_eq!(messenger(&request), Err(WebhookError::MethodNotAllowed));
    }

    #[test]
    fn signature_is_required_and_checked() {
        let body = page_delivery(json!([]));
        assert!(is_unauthorized(&messenger(&TestRequest::post(
            body.clone()
        ))));
        let wrong = TestRequest::post(body.clone()).header(
            "X-Hub-Signature-256",
            &format!("sha256={}", hex::encode(hmac_sha256("other", &body))),
        );
        assert!(is_unauthorized(&messenger(&wrong)));
        let not_hex = TestRequest::post(body.clone()).header("X-Hub-Signature-256", "sha256=zz");
        assert!(is_unauthorized(&messenger(&not_hex)));
        // The sha1 header of older apps is not accepted in place of the sha256 one.
        let old = TestRequest::post(body.clone()).header("X-Hub-Signature", "sha1=00");
        assert!(is_unauthorized(&messenger(&old)));
        // A signature over a different body does not carry over.
        let mut tampered = signed(&body);
        tampered.body = page_delivery(json!([{ "sender": { "id": "1" } }]));
        assert!(is_unauthorized(&messenger(&tampered)));
        assert_eq!(messenger(&signed(&body)), Ok(Reply::Events(vec![])));
    }

    #[test]
    fn messenger_text_message() {
        let body = page_delivery(json!([{
            "sender": { "id": "6789012345" },
            "recipient": { "id": "1122334455" },
            "timestamp": 1_700_000_000_123_i64,
            "message": { "mid": "m_AbC123", "text": "Hello, is this open?" }
        }]));
        let got = messages(messenger(&signed(&body)));
        assert_eq!(
            got,
            vec![InboundMessage {
                provider_message_id: "m_AbC123".into(),
                from: "6789012345".into(),
                profile_name: None,
                phone: None,
                sent_at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
                content: Content::Text {
                    body: "Hello, is this open?".into()
                },
            }]
        );
    }

    #[test]
    fn messenger_quick_reply_attachments_and_echoes() {
        let body = page_delivery(json!([
            {
                "sender": { "id": "6789012345" },
                "recipient": { "id": "1122334455" },
                "timestamp": 1_700_000_000_000_i64,
                "message": { "mid": "m_qr", "text": "Red", "quick_reply": { "payload": "COLOR_RED" } }
            },
            {
                "sender": { "id": "6789012345" },
                "recipient": { "id": "1122334455" },
                "timestamp": 1_700_000_001_000_i64,
                "message": { "mid": "m_files", "attachments": [
                    { "type": "image", "payload": { "url": "https://scontent.example/a.jpg" } },
                    { "type": "image", "payload": { "url": "https://scontent.example/s.png", "sticker_id": 369239263222822_i64 } },
                    { "type": "file", "payload": { "url": "https://cdn.example/doc.pdf" } },
                    { "type": "location", "payload": { "coordinates": { "lat": -6.2, "long": 106.8 } }, "title": "Pin" },
                    { "type": "fallback", "payload": { "url": "https://example.com/x", "title": "Example" } },
                    { "type": "template", "payload": {} }
                ]}
            },
            {
                "sender": { "id": "1122334455" },
                "recipient": { "id": "6789012345" },
                "timestamp": 1_700_000_002_000_i64,
                "message": { "mid": "m_echo", "text": "our reply", "is_echo": true, "app_id": 1517776481860111_i64 }
            }
        ]));
        let got = messages(messenger(&signed(&body)));
        let summary: Vec<(&str, &Content)> = got
            .iter()
            .map(|m| (m.provider_message_id.as_str(), &m.content))
            .collect();
        assert_eq!(summary.len(), 7, "{summary:?}");
        assert_eq!(
            summary[0],
            (
                "m_qr",
                &Content::InteractiveReply {
                    id: "COLOR_RED".into(),
                    title: "Red".into()
                }
            )
        );
        assert_eq!(summary[1].0, "m_files");
        assert!(matches!(
            summary[1].1,
            Content::Media { media: MediaKind::Image, url: Some(url), .. } if url == "https://scontent.example/a.jpg"
        ));
        assert_eq!(summary[2].0, "m_files/1");
        assert!(matches!(
            summary[2].1,
            Content::Media {
                media: MediaKind::Sticker,
                ..
            }
        ));
        assert!(matches!(
            summary[3].1,
            Content::Media {
                media: MediaKind::Document,
                ..
            }
        ));
        assert_eq!(
            summary[4],
            (
                "m_files/3",
                &Content::Location {
                    latitude: -6.2,
                    longitude: 106.8,
                    name: Some("Pin".into()),
                    address: None
                }
            )
        );
        assert_eq!(
            summary[5].1,
            &Content::Text {
                body: "Example\nhttps://example.com/x".into()
            }
        );
        assert_eq!(
            summary[6],
            (
                "m_files/5",
                &Content::Unsupported {
                    provider_type: "template".into()
                }
            )
        );
    }

    #[test]
    fn messenger_postbacks_with_and_without_mid() {
        let tap = |mid: Option<&str>| {
            let mut postback = json!({ "title": "Get Started", "payload": "GET_STARTED" });
            if let Some(mid) = mid {
                postback["mid"] = json!(mid);
            }
            page_delivery(json!([{
                "sender": { "id": "6789012345" },
                "recipient": { "id": "1122334455" },
                "timestamp": 1_700_000_000_000_i64,
                "postback": postback
            }]))
        };
        let with_mid = messages(messenger(&signed(&tap(Some("m_pb")))));
        assert_eq!(with_mid[0].provider_message_id, "m_pb");
        assert_eq!(
            with_mid[0].content,
            Content::Postback {
                payload: "GET_STARTED".into(),
                title: Some("Get Started".into())
            }
        );
        let first = messages(messenger(&signed(&tap(None))));
        let again = messages(messenger(&signed(&tap(None))));
        assert_eq!(first[0].provider_message_id, again[0].provider_message_id);
        assert!(first[0]
            .provider_message_id
            .starts_with("postback:6789012345:1700000000000:"));
    }

    #[test]
    fn messenger_delivery_and_read_receipts() {
        let body = page_delivery(json!([
            {
                "sender": { "id": "6789012345" },
                "recipient": { "id": "1122334455" },
                "delivery": { "mids": ["m_1", "m_2"], "watermark": 1_700_000_000_000_i64 }
            },
            {
                "sender": { "id": "6789012345" },
                "recipient": { "id": "1122334455" },
                "timestamp": 1_700_000_005_000_i64,
                "read": { "watermark": 1_700_000_004_000_i64 }
            }
        ]));
        let got = events(messenger(&signed(&body)));
        let at = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        assert_eq!(
            got,
            vec![
                InboundEvent::Status(StatusUpdate {
                    provider_message_id: "m_1".into(),
                    status: DeliveryStatus::Delivered,
                    reason: None,
                    at
                }),
                InboundEvent::Status(StatusUpdate {
                    provider_message_id: "m_2".into(),
                    status: DeliveryStatus::Delivered,
                    reason: None,
                    at
                }),
                InboundEvent::ReadUpTo {
                    from: "6789012345".into(),
                    up_to: DateTime::from_timestamp_millis(1_700_000_004_000).unwrap()
                },
            ]
        );
    }

    #[test]
    fn other_pages_and_other_objects_are_skipped() {
        let body = json!({
            "object": "page",
            "entry": [{ "id": "999", "time": 1, "messaging": [{
                "sender": { "id": "6789012345" },
                "recipient": { "id": "999" },
                "timestamp": 1_700_000_000_000_i64,
                "message": { "mid": "m_other", "text": "hi" }
            }]}]
        })
        .to_string();
        assert_eq!(
            messenger(&signed(body.as_bytes())),
            Ok(Reply::Events(vec![]))
        );
        let instagram_body = body.replace("\"page\"", "\"instagram\"");
        assert_eq!(
            messenger(&signed(instagram_body.as_bytes())),
            Ok(Reply::Events(vec![]))
        );
    }

    #[test]
    fn instagram_messages_reads_and_skips() {
        let body = json!({
            "object": "instagram",
            "entry": [{ "id": "17841400000000000", "time": 1_700_000_000_000_i64, "messaging": [
                {
                    "sender": { "id": "IGSID_1" },
                    "recipient": { "id": "17841400000000000" },
                    "timestamp": 1_700_000_000_000_i64,
                    "message": { "mid": "aWdfZA_1", "text": "hai kak" }
                },
                {
                    "sender": { "id": "IGSID_1" },
                    "recipient": { "id": "17841400000000000" },
                    "timestamp": 1_700_000_000_100_i64,
                    "message": { "mid": "aWdfZA_2", "attachments": [
                        { "type": "image", "payload": { "url": "https://lookaside.example/ig.jpg" } },
                        { "type": "story_mention", "payload": { "url": "https://lookaside.example/story" } }
                    ]}
                },
                {
                    "sender": { "id": "IGSID_1" },
                    "recipient": { "id": "17841400000000000" },
                    "timestamp": 1_700_000_000_200_i64,
                    "message": { "mid": "aWdfZA_3", "is_unsupported": true }
                },
                {
                    "sender": { "id": "IGSID_1" },
                    "recipient": { "id": "17841400000000000" },
                    "timestamp": 1_700_000_000_300_i64,
                    "message": { "mid": "aWdfZA_1", "is_deleted": true }
                },
                {
                    "sender": { "id": "17841400000000000" },
                    "recipient": { "id": "IGSID_1" },
                    "timestamp": 1_700_000_000_400_i64,
                    "message": { "mid": "aWdfZA_4", "text": "echo", "is_echo": true }
                },
                {
                    "sender": { "id": "IGSID_1" },
                    "recipient": { "id": "17841400000000000" },
                    "timestamp": 1_700_000_000_500_i64,
                    "read": { "mid": "aWdfZA_ours" }
                },
                {
                    "sender": { "id": "IGSID_1" },
                    "recipient": { "id": "17841400000000000" },
                    "timestamp": 1_700_000_000_600_i64,
                    "reaction": { "mid": "aWdfZA_ours", "action": "react", "reaction": "love" }
                }
            ]}]
        })
        .to_string();
        let got = events(instagram(&signed(body.as_bytes())));
        assert_eq!(got.len(), 5, "{got:?}");
        let InboundEvent::Message(first) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(first.from, "IGSID_1");
        assert_eq!(
            first.content,
            Content::Text {
                body: "hai kak".into()
            }
        );
        let InboundEvent::Message(story) = &got[2] else {
            panic!("{got:?}")
        };
        assert_eq!(story.provider_message_id, "aWdfZA_2/1");
        assert_eq!(
            story.content,
            Content::Unsupported {
                provider_type: "story_mention".into()
            }
        );
        let InboundEvent::Message(unsupported) = &got[3] else {
            panic!("{got:?}")
        };
        assert_eq!(
            unsupported.content,
            Content::Unsupported {
                provider_type: "unsupported".into()
            }
        );
        assert_eq!(
            got[4],
            InboundEvent::Status(StatusUpdate {
                provider_message_id: "aWdfZA_ours".into(),
                status: DeliveryStatus::Read,
                reason: None,
                at: DateTime::from_timestamp_millis(1_700_000_000_500).unwrap(),
            })
        );
    }

    #[test]
    fn instagram_accepts_events_addressed_to_the_account_under_another_entry_id() {
        let body = json!({
            "object": "instagram",
            "entry": [{ "id": "app-scoped-id", "time": 1, "messaging": [{
                "sender": { "id": "IGSID_1" },
                "recipient": { "id": "17841400000000000" },
                "timestamp": 1_700_000_000_000_i64,
                "message": { "mid": "aWdfZA_9", "text": "hi" }
            }]}]
        })
        .to_string();
        assert_eq!(messages(instagram(&signed(body.as_bytes()))).len(), 1);
    }

    #[test]
    fn signed_garbage_is_a_bad_request_not_a_panic() {
        assert!(is_bad_request(&messenger(&signed(b"not json"))));
        assert!(is_bad_request(&messenger(&signed(
            br#"{"object":"page","entry":{"id":1}}"#
        ))));
        let sample = page_delivery(json!([{
            "sender": { "id": "6789012345" },
            "recipient": { "id": "1122334455" },
            "timestamp": 1_700_000_000_123_i64,
            "message": { "mid": "m_1", "text": "hi", "attachments": [{ "type": "location", "payload": { "coordinates": { "lat": 1, "long": 2 } } }] },
            "postback": { "payload": "x" },
            "read": { "watermark": 5 },
            "delivery": { "mids": ["a"] }
        }]));
        garbage_survives(&sample, |body| {
            let _ = messenger(&signed(body));
            let _ = instagram(&signed(body));
            let _ = messenger(&TestRequest::post(body));
        });
    }
}
