//! Kanban in real time and across tenants (kanban.md "Events", "Access" and "Must be tested";
//! realtime.md board topics, seq and resync; docs/kanban-api.md for the shapes they leave open).
//!
//! - [`fanout`]: every subscriber of a board gets the same frames with consecutive seqs, also
//!   under 50 concurrent moves (positions, history rows, `boards.seq`).
//! - [`writes`]: each kind of write emits exactly one event with seq + 1 and the kanban.md
//!   payload; refused writes emit nothing; `board.deleted` ends the subscriptions.
//! - [`resync`]: `GET …/events?after_seq=N` returns exactly the missed frames; pruned log → 409.
//! - [`subscribe`]: who may subscribe (tenants, the `kanban` flag, scopes of instance tokens and
//!   API keys), malformed topics, `unsub`, subscribing twice.
//! - [`scoped`]: `card_visibility: scoped` boards give agents `seq.skip` and `card.deleted`, live
//!   and in the replay.
//! - [`sla`]: the tenant's SLA timer marks a card once per stay.
//! - [`rls`]: row-level security on the kanban tables.
//!
//! Nothing here depends on the default board's seq or stage names: tests read them over REST.

mod support;

mod fanout;
mod resync;
mod rls;
mod scoped;
mod sla;
mod subscribe;
mod writes;
