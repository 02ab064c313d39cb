//! The cross-tenant harness (iam.md §3, quality.md "Tenant isolation suite").
//!
//! A table of every tenant-scoped route, with how to build a request that targets account B's
//! resource. Each case runs with every principal kind of account A (admin user session, API key
//! with every scope, instance token) in two shapes: B's account in the path, and B's resource
//! ids under A's own account path. Each answer must equal the answer for an id that does not
//! exist (same status and code, never a 2xx), and B's rows must be unchanged afterwards. A
//! meta-test fails when an OpenAPI operation is neither in the table nor listed as not
//! tenant-scoped, so every new route must join the harness. Kanban routes (kanban.md
//! "Endpoints") target B's board, stages, card and checklist item; a second test puts B's ids
//! only in the body or query of requests on A's own board.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

/// One route of the table.
struct Route {
    method: &'static str,
    /// The OpenAPI path template, optionally followed by a query string (`?…`, with the same
    /// placeholders) that is sent but not part of the OpenAPI path.
    template: &'static str,
    /// A body the route would accept for its own tenant (a JSON template with the same
    /// placeholders as the path, so body references are targeted too).
    body: Option<&'static str>,
}

const NO_BODY: Option<&str> = None;

/// Every tenant-scoped operation. Placeholders: `{account_id}` and the resource ids, filled
/// from [`Tenant`].
const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/users",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/users/{user_id}",
        body: NO_BODY,
    },
    Route {
        method: "PATCH",
        template: "/api/v1/accounts/{account_id}/users/{user_id}",
        body: Some(r#"{"role": "supervisor", "name": "Renamed"}"#),
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/users/{user_id}/password",
        body: Some(r#"{"new_password": "quiet granite harbor"}"#),
    },
    Route {
        method: "DELETE",
        template: "/api/v1/accounts/{account_id}/users/{user_id}/sessions",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/api-keys",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/api-keys",
        body: Some(r#"{"name": "x", "scopes": ["users:read"]}"#),
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/api-keys/{key_id}",
        body: NO_BODY,
    },
    Route {
        method: "DELETE",
        template: "/api/v1/accounts/{account_id}/api-keys/{key_id}",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/instance-tokens",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/instance-tokens",
        body: Some(r#"{"scopes": ["users:read"]}"#),
    },
    Route {
        method: "DELETE",
        template: "/api/v1/accounts/{account_id}/instance-tokens/{token_id}",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/presence",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/audit-log",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/audit-log/{audit_id}",
        body: NO_BODY,
    },
    Route {
        method: "DELETE",
        template: "/api/v1/me/sessions/{session_id}",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}",
        body: NO_BODY,
    },
    Route {
        method: "PATCH",
        template: "/api/v1/accounts/{account_id}",
        body: Some(r#"{"name": "Taken over"}"#),
    },
    Route {
        method: "DELETE",
        template: "/api/v1/accounts/{account_id}",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/features",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/entitlements",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/usage",
        body: NO_BODY,
    },
    Route {
        method: "PATCH",
        template: "/api/v1/accounts/{account_id}/entitlements",
        body: Some(r#"{"plan": "enterprise"}"#),
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/users",
        body: Some(r#"{"email": "intruder@x.test", "name": "I", "role": "agent"}"#),
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/users/{user_id}/deactivate",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/users/{user_id}/reactivate",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/teams",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/teams",
        body: Some(r#"{"name": "Intruders"}"#),
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/teams/{team_id}",
        body: NO_BODY,
    },
    Route {
        method: "PATCH",
        template: "/api/v1/accounts/{account_id}/teams/{team_id}",
        body: Some(r#"{"name": "Renamed"}"#),
    },
    Route {
        method: "DELETE",
        template: "/api/v1/accounts/{account_id}/teams/{team_id}",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/teams/{team_id}/members",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/teams/{team_id}/members",
        body: Some(r#"{"user_id": "{user_id}"}"#),
    },
    Route {
        method: "DELETE",
        template: "/api/v1/accounts/{account_id}/teams/{team_id}/members/{user_id}",
        body: NO_BODY,
    },
    // Kanban (kanban.md "Endpoints"): B's non-default board with three stages, a card in the
    // first and a checklist item on it.
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/boards",
        body: Some(r#"{"name": "Intruder board", "stages": [{"name": "One"}, {"name": "Two", "is_final": true}]}"#),
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}",
        body: NO_BODY,
    },
    Route {
        method: "PATCH",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}",
        body: Some(r#"{"name": "Taken over"}"#),
    },
    Route {
        method: "DELETE",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/stages",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/stages",
        body: Some(r#"{"name": "Intruder stage"}"#),
    },
    Route {
        method: "PATCH",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/stages/{stage_id}",
        body: Some(r#"{"name": "Renamed stage", "sla_hours": 2}"#),
    },
    Route {
        method: "DELETE",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/stages/{stage_id}?move_cards_to={target_stage_id}",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/stages/reorder",
        body: Some(r#"{"stage_ids": ["{target_stage_id}", "{stage_id}", "{final_stage_id}"]}"#),
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards",
        body: Some(r#"{"stage_id": "{stage_id}", "title": "Intruder card", "assignee_id": "{user_id}"}"#),
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}",
        body: NO_BODY,
    },
    Route {
        method: "PATCH",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}",
        body: Some(r#"{"title": "Renamed card", "assignee_id": "{user_id}"}"#),
    },
    Route {
        method: "DELETE",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/move",
        body: Some(r#"{"stage_id": "{target_stage_id}"}"#),
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/history",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/checklist",
        body: NO_BODY,
    },
    Route {
        method: "POST",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/checklist",
        body: Some(r#"{"text": "Intruder item", "is_required": true}"#),
    },
    Route {
        method: "PATCH",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/checklist/{item_id}",
        body: Some(r#"{"is_completed": true}"#),
    },
    Route {
        method: "DELETE",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/checklist/{item_id}",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/time-in-stage",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/events?after_seq=0",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/metrics",
        body: NO_BODY,
    },
    Route {
        method: "GET",
        template: "/api/v1/accounts/{account_id}/boards/{board_id}/sla-breaches",
        body: NO_BODY,
    },
];

/// Operations that are not tenant-scoped, and why.
const NOT_TENANT_SCOPED: &[(&str, &str, &str)] = &[
    ("GET", "/health/live", "public health"),
    ("GET", "/health/ready", "public health"),
    ("POST", "/api/v1/auth/login", "anonymous sign-in"),
    (
        "POST",
        "/api/v1/auth/refresh",
        "anonymous: the refresh token names its own session",
    ),
    (
        "POST",
        "/api/v1/auth/logout",
        "acts on the caller's own session",
    ),
    ("POST", "/api/v1/auth/sso", "anonymous sign-in"),
    ("GET", "/api/v1/me", "the caller's own profile"),
    ("PATCH", "/api/v1/me", "the caller's own profile"),
    (
        "GET",
        "/api/v1/me/export",
        "the caller's own data (checked in privacy tests)",
    ),
    ("GET", "/api/v1/me/sessions", "the caller's own sessions"),
    ("DELETE", "/api/v1/me/sessions", "the caller's own sessions"),
    ("POST", "/api/v1/me/password", "the caller's own password"),
    (
        "GET",
        "/api/v1/instance-tokens/validate",
        "the caller's own token",
    ),
    (
        "GET",
        "/admin/tenants",
        "super_admin only (checked in admin tests)",
    ),
    (
        "GET",
        "/api/v1/accounts",
        "super_admin only: lists every tenant",
    ),
    (
        "POST",
        "/api/v1/accounts",
        "super_admin only: creates a tenant",
    ),
    (
        "GET",
        "/admin/tenants/{account_id}",
        "super_admin only (checked in admin tests)",
    ),
    (
        "POST",
        "/admin/impersonate",
        "super_admin only (checked in IAM tests)",
    ),
    (
        "GET",
        "/admin/audit-log",
        "super_admin only (checked in audit tests)",
    ),
];

/// One tenant and the resources the harness targets.
struct Tenant {
    account_id: Uuid,
    admin_token: String,
    user_id: Uuid,
    key_id: Uuid,
    api_key: String,
    token_id: Uuid,
    instance_token: String,
    session_id: Uuid,
    team_id: Uuid,
    audit_id: Uuid,
    /// A non-default board with the stages below, in order.
    board_id: Uuid,
    /// The first stage; it holds the card.
    stage_id: Uuid,
    /// The second stage (a move's or a stage delete's target).
    target_stage_id: Uuid,
    /// The third stage, final.
    final_stage_id: Uuid,
    card_id: Uuid,
    /// A checklist item of the card.
    item_id: Uuid,
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap_or(Value::Null)
}

async fn tenant(app: &TestApp, name: &str) -> Tenant {
    let account_id = app.seed_account(name).await;
    let admin_email = format!("admin@{name}.test");
    app.seed_user(account_id, &admin_email, "admin").await;
    let user_id = app
        .seed_user(account_id, &format!("agent@{name}.test"), "agent")
        .await;
    let admin_token = token_of(&app.login(&admin_email, USER_PASSWORD).await);
    let agent_login = app
        .login(&format!("agent@{name}.test"), USER_PASSWORD)
        .await;
    let session_id = session_id_of(&token_of(&agent_login));
    let all_scopes: Vec<&str> = vec![
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
    let key = json_of(
        app.http
            .post(app.url(&format!("/api/v1/accounts/{account_id}/api-keys")))
            .bearer_auth(&admin_token)
            .json(&json!({"name": "harness", "scopes": all_scopes}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let token = json_of(
        app.http
            .post(app.url(&format!("/api/v1/accounts/{account_id}/instance-tokens")))
            .bearer_auth(&admin_token)
            .json(&json!({"scopes": ["users:read", "teams:read", "boards:read", "cards:read", "cards:write", "inboxes:read", "providers:read", "messages:send"], "ttl_minutes": 60}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let team = json_of(
        app.http
            .post(app.url(&format!("/api/v1/accounts/{account_id}/teams")))
            .bearer_auth(&admin_token)
            .json(&json!({"name": format!("{name} team")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let team_id: Uuid = team["id"].as_str().unwrap().parse().unwrap();
    app.http
        .post(app.url(&format!(
            "/api/v1/accounts/{account_id}/teams/{team_id}/members"
        )))
        .bearer_auth(&admin_token)
        .json(&json!({"user_id": user_id}))
        .send()
        .await
        .unwrap();
    let audit = json_of(
        app.http
            .get(app.url(&format!(
                "/api/v1/accounts/{account_id}/audit-log?action=api_key.created"
            )))
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let kanban = kanban_objects(app, account_id, &admin_token).await;
    Tenant {
        audit_id: audit["items"][0]["id"].as_str().unwrap().parse().unwrap(),
        team_id,
        account_id,
        admin_token,
        user_id,
        key_id: key["id"].as_str().unwrap().parse().unwrap(),
        api_key: key["key"].as_str().unwrap().to_owned(),
        token_id: token["id"].as_str().unwrap().parse().unwrap(),
        instance_token: token["token"].as_str().unwrap().to_owned(),
        session_id,
        board_id: kanban.board_id,
        stage_id: kanban.stage_id,
        target_stage_id: kanban.target_stage_id,
        final_stage_id: kanban.final_stage_id,
        card_id: kanban.card_id,
        item_id: kanban.item_id,
    }
}

/// The kanban objects the table targets.
struct Kanban {
    board_id: Uuid,
    stage_id: Uuid,
    target_stage_id: Uuid,
    final_stage_id: Uuid,
    card_id: Uuid,
    item_id: Uuid,
}

fn id_of(value: &Value) -> Uuid {
    value
        .as_str()
        .unwrap_or_else(|| panic!("no id: {value}"))
        .parse()
        .unwrap()
}

/// Puts the account on the `professional` plan (a free account has only its default board)
/// and creates a board with three stages, a card in the first and a checklist item, through the
/// API as the tenant's admin.
async fn kanban_objects(app: &TestApp, account_id: Uuid, admin_token: &str) -> Kanban {
    let root = app.admin_token().await;
    let plan = app
        .http
        .patch(app.url(&format!("/api/v1/accounts/{account_id}/entitlements")))
        .bearer_auth(&root)
        .json(&json!({"plan": "professional"}))
        .send()
        .await
        .unwrap();
    assert_eq!(plan.status(), 200);
    let created = |path: String, body: Value| {
        let request = app
            .http
            .post(app.url(&format!("/api/v1/accounts/{account_id}{path}")))
            .bearer_auth(admin_token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 201, "POST {path}");
            json_of(response).await
        }
    };
    let board = created(
        "/boards".into(),
        json!({"name": "Harness board", "stages": [
            {"name": "Lead"}, {"name": "Proposal"}, {"name": "Won", "is_final": true}
        ]}),
    )
    .await;
    let board_id = id_of(&board["id"]);
    let stages: Vec<Uuid> = board["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| id_of(&s["id"]))
        .collect();
    let card = created(
        format!("/boards/{board_id}/cards"),
        json!({"stage_id": stages[0], "title": "Harness card"}),
    )
    .await;
    let card_id = id_of(&card["id"]);
    let item = created(
        format!("/boards/{board_id}/cards/{card_id}/checklist"),
        json!({"text": "Harness item"}),
    )
    .await;
    Kanban {
        board_id,
        stage_id: stages[0],
        target_stage_id: stages[1],
        final_stage_id: stages[2],
        card_id,
        item_id: id_of(&item["id"]),
    }
}

fn session_id_of(token: &str) -> Uuid {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().parse().unwrap()
}

/// Fills a template: the account and every resource id from `ids`.
fn fill(template: &str, account: Uuid, ids: &Tenant) -> String {
    template
        .replace("{account_id}", &account.to_string())
        .replace("{user_id}", &ids.user_id.to_string())
        .replace("{key_id}", &ids.key_id.to_string())
        .replace("{token_id}", &ids.token_id.to_string())
        .replace("{session_id}", &ids.session_id.to_string())
        .replace("{team_id}", &ids.team_id.to_string())
        .replace("{audit_id}", &ids.audit_id.to_string())
        .replace("{board_id}", &ids.board_id.to_string())
        .replace("{stage_id}", &ids.stage_id.to_string())
        .replace("{target_stage_id}", &ids.target_stage_id.to_string())
        .replace("{final_stage_id}", &ids.final_stage_id.to_string())
        .replace("{card_id}", &ids.card_id.to_string())
        .replace("{item_id}", &ids.item_id.to_string())
}

/// Ids that exist nowhere.
fn phantom(account_id: Uuid) -> Tenant {
    Tenant {
        account_id,
        admin_token: String::new(),
        user_id: Uuid::now_v7(),
        key_id: Uuid::now_v7(),
        api_key: String::new(),
        token_id: Uuid::now_v7(),
        instance_token: String::new(),
        session_id: Uuid::now_v7(),
        team_id: Uuid::now_v7(),
        audit_id: Uuid::now_v7(),
        board_id: Uuid::now_v7(),
        stage_id: Uuid::now_v7(),
        target_stage_id: Uuid::now_v7(),
        final_stage_id: Uuid::now_v7(),
        card_id: Uuid::now_v7(),
        item_id: Uuid::now_v7(),
    }
}

enum Credential<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
}

async fn answer(
    app: &TestApp,
    credential: &Credential<'_>,
    route: &Route,
    path: &str,
    body: Option<String>,
) -> (u16, Value) {
    let method = Method::from_bytes(route.method.as_bytes()).unwrap();
    let mut request = app.http.request(method, app.url(path));
    request = match credential {
        Credential::Bearer(token) => request.bearer_auth(token),
        Credential::ApiKey(key) => request.header("x-api-key", *key),
    };
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, json_of(response).await)
}

async fn snapshot_of(app: &TestApp, b: &Tenant) -> Value {
    let users = json_of(
        app.http
            .get(app.url(&format!("/api/v1/accounts/{}/users", b.account_id)))
            .bearer_auth(&b.admin_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let keys = json_of(
        app.http
            .get(app.url(&format!("/api/v1/accounts/{}/api-keys", b.account_id)))
            .bearer_auth(&b.admin_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let tokens = json_of(
        app.http
            .get(app.url(&format!(
                "/api/v1/accounts/{}/instance-tokens",
                b.account_id
            )))
            .bearer_auth(&b.admin_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let strip = |mut v: Value| {
        // last_used_at moves with B's own requests made here.
        if let Some(items) = v["items"].as_array_mut() {
            for item in items {
                item.as_object_mut().map(|o| o.remove("last_used_at"));
                item.as_object_mut().map(|o| o.remove("last_login_at"));
            }
        }
        v
    };
    let get = |path: String| {
        let request = app.http.get(app.url(&path)).bearer_auth(&b.admin_token);
        async move { json_of(request.send().await.unwrap()).await }
    };
    let teams = get(format!("/api/v1/accounts/{}/teams", b.account_id)).await;
    let members = get(format!(
        "/api/v1/accounts/{}/teams/{}/members",
        b.account_id, b.team_id
    ))
    .await;
    let account = get(format!("/api/v1/accounts/{}", b.account_id)).await;
    let features = get(format!("/api/v1/accounts/{}/features", b.account_id)).await;
    // Kanban: any write would change a board's seq, a stage, the card or its checklist.
    let board = format!("/api/v1/accounts/{}/boards/{}", b.account_id, b.board_id);
    let card = format!("{board}/cards/{}", b.card_id);
    let kanban = json!({
        "boards": get(format!("/api/v1/accounts/{}/boards", b.account_id)).await,
        "board": get(board.clone()).await,
        "cards": get(format!("{board}/cards")).await,
        "card": get(card.clone()).await,
        "history": get(format!("{card}/history")).await,
        "events": get(format!("{board}/events?after_seq=0")).await,
    });
    json!({ "users": strip(users), "keys": strip(keys), "tokens": strip(tokens), "teams": teams,
            "members": strip(members), "account": account, "features": features,
            "kanban": kanban })
}

#[actix_rt::test]
async fn account_a_gets_exactly_the_answer_for_a_missing_id_on_b_s_resources() {
    let app = TestApp::start_with(|c| c.rate_limit_enabled = false).await;
    let a = tenant(&app, "alpha").await;
    let b = tenant(&app, "beta").await;
    let before = snapshot_of(&app, &b).await;
    let principals = [
        ("admin session", Credential::Bearer(&a.admin_token)),
        ("api key", Credential::ApiKey(&a.api_key)),
        ("instance token", Credential::Bearer(&a.instance_token)),
    ];
    let mut cases = 0;
    for route in ROUTES {
        for (kind, credential) in &principals {
            // B in the path, and B's ids under A's own path.
            for account in [b.account_id, a.account_id] {
                let path = fill(route.template, account, &b);
                let control_account = if account == b.account_id {
                    Uuid::now_v7()
                } else {
                    a.account_id
                };
                let control = fill(route.template, control_account, &phantom(control_account));
                if path == control {
                    continue; // a route without ids under A's own path is not a cross-tenant case
                }
                let payload = route.body.map(|t| fill(t, account, &b));
                let control_payload = route
                    .body
                    .map(|t| fill(t, control_account, &phantom(control_account)));
                let (status, body) = answer(&app, credential, route, &path, payload).await;
                let (control_status, control_body) =
                    answer(&app, credential, route, &control, control_payload).await;
                assert!(
                    !(200..300).contains(&status),
                    "{kind} {} {path}: {status} {body}",
                    route.method
                );
                assert_eq!(
                    (status, &body["code"]),
                    (control_status, &control_body["code"]),
                    "{kind} {} {path} must answer like a missing id",
                    route.method
                );
                cases += 1;
            }
        }
    }
    assert_eq!(snapshot_of(&app, &b).await, before, "B is unchanged");
    // B's credentials still work.
    let me = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&b.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let listed = app
        .http
        .get(app.url(&format!("/api/v1/accounts/{}/users", b.account_id)))
        .header("x-api-key", &b.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    eprintln!("cross-tenant cases run: {cases}");
    assert!(cases >= ROUTES.len() * 3);
    app.stop().await;
}

/// Which of B's objects a [`FOREIGN_REFERENCES`] case names.
#[derive(Clone, Copy, Debug)]
enum Foreign {
    Stage,
    Card,
    User,
}

/// Requests on A's own board whose body or query names one of B's objects as `{foreign}`; the
/// other placeholders are A's. kanban.md: another tenant's stage gets "the same body" as a
/// missing one; iam.md §3: body references answer exactly like a nonexistent id.
const FOREIGN_REFERENCES: &[(Route, Foreign)] = &[
    (
        Route {
            method: "POST",
            template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards",
            body: Some(r#"{"stage_id": "{foreign}", "title": "Misplaced"}"#),
        },
        Foreign::Stage,
    ),
    (
        Route {
            method: "POST",
            template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards",
            body: Some(r#"{"stage_id": "{stage_id}", "title": "Misassigned", "assignee_id": "{foreign}"}"#),
        },
        Foreign::User,
    ),
    (
        Route {
            method: "PATCH",
            template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}",
            body: Some(r#"{"assignee_id": "{foreign}"}"#),
        },
        Foreign::User,
    ),
    (
        Route {
            method: "POST",
            template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/move",
            body: Some(r#"{"stage_id": "{foreign}"}"#),
        },
        Foreign::Stage,
    ),
    (
        Route {
            method: "POST",
            template: "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/move",
            body: Some(r#"{"stage_id": "{target_stage_id}", "after_card_id": "{foreign}"}"#),
        },
        Foreign::Card,
    ),
    (
        Route {
            method: "DELETE",
            template: "/api/v1/accounts/{account_id}/boards/{board_id}/stages/{stage_id}?move_cards_to={foreign}",
            body: NO_BODY,
        },
        Foreign::Stage,
    ),
    (
        Route {
            method: "POST",
            template: "/api/v1/accounts/{account_id}/boards/{board_id}/stages/reorder",
            body: Some(r#"{"stage_ids": ["{stage_id}", "{target_stage_id}", "{final_stage_id}", "{foreign}"]}"#),
        },
        Foreign::Stage,
    ),
    (
        Route {
            method: "PATCH",
            template: "/api/v1/accounts/{account_id}/boards/{board_id}",
            body: Some(r#"{"settings": {"chatwoot_status_map": {"resolved": "{foreign}"}}}"#),
        },
        Foreign::Stage,
    ),
];

/// An answer with `id` written as `<id>` and without its request id, so the answers for two
/// ids compare.
fn without_id(body: &Value, id: Uuid) -> Value {
    let mut body = body.clone();
    if let Some(fields) = body.as_object_mut() {
        fields.remove("request_id");
    }
    serde_json::from_str(&body.to_string().replace(&id.to_string(), "<id>")).unwrap()
}

#[actix_rt::test]
async fn b_s_kanban_ids_in_the_body_of_a_s_own_requests_answer_like_missing_ids() {
    let app = TestApp::start_with(|c| c.rate_limit_enabled = false).await;
    let a = tenant(&app, "alpha").await;
    let b = tenant(&app, "beta").await;
    let before = snapshot_of(&app, &b).await;
    let a_before = snapshot_of(&app, &a).await;
    let principals = [
        ("admin session", Credential::Bearer(&a.admin_token)),
        ("api key", Credential::ApiKey(&a.api_key)),
    ];
    for (route, foreign) in FOREIGN_REFERENCES {
        let theirs = match foreign {
            Foreign::Stage => b.stage_id,
            Foreign::Card => b.card_id,
            Foreign::User => b.user_id,
        };
        for (kind, credential) in &principals {
            let mut answers = Vec::new();
            for id in [theirs, Uuid::now_v7()] {
                let with = |template: &str| {
                    fill(template, a.account_id, &a).replace("{foreign}", &id.to_string())
                };
                let path = with(route.template);
                let (status, body) =
                    answer(&app, credential, route, &path, route.body.map(with)).await;
                assert!(
                    !(200..300).contains(&status),
                    "{kind} {} {path} with B's {foreign:?}: {status} {body}",
                    route.method
                );
                answers.push((status, without_id(&body, id)));
            }
            assert_eq!(
                answers[0], answers[1],
                "{kind} {} {}: B's {foreign:?} must answer like a missing one",
                route.method, route.template
            );
        }
    }
    assert_eq!(snapshot_of(&app, &b).await, before, "B is unchanged");
    assert_eq!(
        snapshot_of(&app, &a).await,
        a_before,
        "the refused writes changed nothing"
    );
    app.stop().await;
}

/// A template without its query string.
fn openapi_path(template: &str) -> &str {
    template.split('?').next().unwrap_or(template)
}

#[actix_rt::test]
async fn every_openapi_operation_is_in_the_isolation_table_or_declared_not_tenant_scoped() {
    let app = TestApp::start().await;
    let document: Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let covered: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), openapi_path(r.template).to_owned()))
        .chain(
            NOT_TENANT_SCOPED
                .iter()
                .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    let mut missing = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let key = (method.to_uppercase(), path.clone());
            if !covered.contains(&key) {
                missing.push(format!("{} {}", key.0, key.1));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes without a cross-tenant case: {missing:?}"
    );
    app.stop().await;
}
