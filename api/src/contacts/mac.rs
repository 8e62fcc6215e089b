//! Monthly Active Contacts, the billing unit (PRODUCT.md §1).
//!
//! A contact is active in a month when the business actively engaged with them in it: they
//! wrote to the business, or the business talked with them in a conversation. Receiving a
//! one-way broadcast without reacting does not count, nor does being stored, imported or
//! synced. Conversations and broadcasts (later issues) call [`record_active`] at those
//! moments; nothing in contacts itself makes a contact active.
//!
//! Months are the company's calendar months in its timezone. The first activity of a month
//! makes one row; later activity in that month changes nothing.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Actor, ApiScope, Role};
use crate::companies::Plan;
use crate::error::{ApiError, ApiResult};

/// What made a contact active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum ActiveReason {
    /// The contact sent a message (including a reply to a broadcast).
    InboundMessage,
    /// The business wrote to the contact inside a two-way conversation.
    Conversation,
}

impl ActiveReason {
    fn as_db(self) -> &'static str {
        match self {
            ActiveReason::InboundMessage => "INBOUND_MESSAGE",
            ActiveReason::Conversation => "CONVERSATION",
        }
    }

    fn from_db(value: &str) -> Self {
        match value {
            "CONVERSATION" => ActiveReason::Conversation,
            _ => ActiveReason::InboundMessage,
        }
    }
}

/// Records that `contact_id` was active at `at`, in the caller's tenant transaction. Returns
/// whether this made the contact active for the first time in that month.
pub async fn record_active(
    conn: &mut PgConnection,
    company_id: Uuid,
    contact_id: Uuid,
    reason: ActiveReason,
    at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "insert into monthly_active_contacts (company_id, month, contact_id, first_active_at, reason)
         select $1, date_trunc('month', $3 at time zone c.timezone)::date, $2, $3, $4
         from companies c where c.id = $1
         on conflict do nothing",
    )
    .bind(company_id)
    .bind(contact_id)
    .bind(at)
    .bind(reason.as_db())
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// "2026-11" (or "2026-11-01") as the first day of that month.
pub fn parse_month(text: &str) -> ApiResult<NaiveDate> {
    let text = text.trim();
    let first = if text.len() == 7 {
        format!("{text}-01")
    } else {
        text.to_string()
    };
    NaiveDate::parse_from_str(&first, "%Y-%m-%d")
        .ok()
        .filter(|d| d.format("%d").to_string() == "01")
        .ok_or_else(|| {
            ApiError::validation(format!(
                "a month is written YYYY-MM, such as 2026-11; '{}' is not",
                super::properties::truncate(text, 20)
            ))
        })
}

pub struct MonthSummary {
    pub month: NaiveDate,
    pub count: i64,
    /// None: agreed per contract (Enterprise).
    pub allowance: Option<i32>,
}

impl MonthSummary {
    pub fn over_allowance(&self) -> bool {
        self.allowance.is_some_and(|a| self.count > i64::from(a))
    }
}

pub async fn summary(state: &AppState, actor: &Actor, month: NaiveDate) -> ApiResult<MonthSummary> {
    actor.require(Role::Admin, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let (count, plan): (i64, String) = sqlx::query_as(
        "select (select count(*) from monthly_active_contacts where company_id = $1 and month = $2),
                plan
         from companies",
    )
    .bind(actor.company_id)
    .bind(month)
    .fetch_one(&mut *tx)
    .await?;
    drop(tx);
    Ok(MonthSummary {
        month,
        count,
        allowance: Plan::from_db(&plan).monthly_active_contacts(),
    })
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct ActiveRow {
    /// None once the contact was erased (the month still counts them).
    pub contact_id: Option<Uuid>,
    /// The row's own key, for paging.
    pub key: Uuid,
    pub first_active_at: DateTime<Utc>,
    pub reason: String,
}

impl ActiveRow {
    pub fn reason(&self) -> ActiveReason {
        ActiveReason::from_db(&self.reason)
    }
}

/// A page of the month's active contacts, by contact id (stable under paging).
pub async fn active_contacts(
    state: &AppState,
    actor: &Actor,
    month: NaiveDate,
    after: Option<Uuid>,
    limit: i64,
) -> ApiResult<Vec<ActiveRow>> {
    actor.require(Role::Admin, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(
        "select c.id as contact_id, m.contact_id as key, m.first_active_at, m.reason
         from monthly_active_contacts m left join contacts c on c.id = m.contact_id
         where m.company_id = $1 and m.month = $2 and ($3::uuid is null or m.contact_id > $3)
         order by m.contact_id limit $4",
    )
    .bind(actor.company_id)
    .bind(month)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

/// The contacts of `rows` that still exist, with all their properties.
pub async fn contacts_of(
    state: &AppState,
    actor: &Actor,
    rows: &[ActiveRow],
) -> ApiResult<Vec<super::store::ContactRow>> {
    let ids: Vec<Uuid> = rows.iter().filter_map(|r| r.contact_id).collect();
    let mut tx = state.db.tenant(actor.company_id).await?;
    let properties = super::store::properties(&mut tx).await?;
    let found = super::store::by_ids(&mut tx, &ids, &properties).await?;
    drop(tx);
    Ok(found)
}
