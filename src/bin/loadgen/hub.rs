//! The server under test and the data it needs.
//!
//! [`Hub::start`] either connects to a running hub (`--url`, with `--database-url` for
//! seeding) or brings up a private one: a PostgreSQL cluster of its own in a temporary
//! directory (`whatpro_hub::db::embedded`, from the PostgreSQL binaries installed on the
//! machine; never a server already running there), then the hub as a **separate process** on a
//! free port with `DATABASE_URL` pointing at that cluster, so its RSS and CPU can be read from
//! `/proc`. The hub process is this very binary re-executed in server mode (it links the same
//! `whatpro_hub` library as the `whatpro-hub` binary and runs the same `serve` command), so a
//! `cargo run --release --bin loadgen` always measures the current code; `--server-bin` runs
//! another binary instead (e.g. `target/release/whatpro-hub`).
//!
//! The super_admin comes from the first-start bootstrap (`WHATPRO_ADMIN_EMAIL` and
//! `WHATPRO_ADMIN_PASSWORD`). Accounts, users and boards are then created over the REST API
//! like a client would; cards are seeded in SQL with [`whatpro_hub::kanban::seed`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use uuid::Uuid;
use whatpro_hub::db::embedded::{self, EmbeddedOptions, EmbeddedPostgres};
use whatpro_hub::kanban::seed::{seed_cards, CardSeed};

use crate::{Common, Result};

/// The environment variable that makes this binary run the hub instead of a scenario.
pub const SERVER_ROLE_VAR: &str = "WHATPRO_LOADGEN_SERVER";

/// Email of the super_admin the bootstrap creates for the load generator.
const ROOT_EMAIL: &str = "root@loadgen.test";

/// Stages of every board the load generator creates (the last two are closing stages).
pub const STAGES: [(&str, bool); 6] = [
    ("Novo", false),
    ("Qualificação", false),
    ("Proposta", false),
    ("Negociação", false),
    ("Ganho", true),
    ("Perdido", true),
];

/// A hub under test.
pub struct Hub {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The HTTP client every request goes through (keep-alive connection pool).
    pub http: reqwest::Client,
    /// A URL with rights to insert cards (the cluster's superuser, or `--database-url`).
    pub db_url: String,
    /// The hub process, when known.
    pub server_pid: Option<u32>,
    /// The PostgreSQL postmaster, when the load generator started it.
    pub postmaster_pid: Option<u32>,
    /// The private cluster, when the load generator started it.
    pub cluster: Option<EmbeddedPostgres>,
    /// `synchronous_commit`/`fsync` off (`--fast-unsafe`).
    pub fast_unsafe: bool,
    root_email: String,
    root_password: String,
    child: Option<Child>,
    dir: Option<PathBuf>,
    keep: bool,
}

/// An account with its admin signed in and some agents to assign cards to.
pub struct Tenant {
    /// The account.
    pub id: Uuid,
    /// The admin's access token.
    pub token: String,
    /// The admin.
    pub admin_id: Uuid,
    /// Agents (assignees of seeded cards).
    pub agents: Vec<Uuid>,
}

/// A board with its stages and seeded cards.
pub struct Board {
    /// The board.
    pub id: Uuid,
    /// Its stages in order.
    pub stages: Vec<Uuid>,
    /// Its cards.
    pub cards: Vec<Uuid>,
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The last lines of a file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

impl Hub {
    /// Connects to `--url`, or starts a private cluster and hub.
    pub async fn start(common: &Common) -> Result<Hub> {
        if let Some(url) = &common.url {
            let (Some(email), Some(password), Some(db_url)) =
                (&common.email, &common.password, &common.database_url)
            else {
                return Err(
                    "--url needs --email and --password (a super_admin) and --database-url \
                     (to seed cards)"
                        .into(),
                );
            };
            return Ok(Hub {
                base: url.trim_end_matches('/').to_owned(),
                http: http_client()?,
                db_url: db_url.clone(),
                server_pid: common.server_pid,
                postmaster_pid: None,
                cluster: None,
                fast_unsafe: false,
                root_email: email.clone(),
                root_password: password.clone(),
                child: None,
                dir: None,
                keep: true,
            });
        }

        let dir = std::env::temp_dir().join(format!("whatpro-loadgen-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut hub = Hub {
            base: String::new(),
            http: http_client()?,
            db_url: String::new(),
            server_pid: None,
            postmaster_pid: None,
            cluster: None,
            fast_unsafe: common.fast_unsafe,
            root_email: ROOT_EMAIL.to_owned(),
            root_password: random_password(),
            child: None,
            dir: Some(dir.clone()),
            keep: common.keep,
        };
        // From here on, `hub.stop()` cleans up whatever was started.
        match hub.boot(common, &dir).await {
            Ok(()) => Ok(hub),
            Err(e) => {
                hub.stop().await;
                Err(e)
            }
        }
    }

    async fn boot(&mut self, common: &Common, dir: &Path) -> Result<()> {
        let started = Instant::now();
        let cluster = embedded::start(EmbeddedOptions {
            data_dir: dir.join("db"),
            fast_unsafe: common.fast_unsafe,
        })
        .await?;
        self.postmaster_pid = Some(cluster.pid());
        let database = whatpro_hub::server::EMBEDDED_DATABASE;
        whatpro_hub::db::ensure_database(&cluster.url("postgres"), database, None).await?;
        self.db_url = cluster.url(database);
        self.cluster = Some(cluster);
        eprintln!(
            "loadgen: PostgreSQL cluster ready in {:.1} s ({})",
            started.elapsed().as_secs_f64(),
            if common.fast_unsafe {
                "fsync off, synchronous_commit off"
            } else {
                "durable: fsync on, synchronous_commit on"
            }
        );

        let port = free_port()?;
        self.base = format!("http://127.0.0.1:{port}");
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = match &common.server_bin {
            Some(bin) => Command::new(bin),
            None => {
                let mut command = Command::new(std::env::current_exe()?);
                command.env(SERVER_ROLE_VAR, "1");
                command
            }
        };
        command
            .arg("serve")
            .current_dir(dir)
            .env("APP_ENV", "development")
            .env("DATABASE_URL", &self.db_url)
            .env("DATA_DIR", dir.join("hub"))
            .env("BIND", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("PUBLIC_URL", &self.base)
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", &common.server_log_level)
            .env("WHATPRO_ADMIN_EMAIL", &self.root_email)
            .env("WHATPRO_ADMIN_PASSWORD", &self.root_password)
            // One token drives every client: lift the per-user budget (1 000/min by default)
            // to its maximum, so the limiter still runs but never refuses.
            .env("RATE_LIMIT_USER_PER_MIN", "1000000")
            .env("RATE_LIMIT_LOGIN_PER_MIN", "1000");
        if let Some(pool) = common.pool_size {
            command.env("DATABASE_POOL_SIZE", pool.to_string());
        }
        for var in ["REDIS_URL", "METRICS_BIND", "CHATWOOT_URL", "JWT_SECRET"] {
            command.env_remove(var);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .process_group(0)
            .spawn()?;
        self.server_pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    return Err(format!(
                        "the hub exited during start-up ({status}); last lines of {}:\n{}",
                        log_path.display(),
                        tail(&log_path, 30)
                    )
                    .into());
                }
            }
            let ready = self
                .http
                .get(format!("{}/health/ready", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the hub was not ready within 90 s; last lines of {}:\n{}",
                    log_path.display(),
                    tail(&log_path, 30)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rss = self
            .server_pid
            .and_then(crate::stats::rss_kib)
            .map_or_else(|| "?".to_owned(), |(rss, _)| crate::stats::mib(rss));
        eprintln!(
            "loadgen: hub pid {} ready on {} after {:.1} s, RSS {rss} (log: {})",
            self.server_pid.unwrap_or(0),
            self.base,
            started.elapsed().as_secs_f64(),
            log_path.display()
        );
        Ok(())
    }

    /// Stops what [`Hub::start`] started (SIGTERM to the hub, then the cluster) and removes
    /// the temporary directory unless `--keep`.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            if tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        if let Some(mut cluster) = self.cluster.take() {
            cluster.stop().await;
        }
        if let Some(dir) = self.dir.take() {
            if self.keep {
                eprintln!("loadgen: kept {}", dir.display());
            } else {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    /// The database's durability, for the report.
    pub fn durability(&self) -> &'static str {
        match (&self.cluster, self.fast_unsafe) {
            (None, _) => "the --url hub's PostgreSQL",
            (Some(_), false) => {
                "private PostgreSQL cluster, durable (fsync, synchronous_commit on)"
            }
            (Some(_), true) => {
                "private PostgreSQL cluster, --fast-unsafe (fsync, synchronous_commit off)"
            }
        }
    }

    /// A JSON call that must answer `expected`; answers the body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
        expected: u16,
    ) -> Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if status != expected {
            return Err(
                format!("{method} {path}: HTTP {status} (wanted {expected}): {text}").into(),
            );
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// Signs in; answers the access token and the user's id.
    pub async fn login(&self, email: &str, password: &str) -> Result<(String, Uuid)> {
        let body = json!({ "email": email, "password": password });
        let answer = self
            .call(Method::POST, "/api/v1/auth/login", None, &body, 200)
            .await?;
        let token = answer["token"]
            .as_str()
            .ok_or("login answered no token")?
            .to_owned();
        Ok((token, id_of(&answer["user"])?))
    }

    /// A new account on the `enterprise` plan (no quotas) with a signed-in admin and `agents`
    /// agents, all created through the API as the super_admin.
    pub async fn tenant(&self, agents: usize) -> Result<Tenant> {
        let (root, _) = self.login(&self.root_email, &self.root_password).await?;
        let name = format!("Loadgen {}", Uuid::now_v7().simple());
        let account = self
            .call(
                Method::POST,
                "/api/v1/accounts",
                Some(&root),
                &json!({ "name": name, "plan": "enterprise", "locale": "pt-BR" }),
                201,
            )
            .await?;
        let id = id_of(&account)?;
        let slug = Uuid::now_v7().simple().to_string();
        let users = format!("/api/v1/accounts/{id}/users");
        let admin_email = format!("admin-{slug}@loadgen.test");
        let password = random_password();
        self.call(
            Method::POST,
            &users,
            Some(&root),
            &json!({ "email": admin_email, "name": "Loadgen Admin", "role": "admin",
                     "password": password }),
            201,
        )
        .await?;
        let mut agent_ids = Vec::with_capacity(agents);
        for n in 0..agents {
            let agent = self
                .call(
                    Method::POST,
                    &users,
                    Some(&root),
                    &json!({ "email": format!("agent{n}-{slug}@loadgen.test"),
                             "name": format!("Agente {n}"), "role": "agent" }),
                    201,
                )
                .await?;
            agent_ids.push(id_of(&agent)?);
        }
        let (token, admin_id) = self.login(&admin_email, &password).await?;
        Ok(Tenant {
            id,
            token,
            admin_id,
            agents: agent_ids,
        })
    }

    /// A board with [`STAGES`] created through the API, then `cards` cards seeded in SQL.
    pub async fn board(
        &self,
        tenant: &Tenant,
        name: &str,
        cards: usize,
        seed: i64,
    ) -> Result<Board> {
        let stages: Vec<Value> = STAGES
            .iter()
            .map(|(name, is_final)| json!({ "name": name, "is_final": is_final }))
            .collect();
        let board = self
            .call(
                Method::POST,
                &format!("/api/v1/accounts/{}/boards", tenant.id),
                Some(&tenant.token),
                &json!({ "name": name, "type": "sales", "stages": stages }),
                201,
            )
            .await?;
        let id = id_of(&board)?;
        let stages = board["stages"]
            .as_array()
            .ok_or("a board without stages")?
            .iter()
            .map(id_of)
            .collect::<Result<Vec<_>>>()?;
        let mut conn = AsyncPgConnection::establish(&self.db_url).await?;
        let cards = seed_cards(
            &mut conn,
            &CardSeed {
                account_id: tenant.id,
                board_id: id,
                stages: &stages,
                count: cards,
                assignees: &tenant.agents,
                created_by: Some(tenant.admin_id),
                seed,
            },
        )
        .await?;
        Ok(Board { id, stages, cards })
    }

    /// Runs `sql` (a query answering one bigint column `n`) on the hub's database.
    pub async fn count(&self, sql: &str) -> Result<i64> {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = AsyncPgConnection::establish(&self.db_url).await?;
        conn_set_platform(&mut conn).await?;
        let row: N =
            diesel_async::RunQueryDsl::get_result(diesel::sql_query(sql), &mut conn).await?;
        Ok(row.n)
    }
}

/// Lets an owner connection (not a superuser) read every tenant's rows.
async fn conn_set_platform(conn: &mut AsyncPgConnection) -> Result<()> {
    diesel_async::SimpleAsyncConnection::batch_execute(conn, "SET app.platform = 'on'").await?;
    Ok(())
}

/// The `id` of a JSON resource.
pub fn id_of(value: &Value) -> Result<Uuid> {
    Ok(value["id"]
        .as_str()
        .ok_or_else(|| format!("no id in {value}"))?
        .parse()?)
}
