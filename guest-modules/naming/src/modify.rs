//! `PUT` and `PATCH /nacos/v1/ns/instance`: changes to an existing instance (commands and
//! their plan).

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, emit, store};

use crate::fields;
use crate::instance::Target;
use crate::ops::{OK, TOPIC};
use crate::plan;
use crate::record::{InstanceRecord, Metadata};

/// `PUT /nacos/v1/ns/instance`: changes the supplied fields of an existing instance. `healthy`
/// applies to persistent instances only: heartbeats own an ephemeral instance's health.
pub fn update(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    modify(req, Modify::Update)
}

/// `PATCH /nacos/v1/ns/instance`: like update, `healthy` included whatever the kind (Nacos).
pub fn patch(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    modify(req, Modify::Patch)
}

/// Which of the two changes of an existing instance: they differ in `healthy` and in the
/// wording of "missing" (Nacos's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modify {
    Update,
    Patch,
}

/// What an update or a patch asks to change, validated.
struct Change {
    target: Target,
    weight: Option<f64>,
    enabled: Option<bool>,
    metadata: Option<Metadata>,
    app: Option<String>,
    healthy: Option<bool>,
}

impl Change {
    fn parse(req: &GuestRequest) -> Result<Self, GuestError> {
        Ok(Self {
            target: Target::parse(req)?,
            weight: fields::weight(req)?,
            enabled: fields::enabled(req)?,
            metadata: fields::metadata(req, "metadata")?,
            app: fields::app(req)?,
            healthy: fields::optional_bool(req, "healthy")?,
        })
    }

    /// The instance to change, of either kind whatever `ephemeral` says (clients send
    /// `ephemeral=true` by default, for persistent instances too); a 400 when missing.
    fn existing(&self, how: Modify) -> Result<InstanceRecord, GuestError> {
        let missing = match how {
            Modify::Update => "instance not exist",
            Modify::Patch => "instance not found",
        };
        self.target
            .find()?
            .ok_or_else(|| GuestError::bad_request(format!("{missing}: {}", self.target.addr().instance_id())))
    }
}

/// The plan of an update or a patch: the path of the stored instance's kind.
pub fn plan(req: &GuestRequest, how: Modify) -> Result<GuestReply, GuestError> {
    let change = Change::parse(req)?;
    let found = change.existing(how)?;
    Ok(plan::by_kind(&change.target.service, found.ephemeral))
}

fn modify(req: &GuestRequest, how: Modify) -> Result<GuestReply, GuestError> {
    let change = Change::parse(req)?;
    let old = change.existing(how)?;
    let mut new = old.clone();
    new.weight = change.weight.unwrap_or(old.weight);
    new.enabled = change.enabled.unwrap_or(old.enabled);
    new.metadata = change.metadata.unwrap_or_else(|| old.metadata.clone());
    new.app = change.app.or_else(|| old.app.clone());
    if how == Modify::Patch || !old.ephemeral {
        new.healthy = change.healthy.unwrap_or(old.healthy);
    }
    if new != old {
        store::put_json(&new.key(), &new);
        emit(TOPIC, &change.target.service.grouped());
    }
    Ok(GuestReply::text(OK))
}
