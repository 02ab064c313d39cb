//! Passwords: argon2id hashing and verification, the password policy, generated passwords.
//!
//! Parameters follow iam.md §4.1: argon2id with m = 19 MiB, t = 2, p = 1 at least; a hash made
//! with weaker parameters verifies and is flagged for re-hashing. Hashing is CPU-heavy (tens
//! of milliseconds), so async callers go through [`hash_blocking`] and [`verify_blocking`].

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;

/// Memory cost in KiB (19 MiB).
const M_COST: u32 = 19 * 1024;
/// Iterations.
const T_COST: u32 = 2;
/// Parallelism.
const P_COST: u32 = 1;

/// Common passwords refused by the policy (lower case, one per line). Only entries of 12 or
/// more characters matter, since shorter ones fail the length rule first.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

fn argon2() -> Argon2<'static> {
    // These constants are valid argon2 parameters; `Params::new` only fails on out-of-range
    // values, and the default is the weaker fallback that would be re-hashed anyway.
    let params = Params::new(M_COST, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Wrong password (or an unreadable hash).
    Mismatch,
    /// Right password; `rehash` when the stored hash is weaker than today's parameters.
    Match {
        /// The hash should be replaced.
        rehash: bool,
    },
}

/// Verifies `password` against a stored PHC string.
pub fn verify(password: &str, stored: &str) -> Verification {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verification::Mismatch;
    };
    if argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Verification::Mismatch;
    }
    let weaker = parsed.algorithm.as_str() != "argon2id"
        || Params::try_from(&parsed)
            .map(|p| p.m_cost() < M_COST || p.t_cost() < T_COST || p.p_cost() < P_COST)
            .unwrap_or(true);
    Verification::Match { rehash: weaker }
}

/// A fixed hash verified when the email is unknown, so an unknown email costs the same time
/// as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash("dummy password for timing").unwrap_or_default())
}

/// Hands the memory of an argon2 run (19 MiB) back to the system. glibc keeps freed blocks
/// of that size in the thread's arena, so without this every sign-in on a new blocking
/// thread grows the resident set by the whole buffer and it never shrinks.
fn release_hash_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it is thread-safe and
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// [`hash`] on the blocking pool.
pub async fn hash_blocking(password: String) -> Result<String, crate::error::ApiError> {
    tokio::task::spawn_blocking(move || {
        let hashed = hash(&password);
        release_hash_memory();
        hashed
    })
    .await
    .map_err(crate::error::ApiError::internal)?
    .map_err(|e| crate::error::ApiError::internal(e.to_string()))
}

/// [`verify`] on the blocking pool (a missing hash verifies the dummy and fails).
pub async fn verify_blocking(password: String, stored: Option<String>) -> Verification {
    tokio::task::spawn_blocking(move || {
        let verified = match stored {
            Some(stored) => verify(&password, &stored),
            None => {
                verify(&password, dummy_hash());
                Verification::Mismatch
            }
        };
        release_hash_memory();
        verified
    })
    .await
    .unwrap_or(Verification::Mismatch)
}

/// A password-policy violation (iam.md §4.1); the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    /// Under 12 characters.
    #[error("must be at least 12 characters")]
    TooShort,
    /// Over 128 characters.
    #[error("must be at most 128 characters")]
    TooLong,
    /// Contains the email's local part.
    #[error("must not contain the email address")]
    ContainsEmail,
    /// In the common-password list.
    #[error("is too common")]
    Common,
}

/// Checks the password policy: 12–128 characters, not containing the email's local part, not
/// a common password. No composition rules.
pub fn check_policy(password: &str, email: &str) -> Result<(), PolicyViolation> {
    let length = password.chars().count();
    if length < 12 {
        return Err(PolicyViolation::TooShort);
    }
    if length > 128 {
        return Err(PolicyViolation::TooLong);
    }
    let lower = password.to_lowercase();
    let local = email.split('@').next().unwrap_or("").to_lowercase();
    if local.chars().count() >= 3 && lower.contains(&local) {
        return Err(PolicyViolation::ContainsEmail);
    }
    if COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .any(|common| !common.is_empty() && common == lower)
    {
        return Err(PolicyViolation::Common);
    }
    Ok(())
}

/// A random password of `length` characters from an unambiguous alphabet (printed once).
pub fn generate(length: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..length)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_and_is_argon2id_with_required_parameters() {
        let stored = hash("correct horse battery staple").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert_eq!(
            verify("correct horse battery staple", &stored),
            Verification::Match { rehash: false }
        );
        assert_eq!(
            verify("wrong horse battery staple", &stored),
            Verification::Mismatch
        );
        assert_eq!(verify("anything", "not a hash"), Verification::Mismatch);
    }

    #[test]
    fn weaker_hash_is_flagged_for_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(
            b"correct horse battery staple",
            &SaltString::generate(&mut OsRng),
        )
        .unwrap()
        .to_string();
        assert_eq!(
            verify("correct horse battery staple", &weak),
            Verification::Match { rehash: true }
        );
    }

    #[test]
    fn policy_rules() {
        let email = "maria.silva@example.com";
        assert_eq!(
            check_policy(&"a".repeat(11), email),
            Err(PolicyViolation::TooShort)
        );
        assert_eq!(
            check_policy(&"a".repeat(129), email),
            Err(PolicyViolation::TooLong)
        );
        assert!(check_policy(&"ab".repeat(64), email).is_ok());
        assert_eq!(
            check_policy("xxMaria.Silva2024xx", email),
            Err(PolicyViolation::ContainsEmail)
        );
        assert_eq!(
            check_policy("Password1234", email),
            Err(PolicyViolation::Common)
        );
        assert!(check_policy("violet tractor sings", email).is_ok());
    }

    #[test]
    fn generated_passwords_pass_the_policy() {
        let p = generate(20);
        assert_eq!(p.chars().count(), 20);
        assert!(check_policy(&p, "admin@localhost").is_ok());
    }
}
