//! Ingestion: QUEUED → EXTRACTING → EMBEDDING → READY, or FAILED with a message a person
//! understands, in two jobs. `INGEST_JOB` fetches, extracts and stores the passages (the
//! source is keyword-searchable when it commits, together with its `EMBED_JOB`);
//! `EMBED_JOB` embeds them and makes the generation active. They run on separate workers,
//! so a large file's embedding never holds up another source's extraction.
//!
//! A job names a source and a generation. It does nothing when the source has moved on to a
//! newer generation (a replacement or refresh queued another job) or was deleted. It can
//! run more than once (a worker that died mid-way loses its lease and the job runs again),
//! so each step is repeatable: passages of the generation are replaced, not added, an
//! ingestion that finds its passages already stored only makes sure they will be embedded,
//! and embedding only touches passages still without a vector.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use obrol_knowledge::chunk::{chunk, indexed_text};
use obrol_knowledge::embed::EmbedError;
use obrol_knowledge::extract::isolated;
use obrol_knowledge::limits::MAX_BYTES;
use obrol_knowledge::web::{self, FetchPolicy};
use uuid::Uuid;

use super::store::{self, SourceRow};
use super::{object_key, source_event, EMBED_JOB};
use crate::app::AppState;
use crate::events;
use crate::jobs::{self, Handler, Job, Outcome};

/// Passages embedded per batch (and per progress event).
const EMBED_BATCH: i64 = 32;

pub struct Ingest {
    pub state: AppState,
}

/// Why an attempt stopped.
enum Stop {
    /// Permanent: the source is FAILED with this message.
    Failed(String),
    /// May pass (database or network trouble): the job is retried.
    Transient(String),
    /// The source was deleted or superseded: nothing to do.
    Gone,
}

impl From<sqlx::Error> for Stop {
    fn from(err: sqlx::Error) -> Self {
        Stop::Transient(format!("database: {err}"))
    }
}

impl Handler for Ingest {
    fn run(&self, job: Job) -> BoxFuture<'_, Outcome> {
        async move {
            let Some((source_id, generation)) = payload(&job) else {
                tracing::warn!(kind = %job.kind, payload = %job.payload, "malformed job dropped");
                return Outcome::Done;
            };
            let result = if job.kind == EMBED_JOB {
                self.embed_and_activate(job.company_id, source_id, generation)
                    .await
            } else {
                self.ingest(job.company_id, source_id, generation).await
            };
            match result {
                Ok(()) | Err(Stop::Gone) => Outcome::Done,
                Err(Stop::Failed(message)) => {
                    if let Err(err) = self
                        .fail(job.company_id, source_id, generation, &message)
                        .await
                    {
                        return Outcome::Retry(format!("could not record the failure: {err}"));
                    }
                    Outcome::Done
                }
                Err(Stop::Transient(message)) => Outcome::Retry(message),
            }
        }
        .boxed()
    }

    fn give_up(&self, job: Job, error: String) -> BoxFuture<'_, ()> {
        async move {
            if let Some((source_id, generation)) = payload(&job) {
                let message = format!(
                    "Ingestion failed {} times and was given up: {error}",
                    job.attempt
                );
                if let Err(err) = self
                    .fail(job.company_id, source_id, generation, &message)
                    .await
                {
                    tracing::error!(error = %err, "could not mark a source FAILED");
                }
            }
        }
        .boxed()
    }
}

fn payload(job: &Job) -> Option<(Uuid, i32)> {
    let source = job.payload.get("source_id")?.as_str()?.parse().ok()?;
    let generation = job.payload.get("generation")?.as_i64()?.try_into().ok()?;
    Some((source, generation))
}

impl Ingest {
    /// Loads the source, or `Gone` when it no longer wants this generation.
    async fn current(
        &self,
        company_id: Uuid,
        source_id: Uuid,
        generation: i32,
    ) -> Result<SourceRow, Stop> {
        let mut tx = self.state.db.tenant(company_id).await?;
        let row = store::source(&mut tx, source_id).await?;
        tx.commit().await?;
        match row {
            Some(row) if row.generation == generation => Ok(row),
            _ => Err(Stop::Gone),
        }
    }

    /// Changes the status (and publishes it) if the source still wants this generation.
    async fn set_status(&self, source: &SourceRow, status: &str) -> Result<SourceRow, Stop> {
        let mut tx = self.state.db.tenant(source.company_id).await?;
        match store::lock_source(&mut tx, source.id).await? {
            Some(row) if row.generation == source.generation => {}
            _ => return Err(Stop::Gone),
        }
        let row = store::set_status(&mut tx, source.id, status, None).await?;
        events::publish(&mut tx, &source_event(&row)).await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn ingest(&self, company_id: Uuid, source_id: Uuid, generation: i32) -> Result<(), Stop> {
        let source = self.current(company_id, source_id, generation).await?;
        if source.status == "READY" && source.active_generation == Some(generation) {
            return Ok(());
        }
        if source.status == "EMBEDDING" && source.chunk_count > 0 {
            // A repeated attempt after the passages were stored (the worker died before the
            // job was removed): they are kept, and their embedding job must exist.
            let mut tx = self.state.db.tenant(company_id).await?;
            let stored = store::count_chunks(&mut tx, source_id, generation).await?;
            if stored == source.chunk_count as i64 {
                if !jobs::is_queued(&mut tx, EMBED_JOB, "source_id", &source_id.to_string()).await?
                {
                    queue_embedding(&mut tx, &source).await?;
                }
                tx.commit().await?;
                self.state.knowledge.jobs_queued.notify_waiters();
                return Ok(());
            }
        }
        self.extract(source).await?;
        self.state.knowledge.jobs_queued.notify_waiters();
        Ok(())
    }

    /// Embeds the generation's passages still without a vector, then makes it the active one.
    async fn embed_and_activate(
        &self,
        company_id: Uuid,
        source_id: Uuid,
        generation: i32,
    ) -> Result<(), Stop> {
        let source = self.current(company_id, source_id, generation).await?;
        if source.active_generation == Some(generation) && source.status == "READY" {
            return Ok(());
        }
        if source.status != "EMBEDDING" {
            // Not extracted (yet), or failed: the ingestion job owns this generation.
            return Err(Stop::Gone);
        }
        self.embed(&source).await?;
        // The new generation takes over, and every older passage goes, in one transaction.
        let mut tx = self.state.db.tenant(company_id).await?;
        match store::lock_source(&mut tx, source_id).await? {
            Some(row) if row.generation == generation => {}
            _ => return Err(Stop::Gone),
        }
        let row = store::activate(&mut tx, source_id, generation).await?;
        events::publish(&mut tx, &source_event(&row)).await?;
        tx.commit().await?;
        self.state.knowledge.index_changed.notify_one();
        // Earlier generations' bytes are no longer needed.
        for old in 1..generation {
            let key = object_key(company_id, source_id, old);
            if Some(&key) != row.object_key.as_ref() {
                let _ = self
                    .state
                    .knowledge
                    .objects
                    .delete(&ObjectPath::from(key))
                    .await;
            }
        }
        Ok(())
    }

    /// Gets the bytes (fetching URLs), extracts them in the isolated reader, and stores the
    /// passages with the job that embeds them. A first ingestion becomes keyword-searchable
    /// here.
    async fn extract(&self, source: SourceRow) -> Result<SourceRow, Stop> {
        let source = self.set_status(&source, "EXTRACTING").await?;
        let knowledge = &self.state.knowledge;
        let (bytes, name) = match source.kind.as_str() {
            "URL" | "GOOGLE_DOC" | "GOOGLE_SHEET" => self.fetch(&source).await?,
            _ => {
                let key = source
                    .object_key
                    .clone()
                    .ok_or_else(|| Stop::Failed("The source has no stored content.".into()))?;
                let object = knowledge
                    .objects
                    .get(&ObjectPath::from(key))
                    .await
                    .map_err(|e| Stop::Transient(format!("object store: {e}")))?;
                let bytes = object
                    .bytes()
                    .await
                    .map_err(|e| Stop::Transient(format!("object store: {e}")))?;
                let name = if source.kind == "TEXT" {
                    // Pasted text: Markdown if it looks like it, plain text otherwise.
                    None
                } else {
                    Some(source.name.clone())
                };
                (bytes.to_vec(), name)
            }
        };
        let extracted = isolated::extract(&knowledge.extract, &bytes, name.as_deref())
            .await
            .map_err(|e| Stop::Failed(e.to_string()))?;
        let chunks = chunk(&extracted.blocks);
        if chunks.is_empty() {
            return Err(Stop::Failed(
                obrol_knowledge::extract::ExtractError::NoText.to_string(),
            ));
        }
        let format = serde_json::to_value(extracted.format)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let warning = (!extracted.warnings.is_empty()).then(|| extracted.warnings.join("; "));
        let mut tx = self.state.db.tenant(source.company_id).await?;
        match store::lock_source(&mut tx, source.id).await? {
            Some(row) if row.generation == source.generation => {}
            _ => return Err(Stop::Gone),
        }
        store::insert_chunks(&mut tx, &source, source.generation, &chunks).await?;
        let row = store::extracted(
            &mut tx,
            source.id,
            source.generation,
            extracted.pages as i32,
            chunks.len() as i32,
            &format,
            warning.as_deref(),
        )
        .await?;
        queue_embedding(&mut tx, &row).await?;
        events::publish(&mut tx, &source_event(&row)).await?;
        tx.commit().await?;
        knowledge.index_changed.notify_one();
        Ok(row)
    }

    /// Fetches a URL source, within what is left of the knowledge base's byte allowance,
    /// and keeps the fetched bytes as this generation's object.
    async fn fetch(&self, source: &SourceRow) -> Result<(Vec<u8>, Option<String>), Stop> {
        let knowledge = &self.state.knowledge;
        let (_, url) = web::classify(
            source.url.as_deref().unwrap_or(""),
            &knowledge.fetch.google_base,
        )
        .map_err(|e| Stop::Failed(e.to_string()))?;
        let used = {
            let mut tx = self.state.db.tenant(source.company_id).await?;
            let (_, used) =
                store::usage(&mut tx, source.knowledge_base_id, Some(source.id)).await?;
            tx.commit().await?;
            used
        };
        let room = (MAX_BYTES as i64 - used).max(0) as u64;
        let policy = FetchPolicy {
            max_bytes: knowledge.fetch.max_bytes.min(room),
            ..knowledge.fetch.clone()
        };
        let fetched = web::fetch(&url, &policy).await.map_err(|e| match e {
            web::WebError::TooLarge(_) if room < knowledge.fetch.max_bytes => {
                Stop::Failed(format!(
                    "The page does not fit in what is left of the knowledge base's {} MB \
                 ({:.1} MB left).",
                    MAX_BYTES / (1024 * 1024),
                    room as f64 / (1024.0 * 1024.0)
                ))
            }
            web::WebError::Network(_) | web::WebError::TimedOut(_) => Stop::Failed(e.to_string()),
            other => Stop::Failed(other.to_string()),
        })?;
        let key = object_key(source.company_id, source.id, source.generation);
        knowledge
            .objects
            .put(&ObjectPath::from(key.clone()), fetched.bytes.clone().into())
            .await
            .map_err(|e| Stop::Transient(format!("object store: {e}")))?;
        let mut tx = self.state.db.tenant(source.company_id).await?;
        store::set_fetched(&mut tx, source.id, &key, fetched.bytes.len() as i64).await?;
        tx.commit().await?;
        // The URL's path names the file for format detection (".csv" for Sheets exports).
        let name = match source.kind.as_str() {
            "GOOGLE_SHEET" => Some("sheet.csv".to_string()),
            "GOOGLE_DOC" => Some("document.txt".to_string()),
            _ => fetched
                .content_type
                .as_deref()
                .and_then(|ct| match ct.split(';').next().unwrap_or("").trim() {
                    "text/html" | "application/xhtml+xml" => Some("page.html".to_string()),
                    "text/csv" => Some("page.csv".to_string()),
                    "text/markdown" => Some("page.md".to_string()),
                    "text/plain" => Some("page.txt".to_string()),
                    _ => None,
                })
                .or_else(|| {
                    fetched
                        .final_url
                        .path_segments()?
                        .next_back()
                        .map(str::to_string)
                }),
        };
        Ok((fetched.bytes, name))
    }

    async fn embed(&self, source: &SourceRow) -> Result<(), Stop> {
        let knowledge = &self.state.knowledge;
        let model = knowledge.embedder.model().to_string();
        loop {
            let pending = {
                let mut tx = self.state.db.tenant(source.company_id).await?;
                let rows =
                    store::unembedded(&mut tx, source.id, source.generation, &model, EMBED_BATCH)
                        .await?;
                tx.commit().await?;
                rows
            };
            if pending.is_empty() {
                return Ok(());
            }
            let texts: Vec<String> = pending
                .iter()
                .map(|c| indexed_text(&c.heading_path, &c.text))
                .collect();
            let vectors = knowledge.embedder.embed(texts).await.map_err(|e| match e {
                EmbedError::Endpoint(m) => Stop::Transient(m),
                other => Stop::Failed(format!("Embedding failed: {other}")),
            })?;
            let ids: Vec<Uuid> = pending.iter().map(|c| c.id).collect();
            let mut tx = self.state.db.tenant(source.company_id).await?;
            let row = match store::lock_source(&mut tx, source.id).await? {
                Some(row) if row.generation == source.generation => row,
                _ => return Err(Stop::Gone),
            };
            store::store_embeddings(&mut tx, &row, &ids, &vectors, &model).await?;
            let row = store::source(&mut tx, row.id).await?.unwrap_or(row);
            events::publish(&mut tx, &source_event(&row)).await?;
            tx.commit().await?;
        }
    }

    /// FAILED with `message`. The failed generation's passages go; a first ingestion that
    /// was already keyword-searchable stops being searchable (nothing half-stored), while a
    /// replacement's failure leaves the previous passages serving.
    async fn fail(
        &self,
        company_id: Uuid,
        source_id: Uuid,
        generation: i32,
        message: &str,
    ) -> sqlx::Result<()> {
        let mut tx = self.state.db.tenant(company_id).await?;
        let Some(row) = store::lock_source(&mut tx, source_id).await? else {
            return Ok(());
        };
        if row.generation != generation {
            return Ok(());
        }
        if row.active_generation == Some(generation) {
            sqlx::query("update knowledge_sources set active_generation = null where id = $1")
                .bind(source_id)
                .execute(&mut *tx)
                .await?;
        }
        store::drop_generation(&mut tx, source_id, generation).await?;
        let row = store::set_status(&mut tx, source_id, "FAILED", Some(message)).await?;
        events::publish(&mut tx, &source_event(&row)).await?;
        tx.commit().await?;
        self.state.knowledge.index_changed.notify_one();
        Ok(())
    }
}

async fn queue_embedding(tx: &mut sqlx::PgConnection, source: &SourceRow) -> sqlx::Result<()> {
    jobs::enqueue(
        tx,
        source.company_id,
        EMBED_JOB,
        serde_json::json!({ "source_id": source.id, "generation": source.generation }),
    )
    .await
    .map(drop)
}

pub fn handler(state: AppState) -> Arc<dyn Handler> {
    Arc::new(Ingest { state })
}
