//! Lists of contacts and saved views.
//!
//! A static list has members added and removed by hand (or by import); a criteria list has no
//! stored members: whoever matches its filter at the time of use is in it. Filters name lists
//! with the `list` condition, so a list is used wherever a filter is.
//!
//! A saved view is a named filter, grouping and order. Admins make default views that
//! everyone sees; anyone makes personal views that only they see.

use serde_json::{json, Value as Json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::filter::{self, ContactFilter};
use super::{all_visible, store, ContactGrouping, ContactOrder, Visibility};
use crate::app::AppState;
use crate::auth::{Actor, ApiScope, Role};
use crate::error::{is_unique_violation, ApiError, ApiResult};

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct ListRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub filter: Option<Json>,
    pub created_by: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl ListRow {
    pub fn criteria(&self) -> ApiResult<Option<ContactFilter>> {
        self.filter
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| ApiError::internal("reading a list's filter", e))
    }
}

const LIST_COLUMNS: &str = "id, name, kind, filter, created_by, created_at";

fn clean_name(name: &str, what: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "a {what} name is 1 to 100 characters"
        )));
    }
    Ok(name.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> ApiResult<Json> {
    serde_json::to_value(value).map_err(|e| ApiError::internal("storing a filter", e))
}

/// Creates a list: a criteria list when `filter` is given, else a static one.
pub async fn create_list(
    state: &AppState,
    actor: &Actor,
    name: &str,
    filter: Option<ContactFilter>,
) -> ApiResult<ListRow> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let name = clean_name(name, "list")?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let stored = match &filter {
        Some(filter) => {
            filter::validate(&mut tx, actor.user_id(), filter).await?;
            Some(to_json(filter)?)
        }
        None => None,
    };
    let row: ListRow = sqlx::query_as(&format!(
        "insert into contact_lists (id, company_id, name, kind, filter, created_by)
         values ($1, $2, $3, $4, $5, $6) returning {LIST_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(&name)
    .bind(if stored.is_some() {
        "CRITERIA"
    } else {
        "STATIC"
    })
    .bind(stored)
    .bind(actor.user_id())
    .fetch_one(&mut *tx)
    .await
    .map_err(|err| {
        if is_unique_violation(&err, "contact_lists_name_key") {
            ApiError::conflict(format!("there is already a list named '{name}'"))
        } else {
            err.into()
        }
    })?;
    tx.commit().await?;
    Ok(row)
}

pub async fn lists(state: &AppState, actor: &Actor) -> ApiResult<Vec<ListRow>> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(&format!(
        "select {LIST_COLUMNS} from contact_lists order by lower(name)"
    ))
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

pub async fn list_by_id(conn: &mut PgConnection, id: Uuid) -> ApiResult<ListRow> {
    sqlx::query_as(&format!(
        "select {LIST_COLUMNS} from contact_lists where id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("list"))
}

/// Puts contacts on (or takes them off) a static list; the activity log of each contact
/// whose membership changed says so. Returns the list.
pub async fn change_members(
    state: &AppState,
    actor: &Actor,
    list_id: Uuid,
    contact_ids: &[Uuid],
    add: bool,
) -> ApiResult<ListRow> {
    actor.require(Role::Staff, ApiScope::ContactsWrite)?;
    let unique = super::unique_ids(contact_ids)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let list = list_by_id(&mut tx, list_id).await?;
    if list.kind != "STATIC" {
        return Err(ApiError::validation(
            "a criteria list's members are whoever matches its filter; they cannot be added or removed by hand",
        ));
    }
    let visibility = Visibility::of(&mut tx, actor).await?;
    all_visible(&mut tx, &visibility, &unique, &[]).await?;
    let changed = add_members(&mut tx, actor.company_id, list.id, &unique, add).await?;
    store::record_activity(
        &mut tx,
        actor.company_id,
        &changed,
        if add { "LIST_ADDED" } else { "LIST_REMOVED" },
        Some(actor.user_id()),
        &json!({ "list": { "id": list.id, "name": list.name } }),
    )
    .await?;
    tx.commit().await?;
    Ok(list)
}

/// Adds (or removes) members of a static list; returns the contacts whose membership changed.
pub async fn add_members(
    conn: &mut PgConnection,
    company_id: Uuid,
    list_id: Uuid,
    contact_ids: &[Uuid],
    add: bool,
) -> sqlx::Result<Vec<Uuid>> {
    if add {
        sqlx::query_scalar(
            "insert into contact_list_members (list_id, contact_id, company_id)
             select $1, id, $3 from unnest($2::uuid[]) as m (id)
             on conflict do nothing returning contact_id",
        )
        .bind(list_id)
        .bind(contact_ids)
        .bind(company_id)
        .fetch_all(conn)
        .await
    } else {
        sqlx::query_scalar(
            "delete from contact_list_members where list_id = $1 and contact_id = any($2)
             returning contact_id",
        )
        .bind(list_id)
        .bind(contact_ids)
        .fetch_all(conn)
        .await
    }
}

/// Deletes a list (Admins). Its members stay contacts; filters and views that name the list
/// stop working and say so.
pub async fn delete_list(state: &AppState, actor: &Actor, list_id: Uuid) -> ApiResult<Uuid> {
    actor.require(Role::Admin, ApiScope::ContactsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let deleted = sqlx::query("delete from contact_lists where id = $1")
        .bind(list_id)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::not_found("list"));
    }
    tx.commit().await?;
    Ok(list_id)
}

// ---------------------------------------------------------------------------------------
// Saved views

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct ViewRow {
    pub id: Uuid,
    /// None for a default view (everyone's).
    pub user_id: Option<Uuid>,
    pub name: String,
    pub grouping: String,
    pub filter: Option<Json>,
    pub order_by: Option<Json>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl ViewRow {
    pub fn grouping(&self) -> ContactGrouping {
        serde_json::from_value(Json::String(self.grouping.clone())).unwrap_or(ContactGrouping::All)
    }

    pub fn filter(&self) -> ApiResult<Option<ContactFilter>> {
        self.filter
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| ApiError::internal("reading a view's filter", e))
    }

    pub fn order(&self) -> ApiResult<Option<ContactOrder>> {
        self.order_by
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| ApiError::internal("reading a view's order", e))
    }
}

const VIEW_COLUMNS: &str = "id, user_id, name, grouping, filter, order_by, created_at";

pub struct ViewInput {
    pub name: String,
    pub grouping: ContactGrouping,
    pub filter: Option<ContactFilter>,
    pub order: Option<ContactOrder>,
    /// A default view for everyone (Admins only) rather than the caller's own.
    pub shared: bool,
}

/// A view the actor may use: a default one or their own; NOT_FOUND otherwise.
pub async fn view_by_id(conn: &mut PgConnection, actor: &Actor, id: Uuid) -> ApiResult<ViewRow> {
    sqlx::query_as(&format!(
        "select {VIEW_COLUMNS} from contact_views
         where id = $1 and (user_id is null or user_id = $2)"
    ))
    .bind(id)
    .bind(actor.user_id())
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("view"))
}

/// Creates a view, or replaces view `id`'s settings. Default views are made and changed by
/// Admins; personal views by their maker alone.
pub async fn save_view(
    state: &AppState,
    actor: &Actor,
    id: Option<Uuid>,
    input: ViewInput,
) -> ApiResult<ViewRow> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    if input.shared {
        actor.require(Role::Admin, ApiScope::ContactsRead)?;
    }
    let name = clean_name(&input.name, "view")?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    if let Some(filter) = &input.filter {
        filter::validate(&mut tx, actor.user_id(), filter).await?;
    }
    let filter = input.filter.as_ref().map(to_json).transpose()?;
    let order = input.order.as_ref().map(to_json).transpose()?;
    let grouping = to_json(&input.grouping)?;
    let grouping = grouping.as_str().unwrap_or("ALL");
    let owner = (!input.shared).then(|| actor.user_id());
    let row: ViewRow = match id {
        None => {
            sqlx::query_as(&format!(
            "insert into contact_views (id, company_id, user_id, name, grouping, filter, order_by)
                 values ($1, $2, $3, $4, $5, $6, $7) returning {VIEW_COLUMNS}"
        ))
            .bind(Uuid::now_v7())
            .bind(actor.company_id)
            .bind(owner)
            .bind(&name)
            .bind(grouping)
            .bind(filter)
            .bind(order)
            .fetch_one(&mut *tx)
            .await?
        }
        Some(id) => {
            let existing = view_by_id(&mut tx, actor, id).await?;
            if existing.user_id.is_none() {
                actor.require(Role::Admin, ApiScope::ContactsRead)?;
            }
            sqlx::query_as(&format!(
                "update contact_views set user_id = $2, name = $3, grouping = $4, filter = $5,
                        order_by = $6
                 where id = $1 returning {VIEW_COLUMNS}"
            ))
            .bind(id)
            .bind(owner)
            .bind(&name)
            .bind(grouping)
            .bind(filter)
            .bind(order)
            .fetch_one(&mut *tx)
            .await?
        }
    };
    tx.commit().await?;
    Ok(row)
}

/// The default views, then the caller's own, each by name.
pub async fn views(state: &AppState, actor: &Actor) -> ApiResult<Vec<ViewRow>> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(&format!(
        "select {VIEW_COLUMNS} from contact_views where user_id is null or user_id = $1
         order by user_id nulls first, lower(name), id"
    ))
    .bind(actor.user_id())
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    Ok(rows)
}

pub async fn delete_view(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<Uuid> {
    actor.require(Role::Staff, ApiScope::ContactsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let view = view_by_id(&mut tx, actor, id).await?;
    if view.user_id.is_none() {
        actor.require(Role::Admin, ApiScope::ContactsRead)?;
    }
    sqlx::query("delete from contact_views where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}
