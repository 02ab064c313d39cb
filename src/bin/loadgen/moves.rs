//! `moves`: card moves/s through the board actors and the database, closed loop.
//!
//! `--concurrency` clients each send one `POST …/cards/{c}/move` at a time, back to back: a
//! random board, a random card of it, a random stage and a random index within that stage.
//! After the run the positions are checked for uniqueness per stage. The baseline is pgbench's
//! built-in `simple-update` script with as many clients, on the same PostgreSQL cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;

use crate::hub::{Board, Hub, STAGES};
use crate::stats::{mib, rss_kib, Outcomes, Samples, Usage};
use crate::{MovesArgs, Result};

/// Runs the scenario on `hub` and prints the results.
pub async fn run(hub: &Hub, args: &MovesArgs) -> Result<()> {
    let common = &args.common;
    let started = Instant::now();
    let tenant = hub.tenant(8).await?;
    let mut boards = Vec::with_capacity(args.boards);
    for n in 0..args.boards {
        let name = format!("Funil {}", n + 1);
        boards.push(
            hub.board(&tenant, &name, args.cards, common.seed + n as i64)
                .await?,
        );
    }
    eprintln!(
        "loadgen: {} board(s) × {} cards seeded in {:.1} s",
        args.boards,
        args.cards,
        started.elapsed().as_secs_f64()
    );

    let boards = Arc::new(boards);
    let token = Arc::new(tenant.token.clone());
    let account = tenant.id;
    let warmup = Duration::from_secs_f64(common.warmup);
    let duration = Duration::from_secs_f64(common.duration);
    let measure_from = Instant::now() + warmup;
    let until = measure_from + duration;
    // Slots per stage: the cards a stage holds on average, plus a few past the end (bottom).
    let slots = (args.cards / STAGES.len()) as i64 + 3;

    let mut clients = Vec::with_capacity(args.concurrency);
    for client in 0..args.concurrency {
        let (hub_http, base) = (hub.http.clone(), hub.base.clone());
        let (boards, token) = (boards.clone(), token.clone());
        let mut rng = SmallRng::seed_from_u64(common.seed as u64 * 1_000 + client as u64);
        clients.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut outcomes = Outcomes::default();
            loop {
                let start = Instant::now();
                if start >= until {
                    break;
                }
                let board: &Board = &boards[rng.random_range(0..boards.len())];
                let card = board.cards[rng.random_range(0..board.cards.len())];
                let stage = board.stages[rng.random_range(0..board.stages.len())];
                let body = json!({ "stage_id": stage, "index": rng.random_range(0..slots) });
                let url = format!(
                    "{base}/api/v1/accounts/{account}/boards/{}/cards/{card}/move",
                    board.id
                );
                let answer = hub_http
                    .request(Method::POST, url)
                    .bearer_auth(token.as_str())
                    .json(&body)
                    .send()
                    .await;
                let (status, text) = match answer {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        (status, response.text().await.unwrap_or_default())
                    }
                    Err(e) => (0, e.to_string()),
                };
                if start < measure_from {
                    continue;
                }
                samples.push(start.elapsed());
                if (200..300).contains(&status) {
                    outcomes.ok();
                } else {
                    outcomes.error(status, || text);
                }
            }
            (samples, outcomes)
        }));
    }

    tokio::time::sleep_until(measure_from.into()).await;
    let before = Usage::now(hub.server_pid, hub.postmaster_pid);
    let rss_before = hub.server_pid.and_then(rss_kib);
    tokio::time::sleep_until(until.into()).await;
    let after = Usage::now(hub.server_pid, hub.postmaster_pid);
    let rss_after = hub.server_pid.and_then(rss_kib);

    let mut samples = Samples::default();
    let mut outcomes = Outcomes::default();
    for client in clients {
        let (s, o) = client.await?;
        samples.extend(s);
        outcomes.merge(o);
    }
    let summary = samples.summary();

    let ids: Vec<String> = boards.iter().map(|b| format!("'{}'", b.id)).collect();
    let duplicates = hub
        .count(&format!(
            "SELECT count(*) AS n FROM (SELECT stage_id, position FROM cards \
             WHERE board_id IN ({}) GROUP BY stage_id, position HAVING count(*) > 1) d",
            ids.join(", ")
        ))
        .await?;

    println!(
        "moves: {} board(s) × {} cards ({} stages), {} clients, {:.0} s (after {:.0} s warm-up)",
        args.boards,
        args.cards,
        STAGES.len(),
        args.concurrency,
        common.duration,
        common.warmup
    );
    println!("  database: {}", hub.durability());
    println!(
        "  moves/s: {:.0}  ({} ok, {} errors)",
        outcomes.ok as f64 / common.duration,
        outcomes.ok,
        outcomes.error_count()
    );
    print!("{}", outcomes.describe_errors());
    println!("  latency: {summary}");
    if let (Some((idle, _)), Some((rss, peak))) = (rss_before, rss_after) {
        println!(
            "  server RSS: {} at start of the run, {} at the end (peak {})",
            mib(idle),
            mib(rss),
            mib(peak)
        );
    }
    println!("  {}", before.report(&after));
    println!(
        "  positions unique per stage afterwards: {}",
        if duplicates == 0 { "yes" } else { "NO" }
    );

    if args.no_baseline {
        return Ok(());
    }
    match pgbench(hub, args.concurrency, common.duration).await {
        Ok(tps) => println!(
            "  baseline: pgbench simple-update, {} clients, same cluster: {tps:.0} tps; \
             moves/pgbench = {:.2}",
            args.concurrency,
            outcomes.ok as f64 / common.duration / tps
        ),
        Err(e) => println!("  baseline: skipped ({e})"),
    }
    Ok(())
}

/// The pgbench binary: on the PATH, or next to the newest PostgreSQL server binaries.
fn pgbench_binary() -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbench"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin/pgbench"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

/// pgbench `simple-update` on a `pgbench` database of the hub's own cluster; answers its tps.
async fn pgbench(hub: &Hub, clients: usize, seconds: f64) -> Result<f64> {
    let cluster = hub
        .cluster
        .as_ref()
        .ok_or("only with the load generator's own cluster (not with --url)")?;
    let bin = pgbench_binary().ok_or("pgbench not found")?;
    whatpro_hub::db::ensure_database(&cluster.url("postgres"), "pgbench", None).await?;
    let socket = cluster.socket_dir().to_string_lossy().into_owned();
    let port = cluster.port().to_string();
    let connection = [
        "-h",
        socket.as_str(),
        "-p",
        port.as_str(),
        "-U",
        cluster.superuser(),
    ];
    let init = tokio::process::Command::new(&bin)
        .args(["-i", "-q", "-s", "1"])
        .args(connection)
        .arg("pgbench")
        .output()
        .await?;
    if !init.status.success() {
        return Err(format!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        )
        .into());
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(clients);
    let run = tokio::process::Command::new(&bin)
        .args(["-n", "-b", "simple-update"])
        .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
        .args(["-T", &(seconds.ceil() as u64).max(1).to_string()])
        .args(connection)
        .arg("pgbench")
        .output()
        .await?;
    let out = String::from_utf8_lossy(&run.stdout);
    out.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            format!(
                "no tps in pgbench's output: {out}{}",
                String::from_utf8_lossy(&run.stderr)
            )
            .into()
        })
}
