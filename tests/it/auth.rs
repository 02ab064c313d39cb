//! Password login and access tokens (iam.md §4.1, §4.4).
//!
//! Login answers, the generic 401 for a wrong password or an unknown email, the ambiguous
//! email flow (409 only after a correct password), inactive users and suspended accounts,
//! body validation, the session row a login writes; and every way an access token must be
//! refused by `GET /api/v1/me`: missing, wrong scheme, garbage, expired (and the 30 s leeway),
//! tampered, `alg: none`, a non-access `typ`, a foreign issuer, a revoked session. Forged
//! tokens are signed with the app's real secret, and a correctly forged token is shown to pass,
//! so each refusal is caused by the one claim that was changed.

use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

/// base64url without padding, as JWT segments are encoded.
fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// The decoded payload (claims) of a JWT, without verifying it.
fn claims_of(token: &str) -> Value {
    let payload = token
        .split('.')
        .nth(1)
        .expect("a JWT has a payload segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("payload is base64url");
    serde_json::from_slice(&bytes).expect("payload is JSON")
}

/// Signs `claims` with HS256 and the app's real `JWT_SECRET`.
fn sign(app: &TestApp, claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&app.server.state.config.jwt_secret),
    )
    .expect("sign a token")
}

/// A full access-claim set for the session of `login_token`, with `exp` at `now + exp_in`
/// seconds (negative: in the past).
fn claims_for(app: &TestApp, login_token: &str, exp_in: i64) -> Value {
    let real = claims_of(login_token);
    let now = Utc::now().timestamp();
    json!({
        "sub": real["sub"],
        "sid": real["sid"],
        "account_id": real["account_id"],
        "role": real["role"],
        "jti": Uuid::now_v7(),
        "iat": now - 900,
        "exp": now + exp_in,
        "iss": app.server.state.config.jwt_issuer,
        "typ": "access",
    })
}

/// `GET /api/v1/me` with an optional raw `Authorization` header value.
async fn me(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(app.url("/api/v1/me"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.expect("GET /api/v1/me")
}

/// `GET /api/v1/me` with `Bearer <token>`.
async fn me_with(app: &TestApp, token: &str) -> reqwest::Response {
    me(app, Some(&format!("Bearer {token}"))).await
}

/// `POST /api/v1/auth/login` with an arbitrary JSON body.
async fn post_login(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .expect("login request")
}

/// Whether `key` appears as an object key anywhere in `value`.
fn has_key_anywhere(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k == key || has_key_anywhere(v, key)),
        Value::Array(items) => items.iter().any(|v| has_key_anywhere(v, key)),
        _ => false,
    }
}

/// An account with one agent; returns (account id, user id, email).
async fn seeded(app: &TestApp) -> (Uuid, Uuid, &'static str) {
    let email = "ana@acme.test";
    let account = app.seed_account("Acme").await;
    let user = app.seed_user(account, email, "agent").await;
    (account, user, email)
}

#[derive(diesel::QueryableByName, Debug)]
struct SessionRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    account_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    ip: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    revoked_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
}

#[derive(diesel::QueryableByName, Debug)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The sessions of `user_id`, oldest first.
async fn sessions_of(app: &TestApp, user_id: Uuid) -> Vec<SessionRow> {
    let mut conn = AsyncPgConnection::establish(&app.db_url)
        .await
        .expect("owner connection");
    diesel::sql_query(
        "SELECT kind, account_id::text AS account_id, ip, revoked_at, expires_at \
         FROM sessions WHERE user_id = $1 ORDER BY created_at",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .load(&mut conn)
    .await
    .expect("select sessions")
}

/// Every session row of the database.
async fn session_count(app: &TestApp) -> i64 {
    let mut conn = AsyncPgConnection::establish(&app.db_url)
        .await
        .expect("owner connection");
    diesel::sql_query("SELECT count(*) AS n FROM sessions")
        .get_result::<Count>(&mut conn)
        .await
        .expect("count sessions")
        .n
}

#[actix_rt::test]
async fn login_answers_token_and_user_and_me_returns_the_profile() {
    let app = TestApp::start().await;
    let (account, user, email) = seeded(&app).await;

    let response = post_login(&app, json!({ "email": email, "password": USER_PASSWORD })).await;
    assert_eq!(response.status(), 200);
    let login: Value = response.json().await.unwrap();
    let token = token_of(&login);
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let expires_at = login["expires_at"].as_str().expect("expires_at string");
    assert!(
        expires_at.ends_with('Z'),
        "RFC 3339 in UTC with Z: {expires_at}"
    );
    let expires = DateTime::parse_from_rfc3339(expires_at).expect("RFC 3339");
    let ahead = expires.with_timezone(&Utc) - Utc::now();
    assert!(
        ahead > chrono::Duration::minutes(14) && ahead <= chrono::Duration::minutes(15),
        "expires about 15 min ahead, got {ahead}"
    );
    let claims = claims_of(&token);
    assert_eq!(
        claims["exp"].as_i64(),
        Some(expires.timestamp()),
        "{claims}"
    );
    assert_eq!(claims["typ"], "access");
    assert_eq!(claims["iss"], "whatpro-hub");
    assert_eq!(claims["sub"], user.to_string());

    assert_eq!(
        login["user"],
        json!({
            "id": user,
            "email": email,
            "name": "Seeded User",
            "role": "agent",
            "account_id": account,
            "account_name": "Acme",
        })
    );
    assert!(!has_key_anywhere(&login, "password_hash"), "{login}");

    let response = me_with(&app, &token).await;
    assert_eq!(response.status(), 200);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile["id"], user.to_string());
    assert_eq!(profile["email"], email);
    assert_eq!(profile["role"], "agent");
    assert_eq!(profile["account_id"], account.to_string());
    assert_eq!(profile["account"], json!({ "id": account, "name": "Acme" }));
    assert!(!has_key_anywhere(&profile, "password_hash"), "{profile}");

    // Email is case-insensitive.
    let response = post_login(
        &app,
        json!({ "email": email.to_uppercase(), "password": USER_PASSWORD }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["user"]["id"], user.to_string());
    app.stop().await;
}

#[actix_rt::test]
async fn wrong_password_and_unknown_email_give_identical_401s() {
    let app = TestApp::start().await;
    let (_, _, email) = seeded(&app).await;

    let wrong = post_login(
        &app,
        json!({ "email": email, "password": "not the right password" }),
    )
    .await;
    let mut wrong = assert_error(wrong, 401, "UNAUTHENTICATED").await;
    let unknown = post_login(
        &app,
        json!({ "email": "nobody@acme.test", "password": "not the right password" }),
    )
    .await;
    let mut unknown = assert_error(unknown, 401, "UNAUTHENTICATED").await;

    wrong.as_object_mut().unwrap().remove("request_id");
    unknown.as_object_mut().unwrap().remove("request_id");
    assert_eq!(
        wrong, unknown,
        "the two refusals must not be distinguishable"
    );
    assert_eq!(
        session_count(&app).await,
        0,
        "a failed login writes no session"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn me_without_a_usable_credential_is_401() {
    let app = TestApp::start().await;

    let body = assert_error(me(&app, None).await, 401, "UNAUTHENTICATED").await;
    assert!(body.get("details").is_none_or(Value::is_null), "{body}");

    // Not a bearer scheme: refused as missing or bad credentials, in the error shape.
    let response = me(&app, Some("Basic xyz")).await;
    let request_id = response.headers().get("x-request-id").cloned();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("JSON error body");
    assert!(
        matches!(
            body["code"].as_str(),
            Some("UNAUTHENTICATED" | "INVALID_TOKEN")
        ),
        "{body}"
    );
    assert_eq!(
        Some(body["request_id"].as_str().unwrap_or_default()),
        request_id.as_ref().and_then(|v| v.to_str().ok()),
        "{body}"
    );

    assert_error(me_with(&app, "garbage").await, 401, "INVALID_TOKEN").await;
    assert_error(me_with(&app, "a.b.c").await, 401, "INVALID_TOKEN").await;
    app.stop().await;
}

#[actix_rt::test]
async fn expired_token_is_refused_but_the_leeway_is_honoured() {
    let app = TestApp::start().await;
    let token = app.admin_token().await;

    // Control: a token forged with the real secret and claim set passes, so the refusals
    // below are caused by `exp` alone.
    let fresh = sign(&app, &claims_for(&app, &token, 600));
    assert_eq!(
        me_with(&app, &fresh).await.status(),
        200,
        "a well-forged token passes"
    );

    let expired = sign(&app, &claims_for(&app, &token, -120));
    assert_error(me_with(&app, &expired).await, 401, "TOKEN_EXPIRED").await;

    let within_leeway = sign(&app, &claims_for(&app, &token, -10));
    let response = me_with(&app, &within_leeway).await;
    assert_eq!(
        response.status(),
        200,
        "10 s past exp is within the 30 s leeway"
    );
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile["id"], claims_of(&token)["sub"]);
    app.stop().await;
}

#[actix_rt::test]
async fn forged_tokens_are_invalid() {
    let app = TestApp::start().await;
    let (_, _, email) = seeded(&app).await;
    let token = token_of(&app.login(email, USER_PASSWORD).await);
    assert_eq!(
        me_with(&app, &token).await.status(),
        200,
        "the real token passes"
    );
    let fresh = sign(&app, &claims_for(&app, &token, 600));
    assert_eq!(
        me_with(&app, &fresh).await.status(),
        200,
        "a well-forged token passes"
    );

    // Payload changed to super_admin, header and signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    let mut escalated = claims_of(&token);
    escalated["role"] = json!("super_admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(escalated.to_string().as_bytes()),
        parts[2]
    );
    assert_error(me_with(&app, &tampered).await, 401, "INVALID_TOKEN").await;

    // `alg: none`, without and with the original signature.
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    assert_error(me_with(&app, &unsigned).await, 401, "INVALID_TOKEN").await;
    let none_signed = format!("{none_header}.{}.{}", parts[1], parts[2]);
    assert_error(me_with(&app, &none_signed).await, 401, "INVALID_TOKEN").await;

    // Correctly signed, but not an access token.
    let mut refresh = claims_for(&app, &token, 600);
    refresh["typ"] = json!("refresh");
    assert_error(
        me_with(&app, &sign(&app, &refresh)).await,
        401,
        "INVALID_TOKEN",
    )
    .await;

    // Correctly signed, foreign issuer.
    let mut foreign = claims_for(&app, &token, 600);
    foreign["iss"] = json!("someone-else");
    assert_error(
        me_with(&app, &sign(&app, &foreign)).await,
        401,
        "INVALID_TOKEN",
    )
    .await;

    // Correctly signed with another algorithm of the same family (HS512): pinned to HS256.
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &claims_for(&app, &token, 600),
        &EncodingKey::from_secret(&app.server.state.config.jwt_secret),
    )
    .unwrap();
    assert_error(me_with(&app, &hs512).await, 401, "INVALID_TOKEN").await;
    app.stop().await;
}

#[actix_rt::test]
async fn token_of_a_revoked_session_is_invalid() {
    let app = TestApp::start().await;
    let (_, _, email) = seeded(&app).await;
    let token = token_of(&app.login(email, USER_PASSWORD).await);
    assert_eq!(me_with(&app, &token).await.status(), 200);

    // Revoked behind the server's back (as another node would): the revocation poll makes the
    // token fail within 5 s (iam.md §4.5).
    app.sql("UPDATE sessions SET revoked_at = now(), revoke_reason = 'test'")
        .await;
    let revoked_at = std::time::Instant::now();
    loop {
        let response = me_with(&app, &token).await;
        if response.status() == 401 {
            assert_error(response, 401, "INVALID_TOKEN").await;
            break;
        }
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(5),
            "still accepted after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[actix_rt::test]
async fn ambiguous_email_needs_a_correct_password_then_an_account_id() {
    let app = TestApp::start().await;
    let email = "shared@multi.test";
    let acme = app.seed_account("Acme").await;
    let beta = app.seed_account("Beta").await;
    let in_acme = app.seed_user(acme, email, "agent").await;
    let in_beta = app.seed_user(beta, email, "admin").await;

    let wrong = post_login(
        &app,
        json!({ "email": email, "password": "not the right password" }),
    )
    .await;
    assert_error(wrong, 401, "UNAUTHENTICATED").await;

    let ambiguous = post_login(&app, json!({ "email": email, "password": USER_PASSWORD })).await;
    let body = assert_error(ambiguous, 409, "CONFLICT").await;
    let mut accounts = body["details"]["accounts"]
        .as_array()
        .unwrap_or_else(|| panic!("details.accounts: {body}"))
        .clone();
    accounts.sort_by_key(|a| a["name"].as_str().map(str::to_owned));
    assert_eq!(
        Value::Array(accounts),
        json!([{ "id": acme, "name": "Acme" }, { "id": beta, "name": "Beta" }])
    );
    assert_eq!(
        session_count(&app).await,
        0,
        "no session before an account is chosen"
    );

    let chosen = post_login(
        &app,
        json!({ "email": email, "password": USER_PASSWORD, "account_id": beta }),
    )
    .await;
    assert_eq!(chosen.status(), 200);
    let login: Value = chosen.json().await.unwrap();
    assert_eq!(login["user"]["id"], in_beta.to_string());
    assert_eq!(login["user"]["account_id"], beta.to_string());
    assert_eq!(login["user"]["account_name"], "Beta");
    assert_eq!(login["user"]["role"], "admin");
    let profile: Value = me_with(&app, &token_of(&login)).await.json().await.unwrap();
    assert_eq!(profile["account"], json!({ "id": beta, "name": "Beta" }));

    let chosen = post_login(
        &app,
        json!({ "email": email, "password": USER_PASSWORD, "account_id": acme }),
    )
    .await;
    assert_eq!(chosen.status(), 200);
    let login: Value = chosen.json().await.unwrap();
    assert_eq!(login["user"]["id"], in_acme.to_string());
    assert_eq!(login["user"]["account_id"], acme.to_string());
    app.stop().await;
}

#[actix_rt::test]
async fn inactive_user_and_suspended_account_are_forbidden() {
    let app = TestApp::start().await;
    let (account, user, email) = seeded(&app).await;

    app.sql(&format!(
        "UPDATE users SET status = 'inactive' WHERE id = '{user}'"
    ))
    .await;
    let response = post_login(&app, json!({ "email": email, "password": USER_PASSWORD })).await;
    assert_error(response, 403, "FORBIDDEN").await;
    // A wrong password still gets the generic 401: the status is not revealed without it.
    let response = post_login(
        &app,
        json!({ "email": email, "password": "not the right password" }),
    )
    .await;
    assert_error(response, 401, "UNAUTHENTICATED").await;

    app.sql(&format!(
        "UPDATE users SET status = 'active' WHERE id = '{user}'"
    ))
    .await;
    app.sql(&format!(
        "UPDATE accounts SET status = 'suspended' WHERE id = '{account}'"
    ))
    .await;
    let response = post_login(&app, json!({ "email": email, "password": USER_PASSWORD })).await;
    assert_error(response, 403, "FORBIDDEN").await;
    assert_eq!(
        session_count(&app).await,
        0,
        "a refused login writes no session"
    );

    app.sql(&format!(
        "UPDATE accounts SET status = 'active' WHERE id = '{account}'"
    ))
    .await;
    let response = post_login(&app, json!({ "email": email, "password": USER_PASSWORD })).await;
    assert_eq!(
        response.status(),
        200,
        "the same login passes once active again"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn login_body_missing_a_field_names_that_field() {
    let app = TestApp::start().await;

    let missing = post_login(&app, json!({ "email": "ana@acme.test" })).await;
    let body = assert_error(missing, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["fields"][0]["field"], "password", "{body}");

    let missing = post_login(&app, json!({ "password": USER_PASSWORD })).await;
    let body = assert_error(missing, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["fields"][0]["field"], "email", "{body}");
    app.stop().await;
}

#[actix_rt::test]
async fn login_body_with_an_overlong_email_names_email() {
    let app = TestApp::start().await;
    let long_email = format!("{}@acme.test", "a".repeat(300 - "@acme.test".len()));
    assert_eq!(long_email.len(), 300);
    let response = post_login(
        &app,
        json!({ "email": long_email, "password": USER_PASSWORD }),
    )
    .await;
    let body = assert_error(response, 400, "VALIDATION_ERROR").await;
    let fields: Vec<&str> = body["details"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("details.fields: {body}"))
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect();
    assert_eq!(fields, ["email"], "{body}");
    app.stop().await;
}

#[actix_rt::test]
async fn login_creates_exactly_one_password_session() {
    let app = TestApp::start().await;
    let (account, user, email) = seeded(&app).await;
    assert!(sessions_of(&app, user).await.is_empty());

    let login = app.login(email, USER_PASSWORD).await;
    let sessions = sessions_of(&app, user).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = &sessions[0];
    assert_eq!(session.kind, "password");
    assert_eq!(session.account_id, account.to_string());
    assert_eq!(session.ip.as_deref(), Some("127.0.0.1"));
    assert!(session.revoked_at.is_none());
    let days = (session.expires_at - Utc::now()).num_hours();
    assert!(
        (29 * 24..=30 * 24).contains(&days),
        "about 30 days: {days} h"
    );
    assert_eq!(session_count(&app).await, 1, "no other session was written");

    // The token's sid names that row.
    let mut conn = AsyncPgConnection::establish(&app.db_url).await.unwrap();
    let sid: Uuid = claims_of(&token_of(&login))["sid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let found = diesel::sql_query(
        "SELECT count(*) AS n FROM sessions WHERE id = $1 AND user_id = $2 AND kind = 'password'",
    )
    .bind::<diesel::sql_types::Uuid, _>(sid)
    .bind::<diesel::sql_types::Uuid, _>(user)
    .get_result::<Count>(&mut conn)
    .await
    .unwrap();
    assert_eq!(found.n, 1);

    app.login(email, USER_PASSWORD).await;
    assert_eq!(sessions_of(&app, user).await.len(), 2, "one more per login");
    app.stop().await;
}
