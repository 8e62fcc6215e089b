//! Channels (PRODUCT.md §2): the channel accounts a company connects, one per WhatsApp
//! number, Instagram account, Messenger page, WeChat service account, LINE channel, Telegram
//! bot, Viber bot, Twilio number or live-chat widget.
//!
//! Credentials are checked against what each provider needs, sealed with the server's key
//! before they reach the database, and never returned by the API nor logged (the GraphQL
//! argument is marked secret). Each account has a webhook URL with its own id, which the
//! provider is given when it is set up.

pub mod graphql;
pub mod inbound;
pub mod model;
pub mod outbound;
pub mod setup;
pub mod webhook;
pub mod widget;

use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::auth::secrets::Sealer;
use crate::auth::{Actor, ApiScope, Role};
use crate::error::{is_unique_violation, ApiError, ApiResult};

/// The nine kinds of channel.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelType {
    Whatsapp,
    Instagram,
    Messenger,
    Wechat,
    Line,
    Telegram,
    Viber,
    Sms,
    LiveChat,
}

impl ChannelType {
    pub const ALL: [ChannelType; 9] = [
        ChannelType::Whatsapp,
        ChannelType::Instagram,
        ChannelType::Messenger,
        ChannelType::Wechat,
        ChannelType::Line,
        ChannelType::Telegram,
        ChannelType::Viber,
        ChannelType::Sms,
        ChannelType::LiveChat,
    ];

    pub fn as_db(self) -> &'static str {
        match self {
            ChannelType::Whatsapp => "WHATSAPP",
            ChannelType::Instagram => "INSTAGRAM",
            ChannelType::Messenger => "MESSENGER",
            ChannelType::Wechat => "WECHAT",
            ChannelType::Line => "LINE",
            ChannelType::Telegram => "TELEGRAM",
            ChannelType::Viber => "VIBER",
            ChannelType::Sms => "SMS",
            ChannelType::LiveChat => "LIVE_CHAT",
        }
    }

    pub fn from_db(value: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|t| t.as_db() == value)
            .unwrap_or(ChannelType::LiveChat)
    }

    /// The path segment of its webhooks: `/webhooks/<slug>/<account id>`.
    pub fn slug(self) -> &'static str {
        match self {
            ChannelType::Whatsapp => "whatsapp",
            ChannelType::Instagram => "instagram",
            ChannelType::Messenger => "messenger",
            ChannelType::Wechat => "wechat",
            ChannelType::Line => "line",
            ChannelType::Telegram => "telegram",
            ChannelType::Viber => "viber",
            ChannelType::Sms => "sms",
            ChannelType::LiveChat => "live-chat",
        }
    }

    /// The credential fields a connection needs, then those it may have.
    fn credential_fields(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            ChannelType::Whatsapp => (
                &[
                    "access_token",
                    "phone_number_id",
                    "app_secret",
                    "verify_token",
                ],
                &["waba_id"],
            ),
            ChannelType::Instagram => (
                &[
                    "access_token",
                    "instagram_account_id",
                    "app_secret",
                    "verify_token",
                ],
                &[],
            ),
            ChannelType::Messenger => (
                &["page_access_token", "page_id", "app_secret", "verify_token"],
                &[],
            ),
            ChannelType::Wechat => (&["app_id", "app_secret", "token"], &["encoding_aes_key"]),
            ChannelType::Line => (
                &["channel_id", "channel_access_token", "channel_secret"],
                &[],
            ),
            ChannelType::Telegram => (&["bot_token"], &[]),
            ChannelType::Viber => (&["auth_token"], &[]),
            ChannelType::Sms => (&["account_sid", "auth_token", "phone_number"], &[]),
            ChannelType::LiveChat => (&[], &[]),
        }
    }

    /// The credential naming the account at the provider, if the channel has one.
    fn external_id(self, credentials: &Map<String, Json>) -> Option<String> {
        let field = |key: &str| {
            credentials
                .get(key)
                .and_then(Json::as_str)
                .map(str::to_string)
        };
        match self {
            ChannelType::Whatsapp => field("phone_number_id"),
            ChannelType::Instagram => field("instagram_account_id"),
            ChannelType::Messenger => field("page_id"),
            ChannelType::Wechat => field("app_id"),
            ChannelType::Line => field("channel_id"),
            // A bot token is "<bot id>:<secret>".
            ChannelType::Telegram => field("bot_token")
                .and_then(|token| token.split_once(':').map(|(id, _)| id.to_string())),
            ChannelType::Sms => field("phone_number"),
            ChannelType::Viber | ChannelType::LiveChat => None,
        }
    }
}

/// Checks credentials against what `kind` needs: an object of non-empty strings with every
/// required field and no unknown one. Telegram gets a generated secret token, which its
/// webhooks must echo.
fn checked_credentials(kind: ChannelType, credentials: &Json) -> ApiResult<Map<String, Json>> {
    let object = credentials
        .as_object()
        .ok_or_else(|| ApiError::validation("credentials are a JSON object of text fields"))?;
    let (required, optional) = kind.credential_fields();
    let mut clean = Map::new();
    for (key, value) in object {
        if !required.contains(&key.as_str()) && !optional.contains(&key.as_str()) {
            return Err(ApiError::validation(format!(
                "{} credentials have no field '{}'; they are {}",
                kind.as_db(),
                crate::contacts::properties::truncate(key, 60),
                describe(required, optional)
            )));
        }
        let text = value.as_str().map(str::trim).unwrap_or("");
        if text.is_empty() || text.len() > 4096 || text.chars().any(char::is_control) {
            return Err(ApiError::validation(format!(
                "credential '{key}' must be non-empty text of at most 4,096 characters"
            )));
        }
        clean.insert(key.clone(), Json::String(text.to_string()));
    }
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|key| !clean.contains_key(*key))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::validation(format!(
            "{} credentials need {}",
            kind.as_db(),
            missing.join(", ")
        )));
    }
    if kind == ChannelType::Telegram {
        let token = clean["bot_token"].as_str().unwrap_or_default();
        let well_formed = token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !secret.is_empty()
        });
        if !well_formed {
            return Err(ApiError::validation(
                "a Telegram bot token looks like 123456789:AA... (from @BotFather)",
            ));
        }
        let (secret, _) = crate::auth::tokens::generate("");
        clean.insert("secret_token".into(), Json::String(secret));
    }
    if kind == ChannelType::Sms {
        let number = clean["phone_number"].as_str().unwrap_or_default();
        let normalized = crate::contacts::properties::normalize_phone(number).ok_or_else(|| {
            ApiError::validation(
                "an SMS phone number is in international form, such as +14155550100",
            )
        })?;
        clean.insert("phone_number".into(), Json::String(normalized));
    }
    Ok(clean)
}

fn describe(required: &[&str], optional: &[&str]) -> String {
    let mut text = if required.is_empty() {
        "none".to_string()
    } else {
        required.join(", ")
    };
    if !optional.is_empty() {
        text.push_str(&format!(" (optional: {})", optional.join(", ")));
    }
    text
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct AccountRow {
    pub id: Uuid,
    pub r#type: String,
    pub name: String,
    pub external_id: Option<String>,
    pub status: String,
    pub team_id: Option<Uuid>,
    pub widget_origins: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl AccountRow {
    pub fn kind(&self) -> ChannelType {
        ChannelType::from_db(&self.r#type)
    }

    /// Where the provider sends this account's events (a path on this server).
    pub fn webhook_path(&self) -> String {
        format!("/webhooks/{}/{}", self.kind().slug(), self.id)
    }
}

const ACCOUNT_COLUMNS: &str =
    "id, type, name, external_id, status, team_id, widget_origins, created_at";

pub async fn connect(
    state: &AppState,
    actor: &Actor,
    kind: ChannelType,
    name: &str,
    credentials: &Json,
) -> ApiResult<AccountRow> {
    actor.require(Role::Admin, ApiScope::ChannelsWrite)?;
    let name = crate::users::normalize_name(name, "channel name", 100)?;
    let credentials = checked_credentials(kind, credentials)?;
    let external_id = kind.external_id(&credentials);
    let sealed = state
        .sealer
        .seal(Json::Object(credentials).to_string().as_bytes())
        .map_err(|e| ApiError::internal("sealing channel credentials", e))?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let row: AccountRow = sqlx::query_as(&format!(
        "insert into channel_accounts (id, company_id, type, name, external_id, credentials_sealed)
         values ($1, $2, $3, $4, $5, $6) returning {ACCOUNT_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(kind.as_db())
    .bind(&name)
    .bind(&external_id)
    .bind(sealed)
    .fetch_one(&mut *tx)
    .await
    .map_err(|err| {
        if is_unique_violation(&err, "channel_accounts_external_key") {
            ApiError::conflict(
                "this provider account is already connected; disconnect it there first",
            )
        } else {
            err.into()
        }
    })?;
    if setup::registers(kind) {
        crate::jobs::enqueue(
            &mut tx,
            actor.company_id,
            setup::REGISTER_JOB,
            json!({ "account_id": row.id.to_string() }),
        )
        .await?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry::new("CHANNEL_CONNECTED")
            .target("channel_account", row.id)
            .details(json!({ "type": kind.as_db(), "name": name })),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn accounts(state: &AppState, actor: &Actor) -> ApiResult<Vec<AccountRow>> {
    actor.require(Role::Staff, ApiScope::ChannelsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(&format!(
        "select {ACCOUNT_COLUMNS} from channel_accounts where status = 'ACTIVE'
         order by created_at, id"
    ))
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

/// Disconnects an account: its webhooks stop being accepted and its credentials are erased.
pub async fn disconnect(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<Uuid> {
    actor.require(Role::Admin, ApiScope::ChannelsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let done = sqlx::query(
        "update channel_accounts set status = 'DISCONNECTED', credentials_sealed = '\\x'::bytea,
             updated_at = now()
         where id = $1 and status = 'ACTIVE'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("channel account"));
    }
    audit::record(
        &mut tx,
        actor,
        Entry::new("CHANNEL_DISCONNECTED").target("channel_account", id),
    )
    .await?;
    commit_account_change(state, tx, actor.company_id, id).await?;
    Ok(id)
}

pub async fn account_by_id(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<AccountRow>> {
    sqlx::query_as(&format!(
        "select {ACCOUNT_COLUMNS} from channel_accounts where id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Sets the team new conversations on this account go to (None: the company inbox).
pub async fn set_team(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    team_id: Option<Uuid>,
) -> ApiResult<AccountRow> {
    actor.require(Role::Admin, ApiScope::ChannelsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    if let Some(team) = team_id {
        if crate::teams::store::by_id(&mut tx, team).await?.is_none() {
            return Err(ApiError::not_found("team"));
        }
    }
    let row: Option<AccountRow> = sqlx::query_as(&format!(
        "update channel_accounts set team_id = $2, updated_at = now()
         where id = $1 and status = 'ACTIVE' returning {ACCOUNT_COLUMNS}"
    ))
    .bind(id)
    .bind(team_id)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found("channel account"))?;
    audit::record(
        &mut tx,
        actor,
        Entry::new("CHANNEL_TEAM_CHANGED")
            .target("channel_account", id)
            .details(json!({ "teamId": team_id })),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// "https://shop.example.com" or "http://localhost:3000": a scheme, a host and maybe a port,
/// as browsers send it in `Origin`.
fn checked_origin(origin: &str) -> ApiResult<String> {
    let origin = origin.trim().trim_end_matches('/');
    let parsed = url::Url::parse(origin).ok().filter(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.path() == "/"
            && url.query().is_none()
            && url.username().is_empty()
    });
    match parsed {
        Some(url) => Ok(url.origin().ascii_serialization()),
        None => Err(ApiError::validation(format!(
            "'{}' is not an origin such as https://shop.example.com",
            crate::contacts::properties::truncate(origin, 80)
        ))),
    }
}

/// The websites allowed to use a live-chat account's widget (Admins).
pub async fn set_widget_origins(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    origins: &[String],
) -> ApiResult<AccountRow> {
    actor.require(Role::Admin, ApiScope::ChannelsWrite)?;
    if origins.len() > 50 {
        return Err(ApiError::validation("at most 50 origins"));
    }
    let mut clean: Vec<String> = origins
        .iter()
        .map(|o| checked_origin(o))
        .collect::<ApiResult<_>>()?;
    clean.sort();
    clean.dedup();
    let mut tx = state.db.tenant(actor.company_id).await?;
    let row: Option<AccountRow> = sqlx::query_as(&format!(
        "update channel_accounts set widget_origins = $2, updated_at = now()
         where id = $1 and status = 'ACTIVE' and type = 'LIVE_CHAT' returning {ACCOUNT_COLUMNS}"
    ))
    .bind(id)
    .bind(&clean)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found("live-chat channel account"))?;
    audit::record(
        &mut tx,
        actor,
        Entry::new("WIDGET_ORIGINS_CHANGED")
            .target("channel_account", id)
            .details(json!({ "origins": clean })),
    )
    .await?;
    commit_account_change(state, tx, actor.company_id, id).await?;
    Ok(row)
}

/// Commits a change to account `id` and makes every node read it again: this node forgets
/// its cached copy at once, the others when the event reaches them.
async fn commit_account_change(
    state: &AppState,
    mut tx: crate::db::TenantTx,
    company_id: Uuid,
    id: Uuid,
) -> ApiResult<()> {
    crate::events::publish(
        &mut tx,
        &crate::events::Event {
            company_id,
            kind: crate::events::EventKind::ChannelAccountChanged { account_id: id },
        },
    )
    .await?;
    tx.commit().await?;
    state.webhook_accounts.forget(id);
    Ok(())
}

/// An account's credentials as stored (sealed with the server's key), opened: a JSON object.
pub fn open_credentials(sealer: &Sealer, sealed: &[u8]) -> Result<Map<String, Json>, String> {
    let opened = sealer
        .open(sealed)
        .map_err(|_| "channel credentials cannot be opened".to_string())?;
    match serde_json::from_slice::<Json>(&opened) {
        Ok(Json::Object(map)) => Ok(map),
        _ => Err("channel credentials are not an object".to_string()),
    }
}
