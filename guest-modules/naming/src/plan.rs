//! Plans: before committing a naming write, the host runs the same request as a query and
//! follows the [`Plan`] its reply carries (the directives `Nacre-Commit`, `Nacre-Partition`). A
//! plan validates the request exactly as the command will (same parsing, same errors: its error
//! goes straight to the client), checks what only a query can see, and says which path the
//! command takes:
//!
//! - ephemeral instance writes: the AP path, at the node responsible for the service
//!   ([`Commit::Ap`] at `<group>@@<service>`);
//! - persistent instance writes and service or cluster settings: the log ([`Commit::Log`]).
//!
//! A log command cannot see ephemeral instances (the AP keyspace), so the checks that involve
//! them live here only: a persistent registration of an id registered as ephemeral, the
//! removal of a service that still has ephemeral instances, the existence of a service that has
//! only ephemeral instances. The command still checks all it can see: it is the authority.

use nacre_guest_sdk::{Commit, GuestError, GuestReply, GuestRequest, Plan, QueryContext};

use crate::modify::{self, Modify};
use crate::names::ServiceName;
use crate::ops::*;
use crate::{health, instance, lease, service};

/// The plan of a write: the route of its command, or a refusal.
pub fn plan(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    match req.op.as_str() {
        REGISTER => instance::plan_register(ctx, req),
        DEREGISTER => instance::plan_deregister(req),
        UPDATE => modify::plan(ctx, req, Modify::Update),
        PATCH => modify::plan(ctx, req, Modify::Patch),
        EXPIRE => lease::plan_expire(req),
        HEALTH => health::plan(req),
        SERVICE_CREATE => service::plan_create(req),
        SERVICE_REMOVE => service::plan_remove(req),
        SERVICE_UPDATE => service::plan_update(req),
        CLUSTER_UPDATE => service::plan_update_cluster(req),
        op => Err(GuestError::unknown_op(op)),
    }
}

/// Commit through the log.
pub fn to_log() -> GuestReply {
    Plan { commit: Commit::Log, renew: None }.onto(GuestReply::text(""))
}

/// Commit on the AP path, at the node responsible for the service's partition.
pub fn to_ap(service: &ServiceName) -> GuestReply {
    Plan { commit: Commit::Ap { partition: service.grouped() }, renew: None }.onto(GuestReply::text(""))
}

/// The path of a write to an instance of the given kind.
pub fn by_kind(service: &ServiceName, ephemeral: bool) -> GuestReply {
    if ephemeral { to_ap(service) } else { to_log() }
}
