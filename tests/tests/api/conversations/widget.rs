//! The website chat widget's backend: allowed origins, visitor sessions, messages both ways
//! over a WebSocket, history, and the per-visitor rate limit.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use obrol_tests::error_code;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::*;

const SHOP: &str = "https://shop.example.com";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(
    base: &str,
    account: &str,
    token: &str,
    origin: &str,
) -> Result<Socket, String> {
    let url = format!(
        "{}/widget/{account}/ws?token={token}",
        base.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Origin", origin.parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
        .map_err(|e| e.to_string())
}

async fn next(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(wait, socket.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).ok();
        }
    }
}

async fn say(socket: &mut Socket, id: &str, text: &str) {
    socket
        .send(Message::text(
            json!({ "type": "message", "id": id, "text": text }).to_string(),
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn website_visitors_chat_with_agents_from_allowed_origins_only() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Widget Shop").await;
    let account = connect(&app, &fake, &admin, "LIVE_CHAT").await;
    let update = "mutation($a: ID!, $o: [String!]!) {
        updateLiveChatWidget(channelAccountId: $a, allowedOrigins: $o) { widgetOrigins } }";
    let bad = app
        .gql(
            Some(&admin.token),
            update,
            json!({ "a": account.id, "o": ["shop.example.com/page"] }),
        )
        .await;
    assert_eq!(error_code(&bad), Some("VALIDATION"));
    let set = app
        .gql_ok(
            Some(&admin.token),
            update,
            json!({ "a": account.id, "o": [format!("{SHOP}/")] }),
        )
        .await;
    assert_eq!(set["updateLiveChatWidget"]["widgetOrigins"], json!([SHOP]));

    // Sessions: only from the listed website.
    let sessions = app.url(&format!("/widget/{}/sessions", account.id));
    for origin in [Some("https://evil.example.com"), None] {
        let mut request = app.http.post(&sessions).json(&json!({}));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        assert_eq!(request.send().await.unwrap().status().as_u16(), 403);
    }
    let opened = app
        .http
        .post(&sessions)
        .header("Origin", SHOP)
        .json(&json!({ "name": "Wayan Visitor" }))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status().as_u16(), 201);
    assert_eq!(
        opened.headers()["access-control-allow-origin"]
            .to_str()
            .unwrap(),
        SHOP
    );
    let session: Value = opened.json().await.unwrap();
    let token = session["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("obv_"));
    assert!(open_socket(
        &app.server.url,
        &account.id,
        &token,
        "https://evil.example.com"
    )
    .await
    .is_err());
    assert!(open_socket(&app.server.url, &account.id, "obv_wrong", SHOP)
        .await
        .is_err());

    let mut socket = open_socket(&app.server.url, &account.id, &token, SHOP)
        .await
        .unwrap();
    assert_eq!(
        next(&mut socket, Duration::from_secs(5)).await.unwrap()["type"],
        "ready"
    );
    say(&mut socket, "c1", "Hi, do you ship to Bali?").await;
    let ack = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["id"], "c1");
    assert!(ack["messageId"].is_string());
    // The widget retries after a dropped connection: the same id is stored once.
    say(&mut socket, "c1", "Hi, do you ship to Bali?").await;
    let again = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(again["type"], "ack");
    assert!(again["messageId"].is_null());

    let seen = conversations(&app, &admin, json!({ "channels": ["LIVE_CHAT"] })).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["contact"]["name"], "Wayan Visitor");
    assert_eq!(messages(&seen[0]).len(), 1);
    let conversation = seen[0]["id"].as_str().unwrap();

    // An agent's reply reaches the visitor at once; a note never does.
    app.gql_ok(
        Some(&admin.token),
        "mutation($input: AddNoteInput!) { addNote(input: $input) { id } }",
        json!({ "input": { "conversationId": conversation, "text": "VIP, be quick" } }),
    )
    .await;
    let reply = app
        .gql_ok(
            Some(&admin.token),
            "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id status } }",
            json!({ "input": { "conversationId": conversation, "text": "Yes, in 2 days." } }),
        )
        .await;
    assert_eq!(
        reply["sendMessage"]["status"], "SENT",
        "no provider: sent on the socket"
    );
    let pushed = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(pushed["type"], "message");
    assert_eq!(pushed["from"], "business");
    assert_eq!(pushed["text"], "Yes, in 2 days.");

    // A returning visitor keeps their history.
    let resumed: Value = app
        .http
        .post(&sessions)
        .header("Origin", SHOP)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["visitorId"], session["visitorId"]);
    let history: Value = app
        .http
        .get(app.url(&format!("/widget/{}/messages", account.id)))
        .header("Origin", SHOP)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Hi, do you ship to Bali?", "Yes, in 2 days."]);

    // A burst beyond 10 messages is refused with RATE_LIMITED.
    let mut limited = 0;
    for i in 0..15 {
        say(&mut socket, &format!("burst{i}"), "spam?").await;
        let answer = next(&mut socket, Duration::from_secs(5)).await.unwrap();
        if answer["code"] == "RATE_LIMITED" {
            limited += 1;
        }
    }
    assert!(limited >= 5, "{limited} of 15 refused");
}
