//! Database access: the pool the application uses, tenant transactions, migrations.
//!
//! Every pooled connection runs `set role obrol_app`, a role that cannot bypass row-level
//! security, so whatever a query forgets, PostgreSQL still filters by company. Tenant data is
//! only ever read or written inside [`Db::tenant`], which opens a transaction and sets
//! `app.company_id` for exactly that transaction.

pub mod embedded;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The embedded migrations (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A transaction scoped to one company by row-level security.
pub type TenantTx = Transaction<'static, Postgres>;

#[derive(Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Opens the application pool. Connections act as `obrol_app` (see the module docs).
    pub async fn connect(options: PgConnectOptions, max_connections: u32) -> sqlx::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            // A connection is tested when it comes back to the pool (sqlx pings it then); a
            // ping before every use as well would be a round trip on every request. Only a
            // connection idle for a second or more is pinged before use: a database restart
            // takes longer than that, so after one every connection is checked before use,
            // while under load connections are reused within milliseconds.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("set role obrol_app").await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// The pool, for statements that are not tenant data: health checks, LISTEN, and the
    /// narrow authentication functions that run before the company is known.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins a transaction in which row-level security shows only `company_id`'s rows.
    pub async fn tenant(&self, company_id: Uuid) -> sqlx::Result<TenantTx> {
        self.tenant_with(company_id, &[]).await
    }

    /// As [`Db::tenant`], with `settings` (names and values written in the code, never
    /// input) set for the transaction as well. One round trip: the begin statement sets
    /// them all.
    pub async fn tenant_with(
        &self,
        company_id: Uuid,
        settings: &[(&'static str, &'static str)],
    ) -> sqlx::Result<TenantTx> {
        // A Uuid prints as hexadecimal digits and hyphens only, so it is safe in the text.
        let mut begin = format!("select set_config('app.company_id', '{company_id}', true)");
        for (name, value) in settings {
            debug_assert!(!name.contains('\'') && !value.contains('\''));
            begin.push_str(&format!(", set_config('{name}', '{value}', true)"));
        }
        // The settings come first, in the implicit transaction of this one message, which
        // `begin` then turns into the transaction block, settings included. Should they
        // fail, the message stops there and the connection is left outside any transaction
        // (with `begin` first, it would be left in an aborted one and go back to the pool
        // like that).
        begin.push_str("; begin");
        self.pool.begin_with(begin).await
    }
}

/// How long a pooled connection may sit unused before it is pinged before its next use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Applies pending migrations as the connecting (owner) role, not as `obrol_app`.
pub async fn migrate(options: &PgConnectOptions) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(options).await?;
    MIGRATOR.run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}
