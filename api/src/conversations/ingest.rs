//! Storing what a verified webhook delivery said: messages (find or create the contact by
//! channel identity, find or open the conversation, store the message once), delivery
//! statuses and template reviews. One transaction per delivery: all of it or none of it, so
//! a provider that retries after an error never finds half a delivery.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::AppState;
use crate::channels::model::{Content, DeliveryStatus, InboundEvent, InboundMessage, StatusUpdate};
use crate::channels::ChannelType;

/// What one delivery changed.
#[derive(Debug, Default)]
pub struct Summary {
    pub stored: Vec<Uuid>,
    pub duplicates: usize,
    pub statuses: usize,
}

#[derive(sqlx::FromRow, Debug)]
struct Ingested {
    message_id: Uuid,
    conversation_id: Uuid,
    contact_id: Uuid,
    #[allow(dead_code)]
    contact_created: bool,
    #[allow(dead_code)]
    conversation_opened: bool,
    duplicate: bool,
    route_job: Option<Uuid>,
}

/// Stores `events` from account `account_id` (of type `kind`) for `company_id`. A delivery
/// of one message without a file (the common case) is one statement; others run in one
/// transaction (a file's fetch job is queued in it). The
/// routing a message calls for runs right after it is stored (its durable job is the
/// fallback should this process stop first).
pub async fn store(
    state: &AppState,
    company_id: Uuid,
    account_id: Uuid,
    kind: ChannelType,
    events: Vec<InboundEvent>,
) -> sqlx::Result<Summary> {
    let mut summary = Summary::default();
    let mut routes = Vec::new();
    let single_text = match events.as_slice() {
        [InboundEvent::Message(message)] => !matches!(message.content, Content::Media { .. }),
        _ => false,
    };
    if let (true, [InboundEvent::Message(message)]) = (single_text, events.as_slice()) {
        let row = store_message(state.db.pool(), company_id, account_id, kind, message).await?;
        tally(&mut summary, &mut routes, &row);
    } else {
        // Messages in sender order (each sender's own order kept), so that two batches
        // naming the same contacts lock their conversations in the same order.
        let mut events = events;
        events.sort_by(|a, b| sender(a).cmp(&sender(b)));
        let mut tx = state.db.tenant(company_id).await?;
        let mut notices = Vec::new();
        for event in events {
            match event {
                InboundEvent::Message(message) => {
                    let row =
                        store_message(&mut *tx, company_id, account_id, kind, &message).await?;
                    if !row.duplicate {
                        // The file is fetched after the acknowledgement, by a job queued
                        // with the message: an acknowledged file is never forgotten.
                        super::attachments::queue_fetch(
                            &mut tx,
                            company_id,
                            row.contact_id,
                            row.conversation_id,
                            row.message_id,
                            &message.content,
                        )
                        .await?;
                    }
                    tally(&mut summary, &mut routes, &row);
                }
                InboundEvent::Status(update) => {
                    if let Some(id) = apply_status(&mut tx, account_id, &update).await? {
                        summary.statuses += 1;
                        if let Some(event) =
                            super::send::message_updated(&mut tx, company_id, id).await?
                        {
                            notices.push(event);
                        }
                    } else {
                        keep_for_later(&mut tx, company_id, account_id, &update).await?;
                    }
                }
                InboundEvent::ReadUpTo { from, up_to } => {
                    summary.statuses += read_up_to(&mut tx, account_id, kind, &from, up_to).await?;
                }
                InboundEvent::TemplateReviewed {
                    name,
                    language,
                    status,
                    reason,
                } => {
                    super::templates::reviewed(
                        &mut tx, account_id, &name, &language, &status, reason,
                    )
                    .await?;
                }
            }
        }
        crate::events::publish_many(&mut tx, &notices).await?;
        tx.commit().await?;
    }
    for (job, conversation, message) in routes {
        if let Err(err) =
            super::routing::route_now(state, company_id, job, conversation, message).await
        {
            // The job stays queued and a worker routes the conversation in half a minute.
            tracing::warn!(error = %err, %conversation, "routing deferred to its job");
        }
    }
    Ok(summary)
}

/// The sender of a message event; other events sort first, in their order.
fn sender(event: &InboundEvent) -> Option<&str> {
    match event {
        InboundEvent::Message(message) => Some(message.from.as_str()),
        _ => None,
    }
}

fn tally(summary: &mut Summary, routes: &mut Vec<(Uuid, Uuid, Uuid)>, row: &Ingested) {
    if row.duplicate {
        summary.duplicates += 1;
        return;
    }
    summary.stored.push(row.message_id);
    if let Some(job) = row.route_job {
        routes.push((job, row.conversation_id, row.message_id));
    }
}

async fn store_message<'e, E>(
    executor: E,
    company_id: Uuid,
    account_id: Uuid,
    kind: ChannelType,
    message: &InboundMessage,
) -> sqlx::Result<Ingested>
where
    E: sqlx::PgExecutor<'e>,
{
    let content = serde_json::to_value(&message.content).unwrap_or_else(|_| json!({}));
    let preview: String = message.content.preview().chars().take(2000).collect();
    let name = message
        .profile_name
        .as_deref()
        .map(|n| n.chars().take(400).collect::<String>());
    let phone = message
        .phone
        .as_deref()
        .and_then(crate::contacts::properties::normalize_phone);
    let from: String = message.from.chars().take(200).collect();
    sqlx::query_as(
        "select * from ingest_inbound_message($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(company_id)
    .bind(account_id)
    .bind(kind.as_db())
    .bind(&message.provider_message_id)
    .bind(from)
    .bind(name)
    .bind(phone)
    .bind(message.sent_at)
    .bind(content)
    .bind(preview)
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .fetch_one(executor)
    .await
}

/// Moves an outbound message's status forward (never back: a late "delivered" after "read"
/// changes nothing; FAILED is final). Returns the message that changed, if one did.
pub async fn apply_status(
    conn: &mut PgConnection,
    account_id: Uuid,
    update: &StatusUpdate,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "update messages set status = $3, failure_reason = coalesce($4, failure_reason),
             status_at = $5
         where channel_account_id = $1 and provider_message_id = $2 and direction = 'OUTBOUND'
           and status <> 'FAILED'
           and (case status when 'QUEUED' then 0 when 'SENT' then 1 when 'DELIVERED' then 2
                            when 'READ' then 3 else 4 end)
             < (case $3 when 'SENT' then 1 when 'DELIVERED' then 2 when 'READ' then 3 else 4 end)
         returning id",
    )
    .bind(account_id)
    .bind(&update.provider_message_id)
    .bind(update.status.as_db())
    .bind(stored_reason(update))
    .bind(update.at)
    .fetch_optional(conn)
    .await
}

/// A status for a provider id no message has yet: the send job may not have recorded the
/// id when a fast provider reported on it. Kept for a day, applied by `apply_pending`.
async fn keep_for_later(
    conn: &mut PgConnection,
    company_id: Uuid,
    account_id: Uuid,
    update: &StatusUpdate,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into pending_statuses (company_id, channel_account_id, provider_message_id, status,
             failure_reason, status_at)
         select $1, $2, $3, $4, $5, $6
         where not exists (select 1 from messages
                           where channel_account_id = $2 and provider_message_id = $3)",
    )
    .bind(company_id)
    .bind(account_id)
    .bind(&update.provider_message_id)
    .bind(update.status.as_db())
    .bind(stored_reason(update))
    .bind(update.at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from pending_statuses where created_at < now() - interval '1 day'")
        .execute(conn)
        .await?;
    Ok(())
}

/// Applies the statuses that arrived for `provider_id` before it was recorded, in order.
pub async fn apply_pending(
    conn: &mut PgConnection,
    account_id: Uuid,
    provider_id: &str,
) -> sqlx::Result<bool> {
    let pending: Vec<(String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
        "delete from pending_statuses where channel_account_id = $1 and provider_message_id = $2
         returning status, failure_reason, status_at",
    )
    .bind(account_id)
    .bind(provider_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut changed = false;
    let mut pending = pending;
    pending.sort_by_key(|(_, _, at)| *at);
    for (status, reason, at) in pending {
        let status = match status.as_str() {
            "SENT" => DeliveryStatus::Sent,
            "DELIVERED" => DeliveryStatus::Delivered,
            "READ" => DeliveryStatus::Read,
            _ => DeliveryStatus::Failed,
        };
        let update = StatusUpdate {
            provider_message_id: provider_id.to_string(),
            status,
            reason,
            at,
        };
        changed |= apply_status(conn, account_id, &update).await?.is_some();
    }
    Ok(changed)
}

/// Messenger's read watermark: everything we sent the contact before `up_to` is read.
async fn read_up_to(
    conn: &mut PgConnection,
    account_id: Uuid,
    kind: ChannelType,
    from: &str,
    up_to: DateTime<Utc>,
) -> sqlx::Result<usize> {
    let done = sqlx::query(
        "update messages m set status = 'READ', status_at = $4
         from contact_identities i
         where i.channel = $2 and i.external_id = $3 and m.contact_id = i.contact_id
           and m.channel_account_id = $1 and m.direction = 'OUTBOUND'
           and m.status in ('SENT', 'DELIVERED') and m.sent_at <= $4",
    )
    .bind(account_id)
    .bind(kind.as_db())
    .bind(from)
    .bind(up_to)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() as usize)
}

/// A provider's failure reason as stored: at most 500 characters.
fn stored_reason(update: &StatusUpdate) -> Option<String> {
    update
        .reason
        .as_deref()
        .map(|r| r.chars().take(500).collect())
}
