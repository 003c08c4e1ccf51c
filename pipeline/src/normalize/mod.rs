//! Okta [`LogEvent`] → [`SemanticEvent`].
//!
//! The event type decides the category, the OCSF class and whose event it is
//! ([`catalog`]); the rest is gathering fields from the places Okta puts them (the client
//! IP in `client` or in `request.ipChain`, risk in `securityContext` or in `debugData`, …).
//! Only a readable, plausible `published` and an `eventType` are required ([`identity`]);
//! an event without `uuid` gets one derived from its content, and an unreadable optional
//! part becomes a warning on the event, not a rejection.

pub mod catalog;
pub mod identity;

use std::borrow::Cow;

use chrono::Utc;
use idgw_schemas::okta::debug_strings::{self, Behavior, RiskInfo};
use idgw_schemas::okta::lenient::Str;
use idgw_schemas::okta::{DebugData, GeoContext, LogEvent, Target};
use idgw_schemas::semantic::{
    AuthInfo, ClientInfo, DeviceInfo, Geo, NetworkInfo, OAuthInfo, Ocsf, OktaSignals, OutcomeInfo, Principal,
    RequestInfo, SemanticEvent, SessionInfo,
};

use crate::reject::{RejectKind, Rejection};
use catalog::Subject;

/// The field's text, borrowed from the decoded event (no allocation per field).
fn s<'e>(v: &'e Option<Str<'_>>) -> Option<Cow<'e, str>> {
    v.as_ref().and_then(Str::meaningful).map(Cow::Borrowed)
}

/// The field's text as an owned string, for the parsed signals kept beyond the event.
fn owned(v: &Option<Str<'_>>) -> Option<String> {
    v.as_ref().and_then(Str::meaningful).map(str::to_owned)
}

fn dd_get<'a, 'b>(
    dd: Option<&'b DebugData<'a>>,
    field: impl FnOnce(&'b DebugData<'a>) -> &'b Option<Str<'a>>,
) -> Option<Cow<'b, str>> {
    dd.and_then(|d| s(field(d)))
}

fn required<'a>(v: &'a Option<Str<'_>>, name: &str) -> Result<&'a str, Rejection> {
    v.as_ref()
        .and_then(Str::meaningful)
        .ok_or_else(|| Rejection::new(RejectKind::MissingField, format!("`{name}` is missing or empty")))
}

fn principal_of_target<'e>(t: &'e Target<'_>) -> Principal<'e> {
    Principal {
        id: known(s(&t.id)),
        kind: s(&t.kind),
        login: s(&t.alternate_id),
        display_name: known(s(&t.display_name)),
    }
}

/// Okta writes `"unknown"` for the id and name of a user that does not exist (a failed
/// sign-in with a mistyped or invented login). It is no identity: every such sign-in would
/// share it, so one attacker trying thousands of invented logins would look like one user.
/// Without it, the typed login is what identifies them.
fn known(v: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    v.filter(|x| !x.eq_ignore_ascii_case("unknown"))
}

fn geo_of<'e>(g: &'e GeoContext<'_>) -> Option<Geo<'e>> {
    let (lat, lon) = g
        .geolocation
        .map(|l| {
            (
                l.lat.map(|n| n.0).filter(|v| v.is_finite()),
                l.lon.map(|n| n.0).filter(|v| v.is_finite()),
            )
        })
        .unwrap_or_default();
    let geo = Geo {
        city: s(&g.city),
        state: s(&g.state),
        country: s(&g.country),
        postal_code: s(&g.postal_code),
        lat,
        lon,
    };
    (geo != Geo::default()).then_some(geo)
}

/// Okta's severity in lower case; its four levels borrow a constant (no allocation per
/// event), anything else is kept, lower-cased.
fn severity_of(level: &str) -> Cow<'static, str> {
    const LEVELS: [(&str, &str); 4] = [
        ("INFO", "info"),
        ("WARN", "warn"),
        ("DEBUG", "debug"),
        ("ERROR", "error"),
    ];
    match LEVELS.iter().find(|(upper, _)| level.eq_ignore_ascii_case(upper)) {
        Some((_, lower)) => Cow::Borrowed(lower),
        None => Cow::Owned(level.to_ascii_lowercase()),
    }
}

/// Normalizes one decoded event. `raw` is its verbatim JSON text, kept for drill-down.
pub fn normalize(raw: &str, ev: &LogEvent<'_>) -> Result<SemanticEvent<'static>, Rejection> {
    let mut event = normalize_fields(ev)?.into_owned();
    event.raw = Some(raw.to_owned());
    Ok(event)
}

/// Normalizes one decoded event without a copy of its text (`raw` is `None`): ingest
/// writes the decoder's text to the store itself and detections never read it. The
/// event's strings borrow from `ev` (ingest's hot path allocates only for the few parsed
/// signals); [`SemanticEvent::into_owned`] detaches it.
pub fn normalize_fields<'e>(ev: &'e LogEvent<'_>) -> Result<SemanticEvent<'e>, Rejection> {
    let event_type = required(&ev.event_type, "eventType")?;
    let event_time = identity::parse_published(required(&ev.published, "published")?, Utc::now())?;
    let mut warnings = Vec::new();
    // Exports drop the uuid; an id derived from the content still deduplicates redelivery.
    let event_id = match ev.uuid.as_ref().and_then(Str::meaningful) {
        Some(id) => Cow::Borrowed(id),
        None => {
            warnings.push("derived_id: the event has no uuid; its id is derived from its content".to_owned());
            Cow::Owned(identity::derived_id(ev))
        }
    };
    let kind = catalog::kind_of(event_type);

    let actor = ev.actor.as_ref().map(|a| Principal {
        id: known(s(&a.id)),
        kind: s(&a.kind),
        login: s(&a.alternate_id),
        display_name: known(s(&a.display_name)),
    });
    let targets: Vec<Principal> = ev
        .target
        .as_ref()
        .map(|t| t.0.iter().map(principal_of_target).collect())
        .unwrap_or_default();
    let is_user = |p: &&Principal| p.kind.as_deref() == Some("User");
    // Borrowed until the end: each principal kept is cloned once.
    let target_user = targets.iter().find(is_user);
    let actor_user = actor.as_ref().filter(is_user);
    let subject_user = match kind.subject {
        Subject::Actor => actor_user.or(target_user),
        Subject::TargetUser => target_user.or(actor_user),
        Subject::SourceIp => None,
    }
    .cloned();
    let primary_target = target_user.or_else(|| targets.first()).cloned();

    let client = ev.client.as_ref();
    let ip_chain_entries = ev
        .request
        .as_ref()
        .and_then(|r| r.ip_chain.as_ref())
        .or_else(|| client.and_then(|c| c.ip_chain.as_ref()))
        .map(|c| c.0.as_slice())
        .unwrap_or_default();
    let ip_chain: Vec<Cow<'e, str>> = ip_chain_entries.iter().filter_map(|e| s(&e.ip)).collect();
    let geo = client
        .and_then(|c| c.geographical_context.as_deref())
        .and_then(geo_of)
        .or_else(|| {
            ip_chain_entries
                .first()
                .and_then(|e| e.geographical_context.as_deref())
                .and_then(geo_of)
        });
    let ua = client.and_then(|c| c.user_agent.as_ref());
    let client_info = ClientInfo {
        ip: client
            .and_then(|c| s(&c.ip_address))
            .or_else(|| ip_chain.first().cloned()),
        user_agent: ua.and_then(|u| s(&u.raw_user_agent)),
        os: ua.and_then(|u| s(&u.os)),
        browser: ua.and_then(|u| s(&u.browser)),
        device_type: client.and_then(|c| s(&c.device)),
        zone: client.and_then(|c| s(&c.zone)),
        client_id: client.and_then(|c| s(&c.id)),
        geo,
    };

    let sc = ev.security_context.as_ref();
    let ipd = sc.and_then(|c| c.ip_details.as_ref());
    let dd = ev.debug_context.as_ref().and_then(|d| d.debug_data.as_deref());

    let tunnels = match dd.and_then(|d| d.tunnels.as_ref()).and_then(Str::meaningful) {
        Some(text) => debug_strings::parse_tunnels(text).unwrap_or_else(|e| {
            warnings.push(format!("debugData.tunnels: {e}"));
            Vec::new()
        }),
        None => Vec::new(),
    };
    let proxy_type = dd_get(dd, |d| &d.proxy_type);
    let anonymizer_status = dd_get(dd, |d| &d.anonymizer_status);
    let anonymizer = tunnels.iter().any(|t| t.anonymous == Some(true))
        || proxy_type.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("tor"))
        || anonymizer_status.is_some();
    let network = NetworkInfo {
        ip_chain,
        asn: sc
            .and_then(|c| c.as_number)
            .or_else(|| ipd.and_then(|d| d.as_number))
            .map(|n| n.0)
            .filter(|v| v.is_finite())
            .map(|v| v as i64),
        as_org: sc.and_then(|c| s(&c.as_org)).or_else(|| ipd.and_then(|d| s(&d.as_org))),
        isp: sc.and_then(|c| s(&c.isp)).or_else(|| ipd.and_then(|d| s(&d.isp))),
        domain: sc.and_then(|c| s(&c.domain)).or_else(|| ipd.and_then(|d| s(&d.domain))),
        is_proxy: sc.and_then(|c| c.is_proxy).map(|b| b.0),
        tunnels,
        proxy_type,
        anonymizer,
    };

    let oie = ev.device.as_ref();
    let device = DeviceInfo {
        dt_hash: dd_get(dd, |d| &d.dt_hash),
        fingerprint: dd_get(dd, |d| &d.device_fingerprint),
        id: oie.and_then(|d| s(&d.id)),
        name: oie.and_then(|d| s(&d.name)),
        os_platform: oie.and_then(|d| s(&d.os_platform)),
        managed: oie.and_then(|d| d.managed).map(|b| b.0),
        registered: oie.and_then(|d| d.registered).map(|b| b.0),
    };

    let ac = ev.authentication_context.as_ref();
    let session = SessionInfo {
        external_session_id: ac.and_then(|a| s(&a.external_session_id)),
        root_session_id: ac.and_then(|a| s(&a.root_session_id)),
    };
    let auth = AuthInfo {
        provider: ac.and_then(|a| s(&a.authentication_provider)),
        credential_provider: ac.and_then(|a| s(&a.credential_provider)),
        credential_type: ac.and_then(|a| s(&a.credential_type)),
        interface: ac.and_then(|a| s(&a.interface)),
        factor: dd_get(dd, |d| &d.factor),
        factor_intent: dd_get(dd, |d| &d.factor_intent),
        push_response: dd_get(dd, |d| &d.push_only_response_type),
        number_challenge_response: dd_get(dd, |d| &d.push_with_number_challenge_response_type),
    };

    let tx = ev.transaction.as_ref();
    let request = RequestInfo {
        request_id: tx.and_then(|t| s(&t.id)).or_else(|| dd_get(dd, |d| &d.request_id)),
        transaction_type: tx.and_then(|t| s(&t.kind)),
        request_uri: dd_get(dd, |d| &d.request_uri),
        api_token_id: tx
            .and_then(|t| t.detail.as_ref())
            .and_then(|d| s(&d.request_api_token_id)),
    };
    let outcome = OutcomeInfo {
        result: ev.outcome.as_ref().and_then(|o| s(&o.result)),
        reason: ev.outcome.as_ref().and_then(|o| s(&o.reason)),
    };

    let okta_signals = signals(ev, &mut warnings);
    let severity = severity_of(ev.severity.as_ref().and_then(Str::meaningful).unwrap_or("INFO"));
    Ok(SemanticEvent {
        event_id,
        event_time,
        event_type: Cow::Borrowed(event_type),
        category: kind.category,
        action: Cow::Borrowed(kind.action),
        severity,
        display_message: s(&ev.display_message),
        ocsf: Ocsf {
            class_uid: kind.class_uid,
            class_name: Cow::Borrowed(catalog::class_name(kind.class_uid)),
            category_uid: catalog::category_uid(kind.class_uid),
            activity_id: kind.activity_id,
            activity_name: Cow::Borrowed(catalog::activity_name(kind.class_uid, kind.activity_id)),
            type_uid: i64::from(kind.class_uid) * 100 + i64::from(kind.activity_id),
            status_id: catalog::status_id(outcome.result.as_deref()),
        },
        actor,
        primary_target,
        subject_user,
        targets,
        client: client_info,
        network,
        device,
        session,
        auth,
        request,
        outcome,
        okta_signals,
        privilege_granted: dd_get(dd, |d| &d.privilege_granted),
        oauth: OAuthInfo {
            grant_type: dd_get(dd, |d| &d.grant_type),
            granted_scopes: dd_get(dd, |d| &d.granted_scopes),
            requested_scopes: dd_get(dd, |d| &d.requested_scopes),
        },
        warnings,
        raw: None,
    })
}

/// Gathers Okta's own signals; the structured `securityContext` form wins over the strings
/// in `debugData`, which win over the log-only copy.
fn signals(ev: &LogEvent<'_>, warnings: &mut Vec<String>) -> OktaSignals {
    let sc = ev.security_context.as_ref();
    let dd = ev.debug_context.as_ref().and_then(|d| d.debug_data.as_ref());
    fn text<'s>(v: Option<&'s Option<Str<'_>>>) -> Option<&'s str> {
        v.and_then(|o| o.as_ref()).and_then(Str::meaningful)
    }
    let mut note = |field: &str, e: &dyn std::fmt::Display| warnings.push(format!("debugData.{field}: {e}"));

    let threat_suspected = match text(dd.map(|d| &d.threat_suspected)) {
        Some(t) if t.eq_ignore_ascii_case("true") => Some(true),
        Some(t) if t.eq_ignore_ascii_case("false") => Some(false),
        Some(t) => {
            note("threatSuspected", &format!("not a boolean: {t:?}"));
            None
        }
        None => None,
    };
    let threat_detections = match text(dd.map(|d| &d.threat_detections)) {
        Some(t) => debug_strings::parse_threat_detections(t).unwrap_or_else(|e| {
            note("threatDetections", &e);
            Vec::new()
        }),
        None => Vec::new(),
    };
    let log_only = match text(dd.map(|d| &d.log_only_security_data)) {
        Some(t) => match debug_strings::parse_log_only_security_data(t) {
            Ok(l) => Some(l),
            Err(e) => {
                note("logOnlySecurityData", &e);
                None
            }
        },
        None => None,
    };
    let structured_risk = sc.and_then(|c| c.risk.as_ref()).map(|r| RiskInfo {
        level: owned(&r.level),
        previous_level: owned(&r.previous_level),
        reasons: r
            .reasons
            .as_ref()
            .map(|v| v.0.iter().filter_map(Str::meaningful).map(str::to_owned).collect())
            .unwrap_or_default(),
        detection_name: owned(&r.detection_name),
        issuer: owned(&r.issuer),
    });
    let debug_risk = match text(dd.map(|d| &d.risk)) {
        Some(t) => match debug_strings::parse_risk(t) {
            Ok(r) => Some(r),
            Err(e) => {
                note("risk", &e);
                None
            }
        },
        None => None,
    };
    let risk = structured_risk
        .filter(|r| r.level.is_some())
        .or(debug_risk)
        .or_else(|| log_only.as_ref().map(|l| l.risk.clone()).filter(|r| r.level.is_some()));

    let structured_behaviors: Vec<Behavior> = sc
        .and_then(|c| c.user_behaviors.as_ref())
        .map(|v| {
            v.0.iter()
                .filter_map(|b| {
                    Some(Behavior {
                        name: owned(&b.name)?,
                        result: owned(&b.result).unwrap_or_else(|| "UNKNOWN".into()),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let behaviors = if !structured_behaviors.is_empty() {
        structured_behaviors
    } else if let Some(t) = text(dd.map(|d| &d.behaviors)) {
        debug_strings::parse_behaviors(t).unwrap_or_else(|e| {
            note("behaviors", &e);
            Vec::new()
        })
    } else {
        log_only.map(|l| l.behaviors).unwrap_or_default()
    };
    let risk_change = match text(dd.map(|d| &d.risk_change)) {
        Some(t) => match debug_strings::parse_risk_change(t) {
            Ok(r) => Some(r),
            Err(e) => {
                note("riskChange", &e);
                None
            }
        },
        None => None,
    };
    OktaSignals {
        threat_suspected,
        threat_detections,
        risk,
        behaviors,
        risk_change,
        bot_protection: sc.and_then(|c| c.bot_protection.as_ref()).and_then(|b| owned(&b.level)),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    const EVENT: &str = r#"{"uuid":"dc9fd3c0-598c-11ef-8478-2b7584bf8d5a","published":"2024-08-13T15:58:20.353Z",
        "eventType":"user.session.start","severity":"WARN",
        "actor":{"id":"00u1","type":"User","alternateId":"a@example.com","displayName":"A"},
        "client":{"ipAddress":"198.51.100.7","geographicalContext":{"city":"Lyon","country":"France"}},
        "outcome":{"result":"SUCCESS"}}"#;

    #[test]
    fn normalized_fields_borrow_from_the_decoded_event_and_into_owned_detaches_them() {
        let event: LogEvent<'_> = serde_json::from_str(EVENT).unwrap();
        let ev = normalize_fields(&event).unwrap();
        // The hot path's point: no string of the event is copied.
        assert!(matches!(
            ev.event_id,
            Cow::Borrowed("dc9fd3c0-598c-11ef-8478-2b7584bf8d5a")
        ));
        let user = ev.subject_user.as_ref().unwrap();
        assert!(matches!(user.id, Some(Cow::Borrowed("00u1"))));
        assert!(matches!(ev.client.ip, Some(Cow::Borrowed("198.51.100.7"))));
        assert!(matches!(ev.severity, Cow::Borrowed("warn")));
        assert!(matches!(ev.action, Cow::Borrowed(_)));

        let owned = ev.clone().into_owned();
        assert!(matches!(owned.event_id, Cow::Owned(_)));
        assert!(matches!(owned.client.ip, Some(Cow::Owned(_))));
        let geo = owned.client.geo.as_ref().unwrap();
        assert!(matches!(geo.city, Some(Cow::Owned(_))));
        // Detaching changes ownership, not content.
        assert_eq!(
            serde_json::to_value(&owned).unwrap(),
            serde_json::to_value(&ev).unwrap()
        );
    }

    #[test]
    fn okta_severities_borrow_a_constant_and_others_are_lower_cased() {
        assert!(matches!(severity_of("ERROR"), Cow::Borrowed("error")));
        assert!(matches!(severity_of("info"), Cow::Borrowed("info")));
        assert_eq!(severity_of("NOTICE"), "notice");
        assert!(matches!(severity_of("NOTICE"), Cow::Owned(_)));
    }
}
