//! Usage metering: supervisors count authenticated requests, active users and the socket
//! peak, flush additively, and `GET …/usage` reports dense days with DAU/WAU/MAU.

use serde_json::Value;
use whatpro_actors::supervisor::FlushUsage;

use crate::harness::*;

async fn usage(app: &TestApp, token: &str, account: &str, query: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/api/v1/accounts/{account}/usage{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[actix_rt::test]
async fn requests_users_and_sockets_are_counted_and_flushes_add_up() {
    let app = TestApp::start().await;
    let account = app.seed_account("Metered").await;
    app.seed_user(account, "boss@metered.test", "admin").await;
    app.seed_user(account, "agent@metered.test", "agent").await;
    let boss = token_of(&app.login("boss@metered.test", USER_PASSWORD).await);
    let agent = token_of(&app.login("agent@metered.test", USER_PASSWORD).await);
    for token in [&boss, &agent, &agent] {
        let me = app
            .http
            .get(app.url("/api/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
    }
    let _ws1 = app.ws_ready(&agent).await;
    let _ws2 = app.ws_ready(&agent).await;
    // First flush, then more activity, then the report (which flushes again): one row adds up.
    app.server
        .state
        .registry
        .send(account, FlushUsage)
        .await
        .unwrap();
    for _ in 0..2 {
        app.http
            .get(app.url("/api/v1/me"))
            .bearer_auth(&boss)
            .send()
            .await
            .unwrap();
    }
    let response = usage(&app, &boss, &account.to_string(), "").await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    let days = report["days"].as_array().unwrap();
    assert_eq!(days.len(), 30, "30 dense days by default");
    let today = days.last().unwrap();
    assert_eq!(today["date"], report["to"]);
    // 3 + 2 /me requests, plus this report's own authenticated request.
    assert_eq!(today["api_requests"], 6, "{today}");
    assert_eq!(today["active_users"], 2);
    assert_eq!(today["ws_connections_peak"], 2);
    assert!(days[..29]
        .iter()
        .all(|d| d["api_requests"] == 0 && d["active_users"] == 0));
    assert_eq!(
        (
            report["dau"].as_i64(),
            report["wau"].as_i64(),
            report["mau"].as_i64()
        ),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!(report["totals"]["api_requests"], 6);
    assert_eq!(report["max_monthly_messages"], 1000);
    assert_eq!(report["month_to_date_messages_sent"], 0);
    app.stop().await;
}

#[actix_rt::test]
async fn spans_are_validated_and_agents_are_refused() {
    let app = TestApp::start().await;
    let account = app.seed_account("Metered").await.to_string();
    app.seed_user(account.parse().unwrap(), "boss@metered.test", "admin")
        .await;
    app.seed_user(account.parse().unwrap(), "agent@metered.test", "agent")
        .await;
    let boss = token_of(&app.login("boss@metered.test", USER_PASSWORD).await);
    let agent = token_of(&app.login("agent@metered.test", USER_PASSWORD).await);
    let long = usage(&app, &boss, &account, "?from=2025-01-01&to=2026-01-02").await;
    assert_error(long, 400, "VALIDATION_ERROR").await;
    let backwards = usage(&app, &boss, &account, "?from=2026-02-02&to=2026-02-01").await;
    assert_error(backwards, 400, "VALIDATION_ERROR").await;
    let malformed = usage(&app, &boss, &account, "?from=yesterday").await;
    assert_error(malformed, 400, "BAD_REQUEST").await;
    let year: Value = usage(&app, &boss, &account, "?from=2025-01-01&to=2026-01-01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(year["days"].as_array().unwrap().len(), 366);
    let refused = usage(&app, &agent, &account, "").await;
    assert_error(refused, 403, "FORBIDDEN").await;
    app.stop().await;
}
