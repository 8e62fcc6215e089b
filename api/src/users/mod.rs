//! People in a company: invitations, roles, deactivation and presence.

pub mod graphql;
pub mod store;

use chrono::Utc;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::auth::{tokens, Actor, ApiScope, Role};
use crate::error::{is_unique_violation, ApiError, ApiResult};
use crate::events::{self, Event, EventKind};
use crate::teams;
use store::{NewUser, UserRow};

#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum UserStatus {
    /// Invited; has not set a password yet.
    Invited,
    Active,
    /// Can no longer log in; their sessions and the API keys they created were revoked.
    Deactivated,
}

impl UserStatus {
    pub fn from_db(value: &str) -> Self {
        match value {
            "INVITED" => UserStatus::Invited,
            "DEACTIVATED" => UserStatus::Deactivated,
            _ => UserStatus::Active,
        }
    }
}

/// Agent presence; "online" agents receive auto-assigned conversations.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    Online,
    Away,
    Offline,
}

impl Presence {
    pub fn as_db(self) -> &'static str {
        match self {
            Presence::Online => "ONLINE",
            Presence::Away => "AWAY",
            Presence::Offline => "OFFLINE",
        }
    }

    pub fn from_db(value: &str) -> Self {
        match value {
            "ONLINE" => Presence::Online,
            "AWAY" => Presence::Away,
            _ => Presence::Offline,
        }
    }
}

/// Lower-cases and checks an e-mail address. Deliberately simple: one `@`, something on
/// both sides, a dot in the domain, no spaces; the real check is the invitation reaching it.
pub fn normalize_email(raw: &str) -> ApiResult<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
               && !domain.ends_with('.') && !domain.contains('@'));
    if !valid {
        return Err(ApiError::validation(format!(
            "'{}' is not a valid e-mail address",
            raw.trim()
        )));
    }
    Ok(email)
}

/// Trims a display name and checks its length.
pub fn normalize_name(raw: &str, what: &str, max: usize) -> ApiResult<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ApiError::validation(format!(
            "the {what} must not be empty"
        )));
    }
    if name.chars().count() > max {
        return Err(ApiError::validation(format!(
            "the {what} must have at most {max} characters"
        )));
    }
    Ok(name.to_string())
}

pub struct Invitation {
    pub user: UserRow,
    pub token: String,
    pub expires_at: chrono::DateTime<Utc>,
}

/// Creates an invited user (no password yet) and a one-time token for them to set one.
/// Admins invite anyone; a Team Admin may invite Staff into teams they belong to.
pub async fn invite(
    state: &AppState,
    actor: &Actor,
    email: &str,
    name: &str,
    role: Role,
    team_ids: &[Uuid],
) -> ApiResult<Invitation> {
    // An invitation is a credential: API keys cannot mint one.
    actor.require_session()?;
    actor.require(Role::TeamAdmin, ApiScope::UsersWrite)?;
    if actor.role != Role::Admin && (role != Role::Staff || team_ids.is_empty()) {
        return Err(ApiError::forbidden(
            "a Team Admin may only invite Staff into their own teams; other invitations need an Admin",
        ));
    }
    let email = normalize_email(email)?;
    let name = normalize_name(name, "name", 200)?;
    if crate::auth::store::email_taken(state.db.pool(), &email).await? {
        return Err(ApiError::conflict(
            "an account with this e-mail address already exists",
        ));
    }
    let (token, token_hash) = tokens::generate(tokens::INVITE_PREFIX);
    let expires_at = Utc::now() + state.config.invite_ttl;

    let mut tx = state.db.tenant(actor.company_id).await?;
    for team_id in team_ids {
        let team = teams::store::by_id(&mut tx, *team_id)
            .await?
            .ok_or_else(|| ApiError::not_found("team"))?;
        if actor.role != Role::Admin
            && !teams::store::is_member(&mut tx, team.id, actor.user_id()).await?
        {
            return Err(ApiError::forbidden(
                "a Team Admin may only invite into their own teams",
            ));
        }
    }
    let new_user = NewUser {
        company_id: actor.company_id,
        email: &email,
        name: &name,
        password_hash: None,
        role: role.as_db(),
        status: "INVITED",
    };
    let user = store::insert(&mut tx, new_user).await.map_err(|err| {
        if is_unique_violation(&err, "users_email_key") {
            ApiError::conflict("an account with this e-mail address already exists")
        } else {
            err.into()
        }
    })?;
    store::insert_invite(
        &mut tx,
        actor.company_id,
        user.id,
        &token_hash,
        actor.user_id(),
        expires_at,
    )
    .await?;
    for team_id in team_ids {
        teams::store::add_member(&mut tx, actor.company_id, *team_id, user.id).await?;
    }
    let entry = Entry::new("USER_INVITED")
        .target("user", user.id)
        .details(serde_json::json!({ "email": email, "role": role.as_db() }));
    audit::record(&mut tx, actor, entry).await?;
    tx.commit().await?;
    Ok(Invitation {
        user,
        token,
        expires_at,
    })
}

/// Changes a user's role. The company always keeps at least one active Admin.
pub async fn change_role(
    state: &AppState,
    actor: &Actor,
    user_id: Uuid,
    role: Role,
) -> ApiResult<UserRow> {
    actor.require(Role::Admin, ApiScope::UsersWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    store::lock_roster(&mut tx).await?;
    let user = store::lock(&mut tx, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let from = Role::from_db(&user.role);
    if from == role {
        return Ok(user);
    }
    if from == Role::Admin
        && user.status == "ACTIVE"
        && store::active_admin_count(&mut tx).await? <= 1
    {
        return Err(ApiError::conflict(
            "the company must keep at least one active Admin",
        ));
    }
    let updated = store::set_role(&mut tx, user_id, role.as_db()).await?;
    state.credentials.forget_user(user_id);
    let entry = Entry::new("ROLE_CHANGED")
        .target("user", user_id)
        .details(serde_json::json!({ "from": from.as_db(), "to": role.as_db() }));
    audit::record(&mut tx, actor, entry).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Deactivates a user: they cannot log in, their sessions and the API keys they created are
/// revoked at once (reactivation does not bring those back), and an open invitation dies.
pub async fn deactivate(state: &AppState, actor: &Actor, user_id: Uuid) -> ApiResult<UserRow> {
    actor.require(Role::Admin, ApiScope::UsersWrite)?;
    if user_id == actor.user_id() {
        return Err(ApiError::conflict("you cannot deactivate yourself"));
    }
    let mut tx = state.db.tenant(actor.company_id).await?;
    store::lock_roster(&mut tx).await?;
    let user = store::lock(&mut tx, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if user.status == "DEACTIVATED" {
        return Ok(user);
    }
    if user.role == "ADMIN"
        && user.status == "ACTIVE"
        && store::active_admin_count(&mut tx).await? <= 1
    {
        return Err(ApiError::conflict(
            "the company must keep at least one active Admin",
        ));
    }
    let updated = store::set_status(&mut tx, user_id, "DEACTIVATED").await?;
    state.credentials.forget_user(user_id);
    crate::auth::store::revoke_all_sessions(&mut tx, user_id).await?;
    crate::auth::store::revoke_api_keys_of(&mut tx, user_id).await?;
    store::void_open_invites(&mut tx, user_id).await?;
    audit::record(
        &mut tx,
        actor,
        Entry::new("USER_DEACTIVATED").target("user", user_id),
    )
    .await?;
    tx.commit().await?;
    Ok(updated)
}

/// Lets a deactivated user log in again. One who never set a password goes back to
/// INVITED (their old invitation stays void: an Admin sends a new one).
pub async fn reactivate(state: &AppState, actor: &Actor, user_id: Uuid) -> ApiResult<UserRow> {
    actor.require(Role::Admin, ApiScope::UsersWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let user = store::lock(&mut tx, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if user.status != "DEACTIVATED" {
        return Ok(user);
    }
    let has_password = store::password_hash(&mut tx, user_id).await?.is_some();
    let status = if has_password { "ACTIVE" } else { "INVITED" };
    let updated = store::set_status(&mut tx, user_id, status).await?;
    audit::record(
        &mut tx,
        actor,
        Entry::new("USER_REACTIVATED").target("user", user_id),
    )
    .await?;
    tx.commit().await?;
    Ok(updated)
}

/// Sets the caller's own presence and tells every subscriber in the company.
pub async fn set_presence(
    state: &AppState,
    actor: &Actor,
    presence: Presence,
) -> ApiResult<UserRow> {
    actor.require(Role::Staff, ApiScope::PresenceWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let updated = store::set_presence(&mut tx, actor.user_id(), presence.as_db()).await?;
    state.credentials.forget_user(actor.user_id());
    let event = Event {
        company_id: actor.company_id,
        kind: EventKind::PresenceChanged {
            user_id: updated.id,
            presence: presence.as_db().into(),
            at: Utc::now(),
        },
    };
    events::publish(&mut tx, &event).await?;
    // An agent coming online takes queued conversations of their round-robin teams.
    if presence == Presence::Online {
        crate::conversations::routing::drain_for_user(&mut tx, actor.company_id, actor.user_id())
            .await?;
    }
    tx.commit().await?;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            normalize_email("  Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a na@example.com",
            "a@b@c.com",
            "ana@.com",
        ] {
            assert_eq!(
                normalize_email(bad).unwrap_err().code(),
                "VALIDATION",
                "{bad}"
            );
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(normalize_name("  Ana  ", "name", 10).unwrap(), "Ana");
        assert!(normalize_name("   ", "name", 10).is_err());
        assert!(normalize_name("abcdefghijk", "name", 10).is_err());
    }
}
