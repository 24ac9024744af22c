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

use serde_json::json;

use super::params::Params;
use crate::auth::permission::Action;
use crate::auth::permission::Resource;
use crate::auth::permission::ResourceType;
pub use crate::gate::BOOTSTRAP_TOKEN_FILE;
pub use crate::gate::Caller;
pub use crate::gate::Credentials;
pub use crate::gate::Denied;
pub use crate::gate::Gate;
pub use crate::gate::NOT_ALLOWED;
pub use crate::gate::UNKNOWN_USER;
pub use crate::gate::random_bytes;
use crate::guests::Guests;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;

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

impl Denied {
    /// Spring's error document, as Nacos's filter answers (`sendError(403, message)`).
    pub fn response(self, path: &str) -> HttpResponse {
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
        let body =
            json!({ "timestamp": timestamp, "status": 403, "error": "Forbidden", "message": self.0, "path": path });
        net::json(Status::FORBIDDEN, &body)
    }
}

/// The HTTP side of the gate: credentials from the request, the route's access checked.
impl Gate {
    /// The caller of `req` if it may use a route of `access`; a refusal otherwise.
    pub fn admit(&self, guests: &Guests, req: &HttpRequest, access: Access) -> Result<Caller, Denied> {
        if !self.enabled() {
            return Ok(Caller::Unchecked);
        }
        if access == Access::Public {
            return Ok(Caller::Anonymous);
        }
        let params = Params::from_request(req);
        let caller = self.caller_of(guests, req, &params)?;
        if matches!(caller, Caller::Anonymous) {
            return Err(UNKNOWN_USER);
        }
        let allowed = match access {
            Access::Public | Access::SignedIn => true,
            Access::Data(kind, action) => {
                let get = |name: &str| params.get(name).unwrap_or_default();
                let prefix = match kind {
                    ResourceType::Naming => {
                        Resource::naming_prefix(get("namespaceId"), get("groupName"), get("serviceName"))
                    }
                    ResourceType::Config => None,
                };
                caller.may(&data_resource(kind, &params), action) && prefix.is_none_or(|p| caller.may(&p, action))
            }
            Access::Admin(resource, action) => caller.may(&Resource::Admin(resource), action),
        };
        if allowed { Ok(caller) } else { Err(NOT_ALLOWED) }
    }

    /// Who `req` names: a token, else a username and password, else no one.
    fn caller_of(&self, guests: &Guests, req: &HttpRequest, params: &Params) -> Result<Caller, Denied> {
        let bearer = req.header("Authorization").and_then(|value| value.strip_prefix("Bearer "));
        let token = bearer.or_else(|| req.header("accessToken")).or_else(|| params.get("accessToken"));
        let credentials = Credentials {
            token,
            username: params.get("username"),
            password: params.get("password").unwrap_or_default(),
            address: req.peer.ip(),
        };
        self.identify(guests, &credentials)
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
