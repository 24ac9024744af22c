//! Health probes for persistent instances: the leader asks each namespace's guest which
//! targets to check (`<kind>.health.targets`), probes them over TCP (connect) or HTTP (GET,
//! expected status), and when a target's result has differed from its recorded health for
//! [`RESULTS_TO_FLIP`] probes in a row, commits the guest's own command for it with
//! `healthy` set. Probes run on their own tasks with timeouts: a slow target never holds up
//! the apply path or another probe.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use nacre_protocol::GuestRequest;
use nacre_protocol::sweep::SweepCommand;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::Services;
use crate::runtime::ModuleKind;
use crate::scope::Scope;

/// How often the leader probes every target.
pub const PROBE_INTERVAL_MS: u64 = 2_000;
/// A probe that takes longer counts as a failure.
pub const PROBE_TIMEOUT_MS: u64 = 1_000;
/// Consecutive contrary results before a target's health is changed (Nacos: `checkTimes`).
pub const RESULTS_TO_FLIP: u32 = 2;
/// Probes running at once; the rest wait for a slot.
pub const MAX_PROBES_IN_FLIGHT: usize = 64;

/// Pages of targets one round reads of a namespace; a guest answers at most 4,096 targets a
/// page (the naming guest's `MAX_HEALTH_TARGETS`), so a round probes up to a million.
pub const MAX_TARGET_PAGES_PER_ROUND: usize = 256;

/// The target listing query of each module kind that has health checks.
const TARGET_QUERIES: &[(ModuleKind, &str)] = &[(ModuleKind::Naming, "naming.health.targets")];

/// One thing to probe, as the guest lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Target {
    #[serde(rename = "instanceId")]
    pub id: String,
    pub ip: String,
    pub port: u16,
    pub check: Check,
    /// Its health as recorded in the replicated state.
    pub healthy: bool,
    /// What to commit (with `healthy` added) when the health flips.
    pub command: GuestRequest,
}

/// A guest's answer to a target listing: a page when asked for one (`paged=true`, from
/// `after`), or the bare list of its first targets from a module written before paging.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TargetPage {
    Page {
        targets: Vec<Target>,
        /// Where the next page starts (the `after` of the next request); absent on the last.
        #[serde(default)]
        next: Option<String>,
    },
    Unpaged(Vec<Target>),
}

impl TargetPage {
    /// This page's targets, and where the next page starts, if one follows.
    pub fn split(self) -> (Vec<Target>, Option<String>) {
        match self {
            TargetPage::Page { targets, next } => (targets, next),
            TargetPage::Unpaged(targets) => (targets, None),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default, rename = "expectedResponseCode")]
    pub expected_status: Option<u16>,
}

/// Contrary results in a row, per (namespace, target id).
#[derive(Default)]
pub struct Probes {
    streaks: Mutex<HashMap<(String, String), u32>>,
}

impl Probes {
    /// Count a result; true when the target's health should now flip.
    fn observe(&self, namespace: &str, id: &str, contrary: bool) -> bool {
        let mut streaks = self.streaks.lock().expect("probe streak lock");
        let key = (namespace.to_string(), id.to_string());
        if !contrary {
            streaks.remove(&key);
            return false;
        }
        let streak = streaks.entry(key.clone()).or_default();
        *streak += 1;
        if *streak >= RESULTS_TO_FLIP {
            streaks.remove(&key);
            return true;
        }
        false
    }
}

/// While this node leads, probe every target every [`PROBE_INTERVAL_MS`].
pub async fn probe_when_leader(services: Arc<Services>) {
    let probes = Probes::default();
    loop {
        tokio::time::sleep(Duration::from_millis(PROBE_INTERVAL_MS)).await;
        let Some(term) = services.log.leading_term() else { continue };
        for (kind, op) in TARGET_QUERIES {
            let namespaces = services.guests.replica().read().machine.namespaces_with_data(*kind);
            for namespace in namespaces {
                probe_namespace(&services, &probes, term, Scope::new(&namespace, *kind), op).await;
            }
        }
    }
}

/// Probe every target of one namespace, a page at a time: each page's probes run and their
/// flips are committed before the next page is read, so a round holds one page in memory.
async fn probe_namespace(services: &Services, probes: &Probes, term: u64, scope: Scope<'_>, op: &str) {
    let Scope { namespace, .. } = scope;
    let mut after: Option<String> = None;
    for _ in 0..MAX_TARGET_PAGES_PER_ROUND {
        let mut request = GuestRequest::new(op).param("paged", "true");
        if let Some(cursor) = &after {
            request = request.param("after", cursor);
        }
        let page: TargetPage = match services.guests.duty_query(scope, &request) {
            Ok(reply) => match serde_json::from_str(&reply.body) {
                Ok(page) => page,
                Err(e) => return tracing::warn!(namespace, op, error = %e, "health targets are not a list"),
            },
            Err(e) => {
                return tracing::warn!(namespace, op, code = e.code, message = %e.message, "health targets failed");
            }
        };
        let (targets, next) = page.split();
        let flips = probe_page(services, probes, namespace, targets).await;
        // The guest's own commands for persistent instances: the log, while this node leads `term`.
        services.dispatch.run_duty(scope, Some(term), &flips).await;
        match next {
            // A cursor that does not move would read the same page forever.
            Some(next) if after.as_ref() != Some(&next) => after = Some(next),
            _ => return,
        }
    }
    tracing::warn!(namespace, op, pages = MAX_TARGET_PAGES_PER_ROUND, "health targets beyond one round's pages wait");
}

/// Probe one page of targets, [`MAX_PROBES_IN_FLIGHT`] at a time: the commands of the flips.
async fn probe_page(services: &Services, probes: &Probes, namespace: &str, targets: Vec<Target>) -> Vec<SweepCommand> {
    let mut running = JoinSet::new();
    let mut flips = Vec::new();
    for target in targets {
        if running.len() >= MAX_PROBES_IN_FLIGHT
            && let Some(Ok(done)) = running.join_next().await
        {
            flips.extend(judge(probes, namespace, done));
        }
        let client = services.peers.clone();
        running.spawn(async move {
            let up = probe(&client, &target).await;
            (target, up)
        });
    }
    while let Some(done) = running.join_next().await {
        if let Ok(done) = done {
            flips.extend(judge(probes, namespace, done));
        }
    }
    flips
}

/// The command to commit for a probe result, if the target's health flips.
fn judge(probes: &Probes, namespace: &str, (target, up): (Target, Option<bool>)) -> Option<SweepCommand> {
    let up = up?; // an unknown check type is not a result
    if !probes.observe(namespace, &target.id, up != target.healthy) {
        return None;
    }
    tracing::info!(namespace, target = target.id, healthy = up, "health probe flips a target");
    let command = target.command.param("healthy", up.to_string());
    Some(SweepCommand { op: command.op, params: command.params, partition: None })
}

/// Probe one target: `Some(up)`, or `None` for a check type the host does not run.
async fn probe(client: &crate::net::PeerClient, target: &Target) -> Option<bool> {
    let timeout = Duration::from_millis(PROBE_TIMEOUT_MS);
    let addr = if target.ip.contains(':') {
        format!("[{}]:{}", target.ip, target.port)
    } else {
        format!("{}:{}", target.ip, target.port)
    };
    match target.check.kind.to_ascii_uppercase().as_str() {
        "TCP" => Some(matches!(tokio::time::timeout(timeout, TcpStream::connect(&addr)).await, Ok(Ok(_)))),
        "HTTP" => {
            let path = if target.check.path.starts_with('/') {
                target.check.path.clone()
            } else {
                format!("/{}", target.check.path)
            };
            let expected = target.check.expected_status.unwrap_or(200);
            Some(client.status_of(&format!("http://{addr}{path}"), timeout).await == Some(expected))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_flips_only_after_consecutive_contrary_results() {
        let probes = Probes::default();
        assert!(!probes.observe("ns", "a", true));
        assert!(!probes.observe("ns", "a", false), "an agreeing result resets the streak");
        assert!(!probes.observe("ns", "a", true));
        assert!(probes.observe("ns", "a", true));
        assert!(!probes.observe("ns", "a", true), "the streak starts over after a flip");
        assert!(!probes.observe("other", "a", true), "streaks are per namespace");
    }

    #[tokio::test]
    async fn tcp_and_http_probes_see_real_sockets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                use tokio::io::AsyncReadExt as _;
                use tokio::io::AsyncWriteExt as _;
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let target = |kind: &str, port: u16, expected: Option<u16>| Target {
            id: "x".into(),
            ip: "127.0.0.1".into(),
            port,
            check: Check { kind: kind.into(), path: "health".into(), expected_status: expected },
            healthy: true,
            command: GuestRequest::new("naming.health"),
        };
        let client = crate::net::PeerClient::default();
        let closed_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert_eq!(probe(&client, &target("TCP", port, None)).await, Some(true));
        assert_eq!(probe(&client, &target("tcp", closed_port, None)).await, Some(false));
        assert_eq!(probe(&client, &target("HTTP", port, Some(204))).await, Some(true));
        assert_eq!(probe(&client, &target("HTTP", port, None)).await, Some(false), "expects 200 by default");
        assert_eq!(probe(&client, &target("MYSQL", port, None)).await, None);
    }
}
