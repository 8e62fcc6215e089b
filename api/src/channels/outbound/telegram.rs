//! Telegram Bot API: `POST /bot<token>/<method>` with a JSON body, answering
//! `{ok, result}` or `{ok: false, error_code, description, parameters.retry_after}`.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::super::model::{Choice, MediaKind, OutboundContent, OutboundMessage};
use super::{credential, describe, non_empty, Answer, Credentials, SendError, Sender, Sent};

pub(super) const TELEGRAM_BASE: &str = "https://api.telegram.org";

/// Sends with the method the content needs. The id returned is "<chat_id>:<message_id>",
/// as the inbound side names Telegram messages (message ids are unique per chat only).
pub(super) async fn send(
    sender: &Sender,
    credentials: &Credentials,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let token = credential(credentials, "bot_token")?;
    let (method, payload) = request(message)?;
    let bot = format!("bot{token}");
    let url = sender.endpoint(TELEGRAM_BASE, &[&bot, method])?;
    let answer = sender
        .exchange(sender.http.post(url).json(&payload))
        .await?;
    if !answer.status.is_success() {
        return Err(failure(&answer));
    }
    let chat_id = answer
        .text_at("/result/chat/id")
        .unwrap_or_else(|| message.to.clone());
    Ok(Sent {
        provider_message_id: answer
            .text_at("/result/message_id")
            .map(|message_id| format!("{chat_id}:{message_id}")),
    })
}

/// The Bot API method and its parameters.
fn request(message: &OutboundMessage) -> Result<(&'static str, Json), SendError> {
    let mut payload = json!({ "chat_id": chat_id(&message.to) });
    let method = match &message.content {
        OutboundContent::Text { body } => {
            payload["text"] = json!(body);
            "sendMessage"
        }
        OutboundContent::Media {
            media,
            url,
            mime_type,
            caption,
            ..
        } => {
            let (method, field) = match media {
                MediaKind::Image => ("sendPhoto", "photo"),
                MediaKind::Video => ("sendVideo", "video"),
                // sendAudio takes MP3 and M4A only; an OGG/Opus clip is a voice note.
                MediaKind::Audio if is_voice(mime_type) => ("sendVoice", "voice"),
                MediaKind::Audio => ("sendAudio", "audio"),
                MediaKind::Document => ("sendDocument", "document"),
                MediaKind::Sticker => ("sendSticker", "sticker"),
            };
            // Telegram fetches the file from the URL itself.
            payload[field] = json!(url);
            if let (Some(caption), false) = (non_empty(caption), *media == MediaKind::Sticker) {
                payload["caption"] = json!(caption);
            }
            method
        }
        OutboundContent::QuickReplies { body, buttons } => {
            payload["text"] = json!(body);
            // The buttons side by side, in one row.
            let row: Vec<Json> = buttons.iter().map(inline_button).collect();
            payload["reply_markup"] = json!({ "inline_keyboard": [row] });
            "sendMessage"
        }
        OutboundContent::List { body, options, .. } => {
            payload["text"] = json!(body);
            // Telegram has no list control: one option per row reads as one.
            let rows: Vec<Json> = options.iter().map(|o| json!([inline_button(o)])).collect();
            payload["reply_markup"] = json!({ "inline_keyboard": rows });
            "sendMessage"
        }
        OutboundContent::Template { .. } => {
            return Err(SendError::permanent("templates are a WhatsApp feature"))
        }
    };
    Ok((method, payload))
}

fn is_voice(mime_type: &str) -> bool {
    let essence = mime_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("audio/ogg") || essence.eq_ignore_ascii_case("audio/opus")
}

/// A callback button: tapping it sends `callback_data` (the choice's id) to the bot.
fn inline_button(choice: &Choice) -> Json {
    json!({ "text": choice.title, "callback_data": choice.id })
}

/// Chat ids are integers; a channel may also be named "@username".
fn chat_id(to: &str) -> Json {
    match to.trim().parse::<i64>() {
        Ok(id) => json!(id),
        Err(_) => json!(to),
    }
}

fn failure(answer: &Answer) -> SendError {
    let code = answer.text_at("/error_code");
    let description = answer.body.get("description").and_then(Json::as_str);
    let reason = describe(code, description, answer.status);
    // Flood control names its wait in the body; a Retry-After header, when present, wins.
    let retry_after = answer.retry_after.or_else(|| {
        answer
            .body
            .pointer("/parameters/retry_after")
            .and_then(Json::as_u64)
            .map(Duration::from_secs)
    });
    SendError::from_status(answer.status, retry_after, reason)
}
