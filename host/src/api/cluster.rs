//! Cluster membership for operators (`nacre cluster ...`): the members as the log says, and
//! changes made through the log by the leader (`raft::reconfigure`), each judged by the
//! majority guards of `raft::membership`. Administrators only.

use serde_json::json;

use super::Context;
use super::params::Params;
use crate::config;
use crate::members::node_id_of;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::raft::membership::Change;
use crate::raft::reconfigure::MembershipError;

/// What a change asks of the membership, from the request's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Promote,
    Remove,
    TransferLeader,
}

/// `GET /nacre/v1/cluster/members`: every member as the log lists it (voter or learner), with
/// what it reports of itself (`DOWN` when it does not answer), and the leader.
pub async fn members(ctx: &Context) -> HttpResponse {
    let membership = ctx.log.membership();
    let states = super::ops::member_states(ctx).await;
    let replication: std::collections::BTreeMap<u64, u64> = ctx.log.status().replication.into_iter().collect();
    let members: Vec<_> = states
        .iter()
        .map(|(member, state)| {
            let id = member.node_id();
            json!({
                "id": id.to_string(),
                "address": member.api_addr(),
                "raftAddress": member.raft_addr(),
                "voter": membership.voters.contains(&id),
                "state": state.as_ref().map_or("DOWN", |s| s.role.as_str()),
                "term": state.as_ref().map(|s| s.term),
                "appliedIndex": state.as_ref().map(|s| s.applied_index),
                "digest": state.as_ref().map(|s| s.digest.clone()),
                "matchedIndex": replication.get(&id),
            })
        })
        .collect();
    let leader = ctx.log.leader().and_then(|id| ctx.log.member(id)).map(|m| m.api_addr);
    net::json(Status::OK, &json!({ "leader": leader, "term": ctx.log.status().term, "members": members }))
}

/// `GET /nacre/v1/cluster/snapshot`: a backup of the replicated state (`raft::backup`), at a
/// committed index at least as new as the request: the read is confirmed with the leader
/// first (ReadIndex), as a linearizable read is. `nacre serve --restore` makes a new cluster of
/// it. It holds every secret the cluster keeps (password hashes, the token signing key):
/// administrators only, and the command-line client writes it readable by its owner alone.
pub async fn snapshot(ctx: &Context) -> HttpResponse {
    if let Err(e) = ctx.log.linearize().await {
        return net::text(Status::SERVICE_UNAVAILABLE, e.to_string());
    }
    let replica = ctx.replica.clone();
    match crate::blocking::cpu_bound(move || crate::raft::backup::backup_of(&replica.read())) {
        Ok(bytes) => net::response(Status::OK, "application/octet-stream", bytes),
        Err(e) => {
            tracing::error!(error = %e, "a backup could not be encoded");
            net::text(Status::INTERNAL_SERVER_ERROR, "the backup could not be encoded; see the node's log")
        }
    }
}

/// `POST /nacre/v1/cluster/members` (`address`, `raftPort`, `learner`), `POST
/// /nacre/v1/cluster/members/promote`, `DELETE /nacre/v1/cluster/members`, `POST
/// /nacre/v1/cluster/leader` (`address`): one change, made through the leader; the members
/// after it. 409 when a guard refuses it (nothing changed), 503 when it may be retried.
pub async fn change(ctx: &Context, req: &HttpRequest, action: Action) -> HttpResponse {
    let change = match change_of(&Params::from_request(req), action) {
        Ok(change) => change,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    match ctx.log.change_membership(change).await {
        Ok(_) => members(ctx).await,
        Err(e) => {
            let status = match e {
                MembershipError::Refused(_) => Status::CONFLICT,
                _ => Status::SERVICE_UNAVAILABLE,
            };
            net::text(status, e.to_string())
        }
    }
}

/// The change the parameters ask for; a message naming the bad field otherwise.
fn change_of(params: &Params, action: Action) -> Result<Change, String> {
    let address = params.get("address").filter(|a| !a.is_empty()).ok_or("missing address (host:port)")?;
    let raft_port = match params.get("raftPort").filter(|p| !p.is_empty()) {
        None => None,
        Some(port) => Some(port.parse::<u16>().map_err(|_| format!("invalid raftPort: {port:?}"))?),
    };
    let line = match raft_port {
        Some(port) => format!("{address}?raft_port={port}"),
        None => address.to_string(),
    };
    let member = config::parse_member(&line).map_err(|e| format!("invalid address {address:?}: {e}"))?;
    if member.api_addr() != address {
        return Err(format!("invalid address {address:?}: give host:port"));
    }
    let id = node_id_of(address);
    Ok(match action {
        Action::Add => {
            let learner = match params.get("learner").unwrap_or("false") {
                "true" => true,
                "false" => false,
                other => return Err(format!("invalid learner: {other:?} (true or false)")),
            };
            Change::Add { id, member: member.member(), learner }
        }
        Action::Promote => Change::Promote(id),
        Action::Remove => Change::Remove(id),
        Action::TransferLeader => Change::TransferLeader(id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(pairs);
        Params::from_query(&query.finish())
    }

    #[test]
    fn a_change_names_the_member_by_its_client_address() {
        let add = change_of(&params(&[("address", "10.0.0.4:8848"), ("learner", "true")]), Action::Add).unwrap();
        let Change::Add { id, member, learner } = add else { panic!("an add") };
        assert_eq!((id, learner), (node_id_of("10.0.0.4:8848"), true));
        assert_eq!(member.raft_addr, "10.0.0.4:7848", "the raft port defaults to the client port - 1000");
        let with_port = change_of(&params(&[("address", "n4:9000"), ("raftPort", "9100")]), Action::Add).unwrap();
        assert!(matches!(with_port, Change::Add { member, learner: false, .. } if member.raft_addr == "n4:9100"));
        let remove = change_of(&params(&[("address", "10.0.0.4:8848")]), Action::Remove).unwrap();
        assert_eq!(remove, Change::Remove(node_id_of("10.0.0.4:8848")));
    }

    #[test]
    fn bad_fields_are_named() {
        let err = |pairs: &[(&str, &str)]| change_of(&params(pairs), Action::Add).unwrap_err();
        assert!(err(&[]).contains("address"));
        assert!(err(&[("address", "10.0.0.4:x")]).contains("address"));
        assert!(err(&[("address", "10.0.0.4")]).contains("host:port"));
        assert!(err(&[("address", "10.0.0.4:8848"), ("raftPort", "70000")]).contains("raftPort"));
        assert!(err(&[("address", "10.0.0.4:8848"), ("learner", "yes")]).contains("learner"));
    }
}
