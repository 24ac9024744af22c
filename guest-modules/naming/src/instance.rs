//! Instances: register, deregister, update, patch, heartbeat (commands); detail, list (reads).
//! Not implemented yet: each answers 501.

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext};

pub fn register(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}

pub fn deregister(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}

pub fn update(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}

pub fn patch(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}

pub fn beat(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}

pub fn detail(_ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}

pub fn list(_ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}
