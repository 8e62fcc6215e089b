//! DataLoaders: associations are fetched in one query per batch, never one per parent.
//! A loader belongs to one request (or one WebSocket connection) and one company; each batch
//! runs in its own tenant transaction.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use crate::db::Db;
use crate::error::ApiError;
use crate::teams::store::TeamRow;
use crate::users::store::UserRow;

pub struct TenantLoader {
    pub db: Db,
    pub company_id: Uuid,
}

/// Key: a user by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserById(pub Uuid);

/// Key: the members of a team.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MembersOfTeam(pub Uuid);

/// Key: the teams of a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TeamsOfUser(pub Uuid);

impl Loader<UserById> for TenantLoader {
    type Value = UserRow;
    type Error = ApiError;

    async fn load(&self, keys: &[UserById]) -> Result<HashMap<UserById, UserRow>, ApiError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut tx = self.db.tenant(self.company_id).await?;
        let rows = crate::users::store::by_ids(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|row| (UserById(row.id), row))
            .collect())
    }
}

impl Loader<MembersOfTeam> for TenantLoader {
    type Value = Vec<UserRow>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[MembersOfTeam],
    ) -> Result<HashMap<MembersOfTeam, Vec<UserRow>>, ApiError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut tx = self.db.tenant(self.company_id).await?;
        let rows = crate::teams::store::members_of(&mut tx, &ids).await?;
        tx.commit().await?;
        let mut grouped: HashMap<MembersOfTeam, Vec<UserRow>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for membership in rows {
            grouped
                .entry(MembersOfTeam(membership.key))
                .or_default()
                .push(membership.row);
        }
        Ok(grouped)
    }
}

impl Loader<TeamsOfUser> for TenantLoader {
    type Value = Vec<TeamRow>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[TeamsOfUser],
    ) -> Result<HashMap<TeamsOfUser, Vec<TeamRow>>, ApiError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut tx = self.db.tenant(self.company_id).await?;
        let rows = crate::teams::store::teams_of(&mut tx, &ids).await?;
        tx.commit().await?;
        let mut grouped: HashMap<TeamsOfUser, Vec<TeamRow>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for membership in rows {
            grouped
                .entry(TeamsOfUser(membership.key))
                .or_default()
                .push(membership.row);
        }
        Ok(grouped)
    }
}

/// Key: the sources of a knowledge base.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourcesOfBase(pub Uuid);

impl Loader<SourcesOfBase> for TenantLoader {
    type Value = Vec<crate::knowledge::store::SourceRow>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[SourcesOfBase],
    ) -> Result<HashMap<SourcesOfBase, Self::Value>, ApiError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut tx = self.db.tenant(self.company_id).await?;
        let rows = crate::knowledge::store::sources_of_bases(&mut tx, &ids).await?;
        tx.commit().await?;
        let mut grouped: HashMap<SourcesOfBase, Self::Value> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for row in rows {
            grouped
                .entry(SourcesOfBase(row.knowledge_base_id))
                .or_default()
                .push(row);
        }
        Ok(grouped)
    }
}

/// Key: a team by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TeamById(pub Uuid);

impl Loader<TeamById> for TenantLoader {
    type Value = TeamRow;
    type Error = ApiError;

    async fn load(&self, keys: &[TeamById]) -> Result<HashMap<TeamById, TeamRow>, ApiError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut tx = self.db.tenant(self.company_id).await?;
        let rows = crate::teams::store::by_ids(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|row| (TeamById(row.id), row))
            .collect())
    }
}

/// Key: a contact label by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LabelById(pub Uuid);

impl Loader<LabelById> for TenantLoader {
    type Value = crate::contacts::store::LabelRow;
    type Error = ApiError;

    async fn load(&self, keys: &[LabelById]) -> Result<HashMap<LabelById, Self::Value>, ApiError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut tx = self.db.tenant(self.company_id).await?;
        let rows = crate::contacts::store::labels_by_ids(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|row| (LabelById(row.id), row))
            .collect())
    }
}

/// Key: the files of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FilesOfMessage(pub Uuid);

impl Loader<FilesOfMessage> for TenantLoader {
    type Value = Vec<crate::contacts::related::MediaRow>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[FilesOfMessage],
    ) -> Result<HashMap<FilesOfMessage, Self::Value>, ApiError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut tx = self.db.tenant(self.company_id).await?;
        let rows: Vec<crate::contacts::related::MediaRow> = sqlx::query_as(&format!(
            "select {} from contact_media where message_id = any($1) order by id",
            crate::contacts::related::MEDIA_COLUMNS
        ))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut grouped: HashMap<FilesOfMessage, Self::Value> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for row in rows {
            if let Some(message) = row.message_id {
                grouped
                    .entry(FilesOfMessage(message))
                    .or_default()
                    .push(row);
            }
        }
        Ok(grouped)
    }
}
