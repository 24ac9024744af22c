//! The built-in naming module: Nacos naming semantics (instances, services, heartbeats) as a
//! Nacre guest.
//!
//! NOT IMPLEMENTED YET. This crate fixes the module's identity and its operation names, and
//! lays out where each concern goes; every known operation answers 501 until the naming issue
//! fills it in. Nothing here claims to work.
//!
//! - [`ops`]: the operation names and the dispatch from name to handler
//! - [`instance`]: register, deregister, update, patch, heartbeat, detail, list
//! - [`service`]: create, remove, update, get, list

pub mod instance;
pub mod ops;
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

nacre_guest_sdk::export_state_machine!(Naming);

#[cfg(test)]
mod tests {
    use super::*;
    use nacre_guest_sdk::testing;

    #[test]
    fn every_known_operation_says_it_is_not_implemented() {
        testing::reset();
        for op in ops::COMMANDS {
            let err = testing::apply::<Naming>(&Command::new(1, 1), &GuestRequest::new(*op)).unwrap_err();
            assert_eq!((err.code, err.message), (501, format!("{op} is not implemented yet")));
        }
        for op in ops::QUERIES {
            let err = testing::query::<Naming>(&QueryContext::new(1, 1), &GuestRequest::new(*op)).unwrap_err();
            assert_eq!((err.code, err.message), (501, format!("{op} is not implemented yet")));
        }
        assert!(testing::entries().is_empty());
    }

    #[test]
    fn unknown_operations_are_bad_requests() {
        let err = testing::apply::<Naming>(&Command::new(1, 1), &GuestRequest::new("naming.list")).unwrap_err();
        assert_eq!(err.code, 400, "a query is not a command");
        let err = testing::query::<Naming>(&QueryContext::new(1, 1), &GuestRequest::new("config.get")).unwrap_err();
        assert_eq!(err.code, 400);
    }
}
