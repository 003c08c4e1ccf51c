//! The generator: deterministic, shaped like real System Log output, labels that match.

use std::collections::{BTreeSet, HashMap};

use idgw_pipeline::decode::{Decoded, decode};
use idgw_pipeline::normalize::normalize;
use idgw_testbed::{GenerateConfig, Label, generate};
use serde_json::Value;

fn run(config: &GenerateConfig) -> (String, Vec<Label>) {
    let mut events = Vec::new();
    let mut labels = Vec::new();
    let mut days = 0;
    let summary = generate(config, &mut events, &mut labels, &mut |_| days += 1).unwrap();
    assert_eq!(days, config.days);
    let events = String::from_utf8(events).unwrap();
    let labels = idgw_testbed::generate::read_labels(std::str::from_utf8(&labels).unwrap()).unwrap();
    assert_eq!(events.lines().count() as u64, summary.events);
    assert_eq!(labels.len() as u64, summary.labels);
    (events, labels)
}

fn small() -> GenerateConfig {
    GenerateConfig {
        users: 300,
        days: 3,
        seed: 42,
        ..GenerateConfig::default()
    }
}

#[test]
fn deterministic_for_a_seed() {
    let (a, la) = run(&small());
    let (b, lb) = run(&small());
    assert!(a == b, "same seed, same log");
    assert_eq!(la, lb);
    let (c, _) = run(&GenerateConfig { seed: 43, ..small() });
    assert!(a != c, "another seed, another log");
}

#[test]
fn every_event_decodes_normalizes_and_looks_like_okta() {
    let (events, _) = run(&small());
    let mut types = BTreeSet::new();
    let mut previous = String::new();
    let mut late = 0usize;
    let mut without_geo = 0usize;
    let mut times: Vec<chrono::DateTime<chrono::Utc>> = Vec::new();
    for line in events.lines() {
        let Decoded::Event { raw, event } = decode(line.as_bytes(), 1 << 20).unwrap() else {
            panic!("not an event")
        };
        let ev = normalize(raw, &event).unwrap_or_else(|r| panic!("{r}: {line}"));
        assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
        types.insert(ev.event_type.clone());
        let v: Value = serde_json::from_str(line).unwrap();
        let published = v["published"].as_str().unwrap();
        assert_eq!(published.len(), 24, "published has milliseconds and Z: {published}");
        assert!(published.ends_with('Z'));
        assert_eq!(v["client"]["zone"], "null");
        assert_eq!(v["version"], "0");
        for (k, val) in v["debugContext"]["debugData"].as_object().unwrap() {
            assert!(val.is_string(), "debugData.{k} must be a string");
        }
        assert!(v["request"]["ipChain"].is_array());
        assert!(v["transaction"]["id"].is_string());
        if v["client"]["geographicalContext"].as_object().unwrap().is_empty() {
            without_geo += 1;
        }
        if published < previous.as_str() {
            late += 1;
        }
        previous = published.to_owned();
        times.push(ev.event_time);
    }
    for t in [
        "user.session.start",
        "user.authentication.auth_via_mfa",
        "system.push.send_factor_verify_push",
        "policy.evaluate_sign_on",
        "user.authentication.sso",
        "user.session.end",
        "user.account.update_profile",
        "security.threat.detected",
        "user.risk.detect",
    ] {
        assert!(types.contains(t), "no {t} generated: {types:?}");
    }
    let n = times.len();
    assert!(
        late > 0 && late < n / 50,
        "a small fraction arrives out of order: {late} of {n}"
    );
    assert!(without_geo > 0, "a few events lack geo");
    // Lateness is bounded: no event arrives more than a minute after a later-published one.
    let mut max_seen = times[0];
    for t in &times {
        assert!(
            max_seen.signed_duration_since(*t).num_seconds() <= 60,
            "an event is more than a minute late"
        );
        max_seen = max_seen.max(*t);
    }
}

#[test]
fn labels_cover_the_vocabulary_and_point_at_real_events() {
    let (events, labels) = run(&small());
    let uuids: HashMap<String, Value> = events
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["uuid"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(uuids.len(), events.lines().count(), "uuids are unique");
    let attack: BTreeSet<&str> = labels
        .iter()
        .filter(|l| !l.benign)
        .map(|l| l.category.as_str())
        .collect();
    for category in [
        "impossible_travel",
        "brute_force",
        "password_spray",
        "mfa_fatigue",
        "session_hijack",
        "account_lockout",
        "admin_privilege_grant",
        "api_token_created",
        "threat_insight",
        "mfa_tamper",
        "suspicious_activity_report",
        "fastpass_phishing",
        "okta_risk_elevated",
        "anonymizing_proxy",
        "support_impersonation",
        "idp_lifecycle",
        "oauth_admin_scope",
        "group_admin_membership",
        "enroll_after_mfa_reset",
        "policy_weakened",
        "refresh_token_reuse",
        "support_credential_reset",
        "admin_console_new_behavior",
        "app_password_revealed",
        "scim_password_push",
        "org_under_attack",
        "rate_limit_violation",
        "unauthorized_app_access",
        "idp_signin",
        "api_token_revoked",
    ] {
        assert!(attack.contains(category), "no {category} attack labelled");
    }
    let benign: BTreeSet<&str> = labels.iter().filter(|l| l.benign).map(|l| l.kind.as_str()).collect();
    for kind in [
        "airliner_speed",
        "corporate_proxy_far_city",
        "carrier_ip_changes",
        "typos_then_success",
        "second_device_at_home",
    ] {
        assert!(benign.contains(kind), "no {kind} look-alike: {benign:?}");
    }
    for label in &labels {
        assert!(!label.event_uuids.is_empty(), "{label:?}");
        assert!(label.start <= label.end);
        for u in &label.event_uuids {
            let ev = uuids
                .get(u)
                .unwrap_or_else(|| panic!("{} names a missing event", label.label_id));
            if let (Some(user), Some("User")) = (&label.user_id, ev["actor"]["type"].as_str()) {
                let actor = ev["actor"]["id"].as_str().unwrap();
                let target = ev["target"][0]["id"].as_str().unwrap_or_default();
                if label.category != "password_spray" && label.category != "idp_lifecycle" {
                    assert!(
                        actor == user || target == user,
                        "{}: event not about {user}",
                        label.label_id
                    );
                }
            }
        }
    }
    let mfa: Vec<&Label> = labels.iter().filter(|l| l.category == "mfa_fatigue").collect();
    let deny = mfa
        .iter()
        .flat_map(|l| &l.event_uuids)
        .filter(|u| {
            let e = &uuids[*u];
            e["eventType"] == "user.mfa.okta_verify.deny_push"
                || e["debugContext"]["debugData"]["pushOnlyResponseType"] == "OV_RESPONSE_DENY"
        })
        .count();
    assert!(deny > 0, "MFA fatigue carries denied pushes");
}

#[test]
fn shaped_like_the_real_samples() {
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../shared/okta/events");
    let dir = std::env::var_os("IDGW_SHARED_DIR")
        .map(|d| std::path::PathBuf::from(d).join("okta/events"))
        .unwrap_or(dir);
    let Ok(text) = std::fs::read_to_string(dir.join("10-user.session.start-success-classic-elastic.json")) else {
        eprintln!("SKIPPED: the shared Okta samples are absent ({})", dir.display());
        return;
    };
    let real: Value = serde_json::from_str(&text).unwrap();
    let (events, _) = run(&GenerateConfig {
        users: 20,
        days: 1,
        ..small()
    });
    let ours: Value = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["eventType"] == "user.session.start" && v["outcome"]["result"] == "SUCCESS")
        .unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>();
    let mut real_top = keys(&real);
    real_top.insert("device".into()); // OIE orgs add the top-level device object
    assert_eq!(keys(&ours), real_top, "top-level fields");
    for part in ["actor", "client", "outcome", "transaction"] {
        assert_eq!(keys(&ours[part]), keys(&real[part]), "{part} fields");
    }
    assert!(
        keys(&real["securityContext"]).is_subset(&keys(&ours["securityContext"])),
        "securityContext fields"
    );
    assert!(keys(&real["authenticationContext"]).is_subset(&keys(&ours["authenticationContext"])));
}
