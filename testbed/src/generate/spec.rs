//! A compact description of one event ([`Spec`]) and its rendering as Okta System Log JSON,
//! field for field as `/api/v1/logs` returns it (key order, explicit nulls, string
//! `debugData` values, `client.zone` "null", `request.ipChain`, `transaction`, …).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::tenant::{Tenant, subseed};
use super::world::{APPS, ATTACK_CLIENTS, CITIES, CLIENTS, ISPS, UPDATED_CLIENTS};

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A user of the tenant (by index).
    User(u32),
    /// ThreatInsight's `IP address` actor (the event's IP).
    Ip,
    /// Okta itself.
    System,
    /// An OAuth service app (by its label).
    App(&'static str),
}

/// What was acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    None,
    User(u32),
    App(usize),
    /// An authenticator enrollment (`Password`, `Okta Verify`, `FastPass`).
    Authenticator(&'static str),
    ApiToken(u64),
    Idp(u64),
    /// An unknown login (password spray against users that do not exist).
    UnknownUser(u64),
    /// A user and the group they are added to (`[User, UserGroup]`).
    UserInGroup(u32, &'static str),
    /// A group (`UserGroup`), by name.
    Group(&'static str),
    /// An app (by index into [`APPS`]) and one of its users (`[AppInstance, User]`).
    AppAndUser(usize, u32),
    /// One object of an Okta type, by name: `(type, displayName)`.
    Named(&'static str, &'static str),
}

/// Which client made the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRef {
    /// Index into [`CLIENTS`].
    Normal(usize),
    /// Index into [`ATTACK_CLIENTS`].
    Attack(usize),
    /// Index into [`CLIENTS`], one major browser version later ([`UPDATED_CLIENTS`]).
    Updated(usize),
    /// Server-side events (no client).
    None,
}

/// Where the request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub ip: u32,
    /// Index into [`CITIES`].
    pub city: usize,
    /// Index into [`ISPS`].
    pub isp: usize,
    /// Okta could not locate the IP: geo is empty.
    pub no_geo: bool,
    /// `securityContext.isProxy`.
    pub proxy: bool,
    /// A recognised tunnel: `(operator, type, anonymous)`.
    pub tunnel: Option<(&'static str, &'static str, bool)>,
}

impl Net {
    /// A located, unproxied network: `ip` on `isp` in `city`.
    pub fn plain(ip: u32, city: usize, isp: usize) -> Net {
        Net {
            ip,
            city,
            isp,
            no_geo: false,
            proxy: false,
            tunnel: None,
        }
    }
}

/// Event-specific details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    None,
    /// MFA: factor and the push answer.
    Factor {
        factor: &'static str,
        push: Option<&'static str>,
    },
    /// ThreatInsight detections (a JSON text).
    Threat(&'static str),
    /// `debugData.risk` map string.
    Risk(&'static str),
    /// Privilege granted.
    Privilege(&'static str),
    /// Admin work on behalf of an API token.
    ApiToken(u64),
    /// OAuth token details: `grantType` and `grantedScopes`.
    OAuth {
        grant: &'static str,
        scopes: &'static str,
    },
    /// `debugData.behaviors` (a Java-map string).
    Behaviors(&'static str),
    /// Done by Okta outside the tenant's transactions (`transaction.id` "unknown").
    OutsideTenant,
}

/// One event to render.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `published`, in ms since the epoch.
    pub t: i64,
    /// When Okta "delivers" it (ordering key; `t` plus a delay for a few events).
    pub deliver: i64,
    /// Random bits of the uuid.
    pub rand: u128,
    pub event_type: &'static str,
    pub result: &'static str,
    pub reason: Option<&'static str>,
    pub actor: Actor,
    pub target: Target,
    pub net: Net,
    pub client: ClientRef,
    /// Device token (dtHash/fingerprint seed).
    pub device: Option<u64>,
    /// Session (externalSessionId seed).
    pub session: Option<u64>,
    pub extra: Extra,
}

impl Spec {
    /// The event's uuid (v1 layout, as Okta's are).
    pub fn uuid(&self) -> String {
        let r = self.rand;
        let time_low = (self.t as u32) ^ (r as u32);
        let mid = (r >> 32) as u16;
        let clock = ((r >> 48) as u16 & 0x3fff) | 0x8000;
        let node = (r >> 64) as u64 & 0xffff_ffff_ffff;
        format!("{time_low:08x}-{mid:04x}-11ef-{clock:04x}-{node:012x}")
    }
}

/// Dotted-quad form of an IPv4 address.
pub fn ip_string(ip: u32) -> String {
    let [a, b, c, d] = ip.to_be_bytes();
    format!("{a}.{b}.{c}.{d}")
}

fn hex64(seed: u64) -> String {
    (1..=4u64).map(|i| format!("{:016x}", subseed(seed, &[i]))).collect()
}

fn session_id(seed: u64) -> String {
    const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut s = String::from("idx");
    let mut x = subseed(seed, &[7]);
    for i in 0..22 {
        if i == 11 {
            x = subseed(seed, &[8]);
        }
        s.push(B62[(x % 62) as usize] as char);
        x /= 62;
    }
    s
}

fn message_and_legacy(event_type: &str, result: &str) -> (&'static str, Option<&'static str>) {
    match event_type {
        "user.session.start" if result == "SUCCESS" => ("User login to Okta", Some("core.user_auth.login_success")),
        "user.session.start" => ("User login to Okta", Some("core.user_auth.login_failed")),
        "user.session.end" => ("User logout from Okta", Some("core.user_auth.logout_success")),
        "policy.evaluate_sign_on" => ("Evaluation of sign-on policy", None),
        "user.authentication.auth_via_mfa" => (
            "Authentication of user via MFA",
            Some("core.user.factor.attempt_success"),
        ),
        "system.push.send_factor_verify_push" => ("A push was sent to the user for verification", None),
        "user.mfa.okta_verify.deny_push" => (
            "User rejected Okta push verify",
            Some("core.user.factor.push_verify_deny"),
        ),
        "user.authentication.sso" => ("User single sign on to app", Some("app.auth.sso")),
        "user.account.lock" => ("Max sign in attempts exceeded", Some("core.user_auth.account_locked")),
        "user.account.reset_password" => ("Fired when the user's Okta password is reset", None),
        "user.account.update_profile" => ("Update user profile for Okta", None),
        "user.account.privilege.grant" => ("Grant user privilege", Some("core.user.admin_privilege.granted")),
        "system.api_token.create" => ("Create API token", Some("api.token.create")),
        "security.threat.detected" => ("Request from suspicious actor", Some("security.threat.detected")),
        "user.mfa.factor.deactivate" => ("Reset factor for user", Some("core.user.factor.deactivate")),
        "user.mfa.factor.reset_all" => ("Reset all factors for user", Some("core.user.factor.reset_all")),
        "user.account.report_suspicious_activity_by_enduser" => ("User report suspicious activity", None),
        "user.risk.detect" => ("User risk detected", None),
        "user.session.impersonation.grant" => ("Grant user session impersonation", None),
        "user.session.impersonation.initiate" => ("User session impersonation initiated", None),
        "system.idp.lifecycle.create" => ("Create identity provider", None),
        "system.idp.lifecycle.activate" => ("Activate identity provider", None),
        "group.user_membership.add" => ("Add user to group membership", Some("core.user_group_member.user_add")),
        "group.privilege.grant" => ("Grant group privilege", None),
        "user.mfa.factor.activate" => ("Activate factor or authenticator", Some("core.user.factor.activate")),
        "app.oauth2.as.token.grant.access_token" => ("OAuth2 access token is granted", None),
        "app.oauth2.as.token.detect_reuse" => ("Refresh token reuse detected", None),
        "policy.rule.deactivate" => ("Deactivate policy rule", None),
        "user.session.access_admin_app" => ("User accessing Okta admin app", None),
        "application.user_membership.show_password" => ("Show user password for app", None),
        "application.lifecycle.update" => ("Update application", None),
        "security.attack.start" => ("Attack on org started", None),
        "security.attack.end" => ("Attack on org ended", None),
        "system.operation.rate_limit.violation" => ("Operation rate limit violation", None),
        "app.generic.unauth_app_access_attempt" => (
            "User attempted unauthorized access to app",
            Some("app.generic.unauth_app_access_attempt"),
        ),
        "user.authentication.auth_via_IDP" => ("Authenticate user via IDP", None),
        "system.api_token.revoke" => ("Revoke API token", Some("api.token.revoke")),
        _ => ("Okta event", None),
    }
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Renders specs against a tenant.
#[derive(Debug)]
pub struct Renderer<'t> {
    pub tenant: &'t Tenant,
}

/// An object whose entries are written in order.
struct Obj<'a>(Vec<(&'static str, Val<'a>)>);

enum Val<'a> {
    Null,
    Str(String),
    StrRef(&'a str),
    Num(f64),
    Int(i64),
    Bool(bool),
    Obj(Obj<'a>),
    Arr(Vec<Val<'a>>),
}

impl Serialize for Obj<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for Val<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Null => s.serialize_unit(),
            Val::Str(v) => s.serialize_str(v),
            Val::StrRef(v) => s.serialize_str(v),
            Val::Num(v) => s.serialize_f64(*v),
            Val::Int(v) => s.serialize_i64(*v),
            Val::Bool(v) => s.serialize_bool(*v),
            Val::Obj(o) => o.serialize(s),
            Val::Arr(a) => a.serialize(s),
        }
    }
}

fn opt(v: Option<&str>) -> Val<'_> {
    v.map_or(Val::Null, Val::StrRef)
}

impl Renderer<'_> {
    fn principal<'a>(&'a self, id: Val<'a>, kind: &'static str, alt: Val<'a>, name: Val<'a>) -> Val<'a> {
        Val::Obj(Obj(vec![
            ("id", id),
            ("type", Val::StrRef(kind)),
            ("alternateId", alt),
            ("displayName", name),
            ("detailEntry", Val::Null),
        ]))
    }

    fn user(&self, i: u32) -> Val<'_> {
        let u = &self.tenant.users[i as usize];
        self.principal(Val::StrRef(&u.id), "User", Val::StrRef(&u.login), Val::StrRef(&u.name))
    }

    fn geo(&self, net: &Net, country_only: bool) -> Val<'_> {
        if net.no_geo {
            return Val::Obj(Obj(vec![]));
        }
        let c = &CITIES[net.city];
        if country_only {
            // Geo-IP that knows only the country: no city, state or postal code, and for the
            // United States MaxMind's country point (elsewhere no coordinates at all).
            let mut fields = vec![
                ("city", Val::Null),
                ("state", Val::Null),
                ("country", Val::StrRef(c.country)),
                ("postalCode", Val::Null),
            ];
            if c.country == "United States" {
                fields.push((
                    "geolocation",
                    Val::Obj(Obj(vec![("lat", Val::Num(37.751)), ("lon", Val::Num(-97.822))])),
                ));
            }
            return Val::Obj(Obj(fields));
        }
        Val::Obj(Obj(vec![
            ("city", Val::StrRef(c.name)),
            ("state", Val::StrRef(c.state)),
            ("country", Val::StrRef(c.country)),
            ("postalCode", Val::StrRef(c.postal)),
            (
                "geolocation",
                Val::Obj(Obj(vec![("lat", Val::Num(c.lat)), ("lon", Val::Num(c.lon))])),
            ),
        ]))
    }

    /// Writes `spec` as one JSON line (without the newline) to `out`.
    pub fn render(&self, spec: &Spec, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let ip = ip_string(spec.net.ip);
        let (message, legacy) = message_and_legacy(spec.event_type, spec.result);
        let actor = match spec.actor {
            Actor::User(i) => self.user(i),
            Actor::Ip => self.principal(Val::StrRef(&ip), "IP address", Val::StrRef("unknown"), Val::StrRef(&ip)),
            Actor::System => self.principal(
                Val::StrRef("0oa1oktasystem00000"),
                "SystemPrincipal",
                Val::StrRef("system@okta.com"),
                Val::StrRef("Okta System"),
            ),
            Actor::App(label) => {
                // The id from the whole label: two apps are two ids.
                let id = format!(
                    "0oa{:017x}",
                    subseed(label.len() as u64, &label.bytes().map(u64::from).collect::<Vec<_>>()) >> 4
                );
                self.principal(
                    Val::Str(id.clone()),
                    "PublicClientApp",
                    Val::Str(id),
                    Val::StrRef(label),
                )
            }
        };
        // Ordinary traffic (a user's own client on a plain network) sometimes carries less:
        // a country-level location (1 in 40), a null security context (1 in 25).
        let ordinary = matches!(spec.client, ClientRef::Normal(_) | ClientRef::Updated(_))
            && !spec.net.proxy
            && spec.net.tunnel.is_none();
        let client = match spec.client {
            ClientRef::Normal(i) => Some(CLIENTS[i]),
            ClientRef::Attack(i) => Some(ATTACK_CLIENTS[i]),
            ClientRef::Updated(i) => Some(UPDATED_CLIENTS[i]),
            ClientRef::None => None,
        };
        let ua = match client {
            Some(c) => Val::Obj(Obj(vec![
                ("rawUserAgent", Val::StrRef(c.raw)),
                ("os", Val::StrRef(c.os)),
                ("browser", Val::StrRef(c.browser)),
            ])),
            None => Val::Null,
        };
        let client_obj = Val::Obj(Obj(vec![
            ("userAgent", ua),
            ("zone", Val::StrRef("null")),
            ("device", opt(client.map(|c| c.device))),
            ("id", Val::Null),
            ("ipAddress", Val::StrRef(&ip)),
            (
                "geographicalContext",
                self.geo(&spec.net, ordinary && (spec.rand >> 96).is_multiple_of(40)),
            ),
        ]));
        let session = spec.session.map(session_id);
        let auth = Val::Obj(Obj(vec![
            ("authenticationProvider", Val::Null),
            ("credentialProvider", Val::Null),
            ("credentialType", Val::Null),
            ("issuer", Val::Null),
            ("interface", Val::Null),
            ("authenticationStep", Val::Int(0)),
            ("rootSessionId", opt(session.as_deref())),
            ("externalSessionId", opt(session.as_deref())),
        ]));
        let isp = &ISPS[spec.net.isp];
        // Real tenants: on unremarkable traffic all five fields are often null.
        let security = if ordinary && (spec.rand >> 104).is_multiple_of(25) {
            Val::Obj(Obj(vec![
                ("asNumber", Val::Null),
                ("asOrg", Val::Null),
                ("isp", Val::Null),
                ("domain", Val::Null),
                ("isProxy", Val::Null),
            ]))
        } else {
            Val::Obj(Obj(vec![
                ("asNumber", Val::Int(i64::from(isp.asn))),
                ("asOrg", Val::StrRef(isp.org)),
                ("isp", Val::StrRef(isp.org)),
                ("domain", Val::StrRef(isp.domain)),
                ("isProxy", Val::Bool(spec.net.proxy)),
            ]))
        };
        let request_id = format!("{:x}", spec.rand >> 32);
        let mut debug: Vec<(&'static str, Val<'_>)> = vec![
            ("requestId", Val::Str(request_id.clone())),
            ("requestUri", Val::StrRef(request_uri(spec.event_type))),
            ("url", Val::Str(format!("{}?", request_uri(spec.event_type)))),
            (
                "threatSuspected",
                Val::StrRef(if matches!(spec.extra, Extra::Threat(_)) {
                    "true"
                } else {
                    "false"
                }),
            ),
        ];
        if let Some(token) = spec.device {
            debug.push(("dtHash", Val::Str(hex64(token))));
            debug.push((
                "deviceFingerprint",
                Val::Str(format!("{:016x}{:016x}", token, subseed(token, &[9]))),
            ));
        }
        if let Some((operator, kind, anonymous)) = spec.net.tunnel {
            debug.push((
                "tunnels",
                Val::Str(format!(
                    r#"[{{"operator":"{operator}","type":"{kind}","anonymous":{anonymous}}}]"#
                )),
            ));
        }
        match spec.extra {
            Extra::Factor { factor, push } => {
                debug.push(("factor", Val::StrRef(factor)));
                debug.push(("factorIntent", Val::StrRef("LOGIN")));
                if let Some(p) = push {
                    debug.push(("pushOnlyResponseType", Val::StrRef(p)));
                }
            }
            Extra::Threat(t) => debug.push(("threatDetections", Val::StrRef(t))),
            Extra::Risk(r) => {
                debug.push(("risk", Val::StrRef(r)));
                debug.push(("traceId", Val::Str(format!("{:x}", spec.rand as u64))));
            }
            Extra::Privilege(p) => debug.push(("privilegeGranted", Val::StrRef(p))),
            Extra::OAuth { grant, scopes } => {
                debug.push(("grantType", Val::StrRef(grant)));
                debug.push(("requestedScopes", Val::StrRef(scopes)));
                debug.push(("grantedScopes", Val::StrRef(scopes)));
                debug.push(("clientAuthType", Val::StrRef("private_key_jwt")));
            }
            Extra::Behaviors(b) => debug.push(("behaviors", Val::StrRef(b))),
            Extra::ApiToken(_) | Extra::OutsideTenant | Extra::None => {}
        }
        let detail = match spec.extra {
            Extra::ApiToken(t) => Val::Obj(Obj(vec![(
                "requestApiTokenId",
                Val::Str(format!("00T{:017x}", t >> 4)),
            )])),
            _ => Val::Obj(Obj(vec![])),
        };
        let target = self.target(spec.target);
        let event = Obj(vec![
            ("actor", actor),
            ("client", client_obj),
            ("device", Val::Null),
            ("authenticationContext", auth),
            ("displayMessage", Val::StrRef(message)),
            ("eventType", Val::StrRef(spec.event_type)),
            (
                "outcome",
                Val::Obj(Obj(vec![
                    ("result", Val::StrRef(spec.result)),
                    ("reason", opt(spec.reason)),
                ])),
            ),
            ("published", Val::Str(iso(spec.t))),
            ("securityContext", security),
            ("severity", Val::StrRef(severity(spec.result))),
            ("debugContext", Val::Obj(Obj(vec![("debugData", Val::Obj(Obj(debug)))]))),
            ("legacyEventType", opt(legacy)),
            (
                "transaction",
                Val::Obj(Obj(vec![
                    ("type", Val::StrRef("WEB")),
                    (
                        "id",
                        if matches!(spec.extra, Extra::OutsideTenant) {
                            Val::StrRef("unknown")
                        } else {
                            Val::Str(request_id)
                        },
                    ),
                    ("detail", detail),
                ])),
            ),
            ("uuid", Val::Str(spec.uuid())),
            ("version", Val::StrRef("0")),
            (
                "request",
                Val::Obj(Obj(vec![(
                    "ipChain",
                    Val::Arr(vec![Val::Obj(Obj(vec![
                        ("ip", Val::StrRef(&ip)),
                        (
                            "geographicalContext",
                            self.geo(&spec.net, ordinary && (spec.rand >> 96).is_multiple_of(40)),
                        ),
                        ("version", Val::StrRef("V4")),
                        ("source", Val::Null),
                    ]))]),
                )])),
            ),
            ("target", target),
        ]);
        serde_json::to_writer(out, &event)
    }

    fn target(&self, target: Target) -> Val<'_> {
        fn one(v: Val<'_>) -> Val<'_> {
            Val::Arr(vec![v])
        }
        match target {
            Target::None => Val::Null,
            Target::User(i) => one(self.user(i)),
            Target::App(a) => one(self.principal(
                Val::StrRef(APPS[a].0),
                "AppInstance",
                Val::StrRef(APPS[a].1),
                Val::StrRef(APPS[a].1),
            )),
            Target::Authenticator(name) => one(self.principal(
                Val::StrRef("pfd1authenticator00"),
                "AuthenticatorEnrollment",
                Val::StrRef("unknown"),
                Val::StrRef(name),
            )),
            Target::ApiToken(t) => one(self.principal(
                Val::Str(format!("00T{:017x}", t >> 4)),
                "Token",
                Val::StrRef("automation"),
                Val::StrRef("automation"),
            )),
            Target::Idp(t) => one(self.principal(
                Val::Str(format!("0oa{:017x}", t >> 4)),
                "IdentityProvider",
                Val::StrRef("External SAML IdP"),
                Val::StrRef("External SAML IdP"),
            )),
            Target::UnknownUser(n) => one(self.principal(
                Val::Null,
                "User",
                Val::Str(format!("guess{}@example.com", n % 100_000)),
                Val::StrRef("unknown"),
            )),
            Target::UserInGroup(u, group) => Val::Arr(vec![self.user(u), self.named("UserGroup", group)]),
            Target::Group(group) => one(self.named("UserGroup", group)),
            Target::AppAndUser(a, u) => Val::Arr(vec![
                self.principal(
                    Val::StrRef(APPS[a].0),
                    "AppInstance",
                    Val::StrRef(APPS[a].1),
                    Val::StrRef(APPS[a].1),
                ),
                self.user(u),
            ]),
            Target::Named(kind, name) => one(self.named(kind, name)),
        }
    }

    /// An object of type `kind` named `name`, with an id derived from both.
    fn named(&self, kind: &'static str, name: &'static str) -> Val<'_> {
        let seed = subseed(
            name.len() as u64,
            &[kind.len() as u64, name.bytes().map(u64::from).sum()],
        );
        let prefix = match kind {
            "UserGroup" => "00g",
            "PolicyRule" => "0pr",
            "PolicyEntity" => "00p",
            _ => "0oa",
        };
        self.principal(
            Val::Str(format!("{prefix}{:017x}", seed >> 4)),
            kind,
            Val::StrRef(name),
            Val::StrRef(name),
        )
    }
}

fn severity(result: &str) -> &'static str {
    match result {
        "SUCCESS" | "ALLOW" => "INFO",
        _ => "WARN",
    }
}

fn request_uri(event_type: &str) -> &'static str {
    match event_type {
        "user.session.start" | "policy.evaluate_sign_on" => "/idp/idx/identify",
        "user.authentication.auth_via_mfa" | "system.push.send_factor_verify_push" => "/idp/idx/challenge/answer",
        "user.authentication.sso" => "/app/generic/sso/saml",
        "user.session.end" => "/login/signout",
        "security.threat.detected" => "/api/v1/authn",
        _ => "/api/v1/users",
    }
}
