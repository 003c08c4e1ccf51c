//! Each rule on realistic Okta events, with look-alikes that must stay quiet (or below
//! medium).

use idgw_schemas::{Detection, Severity};

use super::test_events::{ADMIN, ALICE, BOB, E, OKTA_SYSTEM, P, ev};
use super::{RuleConfig, rules};
use crate::detect::alerting::Finding;

/// Every rule's findings for one event, under `config`.
fn with(config: &RuleConfig, e: &E) -> Vec<Finding> {
    let event = e.event();
    rules().iter().filter_map(|r| (r.eval)(&event, config)).collect()
}

/// The finding of `detection` for one event under the default configuration.
fn finding(detection: Detection, e: &E) -> Option<Finding> {
    with(&RuleConfig::default(), e)
        .into_iter()
        .find(|f| f.detection == detection)
}

fn severity(detection: Detection, e: &E) -> Option<Severity> {
    finding(detection, e).map(|f| f.severity)
}

const OKTA_VERIFY: P = ("fctokta0verify00001", "Factor", "okta_verify", "Okta Verify");
const WIKI: P = (
    "0oawiki000000000001",
    "AppInstance",
    "Team Wiki (SWA)",
    "Team Wiki (SWA)",
);
const ORG2ORG: P = ("0oaorg2org000000001", "AppInstance", "Okta Org2Org", "Okta Org2Org");
const SALESFORCE: P = ("0oasfdc000000000001", "AppInstance", "Salesforce", "Salesforce");
const MFA_RULE: P = (
    "0pr1mfarule00000001",
    "PolicyRule",
    "Require MFA off-network",
    "Require MFA off-network",
);
const SIGN_ON: P = (
    "00p1signon000000001",
    "PolicyEntity",
    "Default Policy",
    "Default Policy",
);
const BLOCKLIST: P = (
    "nzo1blocklist000001",
    "NetworkZone",
    "Blocked countries",
    "Blocked countries",
);
const TOKEN: P = ("00T1automation00001", "Token", "unknown", "automation");
const CONSOLE: P = (
    "0oaadminconsole0001",
    "AppInstance",
    "Okta Admin Console",
    "Okta Admin Console",
);

#[test]
fn an_org_wide_factor_deactivation_is_high_on_the_admin() {
    let e = ev("system.mfa.factor.deactivate").actor(ADMIN).target(OKTA_VERIFY);
    let f = finding(Detection::MfaTamper, &e).expect("an alert");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.user_login.as_deref(), Some("it.admin@example.com"));
    assert!(
        f.summary.contains("deactivated Okta Verify for the whole organisation"),
        "{}",
        f.summary
    );
    // Look-alikes: the same change failing, and a factor turned on.
    assert!(finding(Detection::MfaTamper, &e.clone().result("FAILURE")).is_none());
    let on = ev("system.mfa.factor.activate").actor(ADMIN).target(OKTA_VERIFY);
    assert!(finding(Detection::MfaTamper, &on).is_none());
}

#[test]
fn an_api_token_revoked_is_informational_on_the_admin() {
    let e = ev("system.api_token.revoke").actor(ADMIN).target(TOKEN);
    let f = finding(Detection::ApiTokenRevoked, &e).expect("an alert");
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.user_login.as_deref(), Some("it.admin@example.com"));
    assert!(f.summary.contains("revoked the API token automation"), "{}", f.summary);
    // Look-alikes: a failed revoke; a token created is another detection.
    assert!(finding(Detection::ApiTokenRevoked, &e.clone().result("FAILURE")).is_none());
    let create = ev("system.api_token.create").actor(ADMIN).target(TOKEN);
    assert!(finding(Detection::ApiTokenRevoked, &create).is_none());
}

#[test]
fn refresh_token_reuse_is_high() {
    let app: P = (
        "0oamobile0000000001",
        "PublicClientApp",
        "0oamobile0000000001",
        "Mobile App",
    );
    let e = ev("app.oauth2.as.token.detect_reuse")
        .actor(app)
        .target(ALICE)
        .result("FAILURE");
    let f = finding(Detection::RefreshTokenReuse, &e).expect("an alert");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.user_login.as_deref(), Some("alice@example.com"));
    assert!(f.summary.contains("Mobile App"), "{}", f.summary);
    assert!(
        finding(
            Detection::RefreshTokenReuse,
            &ev("app.oauth2.token.detect_reuse").actor(app)
        )
        .is_some()
    );
    // Look-alike: the ordinary rotation of a refresh token.
    let rotate = ev("app.oauth2.as.token.grant.refresh_token")
        .actor(app)
        .debug("grantType", "refresh_token");
    assert!(with(&RuleConfig::default(), &rotate).is_empty());
}

#[test]
fn revealing_another_users_app_password_is_medium_on_the_revealer() {
    let e = ev("application.user_membership.show_password")
        .actor(ADMIN)
        .target(WIKI)
        .target(ALICE);
    let f = finding(Detection::AppPasswordRevealed, &e).expect("an alert");
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(f.user_login.as_deref(), Some("it.admin@example.com"));
    assert!(
        f.summary.contains("Team Wiki (SWA) password of alice@example.com"),
        "{}",
        f.summary
    );
    // Look-alike: Alice reading her own password.
    let own = ev("application.user_membership.show_password")
        .actor(ALICE)
        .target(WIKI)
        .target(ALICE);
    assert!(finding(Detection::AppPasswordRevealed, &own).is_none());
}

#[test]
fn an_app_set_to_push_cleartext_passwords_is_high() {
    let e = ev("application.lifecycle.update")
        .actor(ADMIN)
        .target(SALESFORCE)
        .reason("Pushing user passwords");
    assert_eq!(severity(Detection::ScimPasswordPush, &e), Some(Severity::High));
    // Look-alike: an ordinary app update.
    let plain = ev("application.lifecycle.update").actor(ADMIN).target(SALESFORCE);
    assert!(with(&RuleConfig::default(), &plain).is_empty());
}

#[test]
fn a_reset_by_okta_support_is_high_and_an_admins_is_not_support() {
    let e = ev("user.account.reset_password")
        .actor(OKTA_SYSTEM)
        .target(ALICE)
        .no_client()
        .transaction("unknown");
    let f = finding(Detection::SupportCredentialReset, &e).expect("an alert");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.user_login.as_deref(), Some("alice@example.com"));
    assert!(f.summary.contains("Okta support reset the password"), "{}", f.summary);
    let mfa = ev("user.mfa.factor.reset_all")
        .actor(OKTA_SYSTEM)
        .target(BOB)
        .no_client()
        .transaction("unknown");
    assert!(finding(Detection::SupportCredentialReset, &mfa).is_some());
    // Look-alikes: the tenant's own admin; Okta's scheduled job inside a transaction.
    let admin = ev("user.account.reset_password").actor(ADMIN).target(ALICE);
    assert!(finding(Detection::SupportCredentialReset, &admin).is_none());
    let job = ev("user.account.reset_password")
        .actor(OKTA_SYSTEM)
        .target(ALICE)
        .no_client();
    assert!(finding(Detection::SupportCredentialReset, &job).is_none());
}

#[test]
fn the_admin_console_from_a_new_device_and_network_is_high() {
    let e = ev("user.session.access_admin_app")
        .actor(ADMIN)
        .target(CONSOLE)
        .behavior("New Device", "POSITIVE")
        .behavior("New IP", "POSITIVE")
        .behavior("New City", "NEGATIVE");
    let f = finding(Detection::AdminConsoleNewBehavior, &e).expect("an alert");
    assert_eq!(f.severity, Severity::High);
    assert!(f.summary.contains("New Device, New IP"), "{}", f.summary);
    // Look-alikes: a new city alone (a trip) is low; nothing new, or a failed attempt: none.
    let city = ev("user.session.access_admin_app")
        .actor(ADMIN)
        .target(CONSOLE)
        .behavior("New City", "POSITIVE")
        .behavior("New Device", "NEGATIVE");
    assert_eq!(severity(Detection::AdminConsoleNewBehavior, &city), Some(Severity::Low));
    let usual = ev("user.session.access_admin_app")
        .actor(ADMIN)
        .target(CONSOLE)
        .behavior("New Device", "NEGATIVE");
    assert!(finding(Detection::AdminConsoleNewBehavior, &usual).is_none());
    assert!(finding(Detection::AdminConsoleNewBehavior, &e.clone().result("FAILURE")).is_none());
    // The sign-on policy evaluated for the console carries the same behaviours; for another
    // app it does not count.
    let policy = ev("policy.evaluate_sign_on")
        .actor(ADMIN)
        .target(CONSOLE)
        .result("ALLOW")
        .behavior("New Device", "POSITIVE")
        .behavior("New IP", "POSITIVE");
    assert_eq!(
        severity(Detection::AdminConsoleNewBehavior, &policy),
        Some(Severity::High)
    );
    let mut other = policy.clone();
    other.targets = vec![SALESFORCE];
    assert!(finding(Detection::AdminConsoleNewBehavior, &other).is_none());
}

#[test]
fn sign_ins_from_a_configured_sanctioned_country() {
    let config = RuleConfig {
        sanctioned_countries: vec!["north korea".into()],
    };
    let e = ev("user.session.start").country(Some("North Korea")).ip("175.45.176.9");
    let found = with(&config, &e);
    let f = found
        .iter()
        .find(|f| f.detection == Detection::SanctionedCountrySignin)
        .expect("an alert");
    assert_eq!(f.severity, Severity::High);
    let failed = with(&config, &e.clone().result("FAILURE"));
    assert!(
        failed
            .iter()
            .all(|f| f.detection != Detection::SanctionedCountrySignin || f.severity == Severity::Low)
    );
    // Look-alikes: an ordinary country; the same sign-in when nothing is configured.
    assert!(with(&config, &ev("user.session.start")).is_empty());
    assert!(finding(Detection::SanctionedCountrySignin, &e).is_none());
}

#[test]
fn policies_and_zones_weakened_by_severity() {
    let off = ev("policy.rule.deactivate")
        .actor(ADMIN)
        .target(SIGN_ON)
        .target(MFA_RULE);
    let f = finding(Detection::PolicyWeakened, &off).expect("an alert");
    assert_eq!(f.severity, Severity::High);
    assert!(
        f.summary
            .contains("deactivated the policy rule Require MFA off-network"),
        "{}",
        f.summary
    );
    assert_eq!(
        severity(Detection::PolicyWeakened, &off.clone().result("FAILURE")),
        Some(Severity::Medium)
    );
    let edit = ev("policy.lifecycle.update").actor(ADMIN).target(SIGN_ON);
    assert_eq!(severity(Detection::PolicyWeakened, &edit), Some(Severity::Medium));
    let zone = ev("zone.delete").actor(ADMIN).target(BLOCKLIST);
    assert_eq!(severity(Detection::PolicyWeakened, &zone), Some(Severity::Medium));
    // Look-alikes: turning a rule on, and a policy evaluated at sign-in.
    let on = ev("policy.rule.activate").actor(ADMIN).target(MFA_RULE);
    assert!(finding(Detection::PolicyWeakened, &on).is_none());
    let eval = ev("policy.evaluate_sign_on").target(SIGN_ON).result("ALLOW");
    assert!(finding(Detection::PolicyWeakened, &eval).is_none());
}

#[test]
fn an_org2org_app_created_is_a_federation_change() {
    let e = ev("application.lifecycle.create").actor(ADMIN).target(ORG2ORG);
    let f = finding(Detection::IdpLifecycle, &e).expect("an alert");
    assert_eq!(f.severity, Severity::High);
    assert!(f.summary.contains("Org2Org app Okta Org2Org"), "{}", f.summary);
    let edit = ev("application.lifecycle.update").actor(ADMIN).target(ORG2ORG);
    assert_eq!(severity(Detection::IdpLifecycle, &edit), Some(Severity::Medium));
    // Look-alike: any other app.
    let other = ev("application.lifecycle.create").actor(ADMIN).target(SALESFORCE);
    assert!(with(&RuleConfig::default(), &other).is_empty());
}

#[test]
fn a_user_resetting_their_own_factors_is_low_unless_the_session_looks_stolen() {
    let reset = |actor: P| ev("user.mfa.factor.reset_all").actor(actor).target(ALICE);
    assert_eq!(severity(Detection::MfaTamper, &reset(ADMIN)), Some(Severity::High));
    // Self-service (a new phone): kept for the trail, low.
    assert_eq!(severity(Detection::MfaTamper, &reset(ALICE)), Some(Severity::Low));
    // Self-service from a new device Okta flagged: the takeover's own step, high.
    let flagged = reset(ALICE).behavior("New Device", "POSITIVE");
    assert_eq!(severity(Detection::MfaTamper, &flagged), Some(Severity::High));
}
