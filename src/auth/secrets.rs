//! Opaque credentials: generation, formats and hashing (iam.md §4.5–4.7).
//!
//! Refresh tokens (`wpr_` + 43 base62) and instance tokens (`wpi_` + 43 base62) carry 256 bits
//! and are stored as SHA-256: a fast hash is enough for random secrets. API keys
//! (`wp_live_<prefix>_<secret>`) are stored as argon2id, as the spec asks, and found by prefix.

use rand::Rng;
use sha2::{Digest, Sha256};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PREFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of the random part of refresh tokens, instance tokens and API keys (≥ 256 bits).
pub const SECRET_LEN: usize = 43;

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// SHA-256 of a token.
pub fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new refresh token and its hash.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let token = format!("wpr_{}", random_from(BASE62, SECRET_LEN));
    let hash = sha256(&token);
    (token, hash)
}

/// A new instance token and its hash.
pub fn new_instance_token() -> (String, Vec<u8>) {
    let token = format!("wpi_{}", random_from(BASE62, SECRET_LEN));
    let hash = sha256(&token);
    (token, hash)
}

/// Whether a bearer value is an instance token (rather than a JWT).
pub fn is_instance_token(token: &str) -> bool {
    token.starts_with("wpi_")
}

/// Whether `token` has the shape of a refresh token.
pub fn is_refresh_token(token: &str) -> bool {
    token.len() == 4 + SECRET_LEN
        && token.starts_with("wpr_")
        && token[4..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A new API key: (the whole key, its public prefix).
pub fn new_api_key() -> (String, String) {
    let prefix = random_from(PREFIX_ALPHABET, 12);
    let key = format!("wp_live_{prefix}_{}", random_from(BASE62, SECRET_LEN));
    (key, prefix)
}

/// Splits a well-formed API key into its prefix; `None` when malformed.
pub fn api_key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("wp_live_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let well_formed = prefix.len() == 12
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && secret.len() == SECRET_LEN
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    well_formed.then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let (refresh, hash) = new_refresh_token();
        assert!(is_refresh_token(&refresh));
        assert_eq!(hash.len(), 32);
        let (token, _) = new_instance_token();
        assert!(is_instance_token(&token) && token.len() == 47);
        let (key, prefix) = new_api_key();
        assert_eq!(api_key_prefix(&key), Some(prefix.as_str()));
        assert_eq!(api_key_prefix("wp_live_short_x"), None);
        assert_eq!(api_key_prefix(&key.replace("wp_live_", "wp_test_")), None);
    }
}
