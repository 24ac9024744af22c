//! Nacos's authorization model: what a request touches (a resource and an action), what a role
//! is granted, and whether the grants a user holds through their roles allow the request.
//!
//! Resources of data are `<namespaceId>:<group>:<type>/<name>` (type `config`, the name a
//! dataId, or `naming`, the name a service without its group); grants name them with `*`
//! wildcards (the console offers `<namespaceId>:*:*`). Nacos turns a grant into a Java regex by
//! replacing `*` with `.*` and escaping nothing else, so a `.` in a grant matches any
//! character and a `(` makes the check throw; here `*` is the only special character.

/// Nacos's default namespace, what a request without one is about. The same text as
/// `state::PUBLIC_NAMESPACE` (a test in `state::auth` keeps them equal): `auth` stands below
/// `state` and names nothing of it.
pub const PUBLIC_NAMESPACE: &str = "public";

/// The global administrator (Nacos's `GLOBAL_ADMIN_ROLE`): passes every check, the only role
/// that passes a console or administration resource. Held by the bootstrap user; never
/// granted, revoked or deleted through the role API (`state::auth`).
pub const ROLE_ADMIN: &str = "ROLE_ADMIN";

/// What a grant may allow: read, write, or both (Nacos's `r`, `w`, `rw`).
pub const GRANT_ACTIONS: [&str; 3] = ["r", "w", "rw"];

/// The console and administration resources (ROLE_ADMIN only).
pub const CONSOLE_USERS: &str = "console/users";
pub const CONSOLE_ROLES: &str = "console/roles";
pub const CONSOLE_PERMISSIONS: &str = "console/permissions";
pub const CONSOLE_NAMESPACES: &str = "console/namespaces";
/// Module install, activation and dry runs.
pub const NACRE_MODULES: &str = "nacre/modules";
/// Cluster membership and operations.
pub const NACRE_CLUSTER: &str = "nacre/cluster";

/// What a request asks to do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
}

impl Action {
    /// The letter a grant's action must contain (Nacos: `grant.contains(requested)`).
    pub fn letter(self) -> char {
        match self {
            Action::Read => 'r',
            Action::Write => 'w',
        }
    }
}

/// The kinds of data a data resource names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    Config,
    Naming,
}

impl ResourceType {
    fn tag(self) -> &'static str {
        match self {
            ResourceType::Config => "config",
            ResourceType::Naming => "naming",
        }
    }
}

/// What a request touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `<namespaceId>:<group>:<type>/<name>`, matched against grants ([`Resource::data`]).
    Data(String),
    /// A console or administration resource (`console/users`, `nacre/modules`, ...): only
    /// ROLE_ADMIN passes, whatever a grant says, so that a broad grant such as `*` never
    /// reaches the user or module administration.
    Admin(&'static str),
}

impl Resource {
    /// The data resource of a request, as Nacos 2.x's `joinResource` builds it: an empty
    /// namespace is `public`, an empty group `*`, an empty name `<type>/*` (a request about
    /// every config or service of the group, such as a list).
    pub fn data(namespace: &str, group: &str, kind: ResourceType, name: &str) -> Self {
        fn or<'a>(value: &'a str, default: &'static str) -> &'a str {
            if value.trim().is_empty() { default } else { value }
        }
        let namespace = or(namespace, PUBLIC_NAMESPACE);
        let group = or(group, "*");
        let name = or(name, "*");
        Resource::Data(format!("{namespace}:{group}:{}/{name}", kind.tag()))
    }

    /// The service a naming request acts on when its serviceName's `group@@` prefix names a
    /// group other than its `groupName`: the naming guest acts on the prefix's group (it takes
    /// precedence), while the resource Nacos's parser builds names `groupName`. A caller must
    /// hold both, or one group's grant would act on another. `None` when they agree.
    pub fn naming_prefix(namespace: &str, group_param: &str, service_param: &str) -> Option<Resource> {
        let (prefix, name) = service_param.trim().split_once("@@")?;
        let named = group_param.trim();
        (!named.is_empty() && named != prefix).then(|| Resource::data(namespace, prefix, ResourceType::Naming, name))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Resource::Data(resource) => resource,
            Resource::Admin(resource) => resource,
        }
    }
}

/// One permission a role holds: a resource pattern and the actions it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub resource: String,
    pub action: String,
}

/// A role a user holds, with everything granted to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrants {
    pub role: String,
    pub grants: Vec<Grant>,
}

/// Whether one of `roles` is ROLE_ADMIN (Nacos's `globalAdmin`).
pub fn is_admin(roles: &[RoleGrants]) -> bool {
    roles.iter().any(|r| r.role == ROLE_ADMIN)
}

/// Whether a user holding `roles` may do `action` on `resource`: ROLE_ADMIN always; anyone
/// else only on data, through a grant whose action contains the requested letter and whose
/// pattern matches the whole resource. No roles, no access.
pub fn allowed(roles: &[RoleGrants], resource: &Resource, action: Action) -> bool {
    if is_admin(roles) {
        return true;
    }
    let Resource::Data(requested) = resource else { return false };
    roles
        .iter()
        .flat_map(|role| &role.grants)
        .any(|grant| grant.action.contains(action.letter()) && grant_matches(&grant.resource, requested))
}

/// Whether `caller` may set `target`'s password: an administrator, or the user themself
/// (Nacos's `console/user/password` rule).
pub fn may_change_password(caller: &str, caller_roles: &[RoleGrants], target: &str) -> bool {
    caller == target || is_admin(caller_roles)
}

/// Whether the grant pattern covers the whole requested resource. A grant starting with `:`
/// names the public namespace (Nacos 2.x stores the console's public option as `:*:*`).
pub fn grant_matches(grant: &str, requested: &str) -> bool {
    if grant.starts_with(':') {
        return glob_matches(&format!("{PUBLIC_NAMESPACE}{grant}"), requested);
    }
    glob_matches(grant, requested)
}

/// Whether `text` matches `pattern` as a whole, where `*` matches any run of bytes (`:` and `/`
/// included, as Nacos's `.*` does) and every other byte only itself. Greedy with one
/// backtrack point: O(pattern × text) at worst, both bounded (a grant's resource by
/// `state::MAX_RESOURCE_BYTES`).
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    // After the last `*` seen: where the pattern resumes, and the text position that `*`'s
    // run ends at so far (extended by one on each mismatch).
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            p += 1;
            backtrack = Some((p, t));
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((resume, run_end)) = backtrack {
            p = resume;
            t = run_end + 1;
            backtrack = Some((resume, t));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_naming_another_group_is_a_second_resource() {
        assert_eq!(Resource::naming_prefix("ns", "H", "G@@svc").unwrap().as_str(), "ns:G:naming/svc");
        assert_eq!(Resource::naming_prefix("ns", "G", "G@@svc"), None, "they agree");
        assert_eq!(Resource::naming_prefix("ns", "", "G@@svc"), None, "the prefix alone is the resource already");
        assert_eq!(Resource::naming_prefix("ns", "H", "svc"), None, "no prefix");
    }

    fn role(name: &str, grants: &[(&str, &str)]) -> RoleGrants {
        RoleGrants {
            role: name.into(),
            grants: grants.iter().map(|(r, a)| Grant { resource: r.to_string(), action: a.to_string() }).collect(),
        }
    }

    fn config(namespace: &str, group: &str, name: &str) -> Resource {
        Resource::data(namespace, group, ResourceType::Config, name)
    }

    #[test]
    fn request_resources_are_joined_as_nacos_2_does() {
        assert_eq!(config("dev", "G", "app.yaml").as_str(), "dev:G:config/app.yaml");
        assert_eq!(config("", "", "").as_str(), "public:*:config/*");
        assert_eq!(config(" ", "DEFAULT_GROUP", "x").as_str(), "public:DEFAULT_GROUP:config/x");
        assert_eq!(Resource::data("public", "G", ResourceType::Naming, "svc").as_str(), "public:G:naming/svc");
        assert_eq!(Resource::data("dev", "G", ResourceType::Naming, "").as_str(), "dev:G:naming/*");
    }

    #[test]
    fn star_spans_anything_and_everything_else_is_literal() {
        assert!(glob_matches("public:*:*", "public:DEFAULT_GROUP:config/x"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "dev:G:naming/a:b/c"));
        assert!(glob_matches("a*b*c", "aXXbYYbZc"));
        assert!(glob_matches("a**", "a"));
        assert!(!glob_matches("dev:*:*", "public:DEFAULT_GROUP:config/x"));
        assert!(!glob_matches("dev:*:*", "development:G:config/x"), "the separator is literal");
        assert!(!glob_matches("a.b", "aXb"), "a dot is a dot, not any character");
        assert!(glob_matches("a.b", "a.b"));
        assert!(glob_matches("ns:(g):[x]/a+", "ns:(g):[x]/a+"), "( [ + are literal");
        assert!(!glob_matches("ns:(g):config/x", "ns:g:config/x"));
        assert!(!glob_matches("public:G:config/x", "public:G:config/xy"), "the whole resource must match");
        assert!(!glob_matches("public:G:config/xy", "public:G:config/x"));
        assert!(glob_matches("*:*:config/app-*", "dev:G:config/app-1"));
        assert!(!glob_matches("*:*:config/app-*", "dev:G:naming/app-1"));
    }

    #[test]
    fn a_grant_starting_with_a_colon_is_the_public_namespace() {
        assert!(grant_matches(":*:*", "public:G:config/x"));
        assert!(!grant_matches(":*:*", "dev:G:config/x"));
    }

    #[test]
    fn actions_allow_by_the_letter_they_contain() {
        let reader = [role("readers", &[("public:*:*", "r")])];
        let writer = [role("writers", &[("public:*:*", "w")])];
        let both = [role("all", &[("public:*:*", "rw")])];
        let resource = config("", "G", "x");
        assert!(allowed(&reader, &resource, Action::Read));
        assert!(!allowed(&reader, &resource, Action::Write));
        assert!(!allowed(&writer, &resource, Action::Read));
        assert!(allowed(&writer, &resource, Action::Write));
        assert!(allowed(&both, &resource, Action::Read) && allowed(&both, &resource, Action::Write));
    }

    #[test]
    fn any_role_may_allow_and_no_role_denies() {
        let roles = [role("a", &[("dev:*:*", "r")]), role("b", &[("test:*:*", "rw")])];
        assert!(allowed(&roles, &config("dev", "G", "x"), Action::Read));
        assert!(allowed(&roles, &config("test", "G", "x"), Action::Write));
        assert!(!allowed(&roles, &config("public", "G", "x"), Action::Read));
        assert!(!allowed(&[], &config("public", "G", "x"), Action::Read));
        assert!(!allowed(&[role("empty", &[])], &config("public", "G", "x"), Action::Read));
    }

    #[test]
    fn administration_is_for_role_admin_only() {
        let everything = [role("all", &[("*", "rw")])];
        let admin = [role(ROLE_ADMIN, &[])];
        for resource in [CONSOLE_USERS, CONSOLE_ROLES, CONSOLE_PERMISSIONS, CONSOLE_NAMESPACES, NACRE_MODULES] {
            let resource = Resource::Admin(resource);
            assert!(!allowed(&everything, &resource, Action::Read), "{resource:?}");
            assert!(allowed(&admin, &resource, Action::Write), "{resource:?}");
        }
        assert!(allowed(&admin, &config("any", "G", "x"), Action::Write), "the admin passes data too");
        assert!(is_admin(&admin) && !is_admin(&everything));
    }

    #[test]
    fn users_change_their_own_password_and_admins_anyone_s() {
        assert!(may_change_password("alice", &[], "alice"));
        assert!(!may_change_password("alice", &[role("all", &[("*", "rw")])], "bob"));
        assert!(may_change_password("root", &[role(ROLE_ADMIN, &[])], "bob"));
    }
}
