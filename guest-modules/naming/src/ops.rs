//! Operation names (what the host's API layer and its timers put in `GuestRequest.op`), their
//! dispatch, and the reply helpers every operation shares.

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext};
use serde::Serialize;

use crate::{beat, catalog, console, health, instance, lease, list, modify, plan, service};

/// The event topic of every naming change; the key is the grouped service name.
pub const TOPIC: &str = "naming";
/// Nacos's body for a successful v1 naming write.
pub const OK: &str = "ok";

pub const REGISTER: &str = "naming.register";
pub const DEREGISTER: &str = "naming.deregister";
pub const UPDATE: &str = "naming.update";
pub const PATCH: &str = "naming.patch";
pub const BEAT: &str = "naming.beat";
pub const EXPIRE: &str = "naming.expire";
pub const HEALTH: &str = "naming.health";
pub const SERVICE_CREATE: &str = "naming.service.create";
pub const SERVICE_REMOVE: &str = "naming.service.remove";
pub const SERVICE_UPDATE: &str = "naming.service.update";
pub const CLUSTER_UPDATE: &str = "naming.cluster.update";

pub const LIST: &str = "naming.list";
pub const DETAIL: &str = "naming.detail";
pub const SERVICE_GET: &str = "naming.service.get";
pub const SERVICE_LIST: &str = "naming.service.list";
pub const METRICS: &str = "naming.metrics";
pub const CATALOG_SERVICES: &str = "naming.catalog.services";
pub const CATALOG_SERVICE: &str = "naming.catalog.service";
pub const CATALOG_INSTANCES: &str = "naming.catalog.instances";
pub const SWEEP: &str = "naming.sweep";
pub const HEALTH_TARGETS: &str = "naming.health.targets";

/// Operations that change state: commands, applied by `apply` on the path their plan (or, for
/// `naming.beat`, their query) names: the log, or the AP path ([`crate::plan`]).
pub const COMMANDS: &[&str] = &[
    REGISTER,
    DEREGISTER,
    UPDATE,
    PATCH,
    BEAT,
    EXPIRE,
    HEALTH,
    SERVICE_CREATE,
    SERVICE_REMOVE,
    SERVICE_UPDATE,
    CLUSTER_UPDATE,
];
/// Reads, answered by `query` on the local replica. `naming.beat` is both: the read decides
/// whether the host must commit it.
pub const QUERIES: &[&str] = &[
    LIST,
    DETAIL,
    SERVICE_GET,
    SERVICE_LIST,
    METRICS,
    CATALOG_SERVICES,
    CATALOG_SERVICE,
    CATALOG_INSTANCES,
    BEAT,
    SWEEP,
    HEALTH_TARGETS,
];
/// Whether a command also answers as a query: the plan the host runs before committing it.
/// Every command but `naming.beat`, whose query is its own plan.
pub fn is_planned(op: &str) -> bool {
    op != BEAT && COMMANDS.contains(&op)
}

pub fn apply(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    match req.op.as_str() {
        REGISTER => instance::register(cmd, req),
        DEREGISTER => instance::deregister(cmd, req),
        UPDATE => modify::update(cmd, req),
        PATCH => modify::patch(cmd, req),
        BEAT => beat::apply(cmd, req),
        EXPIRE => lease::expire(cmd, req),
        HEALTH => health::apply(cmd, req),
        SERVICE_CREATE => service::create(cmd, req),
        SERVICE_REMOVE => service::remove(cmd, req),
        SERVICE_UPDATE => service::update(cmd, req),
        CLUSTER_UPDATE => service::update_cluster(cmd, req),
        op => Err(GuestError::unknown_op(op)),
    }
}

pub fn query(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    match req.op.as_str() {
        LIST => list::list(ctx, req),
        DETAIL => instance::detail(req),
        SERVICE_GET => catalog::get(ctx, req),
        SERVICE_LIST => catalog::list(req),
        METRICS => catalog::metrics(),
        CATALOG_SERVICES => console::services(req),
        CATALOG_SERVICE => console::service(req),
        CATALOG_INSTANCES => console::instances(req),
        BEAT => beat::query(req),
        SWEEP => lease::sweep(req),
        HEALTH_TARGETS => health::targets(req),
        op if is_planned(op) => plan::plan(ctx, req),
        op => Err(GuestError::unknown_op(op)),
    }
}

/// A JSON reply, labelled as such for the client.
pub fn json<T: Serialize + ?Sized>(value: &T) -> GuestReply {
    json_text(serde_json::to_string(value).expect("replies serialize to JSON"))
}

/// A reply whose body is JSON text already.
pub fn json_text(body: String) -> GuestReply {
    GuestReply::text(body).header("Content-Type", "application/json")
}
