//! The audit log: an append-only record of sensitive actions (log-ins, role changes, API key
//! creation, settings changes, ...), readable by Admins. The table grants the application
//! role only `insert` and `select`, so no code path can rewrite history.

pub mod graphql;
pub mod store;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Actor;

/// What happened, to what.
pub struct Entry<'a> {
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<Uuid>,
    pub details: serde_json::Value,
}

impl<'a> Entry<'a> {
    pub fn new(action: &'a str) -> Self {
        Self {
            action,
            target_type: None,
            target_id: None,
            details: serde_json::json!({}),
        }
    }

    pub fn target(mut self, target_type: &'a str, target_id: Uuid) -> Self {
        self.target_type = Some(target_type);
        self.target_id = Some(target_id);
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Records `entry` as done by `actor`, in the caller's transaction.
pub async fn record(conn: &mut PgConnection, actor: &Actor, entry: Entry<'_>) -> sqlx::Result<()> {
    store::insert(
        conn,
        actor.company_id,
        Some(actor.user_id()),
        actor.api_key_id(),
        &entry,
    )
    .await
}

/// Records `entry` as done by `user_id` (for steps before there is an actor, such as log-in).
pub async fn record_for_user(
    conn: &mut PgConnection,
    company_id: Uuid,
    user_id: Uuid,
    entry: Entry<'_>,
) -> sqlx::Result<()> {
    store::insert(conn, company_id, Some(user_id), None, &entry).await
}
