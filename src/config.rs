//! Process configuration: every environment variable of operations.md ("Configuration"),
//! parsed and validated once at start into one typed [`Config`].
//!
//! This module owns:
//! - the parsing and validation rules of each variable, including the production refusals
//!   (an unsafe production setting is a [`ConfigError`], and the CLI exits with
//!   [`EXIT_CODE`] 2);
//! - reading `./.env` in development (never in production) without touching the process
//!   environment;
//! - creating `DATA_DIR` (0700, checked writable) and, in development only, the secrets made
//!   once in `DATA_DIR/secrets` (`jwt_secret`, `encryption_key`; directory 0700, files 0600)
//!   and reused on every later start;
//! - the non-environment tunables of [`Tuning`], which tests set programmatically.
//!
//! Error messages name the variable and never contain its value, and `Debug` of [`Config`]
//! prints secrets as `********`.
//!
//! Entry points: [`load`] for the real process, [`from_lookup`] (pure) for tests, and
//! [`ensure_dev_secrets`] / [`ensure_data_dir`] for the disk side of [`load`].

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, STANDARD_NO_PAD,
};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ipnet::IpNet;
use rand::RngCore as _;
use url::Url;

/// Process exit code for a usage or configuration error (operations.md, "CLI").
pub const EXIT_CODE: i32 = 2;

/// What `Debug` prints in place of a secret.
const REDACTED: &str = "********";

/// Every variable this module reads, in the order of the operations.md table.
const VARIABLES: &[&str] = &[
    "APP_ENV",
    "BIND",
    "PORT",
    "PUBLIC_URL",
    "DATABASE_URL",
    "DATABASE_POOL_SIZE",
    "DATA_DIR",
    "JWT_SECRET",
    "ENCRYPTION_KEY",
    "ENCRYPTION_KEY_PREVIOUS",
    "REDIS_URL",
    "CHATWOOT_URL",
    "CORS_ORIGINS",
    "TRUSTED_PROXIES",
    "RATE_LIMIT_ENABLED",
    "RATE_LIMIT_ANON_PER_MIN",
    "RATE_LIMIT_USER_PER_MIN",
    "RATE_LIMIT_LOGIN_PER_MIN",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "METRICS_TOKEN",
    "METRICS_BIND",
    "REQUEST_TIMEOUT_SECS",
    "SHUTDOWN_GRACE_SECS",
    "CHATWOOT_SYNC_INTERVAL_SECS",
    "PROVIDER_HEALTH_INTERVAL_SECS",
    "PROVIDER_SEND_PER_MIN",
    "WS_MAX_SESSIONS_PER_NODE",
    "CHAT_UPLOAD_MAX_BYTES",
    "ASAAS_BASE_URL",
    "ASAAS_API_KEY",
    "ASAAS_WEBHOOK_TOKEN",
    "BILLING_GRACE_DAYS",
    "ASAAS_TIMEOUT_SECS",
    "OUTBOUND_ALLOW_CIDRS",
    "WHATPRO_ADMIN_EMAIL",
    "WHATPRO_ADMIN_PASSWORD",
    "JWT_ISSUER",
    "CHATWOOT_SSO_CREATE_ACCOUNTS",
    "AUDIT_RETENTION_DAYS",
    "TEST_DATABASE_URL",
];

/// Secrets known from tutorials and templates, compared case-insensitively with `JWT_SECRET`.
const KNOWN_PLACEHOLDERS: &[&str] = &[
    "changeme",
    "secret",
    "password",
    "your-secret-key",
    "your_secret_key",
    "your-secret",
    "change-me-in-production",
    "change_me_in_production",
    "jwt_secret",
    "jwt-secret",
    "jwtsecret",
    "mysecret",
    "supersecret",
    "your-256-bit-secret",
    "your-jwt-secret",
    "your_jwt_secret",
    "super-secret-jwt-token-with-at-least-32-characters-long",
    "your-super-secret-jwt-token-with-at-least-32-characters-long",
];

/// Fragments that mark a `JWT_SECRET` as a placeholder wherever they appear.
const PLACEHOLDER_FRAGMENTS: &[&str] = &["changeme", "change-me", "change_me", "placeholder"];

/// Base64 (standard alphabet) accepting padded and unpadded input.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A configuration variable that is missing, malformed or unsafe.
///
/// Its `Display` is `invalid configuration: {VARIABLE}: {reason}`; the reason never contains
/// the variable's value. The CLI exits with [`ConfigError::EXIT_CODE`] (2) on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}: {reason}")]
pub struct ConfigError {
    /// The variable's name, e.g. `JWT_SECRET` (`.env` for an unreadable `./.env` file).
    pub variable: &'static str,
    /// Why it was refused; never contains the value.
    pub reason: String,
}

impl ConfigError {
    /// Process exit code for a configuration error (operations.md, "CLI").
    pub const EXIT_CODE: i32 = EXIT_CODE;

    /// A new error for `variable`; `reason` must not contain the value.
    pub fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
        }
    }
}

/// `APP_ENV`: development (safe defaults, dev conveniences) or production (strict rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AppEnv {
    /// `development` (the default).
    #[default]
    Development,
    /// `production`.
    Production,
}

impl AppEnv {
    /// The variable's spelling: `development` or `production`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Production => "production",
        }
    }
}

impl fmt::Display for AppEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `LOG_FORMAT`: one JSON object per line, or human-readable lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// `json` (the production default).
    Json,
    /// `pretty` (the development default).
    Pretty,
}

impl LogFormat {
    /// The variable's spelling: `json` or `pretty`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tunables that are **not** environment variables: fixed by the spec in production, set
/// programmatically by tests (e.g. a short heartbeat) through `config.tuning`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Lifetime of an access token (default 15 min).
    pub access_token_ttl: Duration,
    /// Interval between websocket pings (default 20 s).
    pub ws_heartbeat_interval: Duration,
    /// Pongs a websocket may miss in a row before it is closed (default 2).
    pub ws_missed_pongs_allowed: u32,
    /// Frames queued for one websocket before it is a slow consumer (default 1024).
    pub ws_outbound_max_frames: usize,
    /// Bytes queued for one websocket before it is a slow consumer (default 4 MiB).
    pub ws_outbound_max_bytes: usize,
    /// Idle time after which a tenant's actors stop (default 5 min).
    pub tenant_idle_timeout: Duration,
    /// How often tenant supervisors flush usage counters (default 60 s).
    pub usage_flush_interval: Duration,
    /// How often a tenant's SLA timer checks its boards (default 60 s).
    pub sla_check_interval: Duration,
    /// How long a user stays online after their last session closes (default 10 s).
    pub presence_grace: Duration,
    /// actix-web worker threads (default: the number of CPUs, at least 1).
    pub http_workers: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            ws_heartbeat_interval: Duration::from_secs(20),
            ws_missed_pongs_allowed: 2,
            ws_outbound_max_frames: 1024,
            ws_outbound_max_bytes: 4 * 1024 * 1024,
            tenant_idle_timeout: Duration::from_secs(5 * 60),
            usage_flush_interval: Duration::from_secs(60),
            sla_check_interval: Duration::from_secs(60),
            presence_grace: Duration::from_secs(10),
            http_workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .max(1),
        }
    }
}

/// The validated configuration, one field per variable of operations.md.
///
/// `Debug` is written by hand and prints secrets (`jwt_secret`, the encryption keys,
/// `database_url`, `redis_url`, `metrics_token`, the Asaas credentials, `admin_password`,
/// `test_database_url`) as `********`.
///
/// In development, [`from_lookup`] leaves `jwt_secret` empty and `encryption_key` all zero
/// when the variables are unset; [`ensure_dev_secrets`] (called by [`load`]) fills them from
/// `DATA_DIR/secrets`. [`Config::secrets_ready`] tells whether that has happened.
#[derive(Clone)]
pub struct Config {
    /// `APP_ENV`.
    pub app_env: AppEnv,
    /// `BIND`: listen address (default `127.0.0.1`, production `0.0.0.0`).
    pub bind: IpAddr,
    /// `PORT`: listen port, 1–65535 (default 3000).
    pub port: u16,
    /// `PUBLIC_URL`: the external origin, an http(s) URL with path `/` (default
    /// `http://127.0.0.1:3000`); https in production. See [`Config::public_origin`].
    pub public_url: Url,
    /// `DATABASE_URL` (secret): `postgres://`/`postgresql://`; `None` means embedded PostgreSQL
    /// in `DATA_DIR/pg`.
    pub database_url: Option<String>,
    /// `DATABASE_POOL_SIZE`: 1–512 (default 16).
    pub database_pool_size: u32,
    /// `DATA_DIR` (default `./data`): holds `pg/`, `secrets/` and `attachments/`.
    pub data_dir: PathBuf,
    /// `JWT_SECRET` (secret): the HMAC key of access tokens, ≥ 32 bytes (the variable's UTF-8
    /// bytes). Empty until [`ensure_dev_secrets`] ran when unset in development.
    pub jwt_secret: Vec<u8>,
    /// `ENCRYPTION_KEY` (secret): 32 bytes for encrypting stored provider/Chatwoot secrets.
    /// All zero until [`ensure_dev_secrets`] ran when unset in development.
    pub encryption_key: [u8; 32],
    /// `ENCRYPTION_KEY_PREVIOUS` (secret): decrypt-only key during a rotation.
    pub encryption_key_previous: Option<[u8; 32]>,
    /// `REDIS_URL` (secret, may hold a password): `redis://` or `rediss://`; `None` is single
    /// node.
    pub redis_url: Option<String>,
    /// `CHATWOOT_URL`: a Chatwoot origin (path `/`), default for new accounts and SSO.
    pub chatwoot_url: Option<Url>,
    /// `CORS_ORIGINS`: exact origins `scheme://host[:port]`, lower-cased, without trailing
    /// slash or default port. In production it always includes the `PUBLIC_URL` origin.
    pub cors_origins: Vec<String>,
    /// `*` was listed in `CORS_ORIGINS` (development only): any origin, never credentials.
    pub cors_allow_any: bool,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed (a bare IP is /32, /128).
    pub trusted_proxies: Vec<IpNet>,
    /// `RATE_LIMIT_ENABLED` (default true; false only in development).
    pub rate_limit_enabled: bool,
    /// `RATE_LIMIT_ANON_PER_MIN`: per client IP (default 100).
    pub rate_limit_anon_per_min: u32,
    /// `RATE_LIMIT_USER_PER_MIN`: per user (default 1000).
    pub rate_limit_user_per_min: u32,
    /// `RATE_LIMIT_LOGIN_PER_MIN`: login, SSO, refresh per IP and per email (default 10).
    pub rate_limit_login_per_min: u32,
    /// `LOG_FORMAT` (default pretty, production json).
    pub log_format: LogFormat,
    /// `LOG_LEVEL`: a tracing `EnvFilter` directive (default `info`), validated by telemetry.
    pub log_level: String,
    /// `METRICS_TOKEN` (secret): bearer token for `/metrics` and `/health/deep`, ≥ 32 chars.
    pub metrics_token: Option<String>,
    /// `METRICS_BIND`: a metrics-only listener.
    pub metrics_bind: Option<SocketAddr>,
    /// `REQUEST_TIMEOUT_SECS`: handler deadline, 1–300 s (default 30).
    pub request_timeout: Duration,
    /// `SHUTDOWN_GRACE_SECS`: graceful shutdown budget, 1–300 s (default 30).
    pub shutdown_grace: Duration,
    /// `CHATWOOT_SYNC_INTERVAL_SECS`: 60–86 400 s (default 300).
    pub chatwoot_sync_interval: Duration,
    /// `PROVIDER_HEALTH_INTERVAL_SECS`: 15–3600 s (default 60).
    pub provider_health_interval: Duration,
    /// `PROVIDER_SEND_PER_MIN`: send-text per instance, 1–1000 (default 30).
    pub provider_send_per_min: u32,
    /// `WS_MAX_SESSIONS_PER_NODE`: ≥ 1 (default 100 000).
    pub ws_max_sessions_per_node: usize,
    /// `CHAT_UPLOAD_MAX_BYTES`: ≥ 1 (default 26 214 400).
    pub chat_upload_max_bytes: u64,
    /// `ASAAS_BASE_URL`: http(s) URL whose path has no trailing slash (default
    /// `https://api.asaas.com/v3`).
    pub asaas_base_url: Url,
    /// `ASAAS_API_KEY` (secret).
    pub asaas_api_key: Option<String>,
    /// `ASAAS_WEBHOOK_TOKEN` (secret), ≥ 32 chars.
    pub asaas_webhook_token: Option<String>,
    /// `BILLING_GRACE_DAYS`: 0–90 (default 7).
    pub billing_grace_days: u32,
    /// `ASAAS_TIMEOUT_SECS`: per Asaas call, 1–120 s (default 10).
    pub asaas_timeout: Duration,
    /// `OUTBOUND_ALLOW_CIDRS`: private destinations outbound calls may reach (development
    /// default: loopback and private ranges; production default empty, never link-local).
    pub outbound_allow_cidrs: Vec<IpNet>,
    /// `WHATPRO_ADMIN_EMAIL`: first super_admin (default `admin@localhost`).
    pub admin_email: String,
    /// `WHATPRO_ADMIN_PASSWORD` (secret): 12–128 chars; the full policy is the bootstrap's.
    pub admin_password: Option<String>,
    /// `JWT_ISSUER`: 1–100 chars (default `whatpro-hub`).
    pub jwt_issuer: String,
    /// `CHATWOOT_SSO_CREATE_ACCOUNTS` (default true).
    pub chatwoot_sso_create_accounts: bool,
    /// `AUDIT_RETENTION_DAYS`: 365–36 500 (default 1825).
    pub audit_retention_days: u32,
    /// `TEST_DATABASE_URL` (secret): read by the test harness only; the server ignores it.
    pub test_database_url: Option<String>,
    /// Non-environment tunables (see [`Tuning`]).
    pub tuning: Tuning,
}

impl Config {
    /// Same as the module's [`from_lookup`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        from_lookup(lookup)
    }

    /// Same as the module's [`load`].
    pub fn load() -> Result<Config, ConfigError> {
        load()
    }

    /// Same as the module's [`ensure_dev_secrets`].
    pub fn ensure_dev_secrets(&mut self) -> Result<(), ConfigError> {
        ensure_dev_secrets(self)
    }

    /// `APP_ENV=production`.
    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }

    /// `APP_ENV=development`.
    pub fn is_development(&self) -> bool {
        self.app_env == AppEnv::Development
    }

    /// The `PUBLIC_URL` origin, `scheme://host[:port]` without trailing slash (for CSP, CORS,
    /// websocket Origin checks and building webhook URLs: `format!("{}{path}", ...)`).
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// `PUBLIC_URL` is https (then `Strict-Transport-Security` and secure cookies apply).
    pub fn public_is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// `BIND:PORT` of the main listener.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// Billing is on only when both `ASAAS_API_KEY` and `ASAAS_WEBHOOK_TOKEN` are set.
    pub fn billing_enabled(&self) -> bool {
        self.asaas_api_key.is_some() && self.asaas_webhook_token.is_some()
    }

    /// No `DATABASE_URL`: the embedded PostgreSQL in [`Config::pg_dir`] is used.
    pub fn uses_embedded_database(&self) -> bool {
        self.database_url.is_none()
    }

    /// `DATA_DIR/pg`, the embedded PostgreSQL cluster.
    pub fn pg_dir(&self) -> PathBuf {
        self.data_dir.join("pg")
    }

    /// `DATA_DIR/secrets`, the development secrets.
    pub fn secrets_dir(&self) -> PathBuf {
        self.data_dir.join("secrets")
    }

    /// `DATA_DIR/attachments`, chat attachments (chat.md).
    pub fn attachments_dir(&self) -> PathBuf {
        self.data_dir.join("attachments")
    }

    /// `jwt_secret` and `encryption_key` are set (always true after [`load`]).
    pub fn secrets_ready(&self) -> bool {
        !self.jwt_secret.is_empty() && self.encryption_key != [0u8; 32]
    }
}

/// Prints `********` for a secret that is set.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Prints `********` for a set secret, `<unset>` for an empty one.
struct RedactedOrUnset(bool);

impl fmt::Debug for RedactedOrUnset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { REDACTED } else { "<unset>" })
    }
}

fn redact<T>(value: &Option<T>) -> Option<Redacted> {
    value.as_ref().map(|_| Redacted)
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("app_env", &self.app_env)
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("public_url", &self.public_url.as_str())
            .field("database_url", &redact(&self.database_url))
            .field("database_pool_size", &self.database_pool_size)
            .field("data_dir", &self.data_dir)
            .field("jwt_secret", &RedactedOrUnset(!self.jwt_secret.is_empty()))
            .field(
                "encryption_key",
                &RedactedOrUnset(self.encryption_key != [0u8; 32]),
            )
            .field(
                "encryption_key_previous",
                &redact(&self.encryption_key_previous),
            )
            .field("redis_url", &redact(&self.redis_url))
            .field("chatwoot_url", &self.chatwoot_url.as_ref().map(Url::as_str))
            .field("cors_origins", &self.cors_origins)
            .field("cors_allow_any", &self.cors_allow_any)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("rate_limit_enabled", &self.rate_limit_enabled)
            .field("rate_limit_anon_per_min", &self.rate_limit_anon_per_min)
            .field("rate_limit_user_per_min", &self.rate_limit_user_per_min)
            .field("rate_limit_login_per_min", &self.rate_limit_login_per_min)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("metrics_token", &redact(&self.metrics_token))
            .field("metrics_bind", &self.metrics_bind)
            .field("request_timeout", &self.request_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("chatwoot_sync_interval", &self.chatwoot_sync_interval)
            .field("provider_health_interval", &self.provider_health_interval)
            .field("provider_send_per_min", &self.provider_send_per_min)
            .field("ws_max_sessions_per_node", &self.ws_max_sessions_per_node)
            .field("chat_upload_max_bytes", &self.chat_upload_max_bytes)
            .field("asaas_base_url", &self.asaas_base_url.as_str())
            .field("asaas_api_key", &redact(&self.asaas_api_key))
            .field("asaas_webhook_token", &redact(&self.asaas_webhook_token))
            .field("billing_grace_days", &self.billing_grace_days)
            .field("asaas_timeout", &self.asaas_timeout)
            .field("outbound_allow_cidrs", &self.outbound_allow_cidrs)
            .field("admin_email", &self.admin_email)
            .field("admin_password", &redact(&self.admin_password))
            .field("jwt_issuer", &self.jwt_issuer)
            .field(
                "chatwoot_sso_create_accounts",
                &self.chatwoot_sso_create_accounts,
            )
            .field("audit_retention_days", &self.audit_retention_days)
            .field("test_database_url", &redact(&self.test_database_url))
            .field("tuning", &self.tuning)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses and validates the configuration from `lookup` (a variable name → its value), with
/// no side effects: no `.env`, no disk, no process environment.
///
/// Values are trimmed; an empty (or blank) value counts as unset. In development an unset
/// `JWT_SECRET` / `ENCRYPTION_KEY` is left for [`ensure_dev_secrets`] (`jwt_secret` empty,
/// `encryption_key` all zero); in production both are required. The first invalid variable,
/// in the order of the operations.md table, is reported.
pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let get = |name: &str| -> Option<String> {
        lookup(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };

    let app_env = match get("APP_ENV") {
        None => AppEnv::Development,
        Some(v) if v.eq_ignore_ascii_case("development") => AppEnv::Development,
        Some(v) if v.eq_ignore_ascii_case("production") => AppEnv::Production,
        Some(_) => {
            return Err(ConfigError::new(
                "APP_ENV",
                "must be `development` or `production`",
            ))
        }
    };
    let production = app_env == AppEnv::Production;

    let bind = match get("BIND") {
        None if production => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(v) => v
            .parse::<IpAddr>()
            .map_err(|_| ConfigError::new("BIND", "must be an IP address"))?,
    };
    let port = ranged_u16(get("PORT"), "PORT", 3000, 1, u16::MAX)?;

    let public_url = match get("PUBLIC_URL") {
        None => parse_http_origin("PUBLIC_URL", "http://127.0.0.1:3000")?,
        Some(v) => parse_http_origin("PUBLIC_URL", &v)?,
    };
    if production && public_url.scheme() != "https" {
        return Err(ConfigError::new(
            "PUBLIC_URL",
            "must be an https URL in production",
        ));
    }

    let database_url = get("DATABASE_URL")
        .map(|v| check_postgres_url("DATABASE_URL", v))
        .transpose()?;
    let database_pool_size =
        ranged_u32(get("DATABASE_POOL_SIZE"), "DATABASE_POOL_SIZE", 16, 1, 512)?;
    let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "./data".to_owned()));

    let jwt_text = get("JWT_SECRET");
    let key_text = get("ENCRYPTION_KEY");
    let jwt_secret = match &jwt_text {
        Some(text) => {
            validate_jwt_secret(text).map_err(|reason| ConfigError::new("JWT_SECRET", reason))?
        }
        None if production => {
            return Err(ConfigError::new("JWT_SECRET", "is required in production"))
        }
        None => Vec::new(),
    };
    let encryption_key = match &key_text {
        Some(text) => {
            decode_key(text).map_err(|reason| ConfigError::new("ENCRYPTION_KEY", reason))?
        }
        None if production => {
            return Err(ConfigError::new(
                "ENCRYPTION_KEY",
                "is required in production",
            ))
        }
        None => [0u8; 32],
    };
    if !jwt_secret.is_empty() && encryption_key != [0u8; 32] {
        check_distinct(&jwt_secret, &encryption_key, key_text.as_deref())?;
    }
    let encryption_key_previous = get("ENCRYPTION_KEY_PREVIOUS")
        .map(|text| {
            decode_key(&text).map_err(|reason| ConfigError::new("ENCRYPTION_KEY_PREVIOUS", reason))
        })
        .transpose()?;

    let redis_url = get("REDIS_URL").map(check_redis_url).transpose()?;
    let chatwoot_url = get("CHATWOOT_URL")
        .map(|v| parse_http_origin("CHATWOOT_URL", &v))
        .transpose()?;

    let (mut cors_origins, cors_allow_any) = match get("CORS_ORIGINS") {
        Some(v) => parse_cors_origins(&v)?,
        None if production => (Vec::new(), false),
        None => (
            vec![
                "http://localhost:3000".to_owned(),
                "http://127.0.0.1:3000".to_owned(),
            ],
            false,
        ),
    };
    if production {
        if cors_allow_any {
            return Err(ConfigError::new(
                "CORS_ORIGINS",
                "a wildcard is not allowed in production",
            ));
        }
        let origin = public_url.origin().ascii_serialization();
        if !cors_origins.contains(&origin) {
            cors_origins.push(origin);
        }
    }

    let trusted_proxies = match get("TRUSTED_PROXIES") {
        Some(v) => parse_cidr_list("TRUSTED_PROXIES", &v)?,
        None => Vec::new(),
    };
    if production && trusted_proxies.iter().any(|net| net.prefix_len() == 0) {
        return Err(ConfigError::new(
            "TRUSTED_PROXIES",
            "must not trust a /0 range (every address) in production",
        ));
    }

    let rate_limit_enabled = boolean(get("RATE_LIMIT_ENABLED"), "RATE_LIMIT_ENABLED", true)?;
    if production && !rate_limit_enabled {
        return Err(ConfigError::new(
            "RATE_LIMIT_ENABLED",
            "cannot be disabled in production",
        ));
    }
    let per_min =
        |name: &'static str, default: u32| ranged_u32(get(name), name, default, 1, 1_000_000);
    let rate_limit_anon_per_min = per_min("RATE_LIMIT_ANON_PER_MIN", 100)?;
    let rate_limit_user_per_min = per_min("RATE_LIMIT_USER_PER_MIN", 1000)?;
    let rate_limit_login_per_min = per_min("RATE_LIMIT_LOGIN_PER_MIN", 10)?;

    let log_format = match get("LOG_FORMAT") {
        None if production => LogFormat::Json,
        None => LogFormat::Pretty,
        Some(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(v) if v.eq_ignore_ascii_case("pretty") => LogFormat::Pretty,
        Some(_) => return Err(ConfigError::new("LOG_FORMAT", "must be `json` or `pretty`")),
    };
    let log_level = get("LOG_LEVEL").unwrap_or_else(|| "info".to_owned());

    let metrics_token = get("METRICS_TOKEN")
        .map(|v| min_chars("METRICS_TOKEN", v, 32))
        .transpose()?;
    let metrics_bind = get("METRICS_BIND")
        .map(|v| {
            v.parse::<SocketAddr>()
                .map_err(|_| ConfigError::new("METRICS_BIND", "must be `ip:port`"))
        })
        .transpose()?;

    let secs = |name: &'static str, default: u64, min: u64, max: u64| {
        ranged(get(name), name, default, min, max).map(Duration::from_secs)
    };
    let request_timeout = secs("REQUEST_TIMEOUT_SECS", 30, 1, 300)?;
    let shutdown_grace = secs("SHUTDOWN_GRACE_SECS", 30, 1, 300)?;
    let chatwoot_sync_interval = secs("CHATWOOT_SYNC_INTERVAL_SECS", 300, 60, 86_400)?;
    let provider_health_interval = secs("PROVIDER_HEALTH_INTERVAL_SECS", 60, 15, 3600)?;
    let provider_send_per_min = ranged_u32(
        get("PROVIDER_SEND_PER_MIN"),
        "PROVIDER_SEND_PER_MIN",
        30,
        1,
        1000,
    )?;
    let ws_max_sessions_per_node = ranged(
        get("WS_MAX_SESSIONS_PER_NODE"),
        "WS_MAX_SESSIONS_PER_NODE",
        100_000,
        1,
        usize::MAX as u64,
    )
    .and_then(|n| {
        usize::try_from(n).map_err(|_| ConfigError::new("WS_MAX_SESSIONS_PER_NODE", "is too large"))
    })?;
    let chat_upload_max_bytes = ranged(
        get("CHAT_UPLOAD_MAX_BYTES"),
        "CHAT_UPLOAD_MAX_BYTES",
        26_214_400,
        1,
        u64::MAX,
    )?;

    let asaas_base_url = parse_base_url(
        "ASAAS_BASE_URL",
        get("ASAAS_BASE_URL")
            .as_deref()
            .unwrap_or("https://api.asaas.com/v3"),
    )?;
    let asaas_api_key = get("ASAAS_API_KEY");
    let asaas_webhook_token = get("ASAAS_WEBHOOK_TOKEN")
        .map(|v| min_chars("ASAAS_WEBHOOK_TOKEN", v, 32))
        .transpose()?;
    let billing_grace_days = ranged_u32(get("BILLING_GRACE_DAYS"), "BILLING_GRACE_DAYS", 7, 0, 90)?;
    let asaas_timeout = secs("ASAAS_TIMEOUT_SECS", 10, 1, 120)?;

    let outbound_allow_cidrs = match get("OUTBOUND_ALLOW_CIDRS") {
        Some(v) => parse_cidr_list("OUTBOUND_ALLOW_CIDRS", &v)?,
        None if production => Vec::new(),
        None => dev_outbound_defaults(),
    };
    if production {
        check_outbound_production(&outbound_allow_cidrs)?;
    }

    let admin_email = get("WHATPRO_ADMIN_EMAIL").unwrap_or_else(|| "admin@localhost".to_owned());
    check_email(&admin_email)?;
    let admin_password = get("WHATPRO_ADMIN_PASSWORD")
        .map(|v| {
            let n = v.chars().count();
            if (12..=128).contains(&n) {
                Ok(v)
            } else {
                Err(ConfigError::new(
                    "WHATPRO_ADMIN_PASSWORD",
                    "must be 12 to 128 characters long",
                ))
            }
        })
        .transpose()?;
    let jwt_issuer = get("JWT_ISSUER").unwrap_or_else(|| "whatpro-hub".to_owned());
    if jwt_issuer.chars().count() > 100 {
        return Err(ConfigError::new(
            "JWT_ISSUER",
            "must be 1 to 100 characters long",
        ));
    }
    let chatwoot_sso_create_accounts = boolean(
        get("CHATWOOT_SSO_CREATE_ACCOUNTS"),
        "CHATWOOT_SSO_CREATE_ACCOUNTS",
        true,
    )?;
    let audit_retention_days = ranged_u32(
        get("AUDIT_RETENTION_DAYS"),
        "AUDIT_RETENTION_DAYS",
        1825,
        365,
        36_500,
    )?;
    let test_database_url = get("TEST_DATABASE_URL")
        .map(|v| check_postgres_url("TEST_DATABASE_URL", v))
        .transpose()?;

    Ok(Config {
        app_env,
        bind,
        port,
        public_url,
        database_url,
        database_pool_size,
        data_dir,
        jwt_secret,
        encryption_key,
        encryption_key_previous,
        redis_url,
        chatwoot_url,
        cors_origins,
        cors_allow_any,
        trusted_proxies,
        rate_limit_enabled,
        rate_limit_anon_per_min,
        rate_limit_user_per_min,
        rate_limit_login_per_min,
        log_format,
        log_level,
        metrics_token,
        metrics_bind,
        request_timeout,
        shutdown_grace,
        chatwoot_sync_interval,
        provider_health_interval,
        provider_send_per_min,
        ws_max_sessions_per_node,
        chat_upload_max_bytes,
        asaas_base_url,
        asaas_api_key,
        asaas_webhook_token,
        billing_grace_days,
        asaas_timeout,
        outbound_allow_cidrs,
        admin_email,
        admin_password,
        jwt_issuer,
        chatwoot_sso_create_accounts,
        audit_retention_days,
        test_database_url,
        tuning: Tuning::default(),
    })
}

/// An unsigned integer in `min..=max`, or `default` when unset.
fn ranged(
    value: Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let range_error = || {
        if max == u64::MAX || (max == usize::MAX as u64) {
            ConfigError::new(name, format!("must be an integer of at least {min}"))
        } else {
            ConfigError::new(name, format!("must be an integer from {min} to {max}"))
        }
    };
    let digits = text.strip_prefix('+').unwrap_or(&text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(range_error());
    }
    let n = digits.parse::<u64>().map_err(|_| range_error())?;
    if n < min || n > max {
        return Err(range_error());
    }
    Ok(n)
}

fn ranged_u32(
    value: Option<String>,
    name: &'static str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    let n = ranged(value, name, default.into(), min.into(), max.into())?;
    u32::try_from(n).map_err(|_| ConfigError::new(name, "is too large"))
}

fn ranged_u16(
    value: Option<String>,
    name: &'static str,
    default: u16,
    min: u16,
    max: u16,
) -> Result<u16, ConfigError> {
    let n = ranged(value, name, default.into(), min.into(), max.into())?;
    u16::try_from(n).map_err(|_| ConfigError::new(name, "is too large"))
}

/// `true|false|1|0` (case-insensitive), or `default` when unset.
fn boolean(value: Option<String>, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match value.as_deref() {
        None => Ok(default),
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(ConfigError::new(
            name,
            "must be `true`, `false`, `1` or `0`",
        )),
    }
}

fn min_chars(name: &'static str, value: String, min: usize) -> Result<String, ConfigError> {
    if value.chars().count() >= min {
        Ok(value)
    } else {
        Err(ConfigError::new(
            name,
            format!("must be at least {min} characters long"),
        ))
    }
}

/// An absolute http(s) URL without credentials, path (other than `/`), query or fragment.
fn parse_http_origin(name: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url = parse_http_url(name, text)?;
    if url.path() != "/" {
        return Err(ConfigError::new(
            name,
            "must be an origin `scheme://host[:port]` without a path",
        ));
    }
    Ok(url)
}

/// An absolute http(s) URL with a host, without credentials, query or fragment.
fn parse_http_url(name: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(text).map_err(|_| ConfigError::new(name, "must be an absolute http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(name, "must be an absolute http(s) URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(name, "must not contain credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            name,
            "must not contain a query or a fragment",
        ));
    }
    Ok(url)
}

/// An http(s) base URL; a trailing slash of the path is removed (root excepted).
fn parse_base_url(name: &'static str, text: &str) -> Result<Url, ConfigError> {
    let mut url = parse_http_url(name, text)?;
    let trimmed = url.path().trim_end_matches('/').to_owned();
    if !trimmed.is_empty() {
        url.set_path(&trimmed);
    }
    Ok(url)
}

fn check_postgres_url(name: &'static str, value: String) -> Result<String, ConfigError> {
    let lower = value.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("postgres://")
        .or_else(|| lower.strip_prefix("postgresql://"));
    match rest {
        Some(rest) if !rest.is_empty() => Ok(value),
        _ => Err(ConfigError::new(
            name,
            "must be a `postgres://` or `postgresql://` URL",
        )),
    }
}

fn check_redis_url(value: String) -> Result<String, ConfigError> {
    let error = || ConfigError::new("REDIS_URL", "must be a `redis://` or `rediss://` URL");
    let url = Url::parse(&value).map_err(|_| error())?;
    if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none_or(str::is_empty) {
        return Err(error());
    }
    Ok(value)
}

/// `CORS_ORIGINS`: exact origins, normalised; `*` sets the allow-any flag.
fn parse_cors_origins(text: &str) -> Result<(Vec<String>, bool), ConfigError> {
    let mut origins: Vec<String> = Vec::new();
    let mut allow_any = false;
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            allow_any = true;
            continue;
        }
        let url = parse_http_origin("CORS_ORIGINS", item)?;
        let origin = url.origin().ascii_serialization();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok((origins, allow_any))
}

/// A comma list of CIDRs; a bare IP is a single-address network. Host bits are cleared.
fn parse_cidr_list(name: &'static str, text: &str) -> Result<Vec<IpNet>, ConfigError> {
    let mut nets: Vec<IpNet> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let net = match item.parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => item.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                ConfigError::new(name, "must be a comma list of CIDRs or IP addresses")
            })?,
        };
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// Loopback and private ranges: the development default of `OUTBOUND_ALLOW_CIDRS`.
fn dev_outbound_defaults() -> Vec<IpNet> {
    [
        (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
        (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
        (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
        (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12),
        (IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16),
        (IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7),
    ]
    .into_iter()
    .filter_map(|(addr, prefix)| IpNet::new(addr, prefix).ok())
    .collect()
}

/// Link-local ranges (IPv4, IPv6 and IPv4-mapped IPv6): cloud metadata lives there.
fn link_local_ranges() -> Vec<IpNet> {
    [
        (IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
        (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
        (
            IpAddr::V6(Ipv4Addr::new(169, 254, 0, 0).to_ipv6_mapped()),
            112,
        ),
    ]
    .into_iter()
    .filter_map(|(addr, prefix)| IpNet::new(addr, prefix).ok())
    .collect()
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_outbound_production(nets: &[IpNet]) -> Result<(), ConfigError> {
    if nets.iter().any(|net| net.prefix_len() == 0) {
        return Err(ConfigError::new(
            "OUTBOUND_ALLOW_CIDRS",
            "must not allow a /0 range (every address) in production",
        ));
    }
    let link_local = link_local_ranges();
    if nets
        .iter()
        .any(|net| link_local.iter().any(|ll| overlaps(net, ll)))
    {
        return Err(ConfigError::new(
            "OUTBOUND_ALLOW_CIDRS",
            "must not include link-local addresses in production",
        ));
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), ConfigError> {
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            }
            None => false,
        };
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(
            "WHATPRO_ADMIN_EMAIL",
            "must be an email address with one `@`",
        ))
    }
}

/// `JWT_SECRET` rules: ≥ 32 bytes and no known placeholder. Returns the reason on refusal.
fn validate_jwt_secret(text: &str) -> Result<Vec<u8>, String> {
    if text.len() < 32 {
        return Err("must be at least 32 bytes long".to_owned());
    }
    let lower = text.to_ascii_lowercase();
    let one_repeated_char = text
        .chars()
        .next()
        .is_some_and(|first| text.chars().all(|c| c == first));
    if one_repeated_char
        || KNOWN_PLACEHOLDERS.contains(&lower.as_str())
        || PLACEHOLDER_FRAGMENTS.iter().any(|p| lower.contains(p))
    {
        return Err(
            "is a known placeholder; generate a random one (e.g. `openssl rand -base64 48`)"
                .to_owned(),
        );
    }
    Ok(text.as_bytes().to_vec())
}

/// `ENCRYPTION_KEY` format: standard base64 (padded or not) of exactly 32 bytes, not all
/// zero. Returns the reason on refusal (never the value, nor the decoder's message, which
/// could quote a character of it).
fn decode_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = BASE64_LENIENT
        .decode(text.as_bytes())
        .map_err(|_| "must be standard base64 of exactly 32 bytes".to_owned())?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "must be base64 of exactly 32 bytes".to_owned())?;
    if key == [0u8; 32] {
        return Err("must not be all zero bytes".to_owned());
    }
    Ok(key)
}

/// `JWT_SECRET` must differ from `ENCRYPTION_KEY`, as text and as decoded bytes.
fn check_distinct(jwt: &[u8], key: &[u8; 32], key_text: Option<&str>) -> Result<(), ConfigError> {
    let same = jwt == key.as_slice()
        || jwt == STANDARD.encode(key).as_bytes()
        || jwt == STANDARD_NO_PAD.encode(key).as_bytes()
        || key_text.is_some_and(|text| jwt == text.as_bytes());
    if same {
        Err(ConfigError::new(
            "JWT_SECRET",
            "must differ from ENCRYPTION_KEY",
        ))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Process loading and disk
// ---------------------------------------------------------------------------------------------

/// Loads the configuration of the real process.
///
/// 1. In development (process `APP_ENV` unset or `development`), reads `./.env` if present;
///    its values apply only to variables absent from the process environment, and the
///    process environment itself is not modified (the values are visible through [`Config`]
///    only). `APP_ENV=production` coming from `.env` alone is refused. Production never reads
///    `.env`.
/// 2. Parses with [`from_lookup`].
/// 3. Creates `DATA_DIR` ([`ensure_data_dir`]).
/// 4. In development, fills missing secrets from `DATA_DIR/secrets` ([`ensure_dev_secrets`]).
///    Production never reads `DATA_DIR/secrets`.
pub fn load() -> Result<Config, ConfigError> {
    let mut process: HashMap<&'static str, String> = HashMap::new();
    for &name in VARIABLES {
        match std::env::var(name) {
            Ok(value) => {
                process.insert(name, value);
            }
            Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigError::new(name, "is not valid UTF-8"));
            }
        }
    }

    let process_env = process
        .get("APP_ENV")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let may_read_dotenv = process_env
        .as_deref()
        .is_none_or(|v| v.eq_ignore_ascii_case("development"));
    let dotenv = if may_read_dotenv {
        read_dotenv(Path::new(".env"))?
    } else {
        HashMap::new()
    };
    if process_env.is_none()
        && dotenv
            .get("APP_ENV")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("production"))
    {
        return Err(ConfigError::new(
            "APP_ENV",
            "production must be set in the process environment; `.env` is read only in development",
        ));
    }

    let mut config = from_lookup(|name| process.get(name).or_else(|| dotenv.get(name)).cloned())?;
    ensure_data_dir(&config.data_dir)?;
    if config.is_development() {
        ensure_dev_secrets(&mut config)?;
    }
    Ok(config)
}

/// Reads a dotenv file into a map; a missing file is an empty map.
fn read_dotenv(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() => return Ok(HashMap::new()),
        Err(dotenvy::Error::Io(e)) => {
            return Err(ConfigError::new(".env", format!("cannot be read: {e}")))
        }
        Err(_) => return Err(ConfigError::new(".env", "cannot be read")),
    };
    let mut values = HashMap::new();
    for (index, item) in iter.enumerate() {
        match item {
            Ok((key, value)) => {
                values.entry(key).or_insert(value);
            }
            // The parser's message quotes the line, which may hold a secret: not repeated.
            Err(dotenvy::Error::LineParse(..)) => {
                return Err(ConfigError::new(
                    ".env",
                    format!("entry {} cannot be parsed", index + 1),
                ))
            }
            Err(dotenvy::Error::Io(e)) => {
                return Err(ConfigError::new(".env", format!("cannot be read: {e}")))
            }
            Err(_) => return Err(ConfigError::new(".env", "cannot be parsed")),
        }
    }
    Ok(values)
}

/// Creates `dir` (and its parents) with mode 0700 if missing, then checks that it is a
/// writable directory by creating and removing a probe file. An existing directory's mode is
/// left as it is. Errors name `DATA_DIR`.
pub fn ensure_data_dir(dir: &Path) -> Result<(), ConfigError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(ConfigError::new(
                "DATA_DIR",
                "exists and is not a directory",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| ConfigError::new("DATA_DIR", format!("cannot be created: {e}")))?;
        }
        Err(e) => {
            return Err(ConfigError::new(
                "DATA_DIR",
                format!("cannot be inspected: {e}"),
            ))
        }
    }

    let probe = dir.join(format!(
        ".write-probe-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
        .and_then(|mut file| file.write_all(b"ok"));
    let removed = fs::remove_file(&probe);
    written
        .and(removed)
        .map_err(|e| ConfigError::new("DATA_DIR", format!("is not writable: {e}")))
}

/// Development only: fills an unset `jwt_secret` / `encryption_key` from
/// `DATA_DIR/secrets/jwt_secret` (hex of 64 random bytes) and
/// `DATA_DIR/secrets/encryption_key` (base64 of 32 random bytes), creating each file once
/// (directory 0700, file 0600, published atomically so concurrent starts agree) and reusing it
/// on every later start. A stored file is read as if it were the variable's value (so it can
/// be copied into the environment as is) and validated the same way.
///
/// Does nothing when both secrets are already set. In production it never touches the disk
/// and fails if a secret is missing.
pub fn ensure_dev_secrets(config: &mut Config) -> Result<(), ConfigError> {
    let jwt_missing = config.jwt_secret.is_empty();
    let key_missing = config.encryption_key == [0u8; 32];
    if !jwt_missing && !key_missing {
        return Ok(());
    }
    if config.is_production() {
        let variable = if jwt_missing {
            "JWT_SECRET"
        } else {
            "ENCRYPTION_KEY"
        };
        return Err(ConfigError::new(variable, "is required in production"));
    }

    let dir = config.secrets_dir();
    ensure_private_dir(&dir)?;

    if jwt_missing {
        let text = read_or_create_secret(&dir, "jwt_secret", "JWT_SECRET", || {
            let mut bytes = [0u8; 64];
            rand::rng().fill_bytes(&mut bytes);
            to_hex(&bytes)
        })?;
        config.jwt_secret = validate_jwt_secret(&text).map_err(|reason| {
            ConfigError::new(
                "JWT_SECRET",
                format!("DATA_DIR/secrets/jwt_secret {reason}"),
            )
        })?;
    }
    if key_missing {
        let text = read_or_create_secret(&dir, "encryption_key", "ENCRYPTION_KEY", || {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            STANDARD.encode(bytes)
        })?;
        config.encryption_key = decode_key(&text).map_err(|reason| {
            ConfigError::new(
                "ENCRYPTION_KEY",
                format!("DATA_DIR/secrets/encryption_key {reason}"),
            )
        })?;
    }
    check_distinct(&config.jwt_secret, &config.encryption_key, None)
}

/// Creates `dir` recursively with mode 0700 and tightens it to exactly 0700.
fn ensure_private_dir(dir: &Path) -> Result<(), ConfigError> {
    let error = |e: io::Error| {
        ConfigError::new(
            "DATA_DIR",
            format!("cannot prepare the secrets directory: {e}"),
        )
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(error)?;
    let meta = fs::metadata(dir).map_err(error)?;
    if !meta.is_dir() {
        return Err(ConfigError::new(
            "DATA_DIR",
            "secrets exists and is not a directory",
        ));
    }
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(error)?;
    }
    Ok(())
}

/// Reads `dir/file` (tightening it to 0600), or creates it with `generate()` when missing:
/// the content goes to a unique temp file (0600, synced) that is then hard-linked to its
/// final name, so a concurrent creator's file is never overwritten (the winner's content is
/// read back instead).
fn read_or_create_secret(
    dir: &Path,
    file: &str,
    variable: &'static str,
    generate: impl FnOnce() -> String,
) -> Result<String, ConfigError> {
    let path = dir.join(file);
    let read_error = |e: io::Error| {
        ConfigError::new(
            variable,
            format!("cannot read DATA_DIR/secrets/{file}: {e}"),
        )
    };
    match read_secret_file(&path) {
        Ok(text) => return Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(read_error(e)),
    }

    let content = generate();
    let write_error = |e: io::Error| {
        ConfigError::new(
            variable,
            format!("cannot create DATA_DIR/secrets/{file}: {e}"),
        )
    };
    let tmp = dir.join(format!(
        ".{file}.tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(content.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(write_error(e));
    }
    let published = match fs::hard_link(&tmp, &path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // Filesystems without hard links: fall back to an atomic rename.
        Err(_) => fs::rename(&tmp, &path).map(|()| true),
    };
    let _ = fs::remove_file(&tmp);
    match published {
        Ok(true) => {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(content)
        }
        Ok(false) => read_secret_file(&path).map_err(read_error),
        Err(e) => Err(write_error(e)),
    }
}

/// Reads a secret file's trimmed text, tightening a group/other-accessible file to 0600.
fn read_secret_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text.trim().to_owned())
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const JWT: &str = "k3J9x0Qm2Lw8Zr5Tn1Vb7Yc4Hd6Gf0Ps9Ae2Ui3Oq";

    fn key_b64(fill: u8) -> String {
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = fill.wrapping_add(u8::try_from(i).unwrap_or(0));
        }
        STANDARD.encode(key)
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        from_lookup(|name| map.get(name).cloned())
    }

    fn production(overrides: &[(&'static str, &str)]) -> Result<Config, ConfigError> {
        let key = key_b64(1);
        let mut pairs: Vec<(&str, &str)> = vec![
            ("APP_ENV", "production"),
            ("PUBLIC_URL", "https://hub.example.com"),
            ("JWT_SECRET", JWT),
            ("ENCRYPTION_KEY", key.as_str()),
        ];
        for (name, value) in overrides {
            pairs.retain(|(k, _)| k != name);
            pairs.push((name, value));
        }
        parse(&pairs)
    }

    /// The error names `variable`, has the documented shape and does not leak `value`.
    fn assert_refused(result: Result<Config, ConfigError>, variable: &str, value: &str) {
        let err = match result {
            Ok(_) => panic!("{variable} should have been refused"),
            Err(e) => e,
        };
        assert_eq!(err.variable, variable, "{err}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("invalid configuration: {variable}: ")),
            "{message}"
        );
        if !value.is_empty() {
            assert!(!message.contains(value), "leaks the value: {message}");
            assert!(!format!("{err:?}").contains(value));
        }
    }

    #[test]
    fn development_defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.app_env, AppEnv::Development);
        assert_eq!(c.listen_addr(), "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.public_origin(), "http://127.0.0.1:3000");
        assert!(!c.public_is_https());
        assert!(c.database_url.is_none() && c.uses_embedded_database());
        assert_eq!(c.database_pool_size, 16);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(!c.secrets_ready());
        assert!(c.jwt_secret.is_empty());
        assert_eq!(
            c.cors_origins,
            vec!["http://localhost:3000", "http://127.0.0.1:3000"]
        );
        assert!(!c.cors_allow_any);
        assert!(c.trusted_proxies.is_empty());
        assert!(c.rate_limit_enabled);
        assert_eq!(
            (
                c.rate_limit_anon_per_min,
                c.rate_limit_user_per_min,
                c.rate_limit_login_per_min
            ),
            (100, 1000, 10)
        );
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.log_level, "info");
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
        assert_eq!(c.chatwoot_sync_interval, Duration::from_secs(300));
        assert_eq!(c.provider_health_interval, Duration::from_secs(60));
        assert_eq!(c.provider_send_per_min, 30);
        assert_eq!(c.ws_max_sessions_per_node, 100_000);
        assert_eq!(c.chat_upload_max_bytes, 26_214_400);
        assert_eq!(c.asaas_base_url.as_str(), "https://api.asaas.com/v3");
        assert!(!c.billing_enabled());
        assert_eq!(c.billing_grace_days, 7);
        assert_eq!(c.asaas_timeout, Duration::from_secs(10));
        assert_eq!(c.outbound_allow_cidrs.len(), 6);
        assert!(c
            .outbound_allow_cidrs
            .contains(&"172.16.0.0/12".parse().unwrap()));
        assert_eq!(c.admin_email, "admin@localhost");
        assert!(c.admin_password.is_none());
        assert_eq!(c.jwt_issuer, "whatpro-hub");
        assert!(c.chatwoot_sso_create_accounts);
        assert_eq!(c.audit_retention_days, 1825);
        assert_eq!(c.tuning, Tuning::default());
        assert_eq!(c.tuning.access_token_ttl, Duration::from_secs(900));
        assert!(c.tuning.http_workers >= 1);
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = parse(&[("PORT", ""), ("JWT_SECRET", "  "), ("LOG_LEVEL", "")]).unwrap();
        assert_eq!(c.port, 3000);
        assert!(c.jwt_secret.is_empty());
        assert_eq!(c.log_level, "info");
        assert_refused(production(&[("JWT_SECRET", "")]), "JWT_SECRET", "");
    }

    #[test]
    fn app_env_must_be_known() {
        assert_refused(parse(&[("APP_ENV", "staging")]), "APP_ENV", "staging");
    }

    #[test]
    fn production_requires_jwt_secret() {
        let key = key_b64(1);
        assert_refused(
            parse(&[
                ("APP_ENV", "production"),
                ("PUBLIC_URL", "https://hub.example.com"),
                ("ENCRYPTION_KEY", &key),
            ]),
            "JWT_SECRET",
            "",
        );
    }

    #[test]
    fn production_requires_encryption_key() {
        assert_refused(
            parse(&[
                ("APP_ENV", "production"),
                ("PUBLIC_URL", "https://hub.example.com"),
                ("JWT_SECRET", JWT),
            ]),
            "ENCRYPTION_KEY",
            "",
        );
    }

    #[test]
    fn jwt_secret_of_31_bytes_is_refused() {
        let short = "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1e";
        assert_eq!(short.len(), 31);
        assert_refused(production(&[("JWT_SECRET", short)]), "JWT_SECRET", short);
        assert_refused(parse(&[("JWT_SECRET", short)]), "JWT_SECRET", short);
    }

    #[test]
    fn encryption_key_of_31_bytes_is_refused() {
        let key = STANDARD.encode([7u8; 31]);
        assert_refused(
            production(&[("ENCRYPTION_KEY", &key)]),
            "ENCRYPTION_KEY",
            &key,
        );
        let previous = STANDARD.encode([9u8; 33]);
        assert_refused(
            production(&[("ENCRYPTION_KEY_PREVIOUS", &previous)]),
            "ENCRYPTION_KEY_PREVIOUS",
            &previous,
        );
    }

    #[test]
    fn encryption_key_not_base64_is_refused() {
        let bad = "not-base64-%%%-not-base64-%%%-not-base64!!";
        assert_refused(
            production(&[("ENCRYPTION_KEY", bad)]),
            "ENCRYPTION_KEY",
            bad,
        );
    }

    #[test]
    fn encryption_key_accepts_unpadded_base64() {
        let key = key_b64(3);
        let unpadded = key.trim_end_matches('=').to_owned();
        let c = production(&[("ENCRYPTION_KEY", &unpadded)]).unwrap();
        assert_eq!(STANDARD.encode(c.encryption_key), key);
    }

    #[test]
    fn cors_star_is_refused_in_production_only() {
        assert_refused(production(&[("CORS_ORIGINS", "*")]), "CORS_ORIGINS", "*");
        let c = parse(&[("CORS_ORIGINS", "*,http://a.test")]).unwrap();
        assert!(c.cors_allow_any);
        assert_eq!(c.cors_origins, vec!["http://a.test"]);
    }

    #[test]
    fn cors_origins_are_normalised() {
        let c = parse(&[(
            "CORS_ORIGINS",
            "HTTPS://App.Example.com/, http://localhost:8080 ,https://x.test:443,,",
        )])
        .unwrap();
        assert_eq!(
            c.cors_origins,
            vec![
                "https://app.example.com",
                "http://localhost:8080",
                "https://x.test"
            ]
        );
        let with_path = "https://app.example.com/path";
        assert_refused(
            parse(&[("CORS_ORIGINS", with_path)]),
            "CORS_ORIGINS",
            with_path,
        );
    }

    #[test]
    fn http_public_url_is_refused_in_production() {
        let url = "http://hub.example.com";
        assert_refused(production(&[("PUBLIC_URL", url)]), "PUBLIC_URL", url);
        assert_refused(
            parse(&[("PUBLIC_URL", "ftp://x.test")]),
            "PUBLIC_URL",
            "ftp://x.test",
        );
        assert_refused(
            parse(&[("PUBLIC_URL", "https://x.test/app")]),
            "PUBLIC_URL",
            "x.test",
        );
    }

    #[test]
    fn trusting_every_proxy_is_refused_in_production() {
        assert_refused(
            production(&[("TRUSTED_PROXIES", "10.0.0.1,0.0.0.0/0")]),
            "TRUSTED_PROXIES",
            "0.0.0.0/0",
        );
        assert_refused(
            production(&[("TRUSTED_PROXIES", "::/0")]),
            "TRUSTED_PROXIES",
            "::/0",
        );
        let c = parse(&[("TRUSTED_PROXIES", "10.1.2.3, 172.18.0.0/16, ::1")]).unwrap();
        assert_eq!(
            c.trusted_proxies,
            vec![
                "10.1.2.3/32".parse::<IpNet>().unwrap(),
                "172.18.0.0/16".parse().unwrap(),
                "::1/128".parse().unwrap()
            ]
        );
        assert_refused(
            parse(&[("TRUSTED_PROXIES", "10.0.0.0/33")]),
            "TRUSTED_PROXIES",
            "10.0.0.0/33",
        );
    }

    #[test]
    fn disabling_rate_limits_is_refused_in_production() {
        assert_refused(
            production(&[("RATE_LIMIT_ENABLED", "false")]),
            "RATE_LIMIT_ENABLED",
            "false",
        );
        assert!(
            !parse(&[("RATE_LIMIT_ENABLED", "0")])
                .unwrap()
                .rate_limit_enabled
        );
        assert_refused(
            parse(&[("RATE_LIMIT_ENABLED", "maybe")]),
            "RATE_LIMIT_ENABLED",
            "maybe",
        );
    }

    #[test]
    fn placeholder_jwt_secrets_are_refused() {
        for secret in [
            "changeme-changeme-changeme-changeme",
            "please-CHANGE-ME-before-going-to-production",
            "this-is-only-a-placeholder-value-for-the-jwt",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "YOUR-SUPER-SECRET-JWT-TOKEN-WITH-AT-LEAST-32-CHARACTERS-LONG",
        ] {
            assert_refused(production(&[("JWT_SECRET", secret)]), "JWT_SECRET", secret);
            assert_refused(parse(&[("JWT_SECRET", secret)]), "JWT_SECRET", secret);
        }
    }

    #[test]
    fn jwt_secret_must_differ_from_encryption_key() {
        let key = key_b64(5);
        assert_refused(
            production(&[("JWT_SECRET", &key), ("ENCRYPTION_KEY", &key)]),
            "JWT_SECRET",
            &key,
        );
        // Same bytes: the JWT secret text equals the decoded key.
        let raw = "0123456789abcdefghijklmnopqrstuv";
        let encoded = STANDARD.encode(raw);
        assert_refused(
            production(&[("JWT_SECRET", raw), ("ENCRYPTION_KEY", &encoded)]),
            "JWT_SECRET",
            raw,
        );
    }

    #[test]
    fn ranges_are_enforced() {
        assert_refused(parse(&[("PORT", "0")]), "PORT", "");
        assert_refused(parse(&[("PORT", "65536")]), "PORT", "65536");
        assert_refused(parse(&[("PORT", "-1")]), "PORT", "");
        assert_refused(
            parse(&[("DATABASE_POOL_SIZE", "513")]),
            "DATABASE_POOL_SIZE",
            "513",
        );
        assert_eq!(
            parse(&[("DATABASE_POOL_SIZE", "512")])
                .unwrap()
                .database_pool_size,
            512
        );
        assert_refused(
            parse(&[("CHATWOOT_SYNC_INTERVAL_SECS", "59")]),
            "CHATWOOT_SYNC_INTERVAL_SECS",
            "",
        );
        assert_refused(
            parse(&[("AUDIT_RETENTION_DAYS", "364")]),
            "AUDIT_RETENTION_DAYS",
            "364",
        );
        assert_refused(
            parse(&[("RATE_LIMIT_LOGIN_PER_MIN", "1000001")]),
            "RATE_LIMIT_LOGIN_PER_MIN",
            "1000001",
        );
        assert_refused(
            parse(&[("WS_MAX_SESSIONS_PER_NODE", "0")]),
            "WS_MAX_SESSIONS_PER_NODE",
            "",
        );
    }

    #[test]
    fn other_formats_are_checked() {
        assert_refused(parse(&[("BIND", "localhost")]), "BIND", "localhost");
        let db = "mysql://user:hunter2@db/x";
        assert_refused(parse(&[("DATABASE_URL", db)]), "DATABASE_URL", "hunter2");
        let redis = "http://:hunter2@redis:6379";
        assert_refused(parse(&[("REDIS_URL", redis)]), "REDIS_URL", "hunter2");
        assert_refused(
            parse(&[("CHATWOOT_URL", "https://chat.example.com/app")]),
            "CHATWOOT_URL",
            "chat.example.com",
        );
        assert_refused(
            parse(&[("METRICS_TOKEN", "short-token")]),
            "METRICS_TOKEN",
            "short-token",
        );
        assert_refused(
            parse(&[("ASAAS_WEBHOOK_TOKEN", "short-token")]),
            "ASAAS_WEBHOOK_TOKEN",
            "short-token",
        );
        assert_refused(
            parse(&[("WHATPRO_ADMIN_EMAIL", "a@b@c")]),
            "WHATPRO_ADMIN_EMAIL",
            "a@b@c",
        );
        assert_refused(
            parse(&[("WHATPRO_ADMIN_PASSWORD", "short-pw")]),
            "WHATPRO_ADMIN_PASSWORD",
            "short-pw",
        );
        assert_refused(parse(&[("LOG_FORMAT", "xml")]), "LOG_FORMAT", "xml");
        assert_refused(
            parse(&[("METRICS_BIND", "127.0.0.1")]),
            "METRICS_BIND",
            "127.0.0.1",
        );
        let c = parse(&[
            ("DATABASE_URL", "postgresql://u:p@db:5432/hub"),
            ("REDIS_URL", "rediss://:p@redis:6380/0"),
            ("CHATWOOT_URL", "https://Chat.Example.com/"),
            ("METRICS_BIND", "127.0.0.1:9100"),
            ("ASAAS_BASE_URL", "https://api-sandbox.asaas.com/v3/"),
            ("ASAAS_API_KEY", "$aact_key"),
            ("ASAAS_WEBHOOK_TOKEN", "0123456789abcdef0123456789abcdef"),
        ])
        .unwrap();
        assert_eq!(
            c.chatwoot_url.as_ref().map(Url::as_str),
            Some("https://chat.example.com/")
        );
        assert_eq!(
            c.asaas_base_url.as_str(),
            "https://api-sandbox.asaas.com/v3"
        );
        assert!(c.billing_enabled());
        assert_eq!(c.metrics_bind, Some("127.0.0.1:9100".parse().unwrap()));
    }

    #[test]
    fn outbound_cidrs_in_production() {
        for bad in [
            "0.0.0.0/0",
            "::/0",
            "169.254.169.254/32",
            "169.0.0.0/8",
            "fe80::1",
            "::ffff:0:0/96",
        ] {
            assert_refused(
                production(&[("OUTBOUND_ALLOW_CIDRS", bad)]),
                "OUTBOUND_ALLOW_CIDRS",
                bad,
            );
        }
        let c = production(&[("OUTBOUND_ALLOW_CIDRS", "10.20.0.0/16")]).unwrap();
        assert_eq!(
            c.outbound_allow_cidrs,
            vec!["10.20.0.0/16".parse::<IpNet>().unwrap()]
        );
        assert!(production(&[]).unwrap().outbound_allow_cidrs.is_empty());
        // Development may allow anything.
        assert!(parse(&[("OUTBOUND_ALLOW_CIDRS", "0.0.0.0/0")]).is_ok());
    }

    #[test]
    fn valid_production_config_passes() {
        let c = production(&[
            ("CORS_ORIGINS", "https://app.example.com"),
            ("TRUSTED_PROXIES", "172.18.0.0/16"),
        ])
        .unwrap();
        assert!(c.is_production());
        assert!(c.secrets_ready());
        assert_eq!(c.listen_addr(), "0.0.0.0:3000".parse().unwrap());
        assert!(c.public_is_https());
        assert_eq!(c.public_origin(), "https://hub.example.com");
        assert_eq!(
            c.cors_origins,
            vec!["https://app.example.com", "https://hub.example.com"]
        );
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.jwt_secret, JWT.as_bytes());
        // Without CORS_ORIGINS, only the public origin.
        let c = production(&[]).unwrap();
        assert_eq!(c.cors_origins, vec!["https://hub.example.com"]);
        // Listed already: not twice.
        let c = production(&[("CORS_ORIGINS", "https://hub.example.com/")]).unwrap();
        assert_eq!(c.cors_origins, vec!["https://hub.example.com"]);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = production(&[
            ("DATABASE_URL", "postgres://hub:db-password-1@db/hub"),
            ("METRICS_TOKEN", "metrics-token-0123456789abcdef0123"),
            ("ASAAS_API_KEY", "asaas-api-key-value"),
            ("ASAAS_WEBHOOK_TOKEN", "asaas-webhook-token-0123456789abcd"),
            ("WHATPRO_ADMIN_PASSWORD", "admin-password-value"),
            ("ENCRYPTION_KEY_PREVIOUS", &key_b64(9)),
        ])
        .unwrap();
        let debug = format!("{c:?}");
        for secret in [
            JWT,
            "db-password-1",
            "metrics-token",
            "asaas-api-key-value",
            "asaas-webhook-token",
            "admin-password-value",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(!debug.contains(&format!("{:?}", c.encryption_key)));
        assert!(debug.contains(REDACTED));
        assert!(debug.contains("https://hub.example.com"));
    }

    #[test]
    fn error_display_and_exit_code() {
        let e = ConfigError::new("PORT", "must be an integer from 1 to 65535");
        assert_eq!(
            e.to_string(),
            "invalid configuration: PORT: must be an integer from 1 to 65535"
        );
        assert_eq!(ConfigError::EXIT_CODE, 2);
        assert_eq!(EXIT_CODE, 2);
    }

    fn temp_data_dir() -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!(
            "whatpro-config-test-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ))
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn dev_secrets_are_created_once_and_reused() {
        let root = temp_data_dir();
        let data_dir = root.join("nested").join("data");
        let data = data_dir.to_str().unwrap().to_owned();

        let mut first = parse(&[("DATA_DIR", &data)]).unwrap();
        ensure_data_dir(&first.data_dir).unwrap();
        assert_eq!(mode(&data_dir), 0o700);
        ensure_dev_secrets(&mut first).unwrap();
        assert!(first.secrets_ready());
        assert_eq!(first.jwt_secret.len(), 128);

        let secrets = data_dir.join("secrets");
        assert_eq!(mode(&secrets), 0o700);
        assert_eq!(mode(&secrets.join("jwt_secret")), 0o600);
        assert_eq!(mode(&secrets.join("encryption_key")), 0o600);
        let names: Vec<_> = fs::read_dir(&secrets)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no temp files left: {names:?}");

        // A restart reuses them.
        let mut second = parse(&[("DATA_DIR", &data)]).unwrap();
        ensure_dev_secrets(&mut second).unwrap();
        assert_eq!(second.jwt_secret, first.jwt_secret);
        assert_eq!(second.encryption_key, first.encryption_key);

        // A variable that is set wins over the stored file.
        let key = key_b64(11);
        let mut third = parse(&[("DATA_DIR", &data), ("ENCRYPTION_KEY", &key)]).unwrap();
        ensure_dev_secrets(&mut third).unwrap();
        assert_eq!(third.jwt_secret, first.jwt_secret);
        assert_eq!(STANDARD.encode(third.encryption_key), key);

        // The stored file reads like the variable: copying it into the env gives the same key.
        let stored = fs::read_to_string(secrets.join("jwt_secret")).unwrap();
        assert_eq!(stored.trim().as_bytes(), first.jwt_secret.as_slice());

        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dev_secrets_set_in_env_touch_no_disk() {
        let root = temp_data_dir();
        let data = root.to_str().unwrap().to_owned();
        let key = key_b64(2);
        let mut c = parse(&[
            ("DATA_DIR", &data),
            ("JWT_SECRET", JWT),
            ("ENCRYPTION_KEY", &key),
        ])
        .unwrap();
        ensure_dev_secrets(&mut c).unwrap();
        assert!(!root.exists());
    }

    #[test]
    fn data_dir_must_be_a_directory() {
        let root = temp_data_dir();
        fs::create_dir_all(&root).unwrap();
        let file = root.join("file");
        fs::write(&file, b"x").unwrap();
        let err = ensure_data_dir(&file).unwrap_err();
        assert_eq!(err.variable, "DATA_DIR");
        fs::remove_dir_all(&root).unwrap();
    }
}
