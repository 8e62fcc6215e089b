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
//! all. `obrol_subscriber_reads_total` counts the reads that went to the database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{ConversationRow, MessageRow};
use crate::app::AppState;
use crate::error::ApiResult;

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

#[derive(Default)]
pub struct SharedReads {
    messages: Mutex<Recent<MessageRow>>,
    conversations: Mutex<Recent<ConversationRow>>,
}

impl SharedReads {
    /// Message `id` of `company`, read once for all subscribers.
    pub async fn message(&self, state: &AppState, company: Uuid, id: Uuid) -> Option<MessageRow> {
        let cell = lock(&self.messages).cell((company, id));
        read_once(cell, async {
            let mut tx = state.db.tenant(company).await?;
            let row = super::message_by_id(&mut tx, id).await?;
            tx.commit().await?;
            Ok(row)
        })
        .await
    }

    /// Conversation `id` of `company` as it is when read after message `after` was added,
    /// read once for all subscribers of that event.
    pub async fn conversation_after(
        &self,
        state: &AppState,
        company: Uuid,
        id: Uuid,
        after: Uuid,
    ) -> Option<ConversationRow> {
        let cell = lock(&self.conversations).cell((id, after));
        read_once(cell, async {
            let mut tx = state.db.tenant(company).await?;
            let row = super::by_id(&mut tx, id).await?;
            tx.commit().await?;
            Ok(row)
        })
        .await
    }
}

/// The cell's row, running `read` only if no subscriber has read it yet (a failed read
/// leaves the cell empty for the next one).
async fn read_once<T: Clone>(
    cell: Cell<T>,
    read: impl std::future::Future<Output = ApiResult<Option<T>>>,
) -> Option<T> {
    cell.get_or_try_init(|| async {
        metrics::counter!("obrol_subscriber_reads_total").increment(1);
        read.await.map_err(|_| Failed)
    })
    .await
    .ok()
    .cloned()
    .flatten()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
