//! MCP resources: the tables' schemas and the detection catalog, for agents that plan SQL
//! or need to know what an alert means before calling tools.

use idgw_schemas::rows::{alerts_schema, events_schema, identity_state_schema};
use rmcp::model::{Resource, ResourceContents};

/// The detection catalog (docs/detections.md), compiled in so the binary serves the text of
/// its own version.
const CATALOG: &str = include_str!("../../docs/detections.md");

const TABLES: [&str; 3] = ["events", "alerts", "identity_state"];

fn table_uri(name: &str) -> String {
    format!("idgw://schema/{name}")
}

const CATALOG_URI: &str = "idgw://catalog/detections";

/// Every resource.
pub fn list() -> Vec<Resource> {
    let mut out: Vec<Resource> = TABLES
        .iter()
        .map(|t| {
            Resource::new(table_uri(t), format!("{t} table schema"))
                .with_description(format!(
                    "Columns of the `{t}` table (name, Arrow type, nullable), for query_sql."
                ))
                .with_mime_type("application/json")
        })
        .collect();
    out.push(
        Resource::new(CATALOG_URI, "detection catalog")
            .with_description("Every detection: what it looks for, defaults, severity logic, ATT&CK ids.")
            .with_mime_type("text/markdown"),
    );
    out
}

/// The contents of `uri`, if it is one of ours.
pub fn read(uri: &str) -> Option<ResourceContents> {
    if uri == CATALOG_URI {
        return Some(text(uri, "text/markdown", CATALOG.to_owned()));
    }
    let table = uri.strip_prefix("idgw://schema/")?;
    let schema = match table {
        "events" => events_schema(),
        "alerts" => alerts_schema(),
        "identity_state" => identity_state_schema(),
        _ => return None,
    };
    let columns: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name(),
                "type": f.data_type().to_string(),
                "nullable": f.is_nullable(),
            })
        })
        .collect();
    let body = serde_json::json!({ "table": table, "columns": columns });
    Some(text(uri, "application/json", body.to_string()))
}

fn text(uri: &str, mime: &str, text: String) -> ResourceContents {
    ResourceContents::TextResourceContents {
        uri: uri.to_owned(),
        mime_type: Some(mime.to_owned()),
        text,
        meta: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_resource_reads() {
        for r in list() {
            let Some(ResourceContents::TextResourceContents { text, .. }) = read(&r.uri) else {
                panic!("{} does not read", r.uri);
            };
            assert!(!text.is_empty());
        }
        assert!(read("idgw://schema/nope").is_none());
        assert!(read("file:///etc/passwd").is_none());
    }
}
