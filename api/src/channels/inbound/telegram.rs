//! Telegram Bot API webhooks. We set the webhook with a `secret_token` of our own, which
//! Telegram sends back in `X-Telegram-Bot-Api-Secret-Token` on every update; the body is one
//! `Update`.
//!
//! Read: `message` (a contact writing to the bot) and `callback_query` (a tap on an inline
//! keyboard button we sent). Edited messages are not stored (the model has no edits: the
//! original stays as received), nor are channel posts, polls or membership updates. The
//! contact is the chat (`chat.id`), because that is where replies go.

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::{
    cap_optional, cap_text, credential, header, parse_json, require_post, same_secret,
    unix_seconds, Credentials, Reply, WebhookError, WebhookRequest,
};
use crate::channels::model::{Content, InboundEvent, InboundMessage, MediaKind};

/// Message fields that carry content we do not handle: stored as `Unsupported` under this
/// name. A message with none of them and nothing we handle is a service message (a member
/// joined, a pin, ...) and is skipped.
const UNSUPPORTED_CONTENT: &[&str] = &[
    "contact",
    "poll",
    "dice",
    "game",
    "story",
    "invoice",
    "paid_media",
    "checklist",
    "giveaway",
];

pub(super) fn receive(
    credentials: &Credentials,
    request: &WebhookRequest<'_>,
) -> Result<Reply, WebhookError> {
    require_post(request)?;
    let expected = credential(credentials, "secret_token")?;
    let given = header(request, "x-telegram-bot-api-secret-token").unwrap_or_default();
    if !same_secret(given, expected) {
        return Err(WebhookError::Unauthorized(
            "X-Telegram-Bot-Api-Secret-Token is missing or wrong".into(),
        ));
    }
    let update: Update = parse_json(request.body, "Telegram Update")?;
    let mut events = Vec::new();
    if let Some(message) = update.message {
        events.extend(message_event(message).map(InboundEvent::Message));
    } else if let Some(query) = update.callback_query {
        events.extend(callback_event(query).map(InboundEvent::Message));
    }
    Ok(Reply::Events(events))
}

// ---- The Update, as the Bot API documents it (only the fields we read) -------------------

#[derive(Deserialize)]
struct Update {
    message: Option<Message>,
    callback_query: Option<CallbackQuery>,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    from: Option<User>,
    chat: Chat,
    /// Unix seconds.
    date: Option<i64>,
    text: Option<String>,
    caption: Option<String>,
    #[serde(default)]
    photo: Vec<PhotoSize>,
    /// GIFs and silent videos; Telegram also fills `document` for them.
    animation: Option<File>,
    document: Option<File>,
    video: Option<File>,
    video_note: Option<File>,
    voice: Option<File>,
    audio: Option<File>,
    sticker: Option<File>,
    venue: Option<Venue>,
    location: Option<Location>,
    /// Everything else, to tell unsupported content from service messages.
    #[serde(flatten)]
    other: Map<String, Json>,
}

#[derive(Deserialize)]
struct User {
    id: Option<i64>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct PhotoSize {
    file_id: String,
    #[serde(default)]
    width: u32,
    #[serde(default)]
    height: u32,
}

/// The fields document, video, voice, audio, animation and sticker share.
#[derive(Deserialize)]
struct File {
    file_id: String,
    file_name: Option<String>,
    mime_type: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

#[derive(Deserialize)]
struct Venue {
    location: Location,
    title: Option<String>,
    address: Option<String>,
}

#[derive(Deserialize)]
struct CallbackQuery {
    id: String,
    from: Option<User>,
    /// The message with the button; absent for buttons on inline-mode messages.
    message: Option<CallbackMessage>,
    data: Option<String>,
}

#[derive(Deserialize)]
struct CallbackMessage {
    chat: Option<Chat>,
}

// ---- Translation -------------------------------------------------------------------------

fn message_event(message: Message) -> Option<InboundMessage> {
    let chat_id = message.chat.id;
    // Message ids count per chat, so the chat makes them unique for the bot.
    let provider_message_id = format!("{chat_id}:{}", message.message_id);
    let profile_name = message.from.as_ref().and_then(full_name);
    let sent_at = unix_seconds(message.date);
    Some(InboundMessage {
        provider_message_id,
        from: chat_id.to_string(),
        profile_name,
        phone: None,
        sent_at,
        content: content(message)?,
    })
}

fn content(message: Message) -> Option<Content> {
    if let Some(body) = message.text {
        return Some(Content::Text {
            body: cap_text(body),
        });
    }
    let caption = cap_optional(message.caption);
    let media = |media: MediaKind, file: File, caption: Option<String>| Content::Media {
        media,
        url: None,
        provider_media_id: Some(file.file_id),
        mime_type: cap_optional(file.mime_type),
        filename: cap_optional(file.file_name),
        caption,
    };
    // Telegram sends each photo in several sizes; the largest is the original.
    let largest = message
        .photo
        .into_iter()
        .max_by_key(|size| u64::from(size.width) * u64::from(size.height));
    if let Some(size) = largest {
        return Some(Content::Media {
            media: MediaKind::Image,
            url: None,
            provider_media_id: Some(size.file_id),
            mime_type: None,
            filename: None,
            caption,
        });
    }
    // Checked before `document`, which Telegram also fills for animations.
    if let Some(file) = message.animation {
        return Some(media(MediaKind::Video, file, caption));
    }
    if let Some(file) = message.video.or(message.video_note) {
        return Some(media(MediaKind::Video, file, caption));
    }
    if let Some(file) = message.voice.or(message.audio) {
        return Some(media(MediaKind::Audio, file, caption));
    }
    if let Some(file) = message.document {
        return Some(media(MediaKind::Document, file, caption));
    }
    if let Some(file) = message.sticker {
        return Some(media(MediaKind::Sticker, file, None));
    }
    // Checked before `location`, which Telegram also fills for venues.
    if let Some(venue) = message.venue {
        return Some(Content::Location {
            latitude: venue.location.latitude,
            longitude: venue.location.longitude,
            name: cap_optional(venue.title),
            address: cap_optional(venue.address),
        });
    }
    if let Some(location) = message.location {
        return Some(Content::Location {
            latitude: location.latitude,
            longitude: location.longitude,
            name: None,
            address: None,
        });
    }
    UNSUPPORTED_CONTENT
        .iter()
        .find(|key| message.other.contains_key(**key))
        .map(|key| Content::Unsupported {
            provider_type: (*key).to_string(),
        })
}

/// A tap on an inline keyboard button: its `callback_data` is the id we gave the button.
/// The update names no time, so it is stamped with the current time.
fn callback_event(query: CallbackQuery) -> Option<InboundMessage> {
    let data = query.data.filter(|data| !data.is_empty())?;
    let from_user = query.from.as_ref().and_then(|user| user.id);
    let chat_id = query
        .message
        .and_then(|message| message.chat)
        .map(|chat| chat.id)
        .or(from_user)?;
    let data = cap_text(data);
    Some(InboundMessage {
        provider_message_id: format!("callback:{}", query.id),
        from: chat_id.to_string(),
        profile_name: query.from.as_ref().and_then(full_name),
        phone: None,
        sent_at: chrono::Utc::now(),
        content: Content::InteractiveReply {
            id: data.clone(),
            title: data,
        },
    })
}

/// "First Last", or whichever of the two is there.
fn full_name(user: &User) -> Option<String> {
    let parts: Vec<&str> = [user.first_name.as_deref(), user.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    cap_optional(Some(parts.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        credentials, garbage_survives, is_bad_request, is_unauthorized, messages, TestRequest,
    };
    use super::*;
    use axum::http::Method;
    use chrono::DateTime;
    use serde_json::json;

    const SECRET: &str = "q8Wn3vXr0Lb9Tz1Kc4Hy";

    fn account() -> Credentials {
        credentials(&[
            ("bot_token", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
            ("secret_token", SECRET),
        ])
    }

    fn deliver(request: &TestRequest) -> Result<Reply, WebhookError> {
        receive(&account(), &request.as_request())
    }

    fn from_telegram(update: &Json) -> TestRequest {
        TestRequest::post(update.to_string()).header("X-Telegram-Bot-Api-Secret-Token", SECRET)
    }

    fn update(message: Json) -> Json {
        let mut message_object = json!({
            "message_id": 1365,
            "from": { "id": 1111111, "is_bot": false, "first_name": "Siti", "last_name": "Rahma",
                      "username": "sitir", "language_code": "id" },
            "chat": { "id": 1111111, "first_name": "Siti", "last_name": "Rahma", "username": "sitir", "type": "private" },
            "date": 1_700_000_000
        });
        if let (Some(target), Some(extra)) = (message_object.as_object_mut(), message.as_object()) {
            for (key, value) in extra {
                target.insert(key.clone(), value.clone());
            }
        }
        json!({ "update_id": 10000, "message": message_object })
    }

    #[test]
    fn secret_token_is_required() {
        let body = update(json!({ "text": "hi" }));
        let missing = TestRequest::post(body.to_string());
        assert!(is_unauthorized(&deliver(&missing)));
        let wrong = TestRequest::post(body.to_string())
            .header("X-Telegram-Bot-Api-Secret-Token", "q8Wn3vXr0Lb9Tz1Kc4Hz");
        assert!(is_unauthorized(&deliver(&wrong)));
        let mut get = from_telegram(&body);
        get.method = Method::GET;
        assert_eq!(deliver(&get), Err(WebhookError::MethodNotAllowed));
    }

    #[test]
    fn text_message() {
        let got = messages(deliver(&from_telegram(&update(
            json!({ "text": "/start" }),
        ))));
        assert_eq!(
            got,
            vec![InboundMessage {
                provider_message_id: "1111111:1365".into(),
                from: "1111111".into(),
                profile_name: Some("Siti Rahma".into()),
                phone: None,
                sent_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                content: Content::Text {
                    body: "/start".into()
                },
            }]
        );
    }

    #[test]
    fn photo_takes_the_largest_size() {
        let body = update(json!({
            "photo": [
                { "file_id": "AgAD-small", "file_unique_id": "a", "file_size": 1200, "width": 90, "height": 67 },
                { "file_id": "AgAD-large", "file_unique_id": "c", "file_size": 98000, "width": 1280, "height": 960 },
                { "file_id": "AgAD-medium", "file_unique_id": "b", "file_size": 18000, "width": 320, "height": 240 }
            ],
            "caption": "struk belanja"
        }));
        let got = messages(deliver(&from_telegram(&body)));
        assert_eq!(
            got[0].content,
            Content::Media {
                media: MediaKind::Image,
                url: None,
                provider_media_id: Some("AgAD-large".into()),
                mime_type: None,
                filename: None,
                caption: Some("struk belanja".into()),
            }
        );
    }

    #[test]
    fn files_locations_and_unsupported() {
        let cases = [
            (
                json!({ "document": { "file_id": "BQAD-doc", "file_unique_id": "u", "file_name": "cv.pdf", "mime_type": "application/pdf" } }),
                Content::Media {
                    media: MediaKind::Document,
                    url: None,
                    provider_media_id: Some("BQAD-doc".into()),
                    mime_type: Some("application/pdf".into()),
                    filename: Some("cv.pdf".into()),
                    caption: None,
                },
            ),
            (
                json!({ "voice": { "file_id": "AwAD-voice", "file_unique_id": "u", "duration": 3, "mime_type": "audio/ogg" } }),
                Content::Media {
                    media: MediaKind::Audio,
                    url: None,
                    provider_media_id: Some("AwAD-voice".into()),
                    mime_type: Some("audio/ogg".into()),
                    filename: None,
                    caption: None,
                },
            ),
            (
                json!({
                    "animation": { "file_id": "CgAD-gif", "file_unique_id": "u", "width": 1, "height": 1, "duration": 1, "mime_type": "video/mp4" },
                    "document": { "file_id": "CgAD-gif", "file_unique_id": "u", "mime_type": "video/mp4" }
                }),
                Content::Media {
                    media: MediaKind::Video,
                    url: None,
                    provider_media_id: Some("CgAD-gif".into()),
                    mime_type: Some("video/mp4".into()),
                    filename: None,
                    caption: None,
                },
            ),
            (
                json!({ "sticker": { "file_id": "CAAC-sticker", "file_unique_id": "u", "type": "regular", "width": 512, "height": 512, "is_animated": false, "is_video": false, "emoji": "\u{1F600}" } }),
                Content::Media {
                    media: MediaKind::Sticker,
                    url: None,
                    provider_media_id: Some("CAAC-sticker".into()),
                    mime_type: None,
                    filename: None,
                    caption: None,
                },
            ),
            (
                json!({ "location": { "latitude": -6.175392, "longitude": 106.827153 } }),
                Content::Location {
                    latitude: -6.175392,
                    longitude: 106.827153,
                    name: None,
                    address: None,
                },
            ),
            (
                json!({
                    "location": { "latitude": -6.175392, "longitude": 106.827153 },
                    "venue": { "location": { "latitude": -6.175392, "longitude": 106.827153 }, "title": "Monas", "address": "Gambir, Jakarta" }
                }),
                Content::Location {
                    latitude: -6.175392,
                    longitude: 106.827153,
                    name: Some("Monas".into()),
                    address: Some("Gambir, Jakarta".into()),
                },
            ),
            (
                json!({ "contact": { "phone_number": "+6281234567890", "first_name": "Budi" } }),
                Content::Unsupported {
                    provider_type: "contact".into(),
                },
            ),
        ];
        for (fields, expected) in cases {
            let got = messages(deliver(&from_telegram(&update(fields))));
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].content, expected);
        }
    }

    #[test]
    fn service_messages_and_edits_are_skipped() {
        let joined = update(
            json!({ "new_chat_members": [{ "id": 5, "is_bot": false, "first_name": "A" }] }),
        );
        assert_eq!(deliver(&from_telegram(&joined)), Ok(Reply::Events(vec![])));
        let edited = json!({ "update_id": 10001, "edited_message": {
            "message_id": 1365, "chat": { "id": 1111111, "type": "private" }, "date": 1, "edit_date": 2, "text": "fixed"
        }});
        assert_eq!(deliver(&from_telegram(&edited)), Ok(Reply::Events(vec![])));
    }

    #[test]
    fn callback_query_is_an_interactive_reply() {
        let body = json!({
            "update_id": 10002,
            "callback_query": {
                "id": "4382bfdwdsb323b2d9",
                "from": { "id": 1111111, "is_bot": false, "first_name": "Siti" },
                "message": { "message_id": 1400, "chat": { "id": 1111111, "type": "private" }, "date": 1_700_000_000, "text": "Pick one" },
                "chat_instance": "-1234",
                "data": "size:M"
            }
        });
        let got = messages(deliver(&from_telegram(&body)));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].provider_message_id, "callback:4382bfdwdsb323b2d9");
        assert_eq!(got[0].from, "1111111");
        assert_eq!(got[0].profile_name.as_deref(), Some("Siti"));
        assert_eq!(
            got[0].content,
            Content::InteractiveReply {
                id: "size:M".into(),
                title: "size:M".into()
            }
        );
    }

    #[test]
    fn group_messages_come_from_the_chat() {
        let mut body = update(json!({ "text": "halo" }));
        body["message"]["chat"] =
            json!({ "id": -1001234567890_i64, "title": "Team", "type": "supergroup" });
        let got = messages(deliver(&from_telegram(&body)));
        assert_eq!(got[0].from, "-1001234567890");
        assert_eq!(got[0].provider_message_id, "-1001234567890:1365");
    }

    #[test]
    fn garbage_does_not_panic() {
        let bad =
            TestRequest::post("{\"update_id\":").header("X-Telegram-Bot-Api-Secret-Token", SECRET);
        assert!(is_bad_request(&deliver(&bad)));
        let sample = json!({ "update_id": 1, "message": {
            "message_id": 1, "chat": { "id": 2 }, "date": 3,
            "photo": [{ "file_id": "x", "width": 4294967295_u64, "height": 4294967295_u64 }],
            "venue": { "location": { "latitude": 1, "longitude": 2 } }
        }, "callback_query": { "id": "q", "data": "d" } })
        .to_string();
        garbage_survives(sample.as_bytes(), |body| {
            let request = TestRequest::post(body).header("X-Telegram-Bot-Api-Secret-Token", SECRET);
            let _ = deliver(&request);
        });
    }
}
