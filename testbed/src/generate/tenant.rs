//! The synthetic tenant: users with a home, a provider, devices, habits and apps.
//! Everything derives from the seed, so a tenant is rebuilt identically, not stored.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::world::{APPS, CITIES, CLIENTS, HOME_CITIES};

/// What a user is in the org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An ordinary employee.
    Member,
    /// An Okta administrator (does admin work).
    Admin,
    /// A service account driving the API with a token.
    Service,
}

/// A browser or device a user signs in with.
#[derive(Debug, Clone, Copy)]
pub struct Device {
    /// Index into [`CLIENTS`].
    pub client: usize,
    /// Seed of the device token hash (`dtHash`) and fingerprint.
    pub token: u64,
}

/// One user.
#[derive(Debug, Clone)]
pub struct User {
    pub index: u32,
    pub id: String,
    pub login: String,
    pub name: String,
    pub role: Role,
    pub home: usize,
    /// The user's stable home IP (as a u32).
    pub home_ip: u32,
    pub devices: Vec<Device>,
    /// Local hour the working day starts.
    pub start_hour: u32,
    pub night_shift: bool,
    /// Indices into [`APPS`].
    pub apps: Vec<usize>,
}

const FIRST: &[&str] = &[
    "ana", "ben", "chiara", "dev", "emma", "farid", "grace", "hiro", "ines", "jonas", "kofi", "lena", "mateo", "nadia",
    "oscar", "priya", "quinn", "rosa", "sven", "tariq", "uma", "victor", "wen", "ximena", "yusuf", "zoe",
];
const LAST: &[&str] = &[
    "lima", "okafor", "rossi", "patel", "schmidt", "haddad", "kim", "tanaka", "garcia", "berg", "mensah", "novak",
    "silva", "ivanova", "brown", "sharma", "walsh", "costa", "larsen", "aziz", "moreau", "chen", "lopez", "demir",
];

const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An Okta-style id: a 3-character prefix and 17 base-62 characters.
pub fn okta_id(prefix: &str, rng: &mut impl Rng) -> String {
    let mut s = String::with_capacity(20);
    s.push_str(prefix);
    for _ in 0..17 {
        s.push(B62[rng.random_range(0..B62.len())] as char);
    }
    s
}

/// Derives a sub-seed, so each part of the tenant has its own reproducible stream.
pub fn subseed(seed: u64, parts: &[u64]) -> u64 {
    // SplitMix64 over the parts: cheap, well mixed, stable.
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for p in parts {
        x = x.wrapping_add(*p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

/// The whole tenant.
#[derive(Debug)]
pub struct Tenant {
    pub seed: u64,
    pub users: Vec<User>,
    /// Indices of admins.
    pub admins: Vec<u32>,
}

impl Tenant {
    /// Builds `n` users from `seed`.
    pub fn new(seed: u64, n: u32) -> Self {
        let mut users = Vec::with_capacity(n as usize);
        let mut admins = Vec::new();
        for index in 0..n {
            let mut rng = ChaCha8Rng::seed_from_u64(subseed(seed, &[1, u64::from(index)]));
            let role = if index % 250 == 1 || n < 250 && index == 1 {
                Role::Admin
            } else if index % 500 == 7 {
                Role::Service
            } else {
                Role::Member
            };
            if role == Role::Admin {
                admins.push(index);
            }
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            let (login, name) = match role {
                Role::Service => (format!("svc-sync{index}@example.com"), format!("Sync Service {index}")),
                _ => (
                    format!("{first}.{last}{index}@example.com"),
                    format!("{} {}", cap(first), cap(last)),
                ),
            };
            let home = rng.random_range(0..HOME_CITIES);
            let isp = super::world::ISPS[CITIES[home].isp];
            let home_ip = (u32::from(isp.octet) << 24) | (rng.random::<u32>() & 0x00ff_fffe) | 1;
            let n_devices = match rng.random_range(0..10) {
                0..=5 => 1,
                6..=8 => 2,
                _ => 3,
            };
            let devices = (0..n_devices)
                .map(|_| Device {
                    client: rng.random_range(0..CLIENTS.len()),
                    token: rng.random(),
                })
                .collect();
            let mut apps: Vec<usize> = (0..APPS.len()).filter(|_| rng.random_bool(0.45)).collect();
            if apps.is_empty() {
                apps.push(0);
            }
            users.push(User {
                index,
                id: okta_id("00u", &mut rng),
                login,
                name,
                role,
                home,
                home_ip,
                devices,
                start_hour: rng.random_range(7..=10),
                night_shift: role == Role::Member && rng.random_bool(0.03),
                apps,
            });
        }
        Tenant { seed, users, admins }
    }
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
