//! Conversations (PRODUCT.md §4): the thread between the business and one contact, its
//! messages and notes, who it is assigned to, and who may see it.
//!
//! A contact has at most one open conversation (a partial unique index). Inbound messages
//! arrive through `ingest` (webhooks), outbound ones leave through `send` (a durable job per
//! message), and `routing` decides who gets a new conversation.

pub mod attachments;
pub mod graphql;
pub mod ingest;
pub mod profiles;
pub mod reads;
pub mod routing;
pub mod send;
pub mod templates;
pub mod window;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value as Json};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Actor, ApiScope, Role};
use crate::channels::ChannelType;
use crate::error::{ApiError, ApiResult};
use crate::events::{self, ConversationScope, Event, EventKind};

#[derive(sqlx::FromRow, Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ConversationRow {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub channel_account_id: Option<Uuid>,
    pub status: String,
    pub source: String,
    pub team_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    /// Skill based: the team whose routing question awaits the contact's answer.
    pub routing_team_id: Option<Uuid>,
    pub awaiting_reply_since: Option<DateTime<Utc>>,
    pub mentioned_user_ids: Vec<Uuid>,
    pub unread_count: i32,
    pub last_message_at: DateTime<Utc>,
    pub last_message_preview: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

pub const CONVERSATION_COLUMNS: &str = "c.id, c.contact_id, c.channel_account_id, c.status, \
    c.source, c.team_id, c.assignee_id, c.assigned_at, c.queued_at, c.routing_team_id, \
    c.awaiting_reply_since, \
    c.mentioned_user_ids, c.unread_count, c.last_message_at, c.last_message_preview, \
    c.opened_at, c.closed_at";

impl ConversationRow {
    pub fn scope(&self) -> ConversationScope {
        ConversationScope {
            team_id: self.team_id,
            assignee_id: self.assignee_id,
            mentioned: self.mentioned_user_ids.clone(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.status == "OPEN"
    }
}

#[derive(sqlx::FromRow, Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub contact_id: Uuid,
    pub channel_account_id: Option<Uuid>,
    pub direction: String,
    pub sender_type: String,
    pub sender_user_id: Option<Uuid>,
    pub content: Json,
    pub preview: String,
    pub is_note: bool,
    pub mentions: Vec<Uuid>,
    pub provider_message_id: Option<String>,
    pub status: String,
    pub failure_reason: Option<String>,
    pub status_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub const MESSAGE_COLUMNS: &str = "m.id, m.conversation_id, m.contact_id, m.channel_account_id, \
    m.direction, m.sender_type, m.sender_user_id, m.content, m.preview, m.is_note, m.mentions, \
    m.provider_message_id, m.status, m.failure_reason, m.status_at, m.sent_at, m.created_at";

/// Who may see which conversations. Admins see all. Others see what is assigned to them,
/// what mentions them, and what belongs to their teams or to no team; with the company's
/// "staff see all" setting off, Staff see only their own and the unassigned pools they may
/// claim from.
#[derive(Clone, Debug)]
pub struct Access {
    pub me: Uuid,
    pub admin: bool,
    pub my_teams: Vec<Uuid>,
    pub own_only: bool,
}

impl Access {
    pub async fn of(conn: &mut PgConnection, actor: &Actor) -> ApiResult<Self> {
        Self::of_user(conn, actor.user_id(), actor.role).await
    }

    pub async fn of_user(conn: &mut PgConnection, user_id: Uuid, role: Role) -> ApiResult<Self> {
        let (my_teams, staff_see_all) =
            crate::contacts::store::visibility_facts(conn, user_id).await?;
        Ok(Self {
            me: user_id,
            admin: role == Role::Admin,
            my_teams,
            own_only: role == Role::Staff && !staff_see_all,
        })
    }

    pub fn allows(&self, scope: &ConversationScope) -> bool {
        if self.admin || scope.assignee_id == Some(self.me) || scope.mentioned.contains(&self.me) {
            return true;
        }
        let pool_ok = !self.own_only || scope.assignee_id.is_none();
        match scope.team_id {
            Some(team) => self.my_teams.contains(&team) && pool_ok,
            None => pool_ok,
        }
    }

    pub fn is_member(&self, team: Uuid) -> bool {
        self.my_teams.contains(&team)
    }

    /// Appends ` and <rule>` for conversations aliased `c`.
    pub fn push_where(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        if self.admin {
            return;
        }
        qb.push(" and (c.assignee_id = ")
            .push_bind(self.me)
            .push(" or ")
            .push_bind(self.me)
            .push(" = any(c.mentioned_user_ids) or ((c.team_id is null or c.team_id = any(")
            .push_bind(self.my_teams.clone())
            .push("))");
        if self.own_only {
            qb.push(" and c.assignee_id is null");
        }
        qb.push("))");
    }
}

pub async fn by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as(&format!(
        "select {CONVERSATION_COLUMNS} from conversations c where c.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn by_id_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as(&format!(
        "select {CONVERSATION_COLUMNS} from conversations c where c.id = $1 for update"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The conversation if the actor may see it; NOT_FOUND otherwise (another company's id and
/// one the actor may not see look the same).
pub async fn visible(
    conn: &mut PgConnection,
    actor: &Actor,
    id: Uuid,
    lock: bool,
) -> ApiResult<(Access, ConversationRow)> {
    let access = Access::of(conn, actor).await?;
    let row = if lock {
        by_id_for_update(conn, id).await?
    } else {
        by_id(conn, id).await?
    };
    match row {
        Some(row) if access.allows(&row.scope()) => Ok((access, row)),
        _ => Err(ApiError::not_found("conversation")),
    }
}

pub async fn message_by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<MessageRow>> {
    sqlx::query_as(&format!(
        "select {MESSAGE_COLUMNS} from messages m where m.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Publishes that a conversation changed (and who saw it before, when that changed).
pub async fn publish_updated(
    conn: &mut PgConnection,
    company_id: Uuid,
    row: &ConversationRow,
    previous: Option<ConversationScope>,
) -> sqlx::Result<()> {
    let scope = row.scope();
    let previous = previous.filter(|p| *p != scope);
    events::publish(
        conn,
        &Event {
            company_id,
            kind: EventKind::ConversationUpdated {
                conversation_id: row.id,
                scope,
                previous,
                conversation: Some(Box::new(row.clone())),
            },
        },
    )
    .await
}

pub async fn publish_message(
    conn: &mut PgConnection,
    company_id: Uuid,
    conversation: &ConversationRow,
    message: &MessageRow,
) -> sqlx::Result<()> {
    events::publish(
        conn,
        &Event {
            company_id,
            kind: EventKind::MessageAdded {
                conversation_id: conversation.id,
                message_id: message.id,
                scope: conversation.scope(),
                contact_id: Some(conversation.contact_id),
                message: Some(Box::new(message.clone())),
            },
        },
    )
    .await
}

pub async fn record_event(
    conn: &mut PgConnection,
    company_id: Uuid,
    conversation_id: Uuid,
    kind: &str,
    actor_user_id: Option<Uuid>,
    details: Json,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into conversation_events (id, company_id, conversation_id, kind, actor_user_id, details)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(company_id)
    .bind(conversation_id)
    .bind(kind)
    .bind(actor_user_id)
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which conversations an inbox shows.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboxView {
    /// Assigned to me, or mentioning me.
    Mine,
    /// One team's (`teamId`), or all my teams' without it.
    Team,
    /// Everything the caller may see.
    Company,
}

#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub view: Option<InboxView>,
    pub team_id: Option<Uuid>,
    /// Only conversations nobody is assigned to (a team's Unassigned pool).
    pub unassigned: bool,
    pub status: Option<String>,
    pub channels: Vec<ChannelType>,
    pub label_ids: Vec<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
}

/// Inbox pages are ordered by last activity, newest first; the cursor is the last row's
/// (last_message_at, id).
pub fn encode_cursor(row: &ConversationRow) -> String {
    let mut bytes = row
        .last_message_at
        .timestamp_micros()
        .to_be_bytes()
        .to_vec();
    bytes.extend_from_slice(row.id.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode_cursor(cursor: &str) -> ApiResult<(DateTime<Utc>, Uuid)> {
    let bad = || ApiError::validation("the 'after' cursor is not one this API gave out");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    if bytes.len() != 24 {
        return Err(bad());
    }
    let micros = i64::from_be_bytes(bytes[..8].try_into().map_err(|_| bad())?);
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    let id = Uuid::from_slice(&bytes[8..]).map_err(|_| bad())?;
    Ok((at, id))
}

/// A page of the inbox (`size + 1` rows, to tell whether more follow) and the total count.
pub async fn list(
    state: &AppState,
    actor: &Actor,
    filter: &ListFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    size: usize,
) -> ApiResult<(Vec<ConversationRow>, i64)> {
    actor.require(Role::Staff, ApiScope::ConversationsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let access = Access::of(&mut tx, actor).await?;
    if let Some(team) = filter.team_id {
        if !access.admin && !access.is_member(team) {
            return Err(ApiError::forbidden("only the team's members see its inbox"));
        }
    }
    let push_filters = |qb: &mut QueryBuilder<'_, Postgres>| {
        qb.push(" where true");
        access.push_where(qb);
        match filter.view.unwrap_or(InboxView::Company) {
            InboxView::Mine => {
                qb.push(" and (c.assignee_id = ")
                    .push_bind(access.me)
                    .push(" or ")
                    .push_bind(access.me)
                    .push(" = any(c.mentioned_user_ids))");
            }
            InboxView::Team if filter.team_id.is_none() => {
                qb.push(" and c.team_id = any(")
                    .push_bind(access.my_teams.clone())
                    .push(")");
            }
            InboxView::Team | InboxView::Company => {}
        }
        if let Some(team) = filter.team_id {
            qb.push(" and c.team_id = ").push_bind(team);
        }
        if filter.unassigned {
            qb.push(" and c.assignee_id is null");
        }
        if let Some(assignee) = filter.assignee_id {
            qb.push(" and c.assignee_id = ").push_bind(assignee);
        }
        if let Some(status) = &filter.status {
            qb.push(" and c.status = ").push_bind(status.clone());
        }
        if let Some(contact) = filter.contact_id {
            qb.push(" and c.contact_id = ").push_bind(contact);
        }
        if !filter.channels.is_empty() {
            let types: Vec<&str> = filter.channels.iter().map(|c| c.as_db()).collect();
            qb.push(
                " and exists (select 1 from channel_accounts a where a.id = c.channel_account_id \
                 and a.type = any(",
            )
            .push_bind(types)
            .push("))");
        }
        if !filter.label_ids.is_empty() {
            qb.push(
                " and exists (select 1 from contacts k where k.id = c.contact_id and k.label_ids && ",
            )
            .push_bind(filter.label_ids.clone())
            .push(")");
        }
    };
    let mut qb = QueryBuilder::new(format!(
        "select {CONVERSATION_COLUMNS} from conversations c"
    ));
    push_filters(&mut qb);
    if let Some((at, id)) = after {
        qb.push(" and (c.last_message_at, c.id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" order by c.last_message_at desc, c.id desc limit ")
        .push_bind(size as i64 + 1);
    let rows: Vec<ConversationRow> = qb.build_query_as().fetch_all(&mut *tx).await?;
    let mut count = QueryBuilder::new("select count(*) from conversations c");
    push_filters(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok((rows, total))
}

/// Messages of a conversation, newest first (`size + 1` rows).
pub async fn messages(
    state: &AppState,
    actor: &Actor,
    conversation_id: Uuid,
    after: Option<Uuid>,
    size: usize,
) -> ApiResult<Vec<MessageRow>> {
    actor.require(Role::Staff, ApiScope::ConversationsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    visible(&mut tx, actor, conversation_id, false).await?;
    let rows = sqlx::query_as(&format!(
        "select {MESSAGE_COLUMNS} from messages m
         where m.conversation_id = $1 and ($2::uuid is null or m.id < $2)
         order by m.id desc limit $3"
    ))
    .bind(conversation_id)
    .bind(after)
    .bind(size as i64 + 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn get(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<ConversationRow> {
    actor.require(Role::Staff, ApiScope::ConversationsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (_, row) = visible(&mut tx, actor, id, false).await?;
    tx.commit().await?;
    Ok(row)
}

/// Closes (resolves) a conversation; the contact's next message opens a new one.
pub async fn close(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<ConversationRow> {
    actor.require(Role::Staff, ApiScope::ConversationsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (_, before) = visible(&mut tx, actor, id, true).await?;
    if !before.is_open() {
        return Err(ApiError::conflict("the conversation is already closed"));
    }
    let row: ConversationRow = sqlx::query_as(&format!(
        "update conversations c set status = 'CLOSED', closed_at = now(), queued_at = null,
             routing_team_id = null, awaiting_reply_since = null, updated_at = now()
         where c.id = $1 returning {CONVERSATION_COLUMNS}"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    record_event(
        &mut tx,
        actor.company_id,
        id,
        "CLOSED",
        Some(actor.user_id()),
        json!({}),
    )
    .await?;
    cancel_timers(&mut tx, id).await?;
    publish_updated(&mut tx, actor.company_id, &row, None).await?;
    // A closed conversation frees its agent's place: a queued one may take it.
    if let (Some(team), Some(_)) = (before.team_id, before.assignee_id) {
        routing::drain_queue(&mut tx, actor.company_id, team).await?;
    }
    tx.commit().await?;
    Ok(row)
}

/// Opens a conversation from the business's side (source BUSINESS) with a contact on one of
/// the company's channel accounts, assigned to the agent who starts it, so that a reply (a
/// WhatsApp template outside the window) can be sent in it. The contact's open conversation
/// is returned instead if it has one. The contact needs an identity on that channel; on
/// WhatsApp and SMS their phone number gives one.
pub async fn start(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
    account_id: Uuid,
) -> ApiResult<ConversationRow> {
    actor.require(Role::Staff, ApiScope::ConversationsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let visibility = crate::contacts::Visibility::of(&mut tx, actor).await?;
    // No lock on the contact: a message arriving from them meanwhile needs its key, and the
    // inserts below settle any race through their unique indexes.
    let contact: Option<(Option<Uuid>, Option<Uuid>, Option<String>)> =
        sqlx::query_as("select owner_id, team_id, phone from contacts where id = $1")
            .bind(contact_id)
            .fetch_optional(&mut *tx)
            .await?;
    let phone = match contact {
        Some((owner, team, phone)) if visibility.allows_owned(owner, team) => phone,
        _ => return Err(ApiError::not_found("contact")),
    };
    let account: Option<(String, Option<Uuid>)> = sqlx::query_as(
        "select type, team_id from channel_accounts where id = $1 and status = 'ACTIVE'",
    )
    .bind(account_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((kind, account_team)) = account else {
        return Err(ApiError::not_found("channel account"));
    };
    let kind = ChannelType::from_db(&kind);
    let access = Access::of(&mut tx, actor).await?;
    if let Some(open) = open_of(&mut tx, contact_id).await? {
        return existing(tx, &access, open).await;
    }
    let known: bool = sqlx::query_scalar(
        "select exists (select 1 from contact_identities where contact_id = $1 and channel = $2)",
    )
    .bind(contact_id)
    .bind(kind.as_db())
    .fetch_one(&mut *tx)
    .await?;
    if !known {
        // A phone number is the contact's address on WhatsApp (its digits) and SMS.
        let address = match (kind, phone.as_deref()) {
            (ChannelType::Whatsapp, Some(phone)) => Some(phone.trim_start_matches('+').to_string()),
            (ChannelType::Sms, Some(phone)) => Some(phone.to_string()),
            _ => None,
        };
        let Some(address) = address else {
            return Err(ApiError::validation(format!(
                "the contact cannot be reached on {} yet: they have not written there{}",
                crate::channels::outbound::channel_name(kind),
                if matches!(kind, ChannelType::Whatsapp | ChannelType::Sms) {
                    " and have no phone number"
                } else {
                    ""
                }
            )));
        };
        // The address may be taken meanwhile (the contact writing first: then it is theirs).
        let made: Option<Uuid> = sqlx::query_scalar(
            "insert into contact_identities (id, company_id, contact_id, channel, external_id)
             values ($1, $2, $3, $4, $5)
             on conflict do nothing
             returning contact_id",
        )
        .bind(Uuid::now_v7())
        .bind(actor.company_id)
        .bind(contact_id)
        .bind(kind.as_db())
        .bind(&address)
        .fetch_optional(&mut *tx)
        .await?;
        let owner = match made {
            Some(owner) => Some(owner),
            // A statement of its own: it sees what the conflicting insert committed.
            None => {
                sqlx::query_scalar(
                    "select contact_id from contact_identities
                     where company_id = $1 and channel = $2 and external_id = $3",
                )
                .bind(actor.company_id)
                .bind(kind.as_db())
                .bind(&address)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let owner = owner.unwrap_or(contact_id);
        if owner != contact_id {
            return Err(ApiError::conflict(format!(
                "another contact already has the {} address {address}; merge the two first",
                crate::channels::outbound::channel_name(kind)
            )));
        }
    }
    let assignee = actor.api_key_id().is_none().then(|| actor.user_id());
    let made: Option<ConversationRow> = sqlx::query_as(&format!(
        "insert into conversations as c (id, company_id, contact_id, channel_account_id, source,
             team_id, assignee_id, assigned_at)
         values ($1, $2, $3, $4, 'BUSINESS', $5, $6, case when $6::uuid is not null then now() end)
         on conflict do nothing
         returning {CONVERSATION_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(contact_id)
    .bind(account_id)
    .bind(account_team)
    .bind(assignee)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = made else {
        // The contact wrote (or someone reopened theirs) meanwhile: that one is open.
        let open = open_of(&mut tx, contact_id)
            .await?
            .ok_or_else(|| ApiError::conflict("the conversation changed meanwhile; try again"))?;
        return existing(tx, &access, open).await;
    };
    sqlx::query(
        "insert into conversation_events (id, company_id, conversation_id, kind, source,
             actor_user_id)
         values ($1, $2, $3, 'OPENED', 'BUSINESS', $4)",
    )
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(row.id)
    .bind(actor.user_id())
    .execute(&mut *tx)
    .await?;
    publish_updated(&mut tx, actor.company_id, &row, None).await?;
    tx.commit().await?;
    Ok(row)
}

/// The contact's open conversation, if any.
async fn open_of(
    conn: &mut PgConnection,
    contact_id: Uuid,
) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as(&format!(
        "select {CONVERSATION_COLUMNS} from conversations c
         where c.contact_id = $1 and c.status = 'OPEN'"
    ))
    .bind(contact_id)
    .fetch_optional(conn)
    .await
}

/// Answers `start` with the contact's open conversation, if the actor may see it.
async fn existing(
    tx: crate::db::TenantTx,
    access: &Access,
    open: ConversationRow,
) -> ApiResult<ConversationRow> {
    tx.commit().await?;
    if access.allows(&open.scope()) {
        Ok(open)
    } else {
        Err(ApiError::conflict(
            "the contact already has an open conversation, which you cannot see; ask its assignee",
        ))
    }
}

/// Reopens a closed conversation, unless the contact has since opened another.
pub async fn reopen(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<ConversationRow> {
    actor.require(Role::Staff, ApiScope::ConversationsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (_, before) = visible(&mut tx, actor, id, true).await?;
    if before.is_open() {
        return Err(ApiError::conflict("the conversation is already open"));
    }
    let row: ConversationRow = sqlx::query_as(&format!(
        "update conversations c set status = 'OPEN', closed_at = null, updated_at = now()
         where c.id = $1 returning {CONVERSATION_COLUMNS}"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|err| {
        if crate::error::is_unique_violation(&err, "conversations_one_open") {
            ApiError::conflict("the contact has another open conversation; continue that one")
        } else {
            err.into()
        }
    })?;
    record_event(
        &mut tx,
        actor.company_id,
        id,
        "REOPENED",
        Some(actor.user_id()),
        json!({}),
    )
    .await?;
    publish_updated(&mut tx, actor.company_id, &row, None).await?;
    tx.commit().await?;
    Ok(row)
}

/// Marks the conversation read (unread count 0).
pub async fn mark_read(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<ConversationRow> {
    actor.require(Role::Staff, ApiScope::ConversationsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (_, before) = visible(&mut tx, actor, id, true).await?;
    if before.unread_count == 0 {
        return Ok(before);
    }
    let row: ConversationRow = sqlx::query_as(&format!(
        "update conversations c set unread_count = 0, updated_at = now()
         where c.id = $1 returning {CONVERSATION_COLUMNS}"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    publish_updated(&mut tx, actor.company_id, &row, None).await?;
    tx.commit().await?;
    Ok(row)
}

/// The most people one conversation's notes may mention.
pub const MAX_MENTIONED: usize = 50;

/// An internal note; `mentions` are users of the company, who then see the conversation in
/// their inbox.
pub async fn add_note(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    text: &str,
    mentions: &[Uuid],
) -> ApiResult<MessageRow> {
    actor.require(Role::Staff, ApiScope::ConversationsWrite)?;
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 10_000 {
        return Err(ApiError::validation(
            "a note is between 1 and 10,000 characters",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mentions: Vec<Uuid> = mentions
        .iter()
        .copied()
        .filter(|id| seen.insert(*id))
        .collect();
    if mentions.len() > 50 {
        return Err(ApiError::validation("a note may mention at most 50 users"));
    }
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (_, before) = visible(&mut tx, actor, id, true).await?;
    let known = crate::users::store::by_ids(&mut tx, &mentions).await?;
    if known.len() != mentions.len() {
        return Err(ApiError::not_found("mentioned user"));
    }
    // Who is mentioned travels in every event about the conversation, which must stay small.
    let mut everyone = before.mentioned_user_ids.clone();
    everyone.extend(
        mentions
            .iter()
            .filter(|m| !before.mentioned_user_ids.contains(m)),
    );
    if everyone.len() > MAX_MENTIONED {
        return Err(ApiError::validation(format!(
            "a conversation can mention at most {MAX_MENTIONED} people"
        )));
    }
    let message: MessageRow = sqlx::query_as(&format!(
        "insert into messages as m (id, company_id, conversation_id, contact_id, direction, sender_type,
             sender_user_id, content, preview, is_note, mentions, status)
         values ($1, $2, $3, $4, 'INTERNAL', 'USER', $5, $6, $7, true, $8, 'NOTE')
         returning {MESSAGE_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(id)
    .bind(before.contact_id)
    .bind(actor.user_id())
    .bind(json!({ "kind": "NOTE", "body": text }))
    .bind(text)
    .bind(&mentions)
    .fetch_one(&mut *tx)
    .await?;
    let row: ConversationRow = sqlx::query_as(&format!(
        "update conversations c set
             mentioned_user_ids = array(select distinct u from unnest(c.mentioned_user_ids || $2::uuid[]) u),
             updated_at = now()
         where c.id = $1 returning {CONVERSATION_COLUMNS}"
    ))
    .bind(id)
    .bind(&mentions)
    .fetch_one(&mut *tx)
    .await?;
    publish_message(&mut tx, actor.company_id, &row, &message).await?;
    publish_updated(&mut tx, actor.company_id, &row, Some(before.scope())).await?;
    tx.commit().await?;
    Ok(message)
}

/// Removes the conversation's pending timers (reassignment, routing nudges).
pub async fn cancel_timers(conn: &mut PgConnection, conversation_id: Uuid) -> sqlx::Result<()> {
    crate::jobs::cancel_matching(
        conn,
        &[routing::REASSIGN_JOB, routing::NUDGE_JOB],
        "conversation_id",
        &conversation_id.to_string(),
    )
    .await?;
    Ok(())
}
