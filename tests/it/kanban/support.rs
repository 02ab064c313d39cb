//! Shared helpers of the kanban tests: a client bound to one credential and one account path,
//! tenants with users and teams, board, stage and card shortcuts, error assertions, and direct
//! database access (rows as JSON, counts, a snapshot of every kanban row of an account for
//! "nothing changed" checks, and a `generate_series` card seeder).
//!
//! Cards seeded by SQL bypass the BoardActor, so tests seed a board before its first write
//! through the API.

#![allow(dead_code)]

use std::collections::BTreeSet;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};
use uuid::Uuid;

pub use crate::harness::*;

/// The non-UTC time zone of the tests (UTC−03:00 all year since 2019).
pub const TZ: &str = "America/Sao_Paulo";

/// The gap between neighbouring card positions (kanban.md, Positions).
pub const GAP: i64 = 65_536;

/// A test app whose sign-in rate limit does not get in the way of tests that log in many users.
pub async fn start() -> TestApp {
    TestApp::start_with(|c| c.rate_limit_login_per_min = 1000).await
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// One signed-in principal addressing one account's routes (`/api/v1/accounts/{account}…`).
#[derive(Clone)]
pub struct Client<'a> {
    pub app: &'a TestApp,
    pub token: String,
    /// The account in the path.
    pub account: Uuid,
    /// The user behind the token.
    pub id: Uuid,
}

impl<'a> Client<'a> {
    /// The absolute URL of a path relative to the account.
    pub fn url(&self, path: &str) -> String {
        self.app
            .url(&format!("/api/v1/accounts/{}{path}", self.account))
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.app
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// Any method, with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        let request = self.request(method, path);
        match body {
            Some(body) => request.json(body),
            None => request,
        }
        .send()
        .await
        .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    /// A GET with URL-encoded query parameters.
    pub async fn get_with(&self, path: &str, query: &[(&str, &str)]) -> Response {
        self.request(Method::GET, path)
            .query(query)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.request(Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().await.unwrap()
    }

    /// The same credential addressing another account's path.
    pub fn acting_in(&self, account: Uuid) -> Client<'a> {
        Client {
            account,
            ..self.clone()
        }
    }
}

/// The bootstrap super_admin, addressing the platform account.
pub async fn root(app: &TestApp) -> Client<'_> {
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    Client {
        app,
        token: token_of(&login),
        account: uuid(&login["user"]["account_id"]),
        id: uuid(&login["user"]["id"]),
    }
}

// Paths, relative to the account.

pub fn boards_path() -> String {
    "/boards".to_owned()
}

pub fn board_path(board: Uuid) -> String {
    format!("/boards/{board}")
}

pub fn stages_path(board: Uuid) -> String {
    format!("/boards/{board}/stages")
}

pub fn stage_path(board: Uuid, stage: Uuid) -> String {
    format!("/boards/{board}/stages/{stage}")
}

pub fn reorder_path(board: Uuid) -> String {
    format!("/boards/{board}/stages/reorder")
}

pub fn cards_path(board: Uuid) -> String {
    format!("/boards/{board}/cards")
}

pub fn card_path(board: Uuid, card: Uuid) -> String {
    format!("/boards/{board}/cards/{card}")
}

pub fn move_path(board: Uuid, card: Uuid) -> String {
    format!("/boards/{board}/cards/{card}/move")
}

pub fn history_path(board: Uuid, card: Uuid) -> String {
    format!("/boards/{board}/cards/{card}/history")
}

pub fn checklist_path(board: Uuid, card: Uuid) -> String {
    format!("/boards/{board}/cards/{card}/checklist")
}

pub fn checklist_item_path(board: Uuid, card: Uuid, item: Uuid) -> String {
    format!("/boards/{board}/cards/{card}/checklist/{item}")
}

pub fn time_in_stage_path(board: Uuid, card: Uuid) -> String {
    format!("/boards/{board}/cards/{card}/time-in-stage")
}

pub fn metrics_path(board: Uuid) -> String {
    format!("/boards/{board}/metrics")
}

pub fn sla_breaches_path(board: Uuid) -> String {
    format!("/boards/{board}/sla-breaches")
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// Asserts the status (showing the body when it differs) and returns the JSON body (`Null`
/// when empty).
pub async fn expect(response: Response, status: u16) -> Value {
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
pub async fn fail(response: Response, status: u16, code: &str) -> Value {
    fail_with_any(response, status, &[code]).await
}

/// Asserts an error of conventions.md's shape with this status and one of these codes.
pub async fn fail_with_any(response: Response, status: u16, codes: &[&str]) -> Value {
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
    assert!(
        codes.iter().any(|code| body["code"] == *code),
        "code not in {codes:?}: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(request_id.is_some(), "X-Request-Id header");
    assert_eq!(body["request_id"].as_str(), request_id.as_deref(), "{body}");
    body
}

/// Asserts a 400 `VALIDATION_ERROR` with an entry of `details.fields` whose `field` contains
/// `field` (so `color` matches `stages[0].color`).
pub async fn invalid(response: Response, field: &str) -> Value {
    let body = fail(response, 400, "VALIDATION_ERROR").await;
    let fields = body["details"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no details.fields: {body}"));
    assert!(
        fields
            .iter()
            .any(|f| f["field"].as_str().is_some_and(|name| name.contains(field))),
        "`{field}` not named: {body}"
    );
    body
}

/// Asserts a 400 for a bad query string: `VALIDATION_ERROR` or `BAD_REQUEST` (conventions.md
/// allows either for a 400).
pub async fn bad_request(response: Response) -> Value {
    fail_with_any(response, 400, &["VALIDATION_ERROR", "BAD_REQUEST"]).await
}

/// Asserts a 422 `UNPROCESSABLE`; returns the body.
pub async fn unprocessable(response: Response) -> Value {
    fail(response, 422, "UNPROCESSABLE").await
}

/// An error body without its `request_id`, to compare two refusals.
pub fn without_request_id(body: &Value) -> Value {
    let mut body = body.clone();
    body.as_object_mut()
        .expect("error object")
        .remove("request_id");
    body
}

/// The UUID in a JSON string.
pub fn uuid(value: &Value) -> Uuid {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .parse()
        .expect("uuid")
}

/// The `id` of a resource.
pub fn id(resource: &Value) -> Uuid {
    uuid(&resource["id"])
}

/// The array of a JSON value.
pub fn array(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
}

/// The `items` of a list page.
pub fn items(page: &Value) -> &Vec<Value> {
    array(&page["items"])
}

/// The ids of a list page's items.
pub fn ids(page: &Value) -> Vec<Uuid> {
    items(page).iter().map(id).collect()
}

/// A number that may come as a JSON number or a decimal string.
pub fn num(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().expect("f64"),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        other => panic!("not a number: {other}"),
    }
}

/// Asserts two numbers are within `tolerance`.
pub fn assert_close(actual: &Value, expected: f64, tolerance: f64, what: &str) {
    let got = num(actual);
    assert!(
        (got - expected).abs() <= tolerance,
        "{what}: got {got}, expected {expected} (± {tolerance})"
    );
}

/// Walks a list with `limit` and its cursors; returns every item in order.
pub async fn walk(
    client: &Client<'_>,
    path: &str,
    query: &[(&str, &str)],
    limit: usize,
) -> Vec<Value> {
    let max = limit;
    let limit = limit.to_string();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut params: Vec<(&str, &str)> = query.to_vec();
        params.push(("limit", &limit));
        if let Some(c) = &cursor {
            params.push(("cursor", c));
        }
        let page = expect(client.get_with(path, &params).await, 200).await;
        let page_items = items(&page).clone();
        assert!(page_items.len() <= max, "over limit: {page}");
        seen.extend(page_items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert!(
                    !page_items.is_empty(),
                    "a cursor after an empty page: {page}"
                );
                cursor = Some(next.to_owned());
            }
            None => return seen,
        }
    }
    panic!("the walk does not end");
}

// ---------------------------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------------------------

/// A seeded account (plan free, so it has its default board) with a signed-in admin.
pub struct Tenant<'a> {
    pub app: &'a TestApp,
    pub id: Uuid,
    /// Lower-case name, the domain of its users' emails.
    pub slug: String,
    pub admin: Client<'a>,
}

impl<'a> Tenant<'a> {
    pub async fn new(app: &'a TestApp, name: &str) -> Self {
        let id = app.seed_account(name).await;
        let slug = name.to_lowercase().replace(' ', "-");
        let admin = sign_in(app, id, &format!("admin@{slug}.test"), "admin").await;
        Self {
            app,
            id,
            slug,
            admin,
        }
    }

    /// A tenant on the `professional` plan (20 boards, 10 teams).
    pub async fn professional(app: &'a TestApp, name: &str) -> Self {
        let tenant = Self::new(app, name).await;
        tenant.entitlements(json!({ "plan": "professional" })).await;
        tenant
    }

    /// Seeds a user with this role and signs them in.
    pub async fn user(&self, name: &str, role: &str) -> Client<'a> {
        sign_in(
            self.app,
            self.id,
            &format!("{name}@{}.test", self.slug),
            role,
        )
        .await
    }

    /// `PATCH …/entitlements` as the super_admin (200 expected).
    pub async fn entitlements(&self, body: Value) -> Value {
        let root = root(self.app).await.acting_in(self.id);
        expect(root.patch("/entitlements", body).await, 200).await
    }

    /// A team with these members, written by SQL (team quotas are not under test here).
    pub async fn team(&self, name: &str, members: &[Uuid]) -> Uuid {
        let team = Uuid::now_v7();
        let mut sql = format!(
            "INSERT INTO teams (id, account_id, name) VALUES ('{team}', '{}', '{name}');",
            self.id
        );
        for member in members {
            sql.push_str(&format!(
                "INSERT INTO team_members (account_id, team_id, user_id) \
                 VALUES ('{}', '{team}', '{member}');",
                self.id
            ));
        }
        self.app.sql(&sql).await;
        team
    }

    /// The account's default board, with its stages.
    pub async fn default_board(&self) -> Value {
        default_board(&self.admin).await
    }
}

/// A stage of another tenant's default board (a fresh account, seeded for the purpose).
pub async fn foreign_stage(app: &TestApp, name: &str) -> Uuid {
    let other = app.seed_account(name).await;
    let found = app
        .rows(&format!(
            "SELECT s.id FROM stages s JOIN boards b ON b.id = s.board_id \
             WHERE b.account_id = '{other}' ORDER BY s.position LIMIT 1"
        ))
        .await;
    id(&found[0])
}

/// Seeds a user and signs them in.
pub async fn sign_in<'a>(app: &'a TestApp, account: Uuid, email: &str, role: &str) -> Client<'a> {
    let id = app.seed_user(account, email, role).await;
    let token = token_of(&app.login(email, USER_PASSWORD).await);
    Client {
        app,
        token,
        account,
        id,
    }
}

// ---------------------------------------------------------------------------------------------
// Boards, stages, cards
// ---------------------------------------------------------------------------------------------

/// `GET /boards` items.
pub async fn list_boards(client: &Client<'_>) -> Vec<Value> {
    let page = expect(client.get(&boards_path()).await, 200).await;
    assert_eq!(page["next_cursor"], Value::Null, "{page}");
    items(&page).clone()
}

/// `GET /boards/{b}` (200 expected).
pub async fn get_board(client: &Client<'_>, board: Uuid) -> Value {
    expect(client.get(&board_path(board)).await, 200).await
}

/// The default board, with its stages.
pub async fn default_board(client: &Client<'_>) -> Value {
    let boards = list_boards(client).await;
    let defaults: Vec<&Value> = boards.iter().filter(|b| b["is_default"] == true).collect();
    assert_eq!(defaults.len(), 1, "one default board: {boards:?}");
    get_board(client, id(defaults[0])).await
}

/// Stage specs named `names`, none final.
pub fn stage_specs(names: &[&str]) -> Value {
    Value::Array(names.iter().map(|n| json!({ "name": n })).collect())
}

/// `count` stage specs `Stage 1`, `Stage 2`…, none final.
pub fn numbered_stages(count: usize) -> Value {
    Value::Array(
        (1..=count)
            .map(|i| json!({ "name": format!("Stage {i}") }))
            .collect(),
    )
}

/// Creates a board with these stages (201 expected); returns it with its stages.
pub async fn new_board(client: &Client<'_>, name: &str, stages: &[&str]) -> Value {
    create_board(
        client,
        json!({ "name": name, "stages": stage_specs(stages) }),
    )
    .await
}

/// `POST /boards` (201 expected).
pub async fn create_board(client: &Client<'_>, body: Value) -> Value {
    expect(client.post(&boards_path(), body).await, 201).await
}

/// The ids of a board's `stages`, in order.
pub fn stage_ids(board: &Value) -> Vec<Uuid> {
    array(&board["stages"]).iter().map(id).collect()
}

/// `GET /boards/{b}/stages` ids, in order.
pub async fn listed_stage_ids(client: &Client<'_>, board: Uuid) -> Vec<Uuid> {
    let page = expect(client.get(&stages_path(board)).await, 200).await;
    let stages = items(&page);
    let positions: Vec<i64> = stages
        .iter()
        .map(|s| s["position"].as_i64().unwrap())
        .collect();
    assert_eq!(
        positions,
        (0..stages.len() as i64).collect::<Vec<_>>(),
        "dense positions: {page}"
    );
    ids(&page)
}

/// `POST /boards/{b}/cards` with `stage_id` and `fields` (a title is added when neither
/// `title` nor `contact_name` is given); 201 expected.
pub async fn new_card(client: &Client<'_>, board: Uuid, stage: Uuid, fields: Value) -> Value {
    let mut body = fields;
    let object = body.as_object_mut().expect("card fields");
    object.insert("stage_id".into(), json!(stage));
    if !object.contains_key("title") && !object.contains_key("contact_name") {
        object.insert("title".into(), json!("A card"));
    }
    expect(client.post(&cards_path(board), body).await, 201).await
}

/// `GET /boards/{b}/cards/{c}` (200 expected).
pub async fn get_card(client: &Client<'_>, board: Uuid, card: Uuid) -> Value {
    expect(client.get(&card_path(board, card)).await, 200).await
}

/// `POST …/move`.
pub async fn move_card(client: &Client<'_>, board: Uuid, card: Uuid, body: Value) -> Response {
    client.post(&move_path(board, card), body).await
}

/// `POST …/move` (200 expected); returns `{card, history_entry}`.
pub async fn moved(client: &Client<'_>, board: Uuid, card: Uuid, body: Value) -> Value {
    expect(move_card(client, board, card, body).await, 200).await
}

/// The card ids of one stage, top first, through the list endpoint.
pub async fn stage_order(client: &Client<'_>, board: Uuid, stage: Uuid) -> Vec<Uuid> {
    let stage = stage.to_string();
    let page = expect(
        client
            .get_with(
                &cards_path(board),
                &[("stage_id", &stage), ("limit", "200")],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(page["next_cursor"], Value::Null);
    ids(&page)
}

/// The history entries of a card, newest first (one page of up to 200).
pub async fn card_history(client: &Client<'_>, board: Uuid, card: Uuid) -> Vec<Value> {
    let page = expect(
        client
            .get_with(&history_path(board, card), &[("limit", "200")])
            .await,
        200,
    )
    .await;
    items(&page).clone()
}

// ---------------------------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------------------------

/// The single value `v` of a one-row query such as `SELECT count(*) AS v …`.
pub async fn value(app: &TestApp, query: &str) -> Value {
    let found = app.rows(query).await;
    assert_eq!(found.len(), 1, "one row expected from {query}");
    found[0]["v"].clone()
}

/// `SELECT count(*) FROM {from_where}`.
pub async fn count(app: &TestApp, from_where: &str) -> i64 {
    value(app, &format!("SELECT count(*) AS v FROM {from_where}"))
        .await
        .as_i64()
        .expect("count")
}

/// Every kanban row of an account (boards, stages, cards, history, checklist items), each
/// table ordered by id: two equal snapshots mean nothing changed.
pub async fn kanban_state(app: &TestApp, account: Uuid) -> Value {
    let table = |name: &str, alias: &str| {
        format!(
            "(SELECT coalesce(jsonb_agg(to_jsonb({alias}) - 'search' ORDER BY {alias}.id), '[]') \
             FROM {name} {alias} WHERE {alias}.account_id = '{account}') AS {name}"
        )
    };
    let query = format!(
        "SELECT {}, {}, {}, {}, {}",
        table("boards", "b"),
        table("stages", "s"),
        table("cards", "c"),
        table("card_history", "h"),
        table("card_checklist_items", "i"),
    );
    app.rows(&query).await.remove(0)
}

/// A database row of one card (without the search vector).
pub async fn card_row(app: &TestApp, card: Uuid) -> Value {
    value(
        app,
        &format!("SELECT to_jsonb(c) - 'search' AS v FROM cards c WHERE c.id = '{card}'"),
    )
    .await
}

/// History rows of a card, oldest first.
pub async fn history_rows(app: &TestApp, card: Uuid) -> Vec<Value> {
    app.rows(&format!(
        "SELECT * FROM card_history WHERE card_id = '{card}' ORDER BY created_at, id"
    ))
    .await
}

/// Cards seeded by SQL with `generate_series`: card `i` (0-based) goes to
/// `stages[i % stages.len()]` at position `i × 65 536`, titled `{prefix} {i:06}`.
/// `columns` adds or replaces columns with SQL expressions in terms of `i`.
pub struct Seed<'s> {
    pub account: Uuid,
    pub board: Uuid,
    pub stages: &'s [Uuid],
    pub count: usize,
    pub prefix: &'s str,
    pub columns: &'s [(&'s str, &'s str)],
}

/// Inserts the cards of a [`Seed`]; returns their ids in `i` order.
pub async fn seed_cards(app: &TestApp, seed: Seed<'_>) -> Vec<Uuid> {
    let stages = seed
        .stages
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    let title = format!("'{} ' || lpad(i::text, 6, '0')", seed.prefix);
    let stage = format!("(ARRAY[{stages}]::uuid[])[1 + i % {}]", seed.stages.len());
    let position = format!("i::bigint * {GAP}");
    let mut columns: Vec<(String, String)> = [
        ("id", "uuid_v7()"),
        ("account_id", &format!("'{}'", seed.account)),
        ("board_id", &format!("'{}'", seed.board)),
        ("stage_id", &stage),
        ("title", &title),
        ("position", &position),
        ("priority", "'medium'"),
        ("tags", "'{}'::text[]"),
        ("custom_fields", "'{}'::jsonb"),
        ("version", "1"),
        ("moved_at", "now()"),
        ("created_at", "now()"),
        ("updated_at", "now()"),
    ]
    .iter()
    .map(|(c, e)| (c.to_string(), e.to_string()))
    .collect();
    for (column, expression) in seed.columns {
        match columns.iter_mut().find(|(c, _)| c == column) {
            Some(existing) => existing.1 = expression.to_string(),
            None => columns.push((column.to_string(), expression.to_string())),
        }
    }
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    let expressions: Vec<&str> = columns.iter().map(|(_, e)| e.as_str()).collect();
    app.sql(&format!(
        "INSERT INTO cards ({}) SELECT {} FROM generate_series(0, {}) AS i",
        names.join(", "),
        expressions.join(", "),
        seed.count as i64 - 1
    ))
    .await;
    let found = app
        .rows(&format!(
            "SELECT id FROM cards WHERE board_id = '{}' AND title LIKE '{} %' ORDER BY title",
            seed.board, seed.prefix
        ))
        .await;
    assert_eq!(found.len(), seed.count, "seeded cards");
    found.iter().map(id).collect()
}

/// Asserts that card positions are unique within each stage of a board.
pub async fn assert_unique_positions(app: &TestApp, board: Uuid) {
    let duplicates = count(
        app,
        &format!(
            "(SELECT stage_id, position FROM cards WHERE board_id = '{board}' \
             GROUP BY stage_id, position HAVING count(*) > 1) d"
        ),
    )
    .await;
    assert_eq!(duplicates, 0, "duplicate positions on board {board}");
}

/// The set of ids of a list of resources.
pub fn id_set(resources: &[Value]) -> BTreeSet<Uuid> {
    resources.iter().map(id).collect()
}

/// The fields of a card (docs/kanban-api.md, Resources).
pub const CARD_FIELDS: &[&str] = &[
    "id",
    "account_id",
    "board_id",
    "stage_id",
    "position",
    "title",
    "chatwoot_conversation_id",
    "chatwoot_contact_id",
    "contact_name",
    "contact_phone",
    "contact_email",
    "contact_avatar_url",
    "inbox_name",
    "last_message_preview",
    "last_message_at",
    "value",
    "priority",
    "due_date",
    "tags",
    "custom_fields",
    "notes",
    "assignee_id",
    "assignee_name",
    "moved_at",
    "sla_breached_at",
    "version",
    "created_by",
    "created_at",
    "updated_at",
    "checklist_total",
    "checklist_done",
    "checklist_required_open",
];

/// The fields of a history entry (docs/kanban-api.md, Resources).
pub const HISTORY_FIELDS: &[&str] = &[
    "id",
    "card_id",
    "board_id",
    "action",
    "from_stage_id",
    "to_stage_id",
    "actor_id",
    "automation_id",
    "notes",
    "metadata",
    "created_at",
];

/// Asserts an object has every one of `fields`.
pub fn assert_fields(object: &Value, fields: &[&str]) {
    for field in fields {
        assert!(object.get(*field).is_some(), "no `{field}` in {object}");
    }
}

/// Sets a board's `settings.card_visibility` (`all` or `scoped`).
pub async fn set_visibility(admin: &Client<'_>, board: Uuid, visibility: &str) {
    let body = json!({ "settings": { "card_visibility": visibility } });
    let patched = expect(admin.patch(&board_path(board), body).await, 200).await;
    assert_eq!(patched["settings"]["card_visibility"], visibility);
}

/// An RFC 3339 timestamp of a JSON value.
pub fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a time: {value}")),
    )
    .expect("RFC 3339")
    .with_timezone(&chrono::Utc)
}
