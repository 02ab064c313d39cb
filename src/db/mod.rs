//! Database access: the pool, migrations, transactions, and one module per aggregate.
//!
//! Migrations run as the owner of the tables (the `DATABASE_URL` role). Every pooled
//! connection switches to [`APP_ROLE`], which owns nothing and cannot bypass row-level
//! security, and sets the statement and lock timeouts of operations.md.

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod audit_queries;
pub mod board_reports;
pub mod boards;
pub mod cards;
pub mod checklists;
pub mod embedded;
pub mod entitlements;
pub mod instance_tokens;
pub mod refresh_tokens;
pub mod schema;
pub mod sessions;
pub mod teams;
pub mod users;

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::BigInt;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::scoped_futures::{ScopedBoxFuture, ScopedFutureExt};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;
use uuid::Uuid;

/// The role the server's queries run as.
pub const APP_ROLE: &str = "whatpro_app";

/// The SQL migrations under `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Advisory lock keys (one per start-up job that must not run twice at once).
mod lock_keys {
    /// Running migrations.
    pub const MIGRATE: i64 = 0x5748_5052_4d49_4752; // "WHPRMIGR"
    /// First-start bootstrap.
    pub const BOOTSTRAP: i64 = 0x5748_5052_424f_4f54; // "WHPRBOOT"
}

pub use lock_keys::BOOTSTRAP as BOOTSTRAP_LOCK;

/// A pooled connection.
pub type Conn = Object<AsyncPgConnection>;

/// Database failures, before they are mapped to HTTP (see `error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time, or the server is unreachable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] DieselError),
    /// Migrations could not be applied or read.
    #[error("migrations failed: {0}")]
    Migration(String),
}

impl DbError {
    /// Whether this is a unique-constraint violation (a duplicate).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// The connection pool.
#[derive(Clone)]
pub struct Database {
    pool: Pool<AsyncPgConnection>,
}

impl Database {
    /// Builds a pool of `size` connections to `url`, each switched to [`APP_ROLE`].
    /// Connections are made lazily; call [`Database::ping`] to check the server.
    pub fn connect(url: &str, size: u32) -> Result<Self, DbError> {
        let mut config = ManagerConfig::default();
        config.custom_setup = Box::new(|url| setup_connection(url).boxed());
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(size as usize)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        Ok(Self { pool })
    }

    /// A connection from the pool.
    pub async fn conn(&self) -> Result<Conn, DbError> {
        self.pool
            .get()
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// `SELECT 1` within `deadline`.
    pub async fn ping(&self, deadline: Duration) -> Result<(), DbError> {
        let check = async {
            let mut conn = self.conn().await?;
            diesel::sql_query("SELECT 1").execute(&mut conn).await?;
            Ok::<_, DbError>(())
        };
        tokio::time::timeout(deadline, check)
            .await
            .map_err(|_| DbError::Unavailable("timed out".into()))?
    }

    /// Whether the newest embedded migration is applied.
    pub async fn migrations_current(&self) -> Result<bool, DbError> {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let Some(latest) = latest_embedded_version() else {
            return Ok(true);
        };
        let mut conn = self.conn().await?;
        let found: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM __diesel_schema_migrations WHERE version = $1",
        )
        .bind::<diesel::sql_types::Text, _>(latest)
        .get_result(&mut conn)
        .await?;
        Ok(found.n > 0)
    }

    /// Pool occupancy: (idle, in use, waiting).
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let status = self.pool.status();
        let in_use = status.size.saturating_sub(status.available);
        (status.available, in_use, status.waiting)
    }

    /// Closes the pool: idle connections are dropped, and no new ones are handed out.
    pub fn close(&self) {
        self.pool.close();
    }
}

async fn setup_connection(url: &str) -> diesel::ConnectionResult<AsyncPgConnection> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    conn.batch_execute(&format!(
        "SET ROLE {APP_ROLE}; SET statement_timeout = '10s'; SET lock_timeout = '5s'"
    ))
    .await
    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    Ok(conn)
}

fn latest_embedded_version() -> Option<String> {
    use diesel::migration::MigrationSource;
    let migrations: Vec<_> =
        MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).unwrap_or_default();
    migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .max()
}

/// Runs `job` with a synchronous diesel connection to `owner_url` on its own thread (diesel's
/// migration harness is synchronous), holding the migration advisory lock.
async fn with_migration_connection<T, F>(owner_url: &str, job: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut AsyncConnectionWrapper<AsyncPgConnection>) -> Result<T, DbError>
        + Send
        + 'static,
{
    let url = owner_url.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("migrations".into())
        .spawn(move || {
            let result = (|| {
                let mut conn =
                    <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(
                        &url,
                    )
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                diesel::RunQueryDsl::execute(
                    diesel::sql_query("SELECT pg_advisory_lock($1)")
                        .bind::<BigInt, _>(lock_keys::MIGRATE),
                    &mut conn,
                )?;
                let result = job(&mut conn);
                // The lock also ends with the connection; unlocking early lets others go on.
                let _ = diesel::RunQueryDsl::execute(
                    diesel::sql_query("SELECT pg_advisory_unlock($1)")
                        .bind::<BigInt, _>(lock_keys::MIGRATE),
                    &mut conn,
                );
                result
            })();
            let _ = tx.send(result);
        })
        .map_err(|e| DbError::Migration(e.to_string()))?;
    rx.await
        .map_err(|_| DbError::Migration("the migration thread panicked".into()))?
}

/// Applies pending migrations under an advisory lock (concurrent starts are safe) and returns
/// the versions applied.
pub async fn run_migrations(owner_url: &str) -> Result<Vec<String>, DbError> {
    with_migration_connection(owner_url, |conn| {
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(applied.iter().map(|v| v.to_string()).collect())
    })
    .await
}

/// Creates the audit log's monthly partitions for this month and the next three (as the
/// table owner; `admin maintenance` does the same and drops expired ones).
pub async fn ensure_audit_partitions(owner_url: &str) -> Result<(), DbError> {
    let mut conn = AsyncPgConnection::establish(owner_url)
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    diesel::sql_query("SELECT audit_log_ensure_partitions(current_date, 4)")
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Applied and pending migration versions.
pub async fn migration_status(owner_url: &str) -> Result<(Vec<String>, Vec<String>), DbError> {
    with_migration_connection(owner_url, |conn| {
        let applied = conn
            .applied_migrations()
            .map_err(|e| DbError::Migration(e.to_string()))?;
        let pending = conn
            .pending_migrations(MIGRATIONS)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok((
            applied.iter().map(|v| v.to_string()).collect(),
            pending
                .iter()
                .map(|m| m.name().version().to_string())
                .collect(),
        ))
    })
    .await
}

/// Proof that a transaction may see every tenant's rows: held by super_admin operations
/// (`Principal::platform_scope`) and by the system's own work (bootstrap, CLI, maintenance).
#[derive(Debug, Clone, Copy)]
pub struct PlatformScope(());

impl PlatformScope {
    /// The system's own work, never reachable from a request: bootstrap, CLI, maintenance.
    pub fn system() -> Self {
        PlatformScope(())
    }
}

/// Runs `f` in a transaction scoped to one tenant: row-level security shows `f` only the rows
/// of `account_id` (besides the account filter every query carries anyway). Every handler that
/// touches tenant data goes through here.
pub async fn tenant_tx<'a, R, E, F>(db: &Database, account_id: Uuid, f: F) -> Result<R, E>
where
    F: for<'r> FnOnce(&'r mut AsyncPgConnection) -> ScopedBoxFuture<'a, 'r, Result<R, E>>
        + Send
        + 'a,
    E: From<DieselError> + From<DbError> + Send + 'a,
    R: Send + 'a,
{
    scoped_tx(db, "app.account_id", account_id.to_string(), f).await
}

/// Runs `f` in a transaction that sees every tenant (see [`PlatformScope`]).
pub async fn platform_tx<'a, R, E, F>(db: &Database, _scope: PlatformScope, f: F) -> Result<R, E>
where
    F: for<'r> FnOnce(&'r mut AsyncPgConnection) -> ScopedBoxFuture<'a, 'r, Result<R, E>>
        + Send
        + 'a,
    E: From<DieselError> + From<DbError> + Send + 'a,
    R: Send + 'a,
{
    scoped_tx(db, "app.platform", "on".to_owned(), f).await
}

async fn scoped_tx<'a, R, E, F>(
    db: &Database,
    setting: &'static str,
    value: String,
    f: F,
) -> Result<R, E>
where
    F: for<'r> FnOnce(&'r mut AsyncPgConnection) -> ScopedBoxFuture<'a, 'r, Result<R, E>>
        + Send
        + 'a,
    E: From<DieselError> + From<DbError> + Send + 'a,
    R: Send + 'a,
{
    let mut pooled = db.conn().await?;
    let conn: &mut AsyncPgConnection = &mut pooled;
    conn.transaction(move |conn| {
        async move {
            // Transaction-local: the setting ends with the transaction, so a pooled
            // connection never carries one tenant's scope into the next request.
            diesel::sql_query("SELECT set_config($1, $2, true)")
                .bind::<diesel::sql_types::Text, _>(setting)
                .bind::<diesel::sql_types::Text, _>(value)
                .execute(conn)
                .await?;
            f(conn).await
        }
        .scope_boxed()
    })
    .await
}

/// Creates database `name` (optionally from `template`) through the maintenance connection
/// `admin_url`, unless it exists. Used by the embedded default and the test harness.
pub async fn ensure_database(
    admin_url: &str,
    name: &str,
    template: Option<&str>,
) -> Result<bool, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let mut conn = AsyncPgConnection::establish(admin_url)
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let exists: Found =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS found")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(&mut conn)
            .await?;
    if exists.found {
        return Ok(false);
    }
    let statement = match template {
        Some(template) => format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(name),
            quote_ident(template)
        ),
        None => format!("CREATE DATABASE {}", quote_ident(name)),
    };
    match diesel::sql_query(statement).execute(&mut conn).await {
        Ok(_) => Ok(true),
        // Another process created it at the same moment.
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
