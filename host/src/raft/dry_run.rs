//! Dry runs on a live node: rebuild the state at the right point from the latest snapshot and
//! the log after it, then let [`crate::state::dry_run`] replay a namespace's recent commands
//! through a candidate module. CPU-bound, so it runs on a blocking thread, one at a time.

use std::sync::Arc;

use openraft::EntryPayload;
use openraft::storage::RaftLogReader as _;
use tokio::sync::Semaphore;

use super::log_store::LogStore;
use super::state_machine::Shared;
use super::state_machine::read_snapshot;
use crate::scope::Scope;
use crate::state::EntryRef;
use crate::state::Machine;
use crate::state::dry_run::DryRunReport;
use crate::state::dry_run::dry_run;

/// Most commands one dry run may replay.
pub const MAX_DRY_RUN_ENTRIES: usize = 10_000;

/// One dry run at a time per node: each replays up to a whole log window through two modules.
static ONE_AT_A_TIME: Semaphore = Semaphore::const_new(1);

/// Why a dry run did not produce a report, as the API answers it.
#[derive(Debug, thiserror::Error)]
pub enum DryRunFailure {
    #[error("{0}")]
    BadRequest(String),
    #[error("another dry run is in progress on this node; retry when it finishes")]
    Busy,
    #[error("{0}")]
    Failed(String),
}

/// Replay the last `last_n` commands of `namespace` (for the kind the candidate declares)
/// through the candidate module `bytes`, as of this replica's applied index.
pub async fn run(
    shared: Arc<Shared>,
    mut log: LogStore,
    snapshot_dir: std::path::PathBuf,
    namespace: String,
    bytes: Vec<u8>,
    last_n: usize,
) -> Result<DryRunReport, DryRunFailure> {
    if last_n == 0 || last_n > MAX_DRY_RUN_ENTRIES {
        return Err(DryRunFailure::BadRequest(format!("invalid param: entries must be 1..={MAX_DRY_RUN_ENTRIES}")));
    }
    let _turn = ONE_AT_A_TIME.try_acquire().map_err(|_| DryRunFailure::Busy)?;
    let (_, info) = shared.runtime.load(&bytes).map_err(|e| DryRunFailure::BadRequest(e.rejection()))?;
    let applied = shared.read().applied_index();
    let snapshot =
        read_snapshot(&snapshot_dir).map_err(|e| DryRunFailure::Failed(format!("reading the snapshot: {e}")))?;
    let (base_index, base) = snapshot.filter(|(index, _)| *index <= applied).unwrap_or((0, Machine::default()));
    let entries = log
        .try_get_log_entries(base_index + 1..=applied)
        .await
        .map_err(|e| DryRunFailure::Failed(format!("reading the log: {e}")))?;
    if entries.first().is_some_and(|e| e.log_id.index != base_index + 1) || entries.len() as u64 != applied - base_index
    {
        return Err(DryRunFailure::Failed(format!(
            "the log after the snapshot at {base_index} is not complete up to {applied}; retry after the next snapshot"
        )));
    }
    tokio::task::spawn_blocking(move || {
        let refs: Vec<EntryRef<'_>> = entries
            .iter()
            .map(|entry| EntryRef {
                index: entry.log_id.index,
                term: entry.log_id.leader_id.term,
                proposal: match &entry.payload {
                    EntryPayload::Normal(proposal) => Some(proposal),
                    _ => None,
                },
            })
            .collect();
        dry_run(&shared.runtime, base, &refs, Scope::new(&namespace, info.kind), &bytes, last_n)
            .map_err(|e| DryRunFailure::Failed(e.to_string()))
    })
    .await
    .map_err(|e| DryRunFailure::Failed(format!("dry run panicked: {e}")))?
}
