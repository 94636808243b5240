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
    #[error("cannot serialise {what}")]
    Serialize {
        /// What was being written.
        what: String,
        /// The serialiser's error (serde_yaml's or serde_json's).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A file could not be read (or is not one mcnet reads: a device, too
    /// large, not UTF-8).
    #[error("cannot read `{path}`")]
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

/// Shows an error with its whole [`source`](std::error::Error::source)
/// chain, `outer: inner: innermost`, for logs and reports that keep only
/// text.
///
/// ```
/// use mcnet_core::error::Chain;
/// let io = std::io::Error::other("disk full");
/// let e = mcnet_core::Error::Io { path: "t.yaml".into(), source: io };
/// assert_eq!(Chain(&e).to_string(), "cannot read `t.yaml`: disk full");
/// ```
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

/// `Result` with mcnet-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
