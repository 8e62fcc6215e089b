//! WhatsApp Cloud API webhooks: `entry[].changes[]` of a `whatsapp_business_account`, with
//! the `messages` field (messages from contacts and statuses of ours) and the
//! `message_template_status_update` field (Meta's template reviews). Verification is Meta's
//! (`meta::verify`).
//!
//! One app's callback receives every number of every WhatsApp Business Account it is
//! subscribed to, so `messages` changes for another phone number id are skipped, as are
//! template reviews of another WABA when the account knows its `waba_id`.

use serde::Deserialize;
use serde_json::Value as Json;

use super::{
    cap_optional, cap_text, credential, lenient, meta, optional_credential, parse_json,
    unix_seconds, unsupported, Credentials, Reply, WebhookError, WebhookRequest,
};
use crate::channels::model::{
    Content, DeliveryStatus, InboundEvent, InboundMessage, MediaKind, StatusUpdate,
};

pub(super) fn receive(
    credentials: &Credentials,
    request: &WebhookRequest<'_>,
) -> Result<Reply, WebhookError> {
    if let Some(challenge) = meta::verify(credentials, request)? {
        return Ok(Reply::Challenge(challenge));
    }
    let phone_number_id = credential(credentials, "phone_number_id")?;
    let waba_id = optional_credential(credentials, "waba_id");
    let delivery: Delivery = parse_json(request.body, "WhatsApp")?;
    if delivery.object != "whatsapp_business_account" {
        return Ok(Reply::Events(Vec::new()));
    }
    let mut events = Vec::new();
    for entry in delivery.entry {
        for change in entry.changes {
            match change.field.as_str() {
                "messages" => {
                    let value: MessagesValue = read_value(change.value)?;
                    let ours = value
                        .metadata
                        .as_ref()
                        .and_then(|metadata| metadata.phone_number_id.as_deref())
                        == Some(phone_number_id);
                    if ours {
                        messages_change(value, &mut events);
                    }
                }
                "message_template_status_update" => {
                    let other_waba = matches!(
                        (waba_id, entry.id.as_deref()),
                        (Some(expected), Some(given)) if expected != given
                    );
                    if !other_waba {
                        let value: TemplateValue = read_value(change.value)?;
                        events.extend(template_reviewed(value));
                    }
                }
                // Account, quality, phone number and billing updates are not stored.
                _ => {}
            }
        }
    }
    Ok(Reply::Events(events))
}

/// A change's `value`, whose shape depends on its `field`.
fn read_value<T: serde::de::DeserializeOwned>(value: Json) -> Result<T, WebhookError> {
    serde_json::from_value(value).map_err(|_| {
        WebhookError::BadRequest("a WhatsApp change value is not in the documented shape".into())
    })
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
    /// The WhatsApp Business Account id.
    #[serde(default, deserialize_with = "lenient::text")]
    id: Option<String>,
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    field: String,
    #[serde(default)]
    value: Json,
}

#[derive(Deserialize)]
struct MessagesValue {
    metadata: Option<Metadata>,
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    statuses: Vec<Status>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default, deserialize_with = "lenient::text")]
    phone_number_id: Option<String>,
}

#[derive(Deserialize)]
struct Contact {
    profile: Option<Profile>,
    #[serde(default, deserialize_with = "lenient::text")]
    wa_id: Option<String>,
}

#[derive(Deserialize)]
struct Profile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default, deserialize_with = "lenient::text")]
    from: Option<String>,
    id: Option<String>,
    /// Unix seconds, as a string.
    #[serde(default, deserialize_with = "lenient::int")]
    timestamp: Option<i64>,
    #[serde(rename = "type", default)]
    kind: String,
    text: Option<Text>,
    image: Option<Media>,
    video: Option<Media>,
    audio: Option<Media>,
    document: Option<Media>,
    sticker: Option<Media>,
    location: Option<Location>,
    interactive: Option<Interactive>,
    button: Option<Button>,
}

#[derive(Deserialize)]
struct Text {
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
struct Media {
    id: Option<String>,
    mime_type: Option<String>,
    caption: Option<String>,
    filename: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(default, deserialize_with = "lenient::float")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    longitude: Option<f64>,
    name: Option<String>,
    address: Option<String>,
}

#[derive(Deserialize)]
struct Interactive {
    #[serde(rename = "type", default)]
    kind: String,
    button_reply: Option<Choice>,
    list_reply: Option<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    id: String,
    #[serde(default)]
    title: String,
}

/// A tap on a template's quick-reply button.
#[derive(Deserialize)]
struct Button {
    #[serde(default)]
    payload: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    id: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default, deserialize_with = "lenient::int")]
    timestamp: Option<i64>,
    #[serde(default)]
    errors: Vec<StatusError>,
}

#[derive(Deserialize)]
struct StatusError {
    #[serde(default, deserialize_with = "lenient::text")]
    code: Option<String>,
    title: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct TemplateValue {
    #[serde(default)]
    event: String,
    #[serde(default)]
    message_template_name: String,
    #[serde(default)]
    message_template_language: String,
    reason: Option<String>,
}

// ---- Translation -------------------------------------------------------------------------

fn messages_change(value: MessagesValue, events: &mut Vec<InboundEvent>) {
    for message in value.messages {
        let (Some(id), Some(from)) = (message.id.clone(), message.from.clone()) else {
            continue;
        };
        if id.is_empty() || from.is_empty() {
            continue;
        }
        let profile_name = profile_name(&value.contacts, &from);
        // A wa_id is the number in international form without the `+`.
        let phone = from
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| format!("+{from}"));
        events.push(InboundEvent::Message(InboundMessage {
            provider_message_id: id,
            from,
            profile_name,
            phone,
            sent_at: unix_seconds(message.timestamp),
            content: content(message),
        }));
    }
    for status in value.statuses {
        let Some(id) = status.id.filter(|id| !id.is_empty()) else {
            continue;
        };
        let delivery_status = match status.status.as_str() {
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "failed" => DeliveryStatus::Failed,
            // "deleted", "warning", "played" and future states change nothing we track.
            _ => continue,
        };
        let reason = if delivery_status == DeliveryStatus::Failed {
            failure_reason(&status.errors)
        } else {
            None
        };
        events.push(InboundEvent::Status(StatusUpdate {
            provider_message_id: id,
            status: delivery_status,
            reason,
            at: unix_seconds(status.timestamp),
        }));
    }
}

/// The sender's profile name: the contact with its wa_id, or the only contact when the ids
/// differ (Meta sometimes normalises a number differently in the two places).
fn profile_name(contacts: &[Contact], from: &str) -> Option<String> {
    let contact = contacts
        .iter()
        .find(|contact| contact.wa_id.as_deref() == Some(from))
        .or(match contacts {
            [only] => Some(only),
            _ => None,
        })?;
    cap_optional(contact.profile.as_ref()?.name.clone())
}

/// "code: title" of the first error, as the agent sees it.
fn failure_reason(errors: &[StatusError]) -> Option<String> {
    let error = errors.first()?;
    let title = error
        .title
        .clone()
        .or_else(|| error.message.clone())
        .unwrap_or_default();
    let reason = match (&error.code, title.is_empty()) {
        (Some(code), false) => format!("{code}: {title}"),
        (Some(code), true) => code.clone(),
        (None, false) => title,
        (None, true) => return None,
    };
    Some(cap_text(reason))
}

fn content(message: Message) -> Content {
    let kind = message.kind.as_str();
    let media = |media: Option<Media>, as_kind: MediaKind| match media {
        Some(media) => Content::Media {
            media: as_kind,
            url: None,
            provider_media_id: media.id.filter(|id| !id.is_empty()),
            mime_type: cap_optional(media.mime_type),
            filename: cap_optional(media.filename),
            caption: cap_optional(media.caption),
        },
        None => unsupported(kind),
    };
    match kind {
        "text" => match message.text {
            Some(text) => Content::Text {
                body: cap_text(text.body),
            },
            None => unsupported(kind),
        },
        "image" => media(message.image, MediaKind::Image),
        "video" => media(message.video, MediaKind::Video),
        "audio" => media(message.audio, MediaKind::Audio),
        "document" => media(message.document, MediaKind::Document),
        "sticker" => media(message.sticker, MediaKind::Sticker),
        "location" => match message.location {
            Some(Location {
                latitude: Some(latitude),
                longitude: Some(longitude),
                name,
                address,
            }) => Content::Location {
                latitude,
                longitude,
                name: cap_optional(name),
                address: cap_optional(address),
            },
            _ => unsupported(kind),
        },
        "interactive" => {
            let Some(interactive) = message.interactive else {
                return unsupported(kind);
            };
            let choice = match interactive.kind.as_str() {
                "button_reply" => interactive.button_reply,
                "list_reply" => interactive.list_reply,
                _ => None,
            };
            match choice {
                Some(choice) => Content::InteractiveReply {
                    id: cap_text(choice.id),
                    title: cap_text(choice.title),
                },
                // A flow's nfm_reply and future kinds, named "interactive.<kind>".
                None => unsupported(&format!("interactive.{}", interactive.kind)),
            }
        }
        "button" => match message.button {
            Some(button) => Content::Postback {
                payload: cap_text(button.payload),
                title: cap_optional(button.text),
            },
            None => unsupported(kind),
        },
        // contacts, reaction, order, system, request_welcome, unsupported, ...
        _ => unsupported(kind),
    }
}

/// A template review, its event mapped onto the three states the model knows by whether the
/// template can be sent now:
/// - APPROVED: APPROVED, REINSTATED, UNPAUSED, UNARCHIVED (archiving only hides unused
///   templates), and FLAGGED (quality is low but the template still sends until Meta pauses
///   it, which arrives as its own PAUSED event);
/// - PENDING: PENDING, IN_APPEAL (under review again);
/// - REJECTED: REJECTED, DISABLED, PAUSED, PENDING_DELETION, DELETED, ARCHIVED,
///   LIMIT_EXCEEDED (none of them can be sent).
///
/// LOCKED and UNLOCKED only concern editing, and unknown events say nothing we can map:
/// neither produces an event.
fn template_reviewed(value: TemplateValue) -> Option<InboundEvent> {
    let status = match value.event.as_str() {
        "APPROVED" | "REINSTATED" | "UNPAUSED" | "UNARCHIVED" | "FLAGGED" => "APPROVED",
        "PENDING" | "IN_APPEAL" => "PENDING",
        "REJECTED" | "DISABLED" | "PAUSED" | "PENDING_DELETION" | "DELETED" | "ARCHIVED"
        | "LIMIT_EXCEEDED" => "REJECTED",
        _ => return None,
    };
    if value.message_template_name.is_empty() {
        return None;
    }
    // Meta writes "NONE" when there is no reason.
    let reason = value
        .reason
        .filter(|reason| !reason.is_empty() && reason != "NONE")
        .map(cap_text);
    Some(InboundEvent::TemplateReviewed {
        name: cap_text(value.message_template_name),
        language: cap_text(value.message_template_language),
        status: status.into(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        credentials, events, garbage_survives, hmac_sha256, is_bad_request, is_unauthorized,
        messages, statuses, TestRequest,
    };
    use super::*;
    use chrono::DateTime;
    use serde_json::json;

    const SECRET: &str = "whatsapp-app-secret";

    fn account() -> Credentials {
        credentials(&[
            ("access_token", "EAAJ..."),
            ("phone_number_id", "106540352242922"),
            ("app_secret", SECRET),
            ("verify_token", "wa-verify"),
            ("waba_id", "102290129340398"),
        ])
    }

    fn signed(body: &[u8]) -> TestRequest {
        let signature = format!("sha256={}", hex::encode(hmac_sha256(SECRET, body)));
        TestRequest::post(body).header("x-hub-signature-256", &signature)
    }

    fn deliver(request: &TestRequest) -> Result<Reply, WebhookError> {
        receive(&account(), &request.as_request())
    }

    /// A `messages` notification in the documented envelope.
    fn notification(value: Json) -> Vec<u8> {
        json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": "102290129340398",
                "changes": [{ "value": value, "field": "messages" }]
            }]
        })
        .to_string()
        .into_bytes()
    }

    fn inbound(messages: Json) -> Vec<u8> {
        notification(json!({
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
            "contacts": [{ "profile": { "name": "Sheena Nelson" }, "wa_id": "16505551234" }],
            "messages": messages
        }))
    }

    #[test]
    fn handshake() {
        let request = TestRequest::get(
            "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wa-verify",
        );
        assert_eq!(deliver(&request), Ok(Reply::Challenge("1158201444".into())));
        let request =
            TestRequest::get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=x");
        assert!(is_unauthorized(&deliver(&request)));
    }

    #[test]
    fn unsigned_or_wrongly_signed_posts_are_refused() {
        let body = inbound(json!([]));
        assert!(is_unauthorized(&deliver(&TestRequest::post(body.clone()))));
        let wrong = TestRequest::post(body.clone()).header(
            "X-Hub-Signature-256",
            &format!(
                "sha256={}",
                hex::encode(hmac_sha256("not-the-secret", &body))
            ),
        );
        assert!(is_unauthorized(&deliver(&wrong)));
        let bare_hex = TestRequest::post(body.clone()).header(
            "X-Hub-Signature-256",
            &hex::encode(hmac_sha256(SECRET, &body)),
        );
        assert!(is_unauthorized(&deliver(&bare_hex)));
    }

    #[test]
    fn text_message() {
        let body = inbound(json!([{
            "from": "16505551234",
            "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
            "timestamp": "1749416383",
            "type": "text",
            "text": { "body": "Does it come in another color?" }
        }]));
        assert_eq!(
            messages(deliver(&signed(&body))),
            vec![InboundMessage {
                provider_message_id:
                    "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=".into(),
                from: "16505551234".into(),
                profile_name: Some("Sheena Nelson".into()),
                phone: Some("+16505551234".into()),
                sent_at: DateTime::from_timestamp(1_749_416_383, 0).unwrap(),
                content: Content::Text {
                    body: "Does it come in another color?".into()
                },
            }]
        );
    }

    #[test]
    fn media_location_and_replies() {
        let body = inbound(json!([
            { "from": "16505551234", "id": "wamid.img", "timestamp": "1749416383", "type": "image",
              "image": { "caption": "this one", "mime_type": "image/jpeg", "sha256": "abc", "id": "1003383421387256" } },
            { "from": "16505551234", "id": "wamid.doc", "timestamp": "1749416384", "type": "document",
              "document": { "filename": "invoice.pdf", "mime_type": "application/pdf", "sha256": "def", "id": "2003383421387256" } },
            { "from": "16505551234", "id": "wamid.voice", "timestamp": "1749416385", "type": "audio",
              "audio": { "mime_type": "audio/ogg; codecs=opus", "sha256": "ghi", "id": "3003383421387256", "voice": true } },
            { "from": "16505551234", "id": "wamid.sticker", "timestamp": "1749416386", "type": "sticker",
              "sticker": { "mime_type": "image/webp", "sha256": "jkl", "id": "4003383421387256", "animated": false } },
            { "from": "16505551234", "id": "wamid.loc", "timestamp": "1749416387", "type": "location",
              "location": { "address": "1 Hacker Way, Menlo Park, CA 94025", "latitude": 37.483307, "longitude": -122.148981, "name": "Main Campus" } },
            { "from": "16505551234", "id": "wamid.btn", "timestamp": "1749416388", "type": "interactive",
              "interactive": { "type": "button_reply", "button_reply": { "id": "confirm-yes", "title": "Yes" } } },
            { "from": "16505551234", "id": "wamid.list", "timestamp": "1749416389", "type": "interactive",
              "interactive": { "type": "list_reply", "list_reply": { "id": "size-m", "title": "Medium", "description": "Fits 38-40" } } },
            { "from": "16505551234", "id": "wamid.tpl", "timestamp": "1749416390", "type": "button",
              "context": { "from": "15550783881", "id": "wamid.ours" },
              "button": { "payload": "STOP_PROMOS", "text": "Stop promotions" } },
            { "from": "16505551234", "id": "wamid.react", "timestamp": "1749416391", "type": "reaction",
              "reaction": { "message_id": "wamid.ours", "emoji": "\u{1F44D}" } },
            { "from": "16505551234", "id": "wamid.unsup", "timestamp": "1749416392", "type": "unsupported",
              "errors": [{ "code": 131051, "title": "Message type unknown" }] },
            { "from": "16505551234", "id": "wamid.flow", "timestamp": "1749416393", "type": "interactive",
              "interactive": { "type": "nfm_reply", "nfm_reply": { "response_json": "{}" } } }
        ]));
        let got: Vec<Content> = messages(deliver(&signed(&body)))
            .into_iter()
            .map(|message| message.content)
            .collect();
        assert_eq!(
            got,
            vec![
                Content::Media {
                    media: MediaKind::Image,
                    url: None,
                    provider_media_id: Some("1003383421387256".into()),
                    mime_type: Some("image/jpeg".into()),
                    filename: None,
                    caption: Some("this one".into()),
                },
                Content::Media {
                    media: MediaKind::Document,
                    url: None,
                    provider_media_id: Some("2003383421387256".into()),
                    mime_type: Some("application/pdf".into()),
                    filename: Some("invoice.pdf".into()),
                    caption: None,
                },
                Content::Media {
                    media: MediaKind::Audio,
                    url: None,
                    provider_media_id: Some("3003383421387256".into()),
                    mime_type: Some("audio/ogg; codecs=opus".into()),
                    filename: None,
                    caption: None,
                },
                Content::Media {
                    media: MediaKind::Sticker,
                    url: None,
                    provider_media_id: Some("4003383421387256".into()),
                    mime_type: Some("image/webp".into()),
                    filename: None,
                    caption: None,
                },
                Content::Location {
                    latitude: 37.483307,
                    longitude: -122.148981,
                    name: Some("Main Campus".into()),
                    address: Some("1 Hacker Way, Menlo Park, CA 94025".into()),
                },
                Content::InteractiveReply {
                    id: "confirm-yes".into(),
                    title: "Yes".into()
                },
                Content::InteractiveReply {
                    id: "size-m".into(),
                    title: "Medium".into()
                },
                Content::Postback {
                    payload: "STOP_PROMOS".into(),
                    title: Some("Stop promotions".into())
                },
                Content::Unsupported {
                    provider_type: "reaction".into()
                },
                Content::Unsupported {
                    provider_type: "unsupported".into()
                },
                Content::Unsupported {
                    provider_type: "interactive.nfm_reply".into()
                },
            ]
        );
    }

    #[test]
    fn statuses_with_failure_reason() {
        let body = notification(json!({
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
            "statuses": [
                { "id": "wamid.out1", "status": "sent", "timestamp": "1750263773", "recipient_id": "16505551234",
                  "conversation": { "id": "abc", "origin": { "type": "service" } },
                  "pricing": { "billable": true, "pricing_model": "PMP", "category": "service" } },
                { "id": "wamid.out1", "status": "delivered", "timestamp": "1750263774", "recipient_id": "16505551234" },
                { "id": "wamid.out1", "status": "read", "timestamp": "1750263775", "recipient_id": "16505551234" },
                { "id": "wamid.out2", "status": "failed", "timestamp": "1750263776", "recipient_id": "16505551234",
                  "errors": [{ "code": 131047, "title": "Re-engagement message",
                               "message": "Re-engagement message",
                               "error_data": { "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number." },
                               "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/" }] },
                { "id": "wamid.out3", "status": "deleted", "timestamp": "1750263777", "recipient_id": "16505551234" }
            ]
        }));
        let got = statuses(deliver(&signed(&body)));
        let summary: Vec<(&str, DeliveryStatus, Option<&str>, i64)> = got
            .iter()
            .map(|s| {
                (
                    s.provider_message_id.as_str(),
                    s.status,
                    s.reason.as_deref(),
                    s.at.timestamp(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("wamid.out1", DeliveryStatus::Sent, None, 1_750_263_773),
                ("wamid.out1", DeliveryStatus::Delivered, None, 1_750_263_774),
                ("wamid.out1", DeliveryStatus::Read, None, 1_750_263_775),
                (
                    "wamid.out2",
                    DeliveryStatus::Failed,
                    Some("131047: Re-engagement message"),
                    1_750_263_776
                ),
            ]
        );
    }

    #[test]
    fn other_phone_numbers_are_skipped() {
        let body = notification(json!({
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550000000", "phone_number_id": "999" },
            "contacts": [{ "profile": { "name": "X" }, "wa_id": "16505551234" }],
            "messages": [{ "from": "16505551234", "id": "wamid.x", "timestamp": "1", "type": "text", "text": { "body": "hi" } }]
        }));
        assert_eq!(deliver(&signed(&body)), Ok(Reply::Events(vec![])));
    }

    #[test]
    fn template_reviews() {
        let review = |waba: &str, event: &str, reason: &str| {
            json!({
                "object": "whatsapp_business_account",
                "entry": [{ "id": waba, "time": 1_674_864_290, "changes": [{
                    "field": "message_template_status_update",
                    "value": {
                        "event": event,
                        "message_template_id": 594425479261596_i64,
                        "message_template_name": "order_confirmation",
                        "message_template_language": "en_US",
                        "reason": reason
                    }
                }]}]
            })
            .to_string()
            .into_bytes()
        };
        let got = events(deliver(&signed(&review(
            "102290129340398",
            "APPROVED",
            "NONE",
        ))));
        assert_eq!(
            got,
            vec![InboundEvent::TemplateReviewed {
                name: "order_confirmation".into(),
                language: "en_US".into(),
                status: "APPROVED".into(),
                reason: None,
            }]
        );
        let got = events(deliver(&signed(&review(
            "102290129340398",
            "REJECTED",
            "INCORRECT_CATEGORY",
        ))));
        assert!(matches!(
            &got[..],
            [InboundEvent::TemplateReviewed { status, reason: Some(reason), .. }]
                if status == "REJECTED" && reason == "INCORRECT_CATEGORY"
        ));
        for (event, status) in [
            ("PAUSED", "REJECTED"),
            ("DISABLED", "REJECTED"),
            ("PENDING_DELETION", "REJECTED"),
            ("FLAGGED", "APPROVED"),
            ("REINSTATED", "APPROVED"),
            ("PENDING", "PENDING"),
        ] {
            let got = events(deliver(&signed(&review("102290129340398", event, "NONE"))));
            assert!(
                matches!(&got[..], [InboundEvent::TemplateReviewed { status: s, .. }] if s == status),
                "{event}: {got:?}"
            );
        }
        assert_eq!(
            events(deliver(&signed(&review(
                "102290129340398",
                "LOCKED",
                "NONE"
            )))),
            vec![]
        );
        // Another WABA's template.
        assert_eq!(
            events(deliver(&signed(&review("555", "APPROVED", "NONE")))),
            vec![]
        );
    }

    #[test]
    fn signed_garbage_does_not_panic() {
        assert!(is_bad_request(&deliver(&signed(b"{\"object\":"))));
        assert!(is_bad_request(&deliver(&signed(
            br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":{}}}]}]}"#
        ))));
        let sample = inbound(json!([
            { "from": "16505551234", "id": "wamid.a", "timestamp": "1749416383", "type": "location",
              "location": { "latitude": "1.5", "longitude": 2 } },
            { "from": "16505551234", "id": "wamid.b", "timestamp": 99999999999999999_i64, "type": "interactive",
              "interactive": { "type": "list_reply", "list_reply": { "id": "x", "title": "y" } } }
        ]));
        garbage_survives(&sample, |body| {
            let _ = deliver(&signed(body));
        });
    }
}
