//! The SOC report (`idgw report`): one self-contained HTML page an analyst opens without
//! network access. Alerts by detection and severity over time, the riskiest users with their
//! reasons, an impossible-travel map and a timeline for each of the riskiest users; charts
//! are inline SVG, the page has no script and loads nothing.

mod charts;
mod data;
mod html;
mod map;

pub use data::{ReportData, Totals};

use crate::Store;
use crate::query::QueryError;

/// What goes into the page.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Users in the riskiest-users table.
    pub top_users: usize,
    /// Of those, how many get a timeline.
    pub timeline_users: usize,
    /// Days of activity before each user's last event that a timeline covers.
    pub timeline_days: i64,
    /// Events drawn per timeline (the most recent).
    pub timeline_events: usize,
    /// Impossible-travel alerts drawn on the map (the riskiest).
    pub max_arcs: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            top_users: 25,
            timeline_users: 10,
            timeline_days: 7,
            timeline_events: 400,
            max_arcs: 300,
        }
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store could not be queried.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A query's result did not have the expected shape (a store written by another version).
    #[error("unexpected result shape for `{sql}`: {reason}")]
    Decode {
        /// The query.
        sql: String,
        /// What did not fit.
        reason: String,
    },
}

/// A made report: the page and what it shows.
#[derive(Debug)]
pub struct Report {
    /// The HTML page.
    pub html: String,
    /// The data behind it.
    pub data: ReportData,
}

/// Reads the store and renders the page.
pub async fn build(store: &Store, options: &ReportOptions) -> Result<Report, ReportError> {
    let data = data::gather(store, options).await?;
    Ok(Report {
        html: html::render(&data),
        data,
    })
}
