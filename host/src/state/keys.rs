//! Where each kind of replicated state lives in the one key-value map.
//!
//! ```text
//! g/<kind>/<namespace>\0<guest key>      a guest's keyspace, scoped per (kind, namespace)
//! s/module/<module id>                   installed module bytes, content-addressed
//! s/binding/<namespace>\0<kind>          the binding in force (JSON `Binding`)
//! s/binding-log/<namespace>\0<kind>\0<index, 8 bytes BE>   every binding change, in log order
//! s/namespace/<namespace>                the namespace's record (JSON `NamespaceRecord`)
//! s/clock                                the latest entry time a guest has seen (u64 BE)
//! s/auth/user/<username>                 a user (JSON `UserRecord`: password hash, credential epoch)
//! s/auth/role/<role>\0<username>         a role binding (JSON `RoleBinding`)
//! s/auth/user-role/<username>\0<role>    the same binding found from its user (empty value)
//! s/auth/permission/<role>\0<resource>\0<action>   a grant (JSON `PermissionRecord`)
//! s/auth/signing-key                     the token signing key (32 bytes)
//! s/auth/bootstrap                       the first admin's creation (JSON `BootstrapRecord`)
//! ```
//! Namespaces never contain `\0` (`state::namespace_id` allows `[A-Za-z0-9_-]` only, checked where an entry is proposed and again where it is applied), so the
//! separators are unambiguous and one namespace's prefix never covers another's. The same
//! holds for usernames and role names (`[A-Za-z0-9_.@-]`) and grant resources (no control
//! characters), checked by `Operation::validate`.

use crate::runtime::ModuleKind;
use crate::scope::Scope;

/// The namespace name a binding uses to mean "every namespace without its own binding".
pub const DEFAULT_NAMESPACE: &str = "*";
/// The namespace every API treats an empty or absent namespace as.
pub const PUBLIC_NAMESPACE: &str = "public";

pub fn kind_tag(kind: ModuleKind) -> &'static str {
    match kind {
        ModuleKind::Naming => "naming",
        ModuleKind::Config => "config",
    }
}

pub fn guest_prefix(kind: ModuleKind, namespace: &str) -> Vec<u8> {
    format!("g/{}/{namespace}\0", kind_tag(kind)).into_bytes()
}

pub fn module(module_id: &str) -> Vec<u8> {
    format!("s/module/{module_id}").into_bytes()
}

pub const MODULE_PREFIX: &[u8] = b"s/module/";

pub fn binding(scope: Scope<'_>) -> Vec<u8> {
    let Scope { namespace, kind } = scope;
    format!("s/binding/{namespace}\0{}", kind_tag(kind)).into_bytes()
}

pub const BINDING_PREFIX: &[u8] = b"s/binding/";

pub fn binding_log(scope: Scope<'_>, index: u64) -> Vec<u8> {
    let Scope { namespace, kind } = scope;
    let mut key = format!("s/binding-log/{namespace}\0{}\0", kind_tag(kind)).into_bytes();
    key.extend_from_slice(&index.to_be_bytes());
    key
}

pub const BINDING_LOG_PREFIX: &[u8] = b"s/binding-log/";

pub const CLOCK: &[u8] = b"s/clock";

pub fn namespace(id: &str) -> Vec<u8> {
    format!("s/namespace/{id}").into_bytes()
}

pub const NAMESPACE_PREFIX: &[u8] = b"s/namespace/";

pub fn auth_user(username: &str) -> Vec<u8> {
    format!("s/auth/user/{username}").into_bytes()
}

pub const AUTH_USER_PREFIX: &[u8] = b"s/auth/user/";

pub fn auth_role_binding(role: &str, username: &str) -> Vec<u8> {
    format!("s/auth/role/{role}\0{username}").into_bytes()
}

/// Every binding of `role`.
pub fn auth_role_prefix(role: &str) -> Vec<u8> {
    format!("s/auth/role/{role}\0").into_bytes()
}

pub const AUTH_ROLE_PREFIX: &[u8] = b"s/auth/role/";

pub fn auth_user_role(username: &str, role: &str) -> Vec<u8> {
    format!("s/auth/user-role/{username}\0{role}").into_bytes()
}

/// Every role binding of `username`, by role.
pub fn auth_user_role_prefix(username: &str) -> Vec<u8> {
    format!("s/auth/user-role/{username}\0").into_bytes()
}

pub fn auth_permission(role: &str, resource: &str, action: &str) -> Vec<u8> {
    format!("s/auth/permission/{role}\0{resource}\0{action}").into_bytes()
}

/// Every grant to `role`.
pub fn auth_permission_prefix(role: &str) -> Vec<u8> {
    format!("s/auth/permission/{role}\0").into_bytes()
}

pub const AUTH_PERMISSION_PREFIX: &[u8] = b"s/auth/permission/";

pub const AUTH_SIGNING_KEY: &[u8] = b"s/auth/signing-key";

pub const AUTH_BOOTSTRAP: &[u8] = b"s/auth/bootstrap";
