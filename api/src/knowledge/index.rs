//! This node's full-text index, kept in step with PostgreSQL, and hybrid search.
//!
//! Sync compares what the index holds (sources and generations, from its commit payload)
//! with what PostgreSQL says is searchable (`knowledge_index_state()`), and applies the
//! difference. It runs when this node changed something, when any node's change arrives as
//! an event, and every few seconds in case an event was missed. `obrol reindex` empties the
//! index and runs it once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use obrol_knowledge::chunk::indexed_text;
use obrol_knowledge::fulltext::Change;
use obrol_knowledge::fusion::{reciprocal_rank_fusion, K};
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use super::store::{self, HitRow};
use crate::app::AppState;
use crate::db::TenantTx;
use crate::error::{ApiError, ApiResult};
use crate::events::EventKind;

const RESYNC_EVERY: Duration = Duration::from_secs(5);
/// Candidates taken from each ranking before fusion.
const CANDIDATES: usize = 50;

/// Brings the index up to date once. Returns the number of sources changed.
pub async fn sync(state: &AppState) -> anyhow::Result<usize> {
    let fulltext = state.knowledge.fulltext.clone();
    let desired: Vec<(Uuid, Uuid, Uuid, i32)> = sqlx::query_as(
        "select company_id, knowledge_base_id, source_id, generation from knowledge_index_state()",
    )
    .fetch_all(state.db.pool())
    .await?;
    let held = fulltext.held();
    let mut changes: Vec<Change> = Vec::new();
    let wanted: HashMap<Uuid, i32> = desired.iter().map(|d| (d.2, d.3)).collect();
    for source_id in held.keys() {
        if !wanted.contains_key(source_id) {
            changes.push(Change::Delete {
                source_id: *source_id,
            });
        }
    }
    let mut stale: HashMap<Uuid, Vec<(Uuid, Uuid, i32)>> = HashMap::new();
    for (company_id, base_id, source_id, generation) in desired {
        if held.get(&source_id) != Some(&generation) {
            stale
                .entry(company_id)
                .or_default()
                .push((base_id, source_id, generation));
        }
    }
    let mut count = changes.len();
    for (company_id, sources) in stale {
        let mut tx = state.db.tenant(company_id).await?;
        for (base_id, source_id, generation) in sources {
            let passages = store::chunks_of(&mut tx, source_id, generation)
                .await?
                .into_iter()
                .map(|c| (c.id, indexed_text(&c.heading_path, &c.text)))
                .collect();
            changes.push(Change::Replace {
                company_id,
                knowledge_base_id: base_id,
                source_id,
                generation,
                passages,
            });
            count += 1;
            if changes.len() >= 50 {
                let batch = std::mem::take(&mut changes);
                let ft = fulltext.clone();
                tokio::task::spawn_blocking(move || ft.apply(batch)).await??;
            }
        }
        tx.commit().await?;
    }
    if !changes.is_empty() {
        tokio::task::spawn_blocking(move || fulltext.apply(changes)).await??;
    }
    Ok(count)
}

/// Keeps the index in step for as long as the process runs.
pub fn spawn_sync(state: AppState) {
    tokio::spawn(async move {
        let mut events = BroadcastStream::new(state.events.subscribe());
        let changed = state.knowledge.index_changed.clone();
        loop {
            if state.db.pool().is_closed() {
                break;
            }
            match sync(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(sources = n, "full-text index updated"),
                Err(err) => tracing::warn!(error = %err, "full-text index sync failed"),
            }
            let wait_for_event = async {
                while let Some(event) = events.next().await {
                    // A lagged receiver may have missed a change: sync to be sure.
                    match event {
                        Ok(e) if matches!(e.kind, EventKind::KnowledgeSourceUpdated { .. }) => {
                            break
                        }
                        Err(_) => break,
                        Ok(_) => continue,
                    }
                }
            };
            tokio::select! {
                _ = changed.notified() => {}
                _ = wait_for_event => {}
                _ = tokio::time::sleep(RESYNC_EVERY) => {}
            }
        }
    });
}

/// A passage found by a search.
#[derive(Clone)]
pub struct Hit {
    pub score: f32,
    pub row: HitRow,
}

/// Which rankings a search uses (the evaluation compares them; the API uses both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Keywords,
    Vectors,
    Hybrid,
}

pub struct Timings {
    pub keywords: Duration,
    pub embed: Duration,
    pub vectors: Duration,
}

/// Hybrid search in one knowledge base: BM25 from the full-text index and cosine
/// similarity from pgvector, fused by reciprocal rank.
pub async fn search(
    state: &AppState,
    company_id: Uuid,
    base_id: Uuid,
    query: &str,
    limit: usize,
    mode: Mode,
) -> ApiResult<(Vec<Hit>, Timings)> {
    let knowledge = &state.knowledge;
    let search_started = Instant::now();
    let mut timings = Timings {
        keywords: Duration::ZERO,
        embed: Duration::ZERO,
        vectors: Duration::ZERO,
    };
    let query = query.trim();
    // The query's vector is computed while the keyword ranking runs and its passages are
    // fetched (it is most of a search's time with the local model).
    let embedding = (mode != Mode::Keywords && !query.is_empty() && limit > 0).then(|| {
        let embedder = knowledge.embedder.clone();
        let text = query.to_string();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = embedder.embed(vec![text]).await;
            (result, started.elapsed())
        })
    });
    // The vector query's settings come with the transaction's begin statement.
    let mut tx = if embedding.is_some() {
        state
            .db
            .tenant_with(company_id, store::NEAREST_SETTINGS)
            .await?
    } else {
        state.db.tenant(company_id).await?
    };
    if query.is_empty() || limit == 0 {
        base_exists(&mut tx, base_id).await?;
        return Ok((Vec::new(), timings));
    }
    let mut rankings: Vec<Vec<Uuid>> = Vec::new();
    let mut rows: HashMap<Uuid, HitRow> = HashMap::new();
    if mode != Mode::Vectors {
        let started = Instant::now();
        let keyword_hits = match knowledge
            .fulltext
            .search(company_id, base_id, query, CANDIDATES)
        {
            Ok(hits) => hits,
            Err(e) => {
                base_exists(&mut tx, base_id).await?;
                return Err(ApiError::internal("full-text search failed", e));
            }
        };
        timings.keywords = started.elapsed();
        let ids: Vec<Uuid> = keyword_hits.into_iter().map(|h| h.0).collect();
        // The index can briefly hold passages a newer generation replaced: only those
        // PostgreSQL still has as active come back, and only they are ranked.
        if !ids.is_empty() {
            rows.extend(
                store::hits(&mut tx, base_id, &ids)
                    .await?
                    .into_iter()
                    .map(|r| (r.id, r)),
            );
        }
        rankings.push(ids.into_iter().filter(|id| rows.contains_key(id)).collect());
    }
    let prepared_at = search_started.elapsed();
    if let Some(embedding) = embedding {
        let (embedded, took) = embedding.await.unwrap_or_else(|e| {
            let err = obrol_knowledge::embed::EmbedError::Compute(format!(
                "the embedding task failed ({e})"
            ));
            (Err(err), Duration::ZERO)
        });
        timings.embed = took;
        match embedded.map(|mut v| v.pop()) {
            Ok(Some(vector)) => {
                let started = Instant::now();
                let nearest = store::nearest(
                    &mut tx,
                    base_id,
                    &vector,
                    knowledge.embedder.model(),
                    CANDIDATES as i64,
                )
                .await?;
                timings.vectors = started.elapsed();
                rankings.push(nearest.iter().map(|r| r.id).collect());
                rows.extend(nearest.into_iter().map(|r| (r.id, r)));
            }
            // Keywords still answer when the embedder cannot (an endpoint outage).
            Ok(None) => {}
            Err(err) if mode == Mode::Hybrid => {
                tracing::warn!(error = %err, "query not embedded; keyword results only");
            }
            Err(err) => {
                base_exists(&mut tx, base_id).await?;
                return Err(ApiError::internal("query embedding failed", err));
            }
        }
    }
    // Passages found under row-level security show that the knowledge base is this
    // company's; with none, whether it exists decides between no hits and "not found".
    if rows.is_empty() {
        base_exists(&mut tx, base_id).await?;
    }
    // Read only: dropping the transaction rolls it back when the connection goes back to
    // the pool, so the answer does not wait for a commit.
    drop(tx);
    let queried_at = search_started.elapsed();
    let hits = reciprocal_rank_fusion(&rankings, K)
        .into_iter()
        .take(limit)
        .filter_map(|(id, score)| rows.remove(&id).map(|row| Hit { score, row }))
        .collect();
    tracing::debug!(
        keywords_us = timings.keywords.as_micros() as u64,
        embed_us = timings.embed.as_micros() as u64,
        vectors_us = timings.vectors.as_micros() as u64,
        prepared_at_us = prepared_at.as_micros() as u64,
        queried_at_us = queried_at.as_micros() as u64,
        total_us = search_started.elapsed().as_micros() as u64,
        "knowledge search"
    );
    Ok((hits, timings))
}

/// `NOT_FOUND` unless the knowledge base is the transaction's company's. A search asks only
/// when it has no passages to show for it, or is about to report a failure.
async fn base_exists(tx: &mut TenantTx, base_id: Uuid) -> ApiResult<()> {
    store::base(tx, base_id)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("knowledge base"))
}

/// Empties the index and rebuilds it from PostgreSQL.
pub async fn rebuild(state: &AppState) -> anyhow::Result<usize> {
    let fulltext: Arc<_> = state.knowledge.fulltext.clone();
    tokio::task::spawn_blocking(move || fulltext.clear()).await??;
    sync(state).await
}
