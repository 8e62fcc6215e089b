//! Contact properties: the built-in ones (columns of `contacts`) and a company's custom ones
//! (typed slot columns, see docs/decisions/0007), and the validation of their values.

use chrono::NaiveDate;
use serde_json::Value as Json;

use crate::error::{ApiError, ApiResult};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PropertyType {
    Text,
    Number,
    Date,
    Boolean,
    SingleSelect,
    MultiSelect,
    Phone,
    Email,
    Url,
}

impl PropertyType {
    pub fn as_db(self) -> &'static str {
        match self {
            PropertyType::Text => "TEXT",
            PropertyType::Number => "NUMBER",
            PropertyType::Date => "DATE",
            PropertyType::Boolean => "BOOLEAN",
            PropertyType::SingleSelect => "SINGLE_SELECT",
            PropertyType::MultiSelect => "MULTI_SELECT",
            PropertyType::Phone => "PHONE",
            PropertyType::Email => "EMAIL",
            PropertyType::Url => "URL",
        }
    }

    pub fn from_db(value: &str) -> Self {
        match value {
            "NUMBER" => PropertyType::Number,
            "DATE" => PropertyType::Date,
            "BOOLEAN" => PropertyType::Boolean,
            "SINGLE_SELECT" => PropertyType::SingleSelect,
            "MULTI_SELECT" => PropertyType::MultiSelect,
            "PHONE" => PropertyType::Phone,
            "EMAIL" => PropertyType::Email,
            "URL" => PropertyType::Url,
            _ => PropertyType::Text,
        }
    }

    /// The slot family holding values of this type.
    pub fn slot_family(self) -> SlotFamily {
        match self {
            PropertyType::Number => SlotFamily::Number,
            PropertyType::Date => SlotFamily::Date,
            PropertyType::Boolean => SlotFamily::Boolean,
            PropertyType::MultiSelect => SlotFamily::Multi,
            _ => SlotFamily::Text,
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            PropertyType::Text => "text",
            PropertyType::Number => "a number",
            PropertyType::Date => "a date (YYYY-MM-DD)",
            PropertyType::Boolean => "true or false",
            PropertyType::SingleSelect => "one of its options",
            PropertyType::MultiSelect => "a list of its options",
            PropertyType::Phone => "a phone number",
            PropertyType::Email => "an e-mail address",
            PropertyType::Url => "an http(s) URL",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotFamily {
    Text,
    Number,
    Date,
    Boolean,
    Multi,
}

impl SlotFamily {
    pub fn prefix(self) -> char {
        match self {
            SlotFamily::Text => 't',
            SlotFamily::Number => 'n',
            SlotFamily::Date => 'd',
            SlotFamily::Boolean => 'b',
            SlotFamily::Multi => 'm',
        }
    }

    /// How many slots of this family `contacts` has (the migration creates them).
    pub fn capacity(self) -> usize {
        match self {
            SlotFamily::Text => 24,
            SlotFamily::Number | SlotFamily::Date | SlotFamily::Boolean => 12,
            SlotFamily::Multi => 8,
        }
    }
}

/// A slot column's name, checked against the closed set the migration created: the only
/// way a column name reaches SQL text.
pub fn slot_column(slot: &str) -> Option<&'static str> {
    SLOT_COLUMNS.iter().copied().find(|column| *column == slot)
}

macro_rules! slot_names {
    ($($name:literal)*) => { &[$($name),*] };
}

const SLOT_COLUMNS: &[&str] = slot_names!(
    "t1" "t2" "t3" "t4" "t5" "t6" "t7" "t8" "t9" "t10" "t11" "t12" "t13" "t14" "t15" "t16"
    "t17" "t18" "t19" "t20" "t21" "t22" "t23" "t24"
    "n1" "n2" "n3" "n4" "n5" "n6" "n7" "n8" "n9" "n10" "n11" "n12"
    "d1" "d2" "d3" "d4" "d5" "d6" "d7" "d8" "d9" "d10" "d11" "d12"
    "b1" "b2" "b3" "b4" "b5" "b6" "b7" "b8" "b9" "b10" "b11" "b12"
    "m1" "m2" "m3" "m4" "m5" "m6" "m7" "m8"
);

/// The first free slot of `family`, given the slots a company already uses.
pub fn free_slot(family: SlotFamily, used: &[String]) -> Option<&'static str> {
    (1..=family.capacity())
        .map(|i| format!("{}{i}", family.prefix()))
        .find(|candidate| !used.iter().any(|u| u == candidate))
        .and_then(|name| slot_column(&name))
}

/// A custom property as defined by a company.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PropertyRow {
    pub id: uuid::Uuid,
    pub key: String,
    pub label: String,
    #[sqlx(try_from = "String")]
    pub r#type: DbType,
    pub options: Vec<String>,
    pub slot: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// `PropertyType` as read from its column.
#[derive(Clone, Copy, Debug)]
pub struct DbType(pub PropertyType);

impl From<String> for DbType {
    fn from(value: String) -> Self {
        DbType(PropertyType::from_db(&value))
    }
}

impl PropertyRow {
    pub fn kind(&self) -> PropertyType {
        self.r#type.0
    }

    pub fn column(&self) -> ApiResult<&'static str> {
        slot_column(&self.slot).ok_or_else(|| {
            ApiError::internal(
                "reading a contact property",
                format!("bad slot {}", self.slot),
            )
        })
    }
}

/// The keys of the built-in properties, which custom ones may not take. They are also the
/// personalisation variables (`{{contact.first_name}}`) and the filter's property names.
pub const BUILT_IN_KEYS: &[&str] = &[
    "first_name",
    "last_name",
    "name",
    "phone",
    "email",
    "country",
    "location",
    "company_name",
    "job_title",
    "owner",
    "team",
    "label",
    "list",
    "channel",
    "created_at",
    "updated_at",
    "last_contacted_at",
    "last_inbound_at",
    "id",
];

/// A typed value ready to bind to its slot.
#[derive(Clone, Debug, PartialEq)]
pub enum SlotValue {
    Text(String),
    Number(f64),
    Date(NaiveDate),
    Boolean(bool),
    Multi(Vec<String>),
}

impl SlotValue {
    pub fn to_json(&self) -> Json {
        match self {
            SlotValue::Text(text) => Json::String(text.clone()),
            SlotValue::Number(number) => serde_json::Number::from_f64(*number)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            SlotValue::Date(date) => Json::String(date.format("%Y-%m-%d").to_string()),
            SlotValue::Boolean(flag) => Json::Bool(*flag),
            SlotValue::Multi(values) => {
                Json::Array(values.iter().cloned().map(Json::String).collect())
            }
        }
    }
}

const MAX_TEXT: usize = 2000;

/// Checks `value` against `property` and converts it; JSON `null` clears the property.
/// Numbers, dates and booleans are also accepted as strings (as a CSV file gives them).
pub fn parse_value(property: &PropertyRow, value: &Json) -> ApiResult<Option<SlotValue>> {
    let kind = property.kind();
    let wrong = || {
        ApiError::validation(format!(
            "property '{}' takes {}; {} is not",
            property.key,
            kind.noun(),
            short(value)
        ))
    };
    if value.is_null() {
        return Ok(None);
    }
    if let Json::String(text) = value {
        if text.trim().is_empty() && kind != PropertyType::Text {
            return Ok(None);
        }
    }
    let parsed = match kind {
        PropertyType::Text => {
            let text = value.as_str().ok_or_else(wrong)?;
            if text.chars().count() > MAX_TEXT {
                return Err(ApiError::validation(format!(
                    "property '{}' holds at most {MAX_TEXT} characters",
                    property.key
                )));
            }
            if text.is_empty() {
                return Ok(None);
            }
            SlotValue::Text(text.to_string())
        }
        PropertyType::Number => {
            let number = match value {
                Json::Number(number) => number.as_f64(),
                Json::String(text) => text.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|n| n.is_finite())
            .ok_or_else(wrong)?;
            SlotValue::Number(number)
        }
        PropertyType::Date => {
            let text = value.as_str().ok_or_else(wrong)?;
            SlotValue::Date(parse_date(text).ok_or_else(wrong)?)
        }
        PropertyType::Boolean => SlotValue::Boolean(match value {
            Json::Bool(flag) => *flag,
            Json::String(text) => parse_bool(text).ok_or_else(wrong)?,
            _ => return Err(wrong()),
        }),
        PropertyType::SingleSelect => {
            let text = value.as_str().ok_or_else(wrong)?;
            SlotValue::Text(option_of(property, text)?)
        }
        PropertyType::MultiSelect => {
            let items: Vec<&str> = match value {
                Json::Array(items) => items
                    .iter()
                    .map(|item| item.as_str().ok_or_else(wrong))
                    .collect::<ApiResult<_>>()?,
                // A CSV cell: values separated by semicolons.
                Json::String(text) => text
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect(),
                _ => return Err(wrong()),
            };
            let mut chosen = Vec::new();
            for item in items {
                let option = option_of(property, item)?;
                if !chosen.contains(&option) {
                    chosen.push(option);
                }
            }
            if chosen.is_empty() {
                return Ok(None);
            }
            SlotValue::Multi(chosen)
        }
        PropertyType::Phone => {
            let text = value.as_str().ok_or_else(wrong)?;
            SlotValue::Text(normalize_phone(text).ok_or_else(wrong)?)
        }
        PropertyType::Email => {
            let text = value.as_str().ok_or_else(wrong)?;
            SlotValue::Text(normalize_email(text).ok_or_else(wrong)?)
        }
        PropertyType::Url => {
            let text = value.as_str().ok_or_else(wrong)?.trim();
            let ok = url::Url::parse(text)
                .map(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
                .unwrap_or(false);
            if !ok || text.len() > MAX_TEXT {
                return Err(wrong());
            }
            SlotValue::Text(text.to_string())
        }
    };
    Ok(Some(parsed))
}

fn option_of(property: &PropertyRow, text: &str) -> ApiResult<String> {
    let text = text.trim();
    property
        .options
        .iter()
        .find(|option| option.eq_ignore_ascii_case(text))
        .cloned()
        .ok_or_else(|| {
            ApiError::validation(format!(
                "'{}' is not an option of property '{}' (options: {})",
                truncate(text, 60),
                property.key,
                property.options.join(", ")
            ))
        })
}

pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.date_naive())
        })
}

pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Some(true),
        "false" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// A phone number in E.164: `+` and 8 to 15 digits. Spaces, dashes, dots and brackets are
/// dropped, and a leading `00` is read as `+`. Numbers without a country code are refused
/// rather than guessed.
pub fn normalize_phone(text: &str) -> Option<String> {
    let text = text.trim();
    let rest = if let Some(rest) = text.strip_prefix('+') {
        rest
    } else {
        text.strip_prefix("00")?
    };
    let mut digits = String::from("+");
    for ch in rest.chars() {
        match ch {
            '0'..='9' => digits.push(ch),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let count = digits.len() - 1;
    ((8..=15).contains(&count) && !digits[1..].starts_with('0')).then_some(digits)
}

/// A lower-cased e-mail address with one `@`, a non-empty local part and a dotted domain.
pub fn normalize_email(text: &str) -> Option<String> {
    let email = text.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && email.len() <= 320
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(email)
}

/// A custom property's key: lower-case letters, digits and underscores, starting with a
/// letter, and not a built-in property's key.
pub fn validate_key(key: &str) -> ApiResult<String> {
    let key = key.trim();
    let shape = !key.is_empty()
        && key.len() <= 63
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !shape {
        return Err(ApiError::validation(format!(
            "a property key is 1 to 63 lower-case letters, digits and underscores, starting with a letter; '{}' is not",
            truncate(key, 80)
        )));
    }
    if BUILT_IN_KEYS.contains(&key) {
        return Err(ApiError::conflict(format!(
            "'{key}' is a built-in property"
        )));
    }
    Ok(key.to_string())
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

fn short(value: &Json) -> String {
    truncate(&value.to_string(), 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn property(kind: PropertyType, options: &[&str]) -> PropertyRow {
        PropertyRow {
            id: uuid::Uuid::nil(),
            key: "p".into(),
            label: "P".into(),
            r#type: DbType(kind),
            options: options.iter().map(|s| s.to_string()).collect(),
            slot: "t1".into(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn phones_become_e164_or_are_refused() {
        assert_eq!(
            normalize_phone("+62 812-3456-7890").as_deref(),
            Some("+6281234567890")
        );
        assert_eq!(
            normalize_phone("0044 (20) 7946 0958").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(normalize_phone("0812345678"), None, "no country code");
        assert_eq!(normalize_phone("+1234"), None, "too short");
        assert_eq!(normalize_phone("+62 812 x"), None);
        assert_eq!(normalize_phone("'; drop table contacts; --"), None);
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            normalize_email(" Ana@Example.COM ").as_deref(),
            Some("ana@example.com")
        );
        assert_eq!(normalize_email("ana@example"), None);
        assert_eq!(normalize_email("@example.com"), None);
        assert_eq!(normalize_email("a b@example.com"), None);
    }

    #[test]
    fn values_are_typed_or_refused_with_the_property_named() {
        let number = property(PropertyType::Number, &[]);
        assert_eq!(
            parse_value(&number, &json!(52)).unwrap(),
            Some(SlotValue::Number(52.0))
        );
        assert_eq!(
            parse_value(&number, &json!("52.5")).unwrap(),
            Some(SlotValue::Number(52.5))
        );
        let err = parse_value(&number, &json!("fifty")).unwrap_err();
        assert_eq!(err.code(), "VALIDATION");
        assert!(
            err.message().contains("'p' takes a number"),
            "{}",
            err.message()
        );
        assert_eq!(parse_value(&number, &json!(null)).unwrap(), None);

        let date = property(PropertyType::Date, &[]);
        assert!(parse_value(&date, &json!("2024-02-30")).is_err());
        assert_eq!(
            parse_value(&date, &json!("2024-02-29")).unwrap(),
            Some(SlotValue::Date(
                NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
            ))
        );

        let select = property(PropertyType::SingleSelect, &["Gold", "Silver"]);
        assert_eq!(
            parse_value(&select, &json!("gold")).unwrap(),
            Some(SlotValue::Text("Gold".into()))
        );
        assert!(parse_value(&select, &json!("Bronze")).is_err());

        let multi = property(PropertyType::MultiSelect, &["a", "b", "c"]);
        assert_eq!(
            parse_value(&multi, &json!("a; c; a")).unwrap(),
            Some(SlotValue::Multi(vec!["a".into(), "c".into()]))
        );
        assert!(parse_value(&multi, &json!(["a", 3])).is_err());

        let boolean = property(PropertyType::Boolean, &[]);
        assert_eq!(
            parse_value(&boolean, &json!("Yes")).unwrap(),
            Some(SlotValue::Boolean(true))
        );
        assert!(parse_value(&boolean, &json!(1)).is_err());

        let url = property(PropertyType::Url, &[]);
        assert!(parse_value(&url, &json!("javascript:alert(1)")).is_err());
        assert!(parse_value(&url, &json!("https://example.com/a")).is_ok());
    }

    #[test]
    fn keys_are_checked_and_slots_handed_out_in_order() {
        assert!(validate_key("subscription_plan").is_ok());
        assert_eq!(validate_key("Plan").unwrap_err().code(), "VALIDATION");
        assert_eq!(validate_key("email").unwrap_err().code(), "CONFLICT");
        let used = vec!["t1".to_string(), "t3".to_string()];
        assert_eq!(free_slot(SlotFamily::Text, &used), Some("t2"));
        let full: Vec<String> = (1..=8).map(|i| format!("m{i}")).collect();
        assert_eq!(free_slot(SlotFamily::Multi, &full), None);
        assert_eq!(slot_column("t1; drop table x"), None);
    }
}
