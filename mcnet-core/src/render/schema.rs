//! Checks custom resources against the upstream CRD schemas
//! (`spec.versions[].schema.openAPIV3Schema`).
//!
//! The schemas of the kinds mcnet renders are embedded (see
//! `mcnet-core/schemas/crds/README.md` for their upstream versions); others
//! can be loaded from CRD files. Formats (`duration`, `date-time`) are not
//! checked: Kubernetes' formats are not JSON Schema's.

use crate::diag::Code;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::diag::Diagnostic;
use crate::{Error, Result};

const EMBEDDED: [(&str, &str); 5] = [
    (
        "ciliumnetworkpolicies.yaml",
        include_str!("../../schemas/crds/ciliumnetworkpolicies.yaml"),
    ),
    (
        "multicluster.linkerd.io_links.yaml",
        include_str!("../../schemas/crds/multicluster.linkerd.io_links.yaml"),
    ),
    (
        "policy.linkerd.io_servers.yaml",
        include_str!("../../schemas/crds/policy.linkerd.io_servers.yaml"),
    ),
    (
        "policy.linkerd.io_authorizationpolicies.yaml",
        include_str!("../../schemas/crds/policy.linkerd.io_authorizationpolicies.yaml"),
    ),
    (
        "policy.linkerd.io_meshtlsauthentications.yaml",
        include_str!("../../schemas/crds/policy.linkerd.io_meshtlsauthentications.yaml"),
    ),
];

/// Compiled CRD schemas, by `(apiVersion, kind)`.
pub struct CrdSchemas {
    validators: BTreeMap<(String, String), jsonschema::Validator>,
}

impl std::fmt::Debug for CrdSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.validators.keys()).finish()
    }
}

fn invalid(what: &str, field: &str, why: String) -> Error {
    Error::Invalid {
        what: what.to_string(),
        problems: vec![Diagnostic::new(Code::CrdInvalid, field, why)],
    }
}

/// Kubernetes writes `pattern`s in Go's RE2 syntax, where a one-letter
/// Unicode class may go without braces (`\PC`); JSON Schema's ECMA-262
/// dialect needs them (`\P{C}`). Rewrites every `pattern` in place.
fn re2_patterns(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match v {
                    Value::String(p) if k == "pattern" => *p = braced_classes(p),
                    _ => re2_patterns(v),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(re2_patterns),
        _ => {}
    }
}

fn braced_classes(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 4);
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '\\' {
            continue;
        }
        let Some(next) = chars.next() else { break };
        out.push(next);
        if matches!(next, 'p' | 'P') {
            if let Some(&class) = chars.peek() {
                if class.is_ascii_alphabetic() {
                    chars.next();
                    out.push('{');
                    out.push(class);
                    out.push('}');
                }
            }
        }
    }
    out
}

impl CrdSchemas {
    /// The schemas of every custom resource kind mcnet renders.
    pub fn embedded() -> Result<CrdSchemas> {
        Self::from_sources(EMBEDDED.iter().copied())
    }

    /// Reads CRD manifests (YAML): `(name, text)` pairs.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<CrdSchemas> {
        let mut validators = BTreeMap::new();
        for (name, text) in sources {
            let crd: Value = serde_yaml::from_str(text)
                .map_err(|e| invalid(&format!("CRD `{name}`"), "", e.to_string()))?;
            let group = crd["spec"]["group"]
                .as_str()
                .ok_or_else(|| invalid(&format!("CRD `{name}`"), "spec.group", "missing".into()))?;
            let kind = crd["spec"]["names"]["kind"].as_str().ok_or_else(|| {
                invalid(
                    &format!("CRD `{name}`"),
                    "spec.names.kind",
                    "missing".into(),
                )
            })?;
            let versions = crd["spec"]["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (i, v) in versions.iter().enumerate() {
                let field = format!("spec.versions[{i}].schema.openAPIV3Schema");
                let (Some(version), Some(schema)) =
                    (v["name"].as_str(), v["schema"].get("openAPIV3Schema"))
                else {
                    return Err(invalid(&format!("CRD `{name}`"), &field, "missing".into()));
                };
                let mut schema = schema.clone();
                re2_patterns(&mut schema);
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft4)
                    .should_validate_formats(false)
                    .build(&schema)
                    .map_err(|e| invalid(&format!("CRD `{name}`"), &field, e.to_string()))?;
                validators.insert((format!("{group}/{version}"), kind.to_string()), validator);
            }
        }
        Ok(CrdSchemas { validators })
    }

    /// Whether a schema for this `apiVersion` and `kind` is known.
    pub fn knows(&self, api_version: &str, kind: &str) -> bool {
        self.validators
            .contains_key(&(api_version.to_string(), kind.to_string()))
    }

    /// Every schema violation of `doc` as `path: message`; `None` when no
    /// schema is known for its kind.
    pub fn check(&self, doc: &Value) -> Option<Vec<String>> {
        let key = (
            doc["apiVersion"].as_str().unwrap_or_default().to_string(),
            doc["kind"].as_str().unwrap_or_default().to_string(),
        );
        let v = self.validators.get(&key)?;
        Some(
            v.iter_errors(doc)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_letter_unicode_classes_get_braces() {
        assert_eq!(braced_classes(r"^\PC*$"), r"^\P{C}*$");
        assert_eq!(braced_classes(r"\p{L}\pL"), r"\p{L}\p{L}");
        assert_eq!(
            braced_classes(r"\\pC"),
            r"\\pC",
            "an escaped backslash, then a literal p"
        );
        assert_eq!(braced_classes(r"a\.b"), r"a\.b");
    }
}
