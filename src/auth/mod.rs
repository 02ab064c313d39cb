//! Authentication and authorization: passwords, tokens, sessions, API keys, instance tokens,
//! the request principal, the revocation cache, login throttling and the permission policy.

pub mod lockout;
pub mod password;
pub mod policy;
pub mod principal;
pub mod revocation;
pub mod secrets;
pub mod signin;
pub mod tokens;

pub use principal::Principal;
pub use tokens::{AccessClaims, TokenError, TokenService};
