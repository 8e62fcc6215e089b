//! Twilio Programmable Messaging webhooks: form-encoded POSTs, for an incoming SMS/MMS and
//! for status callbacks of the messages we send (we pass the account's webhook URL as their
//! `StatusCallback`).
//!
//! `X-Twilio-Signature` is the base64 HMAC-SHA1, under the auth token, of the URL Twilio
//! called followed by every POST parameter's name and value, sorted by name.
//!
//! Choices where Twilio leaves room:
//! - An `AccountSid` other than the account's is refused as `Unauthorized`: the request is
//!   not for this account, however it was signed.
//! - A request whose `SmsStatus`/`MessageStatus` is "received" (or that has neither but has
//!   a Body or media) is an incoming message; any other status is a status callback.
//! - An MMS becomes one message per part: the Body (when not empty) under the MessageSid,
//!   then media `n` (MediaUrl<n>) under "<MessageSid>/<n>", except that the first part keeps
//!   the bare MessageSid when there is no Body (see `split_parts`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::{
    cap_optional, cap_text, credential, header, hmac_sha1_matches, media_kind_for_mime,
    require_post, same_secret, split_parts, Credentials, Reply, WebhookError, WebhookRequest,
};
use crate::channels::model::{Content, DeliveryStatus, InboundEvent, InboundMessage, StatusUpdate};

/// Twilio attaches at most ten media files to a message.
const MAX_MEDIA: usize = 10;

pub(super) fn receive(
    credentials: &Credentials,
    request: &WebhookRequest<'_>,
) -> Result<Reply, WebhookError> {
    require_post(request)?;
    let auth_token = credential(credentials, "auth_token")?;
    let account_sid = credential(credentials, "account_sid")?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(request.body)
        .into_owned()
        .collect();
    let signature = header(request, "x-twilio-signature")
        .and_then(|value| BASE64.decode(value.trim()).ok())
        .ok_or_else(|| {
            WebhookError::Unauthorized("X-Twilio-Signature is missing or malformed".into())
        })?;
    let signed = signed_text(request.url, &params);
    if !hmac_sha1_matches(auth_token.as_bytes(), signed.as_bytes(), &signature) {
        return Err(WebhookError::Unauthorized(
            "X-Twilio-Signature does not match the URL and parameters".into(),
        ));
    }
    let form = Form(params);
    if !same_secret(form.get("AccountSid").unwrap_or_default(), account_sid) {
        return Err(WebhookError::Unauthorized(
            "the request is for another Twilio account".into(),
        ));
    }
    let message_sid = form
        .get("MessageSid")
        .or_else(|| form.get("SmsSid"))
        .ok_or_else(|| {
            WebhookError::BadRequest("a Twilio message webhook has a MessageSid".into())
        })?;
    let status = form.get("MessageStatus").or_else(|| form.get("SmsStatus"));
    let inbound = match status {
        Some(status) => status == "received",
        None => form.get("Body").is_some() || form.get("NumMedia").is_some(),
    };
    let events = if inbound {
        incoming(message_sid, &form)?
    } else {
        status_update(message_sid, status.unwrap_or_default(), &form)
            .into_iter()
            .collect()
    };
    Ok(Reply::Events(events))
}

/// The POST parameters, in the order Twilio sent them.
struct Form(Vec<(String, String)>);

impl Form {
    /// The first non-empty value of a parameter (Twilio sends "" for "none").
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }
}

/// What Twilio signs: the URL, then each parameter's name and value, sorted by name (and by
/// value for a repeated name), with no separators.
fn signed_text(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut text = url.to_string();
    for (name, value) in sorted {
        text.push_str(name);
        text.push_str(value);
    }
    text
}

/// An incoming SMS or MMS. `From` is the contact (a phone number in E.164, or a prefixed
/// address such as "whatsapp:+1..." on Twilio's other channels, which has no `phone`).
fn incoming(message_sid: &str, form: &Form) -> Result<Vec<InboundEvent>, WebhookError> {
    let from = form
        .get("From")
        .ok_or_else(|| WebhookError::BadRequest("an incoming Twilio message has a From".into()))?;
    let phone = from
        .strip_prefix('+')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| from.to_string());
    let text = form.get("Body").map(|body| Content::Text {
        body: cap_text(body.to_string()),
    });
    let media_count = form
        .get("NumMedia")
        .and_then(|count| count.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_MEDIA);
    let files: Vec<Content> = (0..media_count)
        .map(|n| match form.get(&format!("MediaUrl{n}")) {
            Some(url) => {
                let mime = form.get(&format!("MediaContentType{n}"));
                Content::Media {
                    media: media_kind_for_mime(mime.unwrap_or_default()),
                    url: Some(url.to_string()),
                    provider_media_id: None,
                    mime_type: cap_optional(mime.map(str::to_string)),
                    filename: None,
                    caption: None,
                }
            }
            // Listed but not given: still a part, so later parts keep their numbers.
            None => Content::Unsupported {
                provider_type: "media".into(),
            },
        })
        .collect();
    // An empty SMS still arrived: keep it as empty text so the agent sees it.
    let text = if text.is_none() && files.is_empty() {
        Some(Content::Text {
            body: String::new(),
        })
    } else {
        text
    };
    // Only Twilio's WhatsApp senders have a profile name.
    let profile_name = cap_optional(form.get("ProfileName").map(str::to_string));
    let sent_at = chrono::Utc::now();
    Ok(split_parts(message_sid, text, files)
        .into_iter()
        .map(|(provider_message_id, content)| {
            InboundEvent::Message(InboundMessage {
                provider_message_id,
                from: from.to_string(),
                profile_name: profile_name.clone(),
                phone: phone.clone(),
                sent_at,
                content,
            })
        })
        .collect())
}

/// A status callback. Twilio gives no time for it, so it is stamped now; the stages before
/// Twilio hands the message on (queued, sending, accepted, scheduled) change nothing we
/// track. A cancelled scheduled message will never be sent, so it counts as failed.
fn status_update(message_sid: &str, status: &str, form: &Form) -> Option<InboundEvent> {
    let delivery_status = match status {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "undelivered" | "failed" | "canceled" => DeliveryStatus::Failed,
        _ => return None,
    };
    let reason = if delivery_status == DeliveryStatus::Failed {
        let reason = match (form.get("ErrorCode"), form.get("ErrorMessage")) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            (None, Some(message)) => message.to_string(),
            (None, None) => status.to_string(),
        };
        Some(cap_text(reason))
    } else {
        None
    };
    Some(InboundEvent::Status(StatusUpdate {
        provider_message_id: message_sid.to_string(),
        status: delivery_status,
        reason,
        at: chrono::Utc::now(),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        credentials, garbage_survives, hmac_sha1, is_bad_request, is_unauthorized, messages,
        statuses, TestRequest,
    };
    use super::*;
    use crate::channels::model::MediaKind;
    use axum::http::Method;

    const AUTH_TOKEN: &str = "9f86d081884c7d659a2feaa0c55ad015";
    const ACCOUNT_SID: &str = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
    const URL: &str = "https://obrol.example/webhooks/sms/01907c2e-8f6a-7d1e-9a44-5e6f1f2b3c4d";

    fn account() -> Credentials {
        credentials(&[
            ("account_sid", ACCOUNT_SID),
            ("auth_token", AUTH_TOKEN),
            ("phone_number", "+15017122661"),
        ])
    }

    /// A form POST to `URL`, signed the way Twilio documents it.
    fn signed(params: &[(&str, &str)]) -> TestRequest {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let mut sorted = params.to_vec();
        sorted.sort();
        let mut text = URL.to_string();
        for (name, value) in sorted {
            text.push_str(name);
            text.push_str(value);
        }
        let signature = BASE64.encode(hmac_sha1(AUTH_TOKEN, text.as_bytes()));
        TestRequest {
            url: URL.into(),
            ..TestRequest::post(body)
        }
        .header("X-Twilio-Signature", &signature)
    }

    fn deliver(request: &TestRequest) -> Result<Reply, WebhookError> {
        receive(&account(), &request.as_request())
    }

    fn sms(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut params = vec![
            ("ToCountry", "US"),
            ("ToState", "CA"),
            ("SmsMessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
            ("NumMedia", "0"),
            ("ToCity", "SAN FRANCISCO"),
            ("FromZip", "94105"),
            ("SmsSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
            ("FromState", "CA"),
            ("SmsStatus", "received"),
            ("FromCity", "SAN FRANCISCO"),
            ("Body", "Hello from Twilio! 1+1=2 & more"),
            ("FromCountry", "US"),
            ("To", "+15017122661"),
            ("MessagingServiceSid", "MGXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
            ("ToZip", "94105"),
            ("NumSegments", "1"),
            ("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
            ("AccountSid", ACCOUNT_SID),
            ("From", "+15558675310"),
            ("ApiVersion", "2010-04-01"),
        ];
        for &(name, value) in extra {
            match params.iter_mut().find(|(key, _)| *key == name) {
                Some(slot) => slot.1 = value,
                None => params.push((name, value)),
            }
        }
        params
    }

    /// The worked example in Twilio's security documentation and helper-library snippets:
    /// auth token 12345, this URL and these parameters sign to these values.
    #[test]
    fn twilio_documented_examples_verify() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        for (caller, expected) in [
            ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
            ("+12349013030", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        ] {
            let params: Vec<(String, String)> = [
                ("CallSid", "CA1234567890ABCDE"),
                ("Caller", caller),
                ("Digits", "1234"),
                ("From", caller),
                ("To", "+18005551212"),
            ]
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
            let text = signed_text(url, &params);
            let signature = BASE64.decode(expected).unwrap();
            assert!(hmac_sha1_matches(b"12345", text.as_bytes(), &signature));
            assert!(!hmac_sha1_matches(b"12346", text.as_bytes(), &signature));
        }
    }

    #[test]
    fn incoming_sms() {
        let got = messages(deliver(&signed(&sms(&[]))));
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].provider_message_id,
            "SM1f0e8ae6ade43cb3c0ce4525424e404f"
        );
        assert_eq!(got[0].from, "+15558675310");
        assert_eq!(got[0].phone.as_deref(), Some("+15558675310"));
        assert_eq!(
            got[0].content,
            Content::Text {
                body: "Hello from Twilio! 1+1=2 & more".into()
            }
        );
        assert_eq!(got[0].profile_name, None);
    }

    #[test]
    fn whatsapp_senders_through_twilio_keep_their_profile_name() {
        let params = sms(&[
            ("From", "whatsapp:+15558675310"),
            ("To", "whatsapp:+15017122661"),
            ("ProfileName", "Ana"),
            ("WaId", "15558675310"),
        ]);
        let got = messages(deliver(&signed(&params)));
        assert_eq!(got[0].from, "whatsapp:+15558675310");
        assert_eq!(got[0].phone, None);
        assert_eq!(got[0].profile_name.as_deref(), Some("Ana"));
    }

    #[test]
    fn signature_is_required_and_covers_url_and_params() {
        let request = signed(&sms(&[]));
        let mut unsigned = TestRequest {
            url: URL.into(),
            ..TestRequest::post(request.body.clone())
        };
        assert!(is_unauthorized(&deliver(&unsigned)));
        unsigned = unsigned.header("X-Twilio-Signature", "bm90IHRoZSBzaWduYXR1cmU=");
        assert!(is_unauthorized(&deliver(&unsigned)));
        let mut other_url = signed(&sms(&[]));
        other_url.url = format!("{URL}?x=1");
        assert!(is_unauthorized(&deliver(&other_url)));
        let mut changed_body = signed(&sms(&[]));
        changed_body.body = signed(&sms(&[("Body", "changed")])).body;
        assert!(is_unauthorized(&deliver(&changed_body)));
        let mut get = signed(&sms(&[]));
        get.method = Method::GET;
        assert_eq!(deliver(&get), Err(WebhookError::MethodNotAllowed));
    }

    #[test]
    fn another_account_is_refused() {
        let other = sms(&[("AccountSid", "ACYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYY")]);
        assert!(is_unauthorized(&deliver(&signed(&other))));
    }

    #[test]
    fn mms_parts() {
        let with_body = sms(&[
            ("NumMedia", "2"),
            ("Body", "two pictures"),
            (
                "MediaUrl0",
                "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME0",
            ),
            ("MediaContentType0", "image/jpeg"),
            (
                "MediaUrl1",
                "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1",
            ),
            ("MediaContentType1", "application/pdf"),
        ]);
        let got = messages(deliver(&signed(&with_body)));
        let ids: Vec<&str> = got.iter().map(|m| m.provider_message_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "SM1f0e8ae6ade43cb3c0ce4525424e404f",
                "SM1f0e8ae6ade43cb3c0ce4525424e404f/0",
                "SM1f0e8ae6ade43cb3c0ce4525424e404f/1"
            ]
        );
        assert_eq!(
            got[1].content,
            Content::Media {
                media: MediaKind::Image,
                url: Some(
                    "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME0".into()
                ),
                provider_media_id: None,
                mime_type: Some("image/jpeg".into()),
                filename: None,
                caption: None,
            }
        );
        assert!(matches!(
            got[2].content,
            Content::Media {
                media: MediaKind::Document,
                ..
            }
        ));

        let picture_only = sms(&[
            ("NumMedia", "1"),
            ("Body", ""),
            ("MediaUrl0", "https://api.twilio.com/media/ME0"),
            ("MediaContentType0", "video/mp4"),
        ]);
        let got = messages(deliver(&signed(&picture_only)));
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].provider_message_id,
            "SM1f0e8ae6ade43cb3c0ce4525424e404f"
        );
        assert!(matches!(
            got[0].content,
            Content::Media {
                media: MediaKind::Video,
                ..
            }
        ));
    }

    #[test]
    fn status_callbacks() {
        let callback = |status: &'static str, extra: &[(&'static str, &'static str)]| {
            let mut params = vec![
                ("AccountSid", ACCOUNT_SID),
                ("ApiVersion", "2010-04-01"),
                ("From", "+15017122661"),
                ("MessageSid", "SM5ef8732a3c49700934481addd5ce1659"),
                ("MessageStatus", status),
                ("SmsSid", "SM5ef8732a3c49700934481addd5ce1659"),
                ("SmsStatus", status),
                ("To", "+15558675310"),
            ];
            params.extend_from_slice(extra);
            statuses(deliver(&signed(&params)))
        };
        assert_eq!(callback("sent", &[])[0].status, DeliveryStatus::Sent);
        assert_eq!(
            callback("delivered", &[])[0].status,
            DeliveryStatus::Delivered
        );
        assert_eq!(callback("read", &[])[0].status, DeliveryStatus::Read);
        let failed = callback(
            "undelivered",
            &[
                ("ErrorCode", "30003"),
                ("ErrorMessage", "Unreachable destination handset"),
            ],
        );
        assert_eq!(
            failed[0].provider_message_id,
            "SM5ef8732a3c49700934481addd5ce1659"
        );
        assert_eq!(failed[0].status, DeliveryStatus::Failed);
        assert_eq!(
            failed[0].reason.as_deref(),
            Some("30003: Unreachable destination handset")
        );
        let failed = callback("failed", &[("ErrorCode", "30007")]);
        assert_eq!(failed[0].reason.as_deref(), Some("30007"));
        for quiet in ["queued", "sending", "accepted", "scheduled"] {
            assert!(callback(quiet, &[]).is_empty(), "{quiet}");
        }
    }

    #[test]
    fn signed_but_incomplete_is_a_bad_request() {
        let no_sid = [
            ("AccountSid", ACCOUNT_SID),
            ("Body", "hi"),
            ("From", "+1555"),
        ];
        assert!(is_bad_request(&deliver(&signed(&no_sid))));
        let no_from = [
            ("AccountSid", ACCOUNT_SID),
            ("MessageSid", "SM1"),
            ("SmsStatus", "received"),
            ("Body", "hi"),
        ];
        assert!(is_bad_request(&deliver(&signed(&no_from))));
    }

    #[test]
    fn garbage_does_not_panic() {
        let sample: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(sms(&[("NumMedia", "3"), ("MediaUrl1", "x")]))
            .finish();
        garbage_survives(sample.as_bytes(), |body| {
            // Signed over whatever the garbage decodes to, so parsing is exercised too.
            let params: Vec<(String, String)> =
                url::form_urlencoded::parse(body).into_owned().collect();
            let signature =
                BASE64.encode(hmac_sha1(AUTH_TOKEN, signed_text(URL, &params).as_bytes()));
            let request = TestRequest {
                url: URL.into(),
                ..TestRequest::post(body)
            }
            .header("X-Twilio-Signature", &signature);
            let _ = deliver(&request);
        });
    }
}
