//! The data contracts of mcp-identity-gateway.
//!
//! Everything the pipeline, the gateway and outside readers agree on lives here, and only
//! that: no I/O, no async runtime. The Okta [`okta::LogEvent`] is what comes in; the
//! [`SemanticEvent`] is what the normalizer makes of it; [`Alert`], [`IdentityState`] and
//! [`AuditRecord`] are what the product writes. [`rows`] holds their flat Arrow form and
//! [`json_schema`] their JSON Schema documents (checked in under `schemas/json/`).

pub mod alert;
pub mod audit;
pub mod identity;
mod ids;
pub mod json_schema;
pub mod label;
pub mod okta;
pub mod rows;
pub mod semantic;

pub use alert::{Alert, Detection, Severity};
pub use audit::{AuditPhase, AuditRecord};
pub use identity::{IdentityState, RiskLevel, RiskReason};
pub use ids::name_hash_hex;
pub use label::Label;
pub use semantic::SemanticEvent;
