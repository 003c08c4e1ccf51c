//! The simulated org's state: its System Log, users and their lifecycle, rate-limit windows,
//! fault switches and the outbox that stands in for users' mailboxes.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One stored System Log event.
#[derive(Debug, Clone)]
pub struct Stored {
    /// When Okta persisted it (polling order).
    pub persist_ms: i64,
    /// Its `published` time.
    pub published_ms: i64,
    /// The parsed event (for filters and keyword search).
    pub value: Value,
    /// The event's JSON text as served.
    pub raw: String,
}

/// Okta user statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Staged,
    Provisioned,
    Active,
    Recovery,
    LockedOut,
    PasswordExpired,
    Suspended,
    Deprovisioned,
}

/// A user of the org.
#[derive(Debug, Clone)]
pub struct SimUser {
    pub id: String,
    pub login: String,
    pub first: String,
    pub last: String,
    pub status: Status,
    pub created_ms: i64,
    pub status_changed_ms: i64,
    pub last_updated_ms: i64,
    pub password_changed_ms: i64,
    pub active_sessions: u32,
    /// Admin role types assigned (`SUPER_ADMIN`, …); empty for ordinary users.
    pub admin_roles: Vec<String>,
    /// Groups beyond `Everyone` (names; ids are derived from them).
    pub groups: Vec<String>,
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl SimUser {
    /// An ACTIVE user created at `created_ms`, with one session.
    pub fn active(id: &str, login: &str, name: &str, created_ms: i64) -> Self {
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        SimUser {
            id: id.to_owned(),
            login: login.to_owned(),
            first: first.to_owned(),
            last: last.to_owned(),
            status: Status::Active,
            created_ms,
            status_changed_ms: created_ms,
            last_updated_ms: created_ms,
            password_changed_ms: created_ms,
            active_sessions: 1,
            admin_roles: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// The Users API representation.
    pub fn to_json(&self, base: &str) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "created": iso(self.created_ms),
            "activated": iso(self.created_ms),
            "statusChanged": iso(self.status_changed_ms),
            "lastLogin": iso(self.last_updated_ms),
            "lastUpdated": iso(self.last_updated_ms),
            "passwordChanged": iso(self.password_changed_ms),
            "type": {"id": "oty1defaultusertype0"},
            "profile": {
                "firstName": self.first,
                "lastName": self.last,
                "mobilePhone": null,
                "secondEmail": null,
                "login": self.login,
                "email": self.login
            },
            "credentials": {
                "password": {},
                "provider": {"type": "OKTA", "name": "OKTA"}
            },
            "_links": {"self": {"href": format!("{base}/api/v1/users/{}", self.id)}}
        })
    }
}

/// Fault switches, settable at run time (`POST /sim/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added latency per request, in ms.
    pub latency_ms: u64,
    /// The next N API requests answer 429.
    pub burst_429: u32,
    /// Fraction of API requests that answer 500.
    pub error_rate: f64,
    /// The next N API requests answer 503.
    pub burst_503: u32,
    /// Fraction of API requests whose connection is dropped mid-response.
    pub drop_rate: f64,
    /// The next N API requests have their connection dropped.
    pub burst_drop: u32,
    /// The next N API requests that change something (not GET) are carried out, and then
    /// their answer is lost (the connection drops): the client cannot tell they happened.
    pub lost_answer_writes: u32,
    /// The authorization servers' key sets (`/v1/keys`) answer 503 (an issuer outage).
    pub keys_unavailable: bool,
}

/// A fixed rate-limit window per bucket, starting at its first request (Okta's windows are
/// not aligned to wall-clock minutes).
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub start_ms: i64,
    pub used: u32,
}

/// Everything mutable.
#[derive(Debug, Default)]
pub struct OrgState {
    pub events: Vec<Stored>,
    pub users: Vec<SimUser>,
    pub by_key: HashMap<String, usize>,
    pub windows: HashMap<&'static str, Window>,
    pub faults: Faults,
    pub outbox: Vec<Value>,
    pub requests: u64,
}

impl OrgState {
    /// Finds a user by id or login (case-insensitive login).
    pub fn user_index(&self, key: &str) -> Option<usize> {
        self.by_key
            .get(key)
            .or_else(|| self.by_key.get(&key.to_ascii_lowercase()))
            .copied()
    }

    /// Adds a user.
    pub fn add_user(&mut self, user: SimUser) {
        let i = self.users.len();
        self.by_key.insert(user.id.clone(), i);
        self.by_key.insert(user.login.to_ascii_lowercase(), i);
        self.users.push(user);
    }

    /// Appends an event as persisted now.
    pub fn append(&mut self, raw: String, now_ms: i64) {
        let Ok(value) = serde_json::from_str::<Value>(&raw) else {
            return;
        };
        let published_ms = value["published"]
            .as_str()
            .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
            .map_or(now_ms, |t| t.timestamp_millis());
        let persist_ms = now_ms.max(self.events.last().map_or(i64::MIN, |e| e.persist_ms));
        self.events.push(Stored {
            persist_ms,
            published_ms,
            value,
            raw,
        });
    }
}
