//! Scenarios in the shapes real tenants log rather than our first generator's: Identity
//! Engine attempts that log an authenticator check and a session event under one request,
//! pushes that time out without an event, and the benign look-alikes windowed detections
//! meet in production (an office behind one address, a phone looping on an old password,
//! a slow phone, a browser that updates itself mid-session).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::super::activity::{HOUR, MINUTE, failed_password, home_net, ip_on, push_answer, push_sent, sign_in};
use super::super::spec::{Actor, ClientRef, Extra, Net, Target};
use super::super::tenant::Role;
use super::super::world::{ATTACK_CLIENTS, CITIES, HOSTING_ISP};
use super::Injector;

impl Injector<'_, '_> {
    /// Makes event `second` part of the request of event `first` (Okta logs every event of
    /// one HTTP request under its `transaction.id`).
    fn same_request(&mut self, first: usize, second: usize) {
        const ID_BITS: u128 = !0xffff_ffff;
        let r = self.log.specs[first].rand & ID_BITS;
        let s = &mut self.log.specs[second];
        s.rand = (s.rand & !ID_BITS) | r;
    }

    /// One failed Identity Engine password attempt: the authenticator check and the
    /// session event, one request.
    fn oie_password_failure(
        &mut self,
        user: u32,
        at: i64,
        net: Net,
        client: ClientRef,
        device: Option<u64>,
    ) -> [usize; 2] {
        let check = self.log.push(
            at,
            "user.authentication.auth_via_mfa",
            "FAILURE",
            Some("INVALID_CREDENTIALS"),
            Actor::User(user),
            Target::Authenticator("Password"),
            net,
            client,
            device,
            None,
            Extra::Factor {
                factor: "PASSWORD_AS_FACTOR",
                push: None,
            },
        );
        let session = failed_password(self.log, user, at + 120, net, client, device, "INVALID_CREDENTIALS");
        self.same_request(check, session);
        [check, session]
    }

    /// Password guessing against one user, logged as an Identity Engine org logs it.
    pub(super) fn oie_brute_force(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, HOUR);
        let net = Net {
            isp: HOSTING_ISP,
            ip: ip_on(HOSTING_ISP, rng),
            ..Self::attacker_net(rng, u.home)
        };
        let client = ClientRef::Attack(rng.random_range(0..ATTACK_CLIENTS.len()));
        let mut idx = Vec::new();
        let mut at = t;
        for _ in 0..rng.random_range(9..20) {
            idx.extend(self.oie_password_failure(u.index, at, net, client, None));
            at += rng.random_range(3_000..25_000);
        }
        self.label("oie_brute_force", "identity_engine_shape", Some(u), Some(net.ip), &idx);
    }

    /// Benign: two to four typos, each logged twice (authenticator check and session event
    /// of one request), then the right password.
    pub(super) fn oie_typos(&mut self, rng: &mut ChaCha8Rng) {
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
            idx.extend(self.oie_password_failure(u.index, at, net, client, Some(dev.token)));
            at += rng.random_range(8_000..40_000);
        }
        let session = rng.random();
        let s = sign_in(self.log, rng, u.index, at, net, client, dev.token, session);
        idx.push(s[s.len() - 1]);
        self.label("oie_typos", "identity_engine_typos", Some(u), Some(net.ip), &idx);
    }

    /// MFA bombing in an org that logs nothing for a push that times out: pushes sent, no
    /// answer logged, until the user approves one.
    pub(super) fn silent_push_bombing(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, HOUR);
        let dev = u.devices[0];
        let net = Net {
            isp: HOSTING_ISP,
            ip: ip_on(HOSTING_ISP, rng),
            ..Self::attacker_net(rng, u.home)
        };
        let client = ClientRef::Attack(1);
        let mut idx = Vec::new();
        let mut at = t;
        // Each push left to time out before the next (a script re-triggers the sign-in).
        for _ in 0..rng.random_range(4..9) {
            idx.push(push_sent(self.log, at, u.index, net, client, dev.token));
            at += rng.random_range(60_000..150_000);
        }
        idx.push(push_sent(self.log, at, u.index, net, client, dev.token));
        idx.push(push_answer(
            self.log,
            at + 6_000,
            u.index,
            net,
            client,
            dev.token,
            ("SUCCESS", None),
            Some("OV_RESPONSE_APPROVE"),
        ));
        self.label(
            "silent_push_bombing",
            "pushes_never_answered_then_approved",
            Some(u),
            Some(net.ip),
            &idx,
        );
    }

    /// Benign: the phone is slow; the user asks for the push again twice and approves the
    /// third.
    pub(super) fn slow_push(&mut self, rng: &mut ChaCha8Rng) {
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
        for _ in 0..3 {
            idx.push(push_sent(self.log, at, u.index, net, client, dev.token));
            at += rng.random_range(30_000..50_000);
        }
        idx.push(push_answer(
            self.log,
            at - 20_000,
            u.index,
            net,
            client,
            dev.token,
            ("SUCCESS", None),
            Some("OV_RESPONSE_APPROVE"),
        ));
        self.label("slow_push", "resent_twice_then_approved", Some(u), Some(net.ip), &idx);
    }

    /// Benign: an office behind one address; a dozen people mistype their password once
    /// each within half an hour and sign in a minute later.
    pub(super) fn office_nat(&mut self, rng: &mut ChaCha8Rng) {
        // The office is in the city where most members live.
        let tenant = self.log.tenant;
        let mut per_city = std::collections::HashMap::new();
        for u in tenant.users.iter().filter(|u| u.role == Role::Member) {
            *per_city.entry(u.home).or_insert(0u32) += 1;
        }
        let Some(city) = per_city
            .into_iter()
            .max_by_key(|&(c, n)| (n, std::cmp::Reverse(c)))
            .map(|(c, _)| c)
        else {
            return;
        };
        let isp = CITIES[city].isp;
        let net = Net::plain(ip_on(isp, rng), city, isp);
        let t = self.when(rng, HOUR);
        let mut idx = Vec::new();
        let mut at = t;
        // Colleagues: members who live in the office's city.
        let want = rng.random_range(11..16);
        let mut people = Vec::new();
        for u in &tenant.users {
            if people.len() >= want {
                break;
            }
            if u.home == city && u.role == Role::Member && !u.night_shift && self.busy.insert(u.index) {
                people.push(u);
            }
        }
        for u in people {
            let dev = u.devices[0];
            let client = ClientRef::Normal(dev.client);
            idx.push(failed_password(
                self.log,
                u.index,
                at,
                net,
                client,
                Some(dev.token),
                "INVALID_CREDENTIALS",
            ));
            let session = rng.random();
            let later = at + rng.random_range(20_000..90_000);
            let s = sign_in(self.log, rng, u.index, later, net, client, dev.token, session);
            idx.push(s[s.len() - 1]);
            at += rng.random_range(30_000..150_000);
        }
        self.label("office_nat", "typos_behind_one_address", None, Some(net.ip), &idx);
    }

    /// Benign: after a password change, the user's second device keeps trying the old one
    /// from home every minute or so, while the user works on the first.
    pub(super) fn stale_password(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, 2 * HOUR);
        let phone = u.devices[u.devices.len() - 1];
        let laptop = u.devices[0];
        let net = Net::plain(u.home_ip, u.home, CITIES[u.home].isp);
        // The phone worked from home this morning, before the password changed.
        let session = rng.random();
        sign_in(
            self.log,
            rng,
            u.index,
            t,
            net,
            ClientRef::Normal(phone.client),
            phone.token,
            session,
        );
        let mut idx = Vec::new();
        let mut at = t + 30 * MINUTE;
        for k in 0..rng.random_range(10..16) {
            idx.push(failed_password(
                self.log,
                u.index,
                at,
                net,
                ClientRef::Normal(phone.client),
                Some(phone.token),
                "INVALID_CREDENTIALS",
            ));
            if k == 5 {
                let session = rng.random();
                let s = sign_in(
                    self.log,
                    rng,
                    u.index,
                    at + 10_000,
                    net,
                    ClientRef::Normal(laptop.client),
                    laptop.token,
                    session,
                );
                idx.push(s[s.len() - 1]);
            }
            at += rng.random_range(40_000..75_000);
        }
        self.label(
            "stale_password",
            "old_password_on_second_device",
            Some(u),
            Some(net.ip),
            &idx,
        );
    }

    /// Benign: the browser updates itself (one major version) and the laptop moves to the
    /// phone's hotspot, mid-session.
    pub(super) fn browser_update(&mut self, rng: &mut ChaCha8Rng) {
        let u = self.member(rng);
        let t = self.when(rng, 3 * HOUR);
        let dev = u.devices[0];
        let session = rng.random();
        let home = Net::plain(u.home_ip, u.home, CITIES[u.home].isp);
        let mut idx = sign_in(
            self.log,
            rng,
            u.index,
            t,
            home,
            ClientRef::Normal(dev.client),
            dev.token,
            session,
        );
        let hotspot = Net {
            isp: CITIES[u.home].mobile,
            ip: ip_on(CITIES[u.home].mobile, rng),
            ..home
        };
        let mut at = t + rng.random_range(20..90) * MINUTE;
        for _ in 0..rng.random_range(2..4) {
            let app = u.apps[rng.random_range(0..u.apps.len())];
            idx.push(self.log.push(
                at,
                "user.authentication.sso",
                "SUCCESS",
                None,
                Actor::User(u.index),
                Target::App(app),
                hotspot,
                ClientRef::Updated(dev.client),
                Some(dev.token),
                Some(session),
                Extra::None,
            ));
            at += rng.random_range(1..10) * MINUTE;
        }
        self.label(
            "browser_update",
            "update_and_hotspot_mid_session",
            Some(u),
            Some(hotspot.ip),
            &idx,
        );
    }

    /// A spray paced to stay under any half-hour window: one existing user every few
    /// minutes for hours, from one hosting address.
    pub(super) fn slow_spray(&mut self, rng: &mut ChaCha8Rng) {
        let t = self.when(rng, 4 * HOUR);
        let net = Net::plain(ip_on(HOSTING_ISP, rng), 29, HOSTING_ISP);
        let client = ClientRef::Attack(0);
        let n_users = self.log.tenant.users.len() as u32;
        let mut idx = Vec::new();
        let mut at = t;
        for _ in 0..rng.random_range(25..40) {
            let victim = rng.random_range(0..n_users);
            idx.push(failed_password(
                self.log,
                victim,
                at,
                net,
                client,
                None,
                "INVALID_CREDENTIALS",
            ));
            at += rng.random_range(3 * MINUTE..6 * MINUTE);
        }
        self.label("slow_spray", "paced_under_the_window", None, Some(net.ip), &idx);
    }
}
