//! Native test support (not on wasm32): drive a [`StateMachine`] through the same WIT adapter
//! the component exports, against the thread-local stand-in store, and inspect what it did.

use std::collections::BTreeMap;

use nacre_protocol::{GuestReply, GuestRequest};

use crate::adapter::Exported;
use crate::backend::REPLICA;
use crate::bindings::Guest;
use crate::bindings::nacre::machine::types as wit;
use crate::{Command, GuestError, QueryContext, StateMachine};

/// Empties this thread's store, events and command-boundary record.
pub fn reset() {
    REPLICA.with(|r| *r.borrow_mut() = Default::default());
}

/// This thread's store, as the host would hold it for one namespace.
pub fn entries() -> BTreeMap<Vec<u8>, Vec<u8>> {
    REPLICA.with(|r| r.borrow().store.clone())
}

/// The `(topic, key)` events emitted since the last call (or reset), oldest first.
pub fn take_events() -> Vec<(String, String)> {
    REPLICA.with(|r| std::mem::take(&mut r.borrow_mut().events))
}

/// The `begin-command` positions the adapter announced since the last reset.
pub fn begun_positions() -> Vec<u32> {
    REPLICA.with(|r| r.borrow().begun.clone())
}

/// Applies one command as a batch of one, the way the host calls the component.
pub fn apply<T: StateMachine>(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let batch = vec![(cmd.index, cmd.timestamp_ms, req.encode())];
    let result = apply_batch::<T>(&cmd.namespace, cmd.term, batch).pop().expect("one result per command");
    result.map(|bytes| GuestReply::decode(&bytes).expect("the adapter encodes replies"))
}

/// Applies raw `(index, timestamp_ms, payload)` commands in one batch; one result each.
pub fn apply_batch<T: StateMachine>(
    namespace: &str,
    term: u64,
    cmds: Vec<(u64, u64, Vec<u8>)>,
) -> Vec<Result<Vec<u8>, GuestError>> {
    let ctx = wit::BatchContext { namespace: namespace.to_owned(), term };
    let cmds = cmds.into_iter().map(|(index, timestamp_ms, payload)| wit::Command { index, timestamp_ms, payload });
    Exported::<T>::apply(ctx, cmds.collect()).into_iter().map(|r| r.map_err(Into::into)).collect()
}

/// Runs a query with the store read-only: a write panics, as it traps on the host.
pub fn query<T: StateMachine>(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    struct ReadOnly;
    impl Drop for ReadOnly {
        fn drop(&mut self) {
            REPLICA.with(|r| r.borrow_mut().read_only = false);
        }
    }
    REPLICA.with(|r| r.borrow_mut().read_only = true);
    let _guard = ReadOnly;
    let wit_ctx = wit::QueryContext {
        namespace: ctx.namespace.clone(),
        applied_index: ctx.applied_index,
        timestamp_ms: ctx.timestamp_ms,
    };
    let result = Exported::<T>::query(wit_ctx, req.encode()).map_err(GuestError::from);
    result.map(|bytes| GuestReply::decode(&bytes).expect("the adapter encodes replies"))
}
