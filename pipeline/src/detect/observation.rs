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
    /// A credential guess that failed: `user.session.start` FAILURE or DENY, an Identity
    /// Engine password or authenticator check that failed (`auth_via_mfa`, `verify`,
    /// `authenticate`: a password, a one-time code, any non-push factor), not while
    /// enrolling or recovering a factor. A sign-on policy DENY is not one: device-trust and
    /// zone rules deny people who typed nothing wrong. One attempt can log several of these
    /// (the same `transaction.id`): detectors count it once by `attempt`.
    SignInFailure,
    /// An Okta Verify push was sent.
    PushSent,
    /// The user denied a push (`deny_push`, an OIE `OV_RESPONSE_DENY`, a wrong
    /// number-challenge answer).
    PushDenied,
    /// A push timed out or the flow was abandoned at it (`UNANSWERED`, `ABANDONED`).
    PushUnanswered,
    /// The user approved a push.
    PushApproved,
    /// A successful SSO into an app (`user.authentication.sso`).
    Sso,
    /// The password checked out (`auth_via_mfa` / `verify` SUCCESS with
    /// `PASSWORD_AS_FACTOR`): where MFA follows, a guessed password shows here and never as
    /// a session.
    PasswordVerified,
    /// Any other event that carries a session or device token (policy, MFA, sign-out).
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
    /// Hash of the request (`transaction.id`, else `debugData.requestId`): the events one
    /// sign-in attempt logs share it.
    #[serde(default)]
    pub attempt: Option<u64>,
    /// Hash of the event type.
    #[serde(default)]
    pub event_type: u64,
    /// The browser's major version, read from the raw user agent for the family Okta parsed.
    #[serde(default)]
    pub ua_major: Option<u16>,
    /// A request Okta makes itself for an admin in the Admin Console ([`okta_made`]): it
    /// comes from Okta's addresses with Okta's agent, so a session seen there has not moved.
    #[serde(default)]
    pub okta_client: bool,
    /// What Okta itself concluded about the request ([`okta_flags`]).
    #[serde(default)]
    pub okta: u16,
}

/// Okta's own conclusions about a request, as bits of [`Obs::okta`]: ThreatInsight's
/// suspicion, the sign-in risk, and the behaviours Okta found new for the user
/// (`securityContext.userBehaviors`, `debugData.behaviors`, `logOnlySecurityData`).
pub mod okta_flags {
    pub const THREAT_SUSPECTED: u16 = 1;
    pub const RISK_MEDIUM: u16 = 1 << 1;
    pub const RISK_HIGH: u16 = 1 << 2;
    pub const NEW_COUNTRY: u16 = 1 << 3;
    pub const NEW_STATE: u16 = 1 << 4;
    pub const NEW_CITY: u16 = 1 << 5;
    pub const NEW_GEO_LOCATION: u16 = 1 << 6;
    pub const NEW_DEVICE: u16 = 1 << 7;
    pub const NEW_IP: u16 = 1 << 8;
    pub const NEW_ASN: u16 = 1 << 9;
    pub const VELOCITY: u16 = 1 << 10;

    /// Each flag's name in evidence.
    pub const NAMES: [(u16, &str); 11] = [
        (THREAT_SUSPECTED, "okta_threat_suspected"),
        (RISK_MEDIUM, "okta_risk_medium"),
        (RISK_HIGH, "okta_risk_high"),
        (NEW_COUNTRY, "New Country"),
        (NEW_STATE, "New State"),
        (NEW_CITY, "New City"),
        (NEW_GEO_LOCATION, "New Geo-Location"),
        (NEW_DEVICE, "New Device"),
        (NEW_IP, "New IP"),
        (NEW_ASN, "New ASN"),
        (VELOCITY, "Velocity"),
    ];

    /// The names of the flags set in `bits`.
    pub fn names(bits: u16) -> Vec<&'static str> {
        NAMES.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect()
    }
}

/// The [`okta_flags`] of an event. Behaviour names are the defaults Okta ships (an admin
/// can rename them; renamed ones are matched by the words they keep: "country",
/// "velocity", "device", …).
fn okta_bits(ev: &SemanticEvent<'_>) -> u16 {
    use okta_flags::*;
    let signals = &ev.okta_signals;
    let mut bits = 0;
    if signals.threat_suspected == Some(true) {
        bits |= THREAT_SUSPECTED;
    }
    match signals.risk.as_ref().and_then(|r| r.level.as_deref()) {
        Some(l) if l.eq_ignore_ascii_case("HIGH") => bits |= RISK_HIGH,
        Some(l) if l.eq_ignore_ascii_case("MEDIUM") => bits |= RISK_MEDIUM,
        _ => {}
    }
    for n in signals.positive_behaviors() {
        let has = |word: &str| contains_ignoring_case(n, word);
        bits |= if has("velocity") {
            VELOCITY
        } else if has("geo") {
            NEW_GEO_LOCATION
        } else if has("country") {
            NEW_COUNTRY
        } else if has("state") {
            NEW_STATE
        } else if has("city") {
            NEW_CITY
        } else if has("device") {
            NEW_DEVICE
        } else if has("asn") {
            NEW_ASN
        } else if has("ip") {
            NEW_IP
        } else {
            0
        };
    }
    bits
}

/// Whether `text` contains `word`, ASCII case ignored, without allocating (this runs for
/// every event that becomes an observation).
fn contains_ignoring_case(text: &str, word: &str) -> bool {
    text.as_bytes()
        .windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
}

/// `client.id` of Okta's Admin Console (Okta documents its first-party app ids; Panther's
/// stolen-session rule skips the same id).
const ADMIN_CONSOLE_CLIENT: &str = "okta.b58d5b75-07d4-5f25-bf59-368a1261a405";

/// The browser's major version in a raw user agent, for the browser family Okta parsed
/// (`CHROME`, `FIREFOX`, `SAFARI`, `EDGE`, `OPERA`; mobile variants included). None for
/// other clients and unparsable strings.
pub fn browser_major(raw: &str, browser: &str) -> Option<u16> {
    let family = |name: &str| contains_ignoring_case(browser, name);
    let tokens: &[&str] = if family("EDGE") {
        &["Edg/", "EdgA/", "EdgiOS/", "Edge/"]
    } else if family("FIREFOX") {
        &["Firefox/", "FxiOS/"]
    } else if family("OPERA") {
        &["OPR/", "Opera/"]
    } else if family("CHROME") {
        &["Chrome/", "CriOS/"]
    } else if family("SAFARI") {
        &["Version/"]
    } else {
        return None;
    };
    tokens.iter().find_map(|t| {
        let rest = &raw[raw.find(t)? + t.len()..];
        let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

const PUSH_FACTORS: [&str; 2] = ["OKTA_VERIFY_PUSH", "PUSH"];

fn is_push(ev: &SemanticEvent<'_>) -> bool {
    ev.auth.push_response.is_some()
        || ev.auth.number_challenge_response.is_some()
        || ev.auth.factor.as_deref().is_some_and(|f| PUSH_FACTORS.contains(&f))
}

/// Whether the event's authenticator is Okta Verify (an `AuthenticatorEnrollment` target).
fn okta_verify_target(ev: &SemanticEvent<'_>) -> bool {
    ev.targets.iter().any(|t| {
        t.kind.as_deref() == Some("AuthenticatorEnrollment")
            && t.display_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case("Okta Verify"))
    })
}

/// A failed check that is not a guess: Okta refusing a phishing site, enrollment limits, or
/// a code typed while enrolling or recovering a factor (`factorIntent`).
fn not_a_guess(ev: &SemanticEvent<'_>) -> bool {
    let intent = ev.auth.factor_intent.as_deref().unwrap_or("");
    intent.eq_ignore_ascii_case("CREDENTIAL_ENROLLMENT")
        || intent.eq_ignore_ascii_case("CREDENTIAL_RECOVERY")
        || ev
            .outcome
            .reason
            .as_deref()
            .is_some_and(|r| contains_ignoring_case(r, "phishing") || contains_ignoring_case(r, "enrollment"))
}

/// What an authenticator check (Identity Engine `auth_via_mfa` / `verify` /
/// `authenticate`) means for the windowed detectors. A push is a refusal only when the user
/// said no (`OV_RESPONSE_DENY`, a wrong number) or never answered; a push that failed for
/// another reason (`…_ERROR`: an approval from a watch whose number check failed) is not.
fn authenticator_kind(ev: &SemanticEvent<'_>, result: &str) -> Option<Kind> {
    // Without debugData (some SIEM exports drop it) the factor is unknown; the target
    // still says Okta Verify. A push nobody answered is then plain; a failure may be a
    // mistyped Okta Verify code as well as a denied push: neither a guess nor a refusal.
    if ev.auth.factor.is_none() && !is_push(ev) && okta_verify_target(ev) {
        return match result {
            "UNANSWERED" | "ABANDONED" => Some(Kind::PushUnanswered),
            _ => None,
        };
    }
    if is_push(ev) {
        let number = ev.auth.number_challenge_response.as_deref().unwrap_or("");
        return match (result, ev.auth.push_response.as_deref()) {
            (_, Some("OV_RESPONSE_DENY")) => Some(Kind::PushDenied),
            _ if number.ends_with("_INVALID") => Some(Kind::PushDenied),
            ("UNANSWERED" | "ABANDONED", _) => Some(Kind::PushUnanswered),
            ("SUCCESS", _) => Some(Kind::PushApproved),
            _ => None,
        };
    }
    match result {
        "FAILURE" | "DENY" if !not_a_guess(ev) => Some(Kind::SignInFailure),
        "SUCCESS" if ev.auth.factor.as_deref() == Some("PASSWORD_AS_FACTOR") => Some(Kind::PasswordVerified),
        _ => None,
    }
}

/// Request ids SIEM exports and samples put where the real one was removed: they say
/// nothing about which events belong together.
const PLACEHOLDER_IDS: [&str; 5] = ["redacted", "unknown", "null", "-", "none"];

/// The hash of the event's request id, unless it is a placeholder.
fn attempt_of(ev: &SemanticEvent<'_>) -> Option<u64> {
    let id = ev.request.request_id.as_deref()?.trim();
    (!id.is_empty() && !PLACEHOLDER_IDS.iter().any(|p| id.eq_ignore_ascii_case(p))).then(|| hash(id))
}

/// Whether the request is one Okta makes itself for an admin in the Admin Console (Okta's
/// integration agent from Okta's addresses, or the console's client with no session):
/// such a request looks like the admin's session elsewhere, and is not. Never a sign-in.
fn okta_made(ev: &SemanticEvent<'_>) -> bool {
    if ev.event_type == "user.session.start" {
        return false;
    }
    let agent = ev.client.user_agent.as_deref().unwrap_or("");
    agent.starts_with("Okta-Integrations")
        || (ev.client.client_id.as_deref() == Some(ADMIN_CONSOLE_CLIENT)
            && ev.session.external_session_id.as_deref().is_none_or(|s| s == "unknown"))
}

/// The kind of `ev` for the windowed detectors, if any looks at it.
fn kind_of(ev: &SemanticEvent<'_>) -> Option<Kind> {
    let result = ev.outcome.result.as_deref().unwrap_or("");
    let kind = match &*ev.event_type {
        "user.session.start" => match result {
            "SUCCESS" => Some(Kind::SignIn),
            "FAILURE" | "DENY" => Some(Kind::SignInFailure),
            _ => None,
        },
        "system.push.send_factor_verify_push" => Some(Kind::PushSent),
        "user.mfa.okta_verify.deny_push" => Some(Kind::PushDenied),
        "user.authentication.auth_via_mfa" | "user.authentication.verify" | "user.authentication.authenticate" => {
            authenticator_kind(ev, result)
        }
        "user.authentication.sso" if result == "SUCCESS" => Some(Kind::Sso),
        _ => None,
    };
    kind.or_else(|| {
        (ev.session.external_session_id.is_some() || ev.device.dt_hash.is_some()).then_some(Kind::SessionActivity)
    })
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
        let kind = kind_of(ev)?;
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
            attempt: attempt_of(ev),
            event_type: hash(&ev.event_type),
            ua_major: ev
                .client
                .user_agent
                .as_deref()
                .zip(ev.client.browser.as_deref())
                .and_then(|(raw, browser)| browser_major(raw, browser)),
            okta_client: okta_made(ev),
            okta: okta_bits(ev),
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
            attempt: None,
            event_type: 0,
            ua_major: None,
            okta_client: false,
            okta: 0,
        }
    }

    /// Whether this event and an earlier one (`attempt`, `event_type`, `time`) were logged
    /// by one sign-in attempt: the same request, another event type, within seconds.
    /// Requiring another type and a short span keeps attempts apart where exports redact or
    /// reuse request ids (`"transaction": {"id": "redacted"}` is common in SIEM samples).
    pub fn same_attempt_as(&self, attempt: Option<u64>, event_type: u64, time: i64) -> bool {
        const SPAN_MS: i64 = 10_000;
        self.attempt.is_some()
            && attempt == self.attempt
            && event_type != self.event_type
            && (self.time - time).abs() <= SPAN_MS
    }

    /// The identity the user-keyed detectors key on: the user id, else the login (unknown
    /// users in credential stuffing have no id).
    pub fn user_key(&self) -> Option<&str> {
        self.user_id.as_deref().or(self.login.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoded, decode};
    use crate::normalize::normalize_fields;

    /// The observation the pipeline makes of one Okta event.
    fn obs_of(json: &str) -> Option<Obs> {
        let Ok(Decoded::Event { event, .. }) = decode(json.as_bytes(), 1 << 20) else {
            panic!("not an event: {json}");
        };
        Obs::of(&normalize_fields(&event).unwrap(), 0)
    }

    /// An Identity Engine event as Okta logs it, with `debug` as extra debugData members.
    fn oie(event_type: &str, result: &str, reason: &str, debug: &str) -> String {
        format!(
            r#"{{"uuid":"7c4f1b0e-5e0a-11ee-9f4e-000000000001","published":"2026-11-02T09:14:03.512Z","eventType":"{event_type}","version":"0","severity":"INFO","displayMessage":"Authentication of user via MFA","actor":{{"id":"00u1a2b3c4d5e6f7g8h9","type":"User","alternateId":"dana@example.com","displayName":"Dana"}},"client":{{"userAgent":{{"rawUserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36","os":"Windows 10","browser":"CHROME"}},"zone":"null","device":"Computer","id":null,"ipAddress":"203.0.113.7","geographicalContext":{{"city":"Frankfurt am Main","state":"Hesse","country":"Germany","postalCode":"60311","geolocation":{{"lat":50.1109,"lon":8.6821}}}}}},"authenticationContext":{{"authenticationProvider":null,"credentialProvider":null,"credentialType":null,"issuer":null,"interface":null,"authenticationStep":0,"externalSessionId":"idxAbCdEf123"}},"outcome":{{"result":"{result}","reason":{reason}}},"securityContext":{{"asNumber":null,"asOrg":null,"isp":null,"domain":null,"isProxy":null}},"debugContext":{{"debugData":{{"requestId":"aBcD1234@efgh","requestUri":"/idp/idx/challenge/answer","url":"/idp/idx/challenge/answer?"{debug}}}}},"legacyEventType":null,"transaction":{{"type":"WEB","id":"aBcD1234@efgh","detail":{{}}}},"request":{{"ipChain":[]}},"target":[{{"id":"pfd1","type":"AuthenticatorEnrollment","alternateId":"unknown","displayName":"Password"}}]}}"#
        )
    }

    fn kind(json: &str) -> Option<Kind> {
        obs_of(json).map(|o| o.kind)
    }

    #[test]
    fn failed_guesses_and_push_refusals_in_the_shapes_okta_logs_them() {
        let auth = "user.authentication.auth_via_mfa";
        let password = r#","factor":"PASSWORD_AS_FACTOR""#;
        let push = r#","factor":"OKTA_VERIFY_PUSH""#;
        let cases = [
            (
                oie(auth, "FAILURE", r#""INVALID_CREDENTIALS""#, password),
                Some(Kind::SignInFailure),
            ),
            (
                oie("user.authentication.verify", "FAILURE", r#""VERIFICATION_ERROR""#, ""),
                Some(Kind::SignInFailure),
            ),
            (
                oie(
                    "user.authentication.authenticate",
                    "FAILURE",
                    r#""INVALID_CREDENTIALS""#,
                    "",
                ),
                Some(Kind::SignInFailure),
            ),
            (
                oie(
                    auth,
                    "FAILURE",
                    r#""INVALID_CREDENTIALS""#,
                    r#","factor":"OKTA_SOFT_TOKEN""#,
                ),
                Some(Kind::SignInFailure),
            ),
            // A policy DENY is no guess (device trust, zones): only its session counts.
            (
                oie(
                    "policy.evaluate_sign_on",
                    "DENY",
                    r#""Sign-on policy evaluation resulted in DENY""#,
                    "",
                ),
                Some(Kind::SessionActivity),
            ),
            (oie("user.session.start", "DENY", "null", ""), Some(Kind::SignInFailure)),
            (
                oie(
                    auth,
                    "FAILURE",
                    r#""INVALID_CREDENTIALS""#,
                    r#","factor":"OKTA_VERIFY_PUSH","pushOnlyResponseType":"OV_RESPONSE_DENY""#,
                ),
                Some(Kind::PushDenied),
            ),
            (
                oie(
                    auth,
                    "FAILURE",
                    r#""INVALID_CREDENTIALS""#,
                    r#","factor":"OKTA_VERIFY_PUSH","pushWithNumberChallengeResponseType":"OV_WITH_CHALLENGE_RESPONSE_INVALID""#,
                ),
                Some(Kind::PushDenied),
            ),
            (oie(auth, "ABANDONED", "null", push), Some(Kind::PushUnanswered)),
            (oie(auth, "UNANSWERED", "null", push), Some(Kind::PushUnanswered)),
            (oie(auth, "SUCCESS", "null", push), Some(Kind::PushApproved)),
            // An approval whose number check failed (a watch) is no refusal.
            (
                oie(
                    auth,
                    "FAILURE",
                    r#""INVALID_CREDENTIALS""#,
                    r#","factor":"OKTA_VERIFY_PUSH","pushOnlyResponseType":"OV_RESPONSE_APPROVE","pushWithNumberChallengeResponseType":"OV_WITH_CHALLENGE_RESPONSE_ERROR""#,
                ),
                Some(Kind::SessionActivity),
            ),
            // A code mistyped while enrolling a factor is no guess.
            (
                oie(
                    auth,
                    "FAILURE",
                    r#""INVALID_CREDENTIALS""#,
                    r#","factor":"SMS","factorIntent":"CREDENTIAL_ENROLLMENT""#,
                ),
                Some(Kind::SessionActivity),
            ),
            (oie("user.authentication.sso", "SUCCESS", "null", ""), Some(Kind::Sso)),
            // Not guesses: FastPass refusing a phishing site, an enrollment limit, a success.
            (
                oie(
                    auth,
                    "FAILURE",
                    r#""FastPass declined phishing attempt""#,
                    r#","factor":"SIGNED_NONCE""#,
                ),
                Some(Kind::SessionActivity),
            ),
            (
                oie(
                    auth,
                    "FAILURE",
                    r#""Too many enrollment attempts for SMS factor""#,
                    r#","factor":"SMS""#,
                ),
                Some(Kind::SessionActivity),
            ),
            (oie(auth, "SUCCESS", "null", password), Some(Kind::PasswordVerified)),
            (
                oie("policy.evaluate_sign_on", "ALLOW", "null", ""),
                Some(Kind::SessionActivity),
            ),
        ];
        for (json, want) in cases {
            assert_eq!(kind(&json), want, "{json}");
        }
        // An export without debugData: the target says Okta Verify, the factor is unknown.
        let verify_target = |result: &str| {
            oie(auth, result, "null", "").replace(r#""displayName":"Password"}]"#, r#""displayName":"Okta Verify"}]"#)
        };
        assert_eq!(kind(&verify_target("UNANSWERED")), Some(Kind::PushUnanswered));
        assert_eq!(
            kind(&verify_target("FAILURE")),
            Some(Kind::SessionActivity),
            "no guess, no refusal"
        );
        // The events one attempt logs share its request.
        let a = obs_of(&oie(auth, "FAILURE", r#""INVALID_CREDENTIALS""#, password)).unwrap();
        let b = obs_of(&oie("user.session.start", "FAILURE", r#""INVALID_CREDENTIALS""#, "")).unwrap();
        assert!(a.attempt.is_some());
        assert_eq!(a.attempt, b.attempt);
        // A redacted request id ties nothing together.
        let redacted = oie(auth, "FAILURE", r#""INVALID_CREDENTIALS""#, password)
            .replace(r#""id":"aBcD1234@efgh""#, r#""id":"redacted""#)
            .replace(r#""requestId":"aBcD1234@efgh""#, r#""requestId":"redacted""#);
        assert_eq!(obs_of(&redacted).unwrap().attempt, None);
        // Okta's own integration agent acting for an admin in the console is Okta's.
        let console = oie("user.authentication.sso", "SUCCESS", "null", "").replace(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Okta-Integrations",
        );
        assert!(obs_of(&console).unwrap().okta_client);
        assert!(
            !obs_of(&console.replace("user.authentication.sso", "user.session.start"))
                .unwrap()
                .okta_client
        );
        assert_eq!(a.ua_major, Some(131));
        assert!(!a.okta_client);
    }

    #[test]
    fn browser_major_versions_come_from_the_family_okta_parsed() {
        let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.129 Safari/537.36";
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91";
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
        assert_eq!(browser_major(chrome, "CHROME"), Some(120));
        assert_eq!(browser_major(edge, "EDGE"), Some(120));
        assert_eq!(browser_major(safari, "SAFARI"), Some(17));
        assert_eq!(browser_major(firefox, "FIREFOX"), Some(121));
        assert_eq!(browser_major("okta-auth-js/7.0.1", "UNKNOWN"), None);
        assert_eq!(browser_major("Chrome/", "CHROME"), None);
    }
}
