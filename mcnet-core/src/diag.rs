//! Diagnostics: what validation and linting report.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input is invalid.
    Error,
    /// The input is valid but risky.
    Warning,
}

/// One problem found in a user's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// A stable, machine-readable code such as `cidr.overlap`.
    pub code: String,
    /// The path of the offending field, e.g. `spec.clusters[1].podCidr`.
    pub path: String,
    /// A message that names the objects involved.
    pub message: String,
}

impl Diagnostic {
    /// Builds a diagnostic.
    pub fn new(code: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            code: code.to_string(),
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "[{}] {}", self.code, self.message)
        } else {
            write!(f, "[{}] {}: {}", self.code, self.path, self.message)
        }
    }
}

/// Everything validation found: errors make the input invalid, warnings do not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Whether there are no errors.
    pub valid: bool,
    /// Problems that make the input invalid.
    pub errors: Vec<Diagnostic>,
    /// Risks that do not.
    pub warnings: Vec<Diagnostic>,
}

impl Report {
    /// Builds a report, setting `valid` from the errors.
    pub fn new(errors: Vec<Diagnostic>, warnings: Vec<Diagnostic>) -> Self {
        Report {
            valid: errors.is_empty(),
            errors,
            warnings,
        }
    }

    /// Whether an error with this code was reported.
    pub fn has_error(&self, code: &str) -> bool {
        self.errors.iter().any(|d| d.code == code)
    }

    /// Whether a warning with this code was reported.
    pub fn has_warning(&self, code: &str) -> bool {
        self.warnings.iter().any(|d| d.code == code)
    }
}
