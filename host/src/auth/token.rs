//! Access tokens: Nacos's compact JWT, `<header>.<claims>.<signature>` in base64url without
//! padding, signed with HMAC-SHA256 under the cluster's signing key (`state::auth`, made once
//! at bootstrap and replicated, so a token is good on every node and across restarts).
//!
//! Written over `hmac` + `sha2` rather than the `jsonwebtoken` crate: a token here has one
//! header and three claims, so a JWT library would bring algorithm negotiation we must refuse
//! anyway (every accepted header is a way in: `alg: none`, HS/RS confusion), plus a crypto
//! backend choice (`aws_lc_rs` builds C, `rust_crypto` pulls `rsa` and its advisory). Here
//! only the exact byte string `{"alg":"HS256"}` is accepted as a header.
//!
//! Claims: `sub` (the username) and `exp` (seconds since the epoch), as Nacos's, plus `epoch`:
//! the user's credential epoch when the token was issued. A password change, or the user's
//! deletion and re-creation, moves the epoch, and the caller refuses a token whose epoch is not
//! the user's current one: the way to revoke tokens without a revocation list.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Hmac;
use hmac::Mac as _;
use serde::Deserialize;
use serde::Serialize;
use sha2::Sha256;

/// How long a token is good for (Nacos's default, `token.expire.seconds`). The Python client
/// logs in again only shortly before this runs out.
pub const TOKEN_TTL_S: u64 = 18_000;
/// Bytes of a signing key: 32 random bytes, the full strength of HMAC-SHA256.
pub const SIGNING_KEY_BYTES: usize = 32;
/// Bytes of a token we even look at: ours are about 150; a longer one is refused before any
/// decoding.
pub const MAX_TOKEN_BYTES: usize = 1024;
/// `{"alg":"HS256"}` in base64url, byte for byte the header Nacos writes. No other is accepted.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiJ9";

type HmacSha256 = Hmac<Sha256>;

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
    /// The user's credential epoch at issue (`state::auth::UserRecord::epoch`).
    pub epoch: u64,
}

impl Claims {
    /// Seconds this token has left at `now_s`: Nacos 2.x's `tokenTtl` in the login answer.
    pub fn remaining_s(&self, now_s: u64) -> u64 {
        self.exp.saturating_sub(now_s)
    }
}

/// Why a token is refused. The messages are Nacos 1.x's, which clients and the console key on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, another header, a MAC that does not verify (another key, another cluster),
    /// claims that do not parse.
    #[error("token invalid!")]
    Invalid,
    /// Well-formed and signed by this cluster, but past its `exp`.
    #[error("token expired!")]
    Expired,
}

/// A token for `username` at credential `epoch`, good from `now_s` for `ttl_s` seconds.
pub fn issue(key: &[u8; SIGNING_KEY_BYTES], username: &str, epoch: u64, now_s: u64, ttl_s: u64) -> String {
    let claims = Claims { sub: username.to_string(), exp: now_s.saturating_add(ttl_s), epoch };
    let claims = serde_json::to_vec(&claims).expect("plain struct serializes");
    let mut token = format!("{HEADER_B64}.{}", URL_SAFE_NO_PAD.encode(claims));
    let signature = mac(key, token.as_bytes()).finalize().into_bytes();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// The claims of `token` if this key signed it and it has not expired at `now_s`. The MAC is
/// checked (in constant time) before the claims are decoded; the caller still checks the
/// user and their epoch against the replicated state.
pub fn verify(key: &[u8; SIGNING_KEY_BYTES], token: &str, now_s: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Invalid);
    }
    let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
    let (header, claims) = signed.split_once('.').ok_or(TokenError::Invalid)?;
    if header != HEADER_B64 {
        return Err(TokenError::Invalid);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Invalid)?;
    mac(key, signed.as_bytes()).verify_slice(&signature).map_err(|_| TokenError::Invalid)?;
    let claims = URL_SAFE_NO_PAD.decode(claims).map_err(|_| TokenError::Invalid)?;
    let claims: Claims = serde_json::from_slice(&claims).map_err(|_| TokenError::Invalid)?;
    // RFC 7519: the token is good only before `exp`.
    if now_s >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

fn mac(key: &[u8; SIGNING_KEY_BYTES], message: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; SIGNING_KEY_BYTES] = [7; SIGNING_KEY_BYTES];
    const NOW_S: u64 = 1_700_000_000;

    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_string).collect()
    }

    /// A token of the given header (already encoded) and claims, signed under `key`.
    fn resigned(header: &str, claims: &str, key: &[u8; SIGNING_KEY_BYTES]) -> String {
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let signature = mac(key, signed.as_bytes()).finalize().into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn a_token_round_trips_with_nacos_header_and_its_epoch() {
        let token = issue(&KEY, "alice", 42, NOW_S, TOKEN_TTL_S);
        assert!(token.starts_with("eyJhbGciOiJIUzI1NiJ9."), "{token}");
        assert_eq!(segments(&token).len(), 3);
        let claims = verify(&KEY, &token, NOW_S + 1).unwrap();
        assert_eq!(claims, Claims { sub: "alice".into(), exp: NOW_S + TOKEN_TTL_S, epoch: 42 });
        assert_eq!(claims.remaining_s(NOW_S + 1), TOKEN_TTL_S - 1);
        let payload = URL_SAFE_NO_PAD.decode(&segments(&token)[1]).unwrap();
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            format!(r#"{{"sub":"alice","exp":{},"epoch":42}}"#, NOW_S + TOKEN_TTL_S)
        );
    }

    #[test]
    fn an_expired_token_is_told_apart_from_an_invalid_one() {
        let token = issue(&KEY, "alice", 1, NOW_S, 10);
        assert!(verify(&KEY, &token, NOW_S + 9).is_ok());
        assert_eq!(verify(&KEY, &token, NOW_S + 10), Err(TokenError::Expired));
        assert_eq!(TokenError::Expired.to_string(), "token expired!");
        assert_eq!(TokenError::Invalid.to_string(), "token invalid!");
    }

    #[test]
    fn a_changed_payload_or_another_key_is_invalid() {
        let token = issue(&KEY, "alice", 1, NOW_S, TOKEN_TTL_S);
        let parts = segments(&token);
        let forged_claims = format!(r#"{{"sub":"admin","exp":{},"epoch":1}}"#, NOW_S + TOKEN_TTL_S);
        let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(&forged_claims), parts[2]);
        assert_eq!(verify(&KEY, &tampered, NOW_S), Err(TokenError::Invalid));
        // Another cluster's key (its own bootstrap) signs a token this one refuses.
        let other = issue(&[8; SIGNING_KEY_BYTES], "alice", 1, NOW_S, TOKEN_TTL_S);
        assert_eq!(verify(&KEY, &other, NOW_S), Err(TokenError::Invalid));
        // A flipped signature byte, a truncated or missing signature.
        let mut signature = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
        signature[0] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(signature));
        for bad in
            [flipped, format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]), format!("{}.{}.", parts[0], parts[1])]
        {
            assert_eq!(verify(&KEY, &bad, NOW_S), Err(TokenError::Invalid), "{bad}");
        }
    }

    #[test]
    fn only_the_exact_hs256_header_is_accepted() {
        let claims = format!(r#"{{"sub":"alice","exp":{},"epoch":1}}"#, NOW_S + 60);
        assert!(verify(&KEY, &resigned(HEADER_B64, &claims, &KEY), NOW_S).is_ok());
        for header in
            [r#"{"alg":"none"}"#, r#"{"alg":"HS512"}"#, r#"{ "alg":"HS256"}"#, r#"{"alg":"HS256","typ":"JWT"}"#]
        {
            let encoded = URL_SAFE_NO_PAD.encode(header);
            // Even correctly signed under the right key: the header itself is refused.
            assert_eq!(verify(&KEY, &resigned(&encoded, &claims, &KEY), NOW_S), Err(TokenError::Invalid), "{header}");
        }
        // `alg: none` the usual way: no signature at all.
        let unsigned = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(&claims));
        assert_eq!(verify(&KEY, &unsigned, NOW_S), Err(TokenError::Invalid));
    }

    #[test]
    fn malformed_tokens_are_invalid() {
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        let valid = issue(&KEY, "alice", 1, NOW_S, 60);
        let padded = format!("{valid}=");
        let extra = format!("{valid}.x");
        for bad in ["", ".", "..", "abc", HEADER_B64, "eyJhbGciOiJIUzI1NiJ9..", &long, &padded, &extra] {
            assert_eq!(verify(&KEY, bad, NOW_S), Err(TokenError::Invalid), "{bad}");
        }
        // Signed, but the claims are not ours: missing epoch, a string exp, not JSON.
        for claims in [r#"{"sub":"alice","exp":9999999999}"#, r#"{"sub":"a","exp":"9999999999","epoch":1}"#, "nope"] {
            assert_eq!(verify(&KEY, &resigned(HEADER_B64, claims, &KEY), NOW_S), Err(TokenError::Invalid), "{claims}");
        }
    }
}
