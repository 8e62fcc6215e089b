//! What hangs off a contact: internal notes, reminders, channel identities and media
//! references. Every call first finds the contact through the caller's [`Visibility`], so a
//! hidden or foreign contact's notes are as invisible as the contact.

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{store, visible, Visibility};
use crate::app::AppState;
use crate::auth::{Actor, ApiScope, Role};
use crate::error::{is_unique_violation, ApiError, ApiResult};

pub use crate::channels::ChannelType as Channel;

/// Opens the actor's transaction and checks they may see `contact_id`.
async fn with_contact(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
    scope: ApiScope,
) -> ApiResult<crate::db::TenantTx> {
    actor.require(Role::Staff, scope)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    visible(&mut tx, &visibility, contact_id, &[], false).await?;
    Ok(tx)
}

/// Rows that belong to a contact, found by their own id.
#[derive(Clone, Copy)]
enum Owned {
    Note,
    Reminder,
    Identity,
}

impl Owned {
    fn table_and_name(self) -> (&'static str, &'static str) {
        match self {
            Owned::Note => ("contact_notes", "note"),
            Owned::Reminder => ("contact_reminders", "reminder"),
            Owned::Identity => ("contact_identities", "identity"),
        }
    }
}

/// The contact row `id` of `kind` belongs to, if the actor may see that contact; NOT_FOUND
/// (naming the row) otherwise.
async fn owning_contact(
    conn: &mut PgConnection,
    actor: &Actor,
    kind: Owned,
    id: Uuid,
) -> ApiResult<Uuid> {
    let (table, name) = kind.table_and_name();
    // The table name comes from the closed list above.
    let contact_id: Option<Uuid> =
        sqlx::query_scalar(&format!("select contact_id from {table} where id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let contact_id = contact_id.ok_or_else(|| ApiError::not_found(name))?;
    let visibility = Visibility::of(conn, actor).await?;
    visible(conn, &visibility, contact_id, &[], false)
        .await
        .map_err(|_| ApiError::not_found(name))?;
    Ok(contact_id)
}

fn clean_body(body: &str, max: usize, what: &str) -> ApiResult<String> {
    let body = body.trim();
    if body.is_empty() || body.chars().count() > max {
        return Err(ApiError::validation(format!(
            "a {what} is 1 to {max} characters"
        )));
    }
    Ok(body.to_string())
}

// ---------------------------------------------------------------------------------------
// Notes

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct NoteRow {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub author_id: Option<Uuid>,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

pub async fn add_note(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
    body: &str,
) -> ApiResult<NoteRow> {
    let body = clean_body(body, 10_000, "note")?;
    let mut tx = with_contact(state, actor, contact_id, ApiScope::ContactsWrite).await?;
    let note: NoteRow = sqlx::query_as(
        "insert into contact_notes (id, company_id, contact_id, author_id, body)
         values ($1, $2, $3, $4, $5) returning id, contact_id, author_id, body, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(contact_id)
    .bind(actor.user_id())
    .bind(&body)
    .fetch_one(&mut *tx)
    .await?;
    store::record_activity(
        &mut tx,
        actor.company_id,
        &[contact_id],
        "NOTE_ADDED",
        Some(actor.user_id()),
        &json!({ "note": note.id }),
    )
    .await?;
    tx.commit().await?;
    Ok(note)
}

pub async fn notes(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
    limit: i64,
) -> ApiResult<Vec<NoteRow>> {
    let mut tx = with_contact(state, actor, contact_id, ApiScope::ContactsRead).await?;
    let rows = sqlx::query_as(
        "select id, contact_id, author_id, body, created_at from contact_notes
         where contact_id = $1 order by id desc limit $2",
    )
    .bind(contact_id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

/// Deletes a note: its author, or an Admin.
pub async fn delete_note(state: &AppState, actor: &Actor, note_id: Uuid) -> ApiResult<Uuid> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let note: Option<NoteRow> = sqlx::query_as(
        "select id, contact_id, author_id, body, created_at from contact_notes where id = $1",
    )
    .bind(note_id)
    .fetch_optional(&mut *tx)
    .await?;
    let note = note.ok_or_else(|| ApiError::not_found("note"))?;
    owning_contact(&mut tx, actor, Owned::Note, note.id).await?;
    if note.author_id != Some(actor.user_id()) && actor.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only a note's author or an Admin deletes it",
        ));
    }
    sqlx::query("delete from contact_notes where id = $1")
        .bind(note_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(note_id)
}

// ---------------------------------------------------------------------------------------
// Reminders

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct ReminderRow {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub assignee_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub body: String,
    pub due_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const REMINDER_COLUMNS: &str =
    "id, contact_id, assignee_id, created_by, body, due_at, done_at, created_at";

pub async fn add_reminder(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
    body: &str,
    due_at: DateTime<Utc>,
    assignee_id: Option<Uuid>,
) -> ApiResult<ReminderRow> {
    let body = clean_body(body, 2_000, "reminder")?;
    let mut tx = with_contact(state, actor, contact_id, ApiScope::ContactsWrite).await?;
    let assignee = assignee_id.unwrap_or(actor.user_id());
    crate::users::store::by_id(&mut tx, assignee)
        .await?
        .filter(|u| u.status != "DEACTIVATED")
        .ok_or_else(|| ApiError::not_found("user"))?;
    let row: ReminderRow = sqlx::query_as(&format!(
        "insert into contact_reminders (id, company_id, contact_id, assignee_id, created_by, body, due_at)
         values ($1, $2, $3, $4, $5, $6, $7) returning {REMINDER_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(contact_id)
    .bind(assignee)
    .bind(actor.user_id())
    .bind(&body)
    .bind(due_at)
    .fetch_one(&mut *tx)
    .await?;
    store::record_activity(
        &mut tx,
        actor.company_id,
        &[contact_id],
        "REMINDER_ADDED",
        Some(actor.user_id()),
        &json!({ "reminder": row.id, "due_at": due_at, "assignee": assignee }),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Marks a reminder done (or not done again).
pub async fn complete_reminder(
    state: &AppState,
    actor: &Actor,
    reminder_id: Uuid,
    done: bool,
) -> ApiResult<ReminderRow> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    owning_contact(&mut tx, actor, Owned::Reminder, reminder_id).await?;
    let row: ReminderRow = sqlx::query_as(&format!(
        "update contact_reminders set done_at = case when $2 then coalesce(done_at, now()) end
         where id = $1 returning {REMINDER_COLUMNS}"
    ))
    .bind(reminder_id)
    .bind(done)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn reminders(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
) -> ApiResult<Vec<ReminderRow>> {
    let mut tx = with_contact(state, actor, contact_id, ApiScope::ContactsRead).await?;
    let rows = sqlx::query_as(&format!(
        "select {REMINDER_COLUMNS} from contact_reminders where contact_id = $1
         order by due_at, id limit 200"
    ))
    .bind(contact_id)
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

/// The caller's open reminders, soonest first.
pub async fn my_reminders(
    state: &AppState,
    actor: &Actor,
    limit: i64,
) -> ApiResult<Vec<ReminderRow>> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(&format!(
        "select {REMINDER_COLUMNS} from contact_reminders
         where assignee_id = $1 and done_at is null order by due_at, id limit $2"
    ))
    .bind(actor.user_id())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

// ---------------------------------------------------------------------------------------
// Channel identities

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct IdentityRow {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub channel: String,
    pub external_id: String,
    pub created_at: DateTime<Utc>,
}

/// Links a channel identity (a WhatsApp number, an Instagram id, ...) to a contact. One
/// identity belongs to one contact of the company: linking it twice is a CONFLICT.
pub async fn add_identity(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
    channel: Channel,
    external_id: &str,
) -> ApiResult<IdentityRow> {
    let external_id = external_id.trim();
    if external_id.is_empty()
        || external_id.chars().count() > 200
        || external_id.chars().any(char::is_control)
    {
        return Err(ApiError::validation(
            "a channel identity is 1 to 200 characters",
        ));
    }
    let mut tx = with_contact(state, actor, contact_id, ApiScope::ContactsWrite).await?;
    let row: IdentityRow = sqlx::query_as(
        "insert into contact_identities (id, company_id, contact_id, channel, external_id)
         values ($1, $2, $3, $4, $5) returning id, contact_id, channel, external_id, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(contact_id)
    .bind(channel.as_db())
    .bind(external_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|err| {
        if is_unique_violation(&err, "contact_identities_key") {
            ApiError::conflict(format!(
                "this {} identity already belongs to a contact; merge the two contacts instead",
                channel.as_db().to_lowercase().replace('_', " ")
            ))
        } else {
            err.into()
        }
    })?;
    store::record_activity(
        &mut tx,
        actor.company_id,
        &[contact_id],
        "IDENTITY_ADDED",
        Some(actor.user_id()),
        &json!({ "channel": channel.as_db() }),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn identities(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
) -> ApiResult<Vec<IdentityRow>> {
    let mut tx = with_contact(state, actor, contact_id, ApiScope::ContactsRead).await?;
    let rows = identities_of(&mut tx, contact_id).await?;
    drop(tx);
    Ok(rows)
}

pub async fn identities_of(
    conn: &mut PgConnection,
    contact_id: Uuid,
) -> sqlx::Result<Vec<IdentityRow>> {
    sqlx::query_as(
        "select id, contact_id, channel, external_id, created_at from contact_identities
         where contact_id = $1 order by channel, id",
    )
    .bind(contact_id)
    .fetch_all(conn)
    .await
}

pub async fn remove_identity(
    state: &AppState,
    actor: &Actor,
    identity_id: Uuid,
) -> ApiResult<Uuid> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    owning_contact(&mut tx, actor, Owned::Identity, identity_id).await?;
    sqlx::query("delete from contact_identities where id = $1")
        .bind(identity_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(identity_id)
}

// ---------------------------------------------------------------------------------------
// Media references

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct MediaRow {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub object_key: String,
    pub created_at: DateTime<Utc>,
    /// The message the file came with or went out with, if any.
    pub message_id: Option<Uuid>,
    /// READY; PENDING while a contact's file is still being fetched from the provider;
    /// FAILED with `failure_reason` when it could not be.
    pub status: String,
    pub failure_reason: Option<String>,
}

pub const MEDIA_COLUMNS: &str = "id, contact_id, file_name, content_type, size_bytes, object_key, \
     created_at, message_id, status, failure_reason";

/// Stores a file shared with or about a contact (conversations add theirs the same way).
pub async fn attach_media(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
    file_name: &str,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> ApiResult<MediaRow> {
    let file_name = super::properties::truncate(file_name.trim(), 255);
    let file_name = if file_name.is_empty() {
        "file".to_string()
    } else {
        file_name
    };
    let content_type = content_type
        .filter(|t| t.len() <= 200 && t.contains('/'))
        .unwrap_or("application/octet-stream")
        .to_string();
    let mut tx = with_contact(state, actor, contact_id, ApiScope::ContactsWrite).await?;
    let id = Uuid::now_v7();
    let key = format!("contact-media/{}/{contact_id}/{id}", actor.company_id);
    let size = bytes.len() as i64;
    state
        .knowledge
        .objects
        .put(&ObjectPath::from(key.clone()), bytes.into())
        .await
        .map_err(|e| ApiError::internal("storing a contact's file", e))?;
    let inserted = async {
        let row: MediaRow = sqlx::query_as(&format!(
            "insert into contact_media (id, company_id, contact_id, file_name, content_type, size_bytes, object_key)
             values ($1, $2, $3, $4, $5, $6, $7) returning {MEDIA_COLUMNS}"
        ))
        .bind(id)
        .bind(actor.company_id)
        .bind(contact_id)
        .bind(&file_name)
        .bind(&content_type)
        .bind(size)
        .bind(&key)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, ApiError>(row)
    }
    .await;
    if inserted.is_err() {
        delete_objects(state, &[key]).await;
    }
    inserted
}

pub async fn media(state: &AppState, actor: &Actor, contact_id: Uuid) -> ApiResult<Vec<MediaRow>> {
    let mut tx = with_contact(state, actor, contact_id, ApiScope::ContactsRead).await?;
    let rows = sqlx::query_as(&format!(
        "select {MEDIA_COLUMNS} from contact_media where contact_id = $1 order by id desc limit 200"
    ))
    .bind(contact_id)
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

/// The stored files of a contact (to delete them with the contact).
pub async fn media_keys(conn: &mut PgConnection, contact_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("select object_key from contact_media where contact_id = $1")
        .bind(contact_id)
        .fetch_all(conn)
        .await
}

pub async fn delete_objects(state: &AppState, keys: &[String]) {
    for key in keys {
        match state
            .knowledge
            .objects
            .delete(&ObjectPath::from(key.as_str()))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => tracing::warn!(error = %err, %key, "a contact's file was not deleted"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Portability

/// Everything stored about one contact, as one JSON document (the right to data
/// portability). Admins only; audited.
pub async fn data_export(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
) -> ApiResult<serde_json::Value> {
    actor.require(Role::Admin, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    let properties = store::properties(&mut tx).await?;
    let contact = visible(&mut tx, &visibility, contact_id, &properties, false).await?;
    let labels: Vec<String> =
        sqlx::query_scalar("select name from labels where id = any($1) order by lower(name)")
            .bind(&contact.label_ids)
            .fetch_all(&mut *tx)
            .await?;
    let lists: Vec<String> = sqlx::query_scalar(
        "select l.name from contact_list_members m join contact_lists l on l.id = m.list_id
         where m.contact_id = $1 order by lower(l.name)",
    )
    .bind(contact_id)
    .fetch_all(&mut *tx)
    .await?;
    // Each section as JSON straight from PostgreSQL, in a fixed shape.
    let section =
        |sql: &'static str| sqlx::query_scalar::<_, serde_json::Value>(sql).bind(contact_id);
    let identities = section(
        "select coalesce(jsonb_agg(jsonb_build_object('channel', channel, 'external_id', external_id,
             'created_at', created_at) order by id), '[]') from contact_identities where contact_id = $1",
    )
    .fetch_one(&mut *tx)
    .await?;
    let notes = section(
        "select coalesce(jsonb_agg(jsonb_build_object('body', body, 'created_at', created_at)
             order by id), '[]') from contact_notes where contact_id = $1",
    )
    .fetch_one(&mut *tx)
    .await?;
    let reminders = section(
        "select coalesce(jsonb_agg(jsonb_build_object('body', body, 'due_at', due_at, 'done_at', done_at)
             order by id), '[]') from contact_reminders where contact_id = $1",
    )
    .fetch_one(&mut *tx)
    .await?;
    let media = section(
        "select coalesce(jsonb_agg(jsonb_build_object('file_name', file_name, 'content_type',
             content_type, 'size_bytes', size_bytes, 'created_at', created_at) order by id), '[]')
         from contact_media where contact_id = $1",
    )
    .fetch_one(&mut *tx)
    .await?;
    let records = section(
        "select coalesce(jsonb_agg(jsonb_build_object('object', t.key, 'values', r.\"values\",
             'created_at', r.created_at, 'updated_at', r.updated_at) order by r.id), '[]')
         from custom_object_records r join custom_object_types t on t.id = r.type_id
         where r.contact_id = $1",
    )
    .fetch_one(&mut *tx)
    .await?;
    let activity = section(
        "select coalesce(jsonb_agg(jsonb_build_object('kind', kind, 'details', details,
             'created_at', created_at) order by id), '[]') from contact_activities where contact_id = $1",
    )
    .fetch_one(&mut *tx)
    .await?;
    let months = section(
        "select coalesce(jsonb_agg(to_char(month, 'YYYY-MM') order by month), '[]')
         from monthly_active_contacts where contact_id = $1",
    )
    .fetch_one(&mut *tx)
    .await?;
    crate::audit::record(
        &mut tx,
        actor,
        crate::audit::Entry::new("CONTACT_DATA_EXPORTED").target("contact", contact_id),
    )
    .await?;
    tx.commit().await?;
    Ok(json!({
        "contact": {
            "id": contact.id,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "phone": contact.phone,
            "email": contact.email,
            "country": contact.country,
            "location": contact.location,
            "company_name": contact.company_name,
            "job_title": contact.job_title,
            "created_at": contact.created_at,
            "updated_at": contact.updated_at,
            "last_contacted_at": contact.last_contacted_at,
            "last_inbound_at": contact.last_inbound_at,
            "custom_properties": contact.custom,
        },
        "labels": labels,
        "lists": lists,
        "identities": identities,
        "notes": notes,
        "reminders": reminders,
        "media": media,
        "custom_objects": records,
        "activity": activity,
        "active_months": months,
    }))
}
