//! Row-level security on the kanban tables (kanban.md "Data model", architecture.md's fourth
//! isolation layer): as the server's database role with another tenant's `app.account_id`,
//! queries see none of B's rows, updates and deletes touch none, and inserting a row that names
//! B is refused, while the identical insert in B's own scope is accepted.

use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Map, Value};
use uuid::Uuid;
use whatpro_hub::db::{self, DbError};

use super::support::*;
use crate::harness::*;

const TABLES: &[&str] = &[
    "boards",
    "stages",
    "cards",
    "card_history",
    "card_checklist_items",
    "board_events",
];

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// How a probe transaction ended: always rolled back, so nothing it did is kept.
enum Probe {
    /// The statement ran: rows affected, or the database's error.
    Ran(Result<usize, String>),
    /// The transaction itself could not be set up.
    Setup(String),
}

impl From<diesel::result::Error> for Probe {
    fn from(e: diesel::result::Error) -> Self {
        Probe::Setup(e.to_string())
    }
}

impl From<DbError> for Probe {
    fn from(e: DbError) -> Self {
        Probe::Setup(e.to_string())
    }
}

/// Runs `statement` as the server's role with `app.account_id = account`, then rolls back.
async fn probe(app: &TestApp, account: Uuid, statement: String) -> Result<usize, String> {
    let ended = db::tenant_tx(&app.server.state.db, account, |conn| {
        Box::pin(async move {
            let ran = diesel::sql_query(statement)
                .execute(conn)
                .await
                .map_err(|e| e.to_string());
            Err::<(), _>(Probe::Ran(ran))
        })
    })
    .await;
    match ended {
        Err(Probe::Ran(ran)) => ran,
        Err(Probe::Setup(e)) => panic!("probe transaction: {e}"),
        Ok(()) => unreachable!("the probe always rolls back"),
    }
}

/// `count(*)` of `table` (with an optional filter) as the server's role in `account`'s scope.
async fn count_in_scope(app: &TestApp, account: Uuid, table: &str, filter: &str) -> i64 {
    let sql = format!("SELECT count(*) AS n FROM {table} {filter}");
    db::tenant_tx(&app.server.state.db, account, |conn| {
        Box::pin(async move {
            Ok::<_, DbError>(diesel::sql_query(sql).get_result::<Count>(conn).await?)
        })
    })
    .await
    .map(|c| c.n)
    .unwrap_or_else(|e| panic!("count {table}: {e}"))
}

/// An `INSERT` of a copy of one of `account`'s rows of `table` (all writable columns, with
/// `overrides` so no unique key collides).
async fn copy_insert(app: &TestApp, table: &str, account: Uuid, overrides: Value) -> String {
    let columns = app
        .rows(&format!(
            "SELECT column_name AS c FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' \
             AND is_generated = 'NEVER' AND coalesce(identity_generation, '') <> 'ALWAYS' \
             ORDER BY ordinal_position"
        ))
        .await;
    let columns: Vec<String> = columns
        .iter()
        .map(|r| r["c"].as_str().expect("column").to_owned())
        .collect();
    let found = app
        .rows(&format!(
            "SELECT to_jsonb(t) AS r FROM {table} t WHERE account_id = '{account}' LIMIT 1"
        ))
        .await;
    let source = found
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {table} row of {account}"))["r"]
        .as_object()
        .expect("row")
        .clone();
    let mut row: Map<String, Value> = source
        .into_iter()
        .filter(|(column, _)| columns.contains(column))
        .collect();
    if row.contains_key("id") {
        row.insert("id".into(), json!(Uuid::now_v7()));
    }
    for (column, value) in overrides.as_object().expect("overrides") {
        row.insert(column.clone(), value.clone());
    }
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let literal = Value::Object(row).to_string().replace('\'', "''");
    format!(
        "INSERT INTO {table} ({list}) SELECT {list} FROM jsonb_populate_record(NULL::{table}, '{literal}'::jsonb)"
    )
}

/// Overrides that keep a copied row clear of the table's unique keys.
fn unique_overrides(table: &str) -> Value {
    match table {
        "boards" => json!({ "name": "RLS probe", "is_default": false }),
        "stages" => json!({ "name": "RLS probe", "position": 999 }),
        "cards" => json!({ "position": 999_999_999, "chatwoot_conversation_id": null }),
        "card_checklist_items" => json!({ "position": 999, "template_key": null }),
        "board_events" => json!({ "seq": 999_999_999 }),
        _ => json!({}),
    }
}

/// Gives `tenant` rows in every kanban table through the API.
async fn populate(app: &TestApp, tenant: &Tenant) {
    let board = tenant.default_board(app).await;
    let admin = tenant.admin.token.as_str();
    let card = board
        .new_card(app, admin, board.stages[0], "Row owner", None)
        .await;
    ok(
        app,
        admin,
        Method::POST,
        &board.checklist_path(card),
        Some(json!({ "text": "Item" })),
        201,
    )
    .await;
    board
        .move_card(app, admin, card, json!({ "stage_id": board.stages[1] }))
        .await;
}

#[actix_rt::test]
async fn with_the_wrong_account_id_kanban_rows_are_invisible_and_unwritable() {
    let app = start().await;
    let a = tenant(&app, "alpha").await;
    let b = tenant(&app, "beta").await;
    populate(&app, &a).await;
    populate(&app, &b).await;

    let owned_by = |table: &str, account: Uuid| {
        format!("SELECT count(*) AS n FROM {table} WHERE account_id = '{account}'")
    };
    let mut b_rows = Vec::new();
    for table in TABLES {
        let (mine, theirs) = (
            scalar(&app, &owned_by(table, a.id)).await,
            scalar(&app, &owned_by(table, b.id)).await,
        );
        b_rows.push(theirs);
        assert!(mine > 0 && theirs > 0, "{table}: both tenants have rows");

        // No WHERE clause: the policy alone decides what A's scope sees.
        assert_eq!(count_in_scope(&app, a.id, table, "").await, mine, "{table}");
        let b_filter = format!("WHERE account_id = '{}'", b.id);
        assert_eq!(
            count_in_scope(&app, a.id, table, &b_filter).await,
            0,
            "{table}"
        );
        assert_eq!(
            count_in_scope(&app, b.id, table, "").await,
            theirs,
            "{table}"
        );

        for statement in [
            format!("UPDATE {table} SET account_id = account_id {b_filter}"),
            format!("DELETE FROM {table} {b_filter}"),
        ] {
            assert_eq!(
                probe(&app, a.id, statement.clone()).await,
                Ok(0),
                "{statement}"
            );
        }

        let insert = copy_insert(&app, table, b.id, unique_overrides(table)).await;
        assert!(
            probe(&app, a.id, insert.clone()).await.is_err(),
            "A's scope may not insert B's row: {insert}"
        );
        assert_eq!(
            probe(&app, b.id, insert.clone()).await,
            Ok(1),
            "the same insert in B's scope: {insert}"
        );
    }

    // A pooled connection with no scope at all sees nothing.
    let mut conn = app.server.state.db.conn().await.unwrap();
    for table in TABLES {
        let unscoped: Count = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!(unscoped.n, 0, "{table}");
    }
    // B is untouched.
    for (table, before) in TABLES.iter().zip(b_rows) {
        assert_eq!(
            scalar(&app, &owned_by(table, b.id)).await,
            before,
            "{table}"
        );
    }
    app.stop().await;
}
