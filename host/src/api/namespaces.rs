//! `/nacos/v1/console/namespaces`: the Nacos console's namespace API over the replicated
//! namespace records (`state::NamespaceRecord`); `configCount` asks each namespace's config
//! guest.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::hash::Hasher;

use nacre_protocol::GuestRequest;
use serde_json::Value;
use serde_json::json;

use super::Context;
use super::access::Caller;
use super::guest;
use super::params;
use super::params::Params;
use crate::auth::permission::Action;
use crate::auth::permission::Resource;
use crate::auth::permission::ResourceType;
use crate::net;
use crate::net::HttpMethod;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::raft::Operation;
use crate::runtime::ModuleKind;
use crate::scope::Scope;
use crate::state::MAX_NAMESPACE_DESC_CHARS as MAX_DESC_CHARS;
use crate::state::MAX_NAMESPACE_NAME_CHARS as MAX_NAME_CHARS;
use crate::state::NamespaceChange;
use crate::state::NamespaceRecord;

/// Nacos's default config quota per namespace (shown, not enforced).
pub const QUOTA: u32 = 200;
/// Nacos's namespace types: the built-in `public`, and ones users made.
const TYPE_GLOBAL: u8 = 0;
const TYPE_CUSTOM: u8 = 2;

pub async fn route(ctx: &Context, req: HttpRequest, caller: &Caller) -> HttpResponse {
    let params = Params::from_request(&req);
    let result = match req.method {
        HttpMethod::GET => return get(ctx, &params, caller),
        HttpMethod::POST => create(&params),
        HttpMethod::PUT => update(&params),
        HttpMethod::DELETE => delete(&params),
        _ => return super::not_found(&req),
    };
    let change = match result {
        Ok(change) => change,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    match ctx.log.write(Operation::Namespace(change)).await {
        Ok(outcome) => match outcome.response.result {
            Ok(body) => net::response(Status::OK, "text/plain;charset=UTF-8", body),
            Err(error) => {
                net::text(Status::from_u16(error.code).unwrap_or(Status::INTERNAL_SERVER_ERROR), error.message)
            }
        },
        Err(e) => guest::unavailable(&e),
    }
}

/// Namespaces as Nacos's console reads them; a caller who is not an administrator sees only
/// those it holds a grant in (Nacos lists every one to anyone: alibaba/nacos#12500).
fn get(ctx: &Context, params: &Params, caller: &Caller) -> HttpResponse {
    if params.get("checkNamespaceIdExist").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let id = params.get("customNamespaceId").unwrap_or_default();
        let exists = id.is_empty()
            || id == params::PUBLIC_NAMESPACE
            || ctx.guests.replica().read().machine.namespace(id).is_some();
        return net::json(Status::OK, &exists);
    }
    if params.get("show") == Some("all") {
        let id = match params::namespace(params.get("namespaceId"), "namespaceId") {
            Ok(id) => id,
            Err(message) => return net::text(Status::BAD_REQUEST, message),
        };
        if !sees(caller, &id) {
            return net::text(Status::NOT_FOUND, format!("namespace {id} does not exist"));
        }
        return match describe(ctx, &id) {
            Some(info) => net::json(Status::OK, &info),
            None => net::text(Status::NOT_FOUND, format!("namespace {id} does not exist")),
        };
    }
    let records = ctx.guests.replica().read().machine.namespaces();
    let mut data: Vec<Value> = sees(caller, params::PUBLIC_NAMESPACE).then(|| info(ctx, None)).into_iter().collect();
    data.extend(records.iter().filter(|record| sees(caller, &record.id)).map(|record| info(ctx, Some(record))));
    net::json(Status::OK, &json!({ "code": 200, "message": null, "data": data }))
}

/// Whether `caller` may read some config or service of namespace `id`.
fn sees(caller: &Caller, id: &str) -> bool {
    [ResourceType::Config, ResourceType::Naming]
        .into_iter()
        .any(|kind| caller.may(&Resource::data(id, "", kind, ""), Action::Read))
}

fn describe(ctx: &Context, id: &str) -> Option<Value> {
    if id == params::PUBLIC_NAMESPACE {
        return Some(info(ctx, None));
    }
    let record = ctx.guests.replica().read().machine.namespace(id)?;
    Some(info(ctx, Some(&record)))
}

/// Nacos's `Namespace` JSON (with 2.x's `namespaceDesc`); `None` is `public`.
fn info(ctx: &Context, record: Option<&NamespaceRecord>) -> Value {
    let (id, name, desc, kind) = match record {
        Some(r) => (r.id.as_str(), r.name.as_str(), r.desc.as_str(), TYPE_CUSTOM),
        None => ("", params::PUBLIC_NAMESPACE, "Public Namespace", TYPE_GLOBAL),
    };
    json!({
        "namespace": id,
        "namespaceShowName": name,
        "namespaceDesc": desc,
        "quota": QUOTA,
        "configCount": config_count(ctx, if id.is_empty() { params::PUBLIC_NAMESPACE } else { id }),
        "type": kind,
    })
}

/// The config guest's count; 0 when it cannot answer (the listing still renders).
fn config_count(ctx: &Context, namespace: &str) -> u64 {
    let request = GuestRequest::new("config.count");
    ctx.guests
        .query(Scope::new(namespace, ModuleKind::Config), &request)
        .ok()
        .and_then(|reply| reply.body.parse().ok())
        .unwrap_or(0)
}

fn create(params: &Params) -> Result<NamespaceChange, String> {
    let id = match params.get("customNamespaceId").map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => custom_id(id, "customNamespaceId")?,
        // Made here, on the node that proposes, never while applying.
        None => generate_id(),
    };
    Ok(NamespaceChange::Create { id, name: name(params, "namespaceName")?, desc: desc(params)? })
}

fn update(params: &Params) -> Result<NamespaceChange, String> {
    let id = custom_id(params.get("namespace").unwrap_or_default(), "namespace")?;
    Ok(NamespaceChange::Update { id, name: name(params, "namespaceShowName")?, desc: desc(params)? })
}

fn delete(params: &Params) -> Result<NamespaceChange, String> {
    Ok(NamespaceChange::Delete { id: custom_id(params.get("namespaceId").unwrap_or_default(), "namespaceId")? })
}

/// A user namespace id: Nacos's `^[\w-]+$`, at most 128, and not `public`.
fn custom_id(value: &str, field: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(format!("Required parameter '{field}' is not present"));
    }
    let id = params::namespace(Some(value), field)?;
    if id == params::PUBLIC_NAMESPACE {
        return Err(format!("invalid param: {field} {id} is the built-in namespace"));
    }
    Ok(id)
}

fn name(params: &Params, field: &str) -> Result<String, String> {
    let name = params.get(field).map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(format!("Required parameter '{field}' is not present"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("invalid param: {field} is longer than {MAX_NAME_CHARS} characters"));
    }
    Ok(name.to_string())
}

fn desc(params: &Params) -> Result<String, String> {
    let desc = params.get("namespaceDesc").unwrap_or_default();
    if desc.chars().count() > MAX_DESC_CHARS {
        return Err(format!("invalid param: namespaceDesc is longer than {MAX_DESC_CHARS} characters"));
    }
    Ok(desc.to_string())
}

/// A random UUID (version 4 layout), as Nacos makes for a namespace without a custom id.
/// Randomness comes from the standard library's randomly keyed hasher, mixed with the time.
fn generate_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut bytes = [0u8; 16];
    for (half, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_usize(half);
        chunk.copy_from_slice(&hasher.finish().to_be_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let (a, b) = (generate_id(), generate_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(params::namespace(Some(&a), "x").unwrap(), a);
    }

    #[test]
    fn ids_follow_the_nacos_rule() {
        assert!(custom_id("dev_1-a", "namespace").is_ok());
        for bad in ["", "a b", "public", &"x".repeat(129)] {
            assert!(custom_id(bad, "customNamespaceId").unwrap_err().contains("customNamespaceId"), "{bad:?}");
        }
    }
}
