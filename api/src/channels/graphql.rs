//! GraphQL for channel accounts.

use async_graphql::{Context, InputObject, Json, Object, ID};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{AccountRow, ChannelType};
use crate::error::ApiResult;
use crate::graphql::{actor, parse_id, state, to_id};

/// A connected channel account. Its credentials are never returned.
pub struct ChannelAccount(pub AccountRow);

#[Object]
impl ChannelAccount {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    #[graphql(name = "type")]
    async fn kind(&self) -> ChannelType {
        self.0.kind()
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Where the provider must send this account's events: the full URL when the server
    /// knows its public address (`OBROL_PUBLIC_URL`), else a path on this server.
    async fn webhook_url(&self, ctx: &Context<'_>) -> String {
        match &state(ctx).config.channels.public_url {
            Some(base) => format!("{}{}", base.trim_end_matches('/'), self.0.webhook_path()),
            None => self.0.webhook_path(),
        }
    }

    /// ACTIVE (DISCONNECTED accounts are not listed).
    async fn status(&self) -> &str {
        &self.0.status
    }

    /// The account's id at the provider (phone number id, page id, bot id, ...), if any.
    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_deref()
    }

    /// Live chat: the websites allowed to use the widget.
    async fn widget_origins(&self) -> &[String] {
        &self.0.widget_origins
    }

    /// The team new conversations on this account go to (null: the company inbox).
    async fn team(&self, ctx: &Context<'_>) -> ApiResult<Option<crate::teams::graphql::Team>> {
        let Some(team) = self.0.team_id else {
            return Ok(None);
        };
        let actor = actor(ctx)?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let row = crate::teams::store::by_id(&mut tx, team).await?;
        tx.commit().await?;
        Ok(row.map(crate::teams::graphql::Team))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(InputObject)]
pub struct ConnectChannelInput {
    #[graphql(name = "type")]
    pub kind: ChannelType,
    pub name: String,
    /// The provider's credentials, by field: WHATSAPP access_token, phone_number_id,
    /// app_secret, verify_token (waba_id); INSTAGRAM access_token, instagram_account_id,
    /// app_secret, verify_token; MESSENGER page_access_token, page_id, app_secret,
    /// verify_token; WECHAT app_id, app_secret, token (encoding_aes_key); LINE channel_id,
    /// channel_access_token, channel_secret; TELEGRAM bot_token; VIBER auth_token; SMS
    /// account_sid, auth_token, phone_number; LIVE_CHAT none. Stored sealed, never returned.
    #[graphql(secret)]
    pub credentials: Json<Value>,
}

#[derive(Default)]
pub struct ChannelsQuery;

#[Object]
impl ChannelsQuery {
    /// The company's connected channel accounts, oldest first.
    async fn channel_accounts(&self, ctx: &Context<'_>) -> ApiResult<Vec<ChannelAccount>> {
        let rows = super::accounts(state(ctx), actor(ctx)?).await?;
        Ok(rows.into_iter().map(ChannelAccount).collect())
    }
}

#[derive(Default)]
pub struct ChannelsMutation;

#[Object]
impl ChannelsMutation {
    /// Connects a channel account (Admins). The credentials are checked for the fields the
    /// provider needs, sealed, and never shown again.
    async fn connect_channel(
        &self,
        ctx: &Context<'_>,
        input: ConnectChannelInput,
    ) -> ApiResult<ChannelAccount> {
        let row = super::connect(
            state(ctx),
            actor(ctx)?,
            input.kind,
            &input.name,
            &input.credentials.0,
        )
        .await?;
        Ok(ChannelAccount(row))
    }

    /// Sets the team whose routing new conversations on this account follow (Admins);
    /// null sends them to the company inbox.
    async fn set_channel_account_team(
        &self,
        ctx: &Context<'_>,
        channel_account_id: ID,
        team_id: Option<ID>,
    ) -> ApiResult<ChannelAccount> {
        let id = parse_id(&channel_account_id, "channel account")?;
        let team = team_id.map(|t| parse_id(&t, "team")).transpose()?;
        let row = super::set_team(state(ctx), actor(ctx)?, id, team).await?;
        Ok(ChannelAccount(row))
    }

    /// The websites (origins such as https://shop.example.com) allowed to open a live-chat
    /// account's widget (Admins). No origin: the widget is closed.
    async fn update_live_chat_widget(
        &self,
        ctx: &Context<'_>,
        channel_account_id: ID,
        allowed_origins: Vec<String>,
    ) -> ApiResult<ChannelAccount> {
        let id = parse_id(&channel_account_id, "channel account")?;
        let row = super::set_widget_origins(state(ctx), actor(ctx)?, id, &allowed_origins).await?;
        Ok(ChannelAccount(row))
    }

    /// Disconnects an account (Admins): its webhooks are refused from then on and its
    /// credentials are erased. Returns its id.
    async fn disconnect_channel(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let id = parse_id(&id, "channel account")?;
        Ok(to_id(super::disconnect(state(ctx), actor(ctx)?, id).await?))
    }
}
