//! The topology: one typed model of clouds, networks, clusters, the Megaport
//! interconnect, peerings, private endpoints and the monitoring network.
//!
//! The flow is parse → [`validate()`] / [`ipam::allocate`] / [`paths::analyze`]
//! → report or [`diagram::render_svg`].

pub mod cidr;
pub mod diagram;
pub mod ipam;
mod model;
pub mod name;
pub mod parse;
pub mod paths;
#[cfg(any(test, feature = "test-util"))]
pub mod synth;
pub mod validate;

pub use cidr::Cidr;
pub use model::*;
pub use parse::{parse, Parsed};
pub use validate::{validate, validate_str};

use crate::{Error, Result};

impl Topology {
    /// Parses a YAML or JSON document, failing on any syntax, schema or
    /// unknown-field problem. Use [`validate_str`] to get every problem as a report.
    pub fn from_str_strict(text: &str) -> Result<Topology> {
        let parsed = parse(text);
        match (parsed.topology, parsed.problems.is_empty()) {
            (Some(t), true) => Ok(t),
            (_, _) => Err(Error::Invalid {
                what: "topology".into(),
                problems: parsed.problems,
            }),
        }
    }

    /// Serialises to YAML.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).map_err(|e| Error::Serialize {
            what: "topology".into(),
            source: Box::new(e),
        })
    }
}
