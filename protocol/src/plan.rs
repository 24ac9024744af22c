//! The plan of a write: the typed form of the [`directive`]s that say how the host carries a
//! request out.
//!
//! Before committing a write, the host runs the same request as a query; the reply's plan says
//! whether to commit it (through the log, on the AP path at a partition, or not at all: the
//! reply is then the answer) and whether a lease was renewed. The guest writes its plan with
//! [`Plan::onto`]; the host (and the SDK's test harness) reads it with [`Plan::from_reply`].
//! This is the only code that reads or writes [`directive::COMMIT`], [`directive::PARTITION`]
//! and [`directive::LEASE_RENEW`]; those headers stay the wire form, so modules built before
//! the type still plan the same way.

use crate::GuestReply;
use crate::directive;

/// What the host does with a request after running it as a query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The path of the request's command, if it is committed.
    pub commit: Commit,
    /// The lease the request renewed, if any.
    pub renew: Option<LeaseRenewal>,
}

/// Whether and where the host commits a planned request as a command (same op, same
/// parameters), whose result then is the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Commit {
    /// No command: the plan's reply is the answer.
    #[default]
    None,
    /// Through the Raft log (CP): committed by a majority, applied by every replica in log
    /// order. Fails when no majority is reachable. Wire form: [`directive::COMMIT_LOG`].
    Log,
    /// On the AP path: applied to the AP keyspace ([`crate::keyspace::AP_PREFIX`]) by the node
    /// responsible for `partition` (by a stable hash over the live members) and replicated to
    /// the other nodes asynchronously. Works on any side of a network partition. Wire form:
    /// [`directive::COMMIT_AP`] and the partition in [`directive::PARTITION`].
    Ap {
        /// The AP partition (guest-chosen, e.g. a service name) the request concerns.
        partition: String,
    },
}

/// A lease the planned request renewed now. The node that holds the lease keeps its renewal
/// time in memory and hands it to the guest's `<kind>.sweep` query ([`crate::sweep`]), which
/// answers with the commands to run for the leases that lapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRenewal {
    /// The lease's key (guest-chosen, scoped to the namespace and kind).
    pub key: String,
    /// The AP partition whose responsible node holds the lease; `None`: the leader holds it.
    /// On the wire this is the one [`directive::PARTITION`] header, so with a
    /// [`Commit::Ap`] commit it must be that commit's partition.
    pub partition: Option<String>,
}

/// A plan that cannot be read from a reply, or written onto one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// [`directive::COMMIT_AP`] without a [`directive::PARTITION`] to say where.
    ApWithoutPartition,
    /// A [`directive::COMMIT`] value that is neither [`directive::COMMIT_LOG`] nor
    /// [`directive::COMMIT_AP`].
    UnknownCommit(String),
    /// An AP commit with a lease renewal held elsewhere: the wire form has one partition for
    /// both. Only a plan built in code can be so ([`Plan::check`]); a read one never is.
    PartitionConflict {
        /// The partition of the AP commit.
        commit: String,
        /// Where the renewed lease is held (`None`: the leader).
        lease: Option<String>,
    },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApWithoutPartition => write!(f, "module asked for an AP commit without naming its partition"),
            Self::UnknownCommit(value) => write!(f, "module asked for an unknown commit path {value:?}"),
            Self::PartitionConflict { commit, lease: Some(lease) } => {
                write!(f, "plan commits at partition {commit:?} but renews a lease at partition {lease:?}")
            }
            Self::PartitionConflict { commit, lease: None } => {
                write!(f, "plan commits at partition {commit:?} but renews a lease held by the leader")
            }
        }
    }
}

impl std::error::Error for PlanError {}

impl Plan {
    /// Reads the plan from a reply's directives, by their exact header names (as the host has
    /// always read them: a header that differs only in case is still a directive, stripped
    /// before the client sees it, but not part of the plan).
    ///
    /// - [`directive::COMMIT`] absent: [`Commit::None`]; [`directive::COMMIT_LOG`]:
    ///   [`Commit::Log`]; [`directive::COMMIT_AP`]: [`Commit::Ap`] at the
    ///   [`directive::PARTITION`], or [`PlanError::ApWithoutPartition`] without one; any other
    ///   value: [`PlanError::UnknownCommit`].
    /// - [`directive::LEASE_RENEW`]: a renewal of that key, held at the [`directive::PARTITION`]
    ///   if there is one, else by the leader.
    ///
    /// A partition that neither an AP commit nor a renewal uses is ignored.
    pub fn from_reply(reply: &GuestReply) -> Result<Plan, PlanError> {
        let partition = reply.headers.get(directive::PARTITION);
        let commit = match reply.headers.get(directive::COMMIT).map(String::as_str) {
            None => Commit::None,
            Some(directive::COMMIT_LOG) => Commit::Log,
            Some(directive::COMMIT_AP) => {
                Commit::Ap { partition: partition.cloned().ok_or(PlanError::ApWithoutPartition)? }
            }
            Some(other) => return Err(PlanError::UnknownCommit(other.to_owned())),
        };
        let renew = reply
            .headers
            .get(directive::LEASE_RENEW)
            .map(|key| LeaseRenewal { key: key.clone(), partition: partition.cloned() });
        Ok(Plan { commit, renew })
    }

    /// Whether this plan has a wire form: an AP commit and a renewal name the same partition
    /// (the one [`directive::PARTITION`] header).
    pub fn check(&self) -> Result<(), PlanError> {
        match (&self.commit, &self.renew) {
            (Commit::Ap { partition }, Some(renewal)) if renewal.partition.as_ref() != Some(partition) => {
                Err(PlanError::PartitionConflict { commit: partition.clone(), lease: renewal.partition.clone() })
            }
            _ => Ok(()),
        }
    }

    /// Writes this plan's directives onto `reply`, replacing any plan directives it carried;
    /// its body and other headers stay. [`Plan::from_reply`] reads this plan back.
    ///
    /// # Panics
    ///
    /// When the plan has no wire form ([`Plan::check`]): an AP commit that renews a lease held
    /// anywhere but at the commit's partition. That is a bug in the guest, and a trap fails
    /// the request.
    pub fn onto(self, mut reply: GuestReply) -> GuestReply {
        if let Err(error) = self.check() {
            panic!("{error}");
        }
        for name in [directive::COMMIT, directive::PARTITION, directive::LEASE_RENEW] {
            reply.headers.remove(name);
        }
        let Plan { commit, renew } = self;
        let mut partition = None;
        match commit {
            Commit::None => {}
            Commit::Log => {
                reply.headers.insert(directive::COMMIT.to_owned(), directive::COMMIT_LOG.to_owned());
            }
            Commit::Ap { partition: ap } => {
                reply.headers.insert(directive::COMMIT.to_owned(), directive::COMMIT_AP.to_owned());
                partition = Some(ap);
            }
        }
        if let Some(LeaseRenewal { key, partition: held_at }) = renew {
            reply.headers.insert(directive::LEASE_RENEW.to_owned(), key);
            // Checked above: with an AP commit, the same partition.
            partition = partition.or(held_at);
        }
        if let Some(partition) = partition {
            reply.headers.insert(directive::PARTITION.to_owned(), partition);
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(headers: &[(&str, &str)]) -> GuestReply {
        headers.iter().fold(GuestReply::text("body"), |reply, (name, value)| reply.header(*name, *value))
    }

    fn ap(partition: &str) -> Commit {
        Commit::Ap { partition: partition.to_owned() }
    }

    fn renewal(key: &str, partition: Option<&str>) -> Option<LeaseRenewal> {
        Some(LeaseRenewal { key: key.to_owned(), partition: partition.map(str::to_owned) })
    }

    #[test]
    fn a_reply_without_directives_plans_nothing() {
        assert_eq!(Plan::from_reply(&reply(&[])), Ok(Plan::default()));
        assert_eq!(Plan::default(), Plan { commit: Commit::None, renew: None });
        let other = reply(&[("Content-Type", "application/json"), (directive::WATCH, "[]")]);
        assert_eq!(Plan::from_reply(&other), Ok(Plan::default()), "a watch is not part of the plan");
    }

    #[test]
    fn commit_values_are_read() {
        let read = |headers: &[(&str, &str)]| Plan::from_reply(&reply(headers)).map(|plan| plan.commit);
        assert_eq!(read(&[(directive::COMMIT, directive::COMMIT_LOG)]), Ok(Commit::Log));
        assert_eq!(read(&[(directive::COMMIT, "true")]), Ok(Commit::Log), "the wire value");
        assert_eq!(
            read(&[(directive::COMMIT, directive::COMMIT_AP), (directive::PARTITION, "G@@svc")]),
            Ok(ap("G@@svc"))
        );
        assert_eq!(read(&[(directive::COMMIT, "ap"), (directive::PARTITION, "")]), Ok(ap("")), "named, if empty");
        assert_eq!(
            read(&[(directive::COMMIT, directive::COMMIT_LOG), (directive::PARTITION, "G@@svc")]),
            Ok(Commit::Log),
            "a partition nothing uses is ignored"
        );
    }

    #[test]
    fn malformed_commits_are_refused() {
        let read = |headers: &[(&str, &str)]| Plan::from_reply(&reply(headers));
        assert_eq!(read(&[(directive::COMMIT, directive::COMMIT_AP)]), Err(PlanError::ApWithoutPartition));
        let lease_only = [(directive::COMMIT, directive::COMMIT_AP), (directive::LEASE_RENEW, "k")];
        assert_eq!(read(&lease_only), Err(PlanError::ApWithoutPartition));
        for value in ["", "false", "True", "AP", "log", " true"] {
            assert_eq!(read(&[(directive::COMMIT, value)]), Err(PlanError::UnknownCommit(value.to_owned())));
        }
        assert_eq!(
            PlanError::ApWithoutPartition.to_string(),
            "module asked for an AP commit without naming its partition"
        );
        assert_eq!(
            PlanError::UnknownCommit("AP".into()).to_string(),
            r#"module asked for an unknown commit path "AP""#
        );
    }

    #[test]
    fn a_renewal_is_held_at_the_partition_else_by_the_leader() {
        let read = |headers: &[(&str, &str)]| Plan::from_reply(&reply(headers)).unwrap();
        let at_leader = read(&[(directive::LEASE_RENEW, "k")]);
        assert_eq!(at_leader, Plan { commit: Commit::None, renew: renewal("k", None) });
        let at_partition = read(&[(directive::LEASE_RENEW, "k"), (directive::PARTITION, "p")]);
        assert_eq!(at_partition, Plan { commit: Commit::None, renew: renewal("k", Some("p")) });
        let with_ap = read(&[
            (directive::LEASE_RENEW, "k"),
            (directive::PARTITION, "p"),
            (directive::COMMIT, directive::COMMIT_AP),
        ]);
        assert_eq!(with_ap, Plan { commit: ap("p"), renew: renewal("k", Some("p")) });
        let with_log = read(&[(directive::LEASE_RENEW, "k"), (directive::COMMIT, directive::COMMIT_LOG)]);
        assert_eq!(with_log, Plan { commit: Commit::Log, renew: renewal("k", None) });
        let with_log_at = read(&[
            (directive::LEASE_RENEW, "k"),
            (directive::PARTITION, "p"),
            (directive::COMMIT, directive::COMMIT_LOG),
        ]);
        assert_eq!(with_log_at, Plan { commit: Commit::Log, renew: renewal("k", Some("p")) });
    }

    #[test]
    fn plans_round_trip_through_a_reply() {
        let commits = [Commit::None, Commit::Log, ap("p")];
        let renewals = [None, renewal("k", None), renewal("k", Some("p")), renewal("k", Some("q"))];
        let mut written = 0;
        for commit in &commits {
            for renew in &renewals {
                let plan = Plan { commit: commit.clone(), renew: renew.clone() };
                if plan.check().is_err() {
                    continue;
                }
                let reply = plan.clone().onto(GuestReply::text("answer").header("Content-Type", "x"));
                assert_eq!(Plan::from_reply(&reply), Ok(plan.clone()), "{reply:?}");
                assert_eq!((reply.body.as_str(), reply.headers["Content-Type"].as_str()), ("answer", "x"));
                // What the host strips before the client sees the answer: every plan header.
                let kept: Vec<&String> = reply.headers.keys().filter(|h| !directive::is_directive(h)).collect();
                assert_eq!(kept, ["Content-Type"], "{plan:?}");
                written += 1;
            }
        }
        assert_eq!(written, 10, "every plan but an AP commit renewing a lease elsewhere");
    }

    #[test]
    fn the_wire_form_is_the_directive_headers() {
        let log = Plan { commit: Commit::Log, renew: None }.onto(GuestReply::text(""));
        assert_eq!(log, GuestReply::text("").header("Nacre-Commit", "true"));
        let beat =
            Plan { commit: ap("G@@svc"), renew: renewal("1.1.1.1#80", Some("G@@svc")) }.onto(GuestReply::text(""));
        let expected = GuestReply::text("")
            .header("Nacre-Commit", "ap")
            .header("Nacre-Partition", "G@@svc")
            .header("Nacre-Lease-Renew", "1.1.1.1#80");
        assert_eq!(beat, expected);
        assert_eq!(Plan::default().onto(GuestReply::text("a")), GuestReply::text("a"));
    }

    #[test]
    fn writing_a_plan_replaces_the_plan_a_reply_carried_and_keeps_the_rest() {
        let carried = reply(&[
            (directive::COMMIT, directive::COMMIT_AP),
            (directive::PARTITION, "old"),
            (directive::LEASE_RENEW, "old"),
            (directive::WATCH, "[]"),
            ("Content-MD5", "m"),
        ]);
        let replaced = Plan::default().onto(carried.clone());
        assert_eq!(replaced, reply(&[(directive::WATCH, "[]"), ("Content-MD5", "m")]));
        let log = Plan { commit: Commit::Log, renew: None }.onto(carried);
        assert_eq!(log, reply(&[(directive::COMMIT, "true"), (directive::WATCH, "[]"), ("Content-MD5", "m")]));
    }

    #[test]
    fn plan_headers_are_read_by_their_exact_names() {
        // Differently cased plan headers are directives (the host strips them) but not the plan,
        // as the host has always read them.
        let cased = reply(&[("nacre-commit", "ap"), ("NACRE-PARTITION", "p"), ("Nacre-lease-renew", "k")]);
        assert!(cased.headers.keys().all(|h| directive::is_directive(h)));
        assert_eq!(Plan::from_reply(&cased), Ok(Plan::default()));
        let mixed = reply(&[(directive::COMMIT, "ap"), ("nacre-partition", "p")]);
        assert_eq!(Plan::from_reply(&mixed), Err(PlanError::ApWithoutPartition));
        // Writing a plan replaces the exact names only.
        let written = Plan { commit: Commit::Log, renew: None }.onto(cased.clone());
        assert_eq!(written.headers.len(), 4);
        assert_eq!(written.headers[directive::COMMIT], "true");
        assert_eq!(written.headers["nacre-commit"], "ap");
    }

    #[test]
    fn an_ap_commit_renewing_a_lease_elsewhere_has_no_wire_form() {
        let elsewhere = Plan { commit: ap("p"), renew: renewal("k", Some("q")) };
        let conflict = PlanError::PartitionConflict { commit: "p".into(), lease: Some("q".into()) };
        assert_eq!(elsewhere.check(), Err(conflict));
        let at_leader = Plan { commit: ap("p"), renew: renewal("k", None) };
        assert_eq!(at_leader.check(), Err(PlanError::PartitionConflict { commit: "p".into(), lease: None }));
        assert!(std::panic::catch_unwind(|| elsewhere.onto(GuestReply::text(""))).is_err());
        assert_eq!(Plan { commit: ap("p"), renew: renewal("k", Some("p")) }.check(), Ok(()));
    }
}
