//! Integration tests of the pipeline crate (one test binary, topical modules).

mod bad_input;
mod baseline;
mod compact;
mod detect;
mod event_columns;
mod formats;
mod golden;
mod normalize_props;
mod query;
mod samples;
mod stream;
mod support;
mod user_events;
mod vectors;
