//! Contact filters: AND/OR trees of conditions on built-in and custom properties, labels,
//! lists, owner, team and channel, compiled to one SQL `where` clause.
//!
//! Column names come only from closed sets (the built-in columns below and
//! `properties::slot_column`); every value is a bind parameter. A filter that names an
//! unknown property, label or list, or gives a value of the wrong type, is refused before any
//! SQL runs.

use std::collections::HashMap;

use async_graphql::{Enum, InputObject};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::properties::{self, PropertyRow, PropertyType, SlotFamily};
use crate::error::{ApiError, ApiResult};

/// A tree of conditions: exactly one of `and`, `or` and `condition`.
#[derive(InputObject, Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContactFilter {
    /// Every one of these must hold.
    pub and: Option<Vec<ContactFilter>>,
    /// At least one of these must hold.
    pub or: Option<Vec<ContactFilter>>,
    /// One condition.
    pub condition: Option<ContactCondition>,
}

/// `property op value`. `property` is a built-in key (`first_name`, `last_name`, `name`,
/// `phone`, `email`, `country`, `location`, `company_name`, `job_title`, `owner`, `team`,
/// `label`, `list`, `channel`, `created_at`, `updated_at`, `last_contacted_at`,
/// `last_inbound_at`, `id`) or a custom property's key. `value` is for one-value operators,
/// `values` for `IN` (any of them) and `BETWEEN` (two, inclusive).
#[derive(InputObject, Serialize, Deserialize, Clone, Debug)]
pub struct ContactCondition {
    pub property: String,
    pub op: FilterOp,
    pub value: Option<String>,
    pub values: Option<Vec<String>>,
}

#[derive(Enum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterOp {
    Eq,
    Neq,
    Contains,
    Gt,
    Lt,
    Between,
    In,
    IsSet,
    IsNotSet,
}

pub const MAX_CONDITIONS: usize = 50;
pub const MAX_DEPTH: usize = 6;
pub const MAX_VALUES: usize = 1000;
const MAX_VALUE_CHARS: usize = 2000;
/// Criteria lists may name other criteria lists this deep, no deeper (and never in a cycle).
const MAX_LIST_NESTING: usize = 3;

pub const CHANNELS: &[&str] = &[
    "WHATSAPP",
    "INSTAGRAM",
    "MESSENGER",
    "WECHAT",
    "LINE",
    "TELEGRAM",
    "VIBER",
    "SMS",
    "LIVE_CHAT",
];

/// What a filter may refer to, looked up once before compiling.
pub struct Catalog {
    pub properties: HashMap<String, PropertyRow>,
    labels: HashMap<String, Uuid>,
    lists: HashMap<Uuid, ListRef>,
    pub me: Uuid,
}

#[derive(Clone, Debug)]
struct ListRef {
    criteria: Option<ContactFilter>,
}

impl Catalog {
    /// Loads the company's properties, and the labels and lists `filters` name.
    pub async fn load(
        conn: &mut PgConnection,
        me: Uuid,
        filters: &[&ContactFilter],
    ) -> ApiResult<Self> {
        let properties = super::store::properties(conn)
            .await?
            .into_iter()
            .map(|p| (p.key.clone(), p))
            .collect();
        let mut catalog = Catalog {
            properties,
            labels: HashMap::new(),
            lists: HashMap::new(),
            me,
        };
        let mut label_names = Vec::new();
        let mut pending: Vec<ContactFilter> = filters.iter().map(|f| (*f).clone()).collect();
        for _round in 0..=MAX_LIST_NESTING {
            let mut list_ids = Vec::new();
            for filter in &pending {
                collect(filter, &mut label_names, &mut list_ids)?;
            }
            list_ids.retain(|id| !catalog.lists.contains_key(id));
            if list_ids.is_empty() {
                break;
            }
            pending.clear();
            let rows: Vec<(Uuid, Option<serde_json::Value>)> =
                sqlx::query_as("select id, filter from contact_lists where id = any($1)")
                    .bind(&list_ids)
                    .fetch_all(&mut *conn)
                    .await?;
            for id in &list_ids {
                let Some((_, stored)) = rows.iter().find(|(found, _)| found == id) else {
                    return Err(ApiError::validation(format!("there is no list {id}")));
                };
                let criteria = match stored {
                    Some(json) => Some(
                        serde_json::from_value::<ContactFilter>(json.clone())
                            .map_err(|e| ApiError::internal("reading a criteria list", e))?,
                    ),
                    None => None,
                };
                if let Some(criteria) = &criteria {
                    pending.push(criteria.clone());
                }
                catalog.lists.insert(*id, ListRef { criteria });
            }
        }
        label_names.sort();
        label_names.dedup();
        if !label_names.is_empty() {
            let rows: Vec<(Uuid, String)> =
                sqlx::query_as("select id, lower(name) from labels where lower(name) = any($1)")
                    .bind(&label_names)
                    .fetch_all(&mut *conn)
                    .await?;
            for name in &label_names {
                let id = rows
                    .iter()
                    .find(|(_, found)| found == name)
                    .map(|(id, _)| *id)
                    .ok_or_else(|| ApiError::validation(format!("there is no label '{name}'")))?;
                catalog.labels.insert(name.clone(), id);
            }
        }
        Ok(catalog)
    }
}

/// Checks the tree's shape and size, and gathers the labels and lists it names.
fn collect(
    filter: &ContactFilter,
    labels: &mut Vec<String>,
    lists: &mut Vec<Uuid>,
) -> ApiResult<()> {
    let mut count = 0;
    walk(filter, 1, &mut count, &mut |condition| {
        let values = condition_values(condition);
        match condition.property.as_str() {
            "label" => labels.extend(values.iter().map(|v| label_key(v))),
            "list" => {
                for value in values {
                    lists.push(parse_uuid("list", value)?);
                }
            }
            _ => {}
        }
        Ok(())
    })
}

pub(super) fn walk(
    filter: &ContactFilter,
    depth: usize,
    count: &mut usize,
    visit: &mut dyn FnMut(&ContactCondition) -> ApiResult<()>,
) -> ApiResult<()> {
    if depth > MAX_DEPTH {
        return Err(ApiError::validation(format!(
            "a filter nests at most {MAX_DEPTH} levels"
        )));
    }
    let parts = [
        filter.and.is_some(),
        filter.or.is_some(),
        filter.condition.is_some(),
    ];
    if parts.iter().filter(|p| **p).count() != 1 {
        return Err(ApiError::validation(
            "each filter level has exactly one of 'and', 'or' and 'condition'",
        ));
    }
    if let Some(condition) = &filter.condition {
        *count += 1;
        if *count > MAX_CONDITIONS {
            return Err(ApiError::validation(format!(
                "a filter has at most {MAX_CONDITIONS} conditions"
            )));
        }
        return visit(condition);
    }
    let children = filter
        .and
        .as_ref()
        .or(filter.or.as_ref())
        .into_iter()
        .flatten();
    for child in children {
        walk(child, depth + 1, count, visit)?;
    }
    Ok(())
}

fn condition_values(condition: &ContactCondition) -> Vec<&str> {
    condition
        .value
        .iter()
        .chain(condition.values.iter().flatten())
        .map(String::as_str)
        .collect()
}

fn label_key(name: &str) -> String {
    name.trim().trim_start_matches('#').to_lowercase()
}

fn parse_uuid(what: &str, value: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(value.trim()).map_err(|_| {
        ApiError::validation(format!(
            "'{}' is not a {what} ID",
            properties::truncate(value, 60)
        ))
    })
}

/// The filter "is on list `id`".
pub fn list_condition(id: Uuid) -> ContactFilter {
    ContactFilter {
        condition: Some(ContactCondition {
            property: "list".to_string(),
            op: FilterOp::Eq,
            value: Some(id.to_string()),
            values: None,
        }),
        ..ContactFilter::default()
    }
}

/// Checks that `filter` compiles against the company's properties, labels and lists, as a
/// saved view or criteria list must before it is stored.
pub async fn validate(conn: &mut PgConnection, me: Uuid, filter: &ContactFilter) -> ApiResult<()> {
    let catalog = Catalog::load(conn, me, &[filter]).await?;
    let mut qb = QueryBuilder::<Postgres>::new("");
    push(&mut qb, filter, &catalog)
}

/// Appends `filter` as a parenthesised boolean expression over the contact row `c`.
pub fn push(
    qb: &mut QueryBuilder<'_, Postgres>,
    filter: &ContactFilter,
    catalog: &Catalog,
) -> ApiResult<()> {
    let mut count = 0;
    walk(filter, 1, &mut count, &mut |_| Ok(()))?;
    push_tree(qb, filter, catalog, 0)
}

fn push_tree(
    qb: &mut QueryBuilder<'_, Postgres>,
    filter: &ContactFilter,
    catalog: &Catalog,
    list_depth: usize,
) -> ApiResult<()> {
    push_boolean_tree(qb, filter, &mut |qb, condition| {
        push_condition(qb, condition, catalog, list_depth)
    })
}

/// Appends an AND/OR tree, parenthesised, with `leaf` writing each condition (contacts and
/// custom object records share the tree and differ in their conditions).
pub(super) fn push_boolean_tree<'q>(
    qb: &mut QueryBuilder<'q, Postgres>,
    filter: &ContactFilter,
    leaf: &mut dyn FnMut(&mut QueryBuilder<'q, Postgres>, &ContactCondition) -> ApiResult<()>,
) -> ApiResult<()> {
    if let Some(condition) = &filter.condition {
        return leaf(qb, condition);
    }
    let (children, joiner, empty) = match (&filter.and, &filter.or) {
        (Some(children), _) => (children, " and ", "true"),
        (_, Some(children)) => (children, " or ", "false"),
        _ => return Err(ApiError::validation("an empty filter level")),
    };
    if children.is_empty() {
        qb.push(empty);
        return Ok(());
    }
    qb.push("(");
    for (i, child) in children.iter().enumerate() {
        if i > 0 {
            qb.push(joiner);
        }
        push_boolean_tree(qb, child, leaf)?;
    }
    qb.push(")");
    Ok(())
}

/// The kind of thing a condition's property is, and where it lives.
enum Target {
    Text {
        column: &'static str,
        normalize: Normalize,
    },
    Number(&'static str),
    Date(&'static str),
    Instant(&'static str),
    Boolean(&'static str),
    Multi(&'static str),
    Reference {
        column: &'static str,
        what: &'static str,
    },
    Label,
    List,
    Channel,
}

#[derive(Clone, Copy)]
enum Normalize {
    None,
    Phone,
    Email,
    Upper,
    /// `display_name`: '' when unknown rather than null.
    EmptyIsUnset,
}

fn target(property: &str, catalog: &Catalog) -> ApiResult<Target> {
    use Normalize as N;
    let text = |column, normalize| Target::Text { column, normalize };
    Ok(match property {
        "first_name" => text("first_name", N::None),
        "last_name" => text("last_name", N::None),
        "name" => text("display_name", N::EmptyIsUnset),
        "phone" => text("phone", N::Phone),
        "email" => text("email", N::Email),
        "country" => text("country", N::Upper),
        "location" => text("location", N::None),
        "company_name" => text("company_name", N::None),
        "job_title" => text("job_title", N::None),
        "owner" => Target::Reference {
            column: "owner_id",
            what: "user",
        },
        "team" => Target::Reference {
            column: "team_id",
            what: "team",
        },
        "id" => Target::Reference {
            column: "id",
            what: "contact",
        },
        "created_at" => Target::Instant("created_at"),
        "updated_at" => Target::Instant("updated_at"),
        "last_contacted_at" => Target::Instant("last_contacted_at"),
        "last_inbound_at" => Target::Instant("last_inbound_at"),
        "label" => Target::Label,
        "list" => Target::List,
        "channel" => Target::Channel,
        key => {
            let property = catalog.properties.get(key).ok_or_else(|| {
                ApiError::validation(format!(
                    "there is no contact property '{}'",
                    properties::truncate(key, 80)
                ))
            })?;
            let column = property.column()?;
            match property.kind().slot_family() {
                SlotFamily::Text => {
                    let normalize = match property.kind() {
                        PropertyType::Phone => N::Phone,
                        PropertyType::Email => N::Email,
                        _ => N::None,
                    };
                    text(column, normalize)
                }
                SlotFamily::Number => Target::Number(column),
                SlotFamily::Date => Target::Date(column),
                SlotFamily::Boolean => Target::Boolean(column),
                SlotFamily::Multi => Target::Multi(column),
            }
        }
    })
}

fn push_condition(
    qb: &mut QueryBuilder<'_, Postgres>,
    condition: &ContactCondition,
    catalog: &Catalog,
    list_depth: usize,
) -> ApiResult<()> {
    let key = condition.property.trim();
    let op = condition.op;
    let refuse = |why: &str| {
        ApiError::validation(format!(
            "{op:?} does not apply to property '{}'{why}",
            properties::truncate(key, 80)
        ))
    };
    let args = Args::of(condition, key)?;
    match target(key, catalog)? {
        Target::Text { column, normalize } => {
            let norm = |value: &str| -> ApiResult<String> {
                Ok(match normalize {
                    Normalize::Phone => properties::normalize_phone(value).ok_or_else(|| {
                        ApiError::validation(format!(
                            "'{}' is not a phone number with its country code",
                            properties::truncate(value, 60)
                        ))
                    })?,
                    Normalize::Email => value.trim().to_lowercase(),
                    Normalize::Upper => value.trim().to_uppercase(),
                    Normalize::None | Normalize::EmptyIsUnset => value.to_string(),
                })
            };
            let empty_is_unset = matches!(normalize, Normalize::EmptyIsUnset);
            match op {
                FilterOp::Eq => {
                    qb.push(format!("c.{column} = "))
                        .push_bind(norm(args.one()?)?);
                }
                FilterOp::Neq => {
                    qb.push(format!("c.{column} is distinct from "))
                        .push_bind(norm(args.one()?)?);
                }
                FilterOp::Contains => {
                    let needle = match normalize {
                        Normalize::Phone => args
                            .one()?
                            .chars()
                            .filter(|c| c.is_ascii_digit() || *c == '+')
                            .collect(),
                        _ => args.one()?.to_string(),
                    };
                    qb.push(format!("c.{column} ilike "))
                        .push_bind(like_pattern(&needle));
                }
                FilterOp::In => {
                    let values = args
                        .many()?
                        .iter()
                        .map(|v| norm(v))
                        .collect::<ApiResult<Vec<_>>>()?;
                    qb.push(format!("c.{column} = any("))
                        .push_bind(values)
                        .push(")");
                }
                FilterOp::IsSet if empty_is_unset => {
                    qb.push(format!("c.{column} <> ''"));
                }
                FilterOp::IsNotSet if empty_is_unset => {
                    qb.push(format!("c.{column} = ''"));
                }
                FilterOp::IsSet => {
                    qb.push(format!("c.{column} is not null"));
                }
                FilterOp::IsNotSet => {
                    qb.push(format!("c.{column} is null"));
                }
                FilterOp::Gt | FilterOp::Lt | FilterOp::Between => {
                    return Err(refuse(" (it is text)"));
                }
            }
        }
        Target::Number(column) => {
            let parse = |value: &str| {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| {
                        ApiError::validation(format!(
                            "property '{key}' is a number; '{}' is not",
                            properties::truncate(value, 60)
                        ))
                    })
            };
            push_comparison(qb, column, op, &args, parse, refuse)?;
        }
        Target::Date(column) => {
            let parse = |value: &str| {
                properties::parse_date(value).ok_or_else(|| {
                    ApiError::validation(format!(
                        "property '{key}' is a date (YYYY-MM-DD); '{}' is not",
                        properties::truncate(value, 60)
                    ))
                })
            };
            push_comparison(qb, column, op, &args, parse, refuse)?;
        }
        Target::Instant(column) => push_instant(qb, column, key, op, &args, refuse)?,
        Target::Boolean(column) => {
            let parse = |value: &str| {
                properties::parse_bool(value).ok_or_else(|| {
                    ApiError::validation(format!(
                        "property '{key}' is true or false; '{}' is not",
                        properties::truncate(value, 60)
                    ))
                })
            };
            if !matches!(
                op,
                FilterOp::Eq | FilterOp::Neq | FilterOp::IsSet | FilterOp::IsNotSet
            ) {
                return Err(refuse(" (it is true or false)"));
            }
            push_comparison(qb, column, op, &args, parse, refuse)?;
        }
        Target::Multi(column) => {
            let property = &catalog.properties[key];
            let option = |value: &str| -> ApiResult<String> {
                property
                    .options
                    .iter()
                    .find(|o| o.eq_ignore_ascii_case(value.trim()))
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::validation(format!(
                            "'{}' is not an option of property '{key}'",
                            properties::truncate(value, 60)
                        ))
                    })
            };
            match op {
                FilterOp::Eq | FilterOp::Contains => {
                    qb.push(format!("c.{column} @> "))
                        .push_bind(vec![option(args.one()?)?]);
                }
                FilterOp::Neq => {
                    qb.push(format!("not coalesce(c.{column} @> "))
                        .push_bind(vec![option(args.one()?)?])
                        .push(", false)");
                }
                FilterOp::In => {
                    let values = args
                        .many()?
                        .iter()
                        .map(|v| option(v))
                        .collect::<ApiResult<Vec<_>>>()?;
                    qb.push(format!("c.{column} && ")).push_bind(values);
                }
                FilterOp::IsSet => {
                    qb.push(format!("c.{column} is not null"));
                }
                FilterOp::IsNotSet => {
                    qb.push(format!("c.{column} is null"));
                }
                _ => return Err(refuse(" (it is a multi-select)")),
            }
        }
        Target::Reference { column, what } => {
            let id = |value: &str| -> ApiResult<Uuid> {
                if value.trim().eq_ignore_ascii_case("me") && column == "owner_id" {
                    Ok(catalog.me)
                } else {
                    parse_uuid(what, value)
                }
            };
            let allowed = matches!(op, FilterOp::Eq | FilterOp::Neq | FilterOp::In)
                || (column != "id" && matches!(op, FilterOp::IsSet | FilterOp::IsNotSet));
            if !allowed {
                return Err(refuse(""));
            }
            push_comparison(qb, column, op, &args, id, refuse)?;
        }
        Target::Label => {
            let id = |value: &str| {
                catalog
                    .labels
                    .get(&label_key(value))
                    .copied()
                    .ok_or_else(|| {
                        ApiError::validation(format!(
                            "there is no label '{}'",
                            properties::truncate(value, 60)
                        ))
                    })
            };
            match op {
                FilterOp::Eq | FilterOp::Contains => {
                    qb.push("c.label_ids @> ").push_bind(vec![id(args.one()?)?]);
                }
                FilterOp::Neq => {
                    qb.push("not (c.label_ids @> ")
                        .push_bind(vec![id(args.one()?)?])
                        .push(")");
                }
                FilterOp::In => {
                    let ids = args
                        .many()?
                        .iter()
                        .map(|v| id(v))
                        .collect::<ApiResult<Vec<_>>>()?;
                    qb.push("c.label_ids && ").push_bind(ids);
                }
                FilterOp::IsSet => {
                    qb.push("c.label_ids <> '{}'");
                }
                FilterOp::IsNotSet => {
                    qb.push("c.label_ids = '{}'");
                }
                _ => return Err(refuse("")),
            }
        }
        Target::List => {
            let members = |qb: &mut QueryBuilder<'_, Postgres>, value: &str| -> ApiResult<()> {
                let id = parse_uuid("list", value)?;
                let list = catalog
                    .lists
                    .get(&id)
                    .ok_or_else(|| ApiError::validation(format!("there is no list {id}")))?;
                match &list.criteria {
                    Some(criteria) => {
                        if list_depth >= MAX_LIST_NESTING {
                            return Err(ApiError::validation(format!(
                                "criteria lists refer to each other more than {MAX_LIST_NESTING} deep (or in a circle)"
                            )));
                        }
                        push_tree(qb, criteria, catalog, list_depth + 1)?;
                    }
                    None => {
                        qb.push(
                            "exists (select 1 from contact_list_members lm where lm.list_id = ",
                        )
                        .push_bind(id)
                        .push(" and lm.contact_id = c.id)");
                    }
                }
                Ok(())
            };
            match op {
                FilterOp::Eq => members(qb, args.one()?)?,
                FilterOp::Neq => {
                    qb.push("not coalesce(");
                    members(qb, args.one()?)?;
                    qb.push(", false)");
                }
                FilterOp::In => {
                    qb.push("(");
                    for (i, value) in args.many()?.iter().enumerate() {
                        if i > 0 {
                            qb.push(" or ");
                        }
                        members(qb, value)?;
                    }
                    qb.push(")");
                }
                _ => return Err(refuse("")),
            }
        }
        Target::Channel => {
            let channel = |value: &str| -> ApiResult<String> {
                let upper = value.trim().to_uppercase();
                CHANNELS
                    .contains(&upper.as_str())
                    .then_some(upper)
                    .ok_or_else(|| {
                        ApiError::validation(format!(
                            "'{}' is not a channel ({})",
                            properties::truncate(value, 60),
                            CHANNELS.join(", ")
                        ))
                    })
            };
            let exists = "exists (select 1 from contact_identities ci where ci.contact_id = c.id";
            match op {
                FilterOp::Eq => {
                    qb.push(exists)
                        .push(" and ci.channel = ")
                        .push_bind(channel(args.one()?)?)
                        .push(")");
                }
                FilterOp::Neq => {
                    qb.push("not ")
                        .push(exists)
                        .push(" and ci.channel = ")
                        .push_bind(channel(args.one()?)?)
                        .push(")");
                }
                FilterOp::In => {
                    let channels = args
                        .many()?
                        .iter()
                        .map(|v| channel(v))
                        .collect::<ApiResult<Vec<_>>>()?;
                    qb.push(exists)
                        .push(" and ci.channel = any(")
                        .push_bind(channels)
                        .push("))");
                }
                FilterOp::IsSet => {
                    qb.push(exists).push(")");
                }
                FilterOp::IsNotSet => {
                    qb.push("not ").push(exists).push(")");
                }
                _ => return Err(refuse("")),
            }
        }
    }
    Ok(())
}

/// A condition's operands, checked for count and size.
pub(super) struct Args<'a> {
    key: &'a str,
    op: FilterOp,
    value: Option<&'a str>,
    values: Option<&'a [String]>,
}

impl<'a> Args<'a> {
    pub(super) fn of(condition: &'a ContactCondition, key: &'a str) -> ApiResult<Self> {
        let args = Args {
            key,
            op: condition.op,
            value: condition.value.as_deref(),
            values: condition.values.as_deref(),
        };
        let too_long = condition_values(condition)
            .iter()
            .any(|v| v.chars().count() > MAX_VALUE_CHARS);
        if too_long {
            return Err(ApiError::validation(format!(
                "a filter value has at most {MAX_VALUE_CHARS} characters"
            )));
        }
        match condition.op {
            FilterOp::IsSet | FilterOp::IsNotSet
                if args.value.is_some() || args.values.is_some() =>
            {
                Err(ApiError::validation(format!(
                    "{:?} on '{key}' takes no value",
                    condition.op
                )))
            }
            _ => Ok(args),
        }
    }

    pub(super) fn one(&self) -> ApiResult<&'a str> {
        match (self.value, self.values) {
            (Some(value), None) => Ok(value),
            _ => Err(ApiError::validation(format!(
                "{:?} on '{}' takes one 'value'",
                self.op, self.key
            ))),
        }
    }

    pub(super) fn many(&self) -> ApiResult<&'a [String]> {
        match (self.value, self.values) {
            (None, Some(values)) if !values.is_empty() && values.len() <= MAX_VALUES => Ok(values),
            _ => Err(ApiError::validation(format!(
                "{:?} on '{}' takes 'values' (1 to {MAX_VALUES} of them)",
                self.op, self.key
            ))),
        }
    }

    pub(super) fn pair(&self) -> ApiResult<(&'a str, &'a str)> {
        match self.values {
            Some([low, high]) if self.value.is_none() => Ok((low, high)),
            _ => Err(ApiError::validation(format!(
                "BETWEEN on '{}' takes two 'values', low and high",
                self.key
            ))),
        }
    }
}

/// Comparisons on a column of one type (number and date slots; booleans and ids, which
/// their callers first limit to the operators that make sense for them).
fn push_comparison<T>(
    qb: &mut QueryBuilder<'_, Postgres>,
    column: &'static str,
    op: FilterOp,
    args: &Args<'_>,
    parse: impl Fn(&str) -> ApiResult<T>,
    refuse: impl Fn(&str) -> ApiError,
) -> ApiResult<()>
where
    T: for<'q> sqlx::Encode<'q, Postgres>
        + sqlx::Type<Postgres>
        + sqlx::postgres::PgHasArrayType
        + Send
        + 'static,
{
    match op {
        FilterOp::Eq => {
            qb.push(format!("c.{column} = "))
                .push_bind(parse(args.one()?)?);
        }
        FilterOp::Neq => {
            qb.push(format!("c.{column} is distinct from "))
                .push_bind(parse(args.one()?)?);
        }
        FilterOp::Gt => {
            qb.push(format!("c.{column} > "))
                .push_bind(parse(args.one()?)?);
        }
        FilterOp::Lt => {
            qb.push(format!("c.{column} < "))
                .push_bind(parse(args.one()?)?);
        }
        FilterOp::Between => {
            let (low, high) = args.pair()?;
            qb.push(format!("c.{column} between "))
                .push_bind(parse(low)?)
                .push(" and ")
                .push_bind(parse(high)?);
        }
        FilterOp::In => {
            let values = args
                .many()?
                .iter()
                .map(|v| parse(v))
                .collect::<ApiResult<Vec<T>>>()?;
            qb.push(format!("c.{column} = any("))
                .push_bind(values)
                .push(")");
        }
        FilterOp::IsSet => {
            qb.push(format!("c.{column} is not null"));
        }
        FilterOp::IsNotSet => {
            qb.push(format!("c.{column} is null"));
        }
        FilterOp::Contains => return Err(refuse("")),
    }
    Ok(())
}

/// Comparisons on a timestamp column. A date means that whole day (UTC); an RFC 3339 time
/// means that instant.
fn push_instant(
    qb: &mut QueryBuilder<'_, Postgres>,
    column: &'static str,
    key: &str,
    op: FilterOp,
    args: &Args<'_>,
    refuse: impl Fn(&str) -> ApiError,
) -> ApiResult<()> {
    let span = |value: &str| -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
        let value = value.trim();
        if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            let start = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
            if let Some(start) = start {
                return Ok((start, start + Duration::days(1)));
            }
        }
        DateTime::parse_from_rfc3339(value)
            .map(|t| {
                let t = t.with_timezone(&Utc);
                (t, t + Duration::microseconds(1))
            })
            .map_err(|_| {
                ApiError::validation(format!(
                    "'{key}' takes a date (YYYY-MM-DD) or an RFC 3339 time; '{}' is neither",
                    properties::truncate(value, 60)
                ))
            })
    };
    match op {
        FilterOp::Eq => {
            let (start, end) = span(args.one()?)?;
            qb.push(format!("(c.{column} >= "))
                .push_bind(start)
                .push(format!(" and c.{column} < "))
                .push_bind(end)
                .push(")");
        }
        FilterOp::Neq => {
            let (start, end) = span(args.one()?)?;
            qb.push(format!("not coalesce(c.{column} >= "))
                .push_bind(start)
                .push(format!(" and c.{column} < "))
                .push_bind(end)
                .push(", false)");
        }
        FilterOp::Gt => {
            let (_, end) = span(args.one()?)?;
            qb.push(format!("c.{column} >= ")).push_bind(end);
        }
        FilterOp::Lt => {
            let (start, _) = span(args.one()?)?;
            qb.push(format!("c.{column} < ")).push_bind(start);
        }
        FilterOp::Between => {
            let (low, high) = args.pair()?;
            let (start, _) = span(low)?;
            let (_, end) = span(high)?;
            qb.push(format!("(c.{column} >= "))
                .push_bind(start)
                .push(format!(" and c.{column} < "))
                .push_bind(end)
                .push(")");
        }
        FilterOp::IsSet if column.starts_with("last_") => {
            qb.push(format!("c.{column} is not null"));
        }
        FilterOp::IsNotSet if column.starts_with("last_") => {
            qb.push(format!("c.{column} is null"));
        }
        _ => return Err(refuse("")),
    }
    Ok(())
}

/// `%needle%` for ILIKE, with the needle's own `%`, `_` and `\` taken literally.
pub(super) fn like_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut properties = HashMap::new();
        properties.insert(
            "employees".to_string(),
            PropertyRow {
                id: Uuid::nil(),
                key: "employees".into(),
                label: "Employees".into(),
                r#type: properties::DbType(PropertyType::Number),
                options: vec![],
                slot: "n1".into(),
                created_at: Utc::now(),
            },
        );
        Catalog {
            properties,
            labels: HashMap::new(),
            lists: HashMap::new(),
            me: Uuid::nil(),
        }
    }

    fn cond(
        property: &str,
        op: FilterOp,
        value: Option<&str>,
        values: Option<&[&str]>,
    ) -> ContactFilter {
        ContactFilter {
            condition: Some(ContactCondition {
                property: property.into(),
                op,
                value: value.map(str::to_string),
                values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
            }),
            ..Default::default()
        }
    }

    fn sql(filter: &ContactFilter) -> ApiResult<String> {
        let mut qb = QueryBuilder::new("");
        push(&mut qb, filter, &catalog())?;
        Ok(qb.sql().to_string())
    }

    #[test]
    fn values_become_parameters_never_sql_text() {
        let evil = "x'; drop table contacts; --";
        let filter = ContactFilter {
            or: Some(vec![
                cond("first_name", FilterOp::Eq, Some(evil), None),
                cond("company_name", FilterOp::Contains, Some(evil), None),
                cond("employees", FilterOp::Between, None, Some(&["1", "50"])),
            ]),
            ..Default::default()
        };
        let sql = sql(&filter).unwrap();
        assert!(!sql.contains("drop table"), "{sql}");
        assert_eq!(
            sql,
            "(c.first_name = $1 or c.company_name ilike $2 or c.n1 between $3 and $4)"
        );
    }

    #[test]
    fn bad_filters_are_refused_with_a_reason() {
        let unknown = cond("favourite_colour", FilterOp::Eq, Some("red"), None);
        assert!(sql(&unknown)
            .unwrap_err()
            .message()
            .contains("no contact property 'favourite_colour'"));
        let wrong_type = cond("employees", FilterOp::Gt, Some("many"), None);
        assert!(sql(&wrong_type)
            .unwrap_err()
            .message()
            .contains("is a number"));
        let wrong_op = cond("first_name", FilterOp::Gt, Some("a"), None);
        assert_eq!(sql(&wrong_op).unwrap_err().code(), "VALIDATION");
        let two_parts = ContactFilter {
            and: Some(vec![]),
            condition: cond("first_name", FilterOp::IsSet, None, None).condition,
            ..Default::default()
        };
        assert!(sql(&two_parts).is_err());
        let mut deep = cond("first_name", FilterOp::IsSet, None, None);
        for _ in 0..MAX_DEPTH {
            deep = ContactFilter {
                and: Some(vec![deep]),
                ..Default::default()
            };
        }
        assert!(sql(&deep).unwrap_err().message().contains("nests at most"));
        let many = ContactFilter {
            or: Some(
                (0..=MAX_CONDITIONS)
                    .map(|_| cond("first_name", FilterOp::IsSet, None, None))
                    .collect(),
            ),
            ..Default::default()
        };
        assert!(sql(&many).unwrap_err().message().contains("at most"));
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
