//! Reading a topology from YAML or JSON, reporting syntax errors with their
//! line and column and every unknown field with its path.

use super::model::Topology;
use crate::diag::Code;
use crate::diag::Diagnostic;

/// The result of parsing: the topology when its structure is sound, and
/// every problem found along the way.
#[derive(Debug)]
pub struct Parsed {
    /// The topology, unless the document is malformed.
    pub topology: Option<Topology>,
    /// Syntax errors, type errors and unknown fields.
    pub problems: Vec<Diagnostic>,
}

/// Parses a topology document. JSON is recognised by a leading `{`;
/// anything else is read as YAML (of which JSON is a subset anyway).
pub fn parse(text: &str) -> Parsed {
    // Size and nesting are checked before any parser runs.
    if let Err(crate::Error::Invalid { problems, .. }) = crate::input::check("topology", text) {
        return Parsed {
            topology: None,
            problems,
        };
    }
    let mut unknown = Vec::new();
    let result = if text.trim_start().starts_with('{') {
        let mut de = serde_json::Deserializer::from_str(text);
        let r = deserialize(&mut de, &mut unknown).map_err(|e| {
            let inner = e.inner();
            let loc = format!("line {} column {}", inner.line(), inner.column());
            (
                e.path().to_string(),
                loc,
                inner.to_string(),
                inner.is_syntax() || inner.is_eof(),
            )
        });
        r.and_then(|t| {
            de.end().map(|_| t).map_err(|e| {
                (
                    String::new(),
                    format!("line {} column {}", e.line(), e.column()),
                    e.to_string(),
                    true,
                )
            })
        })
    } else {
        let de = serde_yaml::Deserializer::from_str(text);
        deserialize(de, &mut unknown).map_err(|e| {
            let inner = e.inner();
            let loc = inner
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            let msg = strip_location(&inner.to_string());
            let syntax = is_yaml_syntax(&msg);
            (e.path().to_string(), loc, msg, syntax)
        })
    };
    match result {
        Ok(topology) => {
            let mut problems: Vec<Diagnostic> = unknown
                .into_iter()
                .map(|path| {
                    let field = path.rsplit('.').next().unwrap_or(&path).to_string();
                    Diagnostic::new(
                        Code::ParseUnknownField,
                        path.clone(),
                        format!("unknown field `{field}`"),
                    )
                })
                .collect();
            if topology.api_version != super::model::API_VERSION {
                problems.push(Diagnostic::new(
                    Code::ParseApiVersion,
                    "apiVersion",
                    format!(
                        "apiVersion `{}` is not supported; expected `{}`",
                        topology.api_version,
                        super::model::API_VERSION
                    ),
                ));
            }
            if topology.kind != super::model::KIND {
                problems.push(Diagnostic::new(
                    Code::ParseKind,
                    "kind",
                    format!("kind `{}` is not `{}`", topology.kind, super::model::KIND),
                ));
            }
            Parsed {
                topology: Some(topology),
                problems,
            }
        }
        Err((path, loc, msg, syntax)) => {
            let path = if path == "." { String::new() } else { path };
            let code = if syntax {
                Code::ParseSyntax
            } else {
                Code::ParseSchema
            };
            let message = match (loc.is_empty(), path.is_empty()) {
                (false, false) => format!("{loc}: {path}: {msg}"),
                (false, true) => format!("{loc}: {msg}"),
                (true, false) => format!("{path}: {msg}"),
                (true, true) => msg,
            };
            Parsed {
                topology: None,
                problems: vec![Diagnostic::new(code, path, message)],
            }
        }
    }
}

fn deserialize<'de, D>(
    de: D,
    unknown: &mut Vec<String>,
) -> Result<Topology, serde_path_to_error::Error<D::Error>>
where
    D: serde::Deserializer<'de>,
{
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(render_path(&path));
    let ignored = serde_ignored::Deserializer::new(de, &mut record);
    serde_path_to_error::deserialize(ignored)
}

fn render_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", render_path(parent)),
        Path::Map { parent, key } => {
            let p = render_path(parent);
            if p.is_empty() {
                key.to_string()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => render_path(parent),
    }
}

/// serde_yaml appends " at line L column C" to its messages; the location is
/// reported separately.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn is_yaml_syntax(msg: &str) -> bool {
    const SYNTAX: [&str; 8] = [
        "did not find expected",
        "mapping values are not allowed",
        "found unexpected end of stream",
        "could not find expected",
        "found character that cannot start",
        "while scanning",
        "while parsing",
        "found unknown anchor",
    ];
    SYNTAX.iter().any(|s| msg.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_yaml_reports_line_and_column() {
        let p = parse("apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata:\n  name: x\nspec:\n  networks:\n    - name: \"a\n");
        assert!(p.topology.is_none());
        assert_eq!(p.problems.len(), 1);
        assert!(p.problems[0].message.contains("line "), "{}", p.problems[0]);
    }

    #[test]
    fn unknown_fields_are_all_reported_with_paths() {
        let p = parse(
            "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {name: x, colour: red}\nspec:\n  networks:\n    - {name: a, provider: p, region: r, cidrs: [10.0.0.0/16], sise: 3}\n",
        );
        let paths: Vec<_> = p.problems.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["metadata.colour", "spec.networks[0].sise"]);
        assert!(p.topology.is_some());
    }

    #[test]
    fn json_errors_carry_location() {
        let p = parse("{\"apiVersion\": \"mcnet.io/v1alpha1\", \"kind\": ");
        assert_eq!(p.problems[0].code, Code::ParseSyntax);
        assert!(
            p.problems[0].message.contains("line 1"),
            "{}",
            p.problems[0]
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let p = parse("apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {name: x}\nspec:\n  interconnect:\n    routers:\n      - {name: m, location: l, speedMbps: fast, asn: 1}\n");
        assert_eq!(p.problems[0].code, Code::ParseSchema);
        assert_eq!(p.problems[0].path, "spec.interconnect.routers[0].speedMbps");
    }
}
