//! GraphQL for teams.

use async_graphql::{Context, InputObject, Object, ID};
use chrono::{DateTime, Utc};

use super::store::TeamRow;
use crate::auth::{ApiScope, Role};
use crate::error::{ApiError, ApiResult};
use crate::graphql::connection::{self, CountedConnection};
use crate::graphql::loaders::MembersOfTeam;
use crate::graphql::{actor, loader, parse_id, require_for_field, state, to_id};
use crate::users::graphql::User;

/// A group of users (Sales, Support, ...) that conversations can be routed to.
pub struct Team(pub TeamRow);

#[Object]
impl Team {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Members in the order they joined.
    #[graphql(
        complexity = "crate::graphql::list_cost(crate::graphql::NESTED_LIST_FACTOR, child_complexity)"
    )]
    async fn members(&self, ctx: &Context<'_>) -> ApiResult<Vec<User>> {
        require_for_field(ctx, Role::Staff, ApiScope::UsersRead)?;
        let members = loader(ctx)?
            .load_one(MembersOfTeam(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(members.into_iter().map(User).collect())
    }
}

#[derive(InputObject)]
pub struct CreateTeamInput {
    pub name: String,
}

#[derive(Default)]
pub struct TeamsQuery;

#[Object]
impl TeamsQuery {
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    async fn teams(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<CountedConnection<Team>> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::TeamsRead)?;
        let request = connection::page_request(first, after)?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let rows = super::store::page(&mut tx, request.after, request.fetch()).await?;
        let total = super::store::count(&mut tx).await?;
        tx.commit().await?;
        Ok(connection::connection(
            rows,
            request,
            total,
            |row| row.id,
            Team,
        ))
    }

    async fn team(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Team> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::TeamsRead)?;
        let id = parse_id(&id, "team")?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let row = super::store::by_id(&mut tx, id).await?;
        tx.commit().await?;
        row.map(Team).ok_or_else(|| ApiError::not_found("team"))
    }
}

#[derive(Default)]
pub struct TeamsMutation;

#[Object]
impl TeamsMutation {
    async fn create_team(&self, ctx: &Context<'_>, input: CreateTeamInput) -> ApiResult<Team> {
        Ok(Team(
            super::create(state(ctx), actor(ctx)?, &input.name).await?,
        ))
    }

    async fn add_team_member(
        &self,
        ctx: &Context<'_>,
        team_id: ID,
        user_id: ID,
    ) -> ApiResult<Team> {
        let (team_id, user_id) = (parse_id(&team_id, "team")?, parse_id(&user_id, "user")?);
        Ok(Team(
            super::add_member(state(ctx), actor(ctx)?, team_id, user_id).await?,
        ))
    }

    async fn remove_team_member(
        &self,
        ctx: &Context<'_>,
        team_id: ID,
        user_id: ID,
    ) -> ApiResult<Team> {
        let (team_id, user_id) = (parse_id(&team_id, "team")?, parse_id(&user_id, "user")?);
        Ok(Team(
            super::remove_member(state(ctx), actor(ctx)?, team_id, user_id).await?,
        ))
    }
}
