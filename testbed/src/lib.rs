//! The testbed: an Okta org that is not there.
//!
//! [`generate`] writes a synthetic tenant's System Log with ground-truth labels (normal
//! life, benign look-alikes and attacks). [`sim`] serves an Okta org over HTTP for
//! everything the product calls (`idgw sim serve`).

pub mod eval;
pub mod generate;
pub mod sim;

pub use generate::{GenerateConfig, GenerateSummary, generate};
/// The labels format lives with the other contracts (`schemas/json/label.schema.json`).
pub use idgw_schemas::Label;
