//! `POST /nacos/v1/cs/configs/listener`: Nacos's config long-poll, as transport.
//!
//! The host parses the `Listening-Configs` framing (lines of `dataId\x02group\x02md5[\x02tenant]`
//! each ending `\x01`), groups the lines by namespace and asks each namespace's config guest
//! (`config.listen`) which are out of date. If none is and the client allows it, the request
//! is held: the guest's `Nacre-Watch` directive names the events that would make the answer
//! stale, and every replica broadcasts the events of the entries it applies, so a change
//! committed through any node wakes a listener held on this one. Timeout: an empty body.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use nacre_protocol::GuestRequest;
use nacre_protocol::directive;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::TryRecvError;

use super::Context;
use super::access::Caller;
use super::guest;
use super::params;
use super::params::Params;
use crate::auth::permission::Action;
use crate::auth::permission::Resource;
use crate::auth::permission::ResourceType;
use crate::guests::WatchKey;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::runtime::GuestError;
use crate::runtime::ModuleKind;
use crate::scope::Scope;
use crate::state::ChangeEvent;
use crate::watching::ConfigListener;
use crate::watching::MAX_HELD_LISTENERS;

/// Nacos's cap on the keys of one request (`invalid protocol, too much listener`).
pub const MAX_LISTENED_KEYS: usize = 10_000;
/// Nacos answers this long before the client's timeout, so the answer beats the client's
/// own timer (`fixedDelayTime`).
pub const HOLD_MARGIN_MS: u64 = 500;
/// Nacos holds at least this long, whatever timeout the client asks for.
pub const MIN_HOLD_MS: u64 = 10_000;
/// Longest hold, whatever timeout the client asks for (Nacos has no cap; a held request
/// costs a slot, so Nacre has one).
pub const MAX_HOLD_MS: u64 = 120_000;

const FIELD: &str = "Listening-Configs";
const TIMEOUT_HEADER: &str = "Long-Pulling-Timeout";
const NO_HANGUP_HEADER: &str = "Long-Pulling-Timeout-No-Hangup";
/// Field and line separators of the framing (Nacos `Constants.WORD_SEPARATOR`/`LINE_SEPARATOR`).
const WORD_SEPARATOR: char = '\u{2}';
const LINE_SEPARATOR: char = '\u{1}';
/// The config guest's long-poll check and the parameter it reads.
const LISTEN_OP: &str = "config.listen";
const PROBES_PARAM: &str = "probes";

/// One line of the request, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probe {
    data_id: String,
    group: String,
    md5: String,
    /// The 4th field; echoed in the answer when not empty.
    tenant: String,
}

/// What a check found: the positions of stale probes, and the events to wait for.
struct Check {
    changed: Vec<usize>,
    watches: HashSet<(String, String, String)>,
}

/// `POST /nacos/v1/cs/configs/listener`; `caller` must be allowed to read every config it listens to.
pub async fn listen(ctx: &Context, req: HttpRequest, caller: &Caller) -> HttpResponse {
    let params = Params::from_request(&req);
    let probes = match parse(params.get(FIELD).unwrap_or_default()) {
        Ok(probes) => probes,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let readable = |probe: &Probe| {
        let resource = Resource::data(&probe.tenant, &probe.group, ResourceType::Config, &probe.data_id);
        caller.may(&resource, Action::Read)
    };
    if !probes.iter().all(readable) {
        return super::access::NOT_ALLOWED.response(&req.path);
    }
    let by_namespace = match group_by_namespace(&probes) {
        Ok(groups) => groups,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let hold = match hold_for(&req) {
        Ok(hold) => hold,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let client_ip = guest::client_ip(&req);
    // Subscribe before the first check, so a change applied between the check and the
    // registration of the wait below is not missed.
    let mut events = ctx.guests.subscribe();
    let mut check = match check(ctx, &probes, &by_namespace, &client_ip) {
        Ok(check) => check,
        Err(error) => return guest::respond(Err(error)),
    };
    let Some(hold) = hold.filter(|_| check.changed.is_empty()) else {
        return answer(&probes, &check.changed);
    };
    let Some(_held) = ctx.watchers.polls.hold(listeners(&probes, &by_namespace, &client_ip)) else {
        let message = format!("this node holds {MAX_HELD_LISTENERS} long-poll listeners already; retry");
        return net::text(Status::SERVICE_UNAVAILABLE, message);
    };
    // Woken only by a change to a watched key (not by every change applied here).
    let wait = ctx.guests.wait_for(watch_keys(&check));
    let deadline = tokio::time::Instant::now() + hold;
    loop {
        // What changed between the check and the wait's (re)registration is in `events`;
        // from the registration on, the wait is woken. The subscription ends here, so this
        // request is not woken by every other change while it is held.
        let missed = changed_meanwhile(&mut events, &check);
        drop(events);
        if !missed {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return answer(&probes, &[]),
                // The node is stopping: answer now rather than hold its shutdown up.
                () = ctx.stopping.stopping() => return answer(&probes, &[]),
                () = wait.changed() => {}
            }
        }
        events = ctx.guests.subscribe();
        check = match self::check(ctx, &probes, &by_namespace, &client_ip) {
            Ok(check) => check,
            Err(error) => return guest::respond(Err(error)),
        };
        if !check.changed.is_empty() {
            return answer(&probes, &check.changed);
        }
        wait.rekey(watch_keys(&check));
    }
}

/// The change events a check's watches name.
fn watch_keys(check: &Check) -> Vec<WatchKey> {
    let key = |(namespace, topic, key): &(String, String, String)| WatchKey {
        namespace: namespace.clone(),
        kind: ModuleKind::Config,
        topic: topic.clone(),
        key: key.clone(),
    };
    check.watches.iter().map(key).collect()
}

/// Whether `events` received so far hold a change `check` watches (or lost some).
fn changed_meanwhile(events: &mut broadcast::Receiver<Arc<ChangeEvent>>, check: &Check) -> bool {
    loop {
        match events.try_recv() {
            Ok(event) => {
                let watched = (event.namespace.clone(), event.event.topic.clone(), event.event.key.clone());
                if event.kind == ModuleKind::Config && check.watches.contains(&watched) {
                    return true;
                }
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => return false,
            // Missed events may include ours: look again.
            Err(TryRecvError::Lagged(_)) => return true,
        }
    }
}

/// The lines of `Listening-Configs`: 3 or 4 fields each, at most [`MAX_LISTENED_KEYS`].
fn parse(value: &str) -> Result<Vec<Probe>, String> {
    if value.trim().is_empty() {
        return Err(format!("invalid param: {FIELD} is missing or empty"));
    }
    let lines: Vec<&str> = value.split(LINE_SEPARATOR).filter(|line| !line.is_empty()).collect();
    if lines.len() > MAX_LISTENED_KEYS {
        return Err("invalid protocol, too much listener".to_string());
    }
    lines
        .iter()
        .enumerate()
        .map(|(number, line)| {
            let fields: Vec<&str> = line.split(WORD_SEPARATOR).collect();
            match fields.as_slice() {
                [data_id, group, md5] | [data_id, group, md5, _] if !data_id.is_empty() && !group.is_empty() => {
                    Ok(Probe {
                        data_id: data_id.to_string(),
                        group: group.to_string(),
                        md5: md5.to_string(),
                        tenant: fields.get(3).unwrap_or(&"").to_string(),
                    })
                }
                _ => Err(format!(
                    "invalid param: {FIELD} line {} must be dataId\\x02group\\x02md5[\\x02tenant] with dataId and group \
                     not empty, and end with \\x01",
                    number + 1
                )),
            }
        })
        .collect()
}

/// Probe positions per namespace (an empty tenant is `public`).
fn group_by_namespace(probes: &[Probe]) -> Result<BTreeMap<String, Vec<usize>>, String> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (position, probe) in probes.iter().enumerate() {
        let namespace = params::namespace(Some(&probe.tenant), FIELD)?;
        groups.entry(namespace).or_default().push(position);
    }
    Ok(groups)
}

/// How long to hold: `None` (answer at once) without the timeout header (short polling) or
/// with `Long-Pulling-Timeout-No-Hangup: true`.
fn hold_for(req: &HttpRequest) -> Result<Option<Duration>, String> {
    let Some(timeout) = req.header(TIMEOUT_HEADER) else { return Ok(None) };
    let timeout_ms: u64 =
        timeout.trim().parse().map_err(|_| format!("invalid header: {TIMEOUT_HEADER} must be milliseconds"))?;
    if req.header(NO_HANGUP_HEADER).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let hold_ms = timeout_ms.saturating_sub(HOLD_MARGIN_MS).clamp(MIN_HOLD_MS, MAX_HOLD_MS);
    Ok(Some(Duration::from_millis(hold_ms)))
}

/// What a held poll listens to, as the listener pages show it.
fn listeners(probes: &[Probe], by_namespace: &BTreeMap<String, Vec<usize>>, client_ip: &str) -> Vec<ConfigListener> {
    let mut listeners = Vec::with_capacity(probes.len());
    for (namespace, positions) in by_namespace {
        listeners.extend(positions.iter().map(|&p| ConfigListener {
            ip: client_ip.to_string(),
            namespace: namespace.clone(),
            tenant: probes[p].tenant.clone(),
            group: probes[p].group.clone(),
            data_id: probes[p].data_id.clone(),
            md5: probes[p].md5.clone(),
        }));
    }
    listeners
}

/// Ask each namespace's config guest which of its probes are stale.
fn check(
    ctx: &Context,
    probes: &[Probe],
    by_namespace: &BTreeMap<String, Vec<usize>>,
    client_ip: &str,
) -> Result<Check, GuestError> {
    let mut found = Check { changed: Vec::new(), watches: HashSet::new() };
    for (namespace, positions) in by_namespace {
        let lines: Vec<(&str, &str, &str)> = positions
            .iter()
            .map(|&p| (probes[p].data_id.as_str(), probes[p].group.as_str(), probes[p].md5.as_str()))
            .collect();
        let request = GuestRequest {
            op: LISTEN_OP.to_string(),
            params: [(PROBES_PARAM.to_string(), serde_json::to_string(&lines).expect("strings serialize"))].into(),
            client_ip: client_ip.to_string(),
        };
        let reply = ctx.guests.query(Scope::new(namespace, ModuleKind::Config), &request)?;
        let stale: Vec<usize> = serde_json::from_str(&reply.body).map_err(|e| malformed(format!("body: {e}")))?;
        for index in stale {
            found.changed.push(*positions.get(index).ok_or_else(|| malformed(format!("position {index}")))?);
        }
        if let Some(watch) = reply.headers.get(directive::WATCH) {
            let pairs: Vec<(String, String)> =
                serde_json::from_str(watch).map_err(|e| malformed(format!("watch: {e}")))?;
            found.watches.extend(pairs.into_iter().map(|(topic, key)| (namespace.clone(), topic, key)));
        }
    }
    found.changed.sort_unstable();
    Ok(found)
}

fn malformed(what: String) -> GuestError {
    GuestError { code: 500, message: format!("the config module answered {LISTEN_OP} with a malformed {what}") }
}

/// Nacos's answer: the changed keys `dataId\x02group[\x02tenant]\x01`, URL-encoded as one
/// string, then a newline; empty when nothing changed.
fn answer(probes: &[Probe], changed: &[usize]) -> HttpResponse {
    net::text(Status::OK, answer_body(probes, changed))
}

fn answer_body(probes: &[Probe], changed: &[usize]) -> String {
    if changed.is_empty() {
        return String::new();
    }
    let mut keys = String::new();
    for probe in changed.iter().map(|&p| &probes[p]) {
        keys.push_str(&probe.data_id);
        keys.push(WORD_SEPARATOR);
        keys.push_str(&probe.group);
        if !probe.tenant.is_empty() {
            keys.push(WORD_SEPARATOR);
            keys.push_str(&probe.tenant);
        }
        keys.push(LINE_SEPARATOR);
    }
    format!("{}\n", url_encode(&keys))
}

/// Java's `URLEncoder` safe set, but a space is `%20`, never `+`: the Node client decodes
/// with `decodeURIComponent`, which leaves `+` alone.
fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_three_or_four_fields() {
        let probes = parse("a\u{2}G\u{2}\u{1}b\u{2}G\u{2}m\u{2}\u{1}c\u{2}G\u{2}m\u{2}dev\u{1}").unwrap();
        let tenants: Vec<_> = probes.iter().map(|p| (p.data_id.as_str(), p.md5.as_str(), p.tenant.as_str())).collect();
        assert_eq!(tenants, vec![("a", "", ""), ("b", "m", ""), ("c", "m", "dev")]);
        let groups = group_by_namespace(&probes).unwrap();
        assert_eq!(groups["public"], vec![0, 1]);
        assert_eq!(groups["dev"], vec![2]);
        for bad in ["", "a\u{2}G\u{1}", "a\u{2}G\u{2}m\u{2}t\u{2}x\u{1}", "\u{2}G\u{2}m\u{1}"] {
            assert!(parse(bad).unwrap_err().contains(FIELD), "{bad:?}");
        }
        let too_many = "a\u{2}G\u{2}m\u{1}".repeat(MAX_LISTENED_KEYS + 1);
        assert_eq!(parse(&too_many).unwrap_err(), "invalid protocol, too much listener");
        let bad_tenant = parse("a\u{2}G\u{2}m\u{2}a b\u{1}").unwrap();
        assert!(group_by_namespace(&bad_tenant).unwrap_err().contains(FIELD));
    }

    #[test]
    fn answers_are_url_encoded_with_the_client_tenant() {
        let probes = parse("a.b:c\u{2}G\u{2}m\u{1}x\u{2}G\u{2}m\u{2}dev 1\u{1}").unwrap();
        assert_eq!(answer_body(&probes, &[0, 1]), "a.b%3Ac%02G%01x%02G%02dev%201%01\n");
        assert_eq!(answer_body(&probes, &[]), "", "nothing changed: an empty body");
    }
}
