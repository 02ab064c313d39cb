//! `card_visibility: scoped` (kanban.md "Access", realtime.md `seq.skip`): an agent's session
//! gets the full event for its own cards and `seq.skip` for colleagues' cards, `card.deleted`
//! when a card it saw is reassigned away, and the same frames from `events?after_seq`.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;
use crate::harness::*;

/// What one session should get for an event.
#[derive(Clone, Copy)]
enum View {
    /// The event itself.
    Full,
    /// `seq.skip`: the card is outside the session's scope.
    Skip,
    /// `card.deleted` for this card and stage: seen before the change, not after.
    Gone(Uuid, Uuid),
}

/// The subscribers of one board and every frame each of them should have received.
struct Scene {
    board: Uuid,
    seq: i64,
    sessions: Vec<(Ws, Vec<Value>)>,
}

impl Scene {
    async fn subscribe(app: &TestApp, board: &Board, creds: &[&str]) -> Scene {
        let mut sessions = Vec::new();
        let mut seq = None;
        for cred in creds {
            let mut ws = connect(app, cred).await;
            let current = subscribe(&mut ws, board.id).await;
            assert_eq!(*seq.get_or_insert(current), current);
            sessions.push((ws, Vec::new()));
        }
        Scene {
            board: board.id,
            seq: seq.expect("a session"),
            sessions,
        }
    }

    /// The next seq, for building the full frame of the write just made.
    fn next_seq(&self) -> i64 {
        self.seq + 1
    }

    /// Each session (in subscription order) gets `full` as its `View` says.
    async fn expect(&mut self, full: Value, views: &[View]) {
        self.seq += 1;
        assert_eq!(full["seq"], self.seq, "{full}");
        assert_eq!(views.len(), self.sessions.len());
        for ((ws, log), view) in self.sessions.iter_mut().zip(views) {
            let expected = match *view {
                View::Full => full.clone(),
                View::Skip => seq_skip(self.board, self.seq),
                View::Gone(card, stage) => card_deleted(self.board, self.seq, card, stage),
            };
            expect_frame(ws, expected.clone()).await;
            log.push(normalized(expected));
        }
    }
}

#[actix_rt::test]
async fn agents_get_seq_skip_for_colleagues_cards_live_and_in_the_replay() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let ana = acme.member(&app, "ana", "agent").await;
    let bruno = acme.member(&app, "bruno", "agent").await;
    let board = acme.default_board(&app).await;
    let admin = acme.admin.token.as_str();
    let (first, second) = (board.stages[0], board.stages[1]);
    let patched = ok(
        &app,
        admin,
        Method::PATCH,
        &board.path(),
        Some(json!({ "settings": { "card_visibility": "scoped" } })),
        200,
    )
    .await;
    assert_eq!(patched["settings"]["card_visibility"], "scoped");

    let mut scene = Scene::subscribe(&app, &board, &[admin, &ana.token, &bruno.token]).await;
    let base = scene.seq;
    use View::{Full, Gone, Skip};

    // One card each.
    let ana_card = board
        .new_card(&app, admin, first, "Ana's deal", Some(ana.id))
        .await;
    let full = card_created(
        board.id,
        scene.next_seq(),
        &board.card_now(&app, admin, ana_card).await,
    );
    scene.expect(full, &[Full, Full, Skip]).await;
    let bruno_card = board
        .new_card(&app, admin, first, "Bruno's deal", Some(bruno.id))
        .await;
    let full = card_created(
        board.id,
        scene.next_seq(),
        &board.card_now(&app, admin, bruno_card).await,
    );
    scene.expect(full, &[Full, Skip, Full]).await;

    // Writes on Bruno's card are skips for Ana, whatever their kind.
    board
        .update_card(
            &app,
            admin,
            bruno_card,
            json!({ "title": "Bruno's big deal" }),
        )
        .await;
    let full = card_updated(
        board.id,
        scene.next_seq(),
        &board.card_now(&app, admin, bruno_card).await,
        &["title"],
    );
    scene.expect(full, &[Full, Skip, Full]).await;
    let moved = board
        .move_card(&app, admin, bruno_card, json!({ "stage_id": second }))
        .await;
    let full = card_moved(board.id, scene.next_seq(), &moved, first, acme.admin.id);
    scene.expect(full, &[Full, Skip, Full]).await;
    refused(
        &app,
        &ana.token,
        Method::GET,
        &board.card_path(bruno_card),
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    // Ana's own write reaches her in full.
    board
        .update_card(
            &app,
            &ana.token,
            ana_card,
            json!({ "notes": "Called twice" }),
        )
        .await;
    let full = card_updated(
        board.id,
        scene.next_seq(),
        &board.card_now(&app, admin, ana_card).await,
        &["notes"],
    );
    scene.expect(full, &[Full, Full, Skip]).await;

    // Reassigned to Bruno: Ana saw it before and not after, so she gets `card.deleted` under
    // that seq; Bruno, who now sees it, gets the update.
    board
        .update_card(&app, admin, ana_card, json!({ "assignee_id": bruno.id }))
        .await;
    let full = card_updated(
        board.id,
        scene.next_seq(),
        &board.card_now(&app, admin, ana_card).await,
        &["assignee_id"],
    );
    scene
        .expect(full, &[Full, Gone(ana_card, first), Full])
        .await;

    // From now on Ana's former card is a skip for her, and so is deleting Bruno's.
    board
        .update_card(&app, admin, ana_card, json!({ "title": "Now Bruno's" }))
        .await;
    let full = card_updated(
        board.id,
        scene.next_seq(),
        &board.card_now(&app, admin, ana_card).await,
        &["title"],
    );
    scene.expect(full, &[Full, Skip, Full]).await;
    ok(
        &app,
        admin,
        Method::DELETE,
        &board.card_path(bruno_card),
        None,
        204,
    )
    .await;
    let full = card_deleted(board.id, scene.next_seq(), bruno_card, second);
    scene.expect(full, &[Full, Skip, Full]).await;

    // Each reader's replay is exactly what it received live, skips and deletion included.
    for ((_, log), cred) in scene.sessions.iter().zip([admin, &ana.token, &bruno.token]) {
        assert_eq!(
            board.events(&app, cred, base).await,
            json!({ "items": log, "current_seq": scene.seq, "next_cursor": null })
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn a_supervisors_scope_follows_team_changes_while_subscribed() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let sara = acme.member(&app, "sara", "supervisor").await;
    let ana = acme.member(&app, "ana", "agent").await;
    let board = acme.default_board(&app).await;
    let admin = acme.admin.token.as_str();
    ok(
        &app,
        admin,
        Method::PATCH,
        &board.path(),
        Some(json!({ "settings": { "card_visibility": "scoped" } })),
        200,
    )
    .await;
    let team = ok(
        &app,
        admin,
        Method::POST,
        &format!("/api/v1/accounts/{}/teams", acme.id),
        Some(json!({ "name": "Vendas" })),
        201,
    )
    .await;
    let team_id = uuid_of(&team["id"]);
    let members = format!("/api/v1/accounts/{}/teams/{team_id}/members", acme.id);
    ok(
        &app,
        admin,
        Method::POST,
        &members,
        Some(json!({ "user_id": sara.id })),
        201,
    )
    .await;
    let card = board
        .new_card(&app, admin, board.stages[0], "Ana's deal", Some(ana.id))
        .await;

    let mut scene = Scene::subscribe(&app, &board, &[admin, &sara.token]).await;
    use View::{Full, Skip};
    let rename = |title: String| {
        let (app, board) = (&app, &board);
        async move {
            board
                .update_card(app, admin, card, json!({ "title": title }))
                .await;
            card_updated(
                board.id,
                0,
                &board.card_now(app, admin, card).await,
                &["title"],
            )
        }
    };
    // Ana is not in Sara's team yet: a skip.
    let mut full = rename("v1".into()).await;
    full["seq"] = json!(scene.next_seq());
    scene.expect(full, &[Full, Skip]).await;

    // Ana joins Sara's team: the live subscription is authorized again, in place.
    ok(
        &app,
        admin,
        Method::POST,
        &members,
        Some(json!({ "user_id": ana.id })),
        201,
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for attempt in 2.. {
        // A new title each time: renaming to the same title is no write and emits nothing.
        let mut full = rename(format!("v{attempt}")).await;
        full["seq"] = json!(scene.next_seq());
        let seq = scene.next_seq();
        scene.seq = seq;
        expect_frame(&mut scene.sessions[0].0, full.clone()).await;
        let got = next_frame(&mut scene.sessions[1].0).await;
        if normalized(got.clone()) == normalized(full.clone()) {
            break;
        }
        assert_eq!(
            got,
            seq_skip(board.id, seq),
            "a skip until the refresh lands"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the scope follows the team"
        );
    }
    app.stop().await;
}
