//! The client port's route table: every (method, path) the API serves, with what it asks of
//! its caller and what runs it. The same entry is used to decide and to dispatch, so no
//! request reaches a handler by a path the decision did not see (Nacos's 1.4.1 filter looked
//! up routes its own way, and a trailing `/` walked past it: alibaba/nacos#4701).
//!
//! Architecture Invariant: every route names its access; a path not in the table is a 404
//! before anything runs. `tests` below enumerate the table.

use super::access::Access;
use super::cluster::Action::Add;
use super::cluster::Action::Promote;
use super::cluster::Action::Remove;
use super::cluster::Action::TransferLeader;
use super::naming::Reach;
use crate::auth::permission::Action::Read;
use crate::auth::permission::Action::Write;
use crate::auth::permission::CONSOLE_NAMESPACES;
use crate::auth::permission::CONSOLE_PERMISSIONS;
use crate::auth::permission::CONSOLE_ROLES;
use crate::auth::permission::CONSOLE_USERS;
use crate::auth::permission::NACRE_CLUSTER;
use crate::auth::permission::NACRE_MODULES;
use crate::auth::permission::ResourceType::Config;
use crate::auth::permission::ResourceType::Naming;
use crate::net::HttpMethod;

/// What runs a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Config { op: &'static str, write: bool },
    ConfigListen,
    ConfigListeners,
    ClientListeners,
    Subscribers,
    Naming { op: &'static str, reach: Reach },
    NamingMetrics,
    Namespaces,
    Liveness,
    Readiness,
    ServerState,
    ClusterNodes,
    RaftState,
    RaftLeader,
    Metrics,
    OperatorServers,
    ClusterMembers,
    ClusterChange(super::cluster::Action),
    ClusterSnapshot,
    ConsoleFile,
    ConsoleRedirect,
    State,
    ApPartition,
    ModuleInstall,
    ModuleList,
    ModuleRemove,
    BindingActivate,
    BindingList,
    BindingRollback,
    ModuleDryRun,
    Exec,
    Login,
    AdminBootstrap,
    Users,
    UserSearch,
    Roles,
    RoleSearch,
    Permissions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
    Patch,
}

impl Verb {
    fn of(method: &HttpMethod) -> Option<Verb> {
        Some(match *method {
            HttpMethod::GET => Verb::Get,
            HttpMethod::POST => Verb::Post,
            HttpMethod::PUT => Verb::Put,
            HttpMethod::DELETE => Verb::Delete,
            HttpMethod::PATCH => Verb::Patch,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub verb: Verb,
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
}

const fn route(verb: Verb, path: &'static str, access: Access, handler: Handler) -> Route {
    Route { verb, path, access, handler }
}

const fn config(verb: Verb, path: &'static str, op: &'static str, action: crate::auth::permission::Action) -> Route {
    let write = matches!(action, Write);
    route(verb, path, Access::Data(Config, action), Handler::Config { op, write })
}

const fn naming(verb: Verb, path: &'static str, op: &'static str, action: crate::auth::permission::Action) -> Route {
    route(verb, path, Access::Data(Naming, action), Handler::Naming { op, reach: Reach::Act })
}

use Verb::Delete;
use Verb::Get;
use Verb::Patch;
use Verb::Post;
use Verb::Put;

/// Every route. Data routes are checked against the resource their parameters name; the
/// console and Nacre's administration (users, namespaces, modules, the cluster's internals)
/// need ROLE_ADMIN; only health probes, the server state, login and the one-time bootstrap
/// are public.
pub const ROUTES: &[Route] = &[
    // The web console's files (`api::console`): public, they hold no data; the pages sign in.
    route(Get, "/", Access::Public, Handler::ConsoleRedirect),
    route(Get, "/nacos", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/index.html", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/style.css", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/app.js", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/api.js", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/dom.js", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/login.js", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/cluster.js", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/configs.js", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/highlight.js", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/services.js", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/namespaces.js", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/users.js", Access::Public, Handler::ConsoleFile),
    route(Get, "/nacos/console/modules.js", Access::Public, Handler::ConsoleFile),
    // Config.
    config(Get, "/nacos/v1/cs/configs", "config.get", Read),
    config(Post, "/nacos/v1/cs/configs", "config.publish", Write),
    config(Delete, "/nacos/v1/cs/configs", "config.delete", Write),
    config(Get, "/nacos/v1/cs/history", "config.history", Read),
    config(Get, "/nacos/v1/cs/history/previous", "config.historyPrevious", Read),
    config(Post, "/nacre/v1/config/rollback", "config.rollback", Write),
    config(Post, "/nacre/v1/config/promote-beta", "config.promoteBeta", Write),
    // Each listened config is checked by the listener.
    route(Post, "/nacos/v1/cs/configs/listener", Access::SignedIn, Handler::ConfigListen),
    // Who listens: to one config (read on it), or what one client IP listens to (each config
    // the caller may not read is left out by the handler).
    route(Get, "/nacos/v1/cs/configs/listener", Access::Data(Config, Read), Handler::ConfigListeners),
    route(Get, "/nacos/v1/cs/listener", Access::SignedIn, Handler::ClientListeners),
    // Naming.
    naming(Post, "/nacos/v1/ns/instance", "naming.register", Write),
    naming(Delete, "/nacos/v1/ns/instance", "naming.deregister", Write),
    naming(Put, "/nacos/v1/ns/instance", "naming.update", Write),
    naming(Patch, "/nacos/v1/ns/instance", "naming.patch", Write),
    naming(Get, "/nacos/v1/ns/instance", "naming.detail", Read),
    route(
        Get,
        "/nacos/v1/ns/instance/list",
        Access::Data(Naming, Read),
        Handler::Naming { op: "naming.list", reach: Reach::List },
    ),
    naming(Put, "/nacos/v1/ns/instance/beat", "naming.beat", Write),
    naming(Put, "/nacos/v1/ns/health/instance", "naming.health", Write),
    naming(Post, "/nacos/v1/ns/service", "naming.service.create", Write),
    naming(Delete, "/nacos/v1/ns/service", "naming.service.remove", Write),
    naming(Put, "/nacos/v1/ns/service", "naming.service.update", Write),
    naming(Get, "/nacos/v1/ns/service", "naming.service.get", Read),
    naming(Get, "/nacos/v1/ns/service/list", "naming.service.list", Read),
    naming(Get, "/nacos/v1/ns/catalog/services", "naming.catalog.services", Read),
    naming(Get, "/nacos/v1/ns/catalog/service", "naming.catalog.service", Read),
    naming(Get, "/nacos/v1/ns/catalog/instances", "naming.catalog.instances", Read),
    naming(Put, "/nacos/v1/ns/cluster", "naming.cluster.update", Write),
    route(Get, "/nacos/v1/ns/service/subscribers", Access::Data(Naming, Read), Handler::Subscribers),
    route(Get, "/nacos/v1/ns/operator/metrics", Access::Admin(NACRE_CLUSTER, Read), Handler::NamingMetrics),
    // Namespaces: anyone signed in lists those they hold a grant in.
    route(Get, "/nacos/v1/console/namespaces", Access::SignedIn, Handler::Namespaces),
    route(Post, "/nacos/v1/console/namespaces", Access::Admin(CONSOLE_NAMESPACES, Write), Handler::Namespaces),
    route(Put, "/nacos/v1/console/namespaces", Access::Admin(CONSOLE_NAMESPACES, Write), Handler::Namespaces),
    route(Delete, "/nacos/v1/console/namespaces", Access::Admin(CONSOLE_NAMESPACES, Write), Handler::Namespaces),
    // Health and state.
    route(Get, "/nacos/v1/console/health/liveness", Access::Public, Handler::Liveness),
    route(Get, "/nacos/v1/console/health/readiness", Access::Public, Handler::Readiness),
    route(Get, "/nacos/v1/console/server/state", Access::Public, Handler::ServerState),
    route(Get, "/nacos/v1/core/cluster/nodes", Access::Admin(NACRE_CLUSTER, Read), Handler::ClusterNodes),
    route(Get, "/nacos/v1/ns/raft/state", Access::Admin(NACRE_CLUSTER, Read), Handler::RaftState),
    route(Get, "/metrics", Access::Admin(NACRE_CLUSTER, Read), Handler::Metrics),
    route(Get, "/nacos/v1/ns/raft/leader", Access::Admin(NACRE_CLUSTER, Read), Handler::RaftLeader),
    route(Get, "/nacos/v1/ns/operator/servers", Access::Admin(NACRE_CLUSTER, Read), Handler::OperatorServers),
    route(Get, "/nacre/v1/state", Access::Admin(NACRE_CLUSTER, Read), Handler::State),
    route(Get, "/nacre/v1/ap", Access::Admin(NACRE_CLUSTER, Read), Handler::ApPartition),
    // Membership: who votes, who replicates; changed through the log.
    route(Get, "/nacre/v1/cluster/members", Access::Admin(NACRE_CLUSTER, Read), Handler::ClusterMembers),
    route(Get, "/nacre/v1/cluster/snapshot", Access::Admin(NACRE_CLUSTER, Read), Handler::ClusterSnapshot),
    route(Post, "/nacre/v1/cluster/members", Access::Admin(NACRE_CLUSTER, Write), Handler::ClusterChange(Add)),
    route(Delete, "/nacre/v1/cluster/members", Access::Admin(NACRE_CLUSTER, Write), Handler::ClusterChange(Remove)),
    route(
        Post,
        "/nacre/v1/cluster/members/promote",
        Access::Admin(NACRE_CLUSTER, Write),
        Handler::ClusterChange(Promote),
    ),
    route(
        Post,
        "/nacre/v1/cluster/leader",
        Access::Admin(NACRE_CLUSTER, Write),
        Handler::ClusterChange(TransferLeader),
    ),
    // Modules: what the registry means, so administrators only.
    route(Post, "/nacre/v1/modules", Access::Admin(NACRE_MODULES, Write), Handler::ModuleInstall),
    route(Get, "/nacre/v1/modules", Access::Admin(NACRE_MODULES, Read), Handler::ModuleList),
    route(Delete, "/nacre/v1/modules", Access::Admin(NACRE_MODULES, Write), Handler::ModuleRemove),
    route(Post, "/nacre/v1/bindings", Access::Admin(NACRE_MODULES, Write), Handler::BindingActivate),
    route(Get, "/nacre/v1/bindings", Access::Admin(NACRE_MODULES, Read), Handler::BindingList),
    route(Post, "/nacre/v1/bindings/rollback", Access::Admin(NACRE_MODULES, Write), Handler::BindingRollback),
    route(Post, "/nacre/v1/modules/dry-run", Access::Admin(NACRE_MODULES, Write), Handler::ModuleDryRun),
    route(Get, "/nacre/v1/exec", Access::Admin(NACRE_MODULES, Write), Handler::Exec),
    route(Post, "/nacre/v1/exec", Access::Admin(NACRE_MODULES, Write), Handler::Exec),
    // Users, roles, permissions.
    route(Post, "/nacos/v1/auth/login", Access::Public, Handler::Login),
    route(Post, "/nacos/v1/auth/users/login", Access::Public, Handler::Login),
    route(Post, "/nacos/v1/auth/users/admin", Access::Public, Handler::AdminBootstrap),
    route(Get, "/nacos/v1/auth/users", Access::Admin(CONSOLE_USERS, Read), Handler::Users),
    route(Post, "/nacos/v1/auth/users", Access::Admin(CONSOLE_USERS, Write), Handler::Users),
    // Admin, or the user themself: decided by the handler.
    route(Put, "/nacos/v1/auth/users", Access::SignedIn, Handler::Users),
    route(Delete, "/nacos/v1/auth/users", Access::Admin(CONSOLE_USERS, Write), Handler::Users),
    route(Get, "/nacos/v1/auth/users/search", Access::Admin(CONSOLE_USERS, Read), Handler::UserSearch),
    route(Get, "/nacos/v1/auth/roles", Access::Admin(CONSOLE_ROLES, Read), Handler::Roles),
    route(Post, "/nacos/v1/auth/roles", Access::Admin(CONSOLE_ROLES, Write), Handler::Roles),
    route(Delete, "/nacos/v1/auth/roles", Access::Admin(CONSOLE_ROLES, Write), Handler::Roles),
    route(Get, "/nacos/v1/auth/roles/search", Access::Admin(CONSOLE_ROLES, Read), Handler::RoleSearch),
    route(Get, "/nacos/v1/auth/permissions", Access::Admin(CONSOLE_PERMISSIONS, Read), Handler::Permissions),
    route(Post, "/nacos/v1/auth/permissions", Access::Admin(CONSOLE_PERMISSIONS, Write), Handler::Permissions),
    route(Delete, "/nacos/v1/auth/permissions", Access::Admin(CONSOLE_PERMISSIONS, Write), Handler::Permissions),
];

/// The route of `method` and `path`: the path exactly as the table has it, less trailing
/// slashes (Nacos's clients send some with one). Anything else, `//`, an encoded `/`, a `..`,
/// a `;jsessionid=`, another case, is no route.
pub fn find(method: &HttpMethod, path: &str) -> Option<&'static Route> {
    let verb = Verb::of(method)?;
    let trimmed = path.trim_end_matches('/');
    // `/` itself is a route (to the console); every other path is matched without its trailing `/`.
    let path = if trimmed.is_empty() { "/" } else { trimmed };
    ROUTES.iter().find(|route| route.verb == verb && route.path == path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn each_method_and_path_has_one_route() {
        let mut seen = BTreeSet::new();
        for route in ROUTES {
            assert!(
                seen.insert((format!("{:?}", route.verb), route.path)),
                "two routes for {:?} {}",
                route.verb,
                route.path
            );
            assert!(route.path == "/" || (route.path.starts_with('/') && !route.path.ends_with('/')), "{}", route.path);
        }
    }

    /// Public: the probes, the server state, login, the first administrator, and the console's
    /// own files (which hold no data: the pages sign in and call the API like any client).
    #[test]
    fn only_probes_state_login_bootstrap_and_console_files_are_public() {
        let console = |route: &&Route| matches!(route.handler, Handler::ConsoleFile | Handler::ConsoleRedirect);
        let public: BTreeSet<&str> = ROUTES
            .iter()
            .filter(|route| route.access == Access::Public && !console(route))
            .map(|route| route.path)
            .collect();
        assert!(ROUTES.iter().filter(console).all(|route| route.access == Access::Public && route.verb == Verb::Get));
        let expected = BTreeSet::from([
            "/nacos/v1/console/health/liveness",
            "/nacos/v1/console/health/readiness",
            "/nacos/v1/console/server/state",
            "/nacos/v1/auth/login",
            "/nacos/v1/auth/users/login",
            "/nacos/v1/auth/users/admin",
        ]);
        assert_eq!(public, expected);
    }

    #[test]
    fn administration_needs_an_admin_resource() {
        for route in
            ROUTES.iter().filter(|route| route.path.starts_with("/nacre/v1/") && !route.path.contains("config"))
        {
            assert!(matches!(route.access, Access::Admin(..)), "{} {:?}", route.path, route.access);
        }
    }

    #[test]
    fn path_variants_find_no_route() {
        assert!(find(&HttpMethod::GET, "/nacos/v1/cs/configs/").is_some(), "a trailing slash is the same route");
        for variant in [
            "//nacos/v1/cs/configs",
            "/nacos/v1//cs/configs",
            "/nacos/v1/cs%2Fconfigs",
            "/nacos/v1/cs/../cs/configs",
            "/nacos/v1/cs/configs;jsessionid=1",
            "/NACOS/v1/cs/configs",
            "/nacos/v1/cs/Configs",
        ] {
            assert!(find(&HttpMethod::GET, variant).is_none(), "{variant}");
        }
        assert!(find(&HttpMethod::OPTIONS, "/nacos/v1/cs/configs").is_none());
        assert!(find(&HttpMethod::GET, "/nacos/v3/auth/user/login").is_none(), "Java 3.x falls back to v1 on 404");
    }
}
