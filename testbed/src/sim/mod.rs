//! `idgw sim serve`: a local HTTP server that behaves like an Okta org for what this
//! product calls — the System Log API, the Users API (lifecycle state machine and sessions),
//! Okta Workflows API-endpoint flows — with Okta's status codes, error objects, `Link`
//! pagination, `X-Rate-Limit-*` headers and 429s, and switchable faults.
//!
//! The custom authorization server (`/oauth2/{as}/…`) serves the device grant, RS256 access
//! tokens with Okta's claims, a rotating JWKS and discovery documents ([`oauth`]). The org
//! authorization server (`/oauth2/v1/token`) serves client credentials with private_key_jwt
//! to service apps; its opaque tokens are accepted by the APIs as `Bearer`, within their
//! `okta.*` scopes.
//!
//! `GET /api/v1/users/{id}/roles` lists a user's admin role assignments (the tenant's
//! admins hold `SUPER_ADMIN`).
//!
//! Simulator-only endpoints stand in for what is not Okta: `GET /sim/outbox` (mail and
//! notifications sent), `GET`/`POST /sim/faults` (latency, 429 and 5xx bursts, dropped
//! connections), `POST /sim/device/{approve,deny}` (the person at the verification page),
//! `POST /sim/keys/rotate`. Every action appends the System Log event Okta would write, so a pipeline
//! polling the simulator sees what was done.

pub mod authcode;
pub mod filter;
mod handlers;
pub mod oauth;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::generate::activity::{DAY, DayLog, sign_in};
use crate::generate::spec::{ClientRef, Renderer};
use crate::generate::tenant::{Role, Tenant, subseed};
use crate::generate::{GenerateConfig, generate};
use state::{OrgState, SimUser};

/// Simulator configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Users of the generated tenant.
    pub users: u32,
    /// Seed of the generated tenant.
    pub seed: u64,
    /// Days of history before now.
    pub history_days: u32,
    /// Serve this NDJSON log instead of a generated history (users are taken from it).
    pub events: Option<Vec<String>>,
    /// New sign-in activity per second (0 for none).
    pub live_rate: f64,
    /// The API token (`Authorization: SSWS …`) the org accepts.
    pub api_token: String,
    /// The Workflows client token every flow accepts.
    pub workflows_token: String,
    /// Requests per minute: System Log.
    pub logs_per_minute: u32,
    /// Requests per minute: user reads.
    pub user_reads_per_minute: u32,
    /// Requests per minute: user writes (lifecycle, sessions).
    pub user_writes_per_minute: u32,
    /// OAuth client ids allowed to use the device grant.
    pub oauth_clients: Vec<String>,
    /// `aud` of the access tokens.
    pub audience: String,
    /// Device-grant polling interval, in seconds.
    pub device_interval_s: u64,
    /// OAuth service apps of the org authorization server (client credentials with
    /// private_key_jwt, reference.md §3.1).
    pub service_apps: Vec<ServiceApp>,
    /// Sign-in redirect URIs of the OAuth clients (authorization-code grant); more can be
    /// registered at run time (`POST /sim/oauth/redirect-uris`).
    pub redirect_uris: Vec<String>,
}

/// An OAuth service app: its client id, the public key its assertions are signed with,
/// and the `okta.*` scopes it was granted.
#[derive(Debug, Clone)]
pub struct ServiceApp {
    pub client_id: String,
    /// PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`).
    pub public_key_pem: String,
    pub scopes: Vec<String>,
}

/// Every `okta.*` scope the simulated APIs check.
pub const OKTA_SCOPES: [&str; 4] = [
    "okta.users.read",
    "okta.users.manage",
    "okta.logs.read",
    "okta.roles.read",
];

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            users: 200,
            seed: 1,
            history_days: 2,
            events: None,
            live_rate: 0.0,
            api_token: "sim-api-token".into(),
            workflows_token: "sim-workflows-token".into(),
            logs_per_minute: 120,
            user_reads_per_minute: 2000,
            user_writes_per_minute: 600,
            oauth_clients: vec!["0oa1simmcpclient0000".into()],
            audience: "api://mcp".into(),
            device_interval_s: 5,
            service_apps: Vec::new(),
            redirect_uris: Vec::new(),
        }
    }
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("binding {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("generating the tenant: {0}")]
    Generate(#[from] crate::generate::GenerateError),
}

/// Shared state of a running simulator.
#[derive(Debug)]
pub struct Sim {
    pub config: SimConfig,
    pub state: Mutex<OrgState>,
    pub auth: Mutex<oauth::AuthState>,
    pub tenant: Tenant,
}

/// Builds the org: users and history.
pub fn build(config: SimConfig) -> Result<Arc<Sim>, SimError> {
    let now = Utc::now().timestamp_millis();
    let tenant = Tenant::new(config.seed, config.users.max(2));
    let mut state = OrgState::default();
    let created = now - 400 * DAY;
    let history: Vec<String> = match &config.events {
        Some(lines) => lines.clone(),
        None => {
            let start = now.div_euclid(DAY) * DAY - i64::from(config.history_days) * DAY;
            let generator = GenerateConfig {
                users: config.users.max(2),
                days: config.history_days,
                seed: config.seed,
                start: chrono::DateTime::from_timestamp_millis(start).unwrap_or_default(),
                ..GenerateConfig::default()
            };
            let mut events = Vec::new();
            let mut labels = Vec::new();
            generate(&generator, &mut events, &mut labels, &mut |_| {})?;
            String::from_utf8_lossy(&events).lines().map(str::to_owned).collect()
        }
    };
    if config.events.is_none() {
        for u in &tenant.users {
            let mut user = SimUser::active(&u.id, &u.login, &u.name, created);
            match u.role {
                Role::Admin => {
                    user.admin_roles = vec!["SUPER_ADMIN".into()];
                    user.groups = vec!["Okta Administrators".into()];
                }
                Role::Service => user.groups = vec!["Service Accounts".into()],
                Role::Member => user.groups = vec!["Staff".into()],
            }
            state.add_user(user);
        }
    }
    for line in history {
        // History is persisted at its published time (future events are not served early).
        let published = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| {
                v["published"]
                    .as_str()
                    .and_then(|p| chrono::DateTime::parse_from_rfc3339(p).ok())
            })
            .map_or(now, |t| t.timestamp_millis().min(now));
        if config.events.is_some() {
            users_from_event(&mut state, &line, created);
        }
        state.append(line, published);
    }
    Ok(Arc::new(Sim {
        config,
        state: Mutex::new(state),
        auth: Mutex::default(),
        tenant,
    }))
}

/// In `--events` mode the org's users are the users its log mentions.
fn users_from_event(state: &mut OrgState, line: &str, created: i64) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return;
    };
    let mut people = vec![v["actor"].clone()];
    if let Some(targets) = v["target"].as_array() {
        people.extend(targets.iter().cloned());
    }
    for p in people {
        if p["type"] != "User" {
            continue;
        }
        let (Some(id), Some(login)) = (p["id"].as_str(), p["alternateId"].as_str()) else {
            continue;
        };
        if state.user_index(id).is_some() {
            continue;
        }
        let name = p["displayName"].as_str().unwrap_or(login);
        state.add_user(SimUser::active(id, login, name, created));
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its state.
    pub sim: Arc<Sim>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `http://addr`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Binds `addr` (port 0 picks one) and serves until stopped.
pub async fn serve(addr: &str, sim: Arc<Sim>) -> Result<Running, SimError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| SimError::Bind {
        addr: addr.to_owned(),
        source,
    })?;
    let app = handlers::router(Arc::clone(&sim));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    if sim.config.live_rate > 0.0 {
        tokio::spawn(live_activity(Arc::clone(&sim)));
    }
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Running {
        addr: local,
        sim,
        shutdown: Some(tx),
        task,
    })
}

/// Keeps users signing in at `live_rate` per second, with current timestamps.
async fn live_activity(sim: Arc<Sim>) {
    let mut rng = ChaCha8Rng::seed_from_u64(subseed(sim.config.seed, &[99]));
    let period = std::time::Duration::from_secs_f64(1.0 / sim.config.live_rate.max(0.001));
    let mut tick = tokio::time::interval(period.max(std::time::Duration::from_millis(1)));
    let members: Vec<u32> = sim
        .tenant
        .users
        .iter()
        .filter(|u| u.role == Role::Member)
        .map(|u| u.index)
        .collect();
    if members.is_empty() {
        return;
    }
    let renderer = Renderer { tenant: &sim.tenant };
    loop {
        tick.tick().await;
        let now = Utc::now().timestamp_millis();
        let user = &sim.tenant.users[members[rng.random_range(0..members.len())] as usize];
        let mut log = DayLog {
            tenant: &sim.tenant,
            day_start: now.div_euclid(DAY) * DAY,
            specs: Vec::new(),
            ids: ChaCha8Rng::seed_from_u64(rng.random()),
        };
        let net = crate::generate::activity::home_net(user, &mut rng);
        let dev = user.devices[0];
        let session = rng.random();
        sign_in(
            &mut log,
            &mut rng,
            user.index,
            now,
            net,
            ClientRef::Normal(dev.client),
            dev.token,
            session,
        );
        let mut lines = Vec::new();
        for spec in &mut log.specs {
            // Live events are stamped now; the sign-in's steps keep their spacing.
            spec.t = spec.t.min(now);
            let mut out = Vec::new();
            if renderer.render(spec, &mut out).is_ok() {
                lines.push(String::from_utf8_lossy(&out).into_owned());
            }
        }
        if let Ok(mut state) = sim.state.lock() {
            for line in lines {
                state.append(line, now);
            }
        }
    }
}
