//! The websocket endpoint: authentication at the upgrade, session frames, heartbeats,
//! transport limits and slow-consumer handling.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use whatpro_actors::{Event, Topic};

use crate::harness::*;

#[actix_rt::test]
async fn upgrade_without_a_valid_credential_is_refused_before_the_upgrade() {
    let app = TestApp::start().await;
    let (status, body) = app.ws_refused(app.ws_url("/ws")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let (status, body) = app.ws_refused(app.ws_url("/ws?token=not.a.jwt")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("INVALID_TOKEN"))
    );

    let token = app.admin_token().await;
    let mut both = app
        .ws_url(&format!("/ws?token={token}"))
        .into_client_request()
        .unwrap();
    both.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    let (status, body) = app.ws_refused(both).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")));

    let mut foreign = app
        .ws_url(&format!("/ws?token={token}"))
        .into_client_request()
        .unwrap();
    foreign
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let (status, _) = app.ws_refused(foreign).await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[actix_rt::test]
async fn subprotocol_credential_is_answered_with_bearer() {
    let app = TestApp::start().await;
    let token = app.admin_token().await;
    let mut request = app
        .ws_url("/ws/internal-chat")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("bearer")
    );
    assert_eq!(next_json(&mut ws).await["event"], "session.ready");
    app.stop().await;
}

#[actix_rt::test]
async fn ready_ping_pong_and_errors_that_keep_the_session() {
    let app = TestApp::start().await;
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut ws = app.ws(&token_of(&login)).await;
    let ready = next_json(&mut ws).await;
    assert_eq!(ready["event"], "session.ready");
    assert_eq!(ready["user_id"], login["user"]["id"]);
    assert_eq!(ready["account_id"], login["user"]["account_id"]);
    assert_eq!(ready["heartbeat_s"], 20);
    assert!(ready["session_id"].as_str().is_some());

    send_json(
        &mut ws,
        json!({"op": "ping", "t": 1732800000123_i64, "ref": "r1"}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"event": "pong", "t": 1732800000123_i64, "ref": "r1"})
    );

    send_json(&mut ws, json!({"op": "dance", "ref": "r2"})).await;
    let error = next_json(&mut ws).await;
    assert_eq!(error["event"], "error");
    assert_eq!(error["code"], "BAD_REQUEST");
    assert_eq!(error["op"], "dance");
    assert_eq!(error["ref"], "r2");

    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "BAD_REQUEST");
    send_json(&mut ws, json!({"op": "ping", "t": 1, "extra": true})).await;
    assert_eq!(next_json(&mut ws).await["code"], "VALIDATION_ERROR");

    // The session goes on after the errors.
    send_json(&mut ws, json!({"op": "ping", "t": 2.5})).await;
    assert_eq!(next_json(&mut ws).await, json!({"event": "pong", "t": 2.5}));
    app.stop().await;
}

#[actix_rt::test]
async fn repeated_invalid_frames_close_with_1008() {
    let app = TestApp::start().await;
    let mut ws = app.ws_ready(&app.admin_token().await).await;
    for _ in 0..11 {
        send_json(&mut ws, json!({"op": "nope"})).await;
    }
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 1008);
    app.stop().await;
}

#[actix_rt::test]
async fn binary_and_oversized_frames_close_the_session() {
    let app = TestApp::start().await;
    let token = app.admin_token().await;
    let mut ws = app.ws_ready(&token).await;
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 1003);

    let mut ws = app.ws_ready(&token).await;
    let big = format!(r#"{{"op":"ping","t":1,"ref":"{}"}}"#, "x".repeat(64 * 1024));
    ws.send(Message::Text(big.into())).await.unwrap();
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 1009);
    app.stop().await;
}

#[actix_rt::test]
async fn a_client_that_ignores_pings_is_closed_with_4000() {
    let app =
        TestApp::start_with(|c| c.tuning.ws_heartbeat_interval = Duration::from_millis(300)).await;
    let token = app.admin_token().await;
    // This client reads (and so answers pings) for several intervals and stays open.
    let mut alive = app.ws_ready(&token).await;
    let reader = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, alive.next()).await {
            assert!(!frame.is_close(), "a responsive client must stay open");
        }
        alive
    });
    // This one never answers the server's pings.
    let frames = app.ws_raw_silent(&token, Duration::from_millis(1500)).await;
    let opcodes: Vec<u8> = frames.iter().map(|(op, _)| *op).collect();
    assert_eq!(opcodes[0], 0x1, "session.ready first: {opcodes:?}");
    // The presence list (its one online user) comes from the supervisor, so it may pass the
    // first ping; the control frames are what the heartbeat decides.
    let texts = opcodes.iter().filter(|op| **op == 0x1).count();
    assert_eq!(texts, 2, "ready and one presence update: {opcodes:?}");
    let control: Vec<u8> = opcodes.iter().copied().filter(|op| *op != 0x1).collect();
    assert_eq!(control, [0x9, 0x9, 0x8], "two pings, then close");
    let close = &frames[frames.len() - 1].1;
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 4000);

    let mut alive = reader.await.unwrap();
    send_json(&mut alive, json!({"op": "ping", "t": 7})).await;
    assert_eq!(next_json(&mut alive).await["t"], 7);
    app.stop().await;
}

#[actix_rt::test]
async fn a_session_that_stops_reading_is_closed_while_another_keeps_receiving() {
    let app = TestApp::start().await;
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let token = token_of(&login);
    let account_id = login["user"]["account_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut fast = app.ws_ready(&token).await;
    // Never read again, with a tiny socket buffer so it backs up into the server quickly.
    let mut stalled = app.ws_small_buffer(&token).await;

    const EVENTS: usize = 3000;
    let padding = "p".repeat(16 * 1024);
    let reader = tokio::spawn(async move {
        let mut seen = 0usize;
        while seen < EVENTS {
            let frame = tokio::time::timeout(Duration::from_secs(20), fast.next())
                .await
                .expect("the fast client keeps receiving")
                .expect("open")
                .expect("frame");
            if let Message::Text(text) = frame {
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                if event["event"] == "presence.update" {
                    continue;
                }
                assert_eq!(event["n"], seen, "events arrive complete and in order");
                seen += 1;
            }
        }
        (seen, fast)
    });
    let bus = app.server.state.bus.clone();
    for n in 0..EVENTS {
        let event = Event::new(
            account_id,
            Topic::Tenant,
            &json!({"event": "test.burst", "n": n, "pad": padding}),
        )
        .unwrap();
        bus.publish(event);
        if n % 25 == 24 {
            // Paced so a reading client keeps up; the stalled one falls behind regardless.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let (seen, mut fast) = reader.await.unwrap();
    assert_eq!(seen, EVENTS);
    let stats = app.server.state.registry.stats();
    assert_eq!(stats.ws_slow_consumer_closes.load(Ordering::Relaxed), 1);
    // Reading again, the stalled client finds the frames it had buffered, then 1013.
    assert_eq!(
        close_code(&mut stalled, Duration::from_secs(10)).await,
        1013
    );
    // The stalled session left its tenant; the fast one is still there.
    let admin = app.admin_token().await;
    let mut sessions = 0;
    for _ in 0..50 {
        let tenants: serde_json::Value = app
            .http
            .get(app.url("/admin/tenants"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sessions = tenants["items"][0]["sessions"].as_u64().unwrap();
        if sessions == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sessions, 1);
    send_json(&mut fast, json!({"op": "ping", "t": 3})).await;
    assert_eq!(next_json(&mut fast).await["event"], "pong");
    app.stop().await;
}

#[actix_rt::test]
async fn events_of_one_tenant_never_reach_another() {
    let app = TestApp::start().await;
    let other = app.seed_account("Other Co").await;
    app.seed_user(other, "agent@other.test", "agent").await;
    let mine = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let theirs = app.login("agent@other.test", USER_PASSWORD).await;
    let mut my_ws = app.ws_ready(&token_of(&mine)).await;
    let mut their_ws = app.ws_ready(&token_of(&theirs)).await;
    let my_account = mine["user"]["account_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    app.server
        .state
        .bus
        .publish(Event::new(my_account, Topic::Tenant, &json!({"event": "only.mine"})).unwrap());
    assert_eq!(next_json(&mut my_ws).await["event"], "only.mine");
    // The other tenant gets nothing but its own pong.
    send_json(&mut their_ws, json!({"op": "ping", "t": 1})).await;
    assert_eq!(next_json(&mut their_ws).await["event"], "pong");
    app.stop().await;
}

#[actix_rt::test]
async fn a_chat_flag_change_is_announced_to_the_tenants_sockets_only() {
    let app = TestApp::start().await;
    let acme = app.seed_account("Acme").await;
    let other = app.seed_account("Other").await;
    app.seed_user(acme, "agent@acme.test", "agent").await;
    app.seed_user(other, "agent@other.test", "agent").await;
    let mut acme_ws = app
        .ws_ready(&token_of(
            &app.login("agent@acme.test", USER_PASSWORD).await,
        ))
        .await;
    let mut other_ws = app
        .ws_ready(&token_of(
            &app.login("agent@other.test", USER_PASSWORD).await,
        ))
        .await;
    let admin = app.admin_token().await;
    // The supervisor learns the current flags, then the super_admin turns the chat on.
    let features: serde_json::Value = app
        .http
        .get(app.url(&format!("/api/v1/accounts/{acme}/features")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(features["internal_chat"], false);
    let patched = app
        .http
        .patch(app.url(&format!("/api/v1/accounts/{acme}/entitlements")))
        .bearer_auth(&admin)
        .json(&json!({"overrides": {"internal_chat": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let event = next_json(&mut acme_ws).await;
    assert_eq!(
        event,
        json!({"event": "account.feature.updated", "account_id": acme, "internal_chat_enabled": true})
    );
    send_json(&mut other_ws, json!({"op": "ping", "t": 9})).await;
    assert_eq!(
        next_json(&mut other_ws).await["event"],
        "pong",
        "the other tenant hears nothing"
    );
    app.stop().await;
}
