//! Custom objects: record types an Admin defines (orders, memberships, subscriptions, ...)
//! with typed fields and a display field, whose records belong to contacts, one per contact
//! or many. Creating, changing and deleting a record leaves an event (which fields changed,
//! never their values) for automation to react to, and a line in the contact's log.
//!
//! Field values are validated like custom contact properties and kept as JSON; filters on
//! records compile to the same kind of parameterised SQL as contact filters, with the field
//! key itself a bind parameter.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::filter::{self, Args, ContactCondition, ContactFilter, FilterOp};
use super::properties::{self, DbType, PropertyRow, PropertyType, SlotFamily};
use super::{store, visible, Visibility};
use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::auth::{Actor, ApiScope, Role};
use crate::error::{is_unique_violation, ApiError, ApiResult};

pub const MAX_FIELDS: usize = 50;
pub const MAX_TYPES: i64 = 50;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct FieldDefinition {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: PropertyType,
    #[serde(default)]
    pub options: Vec<String>,
}

impl FieldDefinition {
    /// The field as a property, so values are checked exactly as contact properties are.
    fn as_property(&self) -> PropertyRow {
        PropertyRow {
            id: Uuid::nil(),
            key: self.key.clone(),
            label: self.label.clone(),
            r#type: DbType(self.kind),
            options: self.options.clone(),
            slot: String::new(),
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct TypeRow {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub fields: Json,
    pub display_field: String,
    pub relation: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl TypeRow {
    pub fn fields(&self) -> ApiResult<Vec<FieldDefinition>> {
        serde_json::from_value(self.fields.clone())
            .map_err(|e| ApiError::internal("reading a custom object's fields", e))
    }

    pub fn one_per_contact(&self) -> bool {
        self.relation == "ONE_TO_ONE"
    }
}

const TYPE_COLUMNS: &str = "id, key, name, fields, display_field, relation, created_at";

pub struct TypeDefinition {
    pub key: String,
    pub name: String,
    pub display_field: String,
    pub one_per_contact: bool,
    pub fields: Vec<FieldDefinition>,
}

pub async fn define_type(
    state: &AppState,
    actor: &Actor,
    definition: TypeDefinition,
) -> ApiResult<TypeRow> {
    actor.require(Role::Admin, ApiScope::ContactsWrite)?;
    let key = object_key(&definition.key)?;
    let name = crate::users::normalize_name(&definition.name, "object name", 100)?;
    if definition.fields.is_empty() || definition.fields.len() > MAX_FIELDS {
        return Err(ApiError::validation(format!(
            "a custom object has 1 to {MAX_FIELDS} fields"
        )));
    }
    let mut fields: Vec<FieldDefinition> = Vec::new();
    for field in definition.fields {
        let field_key = object_key(&field.key)?;
        if fields.iter().any(|f| f.key == field_key) {
            return Err(ApiError::validation(format!(
                "field '{field_key}' is given twice"
            )));
        }
        let label = crate::users::normalize_name(&field.label, "field label", 100)?;
        let options = super::validate_options(field.kind, &field.options)?;
        fields.push(FieldDefinition {
            key: field_key,
            label,
            kind: field.kind,
            options,
        });
    }
    let display = definition.display_field.trim();
    if !fields.iter().any(|f| f.key == display) {
        return Err(ApiError::validation(format!(
            "the display field '{}' is not one of the fields",
            properties::truncate(display, 60)
        )));
    }
    let mut tx = state.db.tenant(actor.company_id).await?;
    let count: i64 = sqlx::query_scalar("select count(*) from custom_object_types")
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_TYPES {
        return Err(ApiError::LimitExceeded(format!(
            "a company can define at most {MAX_TYPES} custom objects"
        )));
    }
    let row: TypeRow = sqlx::query_as(&format!(
        "insert into custom_object_types (id, company_id, key, name, fields, display_field, relation)
         values ($1, $2, $3, $4, $5, $6, $7) returning {TYPE_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(&key)
    .bind(&name)
    .bind(json!(fields))
    .bind(display)
    .bind(if definition.one_per_contact {
        "ONE_TO_ONE"
    } else {
        "ONE_TO_MANY"
    })
    .fetch_one(&mut *tx)
    .await
    .map_err(|err| {
        if is_unique_violation(&err, "custom_object_types_key") {
            ApiError::conflict(format!("there is already a custom object '{key}'"))
        } else {
            err.into()
        }
    })?;
    audit::record(
        &mut tx,
        actor,
        Entry::new("CUSTOM_OBJECT_DEFINED")
            .target("custom_object_type", row.id)
            .details(json!({ "key": key })),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Keys of objects and their fields: as property keys, without the built-in restriction.
fn object_key(key: &str) -> ApiResult<String> {
    let key = key.trim();
    let ok = !key.is_empty()
        && key.len() <= 63
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(ApiError::validation(format!(
            "a key is 1 to 63 lower-case letters, digits and underscores, starting with a letter; '{}' is not",
            properties::truncate(key, 80)
        )));
    }
    Ok(key.to_string())
}

pub async fn types(state: &AppState, actor: &Actor) -> ApiResult<Vec<TypeRow>> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(&format!(
        "select {TYPE_COLUMNS} from custom_object_types order by name, id"
    ))
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

async fn type_by_key(conn: &mut PgConnection, key: &str, lock: bool) -> ApiResult<TypeRow> {
    let row: TypeRow = sqlx::query_as(&format!(
        "select {TYPE_COLUMNS} from custom_object_types where key = $1"
    ))
    .bind(key.trim())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!("custom object '{}'", properties::truncate(key, 60)))
    })?;
    if lock {
        // Held to the end of the transaction; the application role may not lock the row.
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1::text, 7))")
            .bind(row.id)
            .execute(conn)
            .await?;
    }
    Ok(row)
}

// ---------------------------------------------------------------------------------------
// Records

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct RecordRow {
    pub id: Uuid,
    pub type_id: Uuid,
    pub contact_id: Uuid,
    pub values: Json,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const RECORD_COLUMNS: &str =
    "r.id, r.type_id, r.contact_id, r.\"values\", r.created_at, r.updated_at";

/// Checks `values` against the type's fields. With `merge_into`, values are changes to an
/// existing record (null clears a field); returns the full values and the keys that changed.
fn checked_values(
    fields: &[FieldDefinition],
    values: &Map<String, Json>,
    merge_into: Option<&Map<String, Json>>,
) -> ApiResult<(Map<String, Json>, Vec<String>)> {
    let mut out = merge_into.cloned().unwrap_or_default();
    let mut changed = Vec::new();
    for (key, value) in values {
        let field = fields.iter().find(|f| &f.key == key).ok_or_else(|| {
            ApiError::validation(format!(
                "there is no field '{}'",
                properties::truncate(key, 60)
            ))
        })?;
        let parsed = properties::parse_value(&field.as_property(), value)?;
        let before = out.get(key).cloned();
        match parsed {
            Some(v) => {
                out.insert(key.clone(), v.to_json());
            }
            None => {
                out.remove(key);
            }
        }
        if out.get(key) != before.as_ref() {
            changed.push(key.clone());
        }
    }
    Ok((out, changed))
}

async fn record_event(
    conn: &mut PgConnection,
    actor: &Actor,
    record: &RecordRow,
    type_row: &TypeRow,
    kind: &str,
    fields: &[String],
) -> ApiResult<()> {
    sqlx::query(
        "insert into custom_object_events (id, company_id, type_id, record_id, contact_id, kind, fields)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(type_row.id)
    .bind(record.id)
    .bind(record.contact_id)
    .bind(kind)
    .bind(fields)
    .execute(&mut *conn)
    .await?;
    store::record_activity(
        conn,
        actor.company_id,
        &[record.contact_id],
        &format!("CUSTOM_OBJECT_{kind}"),
        Some(actor.user_id()),
        &json!({ "object": type_row.key, "record": record.id, "fields": fields }),
    )
    .await?;
    Ok(())
}

pub async fn create_record(
    state: &AppState,
    actor: &Actor,
    type_key: &str,
    contact_id: Uuid,
    values: &Map<String, Json>,
) -> ApiResult<(RecordRow, TypeRow)> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    // Locking the type serialises creations of its records: "one per contact" holds.
    let type_row = type_by_key(&mut tx, type_key, true).await?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    visible(&mut tx, &visibility, contact_id, &[], false).await?;
    let fields = type_row.fields()?;
    let (values, changed) = checked_values(&fields, values, None)?;
    if type_row.one_per_contact() {
        let exists: bool = sqlx::query_scalar(
            "select exists (select 1 from custom_object_records where type_id = $1 and contact_id = $2)",
        )
        .bind(type_row.id)
        .bind(contact_id)
        .fetch_one(&mut *tx)
        .await?;
        if exists {
            return Err(ApiError::conflict(format!(
                "a contact has at most one {}; change the one they have",
                type_row.name
            )));
        }
    }
    let row: RecordRow = sqlx::query_as(&format!(
        "insert into custom_object_records as r (id, company_id, type_id, contact_id, \"values\")
         values ($1, $2, $3, $4, $5) returning {RECORD_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(type_row.id)
    .bind(contact_id)
    .bind(Json::Object(values))
    .fetch_one(&mut *tx)
    .await?;
    record_event(&mut tx, actor, &row, &type_row, "CREATED", &changed).await?;
    tx.commit().await?;
    Ok((row, type_row))
}

/// The record and its type, if the actor may see the record's contact.
async fn visible_record(
    conn: &mut PgConnection,
    actor: &Actor,
    id: Uuid,
    lock: bool,
) -> ApiResult<(RecordRow, TypeRow)> {
    let record: RecordRow = sqlx::query_as(&format!(
        "select {RECORD_COLUMNS} from custom_object_records r where r.id = $1{}",
        if lock { " for update" } else { "" }
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::not_found("record"))?;
    let visibility = Visibility::of(conn, actor).await?;
    visible(conn, &visibility, record.contact_id, &[], false)
        .await
        .map_err(|_| ApiError::not_found("record"))?;
    let type_row: TypeRow = sqlx::query_as(&format!(
        "select {TYPE_COLUMNS} from custom_object_types where id = $1"
    ))
    .bind(record.type_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((record, type_row))
}

pub async fn update_record(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    values: &Map<String, Json>,
) -> ApiResult<(RecordRow, TypeRow)> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (record, type_row) = visible_record(&mut tx, actor, id, true).await?;
    let current = record.values.as_object().cloned().unwrap_or_default();
    let (merged, changed) = checked_values(&type_row.fields()?, values, Some(&current))?;
    if changed.is_empty() {
        tx.commit().await?;
        return Ok((record, type_row));
    }
    let row: RecordRow = sqlx::query_as(&format!(
        "update custom_object_records as r set \"values\" = $2, updated_at = now()
         where r.id = $1 returning {RECORD_COLUMNS}"
    ))
    .bind(id)
    .bind(Json::Object(merged))
    .fetch_one(&mut *tx)
    .await?;
    record_event(&mut tx, actor, &row, &type_row, "UPDATED", &changed).await?;
    tx.commit().await?;
    Ok((row, type_row))
}

pub async fn delete_record(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<Uuid> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (record, type_row) = visible_record(&mut tx, actor, id, true).await?;
    sqlx::query("delete from custom_object_records where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    record_event(&mut tx, actor, &record, &type_row, "DELETED", &[]).await?;
    tx.commit().await?;
    Ok(id)
}

pub struct RecordQuery {
    pub type_key: String,
    pub filter: Option<ContactFilter>,
    pub contact_id: Option<Uuid>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// Records of one type whose contacts the actor may see, matching `filter` (conditions on
/// the type's fields, and `created_at` / `updated_at`), oldest first.
pub async fn records(
    state: &AppState,
    actor: &Actor,
    query: RecordQuery,
) -> ApiResult<(TypeRow, Vec<RecordRow>)> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let type_row = type_by_key(&mut tx, &query.type_key, false).await?;
    let fields = type_row.fields()?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "select {RECORD_COLUMNS} from custom_object_records r join contacts c on c.id = r.contact_id
         where r.type_id = "
    ));
    qb.push_bind(type_row.id);
    visibility.push(&mut qb);
    if let Some(contact_id) = query.contact_id {
        qb.push(" and r.contact_id = ").push_bind(contact_id);
    }
    if let Some(after) = query.after {
        qb.push(" and r.id > ").push_bind(after);
    }
    if let Some(tree) = &query.filter {
        let mut count = 0;
        filter::walk(tree, 1, &mut count, &mut |_| Ok(()))?;
        qb.push(" and ");
        filter::push_boolean_tree(&mut qb, tree, &mut |qb, condition| {
            push_condition(qb, condition, &fields)
        })?;
    }
    qb.push(" order by r.id limit ").push_bind(query.limit);
    let rows = qb.build_query_as().fetch_all(&mut *tx).await?;
    drop(tx);
    Ok((type_row, rows))
}

fn push_condition(
    qb: &mut QueryBuilder<'_, Postgres>,
    condition: &ContactCondition,
    fields: &[FieldDefinition],
) -> ApiResult<()> {
    let key = condition.property.trim();
    let args = Args::of(condition, key)?;
    if matches!(key, "created_at" | "updated_at") {
        let column = if key == "created_at" {
            "r.created_at"
        } else {
            "r.updated_at"
        };
        let at = |v: &str| {
            chrono::DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    properties::parse_date(v)
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc())
                        .ok_or(())
                })
                .map_err(|_| {
                    ApiError::validation(format!(
                        "'{key}' takes a date or time; '{}' is not",
                        properties::truncate(v, 40)
                    ))
                })
        };
        match condition.op {
            FilterOp::Gt => {
                qb.push(format!("{column} > ")).push_bind(at(args.one()?)?);
            }
            FilterOp::Lt => {
                qb.push(format!("{column} < ")).push_bind(at(args.one()?)?);
            }
            FilterOp::Between => {
                let (low, high) = args.pair()?;
                qb.push(format!("{column} between "))
                    .push_bind(at(low)?)
                    .push(" and ")
                    .push_bind(at(high)?);
            }
            other => {
                return Err(ApiError::validation(format!(
                    "'{key}' takes GT, LT or BETWEEN, not {other:?}"
                )))
            }
        }
        return Ok(());
    }
    let field = fields.iter().find(|f| f.key == key).ok_or_else(|| {
        ApiError::validation(format!(
            "there is no field '{}'",
            properties::truncate(key, 60)
        ))
    })?;
    let property = field.as_property();
    // A condition value is checked as the field's values are, then bound as text or number.
    let parse = |v: &str| -> ApiResult<Json> {
        properties::parse_value(&property, &Json::String(v.to_string()))?
            .map(|v| v.to_json())
            .ok_or_else(|| ApiError::validation(format!("a value for '{key}' is empty")))
    };
    let key_owned = key.to_string();
    let text_expr = |qb: &mut QueryBuilder<'_, Postgres>| {
        qb.push("(r.\"values\" ->> ")
            .push_bind(key_owned.clone())
            .push(")");
    };
    let family = field.kind.slot_family();
    let cast = match family {
        SlotFamily::Number => "::float8",
        SlotFamily::Date => "::date",
        SlotFamily::Boolean => "::boolean",
        SlotFamily::Text | SlotFamily::Multi => "",
    };
    let push_typed = |qb: &mut QueryBuilder<'_, Postgres>, value: &Json| match value {
        Json::Number(n) => {
            qb.push_bind(n.as_f64().unwrap_or(0.0));
        }
        Json::Bool(b) => {
            qb.push_bind(*b);
        }
        Json::String(s) if family == SlotFamily::Date => {
            qb.push_bind(s.clone()).push("::date");
        }
        other => {
            qb.push_bind(other.as_str().unwrap_or_default().to_string());
        }
    };
    let ordered = matches!(family, SlotFamily::Number | SlotFamily::Date);
    match (condition.op, family) {
        (FilterOp::IsSet, _) => {
            qb.push("r.\"values\" ? ").push_bind(key_owned.clone());
        }
        (FilterOp::IsNotSet, _) => {
            qb.push("not (r.\"values\" ? ")
                .push_bind(key_owned.clone())
                .push(")");
        }
        (FilterOp::Eq | FilterOp::Contains, SlotFamily::Multi) => {
            let option = parse(args.one()?)?;
            let first = option
                .as_array()
                .and_then(|a| a.first())
                .cloned()
                .unwrap_or_default();
            qb.push("(r.\"values\" -> ")
                .push_bind(key_owned.clone())
                .push(") ? ");
            qb.push_bind(first.as_str().unwrap_or_default().to_string());
        }
        (FilterOp::Contains, SlotFamily::Text) => {
            qb.push("(r.\"values\" ->> ")
                .push_bind(key_owned.clone())
                .push(") ilike ")
                .push_bind(filter::like_pattern(args.one()?.trim()));
        }
        (FilterOp::Eq, _) => {
            let value = parse(args.one()?)?;
            text_expr(qb);
            qb.push(cast).push(" = ");
            push_typed(qb, &value);
        }
        (FilterOp::Neq, _) => {
            let value = parse(args.one()?)?;
            text_expr(qb);
            qb.push(cast).push(" is distinct from ");
            push_typed(qb, &value);
        }
        (FilterOp::Gt | FilterOp::Lt, _) if ordered => {
            let value = parse(args.one()?)?;
            text_expr(qb);
            qb.push(cast).push(if condition.op == FilterOp::Gt {
                " > "
            } else {
                " < "
            });
            push_typed(qb, &value);
        }
        (FilterOp::Between, _) if ordered => {
            let (low, high) = args.pair()?;
            let (low, high) = (parse(low)?, parse(high)?);
            text_expr(qb);
            qb.push(cast).push(" between ");
            push_typed(qb, &low);
            qb.push(" and ");
            push_typed(qb, &high);
        }
        (FilterOp::In, SlotFamily::Text) => {
            let values = args
                .many()?
                .iter()
                .map(|v| parse(v).map(|j| j.as_str().unwrap_or_default().to_string()))
                .collect::<ApiResult<Vec<String>>>()?;
            text_expr(qb);
            qb.push(" = any(").push_bind(values).push(")");
        }
        (op, _) => {
            return Err(ApiError::validation(format!(
                "{op:?} does not apply to field '{key}' ({})",
                field.kind.noun()
            )))
        }
    }
    Ok(())
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct EventRow {
    pub id: Uuid,
    pub type_id: Uuid,
    pub record_id: Uuid,
    pub contact_id: Uuid,
    pub kind: String,
    pub fields: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The latest record events, newest first (Admins: automation's view of changes).
pub async fn events(state: &AppState, actor: &Actor, limit: i64) -> ApiResult<Vec<EventRow>> {
    actor.require(Role::Admin, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(
        "select id, type_id, record_id, contact_id, kind, fields, created_at
         from custom_object_events where company_id = $1 order by id desc limit $2",
    )
    .bind(actor.company_id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}
