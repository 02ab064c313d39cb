//! Tenancy (tenancy.md §2–§4 and §8; iam.md §2 for who may call what).
//!
//! Accounts (create with a plan, duplicates, listing with filters and cursor, admin edits of the
//! own account, `settings` visibility and validation, the platform account's protection,
//! suspension and its effects on tokens, logins, API keys and sockets, soft delete), users
//! (create, unique email per account, `max_agents` quotas including concurrent creates, role
//! rules, password policy, deactivation and reactivation, downgrades), teams (names, `max_teams`,
//! memberships, supervisors' rights, deletion) and entitlements (features, overrides, counts,
//! failing closed, who may read and write). Usage, the audit API and privacy have their own
//! modules.
//! Every refusal also checks that nothing changed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A test app whose sign-in rate limit does not get in the way of tests that log in many users.
async fn start() -> TestApp {
    TestApp::start_with(|c| c.rate_limit_login_per_min = 1000).await
}

/// A request with a credential: an API key (`wp_live_…`) goes in `X-API-Key`, anything else is
/// a bearer token.
fn authed(app: &TestApp, method: Method, cred: &str, path: &str) -> reqwest::RequestBuilder {
    let builder = app.http.request(method, app.url(path));
    if cred.starts_with("wp_live_") {
        builder.header("x-api-key", cred)
    } else {
        builder.bearer_auth(cred)
    }
}

async fn get(app: &TestApp, cred: &str, path: &str) -> reqwest::Response {
    authed(app, Method::GET, cred, path).send().await.unwrap()
}

async fn post(app: &TestApp, cred: &str, path: &str, body: Value) -> reqwest::Response {
    authed(app, Method::POST, cred, path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A POST without a body (actions such as deactivate).
async fn post_empty(app: &TestApp, cred: &str, path: &str) -> reqwest::Response {
    authed(app, Method::POST, cred, path).send().await.unwrap()
}

async fn patch(app: &TestApp, cred: &str, path: &str, body: Value) -> reqwest::Response {
    authed(app, Method::PATCH, cred, path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn delete(app: &TestApp, cred: &str, path: &str) -> reqwest::Response {
    authed(app, Method::DELETE, cred, path)
        .send()
        .await
        .unwrap()
}

/// Asserts the status (showing the body when it differs) and returns the JSON body (`Null`
/// when empty).
async fn expect(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "status (body: {text})");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON body")
    }
}

/// Asserts an error of conventions.md's shape with this status and code; returns the body.
async fn fail(response: reqwest::Response, status: u16, code: &str) -> Value {
    let got = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (request_id, content_type) = (header("x-request-id"), header("content-type"));
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "status (body: {text})");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    let body: Value = serde_json::from_str(&text).expect("JSON error body");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(request_id.is_some(), "X-Request-Id header");
    assert_eq!(body["request_id"].as_str(), request_id.as_deref(), "{body}");
    body
}

/// Asserts a 400 `VALIDATION_ERROR` naming `field` in `details.fields`.
async fn invalid(response: reqwest::Response, field: &str) -> Value {
    let body = fail(response, 400, "VALIDATION_ERROR").await;
    let fields = body["details"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no details.fields: {body}"));
    assert!(
        fields.iter().any(|f| f["field"] == field),
        "`{field}` not named: {body}"
    );
    body
}

/// Asserts a 403 `QUOTA_EXCEEDED` with exactly these details.
async fn quota_exceeded(
    response: reqwest::Response,
    limit: &str,
    max: i64,
    current: i64,
    plan: &str,
) {
    let body = fail(response, 403, "QUOTA_EXCEEDED").await;
    assert_eq!(
        body["details"],
        json!({ "limit": limit, "max": max, "current": current, "plan": plan }),
        "{body}"
    );
}

fn uuid_of(value: &Value) -> Uuid {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .parse()
        .expect("uuid")
}

fn account_path(account: Uuid) -> String {
    format!("/api/v1/accounts/{account}")
}

fn users_path(account: Uuid) -> String {
    format!("/api/v1/accounts/{account}/users")
}

fn user_path(account: Uuid, user: Uuid) -> String {
    format!("/api/v1/accounts/{account}/users/{user}")
}

fn teams_path(account: Uuid) -> String {
    format!("/api/v1/accounts/{account}/teams")
}

fn team_path(account: Uuid, team: Uuid) -> String {
    format!("/api/v1/accounts/{account}/teams/{team}")
}

fn members_path(account: Uuid, team: Uuid) -> String {
    format!("/api/v1/accounts/{account}/teams/{team}/members")
}

fn features_path(account: Uuid) -> String {
    format!("/api/v1/accounts/{account}/features")
}

fn entitlements_path(account: Uuid) -> String {
    format!("/api/v1/accounts/{account}/entitlements")
}

/// A `count(*)`-like query's value.
async fn count(app: &TestApp, sql: String) -> i64 {
    app.text(format!("SELECT ({sql})::text AS t"))
        .await
        .expect("count")
        .parse()
        .expect("integer")
}

async fn active_users(app: &TestApp, account: Uuid) -> i64 {
    count(
        app,
        format!("SELECT count(*) FROM users WHERE account_id = '{account}' AND status = 'active'"),
    )
    .await
}

async fn all_users(app: &TestApp, account: Uuid) -> i64 {
    count(
        app,
        format!("SELECT count(*) FROM users WHERE account_id = '{account}'"),
    )
    .await
}

async fn user_status(app: &TestApp, user: Uuid) -> String {
    app.text(format!("SELECT status AS t FROM users WHERE id = '{user}'"))
        .await
        .expect("status")
}

async fn account_status(app: &TestApp, account: Uuid) -> String {
    app.text(format!(
        "SELECT status AS t FROM accounts WHERE id = '{account}'"
    ))
    .await
    .expect("status")
}

/// Audit rows of an action on a resource, oldest first, as JSON objects.
async fn audit_rows(app: &TestApp, action: &str, resource_id: Uuid) -> Vec<Value> {
    app.texts(format!(
        "SELECT to_jsonb(a)::text AS t FROM audit_log a WHERE action = '{action}' \
             AND resource_id = '{resource_id}' ORDER BY created_at, id"
    ))
    .await
    .into_iter()
    .map(|t| serde_json::from_str(&t.expect("row")).expect("row JSON"))
    .collect()
}

/// Live (not revoked) sessions of an account.
async fn live_sessions(app: &TestApp, account: Uuid) -> i64 {
    count(
        app,
        format!(
            "SELECT count(*) FROM sessions WHERE account_id = '{account}' AND revoked_at IS NULL"
        ),
    )
    .await
}

/// The bootstrap super_admin: (token, platform account id).
async fn root(app: &TestApp) -> (String, Uuid) {
    let body = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (token_of(&body), uuid_of(&body["user"]["account_id"]))
}

/// An access token of a seeded user.
async fn token(app: &TestApp, email: &str) -> String {
    token_of(&app.login(email, USER_PASSWORD).await)
}

/// A password login attempt.
async fn login_attempt(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

/// `POST /api/v1/auth/refresh` with a refresh token in the body.
async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap()
}

/// A seeded account (plan free) with a seeded admin, logged in.
struct Tenant {
    id: Uuid,
    admin: Uuid,
    admin_token: String,
}

async fn tenant(app: &TestApp, name: &str, admin_email: &str) -> Tenant {
    let id = app.seed_account(name).await;
    let admin = app.seed_user(id, admin_email, "admin").await;
    let admin_token = token(app, admin_email).await;
    Tenant {
        id,
        admin,
        admin_token,
    }
}

/// Sets entitlements as the super_admin (200 expected); returns the answer.
async fn set_entitlements(app: &TestApp, root: &str, account: Uuid, body: Value) -> Value {
    expect(
        patch(app, root, &entitlements_path(account), body).await,
        200,
    )
    .await
}

/// `POST …/users` with `{email, name, role}` (no password).
async fn create_user(
    app: &TestApp,
    cred: &str,
    account: Uuid,
    email: &str,
    role: &str,
) -> reqwest::Response {
    post(
        app,
        cred,
        &users_path(account),
        json!({ "email": email, "name": "Created User", "role": role }),
    )
    .await
}

/// `POST …/users` with `{email, name, role: agent}`.
async fn create_user_named(
    app: &TestApp,
    cred: &str,
    account: Uuid,
    email: &str,
    name: &str,
) -> reqwest::Response {
    post(
        app,
        cred,
        &users_path(account),
        json!({ "email": email, "name": name, "role": "agent" }),
    )
    .await
}

/// Creates a user (201 expected); returns its id.
async fn new_user(app: &TestApp, cred: &str, account: Uuid, email: &str, role: &str) -> Uuid {
    let body = expect(create_user(app, cred, account, email, role).await, 201).await;
    uuid_of(&body["id"])
}

/// Creates a team (201 expected); returns its id.
async fn new_team(app: &TestApp, cred: &str, account: Uuid, name: &str) -> Uuid {
    let body = expect(
        post(app, cred, &teams_path(account), json!({ "name": name })).await,
        201,
    )
    .await;
    uuid_of(&body["id"])
}

/// Adds a member (201 expected).
async fn add_member(app: &TestApp, cred: &str, account: Uuid, team: Uuid, user: Uuid) -> Value {
    expect(
        post(
            app,
            cred,
            &members_path(account, team),
            json!({ "user_id": user }),
        )
        .await,
        201,
    )
    .await
}

/// Creates an API key with these scopes (201 expected); returns the key.
async fn new_key(app: &TestApp, cred: &str, account: Uuid, scopes: &[&str]) -> String {
    let body = expect(
        post(
            app,
            cred,
            &format!("/api/v1/accounts/{account}/api-keys"),
            json!({ "name": "test key", "scopes": scopes }),
        )
        .await,
        201,
    )
    .await;
    body["key"].as_str().expect("key").to_owned()
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

/// Asserts that an access token is refused (401 `INVALID_TOKEN`) within 5 s.
async fn token_dies_within_5s(app: &TestApp, token: &str) {
    let response = within_5s(authed(app, Method::GET, token, "/api/v1/me"), 401).await;
    fail(response, 401, "INVALID_TOKEN").await;
}

/// The ids of a list page's items.
fn ids(page: &Value) -> Vec<Uuid> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page}"))
        .iter()
        .map(|item| uuid_of(&item["id"]))
        .collect()
}

/// Walks `path` (which already has a `?`) with `limit=1`, returning the ids in order.
async fn walk_one_by_one(app: &TestApp, cred: &str, path: &str) -> Vec<Uuid> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&limit=1&cursor={c}"),
            None => format!("{path}&limit=1"),
        };
        let page = expect(get(app, cred, &url).await, 200).await;
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 1, "limit 1 gave {page}");
        seen.extend(page_ids.iter().copied());
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(page_ids.len(), 1, "a cursor after an empty page: {page}");
                cursor = Some(next.to_owned());
            }
            None => break,
        }
        assert!(seen.len() < 100, "the walk does not end");
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn super_admin_creates_an_account_with_its_plan() {
    let app = start().await;
    let (root, _) = root(&app).await;

    let body = expect(
        post(
            &app,
            &root,
            "/api/v1/accounts",
            json!({ "name": "Acme", "chatwoot_account_id": 101, "plan": "starter" }),
        )
        .await,
        201,
    )
    .await;
    let acme = uuid_of(&body["id"]);
    assert_eq!(body["name"], "Acme");
    assert_eq!(body["status"], "active");
    assert_eq!(body["chatwoot_account_id"], 101);
    assert_eq!(body["is_platform"], false);
    assert_eq!(body["locale"], "pt-BR");
    assert_eq!(body["settings"], json!({}));
    assert!(body["suspended_reason"].is_null(), "{body}");

    let entitlements = expect(get(&app, &root, &entitlements_path(acme)).await, 200).await;
    assert_eq!(entitlements["plan"], "starter", "{entitlements}");
    assert_eq!(entitlements["limits"]["max_agents"], 5, "{entitlements}");
    assert_eq!(entitlements["limits"]["max_teams"], 3, "{entitlements}");
    assert_eq!(entitlements["features"]["internal_chat"], true);
    assert_eq!(entitlements["access_mode"], "full");
    assert_eq!(
        app.text(format!(
            "SELECT plan AS t FROM account_entitlements WHERE account_id = '{acme}'"
        ))
        .await
        .as_deref(),
        Some("starter")
    );
    let created = audit_rows(&app, "account.created", acme).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["after"]["name"], "Acme");

    // Without a plan: free. With locale and settings: kept.
    let body = expect(
        post(
            &app,
            &root,
            "/api/v1/accounts",
            json!({ "name": "Beta", "locale": "en-US",
                    "settings": { "billing_email": "billing@beta.test" } }),
        )
        .await,
        201,
    )
    .await;
    let beta = uuid_of(&body["id"]);
    assert_eq!(body["locale"], "en-US");
    assert_eq!(
        body["settings"],
        json!({ "billing_email": "billing@beta.test" })
    );
    assert!(body["chatwoot_account_id"].is_null());
    let entitlements = expect(get(&app, &root, &entitlements_path(beta)).await, 200).await;
    assert_eq!(entitlements["plan"], "free");

    // A duplicate Chatwoot account id.
    fail(
        post(
            &app,
            &root,
            "/api/v1/accounts",
            json!({ "name": "Acme again", "chatwoot_account_id": 101 }),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;
    // A super_admin moving another account onto that Chatwoot id.
    fail(
        patch(
            &app,
            &root,
            &account_path(beta),
            json!({ "chatwoot_account_id": 101 }),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;
    // An unknown plan.
    invalid(
        post(
            &app,
            &root,
            "/api/v1/accounts",
            json!({ "name": "Gamma", "plan": "platinum" }),
        )
        .await,
        "plan",
    )
    .await;
    // A name out of bounds, an unknown field.
    invalid(
        post(&app, &root, "/api/v1/accounts", json!({ "name": "" })).await,
        "name",
    )
    .await;
    fail(
        post(
            &app,
            &root,
            "/api/v1/accounts",
            json!({ "name": "Delta", "colour": "red" }),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    // Nothing of the refused creates exists.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM accounts WHERE name IN ('Acme again', 'Gamma', '', 'Delta')"
                .into()
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM accounts WHERE chatwoot_account_id = 101".into()
        )
        .await,
        1
    );
    app.stop().await;
}

#[actix_rt::test]
async fn only_super_admins_create_list_and_delete_accounts() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let agent = token(&app, "agent@acme.test").await;
    let key = new_key(
        &app,
        &acme.admin_token,
        acme.id,
        &["users:read", "usage:read"],
    )
    .await;
    let before = count(&app, "SELECT count(*) FROM accounts".into()).await;

    for cred in [&acme.admin_token, &agent, &key] {
        fail(
            post(&app, cred, "/api/v1/accounts", json!({ "name": "Mine" })).await,
            403,
            "FORBIDDEN",
        )
        .await;
        fail(get(&app, cred, "/api/v1/accounts").await, 403, "FORBIDDEN").await;
        fail(
            delete(&app, cred, &account_path(acme.id)).await,
            403,
            "FORBIDDEN",
        )
        .await;
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM accounts".into()).await,
        before
    );
    assert_eq!(account_status(&app, acme.id).await, "active");
    app.stop().await;
}

#[actix_rt::test]
async fn account_list_filters_and_walks_with_a_cursor() {
    let app = start().await;
    let (root, platform) = root(&app).await;
    let create = |name: &'static str, chatwoot: Option<i64>| {
        let (app, root) = (&app, &root);
        async move {
            let body = expect(
                post(
                    app,
                    root,
                    "/api/v1/accounts",
                    json!({ "name": name, "chatwoot_account_id": chatwoot }),
                )
                .await,
                201,
            )
            .await;
            uuid_of(&body["id"])
        }
    };
    let alpha = create("Alpha Foods", Some(11)).await;
    let beta = create("Beta FOODS", Some(12)).await;
    let gamma = create("Gamma Tools", None).await;
    let delta = create("Delta Tools", None).await;
    expect(
        patch(
            &app,
            &root,
            &account_path(beta),
            json!({ "status": "suspended", "suspended_reason": "unpaid" }),
        )
        .await,
        200,
    )
    .await;
    expect(delete(&app, &root, &account_path(gamma)).await, 204).await;

    let listed = |query: &'static str| {
        let (app, root) = (&app, &root);
        async move {
            let page = expect(
                get(app, root, &format!("/api/v1/accounts{query}")).await,
                200,
            )
            .await;
            let mut found = ids(&page);
            found.sort();
            found
        }
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    // Deleted accounts are listed only when asked for.
    assert_eq!(listed("").await, sorted(vec![platform, alpha, beta, delta]));
    assert_eq!(listed("?status=deleted").await, vec![gamma]);
    assert_eq!(listed("?status=suspended").await, vec![beta]);
    assert_eq!(
        listed("?status=active").await,
        sorted(vec![platform, alpha, delta])
    );
    // `q`: name contains, case-insensitive; LIKE wildcards are literal.
    assert_eq!(listed("?q=foods").await, sorted(vec![alpha, beta]));
    assert_eq!(listed("?q=tools").await, vec![delta]);
    assert_eq!(listed("?q=tools&status=deleted").await, vec![gamma]);
    assert_eq!(listed("?q=%25").await, Vec::<Uuid>::new());
    assert_eq!(listed("?q=_").await, Vec::<Uuid>::new());
    assert_eq!(listed("?chatwoot_account_id=11").await, vec![alpha]);
    // Bad filters.
    invalid(
        get(&app, &root, "/api/v1/accounts?status=archived").await,
        "status",
    )
    .await;
    invalid(get(&app, &root, "/api/v1/accounts?limit=0").await, "limit").await;
    invalid(
        get(&app, &root, "/api/v1/accounts?cursor=!!!").await,
        "cursor",
    )
    .await;

    // limit=1 walks every listed account exactly once, in id order.
    let walked = walk_one_by_one(&app, &root, "/api/v1/accounts?").await;
    assert_eq!(walked.len(), 4, "{walked:?}");
    assert_eq!(
        walked.iter().collect::<HashSet<_>>().len(),
        4,
        "no account twice"
    );
    assert_eq!(
        sorted(walked.clone()),
        sorted(vec![platform, alpha, beta, delta])
    );
    assert!(walked.windows(2).all(|w| w[0] < w[1]), "id order");
    // And a filtered walk.
    let walked = walk_one_by_one(&app, &root, "/api/v1/accounts?q=foods").await;
    assert_eq!(sorted(walked), sorted(vec![alpha, beta]));
    app.stop().await;
}

#[actix_rt::test]
async fn admin_edits_own_account_but_not_its_status_nor_another_account() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let other = tenant(&app, "Other", "admin@other.test").await;
    app.seed_user(acme.id, "sup@acme.test", "supervisor").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let supervisor = token(&app, "sup@acme.test").await;
    let agent = token(&app, "agent@acme.test").await;

    let body = expect(
        patch(
            &app,
            &acme.admin_token,
            &account_path(acme.id),
            json!({ "name": "Acme Renamed", "locale": "en-US" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["name"], "Acme Renamed");
    assert_eq!(body["locale"], "en-US");
    let read = expect(
        get(&app, &acme.admin_token, &account_path(acme.id)).await,
        200,
    )
    .await;
    assert_eq!(read["name"], "Acme Renamed");
    let updated = audit_rows(&app, "account.updated", acme.id).await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["before"]["name"], "Acme");
    assert_eq!(updated[0]["after"]["name"], "Acme Renamed");

    // Platform-only fields.
    for body in [
        json!({ "status": "suspended" }),
        json!({ "status": "active" }),
        json!({ "suspended_reason": "because" }),
        json!({ "chatwoot_account_id": 5 }),
        json!({ "name": "Sneaky", "status": "suspended" }),
    ] {
        let refused = fail(
            patch(&app, &acme.admin_token, &account_path(acme.id), body).await,
            403,
            "FORBIDDEN",
        )
        .await;
        assert_eq!(refused["details"]["required_role"], "super_admin");
    }
    // Members below admin do not update the account.
    for cred in [&supervisor, &agent] {
        fail(
            patch(
                &app,
                cred,
                &account_path(acme.id),
                json!({ "name": "Mine" }),
            )
            .await,
            403,
            "FORBIDDEN",
        )
        .await;
    }
    // Bad values.
    invalid(
        patch(
            &app,
            &acme.admin_token,
            &account_path(acme.id),
            json!({ "name": "" }),
        )
        .await,
        "name",
    )
    .await;
    invalid(
        patch(
            &app,
            &acme.admin_token,
            &account_path(acme.id),
            json!({ "locale": "not a locale" }),
        )
        .await,
        "locale",
    )
    .await;
    let row = app.text(format!(
            "SELECT name || '|' || status || '|' || locale || '|' || coalesce(chatwoot_account_id::text, '') \
             || '|' || coalesce(suspended_reason, '') AS t FROM accounts WHERE id = '{}'",
            acme.id
        ),
    )
    .await;
    assert_eq!(row.as_deref(), Some("Acme Renamed|active|en-US||"));

    // Another account answers like a missing one.
    fail(
        get(&app, &acme.admin_token, &account_path(other.id)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    fail(
        patch(
            &app,
            &acme.admin_token,
            &account_path(other.id),
            json!({ "name": "Hijacked" }),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    fail(
        get(&app, &acme.admin_token, &account_path(Uuid::now_v7())).await,
        404,
        "NOT_FOUND",
    )
    .await;
    let other_name = app
        .text(format!(
            "SELECT name AS t FROM accounts WHERE id = '{}'",
            other.id
        ))
        .await;
    assert_eq!(other_name.as_deref(), Some("Other"));
    app.stop().await;
}

#[actix_rt::test]
async fn settings_are_shown_to_admins_only() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    app.seed_user(acme.id, "sup@acme.test", "supervisor").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let supervisor = token(&app, "sup@acme.test").await;
    let agent = token(&app, "agent@acme.test").await;
    let settings =
        json!({ "billing_email": "billing@acme.test", "support_email": "help@acme.test" });

    let body = expect(
        patch(
            &app,
            &acme.admin_token,
            &account_path(acme.id),
            json!({ "settings": settings }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["settings"], settings);

    for cred in [&acme.admin_token, &root] {
        let body = expect(get(&app, cred, &account_path(acme.id)).await, 200).await;
        assert_eq!(body["settings"], settings, "{body}");
    }
    for cred in [&supervisor, &agent] {
        let body = expect(get(&app, cred, &account_path(acme.id)).await, 200).await;
        assert_eq!(body["id"], acme.id.to_string());
        assert_eq!(body["name"], "Acme");
        assert!(
            body.as_object().unwrap().get("settings").is_none(),
            "no settings for members below admin: {body}"
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn keys_and_instance_tokens_read_their_account_without_settings() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let agent = token(&app, "agent@acme.test").await;
    expect(
        patch(
            &app,
            &acme.admin_token,
            &account_path(acme.id),
            json!({ "settings": { "billing_email": "billing@acme.test" } }),
        )
        .await,
        200,
    )
    .await;
    let key = new_key(&app, &acme.admin_token, acme.id, &["users:read"]).await;
    let issued = expect(
        post(
            &app,
            &agent,
            &format!("/api/v1/accounts/{}/instance-tokens", acme.id),
            json!({ "scopes": ["users:read"] }),
        )
        .await,
        201,
    )
    .await;
    let instance = issued["token"].as_str().expect("token").to_owned();

    // tenancy.md §2: GET /api/v1/accounts/{a} is for "any principal of the account".
    for cred in [&key, &instance] {
        let body = expect(get(&app, cred, &account_path(acme.id)).await, 200).await;
        assert_eq!(body["id"], acme.id.to_string());
        assert!(
            body.as_object().unwrap().get("settings").is_none(),
            "no settings for a key or an agent's token: {body}"
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn settings_reject_malformed_email_addresses() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    for bad in ["two@@acme.test", "a b@acme.test", "ana@.", "ana@acme.test."] {
        invalid(
            patch(
                &app,
                &acme.admin_token,
                &account_path(acme.id),
                json!({ "settings": { "billing_email": bad } }),
            )
            .await,
            "settings.billing_email",
        )
        .await;
    }
    let body = expect(
        get(&app, &acme.admin_token, &account_path(acme.id)).await,
        200,
    )
    .await;
    assert_eq!(body["settings"], json!({}));
    app.stop().await;
}

#[actix_rt::test]
async fn settings_accept_only_known_keys_with_email_values() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let path = account_path(acme.id);
    let good = json!({ "billing_email": "billing@acme.test" });
    expect(
        patch(&app, &acme.admin_token, &path, json!({ "settings": good })).await,
        200,
    )
    .await;

    invalid(
        patch(
            &app,
            &acme.admin_token,
            &path,
            json!({ "settings": { "x": "x@acme.test" } }),
        )
        .await,
        "settings.x",
    )
    .await;
    for bad in [
        json!("not-an-email"),
        json!("nobody@localhost"),
        json!(42),
        json!(""),
    ] {
        invalid(
            patch(
                &app,
                &acme.admin_token,
                &path,
                json!({ "settings": { "support_email": bad } }),
            )
            .await,
            "settings.support_email",
        )
        .await;
    }
    invalid(
        patch(&app, &acme.admin_token, &path, json!({ "settings": "x" })).await,
        "settings",
    )
    .await;
    // Nothing changed.
    let body = expect(get(&app, &acme.admin_token, &path).await, 200).await;
    assert_eq!(body["settings"], good);
    // Creating an account validates them too, and creates nothing when they are bad.
    invalid(
        post(
            &app,
            &root,
            "/api/v1/accounts",
            json!({ "name": "Bad Settings", "settings": { "x": "a@b.test" } }),
        )
        .await,
        "settings.x",
    )
    .await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM accounts WHERE name = 'Bad Settings'".into()
        )
        .await,
        0
    );
    app.stop().await;
}

#[actix_rt::test]
async fn the_platform_account_cannot_be_suspended_or_deleted() {
    let app = start().await;
    let (root, platform) = root(&app).await;

    fail(
        patch(
            &app,
            &root,
            &account_path(platform),
            json!({ "status": "suspended", "suspended_reason": "test" }),
        )
        .await,
        422,
        "UNPROCESSABLE",
    )
    .await;
    fail(
        delete(&app, &root, &account_path(platform)).await,
        422,
        "UNPROCESSABLE",
    )
    .await;
    assert_eq!(account_status(&app, platform).await, "active");
    // The super_admin is still in.
    assert_eq!(
        expect(get(&app, &root, "/api/v1/me").await, 200).await["account"]["id"],
        platform.to_string()
    );
    assert_eq!(
        login_attempt(&app, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .status(),
        200
    );
    app.stop().await;
}

#[actix_rt::test]
async fn suspension_locks_the_account_out_and_reactivation_lets_it_back_in() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let agent_login = app.login("agent@acme.test", USER_PASSWORD).await;
    let agent = token_of(&agent_login);
    let agent_refresh = agent_login["refresh_token"].as_str().unwrap().to_owned();
    let other = tenant(&app, "Other", "admin@other.test").await;
    // A key used just before the suspension (its verification is cached) and one never used.
    let used_key = new_key(&app, &acme.admin_token, acme.id, &["users:read"]).await;
    let unused_key = new_key(&app, &acme.admin_token, acme.id, &["users:read"]).await;
    expect(get(&app, &used_key, &users_path(acme.id)).await, 200).await;
    let mut ws = app.ws_ready(&agent).await;

    let body = expect(
        patch(
            &app,
            &root,
            &account_path(acme.id),
            json!({ "status": "suspended", "suspended_reason": "unpaid invoice" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["status"], "suspended");
    assert_eq!(body["suspended_reason"], "unpaid invoice");

    // Keys: refused at once, cached or not.
    fail(
        get(&app, &used_key, &users_path(acme.id)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    fail(
        get(&app, &unused_key, &users_path(acme.id)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    // The socket closes with 4003; access tokens die; logins are refused.
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 4003);
    token_dies_within_5s(&app, &agent).await;
    token_dies_within_5s(&app, &acme.admin_token).await;
    assert_eq!(live_sessions(&app, acme.id).await, 0);
    assert_eq!(refresh(&app, &agent_refresh).await.status(), 401);
    for email in ["admin@acme.test", "agent@acme.test"] {
        fail(
            login_attempt(&app, email, USER_PASSWORD).await,
            403,
            "FORBIDDEN",
        )
        .await;
    }
    // The key stays refused (not re-cached as good).
    fail(
        get(&app, &used_key, &users_path(acme.id)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    // Another account is untouched.
    expect(
        get(&app, &other.admin_token, &account_path(other.id)).await,
        200,
    )
    .await;
    // The super_admin still reads it.
    let read = expect(get(&app, &root, &account_path(acme.id)).await, 200).await;
    assert_eq!(read["status"], "suspended");

    // Re-activated: logins work again and so do the new tokens.
    let body = expect(
        patch(
            &app,
            &root,
            &account_path(acme.id),
            json!({ "status": "active" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["status"], "active");
    assert!(body["suspended_reason"].is_null(), "{body}");
    let admin = token(&app, "admin@acme.test").await;
    let agent = token(&app, "agent@acme.test").await;
    expect(get(&app, &admin, &users_path(acme.id)).await, 200).await;
    expect(get(&app, &agent, &account_path(acme.id)).await, 200).await;
    let mut ws = app.ws_ready(&agent).await;
    let _ = ws.close(None).await;
    // The sessions revoked by the suspension stay revoked.
    assert_eq!(refresh(&app, &agent_refresh).await.status(), 401);
    assert_eq!(audit_rows(&app, "account.updated", acme.id).await.len(), 2);
    app.stop().await;
}

#[actix_rt::test]
async fn deleting_an_account_is_a_soft_delete() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let agent = token(&app, "agent@acme.test").await;
    let key = new_key(&app, &acme.admin_token, acme.id, &["users:read"]).await;
    expect(get(&app, &key, &users_path(acme.id)).await, 200).await;
    let mut ws = app.ws_ready(&agent).await;

    fail(
        delete(&app, &acme.admin_token, &account_path(acme.id)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    expect(delete(&app, &root, &account_path(acme.id)).await, 204).await;

    let listed = expect(get(&app, &root, "/api/v1/accounts").await, 200).await;
    assert!(!ids(&listed).contains(&acme.id), "{listed}");
    let deleted = expect(
        get(&app, &root, "/api/v1/accounts?status=deleted").await,
        200,
    )
    .await;
    assert_eq!(ids(&deleted), vec![acme.id]);
    let read = expect(get(&app, &root, &account_path(acme.id)).await, 200).await;
    assert_eq!(read["status"], "deleted");
    assert_eq!(read["name"], "Acme");

    // Its people and keys are out; its rows are kept.
    fail(
        get(&app, &key, &users_path(acme.id)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 4003);
    token_dies_within_5s(&app, &acme.admin_token).await;
    token_dies_within_5s(&app, &agent).await;
    fail(
        login_attempt(&app, "admin@acme.test", USER_PASSWORD).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(all_users(&app, acme.id).await, 2);
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT count(*) FROM account_entitlements WHERE account_id = '{}'",
                acme.id
            )
        )
        .await,
        1
    );
    assert_eq!(audit_rows(&app, "account.deleted", acme.id).await.len(), 1);
    // Deleting it again: it is gone for that purpose.
    fail(
        delete(&app, &root, &account_path(acme.id)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    fail(
        delete(&app, &root, &account_path(Uuid::now_v7())).await,
        404,
        "NOT_FOUND",
    )
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn super_admin_restores_a_deleted_account() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    expect(delete(&app, &root, &account_path(acme.id)).await, 204).await;

    // tenancy.md §2: "`deleted` is a soft delete: ... a super_admin may restore it".
    let body = expect(
        patch(
            &app,
            &root,
            &account_path(acme.id),
            json!({ "status": "active" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["status"], "active");
    assert_eq!(account_status(&app, acme.id).await, "active");
    assert_eq!(
        login_attempt(&app, "admin@acme.test", USER_PASSWORD)
            .await
            .status(),
        200
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn admin_creates_users_with_and_without_a_password() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    set_entitlements(&app, &root, acme.id, json!({ "plan": "starter" })).await;
    let team = new_team(&app, &acme.admin_token, acme.id, "Sales").await;

    let body = expect(
        post(
            &app,
            &acme.admin_token,
            &users_path(acme.id),
            json!({ "email": "bea@acme.test", "name": "Bea", "role": "agent",
                    "password": "quiet harbor lantern", "team_ids": [team] }),
        )
        .await,
        201,
    )
    .await;
    let bea = uuid_of(&body["id"]);
    assert_eq!(body["email"], "bea@acme.test");
    assert_eq!(body["name"], "Bea");
    assert_eq!(body["role"], "agent");
    assert_eq!(body["role_source"], "manual");
    assert_eq!(body["status"], "active");
    assert_eq!(body["account_id"], acme.id.to_string());
    assert_eq!(body["has_password"], true);
    let keys = body.as_object().unwrap();
    assert!(
        !keys
            .keys()
            .any(|k| k.contains("password_hash") || k == "password"),
        "{body}"
    );

    let body = expect(
        post(
            &app,
            &acme.admin_token,
            &users_path(acme.id),
            json!({ "email": "caio@acme.test", "name": "Caio", "role": "supervisor" }),
        )
        .await,
        201,
    )
    .await;
    let caio = uuid_of(&body["id"]);
    assert_eq!(body["has_password"], false);
    assert_eq!(body["role"], "supervisor");
    // An admin may create an admin (up to their own role).
    let body = expect(
        create_user(&app, &acme.admin_token, acme.id, "dani@acme.test", "admin").await,
        201,
    )
    .await;
    assert_eq!(body["role"], "admin");

    // The created user signs in with the given password; the other has none.
    let login = app.login("bea@acme.test", "quiet harbor lantern").await;
    assert_eq!(login["user"]["id"], bea.to_string());
    assert_eq!(
        login_attempt(&app, "caio@acme.test", "quiet harbor lantern")
            .await
            .status(),
        401
    );
    // Reads agree; team_ids joined the team.
    let read = expect(
        get(&app, &acme.admin_token, &user_path(acme.id, caio)).await,
        200,
    )
    .await;
    assert_eq!(read["has_password"], false);
    let members = expect(
        get(&app, &acme.admin_token, &members_path(acme.id, team)).await,
        200,
    )
    .await;
    assert_eq!(ids(&members), vec![bea]);
    assert_eq!(audit_rows(&app, "user.created", bea).await.len(), 1);
    assert_eq!(audit_rows(&app, "user.created", caio).await.len(), 1);
    // A team of another account: 404, and the user is not created either.
    let other = tenant(&app, "Other", "admin@other.test").await;
    let foreign_team = new_team(&app, &other.admin_token, other.id, "Theirs").await;
    fail(
        post(
            &app,
            &acme.admin_token,
            &users_path(acme.id),
            json!({ "email": "eva@acme.test", "name": "Eva", "role": "agent",
                    "team_ids": [foreign_team] }),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(all_users(&app, acme.id).await, 4);
    app.stop().await;
}

#[actix_rt::test]
async fn emails_are_unique_per_account_in_any_case_and_status() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let other = tenant(&app, "Other", "admin@other.test").await;
    set_entitlements(&app, &root, acme.id, json!({ "plan": "starter" })).await;

    let dora = new_user(&app, &acme.admin_token, acme.id, "Dora@Acme.test", "agent").await;
    fail(
        create_user(&app, &acme.admin_token, acme.id, "dora@acme.TEST", "agent").await,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT count(*) FROM users WHERE account_id = '{}' AND lower(email::text) = 'dora@acme.test'",
                acme.id
            )
        )
        .await,
        1
    );
    // The same email in another account is another person's row.
    let body = expect(
        create_user(
            &app,
            &other.admin_token,
            other.id,
            "dora@acme.test",
            "agent",
        )
        .await,
        201,
    )
    .await;
    assert_eq!(body["account_id"], other.id.to_string());

    // A deactivated user's email stays reserved.
    expect(
        post_empty(
            &app,
            &acme.admin_token,
            &format!("{}/deactivate", user_path(acme.id, dora)),
        )
        .await,
        200,
    )
    .await;
    fail(
        create_user(&app, &acme.admin_token, acme.id, "DORA@acme.test", "agent").await,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(all_users(&app, acme.id).await, 2);
    app.stop().await;
}

#[actix_rt::test]
async fn creating_beyond_max_agents_is_quota_exceeded() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;

    // Free plan: 2 active users; the admin is one.
    let first = new_user(&app, &acme.admin_token, acme.id, "one@acme.test", "agent").await;
    quota_exceeded(
        create_user(&app, &acme.admin_token, acme.id, "two@acme.test", "agent").await,
        "max_agents",
        2,
        2,
        "free",
    )
    .await;
    assert_eq!(all_users(&app, acme.id).await, 2);
    // Inactive users do not count.
    expect(
        post_empty(
            &app,
            &acme.admin_token,
            &format!("{}/deactivate", user_path(acme.id, first)),
        )
        .await,
        200,
    )
    .await;
    new_user(&app, &acme.admin_token, acme.id, "two@acme.test", "agent").await;
    assert_eq!(active_users(&app, acme.id).await, 2);
    assert_eq!(all_users(&app, acme.id).await, 3);
    app.stop().await;
}

#[actix_rt::test]
async fn twenty_concurrent_creates_never_overshoot_max_agents() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    set_entitlements(
        &app,
        &root,
        acme.id,
        json!({ "overrides": { "max_agents": 5 } }),
    )
    .await;
    // One active admin: room for exactly four more.
    assert_eq!(active_users(&app, acme.id).await, 1);

    let path = users_path(acme.id);
    let results = join_all((0..20).map(|i| {
        let request = authed(&app, Method::POST, &acme.admin_token, &path).json(&json!({
            "email": format!("burst{i}@acme.test"), "name": format!("Burst {i}"), "role": "agent"
        }));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    }))
    .await;

    let created = results.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 4, "{results:?}");
    for (status, text) in results.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 403, "{text}");
        let body: Value = serde_json::from_str(text).unwrap();
        assert_eq!(body["code"], "QUOTA_EXCEEDED", "{body}");
        assert_eq!(
            body["details"],
            json!({ "limit": "max_agents", "max": 5, "current": 5, "plan": "free" })
        );
    }
    assert_eq!(active_users(&app, acme.id).await, 5);
    assert_eq!(all_users(&app, acme.id).await, 5);
    let listed = expect(get(&app, &acme.admin_token, &path).await, 200).await;
    let active = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["status"] == "active")
        .count();
    assert_eq!(active, 5, "{listed}");
    app.stop().await;
}

#[actix_rt::test]
async fn ten_parallel_creates_at_limit_minus_one_admit_exactly_one() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    // Free plan: max_agents 2, the admin is the one active user.
    let path = users_path(acme.id);
    let results = join_all((0..10).map(|i| {
        let request = authed(&app, Method::POST, &acme.admin_token, &path).json(&json!({
            "email": format!("race{i}@acme.test"), "name": "Racer", "role": "agent"
        }));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    }))
    .await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        9,
        "{results:?}"
    );
    for (_, text) in results.iter().filter(|(s, _)| *s == 403) {
        assert!(text.contains("QUOTA_EXCEEDED"), "{text}");
    }
    assert_eq!(active_users(&app, acme.id).await, 2);
    assert_eq!(all_users(&app, acme.id).await, 2);
    app.stop().await;
}

#[actix_rt::test]
async fn only_admins_create_users_and_never_above_their_role() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    set_entitlements(&app, &root, acme.id, json!({ "plan": "starter" })).await;
    app.seed_user(acme.id, "sup@acme.test", "supervisor").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let supervisor = token(&app, "sup@acme.test").await;
    let agent = token(&app, "agent@acme.test").await;
    let key = new_key(&app, &acme.admin_token, acme.id, &["users:read"]).await;

    for cred in [&agent, &supervisor, &key] {
        fail(
            create_user(&app, cred, acme.id, "new@acme.test", "agent").await,
            403,
            "FORBIDDEN",
        )
        .await;
    }
    let body = fail(
        create_user(
            &app,
            &acme.admin_token,
            acme.id,
            "boss@acme.test",
            "super_admin",
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(body["details"]["required_role"], "super_admin", "{body}");
    invalid(
        create_user(&app, &acme.admin_token, acme.id, "x@acme.test", "owner").await,
        "role",
    )
    .await;
    assert_eq!(all_users(&app, acme.id).await, 3);
    app.stop().await;
}

#[actix_rt::test]
async fn create_enforces_the_password_policy_and_field_bounds() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let path = users_path(acme.id);

    let create = |body: Value| {
        let (app, token, path) = (&app, &acme.admin_token, &path);
        async move { post(app, token, path, body).await }
    };
    invalid(
        create(
            json!({ "email": "p@acme.test", "name": "P", "role": "agent",
                       "password": "elevenchars" }),
        )
        .await,
        "password",
    )
    .await;
    invalid(
        create(
            json!({ "email": "marcelo@acme.test", "name": "M", "role": "agent",
                       "password": "xx marcelo hums softly" }),
        )
        .await,
        "password",
    )
    .await;
    invalid(
        create(json!({ "email": "not-an-email", "name": "P", "role": "agent" })).await,
        "email",
    )
    .await;
    invalid(
        create(json!({ "email": "p@acme.test", "name": "", "role": "agent" })).await,
        "name",
    )
    .await;
    invalid(
        create(json!({ "email": "p@acme.test", "name": "x".repeat(101), "role": "agent" })).await,
        "name",
    )
    .await;
    fail(
        create(json!({ "email": "p@acme.test", "name": "P", "role": "agent", "colour": "red" }))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(all_users(&app, acme.id).await, 1);
    // Twelve characters pass.
    let body = expect(
        create(
            json!({ "email": "p@acme.test", "name": "P", "role": "agent",
                       "password": "twelve chars" }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(body["has_password"], true);
    app.stop().await;
}

#[actix_rt::test]
async fn deactivation_revokes_access_and_keeps_memberships_and_audit() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let agent_id = app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let team = new_team(&app, &acme.admin_token, acme.id, "Sales").await;
    add_member(&app, &acme.admin_token, acme.id, team, agent_id).await;
    let agent = token(&app, "agent@acme.test").await;
    let agent_other_session = token(&app, "agent@acme.test").await;
    let mut ws = app.ws_ready(&agent).await;

    let body = expect(
        post_empty(
            &app,
            &acme.admin_token,
            &format!("{}/deactivate", user_path(acme.id, agent_id)),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["id"], agent_id.to_string());
    assert_eq!(body["status"], "inactive");

    token_dies_within_5s(&app, &agent).await;
    token_dies_within_5s(&app, &agent_other_session).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 4003);
    fail(
        login_attempt(&app, "agent@acme.test", USER_PASSWORD).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT count(*) FROM sessions WHERE user_id = '{agent_id}' AND revoked_at IS NULL"
            )
        )
        .await,
        0
    );
    // The user, the membership and the audit trail stay.
    let read = expect(
        get(&app, &acme.admin_token, &user_path(acme.id, agent_id)).await,
        200,
    )
    .await;
    assert_eq!(read["status"], "inactive");
    let members = expect(
        get(&app, &acme.admin_token, &members_path(acme.id, team)).await,
        200,
    )
    .await;
    assert_eq!(ids(&members), vec![agent_id]);
    let rows = audit_rows(&app, "user.deactivated", agent_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["account_id"], acme.id.to_string());
    assert_eq!(rows[0]["actor_id"], acme.admin.to_string());
    assert_eq!(rows[0]["before"]["status"], "active");
    assert_eq!(rows[0]["after"]["status"], "inactive");
    assert_eq!(rows[0]["result"], "success");
    // The admin is unaffected.
    expect(
        get(&app, &acme.admin_token, &users_path(acme.id)).await,
        200,
    )
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn nobody_deactivates_themselves_or_the_last_admin() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let agent_id = app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let agent = token(&app, "agent@acme.test").await;
    let deactivate = |account: Uuid, user: Uuid| format!("{}/deactivate", user_path(account, user));

    fail(
        post_empty(&app, &acme.admin_token, &deactivate(acme.id, acme.admin)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    // Agents deactivate nobody.
    fail(
        post_empty(&app, &agent, &deactivate(acme.id, acme.admin)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    // The account's last active admin, even for a super_admin.
    fail(
        post_empty(&app, &root, &deactivate(acme.id, acme.admin)).await,
        422,
        "UNPROCESSABLE",
    )
    .await;
    assert_eq!(user_status(&app, acme.admin).await, "active");
    assert_eq!(user_status(&app, agent_id).await, "active");

    // With a second admin, one goes; then the remaining one is the last again.
    let second = app.seed_user(acme.id, "admin2@acme.test", "admin").await;
    expect(
        post_empty(&app, &acme.admin_token, &deactivate(acme.id, second)).await,
        200,
    )
    .await;
    fail(
        post_empty(&app, &root, &deactivate(acme.id, acme.admin)).await,
        422,
        "UNPROCESSABLE",
    )
    .await;
    assert_eq!(user_status(&app, acme.admin).await, "active");
    // Unknown or foreign users.
    fail(
        post_empty(
            &app,
            &acme.admin_token,
            &deactivate(acme.id, Uuid::now_v7()),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn reactivation_passes_the_quota() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let first = app.seed_user(acme.id, "first@acme.test", "agent").await;
    let action = |user: Uuid, verb: &str| format!("{}/{verb}", user_path(acme.id, user));

    expect(
        post_empty(&app, &acme.admin_token, &action(first, "deactivate")).await,
        200,
    )
    .await;
    let second = new_user(
        &app,
        &acme.admin_token,
        acme.id,
        "second@acme.test",
        "agent",
    )
    .await;
    // Free plan: admin + second = 2 active.
    quota_exceeded(
        post_empty(&app, &acme.admin_token, &action(first, "reactivate")).await,
        "max_agents",
        2,
        2,
        "free",
    )
    .await;
    assert_eq!(user_status(&app, first).await, "inactive");
    fail(
        login_attempt(&app, "first@acme.test", USER_PASSWORD).await,
        403,
        "FORBIDDEN",
    )
    .await;

    expect(
        post_empty(&app, &acme.admin_token, &action(second, "deactivate")).await,
        200,
    )
    .await;
    let body = expect(
        post_empty(&app, &acme.admin_token, &action(first, "reactivate")).await,
        200,
    )
    .await;
    assert_eq!(body["status"], "active");
    assert_eq!(user_status(&app, first).await, "active");
    assert_eq!(audit_rows(&app, "user.reactivated", first).await.len(), 1);
    assert_eq!(
        login_attempt(&app, "first@acme.test", USER_PASSWORD)
            .await
            .status(),
        200
    );
    app.stop().await;
}

#[actix_rt::test]
async fn a_downgrade_keeps_users_and_teams_but_refuses_creates() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    set_entitlements(&app, &root, acme.id, json!({ "plan": "starter" })).await;
    let mut agents = Vec::new();
    for i in 0..3 {
        agents.push(
            new_user(
                &app,
                &acme.admin_token,
                acme.id,
                &format!("a{i}@acme.test"),
                "agent",
            )
            .await,
        );
    }
    let sales = new_team(&app, &acme.admin_token, acme.id, "Sales").await;
    let support = new_team(&app, &acme.admin_token, acme.id, "Support").await;
    assert_eq!(active_users(&app, acme.id).await, 4);

    let body = set_entitlements(&app, &root, acme.id, json!({ "plan": "free" })).await;
    assert_eq!(body["plan"], "free");
    assert_eq!(body["limits"]["max_agents"], 2);
    assert_eq!(body["counts"]["max_agents"], 4, "{body}");
    assert_eq!(body["counts"]["max_teams"], 2, "{body}");

    // Everything stays readable and editable.
    let listed = expect(
        get(&app, &acme.admin_token, &users_path(acme.id)).await,
        200,
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 4);
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["status"] == "active"));
    for (i, agent) in agents.iter().enumerate() {
        expect(
            get(&app, &acme.admin_token, &user_path(acme.id, *agent)).await,
            200,
        )
        .await;
        let body = expect(
            patch(
                &app,
                &acme.admin_token,
                &user_path(acme.id, *agent),
                json!({ "name": format!("Renamed {i}") }),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(body["name"], format!("Renamed {i}"));
        assert_eq!(body["status"], "active");
    }
    assert_eq!(active_users(&app, acme.id).await, 4);
    let body = expect(
        patch(
            &app,
            &acme.admin_token,
            &team_path(acme.id, support),
            json!({ "name": "Support N2" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["name"], "Support N2");
    add_member(&app, &acme.admin_token, acme.id, sales, agents[0]).await;

    // Creates are refused until the count drops below the limit.
    quota_exceeded(
        create_user(&app, &acme.admin_token, acme.id, "new@acme.test", "agent").await,
        "max_agents",
        2,
        4,
        "free",
    )
    .await;
    quota_exceeded(
        post(
            &app,
            &acme.admin_token,
            &teams_path(acme.id),
            json!({ "name": "Ops" }),
        )
        .await,
        "max_teams",
        1,
        2,
        "free",
    )
    .await;
    expect(
        delete(&app, &acme.admin_token, &team_path(acme.id, support)).await,
        204,
    )
    .await;
    quota_exceeded(
        post(
            &app,
            &acme.admin_token,
            &teams_path(acme.id),
            json!({ "name": "Ops" }),
        )
        .await,
        "max_teams",
        1,
        1,
        "free",
    )
    .await;
    expect(
        delete(&app, &acme.admin_token, &team_path(acme.id, sales)).await,
        204,
    )
    .await;
    new_team(&app, &acme.admin_token, acme.id, "Ops").await;
    assert_eq!(all_users(&app, acme.id).await, 4);
    app.stop().await;
}

#[actix_rt::test]
async fn chatwoot_owned_names_cannot_be_edited_in_the_hub() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let linked = app.seed_user(acme.id, "linked@acme.test", "agent").await;
    app.sql(&format!(
        "UPDATE users SET chatwoot_user_id = 77, name = 'From Chatwoot' WHERE id = '{linked}'"
    ))
    .await;

    fail(
        patch(
            &app,
            &acme.admin_token,
            &user_path(acme.id, linked),
            json!({ "name": "Hub Name" }),
        )
        .await,
        422,
        "UNPROCESSABLE",
    )
    .await;
    let name = app
        .text(format!("SELECT name AS t FROM users WHERE id = '{linked}'"))
        .await;
    assert_eq!(name.as_deref(), Some("From Chatwoot"));
    // So is the email; the avatar stays editable.
    fail(
        patch(
            &app,
            &acme.admin_token,
            &user_path(acme.id, linked),
            json!({ "email": "hub@acme.test" }),
        )
        .await,
        422,
        "UNPROCESSABLE",
    )
    .await;
    let body = expect(
        patch(
            &app,
            &acme.admin_token,
            &user_path(acme.id, linked),
            json!({ "name": "From Chatwoot", "avatar_url": "https://cdn.acme.test/l.png" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["email"], "linked@acme.test");
    assert_eq!(body["avatar_url"], "https://cdn.acme.test/l.png");
    // The role stays the hub's to set.
    let body = expect(
        patch(
            &app,
            &acme.admin_token,
            &user_path(acme.id, linked),
            json!({ "role": "supervisor" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["role"], "supervisor");
    assert_eq!(body["role_source"], "manual");
    app.stop().await;
}

#[actix_rt::test]
async fn user_list_filters_and_shows_teams() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    set_entitlements(&app, &root, acme.id, json!({ "plan": "starter" })).await;
    let sales = new_team(&app, &acme.admin_token, acme.id, "Sales").await;
    let ana = new_user(&app, &acme.admin_token, acme.id, "ana@acme.test", "agent").await;
    let bia = new_user(
        &app,
        &acme.admin_token,
        acme.id,
        "bia@acme.test",
        "supervisor",
    )
    .await;
    add_member(&app, &acme.admin_token, acme.id, sales, ana).await;
    expect(
        post_empty(
            &app,
            &acme.admin_token,
            &format!("{}/deactivate", user_path(acme.id, bia)),
        )
        .await,
        200,
    )
    .await;
    let list = |query: String| {
        let (app, token) = (&app, &acme.admin_token);
        async move {
            expect(
                get(app, token, &format!("{}{query}", users_path(acme.id))).await,
                200,
            )
            .await
        }
    };
    assert_eq!(ids(&list("?status=inactive".into()).await), vec![bia]);
    assert_eq!(ids(&list("?role=agent".into()).await), vec![ana]);
    assert_eq!(ids(&list(format!("?team_id={sales}")).await), vec![ana]);
    assert_eq!(ids(&list("?q=bia".into()).await), vec![bia]);
    let all = list(String::new()).await;
    let ana_item = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == ana.to_string())
        .unwrap()
        .clone();
    assert_eq!(ana_item["teams"], json!([{ "id": sales, "name": "Sales" }]));
    assert_eq!(ana_item["has_password"], false);
    app.stop().await;
}

#[actix_rt::test]
async fn user_list_filters_walk_with_the_cursor_and_reject_bad_values() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let mut agents = Vec::new();
    for email in ["a1@acme.test", "a2@acme.test", "a3@acme.test"] {
        agents.push(app.seed_user(acme.id, email, "agent").await);
    }
    let path = format!("{}?role=agent", users_path(acme.id));
    assert_eq!(
        walk_one_by_one(&app, &acme.admin_token, &path).await,
        agents
    );
    // `q` is case-insensitive on the email and takes `%` and `_` literally.
    let page = expect(
        get(
            &app,
            &acme.admin_token,
            &format!("{}?q=A2@ACME", users_path(acme.id)),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids(&page), vec![agents[1]]);
    for q in ["%25", "_"] {
        let page = expect(
            get(
                &app,
                &acme.admin_token,
                &format!("{}?q={q}", users_path(acme.id)),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(ids(&page), Vec::<Uuid>::new(), "q={q}");
    }
    for (query, field) in [
        ("status=gone", "status"),
        ("role=owner", "role"),
        ("q=", "q"),
    ] {
        invalid(
            get(
                &app,
                &acme.admin_token,
                &format!("{}?{query}", users_path(acme.id)),
            )
            .await,
            field,
        )
        .await;
    }
    fail(
        get(
            &app,
            &acme.admin_token,
            &format!("{}?colour=red", users_path(acme.id)),
        )
        .await,
        400,
        "BAD_REQUEST",
    )
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn admin_edits_a_users_email_and_avatar() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let ana = app.seed_user(acme.id, "ana@acme.test", "agent").await;
    app.seed_user(acme.id, "bia@acme.test", "agent").await;
    let body = expect(
        patch(
            &app,
            &acme.admin_token,
            &user_path(acme.id, ana),
            json!({ "email": "ana.souza@acme.test", "avatar_url": "https://cdn.acme.test/ana.png" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["email"], "ana.souza@acme.test");
    assert_eq!(body["avatar_url"], "https://cdn.acme.test/ana.png");
    // Another user's email → 409; a non-https avatar → 400.
    fail(
        patch(
            &app,
            &acme.admin_token,
            &user_path(acme.id, ana),
            json!({ "email": "BIA@acme.test" }),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;
    invalid(
        patch(
            &app,
            &acme.admin_token,
            &user_path(acme.id, ana),
            json!({ "avatar_url": "http://cdn.acme.test/ana.png" }),
        )
        .await,
        "avatar_url",
    )
    .await;
    // A blank name is a 400, not the column's CHECK.
    invalid(
        patch(
            &app,
            &acme.admin_token,
            &user_path(acme.id, ana),
            json!({ "name": "   " }),
        )
        .await,
        "name",
    )
    .await;
    invalid(
        create_user_named(&app, &acme.admin_token, acme.id, "blank@acme.test", "  ").await,
        "name",
    )
    .await;
    // The refusals changed nothing; the edit was audited like a rename.
    let row = app
        .text(format!(
            "SELECT email || ' ' || avatar_url || ' ' || name AS t FROM users WHERE id = '{ana}'"
        ))
        .await;
    assert_eq!(
        row.as_deref(),
        Some("ana.souza@acme.test https://cdn.acme.test/ana.png Seeded User")
    );
    let rows = audit_rows(&app, "user.updated", ana).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["actor_id"], json!(acme.admin));
    assert_eq!(rows[0]["before"]["email"], "ana@acme.test");
    assert_eq!(rows[0]["after"]["email"], "ana.souza@acme.test");
    assert_eq!(rows[0]["before"]["avatar_url"], Value::Null);
    assert_eq!(
        rows[0]["after"]["avatar_url"],
        "https://cdn.acme.test/ana.png"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn teams_are_created_by_admins_with_unique_names() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    set_entitlements(&app, &root, acme.id, json!({ "plan": "starter" })).await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    app.seed_user(acme.id, "sup@acme.test", "supervisor").await;
    let agent = token(&app, "agent@acme.test").await;
    let supervisor = token(&app, "sup@acme.test").await;
    let path = teams_path(acme.id);

    let body = expect(
        post(
            &app,
            &acme.admin_token,
            &path,
            json!({ "name": "Sales", "description": "Closers" }),
        )
        .await,
        201,
    )
    .await;
    let sales = uuid_of(&body["id"]);
    assert_eq!(body["name"], "Sales");
    assert_eq!(body["description"], "Closers");
    assert!(body["chatwoot_team_id"].is_null());
    assert_eq!(audit_rows(&app, "team.created", sales).await.len(), 1);

    for name in ["sales", "SALES", "  Sales  "] {
        fail(
            post(&app, &acme.admin_token, &path, json!({ "name": name })).await,
            409,
            "CONFLICT",
        )
        .await;
    }
    for cred in [&agent, &supervisor] {
        fail(
            post(&app, cred, &path, json!({ "name": "Mine" })).await,
            403,
            "FORBIDDEN",
        )
        .await;
    }
    invalid(
        post(&app, &acme.admin_token, &path, json!({ "name": "" })).await,
        "name",
    )
    .await;
    invalid(
        post(
            &app,
            &acme.admin_token,
            &path,
            json!({ "name": "Long", "description": "d".repeat(501) }),
        )
        .await,
        "description",
    )
    .await;
    // Renaming onto another team's name (other case) is a conflict too.
    let support = new_team(&app, &acme.admin_token, acme.id, "Support").await;
    fail(
        patch(
            &app,
            &acme.admin_token,
            &team_path(acme.id, support),
            json!({ "name": "SALES" }),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;
    for cred in [&agent, &supervisor] {
        fail(
            patch(
                &app,
                cred,
                &team_path(acme.id, support),
                json!({ "name": "Renamed" }),
            )
            .await,
            403,
            "FORBIDDEN",
        )
        .await;
    }
    // Members read the teams.
    let listed = expect(get(&app, &agent, &path).await, 200).await;
    assert_eq!(ids(&listed), vec![sales, support]);
    let read = expect(get(&app, &agent, &team_path(acme.id, support)).await, 200).await;
    assert_eq!(read["name"], "Support");
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT count(*) FROM teams WHERE account_id = '{}'",
                acme.id
            )
        )
        .await,
        2
    );
    app.stop().await;
}

#[actix_rt::test]
async fn the_free_plan_allows_one_team() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    new_team(&app, &acme.admin_token, acme.id, "Sales").await;
    quota_exceeded(
        post(
            &app,
            &acme.admin_token,
            &teams_path(acme.id),
            json!({ "name": "Support" }),
        )
        .await,
        "max_teams",
        1,
        1,
        "free",
    )
    .await;
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT count(*) FROM teams WHERE account_id = '{}'",
                acme.id
            )
        )
        .await,
        1
    );
    app.stop().await;
}

#[actix_rt::test]
async fn memberships_are_unique_active_and_of_the_same_account() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let other = tenant(&app, "Other", "admin@other.test").await;
    let agent_id = app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let inactive = app.seed_user(acme.id, "gone@acme.test", "agent").await;
    app.sql(&format!(
        "UPDATE users SET status = 'inactive' WHERE id = '{inactive}'"
    ))
    .await;
    let foreigner = app.seed_user(other.id, "agent@other.test", "agent").await;
    let other_team = new_team(&app, &other.admin_token, other.id, "Theirs").await;
    let agent = token(&app, "agent@acme.test").await;
    let team = new_team(&app, &acme.admin_token, acme.id, "Sales").await;
    let path = members_path(acme.id, team);
    let member_rows = |team: Uuid| {
        count(
            &app,
            format!("SELECT count(*) FROM team_members WHERE team_id = '{team}'"),
        )
    };

    let body = add_member(&app, &acme.admin_token, acme.id, team, agent_id).await;
    let keys: HashSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["team_id", "user_id", "created_at"]),
        "{body}"
    );
    assert_eq!(body["team_id"], team.to_string());
    assert_eq!(body["user_id"], agent_id.to_string());
    assert!(
        body["created_at"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z')),
        "{body}"
    );
    assert_eq!(audit_rows(&app, "team.member_added", team).await.len(), 1);

    fail(
        post(
            &app,
            &acme.admin_token,
            &path,
            json!({ "user_id": agent_id }),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;
    fail(
        post(
            &app,
            &acme.admin_token,
            &path,
            json!({ "user_id": inactive }),
        )
        .await,
        422,
        "UNPROCESSABLE",
    )
    .await;
    fail(
        post(
            &app,
            &acme.admin_token,
            &path,
            json!({ "user_id": foreigner }),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    fail(
        post(
            &app,
            &acme.admin_token,
            &path,
            json!({ "user_id": Uuid::now_v7() }),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    // A team of another account is missing too.
    fail(
        post(
            &app,
            &acme.admin_token,
            &members_path(acme.id, other_team),
            json!({ "user_id": agent_id }),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    // Agents add nobody, not even themselves.
    fail(
        post(&app, &agent, &path, json!({ "user_id": agent_id })).await,
        403,
        "FORBIDDEN",
    )
    .await;
    fail(
        post(&app, &agent, &path, json!({ "user_id": acme.admin })).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(member_rows(team).await, 1);
    assert_eq!(member_rows(other_team).await, 0);

    // The members list shows the users (to any member).
    let members = expect(get(&app, &agent, &path).await, 200).await;
    assert_eq!(ids(&members), vec![agent_id]);
    assert_eq!(members["items"][0]["email"], "agent@acme.test");
    assert_eq!(members["items"][0]["role"], "agent");
    assert!(members["next_cursor"].is_null());
    add_member(&app, &acme.admin_token, acme.id, team, acme.admin).await;
    let members = expect(get(&app, &agent, &path).await, 200).await;
    let mut expected = vec![acme.admin, agent_id];
    expected.sort();
    let mut listed = ids(&members);
    listed.sort();
    assert_eq!(listed, expected);
    app.stop().await;
}

#[actix_rt::test]
async fn supervisors_manage_agents_in_their_own_teams_only() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    set_entitlements(&app, &root, acme.id, json!({ "plan": "starter" })).await;
    let sup_id = app.seed_user(acme.id, "sup@acme.test", "supervisor").await;
    let other_sup = app.seed_user(acme.id, "sup2@acme.test", "supervisor").await;
    let agent1 = app.seed_user(acme.id, "agent1@acme.test", "agent").await;
    let agent2 = app.seed_user(acme.id, "agent2@acme.test", "agent").await;
    let admin2 = app.seed_user(acme.id, "admin2@acme.test", "admin").await;
    let mine = new_team(&app, &acme.admin_token, acme.id, "Mine").await;
    let theirs = new_team(&app, &acme.admin_token, acme.id, "Theirs").await;
    add_member(&app, &acme.admin_token, acme.id, mine, sup_id).await;
    add_member(&app, &acme.admin_token, acme.id, theirs, agent2).await;
    let supervisor = token(&app, "sup@acme.test").await;
    let add = |team: Uuid, user: Uuid| {
        let (app, supervisor) = (&app, &supervisor);
        async move {
            post(
                app,
                supervisor,
                &members_path(acme.id, team),
                json!({ "user_id": user }),
            )
            .await
        }
    };

    // An agent into the supervisor's own team.
    let body = expect(add(mine, agent1).await, 201).await;
    assert_eq!(body["user_id"], agent1.to_string());
    // Not into another team, and not an admin or another supervisor.
    fail(add(theirs, agent1).await, 403, "FORBIDDEN").await;
    fail(add(mine, admin2).await, 403, "FORBIDDEN").await;
    fail(add(mine, other_sup).await, 403, "FORBIDDEN").await;
    // Removing: agents of the own team only.
    fail(
        delete(
            &app,
            &supervisor,
            &format!("{}/{agent2}", members_path(acme.id, theirs)),
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;
    expect(
        delete(
            &app,
            &supervisor,
            &format!("{}/{agent1}", members_path(acme.id, mine)),
        )
        .await,
        204,
    )
    .await;
    let rows = app
        .texts(format!(
            "SELECT team_id::text || '|' || user_id::text AS t FROM team_members \
             WHERE account_id = '{}' ORDER BY 1",
            acme.id
        ))
        .await;
    let mut expected = vec![
        Some(format!("{mine}|{sup_id}")),
        Some(format!("{theirs}|{agent2}")),
    ];
    expected.sort();
    assert_eq!(rows, expected);
    app.stop().await;
}

#[actix_rt::test]
async fn removing_members_and_deleting_teams() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let agent_id = app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let other_id = app.seed_user(acme.id, "other@acme.test", "agent").await;
    let agent = token(&app, "agent@acme.test").await;
    let team = new_team(&app, &acme.admin_token, acme.id, "Sales").await;
    add_member(&app, &acme.admin_token, acme.id, team, agent_id).await;
    add_member(&app, &acme.admin_token, acme.id, team, other_id).await;
    let member = |user: Uuid| format!("{}/{user}", members_path(acme.id, team));

    // Agents remove nobody.
    fail(
        delete(&app, &agent, &member(other_id)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    expect(
        delete(&app, &acme.admin_token, &member(other_id)).await,
        204,
    )
    .await;
    fail(
        delete(&app, &acme.admin_token, &member(other_id)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    let members = expect(
        get(&app, &acme.admin_token, &members_path(acme.id, team)).await,
        200,
    )
    .await;
    assert_eq!(ids(&members), vec![agent_id]);
    assert_eq!(audit_rows(&app, "team.member_removed", team).await.len(), 1);

    // Deleting the team removes its memberships, not its users.
    fail(
        delete(&app, &agent, &team_path(acme.id, team)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    expect(
        delete(&app, &acme.admin_token, &team_path(acme.id, team)).await,
        204,
    )
    .await;
    fail(
        get(&app, &acme.admin_token, &team_path(acme.id, team)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    fail(
        get(&app, &acme.admin_token, &members_path(acme.id, team)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    fail(
        delete(&app, &acme.admin_token, &team_path(acme.id, team)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(
        count(
            &app,
            format!("SELECT count(*) FROM team_members WHERE team_id = '{team}'")
        )
        .await,
        0
    );
    let read = expect(
        get(&app, &acme.admin_token, &user_path(acme.id, agent_id)).await,
        200,
    )
    .await;
    assert_eq!(read["status"], "active");
    assert_eq!(user_status(&app, other_id).await, "active");
    assert_eq!(audit_rows(&app, "team.deleted", team).await.len(), 1);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Entitlements and features
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn features_follow_the_plan_overrides_and_access_mode() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let agent = token(&app, "agent@acme.test").await;
    let key = new_key(&app, &acme.admin_token, acme.id, &["teams:read"]).await;
    let features = |cred: String| {
        let app = &app;
        async move { expect(get(app, &cred, &features_path(acme.id)).await, 200).await }
    };

    let free = json!({ "kanban": true, "internal_chat": false, "analytics": false, "access_mode": "full" });
    for cred in [&acme.admin_token, &agent, &key, &root] {
        assert_eq!(features(cred.clone()).await, free);
    }

    let body = set_entitlements(
        &app,
        &root,
        acme.id,
        json!({ "overrides": { "internal_chat": true } }),
    )
    .await;
    assert_eq!(body["overrides"], json!({ "internal_chat": true }));
    assert_eq!(body["features"]["internal_chat"], true);
    assert_eq!(body["plan"], "free");
    assert_eq!(features(agent.clone()).await["internal_chat"], true);

    // Another override keeps the first; null removes one.
    set_entitlements(
        &app,
        &root,
        acme.id,
        json!({ "overrides": { "max_agents": 7, "analytics": true } }),
    )
    .await;
    let read = expect(get(&app, &root, &entitlements_path(acme.id)).await, 200).await;
    assert_eq!(
        read["overrides"],
        json!({ "internal_chat": true, "max_agents": 7, "analytics": true })
    );
    assert_eq!(read["limits"]["max_agents"], 7);
    set_entitlements(
        &app,
        &root,
        acme.id,
        json!({ "overrides": { "internal_chat": null } }),
    )
    .await;
    let read = expect(
        get(&app, &acme.admin_token, &entitlements_path(acme.id)).await,
        200,
    )
    .await;
    assert_eq!(
        read["overrides"],
        json!({ "max_agents": 7, "analytics": true })
    );
    assert!(read["overrides"].get("internal_chat").is_none());
    assert_eq!(read["features"]["internal_chat"], false);
    assert_eq!(features(agent.clone()).await["internal_chat"], false);
    assert_eq!(features(agent.clone()).await["analytics"], true);

    // Access mode.
    let body = set_entitlements(&app, &root, acme.id, json!({ "access_mode": "read_only" })).await;
    assert_eq!(body["access_mode"], "read_only");
    assert_eq!(features(agent.clone()).await["access_mode"], "read_only");
    // A plan change keeps the overrides.
    let body = set_entitlements(&app, &root, acme.id, json!({ "plan": "starter" })).await;
    assert_eq!(body["plan"], "starter");
    assert_eq!(
        body["overrides"],
        json!({ "max_agents": 7, "analytics": true })
    );
    assert_eq!(
        features(agent.clone()).await,
        json!({ "kanban": true, "internal_chat": true, "analytics": true, "access_mode": "read_only" })
    );
    let rows = audit_rows(&app, "entitlements.updated", acme.id).await;
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[4]["before"]["plan"], "free");
    assert_eq!(rows[4]["after"]["plan"], "starter");
    app.stop().await;
}

#[actix_rt::test]
async fn only_super_admins_change_entitlements_and_bad_changes_are_400() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    let other = tenant(&app, "Other", "admin@other.test").await;
    let path = entitlements_path(acme.id);
    let snapshot = || {
        app.text(format!(
            "SELECT plan || '|' || overrides::text || '|' || access_mode AS t \
                 FROM account_entitlements WHERE account_id = '{}'",
            acme.id
        ))
    };
    let before = snapshot().await;
    assert_eq!(before.as_deref(), Some("free|{}|full"));

    for body in [
        json!({ "plan": "enterprise" }),
        json!({ "overrides": { "max_agents": 100 } }),
        json!({ "access_mode": "read_only" }),
    ] {
        fail(
            patch(&app, &acme.admin_token, &path, body.clone()).await,
            403,
            "FORBIDDEN",
        )
        .await;
        // Another account's admin: as if missing.
        fail(
            patch(&app, &other.admin_token, &path, body).await,
            404,
            "NOT_FOUND",
        )
        .await;
    }
    invalid(
        patch(&app, &root, &path, json!({ "overrides": { "x": 1 } })).await,
        "overrides.x",
    )
    .await;
    invalid(
        patch(
            &app,
            &root,
            &path,
            json!({ "overrides": { "max_agents": -1 } }),
        )
        .await,
        "overrides.max_agents",
    )
    .await;
    invalid(
        patch(
            &app,
            &root,
            &path,
            json!({ "overrides": { "max_teams": "5" } }),
        )
        .await,
        "overrides.max_teams",
    )
    .await;
    invalid(
        patch(
            &app,
            &root,
            &path,
            json!({ "overrides": { "kanban": "yes" } }),
        )
        .await,
        "overrides.kanban",
    )
    .await;
    // A valid key beside an unknown one changes nothing either.
    invalid(
        patch(
            &app,
            &root,
            &path,
            json!({ "overrides": { "internal_chat": true, "x": 1 } }),
        )
        .await,
        "overrides.x",
    )
    .await;
    invalid(
        patch(&app, &root, &path, json!({ "plan": "platinum" })).await,
        "plan",
    )
    .await;
    invalid(
        patch(&app, &root, &path, json!({ "access_mode": "frozen" })).await,
        "access_mode",
    )
    .await;
    fail(
        patch(&app, &root, &path, json!({ "limits": { "max_agents": 9 } })).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(snapshot().await, before);
    assert!(audit_rows(&app, "entitlements.updated", acme.id)
        .await
        .is_empty());
    app.stop().await;
}

#[actix_rt::test]
async fn entitlements_show_current_counts() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let gone = app.seed_user(acme.id, "gone@acme.test", "agent").await;
    app.sql(&format!(
        "UPDATE users SET status = 'inactive' WHERE id = '{gone}'"
    ))
    .await;

    let body = expect(
        get(&app, &acme.admin_token, &entitlements_path(acme.id)).await,
        200,
    )
    .await;
    assert_eq!(body["plan"], "free");
    assert_eq!(body["counts"]["max_agents"], 2, "{body}");
    assert_eq!(body["counts"]["max_teams"], 0, "{body}");
    assert_eq!(
        body["limits"],
        json!({ "max_agents": 2, "max_teams": 1, "max_inboxes": 1, "max_providers": 1,
                "max_instances": 1, "max_boards": 1, "max_monthly_messages": 1000 })
    );
    assert_eq!(
        body["features"],
        json!({ "kanban": true, "internal_chat": false, "analytics": false })
    );
    assert_eq!(body["overrides"], json!({}));
    assert_eq!(body["access_mode"], "full");
    assert!(
        body["updated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );

    new_team(&app, &acme.admin_token, acme.id, "Sales").await;
    let body = expect(
        get(&app, &acme.admin_token, &entitlements_path(acme.id)).await,
        200,
    )
    .await;
    assert_eq!(body["counts"]["max_teams"], 1);
    assert_eq!(body["counts"]["max_agents"], 2);
    app.stop().await;
}

#[actix_rt::test]
async fn entitlements_fail_closed_when_their_row_is_missing() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    let agent = token(&app, "agent@acme.test").await;
    app.sql(&format!(
        "DELETE FROM account_entitlements WHERE account_id = '{}'",
        acme.id
    ))
    .await;

    for cred in [&agent, &acme.admin_token] {
        fail(
            get(&app, cred, &features_path(acme.id)).await,
            503,
            "UNAVAILABLE",
        )
        .await;
    }
    fail(
        get(&app, &acme.admin_token, &entitlements_path(acme.id)).await,
        503,
        "UNAVAILABLE",
    )
    .await;
    fail(
        create_user(&app, &acme.admin_token, acme.id, "new@acme.test", "agent").await,
        503,
        "UNAVAILABLE",
    )
    .await;
    fail(
        post(
            &app,
            &acme.admin_token,
            &teams_path(acme.id),
            json!({ "name": "Sales" }),
        )
        .await,
        503,
        "UNAVAILABLE",
    )
    .await;
    assert_eq!(all_users(&app, acme.id).await, 2);
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT count(*) FROM teams WHERE account_id = '{}'",
                acme.id
            )
        )
        .await,
        0
    );
    app.stop().await;
}

#[actix_rt::test]
async fn reading_entitlements_needs_admin_or_usage_read() {
    let app = start().await;
    let acme = tenant(&app, "Acme", "admin@acme.test").await;
    app.seed_user(acme.id, "agent@acme.test", "agent").await;
    app.seed_user(acme.id, "sup@acme.test", "supervisor").await;
    let agent = token(&app, "agent@acme.test").await;
    let supervisor = token(&app, "sup@acme.test").await;
    let usage_key = new_key(&app, &acme.admin_token, acme.id, &["usage:read"]).await;
    let users_key = new_key(&app, &acme.admin_token, acme.id, &["users:read"]).await;
    let path = entitlements_path(acme.id);

    let body = expect(get(&app, &usage_key, &path).await, 200).await;
    assert_eq!(body["plan"], "free");
    let body = fail(get(&app, &users_key, &path).await, 403, "SCOPE_MISSING").await;
    assert_eq!(body["details"]["required_scope"], "usage:read", "{body}");
    for cred in [&agent, &supervisor] {
        let body = fail(get(&app, cred, &path).await, 403, "FORBIDDEN").await;
        assert_eq!(body["details"]["required_role"], "admin", "{body}");
    }
    // A key writes nothing.
    fail(
        patch(&app, &usage_key, &path, json!({ "plan": "enterprise" })).await,
        403,
        "FORBIDDEN",
    )
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn features_and_entitlements_of_a_missing_account_are_404() {
    let app = start().await;
    let (root, _) = root(&app).await;
    let missing = Uuid::now_v7();
    fail(
        get(&app, &root, &features_path(missing)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    fail(
        get(&app, &root, &entitlements_path(missing)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    app.stop().await;
}
