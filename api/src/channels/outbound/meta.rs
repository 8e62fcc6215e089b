//! Meta's three messaging APIs: the WhatsApp Cloud API, the Messenger Send API and Instagram
//! messaging. All are Graph API endpoints with Bearer tokens and one error object
//! (`error.code`, `error.message`, `error.error_data.details`, `error.is_transient`).

use serde_json::{json, Value as Json};

use super::super::model::{Choice, MediaKind, OutboundContent, OutboundMessage};
use super::{credential, describe, non_empty, Answer, Credentials, SendError, Sender, Sent};

pub(super) const GRAPH_BASE: &str = "https://graph.facebook.com";
pub(super) const GRAPH_VERSION: &str = "v21.0";

/// Meta error codes that mean "slow down" or "try again later". The Graph API sends most of
/// them with HTTP 400, so the status alone would make them permanent: 1 and 2 (temporary API
/// errors), 4, 17, 32, 613 and 80007 (rate limits), 130429 (WhatsApp throughput), 131016
/// (service unavailable), 131056 (pair rate limit), 133004 (server unavailable).
const TRANSIENT_CODES: &[i64] = &[1, 2, 4, 17, 32, 613, 80007, 130429, 131016, 131056, 133004];

/// `POST /<phone_number_id>/messages`, answering `messages[0].id`.
pub(super) async fn send_whatsapp(
    sender: &Sender,
    credentials: &Credentials,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let token = credential(credentials, "access_token")?;
    let phone_number_id = credential(credentials, "phone_number_id")?;
    let url = sender.endpoint(GRAPH_BASE, &[GRAPH_VERSION, phone_number_id, "messages"])?;
    let payload = whatsapp_payload(message);
    let answer = sender
        .exchange(sender.http.post(url).bearer_auth(token).json(&payload))
        .await?;
    if answer.status.is_success() {
        Ok(Sent {
            provider_message_id: answer.text_at("/messages/0/id"),
        })
    } else {
        Err(meta_failure(&answer))
    }
}

/// A WhatsApp template as Meta reviews it.
pub struct TemplateSubmission<'a> {
    pub name: &'a str,
    pub language: &'a str,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: &'a str,
    pub body: &'a str,
    /// A sample value for each of the body's variables, in order.
    pub examples: &'a [String],
}

/// What Meta answered to a submitted template: its id and first status.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSubmitted {
    pub id: Option<String>,
    /// PENDING, APPROVED or REJECTED (Meta may decide at once).
    pub status: String,
    /// The category Meta filed it under, which may not be the one asked for.
    pub category: Option<String>,
}

/// Meta's answer about one template (a create's answer, or an entry of a list) as stored.
fn template_answer(value: &Json) -> TemplateSubmitted {
    let text = |key: &str| match value.get(key) {
        Some(Json::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Json::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let status = match text("status").as_deref() {
        Some("APPROVED") => "APPROVED",
        Some("REJECTED") => "REJECTED",
        _ => "PENDING",
    };
    let category = text("category")
        .filter(|c| matches!(c.as_str(), "MARKETING" | "UTILITY" | "AUTHENTICATION"));
    TemplateSubmitted {
        id: text("id"),
        status: status.to_string(),
        category,
    }
}

/// `GET /<waba_id>/message_templates?name=…`: the template of that name and language
/// already at Meta, if there is one.
pub(super) async fn find_whatsapp_template(
    sender: &Sender,
    credentials: &Credentials,
    name: &str,
    language: &str,
) -> Result<Option<TemplateSubmitted>, SendError> {
    let token = credential(credentials, "access_token")?;
    let waba_id = credential(credentials, "waba_id")?;
    let mut url = sender.endpoint(GRAPH_BASE, &[GRAPH_VERSION, waba_id, "message_templates"])?;
    url.query_pairs_mut()
        .append_pair("name", name)
        .append_pair("fields", "id,name,language,status,category");
    let answer = sender
        .exchange(sender.http.get(url).bearer_auth(token))
        .await?;
    if !answer.status.is_success() {
        return Err(meta_failure(&answer));
    }
    let found = answer
        .body
        .get("data")
        .and_then(Json::as_array)
        .and_then(|list| {
            list.iter().find(|t| {
                t.get("name").and_then(Json::as_str) == Some(name)
                    && t.get("language").and_then(Json::as_str) == Some(language)
            })
        })
        .map(template_answer);
    Ok(found)
}

/// `POST /<waba_id>/message_templates`: submits a template for Meta's review, with the body
/// as its one component and the samples Meta asks for when there are variables.
pub(super) async fn submit_whatsapp_template(
    sender: &Sender,
    credentials: &Credentials,
    template: &TemplateSubmission<'_>,
) -> Result<TemplateSubmitted, SendError> {
    let token = credential(credentials, "access_token")?;
    let waba_id = credential(credentials, "waba_id")?;
    let url = sender.endpoint(GRAPH_BASE, &[GRAPH_VERSION, waba_id, "message_templates"])?;
    let mut body = json!({ "type": "BODY", "text": template.body });
    if !template.examples.is_empty() {
        body["example"] = json!({ "body_text": [template.examples] });
    }
    let payload = json!({
        "name": template.name,
        "language": template.language,
        "category": template.category,
        "components": [body],
    });
    let answer = sender
        .exchange(sender.http.post(url).bearer_auth(token).json(&payload))
        .await?;
    if !answer.status.is_success() {
        return Err(meta_failure(&answer));
    }
    Ok(template_answer(&answer.body))
}

/// A contact's name as Meta's profile APIs give it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// Messenger's User Profile API (`GET /<PSID>?fields=first_name,last_name` with the page
/// token) or Instagram's (`GET /<IGSID>?fields=name,username`: the name, else the username).
pub(super) async fn profile(
    sender: &Sender,
    instagram: bool,
    credentials: &Credentials,
    user_id: &str,
) -> Result<Profile, SendError> {
    let (token, fields) = if instagram {
        (credential(credentials, "access_token")?, "name,username")
    } else {
        (
            credential(credentials, "page_access_token")?,
            "first_name,last_name",
        )
    };
    let mut url = sender.endpoint(GRAPH_BASE, &[GRAPH_VERSION, user_id])?;
    url.query_pairs_mut().append_pair("fields", fields);
    let answer = sender
        .exchange(sender.http.get(url).bearer_auth(token))
        .await?;
    if !answer.status.is_success() {
        return Err(meta_failure(&answer));
    }
    if !instagram {
        return Ok(Profile {
            first_name: answer.text_at("/first_name"),
            last_name: answer.text_at("/last_name"),
        });
    }
    let Some(name) = answer
        .text_at("/name")
        .or_else(|| answer.text_at("/username"))
    else {
        return Ok(Profile::default());
    };
    let name = name.trim();
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    Ok(Profile {
        first_name: non_empty(first),
        last_name: non_empty(last),
    })
}

/// `POST /<page_id>/messages` with the page token, answering `message_id`.
pub(super) async fn send_messenger(
    sender: &Sender,
    credentials: &Credentials,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let token = credential(credentials, "page_access_token")?;
    let page_id = credential(credentials, "page_id")?;
    let url = sender.endpoint(GRAPH_BASE, &[GRAPH_VERSION, page_id, "messages"])?;
    let mut payload = page_payload(message)?;
    if message.human_agent_tag {
        // A human agent answering up to 7 days after the contact's last message.
        payload["messaging_type"] = json!("MESSAGE_TAG");
        payload["tag"] = json!("HUMAN_AGENT");
    } else {
        payload["messaging_type"] = json!("RESPONSE");
    }
    post_page_message(sender, url, token, &payload).await
}

/// `POST /me/messages`: Meta documents Instagram sends on the token owner's node (`me` is the
/// page linked to the Instagram account, or the account itself with an Instagram token).
pub(super) async fn send_instagram(
    sender: &Sender,
    credentials: &Credentials,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    // `check_message` has refused the HUMAN_AGENT tag, which Obrol sends on Messenger only.
    let token = credential(credentials, "access_token")?;
    let url = sender.endpoint(GRAPH_BASE, &[GRAPH_VERSION, "me", "messages"])?;
    let payload = page_payload(message)?;
    post_page_message(sender, url, token, &payload).await
}

async fn post_page_message(
    sender: &Sender,
    url: url::Url,
    token: &str,
    payload: &Json,
) -> Result<Sent, SendError> {
    let answer = sender
        .exchange(sender.http.post(url).bearer_auth(token).json(payload))
        .await?;
    if answer.status.is_success() {
        Ok(Sent {
            provider_message_id: answer.text_at("/message_id"),
        })
    } else {
        Err(meta_failure(&answer))
    }
}

fn whatsapp_payload(message: &OutboundMessage) -> Json {
    let (kind, object) = match &message.content {
        OutboundContent::Text { body } => (
            "text",
            json!({ "body": body, "preview_url": has_link(body) }),
        ),
        OutboundContent::Media {
            media,
            url,
            filename,
            caption,
            ..
        } => {
            let kind = match media {
                MediaKind::Image => "image",
                MediaKind::Video => "video",
                MediaKind::Audio => "audio",
                MediaKind::Document => "document",
                MediaKind::Sticker => "sticker",
            };
            let mut object = json!({ "link": url });
            // Audio and stickers take no caption (`check` refuses one).
            if let (Some(caption), MediaKind::Image | MediaKind::Video | MediaKind::Document) =
                (non_empty(caption), media)
            {
                object["caption"] = json!(caption);
            }
            if let (Some(filename), MediaKind::Document) = (non_empty(filename), media) {
                object["filename"] = json!(filename);
            }
            (kind, object)
        }
        OutboundContent::Template {
            name,
            language,
            variables,
        } => {
            let mut template = json!({ "name": name, "language": { "code": language } });
            if !variables.is_empty() {
                let parameters: Vec<Json> = variables
                    .iter()
                    .map(|value| json!({ "type": "text", "text": value }))
                    .collect();
                template["components"] = json!([{ "type": "body", "parameters": parameters }]);
            }
            ("template", template)
        }
        OutboundContent::QuickReplies { body, buttons } => {
            let buttons: Vec<Json> = buttons
                .iter()
                .map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } }))
                .collect();
            (
                "interactive",
                json!({
                    "type": "button",
                    "body": { "text": body },
                    "action": { "buttons": buttons },
                }),
            )
        }
        OutboundContent::List {
            body,
            button,
            options,
        } => {
            let rows: Vec<Json> = options.iter().map(list_row).collect();
            (
                "interactive",
                json!({
                    "type": "list",
                    "body": { "text": body },
                    // One section; its title (at most 24 characters) repeats the button's.
                    "action": { "button": button, "sections": [{ "title": button, "rows": rows }] },
                }),
            )
        }
    };
    let mut payload = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to,
        "type": kind,
    });
    payload[kind] = object;
    payload
}

fn list_row(option: &Choice) -> Json {
    let mut row = json!({ "id": option.id, "title": option.title });
    if let Some(description) = non_empty(&option.description) {
        row["description"] = json!(description);
    }
    row
}

/// WhatsApp shows a link preview only when asked to.
fn has_link(text: &str) -> bool {
    text.contains("https://") || text.contains("http://")
}

/// The recipient and message of a Messenger or Instagram send (the caller adds the
/// messaging type).
fn page_payload(message: &OutboundMessage) -> Result<Json, SendError> {
    let content = match &message.content {
        OutboundContent::Text { body } => json!({ "text": body }),
        OutboundContent::Media { media, url, .. } => {
            let kind = match media {
                MediaKind::Image => "image",
                MediaKind::Video => "video",
                MediaKind::Audio => "audio",
                MediaKind::Document => "file",
                MediaKind::Sticker => {
                    return Err(SendError::permanent("Meta pages cannot send stickers"))
                }
            };
            json!({ "attachment": { "type": kind, "payload": { "url": url } } })
        }
        OutboundContent::QuickReplies { body, buttons } => quick_replies(body, buttons),
        // Up to 13 quick replies fit, so a 10-option list becomes quick replies.
        OutboundContent::List { body, options, .. } => quick_replies(body, options),
        OutboundContent::Template { .. } => {
            return Err(SendError::permanent("templates are a WhatsApp feature"))
        }
    };
    Ok(json!({ "recipient": { "id": message.to }, "message": content }))
}

fn quick_replies(body: &str, choices: &[Choice]) -> Json {
    let replies: Vec<Json> = choices
        .iter()
        .map(|c| json!({ "content_type": "text", "title": c.title, "payload": c.id }))
        .collect();
    json!({ "text": body, "quick_replies": replies })
}

/// Meta's error object, read into a reason and whether it passes with time.
fn meta_failure(answer: &Answer) -> SendError {
    let error = answer.body.get("error");
    let field = |name: &str| error.and_then(|e| e.get(name));
    let code = field("code").and_then(Json::as_i64);
    let message = field("message").and_then(Json::as_str);
    let details = error
        .and_then(|e| e.pointer("/error_data/details"))
        .and_then(Json::as_str)
        .filter(|d| !d.trim().is_empty() && Some(*d) != message);
    let mut reason = describe(code.map(|c| c.to_string()), message, answer.status);
    if let Some(details) = details {
        reason = super::shorten(&format!("{reason} ({details})"), 400);
    }
    let transient = field("is_transient").and_then(Json::as_bool) == Some(true)
        || code.is_some_and(|c| TRANSIENT_CODES.contains(&c));
    if transient {
        SendError::retryable(reason, answer.retry_after)
    } else {
        SendError::from_status(answer.status, answer.retry_after, reason)
    }
}
