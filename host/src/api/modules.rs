//! `/nacre/v1/modules`, `/nacre/v1/bindings`, `/nacre/v1/exec`: installing and binding guest
//! modules, and calling a guest operation directly (for custom modules and their tests).

use serde_json::json;

use super::Context;
use super::access::Caller;
use super::guest;
use super::params;
use super::params::Params;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::raft::Operation;
use crate::raft::dry_run;
use crate::raft::dry_run::DryRunFailure;
use crate::runtime::ModuleKind;
use crate::scope::Scope;
use crate::state::DEFAULT_NAMESPACE;

/// Commands a dry run replays when the request does not say.
pub const DEFAULT_DRY_RUN_ENTRIES: usize = 100;
/// Bytes of all installed modules together: every node keeps each installed module in its
/// state and compiles it (several times its size in memory), so the modules a cluster may
/// hold are bounded, not only each one. Checked when an install is proposed (a replica never
/// refuses an install already committed: replaying an old log must give the same state).
/// Remove modules no binding uses (`DELETE /nacre/v1/modules?id=`) to make room.
pub const MAX_INSTALLED_MODULE_BYTES: usize = 8 * crate::runtime::limits::MAX_MODULE_BYTES;

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
pub async fn install(ctx: &Context, req: HttpRequest) -> HttpResponse {
    if req.body.is_empty() {
        return net::text(Status::BAD_REQUEST, "missing body: the module's component bytes");
    }
    if let Err(over) = within_quota(ctx, &req.body) {
        return net::text(Status::PAYLOAD_TOO_LARGE, over);
    }
    // Compiling takes most of a second for a naming module: off the async workers.
    let loaded = crate::blocking::cpu_bound(|| ctx.guests.runtime().load(&req.body));
    let (module_id, info) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return net::text(Status::BAD_REQUEST, e.rejection()),
    };
    match ctx.log.write(Operation::InstallModule { bytes: req.body.to_vec() }).await {
        Ok(outcome) => net::json(Status::OK, &json!({ "id": module_id, "info": info, "index": outcome.index })),
        Err(e) => guest::unavailable(&e),
    }
}

/// Whether installing `bytes` keeps the installed modules within [`MAX_INSTALLED_MODULE_BYTES`]
/// (a module already installed takes no more room); why not, in words.
fn within_quota(ctx: &Context, bytes: &[u8]) -> Result<(), String> {
    let replica = ctx.guests.replica().read();
    let machine = &replica.machine;
    let id = crate::runtime::module_id(bytes);
    if machine.module_bytes(&id).is_some() {
        return Ok(());
    }
    let installed: usize = machine.module_ids().iter().filter_map(|id| machine.module_bytes(id)).map(<[u8]>::len).sum();
    quota_check(installed, bytes.len())
}

/// Whether a new module of `new_bytes` fits beside `installed_bytes` of installed modules.
fn quota_check(installed_bytes: usize, new_bytes: usize) -> Result<(), String> {
    if installed_bytes.saturating_add(new_bytes) > MAX_INSTALLED_MODULE_BYTES {
        return Err(format!(
            "invalid module: installed modules take {installed_bytes} bytes, and {new_bytes} more would pass the \
             quota of {MAX_INSTALLED_MODULE_BYTES}; remove modules no binding uses (DELETE /nacre/v1/modules?id=)"
        ));
    }
    Ok(())
}

/// `DELETE /nacre/v1/modules?id=`: remove an installed module no binding in force uses, through
/// the log (404 when not installed, 409 naming the bindings that use it).
pub async fn remove(ctx: &Context, req: HttpRequest) -> HttpResponse {
    let params = Params::from_request(&req);
    let Some(module_id) = params.get("id") else {
        return net::text(
            Status::BAD_REQUEST,
            "missing param: id (the module's id, as GET /nacre/v1/modules lists it)",
        );
    };
    let op = Operation::RemoveModule { module_id: module_id.to_ascii_lowercase() };
    if let Err(invalid) = op.validate() {
        return net::text(Status::BAD_REQUEST, invalid.to_string());
    }
    match ctx.log.write(op).await {
        Ok(outcome) => match outcome.response.result {
            Ok(_) => net::json(Status::OK, &json!({ "removed": module_id, "index": outcome.index })),
            Err(error) => guest::respond(Err(error)),
        },
        Err(e) => guest::unavailable(&e),
    }
}

pub fn list(ctx: &Context) -> HttpResponse {
    crate::blocking::cpu_bound(|| list_loaded(ctx))
}

/// The listing; it may compile modules, so it runs off the async workers.
fn list_loaded(ctx: &Context) -> HttpResponse {
    let replica = ctx.guests.replica().read();
    let modules: Vec<_> = replica
        .machine
        .module_ids()
        .into_iter()
        .map(|id| {
            // A module installed but never run here (e.g. after a restart) is compiled now, from
            // the cache when it can be, so that the listing always says what each module is.
            let runtime = &ctx.guests.runtime();
            let info = runtime.describe(&id).ok().or_else(|| {
                let bytes = replica.machine.module_bytes(&id)?;
                runtime.load(bytes).ok().map(|(_, info)| info)
            });
            json!({ "id": id, "info": info })
        })
        .collect();
    net::json(Status::OK, &modules)
}

/// `POST /nacre/v1/bindings?namespace=&kind=&module=`: bind through the log.
pub async fn activate(ctx: &Context, req: HttpRequest, caller: &Caller) -> HttpResponse {
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
    let op = Operation::Activate { namespace, kind, module_id: module_id.to_string(), by: author(&req, caller) };
    commit_binding(ctx, op).await
}

/// Who a binding change names as its author: the signed-in user, else (auth off) the address
/// it came from.
fn author(req: &HttpRequest, caller: &Caller) -> String {
    caller.name().map_or_else(|| guest::client_ip(req), str::to_string)
}

/// Commit an `Activate` and answer with the binding it made (JSON), or why it was refused.
async fn commit_binding(ctx: &Context, op: Operation) -> HttpResponse {
    match ctx.log.write(op).await {
        Ok(outcome) => match outcome.response.result {
            Ok(binding) => net::response(Status::OK, "application/json;charset=UTF-8", binding),
            Err(error) => guest::respond(Err(error)),
        },
        Err(e) => guest::unavailable(&e),
    }
}

/// `POST /nacre/v1/bindings/rollback?namespace=&kind=`: bind the module that was in force
/// before the current one (the namespace's previous successful binding, or else the
/// cluster-wide default's module), through the log like any activation.
pub async fn rollback(ctx: &Context, req: HttpRequest, caller: &Caller) -> HttpResponse {
    let params = Params::from_request(&req);
    let (namespace, kind) =
        match (params::namespace(params.get("namespace"), "namespace"), parse_kind(params.get("kind"))) {
            (Ok(ns), Ok(kind)) => (ns, kind),
            (Err(message), _) | (_, Err(message)) => return net::text(Status::BAD_REQUEST, message),
        };
    let target = {
        let replica = ctx.guests.replica().read();
        let machine = &replica.machine;
        let own: Vec<_> = machine
            .binding_log()
            .into_iter()
            .filter(|c| c.namespace == namespace && c.kind == kind && c.failure.is_none())
            .collect();
        let current = machine.binding_for(Scope::new(&namespace, kind)).map(|b| b.module_id);
        let earlier = own.iter().rev().map(|c| c.module_id.clone()).find(|id| Some(id) != current.as_ref());
        let default = machine.binding_for(Scope::new(DEFAULT_NAMESPACE, kind)).map(|b| b.module_id);
        match earlier.or(default.filter(|id| Some(id) != current.as_ref())) {
            Some(id) => id,
            None => {
                return net::text(
                    Status::NOT_FOUND,
                    format!("no earlier {kind:?} module to roll back to in namespace {namespace}"),
                );
            }
        }
    };
    let op = Operation::Activate { namespace, kind, module_id: target, by: author(&req, caller) };
    commit_binding(ctx, op).await
}

/// `POST /nacre/v1/modules/dry-run?namespace=&entries=N` with a candidate component as the
/// body: replay the namespace's last N commands through it next to the module in force.
pub async fn dry_run(ctx: &Context, req: HttpRequest) -> HttpResponse {
    let params = Params::from_request(&req);
    let namespace = match params::namespace(params.get("namespace"), "namespace") {
        Ok(ns) => ns,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let last_n = match params.get("entries").map(str::parse::<usize>) {
        None => DEFAULT_DRY_RUN_ENTRIES,
        Some(Ok(n)) => n,
        Some(Err(_)) => return net::text(Status::BAD_REQUEST, "invalid param: entries must be a number"),
    };
    if req.body.is_empty() {
        return net::text(Status::BAD_REQUEST, "missing body: the candidate module's component bytes");
    }
    let snapshots = ctx.data_dir.join(crate::raft::state_machine::SNAPSHOTS_DIR);
    match dry_run::run(ctx.replica.clone(), ctx.log_reader.clone(), snapshots, namespace, req.body.to_vec(), last_n)
        .await
    {
        Ok(report) => net::json(Status::OK, &report),
        Err(e @ DryRunFailure::BadRequest(_)) => net::text(Status::BAD_REQUEST, e.to_string()),
        Err(e @ DryRunFailure::Busy) => net::text(Status::TOO_MANY_REQUESTS, e.to_string()),
        Err(e @ DryRunFailure::Failed(_)) => net::text(Status::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub fn bindings(ctx: &Context) -> HttpResponse {
    let replica = ctx.guests.replica().read();
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
pub async fn exec(ctx: &Context, req: HttpRequest) -> HttpResponse {
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
        guest::write(ctx, namespace, kind, request).await
    } else {
        guest::read(ctx, Scope::new(&namespace, kind), &request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_quota_counts_every_installed_byte() {
        assert!(quota_check(0, MAX_INSTALLED_MODULE_BYTES).is_ok());
        assert!(quota_check(MAX_INSTALLED_MODULE_BYTES - 10, 10).is_ok());
        let over = quota_check(MAX_INSTALLED_MODULE_BYTES - 10, 11).unwrap_err();
        assert!(over.contains("quota") && over.contains("DELETE /nacre/v1/modules"), "{over}");
        assert!(quota_check(usize::MAX, 1).is_err(), "no overflow");
    }
}
