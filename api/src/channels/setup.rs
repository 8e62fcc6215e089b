//! Telling a provider where to deliver webhooks, for providers that take it through their
//! API: Telegram (`setWebhook`, with the secret token its deliveries must echo), Viber
//! (`set_webhook`) and LINE (`PUT /v2/bot/channel/webhook/endpoint`). Meta, WeChat and
//! Twilio are set up in their own consoles with the account's webhook URL.
//!
//! Runs as a durable job queued with the connection, so a provider that is down when the
//! account is connected is tried again.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::ChannelType;
use crate::app::AppState;
use crate::jobs::{Handler, Job, Outcome};

pub const REGISTER_JOB: &str = "channel.register_webhook";

/// Whether connecting an account of this type queues a registration.
pub fn registers(kind: ChannelType) -> bool {
    matches!(
        kind,
        ChannelType::Telegram | ChannelType::Viber | ChannelType::Line
    )
}

fn base(state: &AppState, default: &str) -> String {
    state
        .config
        .channels
        .api_base
        .clone()
        .unwrap_or_else(|| default.to_string())
}

pub fn handler(state: AppState) -> Arc<dyn Handler> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default();
    Arc::new(Registrar { state, client })
}

struct Registrar {
    state: AppState,
    client: reqwest::Client,
}

impl Handler for Registrar {
    fn run(&self, job: Job) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match self.register(&job).await {
                Ok(()) => Outcome::Done,
                Err(reason) => Outcome::Retry(reason),
            }
        })
    }

    fn give_up(&self, job: Job, error: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            tracing::warn!(
                account = ?job.payload.get("account_id"),
                %error,
                "the provider did not accept the webhook URL; set it in the provider's console"
            );
        })
    }
}

impl Registrar {
    async fn register(&self, job: &Job) -> Result<(), String> {
        let Some(id) = job
            .payload
            .get("account_id")
            .and_then(Json::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
        else {
            return Ok(());
        };
        let facts: Option<(String, String, Vec<u8>)> = async {
            let mut tx = self.state.db.tenant(job.company_id).await?;
            let row = sqlx::query_as(
                "select type, status, credentials_sealed from channel_accounts where id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await
        .map_err(|e| format!("database: {e}"))?;
        let Some((kind, status, sealed)) = facts else {
            return Ok(());
        };
        if status != "ACTIVE" {
            return Ok(());
        }
        let kind = ChannelType::from_db(&kind);
        let credentials = super::open_credentials(&self.state.sealer, &sealed)?;
        let field = |key: &str| credentials.get(key).and_then(Json::as_str).unwrap_or("");
        let url = format!("{}/webhooks/{}/{}", self.state.base_url(), kind.slug(), id);
        let request = match kind {
            ChannelType::Telegram => self
                .client
                .post(format!(
                    "{}/bot{}/setWebhook",
                    base(&self.state, "https://api.telegram.org"),
                    field("bot_token")
                ))
                .json(&json!({
                    "url": url,
                    "secret_token": field("secret_token"),
                    "allowed_updates": ["message", "callback_query"],
                })),
            ChannelType::Viber => self
                .client
                .post(format!(
                    "{}/pa/set_webhook",
                    base(&self.state, "https://chatapi.viber.com")
                ))
                .header("X-Viber-Auth-Token", field("auth_token"))
                .json(&json!({
                    "url": url,
                    "event_types": ["delivered", "seen", "failed", "subscribed",
                                    "unsubscribed", "conversation_started"],
                    "send_name": true,
                    "send_photo": false,
                })),
            ChannelType::Line => self
                .client
                .put(format!(
                    "{}/v2/bot/channel/webhook/endpoint",
                    base(&self.state, "https://api.line.me")
                ))
                .bearer_auth(field("channel_access_token"))
                .json(&json!({ "endpoint": url })),
            _ => return Ok(()),
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("{} unreachable: {}", kind.as_db(), e.without_url()))?;
        let status = response.status();
        let body: Json = response.json().await.unwrap_or(Json::Null);
        // Telegram answers {"ok": false, ...} and Viber {"status": n} with n > 0 on errors.
        let refused = !status.is_success()
            || body.get("ok") == Some(&Json::Bool(false))
            || body
                .get("status")
                .and_then(Json::as_i64)
                .is_some_and(|s| s != 0);
        if refused {
            let detail = body
                .get("description")
                .or(body.get("status_message"))
                .or(body.get("message"))
                .and_then(Json::as_str)
                .unwrap_or("no detail");
            return Err(format!(
                "{} refused the webhook URL ({status}): {}",
                kind.as_db(),
                detail.chars().take(200).collect::<String>()
            ));
        }
        tracing::info!(account = %id, "webhook URL registered with {}", kind.as_db());
        Ok(())
    }
}
