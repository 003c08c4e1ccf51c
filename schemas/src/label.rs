//! Ground truth: one label per injected attack or benign look-alike, one JSON object per
//! line of a labels file (`idgw generate --labels`, read by `idgw eval`). Published as
//! `schemas/json/label.schema.json` so labels written by other generators (an independent
//! evaluation's) are checked against the same contract.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One line of the labels file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Label {
    /// Stable id, e.g. `lbl-000123`.
    pub label_id: String,
    /// For attacks, the detection that should fire (design.md's vocabulary); for benign
    /// look-alikes, the detection they resemble and must not trip at medium or above.
    pub category: String,
    /// True for benign look-alikes.
    pub benign: bool,
    /// The variant: `travel`, `vpn_egress`, `ends_in_lockout`, `classic_deny_push`, …
    pub kind: String,
    /// The user concerned, when there is one.
    pub user_id: Option<String>,
    /// Their login.
    pub user_login: Option<String>,
    /// The source of the attack or look-alike.
    pub src_ip: Option<String>,
    /// First labelled event.
    pub start: DateTime<Utc>,
    /// Last labelled event.
    pub end: DateTime<Utc>,
    /// The labelled events.
    pub event_uuids: Vec<String>,
}
