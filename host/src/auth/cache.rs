//! Credentials verified recently, for clients that send `username` and `password` with every
//! request instead of a token (the npm `nacos` client, on every beat and poll). Without it each
//! such request costs an Argon2 verification (≈18 ms of CPU): 100 instances beating every 5 s
//! would keep 0.4 of a core busy hashing.
//!
//! An entry is keyed by HMAC(node-local random key, username ‖ 0x00 ‖ password): the password
//! is never kept, and the key, made at start and never leaving the process, means a dump of
//! the cache cannot be used to test guesses offline. A hit counts only for the user's current
//! credential epoch, so a password change (or the user's deletion and re-creation) ends it at
//! once; otherwise an entry lives at most [`CREDENTIAL_TTL_MS`]. Only successful verifications
//! are entered.

use std::collections::HashMap;

use hmac::Hmac;
use hmac::Mac as _;
use parking_lot::Mutex;
use sha2::Sha256;

/// How long a verified credential is trusted without a new verification.
pub const CREDENTIAL_TTL_MS: u64 = 60_000;
/// Entries kept; past it, expired entries go first, then the one closest to expiring. At about
/// 100 bytes an entry, a few hundred KiB at most.
pub const MAX_CACHED_CREDENTIALS: usize = 4_096;
const CACHE_KEY_BYTES: usize = 32;

type Fingerprint = [u8; 32];

#[derive(Debug, Clone)]
struct Entry {
    username: String,
    epoch: u64,
    expires_ms: u64,
}

/// The cache; shared by the node's requests (its lock is held for a lookup or an insert only).
pub struct CredentialCache {
    key: [u8; CACHE_KEY_BYTES],
    entries: Mutex<HashMap<Fingerprint, Entry>>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache").field("entries", &self.entries.lock().len()).finish_non_exhaustive()
    }
}

impl CredentialCache {
    /// An empty cache under a fresh random key.
    pub fn new() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; CACHE_KEY_BYTES];
        getrandom::getrandom(&mut key)?;
        Ok(Self::with_key(key))
    }

    fn with_key(key: [u8; CACHE_KEY_BYTES]) -> Self {
        Self { key, entries: Mutex::new(HashMap::new()) }
    }

    /// Whether `username` with `password` was verified within the TTL for the user's current
    /// credential epoch (`None`: no such user now). A stale entry is dropped.
    pub fn hit(&self, username: &str, password: &str, current_epoch: Option<u64>, now_ms: u64) -> bool {
        let fingerprint = self.fingerprint(username, password);
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get(&fingerprint) else { return false };
        // The username is compared too: a `\0` inside a username could otherwise make two
        // credentials share a fingerprint's input.
        let valid = entry.username == username && Some(entry.epoch) == current_epoch && now_ms < entry.expires_ms;
        if !valid {
            entries.remove(&fingerprint);
        }
        valid
    }

    /// Remember that `username` with `password` verified at credential `epoch`.
    pub fn insert(&self, username: &str, password: &str, epoch: u64, now_ms: u64) {
        let fingerprint = self.fingerprint(username, password);
        let entry =
            Entry { username: username.to_string(), epoch, expires_ms: now_ms.saturating_add(CREDENTIAL_TTL_MS) };
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_CACHED_CREDENTIALS && !entries.contains_key(&fingerprint) {
            // A linear pass, paid only by an insert, which follows an Argon2 verification
            // that costs a thousand times more.
            entries.retain(|_, e| now_ms < e.expires_ms);
            if entries.len() >= MAX_CACHED_CREDENTIALS {
                let oldest = entries.iter().min_by_key(|(_, e)| e.expires_ms).map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(fingerprint, entry);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fingerprint(&self, username: &str, password: &str) -> Fingerprint {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(username.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_000_000;

    fn cache() -> CredentialCache {
        CredentialCache::with_key([3; CACHE_KEY_BYTES])
    }

    #[test]
    fn a_verified_credential_hits_for_its_epoch_until_it_expires() {
        let cache = cache();
        assert!(!cache.hit("alice", "pw", Some(5), NOW_MS));
        cache.insert("alice", "pw", 5, NOW_MS);
        assert!(cache.hit("alice", "pw", Some(5), NOW_MS + CREDENTIAL_TTL_MS - 1));
        assert!(!cache.hit("alice", "other", Some(5), NOW_MS), "another password");
        assert!(!cache.hit("bob", "pw", Some(5), NOW_MS), "another user");
        assert!(!cache.hit("alice", "pw", Some(5), NOW_MS + CREDENTIAL_TTL_MS), "expired");
        assert!(cache.is_empty(), "the expired entry is dropped");
    }

    #[test]
    fn a_new_epoch_or_a_deleted_user_ends_the_entry() {
        let cache = cache();
        cache.insert("alice", "pw", 5, NOW_MS);
        assert!(!cache.hit("alice", "pw", Some(6), NOW_MS), "password changed since");
        assert!(!cache.hit("alice", "pw", Some(5), NOW_MS), "and the entry is gone");
        cache.insert("alice", "pw", 5, NOW_MS);
        assert!(!cache.hit("alice", "pw", None, NOW_MS), "user deleted");
    }

    #[test]
    fn the_separator_does_not_let_two_credentials_share_an_entry() {
        let cache = cache();
        cache.insert("a", "b\0c", 1, NOW_MS);
        assert!(!cache.hit("a\0b", "c", Some(1), NOW_MS));
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_what_expires_first() {
        let cache = cache();
        for i in 0..MAX_CACHED_CREDENTIALS as u64 {
            cache.insert(&format!("user{i}"), "pw", 1, NOW_MS + i);
        }
        assert_eq!(cache.len(), MAX_CACHED_CREDENTIALS);
        cache.insert("late", "pw", 1, NOW_MS + MAX_CACHED_CREDENTIALS as u64);
        assert_eq!(cache.len(), MAX_CACHED_CREDENTIALS);
        assert!(!cache.hit("user0", "pw", Some(1), NOW_MS), "the oldest went");
        assert!(cache.hit("user1", "pw", Some(1), NOW_MS));
        assert!(cache.hit("late", "pw", Some(1), NOW_MS));
        // Once everything has expired, an insert clears it all.
        cache.insert("later", "pw", 1, NOW_MS + 10 * CREDENTIAL_TTL_MS);
        assert_eq!(cache.len(), 1);
        // Re-inserting a cached credential at capacity evicts nothing.
        let cache = self::cache();
        for i in 0..MAX_CACHED_CREDENTIALS as u64 {
            cache.insert(&format!("user{i}"), "pw", 1, NOW_MS);
        }
        cache.insert("user7", "pw", 2, NOW_MS + 1);
        assert_eq!(cache.len(), MAX_CACHED_CREDENTIALS);
        assert!(cache.hit("user7", "pw", Some(2), NOW_MS + 1));
    }

    #[test]
    fn fresh_caches_have_their_own_keys() {
        let (a, b) = (CredentialCache::new().unwrap(), CredentialCache::new().unwrap());
        assert_ne!(a.fingerprint("alice", "pw"), b.fingerprint("alice", "pw"));
    }
}
