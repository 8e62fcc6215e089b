//! A local stand-in for every messaging provider's API, for black-box tests: `obrol` is
//! started with `OBROL_CHANNEL_API_BASE` pointing here. It records every request and answers
//! as the provider documents (a message id per send), or with replies a test scripted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// One request as the provider received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A field of a form-encoded body.
    pub fn form(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Scripted {
    path_contains: String,
    status: u16,
    body: Value,
    headers: Vec<(String, String)>,
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Scripted>>,
    files: Mutex<Vec<(String, String, Vec<u8>)>>,
    counter: AtomicU64,
}

#[derive(Clone)]
pub struct FakeProvider {
    pub url: String,
    inner: Arc<Inner>,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let router = Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, inner }
    }

    /// The next request whose path contains `path_contains` gets this answer instead.
    pub fn script(&self, path_contains: &str, status: u16, body: Value, headers: &[(&str, &str)]) {
        self.inner.script.lock().unwrap().push_back(Scripted {
            path_contains: path_contains.to_string(),
            status,
            body,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
    }

    /// GET requests whose path contains `path_contains` get this file, every time (a
    /// provider's media storage).
    pub fn serve_file(&self, path_contains: &str, content_type: &str, bytes: Vec<u8>) {
        self.inner.files.lock().unwrap().push((
            path_contains.to_string(),
            content_type.to_string(),
            bytes,
        ));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Requests whose path contains `part`.
    pub fn requests_to(&self, part: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.contains(part))
            .collect()
    }

    /// Waits until `count` requests to paths containing `part` arrived (or `wait` passed).
    pub async fn wait_for(&self, part: &str, count: usize, wait: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let seen = self.requests_to(part);
            if seen.len() >= count || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let recorded = Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
    };
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.requests.lock().unwrap().push(recorded);
    if method == Method::GET {
        let files = inner.files.lock().unwrap();
        if let Some((_, content_type, bytes)) = files.iter().find(|(p, _, _)| path.contains(p)) {
            return (
                [(axum::http::header::CONTENT_TYPE, content_type.clone())],
                bytes.clone(),
            )
                .into_response();
        }
    }
    let scripted = {
        let mut script = inner.script.lock().unwrap();
        let at = script.iter().position(|s| path.contains(&s.path_contains));
        at.and_then(|i| script.remove(i))
    };
    if let Some(s) = scripted {
        let mut response = (
            StatusCode::from_u16(s.status).unwrap_or(StatusCode::OK),
            axum::Json(s.body),
        )
            .into_response();
        for (k, v) in s.headers {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                axum::http::HeaderValue::from_str(&v),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        return response;
    }
    let n = inner.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let reply = if path.ends_with("/messages") {
        if json_body["messaging_product"] == "whatsapp" {
            json!({ "messaging_product": "whatsapp",
                    "contacts": [{ "input": json_body["to"], "wa_id": json_body["to"] }],
                    "messages": [{ "id": format!("wamid.fake{n}") }] })
        } else {
            json!({ "recipient_id": json_body["recipient"]["id"], "message_id": format!("m_fake{n}") })
        }
    } else if path.contains("/bot") && path.ends_with("/setWebhook") {
        json!({ "ok": true, "result": true, "description": "Webhook was set" })
    } else if path.contains("/bot") {
        json!({ "ok": true, "result": { "message_id": n, "date": 1_700_000_000,
                "chat": { "id": json_body["chat_id"] } } })
    } else if path == "/v2/bot/message/push" {
        json!({ "sentMessages": [{ "id": format!("{}", 500_000 + n), "quoteToken": "q" }] })
    } else if path == "/pa/get_account_info" {
        json!({ "status": 0, "status_message": "ok", "id": "pa:1", "name": "Obrol Bot" })
    } else if path == "/pa/send_message" {
        json!({ "status": 0, "status_message": "ok", "message_token": 5_000_000_000u64 + n })
    } else if path == "/pa/set_webhook" {
        json!({ "status": 0, "status_message": "ok", "event_types": ["delivered", "seen"] })
    } else if path == "/cgi-bin/token" {
        json!({ "access_token": "wx-access-token", "expires_in": 7200 })
    } else if path.starts_with("/cgi-bin/") {
        json!({ "errcode": 0, "errmsg": "ok", "msgid": 9_000_000 + n })
    } else if path.ends_with("/Messages.json") {
        return (
            StatusCode::CREATED,
            axum::Json(json!({ "sid": format!("SMfake{n}"), "status": "queued" })),
        )
            .into_response();
    } else {
        json!({})
    };
    axum::Json(reply).into_response()
}
