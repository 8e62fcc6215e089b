//! Names for contacts met on Messenger and Instagram, whose webhooks carry none: the
//! `contact.fetch_profile` job (queued by `inbound_conversation` when such a contact is
//! created) asks Meta's profile API and fills in the name, unless someone has given the
//! contact one meanwhile.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::app::AppState;
use crate::channels::ChannelType;
use crate::jobs::{Handler, Job, Outcome};

pub const PROFILE_JOB: &str = "contact.fetch_profile";

pub fn handler(state: AppState) -> Arc<dyn Handler> {
    Arc::new(Profiles { state })
}

struct Profiles {
    state: AppState,
}

impl Handler for Profiles {
    fn run(&self, job: Job) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match self.fetch(&job).await {
                Ok(outcome) => outcome,
                Err(err) => Outcome::Retry(format!("database: {err}")),
            }
        })
    }

    fn give_up(&self, _job: Job, error: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // The contact keeps no name; agents see its channel id and can name it.
            tracing::warn!(%error, "a contact's profile could not be read from Meta");
        })
    }
}

fn uuid_at(job: &Job, key: &str) -> Option<Uuid> {
    job.payload
        .get(key)
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

impl Profiles {
    async fn fetch(&self, job: &Job) -> sqlx::Result<Outcome> {
        let (Some(contact), Some(account), Some(user_id)) = (
            uuid_at(job, "contact_id"),
            uuid_at(job, "account_id"),
            job.payload.get("external_id").and_then(Json::as_str),
        ) else {
            return Ok(Outcome::Done);
        };
        let mut tx = self.state.db.tenant(job.company_id).await?;
        let found: Option<(String, Vec<u8>)> = sqlx::query_as(
            "select type, credentials_sealed from channel_accounts
             where id = $1 and status = 'ACTIVE'",
        )
        .bind(account)
        .fetch_optional(&mut *tx)
        .await?;
        drop(tx);
        let Some((kind, sealed)) = found else {
            return Ok(Outcome::Done);
        };
        let Ok(credentials) = crate::channels::open_credentials(&self.state.sealer, &sealed) else {
            return Ok(Outcome::Done);
        };
        let profile = match self
            .state
            .sender
            .profile(ChannelType::from_db(&kind), &credentials, user_id)
            .await
        {
            Ok(profile) => profile,
            Err(err) if err.retryable => return Ok(Outcome::Retry(err.reason)),
            Err(err) => {
                // Meta will not say (a user who blocked the page, a missing permission).
                tracing::info!(reason = %err.reason, "Meta gave no profile for a contact");
                return Ok(Outcome::Done);
            }
        };
        let clip = |name: Option<String>| name.map(|n| n.chars().take(200).collect::<String>());
        let (first, last) = (clip(profile.first_name), clip(profile.last_name));
        if first.is_none() && last.is_none() {
            return Ok(Outcome::Done);
        }
        let mut tx = self.state.db.tenant(job.company_id).await?;
        sqlx::query(
            "update contacts set first_name = $2, last_name = $3, updated_at = now()
             where id = $1 and first_name is null and last_name is null",
        )
        .bind(contact)
        .bind(first)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Outcome::Done)
    }
}
