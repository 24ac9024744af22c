//! Operation names (what the host's API layer puts in `GuestRequest.op`) and their dispatch.

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext};

use crate::{instance, service};

pub const REGISTER: &str = "naming.register";
pub const DEREGISTER: &str = "naming.deregister";
pub const UPDATE: &str = "naming.update";
pub const PATCH: &str = "naming.patch";
pub const BEAT: &str = "naming.beat";
pub const SERVICE_CREATE: &str = "naming.service.create";
pub const SERVICE_REMOVE: &str = "naming.service.remove";
pub const SERVICE_UPDATE: &str = "naming.service.update";

pub const DETAIL: &str = "naming.detail";
pub const LIST: &str = "naming.list";
pub const SERVICE_GET: &str = "naming.service.get";
pub const SERVICE_LIST: &str = "naming.service.list";

/// Operations that change state: they go through the log to `apply`.
pub const COMMANDS: &[&str] =
    &[REGISTER, DEREGISTER, UPDATE, PATCH, BEAT, SERVICE_CREATE, SERVICE_REMOVE, SERVICE_UPDATE];
/// Reads: answered by `query` on the local replica.
pub const QUERIES: &[&str] = &[DETAIL, LIST, SERVICE_GET, SERVICE_LIST];

pub fn apply(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    match req.op.as_str() {
        REGISTER => instance::register(cmd, req),
        DEREGISTER => instance::deregister(cmd, req),
        UPDATE => instance::update(cmd, req),
        PATCH => instance::patch(cmd, req),
        BEAT => instance::beat(cmd, req),
        SERVICE_CREATE => service::create(cmd, req),
        SERVICE_REMOVE => service::remove(cmd, req),
        SERVICE_UPDATE => service::update(cmd, req),
        op => Err(GuestError::unknown_op(op)),
    }
}

pub fn query(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    match req.op.as_str() {
        DETAIL => instance::detail(ctx, req),
        LIST => instance::list(ctx, req),
        SERVICE_GET => service::get(ctx, req),
        SERVICE_LIST => service::list(ctx, req),
        op => Err(GuestError::unknown_op(op)),
    }
}
