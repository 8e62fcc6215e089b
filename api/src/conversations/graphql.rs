//! GraphQL for conversations, messages, templates and routing.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{
    Context, Enum, ErrorExtensions, InputObject, Json, Object, SimpleObject, Subscription, Upload,
    ID,
};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use super::routing::{RoutingMethod, RoutingRow, RoutingSettings, SkillOption};
use super::send::SendInput;
use super::templates::{NewTemplate, TemplateCategory, TemplateRow, TemplateStatus};
use super::{Access, ConversationRow, InboxView, ListFilter, MessageRow};
use crate::app::AppState;
use crate::auth::{ApiScope, Role};
use crate::channels::graphql::ChannelAccount;
use crate::channels::model::Choice;
use crate::channels::ChannelType;
use crate::contacts::graphql::Contact;
use crate::error::{ApiError, ApiResult};
use crate::events::{ConversationScope, EventKind};
use crate::graphql::connection::{page_request, Totals, DEFAULT_PAGE, MAX_PAGE};
use crate::graphql::loaders::{FilesOfMessage, UserById};
use crate::graphql::ws::while_authorized;
use crate::graphql::{actor, loader, parse_id, state, to_id};
use crate::teams::graphql::Team;
use crate::users::graphql::User;

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversationStatus {
    Open,
    Closed,
}

/// Who opened a conversation.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversationSource {
    Contact,
    Business,
}

pub struct Conversation(pub ConversationRow);

/// Whether free-form messages may be sent now, by the channel's rules.
#[derive(SimpleObject)]
pub struct ConversationWindow {
    /// Free-form messages are allowed now.
    pub open: bool,
    /// When free-form messages stop being allowed (null: the channel has no window).
    pub closes_at: Option<DateTime<Utc>>,
    /// Messenger: until when a reply tagged HUMAN_AGENT is allowed.
    pub human_agent_until: Option<DateTime<Utc>>,
    /// WhatsApp outside the window: only an approved template may be sent.
    pub template_required: bool,
}

#[Object]
impl Conversation {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    /// The contact (null if erased meanwhile).
    async fn contact(&self, ctx: &Context<'_>) -> ApiResult<Option<Contact>> {
        let actor = actor(ctx)?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let properties = crate::contacts::store::properties(&mut tx).await?;
        let rows =
            crate::contacts::store::by_ids(&mut tx, &[self.0.contact_id], &properties).await?;
        tx.commit().await?;
        Ok(rows.into_iter().next().map(Contact))
    }

    /// The account replies leave through: the one the contact last wrote on.
    async fn channel_account(&self, ctx: &Context<'_>) -> ApiResult<Option<ChannelAccount>> {
        let Some(id) = self.0.channel_account_id else {
            return Ok(None);
        };
        let actor = actor(ctx)?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let row = crate::channels::account_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(row.map(ChannelAccount))
    }

    async fn status(&self) -> ConversationStatus {
        if self.0.is_open() {
            ConversationStatus::Open
        } else {
            ConversationStatus::Closed
        }
    }

    async fn source(&self) -> ConversationSource {
        if self.0.source == "BUSINESS" {
            ConversationSource::Business
        } else {
            ConversationSource::Contact
        }
    }

    async fn team(&self, ctx: &Context<'_>) -> ApiResult<Option<Team>> {
        let Some(team) = self.0.team_id else {
            return Ok(None);
        };
        let actor = actor(ctx)?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let row = crate::teams::store::by_id(&mut tx, team).await?;
        tx.commit().await?;
        Ok(row.map(Team))
    }

    async fn assignee(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        let Some(user) = self.0.assignee_id else {
            return Ok(None);
        };
        Ok(loader(ctx)?.load_one(UserById(user)).await?.map(User))
    }

    async fn assigned_at(&self) -> Option<DateTime<Utc>> {
        self.0.assigned_at
    }

    /// Waiting for an agent with room (round robin with every agent at their cap).
    async fn queued(&self) -> bool {
        self.0.queued_at.is_some()
    }

    /// The contact's first message nobody has answered yet.
    async fn awaiting_reply_since(&self) -> Option<DateTime<Utc>> {
        self.0.awaiting_reply_since
    }

    async fn unread_count(&self) -> i32 {
        self.0.unread_count
    }

    async fn last_message_at(&self) -> DateTime<Utc> {
        self.0.last_message_at
    }

    async fn last_message_preview(&self) -> Option<&str> {
        self.0.last_message_preview.as_deref()
    }

    async fn opened_at(&self) -> DateTime<Utc> {
        self.0.opened_at
    }

    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }

    /// The channel's conversation window, from the contact's last message on the account.
    async fn window(&self, ctx: &Context<'_>) -> ApiResult<Option<ConversationWindow>> {
        let Some(account) = self.0.channel_account_id else {
            return Ok(None);
        };
        let actor = actor(ctx)?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let facts: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
            "select a.type, (select max(m.sent_at) from messages m
                             where m.contact_id = $2 and m.channel_account_id = a.id
                               and m.direction = 'INBOUND')
             from channel_accounts a where a.id = $1",
        )
        .bind(account)
        .bind(self.0.contact_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some((kind, last)) = facts else {
            return Ok(None);
        };
        let kind = ChannelType::from_db(&kind);
        let now = Utc::now();
        let closes_at =
            super::window::closes_at(kind, last).filter(|c| *c > DateTime::<Utc>::MIN_UTC);
        let open = super::window::check(kind, last, now, Default::default()).is_ok();
        Ok(Some(ConversationWindow {
            open,
            closes_at,
            human_agent_until: (kind == ChannelType::Messenger)
                .then(|| last.map(|at| at + super::window::HUMAN_AGENT_WINDOW))
                .flatten(),
            template_required: kind == ChannelType::Whatsapp && !open,
        }))
    }

    /// Messages and notes, newest first.
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Connection<String, Message, Totals>> {
        let request = page_request(first, after)?;
        let rows = super::messages(
            state(ctx),
            actor(ctx)?,
            self.0.id,
            request.after,
            request.size,
        )
        .await?;
        let has_next = rows.len() > request.size;
        let mut connection = Connection::with_additional_fields(
            request.after.is_some(),
            has_next,
            Totals { total_count: -1 },
        );
        connection
            .edges
            .extend(rows.into_iter().take(request.size).map(|row| {
                Edge::new(
                    crate::graphql::connection::encode_cursor(row.id),
                    Message(row),
                )
            }));
        Ok(connection)
    }
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageDirection {
    Inbound,
    Outbound,
    /// Notes and other messages that never leave the platform.
    Internal,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageSender {
    Contact,
    User,
    AiAgent,
    System,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageStatus {
    Received,
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
    Note,
}

pub struct Message(pub MessageRow);

#[Object]
impl Message {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn conversation_id(&self) -> ID {
        to_id(self.0.conversation_id)
    }

    async fn direction(&self) -> MessageDirection {
        match self.0.direction.as_str() {
            "INBOUND" => MessageDirection::Inbound,
            "OUTBOUND" => MessageDirection::Outbound,
            _ => MessageDirection::Internal,
        }
    }

    async fn sender_type(&self) -> MessageSender {
        match self.0.sender_type.as_str() {
            "CONTACT" => MessageSender::Contact,
            "USER" => MessageSender::User,
            "AI_AGENT" => MessageSender::AiAgent,
            _ => MessageSender::System,
        }
    }

    /// The user who wrote it (messages and notes by people).
    async fn sender(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        let Some(user) = self.0.sender_user_id else {
            return Ok(None);
        };
        Ok(loader(ctx)?.load_one(UserById(user)).await?.map(User))
    }

    /// The message in the platform's model: `{kind: TEXT, body}`, `{kind: MEDIA, media, url |
    /// providerMediaId, mimeType, caption}`, `{kind: LOCATION, latitude, longitude}`,
    /// `{kind: INTERACTIVE_REPLY, id, title}`, `{kind: POSTBACK, payload}`, and for outbound
    /// messages TEMPLATE, QUICK_REPLIES, LIST; notes are `{kind: NOTE, body}`.
    async fn content(&self) -> Json<Value> {
        Json(self.0.content.clone())
    }

    /// The message's file, if it has one: a contact's file is PENDING until it has been
    /// fetched from the provider (or FAILED, with the reason).
    async fn attachments(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Vec<crate::contacts::graphql::ContactMedia>> {
        if self.0.content.get("kind").and_then(Value::as_str) != Some("MEDIA") {
            return Ok(Vec::new());
        }
        Ok(loader(ctx)?
            .load_one(FilesOfMessage(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(crate::contacts::graphql::ContactMedia)
            .collect())
    }

    /// A line of text: the body, a caption, or a short description of what it is.
    async fn text(&self) -> &str {
        &self.0.preview
    }

    async fn is_note(&self) -> bool {
        self.0.is_note
    }

    async fn mentions(&self, ctx: &Context<'_>) -> ApiResult<Vec<User>> {
        let loaded = loader(ctx)?
            .load_many(self.0.mentions.iter().copied().map(UserById))
            .await?;
        Ok(self
            .0
            .mentions
            .iter()
            .filter_map(|id| loaded.get(&UserById(*id)).cloned().map(User))
            .collect())
    }

    async fn status(&self) -> MessageStatus {
        match self.0.status.as_str() {
            "RECEIVED" => MessageStatus::Received,
            "QUEUED" => MessageStatus::Queued,
            "SENT" => MessageStatus::Sent,
            "DELIVERED" => MessageStatus::Delivered,
            "READ" => MessageStatus::Read,
            "FAILED" => MessageStatus::Failed,
            _ => MessageStatus::Note,
        }
    }

    /// Why sending failed: the provider's code and message, or ours.
    async fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }

    /// The provider's id for the message.
    async fn provider_message_id(&self) -> Option<&str> {
        self.0.provider_message_id.as_deref()
    }

    async fn status_at(&self) -> Option<DateTime<Utc>> {
        self.0.status_at
    }

    /// When the contact sent it (inbound) or it was sent (outbound).
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

pub struct MessageTemplate(pub TemplateRow);

#[Object]
impl MessageTemplate {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn channel_account_id(&self) -> ID {
        to_id(self.0.channel_account_id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn language(&self) -> &str {
        &self.0.language
    }

    async fn category(&self) -> TemplateCategory {
        match self.0.category.as_str() {
            "MARKETING" => TemplateCategory::Marketing,
            "AUTHENTICATION" => TemplateCategory::Authentication,
            _ => TemplateCategory::Utility,
        }
    }

    /// The text with numbered variables: "Hi {{1}}, your order {{2}} has shipped."
    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn variable_count(&self) -> i32 {
        self.0.variable_count
    }

    async fn status(&self) -> TemplateStatus {
        TemplateStatus::from_db(&self.0.status)
    }

    async fn rejection_reason(&self) -> Option<&str> {
        self.0.rejection_reason.as_deref()
    }

    /// Meta's id for the template, when Obrol submitted it for review.
    async fn provider_template_id(&self) -> Option<&str> {
        self.0.provider_template_id.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(SimpleObject)]
pub struct RoutingOption {
    pub id: String,
    pub title: String,
    pub team_id: ID,
}

pub struct TeamRouting(pub RoutingRow);

#[Object]
impl TeamRouting {
    async fn team_id(&self) -> ID {
        to_id(self.0.team_id)
    }

    async fn method(&self) -> RoutingMethod {
        self.0.method()
    }

    async fn max_open_per_agent(&self) -> Option<i32> {
        self.0.max_open_per_agent
    }

    async fn reassign_after_minutes(&self) -> Option<i32> {
        self.0.reassign_after_minutes
    }

    async fn skill_question(&self) -> Option<&str> {
        self.0.skill_question.as_deref()
    }

    async fn skill_options(&self) -> Vec<RoutingOption> {
        self.0
            .options()
            .into_iter()
            .map(|o| RoutingOption {
                id: o.id,
                title: o.title,
                team_id: to_id(o.team_id),
            })
            .collect()
    }

    async fn skill_property(&self) -> Option<&str> {
        self.0.skill_property.as_deref()
    }

    async fn skill_nudge_after_minutes(&self) -> Option<i32> {
        self.0.skill_nudge_after_minutes
    }

    async fn skill_nudge_text(&self) -> Option<&str> {
        self.0.skill_nudge_text.as_deref()
    }
}

#[derive(InputObject, Default)]
pub struct ConversationFilter {
    /// MINE (assigned to me or mentioning me), TEAM (my teams', or `teamId`'s), COMPANY
    /// (everything I may see; the default).
    pub view: Option<InboxView>,
    pub team_id: Option<ID>,
    /// Only conversations nobody is assigned to (a team's Unassigned pool).
    #[graphql(default)]
    pub unassigned: bool,
    pub status: Option<ConversationStatus>,
    #[graphql(default)]
    pub channels: Vec<ChannelType>,
    /// Conversations whose contact has any of these labels.
    #[graphql(default)]
    pub label_ids: Vec<ID>,
    pub assignee_id: Option<ID>,
    pub contact_id: Option<ID>,
}

#[derive(InputObject)]
pub struct ChoiceInput {
    /// Comes back when the contact picks it.
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

#[derive(InputObject)]
pub struct SendMessageInput {
    pub conversation_id: ID,
    pub text: Option<String>,
    /// An approved WhatsApp template, with `templateVariables` for {{1}}, {{2}}, ...
    pub template_id: Option<ID>,
    #[graphql(default)]
    pub template_variables: Vec<String>,
    /// At most 3 buttons, under `text`.
    #[graphql(default)]
    pub quick_replies: Vec<ChoiceInput>,
    /// At most 10 options behind a button (`listButton`, default "Choose"), under `text`.
    #[graphql(default)]
    pub list_options: Vec<ChoiceInput>,
    pub list_button: Option<String>,
    /// Messenger: a human agent's reply up to 7 days after the contact's last message.
    #[graphql(default)]
    pub human_agent_tag: bool,
    /// A file (GraphQL multipart upload, up to 20 MB and the channel's own limit), sent with
    /// `text` as its caption. One per message.
    #[graphql(default)]
    pub attachments: Vec<Upload>,
}

#[derive(InputObject)]
pub struct AddNoteInput {
    pub conversation_id: ID,
    pub text: String,
    /// Users who then see the conversation in their inbox.
    #[graphql(default)]
    pub mention_user_ids: Vec<ID>,
}

#[derive(InputObject)]
pub struct AssignConversationInput {
    pub conversation_id: ID,
    /// The agent (null: nobody — back to the team's pool).
    pub user_id: Option<ID>,
    /// The team (null: keep the conversation's team).
    pub team_id: Option<ID>,
}

#[derive(InputObject)]
pub struct CreateMessageTemplateInput {
    pub channel_account_id: ID,
    /// Lower-case letters, digits and underscores.
    pub name: String,
    /// en, en_US, pt_BR ...
    pub language: String,
    pub category: TemplateCategory,
    pub body: String,
    /// A sample value for each variable, in order ({{1}} first). Meta reviews a template
    /// with variables only with them: required when the account has a `waba_id`, through
    /// which the template is submitted to Meta.
    #[graphql(default)]
    pub examples: Vec<String>,
}

#[derive(InputObject)]
pub struct StartConversationInput {
    pub contact_id: ID,
    pub channel_account_id: ID,
}

#[derive(InputObject)]
pub struct RoutingOptionInput {
    pub id: String,
    pub title: String,
    pub team_id: ID,
}

#[derive(InputObject)]
pub struct UpdateTeamRoutingInput {
    pub team_id: ID,
    pub method: RoutingMethod,
    /// Round robin: the most open conversations an agent is given (null: no cap).
    pub max_open_per_agent: Option<i32>,
    /// Round robin: move a conversation to the next agent when its agent has not replied
    /// within this many minutes (null: never).
    pub reassign_after_minutes: Option<i32>,
    /// Skill based: the question, its 2–10 options (each naming a team), the text or
    /// single-select contact property the answer is saved to, and the nudge.
    pub skill_question: Option<String>,
    #[graphql(default)]
    pub skill_options: Vec<RoutingOptionInput>,
    pub skill_property: Option<String>,
    pub skill_nudge_after_minutes: Option<i32>,
    pub skill_nudge_text: Option<String>,
}

fn ids(list: &[ID], what: &str) -> ApiResult<Vec<Uuid>> {
    list.iter().map(|id| parse_id(id, what)).collect()
}

fn choices(list: Vec<ChoiceInput>) -> Vec<Choice> {
    list.into_iter()
        .map(|c| Choice {
            id: c.id,
            title: c.title,
            description: c.description,
        })
        .collect()
}

#[derive(Default)]
pub struct ConversationsQuery;

#[Object]
impl ConversationsQuery {
    /// The inbox: conversations the caller may see, most recent activity first.
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConversationFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Connection<String, Conversation, Totals>> {
        let filter = filter.unwrap_or_default();
        let size = first.unwrap_or(DEFAULT_PAGE);
        if !(0..=MAX_PAGE).contains(&size) {
            return Err(ApiError::validation(format!(
                "'first' must be between 0 and {MAX_PAGE}"
            )));
        }
        let after = after.as_deref().map(super::decode_cursor).transpose()?;
        let list = ListFilter {
            view: filter.view,
            team_id: filter
                .team_id
                .as_ref()
                .map(|t| parse_id(t, "team"))
                .transpose()?,
            unassigned: filter.unassigned,
            status: filter.status.map(|s| match s {
                ConversationStatus::Open => "OPEN".to_string(),
                ConversationStatus::Closed => "CLOSED".to_string(),
            }),
            channels: filter.channels,
            label_ids: ids(&filter.label_ids, "label")?,
            assignee_id: filter
                .assignee_id
                .as_ref()
                .map(|a| parse_id(a, "user"))
                .transpose()?,
            contact_id: filter
                .contact_id
                .as_ref()
                .map(|c| parse_id(c, "contact"))
                .transpose()?,
        };
        let (rows, total) =
            super::list(state(ctx), actor(ctx)?, &list, after, size as usize).await?;
        let has_next = rows.len() > size as usize;
        let mut connection = Connection::with_additional_fields(
            after.is_some(),
            has_next,
            Totals { total_count: total },
        );
        connection.edges.extend(
            rows.into_iter()
                .take(size as usize)
                .map(|row| Edge::new(super::encode_cursor(&row), Conversation(row))),
        );
        Ok(connection)
    }

    async fn conversation(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Conversation> {
        let id = parse_id(&id, "conversation")?;
        Ok(Conversation(super::get(state(ctx), actor(ctx)?, id).await?))
    }

    /// WhatsApp templates, of one account or all.
    async fn message_templates(
        &self,
        ctx: &Context<'_>,
        channel_account_id: Option<ID>,
    ) -> ApiResult<Vec<MessageTemplate>> {
        let account = channel_account_id
            .map(|id| parse_id(&id, "channel account"))
            .transpose()?;
        let rows = super::templates::list(state(ctx), actor(ctx)?, account).await?;
        Ok(rows.into_iter().map(MessageTemplate).collect())
    }

    /// How a team hands out conversations (CHERRY_PICK when never set).
    async fn team_routing(&self, ctx: &Context<'_>, team_id: ID) -> ApiResult<TeamRouting> {
        let team = parse_id(&team_id, "team")?;
        Ok(TeamRouting(
            super::routing::get(state(ctx), actor(ctx)?, team).await?,
        ))
    }
}

#[derive(Default)]
pub struct ConversationsMutation;

#[Object]
impl ConversationsMutation {
    /// Sends a message on the conversation's channel. Checked before anything is queued:
    /// the channel's window (WINDOW_CLOSED says what is allowed), what it can carry, and its
    /// limits (VALIDATION). The message is QUEUED, then SENT, DELIVERED, READ or FAILED.
    async fn send_message(&self, ctx: &Context<'_>, input: SendMessageInput) -> ApiResult<Message> {
        let files = input.attachments;
        let input = SendInput {
            conversation_id: parse_id(&input.conversation_id, "conversation")?,
            text: input.text,
            template_id: input
                .template_id
                .as_ref()
                .map(|t| parse_id(t, "message template"))
                .transpose()?,
            template_variables: input.template_variables,
            quick_replies: choices(input.quick_replies),
            list_button: input.list_button,
            list_options: choices(input.list_options),
            human_agent_tag: input.human_agent_tag,
            attachments: Vec::new(),
        };
        let mut input = input;
        for file in files {
            let content_type = file.value(ctx).ok().and_then(|v| v.content_type.clone());
            let (name, bytes) = crate::knowledge::graphql::read_upload(ctx, file).await?;
            if bytes.len() as u64 > obrol_knowledge::limits::MAX_BYTES {
                return Err(ApiError::validation(format!(
                    "{name} is larger than {} MB, the most a message's file may be",
                    obrol_knowledge::limits::MAX_BYTES / (1024 * 1024)
                )));
            }
            input.attachments.push(super::attachments::Upload {
                name,
                content_type,
                bytes,
            });
        }
        let row = super::send::send_message(state(ctx), actor(ctx)?, input).await?;
        Ok(Message(row))
    }

    /// An internal note, never sent to the contact; mentioned users see the conversation.
    async fn add_note(&self, ctx: &Context<'_>, input: AddNoteInput) -> ApiResult<Message> {
        let id = parse_id(&input.conversation_id, "conversation")?;
        let mentions = ids(&input.mention_user_ids, "user")?;
        let row = super::add_note(state(ctx), actor(ctx)?, id, &input.text, &mentions).await?;
        Ok(Message(row))
    }

    async fn close_conversation(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Conversation> {
        let id = parse_id(&id, "conversation")?;
        Ok(Conversation(
            super::close(state(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// Opens a conversation with a contact from the business's side (source BUSINESS),
    /// assigned to the caller, on one of the company's channel accounts; the contact's open
    /// conversation if it has one. The contact must have written on that channel before, or
    /// (WhatsApp, SMS) have a phone number. Outside the channel's window only what the window
    /// allows can then be sent (a WhatsApp template).
    async fn start_conversation(
        &self,
        ctx: &Context<'_>,
        input: StartConversationInput,
    ) -> ApiResult<Conversation> {
        let contact = parse_id(&input.contact_id, "contact")?;
        let account = parse_id(&input.channel_account_id, "channel account")?;
        Ok(Conversation(
            super::start(state(ctx), actor(ctx)?, contact, account).await?,
        ))
    }

    /// Reopens a closed conversation (CONFLICT if the contact has opened another since).
    async fn reopen_conversation(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Conversation> {
        let id = parse_id(&id, "conversation")?;
        Ok(Conversation(
            super::reopen(state(ctx), actor(ctx)?, id).await?,
        ))
    }

    async fn mark_conversation_read(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Conversation> {
        let id = parse_id(&id, "conversation")?;
        Ok(Conversation(
            super::mark_read(state(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// Assigns to a user and/or a team. A conversation handed to another team without an
    /// agent follows that team's routing.
    async fn assign_conversation(
        &self,
        ctx: &Context<'_>,
        input: AssignConversationInput,
    ) -> ApiResult<Conversation> {
        let id = parse_id(&input.conversation_id, "conversation")?;
        let user = input.user_id.map(|u| parse_id(&u, "user")).transpose()?;
        let team = input.team_id.map(|t| parse_id(&t, "team")).transpose()?;
        Ok(Conversation(
            super::routing::assign(state(ctx), actor(ctx)?, id, user, team).await?,
        ))
    }

    /// "Assign to me" from a pool. Of several agents claiming at once exactly one wins; the
    /// others get CONFLICT.
    async fn claim_conversation(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Conversation> {
        let id = parse_id(&id, "conversation")?;
        Ok(Conversation(
            super::routing::claim(state(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// A WhatsApp template (Admins); it starts PENDING until Meta approves it.
    async fn create_message_template(
        &self,
        ctx: &Context<'_>,
        input: CreateMessageTemplateInput,
    ) -> ApiResult<MessageTemplate> {
        let row = super::templates::create(
            state(ctx),
            actor(ctx)?,
            NewTemplate {
                channel_account_id: parse_id(&input.channel_account_id, "channel account")?,
                name: input.name,
                language: input.language,
                category: input.category,
                body: input.body,
                examples: input.examples,
            },
        )
        .await?;
        Ok(MessageTemplate(row))
    }

    /// Records Meta's verdict on a template reviewed in Meta's own tools (Admins); Meta's
    /// webhook records it by itself when the account's webhook is subscribed.
    async fn set_message_template_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: TemplateStatus,
        reason: Option<String>,
    ) -> ApiResult<MessageTemplate> {
        let id = parse_id(&id, "message template")?;
        let row = super::templates::set_status(state(ctx), actor(ctx)?, id, status, reason).await?;
        Ok(MessageTemplate(row))
    }

    /// A team's routing (Admins, and Team Admins of the team).
    async fn update_team_routing(
        &self,
        ctx: &Context<'_>,
        input: UpdateTeamRoutingInput,
    ) -> ApiResult<TeamRouting> {
        let team = parse_id(&input.team_id, "team")?;
        let options = input
            .skill_options
            .into_iter()
            .map(|o| {
                Ok(SkillOption {
                    id: o.id.trim().to_string(),
                    title: o.title.trim().to_string(),
                    team_id: parse_id(&o.team_id, "team")?,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let row = super::routing::update(
            state(ctx),
            actor(ctx)?,
            team,
            RoutingSettings {
                method: input.method,
                max_open_per_agent: input.max_open_per_agent,
                reassign_after_minutes: input.reassign_after_minutes,
                skill_question: input.skill_question,
                skill_options: options,
                skill_property: input.skill_property,
                skill_nudge_after_minutes: input.skill_nudge_after_minutes,
                skill_nudge_text: input.skill_nudge_text,
            },
        )
        .await?;
        Ok(TeamRouting(row))
    }
}

/// Loads a conversation under the subscriber's company (row-level security applies).
async fn load_conversation(state: &AppState, company: Uuid, id: Uuid) -> Option<ConversationRow> {
    let mut tx = state.db.tenant(company).await.ok()?;
    let row = super::by_id(&mut tx, id).await.ok()?;
    tx.commit().await.ok()?;
    row
}

/// The conversation an event is about: the row it carries, else the row as read after the
/// event's new message (once for all subscribers), else the row as it is now.
async fn conversation_row(
    state: &AppState,
    company: Uuid,
    id: Uuid,
    carried: Option<Box<ConversationRow>>,
    after: Option<Uuid>,
) -> Option<ConversationRow> {
    match (carried, after) {
        (Some(row), _) => Some(*row),
        (None, Some(message)) => {
            state
                .shared_reads
                .conversation_after(company, id, message)
                .await
        }
        (None, None) => load_conversation(state, company, id).await,
    }
}

async fn load_message(state: &AppState, company: Uuid, id: Uuid) -> Option<MessageRow> {
    let mut tx = state.db.tenant(company).await.ok()?;
    let row = super::message_by_id(&mut tx, id).await.ok()?;
    tx.commit().await.ok()?;
    row
}

/// How long a subscription trusts the rights it last read (role, teams, the company's Staff
/// visibility); a demoted user or one removed from a team stops receiving within this.
const ACCESS_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// A subscriber's rights, read again when they are older than `ACCESS_REFRESH`.
#[derive(Clone)]
struct LiveAccess {
    state: AppState,
    company: Uuid,
    user: Uuid,
    current: std::sync::Arc<tokio::sync::Mutex<(std::time::Instant, Access)>>,
}

impl LiveAccess {
    async fn get(&self) -> Access {
        let mut current = self.current.lock().await;
        if current.0.elapsed() >= ACCESS_REFRESH {
            match self.reload().await {
                Ok(access) => *current = (std::time::Instant::now(), access),
                // Better to say nothing than to say too much.
                Err(_) => {
                    current.1 = Access {
                        me: self.user,
                        admin: false,
                        my_teams: Vec::new(),
                        own_only: true,
                    }
                }
            }
        }
        current.1.clone()
    }

    async fn reload(&self) -> ApiResult<Access> {
        let mut tx = self.state.db.tenant(self.company).await?;
        let role: Option<String> = sqlx::query_scalar("select role from users where id = $1")
            .bind(self.user)
            .fetch_optional(&mut *tx)
            .await?;
        let role = role.ok_or_else(|| ApiError::not_found("user"))?;
        let access = Access::of_user(&mut tx, self.user, Role::from_db(&role)).await?;
        tx.commit().await?;
        Ok(access)
    }
}

/// The subscriber's rights as the subscription starts.
async fn access_of(ctx: &Context<'_>) -> ApiResult<(AppState, Uuid, LiveAccess)> {
    let actor = actor(ctx)?;
    actor.require(Role::Staff, ApiScope::ConversationsRead)?;
    let state = state(ctx).clone();
    let mut tx = state.db.tenant(actor.company_id).await?;
    let access = Access::of(&mut tx, actor).await?;
    tx.commit().await?;
    let live = LiveAccess {
        state: state.clone(),
        company: actor.company_id,
        user: actor.user_id(),
        current: std::sync::Arc::new(tokio::sync::Mutex::new((std::time::Instant::now(), access))),
    };
    Ok((state, actor.company_id, live))
}

/// What a subscription hears: this company's events, each with the subscriber's rights as
/// they now are, or that it fell behind.
enum Feed {
    Event(EventKind, Access),
    /// The node's event buffer moved on before this subscriber read `n` events.
    Missed(u64),
}

fn company_events(
    state: &AppState,
    company: Uuid,
    live: LiveAccess,
) -> impl Stream<Item = Feed> + Send + 'static {
    BroadcastStream::new(state.events.subscribe_company(company)).filter_map(move |event| {
        let live = live.clone();
        async move {
            match event {
                Ok(event) if event.company_id == company => {
                    Some(Feed::Event(event.kind, live.get().await))
                }
                Ok(_) => None,
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    Some(Feed::Missed(n))
                }
            }
        }
    })
}

/// The error a subscriber gets, as its last item, when it fell behind: its view may be
/// missing changes, so it should subscribe again and reload rather than go on quietly.
fn missed(n: u64) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "this subscription fell behind and missed {n} events; subscribe again and reload"
    ))
    .extend_with(|_, e| e.set("code", "EVENTS_MISSED"))
}

/// Events whose rows one subscriber may be reading at once. Their answers still come in
/// event order; a busy inbox's reads overlap (and are batched by `SharedReads`) instead of
/// waiting for one another.
const READ_AHEAD: usize = 32;

/// Runs the reads of up to `READ_AHEAD` events at once, keeping their order, and drops the
/// events that give the subscriber nothing.
fn read_ahead<T: Send + 'static>(
    reads: impl Stream<Item = impl std::future::Future<Output = Option<T>> + Send + 'static>
        + Send
        + 'static,
) -> impl Stream<Item = T> + Send + 'static {
    reads.buffered(READ_AHEAD).filter_map(std::future::ready)
}

/// Ends `stream` after its first error.
fn until_error<T: Send + 'static>(
    stream: impl Stream<Item = async_graphql::Result<T>> + Send + 'static,
) -> impl Stream<Item = async_graphql::Result<T>> + Send + 'static {
    stream
        .scan(false, |ended, item| {
            if *ended {
                return std::future::ready(None);
            }
            *ended = item.is_err();
            std::future::ready(Some(item))
        })
        .fuse()
}

#[derive(Default)]
pub struct ConversationsSubscription;

#[Subscription]
impl ConversationsSubscription {
    /// New messages and notes (and status changes of sent messages) in conversations the
    /// subscriber may see, from every API node; one conversation's when given.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        conversation_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Message>>> {
        let only = conversation_id
            .map(|id| parse_id(&id, "conversation"))
            .transpose()?;
        let (state, company, access) = access_of(ctx).await?;
        let messages = read_ahead(company_events(&state, company, access).map(move |feed| {
            let state = state.clone();
            async move {
                let (kind, access) = match feed {
                    Feed::Event(kind, access) => (kind, access),
                    Feed::Missed(n) => return Some(Err(missed(n))),
                };
                let (conversation, message, scope, carried, added) = match kind {
                    EventKind::MessageAdded {
                        conversation_id,
                        message_id,
                        scope,
                        message,
                        ..
                    } => (conversation_id, message_id, scope, message, true),
                    EventKind::MessageUpdated {
                        conversation_id,
                        message_id,
                        scope,
                    } => (conversation_id, message_id, scope, None, false),
                    _ => return None,
                };
                if only.is_some_and(|c| c != conversation) || !access.allows(&scope) {
                    return None;
                }
                let row = match carried {
                    Some(row) => Some(*row),
                    // A new message is the same row for every subscriber: read once per node.
                    None if added => state.shared_reads.message(company, message).await,
                    None => load_message(&state, company, message).await,
                };
                row.map(|row| Ok(Message(row)))
            }
        }));
        Ok(while_authorized(
            ctx,
            until_error(messages),
            Role::Staff,
            ApiScope::ConversationsRead,
        ))
    }

    /// Changes to conversations the subscriber may see (status, assignment, unread count,
    /// last message); one conversation's when given.
    async fn conversation_updated(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Conversation>>> {
        let only = id.map(|id| parse_id(&id, "conversation")).transpose()?;
        let (state, company, access) = access_of(ctx).await?;
        let updates = read_ahead(company_events(&state, company, access).map(move |feed| {
            let state = state.clone();
            async move {
                let (kind, access) = match feed {
                    Feed::Event(kind, access) => (kind, access),
                    Feed::Missed(n) => return Some(Err(missed(n))),
                };
                // A new message changes its conversation too (last message, unread count).
                let (conversation_id, scope, conversation, after) = match kind {
                    EventKind::ConversationUpdated {
                        conversation_id,
                        scope,
                        conversation,
                        ..
                    } => (conversation_id, scope, conversation, None),
                    EventKind::MessageAdded {
                        conversation_id,
                        scope,
                        message_id,
                        ..
                    } => (conversation_id, scope, None, Some(message_id)),
                    _ => return None,
                };
                if only.is_some_and(|c| c != conversation_id) || !access.allows(&scope) {
                    return None;
                }
                let row =
                    conversation_row(&state, company, conversation_id, conversation, after).await?;
                access.allows(&row.scope()).then_some(Ok(Conversation(row)))
            }
        }));
        Ok(while_authorized(
            ctx,
            until_error(updates),
            Role::Staff,
            ApiScope::ConversationsRead,
        ))
    }

    /// Something changed in the subscriber's inbox: a conversation arrived, changed, or
    /// left it (`visible` false: it is no longer the subscriber's to see).
    async fn inbox_changed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<InboxChange>>> {
        let (state, company, access) = access_of(ctx).await?;
        let changes = read_ahead(company_events(&state, company, access).map(move |feed| {
            let state = state.clone();
            async move {
                let (kind, access) = match feed {
                    Feed::Event(kind, access) => (kind, access),
                    Feed::Missed(n) => return Some(Err(missed(n))),
                };
                let (conversation_id, scope, previous, conversation, after) = match kind {
                    EventKind::ConversationUpdated {
                        conversation_id,
                        scope,
                        previous,
                        conversation,
                    } => (conversation_id, scope, previous, conversation, None),
                    EventKind::MessageAdded {
                        conversation_id,
                        scope,
                        message_id,
                        ..
                    } => (conversation_id, scope, None, None, Some(message_id)),
                    _ => return None,
                };
                let sees = access.allows(&scope);
                let saw = previous
                    .as_ref()
                    .is_some_and(|p: &ConversationScope| access.allows(p));
                if !sees && !saw {
                    return None;
                }
                if !sees {
                    return Some(Ok(InboxChange {
                        conversation_id: to_id(conversation_id),
                        visible: false,
                        conversation: None,
                    }));
                }
                let row =
                    conversation_row(&state, company, conversation_id, conversation, after).await?;
                // It may have moved between the event and this read.
                if !access.allows(&row.scope()) {
                    return Some(Ok(InboxChange {
                        conversation_id: to_id(conversation_id),
                        visible: false,
                        conversation: None,
                    }));
                }
                Some(Ok(InboxChange {
                    conversation_id: to_id(conversation_id),
                    visible: true,
                    conversation: Some(Conversation(row)),
                }))
            }
        }));
        Ok(while_authorized(
            ctx,
            until_error(changes),
            Role::Staff,
            ApiScope::ConversationsRead,
        ))
    }
}

#[derive(SimpleObject)]
pub struct InboxChange {
    pub conversation_id: ID,
    /// False when the conversation left the subscriber's sight (reassigned elsewhere).
    pub visible: bool,
    pub conversation: Option<Conversation>,
}
