//! Service, group and cluster names the way Nacos clients send them, validated.
//!
//! A service is named by `serviceName` either plain (`svc`, with `groupName` beside it, as the
//! Python client sends it) or grouped (`DEFAULT_GROUP@@svc`, as the Node client sends it, often
//! without `groupName`): the prefix wins over `groupName`, as in Nacos's `DistroFilter`.

use nacre_guest_sdk::{GuestError, GuestRequest, RequestExt};

pub const DEFAULT_GROUP: &str = "DEFAULT_GROUP";
pub const DEFAULT_CLUSTER: &str = "DEFAULT";
/// Between group and service in a grouped name (Nacos `Constants.SERVICE_INFO_SPLITER`).
pub const GROUP_SEPARATOR: &str = "@@";
/// Longest plain service name, in characters (keys stay far below the host's 4 KiB limit).
pub const MAX_SERVICE_NAME_CHARS: usize = 256;
/// Longest group name, in characters.
pub const MAX_GROUP_NAME_CHARS: usize = 128;
/// Longest cluster name, in characters.
pub const MAX_CLUSTER_NAME_CHARS: usize = 64;

/// A service within the namespace: its group and its plain name, both validated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceName {
    pub group: String,
    pub service: String,
}

impl ServiceName {
    /// `group@@service`: how Nacos names the service on the wire and how events key it.
    pub fn grouped(&self) -> String {
        format!("{}{GROUP_SEPARATOR}{}", self.group, self.service)
    }

    /// The name a stored `group@@service` stands for (stored names were validated when
    /// written; `None` for one without the separator).
    pub fn from_grouped(grouped: &str) -> Option<Self> {
        let (group, service) = grouped.split_once(GROUP_SEPARATOR)?;
        Some(Self { group: group.to_owned(), service: service.to_owned() })
    }
}

/// The service a request is about: `serviceName` (grouped or plain) and `groupName`.
pub fn service_name(req: &GuestRequest) -> Result<ServiceName, GuestError> {
    let raw = req.required("serviceName")?.trim();
    let (group, group_field, service) = match raw.split_once(GROUP_SEPARATOR) {
        Some((group, service)) => (group, "serviceName", service),
        None => (req.optional("groupName").map_or(DEFAULT_GROUP, str::trim), "groupName", raw),
    };
    check_part(group_field, group, MAX_GROUP_NAME_CHARS)?;
    check_part("serviceName", service, MAX_SERVICE_NAME_CHARS)?;
    Ok(ServiceName { group: group.to_owned(), service: service.to_owned() })
}

/// The group of a request that names no service (service listing): `groupName` or the default.
pub fn group_name(req: &GuestRequest) -> Result<&str, GuestError> {
    let group = req.optional("groupName").map_or(DEFAULT_GROUP, str::trim);
    check_part("groupName", group, MAX_GROUP_NAME_CHARS)?;
    Ok(group)
}

/// Nacos's service-name alphabet `[0-9a-zA-Z@.:_-]`, with `@` never doubled nor at an edge so
/// that `group@@service` splits back into exactly these two parts.
fn check_part(field: &str, value: &str, max_chars: usize) -> Result<(), GuestError> {
    if value.is_empty() {
        return Err(GuestError::bad_request(format!("invalid {field}: the group or service part is empty")));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | ':' | '_' | '-');
    if !value.chars().all(allowed) {
        return Err(GuestError::bad_request(format!(
            "invalid {field}: {value:?} (service and group names can only have these characters: 0-9a-zA-Z@.:_-)"
        )));
    }
    if value.contains(GROUP_SEPARATOR) || value.starts_with('@') || value.ends_with('@') {
        return Err(GuestError::bad_request(format!(
            "invalid {field}: {value:?} (`@@` may only separate the group from the service)"
        )));
    }
    if value.chars().count() > max_chars {
        return Err(GuestError::bad_request(format!("invalid {field}: longer than {max_chars} characters")));
    }
    Ok(())
}

/// The cluster of an instance: `clusterName`, else `cluster` (the older parameter), else
/// `DEFAULT`. `None` (what the Python client sends for "no cluster") is a real cluster name, as
/// in Nacos.
pub fn cluster_name(req: &GuestRequest) -> Result<String, GuestError> {
    let (field, value) = match (req.optional("clusterName"), req.optional("cluster")) {
        (Some(value), _) => ("clusterName", value),
        (None, Some(value)) => ("cluster", value),
        (None, None) => return Ok(DEFAULT_CLUSTER.to_owned()),
    };
    check_cluster(field, value.trim())?;
    Ok(value.trim().to_owned())
}

/// Nacos's cluster-name rule `[0-9a-zA-Z-]+`, plus a length limit.
pub fn check_cluster(field: &str, value: &str) -> Result<(), GuestError> {
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(GuestError::bad_request(format!(
            "invalid {field}: {value:?} (cluster name can only have these characters: 0-9a-zA-Z-)"
        )));
    }
    if value.chars().count() > MAX_CLUSTER_NAME_CHARS {
        return Err(GuestError::bad_request(format!(
            "invalid {field}: longer than {MAX_CLUSTER_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

/// The `clusters` filter of a listing: comma-separated names, empty meaning every cluster.
/// Names are not validated: one that cannot exist simply matches nothing.
pub fn cluster_filter(req: &GuestRequest) -> Vec<&str> {
    req.optional("clusters")
        .map_or_else(Vec::new, |list| list.split(',').map(str::trim).filter(|name| !name.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(service: &str) -> GuestRequest {
        GuestRequest::new("x").param("serviceName", service)
    }

    #[test]
    fn plain_and_grouped_names() {
        let plain = service_name(&req("svc").param("groupName", "G")).unwrap();
        assert_eq!(plain.grouped(), "G@@svc");
        let grouped = service_name(&req("A@@svc").param("groupName", "G")).unwrap();
        assert_eq!(grouped, ServiceName { group: "A".into(), service: "svc".into() }, "the prefix wins");
        assert_eq!(service_name(&req("svc")).unwrap().grouped(), "DEFAULT_GROUP@@svc");
        assert_eq!(service_name(&req("a.b:c-d_e@x")).unwrap().service, "a.b:c-d_e@x");
    }

    #[test]
    fn bad_names_name_the_field() {
        for (req, field) in [
            (req(""), "serviceName"),
            (req("@@svc"), "serviceName"),
            (req("G@@"), "serviceName"),
            (req("G@@a@@b"), "serviceName"),
            (req("a b"), "serviceName"),
            (req("svc@"), "serviceName"),
            (req("svc").param("groupName", "g/h"), "groupName"),
            (req(&"s".repeat(MAX_SERVICE_NAME_CHARS + 1)), "serviceName"),
        ] {
            let err = service_name(&req).unwrap_err();
            assert!(err.code == 400 && err.message.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn clusters_follow_nacos() {
        assert_eq!(cluster_name(&req("s")).unwrap(), "DEFAULT");
        assert_eq!(cluster_name(&req("s").param("clusterName", "None")).unwrap(), "None");
        assert_eq!(cluster_name(&req("s").param("cluster", "c-1")).unwrap(), "c-1");
        let err = cluster_name(&req("s").param("cluster", "a b")).unwrap_err();
        assert!(err.message.contains("cluster"), "{err}");
        let err = cluster_name(&req("s").param("clusterName", "a_b")).unwrap_err();
        assert!(err.message.contains("clusterName"), "{err}");
        assert_eq!(cluster_filter(&req("s").param("clusters", "a, b,,")), vec!["a", "b"]);
    }
}
