//! The web console's pages (static/). For now a placeholder page; the console itself is built
//! by a later issue.

use actix_web::HttpResponse;

const INDEX: &str = include_str!("../../static/index.html");

/// `GET /`: the console's entry page.
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX)
}
