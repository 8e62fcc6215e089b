//! SQL for audit events.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Entry;

pub async fn insert(
    conn: &mut PgConnection,
    company_id: Uuid,
    actor_user_id: Option<Uuid>,
    actor_api_key_id: Option<Uuid>,
    entry: &Entry<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into audit_events
             (id, company_id, actor_user_id, actor_api_key_id, action, target_type, target_id, details)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(company_id)
    .bind(actor_user_id)
    .bind(actor_api_key_id)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(&entry.details)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct AuditRow {
    pub id: Uuid,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<Uuid>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Newest first; `before` is the id of the last event of the previous page.
pub async fn page(
    conn: &mut PgConnection,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as(
        "select id, actor_user_id, actor_api_key_id, action, target_type, target_id, details,
                created_at
         from audit_events where ($1::uuid is null or id < $1) order by id desc limit $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from audit_events")
        .fetch_one(conn)
        .await
}
