//! Teams (Sales, Support, ...) and their members. Admins manage every team; a Team Admin
//! manages the members of the teams they belong to.

pub mod graphql;
pub mod store;

use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::auth::{Actor, ApiScope, Role};
use crate::db::TenantTx;
use crate::error::{is_unique_violation, ApiError, ApiResult};
use crate::users;
use store::TeamRow;

pub async fn create(state: &AppState, actor: &Actor, name: &str) -> ApiResult<TeamRow> {
    actor.require(Role::Admin, ApiScope::TeamsWrite)?;
    let name = users::normalize_name(name, "team name", 100)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let team = store::insert(&mut tx, actor.company_id, &name)
        .await
        .map_err(|err| {
            if is_unique_violation(&err, "teams_name_key") {
                ApiError::conflict(format!("a team named '{name}' already exists"))
            } else {
                err.into()
            }
        })?;
    let entry = Entry::new("TEAM_CREATED")
        .target("team", team.id)
        .details(serde_json::json!({ "name": name }));
    audit::record(&mut tx, actor, entry).await?;
    tx.commit().await?;
    Ok(team)
}

/// Finds the team and the user and checks that `actor` may manage this team's members.
async fn authorize_membership_change(
    tx: &mut TenantTx,
    actor: &Actor,
    team_id: Uuid,
    user_id: Uuid,
) -> ApiResult<TeamRow> {
    actor.require(Role::TeamAdmin, ApiScope::TeamsWrite)?;
    let team = store::by_id(tx, team_id)
        .await?
        .ok_or_else(|| ApiError::not_found("team"))?;
    users::store::by_id(tx, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if actor.role != Role::Admin && !store::is_member(tx, team_id, actor.user_id()).await? {
        return Err(ApiError::forbidden(
            "a Team Admin manages only the teams they belong to",
        ));
    }
    Ok(team)
}

pub async fn add_member(
    state: &AppState,
    actor: &Actor,
    team_id: Uuid,
    user_id: Uuid,
) -> ApiResult<TeamRow> {
    let mut tx = state.db.tenant(actor.company_id).await?;
    let team = authorize_membership_change(&mut tx, actor, team_id, user_id).await?;
    if store::add_member(&mut tx, actor.company_id, team_id, user_id).await? {
        let entry = Entry::new("TEAM_MEMBER_ADDED")
            .target("team", team_id)
            .details(serde_json::json!({ "userId": user_id }));
        audit::record(&mut tx, actor, entry).await?;
    }
    tx.commit().await?;
    Ok(team)
}

pub async fn remove_member(
    state: &AppState,
    actor: &Actor,
    team_id: Uuid,
    user_id: Uuid,
) -> ApiResult<TeamRow> {
    let mut tx = state.db.tenant(actor.company_id).await?;
    let team = authorize_membership_change(&mut tx, actor, team_id, user_id).await?;
    if store::remove_member(&mut tx, team_id, user_id).await? {
        let entry = Entry::new("TEAM_MEMBER_REMOVED")
            .target("team", team_id)
            .details(serde_json::json!({ "userId": user_id }));
        audit::record(&mut tx, actor, entry).await?;
    }
    tx.commit().await?;
    Ok(team)
}
