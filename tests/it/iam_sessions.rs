//! Sessions from sign-in to sign-out (iam.md §4.1, §4.4, §4.5, §5; operations.md "Rate
//! limits"; realtime.md close 4003).
//!
//! The refresh cookie's flags; refresh-token rotation within one session (body and cookie
//! transport, the `Origin` rule, the body winning over the cookie); concurrent refreshes (one
//! wins, the other 409, the session lives); reuse after the 10 s grace killing the whole
//! session and being audited; refresh tokens refused as access tokens, expired and garbage
//! ones refused; logout by access or refresh token (cookie cleared, tokens and instance tokens
//! dead within 5 s, the session's websocket closed 4003 while another session's stays open);
//! `/me/sessions` listing and revocation (another user's id → 404); `/me/password` (wrong
//! current password counts toward lockout, the policy, other sessions revoked); the admin
//! password endpoint; login lockout per (email, IP) and per IP; and the anonymous and sign-in
//! rate limits with their headers.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use whatpro_hub::db;
use whatpro_hub::error::ApiError;

use crate::harness::*;

/// The browser origin allowed by the development configuration.
const ALLOWED_ORIGIN: &str = "http://localhost:3000";
/// A password that satisfies the policy, used as a "new" password.
const NEW_PASSWORD: &str = "ochre lantern drifts north";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A test app whose per-IP sign-in limit does not interfere with tests that sign in often.
async fn start() -> TestApp {
    TestApp::start_with(|c| c.rate_limit_login_per_min = 1000).await
}

/// The decoded payload (claims) of a JWT, without verifying it.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("payload is base64url");
    serde_json::from_slice(&bytes).expect("payload is JSON")
}

/// The `sid` claim of an access token.
fn sid_of(token: &str) -> String {
    claims_of(token)["sid"]
        .as_str()
        .expect("sid claim")
        .to_owned()
}

/// The `refresh_token` of a sign-in body.
fn refresh_of(body: &Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

/// Whether `token` is `wpr_` + 43 base62 characters.
fn is_refresh_token_shape(token: &str) -> bool {
    token.len() == 47
        && token.starts_with("wpr_")
        && token[4..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// SHA-256 of `text`, lower-case hex.
fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A header as text.
fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A header parsed as a number.
fn header_num(response: &reqwest::Response, name: &str) -> Option<u64> {
    header(response, name).and_then(|v| v.trim().parse().ok())
}

/// The `Set-Cookie` header that sets `wp_refresh`, if any.
fn refresh_set_cookie(response: &reqwest::Response) -> Option<String> {
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.starts_with("wp_refresh="))
        .map(str::to_owned)
        .collect();
    assert!(cookies.len() <= 1, "one wp_refresh cookie: {cookies:?}");
    cookies.into_iter().next()
}

/// A parsed `Set-Cookie`: value and lower-cased attribute names with their values.
struct SetCookie {
    value: String,
    attributes: Vec<(String, String)>,
}

impl SetCookie {
    fn parse(text: &str) -> Self {
        let mut parts = text.split(';').map(str::trim);
        let first = parts.next().expect("name=value");
        let value = first
            .strip_prefix("wp_refresh=")
            .expect("wp_refresh cookie")
            .trim_matches('"')
            .to_owned();
        let attributes = parts
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_owned()),
                None => (p.to_ascii_lowercase(), String::new()),
            })
            .collect();
        SetCookie { value, attributes }
    }

    fn has(&self, name: &str) -> bool {
        self.attributes.iter().any(|(k, _)| k == name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `POST /api/v1/auth/login`, optionally from a forwarded client IP and with a user agent.
async fn sign_in(
    app: &TestApp,
    email: &str,
    password: &str,
    client_ip: Option<&str>,
    user_agent: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }));
    if let Some(ip) = client_ip {
        request = request.header("x-forwarded-for", ip);
    }
    if let Some(ua) = user_agent {
        request = request.header("user-agent", ua);
    }
    request.send().await.expect("login request")
}

/// `POST /api/v1/auth/refresh` with the token in the body.
async fn refresh_body(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .expect("refresh request")
}

/// `POST /api/v1/auth/refresh` with the token in the cookie and an optional `Origin`.
async fn refresh_cookie(app: &TestApp, token: &str, origin: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .header("cookie", format!("wp_refresh={token}"));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.expect("refresh request")
}

/// Refreshes with the body and expects 200; returns the body.
async fn refreshed(app: &TestApp, token: &str) -> Value {
    let response = refresh_body(app, token).await;
    assert_eq!(response.status(), 200, "refresh");
    response.json().await.expect("refresh body")
}

/// `GET /api/v1/me` with `Bearer <token>`.
async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/v1/me")
}

/// The status of `GET /api/v1/me` with `token`.
async fn me_status(app: &TestApp, token: &str) -> u16 {
    me(app, token).await.status().as_u16()
}

/// Polls `/api/v1/me` until the token is refused (401 `INVALID_TOKEN`); panics unless that
/// happens within `within`. Returns how long it took.
async fn refused_within(app: &TestApp, token: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let response = me(app, token).await;
        match response.status().as_u16() {
            200 => {}
            401 => {
                assert_error(response, 401, "INVALID_TOKEN").await;
                return started.elapsed();
            }
            other => panic!("unexpected status {other} while waiting for the token to die"),
        }
        assert!(
            started.elapsed() < within,
            "the access token still works after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh login of `email` with `password`: (access token, refresh token, sid).
async fn session(app: &TestApp, email: &str, password: &str) -> (String, String, String) {
    let body = app.login(email, password).await;
    let token = token_of(&body);
    let sid = sid_of(&token);
    (token, refresh_of(&body), sid)
}

/// An account "Acme" with one agent; returns (account id, user id, email).
async fn seeded(app: &TestApp) -> (Uuid, Uuid, &'static str) {
    let email = "ana.silva@acme.test";
    let account = app.seed_account("Acme").await;
    let user = app.seed_user(account, email, "agent").await;
    (account, user, email)
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs a `SELECT count(*) AS n …` in the platform scope.
async fn count(app: &TestApp, sql: String) -> i64 {
    db::platform_tx(&app.server.state.db, db::PlatformScope::system(), |conn| {
        Box::pin(async move {
            Ok::<_, ApiError>(diesel::sql_query(sql).get_result::<Count>(conn).await?.n)
        })
    })
    .await
    .expect("count query")
}

/// Audit rows with `action` about `resource_id`.
async fn audit_rows(app: &TestApp, action: &str, resource_id: &str) -> i64 {
    count(
        app,
        format!(
            "SELECT count(*) AS n FROM audit_log WHERE action = '{action}' AND resource_id = '{resource_id}'"
        ),
    )
    .await
}

/// Audit rows with `action`.
async fn audit_rows_any(app: &TestApp, action: &str) -> i64 {
    count(
        app,
        format!("SELECT count(*) AS n FROM audit_log WHERE action = '{action}'"),
    )
    .await
}

#[derive(diesel::QueryableByName, Debug)]
struct SessionRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    revoked_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    revoke_reason: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
}

/// The `sessions` row `sid`.
async fn session_row(app: &TestApp, sid: &str) -> SessionRow {
    let sql = format!(
        "SELECT kind, revoked_at, revoke_reason, created_at, expires_at FROM sessions WHERE id = '{sid}'"
    );
    db::platform_tx(&app.server.state.db, db::PlatformScope::system(), |conn| {
        Box::pin(async move { Ok::<_, ApiError>(diesel::sql_query(sql).get_result(conn).await?) })
    })
    .await
    .expect("session row")
}

#[derive(diesel::QueryableByName, Debug)]
struct RefreshRow {
    #[diesel(sql_type = Text)]
    hash: String,
    #[diesel(sql_type = Timestamptz)]
    issued_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    used_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    replaced_by: Option<String>,
    #[diesel(sql_type = Text)]
    id: String,
}

/// The refresh tokens of session `sid`, oldest first.
async fn refresh_rows(app: &TestApp, sid: &str) -> Vec<RefreshRow> {
    let sql = format!(
        "SELECT encode(token_hash, 'hex') AS hash, issued_at, expires_at, used_at, \
         replaced_by::text AS replaced_by, id::text AS id \
         FROM refresh_tokens WHERE session_id = '{sid}' ORDER BY issued_at, id"
    );
    db::platform_tx(&app.server.state.db, db::PlatformScope::system(), |conn| {
        Box::pin(async move { Ok::<_, ApiError>(diesel::sql_query(sql).load(conn).await?) })
    })
    .await
    .expect("refresh token rows")
}

/// Sends a ping on a websocket and expects the pong.
async fn assert_ws_alive(ws: &mut Ws) {
    send_json(ws, json!({"op": "ping", "t": 1})).await;
    assert_eq!(next_json(ws).await, json!({"event": "pong", "t": 1}));
}

/// `GET /api/v1/me/sessions` items.
async fn my_sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app
        .http
        .get(app.url("/api/v1/me/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /me/sessions");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("sessions body");
    body["items"].as_array().expect("items").clone()
}

/// `POST /api/v1/me/password`.
async fn change_password(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(token)
        .json(&json!({ "current_password": current, "new_password": new }))
        .send()
        .await
        .expect("POST /me/password")
}

/// Asserts a 400 `VALIDATION_ERROR` that names `new_password`.
async fn assert_names_new_password(response: reqwest::Response, what: &str) {
    let body = assert_error(response, 400, "VALIDATION_ERROR").await;
    let fields = body["details"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: details.fields in {body}"));
    assert!(
        fields.iter().any(|f| f["field"] == "new_password"
            && f["message"].as_str().is_some_and(|m| !m.is_empty())),
        "{what}: {body}"
    );
}

// ---------------------------------------------------------------------------------------------
// Login answers and the refresh cookie
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn login_answers_a_refresh_token_and_sets_a_strict_http_only_cookie() {
    let app = start().await;
    let (account, user, email) = seeded(&app).await;
    let response = sign_in(&app, email, USER_PASSWORD, None, None).await;
    assert_eq!(response.status(), 200);
    let cookie = SetCookie::parse(&refresh_set_cookie(&response).expect("wp_refresh cookie"));
    let body: Value = response.json().await.unwrap();

    let refresh = refresh_of(&body);
    assert!(is_refresh_token_shape(&refresh), "{refresh}");
    assert_eq!(
        cookie.value, refresh,
        "the cookie carries the refresh token"
    );
    assert!(cookie.has("httponly"));
    assert_eq!(
        cookie.get("samesite").map(str::to_ascii_lowercase),
        Some("strict".into())
    );
    assert_eq!(cookie.get("path"), Some("/api/v1/auth"));
    assert!(!cookie.has("secure"), "no Secure on plain-HTTP dev");
    // 7 days, the refresh token's life.
    let max_age: i64 = cookie
        .get("max-age")
        .expect("Max-Age")
        .parse()
        .expect("numeric Max-Age");
    assert!((7 * 86400 - 60..=7 * 86400).contains(&max_age), "{max_age}");
    assert_eq!(body["user"]["id"], user.to_string());
    assert_eq!(body["user"]["account_id"], account.to_string());
    let token = token_of(&body);
    assert_ne!(token, refresh);

    // Stored as SHA-256 only, 7 days, inside a 30-day session.
    let sid = sid_of(&token);
    let rows = refresh_rows(&app, &sid).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].hash, sha256_hex(&refresh));
    assert!(rows[0].used_at.is_none());
    let life = rows[0].expires_at - rows[0].issued_at;
    assert!((life.num_seconds() - 7 * 86400).abs() <= 60, "{life:?}");
    let session = session_row(&app, &sid).await;
    assert_eq!(session.kind, "password");
    assert!(session.revoked_at.is_none());
    let session_life = session.expires_at - session.created_at;
    assert!(
        (session_life.num_seconds() - 30 * 86400).abs() <= 60,
        "{session_life:?}"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn refresh_cookie_is_secure_when_the_public_url_is_https() {
    let app = TestApp::start_with(|c| {
        c.public_url = "https://hub.example".parse().expect("url");
        c.rate_limit_login_per_min = 1000;
    })
    .await;
    let (_, _, email) = seeded(&app).await;
    let response = sign_in(&app, email, USER_PASSWORD, None, None).await;
    assert_eq!(response.status(), 200);
    let cookie = SetCookie::parse(&refresh_set_cookie(&response).expect("wp_refresh cookie"));
    assert!(
        cookie.has("secure"),
        "Secure when the hub is served over https"
    );
    assert!(cookie.has("httponly"));
    assert_eq!(
        cookie.get("samesite").map(str::to_ascii_lowercase),
        Some("strict".into())
    );
    assert_eq!(cookie.get("path"), Some("/api/v1/auth"));
    let body: Value = response.json().await.unwrap();

    // The rotated cookie keeps the flags.
    let response = refresh_body(&app, &refresh_of(&body)).await;
    assert_eq!(response.status(), 200);
    let cookie = SetCookie::parse(&refresh_set_cookie(&response).expect("rotated cookie"));
    assert!(cookie.has("secure") && cookie.has("httponly"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(cookie.value, refresh_of(&body));

    // So does the clearing cookie of a logout.
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(token_of(&body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cookie = SetCookie::parse(&refresh_set_cookie(&response).expect("clearing cookie"));
    assert!(cookie.has("secure") && cookie.has("httponly"));
    assert_eq!(cookie.get("max-age"), Some("0"));
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Refresh
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn refresh_with_the_body_rotates_within_the_same_session() {
    let app = start().await;
    let (account, user, email) = seeded(&app).await;
    let login = app.login(email, USER_PASSWORD).await;
    let (access0, refresh0) = (token_of(&login), refresh_of(&login));
    let sid = sid_of(&access0);

    let response = refresh_body(&app, &refresh0).await;
    assert_eq!(response.status(), 200);
    let cookie = SetCookie::parse(&refresh_set_cookie(&response).expect("rotated cookie"));
    let body: Value = response.json().await.unwrap();
    let (access1, refresh1) = (token_of(&body), refresh_of(&body));
    assert!(is_refresh_token_shape(&refresh1), "{refresh1}");
    assert_ne!(refresh1, refresh0, "a new refresh token");
    assert_ne!(access1, access0, "a new access token");
    assert_eq!(cookie.value, refresh1, "the cookie carries the new token");
    assert!(cookie.has("httponly"));
    assert_eq!(cookie.get("path"), Some("/api/v1/auth"));
    let (old, new) = (claims_of(&access0), claims_of(&access1));
    assert_eq!(new["sid"], old["sid"], "same session");
    assert_eq!(new["sub"], user.to_string());
    assert_eq!(new["account_id"], account.to_string());
    assert_eq!(new["typ"], "access");
    assert_ne!(new["jti"], old["jti"]);
    assert_eq!(body["user"]["id"], user.to_string());
    assert_eq!(body["user"]["email"], email);
    assert_eq!(body["user"]["account_name"], "Acme");
    let expires_at: DateTime<Utc> = body["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("RFC 3339");
    assert_eq!(expires_at.timestamp(), new["exp"].as_i64().unwrap());

    // The old access token still works; both live in the one session.
    assert_eq!(me_status(&app, &access0).await, 200);
    assert_eq!(me_status(&app, &access1).await, 200);

    // The old refresh token was marked used and points at its successor.
    let rows = refresh_rows(&app, &sid).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].hash, sha256_hex(&refresh0));
    assert!(rows[0].used_at.is_some());
    assert_eq!(rows[0].replaced_by.as_deref(), Some(rows[1].id.as_str()));
    assert_eq!(rows[1].hash, sha256_hex(&refresh1));
    assert!(rows[1].used_at.is_none());

    // Presenting the just-rotated token again (< 10 s) is a conflict, not theft.
    assert_error(refresh_body(&app, &refresh0).await, 409, "CONFLICT").await;
    assert!(session_row(&app, &sid).await.revoked_at.is_none());

    // The new refresh token works next time, still in the same session.
    let body = refreshed(&app, &refresh1).await;
    assert_eq!(sid_of(&token_of(&body)), sid);
    assert_ne!(refresh_of(&body), refresh1);
    assert_eq!(me_status(&app, &token_of(&body)).await, 200);
    app.stop().await;
}

#[actix_rt::test]
async fn refresh_tokens_never_outlive_their_session_and_refresh_touches_it() {
    let app = start().await;
    let (_, _, email) = seeded(&app).await;
    let (access, refresh, sid) = session(&app, email, USER_PASSWORD).await;
    let (witness, _, _) = session(&app, email, USER_PASSWORD).await;
    app.sql(&format!(
        "UPDATE sessions SET expires_at = now() + interval '1 hour' WHERE id = '{sid}'"
    ))
    .await;
    let seen = |items: Vec<Value>| {
        let item = items
            .into_iter()
            .find(|s| s["id"] == sid.as_str())
            .expect("the session is listed");
        let at: DateTime<Utc> = item["last_seen_at"].as_str().unwrap().parse().unwrap();
        at
    };
    let seen_before = seen(my_sessions(&app, &witness).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let response = refresh_body(&app, &refresh).await;
    assert_eq!(response.status(), 200);
    let cookie = SetCookie::parse(&refresh_set_cookie(&response).expect("rotated cookie"));
    let max_age: i64 = cookie.get("max-age").unwrap().parse().unwrap();
    assert!(
        (3600 - 60..=3600).contains(&max_age),
        "the cookie ends with the session: {max_age}"
    );
    let body: Value = response.json().await.unwrap();
    let newest = refresh_of(&body);
    let rows = refresh_rows(&app, &sid).await;
    let session = session_row(&app, &sid).await;
    let row = rows
        .iter()
        .find(|r| r.hash == sha256_hex(&newest))
        .expect("the new token's row");
    assert!(
        row.expires_at <= session.expires_at,
        "{:?} > {:?}",
        row.expires_at,
        session.expires_at
    );
    assert!(
        seen(my_sessions(&app, &witness).await) > seen_before,
        "last_seen_at moves"
    );
    assert_eq!(me_status(&app, &access).await, 200);

    // Past its hard end the session cannot be refreshed and is no longer listed.
    app.sql(&format!(
        "UPDATE sessions SET created_at = now() - interval '31 days', \
         expires_at = now() - interval '1 minute' WHERE id = '{sid}'"
    ))
    .await;
    let response = refresh_body(&app, &newest).await;
    assert_eq!(response.status(), 401);
    assert!(my_sessions(&app, &witness)
        .await
        .iter()
        .all(|s| s["id"] != sid.as_str()));
    app.stop().await;
}

#[actix_rt::test]
async fn cookie_refresh_needs_an_allowed_origin_and_the_body_wins_over_the_cookie() {
    let app = start().await;
    let (_, _, email) = seeded(&app).await;
    let (_, refresh_a, sid_a) = session(&app, email, USER_PASSWORD).await;
    let (_, refresh_b, sid_b) = session(&app, email, USER_PASSWORD).await;

    // Cookie with an allowed Origin.
    let response = refresh_cookie(&app, &refresh_a, Some(ALLOWED_ORIGIN)).await;
    assert_eq!(response.status(), 200);
    let cookie = SetCookie::parse(&refresh_set_cookie(&response).expect("rotated cookie"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(sid_of(&token_of(&body)), sid_a);
    let refresh_a1 = refresh_of(&body);
    assert_eq!(cookie.value, refresh_a1);

    // Cookie without an Origin, or with a foreign one: refused, and the token is not spent.
    assert_error(
        refresh_cookie(&app, &refresh_a1, None).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(
        refresh_cookie(&app, &refresh_a1, Some("https://evil.example")).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(
        refresh_cookie(&app, &refresh_a1, Some("null")).await,
        403,
        "FORBIDDEN",
    )
    .await;
    let rows = refresh_rows(&app, &sid_a).await;
    assert!(
        rows.iter()
            .any(|r| r.hash == sha256_hex(&refresh_a1) && r.used_at.is_none()),
        "a refused cookie refresh does not consume the token"
    );

    // Body and cookie: the body's token is exchanged (no Origin needed), the cookie's is not.
    let response = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .header("cookie", format!("wp_refresh={refresh_a1}"))
        .json(&json!({ "refresh_token": refresh_b }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(sid_of(&token_of(&body)), sid_b, "the body wins");
    // The cookie's token is still current: it rotates normally now.
    let body = refreshed(&app, &refresh_a1).await;
    assert_eq!(sid_of(&token_of(&body)), sid_a);

    // A garbage body token is not rescued by a valid cookie.
    let (_, refresh_c, _) = session(&app, email, USER_PASSWORD).await;
    let response = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .header("cookie", format!("wp_refresh={refresh_c}"))
        .header("origin", ALLOWED_ORIGIN)
        .json(&json!({ "refresh_token": "wpr_not-a-real-token" }))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "INVALID_TOKEN").await;
    app.stop().await;
}

#[actix_rt::test]
async fn concurrent_refreshes_of_one_token_one_wins_the_other_gets_409() {
    let app = start().await;
    let (_, _, email) = seeded(&app).await;
    let (_, mut refresh, sid) = session(&app, email, USER_PASSWORD).await;
    for round in 0..3 {
        let (first, second) =
            tokio::join!(refresh_body(&app, &refresh), refresh_body(&app, &refresh));
        let mut outcomes = Vec::new();
        for response in [first, second] {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            outcomes.push((status, body));
        }
        outcomes.sort_by_key(|(status, _)| *status);
        let statuses: Vec<u16> = outcomes.iter().map(|(s, _)| *s).collect();
        assert_eq!(statuses, [200, 409], "round {round}: {outcomes:?}");
        assert_eq!(outcomes[1].1["code"], "CONFLICT", "round {round}");
        let winner = &outcomes[0].1;
        let access = token_of(winner);
        assert_eq!(sid_of(&access), sid, "round {round}");
        // The session lives on: the winner's access token works.
        assert_eq!(me_status(&app, &access).await, 200, "round {round}");
        assert!(session_row(&app, &sid).await.revoked_at.is_none());
        refresh = refresh_of(winner);
    }
    // And the last winner's refresh token works.
    let body = refreshed(&app, &refresh).await;
    assert_eq!(sid_of(&token_of(&body)), sid);
    // One token per successful exchange plus the first: exactly one successor per round.
    assert_eq!(refresh_rows(&app, &sid).await.len(), 5);
    app.stop().await;
}

#[actix_rt::test]
async fn reuse_after_the_grace_window_revokes_the_whole_session_and_is_audited() {
    let app = start().await;
    let (_, _, email) = seeded(&app).await;
    let (access0, refresh0, sid) = session(&app, email, USER_PASSWORD).await;
    let (other_access, _, other_sid) = session(&app, email, USER_PASSWORD).await;

    let body = refreshed(&app, &refresh0).await;
    let refresh1 = refresh_of(&body);
    tokio::time::sleep(Duration::from_secs(11)).await;

    // A legitimate rotation of the current token, so the newest token is younger than the
    // stolen one's use.
    let body = refreshed(&app, &refresh1).await;
    let (access2, refresh2) = (token_of(&body), refresh_of(&body));
    let mut ws = app.ws_ready(&access2).await;
    let mut other_ws = app.ws_ready(&other_access).await;

    // The old token comes back > 10 s after it was rotated: theft.
    assert_error(refresh_body(&app, &refresh0).await, 401, "INVALID_TOKEN").await;
    // The newest refresh token of that session is dead too.
    assert_error(refresh_body(&app, &refresh2).await, 401, "INVALID_TOKEN").await;
    // And every access token of the session, within seconds.
    refused_within(&app, &access2, Duration::from_secs(6)).await;
    refused_within(&app, &access0, Duration::from_secs(6)).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(6)).await, 4003);

    let row = session_row(&app, &sid).await;
    assert!(row.revoked_at.is_some());
    assert_eq!(row.revoke_reason.as_deref(), Some("refresh_reuse"));
    assert_eq!(
        audit_rows(&app, "auth.refresh.reuse_detected", &sid).await,
        1
    );

    // Another session of the same user is untouched.
    assert_eq!(me_status(&app, &other_access).await, 200);
    assert!(session_row(&app, &other_sid).await.revoked_at.is_none());
    assert_ws_alive(&mut other_ws).await;
    app.stop().await;
}

#[actix_rt::test]
async fn refresh_tokens_are_not_access_tokens_and_expired_or_garbage_ones_are_401() {
    let app = start().await;
    let (_, _, email) = seeded(&app).await;
    let (_, refresh, sid) = session(&app, email, USER_PASSWORD).await;

    // A refresh token as a bearer access token.
    assert_error(me(&app, &refresh).await, 401, "INVALID_TOKEN").await;
    let (status, _) = app
        .ws_refused(app.ws_url(&format!("/ws?token={refresh}")))
        .await;
    assert_eq!(status, 401, "a refresh token does not open a websocket");
    // (It was not spent by those attempts.)
    assert!(refresh_rows(&app, &sid).await[0].used_at.is_none());

    // Garbage and unknown refresh tokens.
    for garbage in [
        "garbage".to_owned(),
        format!("wpr_{}", "A".repeat(43)),
        format!("wpr_{}", "a".repeat(42)),
        // The real token with its last character changed.
        format!(
            "{}{}",
            &refresh[..46],
            if refresh.ends_with('x') { 'y' } else { 'x' }
        ),
    ] {
        assert_error(refresh_body(&app, &garbage).await, 401, "INVALID_TOKEN").await;
    }
    // No token at all.
    let response = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // An expired (never used) refresh token.
    app.sql(&format!(
        "UPDATE refresh_tokens SET issued_at = now() - interval '8 days', \
         expires_at = now() - interval '1 minute' WHERE session_id = '{sid}'"
    ))
    .await;
    assert_error(refresh_body(&app, &refresh).await, 401, "TOKEN_EXPIRED").await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn logout_with_the_access_token_ends_that_session_only() {
    let app = start().await;
    let (account, _, email) = seeded(&app).await;
    let (access, refresh, sid) = session(&app, email, USER_PASSWORD).await;
    let (other_access, other_refresh, other_sid) = session(&app, email, USER_PASSWORD).await;

    // An instance token issued by the session dies with it.
    let response = app
        .http
        .post(app.url(&format!("/api/v1/accounts/{account}/instance-tokens")))
        .bearer_auth(&access)
        .json(&json!({ "scopes": ["boards:read"], "ttl_minutes": 30 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let instance_token = response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .expect("instance token")
        .to_owned();
    let validate = |token: String| {
        let request = app
            .http
            .get(app.url("/api/v1/instance-tokens/validate"))
            .bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(validate(instance_token.clone()).await.status(), 200);

    let mut ws = app.ws_ready(&access).await;
    let mut other_ws = app.ws_ready(&other_access).await;

    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cookie = SetCookie::parse(&refresh_set_cookie(&response).expect("clearing cookie"));
    assert_eq!(cookie.value, "");
    assert_eq!(cookie.get("max-age"), Some("0"));
    assert_eq!(cookie.get("path"), Some("/api/v1/auth"));
    assert!(cookie.has("httponly"));

    assert_eq!(close_code(&mut ws, Duration::from_secs(6)).await, 4003);
    refused_within(&app, &access, Duration::from_secs(5)).await;
    assert_error(refresh_body(&app, &refresh).await, 401, "INVALID_TOKEN").await;
    assert_eq!(validate(instance_token).await.status(), 401);
    let (status, _) = app
        .ws_refused(app.ws_url(&format!("/ws?token={access}")))
        .await;
    assert_eq!(status, 401, "a logged-out token opens no websocket");
    let row = session_row(&app, &sid).await;
    assert!(row.revoked_at.is_some());
    assert_eq!(row.revoke_reason.as_deref(), Some("logout"));
    assert_eq!(audit_rows(&app, "auth.logout", &sid).await, 1);

    // The user's other session is untouched, past a revocation poll or two.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_ws_alive(&mut other_ws).await;
    assert_eq!(me_status(&app, &other_access).await, 200);
    assert!(session_row(&app, &other_sid).await.revoked_at.is_none());
    let body = refreshed(&app, &other_refresh).await;
    assert_eq!(sid_of(&token_of(&body)), other_sid);

    // A second logout with the dead token is refused.
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "INVALID_TOKEN").await;
    app.stop().await;
}

#[actix_rt::test]
async fn logout_with_only_the_refresh_token_ends_that_session() {
    let app = start().await;
    let (_, _, email) = seeded(&app).await;
    let (access, refresh, sid) = session(&app, email, USER_PASSWORD).await;
    let (other_access, _, _) = session(&app, email, USER_PASSWORD).await;

    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cookie = SetCookie::parse(&refresh_set_cookie(&response).expect("clearing cookie"));
    assert_eq!(cookie.get("max-age"), Some("0"));
    refused_within(&app, &access, Duration::from_secs(5)).await;
    assert_error(refresh_body(&app, &refresh).await, 401, "INVALID_TOKEN").await;
    assert!(session_row(&app, &sid).await.revoked_at.is_some());
    assert_eq!(me_status(&app, &other_access).await, 200);

    // The cookie transport works too, with an allowed Origin only.
    let (access, refresh, sid) = session(&app, email, USER_PASSWORD).await;
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", format!("wp_refresh={refresh}"))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(me_status(&app, &access).await, 200);
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", format!("wp_refresh={refresh}"))
        .header("origin", ALLOWED_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    refused_within(&app, &access, Duration::from_secs(5)).await;
    assert!(session_row(&app, &sid).await.revoked_at.is_some());

    // Nothing to identify a session.
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .json(&json!({ "refresh_token": format!("wpr_{}", "Z".repeat(43)) }))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "INVALID_TOKEN").await;
    app.stop().await;
}

/// A second node on the same database, sharing the first node's secrets (so access tokens of
/// one node verify on the other).
async fn second_node(app: &TestApp) -> TestApp {
    let config = app.server.state.config.clone();
    TestApp::start_on(app.db_url.clone(), move |c| {
        c.jwt_secret = config.jwt_secret.clone();
        c.jwt_issuer = config.jwt_issuer.clone();
        c.encryption_key = config.encryption_key;
        c.rate_limit_login_per_min = 1000;
    })
    .await
}

#[actix_rt::test]
async fn session_revocations_reach_another_node_within_5s() {
    let app = start().await;
    let (_, _, email) = seeded(&app).await;
    let node_b = second_node(&app).await;
    let (logout_access, _, _) = session(&app, email, USER_PASSWORD).await;
    let (revoked_access, _, revoked_sid) = session(&app, email, USER_PASSWORD).await;
    let (kept_access, _, _) = session(&app, email, USER_PASSWORD).await;

    // Node B accepts the tokens and holds websockets for them.
    for token in [&logout_access, &revoked_access, &kept_access] {
        assert_eq!(me_status(&node_b, token).await, 200);
    }
    let mut logout_ws = node_b.ws_ready(&logout_access).await;
    let mut revoked_ws = node_b.ws_ready(&revoked_access).await;
    let mut kept_ws = node_b.ws_ready(&kept_access).await;

    // Logout on node A: node B refuses the token and closes its websocket within 5 s.
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&logout_access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    refused_within(&node_b, &logout_access, Duration::from_secs(5)).await;
    assert_eq!(
        close_code(&mut logout_ws, Duration::from_secs(6)).await,
        4003
    );

    // A session revoked on node A, likewise.
    let response = app
        .http
        .delete(app.url(&format!("/api/v1/me/sessions/{revoked_sid}")))
        .bearer_auth(&kept_access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    refused_within(&node_b, &revoked_access, Duration::from_secs(5)).await;
    assert_eq!(
        close_code(&mut revoked_ws, Duration::from_secs(6)).await,
        4003
    );

    // The session that was not revoked goes on on both nodes.
    assert_ws_alive(&mut kept_ws).await;
    assert_eq!(me_status(&node_b, &kept_access).await, 200);
    assert_eq!(me_status(&app, &kept_access).await, 200);
    node_b.stop().await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// /me/sessions
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn me_sessions_lists_live_sessions_and_revokes_one_or_all_others() {
    let app = start().await;
    let (account, _, email) = seeded(&app).await;
    app.seed_user(account, "bruno@acme.test", "agent").await;
    let globex = app.seed_account("Globex").await;
    app.seed_user(globex, "carla@globex.test", "admin").await;

    let response = sign_in(&app, email, USER_PASSWORD, None, Some("iam-test/1.0")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let (access1, sid1) = (token_of(&body), sid_of(&token_of(&body)));
    let (access2, refresh2, sid2) = session(&app, email, USER_PASSWORD).await;
    let (access3, _, sid3) = session(&app, email, USER_PASSWORD).await;
    let (colleague, _, colleague_sid) = session(&app, "bruno@acme.test", USER_PASSWORD).await;
    let (stranger, _, stranger_sid) = session(&app, "carla@globex.test", USER_PASSWORD).await;

    let items = my_sessions(&app, &access1).await;
    let ids: HashSet<String> = items
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [sid1.clone(), sid2.clone(), sid3.clone()]
            .into_iter()
            .collect(),
        "only the caller's own sessions"
    );
    let current: Vec<&Value> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{items:?}");
    assert_eq!(current[0]["id"], sid1.as_str());
    assert!(items.iter().all(|s| s["current"].is_boolean()));
    for item in &items {
        assert_eq!(item["kind"], "password", "{item}");
        assert_eq!(item["ip"], "127.0.0.1", "{item}");
        assert!(item["impersonated_by"].is_null(), "{item}");
        let created: DateTime<Utc> = item["created_at"].as_str().unwrap().parse().unwrap();
        let expires: DateTime<Utc> = item["expires_at"].as_str().unwrap().parse().unwrap();
        assert!(item["last_seen_at"].as_str().is_some(), "{item}");
        assert!(((expires - created).num_seconds() - 30 * 86400).abs() <= 60);
    }
    assert_eq!(current[0]["user_agent"], "iam-test/1.0");
    // From another session, that one is current.
    let items = my_sessions(&app, &access2).await;
    let current: Vec<&Value> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], sid2.as_str());

    // Revoke one other session.
    let mut ws2 = app.ws_ready(&access2).await;
    let response = app
        .http
        .delete(app.url(&format!("/api/v1/me/sessions/{sid2}")))
        .bearer_auth(&access1)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    refused_within(&app, &access2, Duration::from_secs(5)).await;
    assert_eq!(close_code(&mut ws2, Duration::from_secs(6)).await, 4003);
    assert_error(refresh_body(&app, &refresh2).await, 401, "INVALID_TOKEN").await;
    let ids: HashSet<String> = my_sessions(&app, &access1)
        .await
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [sid1.clone(), sid3.clone()].into_iter().collect());

    // Another user's session (same account, another account) or an unknown id: 404, and the
    // session is untouched.
    for (target, token) in [
        (colleague_sid.as_str(), colleague.as_str()),
        (stranger_sid.as_str(), stranger.as_str()),
    ] {
        let response = app
            .http
            .delete(app.url(&format!("/api/v1/me/sessions/{target}")))
            .bearer_auth(&access1)
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "NOT_FOUND").await;
        assert!(session_row(&app, target).await.revoked_at.is_none());
        assert_eq!(me_status(&app, token).await, 200);
    }
    let response = app
        .http
        .delete(app.url(&format!("/api/v1/me/sessions/{}", Uuid::now_v7())))
        .bearer_auth(&access1)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NOT_FOUND").await;

    // Revoke every other session: only the current one survives.
    let (access4, _, _) = session(&app, email, USER_PASSWORD).await;
    let response = app
        .http
        .delete(app.url("/api/v1/me/sessions"))
        .bearer_auth(&access1)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    refused_within(&app, &access3, Duration::from_secs(5)).await;
    refused_within(&app, &access4, Duration::from_secs(5)).await;
    let items = my_sessions(&app, &access1).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], sid1.as_str());
    assert_eq!(items[0]["current"], true);
    assert_eq!(me_status(&app, &access1).await, 200);
    // Other users keep their sessions.
    assert_eq!(me_status(&app, &colleague).await, 200);
    assert_eq!(me_status(&app, &stranger).await, 200);
    assert!(audit_rows(&app, "session.revoked", &sid2).await >= 1);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// /me/password
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn password_change_with_a_wrong_current_password_is_403_and_counts_toward_lockout() {
    let app = start().await;
    let (_, _, email) = seeded(&app).await;
    let (access, _, _) = session(&app, email, USER_PASSWORD).await;

    let response = change_password(&app, &access, "not my password", NEW_PASSWORD).await;
    assert_error(response, 403, "FORBIDDEN").await;
    // Four more failures at login make five consecutive failures for (email, IP).
    for _ in 0..4 {
        let response = sign_in(&app, email, "not my password", None, None).await;
        assert_error(response, 401, "UNAUTHENTICATED").await;
    }
    let response = sign_in(&app, email, USER_PASSWORD, None, None).await;
    let retry = header_num(&response, "retry-after").expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_error(response, 429, "RATE_LIMITED").await;
    // The password endpoint is locked as well, even with the right current password.
    let response = change_password(&app, &access, USER_PASSWORD, NEW_PASSWORD).await;
    assert!(header_num(&response, "retry-after").is_some());
    assert_error(response, 429, "RATE_LIMITED").await;
    // A forwarded IP from an untrusted peer does not escape the lock.
    let response = sign_in(&app, email, USER_PASSWORD, Some("203.0.113.1"), None).await;
    assert_error(response, 429, "RATE_LIMITED").await;
    // The session itself is not affected.
    assert_eq!(me_status(&app, &access).await, 200);
    app.stop().await;
}

#[actix_rt::test]
async fn password_change_enforces_the_policy_and_names_new_password() {
    let app = start().await;
    let (_, _, email) = seeded(&app).await;
    let (access, _, _) = session(&app, email, USER_PASSWORD).await;
    let (other_access, _, _) = session(&app, email, USER_PASSWORD).await;

    let too_long = "a quiet river ".repeat(10);
    let too_long: String = too_long.chars().take(129).collect();
    let cases = [
        ("11 characters", "short words".to_owned()),
        ("129 characters", too_long),
        (
            "the email's local part",
            "my ana.silva secret phrase".to_owned(),
        ),
        (
            "the email's local part, other case",
            "my ANA.SILVA secret phrase".to_owned(),
        ),
        ("a common password", "password1234".to_owned()),
    ];
    assert_eq!(cases[0].1.chars().count(), 11);
    assert_eq!(cases[1].1.chars().count(), 129);
    for (what, candidate) in &cases {
        let response = change_password(&app, &access, USER_PASSWORD, candidate).await;
        assert_names_new_password(response, what).await;
    }
    // Nothing changed: the old password still signs in, no session was revoked.
    assert_eq!(me_status(&app, &other_access).await, 200);
    let response = sign_in(&app, email, USER_PASSWORD, None, None).await;
    assert_eq!(response.status(), 200);

    // The boundaries pass: exactly 12 and exactly 128 characters.
    let twelve = "zq7 vx2 mr9k";
    assert_eq!(twelve.chars().count(), 12);
    let response = change_password(&app, &access, USER_PASSWORD, twelve).await;
    assert_eq!(response.status(), 204);
    let long: String = "slow copper tides ".repeat(8).chars().take(128).collect();
    assert_eq!(long.chars().count(), 128);
    let response = change_password(&app, &access, twelve, &long).await;
    assert_eq!(response.status(), 204);
    assert_eq!(sign_in(&app, email, &long, None, None).await.status(), 200);
    app.stop().await;
}

#[actix_rt::test]
async fn password_change_succeeds_and_revokes_the_other_sessions_only() {
    let app = start().await;
    let (_, user, email) = seeded(&app).await;
    let (access, refresh, sid) = session(&app, email, USER_PASSWORD).await;
    let (other_access, other_refresh, other_sid) = session(&app, email, USER_PASSWORD).await;
    let mut other_ws = app.ws_ready(&other_access).await;

    let response = change_password(&app, &access, USER_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), 204);

    // Other sessions die.
    refused_within(&app, &other_access, Duration::from_secs(5)).await;
    assert_eq!(
        close_code(&mut other_ws, Duration::from_secs(6)).await,
        4003
    );
    assert_error(
        refresh_body(&app, &other_refresh).await,
        401,
        "INVALID_TOKEN",
    )
    .await;
    let row = session_row(&app, &other_sid).await;
    assert!(row.revoked_at.is_some());
    assert_eq!(row.revoke_reason.as_deref(), Some("password_changed"));

    // The current one keeps working, refresh included.
    assert_eq!(me_status(&app, &access).await, 200);
    assert!(session_row(&app, &sid).await.revoked_at.is_none());
    let body = refreshed(&app, &refresh).await;
    assert_eq!(sid_of(&token_of(&body)), sid);

    // The old password fails, the new one works.
    let response = sign_in(&app, email, USER_PASSWORD, None, None).await;
    assert_error(response, 401, "UNAUTHENTICATED").await;
    let response = sign_in(&app, email, NEW_PASSWORD, None, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        audit_rows(&app, "user.password_changed", &user.to_string()).await,
        1
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Admin password and policy at login
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn login_ignores_the_policy_but_the_admin_password_endpoint_applies_it() {
    let app = start().await;
    let (account, user, email) = seeded(&app).await;
    let admin_email = "boss@acme.test";
    app.seed_user(account, admin_email, "admin").await;
    let globex = app.seed_account("Globex").await;
    let stranger = app.seed_user(globex, "carla@globex.test", "admin").await;

    // An old password that violates today's policy still signs in.
    let weak = whatpro_hub::auth::password::hash("short").expect("hash");
    app.sql(&format!(
        "UPDATE users SET password_hash = '{weak}' WHERE id = '{user}'"
    ))
    .await;
    let (user_access, user_refresh, _) = session(&app, email, "short").await;
    let (admin_access, _, _) = session(&app, admin_email, USER_PASSWORD).await;
    let (stranger_access, _, _) = session(&app, "carla@globex.test", USER_PASSWORD).await;

    let set = |token: String, account: Uuid, target: Uuid, password: &str| {
        let request = app
            .http
            .post(app.url(&format!(
                "/api/v1/accounts/{account}/users/{target}/password"
            )))
            .bearer_auth(token)
            .json(&json!({ "new_password": password }));
        async move { request.send().await.unwrap() }
    };

    // The admin endpoint applies the policy.
    let response = set(admin_access.clone(), account, user, "short").await;
    assert_names_new_password(response, "short").await;
    let response = set(admin_access.clone(), account, user, "password1234").await;
    assert_names_new_password(response, "common").await;
    let response = set(admin_access.clone(), account, user, "ana.silva forever").await;
    assert_names_new_password(response, "local part").await;
    // The user is untouched by the refusals.
    assert_eq!(me_status(&app, &user_access).await, 200);

    // Not the agent's to do; not another account's admin's; not a user of another account.
    let response = set(user_access.clone(), account, user, NEW_PASSWORD).await;
    assert_error(response, 403, "FORBIDDEN").await;
    let response = set(stranger_access.clone(), account, user, NEW_PASSWORD).await;
    assert_error(response, 404, "NOT_FOUND").await;
    let response = set(admin_access.clone(), account, stranger, NEW_PASSWORD).await;
    assert_error(response, 404, "NOT_FOUND").await;
    let response = set(admin_access.clone(), globex, stranger, NEW_PASSWORD).await;
    assert_error(response, 404, "NOT_FOUND").await;
    assert_eq!(
        sign_in(&app, "carla@globex.test", USER_PASSWORD, None, None)
            .await
            .status(),
        200,
        "the stranger's password is unchanged"
    );
    assert_eq!(me_status(&app, &user_access).await, 200);

    // A good password: set, and every session of the user dies.
    let response = set(admin_access.clone(), account, user, NEW_PASSWORD).await;
    assert_eq!(response.status(), 204);
    refused_within(&app, &user_access, Duration::from_secs(5)).await;
    assert_error(
        refresh_body(&app, &user_refresh).await,
        401,
        "INVALID_TOKEN",
    )
    .await;
    let response = sign_in(&app, email, "short", None, None).await;
    assert_error(response, 401, "UNAUTHENTICATED").await;
    assert_eq!(
        sign_in(&app, email, NEW_PASSWORD, None, None)
            .await
            .status(),
        200
    );
    // The admin's own session goes on.
    assert_eq!(me_status(&app, &admin_access).await, 200);
    assert_eq!(
        audit_rows(&app, "user.password_changed", &user.to_string()).await,
        1
    );
    app.stop().await;
}

#[actix_rt::test]
async fn an_admin_revokes_all_of_a_users_sessions() {
    let app = start().await;
    let (account, user, email) = seeded(&app).await;
    app.seed_user(account, "boss@acme.test", "admin").await;
    app.seed_user(account, "sue@acme.test", "supervisor").await;
    let globex = app.seed_account("Globex").await;
    app.seed_user(globex, "carla@globex.test", "admin").await;
    let (user_a, user_refresh, sid_a) = session(&app, email, USER_PASSWORD).await;
    let (user_b, _, sid_b) = session(&app, email, USER_PASSWORD).await;
    let (admin, _, _) = session(&app, "boss@acme.test", USER_PASSWORD).await;
    let (supervisor, _, _) = session(&app, "sue@acme.test", USER_PASSWORD).await;
    let (stranger, _, _) = session(&app, "carla@globex.test", USER_PASSWORD).await;
    let url = app.url(&format!("/api/v1/accounts/{account}/users/{user}/sessions"));
    let revoke = |token: String| {
        let request = app.http.delete(url.clone()).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };

    assert_error(revoke(supervisor).await, 403, "FORBIDDEN").await;
    assert_error(revoke(user_b.clone()).await, 403, "FORBIDDEN").await;
    assert_error(revoke(stranger).await, 404, "NOT_FOUND").await;
    assert_eq!(me_status(&app, &user_a).await, 200);
    assert_eq!(me_status(&app, &user_b).await, 200);

    let mut ws = app.ws_ready(&user_a).await;
    let response = revoke(admin.clone()).await;
    assert_eq!(response.status(), 204);
    refused_within(&app, &user_a, Duration::from_secs(5)).await;
    refused_within(&app, &user_b, Duration::from_secs(5)).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(6)).await, 4003);
    assert_error(
        refresh_body(&app, &user_refresh).await,
        401,
        "INVALID_TOKEN",
    )
    .await;
    for sid in [&sid_a, &sid_b] {
        assert_eq!(
            session_row(&app, sid).await.revoke_reason.as_deref(),
            Some("admin_revoked")
        );
        assert_eq!(audit_rows(&app, "session.revoked", sid).await, 1);
    }
    // The admin goes on; the user can sign in again.
    assert_eq!(me_status(&app, &admin).await, 200);
    assert_eq!(
        sign_in(&app, email, USER_PASSWORD, None, None)
            .await
            .status(),
        200
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Login lockout
// ---------------------------------------------------------------------------------------------

/// A test app that trusts the loopback peer as a proxy, so tests choose the client IP with
/// `X-Forwarded-For`, and whose sign-in rate limits stay out of the way.
async fn start_behind_proxy() -> TestApp {
    TestApp::start_with(|c| {
        c.rate_limit_login_per_min = 1000;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
}

#[actix_rt::test]
async fn five_failures_lock_the_email_and_ip_pair_even_for_the_right_password() {
    let app = start_behind_proxy().await;
    let (account, _, email) = seeded(&app).await;
    let colleague = "bruno@acme.test";
    app.seed_user(account, colleague, "agent").await;
    let (ip_a, ip_b) = ("198.51.100.1", "198.51.100.2");

    for n in 0..5 {
        let response = sign_in(&app, email, "wrong password", Some(ip_a), None).await;
        assert_eq!(response.status(), 401, "failure {n}");
    }
    // Locked: the right password is refused without being checked.
    let response = sign_in(&app, email, USER_PASSWORD, Some(ip_a), None).await;
    let retry = header_num(&response, "retry-after").expect("Retry-After");
    assert!((1..=60).contains(&retry), "first lock is a minute: {retry}");
    assert_error(response, 429, "RATE_LIMITED").await;
    // Case does not dodge the lock.
    let response = sign_in(&app, &email.to_uppercase(), USER_PASSWORD, Some(ip_a), None).await;
    assert_error(response, 429, "RATE_LIMITED").await;
    assert!(audit_rows_any(&app, "auth.login.locked").await >= 1);

    // The same email from another client IP signs in.
    let response = sign_in(&app, email, USER_PASSWORD, Some(ip_b), None).await;
    assert_eq!(response.status(), 200);
    // Another email from the locked IP signs in.
    let response = sign_in(&app, colleague, USER_PASSWORD, Some(ip_a), None).await;
    assert_eq!(response.status(), 200);
    // Neither success unlocked the pair.
    let response = sign_in(&app, email, USER_PASSWORD, Some(ip_a), None).await;
    assert_error(response, 429, "RATE_LIMITED").await;
    app.stop().await;
}

#[actix_rt::test]
async fn concurrent_wrong_passwords_get_no_more_than_five_checks_before_the_lock() {
    let app = start_behind_proxy().await;
    let (_, _, email) = seeded(&app).await;
    let ip = Some("198.51.100.30");
    // Ten guesses at once for one (email, IP): the lock after five failures must hold, so at
    // most five passwords are actually checked (401); the rest are refused unchecked (429).
    let app_ref = &app;
    let attempts = (0..10).map(|n| {
        let password = format!("wrong guess {n}");
        async move { sign_in(app_ref, email, &password, ip, None).await }
    });
    let responses = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked <= 5,
        "{checked} of 10 concurrent guesses were checked (statuses {statuses:?})"
    );
    let response = sign_in(&app, email, USER_PASSWORD, ip, None).await;
    assert_error(response, 429, "RATE_LIMITED").await;
    app.stop().await;
}

#[actix_rt::test]
async fn a_successful_login_resets_the_consecutive_failures() {
    let app = start_behind_proxy().await;
    let (_, _, email) = seeded(&app).await;
    let ip = Some("198.51.100.7");
    for _ in 0..4 {
        assert_eq!(sign_in(&app, email, "wrong", ip, None).await.status(), 401);
    }
    assert_eq!(
        sign_in(&app, email, USER_PASSWORD, ip, None).await.status(),
        200
    );
    // Four more: eight failures in all, but only four consecutive.
    for _ in 0..4 {
        assert_eq!(sign_in(&app, email, "wrong", ip, None).await.status(), 401);
    }
    assert_eq!(
        sign_in(&app, email, USER_PASSWORD, ip, None).await.status(),
        200
    );
    // Five consecutive failures lock.
    for _ in 0..5 {
        assert_eq!(sign_in(&app, email, "wrong", ip, None).await.status(), 401);
    }
    let response = sign_in(&app, email, USER_PASSWORD, ip, None).await;
    assert_error(response, 429, "RATE_LIMITED").await;
    app.stop().await;
}

#[actix_rt::test]
async fn fifty_failures_from_one_ip_lock_that_ip_for_every_email() {
    let app = start_behind_proxy().await;
    let (_, _, email) = seeded(&app).await;
    let (ip_a, ip_b) = (Some("198.51.100.20"), Some("198.51.100.21"));
    for n in 0..50 {
        let response = sign_in(&app, &format!("nobody{n}@acme.test"), "wrong", ip_a, None).await;
        assert_eq!(response.status(), 401, "attempt {n}");
    }
    let response = sign_in(&app, email, USER_PASSWORD, ip_a, None).await;
    let retry = header_num(&response, "retry-after").expect("Retry-After");
    assert!(
        (3000..=3600).contains(&retry),
        "locked until the oldest failure is an hour old: {retry}"
    );
    assert_error(response, 429, "RATE_LIMITED").await;
    // Another IP is not affected.
    assert_eq!(
        sign_in(&app, email, USER_PASSWORD, ip_b, None)
            .await
            .status(),
        200
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn anonymous_requests_are_limited_per_client_ip_and_spoofed_forwarding_is_ignored() {
    let app = TestApp::start_with(|c| c.rate_limit_anon_per_min = 5).await;
    let (_, _, email) = seeded(&app).await;
    let paths = [
        "/api/v1/openapi.json",
        "/api/v1/no-such-route",
        "/api/v1/openapi.json",
        "/api/v1/no-such-route",
        "/api/v1/openapi.json",
    ];
    for (n, path) in paths.iter().enumerate() {
        let mut request = app.http.get(app.url(path));
        if n >= 2 {
            // From an untrusted peer the header is ignored: same bucket.
            request = request.header("x-forwarded-for", format!("203.0.113.{n}"));
        }
        let response = request.send().await.unwrap();
        assert_ne!(response.status(), 429, "request {n}");
        assert_eq!(header_num(&response, "x-ratelimit-limit"), Some(5), "{n}");
        assert_eq!(
            header_num(&response, "x-ratelimit-remaining"),
            Some(4 - n as u64),
            "request {n} counts down"
        );
        assert!(header_num(&response, "x-ratelimit-reset").is_some(), "{n}");
    }
    let response = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .header("x-forwarded-for", "203.0.113.99")
        .send()
        .await
        .unwrap();
    assert_eq!(header_num(&response, "x-ratelimit-limit"), Some(5));
    assert_eq!(header_num(&response, "x-ratelimit-remaining"), Some(0));
    assert!(header_num(&response, "x-ratelimit-reset").is_some());
    let retry = header_num(&response, "retry-after").expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_error(response, 429, "RATE_LIMITED").await;

    // Health is never limited.
    for _ in 0..10 {
        let response = app.http.get(app.url("/health/live")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(header(&response, "x-ratelimit-limit").is_none());
    }
    // Nor are readiness, metrics (loopback) and CORS preflights.
    for path in ["/health/ready", "/metrics"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
        .header("origin", ALLOWED_ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "a preflight is not limited");
    // A signed-in user has their own bucket.
    let token = token_of(&app.login(email, USER_PASSWORD).await);
    let response = me(&app, &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header_num(&response, "x-ratelimit-limit"),
        Some(u64::from(app.server.state.config.rate_limit_user_per_min))
    );
    // The anonymous bucket is still empty.
    let response = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_error(response, 429, "RATE_LIMITED").await;
    app.stop().await;
}

#[actix_rt::test]
async fn a_trusted_proxy_forwarded_client_ip_gets_its_own_bucket() {
    let app = TestApp::start_with(|c| {
        c.rate_limit_anon_per_min = 2;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let get = |ip: Option<&'static str>| {
        let mut request = app.http.get(app.url("/api/v1/openapi.json"));
        if let Some(ip) = ip {
            request = request.header("x-forwarded-for", ip);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(Some("198.51.100.1")).await, 200);
    assert_eq!(get(Some("198.51.100.1")).await, 200);
    assert_eq!(get(Some("198.51.100.1")).await, 429);
    assert_eq!(get(Some("198.51.100.2")).await, 200);
    // The right-most untrusted entry is the client.
    assert_eq!(get(Some("198.51.100.2, 198.51.100.1")).await, 429);
    assert_eq!(get(None).await, 200, "the proxy itself is another client");
    app.stop().await;
}

#[actix_rt::test]
async fn sign_in_routes_are_limited_per_client_ip_at_the_login_rate() {
    let app = TestApp::start_with(|c| c.rate_limit_login_per_min = 3).await;
    let (_, _, email) = seeded(&app).await;
    for n in 0..3 {
        let response = sign_in(&app, &format!("nobody{n}@acme.test"), "wrong", None, None).await;
        assert_eq!(header_num(&response, "x-ratelimit-limit"), Some(3));
        assert_eq!(
            header_num(&response, "x-ratelimit-remaining"),
            Some(2 - n as u64)
        );
        assert_error(response, 401, "UNAUTHENTICATED").await;
    }
    // The 4th attempt, even with the right password.
    let response = sign_in(&app, email, USER_PASSWORD, None, None).await;
    assert_eq!(header_num(&response, "x-ratelimit-limit"), Some(3));
    assert_eq!(header_num(&response, "x-ratelimit-remaining"), Some(0));
    assert!(header_num(&response, "retry-after").is_some());
    assert_error(response, 429, "RATE_LIMITED").await;
    // Refresh shares the sign-in bucket.
    let response = refresh_body(&app, &format!("wpr_{}", "Q".repeat(43))).await;
    assert_error(response, 429, "RATE_LIMITED").await;
    // Other anonymous routes are not in it.
    let response = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[actix_rt::test]
async fn sign_in_is_limited_per_submitted_email_across_client_ips() {
    let app = TestApp::start_with(|c| {
        c.rate_limit_login_per_min = 3;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let (account, _, email) = seeded(&app).await;
    app.seed_user(account, "bruno@acme.test", "agent").await;
    for n in 0..3 {
        let ip = format!("198.51.100.{}", 10 + n);
        let response = sign_in(&app, email, "wrong", Some(&ip), None).await;
        assert_eq!(response.status(), 401, "attempt {n}");
    }
    // A 4th attempt for that email from a fresh IP, with the right password.
    let response = sign_in(&app, email, USER_PASSWORD, Some("198.51.100.50"), None).await;
    assert!(header_num(&response, "retry-after").is_some());
    assert_error(response, 429, "RATE_LIMITED").await;
    // The email in another case is the same bucket.
    let response = sign_in(
        &app,
        &email.to_uppercase(),
        USER_PASSWORD,
        Some("198.51.100.51"),
        None,
    )
    .await;
    assert_error(response, 429, "RATE_LIMITED").await;
    // Another email from that IP is fine.
    let response = sign_in(
        &app,
        "bruno@acme.test",
        USER_PASSWORD,
        Some("198.51.100.50"),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    app.stop().await;
}
