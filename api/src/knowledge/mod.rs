//! Knowledge bases: what AI agents answer from (PRODUCT.md §9).
//!
//! The rules live here; `store` has the SQL, `pipeline` the ingestion job, `index` the
//! full-text index sync and hybrid search, `graphql` the API. Parsing, chunking, embedding
//! and ranking are in the `obrol-knowledge` crate.
//!
//! Limits (`obrol_knowledge::limits`) are checked before anything is stored: the source
//! count and total bytes under a lock on the knowledge base row, and a file's page count by
//! inspecting it in the isolated reader. Bytes live in the object store, one object per
//! generation of a source.

pub mod graphql;
pub mod index;
pub mod pipeline;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use obrol_knowledge::embed::Embedder;
use obrol_knowledge::extract::isolated::Isolation;
use obrol_knowledge::extract::ExtractError;
use obrol_knowledge::fulltext::FullText;
use obrol_knowledge::limits::{MAX_BYTES, MAX_PAGES, MAX_SOURCES};
use obrol_knowledge::web::{self, FetchPolicy, UrlKind};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Actor, ApiScope, Role};
use crate::error::{ApiError, ApiResult};
use crate::events::{self, Event, EventKind};
use crate::jobs;
use store::{BaseRow, NewSource, SourceRow};

/// Gets a source's bytes, extracts and chunks them, and stores the passages: from then on the
/// source is keyword-searchable. Queues the source's `EMBED_JOB`.
pub const INGEST_JOB: &str = "knowledge.ingest";
/// Embeds a source's passages and makes the generation active (READY). A separate job, run
/// by its own workers, so that embedding (minutes of CPU for a large file) never delays
/// other sources' extraction: every source is keyword-searchable within seconds.
pub const EMBED_JOB: &str = "knowledge.embed";
/// The jobs that work on one source.
pub const SOURCE_JOBS: &[&str] = &[INGEST_JOB, EMBED_JOB];

/// Everything the knowledge feature needs at run time, built once at start.
pub struct Knowledge {
    pub fulltext: Arc<FullText>,
    pub embedder: Arc<dyn Embedder>,
    pub objects: Arc<dyn ObjectStore>,
    /// For uploads: a quick look (format, pages) before anything is stored.
    pub inspect: Isolation,
    /// For ingestion: the full extraction.
    pub extract: Isolation,
    pub fetch: FetchPolicy,
    /// Wakes this node's index sync (after a change made here).
    pub index_changed: Arc<Notify>,
    /// Wakes this node's job workers (after a job was queued here).
    pub jobs_queued: Arc<Notify>,
}

impl Knowledge {
    pub fn extraction_program() -> PathBuf {
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("obrol"))
    }

    pub fn isolation(timeout: Duration, memory_mb: u64) -> Isolation {
        Isolation {
            program: Self::extraction_program(),
            args: vec!["extract-worker".into()],
            timeout,
            memory_bytes: memory_mb * 1024 * 1024,
        }
    }
}

pub fn object_key(company_id: Uuid, source_id: Uuid, generation: i32) -> String {
    format!("knowledge/{company_id}/{source_id}/{generation}")
}

fn limit_exceeded(message: String) -> ApiError {
    ApiError::LimitExceeded(message)
}

fn mb(bytes: i64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

/// Checks that a source of `new_bytes` bytes fits, given the base's current usage.
fn check_limits(sources: i64, bytes: i64, new_bytes: i64, adds_source: bool) -> ApiResult<()> {
    if adds_source && sources >= MAX_SOURCES as i64 {
        return Err(limit_exceeded(format!(
            "A knowledge base holds at most {MAX_SOURCES} sources and this one has {sources}. \
             Delete a source to add another."
        )));
    }
    if bytes + new_bytes > MAX_BYTES as i64 {
        return Err(limit_exceeded(format!(
            "A knowledge base holds at most {} in total; this one uses {} and the new source \
             is {}.",
            mb(MAX_BYTES as i64),
            mb(bytes),
            mb(new_bytes)
        )));
    }
    Ok(())
}

fn extract_error(err: ExtractError) -> ApiError {
    match err {
        ExtractError::TooManyPages { .. } => ApiError::LimitExceeded(err.to_string()),
        other => ApiError::validation(other.to_string()),
    }
}

pub fn source_event(row: &SourceRow) -> Event {
    let mut row = row.clone();
    // Notifications are limited to 8,000 bytes.
    if let Some(error) = &mut row.error {
        if error.len() > 1000 {
            *error = error.chars().take(1000).collect();
        }
    }
    row.url = row.url.map(|u| u.chars().take(1000).collect());
    Event {
        company_id: row.company_id,
        kind: EventKind::KnowledgeSourceUpdated {
            source: Box::new(row),
            deleted: false,
        },
    }
}

pub fn deleted_event(row: &SourceRow) -> Event {
    let mut event = source_event(row);
    if let EventKind::KnowledgeSourceUpdated { deleted, .. } = &mut event.kind {
        *deleted = true;
    }
    event
}

pub async fn create_base(state: &AppState, actor: &Actor, name: &str) -> ApiResult<BaseRow> {
    actor.require(Role::Admin, ApiScope::KnowledgeWrite)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::validation(
            "a knowledge base name needs 1 to 200 characters",
        ));
    }
    let mut tx = state.db.tenant(actor.company_id).await?;
    let base = store::insert_base(&mut tx, actor.company_id, name).await?;
    tx.commit().await?;
    Ok(base)
}

pub async fn delete_base(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<()> {
    actor.require(Role::Admin, ApiScope::KnowledgeWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let sources = store::sources_of(&mut tx, id).await?;
    if store::base(&mut tx, id).await?.is_none() {
        return Err(ApiError::not_found("knowledge base"));
    }
    for source in &sources {
        jobs::cancel_matching(&mut tx, SOURCE_JOBS, "source_id", &source.id.to_string()).await?;
        events::publish(&mut tx, &deleted_event(source)).await?;
    }
    store::delete_base(&mut tx, id).await?;
    tx.commit().await?;
    let knowledge = &state.knowledge;
    for source in &sources {
        remove_objects(knowledge, source).await;
    }
    knowledge.index_changed.notify_one();
    Ok(())
}

/// Deletes every stored generation of a source's bytes.
async fn remove_objects(knowledge: &Knowledge, source: &SourceRow) {
    for generation in 1..=source.generation {
        let key = ObjectPath::from(object_key(source.company_id, source.id, generation));
        match knowledge.objects.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => tracing::warn!(error = %err, %key, "stored file not deleted"),
        }
    }
}

/// Stores the bytes of a new source (or generation) and returns the object key.
async fn put_object(
    knowledge: &Knowledge,
    company_id: Uuid,
    source_id: Uuid,
    generation: i32,
    bytes: Vec<u8>,
) -> ApiResult<String> {
    let key = object_key(company_id, source_id, generation);
    knowledge
        .objects
        .put(&ObjectPath::from(key.clone()), bytes.into())
        .await
        .map_err(|e| ApiError::internal("object store write failed", e))?;
    Ok(key)
}

async fn delete_object(knowledge: &Knowledge, key: &str) {
    if let Err(err) = knowledge.objects.delete(&ObjectPath::from(key)).await {
        tracing::warn!(error = %err, %key, "stored file not deleted");
    }
}

fn clean_name(name: &str, fallback: &str) -> String {
    let name: String = name
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(300)
        .collect();
    if name.is_empty() {
        fallback.to_string()
    } else {
        name
    }
}

/// A file (or pasted text) that passed its checks, ready to become a source.
struct Incoming {
    kind: &'static str,
    name: String,
    format: Option<String>,
    pages: i32,
    bytes: Vec<u8>,
}

async fn inspect_file(knowledge: &Knowledge, name: &str, bytes: &[u8]) -> ApiResult<(String, i32)> {
    if bytes.is_empty() {
        return Err(ApiError::validation(ExtractError::Empty.to_string()));
    }
    let inspection =
        obrol_knowledge::extract::isolated::inspect(&knowledge.inspect, bytes, Some(name))
            .await
            .map_err(extract_error)?;
    let format = serde_json::to_value(inspection.format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Ok((format, inspection.pages as i32))
}

/// Adds a source: checks limits under the base's lock, stores its bytes, queues ingestion.
async fn add_source(
    state: &AppState,
    actor: &Actor,
    base_id: Uuid,
    incoming: Incoming,
    url: Option<&str>,
) -> ApiResult<SourceRow> {
    let knowledge = &state.knowledge;
    let size = incoming.bytes.len() as i64;
    // A cheap look first, so an upload that cannot fit is refused before it is stored.
    {
        let mut tx = state.db.tenant(actor.company_id).await?;
        store::base(&mut tx, base_id)
            .await?
            .ok_or_else(|| ApiError::not_found("knowledge base"))?;
        let (sources, bytes) = store::usage(&mut tx, base_id, None).await?;
        tx.commit().await?;
        check_limits(sources, bytes, size, true)?;
    }
    let id = Uuid::now_v7();
    let key = if incoming.bytes.is_empty() {
        None
    } else {
        Some(put_object(knowledge, actor.company_id, id, 1, incoming.bytes).await?)
    };
    let inserted = async {
        let mut tx = state.db.tenant(actor.company_id).await?;
        store::lock_base(&mut tx, base_id)
            .await?
            .ok_or_else(|| ApiError::not_found("knowledge base"))?;
        let (sources, bytes) = store::usage(&mut tx, base_id, None).await?;
        check_limits(sources, bytes, size, true)?;
        let row = store::insert_source(
            &mut tx,
            &NewSource {
                id,
                company_id: actor.company_id,
                knowledge_base_id: base_id,
                kind: incoming.kind,
                name: &incoming.name,
                url,
                format: incoming.format.as_deref(),
                byte_size: size,
                page_count: incoming.pages,
                object_key: key.as_deref(),
            },
        )
        .await?;
        queue_ingestion(&mut tx, &row).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(row)
    }
    .await;
    match inserted {
        Ok(row) => {
            knowledge.jobs_queued.notify_waiters();
            Ok(row)
        }
        Err(err) => {
            // Nothing half-stored: the bytes go when the row does not come.
            if let Some(key) = &key {
                delete_object(knowledge, key).await;
            }
            Err(err)
        }
    }
}

async fn queue_ingestion(tx: &mut sqlx::PgConnection, row: &SourceRow) -> sqlx::Result<()> {
    jobs::cancel_matching(tx, SOURCE_JOBS, "source_id", &row.id.to_string()).await?;
    jobs::enqueue(
        tx,
        row.company_id,
        INGEST_JOB,
        serde_json::json!({ "source_id": row.id, "generation": row.generation }),
    )
    .await?;
    events::publish(tx, &source_event(row)).await
}

pub async fn upload_file(
    state: &AppState,
    actor: &Actor,
    base_id: Uuid,
    file_name: &str,
    bytes: Vec<u8>,
) -> ApiResult<SourceRow> {
    actor.require(Role::Admin, ApiScope::KnowledgeWrite)?;
    let name = clean_name(file_name, "upload");
    if bytes.len() as u64 > MAX_BYTES {
        return Err(limit_exceeded(format!(
            "A file may be at most {}; this one is {}.",
            mb(MAX_BYTES as i64),
            mb(bytes.len() as i64)
        )));
    }
    let (format, pages) = inspect_file(&state.knowledge, &name, &bytes).await?;
    let incoming = Incoming {
        kind: "FILE",
        name,
        format: Some(format),
        pages,
        bytes,
    };
    add_source(state, actor, base_id, incoming, None).await
}

pub async fn add_text(
    state: &AppState,
    actor: &Actor,
    base_id: Uuid,
    title: &str,
    text: &str,
) -> ApiResult<SourceRow> {
    actor.require(Role::Admin, ApiScope::KnowledgeWrite)?;
    let title = clean_name(title, "");
    if title.is_empty() {
        return Err(ApiError::validation("the text needs a title"));
    }
    if text.trim().is_empty() {
        return Err(ApiError::validation("the text is empty"));
    }
    let pages = obrol_knowledge::limits::pages_for_chars(text.chars().count());
    if pages > MAX_PAGES {
        return Err(limit_exceeded(format!(
            "The text is {pages} pages long (3,000 characters make a page); a source may have \
             at most {MAX_PAGES} pages."
        )));
    }
    let incoming = Incoming {
        kind: "TEXT",
        name: title,
        format: None,
        pages: pages as i32,
        bytes: text.as_bytes().to_vec(),
    };
    add_source(state, actor, base_id, incoming, None).await
}

pub async fn add_url(
    state: &AppState,
    actor: &Actor,
    base_id: Uuid,
    url: &str,
) -> ApiResult<SourceRow> {
    actor.require(Role::Admin, ApiScope::KnowledgeWrite)?;
    let policy = &state.knowledge.fetch;
    let (kind, target) =
        web::classify(url, &policy.google_base).map_err(|e| ApiError::validation(e.to_string()))?;
    // Refuse private addresses now, so the person sees it at once; the fetch checks again
    // (DNS can change, redirects can point anywhere).
    if !policy.allow_private {
        let host = target.host_str().unwrap_or_default().to_string();
        let port = target.port_or_known_default().unwrap_or(443);
        let addresses = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|_| {
                ApiError::validation(web::WebError::UnknownHost(host.clone()).to_string())
            })?;
        let addresses: Vec<std::net::SocketAddr> = addresses.collect();
        for address in addresses {
            if !web::is_public(address.ip()) {
                return Err(ApiError::validation(
                    web::WebError::PrivateAddress(host).to_string(),
                ));
            }
        }
    }
    let kind = match kind {
        UrlKind::Web => "URL",
        UrlKind::GoogleDoc => "GOOGLE_DOC",
        UrlKind::GoogleSheet => "GOOGLE_SHEET",
    };
    let trimmed = url.trim();
    let incoming = Incoming {
        kind,
        name: clean_name(trimmed, "web page"),
        format: None,
        pages: 0,
        bytes: Vec::new(),
    };
    add_source(state, actor, base_id, incoming, Some(trimmed)).await
}

pub async fn replace_file(
    state: &AppState,
    actor: &Actor,
    source_id: Uuid,
    file_name: &str,
    bytes: Vec<u8>,
) -> ApiResult<SourceRow> {
    actor.require(Role::Admin, ApiScope::KnowledgeWrite)?;
    let knowledge = &state.knowledge;
    let current = {
        let mut tx = state.db.tenant(actor.company_id).await?;
        let row = store::source(&mut tx, source_id).await?;
        tx.commit().await?;
        row.ok_or_else(|| ApiError::not_found("knowledge source"))?
    };
    if current.kind != "FILE" {
        return Err(ApiError::validation(
            "only uploaded files can be replaced; refresh a URL or delete and re-add a text",
        ));
    }
    let name = clean_name(file_name, &current.name);
    let size = bytes.len() as i64;
    let (format, pages) = inspect_file(knowledge, &name, &bytes).await?;
    let generation = current.generation + 1;
    let key = put_object(knowledge, actor.company_id, source_id, generation, bytes).await?;
    let updated = async {
        let mut tx = state.db.tenant(actor.company_id).await?;
        let locked = store::lock_source(&mut tx, source_id)
            .await?
            .ok_or_else(|| ApiError::not_found("knowledge source"))?;
        store::lock_base(&mut tx, locked.knowledge_base_id).await?;
        if locked.generation + 1 != generation {
            return Err(ApiError::conflict(
                "the source changed meanwhile; try the replacement again",
            ));
        }
        let (sources, used) =
            store::usage(&mut tx, locked.knowledge_base_id, Some(source_id)).await?;
        check_limits(sources, used, size, false)?;
        let row = store::new_generation(
            &mut tx,
            source_id,
            Some(&name),
            Some(&key),
            Some(size),
            Some(pages),
            Some(&format),
        )
        .await?;
        queue_ingestion(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(row)
    }
    .await;
    match updated {
        Ok(row) => {
            knowledge.jobs_queued.notify_waiters();
            Ok(row)
        }
        Err(err) => {
            delete_object(knowledge, &key).await;
            Err(err)
        }
    }
}

pub async fn refresh(state: &AppState, actor: &Actor, source_id: Uuid) -> ApiResult<SourceRow> {
    actor.require(Role::Admin, ApiScope::KnowledgeWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let current = store::lock_source(&mut tx, source_id)
        .await?
        .ok_or_else(|| ApiError::not_found("knowledge source"))?;
    // Files and texts are read again from their stored bytes; URLs are fetched again.
    let row = store::new_generation(
        &mut tx,
        source_id,
        None,
        current.object_key.as_deref(),
        None,
        None,
        None,
    )
    .await?;
    queue_ingestion(&mut tx, &row).await?;
    tx.commit().await?;
    state.knowledge.jobs_queued.notify_waiters();
    Ok(row)
}

pub async fn delete_source(
    state: &AppState,
    actor: &Actor,
    source_id: Uuid,
) -> ApiResult<SourceRow> {
    actor.require(Role::Admin, ApiScope::KnowledgeWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let row = store::delete_source(&mut tx, source_id)
        .await?
        .ok_or_else(|| ApiError::not_found("knowledge source"))?;
    jobs::cancel_matching(&mut tx, SOURCE_JOBS, "source_id", &source_id.to_string()).await?;
    events::publish(&mut tx, &deleted_event(&row)).await?;
    tx.commit().await?;
    remove_objects(&state.knowledge, &row).await;
    state.knowledge.index_changed.notify_one();
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_report_the_limit_and_the_usage() {
        assert!(check_limits(9, 0, 10, true).is_ok());
        let err = check_limits(10, 0, 10, true).unwrap_err();
        assert!(err
            .message()
            .contains("at most 10 sources and this one has 10"));
        assert!(check_limits(10, 0, 10, false).is_ok());
        let used = 15 * 1024 * 1024;
        let err = check_limits(1, used, 6 * 1024 * 1024, true).unwrap_err();
        assert_eq!(err.code(), "LIMIT_EXCEEDED");
        assert_eq!(
            err.message(),
            "A knowledge base holds at most 20.0 MB in total; this one uses 15.0 MB and the \
             new source is 6.0 MB."
        );
    }
}
