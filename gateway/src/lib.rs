//! The MCP gateway of mcp-identity-gateway: read-only tools over the store the pipeline
//! writes, served over stdio and streamable HTTP with rmcp (the official Rust SDK).
//!
//! [`data`] reads the store (DataFusion over the Parquet tables on a runtime of its own,
//! the vector index); [`tools`] are the tools' arguments, results and logic; [`server`] is
//! the MCP service and its transports. The gateway never writes the store.

pub mod data;
pub mod ondemand;
pub mod resources;
pub mod server;
pub mod tools;

pub use data::StoreReader;
pub use server::{Gateway, serve_http, serve_stdio};
