//! The node's revocation cache (iam.md §4.5).
//!
//! Access tokens are verified without a database round trip, so a revoked session must be
//! learnt another way: every node polls the sessions, API keys and instance tokens revoked in
//! the last 16 minutes (an access token lives 15) at least every 2 seconds, and revocations made
//! on this node are recorded at once. A cache more than 10 seconds old is not trusted: the
//! caller then checks the database for each request. Newly learnt session revocations are
//! handed to a listener, which closes the affected websockets.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::sql_types::{Text, Timestamptz};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::Database;

/// How far back revocations matter: the access-token lifetime plus a margin.
const WINDOW: Duration = Duration::from_secs(16 * 60);
/// Poll period.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Older than this, the cache is not trusted.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// Kinds of revocable credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Revocable {
    /// A login session (and every access token naming it).
    Session,
    /// An API key.
    ApiKey,
    /// An instance token.
    InstanceToken,
}

/// What the cache knows about a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Revoked.
    Revoked,
    /// Not revoked as of a fresh poll.
    Live,
    /// The cache is stale: ask the database.
    Unknown,
}

#[derive(Default)]
struct Known {
    /// Revocations found by the last poll.
    polled: HashSet<(Revocable, Uuid)>,
    /// Revocations made on this node and not yet seen by a poll.
    local: HashSet<(Revocable, Uuid)>,
    refreshed_at: Option<Instant>,
}

/// Shared by every request of the node.
#[derive(Clone, Default)]
pub struct RevocationCache {
    inner: Arc<RwLock<Known>>,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

impl RevocationCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Known> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// What is known about `id`.
    pub fn verdict(&self, kind: Revocable, id: Uuid) -> Verdict {
        let known = self.read();
        if known.polled.contains(&(kind, id)) || known.local.contains(&(kind, id)) {
            return Verdict::Revoked;
        }
        match known.refreshed_at {
            Some(at) if at.elapsed() <= STALE_AFTER => Verdict::Live,
            _ => Verdict::Unknown,
        }
    }

    /// Records a revocation made on this node (visible at once here; other nodes poll it).
    pub fn record(&self, kind: Revocable, id: Uuid) {
        self.write().local.insert((kind, id));
    }

    /// Polls the database once; returns the ids (sessions, keys, tokens) newly seen as revoked.
    pub async fn refresh(&self, db: &Database) -> Result<Vec<Uuid>, crate::db::DbError> {
        let since = Utc::now() - chrono::Duration::from_std(WINDOW).unwrap_or_default();
        let mut conn = db.conn().await?;
        let rows: Vec<Row> = diesel::sql_query("SELECT kind, id FROM auth_revocations_since($1)")
            .bind::<Timestamptz, _>(since)
            .load(&mut conn)
            .await?;
        let revoked: HashSet<(Revocable, Uuid)> = rows
            .into_iter()
            .filter_map(|row| {
                let kind = match row.kind.as_str() {
                    "session" => Revocable::Session,
                    "api_key" => Revocable::ApiKey,
                    "instance_token" => Revocable::InstanceToken,
                    _ => return None,
                };
                Some((kind, row.id))
            })
            .collect();
        let mut known = self.write();
        let newly_revoked = revoked
            .iter()
            .filter(|entry| !known.polled.contains(entry))
            .map(|(_, id)| *id)
            .collect();
        known.local.retain(|entry| !revoked.contains(entry));
        known.polled = revoked;
        known.refreshed_at = Some(Instant::now());
        Ok(newly_revoked)
    }

    /// Polls forever; `on_revoked` receives the ids newly seen as revoked by a poll (so
    /// websockets authenticated by them close on every node; revocations recorded locally are
    /// announced there too, once the poll confirms them).
    pub async fn run(self, db: Database, on_revoked: impl Fn(Vec<Uuid>)) {
        let mut first = true;
        loop {
            match self.refresh(&db).await {
                // The first poll learns history, not news.
                Ok(ids) if !first && !ids.is_empty() => on_revoked(ids),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "revocation poll failed"),
            }
            first = false;
            tokio::time::sleep(REFRESH_EVERY).await;
        }
    }
}
