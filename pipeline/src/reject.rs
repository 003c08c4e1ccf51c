//! Why an input record was not stored. Every rejected record goes to the dead letter with
//! one of these reasons; nothing is dropped without one.

use std::fmt;

/// The class of a rejection; its `as_str` is the dead letter's `reason` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    /// Larger than the configured maximum event size.
    TooLarge,
    /// Not UTF-8.
    InvalidUtf8,
    /// Not JSON, or JSON cut short.
    NotJson,
    /// JSON, but not an object.
    NotAnObject,
    /// An object whose field has a type the event cannot have (e.g. `actor` a string).
    InvalidField,
    /// `uuid`, `published` or `eventType` is missing or empty.
    MissingField,
    /// `published` is not an RFC 3339 time.
    InvalidTimestamp,
    /// The input ended in the middle of a record (cut gzip stream, unterminated array).
    TruncatedInput,
}

impl RejectKind {
    /// The snake_case name written to the dead letter.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::TooLarge => "too_large",
            RejectKind::InvalidUtf8 => "invalid_utf8",
            RejectKind::NotJson => "not_json",
            RejectKind::NotAnObject => "not_an_object",
            RejectKind::InvalidField => "invalid_field",
            RejectKind::MissingField => "missing_field",
            RejectKind::InvalidTimestamp => "invalid_timestamp",
            RejectKind::TruncatedInput => "truncated_input",
        }
    }
}

/// A rejection: its class and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The class.
    pub kind: RejectKind,
    /// What exactly was wrong, e.g. ``field `actor`: invalid type: string "bob"``.
    pub detail: String,
}

impl Rejection {
    /// A rejection of `kind` with `detail`.
    pub fn new(kind: RejectKind, detail: impl Into<String>) -> Self {
        Rejection {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}
