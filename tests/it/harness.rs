//! The test harness: a throwaway PostgreSQL, a database per test, and the server in process.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;
use whatpro_hub::auth::password;
use whatpro_hub::config::Config;
use whatpro_hub::db::embedded::{self, EmbeddedOptions};
use whatpro_hub::db::{self, accounts, users};
use whatpro_hub::error::ApiError;
use whatpro_hub::server::{self, DatabaseTarget, RunningServer, StartOptions};

/// The bootstrap super_admin's credentials in every test app.
pub const ADMIN_EMAIL: &str = "root@hub.test";
/// The bootstrap super_admin's password.
pub const ADMIN_PASSWORD: &str = "violet tractor sings loudly";
/// Password used for seeded users.
pub const USER_PASSWORD: &str = "amber kettle hums softly";

/// A websocket client stream.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Cluster {
    admin_url: String,
    template: String,
}

/// Replaces the database name of a PostgreSQL URL.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let prefix = base.rsplit_once('/').map(|(p, _)| p).unwrap_or(base);
    match query {
        Some(q) => format!("{prefix}/{database}?{q}"),
        None => format!("{prefix}/{database}"),
    }
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        // Own thread and runtime: tests each run in their own actix System.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(init_cluster())
        })
        .join()
        .expect("cluster init")
    })
}

async fn init_cluster() -> Cluster {
    let admin_url = match std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(url) => url,
        None => {
            // One cluster per machine user, shared by concurrent test processes and kept
            // running between runs (starting it is the slow part).
            let dir =
                std::env::temp_dir().join(format!("whatpro-test-pg-{}", nix::unistd::geteuid()));
            let cluster = embedded::start(EmbeddedOptions {
                data_dir: dir,
                fast_unsafe: true,
            })
            .await
            .expect("start the embedded PostgreSQL for tests");
            let url = cluster.url("postgres");
            // Never stopped by this process: later test runs reuse it.
            std::mem::forget(cluster);
            url
        }
    };
    let template = template_name();
    ensure_template(&admin_url, &template).await;
    drop_stale_databases(&admin_url).await;
    Cluster {
        admin_url,
        template,
    }
}

/// The template's name changes whenever the set of migrations does.
fn template_name() -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations dir")
    {
        let path = entry.expect("entry").path();
        for file in ["up.sql", "down.sql"] {
            std::fs::read_to_string(path.join(file))
                .unwrap_or_default()
                .hash(&mut hasher);
        }
        path.file_name().hash(&mut hasher);
    }
    format!("whatpro_tpl_{:016x}", hasher.finish())
}

async fn admin_conn(admin_url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(admin_url)
        .await
        .expect("connect to the test cluster")
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    datname: String,
}

async fn ensure_template(admin_url: &str, template: &str) {
    let mut conn = admin_conn(admin_url).await;
    let existing: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(template)
            .load(&mut conn)
            .await
            .expect("list databases");
    if !existing.is_empty() {
        return;
    }
    // Build under a private name, then publish by renaming: concurrent runs never see a
    // half-migrated template.
    let building = format!("{template}_b{}", Uuid::now_v7().simple());
    db::ensure_database(admin_url, &building, None)
        .await
        .expect("create template");
    db::run_migrations(&with_database(admin_url, &building))
        .await
        .expect("migrate template");
    let renamed = diesel::sql_query(format!(
        "ALTER DATABASE {} RENAME TO {}",
        db::quote_ident(&building),
        db::quote_ident(template)
    ))
    .execute(&mut conn)
    .await;
    if renamed.is_err() {
        // Another process published the template first.
        let _ = diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS {}",
            db::quote_ident(&building)
        ))
        .execute(&mut conn)
        .await;
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Drops test databases left by runs more than two hours old (tests that panicked).
async fn drop_stale_databases(admin_url: &str) {
    let mut conn = admin_conn(admin_url).await;
    let names: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%'")
            .load(&mut conn)
            .await
            .unwrap_or_default();
    let cutoff = now_secs().saturating_sub(7200);
    for Name { datname } in names {
        let created: u64 = datname
            .split('_')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        if created < cutoff {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                db::quote_ident(&datname)
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

/// A fresh database cloned from the migrated template; returns its owner URL.
pub async fn fresh_database() -> String {
    let cluster = cluster();
    let name = format!("t_{}_{}", now_secs(), Uuid::now_v7().simple());
    db::ensure_database(&cluster.admin_url, &name, Some(&cluster.template))
        .await
        .expect("clone the template database");
    with_database(&cluster.admin_url, &name)
}

/// A development configuration for tests: fixed secrets, a temp DATA_DIR, an ephemeral port.
pub fn test_config(database_url: &str) -> Config {
    // `TEST_LOG=warn cargo test …` shows the server's logs (a 500's cause, say).
    if let Ok(level) = std::env::var("TEST_LOG") {
        whatpro_hub::telemetry::init(whatpro_hub::config::LogFormat::Pretty, &level);
    }
    let data_dir =
        std::env::temp_dir().join(format!("whatpro-test-data-{}", Uuid::now_v7().simple()));
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let jwt = format!("test-jwt-secret-{}", Uuid::now_v7().simple());
    let vars = [
        ("APP_ENV", "development".to_owned()),
        ("DATABASE_URL", database_url.to_owned()),
        ("DATA_DIR", data_dir.display().to_string()),
        ("JWT_SECRET", jwt),
        ("ENCRYPTION_KEY", key),
        ("WHATPRO_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
        ("WHATPRO_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("DATABASE_POOL_SIZE", "8".to_owned()),
        ("LOG_LEVEL", "warn".to_owned()),
    ];
    let mut config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("test configuration");
    config.port = 0;
    config.tuning.http_workers = 1;
    config
}

/// A running server on its own database.
pub struct TestApp {
    /// The server.
    pub server: RunningServer,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The database's owner URL (for direct checks).
    pub db_url: String,
    /// An HTTP client.
    pub http: reqwest::Client,
}

impl TestApp {
    /// Starts a server with the default test configuration.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusted the configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_on(fresh_database().await, tweak).await
    }

    /// Starts a server on an existing database.
    pub async fn start_on(db_url: String, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(&db_url);
        tweak(&mut config);
        let server = server::start_with_database(
            config,
            StartOptions::default(),
            DatabaseTarget {
                owner_url: db_url.clone(),
                embedded: None,
            },
            Instant::now(),
        )
        .await
        .expect("start the server");
        let base = format!("http://{}", server.addr);
        Self {
            server,
            base,
            db_url,
            http: reqwest::Client::builder().build().expect("client"),
        }
    }

    /// An absolute URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `ws://…` for `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.server.addr, path)
    }

    /// Logs in and returns the whole 200 body.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login request");
        assert_eq!(response.status(), 200, "login of {email}");
        response.json().await.expect("login body")
    }

    /// An access token of the bootstrap super_admin.
    pub async fn admin_token(&self) -> String {
        token_of(&self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await)
    }

    /// Creates an account directly in the database.
    pub async fn seed_account(&self, name: &str) -> Uuid {
        let name = name.to_owned();
        db::platform_tx(&self.server.state.db, db::PlatformScope::system(), |conn| {
            Box::pin(async move {
                Ok::<_, ApiError>(
                    accounts::insert(
                        conn,
                        &accounts::NewAccount {
                            id: Uuid::now_v7(),
                            name: &name,
                            is_platform: false,
                            chatwoot_account_id: None,
                            locale: None,
                        },
                    )
                    .await?,
                )
            })
        })
        .await
        .expect("insert account")
        .id
    }

    /// Creates a user with [`USER_PASSWORD`] directly in the database.
    pub async fn seed_user(&self, account_id: Uuid, email: &str, role: &str) -> Uuid {
        let hash = password::hash(USER_PASSWORD).expect("hash");
        let (email, role) = (email.to_owned(), role.to_owned());
        db::tenant_tx(&self.server.state.db, account_id, |conn| {
            Box::pin(async move {
                Ok::<_, ApiError>(
                    users::insert(
                        conn,
                        &users::NewUser {
                            id: Uuid::now_v7(),
                            account_id,
                            email: &email,
                            name: "Seeded User",
                            role: &role,
                            password_hash: Some(&hash),
                        },
                    )
                    .await?,
                )
            })
        })
        .await
        .expect("insert user")
        .id
    }

    /// The rows of `query` as JSON objects, run as the database owner in the platform scope
    /// (every tenant visible).
    pub async fn rows(&self, query: &str) -> Vec<Value> {
        use diesel_async::SimpleAsyncConnection;
        #[derive(diesel::QueryableByName)]
        struct Rows {
            #[diesel(sql_type = diesel::sql_types::Text)]
            rows: String,
        }
        let mut conn = AsyncPgConnection::establish(&self.db_url)
            .await
            .expect("owner connection");
        conn.batch_execute("SET app.platform = 'on'")
            .await
            .expect("platform scope");
        let found: Rows = diesel::sql_query(format!(
            "SELECT coalesce(json_agg(t), '[]'::json)::text AS rows FROM ({query}) t"
        ))
        .get_result(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("query rows: {e}\n{query}"));
        match serde_json::from_str(&found.rows).expect("rows JSON") {
            Value::Array(rows) => rows,
            other => panic!("not an array: {other}"),
        }
    }

    /// The one text column `t` of each row of `sql`, read by the server's own database role
    /// in the platform scope (every tenant visible, row-level security in force).
    pub async fn texts(&self, sql: impl Into<String>) -> Vec<Option<String>> {
        #[derive(diesel::QueryableByName)]
        struct TextRow {
            #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
            t: Option<String>,
        }
        let sql = sql.into();
        db::platform_tx(&self.server.state.db, db::PlatformScope::system(), |conn| {
            Box::pin(async move {
                Ok::<_, ApiError>(diesel::sql_query(sql).load::<TextRow>(conn).await?)
            })
        })
        .await
        .expect("platform query")
        .into_iter()
        .map(|r| r.t)
        .collect()
    }

    /// The text column `t` of the one row of `sql` (see [`TestApp::texts`]).
    pub async fn text(&self, sql: impl Into<String>) -> Option<String> {
        let rows = self.texts(sql).await;
        assert_eq!(rows.len(), 1, "exactly one row expected");
        rows.into_iter().next().flatten()
    }

    /// Runs SQL as the database owner.
    pub async fn sql(&self, statement: &str) {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = AsyncPgConnection::establish(&self.db_url)
            .await
            .expect("owner connection");
        // The platform scope, so row-level security does not hide the rows from an owner
        // that is not a superuser.
        conn.batch_execute(&format!("SET app.platform = 'on'; {statement}"))
            .await
            .expect("sql");
    }

    /// Opens a websocket with `?token=`.
    pub async fn ws(&self, token: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(self.ws_url(&format!("/ws?token={token}")))
            .await
            .expect("websocket connect");
        ws
    }

    /// Opens a websocket and consumes `session.ready`.
    pub async fn ws_ready(&self, token: &str) -> Ws {
        let mut ws = self.ws(token).await;
        let ready = next_json(&mut ws).await;
        assert_eq!(ready["event"], "session.ready", "{ready}");
        ws
    }

    /// Tries a websocket upgrade and returns the HTTP status and body of a refusal.
    pub async fn ws_refused(&self, request: impl IntoClientRequest + Unpin) -> (u16, Value) {
        match tokio_tungstenite::connect_async(request).await {
            Ok(_) => panic!("the upgrade was accepted"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                (status, body)
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        self.server.shutdown().await;
    }
}

/// The `token` of a login body.
pub fn token_of(login: &Value) -> String {
    login["token"].as_str().expect("token").to_owned()
}

/// The next text frame as JSON, skipping protocol pings and `presence.update` events (which
/// arrive whenever users of the tenant come and go; presence tests read them with
/// [`next_raw_frame`]), within 10 s.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let frame = next_raw_frame(ws).await;
        if frame["event"] != "presence.update" {
            return frame;
        }
    }
}

/// The next text frame as JSON, skipping protocol pings only (within 10 s).
pub async fn next_raw_frame(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("stream open")
            .expect("frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Sends a JSON text frame.
pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .expect("send");
}

/// Waits for the close frame and returns its code (within `within`).
pub async fn close_code(ws: &mut Ws, within: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("closed in time");
        match frame {
            Some(Ok(Message::Close(Some(close)))) => return close.code.into(),
            Some(Ok(Message::Close(None))) => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("connection failed without a close frame: {e}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

/// Asserts the conventions.md error shape and returns the body.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("X-Request-Id header");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    body
}

/// A free TCP port on loopback (for processes started by tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a: SocketAddr| a.port())
        .expect("free port")
}

impl TestApp {
    /// Opens a websocket whose client socket has a tiny receive buffer, so a client that stops
    /// reading backs up into the server quickly.
    pub async fn ws_small_buffer(&self, token: &str) -> Ws {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(self.server.addr).await.expect("connect");
        let request = self.ws_url(&format!("/ws?token={token}"));
        let (ws, _) = tokio_tungstenite::client_async(
            request,
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
        )
        .await
        .expect("upgrade");
        ws
    }

    /// A raw websocket client that never answers pings: it upgrades, waits `silence`, then
    /// returns every frame the server sent as (opcode, payload), up to the server's close.
    pub async fn ws_raw_silent(&self, token: &str, silence: Duration) -> Vec<(u8, Vec<u8>)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.server.addr)
            .await
            .expect("connect");
        let request = format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.server.addr
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("handshake");
        tokio::time::sleep(silence).await;
        let mut bytes = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes)).await;
        let head_end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("101 response")
            + 4;
        assert!(
            bytes.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&bytes[..head_end])
        );
        let mut frames = Vec::new();
        let mut rest = &bytes[head_end..];
        while rest.len() >= 2 {
            let opcode = rest[0] & 0x0f;
            let (len, header) = match rest[1] & 0x7f {
                126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            if rest.len() < header + len {
                break;
            }
            frames.push((opcode, rest[header..header + len].to_vec()));
            rest = &rest[header + len..];
        }
        frames
    }
}
