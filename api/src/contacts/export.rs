//! Contact files out: the export of any filter as CSV, and the sample file for imports.
//!
//! Both are fetched through a download link (`/downloads/<token>`, valid for
//! [`LINK_LIFETIME`]) that the GraphQL mutation returns. The file is made while it is
//! fetched: the export streams rows from PostgreSQL to the client through a small bounded
//! channel, so memory stays flat however many contacts there are, and it runs with the
//! rights its maker has at that moment (a demoted or deactivated user's links stop working).
//!
//! The export's columns are the import's property keys, so an exported file imports back
//! (multi-selects and labels are separated by `; `).

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::filter::{Catalog, ContactFilter};
use super::properties::{PropertyRow, PropertyType};
use super::store::{self, ContactRow};
use super::{ContactGrouping, ContactQuery, Visibility};
use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::auth::{tokens, Actor, ApiScope, Role};
use crate::error::{ApiError, ApiResult};

/// How long a download link works.
pub const LINK_LIFETIME: chrono::Duration = chrono::Duration::minutes(15);
const LINK_PREFIX: &str = "obd_";
/// Bytes gathered before a chunk goes to the client.
const CHUNK: usize = 64 * 1024;

pub struct DownloadLink {
    pub path: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize, Deserialize)]
struct ExportParams {
    filter: Option<ContactFilter>,
    grouping: ContactGrouping,
}

async fn create_link(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    kind: &str,
    params: serde_json::Value,
) -> ApiResult<DownloadLink> {
    let (token, hash) = tokens::generate(LINK_PREFIX);
    let expires_at = chrono::Utc::now() + LINK_LIFETIME;
    sqlx::query(
        "insert into downloads (id, company_id, user_id, token_hash, kind, params, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(actor.user_id())
    .bind(hash)
    .bind(kind)
    .bind(params)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    // Expired links of the company go as new ones come.
    sqlx::query("delete from downloads where expires_at < now() - interval '1 day'")
        .execute(conn)
        .await?;
    Ok(DownloadLink {
        path: format!("/downloads/{token}"),
        expires_at,
    })
}

/// A link to the CSV of the contacts `query` selects (its filter, view and grouping; order
/// and paging do not apply). Admins only; audited.
pub async fn export(
    state: &AppState,
    actor: &Actor,
    query: ContactQuery,
) -> ApiResult<DownloadLink> {
    actor.require(Role::Admin, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let resolved = super::resolve_view(&mut tx, actor, &query).await?;
    if let Some(filter) = &resolved.filter {
        super::filter::validate(&mut tx, actor.user_id(), filter).await?;
    }
    let params = ExportParams {
        filter: resolved.filter,
        grouping: resolved.grouping,
    };
    let params = serde_json::to_value(&params).map_err(|e| ApiError::internal("export", e))?;
    let link = create_link(&mut tx, actor, "CONTACT_EXPORT", params.clone()).await?;
    audit::record(
        &mut tx,
        actor,
        Entry::new("CONTACTS_EXPORTED").details(params),
    )
    .await?;
    tx.commit().await?;
    Ok(link)
}

/// A link to a sample import file: the columns the import understands, with the company's
/// custom properties, and two example rows.
pub async fn import_sample(state: &AppState, actor: &Actor) -> ApiResult<DownloadLink> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let link = create_link(&mut tx, actor, "CONTACT_IMPORT_SAMPLE", json!({})).await?;
    tx.commit().await?;
    Ok(link)
}

// ---------------------------------------------------------------------------------------
// Serving a link

fn plain(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    user_id: Uuid,
    kind: String,
    params: serde_json::Value,
}

/// Answers `GET /downloads/<token>`.
pub async fn serve(state: AppState, token: &str) -> Response {
    let gone = || {
        plain(
            StatusCode::NOT_FOUND,
            "This download link does not exist or has expired; ask for a new one.",
        )
    };
    if !token.starts_with(LINK_PREFIX) || token.len() > 100 {
        return gone();
    }
    let hash = tokens::hash(token);
    let company: Option<Uuid> = match sqlx::query_scalar("select download_company($1)")
        .bind(&hash)
        .fetch_one(state.db.pool())
        .await
    {
        Ok(company) => company,
        Err(err) => {
            tracing::error!(error = %err, "looking up a download link");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "Please try again shortly.");
        }
    };
    let Some(company_id) = company else {
        return gone();
    };
    let link = async {
        let mut tx = state.db.tenant(company_id).await?;
        let link: Option<LinkRow> = sqlx::query_as(
            "select user_id, kind, params from downloads where token_hash = $1 and expires_at > now()",
        )
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        let user = match &link {
            Some(link) => crate::users::store::by_id(&mut tx, link.user_id).await?,
            None => None,
        };
        drop(tx);
        Ok::<_, ApiError>(link.zip(user))
    }
    .await;
    let (link, user) = match link {
        Ok(Some(found)) => found,
        Ok(None) => return gone(),
        Err(err) => {
            tracing::error!(error = ?err, "reading a download link");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "Please try again shortly.");
        }
    };
    let role = Role::from_db(&user.role);
    if user.status != "ACTIVE" || (link.kind == "CONTACT_EXPORT" && role != Role::Admin) {
        return plain(
            StatusCode::FORBIDDEN,
            "The person who made this link may no longer download it.",
        );
    }
    let file_name = match link.kind.as_str() {
        "CONTACT_EXPORT" => format!("contacts-{}.csv", chrono::Utc::now().format("%Y-%m-%d")),
        _ => "contact-import-sample.csv".to_string(),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let written = match link.kind.as_str() {
            "CONTACT_EXPORT" => {
                write_export(&state, company_id, user.id, role, link.params, &sender).await
            }
            _ => write_sample(&state, company_id, &sender).await,
        };
        if let Err(err) = written {
            tracing::warn!(error = ?err, "a download stopped");
            // The client sees a cut-off body, not a complete-looking file.
            let _ = sender
                .send(Err(std::io::Error::other("the file could not be finished")))
                .await;
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

type Sender = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Gathers CSV records and hands them to the client a chunk at a time.
struct Chunks<'a> {
    writer: csv::Writer<Vec<u8>>,
    sender: &'a Sender,
}

impl<'a> Chunks<'a> {
    fn new(sender: &'a Sender) -> Self {
        Self {
            writer: csv::Writer::from_writer(Vec::with_capacity(CHUNK * 2)),
            sender,
        }
    }

    async fn record(&mut self, fields: &[String]) -> ApiResult<()> {
        let guarded: Vec<std::borrow::Cow<'_, str>> =
            fields.iter().map(|f| guard_formula(f)).collect();
        self.writer
            .write_record(guarded.iter().map(|f| f.as_bytes()))
            .map_err(|e| ApiError::internal("writing CSV", e))?;
        if self.writer.get_ref().len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> ApiResult<()> {
        let full = std::mem::replace(
            &mut self.writer,
            csv::Writer::from_writer(Vec::with_capacity(CHUNK * 2)),
        );
        let bytes = full
            .into_inner()
            .map_err(|e| ApiError::internal("writing CSV", e.into_error()))?;
        if bytes.is_empty() {
            return Ok(());
        }
        self.sender
            .send(Ok(Bytes::from(bytes)))
            .await
            .map_err(|_| ApiError::validation("the client went away"))
    }
}

/// Spreadsheet programs run a cell that starts with `=`, `@`, `+` or `-` as a formula; such a
/// value gets a leading `'` so that opening an export runs nothing. Phone numbers (+ and
/// digits) and negative numbers stay as they are.
fn guard_formula(value: &str) -> std::borrow::Cow<'_, str> {
    let risky = match value.as_bytes().first() {
        Some(b'=' | b'@' | b'\t' | b'\r') => true,
        Some(b'+' | b'-') => !value[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '(' | ')')),
        _ => false,
    };
    if risky {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

const BUILT_IN_HEADERS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "phone",
    "email",
    "country",
    "location",
    "company_name",
    "job_title",
    "owner",
    "team",
    "label",
    "created_at",
    "updated_at",
    "last_contacted_at",
    "last_inbound_at",
];

fn custom_cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(serde_json::Value::Bool(flag)) => flag.to_string(),
        Some(serde_json::Value::Number(number)) => match number.as_f64() {
            Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", n as i64),
            _ => number.to_string(),
        },
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
    }
}

async fn write_export(
    state: &AppState,
    company_id: Uuid,
    user_id: Uuid,
    role: Role,
    params: serde_json::Value,
    sender: &Sender,
) -> ApiResult<()> {
    let params: ExportParams =
        serde_json::from_value(params).map_err(|e| ApiError::internal("export link", e))?;
    let mut tx = state.db.tenant(company_id).await?;
    let visibility = Visibility::of_user(&mut tx, user_id, role).await?;
    let filters: Vec<&ContactFilter> = params.filter.iter().collect();
    let catalog = Catalog::load(&mut tx, user_id, &filters).await?;
    let mut properties: Vec<PropertyRow> = catalog.properties.values().cloned().collect();
    properties.sort_by_key(|p| (p.created_at, p.id));
    let names = |rows: Vec<(Uuid, String)>| rows.into_iter().collect::<HashMap<Uuid, String>>();
    let labels = names(
        sqlx::query_as("select id, name from labels")
            .fetch_all(&mut *tx)
            .await?,
    );
    let users = names(
        sqlx::query_as("select id, email from users")
            .fetch_all(&mut *tx)
            .await?,
    );
    let teams = names(
        sqlx::query_as("select id, name from teams")
            .fetch_all(&mut *tx)
            .await?,
    );

    let mut out = Chunks::new(sender);
    let mut header: Vec<String> = BUILT_IN_HEADERS.iter().map(|h| h.to_string()).collect();
    header.extend(properties.iter().map(|p| p.key.clone()));
    out.record(&header).await?;

    let mut qb = QueryBuilder::<Postgres>::new("select ");
    qb.push(store::select_list(&properties))
        .push(" from contacts c");
    super::push_where(
        &mut qb,
        company_id,
        &visibility,
        params.grouping,
        params.filter.as_ref(),
        &catalog,
    )?;
    qb.push(" order by c.id");
    let mut rows = qb.build().fetch(&mut *tx);
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    let name_of = |map: &HashMap<Uuid, String>, id: Option<Uuid>| {
        id.and_then(|id| map.get(&id).cloned()).unwrap_or_default()
    };
    let mut record: Vec<String> = Vec::with_capacity(header.len());
    while let Some(row) = rows.try_next().await? {
        let contact: ContactRow = store::read_row(&row, &properties)?;
        record.clear();
        let mut contact_labels: Vec<&str> = contact
            .label_ids
            .iter()
            .filter_map(|id| labels.get(id).map(String::as_str))
            .collect();
        contact_labels.sort_unstable();
        record.extend([
            contact.id.to_string(),
            contact.first_name.unwrap_or_default(),
            contact.last_name.unwrap_or_default(),
            contact.phone.unwrap_or_default(),
            contact.email.unwrap_or_default(),
            contact.country.unwrap_or_default(),
            contact.location.unwrap_or_default(),
            contact.company_name.unwrap_or_default(),
            contact.job_title.unwrap_or_default(),
            name_of(&users, contact.owner_id),
            name_of(&teams, contact.team_id),
            contact_labels.join("; "),
            time(Some(contact.created_at)),
            time(Some(contact.updated_at)),
            time(contact.last_contacted_at),
            time(contact.last_inbound_at),
        ]);
        record.extend(
            properties
                .iter()
                .map(|p| custom_cell(contact.custom.get(&p.key))),
        );
        out.record(&record).await?;
    }
    drop(rows);
    drop(tx);
    out.flush().await
}

async fn write_sample(state: &AppState, company_id: Uuid, sender: &Sender) -> ApiResult<()> {
    let mut tx = state.db.tenant(company_id).await?;
    let properties = store::properties(&mut tx).await?;
    drop(tx);
    let mut header: Vec<String> = [
        "name",
        "phone",
        "email",
        "country",
        "location",
        "company_name",
        "job_title",
        "owner",
        "label",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    let mut rows = [
        vec![
            "Siti Rahma",
            "+62 812 3456 7890",
            "siti@example.com",
            "ID",
            "Jakarta",
            "Kopi Nusantara",
            "Owner",
            "",
            "vip; wholesale",
        ],
        vec![
            "Daniel Tan",
            "+65 8765 4321",
            "",
            "SG",
            "Singapore",
            "",
            "",
            "",
            "",
        ],
    ]
    .map(|row| row.into_iter().map(str::to_string).collect::<Vec<String>>());
    for property in &properties {
        header.push(property.key.clone());
        let example = match property.kind() {
            PropertyType::Text => "Any text".to_string(),
            PropertyType::Number => "42".to_string(),
            PropertyType::Date => "2026-01-31".to_string(),
            PropertyType::Boolean => "yes".to_string(),
            PropertyType::SingleSelect => property.options.first().cloned().unwrap_or_default(),
            PropertyType::MultiSelect => property
                .options
                .iter()
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
            PropertyType::Phone => "+62 811 2233 4455".to_string(),
            PropertyType::Email => "someone@example.com".to_string(),
            PropertyType::Url => "https://example.com".to_string(),
        };
        rows[0].push(example);
        rows[1].push(String::new());
    }
    let mut out = Chunks::new(sender);
    out.record(&header).await?;
    for row in &rows {
        out.record(row).await?;
    }
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_but_phones_and_numbers_are_not() {
        assert_eq!(guard_formula("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(guard_formula("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(guard_formula("+cmd|' /C calc'!A0"), "'+cmd|' /C calc'!A0");
        assert_eq!(guard_formula("+6281234567890"), "+6281234567890");
        assert_eq!(guard_formula("-12.5"), "-12.5");
        assert_eq!(guard_formula("Ana"), "Ana");
    }
}
