//! Reads shared by every subscriber on this node. A new message is one event for all of a
//! company's subscribers; each of them used to read the message (and its conversation) in
//! its own transaction, so ten agents online meant ten reads per message. Now the first
//! subscriber to need a row reads it and the others wait for that read and take its result.
//!
//! Keys name one event: a message by its id, a conversation as it was after a given message
//! (a conversation row changes with every message, so it is never cached by its own id).
//! Rows are read under the event's company, as before; who may see them is checked by each
//! subscriber from the event's scope and the row, as before. Only the most recent
//! `CAPACITY` keys are kept: subscribers read an event soon after it is published, or not at
//! all. `obrol_subscriber_reads_total` counts the rows read from the database.
//!
//! The reads themselves are batched: the rows wanted while a read is under way are read
//! together by the next one (one statement per company), so that a busy inbox costs its
//! subscribers a few reads a second rather than one per message.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sqlx::postgres::PgRow;
use tokio::sync::{mpsc, oneshot, OnceCell};
use uuid::Uuid;

use super::{ConversationRow, MessageRow, CONVERSATION_COLUMNS, MESSAGE_COLUMNS};
use crate::db::Db;

const CAPACITY: usize = 8192;

type Cell<T> = Arc<OnceCell<Option<T>>>;

/// A read that failed (the database): not cached, so the next subscriber tries again.
struct Failed;

struct Recent<T> {
    cells: HashMap<(Uuid, Uuid), Cell<T>>,
    order: VecDeque<(Uuid, Uuid)>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Self {
            cells: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<T> Recent<T> {
    fn cell(&mut self, key: (Uuid, Uuid)) -> Cell<T> {
        if let Some(cell) = self.cells.get(&key) {
            return cell.clone();
        }
        if self.order.len() >= CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.cells.remove(&oldest);
            }
        }
        let cell: Cell<T> = Arc::default();
        self.cells.insert(key, cell.clone());
        self.order.push_back(key);
        cell
    }
}

pub struct SharedReads {
    messages: Mutex<Recent<MessageRow>>,
    conversations: Mutex<Recent<ConversationRow>>,
    message_reader: Reader<MessageRow>,
    conversation_reader: Reader<ConversationRow>,
}

impl SharedReads {
    /// Starts the readers (on the current Tokio runtime).
    pub fn start(db: &Db) -> Self {
        Self {
            messages: Mutex::default(),
            conversations: Mutex::default(),
            message_reader: Reader::start(
                db.clone(),
                format!("select {MESSAGE_COLUMNS} from messages m where m.id = any($1)"),
            ),
            conversation_reader: Reader::start(
                db.clone(),
                format!("select {CONVERSATION_COLUMNS} from conversations c where c.id = any($1)"),
            ),
        }
    }

    /// Message `id` of `company`, read once for all subscribers.
    pub async fn message(&self, company: Uuid, id: Uuid) -> Option<MessageRow> {
        let cell = lock(&self.messages).cell((company, id));
        read_once(cell, self.message_reader.read(company, id)).await
    }

    /// Conversation `id` of `company` as it is when read after message `after` was added,
    /// read once for all subscribers of that event.
    pub async fn conversation_after(
        &self,
        company: Uuid,
        id: Uuid,
        after: Uuid,
    ) -> Option<ConversationRow> {
        let cell = lock(&self.conversations).cell((id, after));
        read_once(cell, self.conversation_reader.read(company, id)).await
    }
}

/// The cell's row, running `read` only if no subscriber has read it yet (a failed read
/// leaves the cell empty for the next one).
async fn read_once<T: Clone>(
    cell: Cell<T>,
    read: impl std::future::Future<Output = Result<Option<T>, Failed>>,
) -> Option<T> {
    cell.get_or_try_init(|| read).await.ok().cloned().flatten()
}

/// A row with an id, read by id in batches.
trait Keyed: for<'r> sqlx::FromRow<'r, PgRow> + Clone + Send + Unpin + 'static {
    fn key(&self) -> Uuid;
}

impl Keyed for MessageRow {
    fn key(&self) -> Uuid {
        self.id
    }
}

impl Keyed for ConversationRow {
    fn key(&self) -> Uuid {
        self.id
    }
}

/// Rows read together at most (a statement with this many ids).
const MAX_READ: usize = 512;

/// A row wanted by the next batch.
struct Wanted<T> {
    company: Uuid,
    id: Uuid,
    answer: oneshot::Sender<Result<Option<T>, Failed>>,
}

/// Reads rows of one kind by id: whatever is wanted while a read runs goes in the next.
struct Reader<T> {
    queue: mpsc::UnboundedSender<Wanted<T>>,
}

impl<T: Keyed> Reader<T> {
    /// `sql` selects the rows whose ids are in the array `$1`.
    fn start(db: Db, sql: String) -> Self {
        let (queue, mut wanted) = mpsc::unbounded_channel::<Wanted<T>>();
        tokio::spawn(async move {
            while let Some(first) = wanted.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_READ {
                    match wanted.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                read_batch(&db, &sql, batch).await;
            }
        });
        Reader { queue }
    }

    async fn read(&self, company: Uuid, id: Uuid) -> Result<Option<T>, Failed> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Wanted {
                company,
                id,
                answer,
            })
            .map_err(|_| Failed)?;
        answered.await.map_err(|_| Failed)?
    }
}

/// Reads a batch, one statement per company (under its row-level security, the companies
/// side by side), and answers everyone who wanted a row of it.
async fn read_batch<T: Keyed>(db: &Db, sql: &str, batch: Vec<Wanted<T>>) {
    let mut by_company: HashMap<Uuid, Vec<Wanted<T>>> = HashMap::new();
    for wanted in batch {
        by_company.entry(wanted.company).or_default().push(wanted);
    }
    futures_util::future::join_all(
        by_company
            .into_iter()
            .map(|(company, wanted)| read_company(db, sql, company, wanted)),
    )
    .await;
}

async fn read_company<T: Keyed>(db: &Db, sql: &str, company: Uuid, wanted: Vec<Wanted<T>>) {
    let mut ids: Vec<Uuid> = wanted.iter().map(|w| w.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows: sqlx::Result<Vec<T>> = async {
        let mut tx = db.tenant(company).await?;
        let rows = sqlx::query_as(sql).bind(&ids).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }
    .await;
    match rows {
        Ok(rows) => {
            metrics::counter!("obrol_subscriber_reads_total").increment(ids.len() as u64);
            let rows: HashMap<Uuid, T> = rows.into_iter().map(|r| (r.key(), r)).collect();
            for wanted in wanted {
                let _ = wanted.answer.send(Ok(rows.get(&wanted.id).cloned()));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "reading rows for subscribers");
            for wanted in wanted {
                let _ = wanted.answer.send(Err(Failed));
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
