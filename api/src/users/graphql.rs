//! GraphQL for users: `me`, `users`, `user`, invitations, roles, presence.

use async_graphql::{Context, InputObject, Object, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use super::store::UserRow;
use super::{Presence, UserStatus};
use crate::auth::{ApiScope, Role};
use crate::companies::graphql::Company;
use crate::error::{ApiError, ApiResult};
use crate::events::EventKind;
use crate::graphql::connection::{self, CountedConnection};
use crate::graphql::loaders::{TeamsOfUser, UserById};
use crate::graphql::ws::while_authorized;
use crate::graphql::{actor, loader, parse_id, require_for_field, state, to_id};
use crate::teams::graphql::Team;

/// A person who works in the company's inbox.
pub struct User(pub UserRow);

#[Object]
impl User {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn email(&self) -> &str {
        &self.0.email
    }

    async fn role(&self) -> Role {
        Role::from_db(&self.0.role)
    }

    async fn status(&self) -> UserStatus {
        UserStatus::from_db(&self.0.status)
    }

    /// Online users receive auto-assigned conversations.
    async fn presence(&self) -> Presence {
        Presence::from_db(&self.0.presence)
    }

    /// Whether logging in needs a TOTP code.
    async fn two_factor_enabled(&self) -> bool {
        self.0.two_factor_enabled
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The user's company.
    async fn company(&self, ctx: &Context<'_>) -> ApiResult<Company> {
        require_for_field(ctx, Role::Staff, ApiScope::SettingsRead)?;
        // A User is only ever built from a row its caller may see (or, right after logging
        // in, the caller's own row), so its company is the caller's.
        let mut tx = state(ctx).db.tenant(self.0.company_id).await?;
        let row = crate::companies::store::current(&mut tx).await?;
        tx.commit().await?;
        Ok(Company(row))
    }

    /// Teams the user belongs to, by name.
    #[graphql(
        complexity = "crate::graphql::list_cost(crate::graphql::NESTED_LIST_FACTOR, child_complexity)"
    )]
    async fn teams(&self, ctx: &Context<'_>) -> ApiResult<Vec<Team>> {
        require_for_field(ctx, Role::Staff, ApiScope::TeamsRead)?;
        if let Ok(loader) = loader(ctx) {
            let teams = loader
                .load_one(TeamsOfUser(self.0.id))
                .await?
                .unwrap_or_default();
            return Ok(teams.into_iter().map(Team).collect());
        }
        // Right after logging in there is no loader yet: the payload's own user.
        let mut tx = state(ctx).db.tenant(self.0.company_id).await?;
        let teams = crate::teams::store::teams_of(&mut tx, &[self.0.id]).await?;
        tx.commit().await?;
        Ok(teams
            .into_iter()
            .map(|membership| Team(membership.row))
            .collect())
    }
}

/// An invitation just created; the token is shown only here.
#[derive(SimpleObject)]
pub struct Invitation {
    pub user: User,
    /// One-time token the invited person uses with `acceptInvite`; send it to them.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct InviteUserInput {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// Teams the new user joins when they accept.
    #[graphql(default)]
    pub team_ids: Vec<ID>,
}

#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// The caller: the logged-in user, or the user who created the API key.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<User> {
        Ok(User(actor(ctx)?.user.clone()))
    }

    /// The company's users, oldest first.
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<CountedConnection<User>> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::UsersRead)?;
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
            User,
        ))
    }

    async fn user(&self, ctx: &Context<'_>, id: ID) -> ApiResult<User> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::UsersRead)?;
        let id = parse_id(&id, "user")?;
        let row = loader(ctx)?.load_one(UserById(id)).await?;
        row.map(User).ok_or_else(|| ApiError::not_found("user"))
    }
}

#[derive(Default)]
pub struct UsersMutation;

#[Object]
impl UsersMutation {
    /// Invites a person by e-mail; they set their password with the returned token.
    async fn invite_user(
        &self,
        ctx: &Context<'_>,
        input: InviteUserInput,
    ) -> ApiResult<Invitation> {
        let actor = actor(ctx)?;
        let team_ids = input
            .team_ids
            .iter()
            .map(|id| parse_id(id, "team"))
            .collect::<ApiResult<Vec<_>>>()?;
        let invitation = super::invite(
            state(ctx),
            actor,
            &input.email,
            &input.name,
            input.role,
            &team_ids,
        )
        .await?;
        Ok(Invitation {
            user: User(invitation.user),
            token: invitation.token,
            expires_at: invitation.expires_at,
        })
    }

    async fn change_user_role(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        role: Role,
    ) -> ApiResult<User> {
        let user_id = parse_id(&user_id, "user")?;
        Ok(User(
            super::change_role(state(ctx), actor(ctx)?, user_id, role).await?,
        ))
    }

    /// Stops a user from logging in and ends their sessions.
    async fn deactivate_user(&self, ctx: &Context<'_>, user_id: ID) -> ApiResult<User> {
        let user_id = parse_id(&user_id, "user")?;
        Ok(User(
            super::deactivate(state(ctx), actor(ctx)?, user_id).await?,
        ))
    }

    async fn reactivate_user(&self, ctx: &Context<'_>, user_id: ID) -> ApiResult<User> {
        let user_id = parse_id(&user_id, "user")?;
        Ok(User(
            super::reactivate(state(ctx), actor(ctx)?, user_id).await?,
        ))
    }

    /// Sets the caller's presence; subscribers of `presenceChanged` hear of it.
    async fn set_presence(&self, ctx: &Context<'_>, presence: Presence) -> ApiResult<User> {
        Ok(User(
            super::set_presence(state(ctx), actor(ctx)?, presence).await?,
        ))
    }
}

/// A user's presence changed.
pub struct PresenceChange {
    user_id: uuid::Uuid,
    presence: Presence,
    changed_at: DateTime<Utc>,
}

#[Object]
impl PresenceChange {
    async fn user_id(&self) -> ID {
        to_id(self.user_id)
    }

    async fn presence(&self) -> Presence {
        self.presence
    }

    async fn changed_at(&self) -> DateTime<Utc> {
        self.changed_at
    }

    async fn user(&self, ctx: &Context<'_>) -> ApiResult<User> {
        let row = loader(ctx)?.load_one(UserById(self.user_id)).await?;
        row.map(User).ok_or_else(|| ApiError::not_found("user"))
    }
}

#[derive(Default)]
pub struct UsersSubscription;

#[Subscription]
impl UsersSubscription {
    /// Presence changes of the caller's colleagues, from every API node.
    async fn presence_changed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = PresenceChange>> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::UsersRead)?;
        let company_id = actor.company_id;
        let events = BroadcastStream::new(state(ctx).events.subscribe_company(company_id));
        let changes = events.filter_map(move |event| async move {
            let event = event.ok()?;
            if event.company_id != company_id {
                return None;
            }
            match event.kind {
                EventKind::PresenceChanged {
                    user_id,
                    presence,
                    at,
                } => Some(PresenceChange {
                    user_id,
                    presence: Presence::from_db(&presence),
                    changed_at: at,
                }),
                _ => None,
            }
        });
        Ok(while_authorized(
            ctx,
            changes,
            Role::Staff,
            ApiScope::UsersRead,
        ))
    }
}
