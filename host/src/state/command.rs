//! The entry language: what one committed log entry asks the state machine to do, and what
//! applying it produced. Defined here, below the Raft layer, which carries entries without
//! looking inside them (`raft::types` wraps these in openraft's entry type).

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

use super::auth::AuthChange;
use super::namespaces::NamespaceChange;
use crate::auth::password;
use crate::auth::permission::GRANT_ACTIONS;
use crate::runtime::GuestError;
use crate::runtime::ModuleId;
use crate::runtime::ModuleKind;

/// One log entry's application payload: what to do, stamped with the leader's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposing leader's wall clock. The state machine never lets the time a guest sees
    /// go backwards (a new leader's clock may lag the old one's), see `state::Machine`.
    pub timestamp_ms: u64,
    pub op: Operation,
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.op, self.timestamp_ms)
    }
}

/// What an entry asks the replicated state machine to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// A command for the module bound to `(namespace, kind)`; the bytes are the guest's.
    Guest {
        namespace: String,
        kind: ModuleKind,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Store a module's bytes, content-addressed. Idempotent.
    InstallModule {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Bind `(namespace, kind)` to an installed module from this entry's index on.
    Activate { namespace: String, kind: ModuleKind, module_id: ModuleId, by: String },
    /// Install the built-in modules and bind them as the cluster-wide default, if no default
    /// binding exists yet. Proposed by every new leader; only the first one takes effect.
    Bootstrap {
        #[serde(with = "serde_bytes")]
        naming: Vec<u8>,
        #[serde(with = "serde_bytes")]
        config: Vec<u8>,
    },
    /// Create, update or delete a namespace record.
    Namespace(NamespaceChange),
    /// Change the users, roles, grants, or bootstrap the first admin and the token signing
    /// key.
    Auth(AuthChange),
    /// Remove an installed module that no binding in force uses (its bytes, and on each node
    /// its compiled form). Last: entries are postcard, which numbers variants by position, so
    /// new variants go at the end.
    RemoveModule { module_id: ModuleId },
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Guest { namespace, kind, payload } => {
                write!(f, "guest({namespace}, {kind:?}, {} bytes)", payload.len())
            }
            Operation::InstallModule { bytes } => write!(f, "install({} bytes)", bytes.len()),
            Operation::Activate { namespace, kind, module_id, .. } => {
                write!(f, "activate({namespace}, {kind:?}, {module_id})")
            }
            Operation::Namespace(change) => write!(f, "namespace({change:?})"),
            Operation::Bootstrap { .. } => write!(f, "bootstrap"),
            Operation::Auth(change) => write!(f, "auth({change})"),
            Operation::RemoveModule { module_id } => write!(f, "remove module {module_id}"),
        }
    }
}

/// What applying one entry produced, and which module produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// The module that produced `result`; `None` for entries the host applies itself.
    pub module_id: Option<ModuleId>,
    pub result: Result<Vec<u8>, GuestError>,
}

impl ApplyResponse {
    pub fn host(result: Result<Vec<u8>, GuestError>) -> Self {
        Self { module_id: None, result }
    }
}

// --- Validation --------------------------------------------------------------------------------
//
// Checked where an operation is proposed (the client API, and the leader for a write a follower
// forwarded: a peer message is not trusted to have passed the client API) and again where it
// is applied, so that an entry that should never have been proposed changes nothing on any
// replica and answers with the same refusal everywhere.

/// Bytes of a namespace id (Nacos: `^[\w-]+$`, at most 128).
pub const MAX_NAMESPACE_ID_BYTES: usize = 128;
/// Characters of a namespace's display name.
pub const MAX_NAMESPACE_NAME_CHARS: usize = 128;
/// Characters of a namespace's description.
pub const MAX_NAMESPACE_DESC_CHARS: usize = 256;
/// Bytes of a guest command's payload: a request of the client API's largest body, with every
/// byte escaped in the JSON envelope, fits.
pub const MAX_GUEST_PAYLOAD_BYTES: usize = 32 << 20;
/// Bytes of who asked for a binding change.
pub const MAX_ACTIVATED_BY_BYTES: usize = 256;
/// A module id: the hex sha256 of its bytes.
const MODULE_ID_HEX_CHARS: usize = 64;
/// The first bytes of every WebAssembly binary, component or core module.
const WASM_MAGIC: &[u8] = b"\0asm";

/// Why an operation may not be proposed or applied. The message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("invalid {field}: {reason}")]
pub struct InvalidOperation {
    pub field: String,
    pub reason: String,
}

impl InvalidOperation {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self { field: field.to_string(), reason: reason.into() }
    }

    /// The deterministic refusal an apply records for it.
    pub fn refusal(&self) -> GuestError {
        GuestError { code: 400, message: self.to_string() }
    }
}

impl Operation {
    /// Whether this operation is well-formed: namespace ids, module bytes and sizes, the
    /// lengths of every free-text field.
    pub fn validate(&self) -> Result<(), InvalidOperation> {
        match self {
            Operation::Guest { namespace, payload, .. } => {
                namespace_id(namespace, "namespace")?;
                if payload.len() > MAX_GUEST_PAYLOAD_BYTES {
                    return Err(InvalidOperation::new(
                        "payload",
                        format!("{} bytes, over the limit of {MAX_GUEST_PAYLOAD_BYTES}", payload.len()),
                    ));
                }
                Ok(())
            }
            Operation::InstallModule { bytes } => module_bytes(bytes, "module"),
            Operation::Activate { namespace, module_id, by, .. } => {
                if namespace != super::DEFAULT_NAMESPACE {
                    namespace_id(namespace, "namespace")?;
                }
                module_id_text(module_id)?;
                if by.len() > MAX_ACTIVATED_BY_BYTES {
                    return Err(InvalidOperation::new("by", format!("longer than {MAX_ACTIVATED_BY_BYTES} bytes")));
                }
                Ok(())
            }
            Operation::Bootstrap { naming, config } => {
                module_bytes(naming, "naming module")?;
                module_bytes(config, "config module")
            }
            Operation::Namespace(change) => change.validate(),
            Operation::Auth(change) => change.validate(),
            Operation::RemoveModule { module_id } => module_id_text(module_id),
        }
    }
}

/// A module id as every module is known: the 64 hex digits of its sha256.
fn module_id_text(module_id: &str) -> Result<(), InvalidOperation> {
    if module_id.len() != MODULE_ID_HEX_CHARS || !module_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InvalidOperation::new("module", "a module id is 64 hex digits (its sha256)"));
    }
    Ok(())
}

impl NamespaceChange {
    /// A user namespace's id (never `public` or the default binding's `*`), name and description.
    pub fn validate(&self) -> Result<(), InvalidOperation> {
        let (id, text) = match self {
            NamespaceChange::Create { id, name, desc } | NamespaceChange::Update { id, name, desc } => {
                (id, Some((name, desc)))
            }
            NamespaceChange::Delete { id } => (id, None),
        };
        namespace_id(id, "namespace")?;
        if id == super::PUBLIC_NAMESPACE {
            return Err(InvalidOperation::new("namespace", "public is the built-in namespace"));
        }
        if let Some((name, desc)) = text {
            if name.trim().is_empty() {
                return Err(InvalidOperation::new("namespace name", "must not be empty"));
            }
            if name.chars().count() > MAX_NAMESPACE_NAME_CHARS {
                return Err(InvalidOperation::new(
                    "namespace name",
                    format!("longer than {MAX_NAMESPACE_NAME_CHARS} characters"),
                ));
            }
            if desc.chars().count() > MAX_NAMESPACE_DESC_CHARS {
                return Err(InvalidOperation::new(
                    "namespace description",
                    format!("longer than {MAX_NAMESPACE_DESC_CHARS} characters"),
                ));
            }
        }
        Ok(())
    }
}

/// Characters of a username: letters, digits, `_`, `-`, `.` and `@` (what Nacos's console
/// accepts), so ASCII: characters are bytes.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Characters of a role name, of the same alphabet as usernames.
pub const MAX_ROLE_CHARS: usize = 64;
/// Bytes of a grant's resource pattern (`<namespace>:<group>:<type>/<name>` with wildcards).
pub const MAX_RESOURCE_BYTES: usize = 512;

impl AuthChange {
    /// Names of the auth alphabet and bounded lengths, grant resources without control
    /// characters, actions `r`, `w` or `rw`, password hashes that are bounded Argon2id PHC
    /// strings (never a password), and a signing key that is not all zeros.
    pub fn validate(&self) -> Result<(), InvalidOperation> {
        match self {
            AuthChange::CreateUser { username, password_hash }
            | AuthChange::SetPassword { username, password_hash } => {
                auth_name(username, "username", MAX_USERNAME_CHARS)?;
                password_hash_of(password_hash)
            }
            AuthChange::DeleteUser { username } => auth_name(username, "username", MAX_USERNAME_CHARS),
            AuthChange::GrantRole { role, username } => {
                auth_name(role, "role", MAX_ROLE_CHARS)?;
                auth_name(username, "username", MAX_USERNAME_CHARS)
            }
            AuthChange::RevokeRole { role, username } => {
                auth_name(role, "role", MAX_ROLE_CHARS)?;
                username.as_deref().map_or(Ok(()), |username| auth_name(username, "username", MAX_USERNAME_CHARS))
            }
            AuthChange::AddPermission { role, resource, action }
            | AuthChange::RemovePermission { role, resource, action } => {
                auth_name(role, "role", MAX_ROLE_CHARS)?;
                grant_resource(resource)?;
                if !GRANT_ACTIONS.contains(&action.as_str()) {
                    return Err(InvalidOperation::new("action", "must be r, w or rw"));
                }
                Ok(())
            }
            AuthChange::Bootstrap { username, password_hash, signing_key } => {
                auth_name(username, "username", MAX_USERNAME_CHARS)?;
                password_hash_of(password_hash)?;
                if signing_key.iter().all(|b| *b == 0) {
                    return Err(InvalidOperation::new("signing key", "all zeros; it must be random"));
                }
                Ok(())
            }
        }
    }
}

/// A username or role name: 1 to `max_chars` of ASCII letters, digits, `_`, `-`, `.` and
/// `@`. Names become parts of keys, so no separator gets in.
fn auth_name(name: &str, field: &'static str, max_chars: usize) -> Result<(), InvalidOperation> {
    if name.is_empty() {
        return Err(InvalidOperation::new(field, "must not be empty"));
    }
    if name.len() > max_chars {
        return Err(InvalidOperation::new(field, format!("longer than {max_chars} characters")));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@')) {
        return Err(InvalidOperation::new(field, "may only contain letters, digits, '_', '-', '.' and '@'"));
    }
    Ok(())
}

fn grant_resource(resource: &str) -> Result<(), InvalidOperation> {
    if resource.is_empty() {
        return Err(InvalidOperation::new("resource", "must not be empty"));
    }
    if resource.len() > MAX_RESOURCE_BYTES {
        return Err(InvalidOperation::new("resource", format!("longer than {MAX_RESOURCE_BYTES} bytes")));
    }
    if resource.chars().any(char::is_control) {
        return Err(InvalidOperation::new("resource", "must not contain control characters"));
    }
    Ok(())
}

fn password_hash_of(phc: &str) -> Result<(), InvalidOperation> {
    let limit = password::MAX_PASSWORD_HASH_BYTES;
    if phc.len() > limit {
        return Err(InvalidOperation::new("password hash", format!("longer than {limit} bytes")));
    }
    if !password::is_hash(phc) {
        return Err(InvalidOperation::new("password hash", "not an Argon2id PHC string with bounded parameters"));
    }
    Ok(())
}

/// A namespace id: 1 to [`MAX_NAMESPACE_ID_BYTES`] of ASCII letters, digits, `_` and `-`
/// (Nacos's rule). Ids become parts of keys, so no separator or path character gets in.
pub fn namespace_id(id: &str, field: &'static str) -> Result<(), InvalidOperation> {
    if id.is_empty() {
        return Err(InvalidOperation::new(field, "must not be empty"));
    }
    if id.len() > MAX_NAMESPACE_ID_BYTES {
        return Err(InvalidOperation::new(field, format!("longer than {MAX_NAMESPACE_ID_BYTES} characters")));
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(InvalidOperation::new(field, "may only contain letters, digits, '_' and '-'"));
    }
    Ok(())
}

fn module_bytes(bytes: &[u8], field: &'static str) -> Result<(), InvalidOperation> {
    let limit = crate::runtime::limits::MAX_MODULE_BYTES;
    if bytes.len() > limit {
        return Err(InvalidOperation::new(field, format!("{} bytes, over the limit of {limit}", bytes.len())));
    }
    if !bytes.starts_with(WASM_MAGIC) {
        return Err(InvalidOperation::new(field, "not a WebAssembly binary"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(namespace: &str) -> Operation {
        Operation::Guest { namespace: namespace.into(), kind: ModuleKind::Config, payload: b"{}".to_vec() }
    }

    #[test]
    fn namespace_ids_follow_the_nacos_rule_wherever_they_appear() {
        assert!(guest("public").validate().is_ok());
        assert!(guest("dev_1-a").validate().is_ok());
        for bad in ["", "../evil\0x", "a b", "a/b", &"x".repeat(MAX_NAMESPACE_ID_BYTES + 1)] {
            let error = guest(bad).validate().unwrap_err();
            assert_eq!(error.field, "namespace", "{bad:?}");
        }
        let create = |id: &str| NamespaceChange::Create { id: id.into(), name: "n".into(), desc: String::new() };
        assert!(Operation::Namespace(create("dev")).validate().is_ok());
        for bad in ["public", "*", "../evil\0x", ""] {
            assert!(Operation::Namespace(create(bad)).validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn auth_entries_are_bounded_and_name_their_field() {
        let phc = crate::auth::password::hash("pw").unwrap();
        let create = |username: &str, hash: &str| {
            Operation::Auth(AuthChange::CreateUser { username: username.into(), password_hash: hash.into() })
        };
        for good in ["alice", "a.b@example.com", "svc_1-x", &"u".repeat(MAX_USERNAME_CHARS)] {
            assert!(create(good, &phc).validate().is_ok(), "{good:?}");
        }
        for bad in ["", "a b", "a/b", "a:b", "a\0b", "名字", &"u".repeat(MAX_USERNAME_CHARS + 1)] {
            assert_eq!(create(bad, &phc).validate().unwrap_err().field, "username", "{bad:?}");
        }
        let long_hash = "$".repeat(crate::auth::password::MAX_PASSWORD_HASH_BYTES + 1);
        for bad in ["", "plaintext", long_hash.as_str()] {
            assert_eq!(create("alice", bad).validate().unwrap_err().field, "password hash", "{bad:?}");
        }
        let grant = |role: &str, resource: &str, action: &str| {
            Operation::Auth(AuthChange::AddPermission {
                role: role.into(),
                resource: resource.into(),
                action: action.into(),
            })
        };
        assert!(grant("dev", "dev:*:*", "rw").validate().is_ok());
        assert!(grant("dev", &"x".repeat(MAX_RESOURCE_BYTES), "r").validate().is_ok());
        assert_eq!(grant("d v", "dev:*:*", "r").validate().unwrap_err().field, "role");
        assert_eq!(grant(&"r".repeat(MAX_ROLE_CHARS + 1), "*", "r").validate().unwrap_err().field, "role");
        for bad in ["", "a\nb", &"x".repeat(MAX_RESOURCE_BYTES + 1)] {
            assert_eq!(grant("dev", bad, "r").validate().unwrap_err().field, "resource", "{bad:?}");
        }
        for bad in ["", "wr", "x", "rwx", "R"] {
            assert_eq!(grant("dev", "*", bad).validate().unwrap_err().field, "action", "{bad:?}");
        }
        let revoke = |username: Option<&str>| {
            Operation::Auth(AuthChange::RevokeRole { role: "dev".into(), username: username.map(str::to_string) })
        };
        assert!(revoke(None).validate().is_ok() && revoke(Some("alice")).validate().is_ok());
        assert_eq!(revoke(Some("")).validate().unwrap_err().field, "username");
        let bootstrap = |signing_key| {
            Operation::Auth(AuthChange::Bootstrap { username: "nacos".into(), password_hash: phc.clone(), signing_key })
        };
        assert!(bootstrap([1; 32]).validate().is_ok());
        assert_eq!(bootstrap([0; 32]).validate().unwrap_err().field, "signing key");
        // An entry prints without its hash or key.
        let printed = format!("{} {:?}", bootstrap([1; 32]), bootstrap([1; 32]));
        assert!(!printed.contains("argon2") && !printed.contains("1, 1"), "{printed}");
    }

    #[test]
    fn modules_are_bounded_wasm_and_bound_by_a_sha256() {
        let wasm = |len: usize| [WASM_MAGIC, &vec![0; len]].concat();
        assert!(Operation::InstallModule { bytes: wasm(100) }.validate().is_ok());
        let huge = Operation::InstallModule { bytes: wasm(crate::runtime::limits::MAX_MODULE_BYTES) };
        assert_eq!(huge.validate().unwrap_err().field, "module");
        assert!(Operation::InstallModule { bytes: b"hello".to_vec() }.validate().is_err());
        let activate = |namespace: &str, module_id: String| Operation::Activate {
            namespace: namespace.into(),
            kind: ModuleKind::Naming,
            module_id,
            by: "test".into(),
        };
        assert!(activate("*", "a".repeat(64)).validate().is_ok());
        assert!(activate("dev", "a".repeat(64)).validate().is_ok());
        assert!(activate("dev", "a".repeat(63)).validate().is_err());
        assert!(activate("dev", "g".repeat(64)).validate().is_err());
        assert!(activate("d\0v", "a".repeat(64)).validate().is_err());
    }
}
