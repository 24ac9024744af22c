//! The built-in config module: Nacos v1 config semantics as a Nacre guest.
//!
//! Operations (`GuestRequest.op`) and their parameters:
//! - `config.publish` (command): `dataId`, `group`, `content`; optional `type`, `appName`,
//!   `desc`, `config_tags`, `src_user` (and `tenant`, which the host has already turned into
//!   the namespace), `casMd5` (compare-and-set: 409 when the existing content's md5
//!   differs). Reply `true`.
//! - `config.delete` (command): `dataId`, `group`. Reply `true`, also when nothing was there.
//! - `config.get` (query): `dataId`, `group`. Reply: the raw content, headers `Content-MD5`,
//!   `Config-Type`, `Content-Type`; 404 `config data not exist`.
//! - `config.md5` (query): `dataId`, `group`. Reply: the content's md5; 404 as `config.get`.
//!
//! `betaIps` and `tag` (beta release, tag variants) are refused with 501 until implemented.
//!
//! Every change emits an event on topic `config` whose key is the Nacos group key
//! (see [`group_key`]). The key layout is in [`keys`].

pub mod configs;
pub mod group_key;
pub mod keys;

pub mod record;
pub mod validate;

use nacre_guest_sdk::{
    Command, GuestError, GuestReply, GuestRequest, ModuleInfo, ModuleKind, QueryContext, StateMachine,
};

/// Version of the layout of this module's keys and values (see [`keys`]).
pub const SCHEMA_VERSION: u32 = 1;

pub const PUBLISH: &str = "config.publish";
pub const DELETE: &str = "config.delete";
pub const GET: &str = "config.get";
pub const MD5: &str = "config.md5";

pub struct Config;

impl StateMachine for Config {
    fn describe() -> ModuleInfo {
        ModuleInfo {
            name: "nacre-config".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: ModuleKind::Config,
            schema_version: SCHEMA_VERSION,
        }
    }

    fn apply(cmd: &Command, req: GuestRequest) -> Result<GuestReply, GuestError> {
        match req.op.as_str() {
            PUBLISH => configs::publish(cmd, &req),
            DELETE => configs::delete(cmd, &req),
            op => Err(GuestError::unknown_op(op)),
        }
    }

    fn query(_ctx: &QueryContext, req: GuestRequest) -> Result<GuestReply, GuestError> {
        match req.op.as_str() {
            GET => configs::get(&req),
            MD5 => configs::md5(&req),
            op => Err(GuestError::unknown_op(op)),
        }
    }

    /// No layout but this one is readable: a fresh namespace, or a module of the same schema.
    fn migrate(previous: Option<ModuleInfo>) -> Result<(), String> {
        nacre_guest_sdk::accept_same_schema(previous.as_ref(), SCHEMA_VERSION)
    }
}

nacre_guest_sdk::export_state_machine!(Config);

#[cfg(test)]
mod tests;
