//! SQL for credentials: the pre-tenant look-ups (through the SECURITY DEFINER functions of the
//! foundation migration) and the tenant-scoped writes of sessions, API keys, invitations and
//! recovery codes.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::Db;
use crate::users::store::UserRow;

pub struct SessionLookup {
    pub session_id: Uuid,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user: UserRow,
}

pub struct ApiKeyLookup {
    pub api_key_id: Uuid,
    pub scopes: Vec<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub user: UserRow,
}

pub async fn session_by_hash(pool: &PgPool, hash: &[u8]) -> sqlx::Result<Option<SessionLookup>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        session_id: Uuid,
        session_last_used_at: DateTime<Utc>,
        session_expires_at: DateTime<Utc>,
        #[sqlx(flatten)]
        user: UserRow,
    }
    let row: Option<Row> = sqlx::query_as("select * from auth_session($1)")
        .bind(hash)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| SessionLookup {
        session_id: r.session_id,
        last_used_at: r.session_last_used_at,
        expires_at: r.session_expires_at,
        user: r.user,
    }))
}

pub async fn api_key_by_hash(pool: &PgPool, hash: &[u8]) -> sqlx::Result<Option<ApiKeyLookup>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        api_key_id: Uuid,
        scopes: Vec<String>,
        api_key_last_used_at: Option<DateTime<Utc>>,
        #[sqlx(flatten)]
        user: UserRow,
    }
    let row: Option<Row> = sqlx::query_as("select * from auth_api_key($1)")
        .bind(hash)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| ApiKeyLookup {
        api_key_id: r.api_key_id,
        scopes: r.scopes,
        last_used_at: r.api_key_last_used_at,
        user: r.user,
    }))
}

pub async fn touch_session(db: &Db, company_id: Uuid, session_id: Uuid) -> sqlx::Result<()> {
    let mut tx = db.tenant(company_id).await?;
    sqlx::query("update sessions set last_used_at = now() where id = $1")
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

pub async fn touch_api_key(db: &Db, company_id: Uuid, api_key_id: Uuid) -> sqlx::Result<()> {
    let mut tx = db.tenant(company_id).await?;
    sqlx::query("update api_keys set last_used_at = now() where id = $1")
        .bind(api_key_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The company of the account with this e-mail, if any (before any tenant is known).
pub async fn login_company(pool: &PgPool, email: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("select auth_login_company($1)")
        .bind(email)
        .fetch_one(pool)
        .await
}

pub async fn email_taken(pool: &PgPool, email: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("select auth_email_taken($1)")
        .bind(email)
        .fetch_one(pool)
        .await
}

pub async fn invite_company(pool: &PgPool, token_hash: &[u8]) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("select auth_invite_company($1)")
        .bind(token_hash)
        .fetch_one(pool)
        .await
}

/// What logging in needs to know about an account.
#[derive(sqlx::FromRow)]
pub struct LoginAccount {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: Option<String>,
    pub totp_secret_sealed: Option<Vec<u8>>,
    pub totp_last_step: Option<i64>,
    pub failed_logins: i32,
    pub locked_until: Option<DateTime<Utc>>,
}

pub async fn login_account(
    conn: &mut PgConnection,
    email: &str,
) -> sqlx::Result<Option<LoginAccount>> {
    sqlx::query_as(
        "select id, company_id, email, name, role, status, presence,
                totp_secret_sealed is not null as two_factor_enabled, created_at,
                password_hash, totp_secret_sealed, totp_last_step, failed_logins, locked_until
         from users where email = $1 for update",
    )
    .bind(email)
    .fetch_optional(conn)
    .await
}

pub async fn record_failed_login(
    conn: &mut PgConnection,
    user_id: Uuid,
    failed_logins: i32,
    locked_until: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query("update users set failed_logins = $2, locked_until = $3 where id = $1")
        .bind(user_id)
        .bind(failed_logins)
        .bind(locked_until)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn record_successful_login(
    conn: &mut PgConnection,
    user_id: Uuid,
    totp_step: Option<i64>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update users set failed_logins = 0, locked_until = null,
                totp_last_step = coalesce($2, totp_last_step)
         where id = $1",
    )
    .bind(user_id)
    .bind(totp_step)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_session(
    conn: &mut PgConnection,
    company_id: Uuid,
    user_id: Uuid,
    token_hash: &[u8],
    user_agent: Option<&str>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into sessions (id, company_id, user_id, token_hash, user_agent, expires_at)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(company_id)
    .bind(user_id)
    .bind(token_hash)
    .bind(user_agent)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(id)
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The user's sessions that still work, newest first.
pub async fn active_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> sqlx::Result<Vec<SessionRow>> {
    sqlx::query_as(
        "select id, user_id, user_agent, created_at, last_used_at, expires_at from sessions
         where user_id = $1 and revoked_at is null and expires_at > now()
         order by created_at desc",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// Revokes one session; `owner` limits it to that user's sessions. Returns the session's
/// user, or `None` when there is no such session.
pub async fn revoke_session(
    conn: &mut PgConnection,
    session_id: Uuid,
    owner: Option<Uuid>,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "update sessions set revoked_at = coalesce(revoked_at, now())
         where id = $1 and ($2::uuid is null or user_id = $2)
         returning user_id",
    )
    .bind(session_id)
    .bind(owner)
    .fetch_optional(conn)
    .await
}

pub async fn revoke_all_sessions(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("update sessions set revoked_at = now() where user_id = $1 and revoked_at is null")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every API key `user_id` created (when that user is deactivated).
pub async fn revoke_api_keys_of(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "update api_keys set revoked_at = now() where created_by = $1 and revoked_at is null",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}
