//! Real-time events, fanned out across every `obrol` process through PostgreSQL.
//!
//! A change publishes its event with `pg_notify` inside the transaction that makes it, so
//! the event goes out exactly when (and only if) the change commits. Each process LISTENs on
//! one channel and re-broadcasts what arrives to its local subscribers; several API nodes
//! behind a load balancer therefore all see every event. Subscribers listen to their
//! company's own buffer, so one company's burst of events never makes another company's
//! subscribers fall behind.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::auth::cache::CredentialCache;

pub const CHANNEL: &str = "obrol_events";
/// Carries user ids whose cached credentials must be forgotten (sent by triggers), and
/// heartbeats that prove the listener still hears (see `auth::cache`).
pub const CREDENTIALS_CHANNEL: &str = "obrol_credentials";
const HEARTBEAT: &str = "heartbeat";
const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Event {
    pub company_id: Uuid,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    PresenceChanged {
        user_id: Uuid,
        presence: String,
        at: DateTime<Utc>,
    },
    /// A knowledge source changed status or progress, or was deleted.
    KnowledgeSourceUpdated {
        source: Box<crate::knowledge::store::SourceRow>,
        deleted: bool,
    },
    /// A message (or note) was added to a conversation. Subscribers read it under their own
    /// rights; `scope` says who may see the conversation without asking the database.
    MessageAdded {
        conversation_id: Uuid,
        message_id: Uuid,
        scope: ConversationScope,
        /// The conversation's contact (a live-chat visitor's socket listens for theirs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contact_id: Option<Uuid>,
        /// The message itself, so that subscribers need not read it (left out when the
        /// notification would be too large).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<Box<crate::conversations::MessageRow>>,
    },
    /// An outbound message's status changed (sent, delivered, read, failed).
    MessageUpdated {
        conversation_id: Uuid,
        message_id: Uuid,
        scope: ConversationScope,
    },
    /// A conversation changed: status, assignment, unread count, last message. `previous`
    /// is who could see it before, when that changed (it may have left someone's inbox).
    ConversationUpdated {
        conversation_id: Uuid,
        scope: ConversationScope,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<ConversationScope>,
        /// The conversation as it now is (left out when too large for a notification).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<Box<crate::conversations::ConversationRow>>,
    },
    /// A channel account was disconnected or changed: webhook credentials cached by every
    /// node must be read again.
    ChannelAccountChanged { account_id: Uuid },
}

/// Who a conversation belongs to, which decides who sees it (conversations::Access).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ConversationScope {
    pub team_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentioned: Vec<Uuid>,
}

/// PostgreSQL refuses notifications of 8,000 bytes or more; events carrying a row stay
/// below this, or go without the row.
const MAX_PAYLOAD: usize = 7000;

impl Event {
    /// The event as a notification payload: without its embedded row if that is too large.
    fn payload(&self) -> Result<String, serde_json::Error> {
        let text = serde_json::to_string(self)?;
        if text.len() <= MAX_PAYLOAD {
            return Ok(text);
        }
        let mut slim = self.clone();
        match &mut slim.kind {
            EventKind::MessageAdded { message, .. } => *message = None,
            EventKind::ConversationUpdated { conversation, .. } => *conversation = None,
            _ => {}
        }
        serde_json::to_string(&slim)
    }
}

/// Queues `event` for delivery when the current transaction commits.
pub async fn publish(conn: &mut PgConnection, event: &Event) -> sqlx::Result<()> {
    let payload = event
        .payload()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// Queues several events in one round trip (in order).
pub async fn publish_many(conn: &mut PgConnection, events: &[Event]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let payloads = events
        .iter()
        .map(Event::payload)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "select pg_notify($1, p) from unnest($2::text[]) with ordinality as t (p, n) order by n",
    )
    .bind(CHANNEL)
    .bind(payloads)
    .execute(conn)
    .await?;
    Ok(())
}

/// Companies' own event buffers, made when the first of their subscribers arrives and
/// dropped once the last has gone.
type CompanySenders = Arc<Mutex<HashMap<Uuid, broadcast::Sender<Event>>>>;

/// This process's fan-out of the events it hears from PostgreSQL.
#[derive(Clone)]
pub struct EventBus {
    /// Every company's events, for this process's own caches and workers.
    sender: broadcast::Sender<Event>,
    companies: CompanySenders,
    /// Events a subscriber may be behind before it is told it missed some.
    capacity: usize,
}

impl EventBus {
    /// Starts listening and spawns the task that forwards notifications. Returns once the
    /// LISTEN is in place, so no event committed after this returns can be missed.
    /// `capacity` is how far behind one subscriber may fall (`OBROL_EVENT_BUFFER`).
    pub async fn start(
        pool: &PgPool,
        credentials: Arc<CredentialCache>,
        capacity: usize,
    ) -> sqlx::Result<Self> {
        let capacity = capacity.max(1);
        let (sender, _) = broadcast::channel(capacity);
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen_all([CHANNEL, CREDENTIALS_CHANNEL]).await?;
        credentials.mark_healthy();
        let bus = Self {
            sender,
            companies: CompanySenders::default(),
            capacity,
        };
        let forward = bus.clone();
        tokio::spawn(async move {
            loop {
                // try_recv, not recv: recv reconnects silently, and notifications sent while
                // the connection was down would be lost without the cache hearing of it.
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        credentials.mark_healthy();
                        if notification.channel() == CREDENTIALS_CHANNEL {
                            if let Ok(user_id) = notification.payload().parse::<Uuid>() {
                                credentials.forget_user(user_id);
                            }
                            continue;
                        }
                        match serde_json::from_str::<Event>(notification.payload()) {
                            Ok(event) => forward.forward(event),
                            Err(err) => tracing::warn!(error = %err, "ignoring a malformed event"),
                        }
                    }
                    Ok(None) => {
                        credentials.mark_unhealthy();
                        tracing::warn!("event listener lost its connection; reconnecting");
                    }
                    // The pool closes at shutdown: that is the end, not an outage.
                    Err(sqlx::Error::PoolClosed) => break,
                    Err(err) => {
                        credentials.mark_unhealthy();
                        // Pause so that an outage is not a busy loop.
                        tracing::warn!(error = %err, "event listener cannot reconnect; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        let heartbeat_pool = pool.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
            loop {
                ticker.tick().await;
                if heartbeat_pool.is_closed() {
                    break;
                }
                let sent = sqlx::query("select pg_notify($1, $2)")
                    .bind(CREDENTIALS_CHANNEL)
                    .bind(HEARTBEAT)
                    .execute(&heartbeat_pool)
                    .await;
                if let Err(err) = sent {
                    tracing::debug!(error = %err, "heartbeat not sent");
                }
            }
        });
        Ok(bus)
    }

    /// Every company's events (for this process's own caches and workers).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// `company`'s events only, in a buffer of its own.
    pub fn subscribe_company(&self, company: Uuid) -> broadcast::Receiver<Event> {
        let mut companies = lock(&self.companies);
        // Companies whose subscribers have all gone give their buffers back.
        companies.retain(|_, sender| sender.receiver_count() > 0);
        companies
            .entry(company)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    fn forward(&self, event: Event) {
        {
            let mut companies = lock(&self.companies);
            if let Some(sender) = companies.get(&event.company_id) {
                if sender.receiver_count() == 0 {
                    companies.remove(&event.company_id);
                } else {
                    drop(sender.send(event.clone()));
                }
            }
        }
        // No receivers is normal when nobody is subscribed.
        drop(self.sender.send(event));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
