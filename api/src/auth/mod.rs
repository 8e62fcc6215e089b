//! Who is asking, and what they may do.
//!
//! A request carries `Authorization: Bearer <token>`: either a session token (`obs_…`, from
//! logging in) or an API key (`obk_…`). Both are opaque random strings; only their sha256 is
//! stored. Resolving one yields an [`Actor`]: the company, the user (for an API key, the user
//! who created it, whose role caps what the key can do) and the credential. Every operation
//! then asks [`Actor::require`] for a minimum role and, for API keys, a scope.

pub mod api_keys;
pub mod cache;
pub mod graphql;
pub mod login;
pub mod password;
pub mod secrets;
pub mod store;
pub mod tokens;
pub mod two_factor;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::users::store::UserRow;
use cache::CredentialCache;

/// A user's role in their company.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything, including settings, roles, API keys and the audit log.
    Admin,
    /// Manages the members of their own teams.
    TeamAdmin,
    /// Works the conversations assigned to them or their teams.
    Staff,
}

impl Role {
    pub fn as_db(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::TeamAdmin => "TEAM_ADMIN",
            Role::Staff => "STAFF",
        }
    }

    pub fn from_db(value: &str) -> Self {
        match value {
            "ADMIN" => Role::Admin,
            "TEAM_ADMIN" => Role::TeamAdmin,
            _ => Role::Staff,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Staff => 1,
            Role::TeamAdmin => 2,
            Role::Admin => 3,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::TeamAdmin => "Team Admin",
            Role::Staff => "Staff",
        }
    }
}

/// What an API key may be used for. Sessions are not limited by scopes, only by role.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ApiScope {
    /// Read users, their roles and presence.
    UsersRead,
    /// Invite users, change roles, deactivate and reactivate users.
    UsersWrite,
    /// Read teams and their members.
    TeamsRead,
    /// Create teams and manage their members.
    TeamsWrite,
    /// Read company settings.
    SettingsRead,
    /// Change company settings.
    SettingsWrite,
    /// Read the audit log.
    AuditRead,
    /// Set the presence of the key's user.
    PresenceWrite,
    /// Read knowledge bases and search them.
    KnowledgeRead,
    /// Create knowledge bases and add, replace, refresh and delete their sources.
    KnowledgeWrite,
    /// Read contacts, their properties, labels, lists, views and activity; export them.
    ContactsRead,
    /// Create, change, import, merge and erase contacts; define properties, labels, lists
    /// and custom objects.
    ContactsWrite,
    /// Read connected channel accounts (never their credentials).
    ChannelsRead,
    /// Connect and disconnect channel accounts.
    ChannelsWrite,
    /// Read conversations, their messages and message templates.
    ConversationsRead,
    /// Send messages, add notes, close, reopen, assign and claim conversations; manage
    /// message templates and team routing.
    ConversationsWrite,
}

impl ApiScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::UsersRead => "users:read",
            ApiScope::UsersWrite => "users:write",
            ApiScope::TeamsRead => "teams:read",
            ApiScope::TeamsWrite => "teams:write",
            ApiScope::SettingsRead => "settings:read",
            ApiScope::SettingsWrite => "settings:write",
            ApiScope::AuditRead => "audit:read",
            ApiScope::PresenceWrite => "presence:write",
            ApiScope::KnowledgeRead => "knowledge:read",
            ApiScope::KnowledgeWrite => "knowledge:write",
            ApiScope::ContactsRead => "contacts:read",
            ApiScope::ContactsWrite => "contacts:write",
            ApiScope::ChannelsRead => "channels:read",
            ApiScope::ChannelsWrite => "channels:write",
            ApiScope::ConversationsRead => "conversations:read",
            ApiScope::ConversationsWrite => "conversations:write",
        }
    }

    pub const ALL: [ApiScope; 16] = [
        ApiScope::UsersRead,
        ApiScope::UsersWrite,
        ApiScope::TeamsRead,
        ApiScope::TeamsWrite,
        ApiScope::SettingsRead,
        ApiScope::SettingsWrite,
        ApiScope::AuditRead,
        ApiScope::PresenceWrite,
        ApiScope::KnowledgeRead,
        ApiScope::KnowledgeWrite,
        ApiScope::ContactsRead,
        ApiScope::ContactsWrite,
        ApiScope::ChannelsRead,
        ApiScope::ChannelsWrite,
        ApiScope::ConversationsRead,
        ApiScope::ConversationsWrite,
    ];

    pub fn from_name(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == value)
    }
}

#[derive(Clone, Debug)]
pub enum Credential {
    Session {
        session_id: Uuid,
    },
    ApiKey {
        api_key_id: Uuid,
        scopes: Vec<ApiScope>,
    },
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Actor {
    pub company_id: Uuid,
    pub user: UserRow,
    pub role: Role,
    pub credential: Credential,
}

impl Actor {
    pub fn user_id(&self) -> Uuid {
        self.user.id
    }

    pub fn session_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Session { session_id } => Some(session_id),
            Credential::ApiKey { .. } => None,
        }
    }

    pub fn api_key_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::ApiKey { api_key_id, .. } => Some(api_key_id),
            Credential::Session { .. } => None,
        }
    }

    /// Allows the operation when the user's role is at least `min_role` and, for an API key,
    /// the key carries `scope`.
    pub fn require(&self, min_role: Role, scope: ApiScope) -> ApiResult<()> {
        if let Credential::ApiKey { scopes, .. } = &self.credential {
            if !scopes.contains(&scope) {
                return Err(ApiError::forbidden(format!(
                    "this API key lacks the '{}' scope",
                    scope.as_str()
                )));
            }
        }
        if self.role.rank() < min_role.rank() {
            return Err(ApiError::forbidden(format!(
                "this needs the {} role",
                min_role.label()
            )));
        }
        Ok(())
    }

    /// Operations on one's own credentials (sessions, API keys, two-factor) need a session:
    /// an API key cannot mint or manage credentials.
    pub fn require_session(&self) -> ApiResult<Uuid> {
        self.session_id().ok_or_else(|| {
            ApiError::forbidden("this operation needs a logged-in session, not an API key")
        })
    }
}

/// What a request's credentials amount to.
#[derive(Clone, Debug)]
pub enum Auth {
    Anonymous,
    /// A token was sent but is unknown, expired or revoked.
    Rejected,
    Actor(Box<Actor>),
}

impl Auth {
    pub fn actor(&self) -> ApiResult<&Actor> {
        match self {
            Auth::Actor(actor) => Ok(actor),
            Auth::Anonymous => Err(ApiError::Unauthenticated("log in first".into())),
            Auth::Rejected => Err(ApiError::Unauthenticated(
                "the session or API key is invalid, expired or revoked".into(),
            )),
        }
    }
}

/// Sessions are marked as used at most this often, to keep reads read-only.
const TOUCH_INTERVAL_SECS: i64 = 300;

/// Resolves a bearer token to an actor: from the credential cache when it can (no database
/// round trip), otherwise with one call of a look-up function.
pub async fn authenticate(
    db: &Db,
    cache: &CredentialCache,
    bearer: Option<&str>,
) -> ApiResult<Auth> {
    let Some(token) = bearer else {
        return Ok(Auth::Anonymous);
    };
    let hash = tokens::hash(token);
    let now = Utc::now();
    if let Some(actor) = cache.get(&hash, now) {
        return Ok(Auth::Actor(Box::new(actor)));
    }
    let epoch = cache.epoch();
    if token.starts_with(tokens::SESSION_PREFIX) {
        let Some(found) = store::session_by_hash(db.pool(), &hash).await? else {
            return Ok(Auth::Rejected);
        };
        if stale(found.last_used_at, now) {
            store::touch_session(db, found.user.company_id, found.session_id).await?;
        }
        let actor = Actor {
            company_id: found.user.company_id,
            role: Role::from_db(&found.user.role),
            user: found.user,
            credential: Credential::Session {
                session_id: found.session_id,
            },
        };
        cache.put(hash, actor.clone(), Some(found.expires_at), epoch);
        return Ok(Auth::Actor(Box::new(actor)));
    }
    if token.starts_with(tokens::API_KEY_PREFIX) {
        let Some(found) = store::api_key_by_hash(db.pool(), &hash).await? else {
            return Ok(Auth::Rejected);
        };
        if found.last_used_at.is_none_or(|at| stale(at, now)) {
            store::touch_api_key(db, found.user.company_id, found.api_key_id).await?;
        }
        let scopes = found
            .scopes
            .iter()
            .filter_map(|s| ApiScope::from_name(s))
            .collect();
        let actor = Actor {
            company_id: found.user.company_id,
            role: Role::from_db(&found.user.role),
            user: found.user,
            credential: Credential::ApiKey {
                api_key_id: found.api_key_id,
                scopes,
            },
        };
        cache.put(hash, actor.clone(), None, epoch);
        return Ok(Auth::Actor(Box::new(actor)));
    }
    Ok(Auth::Rejected)
}

fn stale(last_used: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - last_used).num_seconds() > TOUCH_INTERVAL_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role, credential: Credential) -> Actor {
        Actor {
            company_id: Uuid::nil(),
            user: UserRow::example(role),
            role,
            credential,
        }
    }

    #[test]
    fn staff_cannot_do_what_needs_an_admin() {
        let staff = actor(
            Role::Staff,
            Credential::Session {
                session_id: Uuid::nil(),
            },
        );
        let err = staff
            .require(Role::Admin, ApiScope::UsersWrite)
            .unwrap_err();
        assert_eq!(err.code(), "FORBIDDEN");
        assert!(staff.require(Role::Staff, ApiScope::UsersRead).is_ok());
    }

    #[test]
    fn an_api_key_needs_the_scope_even_when_its_user_is_admin() {
        let key = actor(
            Role::Admin,
            Credential::ApiKey {
                api_key_id: Uuid::nil(),
                scopes: vec![ApiScope::UsersRead],
            },
        );
        assert!(key.require(Role::Admin, ApiScope::UsersRead).is_ok());
        let err = key.require(Role::Admin, ApiScope::UsersWrite).unwrap_err();
        assert!(err.message().contains("users:write"));
        assert!(key.require_session().is_err());
    }

    #[test]
    fn scopes_round_trip_through_their_names() {
        for scope in ApiScope::ALL {
            assert_eq!(ApiScope::from_name(scope.as_str()), Some(scope));
        }
        assert_eq!(ApiScope::from_name("everything"), None);
    }
}
