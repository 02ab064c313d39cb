//! The kanban domain (kanban.md): boards, stages and cards, written through each board's
//! actor and read straight from the database.
//!
//! - [`commands`]: what each board write checks, changes and emits.
//! - [`store`]: the `BoardStore` port on PostgreSQL (transaction, seq, event log, encoding).
//! - [`access`]: card scopes (who reads and writes which cards).
//! - [`positions`]: gapped card positions.
//! - [`inputs`]: the validated request bodies.
//! - [`seed`]: bulk card seeding in one statement (tests and the load generator).
//!
//! HTTP handlers live in `crate::http::{boards, stages, cards, board_events}`; tables in
//! `crate::db::{boards, cards, checklists}`.

pub mod access;
pub mod commands;
pub mod inputs;
pub mod positions;
pub mod seed;
pub mod store;

use uuid::Uuid;
use whatpro_actors::board::BoardWrite;

use crate::auth::Principal;
use crate::db::audit::AuditContext;
use crate::error::ApiError;
use crate::state::AppState;
use commands::{Command, Op, Reply};

/// Runs `op` on a board through its actor; answers after the commit and the publication of
/// its events.
pub async fn write(
    state: &AppState,
    principal: &Principal,
    audit: AuditContext,
    board_id: Uuid,
    op: Op,
) -> Result<Reply, ApiError> {
    let command = Command {
        principal: Some(principal.clone()),
        audit,
        op,
    };
    let reply = state
        .registry
        .send(
            principal.account_id,
            BoardWrite {
                board_id,
                command: Box::new(command),
            },
        )
        .await?
        .map_err(|e| ApiError::Unavailable(e.to_string().into()))?;
    match reply.downcast::<Result<Reply, ApiError>>() {
        Ok(result) => *result,
        Err(_) => Err(ApiError::internal("unexpected board reply")),
    }
}
