//! Helpers of the kanban realtime suite: tenants on a plan with boards, REST calls with any
//! credential, board paths, websocket subscriptions, expected frames and SQL reads.

use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

use crate::harness::*;

// ---------------------------------------------------------------------------------------------
// Apps, tenants, principals
// ---------------------------------------------------------------------------------------------

/// A test app without rate limits (the suite logs in several users and fires bursts of writes).
pub async fn start() -> TestApp {
    TestApp::start_with(|c| c.rate_limit_enabled = false).await
}

/// A signed-in user of a tenant.
pub struct User {
    pub id: Uuid,
    pub token: String,
}

/// A seeded account on the `professional` plan with a signed-in admin.
pub struct Tenant {
    pub id: Uuid,
    pub admin: User,
}

impl Tenant {
    /// Seeds a user of this tenant with `role` and signs them in.
    pub async fn member(&self, app: &TestApp, local: &str, role: &str) -> User {
        let email = format!("{local}@{}.test", self.id.simple());
        let id = app.seed_user(self.id, &email, role).await;
        let login = app.login(&email, USER_PASSWORD).await;
        assert_eq!(login["user"]["id"], id.to_string());
        User {
            id,
            token: token_of(&login),
        }
    }

    /// The tenant's default board (kanban.md: created with the account).
    pub async fn default_board(&self, app: &TestApp) -> Board {
        let list = ok(
            app,
            &self.admin.token,
            Method::GET,
            &boards_path(self.id),
            None,
            200,
        )
        .await;
        let defaults: Vec<&Value> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|b| b["is_default"] == true)
            .collect();
        assert_eq!(defaults.len(), 1, "exactly one default board: {list}");
        Board::load(app, &self.admin.token, self.id, uuid_of(&defaults[0]["id"])).await
    }

    /// Creates a board with these stages (`[{name, is_final?, …}]`) as the admin.
    pub async fn create_board(&self, app: &TestApp, name: &str, stages: Value) -> Board {
        let body = ok(
            app,
            &self.admin.token,
            Method::POST,
            &boards_path(self.id),
            Some(json!({ "name": name, "stages": stages })),
            201,
        )
        .await;
        Board::load(app, &self.admin.token, self.id, uuid_of(&body["id"])).await
    }

    /// Creates an instance token of the admin with these scopes; returns the secret.
    pub async fn instance_token(&self, app: &TestApp, scopes: &[&str]) -> String {
        let body = ok(
            app,
            &self.admin.token,
            Method::POST,
            &format!("/api/v1/accounts/{}/instance-tokens", self.id),
            Some(json!({ "scopes": scopes, "ttl_minutes": 60 })),
            201,
        )
        .await;
        body["token"].as_str().expect("token").to_owned()
    }

    /// Creates an API key with these scopes; returns the secret.
    pub async fn api_key(&self, app: &TestApp, scopes: &[&str]) -> String {
        let body = ok(
            app,
            &self.admin.token,
            Method::POST,
            &format!("/api/v1/accounts/{}/api-keys", self.id),
            Some(json!({ "name": "kanban live", "scopes": scopes })),
            201,
        )
        .await;
        body["key"].as_str().expect("key").to_owned()
    }
}

/// Seeds an account with an admin and puts it on the `professional` plan (20 boards, 20 users).
pub async fn tenant(app: &TestApp, name: &str) -> Tenant {
    let id = app.seed_account(name).await;
    set_entitlements(app, id, json!({ "plan": "professional" })).await;
    let email = format!("admin@{}.test", id.simple());
    let admin = app.seed_user(id, &email, "admin").await;
    let token = token_of(&app.login(&email, USER_PASSWORD).await);
    Tenant {
        id,
        admin: User { id: admin, token },
    }
}

/// `PATCH …/entitlements` as the bootstrap super_admin (200 expected).
pub async fn set_entitlements(app: &TestApp, account: Uuid, body: Value) -> Value {
    let root = app.admin_token().await;
    ok(
        app,
        &root,
        Method::PATCH,
        &format!("/api/v1/accounts/{account}/entitlements"),
        Some(body),
        200,
    )
    .await
}

pub fn uuid_of(value: &Value) -> Uuid {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a uuid string: {value}"))
        .parse()
        .expect("uuid")
}

// ---------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------

/// A request with a credential: an API key (`wp_live_…`) goes in `X-API-Key`, anything else
/// (access or instance token) is a bearer token.
pub fn request(
    app: &TestApp,
    cred: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::RequestBuilder {
    let builder = app.http.request(method, app.url(path));
    let builder = if cred.starts_with("wp_live_") {
        builder.header("x-api-key", cred)
    } else {
        builder.bearer_auth(cred)
    };
    match body {
        Some(body) => builder.json(&body),
        None => builder,
    }
}

pub async fn send(
    app: &TestApp,
    cred: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    request(app, cred, method, path, body)
        .send()
        .await
        .expect("request")
}

/// Sends, asserts `status` (showing the body otherwise) and returns the JSON body (`Null` when
/// empty).
pub async fn ok(
    app: &TestApp,
    cred: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let label = format!("{method} {path}");
    let response = send(app, cred, method, path, body).await;
    let got = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "{label}: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON body")
    }
}

/// Sends and asserts a conventions.md error with this status and code; returns the body.
pub async fn refused(
    app: &TestApp,
    cred: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: &str,
) -> Value {
    assert_error(send(app, cred, method, path, body).await, status, code).await
}

// ---------------------------------------------------------------------------------------------
// Boards and their paths
// ---------------------------------------------------------------------------------------------

pub fn boards_path(account: Uuid) -> String {
    format!("/api/v1/accounts/{account}/boards")
}

/// A board as loaded over REST: ids of its stages in position order and its `seq` then.
#[derive(Clone, Debug)]
pub struct Board {
    pub account: Uuid,
    pub id: Uuid,
    pub seq: i64,
    pub stages: Vec<Uuid>,
    /// The first final stage.
    pub final_stage: Uuid,
}

impl Board {
    /// `GET /boards/{b}` with `cred`.
    pub async fn load(app: &TestApp, cred: &str, account: Uuid, id: Uuid) -> Board {
        let mut board = Board {
            account,
            id,
            seq: 0,
            stages: Vec::new(),
            final_stage: Uuid::nil(),
        };
        let body = ok(app, cred, Method::GET, &board.path(), None, 200).await;
        assert_eq!(body["id"], id.to_string(), "{body}");
        board.seq = body["seq"].as_i64().expect("seq");
        let stages = body["stages"].as_array().expect("stages");
        board.stages = stages.iter().map(|s| uuid_of(&s["id"])).collect();
        board.final_stage = stages
            .iter()
            .find(|s| s["is_final"] == true)
            .map(|s| uuid_of(&s["id"]))
            .expect("a final stage");
        board
    }

    /// The board's `seq` as REST reports it now.
    pub async fn current_seq(&self, app: &TestApp, cred: &str) -> i64 {
        ok(app, cred, Method::GET, &self.path(), None, 200).await["seq"]
            .as_i64()
            .expect("seq")
    }

    pub fn topic(&self) -> String {
        format!("board:{}", self.id)
    }

    pub fn path(&self) -> String {
        format!("{}/{}", boards_path(self.account), self.id)
    }

    pub fn stages_path(&self) -> String {
        format!("{}/stages", self.path())
    }

    pub fn stage_path(&self, stage: Uuid) -> String {
        format!("{}/stages/{stage}", self.path())
    }

    pub fn reorder_path(&self) -> String {
        format!("{}/stages/reorder", self.path())
    }

    pub fn cards_path(&self) -> String {
        format!("{}/cards", self.path())
    }

    pub fn card_path(&self, card: Uuid) -> String {
        format!("{}/cards/{card}", self.path())
    }

    pub fn move_path(&self, card: Uuid) -> String {
        format!("{}/move", self.card_path(card))
    }

    pub fn checklist_path(&self, card: Uuid) -> String {
        format!("{}/checklist", self.card_path(card))
    }

    pub fn events_path(&self, after_seq: i64) -> String {
        format!("{}/events?after_seq={after_seq}", self.path())
    }

    /// Creates a card (201 expected); returns it.
    pub async fn create_card(&self, app: &TestApp, cred: &str, body: Value) -> Value {
        ok(app, cred, Method::POST, &self.cards_path(), Some(body), 201).await
    }

    /// Creates a card titled `title` in `stage` (optionally assigned); returns its id.
    pub async fn new_card(
        &self,
        app: &TestApp,
        cred: &str,
        stage: Uuid,
        title: &str,
        assignee: Option<Uuid>,
    ) -> Uuid {
        let mut body = json!({ "stage_id": stage, "title": title });
        if let Some(user) = assignee {
            body["assignee_id"] = json!(user);
        }
        uuid_of(&self.create_card(app, cred, body).await["id"])
    }

    /// `PATCH` a card (200 expected); returns it.
    pub async fn update_card(&self, app: &TestApp, cred: &str, card: Uuid, body: Value) -> Value {
        ok(
            app,
            cred,
            Method::PATCH,
            &self.card_path(card),
            Some(body),
            200,
        )
        .await
    }

    /// Moves a card (200 expected); returns `{card, history_entry}`.
    pub async fn move_card(&self, app: &TestApp, cred: &str, card: Uuid, body: Value) -> Value {
        ok(
            app,
            cred,
            Method::POST,
            &self.move_path(card),
            Some(body),
            200,
        )
        .await
    }

    /// The card as REST shows it now, without the `checklist` that only `GET` adds (so it
    /// compares with the `card` of an event).
    pub async fn card_now(&self, app: &TestApp, cred: &str, card: Uuid) -> Value {
        let mut body = ok(app, cred, Method::GET, &self.card_path(card), None, 200).await;
        body.as_object_mut().expect("card").remove("checklist");
        body
    }

    /// The stage as `GET …/stages` lists it now.
    pub async fn stage_now(&self, app: &TestApp, cred: &str, stage: Uuid) -> Value {
        let list = ok(app, cred, Method::GET, &self.stages_path(), None, 200).await;
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|s| s["id"] == stage.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("stage {stage} not listed: {list}"))
    }

    /// The board as REST shows it now, without its stages (the `board` of `board.updated`).
    pub async fn board_now(&self, app: &TestApp, cred: &str) -> Value {
        let mut body = ok(app, cred, Method::GET, &self.path(), None, 200).await;
        body.as_object_mut().expect("board").remove("stages");
        body
    }

    /// `GET …/events?after_seq=N` (200 expected), its items [`normalized`].
    pub async fn events(&self, app: &TestApp, cred: &str, after_seq: i64) -> Value {
        let mut body = ok(
            app,
            cred,
            Method::GET,
            &self.events_path(after_seq),
            None,
            200,
        )
        .await;
        for item in body["items"].as_array_mut().expect("items") {
            *item = normalized(item.take());
        }
        body
    }
}

// ---------------------------------------------------------------------------------------------
// Expected frames (kanban.md "Events", realtime.md, docs/kanban-api.md)
// ---------------------------------------------------------------------------------------------

/// `{event, board_id, seq}` plus the fields of `payload`.
pub fn frame(event: &str, board: Uuid, seq: i64, payload: Value) -> Value {
    let mut frame = json!({ "event": event, "board_id": board, "seq": seq });
    let fields = frame.as_object_mut().expect("object");
    for (key, value) in payload.as_object().expect("payload object") {
        fields.insert(key.clone(), value.clone());
    }
    frame
}

pub fn card_created(board: Uuid, seq: i64, card: &Value) -> Value {
    frame("card.created", board, seq, json!({ "card": card }))
}

pub fn card_updated(board: Uuid, seq: i64, card: &Value, changed: &[&str]) -> Value {
    frame(
        "card.updated",
        board,
        seq,
        json!({ "card": card, "changed": changed }),
    )
}

/// `card.moved` for a move answered `moved` (`{card, history_entry}`) by `actor`, without a
/// renumbering.
pub fn card_moved(board: Uuid, seq: i64, moved: &Value, from: Uuid, actor: Uuid) -> Value {
    frame(
        "card.moved",
        board,
        seq,
        json!({
            "card": moved["card"],
            "from_stage_id": from,
            "to_stage_id": moved["card"]["stage_id"],
            "history_id": moved["history_entry"]["id"],
            "actor_id": actor,
            "automation_id": null,
        }),
    )
}

pub fn card_deleted(board: Uuid, seq: i64, card: Uuid, stage: Uuid) -> Value {
    frame(
        "card.deleted",
        board,
        seq,
        json!({ "card_id": card, "stage_id": stage }),
    )
}

pub fn seq_skip(board: Uuid, seq: i64) -> Value {
    json!({ "event": "seq.skip", "board_id": board, "seq": seq })
}

pub fn subscribed(board: Uuid, current_seq: i64, reference: &str) -> Value {
    json!({
        "event": "subscribed",
        "topic": format!("board:{board}"),
        "board_id": board,
        "current_seq": current_seq,
        "ref": reference,
    })
}

pub fn unsubscribed(board: Uuid, reason: &str) -> Value {
    json!({
        "event": "unsubscribed",
        "topic": format!("board:{board}"),
        "board_id": board,
        "reason": reason,
    })
}

/// A frame with its `changed` list sorted, so lists of field names compare as sets.
pub fn normalized(mut frame: Value) -> Value {
    if let Some(changed) = frame.get_mut("changed").and_then(Value::as_array_mut) {
        changed.sort_by_key(|name| name.to_string());
    }
    frame
}

// ---------------------------------------------------------------------------------------------
// Websockets
// ---------------------------------------------------------------------------------------------

/// Tenant-wide frames that may arrive at any time and are not about a board topic.
const UNRELATED: &[&str] = &[
    "presence.update",
    "account.feature.updated",
    "auth.expiring",
];

/// Opens `/ws` with `cred` (an API key in `X-API-Key`, a token as `?token=`) and consumes
/// `session.ready`.
pub async fn connect(app: &TestApp, cred: &str) -> Ws {
    if !cred.starts_with("wp_live_") {
        return app.ws_ready(cred).await;
    }
    let mut upgrade = app.ws_url("/ws").into_client_request().expect("request");
    upgrade
        .headers_mut()
        .insert("x-api-key", cred.parse().expect("header value"));
    let (mut ws, _) = tokio_tungstenite::connect_async(upgrade)
        .await
        .expect("websocket upgrade with X-API-Key");
    let ready = next_json(&mut ws).await;
    assert_eq!(ready["event"], "session.ready", "{ready}");
    assert_eq!(ready["user_id"], Value::Null, "an API key has no user");
    ws
}

/// The next frame that is not a tenant-wide announcement (each within 10 s).
pub async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let frame = next_json(ws).await;
        if !UNRELATED.contains(&frame["event"].as_str().unwrap_or_default()) {
            return frame;
        }
    }
}

/// Asserts that the next frames are exactly `expected`, in order (`changed` compared as a set).
pub async fn expect_frames(ws: &mut Ws, expected: &[Value]) {
    for (i, want) in expected.iter().enumerate() {
        let got = next_frame(ws).await;
        assert_eq!(
            normalized(got),
            normalized(want.clone()),
            "frame {i} of {}",
            expected.len()
        );
    }
}

pub async fn expect_frame(ws: &mut Ws, expected: Value) {
    expect_frames(ws, &[expected]).await;
}

/// Reads `n` frames.
pub async fn take_frames(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        frames.push(next_frame(ws).await);
    }
    frames
}

/// Asserts that nothing is queued for the session: a `ping` is answered by the very next frame.
/// Use after a witness subscriber has already received the event this session must not get.
pub async fn expect_quiet(ws: &mut Ws) {
    let t = rand::random::<u32>();
    send_json(ws, json!({ "op": "ping", "t": t })).await;
    assert_eq!(
        next_frame(ws).await,
        json!({ "event": "pong", "t": t }),
        "nothing but the pong"
    );
}

/// Sends `sub` with `topic` (any JSON value) and `ref`.
pub async fn send_sub(ws: &mut Ws, topic: Value, reference: &str) {
    send_json(ws, json!({ "op": "sub", "topic": topic, "ref": reference })).await;
}

/// Subscribes to `board` and asserts the whole `subscribed` frame; returns its `current_seq`.
pub async fn subscribe(ws: &mut Ws, board: Uuid) -> i64 {
    send_sub(ws, json!(format!("board:{board}")), "sub").await;
    let answer = next_frame(ws).await;
    let current_seq = answer["current_seq"]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer current_seq: {answer}"));
    assert!(current_seq >= 0, "{answer}");
    assert_eq!(answer, subscribed(board, current_seq, "sub"));
    current_seq
}

/// Sends `unsub` (no `ref`) and asserts the `unsubscribed` answer with reason `requested`.
pub async fn unsubscribe(ws: &mut Ws, board: Uuid) {
    send_json(
        ws,
        json!({ "op": "unsub", "topic": format!("board:{board}") }),
    )
    .await;
    expect_frame(ws, unsubscribed(board, "requested")).await;
}

/// Sends `sub` for `topic` and asserts an `error` frame with `code`, `op: "sub"`, the `ref`, the
/// topic echoed and a message; returns the frame.
pub async fn sub_refused(ws: &mut Ws, topic: &str, code: &str) -> Value {
    send_sub(ws, json!(topic), "refused").await;
    let error = next_frame(ws).await;
    let message = error["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "{error}");
    assert_eq!(
        error,
        json!({
            "event": "error",
            "code": code,
            "message": message,
            "op": "sub",
            "ref": "refused",
            "topic": topic,
        })
    );
    error
}

// ---------------------------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------------------------

/// A query returning one integer column `n` in one row.
pub async fn scalar(app: &TestApp, query: &str) -> i64 {
    let rows = app.rows(query).await;
    assert_eq!(rows.len(), 1, "one row from {query}");
    rows[0]["n"]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer n: {rows:?}"))
}
