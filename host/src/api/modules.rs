//! `/nacre/v1/modules`, `/nacre/v1/bindings`, `/nacre/v1/exec`: installing and binding guest
//! modules, and calling a guest operation directly (for custom modules and their tests).

use serde_json::json;

use super::guest;
use super::params;
use super::params::Params;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::node::Node;
use crate::raft::Operation;
use crate::runtime::ModuleKind;
use crate::state::DEFAULT_NAMESPACE;

fn parse_kind(value: Option<&str>) -> Result<ModuleKind, String> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        Some("naming") => Ok(ModuleKind::Naming),
        Some("config") => Ok(ModuleKind::Config),
        Some(other) => Err(format!("invalid param: kind must be naming or config, not {other:?}")),
        None => Err("missing param: kind".to_string()),
    }
}

/// `POST /nacre/v1/modules` with the component as the body: validate here (it compiles, it is
/// a state-machine component, `describe` answers), then install through the log.
pub async fn install(node: &Node, req: HttpRequest) -> HttpResponse {
    if req.body.is_empty() {
        return net::text(Status::BAD_REQUEST, "missing body: the module's component bytes");
    }
    let (module_id, info) = match node.shared.runtime.load(&req.body) {
        Ok(loaded) => loaded,
        Err(e) => return net::text(Status::BAD_REQUEST, format!("module rejected: {e}")),
    };
    match node.write(Operation::InstallModule { bytes: req.body.to_vec() }).await {
        Ok(outcome) => net::json(Status::OK, &json!({ "id": module_id, "info": info, "index": outcome.index })),
        Err(e) => guest::unavailable(&e),
    }
}

pub fn list(node: &Node) -> HttpResponse {
    let replica = node.shared.read();
    let modules: Vec<_> = replica
        .machine
        .module_ids()
        .into_iter()
        .map(|id| {
            let info = node.shared.runtime.describe(&id).ok();
            json!({ "id": id, "info": info })
        })
        .collect();
    net::json(Status::OK, &modules)
}

/// `POST /nacre/v1/bindings?namespace=&kind=&module=`: bind through the log.
pub async fn activate(node: &Node, req: HttpRequest) -> HttpResponse {
    let params = Params::from_request(&req);
    let namespace = match params.get("namespace") {
        Some(DEFAULT_NAMESPACE) => Ok(DEFAULT_NAMESPACE.to_string()),
        other => params::namespace(other, "namespace"),
    };
    let (namespace, kind) = match (namespace, parse_kind(params.get("kind"))) {
        (Ok(ns), Ok(kind)) => (ns, kind),
        (Err(message), _) | (_, Err(message)) => return net::text(Status::BAD_REQUEST, message),
    };
    let Some(module_id) = params.get("module").filter(|m| !m.is_empty()) else {
        return net::text(Status::BAD_REQUEST, "missing param: module");
    };
    let by = guest::client_ip(&req);
    let op = Operation::Activate { namespace, kind, module_id: module_id.to_string(), by };
    match node.write(op).await {
        Ok(outcome) => match outcome.response.result {
            Ok(binding) => net::response(Status::OK, "application/json;charset=UTF-8", binding),
            Err(error) => guest::respond(Err(error)),
        },
        Err(e) => guest::unavailable(&e),
    }
}

pub fn bindings(node: &Node) -> HttpResponse {
    let replica = node.shared.read();
    let bindings: Vec<_> = replica
        .machine
        .bindings()
        .into_iter()
        .map(|(namespace, binding)| json!({ "namespace": namespace, "binding": binding }))
        .collect();
    net::json(Status::OK, &json!({ "bindings": bindings, "history": replica.machine.binding_log() }))
}

/// `GET|POST /nacre/v1/exec?namespace=&kind=&op=&...`: a query (GET) or command (POST) with
/// any operation name, answered by the module bound to the namespace.
pub async fn exec(node: &Node, req: HttpRequest) -> HttpResponse {
    let params = Params::from_request(&req);
    let namespace = match params::namespace(params.get("namespace"), "namespace") {
        Ok(ns) => ns,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let kind = match parse_kind(params.get("kind")) {
        Ok(kind) => kind,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let Some(op) = params.get("op").map(str::to_string) else {
        return net::text(Status::BAD_REQUEST, "missing param: op");
    };
    let request = guest::guest_request(&req, &op, params);
    if req.method == net::HttpMethod::POST {
        guest::write(node, namespace, kind, request).await
    } else {
        guest::read(node, &namespace, kind, &request)
    }
}
