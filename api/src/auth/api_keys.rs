//! API keys for integrations: shown once at creation, stored as a hash, limited to scopes,
//! acting with the role of the Admin who created them, revocable.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{tokens, Actor, ApiScope, Role};
use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::error::{ApiError, ApiResult};

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn create(
    state: &AppState,
    actor: &Actor,
    name: &str,
    scopes: &[ApiScope],
) -> ApiResult<(String, ApiKeyRow)> {
    actor.require_session()?;
    actor.require(Role::Admin, ApiScope::SettingsWrite)?;
    let name = crate::users::normalize_name(name, "API key name", 100)?;
    if scopes.is_empty() {
        return Err(ApiError::validation("give the API key at least one scope"));
    }
    let mut scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    scope_names.sort();
    scope_names.dedup();
    let (key, key_hash) = tokens::generate(tokens::API_KEY_PREFIX);
    let prefix: String = key.chars().take(10).collect();
    let mut tx = state.db.tenant(actor.company_id).await?;
    let row: ApiKeyRow = sqlx::query_as(
        "insert into api_keys (id, company_id, created_by, name, prefix, key_hash, scopes)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, name, prefix, scopes, created_by, created_at, last_used_at, revoked_at",
    )
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(actor.user_id())
    .bind(&name)
    .bind(&prefix)
    .bind(&key_hash)
    .bind(&scope_names)
    .fetch_one(&mut *tx)
    .await?;
    let entry = Entry::new("API_KEY_CREATED")
        .target("api_key", row.id)
        .details(serde_json::json!({ "name": name, "scopes": scope_names }));
    audit::record(&mut tx, actor, entry).await?;
    tx.commit().await?;
    Ok((key, row))
}

pub async fn list(state: &AppState, actor: &Actor) -> ApiResult<Vec<ApiKeyRow>> {
    actor.require(Role::Admin, ApiScope::SettingsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(
        "select id, name, prefix, scopes, created_by, created_at, last_used_at, revoked_at
         from api_keys order by created_at desc",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn revoke(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<ApiKeyRow> {
    actor.require_session()?;
    actor.require(Role::Admin, ApiScope::SettingsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let row: Option<ApiKeyRow> = sqlx::query_as(
        "update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1
         returning id, name, prefix, scopes, created_by, created_at, last_used_at, revoked_at",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found("API key"))?;
    state.credentials.forget_user(row.created_by);
    audit::record(
        &mut tx,
        actor,
        Entry::new("API_KEY_REVOKED").target("api_key", id),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}
