//! Optional TOTP two-factor authentication (RFC 6238: SHA-1, 6 digits, 30 s) with single-use
//! recovery codes. The seed is sealed with the server key; a code is accepted one step early
//! or late for clock drift, and never twice (the last accepted step is remembered).

use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use totp_rs::{Algorithm, TOTP};
use uuid::Uuid;

use super::{login, password, store, store::LoginAccount, Actor};
use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::error::{ApiError, ApiResult};

const STEP_SECONDS: u64 = 30;
const RECOVERY_CODES: usize = 10;

pub fn totp(secret: Vec<u8>, account: &str) -> ApiResult<TOTP> {
    // The otpauth label separates issuer and account with ':', so an account may not hold one
    // (e-mail addresses may).
    let account = account.replace(':', "_");
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECONDS,
        secret,
        Some("Obrol".into()),
        account,
    )
    .map_err(|e| ApiError::internal("building a TOTP", e))
}

/// The step (30 s slot) whose code `code` is, within one step of `now`, if any.
pub fn matching_step(totp: &TOTP, code: &str, now: DateTime<Utc>) -> Option<i64> {
    let now = now.timestamp();
    let current = now / STEP_SECONDS as i64;
    (current - 1..=current + 1).find(|step| {
        let at = (*step * STEP_SECONDS as i64).max(0) as u64;
        totp.generate(at) == code
    })
}

fn recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect()
    };
    format!("{}-{}", pick(5), pick(5))
}

fn hash_recovery_code(code: &str) -> Vec<u8> {
    Sha256::digest(code.trim().to_lowercase().as_bytes()).to_vec()
}

pub enum CodeCheck {
    Totp(i64),
    RecoveryCode,
    Wrong,
}

/// Checks a code given at log-in: a TOTP code, or a recovery code (which is then used up).
pub async fn check_login_code(
    state: &AppState,
    conn: &mut PgConnection,
    account: &LoginAccount,
    code: &str,
    now: DateTime<Utc>,
) -> ApiResult<CodeCheck> {
    if code.contains('-') {
        let used = sqlx::query(
            "update recovery_codes set used_at = now()
             where user_id = $1 and code_hash = $2 and used_at is null",
        )
        .bind(account.user.id)
        .bind(hash_recovery_code(code))
        .execute(conn)
        .await?;
        return Ok(if used.rows_affected() == 1 {
            CodeCheck::RecoveryCode
        } else {
            CodeCheck::Wrong
        });
    }
    let Some(sealed) = &account.totp_secret_sealed else {
        return Ok(CodeCheck::Wrong);
    };
    let secret = state
        .sealer
        .open(sealed)
        .map_err(|e| ApiError::internal("opening a TOTP seed", e))?;
    let totp = totp(secret, &account.user.email)?;
    match matching_step(&totp, code, now) {
        Some(step) if account.totp_last_step.is_none_or(|last| step > last) => {
            Ok(CodeCheck::Totp(step))
        }
        _ => Ok(CodeCheck::Wrong),
    }
}

pub struct Setup {
    pub secret_base32: String,
    pub otpauth_url: String,
}

/// Starts enrolment: a new seed, kept pending until a code from it is confirmed.
pub async fn start_setup(state: &AppState, actor: &Actor) -> ApiResult<Setup> {
    actor.require_session()?;
    if actor.user.two_factor_enabled {
        return Err(ApiError::conflict(
            "two-factor authentication is already enabled",
        ));
    }
    let secret: Vec<u8> = rand::random::<[u8; 20]>().to_vec();
    let totp = totp(secret.clone(), &actor.user.email)?;
    let sealed = state
        .sealer
        .seal(&secret)
        .map_err(|e| ApiError::internal("sealing a TOTP seed", e))?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    sqlx::query("update users set totp_pending_sealed = $2 where id = $1")
        .bind(actor.user_id())
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Setup {
        secret_base32: totp.get_secret_base32(),
        otpauth_url: totp.get_url(),
    })
}

/// Confirms enrolment with a current code and returns fresh recovery codes (shown once).
pub async fn confirm_setup(state: &AppState, actor: &Actor, code: &str) -> ApiResult<Vec<String>> {
    actor.require_session()?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let pending: Option<Vec<u8>> =
        sqlx::query_scalar("select totp_pending_sealed from users where id = $1 for update")
            .bind(actor.user_id())
            .fetch_one(&mut *tx)
            .await?;
    let Some(sealed) = pending else {
        return Err(ApiError::conflict("start two-factor setup first"));
    };
    let secret = state
        .sealer
        .open(&sealed)
        .map_err(|e| ApiError::internal("opening a TOTP seed", e))?;
    let totp = totp(secret, &actor.user.email)?;
    let Some(step) = matching_step(&totp, code.trim(), Utc::now()) else {
        return Err(ApiError::validation("the two-factor code is incorrect"));
    };
    sqlx::query(
        "update users set totp_secret_sealed = totp_pending_sealed, totp_pending_sealed = null,
                totp_last_step = $2
         where id = $1",
    )
    .bind(actor.user_id())
    .bind(step)
    .execute(&mut *tx)
    .await?;
    state.credentials.forget_user(actor.user_id());
    let codes = replace_recovery_codes(&mut tx, actor.company_id, actor.user_id()).await?;
    audit::record(
        &mut tx,
        actor,
        Entry::new("TWO_FACTOR_ENABLED").target("user", actor.user_id()),
    )
    .await?;
    tx.commit().await?;
    Ok(codes)
}

/// Turns two-factor off; needs the account password again.
/// Turning two-factor off needs the password and a current code (or a recovery code); wrong
/// answers count towards the same lock-out as log-in, so a stolen session cannot be used to
/// guess the password.
pub async fn disable(
    state: &AppState,
    actor: &Actor,
    password_text: String,
    code: &str,
) -> ApiResult<()> {
    actor.require_session()?;
    let now = Utc::now();
    let mut tx = state.db.tenant(actor.company_id).await?;
    let Some(account) = store::login_account(&mut tx, &actor.user.email).await? else {
        return Err(ApiError::not_found("user"));
    };
    login::refuse_if_locked(&account, now)?;
    if !account.user.two_factor_enabled {
        return Err(ApiError::conflict(
            "two-factor authentication is not enabled",
        ));
    }
    let password_ok = password::verify(password_text, account.password_hash.clone()).await?;
    let code_ok = password_ok
        && !matches!(
            check_login_code(state, &mut tx, &account, code.trim(), now).await?,
            CodeCheck::Wrong
        );
    if !code_ok {
        login::record_failure(&mut tx, &account, now, "TWO_FACTOR_DISABLE_FAILED").await?;
        tx.commit().await?;
        return Err(ApiError::validation(
            "the password or the two-factor code is incorrect",
        ));
    }
    sqlx::query(
        "update users set totp_secret_sealed = null, totp_pending_sealed = null, totp_last_step = null
         where id = $1",
    )
    .bind(actor.user_id())
    .execute(&mut *tx)
    .await?;
    sqlx::query("delete from recovery_codes where user_id = $1")
        .bind(actor.user_id())
        .execute(&mut *tx)
        .await?;
    state.credentials.forget_user(actor.user_id());
    audit::record(
        &mut tx,
        actor,
        Entry::new("TWO_FACTOR_DISABLED").target("user", actor.user_id()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn replace_recovery_codes(
    conn: &mut PgConnection,
    company_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Vec<String>> {
    sqlx::query("delete from recovery_codes where user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
    for code in &codes {
        sqlx::query("insert into recovery_codes (id, company_id, user_id, code_hash) values ($1, $2, $3, $4)")
            .bind(Uuid::now_v7())
            .bind(company_id)
            .bind(user_id)
            .bind(hash_recovery_code(code))
            .execute(&mut *conn)
            .await?;
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_matches_its_own_step_and_its_neighbours_only() {
        let totp = totp(vec![7u8; 20], "ana@example.com").unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let step = now.timestamp() / 30;
        let code = totp.generate(now.timestamp() as u64);
        assert_eq!(matching_step(&totp, &code, now), Some(step));
        let earlier = totp.generate((now.timestamp() - 30) as u64);
        assert_eq!(matching_step(&totp, &earlier, now), Some(step - 1));
        let old = totp.generate((now.timestamp() - 120) as u64);
        assert_eq!(matching_step(&totp, &old, now), None);
    }

    #[test]
    fn an_address_with_a_colon_still_gets_a_totp() {
        assert!(totp(vec![7u8; 20], "\"a:b\"@example.com").is_ok());
    }

    #[test]
    fn recovery_codes_are_distinct_and_case_insensitive() {
        let a = recovery_code();
        assert_eq!(a.len(), 11);
        assert_ne!(a, recovery_code());
        assert_eq!(
            hash_recovery_code(&a),
            hash_recovery_code(&a.to_uppercase())
        );
    }
}
