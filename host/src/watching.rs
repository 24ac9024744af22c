//! Who watches what on this node: the clients subscribed to a service (UDP pushes after a v1
//! read, gRPC subscriptions) and the clients listening to a config (held v1 long-polls, gRPC
//! listeners), as records the console and Nacos's tools read. Nothing here is replicated: a
//! client watches through the one node it talks to, so a cluster-wide answer asks every member
//! (`api::watchers`) and merges.
//!
//! This module holds the records, the long-poll book and [`Watchers`], the one service that
//! asks every transport; each transport reports its own watchers as a [`WatcherSource`]
//! (`duties::push`, `grpc::connections`, the book here), so none of them, and none of their
//! readers, knows the others.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use serde::Deserialize;
use serde::Serialize;

/// Nacos's group when a request names none.
pub const DEFAULT_GROUP: &str = "DEFAULT_GROUP";
/// Nacos's separator of a grouped service name (`group@@service`).
pub const GROUP_SEPARATOR: &str = "@@";
/// v1 long-polls this node holds at once; one more is told to retry elsewhere (503, which
/// every Nacos client treats as "try the next server").
pub const MAX_HELD_LISTENERS: usize = 10_000;
/// Records one node reports for one question: a console page, not a dump of every client.
pub const MAX_REPORTED_WATCHERS: usize = 10_000;

/// A client subscribed to a service, in Nacos's `Subscriber` shape (field order included).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscriber {
    /// `ip:port` of a UDP subscriber; the IP alone of a gRPC one (port 0), as Nacos shows them.
    pub addr_str: String,
    /// The client's version (`Client-Version`, else `User-Agent`; a gRPC client's setup).
    pub agent: String,
    pub app: String,
    pub ip: String,
    pub port: u16,
    pub namespace_id: String,
    /// `group@@service`.
    pub service_name: String,
    /// The clusters the client asked for, comma-separated (empty: all).
    pub cluster: String,
}

/// A client listening to a config, with the md5 it last reported having.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConfigListener {
    pub ip: String,
    /// The namespace (`public` for an empty tenant).
    pub namespace: String,
    /// The tenant as the client named it (empty for `public`).
    pub tenant: String,
    pub group: String,
    pub data_id: String,
    pub md5: String,
}

/// One transport's watchers on this node. A transport without subscribers or listeners
/// reports none of them.
pub trait WatcherSource: Send + Sync {
    /// The clients subscribed to the service `grouped_service` (`group@@service`) of `namespace`.
    fn subscribers_of(&self, _namespace: &str, _grouped_service: &str) -> Vec<Subscriber> {
        Vec::new()
    }

    /// The config listeners `filter` admits.
    fn listeners(&self, _filter: &ListenerFilter) -> Vec<ConfigListener> {
        Vec::new()
    }
}

/// The watchers this node knows of, over every transport's records.
pub struct Watchers {
    sources: Vec<Arc<dyn WatcherSource>>,
    /// The held v1 long-polls: also what the long-poll handler holds its requests in.
    pub polls: Arc<HeldPolls>,
}

impl Watchers {
    /// Over `sources` and a fresh long-poll book.
    pub fn new(sources: Vec<Arc<dyn WatcherSource>>) -> Watchers {
        Watchers { sources, polls: Arc::default() }
    }

    /// This node's subscribers of a service, in order, once each.
    pub fn subscribers_of(&self, namespace: &str, grouped_service: &str) -> Vec<Subscriber> {
        let found: std::collections::BTreeSet<Subscriber> =
            self.sources.iter().flat_map(|source| source.subscribers_of(namespace, grouped_service)).collect();
        found.into_iter().take(MAX_REPORTED_WATCHERS).collect()
    }

    /// This node's config listeners `filter` admits.
    pub fn listeners(&self, filter: &ListenerFilter) -> Vec<ConfigListener> {
        let mut found = self.polls.listeners(filter);
        for source in &self.sources {
            found.extend(source.listeners(filter));
        }
        found.truncate(MAX_REPORTED_WATCHERS);
        found
    }
}

/// Which listeners a question is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerFilter {
    /// The clients listening to one config.
    Config { namespace: String, group: String, data_id: String },
    /// The configs one client IP listens to.
    Client { ip: String },
}

impl ListenerFilter {
    pub fn admits(&self, listener: &ConfigListener) -> bool {
        match self {
            ListenerFilter::Config { namespace, group, data_id } => {
                listener.namespace == *namespace && listener.group == *group && listener.data_id == *data_id
            }
            ListenerFilter::Client { ip } => listener.ip == *ip,
        }
    }
}

/// A service's `group@@service` from a naming request's parameters: `serviceName` may carry
/// the group itself (v1 clients send it so), else `groupName`, else Nacos's default group.
pub fn grouped_service(service_name: &str, group_name: Option<&str>) -> String {
    if service_name.contains(GROUP_SEPARATOR) {
        return service_name.to_string();
    }
    let group = group_name.map(str::trim).filter(|g| !g.is_empty()).unwrap_or(DEFAULT_GROUP);
    format!("{group}{GROUP_SEPARATOR}{service_name}")
}

/// Nacos's `GroupKey` of a config: `dataId+group[+tenant]`, with `+` and `%` in each part
/// escaped so the key splits back unambiguously.
pub fn group_key(data_id: &str, group: &str, tenant: &str) -> String {
    let mut key = String::with_capacity(data_id.len() + group.len() + tenant.len() + 2);
    escape_into(data_id, &mut key);
    key.push('+');
    escape_into(group, &mut key);
    if !tenant.is_empty() {
        key.push('+');
        escape_into(tenant, &mut key);
    }
    key
}

fn escape_into(part: &str, key: &mut String) {
    for c in part.chars() {
        match c {
            '+' => key.push_str("%2B"),
            '%' => key.push_str("%25"),
            c => key.push(c),
        }
    }
}

/// The v1 long-polls held on this node, by hold: who holds them and for what. A slot is
/// given back when its [`Held`] guard drops (also when the client goes away mid-hold).
#[derive(Default)]
pub struct HeldPolls {
    next_id: AtomicU64,
    held: Mutex<HashMap<u64, Vec<ConfigListener>>>,
}

/// One held long-poll; dropping it ends the hold.
pub struct Held {
    id: u64,
    polls: Arc<HeldPolls>,
}

impl HeldPolls {
    /// Hold a long-poll of `listeners` (one client's), unless [`MAX_HELD_LISTENERS`] are held.
    pub fn hold(self: &Arc<Self>, listeners: Vec<ConfigListener>) -> Option<Held> {
        let mut held = self.held.lock().expect("held polls lock");
        if held.len() >= MAX_HELD_LISTENERS {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        held.insert(id, listeners);
        Some(Held { id, polls: self.clone() })
    }

    /// Long-polls held now.
    pub fn count(&self) -> usize {
        self.held.lock().expect("held polls lock").len()
    }

    /// The held listeners `filter` admits, at most [`MAX_REPORTED_WATCHERS`].
    pub fn listeners(&self, filter: &ListenerFilter) -> Vec<ConfigListener> {
        let held = self.held.lock().expect("held polls lock");
        held.values().flatten().filter(|l| filter.admits(l)).take(MAX_REPORTED_WATCHERS).cloned().collect()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.polls.held.lock().expect("held polls lock").remove(&self.id);
    }
}

/// Nacos's `lisentersGroupkeyStatus` of one config: client IP → md5 (one IP listening twice
/// shows once, as in Nacos).
pub fn md5_by_ip(listeners: &[ConfigListener]) -> BTreeMap<String, String> {
    listeners.iter().map(|l| (l.ip.clone(), l.md5.clone())).collect()
}

/// Nacos's `lisentersGroupkeyStatus` of one client: group key → md5.
pub fn md5_by_group_key(listeners: &[ConfigListener]) -> BTreeMap<String, String> {
    listeners.iter().map(|l| (group_key(&l.data_id, &l.group, &l.tenant), l.md5.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(ip: &str, namespace: &str, data_id: &str) -> ConfigListener {
        ConfigListener {
            ip: ip.into(),
            namespace: namespace.into(),
            tenant: if namespace == "public" { String::new() } else { namespace.into() },
            group: "G".into(),
            data_id: data_id.into(),
            md5: format!("md5-{data_id}"),
        }
    }

    #[test]
    fn group_keys_escape_their_separator() {
        assert_eq!(group_key("a", "G", ""), "a+G");
        assert_eq!(group_key("a+b", "G%", "dev"), "a%2Bb+G%25+dev");
    }

    #[test]
    fn grouped_names_take_the_group_from_either_place() {
        assert_eq!(grouped_service("svc", None), "DEFAULT_GROUP@@svc");
        assert_eq!(grouped_service("svc", Some(" ")), "DEFAULT_GROUP@@svc");
        assert_eq!(grouped_service("svc", Some("g")), "g@@svc");
        assert_eq!(grouped_service("g2@@svc", Some("g")), "g2@@svc");
    }

    #[test]
    fn held_polls_are_reported_while_held_and_capped() {
        let polls = Arc::new(HeldPolls::default());
        let first = polls.hold(vec![listener("10.0.0.1", "public", "a"), listener("10.0.0.1", "dev", "b")]).unwrap();
        let _second = polls.hold(vec![listener("10.0.0.2", "public", "a")]).unwrap();
        let of_a = ListenerFilter::Config { namespace: "public".into(), group: "G".into(), data_id: "a".into() };
        assert_eq!(md5_by_ip(&polls.listeners(&of_a)).len(), 2);
        let of_client = ListenerFilter::Client { ip: "10.0.0.1".into() };
        let keys = md5_by_group_key(&polls.listeners(&of_client));
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["a+G", "b+G+dev"]);
        drop(first);
        assert_eq!(polls.count(), 1);
        assert!(polls.listeners(&of_client).is_empty(), "a hold that ended is not reported");
        let guards: Vec<Held> = (1..MAX_HELD_LISTENERS).map(|_| polls.hold(Vec::new()).unwrap()).collect();
        assert!(polls.hold(Vec::new()).is_none(), "past the cap a hold is refused");
        drop(guards);
        assert!(polls.hold(Vec::new()).is_some());
    }
}
