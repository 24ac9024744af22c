//! Peer authentication (issue 17): the members of a cluster share a secret, and every peer
//! request and every answer to one carries an HMAC-SHA256 under a key derived from it. A node
//! that does not hold the secret cannot vote, append, install a snapshot, forward a write or
//! sync AP records, and an answer from a stray process on a member's address (a node of
//! another cluster, a leftover single node) is refused by the caller.
//!
//! What a request's tag covers: the method, the path, the member it is for (its peer address,
//! so a request captured on its way to one member cannot be replayed to another), the sender's
//! time, a random nonce, and the SHA-256 of the body. The tag is checked from the head alone,
//! before the body is read, so a stranger's request is refused at once, whatever body it
//! declares; the body is then checked against its hash. A request is accepted once (its nonce
//! is remembered for as long as its time is acceptable) and only within
//! [`MAX_PEER_CLOCK_SKEW_MS`] of the receiver's clock, and never from before the receiver
//! started (the nonces it remembers died with its previous run). An answer's tag covers the
//! request's nonce, the status and the SHA-256 of its body.
//!
//! Why an HMAC per request rather than TLS: it needs no certificates to issue or rotate, keeps
//! peer connections plain pooled HTTP/1.1, and binds each message to the cluster, its receiver
//! and its moment. What it does not give is confidentiality: peer traffic (configs, instance
//! metadata) is readable on the wire. Run the peer port on a private network, or add TLS.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use hmac::Hmac;
use hmac::Mac;
use hyper::HeaderMap;
use sha2::Digest;
use sha2::Sha256;

/// Bytes of a cluster secret.
pub const SECRET_BYTES: usize = 32;
/// How far a request's time may be from the receiver's clock. Peers' clocks are expected to
/// agree within this (NTP); a request older than this is refused as a possible replay.
pub const MAX_PEER_CLOCK_SKEW_MS: u64 = 30_000;
/// Nonces a node remembers at most; a request that would need more is refused (answered 503,
/// retried by its sender). Only requests whose tag is valid are remembered, so only members
/// can fill it: at a few thousand peer requests a second, a window holds a few hundred thousand.
pub const MAX_REMEMBERED_NONCES: usize = 1 << 20;
/// Random bytes of a nonce.
const NONCE_BYTES: usize = 16;

pub const TIME_HEADER: &str = "x-nacre-peer-time";
pub const NONCE_HEADER: &str = "x-nacre-peer-nonce";
pub const TO_HEADER: &str = "x-nacre-peer-to";
pub const BODY_HEADER: &str = "x-nacre-peer-body";
pub const AUTH_HEADER: &str = "x-nacre-peer-auth";

/// Domain separation: a tag of one kind is never valid as another.
const KEY_CONTEXT: &[u8] = b"nacre cluster peer key v1";
const REQUEST_CONTEXT: &str = "nacre-peer-request-v1";
const ANSWER_CONTEXT: &str = "nacre-peer-answer-v1";

type HmacSha256 = Hmac<Sha256>;

/// The secret a cluster's members share: [`SECRET_BYTES`] random bytes, kept in a file as hex.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret([u8; SECRET_BYTES]);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// A new secret from the operating system's random source.
    pub fn generate() -> ClusterSecret {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::getrandom(&mut bytes).expect("the operating system's random source");
        ClusterSecret(bytes)
    }

    /// The secret as a secret file holds it: hex, one line.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A secret file's text (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<ClusterSecret, String> {
        let text = text.trim();
        let bytes = hex::decode(text).map_err(|_| "a cluster secret is hex text".to_string())?;
        let bytes: [u8; SECRET_BYTES] = bytes
            .try_into()
            .map_err(|_| format!("a cluster secret is {SECRET_BYTES} bytes ({} hex digits)", SECRET_BYTES * 2))?;
        Ok(ClusterSecret(bytes))
    }

    /// Read a secret file; the error names the file and how to make one.
    pub fn load(path: &Path) -> anyhow::Result<ClusterSecret> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "reading the cluster secret {}: {e} (make one with `nacre secret new PATH`)",
                path.display()
            )
        })?;
        ClusterSecret::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Write a new secret to `path`, readable by its owner only; refuses to replace a file.
    pub fn write_new(path: &Path) -> anyhow::Result<ClusterSecret> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let secret = ClusterSecret::generate();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
        writeln!(file, "{}", secret.to_hex())?;
        file.sync_all()?;
        Ok(secret)
    }
}

/// A request's authentication, as its sender adds it: header names and values.
pub type SignedHeaders = Vec<(&'static str, String)>;

/// What a receiver learnt from a request's head: enough to check its body and sign its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub nonce: String,
    body_sha256: String,
    time_ms: u64,
}

/// Signs and checks peer messages for one node.
pub struct PeerKey {
    key: [u8; 32],
    /// This node's peer address: what a request for it names as `to`.
    me: String,
    /// Requests from before this moment are refused (see the module docs).
    started_ms: u64,
    seen: Mutex<Nonces>,
}

/// Nonces of accepted requests, with their times, oldest first.
#[derive(Default)]
struct Nonces {
    times: HashMap<String, u64>,
    order: VecDeque<(u64, String)>,
}

impl PeerKey {
    /// The key of a member at peer address `me`, started at `started_ms`.
    pub fn new(secret: &ClusterSecret, me: impl Into<String>, started_ms: u64) -> PeerKey {
        let mut mac = HmacSha256::new_from_slice(&secret.0).expect("HMAC takes any key length");
        mac.update(KEY_CONTEXT);
        PeerKey { key: mac.finalize().into_bytes().into(), me: me.into(), started_ms, seen: Mutex::default() }
    }

    fn tag(&self, text: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `tag` (hex) is the tag of `text`, compared in constant time.
    fn verify(&self, text: &str, tag: &str) -> bool {
        let Ok(tag) = hex::decode(tag) else { return false };
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(text.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }

    /// The headers that authenticate a `method` request to `path` on the member at peer address
    /// `to`, with `body`, sent at `now_ms`; and its nonce, which the answer's tag covers.
    pub fn sign_request(
        &self,
        method: &str,
        path: &str,
        to: &str,
        body: &[u8],
        now_ms: u64,
    ) -> (SignedHeaders, String) {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::getrandom(&mut nonce).expect("the operating system's random source");
        let nonce = hex::encode(nonce);
        let body_sha256 = sha256_hex(body);
        let tag = self.tag(&request_text(method, path, to, now_ms, &nonce, &body_sha256));
        let headers = vec![
            (TIME_HEADER, now_ms.to_string()),
            (NONCE_HEADER, nonce.clone()),
            (TO_HEADER, to.to_string()),
            (BODY_HEADER, body_sha256),
            (AUTH_HEADER, tag),
        ];
        (headers, nonce)
    }

    /// Check a request's head (before its body is read): a valid tag for this node, at an
    /// acceptable time. Why not, in words a peer's operator can act on.
    pub fn admit(&self, method: &str, path: &str, headers: &HeaderMap, now_ms: u64) -> Result<Admitted, String> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(time), Some(nonce), Some(to), Some(body_sha256), Some(tag)) =
            (header(TIME_HEADER), header(NONCE_HEADER), header(TO_HEADER), header(BODY_HEADER), header(AUTH_HEADER))
        else {
            return Err("not a member of this cluster: the request carries no peer authentication".into());
        };
        let time_ms: u64 = time.parse().map_err(|_| "malformed peer authentication time".to_string())?;
        if nonce.len() != NONCE_BYTES * 2 || body_sha256.len() != 64 {
            return Err("malformed peer authentication".into());
        }
        if !self.verify(&request_text(method, path, to, time_ms, nonce, body_sha256), tag) {
            return Err("not a member of this cluster: the request is not signed with this cluster's secret".into());
        }
        if to != self.me {
            return Err(format!("a request for {to} sent to {}", self.me));
        }
        if time_ms.abs_diff(now_ms) > MAX_PEER_CLOCK_SKEW_MS {
            return Err(format!(
                "a request stamped {time_ms} ms, more than {MAX_PEER_CLOCK_SKEW_MS} ms from this node's clock ({now_ms} ms): \
                 replayed, or the clocks disagree"
            ));
        }
        if time_ms < self.started_ms {
            return Err("a request from before this node started; retry".into());
        }
        Ok(Admitted { nonce: nonce.to_string(), body_sha256: body_sha256.to_string(), time_ms })
    }

    /// Check an admitted request's body against its hash, and accept its nonce once. `Err` is
    /// the refusal and whether it is worth retrying (the nonce memory is full).
    pub fn accept(&self, admitted: &Admitted, body: &[u8], now_ms: u64) -> Result<(), (String, bool)> {
        if sha256_hex(body) != admitted.body_sha256 {
            return Err(("the request body does not match its signed hash".into(), false));
        }
        let mut seen = self.seen.lock().expect("nonce memory lock");
        let cutoff = now_ms.saturating_sub(MAX_PEER_CLOCK_SKEW_MS);
        while seen.order.front().is_some_and(|(time, _)| *time < cutoff) {
            let (_, nonce) = seen.order.pop_front().expect("checked");
            seen.times.remove(&nonce);
        }
        if seen.times.contains_key(&admitted.nonce) {
            return Err(("a replayed peer request".into(), false));
        }
        if seen.times.len() >= MAX_REMEMBERED_NONCES {
            return Err(("too many peer requests to remember; retry".into(), true));
        }
        // Remembered until its own time leaves the window (a request stamped in the future is
        // kept that much longer).
        let expires = admitted.time_ms.max(now_ms);
        seen.times.insert(admitted.nonce.clone(), expires);
        seen.order.push_back((expires, admitted.nonce.clone()));
        Ok(())
    }

    /// The headers that authenticate an answer with `status` and `body` to the request whose
    /// nonce is `nonce`.
    pub fn sign_answer(&self, nonce: &str, status: u16, body: &[u8]) -> SignedHeaders {
        let body_sha256 = sha256_hex(body);
        let tag = self.tag(&answer_text(nonce, status, &body_sha256));
        vec![(BODY_HEADER, body_sha256), (AUTH_HEADER, tag)]
    }

    /// Check an answer to the request whose nonce is `nonce`.
    pub fn check_answer(&self, nonce: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(body_sha256), Some(tag)) = (header(BODY_HEADER), header(AUTH_HEADER)) else {
            return Err("the answer carries no peer authentication: is this a member of this cluster?".into());
        };
        if !self.verify(&answer_text(nonce, status, body_sha256), tag) {
            return Err("the answer is not signed with this cluster's secret".into());
        }
        if sha256_hex(body) != body_sha256 {
            return Err("the answer's body does not match its signed hash".into());
        }
        Ok(())
    }
}

fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn request_text(method: &str, path: &str, to: &str, time_ms: u64, nonce: &str, body_sha256: &str) -> String {
    format!("{REQUEST_CONTEXT}\n{method}\n{path}\n{to}\n{time_ms}\n{nonce}\n{body_sha256}")
}

fn answer_text(nonce: &str, status: u16, body_sha256: &str) -> String {
    format!("{ANSWER_CONTEXT}\n{nonce}\n{status}\n{body_sha256}")
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderName;
    use hyper::header::HeaderValue;

    use super::*;

    const NOW: u64 = 1_000_000;

    fn headers(signed: &SignedHeaders) -> HeaderMap {
        signed
            .iter()
            .map(|(name, value)| (HeaderName::from_static(name), HeaderValue::from_str(value).unwrap()))
            .collect()
    }

    fn pair() -> (PeerKey, PeerKey) {
        let secret = ClusterSecret::generate();
        (PeerKey::new(&secret, "10.0.0.1:7848", 0), PeerKey::new(&secret, "10.0.0.2:7848", 0))
    }

    #[test]
    fn a_member_is_admitted_once_and_its_answer_checks() {
        let (a, b) = pair();
        let (signed, nonce) = a.sign_request("POST", "/raft/vote", "10.0.0.2:7848", b"body", NOW);
        let admitted = b.admit("POST", "/raft/vote", &headers(&signed), NOW + 5).unwrap();
        assert_eq!(admitted.nonce, nonce);
        b.accept(&admitted, b"body", NOW + 5).unwrap();
        assert!(b.accept(&admitted, b"body", NOW + 6).unwrap_err().0.contains("replayed"));
        let answer = b.sign_answer(&nonce, 200, b"granted");
        a.check_answer(&nonce, 200, &headers(&answer), b"granted").unwrap();
        assert!(a.check_answer(&nonce, 200, &headers(&answer), b"refused").is_err(), "another body");
        assert!(a.check_answer(&nonce, 400, &headers(&answer), b"granted").is_err(), "another status");
        assert!(
            a.check_answer("0".repeat(32).as_str(), 200, &headers(&answer), b"granted").is_err(),
            "another request"
        );
        assert!(a.check_answer(&nonce, 200, &HeaderMap::new(), b"granted").unwrap_err().contains("no peer auth"));
    }

    #[test]
    fn strangers_and_altered_requests_are_refused_from_the_head() {
        let (a, b) = pair();
        let stranger = PeerKey::new(&ClusterSecret::generate(), "10.0.0.9:7848", 0);
        let (signed, _) = stranger.sign_request("POST", "/raft/vote", "10.0.0.2:7848", b"", NOW);
        assert!(b.admit("POST", "/raft/vote", &headers(&signed), NOW).unwrap_err().contains("not signed"));
        assert!(b.admit("POST", "/raft/vote", &HeaderMap::new(), NOW).unwrap_err().contains("no peer auth"));
        let (signed, _) = a.sign_request("POST", "/raft/vote", "10.0.0.2:7848", b"", NOW);
        assert!(b.admit("POST", "/raft/append", &headers(&signed), NOW).is_err(), "another path");
        assert!(b.admit("GET", "/raft/vote", &headers(&signed), NOW).is_err(), "another method");
        let mut moved = headers(&signed);
        moved.insert(TIME_HEADER, HeaderValue::from_static("1000001"));
        assert!(b.admit("POST", "/raft/vote", &moved, NOW).is_err(), "another time");
        let (for_a, _) = a.sign_request("POST", "/raft/vote", "10.0.0.1:7848", b"", NOW);
        assert!(
            b.admit("POST", "/raft/vote", &headers(&for_a), NOW).unwrap_err().contains("sent to"),
            "another member"
        );
        let admitted = b.admit("POST", "/raft/vote", &headers(&signed), NOW).unwrap();
        assert!(b.accept(&admitted, b"swapped", NOW).unwrap_err().0.contains("hash"));
    }

    #[test]
    fn requests_out_of_their_time_are_refused() {
        let secret = ClusterSecret::generate();
        let (a, b) = (PeerKey::new(&secret, "a:1", 0), PeerKey::new(&secret, "b:1", NOW));
        let at = |sent: u64, now: u64| {
            let (signed, _) = a.sign_request("POST", "/p", "b:1", b"", sent);
            b.admit("POST", "/p", &headers(&signed), now)
        };
        assert!(at(NOW, NOW + MAX_PEER_CLOCK_SKEW_MS).is_ok());
        assert!(at(NOW, NOW + MAX_PEER_CLOCK_SKEW_MS + 1).unwrap_err().contains("replayed"));
        assert!(at(NOW + 2 * MAX_PEER_CLOCK_SKEW_MS, NOW + MAX_PEER_CLOCK_SKEW_MS - 1).is_err(), "from the future");
        assert!(at(NOW - 1, NOW).unwrap_err().contains("before this node started"));
    }

    #[test]
    fn nonces_are_forgotten_after_the_window_and_bounded() {
        let (a, b) = pair();
        let (signed, _) = a.sign_request("POST", "/p", "10.0.0.2:7848", b"", NOW);
        let admitted = b.admit("POST", "/p", &headers(&signed), NOW).unwrap();
        b.accept(&admitted, b"", NOW).unwrap();
        let later = NOW + MAX_PEER_CLOCK_SKEW_MS + 1;
        let (signed, _) = a.sign_request("POST", "/p", "10.0.0.2:7848", b"", later);
        let fresh = b.admit("POST", "/p", &headers(&signed), later).unwrap();
        b.accept(&fresh, b"", later).unwrap();
        assert_eq!(b.seen.lock().unwrap().times.len(), 1, "the first nonce was forgotten");
        // The old request itself is now refused by its time, not by memory.
        assert!(
            b.admit("POST", "/p", &headers(&a.sign_request("POST", "/p", "10.0.0.2:7848", b"", NOW).0), later).is_err()
        );
    }

    #[test]
    fn a_secret_file_round_trips_and_bad_ones_are_named() {
        let secret = ClusterSecret::generate();
        assert_eq!(ClusterSecret::parse(&format!("  {}\n", secret.to_hex())).unwrap(), secret);
        assert!(ClusterSecret::parse("zz").unwrap_err().contains("hex"));
        assert!(ClusterSecret::parse("abcd").unwrap_err().contains("32 bytes"));
        assert_ne!(ClusterSecret::generate(), ClusterSecret::generate());
        assert_eq!(format!("{secret:?}"), "ClusterSecret(..)", "never printed");
        let dir = std::env::temp_dir().join(format!("nacre-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        let _ = std::fs::remove_file(&path);
        let written = ClusterSecret::write_new(&path).unwrap();
        assert_eq!(ClusterSecret::load(&path).unwrap(), written);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(ClusterSecret::write_new(&path).is_err(), "never replaces a secret");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
