//! Normal life: one user's day of sign-ins, MFA, SSO and sign-outs (and admin and service
//! work), in the user's local working hours.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::spec::{Actor, ClientRef, Extra, Net, Spec, Target};
use super::tenant::{Role, Tenant, User};
use super::world::{ASHBURN, CITIES, CLOUD_EGRESS_ISP, ISPS};

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// Collects one day's events.
#[derive(Debug)]
pub struct DayLog<'t> {
    pub tenant: &'t Tenant,
    pub day_start: i64,
    pub specs: Vec<Spec>,
    /// Draws the events' uuids (its own stream, so scenario code can draw freely).
    pub ids: ChaCha8Rng,
}

impl DayLog<'_> {
    /// The last moment events of this day may have (so days never interleave).
    pub fn day_end(&self) -> i64 {
        self.day_start + DAY - MINUTE
    }

    /// Adds an event; returns its index.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        t: i64,
        event_type: &'static str,
        result: &'static str,
        reason: Option<&'static str>,
        actor: Actor,
        target: Target,
        net: Net,
        client: ClientRef,
        device: Option<u64>,
        session: Option<u64>,
        extra: Extra,
    ) -> usize {
        let t = t.clamp(self.day_start, self.day_end());
        self.specs.push(Spec {
            t,
            deliver: t,
            rand: self.ids.random(),
            event_type,
            result,
            reason,
            actor,
            target,
            net,
            client,
            device,
            session,
            extra,
        });
        self.specs.len() - 1
    }
}

/// The user's home network (or their phone's carrier, now and then).
pub fn home_net(user: &User, rng: &mut ChaCha8Rng) -> Net {
    let city = &CITIES[user.home];
    let mobile = rng.random_bool(0.12);
    let (ip, isp) = if mobile {
        let isp = city.mobile;
        (
            (u32::from(ISPS[isp].octet) << 24) | (rng.random::<u32>() & 0x00ff_fffe) | 1,
            isp,
        )
    } else {
        (user.home_ip, city.isp)
    };
    Net {
        ip,
        city: user.home,
        isp,
        no_geo: rng.random_bool(0.002),
        proxy: false,
        tunnel: None,
    }
}

/// A made-up address on `isp`'s block.
pub fn ip_on(isp: usize, rng: &mut ChaCha8Rng) -> u32 {
    (u32::from(ISPS[isp].octet) << 24) | (rng.random::<u32>() & 0x00ff_fffe) | 1
}

/// `system.push.send_factor_verify_push`: an Okta Verify push sent to the user.
pub fn push_sent(log: &mut DayLog<'_>, t: i64, user: u32, net: Net, client: ClientRef, device: u64) -> usize {
    log.push(
        t,
        "system.push.send_factor_verify_push",
        "SUCCESS",
        None,
        Actor::User(user),
        Target::Authenticator("Okta Verify"),
        net,
        client,
        Some(device),
        None,
        Extra::Factor {
            factor: "OKTA_VERIFY_PUSH",
            push: None,
        },
    )
}

/// `user.authentication.auth_via_mfa` answering an Okta Verify push (OIE form).
#[allow(clippy::too_many_arguments)]
pub fn push_answer(
    log: &mut DayLog<'_>,
    t: i64,
    user: u32,
    net: Net,
    client: ClientRef,
    device: u64,
    (result, reason): (&'static str, Option<&'static str>),
    push: Option<&'static str>,
) -> usize {
    log.push(
        t,
        "user.authentication.auth_via_mfa",
        result,
        reason,
        Actor::User(user),
        Target::Authenticator("Okta Verify"),
        net,
        client,
        Some(device),
        None,
        Extra::Factor {
            factor: "OKTA_VERIFY_PUSH",
            push,
        },
    )
}

/// A successful interactive sign-in: policy, push, MFA, session. Returns the indices.
#[allow(clippy::too_many_arguments)]
pub fn sign_in(
    log: &mut DayLog<'_>,
    rng: &mut ChaCha8Rng,
    user: u32,
    t: i64,
    net: Net,
    client: ClientRef,
    device: u64,
    session: u64,
) -> Vec<usize> {
    let a = Actor::User(user);
    let fastpass = rng.random_bool(0.2);
    let mut out = vec![log.push(
        t,
        "policy.evaluate_sign_on",
        "ALLOW",
        Some("Sign-on policy evaluation resulted in ALLOW"),
        a,
        Target::None,
        net,
        client,
        Some(device),
        None,
        Extra::None,
    )];
    if fastpass {
        out.push(log.push(
            t + 2_000,
            "user.authentication.auth_via_mfa",
            "SUCCESS",
            None,
            a,
            Target::Authenticator("FastPass"),
            net,
            client,
            Some(device),
            None,
            Extra::Factor {
                factor: "SIGNED_NONCE",
                push: None,
            },
        ));
    } else {
        out.push(push_sent(log, t + 1_500, user, net, client, device));
        let answered = t + rng.random_range(4_000..15_000);
        out.push(push_answer(
            log,
            answered,
            user,
            net,
            client,
            device,
            ("SUCCESS", None),
            Some("OV_RESPONSE_APPROVE"),
        ));
    }
    out.push(log.push(
        t + 16_000,
        "user.session.start",
        "SUCCESS",
        None,
        a,
        Target::None,
        net,
        client,
        Some(device),
        Some(session),
        Extra::None,
    ));
    out
}

/// A failed password attempt.
#[allow(clippy::too_many_arguments)]
pub fn failed_password(
    log: &mut DayLog<'_>,
    user: u32,
    t: i64,
    net: Net,
    client: ClientRef,
    device: Option<u64>,
    reason: &'static str,
) -> usize {
    log.push(
        t,
        "user.session.start",
        "FAILURE",
        Some(reason),
        Actor::User(user),
        Target::None,
        net,
        client,
        device,
        None,
        Extra::None,
    )
}

/// One ordinary day of `user`.
pub fn user_day(log: &mut DayLog<'_>, rng: &mut ChaCha8Rng, user: &User) {
    let weekday = (log.day_start / DAY + 4).rem_euclid(7); // 0 = Sunday
    let weekend = weekday == 0 || weekday == 6;
    if user.role == Role::Service {
        service_day(log, rng, user);
        return;
    }
    if rng.random_bool(if weekend { 0.12 } else { 0.93 }) {
        let offset = i64::from(CITIES[user.home].utc_offset);
        let local_start = if user.night_shift {
            21
        } else {
            i64::from(user.start_hour)
        };
        let utc_hour = (local_start - offset).rem_euclid(24);
        let sessions = if rng.random_bool(0.3) { 2 } else { 1 };
        let mut t = log.day_start + utc_hour * HOUR + rng.random_range(0..50) * MINUTE;
        if t > log.day_end() - 10 * HOUR {
            t -= 10 * HOUR;
        }
        for _ in 0..sessions {
            session(log, rng, user, t);
            t += rng.random_range(3..5) * HOUR;
        }
    }
    if user.role == Role::Admin && !weekend {
        admin_work(log, rng, user);
    }
}

fn session(log: &mut DayLog<'_>, rng: &mut ChaCha8Rng, user: &User, t: i64) {
    let device = if rng.random_bool(0.8) {
        user.devices[0]
    } else {
        user.devices[rng.random_range(0..user.devices.len())]
    };
    let net = home_net(user, rng);
    let client = ClientRef::Normal(device.client);
    let mut t = t;
    if rng.random_bool(0.04) {
        failed_password(
            log,
            user.index,
            t,
            net,
            client,
            Some(device.token),
            "INVALID_CREDENTIALS",
        );
        t += rng.random_range(10_000..60_000);
    }
    let session: u64 = rng.random();
    sign_in(log, rng, user.index, t, net, client, device.token, session);
    let mut at = t + MINUTE;
    for _ in 0..rng.random_range(1..=5) {
        at += rng.random_range(5..90) * MINUTE;
        let app = user.apps[rng.random_range(0..user.apps.len())];
        log.push(
            at,
            "user.authentication.sso",
            "SUCCESS",
            None,
            crate::generate::spec::Actor::User(user.index),
            Target::App(app),
            net,
            client,
            Some(device.token),
            Some(session),
            Extra::None,
        );
    }
    if rng.random_bool(0.6) {
        log.push(
            at + rng.random_range(10..120) * MINUTE,
            "user.session.end",
            "SUCCESS",
            None,
            Actor::User(user.index),
            Target::None,
            net,
            client,
            Some(device.token),
            Some(session),
            Extra::None,
        );
    }
}

fn admin_work(log: &mut DayLog<'_>, rng: &mut ChaCha8Rng, admin: &User) {
    let offset = i64::from(CITIES[admin.home].utc_offset);
    let base = log.day_start + (i64::from(admin.start_hour) + 1 - offset).rem_euclid(24) * HOUR;
    let net = Net {
        ip: admin.home_ip,
        city: admin.home,
        isp: CITIES[admin.home].isp,
        no_geo: false,
        proxy: false,
        tunnel: None,
    };
    let client = ClientRef::Normal(admin.devices[0].client);
    let n_users = log.tenant.users.len() as u32;
    for _ in 0..rng.random_range(2..=6) {
        let target = rng.random_range(0..n_users);
        let t = base + rng.random_range(0..7 * 60) * MINUTE;
        let event_type = if rng.random_bool(0.2) {
            "user.account.reset_password"
        } else {
            "group.user_membership.add"
        };
        log.push(
            t,
            event_type,
            "SUCCESS",
            None,
            Actor::User(admin.index),
            Target::User(target),
            net,
            client,
            Some(admin.devices[0].token),
            None,
            Extra::None,
        );
    }
}

fn service_day(log: &mut DayLog<'_>, rng: &mut ChaCha8Rng, svc: &User) {
    let token = crate::generate::tenant::subseed(log.tenant.seed, &[3, u64::from(svc.index)]);
    let net = Net {
        ip: (u32::from(ISPS[CLOUD_EGRESS_ISP].octet) << 24) | (svc.home_ip & 0x00ff_ffff),
        city: ASHBURN,
        isp: CLOUD_EGRESS_ISP,
        no_geo: false,
        proxy: false,
        tunnel: None,
    };
    let n_users = log.tenant.users.len() as u32;
    for _ in 0..rng.random_range(10..40) {
        let t = log.day_start + rng.random_range(0..DAY - 2 * MINUTE);
        log.push(
            t,
            "user.account.update_profile",
            "SUCCESS",
            None,
            Actor::User(svc.index),
            Target::User(rng.random_range(0..n_users)),
            net,
            ClientRef::None,
            None,
            None,
            Extra::ApiToken(token),
        );
    }
}
