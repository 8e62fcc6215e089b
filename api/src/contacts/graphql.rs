//! GraphQL for contacts, their custom properties and labels.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Enum, InputObject, Json, MaybeUndefined, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::filter::ContactFilter;
use super::lists::{ListRow, ViewRow};
use super::properties::{PropertyRow, PropertyType};
use super::store::{ActivityRow, ContactRow, LabelRow};
use super::{ContactGrouping, ContactOrder, ContactOrderField, ContactQuery, OrderDirection};
use crate::auth::{ApiScope, Role};
use crate::error::{ApiError, ApiResult};
use crate::graphql::connection::{encode_cursor, page_request};
use crate::graphql::loaders::{LabelById, TeamById, UserById};
use crate::graphql::{actor, loader, parse_id, require_for_field, state, to_id};
use crate::teams::graphql::Team;
use crate::users::graphql::User;

/// A company's custom contact property.
pub struct ContactProperty(pub PropertyRow);

#[Object]
impl ContactProperty {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    /// The key used in filters, imports and personalisation (`{{contact.<key>}}`).
    async fn key(&self) -> &str {
        &self.0.key
    }

    async fn label(&self) -> &str {
        &self.0.label
    }

    #[graphql(name = "type")]
    async fn kind(&self) -> PropertyType {
        self.0.kind()
    }

    /// The allowed values of a select property, in order.
    async fn options(&self) -> &[String] {
        &self.0.options
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A label (hashtag) such as #hotlead.
pub struct Label(pub LabelRow);

#[Object]
impl Label {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A person the company talks to.
pub struct Contact(pub ContactRow);

#[Object]
impl Contact {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn first_name(&self) -> Option<&str> {
        self.0.first_name.as_deref()
    }

    async fn last_name(&self) -> Option<&str> {
        self.0.last_name.as_deref()
    }

    /// First and last name joined; empty when neither is known.
    async fn name(&self) -> &str {
        &self.0.display_name
    }

    /// E.164, such as +6281234567890.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }

    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }

    /// ISO 3166-1 alpha-2 code.
    async fn country(&self) -> Option<&str> {
        self.0.country.as_deref()
    }

    async fn location(&self) -> Option<&str> {
        self.0.location.as_deref()
    }

    async fn company_name(&self) -> Option<&str> {
        self.0.company_name.as_deref()
    }

    async fn job_title(&self) -> Option<&str> {
        self.0.job_title.as_deref()
    }

    async fn owner(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        user_field(ctx, self.0.owner_id).await
    }

    async fn team(&self, ctx: &Context<'_>) -> ApiResult<Option<Team>> {
        let Some(id) = self.0.team_id else {
            return Ok(None);
        };
        require_for_field(ctx, Role::Staff, ApiScope::TeamsRead)?;
        Ok(loader(ctx)?.load_one(TeamById(id)).await?.map(Team))
    }

    #[graphql(
        complexity = "crate::graphql::list_cost(crate::graphql::NESTED_LIST_FACTOR, child_complexity)"
    )]
    async fn labels(&self, ctx: &Context<'_>) -> ApiResult<Vec<Label>> {
        let found = loader(ctx)?
            .load_many(self.0.label_ids.iter().copied().map(LabelById))
            .await?;
        let mut labels: Vec<LabelRow> = found.into_values().collect();
        labels.sort_by_key(|l| l.name.to_lowercase());
        Ok(labels.into_iter().map(Label).collect())
    }

    /// Custom property values by key (numbers as numbers, dates as YYYY-MM-DD, booleans,
    /// multi-selects as lists). Unset properties are absent.
    async fn custom_properties(&self) -> Json<&Map<String, Value>> {
        Json(&self.0.custom)
    }

    /// When the business last wrote to the contact.
    async fn last_contacted_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_contacted_at
    }

    /// When the contact last wrote to the business.
    async fn last_inbound_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_inbound_at
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// Internal notes, newest first.
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    async fn notes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
    ) -> ApiResult<Vec<ContactNote>> {
        let limit = first.unwrap_or(20).clamp(0, 100);
        let rows = super::related::notes(state(ctx), actor(ctx)?, self.0.id, limit.into()).await?;
        Ok(rows.into_iter().map(ContactNote).collect())
    }

    /// Reminders about this contact, soonest first.
    #[graphql(
        complexity = "crate::graphql::list_cost(crate::graphql::NESTED_LIST_FACTOR, child_complexity)"
    )]
    async fn reminders(&self, ctx: &Context<'_>) -> ApiResult<Vec<ContactReminder>> {
        let rows = super::related::reminders(state(ctx), actor(ctx)?, self.0.id).await?;
        Ok(rows.into_iter().map(ContactReminder).collect())
    }

    /// The channels this contact is reached on.
    #[graphql(
        complexity = "crate::graphql::list_cost(crate::graphql::NESTED_LIST_FACTOR, child_complexity)"
    )]
    async fn identities(&self, ctx: &Context<'_>) -> ApiResult<Vec<ContactIdentity>> {
        let rows = super::related::identities(state(ctx), actor(ctx)?, self.0.id).await?;
        Ok(rows.into_iter().map(ContactIdentity).collect())
    }

    /// Files shared with or about this contact, newest first.
    #[graphql(
        complexity = "crate::graphql::list_cost(crate::graphql::NESTED_LIST_FACTOR, child_complexity)"
    )]
    async fn media(&self, ctx: &Context<'_>) -> ApiResult<Vec<ContactMedia>> {
        let rows = super::related::media(state(ctx), actor(ctx)?, self.0.id).await?;
        Ok(rows.into_iter().map(ContactMedia).collect())
    }

    /// What happened to this contact, newest first.
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    async fn activities(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Connection<String, ContactActivity, EmptyFields, EmptyFields>> {
        let request = page_request(first, after)?;
        let rows = super::activities(
            state(ctx),
            actor(ctx)?,
            self.0.id,
            request.after,
            request.fetch(),
        )
        .await?;
        let has_next = rows.len() > request.size;
        let mut connection = Connection::new(request.after.is_some(), has_next);
        connection.edges.extend(
            rows.into_iter()
                .take(request.size)
                .map(|row| Edge::new(encode_cursor(row.id), ContactActivity(row))),
        );
        Ok(connection)
    }
}

/// One entry of a contact's activity log.
pub struct ContactActivity(pub ActivityRow);

#[Object]
impl ContactActivity {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    /// CREATED, PROPERTIES_CHANGED, LABELS_ADDED, LABELS_REMOVED, ...
    async fn kind(&self) -> &str {
        &self.0.kind
    }

    async fn actor(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        user_field(ctx, self.0.actor_user_id).await
    }

    async fn details(&self) -> Json<&Value> {
        Json(&self.0.details)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum ContactListKind {
    /// Members are added and removed by hand or by import.
    Static,
    /// Members are whoever matches the list's filter at the time of use.
    Criteria,
}

/// A list of contacts. Use it in filters with the `list` condition (value: the list's id).
pub struct ContactList(pub ListRow);

#[Object]
impl ContactList {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn kind(&self) -> ContactListKind {
        if self.0.kind == "CRITERIA" {
            ContactListKind::Criteria
        } else {
            ContactListKind::Static
        }
    }

    /// A criteria list's filter, as given to `createList`.
    async fn filter(&self) -> Option<Json<&Value>> {
        self.0.filter.as_ref().map(Json)
    }

    /// How many of the list's contacts the caller may see (for a criteria list: how many
    /// match now).
    async fn member_count(&self, ctx: &Context<'_>) -> ApiResult<i64> {
        let page = super::list(
            state(ctx),
            actor(ctx)?,
            ContactQuery {
                view: None,
                filter: Some(super::filter::list_condition(self.0.id)),
                grouping: None,
                order: None,
                after: None,
                first: 0,
                want_count: true,
            },
        )
        .await?;
        Ok(page.total_count.unwrap_or(0))
    }

    async fn created_by(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        user_field(ctx, self.0.created_by).await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// How a saved view sorts.
#[derive(SimpleObject)]
pub struct ContactSort {
    pub field: ContactOrderField,
    pub direction: OrderDirection,
}

/// A saved filter, grouping and order: `contacts(view: id)` applies it.
pub struct ContactView(pub ViewRow);

#[Object]
impl ContactView {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// A default view made by an Admin for everyone (else the caller's own).
    async fn shared(&self) -> bool {
        self.0.user_id.is_none()
    }

    async fn grouping(&self) -> ContactGrouping {
        self.0.grouping()
    }

    async fn filter(&self) -> Option<Json<&Value>> {
        self.0.filter.as_ref().map(Json)
    }

    async fn order_by(&self) -> ApiResult<Option<ContactSort>> {
        Ok(self.0.order()?.map(|o| ContactSort {
            field: o.field,
            direction: o.direction,
        }))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(InputObject)]
pub struct CreateListInput {
    pub name: String,
    /// Makes a criteria list: its members are whoever matches. Left out: a static list.
    pub filter: Option<ContactFilter>,
}

#[derive(InputObject)]
pub struct SaveContactViewInput {
    /// The view to change; left out, a new view is made.
    pub id: Option<ID>,
    pub name: String,
    #[graphql(default_with = "ContactGrouping::All")]
    pub grouping: ContactGrouping,
    pub filter: Option<ContactFilter>,
    pub order_by: Option<ContactOrder>,
    /// A default view for everyone (Admins only). False: the caller's personal view.
    #[graphql(default)]
    pub shared: bool,
}

#[derive(SimpleObject)]
pub struct ContactTotals {
    /// How many contacts match, across pages (computed only when asked for).
    pub total_count: Option<i64>,
}

#[derive(InputObject)]
pub struct DefineContactPropertyInput {
    pub key: String,
    pub label: String,
    #[graphql(name = "type")]
    pub kind: PropertyType,
    #[graphql(default)]
    pub options: Vec<String>,
}

#[derive(InputObject)]
pub struct CreateContactInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// In international form; spaces and dashes are dropped (+62 812-3456-7890).
    pub phone: Option<String>,
    pub email: Option<String>,
    pub country: Option<String>,
    pub location: Option<String>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    /// Defaults to the caller.
    pub owner_id: Option<ID>,
    pub team_id: Option<ID>,
    #[graphql(default)]
    pub labels: Vec<String>,
    /// Custom property values by key.
    pub custom_properties: Option<Json<Map<String, Value>>>,
}

/// Fields left out stay as they are; null clears a field.
#[derive(InputObject)]
pub struct UpdateContactInput {
    pub first_name: MaybeUndefined<String>,
    pub last_name: MaybeUndefined<String>,
    pub phone: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub country: MaybeUndefined<String>,
    pub location: MaybeUndefined<String>,
    pub company_name: MaybeUndefined<String>,
    pub job_title: MaybeUndefined<String>,
    pub owner_id: MaybeUndefined<ID>,
    pub team_id: MaybeUndefined<ID>,
    /// Custom property values by key; a null value clears that property, keys left out stay.
    pub custom_properties: Option<Json<Map<String, Value>>>,
}

/// A user a field points at (owner, author, assignee, ...), for callers allowed to see users.
async fn user_field(ctx: &Context<'_>, id: Option<uuid::Uuid>) -> ApiResult<Option<User>> {
    let Some(id) = id else {
        return Ok(None);
    };
    require_for_field(ctx, Role::Staff, ApiScope::UsersRead)?;
    Ok(loader(ctx)?.load_one(UserById(id)).await?.map(User))
}

fn defined<T>(value: Option<T>) -> MaybeUndefined<T> {
    value.map_or(MaybeUndefined::Undefined, MaybeUndefined::Value)
}

fn id_patch(value: MaybeUndefined<ID>, what: &str) -> ApiResult<MaybeUndefined<uuid::Uuid>> {
    Ok(match value {
        MaybeUndefined::Undefined => MaybeUndefined::Undefined,
        MaybeUndefined::Null => MaybeUndefined::Null,
        MaybeUndefined::Value(id) => MaybeUndefined::Value(parse_id(&id, what)?),
    })
}

#[derive(Default)]
pub struct ContactsQuery;

#[Object]
impl ContactsQuery {
    async fn contact(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Contact> {
        let id = parse_id(&id, "contact")?;
        Ok(Contact(super::get(state(ctx), actor(ctx)?, id).await?))
    }

    /// Contacts matching `filter` within `grouping`, newest first unless `orderBy` says
    /// otherwise.
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)] // GraphQL arguments, each optional
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "A saved view: its filter is combined with `filter`; its grouping and order apply unless given here."
        )]
        view: Option<ID>,
        filter: Option<ContactFilter>,
        #[graphql(desc = "ALL when left out.")] grouping: Option<ContactGrouping>,
        order_by: Option<ContactOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Connection<String, Contact, ContactTotals, EmptyFields>> {
        let request = page_request(first, None)?;
        let want_count = ctx.look_ahead().field("totalCount").exists();
        let page = super::list(
            state(ctx),
            actor(ctx)?,
            ContactQuery {
                view: view.map(|id| parse_id(&id, "view")).transpose()?,
                filter,
                grouping,
                order: order_by,
                after: after.clone(),
                first: request.size,
                want_count,
            },
        )
        .await?;
        let mut connection = Connection::with_additional_fields(
            after.is_some(),
            page.has_next,
            ContactTotals {
                total_count: page.total_count,
            },
        );
        let order = page.order;
        connection.edges.extend(
            page.contacts
                .into_iter()
                .map(|row| Edge::new(super::encode_cursor(order, &row), Contact(row))),
        );
        Ok(connection)
    }

    async fn contact_properties(&self, ctx: &Context<'_>) -> ApiResult<Vec<ContactProperty>> {
        let rows = super::list_properties(state(ctx), actor(ctx)?).await?;
        Ok(rows.into_iter().map(ContactProperty).collect())
    }

    async fn contact_lists(&self, ctx: &Context<'_>) -> ApiResult<Vec<ContactList>> {
        let rows = super::lists::lists(state(ctx), actor(ctx)?).await?;
        Ok(rows.into_iter().map(ContactList).collect())
    }

    async fn contact_list(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ContactList> {
        let id = parse_id(&id, "list")?;
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::ContactsRead)?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let row = super::lists::list_by_id(&mut tx, id).await?;
        drop(tx);
        Ok(ContactList(row))
    }

    /// The default views (made by Admins for everyone), then the caller's own.
    async fn contact_views(&self, ctx: &Context<'_>) -> ApiResult<Vec<ContactView>> {
        let rows = super::lists::views(state(ctx), actor(ctx)?).await?;
        Ok(rows.into_iter().map(ContactView).collect())
    }

    async fn labels(&self, ctx: &Context<'_>) -> ApiResult<Vec<Label>> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::ContactsRead)?;
        let mut tx = state(ctx).db.tenant(actor.company_id).await?;
        let rows = super::store::labels(&mut tx).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(Label).collect())
    }
}

#[derive(Default)]
pub struct ContactsMutation;

#[Object]
impl ContactsMutation {
    /// Adds a custom contact property (Admins). Its key cannot change later.
    async fn define_contact_property(
        &self,
        ctx: &Context<'_>,
        input: DefineContactPropertyInput,
    ) -> ApiResult<ContactProperty> {
        let row = super::define_property(
            state(ctx),
            actor(ctx)?,
            super::PropertyDefinition {
                key: input.key,
                label: input.label,
                kind: input.kind,
                options: input.options,
            },
        )
        .await?;
        Ok(ContactProperty(row))
    }

    async fn create_contact(
        &self,
        ctx: &Context<'_>,
        input: CreateContactInput,
    ) -> ApiResult<Contact> {
        let changes = super::ContactChanges {
            first_name: defined(input.first_name),
            last_name: defined(input.last_name),
            phone: defined(input.phone),
            email: defined(input.email),
            country: defined(input.country),
            location: defined(input.location),
            company_name: defined(input.company_name),
            job_title: defined(input.job_title),
            owner_id: id_patch(defined(input.owner_id), "user")?,
            team_id: id_patch(defined(input.team_id), "team")?,
            custom: input.custom_properties.map(|json| json.0),
        };
        let row = super::create(state(ctx), actor(ctx)?, changes, &input.labels).await?;
        Ok(Contact(row))
    }

    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateContactInput,
    ) -> ApiResult<Contact> {
        let id = parse_id(&id, "contact")?;
        let changes = super::ContactChanges {
            first_name: input.first_name,
            last_name: input.last_name,
            phone: input.phone,
            email: input.email,
            country: input.country,
            location: input.location,
            company_name: input.company_name,
            job_title: input.job_title,
            owner_id: id_patch(input.owner_id, "user")?,
            team_id: id_patch(input.team_id, "team")?,
            custom: input.custom_properties.map(|json| json.0),
        };
        Ok(Contact(
            super::update(state(ctx), actor(ctx)?, id, changes).await?,
        ))
    }

    /// Merges `mergedId` into `keepId` (the same person twice): nothing of either is lost;
    /// where both have a value, the kept contact's wins. The merged contact's id stops
    /// existing. Returns the kept contact.
    async fn merge_contacts(
        &self,
        ctx: &Context<'_>,
        keep_id: ID,
        merged_id: ID,
    ) -> ApiResult<Contact> {
        let keep = parse_id(&keep_id, "contact")?;
        let merged = parse_id(&merged_id, "contact")?;
        Ok(Contact(
            super::merge(state(ctx), actor(ctx)?, keep, merged).await?,
        ))
    }

    /// Erases a contact and everything recorded about them (Admins). Cannot be undone.
    /// Returns the erased contact's id.
    async fn delete_contact(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let id = parse_id(&id, "contact")?;
        Ok(to_id(super::delete(state(ctx), actor(ctx)?, id).await?))
    }

    /// Adds labels (created when new) to contacts.
    async fn add_labels(
        &self,
        ctx: &Context<'_>,
        contact_ids: Vec<ID>,
        labels: Vec<String>,
    ) -> ApiResult<Vec<Contact>> {
        let ids = parse_ids(&contact_ids)?;
        let rows = super::change_labels(state(ctx), actor(ctx)?, &ids, &labels, true).await?;
        Ok(rows.into_iter().map(Contact).collect())
    }

    async fn remove_labels(
        &self,
        ctx: &Context<'_>,
        contact_ids: Vec<ID>,
        labels: Vec<String>,
    ) -> ApiResult<Vec<Contact>> {
        let ids = parse_ids(&contact_ids)?;
        let rows = super::change_labels(state(ctx), actor(ctx)?, &ids, &labels, false).await?;
        Ok(rows.into_iter().map(Contact).collect())
    }

    /// Makes a list: static, or a criteria list when `filter` is given.
    async fn create_list(
        &self,
        ctx: &Context<'_>,
        input: CreateListInput,
    ) -> ApiResult<ContactList> {
        let row =
            super::lists::create_list(state(ctx), actor(ctx)?, &input.name, input.filter).await?;
        Ok(ContactList(row))
    }

    /// Puts contacts on a static list (already members are left as they are).
    async fn add_to_list(
        &self,
        ctx: &Context<'_>,
        list_id: ID,
        contact_ids: Vec<ID>,
    ) -> ApiResult<ContactList> {
        let list_id = parse_id(&list_id, "list")?;
        let ids = parse_ids(&contact_ids)?;
        let row =
            super::lists::change_members(state(ctx), actor(ctx)?, list_id, &ids, true).await?;
        Ok(ContactList(row))
    }

    async fn remove_from_list(
        &self,
        ctx: &Context<'_>,
        list_id: ID,
        contact_ids: Vec<ID>,
    ) -> ApiResult<ContactList> {
        let list_id = parse_id(&list_id, "list")?;
        let ids = parse_ids(&contact_ids)?;
        let row =
            super::lists::change_members(state(ctx), actor(ctx)?, list_id, &ids, false).await?;
        Ok(ContactList(row))
    }

    /// Deletes a list (Admins); its contacts stay. Returns the list's id.
    async fn delete_list(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let id = parse_id(&id, "list")?;
        Ok(to_id(
            super::lists::delete_list(state(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// Saves a view: a new one, or changes to `input.id`.
    async fn save_contact_view(
        &self,
        ctx: &Context<'_>,
        input: SaveContactViewInput,
    ) -> ApiResult<ContactView> {
        let id = input.id.map(|id| parse_id(&id, "view")).transpose()?;
        let row = super::lists::save_view(
            state(ctx),
            actor(ctx)?,
            id,
            super::lists::ViewInput {
                name: input.name,
                grouping: input.grouping,
                filter: input.filter,
                order: input.order_by,
                shared: input.shared,
            },
        )
        .await?;
        Ok(ContactView(row))
    }

    async fn delete_contact_view(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let id = parse_id(&id, "view")?;
        Ok(to_id(
            super::lists::delete_view(state(ctx), actor(ctx)?, id).await?,
        ))
    }
}

fn parse_ids(ids: &[ID]) -> ApiResult<Vec<uuid::Uuid>> {
    if ids.len() > 1000 {
        return Err(ApiError::validation("give 1 to 1,000 contact IDs"));
    }
    ids.iter().map(|id| parse_id(id, "contact")).collect()
}

// ---------------------------------------------------------------------------------------
// Import

/// A column of a file to import, with what it holds.
#[derive(SimpleObject)]
pub struct ImportColumn {
    /// Its position from 0: what `ImportColumnMapping.column` names.
    pub index: i32,
    pub header: String,
    /// Up to five values from the first rows.
    pub samples: Vec<String>,
    /// The property the header most likely means (a built-in field, `owner`, `label`, or a
    /// custom property's key).
    pub suggested_property: Option<String>,
}

#[derive(SimpleObject)]
pub struct ContactImportPreview {
    pub file_name: String,
    /// How many rows of contacts are under the header.
    pub row_count: i32,
    pub columns: Vec<ImportColumn>,
}

/// A new custom property for an import column.
#[derive(InputObject)]
pub struct NewImportProperty {
    pub key: String,
    pub label: String,
    #[graphql(name = "type")]
    pub kind: PropertyType,
    #[graphql(default)]
    pub options: Vec<String>,
}

/// Where one column goes: `property` (a built-in field such as `phone`, `name`, `owner`
/// (a user's e-mail), `label` (labels separated by ; or ,), or a custom property's key), or
/// `newProperty`, defined when the import starts (Admins). Columns left out are ignored.
#[derive(InputObject)]
pub struct ImportColumnMapping {
    pub column: i32,
    pub property: Option<String>,
    pub new_property: Option<NewImportProperty>,
}

#[derive(InputObject, Default)]
pub struct ImportOptions {
    /// Labels given to every imported contact.
    #[graphql(default)]
    pub labels: Vec<String>,
    /// A static list every imported contact joins.
    pub list_id: Option<ID>,
    /// A row whose phone or e-mail belongs to a contact updates it (true, the default) or is
    /// skipped (false).
    #[graphql(default = true)]
    pub update_existing: bool,
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum ImportStatus {
    Queued,
    Running,
    Done,
    Failed,
}

/// A row an import skipped, numbered as a spreadsheet shows it (the header is row 1).
#[derive(SimpleObject)]
pub struct SkippedImportRow {
    pub row: i32,
    pub reason: String,
}

/// An import of a contact file, worked through in the background.
pub struct ImportJob(pub super::import::ImportRow);

#[Object]
impl ImportJob {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn file_name(&self) -> &str {
        &self.0.file_name
    }

    async fn status(&self) -> ImportStatus {
        match self.0.status.as_str() {
            "RUNNING" => ImportStatus::Running,
            "DONE" => ImportStatus::Done,
            "FAILED" => ImportStatus::Failed,
            _ => ImportStatus::Queued,
        }
    }

    /// From 0 to 1: the share of rows done.
    async fn progress(&self) -> f64 {
        if self.0.total_rows <= 0 {
            return if self.0.status == "DONE" { 1.0 } else { 0.0 };
        }
        (f64::from(self.0.processed_rows) / f64::from(self.0.total_rows)).min(1.0)
    }

    async fn total_rows(&self) -> i32 {
        self.0.total_rows
    }

    async fn processed_rows(&self) -> i32 {
        self.0.processed_rows
    }

    /// New contacts.
    async fn created(&self) -> i32 {
        self.0.created_count
    }

    /// Rows that updated a contact with the same phone or e-mail.
    async fn updated(&self) -> i32 {
        self.0.updated_count
    }

    async fn skipped(&self) -> i32 {
        self.0.skipped_count
    }

    /// Skipped rows with their reasons (the first 1,000 are kept).
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(100).max(0) as usize, child_complexity)"
    )]
    async fn errors(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: Option<i32>,
    ) -> ApiResult<Vec<SkippedImportRow>> {
        let limit = first.unwrap_or(100).clamp(0, 1000);
        let rows =
            super::import::skipped_rows(state(ctx), actor(ctx)?, self.0.id, limit.into()).await?;
        Ok(rows
            .into_iter()
            .map(|r| SkippedImportRow {
                row: r.row_number,
                reason: r.reason,
            })
            .collect())
    }

    /// Why the import stopped, when it FAILED.
    async fn failure(&self) -> Option<&str> {
        self.0.failure.as_deref()
    }

    async fn created_by(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        user_field(ctx, self.0.created_by).await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// An internal note about a contact (never shown to the contact).
pub struct ContactNote(pub super::related::NoteRow);

#[Object]
impl ContactNote {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn author(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        user_field(ctx, self.0.author_id).await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Something to do about a contact, by a date, for someone.
pub struct ContactReminder(pub super::related::ReminderRow);

#[Object]
impl ContactReminder {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn contact_id(&self) -> ID {
        to_id(self.0.contact_id)
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn due_at(&self) -> DateTime<Utc> {
        self.0.due_at
    }

    /// When it was marked done; null while open.
    async fn done_at(&self) -> Option<DateTime<Utc>> {
        self.0.done_at
    }

    async fn assignee(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        user_field(ctx, self.0.assignee_id).await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// The contact on one channel: a WhatsApp number, an Instagram or Messenger id, ...
pub struct ContactIdentity(pub super::related::IdentityRow);

#[Object]
impl ContactIdentity {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn channel(&self) -> super::related::Channel {
        super::related::Channel::from_db(&self.0.channel)
    }

    /// The contact's id on that channel.
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A file shared with or about a contact.
pub struct ContactMedia(pub super::related::MediaRow);

#[Object]
impl ContactMedia {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn file_name(&self) -> &str {
        &self.0.file_name
    }

    async fn content_type(&self) -> &str {
        &self.0.content_type
    }

    async fn size_bytes(&self) -> i64 {
        self.0.size_bytes
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The message the file came or went with.
    async fn message_id(&self) -> Option<ID> {
        self.0.message_id.map(to_id)
    }

    async fn status(&self) -> FileStatus {
        match self.0.status.as_str() {
            "PENDING" => FileStatus::Pending,
            "FAILED" => FileStatus::Failed,
            _ => FileStatus::Ready,
        }
    }

    /// Why a contact's file could not be fetched from the provider.
    async fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }

    /// A link to the file that works for an hour, for whoever holds it (null until READY).
    async fn url(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        if self.0.status != "READY" {
            return Ok(None);
        }
        Ok(Some(crate::conversations::attachments::link(
            state(ctx),
            actor(ctx)?.company_id,
            self.0.id,
            &self.0.file_name,
            crate::conversations::attachments::READ_TTL,
        )))
    }
}

/// Where a file is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// Being fetched from the provider.
    Pending,
    Ready,
    /// Could not be fetched; see `failureReason`.
    Failed,
}

#[derive(InputObject)]
pub struct AddReminderInput {
    pub contact_id: ID,
    pub body: String,
    pub due_at: DateTime<Utc>,
    /// Defaults to the caller.
    pub assignee_id: Option<ID>,
}

/// What is wrong with a personalisation template, if anything.
#[derive(SimpleObject)]
pub struct TemplateCheck {
    pub ok: bool,
    /// Variables that name no property, as written (`contact.shoe_size`).
    pub unknown_variables: Vec<String>,
    /// Malformed variables, each described.
    pub errors: Vec<String>,
    /// Every variable this company's templates can use.
    pub available_variables: Vec<String>,
}

#[derive(Default)]
pub struct ContactRelatedQuery;

#[Object]
impl ContactRelatedQuery {
    /// Everything stored about one contact as one JSON document, for the contact's right
    /// to their data (Admins; audited).
    async fn contact_data_export(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Json<Value>> {
        let id = parse_id(&id, "contact")?;
        Ok(Json(
            super::related::data_export(state(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// Checks a template such as `Hi {{contact.first_name | fallback: "there"}}`.
    async fn check_contact_template(
        &self,
        ctx: &Context<'_>,
        template: String,
    ) -> ApiResult<TemplateCheck> {
        let properties = super::list_properties(state(ctx), actor(ctx)?).await?;
        let problems = super::personalize::check(&template, &properties);
        let available_variables = super::personalize::FIELDS
            .iter()
            .map(|f| f.to_string())
            .chain(properties.iter().map(|p| p.key.clone()))
            .map(|key| format!("contact.{key}"))
            .collect();
        Ok(TemplateCheck {
            ok: problems.is_empty(),
            unknown_variables: problems.unknown,
            errors: problems.errors,
            available_variables,
        })
    }

    /// A template filled in for one contact; VALIDATION when it has unknown or malformed
    /// variables.
    async fn render_contact_template(
        &self,
        ctx: &Context<'_>,
        template: String,
        contact_id: ID,
    ) -> ApiResult<String> {
        let id = parse_id(&contact_id, "contact")?;
        let (contact, properties) = super::get_with_properties(state(ctx), actor(ctx)?, id).await?;
        super::personalize::render(&template, &contact, &properties).map_err(|problems| {
            let mut parts = problems.errors;
            if !problems.unknown.is_empty() {
                parts.push(format!(
                    "unknown variables: {}",
                    problems.unknown.join(", ")
                ));
            }
            ApiError::validation(parts.join("; "))
        })
    }

    /// The caller's open reminders, soonest first.
    async fn my_reminders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> ApiResult<Vec<ContactReminder>> {
        let rows =
            super::related::my_reminders(state(ctx), actor(ctx)?, first.clamp(0, 200).into())
                .await?;
        Ok(rows.into_iter().map(ContactReminder).collect())
    }
}

#[derive(Default)]
pub struct ContactRelatedMutation;

#[Object]
impl ContactRelatedMutation {
    async fn add_contact_note(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
        body: String,
    ) -> ApiResult<ContactNote> {
        let contact_id = parse_id(&contact_id, "contact")?;
        let row = super::related::add_note(state(ctx), actor(ctx)?, contact_id, &body).await?;
        Ok(ContactNote(row))
    }

    /// Deletes a note (its author or an Admin). Returns its id.
    async fn delete_contact_note(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let id = parse_id(&id, "note")?;
        Ok(to_id(
            super::related::delete_note(state(ctx), actor(ctx)?, id).await?,
        ))
    }

    async fn add_contact_reminder(
        &self,
        ctx: &Context<'_>,
        input: AddReminderInput,
    ) -> ApiResult<ContactReminder> {
        let contact_id = parse_id(&input.contact_id, "contact")?;
        let assignee = input
            .assignee_id
            .map(|id| parse_id(&id, "user"))
            .transpose()?;
        let row = super::related::add_reminder(
            state(ctx),
            actor(ctx)?,
            contact_id,
            &input.body,
            input.due_at,
            assignee,
        )
        .await?;
        Ok(ContactReminder(row))
    }

    /// Marks a reminder done, or open again with `done: false`.
    async fn complete_contact_reminder(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = true)] done: bool,
    ) -> ApiResult<ContactReminder> {
        let id = parse_id(&id, "reminder")?;
        let row = super::related::complete_reminder(state(ctx), actor(ctx)?, id, done).await?;
        Ok(ContactReminder(row))
    }

    /// Links a channel identity to a contact; CONFLICT when another contact has it.
    async fn add_contact_identity(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
        channel: super::related::Channel,
        external_id: String,
    ) -> ApiResult<ContactIdentity> {
        let contact_id = parse_id(&contact_id, "contact")?;
        let row = super::related::add_identity(
            state(ctx),
            actor(ctx)?,
            contact_id,
            channel,
            &external_id,
        )
        .await?;
        Ok(ContactIdentity(row))
    }

    async fn remove_contact_identity(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let id = parse_id(&id, "identity")?;
        Ok(to_id(
            super::related::remove_identity(state(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// Stores a file with a contact (by GraphQL multipart upload, up to 20 MB).
    async fn attach_contact_media(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
        file: async_graphql::Upload,
    ) -> ApiResult<ContactMedia> {
        let contact_id = parse_id(&contact_id, "contact")?;
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::ContactsWrite)?;
        let content_type = file.value(ctx).ok().and_then(|v| v.content_type.clone());
        let (name, bytes) = crate::knowledge::graphql::read_upload(ctx, file).await?;
        let row = super::related::attach_media(
            state(ctx),
            actor,
            contact_id,
            &name,
            content_type.as_deref(),
            bytes,
        )
        .await?;
        Ok(ContactMedia(row))
    }
}

/// A contact active in a month, and when and why they first were.
pub struct ActiveContact {
    row: super::mac::ActiveRow,
    contact: Option<ContactRow>,
}

#[Object]
impl ActiveContact {
    /// Null once the contact was erased: the month still counts them.
    async fn contact(&self) -> Option<Contact> {
        self.contact.clone().map(Contact)
    }

    async fn first_active_at(&self) -> DateTime<Utc> {
        self.row.first_active_at
    }

    async fn reason(&self) -> super::mac::ActiveReason {
        self.row.reason()
    }
}

/// Monthly Active Contacts, the billing unit: contacts the business actively engaged in a
/// month (they wrote, or the business talked with them in a conversation).
pub struct MonthlyActiveContacts(super::mac::MonthSummary);

#[Object]
impl MonthlyActiveContacts {
    /// YYYY-MM, in the company's timezone.
    async fn month(&self) -> String {
        self.0.month.format("%Y-%m").to_string()
    }

    async fn count(&self) -> i64 {
        self.0.count
    }

    /// What the plan includes; null when agreed per contract (Enterprise).
    async fn allowance(&self) -> Option<i32> {
        self.0.allowance
    }

    async fn over_allowance(&self) -> bool {
        self.0.over_allowance()
    }

    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Connection<String, ActiveContact, EmptyFields, EmptyFields>> {
        let request = page_request(first, after)?;
        let (state, actor) = (state(ctx), actor(ctx)?);
        let rows =
            super::mac::active_contacts(state, actor, self.0.month, request.after, request.fetch())
                .await?;
        let has_next = rows.len() > request.size;
        let rows: Vec<_> = rows.into_iter().take(request.size).collect();
        let contacts = super::mac::contacts_of(state, actor, &rows).await?;
        let mut connection = Connection::new(request.after.is_some(), has_next);
        connection.edges.extend(rows.into_iter().map(|row| {
            let contact = contacts
                .iter()
                .find(|c| Some(c.id) == row.contact_id)
                .cloned();
            Edge::new(encode_cursor(row.key), ActiveContact { row, contact })
        }));
        Ok(connection)
    }
}

#[derive(Default)]
pub struct ContactImportQuery;

#[Object]
impl ContactImportQuery {
    /// Monthly Active Contacts of `month` (YYYY-MM), with the plan's allowance (Admins).
    async fn monthly_active_contacts(
        &self,
        ctx: &Context<'_>,
        month: String,
    ) -> ApiResult<MonthlyActiveContacts> {
        let month = super::mac::parse_month(&month)?;
        Ok(MonthlyActiveContacts(
            super::mac::summary(state(ctx), actor(ctx)?, month).await?,
        ))
    }

    async fn contact_import(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ImportJob> {
        let id = parse_id(&id, "import")?;
        Ok(ImportJob(
            super::import::by_id(state(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// The latest imports, newest first.
    async fn contact_imports(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> ApiResult<Vec<ImportJob>> {
        let rows =
            super::import::recent(state(ctx), actor(ctx)?, first.clamp(0, 100).into()).await?;
        Ok(rows.into_iter().map(ImportJob).collect())
    }
}

/// A link to a file made when it is fetched. `url` is a path on this server; it works
/// without further credentials until `expiresAt`, so treat it like a password.
#[derive(SimpleObject)]
pub struct DownloadLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

impl From<super::export::DownloadLink> for DownloadLink {
    fn from(link: super::export::DownloadLink) -> Self {
        Self {
            url: link.path,
            expires_at: link.expires_at,
        }
    }
}

#[derive(Default)]
pub struct ContactImportMutation;

#[Object]
impl ContactImportMutation {
    /// A link to the CSV of every contact that `filter` (and `view`, `grouping`) selects,
    /// streamed when fetched. Admins only; audited.
    async fn export_contacts(
        &self,
        ctx: &Context<'_>,
        view: Option<ID>,
        filter: Option<ContactFilter>,
        grouping: Option<ContactGrouping>,
    ) -> ApiResult<DownloadLink> {
        let link = super::export::export(
            state(ctx),
            actor(ctx)?,
            ContactQuery {
                view: view.map(|id| parse_id(&id, "view")).transpose()?,
                filter,
                grouping,
                order: None,
                after: None,
                first: 0,
                want_count: false,
            },
        )
        .await?;
        Ok(link.into())
    }

    /// A link to a sample import file: the columns the import understands, including the
    /// company's custom properties, with example rows.
    async fn contact_import_sample(&self, ctx: &Context<'_>) -> ApiResult<DownloadLink> {
        Ok(super::export::import_sample(state(ctx), actor(ctx)?)
            .await?
            .into())
    }

    /// Reads a CSV or spreadsheet file and shows its columns, sample values and a suggested
    /// property for each. Nothing is stored.
    async fn preview_contact_import(
        &self,
        ctx: &Context<'_>,
        file: async_graphql::Upload,
    ) -> ApiResult<ContactImportPreview> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::ContactsWrite)?;
        let (name, bytes) = crate::knowledge::graphql::read_upload(ctx, file).await?;
        let preview = super::import::preview(state(ctx), actor, &name, bytes).await?;
        Ok(ContactImportPreview {
            file_name: preview.file_name,
            row_count: preview.row_count as i32,
            columns: preview
                .columns
                .into_iter()
                .map(|c| ImportColumn {
                    index: c.index as i32,
                    header: c.header,
                    samples: c.samples,
                    suggested_property: c.suggested,
                })
                .collect(),
        })
    }

    /// Starts importing a file with `mapping`; the job runs in the background (poll
    /// `contactImport(id)`). The file and mapping are checked first: nothing starts if
    /// either is wrong.
    async fn import_contacts(
        &self,
        ctx: &Context<'_>,
        file: async_graphql::Upload,
        mapping: Vec<ImportColumnMapping>,
        options: Option<ImportOptions>,
    ) -> ApiResult<ImportJob> {
        let actor = actor(ctx)?;
        actor.require(Role::Staff, ApiScope::ContactsWrite)?;
        let options = options.unwrap_or(ImportOptions {
            update_existing: true,
            ..ImportOptions::default()
        });
        let mapping = mapping
            .into_iter()
            .map(|m| {
                Ok(super::import::MappingInput {
                    column: usize::try_from(m.column)
                        .map_err(|_| ApiError::validation("a column number is 0 or more"))?,
                    property: m.property,
                    new_property: m.new_property.map(|p| super::PropertyDefinition {
                        key: p.key,
                        label: p.label,
                        kind: p.kind,
                        options: p.options,
                    }),
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let (name, bytes) = crate::knowledge::graphql::read_upload(ctx, file).await?;
        let row = super::import::start(
            state(ctx),
            actor,
            super::import::ImportRequest {
                file_name: name,
                bytes,
                mapping,
                labels: options.labels,
                list_id: options
                    .list_id
                    .map(|id| parse_id(&id, "list"))
                    .transpose()?,
                update_existing: options.update_existing,
            },
        )
        .await?;
        Ok(ImportJob(row))
    }
}

// ---------------------------------------------------------------------------------------
// Custom objects

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRelation {
    /// At most one record per contact (a membership).
    OneToOne,
    /// Any number of records per contact (orders).
    OneToMany,
}

#[derive(InputObject)]
pub struct CustomFieldInput {
    pub key: String,
    pub label: String,
    #[graphql(name = "type")]
    pub kind: PropertyType,
    #[graphql(default)]
    pub options: Vec<String>,
}

#[derive(InputObject)]
pub struct DefineCustomObjectInput {
    /// Lower-case, as in `order` or `membership`; used by `customObjectRecords(type:)`.
    pub key: String,
    pub name: String,
    pub fields: Vec<CustomFieldInput>,
    /// The field that names a record in lists.
    pub display_field: String,
    pub relation: ObjectRelation,
}

#[derive(SimpleObject)]
pub struct CustomField {
    pub key: String,
    pub label: String,
    #[graphql(name = "type")]
    pub kind: PropertyType,
    pub options: Vec<String>,
}

/// A kind of record a company keeps about its contacts (orders, memberships, ...).
pub struct CustomObjectType(pub super::objects::TypeRow);

#[Object]
impl CustomObjectType {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    async fn key(&self) -> &str {
        &self.0.key
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn fields(&self) -> ApiResult<Vec<CustomField>> {
        Ok(self
            .0
            .fields()?
            .into_iter()
            .map(|f| CustomField {
                key: f.key,
                label: f.label,
                kind: f.kind,
                options: f.options,
            })
            .collect())
    }

    async fn display_field(&self) -> &str {
        &self.0.display_field
    }

    async fn relation(&self) -> ObjectRelation {
        if self.0.one_per_contact() {
            ObjectRelation::OneToOne
        } else {
            ObjectRelation::OneToMany
        }
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// One record of a custom object, belonging to a contact.
pub struct CustomObjectRecord {
    row: super::objects::RecordRow,
    display_field: String,
}

#[Object]
impl CustomObjectRecord {
    async fn id(&self) -> ID {
        to_id(self.row.id)
    }

    async fn contact(&self, ctx: &Context<'_>) -> ApiResult<Contact> {
        Ok(Contact(
            super::get(state(ctx), actor(ctx)?, self.row.contact_id).await?,
        ))
    }

    /// Field values by key (numbers as numbers, dates as YYYY-MM-DD).
    async fn values(&self) -> Json<&Value> {
        Json(&self.row.values)
    }

    /// The display field's value, as text.
    async fn display_value(&self) -> String {
        match self.row.values.get(&self.display_field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
    }
}

/// "A record was created / updated / deleted": what automation reacts to.
pub struct CustomObjectEvent(pub super::objects::EventRow);

#[Object]
impl CustomObjectEvent {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    /// CREATED, UPDATED or DELETED.
    async fn kind(&self) -> &str {
        &self.0.kind
    }

    async fn record_id(&self) -> ID {
        to_id(self.0.record_id)
    }

    async fn contact_id(&self) -> ID {
        to_id(self.0.contact_id)
    }

    async fn type_id(&self) -> ID {
        to_id(self.0.type_id)
    }

    /// The fields whose values changed (never the values).
    async fn fields(&self) -> &[String] {
        &self.0.fields
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct CustomObjectQuery;

#[Object]
impl CustomObjectQuery {
    async fn custom_object_types(&self, ctx: &Context<'_>) -> ApiResult<Vec<CustomObjectType>> {
        let rows = super::objects::types(state(ctx), actor(ctx)?).await?;
        Ok(rows.into_iter().map(CustomObjectType).collect())
    }

    /// Records of the custom object `type` (its key), oldest first, optionally of one
    /// contact and matching `filter` (conditions on its fields, `created_at`, `updated_at`).
    #[graphql(
        complexity = "crate::graphql::list_cost(first.unwrap_or(20).max(0) as usize, child_complexity)"
    )]
    async fn custom_object_records(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type")] type_key: String,
        filter: Option<ContactFilter>,
        contact_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Connection<String, CustomObjectRecord, EmptyFields, EmptyFields>> {
        let request = page_request(first, after)?;
        let (type_row, rows) = super::objects::records(
            state(ctx),
            actor(ctx)?,
            super::objects::RecordQuery {
                type_key,
                filter,
                contact_id: contact_id.map(|id| parse_id(&id, "contact")).transpose()?,
                after: request.after,
                limit: request.fetch(),
            },
        )
        .await?;
        let has_next = rows.len() > request.size;
        let mut connection = Connection::new(request.after.is_some(), has_next);
        connection
            .edges
            .extend(rows.into_iter().take(request.size).map(|row| {
                Edge::new(
                    encode_cursor(row.id),
                    CustomObjectRecord {
                        row,
                        display_field: type_row.display_field.clone(),
                    },
                )
            }));
        Ok(connection)
    }

    /// The latest record events, newest first (Admins).
    async fn custom_object_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> ApiResult<Vec<CustomObjectEvent>> {
        let rows =
            super::objects::events(state(ctx), actor(ctx)?, first.clamp(0, 500).into()).await?;
        Ok(rows.into_iter().map(CustomObjectEvent).collect())
    }
}

#[derive(Default)]
pub struct CustomObjectMutation;

#[Object]
impl CustomObjectMutation {
    /// Defines a custom object (Admins).
    async fn define_custom_object(
        &self,
        ctx: &Context<'_>,
        input: DefineCustomObjectInput,
    ) -> ApiResult<CustomObjectType> {
        let row = super::objects::define_type(
            state(ctx),
            actor(ctx)?,
            super::objects::TypeDefinition {
                key: input.key,
                name: input.name,
                display_field: input.display_field,
                one_per_contact: input.relation == ObjectRelation::OneToOne,
                fields: input
                    .fields
                    .into_iter()
                    .map(|f| super::objects::FieldDefinition {
                        key: f.key,
                        label: f.label,
                        kind: f.kind,
                        options: f.options,
                    })
                    .collect(),
            },
        )
        .await?;
        Ok(CustomObjectType(row))
    }

    async fn create_custom_object_record(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type")] type_key: String,
        contact_id: ID,
        values: Json<Map<String, Value>>,
    ) -> ApiResult<CustomObjectRecord> {
        let contact_id = parse_id(&contact_id, "contact")?;
        let (row, type_row) = super::objects::create_record(
            state(ctx),
            actor(ctx)?,
            &type_key,
            contact_id,
            &values.0,
        )
        .await?;
        Ok(CustomObjectRecord {
            row,
            display_field: type_row.display_field,
        })
    }

    /// Changes a record: fields given are set, null clears a field, others stay.
    async fn update_custom_object_record(
        &self,
        ctx: &Context<'_>,
        id: ID,
        values: Json<Map<String, Value>>,
    ) -> ApiResult<CustomObjectRecord> {
        let id = parse_id(&id, "record")?;
        let (row, type_row) =
            super::objects::update_record(state(ctx), actor(ctx)?, id, &values.0).await?;
        Ok(CustomObjectRecord {
            row,
            display_field: type_row.display_field,
        })
    }

    async fn delete_custom_object_record(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let id = parse_id(&id, "record")?;
        Ok(to_id(
            super::objects::delete_record(state(ctx), actor(ctx)?, id).await?,
        ))
    }
}
