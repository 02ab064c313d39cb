//! Access control (iam.md §2, §4.6–4.8, §5, §7; tenancy.md §6 redaction).
//!
//! Role changes and the no-escalation rules, API keys (format, storage, scopes, revocation,
//! expiry, per-key rate limit, what keys may never do), instance tokens (issue rules, scopes,
//! validate, revoke, expiry, death with the issuer's session, ownership), impersonation (who,
//! the token's claims, what an impersonator may not do, the audit trail) and the redaction of
//! secrets in the audit log. Every refusal also checks that nothing changed.

use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A test app whose sign-in rate limit does not get in the way of tests that log in many
/// users from one IP (the limits under test here are others).
async fn start() -> TestApp {
    TestApp::start_with(|c| c.rate_limit_login_per_min = 1000).await
}

/// `(role, role_source, status)` of a user, straight from the database.
async fn user_row(app: &TestApp, user: Uuid) -> (String, String, String) {
    let row = app.text(format!("SELECT role || '|' || role_source || '|' || status AS t FROM users WHERE id = '{user}'"),
    )
    .await
    .expect("user row");
    let parts: Vec<&str> = row.split('|').collect();
    (parts[0].into(), parts[1].into(), parts[2].into())
}

/// Audit rows of an action, oldest first, as JSON objects.
async fn audit_rows(app: &TestApp, action: &str) -> Vec<Value> {
    app.texts(format!(
        "SELECT to_jsonb(a)::text AS t FROM audit_log a WHERE action = '{action}' \
             ORDER BY created_at, id"
    ))
    .await
    .into_iter()
    .map(|t| serde_json::from_str(&t.expect("row")).expect("row JSON"))
    .collect()
}

/// A count.
async fn count(app: &TestApp, sql: String) -> i64 {
    app.text(sql)
        .await
        .expect("count")
        .parse()
        .expect("integer")
}

/// Logs a seeded user in; returns (access token, whole body).
async fn login_user(app: &TestApp, email: &str) -> (String, Value) {
    let body = app.login(email, USER_PASSWORD).await;
    (token_of(&body), body)
}

/// The bootstrap super_admin: (token, user id, platform account id).
async fn super_admin(app: &TestApp) -> (String, Uuid, Uuid) {
    let body = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (
        token_of(&body),
        body["user"]["id"].as_str().unwrap().parse().unwrap(),
        body["user"]["account_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    )
}

/// The decoded payload of a JWT (not verified).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// Repeats `request` until it answers `status`, failing after 5 s; returns that response.
async fn within_5s(request: reqwest::RequestBuilder, status: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = request.try_clone().expect("clonable").send().await.unwrap();
        if response.status().as_u16() == status {
            return response;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after 5 s (expected {status})",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn users_url(app: &TestApp, account: Uuid) -> String {
    app.url(&format!("/api/v1/accounts/{account}/users"))
}

fn user_url(app: &TestApp, account: Uuid, user: Uuid) -> String {
    app.url(&format!("/api/v1/accounts/{account}/users/{user}"))
}

fn keys_url(app: &TestApp, account: Uuid) -> String {
    app.url(&format!("/api/v1/accounts/{account}/api-keys"))
}

fn tokens_url(app: &TestApp, account: Uuid) -> String {
    app.url(&format!("/api/v1/accounts/{account}/instance-tokens"))
}

fn validate_url(app: &TestApp) -> String {
    app.url("/api/v1/instance-tokens/validate")
}

/// `PATCH …/users/{user}` with `{"role": role}` as `token`.
async fn patch_role(
    app: &TestApp,
    token: &str,
    account: Uuid,
    user: Uuid,
    role: Value,
) -> reqwest::Response {
    app.http
        .patch(user_url(app, account, user))
        .bearer_auth(token)
        .json(&json!({ "role": role }))
        .send()
        .await
        .unwrap()
}

/// `GET /api/v1/me` status with a bearer token.
async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.http
        .get(app.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Creates an API key as `token`; returns the response.
async fn create_key(app: &TestApp, token: &str, account: Uuid, body: Value) -> reqwest::Response {
    app.http
        .post(keys_url(app, account))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Creates an API key that must succeed; returns (key, body).
async fn new_key(app: &TestApp, token: &str, account: Uuid, body: Value) -> (String, Value) {
    let response = create_key(app, token, account, body).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (body["key"].as_str().expect("key").to_owned(), body)
}

/// `GET …/users` with `X-API-Key`.
async fn users_with_key(app: &TestApp, account: Uuid, key: &str) -> reqwest::Response {
    app.http
        .get(users_url(app, account))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

/// Issues an instance token as `token`; returns the response.
async fn issue(app: &TestApp, token: &str, account: Uuid, body: Value) -> reqwest::Response {
    app.http
        .post(tokens_url(app, account))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Issues an instance token that must succeed; returns (token, body).
async fn new_instance_token(
    app: &TestApp,
    token: &str,
    account: Uuid,
    body: Value,
) -> (String, Value) {
    let response = issue(app, token, account, body).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (body["token"].as_str().expect("token").to_owned(), body)
}

/// `GET /api/v1/instance-tokens/validate` with a bearer value.
async fn validate(app: &TestApp, bearer: &str) -> reqwest::Response {
    app.http
        .get(validate_url(app))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
}

/// `wp_live_` + 12 `[a-z0-9]` + `_` + 43 base62.
fn is_api_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("wp_live_") else {
        return false;
    };
    let Some((prefix, secret)) = rest.split_once('_') else {
        return false;
    };
    prefix.len() == 12
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && secret.len() == 43
        && secret.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn uuid_of(value: &Value) -> Uuid {
    value.as_str().expect("uuid string").parse().expect("uuid")
}

fn time_of(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .expect("timestamp string")
        .parse()
        .expect("RFC 3339 timestamp")
}

/// Every scope of iam.md §4.6.
const ALL_SCOPES: [&str; 15] = [
    "usage:read",
    "users:read",
    "teams:read",
    "boards:read",
    "boards:write",
    "cards:read",
    "cards:write",
    "chat:read",
    "chat:write",
    "providers:read",
    "providers:write",
    "messages:send",
    "inboxes:read",
    "inboxes:write",
    "audit:read",
];

// ---------------------------------------------------------------------------------------------
// Roles and no escalation
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn an_admin_cannot_grant_super_admin() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;
    let (admin_token, _) = login_user(&app, "admin@acme.test").await;
    let (agent_token, _) = login_user(&app, "agent@acme.test").await;
    let before = user_row(&app, agent).await;

    let response = patch_role(&app, &admin_token, acme, agent, json!("super_admin")).await;
    let body = assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(body["details"]["required_role"], "super_admin", "{body}");

    assert_eq!(user_row(&app, agent).await, before, "nothing changed");
    assert_eq!(
        me_status(&app, &agent_token).await,
        200,
        "a refused change revokes nothing"
    );
    assert!(audit_rows(&app, "user.role_changed").await.is_empty());

    // Up to their own role is allowed.
    let response = patch_role(&app, &admin_token, acme, agent, json!("admin")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(user_row(&app, agent).await.0, "admin");
    app.stop().await;
}

#[actix_rt::test]
async fn an_admin_cannot_change_their_own_role() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let admin = app.seed_user(acme, "admin@acme.test", "admin").await;
    // A second admin, so the refusal is not the last-admin rule.
    app.seed_user(acme, "admin2@acme.test", "admin").await;
    let (token, _) = login_user(&app, "admin@acme.test").await;

    for role in ["agent", "supervisor"] {
        let response = patch_role(&app, &token, acme, admin, json!(role)).await;
        assert_error(response, 403, "FORBIDDEN").await;
        assert_eq!(user_row(&app, admin).await.0, "admin", "still admin");
    }
    assert_eq!(me_status(&app, &token).await, 200, "session untouched");
    assert!(audit_rows(&app, "user.role_changed").await.is_empty());
    app.stop().await;
}

#[actix_rt::test]
async fn a_supervisor_cannot_change_roles() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    app.seed_user(acme, "sup@acme.test", "supervisor").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;
    let (token, _) = login_user(&app, "sup@acme.test").await;

    for role in ["supervisor", "agent", "admin"] {
        let response = patch_role(&app, &token, acme, agent, json!(role)).await;
        let body = assert_error(response, 403, "FORBIDDEN").await;
        assert_eq!(body["details"]["required_role"], "admin", "{body}");
    }
    assert_eq!(user_row(&app, agent).await.0, "agent");
    assert!(audit_rows(&app, "user.role_changed").await.is_empty());
    app.stop().await;
}

#[actix_rt::test]
async fn the_last_active_admin_cannot_be_demoted_but_one_of_two_can() {
    let app = start().await;
    let (root, _, _) = super_admin(&app).await;
    let acme = app.seed_account("Acme").await;
    let admin1 = app.seed_user(acme, "admin1@acme.test", "admin").await;
    let (admin1_token, _) = login_user(&app, "admin1@acme.test").await;

    // Only one admin: even the super_admin cannot demote it.
    let response = patch_role(&app, &root, acme, admin1, json!("agent")).await;
    assert_error(response, 422, "UNPROCESSABLE").await;
    assert_eq!(user_row(&app, admin1).await.0, "admin");
    assert_eq!(me_status(&app, &admin1_token).await, 200, "nothing revoked");

    // Two admins: one demotes the other.
    let admin2 = app.seed_user(acme, "admin2@acme.test", "admin").await;
    app.sql(&format!(
        "UPDATE users SET role_source = 'chatwoot' WHERE id = '{admin2}'"
    ))
    .await;
    let response = patch_role(&app, &admin1_token, acme, admin2, json!("agent")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], admin2.to_string());
    assert_eq!(body["role"], "agent");
    assert_eq!(body["role_source"], "manual", "{body}");
    assert_eq!(
        user_row(&app, admin2).await,
        ("agent".into(), "manual".into(), "active".into())
    );

    // admin1 is the last one again.
    let response = patch_role(&app, &root, acme, admin1, json!("supervisor")).await;
    assert_error(response, 422, "UNPROCESSABLE").await;

    // An inactive admin does not count.
    let admin3 = app.seed_user(acme, "admin3@acme.test", "admin").await;
    app.sql(&format!(
        "UPDATE users SET status = 'inactive' WHERE id = '{admin3}'"
    ))
    .await;
    let response = patch_role(&app, &root, acme, admin1, json!("agent")).await;
    assert_error(response, 422, "UNPROCESSABLE").await;
    assert_eq!(user_row(&app, admin1).await.0, "admin");
    assert_eq!(me_status(&app, &admin1_token).await, 200);
    app.stop().await;
}

#[actix_rt::test]
async fn a_role_change_revokes_the_users_sessions_and_instance_tokens() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let admin = app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;
    let (admin_token, _) = login_user(&app, "admin@acme.test").await;
    let (agent_token, _) = login_user(&app, "agent@acme.test").await;
    let (instance, _) = new_instance_token(
        &app,
        &agent_token,
        acme,
        json!({ "scopes": ["users:read"], "ttl_minutes": 30 }),
    )
    .await;
    assert_eq!(me_status(&app, &agent_token).await, 200);
    assert_eq!(validate(&app, &instance).await.status(), 200);

    let response = patch_role(&app, &admin_token, acme, agent, json!("supervisor")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["role"], "supervisor");
    assert_eq!(body["role_source"], "manual");

    let response = within_5s(
        app.http
            .get(app.url("/api/v1/me"))
            .bearer_auth(&agent_token),
        401,
    )
    .await;
    assert_error(response, 401, "INVALID_TOKEN").await;
    let response = within_5s(app.http.get(validate_url(&app)).bearer_auth(&instance), 401).await;
    assert_error(response, 401, "INVALID_TOKEN").await;
    assert_eq!(
        me_status(&app, &admin_token).await,
        200,
        "the admin's session is untouched"
    );

    // Signing in again gives the new role.
    let (_, relogin) = login_user(&app, "agent@acme.test").await;
    assert_eq!(relogin["user"]["role"], "supervisor");

    let rows = audit_rows(&app, "user.role_changed").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["actor_id"], admin.to_string());
    assert_eq!(rows[0]["resource_id"], agent.to_string());
    assert_eq!(rows[0]["before"]["role"], "agent");
    assert_eq!(rows[0]["after"]["role"], "supervisor");
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT count(*)::text AS t FROM sessions WHERE user_id = '{agent}' \
                 AND revoked_at IS NOT NULL AND revoke_reason = 'role_changed'"
            )
        )
        .await,
        1
    );
    app.stop().await;
}

#[actix_rt::test]
async fn an_unknown_role_is_a_400() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;
    let (token, _) = login_user(&app, "admin@acme.test").await;

    for role in [
        json!("owner"),
        json!("Admin"),
        json!(""),
        json!("super-admin"),
    ] {
        let response = patch_role(&app, &token, acme, agent, role.clone()).await;
        let body = assert_error(response, 400, "VALIDATION_ERROR").await;
        assert_eq!(
            body["details"]["fields"][0]["field"], "role",
            "{role}: {body}"
        );
    }
    // A role of the wrong JSON type: conventions.md allows either 400 code.
    for role in [json!(3), json!(["admin"]), json!({ "name": "admin" })] {
        let response = patch_role(&app, &token, acme, agent, role.clone()).await;
        assert_eq!(response.status(), 400, "{role}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["code"] == "VALIDATION_ERROR" || body["code"] == "BAD_REQUEST",
            "{role}: {body}"
        );
    }
    assert_eq!(
        user_row(&app, agent).await,
        ("agent".into(), "manual".into(), "active".into())
    );
    app.stop().await;
}

#[actix_rt::test]
async fn an_admin_of_another_account_gets_404_and_b_is_unchanged() {
    let app = start().await;
    let a = app.seed_account("Tenant A").await;
    let b = app.seed_account("Tenant B").await;
    app.seed_user(a, "admin@a.test", "admin").await;
    app.seed_user(b, "admin@b.test", "admin").await;
    let b_agent = app.seed_user(b, "agent@b.test", "agent").await;
    let (a_token, _) = login_user(&app, "admin@a.test").await;
    let (b_agent_token, _) = login_user(&app, "agent@b.test").await;
    let before = user_row(&app, b_agent).await;

    // B's path with B's user.
    let response = patch_role(&app, &a_token, b, b_agent, json!("supervisor")).await;
    let foreign = assert_error(response, 404, "NOT_FOUND").await;
    // A's path with B's user id.
    let response = patch_role(&app, &a_token, a, b_agent, json!("supervisor")).await;
    assert_error(response, 404, "NOT_FOUND").await;
    // A nonexistent user answers the same.
    let response = patch_role(&app, &a_token, a, Uuid::now_v7(), json!("supervisor")).await;
    let missing = assert_error(response, 404, "NOT_FOUND").await;
    assert_eq!(foreign["message"], missing["message"]);
    assert_eq!(foreign.get("details"), missing.get("details"));

    assert_eq!(user_row(&app, b_agent).await, before, "B's user unchanged");
    assert_eq!(
        me_status(&app, &b_agent_token).await,
        200,
        "B's session alive"
    );
    assert!(audit_rows(&app, "user.role_changed").await.is_empty());
    app.stop().await;
}

#[actix_rt::test]
async fn super_admin_can_set_a_role_in_any_account() {
    let app = start().await;
    let (root, root_id, _) = super_admin(&app).await;
    let b = app.seed_account("Tenant B").await;
    app.seed_user(b, "admin@b.test", "admin").await;
    let agent = app.seed_user(b, "agent@b.test", "agent").await;

    let response = patch_role(&app, &root, b, agent, json!("admin")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["role"], "admin");
    assert_eq!(body["account_id"], b.to_string());
    assert_eq!(
        user_row(&app, agent).await,
        ("admin".into(), "manual".into(), "active".into())
    );
    let rows = audit_rows(&app, "user.role_changed").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor_id"], root_id.to_string());
    assert_eq!(rows[0]["account_id"], b.to_string());

    // super_admin exists only in the platform account, even when the super_admin asks.
    let other = app.seed_user(b, "other@b.test", "agent").await;
    let response = patch_role(&app, &root, b, other, json!("super_admin")).await;
    assert!(
        matches!(response.status().as_u16(), 403 | 422),
        "{}",
        response.status()
    );
    assert_eq!(user_row(&app, other).await.0, "agent");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn an_api_key_is_shown_once_stored_as_argon2id_and_authenticates() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let admin = app.seed_user(acme, "admin@acme.test", "admin").await;
    let (token, _) = login_user(&app, "admin@acme.test").await;

    let (key, body) = new_key(
        &app,
        &token,
        acme,
        json!({ "name": "CRM sync", "scopes": ["users:read"] }),
    )
    .await;
    assert!(is_api_key(&key), "{key}");
    let (prefix, secret) = key["wp_live_".len()..].split_once('_').unwrap();
    assert_eq!(body["prefix"], prefix);
    assert_eq!(body["name"], "CRM sync");
    assert_eq!(body["scopes"], json!(["users:read"]));
    assert_eq!(body["rate_limit_per_minute"], 600);
    assert_eq!(body["created_by"], admin.to_string());
    assert_eq!(body["revoked_at"], Value::Null);
    let id = uuid_of(&body["id"]);

    // Never shown again.
    let list = app
        .http
        .get(keys_url(&app, acme))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let list_text = list.text().await.unwrap();
    let list: Value = serde_json::from_str(&list_text).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["prefix"], prefix);
    let one = app
        .http
        .get(app.url(&format!("/api/v1/accounts/{acme}/api-keys/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let one_text = one.text().await.unwrap();
    for text in [&list_text, &one_text] {
        assert!(!text.contains(&key), "{text}");
        assert!(!text.contains(secret), "{text}");
        assert!(
            !text.contains("key_hash") && !text.contains("$argon2"),
            "{text}"
        );
    }

    // Stored as argon2id.
    let hash = app
        .text(format!(
            "SELECT key_hash AS t FROM api_keys WHERE id = '{id}'"
        ))
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(secret));
    assert_eq!(
        app.text(format!(
            "SELECT prefix AS t FROM api_keys WHERE id = '{id}'"
        ))
        .await
        .as_deref(),
        Some(prefix)
    );

    // It authenticates.
    let response = users_with_key(&app, acme, &key).await;
    assert_eq!(response.status(), 200);
    let users: Value = response.json().await.unwrap();
    assert_eq!(users["items"][0]["email"], "admin@acme.test");

    // last_used_at is recorded, at most once a minute.
    let last_used_sql = format!("SELECT last_used_at::text AS t FROM api_keys WHERE id = '{id}'");
    let deadline = Instant::now() + Duration::from_secs(5);
    let first_use = loop {
        if let Some(at) = app.text(last_used_sql.clone()).await {
            break at;
        }
        assert!(Instant::now() < deadline, "last_used_at never written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(users_with_key(&app, acme, &key).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.text(last_used_sql).await, Some(first_use));
    app.stop().await;
}

#[actix_rt::test]
async fn keys_and_tokens_of_one_account_see_another_as_404_and_die_with_their_account() {
    let app = start().await;
    let a = app.seed_account("Tenant A").await;
    let b = app.seed_account("Tenant B").await;
    app.seed_user(a, "admin@a.test", "admin").await;
    app.seed_user(b, "admin@b.test", "admin").await;
    let b_user = app.seed_user(b, "agent@b.test", "agent").await;
    let (token, _) = login_user(&app, "admin@a.test").await;
    let (key, _) = new_key(
        &app,
        &token,
        a,
        json!({ "name": "k", "scopes": ["users:read"] }),
    )
    .await;
    let (unused_key, _) = new_key(
        &app,
        &token,
        a,
        json!({ "name": "k2", "scopes": ["users:read"] }),
    )
    .await;
    let (instance, _) =
        new_instance_token(&app, &token, a, json!({ "scopes": ["users:read"] })).await;

    assert_error(users_with_key(&app, b, &key).await, 404, "NOT_FOUND").await;
    let response = app
        .http
        .get(user_url(&app, b, b_user))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NOT_FOUND").await;
    let response = app
        .http
        .get(users_url(&app, b))
        .bearer_auth(&instance)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NOT_FOUND").await;
    assert_eq!(users_with_key(&app, a, &key).await.status(), 200);

    // A suspended account: its (not yet cached) key and its instance token are refused.
    app.sql(&format!(
        "UPDATE accounts SET status = 'suspended' WHERE id = '{a}'"
    ))
    .await;
    assert_error(users_with_key(&app, a, &unused_key).await, 403, "FORBIDDEN").await;
    let response = app
        .http
        .get(users_url(&app, a))
        .bearer_auth(&instance)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    app.stop().await;
}

#[actix_rt::test]
async fn bad_malformed_and_revoked_api_keys_are_401() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let (token, _) = login_user(&app, "admin@acme.test").await;
    let (key, body) = new_key(
        &app,
        &token,
        acme,
        json!({ "name": "k", "scopes": ["users:read"] }),
    )
    .await;
    let id = uuid_of(&body["id"]);

    // A wrong secret behind a real prefix.
    let last = key.chars().last().unwrap();
    let forged = format!(
        "{}{}",
        &key[..key.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    assert!(is_api_key(&forged));
    assert_error(
        users_with_key(&app, acme, &forged).await,
        401,
        "INVALID_TOKEN",
    )
    .await;

    // Malformed keys.
    let (prefix, secret) = key["wp_live_".len()..].split_once('_').unwrap();
    for bad in [
        "garbage".to_owned(),
        format!("wp_test_{prefix}_{secret}"),
        format!("wp_live_{}_{secret}", prefix.to_uppercase()),
        format!("wp_live_{prefix}_{}", &secret[1..]),
        format!("wp_live_{prefix}{secret}"),
        format!("{key}x"),
    ] {
        let response = users_with_key(&app, acme, &bad).await;
        assert_error(response, 401, "INVALID_TOKEN").await;
    }

    // The real one works (and is now cached); revoking it kills it.
    assert_eq!(users_with_key(&app, acme, &key).await.status(), 200);
    let response = app
        .http
        .delete(app.url(&format!("/api/v1/accounts/{acme}/api-keys/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = within_5s(
        app.http
            .get(users_url(&app, acme))
            .header("x-api-key", &key),
        401,
    )
    .await;
    assert_error(response, 401, "INVALID_TOKEN").await;

    // The row is kept, marked revoked.
    let one: Value = app
        .http
        .get(app.url(&format!("/api/v1/accounts/{acme}/api-keys/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(one["revoked_at"].is_string(), "{one}");
    assert_eq!(audit_rows(&app, "api_key.revoked").await.len(), 1);
    app.stop().await;
}

#[actix_rt::test]
async fn a_revoked_api_key_fails_on_another_node_within_5s() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let (token, _) = login_user(&app, "admin@acme.test").await;
    let (key, body) = new_key(
        &app,
        &token,
        acme,
        json!({ "name": "k", "scopes": ["users:read"] }),
    )
    .await;
    let id = uuid_of(&body["id"]);
    let node_b = TestApp::start_on(app.db_url.clone(), |_| {}).await;

    // Node B verifies (and caches) the key.
    assert_eq!(users_with_key(&node_b, acme, &key).await.status(), 200);

    let response = app
        .http
        .delete(app.url(&format!("/api/v1/accounts/{acme}/api-keys/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let response = within_5s(
        node_b
            .http
            .get(users_url(&node_b, acme))
            .header("x-api-key", &key),
        401,
    )
    .await;
    assert_error(response, 401, "INVALID_TOKEN").await;
    node_b.stop().await;
    app.stop().await;
}

#[actix_rt::test]
async fn an_expired_api_key_is_token_expired() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let (token, _) = login_user(&app, "admin@acme.test").await;
    let (key, body) = new_key(
        &app,
        &token,
        acme,
        json!({ "name": "k", "scopes": ["users:read"] }),
    )
    .await;
    let id = uuid_of(&body["id"]);
    app.sql(&format!(
        "UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = '{id}'"
    ))
    .await;
    assert_error(users_with_key(&app, acme, &key).await, 401, "TOKEN_EXPIRED").await;

    // An expiry at creation must lie in the future.
    let past = (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let response = create_key(
        &app,
        &token,
        acme,
        json!({ "name": "k2", "scopes": ["users:read"], "expires_at": past }),
    )
    .await;
    assert_error(response, 400, "VALIDATION_ERROR").await;
    app.stop().await;
}

#[actix_rt::test]
async fn an_api_key_without_the_scope_gets_scope_missing() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let admin = app.seed_user(acme, "admin@acme.test", "admin").await;
    let (token, _) = login_user(&app, "admin@acme.test").await;
    let (key, _) = new_key(
        &app,
        &token,
        acme,
        json!({ "name": "teams only", "scopes": ["teams:read"] }),
    )
    .await;

    let body = assert_error(users_with_key(&app, acme, &key).await, 403, "SCOPE_MISSING").await;
    assert_eq!(body["details"]["required_scope"], "users:read", "{body}");
    let response = app
        .http
        .get(user_url(&app, acme, admin))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 403, "SCOPE_MISSING").await;
    assert_eq!(body["details"]["required_scope"], "users:read", "{body}");
    app.stop().await;
}

#[actix_rt::test]
async fn api_keys_are_refused_on_me_admin_and_management_routes() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;
    let (token, _) = login_user(&app, "admin@acme.test").await;
    // Every scope: the refusals below are about the credential kind, not a missing scope.
    let (key, _) = new_key(
        &app,
        &token,
        acme,
        json!({ "name": "all", "scopes": ALL_SCOPES }),
    )
    .await;
    assert_eq!(users_with_key(&app, acme, &key).await.status(), 200);

    let with_key = |request: reqwest::RequestBuilder| request.header("x-api-key", &key);
    let refused = [
        (
            "GET /api/v1/me",
            with_key(app.http.get(app.url("/api/v1/me"))),
        ),
        (
            "GET /api/v1/me/sessions",
            with_key(app.http.get(app.url("/api/v1/me/sessions"))),
        ),
        (
            "POST /api/v1/me/password",
            with_key(app.http.post(app.url("/api/v1/me/password"))).json(&json!({
                "current_password": USER_PASSWORD, "new_password": "a brand new passphrase"
            })),
        ),
        (
            "GET /admin/tenants",
            with_key(app.http.get(app.url("/admin/tenants"))),
        ),
        (
            "POST /admin/impersonate",
            with_key(app.http.post(app.url("/admin/impersonate")))
                .json(&json!({ "user_id": agent, "reason": "support ticket 1234" })),
        ),
        (
            "POST api-keys",
            with_key(app.http.post(keys_url(&app, acme)))
                .json(&json!({ "name": "child", "scopes": ["users:read"] })),
        ),
        ("GET api-keys", with_key(app.http.get(keys_url(&app, acme)))),
        (
            "POST instance-tokens",
            with_key(app.http.post(tokens_url(&app, acme)))
                .json(&json!({ "scopes": ["users:read"] })),
        ),
        (
            "PATCH user",
            with_key(app.http.patch(user_url(&app, acme, agent)))
                .json(&json!({ "role": "supervisor" })),
        ),
        (
            "POST user password",
            with_key(
                app.http
                    .post(app.url(&format!("/api/v1/accounts/{acme}/users/{agent}/password"))),
            )
            .json(&json!({ "new_password": "a brand new passphrase" })),
        ),
        (
            "DELETE user sessions",
            with_key(
                app.http
                    .delete(app.url(&format!("/api/v1/accounts/{acme}/users/{agent}/sessions"))),
            ),
        ),
    ];
    for (name, request) in refused {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{name}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["code"] == "FORBIDDEN" || body["code"] == "SCOPE_MISSING",
            "{name}: {body}"
        );
    }
    assert_eq!(user_row(&app, agent).await.0, "agent");
    assert_eq!(
        count(&app, "SELECT count(*)::text AS t FROM api_keys".into()).await,
        1,
        "no key created by a key"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*)::text AS t FROM instance_tokens".into()
        )
        .await,
        0
    );
    app.stop().await;
}

#[actix_rt::test]
async fn an_api_key_has_its_own_rate_limit() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let (token, _) = login_user(&app, "admin@acme.test").await;
    let (key, body) = new_key(
        &app,
        &token,
        acme,
        json!({ "name": "slow", "scopes": ["users:read"], "rate_limit_per_minute": 2 }),
    )
    .await;
    assert_eq!(body["rate_limit_per_minute"], 2);

    for _ in 0..2 {
        let response = users_with_key(&app, acme, &key).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit"], "2");
    }
    let response = users_with_key(&app, acme, &key).await;
    assert_eq!(response.headers()["x-ratelimit-limit"], "2");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_error(response, 429, "RATE_LIMITED").await;

    // The limit is the key's: the admin's own session and another key still pass.
    let response = app
        .http
        .get(users_url(&app, acme))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (other, _) = new_key(
        &app,
        &token,
        acme,
        json!({ "name": "other", "scopes": ["users:read"] }),
    )
    .await;
    let response = users_with_key(&app, acme, &other).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ratelimit-limit"], "600");
    app.stop().await;
}

#[actix_rt::test]
async fn api_key_creation_checks_scopes_bounds_and_role() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    app.seed_user(acme, "sup@acme.test", "supervisor").await;
    app.seed_user(acme, "agent@acme.test", "agent").await;
    let (admin, _) = login_user(&app, "admin@acme.test").await;
    let (sup, _) = login_user(&app, "sup@acme.test").await;
    let (agent, _) = login_user(&app, "agent@acme.test").await;

    for scopes in [
        json!(["users:write"]),
        json!(["users:read", "nope"]),
        json!(["users:*"]),
        json!(["*"]),
        json!([]),
    ] {
        let response =
            create_key(&app, &admin, acme, json!({ "name": "k", "scopes": scopes })).await;
        assert_error(response, 400, "VALIDATION_ERROR").await;
    }
    for rate in [0, 6001] {
        let response = create_key(
            &app,
            &admin,
            acme,
            json!({ "name": "k", "scopes": ["users:read"], "rate_limit_per_minute": rate }),
        )
        .await;
        assert_error(response, 400, "VALIDATION_ERROR").await;
    }
    for token in [&sup, &agent] {
        let response = create_key(
            &app,
            token,
            acme,
            json!({ "name": "k", "scopes": ["users:read"] }),
        )
        .await;
        let body = assert_error(response, 403, "FORBIDDEN").await;
        assert_eq!(body["details"]["required_role"], "admin", "{body}");
        let response = app
            .http
            .get(keys_url(&app, acme))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_error(response, 403, "FORBIDDEN").await;
    }
    assert_eq!(
        count(&app, "SELECT count(*)::text AS t FROM api_keys".into()).await,
        0
    );
    assert!(audit_rows(&app, "api_key.created").await.is_empty());
    app.stop().await;
}

#[actix_rt::test]
async fn two_credentials_at_once_are_a_400() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let (token, _) = login_user(&app, "admin@acme.test").await;
    let (key, _) = new_key(
        &app,
        &token,
        acme,
        json!({ "name": "k", "scopes": ["users:read"] }),
    )
    .await;
    let (instance, _) =
        new_instance_token(&app, &token, acme, json!({ "scopes": ["users:read"] })).await;

    for bearer in [&token, &instance] {
        let response = app
            .http
            .get(users_url(&app, acme))
            .bearer_auth(bearer)
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "BAD_REQUEST").await;
    }
    // Each alone works.
    assert_eq!(users_with_key(&app, acme, &key).await.status(), 200);
    for bearer in [&token, &instance] {
        let response = app
            .http
            .get(users_url(&app, acme))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Instance tokens
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn instance_token_requests_are_validated() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "agent@acme.test", "agent").await;
    let (agent, _) = login_user(&app, "agent@acme.test").await;

    for ttl in [14, 61, 0, -5] {
        let response = issue(
            &app,
            &agent,
            acme,
            json!({ "scopes": ["users:read"], "ttl_minutes": ttl }),
        )
        .await;
        let body = assert_error(response, 400, "VALIDATION_ERROR").await;
        assert_eq!(
            body["details"]["fields"][0]["field"], "ttl_minutes",
            "{body}"
        );
    }

    let response = issue(&app, &agent, acme, json!({ "scopes": ["providers:write"] })).await;
    let body = assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(
        body["details"]["scopes_not_allowed"],
        json!(["providers:write"]),
        "{body}"
    );

    let response = issue(
        &app,
        &agent,
        acme,
        json!({ "scopes": ["users:read", "audit:read", "boards:write"] }),
    )
    .await;
    let body = assert_error(response, 403, "FORBIDDEN").await;
    let mut refused: Vec<String> =
        serde_json::from_value(body["details"]["scopes_not_allowed"].clone()).unwrap();
    refused.sort();
    assert_eq!(refused, ["audit:read", "boards:write"], "{body}");

    // Supervisors have the same limits; admins may ask any scope.
    app.seed_user(acme, "sup@acme.test", "supervisor").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let (sup, _) = login_user(&app, "sup@acme.test").await;
    let (admin, _) = login_user(&app, "admin@acme.test").await;
    let response = issue(
        &app,
        &sup,
        acme,
        json!({ "scopes": ["inboxes:write", "cards:write"] }),
    )
    .await;
    let body = assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(
        body["details"]["scopes_not_allowed"],
        json!(["inboxes:write"]),
        "{body}"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*)::text AS t FROM instance_tokens".into()
        )
        .await,
        0,
        "nothing issued"
    );
    let response = issue(&app, &admin, acme, json!({ "scopes": ["providers:write"] })).await;
    assert_eq!(response.status(), 201);
    app.sql("DELETE FROM instance_tokens").await;

    for scopes in [
        json!(["users:read", "users:write"]),
        json!(["bogus"]),
        json!([]),
    ] {
        let response = issue(&app, &agent, acme, json!({ "scopes": scopes })).await;
        assert_error(response, 400, "VALIDATION_ERROR").await;
    }
    assert_eq!(
        count(
            &app,
            "SELECT count(*)::text AS t FROM instance_tokens".into()
        )
        .await,
        0,
        "nothing issued"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn an_agents_instance_token_acts_as_the_agent_within_its_scopes() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;
    let colleague = app.seed_user(acme, "colleague@acme.test", "agent").await;
    let (agent_token, _) = login_user(&app, "agent@acme.test").await;

    let issued_at = Utc::now();
    let (instance, body) = new_instance_token(
        &app,
        &agent_token,
        acme,
        json!({ "scopes": ["users:read"], "ttl_minutes": 15 }),
    )
    .await;
    assert!(instance.starts_with("wpi_"), "{instance}");
    assert_eq!(instance.len(), 47);
    assert!(instance[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    let id = uuid_of(&body["id"]);
    assert_eq!(body["scopes"], json!(["users:read"]));
    assert_eq!(body["provider_instance_id"], Value::Null);
    assert!(body.get("provider_instance_id").is_some(), "{body}");
    let expires_at = time_of(&body["expires_at"]);
    let ahead = expires_at - issued_at;
    assert!(
        ahead > chrono::Duration::seconds(14 * 60 + 50)
            && ahead < chrono::Duration::seconds(15 * 60 + 10),
        "{ahead}"
    );
    // Stored hashed.
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT count(*)::text AS t FROM instance_tokens WHERE id = '{id}' \
                 AND token_hash = sha256(convert_to('{instance}', 'UTF8'))"
            )
        )
        .await,
        1
    );

    // Works where its scope suffices.
    let response = app
        .http
        .get(users_url(&app, acme))
        .bearer_auth(&instance)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Refused on user management (needs a user session).
    let response = app
        .http
        .patch(user_url(&app, acme, colleague))
        .bearer_auth(&instance)
        .json(&json!({ "role": "supervisor" }))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(user_row(&app, colleague).await.0, "agent");
    // Tokens may read /me, but not /me/*.
    let response = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&instance)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["id"], agent.to_string());
    assert_eq!(me["role"], "agent");
    let response = app
        .http
        .get(app.url("/api/v1/me/sessions"))
        .bearer_auth(&instance)
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;

    // validate.
    let response = validate(&app, &instance).await;
    assert_eq!(response.status(), 200);
    let valid: Value = response.json().await.unwrap();
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["account_id"], acme.to_string());
    assert_eq!(valid["user_id"], agent.to_string());
    assert_eq!(valid["scopes"], json!(["users:read"]));
    assert_eq!(valid["provider_instance_id"], Value::Null);
    assert_eq!(time_of(&valid["expires_at"]), expires_at);
    // validate with an access token, or garbage.
    assert_error(validate(&app, &agent_token).await, 401, "INVALID_TOKEN").await;
    let unknown = format!("wpi_{}", "A".repeat(43));
    assert_error(validate(&app, &unknown).await, 401, "INVALID_TOKEN").await;

    // The list never shows the token.
    let list = app
        .http
        .get(tokens_url(&app, acme))
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&instance), "{list}");
    assert!(!list.contains(&instance[4..]), "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], id.to_string());
    app.stop().await;
}

#[actix_rt::test]
async fn an_out_of_scope_instance_token_gets_scope_missing() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;
    let (admin_token, _) = login_user(&app, "admin@acme.test").await;
    let (agent_token, _) = login_user(&app, "agent@acme.test").await;

    let (teams_only, _) = new_instance_token(
        &app,
        &agent_token,
        acme,
        json!({ "scopes": ["teams:read"] }),
    )
    .await;
    let response = app
        .http
        .get(users_url(&app, acme))
        .bearer_auth(&teams_only)
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 403, "SCOPE_MISSING").await;
    assert_eq!(body["details"]["required_scope"], "users:read", "{body}");

    // An admin's token is narrowed too: the admin may change roles, the token may not.
    let (admin_instance, _) =
        new_instance_token(&app, &admin_token, acme, json!({ "scopes": ALL_SCOPES })).await;
    let response = app
        .http
        .patch(user_url(&app, acme, agent))
        .bearer_auth(&admin_instance)
        .json(&json!({ "role": "supervisor" }))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;
    let response = app
        .http
        .get(keys_url(&app, acme))
        .bearer_auth(&admin_instance)
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;
    let response = app
        .http
        .get(app.url("/admin/tenants"))
        .bearer_auth(&admin_instance)
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(user_row(&app, agent).await.0, "agent");
    app.stop().await;
}

#[actix_rt::test]
async fn a_revoked_instance_token_fails_validation() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "agent@acme.test", "agent").await;
    let (agent, _) = login_user(&app, "agent@acme.test").await;
    let issued_at = Utc::now();
    let (instance, body) =
        new_instance_token(&app, &agent, acme, json!({ "scopes": ["users:read"] })).await;
    let id = uuid_of(&body["id"]);
    let ahead = time_of(&body["expires_at"]) - issued_at;
    assert!(
        ahead > chrono::Duration::seconds(29 * 60 + 50)
            && ahead < chrono::Duration::seconds(30 * 60 + 10),
        "default ttl is 30 min: {ahead}"
    );
    assert_eq!(validate(&app, &instance).await.status(), 200);

    let response = app
        .http
        .delete(app.url(&format!("/api/v1/accounts/{acme}/instance-tokens/{id}")))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = within_5s(app.http.get(validate_url(&app)).bearer_auth(&instance), 401).await;
    assert_error(response, 401, "INVALID_TOKEN").await;
    assert_eq!(
        me_status(&app, &agent).await,
        200,
        "the issuer's session lives"
    );
    assert_eq!(audit_rows(&app, "instance_token.revoked").await.len(), 1);
    app.stop().await;
}

#[actix_rt::test]
async fn an_expired_instance_token_is_token_expired() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "agent@acme.test", "agent").await;
    let (agent, _) = login_user(&app, "agent@acme.test").await;
    let (instance, body) = new_instance_token(
        &app,
        &agent,
        acme,
        json!({ "scopes": ["users:read"], "ttl_minutes": 15 }),
    )
    .await;
    let id = uuid_of(&body["id"]);
    // Keep within the CHECK (15–60 min after created_at): move both back.
    app.sql(&format!(
        "UPDATE instance_tokens SET created_at = now() - interval '20 minutes', \
         expires_at = now() - interval '5 minutes' WHERE id = '{id}'"
    ))
    .await;
    assert_error(validate(&app, &instance).await, 401, "TOKEN_EXPIRED").await;
    let response = app
        .http
        .get(users_url(&app, acme))
        .bearer_auth(&instance)
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "TOKEN_EXPIRED").await;
    app.stop().await;
}

#[actix_rt::test]
async fn the_issuers_logout_kills_their_instance_tokens() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "agent@acme.test", "agent").await;
    let (agent, _) = login_user(&app, "agent@acme.test").await;
    let (instance, body) =
        new_instance_token(&app, &agent, acme, json!({ "scopes": ["users:read"] })).await;
    let id = uuid_of(&body["id"]);
    assert_eq!(validate(&app, &instance).await.status(), 200);

    // An instance token cannot log out its issuer.
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&instance)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(validate(&app, &instance).await.status(), 200);

    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = within_5s(app.http.get(validate_url(&app)).bearer_auth(&instance), 401).await;
    assert_error(response, 401, "INVALID_TOKEN").await;
    assert!(
        app.text(format!(
            "SELECT revoked_at::text AS t FROM instance_tokens WHERE id = '{id}'"
        ))
        .await
        .is_some(),
        "the token row is revoked with the session"
    );

    // Logging out with the refresh token kills the session's instance tokens too.
    let (agent2, login2) = login_user(&app, "agent@acme.test").await;
    let (instance2, _) =
        new_instance_token(&app, &agent2, acme, json!({ "scopes": ["users:read"] })).await;
    assert_eq!(validate(&app, &instance2).await.status(), 200);
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .json(&json!({ "refresh_token": login2["refresh_token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = within_5s(
        app.http.get(validate_url(&app)).bearer_auth(&instance2),
        401,
    )
    .await;
    assert_error(response, 401, "INVALID_TOKEN").await;
    app.stop().await;
}

#[actix_rt::test]
async fn a_provider_instance_id_that_is_not_ours_is_404() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "agent@acme.test", "agent").await;
    let (agent, _) = login_user(&app, "agent@acme.test").await;
    let response = issue(
        &app,
        &agent,
        acme,
        json!({ "scopes": ["providers:read"], "provider_instance_id": Uuid::now_v7() }),
    )
    .await;
    assert_error(response, 404, "NOT_FOUND").await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*)::text AS t FROM instance_tokens".into()
        )
        .await,
        0
    );
    app.stop().await;
}

#[actix_rt::test]
async fn an_instance_token_cannot_issue_instance_tokens() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let (admin, _) = login_user(&app, "admin@acme.test").await;
    let (instance, _) =
        new_instance_token(&app, &admin, acme, json!({ "scopes": ALL_SCOPES })).await;
    let response = issue(&app, &instance, acme, json!({ "scopes": ["users:read"] })).await;
    assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*)::text AS t FROM instance_tokens".into()
        )
        .await,
        1
    );
    app.stop().await;
}

#[actix_rt::test]
async fn instance_token_lists_and_revocations_respect_ownership() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let admin = app.seed_user(acme, "admin@acme.test", "admin").await;
    let ana = app.seed_user(acme, "ana@acme.test", "agent").await;
    let bob = app.seed_user(acme, "bob@acme.test", "supervisor").await;
    let (admin_token, _) = login_user(&app, "admin@acme.test").await;
    let (ana_token, _) = login_user(&app, "ana@acme.test").await;
    let (bob_token, _) = login_user(&app, "bob@acme.test").await;
    let scopes = json!({ "scopes": ["users:read"] });
    let (_, ana_issued) = new_instance_token(&app, &ana_token, acme, scopes.clone()).await;
    let (bob_instance, bob_issued) =
        new_instance_token(&app, &bob_token, acme, scopes.clone()).await;
    let (_, admin_issued) = new_instance_token(&app, &admin_token, acme, scopes.clone()).await;

    let list = |token: String| {
        let request = app.http.get(tokens_url(&app, acme)).bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            let mut ids: Vec<(String, String)> = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["id"].as_str().unwrap().to_owned(),
                        t["user_id"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            ids.sort();
            ids
        }
    };
    let pair =
        |issued: &Value, user: Uuid| (issued["id"].as_str().unwrap().to_owned(), user.to_string());
    assert_eq!(list(ana_token.clone()).await, vec![pair(&ana_issued, ana)]);
    assert_eq!(list(bob_token.clone()).await, vec![pair(&bob_issued, bob)]);
    let mut all = vec![
        pair(&ana_issued, ana),
        pair(&bob_issued, bob),
        pair(&admin_issued, admin),
    ];
    all.sort();
    assert_eq!(list(admin_token.clone()).await, all);

    // A non-admin cannot revoke a colleague's token: it answers like a missing one.
    let bob_id = bob_issued["id"].as_str().unwrap();
    let response = app
        .http
        .delete(app.url(&format!("/api/v1/accounts/{acme}/instance-tokens/{bob_id}")))
        .bearer_auth(&ana_token)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NOT_FOUND").await;
    let response = app
        .http
        .delete(app.url(&format!(
            "/api/v1/accounts/{acme}/instance-tokens/{}",
            Uuid::now_v7()
        )))
        .bearer_auth(&ana_token)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NOT_FOUND").await;
    assert_eq!(
        validate(&app, &bob_instance).await.status(),
        200,
        "still alive"
    );
    assert!(audit_rows(&app, "instance_token.revoked").await.is_empty());

    // An admin may revoke anyone's.
    let response = app
        .http
        .delete(app.url(&format!("/api/v1/accounts/{acme}/instance-tokens/{bob_id}")))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = within_5s(
        app.http.get(validate_url(&app)).bearer_auth(&bob_instance),
        401,
    )
    .await;
    assert_error(response, 401, "INVALID_TOKEN").await;
    app.stop().await;
}

#[actix_rt::test]
async fn keys_and_tokens_of_another_account_answer_404_and_stay_alive() {
    let app = start().await;
    let a = app.seed_account("Tenant A").await;
    let b = app.seed_account("Tenant B").await;
    app.seed_user(a, "admin@a.test", "admin").await;
    app.seed_user(b, "admin@b.test", "admin").await;
    let (a_token, _) = login_user(&app, "admin@a.test").await;
    let (b_token, _) = login_user(&app, "admin@b.test").await;
    let (b_key, b_key_body) = new_key(
        &app,
        &b_token,
        b,
        json!({ "name": "b", "scopes": ["users:read"] }),
    )
    .await;
    let (b_instance, b_instance_body) =
        new_instance_token(&app, &b_token, b, json!({ "scopes": ["users:read"] })).await;
    let (b_key_id, b_instance_id) = (
        b_key_body["id"].as_str().unwrap().to_owned(),
        b_instance_body["id"].as_str().unwrap().to_owned(),
    );
    let missing = Uuid::now_v7().to_string();

    let url = |path: String| app.url(&path);
    let requests = [
        app.http.get(url(format!("/api/v1/accounts/{b}/api-keys"))),
        app.http
            .post(url(format!("/api/v1/accounts/{b}/api-keys")))
            .json(&json!({ "name": "x", "scopes": ["users:read"] })),
        app.http
            .get(url(format!("/api/v1/accounts/{b}/api-keys/{b_key_id}"))),
        app.http
            .get(url(format!("/api/v1/accounts/{a}/api-keys/{b_key_id}"))),
        app.http
            .get(url(format!("/api/v1/accounts/{a}/api-keys/{missing}"))),
        app.http
            .delete(url(format!("/api/v1/accounts/{b}/api-keys/{b_key_id}"))),
        app.http
            .delete(url(format!("/api/v1/accounts/{a}/api-keys/{b_key_id}"))),
        app.http
            .delete(url(format!("/api/v1/accounts/{a}/api-keys/{missing}"))),
        app.http
            .get(url(format!("/api/v1/accounts/{b}/instance-tokens"))),
        app.http
            .post(url(format!("/api/v1/accounts/{b}/instance-tokens")))
            .json(&json!({ "scopes": ["users:read"] })),
        app.http.delete(url(format!(
            "/api/v1/accounts/{b}/instance-tokens/{b_instance_id}"
        ))),
        app.http.delete(url(format!(
            "/api/v1/accounts/{a}/instance-tokens/{b_instance_id}"
        ))),
        app.http.delete(url(format!(
            "/api/v1/accounts/{a}/instance-tokens/{missing}"
        ))),
    ];
    for request in requests {
        let response = request.bearer_auth(&a_token).send().await.unwrap();
        assert_error(response, 404, "NOT_FOUND").await;
    }

    // B is unchanged: one key and one token, both alive.
    assert_eq!(users_with_key(&app, b, &b_key).await.status(), 200);
    assert_eq!(validate(&app, &b_instance).await.status(), 200);
    assert_eq!(
        count(
            &app,
            "SELECT count(*)::text AS t FROM api_keys WHERE revoked_at IS NULL".into()
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*)::text AS t FROM instance_tokens WHERE revoked_at IS NULL".into()
        )
        .await,
        1
    );
    assert!(audit_rows(&app, "api_key.revoked").await.is_empty());
    assert!(audit_rows(&app, "instance_token.revoked").await.is_empty());
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Impersonation
// ---------------------------------------------------------------------------------------------

async fn impersonate(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/admin/impersonate"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn impersonation_count_sql() -> String {
    "SELECT count(*)::text AS t FROM sessions WHERE kind = 'impersonation'".into()
}

#[actix_rt::test]
async fn only_super_admin_may_impersonate() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;
    let (admin, _) = login_user(&app, "admin@acme.test").await;
    let (agent_token, _) = login_user(&app, "agent@acme.test").await;

    for token in [&admin, &agent_token] {
        let response = impersonate(
            &app,
            token,
            json!({ "user_id": agent, "reason": "support ticket 1234" }),
        )
        .await;
        let body = assert_error(response, 403, "FORBIDDEN").await;
        assert_eq!(body["details"]["required_role"], "super_admin", "{body}");
    }
    assert_eq!(count(&app, impersonation_count_sql()).await, 0);
    assert!(audit_rows(&app, "impersonation.started").await.is_empty());
    app.stop().await;
}

#[actix_rt::test]
async fn impersonation_requests_are_checked() {
    let app = start().await;
    let (root, root_id, platform) = super_admin(&app).await;
    let other_root = app
        .seed_user(platform, "root2@hub.test", "super_admin")
        .await;
    let acme = app.seed_account("Acme").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;

    let response = impersonate(
        &app,
        &root,
        json!({ "user_id": agent, "reason": "too short" }),
    )
    .await;
    let body = assert_error(response, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["fields"][0]["field"], "reason", "{body}");
    let response = impersonate(
        &app,
        &root,
        json!({ "user_id": agent, "reason": "x".repeat(501) }),
    )
    .await;
    assert_error(response, 400, "VALIDATION_ERROR").await;

    for target in [other_root, root_id] {
        let response = impersonate(
            &app,
            &root,
            json!({ "user_id": target, "reason": "support ticket 1234" }),
        )
        .await;
        assert_error(response, 403, "FORBIDDEN").await;
    }
    let response = impersonate(
        &app,
        &root,
        json!({ "user_id": Uuid::now_v7(), "reason": "support ticket 1234" }),
    )
    .await;
    assert_error(response, 404, "NOT_FOUND").await;
    assert_eq!(count(&app, impersonation_count_sql()).await, 0);
    app.stop().await;
}

#[actix_rt::test]
async fn super_admin_impersonates_an_agent_of_another_account() {
    let app = start().await;
    let (root, root_id, _) = super_admin(&app).await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;
    let (agent_token, _) = login_user(&app, "agent@acme.test").await;
    let reason = "customer asked for help with ticket #4711";

    let response = impersonate(&app, &root, json!({ "user_id": agent, "reason": reason })).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().expect("token").to_owned();
    let session_id = uuid_of(&body["session_id"]);
    assert_eq!(body["user"]["id"], agent.to_string());
    assert_eq!(body["user"]["account_id"], acme.to_string());
    assert_eq!(body["user"]["role"], "agent");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token: {body}"
    );

    let claims = claims_of(&token);
    assert_eq!(claims["sub"], root_id.to_string(), "{claims}");
    assert_eq!(claims["act_as"], agent.to_string(), "{claims}");
    assert_eq!(claims["account_id"], acme.to_string(), "{claims}");
    assert_eq!(claims["role"], "agent", "{claims}");
    assert_eq!(claims["sid"], session_id.to_string(), "{claims}");
    assert_eq!(claims["typ"], "access");

    // /me is the agent, impersonated.
    let me: Value = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], agent.to_string(), "{me}");
    assert_eq!(me["account_id"], acme.to_string());
    assert_eq!(me["role"], "agent");
    assert_eq!(me["impersonated_by"], root_id.to_string(), "{me}");

    // Forbidden while impersonating.
    let response = create_key(
        &app,
        &token,
        acme,
        json!({ "name": "k", "scopes": ["users:read"] }),
    )
    .await;
    let denied = assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(denied["details"]["reason"], "impersonating", "{denied}");
    let response = app
        .http
        .get(app.url("/admin/tenants"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;
    let response = impersonate(
        &app,
        &token,
        json!({ "user_id": agent, "reason": "nested impersonation" }),
    )
    .await;
    assert_error(response, 403, "FORBIDDEN").await;
    let response = app
        .http
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(&token)
        .json(
            &json!({ "current_password": USER_PASSWORD, "new_password": "a brand new passphrase" }),
        )
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;

    // Audited with the reason, naming both.
    let started = audit_rows(&app, "impersonation.started").await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["actor_type"], "user");
    assert_eq!(started[0]["actor_id"], root_id.to_string());
    assert_eq!(started[0]["acted_as_user_id"], agent.to_string());
    assert_eq!(started[0]["account_id"], acme.to_string());
    assert_eq!(started[0]["after"]["reason"], reason);

    // The agent sees the session.
    let sessions: Value = app
        .http
        .get(app.url("/api/v1/me/sessions"))
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = sessions["items"].as_array().unwrap();
    let seen = items
        .iter()
        .find(|s| s["id"] == session_id.to_string())
        .unwrap_or_else(|| panic!("impersonation session listed: {sessions}"));
    assert_eq!(seen["kind"], "impersonation");
    assert_eq!(seen["impersonated_by"], root_id.to_string());
    assert_eq!(seen["current"], false);
    let own = items
        .iter()
        .find(|s| s["current"] == true)
        .expect("the agent's own session");
    assert_eq!(own["impersonated_by"], Value::Null);

    // Logging out ends it, audited.
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let ended = audit_rows(&app, "impersonation.ended").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["actor_id"], root_id.to_string());
    assert_eq!(ended[0]["acted_as_user_id"], agent.to_string());
    assert_eq!(ended[0]["resource_id"], session_id.to_string());
    let response = within_5s(app.http.get(app.url("/api/v1/me")).bearer_auth(&token), 401).await;
    assert_error(response, 401, "INVALID_TOKEN").await;
    assert_eq!(
        me_status(&app, &agent_token).await,
        200,
        "the agent's own session lives"
    );
    assert_eq!(
        me_status(&app, &root).await,
        200,
        "the super_admin's session lives"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn impersonating_an_admin_uses_their_rights_but_never_key_management() {
    let app = start().await;
    let (root, root_id, _) = super_admin(&app).await;
    let acme = app.seed_account("Acme").await;
    let admin = app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;

    let response = impersonate(
        &app,
        &root,
        json!({ "user_id": admin, "reason": "checking the admin's settings" }),
    )
    .await;
    assert_eq!(response.status(), 201);
    let token = response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // API keys: refused, though the target is an admin.
    let response = create_key(
        &app,
        &token,
        acme,
        json!({ "name": "k", "scopes": ["users:read"] }),
    )
    .await;
    let body = assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(body["details"]["reason"], "impersonating", "{body}");
    let response = app
        .http
        .get(keys_url(&app, acme))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(
        count(&app, "SELECT count(*)::text AS t FROM api_keys".into()).await,
        0
    );

    // The admin's own rights apply, and the rows name both people.
    let response = patch_role(&app, &token, acme, agent, json!("supervisor")).await;
    assert_eq!(response.status(), 200);
    let rows = audit_rows(&app, "user.role_changed").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor_id"], root_id.to_string());
    assert_eq!(rows[0]["acted_as_user_id"], admin.to_string());
    // And the admin's own role is still theirs to keep.
    let response = patch_role(&app, &token, acme, admin, json!("agent")).await;
    assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(user_row(&app, admin).await.0, "admin");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Audit redaction
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn audit_rows_never_contain_keys_tokens_or_passwords() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent = app.seed_user(acme, "agent@acme.test", "agent").await;
    let (admin, admin_login) = login_user(&app, "admin@acme.test").await;

    let (key, _) = new_key(
        &app,
        &admin,
        acme,
        json!({ "name": "audit me", "scopes": ["users:read"] }),
    )
    .await;
    let secret = key.rsplit('_').next().unwrap().to_owned();
    let (instance, _) =
        new_instance_token(&app, &admin, acme, json!({ "scopes": ["users:read"] })).await;

    // The admin changes their own password.
    let own_password = "quiet harbour lanterns glow";
    let response = app
        .http
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(&admin)
        .json(&json!({ "current_password": USER_PASSWORD, "new_password": own_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // And sets the agent's.
    let agent_password = "copper meadow drifts slowly";
    let response = app
        .http
        .post(app.url(&format!("/api/v1/accounts/{acme}/users/{agent}/password")))
        .bearer_auth(&admin)
        .json(&json!({ "new_password": agent_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // A failed login with a recognisable wrong password.
    let wrong_password = "purple elephant whispers";
    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "email": "agent@acme.test", "password": wrong_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The new passwords work.
    app.login("admin@acme.test", own_password).await;
    app.login("agent@acme.test", agent_password).await;

    assert_eq!(audit_rows(&app, "api_key.created").await.len(), 1);
    assert_eq!(audit_rows(&app, "user.password_changed").await.len(), 2);

    let rows: Vec<String> = app
        .texts("SELECT a::text AS t FROM audit_log a")
        .await
        .into_iter()
        .map(|t| t.unwrap_or_default())
        .collect();
    assert!(rows.len() >= 6, "{rows:?}");
    let refresh = admin_login["refresh_token"].as_str().unwrap().to_owned();
    let forbidden = [
        ("the API key", key.as_str()),
        ("the key's secret", secret.as_str()),
        ("the instance token", instance.as_str()),
        ("the instance token's secret", &instance[4..]),
        ("the access token", admin.as_str()),
        ("a refresh token", refresh.as_str()),
        ("the old password", USER_PASSWORD),
        ("the new own password", own_password),
        ("the password an admin set", agent_password),
        ("a wrong password", wrong_password),
        ("a password hash", "$argon2"),
    ];
    for row in &rows {
        for (what, value) in forbidden {
            assert!(!row.contains(value), "{what} in audit row {row}");
        }
    }
    app.stop().await;
}
