//! How a call's principal is established, per transport: a bearer token checked by the
//! HTTP middleware, the stdio operator's device-flow sign-in, or the loudly labelled
//! `--dev-no-auth` demo mode.

use std::sync::{Arc, RwLock};

use rmcp::RoleServer;
use rmcp::service::RequestContext;

use crate::auth::device::{self, DeviceStart};
use crate::auth::{AuthConfig, AuthError, Principal, ServerMetadata, Validator};

/// The authentication mode of a running gateway.
#[derive(Debug)]
pub enum Access {
    /// Every call acts as `dev-no-auth` with every scope. For demos on loopback only.
    DevNoAuth,
    /// HTTP: the middleware validated the bearer token and put the principal in the
    /// request's extensions.
    Bearer,
    /// stdio: the operator signs in with the device flow (or `idgw gateway login` earlier).
    DeviceFlow(Box<DeviceFlow>),
}

/// The stdio sign-in state.
#[derive(Debug)]
pub struct DeviceFlow {
    pub config: AuthConfig,
    pub meta: ServerMetadata,
    pub validator: Arc<Validator>,
    /// The signed-in principal of this connection.
    pub session: RwLock<Option<Principal>>,
}

impl DeviceFlow {
    /// Sets up the device flow and takes over a token `idgw gateway login` stored, if it
    /// is still valid (refreshing it when it is about to expire).
    pub async fn start(config: AuthConfig, meta: ServerMetadata, validator: Arc<Validator>) -> Self {
        let flow = DeviceFlow {
            config,
            meta,
            validator,
            session: RwLock::new(None),
        };
        match device::current(&flow.config, &flow.meta).await {
            Ok(Some(t)) => match flow.validator.validate(&t.access_token).await {
                Ok(p) => {
                    tracing::info!(principal = %p.subject, "signed in with the stored token");
                    flow.set(Some(p));
                }
                Err(e) => tracing::warn!(error = %e, "the stored token does not validate; sign in again"),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot use the stored token"),
        }
        flow
    }

    fn set(&self, p: Option<Principal>) {
        *self.session.write().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// The signed-in principal, refreshed through the stored token shortly before expiry.
    pub async fn principal(&self) -> Option<Principal> {
        let current = self.session.read().unwrap_or_else(|e| e.into_inner()).clone()?;
        let now = chrono::Utc::now().timestamp();
        if current.expires_at - now > 60 {
            return Some(current);
        }
        let refreshed = match device::current(&self.config, &self.meta).await {
            Ok(Some(t)) => self.validator.validate(&t.access_token).await.ok(),
            _ => None,
        };
        self.set(refreshed.clone());
        refreshed
    }

    /// `initiate_device_auth`.
    pub async fn initiate(&self, scopes: &[&str]) -> Result<DeviceStart, AuthError> {
        device::start(&self.config, &self.meta, scopes).await
    }

    /// `complete_device_auth`: polls for up to `wait`, then validates and activates the
    /// token for this connection and stores it.
    pub async fn complete(
        &self,
        device_code: &str,
        interval: u64,
        wait: std::time::Duration,
    ) -> Result<Option<Principal>, AuthError> {
        let Some(token) = device::poll(&self.config, &self.meta, device_code, interval, wait).await? else {
            return Ok(None);
        };
        let p = self
            .validator
            .validate(&token.access_token)
            .await
            .map_err(|e| AuthError::Flow(format!("the issued token does not validate: {e}")))?;
        device::save(&self.config.token_path(), &token)?;
        self.set(Some(p.clone()));
        Ok(Some(p))
    }
}

impl Access {
    /// The principal of the call `context` belongs to.
    pub async fn principal(&self, context: &RequestContext<RoleServer>) -> Option<Principal> {
        match self {
            Access::DevNoAuth => Some(Principal::dev_no_auth()),
            Access::Bearer => context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|p| p.extensions.get::<Principal>())
                .cloned(),
            Access::DeviceFlow(flow) => flow.principal().await,
        }
    }

    /// Whether the device-flow tools apply.
    pub fn device_flow(&self) -> Option<&DeviceFlow> {
        match self {
            Access::DeviceFlow(f) => Some(f),
            _ => None,
        }
    }
}
