//! Outbound senders: one per provider, calling its documented HTTP API. The base URL of
//! every provider can be replaced (`OBROL_CHANNEL_API_BASE`) so tests send to a local fake
//! provider that records requests.
//!
//! Each provider module turns an `OutboundMessage` into that provider's request and reads its
//! answer back into `Sent` or `SendError`. Nothing here logs: requests carry credentials and
//! message bodies, and error reasons are built only from the provider's code and message.

mod download;
mod line;
mod meta;
mod rules;
mod telegram;
mod twilio;
mod viber;
mod wechat;

#[cfg(test)]
mod fake_provider;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Map, Value as Json};
use url::Url;
use uuid::Uuid;

use super::model::{OutboundContent, OutboundMessage};
use super::ChannelType;

pub use download::{bare_type, Downloaded};
pub use meta::{Profile, TemplateSubmission, TemplateSubmitted};

pub type Credentials = Map<String, Json>;

/// What the provider said when it accepted a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The provider's id for the message; status webhooks name it.
    pub provider_message_id: Option<String>,
}

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq)]
pub struct SendError {
    /// 429, 5xx, a timeout or a refused connection: trying again later may work.
    pub retryable: bool,
    /// The provider's Retry-After, when it gave one.
    pub retry_after: Option<Duration>,
    /// The request may have reached the provider (a timeout, a connection lost after it was
    /// sent): sending again could deliver the message twice.
    pub maybe_delivered: bool,
    /// The provider's code and message, for the agent ("131047: Re-engagement message").
    pub reason: String,
}

impl SendError {
    /// A failure that sending the same message again cannot fix.
    pub fn permanent(reason: impl Into<String>) -> Self {
        SendError {
            retryable: false,
            retry_after: None,
            maybe_delivered: false,
            reason: reason.into(),
        }
    }

    /// A failure that may pass if the same message is sent again later.
    pub fn retryable(reason: impl Into<String>, retry_after: Option<Duration>) -> Self {
        SendError {
            retryable: true,
            retry_after,
            maybe_delivered: false,
            reason: reason.into(),
        }
    }

    /// No answer after the request went out: the provider may have taken the message.
    pub fn unknown(reason: impl Into<String>) -> Self {
        SendError {
            maybe_delivered: true,
            ..SendError::retryable(reason, None)
        }
    }

    /// Classifies a provider's HTTP refusal: rate limits and server errors pass with time,
    /// any other status means the request itself was wrong.
    fn from_status(status: StatusCode, retry_after: Option<Duration>, reason: String) -> Self {
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            SendError::retryable(reason, retry_after)
        } else {
            SendError::permanent(reason)
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for SendError {}

/// Checks that `kind` can carry `content` at all (and within its limits), before anything is
/// queued: the error says what the channel allows.
pub fn check(kind: ChannelType, content: &OutboundContent) -> Result<(), String> {
    rules::check(kind, content)
}

/// How the channel is named to agents ("WhatsApp", "live chat").
pub fn channel_name(kind: ChannelType) -> &'static str {
    rules::channel_name(kind)
}

/// The largest file `kind` takes as `media` (the providers' documented limits).
pub fn max_media_bytes(kind: ChannelType, media: super::model::MediaKind) -> u64 {
    rules::max_media_bytes(kind, media)
}

/// Checks a whole message: its content (as `check`), its recipient, and the HUMAN_AGENT tag,
/// which only Messenger accepts.
pub fn check_message(kind: ChannelType, message: &OutboundMessage) -> Result<(), String> {
    check(kind, &message.content)?;
    if kind != ChannelType::LiveChat && message.to.trim().is_empty() {
        return Err("the message has no recipient".into());
    }
    if message.human_agent_tag && kind != ChannelType::Messenger {
        return Err(format!(
            "the HUMAN_AGENT tag is a Messenger feature; {} cannot send with it",
            rules::channel_name(kind)
        ));
    }
    Ok(())
}

/// Sends through the providers' HTTP APIs.
pub struct Sender {
    http: reqwest::Client,
    base_override: Option<String>,
    wechat_tokens: wechat::TokenCache,
    viber_names: viber::NameCache,
}

impl Sender {
    /// `base_override` replaces scheme, host and port of every provider URL (tests).
    pub fn new(base_override: Option<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("obrol/", env!("CARGO_PKG_VERSION")))
            .build()
            // Fails only if the TLS backend cannot start, which no send could survive either.
            .expect("the HTTP client for providers builds");
        Sender {
            http,
            base_override,
            wechat_tokens: wechat::TokenCache::default(),
            viber_names: viber::NameCache::default(),
        }
    }

    /// Sends one message from `account_id`. `status_url` is the account's webhook URL, for
    /// providers that take a per-message status callback (Twilio).
    pub async fn send(
        &self,
        kind: ChannelType,
        account_id: Uuid,
        credentials: &Credentials,
        status_url: &str,
        message: &OutboundMessage,
    ) -> Result<Sent, SendError> {
        // Refused content would only earn a provider error later; refuse it here, for good.
        check_message(kind, message).map_err(SendError::permanent)?;
        match kind {
            ChannelType::Whatsapp => meta::send_whatsapp(self, credentials, message).await,
            ChannelType::Messenger => meta::send_messenger(self, credentials, message).await,
            ChannelType::Instagram => meta::send_instagram(self, credentials, message).await,
            ChannelType::Telegram => telegram::send(self, credentials, message).await,
            ChannelType::Line => line::send(self, credentials, message).await,
            ChannelType::Viber => viber::send(self, account_id, credentials, message).await,
            ChannelType::Wechat => wechat::send(self, account_id, credentials, message).await,
            ChannelType::Sms => twilio::send(self, credentials, status_url, message).await,
            // The caller delivers live chat over its WebSocket; there is no provider.
            ChannelType::LiveChat => Ok(Sent {
                provider_message_id: None,
            }),
        }
    }

    /// The name Messenger or Instagram knows a contact by (`user_id`: their page- or
    /// Instagram-scoped id); other channels' webhooks carry names themselves.
    pub async fn profile(
        &self,
        kind: ChannelType,
        credentials: &Credentials,
        user_id: &str,
    ) -> Result<Profile, SendError> {
        match kind {
            ChannelType::Messenger => meta::profile(self, false, credentials, user_id).await,
            ChannelType::Instagram => meta::profile(self, true, credentials, user_id).await,
            _ => Ok(Profile::default()),
        }
    }

    /// Submits a WhatsApp message template to Meta for review (the account's `waba_id`).
    pub async fn submit_whatsapp_template(
        &self,
        credentials: &Credentials,
        template: &TemplateSubmission<'_>,
    ) -> Result<TemplateSubmitted, SendError> {
        meta::submit_whatsapp_template(self, credentials, template).await
    }

    /// The WhatsApp template of `name` and `language` already at Meta, if any.
    pub async fn find_whatsapp_template(
        &self,
        credentials: &Credentials,
        name: &str,
        language: &str,
    ) -> Result<Option<TemplateSubmitted>, SendError> {
        meta::find_whatsapp_template(self, credentials, name, language).await
    }

    /// The URL of `segments` at the provider (or at the override, for tests). Segments are
    /// percent-encoded, so a credential in the path cannot change the path's shape.
    fn endpoint(&self, provider_base: &str, segments: &[&str]) -> Result<Url, SendError> {
        let base = self.base_override.as_deref().unwrap_or(provider_base);
        let mut url = Url::parse(base)
            .map_err(|_| SendError::permanent("the provider base URL is not a valid URL"))?;
        url.path_segments_mut()
            .map_err(|()| SendError::permanent("the provider base URL cannot take a path"))?
            .clear()
            .extend(segments);
        Ok(url)
    }

    /// Sends `request` and reads the whole answer. Only the transport can fail here; what the
    /// provider answered is for its module to judge.
    async fn exchange(&self, request: RequestBuilder) -> Result<Answer, SendError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = read_capped(response).await;
        // Anything that is not JSON (a gateway's HTML page, a cut-off body) reads as null.
        let body = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// A provider's answer: its status, its Retry-After and its JSON body (null if none).
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Json,
}

impl Answer {
    /// A string or number field at `pointer`, as text (ids come as either).
    fn text_at(&self, pointer: &str) -> Option<String> {
        match self.body.pointer(pointer)? {
            Json::String(text) if !text.is_empty() => Some(text.clone()),
            Json::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
}

/// Provider answers are small; a larger body is cut rather than held in memory.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Reads a response body up to `MAX_ANSWER_BYTES`. A body that breaks off keeps what arrived:
/// the status has already said whether the provider accepted the message.
async fn read_capped(mut response: reqwest::Response) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// A request that never got an answer. The reason names no URL: Telegram's path and
/// WeChat's query string hold secrets.
fn transport_error(error: reqwest::Error) -> SendError {
    if error.is_builder() {
        SendError::permanent("the request could not be built from the channel's credentials")
    } else if error.is_connect() {
        // Nothing was sent: trying again is safe.
        SendError::retryable("could not connect to the provider", None)
    } else if error.is_timeout() {
        SendError::unknown("the provider did not answer in time")
    } else {
        SendError::unknown("the connection to the provider failed")
    }
}

/// The longest Retry-After believed: a day (a larger value is a provider's mistake).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Retry-After in either of its forms: delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value)
                .ok()?
                .with_timezone(&Utc);
            (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A credential the provider needs, as stored by `channels::checked_credentials`.
fn credential<'a>(credentials: &'a Credentials, key: &str) -> Result<&'a str, SendError> {
    credentials
        .get(key)
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            SendError::permanent(format!(
                "the channel's credentials have no '{key}'; reconnect the channel"
            ))
        })
}

/// Provider reasons are shown to agents: keep them to one readable line.
const MAX_REASON_CHARS: usize = 300;

/// "code: message" from whichever of the two the provider gave, else the HTTP status.
fn describe(code: Option<String>, message: Option<&str>, status: StatusCode) -> String {
    let message = message.map(str::trim).filter(|m| !m.is_empty());
    let reason = match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (None, Some(message)) => message.to_string(),
        (Some(code), None) => format!("{code} (HTTP {})", status.as_u16()),
        (None, None) => format!("HTTP {}", status.as_u16()),
    };
    shorten(&reason, MAX_REASON_CHARS)
}

/// `text` cut to `max` characters, on a character boundary, marked with an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A caption or other optional text that says something.
fn non_empty(text: &Option<String>) -> Option<&str> {
    text.as_deref().filter(|t| !t.trim().is_empty())
}
