//! The GraphQL schema root and the helpers every resolver uses.
//!
//! Each feature contributes its own `…Query`, `…Mutation` (and `…Subscription`) objects from
//! its `graphql.rs`; they are merged here. Resolvers return `Result<T, ApiError>` so error
//! codes reach `extensions.code` (see `error.rs`).

pub mod connection;
pub mod loaders;
pub mod ws;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, MergedObject, MergedSubscription, Schema, SchemaBuilder, ID};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Actor, ApiScope, Auth, Role};
use crate::error::{ApiError, ApiResult};

#[derive(MergedObject, Default)]
pub struct Query(
    crate::users::graphql::UsersQuery,
    crate::teams::graphql::TeamsQuery,
    crate::companies::graphql::CompanyQuery,
    crate::auth::graphql::AuthQuery,
    crate::audit::graphql::AuditQuery,
    crate::knowledge::graphql::KnowledgeQuery,
    crate::contacts::graphql::ContactsQuery,
    crate::contacts::graphql::ContactImportQuery,
    crate::contacts::graphql::ContactRelatedQuery,
    crate::contacts::graphql::CustomObjectQuery,
    crate::channels::graphql::ChannelsQuery,
    crate::conversations::graphql::ConversationsQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    crate::auth::graphql::AuthMutation,
    crate::users::graphql::UsersMutation,
    crate::teams::graphql::TeamsMutation,
    crate::companies::graphql::CompanyMutation,
    crate::knowledge::graphql::KnowledgeMutation,
    crate::contacts::graphql::ContactsMutation,
    crate::contacts::graphql::ContactImportMutation,
    crate::contacts::graphql::ContactRelatedMutation,
    crate::contacts::graphql::CustomObjectMutation,
    crate::channels::graphql::ChannelsMutation,
    crate::conversations::graphql::ConversationsMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    crate::users::graphql::UsersSubscription,
    crate::knowledge::graphql::KnowledgeSubscription,
    crate::conversations::graphql::ConversationsSubscription,
);

pub type ObrolSchema = Schema<Query, Mutation, Subscription>;

/// Nesting deeper than this is refused before execution. Standard tools' introspection
/// query (GraphiQL's, graphql-js's `getIntrospectionQuery`) nests about 15 levels.
pub const MAX_DEPTH: usize = 20;
/// Each selected field costs 1, a page of a connection costs its `first` times its
/// selection, a nested list (a user's teams, a team's members) 10 times its selection; a
/// query costing more than this is refused before it runs.
pub const MAX_COMPLEXITY: usize = 10_000;
/// What a nested list (a user's teams, a team's members) multiplies its selection by.
pub const NESTED_LIST_FACTOR: usize = 10;

/// The cost of a list of `items` whose selection costs `child` each. Capped, so the sum the
/// validator adds up can never overflow, however absurd the query.
pub fn list_cost(items: usize, child: usize) -> usize {
    items
        .saturating_mul(child)
        .saturating_add(1)
        .min(MAX_COMPLEXITY * 1_000)
}

pub fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
}

pub fn build(state: AppState) -> ObrolSchema {
    builder().data(state).finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// Request facts resolvers may need (for session records).
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub user_agent: Option<String>,
}

pub fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

pub fn actor<'a>(ctx: &Context<'a>) -> ApiResult<&'a Actor> {
    match ctx.data_opt::<Auth>() {
        Some(auth) => auth.actor(),
        None => Auth::Anonymous.actor(),
    }
}

/// For fields of objects reachable from other operations (a user's company, a team's
/// members): the caller's role and API-key scope must allow what the field shows. Without
/// an actor the object came from `signUp`/`logIn`/`acceptInvite`, whose caller just proved
/// who they are, so the field is theirs to see.
pub fn require_for_field(ctx: &Context<'_>, min_role: Role, scope: ApiScope) -> ApiResult<()> {
    match ctx.data_opt::<Auth>() {
        Some(Auth::Actor(actor)) => actor.require(min_role, scope),
        Some(Auth::Rejected) => Auth::Rejected.actor().map(|_| ()),
        Some(Auth::Anonymous) | None => Ok(()),
    }
}

pub fn user_agent<'a>(ctx: &Context<'a>) -> Option<&'a str> {
    ctx.data_opt::<RequestMeta>()
        .and_then(|meta| meta.user_agent.as_deref())
}

/// Parses a GraphQL `ID` that should name a `what`.
pub fn parse_id(id: &ID, what: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| ApiError::validation(format!("'{}' is not a valid {what} ID", id.as_str())))
}

/// The request's DataLoader (present whenever a caller is authenticated).
pub fn loader<'a>(ctx: &Context<'a>) -> ApiResult<&'a DataLoader<loaders::TenantLoader>> {
    actor(ctx)?;
    ctx.data_opt::<DataLoader<loaders::TenantLoader>>()
        .ok_or_else(|| ApiError::internal("resolving a field", "no DataLoader in the request"))
}

pub fn to_id(id: Uuid) -> ID {
    ID(id.to_string())
}

#[cfg(test)]
mod tests {
    /// The committed contract must be what the code serves; regenerate with
    /// `cargo run -p obrol-api -- schema > schema.graphql`.
    #[test]
    fn schema_graphql_matches_the_code() {
        let committed = include_str!("../../../schema.graphql");
        assert!(
            committed == super::sdl(),
            "schema.graphql is out of date: run `cargo run -p obrol-api -- schema > schema.graphql`"
        );
    }
}
