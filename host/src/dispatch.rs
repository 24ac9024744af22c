//! The one interpreter of a guest's plan. Before a write is committed, the guest answers the
//! same request as a query; its [`Plan`] says what follows: renew a lease, commit the request
//! as a command through the log or on the AP path, or nothing (the query's reply is the
//! answer). A duty's commands (the sweep's) are routed by the same rule. The outcome is typed;
//! turning it into HTTP is the API's business.

use std::sync::Arc;

use nacre_protocol::Commit;
use nacre_protocol::GuestReply;
use nacre_protocol::GuestRequest;
use nacre_protocol::Plan;
use nacre_protocol::sweep::SweepCommand;
use tokio::task::JoinSet;

use crate::ap::Ap;
use crate::ap::store::Origin;
use crate::guests::Guests;
use crate::guests::decode_reply;
use crate::leases::LeaseHolder;
use crate::leases::LeaseKey;
use crate::leases::Leases;
use crate::members::Members;
use crate::partition::PartitionId;
use crate::raft::log::Log;
use crate::raft::log::WriteError;
use crate::runtime::GuestError;
use crate::runtime::ModuleId;
use crate::runtime::ModuleKind;
use crate::scope::Scope;
use crate::state::Operation;

/// What a client's request came to.
#[derive(Debug)]
pub enum Outcome {
    /// No commit: the plan's own reply, or the guest's refusal.
    Answered(Result<GuestReply, GuestError>),
    /// Committed through the log at `index`, and what the command answered.
    Logged { reply: Result<GuestReply, GuestError>, index: u64, module_id: Option<ModuleId> },
    /// Applied on the AP path by the node responsible for its partition.
    Applied { reply: Result<GuestReply, GuestError>, module_id: ModuleId },
    /// Not committed: no majority, no leader, not confirmed in time (503) or malformed (400).
    Unavailable(WriteError),
}

/// Where a command goes, decided from a plan's commit or a duty command's partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Log,
    Ap(PartitionId),
}

impl Route {
    /// A duty command's route: AP at its partition when it names one, else the log.
    pub fn of_duty(scope: Scope<'_>, command: &SweepCommand) -> Route {
        match &command.partition {
            Some(partition) => Route::Ap(scope.partition(partition)),
            None => Route::Log,
        }
    }
}

pub struct Dispatch {
    guests: Arc<Guests>,
    log: Arc<Log>,
    ap: Arc<Ap>,
    leases: Arc<Leases>,
    members: Arc<Members>,
}

impl Dispatch {
    pub fn new(guests: Arc<Guests>, log: Arc<Log>, ap: Arc<Ap>, leases: Arc<Leases>, members: Arc<Members>) -> Self {
        Dispatch { guests, log, ap, leases, members }
    }

    /// Ask the guest first (a query with the request's own op: the plan), then do what its
    /// plan says. The guest validates in the plan, so bad input is refused here before
    /// anything is forwarded.
    pub async fn act(&self, scope: Scope<'_>, request: GuestRequest) -> Outcome {
        let Scope { namespace, kind } = scope;
        let reply = match self.guests.query(scope, &request) {
            Ok(reply) => reply,
            Err(error) => return Outcome::Answered(Err(error)),
        };
        let plan = match Plan::from_reply(&reply) {
            Ok(plan) => plan,
            Err(e) => {
                let message = format!("module answered with a malformed plan: {e}");
                return Outcome::Answered(Err(GuestError { code: 500, message }));
            }
        };
        if let Some(renewal) = plan.renew {
            let key =
                LeaseKey { namespace: namespace.to_string(), kind, partition: renewal.partition, key: renewal.key };
            let held_here = self.holds(&key.holder());
            self.leases.renew(key, held_here);
        }
        match plan.commit {
            Commit::None => Outcome::Answered(Ok(reply)),
            Commit::Log => self.commit_log(scope, &request).await,
            Commit::Ap { partition } => self.commit_ap(&scope.partition(&partition), &request).await,
        }
    }

    /// Whether this node keeps the renewals of leases held by `holder`.
    pub fn holds(&self, holder: &LeaseHolder) -> bool {
        match holder {
            LeaseHolder::Partition(id) => self.members.is_responsible(id),
            LeaseHolder::Leader => self.log.leading_term().is_some(),
        }
    }

    /// Commit `request` as a command through the log.
    pub async fn commit_log(&self, scope: Scope<'_>, request: &GuestRequest) -> Outcome {
        let Scope { namespace, kind } = scope;
        let op = Operation::Guest { namespace: namespace.to_string(), kind, payload: request.encode() };
        match self.log.write(op).await {
            Ok(outcome) => Outcome::Logged {
                reply: decode_reply(outcome.response.result),
                index: outcome.index,
                module_id: outcome.response.module_id,
            },
            Err(e) => Outcome::Unavailable(e),
        }
    }

    /// Apply `request` on the AP path, at the node responsible for `id`.
    pub async fn commit_ap(&self, id: &PartitionId, request: &GuestRequest) -> Outcome {
        match self.ap.apply(id, request).await {
            Ok(applied) => Outcome::Applied { reply: decode_reply(applied.result), module_id: applied.module_id },
            Err(error) => Outcome::Answered(Err(error)),
        }
    }

    /// Run the commands a duty decided (a sweep, a probe): AP ones here while this node is
    /// still responsible for their partition (a moved one is its new holder's to sweep), log
    /// ones only while this node leads `term` (a deposed leader's decisions, made on timers
    /// it no longer owns, are dropped rather than forwarded). Log commands are committed
    /// concurrently, so one batch reaches the log together, and all are waited for, so the
    /// next sweep sees their effect.
    pub async fn run_duty(&self, scope: Scope<'_>, term: Option<u64>, commands: &[SweepCommand]) {
        let Scope { namespace, kind } = scope;
        let mut logged = JoinSet::new();
        for command in commands {
            let request =
                GuestRequest { op: command.op.clone(), params: command.params.clone(), client_ip: String::new() };
            match Route::of_duty(scope, command) {
                Route::Ap(id) if self.members.is_responsible(&id) => {
                    let failure = match self.ap.apply_here(&id, &request, Origin::Duty).await {
                        Ok(applied) => applied.result.err(),
                        Err(error) => Some(error),
                    };
                    if let Some(e) = failure {
                        tracing::warn!(namespace, op = command.op, code = e.code, message = %e.message, "duty command failed");
                    }
                }
                Route::Ap(_) => {}
                Route::Log => {
                    let Some(term) = term else { continue };
                    let (log, namespace) = (self.log.clone(), namespace.to_string());
                    logged.spawn(async move { commit_as_leader(&log, term, namespace, kind, request).await });
                }
            }
        }
        while logged.join_next().await.is_some() {}
    }
}

/// Commit a duty's command only while this node leads `term`.
async fn commit_as_leader(log: &Log, term: u64, namespace: String, kind: ModuleKind, request: GuestRequest) {
    if log.leading_term() != Some(term) {
        return tracing::debug!(term, op = request.op, "no longer the leader of the term a duty decided in");
    }
    let op = Operation::Guest { namespace: namespace.clone(), kind, payload: request.encode() };
    let failure = match log.write_as_leader(op).await {
        Ok(outcome) => decode_reply(outcome.response.result).err(),
        Err(e) => Some(GuestError { code: e.status(), message: e.to_string() }),
    };
    if let Some(e) = failure {
        tracing::warn!(namespace, op = request.op, code = e.code, message = %e.message, "duty command failed");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn command(partition: Option<&str>) -> SweepCommand {
        SweepCommand { op: "naming.expire".into(), params: BTreeMap::new(), partition: partition.map(str::to_string) }
    }

    #[test]
    fn a_duty_command_naming_a_partition_takes_the_ap_path_else_the_log() {
        let ap = Route::of_duty(Scope::new("public", ModuleKind::Naming), &command(Some("G@@s")));
        assert_eq!(ap, Route::Ap(Scope::new("public", ModuleKind::Naming).partition("G@@s")));
        assert_eq!(Route::of_duty(Scope::new("public", ModuleKind::Naming), &command(None)), Route::Log);
    }
}
