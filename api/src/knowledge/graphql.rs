//! GraphQL for knowledge bases: thin resolvers over `knowledge`'s rules.

use std::io::Read;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, Subscription, Upload, ID};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use obrol_knowledge::limits::{MAX_BYTES, MAX_PAGES, MAX_SOURCES};
use tokio_stream::wrappers::BroadcastStream;

use super::index::{self, Mode};
use super::store::{self, BaseRow, SourceRow};
use crate::auth::{ApiScope, Role};
use crate::error::{ApiError, ApiResult};
use crate::events::EventKind;
use crate::graphql::connection::{self, CountedConnection};
use crate::graphql::loaders::SourcesOfBase;
use crate::graphql::ws::while_authorized;
use crate::graphql::{actor, loader, parse_id, require_for_field, state, to_id};

/// A set of documents, pages and texts that AI agents answer from.
pub struct KnowledgeBase(pub BaseRow);

#[derive(SimpleObject)]
pub struct KnowledgeUsage {
    pub source_count: i32,
    /// Bytes of all sources (files, fetched pages, texts).
    pub byte_size: i32,
    pub max_sources: i32,
    pub max_bytes: i32,
    /// Pages (or page equivalents) one source may have.
    pub max_pages_per_source: i32,
}

#[Object]
impl KnowledgeBase {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Sources in the order they were added.
    #[graphql(
        complexity = "crate::graphql::list_cost(crate::graphql::NESTED_LIST_FACTOR, child_complexity)"
    )]
    async fn sources(&self, ctx: &Context<'_>) -> ApiResult<Vec<KnowledgeSource>> {
        require_for_field(ctx, Role::Staff, ApiScope::KnowledgeRead)?;
        let rows = loader(ctx)?
            .load_one(SourcesOfBase(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(rows.into_iter().map(KnowledgeSource).collect())
    }

    async fn usage(&self, ctx: &Context<'_>) -> ApiResult<KnowledgeUsage> {
        require_for_field(ctx, Role::Staff, ApiScope::KnowledgeRead)?;
        let rows = loader(ctx)?
            .load_one(SourcesOfBase(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(KnowledgeUsage {
            source_count: rows.len() as i32,
            byte_size: rows
                .iter()
                .map(|r| r.byte_size)
                .sum::<i64>()
                .min(i32::MAX as i64) as i32,
            max_sources: MAX_SOURCES as i32,
            max_bytes: MAX_BYTES as i32,
            max_pages_per_source: MAX_PAGES as i32,
        })
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum KnowledgeSourceKind {
    File,
    Url,
    GoogleDoc,
    GoogleSheet,
    Text,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum KnowledgeSourceStatus {
    /// Waiting for a worker.
    Queued,
    /// Being fetched and read.
    Extracting,
    /// Keyword-searchable (for a first ingestion); vectors are being computed.
    Embedding,
    /// Fully searchable.
    Ready,
    /// See `error`.
    Failed,
}

/// How far ingestion has come.
#[derive(SimpleObject)]
pub struct KnowledgeProgress {
    /// 0 to 100.
    pub percent: i32,
    /// Pages (or page equivalents) read.
    pub pages: i32,
    /// Passages cut from the text.
    pub chunks: i32,
    /// Passages that have their vector.
    pub embedded_chunks: i32,
}

/// A file, web page, Google Doc/Sheet or text in a knowledge base.
pub struct KnowledgeSource(pub SourceRow);

#[Object]
impl KnowledgeSource {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn knowledge_base_id(&self) -> ID {
        to_id(self.0.knowledge_base_id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn kind(&self) -> KnowledgeSourceKind {
        match self.0.kind.as_str() {
            "URL" => KnowledgeSourceKind::Url,
            "GOOGLE_DOC" => KnowledgeSourceKind::GoogleDoc,
            "GOOGLE_SHEET" => KnowledgeSourceKind::GoogleSheet,
            "TEXT" => KnowledgeSourceKind::Text,
            _ => KnowledgeSourceKind::File,
        }
    }

    /// The address, for web pages and Google Docs/Sheets.
    async fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }

    /// The format found in the content: pdf, xlsx, xls, ods, csv, docx, html, markdown, text.
    async fn format(&self) -> Option<&str> {
        self.0.format.as_deref()
    }

    async fn status(&self) -> KnowledgeSourceStatus {
        match self.0.status.as_str() {
            "EXTRACTING" => KnowledgeSourceStatus::Extracting,
            "EMBEDDING" => KnowledgeSourceStatus::Embedding,
            "READY" => KnowledgeSourceStatus::Ready,
            "FAILED" => KnowledgeSourceStatus::Failed,
            _ => KnowledgeSourceStatus::Queued,
        }
    }

    async fn progress(&self) -> KnowledgeProgress {
        let s = &self.0;
        let percent = match s.status.as_str() {
            "READY" => 100,
            "EXTRACTING" => 5,
            "EMBEDDING" if s.chunk_count > 0 => {
                10 + (90 * s.embedded_count as i64 / s.chunk_count as i64) as i32
            }
            "EMBEDDING" => 10,
            _ => 0,
        };
        KnowledgeProgress {
            percent: percent.min(100),
            pages: s.page_count,
            chunks: s.chunk_count,
            embedded_chunks: s.embedded_count,
        }
    }

    /// Why ingestion failed (status FAILED), or what was skipped (pages that could not be
    /// read), in words meant for the person who added the source.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    async fn page_count(&self) -> i32 {
        self.0.page_count
    }

    async fn byte_size(&self) -> i32 {
        self.0.byte_size.min(i32::MAX as i64) as i32
    }

    async fn chunk_count(&self) -> i32 {
        self.0.chunk_count
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A passage that answers a search.
#[derive(SimpleObject)]
pub struct KnowledgeHit {
    /// Reciprocal-rank-fusion score: higher is better; comparable within one search only.
    pub score: f64,
    pub text: String,
    pub source_id: ID,
    pub source_name: String,
    /// The (first) page the passage is on, for PDFs and spreadsheets.
    pub page_number: Option<i32>,
    /// Headings above the passage, outermost first (for spreadsheet rows: the sheet).
    pub heading_path: Vec<String>,
}

#[derive(InputObject)]
pub struct CreateKnowledgeBaseInput {
    pub name: String,
}

/// A change to a knowledge source, as it happens.
#[derive(SimpleObject)]
pub struct KnowledgeSourceEvent {
    pub source: KnowledgeSource,
    /// True when the source was deleted (`source` is its last state).
    pub deleted: bool,
}

#[derive(Default)]
pub struct KnowledgeQuery;

#[Object]
impl KnowledgeQuery {
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    async fn knowledge_bases(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<CountedConnection<KnowledgeBase>> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::KnowledgeRead)?;
        let request = connection::page_request(first, after)?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let rows = store::bases_page(&mut tx, request.after, request.fetch()).await?;
        let total = store::count_bases(&mut tx).await?;
        tx.commit().await?;
        Ok(connection::connection(
            rows,
            request,
            total,
            |r| r.id,
            KnowledgeBase,
        ))
    }

    async fn knowledge_base(&self, ctx: &Context<'_>, id: ID) -> ApiResult<KnowledgeBase> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::KnowledgeRead)?;
        let id = parse_id(&id, "knowledge base")?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let row = store::base(&mut tx, id).await?;
        tx.commit().await?;
        row.map(KnowledgeBase)
            .ok_or_else(|| ApiError::not_found("knowledge base"))
    }

    async fn knowledge_source(&self, ctx: &Context<'_>, id: ID) -> ApiResult<KnowledgeSource> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::KnowledgeRead)?;
        let id = parse_id(&id, "knowledge source")?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let row = store::source(&mut tx, id).await?;
        tx.commit().await?;
        row.map(KnowledgeSource)
            .ok_or_else(|| ApiError::not_found("knowledge source"))
    }

    /// The passages of one knowledge base that best answer `query`: keyword (BM25) and
    /// semantic (vector) rankings fused by reciprocal rank. At most 50.
    #[graphql(
        complexity = "crate::graphql::list_cost(limit.clamp(0, 50) as usize, child_complexity)"
    )]
    async fn search_knowledge(
        &self,
        ctx: &Context<'_>,
        knowledge_base_id: ID,
        query: String,
        #[graphql(default = 8)] limit: i32,
    ) -> ApiResult<Vec<KnowledgeHit>> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::KnowledgeRead)?;
        let base_id = parse_id(&knowledge_base_id, "knowledge base")?;
        if !(1..=50).contains(&limit) {
            return Err(ApiError::validation("limit must be between 1 and 50"));
        }
        if query.chars().count() > 2000 {
            return Err(ApiError::validation(
                "a query may have at most 2,000 characters",
            ));
        }
        let (hits, _) = index::search(
            state(ctx),
            actor.company_id,
            base_id,
            &query,
            limit as usize,
            Mode::Hybrid,
        )
        .await?;
        Ok(hits
            .into_iter()
            .map(|h| KnowledgeHit {
                score: h.score as f64,
                text: h.row.text,
                source_id: to_id(h.row.source_id),
                source_name: h.row.source_name,
                page_number: h.row.page_start,
                heading_path: h.row.heading_path,
            })
            .collect())
    }
}

/// Reads an upload (already spooled to a temporary file by the HTTP layer, which cuts it off
/// at the size limit).
pub(crate) async fn read_upload(ctx: &Context<'_>, file: Upload) -> ApiResult<(String, Vec<u8>)> {
    let value = file
        .value(ctx)
        .map_err(|e| ApiError::validation(format!("the upload cannot be read: {e}")))?;
    let name = value.filename.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        value
            .into_read()
            .take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map(|_| bytes)
    })
    .await
    .map_err(|e| ApiError::internal("reading an upload", e))?
    .map_err(|e| ApiError::internal("reading an upload", e))?;
    Ok((name, bytes))
}

#[derive(Default)]
pub struct KnowledgeMutation;

#[Object]
impl KnowledgeMutation {
    async fn create_knowledge_base(
        &self,
        ctx: &Context<'_>,
        input: CreateKnowledgeBaseInput,
    ) -> ApiResult<KnowledgeBase> {
        Ok(KnowledgeBase(
            super::create_base(state(ctx), actor(ctx)?, &input.name).await?,
        ))
    }

    /// Deletes a knowledge base with all its sources, passages and stored files.
    async fn delete_knowledge_base(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        let id = parse_id(&id, "knowledge base")?;
        super::delete_base(state(ctx), actor(ctx)?, id).await?;
        Ok(true)
    }

    /// Adds a file (PDF, xlsx, xls, ods, CSV, docx, HTML, Markdown, text) by GraphQL
    /// multipart upload. Limits are checked before anything is stored.
    async fn upload_knowledge_file(
        &self,
        ctx: &Context<'_>,
        knowledge_base_id: ID,
        file: Upload,
    ) -> ApiResult<KnowledgeSource> {
        let actor = actor(ctx)?;
        actor.require(Role::Admin, ApiScope::KnowledgeWrite)?;
        let base_id = parse_id(&knowledge_base_id, "knowledge base")?;
        let (name, bytes) = read_upload(ctx, file).await?;
        Ok(KnowledgeSource(
            super::upload_file(state(ctx), actor, base_id, &name, bytes).await?,
        ))
    }

    /// Adds a web page, or a Google Docs / Sheets share link (read through the public
    /// export as text / CSV).
    async fn add_knowledge_url(
        &self,
        ctx: &Context<'_>,
        knowledge_base_id: ID,
        url: String,
    ) -> ApiResult<KnowledgeSource> {
        let base_id = parse_id(&knowledge_base_id, "knowledge base")?;
        Ok(KnowledgeSource(
            super::add_url(state(ctx), actor(ctx)?, base_id, &url).await?,
        ))
    }

    async fn add_knowledge_text(
        &self,
        ctx: &Context<'_>,
        knowledge_base_id: ID,
        title: String,
        text: String,
    ) -> ApiResult<KnowledgeSource> {
        let base_id = parse_id(&knowledge_base_id, "knowledge base")?;
        Ok(KnowledgeSource(
            super::add_text(state(ctx), actor(ctx)?, base_id, &title, &text).await?,
        ))
    }

    /// Replaces an uploaded file; its old passages answer until the new ones are ready.
    async fn replace_knowledge_file(
        &self,
        ctx: &Context<'_>,
        id: ID,
        file: Upload,
    ) -> ApiResult<KnowledgeSource> {
        let actor = actor(ctx)?;
        actor.require(Role::Admin, ApiScope::KnowledgeWrite)?;
        let id = parse_id(&id, "knowledge source")?;
        let (name, bytes) = read_upload(ctx, file).await?;
        Ok(KnowledgeSource(
            super::replace_file(state(ctx), actor, id, &name, bytes).await?,
        ))
    }

    /// Ingests a source again (a URL is fetched again); old passages answer meanwhile.
    async fn refresh_knowledge_source(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<KnowledgeSource> {
        let id = parse_id(&id, "knowledge source")?;
        Ok(KnowledgeSource(
            super::refresh(state(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// Deletes a source, its passages (from both indexes) and its stored file.
    async fn delete_knowledge_source(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<KnowledgeSource> {
        let id = parse_id(&id, "knowledge source")?;
        Ok(KnowledgeSource(
            super::delete_source(state(ctx), actor(ctx)?, id).await?,
        ))
    }
}

#[derive(Default)]
pub struct KnowledgeSubscription;

#[Subscription]
impl KnowledgeSubscription {
    /// Status and progress of sources as they are ingested, replaced and deleted, from every
    /// API node; only one knowledge base's when `knowledgeBaseId` is given.
    async fn knowledge_source_updated(
        &self,
        ctx: &Context<'_>,
        knowledge_base_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = KnowledgeSourceEvent>> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::KnowledgeRead)?;
        let base = knowledge_base_id
            .map(|id| parse_id(&id, "knowledge base"))
            .transpose()?;
        let company_id = actor.company_id;
        let events = BroadcastStream::new(state(ctx).events.subscribe_company(company_id));
        let updates = events.filter_map(move |event| async move {
            let event = event.ok()?;
            if event.company_id != company_id {
                return None;
            }
            match event.kind {
                EventKind::KnowledgeSourceUpdated { source, deleted } => {
                    if base.is_some_and(|b| b != source.knowledge_base_id) {
                        return None;
                    }
                    Some(KnowledgeSourceEvent {
                        source: KnowledgeSource(*source),
                        deleted,
                    })
                }
                _ => None,
            }
        });
        Ok(while_authorized(
            ctx,
            updates,
            Role::Staff,
            ApiScope::KnowledgeRead,
        ))
    }
}
