//! The one message model every channel is translated into (inbound) and out of (outbound).
//!
//! Provider adapters (`inbound`, `outbound`) are pure translations between a provider's
//! documented wire format and these types; storing, routing and retrying live elsewhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What one webhook delivery told us: any number of messages and status changes (Meta and
/// LINE batch several events into one delivery).
#[derive(Debug, Clone, PartialEq)]
pub enum InboundEvent {
    Message(InboundMessage),
    Status(StatusUpdate),
    /// The contact has read everything we sent them up to `up_to` (Messenger's read
    /// watermark, which names no message).
    ReadUpTo {
        from: String,
        up_to: DateTime<Utc>,
    },
    /// Meta reviewed a WhatsApp template (`message_template_status_update`).
    TemplateReviewed {
        name: String,
        language: String,
        /// APPROVED, REJECTED or PENDING (Meta's other states map to these).
        status: String,
        reason: Option<String>,
    },
}

/// A message a contact sent to the business.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The provider's id of this message, unique within the channel account: a redelivered
    /// webhook carries the same id, which is how it is recognised.
    pub provider_message_id: String,
    /// The contact's id on this channel (WhatsApp wa_id, page-scoped id, chat id, user id,
    /// open id, phone number, ...). Becomes a contact identity.
    pub from: String,
    /// The name the provider shows for the sender, if the payload has one.
    pub profile_name: Option<String>,
    /// The sender's phone number in E.164 (`+` and digits), when the channel reveals it
    /// (WhatsApp, SMS).
    pub phone: Option<String>,
    /// When the contact sent it, by the provider's clock.
    pub sent_at: DateTime<Utc>,
    pub content: Content,
}

/// What a message says, on any channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum Content {
    Text {
        body: String,
    },
    Media {
        media: MediaKind,
        /// A URL the provider serves the file at, when the payload gives one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// The provider's id of the file, when it must be fetched by id (WhatsApp, LINE,
        /// Telegram file_id, WeChat media_id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_media_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// The contact tapped a quick-reply button or chose a list option we sent.
    InteractiveReply {
        /// The id we gave the button or option when sending.
        id: String,
        title: String,
    },
    /// A postback: a persistent-menu item, a "get started" button, a template button.
    Postback {
        payload: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// A message type the platform does not handle yet (a sticker, a contact card, ...):
    /// stored so the agent knows something arrived.
    Unsupported {
        /// The provider's name for the type.
        provider_type: String,
    },
}

impl Content {
    /// A line of text for inbox previews and search.
    pub fn preview(&self) -> String {
        match self {
            Content::Text { body } => body.clone(),
            Content::Media { media, caption, .. } => match caption {
                Some(caption) if !caption.is_empty() => caption.clone(),
                _ => format!("[{}]", media.as_str().to_ascii_lowercase()),
            },
            Content::Location { name, .. } => match name {
                Some(name) => format!("[location] {name}"),
                None => "[location]".into(),
            },
            Content::InteractiveReply { title, .. } => title.clone(),
            Content::Postback { payload, title } => title.clone().unwrap_or(payload.clone()),
            Content::Unsupported { provider_type } => format!("[{provider_type}]"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "IMAGE",
            MediaKind::Video => "VIDEO",
            MediaKind::Audio => "AUDIO",
            MediaKind::Document => "DOCUMENT",
            MediaKind::Sticker => "STICKER",
        }
    }
}

/// The provider's news about a message we sent.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The id the provider gave the message when we sent it.
    pub provider_message_id: String,
    pub status: DeliveryStatus,
    /// Why it failed (the provider's code and title), for `Failed`.
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// Where an outbound message is. The order matters: a status never moves backwards (a late
/// "delivered" after "read" changes nothing); `Failed` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryStatus {
    pub fn as_db(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "SENT",
            DeliveryStatus::Delivered => "DELIVERED",
            DeliveryStatus::Read => "READ",
            DeliveryStatus::Failed => "FAILED",
        }
    }
}

/// A message the business sends on one channel account.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// Our id for the message; senders pass it where the provider accepts a client
    /// reference, so a retry after a lost response can be recognised.
    pub id: uuid::Uuid,
    /// The contact's id on this channel (the inbound `from`).
    pub to: String,
    pub content: OutboundContent,
    /// Messenger's HUMAN_AGENT message tag (a reply up to 7 days after the last message).
    pub human_agent_tag: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutboundContent {
    Text {
        body: String,
    },
    /// A file from our object store, published at `url` for the provider to fetch.
    Media {
        media: MediaKind,
        url: String,
        mime_type: String,
        filename: Option<String>,
        caption: Option<String>,
    },
    /// An approved WhatsApp template, with its variables in order ({{1}}, {{2}}, ...).
    Template {
        name: String,
        language: String,
        variables: Vec<String>,
    },
    /// Text with at most 3 buttons.
    QuickReplies {
        body: String,
        buttons: Vec<Choice>,
    },
    /// Text with a button that opens at most 10 options.
    List {
        body: String,
        button: String,
        options: Vec<Choice>,
    },
}

/// A button or list option: `id` comes back in the contact's `InteractiveReply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
