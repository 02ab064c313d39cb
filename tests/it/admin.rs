//! `/admin/tenants`: live tenant actors, super_admin only.

use serde_json::Value;

use crate::harness::*;

#[actix_rt::test]
async fn super_admin_sees_live_tenants_with_their_sessions() {
    let app = TestApp::start().await;
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let token = token_of(&login);
    let account_id = login["user"]["account_id"].as_str().unwrap().to_owned();

    let list: Value = app
        .http
        .get(app.url("/admin/tenants"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The caller's own authenticated requests start its tenant's supervisor (usage metering);
    // it has no socket yet.
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(
        (
            items[0]["account_id"].as_str(),
            items[0]["sessions"].as_u64()
        ),
        (Some(account_id.as_str()), Some(0))
    );
    assert_eq!(list["next_cursor"], Value::Null);

    let _ws = app.ws_ready(&token).await;
    let list: Value = app
        .http
        .get(app.url("/admin/tenants"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["account_id"], account_id.as_str());
    assert_eq!(items[0]["name"], "Platform");
    assert_eq!(items[0]["live"], true);
    assert_eq!(items[0]["sessions"], 1);
    assert_eq!(items[0]["node_id"], list["node_id"]);
    assert_eq!(items[0]["timers"][0]["name"], "idle_check");

    let one: Value = app
        .http
        .get(app.url(&format!("/admin/tenants/{account_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (one["live"].as_bool(), one["sessions"].as_u64()),
        (Some(true), Some(1))
    );

    let idle = app.seed_account("Idle Co").await;
    let one: Value = app
        .http
        .get(app.url(&format!("/admin/tenants/{idle}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (one["live"].as_bool(), one["name"].as_str()),
        (Some(false), Some("Idle Co"))
    );

    let missing = app
        .http
        .get(app.url(&format!("/admin/tenants/{}", uuid::Uuid::now_v7())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(missing, 404, "NOT_FOUND").await;
    let malformed = app
        .http
        .get(app.url("/admin/tenants/not-a-uuid"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(malformed, 404, "NOT_FOUND").await;
    app.stop().await;
}

#[actix_rt::test]
async fn other_roles_are_refused() {
    let app = TestApp::start().await;
    let account = app.seed_account("Acme").await;
    app.seed_user(account, "boss@acme.test", "admin").await;
    let token = token_of(&app.login("boss@acme.test", USER_PASSWORD).await);
    for path in [
        "/admin/tenants".to_owned(),
        format!("/admin/tenants/{account}"),
    ] {
        let response = app
            .http
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 403, "FORBIDDEN").await;
        assert_eq!(body["details"]["required_role"], "super_admin");
    }
    let anonymous = app
        .http
        .get(app.url("/admin/tenants"))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "UNAUTHENTICATED").await;
    app.stop().await;
}
