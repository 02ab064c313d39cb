//! Privacy (tenancy.md §7 and its "Must be tested" bullets): the caller's own profile
//! correction (`PATCH /api/v1/me`) and the data-subject export (`GET /api/v1/me/export`).
//!
//! The export holds the caller's profile, memberships, sessions, instance-token metadata, audit
//! rows and cards, and nothing of a colleague seeded with the same kinds of data; it never
//! carries a password hash or token material; it is refused while impersonating and after
//! three a day (a limit that survives a restart); every export leaves a `privacy.export` row.
//! `PATCH /api/v1/me` rejects unknown fields, needs the current password for a new email (the
//! new email then signs in), keeps emails unique, refuses Chatwoot-owned fields and
//! impersonators, and is audited without secrets. Every refusal also checks the row is
//! unchanged.

use diesel::sql_types::{Nullable, Text};
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use whatpro_hub::db;
use whatpro_hub::error::ApiError;

use crate::harness::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A test app whose sign-in rate limit does not get in the way.
async fn start() -> TestApp {
    TestApp::start_with(|c| c.rate_limit_login_per_min = 1000).await
}

async fn call(
    app: &TestApp,
    method: Method,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let request = app.http.request(method, app.url(path)).bearer_auth(token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

async fn patch_me(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    call(app, Method::PATCH, token, "/api/v1/me", Some(body)).await
}

async fn export(app: &TestApp, token: &str) -> reqwest::Response {
    call(app, Method::GET, token, "/api/v1/me/export", None).await
}

/// Asserts the status (showing the body when it differs) and returns the JSON body.
async fn expect(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "status (body: {text})");
    serde_json::from_str(&text).expect("JSON body")
}

/// Asserts a 400 `VALIDATION_ERROR` naming `field`.
async fn invalid(response: reqwest::Response, field: &str) -> Value {
    let body = assert_error(response, 400, "VALIDATION_ERROR").await;
    assert!(
        body["details"]["fields"]
            .as_array()
            .is_some_and(|fields| fields.iter().any(|f| f["field"] == field)),
        "`{field}` not named: {body}"
    );
    body
}

#[derive(diesel::QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Nullable<Text>)]
    t: Option<String>,
}

/// One text column `t` per row, in the platform scope.
async fn texts(app: &TestApp, sql: String) -> Vec<String> {
    db::platform_tx(&app.server.state.db, db::PlatformScope::system(), |conn| {
        Box::pin(
            async move { Ok::<_, ApiError>(diesel::sql_query(sql).load::<TextRow>(conn).await?) },
        )
    })
    .await
    .expect("platform query")
    .into_iter()
    .map(|r| r.t.unwrap_or_default())
    .collect()
}

/// A user's row as JSON.
async fn user_row(app: &TestApp, user: Uuid) -> Value {
    let rows = texts(
        app,
        format!("SELECT to_jsonb(u)::text AS t FROM users u WHERE id = '{user}'"),
    )
    .await;
    serde_json::from_str(&rows[0]).expect("row JSON")
}

/// Audit rows of `action` written by `actor`, oldest first, as JSON.
async fn audit_rows(app: &TestApp, action: &str, actor: Uuid) -> Vec<Value> {
    texts(
        app,
        format!(
            "SELECT to_jsonb(a)::text AS t FROM audit_log a WHERE action = '{action}' \
             AND actor_id = '{actor}' ORDER BY created_at, id"
        ),
    )
    .await
    .iter()
    .map(|t| serde_json::from_str(t).expect("row JSON"))
    .collect()
}

fn uuid_of(value: &Value) -> Uuid {
    value.as_str().expect("uuid string").parse().expect("uuid")
}

/// An access token of a seeded user.
async fn token(app: &TestApp, email: &str) -> String {
    token_of(&app.login(email, USER_PASSWORD).await)
}

/// Issues an instance token (201 expected): (id, token).
async fn instance_token(app: &TestApp, token: &str, account: Uuid) -> (Uuid, String) {
    let body = expect(
        call(
            app,
            Method::POST,
            token,
            &format!("/api/v1/accounts/{account}/instance-tokens"),
            Some(json!({ "scopes": ["cards:read"] })),
        )
        .await,
        201,
    )
    .await;
    (
        uuid_of(&body["id"]),
        body["token"].as_str().expect("token").to_owned(),
    )
}

/// The account's default board and its first stage.
async fn default_stage(app: &TestApp, account: Uuid) -> (Uuid, Uuid) {
    let rows = texts(
        app,
        format!(
            "SELECT b.id::text || ' ' || s.id::text AS t FROM boards b \
             JOIN stages s ON s.board_id = b.id \
             WHERE b.account_id = '{account}' AND b.is_default ORDER BY s.position LIMIT 1"
        ),
    )
    .await;
    let (board, stage) = rows[0].split_once(' ').expect("board and stage");
    (board.parse().unwrap(), stage.parse().unwrap())
}

/// Creates a card on the default board (201 expected); returns its id.
async fn new_card(app: &TestApp, token: &str, account: Uuid, body: Value) -> Uuid {
    let (board, stage) = default_stage(app, account).await;
    let mut body = body;
    body["stage_id"] = json!(stage);
    let card = expect(
        call(
            app,
            Method::POST,
            token,
            &format!("/api/v1/accounts/{account}/boards/{board}/cards"),
            Some(body),
        )
        .await,
        201,
    )
    .await;
    uuid_of(&card["id"])
}

/// A super_admin impersonating `user`: the access token.
async fn impersonating(app: &TestApp, user: Uuid) -> String {
    let root = app.admin_token().await;
    let body = expect(
        app.http
            .post(app.url("/admin/impersonate"))
            .bearer_auth(&root)
            .json(&json!({ "user_id": user, "reason": "support ticket 4321" }))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    body["token"].as_str().expect("token").to_owned()
}

fn ids_of(list: &Value) -> Vec<Uuid> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| uuid_of(&item["id"]))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn the_export_holds_the_callers_data_and_no_colleagues() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    app.seed_user(acme, "admin@acme.test", "admin").await;
    let ana = app.seed_user(acme, "ana@acme.test", "agent").await;
    let bia = app.seed_user(acme, "bia@acme.test", "agent").await;
    let admin = token(&app, "admin@acme.test").await;
    let ana_token = token(&app, "ana@acme.test").await;
    let bia_token = token(&app, "bia@acme.test").await;

    // Ana is in Sales, Bia in nothing; each has a session, an instance token, cards and an
    // audit trail of their own.
    let sales = expect(
        call(
            &app,
            Method::POST,
            &admin,
            &format!("/api/v1/accounts/{acme}/teams"),
            Some(json!({ "name": "Sales" })),
        )
        .await,
        201,
    )
    .await;
    let sales = uuid_of(&sales["id"]);
    expect(
        call(
            &app,
            Method::POST,
            &admin,
            &format!("/api/v1/accounts/{acme}/teams/{sales}/members"),
            Some(json!({ "user_id": ana })),
        )
        .await,
        201,
    )
    .await;
    let (ana_instance, ana_secret) = instance_token(&app, &ana_token, acme).await;
    let (bia_instance, bia_secret) = instance_token(&app, &bia_token, acme).await;
    let own = new_card(&app, &ana_token, acme, json!({ "title": "Ana's own lead" })).await;
    let assigned = new_card(
        &app,
        &admin,
        acme,
        json!({ "title": "Handed to Ana", "assignee_id": ana }),
    )
    .await;
    let bias = new_card(
        &app,
        &bia_token,
        acme,
        json!({ "title": "Bia's secret lead" }),
    )
    .await;
    expect(
        patch_me(&app, &ana_token, json!({ "name": "Ana Souza" })).await,
        200,
    )
    .await;
    expect(
        patch_me(&app, &bia_token, json!({ "name": "Bia Lima" })).await,
        200,
    )
    .await;

    let response = export(&app, &ana_token).await;
    assert_eq!(response.status(), 200);
    let disposition = response
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .expect("Content-Disposition")
        .to_owned();
    assert!(
        disposition.starts_with("attachment") && disposition.contains(&ana.to_string()),
        "{disposition}"
    );
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let text = response.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).expect("JSON export");

    // The caller's data.
    let profile = &doc["profile"];
    assert_eq!(profile["id"], json!(ana));
    assert_eq!(profile["email"], "ana@acme.test");
    assert_eq!(profile["name"], "Ana Souza");
    assert_eq!(profile["has_password"], true);
    assert_eq!(doc["account"], json!({ "id": acme, "name": "Acme" }));
    assert_eq!(
        doc["team_memberships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (uuid_of(&m["team_id"]), m["team_name"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        vec![(sales, "Sales")]
    );
    let sessions = texts(
        &app,
        format!("SELECT id::text AS t FROM sessions WHERE user_id = '{ana}' ORDER BY created_at DESC, id DESC"),
    )
    .await;
    assert!(!sessions.is_empty());
    assert_eq!(
        ids_of(&doc["sessions"]),
        sessions
            .iter()
            .map(|s| s.parse().unwrap())
            .collect::<Vec<Uuid>>()
    );
    assert_eq!(ids_of(&doc["instance_tokens"]), vec![ana_instance]);
    assert_eq!(doc["instance_tokens"][0]["scopes"], json!(["cards:read"]));
    let mut cards = ids_of(&doc["cards"]);
    cards.sort();
    let mut expected = vec![own, assigned];
    expected.sort();
    assert_eq!(cards, expected);
    let audit = doc["audit_log"].as_array().unwrap();
    assert!(
        audit.iter().all(|r| r["actor_id"] == json!(ana)),
        "{audit:?}"
    );
    let actions: Vec<&str> = audit
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "auth.login.succeeded",
        "instance_token.created",
        "user.updated",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    assert_eq!(doc["chat_messages"], json!([]));

    // No secrets, no colleague.
    for absent in [
        "password_hash",
        "$argon2",
        "token_hash",
        USER_PASSWORD,
        ana_secret.as_str(),
        bia_secret.as_str(),
        &bia.to_string(),
        "bia@acme.test",
        "Bia Lima",
        &bia_instance.to_string(),
        &bias.to_string(),
        "Bia's secret lead",
    ] {
        assert!(!text.contains(absent), "the export holds `{absent}`");
    }

    // Audited, with what it held.
    let rows = audit_rows(&app, "privacy.export", ana).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["result"], "success");
    assert_eq!(rows[0]["account_id"], json!(acme));
    assert_eq!(rows[0]["resource_id"], ana.to_string());
    assert_eq!(rows[0]["after"]["cards"], 2);
    assert_eq!(rows[0]["after"]["instance_credentials"], 1);
    assert_eq!(rows[0]["after"]["team_memberships"], 1);
    assert!(audit_rows(&app, "privacy.export", bia).await.is_empty());
    app.stop().await;
}

#[actix_rt::test]
async fn exporting_is_refused_while_impersonating_and_to_keys_and_instance_tokens() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let admin = app.seed_user(acme, "admin@acme.test", "admin").await;
    let admin_token = token(&app, "admin@acme.test").await;
    let acting = impersonating(&app, admin).await;
    let body = assert_error(export(&app, &acting).await, 403, "FORBIDDEN").await;
    assert_eq!(body["details"]["reason"], "impersonating", "{body}");
    let (_, instance) = instance_token(&app, &admin_token, acme).await;
    assert_error(export(&app, &instance).await, 403, "FORBIDDEN").await;
    let key = expect(
        call(
            &app,
            Method::POST,
            &admin_token,
            &format!("/api/v1/accounts/{acme}/api-keys"),
            Some(json!({ "name": "k", "scopes": ["users:read"] })),
        )
        .await,
        201,
    )
    .await;
    let response = app
        .http
        .get(app.url("/api/v1/me/export"))
        .header("x-api-key", key["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(
        texts(
            &app,
            "SELECT count(*)::text AS t FROM audit_log WHERE action = 'privacy.export'".into()
        )
        .await,
        ["0"]
    );
    // The super_admin's own export has the rows they wrote in any account: the
    // impersonation, in Acme's log.
    let (root, root_id) = {
        let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        (token_of(&login), uuid_of(&login["user"]["id"]))
    };
    let doc = expect(export(&app, &root).await, 200).await;
    assert_eq!(doc["profile"]["id"], json!(root_id));
    let started: Vec<&Value> = doc["audit_log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "impersonation.started")
        .collect();
    assert_eq!(started.len(), 1, "{doc}");
    assert_eq!(started[0]["account_id"], json!(acme));
    assert_eq!(started[0]["actor_id"], json!(root_id));
    assert_eq!(audit_rows(&app, "privacy.export", root_id).await.len(), 1);
    // Unauthenticated → 401.
    let response = app
        .http
        .get(app.url("/api/v1/me/export"))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "UNAUTHENTICATED").await;
    app.stop().await;
}

#[actix_rt::test]
async fn the_fourth_export_of_the_day_is_429_even_after_a_restart() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let ana = app.seed_user(acme, "ana@acme.test", "agent").await;
    let ana_token = token(&app, "ana@acme.test").await;
    for _ in 0..3 {
        expect(export(&app, &ana_token).await, 200).await;
    }
    let response = export(&app, &ana_token).await;
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    assert_error(response, 429, "RATE_LIMITED").await;
    assert_eq!(audit_rows(&app, "privacy.export", ana).await.len(), 3);

    // The count lives in the database, not in the node: a restart does not reset it.
    let db_url = app.db_url.clone();
    app.stop().await;
    let app = TestApp::start_on(db_url, |c| c.rate_limit_login_per_min = 1000).await;
    let ana_token = token(&app, "ana@acme.test").await;
    assert_error(export(&app, &ana_token).await, 429, "RATE_LIMITED").await;
    assert_eq!(audit_rows(&app, "privacy.export", ana).await.len(), 3);
    app.stop().await;
}

#[actix_rt::test]
async fn concurrent_exports_never_overshoot_the_daily_limit() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let ana = app.seed_user(acme, "ana@acme.test", "agent").await;
    let ana_token = token(&app, "ana@acme.test").await;
    let answers = futures_util::future::join_all((0..6).map(|_| export(&app, &ana_token))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    assert_eq!(audit_rows(&app, "privacy.export", ana).await.len(), 3);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// PATCH /api/v1/me
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn unknown_fields_and_bad_values_are_400_and_change_nothing() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let ana = app.seed_user(acme, "ana@acme.test", "agent").await;
    let ana_token = token(&app, "ana@acme.test").await;
    let before = user_row(&app, ana).await;
    invalid(
        patch_me(&app, &ana_token, json!({ "role": "admin" })).await,
        "role",
    )
    .await;
    invalid(
        patch_me(&app, &ana_token, json!({ "name": "Ana", "nickname": "A" })).await,
        "nickname",
    )
    .await;
    invalid(
        patch_me(&app, &ana_token, json!({ "name": "" })).await,
        "name",
    )
    .await;
    invalid(
        patch_me(&app, &ana_token, json!({ "name": "   " })).await,
        "name",
    )
    .await;
    invalid(
        patch_me(&app, &ana_token, json!({ "email": "not-an-email" })).await,
        "email",
    )
    .await;
    invalid(
        patch_me(
            &app,
            &ana_token,
            json!({ "avatar_url": "http://cdn.acme.test/a.png" }),
        )
        .await,
        "avatar_url",
    )
    .await;
    let long = format!("https://cdn.acme.test/{}", "a".repeat(2048));
    invalid(
        patch_me(&app, &ana_token, json!({ "avatar_url": long })).await,
        "avatar_url",
    )
    .await;
    invalid(
        patch_me(&app, &ana_token, json!({ "preferences": [1, 2] })).await,
        "preferences",
    )
    .await;
    let big = json!({ "blob": "x".repeat(17 * 1024) });
    invalid(
        patch_me(&app, &ana_token, json!({ "preferences": big })).await,
        "preferences",
    )
    .await;
    // About 10 KiB as text but over 16 KiB as stored jsonb: the column's CHECK refuses it,
    // answered as the field's 400, never a 500.
    let dense = json!({ "list": vec![0; 5000] });
    assert!(dense.to_string().len() < 16 * 1024);
    invalid(
        patch_me(&app, &ana_token, json!({ "preferences": dense })).await,
        "preferences",
    )
    .await;
    assert_eq!(user_row(&app, ana).await, before);
    assert!(audit_rows(&app, "user.updated", ana).await.is_empty());
    app.stop().await;
}

#[actix_rt::test]
async fn an_email_change_needs_the_current_password_and_then_signs_in() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let ana = app.seed_user(acme, "ana@acme.test", "agent").await;
    app.seed_user(acme, "bia@acme.test", "agent").await;
    let ana_token = token(&app, "ana@acme.test").await;
    let before = user_row(&app, ana).await;

    // Without the password → 400; a wrong one → 403; another user's email → 409.
    invalid(
        patch_me(&app, &ana_token, json!({ "email": "ana.souza@acme.test" })).await,
        "current_password",
    )
    .await;
    assert_error(
        patch_me(
            &app,
            &ana_token,
            json!({ "email": "ana.souza@acme.test", "current_password": "not my password at all" }),
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(
        patch_me(
            &app,
            &ana_token,
            json!({ "email": "BIA@acme.test", "current_password": USER_PASSWORD }),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(user_row(&app, ana).await, before);

    let body = expect(
        patch_me(
            &app,
            &ana_token,
            json!({ "email": "ana.souza@acme.test", "current_password": USER_PASSWORD }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["email"], "ana.souza@acme.test");
    assert_eq!(body["id"], json!(ana));
    assert_eq!(user_row(&app, ana).await["email"], "ana.souza@acme.test");
    let rows = audit_rows(&app, "user.updated", ana).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["result"], "success");
    assert_eq!(rows[0]["before"]["email"], "ana@acme.test");
    assert_eq!(rows[0]["after"]["email"], "ana.souza@acme.test");
    let row_text = rows[0].to_string();
    assert!(!row_text.contains(USER_PASSWORD) && !row_text.contains("current_password"));

    // The new email signs in; the old one no longer does.
    let login = app.login("ana.souza@acme.test", USER_PASSWORD).await;
    assert_eq!(login["user"]["id"], json!(ana));
    let old = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "email": "ana@acme.test", "password": USER_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_error(old, 401, "UNAUTHENTICATED").await;
    app.stop().await;
}

#[actix_rt::test]
async fn name_avatar_and_preferences_are_corrected_and_audited() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let ana = app.seed_user(acme, "ana@acme.test", "agent").await;
    let ana_token = token(&app, "ana@acme.test").await;
    let preferences = json!({ "theme": "dark", "board": { "compact": true } });
    let body = expect(
        patch_me(
            &app,
            &ana_token,
            json!({ "name": "Ana Souza", "avatar_url": "https://cdn.acme.test/ana.png",
                    "preferences": preferences }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["name"], "Ana Souza");
    assert_eq!(body["avatar_url"], "https://cdn.acme.test/ana.png");
    assert_eq!(body["preferences"], preferences);
    let me = expect(
        call(&app, Method::GET, &ana_token, "/api/v1/me", None).await,
        200,
    )
    .await;
    assert_eq!(me, body);
    let row = user_row(&app, ana).await;
    assert_eq!(row["name"], "Ana Souza");
    assert_eq!(row["preferences"], preferences);
    let rows = audit_rows(&app, "user.updated", ana).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["before"]["name"], "Seeded User");
    assert_eq!(
        rows[0]["after"]["avatar_url"],
        "https://cdn.acme.test/ana.png"
    );
    assert_eq!(rows[0]["after"]["preferences"], preferences);

    // null clears the avatar; nothing to change writes no row.
    let body = expect(
        patch_me(&app, &ana_token, json!({ "avatar_url": null })).await,
        200,
    )
    .await;
    assert_eq!(body["avatar_url"], Value::Null);
    expect(
        patch_me(&app, &ana_token, json!({ "name": "Ana Souza" })).await,
        200,
    )
    .await;
    assert_eq!(audit_rows(&app, "user.updated", ana).await.len(), 2);
    app.stop().await;
}

#[actix_rt::test]
async fn chatwoot_owned_fields_are_422_and_impersonators_are_403() {
    let app = start().await;
    let acme = app.seed_account("Acme").await;
    let ana = app.seed_user(acme, "ana@acme.test", "agent").await;
    app.sql(&format!(
        "UPDATE users SET chatwoot_user_id = 41 WHERE id = '{ana}'"
    ))
    .await;
    let ana_token = token(&app, "ana@acme.test").await;
    let before = user_row(&app, ana).await;
    assert_error(
        patch_me(&app, &ana_token, json!({ "name": "Not From Chatwoot" })).await,
        422,
        "UNPROCESSABLE",
    )
    .await;
    assert_error(
        patch_me(
            &app,
            &ana_token,
            json!({ "email": "other@acme.test", "current_password": USER_PASSWORD }),
        )
        .await,
        422,
        "UNPROCESSABLE",
    )
    .await;
    assert_eq!(user_row(&app, ana).await, before);
    // The hub's own fields stay editable.
    let body = expect(
        patch_me(
            &app,
            &ana_token,
            json!({ "preferences": { "lang": "pt-BR" } }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["preferences"], json!({ "lang": "pt-BR" }));

    let acting = impersonating(&app, ana).await;
    let before = user_row(&app, ana).await;
    let body = assert_error(
        patch_me(&app, &acting, json!({ "preferences": {} })).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(body["details"]["reason"], "impersonating", "{body}");
    assert_eq!(user_row(&app, ana).await, before);
    app.stop().await;
}
