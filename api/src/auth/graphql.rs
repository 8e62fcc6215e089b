//! GraphQL for authentication: sign-up, log-in, sessions, API keys, two-factor.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::api_keys::{self, ApiKeyRow};
use super::login::{self, NewSession};
use super::store::SessionRow;
use super::{two_factor, ApiScope};
use crate::error::ApiResult;
use crate::graphql::{actor, parse_id, state, to_id, user_agent};
use crate::users::graphql::User;

/// A new session: send `token` as `Authorization: Bearer <token>`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    pub token: String,
    pub user: User,
    pub expires_at: DateTime<Utc>,
}

impl From<NewSession> for AuthPayload {
    fn from(session: NewSession) -> Self {
        Self {
            token: session.token,
            user: User(session.user),
            expires_at: session.expires_at,
        }
    }
}

#[derive(InputObject)]
pub struct SignUpInput {
    pub company_name: String,
    pub name: String,
    pub email: String,
    /// At least 10 characters.
    #[graphql(secret)]
    pub password: String,
}

#[derive(InputObject)]
pub struct LogInInput {
    pub email: String,
    #[graphql(secret)]
    pub password: String,
    /// The current code from the authenticator app, or an unused recovery code; needed when
    /// two-factor authentication is on (the error code TOTP_REQUIRED says so).
    #[graphql(secret)]
    pub totp_code: Option<String>,
}

#[derive(InputObject)]
pub struct AcceptInviteInput {
    #[graphql(secret)]
    pub token: String,
    #[graphql(secret)]
    pub password: String,
    /// Replaces the name the inviter gave, when set.
    pub name: Option<String>,
}

#[derive(InputObject)]
pub struct CreateApiKeyInput {
    pub name: String,
    pub scopes: Vec<ApiScope>,
}

/// A logged-in device or browser.
pub struct Session {
    row: SessionRow,
    current: bool,
}

#[Object]
impl Session {
    async fn id(&self) -> ID {
        to_id(self.row.id)
    }

    async fn user_agent(&self) -> Option<&str> {
        self.row.user_agent.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// Updated at most every five minutes.
    async fn last_used_at(&self) -> DateTime<Utc> {
        self.row.last_used_at
    }

    async fn expires_at(&self) -> DateTime<Utc> {
        self.row.expires_at
    }

    /// Whether this is the session making the request.
    async fn current(&self) -> bool {
        self.current
    }
}

/// An API key; the key itself is only shown once, in `CreatedApiKey`.
pub struct ApiKey(pub ApiKeyRow);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The key's first characters, to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }

    async fn scopes(&self) -> Vec<ApiScope> {
        self.0
            .scopes
            .iter()
            .filter_map(|s| ApiScope::from_name(s))
            .collect()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }

    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The secret key, shown this once: store it now.
    pub key: String,
    pub api_key: ApiKey,
}

#[derive(SimpleObject)]
pub struct TwoFactorSetup {
    /// The TOTP seed in base32, for typing into an authenticator app.
    pub secret: String,
    /// An otpauth:// URL, for a QR code.
    pub otpauth_url: String,
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The caller's active sessions, newest first.
    async fn my_sessions(&self, ctx: &Context<'_>) -> ApiResult<Vec<Session>> {
        let actor = actor(ctx)?;
        let rows = login::sessions(state(ctx), actor).await?;
        let current = actor.session_id();
        Ok(rows
            .into_iter()
            .map(|row| Session {
                current: Some(row.id) == current,
                row,
            })
            .collect())
    }

    /// The company's API keys, newest first (Admins).
    async fn api_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<ApiKey>> {
        Ok(api_keys::list(state(ctx), actor(ctx)?)
            .await?
            .into_iter()
            .map(ApiKey)
            .collect())
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates a company and its first Admin, and logs that Admin in.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> ApiResult<AuthPayload> {
        let session = login::sign_up(
            state(ctx),
            &input.company_name,
            &input.name,
            &input.email,
            input.password,
            user_agent(ctx),
        )
        .await?;
        Ok(session.into())
    }

    /// Logs in. Repeated failures lock the account for a growing while (RATE_LIMITED).
    async fn log_in(&self, ctx: &Context<'_>, input: LogInInput) -> ApiResult<AuthPayload> {
        let session = login::log_in(
            state(ctx),
            &input.email,
            input.password,
            input.totp_code.as_deref(),
            user_agent(ctx),
        )
        .await?;
        Ok(session.into())
    }

    /// Ends the current session.
    async fn log_out(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        login::log_out(state(ctx), actor(ctx)?).await?;
        Ok(true)
    }

    /// Sets the password of an invited user and logs them in.
    async fn accept_invite(
        &self,
        ctx: &Context<'_>,
        input: AcceptInviteInput,
    ) -> ApiResult<AuthPayload> {
        let session = login::accept_invite(
            state(ctx),
            &input.token,
            input.password,
            input.name.as_deref(),
            user_agent(ctx),
        )
        .await?;
        Ok(session.into())
    }

    /// Revokes one of the caller's sessions (Admins: anyone's in the company).
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        let id = parse_id(&id, "session")?;
        login::revoke_session(state(ctx), actor(ctx)?, id).await?;
        Ok(true)
    }

    /// Creates an API key (Admins, from a logged-in session).
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> ApiResult<CreatedApiKey> {
        let (key, row) =
            api_keys::create(state(ctx), actor(ctx)?, &input.name, &input.scopes).await?;
        Ok(CreatedApiKey {
            key,
            api_key: ApiKey(row),
        })
    }

    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ApiKey> {
        let id = parse_id(&id, "API key")?;
        Ok(ApiKey(api_keys::revoke(state(ctx), actor(ctx)?, id).await?))
    }

    /// Starts two-factor enrolment; confirm with a code from the app.
    async fn start_two_factor_setup(&self, ctx: &Context<'_>) -> ApiResult<TwoFactorSetup> {
        let setup = two_factor::start_setup(state(ctx), actor(ctx)?).await?;
        Ok(TwoFactorSetup {
            secret: setup.secret_base32,
            otpauth_url: setup.otpauth_url,
        })
    }

    /// Turns two-factor on and returns ten single-use recovery codes (shown once).
    async fn confirm_two_factor_setup(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] code: String,
    ) -> ApiResult<Vec<String>> {
        two_factor::confirm_setup(state(ctx), actor(ctx)?, &code).await
    }

    /// Turns two-factor off. Needs the password and a current code (or a recovery code);
    /// wrong answers count towards the log-in lock-out.
    async fn disable_two_factor(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] password: String,
        #[graphql(secret)] code: String,
    ) -> ApiResult<bool> {
        two_factor::disable(state(ctx), actor(ctx)?, password, &code).await?;
        Ok(true)
    }
}
