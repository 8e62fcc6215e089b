//! `/webhooks/{channel}/{account id}`: where providers deliver messages and statuses.
//!
//! The route finds the account (and its decrypted credentials, kept in memory for a short
//! while and dropped on every node when the account changes), lets the provider's adapter
//! verify and parse the request, and stores the result in one transaction before it
//! acknowledges. A bad signature is answered 401 and nothing is stored; a database failure
//! is answered 500 so that the provider delivers again (storing is idempotent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::inbound::{self, Credentials, Reply, WebhookError, WebhookRequest};
use super::ChannelType;
use crate::app::AppState;

/// How long decrypted credentials stay in memory without being read again. Changes reach
/// every node at once through the event bus; this bounds a lost notification.
const CACHE_FOR: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct WebhookAccount {
    pub id: Uuid,
    pub company_id: Uuid,
    pub kind: ChannelType,
    pub credentials: Arc<Credentials>,
    /// Live chat: the websites allowed to open the widget.
    pub widget_origins: Arc<Vec<String>>,
}

/// Connected accounts by id, with when they were read.
#[derive(Default)]
pub struct AccountCache {
    entries: Mutex<HashMap<Uuid, (Instant, Option<WebhookAccount>)>>,
}

impl AccountCache {
    pub fn forget(&self, id: Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&id);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    fn get(&self, id: Uuid) -> Option<Option<WebhookAccount>> {
        let entries = self.entries.lock().ok()?;
        let (at, account) = entries.get(&id)?;
        (at.elapsed() < CACHE_FOR).then(|| account.clone())
    }

    fn put(&self, id: Uuid, account: Option<WebhookAccount>) {
        if let Ok(mut entries) = self.entries.lock() {
            // A bound, not an eviction policy: far more accounts than any deployment has
            // means someone is trying ids; start afresh rather than scan.
            if entries.len() >= 50_000 {
                entries.clear();
            }
            entries.insert(id, (Instant::now(), account));
        }
    }
}

type AccountFacts = (Uuid, String, String, Vec<u8>, Vec<String>);

/// The account behind a webhook URL, if it exists and is connected.
pub async fn account(state: &AppState, id: Uuid) -> Result<Option<WebhookAccount>, Response> {
    if let Some(cached) = state.webhook_accounts.get(id) {
        return Ok(cached);
    }
    let facts: Option<AccountFacts> = sqlx::query_as(
        "select company_id, type, status, credentials_sealed, widget_origins
         from channel_account_for_webhook($1)",
    )
    .bind(id)
    .fetch_optional(state.db.pool())
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "reading a webhook's channel account");
        (StatusCode::SERVICE_UNAVAILABLE, "try again later").into_response()
    })?;
    let account = match facts {
        Some((company_id, kind, status, sealed, widget_origins)) if status == "ACTIVE" => {
            let credentials: Credentials = super::open_credentials(&state.sealer, &sealed)
                .map_err(|err| {
                    tracing::error!(error = %err, account = %id, "reading channel credentials");
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
                })?;
            Some(WebhookAccount {
                id,
                company_id,
                kind: ChannelType::from_db(&kind),
                credentials: Arc::new(credentials),
                widget_origins: Arc::new(widget_origins),
            })
        }
        _ => None,
    };
    // Unknown ids are not remembered: random ids cannot fill the cache.
    if account.is_some() {
        state.webhook_accounts.put(id, account.clone());
    }
    Ok(account)
}

/// The URL the provider called, as providers that sign it (Twilio) computed it: the
/// configured public URL, or the Host the request came to.
fn called_url(state: &AppState, headers: &HeaderMap, uri: &Uri) -> String {
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(uri.path());
    match &state.config.channels.public_url {
        Some(base) => format!("{}{}", base.trim_end_matches('/'), path_and_query),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}{path_and_query}")
        }
    }
}

pub async fn receive(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such channel account").into_response();
    let Ok(id) = Uuid::parse_str(&id) else {
        return not_found();
    };
    let account = match account(&state, id).await {
        Ok(Some(account)) if account.kind.slug() == slug => account,
        Ok(_) => return not_found(),
        Err(response) => return response,
    };
    let url = called_url(&state, &headers, &uri);
    let request = WebhookRequest {
        method: &method,
        url: &url,
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    let events = match inbound::receive(account.kind, &account.credentials, &request) {
        Ok(Reply::Challenge(text)) => {
            return ([(header::CONTENT_TYPE, "text/plain")], text).into_response()
        }
        Ok(Reply::Events(events)) => events,
        Err(WebhookError::Unauthorized(reason)) => {
            metrics::counter!("obrol_webhooks_rejected_total", "channel" => slug, "why" => "signature")
                .increment(1);
            return (StatusCode::UNAUTHORIZED, reason).into_response();
        }
        Err(WebhookError::BadRequest(reason)) => {
            metrics::counter!("obrol_webhooks_rejected_total", "channel" => slug, "why" => "payload")
                .increment(1);
            return (StatusCode::BAD_REQUEST, reason).into_response();
        }
        Err(WebhookError::MethodNotAllowed) => {
            return StatusCode::METHOD_NOT_ALLOWED.into_response()
        }
    };
    if !events.is_empty() {
        if let Err(err) = store(&state, &account, events).await {
            tracing::error!(error = %err, account = %account.id, "storing a webhook delivery");
            // The provider delivers again; storing is idempotent.
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "not stored; deliver again",
            )
                .into_response();
        }
    }
    let (content_type, ack) = inbound::acknowledgement(account.kind);
    ([(header::CONTENT_TYPE, content_type)], ack).into_response()
}

async fn store(
    state: &AppState,
    account: &WebhookAccount,
    events: Vec<crate::channels::model::InboundEvent>,
) -> sqlx::Result<()> {
    let summary = crate::conversations::ingest::store(
        state,
        account.company_id,
        account.id,
        account.kind,
        events,
    )
    .await?;
    metrics::counter!("obrol_webhook_messages_total").increment(summary.stored.len() as u64);
    if summary.duplicates > 0 {
        metrics::counter!("obrol_webhook_duplicates_total").increment(summary.duplicates as u64);
    }
    Ok(())
}
