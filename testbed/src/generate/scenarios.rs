//! Attacks and benign look-alikes, each written with its label.

use chrono::DateTime;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::activity::{DayLog, HOUR, MINUTE, failed_password, home_net, ip_on, push_answer, push_sent, sign_in};
use super::spec::{Actor, ClientRef, Extra, Net, Target, ip_string};
use super::tenant::{Role, User};
use super::world::{
    ASHBURN, ATTACK_CLIENTS, ATTACKER_CITIES, CITIES, CLIENTS, CLOUD_EGRESS_ISP, HOME_CITIES, HOSTING_ISP, TOR_ISP,
    VPN_ISP, haversine_km,
};
use idgw_schemas::Label;

mod real_shapes;

/// Every scenario the generator can inject: `(name, category, benign)`.
pub const SCENARIOS: &[(&str, &str, bool)] = &[
    ("impossible_travel", "impossible_travel", false),
    ("brute_force", "brute_force", false),
    ("password_spray", "password_spray", false),
    ("mfa_fatigue", "mfa_fatigue", false),
    ("session_hijack", "session_hijack", false),
    ("account_lockout", "account_lockout", false),
    ("admin_privilege_grant", "admin_privilege_grant", false),
    ("api_token_created", "api_token_created", false),
    ("threat_insight", "threat_insight", false),
    ("mfa_tamper", "mfa_tamper", false),
    ("suspicious_activity_report", "suspicious_activity_report", false),
    ("fastpass_phishing", "fastpass_phishing", false),
    ("okta_risk_elevated", "okta_risk_elevated", false),
    ("anonymizing_proxy", "anonymizing_proxy", false),
    ("support_impersonation", "support_impersonation", false),
    ("idp_lifecycle", "idp_lifecycle", false),
    ("travel", "impossible_travel", true),
    ("vpn_egress", "impossible_travel", true),
    ("mobile_hop", "impossible_travel", true),
    ("typos", "brute_force", true),
    ("new_device", "anomalous_signin", true),
    ("night_shift", "anomalous_signin", true),
    ("oie_brute_force", "brute_force", false),
    ("silent_push_bombing", "mfa_fatigue", false),
    ("oie_typos", "brute_force", true),
    ("slow_push", "mfa_fatigue", true),
    ("office_nat", "password_spray", true),
    ("stale_password", "brute_force", true),
    ("browser_update", "session_hijack", true),
    ("slow_spray", "password_spray", false),
    // Added after the original set, so the draws of the scenarios above stay as they were.
    ("oauth_admin_scope", "oauth_admin_scope", false),
    ("group_admin_membership", "group_admin_membership", false),
    ("enroll_after_mfa_reset", "enroll_after_mfa_reset", false),
    ("policy_weakened", "policy_weakened", false),
    ("refresh_token_reuse", "refresh_token_reuse", false),
    ("support_credential_reset", "support_credential_reset", false),
    ("admin_console_new_behavior", "admin_console_new_behavior", false),
    ("app_password_revealed", "app_password_revealed", false),
    ("scim_password_push", "scim_password_push", false),
    ("org_under_attack", "org_under_attack", false),
    ("rate_limit_violation", "rate_limit_violation", false),
    ("unauthorized_app_access", "unauthorized_app_access", false),
    ("idp_signin", "idp_signin", false),
    ("api_token_revoked", "api_token_revoked", false),
    ("own_mfa_reset", "enroll_after_mfa_reset", true),
    ("stray_app_clicks", "unauthorized_app_access", true),
];

/// Okta behaviours all new: a sign-in from someone else's machine far away.
const ALL_NEW: &str = "{New Geo-Location=POSITIVE, New Device=POSITIVE, New IP=POSITIVE, New State=POSITIVE, New Country=POSITIVE, Velocity=NEGATIVE, New City=POSITIVE}";

/// Service apps whose client-credentials secrets the `oauth_admin_scope` scenario steals.
const SERVICE_APPS: &[&str] = &[
    "Provisioning Sync",
    "HR Connector",
    "Backup Agent",
    "Reporting Bot",
    "Ticket Bridge",
    "Audit Exporter",
    "Directory Sync",
    "License Manager",
    "Onboarding Flow",
    "Payroll Bridge",
    "SIEM Collector",
    "Asset Inventory",
    "Access Reviewer",
    "Device Manager",
    "Badge System",
    "Wiki Sync",
];

/// Injects scenarios into a day and records their labels.
#[derive(Debug)]
pub struct Injector<'l, 't> {
    pub log: &'l mut DayLog<'t>,
    pub labels: &'l mut Vec<Label>,
    pub next_label: &'l mut u64,
    /// Users already in a scenario today: one story per user per day, so labels stay true
    /// (a traveller is not also hopping between carrier IPs at home).
    pub busy: &'l mut std::collections::HashSet<u32>,
}

impl<'t> Injector<'_, 't> {
    fn label(&mut self, name: &str, kind: &str, user: Option<&User>, src_ip: Option<u32>, idx: &[usize]) {
        let (category, benign) = SCENARIOS
            .iter()
            .find(|s| s.0 == name)
            .map(|s| (s.1, s.2))
            .unwrap_or((name, false));
        let specs: Vec<_> = idx.iter().map(|&i| &self.log.specs[i]).collect();
        let start = specs.iter().map(|s| s.t).min().unwrap_or(self.log.day_start);
        let end = specs.iter().map(|s| s.t).max().unwrap_or(self.log.day_start);
        *self.next_label += 1;
        self.labels.push(Label {
            label_id: format!("lbl-{:06}", *self.next_label),
            category: category.to_owned(),
            benign,
            kind: kind.to_owned(),
            user_id: user.map(|u| u.id.clone()),
            user_login: user.map(|u| u.login.clone()),
            src_ip: src_ip.map(ip_string),
            start: DateTime::from_timestamp_millis(start).unwrap_or_default(),
            end: DateTime::from_timestamp_millis(end).unwrap_or_default(),
            event_uuids: specs.iter().map(|s| s.uuid()).collect(),
        });
    }

    fn member(&mut self, rng: &mut ChaCha8Rng) -> &'t User {
        let users = &self.log.tenant.users;
        let mut tries = 0;
        loop {
            let u = &users[rng.random_range(0..users.len())];
            tries += 1;
            // A tiny tenant may have every member busy: then share rather than spin.
            if u.role == Role::Member && !u.night_shift && (self.busy.insert(u.index) || tries > 1000) {
                return u;
            }
        }
    }

    fn attacker_net(rng: &mut ChaCha8Rng, far_from: usize) -> Net {
        let home = (CITIES[far_from].lat, CITIES[far_from].lon);
        let city = loop {
            let c = ATTACKER_CITIES[rng.random_range(0..ATTACKER_CITIES.len())];
            if haversine_km(home, (CITIES[c].lat, CITIES[c].lon)) > 2_500.0 {
                break c;
            }
        };
        let isp = CITIES[city].isp;
        Net {
            ip: ip_on(isp, rng),
            city,
            isp,
            no_geo: false,
            proxy: false,
            tunnel: None,
        }
    }

    /// A start time during the day that leaves room for a scenario of `len` ms.
    fn when(&self, rng: &mut ChaCha8Rng, len: i64) -> i64 {
        self.log.day_start + HOUR + rng.random_range(0..(22 * HOUR - len).max(1))
    }

    /// Runs scenario `name` once.
    pub fn inject(&mut self, name: &str, rng: &mut ChaCha8Rng) {
        match name {
            "impossible_travel" => self.impossible_travel(rng),
            "brute_force" => self.brute_force(rng),
            "password_spray" => self.password_spray(rng),
            "mfa_fatigue" => self.mfa_fatigue(rng),
            "session_hijack" => self.session_hijack(rng),
            "account_lockout" => self.account_lockout(rng),
            "travel" => self.travel(rng),
            "vpn_egress" => self.vpn_egress(rng),
            "mobile_hop" => self.mobile_hop(rng),
            "typos" => self.typos(rng),
            "new_device" => self.new_device(rng),
            "night_shift" => self.night_shift(rng),
            "oie_brute_force" => self.oie_brute_force(rng),
            "silent_push_bombing" => self.silent_push_bombing(rng),
            "oie_typos" => self.oie_typos(rng),
            "slow_push" => self.slow_push(rng),
            "office_nat" => self.office_nat(rng),
            "stale_password" => self.stale_password(rng),
            "browser_update" => self.browser_update(rng),
            "slow_spray" => self.slow_spray(rng),
            single => self.single_event(single, rng),
        }
    }

    fn impossible_travel(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, 2 * HOUR);
        let dev = u.devices[0];
        let home = home_net(u, rng);
        let home = Net { no_geo: false, ..home };
        let r1 = rng.random();
        let a = sign_in(
            self.log,
            rng,
            u.index,
            t,
            home,
            ClientRef::Normal(dev.client),
            dev.token,
            r1,
        );
        let away = Self::attacker_net(rng, u.home);
        let t2 = t + rng.random_range(5..90) * MINUTE;
        let client = ClientRef::Normal(rng.random_range(0..CLIENTS.len()));
        let r2 = rng.random();
        let r3 = rng.random();
        let b = sign_in(self.log, rng, u.index, t2, away, client, r2, r3);
        self.label(
            "impossible_travel",
            "new_country_new_device",
            Some(u),
            Some(away.ip),
            &[a[a.len() - 1], b[b.len() - 1]],
        );
    }

    fn brute_force(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, HOUR);
        let net = Self::attacker_net(rng, u.home);
        let net = Net {
            isp: HOSTING_ISP,
            ip: ip_on(HOSTING_ISP, rng),
            ..net
        };
        let client = ClientRef::Attack(rng.random_range(0..ATTACK_CLIENTS.len()));
        let n = rng.random_range(10..30);
        let mut idx = Vec::new();
        let mut at = t;
        for _ in 0..n {
            idx.push(failed_password(
                self.log,
                u.index,
                at,
                net,
                client,
                None,
                "INVALID_CREDENTIALS",
            ));
            at += rng.random_range(2_000..20_000);
        }
        let kind = match rng.random_range(0..10) {
            0..=2 => {
                let lock = self.lockout_events(u, at, net, client);
                self.label("account_lockout", "after_brute_force", Some(u), Some(net.ip), &lock);
                idx.extend(lock);
                "ends_in_lockout"
            }
            3..=5 => {
                let r4 = rng.random();
                let r5 = rng.random();
                idx.extend(sign_in(self.log, rng, u.index, at, net, client, r4, r5));
                "ends_in_success"
            }
            _ => "no_success",
        };
        self.label("brute_force", kind, Some(u), Some(net.ip), &idx);
    }

    fn lockout_events(&mut self, u: &User, t: i64, net: Net, client: ClientRef) -> Vec<usize> {
        vec![
            failed_password(self.log, u.index, t, net, client, None, "LOCKED_OUT"),
            self.log.push(
                t + 500,
                "user.account.lock",
                "SUCCESS",
                Some("LOCKED_OUT"),
                Actor::User(u.index),
                Target::User(u.index),
                net,
                client,
                None,
                None,
                Extra::None,
            ),
        ]
    }

    fn account_lockout(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, HOUR);
        let net = Self::attacker_net(rng, u.home);
        let client = ClientRef::Attack(0);
        let mut idx = Vec::new();
        for k in 0..5 {
            idx.push(failed_password(
                self.log,
                u.index,
                t + k * 4_000,
                net,
                client,
                None,
                "INVALID_CREDENTIALS",
            ));
        }
        let lock = self.lockout_events(u, t + 25_000, net, client);
        self.label("account_lockout", "locked_by_failures", Some(u), Some(net.ip), &lock);
    }

    fn password_spray(&mut self, rng: &mut ChaCha8Rng) {
        let t = self.when(rng, HOUR);
        let isp = HOSTING_ISP;
        let net = Net {
            ip: ip_on(isp, rng),
            city: 29,
            isp,
            no_geo: false,
            proxy: false,
            tunnel: None,
        };
        let client = ClientRef::Attack(0);
        let n_users = self.log.tenant.users.len();
        let victims = rng.random_range(20..60).min(n_users.max(1) * 2);
        let mut idx = Vec::new();
        let mut at = t;
        for k in 0..victims {
            at += rng.random_range(5_000..40_000);
            if k % 5 == 4 {
                // Credential stuffing lists hold logins that do not exist.
                idx.push(self.log.push(
                    at,
                    "user.session.start",
                    "FAILURE",
                    Some("VERIFICATION_ERROR"),
                    Actor::User(rng.random_range(0..n_users as u32)),
                    Target::UnknownUser(rng.random()),
                    net,
                    client,
                    None,
                    None,
                    Extra::None,
                ));
            } else {
                let v = rng.random_range(0..n_users as u32);
                idx.push(failed_password(
                    self.log,
                    v,
                    at,
                    net,
                    client,
                    None,
                    "INVALID_CREDENTIALS",
                ));
            }
        }
        self.label("password_spray", "one_source_many_users", None, Some(net.ip), &idx);
    }

    fn mfa_fatigue(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, HOUR);
        let net = Self::attacker_net(rng, u.home);
        let client = ClientRef::Normal(rng.random_range(0..CLIENTS.len()));
        let device: u64 = rng.random();
        let classic = rng.random_bool(0.4);
        let a = Actor::User(u.index);
        let mut idx = Vec::new();
        let mut at = t;
        for _ in 0..rng.random_range(5..15) {
            idx.push(push_sent(self.log, at, u.index, net, client, device));
            at += rng.random_range(5_000..40_000);
            let unanswered = !classic && rng.random_bool(0.25);
            idx.push(if classic {
                self.log.push(
                    at,
                    "user.mfa.okta_verify.deny_push",
                    "FAILURE",
                    None,
                    a,
                    Target::Authenticator("Okta Verify"),
                    net,
                    client,
                    Some(device),
                    None,
                    Extra::None,
                )
            } else {
                let outcome = if unanswered {
                    ("UNANSWERED", None)
                } else {
                    ("FAILURE", Some("INVALID_CREDENTIALS"))
                };
                push_answer(
                    self.log,
                    at,
                    u.index,
                    net,
                    client,
                    device,
                    outcome,
                    (!unanswered).then_some("OV_RESPONSE_DENY"),
                )
            });
            at += rng.random_range(10_000..60_000);
        }
        let approved = rng.random_bool(0.4);
        if approved {
            idx.push(push_answer(
                self.log,
                at,
                u.index,
                net,
                client,
                device,
                ("SUCCESS", None),
                Some("OV_RESPONSE_APPROVE"),
            ));
            idx.push(self.log.push(
                at + 1_000,
                "user.session.start",
                "SUCCESS",
                None,
                a,
                Target::None,
                net,
                client,
                Some(device),
                Some(rng.random()),
                Extra::None,
            ));
        }
        let kind = match (classic, approved) {
            (true, true) => "classic_deny_push_then_approved",
            (true, false) => "classic_deny_push",
            (false, true) => "oie_denies_then_approved",
            (false, false) => "oie_denies",
        };
        self.label("mfa_fatigue", kind, Some(u), Some(net.ip), &idx);
    }

    fn session_hijack(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, 3 * HOUR);
        let dev = u.devices[0];
        let session: u64 = rng.random();
        let home = Net {
            no_geo: false,
            ..home_net(u, rng)
        };
        sign_in(
            self.log,
            rng,
            u.index,
            t,
            home,
            ClientRef::Normal(dev.client),
            dev.token,
            session,
        );
        let thief = Self::attacker_net(rng, u.home);
        let thief = Net {
            isp: HOSTING_ISP,
            ip: ip_on(HOSTING_ISP, rng),
            ..thief
        };
        let client = ClientRef::Attack(1);
        let mut idx = Vec::new();
        let mut at = t + rng.random_range(10..120) * MINUTE;
        for _ in 0..rng.random_range(2..5) {
            let app = u.apps[rng.random_range(0..u.apps.len())];
            idx.push(self.log.push(
                at,
                "user.authentication.sso",
                "SUCCESS",
                None,
                Actor::User(u.index),
                Target::App(app),
                thief,
                client,
                Some(dev.token),
                Some(session),
                Extra::None,
            ));
            at += rng.random_range(1..10) * MINUTE;
        }
        self.label(
            "session_hijack",
            "replayed_session_cookie",
            Some(u),
            Some(thief.ip),
            &idx,
        );
    }

    fn single_event(&mut self, name: &str, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, HOUR);
        let tenant = self.log.tenant;
        let admin = tenant.admins.first().map(|&a| &tenant.users[a as usize]).unwrap_or(u);
        let admin_net = Net {
            ip: admin.home_ip,
            city: admin.home,
            isp: CITIES[admin.home].isp,
            no_geo: false,
            proxy: false,
            tunnel: None,
        };
        let admin_client = ClientRef::Normal(admin.devices[0].client);
        let user_net = Net {
            no_geo: false,
            ..home_net(u, rng)
        };
        let user_client = ClientRef::Normal(u.devices[0].client);
        let (user, ip, kind, idx): (&User, u32, &str, Vec<usize>) = match name {
            "admin_privilege_grant" => {
                let (role, kind) = if rng.random_bool(0.5) {
                    ("Super administrator", "super_admin")
                } else {
                    ("Help Desk administrator", "help_desk_admin")
                };
                let i = self.log.push(
                    t,
                    "user.account.privilege.grant",
                    "SUCCESS",
                    None,
                    Actor::User(admin.index),
                    Target::User(u.index),
                    admin_net,
                    admin_client,
                    None,
                    None,
                    Extra::Privilege(role),
                );
                (u, admin_net.ip, kind, vec![i])
            }
            "api_token_created" => {
                let i = self.log.push(
                    t,
                    "system.api_token.create",
                    "SUCCESS",
                    None,
                    Actor::User(u.index),
                    Target::ApiToken(rng.random()),
                    user_net,
                    user_client,
                    None,
                    None,
                    Extra::None,
                );
                (u, user_net.ip, "by_user", vec![i])
            }
            "threat_insight" => {
                let isp = HOSTING_ISP;
                let net = Net {
                    ip: ip_on(isp, rng),
                    city: 29,
                    isp,
                    no_geo: false,
                    proxy: false,
                    tunnel: None,
                };
                let (result, reason, detections, kind) = if rng.random_bool(0.5) {
                    (
                        "DENY",
                        "Password Spray, Login Failures",
                        r#"{"Password Spray":"HIGH","Login Failures":"MEDIUM"}"#,
                        "blocked",
                    )
                } else {
                    (
                        "ALLOW",
                        "Login failures with high unknown users count",
                        r#"{"Login failures with high unknown users count":"MEDIUM"}"#,
                        "audit_mode",
                    )
                };
                let i = self.log.push(
                    t,
                    "security.threat.detected",
                    result,
                    Some(reason),
                    Actor::Ip,
                    Target::None,
                    net,
                    ClientRef::Attack(0),
                    None,
                    None,
                    Extra::Threat(detections),
                );
                let idx = vec![i];
                let label_ip = net.ip;
                self.label("threat_insight", kind, None, Some(label_ip), &idx);
                return;
            }
            "mfa_tamper" => {
                let (event_type, kind) = if rng.random_bool(0.5) {
                    ("user.mfa.factor.reset_all", "reset_all")
                } else {
                    ("user.mfa.factor.deactivate", "deactivate")
                };
                let i = self.log.push(
                    t,
                    event_type,
                    "SUCCESS",
                    None,
                    Actor::User(u.index),
                    Target::User(u.index),
                    user_net,
                    user_client,
                    None,
                    None,
                    Extra::None,
                );
                (u, user_net.ip, kind, vec![i])
            }
            "suspicious_activity_report" => {
                let i = self.log.push(
                    t,
                    "user.account.report_suspicious_activity_by_enduser",
                    "SUCCESS",
                    None,
                    Actor::User(u.index),
                    Target::User(u.index),
                    user_net,
                    user_client,
                    None,
                    None,
                    Extra::None,
                );
                (u, user_net.ip, "this_wasnt_me", vec![i])
            }
            "fastpass_phishing" => {
                let i = self.log.push(
                    t,
                    "user.authentication.auth_via_mfa",
                    "FAILURE",
                    Some("FastPass declined phishing attempt"),
                    Actor::User(u.index),
                    Target::Authenticator("FastPass"),
                    user_net,
                    user_client,
                    Some(u.devices[0].token),
                    None,
                    Extra::Factor {
                        factor: "SIGNED_NONCE",
                        push: None,
                    },
                );
                (u, user_net.ip, "declined", vec![i])
            }
            "okta_risk_elevated" => {
                let (risk, kind) = if rng.random_bool(0.5) {
                    (
                        "{previousLevel=LOW, level=HIGH, detectionName=Session Influenced User Risk, reasons=Associated sessionId is suspected to be hijacked, issuer=OKTA}",
                        "session_influenced",
                    )
                } else {
                    (
                        "{previousLevel=LOW, level=HIGH, detectionName=Okta Threat Intelligence, reasons=Sign-in from an IP flagged by Okta threat intelligence, issuer=OKTA}",
                        "threat_intelligence",
                    )
                };
                let i = self.log.push(
                    t,
                    "user.risk.detect",
                    "SUCCESS",
                    None,
                    Actor::System,
                    Target::User(u.index),
                    user_net,
                    ClientRef::None,
                    None,
                    None,
                    Extra::Risk(risk),
                );
                (u, user_net.ip, kind, vec![i])
            }
            "anonymizing_proxy" => {
                let (isp, tunnel, kind) = if rng.random_bool(0.5) {
                    (TOR_ISP, ("TOR", "TOR", true), "tor")
                } else {
                    (VPN_ISP, ("NORD_VPN", "VPN", true), "anonymous_vpn")
                };
                let net = Net {
                    ip: ip_on(isp, rng),
                    city: 29,
                    isp,
                    no_geo: false,
                    proxy: true,
                    tunnel: Some(tunnel),
                };
                let r6 = rng.random();
                let r7 = rng.random();
                let idx = sign_in(self.log, rng, u.index, t, net, ClientRef::Attack(1), r6, r7);
                (u, net.ip, kind, idx)
            }
            "support_impersonation" => {
                let a = self.log.push(
                    t,
                    "user.session.impersonation.grant",
                    "SUCCESS",
                    None,
                    Actor::User(admin.index),
                    Target::User(u.index),
                    admin_net,
                    admin_client,
                    None,
                    None,
                    Extra::None,
                );
                let b = self.log.push(
                    t + 10 * MINUTE,
                    "user.session.impersonation.initiate",
                    "SUCCESS",
                    None,
                    Actor::System,
                    Target::User(u.index),
                    admin_net,
                    ClientRef::None,
                    None,
                    None,
                    Extra::None,
                );
                (u, admin_net.ip, "grant_then_initiate", vec![a, b])
            }
            "idp_lifecycle" => {
                let idp: u64 = rng.random();
                let a = self.log.push(
                    t,
                    "system.idp.lifecycle.create",
                    "SUCCESS",
                    None,
                    Actor::User(admin.index),
                    Target::Idp(idp),
                    admin_net,
                    admin_client,
                    None,
                    None,
                    Extra::None,
                );
                let b = self.log.push(
                    t + 2 * MINUTE,
                    "system.idp.lifecycle.activate",
                    "SUCCESS",
                    None,
                    Actor::User(admin.index),
                    Target::Idp(idp),
                    admin_net,
                    admin_client,
                    None,
                    None,
                    Extra::None,
                );
                (admin, admin_net.ip, "create_and_activate", vec![a, b])
            }
            "oauth_admin_scope" => {
                let net = Self::attacker_net(rng, admin.home);
                // Each incident its own app: a stolen secret of one of the tenant's services.
                let app = SERVICE_APPS[rng.random_range(0..SERVICE_APPS.len())];
                let grant = |log: &mut super::activity::DayLog<'_>, at| {
                    log.push(
                        at,
                        "app.oauth2.as.token.grant.access_token",
                        "SUCCESS",
                        None,
                        Actor::App(app),
                        Target::None,
                        net,
                        ClientRef::None,
                        None,
                        None,
                        Extra::OAuth {
                            grant: "client_credentials",
                            scopes: "okta.users.manage okta.groups.manage",
                        },
                    )
                };
                let a = grant(self.log, t);
                // The same app's next hourly token is not news.
                let b = grant(self.log, t + HOUR);
                self.label(name, "client_credentials_users_manage", None, Some(net.ip), &[a, b]);
                return;
            }
            "group_admin_membership" => {
                const GROUP: &str = "Help Desk Admins";
                let g = self.log.push(
                    t,
                    "group.privilege.grant",
                    "SUCCESS",
                    None,
                    Actor::User(admin.index),
                    Target::Group(GROUP),
                    admin_net,
                    admin_client,
                    None,
                    None,
                    Extra::Privilege("Help Desk administrator"),
                );
                // The grant to the group is an admin privilege grant in its own right.
                self.label(
                    "admin_privilege_grant",
                    "role_granted_to_group",
                    Some(admin),
                    Some(admin_net.ip),
                    &[g],
                );
                let r = rng.random_range(10..50);
                let i = self.log.push(
                    t + r * MINUTE,
                    "group.user_membership.add",
                    "SUCCESS",
                    None,
                    Actor::User(admin.index),
                    Target::UserInGroup(u.index, GROUP),
                    admin_net,
                    admin_client,
                    None,
                    None,
                    Extra::None,
                );
                (u, admin_net.ip, "added_to_role_group", vec![i])
            }
            "enroll_after_mfa_reset" | "own_mfa_reset" => {
                let own = name == "own_mfa_reset";
                let (actor, net, client, extra) = if own {
                    (u, user_net, user_client, Extra::None)
                } else {
                    (admin, admin_net, admin_client, Extra::None)
                };
                let a = self.log.push(
                    t,
                    "user.mfa.factor.reset_all",
                    "SUCCESS",
                    None,
                    Actor::User(actor.index),
                    Target::User(u.index),
                    net,
                    client,
                    None,
                    None,
                    extra,
                );
                let (enrol_net, enrol_client, behaviors) = if own {
                    (user_net, user_client, Extra::None)
                } else {
                    (
                        Self::attacker_net(rng, u.home),
                        ClientRef::Attack(1),
                        Extra::Behaviors(ALL_NEW),
                    )
                };
                let r = rng.random_range(5..40);
                let b = self.log.push(
                    t + r * MINUTE,
                    "user.mfa.factor.activate",
                    "SUCCESS",
                    None,
                    Actor::User(u.index),
                    Target::User(u.index),
                    enrol_net,
                    enrol_client,
                    None,
                    None,
                    behaviors,
                );
                let kind = if own {
                    "own_reset_then_enroll"
                } else {
                    "help_desk_reset_then_enroll"
                };
                (u, enrol_net.ip, kind, vec![a, b])
            }
            "policy_weakened" => {
                let i = self.log.push(
                    t,
                    "policy.rule.deactivate",
                    "SUCCESS",
                    None,
                    Actor::User(admin.index),
                    Target::Named("PolicyRule", "Require MFA off-network"),
                    admin_net,
                    admin_client,
                    None,
                    None,
                    Extra::None,
                );
                (admin, admin_net.ip, "mfa_rule_deactivated", vec![i])
            }
            "refresh_token_reuse" => {
                let net = Self::attacker_net(rng, u.home);
                let i = self.log.push(
                    t,
                    "app.oauth2.as.token.detect_reuse",
                    "FAILURE",
                    None,
                    Actor::App("Expense Mobile"),
                    Target::User(u.index),
                    net,
                    ClientRef::Attack(1),
                    None,
                    None,
                    Extra::OAuth {
                        grant: "refresh_token",
                        scopes: "openid profile offline_access",
                    },
                );
                (u, net.ip, "rotated_token_replayed", vec![i])
            }
            "support_credential_reset" => {
                let net = Net {
                    no_geo: true,
                    ..admin_net
                };
                let i = self.log.push(
                    t,
                    "user.account.reset_password",
                    "SUCCESS",
                    None,
                    Actor::System,
                    Target::User(u.index),
                    net,
                    ClientRef::None,
                    None,
                    None,
                    Extra::OutsideTenant,
                );
                (u, net.ip, "password_reset_by_okta_support", vec![i])
            }
            "admin_console_new_behavior" => {
                let net = Self::attacker_net(rng, admin.home);
                let i = self.log.push(
                    t,
                    "user.session.access_admin_app",
                    "SUCCESS",
                    None,
                    Actor::User(admin.index),
                    Target::Named("AppInstance", "Okta Admin Console"),
                    net,
                    ClientRef::Attack(1),
                    None,
                    None,
                    Extra::Behaviors(ALL_NEW),
                );
                (admin, net.ip, "new_device_and_ip", vec![i])
            }
            "app_password_revealed" => {
                let other = self.member(rng);
                let other_net = Net {
                    no_geo: false,
                    ..home_net(other, rng)
                };
                let app = u.apps[rng.random_range(0..u.apps.len())];
                let i = self.log.push(
                    t,
                    "application.user_membership.show_password",
                    "SUCCESS",
                    None,
                    Actor::User(other.index),
                    Target::AppAndUser(app, u.index),
                    other_net,
                    ClientRef::Normal(other.devices[0].client),
                    None,
                    None,
                    Extra::None,
                );
                (other, other_net.ip, "another_users_password", vec![i])
            }
            "scim_password_push" => {
                let app = rng.random_range(0..super::world::APPS.len());
                let i = self.log.push(
                    t,
                    "application.lifecycle.update",
                    "SUCCESS",
                    Some("Pushing user passwords"),
                    Actor::User(admin.index),
                    Target::App(app),
                    admin_net,
                    admin_client,
                    None,
                    None,
                    Extra::None,
                );
                (admin, admin_net.ip, "cleartext_password_push", vec![i])
            }
            "org_under_attack" => {
                let net = Net {
                    no_geo: true,
                    ..admin_net
                };
                let mut idx = Vec::new();
                for (at, event_type) in [(t, "security.attack.start"), (t + 90 * MINUTE, "security.attack.end")] {
                    idx.push(self.log.push(
                        at,
                        event_type,
                        "SUCCESS",
                        None,
                        Actor::System,
                        Target::None,
                        net,
                        ClientRef::None,
                        None,
                        None,
                        Extra::None,
                    ));
                }
                self.label(name, "start_then_end", None, Some(net.ip), &idx);
                return;
            }
            "rate_limit_violation" => {
                let mut idx = Vec::new();
                let mut at = t;
                for _ in 0..rng.random_range(15..30) {
                    idx.push(self.log.push(
                        at,
                        "system.operation.rate_limit.violation",
                        "DENY",
                        Some("Too many enrollment attempts for SMS factor"),
                        Actor::User(u.index),
                        Target::Named("Factor Type", "SMS"),
                        user_net,
                        user_client,
                        None,
                        None,
                        Extra::None,
                    ));
                    at += rng.random_range(5_000..40_000);
                }
                (u, user_net.ip, "sms_enrollment_burst", idx)
            }
            "unauthorized_app_access" | "stray_app_clicks" => {
                let n = if name == "stray_app_clicks" {
                    2
                } else {
                    rng.random_range(6..10)
                };
                let mut idx = Vec::new();
                let mut at = t;
                for _ in 0..n {
                    let app = rng.random_range(0..super::world::APPS.len());
                    idx.push(self.log.push(
                        at,
                        "app.generic.unauth_app_access_attempt",
                        "FAILURE",
                        None,
                        Actor::User(u.index),
                        Target::App(app),
                        user_net,
                        user_client,
                        None,
                        None,
                        Extra::None,
                    ));
                    at += rng.random_range(1..8) * MINUTE;
                }
                let kind = if n == 2 {
                    "two_stray_clicks"
                } else {
                    "walking_the_app_catalog"
                };
                (u, user_net.ip, kind, idx)
            }
            "idp_signin" => {
                let idp: u64 = rng.random();
                let created = self.log.push(
                    t,
                    "system.idp.lifecycle.create",
                    "SUCCESS",
                    None,
                    Actor::User(admin.index),
                    Target::Idp(idp),
                    admin_net,
                    admin_client,
                    None,
                    None,
                    Extra::None,
                );
                // The new identity provider is an IdP lifecycle change in its own right.
                self.label(
                    "idp_lifecycle",
                    "idp_created_for_signin",
                    Some(admin),
                    Some(admin_net.ip),
                    &[created],
                );
                let net = Self::attacker_net(rng, u.home);
                let r = rng.random_range(10..50);
                let i = self.log.push(
                    t + r * MINUTE,
                    "user.authentication.auth_via_IDP",
                    "SUCCESS",
                    None,
                    Actor::User(u.index),
                    Target::Idp(idp),
                    net,
                    ClientRef::Attack(1),
                    None,
                    None,
                    Extra::None,
                );
                (u, net.ip, "signin_through_new_idp", vec![i])
            }
            "api_token_revoked" => {
                let i = self.log.push(
                    t,
                    "system.api_token.revoke",
                    "SUCCESS",
                    None,
                    Actor::User(admin.index),
                    Target::ApiToken(rng.random()),
                    admin_net,
                    admin_client,
                    None,
                    None,
                    Extra::None,
                );
                (admin, admin_net.ip, "by_admin", vec![i])
            }
            _ => return,
        };
        self.label(name, kind, Some(user), Some(ip), &idx);
    }

    fn travel(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, 20 * HOUR).min(self.log.day_start + 3 * HOUR);
        let dev = u.devices[0];
        let client = ClientRef::Normal(dev.client);
        let home = Net {
            no_geo: false,
            ..home_net(u, rng)
        };
        // Fly somewhere far, at airliner speed or slower, and sign in on arrival. Not too
        // far: the traveller's ordinary sign-ins from home resume the next day, and that
        // return must be possible too.
        let from = (CITIES[u.home].lat, CITIES[u.home].lon);
        let Some(dest) = (0..64).map(|_| rng.random_range(0..HOME_CITIES)).find(|&d| {
            let km = haversine_km(from, (CITIES[d].lat, CITIES[d].lon));
            d != u.home && (1_500.0..6_000.0).contains(&km)
        }) else {
            return;
        };
        let km = haversine_km(from, (CITIES[dest].lat, CITIES[dest].lon));
        let hours = (km / 700.0).ceil() as i64 + 2;
        let t2 = t + hours * HOUR;
        if t2 > self.log.day_end() - HOUR {
            return;
        }
        // While away, the traveller does not also sign in from home (removed before this
        // scenario pushes its own events, whose indices it labels).
        self.log
            .specs
            .retain(|s| !(s.actor == Actor::User(u.index) && s.t >= t));
        let r8 = rng.random();
        let a = sign_in(self.log, rng, u.index, t, home, client, dev.token, r8);
        let isp = CITIES[dest].isp;
        let away = Net {
            ip: ip_on(isp, rng),
            city: dest,
            isp,
            no_geo: false,
            proxy: false,
            tunnel: None,
        };
        let r9 = rng.random();
        let b = sign_in(self.log, rng, u.index, t2, away, client, dev.token, r9);
        self.label(
            "travel",
            "airliner_speed",
            Some(u),
            Some(away.ip),
            &[a[a.len() - 1], b[b.len() - 1]],
        );
    }

    fn vpn_egress(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, 2 * HOUR);
        let dev = u.devices[0];
        let client = ClientRef::Normal(dev.client);
        let home = Net {
            no_geo: false,
            ..home_net(u, rng)
        };
        let r10 = rng.random();
        let a = sign_in(self.log, rng, u.index, t, home, client, dev.token, r10);
        let vpn = Net {
            ip: ip_on(CLOUD_EGRESS_ISP, rng),
            city: ASHBURN,
            isp: CLOUD_EGRESS_ISP,
            no_geo: false,
            proxy: true,
            tunnel: Some(("ZSCALER", "PROXY", false)),
        };
        let r11 = rng.random_range(5..40);
        let r12 = rng.random();
        let b = sign_in(self.log, rng, u.index, t + r11 * MINUTE, vpn, client, dev.token, r12);
        self.label(
            "vpn_egress",
            "corporate_proxy_far_city",
            Some(u),
            Some(vpn.ip),
            &[a[a.len() - 1], b[b.len() - 1]],
        );
    }

    fn mobile_hop(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, 2 * HOUR);
        let dev = *u
            .devices
            .iter()
            .find(|d| CLIENTS[d.client].device == "Mobile")
            .unwrap_or(&u.devices[0]);
        let client = ClientRef::Normal(dev.client);
        let carrier = CITIES[u.home].mobile;
        // Same carrier, same country, a neighbouring city, new IPs within minutes.
        let mut idx = Vec::new();
        let mut at = t;
        for _ in 0..3 {
            let net = Net {
                ip: ip_on(carrier, rng),
                city: u.home,
                isp: carrier,
                no_geo: false,
                proxy: false,
                tunnel: None,
            };
            let r13 = rng.random();
            let s = sign_in(self.log, rng, u.index, at, net, client, dev.token, r13);
            idx.push(s[s.len() - 1]);
            at += rng.random_range(3..15) * MINUTE;
        }
        let ip = self.log.specs[idx[0]].net.ip;
        self.label("mobile_hop", "carrier_ip_changes", Some(u), Some(ip), &idx);
    }

    fn typos(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, HOUR);
        let dev = u.devices[0];
        let client = ClientRef::Normal(dev.client);
        let net = Net {
            no_geo: false,
            ..home_net(u, rng)
        };
        let mut idx = Vec::new();
        let mut at = t;
        for _ in 0..rng.random_range(2..=4) {
            idx.push(failed_password(
                self.log,
                u.index,
                at,
                net,
                client,
                Some(dev.token),
                "INVALID_CREDENTIALS",
            ));
            at += rng.random_range(8_000..40_000);
        }
        let r14 = rng.random();
        let s = sign_in(self.log, rng, u.index, at, net, client, dev.token, r14);
        idx.push(s[s.len() - 1]);
        self.label("typos", "typos_then_success", Some(u), Some(net.ip), &idx);
    }

    fn new_device(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, HOUR);
        let net = Net {
            no_geo: false,
            ..home_net(u, rng)
        };
        let client = ClientRef::Normal(rng.random_range(0..CLIENTS.len()));
        let r15 = rng.random();
        let r16 = rng.random();
        let s = sign_in(self.log, rng, u.index, t, net, client, r15, r16);
        self.label(
            "new_device",
            "second_device_at_home",
            Some(u),
            Some(net.ip),
            &[s[s.len() - 1]],
        );
    }

    fn night_shift(&mut self, rng: &mut ChaCha8Rng) {
        // A user who works nights signs in at night every day: label one such sign-in.
        let users = &self.log.tenant.users;
        let Some(u) = users.iter().filter(|u| u.night_shift).nth(rng.random_range(0..8)) else {
            return;
        };
        let offset = i64::from(CITIES[u.home].utc_offset);
        let t = self.log.day_start + (22 - offset).rem_euclid(24) * HOUR + rng.random_range(0..50) * MINUTE;
        let t = t.min(self.log.day_end() - HOUR);
        let dev = u.devices[0];
        let net = Net {
            no_geo: false,
            ..home_net(u, rng)
        };
        let r17 = rng.random();
        let s = sign_in(
            self.log,
            rng,
            u.index,
            t,
            net,
            ClientRef::Normal(dev.client),
            dev.token,
            r17,
        );
        self.label("night_shift", "works_nights", Some(u), Some(net.ip), &[s[s.len() - 1]]);
    }
}
