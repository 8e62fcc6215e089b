//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/<sid>/Messages.json`, HTTP Basic
//! auth, a form body; answers the Message resource (`sid`) or `{code, message}`.

use serde_json::Value as Json;

use super::super::model::{OutboundContent, OutboundMessage};
use super::{credential, describe, non_empty, Answer, Credentials, SendError, Sender, Sent};

pub(super) const TWILIO_BASE: &str = "https://api.twilio.com";

/// Sends from the account's number; `status_url` becomes the message's StatusCallback, where
/// Twilio reports sent / delivered / failed.
pub(super) async fn send(
    sender: &Sender,
    credentials: &Credentials,
    status_url: &str,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let account_sid = credential(credentials, "account_sid")?;
    let auth_token = credential(credentials, "auth_token")?;
    let from = credential(credentials, "phone_number")?;
    let mut form: Vec<(&str, &str)> = vec![("To", message.to.as_str()), ("From", from)];
    match &message.content {
        OutboundContent::Text { body } => form.push(("Body", body)),
        // MMS: Twilio fetches the file; the caption travels as the body.
        OutboundContent::Media { url, caption, .. } => {
            form.push(("MediaUrl", url));
            if let Some(caption) = non_empty(caption) {
                form.push(("Body", caption));
            }
        }
        _ => {
            return Err(SendError::permanent(
                "SMS carries text and media only; send the options as text",
            ))
        }
    }
    if !status_url.trim().is_empty() {
        form.push(("StatusCallback", status_url));
    }
    let url = sender.endpoint(
        TWILIO_BASE,
        &["2010-04-01", "Accounts", account_sid, "Messages.json"],
    )?;
    let answer = sender
        .exchange(
            sender
                .http
                .post(url)
                .basic_auth(account_sid, Some(auth_token))
                .form(&form),
        )
        .await?;
    if answer.status.is_success() {
        Ok(Sent {
            provider_message_id: answer.text_at("/sid"),
        })
    } else {
        Err(failure(&answer))
    }
}

fn failure(answer: &Answer) -> SendError {
    let code = answer.text_at("/code");
    let message = answer.body.get("message").and_then(Json::as_str);
    SendError::from_status(
        answer.status,
        answer.retry_after,
        describe(code, message, answer.status),
    )
}
