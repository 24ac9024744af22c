//! Nacos 2.x naming requests, mapped to the naming guest's operations (the same ones the v1
//! HTTP API uses): `naming.register`, `naming.deregister`, `naming.list` (in its 2.x view),
//! `naming.service.list`.
//!
//! An ephemeral registration (`InstanceRequest`, `BatchInstanceRequest`) belongs to the
//! connection it came on: it carries the connection's id (`connectionId`), the connection
//! keeps the request (Nacos keeps one record per service per connection: a new registration
//! replaces the connection's previous one, a batch replaces the whole set), and `lifecycle`
//! renews it while the connection lives and deregisters it when the connection ends.

use std::collections::BTreeMap;

use nacre_protocol::GuestRequest;
use nacre_protocol::directive;
use serde_json::Value;
use serde_json::json;

use super::Call;
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

const KIND: ModuleKind = ModuleKind::Naming;
pub const REGISTER_OP: &str = "naming.register";
pub const DEREGISTER_OP: &str = "naming.deregister";
pub const BEAT_OP: &str = "naming.beat";
const LIST_OP: &str = "naming.list";
const SERVICE_LIST_OP: &str = "naming.service.list";
/// The parameter that makes a registration the connection's (the guest keeps it as the
/// instance's owner).
pub const OWNER_PARAM: &str = "connectionId";
/// `BatchInstanceRequest`'s only type.
const BATCH_REGISTER: &str = "batchRegisterInstance";
const DEREGISTER: &str = "deregisterInstance";
/// Largest batch a client may register at once.
pub const MAX_BATCH_INSTANCES: usize = 1_000;

pub fn handles(kind: &str) -> bool {
    response_type(kind) != "ErrorResponse"
}

pub fn response_type(kind: &str) -> &'static str {
    match kind {
        "InstanceRequest" | "PersistentInstanceRequest" => "InstanceResponse",
        "BatchInstanceRequest" => "BatchInstanceResponse",
        "ServiceQueryRequest" => "QueryServiceResponse",
        "SubscribeServiceRequest" => "SubscribeServiceResponse",
        "ServiceListRequest" => "ServiceListResponse",
        _ => "ErrorResponse",
    }
}

pub async fn answer(call: &Call<'_>, caller: &Caller) -> Reply {
    let kind = call.inbound.kind.as_str();
    let response = response_type(kind);
    let result = match kind {
        "InstanceRequest" => instance(call, caller, true).await,
        "PersistentInstanceRequest" => instance(call, caller, false).await,
        "BatchInstanceRequest" => batch(call, caller).await,
        "ServiceQueryRequest" => query(call, caller, false),
        "SubscribeServiceRequest" => query(call, caller, true),
        "ServiceListRequest" => service_list(call, caller),
        _ => unreachable!("handles() admits only these"),
    };
    match result {
        Ok(fields) => wire::success(response, fields),
        Err(refusal) => refusal.into_reply(response, json!({})),
    }
}

/// Why a request was not carried out: auth, or the guest's (or the path's) refusal.
pub(crate) enum Refusal {
    Denied(&'static str),
    Guest(GuestError),
}

impl From<GuestError> for Refusal {
    fn from(error: GuestError) -> Refusal {
        Refusal::Guest(error)
    }
}

impl Refusal {
    pub fn into_reply(self, response: &str, fields: Value) -> Reply {
        match self {
            Refusal::Denied(message) => wire::failure(response, wire::code::NO_RIGHT, message, fields),
            Refusal::Guest(error) => wire::failure(response, u32::from(error.code), &error.message, fields),
        }
    }
}

/// The service a request names, as it names it.
struct ServiceRef {
    namespace: String,
    group: String,
    service: String,
}

impl ServiceRef {
    fn of(call: &Call<'_>) -> Result<ServiceRef, GuestError> {
        Ok(ServiceRef {
            namespace: super::namespace(&call.inbound.str("namespace"))?,
            group: call.inbound.str("groupName"),
            service: call.inbound.str("serviceName"),
        })
    }

    fn resource(&self) -> Resource {
        Resource::data(&self.namespace, &self.group, ResourceType::Naming, &self.service)
    }

    /// `caller` may do `action` on this service: on the resource its parameters name, and on
    /// the one its `group@@` prefix names when that differs (`Resource::naming_prefix`).
    fn permit(&self, caller: &Caller, action: Action) -> Result<(), Refusal> {
        super::permit(caller, &self.resource(), action).map_err(Refusal::Denied)?;
        match Resource::naming_prefix(&self.namespace, &self.group, &self.service) {
            Some(prefix) => super::permit(caller, &prefix, action).map_err(Refusal::Denied),
            None => Ok(()),
        }
    }

    fn scope(&self) -> Scope<'_> {
        Scope::new(&self.namespace, KIND)
    }

    /// The guest request of `op` for this service, with the parameters the v1 API would send.
    fn request(&self, call: &Call<'_>, op: &str) -> GuestRequest {
        let mut params = BTreeMap::new();
        params.insert("namespaceId".to_string(), self.namespace.clone());
        params.insert("serviceName".to_string(), self.service.clone());
        if !self.group.is_empty() {
            params.insert("groupName".to_string(), self.group.clone());
        }
        GuestRequest { op: op.to_string(), params, client_ip: call.client_ip() }
    }

    fn key(&self) -> (String, String, String) {
        (self.namespace.clone(), self.group.clone(), self.service.clone())
    }
}

/// An instance's fields as the v1 registration's parameters.
fn instance_params(instance: &Value, ephemeral: bool, params: &mut BTreeMap<String, String>) {
    let field = |name: &str| wire::text(instance.get(name)).trim().to_string();
    for (field_name, param) in [("ip", "ip"), ("port", "port"), ("weight", "weight"), ("clusterName", "clusterName")] {
        let value = field(field_name);
        if !value.is_empty() {
            params.insert(param.to_string(), value);
        }
    }
    for flag in ["healthy", "enabled"] {
        if let Some(value) = wire::bool_of(instance.get(flag)) {
            params.insert(flag.to_string(), value.to_string());
        }
    }
    if let Some(metadata) = instance.get("metadata").filter(|m| m.as_object().is_some_and(|m| !m.is_empty())) {
        params.insert("metadata".to_string(), metadata.to_string());
    }
    params.insert("ephemeral".to_string(), ephemeral.to_string());
}

/// Which instance a registration names: its address and cluster.
pub fn identity(request: &GuestRequest) -> (Option<&String>, Option<&String>, Option<&String>) {
    (request.params.get("ip"), request.params.get("port"), request.params.get("clusterName"))
}

/// `InstanceRequest` (ephemeral, owned by the connection) or `PersistentInstanceRequest`.
async fn instance(call: &Call<'_>, caller: &Caller, ephemeral: bool) -> Result<Value, Refusal> {
    let service = ServiceRef::of(call)?;
    service.permit(caller, Action::Write)?;
    let kind = call.inbound.str("type");
    let instance = call.inbound.field("instance").cloned().unwrap_or(Value::Null);
    let op = if kind == DEREGISTER { DEREGISTER_OP } else { REGISTER_OP };
    let mut request = service.request(call, op);
    instance_params(&instance, ephemeral, &mut request.params);
    if !ephemeral {
        super::settle(call.ctx.dispatch.act(service.scope(), request).await)?;
        return Ok(json!({ "type": kind }));
    }
    request.params.insert(OWNER_PARAM.to_string(), call.connection.id.clone());
    if op == DEREGISTER_OP {
        // The connection's record of the service goes, whatever address the request names.
        let held = call.connection.owned.lock().expect("owned lock").instances.remove(&service.key());
        for registered in held.unwrap_or_else(|| vec![request]) {
            deregister(call, service.scope(), &registered).await?;
        }
    } else {
        super::settle(call.ctx.dispatch.act(service.scope(), request.clone()).await)?;
        let previous =
            call.connection.owned.lock().expect("owned lock").instances.insert(service.key(), vec![request.clone()]);
        for old in previous.unwrap_or_default().iter().filter(|old| identity(old) != identity(&request)) {
            deregister(call, service.scope(), old).await?;
        }
        orphan_check(call, service.scope(), &request).await?;
    }
    Ok(json!({ "type": kind }))
}

/// A connection that ended while its registration was being applied may have been cleaned
/// up before the registration was recorded: then nothing would renew or remove it, and it
/// would linger until it expires. Remove it here instead.
async fn orphan_check(call: &Call<'_>, scope: Scope<'_>, registered: &GuestRequest) -> Result<(), GuestError> {
    if call.connection.is_closed() { deregister(call, scope, registered).await } else { Ok(()) }
}

/// Deregister what `registered` (a registration of this connection) registered.
async fn deregister(call: &Call<'_>, scope: Scope<'_>, registered: &GuestRequest) -> Result<(), GuestError> {
    let request = GuestRequest { op: DEREGISTER_OP.to_string(), ..registered.clone() };
    super::settle(call.ctx.dispatch.act(scope, request).await).map(drop)
}

/// `BatchInstanceRequest`: the connection's instances of the service become exactly these.
async fn batch(call: &Call<'_>, caller: &Caller) -> Result<Value, Refusal> {
    let service = ServiceRef::of(call)?;
    service.permit(caller, Action::Write)?;
    let kind = call.inbound.str("type");
    if kind != BATCH_REGISTER {
        return Err(GuestError { code: 400, message: format!("invalid param: type {kind:?} of a batch") }.into());
    }
    let instances = match call.inbound.field("instances") {
        Some(Value::Array(instances)) => instances.clone(),
        None => Vec::new(),
        Some(_) => return Err(GuestError { code: 400, message: "invalid param: instances".into() }.into()),
    };
    if instances.len() > MAX_BATCH_INSTANCES {
        let message = format!("invalid param: more than {MAX_BATCH_INSTANCES} instances in one batch");
        return Err(GuestError { code: 400, message }.into());
    }
    let mut registered = Vec::with_capacity(instances.len());
    let mut failure = None;
    for instance in &instances {
        let mut request = service.request(call, REGISTER_OP);
        instance_params(instance, true, &mut request.params);
        request.params.insert(OWNER_PARAM.to_string(), call.connection.id.clone());
        match super::settle(call.ctx.dispatch.act(service.scope(), request.clone()).await) {
            Ok(_) => registered.push(request),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let previous =
        call.connection.owned.lock().expect("owned lock").instances.remove(&service.key()).unwrap_or_default();
    let dropped: Vec<GuestRequest> =
        previous.into_iter().filter(|old| !registered.iter().any(|new| identity(new) == identity(old))).collect();
    // On a failure the previous registrations stay (the client retries the batch).
    let mut now_held = registered;
    if let Some(error) = failure {
        now_held.extend(dropped);
        call.connection.owned.lock().expect("owned lock").instances.insert(service.key(), now_held);
        return Err(error.into());
    }
    for old in &dropped {
        deregister(call, service.scope(), old).await?;
    }
    call.connection.owned.lock().expect("owned lock").instances.insert(service.key(), now_held.clone());
    for registered in &now_held {
        orphan_check(call, service.scope(), registered).await?;
    }
    Ok(json!({ "type": kind }))
}

/// `ServiceQueryRequest`, or `SubscribeServiceRequest` (which also subscribes or unsubscribes
/// the connection): the service's `ServiceInfo`, in the guest's 2.x view.
fn query(call: &Call<'_>, caller: &Caller, subscription: bool) -> Result<Value, Refusal> {
    let service = ServiceRef::of(call)?;
    service.permit(caller, Action::Read)?;
    let mut request = service.request(call, LIST_OP);
    let clusters = call.inbound.str(if subscription { "clusters" } else { "cluster" });
    request.params.insert("clusters".to_string(), clusters.clone());
    request.params.insert("view".to_string(), "v2".to_string());
    if call.inbound.bool("healthyOnly") == Some(true) {
        request.params.insert("healthyOnly".to_string(), "true".to_string());
    }
    let reply = call.ctx.guests.query(service.scope(), &request)?;
    let mut service_info: Value = serde_json::from_str(&reply.body)
        .map_err(|e| GuestError { code: 500, message: format!("the naming module answered no JSON: {e}") })?;
    service_info["lastRefTime"] = json!(call.ctx.connections.stamp_ms());
    if !subscription {
        return Ok(json!({ "serviceInfo": service_info }));
    }
    let watches = WatchKey::from_directive(&service.namespace, KIND, reply.headers.get(directive::WATCH));
    let subscribe = call.inbound.bool("subscribe").unwrap_or(true);
    let mut owned = call.connection.owned.lock().expect("owned lock");
    for watch in watches {
        if subscribe {
            owned.subscriptions.entry(watch).or_default().insert(clusters.clone(), request.clone());
        } else if let Some(by_clusters) = owned.subscriptions.get_mut(&watch) {
            by_clusters.remove(&clusters);
            if by_clusters.is_empty() {
                owned.subscriptions.remove(&watch);
            }
        }
    }
    Ok(json!({ "serviceInfo": service_info }))
}

/// `ServiceListRequest`: a page of the group's service names.
fn service_list(call: &Call<'_>, caller: &Caller) -> Result<Value, Refusal> {
    let service = ServiceRef::of(call)?;
    let resource = Resource::data(&service.namespace, &service.group, ResourceType::Naming, "");
    super::permit(caller, &resource, Action::Read).map_err(Refusal::Denied)?;
    let mut request = service.request(call, SERVICE_LIST_OP);
    request.params.remove("serviceName");
    let page = |field: &str, default: u64| {
        call.inbound.field(field).and_then(Value::as_u64).filter(|n| *n > 0).unwrap_or(default).to_string()
    };
    request.params.insert("pageNo".to_string(), page("pageNo", 1));
    request.params.insert("pageSize".to_string(), page("pageSize", 10));
    let reply = call.ctx.guests.query(service.scope(), &request)?;
    let list: Value = serde_json::from_str(&reply.body)
        .map_err(|e| GuestError { code: 500, message: format!("the naming module answered no JSON: {e}") })?;
    Ok(json!({ "count": list["count"].as_u64().unwrap_or(0), "serviceNames": list["doms"].clone() }))
}
