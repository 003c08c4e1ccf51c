//! The testbed: an Okta org that is not there.
//!
//! [`generate`] writes a synthetic tenant's System Log with ground-truth labels (normal
//! life, benign look-alikes and attacks). The Okta simulator (`idgw sim serve`) joins it.

pub mod generate;
pub mod labels;

pub use generate::{GenerateConfig, GenerateSummary, generate};
pub use labels::Label;
