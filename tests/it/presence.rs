//! Presence (realtime.md, "Presence"): `presence.update` on transitions only, the list after
//! `session.ready`, the reconnect grace period, user sessions only, never across tenants, and
//! `GET …/presence`.

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

/// A server whose users go offline 300 ms after their last session (instead of 10 s).
async fn start() -> TestApp {
    TestApp::start_with(|c| {
        c.rate_limit_login_per_min = 1000;
        c.tuning.presence_grace = Duration::from_millis(300);
    })
    .await
}

async fn user(app: &TestApp, account: Uuid, email: &str) -> (Uuid, String) {
    let id = app.seed_user(account, email, "agent").await;
    (id, token_of(&app.login(email, USER_PASSWORD).await))
}

fn update(user: Uuid, status: &str) -> Value {
    json!({ "event": "presence.update", "user_id": user, "status": status })
}

/// Proves that nothing else was queued before: a ping's pong is the next frame.
async fn nothing_pending(ws: &mut Ws, t: i64) {
    send_json(ws, json!({ "op": "ping", "t": t })).await;
    assert_eq!(next_raw_frame(ws).await, json!({ "event": "pong", "t": t }));
}

/// Opens a session and reads `session.ready` and the list of online users that follows it.
async fn connect(app: &TestApp, token: &str, online: usize) -> (Ws, Vec<Value>) {
    let mut ws = app.ws(token).await;
    assert_eq!(next_raw_frame(&mut ws).await["event"], "session.ready");
    let mut listed = Vec::new();
    for _ in 0..online {
        listed.push(next_raw_frame(&mut ws).await);
    }
    (ws, listed)
}

async fn presence_list(app: &TestApp, token: &str, account: Uuid) -> Vec<Value> {
    let response = app
        .http
        .get(app.url(&format!("/api/v1/accounts/{account}/presence")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["next_cursor"], Value::Null);
    body["items"].as_array().unwrap().clone()
}

#[actix_rt::test]
async fn transitions_are_announced_once_and_the_newcomer_gets_the_list() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let (ana, ana_token) = user(&app, acme, "ana@acme.test").await;
    let (bia, bia_token) = user(&app, acme, "bia@acme.test").await;

    let (mut ana_ws, listed) = connect(&app, &ana_token, 1).await;
    assert_eq!(listed, [update(ana, "online")], "the newcomer sees itself");

    // Bia comes online: Ana is told; Bia's list has both.
    let (mut bia_ws, mut listed) = connect(&app, &bia_token, 2).await;
    listed.sort_by_key(|v| v["user_id"].as_str().unwrap().to_owned());
    let mut want = vec![update(ana, "online"), update(bia, "online")];
    want.sort_by_key(|v| v["user_id"].as_str().unwrap().to_owned());
    assert_eq!(listed, want);
    assert_eq!(next_raw_frame(&mut ana_ws).await, update(bia, "online"));

    // Bia's second session announces nothing.
    let (_second, _) = connect(&app, &bia_token, 2).await;
    nothing_pending(&mut ana_ws, 1).await;
    nothing_pending(&mut bia_ws, 2).await;

    let mut users: Vec<Value> = presence_list(&app, &ana_token, acme).await;
    users.sort_by_key(|v| v["user_id"].as_str().unwrap().to_owned());
    let mut want = vec![
        json!({ "user_id": ana, "status": "online" }),
        json!({ "user_id": bia, "status": "online" }),
    ];
    want.sort_by_key(|v| v["user_id"].as_str().unwrap().to_owned());
    assert_eq!(users, want);
    app.stop().await;
}

#[actix_rt::test]
async fn the_last_session_closing_goes_offline_after_the_grace_period_unless_it_reconnects() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let (_, ana_token) = user(&app, acme, "ana@acme.test").await;
    let (bia, bia_token) = user(&app, acme, "bia@acme.test").await;
    let (mut ana_ws, _) = connect(&app, &ana_token, 1).await;

    // A reconnect within the grace period shows nothing.
    let (bia_ws, _) = connect(&app, &bia_token, 2).await;
    assert_eq!(next_raw_frame(&mut ana_ws).await, update(bia, "online"));
    drop(bia_ws);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (bia_ws, _) = connect(&app, &bia_token, 2).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    nothing_pending(&mut ana_ws, 1).await;

    // Closing for good: offline once the grace period ends, and gone from the list.
    drop(bia_ws);
    assert_eq!(next_raw_frame(&mut ana_ws).await, update(bia, "offline"));
    let listed = presence_list(&app, &ana_token, acme).await;
    assert!(
        listed.iter().all(|u| u["user_id"] != json!(bia)),
        "{listed:?}"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn keys_and_instance_tokens_do_not_count_and_other_tenants_hear_nothing() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let beta = app.seed_account("Beta").await;
    let admin = app.seed_user(acme, "admin@acme.test", "admin").await;
    let admin_token = token_of(&app.login("admin@acme.test", USER_PASSWORD).await);
    let (_, beta_token) = user(&app, beta, "bob@beta.test").await;
    let (mut beta_ws, _) = connect(&app, &beta_token, 1).await;

    // An instance token's session and an API key's session are nobody's presence.
    let issued: Value = app
        .http
        .post(app.url(&format!("/api/v1/accounts/{acme}/instance-tokens")))
        .bearer_auth(&admin_token)
        .json(&json!({ "scopes": ["boards:read", "cards:read"], "ttl_minutes": 60 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["token"]
        .as_str()
        .unwrap_or_else(|| panic!("an instance token: {issued}"));
    let mut token_ws = app.ws(token).await;
    assert_eq!(
        next_raw_frame(&mut token_ws).await["event"],
        "session.ready"
    );
    nothing_pending(&mut token_ws, 1).await;
    assert_eq!(
        presence_list(&app, &admin_token, acme).await,
        Vec::<Value>::new()
    );

    // The admin's own session: online in Acme only.
    let (_admin_ws, listed) = connect(&app, &admin_token, 1).await;
    assert_eq!(listed, [update(admin, "online")]);
    nothing_pending(&mut beta_ws, 2).await;
    nothing_pending(&mut token_ws, 3).await;
    app.stop().await;
}
