//! The built-in naming module: Nacos naming semantics (services, clusters, instances,
//! heartbeats, health) as a Nacre guest.
//!
//! Two paths, as in Nacos: ephemeral instances are AP state (keys under `e/`, the host's AP
//! keyspace), written by AP commands at the node responsible for their service and replicated
//! between nodes outside the log, so registrations and beats keep working on the minority side
//! of a network partition; persistent instances, services and clusters are CP state, written by
//! log commands. A log command cannot see AP state; a query sees both. Layout: [`record`].
//!
//! Commands (`apply`), each replying `ok` unless said otherwise: `naming.register`,
//! `naming.deregister` ([`instance`]), `naming.update`, `naming.patch` ([`modify`]); `naming.beat` (reply:
//! the beat JSON; [`beat`]); `naming.expire` ([`lease`]); `naming.health` ([`health`]);
//! `naming.service.create`, `naming.service.remove`, `naming.service.update`,
//! `naming.cluster.update` ([`service`]). Each of them but the beat also answers as a query:
//! its plan ([`plan`]), which validates it and names its path (a `nacre_guest_sdk::Plan`:
//! `Commit::Log` for the log, `Commit::Ap` at `<group>@@<service>` for the AP path).
//!
//! Queries (`query`, on the local replica): `naming.list` ([`list`], with a `Nacre-Watch`
//! directive), `naming.detail`, `naming.service.get`, `naming.service.list`, `naming.metrics`
//! ([`catalog`]), `naming.beat` (its plan renews the lease at the service's partition and asks
//! for an AP commit when the beat changes state), `naming.sweep` (a node's
//! heartbeat sweep over the partitions it is responsible for: replies the `naming.expire` /
//! `naming.health` AP commands to run and the lease counts self-preservation needs) and
//! `naming.health.targets` (what the leader's prober should probe).
//!
//! Every change emits an event on topic `naming` keyed by the grouped service name
//! (`group@@service`). Time comes only from the command's (or query context's) stamp. Names
//! and fields are validated in [`names`] and [`fields`] before anything is written.
//!
//! The leader's sweep also asks for a guarded `naming.service.remove` (a log command) of
//! services that stayed empty and unconfigured for a minute (Nacos's empty-service
//! auto-clean).
//!
//! Not implemented: label selectors are stored and shown but do not filter `naming.list`;
//! MYSQL health checkers are stored but never probed.

pub mod beat;
pub mod catalog;
pub mod console;
pub mod fields;
pub mod health;
pub mod instance;
pub mod lease;
pub mod list;
pub mod modify;
pub mod names;
pub mod ops;
pub mod plan;
pub mod record;
pub mod service;

use nacre_guest_sdk::{
    Command, GuestError, GuestReply, GuestRequest, ModuleInfo, ModuleKind, QueryContext, StateMachine,
};

/// Version of the layout of this module's keys and values.
pub const SCHEMA_VERSION: u32 = 1;

pub struct Naming;

impl StateMachine for Naming {
    fn describe() -> ModuleInfo {
        ModuleInfo {
            name: "nacre-naming".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: ModuleKind::Naming,
            schema_version: SCHEMA_VERSION,
        }
    }

    fn apply(cmd: &Command, req: GuestRequest) -> Result<GuestReply, GuestError> {
        ops::apply(cmd, &req)
    }

    fn query(ctx: &QueryContext, req: GuestRequest) -> Result<GuestReply, GuestError> {
        ops::query(ctx, &req)
    }

    /// No layout but this one is readable: a fresh namespace, or a module of the same schema.
    fn migrate(previous: Option<ModuleInfo>) -> Result<(), String> {
        nacre_guest_sdk::accept_same_schema(previous.as_ref(), SCHEMA_VERSION)
    }
}

// Exported unless a custom module builds on this crate (it exports its own machine instead;
// two exports of the same names would not link).
#[cfg(feature = "export")]
nacre_guest_sdk::export_state_machine!(Naming);

#[cfg(test)]
mod tests;
