//! The replicated state machine core: no I/O, no Raft, no HTTP.
//!
//! [`Machine`] applies committed entries in log order: host operations (module install,
//! binding changes) itself, guest commands through the module bound to their
//! `(namespace, kind)`. The same entries give the same [`Kv`] digest on every replica.
//!
//! Architecture Invariant: `Machine` is a pure function of the entries it has applied (and of
//! the module bytes they carry). It reads no clock: time is the leader stamp in each entry,
//! clamped so it never goes backwards.

mod auth;
mod command;
pub mod dry_run;
mod image;
mod keys;
mod kv;
mod machine;
mod namespaces;
mod split_view;

pub use auth::AuthChange;
pub use auth::BootstrapRecord;
pub use auth::MAX_PAGE_ITEMS;
pub use auth::MAX_SEARCH_RESULTS;
pub use auth::Page;
pub use auth::PermissionRecord;
pub use auth::RoleBinding;
pub use auth::UserRecord;
pub use auth::UserSummary;
pub use command::ApplyResponse;
pub use command::InvalidOperation;
pub use command::MAX_GUEST_PAYLOAD_BYTES;
pub use command::MAX_NAMESPACE_DESC_CHARS;
pub use command::MAX_NAMESPACE_ID_BYTES;
pub use command::MAX_NAMESPACE_NAME_CHARS;
pub use command::MAX_RESOURCE_BYTES;
pub use command::MAX_ROLE_CHARS;
pub use command::MAX_USERNAME_CHARS;
pub use command::Operation;
pub use command::Proposal;
pub use command::namespace_id;
pub use image::ImageRef;
pub use image::MachineImage;
pub use keys::DEFAULT_NAMESPACE;
pub use keys::PUBLIC_NAMESPACE;
pub use keys::kind_tag;
pub use kv::Kv;
pub use machine::Binding;
pub use machine::BindingChange;
pub use machine::ChangeEvent;
pub use machine::EntryRef;
pub use machine::Machine;
pub use namespaces::NamespaceChange;
pub use namespaces::NamespaceRecord;
pub use split_view::SplitView;
