//! LINE Messaging API webhooks: `X-Line-Signature` is the base64 HMAC-SHA256 of the body
//! under the channel secret; the body is `{ destination, events[] }`.
//!
//! Read: `message` events (stored under LINE's message id, which a redelivery repeats) and
//! `postback` events (under `webhookEventId`, for the same reason). Follow, unfollow, join,
//! unsend and the rest produce nothing. The "Verify" button in the LINE console sends an
//! empty `events` array, which is a valid delivery of nothing.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;

use super::{
    cap_optional, cap_text, credential, header, hmac_sha256_matches, lenient, parse_json,
    require_post, unix_millis, unsupported, Credentials, Reply, WebhookError, WebhookRequest,
};
use crate::channels::model::{Content, InboundEvent, InboundMessage, MediaKind};

pub(super) fn receive(
    credentials: &Credentials,
    request: &WebhookRequest<'_>,
) -> Result<Reply, WebhookError> {
    require_post(request)?;
    let secret = credential(credentials, "channel_secret")?;
    let signature = header(request, "x-line-signature")
        .and_then(|value| BASE64.decode(value.trim()).ok())
        .ok_or_else(|| {
            WebhookError::Unauthorized("X-Line-Signature is missing or malformed".into())
        })?;
    if !hmac_sha256_matches(secret.as_bytes(), request.body, &signature) {
        return Err(WebhookError::Unauthorized(
            "X-Line-Signature does not match the body".into(),
        ));
    }
    let delivery: Delivery = parse_json(request.body, "LINE")?;
    let events = delivery
        .events
        .into_iter()
        .filter_map(translate)
        .map(InboundEvent::Message)
        .collect();
    Ok(Reply::Events(events))
}

// ---- The payload, as LINE documents it (only the fields we read) -------------------------

#[derive(Deserialize)]
struct Delivery {
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "type", default)]
    kind: String,
    webhook_event_id: Option<String>,
    /// Milliseconds.
    #[serde(default, deserialize_with = "lenient::int")]
    timestamp: Option<i64>,
    source: Option<Source>,
    message: Option<Message>,
    postback: Option<Postback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    /// Absent in a group or room when the member has not agreed to share it.
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    #[serde(default, deserialize_with = "lenient::text")]
    id: Option<String>,
    #[serde(rename = "type", default)]
    kind: String,
    text: Option<String>,
    file_name: Option<String>,
    title: Option<String>,
    address: Option<String>,
    #[serde(default, deserialize_with = "lenient::float")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    longitude: Option<f64>,
    content_provider: Option<ContentProvider>,
}

/// Where an image, video or audio file is: on LINE's servers (fetched by message id) or at a
/// URL the sender's app gave (`external`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentProvider {
    original_content_url: Option<String>,
}

#[derive(Deserialize)]
struct Postback {
    #[serde(default)]
    data: String,
}

// ---- Translation -------------------------------------------------------------------------

fn translate(event: Event) -> Option<InboundMessage> {
    let from = event
        .source
        .and_then(|source| source.user_id)
        .filter(|id| !id.is_empty())?;
    let sent_at = unix_millis(event.timestamp);
    match event.kind.as_str() {
        "message" => {
            let message = event.message?;
            let id = message.id.clone().filter(|id| !id.is_empty())?;
            Some(InboundMessage {
                provider_message_id: id,
                from,
                profile_name: None,
                phone: None,
                sent_at,
                content: content(message),
            })
        }
        "postback" => {
            let data = cap_text(event.postback?.data);
            Some(InboundMessage {
                provider_message_id: event.webhook_event_id.filter(|id| !id.is_empty())?,
                from,
                profile_name: None,
                phone: None,
                sent_at,
                content: Content::InteractiveReply {
                    id: data.clone(),
                    title: data,
                },
            })
        }
        _ => None,
    }
}

/// A message's content. Files are fetched by message id (`provider_media_id`), so that is set
/// for every file; stickers are not files a bot can fetch and are `Unsupported`.
fn content(message: Message) -> Content {
    let media = match message.kind.as_str() {
        "image" => Some(MediaKind::Image),
        "video" => Some(MediaKind::Video),
        "audio" => Some(MediaKind::Audio),
        "file" => Some(MediaKind::Document),
        _ => None,
    };
    if let Some(media) = media {
        return Content::Media {
            media,
            url: message
                .content_provider
                .and_then(|provider| provider.original_content_url)
                .filter(|url| !url.is_empty()),
            provider_media_id: message.id,
            mime_type: None,
            filename: cap_optional(message.file_name),
            caption: None,
        };
    }
    match (message.kind.as_str(), message.latitude, message.longitude) {
        ("text", _, _) => Content::Text {
            body: cap_text(message.text.unwrap_or_default()),
        },
        ("location", Some(latitude), Some(longitude)) => Content::Location {
            latitude,
            longitude,
            name: cap_optional(message.title),
            address: cap_optional(message.address),
        },
        (other, _, _) => unsupported(other),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        credentials, garbage_survives, hmac_sha256, is_bad_request, is_unauthorized, messages,
        TestRequest,
    };
    use super::*;
    use axum::http::Method;
    use chrono::DateTime;
    use serde_json::{json, Value as Json};

    const SECRET: &str = "8a4c1f0e3b7d2a9c6e5f4b3a2c1d0e9f";

    fn account() -> Credentials {
        credentials(&[
            ("channel_id", "1656000000"),
            ("channel_access_token", "long-lived-token"),
            ("channel_secret", SECRET),
        ])
    }

    fn signed(body: &[u8]) -> TestRequest {
        let signature = BASE64.encode(hmac_sha256(SECRET, body));
        TestRequest::post(body).header("x-line-signature", &signature)
    }

    fn deliver(request: &TestRequest) -> Result<Reply, WebhookError> {
        receive(&account(), &request.as_request())
    }

    fn delivery(events: Json) -> Vec<u8> {
        json!({ "destination": "Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "events": events })
            .to_string()
            .into_bytes()
    }

    fn message_event(message: Json) -> Json {
        json!({
            "type": "message",
            "message": message,
            "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZR",
            "deliveryContext": { "isRedelivery": false },
            "timestamp": 1_700_000_000_456_i64,
            "source": { "type": "user", "userId": "U4af4980629af4980629af4980629af49" },
            "replyToken": "757913772c4646b784d4b7ce46d12671",
            "mode": "active"
        })
    }

    #[test]
    fn the_verify_button_delivers_nothing() {
        let body = delivery(json!([]));
        assert_eq!(deliver(&signed(&body)), Ok(Reply::Events(vec![])));
    }

    #[test]
    fn signature_is_required() {
        let body = delivery(json!([]));
        assert!(is_unauthorized(&deliver(&TestRequest::post(body.clone()))));
        let wrong = TestRequest::post(body.clone()).header(
            "x-line-signature",
            &BASE64.encode(hmac_sha256("nope", &body)),
        );
        assert!(is_unauthorized(&deliver(&wrong)));
        let not_base64 = TestRequest::post(body.clone()).header("x-line-signature", "%%%");
        assert!(is_unauthorized(&deliver(&not_base64)));
        // LINE signs with base64, not hex.
        let hex_signature = TestRequest::post(body.clone())
            .header("x-line-signature", &hex::encode(hmac_sha256(SECRET, &body)));
        assert!(is_unauthorized(&deliver(&hex_signature)));
        let mut get = signed(&body);
        get.method = Method::GET;
        assert_eq!(deliver(&get), Err(WebhookError::MethodNotAllowed));
    }

    #[test]
    fn text_message() {
        let body = delivery(json!([message_event(json!({
            "id": "444573844083572737",
            "type": "text",
            "quoteToken": "q3Plxr4AgKd...",
            "text": "Hello, world! (love)"
        }))]));
        assert_eq!(
            messages(deliver(&signed(&body))),
            vec![InboundMessage {
                provider_message_id: "444573844083572737".into(),
                from: "U4af4980629af4980629af4980629af49".into(),
                profile_name: None,
                phone: None,
                sent_at: DateTime::from_timestamp_millis(1_700_000_000_456).unwrap(),
                content: Content::Text {
                    body: "Hello, world! (love)".into()
                },
            }]
        );
    }

    #[test]
    fn files_locations_and_stickers() {
        let body = delivery(json!([
            message_event(json!({ "id": "1001", "type": "image", "quoteToken": "q",
                                  "contentProvider": { "type": "line" } })),
            message_event(json!({ "id": "1002", "type": "video", "duration": 60000,
                                  "contentProvider": { "type": "external",
                                      "originalContentUrl": "https://example.com/original.mp4",
                                      "previewImageUrl": "https://example.com/preview.jpg" } })),
            message_event(
                json!({ "id": "1003", "type": "file", "fileName": "file.txt", "fileSize": 2138 })
            ),
            message_event(
                json!({ "id": "1004", "type": "location", "title": "my location",
                                  "address": "1-3 Kioicho, Chiyoda-ku, Tokyo, 102-8282, Japan",
                                  "latitude": 35.67966, "longitude": 139.73669 })
            ),
            message_event(
                json!({ "id": "1005", "type": "sticker", "packageId": "446", "stickerId": "1988",
                                  "stickerResourceType": "STATIC" })
            ),
        ]));
        let got: Vec<(String, Content)> = messages(deliver(&signed(&body)))
            .into_iter()
            .map(|message| (message.provider_message_id, message.content))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "1001".into(),
                    Content::Media {
                        media: MediaKind::Image,
                        url: None,
                        provider_media_id: Some("1001".into()),
                        mime_type: None,
                        filename: None,
                        caption: None,
                    }
                ),
                (
                    "1002".into(),
                    Content::Media {
                        media: MediaKind::Video,
                        url: Some("https://example.com/original.mp4".into()),
                        provider_media_id: Some("1002".into()),
                        mime_type: None,
                        filename: None,
                        caption: None,
                    }
                ),
                (
                    "1003".into(),
                    Content::Media {
                        media: MediaKind::Document,
                        url: None,
                        provider_media_id: Some("1003".into()),
                        mime_type: None,
                        filename: Some("file.txt".into()),
                        caption: None,
                    }
                ),
                (
                    "1004".into(),
                    Content::Location {
                        latitude: 35.67966,
                        longitude: 139.73669,
                        name: Some("my location".into()),
                        address: Some("1-3 Kioicho, Chiyoda-ku, Tokyo, 102-8282, Japan".into()),
                    }
                ),
                (
                    "1005".into(),
                    Content::Unsupported {
                        provider_type: "sticker".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn postbacks_and_other_events() {
        let body = delivery(json!([
            {
                "type": "postback",
                "postback": { "data": "action=buy&itemid=111", "params": {} },
                "webhookEventId": "01FZ74ASS536FW97EX38NKCZQK",
                "deliveryContext": { "isRedelivery": true },
                "timestamp": 1_700_000_000_000_i64,
                "source": { "type": "user", "userId": "U4af4980629af4980629af4980629af49" },
                "replyToken": "b60d432864f44d079f6d8efe86cf404b",
                "mode": "active"
            },
            {
                "type": "follow",
                "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZS",
                "deliveryContext": { "isRedelivery": false },
                "timestamp": 1_700_000_000_000_i64,
                "source": { "type": "user", "userId": "U4af4980629af4980629af4980629af49" },
                "replyToken": "85cbe770fa8b4f45bbe077b1d4be4a36",
                "mode": "active",
                "follow": { "isUnblocked": false }
            },
            {
                "type": "message",
                "message": { "id": "1006", "type": "text", "text": "in a group, no consent" },
                "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZT",
                "timestamp": 1_700_000_000_000_i64,
                "source": { "type": "group", "groupId": "Ca56f94637c..." },
                "mode": "active"
            }
        ]));
        let got = messages(deliver(&signed(&body)));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].provider_message_id, "01FZ74ASS536FW97EX38NKCZQK");
        assert_eq!(
            got[0].content,
            Content::InteractiveReply {
                id: "action=buy&itemid=111".into(),
                title: "action=buy&itemid=111".into()
            }
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        assert!(is_bad_request(&deliver(&signed(b"{\"events\":[1]}"))));
        let sample = delivery(json!([
            message_event(json!({ "id": 1, "type": "location", "latitude": "35.6", "longitude": 139.7 })),
            { "type": "postback", "postback": { "data": "x" }, "webhookEventId": "e", "source": { "userId": "U" } }
        ]));
        garbage_survives(&sample, |body| {
            let _ = deliver(&signed(body));
        });
    }
}
