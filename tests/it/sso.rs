//! Chatwoot SSO (iam.md §4.3, §7) against a fake Chatwoot.
//!
//! The fake is a real actix-web server on 127.0.0.1 serving `GET /api/v1/profile`: it records
//! every `api_access_token` it receives and answers each known token with a configured status,
//! body and delay (unknown or missing tokens get 401, as Chatwoot does). The hub under test
//! has `CHATWOOT_URL` pointing at it.
//!
//! Covered: the token header is sent; upstream 401/403/404 → 401 `INVALID_TOKEN`; upstream
//! 500, bad JSON and redirects → 502; the client's timeout → `ChatwootError::Timeout` → 504
//! (with a 0.5 s client, since the server's 10 s timeout is a constant); an account not in the
//! profile → 403; two accounts unchosen → 409 with `details.accounts`; administrator → admin,
//! anything else → agent, a Chatwoot SuperAdmin is not super_admin; Chatwoot-derived roles
//! follow Chatwoot (and the change revokes old sessions) until a manual promotion, which
//! survives re-login; a deactivated user → 403; account and user rows with their Chatwoot ids;
//! account creation disabled → 403; suspended or deleted accounts and the platform account →
//! 403; linking an existing user by email; profile refresh and avatar rules; no `CHATWOOT_URL`
//! → 503; body validation; the returned token works on `GET /api/v1/me`. The `max_agents`
//! quota is not covered: plans arrive with the tenancy issue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use serde_json::{json, Value};
use url::Url;
use whatpro_hub::http::sso::profile_error;
use whatpro_hub::integrations::chatwoot::{self, ChatwootError};

use crate::harness::*;

/// How the fake answers one token.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
    location: Option<String>,
}

impl Reply {
    fn profile(profile: &Value) -> Self {
        Self {
            status: 200,
            body: profile.to_string(),
            delay: Duration::ZERO,
            location: None,
        }
    }

    fn status(status: u16) -> Self {
        Self {
            status,
            body: json!({ "error": "fake" }).to_string(),
            delay: Duration::ZERO,
            location: None,
        }
    }
}

#[derive(Default)]
struct FakeState {
    replies: HashMap<String, Reply>,
    seen_tokens: Vec<String>,
    redirect_target_hits: usize,
}

type Shared = Arc<Mutex<FakeState>>;

/// A fake Chatwoot on 127.0.0.1.
struct FakeChatwoot {
    base: String,
    state: Shared,
}

async fn fake_profile(req: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
    let token = req
        .headers()
        .get("api_access_token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let reply = {
        let mut state = state.lock().expect("fake state");
        if let Some(token) = &token {
            state.seen_tokens.push(token.clone());
        }
        token.and_then(|t| state.replies.get(&t).cloned())
    };
    let Some(reply) = reply else {
        return HttpResponse::Unauthorized().json(json!({ "errors": ["Invalid Access Token"] }));
    };
    if !reply.delay.is_zero() {
        actix_rt::time::sleep(reply.delay).await;
    }
    let mut response =
        HttpResponse::build(StatusCode::from_u16(reply.status).expect("status code"));
    if let Some(location) = reply.location {
        response.insert_header(("location", location));
    }
    response.content_type("application/json").body(reply.body)
}

async fn fake_redirect_target(state: web::Data<Shared>) -> HttpResponse {
    state.lock().expect("fake state").redirect_target_hits += 1;
    HttpResponse::Ok().json(json!({}))
}

impl FakeChatwoot {
    async fn start() -> Self {
        let state: Shared = Arc::default();
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/api/v1/profile", web::get().to(fake_profile))
                .route("/elsewhere", web::get().to(fake_redirect_target))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind(("127.0.0.1", 0))
        .expect("bind the fake Chatwoot");
        let addr = server.addrs()[0];
        actix_rt::spawn(server.run());
        Self {
            base: format!("http://{addr}/"),
            state,
        }
    }

    fn url(&self) -> Url {
        Url::parse(&self.base).expect("fake URL")
    }

    fn reply(&self, token: &str, reply: Reply) {
        self.state
            .lock()
            .expect("fake state")
            .replies
            .insert(token.to_owned(), reply);
    }

    fn profile(&self, token: &str, profile: &Value) {
        self.reply(token, Reply::profile(profile));
    }

    fn seen_tokens(&self) -> Vec<String> {
        self.state.lock().expect("fake state").seen_tokens.clone()
    }
}

/// A profile shaped like Chatwoot's `GET /api/v1/profile` (accounts: id, name, role).
fn chatwoot_profile(
    user_id: i64,
    email: &str,
    name: &str,
    accounts: &[(i64, &str, &str)],
) -> Value {
    let accounts: Vec<Value> = accounts
        .iter()
        .map(|(id, name, role)| {
            json!({
                "id": id, "name": name, "status": "active", "active_at": "2026-01-05T10:00:00.000Z",
                "role": role, "permissions": [role], "availability": "online",
                "availability_status": "online", "auto_offline": true,
                "custom_role_id": null, "custom_role": null,
            })
        })
        .collect();
    json!({
        "id": user_id, "provider": "email", "uid": email, "name": name,
        "available_name": name, "display_name": null,
        "avatar_url": "https://www.gravatar.com/avatar/0a1b2c?d=404",
        "confirmed": true, "email": email, "account_id": <[Value]>::first(&accounts).map(|a| a["id"].clone()),
        "pubsub_token": "pubsub-xyz", "role": <[Value]>::first(&accounts).map(|a| a["role"].clone()),
        "type": "User", "ui_settings": {}, "message_signature": null,
        "access_token": "echoed-access-token", "accounts": accounts,
    })
}

/// The fake and a hub whose `CHATWOOT_URL` points at it.
async fn start() -> (TestApp, FakeChatwoot) {
    start_with(|_| {}).await
}

async fn start_with(
    tweak: impl FnOnce(&mut whatpro_hub::config::Config),
) -> (TestApp, FakeChatwoot) {
    let fake = FakeChatwoot::start().await;
    let url = fake.url();
    let app = TestApp::start_with(|c| {
        c.chatwoot_url = Some(url);
        tweak(c);
    })
    .await;
    (app, fake)
}

/// `POST /api/v1/auth/sso` with `body`.
async fn sso(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/auth/sso"))
        .json(&body)
        .send()
        .await
        .expect("POST /api/v1/auth/sso")
}

/// SSO that must succeed; returns the body.
async fn sso_ok(app: &TestApp, body: Value) -> Value {
    let response = sso(app, body).await;
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(status, 200, "{body}");
    body
}

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/v1/me")
}

async fn failed_audits(app: &TestApp) -> Vec<Value> {
    app.rows(
        "SELECT account_id, error_code, result, after FROM audit_log \
         WHERE action = 'auth.sso.failed' ORDER BY created_at",
    )
    .await
}

#[actix_rt::test]
async fn sso_creates_account_and_user_and_the_token_works() {
    let (app, fake) = start().await;
    fake.profile(
        "tok-ana",
        &chatwoot_profile(
            41,
            "ana@acme.com",
            "Ana Souza",
            &[(7, "Acme", "administrator")],
        ),
    );
    let response = sso(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("refresh cookie")
        .to_owned();
    assert!(cookie.starts_with("wp_refresh=wpr_"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/api/v1/auth"),
        "{cookie}"
    );
    let body: Value = response.json().await.expect("body");
    assert!(
        body["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(body["refresh_token"]
        .as_str()
        .is_some_and(|t| t.starts_with("wpr_")));
    assert!(body["expires_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let user = &body["user"];
    assert_eq!(user["email"], "ana@acme.com");
    assert_eq!(user["name"], "Ana Souza");
    assert_eq!(user["role"], "admin");
    assert_eq!(user["account_name"], "Acme");

    // The token went to Chatwoot in the api_access_token header, once.
    assert_eq!(fake.seen_tokens(), vec!["tok-ana".to_owned()]);

    let accounts = app.rows("SELECT id::text, name, status, is_platform FROM accounts WHERE chatwoot_account_id = 7",
    )
    .await;
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["name"], "Acme");
    assert_eq!(accounts[0]["status"], "active");
    assert_eq!(accounts[0]["is_platform"], false);
    assert_eq!(accounts[0]["id"], user["account_id"]);

    let users = app
        .rows(
            "SELECT id::text, account_id::text, email::text, name, role, role_source, status, \
         chatwoot_role, avatar_url, password_hash, last_login_at IS NOT NULL AS logged_in \
         FROM users WHERE chatwoot_user_id = 41",
        )
        .await;
    assert_eq!(users.len(), 1);
    let row = &users[0];
    assert_eq!(row["id"], user["id"]);
    assert_eq!(row["account_id"], user["account_id"]);
    assert_eq!(row["email"], "ana@acme.com");
    assert_eq!(row["role"], "admin");
    assert_eq!(row["role_source"], "chatwoot");
    assert_eq!(row["status"], "active");
    assert_eq!(row["chatwoot_role"], "administrator");
    assert_eq!(
        row["avatar_url"],
        "https://www.gravatar.com/avatar/0a1b2c?d=404"
    );
    assert_eq!(row["password_hash"], Value::Null);
    assert_eq!(row["logged_in"], true);

    let sessions = app
        .rows(&format!(
            "SELECT kind FROM sessions WHERE user_id = '{}'",
            user["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(sessions, vec![json!({ "kind": "sso" })]);
    let audits = app
        .rows(
            "SELECT action, account_id::text, result FROM audit_log \
         WHERE action IN ('auth.sso.succeeded', 'account.created', 'user.created') \
         ORDER BY action",
        )
        .await;
    let actions: Vec<&str> = audits.iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(
        actions,
        ["account.created", "auth.sso.succeeded", "user.created"]
    );
    assert!(audits.iter().all(|a| a["account_id"] == user["account_id"]));
    // Neither the token nor the profile's echoed access token is stored anywhere audited.
    let leaked = app
        .rows(
            "SELECT id FROM audit_log WHERE after::text LIKE '%tok-ana%' \
         OR after::text LIKE '%echoed-access-token%'",
        )
        .await;
    assert!(leaked.is_empty());

    // The access token works.
    let response = me(&app, &token_of(&body)).await;
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.expect("me");
    assert_eq!(me["id"], user["id"]);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["account"]["name"], "Acme");
    assert_eq!(me["has_password"], false);
}

#[actix_rt::test]
async fn chatwoot_roles_map_to_admin_or_agent_never_super_admin() {
    let (app, fake) = start().await;
    let mut agent = chatwoot_profile(51, "bia@acme.com", "Bia", &[(7, "Acme", "agent")]);
    agent["type"] = json!("SuperAdmin");
    fake.profile("tok-agent", &agent);
    let mut admin = chatwoot_profile(52, "caio@acme.com", "Caio", &[(7, "Acme", "administrator")]);
    admin["type"] = json!("SuperAdmin");
    admin["role"] = json!("super_admin");
    fake.profile("tok-admin", &admin);
    let custom = chatwoot_profile(53, "davi@acme.com", "Davi", &[(7, "Acme", "supervisor")]);
    fake.profile("tok-custom", &custom);

    let body = sso_ok(&app, json!({ "sso_token": "tok-agent" })).await;
    assert_eq!(body["user"]["role"], "agent");
    // Three users: more than the free plan the new account starts on.
    app.sql("UPDATE account_entitlements SET plan = 'starter'")
        .await;
    let body = sso_ok(&app, json!({ "sso_token": "tok-admin" })).await;
    assert_eq!(body["user"]["role"], "admin");
    let body = sso_ok(&app, json!({ "sso_token": "tok-custom", "account_id": 7 })).await;
    assert_eq!(body["user"]["role"], "agent");

    let roles = app
        .rows(
            "SELECT chatwoot_user_id, role FROM users WHERE chatwoot_user_id IS NOT NULL \
         ORDER BY chatwoot_user_id",
        )
        .await;
    assert_eq!(
        roles,
        vec![
            json!({ "chatwoot_user_id": 51, "role": "agent" }),
            json!({ "chatwoot_user_id": 52, "role": "admin" }),
            json!({ "chatwoot_user_id": 53, "role": "agent" }),
        ]
    );
    let super_admins = app
        .rows(
            "SELECT u.id FROM users u JOIN accounts a ON a.id = u.account_id \
         WHERE u.role = 'super_admin' AND NOT a.is_platform",
        )
        .await;
    assert!(super_admins.is_empty());
}

#[actix_rt::test]
async fn upstream_refusals_are_invalid_token() {
    let (app, fake) = start().await;
    fake.reply("tok-403", Reply::status(403));
    fake.reply("tok-404", Reply::status(404));
    // Unknown to the fake: 401.
    let response = sso(&app, json!({ "sso_token": "tok-unknown" })).await;
    assert_error(response, 401, "INVALID_TOKEN").await;
    for token in ["tok-403", "tok-404"] {
        let response = sso(&app, json!({ "sso_token": token })).await;
        assert_error(response, 401, "INVALID_TOKEN").await;
    }
    assert_eq!(fake.seen_tokens(), ["tok-unknown", "tok-403", "tok-404"]);
    assert!(app
        .rows("SELECT id FROM accounts WHERE chatwoot_account_id IS NOT NULL")
        .await
        .is_empty());
    let audits = failed_audits(&app).await;
    assert_eq!(audits.len(), 3);
    assert!(audits.iter().all(|a| a["error_code"] == "INVALID_TOKEN"
        && a["result"] == "failure"
        && a["account_id"].is_null()));
    assert!(app
        .rows("SELECT id FROM audit_log WHERE after::text LIKE '%tok-%'")
        .await
        .is_empty());
}

#[actix_rt::test]
async fn upstream_failures_are_bad_gateway() {
    let (app, fake) = start().await;
    fake.reply("tok-500", Reply::status(500));
    fake.reply(
        "tok-garbage",
        Reply {
            body: "<html>not json</html>".into(),
            ..Reply::status(200)
        },
    );
    fake.reply(
        "tok-redirect",
        Reply {
            location: Some(format!("{}elsewhere", fake.base)),
            ..Reply::status(302)
        },
    );
    fake.reply(
        "tok-no-email",
        Reply::profile(&chatwoot_profile(60, "", "Nobody", &[(7, "Acme", "agent")])),
    );
    for token in ["tok-500", "tok-garbage", "tok-redirect", "tok-no-email"] {
        let response = sso(&app, json!({ "sso_token": token })).await;
        let body = assert_error(response, 502, "UPSTREAM_ERROR").await;
        assert!(!body.to_string().contains(token), "{body}");
    }
    // The redirect was not followed.
    assert_eq!(
        fake.state.lock().expect("fake state").redirect_target_hits,
        0
    );
    assert!(app
        .rows("SELECT id FROM users WHERE chatwoot_user_id IS NOT NULL")
        .await
        .is_empty());
}

#[actix_rt::test]
async fn a_slow_upstream_times_out_as_504() {
    // The server's client waits REQUEST_TIMEOUT (10 s, a constant); the same code path with a
    // 0.5 s client shows the timeout is classified, and the handler's mapping makes it 504.
    assert_eq!(chatwoot::REQUEST_TIMEOUT, Duration::from_secs(10));
    let fake = FakeChatwoot::start().await;
    let profile = chatwoot_profile(70, "eva@acme.com", "Eva", &[(7, "Acme", "agent")]);
    fake.reply(
        "tok-slow",
        Reply {
            delay: Duration::from_millis(1500),
            ..Reply::profile(&profile)
        },
    );
    fake.profile("tok-fast", &profile);
    let client = chatwoot::build_client(Duration::from_millis(500)).expect("client");
    let started = Instant::now();
    let outcome = chatwoot::profile_with(&client, &fake.url(), "tok-slow").await;
    assert!(
        matches!(outcome, Err(ChatwootError::Timeout)),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1400));
    let error = profile_error(ChatwootError::Timeout);
    assert_eq!(error.status_code().as_u16(), 504);
    assert_eq!(error.code(), "UPSTREAM_TIMEOUT");
    // The same client reads a prompt answer.
    let read = chatwoot::profile_with(&client, &fake.url(), "tok-fast")
        .await
        .expect("profile");
    assert_eq!(read.id, 70);
    assert_eq!(read.accounts[0].role, "agent");
    assert_eq!(fake.seen_tokens(), ["tok-slow", "tok-fast"]);
}

#[actix_rt::test]
async fn an_account_not_in_the_profile_is_forbidden() {
    let (app, fake) = start().await;
    fake.profile(
        "tok-ana",
        &chatwoot_profile(41, "ana@acme.com", "Ana", &[(7, "Acme", "administrator")]),
    );
    let response = sso(&app, json!({ "sso_token": "tok-ana", "account_id": 8 })).await;
    assert_error(response, 403, "FORBIDDEN").await;
    assert!(app
        .rows("SELECT id FROM accounts WHERE chatwoot_account_id IS NOT NULL")
        .await
        .is_empty());
    assert!(app
        .rows("SELECT id FROM users WHERE chatwoot_user_id IS NOT NULL")
        .await
        .is_empty());
    let audits = failed_audits(&app).await;
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0]["error_code"], "FORBIDDEN");
    assert_eq!(audits[0]["after"]["email"], "ana@acme.com");
    assert_eq!(audits[0]["after"]["chatwoot_account_id"], 8);
}

#[actix_rt::test]
async fn two_accounts_unchosen_is_a_conflict() {
    let (app, fake) = start().await;
    fake.profile(
        "tok-ana",
        &chatwoot_profile(
            41,
            "ana@acme.com",
            "Ana",
            &[(7, "Acme", "agent"), (8, "Beta", "administrator")],
        ),
    );
    let response = sso(&app, json!({ "sso_token": "tok-ana" })).await;
    let body = assert_error(response, 409, "CONFLICT").await;
    assert_eq!(
        body["details"]["accounts"],
        json!([{ "id": 7, "name": "Acme" }, { "id": 8, "name": "Beta" }])
    );
    assert!(app
        .rows("SELECT id FROM accounts WHERE chatwoot_account_id IS NOT NULL")
        .await
        .is_empty());

    let body = sso_ok(&app, json!({ "sso_token": "tok-ana", "account_id": 8 })).await;
    assert_eq!(body["user"]["account_name"], "Beta");
    assert_eq!(body["user"]["role"], "admin");
    let accounts = app
        .rows(
            "SELECT chatwoot_account_id, name FROM accounts WHERE chatwoot_account_id IS NOT NULL",
        )
        .await;
    assert_eq!(
        accounts,
        vec![json!({ "chatwoot_account_id": 8, "name": "Beta" })]
    );
}

#[actix_rt::test]
async fn chatwoot_roles_follow_until_a_manual_promotion_which_survives() {
    let (app, fake) = start().await;
    let login = |role: &str| chatwoot_profile(41, "ana@acme.com", "Ana", &[(7, "Acme", role)]);
    fake.profile("tok-ana", &login("agent"));
    let first = sso_ok(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_eq!(first["user"]["role"], "agent");

    // Chatwoot promotes her: the role follows, and the old session (agent token) is revoked.
    fake.profile("tok-ana", &login("administrator"));
    let second = sso_ok(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_eq!(second["user"]["role"], "admin");
    assert_eq!(second["user"]["id"], first["user"]["id"]);
    assert_eq!(me(&app, &token_of(&first)).await.status(), 401);
    assert_eq!(me(&app, &token_of(&second)).await.status(), 200);

    // A hub admin sets her role by hand: Chatwoot no longer decides it.
    app.sql(
        "UPDATE users SET role = 'supervisor', role_source = 'manual' WHERE chatwoot_user_id = 41",
    )
    .await;
    let third = sso_ok(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_eq!(third["user"]["role"], "supervisor");
    fake.profile("tok-ana", &login("agent"));
    let fourth = sso_ok(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_eq!(fourth["user"]["role"], "supervisor");
    let user = app
        .rows("SELECT role, role_source, chatwoot_role FROM users WHERE chatwoot_user_id = 41")
        .await;
    assert_eq!(
        user,
        vec![json!({ "role": "supervisor", "role_source": "manual", "chatwoot_role": "agent" })]
    );
    assert_eq!(me(&app, &token_of(&third)).await.status(), 200);
}

#[actix_rt::test]
async fn a_deactivated_user_is_forbidden() {
    let (app, fake) = start().await;
    fake.profile(
        "tok-ana",
        &chatwoot_profile(41, "ana@acme.com", "Ana", &[(7, "Acme", "agent")]),
    );
    let first = sso_ok(&app, json!({ "sso_token": "tok-ana" })).await;
    app.sql(
        "UPDATE users SET status = 'inactive', deactivated_at = now() WHERE chatwoot_user_id = 41",
    )
    .await;
    let response = sso(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_error(response, 403, "FORBIDDEN").await;
    let sessions = app
        .rows(&format!(
            "SELECT id FROM sessions WHERE user_id = '{}'",
            first["user"]["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(sessions.len(), 1, "no session for the refused sign-in");
    let audits = failed_audits(&app).await;
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0]["error_code"], "FORBIDDEN");
    assert_eq!(audits[0]["account_id"], first["user"]["account_id"]);
    assert_eq!(audits[0]["after"]["chatwoot_user_id"], 41);
}

#[actix_rt::test]
async fn account_creation_can_be_disabled() {
    let (app, fake) = start_with(|c| c.chatwoot_sso_create_accounts = false).await;
    fake.profile(
        "tok-ana",
        &chatwoot_profile(41, "ana@acme.com", "Ana", &[(7, "Acme", "administrator")]),
    );
    let response = sso(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_error(response, 403, "FORBIDDEN").await;
    assert!(app
        .rows("SELECT id FROM accounts WHERE chatwoot_account_id IS NOT NULL")
        .await
        .is_empty());
    assert!(app
        .rows("SELECT id FROM users WHERE chatwoot_user_id IS NOT NULL")
        .await
        .is_empty());

    // A known account still signs in, and its name follows Chatwoot.
    let account = app.seed_account("Old name").await;
    app.sql(&format!(
        "UPDATE accounts SET chatwoot_account_id = 7 WHERE id = '{account}'"
    ))
    .await;
    let body = sso_ok(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_eq!(body["user"]["account_id"], account.to_string());
    assert_eq!(body["user"]["account_name"], "Acme");
    let names = app
        .rows(&format!("SELECT name FROM accounts WHERE id = '{account}'"))
        .await;
    assert_eq!(names, vec![json!({ "name": "Acme" })]);
}

#[actix_rt::test]
async fn suspended_deleted_and_platform_accounts_are_forbidden() {
    let (app, fake) = start().await;
    fake.profile(
        "tok-7",
        &chatwoot_profile(41, "ana@acme.com", "Ana", &[(7, "Acme", "administrator")]),
    );
    fake.profile(
        "tok-8",
        &chatwoot_profile(42, "bia@acme.com", "Bia", &[(8, "Beta", "administrator")]),
    );
    fake.profile(
        "tok-9",
        &chatwoot_profile(
            43,
            "root@hub.test",
            "Root",
            &[(9, "Platform", "administrator")],
        ),
    );
    let suspended = app.seed_account("Acme").await;
    let deleted = app.seed_account("Beta").await;
    app.sql(&format!(
        "UPDATE accounts SET chatwoot_account_id = 7, status = 'suspended' WHERE id = '{suspended}';
         UPDATE accounts SET chatwoot_account_id = 8, status = 'deleted' WHERE id = '{deleted}';
         UPDATE accounts SET chatwoot_account_id = 9 WHERE is_platform"
    ))
    .await;
    for token in ["tok-7", "tok-8", "tok-9"] {
        let response = sso(&app, json!({ "sso_token": token })).await;
        assert_error(response, 403, "FORBIDDEN").await;
    }
    assert!(app
        .rows("SELECT id FROM users WHERE chatwoot_user_id IS NOT NULL")
        .await
        .is_empty());
    let super_admin = app
        .rows("SELECT role, chatwoot_user_id FROM users WHERE email = 'root@hub.test'")
        .await;
    assert_eq!(
        super_admin,
        vec![json!({ "role": "super_admin", "chatwoot_user_id": null })]
    );
}

#[actix_rt::test]
async fn an_existing_user_is_linked_by_email_and_keeps_the_hub_role() {
    let (app, fake) = start().await;
    let account = app.seed_account("Acme").await;
    app.sql(&format!(
        "UPDATE accounts SET chatwoot_account_id = 7 WHERE id = '{account}'"
    ))
    .await;
    let user = app.seed_user(account, "ana@acme.com", "supervisor").await;
    fake.profile(
        "tok-ana",
        &chatwoot_profile(
            41,
            "ANA@acme.com",
            "Ana Souza",
            &[(7, "Acme", "administrator")],
        ),
    );
    let body = sso_ok(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_eq!(body["user"]["id"], user.to_string());
    assert_eq!(body["user"]["role"], "supervisor");
    assert_eq!(body["user"]["name"], "Ana Souza");
    let rows_found = app
        .rows(&format!(
            "SELECT chatwoot_user_id, chatwoot_role, role, role_source, name FROM users \
             WHERE account_id = '{account}'"
        ))
        .await;
    assert_eq!(
        rows_found,
        vec![json!({
            "chatwoot_user_id": 41, "chatwoot_role": "administrator", "role": "supervisor",
            "role_source": "manual", "name": "Ana Souza",
        })]
    );
    // Her password still works.
    let login = app.login("ana@acme.com", USER_PASSWORD).await;
    assert_eq!(login["user"]["id"], user.to_string());
}

#[actix_rt::test]
async fn the_profile_is_refreshed_and_only_https_avatars_are_kept() {
    let (app, fake) = start().await;
    let mut profile = chatwoot_profile(41, "ana@acme.com", "Ana", &[(7, "Acme", "agent")]);
    profile["avatar_url"] = json!("http://insecure.example.com/a.png");
    fake.profile("tok-ana", &profile);
    let first = sso_ok(&app, json!({ "sso_token": "tok-ana" })).await;
    let avatar = app
        .rows("SELECT avatar_url FROM users WHERE chatwoot_user_id = 41")
        .await;
    assert_eq!(avatar, vec![json!({ "avatar_url": null })]);

    let mut profile = chatwoot_profile(
        41,
        "ana.souza@acme.com",
        "Ana Souza",
        &[(7, "Acme Corp", "agent")],
    );
    profile["avatar_url"] = json!("https://cdn.example.com/ana.png");
    fake.profile("tok-ana", &profile);
    let second = sso_ok(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_eq!(second["user"]["id"], first["user"]["id"]);
    assert_eq!(second["user"]["email"], "ana.souza@acme.com");
    assert_eq!(second["user"]["account_name"], "Acme Corp");
    let user = app
        .rows("SELECT email::text, name, avatar_url FROM users WHERE chatwoot_user_id = 41")
        .await;
    assert_eq!(
        user,
        vec![json!({
            "email": "ana.souza@acme.com", "name": "Ana Souza",
            "avatar_url": "https://cdn.example.com/ana.png",
        })]
    );

    profile["avatar_url"] = json!("");
    fake.profile("tok-ana", &profile);
    sso_ok(&app, json!({ "sso_token": "tok-ana" })).await;
    let avatar = app
        .rows("SELECT avatar_url FROM users WHERE chatwoot_user_id = 41")
        .await;
    assert_eq!(avatar, vec![json!({ "avatar_url": null })]);
}

#[actix_rt::test]
async fn without_a_chatwoot_url_sso_is_unavailable() {
    let app = TestApp::start().await;
    assert!(app.server.state.config.chatwoot_url.is_none());
    let response = sso(&app, json!({ "sso_token": "tok-ana" })).await;
    assert_error(response, 503, "UNAVAILABLE").await;
    assert!(failed_audits(&app).await.is_empty());
}

#[actix_rt::test]
async fn the_body_is_validated() {
    let (app, fake) = start().await;
    let response = sso(&app, json!({ "sso_token": "tok-ana", "extra": 1 })).await;
    let body = assert_error(response, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["fields"][0]["field"], "extra");
    let response = sso(&app, json!({ "account_id": 7 })).await;
    let body = assert_error(response, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["fields"][0]["field"], "sso_token");
    let response = sso(&app, json!({ "sso_token": "" })).await;
    assert_error(response, 400, "VALIDATION_ERROR").await;
    let response = sso(&app, json!({ "sso_token": "x".repeat(513) })).await;
    assert_error(response, 400, "VALIDATION_ERROR").await;
    let response = sso(&app, json!({ "sso_token": "tok", "account_id": "7" })).await;
    assert_error(response, 400, "VALIDATION_ERROR").await;
    let response = app
        .http
        .post(app.url("/api/v1/auth/sso"))
        .body("sso_token=tok")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("POST");
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    assert!(fake.seen_tokens().is_empty(), "nothing reached Chatwoot");

    // 512 characters is the limit, not an error (Chatwoot refuses this one).
    let response = sso(&app, json!({ "sso_token": "x".repeat(512) })).await;
    assert_error(response, 401, "INVALID_TOKEN").await;
}

#[actix_rt::test]
async fn concurrent_first_sign_ins_create_one_account_and_one_user() {
    let (app, fake) = start().await;
    fake.profile(
        "tok-ana",
        &chatwoot_profile(41, "ana@acme.com", "Ana", &[(7, "Acme", "agent")]),
    );
    let bodies = futures_util::future::join_all(
        (0..4).map(|_| sso_ok(&app, json!({ "sso_token": "tok-ana" }))),
    )
    .await;
    let user_id = &bodies[0]["user"]["id"];
    assert!(bodies.iter().all(|b| &b["user"]["id"] == user_id));
    let accounts = app
        .rows("SELECT id FROM accounts WHERE chatwoot_account_id = 7")
        .await;
    assert_eq!(accounts.len(), 1);
    let users = app
        .rows("SELECT id FROM users WHERE chatwoot_user_id = 41")
        .await;
    assert_eq!(users.len(), 1);
    let sessions = app.rows("SELECT id FROM sessions WHERE kind = 'sso'").await;
    assert_eq!(sessions.len(), 4);
}

#[actix_rt::test]
async fn the_route_is_in_the_openapi_document() {
    let app = TestApp::start().await;
    let doc: Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("GET openapi.json")
        .json()
        .await
        .expect("JSON document");
    let post = &doc["paths"]["/api/v1/auth/sso"]["post"];
    assert!(post.is_object(), "{}", doc["paths"]);
    for status in ["200", "401", "403", "409", "502", "503", "504"] {
        assert!(post["responses"][status].is_object(), "{status}: {post}");
    }
    let schema = &doc["components"]["schemas"]["SsoRequest"];
    assert_eq!(schema["required"], json!(["sso_token"]), "{schema}");
    assert_eq!(schema["properties"]["sso_token"]["type"], "string");
}

#[actix_rt::test]
async fn a_new_sso_user_beyond_max_agents_is_refused() {
    let (app, fake) = start().await;
    // A new account starts on the free plan: two active users.
    for (n, token) in ["tok-1", "tok-2", "tok-3"].iter().enumerate() {
        fake.profile(
            token,
            &chatwoot_profile(
                100 + n as i64,
                &format!("user{n}@acme.com"),
                "User",
                &[(7, "Acme", "agent")],
            ),
        );
    }
    assert_eq!(
        sso(&app, json!({ "sso_token": "tok-1" })).await.status(),
        200
    );
    assert_eq!(
        sso(&app, json!({ "sso_token": "tok-2" })).await.status(),
        200
    );
    let third = sso(&app, json!({ "sso_token": "tok-3" })).await;
    let body = assert_error(third, 403, "QUOTA_EXCEEDED").await;
    assert_eq!(body["details"]["limit"], "max_agents");
    assert_eq!(
        (
            body["details"]["max"].as_i64(),
            body["details"]["current"].as_i64()
        ),
        (Some(2), Some(2))
    );
    // Existing users still sign in.
    assert_eq!(
        sso(&app, json!({ "sso_token": "tok-1" })).await.status(),
        200
    );
    app.stop().await;
}
