//! The HTTP edge (conventions.md, operations.md): the error shape of every layer (routing,
//! extractors, body limits, methods, authentication), `X-Request-Id`, security headers, CORS,
//! health, metrics and the OpenAPI document.
//!
//! Not covered here: `/metrics` from a non-loopback peer (404 without the token, 200 with it)
//! cannot be exercised, as every test client connects over loopback and forwarded headers are
//! ignored by design.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

const MIB: usize = 1024 * 1024;
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const PERMISSIONS: &str = "camera=(), microphone=(), geolocation=(), payment=(), usb=()";
const ALLOWED_ORIGIN: &str = "http://localhost:3000";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /api/v1/auth/login` with a raw body and content type.
async fn login_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("login request")
}

/// A raw HTTP/1.1 response.
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Sends a chunked POST of `total` body bytes (no `Content-Length`) over a raw socket, writing
/// while reading, and returns the response.
async fn chunked_post(app: &TestApp, path: &str, total: usize) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.server.addr
    );
    let write = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            writer.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            writer.write_all(&chunk[..n]).await?;
            writer.write_all(b"\r\n").await?;
            sent += n;
        }
        writer.write_all(b"0\r\n\r\n").await?;
        writer.flush().await?;
        Ok::<_, std::io::Error>(writer)
    });

    let mut received = Vec::new();
    let read = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if let Some(end) = find(&received, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if length.is_some_and(|len| received.len() >= end + 4 + len) {
                    return;
                }
            }
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("a response within 20 s");
    write.abort();

    let end = find(&received, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no complete response head: {:?}",
            String::from_utf8_lossy(&received)
        )
    });
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    RawResponse {
        status,
        head,
        body: received[end + 4..].to_vec(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A JSON login body of exactly `len` bytes (the email padded to fit).
fn login_body_of_len(len: usize) -> Vec<u8> {
    let frame = br#"{"email":"","password":"x"}"#.len();
    let body = format!(
        r#"{{"email":"{}","password":"x"}}"#,
        "a".repeat(len - frame)
    );
    assert_eq!(body.len(), len);
    body.into_bytes()
}

#[actix_rt::test]
async fn every_layer_answers_in_the_error_shape() {
    let app = TestApp::start().await;

    let unknown = app.http.get(app.url("/no/such/path")).send().await.unwrap();
    assert_error(unknown, 404, "NOT_FOUND").await;

    // Request line and headers over 16 KiB → 431; just under is served.
    let big = app
        .http
        .get(app.url("/health/live"))
        .header("x-padding", "a".repeat(16 * 1024))
        .send()
        .await
        .unwrap();
    assert_error(big, 431, "HEADERS_TOO_LARGE").await;
    let fits = app
        .http
        .get(app.url("/health/live"))
        .header("x-padding", "a".repeat(15 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(fits.status(), 200);

    let malformed = login_raw(&app, "application/json", br#"{"email": "#.to_vec()).await;
    assert_error(malformed, 400, "BAD_REQUEST").await;

    let unknown_field = login_raw(
        &app,
        "application/json",
        json!({ "email": "a@b.test", "password": "x", "colour": "red" })
            .to_string()
            .into_bytes(),
    )
    .await;
    let body = assert_error(unknown_field, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["fields"][0]["field"], "colour", "{body}");

    let text = login_raw(
        &app,
        "text/plain",
        json!({ "email": "a@b.test", "password": "x" })
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_error(text, 415, "UNSUPPORTED_MEDIA_TYPE").await;

    let wrong_type = login_raw(
        &app,
        "application/json",
        json!({ "email": 42, "password": "x" })
            .to_string()
            .into_bytes(),
    )
    .await;
    let body = assert_error(wrong_type, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["fields"][0]["field"], "email", "{body}");

    let wrong_method = app.http.post(app.url("/api/v1/me")).send().await.unwrap();
    let status = wrong_method.status().as_u16();
    let code = match status {
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        other => panic!("POST on a GET-only route answered {other}"),
    };
    assert_error(wrong_method, status, code).await;

    let admin = app
        .http
        .get(app.url("/admin/tenants"))
        .send()
        .await
        .unwrap();
    assert_error(admin, 401, "UNAUTHENTICATED").await;
    app.stop().await;
}

#[actix_rt::test]
async fn bodies_over_one_mib_are_413() {
    let app = TestApp::start().await;

    // Exactly 1 MiB is read and parsed (the padded email is then too long)...
    let at_limit = login_raw(&app, "application/json", login_body_of_len(MIB)).await;
    let body = assert_error(at_limit, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["fields"][0]["field"], "email", "{body}");

    // ...one byte more is not.
    let over = login_raw(&app, "application/json", login_body_of_len(MIB + 1)).await;
    assert_error(over, 413, "PAYLOAD_TOO_LARGE").await;

    // Chunked, without Content-Length, the cap holds while reading.
    let raw = chunked_post(&app, "/api/v1/auth/login", MIB + 64 * 1024).await;
    assert_eq!(raw.status, 413, "{}", raw.head);
    assert!(
        raw.head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        raw.head
    );
    let body: Value = serde_json::from_slice(&raw.body).expect("JSON error body");
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE", "{body}");
    assert!(
        body["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );

    // The server is still healthy afterwards.
    let live = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    app.stop().await;
}

#[actix_rt::test]
async fn sane_request_ids_are_echoed_and_others_replaced() {
    let app = TestApp::start().await;

    for sane in ["abc-123._X", &"z".repeat(64)] {
        let response = app
            .http
            .get(app.url("/no/such/path"))
            .header("x-request-id", sane)
            .send()
            .await
            .unwrap();
        assert_eq!(header(response.headers(), "x-request-id"), Some(sane));
        let body = assert_error(response, 404, "NOT_FOUND").await;
        assert_eq!(body["request_id"], sane);
    }
    let ok = app
        .http
        .get(app.url("/health/live"))
        .header("x-request-id", "abc-123._X")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(header(ok.headers(), "x-request-id"), Some("abc-123._X"));

    for insane in ["abc 123", &"a".repeat(65), "semi;colon", "slash/x"] {
        let response = app
            .http
            .get(app.url("/no/such/path"))
            .header("x-request-id", insane)
            .send()
            .await
            .unwrap();
        let generated = header(response.headers(), "x-request-id")
            .expect("X-Request-Id header")
            .to_owned();
        assert_ne!(generated, insane);
        assert!((1..=64).contains(&generated.len()), "{generated}");
        assert!(
            generated
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
            "{generated}"
        );
        let body = assert_error(response, 404, "NOT_FOUND").await;
        assert_eq!(body["request_id"], generated.as_str());
    }
    app.stop().await;
}

fn assert_common_security_headers(headers: &HeaderMap, what: &str) {
    assert_eq!(
        header(headers, "x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        header(headers, "referrer-policy"),
        Some("strict-origin-when-cross-origin"),
        "{what}"
    );
    assert_eq!(
        header(headers, "permissions-policy"),
        Some(PERMISSIONS),
        "{what}"
    );
    assert_eq!(header(headers, "x-frame-options"), Some("DENY"), "{what}");
    assert!(
        headers.get("strict-transport-security").is_none(),
        "{what}: no HSTS with an http PUBLIC_URL"
    );
}

#[actix_rt::test]
async fn security_headers_on_api_error_and_page_responses() {
    let app = TestApp::start().await;
    let token = app.admin_token().await;

    let api = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    assert_common_security_headers(api.headers(), "API response");
    assert_eq!(
        header(api.headers(), "content-security-policy"),
        Some(API_CSP)
    );
    assert_eq!(header(api.headers(), "cache-control"), Some("no-store"));

    let error = app.http.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(error.status(), 401);
    assert_common_security_headers(error.headers(), "error response");
    assert_eq!(
        header(error.headers(), "content-security-policy"),
        Some(API_CSP)
    );
    assert_eq!(header(error.headers(), "cache-control"), Some("no-store"));

    let routing_error = app.http.get(app.url("/no/such/path")).send().await.unwrap();
    assert_eq!(routing_error.status(), 404);
    assert_common_security_headers(routing_error.headers(), "routing error");
    assert_eq!(
        header(routing_error.headers(), "content-security-policy"),
        Some(API_CSP)
    );

    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        header(page.headers(), "content-type").is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        page.headers()
    );
    assert_common_security_headers(page.headers(), "page");
    let csp = header(page.headers(), "content-security-policy").expect("page CSP");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("object-src 'none'"), "{csp}");
    app.stop().await;
}

#[actix_rt::test]
async fn hsts_is_sent_when_public_url_is_https() {
    let app = TestApp::start_with(|c| {
        c.public_url = "https://hub.example".parse().expect("url");
    })
    .await;
    for path in ["/health/live", "/api/v1/me", "/"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            header(response.headers(), "strict-transport-security"),
            Some("max-age=31536000; includeSubDomains"),
            "{path}"
        );
    }
    let page = app.http.get(app.url("/")).send().await.unwrap();
    let csp = header(page.headers(), "content-security-policy").unwrap_or_default();
    assert!(csp.contains("wss://hub.example"), "{csp}");
    app.stop().await;
}

#[actix_rt::test]
async fn cors_allows_listed_origins_only() {
    let app = TestApp::start().await;
    assert!(
        app.server
            .state
            .config
            .cors_origins
            .iter()
            .any(|o| o == ALLOWED_ORIGIN),
        "development default includes {ALLOWED_ORIGIN}"
    );

    let preflight = |origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };

    let allowed = preflight(ALLOWED_ORIGIN).await.unwrap();
    assert_eq!(allowed.status(), 204);
    let headers = allowed.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    assert_eq!(
        header(headers, "access-control-allow-credentials"),
        Some("true")
    );
    let methods = header(headers, "access-control-allow-methods").unwrap_or_default();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    let allow_headers = header(headers, "access-control-allow-headers").unwrap_or_default();
    assert!(allow_headers.contains("Authorization"), "{allow_headers}");
    assert_eq!(header(headers, "access-control-max-age"), Some("600"));

    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    assert!(evil
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    assert_error(evil, 403, "FORBIDDEN").await;

    // An error response to the allowed origin still carries CORS headers.
    let error = app
        .http
        .get(app.url("/api/v1/me"))
        .header("origin", ALLOWED_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(error.headers(), "access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    assert_eq!(
        header(error.headers(), "access-control-allow-credentials"),
        Some("true")
    );
    let exposed = header(error.headers(), "access-control-expose-headers").unwrap_or_default();
    assert!(exposed.contains("X-Request-Id"), "{exposed}");
    assert_error(error, 401, "UNAUTHENTICATED").await;

    // A simple request from an unlisted origin gets no CORS headers.
    let foreign = app
        .http
        .get(app.url("/api/v1/me"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(foreign
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert_error(foreign, 401, "UNAUTHENTICATED").await;

    // Health has no CORS at all.
    let health = app
        .http
        .get(app.url("/health/live"))
        .header("origin", ALLOWED_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert!(health
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    app.stop().await;
}

#[actix_rt::test]
async fn health_live_ready_and_draining() {
    let app = TestApp::start().await;

    let live = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(
        live.json::<Value>().await.unwrap(),
        json!({ "status": "ok" })
    );

    let ready = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({ "status": "ready" })
    );

    app.server.state.draining.store(true, Ordering::SeqCst);
    let draining = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(draining.status(), 503);
    assert!(
        header(draining.headers(), "content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        draining.headers()
    );
    assert_eq!(
        draining.json::<Value>().await.unwrap(),
        json!({ "status": "not_ready", "reason": "draining" }),
        "a status object, not the error shape"
    );
    let live = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200, "liveness is unaffected by draining");
    app.stop().await;
}

async fn scrape(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("GET /metrics")
}

#[actix_rt::test]
async fn metrics_label_route_templates_never_raw_paths() {
    let app = TestApp::start().await;
    let me = app.http.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), 401);
    let unmatched = app.http.get(app.url("/nope/123")).send().await.unwrap();
    assert_eq!(unmatched.status(), 404);
    let account = uuid::Uuid::now_v7();
    let tenant = app
        .http
        .get(app.url(&format!("/admin/tenants/{account}")))
        .send()
        .await
        .unwrap();
    assert_eq!(tenant.status(), 401);

    let response = scrape(&app, None).await;
    assert_eq!(response.status(), 200);
    assert!(
        header(response.headers(), "content-type").is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        response.headers()
    );
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&r#"http_requests_total{method="GET",route="/api/v1/me",status="401"} 1"#),
        "{text}"
    );
    assert!(
        lines.contains(&r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("http_requests_total{")
            && l.contains(r#"route="/admin/tenants/{account_id}""#)
            && l.contains(r#"status="401""#)),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("http_request_duration_seconds_count{")
                && l.contains(r#"route="/api/v1/me""#)),
        "{text}"
    );
    assert!(!text.contains("/nope"), "raw path leaked into labels");
    assert!(
        !text.contains(&account.to_string()),
        "an id leaked into labels"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn metrics_token_does_not_lock_out_loopback() {
    let metrics_token = "m".repeat(20) + "-metrics-token-0123456789";
    let configured = metrics_token.clone();
    let app = TestApp::start_with(move |c| c.metrics_token = Some(configured)).await;
    assert!(app.server.state.config.metrics_token.is_some());

    let live = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let plain = scrape(&app, None).await;
    assert_eq!(plain.status(), 200, "loopback needs no token");
    let text = plain.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/health/live",status="200"} 1"#),
        "{text}"
    );
    let with_token = scrape(&app, Some(&metrics_token)).await;
    assert_eq!(with_token.status(), 200);
    app.stop().await;
}

#[actix_rt::test]
async fn metrics_bind_moves_metrics_off_the_main_listener() {
    let app = TestApp::start_with(|c| {
        c.metrics_bind = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let main = scrape(&app, None).await;
    assert_error(main, 404, "NOT_FOUND").await;

    let addr = app.server.metrics_addr.expect("metrics listener address");
    let dedicated = app
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(dedicated.status(), 200);
    let text = dedicated.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/metrics",status="404"} 1"#),
        "{text}"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn openapi_document_lists_the_routes() {
    let app = TestApp::start().await;
    let response = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        header(response.headers(), "content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        response.headers()
    );
    let doc: Value = response.json().await.expect("JSON document");
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "{version}");
    let paths = doc["paths"].as_object().expect("paths object");
    for path in [
        "/api/v1/auth/login",
        "/api/v1/me",
        "/admin/tenants",
        "/health/ready",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    assert!(paths["/api/v1/auth/login"].get("post").is_some());
    assert!(paths["/api/v1/me"].get("get").is_some());
    app.stop().await;
}
