//! Okta System Log types and the parsers for the strings packed inside them.

pub mod debug_strings;
mod event;
pub mod lenient;

pub use event::*;
