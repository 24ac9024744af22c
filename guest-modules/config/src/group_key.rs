//! The Nacos group key (`GroupKey2`) that names a config to watchers: the event key, and
//! what the long-poll matches a listener's entries against.

/// The namespace ids that mean "no tenant": the host maps `""` and `public` to one namespace,
/// and Nacos clients of the default namespace listen with an empty tenant.
const DEFAULT_NAMESPACES: &[&str] = &["", "public"];

/// `dataId+group+tenant`, the tenant part left out for the default namespace; `+` and `%`
/// inside a part are escaped as Nacos does (`%2B`, `%25`).
pub fn group_key(data_id: &str, group: &str, namespace: &str) -> String {
    let mut key = format!("{}+{}", escape(data_id), escape(group));
    if !DEFAULT_NAMESPACES.contains(&namespace) {
        key.push('+');
        key.push_str(&escape(namespace));
    }
    key
}

/// The tenant Nacos shows for a namespace: empty for the default one.
pub fn tenant_of(namespace: &str) -> &str {
    if DEFAULT_NAMESPACES.contains(&namespace) { "" } else { namespace }
}

fn escape(part: &str) -> String {
    part.replace('%', "%25").replace('+', "%2B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_is_left_out_for_the_default_namespace() {
        assert_eq!(group_key("app.yaml", "DEFAULT_GROUP", ""), "app.yaml+DEFAULT_GROUP");
        assert_eq!(group_key("app.yaml", "DEFAULT_GROUP", "public"), "app.yaml+DEFAULT_GROUP");
        assert_eq!(group_key("a", "g", "dev"), "a+g+dev");
        assert_eq!(group_key("a", "g", "x+y%"), "a+g+x%2By%25");
    }
}
