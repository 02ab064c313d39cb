//! The authenticated caller of a request.
//!
//! [`Principal`] is an extractor: a handler that takes one is authenticated, and one that does
//! not is anonymous. The same check serves the websocket upgrade ([`authenticate_token`]).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use uuid::Uuid;

use super::tokens::{AccessClaims, TokenError};
use crate::db::sessions;
use crate::error::ApiError;
use crate::state::AppState;

/// A verified user principal (access token whose session is live).
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user_id: Uuid,
    /// The user's account (the tenant).
    pub account_id: Uuid,
    /// The role whose rights apply.
    pub role: String,
    /// The session behind the token.
    pub session_id: Uuid,
    /// The verified claims.
    pub claims: AccessClaims,
}

impl Principal {
    /// Whether this principal is the platform operator.
    pub fn is_super_admin(&self) -> bool {
        self.role == "super_admin"
    }

    /// 403 unless the principal is a super_admin.
    pub fn require_super_admin(&self) -> Result<(), ApiError> {
        if self.is_super_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                message: "super_admin only".into(),
                details: Some(serde_json::json!({ "required_role": "super_admin" })),
            })
        }
    }
}

/// The bearer token of an `Authorization` header, if well-formed.
pub fn bearer_token(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("malformed Authorization header".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(ApiError::Unauthenticated(
            "Authorization must be `Bearer <token>`".into(),
        )),
    }
}

/// Verifies an access token and its session.
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let claims = state.tokens.verify(token).map_err(|e| match e {
        TokenError::Expired => ApiError::TokenExpired,
        TokenError::Invalid => ApiError::InvalidToken,
    })?;
    let mut conn = state.db.conn().await?;
    if !sessions::is_live(&mut conn, claims.sid, claims.sub).await? {
        return Err(ApiError::InvalidToken);
    }
    Ok(Principal {
        user_id: claims.sub,
        account_id: claims.account_id,
        role: claims.role.clone(),
        session_id: claims.sid,
        claims,
    })
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        let span = req
            .extensions()
            .get::<tracing_actix_web::RootSpan>()
            .map(|s| (*s).clone());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let token =
                token?.ok_or(ApiError::Unauthenticated("authentication required".into()))?;
            let principal = authenticate_token(&state, &token).await?;
            if let Some(span) = span {
                span.record("account_id", tracing::field::display(principal.account_id));
                span.record("user_id", tracing::field::display(principal.user_id));
            }
            Ok(principal)
        })
    }
}
