//! Nacos 2.x config requests, mapped to the config guest's operations (the same ones the v1
//! HTTP API uses): `config.get`, `config.publish` and `config.delete` (through the log),
//! `config.listen` (which listened configs are stale, and the events that would make them
//! so; the connection keeps the events, and `push` tells it when one fires).

use std::collections::BTreeMap;

use nacre_protocol::GuestRequest;
use nacre_protocol::directive;
use serde_json::Value;
use serde_json::json;

use super::Call;
use super::connections::ListenedConfig;
use super::naming::Refusal;
use super::wire;
use super::wire::Reply;
use crate::auth::permission::Action;
use crate::auth::permission::Resource;
use crate::auth::permission::ResourceType;
use crate::gate::Caller;
use crate::guests::WatchKey;
use crate::runtime::GuestError;
use crate::runtime::ModuleKind;
use crate::scope::Scope;

const KIND: ModuleKind = ModuleKind::Config;
const GET_OP: &str = "config.get";
const PUBLISH_OP: &str = "config.publish";
const DELETE_OP: &str = "config.delete";
const LISTEN_OP: &str = "config.listen";
/// Keys one `ConfigBatchListenRequest` may name (Nacos's cap of a listener request).
pub const MAX_LISTEN_CONTEXTS: usize = 10_000;
/// What a publish's `additionMap` may say, passed to the guest under the same names (the
/// v1 API's parameters); the rest (`encryptedDataKey`, 3.x's `use`, `effect`, `schema`) has no
/// meaning here.
const PUBLISH_EXTRAS: [&str; 7] = ["type", "appName", "src_user", "betaIps", "tag", "desc", "config_tags"];

pub fn handles(kind: &str) -> bool {
    response_type(kind) != "ErrorResponse"
}

pub fn response_type(kind: &str) -> &'static str {
    match kind {
        "ConfigQueryRequest" => "ConfigQueryResponse",
        "ConfigPublishRequest" => "ConfigPublishResponse",
        "ConfigRemoveRequest" => "ConfigRemoveResponse",
        "ConfigBatchListenRequest" => "ConfigChangeBatchListenResponse",
        _ => "ErrorResponse",
    }
}

/// Fields a failed response of `kind` still needs: Rust's client requires `lastModified` and
/// `beta` on every `ConfigQueryResponse`.
pub fn failure_fields(kind: &str) -> Value {
    match kind {
        "ConfigQueryRequest" => json!({ "lastModified": 0, "beta": false }),
        _ => json!({}),
    }
}

pub async fn answer(call: &Call<'_>, caller: &Caller) -> Reply {
    let kind = call.inbound.kind.as_str();
    let result = match kind {
        "ConfigQueryRequest" => query(call, caller),
        "ConfigPublishRequest" => write(call, caller, PUBLISH_OP).await,
        "ConfigRemoveRequest" => write(call, caller, DELETE_OP).await,
        "ConfigBatchListenRequest" => listen(call, caller),
        _ => unreachable!("handles() admits only these"),
    };
    match result {
        Ok(fields) => wire::success(response_type(kind), fields),
        // Nacos's answers to the two failures clients act on.
        Err(Refusal::Guest(error)) if kind == "ConfigQueryRequest" && error.code == 404 => wire::failure(
            response_type(kind),
            wire::code::CONFIG_NOT_FOUND,
            "config data not exist",
            failure_fields(kind),
        ),
        Err(Refusal::Guest(error)) if error.code == 409 => {
            wire::failure(response_type(kind), wire::code::SERVER_ERROR, &error.message, failure_fields(kind))
        }
        Err(refusal) => refusal.into_reply(response_type(kind), failure_fields(kind)),
    }
}

/// The config a request names.
struct ConfigRef {
    namespace: String,
    data_id: String,
    group: String,
}

impl ConfigRef {
    fn of(call: &Call<'_>) -> Result<ConfigRef, GuestError> {
        Ok(ConfigRef {
            namespace: super::namespace(&call.inbound.str("tenant"))?,
            data_id: call.inbound.str("dataId"),
            group: call.inbound.str("group"),
        })
    }

    fn resource(&self) -> Resource {
        Resource::data(&self.namespace, &self.group, ResourceType::Config, &self.data_id)
    }

    fn request(&self, call: &Call<'_>, op: &str) -> GuestRequest {
        let mut params = BTreeMap::new();
        params.insert("tenant".to_string(), self.namespace.clone());
        params.insert("dataId".to_string(), self.data_id.clone());
        params.insert("group".to_string(), self.group.clone());
        let tag = call.inbound.str("tag");
        if !tag.is_empty() {
            params.insert("tag".to_string(), tag);
        }
        GuestRequest { op: op.to_string(), params, client_ip: call.client_ip() }
    }
}

/// `ConfigQueryRequest`: the content this client is served, from the guest's reply and its
/// headers.
fn query(call: &Call<'_>, caller: &Caller) -> Result<Value, Refusal> {
    let config = ConfigRef::of(call)?;
    super::permit(caller, &config.resource(), Action::Read).map_err(Refusal::Denied)?;
    let reply = call.ctx.guests.query(Scope::new(&config.namespace, KIND), &config.request(call, GET_OP))?;
    let header = |name: &str| reply.headers.get(name).cloned().unwrap_or_default();
    let content_type = Some(header("Config-Type")).filter(|t| !t.is_empty()).unwrap_or_else(|| "text".into());
    Ok(json!({
        "content": reply.body,
        "md5": header("Content-MD5"),
        "contentType": content_type,
        "lastModified": header("Last-Modified").parse::<u64>().unwrap_or(0),
        "beta": header("isBeta") == "true",
        "encryptedDataKey": "",
    }))
}

/// `ConfigPublishRequest` (with `casMd5` and the `additionMap`) or `ConfigRemoveRequest`,
/// through the log.
async fn write(call: &Call<'_>, caller: &Caller, op: &str) -> Result<Value, Refusal> {
    let config = ConfigRef::of(call)?;
    super::permit(caller, &config.resource(), Action::Write).map_err(Refusal::Denied)?;
    let mut request = config.request(call, op);
    if op == PUBLISH_OP {
        request.params.insert("content".to_string(), call.inbound.str("content"));
        let cas = call.inbound.str("casMd5");
        if !cas.is_empty() {
            request.params.insert("casMd5".to_string(), cas);
        }
        if let Some(Value::Object(extras)) = call.inbound.field("additionMap") {
            for name in PUBLISH_EXTRAS {
                let value = wire::text(extras.get(name));
                if !value.trim().is_empty() {
                    request.params.insert(name.to_string(), value);
                }
            }
        }
    }
    caller.put_author(&mut request.params);
    super::settle(call.ctx.dispatch.commit_log(Scope::new(&config.namespace, KIND), &request).await)?;
    Ok(json!({}))
}

/// `ConfigBatchListenRequest`: with `listen`, the connection listens to each config and learns
/// which differ from its md5 now; without, it stops listening to them.
fn listen(call: &Call<'_>, caller: &Caller) -> Result<Value, Refusal> {
    let listen = call.inbound.bool("listen").unwrap_or(true);
    let contexts = match call.inbound.field("configListenContexts") {
        Some(Value::Array(contexts)) => contexts.clone(),
        None => Vec::new(),
        Some(_) => return Err(GuestError { code: 400, message: "invalid param: configListenContexts".into() }.into()),
    };
    if contexts.len() > MAX_LISTEN_CONTEXTS {
        return Err(GuestError { code: 400, message: "invalid protocol, too much listener".into() }.into());
    }
    // The guest checks one namespace at a time.
    let mut by_namespace: BTreeMap<String, Vec<(ListenedConfig, String)>> = BTreeMap::new();
    for context in &contexts {
        let config = ListenedConfig {
            data_id: wire::text(context.get("dataId")),
            group: wire::text(context.get("group")),
            tenant: wire::text(context.get("tenant")),
        };
        let namespace = super::namespace(&config.tenant)?;
        let resource = Resource::data(&namespace, &config.group, ResourceType::Config, &config.data_id);
        super::permit(caller, &resource, Action::Read).map_err(Refusal::Denied)?;
        by_namespace.entry(namespace).or_default().push((config, wire::text(context.get("md5"))));
    }
    let mut changed = Vec::new();
    for (namespace, configs) in by_namespace {
        let probes: Vec<(&str, &str, &str)> =
            configs.iter().map(|(c, md5)| (c.data_id.as_str(), c.group.as_str(), md5.as_str())).collect();
        let mut params = BTreeMap::new();
        params.insert("probes".to_string(), serde_json::to_string(&probes).expect("strings serialize"));
        let request = GuestRequest { op: LISTEN_OP.to_string(), params, client_ip: call.client_ip() };
        let reply = call.ctx.guests.query(Scope::new(&namespace, KIND), &request)?;
        let watches = WatchKey::from_directive(&namespace, KIND, reply.headers.get(directive::WATCH));
        let mut owned = call.connection.owned.lock().expect("owned lock");
        for (config, md5) in &configs {
            let key = (namespace.clone(), config.clone());
            if listen {
                owned.listened_md5.insert(key, md5.clone());
            } else {
                owned.listened_md5.remove(&key);
            }
        }
        for ((config, _), watch) in configs.iter().zip(watches) {
            if listen {
                owned.listens.entry(watch).or_default().insert(config.clone());
            } else if let Some(listened) = owned.listens.get_mut(&watch) {
                listened.remove(config);
                if listened.is_empty() {
                    owned.listens.remove(&watch);
                }
            }
        }
        drop(owned);
        if listen {
            let stale: Vec<usize> = serde_json::from_str(&reply.body).unwrap_or_default();
            changed.extend(stale.into_iter().filter_map(|position| configs.get(position)).map(
                |(config, _)| json!({ "dataId": config.data_id, "group": config.group, "tenant": config.tenant }),
            ));
        }
    }
    Ok(json!({ "changedConfigs": changed }))
}
