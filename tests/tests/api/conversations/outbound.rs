//! Outbound messages: each provider's API as the fake provider sees it, statuses flowing
//! back, window rules, templates, interactive messages, retries.

use std::time::Duration;

use obrol_tests::fake_provider::FakeProvider;
use obrol_tests::{error_code, Session, TestApp};
use serde_json::{json, Value};

use super::*;

const SEND: &str = "mutation($input: SendMessageInput!) {
    sendMessage(input: $input) { id status direction senderType text content } }";

const MESSAGE_STATUS: &str = "query($id: ID!) { conversation(id: $id) {
    messages(first: 20) { edges { node { id status failureReason providerMessageId } } } } }";

/// Posts a first message from `sender` and returns the conversation id.
async fn conversation_with(
    app: &TestApp,
    admin: &Session,
    account: &Account,
    sender: u32,
    sent_at: i64,
) -> String {
    let delivery = account.text(app, sender, sender as u64, "Hi there", sent_at);
    let (status, body) = post(app, account, &delivery).await;
    assert_eq!(status, 200, "{body}");
    let seen = conversations(app, admin, json!({ "channels": [account.kind] })).await;
    seen.iter()
        .find(|c| messages(c).iter().any(|m| m["direction"] == "INBOUND"))
        .and_then(|c| c["id"].as_str())
        .unwrap()
        .to_string()
}

/// The message's status once it is no longer QUEUED (or QUEUED after 15 s).
async fn settled(app: &TestApp, admin: &Session, conversation: &str, message: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let data = app
            .gql_ok(
                Some(&admin.token),
                MESSAGE_STATUS,
                json!({ "id": conversation }),
            )
            .await;
        last = data["conversation"]["messages"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .find(|m| m["id"] == message)
            .unwrap();
        if last["status"] != "QUEUED" {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

async fn status_is(app: &TestApp, admin: &Session, conversation: &str, message: &str, want: &str) {
    for _ in 0..100 {
        let now = settled(app, admin, conversation, message).await;
        if now["status"] == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {message} never became {want}");
}

async fn send(app: &TestApp, admin: &Session, input: Value) -> Value {
    app.gql(Some(&admin.token), SEND, json!({ "input": input }))
        .await
}

#[tokio::test]
async fn every_channel_replies_through_its_provider_and_statuses_flow_back() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Replies Everywhere").await;
    for (index, (kind, _)) in KINDS.iter().enumerate() {
        let account = connect(&app, &fake, &admin, kind).await;
        let sender = 20 + index as u32;
        let conversation = conversation_with(&app, &admin, &account, sender, now() - 60).await;
        let response = send(
            &app,
            &admin,
            json!({ "conversationId": conversation, "text": "Yes, the blue one is in stock." }),
        )
        .await;
        let sent = &response["data"]["sendMessage"];
        assert_eq!(sent["status"], "QUEUED", "{kind}: {response}");
        assert_eq!(sent["direction"], "OUTBOUND");
        assert_eq!(sent["senderType"], "USER");
        let id = sent["id"].as_str().unwrap();
        let message = settled(&app, &admin, &conversation, id).await;
        assert_eq!(message["status"], "SENT", "{kind}: {message}");
        let provider_id = message["providerMessageId"]
            .as_str()
            .unwrap_or("")
            .to_string();

        // The request the provider received.
        match *kind {
            "WHATSAPP" => {
                let call = fake
                    .requests_to("/v21.0/106540352242922/messages")
                    .pop()
                    .unwrap();
                assert_eq!(call.header("authorization"), Some("Bearer wa-token"));
                let body = call.json();
                assert_eq!(body["messaging_product"], "whatsapp");
                assert_eq!(body["to"], format!("62812000{sender:05}"));
                assert_eq!(body["type"], "text");
                assert_eq!(body["text"]["body"], "Yes, the blue one is in stock.");
                assert!(provider_id.starts_with("wamid."));
            }
            "INSTAGRAM" => {
                let call = fake.requests_to("/v21.0/me/messages").pop().unwrap();
                assert_eq!(call.header("authorization"), Some("Bearer ig-token"));
                assert_eq!(
                    call.json()["recipient"]["id"],
                    format!("2490000000{sender:05}")
                );
                assert_eq!(
                    call.json()["message"]["text"],
                    "Yes, the blue one is in stock."
                );
            }
            "MESSENGER" => {
                let call = fake
                    .requests_to("/v21.0/104329118200001/messages")
                    .pop()
                    .unwrap();
                assert_eq!(call.header("authorization"), Some("Bearer fb-token"));
                assert_eq!(call.json()["messaging_type"], "RESPONSE");
                assert_eq!(
                    call.json()["recipient"]["id"],
                    format!("2490000000{sender:05}")
                );
            }
            "WECHAT" => {
                let token = fake.requests_to("/cgi-bin/token").pop().unwrap();
                assert!(
                    token.query.contains("appid=wx1234567890abcdef"),
                    "{}",
                    token.query
                );
                let call = fake
                    .requests_to("/cgi-bin/message/custom/send")
                    .pop()
                    .unwrap();
                assert!(call.query.contains("access_token=wx-access-token"));
                assert_eq!(
                    call.json()["touser"],
                    format!("oUpF8uMuAJO_M2pxb1Q9zNjWeS{sender:02}")
                );
                assert_eq!(call.json()["msgtype"], "text");
                assert_eq!(
                    call.json()["text"]["content"],
                    "Yes, the blue one is in stock."
                );
            }
            "LINE" => {
                let call = fake.requests_to("/v2/bot/message/push").pop().unwrap();
                assert_eq!(call.header("authorization"), Some("Bearer line-token"));
                assert_eq!(call.header("x-line-retry-key"), Some(id));
                assert_eq!(call.json()["to"], format!("U4af4980629{sender:022}"));
                assert_eq!(call.json()["messages"][0]["type"], "text");
            }
            "TELEGRAM" => {
                let call = fake
                    .requests_to("/bot7000000001:AAH-telegram-token/sendMessage")
                    .pop()
                    .unwrap();
                assert_eq!(call.json()["chat_id"], 51_000 + sender as u64);
                assert_eq!(call.json()["text"], "Yes, the blue one is in stock.");
            }
            "VIBER" => {
                let call = fake.requests_to("/pa/send_message").pop().unwrap();
                assert_eq!(
                    call.header("x-viber-auth-token"),
                    Some("4453b6ac-viber-token")
                );
                assert_eq!(call.json()["receiver"], format!("01234567890A{sender:04}="));
                assert_eq!(call.json()["type"], "text");
                assert_eq!(call.json()["sender"]["name"], "Obrol Bot");
            }
            "SMS" => {
                let call = fake
                    .requests_to(
                        "/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages.json",
                    )
                    .pop()
                    .unwrap();
                let basic = call.header("authorization").unwrap();
                assert!(basic.starts_with("Basic "), "{basic}");
                assert_eq!(
                    call.form("To").as_deref(),
                    Some(format!("+62812000{sender:05}").as_str())
                );
                assert_eq!(call.form("From").as_deref(), Some("+14155550100"));
                assert_eq!(
                    call.form("Body").as_deref(),
                    Some("Yes, the blue one is in stock.")
                );
                let callback = call.form("StatusCallback").unwrap();
                assert!(callback.ends_with(&account.path()), "{callback}");
            }
            _ => unreachable!(),
        }

        // Delivery statuses, where the provider reports them.
        let callback = match *kind {
            "WHATSAPP" => Some((
                account.meta_json(json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1",
                    "changes": [{ "field": "messages", "value": {
                        "messaging_product": "whatsapp",
                        "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
                        "statuses": [
                            { "id": provider_id, "status": "delivered", "timestamp": now().to_string(),
                              "recipient_id": format!("62812000{sender:05}") },
                            { "id": provider_id, "status": "read", "timestamp": now().to_string(),
                              "recipient_id": format!("62812000{sender:05}") },
                            { "id": provider_id, "status": "delivered", "timestamp": now().to_string(),
                              "recipient_id": format!("62812000{sender:05}") }
                        ] } }] }] })),
                "READ",
            )),
            "MESSENGER" => Some((
                account.meta_json(json!({ "object": "page", "entry": [{ "id": "104329118200001",
                    "time": now() * 1000, "messaging": [{
                        "sender": { "id": format!("2490000000{sender:05}") },
                        "recipient": { "id": "104329118200001" },
                        "timestamp": now() * 1000,
                        "delivery": { "mids": [provider_id], "watermark": now() * 1000 } }] }] })),
                "DELIVERED",
            )),
            "INSTAGRAM" => Some((
                account.meta_json(json!({ "object": "instagram", "entry": [{ "id": "17841400000000001",
                    "time": now() * 1000, "messaging": [{
                        "sender": { "id": format!("2490000000{sender:05}") },
                        "recipient": { "id": "17841400000000001" },
                        "timestamp": now() * 1000,
                        "read": { "mid": provider_id } }] }] })),
                "READ",
            )),
            "VIBER" => Some((
                account.signed_json(json!({ "event": "delivered", "timestamp": now() * 1000,
                    "chat_hostname": "SN-CHAT-05_", "message_token": provider_id.parse::<u64>().unwrap(),
                    "user_id": format!("01234567890A{sender:04}=") })),
                "DELIVERED",
            )),
            "SMS" => Some((
                account.twilio_form(
                    &app,
                    &[
                        ("MessageSid", &provider_id),
                        ("MessageStatus", "delivered"),
                        ("AccountSid", "AC00000000000000000000000000000001"),
                        ("From", "+14155550100"),
                        ("To", &format!("+62812000{sender:05}")),
                        ("ApiVersion", "2010-04-01"),
                    ],
                ),
                "DELIVERED",
            )),
            // LINE, Telegram and WeChat report no delivery to bots.
            _ => None,
        };
        if let Some((delivery, want)) = callback {
            let (status, body) = post(&app, &account, &delivery).await;
            assert_eq!(status, 200, "{kind}: {body}");
            status_is(&app, &admin, &conversation, id, want).await;
        }
        // The reply answered the contact: nothing is unread or awaiting a reply.
        let seen = conversations(&app, &admin, json!({ "channels": [kind] })).await;
        assert_eq!(seen[0]["unreadCount"], 0);
        assert!(seen[0]["awaitingReplySince"].is_null());
    }
}

async fn setup(kind: &'static str) -> (TestApp, FakeProvider, Session, Account) {
    let (app, fake) = spawn().await;
    let admin = app.sign_up(&format!("Rules {kind}")).await;
    let account = connect(&app, &fake, &admin, kind).await;
    (app, fake, admin, account)
}

#[tokio::test]
async fn whatsapp_outside_its_window_sends_only_approved_templates() {
    let (app, fake, admin, account) = setup("WHATSAPP").await;
    // The contact last wrote 25 hours ago.
    let conversation = conversation_with(&app, &admin, &account, 1, now() - 25 * 3600).await;
    let window = app
        .gql_ok(
            Some(&admin.token),
            "query($id: ID!) { conversation(id: $id) { window { open closesAt templateRequired } } }",
            json!({ "id": conversation }),
        )
        .await;
    assert_eq!(window["conversation"]["window"]["open"], false);
    assert_eq!(window["conversation"]["window"]["templateRequired"], true);
    let refused = send(
        &app,
        &admin,
        json!({ "conversationId": conversation, "text": "Still there?" }),
    )
    .await;
    assert_eq!(error_code(&refused), Some("WINDOW_CLOSED"), "{refused}");
    let why = refused["errors"][0]["message"].as_str().unwrap();
    assert!(why.contains("24-hour") && why.contains("template"), "{why}");

    // Templates: made by Admins, PENDING until Meta approves.
    let create = "mutation($input: CreateMessageTemplateInput!) {
        createMessageTemplate(input: $input) { id name status variableCount } }";
    let input = json!({ "input": { "channelAccountId": account.id, "name": "order_update",
        "language": "en_US", "category": "UTILITY", "body": "Hi {{1}}, order {{2}} has shipped." } });
    let staff = app.add_user(&admin, "STAFF").await;
    assert_eq!(
        error_code(&app.gql(Some(&staff.token), create, input.clone()).await),
        Some("FORBIDDEN")
    );
    let made = app.gql_ok(Some(&admin.token), create, input.clone()).await;
    let template = made["createMessageTemplate"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(made["createMessageTemplate"]["status"], "PENDING");
    assert_eq!(made["createMessageTemplate"]["variableCount"], 2);
    assert_eq!(
        error_code(&app.gql(Some(&admin.token), create, input).await),
        Some("CONFLICT")
    );
    let bad = json!({ "input": { "channelAccountId": account.id, "name": "Order Update",
        "language": "en_US", "category": "UTILITY", "body": "Hi" } });
    assert_eq!(
        error_code(&app.gql(Some(&admin.token), create, bad).await),
        Some("VALIDATION")
    );

    let with_template = json!({ "conversationId": conversation, "templateId": template,
                                "templateVariables": ["Ana", "#1042"] });
    let pending = send(&app, &admin, with_template.clone()).await;
    assert_eq!(error_code(&pending), Some("VALIDATION"));
    assert!(pending["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("pending"));

    // Meta approves it by webhook.
    let review = account.meta_json(json!({ "object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398", "time": now(), "changes": [{ "field": "message_template_status_update",
        "value": { "event": "APPROVED", "message_template_id": 594425479261596u64,
                   "message_template_name": "order_update", "message_template_language": "en_US",
                   "reason": "NONE" } }] }] }));
    assert_eq!(post(&app, &account, &review).await.0, 200);
    let listed = app
        .gql_ok(
            Some(&admin.token),
            "{ messageTemplates { name status } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["messageTemplates"][0]["status"], "APPROVED");

    let wrong_count = json!({ "conversationId": conversation, "templateId": template,
                              "templateVariables": ["Ana"] });
    assert_eq!(
        error_code(&send(&app, &admin, wrong_count).await),
        Some("VALIDATION")
    );
    assert!(
        fake.requests_to("/messages").is_empty(),
        "nothing reached the provider"
    );

    let sent = send(&app, &admin, with_template).await;
    let message = &sent["data"]["sendMessage"];
    assert_eq!(
        message["text"], "Hi Ana, order #1042 has shipped.",
        "{sent}"
    );
    let id = message["id"].as_str().unwrap();
    assert_eq!(
        settled(&app, &admin, &conversation, id).await["status"],
        "SENT"
    );
    let call = fake.requests_to("/messages").pop().unwrap();
    let body = call.json();
    assert_eq!(body["type"], "template");
    assert_eq!(body["template"]["name"], "order_update");
    assert_eq!(body["template"]["language"]["code"], "en_US");
    let parameters = &body["template"]["components"][0]["parameters"];
    assert_eq!(parameters[0], json!({ "type": "text", "text": "Ana" }));
    assert_eq!(parameters[1], json!({ "type": "text", "text": "#1042" }));
}

#[tokio::test]
async fn buttons_and_lists_respect_each_channels_limits() {
    let (app, fake, admin, account) = setup("WHATSAPP").await;
    let conversation = conversation_with(&app, &admin, &account, 2, now() - 60).await;
    let choice = |i: usize| json!({ "id": format!("c{i}"), "title": format!("Option {i}") });
    let four: Vec<Value> = (1..=4).map(choice).collect();
    let refused = send(
        &app,
        &admin,
        json!({ "conversationId": conversation, "text": "Pick",
                                             "quickReplies": four }),
    )
    .await;
    assert_eq!(error_code(&refused), Some("VALIDATION"), "{refused}");
    let eleven: Vec<Value> = (1..=11).map(choice).collect();
    let refused = send(
        &app,
        &admin,
        json!({ "conversationId": conversation, "text": "Pick",
                                             "listOptions": eleven }),
    )
    .await;
    assert_eq!(error_code(&refused), Some("VALIDATION"));
    assert!(fake.requests_to("/messages").is_empty());

    let three: Vec<Value> = (1..=3).map(choice).collect();
    let ok = send(
        &app,
        &admin,
        json!({ "conversationId": conversation, "text": "Which size?",
                                        "quickReplies": three }),
    )
    .await;
    let id = ok["data"]["sendMessage"]["id"].as_str().unwrap();
    assert_eq!(
        settled(&app, &admin, &conversation, id).await["status"],
        "SENT"
    );
    let body = fake.requests_to("/messages").pop().unwrap().json();
    assert_eq!(body["type"], "interactive");
    assert_eq!(body["interactive"]["type"], "button");
    let buttons = body["interactive"]["action"]["buttons"].as_array().unwrap();
    assert_eq!(buttons.len(), 3);
    assert_eq!(buttons[0]["reply"]["id"], "c1");

    let ten: Vec<Value> = (1..=10).map(choice).collect();
    let ok = send(
        &app,
        &admin,
        json!({ "conversationId": conversation, "text": "Which colour?",
                                        "listOptions": ten, "listButton": "Colours" }),
    )
    .await;
    let id = ok["data"]["sendMessage"]["id"].as_str().unwrap();
    assert_eq!(
        settled(&app, &admin, &conversation, id).await["status"],
        "SENT"
    );
    let body = fake.requests_to("/messages").pop().unwrap().json();
    assert_eq!(body["interactive"]["type"], "list");
    assert_eq!(body["interactive"]["action"]["button"], "Colours");
    assert_eq!(
        body["interactive"]["action"]["sections"][0]["rows"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    // SMS carries no buttons: refused before any provider call, saying what to do instead.
    let sms = connect(&app, &fake, &admin, "SMS").await;
    let sms_conversation = conversation_with(&app, &admin, &sms, 3, now() - 60).await;
    let refused = send(
        &app,
        &admin,
        json!({ "conversationId": sms_conversation, "text": "Pick",
                                             "quickReplies": [choice(1)] }),
    )
    .await;
    assert_eq!(error_code(&refused), Some("VALIDATION"));
    assert!(fake.requests_to("/Messages.json").is_empty());
    // Templates are WhatsApp's; the HUMAN_AGENT tag is Messenger's.
    let refused = send(
        &app,
        &admin,
        json!({ "conversationId": sms_conversation, "text": "Hi",
                                             "humanAgentTag": true }),
    )
    .await;
    assert_eq!(error_code(&refused), Some("VALIDATION"));
}

#[tokio::test]
async fn messenger_allows_a_tagged_human_reply_for_seven_days() {
    let (app, fake, admin, account) = setup("MESSENGER").await;
    let conversation = conversation_with(&app, &admin, &account, 4, now() - 30 * 3600).await;
    let refused = send(
        &app,
        &admin,
        json!({ "conversationId": conversation, "text": "Sorry for the wait" }),
    )
    .await;
    assert_eq!(error_code(&refused), Some("WINDOW_CLOSED"));
    assert!(refused["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("HUMAN_AGENT"));
    let ok = send(
        &app,
        &admin,
        json!({ "conversationId": conversation, "text": "Sorry for the wait",
                                        "humanAgentTag": true }),
    )
    .await;
    let id = ok["data"]["sendMessage"]["id"].as_str().unwrap();
    assert_eq!(
        settled(&app, &admin, &conversation, id).await["status"],
        "SENT"
    );
    let body = fake.requests_to("/messages").pop().unwrap().json();
    assert_eq!(body["messaging_type"], "MESSAGE_TAG");
    assert_eq!(body["tag"], "HUMAN_AGENT");

    // Eight days: even the tag is too late.
    let old = connect(&app, &fake, &admin, "INSTAGRAM").await;
    let late = conversation_with(&app, &admin, &old, 5, now() - 8 * 24 * 3600).await;
    let refused = send(
        &app,
        &admin,
        json!({ "conversationId": late, "text": "Hello?" }),
    )
    .await;
    assert_eq!(error_code(&refused), Some("WINDOW_CLOSED"));
}

#[tokio::test]
async fn provider_throttling_is_retried_without_sending_twice_and_refusals_fail_with_the_reason() {
    let (app, fake, admin, account) = setup("WHATSAPP").await;
    let conversation = conversation_with(&app, &admin, &account, 6, now() - 60).await;
    fake.script(
        "/messages",
        429,
        json!({ "error": { "message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429 } }),
        &[("Retry-After", "1")],
    );
    let ok = send(
        &app,
        &admin,
        json!({ "conversationId": conversation, "text": "One moment" }),
    )
    .await;
    let id = ok["data"]["sendMessage"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut message = settled(&app, &admin, &conversation, &id).await;
    for _ in 0..100 {
        if message["status"] == "SENT" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        message = settled(&app, &admin, &conversation, &id).await;
    }
    assert_eq!(message["status"], "SENT", "{message}");
    assert_eq!(
        fake.requests_to("/messages").len(),
        2,
        "one throttled call, one accepted: never two accepted"
    );

    fake.script(
        "/messages",
        400,
        json!({ "error": { "message": "(#131026) Message undeliverable", "type": "OAuthException",
                           "code": 131026, "error_data": { "details": "Receiver is incapable of receiving this message" } } }),
        &[],
    );
    let refused = send(
        &app,
        &admin,
        json!({ "conversationId": conversation, "text": "Hello?" }),
    )
    .await;
    let id = refused["data"]["sendMessage"]["id"].as_str().unwrap();
    let message = settled(&app, &admin, &conversation, id).await;
    assert_eq!(message["status"], "FAILED");
    assert!(
        message["failureReason"]
            .as_str()
            .unwrap()
            .contains("131026"),
        "{message}"
    );
    assert_eq!(
        fake.requests_to("/messages").len(),
        3,
        "a refusal is not retried"
    );
}

#[tokio::test]
async fn a_status_reported_before_the_send_is_recorded_is_applied_when_it_is() {
    let (app, fake, admin, account) = setup("WHATSAPP").await;
    let conversation = conversation_with(&app, &admin, &account, 7, now() - 60).await;
    // The provider will name the message wamid.early, and reports on it before the send job
    // has written that id down (a fast provider, a slow database).
    fake.script(
        "/messages",
        200,
        json!({ "messaging_product": "whatsapp", "contacts": [],
                "messages": [{ "id": "wamid.early" }] }),
        &[],
    );
    let early = account.meta_json(json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1",
        "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
            "statuses": [
                { "id": "wamid.early", "status": "delivered", "timestamp": now().to_string(),
                  "recipient_id": "6281200000007" },
                { "id": "wamid.early", "status": "read", "timestamp": (now() + 1).to_string(),
                  "recipient_id": "6281200000007" }
            ] } }] }] }));
    assert_eq!(post(&app, &account, &early).await.0, 200);
    let sent = send(
        &app,
        &admin,
        json!({ "conversationId": conversation, "text": "Here it is" }),
    )
    .await;
    let id = sent["data"]["sendMessage"]["id"].as_str().unwrap();
    status_is(&app, &admin, &conversation, id, "READ").await;
    let message = settled(&app, &admin, &conversation, id).await;
    assert_eq!(message["providerMessageId"], "wamid.early");
}

#[tokio::test]
async fn whatsapp_templates_are_submitted_to_meta_for_review() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Templates At Meta").await;
    let mut credentials = credentials("WHATSAPP");
    credentials["waba_id"] = json!("102290129340398");
    let data = app
        .gql_ok(
            Some(&admin.token),
            CONNECT,
            json!({ "input": { "type": "WHATSAPP", "name": "Our number", "credentials": credentials } }),
        )
        .await;
    let account = data["connectChannel"]["id"].as_str().unwrap().to_string();
    let create = "mutation($input: CreateMessageTemplateInput!) {
        createMessageTemplate(input: $input) { id name status providerTemplateId } }";
    let input = |name: &str, examples: Value| {
        json!({ "input": { "channelAccountId": account, "name": name, "language": "en_US",
            "category": "UTILITY", "body": "Hi {{1}}, order {{2}} has shipped.",
            "examples": examples } })
    };

    // Meta reviews variables only with examples: refused here, before any call.
    let missing = app
        .gql(Some(&admin.token), create, input("order_update", json!([])))
        .await;
    assert_eq!(error_code(&missing), Some("VALIDATION"), "{missing}");
    assert!(missing["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("example"));
    let wrong_count = app
        .gql(
            Some(&admin.token),
            create,
            input("order_update", json!(["Ana"])),
        )
        .await;
    assert_eq!(error_code(&wrong_count), Some("VALIDATION"));
    assert!(fake.requests_to("message_templates").is_empty());

    // Submitted as Meta documents it; Meta's id and status are kept.
    fake.script(
        "/message_templates",
        200,
        json!({ "id": "594425479261596", "status": "PENDING", "category": "UTILITY" }),
        &[],
    );
    let made = app
        .gql_ok(
            Some(&admin.token),
            create,
            input("order_update", json!(["Ana", "#1042"])),
        )
        .await;
    assert_eq!(made["createMessageTemplate"]["status"], "PENDING");
    assert_eq!(
        made["createMessageTemplate"]["providerTemplateId"],
        "594425479261596"
    );
    let calls = fake.requests_to("message_templates");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].path, "/v21.0/102290129340398/message_templates");
    assert_eq!(calls[0].header("authorization"), Some("Bearer wa-token"));
    assert_eq!(
        calls[0].json(),
        json!({ "name": "order_update", "language": "en_US", "category": "UTILITY",
                "components": [{ "type": "BODY", "text": "Hi {{1}}, order {{2}} has shipped.",
                                 "example": { "body_text": [["Ana", "#1042"]] } }] })
    );

    // Meta refuses one: the reason reaches the Admin and nothing is stored.
    fake.script(
        "/message_templates",
        400,
        json!({ "error": { "message": "Invalid parameter", "type": "OAuthException", "code": 100,
                           "error_subcode": 2388024,
                           "error_data": { "details": "Content in this language already exists" },
                           "fbtrace_id": "AbCdEf" } }),
        &[],
    );
    let refused = app
        .gql(
            Some(&admin.token),
            create,
            input("shipping_notice", json!(["Ana", "#1042"])),
        )
        .await;
    assert_eq!(error_code(&refused), Some("VALIDATION"), "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("Meta refused") && message.contains("already exists"),
        "{message}"
    );

    // Meta already has this one (an earlier attempt it took, or one made in WhatsApp
    // Manager): it is adopted with Meta's id and status.
    fake.script(
        "/message_templates",
        400,
        json!({ "error": { "message": "Invalid parameter", "type": "OAuthException", "code": 100,
                           "error_subcode": 2388024,
                           "error_data": { "details": "Content in this language already exists" } } }),
        &[],
    );
    fake.script(
        "/message_templates",
        200,
        json!({ "data": [
            { "name": "payment_due", "language": "pt_BR", "status": "PENDING", "category": "UTILITY", "id": "1" },
            { "name": "payment_due", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
              "id": "594425479261598" } ],
            "paging": { "cursors": { "before": "MAZDZD", "after": "MjQZD" } } }),
        &[],
    );
    let adopted = app
        .gql_ok(
            Some(&admin.token),
            create,
            input("payment_due", json!(["Ana", "#1044"])),
        )
        .await;
    assert_eq!(adopted["createMessageTemplate"]["status"], "APPROVED");
    assert_eq!(
        adopted["createMessageTemplate"]["providerTemplateId"],
        "594425479261598"
    );
    let lookup = fake
        .requests_to("message_templates")
        .into_iter()
        .rfind(|r| r.method == "GET")
        .unwrap();
    assert!(
        lookup.query.contains("name=payment_due"),
        "{}",
        lookup.query
    );

    // Meta writes authentication templates itself.
    let authentication = json!({ "input": { "channelAccountId": account, "name": "login_code",
        "language": "en_US", "category": "AUTHENTICATION", "body": "Your code is {{1}}",
        "examples": ["123456"] } });
    let calls_before = fake.requests_to("message_templates").len();
    assert_eq!(
        error_code(&app.gql(Some(&admin.token), create, authentication).await),
        Some("VALIDATION")
    );
    assert_eq!(fake.requests_to("message_templates").len(), calls_before);

    // Meta may approve a utility template at once.
    fake.script(
        "/message_templates",
        200,
        json!({ "id": "594425479261597", "status": "APPROVED", "category": "UTILITY" }),
        &[],
    );
    let approved = app
        .gql_ok(
            Some(&admin.token),
            create,
            input("delivery_window", json!(["Ana", "#1043"])),
        )
        .await;
    assert_eq!(approved["createMessageTemplate"]["status"], "APPROVED");

    let listed = app
        .gql_ok(
            Some(&admin.token),
            "{ messageTemplates { name status } }",
            json!({}),
        )
        .await;
    let names: Vec<&str> = listed["messageTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["delivery_window", "order_update", "payment_due"]
    );
}

#[tokio::test]
async fn agents_start_conversations_with_contacts_who_have_not_written() {
    let (app, fake, admin, whatsapp) = setup("WHATSAPP").await;
    let messenger = connect(&app, &fake, &admin, "MESSENGER").await;
    let made = app
        .gql_ok(
            Some(&admin.token),
            "mutation { createContact(input: { firstName: \"Rina\", phone: \"+62 812-0007-7777\" }) { id } }",
            json!({}),
        )
        .await;
    let contact = made["createContact"]["id"].as_str().unwrap().to_string();
    let start = "mutation($input: StartConversationInput!) { startConversation(input: $input) {
        id status source assignee { id } contact { id } channelAccount { id }
        window { open templateRequired } } }";
    let input =
        |account: &str| json!({ "input": { "contactId": contact, "channelAccountId": account } });

    // Never written on Messenger: nobody to write to there.
    let refused = app
        .gql(Some(&admin.token), start, input(&messenger.id))
        .await;
    assert_eq!(error_code(&refused), Some("VALIDATION"), "{refused}");
    assert!(refused["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("Messenger"));

    // On WhatsApp the phone number is the address: the agent opens it, and it is theirs.
    let started = app
        .gql_ok(Some(&admin.token), start, input(&whatsapp.id))
        .await;
    let conversation = &started["startConversation"];
    assert_eq!(conversation["status"], "OPEN");
    assert_eq!(conversation["source"], "BUSINESS");
    assert_eq!(conversation["assignee"]["id"], admin.user_id.as_str());
    assert_eq!(conversation["channelAccount"]["id"], whatsapp.id.as_str());
    // The contact never wrote: only a template may open the chat.
    assert_eq!(conversation["window"]["open"], false);
    assert_eq!(conversation["window"]["templateRequired"], true);
    let id = conversation["id"].as_str().unwrap().to_string();
    let text = send(
        &app,
        &admin,
        json!({ "conversationId": id, "text": "Hello Rina" }),
    )
    .await;
    assert_eq!(error_code(&text), Some("WINDOW_CLOSED"), "{text}");

    // Starting again gives the same open conversation.
    let again = app
        .gql_ok(Some(&admin.token), start, input(&whatsapp.id))
        .await;
    assert_eq!(again["startConversation"]["id"], id.as_str());

    // An approved template goes to the phone number's WhatsApp id.
    let template = app
        .gql_ok(
            Some(&admin.token),
            "mutation($input: CreateMessageTemplateInput!) { createMessageTemplate(input: $input) { id } }",
            json!({ "input": { "channelAccountId": whatsapp.id, "name": "welcome", "language": "en",
                    "category": "MARKETING", "body": "Hi {{1}}, welcome!" } }),
        )
        .await["createMessageTemplate"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.gql_ok(
        Some(&admin.token),
        "mutation($id: ID!) { setMessageTemplateStatus(id: $id, status: APPROVED) { status } }",
        json!({ "id": template }),
    )
    .await;
    let sent = send(
        &app,
        &admin,
        json!({ "conversationId": id, "templateId": template, "templateVariables": ["Rina"] }),
    )
    .await;
    let message = sent["data"]["sendMessage"]["id"].as_str().unwrap();
    assert_eq!(settled(&app, &admin, &id, message).await["status"], "SENT");
    let call = fake.requests_to("/messages").pop().unwrap();
    assert_eq!(call.json()["to"], "6281200077777");

    // When Rina answers, her message lands in that conversation.
    let reply = whatsapp.text(&app, 0, 1, "Thanks!", now());
    let reply = Delivery {
        body: String::from_utf8(reply.body)
            .unwrap()
            .replace("6281200000000", "6281200077777")
            .into_bytes(),
        ..reply
    };
    let reply = whatsapp.meta(reply.body);
    assert_eq!(post(&app, &whatsapp, &reply).await.0, 200);
    let listed = conversations(&app, &admin, json!({})).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["unreadCount"], 1);

    // Another company cannot start one with this contact.
    let other = app.sign_up("Someone Else").await;
    let other_account = connect(&app, &fake, &other, "SMS").await;
    let hidden = app
        .gql(
            Some(&other.token),
            start,
            json!({ "input": { "contactId": contact, "channelAccountId": other_account.id } }),
        )
        .await;
    assert_eq!(error_code(&hidden), Some("NOT_FOUND"));
}
