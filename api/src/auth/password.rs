//! Password hashing with argon2id (the argon2 crate's defaults: 19 MiB, 2 passes, which is
//! OWASP's recommendation). Hashing takes tens of milliseconds of CPU, so it runs on the
//! blocking pool, never on the async runtime's threads.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::{ApiError, ApiResult};

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 256;

pub fn validate(password: &str) -> ApiResult<()> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(ApiError::validation(format!(
            "the password must have at least {MIN_LENGTH} characters"
        )));
    }
    if chars > MAX_LENGTH {
        return Err(ApiError::validation(format!(
            "the password must have at most {MAX_LENGTH} characters"
        )));
    }
    Ok(())
}

pub async fn hash(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| ApiError::internal("password hashing failed", err))
    })
    .await
    .map_err(|err| ApiError::internal("password hashing task failed", err))?
}

/// Checks `password` against `stored`. With no stored hash (unknown user, or an invited user
/// without a password yet) it still spends the same work, so timing does not reveal which
/// e-mail addresses exist.
pub async fn verify(password: String, stored: Option<String>) -> ApiResult<bool> {
    tokio::task::spawn_blocking(move || {
        let argon2 = Argon2::default();
        match stored.as_deref().map(PasswordHash::new) {
            Some(Ok(parsed)) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
            _ => {
                let salt = SaltString::generate(&mut rand::rngs::OsRng);
                let _ = argon2.hash_password(password.as_bytes(), &salt);
                false
            }
        }
    })
    .await
    .map_err(|err| ApiError::internal("password verification task failed", err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let stored = hash("correct horse battery".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), Some(stored.clone()))
            .await
            .unwrap());
        assert!(!verify("wrong horse battery".into(), Some(stored))
            .await
            .unwrap());
        assert!(!verify("anything at all".into(), None).await.unwrap());
    }

    #[test]
    fn short_passwords_are_refused() {
        assert_eq!(validate("short").unwrap_err().code(), "VALIDATION");
        assert!(validate("long enough pass").is_ok());
    }
}
