//! Who is calling and what they may do, decided before a route's handler runs and on the
//! same route table that dispatches (`routes`): a path the table does not hold is a 404 before
//! anything else, and one it holds never reaches its handler past a refusal here.
//!
//! A caller is named, in Nacos's order, by `Authorization: Bearer <token>`, the `accessToken`
//! header, the `accessToken` parameter, then the `username` and `password` parameters (the npm
//! client sends them with every request: verified once, then kept in the credential cache for
//! [`crate::auth::cache::CREDENTIAL_TTL_MS`]). Nothing else names a caller: no header, user
//! agent, host or source address skips this (Nacos's CVE-2021-29441 was `User-Agent:
//! Nacos-Server`).
//!
//! Refusals are Nacos's: 403 with Spring's error document and the 1.x messages clients and
//! the console act on (`unknown user!`, `token invalid!`, `token expired!`, `authorization
//! failed!`).

use std::net::IpAddr;
use std::path::Path;
use std::path::PathBuf;

use serde_json::json;

use super::params::Params;
use crate::auth::cache::CredentialCache;
use crate::auth::password;
use crate::auth::permission;
use crate::auth::permission::Action;
use crate::auth::permission::Resource;
use crate::auth::permission::ResourceType;
use crate::auth::permission::RoleGrants;
use crate::auth::throttle::Throttle;
use crate::auth::token;
use crate::clock::now_ms;
use crate::guests::Guests;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;

/// Where a node keeps its one-time admin bootstrap token, in its data directory.
pub const BOOTSTRAP_TOKEN_FILE: &str = "bootstrap-token";
/// Random bytes of a bootstrap token (written as hex).
const BOOTSTRAP_TOKEN_BYTES: usize = 32;
/// How often a node without an administrator looks whether one was made.
const BOOTSTRAP_CHECK_INTERVAL_MS: u64 = 1_000;

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health probes, login, the admin bootstrap (which checks its own token).
    Public,
    /// Any signed-in user; the handler decides the rest (each listened config, a user's own
    /// password, the namespaces a user may see).
    SignedIn,
    /// A Nacos data resource, named by the request's parameters.
    Data(ResourceType, Action),
    /// An administration resource: ROLE_ADMIN only (`permission::allowed`).
    Admin(&'static str, Action),
}

/// The caller of a request that passed [`Gate::admit`].
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

    pub fn is_admin(&self) -> bool {
        match self {
            Caller::Unchecked => true,
            Caller::Anonymous => false,
            Caller::User { roles, .. } => permission::is_admin(roles),
        }
    }
}

/// A refusal, with one of Nacos's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied(pub &'static str);

pub const UNKNOWN_USER: Denied = Denied("unknown user!");
pub const NOT_ALLOWED: Denied = Denied("authorization failed!");
/// Past `auth::throttle`'s limits (Nacre's; Nacos has no throttle).
pub const THROTTLED: Denied = Denied("too many failed sign-ins from this address; retry in a minute");

impl Denied {
    /// Spring's error document, as Nacos's filter answers (`sendError(403, message)`).
    pub fn response(self, path: &str) -> HttpResponse {
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
        let body =
            json!({ "timestamp": timestamp, "status": 403, "error": "Forbidden", "message": self.0, "path": path });
        net::json(Status::FORBIDDEN, &body)
    }
}

impl From<token::TokenError> for Denied {
    fn from(error: token::TokenError) -> Denied {
        match error {
            token::TokenError::Invalid => Denied("token invalid!"),
            token::TokenError::Expired => Denied("token expired!"),
        }
    }
}

/// The client port's gatekeeper: whether auth is on, the credential cache, the bootstrap
/// token's place.
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

    /// The caller of `req` if it may use a route of `access`; a refusal otherwise.
    pub fn admit(&self, guests: &Guests, req: &HttpRequest, access: Access) -> Result<Caller, Denied> {
        if !self.enabled {
            return Ok(Caller::Unchecked);
        }
        if access == Access::Public {
            return Ok(Caller::Anonymous);
        }
        let params = Params::from_request(req);
        let caller = self.identify(guests, req, &params)?;
        if matches!(caller, Caller::Anonymous) {
            return Err(UNKNOWN_USER);
        }
        let allowed = match access {
            Access::Public | Access::SignedIn => true,
            Access::Data(kind, action) => caller.may(&data_resource(kind, &params), action),
            Access::Admin(resource, action) => caller.may(&Resource::Admin(resource), action),
        };
        if allowed { Ok(caller) } else { Err(NOT_ALLOWED) }
    }

    /// Who `req` names: a token, else a username and password, else no one.
    fn identify(&self, guests: &Guests, req: &HttpRequest, params: &Params) -> Result<Caller, Denied> {
        let bearer = req.header("Authorization").and_then(|value| value.strip_prefix("Bearer "));
        let token = bearer.or_else(|| req.header("accessToken")).or_else(|| params.get("accessToken"));
        if let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) {
            return self.by_token(guests, token);
        }
        match params.get("username").filter(|name| !name.is_empty()) {
            Some(username) => {
                self.by_password(guests, username, params.get("password").unwrap_or_default(), req.peer.ip())
            }
            None => Ok(Caller::Anonymous),
        }
    }

    fn by_token(&self, guests: &Guests, token: &str) -> Result<Caller, Denied> {
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
            Some(user) => crate::blocking::cpu_bound(|| password::verify(password, &user.password_hash)),
            None => {
                crate::blocking::cpu_bound(|| password::verify_unknown(password));
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

/// The resource a data request names, as Nacos's resource parsers read it: configs by
/// `tenant`, `group`, `dataId`; services by `namespaceId`, `groupName` (or the group in a
/// `group@@service` name) and `serviceName`.
pub fn data_resource(kind: ResourceType, params: &Params) -> Resource {
    let get = |name: &str| params.get(name).unwrap_or_default();
    match kind {
        ResourceType::Config => Resource::data(get("tenant"), get("group"), kind, get("dataId")),
        ResourceType::Naming => {
            let service = get("serviceName");
            let (group, name) = match service.split_once("@@") {
                Some((group, name)) if get("groupName").is_empty() => (group, name),
                Some((_, name)) => (get("groupName"), name),
                None => (get("groupName"), service),
            };
            Resource::data(get("namespaceId"), group, kind, name)
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

    fn params(pairs: &[(&str, &str)]) -> Params {
        let query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        Params::from_query(&query)
    }

    #[test]
    fn data_resources_are_read_as_nacos_reads_them() {
        let config = params(&[("tenant", "dev"), ("group", "G"), ("dataId", "app.yaml")]);
        assert_eq!(data_resource(ResourceType::Config, &config).as_str(), "dev:G:config/app.yaml");
        assert_eq!(data_resource(ResourceType::Config, &params(&[])).as_str(), "public:*:config/*");
        let grouped = params(&[("serviceName", "G@@svc")]);
        assert_eq!(data_resource(ResourceType::Naming, &grouped).as_str(), "public:G:naming/svc");
        let both = params(&[("serviceName", "G@@svc"), ("groupName", "H"), ("namespaceId", "ns")]);
        assert_eq!(data_resource(ResourceType::Naming, &both).as_str(), "ns:H:naming/svc");
    }

    #[test]
    fn a_refusal_is_springs_error_document() {
        let resp = NOT_ALLOWED.response("/nacos/v1/cs/configs");
        assert_eq!(resp.status(), Status::FORBIDDEN);
    }
}
