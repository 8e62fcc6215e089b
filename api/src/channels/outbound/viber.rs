//! Viber REST Bot API: `POST /pa/send_message` with `X-Viber-Auth-Token`. Viber answers
//! HTTP 200 for most failures too; `status` 0 is success, anything else a failure named by
//! `status_message`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::super::model::{Choice, MediaKind, OutboundContent, OutboundMessage};
use super::{
    credential, describe, non_empty, transport_error, Answer, Credentials, SendError, Sender, Sent,
};

const VIBER_BASE: &str = "https://chatapi.viber.com";
const AUTH_HEADER: &str = "X-Viber-Auth-Token";
/// Viber's "tooManyRequests" status: the only one that passes with time.
const TOO_MANY_REQUESTS: i64 = 12;
/// Viber shows at most 28 characters of the sender's name.
const MAX_SENDER_NAME: usize = 28;
/// A renamed bot shows its new name after at most this long.
const NAME_TTL: Duration = Duration::from_secs(3600);

/// The bot names Viber requires as `sender.name`, read once an hour per account from
/// `get_account_info` (credentials hold only the token).
#[derive(Default)]
pub(super) struct NameCache {
    names: Mutex<HashMap<Uuid, (String, Instant)>>,
}

impl NameCache {
    fn get(&self, account_id: Uuid) -> Option<String> {
        let names = self
            .names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        names
            .get(&account_id)
            .filter(|(_, fetched)| fetched.elapsed() < NAME_TTL)
            .map(|(name, _)| name.clone())
    }

    fn put(&self, account_id: Uuid, name: String) {
        let mut names = self
            .names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        names.insert(account_id, (name, Instant::now()));
    }
}

pub(super) async fn send(
    sender: &Sender,
    account_id: Uuid,
    credentials: &Credentials,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let token = credential(credentials, "auth_token")?;
    let name = sender_name(sender, account_id, token).await?;
    let mut payload = json!({ "receiver": message.to, "sender": { "name": name } });
    match &message.content {
        OutboundContent::Text { body } => {
            payload["type"] = json!("text");
            payload["text"] = json!(body);
        }
        OutboundContent::Media {
            media,
            url,
            filename,
            caption,
            ..
        } => match media {
            MediaKind::Image => {
                payload["type"] = json!("picture");
                payload["media"] = json!(url);
                // Required, and may be empty.
                payload["text"] = json!(non_empty(caption).unwrap_or(""));
            }
            MediaKind::Video => {
                payload["type"] = json!("video");
                payload["media"] = json!(url);
                payload["size"] = json!(media_size(sender, url).await?);
            }
            // Viber has no audio message: a clip goes as a file.
            MediaKind::Document | MediaKind::Audio => {
                payload["type"] = json!("file");
                payload["media"] = json!(url);
                payload["size"] = json!(media_size(sender, url).await?);
                payload["file_name"] = json!(file_name(filename, url));
            }
            MediaKind::Sticker => {
                return Err(SendError::permanent(
                    "Viber sends stickers from its own catalogue only",
                ))
            }
        },
        OutboundContent::QuickReplies { body, buttons } => {
            payload["type"] = json!("text");
            payload["text"] = json!(body);
            // Up to 3 buttons share one row of the keyboard's 6 columns.
            let columns = 6 / buttons.len().clamp(1, 6);
            payload["keyboard"] = keyboard(buttons, columns);
        }
        OutboundContent::List { body, options, .. } => {
            payload["type"] = json!("text");
            payload["text"] = json!(body);
            // One option per full-width row reads as a list.
            payload["keyboard"] = keyboard(options, 6);
        }
        OutboundContent::Template { .. } => {
            return Err(SendError::permanent("templates are a WhatsApp feature"))
        }
    }
    let url = sender.endpoint(VIBER_BASE, &["pa", "send_message"])?;
    let answer = sender
        .exchange(
            sender
                .http
                .post(url)
                .header(AUTH_HEADER, token)
                .json(&payload),
        )
        .await?;
    accepted(&answer)?;
    Ok(Sent {
        provider_message_id: answer.text_at("/message_token"),
    })
}

/// A keyboard of reply buttons: a tap sends `ActionBody` (the choice's id) back to the bot.
fn keyboard(choices: &[Choice], columns: usize) -> Json {
    let buttons: Vec<Json> = choices
        .iter()
        .map(|choice| {
            json!({
                "Columns": columns,
                "Rows": 1,
                "ActionType": "reply",
                "ActionBody": choice.id,
                "Text": choice.title,
            })
        })
        .collect();
    json!({ "Type": "keyboard", "DefaultHeight": false, "Buttons": buttons })
}

/// The bot's name, from the cache or from `POST /pa/get_account_info`.
async fn sender_name(sender: &Sender, account_id: Uuid, token: &str) -> Result<String, SendError> {
    if let Some(name) = sender.viber_names.get(account_id) {
        return Ok(name);
    }
    let url = sender.endpoint(VIBER_BASE, &["pa", "get_account_info"])?;
    let answer = sender
        .exchange(
            sender
                .http
                .post(url)
                .header(AUTH_HEADER, token)
                .json(&json!({})),
        )
        .await?;
    accepted(&answer)?;
    let name = answer
        .body
        .get("name")
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| SendError::permanent("Viber's account info has no bot name"))?;
    let name: String = name.chars().take(MAX_SENDER_NAME).collect();
    let name = name.trim_end().to_string();
    sender.viber_names.put(account_id, name.clone());
    Ok(name)
}

/// Whether Viber accepted the request: HTTP 2xx and status 0.
fn accepted(answer: &Answer) -> Result<(), SendError> {
    let status_message = answer.body.get("status_message").and_then(Json::as_str);
    if !answer.status.is_success() {
        return Err(SendError::from_status(
            answer.status,
            answer.retry_after,
            describe(None, status_message, answer.status),
        ));
    }
    match answer.body.get("status").and_then(Json::as_i64) {
        Some(0) => Ok(()),
        Some(status) => {
            let reason = describe(Some(status.to_string()), status_message, answer.status);
            if status == TOO_MANY_REQUESTS {
                Err(SendError::retryable(reason, answer.retry_after))
            } else {
                Err(SendError::permanent(reason))
            }
        }
        // A 200 without Viber's envelope came from something in between, not from Viber.
        None => Err(SendError::retryable(
            "Viber's answer could not be read",
            None,
        )),
    }
}

/// Viber needs the byte size of videos and files, which the message does not carry: ask the
/// file's host for its first byte, whose Content-Range names the total (or, if the host
/// ignores ranges, the Content-Length of the whole file, whose body is not read).
async fn media_size(sender: &Sender, url: &str) -> Result<u64, SendError> {
    let response = sender
        .http
        .get(url)
        .header(RANGE, "bytes=0-0")
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    let size = if status == StatusCode::PARTIAL_CONTENT {
        response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|value| value.to_str().ok())
            .and_then(|range| range.rsplit_once('/'))
            .and_then(|(_, total)| total.trim().parse::<u64>().ok())
    } else if status.is_success() {
        response.content_length()
    } else {
        return Err(SendError::from_status(
            status,
            None,
            format!(
                "the file to send could not be read (HTTP {})",
                status.as_u16()
            ),
        ));
    };
    size.filter(|size| *size > 0)
        .ok_or_else(|| SendError::permanent("the file's host does not tell the file's size"))
}

/// The name Viber shows for a file: the given one, else the URL's last path segment.
fn file_name(filename: &Option<String>, url: &str) -> String {
    if let Some(name) = non_empty(filename) {
        return name.to_string();
    }
    url::Url::parse(url)
        .ok()
        .and_then(|url| {
            url.path_segments()?
                .next_back()
                .filter(|segment| !segment.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "file".into())
}
