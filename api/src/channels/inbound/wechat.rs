//! WeChat Official Account messages, in plaintext mode. Every request carries `signature`,
//! `timestamp` and `nonce` in its query: the signature is the hex SHA-1 of the account's
//! token, the timestamp and the nonce, sorted and joined. A GET with `echostr` is the set-up
//! check; a POST carries one XML message or event.
//!
//! Safe mode (`encrypt_type=aes`) encrypts the body with the EncodingAESKey; it is refused
//! with a clear reason, since only plaintext mode is supported.
//!
//! Read: text, image, voice, video, shortvideo, location and link messages; the `subscribe`
//! and menu `CLICK` events (as postbacks, so a bot can greet or answer them); and
//! `TEMPLATESENDJOBFINISH` (the fate of a template message we sent). Other events
//! (unsubscribe, SCAN, VIEW, LOCATION reports, ...) produce nothing.

use std::collections::HashMap;

use axum::http::Method;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;
use sha1::{Digest, Sha1};

use super::{
    cap_optional, cap_text, credential, query_param, same_secret, unix_seconds, unsupported,
    Credentials, Reply, WebhookError, WebhookRequest,
};
use crate::channels::model::{
    Content, DeliveryStatus, InboundEvent, InboundMessage, MediaKind, StatusUpdate,
};

pub(super) fn receive(
    credentials: &Credentials,
    request: &WebhookRequest<'_>,
) -> Result<Reply, WebhookError> {
    if request.method != Method::GET && request.method != Method::POST {
        return Err(WebhookError::MethodNotAllowed);
    }
    let token = credential(credentials, "token")?;
    let param = |name: &str| query_param(request.query, name).unwrap_or_default();
    let expected = signature(token, &param("timestamp"), &param("nonce"));
    if !same_secret(&param("signature").to_ascii_lowercase(), &expected) {
        return Err(WebhookError::Unauthorized(
            "the signature query parameter does not match".into(),
        ));
    }
    if request.method == Method::GET {
        return match query_param(request.query, "echostr") {
            Some(echo) if !echo.is_empty() => Ok(Reply::Challenge(echo)),
            _ => Err(WebhookError::BadRequest(
                "a WeChat verification request has an echostr".into(),
            )),
        };
    }
    if query_param(request.query, "encrypt_type").is_some_and(|mode| mode != "raw") {
        return Err(WebhookError::BadRequest(
            "the account is in WeChat's safe (encrypted) mode; Obrol supports plaintext mode \
             only: set message encryption to plaintext (明文模式) in the Official Account settings"
                .into(),
        ));
    }
    let text = std::str::from_utf8(request.body)
        .map_err(|_| WebhookError::BadRequest("the WeChat body is not UTF-8 text".into()))?;
    let fields = xml_fields(text)?;
    Ok(Reply::Events(translate(&fields).into_iter().collect()))
}

/// The hex SHA-1 of the token, timestamp and nonce, sorted as strings and concatenated.
fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The children of the root `<xml>` element, by name, with their text (CDATA or escaped
/// text; nested elements' text is ignored). WeChat's messages are one flat level.
fn xml_fields(text: &str) -> Result<HashMap<String, String>, WebhookError> {
    let bad = |reason: &str| WebhookError::BadRequest(format!("the WeChat body {reason}"));
    let mut reader = Reader::from_str(text);
    let mut fields = HashMap::new();
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut current: Option<String> = None;
    let mut value = String::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|_| bad("is not well-formed XML"))?;
        match event {
            Event::Start(start) => {
                depth = depth.saturating_add(1);
                let name = start.name().as_ref().to_string();
                if depth == 1 {
                    if root_seen || name != "xml" {
                        return Err(bad("is not an <xml> message"));
                    }
                    root_seen = true;
                } else if depth == 2 {
                    current = Some(name);
                    value.clear();
                }
            }
            Event::Empty(start) => {
                let name = start.name().as_ref().to_string();
                if depth == 0 {
                    if root_seen || name != "xml" {
                        return Err(bad("is not an <xml> message"));
                    }
                    root_seen = true;
                } else if depth == 1 {
                    fields.insert(name, String::new());
                }
            }
            Event::End(_) => {
                if depth == 2 {
                    if let Some(name) = current.take() {
                        fields.insert(name, std::mem::take(&mut value));
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(content) if depth == 2 => value.push_str(&content.xml10_content()),
            Event::CData(content) if depth == 2 => value.push_str(&content.xml10_content()),
            Event::GeneralRef(reference) if depth == 2 => {
                // Character references and the five predefined entities; any other entity
                // (declared in a DTD, which we never expand) is kept as written.
                match reference.resolve_char_ref() {
                    Ok(Some(character)) => value.push(character),
                    _ => match resolve_predefined_entity(&reference) {
                        Some(replacement) => value.push_str(replacement),
                        None => {
                            value.push('&');
                            value.push_str(&reference);
                            value.push(';');
                        }
                    },
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err(bad("is not an <xml> message"));
    }
    if depth != 0 {
        return Err(bad("ends before its elements close"));
    }
    Ok(fields)
}

fn translate(fields: &HashMap<String, String>) -> Option<InboundEvent> {
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let owned = |name: &str| cap_optional(fields.get(name).cloned());
    let from = field("FromUserName");
    if from.is_empty() {
        return None;
    }
    let created = field("CreateTime");
    let sent_at = unix_seconds(created.trim().parse().ok());
    let message = |provider_message_id: String, content: Content| {
        Some(InboundEvent::Message(InboundMessage {
            provider_message_id,
            from: from.to_string(),
            profile_name: None,
            phone: None,
            sent_at,
            content,
        }))
    };
    let msg_type = field("MsgType");
    if msg_type == "event" {
        return event(fields, from, created, sent_at);
    }
    let msg_id = field("MsgId");
    if msg_id.is_empty() {
        return None;
    }
    let media = |media: MediaKind, url: Option<String>, caption: Option<String>| Content::Media {
        media,
        url,
        provider_media_id: owned("MediaId"),
        mime_type: None,
        filename: None,
        caption,
    };
    let content = match msg_type {
        "text" => Content::Text {
            body: cap_text(field("Content").to_string()),
        },
        "image" => media(MediaKind::Image, owned("PicUrl"), None),
        // `Recognition` is WeChat's transcript, when speech recognition is on.
        "voice" => media(MediaKind::Audio, None, owned("Recognition")),
        "video" | "shortvideo" => media(MediaKind::Video, None, None),
        "location" => {
            let coordinate = |name: &str| {
                field(name)
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|value| value.is_finite())
            };
            match (coordinate("Location_X"), coordinate("Location_Y")) {
                (Some(latitude), Some(longitude)) => Content::Location {
                    latitude,
                    longitude,
                    name: None,
                    address: owned("Label"),
                },
                _ => unsupported("location"),
            }
        }
        // A shared article: its title and URL as text, which the agent can open.
        "link" => {
            let url = field("Url");
            let title = field("Title");
            match (title.is_empty(), url.is_empty()) {
                (_, true) => unsupported("link"),
                (true, false) => Content::Text {
                    body: cap_text(url.to_string()),
                },
                (false, false) => Content::Text {
                    body: cap_text(format!("{title}\n{url}")),
                },
            }
        }
        other => unsupported(other),
    };
    message(msg_id.to_string(), content)
}

/// Events have no MsgId: their id is the sender, time, event and key, which a retry repeats.
fn event(
    fields: &HashMap<String, String>,
    from: &str,
    created: &str,
    sent_at: chrono::DateTime<chrono::Utc>,
) -> Option<InboundEvent> {
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let name = field("Event");
    let key = field("EventKey");
    let payload = match name {
        // A new follower; from a QR code, the key is "qrscene_<scene>".
        "subscribe" if key.is_empty() => "subscribe".to_string(),
        "subscribe" => format!("subscribe:{key}"),
        // A custom menu button: the key is the one we configured for it.
        "CLICK" if !key.is_empty() => key.to_string(),
        "TEMPLATESENDJOBFINISH" => return template_result(fields, sent_at),
        _ => return None,
    };
    let mut provider_message_id = format!("{from}:{created}:{name}");
    if !key.is_empty() {
        provider_message_id.push(':');
        provider_message_id.push_str(key);
    }
    Some(InboundEvent::Message(InboundMessage {
        provider_message_id: cap_text(provider_message_id),
        from: from.to_string(),
        profile_name: None,
        phone: None,
        sent_at,
        content: Content::Postback {
            payload: cap_text(payload),
            title: None,
        },
    }))
}

/// The outcome of a template message we sent: `Status` is "success" or "failed:<why>".
fn template_result(
    fields: &HashMap<String, String>,
    at: chrono::DateTime<chrono::Utc>,
) -> Option<InboundEvent> {
    // WeChat spells it MsgID in this event.
    let id = fields
        .get("MsgID")
        .or_else(|| fields.get("MsgId"))
        .filter(|id| !id.is_empty())?;
    let outcome = fields.get("Status").map(String::as_str).unwrap_or_default();
    let (status, reason) = if outcome == "success" {
        (DeliveryStatus::Delivered, None)
    } else {
        (
            DeliveryStatus::Failed,
            cap_optional(Some(outcome.to_string())),
        )
    };
    Some(InboundEvent::Status(StatusUpdate {
        provider_message_id: id.clone(),
        status,
        reason,
        at,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        credentials, events, garbage_survives, is_bad_request, is_unauthorized, messages, statuses,
        TestRequest,
    };
    use super::*;
    use chrono::DateTime;

    const TOKEN: &str = "obrolWeChatToken";

    fn account() -> Credentials {
        credentials(&[
            ("app_id", "wx1234567890abcdef"),
            ("app_secret", "secret"),
            ("token", TOKEN),
        ])
    }

    /// The query WeChat adds, signed as documented: sort, join, SHA-1, hex.
    fn signed_query(timestamp: &str, nonce: &str, extra: &str) -> String {
        let mut parts = [TOKEN, timestamp, nonce];
        parts.sort();
        let digest = hex::encode(Sha1::digest(parts.concat().as_bytes()));
        format!("signature={digest}&timestamp={timestamp}&nonce={nonce}{extra}")
    }

    fn post(xml: &str) -> TestRequest {
        TestRequest {
            query: signed_query("1700000000", "405839238", "&openid=oUser123"),
            ..TestRequest::post(xml)
        }
    }

    fn deliver(request: &TestRequest) -> Result<Reply, WebhookError> {
        receive(&account(), &request.as_request())
    }

    #[test]
    fn signature_matches_a_hand_computed_value() {
        // Sorted as strings: "1409304348" < "nonce123" < "obrolWeChatToken".
        let expected = hex::encode(Sha1::digest(b"1409304348nonce123obrolWeChatToken"));
        assert_eq!(signature(TOKEN, "1409304348", "nonce123"), expected);
    }

    #[test]
    fn echostr_handshake() {
        let request = TestRequest::get(&signed_query(
            "1700000000",
            "1514711492",
            "&echostr=5837397520521790405",
        ));
        assert_eq!(
            deliver(&request),
            Ok(Reply::Challenge("5837397520521790405".into()))
        );
        let forged = TestRequest::get(
            "signature=0000000000000000000000000000000000000000&timestamp=1&nonce=2&echostr=x",
        );
        assert!(is_unauthorized(&deliver(&forged)));
        let unsigned = TestRequest::get("echostr=x");
        assert!(is_unauthorized(&deliver(&unsigned)));
        let no_echo = TestRequest::get(&signed_query("1700000000", "1514711492", ""));
        assert!(is_bad_request(&deliver(&no_echo)));
    }

    #[test]
    fn unsigned_posts_are_refused() {
        let xml = "<xml><FromUserName><![CDATA[oUser123]]></FromUserName></xml>";
        let mut request = post(xml);
        request.query = request.query.replace("nonce=405839238", "nonce=405839239");
        assert!(is_unauthorized(&deliver(&request)));
        assert!(is_unauthorized(&deliver(&TestRequest::post(xml))));
        let mut put = post(xml);
        put.method = Method::PUT;
        assert_eq!(deliver(&put), Err(WebhookError::MethodNotAllowed));
    }

    #[test]
    fn text_message() {
        let xml = "<xml>\n  <ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>\n  \
                   <FromUserName><![CDATA[oUser123]]></FromUserName>\n  <CreateTime>1348831860</CreateTime>\n  \
                   <MsgType><![CDATA[text]]></MsgType>\n  <Content><![CDATA[你好 & <hi>]]></Content>\n  \
                   <MsgId>1234567890123456</MsgId>\n</xml>";
        assert_eq!(
            messages(deliver(&post(xml))),
            vec![InboundMessage {
                provider_message_id: "1234567890123456".into(),
                from: "oUser123".into(),
                profile_name: None,
                phone: None,
                sent_at: DateTime::from_timestamp(1_348_831_860, 0).unwrap(),
                content: Content::Text {
                    body: "你好 & <hi>".into()
                },
            }]
        );
        // Escaped text rather than CDATA reads the same.
        let escaped = "<xml><FromUserName>oUser123</FromUserName><CreateTime>1</CreateTime>\
                       <MsgType>text</MsgType><Content>a &amp; b &#x4f60;</Content><MsgId>9</MsgId></xml>";
        assert_eq!(
            messages(deliver(&post(escaped)))[0].content,
            Content::Text {
                body: "a & b 你".into()
            }
        );
    }

    #[test]
    fn media_location_and_link() {
        let wrap = |inner: &str| {
            format!(
                "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>\
                 <FromUserName><![CDATA[oUser123]]></FromUserName><CreateTime>1348831860</CreateTime>{inner}</xml>"
            )
        };
        let cases = [
            (
                "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.qpic.cn/x]]></PicUrl>\
                 <MediaId><![CDATA[media_id_1]]></MediaId><MsgId>1</MsgId>",
                Content::Media {
                    media: MediaKind::Image,
                    url: Some("http://mmbiz.qpic.cn/x".into()),
                    provider_media_id: Some("media_id_1".into()),
                    mime_type: None,
                    filename: None,
                    caption: None,
                },
            ),
            (
                "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[media_id_2]]></MediaId>\
                 <Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯微信团队]]></Recognition><MsgId>2</MsgId>",
                Content::Media {
                    media: MediaKind::Audio,
                    url: None,
                    provider_media_id: Some("media_id_2".into()),
                    mime_type: None,
                    filename: None,
                    caption: Some("腾讯微信团队".into()),
                },
            ),
            (
                "<MsgType><![CDATA[shortvideo]]></MsgType><MediaId><![CDATA[media_id_3]]></MediaId>\
                 <ThumbMediaId><![CDATA[thumb]]></ThumbMediaId><MsgId>3</MsgId>",
                Content::Media {
                    media: MediaKind::Video,
                    url: None,
                    provider_media_id: Some("media_id_3".into()),
                    mime_type: None,
                    filename: None,
                    caption: None,
                },
            ),
            (
                "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X>\
                 <Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>4</MsgId>",
                Content::Location {
                    latitude: 23.134521,
                    longitude: 113.358803,
                    name: None,
                    address: Some("位置信息".into()),
                },
            ),
            (
                "<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[公众平台官网链接]]></Title>\
                 <Description><![CDATA[描述]]></Description><Url><![CDATA[https://mp.weixin.qq.com/]]></Url><MsgId>5</MsgId>",
                Content::Text {
                    body: "公众平台官网链接\nhttps://mp.weixin.qq.com/".into(),
                },
            ),
        ];
        for (inner, expected) in cases {
            let got = messages(deliver(&post(&wrap(inner))));
            assert_eq!(got.len(), 1, "{inner}");
            assert_eq!(got[0].content, expected);
        }
    }

    #[test]
    fn subscribe_and_menu_click_are_postbacks() {
        let event = |name: &str, key: Option<&str>| {
            let key = key
                .map(|key| format!("<EventKey><![CDATA[{key}]]></EventKey>"))
                .unwrap_or_default();
            format!(
                "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>\
                 <FromUserName><![CDATA[oUser123]]></FromUserName><CreateTime>123456789</CreateTime>\
                 <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{name}]]></Event>{key}</xml>"
            )
        };
        let got = messages(deliver(&post(&event("subscribe", None))));
        assert_eq!(got[0].provider_message_id, "oUser123:123456789:subscribe");
        assert_eq!(
            got[0].content,
            Content::Postback {
                payload: "subscribe".into(),
                title: None
            }
        );
        let got = messages(deliver(&post(&event("subscribe", Some("qrscene_123123")))));
        assert_eq!(
            got[0].content,
            Content::Postback {
                payload: "subscribe:qrscene_123123".into(),
                title: None
            }
        );
        let got = messages(deliver(&post(&event("CLICK", Some("MENU_PRICES")))));
        assert_eq!(
            got[0].provider_message_id,
            "oUser123:123456789:CLICK:MENU_PRICES"
        );
        assert_eq!(
            got[0].content,
            Content::Postback {
                payload: "MENU_PRICES".into(),
                title: None
            }
        );
        for ignored in ["unsubscribe", "VIEW", "LOCATION", "SCAN"] {
            assert_eq!(
                events(deliver(&post(&event(ignored, Some("x"))))),
                vec![],
                "{ignored}"
            );
        }
    }

    #[test]
    fn template_job_results_are_statuses() {
        let xml = |status: &str| {
            format!(
                "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>\
                 <FromUserName><![CDATA[oUser123]]></FromUserName><CreateTime>1395658920</CreateTime>\
                 <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>\
                 <MsgID>200163836</MsgID><Status><![CDATA[{status}]]></Status></xml>"
            )
        };
        let got = statuses(deliver(&post(&xml("success"))));
        assert_eq!(got[0].provider_message_id, "200163836");
        assert_eq!(got[0].status, DeliveryStatus::Delivered);
        let got = statuses(deliver(&post(&xml("failed:user block"))));
        assert_eq!(got[0].status, DeliveryStatus::Failed);
        assert_eq!(got[0].reason.as_deref(), Some("failed:user block"));
    }

    #[test]
    fn safe_mode_is_refused_clearly() {
        let request = TestRequest {
            query: signed_query(
                "1700000000",
                "405839238",
                "&openid=oUser123&encrypt_type=aes&msg_signature=abc",
            ),
            ..TestRequest::post("<xml><ToUserName>gh</ToUserName><Encrypt>xyz</Encrypt></xml>")
        };
        match deliver(&request) {
            Err(WebhookError::BadRequest(reason)) => assert!(reason.contains("plaintext")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_xml_is_a_bad_request() {
        for body in [
            "",
            "not xml",
            "<xml><Content>unclosed</xml>",
            "<xml><MsgType>text</MsgType>",
            "<other><MsgType>text</MsgType></other>",
            "<xml></xml><xml></xml>",
        ] {
            assert!(is_bad_request(&deliver(&post(body))), "{body}");
        }
        let mut binary = post("");
        binary.body = vec![0xff, 0xfe, 0x3c];
        assert!(is_bad_request(&deliver(&binary)));
    }

    #[test]
    fn garbage_does_not_panic() {
        let sample = "<xml><FromUserName><![CDATA[o]]></FromUserName><CreateTime>99999999999999999999</CreateTime>\
                      <MsgType><![CDATA[location]]></MsgType><Location_X>NaN</Location_X><Location_Y>inf</Location_Y>\
                      <Label>&unknown;&#0;&#xD800;</Label><MsgId>1</MsgId><Event>CLICK</Event></xml>";
        garbage_survives(sample.as_bytes(), |body| {
            let mut request = post("");
            request.body = body.to_vec();
            let _ = deliver(&request);
        });
    }
}
