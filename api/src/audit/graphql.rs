//! GraphQL for the audit log (Admins only).

use async_graphql::{Context, Json, Object, ID};
use chrono::{DateTime, Utc};

use super::store::{self, AuditRow};
use crate::auth::{ApiScope, Role};
use crate::error::ApiResult;
use crate::graphql::connection::{self, CountedConnection};
use crate::graphql::loaders::UserById;
use crate::graphql::{actor, loader, require_for_field, state, to_id};
use crate::users::graphql::User;

/// A sensitive action: who did what, to what, when.
pub struct AuditEvent(pub AuditRow);

#[Object]
impl AuditEvent {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    /// e.g. LOGIN, LOGIN_FAILED, ROLE_CHANGED, API_KEY_CREATED, SETTINGS_UPDATED.
    async fn action(&self) -> &str {
        &self.0.action
    }

    async fn target_type(&self) -> Option<&str> {
        self.0.target_type.as_deref()
    }

    async fn target_id(&self) -> Option<ID> {
        self.0.target_id.map(to_id)
    }

    /// Action-specific facts, e.g. a role change's `from` and `to`.
    async fn details(&self) -> Json<serde_json::Value> {
        Json(self.0.details.clone())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The user who acted (for an API key, its creator).
    async fn actor(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        require_for_field(ctx, Role::Staff, ApiScope::UsersRead)?;
        let Some(user_id) = self.0.actor_user_id else {
            return Ok(None);
        };
        Ok(loader(ctx)?.load_one(UserById(user_id)).await?.map(User))
    }

    /// The API key used, when the action came through one.
    async fn api_key_id(&self) -> Option<ID> {
        self.0.actor_api_key_id.map(to_id)
    }
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit log, newest first.
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<CountedConnection<AuditEvent>> {
        let actor = actor(ctx)?;
        actor.require(Role::Admin, ApiScope::AuditRead)?;
        let request = connection::page_request(first, after)?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let rows = store::page(&mut tx, request.after, request.fetch()).await?;
        let total = store::count(&mut tx).await?;
        tx.commit().await?;
        Ok(connection::connection(
            rows,
            request,
            total,
            |row| row.id,
            AuditEvent,
        ))
    }
}
