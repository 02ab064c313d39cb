//! `rest`: filtered card lists on a 10 000-card board at fixed request rates, open loop.
//!
//! Requests are sent on a fixed schedule (`--rate` per second; a comma-separated list runs
//! one step per rate on the same data), each in its own task, whether or not earlier ones have
//! answered, so a slow server cannot slow the offered load down. Latency is measured from the
//! **scheduled** send time to the end of the body (no coordinated omission); the per-query
//! lines give the time from the actual send.
//!
//! The mix (`GET …/boards/{b}/cards?…`, all pages of 50):
//! 1. `stage_id=S&priority=high` (the target's query), twice as often as each other one;
//! 2. `stage_id=S&tags=vip,b2b`;
//! 3. `assignee_id=A`;
//! 4. `q=…` (a word, an accented name, a phone fragment);
//! 5. `sort=-updated_at`;
//! 6. `stage_id=S&priority=high,urgent&sort=-updated_at`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::hub::Hub;
use crate::stats::{mib, rss_kib, Outcomes, Samples, Usage};
use crate::{RestArgs, Result};

/// Query kinds, in the order of the module documentation.
const KINDS: [&str; 6] = [
    "stage+priority",
    "stage+tags",
    "assignee",
    "q",
    "-updated_at",
    "stage+prio+sort",
];

/// Search terms of the `q` queries.
const TERMS: [&str; 6] = ["silva", "maria", "orçamento", "joao", "padaria", "9123"];

/// One request's query: its kind and parameters.
fn query(
    rng: &mut SmallRng,
    stages: &[Uuid],
    agents: &[Uuid],
) -> (usize, Vec<(&'static str, String)>) {
    let stage = stages[rng.random_range(0..stages.len())].to_string();
    let limit = ("limit", "50".to_owned());
    // Kind 0 has weight 2 (draws 0 and 6).
    let kind = match rng.random_range(0..7) {
        6 => 0,
        k => k,
    };
    let params = match kind {
        0 => vec![("stage_id", stage), ("priority", "high".into()), limit],
        1 => vec![("stage_id", stage), ("tags", "vip,b2b".into()), limit],
        2 => {
            let agent = agents[rng.random_range(0..agents.len())].to_string();
            vec![("assignee_id", agent), limit]
        }
        3 => {
            let term = TERMS[rng.random_range(0..TERMS.len())].to_owned();
            vec![("q", term), limit]
        }
        4 => vec![("sort", "-updated_at".into()), limit],
        _ => vec![
            ("stage_id", stage),
            ("priority", "high,urgent".into()),
            ("sort", "-updated_at".into()),
            limit,
        ],
    };
    (kind, params)
}

/// What one rate step measured.
struct Step {
    rate: f64,
    achieved: f64,
    outcomes: Outcomes,
    scheduled: Samples,
    per_kind: Vec<Samples>,
    dropped: u64,
    usage: String,
}

/// Runs the scenario on `hub` and prints the results.
pub async fn run(hub: &Hub, args: &RestArgs) -> Result<()> {
    let common = &args.common;
    let started = Instant::now();
    let tenant = hub.tenant(8).await?;
    let board = hub
        .board(
            &tenant,
            "Funil principal de vendas",
            args.cards,
            common.seed,
        )
        .await?;
    eprintln!(
        "loadgen: 1 board × {} cards seeded in {:.1} s",
        args.cards,
        started.elapsed().as_secs_f64()
    );
    let url = Arc::new(format!(
        "{}/api/v1/accounts/{}/boards/{}/cards",
        hub.base, tenant.id, board.id
    ));
    let token = Arc::new(tenant.token.clone());
    let stages = Arc::new(board.stages.clone());
    let agents = Arc::new(tenant.agents.clone());

    println!(
        "rest: 1 board × {} cards ({} stages), {:.0} s per rate (after {:.0} s warm-up)",
        args.cards,
        stages.len(),
        common.duration,
        common.warmup
    );
    println!("  database: {}", hub.durability());
    let mut steps = Vec::new();
    for (n, &rate) in args.rate.iter().enumerate() {
        if rate <= 0.0 {
            return Err("--rate must be positive".into());
        }
        let step = step(
            hub,
            rate,
            common.warmup,
            common.duration,
            args.max_inflight,
            common.seed as u64 * 1_000 + n as u64,
            (&url, &token, &stages, &agents),
        )
        .await;
        print_step(&step);
        steps.push(step);
    }
    if steps.len() > 1 {
        println!("  summary (latency from the scheduled send, ms):");
        println!("      rate  achieved     p50     p95     p99      max  errors");
        for step in &mut steps {
            let s = step.scheduled.summary();
            println!(
                "  {:>8.0} {:>9.1} {:>7.2} {:>7.2} {:>7.2} {:>8.2} {:>7}",
                step.rate,
                step.achieved,
                s.p50,
                s.p95,
                s.p99,
                s.max,
                step.outcomes.error_count() + step.dropped
            );
        }
    }
    if let Some((rss, peak)) = hub.server_pid.and_then(rss_kib) {
        println!(
            "  server RSS after the run: {} (peak {})",
            mib(rss),
            mib(peak)
        );
    }
    Ok(())
}

type Shared<'a> = (
    &'a Arc<String>,
    &'a Arc<String>,
    &'a Arc<Vec<Uuid>>,
    &'a Arc<Vec<Uuid>>,
);

async fn step(
    hub: &Hub,
    rate: f64,
    warmup: f64,
    duration: f64,
    max_inflight: usize,
    seed: u64,
    (url, token, stages, agents): Shared<'_>,
) -> Step {
    let mut rng = SmallRng::seed_from_u64(seed);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(warmup);
    let until = measure_from + Duration::from_secs_f64(duration);
    let inflight = Arc::new(Semaphore::new(max_inflight));
    let mut tasks = Vec::new();
    let mut dropped = 0u64;
    let mut before = None;
    for n in 0u64.. {
        let scheduled = start + interval.mul_f64(n as f64);
        if scheduled >= until {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let measured = scheduled >= measure_from;
        if measured && before.is_none() {
            before = Some(Usage::now(hub.server_pid, hub.postmaster_pid));
        }
        let Ok(permit) = inflight.clone().try_acquire_owned() else {
            dropped += u64::from(measured);
            continue;
        };
        let (kind, params) = query(&mut rng, stages, agents);
        let request = hub
            .http
            .request(Method::GET, url.as_str())
            .bearer_auth(token.as_str())
            .query(&params);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = request.send().await;
            // The body is read in full (as a client would) but kept only for an error.
            let (status, body) = match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.bytes().await {
                        Ok(_) if (200..300).contains(&status) => (status, String::new()),
                        Ok(bytes) => (status, String::from_utf8_lossy(&bytes).into_owned()),
                        Err(e) => (0, e.to_string()),
                    }
                }
                Err(e) => (0, e.to_string()),
            };
            drop(permit);
            let done = Instant::now();
            (measured, kind, status, body, done - scheduled, done - sent)
        }));
    }
    let after_sends = Usage::now(hub.server_pid, hub.postmaster_pid);
    let mut outcomes = Outcomes::default();
    let mut scheduled = Samples::default();
    let mut per_kind = vec![Samples::default(); KINDS.len()];
    for task in tasks {
        let Ok((measured, kind, status, body, from_schedule, from_send)) = task.await else {
            continue;
        };
        if !measured {
            continue;
        }
        scheduled.push(from_schedule);
        per_kind[kind].push(from_send);
        if (200..300).contains(&status) {
            outcomes.ok();
        } else {
            outcomes.error(status, || body);
        }
    }
    // Completed requests of the measured window over its length (answers that arrive after
    // the window closes still count: they were offered inside it).
    let achieved = outcomes.ok as f64 / duration;
    let usage = before.map(|b| b.report(&after_sends)).unwrap_or_default();
    Step {
        rate,
        achieved,
        outcomes,
        scheduled,
        per_kind,
        dropped,
        usage,
    }
}

fn print_step(step: &Step) {
    let mut scheduled = step.scheduled.clone();
    println!(
        "  rate {:.0}/s: achieved {:.1}/s ({} ok, {} errors, {} not sent: over --max-inflight)",
        step.rate,
        step.achieved,
        step.outcomes.ok,
        step.outcomes.error_count(),
        step.dropped
    );
    print!("{}", step.outcomes.describe_errors());
    println!("    latency: {}", scheduled.summary());
    for (kind, samples) in KINDS.iter().zip(&step.per_kind) {
        let mut samples = samples.clone();
        if samples.len() > 0 {
            println!(
                "      {kind:<16} n={:<6} {}",
                samples.len(),
                samples.summary()
            );
        }
    }
    println!("    {}", step.usage);
}
