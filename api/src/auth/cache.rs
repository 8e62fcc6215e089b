//! A short-lived, in-process cache of resolved credentials (session tokens and API keys),
//! so an authenticated request usually needs no database round trip to learn who is asking.
//!
//! Correctness does not rest on expiry alone:
//! - PostgreSQL triggers (foundation migration) `pg_notify('obrol_credentials', user_id)`
//!   whenever a user's row, one of their sessions or one of their API keys changes in a way
//!   that matters (role, status, presence, name, two-factor, revocation). Every `obrol`
//!   process LISTENs and forgets that user's entries, so a revocation on one node takes
//!   effect on all nodes as soon as the notification arrives (milliseconds).
//! - The node making such a change also forgets the user locally before committing, so the
//!   same client's next request reads its own write.
//! - Entries live at most the configured lifetime ([`DEFAULT_TTL`]), and the session's own expiry is checked on every hit.
//! - A look-up only caches its result if no invalidation happened while it ran (an
//!   invalidation epoch), so a read that raced a revocation cannot re-insert the old state.
//! - While the listener is disconnected (notifications could be missed) the cache is off and
//!   emptied; it turns back on when a notification (at least the periodic heartbeat) arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Actor;

/// How long an entry may live by default (`OBROL_CREDENTIAL_CACHE_SECONDS`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
const CAPACITY: usize = 50_000;
/// With heartbeats every 5 s, this much silence means the listener is not hearing.
const SILENCE_LIMIT: Duration = Duration::from_secs(15);

struct Entry {
    actor: Actor,
    /// When the credential itself expires (sessions), checked on every hit.
    expires_at: Option<DateTime<Utc>>,
    fetched: Instant,
}

pub struct CredentialCache {
    entries: RwLock<HashMap<Vec<u8>, Entry>>,
    healthy: AtomicBool,
    /// When the listener last heard anything, in ms since `started`.
    heard_at_ms: AtomicU64,
    started: Instant,
    /// Bumped by every invalidation.
    epoch: AtomicU64,
    /// Zero turns caching off.
    ttl: Duration,
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

impl CredentialCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            healthy: AtomicBool::new(false),
            heard_at_ms: AtomicU64::new(0),
            started: Instant::now(),
            epoch: AtomicU64::new(0),
            ttl,
        }
    }

    /// Caching is allowed while the listener is connected and has heard something (at least
    /// a heartbeat) recently.
    fn usable(&self) -> bool {
        let heard = Duration::from_millis(self.heard_at_ms.load(Ordering::Acquire));
        self.healthy.load(Ordering::Acquire)
            && self.started.elapsed().saturating_sub(heard) < SILENCE_LIMIT
    }

    pub fn get(&self, token_hash: &[u8], now: DateTime<Utc>) -> Option<Actor> {
        if !self.usable() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(token_hash)?;
        let fresh =
            entry.fetched.elapsed() < self.ttl && entry.expires_at.is_none_or(|at| at > now);
        fresh.then(|| entry.actor.clone())
    }

    /// Read before a database look-up and hand to [`CredentialCache::put`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches a look-up's result unless an invalidation happened since `epoch` was read.
    pub fn put(
        &self,
        token_hash: Vec<u8>,
        actor: Actor,
        expires_at: Option<DateTime<Utc>>,
        epoch: u64,
    ) {
        if self.ttl.is_zero() || !self.usable() {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.retain(|_, entry| entry.fetched.elapsed() < self.ttl);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            token_hash,
            Entry {
                actor,
                expires_at,
                fetched: Instant::now(),
            },
        );
    }

    /// Drops every cached credential of `user_id`.
    pub fn forget_user(&self, user_id: Uuid) {
        if let Ok(mut entries) = self.entries.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            entries.retain(|_, entry| entry.actor.user.id != user_id);
        }
    }

    /// The listener heard a notification: caching may be used. Coming back from an outage (or
    /// a silence), anything cached or being looked up before is void: notifications may have
    /// been missed in between.
    pub fn mark_healthy(&self) {
        let was_usable = self.usable();
        self.healthy.store(true, Ordering::Release);
        self.heard_at_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Release);
        if !was_usable {
            if let Ok(mut entries) = self.entries.write() {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                entries.clear();
            }
        }
    }

    /// Notifications may be missed from now on: stop caching and forget everything.
    pub fn mark_unhealthy(&self) {
        self.healthy.store(false, Ordering::Release);
        if let Ok(mut entries) = self.entries.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Credential, Role};
    use crate::users::store::UserRow;

    fn actor(user_id: Uuid) -> Actor {
        let mut user = UserRow::example(Role::Staff);
        user.id = user_id;
        Actor {
            company_id: Uuid::nil(),
            user,
            role: Role::Staff,
            credential: Credential::Session {
                session_id: Uuid::nil(),
            },
        }
    }

    #[test]
    fn nothing_is_cached_until_the_listener_is_healthy() {
        let cache = CredentialCache::default();
        cache.put(vec![1], actor(Uuid::now_v7()), None, cache.epoch());
        assert!(cache.get(&[1], Utc::now()).is_none());
        cache.mark_healthy();
        cache.put(vec![1], actor(Uuid::now_v7()), None, cache.epoch());
        assert!(cache.get(&[1], Utc::now()).is_some());
        cache.mark_unhealthy();
        assert!(cache.get(&[1], Utc::now()).is_none());
    }

    #[test]
    fn a_look_up_begun_during_an_outage_is_not_cached_after_recovery() {
        let cache = CredentialCache::default();
        cache.mark_healthy();
        cache.mark_unhealthy();
        let during_outage = cache.epoch();
        cache.mark_healthy(); // reconnected; changes made meanwhile were never heard
        cache.put(vec![1], actor(Uuid::now_v7()), None, during_outage);
        assert!(cache.get(&[1], Utc::now()).is_none());
    }

    #[test]
    fn forgetting_a_user_drops_all_their_credentials_only() {
        let cache = CredentialCache::default();
        cache.mark_healthy();
        let (ana, budi) = (Uuid::now_v7(), Uuid::now_v7());
        cache.put(vec![1], actor(ana), None, cache.epoch());
        cache.put(vec![2], actor(ana), None, cache.epoch());
        cache.put(vec![3], actor(budi), None, cache.epoch());
        cache.forget_user(ana);
        assert!(cache.get(&[1], Utc::now()).is_none());
        assert!(cache.get(&[2], Utc::now()).is_none());
        assert!(cache.get(&[3], Utc::now()).is_some());
    }

    #[test]
    fn a_look_up_that_raced_an_invalidation_is_not_cached() {
        let cache = CredentialCache::default();
        cache.mark_healthy();
        let ana = Uuid::now_v7();
        let before = cache.epoch();
        cache.forget_user(ana); // a revocation lands while the look-up runs
        cache.put(vec![1], actor(ana), None, before);
        assert!(cache.get(&[1], Utc::now()).is_none());
    }

    #[test]
    fn an_expired_session_is_not_served_from_the_cache() {
        let cache = CredentialCache::default();
        cache.mark_healthy();
        let now = Utc::now();
        cache.put(
            vec![1],
            actor(Uuid::now_v7()),
            Some(now + chrono::Duration::seconds(1)),
            cache.epoch(),
        );
        assert!(cache.get(&[1], now).is_some());
        assert!(cache
            .get(&[1], now + chrono::Duration::seconds(2))
            .is_none());
    }
}
