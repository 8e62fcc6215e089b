//! SQL for contacts, their custom property definitions and labels.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value as Json};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::properties::{PropertyRow, SlotFamily, SlotValue};
use crate::error::{ApiError, ApiResult};

/// The built-in columns read with every contact.
pub const BUILT_IN_COLUMNS: &str = "c.id, c.first_name, c.last_name, c.display_name, c.phone, \
    c.email, c.country, c.location, c.company_name, c.job_title, c.owner_id, c.team_id, \
    c.label_ids, c.last_contacted_at, c.last_inbound_at, c.created_at, c.updated_at";

#[derive(Clone, Debug)]
pub struct ContactRow {
    pub id: Uuid,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub country: Option<String>,
    pub location: Option<String>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub label_ids: Vec<Uuid>,
    pub last_contacted_at: Option<DateTime<Utc>>,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Custom property values by key (only the set ones).
    pub custom: Map<String, Json>,
}

/// The select list for contacts of a company with `properties`: built-ins and used slots.
pub fn select_list(properties: &[PropertyRow]) -> String {
    let mut list = BUILT_IN_COLUMNS.to_string();
    for property in properties {
        if let Ok(column) = property.column() {
            list.push_str(", c.");
            list.push_str(column);
        }
    }
    list
}

pub fn read_row(row: &PgRow, properties: &[PropertyRow]) -> ApiResult<ContactRow> {
    let mut custom = Map::new();
    for property in properties {
        let column = property.column()?;
        let value = match property.kind().slot_family() {
            SlotFamily::Text => row
                .try_get::<Option<String>, _>(column)?
                .map(SlotValue::Text),
            SlotFamily::Number => row
                .try_get::<Option<f64>, _>(column)?
                .map(SlotValue::Number),
            SlotFamily::Date => row
                .try_get::<Option<NaiveDate>, _>(column)?
                .map(SlotValue::Date),
            SlotFamily::Boolean => row
                .try_get::<Option<bool>, _>(column)?
                .map(SlotValue::Boolean),
            SlotFamily::Multi => row
                .try_get::<Option<Vec<String>>, _>(column)?
                .map(SlotValue::Multi),
        };
        if let Some(value) = value {
            custom.insert(property.key.clone(), value.to_json());
        }
    }
    Ok(ContactRow {
        id: row.try_get("id")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        display_name: row.try_get("display_name")?,
        phone: row.try_get("phone")?,
        email: row.try_get("email")?,
        country: row.try_get("country")?,
        location: row.try_get("location")?,
        company_name: row.try_get("company_name")?,
        job_title: row.try_get("job_title")?,
        owner_id: row.try_get("owner_id")?,
        team_id: row.try_get("team_id")?,
        label_ids: row.try_get("label_ids")?,
        last_contacted_at: row.try_get("last_contacted_at")?,
        last_inbound_at: row.try_get("last_inbound_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        custom,
    })
}

pub async fn properties(conn: &mut PgConnection) -> sqlx::Result<Vec<PropertyRow>> {
    sqlx::query_as(
        "select id, key, label, type, options, slot, created_at from contact_properties
         order by created_at, id",
    )
    .fetch_all(conn)
    .await
}

pub struct NewProperty<'a> {
    pub key: &'a str,
    pub label: &'a str,
    pub kind: &'static str,
    pub options: &'a [String],
    pub slot: &'static str,
}

pub async fn insert_property(
    conn: &mut PgConnection,
    company_id: Uuid,
    property: NewProperty<'_>,
) -> sqlx::Result<PropertyRow> {
    sqlx::query_as(
        "insert into contact_properties (id, company_id, key, label, type, options, slot)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, key, label, type, options, slot, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(company_id)
    .bind(property.key)
    .bind(property.label)
    .bind(property.kind)
    .bind(property.options)
    .bind(property.slot)
    .fetch_one(conn)
    .await
}

/// Serialises property definitions in a company, so two admins defining properties at once
/// cannot both take the same free slot.
pub async fn lock_properties(conn: &mut PgConnection, company_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "select pg_advisory_xact_lock(hashtextextended('contact_properties:' || $1::text, 0))",
    )
    .bind(company_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A column and its new value, for inserts and updates.
pub enum Assign {
    Text(&'static str, Option<String>),
    Uuid(&'static str, Option<Uuid>),
    Slot(&'static str, Option<SlotValue>),
}

/// Appends the value `assign` gives its column (a bind parameter, or a typed null).
pub fn push_value(qb: &mut QueryBuilder<'_, Postgres>, assign: &Assign) {
    match assign {
        Assign::Text(_, value) => {
            qb.push_bind(value.clone());
        }
        Assign::Uuid(_, value) => {
            qb.push_bind(*value);
        }
        Assign::Slot(column, value) => match value {
            Some(SlotValue::Text(text)) => {
                qb.push_bind(text.clone());
            }
            Some(SlotValue::Number(number)) => {
                qb.push_bind(*number);
            }
            Some(SlotValue::Date(date)) => {
                qb.push_bind(*date);
            }
            Some(SlotValue::Boolean(flag)) => {
                qb.push_bind(*flag);
            }
            Some(SlotValue::Multi(values)) => {
                qb.push_bind(values.clone());
            }
            None => {
                qb.push(format!("null::{}", slot_sql_type(column)));
            }
        },
    }
}

fn slot_sql_type(column: &str) -> &'static str {
    match column.as_bytes().first() {
        Some(b'n') => "double precision",
        Some(b'd') => "date",
        Some(b'b') => "boolean",
        Some(b'm') => "text[]",
        _ => "text",
    }
}

/// The SQL type of a column an [`Assign`] can name (for typed nulls).
pub fn column_sql_type(column: &str) -> &'static str {
    let slot = column.len() >= 2
        && matches!(column.as_bytes()[0], b't' | b'n' | b'd' | b'b' | b'm')
        && column[1..].bytes().all(|b| b.is_ascii_digit());
    match column {
        "owner_id" | "team_id" => "uuid",
        _ if slot => slot_sql_type(column),
        _ => "text",
    }
}

impl Assign {
    pub fn column(&self) -> &'static str {
        match self {
            Assign::Text(column, _) | Assign::Uuid(column, _) | Assign::Slot(column, _) => column,
        }
    }
}

pub async fn insert(
    conn: &mut PgConnection,
    company_id: Uuid,
    assigns: &[Assign],
    label_ids: &[Uuid],
    properties: &[PropertyRow],
) -> ApiResult<ContactRow> {
    let mut qb =
        QueryBuilder::<Postgres>::new("insert into contacts as c (id, company_id, label_ids");
    for assign in assigns {
        qb.push(", ").push(assign.column());
    }
    qb.push(") values (")
        .push_bind(Uuid::now_v7())
        .push(", ")
        .push_bind(company_id)
        .push(", ")
        .push_bind(label_ids.to_vec());
    for assign in assigns {
        qb.push(", ");
        push_value(&mut qb, assign);
    }
    qb.push(") returning ").push(select_list(properties));
    let row = qb
        .build()
        .fetch_one(&mut *conn)
        .await
        .map_err(unique_conflict)?;
    read_row(&row, properties)
}

/// Applies `assigns` to contact `id`; returns the contact after the change.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    assigns: &[Assign],
    properties: &[PropertyRow],
) -> ApiResult<ContactRow> {
    let mut qb = QueryBuilder::<Postgres>::new("update contacts as c set updated_at = now()");
    for assign in assigns {
        qb.push(", ").push(assign.column()).push(" = ");
        push_value(&mut qb, assign);
    }
    qb.push(" where c.id = ")
        .push_bind(id)
        .push(" returning ")
        .push(select_list(properties));
    let row = qb
        .build()
        .fetch_one(&mut *conn)
        .await
        .map_err(unique_conflict)?;
    read_row(&row, properties)
}

fn unique_conflict(err: sqlx::Error) -> ApiError {
    if crate::error::is_unique_violation(&err, "contacts_phone_key") {
        ApiError::conflict("another contact already has this phone number")
    } else if crate::error::is_unique_violation(&err, "contacts_email_key") {
        ApiError::conflict("another contact already has this e-mail address")
    } else {
        err.into()
    }
}

pub async fn by_id(
    conn: &mut PgConnection,
    id: Uuid,
    properties: &[PropertyRow],
    lock: bool,
) -> ApiResult<Option<ContactRow>> {
    let sql = format!(
        "select {} from contacts c where c.id = $1{}",
        select_list(properties),
        if lock { " for update" } else { "" }
    );
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.map(|row| read_row(&row, properties)).transpose()
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("delete from contacts where id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct LabelRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// The labels named `names` (case-insensitively), created when missing.
pub async fn ensure_labels(
    conn: &mut PgConnection,
    company_id: Uuid,
    names: &[String],
) -> sqlx::Result<Vec<LabelRow>> {
    let ids: Vec<Uuid> = names.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "insert into labels (id, company_id, name)
         select id, $1, name from unnest($2::uuid[], $3::text[]) as n (id, name)
         on conflict (company_id, lower(name)) do nothing",
    )
    .bind(company_id)
    .bind(&ids)
    .bind(names)
    .execute(&mut *conn)
    .await?;
    let lowered: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    sqlx::query_as(
        "select id, name, created_at from labels where lower(name) = any($1) order by name",
    )
    .bind(&lowered)
    .fetch_all(conn)
    .await
}

pub async fn labels(conn: &mut PgConnection) -> sqlx::Result<Vec<LabelRow>> {
    sqlx::query_as("select id, name, created_at from labels order by lower(name)")
        .fetch_all(conn)
        .await
}

pub async fn labels_by_ids(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<LabelRow>> {
    sqlx::query_as(
        "select id, name, created_at from labels where id = any($1) order by lower(name)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Adds (or removes) `label_ids` on the contacts `ids`; returns the contacts that changed.
pub async fn change_labels(
    conn: &mut PgConnection,
    ids: &[Uuid],
    label_ids: &[Uuid],
    add: bool,
) -> sqlx::Result<Vec<Uuid>> {
    let sql = if add {
        "update contacts set label_ids = array(select distinct unnest(label_ids || $2::uuid[])),
                updated_at = now()
         where id = any($1) and not (label_ids @> $2::uuid[]) returning id"
    } else {
        "update contacts set label_ids = array(select unnest(label_ids) except select unnest($2::uuid[])),
                updated_at = now()
         where id = any($1) and label_ids && $2::uuid[] returning id"
    };
    sqlx::query_scalar(sql)
        .bind(ids)
        .bind(label_ids)
        .fetch_all(conn)
        .await
}

/// Contact ids among `ids` that exist (and that RLS lets this company see).
pub async fn existing_ids(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("select id from contacts where id = any($1)")
        .bind(ids)
        .fetch_all(conn)
        .await
}

pub async fn record_activity(
    conn: &mut PgConnection,
    company_id: Uuid,
    contact_ids: &[Uuid],
    kind: &str,
    actor_user_id: Option<Uuid>,
    details: &Json,
) -> sqlx::Result<()> {
    if contact_ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = contact_ids.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "insert into contact_activities (id, company_id, contact_id, kind, actor_user_id, details)
         select id, $1, contact_id, $4, $5, $6 from unnest($2::uuid[], $3::uuid[]) as a (id, contact_id)",
    )
    .bind(company_id)
    .bind(&ids)
    .bind(contact_ids)
    .bind(kind)
    .bind(actor_user_id)
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct ActivityRow {
    pub id: Uuid,
    pub kind: String,
    pub actor_user_id: Option<Uuid>,
    pub details: Json,
    pub created_at: DateTime<Utc>,
}

/// A page of a contact's activity, newest first.
pub async fn activities(
    conn: &mut PgConnection,
    contact_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<ActivityRow>> {
    sqlx::query_as(
        "select id, kind, actor_user_id, details, created_at from contact_activities
         where contact_id = $1 and ($2::uuid is null or id < $2)
         order by id desc limit $3",
    )
    .bind(contact_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The user's teams and the company's `staffSeeAll` setting, in one round trip.
pub async fn visibility_facts(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> sqlx::Result<(Vec<Uuid>, bool)> {
    sqlx::query_as(
        "select array(select team_id from team_members where user_id = $1), staff_see_all
         from companies",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await
}

/// The contacts among `ids` (of this company, by row-level security), with `properties`.
pub async fn by_ids(
    conn: &mut PgConnection,
    ids: &[Uuid],
    properties: &[PropertyRow],
) -> ApiResult<Vec<ContactRow>> {
    let sql = format!(
        "select {} from contacts c where c.id = any($1)",
        select_list(properties)
    );
    let rows = sqlx::query(&sql).bind(ids).fetch_all(conn).await?;
    rows.iter().map(|row| read_row(row, properties)).collect()
}
