//! LINE Messaging API: `POST /v2/bot/message/push` with the channel access token, answering
//! `sentMessages` (newer API versions) or `{message, details}` on errors.

use reqwest::StatusCode;
use serde_json::{json, Value as Json};

use super::super::model::{Choice, MediaKind, OutboundContent, OutboundMessage};
use super::{credential, describe, non_empty, Answer, Credentials, SendError, Sender, Sent};

const LINE_BASE: &str = "https://api.line.me";

/// Pushes the message with `X-Line-Retry-Key` set to our message id, so a retry after a lost
/// answer is recognised by LINE instead of delivered twice.
pub(super) async fn send(
    sender: &Sender,
    credentials: &Credentials,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let token = credential(credentials, "channel_access_token")?;
    let messages = line_messages(&message.content)?;
    let url = sender.endpoint(LINE_BASE, &["v2", "bot", "message", "push"])?;
    let request = sender
        .http
        .post(url)
        .bearer_auth(token)
        .header("X-Line-Retry-Key", message.id.hyphenated().to_string())
        .json(&json!({ "to": message.to, "messages": messages }));
    let answer = sender.exchange(request).await?;
    // 409: a request with this retry key was accepted before; the message went out then.
    if answer.status.is_success() || answer.status == StatusCode::CONFLICT {
        return Ok(Sent {
            provider_message_id: answer.text_at("/sentMessages/0/id"),
        });
    }
    Err(failure(&answer))
}

/// The message objects of one push (at most 5 are allowed; we send 1 or 2).
fn line_messages(content: &OutboundContent) -> Result<Vec<Json>, SendError> {
    match content {
        OutboundContent::Text { body } => Ok(vec![json!({ "type": "text", "text": body })]),
        OutboundContent::Media {
            media: MediaKind::Image,
            url,
            caption,
            ..
        } => {
            // The original is at most 10 MB and the preview 1 MB; without a thumbnail of our
            // own, the original serves as both.
            let mut messages = vec![json!({
                "type": "image",
                "originalContentUrl": url,
                "previewImageUrl": url,
            })];
            // LINE images have no caption: the caption follows as a text in the same push.
            if let Some(caption) = non_empty(caption) {
                messages.push(json!({ "type": "text", "text": caption }));
            }
            Ok(messages)
        }
        OutboundContent::Media { .. } => Err(SendError::permanent(
            "LINE messages from Obrol carry images only",
        )),
        OutboundContent::QuickReplies { body, buttons } => {
            Ok(vec![with_quick_reply(body, buttons)])
        }
        // Quick replies hold up to 13 items, so a list of 10 fits.
        OutboundContent::List { body, options, .. } => Ok(vec![with_quick_reply(body, options)]),
        OutboundContent::Template { .. } => {
            Err(SendError::permanent("templates are a WhatsApp feature"))
        }
    }
}

/// A text with quick-reply postback buttons: the tap comes back as a postback carrying the
/// choice's id, and shows the title in the chat as the contact's answer.
fn with_quick_reply(body: &str, choices: &[Choice]) -> Json {
    let items: Vec<Json> = choices
        .iter()
        .map(|choice| {
            json!({
                "type": "action",
                "action": {
                    "type": "postback",
                    "label": choice.title,
                    "data": choice.id,
                    "displayText": choice.title,
                },
            })
        })
        .collect();
    json!({ "type": "text", "text": body, "quickReply": { "items": items } })
}

fn failure(answer: &Answer) -> SendError {
    let message = answer.body.get("message").and_then(Json::as_str);
    // The first detail says which field was wrong ("messages[0].text: May not be empty").
    let detail = answer.body.pointer("/details/0").and_then(|detail| {
        let text = detail.get("message").and_then(Json::as_str)?;
        Some(match detail.get("property").and_then(Json::as_str) {
            Some(property) => format!("{property}: {text}"),
            None => text.to_string(),
        })
    });
    let reason = match (message, detail) {
        (Some(message), Some(detail)) => {
            describe(None, Some(&format!("{message} ({detail})")), answer.status)
        }
        (message, _) => describe(None, message, answer.status),
    };
    // LINE answers 429 both for its rate limit and for a spent monthly message quota; only
    // the first passes with a short wait.
    if message.is_some_and(|m| m.to_ascii_lowercase().contains("monthly limit")) {
        return SendError::permanent(reason);
    }
    SendError::from_status(answer.status, answer.retry_after, reason)
}
