//! `apply`: batching commands into guest calls without letting the batching show in outcomes.
//!
//! The reference semantics is "each command alone, in a fresh instance, against the committed
//! state plus the writes of the commands before it". Replicas batch differently, so a batched
//! call is only an optimisation that must give the same outcomes:
//!
//! * fuel is per command: `begin-command(k)` resets it to `PER_COMMAND_FUEL`, so a command gets
//!   at most as much as when alone (the end of a batch also pays for returning every result);
//! * a trap in command `k` (fuel, memory, stack, a refused host call) cannot be blamed on `k`
//!   in a batch: the batch before `k` is run again to learn its results (they were not
//!   returned), then `k` runs alone, and only a trap alone is its outcome;
//! * a guest that skips or reorders `begin-command`, or returns the wrong number of results,
//!   gets its commands applied one per call, the reference semantics itself;
//! * a result over `MAX_RESULT_BYTES` voids that command's writes, so the batch is cut after it:
//!   later commands must not have seen writes that end up discarded.

use wasmtime::Engine;

use super::bindings::{self, Command};
use super::call::{self, Fault, Finished};
use super::engine::{LoadedModule, from_guest_error, oversized, result_limit_error};
use super::host_state::{Effects, Mode, Overlay};
use super::limits::{INLINE_FUEL, MAX_BATCH_COMMANDS, MAX_BATCH_PAYLOAD_BYTES, PER_COMMAND_FUEL};
use super::{Budget, CommandOutcome, GuestCommand, KvRead, RuntimeError};

pub(super) type GuestResults = Vec<Result<Vec<u8>, bindings::GuestError>>;

/// What a batched call (two or more commands) tells the loop.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Outcomes of the first commands of the batch: all, or up to one whose result broke a
    /// limit (its writes were discarded, so the commands after it must run again).
    Done(Vec<CommandOutcome>),
    /// The guest trapped in the command at this offset; those before it completed.
    TrappedAt(usize),
    /// The guest broke the `begin-command` protocol.
    Protocol,
}

pub(crate) fn apply(
    engine: &Engine,
    module: &LoadedModule,
    ctx: &bindings::BatchContext,
    cmds: &[GuestCommand],
    base: &dyn KvRead,
) -> Result<Vec<CommandOutcome>, RuntimeError> {
    let mut outcomes = Vec::with_capacity(cmds.len());
    // Net writes of the commands already decided in this `apply`.
    let mut prior = Overlay::new();
    let mut pos = 0;
    // After a trap at `pos + k`: the batch must end there, and that command runs alone next.
    // Each turn of the loop either decides a command (`pos` grows) or makes the next call
    // strictly shorter (`cut_at` falls below the end of the call that trapped), so it ends.
    let mut cut_at: Option<usize> = None;
    while pos < cmds.len() {
        if cut_at.is_some_and(|cut| cut < pos) {
            cut_at = None;
        }
        let end = match cut_at {
            Some(cut) if cut == pos => pos + 1,
            Some(cut) => cut,
            None if !module.batching() => pos + 1,
            None => batch_end(cmds, pos),
        };
        debug_assert!(pos < end && end <= cmds.len());
        let batch = &cmds[pos..end];
        let finished = run_batch(engine, module, ctx, batch, base, prior)?;
        if batch.len() == 1 {
            let (outcome, back) = single_outcome(finished);
            prior = back;
            merge(&mut prior, &outcome);
            outcomes.push(outcome);
            pos += 1;
            continue;
        }
        let (verdict, back) = batch_verdict(finished, batch.len());
        prior = back;
        match verdict {
            Verdict::Done(done) => {
                debug_assert!(!done.is_empty() && done.len() <= batch.len());
                pos += done.len();
                for outcome in done {
                    merge(&mut prior, &outcome);
                    outcomes.push(outcome);
                }
            }
            // Trapped before finishing its first command: that command runs alone.
            Verdict::TrappedAt(0) => cut_at = Some(pos),
            // Run the completed prefix again for its results, then the trapping one alone.
            Verdict::TrappedAt(k) => {
                debug_assert!(k < batch.len());
                cut_at = Some(pos + k);
            }
            Verdict::Protocol => {
                tracing::debug!("guest broke the begin-command protocol; applying one per call");
                module.stop_batching();
            }
        }
    }
    Ok(outcomes)
}

/// The end of the next batch from `pos`: bounded in commands and payload bytes, at least one.
fn batch_end(cmds: &[GuestCommand], pos: usize) -> usize {
    let mut end = pos + 1;
    let mut bytes = cmds[pos].payload.len();
    while end < cmds.len() && end - pos < MAX_BATCH_COMMANDS {
        bytes += cmds[end].payload.len();
        if bytes > MAX_BATCH_PAYLOAD_BYTES {
            break;
        }
        end += 1;
    }
    end
}

fn run_batch(
    engine: &Engine,
    module: &LoadedModule,
    ctx: &bindings::BatchContext,
    batch: &[GuestCommand],
    base: &dyn KvRead,
    prior: Overlay,
) -> Result<Finished<GuestResults>, RuntimeError> {
    let commands: Vec<Command> = batch.iter().map(to_binding).collect();
    #[cfg(test)]
    module.apply_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let len = u32::try_from(batch.len()).expect("batches are bounded by MAX_BATCH_COMMANDS");
    // Until `begin-command(0)` (or for the whole call, if the guest never calls it) the budget
    // is one command's.
    let mode = Mode::Apply { len, command_fuel: PER_COMMAND_FUEL };
    call::run(engine, &module.pre, base, mode, PER_COMMAND_FUEL, prior, |guest, store| {
        guest.call_apply(store, ctx, &commands)
    })
}

/// One command alone, the reference semantics, within `budget`: for a caller that runs it
/// outside the log (an AP command), so no batching.
pub(super) fn apply_one(
    engine: &Engine,
    module: &LoadedModule,
    ctx: &bindings::BatchContext,
    cmd: &GuestCommand,
    base: &dyn KvRead,
    budget: Budget,
) -> Result<CommandOutcome, RuntimeError> {
    let fuel = match budget {
        Budget::Inline => INLINE_FUEL,
        Budget::Full | Budget::Duty => PER_COMMAND_FUEL,
    };
    let command = [to_binding(cmd)];
    let mode = Mode::Apply { len: 1, command_fuel: fuel };
    let finished = call::run(engine, &module.pre, base, mode, fuel, Overlay::new(), |guest, store| {
        guest.call_apply(store, ctx, &command)
    })?;
    if budget == Budget::Inline && matches!(finished.result, Err(Fault::OutOfFuel)) {
        return Err(RuntimeError::OverInlineBudget);
    }
    Ok(single_outcome(finished).0)
}

fn to_binding(cmd: &GuestCommand) -> Command {
    Command { index: cmd.index, timestamp_ms: cmd.timestamp_ms, payload: cmd.payload.clone() }
}

/// The outcome of a one-command call, which is the reference semantics. Also returns `prior`.
fn single_outcome(finished: Finished<GuestResults>) -> (CommandOutcome, Overlay) {
    // With one command, `begin-command(0)` is the only one accepted and it seals nothing.
    debug_assert!(finished.sealed.is_empty());
    let outcome = match finished.result {
        Err(fault) => failed(&fault),
        Ok(results) if results.len() != 1 => CommandOutcome {
            result: Err(super::GuestError {
                code: 500,
                message: format!("guest returned {} results for 1 command", results.len()),
            }),
            writes: Vec::new(),
            events: Vec::new(),
        },
        Ok(mut results) => {
            let result = results.pop().expect("one result");
            checked(result, finished.current).0
        }
    };
    (outcome, finished.prior)
}

/// Judges a batched call. Also returns `prior`.
pub(super) fn batch_verdict(finished: Finished<GuestResults>, len: usize) -> (Verdict, Overlay) {
    let Finished { result, prior, mut sealed, current, begun } = finished;
    let verdict = match result {
        Err(Fault::Protocol(_)) => Verdict::Protocol,
        // `begun` commands were started; the trap is in the last one (or before the first).
        Err(_) => Verdict::TrappedAt(begun.saturating_sub(1) as usize),
        Ok(results) if results.len() != len || begun as usize != len => Verdict::Protocol,
        Ok(results) => {
            sealed.push(current);
            debug_assert_eq!(sealed.len(), len);
            let mut done = Vec::with_capacity(len);
            for (result, effects) in results.into_iter().zip(sealed) {
                let (outcome, voided) = checked(result, effects);
                done.push(outcome);
                if voided {
                    break;
                }
            }
            Verdict::Done(done)
        }
    };
    (verdict, prior)
}

/// A command's outcome from its result and effects, and whether the result broke
/// [`MAX_RESULT_BYTES`](super::limits::MAX_RESULT_BYTES), which voids the effects.
fn checked(result: Result<Vec<u8>, bindings::GuestError>, effects: Effects) -> (CommandOutcome, bool) {
    let result = result.map_err(from_guest_error);
    if let Some(size) = oversized(&result) {
        let outcome = CommandOutcome { result: Err(result_limit_error(size)), writes: Vec::new(), events: Vec::new() };
        return (outcome, true);
    }
    let (writes, events) = effects.into_parts();
    let outcome = CommandOutcome { result, writes, events };
    (outcome, false)
}

fn failed(fault: &Fault) -> CommandOutcome {
    CommandOutcome { result: Err(fault.to_guest_error()), writes: Vec::new(), events: Vec::new() }
}

fn merge(prior: &mut Overlay, outcome: &CommandOutcome) {
    for (key, value) in &outcome.writes {
        prior.insert(key.clone(), value.clone());
    }
}
