//! Conversations across the nine channels: webhooks as each provider sends them, replies
//! checked at a fake provider, windows, routing and real-time delivery.

mod inbound;
mod media;
mod outbound;
mod routing;
mod widget;

use std::time::Duration;

use obrol_tests::fake_provider::FakeProvider;
use obrol_tests::{sign, Session, TestApp};
use serde_json::{json, Value};

pub const CONNECT: &str = "mutation($input: ConnectChannelInput!) {
    connectChannel(input: $input) { id type webhookUrl } }";

pub const CONVERSATIONS: &str = "query($filter: ConversationFilter) {
    conversations(filter: $filter, first: 20) { totalCount edges { node {
        id status source unreadCount lastMessagePreview awaitingReplySince queued
        channelAccount { id type } team { id name } assignee { id }
        contact { id name phone }
        messages(first: 20) { edges { node {
            id direction senderType text content status failureReason providerMessageId } } }
    } } } }";

/// A connected channel account and the secrets its provider signs with.
#[derive(Clone, Debug)]
pub struct Account {
    pub kind: &'static str,
    pub slug: &'static str,
    pub id: String,
    pub credentials: Value,
    /// Telegram's secret token, learnt from the setWebhook call at the fake provider.
    pub telegram_secret: Option<String>,
}

pub const KINDS: [(&str, &str); 8] = [
    ("WHATSAPP", "whatsapp"),
    ("INSTAGRAM", "instagram"),
    ("MESSENGER", "messenger"),
    ("WECHAT", "wechat"),
    ("LINE", "line"),
    ("TELEGRAM", "telegram"),
    ("VIBER", "viber"),
    ("SMS", "sms"),
];

pub fn credentials(kind: &str) -> Value {
    match kind {
        "WHATSAPP" => json!({ "access_token": "wa-token", "phone_number_id": "106540352242922",
                              "app_secret": "wa-app-secret", "verify_token": "wa-verify" }),
        "INSTAGRAM" => {
            json!({ "access_token": "ig-token", "instagram_account_id": "17841400000000001",
                               "app_secret": "ig-app-secret", "verify_token": "ig-verify" })
        }
        "MESSENGER" => json!({ "page_access_token": "fb-token", "page_id": "104329118200001",
                               "app_secret": "fb-app-secret", "verify_token": "fb-verify" }),
        "WECHAT" => {
            json!({ "app_id": "wx1234567890abcdef", "app_secret": "wx-secret", "token": "wx-token" })
        }
        "LINE" => json!({ "channel_id": "1654000001", "channel_access_token": "line-token",
                          "channel_secret": "line-channel-secret" }),
        "TELEGRAM" => json!({ "bot_token": "7000000001:AAH-telegram-token" }),
        "VIBER" => json!({ "auth_token": "4453b6ac-viber-token" }),
        "SMS" => json!({ "account_sid": "AC00000000000000000000000000000001",
                         "auth_token": "twilio-auth-token", "phone_number": "+14155550100" }),
        _ => json!({}),
    }
}

/// A server whose provider calls go to a fake provider.
pub async fn spawn() -> (TestApp, FakeProvider) {
    let fake = FakeProvider::start().await;
    let app = TestApp::spawn_with(&[("OBROL_CHANNEL_API_BASE", fake.url.clone())]).await;
    (app, fake)
}

pub async fn connect(
    app: &TestApp,
    fake: &FakeProvider,
    admin: &Session,
    kind: &'static str,
) -> Account {
    let slug = KINDS
        .iter()
        .chain([("LIVE_CHAT", "live-chat")].iter())
        .find(|(k, _)| *k == kind)
        .unwrap()
        .1;
    let data = app
        .gql_ok(
            Some(&admin.token),
            CONNECT,
            json!({ "input": { "type": kind, "name": format!("Our {slug}"), "credentials": credentials(kind) } }),
        )
        .await;
    let id = data["connectChannel"]["id"].as_str().unwrap().to_string();
    let telegram_secret = if kind == "TELEGRAM" {
        let calls = fake
            .wait_for("/setWebhook", 1, Duration::from_secs(10))
            .await;
        let call = calls
            .iter()
            .find(|c| c.json()["url"].as_str().unwrap_or("").ends_with(&id))
            .expect("obrol registers the Telegram webhook with a secret token");
        Some(call.json()["secret_token"].as_str().unwrap().to_string())
    } else {
        None
    };
    Account {
        kind,
        slug,
        id,
        credentials: credentials(kind),
        telegram_secret,
    }
}

/// One webhook request, as the provider would send it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Account {
    pub fn path(&self) -> String {
        format!("/webhooks/{}/{}", self.slug, self.id)
    }

    fn secret(&self, key: &str) -> String {
        self.credentials[key].as_str().unwrap().to_string()
    }

    /// A contact's text message `n` (ids derive from `n`, so the same `n` is a redelivery),
    /// sent `ts` (unix seconds).
    pub fn text(&self, app: &TestApp, sender: u32, n: u64, text: &str, ts: i64) -> Delivery {
        let json_body = |value: Value| value.to_string().into_bytes();
        match self.kind {
            "WHATSAPP" => self.meta(json_body(json!({
                "object": "whatsapp_business_account",
                "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550783881",
                                  "phone_number_id": self.secret("phone_number_id") },
                    "contacts": [{ "profile": { "name": format!("Ana Lima {sender}") },
                                   "wa_id": format!("62812000{sender:05}") }],
                    "messages": [{ "from": format!("62812000{sender:05}"),
                                   "id": format!("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA{n}"),
                                   "timestamp": ts.to_string(), "type": "text",
                                   "text": { "body": text } }]
                } }] }]
            }))),
            "MESSENGER" | "INSTAGRAM" => {
                let (object, own) = if self.kind == "MESSENGER" {
                    ("page", self.secret("page_id"))
                } else {
                    ("instagram", self.secret("instagram_account_id"))
                };
                self.meta(json_body(json!({
                    "object": object,
                    "entry": [{ "id": own, "time": ts * 1000, "messaging": [{
                        "sender": { "id": format!("2490000000{sender:05}") },
                        "recipient": { "id": own },
                        "timestamp": ts * 1000,
                        "message": { "mid": format!("m_AbCdEf{n}"), "text": text }
                    }] }]
                })))
            }
            "TELEGRAM" => Delivery {
                query: String::new(),
                headers: vec![(
                    "X-Telegram-Bot-Api-Secret-Token".into(),
                    self.telegram_secret.clone().unwrap(),
                )],
                content_type: "application/json",
                body: json_body(json!({
                    "update_id": 900_000 + n,
                    "message": {
                        "message_id": n,
                        "from": { "id": 51_000 + sender as u64, "is_bot": false,
                                  "first_name": "Ana", "last_name": format!("Lima {sender}"),
                                  "language_code": "en" },
                        "chat": { "id": 51_000 + sender as u64, "first_name": "Ana", "type": "private" },
                        "date": ts,
                        "text": text
                    }
                })),
            },
            "LINE" => {
                let body = json_body(json!({
                    "destination": "U0000000000000000000000000000000f",
                    "events": [{
                        "type": "message",
                        "message": { "type": "text", "id": format!("{}", 468_789_000 + n), "text": text },
                        "webhookEventId": format!("01FZ74A0TDDPYRVKNK77XKC3Z{n}"),
                        "deliveryContext": { "isRedelivery": false },
                        "timestamp": ts * 1000,
                        "source": { "type": "user", "userId": format!("U4af4980629{sender:022}") },
                        "replyToken": "b60d432864f44d079f6d8efe86cf404b",
                        "mode": "active"
                    }]
                }));
                Delivery {
                    query: String::new(),
                    headers: vec![(
                        "X-Line-Signature".into(),
                        sign::line(&self.secret("channel_secret"), &body),
                    )],
                    content_type: "application/json",
                    body,
                }
            }
            "VIBER" => {
                let body = json_body(json!({
                    "event": "message",
                    "timestamp": ts * 1000,
                    "chat_hostname": "SN-CHAT-05_",
                    "message_token": 4_912_661_846_655_238_145u64 + n,
                    "sender": { "id": format!("01234567890A{sender:04}="), "name": format!("Ana Lima {sender}"),
                                "language": "en", "country": "ID", "api_version": 1 },
                    "message": { "text": text, "type": "text" },
                    "silent": false
                }));
                Delivery {
                    query: String::new(),
                    headers: vec![(
                        "X-Viber-Content-Signature".into(),
                        sign::viber(&self.secret("auth_token"), &body),
                    )],
                    content_type: "application/json",
                    body,
                }
            }
            "WECHAT" => {
                let (timestamp, nonce) = (ts.to_string(), format!("{}", 1_000_000 + n));
                let signature = sign::wechat(&self.secret("token"), &timestamp, &nonce);
                let from = format!("oUpF8uMuAJO_M2pxb1Q9zNjWeS{sender:02}");
                let body = format!(
                    "<xml><ToUserName><![CDATA[gh_3ad31d7a4e5c]]></ToUserName>\
                     <FromUserName><![CDATA[{from}]]></FromUserName>\
                     <CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
                     <Content><![CDATA[{text}]]></Content><MsgId>{}</MsgId></xml>",
                    23_637_352_235_060_880u64 + n
                );
                Delivery {
                    query: format!(
                        "signature={signature}&timestamp={timestamp}&nonce={nonce}&openid={from}"
                    ),
                    headers: vec![],
                    content_type: "text/xml",
                    body: body.into_bytes(),
                }
            }
            "SMS" => {
                let from = format!("+62812000{sender:05}");
                let sid = format!("SM{n:032}");
                let account = self.secret("account_sid");
                let to = self.secret("phone_number");
                let params: Vec<(&str, &str)> = vec![
                    ("ToCountry", "US"),
                    ("SmsMessageSid", &sid),
                    ("NumMedia", "0"),
                    ("SmsSid", &sid),
                    ("SmsStatus", "received"),
                    ("Body", text),
                    ("To", &to),
                    ("NumSegments", "1"),
                    ("MessageSid", &sid),
                    ("AccountSid", &account),
                    ("From", &from),
                    ("ApiVersion", "2010-04-01"),
                ];
                let url = app.url(&self.path());
                let signature = sign::twilio(&self.secret("auth_token"), &url, &params);
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params.iter())
                    .finish();
                Delivery {
                    query: String::new(),
                    headers: vec![("X-Twilio-Signature".into(), signature)],
                    content_type: "application/x-www-form-urlencoded",
                    body: body.into_bytes(),
                }
            }
            other => panic!("no webhook for {other}"),
        }
    }

    fn meta(&self, body: Vec<u8>) -> Delivery {
        Delivery {
            query: String::new(),
            headers: vec![(
                "X-Hub-Signature-256".into(),
                sign::meta(&self.secret("app_secret"), &body),
            )],
            content_type: "application/json",
            body,
        }
    }

    /// A Meta-style signed JSON delivery (WhatsApp statuses, template reviews ...).
    pub fn meta_json(&self, value: Value) -> Delivery {
        self.meta(value.to_string().into_bytes())
    }

    /// A signed JSON body for LINE or Viber.
    pub fn signed_json(&self, value: Value) -> Delivery {
        let body = value.to_string().into_bytes();
        let (header, signature) = match self.kind {
            "LINE" => (
                "X-Line-Signature",
                sign::line(&self.secret("channel_secret"), &body),
            ),
            "VIBER" => (
                "X-Viber-Content-Signature",
                sign::viber(&self.secret("auth_token"), &body),
            ),
            _ => return self.meta(body),
        };
        Delivery {
            query: String::new(),
            headers: vec![(header.into(), signature)],
            content_type: "application/json",
            body,
        }
    }

    /// A signed Twilio form post.
    pub fn twilio_form(&self, app: &TestApp, params: &[(&str, &str)]) -> Delivery {
        let url = app.url(&self.path());
        let signature = sign::twilio(&self.secret("auth_token"), &url, params);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        Delivery {
            query: String::new(),
            headers: vec![("X-Twilio-Signature".into(), signature)],
            content_type: "application/x-www-form-urlencoded",
            body: body.into_bytes(),
        }
    }
}

impl Delivery {
    /// The same request with its signature (or secret token) spoiled.
    pub fn tampered(&self) -> Delivery {
        let mut copy = self.clone();
        if copy.headers.is_empty() {
            copy.query = copy.query.replacen("signature=", "signature=0", 1);
        } else {
            let value = &mut copy.headers[0].1;
            let last = value.pop().unwrap_or('x');
            value.push(if last == 'a' { 'b' } else { 'a' });
        }
        copy
    }

    /// The same request with its body changed after signing.
    pub fn altered_body(&self) -> Delivery {
        let mut copy = self.clone();
        copy.body.push(b' ');
        copy
    }
}

pub async fn post(app: &TestApp, account: &Account, delivery: &Delivery) -> (u16, String) {
    let mut url = app.url(&account.path());
    if !delivery.query.is_empty() {
        url = format!("{url}?{}", delivery.query);
    }
    let mut request = app
        .http
        .post(url)
        .header("Content-Type", delivery.content_type)
        .body(delivery.body.clone());
    for (k, v) in &delivery.headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

pub async fn conversations(app: &TestApp, session: &Session, filter: Value) -> Vec<Value> {
    let data = app
        .gql_ok(
            Some(&session.token),
            CONVERSATIONS,
            json!({ "filter": filter }),
        )
        .await;
    data["conversations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// The conversations' messages, oldest first.
pub fn messages(conversation: &Value) -> Vec<Value> {
    let mut list: Vec<Value> = conversation["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    list.reverse();
    list
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Polls `check` until it returns Some or `wait` passes.
pub async fn eventually<T, F, Fut>(wait: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
