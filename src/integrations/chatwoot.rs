//! The Chatwoot API client (chatwoot.md "Client").
//!
//! This module owns the HTTP conversation with a Chatwoot installation: the one shared
//! `reqwest` client (rustls, request timeout [`REQUEST_TIMEOUT`], connect timeout
//! [`CONNECT_TIMEOUT`], redirects never followed, bodies capped at [`MAX_BODY_BYTES`],
//! `User-Agent: WhatProHub/<version>`), the typed shapes it reads (they ignore unknown fields),
//! and [`ChatwootError`]. It knows nothing about hub accounts, the database or HTTP answers:
//! callers pick the origin and map the error (SSO, `http::sso`, maps
//! [`ChatwootError::Unauthorized`] to 401 `INVALID_TOKEN`).
//!
//! Today it serves one call, [`profile`] (`GET /api/v1/profile`), for SSO. Retries, the
//! per-account circuit breaker and the outbound SSRF address checks of chatwoot.md and
//! providers.md arrive with the per-account Chatwoot settings; until then the only origin is
//! the operator's `CHATWOOT_URL`.
//!
//! Access tokens travel only in the `api_access_token` header, marked sensitive, and never
//! appear in errors or logs.

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT};
use serde::{Deserialize, Deserializer};
use url::Url;

/// Whole-request timeout of the shared client (chatwoot.md: 10 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect timeout (chatwoot.md: 5 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read (chatwoot.md: 5 MiB).
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// The header Chatwoot reads a user or bot access token from.
pub const TOKEN_HEADER: &str = "api_access_token";

const USER_AGENT: &str = concat!("WhatProHub/", env!("CARGO_PKG_VERSION"));

/// Why a Chatwoot call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatwootError {
    /// Chatwoot refused the access token (401, 403 or 404 to a token-authenticated call), or
    /// the token cannot be sent as a header at all.
    #[error("Chatwoot refused the access token")]
    Unauthorized,
    /// Chatwoot did not answer within the client's timeout.
    #[error("Chatwoot did not answer in time")]
    Timeout,
    /// Anything else: another status (3xx included, as redirects are not followed), a
    /// connection failure, an oversized or malformed body. The text is for logs.
    #[error("Chatwoot request failed: {0}")]
    Upstream(String),
}

/// The signed-in Chatwoot user, as `GET /api/v1/profile` answers (unknown fields ignored,
/// among them the `access_token` Chatwoot echoes, and `type`, which the hub never trusts).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    /// Chatwoot user id.
    pub id: i64,
    /// Display name (`null` reads as empty).
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Email.
    #[serde(default, deserialize_with = "null_as_default")]
    pub email: String,
    /// Avatar URL; `null`, absent and `""` all read as `None`.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub avatar_url: Option<String>,
    /// The accounts the user belongs to, with the user's role in each.
    #[serde(default, deserialize_with = "null_as_default")]
    pub accounts: Vec<ProfileAccount>,
}

/// One account of a [`Profile`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProfileAccount {
    /// Chatwoot account id.
    pub id: i64,
    /// Account name (`null` reads as empty).
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The user's role there: `administrator`, `agent`, or a custom role name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub role: String,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn empty_as_none<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.trim().is_empty()))
}

/// Builds a client with the module's rules and `request_timeout` as the whole-request
/// timeout. The server uses one built with [`REQUEST_TIMEOUT`]; tests may build a faster one
/// for [`profile_with`].
///
/// Idle connections are not pooled: the shared client outlives any one async runtime (every
/// actix worker, and every test, runs its own), and a pooled connection belongs to the runtime
/// that opened it.
pub fn build_client(request_timeout: Duration) -> Result<reqwest::Client, ChatwootError> {
    reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(request_timeout))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| ChatwootError::Upstream(format!("could not build the HTTP client: {e}")))
}

/// The process-wide client (built on first use with [`REQUEST_TIMEOUT`]).
fn shared_client() -> Result<&'static reqwest::Client, ChatwootError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = build_client(REQUEST_TIMEOUT)?;
    Ok(CLIENT.get_or_init(|| client))
}

/// `{base_url}/{path}`: the base's path (without trailing slash) followed by `path`, without
/// query or fragment. Only http and https origins are used.
fn endpoint(base_url: &Url, path: &str) -> Result<Url, ChatwootError> {
    if !matches!(base_url.scheme(), "http" | "https") || base_url.host().is_none() {
        return Err(ChatwootError::Upstream(
            "the Chatwoot URL must be an http(s) origin".into(),
        ));
    }
    let mut url = base_url.clone();
    let prefix = base_url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

fn transport_error(error: reqwest::Error) -> ChatwootError {
    if error.is_timeout() {
        ChatwootError::Timeout
    } else {
        // The URL is the operator's origin plus a fixed path; the token is never in it.
        ChatwootError::Upstream(crate::error::error_chain(&error))
    }
}

/// Reads a body of at most [`MAX_BODY_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, ChatwootError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(ChatwootError::Upstream("response body too large".into()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ChatwootError::Upstream("response body too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `GET {base_url}/api/v1/profile` as the owner of `api_access_token`, through the shared
/// client.
pub async fn profile(base_url: &Url, api_access_token: &str) -> Result<Profile, ChatwootError> {
    profile_with(shared_client()?, base_url, api_access_token).await
}

/// [`profile`] through `client` (see [`build_client`]).
pub async fn profile_with(
    client: &reqwest::Client,
    base_url: &Url,
    api_access_token: &str,
) -> Result<Profile, ChatwootError> {
    let url = endpoint(base_url, "api/v1/profile")?;
    // A token that is not a valid header value cannot be anyone's token.
    let mut token =
        HeaderValue::from_str(api_access_token).map_err(|_| ChatwootError::Unauthorized)?;
    token.set_sensitive(true);
    let response = client
        .get(url)
        .header(TOKEN_HEADER, token)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    match status.as_u16() {
        401 | 403 | 404 => return Err(ChatwootError::Unauthorized),
        _ if status.is_success() => {}
        _ => {
            return Err(ChatwootError::Upstream(format!(
                "Chatwoot answered {status}"
            )))
        }
    }
    let body = read_capped(response).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ChatwootError::Upstream(format!("unreadable profile: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chatwoot_profile_shape() {
        let profile: Profile = serde_json::from_str(
            r#"{"id": 7, "provider": "email", "uid": "ana@acme.com", "name": "Ana",
                "available_name": "Ana", "avatar_url": "", "type": "SuperAdmin",
                "email": "ana@acme.com", "access_token": "secret", "account_id": 1,
                "accounts": [{"id": 1, "name": "Acme", "status": "active",
                              "role": "administrator", "permissions": ["administrator"]},
                             {"id": 2, "name": null, "role": null}]}"#,
        )
        .expect("profile");
        assert_eq!(profile.id, 7);
        assert_eq!(profile.avatar_url, None);
        assert_eq!(profile.accounts.len(), 2);
        assert_eq!(profile.accounts[0].role, "administrator");
        assert_eq!(profile.accounts[1].name, "");
        assert_eq!(profile.accounts[1].role, "");
    }

    #[test]
    fn tolerates_null_avatar_and_accounts() {
        let profile: Profile = serde_json::from_str(
            r#"{"id": 1, "name": "A", "email": "a@b.c", "avatar_url": null, "accounts": null}"#,
        )
        .expect("profile");
        assert_eq!(profile.avatar_url, None);
        assert!(profile.accounts.is_empty());
    }

    #[test]
    fn endpoint_keeps_a_path_prefix_and_drops_query() {
        let base = Url::parse("https://chat.example.com/").expect("url");
        assert_eq!(
            endpoint(&base, "api/v1/profile")
                .expect("endpoint")
                .as_str(),
            "https://chat.example.com/api/v1/profile"
        );
        let base = Url::parse("https://example.com/chatwoot/?x=1#f").expect("url");
        assert_eq!(
            endpoint(&base, "api/v1/profile")
                .expect("endpoint")
                .as_str(),
            "https://example.com/chatwoot/api/v1/profile"
        );
        let base = Url::parse("ftp://example.com/").expect("url");
        assert!(matches!(
            endpoint(&base, "api/v1/profile"),
            Err(ChatwootError::Upstream(_))
        ));
    }
}
