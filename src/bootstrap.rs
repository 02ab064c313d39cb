//! First start (operations.md, "First start"; iam.md §4.2): with no account in the database,
//! create the platform account and a super_admin in one transaction, under an advisory lock so
//! two nodes starting at once create one. Later starts change nothing.

use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::auth::password;
use crate::config::Config;
use crate::db::audit::{self, AuditContext, AuditEvent};
use crate::db::{self, accounts, users, Database};
use crate::error::ApiError;

/// Name of the platform account.
pub const PLATFORM_ACCOUNT_NAME: &str = "Platform";

/// What the first start created.
#[derive(Debug)]
pub struct Bootstrapped {
    /// The platform account.
    pub account_id: Uuid,
    /// The super_admin's email.
    pub email: String,
    /// The generated password, to print once (None when WHATPRO_ADMIN_PASSWORD was given).
    pub generated_password: Option<String>,
}

/// Why the bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// `WHATPRO_ADMIN_PASSWORD` breaks the password policy.
    #[error("invalid configuration: WHATPRO_ADMIN_PASSWORD: {0}")]
    Policy(password::PolicyViolation),
    /// The database refused.
    #[error("bootstrap failed: {0}")]
    Database(#[from] ApiError),
}

/// Creates the platform account and super_admin if no account exists.
pub async fn first_start(
    db: &Database,
    config: &Config,
) -> Result<Option<Bootstrapped>, BootstrapError> {
    {
        let mut conn = db.conn().await.map_err(ApiError::from)?;
        if accounts::any_exists(&mut conn)
            .await
            .map_err(ApiError::from)?
        {
            return Ok(None);
        }
    }
    let (secret, generated) = match &config.admin_password {
        Some(given) => {
            password::check_policy(given, &config.admin_email).map_err(BootstrapError::Policy)?;
            (given.clone(), false)
        }
        None => (password::generate(20), true),
    };
    let hash = password::hash_blocking(secret.clone()).await?;
    let email = config.admin_email.clone();
    let created = db::platform_tx(db, db::PlatformScope::system(), |conn| {
        Box::pin(async move {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(db::BOOTSTRAP_LOCK)
                .execute(conn)
                .await?;
            if accounts::any_exists(conn).await? {
                return Ok::<_, ApiError>(None);
            }
            let account = accounts::insert(
                conn,
                &accounts::NewAccount {
                    id: Uuid::now_v7(),
                    name: PLATFORM_ACCOUNT_NAME,
                    is_platform: true,
                    chatwoot_account_id: None,
                    locale: None,
                },
            )
            .await?;
            let user = users::insert(
                conn,
                &users::NewUser {
                    id: Uuid::now_v7(),
                    account_id: account.id,
                    email: &email,
                    name: "Administrator",
                    role: "super_admin",
                    password_hash: Some(&hash),
                },
            )
            .await?;
            audit::record(
                conn,
                &AuditContext::system(),
                AuditEvent::success(None, "super_admin.bootstrapped", "user", user.id)
                    .with_after(serde_json::json!({ "email": email, "account_id": account.id })),
            )
            .await?;
            Ok(Some((account.id, email)))
        })
    })
    .await?;
    Ok(created.map(|(account_id, email)| Bootstrapped {
        account_id,
        email,
        generated_password: generated.then_some(secret),
    }))
}
