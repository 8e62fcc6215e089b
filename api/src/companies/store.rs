//! SQL for companies (tenants) and their settings.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct CompanyRow {
    pub id: Uuid,
    pub name: String,
    pub timezone: String,
    pub working_hours: serde_json::Value,
    pub plan: String,
    pub staff_see_all: bool,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, id: Uuid, name: &str) -> sqlx::Result<CompanyRow> {
    sqlx::query_as(
        "insert into companies (id, name) values ($1, $2)
         returning id, name, timezone, working_hours, plan, staff_see_all, created_at",
    )
    .bind(id)
    .bind(name)
    .fetch_one(conn)
    .await
}

/// The company of the current tenant transaction.
pub async fn current(conn: &mut PgConnection) -> sqlx::Result<CompanyRow> {
    sqlx::query_as(
        "select id, name, timezone, working_hours, plan, staff_see_all, created_at
         from companies where id = app_company_id()",
    )
    .fetch_one(conn)
    .await
}

pub struct Settings<'a> {
    pub name: &'a str,
    pub timezone: &'a str,
    pub working_hours: &'a serde_json::Value,
    pub plan: &'a str,
    pub staff_see_all: bool,
}

pub async fn update(conn: &mut PgConnection, settings: Settings<'_>) -> sqlx::Result<CompanyRow> {
    sqlx::query_as(
        "update companies set name = $1, timezone = $2, working_hours = $3, plan = $4,
                staff_see_all = $5, updated_at = now()
         where id = app_company_id()
         returning id, name, timezone, working_hours, plan, staff_see_all, created_at",
    )
    .bind(settings.name)
    .bind(settings.timezone)
    .bind(settings.working_hours)
    .bind(settings.plan)
    .bind(settings.staff_see_all)
    .fetch_one(conn)
    .await
}
