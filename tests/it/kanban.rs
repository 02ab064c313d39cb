//! Kanban CRM over REST (kanban.md, with docs/kanban-api.md for the shapes the spec leaves
//! open; conventions.md for errors and lists; iam.md §2 for the card scopes; tenancy.md §4 for
//! plans and flags).
//!
//! Every "Must be tested" bullet of kanban.md except the websocket, event-log and seq bullets
//! and the cross-tenant bullet, which live in their own suites. Each test starts its own app;
//! every refusal also checks that no kanban row changed.

mod support;

mod boards;
mod cards;
mod checklists;
mod filters;
mod history;
mod metrics;
mod moves;
mod positions;
mod stages;
