//! Routing (PRODUCT.md §4): who gets a new conversation.
//!
//! A channel account names the team its new conversations go to. That team's routing says
//! what happens next:
//! - **cherry pick** (the default): the conversation waits in the team's Unassigned pool
//!   until an agent claims it;
//! - **round robin**: it goes to the next online agent of the team in a persisted rotation,
//!   skipping agents who are away or offline and, with a cap, agents who have that many open
//!   conversations; when nobody has room it is queued and handed out as room frees up. If
//!   the agent has not replied within N minutes it moves on to the next agent (a durable job);
//! - **skill based**: the contact is asked a question with options, each naming a team; the
//!   answer moves the conversation to that team (and is saved to a contact property), and a
//!   nudge follows when no option is chosen in time.
//!
//! Assignment changes take the team's routing row lock, so two conversations opened at the
//! same moment never get the same place in the rotation.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    by_id_for_update, publish_updated, record_event, ConversationRow, CONVERSATION_COLUMNS,
};
use crate::app::AppState;
use crate::auth::{Actor, ApiScope, Role};
use crate::channels::model::{Choice, Content, OutboundContent};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, Handler, Job, Outcome};

/// Routing a conversation after a message was stored (queued by `ingest_inbound_message`).
pub const ROUTE_JOB: &str = "conversation.route";
pub const REASSIGN_JOB: &str = "conversation.reassign";
pub const NUDGE_JOB: &str = "conversation.routing_nudge";

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutingMethod {
    CherryPick,
    RoundRobin,
    SkillBased,
}

impl RoutingMethod {
    pub fn as_db(self) -> &'static str {
        match self {
            RoutingMethod::CherryPick => "CHERRY_PICK",
            RoutingMethod::RoundRobin => "ROUND_ROBIN",
            RoutingMethod::SkillBased => "SKILL_BASED",
        }
    }

    pub fn from_db(value: &str) -> Self {
        match value {
            "ROUND_ROBIN" => RoutingMethod::RoundRobin,
            "SKILL_BASED" => RoutingMethod::SkillBased,
            _ => RoutingMethod::CherryPick,
        }
    }
}

/// One option of a skill-based routing question.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SkillOption {
    pub id: String,
    pub title: String,
    pub team_id: Uuid,
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct RoutingRow {
    pub team_id: Uuid,
    pub method: String,
    pub max_open_per_agent: Option<i32>,
    pub reassign_after_minutes: Option<i32>,
    pub last_assigned_user_id: Option<Uuid>,
    pub skill_question: Option<String>,
    pub skill_options: Option<Json>,
    pub skill_property: Option<String>,
    pub skill_nudge_after_minutes: Option<i32>,
    pub skill_nudge_text: Option<String>,
}

impl RoutingRow {
    pub fn method(&self) -> RoutingMethod {
        RoutingMethod::from_db(&self.method)
    }

    pub fn options(&self) -> Vec<SkillOption> {
        self.skill_options
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    fn cherry_pick(team_id: Uuid) -> Self {
        RoutingRow {
            team_id,
            method: "CHERRY_PICK".into(),
            max_open_per_agent: None,
            reassign_after_minutes: None,
            last_assigned_user_id: None,
            skill_question: None,
            skill_options: None,
            skill_property: None,
            skill_nudge_after_minutes: None,
            skill_nudge_text: None,
        }
    }
}

const ROUTING_COLUMNS: &str = "team_id, method, max_open_per_agent, reassign_after_minutes, \
    last_assigned_user_id, skill_question, skill_options, skill_property, \
    skill_nudge_after_minutes, skill_nudge_text";

async fn routing_of(
    conn: &mut PgConnection,
    team_id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<RoutingRow>> {
    let lock = if lock { " for update" } else { "" };
    sqlx::query_as(&format!(
        "select {ROUTING_COLUMNS} from team_routing where team_id = $1{lock}"
    ))
    .bind(team_id)
    .fetch_optional(conn)
    .await
}

/// Runs a `conversation.route` job at once, in its own transaction that also removes the
/// job (so the worker that would have run it later finds nothing).
pub async fn route_now(
    state: &AppState,
    company_id: Uuid,
    job: Uuid,
    conversation_id: Uuid,
    message_id: Uuid,
) -> sqlx::Result<()> {
    let mut tx = state.db.tenant(company_id).await?;
    let taken = sqlx::query("delete from jobs where id = $1 and locked_by is null")
        .bind(job)
        .execute(&mut *tx)
        .await?;
    if taken.rows_affected() == 0 {
        return Ok(());
    }
    route(&mut tx, company_id, conversation_id, message_id).await?;
    tx.commit().await
}

/// After `message_id` was stored in the conversation: a pending routing question takes it as
/// the answer; a conversation not yet routed gets its team's routing. Doing it twice changes
/// nothing.
pub async fn route(
    conn: &mut PgConnection,
    company_id: Uuid,
    conversation_id: Uuid,
    message_id: Uuid,
) -> sqlx::Result<Option<ConversationRow>> {
    let Some(row) = by_id_for_update(conn, conversation_id).await? else {
        return Ok(None);
    };
    if !row.is_open() {
        return Ok(None);
    }
    if row.routing_team_id.is_some() {
        let content: Option<Json> = sqlx::query_scalar(
            "select content from messages where id = $1 and direction = 'INBOUND'",
        )
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(content) = content.and_then(|c| serde_json::from_value::<Content>(c).ok()) else {
            return Ok(None);
        };
        return on_answer(conn, company_id, row, &content).await;
    }
    let asked: Option<DateTime<Utc>> =
        sqlx::query_scalar("select routing_asked_at from conversations where id = $1")
            .bind(conversation_id)
            .fetch_one(&mut *conn)
            .await?;
    let routed = row.assignee_id.is_some() || row.queued_at.is_some() || asked.is_some();
    match row.team_id {
        Some(team) if !routed => route_into_team(conn, company_id, row, team, true).await,
        _ => Ok(None),
    }
}

/// Applies `team`'s routing to a conversation that just arrived in it. Skill-based
/// questions are asked only when `may_ask` (not after a question already routed it here).
async fn route_into_team(
    conn: &mut PgConnection,
    company_id: Uuid,
    row: ConversationRow,
    team: Uuid,
    may_ask: bool,
) -> sqlx::Result<Option<ConversationRow>> {
    let Some(routing) = routing_of(conn, team, true).await? else {
        return Ok(None);
    };
    match routing.method() {
        RoutingMethod::CherryPick => Ok(None),
        RoutingMethod::RoundRobin => assign_next(conn, company_id, row, &routing, None)
            .await
            .map(Some),
        RoutingMethod::SkillBased if may_ask => ask(conn, company_id, row, &routing).await,
        RoutingMethod::SkillBased => Ok(None),
    }
}

/// Round robin: the conversation goes to the agent after the last one given a conversation,
/// among the team's active, online agents with room (ordered by id, wrapping around), never
/// `exclude`. With nobody available it is queued. The caller holds the routing row lock.
async fn assign_next(
    conn: &mut PgConnection,
    company_id: Uuid,
    row: ConversationRow,
    routing: &RoutingRow,
    exclude: Option<Uuid>,
) -> sqlx::Result<ConversationRow> {
    let candidates: Vec<Uuid> = sqlx::query_scalar(
        "select u.id from team_members m join users u on u.id = m.user_id
         where m.team_id = $1 and u.status = 'ACTIVE' and u.presence = 'ONLINE'
           and ($2::uuid is null or u.id <> $2)
           and ($3::int is null or (select count(*) from conversations c
                                    where c.assignee_id = u.id and c.status = 'OPEN') < $3)
         order by u.id",
    )
    .bind(routing.team_id)
    .bind(exclude)
    .bind(routing.max_open_per_agent)
    .fetch_all(&mut *conn)
    .await?;
    let next = match routing.last_assigned_user_id {
        Some(last) => candidates
            .iter()
            .find(|id| **id > last)
            .or(candidates.first()),
        None => candidates.first(),
    }
    .copied();
    let previous = row.scope();
    let Some(agent) = next else {
        if row.queued_at.is_some() || row.assignee_id.is_some() {
            // Already waiting, or keeps its agent (a reassignment with nobody to take it).
            return Ok(row);
        }
        let queued: ConversationRow = sqlx::query_as(&format!(
            "update conversations c set queued_at = now(), updated_at = now()
             where c.id = $1 returning {CONVERSATION_COLUMNS}"
        ))
        .bind(row.id)
        .fetch_one(&mut *conn)
        .await?;
        record_event(
            conn,
            company_id,
            row.id,
            "QUEUED",
            None,
            json!({ "teamId": routing.team_id }),
        )
        .await?;
        publish_updated(conn, company_id, &queued, None).await?;
        return Ok(queued);
    };
    let assigned = set_assignee(conn, company_id, row.id, Some(agent), row.team_id).await?;
    sqlx::query("update team_routing set last_assigned_user_id = $2 where team_id = $1")
        .bind(routing.team_id)
        .bind(agent)
        .execute(&mut *conn)
        .await?;
    let kind = if exclude.is_some() {
        "REASSIGNED"
    } else {
        "ASSIGNED"
    };
    record_event(
        conn,
        company_id,
        row.id,
        kind,
        None,
        json!({ "assigneeId": agent, "teamId": routing.team_id, "method": "ROUND_ROBIN" }),
    )
    .await?;
    if let Some(minutes) = routing.reassign_after_minutes {
        schedule_reassignment(conn, company_id, &assigned, minutes).await?;
    }
    publish_updated(conn, company_id, &assigned, Some(previous)).await?;
    Ok(assigned)
}

async fn set_assignee(
    conn: &mut PgConnection,
    _company_id: Uuid,
    id: Uuid,
    assignee: Option<Uuid>,
    team: Option<Uuid>,
) -> sqlx::Result<ConversationRow> {
    sqlx::query_as(&format!(
        "update conversations c set assignee_id = $2, team_id = $3,
             assigned_at = case when $2::uuid is null then null else now() end,
             routing_team_id = case when $2::uuid is null then c.routing_team_id end,
             routing_asked_at = case when $2::uuid is null then c.routing_asked_at end,
             queued_at = null, updated_at = now()
         where c.id = $1 returning {CONVERSATION_COLUMNS}"
    ))
    .bind(id)
    .bind(assignee)
    .bind(team)
    .fetch_one(conn)
    .await
}

async fn schedule_reassignment(
    conn: &mut PgConnection,
    company_id: Uuid,
    row: &ConversationRow,
    minutes: i32,
) -> sqlx::Result<()> {
    jobs::cancel_matching(
        conn,
        &[REASSIGN_JOB],
        "conversation_id",
        &row.id.to_string(),
    )
    .await?;
    let (Some(assignee), Some(assigned_at)) = (row.assignee_id, row.assigned_at) else {
        return Ok(());
    };
    jobs::enqueue_at(
        conn,
        company_id,
        REASSIGN_JOB,
        json!({
            "conversation_id": row.id.to_string(),
            "assignee_id": assignee,
            "assigned_at": assigned_at,
        }),
        assigned_at + chrono::Duration::minutes(minutes as i64),
    )
    .await?;
    Ok(())
}

/// Hands queued conversations of a round-robin team to agents with room, oldest first.
pub async fn drain_queue(
    conn: &mut PgConnection,
    company_id: Uuid,
    team: Uuid,
) -> sqlx::Result<()> {
    let Some(routing) = routing_of(conn, team, true).await? else {
        return Ok(());
    };
    if routing.method() != RoutingMethod::RoundRobin {
        return Ok(());
    }
    let mut routing = routing;
    // At most a page per call: each assignment is a few statements.
    for _ in 0..100 {
        let queued: Option<ConversationRow> = sqlx::query_as(&format!(
            "select {CONVERSATION_COLUMNS} from conversations c
             where c.team_id = $1 and c.status = 'OPEN' and c.assignee_id is null
               and c.queued_at is not null
             order by c.queued_at, c.id limit 1 for update skip locked"
        ))
        .bind(team)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = queued else { break };
        let after = assign_next(conn, company_id, row, &routing, None).await?;
        if after.assignee_id.is_none() {
            break;
        }
        routing.last_assigned_user_id = after.assignee_id;
    }
    Ok(())
}

/// Drains the queues of every round-robin team `user_id` belongs to (they came online).
pub async fn drain_for_user(
    conn: &mut PgConnection,
    company_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<()> {
    let teams: Vec<Uuid> = sqlx::query_scalar(
        "select r.team_id from team_routing r join team_members m on m.team_id = r.team_id
         where m.user_id = $1 and r.method = 'ROUND_ROBIN' order by r.team_id",
    )
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    for team in teams {
        drain_queue(conn, company_id, team).await?;
    }
    Ok(())
}

/// Skill based: sends the question and waits for the answer.
async fn ask(
    conn: &mut PgConnection,
    company_id: Uuid,
    row: ConversationRow,
    routing: &RoutingRow,
) -> sqlx::Result<Option<ConversationRow>> {
    let options = routing.options();
    let Some(question) = routing.skill_question.clone() else {
        return Ok(None);
    };
    if options.is_empty() {
        return Ok(None);
    }
    let content = question_content(&question, &options);
    super::send::queue_system(conn, company_id, &row, content).await?;
    let asked: ConversationRow = sqlx::query_as(&format!(
        "update conversations c set routing_team_id = $2, routing_asked_at = now(), updated_at = now()
         where c.id = $1 returning {CONVERSATION_COLUMNS}"
    ))
    .bind(row.id)
    .bind(routing.team_id)
    .fetch_one(&mut *conn)
    .await?;
    record_event(
        conn,
        company_id,
        row.id,
        "ROUTING_ASKED",
        None,
        json!({ "teamId": routing.team_id }),
    )
    .await?;
    if let Some(minutes) = routing.skill_nudge_after_minutes {
        jobs::enqueue_at(
            conn,
            company_id,
            NUDGE_JOB,
            json!({ "conversation_id": row.id.to_string(), "team_id": routing.team_id }),
            Utc::now() + chrono::Duration::minutes(minutes as i64),
        )
        .await?;
    }
    Ok(Some(asked))
}

/// Up to 3 options as quick-reply buttons, more as a list.
fn question_content(question: &str, options: &[SkillOption]) -> OutboundContent {
    let choices: Vec<Choice> = options
        .iter()
        .map(|o| Choice {
            id: o.id.clone(),
            title: o.title.clone(),
            description: None,
        })
        .collect();
    if choices.len() <= 3 {
        OutboundContent::QuickReplies {
            body: question.to_string(),
            buttons: choices,
        }
    } else {
        OutboundContent::List {
            body: question.to_string(),
            button: "Choose".into(),
            options: choices,
        }
    }
}

/// Which option a reply chose: the button or option id, its title (any case), or its
/// number in the list ("2") for channels where the contact types the answer.
pub fn chosen<'a>(content: &Content, options: &'a [SkillOption]) -> Option<&'a SkillOption> {
    let answer = match content {
        Content::InteractiveReply { id, title } => {
            if let Some(option) = options.iter().find(|o| &o.id == id) {
                return Some(option);
            }
            title.clone()
        }
        Content::Postback { payload, .. } => payload.clone(),
        Content::Text { body } => body.clone(),
        _ => return None,
    };
    let answer = answer.trim();
    options
        .iter()
        .find(|o| o.id == answer || o.title.trim().eq_ignore_ascii_case(answer))
        .or_else(|| {
            answer
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| options.get(i))
        })
}

/// The contact wrote while a routing question was pending: an answer routes the
/// conversation. Returns the conversation when it moved. The caller holds its row lock.
async fn on_answer(
    conn: &mut PgConnection,
    company_id: Uuid,
    row: ConversationRow,
    content: &Content,
) -> sqlx::Result<Option<ConversationRow>> {
    let Some(asking_team) = row.routing_team_id else {
        return Ok(None);
    };
    // Someone took the conversation meanwhile: the question no longer decides anything.
    if row.assignee_id.is_some() {
        return Ok(None);
    }
    let Some(routing) = routing_of(conn, asking_team, false).await? else {
        return Ok(None);
    };
    let options = routing.options();
    let Some(option) = chosen(content, &options) else {
        return Ok(None);
    };
    let previous = row.scope();
    let moved: ConversationRow = sqlx::query_as(&format!(
        "update conversations c set team_id = $2, assignee_id = null, assigned_at = null,
             routing_team_id = null, routing_asked_at = null, updated_at = now()
         where c.id = $1 returning {CONVERSATION_COLUMNS}"
    ))
    .bind(row.id)
    .bind(option.team_id)
    .fetch_one(&mut *conn)
    .await?;
    jobs::cancel_matching(conn, &[NUDGE_JOB], "conversation_id", &row.id.to_string()).await?;
    record_event(
        conn,
        company_id,
        row.id,
        "ROUTED",
        None,
        json!({ "teamId": option.team_id, "optionId": option.id, "answer": option.title }),
    )
    .await?;
    if let Some(key) = &routing.skill_property {
        save_answer(conn, company_id, row.contact_id, key, &option.title).await?;
    }
    publish_updated(conn, company_id, &moved, Some(previous)).await?;
    let team = option.team_id;
    match route_into_team(conn, company_id, moved.clone(), team, false).await? {
        Some(routed) => Ok(Some(routed)),
        None => Ok(Some(moved)),
    }
}

/// Saves the chosen option's title to the contact's text or single-select property `key`.
async fn save_answer(
    conn: &mut PgConnection,
    company_id: Uuid,
    contact_id: Uuid,
    key: &str,
    answer: &str,
) -> sqlx::Result<()> {
    let slot: Option<String> = sqlx::query_scalar(
        "select slot from contact_properties where key = $1 and type in ('TEXT', 'SINGLE_SELECT')",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    // Slots are names the schema made (t1..t24); anything else is not written into SQL.
    let Some(slot) = slot.filter(|s| {
        s.len() <= 3 && s.starts_with('t') && s[1..].bytes().all(|b| b.is_ascii_digit())
    }) else {
        return Ok(());
    };
    sqlx::query(&format!(
        "update contacts set {slot} = $2, updated_at = now() where id = $1"
    ))
    .bind(contact_id)
    .bind(answer)
    .execute(&mut *conn)
    .await?;
    crate::contacts::store::record_activity(
        conn,
        company_id,
        &[contact_id],
        "PROPERTIES_CHANGED",
        None,
        &json!({ "changes": [key], "source": "ROUTING" }),
    )
    .await?;
    Ok(())
}

/// Assigns a conversation to a user and/or a team by hand.
pub async fn assign(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    user_id: Option<Uuid>,
    team_id: Option<Uuid>,
) -> ApiResult<ConversationRow> {
    actor.require(Role::Staff, ApiScope::ConversationsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (access, before) = super::visible(&mut tx, actor, id, true).await?;
    if let Some(team) = team_id {
        if crate::teams::store::by_id(&mut tx, team).await?.is_none() {
            return Err(ApiError::not_found("team"));
        }
        if !access.admin && !access.is_member(team) && actor.role != Role::TeamAdmin {
            return Err(ApiError::forbidden(
                "Staff may hand conversations only to their own teams",
            ));
        }
    }
    let team = team_id.or(before.team_id);
    if let Some(user) = user_id {
        let active: Option<bool> =
            sqlx::query_scalar("select status = 'ACTIVE' from users where id = $1")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        match active {
            None => return Err(ApiError::not_found("user")),
            Some(false) => {
                return Err(ApiError::validation(
                    "a deactivated user cannot be given conversations",
                ))
            }
            Some(true) => {}
        }
        if let Some(team) = team {
            if !crate::teams::store::is_member(&mut tx, team, user).await? {
                return Err(ApiError::validation(
                    "the user is not a member of the conversation's team; pick a team they are in",
                ));
            }
        }
        if actor.role == Role::Staff && user != actor.user_id() && !access.admin {
            let shared = team.is_some_and(|t| access.is_member(t));
            if !shared {
                return Err(ApiError::forbidden(
                    "Staff may assign only to themselves or within their teams",
                ));
            }
        }
    }
    let row = set_assignee(&mut tx, actor.company_id, id, user_id, team).await?;
    let kind = if user_id.is_some() {
        "ASSIGNED"
    } else {
        "UNASSIGNED"
    };
    record_event(
        &mut tx,
        actor.company_id,
        id,
        kind,
        Some(actor.user_id()),
        json!({ "assigneeId": user_id, "teamId": team, "method": "MANUAL" }),
    )
    .await?;
    let timers: &[&str] = if user_id.is_some() {
        &[REASSIGN_JOB, NUDGE_JOB]
    } else {
        &[REASSIGN_JOB]
    };
    jobs::cancel_matching(&mut tx, timers, "conversation_id", &id.to_string()).await?;
    publish_updated(&mut tx, actor.company_id, &row, Some(before.scope())).await?;
    // A conversation handed to a team without an agent takes that team's routing.
    let row = match (user_id, team_id) {
        (None, Some(team)) if team_id != before.team_id => {
            route_into_team(&mut tx, actor.company_id, row.clone(), team, false)
                .await?
                .unwrap_or(row)
        }
        _ => row,
    };
    tx.commit().await?;
    Ok(row)
}

/// "Assign to me" from a pool: exactly one of several simultaneous claimers wins (the
/// update re-checks that nobody is assigned after waiting for the row lock).
pub async fn claim(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<ConversationRow> {
    actor.require(Role::Staff, ApiScope::ConversationsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (_, before) = super::visible(&mut tx, actor, id, false).await?;
    if !before.is_open() {
        return Err(ApiError::conflict("the conversation is closed"));
    }
    let row: Option<ConversationRow> = sqlx::query_as(&format!(
        "update conversations c set assignee_id = $2, assigned_at = now(), queued_at = null,
             routing_team_id = null, routing_asked_at = null, updated_at = now()
         where c.id = $1 and c.assignee_id is null and c.status = 'OPEN'
         returning {CONVERSATION_COLUMNS}"
    ))
    .bind(id)
    .bind(actor.user_id())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(ApiError::conflict(
            "someone else has already taken this conversation",
        ));
    };
    record_event(
        &mut tx,
        actor.company_id,
        id,
        "ASSIGNED",
        Some(actor.user_id()),
        json!({ "assigneeId": actor.user_id(), "method": "CLAIM" }),
    )
    .await?;
    jobs::cancel_matching(&mut tx, &[NUDGE_JOB], "conversation_id", &id.to_string()).await?;
    publish_updated(&mut tx, actor.company_id, &row, Some(before.scope())).await?;
    tx.commit().await?;
    Ok(row)
}

/// A team's routing settings, as changed by its admins.
pub struct RoutingSettings {
    pub method: RoutingMethod,
    pub max_open_per_agent: Option<i32>,
    pub reassign_after_minutes: Option<i32>,
    pub skill_question: Option<String>,
    pub skill_options: Vec<SkillOption>,
    pub skill_property: Option<String>,
    pub skill_nudge_after_minutes: Option<i32>,
    pub skill_nudge_text: Option<String>,
}

pub async fn update(
    state: &AppState,
    actor: &Actor,
    team_id: Uuid,
    settings: RoutingSettings,
) -> ApiResult<RoutingRow> {
    actor.require(Role::TeamAdmin, ApiScope::ConversationsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    if crate::teams::store::by_id(&mut tx, team_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("team"));
    }
    if actor.role == Role::TeamAdmin
        && !crate::teams::store::is_member(&mut tx, team_id, actor.user_id()).await?
    {
        return Err(ApiError::forbidden(
            "Team Admins change the routing of their own teams",
        ));
    }
    let positive = |value: Option<i32>, what: &str, max: i32| -> ApiResult<Option<i32>> {
        match value {
            Some(v) if !(1..=max).contains(&v) => Err(ApiError::validation(format!(
                "{what} is between 1 and {max}"
            ))),
            other => Ok(other),
        }
    };
    let cap = positive(settings.max_open_per_agent, "maxOpenPerAgent", 1000)?;
    let reassign = positive(
        settings.reassign_after_minutes,
        "reassignAfterMinutes",
        10080,
    )?;
    let nudge_after = positive(
        settings.skill_nudge_after_minutes,
        "skillNudgeAfterMinutes",
        10080,
    )?;
    let skill = settings.method == RoutingMethod::SkillBased;
    let question = settings
        .skill_question
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty());
    if skill {
        if question.is_none() {
            return Err(ApiError::validation(
                "skill-based routing needs a question to ask",
            ));
        }
        if settings.skill_options.len() < 2 || settings.skill_options.len() > 10 {
            return Err(ApiError::validation(
                "skill-based routing needs 2 to 10 options",
            ));
        }
        let mut ids = Vec::new();
        for option in &settings.skill_options {
            let title = option.title.trim();
            if title.is_empty() || title.chars().count() > 24 {
                return Err(ApiError::validation(
                    "an option title is 1 to 24 characters (WhatsApp's list limit)",
                ));
            }
            if option.id.is_empty() || option.id.len() > 64 || ids.contains(&option.id) {
                return Err(ApiError::validation(
                    "option ids are distinct, 1 to 64 characters",
                ));
            }
            ids.push(option.id.clone());
            if crate::teams::store::by_id(&mut tx, option.team_id)
                .await?
                .is_none()
            {
                return Err(ApiError::not_found("team"));
            }
            if option.team_id == team_id {
                return Err(ApiError::validation(
                    "an option routes to another team, not back to this one",
                ));
            }
        }
        if let Some(key) = &settings.skill_property {
            let kind: Option<String> =
                sqlx::query_scalar("select type from contact_properties where key = $1")
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
            match kind.as_deref() {
                None => return Err(ApiError::not_found("contact property")),
                Some("TEXT") | Some("SINGLE_SELECT") => {}
                Some(_) => {
                    return Err(ApiError::validation(
                        "the answer is saved to a text or single-select property",
                    ))
                }
            }
        }
    }
    let options = if skill {
        Some(serde_json::to_value(&settings.skill_options).unwrap_or(Json::Null))
    } else {
        None
    };
    let row: RoutingRow = sqlx::query_as(&format!(
        "insert into team_routing (team_id, company_id, method, max_open_per_agent,
             reassign_after_minutes, skill_question, skill_options, skill_property,
             skill_nudge_after_minutes, skill_nudge_text)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         on conflict (team_id) do update set method = excluded.method,
             max_open_per_agent = excluded.max_open_per_agent,
             reassign_after_minutes = excluded.reassign_after_minutes,
             skill_question = excluded.skill_question, skill_options = excluded.skill_options,
             skill_property = excluded.skill_property,
             skill_nudge_after_minutes = excluded.skill_nudge_after_minutes,
             skill_nudge_text = excluded.skill_nudge_text, updated_at = now()
         returning {ROUTING_COLUMNS}"
    ))
    .bind(team_id)
    .bind(actor.company_id)
    .bind(settings.method.as_db())
    .bind(cap)
    .bind(reassign)
    .bind(question.filter(|_| skill))
    .bind(options)
    .bind(settings.skill_property.filter(|_| skill))
    .bind(nudge_after.filter(|_| skill))
    .bind(
        settings
            .skill_nudge_text
            .map(|t| t.trim().to_string())
            .filter(|t| skill && !t.is_empty()),
    )
    .fetch_one(&mut *tx)
    .await?;
    crate::audit::record(
        &mut tx,
        actor,
        crate::audit::Entry::new("TEAM_ROUTING_CHANGED")
            .target("team", team_id)
            .details(json!({ "method": settings.method.as_db() })),
    )
    .await?;
    drain_queue(&mut tx, actor.company_id, team_id).await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn get(state: &AppState, actor: &Actor, team_id: Uuid) -> ApiResult<RoutingRow> {
    actor.require(Role::Staff, ApiScope::ConversationsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    if crate::teams::store::by_id(&mut tx, team_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("team"));
    }
    let row = routing_of(&mut tx, team_id, false)
        .await?
        .unwrap_or_else(|| RoutingRow::cherry_pick(team_id));
    tx.commit().await?;
    Ok(row)
}

/// Reassignment and nudge timers.
pub fn handler(state: AppState) -> Arc<dyn Handler> {
    Arc::new(Timers { state })
}

struct Timers {
    state: AppState,
}

impl Handler for Timers {
    fn run(&self, job: Job) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let result = match job.kind.as_str() {
                ROUTE_JOB => self.route(&job).await,
                REASSIGN_JOB => self.reassign(&job).await,
                NUDGE_JOB => self.nudge(&job).await,
                _ => Ok(()),
            };
            match result {
                Ok(()) => Outcome::Done,
                Err(err) => Outcome::Retry(err.to_string()),
            }
        })
    }

    fn give_up(&self, _job: Job, _error: String) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

fn payload_uuid(job: &Job, key: &str) -> Option<Uuid> {
    job.payload
        .get(key)
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

impl Timers {
    /// A `conversation.route` job whose inline run did not happen (the process stopped).
    async fn route(&self, job: &Job) -> sqlx::Result<()> {
        let (Some(id), Some(message)) = (
            payload_uuid(job, "conversation_id"),
            payload_uuid(job, "message_id"),
        ) else {
            return Ok(());
        };
        let mut tx = self.state.db.tenant(job.company_id).await?;
        route(&mut tx, job.company_id, id, message).await?;
        tx.commit().await
    }

    /// The agent has not replied in time: the conversation goes to the next agent, if the
    /// contact is still waiting and the conversation is still theirs since then.
    async fn reassign(&self, job: &Job) -> sqlx::Result<()> {
        let (Some(id), Some(assignee)) = (
            payload_uuid(job, "conversation_id"),
            payload_uuid(job, "assignee_id"),
        ) else {
            return Ok(());
        };
        let assigned_at: Option<DateTime<Utc>> = job
            .payload
            .get("assigned_at")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let mut tx = self.state.db.tenant(job.company_id).await?;
        let Some(row) = by_id_for_update(&mut tx, id).await? else {
            return Ok(());
        };
        let still_theirs = row.is_open()
            && row.assignee_id == Some(assignee)
            && row.assigned_at.map(|a| a.timestamp_micros())
                == assigned_at.map(|a| a.timestamp_micros());
        let (Some(team), Some(waiting_since)) = (
            row.team_id.filter(|_| still_theirs),
            row.awaiting_reply_since,
        ) else {
            return Ok(());
        };
        let Some(routing) = routing_of(&mut tx, team, true).await? else {
            return Ok(());
        };
        // The contact must have waited the whole time: a message written a moment ago
        // gets its own full wait.
        let wait = chrono::Duration::minutes(routing.reassign_after_minutes.unwrap_or(0) as i64);
        let due = waiting_since + wait;
        if due > Utc::now() + chrono::Duration::seconds(1) {
            jobs::enqueue_at(
                &mut tx,
                job.company_id,
                REASSIGN_JOB,
                job.payload.clone(),
                due,
            )
            .await?;
            return tx.commit().await;
        }
        if routing.method() == RoutingMethod::RoundRobin {
            assign_next(&mut tx, job.company_id, row, &routing, Some(assignee)).await?;
        }
        tx.commit().await
    }

    /// No option was chosen in time: nudge the contact once.
    async fn nudge(&self, job: &Job) -> sqlx::Result<()> {
        let (Some(id), Some(team)) = (
            payload_uuid(job, "conversation_id"),
            payload_uuid(job, "team_id"),
        ) else {
            return Ok(());
        };
        let mut tx = self.state.db.tenant(job.company_id).await?;
        let Some(row) = by_id_for_update(&mut tx, id).await? else {
            return Ok(());
        };
        if !row.is_open() || row.routing_team_id != Some(team) {
            return Ok(());
        }
        let Some(routing) = routing_of(&mut tx, team, false).await? else {
            return Ok(());
        };
        let options = routing.options();
        let text = routing
            .skill_nudge_text
            .clone()
            .or(routing.skill_question.clone())
            .unwrap_or_default();
        if options.is_empty() || text.is_empty() {
            return Ok(());
        }
        super::send::queue_system(
            &mut tx,
            job.company_id,
            &row,
            question_content(&text, &options),
        )
        .await?;
        record_event(
            &mut tx,
            job.company_id,
            id,
            "ROUTING_NUDGED",
            None,
            json!({ "teamId": team }),
        )
        .await?;
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Vec<SkillOption> {
        ["Residential", "Commercial", "Luxury"]
            .iter()
            .enumerate()
            .map(|(i, t)| SkillOption {
                id: format!("opt{}", i + 1),
                title: t.to_string(),
                team_id: Uuid::now_v7(),
            })
            .collect()
    }

    #[test]
    fn a_reply_chooses_by_id_title_or_number() {
        let o = options();
        let reply = |id: &str, title: &str| Content::InteractiveReply {
            id: id.into(),
            title: title.into(),
        };
        let text = |body: &str| Content::Text { body: body.into() };
        assert_eq!(chosen(&reply("opt2", "x"), &o).unwrap().title, "Commercial");
        assert_eq!(chosen(&text(" luxury "), &o).unwrap().title, "Luxury");
        assert_eq!(chosen(&text("1"), &o).unwrap().title, "Residential");
        assert!(chosen(&text("4"), &o).is_none());
        assert!(chosen(&text("0"), &o).is_none());
        assert!(chosen(&text("a house please"), &o).is_none());
        assert_eq!(
            chosen(
                &Content::Postback {
                    payload: "opt3".into(),
                    title: None
                },
                &o
            )
            .unwrap()
            .title,
            "Luxury"
        );
    }
}
