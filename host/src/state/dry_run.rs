//! Dry run: replay a namespace's recent committed commands through a candidate module in a
//! sandbox, next to the module in force, and report where their results differ.
//!
//! Both sides start from the same state: the entries before the first replayed command are
//! applied as they were. The candidate is then bound to the namespace in the sandbox copy as
//! an `Activate` entry would bind it (its `migrate` runs), and every later entry is applied to
//! both copies, one at a time. Binding changes of the same namespace and kind inside the
//! window are skipped in the sandbox, so the candidate stays in force there. Nothing touches
//! the replica: the copies are dropped afterwards.

use nacre_protocol::GuestReply;
use nacre_protocol::GuestRequest;
use serde::Serialize;

use super::EntryRef;
use super::Machine;
use super::command::Operation;
use super::machine::HostFailure;
use crate::runtime::GuestError;
use crate::runtime::ModuleKind;
use crate::runtime::Runtime;
use crate::scope::Scope;

/// Longest body shown per result in a report; the rest is cut (the comparison uses all of it).
pub const MAX_REPORTED_BODY_CHARS: usize = 512;

/// One replayed command and what each module answered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayedEntry {
    pub index: u64,
    pub op: String,
    pub in_force: ReplayResult,
    pub candidate: ReplayResult,
    pub differs: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayResult {
    pub module_id: Option<String>,
    /// HTTP-like status: 200 for a reply, the error's code otherwise.
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DryRunReport {
    pub namespace: String,
    pub kind: ModuleKind,
    pub replayed: usize,
    pub differing: usize,
    /// Entries from the first replayed command to the last, all namespaces.
    pub window: Option<(u64, u64)>,
    pub entries: Vec<ReplayedEntry>,
    /// `replayed N entries of NS: D differ, S same`.
    pub summary: String,
}

/// Why a dry run could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("the candidate module was refused when bound in the sandbox: {0}")]
    CandidateRefused(String),
    #[error("the state could not be rebuilt: {0}")]
    Host(String),
}

impl From<HostFailure> for DryRunError {
    fn from(failure: HostFailure) -> Self {
        DryRunError::Host(failure.0)
    }
}

/// Replay the last `last_n` commands for `(namespace, kind)` in `entries` (which follow `base`
/// in the log) through the candidate module `bytes`.
pub fn dry_run(
    runtime: &Runtime,
    mut base: Machine,
    entries: &[EntryRef<'_>],
    scope: Scope<'_>,
    bytes: &[u8],
    last_n: usize,
) -> Result<DryRunReport, DryRunError> {
    let Scope { namespace, kind } = scope;
    let is_target = |entry: &EntryRef<'_>| {
        matches!(entry.proposal.map(|p| &p.op),
            Some(Operation::Guest { namespace: ns, kind: k, .. }) if ns == namespace && *k == kind)
    };
    let targets: Vec<usize> = (0..entries.len()).filter(|i| is_target(&entries[*i])).collect();
    let targets = &targets[targets.len().saturating_sub(last_n)..];
    let (Some(&first), Some(&last)) = (targets.first(), targets.last()) else {
        return Ok(report(scope, None, Vec::new()));
    };
    for entry in &entries[..first] {
        base.apply(runtime, std::slice::from_ref(entry))?;
    }
    let mut sandbox = base.clone();
    let first_index = entries[first].index;
    sandbox
        .bind_in_sandbox(runtime, scope, bytes, first_index)?
        .map_err(|e| DryRunError::CandidateRefused(e.message))?;

    let mut replayed = Vec::with_capacity(targets.len());
    for entry in &entries[first..=last] {
        let (in_force, _) = base.apply(runtime, std::slice::from_ref(entry))?;
        let rebinds_target = matches!(entry.proposal.map(|p| &p.op),
            Some(Operation::Activate { namespace: ns, kind: k, .. }) if ns == namespace && *k == kind);
        let sandboxed = if rebinds_target { EntryRef { proposal: None, ..*entry } } else { *entry };
        let (candidate, _) = sandbox.apply(runtime, std::slice::from_ref(&sandboxed))?;
        if is_target(entry) {
            let (in_force, candidate) = (result_of(&in_force[0]), result_of(&candidate[0]));
            let differs = (in_force.status, &in_force.body) != (candidate.status, &candidate.body);
            let (in_force, candidate) = (shortened(in_force), shortened(candidate));
            replayed.push(ReplayedEntry { index: entry.index, op: op_name(entry), in_force, candidate, differs });
        }
    }
    Ok(report(scope, Some((first_index, entries[last].index)), replayed))
}

fn report(scope: Scope<'_>, window: Option<(u64, u64)>, entries: Vec<ReplayedEntry>) -> DryRunReport {
    let Scope { namespace, kind } = scope;
    let differing = entries.iter().filter(|e| e.differs).count();
    let summary = format!(
        "replayed {} entries of {namespace}: {differing} differ, {} same",
        entries.len(),
        entries.len() - differing
    );
    DryRunReport {
        namespace: namespace.to_string(),
        kind,
        replayed: entries.len(),
        differing,
        window,
        entries,
        summary,
    }
}

fn op_name(entry: &EntryRef<'_>) -> String {
    match entry.proposal.map(|p| &p.op) {
        Some(Operation::Guest { payload, .. }) => GuestRequest::decode(payload).map_or_else(|_| "?".into(), |r| r.op),
        _ => String::new(),
    }
}

fn result_of(response: &super::command::ApplyResponse) -> ReplayResult {
    let (status, body) = match &response.result {
        Ok(bytes) => {
            (200, GuestReply::decode(bytes).map_or_else(|_| String::from_utf8_lossy(bytes).into_owned(), |r| r.body))
        }
        Err(GuestError { code, message }) => (*code, message.clone()),
    };
    ReplayResult { module_id: response.module_id.clone(), status, body }
}

fn shortened(mut result: ReplayResult) -> ReplayResult {
    if result.body.chars().count() > MAX_REPORTED_BODY_CHARS {
        result.body = result.body.chars().take(MAX_REPORTED_BODY_CHARS).chain("…".chars()).collect();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;
    use crate::state::Proposal;

    /// Bootstrap, then publishes alternating between `dev` and `public`.
    fn log(publishes: u64) -> Vec<(u64, Proposal)> {
        let bootstrap = Operation::Bootstrap { naming: builtin::NAMING.to_vec(), config: builtin::CONFIG.to_vec() };
        let mut log = vec![(1, Proposal { timestamp_ms: 1_000, op: bootstrap })];
        for i in 0..publishes {
            let namespace = if i % 2 == 0 { "dev" } else { "public" };
            let request = GuestRequest::new("config.publish")
                .param("dataId", format!("d{}", i % 3))
                .param("group", "G")
                .param("content", format!("v{i}"));
            let op =
                Operation::Guest { namespace: namespace.into(), kind: ModuleKind::Config, payload: request.encode() };
            log.push((i + 2, Proposal { timestamp_ms: 2_000 + i, op }));
        }
        log
    }

    fn refs(log: &[(u64, Proposal)]) -> Vec<EntryRef<'_>> {
        log.iter().map(|(index, p)| EntryRef { index: *index, term: 1, proposal: Some(p) }).collect()
    }

    #[test]
    fn the_module_in_force_as_candidate_differs_nowhere() {
        let runtime = Runtime::new(None).unwrap();
        let log = log(12);
        let report = dry_run(
            &runtime,
            Machine::default(),
            &refs(&log),
            Scope::new("dev", ModuleKind::Config),
            builtin::CONFIG,
            4,
        )
        .unwrap();
        assert_eq!((report.replayed, report.differing), (4, 0), "{report:#?}");
        assert_eq!(report.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [6, 8, 10, 12]);
        assert_eq!(report.summary, "replayed 4 entries of dev: 0 differ, 4 same");
        assert!(report.entries.iter().all(|e| e.op == "config.publish" && e.in_force.status == 200));
    }

    #[test]
    fn a_different_module_differs_on_every_replayed_command_and_the_replica_is_untouched() {
        let runtime = Runtime::new(None).unwrap();
        let log = log(6);
        let base = Machine::default();
        let digest = base.digest_hex();
        let report = dry_run(
            &runtime,
            base.clone(),
            &refs(&log),
            Scope::new("dev", ModuleKind::Config),
            builtin::fixtures::HOSTILE,
            10,
        )
        .unwrap();
        assert_eq!((report.replayed, report.differing), (3, 3), "{report:#?}");
        let candidate_id = crate::runtime::module_id(builtin::fixtures::HOSTILE);
        assert!(report.entries.iter().all(|e| e.candidate.module_id.as_deref() == Some(candidate_id.as_str())));
        assert_eq!(base.digest_hex(), digest, "the caller's state is not changed");
    }

    #[test]
    fn a_namespace_without_commands_replays_nothing() {
        let runtime = Runtime::new(None).unwrap();
        let log = log(4);
        let report = dry_run(
            &runtime,
            Machine::default(),
            &refs(&log),
            Scope::new("other", ModuleKind::Config),
            builtin::CONFIG,
            5,
        )
        .unwrap();
        assert_eq!((report.replayed, report.window), (0, None));
    }
}
