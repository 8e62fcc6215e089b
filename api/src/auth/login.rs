//! Signing up, logging in (with back-off and two-factor), accepting an invitation, and the
//! sessions that result.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{password, store, tokens, two_factor, Actor, Role};
use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::companies;
use crate::error::{is_unique_violation, ApiError, ApiResult};
use crate::users::store::{NewUser, UserRow};
use crate::users::{normalize_email, normalize_name};

/// Failed log-ins allowed before the account is locked for a while.
pub const FREE_ATTEMPTS: i32 = 5;
const MAX_LOCK_MINUTES: i64 = 60;

pub struct NewSession {
    pub token: String,
    pub user: UserRow,
    pub expires_at: DateTime<Utc>,
}

/// How long the account is locked after `failures` consecutive failed log-ins: nothing for
/// the first few, then 1, 2, 4, ... minutes, at most an hour.
pub fn lock_duration(failures: i32) -> Option<Duration> {
    if failures < FREE_ATTEMPTS {
        return None;
    }
    let exponent = (failures - FREE_ATTEMPTS).min(6) as u32;
    Some(Duration::minutes((1i64 << exponent).min(MAX_LOCK_MINUTES)))
}

fn wrong_credentials() -> ApiError {
    ApiError::Unauthenticated("the e-mail address or password is incorrect".into())
}

/// Refuses while the account is locked after repeated failures.
pub fn refuse_if_locked(account: &store::LoginAccount, now: DateTime<Utc>) -> ApiResult<()> {
    if let Some(until) = account.locked_until.filter(|until| *until > now) {
        let seconds = (until - now).num_seconds().max(1);
        return Err(ApiError::RateLimited(format!(
            "too many failed attempts; try again in {seconds} seconds"
        )));
    }
    Ok(())
}

/// Counts a failed password (or code) check against the account, locking it for a while
/// after [`FREE_ATTEMPTS`], and records `action` in the audit log. Log-in and every other
/// place that checks a password share this count, so none of them is a way around it.
pub async fn record_failure(
    conn: &mut sqlx::PgConnection,
    account: &store::LoginAccount,
    now: DateTime<Utc>,
    action: &str,
) -> ApiResult<()> {
    let user = &account.user;
    let failures = account.failed_logins + 1;
    let locked_until = lock_duration(failures).map(|lock| now + lock);
    store::record_failed_login(conn, user.id, failures, locked_until).await?;
    let entry = Entry::new(action)
        .target("user", user.id)
        .details(serde_json::json!({ "failures": failures }));
    audit::record_for_user(conn, user.company_id, user.id, entry).await?;
    Ok(())
}

/// Opens a session for `user` in the caller's transaction.
async fn open_session(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
    user: UserRow,
    user_agent: Option<&str>,
) -> ApiResult<NewSession> {
    let (token, token_hash) = tokens::generate(tokens::SESSION_PREFIX);
    let expires_at = Utc::now() + state.config.session_ttl;
    store::insert_session(
        conn,
        user.company_id,
        user.id,
        &token_hash,
        user_agent,
        expires_at,
    )
    .await?;
    Ok(NewSession {
        token,
        user,
        expires_at,
    })
}

/// Creates a company with its first Admin and logs that Admin in.
pub async fn sign_up(
    state: &AppState,
    company_name: &str,
    name: &str,
    email: &str,
    password_text: String,
    user_agent: Option<&str>,
) -> ApiResult<NewSession> {
    let company_name = normalize_name(company_name, "company name", 200)?;
    let name = normalize_name(name, "name", 200)?;
    let email = normalize_email(email)?;
    password::validate(&password_text)?;
    let taken = || ApiError::conflict("an account with this e-mail address already exists");
    if store::email_taken(state.db.pool(), &email).await? {
        return Err(taken());
    }
    let password_hash = password::hash(password_text).await?;

    let company_id = Uuid::now_v7();
    let mut tx = state.db.tenant(company_id).await?;
    companies::store::insert(&mut tx, company_id, &company_name).await?;
    let new_user = NewUser {
        company_id,
        email: &email,
        name: &name,
        password_hash: Some(&password_hash),
        role: Role::Admin.as_db(),
        status: "ACTIVE",
    };
    let user = crate::users::store::insert(&mut tx, new_user)
        .await
        .map_err(|err| {
            if is_unique_violation(&err, "users_email_key") {
                taken()
            } else {
                err.into()
            }
        })?;
    let session = open_session(state, &mut tx, user, user_agent).await?;
    let entry = Entry::new("COMPANY_CREATED")
        .target("company", company_id)
        .details(serde_json::json!({ "name": company_name }));
    audit::record_for_user(&mut tx, company_id, session.user.id, entry).await?;
    tx.commit().await?;
    Ok(session)
}

/// Checks e-mail, password and (when enabled) the two-factor code, and opens a session.
pub async fn log_in(
    state: &AppState,
    email: &str,
    password_text: String,
    totp_code: Option<&str>,
    user_agent: Option<&str>,
) -> ApiResult<NewSession> {
    let email = email.trim().to_lowercase();
    let Some(company_id) = store::login_company(state.db.pool(), &email).await? else {
        password::verify(password_text, None).await?;
        return Err(wrong_credentials());
    };
    let now = Utc::now();
    let mut tx = state.db.tenant(company_id).await?;
    // The row lock serialises concurrent attempts on one account, so the failure count is exact.
    let Some(account) = store::login_account(&mut tx, &email).await? else {
        return Err(wrong_credentials());
    };
    refuse_if_locked(&account, now)?;
    let user_id = account.user.id;
    let password_ok = password::verify(password_text, account.password_hash.clone()).await?;
    let mut failure = (!password_ok).then(wrong_credentials);
    let mut totp_step = None;
    if failure.is_none() && account.user.two_factor_enabled {
        match totp_code.map(str::trim).filter(|code| !code.is_empty()) {
            None => return Err(ApiError::TotpRequired),
            Some(code) => {
                match two_factor::check_login_code(state, &mut tx, &account, code, now).await? {
                    two_factor::CodeCheck::Totp(step) => totp_step = Some(step),
                    two_factor::CodeCheck::RecoveryCode => {}
                    two_factor::CodeCheck::Wrong => {
                        failure = Some(ApiError::Unauthenticated(
                            "the two-factor code is incorrect".into(),
                        ))
                    }
                }
            }
        }
    }
    if let Some(error) = failure {
        record_failure(&mut tx, &account, now, "LOGIN_FAILED").await?;
        tx.commit().await?;
        return Err(error);
    }
    match account.user.status.as_str() {
        "ACTIVE" => {}
        "DEACTIVATED" => {
            return Err(ApiError::Unauthenticated(
                "this account has been deactivated".into(),
            ))
        }
        _ => return Err(wrong_credentials()),
    }
    store::record_successful_login(&mut tx, user_id, totp_step).await?;
    let session = open_session(state, &mut tx, account.user, user_agent).await?;
    audit::record_for_user(
        &mut tx,
        company_id,
        user_id,
        Entry::new("LOGIN").target("user", user_id),
    )
    .await?;
    tx.commit().await?;
    Ok(session)
}

/// Sets an invited user's password (and optionally their name) and logs them in.
pub async fn accept_invite(
    state: &AppState,
    token: &str,
    password_text: String,
    name: Option<&str>,
    user_agent: Option<&str>,
) -> ApiResult<NewSession> {
    password::validate(&password_text)?;
    let name = name.map(|n| normalize_name(n, "name", 200)).transpose()?;
    let token_hash = tokens::hash(token.trim());
    let not_found = || ApiError::not_found("invitation (it may have expired or been used already)");
    let Some(company_id) = store::invite_company(state.db.pool(), &token_hash).await? else {
        return Err(not_found());
    };
    let password_hash = password::hash(password_text).await?;
    let mut tx = state.db.tenant(company_id).await?;
    let Some(user_id) = crate::users::store::accept_invite(&mut tx, &token_hash).await? else {
        return Err(not_found());
    };
    let activated = crate::users::store::activate_with_password(
        &mut tx,
        user_id,
        &password_hash,
        name.as_deref(),
    )
    .await?;
    let Some(user) = activated else {
        return Err(not_found());
    };
    let session = open_session(state, &mut tx, user, user_agent).await?;
    audit::record_for_user(
        &mut tx,
        company_id,
        user_id,
        Entry::new("INVITE_ACCEPTED").target("user", user_id),
    )
    .await?;
    tx.commit().await?;
    Ok(session)
}

pub async fn log_out(state: &AppState, actor: &Actor) -> ApiResult<()> {
    let session_id = actor.require_session()?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    store::revoke_session(&mut tx, session_id, Some(actor.user_id())).await?;
    audit::record(
        &mut tx,
        actor,
        Entry::new("LOGOUT").target("session", session_id),
    )
    .await?;
    state.credentials.forget_user(actor.user_id());
    tx.commit().await?;
    Ok(())
}

pub async fn sessions(state: &AppState, actor: &Actor) -> ApiResult<Vec<store::SessionRow>> {
    actor.require_session()?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let sessions = store::active_sessions(&mut tx, actor.user_id()).await?;
    tx.commit().await?;
    Ok(sessions)
}

/// Revokes one of the caller's sessions; an Admin may revoke anyone's in the company.
pub async fn revoke_session(state: &AppState, actor: &Actor, session_id: Uuid) -> ApiResult<()> {
    actor.require_session()?;
    let owner = (actor.role != Role::Admin).then(|| actor.user_id());
    let mut tx = state.db.tenant(actor.company_id).await?;
    let Some(user_id) = store::revoke_session(&mut tx, session_id, owner).await? else {
        return Err(ApiError::not_found("session"));
    };
    audit::record(
        &mut tx,
        actor,
        Entry::new("SESSION_REVOKED").target("session", session_id),
    )
    .await?;
    state.credentials.forget_user(user_id);
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_starts_after_the_free_attempts_and_grows_to_an_hour() {
        assert_eq!(lock_duration(4), None);
        assert_eq!(lock_duration(5), Some(Duration::minutes(1)));
        assert_eq!(lock_duration(6), Some(Duration::minutes(2)));
        assert_eq!(lock_duration(8), Some(Duration::minutes(8)));
        assert_eq!(lock_duration(30), Some(Duration::minutes(60)));
    }
}
