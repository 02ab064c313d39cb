//! Authentication: password hashing and policy, access tokens, and the request principal.

pub mod password;
pub mod principal;
pub mod tokens;

pub use principal::Principal;
pub use tokens::{AccessClaims, TokenError, TokenService};
