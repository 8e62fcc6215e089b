//! Durable background jobs in PostgreSQL (docs/decisions/0004-jobs.md).
//!
//! A job is a row in `jobs`, inserted in the same transaction as the change that needs it,
//! so it exists exactly when that change committed. Workers on any number of `obrol`
//! processes claim due jobs with `FOR UPDATE SKIP LOCKED` (inside the `claim_job` function,
//! the one place that looks across companies) and hold a lease that a heartbeat extends. A
//! worker that dies stops extending its lease, and the job becomes due again: a restart in
//! the middle of work retries it (handlers are written to resume). Failures that may pass
//! are retried with exponential back-off up to the job's `max_attempts`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use sqlx::PgConnection;
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use crate::db::Db;

/// How long a claim lasts without a heartbeat, unless configured
/// (`OBROL_JOB_LEASE_SECONDS`); heartbeats come four times per lease.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often an idle worker looks for due jobs (it is also woken by local enqueues).
const POLL: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct Job {
    pub id: Uuid,
    pub company_id: Uuid,
    pub kind: String,
    pub payload: Value,
    /// This attempt's number, from 1.
    pub attempt: i32,
    pub max_attempts: i32,
}

impl Job {
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// What became of one attempt.
pub enum Outcome {
    /// Finished (or found nothing to do): the job is removed.
    Done,
    /// Failed for a reason that may pass (a network error): tried again later, unless this
    /// was the last attempt, in which case the handler's `give_up` runs.
    Retry(String),
}

pub trait Handler: Send + Sync + 'static {
    fn run(&self, job: Job) -> BoxFuture<'_, Outcome>;
    /// Called once when the last attempt failed with `Retry`.
    fn give_up(&self, job: Job, error: String) -> BoxFuture<'_, ()>;
}

/// Queues a job in the caller's transaction (tenant-scoped: RLS checks the company).
pub async fn enqueue(
    conn: &mut PgConnection,
    company_id: Uuid,
    kind: &str,
    payload: Value,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query("insert into jobs (id, company_id, kind, payload) values ($1, $2, $3, $4)")
        .bind(id)
        .bind(company_id)
        .bind(kind)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(id)
}

/// Queues a job that becomes due at `run_at` (a timer), in the caller's transaction.
pub async fn enqueue_at(
    conn: &mut PgConnection,
    company_id: Uuid,
    kind: &str,
    payload: Value,
    run_at: chrono::DateTime<chrono::Utc>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into jobs (id, company_id, kind, payload, run_at) values ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(company_id)
    .bind(kind)
    .bind(payload)
    .bind(run_at)
    .execute(conn)
    .await?;
    Ok(id)
}

/// Whether a job of this kind whose payload has `key` = `value` is queued or running.
pub async fn is_queued(
    conn: &mut PgConnection,
    kind: &str,
    key: &str,
    value: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from jobs where kind = $1 and payload ->> $2 = $3)")
        .bind(kind)
        .bind(key)
        .bind(value)
        .fetch_one(conn)
        .await
}

/// Removes queued jobs of these kinds whose payload has `key` = `value` (work made pointless
/// by a deletion or a newer version).
pub async fn cancel_matching(
    conn: &mut PgConnection,
    kinds: &[&str],
    key: &str,
    value: &str,
) -> sqlx::Result<u64> {
    let done = sqlx::query("delete from jobs where kind = any($1) and payload ->> $2 = $3")
        .bind(kinds)
        .bind(key)
        .bind(value)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Delay before attempt `attempt + 1`: 2, 4, 8 … seconds, at most ten minutes.
pub fn backoff(attempt: i32) -> Duration {
    let exp = attempt.clamp(1, 10) as u32;
    Duration::from_secs((1u64 << exp).min(600))
}

/// Runs jobs of some kinds with a fixed number of concurrent workers.
pub struct Workers {
    wake: Arc<Notify>,
}

impl Workers {
    pub fn start(
        db: Db,
        kinds: Vec<String>,
        handler: Arc<dyn Handler>,
        concurrency: usize,
        lease: Duration,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let node = format!("{}-{}", std::process::id(), Uuid::now_v7().simple());
        for n in 0..concurrency.max(1) {
            let worker = Worker {
                db: db.clone(),
                kinds: kinds.clone(),
                handler: handler.clone(),
                name: format!("{node}-{n}"),
                wake: wake.clone(),
                lease,
            };
            tokio::spawn(worker.run());
        }
        Self { wake }
    }

    /// Wakes idle workers (after this node queued something).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }
}

struct Worker {
    db: Db,
    kinds: Vec<String>,
    handler: Arc<dyn Handler>,
    name: String,
    wake: Arc<Notify>,
    lease: Duration,
}

type Claimed = (Uuid, Uuid, String, Value, i32, i32);

impl Worker {
    async fn run(self) {
        loop {
            if self.db.pool().is_closed() {
                break;
            }
            let claimed = sqlx::query_as::<_, Claimed>(
                "select id, company_id, kind, payload, attempts, max_attempts \
                 from claim_job($1, $2, make_interval(secs => $3))",
            )
            .bind(&self.kinds)
            .bind(&self.name)
            .bind(self.lease.as_secs_f64())
            .fetch_optional(self.db.pool())
            .await;
            match claimed {
                Ok(Some((id, company_id, kind, payload, attempt, max_attempts))) => {
                    let job = Job {
                        id,
                        company_id,
                        kind,
                        payload,
                        attempt,
                        max_attempts,
                    };
                    self.work(job).await;
                }
                Ok(None) => {
                    let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
                }
                Err(sqlx::Error::PoolClosed) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot claim jobs; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn work(&self, job: Job) {
        let heartbeat = {
            let db = self.db.clone();
            let (id, company, name, lease) =
                (job.id, job.company_id, self.name.clone(), self.lease);
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(lease / 4);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    if let Err(err) = extend_lease(&db, company, id, &name, lease).await {
                        tracing::warn!(error = %err, job = %id, "lease not extended");
                    }
                }
            })
        };
        let span =
            tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempt);
        let outcome = self.handler.run(job.clone()).instrument(span).await;
        heartbeat.abort();
        let finished = match outcome {
            Outcome::Done => self.finish(&job, None).await,
            Outcome::Retry(error) if job.is_last_attempt() => {
                tracing::warn!(%error, "job failed for the last time");
                self.handler.give_up(job.clone(), error).await;
                self.finish(&job, None).await
            }
            Outcome::Retry(error) => {
                tracing::info!(%error, "job will be retried");
                self.finish(&job, Some(error)).await
            }
        };
        if let Err(err) = finished {
            // The lease runs out and the job is retried; handlers tolerate that.
            tracing::warn!(error = %err, "job outcome not recorded");
        }
    }

    /// Removes the job, or (with an error) releases it to run again after the back-off.
    async fn finish(&self, job: &Job, retry: Option<String>) -> sqlx::Result<()> {
        let mut tx = self.db.tenant(job.company_id).await?;
        match retry {
            None => {
                sqlx::query("delete from jobs where id = $1")
                    .bind(job.id)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(error) => {
                let error: String = error.chars().take(2000).collect();
                sqlx::query(
                    "update jobs set locked_by = null, locked_until = null, last_error = $2, \
                     run_at = now() + make_interval(secs => $3) where id = $1",
                )
                .bind(job.id)
                .bind(error)
                .bind(backoff(job.attempt).as_secs_f64())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await
    }
}

async fn extend_lease(
    db: &Db,
    company_id: Uuid,
    id: Uuid,
    worker: &str,
    lease: Duration,
) -> sqlx::Result<()> {
    let mut tx = db.tenant(company_id).await?;
    sqlx::query(
        "update jobs set locked_until = now() + make_interval(secs => $3) \
         where id = $1 and locked_by = $2",
    )
    .bind(id)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(600));
    }
}
