//! Importing contacts from CSV and spreadsheet files.
//!
//! `preview` shows a file's columns with sample values and a suggested property for each.
//! `start` checks the file and the mapping (columns to properties, possibly defining new
//! custom properties), stores the file and queues a durable job in one transaction. The job
//! ([`handler`]) works through the rows in batches of [`BATCH`]; each batch commits together
//! with the counts and the number of rows done, so a crash or restart resumes after the last
//! committed batch and never imports a row twice.
//!
//! A row whose phone number or e-mail address belongs to a contact updates that contact
//! (only the cells that hold a value) instead of making a duplicate; a row that cannot be
//! used is skipped and its number and reason kept.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::properties::{self, PropertyRow};
use super::store::{self, Assign};
use super::table::Table;
use super::{clean_label_names, field_assignments, ContactChanges, PropertyDefinition, Visibility};
use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::auth::{Actor, ApiScope, Role};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, Handler, Job, Outcome};

pub const IMPORT_JOB: &str = "contacts.import";
/// Rows per transaction.
pub const BATCH: usize = 1000;
/// Skipped rows whose reasons are kept per import (all are counted).
const MAX_KEPT_ERRORS: i64 = 1000;
/// Sample values shown per column in a preview.
const SAMPLES: usize = 5;

/// Where an imported column can go besides custom properties: the built-in fields, the
/// owner (a user's e-mail address) and labels (separated by `;` or `,`).
const IMPORT_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "name",
    "phone",
    "email",
    "country",
    "location",
    "company_name",
    "job_title",
    "owner",
    "label",
];

/// Header spellings recognised for each built-in field, after lower-casing and turning
/// anything but letters and digits into `_`.
const SYNONYMS: &[(&str, &[&str])] = &[
    (
        "first_name",
        &[
            "first_name",
            "firstname",
            "first",
            "given_name",
            "nama_depan",
        ],
    ),
    (
        "last_name",
        &[
            "last_name",
            "lastname",
            "surname",
            "family_name",
            "nama_belakang",
        ],
    ),
    (
        "name",
        &[
            "name",
            "full_name",
            "fullname",
            "contact_name",
            "customer_name",
            "nama",
            "nama_lengkap",
        ],
    ),
    (
        "phone",
        &[
            "phone",
            "phone_number",
            "mobile",
            "mobile_number",
            "mobile_phone",
            "whatsapp",
            "whatsapp_number",
            "wa",
            "tel",
            "telephone",
            "cell",
            "hp",
            "no_hp",
            "nomor_hp",
        ],
    ),
    ("email", &["email", "e_mail", "email_address", "mail"]),
    ("country", &["country", "country_code", "negara"]),
    (
        "location",
        &["location", "city", "address", "kota", "alamat"],
    ),
    (
        "company_name",
        &[
            "company",
            "company_name",
            "organisation",
            "organization",
            "business",
            "perusahaan",
        ],
    ),
    (
        "job_title",
        &["job_title", "title", "position", "job", "jabatan"],
    ),
    (
        "owner",
        &["owner", "contact_owner", "assignee", "owner_email"],
    ),
    ("label", &["label", "labels", "tag", "tags"]),
];

fn normalize_header(header: &str) -> String {
    let mut out = String::new();
    for ch in header.trim().to_lowercase().chars() {
        if ch.is_alphanumeric() {
            out.push(ch);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// The property a column header most likely means, if any.
fn suggest(header: &str, custom: &[PropertyRow]) -> Option<String> {
    let normalized = normalize_header(header);
    if let Some(property) = custom
        .iter()
        .find(|p| p.key == normalized || normalize_header(&p.label) == normalized)
    {
        return Some(property.key.clone());
    }
    SYNONYMS
        .iter()
        .find(|(_, spellings)| spellings.contains(&normalized.as_str()))
        .map(|(field, _)| field.to_string())
}

/// Reads a file off the async runtime; a parser panic is a refusal, not a crash.
async fn read_table(name: String, bytes: Arc<Vec<u8>>) -> ApiResult<Table> {
    tokio::task::spawn_blocking(move || Table::read(&name, &bytes))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::validation(
                "the file could not be read; it may be damaged",
            ))
        })
}

// ---------------------------------------------------------------------------------------
// Preview

pub struct PreviewColumn {
    pub index: usize,
    pub header: String,
    pub samples: Vec<String>,
    pub suggested: Option<String>,
}

pub struct Preview {
    pub file_name: String,
    pub spreadsheet: bool,
    pub row_count: usize,
    pub columns: Vec<PreviewColumn>,
}

pub async fn preview(
    state: &AppState,
    actor: &Actor,
    file_name: &str,
    bytes: Vec<u8>,
) -> ApiResult<Preview> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let table = read_table(file_name.to_string(), Arc::new(bytes)).await?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let custom = store::properties(&mut tx).await?;
    drop(tx);
    let mut samples: Vec<Vec<String>> = vec![Vec::new(); table.headers().len()];
    for (_, values) in table.rows(0).take(200) {
        let Ok(values) = values else { continue };
        for (column, value) in values.into_iter().enumerate() {
            if !value.is_empty() && samples[column].len() < SAMPLES {
                samples[column].push(properties::truncate(&value, 200));
            }
        }
    }
    let mut taken: Vec<String> = Vec::new();
    let columns = table
        .headers()
        .iter()
        .zip(samples)
        .enumerate()
        .map(|(index, (header, samples))| {
            let suggested = suggest(header, &custom).filter(|s| !taken.contains(s));
            if let Some(s) = &suggested {
                taken.push(s.clone());
            }
            PreviewColumn {
                index,
                header: header.clone(),
                samples,
                suggested,
            }
        })
        .collect();
    Ok(Preview {
        file_name: file_name.to_string(),
        spreadsheet: table.is_spreadsheet(),
        row_count: table.row_count(),
        columns,
    })
}

// ---------------------------------------------------------------------------------------
// Starting an import

/// One column's destination: an existing property, or a custom property defined on the way.
pub struct MappingInput {
    pub column: usize,
    pub property: Option<String>,
    pub new_property: Option<PropertyDefinition>,
}

pub struct ImportRequest {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub mapping: Vec<MappingInput>,
    pub labels: Vec<String>,
    pub list_id: Option<Uuid>,
    pub update_existing: bool,
}

/// A column and the key of the property it fills (stored with the import).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ColumnMapping {
    pub column: usize,
    pub property: String,
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct ImportRow {
    pub id: Uuid,
    pub created_by: Option<Uuid>,
    pub file_name: String,
    pub object_key: String,
    pub mapping: serde_json::Value,
    pub labels: Vec<String>,
    pub list_id: Option<Uuid>,
    pub update_existing: bool,
    pub status: String,
    pub total_rows: i32,
    pub processed_rows: i32,
    pub created_count: i32,
    pub updated_count: i32,
    pub skipped_count: i32,
    pub failure: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

const IMPORT_COLUMNS: &str = "id, created_by, file_name, object_key, mapping, labels, list_id, \
    update_existing, status, total_rows, processed_rows, created_count, updated_count, \
    skipped_count, failure, created_at, finished_at";

pub async fn start(
    state: &AppState,
    actor: &Actor,
    request: ImportRequest,
) -> ApiResult<ImportRow> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    if request.mapping.iter().any(|m| m.new_property.is_some()) {
        actor
            .require(Role::Admin, ApiScope::ContactsWrite)
            .map_err(|_| {
                ApiError::forbidden(
                    "only Admins define new properties; map the column to an existing one",
                )
            })?;
    }
    let file_name = properties::truncate(request.file_name.trim(), 200);
    let file_name = if file_name.is_empty() {
        "contacts.csv".to_string()
    } else {
        file_name
    };
    let labels = clean_label_names(&request.labels)?;
    let bytes = Arc::new(request.bytes);
    let table = read_table(file_name.clone(), bytes.clone()).await?;
    let width = table.headers().len();
    let total_rows = table.row_count();
    drop(table);

    let mut tx = state.db.tenant(actor.company_id).await?;
    let mut custom = store::properties(&mut tx).await?;
    // Check the whole mapping before defining anything.
    let mut columns_seen = Vec::new();
    let mut keys_seen: Vec<String> = Vec::new();
    for entry in &request.mapping {
        if entry.column >= width {
            return Err(ApiError::validation(format!(
                "column {} does not exist; the file has columns 0 to {}",
                entry.column,
                width - 1
            )));
        }
        if columns_seen.contains(&entry.column) {
            return Err(ApiError::validation(format!(
                "column {} is mapped twice",
                entry.column
            )));
        }
        columns_seen.push(entry.column);
        let key = match (&entry.property, &entry.new_property) {
            (Some(key), None) => {
                let key = key.trim().to_string();
                if !IMPORT_FIELDS.contains(&key.as_str()) && !custom.iter().any(|p| p.key == key) {
                    return Err(ApiError::validation(format!(
                        "column {} is mapped to '{}', which is not a contact property; define it first or give newProperty",
                        entry.column,
                        properties::truncate(&key, 80)
                    )));
                }
                key
            }
            (None, Some(definition)) => properties::validate_key(&definition.key)?,
            _ => {
                return Err(ApiError::validation(format!(
                    "column {}: give exactly one of property and newProperty",
                    entry.column
                )))
            }
        };
        if keys_seen.contains(&key) {
            return Err(ApiError::validation(format!(
                "property '{key}' is given two columns"
            )));
        }
        keys_seen.push(key);
    }
    if !keys_seen.iter().any(|k| {
        matches!(
            k.as_str(),
            "first_name" | "last_name" | "name" | "phone" | "email"
        )
    }) {
        return Err(ApiError::validation(
            "map at least one column to a name, phone or e-mail: every contact needs one",
        ));
    }
    if let Some(list_id) = request.list_id {
        let list = super::lists::list_by_id(&mut tx, list_id).await?;
        if list.kind != "STATIC" {
            return Err(ApiError::validation(
                "imported contacts can join a static list only; a criteria list's members are whoever matches it",
            ));
        }
    }
    let mut mapping = Vec::new();
    for entry in request.mapping {
        let key = match (entry.property, entry.new_property) {
            (Some(key), _) => key.trim().to_string(),
            (None, Some(definition)) => {
                let row = super::define_property_in(&mut tx, actor, definition).await?;
                let key = row.key.clone();
                custom.push(row);
                key
            }
            (None, None) => unreachable!("checked above"),
        };
        mapping.push(ColumnMapping {
            column: entry.column,
            property: key,
        });
    }

    let id = Uuid::now_v7();
    let object_key = format!("contact-imports/{}/{id}", actor.company_id);
    let bytes = Arc::try_unwrap(bytes).unwrap_or_else(|shared| (*shared).clone());
    state
        .knowledge
        .objects
        .put(&ObjectPath::from(object_key.clone()), bytes.into())
        .await
        .map_err(|e| ApiError::internal("storing an import file", e))?;
    let inserted = async {
        let row: ImportRow = sqlx::query_as(&format!(
            "insert into contact_imports (id, company_id, created_by, file_name, object_key,
                 mapping, labels, list_id, update_existing, total_rows)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning {IMPORT_COLUMNS}"
        ))
        .bind(id)
        .bind(actor.company_id)
        .bind(actor.user_id())
        .bind(&file_name)
        .bind(&object_key)
        .bind(json!(mapping))
        .bind(&labels)
        .bind(request.list_id)
        .bind(request.update_existing)
        .bind(total_rows as i32)
        .fetch_one(&mut *tx)
        .await?;
        jobs::enqueue(
            &mut tx,
            actor.company_id,
            IMPORT_JOB,
            json!({ "import_id": id }),
        )
        .await?;
        audit::record(
            &mut tx,
            actor,
            Entry::new("CONTACTS_IMPORT_STARTED")
                .target("contact_import", id)
                .details(json!({ "rows": total_rows, "columns": mapping.len() })),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, ApiError>(row)
    }
    .await;
    if inserted.is_err() {
        // Nothing half-stored: the file goes when the import row does not come.
        let _ = state
            .knowledge
            .objects
            .delete(&ObjectPath::from(object_key))
            .await;
    }
    inserted
}

pub async fn by_id(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<ImportRow> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let row = import_row(&mut tx, id).await?;
    drop(tx);
    row.ok_or_else(|| ApiError::not_found("import"))
}

pub async fn recent(state: &AppState, actor: &Actor, limit: i64) -> ApiResult<Vec<ImportRow>> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(&format!(
        "select {IMPORT_COLUMNS} from contact_imports where company_id = $1
         order by id desc limit $2"
    ))
    .bind(actor.company_id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

async fn import_row(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ImportRow>> {
    sqlx::query_as(&format!(
        "select {IMPORT_COLUMNS} from contact_imports where id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct SkippedRow {
    pub row_number: i32,
    pub reason: String,
}

pub async fn skipped_rows(
    state: &AppState,
    actor: &Actor,
    import_id: Uuid,
    limit: i64,
) -> ApiResult<Vec<SkippedRow>> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(
        "select row_number, reason from contact_import_errors where import_id = $1
         order by row_number limit $2",
    )
    .bind(import_id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

// ---------------------------------------------------------------------------------------
// The job

struct ImportHandler {
    state: AppState,
}

pub fn handler(state: AppState) -> Arc<dyn Handler> {
    Arc::new(ImportHandler { state })
}

/// Why an import stopped: for good (the file is gone, its maker left) or for now.
enum Stop {
    Fail(String),
    Retry(String),
}

impl From<ApiError> for Stop {
    fn from(err: ApiError) -> Self {
        Stop::Retry(err.message())
    }
}

impl From<sqlx::Error> for Stop {
    fn from(err: sqlx::Error) -> Self {
        Stop::Retry(err.to_string())
    }
}

impl Handler for ImportHandler {
    fn run(&self, job: Job) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let Some(import_id) = job
                .payload
                .get("import_id")
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse::<Uuid>().ok())
            else {
                tracing::warn!(job = %job.id, "an import job without an import id");
                return Outcome::Done;
            };
            match run(&self.state, job.company_id, import_id).await {
                Ok(()) => Outcome::Done,
                Err(Stop::Fail(reason)) => {
                    finish(&self.state, job.company_id, import_id, Some(&reason)).await;
                    Outcome::Done
                }
                Err(Stop::Retry(reason)) => Outcome::Retry(reason),
            }
        })
    }

    fn give_up(&self, job: Job, error: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(id) = job
                .payload
                .get("import_id")
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse::<Uuid>().ok())
            {
                let reason = format!("the import stopped after several attempts: {error}");
                finish(&self.state, job.company_id, id, Some(&reason)).await;
            }
        })
    }
}

/// Marks an import DONE (or FAILED with `failure`) and removes its file.
async fn finish(state: &AppState, company_id: Uuid, id: Uuid, failure: Option<&str>) {
    let result = async {
        let mut tx = state.db.tenant(company_id).await?;
        let key: Option<String> = sqlx::query_scalar(
            "update contact_imports set status = $2, failure = $3, finished_at = now()
             where id = $1 returning object_key",
        )
        .bind(id)
        .bind(if failure.is_some() { "FAILED" } else { "DONE" })
        .bind(failure)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, ApiError>(key)
    }
    .await;
    match result {
        Ok(Some(key)) => {
            if let Err(err) = state.knowledge.objects.delete(&ObjectPath::from(key)).await {
                tracing::warn!(error = %err, "an import file was not deleted");
            }
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(error = ?err, %id, "an import's end was not recorded"),
    }
}

/// What every batch of one import needs.
struct Context {
    company_id: Uuid,
    import_id: Uuid,
    importer: Uuid,
    visibility: Visibility,
    update_existing: bool,
    list_id: Option<Uuid>,
    /// Labels for every imported contact.
    labels: Vec<String>,
    properties: Vec<PropertyRow>,
    /// (column, what it fills)
    fields: Vec<(usize, Field)>,
    /// Users by lower-cased e-mail, for an owner column.
    users: HashMap<String, Uuid>,
}

enum Field {
    Builtin(&'static str),
    Custom(PropertyRow),
}

async fn run(state: &AppState, company_id: Uuid, import_id: Uuid) -> Result<(), Stop> {
    let mut tx = state.db.tenant(company_id).await?;
    let Some(import) = import_row(&mut tx, import_id).await? else {
        return Ok(());
    };
    if matches!(import.status.as_str(), "DONE" | "FAILED") {
        return Ok(());
    }
    sqlx::query("update contact_imports set status = 'RUNNING' where id = $1")
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    let importer = match import.created_by {
        Some(id) => crate::users::store::by_id(&mut tx, id).await?,
        None => None,
    }
    .filter(|u| u.status == "ACTIVE")
    .ok_or_else(|| {
        Stop::Fail("the person who started the import no longer has an account".into())
    })?;
    let visibility =
        Visibility::of_user(&mut tx, importer.id, Role::from_db(&importer.role)).await?;
    let properties = store::properties(&mut tx).await?;
    let mapping: Vec<ColumnMapping> = serde_json::from_value(import.mapping.clone())
        .map_err(|e| Stop::Fail(format!("the import's mapping cannot be read ({e})")))?;
    let mut fields = Vec::new();
    for entry in mapping {
        let field = match IMPORT_FIELDS.iter().find(|f| **f == entry.property) {
            Some(builtin) => Field::Builtin(builtin),
            None => Field::Custom(
                properties
                    .iter()
                    .find(|p| p.key == entry.property)
                    .cloned()
                    .ok_or_else(|| {
                        Stop::Fail(format!(
                            "property '{}' was removed while the import waited",
                            entry.property
                        ))
                    })?,
            ),
        };
        fields.push((entry.column, field));
    }
    let users: HashMap<String, Uuid> = if fields
        .iter()
        .any(|(_, f)| matches!(f, Field::Builtin("owner")))
    {
        sqlx::query_as::<_, (String, Uuid)>(
            "select lower(email), id from users where status <> 'DEACTIVATED'",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect()
    } else {
        HashMap::new()
    };
    tx.commit().await?;

    let bytes = match state
        .knowledge
        .objects
        .get(&ObjectPath::from(import.object_key.clone()))
        .await
    {
        Ok(found) => found
            .bytes()
            .await
            .map_err(|e| Stop::Retry(format!("reading the uploaded file: {e}")))?,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(Stop::Fail("the uploaded file is gone".into()))
        }
        Err(err) => return Err(Stop::Retry(format!("reading the uploaded file: {err}"))),
    };
    let table = read_table(import.file_name.clone(), Arc::new(bytes.to_vec()))
        .await
        .map_err(|e| Stop::Fail(e.message()))?;
    let context = Context {
        company_id,
        import_id,
        importer: importer.id,
        visibility,
        update_existing: import.update_existing,
        list_id: import.list_id,
        labels: import.labels.clone(),
        properties,
        fields,
        users,
    };
    let mut rows = table.rows(import.processed_rows.max(0) as usize);
    let mut kept_errors = i64::from(import.skipped_count.min(MAX_KEPT_ERRORS as i32));
    loop {
        let batch: Vec<_> = rows.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            break;
        }
        let mut tx = state.db.tenant(company_id).await?;
        let outcome = apply_batch(&mut tx, &context, batch.clone()).await?;
        let keep = (MAX_KEPT_ERRORS - kept_errors).max(0) as usize;
        let kept: Vec<&(usize, String)> = outcome.skipped.iter().take(keep).collect();
        if !kept.is_empty() {
            let numbers: Vec<i32> = kept.iter().map(|(n, _)| *n as i32).collect();
            let reasons: Vec<&str> = kept.iter().map(|(_, r)| r.as_str()).collect();
            sqlx::query(
                "insert into contact_import_errors (import_id, company_id, row_number, reason)
                 select $1, $2, n, r from unnest($3::int[], $4::text[]) as e (n, r)
                 on conflict do nothing",
            )
            .bind(import_id)
            .bind(company_id)
            .bind(&numbers)
            .bind(&reasons)
            .execute(&mut *tx)
            .await?;
            kept_errors += kept.len() as i64;
        }
        sqlx::query(
            "update contact_imports set processed_rows = processed_rows + $2,
                 created_count = created_count + $3, updated_count = updated_count + $4,
                 skipped_count = skipped_count + $5
             where id = $1",
        )
        .bind(import_id)
        .bind(batch.len() as i32)
        .bind(outcome.created as i32)
        .bind(outcome.updated as i32)
        .bind(outcome.skipped.len() as i32)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    finish(state, company_id, import_id, None).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// One batch

/// A row turned into column assignments.
struct Parsed {
    row: usize,
    assigns: Vec<Assign>,
    phone: Option<String>,
    email: Option<String>,
    labels: Vec<String>,
}

/// What becomes of rows: a new contact or an update of `id`, with everything the rows that
/// went into it say (later rows win).
struct Operation {
    existing: Option<Uuid>,
    id: Uuid,
    assigns: Vec<Assign>,
    labels: Vec<String>,
    rows: Vec<usize>,
}

impl Operation {
    fn absorb(&mut self, parsed: Parsed) {
        for assign in parsed.assigns {
            let column = assign.column();
            self.assigns.retain(|a| a.column() != column);
            self.assigns.push(assign);
        }
        for label in parsed.labels {
            if !self.labels.iter().any(|l| l.eq_ignore_ascii_case(&label)) {
                self.labels.push(label);
            }
        }
        self.rows.push(parsed.row);
    }
}

#[derive(Default)]
struct BatchOutcome {
    created: usize,
    updated: usize,
    skipped: Vec<(usize, String)>,
}

/// A phone number as spreadsheets hold them: international form, or digits only with the
/// country code but no `+` (a number column drops it).
fn import_phone(cell: &str) -> Result<String, String> {
    if let Some(phone) = properties::normalize_phone(cell) {
        return Ok(phone);
    }
    let digits: String = cell
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0')
    {
        if let Some(phone) = properties::normalize_phone(&format!("+{digits}")) {
            return Ok(phone);
        }
    }
    Err(format!(
        "'{}' is not a phone number with its country code (such as +62 812 3456 7890)",
        properties::truncate(cell, 40)
    ))
}

fn parse_row(context: &Context, row: usize, values: &[String]) -> Result<Parsed, String> {
    let mut changes = ContactChanges::default();
    let mut custom = serde_json::Map::new();
    let mut labels = context.labels.clone();
    let mut owner = None;
    let set = |value: &str| async_graphql::MaybeUndefined::Value(value.to_string());
    for (column, field) in &context.fields {
        let value = values.get(*column).map(String::as_str).unwrap_or("");
        if value.is_empty() {
            continue;
        }
        match field {
            Field::Builtin("first_name") => changes.first_name = set(value),
            Field::Builtin("last_name") => changes.last_name = set(value),
            Field::Builtin("name") => {
                let mut parts = value.splitn(2, char::is_whitespace);
                changes.first_name = set(parts.next().unwrap_or(value));
                if let Some(rest) = parts.next().map(str::trim).filter(|r| !r.is_empty()) {
                    changes.last_name = set(rest);
                }
            }
            Field::Builtin("phone") => changes.phone = set(&import_phone(value)?),
            Field::Builtin("email") => changes.email = set(value),
            Field::Builtin("country") => changes.country = set(value),
            Field::Builtin("location") => changes.location = set(value),
            Field::Builtin("company_name") => changes.company_name = set(value),
            Field::Builtin("job_title") => changes.job_title = set(value),
            Field::Builtin("owner") => {
                owner = Some(*context.users.get(&value.to_lowercase()).ok_or_else(|| {
                    format!(
                        "owner '{}' is not a user of this company",
                        properties::truncate(value, 80)
                    )
                })?);
            }
            Field::Builtin("label") => {
                let names: Vec<String> = value
                    .split([';', ','])
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect();
                for name in clean_label_names(&names).map_err(|e| e.message())? {
                    if !labels.iter().any(|l| l.eq_ignore_ascii_case(&name)) {
                        labels.push(name);
                    }
                }
            }
            Field::Builtin(other) => return Err(format!("'{other}' cannot be imported")),
            Field::Custom(property) => {
                custom.insert(
                    property.key.clone(),
                    serde_json::Value::String(value.to_string()),
                );
            }
        }
    }
    if !custom.is_empty() {
        changes.custom = Some(custom);
    }
    let mut assigns = field_assignments(&changes, &context.properties).map_err(|e| e.message())?;
    if let Some(owner) = owner {
        assigns.push(Assign::Uuid("owner_id", Some(owner)));
    }
    let text = |column: &str| {
        assigns.iter().find_map(|a| match a {
            Assign::Text(c, Some(v)) if *c == column => Some(v.clone()),
            _ => None,
        })
    };
    let (phone, email) = (text("phone"), text("email"));
    let identified = phone.is_some()
        || email.is_some()
        || text("first_name").is_some()
        || text("last_name").is_some();
    if !identified {
        return Err("has no name, phone number or e-mail address".into());
    }
    Ok(Parsed {
        row,
        assigns,
        phone,
        email,
        labels,
    })
}

/// Where a row's phone or e-mail points: a contact already stored, or an operation of this
/// batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Match {
    Stored(Uuid),
    Pending(usize),
}

/// A stored contact a row's phone or e-mail points at.
#[derive(sqlx::FromRow)]
struct Known {
    id: Uuid,
    phone: Option<String>,
    email: Option<String>,
    owner_id: Option<Uuid>,
    team_id: Option<Uuid>,
}

async fn apply_batch(
    conn: &mut PgConnection,
    context: &Context,
    rows: Vec<(usize, Result<Vec<String>, String>)>,
) -> ApiResult<BatchOutcome> {
    let mut outcome = BatchOutcome::default();
    let mut parsed = Vec::new();
    for (row, values) in rows {
        match values.and_then(|values| parse_row(context, row, &values)) {
            Ok(p) => parsed.push(p),
            Err(reason) => outcome.skipped.push((row, reason)),
        }
    }
    let phones: Vec<&str> = parsed.iter().filter_map(|p| p.phone.as_deref()).collect();
    let emails: Vec<&str> = parsed.iter().filter_map(|p| p.email.as_deref()).collect();
    let found: Vec<Known> = sqlx::query_as(
        "select id, phone, email, owner_id, team_id from contacts
         where company_id = $1 and (phone = any($2) or email = any($3))",
    )
    .bind(context.company_id)
    .bind(&phones)
    .bind(&emails)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_phone: HashMap<String, Match> = HashMap::new();
    let mut by_email: HashMap<String, Match> = HashMap::new();
    let mut visible: HashMap<Uuid, bool> = HashMap::new();
    for known in found {
        if let Some(phone) = known.phone {
            by_phone.insert(phone, Match::Stored(known.id));
        }
        if let Some(email) = known.email {
            by_email.insert(email, Match::Stored(known.id));
        }
        visible.insert(
            known.id,
            context
                .visibility
                .allows_owned(known.owner_id, known.team_id),
        );
    }

    let mut operations: Vec<Operation> = Vec::new();
    for row in parsed {
        let on_phone = row.phone.as_ref().and_then(|p| by_phone.get(p)).copied();
        let on_email = row.email.as_ref().and_then(|e| by_email.get(e)).copied();
        let target = match (on_phone, on_email) {
            (Some(a), Some(b)) if a != b => {
                outcome.skipped.push((
                    row.row,
                    "its phone number belongs to one contact and its e-mail address to another"
                        .into(),
                ));
                continue;
            }
            (a, b) => a.or(b),
        };
        let index = match target {
            Some(_) if !context.update_existing => {
                outcome.skipped.push((
                    row.row,
                    "a contact with this phone number or e-mail address already exists".into(),
                ));
                continue;
            }
            Some(Match::Stored(id)) => {
                if !visible.get(&id).copied().unwrap_or(false) {
                    outcome
                        .skipped
                        .push((row.row, "matches a contact the importer cannot see".into()));
                    continue;
                }
                match operations.iter().position(|op| op.existing == Some(id)) {
                    Some(index) => index,
                    None => {
                        operations.push(Operation {
                            existing: Some(id),
                            id,
                            assigns: Vec::new(),
                            labels: Vec::new(),
                            rows: Vec::new(),
                        });
                        operations.len() - 1
                    }
                }
            }
            Some(Match::Pending(index)) => index,
            None => {
                operations.push(Operation {
                    existing: None,
                    id: Uuid::now_v7(),
                    assigns: vec![Assign::Uuid("owner_id", Some(context.importer))],
                    labels: Vec::new(),
                    rows: Vec::new(),
                });
                operations.len() - 1
            }
        };
        if let Some(phone) = &row.phone {
            by_phone.insert(phone.clone(), Match::Pending(index));
        }
        if let Some(email) = &row.email {
            by_email.insert(email.clone(), Match::Pending(index));
        }
        operations[index].absorb(row);
    }

    // Labels named anywhere in the batch, created when new.
    let mut names: Vec<String> = Vec::new();
    for op in &operations {
        for label in &op.labels {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(label)) {
                names.push(label.clone());
            }
        }
    }
    let label_ids: HashMap<String, Uuid> = if names.is_empty() {
        HashMap::new()
    } else {
        store::ensure_labels(conn, context.company_id, &names)
            .await?
            .into_iter()
            .map(|l| (l.name.to_lowercase(), l.id))
            .collect()
    };
    let ids_of = |op: &Operation| -> Vec<Uuid> {
        op.labels
            .iter()
            .filter_map(|l| label_ids.get(&l.to_lowercase()).copied())
            .collect()
    };

    let (inserts, updates): (Vec<&Operation>, Vec<&Operation>) =
        operations.iter().partition(|op| op.existing.is_none());
    let mut created: Vec<Uuid> = Vec::new();
    if !inserts.is_empty() {
        let mut columns: Vec<&'static str> = Vec::new();
        for op in &inserts {
            for assign in &op.assigns {
                if !columns.contains(&assign.column()) {
                    columns.push(assign.column());
                }
            }
        }
        // PostgreSQL takes at most 65,535 parameters a statement.
        let per_statement = (60_000 / (3 + columns.len())).max(1);
        for chunk in inserts.chunks(per_statement) {
            let mut qb =
                QueryBuilder::<Postgres>::new("insert into contacts (id, company_id, label_ids");
            for column in &columns {
                qb.push(", ").push(*column);
            }
            qb.push(") values ");
            for (i, op) in chunk.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                qb.push("(")
                    .push_bind(op.id)
                    .push(", ")
                    .push_bind(context.company_id)
                    .push(", ")
                    .push_bind(ids_of(op));
                for column in &columns {
                    qb.push(", ");
                    match op.assigns.iter().find(|a| a.column() == *column) {
                        Some(assign) => store::push_value(&mut qb, assign),
                        None => {
                            qb.push("default");
                        }
                    }
                }
                qb.push(")");
            }
            // Someone may have added the same phone or e-mail since the lookup: such a row
            // is reported, not forced.
            qb.push(" on conflict do nothing returning id");
            let ids: Vec<Uuid> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
            created.extend(ids);
        }
        let made: std::collections::HashSet<Uuid> = created.iter().copied().collect();
        for op in &inserts {
            if !made.contains(&op.id) {
                for row in &op.rows {
                    outcome.skipped.push((
                        *row,
                        "another contact with this phone number or e-mail address was added while the import ran".into(),
                    ));
                }
            } else {
                outcome.created += 1;
                outcome.updated += op.rows.len() - 1;
            }
        }
    }
    // All updates of the batch in one statement per 60,000 parameters: a cell left empty
    // (null here) keeps the stored value; labels are added to those the contact has.
    let mut updated: Vec<Uuid> = Vec::new();
    if !updates.is_empty() {
        let mut columns: Vec<&'static str> = Vec::new();
        for op in &updates {
            for assign in &op.assigns {
                if !columns.contains(&assign.column()) {
                    columns.push(assign.column());
                }
            }
        }
        let per_statement = (60_000 / (2 + columns.len())).max(1);
        for chunk in updates.chunks(per_statement) {
            let mut qb = QueryBuilder::<Postgres>::new(
                "update contacts as c set updated_at = now(),
                     label_ids = array(select distinct unnest(c.label_ids || v.label_ids))",
            );
            for column in &columns {
                qb.push(format!(", {column} = coalesce(v.{column}, c.{column})"));
            }
            qb.push(" from (values ");
            for (i, op) in chunk.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                qb.push("(")
                    .push_bind(op.id)
                    .push("::uuid, ")
                    .push_bind(ids_of(op))
                    .push("::uuid[]");
                for column in &columns {
                    qb.push(", ");
                    match op.assigns.iter().find(|a| a.column() == *column) {
                        Some(assign) => store::push_value(&mut qb, assign),
                        None => {
                            qb.push(format!("null::{}", store::column_sql_type(column)));
                        }
                    }
                }
                qb.push(")");
            }
            qb.push(") as v (id, label_ids");
            for column in &columns {
                qb.push(", ").push(*column);
            }
            qb.push(") where c.id = v.id");
            qb.build().execute(&mut *conn).await?;
            for op in chunk {
                updated.push(op.id);
                outcome.updated += op.rows.len();
            }
        }
    }

    let details = json!({ "source": "import", "import": context.import_id });
    store::record_activity(
        conn,
        context.company_id,
        &created,
        "CREATED",
        Some(context.importer),
        &details,
    )
    .await?;
    store::record_activity(
        conn,
        context.company_id,
        &updated,
        "IMPORTED",
        Some(context.importer),
        &details,
    )
    .await?;
    if let Some(list_id) = context.list_id {
        let touched: Vec<Uuid> = created.iter().chain(&updated).copied().collect();
        let joined =
            super::lists::add_members(conn, context.company_id, list_id, &touched, true).await?;
        store::record_activity(
            conn,
            context.company_id,
            &joined,
            "LIST_ADDED",
            Some(context.importer),
            &json!({ "list": { "id": list_id }, "source": "import" }),
        )
        .await?;
    }
    outcome.skipped.sort_by_key(|(row, _)| *row);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_suggest_properties() {
        assert_eq!(suggest("Mobile Number", &[]).as_deref(), Some("phone"));
        assert_eq!(suggest(" E-mail ", &[]).as_deref(), Some("email"));
        assert_eq!(suggest("Full name", &[]).as_deref(), Some("name"));
        assert_eq!(suggest("Tags", &[]).as_deref(), Some("label"));
        assert_eq!(suggest("Favourite colour", &[]), None);
    }

    #[test]
    fn spreadsheet_phones_without_plus_are_international() {
        assert_eq!(import_phone("6281234567890").unwrap(), "+6281234567890");
        assert_eq!(import_phone("+65 9123 4567").unwrap(), "+6591234567");
        assert!(import_phone("0812 3456 7890")
            .unwrap_err()
            .contains("country code"));
        assert!(import_phone("call me").is_err());
    }
}
