//! Outside systems the hub talks to, one module each: the typed HTTP clients, their error
//! types and the shapes of what they answer. Handlers map these errors to HTTP; nothing here
//! touches the database.
//!
//! - [`chatwoot`]: the Chatwoot API (chatwoot.md "Client"); SSO (iam.md §4.3) reads the
//!   signing-in user's profile through it.

pub mod chatwoot;
