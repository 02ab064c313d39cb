//! The `whatpro-hub` command line (operations.md, "CLI"). Exit codes: 0 ok, 1 runtime
//! failure, 2 usage or configuration error. Passwords are never taken from argv.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::auth::password;
use crate::config::{self, Config};
use crate::db::audit::{self, AuditContext, AuditEvent};
use crate::db::{self, accounts, users, Database};
use crate::server::{self, StartOptions};
use crate::telemetry;

/// WhatPro Hub: realtime Kanban CRM, WhatsApp instances and team chat beside Chatwoot.
#[derive(Debug, Parser)]
#[command(name = "whatpro-hub", version)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bootstrap, apply pending migrations and listen.
    Serve {
        /// Do not apply pending migrations.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending migrations (or list them) and exit.
    Migrate {
        /// List applied and pending migrations instead.
        #[arg(long)]
        status: bool,
    },
    /// Create the super_admin (and the platform account if missing).
    CreateSuperAdmin {
        /// Email.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Set a new password for an existing super_admin with this email.
        #[arg(long)]
        reset_password: bool,
    },
    /// Administration.
    Admin {
        /// The admin action.
        #[command(subcommand)]
        action: AdminCommand,
    },
    /// The OpenAPI document.
    Openapi {
        /// The action.
        #[command(subcommand)]
        action: OpenapiCommand,
    },
}

/// `admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user in an account; a generated password is printed once.
    CreateUser {
        /// The account id.
        #[arg(long)]
        account: Uuid,
        /// Email.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// `admin`, `supervisor`, `agent` (`super_admin` only in the platform account).
        #[arg(long)]
        role: String,
        /// Read the password from stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Apply migrations, then the audit log's retention: create the coming monthly
    /// partitions and drop those older than `WHATPRO_AUDIT_RETENTION_DAYS`.
    Maintenance,
}

/// `openapi` subcommands.
#[derive(Debug, Subcommand)]
pub enum OpenapiCommand {
    /// Write the document (stdout by default). Needs no database or secrets.
    Dump {
        /// Write to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if let Some(Command::Openapi {
        action: OpenapiCommand::Dump { out },
    }) = &cli.command
    {
        return dump_openapi(out.as_deref());
    }
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("whatpro-hub: {e}");
            return config::EXIT_CODE;
        }
    };
    telemetry::init(config.log_format, &config.log_level);
    actix_rt::System::new().block_on(run(cli.command, config))
}

async fn run(command: Option<Command>, config: Config) -> i32 {
    match command.unwrap_or(Command::Serve { no_migrate: false }) {
        Command::Serve { no_migrate } => {
            let options = StartOptions {
                migrate: !no_migrate,
                ..StartOptions::default()
            };
            server::run(config, options).await
        }
        Command::Migrate { status } => {
            with_database(&config, |target| async move {
                if status {
                    let (applied, pending) = db::migration_status(&target).await?;
                    for version in applied {
                        println!("applied  {version}");
                    }
                    for version in pending {
                        println!("pending  {version}");
                    }
                } else {
                    let applied = db::run_migrations(&target).await?;
                    println!("applied {} migration(s)", applied.len());
                }
                Ok(())
            })
            .await
        }
        Command::CreateSuperAdmin {
            email,
            name,
            reset_password,
        } => {
            with_database(&config, |target| async move {
                create_super_admin(&target, &email, &name, reset_password).await
            })
            .await
        }
        Command::Admin {
            action:
                AdminCommand::CreateUser {
                    account,
                    email,
                    name,
                    role,
                    password_stdin,
                },
        } => {
            with_database(&config, |target| async move {
                let secret = if password_stdin {
                    Some(read_password(false)?)
                } else {
                    None
                };
                create_user(&target, account, &email, &name, &role, secret).await
            })
            .await
        }
        Command::Admin {
            action: AdminCommand::Maintenance,
        } => {
            let retention_days = config.audit_retention_days;
            with_database(&config, |target| async move {
                db::run_migrations(&target).await?;
                let report = crate::maintenance::run(&target, retention_days).await?;
                print!("{report}");
                Ok(())
            })
            .await
        }
        Command::Openapi { .. } => 0,
    }
}

/// A CLI failure: message and exit code.
struct CliError(String, i32);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string(), 1)
    }
}

fn usage(message: impl Into<String>) -> CliError {
    CliError(message.into(), 2)
}

/// Resolves the database (starting the embedded cluster if needed), applies migrations, runs
/// `job` with the owner URL, and stops the cluster again.
async fn with_database<F, Fut>(config: &Config, job: F) -> i32
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let mut target = match server::database_target(config, false).await {
        Ok(target) => target,
        Err(e) => {
            eprintln!("whatpro-hub: {e}");
            return 1;
        }
    };
    let result = job(target.owner_url.clone()).await;
    if let Some(cluster) = target.embedded.as_mut() {
        cluster.stop().await;
    }
    match result {
        Ok(()) => 0,
        Err(CliError(message, code)) => {
            eprintln!("whatpro-hub: {message}");
            code
        }
    }
}

fn read_password(prompt: bool) -> Result<String, CliError> {
    let password = if prompt && std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        return Err(usage("no password given on stdin"));
    }
    Ok(password)
}

async fn create_super_admin(
    owner_url: &str,
    email: &str,
    name: &str,
    reset_password: bool,
) -> Result<(), CliError> {
    let secret = read_password(true)?;
    password::check_policy(&secret, email).map_err(|e| usage(format!("password {e}")))?;
    db::run_migrations(owner_url).await?;
    let database = Database::connect(owner_url, 2)?;
    let hash = password::hash_blocking(secret)
        .await
        .map_err(|e| CliError(e.to_string(), 1))?;
    let (email, name) = (email.to_owned(), name.to_owned());
    let message = db::platform_tx(&database, db::PlatformScope::system(), |conn| {
        Box::pin(async move {
            let platform = match accounts::platform(conn).await? {
                Some(account) => account,
                None => {
                    accounts::insert(
                        conn,
                        &accounts::NewAccount {
                            id: Uuid::now_v7(),
                            name: crate::bootstrap::PLATFORM_ACCOUNT_NAME,
                            is_platform: true,
                            chatwoot_account_id: None,
                            locale: None,
                        },
                    )
                    .await?
                }
            };
            let existing = users::with_email(conn, &email)
                .await?
                .into_iter()
                .find(|(user, _)| user.account_id == platform.id);
            let system = AuditContext::system();
            match (existing, reset_password) {
                (Some((user, _)), true) if user.role == "super_admin" => {
                    users::set_password_hash(conn, user.id, &hash).await?;
                    db::sessions::revoke(
                        conn,
                        platform.id,
                        db::sessions::Revoke::AllOfUser {
                            user_id: user.id,
                            except: None,
                        },
                        "password_reset",
                    )
                    .await?;
                    audit::record(
                        conn,
                        &system,
                        AuditEvent::success(
                            Some(platform.id),
                            "user.password_changed",
                            "user",
                            user.id,
                        ),
                    )
                    .await?;
                    Ok(format!("password reset for super_admin {email}"))
                }
                (Some(_), _) => Err(usage(format!(
                    "a user with email {email} already exists in the platform account"
                ))),
                (None, _) => {
                    let user = users::insert(
                        conn,
                        &users::NewUser {
                            id: Uuid::now_v7(),
                            account_id: platform.id,
                            email: &email,
                            name: &name,
                            role: "super_admin",
                            password_hash: Some(&hash),
                        },
                    )
                    .await?;
                    audit::record(
                        conn,
                        &system,
                        AuditEvent::success(Some(platform.id), "user.created", "user", user.id)
                            .with_after(
                                serde_json::json!({ "email": email, "role": "super_admin" }),
                            ),
                    )
                    .await?;
                    Ok(format!(
                        "created super_admin {email} in the platform account {}",
                        platform.id
                    ))
                }
            }
        })
    })
    .await?;
    println!("{message}");
    Ok(())
}

async fn create_user(
    owner_url: &str,
    account_id: Uuid,
    email: &str,
    name: &str,
    role: &str,
    given_password: Option<String>,
) -> Result<(), CliError> {
    if !["super_admin", "admin", "supervisor", "agent"].contains(&role) {
        return Err(usage(
            "--role must be super_admin, admin, supervisor or agent",
        ));
    }
    if !(1..=100).contains(&name.chars().count()) {
        return Err(usage("--name must be 1-100 characters"));
    }
    let (secret, generated) = match given_password {
        Some(p) => (p, false),
        None => (password::generate(20), true),
    };
    password::check_policy(&secret, email).map_err(|e| usage(format!("password {e}")))?;
    db::run_migrations(owner_url).await?;
    let database = Database::connect(owner_url, 2)?;
    let hash = password::hash_blocking(secret.clone())
        .await
        .map_err(|e| CliError(e.to_string(), 1))?;
    let (email_owned, name_owned, role_owned) =
        (email.to_owned(), name.to_owned(), role.to_owned());
    let user = db::platform_tx(&database, db::PlatformScope::system(), |conn| {
        Box::pin(async move {
            let account = accounts::find(conn, account_id)
                .await?
                .ok_or_else(|| usage(format!("no account {account_id}")))?;
            if role_owned == "super_admin" && !account.is_platform {
                return Err(usage("super_admin is only allowed in the platform account"));
            }
            let created = users::insert(
                conn,
                &users::NewUser {
                    id: Uuid::now_v7(),
                    account_id,
                    email: &email_owned,
                    name: &name_owned,
                    role: &role_owned,
                    password_hash: Some(&hash),
                },
            )
            .await;
            let user = match created {
                Ok(user) => user,
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                )) => {
                    return Err(usage(format!(
                        "a user with email {email_owned} already exists in this account"
                    )))
                }
                Err(e) => return Err(e.into()),
            };
            audit::record(
                conn,
                &AuditContext::system(),
                AuditEvent::success(Some(account_id), "user.created", "user", user.id)
                    .with_after(serde_json::json!({ "email": email_owned, "role": role_owned })),
            )
            .await?;
            Ok(user)
        })
    })
    .await?;
    println!("created {role} {email} ({})", user.id);
    if generated {
        println!("password (shown once): {secret}");
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

fn dump_openapi(out: Option<&std::path::Path>) -> i32 {
    let document = crate::http::openapi::document_json();
    let written = match out {
        Some(path) => std::fs::write(path, document),
        None => writeln!(std::io::stdout(), "{document}"),
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("whatpro-hub: {e}");
            1
        }
    }
}
