//! The `whatpro-hub` binary as an operator runs it: first start on a fresh DATA_DIR with the
//! embedded PostgreSQL, restart, graceful SIGTERM, configuration refusals, `openapi dump`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_whatpro-hub");

fn hub(data_dir: &Path, port: u16) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", data_dir)
        .env("PORT", port.to_string())
        .env("LOG_LEVEL", "warn")
        .current_dir(data_dir.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the hub and collects stdout until it listens; returns the child, the stdout lines and
/// the time it took.
async fn start_hub(
    data_dir: &Path,
    port: u16,
    envs: &[(&str, &str)],
) -> (Child, Vec<String>, Duration) {
    let started = Instant::now();
    let mut command = hub(data_dir, port);
    command.envs(envs.iter().copied());
    let mut child = command.spawn().expect("spawn whatpro-hub");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("the hub listens within 90 s")
            .expect("stdout");
        let Some(line) = line else {
            let mut stderr = String::new();
            use tokio::io::AsyncReadExt;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .await
                .ok();
            panic!("the hub exited before listening: {seen:?}\n{stderr}");
        };
        let listening = line.starts_with("WhatPro Hub listening");
        seen.push(line);
        if listening {
            break;
        }
    }
    (child, seen, started.elapsed())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn login(http: &reqwest::Client, base: &str, password: &str) -> Value {
    let response = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "admin@localhost", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn sigterm_and_wait(child: &mut Child) -> i32 {
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    status.code().expect("exit code, not a signal")
}

#[actix_rt::test]
async fn fresh_data_dir_bootstraps_once_restart_keeps_data_and_sigterm_closes_sockets() {
    let root = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let data_dir = root.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // First start: embedded PostgreSQL initialised, one password printed.
    let (mut child, stdout, cold) = start_hub(&data_dir, port, &[]).await;
    let rss = rss_kib(child.id().unwrap());
    let password_lines: Vec<_> = stdout.iter().filter(|l| l.contains("password:")).collect();
    assert_eq!(password_lines.len(), 1, "{stdout:?}");
    let password = password_lines[0].rsplit(' ').next().unwrap().to_owned();
    assert_eq!(password.chars().count(), 20);
    let secrets = data_dir.join("secrets");
    for file in ["jwt_secret", "encryption_key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(secrets.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let first = login(&http, &base, &password).await;
    let token = token_of(&first);
    assert_eq!(first["user"]["role"], "super_admin");
    assert!(sigterm_and_wait(&mut child).await == 0);

    // Second start on the same DATA_DIR: nothing bootstrapped, data and secrets kept.
    let (mut child, stdout, warm) = start_hub(
        &data_dir,
        port,
        &[("LOG_FORMAT", "json"), ("LOG_LEVEL", "info")],
    )
    .await;
    let idle_rss = rss_kib(child.id().unwrap());
    assert!(!stdout.iter().any(|l| l.contains("password")), "{stdout:?}");
    let me = http
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        200,
        "a token from before the restart still verifies"
    );
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["id"], first["user"]["id"]);
    let again = login(&http, &base, &password).await;
    assert_eq!(again["user"]["id"], first["user"]["id"]);

    // SIGTERM: open websockets get 1012, the process exits 0.
    let (mut ws1, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws?token={token}"))
            .await
            .unwrap();
    let (mut ws2, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws?token={token}"))
            .await
            .unwrap();
    assert_eq!(next_json(&mut ws1).await["event"], "session.ready");
    assert_eq!(next_json(&mut ws2).await["event"], "session.ready");
    let pid = Pid::from_raw(child.id().unwrap() as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    assert_eq!(close_code(&mut ws1, Duration::from_secs(10)).await, 1012);
    assert_eq!(close_code(&mut ws2, Duration::from_secs(10)).await, 1012);
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    eprintln!(
        "measured: cold start {cold:?} (RSS {rss} KiB), warm start {warm:?}, idle RSS {idle_rss} KiB"
    );
}

async fn run_to_exit(envs: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let mut command = hub(&dir.path().join("data"), free_port());
    for (k, v) in envs {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[actix_rt::test]
async fn production_refuses_unsafe_configuration_naming_the_variable_not_the_value() {
    let jwt = "k9Qm2xV7pL4sT8wZ1nB6cR3yH5jD0fGaE";
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    let safe = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", jwt),
        ("ENCRYPTION_KEY", key),
        ("PUBLIC_URL", "https://hub.example.com"),
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
    ];
    let cases: [(&str, Option<&str>, &str); 6] = [
        ("JWT_SECRET", None, "JWT_SECRET"),
        (
            "JWT_SECRET",
            Some("k9Qm2xV7pL4sT8wZ1nB6cR3yH5jD0fG"),
            "JWT_SECRET",
        ),
        (
            "ENCRYPTION_KEY",
            Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZQ=="),
            "ENCRYPTION_KEY",
        ),
        ("CORS_ORIGINS", Some("*"), "CORS_ORIGINS"),
        ("PUBLIC_URL", Some("http://hub.example.com"), "PUBLIC_URL"),
        ("TRUSTED_PROXIES", Some("0.0.0.0/0"), "TRUSTED_PROXIES"),
    ];
    for (variable, value, named) in cases {
        let mut envs: Vec<(&str, &str)> = safe
            .iter()
            .filter(|(k, _)| *k != variable)
            .copied()
            .collect();
        if let Some(value) = value {
            envs.push((variable, value));
        }
        let (code, stderr) = run_to_exit(&envs).await;
        assert_eq!(code, 2, "{variable}={value:?}: {stderr}");
        assert!(stderr.contains(named), "{stderr}");
        if let Some(value) = value {
            assert!(
                value.len() < 4 || !stderr.contains(value),
                "the value leaked: {stderr}"
            );
        }
    }
    let (code, stderr) = run_to_exit(&[("APP_ENV", "staging")]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("APP_ENV"));
}

#[actix_rt::test]
async fn openapi_dump_needs_no_configuration() {
    let output = Command::new(BIN)
        .env_clear()
        .args(["openapi", "dump"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(document["paths"]["/api/v1/auth/login"]["post"].is_object());
}

/// Runs the CLI against `db_url` with `stdin`; returns (exit code, stdout, stderr).
async fn cli(db_url: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let mut child = hub(&dir.path().join("data"), free_port())
        .env("DATABASE_URL", db_url)
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[actix_rt::test]
async fn cli_creates_users_once_and_reports_migrations() {
    let db_url = fresh_database().await;
    let (code, stdout, _) = cli(&db_url, &["migrate", "--status"], "").await;
    assert_eq!(code, 0);
    assert!(stdout.lines().any(|l| l.starts_with("applied")), "{stdout}");
    assert!(!stdout.contains("pending"), "{stdout}");

    let args = [
        "create-super-admin",
        "--email",
        "ops@hub.test",
        "--name",
        "Ops",
    ];
    let (code, stdout, stderr) = cli(&db_url, &args, "granite meadow whistles\n").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("created super_admin ops@hub.test"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&db_url, &args, "granite meadow whistles\n").await;
    assert_eq!(code, 2, "an existing email fails without --reset-password");
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, _, stderr) = cli(&db_url, &args, "short\n").await;
    assert_eq!(code, 2, "{stderr}");
    let reset = [&args[..], &["--reset-password"]].concat();
    let (code, _, stderr) = cli(&db_url, &reset, "copper lantern drifts\n").await;
    assert_eq!(code, 0, "{stderr}");

    // The server on the same database: the CLI's super_admin and platform account are used,
    // and no second bootstrap happens.
    let app = TestApp::start_on(db_url.clone(), |_| {}).await;
    assert!(app.server.bootstrapped.is_none());
    let ops = app.login("ops@hub.test", "copper lantern drifts").await;
    assert_eq!(ops["user"]["role"], "super_admin");
    let platform = ops["user"]["account_id"].as_str().unwrap().to_owned();
    let customer = app.seed_account("Customer").await.to_string();

    let (code, stdout, stderr) = cli(
        &db_url,
        &[
            "admin",
            "create-user",
            "--account",
            &customer,
            "--email",
            "ana@customer.test",
            "--name",
            "Ana",
            "--role",
            "agent",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let generated = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .expect("a generated password is printed")
        .to_owned();
    let ana = app.login("ana@customer.test", &generated).await;
    assert_eq!(
        (
            ana["user"]["role"].as_str(),
            ana["user"]["account_id"].as_str()
        ),
        (Some("agent"), Some(customer.as_str()))
    );

    let super_elsewhere = [
        "admin",
        "create-user",
        "--account",
        &customer,
        "--email",
        "x@customer.test",
        "--name",
        "X",
        "--role",
        "super_admin",
    ];
    let (code, _, stderr) = cli(&db_url, &super_elsewhere, "").await;
    assert_eq!(
        code, 2,
        "super_admin outside the platform account: {stderr}"
    );
    let with_stdin = [
        "admin",
        "create-user",
        "--account",
        &platform,
        "--email",
        "b@hub.test",
        "--name",
        "B",
        "--role",
        "admin",
        "--password-stdin",
    ];
    let (code, stdout, stderr) = cli(&db_url, &with_stdin, "silver harbor echoes\n").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stdout.contains("password"),
        "a given password is not printed: {stdout}"
    );
    app.login("b@hub.test", "silver harbor echoes").await;
    app.stop().await;
}
