//! The one implementation of the generated WIT `Guest` trait, for any [`StateMachine`]:
//! it converts between the WIT types and the SDK's, decodes each request and encodes each
//! reply. `export_state_machine!` points the component's exports at it.

use std::marker::PhantomData;

use nacre_protocol::GuestRequest;

use crate::bindings::Guest;
use crate::bindings::nacre::machine::types as wit;
use crate::{Command, GuestError, ModuleInfo, ModuleKind, QueryContext, StateMachine, backend};

/// `T` seen through the WIT world. Only named by the export macro (and native tests).
pub struct Exported<T>(PhantomData<T>);

impl<T: StateMachine> Guest for Exported<T> {
    fn describe() -> wit::ModuleInfo {
        T::describe().into()
    }

    /// Each command is decoded and applied on its own, after `begin-command`, so its result
    /// cannot depend on its neighbours in the batch or on how the host batched the log.
    fn apply(ctx: wit::BatchContext, cmds: Vec<wit::Command>) -> Vec<Result<Vec<u8>, wit::GuestError>> {
        let mut results = Vec::with_capacity(cmds.len());
        for (position, wit_cmd) in (0u32..).zip(cmds) {
            backend::begin_command(position);
            let cmd = Command {
                index: wit_cmd.index,
                timestamp_ms: wit_cmd.timestamp_ms,
                namespace: ctx.namespace.clone(),
                term: ctx.term,
            };
            let result = decode(&wit_cmd.payload).and_then(|req| T::apply(&cmd, req));
            results.push(result.map(|reply| reply.encode()).map_err(Into::into));
        }
        results
    }

    fn query(ctx: wit::QueryContext, request: Vec<u8>) -> Result<Vec<u8>, wit::GuestError> {
        let ctx =
            QueryContext { namespace: ctx.namespace, applied_index: ctx.applied_index, timestamp_ms: ctx.timestamp_ms };
        let result = decode(&request).and_then(|req| T::query(&ctx, req));
        result.map(|reply| reply.encode()).map_err(Into::into)
    }

    fn migrate(previous: Option<wit::ModuleInfo>) -> Result<(), String> {
        T::migrate(previous.map(Into::into))
    }
}

/// A payload that is not a guest request is the caller's fault: a 400, never a trap.
fn decode(payload: &[u8]) -> Result<GuestRequest, GuestError> {
    GuestRequest::decode(payload).map_err(|e| GuestError::bad_request(format!("malformed request payload: {e}")))
}

impl From<GuestError> for wit::GuestError {
    fn from(e: GuestError) -> Self {
        Self { code: e.code, message: e.message }
    }
}

impl From<wit::GuestError> for GuestError {
    fn from(e: wit::GuestError) -> Self {
        Self { code: e.code, message: e.message }
    }
}

impl From<ModuleKind> for wit::ModuleKind {
    fn from(kind: ModuleKind) -> Self {
        match kind {
            ModuleKind::Naming => Self::Naming,
            ModuleKind::Config => Self::Config,
        }
    }
}

impl From<wit::ModuleKind> for ModuleKind {
    fn from(kind: wit::ModuleKind) -> Self {
        match kind {
            wit::ModuleKind::Naming => Self::Naming,
            wit::ModuleKind::Config => Self::Config,
        }
    }
}

impl From<ModuleInfo> for wit::ModuleInfo {
    fn from(info: ModuleInfo) -> Self {
        Self { name: info.name, version: info.version, kind: info.kind.into(), schema_version: info.schema_version }
    }
}

impl From<wit::ModuleInfo> for ModuleInfo {
    fn from(info: wit::ModuleInfo) -> Self {
        Self { name: info.name, version: info.version, kind: info.kind.into(), schema_version: info.schema_version }
    }
}
