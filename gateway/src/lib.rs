//! The MCP gateway of mcp-identity-gateway: tools over the store the pipeline writes and
//! audited actions on Okta, served over stdio and streamable HTTP with rmcp (the official
//! Rust SDK).
//!
//! [`data`] reads the store (DataFusion over the Parquet tables on a runtime of its own,
//! the vector index); [`tools`] are the read tools' arguments, results and logic;
//! [`actions`] the actions' policy and audit sequence over [`okta`]; [`approvals`] the
//! approvals the gateway verifies, with its approval page;
//! [`audit`] the hash-chained log; [`auth`] token validation, scopes and the device flow;
//! [`access`] how each transport establishes the caller; [`server`] the MCP service and
//! its transports. The gateway never writes the store; it is the only writer of the audit
//! log.

pub mod access;
mod action_tools;
pub mod actions;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod config;
pub mod data;
pub mod metrics;
pub mod okta;
pub mod ondemand;
pub mod resources;
pub mod server;
pub mod sql_worker;
pub mod text;
pub mod tools;

pub use access::Access;
pub use actions::Actions;
pub use config::GatewayConfig;
pub use data::StoreReader;
pub use server::{Gateway, serve_http, serve_stdio};
