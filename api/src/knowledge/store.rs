//! SQL of knowledge bases, sources and passages. Every function runs in a tenant
//! transaction, so row-level security confines it to the caller's company.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct BaseRow {
    pub id: Uuid,
    pub company_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SourceRow {
    pub id: Uuid,
    pub company_id: Uuid,
    pub knowledge_base_id: Uuid,
    pub kind: String,
    pub name: String,
    pub url: Option<String>,
    pub format: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub byte_size: i64,
    pub page_count: i32,
    pub chunk_count: i32,
    pub embedded_count: i32,
    pub generation: i32,
    pub active_generation: Option<i32>,
    pub object_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SOURCE_COLUMNS: &str = "id, company_id, knowledge_base_id, kind, name, url, format, \
    status, error, byte_size, page_count, chunk_count, embedded_count, generation, \
    active_generation, object_key, created_at, updated_at";

pub async fn insert_base(
    conn: &mut PgConnection,
    company_id: Uuid,
    name: &str,
) -> sqlx::Result<BaseRow> {
    sqlx::query_as(
        "insert into knowledge_bases (id, company_id, name) values ($1, $2, $3) \
         returning id, company_id, name, created_at, updated_at",
    )
    .bind(Uuid::now_v7())
    .bind(company_id)
    .bind(name)
    .fetch_one(conn)
    .await
}

pub async fn base(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<BaseRow>> {
    sqlx::query_as(
        "select id, company_id, name, created_at, updated_at from knowledge_bases where id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Locks the knowledge base row, so that limit checks and inserts of concurrent uploads to
/// the same base happen one after the other.
pub async fn lock_base(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<BaseRow>> {
    sqlx::query_as(
        "select id, company_id, name, created_at, updated_at from knowledge_bases \
         where id = $1 for update",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn bases_page(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<BaseRow>> {
    sqlx::query_as(
        "select id, company_id, name, created_at, updated_at from knowledge_bases \
         where ($1::uuid is null or id > $1) order by id limit $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn count_bases(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from knowledge_bases")
        .fetch_one(conn)
        .await
}

pub async fn delete_base(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<String>> {
    let keys: Vec<Option<String>> =
        sqlx::query_scalar("select object_key from knowledge_sources where knowledge_base_id = $1")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    sqlx::query("delete from knowledge_bases where id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(keys.into_iter().flatten().collect())
}

/// Sources and bytes of a knowledge base, leaving out `except` (a source being replaced).
pub async fn usage(
    conn: &mut PgConnection,
    base_id: Uuid,
    except: Option<Uuid>,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "select count(*), coalesce(sum(byte_size), 0)::bigint from knowledge_sources \
         where knowledge_base_id = $1 and ($2::uuid is null or id <> $2)",
    )
    .bind(base_id)
    .bind(except)
    .fetch_one(conn)
    .await
}

pub struct NewSource<'a> {
    pub id: Uuid,
    pub company_id: Uuid,
    pub knowledge_base_id: Uuid,
    pub kind: &'a str,
    pub name: &'a str,
    pub url: Option<&'a str>,
    pub format: Option<&'a str>,
    pub byte_size: i64,
    pub page_count: i32,
    pub object_key: Option<&'a str>,
}

pub async fn insert_source(conn: &mut PgConnection, s: &NewSource<'_>) -> sqlx::Result<SourceRow> {
    sqlx::query_as(&format!(
        "insert into knowledge_sources (id, company_id, knowledge_base_id, kind, name, url, \
         format, status, byte_size, page_count, object_key) \
         values ($1, $2, $3, $4, $5, $6, $7, 'QUEUED', $8, $9, $10) returning {SOURCE_COLUMNS}"
    ))
    .bind(s.id)
    .bind(s.company_id)
    .bind(s.knowledge_base_id)
    .bind(s.kind)
    .bind(s.name)
    .bind(s.url)
    .bind(s.format)
    .bind(s.byte_size)
    .bind(s.page_count)
    .bind(s.object_key)
    .fetch_one(conn)
    .await
}

pub async fn source(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<SourceRow>> {
    sqlx::query_as(&format!(
        "select {SOURCE_COLUMNS} from knowledge_sources where id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn lock_source(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<SourceRow>> {
    sqlx::query_as(&format!(
        "select {SOURCE_COLUMNS} from knowledge_sources where id = $1 for update"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn sources_of(conn: &mut PgConnection, base_id: Uuid) -> sqlx::Result<Vec<SourceRow>> {
    sqlx::query_as(&format!(
        "select {SOURCE_COLUMNS} from knowledge_sources where knowledge_base_id = $1 order by id"
    ))
    .bind(base_id)
    .fetch_all(conn)
    .await
}

/// Starts a new generation of a source: QUEUED again, with new bytes when `object_key` and
/// `byte_size` are given. Active passages are left alone.
pub async fn new_generation(
    conn: &mut PgConnection,
    id: Uuid,
    name: Option<&str>,
    object_key: Option<&str>,
    byte_size: Option<i64>,
    page_count: Option<i32>,
    format: Option<&str>,
) -> sqlx::Result<SourceRow> {
    sqlx::query_as(&format!(
        "update knowledge_sources set generation = generation + 1, status = 'QUEUED', \
         error = null, name = coalesce($2, name), object_key = coalesce($3, object_key), \
         byte_size = coalesce($4, byte_size), page_count = coalesce($5, page_count), \
         format = coalesce($6, format), embedded_count = 0, updated_at = now() \
         where id = $1 returning {SOURCE_COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .bind(object_key)
    .bind(byte_size)
    .bind(page_count)
    .bind(format)
    .fetch_one(conn)
    .await
}

pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    error: Option<&str>,
) -> sqlx::Result<SourceRow> {
    sqlx::query_as(&format!(
        "update knowledge_sources set status = $2, error = $3, updated_at = now() \
         where id = $1 returning {SOURCE_COLUMNS}"
    ))
    .bind(id)
    .bind(status)
    .bind(error)
    .fetch_one(conn)
    .await
}

pub async fn set_fetched(
    conn: &mut PgConnection,
    id: Uuid,
    object_key: &str,
    byte_size: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "update knowledge_sources set object_key = $2, byte_size = $3, updated_at = now() \
         where id = $1",
    )
    .bind(id)
    .bind(object_key)
    .bind(byte_size)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_source(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<SourceRow>> {
    sqlx::query_as(&format!(
        "delete from knowledge_sources where id = $1 returning {SOURCE_COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Passages of one generation, in bulk.
pub async fn insert_chunks(
    conn: &mut PgConnection,
    source: &SourceRow,
    generation: i32,
    chunks: &[obrol_knowledge::chunk::Chunk],
) -> sqlx::Result<()> {
    sqlx::query(
        "delete from knowledge_chunks \
         where source_id = $1 and generation = $2 and knowledge_base_id = $3",
    )
    .bind(source.id)
    .bind(generation)
    .bind(source.knowledge_base_id)
    .execute(&mut *conn)
    .await?;
    for batch in chunks.chunks(500) {
        let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
        let positions: Vec<i32> = batch.iter().map(|c| c.position as i32).collect();
        let texts: Vec<&str> = batch.iter().map(|c| c.text.as_str()).collect();
        // Heading paths travel as JSON arrays: PostgreSQL has no array of arrays of
        // different lengths.
        let paths: Vec<String> = batch
            .iter()
            .map(|c| serde_json::to_string(&c.heading_path).unwrap_or_else(|_| "[]".into()))
            .collect();
        let starts: Vec<Option<i32>> = batch
            .iter()
            .map(|c| c.page_start.map(|p| p as i32))
            .collect();
        let ends: Vec<Option<i32>> = batch.iter().map(|c| c.page_end.map(|p| p as i32)).collect();
        sqlx::query(
            "insert into knowledge_chunks (id, company_id, knowledge_base_id, source_id, \
             generation, position, text, heading_path, page_start, page_end) \
             select u.id, $2, $3, $4, $5, u.position, u.text, \
                    array(select jsonb_array_elements_text(u.path::jsonb)), u.page_start, u.page_end \
             from unnest($1::uuid[], $6::int[], $7::text[], $8::text[], $9::int[], $10::int[]) \
                  as u(id, position, text, path, page_start, page_end)",
        )
        .bind(&ids)
        .bind(source.company_id)
        .bind(source.knowledge_base_id)
        .bind(source.id)
        .bind(generation)
        .bind(&positions)
        .bind(&texts)
        .bind(&paths)
        .bind(&starts)
        .bind(&ends)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn count_chunks(
    conn: &mut PgConnection,
    source_id: Uuid,
    generation: i32,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from knowledge_chunks where source_id = $1 and generation = $2",
    )
    .bind(source_id)
    .bind(generation)
    .fetch_one(conn)
    .await
}

#[derive(sqlx::FromRow)]
pub struct PendingChunk {
    pub id: Uuid,
    pub text: String,
    pub heading_path: Vec<String>,
}

pub async fn unembedded(
    conn: &mut PgConnection,
    source_id: Uuid,
    generation: i32,
    model: &str,
    limit: i64,
) -> sqlx::Result<Vec<PendingChunk>> {
    sqlx::query_as(
        "select id, text, heading_path from knowledge_chunks \
         where source_id = $1 and generation = $2 \
           and (embedding is null or embedding_model is distinct from $3) \
         order by position limit $4",
    )
    .bind(source_id)
    .bind(generation)
    .bind(model)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// pgvector's text form: `[0.1,0.2,...]`.
pub fn vector_literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 10 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

pub async fn store_embeddings(
    conn: &mut PgConnection,
    source: &SourceRow,
    ids: &[Uuid],
    vectors: &[Vec<f32>],
    model: &str,
) -> sqlx::Result<i32> {
    let literals: Vec<String> = vectors.iter().map(|v| vector_literal(v)).collect();
    // The knowledge base names the one partition that holds the passages.
    sqlx::query(
        "update knowledge_chunks c set embedding = u.v::vector, embedding_model = $3 \
         from unnest($1::uuid[], $2::text[]) as u(id, v) \
         where c.id = u.id and c.knowledge_base_id = $4",
    )
    .bind(ids)
    .bind(&literals)
    .bind(model)
    .bind(source.knowledge_base_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar(
        "update knowledge_sources s set embedded_count = (select count(*) from knowledge_chunks c \
           where c.knowledge_base_id = $2 and c.source_id = s.id and c.generation = s.generation \
             and c.embedding is not null), \
         updated_at = now() where s.id = $1 returning embedded_count",
    )
    .bind(source.id)
    .bind(source.knowledge_base_id)
    .fetch_one(conn)
    .await
}

#[derive(sqlx::FromRow)]
pub struct IndexedChunk {
    pub id: Uuid,
    pub text: String,
    pub heading_path: Vec<String>,
}

pub async fn chunks_of(
    conn: &mut PgConnection,
    source_id: Uuid,
    generation: i32,
) -> sqlx::Result<Vec<IndexedChunk>> {
    sqlx::query_as(
        "select id, text, heading_path from knowledge_chunks \
         where source_id = $1 and generation = $2 order by position",
    )
    .bind(source_id)
    .bind(generation)
    .fetch_all(conn)
    .await
}

/// The nearest passages of a knowledge base by cosine distance, active generations only,
/// with what a search shows of them (the columns of [`HitRow`]): $1 knowledge base, $2 query
/// vector, $3 embedding model, $4 how many.
///
/// The inner query has no join so that the planner can see the knowledge base's size: for
/// a large one it walks the HNSW index (iteratively, so the knowledge-base filter does not
/// starve the result), for a small one it reads its passages and sorts them. With the join
/// to `knowledge_sources` inside, the planner underestimated the rows (row-level security
/// and the join multiply their selectivities) and always sorted every passage of the
/// knowledge base: 0.4 s for 19,000. Passages of a generation that is not active (a
/// replacement being embedded) are dropped after the index scan, so the inner query asks
/// for a few more; while a source is being replaced, fewer than $4 may come back.
pub const NEAREST_SQL: &str = "select n.id, n.text, n.heading_path, n.page_start, n.source_id, \
            s.name as source_name from ( \
       select c.id, c.source_id, c.generation, c.text, c.heading_path, c.page_start, \
              c.embedding <=> $2::vector as distance \
       from knowledge_chunks c \
       where c.knowledge_base_id = $1 and c.embedding is not null and c.embedding_model = $3 \
       order by distance limit $4 + 10 \
     ) n join knowledge_sources s on s.id = n.source_id and s.active_generation = n.generation \
     order by n.distance limit $4";

/// Settings for `NEAREST_SQL`, for the whole transaction (a search sets them in its begin
/// statement, `Db::tenant_with`):
/// - a custom plan for every execution: a prepared statement's generic plan does not know
///   which knowledge base it is for, estimates an average one (a few hundred passages) and
///   sorts them all, which for a knowledge base of 19,000 took 0.4 s instead of 5 ms;
/// - iterative HNSW scans (pgvector 0.8), which keep going until enough passages pass the
///   knowledge-base filter, with a candidate list as long as the result (`ef_search`).
pub const NEAREST_SETTINGS: &[(&str, &str)] = &[
    ("plan_cache_mode", "force_custom_plan"),
    ("hnsw.iterative_scan", "relaxed_order"),
    ("hnsw.ef_search", "100"),
];

/// The nearest active passages of a knowledge base to `query` by cosine distance, nearest
/// first. The transaction must have [`NEAREST_SETTINGS`].
pub async fn nearest(
    conn: &mut PgConnection,
    base_id: Uuid,
    query: &[f32],
    model: &str,
    limit: i64,
) -> sqlx::Result<Vec<HitRow>> {
    sqlx::query_as(NEAREST_SQL)
        .bind(base_id)
        .bind(vector_literal(query))
        .bind(model)
        .bind(limit)
        .fetch_all(conn)
        .await
}

#[derive(sqlx::FromRow, Clone)]
pub struct HitRow {
    pub id: Uuid,
    pub text: String,
    pub heading_path: Vec<String>,
    pub page_start: Option<i32>,
    pub source_id: Uuid,
    pub source_name: String,
}

pub async fn hits(
    conn: &mut PgConnection,
    base_id: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<HitRow>> {
    sqlx::query_as(
        "select c.id, c.text, c.heading_path, c.page_start, c.source_id, s.name as source_name \
         from knowledge_chunks c \
         join knowledge_sources s on s.id = c.source_id and c.generation = s.active_generation \
         where c.id = any($1) and c.knowledge_base_id = $2",
    )
    .bind(ids)
    .bind(base_id)
    .fetch_all(conn)
    .await
}

/// Makes `generation` the searchable one and drops every other generation's passages.
pub async fn activate(
    conn: &mut PgConnection,
    source_id: Uuid,
    generation: i32,
) -> sqlx::Result<SourceRow> {
    sqlx::query("delete from knowledge_chunks where source_id = $1 and generation <> $2")
        .bind(source_id)
        .bind(generation)
        .execute(&mut *conn)
        .await?;
    sqlx::query_as(&format!(
        "update knowledge_sources set active_generation = $2, status = 'READY', error = null, \
         updated_at = now() where id = $1 returning {SOURCE_COLUMNS}"
    ))
    .bind(source_id)
    .bind(generation)
    .fetch_one(conn)
    .await
}

/// After extraction: counts, EMBEDDING, and (for a first ingestion) keyword-searchable.
pub async fn extracted(
    conn: &mut PgConnection,
    source_id: Uuid,
    generation: i32,
    pages: i32,
    chunks: i32,
    format: &str,
    warning: Option<&str>,
) -> sqlx::Result<SourceRow> {
    sqlx::query_as(&format!(
        "update knowledge_sources set status = 'EMBEDDING', page_count = $3, chunk_count = $4, \
         embedded_count = 0, format = $5, error = $6, \
         active_generation = coalesce(active_generation, $2), updated_at = now() \
         where id = $1 returning {SOURCE_COLUMNS}"
    ))
    .bind(source_id)
    .bind(generation)
    .bind(pages)
    .bind(chunks)
    .bind(format)
    .bind(warning)
    .fetch_one(conn)
    .await
}

/// Drops the passages of a generation that failed (never the active one).
pub async fn drop_generation(
    conn: &mut PgConnection,
    source_id: Uuid,
    generation: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "delete from knowledge_chunks c using knowledge_sources s \
         where c.source_id = $1 and c.generation = $2 and s.id = c.source_id \
           and s.active_generation is distinct from $2",
    )
    .bind(source_id)
    .bind(generation)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn sources_of_bases(
    conn: &mut PgConnection,
    base_ids: &[Uuid],
) -> sqlx::Result<Vec<SourceRow>> {
    sqlx::query_as(&format!(
        "select {SOURCE_COLUMNS} from knowledge_sources where knowledge_base_id = any($1) \
         order by id"
    ))
    .bind(base_ids)
    .fetch_all(conn)
    .await
}
