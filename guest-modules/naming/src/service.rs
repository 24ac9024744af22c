//! Services: create, remove, update (commands); get, list (reads).
//! Not implemented yet: each answers 501.

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext};

pub fn create(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}

pub fn remove(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}

pub fn update(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}

pub fn get(_ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}

pub fn list(_ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    Err(GuestError::not_implemented(&req.op))
}
