//! Outbound messages: checked against the channel's rules before anything is queued, stored
//! as QUEUED with a durable send job in the same transaction, then sent by a worker through
//! the channel's sender. Provider statuses (sent → delivered → read, or failed with the
//! reason) update the message.
//!
//! A message is never sent twice because of a retry: the job marks the message before it
//! calls the provider and clears the mark only when the provider answered that it did not
//! take the message (429, 5xx, no connection). An attempt that finds the mark still set
//! means the server stopped mid-call; the message is then failed with that reason rather
//! than sent a second time.

use std::sync::Arc;

use chrono::Utc;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::attachments::{Stored, Upload};
use super::{publish_message, ConversationRow, MessageRow, CONVERSATION_COLUMNS, MESSAGE_COLUMNS};
use crate::app::AppState;
use crate::auth::{Actor, ApiScope, Role};
use crate::channels::model::{Choice, MediaKind, OutboundContent, OutboundMessage};
use crate::channels::{outbound, ChannelType};
use crate::contacts::mac::{self, ActiveReason};
use crate::error::{ApiError, ApiResult};
use crate::events::{Event, EventKind};
use crate::jobs::{Handler, Job, Outcome};

pub const SEND_JOB: &str = "message.send";
/// Provider outages get about eight minutes of retries (2, 4, ... 128 s).
const SEND_ATTEMPTS: i32 = 8;

/// How an outbound message's content is stored (`messages.content`).
pub fn content_json(content: &OutboundContent) -> Json {
    match content {
        OutboundContent::Text { body } => json!({ "kind": "TEXT", "body": body }),
        OutboundContent::Media {
            media,
            url,
            mime_type,
            filename,
            caption,
        } => json!({
            "kind": "MEDIA", "media": media, "url": url, "mimeType": mime_type,
            "filename": filename, "caption": caption,
        }),
        OutboundContent::Template {
            name,
            language,
            variables,
        } => {
            json!({ "kind": "TEMPLATE", "name": name, "language": language, "variables": variables })
        }
        OutboundContent::QuickReplies { body, buttons } => {
            json!({ "kind": "QUICK_REPLIES", "body": body, "buttons": buttons })
        }
        OutboundContent::List {
            body,
            button,
            options,
        } => json!({ "kind": "LIST", "body": body, "button": button, "options": options }),
    }
}

/// The stored content back as something a sender can send.
pub fn content_from_json(value: &Json) -> Option<OutboundContent> {
    let text = |key: &str| value.get(key).and_then(Json::as_str).map(str::to_string);
    let choices =
        |key: &str| -> Option<Vec<Choice>> { serde_json::from_value(value.get(key)?.clone()).ok() };
    Some(match value.get("kind")?.as_str()? {
        "TEXT" => OutboundContent::Text {
            body: text("body")?,
        },
        "MEDIA" => OutboundContent::Media {
            media: serde_json::from_value::<MediaKind>(value.get("media")?.clone()).ok()?,
            url: text("url")?,
            mime_type: text("mimeType")?,
            filename: text("filename"),
            caption: text("caption"),
        },
        "TEMPLATE" => OutboundContent::Template {
            name: text("name")?,
            language: text("language")?,
            variables: serde_json::from_value(value.get("variables")?.clone()).ok()?,
        },
        "QUICK_REPLIES" => OutboundContent::QuickReplies {
            body: text("body")?,
            buttons: choices("buttons")?,
        },
        "LIST" => OutboundContent::List {
            body: text("body")?,
            button: text("button")?,
            options: choices("options")?,
        },
        _ => return None,
    })
}

fn preview_of(content: &OutboundContent, template_body: Option<&str>) -> String {
    match content {
        OutboundContent::Text { body }
        | OutboundContent::QuickReplies { body, .. }
        | OutboundContent::List { body, .. } => body.clone(),
        OutboundContent::Media { caption, media, .. } => caption
            .clone()
            .unwrap_or_else(|| format!("[{}]", media.as_str().to_ascii_lowercase())),
        OutboundContent::Template {
            variables, name, ..
        } => template_body
            .map(|body| super::templates::render(body, variables))
            .unwrap_or_else(|| format!("[template {name}]")),
    }
}

/// Who is sending.
#[derive(Clone, Copy, Debug)]
pub enum SenderKind {
    User(Uuid),
    System,
}

/// Stores an outbound message as QUEUED and queues its send job, in the caller's
/// transaction. The caller has checked the channel's rules.
/// An outbound message about to be stored.
struct Draft<'a> {
    sender: SenderKind,
    content: &'a OutboundContent,
    preview: &'a str,
    human_agent_tag: bool,
    /// The widget has no provider: a live-chat message is delivered by the event itself.
    live_chat: bool,
    /// The stored file a media message carries (its link is made when it is sent).
    file: Option<&'a Stored>,
}

async fn queue(
    conn: &mut PgConnection,
    company_id: Uuid,
    conversation: &ConversationRow,
    draft: Draft<'_>,
) -> sqlx::Result<(MessageRow, ConversationRow)> {
    let Draft {
        sender,
        content,
        preview,
        human_agent_tag,
        live_chat,
        file,
    } = draft;
    let (sender_type, sender_user) = match sender {
        SenderKind::User(id) => ("USER", Some(id)),
        SenderKind::System => ("SYSTEM", None),
    };
    let mut stored = content_json(content);
    if human_agent_tag {
        stored["humanAgentTag"] = Json::Bool(true);
    }
    if let (Some(file), Some(fields)) = (file, stored.as_object_mut()) {
        // Links expire: the sender and the widget make a fresh one from the file's id.
        fields.remove("url");
        fields.insert("attachmentId".into(), Json::String(file.id.to_string()));
    }
    let status = if live_chat { "SENT" } else { "QUEUED" };
    let message: MessageRow = sqlx::query_as(&format!(
        "insert into messages as m (id, company_id, conversation_id, contact_id, channel_account_id,
             direction, sender_type, sender_user_id, content, preview, status, sent_at)
         values ($1, $2, $3, $4, $5, 'OUTBOUND', $6, $7, $8, $9, $10,
                 case when $10 = 'SENT' then now() end)
         returning {MESSAGE_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(company_id)
    .bind(conversation.id)
    .bind(conversation.contact_id)
    .bind(conversation.channel_account_id)
    .bind(sender_type)
    .bind(sender_user)
    .bind(stored)
    .bind(preview.chars().take(2000).collect::<String>())
    .bind(status)
    .fetch_one(&mut *conn)
    .await?;
    if let Some(file) = file {
        super::attachments::record(conn, company_id, conversation.contact_id, message.id, file)
            .await?;
    }
    if !live_chat {
        sqlx::query(
            "insert into jobs (id, company_id, kind, payload, max_attempts) values ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(company_id)
        .bind(SEND_JOB)
        .bind(json!({ "message_id": message.id.to_string() }))
        .bind(SEND_ATTEMPTS)
        .execute(&mut *conn)
        .await?;
    }
    // A person's reply answers the contact: nobody is awaiting one any more.
    let answered = matches!(sender, SenderKind::User(_));
    let row: ConversationRow = sqlx::query_as(&format!(
        "update conversations c set last_message_at = now(), last_message_preview = left($2, 200),
             awaiting_reply_since = case when $3 then null else c.awaiting_reply_since end,
             unread_count = case when $3 then 0 else c.unread_count end, updated_at = now()
         where c.id = $1 returning {CONVERSATION_COLUMNS}"
    ))
    .bind(conversation.id)
    .bind(preview)
    .bind(answered)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("update contacts set last_contacted_at = now() where id = $1")
        .bind(conversation.contact_id)
        .execute(&mut *conn)
        .await?;
    // Subscribers take a new message as a change of its conversation too.
    publish_message(conn, company_id, &row, &message).await?;
    Ok((message, row))
}

/// A message from the platform itself (a routing question, a nudge). Channel rules still
/// apply: a message the channel would refuse is not queued.
pub async fn queue_system(
    conn: &mut PgConnection,
    company_id: Uuid,
    conversation: &ConversationRow,
    content: OutboundContent,
) -> sqlx::Result<()> {
    let Some(account) = conversation.channel_account_id else {
        return Ok(());
    };
    let kind: Option<String> =
        sqlx::query_scalar("select type from channel_accounts where id = $1 and status = 'ACTIVE'")
            .bind(account)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(kind) = kind.as_deref().map(ChannelType::from_db) else {
        return Ok(());
    };
    // Channels without buttons get the options as numbered text (answers by number work).
    let content = match outbound::check(kind, &content) {
        Ok(()) => content,
        Err(_) => OutboundContent::Text {
            body: as_numbered_text(&content),
        },
    };
    let preview = preview_of(&content, None);
    queue(
        conn,
        company_id,
        conversation,
        Draft {
            sender: SenderKind::System,
            content: &content,
            preview: &preview,
            human_agent_tag: false,
            live_chat: kind == ChannelType::LiveChat,
            file: None,
        },
    )
    .await?;
    Ok(())
}

fn as_numbered_text(content: &OutboundContent) -> String {
    match content {
        OutboundContent::QuickReplies {
            body,
            buttons: choices,
        }
        | OutboundContent::List {
            body,
            options: choices,
            ..
        } => {
            let mut text = body.clone();
            for (i, choice) in choices.iter().enumerate() {
                text.push_str(&format!("\n{}. {}", i + 1, choice.title));
            }
            text
        }
        other => preview_of(other, None),
    }
}

/// What an agent asked to send.
#[derive(Default)]
pub struct SendInput {
    pub conversation_id: Uuid,
    pub text: Option<String>,
    pub template_id: Option<Uuid>,
    pub template_variables: Vec<String>,
    pub quick_replies: Vec<Choice>,
    pub list_button: Option<String>,
    pub list_options: Vec<Choice>,
    pub human_agent_tag: bool,
    /// Files to send (one per message); `text` becomes the caption.
    pub attachments: Vec<Upload>,
}

const MAX_TEXT: usize = 4096;

pub async fn send_message(
    state: &AppState,
    actor: &Actor,
    mut input: SendInput,
) -> ApiResult<MessageRow> {
    actor.require(Role::Staff, ApiScope::ConversationsWrite)?;
    let mut uploads = std::mem::take(&mut input.attachments);
    if uploads.len() > 1 {
        return Err(ApiError::validation(
            "a message carries one file; send the others as messages of their own",
        ));
    }
    // The file is stored before the conversation is locked (a large upload must not hold up
    // the contact's webhooks) and removed again if the message is not queued.
    let file = match uploads.pop() {
        Some(upload) if upload.bytes.is_empty() => {
            return Err(ApiError::validation(format!(
                "the file {} is empty",
                upload.name
            )))
        }
        Some(upload) => Some(
            super::attachments::put(state, actor.company_id, input.conversation_id, upload).await?,
        ),
        None => None,
    };
    let sent = send_checked(state, actor, input, file.as_ref()).await;
    if let (Err(_), Some(file)) = (&sent, &file) {
        super::attachments::discard(state, file).await;
    }
    sent
}

/// `send_message` once its file (if any) is stored.
async fn send_checked(
    state: &AppState,
    actor: &Actor,
    input: SendInput,
    file: Option<&Stored>,
) -> ApiResult<MessageRow> {
    let text = input
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err(ApiError::validation(format!(
            "a message is at most {MAX_TEXT} characters"
        )));
    }
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (_, conversation) = super::visible(&mut tx, actor, input.conversation_id, true).await?;
    if !conversation.is_open() {
        return Err(ApiError::conflict(
            "the conversation is closed; reopen it to write",
        ));
    }
    let account_id = conversation
        .channel_account_id
        .ok_or_else(|| ApiError::validation("the conversation's channel account is gone"))?;
    let account: Option<(String, String)> =
        sqlx::query_as("select type, status from channel_accounts where id = $1")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
    let kind = match account {
        Some((kind, status)) if status == "ACTIVE" => ChannelType::from_db(&kind),
        _ => {
            return Err(ApiError::validation(
                "the conversation's channel account was disconnected; reconnect it to reply",
            ))
        }
    };
    let mut template_body = None;
    let content = if let Some(template_id) = input.template_id {
        if text.is_some()
            || !input.quick_replies.is_empty()
            || !input.list_options.is_empty()
            || file.is_some()
        {
            return Err(ApiError::validation(
                "a template message carries only its variables; leave text, buttons and files empty",
            ));
        }
        let template = super::templates::by_id(&mut tx, template_id)
            .await?
            .filter(|t| t.channel_account_id == account_id)
            .ok_or_else(|| ApiError::not_found("message template"))?;
        if template.status != "APPROVED" {
            return Err(ApiError::validation(format!(
                "template '{}' is {}; only approved templates can be sent",
                template.name,
                template.status.to_lowercase()
            )));
        }
        if input.template_variables.len() != template.variable_count as usize {
            return Err(ApiError::validation(format!(
                "template '{}' takes {} variables; {} were given",
                template.name,
                template.variable_count,
                input.template_variables.len()
            )));
        }
        template_body = Some(template.body.clone());
        OutboundContent::Template {
            name: template.name,
            language: template.language,
            variables: input.template_variables.clone(),
        }
    } else if let Some(file) = file {
        if !input.quick_replies.is_empty() || !input.list_options.is_empty() {
            return Err(ApiError::validation(
                "a file goes without buttons; send the options as a message of their own",
            ));
        }
        let (name, media) = (&file.name, file.media);
        let size = file.size as u64;
        let max = outbound::max_media_bytes(kind, media);
        if size > max {
            return Err(ApiError::validation(format!(
                "{} takes files of this kind ({}) up to {}; {name} is {}",
                outbound::channel_name(kind),
                media.as_str().to_ascii_lowercase(),
                megabytes(max),
                megabytes(size),
            )));
        }
        OutboundContent::Media {
            media,
            // The link is made when the message is sent; this one shows its shape to the
            // channel's checks (LINE fetches only over HTTPS).
            url: super::attachments::link(
                state,
                actor.company_id,
                Uuid::nil(),
                name,
                super::attachments::SHARE_TTL,
            ),
            mime_type: file.content_type.clone(),
            filename: Some(name.clone()),
            caption: text,
        }
    } else {
        let body = text.ok_or_else(|| {
            ApiError::validation("a message needs text, a file or an approved template")
        })?;
        match (
            input.quick_replies.is_empty(),
            input.list_options.is_empty(),
        ) {
            (true, true) => OutboundContent::Text { body },
            (false, true) => OutboundContent::QuickReplies {
                body,
                buttons: input.quick_replies.clone(),
            },
            (true, false) => OutboundContent::List {
                body,
                button: input
                    .list_button
                    .clone()
                    .filter(|b| !b.trim().is_empty())
                    .unwrap_or_else(|| "Choose".into()),
                options: input.list_options.clone(),
            },
            (false, false) => {
                return Err(ApiError::validation(
                    "send quick replies or a list, not both",
                ))
            }
        }
    };
    // The channel's own limits (buttons, options, what it can carry at all) ...
    let to: Option<String> = sqlx::query_scalar(
        "select external_id from contact_identities where contact_id = $1 and channel = $2
         order by created_at desc limit 1",
    )
    .bind(conversation.contact_id)
    .bind(kind.as_db())
    .fetch_optional(&mut *tx)
    .await?;
    let to = to.ok_or_else(|| {
        ApiError::validation(format!(
            "the contact has no {} identity to write to",
            kind.as_db()
        ))
    })?;
    let probe = OutboundMessage {
        id: Uuid::nil(),
        to,
        content: content.clone(),
        human_agent_tag: input.human_agent_tag,
    };
    // ... and its window, from the contact's last message on this account.
    let last_inbound: Option<chrono::DateTime<Utc>> = sqlx::query_scalar(
        "select max(sent_at) from messages
         where contact_id = $1 and channel_account_id = $2 and direction = 'INBOUND'",
    )
    .bind(conversation.contact_id)
    .bind(account_id)
    .fetch_one(&mut *tx)
    .await?;
    super::window::check(
        kind,
        last_inbound,
        Utc::now(),
        super::window::SendKind {
            template: matches!(content, OutboundContent::Template { .. }),
            human_agent_tag: input.human_agent_tag,
        },
    )?;
    outbound::check_message(kind, &probe).map_err(ApiError::validation)?;
    let preview = preview_of(&content, template_body.as_deref());
    let (message, _) = queue(
        &mut tx,
        actor.company_id,
        &conversation,
        Draft {
            sender: SenderKind::User(actor.user_id()),
            content: &content,
            preview: &preview,
            human_agent_tag: input.human_agent_tag,
            live_chat: kind == ChannelType::LiveChat,
            file,
        },
    )
    .await?;
    if conversation.source == "CONTACT" {
        mac::record_active(
            &mut tx,
            actor.company_id,
            conversation.contact_id,
            ActiveReason::Conversation,
            Utc::now(),
        )
        .await?;
    }
    tx.commit().await?;
    state.outbox.notify_waiters();
    Ok(message)
}

/// "1.5 MB", "20 MB".
fn megabytes(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb.fract() == 0.0 {
        format!("{mb:.0} MB")
    } else {
        format!("{mb:.1} MB")
    }
}

/// The send worker.
pub fn handler(state: AppState) -> Arc<dyn Handler> {
    Arc::new(SendWorker { state })
}

struct SendWorker {
    state: AppState,
}

type Outgoing = (
    String,
    Json,
    Option<DateTimeUtc>,
    String,
    String,
    Vec<u8>,
    Option<String>,
);
type DateTimeUtc = chrono::DateTime<Utc>;

impl Handler for SendWorker {
    fn run(&self, job: Job) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match self.send(&job).await {
                Ok(outcome) => outcome,
                Err(err) => Outcome::Retry(format!("database: {err}")),
            }
        })
    }

    fn give_up(&self, job: Job, error: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(id) = message_id(&job) {
                let reason = format!("not sent after {} attempts: {error}", job.attempt);
                if let Err(err) = self.fail(job.company_id, id, &reason).await {
                    tracing::warn!(error = %err, "recording a failed send");
                }
            }
        })
    }
}

fn message_id(job: &Job) -> Option<Uuid> {
    job.payload
        .get("message_id")
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

impl SendWorker {
    async fn send(&self, job: &Job) -> sqlx::Result<Outcome> {
        let Some(id) = message_id(job) else {
            return Ok(Outcome::Done);
        };
        let mut tx = self.state.db.tenant(job.company_id).await?;
        let outgoing: Option<Outgoing> = sqlx::query_as(
            "select m.status, m.content, m.send_started_at, a.id::text, a.type, a.credentials_sealed,
                    (select i.external_id from contact_identities i
                     where i.contact_id = m.contact_id and i.channel = a.type
                     order by i.created_at desc limit 1)
             from messages m join channel_accounts a on a.id = m.channel_account_id
             where m.id = $1 for update of m",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, content, started, account, kind, sealed, to)) = outgoing else {
            return Ok(Outcome::Done);
        };
        if status != "QUEUED" {
            return Ok(Outcome::Done);
        }
        if started.is_some() {
            drop(tx);
            self.fail(
                job.company_id,
                id,
                "the server stopped while sending; not sent again in case it went out \
                 (send it again if the contact did not receive it)",
            )
            .await?;
            return Ok(Outcome::Done);
        }
        let kind = ChannelType::from_db(&kind);
        let tagged = content
            .get("humanAgentTag")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let prepared = (|| {
            let credentials =
                crate::channels::open_credentials(&self.state.sealer, &sealed).ok()?;
            let mut content = content.clone();
            super::attachments::with_link(
                &self.state,
                job.company_id,
                &mut content,
                super::attachments::SHARE_TTL,
            );
            Some((credentials, content_from_json(&content)?, to?))
        })();
        let Some((credentials, content, to)) = prepared else {
            drop(tx);
            self.fail(
                job.company_id,
                id,
                "the message cannot be sent: the account's credentials or the contact's identity are gone",
            )
            .await?;
            return Ok(Outcome::Done);
        };
        sqlx::query("update messages set send_started_at = now() where id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let message = OutboundMessage {
            id,
            to,
            content,
            human_agent_tag: tagged,
        };
        let account_id = Uuid::parse_str(&account).unwrap_or_default();
        let status_url = format!(
            "{}/webhooks/{}/{}",
            self.state.base_url(),
            kind.slug(),
            account_id
        );
        let result = self
            .state
            .sender
            .send(kind, account_id, &credentials, &status_url, &message)
            .await;
        match result {
            Ok(sent) => {
                // The provider has the message: recording that must not fail over a passing
                // database error, or the job's next attempt would find the send mark and
                // call the message FAILED. A few tries in place, then the error.
                let mut wait = std::time::Duration::from_millis(200);
                for attempt in 1.. {
                    match self
                        .sent(
                            job.company_id,
                            account_id,
                            id,
                            sent.provider_message_id.clone(),
                        )
                        .await
                    {
                        Ok(()) => break,
                        Err(err) if attempt < 6 => {
                            tracing::warn!(error = %err, attempt, "recording a sent message; trying again");
                            tokio::time::sleep(wait).await;
                            wait *= 2;
                        }
                        Err(err) => return Err(err),
                    }
                }
                Ok(Outcome::Done)
            }
            Err(err) if err.retryable => {
                // The provider did not take it: the next attempt may call again.
                let mut tx = self.state.db.tenant(job.company_id).await?;
                sqlx::query("update messages set send_started_at = null where id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Outcome::Retry(err.reason))
            }
            Err(err) => {
                self.fail(job.company_id, id, &err.reason).await?;
                Ok(Outcome::Done)
            }
        }
    }

    /// Records the provider's id, then any status the provider reported on it meanwhile.
    async fn sent(
        &self,
        company_id: Uuid,
        account_id: Uuid,
        id: Uuid,
        provider_id: Option<String>,
    ) -> sqlx::Result<()> {
        let mut tx = self.state.db.tenant(company_id).await?;
        sqlx::query(
            "update messages set status = 'SENT', provider_message_id = $2, sent_at = now(),
                 status_at = now(), send_started_at = null
             where id = $1 and status = 'QUEUED'",
        )
        .bind(id)
        .bind(&provider_id)
        .execute(&mut *tx)
        .await?;
        if let Some(provider_id) = &provider_id {
            super::ingest::apply_pending(&mut tx, account_id, provider_id).await?;
        }
        if let Some(event) = message_updated(&mut tx, company_id, id).await? {
            crate::events::publish(&mut tx, &event).await?;
        }
        tx.commit().await
    }

    async fn fail(&self, company_id: Uuid, id: Uuid, reason: &str) -> sqlx::Result<()> {
        self.finish(
            company_id,
            "update messages set status = 'FAILED', failure_reason = left($2, 500), status_at = now(),
                 send_started_at = null
             where id = $1 and status = 'QUEUED'",
            id,
            Some(reason.to_string()),
        )
        .await
    }

    async fn finish(
        &self,
        company_id: Uuid,
        sql: &str,
        id: Uuid,
        value: Option<String>,
    ) -> sqlx::Result<()> {
        let mut tx = self.state.db.tenant(company_id).await?;
        sqlx::query(sql)
            .bind(id)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        if let Some(event) = message_updated(&mut tx, company_id, id).await? {
            crate::events::publish(&mut tx, &event).await?;
        }
        tx.commit().await
    }
}

/// The event that tells subscribers a message's status changed.
pub async fn message_updated(
    conn: &mut PgConnection,
    company_id: Uuid,
    message_id: Uuid,
) -> sqlx::Result<Option<Event>> {
    let row: Option<ConversationRow> = sqlx::query_as(&format!(
        "select {CONVERSATION_COLUMNS} from conversations c
         join messages m on m.conversation_id = c.id where m.id = $1"
    ))
    .bind(message_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| Event {
        company_id,
        kind: EventKind::MessageUpdated {
            conversation_id: row.id,
            message_id,
            scope: row.scope(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_content_reads_back_as_sent() {
        let contents = [
            OutboundContent::Text { body: "hi".into() },
            OutboundContent::Template {
                name: "order_update".into(),
                language: "en_US".into(),
                variables: vec!["Ana".into()],
            },
            OutboundContent::QuickReplies {
                body: "Pick".into(),
                buttons: vec![Choice {
                    id: "a".into(),
                    title: "A".into(),
                    description: None,
                }],
            },
            OutboundContent::List {
                body: "Pick".into(),
                button: "Open".into(),
                options: vec![Choice {
                    id: "b".into(),
                    title: "B".into(),
                    description: Some("bee".into()),
                }],
            },
            OutboundContent::Media {
                media: MediaKind::Image,
                url: "https://x/y.png".into(),
                mime_type: "image/png".into(),
                filename: None,
                caption: Some("look".into()),
            },
        ];
        for content in contents {
            assert_eq!(content_from_json(&content_json(&content)), Some(content));
        }
        assert_eq!(
            as_numbered_text(&OutboundContent::QuickReplies {
                body: "Which?".into(),
                buttons: vec![
                    Choice {
                        id: "a".into(),
                        title: "Sales".into(),
                        description: None
                    },
                    Choice {
                        id: "b".into(),
                        title: "Support".into(),
                        description: None
                    }
                ]
            }),
            "Which?\n1. Sales\n2. Support"
        );
    }
}
