//! Users, role bindings and grants as platform records (`s/auth/...`), with the token signing
//! key and the record of the admin bootstrap: the same on every replica and in every snapshot,
//! so a token issued by one node is good on all of them and across restarts.
//!
//! Changed only through committed entries, and applying one is a pure function of the entry:
//! whatever is random (a password's salt, the signing key) or secret (the password itself,
//! which never enters the log) is made by the proposer and carried as the hash or the key.
//! The refusals are Nacos's (`RoleController`, `UserController`, `NacosRoleServiceImpl`), with
//! 409/404 where a user exists or does not.
//!
//! A user's `epoch` is the index of the entry that last set their credential (creation,
//! password change): it only grows, also across a deletion and re-creation of the same name,
//! so a token or cached credential carrying an older one is refused (`auth::token`).

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

use super::keys;
use super::kv::Kv;
use crate::auth::permission::Grant;
use crate::auth::permission::ROLE_ADMIN;
use crate::auth::permission::RoleGrants;
use crate::auth::token::SIGNING_KEY_BYTES;
use crate::runtime::GuestError;

/// Items of one page of a listing, at most (a larger `pageSize` is clamped).
pub const MAX_PAGE_ITEMS: usize = 500;
/// Names a search answers, at most.
pub const MAX_SEARCH_RESULTS: usize = 100;

/// A change to the users, roles and grants.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthChange {
    /// Refused (409) when the user exists.
    CreateUser {
        username: String,
        password_hash: String,
    },
    /// Refused (404) when the user does not exist. Moves the user's epoch: every token and
    /// cached credential of the old password stops working.
    SetPassword {
        username: String,
        password_hash: String,
    },
    /// Refused (404) when the user does not exist, (400) for a ROLE_ADMIN holder. Removes the
    /// user's role bindings too.
    DeleteUser {
        username: String,
    },
    /// Refused (400, as Nacos) for a user that does not exist, for ROLE_ADMIN, and for a
    /// binding that exists.
    GrantRole {
        role: String,
        username: String,
    },
    /// The binding of `role` to `username`, or without a username every binding of `role`.
    /// Refused (400) for ROLE_ADMIN, so an administrator always exists once bootstrapped.
    /// Grants to the role are kept (as Nacos keeps them).
    RevokeRole {
        role: String,
        username: Option<String>,
    },
    /// Refused (400) when no user holds `role` (a role exists by its bindings), (409) when
    /// the grant exists.
    AddPermission {
        role: String,
        resource: String,
        action: String,
    },
    RemovePermission {
        role: String,
        resource: String,
        action: String,
    },
    /// The first administrator and the token signing key, taken only while no ROLE_ADMIN
    /// holder exists and no bootstrap happened; else refused (409). The first committed claim
    /// wins on every replica, and afterwards every node's bootstrap token is void.
    Bootstrap {
        username: String,
        password_hash: String,
        signing_key: [u8; SIGNING_KEY_BYTES],
    },
}

/// Entries are printed (logs, debugging) without their hashes or keys.
impl fmt::Debug for AuthChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthChange({self})")
    }
}

impl fmt::Display for AuthChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthChange::CreateUser { username, .. } => write!(f, "create user {username}"),
            AuthChange::SetPassword { username, .. } => write!(f, "set password of {username}"),
            AuthChange::DeleteUser { username } => write!(f, "delete user {username}"),
            AuthChange::GrantRole { role, username } => write!(f, "grant role {role} to {username}"),
            AuthChange::RevokeRole { role, username: Some(username) } => {
                write!(f, "revoke role {role} from {username}")
            }
            AuthChange::RevokeRole { role, username: None } => write!(f, "revoke role {role} from everyone"),
            AuthChange::AddPermission { role, resource, action } => {
                write!(f, "grant {action} on {resource} to role {role}")
            }
            AuthChange::RemovePermission { role, resource, action } => {
                write!(f, "remove {action} on {resource} from role {role}")
            }
            AuthChange::Bootstrap { username, .. } => write!(f, "bootstrap admin {username}"),
        }
    }
}

/// A user as stored. Only [`crate::auth::password`] reads the hash; listings use
/// [`UserSummary`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    /// Argon2id PHC string; never the password.
    pub password_hash: String,
    /// The index of the entry that last set the credential.
    pub epoch: u64,
    pub created_ms: u64,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("epoch", &self.epoch)
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

/// A user as listed: no hash ever leaves the server (Nacos 2.x lists bcrypt hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleBinding {
    pub role: String,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionRecord {
    pub role: String,
    pub resource: String,
    pub action: String,
}

/// That the admin bootstrap happened, by whom and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapRecord {
    pub username: String,
    pub index: u64,
    pub timestamp_ms: u64,
}

/// One page of a listing, in Nacos's shape (`totalCount`, `pageNumber`, `pagesAvailable`,
/// `pageItems`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub total_count: usize,
    pub page_number: usize,
    pub pages_available: usize,
    pub page_items: Vec<T>,
}

pub fn apply(kv: &mut Kv, change: &AuthChange, index: u64, timestamp_ms: u64) -> Result<Vec<u8>, GuestError> {
    let refuse = |code, message: String| Err(GuestError { code, message });
    let message = match change {
        AuthChange::CreateUser { username, password_hash } => {
            if user(kv, username).is_some() {
                return refuse(409, format!("user '{username}' already exist!"));
            }
            put_json(kv, keys::auth_user(username), &new_user(username, password_hash, index, timestamp_ms));
            "create user ok!".to_string()
        }
        AuthChange::SetPassword { username, password_hash } => {
            let Some(record) = user(kv, username) else { return refuse(404, not_found(username)) };
            // Entry indexes grow, but a machine applied out of the usual order (a test) must
            // still never move an epoch back.
            let epoch = index.max(record.epoch + 1);
            put_json(
                kv,
                keys::auth_user(username),
                &UserRecord { password_hash: password_hash.clone(), epoch, ..record },
            );
            "update user ok!".to_string()
        }
        AuthChange::DeleteUser { username } => {
            if user(kv, username).is_none() {
                return refuse(404, not_found(username));
            }
            let roles = roles_of(kv, username);
            if roles.iter().any(|role| role == ROLE_ADMIN) {
                return refuse(400, format!("cannot delete admin: {username}"));
            }
            for role in &roles {
                unbind(kv, role, username);
            }
            kv.delete(&keys::auth_user(username));
            "delete user ok!".to_string()
        }
        AuthChange::GrantRole { role, username } => {
            if user(kv, username).is_none() {
                return refuse(400, format!("user '{username}' not found!"));
            }
            if role == ROLE_ADMIN {
                return refuse(400, format!("role '{ROLE_ADMIN}' is not permitted to create!"));
            }
            if kv.get(&keys::auth_role_binding(role, username)).is_some() {
                return refuse(400, format!("user '{username}' already bound to the role '{role}'!"));
            }
            bind(kv, role, username);
            "add role ok!".to_string()
        }
        AuthChange::RevokeRole { role, username } => {
            if role == ROLE_ADMIN {
                return refuse(400, format!("role '{ROLE_ADMIN}' is not permitted to delete!"));
            }
            let usernames = match username {
                Some(username) => vec![username.clone()],
                None => holders(kv, role),
            };
            for username in &usernames {
                unbind(kv, role, username);
            }
            match username {
                Some(username) => format!("delete role of user {username} ok!"),
                None => format!("delete role {role} ok!"),
            }
        }
        AuthChange::AddPermission { role, resource, action } => {
            if !role_exists(kv, role) {
                return refuse(400, format!("role {role} not found!"));
            }
            let key = keys::auth_permission(role, resource, action);
            if kv.get(&key).is_some() {
                return refuse(409, format!("permission ({role}, {resource}, {action}) already exist!"));
            }
            let record = PermissionRecord { role: role.clone(), resource: resource.clone(), action: action.clone() };
            put_json(kv, key, &record);
            "add permission ok!".to_string()
        }
        AuthChange::RemovePermission { role, resource, action } => {
            kv.delete(&keys::auth_permission(role, resource, action));
            "delete permission ok!".to_string()
        }
        AuthChange::Bootstrap { username, password_hash, signing_key } => {
            if bootstrapped(kv) || role_exists(kv, ROLE_ADMIN) {
                return refuse(409, "have admin user cannot use it".to_string());
            }
            if user(kv, username).is_some() {
                return refuse(409, format!("user '{username}' already exist!"));
            }
            put_json(kv, keys::auth_user(username), &new_user(username, password_hash, index, timestamp_ms));
            bind(kv, ROLE_ADMIN, username);
            kv.put(keys::AUTH_SIGNING_KEY.to_vec(), signing_key.to_vec());
            let record = BootstrapRecord { username: username.clone(), index, timestamp_ms };
            put_json(kv, keys::AUTH_BOOTSTRAP.to_vec(), &record);
            "create admin user ok!".to_string()
        }
    };
    Ok(message.into_bytes())
}

fn new_user(username: &str, password_hash: &str, index: u64, timestamp_ms: u64) -> UserRecord {
    UserRecord {
        username: username.to_string(),
        password_hash: password_hash.to_string(),
        epoch: index,
        created_ms: timestamp_ms,
    }
}

fn not_found(username: &str) -> String {
    format!("user '{username}' not found!")
}

/// A binding is two keys, one found from the role and one from the user; they are written
/// and removed together.
fn bind(kv: &mut Kv, role: &str, username: &str) {
    let binding = RoleBinding { role: role.to_string(), username: username.to_string() };
    put_json(kv, keys::auth_role_binding(role, username), &binding);
    kv.put(keys::auth_user_role(username, role), Vec::new());
}

fn unbind(kv: &mut Kv, role: &str, username: &str) {
    kv.delete(&keys::auth_role_binding(role, username));
    kv.delete(&keys::auth_user_role(username, role));
}

fn put_json<T: Serialize>(kv: &mut Kv, key: Vec<u8>, record: &T) {
    kv.put(key, serde_json::to_vec(record).expect("plain struct serializes"));
}

fn records<'a, T: serde::de::DeserializeOwned + 'a>(kv: &'a Kv, prefix: &'a [u8]) -> impl Iterator<Item = T> + 'a {
    kv.prefixed(prefix).filter_map(|(_, raw)| serde_json::from_slice(raw).ok())
}

/// The part of each key under `prefix` up to the next `\0` (or the end): the names a prefix
/// scan passes, in order.
fn names_under<'a>(kv: &'a Kv, prefix: &'a [u8]) -> impl Iterator<Item = String> + 'a {
    kv.prefixed(prefix).map(move |(key, _)| {
        let rest = &key[prefix.len()..];
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end]).into_owned()
    })
}

/// `items` cut to page `page_no` (from 1; 0 is read as 1) of `page_size` (clamped to
/// 1..=[`MAX_PAGE_ITEMS`]), with the total.
fn page<T>(items: impl Iterator<Item = T>, page_no: usize, page_size: usize) -> Page<T> {
    let page_number = page_no.max(1);
    let page_size = page_size.clamp(1, MAX_PAGE_ITEMS);
    let skip = (page_number - 1).saturating_mul(page_size);
    let mut total_count = 0;
    let mut page_items = Vec::new();
    for item in items {
        if total_count >= skip && page_items.len() < page_size {
            page_items.push(item);
        }
        total_count += 1;
    }
    Page { total_count, page_number, pages_available: total_count.div_ceil(page_size), page_items }
}

pub fn user(kv: &Kv, username: &str) -> Option<UserRecord> {
    kv.get(&keys::auth_user(username)).and_then(|raw| serde_json::from_slice(raw).ok())
}

/// Every user, in name order, without hashes.
pub fn users(kv: &Kv) -> Vec<UserSummary> {
    names_under(kv, keys::AUTH_USER_PREFIX).map(|username| UserSummary { username }).collect()
}

pub fn users_page(kv: &Kv, page_no: usize, page_size: usize) -> Page<UserSummary> {
    page(names_under(kv, keys::AUTH_USER_PREFIX).map(|username| UserSummary { username }), page_no, page_size)
}

/// Usernames containing `fragment`, in order, at most [`MAX_SEARCH_RESULTS`].
pub fn search_usernames(kv: &Kv, fragment: &str) -> Vec<String> {
    names_under(kv, keys::AUTH_USER_PREFIX).filter(|name| name.contains(fragment)).take(MAX_SEARCH_RESULTS).collect()
}

/// The roles `username` holds, in name order.
pub fn roles_of(kv: &Kv, username: &str) -> Vec<String> {
    let prefix = keys::auth_user_role_prefix(username);
    kv.prefixed(&prefix).map(|(key, _)| String::from_utf8_lossy(&key[prefix.len()..]).into_owned()).collect()
}

/// The users holding `role`, in name order.
fn holders(kv: &Kv, role: &str) -> Vec<String> {
    let prefix = keys::auth_role_prefix(role);
    kv.prefixed(&prefix).map(|(key, _)| String::from_utf8_lossy(&key[prefix.len()..]).into_owned()).collect()
}

/// Whether anyone holds `role`: a role exists by its bindings, as in Nacos.
fn role_exists(kv: &Kv, role: &str) -> bool {
    kv.prefixed(&keys::auth_role_prefix(role)).next().is_some()
}

/// Whether a ROLE_ADMIN holder exists.
pub fn has_admin(kv: &Kv) -> bool {
    role_exists(kv, ROLE_ADMIN)
}

/// Role bindings, by role then user; only `username`'s, or `role`'s, or one, when given.
pub fn role_bindings_page(
    kv: &Kv,
    username: Option<&str>,
    role: Option<&str>,
    page_no: usize,
    page_size: usize,
) -> Page<RoleBinding> {
    match (username, role) {
        (Some(username), Some(role)) => {
            let binding =
                kv.get(&keys::auth_role_binding(role, username)).and_then(|raw| serde_json::from_slice(raw).ok());
            page(binding.into_iter(), page_no, page_size)
        }
        (None, Some(role)) => page(records(kv, &keys::auth_role_prefix(role)), page_no, page_size),
        (Some(username), None) => {
            let bindings =
                roles_of(kv, username).into_iter().map(|role| RoleBinding { role, username: username.into() });
            page(bindings, page_no, page_size)
        }
        (None, None) => page(records(kv, keys::AUTH_ROLE_PREFIX), page_no, page_size),
    }
}

/// Role names containing `fragment`, each once, in order, at most [`MAX_SEARCH_RESULTS`].
pub fn search_roles(kv: &Kv, fragment: &str) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for role in names_under(kv, keys::AUTH_ROLE_PREFIX) {
        if roles.len() == MAX_SEARCH_RESULTS {
            break;
        }
        if role.contains(fragment) && roles.last() != Some(&role) {
            roles.push(role);
        }
    }
    roles
}

/// What is granted to `role`, by resource then action.
pub fn permissions_of_role(kv: &Kv, role: &str) -> Vec<PermissionRecord> {
    records(kv, &keys::auth_permission_prefix(role)).collect()
}

/// Grants by role then resource; only `role`'s when given.
pub fn permissions_page(kv: &Kv, role: Option<&str>, page_no: usize, page_size: usize) -> Page<PermissionRecord> {
    match role {
        Some(role) => page(records(kv, &keys::auth_permission_prefix(role)), page_no, page_size),
        None => page(records(kv, keys::AUTH_PERMISSION_PREFIX), page_no, page_size),
    }
}

/// The roles `username` holds with their grants: what `auth::permission::allowed` decides on.
pub fn role_grants(kv: &Kv, username: &str) -> Vec<RoleGrants> {
    roles_of(kv, username)
        .into_iter()
        .map(|role| {
            let grants = permissions_of_role(kv, &role)
                .into_iter()
                .map(|PermissionRecord { resource, action, .. }| Grant { resource, action })
                .collect();
            RoleGrants { role, grants }
        })
        .collect()
}

/// The key tokens are signed with; `None` before the admin bootstrap.
pub fn signing_key(kv: &Kv) -> Option<[u8; SIGNING_KEY_BYTES]> {
    kv.get(keys::AUTH_SIGNING_KEY).and_then(|raw| raw.as_slice().try_into().ok())
}

/// Whether the admin bootstrap happened (bootstrap tokens are void from then on).
pub fn bootstrapped(kv: &Kv) -> bool {
    kv.get(keys::AUTH_BOOTSTRAP).is_some()
}

pub fn bootstrap_record(kv: &Kv) -> Option<BootstrapRecord> {
    kv.get(keys::AUTH_BOOTSTRAP).and_then(|raw| serde_json::from_slice(raw).ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn auth_names_the_public_namespace_as_state_does() {
        assert_eq!(crate::auth::permission::PUBLIC_NAMESPACE, crate::state::PUBLIC_NAMESPACE);
    }
}
