//! Native test support (not on wasm32): drive a [`StateMachine`] through the same WIT adapter
//! the component exports, against the thread-local stand-in store, and inspect what it did.
//!
//! [`apply`] runs a command with no keyspace rules. A module with an AP keyspace
//! (`nacre_protocol::keyspace`) tests its commands with [`apply_log`] and [`apply_ap`], which
//! enforce the host's rules, or with [`write()`], which plans and commits the way the host's API
//! layer does.

use std::collections::BTreeMap;

use nacre_protocol::{Commit, GuestReply, GuestRequest, Plan};

use crate::adapter::Exported;
use crate::backend::{Mode, REPLICA};
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

/// The keys deleted since the last call (or reset), present or not, oldest first.
pub fn take_deletes() -> Vec<Vec<u8>> {
    REPLICA.with(|r| std::mem::take(&mut r.borrow_mut().deletes))
}

/// The `begin-command` positions the adapter announced since the last reset.
pub fn begun_positions() -> Vec<u32> {
    REPLICA.with(|r| r.borrow().begun.clone())
}

/// Applies one command as a batch of one, the way the host calls the component, with every key
/// readable and writable.
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

/// Applies one command the way the host applies a log (Raft) command: keys under the AP prefix
/// are invisible to it, and writing one panics (the host fails such a command).
pub fn apply_log<T: StateMachine>(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    in_mode(Mode::LogCommand, || apply::<T>(cmd, req))
}

/// Applies one command the way the host applies an AP command: with term 0
/// ([`Command::is_ap`]), seeing every key, and writing outside the AP prefix panics (the host
/// fails such a command).
pub fn apply_ap<T: StateMachine>(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let cmd = Command { term: 0, ..cmd.clone() };
    in_mode(Mode::ApCommand, || apply::<T>(&cmd, req))
}

/// A write the way the host's API layer handles it: the request runs first as a query at the
/// command's time, whose reply carries its [`Plan`]; the plan's commit then runs it through
/// [`apply_log`] ([`Commit::Log`]) or [`apply_ap`] ([`Commit::Ap`]); without one
/// ([`Commit::None`]), the plan's reply is the answer. A plan's error is the answer too. A lease
/// renewal is read but renews nothing here. Panics on a plan the host would refuse
/// ([`nacre_protocol::PlanError`]).
pub fn write<T: StateMachine>(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let reply = query::<T>(&QueryContext::new(cmd.index, cmd.timestamp_ms), req)?;
    let plan = Plan::from_reply(&reply).unwrap_or_else(|error| panic!("{}: {error}", req.op));
    match plan.commit {
        Commit::None => Ok(reply),
        Commit::Log => apply_log::<T>(cmd, req),
        Commit::Ap { .. } => apply_ap::<T>(cmd, req),
    }
}

/// Runs a query with the store read-only: a write panics, as it traps on the host.
pub fn query<T: StateMachine>(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let wit_ctx = wit::QueryContext {
        namespace: ctx.namespace.clone(),
        applied_index: ctx.applied_index,
        timestamp_ms: ctx.timestamp_ms,
    };
    let result = in_mode(Mode::Query, || Exported::<T>::query(wit_ctx, req.encode())).map_err(GuestError::from);
    result.map(|bytes| GuestReply::decode(&bytes).expect("the adapter encodes replies"))
}

/// Runs `f` under the host rules of `mode`, restoring the unrestricted mode afterwards (also
/// when `f` panics, so that one failed assertion does not leak into the next call).
fn in_mode<R>(mode: Mode, f: impl FnOnce() -> R) -> R {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            REPLICA.with(|r| r.borrow_mut().mode = Mode::Unrestricted);
        }
    }
    REPLICA.with(|r| r.borrow_mut().mode = mode);
    let _restore = Restore;
    f()
}
