//! Who may read and write which cards (kanban.md, Access; iam.md §2 card scopes).
//!
//! A principal's card scope is **account** (admins, super_admins, API keys), **team**
//! (supervisors: their own cards, unassigned ones and their team mates') or **own** (agents).
//! The same [`CardScope`] decides what a reader sees on a `card_visibility: scoped` board and
//! what any caller may write, on every board.

use diesel::sql_types::Uuid as SqlUuid;
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;
use whatpro_actors::CardScope;

use crate::auth::policy::Role;
use crate::auth::Principal;
use crate::db::boards::Board;
use crate::error::ApiError;

#[derive(QueryableByName)]
struct Mate {
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
}

/// The principal's card scope (its write scope on every board).
pub async fn card_scope(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
) -> Result<CardScope, ApiError> {
    let Some(user_id) = principal.user_id else {
        return Ok(CardScope::All);
    };
    Ok(match principal.role {
        Role::Agent => CardScope::Own(user_id),
        Role::Supervisor => {
            let mates: Vec<Mate> = diesel::sql_query(
                "SELECT DISTINCT theirs.user_id FROM team_members mine \
                 JOIN team_members theirs ON theirs.team_id = mine.team_id \
                 WHERE mine.user_id = $1 AND theirs.user_id <> $1",
            )
            .bind::<SqlUuid, _>(user_id)
            .load(conn)
            .await?;
            CardScope::Team {
                user_id,
                mates: mates.into_iter().map(|m| m.user_id).collect(),
            }
        }
        _ => CardScope::All,
    })
}

/// What the principal reads on `board`: everything unless the board hides cards by scope.
pub async fn read_scope(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    board: &Board,
) -> Result<CardScope, ApiError> {
    if board.is_scoped() {
        card_scope(conn, principal).await
    } else {
        Ok(CardScope::All)
    }
}

/// 403 unless a card with `assignee` is in the writer's scope; `verb` names the write in the
/// message ("move", "change").
pub fn check_write(scope: &CardScope, assignee: Option<Uuid>, verb: &str) -> Result<(), ApiError> {
    if scope.sees(assignee) {
        return Ok(());
    }
    Err(ApiError::forbidden(match scope {
        CardScope::Team { .. } => format!("you can only {verb} cards of your teams"),
        _ => format!("you can only {verb} cards assigned to you"),
    }))
}

/// 403 unless the writer may give a card to `assignee` (supervisor: self or team mates; agent:
/// only self). Whether `assignee` is an active user of the account is checked separately (400).
pub fn check_assignee(scope: &CardScope, assignee: Uuid) -> Result<(), ApiError> {
    let allowed = match scope {
        CardScope::All => true,
        CardScope::Own(user) => assignee == *user,
        CardScope::Team { user_id, mates } => assignee == *user_id || mates.contains(&assignee),
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(match scope {
            CardScope::Team { .. } => "you can only assign cards to yourself or your team mates",
            _ => "you can only assign cards to yourself",
        }))
    }
}
