//! Access tokens: HS256 JWTs as iam.md §4.4 describes.
//!
//! Verification pins HS256 (so `alg: none` and foreign algorithms fail), checks the signature,
//! `iss`, `typ = "access"` (so no other kind of token passes), and `exp` with 30 s leeway. The
//! caller then checks that the `sid` is not revoked.

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Leeway on `exp` (iam.md §4.4).
pub const LEEWAY_SECS: u64 = 30;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user (the super_admin when impersonating).
    pub sub: Uuid,
    /// The session (refresh family).
    pub sid: Uuid,
    /// The hub account id.
    pub account_id: Uuid,
    /// The role whose rights apply.
    pub role: String,
    /// Unique token id.
    pub jti: Uuid,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
    /// Issuer (`JWT_ISSUER`).
    pub iss: String,
    /// Always `access`.
    pub typ: String,
    /// The impersonated user, when a super_admin acts as someone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act_as: Option<Uuid>,
}

impl AccessClaims {
    /// `exp` as a timestamp.
    pub fn expires_at(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.exp, 0)
            .single()
            .unwrap_or_else(Utc::now)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, forged, wrong algorithm, issuer or type.
    #[error("invalid token")]
    Invalid,
    /// Past `exp` + leeway.
    #[error("token expired")]
    Expired,
}

/// Issues and verifies access tokens.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl: chrono::Duration,
}

impl TokenService {
    /// A service signing with `secret` (≥ 32 bytes, checked by the configuration).
    pub fn new(secret: &[u8], issuer: &str, ttl: std::time::Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.validate_aud = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(15)),
        }
    }

    /// Issues an access token for a session; returns the token and its claims.
    pub fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        account_id: Uuid,
        role: &str,
    ) -> Result<(String, AccessClaims), jsonwebtoken::errors::Error> {
        let now = Utc::now();
        let claims = AccessClaims {
            sub: user_id,
            sid: session_id,
            account_id,
            role: role.to_owned(),
            jti: Uuid::now_v7(),
            iat: now.timestamp(),
            exp: (now + self.ttl).timestamp(),
            iss: self.issuer.clone(),
            typ: "access".into(),
            act_as: None,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Issues an impersonation token: `sub` is the super_admin, `act_as` the target, whose
    /// account and role apply.
    pub fn issue_impersonation(
        &self,
        super_admin_id: Uuid,
        session_id: Uuid,
        target_id: Uuid,
        target_account_id: Uuid,
        target_role: &str,
    ) -> Result<(String, AccessClaims), jsonwebtoken::errors::Error> {
        let now = Utc::now();
        let claims = AccessClaims {
            sub: super_admin_id,
            sid: session_id,
            account_id: target_account_id,
            role: target_role.to_owned(),
            jti: Uuid::now_v7(),
            iat: now.timestamp(),
            exp: (now + self.ttl).timestamp(),
            iss: self.issuer.clone(),
            typ: "access".into(),
            act_as: Some(target_id),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Verifies a token's algorithm, signature, issuer, type and expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let data =
            decode::<AccessClaims>(token, &self.decoding, &self.validation).map_err(|e| match e
                .kind()
            {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if data.claims.typ != "access" {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::time::Duration;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

    fn service() -> TokenService {
        TokenService::new(SECRET, "whatpro-hub", Duration::from_secs(900))
    }

    fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }

    #[test]
    fn issued_token_verifies() {
        let (token, claims) = service()
            .issue(Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), "admin")
            .unwrap();
        assert_eq!(service().verify(&token).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn alg_none_foreign_signature_wrong_issuer_and_type_are_invalid() {
        let svc = service();
        let (token, claims) = svc
            .issue(Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), "agent")
            .unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), payload);
        assert_eq!(svc.verify(&none), Err(TokenError::Invalid));

        let other = TokenService::new(
            b"another-secret-that-is-32-bytes-long!!",
            "whatpro-hub",
            Duration::from_secs(900),
        );
        let (foreign, _) = other
            .issue(claims.sub, claims.sid, claims.account_id, "agent")
            .unwrap();
        assert_eq!(svc.verify(&foreign), Err(TokenError::Invalid));

        let iss = TokenService::new(SECRET, "someone-else", Duration::from_secs(900));
        let (wrong_iss, _) = iss
            .issue(claims.sub, claims.sid, claims.account_id, "agent")
            .unwrap();
        assert_eq!(svc.verify(&wrong_iss), Err(TokenError::Invalid));

        let refresh = AccessClaims {
            typ: "refresh".into(),
            ..claims.clone()
        };
        let token = encode(
            &Header::new(Algorithm::HS256),
            &refresh,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(svc.verify(&token), Err(TokenError::Invalid));

        // Tampered claims keep the old signature.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let admin = AccessClaims {
            role: "super_admin".into(),
            typ: "access".into(),
            ..claims
        };
        parts[1] = b64(&serde_json::to_vec(&admin).unwrap());
        assert_eq!(svc.verify(&parts.join(".")), Err(TokenError::Invalid));
        assert_eq!(svc.verify("garbage"), Err(TokenError::Invalid));
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let svc = service();
        let (token, claims) = svc
            .issue(Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), "agent")
            .unwrap();
        let key = EncodingKey::from_secret(SECRET);
        let within = AccessClaims {
            exp: Utc::now().timestamp() - 10,
            ..claims.clone()
        };
        let within = encode(&Header::new(Algorithm::HS256), &within, &key).unwrap();
        assert!(svc.verify(&within).is_ok());
        let past = AccessClaims {
            exp: Utc::now().timestamp() - 60,
            ..claims
        };
        let past = encode(&Header::new(Algorithm::HS256), &past, &key).unwrap();
        assert_eq!(svc.verify(&past), Err(TokenError::Expired));
        assert!(svc.verify(&token).is_ok());
    }
}
