//! GraphQL for the company and its settings.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::store::CompanyRow;
use super::{Interval, Plan, SettingsChange, Weekday, WorkingHours};
use crate::error::ApiResult;
use crate::graphql::{actor, state, to_id};

/// A business using Obrol (a tenant).
pub struct Company(pub CompanyRow);

#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "TimeIntervalInput")]
pub struct TimeInterval {
    /// Local time "HH:MM" in the company's timezone.
    pub start: String,
    /// Local time "HH:MM"; "24:00" for midnight.
    pub end: String,
}

#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "WorkingDayInput")]
pub struct WorkingDay {
    pub day: Weekday,
    pub intervals: Vec<TimeInterval>,
}

#[Object]
impl Company {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// IANA timezone, e.g. "Asia/Jakarta".
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }

    /// Opening hours per weekday; days not listed are closed.
    async fn working_hours(&self) -> Vec<WorkingDay> {
        super::working_hours_of(&self.0)
            .into_iter()
            .map(|(day, intervals)| WorkingDay {
                day,
                intervals: intervals
                    .into_iter()
                    .map(|i| TimeInterval {
                        start: i.start,
                        end: i.end,
                    })
                    .collect(),
            })
            .collect()
    }

    async fn plan(&self) -> Plan {
        Plan::from_db(&self.0.plan)
    }

    /// Monthly Active Contacts the plan includes; null for Enterprise (per contract).
    async fn monthly_active_contact_allowance(&self) -> Option<i32> {
        Plan::from_db(&self.0.plan).monthly_active_contacts()
    }

    /// Whether Staff see every contact and conversation (otherwise only their own and their teams').
    async fn staff_see_all(&self) -> bool {
        self.0.staff_see_all
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(InputObject)]
pub struct UpdateCompanySettingsInput {
    pub name: Option<String>,
    pub timezone: Option<String>,
    /// Replaces all working hours when given.
    pub working_hours: Option<Vec<WorkingDay>>,
    pub plan: Option<Plan>,
    pub staff_see_all: Option<bool>,
}

#[derive(Default)]
pub struct CompanyQuery;

#[Object]
impl CompanyQuery {
    /// The caller's company.
    async fn company(&self, ctx: &Context<'_>) -> ApiResult<Company> {
        Ok(Company(super::current(state(ctx), actor(ctx)?).await?))
    }
}

#[derive(Default)]
pub struct CompanyMutation;

#[Object]
impl CompanyMutation {
    async fn update_company_settings(
        &self,
        ctx: &Context<'_>,
        input: UpdateCompanySettingsInput,
    ) -> ApiResult<Company> {
        let working_hours = input.working_hours.map(|days| {
            let mut hours = WorkingHours::new();
            for day in days {
                let intervals = day.intervals.into_iter().map(|i| Interval {
                    start: i.start,
                    end: i.end,
                });
                hours.entry(day.day).or_default().extend(intervals);
            }
            hours
        });
        let change = SettingsChange {
            name: input.name,
            timezone: input.timezone,
            working_hours,
            plan: input.plan,
            staff_see_all: input.staff_see_all,
        };
        Ok(Company(
            super::update_settings(state(ctx), actor(ctx)?, change).await?,
        ))
    }
}
