//! JSON Schema documents of the contracts, generated from the Rust types.
//!
//! The files in `schemas/json/` are these documents, checked in; a test regenerates them and
//! fails when a checked-in file is stale (run it with `UPDATE_SCHEMAS=1` to rewrite them).

use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};

use crate::{Alert, AuditRecord, IdentityState, Label, SemanticEvent, okta::LogEvent};

fn render<T: JsonSchema>() -> String {
    let generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let schema = generator.into_root_schema_for::<T>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// `(file name, document)` for every contract.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("okta_log_event.schema.json", render::<LogEvent<'static>>()),
        ("semantic_event.schema.json", render::<SemanticEvent<'static>>()),
        ("alert.schema.json", render::<Alert>()),
        ("identity_state.schema.json", render::<IdentityState>()),
        ("audit_record.schema.json", render::<AuditRecord>()),
        ("label.schema.json", render::<Label>()),
    ]
}
