//! The audit log's read API and retention (tenancy.md §6, §8 audit bullets).
//!
//! Rows written by real actions appear with their actor and action; the filters (action exact
//! and by prefix, actor, resource, result, time window) and the cursor (every row exactly
//! once, newest first, ties broken by id); who may read (admins of the account, super_admin,
//! `audit:read` keys; not agents, not keys without the scope); tenant isolation (an admin of A
//! sees none of B's rows nor platform rows, and B's row id is a 404); `/admin/audit-log` for
//! super_admin only, with platform rows and the `account_id` filter; unknown parameters are a
//! 400; `admin maintenance` dropping whole monthly partitions past retention; and 403s on
//! admin-level actions written as `denied` rows (by the matrix or a handler's own rule, keys'
//! `SCOPE_MISSING` included), while 404s, 400s, agent-level 403s and plan limits are not.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Datelike, Months, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A test app whose sign-in rate limit does not get in the way (these tests log in often).
async fn start() -> TestApp {
    TestApp::start_with(|c| c.rate_limit_login_per_min = 1000).await
}

/// A credential to call with.
#[derive(Clone, Copy)]
enum As<'a> {
    /// `Authorization: Bearer`.
    Bearer(&'a str),
    /// `X-API-Key`.
    Key(&'a str),
}

/// `GET url?query` as `who`.
async fn get(app: &TestApp, who: As<'_>, url: &str, query: &[(&str, &str)]) -> reqwest::Response {
    let request = app.http.get(app.url(url)).query(query);
    let request = match who {
        As::Bearer(token) => request.bearer_auth(token),
        As::Key(key) => request.header("x-api-key", key),
    };
    request.send().await.unwrap()
}

/// `GET url?query` that must answer 200; returns the body.
async fn get_ok(app: &TestApp, who: As<'_>, url: &str, query: &[(&str, &str)]) -> Value {
    let response = get(app, who, url, query).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "GET {url} {query:?}: {body}");
    body
}

fn log_url(account: Uuid) -> String {
    format!("/api/v1/accounts/{account}/audit-log")
}

const ADMIN_LOG: &str = "/admin/audit-log";

/// One page's items.
fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().expect("items").clone()
}

/// Every row of a listing in one page of 200 (the tests stay well below).
async fn all(app: &TestApp, who: As<'_>, url: &str, query: &[(&str, &str)]) -> Vec<Value> {
    let mut query = query.to_vec();
    query.push(("limit", "200"));
    let page = get_ok(app, who, url, &query).await;
    assert!(page["next_cursor"].is_null(), "more than 200 rows: {page}");
    items(&page)
}

/// Walks a listing `limit` rows at a time; returns every row in order.
async fn walk(
    app: &TestApp,
    who: As<'_>,
    url: &str,
    query: &[(&str, &str)],
    limit: usize,
) -> Vec<Value> {
    let limit_text = limit.to_string();
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..500 {
        let mut page_query = query.to_vec();
        page_query.push(("limit", &limit_text));
        if let Some(cursor) = &cursor {
            page_query.push(("cursor", cursor));
        }
        let page = get_ok(app, who, url, &page_query).await;
        let page_items = items(&page);
        assert!(page_items.len() <= limit, "{page}");
        rows.extend(page_items);
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(
                    page["items"].as_array().map(Vec::len),
                    Some(limit),
                    "only full pages have a next cursor"
                );
                cursor = Some(next.to_owned());
            }
            None => return rows,
        }
    }
    panic!("the walk did not end");
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

fn actions(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["action"].as_str().expect("action").to_owned())
        .collect()
}

fn time_of(row: &Value) -> DateTime<Utc> {
    row["created_at"]
        .as_str()
        .expect("created_at")
        .parse()
        .expect("RFC 3339")
}

/// Asserts newest first by (created_at, id), strictly (no row twice).
fn assert_newest_first(rows: &[Value]) {
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let key = |r: &Value| {
            (
                time_of(r),
                r["id"].as_str().unwrap().parse::<Uuid>().unwrap(),
            )
        };
        assert!(key(a) > key(b), "not newest first: {a} then {b}");
    }
}

/// Logs a seeded user in; returns the access token.
async fn login_user(app: &TestApp, email: &str) -> String {
    token_of(&app.login(email, USER_PASSWORD).await)
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

/// Creates an API key as `token`; returns (key, key id).
async fn new_key(app: &TestApp, token: &str, account: Uuid, scopes: &[&str]) -> (String, Uuid) {
    let response = app
        .http
        .post(app.url(&format!("/api/v1/accounts/{account}/api-keys")))
        .bearer_auth(token)
        .json(&json!({ "name": "audit test", "scopes": scopes }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (
        body["key"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().parse().unwrap(),
    )
}

/// Revokes an API key as `token`.
async fn revoke_key(app: &TestApp, token: &str, account: Uuid, key: Uuid) {
    let response = app
        .http
        .delete(app.url(&format!("/api/v1/accounts/{account}/api-keys/{key}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

/// A login that must fail with 401.
async fn failed_login(app: &TestApp, email: &str) {
    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": "definitely not it" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// Runs a query returning one text column `t`, in the platform scope.
async fn texts(app: &TestApp, sql: &str) -> Vec<String> {
    app.texts(sql)
        .await
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

/// The names of the audit log's partitions.
async fn partition_names(app: &TestApp) -> Vec<String> {
    texts(
        app,
        "SELECT c.relname::text AS t FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'audit_log'::regclass ORDER BY 1",
    )
    .await
}

/// `audit_log_YYYY_MM` of the month `offset` months from now (UTC).
fn month_partition(offset: i32) -> String {
    let first = Utc::now().date_naive().with_day(1).unwrap();
    let month = if offset >= 0 {
        first + Months::new(offset as u32)
    } else {
        first - Months::new(offset.unsigned_abs())
    };
    format!("audit_log_{:04}_{:02}", month.year(), month.month())
}

// ---------------------------------------------------------------------------------------------
// What the log shows
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn real_actions_appear_with_their_actor_and_action() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let admin_id = app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent_id = app.seed_user(acme, "agent@acme.test", "agent").await;
    let admin = login_user(&app, "admin@acme.test").await;

    let (key, key_id) = new_key(&app, &admin, acme, &["users:read"]).await;
    // The admin changes their own password, then the agent's.
    let response = app
        .http
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(&admin)
        .json(&json!({ "current_password": USER_PASSWORD, "new_password": "quiet harbour lanterns glow" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = app
        .http
        .post(app.url(&format!(
            "/api/v1/accounts/{acme}/users/{agent_id}/password"
        )))
        .bearer_auth(&admin)
        .json(&json!({ "new_password": "copper meadow drifts slowly" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // Failed logins: a known email with a wrong password, and an unknown email.
    failed_login(&app, "agent@acme.test").await;
    failed_login(&app, "nobody@acme.test").await;

    let rows = all(&app, As::Bearer(&admin), &log_url(acme), &[]).await;
    assert_newest_first(&rows);
    let columns = [
        "id",
        "account_id",
        "actor_type",
        "actor_id",
        "acted_as_user_id",
        "action",
        "resource_type",
        "resource_id",
        "before",
        "after",
        "result",
        "error_code",
        "ip",
        "user_agent",
        "request_id",
        "created_at",
    ];
    for row in &rows {
        assert_eq!(row["account_id"], acme.to_string(), "{row}");
        let object = row.as_object().unwrap();
        for column in columns {
            assert!(object.contains_key(column), "{column} missing in {row}");
        }
        assert_eq!(object.len(), columns.len(), "{row}");
        assert!(!row.to_string().contains(&key), "the key leaked: {row}");
    }
    let find =
        |action: &str| -> Vec<&Value> { rows.iter().filter(|r| r["action"] == action).collect() };

    let login = find("auth.login.succeeded");
    assert_eq!(login.len(), 1, "{rows:?}");
    assert_eq!(login[0]["actor_type"], "user");
    assert_eq!(login[0]["actor_id"], admin_id.to_string());

    let created = find("api_key.created");
    assert_eq!(created.len(), 1);
    let created = created[0];
    assert_eq!(created["actor_type"], "user");
    assert_eq!(created["actor_id"], admin_id.to_string());
    assert_eq!(created["resource_type"], "api_key");
    assert_eq!(created["resource_id"], key_id.to_string());
    assert_eq!(created["result"], "success");
    assert_eq!(created["after"]["scopes"], json!(["users:read"]));
    assert!(created["request_id"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert!(created["ip"].as_str().is_some());

    let passwords = find("user.password_changed");
    assert_eq!(passwords.len(), 2, "{rows:?}");
    let targets: HashSet<String> = passwords
        .iter()
        .map(|r| r["resource_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        targets,
        HashSet::from([admin_id.to_string(), agent_id.to_string()])
    );
    for row in &passwords {
        assert_eq!(row["actor_id"], admin_id.to_string());
    }

    // Failed logins are platform rows: not in the tenant's log, in the super_admin's.
    assert!(find("auth.login.failed").is_empty());
    let (root, _, _) = super_admin(&app).await;
    let failed = all(
        &app,
        As::Bearer(&root),
        ADMIN_LOG,
        &[("action", "auth.login.failed")],
    )
    .await;
    let emails: HashSet<&str> = failed
        .iter()
        .map(|r| r["after"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        HashSet::from(["agent@acme.test", "nobody@acme.test"])
    );
    for row in &failed {
        assert!(row["account_id"].is_null(), "{row}");
        assert_eq!(row["actor_type"], "anonymous");
        assert_eq!(row["result"], "failure");
        assert_eq!(row["error_code"], "UNAUTHENTICATED");
    }

    // One row by id is the listed row.
    let one = get_ok(
        &app,
        As::Bearer(&admin),
        &format!("{}/{}", log_url(acme), created["id"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(&one, created);
    app.stop().await;
}

#[actix_rt::test]
async fn filters_select_exactly_the_matching_rows() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let first_id = app.seed_user(acme, "first@acme.test", "admin").await;
    let second_id = app.seed_user(acme, "second@acme.test", "admin").await;
    let first = login_user(&app, "first@acme.test").await;
    let second = login_user(&app, "second@acme.test").await;
    let (_, key_a) = new_key(&app, &first, acme, &["users:read"]).await;
    let (_, key_b) = new_key(&app, &first, acme, &["users:read"]).await;
    let (_, key_c) = new_key(&app, &second, acme, &["users:read"]).await;
    revoke_key(&app, &first, acme, key_a).await;
    // Rows no handler writes yet: a denial, a failure, and an action the `api_key.` prefix
    // must not match (`_` is not a wildcard).
    app.sql(&format!(
        "INSERT INTO audit_log (id, account_id, actor_type, actor_id, action, resource_type, \
         resource_id, result, error_code) VALUES \
         (gen_random_uuid(), '{acme}', 'user', '{second_id}', 'user.role_changed', 'user', \
          '{first_id}', 'denied', 'FORBIDDEN'), \
         (gen_random_uuid(), '{acme}', 'system', NULL, 'apixkey.created', 'apixkey', 'x', \
          'failure', 'INTERNAL')"
    ))
    .await;
    let admin = As::Bearer(&first);
    let url = log_url(acme);
    let everything = all(&app, admin, &url, &[]).await;
    let select = |keep: &dyn Fn(&Value) -> bool| -> Vec<String> {
        ids(&everything
            .iter()
            .filter(|r| keep(r))
            .cloned()
            .collect::<Vec<_>>())
    };

    // Action, exact.
    let rows = all(&app, admin, &url, &[("action", "api_key.created")]).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(ids(&rows), select(&|r| r["action"] == "api_key.created"));
    assert!(all(&app, admin, &url, &[("action", "api_key")])
        .await
        .is_empty());
    // Action, by prefix.
    let rows = all(&app, admin, &url, &[("action", "api_key.")]).await;
    assert_eq!(
        actions(&rows)
            .iter()
            .filter(|a| *a == "api_key.created")
            .count(),
        3
    );
    assert_eq!(
        actions(&rows)
            .iter()
            .filter(|a| *a == "api_key.revoked")
            .count(),
        1
    );
    assert_eq!(rows.len(), 4, "{rows:?}");
    let rows = all(&app, admin, &url, &[("action", "auth.")]).await;
    assert_eq!(
        ids(&rows),
        select(&|r| r["action"].as_str().unwrap().starts_with("auth."))
    );
    assert_eq!(rows.len(), 2, "two logins");
    // Actor.
    let rows = all(&app, admin, &url, &[("actor_id", &second_id.to_string())]).await;
    assert_eq!(
        ids(&rows),
        select(&|r| r["actor_id"] == second_id.to_string())
    );
    assert_eq!(rows.len(), 3, "login, key, denial: {rows:?}");
    // Resource.
    let rows = all(
        &app,
        admin,
        &url,
        &[
            ("resource_type", "api_key"),
            ("resource_id", &key_a.to_string()),
        ],
    )
    .await;
    assert_eq!(actions(&rows), ["api_key.revoked", "api_key.created"]);
    let rows = all(&app, admin, &url, &[("resource_id", &key_b.to_string())]).await;
    assert_eq!(actions(&rows), ["api_key.created"]);
    let rows = all(&app, admin, &url, &[("resource_id", &key_c.to_string())]).await;
    assert_eq!(rows[0]["actor_id"], second_id.to_string());
    // Result.
    let rows = all(&app, admin, &url, &[("result", "denied")]).await;
    assert_eq!(actions(&rows), ["user.role_changed"]);
    assert_eq!(rows[0]["error_code"], "FORBIDDEN");
    let rows = all(&app, admin, &url, &[("result", "failure")]).await;
    assert_eq!(actions(&rows), ["apixkey.created"]);
    assert_eq!(
        all(&app, admin, &url, &[("result", "success")]).await.len(),
        everything.len() - 2
    );
    // Combined.
    let rows = all(
        &app,
        admin,
        &url,
        &[("action", "api_key."), ("actor_id", &first_id.to_string())],
    )
    .await;
    assert_eq!(rows.len(), 3);

    // Time window: `from` inclusive, `to` exclusive.
    let middle = &everything[everything.len() / 2];
    let at = middle["created_at"].as_str().unwrap();
    let t = time_of(middle);
    let rows = all(&app, admin, &url, &[("from", at)]).await;
    assert_eq!(ids(&rows), select(&|r| time_of(r) >= t));
    assert!(ids(&rows).contains(&middle["id"].as_str().unwrap().to_owned()));
    let rows = all(&app, admin, &url, &[("to", at)]).await;
    assert_eq!(ids(&rows), select(&|r| time_of(r) < t));
    assert!(!rows.is_empty());
    let first_at = everything.last().unwrap()["created_at"].as_str().unwrap();
    let rows = all(&app, admin, &url, &[("from", first_at), ("to", at)]).await;
    assert_eq!(ids(&rows), select(&|r| time_of(r) < t));
    // Other offsets are accepted (`+` must be escaped in a URL; reqwest does it).
    let later = (t + chrono::Duration::hours(1))
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
        .to_rfc3339();
    assert_eq!(
        ids(&all(&app, admin, &url, &[("from", at), ("to", &later)]).await),
        select(&|r| time_of(r) >= t)
    );
    assert!(all(&app, admin, &url, &[("from", at), ("to", at)])
        .await
        .is_empty());

    // Bad values name their field.
    let long = "x".repeat(51);
    for (query, field) in [
        (vec![("actor_id", "not-a-uuid")], "actor_id"),
        (vec![("result", "ok")], "result"),
        (vec![("from", "yesterday")], "from"),
        (vec![("to", "2026-01-01")], "to"),
        (
            vec![
                ("from", "2026-02-01T00:00:00Z"),
                ("to", "2026-01-01T00:00:00Z"),
            ],
            "to",
        ),
        (vec![("limit", "0")], "limit"),
        (vec![("limit", "201")], "limit"),
        (vec![("limit", "ten")], "limit"),
        (vec![("cursor", "garbage!")], "cursor"),
        (vec![("action", "")], "action"),
        (vec![("resource_type", long.as_str())], "resource_type"),
    ] {
        let response = get(&app, admin, &url, &query).await;
        let body = assert_error(response, 400, "VALIDATION_ERROR").await;
        assert_eq!(
            body["details"]["fields"][0]["field"], field,
            "{query:?}: {body}"
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn the_cursor_walks_every_row_exactly_once_newest_first() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let admin = login_user(&app, "admin@acme.test").await;
    for _ in 0..4 {
        new_key(&app, &admin, acme, &["users:read"]).await;
    }
    // Three rows in the same microsecond: the id breaks the tie.
    app.sql(&format!(
        "INSERT INTO audit_log (id, account_id, actor_type, action, result, created_at) \
         SELECT gen_random_uuid(), '{acme}', 'system', 'tie.test', 'success', \
                date_trunc('second', now()) - interval '1 second' \
         FROM generate_series(1, 3)"
    ))
    .await;
    let who = As::Bearer(&admin);
    let url = log_url(acme);
    let everything = all(&app, who, &url, &[]).await;
    assert_eq!(everything.len(), 1 + 4 + 3, "{everything:?}");
    assert_newest_first(&everything);

    let walked = walk(&app, who, &url, &[], 2).await;
    assert_eq!(ids(&walked), ids(&everything));
    let unique: HashSet<String> = ids(&walked).into_iter().collect();
    assert_eq!(unique.len(), walked.len());

    // Pages of 1, and a filtered walk.
    assert_eq!(ids(&walk(&app, who, &url, &[], 1).await), ids(&everything));
    let keys = walk(&app, who, &url, &[("action", "api_key.")], 2).await;
    assert_eq!(keys.len(), 4);
    assert_newest_first(&keys);
    let ties = walk(&app, who, &url, &[("action", "tie.test")], 2).await;
    assert_eq!(ties.len(), 3);
    assert_newest_first(&ties);

    // The default page size is 50 and a full last page has no cursor.
    let page = get_ok(&app, who, &url, &[]).await;
    assert_eq!(items(&page).len(), everything.len());
    assert!(page["next_cursor"].is_null());
    let page = get_ok(&app, who, &url, &[("limit", "8")]).await;
    assert_eq!(items(&page).len(), 8);
    assert!(page["next_cursor"].is_null());
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Who sees what
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn an_admin_sees_only_their_accounts_rows() {
    let app = start().await;
    let a = app.seed_account("A").await;
    let b = app.seed_account("B").await;
    app.seed_user(a, "admin@a.test", "admin").await;
    app.seed_user(b, "admin@b.test", "admin").await;
    let admin_a = login_user(&app, "admin@a.test").await;
    let admin_b = login_user(&app, "admin@b.test").await;
    new_key(&app, &admin_a, a, &["users:read"]).await;
    new_key(&app, &admin_b, b, &["users:read"]).await;
    failed_login(&app, "stranger@nowhere.test").await;

    let (root, _, platform) = super_admin(&app).await;
    let every = all(&app, As::Bearer(&root), ADMIN_LOG, &[]).await;
    let platform_rows: Vec<&Value> = every.iter().filter(|r| r["account_id"].is_null()).collect();
    assert!(actions(&every).contains(&"super_admin.bootstrapped".to_owned()));
    assert!(actions(&every).contains(&"auth.login.failed".to_owned()));
    let b_rows: Vec<&Value> = every
        .iter()
        .filter(|r| r["account_id"] == b.to_string())
        .collect();
    assert!(b_rows.len() >= 2, "login and key of B: {every:?}");

    let seen = all(&app, As::Bearer(&admin_a), &log_url(a), &[]).await;
    assert!(!seen.is_empty());
    for row in &seen {
        assert_eq!(row["account_id"], a.to_string(), "{row}");
    }
    let seen_ids: HashSet<String> = ids(&seen).into_iter().collect();
    for row in b_rows.iter().chain(platform_rows.iter()) {
        assert!(!seen_ids.contains(row["id"].as_str().unwrap()), "{row}");
    }
    // Filters do not reach past the tenant either.
    assert!(all(
        &app,
        As::Bearer(&admin_a),
        &log_url(a),
        &[("action", "auth.login.failed")]
    )
    .await
    .is_empty());
    assert!(all(
        &app,
        As::Bearer(&admin_a),
        &log_url(a),
        &[("action", "super_admin.bootstrapped")]
    )
    .await
    .is_empty());

    // B's row and a platform row by id, through A: 404, like a row that does not exist.
    for row in [b_rows[0], platform_rows[0]] {
        let url = format!("{}/{}", log_url(a), row["id"].as_str().unwrap());
        assert_error(
            get(&app, As::Bearer(&admin_a), &url, &[]).await,
            404,
            "NOT_FOUND",
        )
        .await;
    }
    let missing = format!("{}/{}", log_url(a), Uuid::now_v7());
    assert_error(
        get(&app, As::Bearer(&admin_a), &missing, &[]).await,
        404,
        "NOT_FOUND",
    )
    .await;
    let malformed = format!("{}/not-a-uuid", log_url(a));
    assert_error(
        get(&app, As::Bearer(&admin_a), &malformed, &[]).await,
        404,
        "NOT_FOUND",
    )
    .await;
    // B's whole log through A's credentials: 404.
    assert_error(
        get(&app, As::Bearer(&admin_a), &log_url(b), &[]).await,
        404,
        "NOT_FOUND",
    )
    .await;
    let b_row = format!("{}/{}", log_url(b), b_rows[0]["id"].as_str().unwrap());
    assert_error(
        get(&app, As::Bearer(&admin_a), &b_row, &[]).await,
        404,
        "NOT_FOUND",
    )
    .await;
    // B's admin reads the same row; super_admin reads any account's log.
    get_ok(&app, As::Bearer(&admin_b), &b_row, &[]).await;
    let by_root = all(&app, As::Bearer(&root), &log_url(b), &[]).await;
    assert_eq!(by_root.len(), b_rows.len());
    // The platform account's own log holds its account rows, not the platform rows.
    for row in all(&app, As::Bearer(&root), &log_url(platform), &[]).await {
        assert_eq!(row["account_id"], platform.to_string(), "{row}");
    }
    app.stop().await;
}

#[actix_rt::test]
async fn admins_and_audit_read_keys_may_read_agents_and_other_keys_may_not() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    app.seed_user(acme, "sup@acme.test", "supervisor").await;
    app.seed_user(acme, "agent@acme.test", "agent").await;
    let admin = login_user(&app, "admin@acme.test").await;
    let supervisor = login_user(&app, "sup@acme.test").await;
    let agent = login_user(&app, "agent@acme.test").await;
    let (reader, reader_id) = new_key(&app, &admin, acme, &["audit:read"]).await;
    let (other, _) = new_key(&app, &admin, acme, &["users:read", "usage:read"]).await;
    let url = log_url(acme);
    let some_row = all(&app, As::Bearer(&admin), &url, &[]).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let row_url = format!("{url}/{some_row}");

    for (who, token) in [("agent", &agent), ("supervisor", &supervisor)] {
        for target in [&url, &row_url] {
            let body = assert_error(
                get(&app, As::Bearer(token), target, &[]).await,
                403,
                "FORBIDDEN",
            )
            .await;
            assert_eq!(body["details"]["required_role"], "admin", "{who}: {body}");
        }
    }
    let rows = all(&app, As::Key(&reader), &url, &[]).await;
    assert!(rows
        .iter()
        .any(|r| r["resource_id"] == reader_id.to_string()));
    get_ok(&app, As::Key(&reader), &row_url, &[]).await;
    for target in [&url, &row_url] {
        let body = assert_error(
            get(&app, As::Key(&other), target, &[]).await,
            403,
            "SCOPE_MISSING",
        )
        .await;
        assert!(body.to_string().contains("audit:read"), "{body}");
    }
    // No credentials: 401.
    let response = app.http.get(app.url(&url)).send().await.unwrap();
    assert_error(response, 401, "UNAUTHENTICATED").await;
    app.stop().await;
}

#[actix_rt::test]
async fn the_admin_log_shows_platform_rows_to_super_admin_only() {
    let app = start().await;
    let a = app.seed_account("A").await;
    let b = app.seed_account("B").await;
    app.seed_user(a, "admin@a.test", "admin").await;
    app.seed_user(b, "admin@b.test", "admin").await;
    let admin_a = login_user(&app, "admin@a.test").await;
    let admin_b = login_user(&app, "admin@b.test").await;
    new_key(&app, &admin_a, a, &["users:read"]).await;
    let (key_b, _) = new_key(&app, &admin_b, b, &["audit:read"]).await;
    failed_login(&app, "ghost@nowhere.test").await;
    let (root, root_id, _) = super_admin(&app).await;
    let root_as = As::Bearer(&root);

    let every = all(&app, root_as, ADMIN_LOG, &[]).await;
    assert_newest_first(&every);
    let accounts: HashSet<String> = every
        .iter()
        .map(|r| r["account_id"].as_str().unwrap_or("null").to_owned())
        .collect();
    assert!(accounts.contains("null"));
    assert!(accounts.contains(&a.to_string()));
    assert!(accounts.contains(&b.to_string()));

    let platform_only = all(&app, root_as, ADMIN_LOG, &[("account_id", "platform")]).await;
    assert!(!platform_only.is_empty());
    assert!(platform_only.iter().all(|r| r["account_id"].is_null()));
    assert_eq!(
        platform_only.len(),
        every.iter().filter(|r| r["account_id"].is_null()).count()
    );
    let bootstrapped = all(
        &app,
        root_as,
        ADMIN_LOG,
        &[
            ("account_id", "platform"),
            ("action", "super_admin.bootstrapped"),
        ],
    )
    .await;
    assert_eq!(bootstrapped.len(), 1);
    assert_eq!(bootstrapped[0]["actor_type"], "system");
    assert_eq!(bootstrapped[0]["resource_id"], root_id.to_string());

    let only_a = all(&app, root_as, ADMIN_LOG, &[("account_id", &a.to_string())]).await;
    assert!(!only_a.is_empty());
    assert!(only_a.iter().all(|r| r["account_id"] == a.to_string()));
    assert_eq!(
        ids(&only_a),
        ids(&all(&app, root_as, &log_url(a), &[]).await)
    );
    let a_keys = all(
        &app,
        root_as,
        ADMIN_LOG,
        &[("account_id", &a.to_string()), ("action", "api_key.")],
    )
    .await;
    assert_eq!(actions(&a_keys), ["api_key.created"]);
    assert!(all(
        &app,
        root_as,
        ADMIN_LOG,
        &[("account_id", &Uuid::now_v7().to_string())]
    )
    .await
    .is_empty());
    // The cursor works here too.
    assert_eq!(
        ids(&walk(&app, root_as, ADMIN_LOG, &[], 3).await),
        ids(&every)
    );

    let body = assert_error(
        get(&app, root_as, ADMIN_LOG, &[("account_id", "everyone")]).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["details"]["fields"][0]["field"], "account_id");
    // Admins, and keys even with `audit:read`: 403.
    assert_error(
        get(&app, As::Bearer(&admin_a), ADMIN_LOG, &[]).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(
        get(&app, As::Key(&key_b), ADMIN_LOG, &[]).await,
        403,
        "FORBIDDEN",
    )
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn unknown_query_parameters_are_a_400_naming_them() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let admin = login_user(&app, "admin@acme.test").await;
    let (root, _, _) = super_admin(&app).await;
    let url = log_url(acme);
    for (who, target, query) in [
        (As::Bearer(&admin), url.as_str(), vec![("actions", "user.")]),
        (
            As::Bearer(&admin),
            url.as_str(),
            vec![("account_id", "platform")],
        ),
        (As::Bearer(&admin), url.as_str(), vec![("page", "2")]),
        (
            As::Bearer(&admin),
            url.as_str(),
            vec![("action", "a.b"), ("action", "c.d")],
        ),
        (As::Bearer(&root), ADMIN_LOG, vec![("offset", "10")]),
    ] {
        let response = get(&app, who, target, &query).await;
        let body = assert_error(response, 400, "VALIDATION_ERROR").await;
        assert_eq!(
            body["details"]["fields"][0]["field"],
            query.last().unwrap().0,
            "{body}"
        );
    }
    // The OpenAPI document describes the three routes.
    let document = get_ok(&app, As::Bearer(&admin), "/api/v1/openapi.json", &[]).await;
    for path in [
        "/api/v1/accounts/{account_id}/audit-log",
        "/api/v1/accounts/{account_id}/audit-log/{audit_id}",
        "/admin/audit-log",
    ] {
        assert!(document["paths"][path]["get"].is_object(), "{path}");
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

/// Creates the January 2019 partition with one row, and the partition of six months ago.
async fn seed_old_partitions(app: &TestApp) {
    app.sql(
        "SELECT audit_log_ensure_partitions('2019-01-01', 1); \
         SELECT audit_log_ensure_partitions((date_trunc('month', now()) - interval '6 months')::date, 1); \
         INSERT INTO audit_log (id, account_id, actor_type, action, result, created_at) VALUES \
         (gen_random_uuid(), NULL, 'system', 'old.event', 'success', '2019-01-15T12:00:00Z'), \
         (gen_random_uuid(), NULL, 'system', 'recent.event', 'success', \
          date_trunc('month', now()) - interval '6 months' + interval '1 day')",
    )
    .await;
}

#[actix_rt::test]
async fn maintenance_drops_whole_partitions_past_retention_and_creates_the_coming_months() {
    let app = start().await;
    seed_old_partitions(&app).await;
    let six_months_ago = month_partition(-6);
    let before = partition_names(&app).await;
    assert!(before.contains(&"audit_log_2019_01".to_owned()));
    assert!(before.contains(&six_months_ago));
    assert_eq!(
        texts(
            &app,
            "SELECT count(*)::text AS t FROM audit_log WHERE action = 'old.event'"
        )
        .await,
        ["1"]
    );

    // Below the minimum, the retention is raised to 365 days: the partition of six months ago
    // stays.
    let report = whatpro_hub::maintenance::run(&app.db_url, 30)
        .await
        .unwrap();
    assert_eq!(report.retention_days, 365);
    assert_eq!(report.dropped, ["audit_log_2019_01"]);
    assert!(report.cutoff < Utc::now() - chrono::Duration::days(364));
    let after = partition_names(&app).await;
    assert!(
        !after.contains(&"audit_log_2019_01".to_owned()),
        "{after:?}"
    );
    assert!(after.contains(&six_months_ago), "{after:?}");
    for offset in 0..=3 {
        assert!(
            after.contains(&month_partition(offset)),
            "{offset}: {after:?}"
        );
        assert!(report.kept.contains(&month_partition(offset)), "{report:?}");
    }
    assert_eq!(report.kept, after);
    for created in &report.created {
        assert!(!before.contains(created), "{created} existed before");
    }
    assert_eq!(
        texts(
            &app,
            "SELECT count(*)::text AS t FROM audit_log WHERE action = 'old.event'"
        )
        .await,
        ["0"]
    );
    assert_eq!(
        texts(
            &app,
            "SELECT count(*)::text AS t FROM audit_log WHERE action = 'recent.event'"
        )
        .await,
        ["1"]
    );
    // The run is audited as a platform event.
    let (root, _, _) = super_admin(&app).await;
    let runs = all(
        &app,
        As::Bearer(&root),
        ADMIN_LOG,
        &[("action", "audit_log.maintained")],
    )
    .await;
    assert_eq!(runs.len(), 1);
    assert!(runs[0]["account_id"].is_null());
    assert_eq!(runs[0]["actor_type"], "system");
    assert_eq!(runs[0]["after"]["dropped"], json!(["audit_log_2019_01"]));

    // A second run has nothing to do.
    let again = whatpro_hub::maintenance::run(&app.db_url, 365)
        .await
        .unwrap();
    assert!(again.dropped.is_empty(), "{again:?}");
    assert!(again.created.is_empty(), "{again:?}");
    assert_eq!(partition_names(&app).await, after);
    app.stop().await;
}

#[actix_rt::test]
async fn the_admin_maintenance_command_prints_its_report() {
    let app = start().await;
    seed_old_partitions(&app).await;
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_whatpro-hub"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", dir.path().join("data"))
        .env("LOG_LEVEL", "warn")
        .env("DATABASE_URL", &app.db_url)
        .env("AUDIT_RETENTION_DAYS", "400")
        .args(["admin", "maintenance"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the command ends within 60 s")
        .expect("the command runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("audit retention: 400 days"), "{stdout}");
    assert!(
        stdout.contains("dropped partitions: audit_log_2019_01"),
        "{stdout}"
    );
    assert!(stdout.contains(&month_partition(-6)), "{stdout}");
    let after = partition_names(&app).await;
    assert!(
        !after.contains(&"audit_log_2019_01".to_owned()),
        "{after:?}"
    );
    assert!(after.contains(&month_partition(0)));
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Denials
// ---------------------------------------------------------------------------------------------

/// Every `denied` row, oldest first, as JSON objects.
async fn denied_rows(app: &TestApp) -> Vec<Value> {
    texts(
        app,
        "SELECT to_jsonb(a)::text AS t FROM audit_log a WHERE result = 'denied' \
         ORDER BY created_at, id",
    )
    .await
    .iter()
    .map(|t| serde_json::from_str(t).expect("row JSON"))
    .collect()
}

/// `method path` with a bearer token or key and an optional JSON body.
async fn send(
    app: &TestApp,
    who: As<'_>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let request = app.http.request(method, app.url(path));
    let request = match who {
        As::Bearer(token) => request.bearer_auth(token),
        As::Key(key) => request.header("x-api-key", key),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

/// Asserts a 403 with `code`; returns the response's request id.
async fn forbidden(response: reqwest::Response, code: &str) -> String {
    let body = assert_error(response, 403, code).await;
    body["request_id"].as_str().expect("request id").to_owned()
}

#[actix_rt::test]
async fn admin_level_403s_are_audited_as_denied_and_nothing_else_is() {
    use reqwest::Method;
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let other = app.seed_account("Other").await;
    let admin_id = app.seed_user(acme, "admin@acme.test", "admin").await;
    let agent_id = app.seed_user(acme, "agent@acme.test", "agent").await;
    let admin = login_user(&app, "admin@acme.test").await;
    let agent = login_user(&app, "agent@acme.test").await;
    let (key, key_id) = new_key(&app, &admin, acme, &["users:read"]).await;
    let users = format!("/api/v1/accounts/{acme}/users");
    let new_user = json!({ "email": "new@acme.test", "name": "New", "role": "agent" });

    // Refused by the matrix: an agent creating a user, listing API keys, listing accounts.
    let create_id = forbidden(
        send(
            &app,
            As::Bearer(&agent),
            Method::POST,
            &users,
            Some(new_user.clone()),
        )
        .await,
        "FORBIDDEN",
    )
    .await;
    forbidden(
        send(
            &app,
            As::Bearer(&agent),
            Method::GET,
            &format!("/api/v1/accounts/{acme}/api-keys"),
            None,
        )
        .await,
        "FORBIDDEN",
    )
    .await;
    forbidden(
        send(
            &app,
            As::Bearer(&agent),
            Method::GET,
            "/api/v1/accounts",
            None,
        )
        .await,
        "FORBIDDEN",
    )
    .await;
    // Refused by the handler after the matrix allowed it: an admin changing their own role.
    forbidden(
        send(
            &app,
            As::Bearer(&admin),
            Method::PATCH,
            &format!("{users}/{admin_id}"),
            Some(json!({ "role": "agent" })),
        )
        .await,
        "FORBIDDEN",
    )
    .await;
    // A key without the scope of an admin-level read.
    forbidden(
        send(&app, As::Key(&key), Method::GET, &log_url(acme), None).await,
        "SCOPE_MISSING",
    )
    .await;

    // Not denials of admin-level actions: a 404 and a 400 on one, another tenant's path
    // (404), an agent-level 403 (a key on the caller's own sessions), and a plan limit.
    let missing = format!("{users}/{}", Uuid::now_v7());
    let response = send(
        &app,
        As::Bearer(&admin),
        Method::PATCH,
        &missing,
        Some(json!({ "name": "X" })),
    )
    .await;
    assert_error(response, 404, "NOT_FOUND").await;
    let response = send(
        &app,
        As::Bearer(&admin),
        Method::POST,
        &users,
        Some(json!({ "email": "x" })),
    )
    .await;
    assert_error(response, 400, "VALIDATION_ERROR").await;
    let response = send(
        &app,
        As::Bearer(&agent),
        Method::POST,
        &format!("/api/v1/accounts/{other}/users"),
        Some(new_user.clone()),
    )
    .await;
    assert_error(response, 404, "NOT_FOUND").await;
    forbidden(
        send(
            &app,
            As::Key(&key),
            Method::GET,
            "/api/v1/me/sessions",
            None,
        )
        .await,
        "FORBIDDEN",
    )
    .await;
    let response = send(
        &app,
        As::Bearer(&admin),
        Method::POST,
        &users,
        Some(new_user),
    )
    .await;
    assert_error(response, 403, "QUOTA_EXCEEDED").await;

    let rows = denied_rows(&app).await;
    let summary: Vec<(String, String, String, String, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r["actor_id"].as_str().unwrap().to_owned(),
                r["actor_type"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
                r["error_code"].as_str().unwrap().to_owned(),
                r["resource_id"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let entry = |actor: Uuid, kind: &str, action: &str, code: &str, resource: Option<Uuid>| {
        (
            actor.to_string(),
            kind.to_owned(),
            action.to_owned(),
            code.to_owned(),
            resource.map(|r| r.to_string()),
        )
    };
    assert_eq!(
        summary,
        vec![
            entry(agent_id, "user", "user.manage", "FORBIDDEN", None),
            entry(agent_id, "user", "api_key.manage", "FORBIDDEN", None),
            entry(agent_id, "user", "platform.admin", "FORBIDDEN", None),
            entry(admin_id, "user", "user.manage", "FORBIDDEN", Some(admin_id)),
            entry(key_id, "api_key", "audit_log.read", "SCOPE_MISSING", None),
        ]
    );
    let first = &rows[0];
    assert_eq!(first["account_id"], json!(acme));
    assert_eq!(first["resource_type"], "user");
    assert_eq!(first["request_id"], create_id.as_str());
    assert_eq!(
        first["after"],
        json!({ "method": "POST", "route": "/api/v1/accounts/{account_id}/users" })
    );
    assert_eq!(rows[3]["after"]["method"], "PATCH");
    // The refused create left no user behind; the admin reads the denials through the API.
    assert_eq!(
        texts(
            &app,
            "SELECT count(*)::text AS t FROM users WHERE email = 'new@acme.test'"
        )
        .await,
        ["0"]
    );
    let listed = all(
        &app,
        As::Bearer(&admin),
        &log_url(acme),
        &[("result", "denied")],
    )
    .await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    app.stop().await;
}
