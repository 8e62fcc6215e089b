//! WeChat Official Account customer-service messages: `POST /cgi-bin/message/custom/send`
//! with an `access_token` query parameter, itself obtained from `GET /cgi-bin/token`. WeChat
//! answers HTTP 200 with `errcode` (0 for success).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::super::model::{OutboundContent, OutboundMessage};
use super::{credential, describe, Answer, Credentials, SendError, Sender, Sent};

pub(super) const WECHAT_BASE: &str = "https://api.weixin.qq.com";
/// The token is invalid (40001, 40014) or has expired (42001): fetch a new one and retry.
pub(super) const TOKEN_REJECTED: &[i64] = &[40001, 40014, 42001];
/// "System busy".
pub(super) const BUSY: i64 = -1;
/// Refresh this long before WeChat's `expires_in` runs out (or at half the lifetime, if
/// that is shorter), so a token never expires between reading it and using it.
const REFRESH_EARLY: Duration = Duration::from_secs(300);
/// The longest lifetime believed, whatever `expires_in` says.
const MAX_LIFETIME_SECS: u64 = 24 * 3600;

/// One access token per account. Fetching a new token invalidates the previous one (after a
/// short grace period), so each account's fetch is serialised behind its own lock.
#[derive(Default)]
pub(super) struct TokenCache {
    slots: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<Option<CachedToken>>>>>,
}

pub(super) struct CachedToken {
    /// The app the token belongs to: new credentials for the account need a new token.
    app_id: String,
    token: String,
    refresh_at: Instant,
}

pub(super) type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

impl TokenCache {
    pub(super) fn slot(&self, account_id: Uuid) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(account_id).or_default().clone()
    }
}

pub(super) async fn send(
    sender: &Sender,
    account_id: Uuid,
    credentials: &Credentials,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let app_id = credential(credentials, "app_id")?;
    let app_secret = credential(credentials, "app_secret")?;
    let OutboundContent::Text { body } = &message.content else {
        return Err(SendError::permanent(
            "WeChat customer-service messages from Obrol are text only",
        ));
    };
    let slot = sender.wechat_tokens.slot(account_id);
    let token = access_token(sender, &slot, app_id, app_secret).await?;

    let mut url = sender.endpoint(WECHAT_BASE, &["cgi-bin", "message", "custom", "send"])?;
    url.query_pairs_mut().append_pair("access_token", &token);
    let payload = json!({ "touser": message.to, "msgtype": "text", "text": { "content": body } });
    let answer = sender
        .exchange(sender.http.post(url).json(&payload))
        .await?;
    match errcode(&answer)? {
        0 => Ok(Sent {
            provider_message_id: answer.text_at("/msgid"),
        }),
        code if TOKEN_REJECTED.contains(&code) => {
            // Drop the token (unless another send already replaced it); the retry fetches anew.
            let mut cached = slot.lock().await;
            forget(&mut cached, &token);
            Err(SendError::retryable(reason(&answer, code), None))
        }
        BUSY => Err(SendError::retryable(reason(&answer, BUSY), None)),
        code => Err(SendError::permanent(reason(&answer, code))),
    }
}

/// Drops the cached token if it is still `token` (another call may have replaced it).
pub(super) fn forget(cached: &mut Option<CachedToken>, token: &str) {
    if cached.as_ref().is_some_and(|c| c.token == token) {
        *cached = None;
    }
}

/// The account's token: the cached one while it is fresh, else a new one from
/// `GET /cgi-bin/token`.
pub(super) async fn access_token(
    sender: &Sender,
    slot: &Slot,
    app_id: &str,
    app_secret: &str,
) -> Result<String, SendError> {
    let mut cached = slot.lock().await;
    if let Some(fresh) = cached
        .as_ref()
        .filter(|c| c.app_id == app_id && Instant::now() < c.refresh_at)
    {
        return Ok(fresh.token.clone());
    }
    let mut url = sender.endpoint(WECHAT_BASE, &["cgi-bin", "token"])?;
    url.query_pairs_mut()
        .append_pair("grant_type", "client_credential")
        .append_pair("appid", app_id)
        .append_pair("secret", app_secret);
    let answer = sender.exchange(sender.http.get(url)).await?;
    let token = answer
        .body
        .get("access_token")
        .and_then(Json::as_str)
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        let code = errcode(&answer)?;
        let reason = format!("WeChat gave no access token: {}", reason(&answer, code));
        return Err(if code == BUSY {
            SendError::retryable(reason, None)
        } else {
            SendError::permanent(reason)
        });
    };
    // WeChat says 7,200 seconds; a nonsense value must not overflow the clock.
    let lifetime = Duration::from_secs(
        answer
            .body
            .get("expires_in")
            .and_then(Json::as_u64)
            .unwrap_or(7200)
            .min(MAX_LIFETIME_SECS),
    );
    let refresh_at = Instant::now() + lifetime - REFRESH_EARLY.min(lifetime / 2);
    *cached = Some(CachedToken {
        app_id: app_id.to_string(),
        token: token.to_string(),
        refresh_at,
    });
    Ok(token.to_string())
}

/// WeChat's `errcode` (absent means 0). An answer that is not WeChat's JSON, or not HTTP 2xx,
/// fails here.
pub(super) fn errcode(answer: &Answer) -> Result<i64, SendError> {
    if !answer.status.is_success() {
        return Err(SendError::from_status(
            answer.status,
            answer.retry_after,
            describe(None, None, answer.status),
        ));
    }
    if !answer.body.is_object() {
        return Err(SendError::retryable(
            "WeChat's answer could not be read",
            None,
        ));
    }
    Ok(answer
        .body
        .get("errcode")
        .and_then(Json::as_i64)
        .unwrap_or(0))
}

pub(super) fn reason(answer: &Answer, code: i64) -> String {
    let message = answer.body.get("errmsg").and_then(Json::as_str);
    describe(Some(code.to_string()), message, answer.status)
}
