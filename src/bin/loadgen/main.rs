//! The load generator of quality.md ("Benchmarks"): drives a real hub over loopback and prints
//! throughput, latency percentiles (p50/p95/p99/max), the hub's RSS and the CPU each party
//! used.
//!
//! ```text
//! cargo run --release --bin loadgen -- moves [--boards 1] [--concurrency 32] [--duration 10]
//! cargo run --release --bin loadgen -- rest [--rate 200[,400,…]] [--duration 10]
//! ```
//!
//! Without `--url` it starts everything itself (see [`hub`]): a private PostgreSQL cluster in
//! a temporary directory (durable settings unless `--fast-unsafe`), the hub as a separate
//! process on a free port, a super_admin from the first-start bootstrap, an `enterprise`
//! account with an admin and 8 agents, boards with 6 stages over the REST API, and cards seeded
//! with `whatpro_hub::kanban::seed`. Everything is stopped and removed afterwards (`--keep`
//! keeps the directory with the hub's log). The load generator itself runs on one thread.
//!
//! Scenarios: [`moves`] (closed loop, with a pgbench baseline) and [`rest`] (open loop at
//! fixed rates). `--help` after a scenario lists its options.
//!
//! # Measured
//!
//! Release builds, this project's 2-core VM (PostgreSQL 15, durable settings), 2026-11-29.
//! The machine was **not** quiet: two other engineers' debug builds and integration-test
//! suites ran throughout (4 `rustc` and test processes at times), load average 6–11 on 2
//! cores (`/proc/loadavg`, printed with every run). Absolute numbers are therefore low and
//! drift by ±20 % between runs; the ratios and the CPU split are the useful part.
//!
//! `cargo run --release --bin loadgen -- moves --boards 1` (1 000 cards, 32 clients, 10 s):
//! 72–84 moves/s, 0 errors; p50 331–464, p95 592–601, p99 620–662, max 635–674 ms; hub RSS
//! 74 MiB (13 MiB right after start-up, see below); CPU hub 25–31 %, PostgreSQL 34–37 % of one
//! core; pgbench simple-update on the same cluster 2 771–3 024 tps (ratio 0.02–0.03). With one
//! client: 72 moves/s, p50 12 ms: one board's moves are serial (its actor), so one board does
//! 1 / (one move's transaction time) whatever the number of clients.
//!
//! `cargo run --release --bin loadgen -- moves --boards 20` (20 × 1 000 cards, 32 clients):
//! 176–224 moves/s, 0 errors; p50 112–147, p95 341–431, p99 423–587, max 648–811 ms; hub RSS
//! 75 MiB; CPU hub 29–31 %, PostgreSQL 83–96 %; pgbench 2 420–2 825 tps (ratio 0.07–0.08).
//! Variants (same load, back to back): `--server-log-level warn` 217/s (per-request logging
//! costs nothing measurable), `--pool-size 32` 234/s (the pool is not the limit),
//! `--fast-unsafe` 275/s (fsync costs ~20 %). Target: ≥ 2 000/s over 50 boards, p99 ≤ 25 ms.
//!
//! `cargo run --release --bin loadgen -- rest --rate 200` (10 000 cards): **not sustained**:
//! 59 answers/s, 1 408 of 2 000 requests 503 `database unavailable` (pool wait > 5 s), p50
//! 5.0 s; PostgreSQL 137 % CPU, hub 17 %.
//! `… rest --rate 10,25,50`: 10/s p50 24, p95 147, p99 176, max 178 ms; 25/s p50 23, p95 265,
//! p99 389, max 612 ms; 50/s p50 110, p95 672, p99 1 064 ms, all answered; 75/s p99 1 017 ms;
//! 100/s p99 5.6 s with 57 × 503. The highest rate with a sane p99 (< 0.5 s) was **25/s**
//! (target: p99 ≤ 10 ms at 1 000/s). Per query at 10/s (time from send): stage+priority p50
//! 12 ms, stage+tags 13, stage+priority+sort 16, assignee 32, `sort=-updated_at` 100, `q` 124.
//! PostgreSQL spends ~23 ms of CPU per list request on average.
//!
//! **After the first fixes** (list pages chosen before joining assignees and checklist counts,
//! stages joined only for the board order, one locked read per move and no re-read, the search
//! vector kept by a trigger instead of recomputed on every move, argon2 memory returned),
//! same machine, load average 2–4 at the time:
//! - `moves --boards 1`: 151 moves/s, p50 206, p95 258, p99 267 ms, 0 errors; hub RSS 18 MiB;
//!   CPU hub 38 %, PostgreSQL 53 %; pgbench 4 015 tps (ratio 0.04).
//! - `moves --boards 20`: 348 moves/s, p50 77, p95 202, p99 284 ms, 0 errors; hub 44 %,
//!   PostgreSQL 128 %; pgbench 4 160 tps (ratio 0.08).
//! - `rest --rate 100`: sustained, p50 18, p95 151, p99 305 ms (per query p99: stage+priority
//!   41, stage+tags 49, assignee 72, `sort=-updated_at` 123, `q` 471 ms); at 150/s PostgreSQL
//!   saturates (165 % CPU) and p99 reaches 2.9 s, still without errors (before: 503s from 200/s).
//!   Hub RSS 50 MiB after the run (before: 172 MiB).
//!
//! What still limits: every list is raw SQL that PostgreSQL plans on each call (diesel does not
//! cache `sql_query` statements), the `q` branches are evaluated row by row instead of through
//! their GIN indexes when one board holds every card, and a move still makes about ten
//! round trips on its board's serial path.
//!
//! What limited throughput before those fixes (evidence from `pg_stat_statements` with `track_planning`, and
//! `EXPLAIN ANALYZE` as `whatpro_app` under RLS, on a kept cluster):
//! - **List query shape** (`db::cards::list`): users join and the checklist `LATERAL`
//!   aggregate run for every matching card before the sort and `LIMIT` (e.g. 10 000 loops for
//!   `sort=-updated_at`: 94–124 ms, although `cards_board_updated` could hand the first 51
//!   rows directly), and the default sort key `s.position, c.position` spans the stages join
//!   so no index gives the order. For `q` the plan walks every card of the board and
//!   evaluates `immutable_unaccent(title/contact_name)` on each rather than using the trigram
//!   and tsvector GIN indexes (82–143 ms). Planning alone is
//!   2.5–10 ms per list (dynamic `sql_query`, never a cached prepared statement).
//! - **Per move, ~15 sequential round trips on the board's critical path** (pool check
//!   `SELECT 1` from diesel-async's default `RecyclingMethod::Verified`, BEGIN, set_config,
//!   board lock, card lock, card read, stages, neighbours, update, history, card read again,
//!   event log, seq, COMMIT), so a board's throughput is bounded by latency.
//! - **PostgreSQL CPU per move ~4–5 ms**: the card `UPDATE` is never HOT (it changes indexed
//!   `stage_id`/`position`/`updated_at`), so every move inserts into all 14 card indexes,
//!   5 of them GIN (tags, tsvector, 3 trigram) and recomputes the stored `search` tsvector:
//!   1.0–1.9 ms exec; `CARD_SELECT` (a `sql_query`, re-planned each time) is read twice per
//!   move at 0.9 ms planning vs 0.1 ms execution; planning was 44 % of all statement time.
//! - Not a limit here: the pool size, request logging, the hub's own CPU (≤ 35 %).
//! - Memory: each argon2id hash or verify (m = 19 MiB) leaves its buffer in a glibc malloc
//!   arena: RSS 13 MiB after start-up, +19 MiB per sign-in, 242 MiB after 12 sign-ins, never
//!   returned while idle (the 74 MiB above are the set-up's 3 sign-ins and 1 hash).

mod hub;
mod moves;
mod rest;
mod stats;

use clap::{Args, Parser, Subcommand};

/// What every fallible step answers.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// WhatPro Hub load generator.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Card moves/s across boards through the board actors and the database (closed loop).
    Moves(MovesArgs),
    /// Filtered card lists on a 10 000-card board at fixed request rates (open loop).
    Rest(RestArgs),
}

/// Options of every scenario.
#[derive(Debug, Args)]
pub struct Common {
    /// Measured seconds (per rate step for `rest`).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring (board actors, connections and caches warm up).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seed of the generated data and of the random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: i64,
    /// A running hub to drive instead of starting one (needs --email, --password and
    /// --database-url).
    #[arg(long)]
    pub url: Option<String>,
    /// super_admin email for --url.
    #[arg(long, requires = "url")]
    pub email: Option<String>,
    /// super_admin password for --url.
    #[arg(long, requires = "url")]
    pub password: Option<String>,
    /// A PostgreSQL URL of the --url hub's database, allowed to insert cards (seeding).
    #[arg(long, requires = "url")]
    pub database_url: Option<String>,
    /// The --url hub's process id, to report its RSS and CPU.
    #[arg(long, requires = "url")]
    pub server_pid: Option<u32>,
    /// Run this hub binary (e.g. target/release/whatpro-hub) instead of this binary in server
    /// mode.
    #[arg(long, conflicts_with = "url")]
    pub server_bin: Option<std::path::PathBuf>,
    /// The hub's LOG_LEVEL (JSON lines to a file; `info` logs one line per request, as in
    /// production).
    #[arg(long, default_value = "info")]
    pub server_log_level: String,
    /// The hub's DATABASE_POOL_SIZE (default: the hub's own default, 16).
    #[arg(long)]
    pub pool_size: Option<u32>,
    /// PostgreSQL with fsync, synchronous_commit and full_page_writes off (not durable).
    #[arg(long, conflicts_with = "url")]
    pub fast_unsafe: bool,
    /// Keep the temporary directory (cluster and hub log) afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// `moves` options.
#[derive(Debug, Args)]
pub struct MovesArgs {
    /// Boards to spread the moves over.
    #[arg(long, default_value_t = 1)]
    pub boards: usize,
    /// Concurrent HTTP clients, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Cards seeded on each board.
    #[arg(long, default_value_t = 1000)]
    pub cards: usize,
    /// Skip the pgbench baseline.
    #[arg(long)]
    pub no_baseline: bool,
    #[command(flatten)]
    pub common: Common,
}

/// `rest` options.
#[derive(Debug, Args)]
pub struct RestArgs {
    /// Requests per second; a comma-separated list runs one step per rate.
    #[arg(long, value_delimiter = ',', default_value = "200")]
    pub rate: Vec<f64>,
    /// Cards on the board.
    #[arg(long, default_value_t = 10_000)]
    pub cards: usize,
    /// Requests in flight at most; a send due while this many wait is counted as not sent.
    #[arg(long, default_value_t = 2048)]
    pub max_inflight: usize,
    #[command(flatten)]
    pub common: Common,
}

fn main() {
    // Server mode: the hub's own command line (`serve`), started by `hub::Hub::start`.
    if std::env::var_os(hub::SERVER_ROLE_VAR).is_some() {
        std::process::exit(whatpro_hub::cli::main());
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        match run(cli.scenario).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("loadgen: {e}");
                1
            }
        }
    });
    std::process::exit(code);
}

async fn run(scenario: Scenario) -> Result<()> {
    let common = match &scenario {
        Scenario::Moves(args) => &args.common,
        Scenario::Rest(args) => &args.common,
    };
    if common.duration <= 0.0 || common.warmup < 0.0 {
        return Err("--duration must be positive and --warmup not negative".into());
    }
    let mut hub = hub::Hub::start(common).await?;
    let outcome = tokio::select! {
        outcome = async {
            match &scenario {
                Scenario::Moves(args) => moves::run(&hub, args).await,
                Scenario::Rest(args) => rest::run(&hub, args).await,
            }
        } => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    hub.stop().await;
    outcome
}
