//! Topic authorization for websocket sessions (realtime.md, "Topics and authorization"): the
//! server's side of the actors' `TopicAccess` port, holding the session's principal.

use std::future::Future;
use std::pin::Pin;

use actix_web::web;
use uuid::Uuid;
use whatpro_actors::{BoardGrant, Refusal, TopicAccess};

use crate::auth::policy::{authorize, Action};
use crate::auth::Principal;
use crate::db::{self, boards};
use crate::error::ApiError;
use crate::http::entitlements::require_feature;
use crate::kanban::access;
use crate::state::AppState;

/// What one session may subscribe to.
pub struct SessionAccess {
    state: web::Data<AppState>,
    principal: Principal,
}

impl SessionAccess {
    /// Access decided for `principal`.
    pub fn new(state: web::Data<AppState>, principal: Principal) -> Self {
        Self { state, principal }
    }
}

fn refusal(error: ApiError) -> Refusal {
    Refusal {
        code: error.code(),
        message: error.to_string(),
    }
}

impl TopicAccess for SessionAccess {
    fn board(
        &self,
        board_id: Uuid,
    ) -> Pin<Box<dyn Future<Output = Result<BoardGrant, Refusal>> + Send>> {
        let state = self.state.clone();
        let principal = self.principal.clone();
        Box::pin(async move {
            let account_id = principal.account_id;
            authorize(&principal, Action::BoardsRead).map_err(refusal)?;
            authorize(&principal, Action::CardsRead).map_err(refusal)?;
            // A board of another tenant is the same NOT_FOUND as one that does not exist,
            // whatever the flag says.
            let reader = principal.clone();
            let grant = db::tenant_tx(&state.db, account_id, |conn| {
                Box::pin(async move {
                    let board = boards::find(conn, account_id, board_id)
                        .await?
                        .ok_or(ApiError::NotFound)?;
                    let scope = access::read_scope(conn, &reader, &board).await?;
                    Ok::<_, ApiError>(BoardGrant {
                        current_seq: board.seq,
                        scope,
                    })
                })
            })
            .await
            .map_err(refusal)?;
            require_feature(&state, account_id, "kanban")
                .await
                .map_err(refusal)?;
            Ok(grant)
        })
    }
}
