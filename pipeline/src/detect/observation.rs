//! [`Obs`]: the few facts of an event the windowed detectors use, owned and compact so
//! the reorder buffer and per-user state stay small (a full `SemanticEvent` is ~2 KB; an
//! `Obs` is ~250 bytes). Strings detectors only compare (user agents, session ids, device
//! tokens) are kept as stable 64-bit hashes; the others are `CompactString`s, which hold
//! user ids, IPs, countries and cities (up to 24 bytes) without an allocation.

use compact_str::CompactString;
use idgw_schemas::SemanticEvent;
use serde::{Deserialize, Serialize};

/// What kind of step of a sign-in an event is, for the windowed detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// `user.session.start` SUCCESS.
    SignIn,
    /// `user.session.start` FAILURE (bad password, unknown user, locked out).
    SignInFailure,
    /// An Okta Verify push was sent.
    PushSent,
    /// The user denied a push (classic `deny_push`, or an OIE `OV_RESPONSE_DENY`).
    PushDenied,
    /// A push timed out.
    PushUnanswered,
    /// The user approved a push.
    PushApproved,
    /// Any other event that carries a session or device token (SSO, policy, MFA, sign-out).
    SessionActivity,
}

/// A compact view of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Obs {
    /// Okta `uuid`.
    pub uuid: CompactString,
    /// Event time, ms since the epoch.
    pub time: i64,
    /// Arrival order (ties in event time keep arrival order).
    pub seq: u64,
    pub kind: Kind,
    /// The subject user's (else the actor's) Okta id.
    pub user_id: Option<CompactString>,
    pub login: Option<CompactString>,
    pub ip: Option<CompactString>,
    pub lat_lon: Option<(f64, f64)>,
    pub country: Option<CompactString>,
    pub city: Option<CompactString>,
    pub asn: Option<i64>,
    /// Okta's proxy flag or a recognised tunnel (corporate VPNs included).
    pub proxy: bool,
    /// Tor or an anonymous VPN.
    pub anonymizer: bool,
    /// Behind a named tunnel Okta marks as not anonymising (a corporate proxy such as
    /// Zscaler), and no anonymising one.
    #[serde(default)]
    pub corporate_tunnel: bool,
    /// Hash of the raw user agent.
    pub user_agent: u64,
    /// Hash of browser and OS, the user-agent family.
    pub ua_family: u64,
    /// Hash of the device token (`dtHash`), else the fingerprint or OIE device id.
    pub device: Option<u64>,
    /// Hash of `externalSessionId`.
    pub session: Option<u64>,
}

/// A stable 64-bit hash (XXH3, fixed across builds, so checkpoints stay valid).
pub fn hash(s: &str) -> u64 {
    twox_hash::XxHash3_64::oneshot(s.as_bytes())
}

/// The hash of the device an event came from: its device token (`dtHash`), else the
/// fingerprint, else the OIE device id.
pub fn device_hash(ev: &SemanticEvent<'_>) -> Option<u64> {
    let d = &ev.device;
    d.dt_hash
        .as_deref()
        .or(d.fingerprint.as_deref())
        .or(d.id.as_deref())
        .map(hash)
}

/// The user-agent family hash of a browser and an OS (Okta's parsed names). Hashed apart
/// and combined: no string is built per event.
pub fn ua_family(browser: Option<&str>, os: Option<&str>) -> u64 {
    hash(browser.unwrap_or("")).rotate_left(17) ^ hash(os.unwrap_or(""))
}

fn boxed(s: Option<&str>) -> Option<CompactString> {
    s.map(CompactString::from)
}

impl Obs {
    /// The observation of `ev`, if any windowed detector looks at events of its kind.
    pub fn of(ev: &SemanticEvent<'_>, seq: u64) -> Option<Obs> {
        let result = ev.outcome.result.as_deref().unwrap_or("");
        let kind = match &*ev.event_type {
            "user.session.start" if result == "SUCCESS" => Kind::SignIn,
            "user.session.start" if result == "FAILURE" => Kind::SignInFailure,
            "system.push.send_factor_verify_push" => Kind::PushSent,
            "user.mfa.okta_verify.deny_push" => Kind::PushDenied,
            "user.authentication.auth_via_mfa" if ev.auth.factor.as_deref() == Some("OKTA_VERIFY_PUSH") => {
                match (result, ev.auth.push_response.as_deref()) {
                    (_, Some("OV_RESPONSE_DENY")) => Kind::PushDenied,
                    ("UNANSWERED", _) => Kind::PushUnanswered,
                    ("SUCCESS", _) => Kind::PushApproved,
                    _ if ev.session.external_session_id.is_some() => Kind::SessionActivity,
                    _ => return None,
                }
            }
            _ if ev.session.external_session_id.is_some() || ev.device.dt_hash.is_some() => Kind::SessionActivity,
            _ => return None,
        };
        let subject = ev.subject_user.as_ref().or(ev.actor.as_ref());
        let geo = ev.client.geo.as_ref();
        let net = &ev.network;
        let family = ua_family(ev.client.browser.as_deref(), ev.client.os.as_deref());
        Some(Obs {
            uuid: CompactString::from(&*ev.event_id),
            time: ev.event_time.timestamp_millis(),
            seq,
            kind,
            user_id: subject.and_then(|p| boxed(p.id.as_deref())),
            login: subject.and_then(|p| boxed(p.login.as_deref())),
            ip: boxed(ev.client.ip.as_deref()),
            lat_lon: geo.and_then(|g| Some((g.lat?, g.lon?))),
            country: geo.and_then(|g| boxed(g.country.as_deref())),
            city: geo.and_then(|g| boxed(g.city.as_deref())),
            asn: net.asn,
            proxy: net.is_proxy == Some(true) || !net.tunnels.is_empty() || net.proxy_type.is_some(),
            anonymizer: net.anonymizer,
            corporate_tunnel: !net.tunnels.is_empty() && net.tunnels.iter().all(|t| t.anonymous == Some(false)),
            user_agent: hash(ev.client.user_agent.as_deref().unwrap_or("")),
            ua_family: family,
            device: device_hash(ev),
            session: ev.session.external_session_id.as_deref().map(hash),
        })
    }

    /// A detector test's observation: `kind` by login `user` from `ip`, `minute` minutes into
    /// a fixed day, with nothing else known.
    #[cfg(test)]
    pub(crate) fn for_test(kind: Kind, user: &str, minute: i64, ip: &str) -> Obs {
        Obs {
            uuid: format!("{user}-{minute}-{ip}").into(),
            time: 1_700_000_000_000 + minute * 60_000,
            seq: minute as u64,
            kind,
            user_id: None,
            login: Some(user.into()),
            ip: Some(ip.into()),
            lat_lon: None,
            country: None,
            city: None,
            asn: None,
            proxy: false,
            anonymizer: false,
            corporate_tunnel: false,
            user_agent: 1,
            ua_family: 1,
            device: None,
            session: None,
        }
    }

    /// The identity the user-keyed detectors key on: the user id, else the login (unknown
    /// users in credential stuffing have no id).
    pub fn user_key(&self) -> Option<&str> {
        self.user_id.as_deref().or(self.login.as_deref())
    }
}
