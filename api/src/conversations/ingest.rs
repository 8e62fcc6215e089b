//! Storing what a verified webhook delivery said: messages (find or create the contact by
//! channel identity, find or open the conversation, store the message once), delivery
//! statuses and template reviews. One transaction per delivery: all of it or none of it, so
//! a provider that retries after an error never finds half a delivery.
//!
//! Deliveries of one text message (nearly all of them) are stored in batches: the ones
//! that arrive while the database is busy are stored together by the next statement
//! (`ingest_inbound_messages`), and each is answered once its batch is committed. A quiet
//! server stores each alone, as soon as it arrives; a busy one pays one statement and one
//! commit per batch instead of per message.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot, Mutex};
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

/// Batches store at most this many messages (about a statement of 100 kB at most).
const MAX_BATCH: usize = 64;
/// Batches stored at once, each on its own connection: enough to keep the database busy
/// while answers travel, few enough to leave connections for everything else.
const BATCH_WORKERS: usize = 4;
/// Messages waiting for a batch before new webhooks wait to be queued.
const QUEUE: usize = 8192;

/// A text message waiting to be stored with the next batch.
struct Waiting {
    company_id: Uuid,
    account_id: Uuid,
    kind: ChannelType,
    message: InboundMessage,
    /// Made on arrival (ids order messages), kept should the batch be stored again.
    id: Uuid,
    answer: oneshot::Sender<sqlx::Result<Ingested>>,
}

/// The queue of single-message deliveries and the workers that store them in batches.
pub struct Batcher {
    queue: mpsc::Sender<Waiting>,
}

impl Batcher {
    /// Starts the workers (on the current Tokio runtime); they stop when the batcher is
    /// dropped and the queue is empty.
    pub fn start(pool: PgPool) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..BATCH_WORKERS {
            let receiver = receiver.clone();
            let pool = pool.clone();
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&receiver).await {
                    store_batch(&pool, batch).await;
                }
            });
        }
        Batcher { queue }
    }

    async fn store(
        &self,
        company_id: Uuid,
        account_id: Uuid,
        kind: ChannelType,
        message: InboundMessage,
    ) -> sqlx::Result<Ingested> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            company_id,
            account_id,
            kind,
            message,
            id: Uuid::now_v7(),
            answer,
        };
        let stopped = || sqlx::Error::PoolClosed;
        self.queue.send(waiting).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// Whatever is waiting, up to `MAX_BATCH`, once at least one message is.
async fn next_batch(receiver: &Mutex<mpsc::Receiver<Waiting>>) -> Option<Vec<Waiting>> {
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Stores a batch, one statement per channel account in it, and answers each waiting
/// delivery. Should the database refuse a statement (a deadlock, one message's bad data),
/// its messages are stored one by one, so that one message's problem is its own
/// delivery's error only; a lost connection fails them all (the providers deliver again).
async fn store_batch(pool: &PgPool, batch: Vec<Waiting>) {
    let mut groups: Vec<Vec<Waiting>> = Vec::new();
    for waiting in batch {
        match groups
            .iter_mut()
            .find(|g| g[0].account_id == waiting.account_id)
        {
            Some(group) => group.push(waiting),
            None => groups.push(vec![waiting]),
        }
    }
    for group in groups {
        metrics::histogram!("obrol_inbound_batch_messages").record(group.len() as f64);
        let first = &group[0];
        let (company_id, account_id, kind) = (first.company_id, first.account_id, first.kind);
        let messages: Vec<(Uuid, &InboundMessage)> =
            group.iter().map(|w| (w.id, &w.message)).collect();
        match store_messages(pool, company_id, account_id, kind, &messages).await {
            Ok(rows) if rows.len() == group.len() => {
                for (waiting, row) in group.into_iter().zip(rows) {
                    let _ = waiting.answer.send(Ok(row));
                }
            }
            Err(sqlx::Error::Database(err)) if group.len() > 1 => {
                tracing::warn!(error = %err, messages = group.len(),
                    "a batch of inbound messages was refused; storing them one by one");
                for waiting in group {
                    let stored = store_messages(
                        pool,
                        company_id,
                        account_id,
                        kind,
                        &[(waiting.id, &waiting.message)],
                    )
                    .await
                    .and_then(|rows| rows.into_iter().next().ok_or(sqlx::Error::RowNotFound));
                    let _ = waiting.answer.send(stored);
                }
            }
            outcome => {
                let reason = match outcome {
                    Ok(rows) => format!("{} rows for {} messages", rows.len(), group.len()),
                    Err(err) => err.to_string(),
                };
                tracing::warn!(error = %reason, messages = group.len(),
                    "a batch of inbound messages was not stored");
                for waiting in group {
                    let _ = waiting
                        .answer
                        .send(Err(sqlx::Error::Protocol(reason.clone())));
                }
            }
        }
    }
}

/// Stores `events` from account `account_id` (of type `kind`) for `company_id`. A delivery
/// of one message without a file (the common case) goes with the next batch; others run
/// in their own transaction (a file's fetch job is queued in it). The routing a message
/// calls for runs right after it is stored (its durable job is the fallback should this
/// process stop first).
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
    if single_text {
        let Some(InboundEvent::Message(message)) = events.into_iter().next() else {
            unreachable!("checked above");
        };
        let row = state
            .inbound
            .store(company_id, account_id, kind, message)
            .await?;
        tally(&mut summary, &mut routes, &row);
    } else {
        let mut tx = state.db.tenant(company_id).await?;
        let (messages, others): (Vec<_>, Vec<_>) = events
            .into_iter()
            .partition(|e| matches!(e, InboundEvent::Message(_)));
        let messages: Vec<InboundMessage> = messages
            .into_iter()
            .filter_map(|e| match e {
                InboundEvent::Message(message) => Some(message),
                _ => None,
            })
            .collect();
        let with_ids: Vec<(Uuid, &InboundMessage)> =
            messages.iter().map(|m| (Uuid::now_v7(), m)).collect();
        let rows = if with_ids.is_empty() {
            Vec::new()
        } else {
            store_messages(&mut *tx, company_id, account_id, kind, &with_ids).await?
        };
        for (message, row) in messages.iter().zip(&rows) {
            if !row.duplicate {
                // The file is fetched after the acknowledgement, by a job queued with the
                // message: an acknowledged file is never forgotten.
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
            tally(&mut summary, &mut routes, row);
        }
        let mut notices = Vec::new();
        for event in others {
            match event {
                InboundEvent::Message(_) => {}
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

/// Stores `messages` (each with its new id) of one account in one statement; one row per
/// message, in order.
async fn store_messages<'e, E>(
    executor: E,
    company_id: Uuid,
    account_id: Uuid,
    kind: ChannelType,
    messages: &[(Uuid, &InboundMessage)],
) -> sqlx::Result<Vec<Ingested>>
where
    E: sqlx::PgExecutor<'e>,
{
    let n = messages.len();
    let (mut provider_ids, mut froms, mut names, mut phones) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut sent_at, mut contents, mut previews, mut ids) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for &(id, message) in messages {
        provider_ids.push(message.provider_message_id.clone());
        froms.push(message.from.chars().take(200).collect::<String>());
        names.push(
            message
                .profile_name
                .as_deref()
                .map(|n| n.chars().take(400).collect::<String>()),
        );
        phones.push(
            message
                .phone
                .as_deref()
                .and_then(crate::contacts::properties::normalize_phone),
        );
        sent_at.push(message.sent_at);
        contents.push(serde_json::to_value(&message.content).unwrap_or_else(|_| json!({})));
        previews.push(
            message
                .content
                .preview()
                .chars()
                .take(2000)
                .collect::<String>(),
        );
        ids.push(id);
    }
    // A contact, a conversation and its OPENED event for each, used where one is made.
    let fresh: Vec<Uuid> = (0..3 * n).map(|_| Uuid::now_v7()).collect();
    sqlx::query_as(
        "select * from ingest_inbound_messages($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(company_id)
    .bind(account_id)
    .bind(kind.as_db())
    .bind(provider_ids)
    .bind(froms)
    .bind(names)
    .bind(phones)
    .bind(sent_at)
    .bind(contents)
    .bind(previews)
    .bind(ids)
    .bind(fresh)
    .fetch_all(executor)
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
