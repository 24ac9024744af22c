//! `PUT` and `PATCH /nacos/v1/ns/instance`: changes to an existing instance (commands and
//! their plan).

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext, RequestExt, emit, store};

use crate::fields;
use crate::instance::{self, Target};
use crate::ops::{OK, TOPIC};
use crate::plan;
use crate::record::{InstanceRecord, Metadata};

/// The request header the host passes as a parameter of the same name: Nacos tells its Java
/// clients from the others by it.
pub const USER_AGENT: &str = "User-Agent";

/// `PUT /nacos/v1/ns/instance`: changes the supplied fields of an existing instance. `healthy`
/// applies to persistent instances only: heartbeats own an ephemeral instance's health.
///
/// An instance that does not exist is registered when the caller is not a Java client of
/// version 1 or later: Nacos 1.4 (`InstanceController.update`) registers for every other
/// client, and the Python and Node clients rely on it; a Java client gets the 400.
pub fn update(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    if registers_when_missing(req) && Change::parse(req)?.target.find()?.is_none() {
        return instance::register(cmd, req);
    }
    modify(req, Modify::Update)
}

/// Whether a `PUT` of a missing instance registers it: every client but a Java one of
/// version 1 or later (`Nacos-Java-Client:v1.4.1`), as Nacos's `ClientInfo` tells them apart.
fn registers_when_missing(req: &GuestRequest) -> bool {
    let java_version = req.optional(USER_AGENT).and_then(|agent| agent.strip_prefix("Nacos-Java-Client:v"));
    let major = java_version.and_then(|version| version.split('.').next()?.parse::<u32>().ok());
    major.is_none_or(|major| major < 1)
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

/// The plan of an update or a patch: the path of the stored instance's kind; for an update of
/// a missing instance that registers it, a registration's plan.
pub fn plan(ctx: &QueryContext, req: &GuestRequest, how: Modify) -> Result<GuestReply, GuestError> {
    let change = Change::parse(req)?;
    if how == Modify::Update && registers_when_missing(req) && change.target.find()?.is_none() {
        return instance::plan_register(ctx, req);
    }
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
