//! SQL for teams and their members.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::users::store::UserRow;

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct TeamRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(
    conn: &mut PgConnection,
    company_id: Uuid,
    name: &str,
) -> sqlx::Result<TeamRow> {
    sqlx::query_as(
        "insert into teams (id, company_id, name) values ($1, $2, $3)
         returning id, name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(company_id)
    .bind(name)
    .fetch_one(conn)
    .await
}

pub async fn by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<TeamRow>> {
    sqlx::query_as("select id, name, created_at from teams where id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn page(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<TeamRow>> {
    sqlx::query_as(
        "select id, name, created_at from teams where ($1::uuid is null or id > $1)
         order by id limit $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from teams")
        .fetch_one(conn)
        .await
}

/// Adds a member; adding someone already in the team changes nothing.
pub async fn add_member(
    conn: &mut PgConnection,
    company_id: Uuid,
    team_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "insert into team_members (company_id, team_id, user_id) values ($1, $2, $3)
         on conflict do nothing",
    )
    .bind(company_id)
    .bind(team_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove_member(
    conn: &mut PgConnection,
    team_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query("delete from team_members where team_id = $1 and user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn is_member(
    conn: &mut PgConnection,
    team_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from team_members where team_id = $1 and user_id = $2)",
    )
    .bind(team_id)
    .bind(user_id)
    .fetch_one(conn)
    .await
}

#[derive(sqlx::FromRow)]
pub struct Membership<T> {
    pub key: Uuid,
    #[sqlx(flatten)]
    pub row: T,
}

/// Members of each of `team_ids`, in the order they joined.
pub async fn members_of(
    conn: &mut PgConnection,
    team_ids: &[Uuid],
) -> sqlx::Result<Vec<Membership<UserRow>>> {
    sqlx::query_as(
        "select m.team_id as key, u.id, u.company_id, u.email, u.name, u.role, u.status,
                u.presence, u.totp_secret_sealed is not null as two_factor_enabled, u.created_at
         from team_members m join users u on u.id = m.user_id
         where m.team_id = any($1) order by m.created_at, u.id",
    )
    .bind(team_ids)
    .fetch_all(conn)
    .await
}

/// Teams of each of `user_ids`, by name.
pub async fn teams_of(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
) -> sqlx::Result<Vec<Membership<TeamRow>>> {
    sqlx::query_as(
        "select m.user_id as key, t.id, t.name, t.created_at
         from team_members m join teams t on t.id = m.team_id
         where m.user_id = any($1) order by t.name",
    )
    .bind(user_ids)
    .fetch_all(conn)
    .await
}

pub async fn by_ids(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<TeamRow>> {
    sqlx::query_as("select id, name, created_at from teams where id = any($1)")
        .bind(ids)
        .fetch_all(conn)
        .await
}
