//! The website chat widget's backend (the LIVE_CHAT channel).
//!
//! A visitor's browser opens a session (`POST /widget/{account}/sessions`), which makes an
//! anonymous contact with a LIVE_CHAT identity and returns a visitor token (kept by the
//! widget, stored here only as its sha256; presenting it again resumes the same visitor).
//! The widget then talks over a WebSocket (`GET /widget/{account}/ws?token=...`): the
//! visitor's messages land in the inbox like any channel's, and agents' replies are pushed
//! back as they are written. `GET /widget/{account}/messages` returns the history.
//!
//! Only the websites an Admin listed may use an account's widget (the browser's `Origin`),
//! and each visitor may send at most a burst of 10 messages, then one a second; each address
//! may open at most 20 sessions, then one every 3 seconds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::model::{Content, InboundEvent, InboundMessage};
use super::webhook::WebhookAccount;
use super::ChannelType;
use crate::app::AppState;
use crate::events::EventKind;

/// Token buckets: `capacity` requests at once, then one per `refill_seconds`.
struct Buckets<K> {
    capacity: f64,
    refill_seconds: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: std::hash::Hash + Eq + Copy> Buckets<K> {
    fn new(capacity: f64, refill_seconds: f64) -> Self {
        Self {
            capacity,
            refill_seconds,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; false when there is none.
    fn take(&self, key: K) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        // A bound rather than an eviction policy (see webhook.rs): a flood of keys resets
        // the buckets instead of slowing every request.
        if buckets.len() >= 100_000 {
            buckets.clear();
        }
        let now = Instant::now();
        let (tokens, at) = buckets.entry(key).or_insert((self.capacity, now));
        let refilled =
            (*tokens + at.elapsed().as_secs_f64() / self.refill_seconds).min(self.capacity);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            true
        } else {
            *tokens = refilled;
            false
        }
    }
}

/// This process's widget rate limits.
pub struct Limits {
    messages: Buckets<Uuid>,
    sessions: Buckets<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            messages: Buckets::new(10.0, 1.0),
            sessions: Buckets::new(20.0, 3.0),
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// The live-chat account and the request's allowed origin, or the refusal.
async fn widget_account(
    state: &AppState,
    account: &str,
    headers: &HeaderMap,
) -> Result<(WebhookAccount, String), Response> {
    let not_found = || error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such chat widget");
    let id = Uuid::parse_str(account).map_err(|_| not_found())?;
    let account = match super::webhook::account(state, id).await? {
        Some(account) if account.kind == ChannelType::LiveChat => account,
        _ => return Err(not_found()),
    };
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("");
    if origin.is_empty() || !account.widget_origins.iter().any(|o| o == origin) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "this website is not allowed to use the chat widget; an Admin lists allowed origins \
             with updateLiveChatWidget",
        ));
    }
    Ok((account, origin.to_string()))
}

fn with_cors(mut response: Response, origin: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(origin) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, authorization"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
    }
    response
}

/// CORS preflight for the widget's requests.
pub async fn preflight(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    match widget_account(&state, &account, &headers).await {
        Ok((_, origin)) => with_cors(StatusCode::NO_CONTENT.into_response(), &origin),
        Err(response) => response,
    }
}

#[derive(Deserialize, Default)]
struct SessionRequest {
    /// A token from an earlier session: the same visitor continues.
    token: Option<String>,
    /// What the visitor typed as their name, if the widget asks.
    name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Visitor {
    id: Uuid,
    company_id: Uuid,
    channel_account_id: Uuid,
    contact_id: Uuid,
}

async fn visitor_by_token(state: &AppState, token: &str) -> sqlx::Result<Option<Visitor>> {
    sqlx::query_as("select id, company_id, channel_account_id, contact_id from widget_visitor($1)")
        .bind(crate::auth::tokens::hash(token))
        .fetch_optional(state.db.pool())
        .await
}

pub async fn create_session(
    State(state): State<AppState>,
    Path(account): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (account, origin) = match widget_account(&state, &account, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let request: SessionRequest = if body.is_empty() {
        SessionRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(_) => {
                return with_cors(
                    error(
                        StatusCode::BAD_REQUEST,
                        "VALIDATION",
                        "the body is a JSON object { token?, name? }",
                    ),
                    &origin,
                )
            }
        }
    };
    if let Some(token) = request.token.as_deref() {
        match visitor_by_token(&state, token).await {
            Ok(Some(visitor)) if visitor.channel_account_id == account.id => {
                let body = json!({ "token": token, "visitorId": visitor.id });
                return with_cors(axum::Json(body).into_response(), &origin);
            }
            Ok(_) => {}
            Err(err) => {
                tracing::error!(error = %err, "resuming a widget visitor");
                return with_cors(
                    error(StatusCode::SERVICE_UNAVAILABLE, "INTERNAL", "try again"),
                    &origin,
                );
            }
        }
    }
    let client = client_address(&state.config.channels.trusted_proxies, peer.ip(), &headers);
    if !state.widget_limits.sessions.take(client) {
        return with_cors(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many new chats from this address; wait a few seconds",
            ),
            &origin,
        );
    }
    let name = request
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
        .map(|n| n.chars().take(200).collect::<String>());
    match new_visitor(&state, &account, name).await {
        Ok((visitor, token)) => with_cors(
            (
                StatusCode::CREATED,
                axum::Json(json!({ "token": token, "visitorId": visitor })),
            )
                .into_response(),
            &origin,
        ),
        Err(err) => {
            tracing::error!(error = %err, "creating a widget visitor");
            with_cors(
                error(StatusCode::SERVICE_UNAVAILABLE, "INTERNAL", "try again"),
                &origin,
            )
        }
    }
}

/// An anonymous contact with a LIVE_CHAT identity, and the visitor's token.
async fn new_visitor(
    state: &AppState,
    account: &WebhookAccount,
    name: Option<String>,
) -> sqlx::Result<(Uuid, String)> {
    let (token, token_hash) = crate::auth::tokens::generate("obv_");
    let visitor = Uuid::now_v7();
    let contact = Uuid::now_v7();
    let (first, last) = match name.as_deref().map(|n| n.split_once(' ')) {
        Some(Some((first, last))) => (Some(first.to_string()), Some(last.trim().to_string())),
        Some(None) => (name.clone(), None),
        None => (None, None),
    };
    let mut tx = state.db.tenant(account.company_id).await?;
    sqlx::query(
        "insert into contacts (id, company_id, first_name, last_name) values ($1, $2, $3, $4)",
    )
    .bind(contact)
    .bind(account.company_id)
    .bind(first)
    .bind(last)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into contact_identities (id, company_id, contact_id, channel, external_id)
         values ($1, $2, $3, 'LIVE_CHAT', $4)",
    )
    .bind(Uuid::now_v7())
    .bind(account.company_id)
    .bind(contact)
    .bind(visitor.to_string())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into widget_visitors (id, company_id, channel_account_id, contact_id, token_hash)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(visitor)
    .bind(account.company_id)
    .bind(account.id)
    .bind(contact)
    .bind(token_hash)
    .execute(&mut *tx)
    .await?;
    crate::contacts::store::record_activity(
        &mut tx,
        account.company_id,
        &[contact],
        "CREATED",
        None,
        &json!({ "source": "LIVE_CHAT" }),
    )
    .await?;
    tx.commit().await?;
    Ok((visitor, token))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// A visitor's messages, oldest first (never internal notes).
async fn history(state: &AppState, visitor: &Visitor) -> sqlx::Result<Vec<Json>> {
    let mut tx = state.db.tenant(visitor.company_id).await?;
    let rows: Vec<(Uuid, String, String, Json, chrono::DateTime<Utc>)> = sqlx::query_as(
        "select id, direction, preview, content, created_at from (
             select m.id, m.direction, m.preview, m.content, m.created_at from messages m
             where m.contact_id = $1 and m.direction <> 'INTERNAL'
             order by m.id desc limit 100) recent
         order by id",
    )
    .bind(visitor.contact_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|(id, direction, text, mut content, at)| {
            with_link(state, visitor, &mut content);
            frame(id, &direction, &text, content, at)
        })
        .collect())
}

/// A file the business sent gets a link the visitor's browser can open.
fn with_link(state: &AppState, visitor: &Visitor, content: &mut Json) {
    crate::conversations::attachments::with_link(
        state,
        visitor.company_id,
        content,
        crate::conversations::attachments::SHARE_TTL,
    );
}

fn frame(id: Uuid, direction: &str, text: &str, content: Json, at: chrono::DateTime<Utc>) -> Json {
    let from = if direction == "INBOUND" {
        "visitor"
    } else {
        "business"
    };
    json!({ "type": "message", "id": id, "from": from, "text": text, "content": content, "at": at })
}

pub async fn messages(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (account, origin) = match widget_account(&state, &account, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let visitor = match bearer(&headers) {
        Some(token) => visitor_by_token(&state, token).await.ok().flatten(),
        None => None,
    };
    let Some(visitor) = visitor.filter(|v| v.channel_account_id == account.id) else {
        return with_cors(
            error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "open a session first",
            ),
            &origin,
        );
    };
    match history(&state, &visitor).await {
        Ok(list) => with_cors(
            axum::Json(json!({ "messages": list })).into_response(),
            &origin,
        ),
        Err(err) => {
            tracing::error!(error = %err, "reading a visitor's messages");
            with_cors(
                error(StatusCode::SERVICE_UNAVAILABLE, "INTERNAL", "try again"),
                &origin,
            )
        }
    }
}

#[derive(Deserialize)]
pub struct SocketQuery {
    token: String,
}

pub async fn socket(
    State(state): State<AppState>,
    Path(account): Path<String>,
    Query(query): Query<SocketQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let (account, _) = match widget_account(&state, &account, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let visitor = match visitor_by_token(&state, &query.token).await {
        Ok(Some(visitor)) if visitor.channel_account_id == account.id => visitor,
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "open a session first",
            )
        }
    };
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(state, visitor, socket))
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    /// The widget's own id for the message: sending it twice stores it once.
    id: Option<String>,
    text: Option<String>,
}

async fn send_json(socket: &mut WebSocket, value: Json) -> bool {
    socket
        .send(WsMessage::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn serve(state: AppState, visitor: Visitor, mut socket: WebSocket) {
    let mut events = state.events.subscribe_company(visitor.company_id);
    if let Err(err) = seen(&state, &visitor).await {
        tracing::warn!(error = %err, "recording a visitor's visit");
    }
    if !send_json(
        &mut socket,
        json!({ "type": "ready", "visitorId": visitor.id }),
    )
    .await
    {
        return;
    }
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { break };
                let text = match message {
                    WsMessage::Text(text) => text.to_string(),
                    WsMessage::Close(_) => break,
                    _ => continue,
                };
                let reply = handle(&state, &visitor, &text).await;
                if !send_json(&mut socket, reply).await {
                    break;
                }
            }
            event = events.recv() => {
                let event = match event {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                };
                if event.company_id != visitor.company_id {
                    continue;
                }
                // The account was disconnected or its allowed websites changed: the visitor
                // reconnects (and is checked again) or is refused.
                if let EventKind::ChannelAccountChanged { account_id } = &event.kind {
                    if *account_id == visitor.channel_account_id {
                        let _ = socket.send(WsMessage::Close(None)).await;
                        break;
                    }
                    continue;
                }
                let EventKind::MessageAdded { message_id, contact_id: Some(contact), message, .. } = event.kind else {
                    continue;
                };
                if contact != visitor.contact_id {
                    continue;
                }
                if let Some(frame) = outbound_frame(&state, &visitor, message_id, message).await {
                    if !send_json(&mut socket, frame).await {
                        break;
                    }
                }
            }
        }
    }
}

async fn seen(state: &AppState, visitor: &Visitor) -> sqlx::Result<()> {
    let mut tx = state.db.tenant(visitor.company_id).await?;
    sqlx::query("update widget_visitors set last_seen_at = now() where id = $1")
        .bind(visitor.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// A business message for the visitor (replies, never notes; the visitor's own messages are
/// acknowledged instead).
async fn outbound_frame(
    state: &AppState,
    visitor: &Visitor,
    id: Uuid,
    carried: Option<Box<crate::conversations::MessageRow>>,
) -> Option<Json> {
    let row = match carried {
        Some(row) => *row,
        None => {
            let mut tx = state.db.tenant(visitor.company_id).await.ok()?;
            let row = crate::conversations::message_by_id(&mut tx, id)
                .await
                .ok()??;
            tx.commit().await.ok()?;
            row
        }
    };
    (row.direction == "OUTBOUND").then(|| {
        let mut content = row.content;
        with_link(state, visitor, &mut content);
        frame(row.id, "OUTBOUND", &row.preview, content, row.created_at)
    })
}

async fn handle(state: &AppState, visitor: &Visitor, text: &str) -> Json {
    let refuse = |code: &str, message: &str, id: Option<&str>| json!({ "type": "error", "code": code, "message": message, "id": id });
    let Ok(incoming) = serde_json::from_str::<Incoming>(text) else {
        return refuse(
            "VALIDATION",
            "send {\"type\": \"message\", \"id\": \"...\", \"text\": \"...\"}",
            None,
        );
    };
    if incoming.kind != "message" {
        return refuse(
            "VALIDATION",
            "the widget sends messages: {\"type\": \"message\", ...}",
            None,
        );
    }
    let client_id = incoming
        .id
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    let body = incoming.text.as_deref().map(str::trim).unwrap_or("");
    if body.is_empty() || body.chars().count() > 4096 {
        return refuse(
            "VALIDATION",
            "a message is 1 to 4,096 characters",
            Some(&client_id),
        );
    }
    if !state.widget_limits.messages.take(visitor.id) {
        return refuse(
            "RATE_LIMITED",
            "you are sending messages too fast; wait a moment",
            Some(&client_id),
        );
    }
    let message = InboundMessage {
        provider_message_id: format!("{}:{client_id}", visitor.id),
        from: visitor.id.to_string(),
        profile_name: None,
        phone: None,
        sent_at: Utc::now(),
        content: Content::Text {
            body: body.to_string(),
        },
    };
    let stored = crate::conversations::ingest::store(
        state,
        visitor.company_id,
        visitor.channel_account_id,
        ChannelType::LiveChat,
        vec![InboundEvent::Message(message)],
    )
    .await;
    match stored {
        Ok(summary) => {
            json!({ "type": "ack", "id": client_id, "messageId": summary.stored.first() })
        }
        Err(err) => {
            tracing::error!(error = %err, "storing a widget message");
            refuse("INTERNAL", "not stored; send it again", Some(&client_id))
        }
    }
}

/// The visitor's address: the peer's, unless the peer is a trusted proxy, in which case the
/// nearest address in `X-Forwarded-For` that is not a trusted proxy (addresses further left
/// were written by the client and prove nothing).
fn client_address(
    trusted: &[std::net::IpAddr],
    peer: std::net::IpAddr,
    headers: &HeaderMap,
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    // From the right: our proxies' entries are skipped; the first other one is the client.
    // An entry that is not an address means whatever lies left of it is the client's word.
    for entry in entries.into_iter().rev() {
        match entry.trim().parse::<std::net::IpAddr>() {
            Ok(address) if trusted.contains(&address) => continue,
            Ok(address) => return address,
            Err(_) => return peer,
        }
    }
    peer
}

#[cfg(test)]
mod address_tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let proxy: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let peer_outside: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.7, 192.0.2.1".parse().unwrap(),
        );
        // Straight from the internet, the header is the client's word: ignored.
        assert_eq!(
            client_address(&[proxy], peer_outside, &headers),
            peer_outside
        );
        // From the proxy, the address the proxy saw (the last one) is the client's.
        assert_eq!(
            client_address(&[proxy], proxy, &headers),
            "192.0.2.1".parse::<std::net::IpAddr>().unwrap()
        );
        // Chained trusted proxies are skipped.
        let edge: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_address(&[proxy, edge], proxy, &headers),
            "198.51.100.7".parse::<std::net::IpAddr>().unwrap()
        );
        // No header: the proxy's own address.
        assert_eq!(client_address(&[proxy], proxy, &HeaderMap::new()), proxy);
        // A client's junk entry cannot hide the address the proxy saw.
        let mut junk = HeaderMap::new();
        junk.insert("x-forwarded-for", "1.2.3.4, x, 192.0.2.1".parse().unwrap());
        assert_eq!(
            client_address(&[proxy], proxy, &junk),
            "192.0.2.1".parse::<std::net::IpAddr>().unwrap()
        );
    }
}
