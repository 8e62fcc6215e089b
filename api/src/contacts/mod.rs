//! Contacts (PRODUCT.md §3): the people a company talks to, with built-in and custom
//! properties, labels, an owner and team, and an activity log; filtered, grouped and paged.
//!
//! Staff see every contact, or, when the company's `staffSeeAll` setting is off, only the
//! contacts they own and those of their teams. Every read and write below goes through
//! [`Visibility`], so the rule holds for lookups by id as well as for lists.

pub mod export;
pub mod filter;
pub mod graphql;
pub mod import;
pub mod lists;
pub mod mac;
pub mod objects;
pub mod personalize;
pub mod properties;
pub mod related;
pub mod store;
pub mod table;

use async_graphql::{Enum, MaybeUndefined};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value as Json};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::auth::{Actor, ApiScope, Role};
use crate::error::{is_unique_violation, ApiError, ApiResult};
use filter::{Catalog, ContactFilter};
use properties::{PropertyRow, PropertyType};
use store::{Assign, ContactRow};

/// The name lists show: first and last name joined (the database computes the same).
pub fn display_name(first: Option<&str>, last: Option<&str>) -> String {
    format!("{} {}", first.unwrap_or(""), last.unwrap_or(""))
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Custom property definitions

pub struct PropertyDefinition {
    pub key: String,
    pub label: String,
    pub kind: PropertyType,
    pub options: Vec<String>,
}

pub async fn define_property(
    state: &AppState,
    actor: &Actor,
    definition: PropertyDefinition,
) -> ApiResult<PropertyRow> {
    actor.require(Role::Admin, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let row = define_property_in(&mut tx, actor, definition).await?;
    tx.commit().await?;
    Ok(row)
}

/// Defines a property in the caller's transaction (an import defines its new properties in
/// the transaction that queues it). The caller has checked the actor is an Admin.
async fn define_property_in(
    tx: &mut PgConnection,
    actor: &Actor,
    definition: PropertyDefinition,
) -> ApiResult<PropertyRow> {
    let key = properties::validate_key(&definition.key)?;
    let label = crate::users::normalize_name(&definition.label, "property label", 100)?;
    let options = validate_options(definition.kind, &definition.options)?;
    let family = definition.kind.slot_family();
    store::lock_properties(tx, actor.company_id).await?;
    let existing = store::properties(tx).await?;
    if existing.iter().any(|p| p.key == key) {
        return Err(ApiError::conflict(format!(
            "there is already a property '{key}'"
        )));
    }
    let used: Vec<String> = existing.iter().map(|p| p.slot.clone()).collect();
    let slot = properties::free_slot(family, &used).ok_or_else(|| {
        ApiError::LimitExceeded(format!(
            "a company can define at most {} properties stored like {} ones",
            family.capacity(),
            definition.kind.as_db().to_lowercase().replace('_', "-")
        ))
    })?;
    let row = store::insert_property(
        tx,
        actor.company_id,
        store::NewProperty {
            key: &key,
            label: &label,
            kind: definition.kind.as_db(),
            options: &options,
            slot,
        },
    )
    .await
    .map_err(|err| {
        if is_unique_violation(&err, "contact_properties_key") {
            ApiError::conflict(format!("there is already a property '{key}'"))
        } else {
            err.into()
        }
    })?;
    let entry = Entry::new("CONTACT_PROPERTY_DEFINED")
        .target("contact_property", row.id)
        .details(json!({ "key": key, "type": definition.kind.as_db() }));
    audit::record(tx, actor, entry).await?;
    Ok(row)
}

fn validate_options(kind: PropertyType, options: &[String]) -> ApiResult<Vec<String>> {
    let select = matches!(kind, PropertyType::SingleSelect | PropertyType::MultiSelect);
    if !select {
        if !options.is_empty() {
            return Err(ApiError::validation("only select properties have options"));
        }
        return Ok(Vec::new());
    }
    if options.is_empty() || options.len() > 200 {
        return Err(ApiError::validation(
            "a select property has 1 to 200 options",
        ));
    }
    let mut clean: Vec<String> = Vec::new();
    for option in options {
        let option = option.trim();
        if option.is_empty() || option.chars().count() > 100 || option.contains(';') {
            return Err(ApiError::validation(
                "an option is 1 to 100 characters, without ';' (it separates options in CSV files)",
            ));
        }
        if clean.iter().any(|o| o.eq_ignore_ascii_case(option)) {
            return Err(ApiError::validation(format!(
                "option '{option}' is given twice"
            )));
        }
        clean.push(option.to_string());
    }
    Ok(clean)
}

pub async fn list_properties(state: &AppState, actor: &Actor) -> ApiResult<Vec<PropertyRow>> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = store::properties(&mut tx).await?;
    tx.commit().await?;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------
// Who sees which contacts

/// The contacts an actor may see: all of the company's, or (Staff, when the company limits
/// them) those they own and those of their teams.
pub struct Visibility {
    me: Uuid,
    my_teams: Vec<Uuid>,
    restricted: bool,
}

impl Visibility {
    pub async fn of(conn: &mut PgConnection, actor: &Actor) -> ApiResult<Self> {
        Self::of_user(conn, actor.user_id(), actor.role).await
    }

    pub async fn of_user(conn: &mut PgConnection, user_id: Uuid, role: Role) -> ApiResult<Self> {
        let (my_teams, staff_see_all) = store::visibility_facts(conn, user_id).await?;
        Ok(Self {
            me: user_id,
            my_teams,
            restricted: role == Role::Staff && !staff_see_all,
        })
    }

    /// Appends ` and <rule>` when the actor's view is restricted.
    fn push(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        if self.restricted {
            qb.push(" and (c.owner_id = ")
                .push_bind(self.me)
                .push(" or c.team_id = any(")
                .push_bind(self.my_teams.clone())
                .push("))");
        }
    }

    pub fn allows(&self, contact: &ContactRow) -> bool {
        self.allows_owned(contact.owner_id, contact.team_id)
    }

    /// Whether a contact with this owner and team is visible.
    pub fn allows_owned(&self, owner_id: Option<Uuid>, team_id: Option<Uuid>) -> bool {
        !self.restricted
            || owner_id == Some(self.me)
            || team_id.is_some_and(|team| self.my_teams.contains(&team))
    }
}

/// `ids` without repeats, in their first order; 1 to 1,000 of them.
fn unique_ids(ids: &[Uuid]) -> ApiResult<Vec<Uuid>> {
    if ids.is_empty() || ids.len() > 1000 {
        return Err(ApiError::validation("give 1 to 1,000 contact IDs"));
    }
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    Ok(ids.iter().copied().filter(|id| seen.insert(*id)).collect())
}

/// The contacts `ids` in the order given, all of which the actor must be able to see:
/// NOT_FOUND names the first that is missing, hidden or another company's.
async fn all_visible(
    conn: &mut PgConnection,
    visibility: &Visibility,
    ids: &[Uuid],
    properties: &[PropertyRow],
) -> ApiResult<Vec<ContactRow>> {
    let found = store::by_ids(conn, ids, properties).await?;
    ids.iter()
        .map(|id| {
            found
                .iter()
                .find(|c| c.id == *id && visibility.allows(c))
                .cloned()
                .ok_or_else(|| ApiError::not_found(format!("contact {id}")))
        })
        .collect()
}

/// A contact the actor may see, or NOT_FOUND (also for other companies' ids).
async fn visible(
    conn: &mut PgConnection,
    visibility: &Visibility,
    id: Uuid,
    properties: &[PropertyRow],
    lock: bool,
) -> ApiResult<ContactRow> {
    store::by_id(conn, id, properties, lock)
        .await?
        .filter(|contact| visibility.allows(contact))
        .ok_or_else(|| ApiError::not_found("contact"))
}

pub async fn get(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<ContactRow> {
    Ok(get_with_properties(state, actor, id).await?.0)
}

/// A contact the actor may see, with the company's property definitions it was read with.
pub async fn get_with_properties(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
) -> ApiResult<(ContactRow, Vec<PropertyRow>)> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    let properties = store::properties(&mut tx).await?;
    let contact = visible(&mut tx, &visibility, id, &properties, false).await?;
    tx.commit().await?;
    Ok((contact, properties))
}

// ---------------------------------------------------------------------------------------
// Creating and changing contacts

/// The fields of a create or update. Undefined leaves a field as it is; null clears it.
#[derive(Default)]
pub struct ContactChanges {
    pub first_name: MaybeUndefined<String>,
    pub last_name: MaybeUndefined<String>,
    pub phone: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub country: MaybeUndefined<String>,
    pub location: MaybeUndefined<String>,
    pub company_name: MaybeUndefined<String>,
    pub job_title: MaybeUndefined<String>,
    pub owner_id: MaybeUndefined<Uuid>,
    pub team_id: MaybeUndefined<Uuid>,
    /// Custom property values by key; a null value clears that property.
    pub custom: Option<Map<String, Json>>,
}

/// Validates `changes` into column assignments, checking that an owner or team given is
/// one of the company's.
async fn assignments(
    conn: &mut PgConnection,
    changes: &ContactChanges,
    properties: &[PropertyRow],
) -> ApiResult<Vec<Assign>> {
    let mut assigns = field_assignments(changes, properties)?;
    match changes.owner_id {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => assigns.push(Assign::Uuid("owner_id", None)),
        MaybeUndefined::Value(id) => {
            // Looked up under row-level security: another company's user is not found.
            crate::users::store::by_id(conn, id)
                .await?
                .ok_or_else(|| ApiError::not_found("user"))?;
            assigns.push(Assign::Uuid("owner_id", Some(id)));
        }
    }
    match changes.team_id {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => assigns.push(Assign::Uuid("team_id", None)),
        MaybeUndefined::Value(id) => {
            crate::teams::store::by_id(conn, id)
                .await?
                .ok_or_else(|| ApiError::not_found("team"))?;
            assigns.push(Assign::Uuid("team_id", Some(id)));
        }
    }
    Ok(assigns)
}

/// Validates the property fields of `changes` (all but owner and team) into assignments.
fn field_assignments(
    changes: &ContactChanges,
    properties: &[PropertyRow],
) -> ApiResult<Vec<Assign>> {
    let mut assigns = Vec::new();
    let mut text = |column: &'static str,
                    value: &MaybeUndefined<String>,
                    check: &dyn Fn(&str) -> ApiResult<String>|
     -> ApiResult<()> {
        match value {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => assigns.push(Assign::Text(column, None)),
            MaybeUndefined::Value(raw) if raw.trim().is_empty() => {
                assigns.push(Assign::Text(column, None))
            }
            MaybeUndefined::Value(raw) => assigns.push(Assign::Text(column, Some(check(raw)?))),
        }
        Ok(())
    };
    let plain = |what: &'static str| {
        move |raw: &str| -> ApiResult<String> {
            let value = raw.trim();
            if value.chars().count() > 200 || value.chars().any(char::is_control) {
                return Err(ApiError::validation(format!(
                    "{what} is at most 200 characters, without control characters"
                )));
            }
            Ok(value.to_string())
        }
    };
    text("first_name", &changes.first_name, &plain("a first name"))?;
    text("last_name", &changes.last_name, &plain("a last name"))?;
    text("location", &changes.location, &plain("a location"))?;
    text(
        "company_name",
        &changes.company_name,
        &plain("a company name"),
    )?;
    text("job_title", &changes.job_title, &plain("a job title"))?;
    text("phone", &changes.phone, &|raw| {
        properties::normalize_phone(raw).ok_or_else(|| {
            ApiError::validation(format!(
                "'{}' is not a phone number in international form (+ country code and number)",
                properties::truncate(raw, 60)
            ))
        })
    })?;
    text("email", &changes.email, &|raw| {
        properties::normalize_email(raw).ok_or_else(|| {
            ApiError::validation(format!(
                "'{}' is not an e-mail address",
                properties::truncate(raw, 60)
            ))
        })
    })?;
    text("country", &changes.country, &|raw| {
        let code = raw.trim().to_uppercase();
        if code.len() == 2 && code.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(code)
        } else {
            Err(ApiError::validation(format!(
                "a country is a two-letter ISO 3166 code such as ID or SG; '{}' is not",
                properties::truncate(raw, 60)
            )))
        }
    })?;
    if let Some(custom) = &changes.custom {
        for (key, value) in custom {
            let property = properties.iter().find(|p| &p.key == key).ok_or_else(|| {
                ApiError::validation(format!(
                    "there is no contact property '{}'",
                    properties::truncate(key, 80)
                ))
            })?;
            let parsed = properties::parse_value(property, value)?;
            assigns.push(Assign::Slot(property.column()?, parsed));
        }
    }
    Ok(assigns)
}

/// What changed between `before` and `after`, for the activity log.
fn changed_fields(before: &ContactRow, after: &ContactRow) -> Vec<Json> {
    let pairs: [(&str, Json, Json); 10] = [
        (
            "first_name",
            json!(before.first_name),
            json!(after.first_name),
        ),
        ("last_name", json!(before.last_name), json!(after.last_name)),
        ("phone", json!(before.phone), json!(after.phone)),
        ("email", json!(before.email), json!(after.email)),
        ("country", json!(before.country), json!(after.country)),
        ("location", json!(before.location), json!(after.location)),
        (
            "company_name",
            json!(before.company_name),
            json!(after.company_name),
        ),
        ("job_title", json!(before.job_title), json!(after.job_title)),
        ("owner", json!(before.owner_id), json!(after.owner_id)),
        ("team", json!(before.team_id), json!(after.team_id)),
    ];
    let mut changes: Vec<Json> = pairs
        .into_iter()
        .filter(|(_, from, to)| from != to)
        .map(|(property, from, to)| json!({ "property": property, "from": from, "to": to }))
        .collect();
    let mut keys: Vec<&String> = before.custom.keys().chain(after.custom.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (from, to) = (before.custom.get(key), after.custom.get(key));
        if from != to {
            changes.push(json!({ "property": key, "from": from, "to": to }));
        }
    }
    changes
}

pub async fn create(
    state: &AppState,
    actor: &Actor,
    changes: ContactChanges,
    labels: &[String],
) -> ApiResult<ContactRow> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let properties = store::properties(&mut tx).await?;
    let mut changes = changes;
    if changes.owner_id.is_undefined() {
        // Whoever adds a contact owns it until someone else is made its owner.
        changes.owner_id = MaybeUndefined::Value(actor.user_id());
    }
    let assigns = assignments(&mut tx, &changes, &properties).await?;
    let identifies = assigns.iter().any(|a| {
        matches!(
            a,
            Assign::Text("first_name" | "last_name" | "phone" | "email", Some(_))
        )
    });
    if !identifies {
        return Err(ApiError::validation(
            "a contact needs at least a name, a phone number or an e-mail address",
        ));
    }
    let labels = clean_label_names(labels)?;
    let label_rows = if labels.is_empty() {
        Vec::new()
    } else {
        store::ensure_labels(&mut tx, actor.company_id, &labels).await?
    };
    let label_ids: Vec<Uuid> = label_rows.iter().map(|l| l.id).collect();
    let contact =
        store::insert(&mut tx, actor.company_id, &assigns, &label_ids, &properties).await?;
    store::record_activity(
        &mut tx,
        actor.company_id,
        &[contact.id],
        "CREATED",
        Some(actor.user_id()),
        &json!({ "source": "manual" }),
    )
    .await?;
    if !label_rows.is_empty() {
        let names: Vec<&str> = label_rows.iter().map(|l| l.name.as_str()).collect();
        store::record_activity(
            &mut tx,
            actor.company_id,
            &[contact.id],
            "LABELS_ADDED",
            Some(actor.user_id()),
            &json!({ "labels": names }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(contact)
}

pub async fn update(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    changes: ContactChanges,
) -> ApiResult<ContactRow> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    let properties = store::properties(&mut tx).await?;
    let before = visible(&mut tx, &visibility, id, &properties, true).await?;
    let assigns = assignments(&mut tx, &changes, &properties).await?;
    if assigns.is_empty() {
        tx.commit().await?;
        return Ok(before);
    }
    let after = store::update(&mut tx, id, &assigns, &properties).await?;
    let changed = changed_fields(&before, &after);
    if !changed.is_empty() {
        store::record_activity(
            &mut tx,
            actor.company_id,
            &[id],
            "PROPERTIES_CHANGED",
            Some(actor.user_id()),
            &json!({ "changes": changed }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(after)
}

/// Erases a contact: the row and everything hanging off it (identities, notes, reminders,
/// media references, list memberships, activity) go in one transaction. Irreversible. The
/// audit event keeps the id only, no personal data. A month in which the contact was active
/// keeps counting it, under a random id.
pub async fn delete(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<Uuid> {
    actor.require(Role::Admin, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    visible(&mut tx, &visibility, id, &[], true).await?;
    let files = related::media_keys(&mut tx, id).await?;
    sqlx::query("update monthly_active_contacts set contact_id = $2 where contact_id = $1")
        .bind(id)
        .bind(Uuid::new_v4())
        .execute(&mut *tx)
        .await?;
    store::delete(&mut tx, id).await?;
    audit::record(
        &mut tx,
        actor,
        Entry::new("CONTACT_ERASED").target("contact", id),
    )
    .await?;
    tx.commit().await?;
    // The rows are gone; now their files. A failure here is logged (the references no
    // longer exist, so nothing can reach the files).
    related::delete_objects(state, &files).await;
    Ok(id)
}

/// Merges contact `merged_id` into `keep_id`: everything of both is kept. The kept contact's
/// values win; the merged contact's fill what the kept one lacks; labels, lists, channel
/// identities, notes, reminders, files, custom object records (and their events), activity
/// and active months move over. The merged contact is then deleted, and the kept one's log
/// says so. A one-per-contact custom object the two both had leaves the kept contact with
/// two records, for someone to choose between: a merge never discards a record.
pub async fn merge(
    state: &AppState,
    actor: &Actor,
    keep_id: Uuid,
    merged_id: Uuid,
) -> ApiResult<ContactRow> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    if keep_id == merged_id {
        return Err(ApiError::validation(
            "a contact cannot be merged with itself",
        ));
    }
    let mut tx = state.db.tenant(actor.company_id).await?;
    // Their conversations first, then the contacts: the order in which storing an inbound
    // message takes them (its conversation, then its contact's key), so a merge during a
    // burst of messages waits for them instead of deadlocking with them.
    sqlx::query("select 1 from conversations where contact_id = any($1) order by id for update")
        .bind([keep_id, merged_id].as_slice())
        .execute(&mut *tx)
        .await?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    let properties = store::properties(&mut tx).await?;
    let keep = visible(&mut tx, &visibility, keep_id, &properties, true).await?;
    let gone = visible(&mut tx, &visibility, merged_id, &properties, true).await?;

    move_rows(
        &mut tx,
        &[
            "contact_identities",
            "contact_notes",
            "contact_reminders",
            "contact_media",
            "contact_activities",
            "custom_object_records",
            "custom_object_events",
        ],
        keep_id,
        merged_id,
    )
    .await?;
    sqlx::query(
        "insert into contact_list_members (list_id, contact_id, company_id, added_at)
         select list_id, $1, company_id, added_at from contact_list_members where contact_id = $2
         on conflict do nothing",
    )
    .bind(keep_id)
    .bind(merged_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update monthly_active_contacts m set contact_id = $1
         where m.contact_id = $2 and not exists (
             select 1 from monthly_active_contacts k
             where k.company_id = m.company_id and k.month = m.month and k.contact_id = $1)",
    )
    .bind(keep_id)
    .bind(merged_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("delete from monthly_active_contacts where contact_id = $1")
        .bind(merged_id)
        .execute(&mut *tx)
        .await?;
    // Conversations and their messages move too. A contact has one open conversation at
    // most: when both have one, the merged contact's is closed first (its messages stay).
    sqlx::query(
        "update conversations set status = 'CLOSED', closed_at = now(), updated_at = now()
         where contact_id = $2 and status = 'OPEN'
           and exists (select 1 from conversations where contact_id = $1 and status = 'OPEN')",
    )
    .bind(keep_id)
    .bind(merged_id)
    .execute(&mut *tx)
    .await?;
    move_rows(
        &mut tx,
        &["conversations", "messages", "widget_visitors"],
        keep_id,
        merged_id,
    )
    .await?;
    store::delete(&mut tx, merged_id).await?;

    // What the kept contact lacks, from the merged one.
    let fill = |mine: &Option<String>, theirs: &Option<String>| match (mine, theirs) {
        (None, Some(value)) => MaybeUndefined::Value(value.clone()),
        _ => MaybeUndefined::Undefined,
    };
    let mut custom = Map::new();
    for (key, value) in &gone.custom {
        if !keep.custom.contains_key(key) {
            custom.insert(key.clone(), value.clone());
        }
    }
    let changes = ContactChanges {
        first_name: fill(&keep.first_name, &gone.first_name),
        last_name: fill(&keep.last_name, &gone.last_name),
        phone: fill(&keep.phone, &gone.phone),
        email: fill(&keep.email, &gone.email),
        country: fill(&keep.country, &gone.country),
        location: fill(&keep.location, &gone.location),
        company_name: fill(&keep.company_name, &gone.company_name),
        job_title: fill(&keep.job_title, &gone.job_title),
        custom: (!custom.is_empty()).then_some(custom),
        ..ContactChanges::default()
    };
    let mut assigns = field_assignments(&changes, &properties)?;
    if keep.owner_id.is_none() && gone.owner_id.is_some() {
        assigns.push(Assign::Uuid("owner_id", gone.owner_id));
    }
    if keep.team_id.is_none() && gone.team_id.is_some() {
        assigns.push(Assign::Uuid("team_id", gone.team_id));
    }
    if !assigns.is_empty() {
        store::update(&mut tx, keep_id, &assigns, &properties).await?;
    }
    if !gone.label_ids.is_empty() {
        store::change_labels(&mut tx, &[keep_id], &gone.label_ids, true).await?;
    }
    store::record_activity(
        &mut tx,
        actor.company_id,
        &[keep_id],
        "MERGED",
        Some(actor.user_id()),
        &json!({ "merged": merged_id, "name": gone.display_name }),
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        Entry::new("CONTACTS_MERGED")
            .target("contact", keep_id)
            .details(json!({ "merged": merged_id })),
    )
    .await?;
    let merged = visible(&mut tx, &visibility, keep_id, &properties, false).await?;
    tx.commit().await?;
    Ok(merged)
}

// ---------------------------------------------------------------------------------------
// Labels

fn clean_label_names(names: &[String]) -> ApiResult<Vec<String>> {
    let mut clean: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim().trim_start_matches('#').trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(ApiError::validation(
                "a label is 1 to 64 characters (a leading # is dropped)",
            ));
        }
        if !clean.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            clean.push(name.to_string());
        }
    }
    if clean.len() > 100 {
        return Err(ApiError::validation("at most 100 labels at a time"));
    }
    Ok(clean)
}

/// Adds or removes labels on contacts the actor may see; returns those contacts.
pub async fn change_labels(
    state: &AppState,
    actor: &Actor,
    contact_ids: &[Uuid],
    names: &[String],
    add: bool,
) -> ApiResult<Vec<ContactRow>> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let unique = unique_ids(contact_ids)?;
    let names = clean_label_names(names)?;
    if names.is_empty() {
        return Err(ApiError::validation("give at least one label"));
    }
    let mut tx = state.db.tenant(actor.company_id).await?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    let properties = store::properties(&mut tx).await?;
    let contacts: Vec<Uuid> = all_visible(&mut tx, &visibility, &unique, &[])
        .await?
        .iter()
        .map(|c| c.id)
        .collect();
    let labels = if add {
        store::ensure_labels(&mut tx, actor.company_id, &names).await?
    } else {
        let lowered: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
        store::labels(&mut tx)
            .await?
            .into_iter()
            .filter(|l| lowered.contains(&l.name.to_lowercase()))
            .collect()
    };
    let label_ids: Vec<Uuid> = labels.iter().map(|l| l.id).collect();
    if !label_ids.is_empty() {
        let changed = store::change_labels(&mut tx, &contacts, &label_ids, add).await?;
        let label_names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        store::record_activity(
            &mut tx,
            actor.company_id,
            &changed,
            if add {
                "LABELS_ADDED"
            } else {
                "LABELS_REMOVED"
            },
            Some(actor.user_id()),
            &json!({ "labels": label_names }),
        )
        .await?;
    }
    let rows = all_visible(&mut tx, &visibility, &contacts, &properties).await?;
    tx.commit().await?;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------
// Lists of contacts: filters, groupings, order and pages

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContactGrouping {
    /// Every contact the caller may see.
    All,
    /// Contacts the caller owns.
    Mine,
    /// Contacts of the caller's teams.
    Team,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContactOrderField {
    CreatedAt,
    UpdatedAt,
    Name,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderDirection {
    Asc,
    Desc,
}

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize, async_graphql::InputObject)]
pub struct ContactOrder {
    pub field: ContactOrderField,
    pub direction: OrderDirection,
}

impl Default for ContactOrder {
    fn default() -> Self {
        Self {
            field: ContactOrderField::CreatedAt,
            direction: OrderDirection::Desc,
        }
    }
}

/// Where a page starts: the sort key and id of the last contact of the previous page.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    k: Option<String>,
    id: Uuid,
}

pub fn encode_cursor(order: ContactOrder, contact: &ContactRow) -> String {
    let k = match order.field {
        ContactOrderField::CreatedAt => None,
        ContactOrderField::UpdatedAt => Some(contact.updated_at.to_rfc3339()),
        ContactOrderField::Name => Some(contact.display_name.clone()),
    };
    let bytes = serde_json::to_vec(&Cursor { k, id: contact.id }).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(order: ContactOrder, cursor: &str) -> ApiResult<Cursor> {
    let bad = || ApiError::validation("the 'after' cursor is not one this list gave out");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let fits = match order.field {
        ContactOrderField::CreatedAt => cursor.k.is_none(),
        ContactOrderField::UpdatedAt => cursor
            .k
            .as_deref()
            .is_some_and(|k| chrono::DateTime::parse_from_rfc3339(k).is_ok()),
        ContactOrderField::Name => cursor.k.is_some(),
    };
    fits.then_some(cursor).ok_or_else(bad)
}

pub struct ContactQuery {
    /// A saved view whose filter is combined (AND) with `filter`, and whose grouping and
    /// order apply unless these are given.
    pub view: Option<Uuid>,
    pub filter: Option<ContactFilter>,
    pub grouping: Option<ContactGrouping>,
    pub order: Option<ContactOrder>,
    pub after: Option<String>,
    pub first: usize,
    pub want_count: bool,
}

pub struct ContactPage {
    pub contacts: Vec<ContactRow>,
    pub has_next: bool,
    pub total_count: Option<i64>,
    pub order: ContactOrder,
}

/// Appends the `where` clause shared by a page and its count.
fn push_where(
    qb: &mut QueryBuilder<'_, Postgres>,
    company_id: Uuid,
    visibility: &Visibility,
    grouping: ContactGrouping,
    filter: Option<&ContactFilter>,
    catalog: &Catalog,
) -> ApiResult<()> {
    // Row-level security already limits rows to the company; saying it here lets the planner
    // use the (company_id, ...) indexes.
    qb.push(" where c.company_id = ").push_bind(company_id);
    visibility.push(qb);
    match grouping {
        ContactGrouping::All => {}
        ContactGrouping::Mine => {
            qb.push(" and c.owner_id = ").push_bind(visibility.me);
        }
        ContactGrouping::Team => {
            qb.push(" and c.team_id = any(")
                .push_bind(visibility.my_teams.clone())
                .push(")");
        }
    }
    if let Some(filter) = filter {
        qb.push(" and ");
        filter::push(qb, filter, catalog)?;
    }
    Ok(())
}

/// What a list of contacts is after a saved view is applied.
struct Resolved {
    filter: Option<ContactFilter>,
    grouping: ContactGrouping,
    order: ContactOrder,
}

async fn resolve_view(
    conn: &mut PgConnection,
    actor: &Actor,
    query: &ContactQuery,
) -> ApiResult<Resolved> {
    let mut resolved = Resolved {
        filter: query.filter.clone(),
        grouping: query.grouping.unwrap_or(ContactGrouping::All),
        order: query.order.unwrap_or_default(),
    };
    if let Some(view_id) = query.view {
        let view = lists::view_by_id(conn, actor, view_id).await?;
        resolved.filter = match (view.filter()?, resolved.filter) {
            (Some(saved), Some(given)) => Some(ContactFilter {
                and: Some(vec![saved, given]),
                ..ContactFilter::default()
            }),
            (saved, given) => saved.or(given),
        };
        resolved.grouping = query.grouping.unwrap_or_else(|| view.grouping());
        resolved.order = match query.order {
            Some(order) => order,
            None => view.order()?.unwrap_or_default(),
        };
    }
    Ok(resolved)
}

pub async fn list(state: &AppState, actor: &Actor, query: ContactQuery) -> ApiResult<ContactPage> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let Resolved {
        filter,
        grouping,
        order,
    } = resolve_view(&mut tx, actor, &query).await?;
    let after = query
        .after
        .as_deref()
        .map(|c| decode_cursor(order, c))
        .transpose()?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    let filters: Vec<&ContactFilter> = filter.iter().collect();
    let catalog = Catalog::load(&mut tx, actor.user_id(), &filters).await?;
    let properties: Vec<PropertyRow> = {
        let mut rows: Vec<PropertyRow> = catalog.properties.values().cloned().collect();
        rows.sort_by_key(|p| (p.created_at, p.id));
        rows
    };

    let mut qb = QueryBuilder::<Postgres>::new("select ");
    qb.push(store::select_list(&properties))
        .push(" from contacts c");
    push_where(
        &mut qb,
        actor.company_id,
        &visibility,
        grouping,
        filter.as_ref(),
        &catalog,
    )?;
    let (column, descending) = match order.field {
        ContactOrderField::CreatedAt => ("c.id", true),
        ContactOrderField::UpdatedAt => ("c.updated_at", true),
        ContactOrderField::Name => ("c.display_name", true),
    };
    let descending = descending && order.direction == OrderDirection::Desc;
    let comparison = if descending { " < " } else { " > " };
    if let Some(cursor) = &after {
        match order.field {
            ContactOrderField::CreatedAt => {
                qb.push(" and c.id").push(comparison).push_bind(cursor.id);
            }
            ContactOrderField::UpdatedAt => {
                let at = cursor
                    .k
                    .as_deref()
                    .and_then(|k| chrono::DateTime::parse_from_rfc3339(k).ok())
                    .map(|t| t.with_timezone(&chrono::Utc));
                qb.push(" and (c.updated_at, c.id)")
                    .push(comparison)
                    .push("(")
                    .push_bind(at)
                    .push(", ")
                    .push_bind(cursor.id)
                    .push(")");
            }
            ContactOrderField::Name => {
                qb.push(" and (c.display_name, c.id)")
                    .push(comparison)
                    .push("(")
                    .push_bind(cursor.k.clone().unwrap_or_default())
                    .push(", ")
                    .push_bind(cursor.id)
                    .push(")");
            }
        }
    }
    let direction = if descending { " desc" } else { " asc" };
    qb.push(" order by ").push(column).push(direction);
    if column != "c.id" {
        qb.push(", c.id").push(direction);
    }
    qb.push(" limit ").push_bind(query.first as i64 + 1);
    let rows = qb.build().fetch_all(&mut *tx).await?;
    let mut contacts = rows
        .iter()
        .map(|row| store::read_row(row, &properties))
        .collect::<ApiResult<Vec<_>>>()?;
    let has_next = contacts.len() > query.first;
    contacts.truncate(query.first);

    let total_count = if query.want_count {
        let mut count = QueryBuilder::<Postgres>::new("select count(*) from contacts c");
        push_where(
            &mut count,
            actor.company_id,
            &visibility,
            grouping,
            filter.as_ref(),
            &catalog,
        )?;
        Some(
            count
                .build_query_scalar::<i64>()
                .fetch_one(&mut *tx)
                .await?,
        )
    } else {
        None
    };
    // Read only: nothing to commit.
    drop(tx);
    Ok(ContactPage {
        contacts,
        has_next,
        total_count,
        order,
    })
}

pub async fn activities(
    state: &AppState,
    actor: &Actor,
    contact_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> ApiResult<Vec<store::ActivityRow>> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let visibility = Visibility::of(&mut tx, actor).await?;
    visible(&mut tx, &visibility, contact_id, &[], false).await?;
    let rows = store::activities(&mut tx, contact_id, before, limit).await?;
    drop(tx);
    Ok(rows)
}

/// Gives `merged_id`'s rows in `tables` (fixed names, never input) to `keep_id`.
async fn move_rows(
    conn: &mut sqlx::PgConnection,
    tables: &[&str],
    keep_id: Uuid,
    merged_id: Uuid,
) -> sqlx::Result<()> {
    for table in tables {
        sqlx::query(&format!(
            "update {table} set contact_id = $1 where contact_id = $2"
        ))
        .bind(keep_id)
        .bind(merged_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
