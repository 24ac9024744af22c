//! The built-in config module: Nacos v1 config semantics as a Nacre guest.
//!
//! Operations (`GuestRequest.op`) and their parameters (`tenant` has already become the
//! namespace the host scoped the store to):
//! - `config.publish` (command): `dataId`, `group`, `content`; optional `type`, `appName`,
//!   `desc`, `config_tags`, `src_user`, `casMd5` (compare-and-set: 409 when the existing
//!   content's md5 differs), `betaIps` (publish a beta variant served to those IPs only; the
//!   stable content is untouched). Reply `true`.
//! - `config.delete` (command): `dataId`, `group`; with `beta=true` stops the beta (reply a
//!   `RestResult`). Reply `true`, also when nothing was there.
//! - `config.rollback` (command): `dataId`, `group`, `nid`: republish history entry `nid`.
//! - `config.promoteBeta` (command): `dataId`, `group`: the beta becomes the stable content.
//! - `config.get` (query): `dataId`, `group`. Reply: the raw content the caller's IP is
//!   served, headers `Content-MD5`, `Config-Type`, `Content-Type` (and `isBeta: true`); 404
//!   `config data not exist`. With `show=all`: `ConfigAllInfo` JSON; with `beta=true`: the
//!   beta as `RestResult`; with `search=accurate|blur`: a page of configs (see [`search`]).
//! - `config.md5` (query): `dataId`, `group`. Reply: the served content's md5; 404 as get.
//! - `config.listen` (query): `probes` (see [`listen`]): which probes are out of date, and a
//!   `Nacre-Watch` directive naming the keys whose change makes that answer stale.
//! - `config.history` (query): `nid`, or `dataId` + `group` + `pageNo`/`pageSize`;
//!   `config.historyPrevious` (query): `id`. See [`history`].
//! - `config.count` (query): the number of configs in the namespace.
//!
//! Every change of what some client is served emits an event on topic `config` whose key is
//! the Nacos group key (see [`group_key`]). Every change of stable content is a history entry,
//! kept [`history::RETENTION_MS`] of leader time. The key layout is in [`keys`]. `tag`
//! (tag variants) is refused with 501.

pub mod beta;
pub mod configs;
pub mod group_key;
pub mod history;
pub mod keys;
pub mod listen;
pub mod paging;
pub mod record;
pub mod search;
pub mod validate;
pub mod views;

use nacre_guest_sdk::{
    Command, GuestError, GuestReply, GuestRequest, ModuleInfo, ModuleKind, QueryContext, RequestExt, StateMachine,
};

/// Version of the layout of this module's keys and values (see [`keys`]).
pub const SCHEMA_VERSION: u32 = 1;

pub const PUBLISH: &str = "config.publish";
pub const DELETE: &str = "config.delete";
pub const GET: &str = "config.get";
pub const MD5: &str = "config.md5";
pub const ROLLBACK: &str = "config.rollback";
pub const PROMOTE_BETA: &str = "config.promoteBeta";
pub const LISTEN: &str = "config.listen";
pub const HISTORY: &str = "config.history";
pub const HISTORY_PREVIOUS: &str = "config.historyPrevious";
pub const COUNT: &str = "config.count";

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
            ROLLBACK => history::rollback(cmd, &req),
            PROMOTE_BETA => beta::promote(cmd, &req),
            op => Err(GuestError::unknown_op(op)),
        }
    }

    fn query(ctx: &QueryContext, req: GuestRequest) -> Result<GuestReply, GuestError> {
        match req.op.as_str() {
            // One Nacos path, several reads: the parameters choose, as in `ConfigController`.
            GET if req.optional("search").is_some() => search::search(ctx, &req),
            GET if req.bool_or("beta", false)? => beta::query(ctx, &req),
            GET => configs::get(ctx, &req),
            MD5 => configs::md5(&req),
            LISTEN => listen::listen(ctx, &req),
            HISTORY => history::query(ctx, &req),
            HISTORY_PREVIOUS => history::previous(ctx, &req),
            COUNT => search::count(),
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
mod feature_tests;
#[cfg(test)]
mod tests;
