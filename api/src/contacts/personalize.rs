//! Personalisation: `{{contact.first_name | fallback: "there"}}` in messages, broadcasts and
//! flows, filled from a contact's built-in and custom properties.
//!
//! A template is text with variables in double braces. A variable names `contact.<key>`
//! (a built-in field or a custom property's key) and may end with `| fallback: "text"`
//! (single or double quotes), used when the contact has no value. [`check`] reports unknown
//! variables and malformed ones before a template is saved or sent; [`render`] fills one in.

use super::properties::{PropertyRow, PropertyType};
use super::store::ContactRow;

/// Built-in fields a template can use.
pub const FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "name",
    "phone",
    "email",
    "country",
    "location",
    "company_name",
    "job_title",
];

/// The longest template accepted.
pub const MAX_TEMPLATE_CHARS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Variable {
        /// As written, for messages.
        source: &'a str,
        namespace: &'a str,
        key: &'a str,
        fallback: Option<&'a str>,
    },
}

/// What is wrong with a template.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems {
    /// Variables that name no property, as written (`contact.shoe_size`).
    pub unknown: Vec<String>,
    /// Malformed variables and other mistakes, each a sentence.
    pub errors: Vec<String>,
}

impl Problems {
    pub fn is_empty(&self) -> bool {
        self.unknown.is_empty() && self.errors.is_empty()
    }
}

fn parse(template: &str) -> Result<Vec<Piece<'_>>, String> {
    if template.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(format!(
            "a template is at most {MAX_TEMPLATE_CHARS} characters"
        ));
    }
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| {
            format!(
                "'{{{{' at character {} is never closed with '}}}}'",
                template.len() - rest.len() + open + 1
            )
        })?;
        let inner = &after[..close];
        pieces.push(variable(inner)?);
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

fn variable(inner: &str) -> Result<Piece<'_>, String> {
    let source = inner.trim();
    let (path, filter) = match source.split_once('|') {
        Some((path, filter)) => (path.trim(), Some(filter.trim())),
        None => (source, None),
    };
    let (namespace, key) = path.split_once('.').ok_or_else(|| {
        format!("'{{{{{source}}}}}' names no property; write {{{{contact.first_name}}}}")
    })?;
    let fallback = match filter {
        None => None,
        Some(filter) => {
            let value = filter
                .strip_prefix("fallback")
                .map(str::trim_start)
                .and_then(|f| f.strip_prefix(':'))
                .map(str::trim)
                .ok_or_else(|| {
                    format!("in '{{{{{source}}}}}', the only filter is fallback: \"text\"")
                })?;
            let quoted = value.len() >= 2
                && ((value.starts_with('"') && value.ends_with('"'))
                    || (value.starts_with('\'') && value.ends_with('\'')));
            if !quoted {
                return Err(format!(
                    "in '{{{{{source}}}}}', the fallback is text in quotes, such as fallback: \"there\""
                ));
            }
            Some(&value[1..value.len() - 1])
        }
    };
    Ok(Piece::Variable {
        source,
        namespace: namespace.trim(),
        key: key.trim(),
        fallback,
    })
}

fn known(namespace: &str, key: &str, properties: &[PropertyRow]) -> bool {
    namespace == "contact" && (FIELDS.contains(&key) || properties.iter().any(|p| p.key == key))
}

/// Everything wrong with `template` for a company with `properties`.
pub fn check(template: &str, properties: &[PropertyRow]) -> Problems {
    let mut problems = Problems::default();
    match parse(template) {
        Err(error) => problems.errors.push(error),
        Ok(pieces) => {
            for piece in pieces {
                if let Piece::Variable { namespace, key, .. } = piece {
                    let name = format!("{namespace}.{key}");
                    if !known(namespace, key, properties) && !problems.unknown.contains(&name) {
                        problems.unknown.push(name);
                    }
                }
            }
        }
    }
    problems
}

/// `contact`'s value of `key` as text, if it has one.
fn value(contact: &ContactRow, key: &str, properties: &[PropertyRow]) -> Option<String> {
    let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    match key {
        "first_name" => text(&contact.first_name),
        "last_name" => text(&contact.last_name),
        "name" => Some(contact.display_name.clone()).filter(|s| !s.is_empty()),
        "phone" => text(&contact.phone),
        "email" => text(&contact.email),
        "country" => text(&contact.country),
        "location" => text(&contact.location),
        "company_name" => text(&contact.company_name),
        "job_title" => text(&contact.job_title),
        _ => {
            let property = properties.iter().find(|p| p.key == key)?;
            let value = contact.custom.get(key)?;
            Some(match (property.kind(), value) {
                (PropertyType::Boolean, serde_json::Value::Bool(flag)) => {
                    if *flag { "yes" } else { "no" }.to_string()
                }
                (_, serde_json::Value::Number(n)) => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
                    _ => n.to_string(),
                },
                (_, serde_json::Value::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                (_, serde_json::Value::String(s)) => s.clone(),
                (_, other) => other.to_string(),
            })
        }
    }
}

/// Fills `template` in for `contact`. A template with problems is not rendered.
pub fn render(
    template: &str,
    contact: &ContactRow,
    properties: &[PropertyRow],
) -> Result<String, Problems> {
    let problems = check(template, properties);
    if !problems.is_empty() {
        return Err(problems);
    }
    let pieces = parse(template).map_err(|error| Problems {
        errors: vec![error],
        ..Problems::default()
    })?;
    let mut out = String::with_capacity(template.len());
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Variable { key, fallback, .. } => match value(contact, key, properties) {
                Some(v) => out.push_str(&v),
                None => out.push_str(fallback.unwrap_or("")),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(key: &str, kind: &str) -> PropertyRow {
        PropertyRow {
            id: uuid::Uuid::nil(),
            key: key.to_string(),
            label: key.to_string(),
            r#type: kind.to_string().into(),
            options: Vec::new(),
            slot: "t1".to_string(),
            created_at: chrono::Utc::now(),
        }
    }

    fn contact() -> ContactRow {
        let mut custom = serde_json::Map::new();
        custom.insert("plan".into(), serde_json::json!("Gold"));
        custom.insert("seats".into(), serde_json::json!(12.0));
        custom.insert("vip".into(), serde_json::json!(true));
        ContactRow {
            id: uuid::Uuid::nil(),
            first_name: Some("Ana".into()),
            last_name: None,
            display_name: "Ana".into(),
            phone: None,
            email: Some("ana@example.com".into()),
            country: None,
            location: None,
            company_name: None,
            job_title: None,
            owner_id: None,
            team_id: None,
            label_ids: Vec::new(),
            last_contacted_at: None,
            last_inbound_at: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            custom,
        }
    }

    fn properties() -> Vec<PropertyRow> {
        vec![
            property("plan", "SINGLE_SELECT"),
            property("seats", "NUMBER"),
            property("vip", "BOOLEAN"),
            property("renewal", "DATE"),
        ]
    }

    #[test]
    fn variables_are_filled_with_fallbacks_for_missing_values() {
        let text = render(
            "Hi {{contact.first_name | fallback: \"there\"}}, your {{ contact.plan }} plan has \
             {{contact.seats}} seats (VIP: {{contact.vip}}). Renews {{contact.renewal|fallback:'soon'}}. \
             Company: {{contact.company_name}}.",
            &contact(),
            &properties(),
        )
        .unwrap();
        assert_eq!(
            text,
            "Hi Ana, your Gold plan has 12 seats (VIP: yes). Renews soon. Company: ."
        );
        let mut nameless = contact();
        nameless.first_name = None;
        assert_eq!(
            render(
                "Hi {{contact.first_name | fallback: \"there\"}}!",
                &nameless,
                &properties()
            )
            .unwrap(),
            "Hi there!"
        );
    }

    #[test]
    fn unknown_and_malformed_variables_are_reported() {
        let problems = check(
            "{{contact.shoe_size}} {{order.total}} {{contact.shoe_size}} {{contact.plan}}",
            &properties(),
        );
        assert_eq!(problems.unknown, ["contact.shoe_size", "order.total"]);
        for bad in [
            "Hi {{contact.first_name",
            "Hi {{first_name}}",
            "Hi {{contact.first_name | upper}}",
            "Hi {{contact.first_name | fallback: there}}",
        ] {
            let problems = check(bad, &properties());
            assert_eq!(problems.errors.len(), 1, "{bad}: {problems:?}");
        }
        assert!(render("{{contact.nope}}", &contact(), &properties()).is_err());
    }
}
