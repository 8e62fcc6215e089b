//! Files in conversations: a contact's file is fetched from each provider the way it
//! documents (by id through its API, or by the URL in the payload, with the account's
//! credentials where it asks for them) into the object store; an agent's file is stored and
//! handed to the provider as a link it fetches.

use std::time::Duration;

use obrol_tests::{error_code, Session, TestApp};
use serde_json::{json, Value};

use super::*;

const FILES: &str = "query { conversations(first: 10) { edges { node {
    channelAccount { type }
    messages(first: 5) { edges { node {
        id direction text
        attachments { id fileName contentType sizeBytes status failureReason url messageId } } } }
} } } }";

/// Every attachment of every message, with its channel.
async fn attachments(app: &TestApp, admin: &Session) -> Vec<(String, String, Value)> {
    let data = app.gql_ok(Some(&admin.token), FILES, json!({})).await;
    let mut found = Vec::new();
    for edge in data["conversations"]["edges"].as_array().unwrap() {
        let channel = edge["node"]["channelAccount"]["type"]
            .as_str()
            .unwrap()
            .to_string();
        for message in edge["node"]["messages"]["edges"].as_array().unwrap() {
            for file in message["node"]["attachments"].as_array().unwrap() {
                let text = message["node"]["text"].as_str().unwrap().to_string();
                found.push((channel.clone(), text, file.clone()));
            }
        }
    }
    found
}

/// The webhook of a contact's picture (JPEG, `caption` where the channel has captions).
fn picture(app: &TestApp, account: &Account, caption: &str, media_id: &str) -> Delivery {
    let ts = now();
    match account.kind {
        "WHATSAPP" => account.meta_json(json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881",
                              "phone_number_id": "106540352242922" },
                "contacts": [{ "profile": { "name": "Ana Lima" }, "wa_id": "6281200000001" }],
                "messages": [{ "from": "6281200000001", "id": format!("wamid.media-{media_id}"),
                               "timestamp": ts.to_string(), "type": "image",
                               "image": { "caption": caption, "mime_type": "image/jpeg",
                                          "sha256": "BtNtbVw1Pz8vKz2qTqFqKqaWn4T4VQ0cCzzWMv1L1gE=",
                                          "id": media_id } }]
            } }] }]
        })),
        "MESSENGER" | "INSTAGRAM" => {
            let (object, own, url) = if account.kind == "MESSENGER" {
                (
                    "page",
                    "104329118200001",
                    "https://scontent.xx.fbcdn.net/v/t1.15752-9/messenger-photo.jpg?_nc_cat=1&oh=00",
                )
            } else {
                (
                    "instagram",
                    "17841400000000001",
                    "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17900000&signature=AbC",
                )
            };
            account.meta_json(json!({
                "object": object,
                "entry": [{ "id": own, "time": ts * 1000, "messaging": [{
                    "sender": { "id": "249000000000001" },
                    "recipient": { "id": own },
                    "timestamp": ts * 1000,
                    "message": { "mid": format!("m_media_{}", account.kind),
                                 "attachments": [{ "type": "image", "payload": { "url": url } }] }
                }] }]
            }))
        }
        "TELEGRAM" => Delivery {
            query: String::new(),
            headers: vec![(
                "X-Telegram-Bot-Api-Secret-Token".into(),
                account.telegram_secret.clone().unwrap(),
            )],
            content_type: "application/json",
            body: json!({
                "update_id": 910_001,
                "message": {
                    "message_id": 77,
                    "from": { "id": 51_001, "is_bot": false, "first_name": "Ana" },
                    "chat": { "id": 51_001, "first_name": "Ana", "type": "private" },
                    "date": ts,
                    "photo": [
                        { "file_id": "AgAD-small", "file_unique_id": "s1", "width": 90, "height": 90, "file_size": 1200 },
                        { "file_id": "AgAD-large", "file_unique_id": "l1", "width": 1280, "height": 960, "file_size": 98000 }
                    ],
                    "caption": caption
                }
            })
            .to_string()
            .into_bytes(),
        },
        "LINE" => account.signed_json(json!({
            "destination": "U0000000000000000000000000000000f",
            "events": [{
                "type": "message",
                "message": { "type": "image", "id": "468789577898262530",
                             "contentProvider": { "type": "line" } },
                "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZM",
                "deliveryContext": { "isRedelivery": false },
                "timestamp": ts * 1000,
                "source": { "type": "user", "userId": "U4af4980629000000000000000000001" },
                "replyToken": "b60d432864f44d079f6d8efe86cf404b",
                "mode": "active"
            }]
        })),
        "VIBER" => account.signed_json(json!({
            "event": "message",
            "timestamp": ts * 1000,
            "chat_hostname": "SN-CHAT-05_",
            "message_token": 4_912_661_846_655_999_001u64,
            "sender": { "id": "01234567890A0001=", "name": "Ana Lima", "api_version": 1 },
            "message": { "type": "picture", "text": caption,
                         "media": "https://dl-media.viber.com/1/share/2/long/bots/viber-photo.jpg",
                         "thumbnail": "https://dl-media.viber.com/1/share/2/long/bots/viber-thumb.jpg",
                         "file_name": "viber-photo.jpg", "size": 4096 },
            "silent": false
        })),
        "WECHAT" => {
            let (timestamp, nonce) = (ts.to_string(), "2000001".to_string());
            let signature = sign::wechat("wx-token", &timestamp, &nonce);
            let from = "oUpF8uMuAJO_M2pxb1Q9zNjWeS01";
            Delivery {
                query: format!(
                    "signature={signature}&timestamp={timestamp}&nonce={nonce}&openid={from}"
                ),
                headers: vec![],
                content_type: "text/xml",
                body: format!(
                    "<xml><ToUserName><![CDATA[gh_3ad31d7a4e5c]]></ToUserName>\
                     <FromUserName><![CDATA[{from}]]></FromUserName>\
                     <CreateTime>{ts}</CreateTime><MsgType><![CDATA[image]]></MsgType>\
                     <PicUrl><![CDATA[http://mmbiz.qpic.cn/mmbiz_jpg/wechat-photo/0]]></PicUrl>\
                     <MediaId><![CDATA[wx_media_1]]></MediaId><MsgId>23637352235069001</MsgId></xml>"
                )
                .into_bytes(),
            }
        }
        "SMS" => account.twilio_form(
            app,
            &[
                ("MessageSid", "MM00000000000000000000000000000001"),
                ("AccountSid", "AC00000000000000000000000000000001"),
                ("From", "+6281200000009"),
                ("To", "+14155550100"),
                ("Body", caption),
                ("NumMedia", "1"),
                ("MediaContentType0", "image/jpeg"),
                (
                    "MediaUrl0",
                    "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages/MM00000000000000000000000000000001/Media/ME00000000000000000000000000000001",
                ),
                ("ApiVersion", "2010-04-01"),
            ],
        ),
        other => panic!("no picture for {other}"),
    }
}

/// Where each provider serves the file, as the fake provider will be asked for it.
fn file_path(kind: &str) -> &'static str {
    match kind {
        "WHATSAPP" => "/whatsapp_business/attachments/",
        "MESSENGER" => "/messenger-photo.jpg",
        "INSTAGRAM" => "/ig_messaging_cdn/",
        "TELEGRAM" => "/photos/file_7.jpg",
        "LINE" => "/v2/bot/message/468789577898262530/content",
        "VIBER" => "/viber-photo.jpg",
        "WECHAT" => "/cgi-bin/media/get",
        "SMS" => "/Media/ME00000000000000000000000000000001",
        _ => unreachable!(),
    }
}

fn jpeg(kind: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend(format!("a picture sent on {kind}").bytes());
    bytes.extend((0..2048u32).map(|i| (i * 7 % 251) as u8));
    bytes
}

#[tokio::test]
async fn contacts_files_are_fetched_from_every_provider() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Media Co").await;
    let mut accounts = Vec::new();
    for (kind, _) in KINDS {
        accounts.push(connect(&app, &fake, &admin, kind).await);
        fake.serve_file(file_path(kind), "image/jpeg", jpeg(kind));
    }
    // The lookups that come before the file: WhatsApp's media id and Telegram's file_id.
    fake.script(
        "/v21.0/1290000000000001",
        200,
        json!({ "messaging_product": "whatsapp",
                "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1290000000000001&ext=1700000000&hash=ATs",
                "mime_type": "image/jpeg", "sha256": "BtNtbVw1Pz8vKz2qTqFqKqaWn4T4VQ0cCzzWMv1L1gE=",
                "file_size": 2076, "id": "1290000000000001" }),
        &[],
    );
    fake.script(
        "/getFile",
        200,
        json!({ "ok": true, "result": { "file_id": "AgAD-large", "file_unique_id": "l1",
                                        "file_size": 2076, "file_path": "photos/file_7.jpg" } }),
        &[],
    );
    for account in &accounts {
        let delivery = picture(&app, account, "my receipt", "1290000000000001");
        let (status, body) = post(&app, account, &delivery).await;
        assert_eq!(status, 200, "{}: {body}", account.kind);
    }
    let files = eventually(Duration::from_secs(30), || async {
        let files = attachments(&app, &admin).await;
        (files.len() == 8 && files.iter().all(|(_, _, f)| f["status"] != "PENDING"))
            .then_some(files)
    })
    .await;
    let Some(files) = files else {
        panic!(
            "files still pending: {:#?}",
            attachments(&app, &admin).await
        );
    };
    for (kind, _) in KINDS {
        let (_, text, file) = files
            .iter()
            .find(|(channel, _, _)| channel == kind)
            .unwrap_or_else(|| panic!("no file from {kind}"));
        assert_eq!(file["status"], "READY", "{kind}: {file:#}");
        assert_eq!(file["contentType"], "image/jpeg", "{kind}");
        assert_eq!(file["sizeBytes"], jpeg(kind).len(), "{kind}");
        assert!(
            file["fileName"].as_str().unwrap().ends_with(".jpg"),
            "{kind}: {file:#}"
        );
        if matches!(kind, "WHATSAPP" | "TELEGRAM" | "VIBER") {
            assert_eq!(text, "my receipt", "{kind}: the caption is the text");
        }
        // The stored copy is served by its link, byte for byte.
        let response = app
            .http
            .get(file["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{kind}");
        assert_eq!(response.headers()["content-type"], "image/jpeg");
        assert_eq!(
            response.bytes().await.unwrap().to_vec(),
            jpeg(kind),
            "{kind}"
        );
    }
    // Each provider was asked the way it documents.
    let lookup = &fake.requests_to("/v21.0/1290000000000001")[0];
    assert_eq!(lookup.header("authorization"), Some("Bearer wa-token"));
    let download = &fake.requests_to("/whatsapp_business/attachments/")[0];
    assert_eq!(download.header("authorization"), Some("Bearer wa-token"));
    assert!(download.query.contains("mid=1290000000000001"));
    let get_file = &fake.requests_to("/getFile")[0];
    assert!(get_file
        .path
        .starts_with("/bot7000000001:AAH-telegram-token/"));
    assert_eq!(
        get_file.query, "file_id=AgAD-large",
        "the largest photo size"
    );
    assert!(fake.requests_to("/photos/file_7.jpg")[0]
        .path
        .starts_with("/file/bot7000000001:AAH-telegram-token/"));
    let line = &fake.requests_to("/v2/bot/message/468789577898262530/content")[0];
    assert_eq!(line.header("authorization"), Some("Bearer line-token"));
    let wechat = &fake.requests_to("/cgi-bin/media/get")[0];
    assert!(wechat.query.contains("media_id=wx_media_1"));
    assert!(wechat.query.contains("access_token=wx-access-token"));
    let twilio = &fake.requests_to("/Media/ME00000000000000000000000000000001")[0];
    let basic = base64_basic("AC00000000000000000000000000000001", "twilio-auth-token");
    assert_eq!(twilio.header("authorization"), Some(basic.as_str()));
    // The contact's files list them too.
    let contacts = app
        .gql_ok(
            Some(&admin.token),
            "query { contacts(first: 20) { edges { node { media { status messageId } } } } }",
            json!({}),
        )
        .await;
    let listed: usize = contacts["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["node"]["media"].as_array().unwrap().len())
        .sum();
    assert_eq!(listed, 8);

    // A file the provider no longer has fails with its reason; nothing is retried for ever.
    let whatsapp = accounts.iter().find(|a| a.kind == "WHATSAPP").unwrap();
    fake.script(
        "/v21.0/1290000000000002",
        404,
        json!({ "error": { "message": "Unsupported get request.", "code": 100 } }),
        &[],
    );
    let (status, _) = post(
        &app,
        whatsapp,
        &picture(&app, whatsapp, "second", "1290000000000002"),
    )
    .await;
    assert_eq!(status, 200);
    let failed = eventually(Duration::from_secs(30), || async {
        attachments(&app, &admin)
            .await
            .into_iter()
            .find(|(_, text, f)| text == "second" && f["status"] == "FAILED")
    })
    .await
    .expect("a file the provider refuses is marked FAILED");
    assert!(
        failed.2["failureReason"].as_str().unwrap().contains("404"),
        "{:#}",
        failed.2
    );
    assert!(failed.2["url"].is_null());
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Sends `input` with `files` attached (GraphQL multipart upload).
async fn send_with_files(
    app: &TestApp,
    token: &str,
    input: Value,
    files: &[(&str, &str, Vec<u8>)],
) -> Value {
    let query = "mutation($input: SendMessageInput!) { sendMessage(input: $input) {
        id status text content attachments { fileName contentType sizeBytes status url } } }";
    let mut input = input;
    input["attachments"] = Value::Array(files.iter().map(|_| Value::Null).collect());
    let map: serde_json::Map<String, Value> = (0..files.len())
        .map(|i| {
            (
                i.to_string(),
                json!([format!("variables.input.attachments.{i}")]),
            )
        })
        .collect();
    let mut form = reqwest::multipart::Form::new()
        .text(
            "operations",
            json!({ "query": query, "variables": { "input": input } }).to_string(),
        )
        .text("map", Value::Object(map).to_string());
    for (i, (name, content_type, bytes)) in files.iter().enumerate() {
        form = form.part(
            i.to_string(),
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(name.to_string())
                .mime_str(content_type)
                .unwrap(),
        );
    }
    app.http
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn png(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..size.saturating_sub(8)).map(|i| (i % 253) as u8));
    bytes
}

#[tokio::test]
async fn agents_files_go_out_as_links_the_provider_fetches() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Sends Files").await;
    let whatsapp = connect(&app, &fake, &admin, "WHATSAPP").await;
    let viber = connect(&app, &fake, &admin, "VIBER").await;
    let mut conversation = std::collections::HashMap::new();
    for account in [&whatsapp, &viber] {
        let (status, _) = post(&app, account, &account.text(&app, 1, 1, "Hi", now())).await;
        assert_eq!(status, 200);
        let seen = conversations(&app, &admin, json!({ "channels": [account.kind] })).await;
        conversation.insert(account.kind, seen[0]["id"].as_str().unwrap().to_string());
    }

    let picture = png(300_000);
    let sent = send_with_files(
        &app,
        &admin.token,
        json!({ "conversationId": conversation["WHATSAPP"], "text": "Your invoice, as asked" }),
        &[("invoice scan.png", "image/png", picture.clone())],
    )
    .await;
    assert!(sent.get("errors").is_none(), "{sent:#}");
    let message = &sent["data"]["sendMessage"];
    assert_eq!(message["text"], "Your invoice, as asked");
    assert_eq!(message["attachments"][0]["status"], "READY");
    assert_eq!(message["attachments"][0]["fileName"], "invoice scan.png");
    assert_eq!(message["attachments"][0]["sizeBytes"], picture.len());

    let calls = fake
        .wait_for("/106540352242922/messages", 1, Duration::from_secs(15))
        .await;
    let body = calls.last().expect("WhatsApp was called").json();
    assert_eq!(body["type"], "image");
    assert_eq!(body["image"]["caption"], "Your invoice, as asked");
    let link = body["image"]["link"].as_str().unwrap().to_string();
    assert!(link.contains("/media/"), "{link}");
    assert!(link.ends_with("/invoice_scan.png"), "{link}");
    // What the provider fetches is the file, as it was uploaded.
    let fetched = app.http.get(&link).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["content-type"], "image/png");
    assert_eq!(fetched.headers()["x-content-type-options"], "nosniff");
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), picture);
    // A link cannot be forged or altered: one changed character and it is nothing.
    let token_start = link.find("/media/").unwrap() + "/media/".len() + 10;
    let mut forged = link.clone().into_bytes();
    forged[token_start] = if forged[token_start] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(app.http.get(&forged).send().await.unwrap().status(), 404);

    // A document to Viber: the link ends in the file's extension, which Viber requires.
    let sent = send_with_files(
        &app,
        &admin.token,
        json!({ "conversationId": conversation["VIBER"] }),
        &[("price list", "application/pdf", b"%PDF-1.4 prices".to_vec())],
    )
    .await;
    assert!(sent.get("errors").is_none(), "{sent:#}");
    let calls = fake
        .wait_for("/pa/send_message", 1, Duration::from_secs(15))
        .await;
    let body = calls.last().unwrap().json();
    assert_eq!(body["type"], "file", "{body:#}");
    assert_eq!(body["file_name"], "price list.pdf");
    assert!(body["media"].as_str().unwrap().ends_with("/price_list.pdf"));
    let pdf = app
        .http
        .get(body["media"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    // Documents are downloads, never pages of our origin.
    assert!(pdf.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));

    // Refused before anything is stored or sent: a picture over WhatsApp's 5 MB, two files
    // in one message, a file with buttons.
    let before = fake.requests_to("/messages").len();
    let big = send_with_files(
        &app,
        &admin.token,
        json!({ "conversationId": conversation["WHATSAPP"] }),
        &[("big.png", "image/png", png(6 * 1024 * 1024))],
    )
    .await;
    assert_eq!(error_code(&big), Some("VALIDATION"), "{big:#}");
    let said = big["errors"][0]["message"].as_str().unwrap();
    assert!(said.contains("WhatsApp") && said.contains("5 MB"), "{said}");
    let two = send_with_files(
        &app,
        &admin.token,
        json!({ "conversationId": conversation["WHATSAPP"] }),
        &[
            ("a.png", "image/png", png(100)),
            ("b.png", "image/png", png(100)),
        ],
    )
    .await;
    assert_eq!(error_code(&two), Some("VALIDATION"), "{two:#}");
    let buttons = send_with_files(
        &app,
        &admin.token,
        json!({ "conversationId": conversation["WHATSAPP"], "text": "Pick",
                "quickReplies": [{ "id": "a", "title": "A" }] }),
        &[("a.png", "image/png", png(100))],
    )
    .await;
    assert_eq!(error_code(&buttons), Some("VALIDATION"), "{buttons:#}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.requests_to("/messages").len(), before);

    // Erasing the contact erases its files: the provider's link stops working.
    let contact = conversations(&app, &admin, json!({ "channels": ["WHATSAPP"] })).await[0]
        ["contact"]["id"]
        .clone();
    app.gql_ok(
        Some(&admin.token),
        "mutation($id: ID!) { deleteContact(id: $id) }",
        json!({ "id": contact }),
    )
    .await;
    assert_eq!(app.http.get(&link).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_wechat_video_is_fetched_from_the_address_wechat_gives_for_it() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("WeChat Video").await;
    let account = connect(&app, &fake, &admin, "WECHAT").await;
    // For a video, media/get answers with JSON naming the video's address (WeChat's
    // documented answer); the test server stands in for WeChat's CDN.
    fake.script(
        "/cgi-bin/media/get",
        200,
        json!({ "video_url": "https://mmbiz.qpic.cn/wechat-video/clip.mp4" }),
        &[],
    );
    let video: Vec<u8> = b"\x00\x00\x00\x18ftypmp42"
        .iter()
        .copied()
        .chain((0..4096u32).map(|i| (i % 241) as u8))
        .collect();
    fake.serve_file("/wechat-video/clip.mp4", "video/mp4", video.clone());
    let ts = now();
    let (timestamp, nonce) = (ts.to_string(), "2000002".to_string());
    let signature = sign::wechat("wx-token", &timestamp, &nonce);
    let from = "oUpF8uMuAJO_M2pxb1Q9zNjWeS02";
    let delivery = Delivery {
        query: format!("signature={signature}&timestamp={timestamp}&nonce={nonce}&openid={from}"),
        headers: vec![],
        content_type: "text/xml",
        body: format!(
            "<xml><ToUserName><![CDATA[gh_3ad31d7a4e5c]]></ToUserName>\
             <FromUserName><![CDATA[{from}]]></FromUserName>\
             <CreateTime>{ts}</CreateTime><MsgType><![CDATA[video]]></MsgType>\
             <MediaId><![CDATA[wx_video_1]]></MediaId>\
             <ThumbMediaId><![CDATA[wx_thumb_1]]></ThumbMediaId>\
             <MsgId>23637352235069002</MsgId></xml>"
        )
        .into_bytes(),
    };
    assert_eq!(post(&app, &account, &delivery).await.0, 200);
    let file = eventually(Duration::from_secs(30), || async {
        attachments(&app, &admin)
            .await
            .into_iter()
            .map(|(_, _, file)| file)
            .find(|file| file["status"] != "PENDING")
    })
    .await
    .expect("the video's fetch ends");
    assert_eq!(file["status"], "READY", "{file}");
    assert_eq!(file["contentType"], "video/mp4");
    assert_eq!(file["sizeBytes"], video.len());
    let asked = fake.requests_to("/cgi-bin/media/get");
    assert!(asked[0].query.contains("media_id=wx_video_1"));
    assert_eq!(fake.requests_to("/wechat-video/clip.mp4").len(), 1);
    let served = app
        .http
        .get(file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.to_vec(), video);
}
