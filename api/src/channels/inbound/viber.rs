//! Viber REST bot API callbacks: `X-Viber-Content-Signature` is the hex HMAC-SHA256 of the
//! body under the bot's auth token; the body is one callback, named by `event`.
//!
//! Read: `message` (a contact writing to the bot) and `delivered`, `seen` and `failed` (news
//! of a message we sent, by its `message_token`). The `webhook` check Viber makes when the
//! webhook is set, `subscribed`, `unsubscribed` and `conversation_started` produce nothing.

use serde::Deserialize;

use super::{
    cap_optional, cap_text, credential, header, hmac_sha256_matches, lenient, parse_json,
    require_post, unix_millis, unsupported, Credentials, Reply, WebhookError, WebhookRequest,
};
use crate::channels::model::{
    Content, DeliveryStatus, InboundEvent, InboundMessage, MediaKind, StatusUpdate,
};

pub(super) fn receive(
    credentials: &Credentials,
    request: &WebhookRequest<'_>,
) -> Result<Reply, WebhookError> {
    require_post(request)?;
    let token = credential(credentials, "auth_token")?;
    let signature = header(request, "x-viber-content-signature")
        .and_then(|value| hex::decode(value.trim()).ok())
        .ok_or_else(|| {
            WebhookError::Unauthorized("X-Viber-Content-Signature is missing or malformed".into())
        })?;
    if !hmac_sha256_matches(token.as_bytes(), request.body, &signature) {
        return Err(WebhookError::Unauthorized(
            "X-Viber-Content-Signature does not match the body".into(),
        ));
    }
    let callback: Callback = parse_json(request.body, "Viber callback")?;
    Ok(Reply::Events(translate(callback).into_iter().collect()))
}

// ---- The callback, as Viber documents it (only the fields we read) -----------------------

#[derive(Deserialize)]
struct Callback {
    #[serde(default)]
    event: String,
    /// Milliseconds.
    #[serde(default, deserialize_with = "lenient::int")]
    timestamp: Option<i64>,
    /// A 64-bit number: kept as the digits Viber sent.
    #[serde(default, deserialize_with = "lenient::text")]
    message_token: Option<String>,
    sender: Option<Sender>,
    message: Option<Message>,
    desc: Option<String>,
}

#[derive(Deserialize)]
struct Sender {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type", default)]
    kind: String,
    text: Option<String>,
    /// The file's URL, or the link of a `url` message.
    media: Option<String>,
    file_name: Option<String>,
    location: Option<Location>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(default, deserialize_with = "lenient::float")]
    lat: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    lon: Option<f64>,
}

// ---- Translation -------------------------------------------------------------------------

fn translate(callback: Callback) -> Option<InboundEvent> {
    let token = callback.message_token.filter(|token| !token.is_empty())?;
    let at = unix_millis(callback.timestamp);
    let status = match callback.event.as_str() {
        "message" => {
            let sender = callback.sender?;
            let from = sender.id.filter(|id| !id.is_empty())?;
            return Some(InboundEvent::Message(InboundMessage {
                provider_message_id: token,
                from,
                profile_name: cap_optional(sender.name),
                phone: None,
                sent_at: at,
                content: content(callback.message?),
            }));
        }
        "delivered" => DeliveryStatus::Delivered,
        "seen" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        _ => return None,
    };
    let reason = if status == DeliveryStatus::Failed {
        cap_optional(callback.desc)
    } else {
        None
    };
    Some(InboundEvent::Status(StatusUpdate {
        provider_message_id: token,
        status,
        reason,
        at,
    }))
}

/// A message's content. A picture or video's `text` is its caption; a `url` message is the
/// link as text; contacts, and types Viber adds later, are `Unsupported`.
fn content(message: Message) -> Content {
    let media = match message.kind.as_str() {
        "picture" => Some(MediaKind::Image),
        "video" => Some(MediaKind::Video),
        "file" => Some(MediaKind::Document),
        "sticker" => Some(MediaKind::Sticker),
        _ => None,
    };
    if let Some(media) = media {
        let caption = match media {
            MediaKind::Image | MediaKind::Video => cap_optional(message.text),
            _ => None,
        };
        return Content::Media {
            media,
            url: message.media.filter(|url| !url.is_empty()),
            provider_media_id: None,
            mime_type: None,
            filename: cap_optional(message.file_name),
            caption,
        };
    }
    match message.kind.as_str() {
        "text" => Content::Text {
            body: cap_text(message.text.unwrap_or_default()),
        },
        "url" => match message.media.filter(|url| !url.is_empty()) {
            Some(url) => Content::Text {
                body: cap_text(url),
            },
            None => unsupported("url"),
        },
        "location" => match message.location {
            Some(Location {
                lat: Some(latitude),
                lon: Some(longitude),
            }) => Content::Location {
                latitude,
                longitude,
                name: None,
                address: None,
            },
            _ => unsupported("location"),
        },
        other => unsupported(other),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        credentials, events, garbage_survives, hmac_sha256, is_bad_request, is_unauthorized,
        messages, statuses, TestRequest,
    };
    use super::*;
    use chrono::DateTime;
    use serde_json::{json, Value as Json};

    const TOKEN: &str = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9";

    fn account() -> Credentials {
        credentials(&[("auth_token", TOKEN)])
    }

    fn signed(body: &Json) -> TestRequest {
        let body = body.to_string();
        let signature = hex::encode(hmac_sha256(TOKEN, body.as_bytes()));
        TestRequest::post(body).header("X-Viber-Content-Signature", &signature)
    }

    fn deliver(request: &TestRequest) -> Result<Reply, WebhookError> {
        receive(&account(), &request.as_request())
    }

    fn message_callback(message: Json) -> Json {
        json!({
            "event": "message",
            "timestamp": 1_457_764_197_627_i64,
            "message_token": 4_912_661_846_655_238_145_u64,
            "sender": { "id": "01234567890A=", "name": "John McClane", "avatar": "http://avatar.example.com",
                        "country": "UK", "language": "en", "api_version": 1 },
            "message": message
        })
    }

    #[test]
    fn signature_is_required() {
        let body = message_callback(json!({ "type": "text", "text": "a message" }));
        assert!(is_unauthorized(&deliver(&TestRequest::post(
            body.to_string()
        ))));
        let wrong = TestRequest::post(body.to_string()).header(
            "X-Viber-Content-Signature",
            &hex::encode(hmac_sha256("other-token", body.to_string().as_bytes())),
        );
        assert!(is_unauthorized(&deliver(&wrong)));
        // Upper-case hex is the same signature.
        let upper = TestRequest::post(body.to_string()).header(
            "X-Viber-Content-Signature",
            &hex::encode_upper(hmac_sha256(TOKEN, body.to_string().as_bytes())),
        );
        assert_eq!(messages(deliver(&upper)).len(), 1);
    }

    #[test]
    fn text_message() {
        let body = message_callback(json!({
            "type": "text", "text": "a message to the service", "tracking_data": "tracking data"
        }));
        assert_eq!(
            messages(deliver(&signed(&body))),
            vec![InboundMessage {
                provider_message_id: "4912661846655238145".into(),
                from: "01234567890A=".into(),
                profile_name: Some("John McClane".into()),
                phone: None,
                sent_at: DateTime::from_timestamp_millis(1_457_764_197_627).unwrap(),
                content: Content::Text {
                    body: "a message to the service".into()
                },
            }]
        );
    }

    #[test]
    fn other_message_types() {
        let cases = [
            (
                json!({ "type": "picture", "text": "look", "media": "https://dl-media.viber.com/p.jpg",
                        "thumbnail": "https://dl-media.viber.com/t.jpg", "file_name": "p.jpg" }),
                Content::Media {
                    media: MediaKind::Image,
                    url: Some("https://dl-media.viber.com/p.jpg".into()),
                    provider_media_id: None,
                    mime_type: None,
                    filename: Some("p.jpg".into()),
                    caption: Some("look".into()),
                },
            ),
            (
                json!({ "type": "file", "media": "https://dl-media.viber.com/d.pdf",
                        "size": 10000, "file_name": "name_of_file.pdf" }),
                Content::Media {
                    media: MediaKind::Document,
                    url: Some("https://dl-media.viber.com/d.pdf".into()),
                    provider_media_id: None,
                    mime_type: None,
                    filename: Some("name_of_file.pdf".into()),
                    caption: None,
                },
            ),
            (
                json!({ "type": "location", "location": { "lat": 50.76891, "lon": 6.11499 } }),
                Content::Location {
                    latitude: 50.76891,
                    longitude: 6.11499,
                    name: None,
                    address: None,
                },
            ),
            (
                json!({ "type": "url", "media": "http://www.example.com" }),
                Content::Text {
                    body: "http://www.example.com".into(),
                },
            ),
            (
                json!({ "type": "contact", "contact": { "name": "Itamar", "phone_number": "+972511123123" } }),
                Content::Unsupported {
                    provider_type: "contact".into(),
                },
            ),
            (
                json!({ "type": "sticker", "sticker_id": 46105, "media": "https://viber.example/s.png" }),
                Content::Media {
                    media: MediaKind::Sticker,
                    url: Some("https://viber.example/s.png".into()),
                    provider_media_id: None,
                    mime_type: None,
                    filename: None,
                    caption: None,
                },
            ),
        ];
        for (message, expected) in cases {
            let got = messages(deliver(&signed(&message_callback(message))));
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].content, expected);
        }
    }

    #[test]
    fn delivery_receipts() {
        let receipt = |event: &str, extra: Json| {
            let mut body = json!({
                "event": event,
                "timestamp": 1_457_764_197_627_i64,
                "message_token": 4_912_661_846_655_238_145_u64,
                "user_id": "01234567890A="
            });
            if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                body.extend(extra.clone());
            }
            body
        };
        let got: Vec<(DeliveryStatus, Option<String>)> = [
            receipt("delivered", json!({})),
            receipt("seen", json!({})),
            receipt("failed", json!({ "desc": "failure description" })),
        ]
        .iter()
        .flat_map(|body| statuses(deliver(&signed(body))))
        .map(|status| {
            assert_eq!(status.provider_message_id, "4912661846655238145");
            (status.status, status.reason)
        })
        .collect();
        assert_eq!(
            got,
            vec![
                (DeliveryStatus::Delivered, None),
                (DeliveryStatus::Read, None),
                (DeliveryStatus::Failed, Some("failure description".into())),
            ]
        );
    }

    #[test]
    fn lifecycle_callbacks_deliver_nothing() {
        for body in [
            json!({ "event": "webhook", "timestamp": 1_457_764_197_627_i64, "chat_hostname": "SN-376_",
                    "message_token": 241_256_543_215_u64 }),
            json!({ "event": "subscribed", "timestamp": 1_457_764_197_627_i64, "chat_hostname": "SN-376_",
                    "user": { "id": "01234567890A=", "name": "John McClane" }, "message_token": 4_912_661_846_655_238_145_u64 }),
            json!({ "event": "unsubscribed", "timestamp": 1_457_764_197_627_i64, "chat_hostname": "SN-376_",
                    "user_id": "01234567890A=", "message_token": 4_912_661_846_655_238_145_u64 }),
            json!({ "event": "conversation_started", "timestamp": 1_457_764_197_627_i64, "chat_hostname": "SN-376_",
                    "message_token": 4_912_661_846_655_238_145_u64, "type": "open", "context": "context information",
                    "user": { "id": "01234567890A=", "name": "John McClane" }, "subscribed": false }),
        ] {
            assert_eq!(events(deliver(&signed(&body))), vec![]);
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        let bad = {
            let body = b"{\"event\":\"message\",";
            TestRequest::post(body.as_slice()).header(
                "X-Viber-Content-Signature",
                &hex::encode(hmac_sha256(TOKEN, body)),
            )
        };
        assert!(is_bad_request(&deliver(&bad)));
        let sample =
            message_callback(json!({ "type": "location", "location": { "lat": "1", "lon": 2 } }))
                .to_string();
        garbage_survives(sample.as_bytes(), |body| {
            let request = TestRequest::post(body).header(
                "X-Viber-Content-Signature",
                &hex::encode(hmac_sha256(TOKEN, body)),
            );
            let _ = deliver(&request);
        });
    }
}
