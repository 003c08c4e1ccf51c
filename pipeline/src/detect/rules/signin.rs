//! Sign-ins: phishing stopped by FastPass, anonymisers, sanctioned countries and the admin
//! console opened with new behaviours.

use idgw_schemas::{Detection, SemanticEvent, Severity};

use super::{RuleConfig, ip_of, login_of, on_user, owned};
use crate::detect::alerting::Finding;

pub(super) fn fastpass_phishing(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    let declined = ev
        .outcome
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("FastPass declined phishing attempt"));
    if !declined || ev.outcome.result.as_deref() != Some("FAILURE") {
        return None;
    }
    let mut f = on_user(ev, Detection::FastpassPhishing, Severity::High, 0.95);
    f.summary = format!(
        "FastPass refused to sign {} in to a phishing site (from {}).",
        login_of(ev),
        ev.client.ip.as_deref().unwrap_or("an unknown address")
    );
    f.mitre = &["T1566", "T1557"];
    Some(f)
}

pub(super) fn anonymizing_proxy(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    if ev.event_type != "user.session.start" || !ev.network.anonymizer {
        return None;
    }
    let success = ev.outcome.result.as_deref() == Some("SUCCESS");
    let severity = if success { Severity::High } else { Severity::Medium };
    let mut f = on_user(ev, Detection::AnonymizingProxy, severity, 0.8);
    let via: Vec<String> = ev
        .network
        .tunnels
        .iter()
        .filter_map(|t| t.operator.clone().or(t.kind.clone()))
        .chain(owned(&ev.network.proxy_type))
        .collect();
    f.summary = format!(
        "{} {} through an anonymizing proxy ({}) from {}.",
        login_of(ev),
        if success { "signed in" } else { "tried to sign in" },
        if via.is_empty() {
            "anonymizer".to_owned()
        } else {
            via.join(", ")
        },
        ev.client.ip.as_deref().unwrap_or("an unknown address")
    );
    f.evidence.insert("via".into(), serde_json::json!(via));
    f.evidence.insert("isp".into(), owned(&ev.network.isp).into());
    f.mitre = &["T1090.003"];
    Some(f)
}

/// A sign-in from one of the configured sanctioned countries (`sanctioned_countries`, as
/// Okta names them in `client.geographicalContext.country`). Nothing is configured by
/// default: what counts as sanctioned is the tenant's legal call, not ours.
pub(super) fn sanctioned_country_signin(ev: &SemanticEvent<'_>, config: &RuleConfig) -> Option<Finding> {
    if config.sanctioned_countries.is_empty()
        || !matches!(
            &*ev.event_type,
            "user.session.start" | "user.authentication.auth_via_IDP"
        )
    {
        return None;
    }
    let country = ev.client.geo.as_ref().and_then(|g| g.country.as_deref())?;
    if !config
        .sanctioned_countries
        .iter()
        .any(|c| c.eq_ignore_ascii_case(country))
    {
        return None;
    }
    let success = ev.outcome.result.as_deref() == Some("SUCCESS");
    let severity = if success { Severity::High } else { Severity::Low };
    let mut f = on_user(ev, Detection::SanctionedCountrySignin, severity, 0.8);
    f.summary = format!(
        "{} {} from {country}, a sanctioned country ({}).",
        login_of(ev),
        if success { "signed in" } else { "tried to sign in" },
        ip_of(ev)
    );
    f.mitre = &["T1078"];
    Some(f)
}

/// The Okta admin console opened with behaviours Okta flags as new for the admin. A new
/// device together with a new network or place is high (a stolen admin session or
/// credentials on another machine); a new device, a new country or impossible velocity
/// alone is medium; a new IP, city or state alone (a café, a mobile carrier) is low.
pub(super) fn admin_console_new_behavior(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    // Okta logs the console opening (`user.session.access_admin_app`) and the sign-on
    // policy evaluated for it (`policy.evaluate_sign_on` on the "Okta Admin Console" app,
    // where Panther's rule looks); behaviours may be on either.
    let console = match &*ev.event_type {
        "user.session.access_admin_app" => ev.outcome.result.as_deref() == Some("SUCCESS"),
        "policy.evaluate_sign_on" => {
            ev.outcome.result.as_deref() == Some("ALLOW")
                && ev
                    .targets
                    .iter()
                    .any(|t| t.display_name.as_deref() == Some("Okta Admin Console"))
        }
        _ => false,
    };
    if !console {
        return None;
    }
    let new: Vec<&str> = ev.okta_signals.positive_behaviors().collect();
    let has = |name: &str| new.iter().any(|b| b.eq_ignore_ascii_case(name));
    let device = has("New Device");
    let network = has("New IP") || has("New Geo-Location") || has("New Country") || has("New City") || has("Velocity");
    let severity = if device && network {
        Severity::High
    } else if device || has("New Country") || has("Velocity") {
        Severity::Medium
    } else if network || has("New State") {
        Severity::Low
    } else {
        return None;
    };
    let mut f = on_user(ev, Detection::AdminConsoleNewBehavior, severity, 0.75);
    f.summary = format!(
        "{} opened the Okta admin console with behaviours new to them ({}) from {}.",
        login_of(ev),
        new.join(", "),
        ip_of(ev)
    );
    f.evidence.insert("new_behaviors".into(), serde_json::json!(new));
    f.evidence.insert("device".into(), owned(&ev.device.name).into());
    f.mitre = &["T1078.004"];
    Some(f)
}
