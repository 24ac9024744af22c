//! Password hashes: Argon2id with the crate's default parameters (m = 19,456 KiB, t = 2,
//! p = 1; ≈18 ms a verification here), stored as PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) that carry their own salt and parameters.
//! A plaintext password is never stored, logged or returned: it lives only for the call.

use std::sync::OnceLock;

use argon2::Algorithm;
use argon2::Argon2;
use argon2::Params;
use argon2::password_hash::PasswordHash;
use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::PasswordVerifier as _;
use argon2::password_hash::SaltString;

/// Bytes of a password, checked before any hashing: Argon2 reads every byte, so an unbounded
/// password would be a cheap way to make the server work.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Bytes of salt in a new hash (the PHC recommendation).
const SALT_BYTES: usize = 16;
/// Bytes of a PHC string we accept as a stored hash. Ours are about 97.
pub const MAX_PASSWORD_HASH_BYTES: usize = 256;
/// Parameters a stored hash may ask a verification for: every login and uncached
/// credential-per-request call pays them, so a hash that came from elsewhere (an import, a
/// forged entry) cannot make one verification cost seconds or gigabytes.
const MAX_HASH_MEMORY_KIB: u32 = 256 * 1024;
const MAX_HASH_PASSES: u32 = 16;
const MAX_HASH_LANES: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must not be empty")]
    Empty,
    #[error("password longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("no randomness for a salt: {0}")]
    Randomness(String),
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// A new Argon2id PHC string for `password`, salted from the OS's randomness.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    let mut salt = [0u8; SALT_BYTES];
    getrandom::getrandom(&mut salt).map_err(|e| PasswordError::Randomness(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let phc = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(phc.to_string())
}

/// Whether `password` is the one `phc` was made from. The comparison of the outputs is
/// constant-time (`password_hash::Output`). Anything that is not an acceptable stored hash
/// ([`is_hash`]) verifies nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES || !is_hash(phc) {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// The work of a failed [`verify`] for a user that does not exist, so that the time a login
/// takes does not tell which usernames exist. The dummy hash is made once per process, with
/// a random salt (no fixed hash ships in the binary).
pub fn verify_unknown(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("nacre-unknown-user").ok());
    if let Some(dummy) = dummy {
        // The answer is false whatever the password; only the time spent matters.
        let _ = verify(password, dummy);
    }
}

/// Whether `phc` is a hash this node stores and verifies: an Argon2id PHC string of at most
/// [`MAX_PASSWORD_HASH_BYTES`], with a salt, an output and bounded parameters. Checked on every
/// entry that carries one (`state::Operation::validate`), so a plaintext password put in the
/// hash's place by mistake is refused rather than stored.
pub fn is_hash(phc: &str) -> bool {
    if phc.len() > MAX_PASSWORD_HASH_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    if parsed.algorithm != Algorithm::Argon2id.ident() || parsed.salt.is_none() || parsed.hash.is_none() {
        return false;
    }
    let Ok(params) = Params::try_from(&parsed) else { return false };
    params.m_cost() <= MAX_HASH_MEMORY_KIB && params.t_cost() <= MAX_HASH_PASSES && params.p_cost() <= MAX_HASH_LANES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("s3cret!").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(is_hash(&phc));
        assert!(verify("s3cret!", &phc));
        assert!(!verify("s3cret", &phc));
        assert!(!verify("", &phc));
        assert_ne!(hash("s3cret!").unwrap(), phc, "each hash has its own salt");
    }

    #[test]
    fn passwords_are_bounded_before_hashing() {
        assert_eq!(hash(""), Err(PasswordError::Empty));
        assert_eq!(hash(&"x".repeat(MAX_PASSWORD_BYTES + 1)), Err(PasswordError::TooLong));
        let longest = "x".repeat(MAX_PASSWORD_BYTES);
        let phc = hash(&longest).unwrap();
        assert!(verify(&longest, &phc));
        assert!(!verify(&"x".repeat(MAX_PASSWORD_BYTES + 1), &phc));
    }

    #[test]
    fn only_bounded_argon2id_hashes_are_accepted() {
        let phc = hash("pw").unwrap();
        // A plaintext, another algorithm, a hash without output, costly parameters.
        for bad in [
            "pw".to_string(),
            phc.replacen("argon2id", "argon2i", 1),
            phc.rsplit_once('$').unwrap().0.to_string(),
            phc.replacen("m=19456", "m=4194304", 1),
            phc.replacen("t=2", "t=1000", 1),
            format!("{phc}{}", "A".repeat(MAX_PASSWORD_HASH_BYTES)),
            "$2a$10$EuWPZHzz32dJN7jexM34MOeYirDdFAZm2kuWj7VEOJhhZkDrxfvUu".to_string(),
        ] {
            assert!(!is_hash(&bad), "{bad}");
            assert!(!verify("pw", &bad), "{bad}");
        }
    }

    #[test]
    fn unknown_users_cost_a_verification() {
        let phc = hash("pw").unwrap();
        verify_unknown("pw"); // the first call also makes the dummy hash
        let timed = std::time::Instant::now();
        verify_unknown("pw");
        let unknown = timed.elapsed();
        let timed = std::time::Instant::now();
        assert!(!verify("wrong", &phc));
        let known = timed.elapsed();
        // The same parameters, so the same work; one-sided and generous, since other tests
        // share the machine: what must not happen is an unknown user answered much faster.
        assert!(unknown * 10 >= known, "unknown {unknown:?}, known {known:?}");
    }
}
