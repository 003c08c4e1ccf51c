//! The testbed: an Okta org that is not there.
//!
//! [`generate`] writes a synthetic tenant's System Log with ground-truth labels (normal
//! life, benign look-alikes and attacks). [`sim`] serves an Okta org over HTTP for
//! everything the product calls (`idgw sim serve`).

pub mod eval;
pub mod generate;
pub mod labels;
pub mod sim;

pub use generate::{GenerateConfig, GenerateSummary, generate};
pub use labels::Label;
