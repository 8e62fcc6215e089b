//! Files in conversations. They are the contact's files (`contact_media`, with the message
//! they came with), kept in the object store:
//!
//! - An agent's file is stored before its message is queued; the provider is handed a link
//!   to it, which it fetches when it delivers the message.
//! - A contact's file is named by the webhook (an id or a URL at the provider). Storing the
//!   message queues a `message.fetch_media` job in the same transaction, which
//!   copies the file here; the message shows it PENDING until then, or FAILED with a reason.
//!   (A trigger on `messages` did this at first, but PostgreSQL reads and compiles a
//!   trigger's WHEN clause for every INSERT it runs, text messages included: the hot path
//!   paid for a rare case.)
//!
//! Links are capabilities: `/media/<token>/<file name>`, where the token is the company, the
//! file and an expiry sealed with the server's key. Nothing is stored per link, a link
//! cannot be forged or extended, and the file name at the end is only for the provider (Viber
//! wants an extension) and for people saving the file.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{Duration, Utc};
use futures_util::future::BoxFuture;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use serde_json::Value as Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::AppState;
use crate::channels::model::{Content, MediaKind};
use crate::channels::outbound::bare_type;
use crate::channels::ChannelType;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{Handler, Job, Outcome};

pub const FETCH_JOB: &str = "message.fetch_media";
/// The largest file taken from a contact. WhatsApp allows documents of 100 MB; such a file is
/// marked FAILED with this limit named, and stays readable in the contact's app.
pub const MAX_INBOUND_BYTES: u64 = 64 * 1024 * 1024;
/// How long a link handed to a provider or the chat widget works.
pub const SHARE_TTL: Duration = Duration::hours(24);
/// How long a link read through the API works.
pub const READ_TTL: Duration = Duration::hours(1);

/// An agent's file, as uploaded.
pub struct Upload {
    pub name: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// An agent's file, stored, waiting for its message row.
pub struct Stored {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub media: MediaKind,
}

/// What the upload is and what it will be called, before anything is stored.
pub fn describe(upload: &Upload) -> (String, String, MediaKind) {
    let mut name: String = upload
        .name
        .trim()
        .chars()
        .filter(|c| !c.is_control() && *c != '/' && *c != '\\')
        .take(255)
        .collect();
    let given = upload
        .content_type
        .as_deref()
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|t| t.len() <= 100 && t.contains('/') && t != "application/octet-stream");
    let content_type = given
        .or_else(|| type_of_name(&name).map(str::to_string))
        .unwrap_or_else(|| "application/octet-stream".into());
    let media = media_kind(&content_type);
    if name.is_empty() {
        name = media.as_str().to_ascii_lowercase();
    }
    let name = with_extension(name, &content_type);
    (name, content_type, media)
}

/// Puts an agent's file in the object store, under the conversation.
pub async fn put(
    state: &AppState,
    company_id: Uuid,
    conversation_id: Uuid,
    upload: Upload,
) -> ApiResult<Stored> {
    let (name, content_type, media) = describe(&upload);
    let id = Uuid::now_v7();
    let key = format!("conversation-media/{company_id}/{conversation_id}/{id}");
    let size = upload.bytes.len() as i64;
    state
        .knowledge
        .objects
        .put(&ObjectPath::from(key.clone()), upload.bytes.into())
        .await
        .map_err(|e| ApiError::internal("storing a message's file", e))?;
    Ok(Stored {
        id,
        key,
        name,
        content_type,
        size,
        media,
    })
}

/// Records a stored file as the contact's, sent with `message_id`.
pub async fn record(
    conn: &mut PgConnection,
    company_id: Uuid,
    contact_id: Uuid,
    message_id: Uuid,
    file: &Stored,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into contact_media (id, company_id, contact_id, message_id, file_name, content_type,
             size_bytes, object_key, status)
         values ($1, $2, $3, $4, $5, $6, $7, $8, 'READY')",
    )
    .bind(file.id)
    .bind(company_id)
    .bind(contact_id)
    .bind(message_id)
    .bind(&file.name)
    .bind(&file.content_type)
    .bind(file.size)
    .bind(&file.key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues the fetch of a contact's file (`content` is an inbound message's), in the
/// transaction that stores the message. Anything but media queues nothing.
pub async fn queue_fetch(
    conn: &mut PgConnection,
    company_id: Uuid,
    contact_id: Uuid,
    conversation_id: Uuid,
    message_id: Uuid,
    content: &Content,
) -> sqlx::Result<()> {
    let Content::Media {
        media,
        mime_type,
        filename,
        ..
    } = content
    else {
        return Ok(());
    };
    let id = Uuid::now_v7();
    let name: String = filename
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().filter(|c| !c.is_control()).take(255).collect())
        .unwrap_or_else(|| media.as_str().to_ascii_lowercase());
    let content_type = mime_type
        .as_deref()
        .map(bare_type)
        .filter(|t| t.contains('/') && t.len() <= 100)
        .unwrap_or_else(|| "application/octet-stream".into());
    sqlx::query(
        "insert into contact_media (id, company_id, contact_id, message_id, file_name, content_type,
             size_bytes, object_key, status)
         values ($1, $2, $3, $4, $5, $6, 0, $7, 'PENDING')",
    )
    .bind(id)
    .bind(company_id)
    .bind(contact_id)
    .bind(message_id)
    .bind(&name)
    .bind(&content_type)
    .bind(format!("conversation-media/{company_id}/{conversation_id}/{id}"))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into jobs (id, company_id, kind, payload, max_attempts) values ($1, $2, $3, $4, 6)",
    )
    .bind(Uuid::now_v7())
    .bind(company_id)
    .bind(FETCH_JOB)
    .bind(serde_json::json!({ "file_id": id.to_string() }))
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes a stored file whose message was not queued after all.
pub async fn discard(state: &AppState, file: &Stored) {
    crate::contacts::related::delete_objects(state, std::slice::from_ref(&file.key)).await;
}

// ---------------------------------------------------------------------------------------
// Links

/// A link to file `file_id` of `company_id`, working for `ttl`.
pub fn link(
    state: &AppState,
    company_id: Uuid,
    file_id: Uuid,
    name: &str,
    ttl: Duration,
) -> String {
    let expires = (Utc::now() + ttl).timestamp();
    let mut plain = Vec::with_capacity(40);
    plain.extend_from_slice(company_id.as_bytes());
    plain.extend_from_slice(file_id.as_bytes());
    plain.extend_from_slice(&expires.to_be_bytes());
    // Sealing fails only if the cipher cannot run at all; such a link then answers 404.
    let token = state
        .sealer
        .seal(&plain)
        .map(|sealed| URL_SAFE_NO_PAD.encode(sealed))
        .unwrap_or_default();
    format!("{}/media/{token}/{}", state.base_url(), url_name(name))
}

/// The company, file and expiry a token was made for, if this server made it.
fn open(state: &AppState, token: &str) -> Option<(Uuid, Uuid, i64)> {
    if token.len() > 200 {
        return None;
    }
    let sealed = URL_SAFE_NO_PAD.decode(token).ok()?;
    let plain = state.sealer.open(&sealed).ok()?;
    if plain.len() != 40 {
        return None;
    }
    let company = Uuid::from_slice(&plain[..16]).ok()?;
    let file = Uuid::from_slice(&plain[16..32]).ok()?;
    let expires = i64::from_be_bytes(plain[32..40].try_into().ok()?);
    Some((company, file, expires))
}

/// Adds a fresh `url` to a stored outbound content that names its file (`attachmentId`).
pub fn with_link(state: &AppState, company_id: Uuid, content: &mut Json, ttl: Duration) {
    let Some(id) = content
        .get("attachmentId")
        .and_then(Json::as_str)
        .and_then(|id| Uuid::parse_str(id).ok())
    else {
        return;
    };
    let name = content
        .get("filename")
        .and_then(Json::as_str)
        .unwrap_or("file")
        .to_string();
    content["url"] = Json::String(link(state, company_id, id, &name, ttl));
}

/// `GET /media/{token}/{name}`: the file, to whoever holds a link that has not expired.
pub async fn serve(
    State(state): State<AppState>,
    Path((token, _name)): Path<(String, String)>,
) -> Response {
    let missing = || {
        (
            StatusCode::NOT_FOUND,
            "This file link does not exist or has expired.",
        )
            .into_response()
    };
    let Some((company_id, file_id, expires)) = open(&state, &token) else {
        return missing();
    };
    if expires < Utc::now().timestamp() {
        return missing();
    }
    let row = async {
        let mut tx = state.db.tenant(company_id).await?;
        let row: Option<(String, String, String)> = sqlx::query_as(
            "select object_key, content_type, file_name from contact_media
             where id = $1 and status = 'READY'",
        )
        .bind(file_id)
        .fetch_optional(&mut *tx)
        .await?;
        drop(tx);
        Ok::<_, ApiError>(row)
    }
    .await;
    let (key, content_type, name) = match row {
        Ok(Some(row)) => row,
        Ok(None) => return missing(),
        Err(err) => {
            tracing::error!(error = ?err, "reading a file link");
            return (StatusCode::SERVICE_UNAVAILABLE, "Please try again shortly.").into_response();
        }
    };
    let object = match state.knowledge.objects.get(&ObjectPath::from(key)).await {
        Ok(object) => object,
        Err(object_store::Error::NotFound { .. }) => return missing(),
        Err(err) => {
            tracing::error!(error = %err, "reading a stored file");
            return (StatusCode::SERVICE_UNAVAILABLE, "Please try again shortly.").into_response();
        }
    };
    let size = object.meta.size;
    let body = Body::from_stream(object.into_stream().map_err(std::io::Error::other));
    // Pictures, sound and video open in place; anything else (HTML, SVG, scripts) is only
    // ever a download, and nothing served here may run in our origin.
    let content_type = bare_type(&content_type);
    let inline = matches!(
        media_kind(&content_type),
        MediaKind::Image | MediaKind::Video | MediaKind::Audio
    ) && content_type != "image/svg+xml";
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        url_name(&name)
    );
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let header_value = |v: &str| {
        HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("application/octet-stream"))
    };
    headers.insert(
        header::CONTENT_TYPE,
        header_value(if inline {
            &content_type
        } else {
            "application/octet-stream"
        }),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::CONTENT_DISPOSITION, header_value(&disposition));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    response
}

// ---------------------------------------------------------------------------------------
// Fetching contacts' files

pub fn handler(state: AppState) -> Arc<dyn Handler> {
    Arc::new(Fetcher { state })
}

struct Fetcher {
    state: AppState,
}

type Pending = (
    String,
    String,
    String,
    String,
    Json,
    Uuid,
    Uuid,
    String,
    Vec<u8>,
);

impl Handler for Fetcher {
    fn run(&self, job: Job) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match self.fetch(&job).await {
                Ok(outcome) => outcome,
                Err(err) => Outcome::Retry(format!("database: {err}")),
            }
        })
    }

    fn give_up(&self, job: Job, error: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(id) = file_id(&job) {
                let reason = format!("not fetched after {} attempts: {error}", job.attempt);
                if let Err(err) = self.fail(job.company_id, id, &reason).await {
                    tracing::warn!(error = %err, "recording a file that could not be fetched");
                }
            }
        })
    }
}

fn file_id(job: &Job) -> Option<Uuid> {
    job.payload
        .get("file_id")
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

impl Fetcher {
    async fn fetch(&self, job: &Job) -> sqlx::Result<Outcome> {
        let Some(id) = file_id(job) else {
            return Ok(Outcome::Done);
        };
        let mut tx = self.state.db.tenant(job.company_id).await?;
        let pending: Option<Pending> = sqlx::query_as(
            "select f.status, f.object_key, f.file_name, f.content_type, m.content, m.id, a.id,
                    a.type, a.credentials_sealed
             from contact_media f join messages m on m.id = f.message_id
             join channel_accounts a on a.id = m.channel_account_id
             where f.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        drop(tx);
        let Some((status, key, name, stored_type, content, message_id, account_id, kind, sealed)) =
            pending
        else {
            return Ok(Outcome::Done);
        };
        if status != "PENDING" {
            return Ok(Outcome::Done);
        }
        let credentials = crate::channels::open_credentials(&self.state.sealer, &sealed).ok();
        let content = serde_json::from_value::<Content>(content).ok();
        let (Some(credentials), Some(content)) = (credentials, content) else {
            self.fail(
                job.company_id,
                id,
                "the channel's credentials or the message are unreadable",
            )
            .await?;
            return Ok(Outcome::Done);
        };
        let downloaded = self
            .state
            .sender
            .download(
                ChannelType::from_db(&kind),
                account_id,
                &credentials,
                &content,
                MAX_INBOUND_BYTES,
            )
            .await;
        let file = match downloaded {
            Ok(file) => file,
            Err(err) if err.retryable => return Ok(Outcome::Retry(err.reason)),
            Err(err) => {
                self.fail(job.company_id, id, &err.reason).await?;
                return Ok(Outcome::Done);
            }
        };
        // The webhook's type wins; the download's stands in when the webhook gave none.
        let content_type = if stored_type == "application/octet-stream" {
            file.content_type
                .filter(|t| t.contains('/') && t.len() <= 100)
                .unwrap_or(stored_type)
        } else {
            stored_type
        };
        let size = file.bytes.len() as i64;
        if let Err(err) = self
            .state
            .knowledge
            .objects
            .put(&ObjectPath::from(key.clone()), file.bytes.into())
            .await
        {
            return Ok(Outcome::Retry(format!("storing the file: {err}")));
        }
        let mut tx = self.state.db.tenant(job.company_id).await?;
        let updated = sqlx::query(
            "update contact_media set status = 'READY', size_bytes = $2, content_type = $3,
                 file_name = $4
             where id = $1 and status = 'PENDING'",
        )
        .bind(id)
        .bind(size)
        .bind(&content_type)
        .bind(with_extension(name, &content_type))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            // The contact was erased (or the file settled) while it was downloading: the
            // copy just written belongs to nobody.
            drop(tx);
            crate::contacts::related::delete_objects(&self.state, &[key]).await;
            return Ok(Outcome::Done);
        }
        if let Some(event) =
            super::send::message_updated(&mut tx, job.company_id, message_id).await?
        {
            crate::events::publish(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(Outcome::Done)
    }

    async fn fail(&self, company_id: Uuid, id: Uuid, reason: &str) -> sqlx::Result<()> {
        let mut tx = self.state.db.tenant(company_id).await?;
        let message: Option<Uuid> = sqlx::query_scalar(
            "update contact_media set status = 'FAILED', failure_reason = left($2, 500)
             where id = $1 and status = 'PENDING' returning message_id",
        )
        .bind(id)
        .bind(reason)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        if let Some(message_id) = message {
            if let Some(event) =
                super::send::message_updated(&mut tx, company_id, message_id).await?
            {
                crate::events::publish(&mut tx, &event).await?;
            }
        }
        tx.commit().await
    }
}

// ---------------------------------------------------------------------------------------
// Names and types

/// What a channel sends a file of this type as.
pub fn media_kind(content_type: &str) -> MediaKind {
    let content_type = bare_type(content_type);
    match content_type.split('/').next().unwrap_or_default() {
        "image" if content_type != "image/svg+xml" => MediaKind::Image,
        "video" => MediaKind::Video,
        "audio" => MediaKind::Audio,
        _ => MediaKind::Document,
    }
}

/// Common types by extension and back; anything else is `application/octet-stream`.
const TYPES: &[(&str, &str)] = &[
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("svg", "image/svg+xml"),
    ("mp4", "video/mp4"),
    ("3gp", "video/3gpp"),
    ("mov", "video/quicktime"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("ogg", "audio/ogg"),
    ("opus", "audio/opus"),
    ("aac", "audio/aac"),
    ("amr", "audio/amr"),
    ("wav", "audio/wav"),
    ("pdf", "application/pdf"),
    ("txt", "text/plain"),
    ("csv", "text/csv"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("zip", "application/zip"),
];

fn type_of_name(name: &str) -> Option<&'static str> {
    let (_, extension) = name.rsplit_once('.')?;
    let extension = extension.to_ascii_lowercase();
    TYPES.iter().find(|(e, _)| *e == extension).map(|(_, t)| *t)
}

/// `name` with the extension of its type, when it has none (providers such as Viber read
/// the type from the name).
fn with_extension(name: String, content_type: &str) -> String {
    if name.contains('.') {
        return name;
    }
    match TYPES.iter().find(|(_, t)| *t == content_type) {
        Some((extension, _)) => {
            // Names are at most 255 characters, the extension included.
            let stem: String = name.chars().take(255 - 1 - extension.len()).collect();
            format!("{stem}.{extension}")
        }
        None => name,
    }
}

/// A file name that is safe as the last segment of a URL and in a header: letters, digits,
/// dot, dash and underscore, the extension kept.
fn url_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches('.');
    let cleaned = match cleaned.rsplit_once('.') {
        Some((stem, extension)) if cleaned.len() > 80 && extension.len() <= 10 => {
            format!("{}.{extension}", &stem[..80 - extension.len() - 1])
        }
        _ => cleaned.chars().take(80).collect(),
    };
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(name: &str, content_type: Option<&str>) -> (String, String, MediaKind) {
        describe(&Upload {
            name: name.into(),
            content_type: content_type.map(str::to_string),
            bytes: Vec::new(),
        })
    }

    #[test]
    fn uploads_get_a_type_and_a_name_with_its_extension() {
        assert_eq!(
            upload("Photo 1.JPG", None),
            ("Photo 1.JPG".into(), "image/jpeg".into(), MediaKind::Image)
        );
        assert_eq!(
            upload("scan", Some("application/pdf")),
            (
                "scan.pdf".into(),
                "application/pdf".into(),
                MediaKind::Document
            )
        );
        assert_eq!(
            upload("", Some("audio/ogg; codecs=opus")),
            ("audio.ogg".into(), "audio/ogg".into(), MediaKind::Audio)
        );
        // An SVG can carry script: it is a document, never a picture shown inline, however
        // its type is spelt.
        assert_eq!(upload("logo.svg", None).2, MediaKind::Document);
        assert_eq!(media_kind("IMAGE/SVG+XML; x=1"), MediaKind::Document);
        // A long name keeps room for its extension.
        let (name, _, _) = upload(&"n".repeat(300), Some("application/pdf"));
        assert_eq!(name.chars().count(), 255);
        assert!(name.ends_with("n.pdf"));
        assert_eq!(
            upload("../../etc/passwd", Some("application/octet-stream")),
            (
                "....etcpasswd".into(),
                "application/octet-stream".into(),
                MediaKind::Document
            )
        );
    }

    #[test]
    fn names_in_links_are_plain_and_keep_their_extension() {
        assert_eq!(url_name("Invoice März 2026.pdf"), "Invoice_M_rz_2026.pdf");
        assert_eq!(url_name("\"quoted\"\r\n.png"), "_quoted___.png");
        assert_eq!(url_name("..."), "file");
        let long = format!("{}.jpeg", "a".repeat(300));
        let cut = url_name(&long);
        assert_eq!(cut.len(), 80);
        assert!(cut.ends_with(".jpeg"));
    }
}
