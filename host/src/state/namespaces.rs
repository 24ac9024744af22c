//! Namespaces as a platform record (`s/namespace/<id>`): naming and config share them, and
//! module bindings are per namespace too. Changed only through committed entries; applying
//! one is a pure function of the entry (a generated id is made before proposing).

use serde::Deserialize;
use serde::Serialize;

use super::keys;
use super::kv::Kv;
use crate::runtime::GuestError;

/// A change to the namespace records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NamespaceChange {
    /// Refused (409) when the id exists.
    Create { id: String, name: String, desc: String },
    /// Refused (404) when the id does not exist.
    Update { id: String, name: String, desc: String },
    /// Refused (404) when the id does not exist. The namespace's data is kept (as Nacos keeps
    /// its configs): recreating the id finds it again.
    Delete { id: String },
}

/// What is kept about a namespace besides its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub id: String,
    pub name: String,
    pub desc: String,
    pub created_ms: u64,
}

pub fn apply(kv: &mut Kv, change: &NamespaceChange, timestamp_ms: u64) -> Result<Vec<u8>, GuestError> {
    let refuse = |code, message: String| Err(GuestError { code, message });
    match change {
        NamespaceChange::Create { id, name, desc } => {
            if get(kv, id).is_some() {
                return refuse(409, format!("namespace {id} already exists"));
            }
            put(
                kv,
                &NamespaceRecord { id: id.clone(), name: name.clone(), desc: desc.clone(), created_ms: timestamp_ms },
            );
        }
        NamespaceChange::Update { id, name, desc } => {
            let Some(record) = get(kv, id) else { return refuse(404, format!("namespace {id} does not exist")) };
            put(kv, &NamespaceRecord { name: name.clone(), desc: desc.clone(), ..record });
        }
        NamespaceChange::Delete { id } => {
            if get(kv, id).is_none() {
                return refuse(404, format!("namespace {id} does not exist"));
            }
            kv.delete(&keys::namespace(id));
        }
    }
    Ok(b"true".to_vec())
}

pub fn get(kv: &Kv, id: &str) -> Option<NamespaceRecord> {
    kv.get(&keys::namespace(id)).and_then(|raw| serde_json::from_slice(raw).ok())
}

/// Every namespace record, in id order.
pub fn list(kv: &Kv) -> Vec<NamespaceRecord> {
    kv.prefixed(keys::NAMESPACE_PREFIX).filter_map(|(_, raw)| serde_json::from_slice(raw).ok()).collect()
}

fn put(kv: &mut Kv, record: &NamespaceRecord) {
    kv.put(keys::namespace(&record.id), serde_json::to_vec(record).expect("plain struct serializes"));
}
