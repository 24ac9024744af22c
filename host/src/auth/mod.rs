//! Client authentication and authorization as pure functions: no I/O, no HTTP, no clock
//! (callers pass the time). The replicated records they work on (users and their credential
//! epochs, role bindings, grants, the token signing key) are `state::auth`'s.
//!
//! - [`password`]: Argon2id hashes (PHC strings), bounded passwords, the unknown-user dummy.
//! - [`token`]: Nacos's HS256 compact JWT with a credential epoch; `token invalid!` /
//!   `token expired!`.
//! - [`permission`]: Nacos resources and actions, glob grants, ROLE_ADMIN.
//! - [`cache`]: recently verified username/password pairs, for clients that send them on
//!   every request.
//! - [`throttle`]: failed sign-ins per address and per username at an address.

pub mod cache;
pub mod password;
pub mod permission;
pub mod throttle;
pub mod token;
