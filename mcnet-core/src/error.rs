//! The error type of mcnet-core.

use crate::diag::Diagnostic;

/// Errors returned by mcnet-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input has problems; each names the object and the field.
    #[error("{what} is invalid: {}", summarize(.problems))]
    Invalid {
        /// What was being read.
        what: String,
        /// Every problem found.
        problems: Vec<Diagnostic>,
    },
    /// Serialising failed.
    #[error("cannot serialise {what}: {reason}")]
    Serialize {
        /// What was being written.
        what: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read (or is not one mcnet reads: a device, too
    /// large, not UTF-8).
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A lookup named something that does not exist.
    #[error("{kind} `{name}` not found")]
    NotFound {
        /// The kind of object.
        kind: &'static str,
        /// Its name.
        name: String,
    },
}

fn summarize(problems: &[Diagnostic]) -> String {
    match problems {
        [] => "no details".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// `Result` with mcnet-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
