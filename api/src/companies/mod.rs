//! The company (tenant) and its settings: name, timezone, working hours per weekday, plan,
//! and whether Staff see everything or only their own and their teams' work.

pub mod graphql;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::auth::{Actor, ApiScope, Role};
use crate::error::{ApiError, ApiResult};
use store::CompanyRow;

#[derive(
    async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    Free,
    Pro,
    Premium,
    Enterprise,
}

impl Plan {
    pub fn as_db(self) -> &'static str {
        match self {
            Plan::Free => "FREE",
            Plan::Pro => "PRO",
            Plan::Premium => "PREMIUM",
            Plan::Enterprise => "ENTERPRISE",
        }
    }

    pub fn from_db(value: &str) -> Self {
        match value {
            "PRO" => Plan::Pro,
            "PREMIUM" => Plan::Premium,
            "ENTERPRISE" => Plan::Enterprise,
            _ => Plan::Free,
        }
    }

    /// Monthly Active Contacts included in the plan; Enterprise is agreed per contract.
    pub fn monthly_active_contacts(self) -> Option<i32> {
        match self {
            Plan::Free => Some(50),
            Plan::Pro => Some(2_000),
            Plan::Premium => Some(12_000),
            Plan::Enterprise => None,
        }
    }
}

/// An opening interval within one day, as "HH:MM" local times in the company's timezone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub start: String,
    pub end: String,
}

/// Opening hours per weekday; a day that is absent is closed.
pub type WorkingHours = BTreeMap<Weekday, Vec<Interval>>;

fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    // 24:00 closes a day that runs to midnight.
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

/// Checks that every interval is well formed, ends after it starts, and that the intervals
/// of a day do not overlap.
pub fn validate_working_hours(hours: &WorkingHours) -> ApiResult<()> {
    for (day, intervals) in hours {
        let mut spans = Vec::with_capacity(intervals.len());
        for interval in intervals {
            let (Some(start), Some(end)) = (minutes(&interval.start), minutes(&interval.end))
            else {
                return Err(ApiError::validation(format!(
                    "working hours on {day:?} must be HH:MM times, got {}-{}",
                    interval.start, interval.end
                )));
            };
            if start >= end {
                return Err(ApiError::validation(format!(
                    "working hours on {day:?}: {} must be before {}",
                    interval.start, interval.end
                )));
            }
            spans.push((start, end));
        }
        spans.sort();
        if spans.windows(2).any(|pair| pair[1].0 < pair[0].1) {
            return Err(ApiError::validation(format!(
                "working hours on {day:?} overlap"
            )));
        }
    }
    Ok(())
}

pub fn validate_timezone(timezone: &str) -> ApiResult<()> {
    timezone.parse::<chrono_tz::Tz>().map(|_| ()).map_err(|_| {
        ApiError::validation(format!(
            "'{timezone}' is not an IANA timezone such as Asia/Jakarta"
        ))
    })
}

pub fn working_hours_of(row: &CompanyRow) -> WorkingHours {
    serde_json::from_value(row.working_hours.clone()).unwrap_or_default()
}

/// A partial update: fields left out keep their value.
#[derive(Default)]
pub struct SettingsChange {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub working_hours: Option<WorkingHours>,
    pub plan: Option<Plan>,
    pub staff_see_all: Option<bool>,
}

pub async fn current(state: &AppState, actor: &Actor) -> ApiResult<CompanyRow> {
    actor.require(Role::Staff, ApiScope::SettingsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let company = store::current(&mut tx).await?;
    tx.commit().await?;
    Ok(company)
}

pub async fn update_settings(
    state: &AppState,
    actor: &Actor,
    change: SettingsChange,
) -> ApiResult<CompanyRow> {
    actor.require(Role::Admin, ApiScope::SettingsWrite)?;
    let name = change
        .name
        .as_deref()
        .map(|n| crate::users::normalize_name(n, "company name", 200))
        .transpose()?;
    if let Some(timezone) = &change.timezone {
        validate_timezone(timezone)?;
    }
    if let Some(hours) = &change.working_hours {
        validate_working_hours(hours)?;
    }
    let mut tx = state.db.tenant(actor.company_id).await?;
    let before = store::current(&mut tx).await?;
    let working_hours = match &change.working_hours {
        Some(hours) => serde_json::to_value(hours)
            .map_err(|e| ApiError::internal("encoding working hours", e))?,
        None => before.working_hours.clone(),
    };
    let settings = store::Settings {
        name: name.as_deref().unwrap_or(&before.name),
        timezone: change.timezone.as_deref().unwrap_or(&before.timezone),
        working_hours: &working_hours,
        plan: change.plan.map(Plan::as_db).unwrap_or(&before.plan),
        staff_see_all: change.staff_see_all.unwrap_or(before.staff_see_all),
    };
    let after = store::update(&mut tx, settings).await?;
    let details = serde_json::json!({
        "before": { "name": before.name, "timezone": before.timezone, "workingHours": before.working_hours,
                    "plan": before.plan, "staffSeeAll": before.staff_see_all },
        "after": { "name": after.name, "timezone": after.timezone, "workingHours": after.working_hours,
                   "plan": after.plan, "staffSeeAll": after.staff_see_all },
    });
    audit::record(
        &mut tx,
        actor,
        Entry::new("SETTINGS_UPDATED")
            .target("company", after.id)
            .details(details),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(day: Weekday, spans: &[(&str, &str)]) -> WorkingHours {
        let intervals = spans
            .iter()
            .map(|(s, e)| Interval {
                start: s.to_string(),
                end: e.to_string(),
            })
            .collect();
        BTreeMap::from([(day, intervals)])
    }

    #[test]
    fn working_hours_must_be_ordered_times_that_do_not_overlap() {
        assert!(validate_working_hours(&hours(
            Weekday::Monday,
            &[("08:00", "12:00"), ("13:00", "17:00")]
        ))
        .is_ok());
        assert!(validate_working_hours(&hours(Weekday::Friday, &[("00:00", "24:00")])).is_ok());
        assert!(validate_working_hours(&hours(Weekday::Monday, &[("17:00", "08:00")])).is_err());
        assert!(validate_working_hours(&hours(Weekday::Monday, &[("8:00", "17:00")])).is_err());
        assert!(validate_working_hours(&hours(Weekday::Monday, &[("08:00", "25:00")])).is_err());
        assert!(validate_working_hours(&hours(
            Weekday::Monday,
            &[("08:00", "12:00"), ("11:00", "17:00")]
        ))
        .is_err());
    }

    #[test]
    fn timezones_are_iana_names() {
        assert!(validate_timezone("Asia/Jakarta").is_ok());
        assert!(validate_timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn plans_carry_their_monthly_active_contact_allowance() {
        assert_eq!(Plan::Free.monthly_active_contacts(), Some(50));
        assert_eq!(Plan::Premium.monthly_active_contacts(), Some(12_000));
        assert_eq!(Plan::Enterprise.monthly_active_contacts(), None);
    }
}
