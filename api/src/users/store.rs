//! SQL for users. Every function takes a connection inside a tenant transaction.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// The columns of a user that the API shows; `two_factor_enabled` is derived, the sealed
/// secret itself never leaves the database layer.
macro_rules! user_columns {
    () => {
        "id, company_id, email, name, role, status, presence, \
         totp_secret_sealed is not null as two_factor_enabled, created_at"
    };
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct UserRow {
    pub id: Uuid,
    pub company_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub status: String,
    pub presence: String,
    pub two_factor_enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    #[cfg(test)]
    pub fn example(role: crate::auth::Role) -> Self {
        Self {
            id: Uuid::nil(),
            company_id: Uuid::nil(),
            email: "someone@example.com".into(),
            name: "Someone".into(),
            role: role.as_db().into(),
            status: "ACTIVE".into(),
            presence: "OFFLINE".into(),
            two_factor_enabled: false,
            created_at: Utc::now(),
        }
    }
}

pub struct NewUser<'a> {
    pub company_id: Uuid,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: Option<&'a str>,
    pub role: &'a str,
    pub status: &'a str,
}

pub async fn insert(conn: &mut PgConnection, user: NewUser<'_>) -> sqlx::Result<UserRow> {
    sqlx::query_as(concat!(
        "insert into users (id, company_id, email, name, password_hash, role, status)
         values ($1, $2, $3, $4, $5, $6, $7) returning ",
        user_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(user.company_id)
    .bind(user.email)
    .bind(user.name)
    .bind(user.password_hash)
    .bind(user.role)
    .bind(user.status)
    .fetch_one(conn)
    .await
}

pub async fn by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(concat!(
        "select ",
        user_columns!(),
        " from users where id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn by_ids(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(concat!(
        "select ",
        user_columns!(),
        " from users where id = any($1)"
    ))
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// One page of the company's users in creation order (ids are UUIDv7, so id order).
pub async fn page(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(concat!(
        "select ",
        user_columns!(),
        " from users where ($1::uuid is null or id > $1) order by id limit $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from users")
        .fetch_one(conn)
        .await
}

pub async fn active_admin_count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from users where role = 'ADMIN' and status = 'ACTIVE'")
        .fetch_one(conn)
        .await
}

/// Serialises changes to who the company's Admins are (role changes, deactivations): two
/// Admins demoting each other at once must not leave the company with none. Locks the
/// company's row until the transaction ends.
pub async fn lock_roster(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("select 1 from companies where id = app_company_id() for update")
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks the user's row for the rest of the transaction and returns it.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(concat!(
        "select ",
        user_columns!(),
        " from users where id = $1 for update"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn set_role(conn: &mut PgConnection, id: Uuid, role: &str) -> sqlx::Result<UserRow> {
    sqlx::query_as(concat!(
        "update users set role = $2, updated_at = now() where id = $1 returning ",
        user_columns!()
    ))
    .bind(id)
    .bind(role)
    .fetch_one(conn)
    .await
}

pub async fn set_status(conn: &mut PgConnection, id: Uuid, status: &str) -> sqlx::Result<UserRow> {
    sqlx::query_as(concat!(
        "update users set status = $2, updated_at = now() where id = $1 returning ",
        user_columns!()
    ))
    .bind(id)
    .bind(status)
    .fetch_one(conn)
    .await
}

pub async fn set_presence(
    conn: &mut PgConnection,
    id: Uuid,
    presence: &str,
) -> sqlx::Result<UserRow> {
    sqlx::query_as(concat!(
        "update users set presence = $2, updated_at = now() where id = $1 returning ",
        user_columns!()
    ))
    .bind(id)
    .bind(presence)
    .fetch_one(conn)
    .await
}

/// Sets the password of an invited user and makes the account active; `None` when the user
/// is no longer invited (e.g. deactivated while the invitation was being accepted).
pub async fn activate_with_password(
    conn: &mut PgConnection,
    id: Uuid,
    password_hash: &str,
    name: Option<&str>,
) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(concat!(
        "update users set password_hash = $2, name = coalesce($3, name), status = 'ACTIVE',
                updated_at = now()
         where id = $1 and status = 'INVITED' returning ",
        user_columns!()
    ))
    .bind(id)
    .bind(password_hash)
    .bind(name)
    .fetch_optional(conn)
    .await
}

pub async fn password_hash(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select password_hash from users where id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
}

pub async fn insert_invite(
    conn: &mut PgConnection,
    company_id: Uuid,
    user_id: Uuid,
    token_hash: &[u8],
    invited_by: Uuid,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into invites (id, company_id, user_id, token_hash, invited_by, expires_at)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(company_id)
    .bind(user_id)
    .bind(token_hash)
    .bind(invited_by)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a user's open invitations (when they are deactivated before accepting).
pub async fn void_open_invites(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "update invites set expires_at = least(expires_at, now())
         where user_id = $1 and accepted_at is null",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks an open invitation accepted and returns its user, or `None` if it is not open.
pub async fn accept_invite(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "update invites i set accepted_at = now()
         from users u
         where i.token_hash = $1 and i.accepted_at is null and i.expires_at > now()
           and u.id = i.user_id and u.status = 'INVITED'
         returning i.user_id",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}
