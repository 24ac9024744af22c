//! A custom naming rule, as a Nacre guest module: every registration must carry the metadata
//! keys in [`REQUIRED_KEYS`]; one that does not is refused with a 400 naming the missing keys,
//! by its plan and by its command, and nothing is written. Everything else is the built-in naming module, unchanged.
//!
//! Deploy it to one namespace (see `examples/modules/README.md`); other namespaces keep the
//! built-in module.

use nacre_guest_sdk::{
    Command, GuestError, GuestReply, GuestRequest, ModuleInfo, ModuleKind, QueryContext, StateMachine,
};
use nacre_naming::Naming;

/// Metadata keys a registration must carry.
pub const REQUIRED_KEYS: &[&str] = &["version", "zone"];

pub struct RequireMetadata;

impl StateMachine for RequireMetadata {
    fn describe() -> ModuleInfo {
        ModuleInfo {
            name: "example-require-metadata".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: ModuleKind::Naming,
            // Same key layout as the built-in module: switching needs no migration.
            schema_version: nacre_naming::SCHEMA_VERSION,
        }
    }

    fn apply(cmd: &Command, req: GuestRequest) -> Result<GuestReply, GuestError> {
        check(&req)?;
        Naming::apply(cmd, req)
    }

    /// A registration's plan (the query the host runs before committing it) refuses too, so
    /// that the client hears the refusal before the command is routed anywhere.
    fn query(ctx: &QueryContext, req: GuestRequest) -> Result<GuestReply, GuestError> {
        check(&req)?;
        Naming::query(ctx, req)
    }

    fn migrate(previous: Option<ModuleInfo>) -> Result<(), String> {
        Naming::migrate(previous)
    }
}

/// A registration must carry every key of [`REQUIRED_KEYS`]; other operations pass.
fn check(req: &GuestRequest) -> Result<(), GuestError> {
    if req.op != nacre_naming::ops::REGISTER {
        return Ok(());
    }
    let metadata = nacre_naming::fields::metadata(req, "metadata")?.unwrap_or_default();
    let missing: Vec<&str> = REQUIRED_KEYS.iter().copied().filter(|k| !metadata.contains_key(*k)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(GuestError::bad_request(format!(
        "invalid param: metadata must contain {}; missing {}",
        REQUIRED_KEYS.join(", "),
        missing.join(", ")
    )))
}

nacre_guest_sdk::export_state_machine!(RequireMetadata);

#[cfg(test)]
mod tests {
    use nacre_guest_sdk::testing;

    use super::*;

    fn request(metadata: &str) -> GuestRequest {
        GuestRequest::new("naming.register")
            .param("serviceName", "svc")
            .param("ip", "10.0.0.1")
            .param("port", "80")
            .param("metadata", metadata)
    }

    fn register(metadata: &str) -> Result<GuestReply, GuestError> {
        testing::write::<RequireMetadata>(&Command::new(1, 1), &request(metadata))
    }

    #[test]
    fn registrations_without_the_keys_are_refused_and_write_nothing() {
        testing::reset();
        let err = register(r#"{"version":"1.2"}"#).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.contains("missing zone"), "{err}");
        let planned = testing::query::<RequireMetadata>(&QueryContext::new(1, 1), &request(r#"{"version":"1.2"}"#));
        assert_eq!(planned.unwrap_err(), err, "the plan refuses as the command does");
        assert!(testing::entries().is_empty(), "a refused registration writes nothing");
        let err = register("").unwrap_err();
        assert!(err.message.contains("missing version, zone"), "{err}");
    }

    #[test]
    fn registrations_with_the_keys_are_the_built_in_behaviour() {
        testing::reset();
        assert_eq!(register("version=1.2,zone=a").unwrap().body, "ok");
        let list = testing::query::<RequireMetadata>(
            &QueryContext::new(1, 1),
            &GuestRequest::new("naming.list").param("serviceName", "svc"),
        )
        .unwrap();
        assert!(list.body.contains(r#""zone":"a""#), "{}", list.body);
    }
}
