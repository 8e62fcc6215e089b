use std::time::Duration;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::super::model::{Choice, MediaKind, OutboundContent, OutboundMessage};
use super::super::ChannelType;
use super::fake_provider::{FakeProvider, Reply};
use super::{check, check_message, retry_after, Credentials, SendError, Sender, Sent};

const ALL: [ChannelType; 9] = [
    ChannelType::Whatsapp,
    ChannelType::Instagram,
    ChannelType::Messenger,
    ChannelType::Wechat,
    ChannelType::Line,
    ChannelType::Telegram,
    ChannelType::Viber,
    ChannelType::Sms,
    ChannelType::LiveChat,
];

/// The channels with a provider behind them.
const PROVIDERS: [ChannelType; 8] = [
    ChannelType::Whatsapp,
    ChannelType::Instagram,
    ChannelType::Messenger,
    ChannelType::Wechat,
    ChannelType::Line,
    ChannelType::Telegram,
    ChannelType::Viber,
    ChannelType::Sms,
];

const BOT_TOKEN: &str = "123456789:AAE-test-bot-token";

fn credentials(kind: ChannelType) -> Credentials {
    let pairs: &[(&str, &str)] = match kind {
        ChannelType::Whatsapp => &[
            ("access_token", "wa-token"),
            ("phone_number_id", "1065550001"),
            ("app_secret", "wa-secret"),
            ("verify_token", "wa-verify"),
        ],
        ChannelType::Instagram => &[
            ("access_token", "ig-token"),
            ("instagram_account_id", "17840000000000003"),
            ("app_secret", "ig-secret"),
            ("verify_token", "ig-verify"),
        ],
        ChannelType::Messenger => &[
            ("page_access_token", "page-token"),
            ("page_id", "2025550002"),
            ("app_secret", "fb-secret"),
            ("verify_token", "fb-verify"),
        ],
        ChannelType::Wechat => &[
            ("app_id", "wx1234567890"),
            ("app_secret", "wechat-secret"),
            ("token", "wechat-token"),
        ],
        ChannelType::Line => &[
            ("channel_id", "1650000004"),
            ("channel_access_token", "line-token"),
            ("channel_secret", "line-secret"),
        ],
        ChannelType::Telegram => &[("bot_token", BOT_TOKEN), ("secret_token", "tg-secret")],
        ChannelType::Viber => &[("auth_token", "viber-token")],
        ChannelType::Sms => &[
            ("account_sid", "AC00000000000000000000000000000005"),
            ("auth_token", "twilio-token"),
            ("phone_number", "+15550100000"),
        ],
        ChannelType::LiveChat => &[],
    };
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), Json::String(value.to_string())))
        .collect()
}

fn recipient(kind: ChannelType) -> &'static str {
    match kind {
        ChannelType::Whatsapp => "6281234567890",
        ChannelType::Instagram => "IGSID-1",
        ChannelType::Messenger => "PSID-1",
        ChannelType::Wechat => "oOPENID-1",
        ChannelType::Line => "U4af4980629000000000000000000000a",
        ChannelType::Telegram => "987654321",
        ChannelType::Viber => "01234567890A=",
        ChannelType::Sms => "+6281234567890",
        ChannelType::LiveChat => "visitor-1",
    }
}

fn message(kind: ChannelType, content: OutboundContent) -> OutboundMessage {
    OutboundMessage {
        id: Uuid::now_v7(),
        to: recipient(kind).into(),
        content,
        human_agent_tag: false,
    }
}

fn text(body: &str) -> OutboundContent {
    OutboundContent::Text { body: body.into() }
}

fn media(
    media: MediaKind,
    url: &str,
    mime_type: &str,
    caption: Option<&str>,
    filename: Option<&str>,
) -> OutboundContent {
    OutboundContent::Media {
        media,
        url: url.into(),
        mime_type: mime_type.into(),
        filename: filename.map(str::to_string),
        caption: caption.map(str::to_string),
    }
}

fn image(caption: Option<&str>) -> OutboundContent {
    media(
        MediaKind::Image,
        "https://files.example.com/a/photo.jpg",
        "image/jpeg",
        caption,
        None,
    )
}

fn choices(count: usize) -> Vec<Choice> {
    (1..=count)
        .map(|n| Choice {
            id: format!("opt-{n}"),
            title: format!("Option {n}"),
            description: None,
        })
        .collect()
}

fn quick_replies(count: usize) -> OutboundContent {
    OutboundContent::QuickReplies {
        body: "Pick one".into(),
        buttons: choices(count),
    }
}

fn list(count: usize) -> OutboundContent {
    OutboundContent::List {
        body: "Our plans".into(),
        button: "See plans".into(),
        options: choices(count),
    }
}

fn template() -> OutboundContent {
    OutboundContent::Template {
        name: "order_shipped".into(),
        language: "id".into(),
        variables: vec!["Budi".into(), "INV-42".into()],
    }
}

async fn send(
    sender: &Sender,
    kind: ChannelType,
    account_id: Uuid,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    sender
        .send(
            kind,
            account_id,
            &credentials(kind),
            "https://obrol.example.com/webhooks/sms/acc",
            message,
        )
        .await
}

fn sent(id: &str) -> Sent {
    Sent {
        provider_message_id: Some(id.into()),
    }
}

// ---- check ----

#[test]
fn check_refuses_four_buttons_on_every_channel() {
    for kind in ALL {
        let error = check(kind, &quick_replies(4)).unwrap_err();
        assert!(error.contains("at most 3 buttons"), "{kind:?}: {error}");
    }
}

#[test]
fn check_refuses_eleven_options_on_every_channel() {
    for kind in ALL {
        let error = check(kind, &list(11)).unwrap_err();
        assert!(error.contains("at most 10 options"), "{kind:?}: {error}");
    }
}

#[test]
fn check_refuses_empty_text_on_every_channel() {
    let blank_buttons = OutboundContent::QuickReplies {
        body: " ".into(),
        buttons: choices(2),
    };
    for kind in ALL {
        assert_eq!(
            check(kind, &text("  \n")).unwrap_err(),
            "the message text is empty"
        );
        assert_eq!(
            check(kind, &blank_buttons).unwrap_err(),
            "the message text is empty"
        );
    }
}

#[test]
fn check_refuses_templates_outside_whatsapp() {
    assert_eq!(check(ChannelType::Whatsapp, &template()), Ok(()));
    let error = check(ChannelType::Telegram, &template()).unwrap_err();
    assert_eq!(
        error,
        "templates are a WhatsApp feature; on Telegram send a text instead"
    );
    for kind in PROVIDERS
        .into_iter()
        .filter(|k| *k != ChannelType::Whatsapp)
    {
        assert!(check(kind, &template())
            .unwrap_err()
            .contains("WhatsApp feature"));
    }
}

#[test]
fn check_refuses_media_on_wechat() {
    let error = check(ChannelType::Wechat, &image(None)).unwrap_err();
    assert!(
        error.starts_with("WeChat sends files only after they are uploaded"),
        "{error}"
    );
    assert_eq!(check(ChannelType::Wechat, &text("你好")), Ok(()));
}

#[test]
fn check_refuses_buttons_and_lists_on_sms_and_wechat() {
    assert_eq!(
        check(ChannelType::Sms, &quick_replies(2)).unwrap_err(),
        "SMS cannot carry buttons; send the options as text"
    );
    assert_eq!(
        check(ChannelType::Sms, &list(3)).unwrap_err(),
        "SMS cannot carry a list; send the options as text"
    );
    assert!(check(ChannelType::Wechat, &quick_replies(2))
        .unwrap_err()
        .contains("cannot carry buttons"));
    assert!(check(ChannelType::Wechat, &list(2))
        .unwrap_err()
        .contains("cannot carry a list"));
}

#[test]
fn check_enforces_whatsapp_lengths() {
    let long_button = OutboundContent::QuickReplies {
        body: "Pick".into(),
        buttons: vec![Choice {
            id: "a".into(),
            title: "x".repeat(21),
            description: None,
        }],
    };
    let error = check(ChannelType::Whatsapp, &long_button).unwrap_err();
    assert!(
        error.starts_with("WhatsApp button titles hold at most 20 characters"),
        "{error}"
    );
    // Telegram has no such limit.
    assert_eq!(check(ChannelType::Telegram, &long_button), Ok(()));

    let mut options = choices(2);
    options[1].title = "y".repeat(25);
    let long_row = OutboundContent::List {
        body: "Plans".into(),
        button: "See".into(),
        options,
    };
    assert!(check(ChannelType::Whatsapp, &long_row)
        .unwrap_err()
        .contains("at most 24 characters"));

    let mut options = choices(1);
    options[0].description = Some("d".repeat(73));
    let long_description = OutboundContent::List {
        body: "Plans".into(),
        button: "See".into(),
        options,
    };
    assert!(check(ChannelType::Whatsapp, &long_description)
        .unwrap_err()
        .contains("descriptions hold at most 72"));
    // Other channels leave descriptions out, so their length does not matter there.
    assert_eq!(check(ChannelType::Line, &long_description), Ok(()));

    let multiline = OutboundContent::Template {
        name: "order_shipped".into(),
        language: "id".into(),
        variables: vec!["Budi".into(), "line one\nline two".into()],
    };
    assert_eq!(
        check(ChannelType::Whatsapp, &multiline).unwrap_err(),
        "WhatsApp template variables cannot hold line breaks, tabs or more than 4 spaces in a \
         row ({{2}} does)"
    );

    let long_text = text(&"a".repeat(4097));
    assert_eq!(
        check(ChannelType::Whatsapp, &long_text).unwrap_err(),
        "WhatsApp messages hold at most 4,096 characters (this one has 4,097)"
    );
}

#[test]
fn check_enforces_each_channels_own_limits() {
    let long_callback = OutboundContent::QuickReplies {
        body: "Pick".into(),
        buttons: vec![Choice {
            id: "é".repeat(33),
            title: "Yes".into(),
            description: None,
        }],
    };
    assert_eq!(
        check(ChannelType::Telegram, &long_callback).unwrap_err(),
        "Telegram button ids hold at most 64 bytes (this one has 66)"
    );
    let document = media(
        MediaKind::Document,
        "https://files.example.com/a.pdf",
        "application/pdf",
        None,
        Some("a.pdf"),
    );
    assert_eq!(
        check(ChannelType::Line, &document).unwrap_err(),
        "LINE cannot send documents; send a link as text instead"
    );
    assert_eq!(check(ChannelType::Instagram, &document), Ok(()));
    let word_file = media(
        MediaKind::Document,
        "https://files.example.com/a.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        None,
        None,
    );
    assert_eq!(
        check(ChannelType::Instagram, &word_file).unwrap_err(),
        "Instagram sends documents only as PDF"
    );
    let plain_http = media(
        MediaKind::Image,
        "http://files.example.com/a.jpg",
        "image/jpeg",
        None,
        None,
    );
    assert_eq!(
        check(ChannelType::Line, &plain_http).unwrap_err(),
        "LINE fetches files only over HTTPS"
    );
    assert!(check(
        ChannelType::Line,
        &media(
            MediaKind::Video,
            "https://f.example.com/v.mp4",
            "video/mp4",
            None,
            None
        )
    )
    .unwrap_err()
    .contains("preview image"));
    assert_eq!(
        check(ChannelType::Messenger, &image(Some("Our menu"))).unwrap_err(),
        "Messenger sends an image without a caption; send the caption as its own message"
    );
    let audio_caption = media(
        MediaKind::Audio,
        "https://files.example.com/a.ogg",
        "audio/ogg",
        Some("listen"),
        None,
    );
    assert!(check(ChannelType::Whatsapp, &audio_caption)
        .unwrap_err()
        .contains("without a caption"));
    let sticker = media(
        MediaKind::Sticker,
        "https://files.example.com/s.webp",
        "image/webp",
        None,
        None,
    );
    assert_eq!(check(ChannelType::Telegram, &sticker), Ok(()));
    assert!(check(ChannelType::Viber, &sticker)
        .unwrap_err()
        .contains("sticker"));
    assert_eq!(
        check(ChannelType::Instagram, &text(&"é".repeat(501))).unwrap_err(),
        "Instagram messages hold at most 1,000 bytes of text (this one has 1,002)"
    );
    assert!(check(ChannelType::Sms, &text(&"a".repeat(1601))).is_err());
    assert!(check(ChannelType::Viber, &image(Some(&"c".repeat(769)))).is_err());
    assert_eq!(check(ChannelType::Viber, &image(Some("Menu"))), Ok(()));
    assert_eq!(
        check(
            ChannelType::Whatsapp,
            &media(MediaKind::Image, "files/a.jpg", "image/jpeg", None, None)
        )
        .unwrap_err(),
        "the file's URL must be an absolute http(s) URL"
    );
}

#[test]
fn check_accepts_what_each_channel_carries() {
    let accepted: &[(ChannelType, OutboundContent)] = &[
        (ChannelType::Whatsapp, image(Some("Menu"))),
        (ChannelType::Whatsapp, quick_replies(3)),
        (ChannelType::Whatsapp, list(10)),
        (ChannelType::Messenger, quick_replies(3)),
        (ChannelType::Messenger, list(10)),
        (ChannelType::Instagram, list(10)),
        (ChannelType::Telegram, image(Some("Menu"))),
        (ChannelType::Telegram, list(10)),
        (ChannelType::Line, image(Some("Menu"))),
        (ChannelType::Line, quick_replies(3)),
        (ChannelType::Line, list(10)),
        (ChannelType::Viber, quick_replies(3)),
        (ChannelType::Viber, list(10)),
        (ChannelType::Sms, image(Some("Menu"))),
        (ChannelType::Sms, text("Your code is 1234")),
        (ChannelType::Wechat, text("您好")),
    ];
    for (kind, content) in accepted {
        assert_eq!(check(*kind, content), Ok(()), "{kind:?} {content:?}");
    }
}

#[test]
fn check_allows_everything_on_live_chat() {
    for content in [template(), list(10), quick_replies(3), image(Some("x"))] {
        assert_eq!(check(ChannelType::LiveChat, &content), Ok(()));
    }
}

#[test]
fn check_refuses_duplicate_ids_and_blank_titles() {
    let mut buttons = choices(2);
    buttons[1].id = buttons[0].id.clone();
    let duplicate = OutboundContent::QuickReplies {
        body: "Pick".into(),
        buttons,
    };
    assert!(check(ChannelType::Telegram, &duplicate)
        .unwrap_err()
        .contains("share the id 'opt-1'"));
    let mut options = choices(2);
    options[0].title = " ".into();
    let blank = OutboundContent::List {
        body: "Plans".into(),
        button: "See".into(),
        options,
    };
    assert_eq!(
        check(ChannelType::Viber, &blank).unwrap_err(),
        "every option needs a title"
    );
    let no_button = OutboundContent::List {
        body: "Plans".into(),
        button: "".into(),
        options: choices(2),
    };
    assert!(check(ChannelType::Viber, &no_button).is_err());
}

#[test]
fn check_message_allows_the_tag_on_messenger_only() {
    let mut tagged = message(ChannelType::Messenger, text("We are back"));
    tagged.human_agent_tag = true;
    assert_eq!(check_message(ChannelType::Messenger, &tagged), Ok(()));
    let error = check_message(ChannelType::Instagram, &tagged).unwrap_err();
    assert_eq!(
        error,
        "the HUMAN_AGENT tag is a Messenger feature; Instagram cannot send with it"
    );
    assert!(check_message(ChannelType::Whatsapp, &tagged).is_err());
    assert!(check_message(ChannelType::LiveChat, &tagged).is_err());
    // Content is checked too.
    let mut refused = message(ChannelType::Messenger, quick_replies(4));
    refused.human_agent_tag = true;
    assert!(check_message(ChannelType::Messenger, &refused)
        .unwrap_err()
        .contains("at most 3 buttons"));
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let mut headers = HeaderMap::new();
    assert_eq!(retry_after(&headers), None);
    headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    let in_a_minute = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc2822();
    headers.insert(RETRY_AFTER, HeaderValue::from_str(&in_a_minute).unwrap());
    let wait = retry_after(&headers).unwrap();
    assert!(
        wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    headers.insert(
        RETRY_AFTER,
        HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
    assert_eq!(retry_after(&headers), None);
}

// ---- sending: request shapes ----

#[tokio::test]
async fn live_chat_sends_nothing() {
    let fake = FakeProvider::start().await;
    let result = send(
        &fake.sender(),
        ChannelType::LiveChat,
        Uuid::now_v7(),
        &message(ChannelType::LiveChat, template()),
    )
    .await;
    assert_eq!(
        result,
        Ok(Sent {
            provider_message_id: None
        })
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn whatsapp_text() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": "6281234567890", "wa_id": "6281234567890" }],
            "messages": [{ "id": "wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjA=" }],
        }),
    ));
    let kind = ChannelType::Whatsapp;
    let result = send(
        &fake.sender(),
        kind,
        Uuid::now_v7(),
        &message(kind, text("Hi! See https://example.com")),
    )
    .await;
    assert_eq!(result, Ok(sent("wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjA=")));
    let request = fake.last();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v21.0/1065550001/messages");
    assert_eq!(request.header("authorization"), Some("Bearer wa-token"));
    assert_eq!(
        request.json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6281234567890",
            "type": "text",
            "text": { "body": "Hi! See https://example.com", "preview_url": true },
        })
    );
}

#[tokio::test]
async fn whatsapp_media_template_buttons_and_list() {
    let fake = FakeProvider::start().await;
    let sender = fake.sender();
    let kind = ChannelType::Whatsapp;
    let account = Uuid::now_v7();
    let document = media(
        MediaKind::Document,
        "https://files.example.com/inv.pdf",
        "application/pdf",
        Some("Your invoice"),
        Some("invoice-42.pdf"),
    );
    let mut options = choices(2);
    options[0].description = Some("Billed monthly".into());
    let plans = OutboundContent::List {
        body: "Our plans".into(),
        button: "See plans".into(),
        options,
    };
    for content in [document, template(), quick_replies(2), plans] {
        send(&sender, kind, account, &message(kind, content))
            .await
            .unwrap();
    }
    let bodies: Vec<Json> = fake.requests().iter().map(|r| r.json()).collect();
    assert_eq!(bodies[0]["type"], "document");
    assert_eq!(
        bodies[0]["document"],
        json!({
            "link": "https://files.example.com/inv.pdf",
            "caption": "Your invoice",
            "filename": "invoice-42.pdf",
        })
    );
    assert_eq!(bodies[1]["type"], "template");
    assert_eq!(
        bodies[1]["template"],
        json!({
            "name": "order_shipped",
            "language": { "code": "id" },
            "components": [{
                "type": "body",
                "parameters": [
                    { "type": "text", "text": "Budi" },
                    { "type": "text", "text": "INV-42" },
                ],
            }],
        })
    );
    assert_eq!(bodies[2]["type"], "interactive");
    assert_eq!(
        bodies[2]["interactive"],
        json!({
            "type": "button",
            "body": { "text": "Pick one" },
            "action": { "buttons": [
                { "type": "reply", "reply": { "id": "opt-1", "title": "Option 1" } },
                { "type": "reply", "reply": { "id": "opt-2", "title": "Option 2" } },
            ]},
        })
    );
    assert_eq!(
        bodies[3]["interactive"],
        json!({
            "type": "list",
            "body": { "text": "Our plans" },
            "action": {
                "button": "See plans",
                "sections": [{
                    "title": "See plans",
                    "rows": [
                        { "id": "opt-1", "title": "Option 1", "description": "Billed monthly" },
                        { "id": "opt-2", "title": "Option 2" },
                    ],
                }],
            },
        })
    );
}

#[tokio::test]
async fn messenger_text_media_quick_replies_and_tag() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({ "recipient_id": "PSID-1", "message_id": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM" }),
    ));
    let sender = fake.sender();
    let kind = ChannelType::Messenger;
    let account = Uuid::now_v7();
    let result = send(&sender, kind, account, &message(kind, text("Hello"))).await;
    assert_eq!(result, Ok(sent("m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM")));
    let mut tagged = message(kind, text("Following up"));
    tagged.human_agent_tag = true;
    send(&sender, kind, account, &tagged).await.unwrap();
    let video = media(
        MediaKind::Video,
        "https://files.example.com/v.mp4",
        "video/mp4",
        None,
        None,
    );
    send(&sender, kind, account, &message(kind, video))
        .await
        .unwrap();
    send(&sender, kind, account, &message(kind, quick_replies(2)))
        .await
        .unwrap();

    let requests = fake.requests();
    assert!(requests
        .iter()
        .all(|r| r.path == "/v21.0/2025550002/messages"));
    assert!(requests
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer page-token")));
    assert_eq!(
        requests[0].json(),
        json!({
            "recipient": { "id": "PSID-1" },
            "messaging_type": "RESPONSE",
            "message": { "text": "Hello" },
        })
    );
    let tagged = requests[1].json();
    assert_eq!(tagged["messaging_type"], "MESSAGE_TAG");
    assert_eq!(tagged["tag"], "HUMAN_AGENT");
    assert_eq!(
        requests[2].json()["message"],
        json!({ "attachment": { "type": "video", "payload": { "url": "https://files.example.com/v.mp4" } } })
    );
    assert_eq!(
        requests[3].json()["message"],
        json!({
            "text": "Pick one",
            "quick_replies": [
                { "content_type": "text", "title": "Option 1", "payload": "opt-1" },
                { "content_type": "text", "title": "Option 2", "payload": "opt-2" },
            ],
        })
    );
}

#[tokio::test]
async fn instagram_text_media_and_list() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({ "recipient_id": "IGSID-1", "message_id": "aWdfZAG1faWRfaWQ" }),
    ));
    let sender = fake.sender();
    let kind = ChannelType::Instagram;
    let account = Uuid::now_v7();
    let result = send(&sender, kind, account, &message(kind, text("Hai"))).await;
    assert_eq!(result, Ok(sent("aWdfZAG1faWRfaWQ")));
    send(&sender, kind, account, &message(kind, image(None)))
        .await
        .unwrap();
    send(&sender, kind, account, &message(kind, list(10)))
        .await
        .unwrap();
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.path == "/v21.0/me/messages"));
    assert!(requests
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer ig-token")));
    assert_eq!(
        requests[0].json(),
        json!({ "recipient": { "id": "IGSID-1" }, "message": { "text": "Hai" } })
    );
    assert_eq!(
        requests[1].json()["message"]["attachment"],
        json!({ "type": "image", "payload": { "url": "https://files.example.com/a/photo.jpg" } })
    );
    let replies = requests[2].json()["message"]["quick_replies"].clone();
    assert_eq!(replies.as_array().unwrap().len(), 10);
    assert_eq!(replies[9]["payload"], "opt-10");
}

#[tokio::test]
async fn instagram_refuses_the_human_agent_tag_without_calling_meta() {
    let fake = FakeProvider::start().await;
    let kind = ChannelType::Instagram;
    let mut tagged = message(kind, text("Following up"));
    tagged.human_agent_tag = true;
    let error = send(&fake.sender(), kind, Uuid::now_v7(), &tagged)
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(error.reason.contains("HUMAN_AGENT"), "{}", error.reason);
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn telegram_text_buttons_list_and_media() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({ "ok": true, "result": { "message_id": 4711, "chat": { "id": 987654321, "type": "private" }, "date": 1700000000 } }),
    ));
    let sender = fake.sender();
    let kind = ChannelType::Telegram;
    let account = Uuid::now_v7();
    let result = send(&sender, kind, account, &message(kind, text("Halo"))).await;
    assert_eq!(result, Ok(sent("987654321:4711")));
    for content in [
        quick_replies(2),
        list(3),
        image(Some("Menu")),
        media(
            MediaKind::Document,
            "https://files.example.com/inv.pdf",
            "application/pdf",
            None,
            None,
        ),
        media(
            MediaKind::Audio,
            "https://files.example.com/note.ogg",
            "audio/ogg; codecs=opus",
            None,
            None,
        ),
    ] {
        send(&sender, kind, account, &message(kind, content))
            .await
            .unwrap();
    }
    let requests = fake.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/bot123456789:AAE-test-bot-token/sendMessage",
            "/bot123456789:AAE-test-bot-token/sendMessage",
            "/bot123456789:AAE-test-bot-token/sendMessage",
            "/bot123456789:AAE-test-bot-token/sendPhoto",
            "/bot123456789:AAE-test-bot-token/sendDocument",
            "/bot123456789:AAE-test-bot-token/sendVoice",
        ]
    );
    assert_eq!(
        requests[0].json(),
        json!({ "chat_id": 987654321, "text": "Halo" })
    );
    assert_eq!(
        requests[1].json()["reply_markup"],
        json!({ "inline_keyboard": [[
            { "text": "Option 1", "callback_data": "opt-1" },
            { "text": "Option 2", "callback_data": "opt-2" },
        ]]})
    );
    assert_eq!(
        requests[2].json()["reply_markup"]["inline_keyboard"],
        json!([
            [{ "text": "Option 1", "callback_data": "opt-1" }],
            [{ "text": "Option 2", "callback_data": "opt-2" }],
            [{ "text": "Option 3", "callback_data": "opt-3" }],
        ])
    );
    assert_eq!(
        requests[3].json(),
        json!({ "chat_id": 987654321, "photo": "https://files.example.com/a/photo.jpg", "caption": "Menu" })
    );
    assert_eq!(
        requests[4].json()["document"],
        "https://files.example.com/inv.pdf"
    );
    assert_eq!(
        requests[5].json()["voice"],
        "https://files.example.com/note.ogg"
    );
}

#[tokio::test]
async fn line_push_with_retry_key_quick_reply_and_image() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({ "sentMessages": [{ "id": "461230966842064897", "quoteToken": "IStG5h1Tz7b" }] }),
    ));
    let sender = fake.sender();
    let kind = ChannelType::Line;
    let account = Uuid::now_v7();
    let buttons = message(kind, quick_replies(2));
    let result = send(&sender, kind, account, &buttons).await;
    assert_eq!(result, Ok(sent("461230966842064897")));
    send(
        &sender,
        kind,
        account,
        &message(kind, image(Some("Menu hari ini"))),
    )
    .await
    .unwrap();
    let requests = fake.requests();
    assert_eq!(requests[0].path, "/v2/bot/message/push");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer line-token")
    );
    assert_eq!(
        requests[0].header("x-line-retry-key"),
        Some(buttons.id.to_string().as_str())
    );
    assert_eq!(
        requests[0].json(),
        json!({
            "to": "U4af4980629000000000000000000000a",
            "messages": [{
                "type": "text",
                "text": "Pick one",
                "quickReply": { "items": [
                    { "type": "action", "action": { "type": "postback", "label": "Option 1", "data": "opt-1", "displayText": "Option 1" } },
                    { "type": "action", "action": { "type": "postback", "label": "Option 2", "data": "opt-2", "displayText": "Option 2" } },
                ]},
            }],
        })
    );
    assert_eq!(
        requests[1].json()["messages"],
        json!([
            {
                "type": "image",
                "originalContentUrl": "https://files.example.com/a/photo.jpg",
                "previewImageUrl": "https://files.example.com/a/photo.jpg",
            },
            { "type": "text", "text": "Menu hari ini" },
        ])
    );
}

#[tokio::test]
async fn line_without_sent_messages_or_with_an_accepted_retry_key() {
    let fake = FakeProvider::start().await;
    // Older API versions answer `{}`; a repeated retry key answers 409.
    fake.reply(Reply::json(200, json!({})));
    fake.reply(Reply::json(
        409,
        json!({ "message": "The retry key is already accepted" }),
    ));
    let sender = fake.sender();
    let kind = ChannelType::Line;
    let nothing = Sent {
        provider_message_id: None,
    };
    let first = message(kind, text("Halo"));
    assert_eq!(
        send(&sender, kind, Uuid::now_v7(), &first).await,
        Ok(nothing.clone())
    );
    assert_eq!(
        send(&sender, kind, Uuid::now_v7(), &first).await,
        Ok(nothing)
    );
}

#[tokio::test]
async fn viber_reads_the_bot_name_once_and_sends_keyboards() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({ "status": 0, "status_message": "ok", "id": "pa:75346594275468546724", "name": "Toko Obrol Official Account Jakarta" }),
    ));
    fake.reply(Reply::json(
        200,
        json!({ "status": 0, "status_message": "ok", "message_token": 5741311803571721087u64, "chat_hostname": "SN-CHAT-05_" }),
    ));
    for token in [2, 3] {
        fake.reply(Reply::json(
            200,
            json!({ "status": 0, "message_token": token }),
        ));
    }
    let sender = fake.sender();
    let kind = ChannelType::Viber;
    let account = Uuid::now_v7();
    let result = send(&sender, kind, account, &message(kind, quick_replies(3))).await;
    assert_eq!(result, Ok(sent("5741311803571721087")));
    send(&sender, kind, account, &message(kind, list(2)))
        .await
        .unwrap();
    send(&sender, kind, account, &message(kind, image(Some("Menu"))))
        .await
        .unwrap();

    let requests = fake.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/pa/get_account_info",
            "/pa/send_message",
            "/pa/send_message",
            "/pa/send_message"
        ]
    );
    assert!(requests
        .iter()
        .all(|r| r.header("x-viber-auth-token") == Some("viber-token")));
    let name = "Toko Obrol Official Account";
    assert_eq!(
        requests[1].json(),
        json!({
            "receiver": "01234567890A=",
            "sender": { "name": name },
            "type": "text",
            "text": "Pick one",
            "keyboard": {
                "Type": "keyboard",
                "DefaultHeight": false,
                "Buttons": [
                    { "Columns": 2, "Rows": 1, "ActionType": "reply", "ActionBody": "opt-1", "Text": "Option 1" },
                    { "Columns": 2, "Rows": 1, "ActionType": "reply", "ActionBody": "opt-2", "Text": "Option 2" },
                    { "Columns": 2, "Rows": 1, "ActionType": "reply", "ActionBody": "opt-3", "Text": "Option 3" },
                ],
            },
        })
    );
    assert_eq!(requests[2].json()["keyboard"]["Buttons"][1]["Columns"], 6);
    let picture = requests[3].json();
    assert_eq!(picture["type"], "picture");
    assert_eq!(picture["media"], "https://files.example.com/a/photo.jpg");
    assert_eq!(picture["text"], "Menu");
}

#[tokio::test]
async fn viber_video_and_file_carry_the_size_their_host_reports() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(200, json!({ "status": 0, "name": "Toko" })));
    // The video's host honours the range; the document's host sends the whole length.
    fake.reply(Reply::text(206, "x").header("content-range", "bytes 0-0/1048576"));
    fake.reply(Reply::json(200, json!({ "status": 0, "message_token": 1 })));
    fake.reply(Reply::text(200, "%PDF-1.7 ..."));
    fake.reply(Reply::json(200, json!({ "status": 0, "message_token": 2 })));
    let sender = fake.sender();
    let kind = ChannelType::Viber;
    let account = Uuid::now_v7();
    let video = media(
        MediaKind::Video,
        &format!("{}/files/clip.mp4", fake.base),
        "video/mp4",
        None,
        None,
    );
    let document = media(
        MediaKind::Document,
        &format!("{}/files/a1b2/invoice-42.pdf", fake.base),
        "application/pdf",
        None,
        None,
    );
    assert_eq!(
        send(&sender, kind, account, &message(kind, video)).await,
        Ok(sent("1"))
    );
    assert_eq!(
        send(&sender, kind, account, &message(kind, document)).await,
        Ok(sent("2"))
    );
    let requests = fake.requests();
    assert_eq!(requests[1].method, "GET");
    assert_eq!(requests[1].path, "/files/clip.mp4");
    assert_eq!(requests[1].header("range"), Some("bytes=0-0"));
    assert_eq!(requests[1].header("x-viber-auth-token"), None);
    let video = requests[2].json();
    assert_eq!(
        (video["type"].clone(), video["size"].clone()),
        (json!("video"), json!(1048576))
    );
    let file = requests[4].json();
    assert_eq!(file["type"], "file");
    assert_eq!(file["size"], 12);
    assert_eq!(file["file_name"], "invoice-42.pdf");
}

#[tokio::test]
async fn viber_failure_statuses() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(200, json!({ "status": 0, "name": "Toko" })));
    fake.reply(Reply::json(
        200,
        json!({ "status": 6, "status_message": "receiverNotSubscribed" }),
    ));
    fake.reply(Reply::json(
        200,
        json!({ "status": 12, "status_message": "tooManyRequests" }),
    ));
    let sender = fake.sender();
    let kind = ChannelType::Viber;
    let account = Uuid::now_v7();
    let unsubscribed = send(&sender, kind, account, &message(kind, text("Halo")))
        .await
        .unwrap_err();
    assert_eq!(
        unsubscribed,
        SendError::permanent("6: receiverNotSubscribed")
    );
    let limited = send(&sender, kind, account, &message(kind, text("Halo")))
        .await
        .unwrap_err();
    assert_eq!(limited, SendError::retryable("12: tooManyRequests", None));
}

#[tokio::test]
async fn wechat_token_is_fetched_once_and_cached() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({ "access_token": "ACCESS-TOKEN-1", "expires_in": 7200 }),
    ));
    fake.reply(Reply::json(200, json!({ "errcode": 0, "errmsg": "ok" })));
    fake.reply(Reply::json(
        200,
        json!({ "errcode": 0, "errmsg": "ok", "msgid": 9876543210u64 }),
    ));
    let sender = fake.sender();
    let kind = ChannelType::Wechat;
    let account = Uuid::now_v7();
    let first = send(&sender, kind, account, &message(kind, text("您好"))).await;
    assert_eq!(
        first,
        Ok(Sent {
            provider_message_id: None
        })
    );
    let second = send(&sender, kind, account, &message(kind, text("再见"))).await;
    assert_eq!(second, Ok(sent("9876543210")));

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/cgi-bin/token");
    assert_eq!(
        requests[0].query("grant_type").as_deref(),
        Some("client_credential")
    );
    assert_eq!(requests[0].query("appid").as_deref(), Some("wx1234567890"));
    assert_eq!(
        requests[0].query("secret").as_deref(),
        Some("wechat-secret")
    );
    for request in &requests[1..] {
        assert_eq!(request.path, "/cgi-bin/message/custom/send");
        assert_eq!(
            request.query("access_token").as_deref(),
            Some("ACCESS-TOKEN-1")
        );
    }
    assert_eq!(
        requests[1].json(),
        json!({ "touser": "oOPENID-1", "msgtype": "text", "text": { "content": "您好" } })
    );
}

#[tokio::test]
async fn wechat_expired_token_is_dropped_and_the_send_retryable() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({ "access_token": "OLD", "expires_in": 7200 }),
    ));
    fake.reply(Reply::json(
        200,
        json!({ "errcode": 42001, "errmsg": "access_token expired rid: 64f0a1b2-1c2d3e4f" }),
    ));
    fake.reply(Reply::json(
        200,
        json!({ "access_token": "NEW", "expires_in": 7200 }),
    ));
    fake.reply(Reply::json(200, json!({ "errcode": 0, "errmsg": "ok" })));
    let sender = fake.sender();
    let kind = ChannelType::Wechat;
    let account = Uuid::now_v7();
    let expired = send(&sender, kind, account, &message(kind, text("您好")))
        .await
        .unwrap_err();
    assert!(expired.retryable);
    assert!(
        expired.reason.starts_with("42001: access_token expired"),
        "{}",
        expired.reason
    );
    send(&sender, kind, account, &message(kind, text("您好")))
        .await
        .unwrap();
    let requests = fake.requests();
    assert_eq!(requests[2].path, "/cgi-bin/token");
    assert_eq!(requests[3].query("access_token").as_deref(), Some("NEW"));
}

#[tokio::test]
async fn wechat_refusals() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({ "errcode": 40125, "errmsg": "invalid appsecret" }),
    ));
    fake.reply(Reply::json(
        200,
        json!({ "access_token": "T", "expires_in": 7200 }),
    ));
    fake.reply(Reply::json(
        200,
        json!({ "errcode": 45015, "errmsg": "response out of time limit or subscription is canceled" }),
    ));
    let sender = fake.sender();
    let kind = ChannelType::Wechat;
    let account = Uuid::now_v7();
    let bad_secret = send(&sender, kind, account, &message(kind, text("您好")))
        .await
        .unwrap_err();
    assert_eq!(
        bad_secret,
        SendError::permanent("WeChat gave no access token: 40125: invalid appsecret")
    );
    let too_late = send(&sender, kind, account, &message(kind, text("您好")))
        .await
        .unwrap_err();
    assert!(!too_late.retryable);
    assert!(too_late
        .reason
        .starts_with("45015: response out of time limit"));
}

#[tokio::test]
async fn twilio_text_and_media_form() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        201,
        json!({ "sid": "SM1f0e8ae6ade43cb3c0ce4525424e404f", "status": "queued" }),
    ));
    let sender = fake.sender();
    let kind = ChannelType::Sms;
    let account = Uuid::now_v7();
    let result = send(
        &sender,
        kind,
        account,
        &message(kind, text("Kode Anda 1234")),
    )
    .await;
    assert_eq!(result, Ok(sent("SM1f0e8ae6ade43cb3c0ce4525424e404f")));
    send(&sender, kind, account, &message(kind, image(Some("Struk"))))
        .await
        .unwrap();

    let requests = fake.requests();
    let basic = base64::engine::general_purpose::STANDARD
        .encode("AC00000000000000000000000000000005:twilio-token");
    for request in &requests {
        assert_eq!(
            request.path,
            "/2010-04-01/Accounts/AC00000000000000000000000000000005/Messages.json"
        );
        assert_eq!(
            request.header("authorization"),
            Some(format!("Basic {basic}").as_str())
        );
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(request.form("To").as_deref(), Some("+6281234567890"));
        assert_eq!(request.form("From").as_deref(), Some("+15550100000"));
        assert_eq!(
            request.form("StatusCallback").as_deref(),
            Some("https://obrol.example.com/webhooks/sms/acc")
        );
    }
    assert_eq!(requests[0].form("Body").as_deref(), Some("Kode Anda 1234"));
    assert_eq!(requests[0].form("MediaUrl"), None);
    assert_eq!(
        requests[1].form("MediaUrl").as_deref(),
        Some("https://files.example.com/a/photo.jpg")
    );
    assert_eq!(requests[1].form("Body").as_deref(), Some("Struk"));
}

// ---- sending: failures ----

#[tokio::test]
async fn rate_limits_are_retryable_with_retry_after_on_every_provider() {
    for kind in PROVIDERS {
        let fake = FakeProvider::start().await;
        fake.reply(Reply::json(429, json!({})).header("retry-after", "30"));
        let error = send(
            &fake.sender(),
            kind,
            Uuid::now_v7(),
            &message(kind, text("Hi")),
        )
        .await
        .unwrap_err();
        assert!(error.retryable, "{kind:?}: {error:?}");
        assert_eq!(error.retry_after, Some(Duration::from_secs(30)), "{kind:?}");
    }
}

#[tokio::test]
async fn server_errors_are_retryable_on_every_provider() {
    for kind in PROVIDERS {
        let fake = FakeProvider::start().await;
        fake.reply(Reply::text(500, "<html>Internal Server Error</html>"));
        let error = send(
            &fake.sender(),
            kind,
            Uuid::now_v7(),
            &message(kind, text("Hi")),
        )
        .await
        .unwrap_err();
        assert_eq!(error, SendError::retryable("HTTP 500", None), "{kind:?}");
    }
}

#[tokio::test]
async fn provider_errors_are_permanent_with_the_providers_reason() {
    let cases: [(ChannelType, Json, &str); 6] = [
        (
            ChannelType::Whatsapp,
            json!({ "error": {
                "message": "Re-engagement message", "type": "OAuthException", "code": 131047,
                "error_data": { "messaging_product": "whatsapp", "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number." },
                "fbtrace_id": "AbCdEf"
            }}),
            "131047: Re-engagement message (Message failed to send because more than 24 hours have passed since the customer last replied to this number.)",
        ),
        (
            ChannelType::Messenger,
            json!({ "error": { "message": "(#100) No matching user found", "type": "OAuthException", "code": 100, "error_subcode": 2018001, "fbtrace_id": "x" } }),
            "100: (#100) No matching user found",
        ),
        (
            ChannelType::Instagram,
            json!({ "error": { "message": "(#10) This message is sent outside of allowed window.", "type": "OAuthException", "code": 10, "error_subcode": 2534022 } }),
            "10: (#10) This message is sent outside of allowed window.",
        ),
        (
            ChannelType::Telegram,
            json!({ "ok": false, "error_code": 400, "description": "Bad Request: chat not found" }),
            "400: Bad Request: chat not found",
        ),
        (
            ChannelType::Line,
            json!({ "message": "The request body has 1 error(s)", "details": [{ "message": "May not be empty", "property": "messages[0].text" }] }),
            "The request body has 1 error(s) (messages[0].text: May not be empty)",
        ),
        (
            ChannelType::Sms,
            json!({ "code": 21211, "message": "Invalid 'To' Phone Number: +62812345", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400 }),
            "21211: Invalid 'To' Phone Number: +62812345",
        ),
    ];
    for (kind, body, reason) in cases {
        let fake = FakeProvider::start().await;
        fake.reply(Reply::json(400, body));
        let error = send(
            &fake.sender(),
            kind,
            Uuid::now_v7(),
            &message(kind, text("Hi")),
        )
        .await
        .unwrap_err();
        assert_eq!(error, SendError::permanent(reason), "{kind:?}");
    }
}

#[tokio::test]
async fn meta_throttling_is_retryable_even_with_status_400() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        400,
        json!({ "error": { "message": "(#130429) Rate limit hit", "code": 130429 } }),
    ));
    fake.reply(Reply::json(
        400,
        json!({ "error": { "message": "An unexpected error has occurred. Please retry your request later.", "code": 999, "is_transient": true } }),
    ));
    let sender = fake.sender();
    let kind = ChannelType::Whatsapp;
    for _ in 0..2 {
        let error = send(&sender, kind, Uuid::now_v7(), &message(kind, text("Hi")))
            .await
            .unwrap_err();
        assert!(error.retryable, "{error:?}");
    }
}

#[tokio::test]
async fn telegram_flood_control_names_its_wait_in_the_body() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        429,
        json!({ "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 17", "parameters": { "retry_after": 17 } }),
    ));
    let kind = ChannelType::Telegram;
    let error = send(
        &fake.sender(),
        kind,
        Uuid::now_v7(),
        &message(kind, text("Hi")),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error,
        SendError::retryable(
            "429: Too Many Requests: retry after 17",
            Some(Duration::from_secs(17))
        )
    );
}

#[tokio::test]
async fn timeouts_may_have_delivered_refused_connections_did_not_and_neither_names_a_secret() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(200, json!({ "ok": true })).after(Duration::from_secs(3)));
    let impatient = Sender::new(Some(fake.base.clone()), Duration::from_millis(300));
    let kind = ChannelType::Telegram;
    let timeout = send(&impatient, kind, Uuid::now_v7(), &message(kind, text("Hi")))
        .await
        .unwrap_err();
    // The request went out: the provider may have the message, so it is not "safe to retry".
    assert_eq!(
        timeout,
        SendError::unknown("the provider did not answer in time")
    );
    assert!(timeout.maybe_delivered);

    // A port nobody listens on any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let nowhere = Sender::new(Some(format!("http://{address}")), Duration::from_secs(2));
    for kind in PROVIDERS {
        let error = send(&nowhere, kind, Uuid::now_v7(), &message(kind, text("Hi")))
            .await
            .unwrap_err();
        assert!(error.retryable, "{kind:?}: {error:?}");
        assert!(!error.maybe_delivered, "nothing was sent: {kind:?}");
        assert!(!error.reason.contains(BOT_TOKEN) && !error.reason.contains("token"));
    }
}

#[tokio::test]
async fn missing_credentials_and_refused_content_fail_for_good_without_a_request() {
    let fake = FakeProvider::start().await;
    let sender = fake.sender();
    let kind = ChannelType::Whatsapp;
    let mut partial = credentials(kind);
    partial.remove("phone_number_id");
    let error = sender
        .send(
            kind,
            Uuid::now_v7(),
            &partial,
            "",
            &message(kind, text("Hi")),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        SendError::permanent(
            "the channel's credentials have no 'phone_number_id'; reconnect the channel"
        )
    );
    let error = send(
        &sender,
        ChannelType::Sms,
        Uuid::now_v7(),
        &message(ChannelType::Sms, quick_replies(2)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error,
        SendError::permanent("SMS cannot carry buttons; send the options as text")
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn an_unreadable_success_still_counts_as_sent() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::text(200, "<html>ok</html>"));
    let kind = ChannelType::Whatsapp;
    let result = send(
        &fake.sender(),
        kind,
        Uuid::now_v7(),
        &message(kind, text("Hi")),
    )
    .await;
    assert_eq!(
        result,
        Ok(Sent {
            provider_message_id: None
        })
    );
}

#[tokio::test]
async fn line_monthly_quota_and_wechat_busy() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        429,
        json!({ "message": "You have reached your monthly limit." }),
    ));
    let kind = ChannelType::Line;
    let spent = send(
        &fake.sender(),
        kind,
        Uuid::now_v7(),
        &message(kind, text("Hi")),
    )
    .await
    .unwrap_err();
    assert_eq!(
        spent,
        SendError::permanent("You have reached your monthly limit.")
    );

    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({ "access_token": "T", "expires_in": 7200 }),
    ));
    fake.reply(Reply::json(
        200,
        json!({ "errcode": -1, "errmsg": "system error" }),
    ));
    let kind = ChannelType::Wechat;
    let busy = send(
        &fake.sender(),
        kind,
        Uuid::now_v7(),
        &message(kind, text("您好")),
    )
    .await
    .unwrap_err();
    assert_eq!(busy, SendError::retryable("-1: system error", None));
}
