//! The streaming side of mcp-identity-gateway: sources, decoding, normalization, the dead
//! letter and the Parquet store, and SQL over it.
//!
//! Data flows one way: a source ([`source`]) hands raw records in batches to the ingest
//! stage ([`ingest`]), which decodes ([`decode`]), normalizes ([`normalize`]), dedups and
//! writes them ([`store`]) or dead-letters them with a reason ([`deadletter`]). [`replay`]
//! drives that over files; [`query`] reads the result back with DataFusion.

pub mod baseline;
pub mod config;
pub mod deadletter;
pub mod decode;
pub mod detect;
pub mod ingest;
pub mod layered;
pub mod normalize;
pub mod ocsf_finding;
pub mod okta;
pub mod par;
pub mod process;
pub mod query;
pub mod reject;
pub mod repair;
pub mod replay;
pub mod report;
pub mod source;
pub mod store;
pub mod stream;
pub mod vectors;

pub use config::PipelineConfig;
pub use replay::{Summary, replay};
pub use store::Store;
