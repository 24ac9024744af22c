//! Who is calling and what they may do, for every client port (the HTTP API and gRPC): the
//! gatekeeper over the replicated users, roles, grants and signing key, the credential cache
//! and sign-in throttling, and the first administrator's bootstrap token.
//!
//! A caller is named by a token (Nacos's HS256 access token, checked against the user's current
//! epoch, so a password change or deletion voids it) or by a username and password (verified
//! once, then kept in the credential cache for [`crate::auth::cache::CREDENTIAL_TTL_MS`]).
//! Nothing else names a caller: no header, user agent, host or source address skips this
//! (Nacos's CVE-2021-29441 was `User-Agent: Nacos-Server`). Each port reads the credentials
//! from its own wire ([`Credentials`]) and answers a refusal in its own shape.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::path::PathBuf;

use crate::auth::cache::CredentialCache;
use crate::auth::password;
use crate::auth::permission;
use crate::auth::permission::Action;
use crate::auth::permission::Resource;
use crate::auth::permission::RoleGrants;
use crate::auth::throttle::Throttle;
use crate::auth::token;
use crate::clock::now_ms;
use crate::guests::Guests;

/// Where a node keeps its one-time admin bootstrap token, in its data directory.
pub const BOOTSTRAP_TOKEN_FILE: &str = "bootstrap-token";
/// Random bytes of a bootstrap token (written as hex).
const BOOTSTRAP_TOKEN_BYTES: usize = 32;
/// How often a node without an administrator looks whether one was made.
const BOOTSTRAP_CHECK_INTERVAL_MS: u64 = 1_000;

/// What a request offers to name its caller, as its port read it.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// An access token (bearer, header or parameter).
    pub token: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password: &'a str,
    /// Where the request came from: failed sign-ins are throttled per address.
    pub address: IpAddr,
}

/// Who is calling, once a port named them ([`Gate::identify`]).
#[derive(Debug, Clone)]
pub enum Caller {
    /// Auth is off on this node: every check passes.
    Unchecked,
    /// No credentials: only public routes get this far.
    Anonymous,
    User {
        name: String,
        roles: Vec<RoleGrants>,
    },
}

impl Caller {
    /// Whether this caller may do `action` on `resource` (always, with auth off).
    pub fn may(&self, resource: &Resource, action: Action) -> bool {
        match self {
            Caller::Unchecked => true,
            Caller::Anonymous => false,
            Caller::User { roles, .. } => permission::allowed(roles, resource, action),
        }
    }

    /// The signed-in user's name; none with auth off or without credentials.
    pub fn name(&self) -> Option<&str> {
        match self {
            Caller::User { name, .. } => Some(name),
            Caller::Unchecked | Caller::Anonymous => None,
        }
    }

    /// Name the author of a config write, as Nacos's `RequestUtil.getSrcUserName` finds it:
    /// the signed-in user, whatever the request says; with auth off, `src_user` or else
    /// `username` as sent. The config's history shows it.
    pub fn put_author(&self, params: &mut BTreeMap<String, String>) {
        let author = match self.name() {
            Some(name) => Some(name.to_string()),
            None => params.get(SOURCE_USER_PARAM).filter(|u| !u.is_empty()).or_else(|| params.get("username")).cloned(),
        };
        if let Some(author) = author {
            params.insert(SOURCE_USER_PARAM.to_string(), author);
        }
    }

    pub fn is_admin(&self) -> bool {
        match self {
            Caller::Unchecked => true,
            Caller::Anonymous => false,
            Caller::User { roles, .. } => permission::is_admin(roles),
        }
    }
}

/// The parameter a config write names its author in (Nacos's).
const SOURCE_USER_PARAM: &str = "src_user";

/// A refusal, with one of Nacos's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied(pub &'static str);

pub const UNKNOWN_USER: Denied = Denied("unknown user!");
pub const NOT_ALLOWED: Denied = Denied("authorization failed!");
/// Past `auth::throttle`'s limits (Nacre's; Nacos has no throttle).
pub const THROTTLED: Denied = Denied("too many failed sign-ins from this address; retry in a minute");

impl From<token::TokenError> for Denied {
    fn from(error: token::TokenError) -> Denied {
        match error {
            token::TokenError::Invalid => Denied("token invalid!"),
            token::TokenError::Expired => Denied("token expired!"),
        }
    }
}

/// The gatekeeper of the client ports (HTTP and gRPC): whether auth is on, the credential
/// cache, the bootstrap token's place.
pub struct Gate {
    enabled: bool,
    cache: CredentialCache,
    throttle: Throttle,
    bootstrap_token: PathBuf,
}

impl Gate {
    /// With auth on, a node that has no administrator yet gets a bootstrap token in
    /// `data_dir` (kept if one is there) and says where, never what.
    pub fn new(enabled: bool, data_dir: &Path, bootstrapped: bool) -> anyhow::Result<Gate> {
        let bootstrap_token = data_dir.join(BOOTSTRAP_TOKEN_FILE);
        if !enabled {
            tracing::warn!(
                "AUTH IS OFF (--auth off): anyone who reaches the client port may read and change every config, \
                 instance, namespace, user and module"
            );
        } else if bootstrapped {
            let _ = std::fs::remove_file(&bootstrap_token);
        } else {
            if !bootstrap_token.exists() {
                write_secret_file(&bootstrap_token, &hex::encode(random_bytes::<BOOTSTRAP_TOKEN_BYTES>()?))?;
            }
            tracing::warn!(
                path = %bootstrap_token.display(),
                "no administrator yet: create one with `nacre user bootstrap`, which reads the bootstrap token in this file"
            );
        }
        let cache = CredentialCache::new().map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
        Ok(Gate { enabled, cache, throttle: Throttle::default(), bootstrap_token })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Who `credentials` name: a token, else a username and password, else no one. With auth
    /// off, everyone is [`Caller::Unchecked`].
    pub fn identify(&self, guests: &Guests, credentials: &Credentials<'_>) -> Result<Caller, Denied> {
        if !self.enabled {
            return Ok(Caller::Unchecked);
        }
        if let Some(token) = credentials.token.map(str::trim).filter(|t| !t.is_empty()) {
            return self.by_token(guests, token);
        }
        match credentials.username.filter(|name| !name.is_empty()) {
            Some(username) => self.by_password(guests, username, credentials.password, credentials.address),
            None => Ok(Caller::Anonymous),
        }
    }

    pub fn by_token(&self, guests: &Guests, token: &str) -> Result<Caller, Denied> {
        let replica = guests.replica().read();
        let key = replica.machine.signing_key().ok_or(Denied("token invalid!"))?;
        let now_s = now_ms() / 1000;
        let claims = token::verify(&key, token, now_s)?;
        // A token outlives nothing it was issued for: a deleted user, a changed password.
        let user = replica.machine.user(&claims.sub).filter(|user| user.epoch == claims.epoch);
        let user = user.ok_or(Denied("token invalid!"))?;
        Ok(Caller::User { roles: replica.machine.role_grants(&user.username), name: user.username })
    }

    /// Verify a username and password from `address`: from the cache when this pair was
    /// verified lately at the user's current epoch, else by its hash (off the async worker:
    /// tens of ms) unless `address` failed too often lately (`auth::throttle`).
    pub fn by_password(
        &self,
        guests: &Guests,
        username: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<Caller, Denied> {
        let user = guests.replica().read().machine.user(username);
        let now = now_ms();
        let cached = user.as_ref().is_some_and(|user| self.cache.hit(username, password, Some(user.epoch), now));
        if !cached && !self.throttle.allows(username, address, now) {
            return Err(THROTTLED);
        }
        let verified = match &user {
            Some(_) if cached => true,
            Some(user) => crate::blocking::cpu_bound(|| {
                crate::heap::returning_freed(|| password::verify(password, &user.password_hash))
            }),
            None => {
                crate::blocking::cpu_bound(|| crate::heap::returning_freed(|| password::verify_unknown(password)));
                false
            }
        };
        if !verified {
            self.throttle.failed(username, address, now);
        }
        let user = user.filter(|_| verified).ok_or(UNKNOWN_USER)?;
        self.cache.insert(username, password, user.epoch, now);
        Ok(Caller::User { roles: guests.replica().read().machine.role_grants(username), name: user.username })
    }

    /// Whether `offered` is this node's bootstrap token (compared in constant time).
    pub fn is_bootstrap_token(&self, offered: &str) -> bool {
        use subtle::ConstantTimeEq;
        let Ok(expected) = std::fs::read_to_string(&self.bootstrap_token) else { return false };
        let expected = expected.trim();
        !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(offered.trim().as_bytes()))
    }

    /// The bootstrap is done: this node's token is void, and its file goes.
    pub fn bootstrap_done(&self) {
        if std::fs::remove_file(&self.bootstrap_token).is_ok() {
            tracing::info!(path = %self.bootstrap_token.display(), "an administrator exists: removed the bootstrap token");
        }
    }

    /// Remove this node's bootstrap token once the bootstrap is applied here, whichever node
    /// it was made through (checked every [`BOOTSTRAP_CHECK_INTERVAL_MS`]).
    pub async fn remove_token_once_bootstrapped(self: std::sync::Arc<Self>, guests: std::sync::Arc<Guests>) {
        if !self.enabled {
            return;
        }
        loop {
            if guests.replica().read().machine.auth_bootstrapped() {
                return self.bootstrap_done();
            }
            tokio::time::sleep(std::time::Duration::from_millis(BOOTSTRAP_CHECK_INTERVAL_MS)).await;
        }
    }
}

pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(bytes)
}

/// Write `text` to a new file readable by its owner only.
fn write_secret_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_write_is_signed_by_its_caller_whatever_it_says() {
        let user = Caller::User { name: "alice".into(), roles: Vec::new() };
        let mut params: BTreeMap<String, String> =
            [("src_user".to_string(), "mallory".to_string()), ("username".to_string(), "bob".to_string())].into();
        user.put_author(&mut params);
        assert_eq!(params["src_user"], "alice");
        let mut params: BTreeMap<String, String> = [("username".to_string(), "bob".to_string())].into();
        Caller::Unchecked.put_author(&mut params);
        assert_eq!(params["src_user"], "bob", "auth off: the name sent");
        let mut params = BTreeMap::new();
        Caller::Unchecked.put_author(&mut params);
        assert!(params.is_empty());
    }
}
