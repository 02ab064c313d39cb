//! Embedded PostgreSQL: a private cluster run from the PostgreSQL server binaries installed on
//! the machine, used when `DATABASE_URL` is unset (architecture.md, "Storage") and by the test
//! harness when `TEST_DATABASE_URL` is unset.
//!
//! This module owns:
//! - `DATA_DIR/pg`: the cluster, made once by `initdb` (superuser `whatpro`, trust
//!   authentication, UTF-8). `initdb` runs in a temporary sibling directory that is renamed
//!   into place only on success, so an interrupted `initdb` never leaves a half-made cluster.
//!   The server log is `DATA_DIR/pg/log/postgres.log` (rotated once at 10 MiB).
//! - `DATA_DIR/run`: mode 0700, holding the unix socket `.s.PGSQL.5432` and the start lock
//!   `embedded.lock` that serialises concurrent starts on the same `DATA_DIR`.
//! - The `postgres` child process, in its own process group so a terminal Ctrl-C reaches only
//!   the hub, which stops PostgreSQL last (operations.md, graceful shutdown step 5) with
//!   [`EmbeddedPostgres::stop`] (SIGINT, PostgreSQL's "fast" mode).
//!
//! PostgreSQL listens on the unix socket only (`listen_addresses` is empty, never TCP).
//! Authentication is `trust`; the socket directory and the socket itself are 0700, so only the
//! cluster's OS user (and root) can connect.
//!
//! PostgreSQL refuses to run as root. When the hub runs as root, `initdb` and `postgres` run as
//! an unprivileged user: the owner of an existing cluster, else `postgres`, else `nobody`, with
//! supplementary groups cleared.
//!
//! If a postmaster already serves the cluster (its `postmaster.pid` names a live process and
//! the socket answers), [`start`] reuses it without owning it: [`EmbeddedPostgres::stop`] then
//! leaves it running. This lets several test processes share one cluster.
//!
//! Databases and roles other than the `whatpro` superuser are created by the caller, through a
//! connection to [`EmbeddedPostgres::url`].

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Gid, Pid, Uid, User};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// Name of the PostgreSQL superuser created by `initdb`.
pub const SUPERUSER: &str = "whatpro";

/// Port number of the cluster. Only the unix socket is used, so it cannot collide with a
/// PostgreSQL listening on TCP; it only names the socket file (`.s.PGSQL.5432`).
pub const PORT: u16 = 5432;

/// `max_connections` of the embedded cluster.
pub const MAX_CONNECTIONS: u32 = 300;

/// How long [`start`] waits for the server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`EmbeddedPostgres::stop`] waits after SIGINT before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`start`] waits for another process that is starting the same cluster.
const LOCK_TIMEOUT: Duration = Duration::from_secs(180);
/// Interval between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Lines of a log quoted in errors.
const LOG_TAIL_LINES: usize = 20;
/// The server log is renamed to `postgres.log.1` at start when larger than this.
const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;
/// Longest unix socket path the kernel accepts (`sizeof(sun_path)` minus the NUL byte).
const MAX_SOCKET_PATH: usize = if cfg!(any(target_os = "linux", target_os = "android")) {
    107
} else {
    103
};
/// Prefix of the temporary directories `initdb` runs in (siblings of `DATA_DIR/pg`).
const INITDB_TMP_PREFIX: &str = "pg.initdb-";
/// Client environment variables that must not leak into the server tools.
const PG_ENV: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGOPTIONS",
    "PGSERVICE",
    "PGSERVICEFILE",
];

/// Options of [`start`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// The hub's `DATA_DIR`; the cluster lives in `DATA_DIR/pg`, the socket in `DATA_DIR/run`.
    pub data_dir: PathBuf,
    /// Tests only: `fsync=off`, `synchronous_commit=off`, `full_page_writes=off` (and
    /// `initdb --no-sync`). A crash can then corrupt the cluster. Ignored when an already
    /// running server is reused.
    pub fast_unsafe: bool,
}

/// Why the embedded PostgreSQL could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No `initdb`/`postgres` binaries were found.
    #[error(
        "PostgreSQL server binaries (initdb and postgres) not found (looked at: {searched}). \
         Install the PostgreSQL server package (Debian/Ubuntu: `apt-get install postgresql`; \
         Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql`) \
         or set DATABASE_URL to an external PostgreSQL server"
    )]
    BinariesNotFound {
        /// The places searched, for the message.
        searched: String,
    },
    /// A file system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path or program.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `initdb` failed.
    #[error("initdb failed for {dir}: {reason}; its output:\n{log}")]
    InitdbFailed {
        /// The cluster directory being initialised.
        dir: PathBuf,
        /// Exit status or other cause.
        reason: String,
        /// The last lines of `initdb`'s output (of each locale attempt).
        log: String,
    },
    /// `postgres` exited early or did not become ready in time.
    #[error("embedded PostgreSQL did not start: {reason}; last lines of {log_path}:\n{log}")]
    StartFailed {
        /// Exit status, timeout or other cause.
        reason: String,
        /// The server log file.
        log_path: PathBuf,
        /// The last lines the server wrote to it during this start.
        log: String,
    },
    /// The unprivileged user PostgreSQL runs as cannot reach `DATA_DIR`.
    #[error(
        "PostgreSQL refuses to run as root, so it runs as user `{user}`, who cannot traverse \
         {dir}; set DATA_DIR to a directory elsewhere (e.g. under /var/lib or /tmp), or grant \
         search (x) permission on {dir}"
    )]
    NotTraversable {
        /// The first directory on the path to `DATA_DIR` the user cannot search.
        dir: PathBuf,
        /// The user PostgreSQL runs as.
        user: String,
    },
    /// `DATA_DIR` is too long for a unix socket path.
    #[error(
        "the PostgreSQL unix socket path {path} is {len} bytes, over the limit of {max}; \
         use a shorter DATA_DIR"
    )]
    SocketPathTooLong {
        /// The socket path that would be used.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The longest length the kernel accepts.
        max: usize,
    },
    /// Running as root and no unprivileged user exists to run PostgreSQL.
    #[error(
        "the hub runs as root and PostgreSQL refuses root, but neither a `postgres` nor a \
         `nobody` user exists; create a `postgres` system user, run the hub as a non-root \
         user, or set DATABASE_URL to an external PostgreSQL server"
    )]
    NoUnprivilegedUser,
    /// `DATA_DIR/pg` exists, is not empty and is not a PostgreSQL cluster.
    #[error(
        "{dir} exists but is not a PostgreSQL cluster (no PG_VERSION); move it away so a new \
         cluster can be created there"
    )]
    NotACluster {
        /// The cluster directory.
        dir: PathBuf,
    },
    /// Another process kept the start lock too long.
    #[error("another process held the embedded PostgreSQL start lock {path} for over {secs} s")]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        secs: u64,
    },
}

impl EmbeddedError {
    fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Self::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// A running embedded PostgreSQL server, started or reused by [`start`].
///
/// Call [`stop`](Self::stop) on shutdown. Dropping a handle that still owns a running server
/// sends it SIGINT (fast shutdown) without waiting.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    cluster_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    pid: u32,
    child: Option<Child>,
    created_cluster: bool,
}

/// Starts the embedded PostgreSQL of `opts.data_dir`, or reuses the server already running on
/// that cluster.
///
/// Creates `DATA_DIR` (0700) if needed, runs `initdb` when `DATA_DIR/pg/PG_VERSION` is missing,
/// then starts `postgres` and waits up to 30 s until it accepts connections on its unix socket.
pub async fn start(opts: EmbeddedOptions) -> Result<EmbeddedPostgres, EmbeddedError> {
    let layout = tokio::task::spawn_blocking(move || Layout::prepare(&opts.data_dir))
        .await
        .map_err(|e| EmbeddedError::io("embedded PostgreSQL preparation", io::Error::other(e)))??;

    let _lock = acquire_start_lock(&layout.lock_path()).await?;

    if let Some(pid) = running_postmaster(&layout).await {
        tracing::info!(
            pid,
            socket_dir = %layout.socket_dir.display(),
            "reusing the embedded PostgreSQL already running on this cluster"
        );
        return Ok(layout.into_handle(pid, None, false));
    }

    let created_cluster = if layout.cluster_dir.join("PG_VERSION").is_file() {
        false
    } else {
        init_cluster(&layout, opts.fast_unsafe).await?;
        true
    };

    let (child, pid) = spawn_postgres(&layout, opts.fast_unsafe).await?;
    Ok(layout.into_handle(pid, Some(child), created_cluster))
}

impl EmbeddedPostgres {
    /// Directory holding the unix socket (`DATA_DIR/run`, canonical absolute path).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Port number naming the socket file; no TCP port is opened.
    pub fn port(&self) -> u16 {
        PORT
    }

    /// The superuser created by `initdb` (`whatpro`); no password (trust authentication).
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// Connection URL for `database`, understood by tokio-postgres (and so diesel-async):
    /// `postgres://whatpro@<percent-encoded socket dir>:5432/<database>`.
    pub fn url(&self, database: &str) -> String {
        socket_url(&self.socket_dir, PORT, database)
    }

    /// Whether this handle started the server and will stop it: false when an already running
    /// server was reused, and after [`stop`](Self::stop).
    pub fn owns_process(&self) -> bool {
        self.child.is_some()
    }

    /// Whether this start ran `initdb` (a new, empty cluster).
    pub fn created_cluster(&self) -> bool {
        self.created_cluster
    }

    /// Process id of the postmaster (started or reused).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The cluster directory (`DATA_DIR/pg`).
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster_dir
    }

    /// The `DATA_DIR` this server belongs to (canonical absolute path).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Stops the server if this handle owns it: SIGINT (fast shutdown: open transactions are
    /// rolled back, clients disconnected), then SIGKILL after 30 s. Does nothing for a reused
    /// server or when already stopped; safe to call several times.
    pub async fn stop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        let started = Instant::now();
        match shutdown_child(child, STOP_TIMEOUT).await {
            Ok(status) => tracing::info!(
                pid = self.pid,
                %status,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "embedded PostgreSQL stopped"
            ),
            Err(e) => tracing::warn!(pid = self.pid, error = %e, "stopping embedded PostgreSQL"),
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                    // Best effort: the server finishes its fast shutdown on its own.
                    let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
                }
            }
        }
    }
}

/// The server binaries to use.
#[derive(Debug, Clone)]
struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
    pg_isready: Option<PathBuf>,
}

/// The unprivileged user PostgreSQL runs as when the hub runs as root.
#[derive(Debug, Clone)]
struct RunAs {
    uid: Uid,
    gid: Gid,
    name: String,
}

/// Paths, binaries and user of one `DATA_DIR`, prepared before anything is started.
#[derive(Debug)]
struct Layout {
    data_dir: PathBuf,
    cluster_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    bins: Binaries,
    run_as: Option<RunAs>,
}

impl Layout {
    /// Creates `DATA_DIR` and `DATA_DIR/run`, finds the binaries and the user, checks paths.
    /// Blocking: run it off the async workers.
    fn prepare(data_dir: &Path) -> Result<Self, EmbeddedError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|e| EmbeddedError::io(format!("creating {}", data_dir.display()), e))?;
        let data_dir = fs::canonicalize(data_dir)
            .map_err(|e| EmbeddedError::io(format!("resolving {}", data_dir.display()), e))?;
        let cluster_dir = data_dir.join("pg");
        let socket_dir = data_dir.join("run");

        let socket_file = socket_dir.join(format!(".s.PGSQL.{PORT}"));
        let len = socket_file.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(EmbeddedError::SocketPathTooLong {
                path: socket_file,
                len,
                max: MAX_SOCKET_PATH,
            });
        }

        let bins = find_binaries()?;
        let run_as = if Uid::effective().is_root() {
            let user = choose_user(&cluster_dir)?;
            ensure_traversable(&data_dir, &user)?;
            Some(user)
        } else {
            None
        };

        if cluster_dir.exists()
            && !cluster_dir.join("PG_VERSION").is_file()
            && !dir_is_empty(&cluster_dir)?
        {
            return Err(EmbeddedError::NotACluster { dir: cluster_dir });
        }

        fs::DirBuilder::new()
            .mode(0o700)
            .create(&socket_dir)
            .or_else(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| EmbeddedError::io(format!("creating {}", socket_dir.display()), e))?;
        own_dir(&socket_dir, run_as.as_ref())?;

        Ok(Self {
            log_path: cluster_dir.join("log").join("postgres.log"),
            data_dir,
            cluster_dir,
            socket_dir,
            bins,
            run_as,
        })
    }

    fn socket_file(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{PORT}"))
    }

    fn lock_path(&self) -> PathBuf {
        self.socket_dir.join("embedded.lock")
    }

    fn into_handle(
        self,
        pid: u32,
        child: Option<Child>,
        created_cluster: bool,
    ) -> EmbeddedPostgres {
        EmbeddedPostgres {
            data_dir: self.data_dir,
            cluster_dir: self.cluster_dir,
            socket_dir: self.socket_dir,
            log_path: self.log_path,
            pid,
            child,
            created_cluster,
        }
    }

    /// A command for a server tool, run as the cluster's user, with a clean PG environment.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.data_dir).stdin(Stdio::null());
        for var in PG_ENV {
            cmd.env_remove(var);
        }
        if let Some(user) = &self.run_as {
            let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
            // Drop privileges ourselves, in the only safe order: supplementary groups first,
            // then the group, then the user (after setuid the first two would be refused).
            // `Command::uid/gid` would run before `pre_exec` hooks, too late for setgroups.
            // SAFETY: the hook runs in the forked child before exec and only makes
            // async-signal-safe system calls; it neither allocates nor takes locks.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }
}

/// Finds `initdb` and `postgres`: `pg_config --bindir`, then the highest
/// `/usr/lib/postgresql/<N>/bin`, then `PATH`.
fn find_binaries() -> Result<Binaries, EmbeddedError> {
    let mut searched = Vec::new();

    match pg_config_bindir() {
        Some(dir) => {
            if let Some(bins) = binaries_in(&dir) {
                return Ok(bins);
            }
            searched.push(format!("pg_config --bindir ({})", dir.display()));
        }
        None => searched.push("pg_config --bindir (no pg_config)".to_owned()),
    }

    let lib = Path::new("/usr/lib/postgresql");
    for dir in versioned_bindirs(lib) {
        if let Some(bins) = binaries_in(&dir) {
            return Ok(bins);
        }
    }
    searched.push(format!("{}/<version>/bin", lib.display()));

    if let (Some(initdb), Some(postgres)) = (find_in_path("initdb"), find_in_path("postgres")) {
        let pg_isready = postgres
            .parent()
            .map(|dir| dir.join("pg_isready"))
            .filter(|p| is_executable(p))
            .or_else(|| find_in_path("pg_isready"));
        return Ok(Binaries {
            initdb,
            postgres,
            pg_isready,
        });
    }
    searched.push("PATH".to_owned());

    Err(EmbeddedError::BinariesNotFound {
        searched: searched.join(", "),
    })
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = std::process::Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let dir = text.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// The binaries in `dir`, if it has both `initdb` and `postgres`.
fn binaries_in(dir: &Path) -> Option<Binaries> {
    let initdb = dir.join("initdb");
    let postgres = dir.join("postgres");
    if !is_executable(&initdb) || !is_executable(&postgres) {
        return None;
    }
    let pg_isready = Some(dir.join("pg_isready"))
        .filter(|p| is_executable(p))
        .or_else(|| find_in_path("pg_isready"));
    Some(Binaries {
        initdb,
        postgres,
        pg_isready,
    })
}

/// `<root>/<version>/bin` for every numeric version directory, highest version first.
fn versioned_bindirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; anything else → `None`.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn dir_is_empty(dir: &Path) -> Result<bool, EmbeddedError> {
    let mut entries = fs::read_dir(dir)
        .map_err(|e| EmbeddedError::io(format!("reading {}", dir.display()), e))?;
    Ok(entries.next().is_none())
}

/// The user to run PostgreSQL as when the hub is root: the owner of an existing cluster (so a
/// cluster made by another user keeps working), else `postgres`, else `nobody`.
fn choose_user(cluster_dir: &Path) -> Result<RunAs, EmbeddedError> {
    if cluster_dir.join("PG_VERSION").is_file() {
        if let Ok(meta) = fs::metadata(cluster_dir) {
            if meta.uid() != 0 {
                let uid = Uid::from_raw(meta.uid());
                let name = User::from_uid(uid)
                    .ok()
                    .flatten()
                    .map_or_else(|| format!("uid {uid}"), |u| u.name);
                return Ok(RunAs {
                    uid,
                    gid: Gid::from_raw(meta.gid()),
                    name,
                });
            }
        }
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = User::from_name(name) {
            if !user.uid.is_root() {
                return Ok(RunAs {
                    uid: user.uid,
                    gid: user.gid,
                    name: user.name,
                });
            }
        }
    }
    Err(EmbeddedError::NoUnprivilegedUser)
}

/// Whether `user` (with no supplementary groups) may search a directory with `meta`, by its
/// mode bits (ACLs are not consulted).
fn can_search(meta: &fs::Metadata, user: &RunAs) -> bool {
    let mode = meta.mode();
    if meta.uid() == user.uid.as_raw() {
        mode & 0o100 != 0
    } else if meta.gid() == user.gid.as_raw() {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Makes sure `user` can reach `data_dir/pg` and `data_dir/run`.
///
/// `DATA_DIR` is created 0700 (operations.md), which would lock the PostgreSQL user out of its
/// own subdirectories. When `DATA_DIR` itself is root's and not searchable, it gets the search
/// bit for group and others (0700 → 0711): traverse only, so nobody can list it, and
/// `secrets/` and `attachments/` keep their own 0700/0600 modes. Ancestors are never changed:
/// an unsearchable ancestor is an error naming it.
fn ensure_traversable(data_dir: &Path, user: &RunAs) -> Result<(), EmbeddedError> {
    let mut dirs: Vec<&Path> = data_dir.ancestors().collect();
    dirs.reverse();
    for dir in dirs {
        let meta = fs::metadata(dir)
            .map_err(|e| EmbeddedError::io(format!("inspecting {}", dir.display()), e))?;
        if can_search(&meta, user) {
            continue;
        }
        if dir == data_dir && meta.uid() == 0 {
            let mode = (meta.mode() & 0o7777) | 0o011;
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(|e| {
                EmbeddedError::io(format!("making {} traversable", dir.display()), e)
            })?;
            tracing::info!(
                dir = %dir.display(),
                mode = format!("{mode:o}"),
                user = %user.name,
                "made DATA_DIR traversable (search only) for the PostgreSQL user"
            );
            continue;
        }
        return Err(EmbeddedError::NotTraversable {
            dir: dir.to_path_buf(),
            user: user.name.clone(),
        });
    }
    Ok(())
}

/// Sets `dir` to mode 0700, owned by `user` when running as root.
fn own_dir(dir: &Path, user: Option<&RunAs>) -> Result<(), EmbeddedError> {
    if let Some(user) = user {
        chown(dir, user)?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| EmbeddedError::io(format!("setting mode 0700 on {}", dir.display()), e))
}

fn chown(path: &Path, user: &RunAs) -> Result<(), EmbeddedError> {
    nix::unistd::chown(path, Some(user.uid), Some(user.gid)).map_err(|e| {
        EmbeddedError::io(
            format!("changing the owner of {} to {}", path.display(), user.name),
            e,
        )
    })
}

/// Takes the exclusive start lock, waiting while another process holds it.
async fn acquire_start_lock(path: &Path) -> Result<Flock<fs::File>, EmbeddedError> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| EmbeddedError::io(format!("opening {}", path.display()), e))?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((returned, Errno::EWOULDBLOCK)) => {
                if Instant::now() >= deadline {
                    return Err(EmbeddedError::LockTimeout {
                        path: path.to_path_buf(),
                        secs: LOCK_TIMEOUT.as_secs(),
                    });
                }
                file = returned;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err((_, errno)) => {
                return Err(EmbeddedError::io(
                    format!("locking {}", path.display()),
                    errno,
                ));
            }
        }
    }
}

/// The pid of a postmaster already serving this cluster and answering on our socket.
async fn running_postmaster(layout: &Layout) -> Option<u32> {
    let text = tokio::fs::read_to_string(layout.cluster_dir.join("postmaster.pid"))
        .await
        .ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    if pid <= 0 || !process_alive(pid) {
        return None;
    }
    UnixStream::connect(layout.socket_file()).await.ok()?;
    // It accepts connections at the socket level; wait until it really serves queries (it may
    // still be starting up or recovering).
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if probe_ready(layout).await {
            return u32::try_from(pid).ok();
        }
        if !process_alive(pid) {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    None
}

fn process_alive(pid: i32) -> bool {
    matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM))
}

/// Whether the server accepts connections: the socket accepts, and `pg_isready` says so (or,
/// without `pg_isready`, `postmaster.pid` reports `ready`).
async fn probe_ready(layout: &Layout) -> bool {
    if UnixStream::connect(layout.socket_file()).await.is_err() {
        return false;
    }
    if let Some(pg_isready) = &layout.bins.pg_isready {
        let mut cmd = Command::new(pg_isready);
        cmd.arg("-q")
            .arg("-h")
            .arg(&layout.socket_dir)
            .arg("-p")
            .arg(PORT.to_string())
            .args(["-U", SUPERUSER, "-d", "postgres", "-t", "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for var in PG_ENV {
            cmd.env_remove(var);
        }
        if let Ok(mut child) = cmd.spawn() {
            return matches!(
                tokio::time::timeout(Duration::from_secs(5), child.wait()).await,
                Ok(Ok(status)) if status.success()
            );
        }
    }
    tokio::fs::read_to_string(layout.cluster_dir.join("postmaster.pid"))
        .await
        .is_ok_and(|text| text.lines().nth(7).map(str::trim) == Some("ready"))
}

/// Runs `initdb` into a temporary sibling of `DATA_DIR/pg`, then renames it into place.
async fn init_cluster(layout: &Layout, fast_unsafe: bool) -> Result<(), EmbeddedError> {
    remove_stale_initdb_dirs(&layout.data_dir).await;
    let tmp = layout.data_dir.join(format!(
        "{INITDB_TMP_PREFIX}{}",
        uuid::Uuid::now_v7().simple()
    ));
    let started = Instant::now();
    let mut log = String::new();
    let mut reason = String::new();

    for locale in ["C.UTF-8", "C"] {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(|e| EmbeddedError::io(format!("creating {}", tmp.display()), e))?;
        own_dir(&tmp, layout.run_as.as_ref())?;

        let mut cmd = layout.command(&layout.bins.initdb);
        cmd.arg("-D")
            .arg(&tmp)
            .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8"])
            .arg(format!("--locale={locale}"))
            .arg("--no-instructions")
            .kill_on_drop(true);
        if fast_unsafe {
            cmd.arg("--no-sync");
        }
        let output = cmd.output().await;
        match output {
            Ok(out) if out.status.success() => {
                return install_cluster(layout, &tmp, locale, started).await;
            }
            Ok(out) => {
                reason = format!("initdb exited with {}", out.status);
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                log.push_str(&format!("--- initdb --locale={locale}: {}\n", out.status));
                log.push_str(&last_lines(&text, LOG_TAIL_LINES));
                log.push('\n');
            }
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&tmp).await;
                return Err(EmbeddedError::io(
                    format!("running {}", layout.bins.initdb.display()),
                    e,
                ));
            }
        }
        tracing::warn!(locale, %reason, "initdb failed");
        if let Err(e) = tokio::fs::remove_dir_all(&tmp).await {
            tracing::warn!(dir = %tmp.display(), error = %e, "removing a failed initdb directory");
        }
    }
    Err(EmbeddedError::InitdbFailed {
        dir: layout.cluster_dir.clone(),
        reason,
        log,
    })
}

/// Renames a finished `initdb` directory to `DATA_DIR/pg`.
async fn install_cluster(
    layout: &Layout,
    tmp: &Path,
    locale: &str,
    started: Instant,
) -> Result<(), EmbeddedError> {
    // An empty `DATA_DIR/pg` (checked in `prepare`) is replaced by the rename.
    if let Err(e) = tokio::fs::rename(tmp, &layout.cluster_dir).await {
        let _ = tokio::fs::remove_dir_all(tmp).await;
        return Err(EmbeddedError::io(
            format!(
                "moving the new cluster {} to {}",
                tmp.display(),
                layout.cluster_dir.display()
            ),
            e,
        ));
    }
    tracing::info!(
        dir = %layout.cluster_dir.display(),
        locale,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "created the embedded PostgreSQL cluster"
    );
    Ok(())
}

/// Removes `DATA_DIR/pg.initdb-*` left by an interrupted `initdb` (we hold the start lock, so
/// no other `initdb` of ours is running).
async fn remove_stale_initdb_dirs(data_dir: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(data_dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let stale = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(INITDB_TMP_PREFIX));
        if stale {
            let path = entry.path();
            tracing::info!(dir = %path.display(), "removing an interrupted initdb directory");
            if let Err(e) = tokio::fs::remove_dir_all(&path).await {
                tracing::warn!(
                    dir = %path.display(),
                    error = %e,
                    "removing a stale initdb directory"
                );
            }
        }
    }
}

/// Opens the server log for appending (rotating it when large) and returns it with the offset
/// this start's output begins at.
fn open_log(layout: &Layout) -> Result<(fs::File, u64), EmbeddedError> {
    let path = &layout.log_path;
    let dir = path.parent().unwrap_or(&layout.cluster_dir);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| EmbeddedError::io(format!("creating {}", dir.display()), e))?;
    if let Some(user) = &layout.run_as {
        chown(dir, user)?;
    }
    if fs::metadata(path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let old = path.with_extension("log.1");
        fs::rename(path, &old)
            .map_err(|e| EmbeddedError::io(format!("rotating {}", path.display()), e))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| EmbeddedError::io(format!("opening {}", path.display()), e))?;
    if let Some(user) = &layout.run_as {
        chown(path, user)?;
    }
    let offset = file
        .metadata()
        .map_err(|e| EmbeddedError::io(format!("inspecting {}", path.display()), e))?
        .len();
    Ok((file, offset))
}

/// Starts `postgres` and waits until it is ready; returns the child and its pid.
async fn spawn_postgres(layout: &Layout, fast_unsafe: bool) -> Result<(Child, u32), EmbeddedError> {
    let (log, offset) = open_log(layout)?;
    let log_err = log
        .try_clone()
        .map_err(|e| EmbeddedError::io(format!("duplicating {}", layout.log_path.display()), e))?;

    let mut cmd = layout.command(&layout.bins.postgres);
    cmd.arg("-D")
        .arg(&layout.cluster_dir)
        .arg("-k")
        .arg(&layout.socket_dir)
        .args(["-c", "listen_addresses="])
        .arg("-p")
        .arg(PORT.to_string())
        .args(["-c", "unix_socket_permissions=0700"])
        .arg("-c")
        .arg(format!("max_connections={MAX_CONNECTIONS}"));
    if fast_unsafe {
        cmd.args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]);
    }
    // Own process group: a terminal Ctrl-C must reach the hub only; the hub stops PostgreSQL
    // last, after draining. Not killed on drop: `Drop` asks for a fast shutdown instead.
    cmd.stdout(log)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(false);

    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        EmbeddedError::io(format!("starting {}", layout.bins.postgres.display()), e)
    })?;
    let pid = child.id().unwrap_or_default();

    let deadline = started + READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(
                    start_failed(layout, offset, format!("postgres exited with {status}")).await,
                );
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "checking the postgres child"),
        }
        if probe_ready(layout).await {
            tracing::info!(
                pid,
                socket_dir = %layout.socket_dir.display(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "embedded PostgreSQL is ready"
            );
            return Ok((child, pid));
        }
        if Instant::now() >= deadline {
            let _ = shutdown_child(child, Duration::from_secs(5)).await;
            return Err(start_failed(
                layout,
                offset,
                format!(
                    "not accepting connections on {} after {} s",
                    layout.socket_file().display(),
                    READY_TIMEOUT.as_secs()
                ),
            )
            .await);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn start_failed(layout: &Layout, offset: u64, reason: String) -> EmbeddedError {
    EmbeddedError::StartFailed {
        reason,
        log_path: layout.log_path.clone(),
        log: log_tail(&layout.log_path, offset).await,
    }
}

/// The last lines written to `path` from `offset` on.
async fn log_tail(path: &Path, offset: u64) -> String {
    let read = async {
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(io::SeekFrom::Start(offset)).await?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await?;
        io::Result::Ok(bytes)
    };
    match read.await {
        Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), LOG_TAIL_LINES),
        Err(e) => format!("(could not read the log: {e})"),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// SIGINT (fast shutdown), then SIGKILL after `grace`.
async fn shutdown_child(mut child: Child, grace: Duration) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        kill(Pid::from_raw(pid), Signal::SIGINT)?;
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "embedded PostgreSQL did not stop after SIGINT; sending SIGKILL"
            );
            child.kill().await?;
            child.wait().await
        }
    }
}

/// `postgres://<superuser>@<percent-encoded socket dir>:<port>/<database>`.
fn socket_url(socket_dir: &Path, port: u16, database: &str) -> String {
    format!(
        "postgres://{}@{}:{port}/{}",
        percent_encode(SUPERUSER.as_bytes()),
        percent_encode(socket_dir.as_os_str().as_bytes()),
        percent_encode(database.as_bytes())
    )
}

/// Percent-encodes every byte that is not an RFC 3986 unreserved character.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the temp dir, mode 0700, removed on drop.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> Self {
            let dir =
                std::env::temp_dir().join(format!("whatpro-emb-{}", uuid::Uuid::now_v7().simple()));
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .expect("create test dir");
            Self(dir)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn opts(dir: &TestDir, fast_unsafe: bool) -> EmbeddedOptions {
        EmbeddedOptions {
            data_dir: dir.0.clone(),
            fast_unsafe,
        }
    }

    /// Asserts the server answers: `pg_isready` exits 0 (or the socket accepts without it).
    async fn assert_answers(pg: &EmbeddedPostgres) {
        let bins = find_binaries().expect("binaries");
        match bins.pg_isready {
            Some(pg_isready) => {
                let status = Command::new(pg_isready)
                    .arg("-h")
                    .arg(pg.socket_dir())
                    .arg("-p")
                    .arg(pg.port().to_string())
                    .args(["-q", "-U", pg.superuser(), "-d", "postgres"])
                    .status()
                    .await
                    .expect("run pg_isready");
                assert!(status.success(), "pg_isready: {status}");
            }
            None => {
                UnixStream::connect(pg.socket_dir().join(".s.PGSQL.5432"))
                    .await
                    .expect("socket accepts");
            }
        }
    }

    /// When the tests run as root, the server must run unprivileged without extra groups.
    fn assert_unprivileged(pid: u32) {
        if !Uid::effective().is_root() || !cfg!(target_os = "linux") {
            return;
        }
        let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .expect("status field")
        };
        assert!(
            field("Uid:").iter().all(|u| u != "0"),
            "runs as root: {status}"
        );
        assert!(
            field("Gid:").iter().all(|g| g != "0"),
            "root group: {status}"
        );
        assert!(
            field("Groups:").is_empty(),
            "supplementary groups kept: {status}"
        );
    }

    #[tokio::test]
    async fn start_stop_restart_reuses_the_cluster() {
        let dir = TestDir::new();

        let t = Instant::now();
        let mut pg = start(opts(&dir, false)).await.expect("first start");
        eprintln!("first start (initdb + start): {:?}", t.elapsed());
        assert!(pg.created_cluster());
        assert!(pg.owns_process());
        assert_answers(&pg).await;
        assert_unprivileged(pg.pid());
        assert!(dir.0.join("pg/PG_VERSION").is_file());
        if Uid::effective().is_root() {
            // The 0700 DATA_DIR was opened for traversal only.
            let mode = fs::metadata(&dir.0).expect("stat").mode() & 0o777;
            assert_eq!(mode, 0o711, "DATA_DIR mode {mode:o}");
        }
        assert!(dir.0.join("run/.s.PGSQL.5432").exists());
        let leftovers: Vec<_> = fs::read_dir(&dir.0)
            .expect("read data dir")
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(INITDB_TMP_PREFIX)
            })
            .collect();
        assert!(leftovers.is_empty(), "initdb temp dirs left: {leftovers:?}");

        let t = Instant::now();
        pg.stop().await;
        eprintln!("stop: {:?}", t.elapsed());
        assert!(!pg.owns_process());
        assert!(!process_alive(i32::try_from(pg.pid()).expect("pid")));
        assert!(!dir.0.join("pg/postmaster.pid").exists());
        pg.stop().await; // idempotent

        let t = Instant::now();
        let mut again = start(opts(&dir, false)).await.expect("second start");
        eprintln!("start on an initialised cluster: {:?}", t.elapsed());
        assert!(!again.created_cluster(), "initdb ran again");
        assert!(again.owns_process());
        assert_answers(&again).await;
        again.stop().await;
    }

    #[tokio::test]
    async fn a_second_start_reuses_the_running_server() {
        let dir = TestDir::new();
        let mut first = start(opts(&dir, true)).await.expect("first start");
        assert!(first.owns_process());

        let mut second = start(opts(&dir, true)).await.expect("second start");
        assert!(!second.owns_process(), "must reuse, not own");
        assert!(!second.created_cluster());
        assert_eq!(second.pid(), first.pid());
        assert_eq!(second.url("x"), first.url("x"));

        second.stop().await; // no-op: not owned
        assert_answers(&first).await;
        drop(second);
        assert_answers(&first).await;

        first.stop().await;
        assert!(!process_alive(i32::try_from(first.pid()).expect("pid")));
    }

    #[tokio::test]
    async fn too_long_data_dir_is_refused() {
        let long = std::env::temp_dir().join("x".repeat(100));
        let err = start(EmbeddedOptions {
            data_dir: long.clone(),
            fast_unsafe: true,
        })
        .await
        .expect_err("must fail");
        let _ = fs::remove_dir_all(&long);
        assert!(
            matches!(err, EmbeddedError::SocketPathTooLong { .. }),
            "{err}"
        );
    }

    #[test]
    fn url_percent_encodes_the_socket_dir() {
        assert_eq!(
            socket_url(Path::new("/var/lib/whatpro hub/run"), 5432, "whatpro_test"),
            "postgres://whatpro@%2Fvar%2Flib%2Fwhatpro%20hub%2Frun:5432/whatpro_test"
        );
        assert_eq!(
            socket_url(Path::new("/d:1/ü~._-"), 5432, "a/b?c"),
            "postgres://whatpro@%2Fd%3A1%2F%C3%BC~._-:5432/a%2Fb%3Fc"
        );
    }

    #[test]
    fn versions_sort_highest_first() {
        let mut v = vec![
            parse_version("9.6"),
            parse_version("15"),
            parse_version("14"),
        ];
        v.sort_by(|a, b| b.cmp(a));
        assert_eq!(v, vec![Some(vec![15]), Some(vec![14]), Some(vec![9, 6])]);
        assert_eq!(parse_version("main"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn search_permission_follows_owner_group_other() {
        let dir = TestDir::new();
        let meta = |mode: u32| {
            fs::set_permissions(&dir.0, fs::Permissions::from_mode(mode)).expect("chmod");
            fs::metadata(&dir.0).expect("stat")
        };
        let owner = fs::metadata(&dir.0).expect("stat");
        let same_owner = RunAs {
            uid: Uid::from_raw(owner.uid()),
            gid: Gid::from_raw(u32::MAX - 1),
            name: "owner".into(),
        };
        let stranger = RunAs {
            uid: Uid::from_raw(u32::MAX - 1),
            gid: Gid::from_raw(u32::MAX - 1),
            name: "stranger".into(),
        };
        assert!(can_search(&meta(0o700), &same_owner));
        assert!(!can_search(&meta(0o700), &stranger));
        assert!(can_search(&meta(0o711), &stranger));
        assert!(!can_search(&meta(0o770), &stranger));
    }
}
