//! Label selectors with Kubernetes semantics (`matchLabels` and
//! `matchExpressions` are ANDed; `NotIn` and `DoesNotExist` match a missing
//! key) and Cilium's label sources (`k8s:`, `any:`, `reserved:`).

use std::collections::BTreeMap;
use std::fmt;

use super::raw::RawSelector;

/// Where a label comes from, as Cilium spells it in a key prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// No prefix or `any:`: matches a label of any source.
    Any,
    /// `k8s:`: Kubernetes labels (pod labels and the derived ones).
    K8s,
    /// `reserved:`: reserved identities (`reserved:host`, `reserved:world`, ...).
    Reserved,
    /// Any other prefix (`container:`, `cidr:`, ...): pods carry none.
    Other(String),
}

/// A label key with its source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Source.
    pub source: Source,
    /// Key without the prefix.
    pub name: String,
}

impl Key {
    /// Parses a Cilium key (`k8s:app`, `reserved:host`, `app`).
    pub fn cilium(raw: &str) -> Key {
        // A Kubernetes key may hold one '/' but no ':', so the first ':' ends the source.
        match raw.split_once(':') {
            Some((src, name)) => Key {
                source: match src {
                    "k8s" => Source::K8s,
                    "any" => Source::Any,
                    "reserved" => Source::Reserved,
                    other => Source::Other(other.to_string()),
                },
                name: name.to_string(),
            },
            None => Key {
                source: Source::Any,
                name: raw.to_string(),
            },
        }
    }

    /// A plain Kubernetes key (no source prefix).
    pub fn k8s(raw: &str) -> Key {
        Key {
            source: Source::Any,
            name: raw.to_string(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Any => f.write_str(&self.name),
            Source::K8s => write!(f, "k8s:{}", self.name),
            Source::Reserved => write!(f, "reserved:{}", self.name),
            Source::Other(s) => write!(f, "{s}:{}", self.name),
        }
    }
}

/// A requirement's operator.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Value is one of.
    In(Vec<String>),
    /// Value is none of (or the key is missing).
    NotIn(Vec<String>),
    /// Key present.
    Exists,
    /// Key absent.
    DoesNotExist,
}

/// One requirement.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The key.
    pub key: Key,
    /// The operator.
    pub op: Op,
}

/// A parsed selector: the AND of its requirements. No requirement matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Requirements.
    pub reqs: Vec<Requirement>,
}

/// Something labels can be looked up in.
pub trait Labels {
    /// The value of `key`, if the labels have it.
    fn get(&self, key: &Key) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get(&self, key: &Key) -> Option<&str> {
        match key.source {
            Source::Any | Source::K8s => BTreeMap::get(self, &key.name).map(String::as_str),
            _ => None,
        }
    }
}

impl Selector {
    /// Parses a selector; `cilium` selects Cilium key syntax. Errors name the field.
    pub fn parse(
        raw: &RawSelector,
        cilium: bool,
        path: &str,
    ) -> Result<Selector, (String, String)> {
        let key = |k: &str| if cilium { Key::cilium(k) } else { Key::k8s(k) };
        let mut reqs = Vec::new();
        for (k, v) in raw.match_labels.iter().flatten() {
            if k.is_empty() {
                return Err((format!("{path}.matchLabels"), "empty label key".into()));
            }
            reqs.push(Requirement {
                key: key(k),
                op: Op::In(vec![v.clone()]),
            });
        }
        for (i, e) in raw.match_expressions.iter().flatten().enumerate() {
            let p = format!("{path}.matchExpressions[{i}]");
            let values = e.values.clone().unwrap_or_default();
            let op = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err((
                        format!("{p}.values"),
                        format!("operator {} needs at least one value", e.operator),
                    ))
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err((
                        format!("{p}.values"),
                        format!("operator {} takes no values", e.operator),
                    ))
                }
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err((
                        format!("{p}.operator"),
                        format!(
                        "unknown operator `{other}` (expected In, NotIn, Exists or DoesNotExist)"
                    ),
                    ))
                }
            };
            if e.key.is_empty() {
                return Err((format!("{p}.key"), "empty label key".into()));
            }
            reqs.push(Requirement {
                key: key(&e.key),
                op,
            });
        }
        Ok(Selector { reqs })
    }

    /// Whether the selector has no requirement (matches everything).
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether any requirement is on `name` (with a source of k8s or any).
    pub fn mentions(&self, name: &str) -> bool {
        self.reqs
            .iter()
            .any(|r| r.key.name == name && matches!(r.key.source, Source::Any | Source::K8s))
    }

    /// Whether any requirement's key starts with `prefix` (k8s or any source).
    pub fn mentions_prefix(&self, prefix: &str) -> bool {
        self.reqs.iter().any(|r| {
            r.key.name.starts_with(prefix) && matches!(r.key.source, Source::Any | Source::K8s)
        })
    }

    /// Whether any requirement uses the `reserved:` source.
    pub fn has_reserved(&self) -> bool {
        self.reqs.iter().any(|r| r.key.source == Source::Reserved)
    }

    /// Adds a requirement.
    pub fn and(mut self, key: Key, op: Op) -> Selector {
        self.reqs.push(Requirement { key, op });
        self
    }

    /// Evaluates the selector.
    pub fn matches(&self, labels: &impl Labels) -> bool {
        self.reqs.iter().all(|r| {
            let v = labels.get(&r.key);
            match &r.op {
                Op::In(vals) => v.is_some_and(|v| vals.iter().any(|x| x == v)),
                Op::NotIn(vals) => v.is_none_or(|v| !vals.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
            }
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reqs.is_empty() {
            return f.write_str("{}");
        }
        let parts: Vec<String> = self
            .reqs
            .iter()
            .map(|r| match &r.op {
                Op::In(v) if v.len() == 1 => format!("{}={}", r.key, v[0]),
                Op::In(v) => format!("{} in ({})", r.key, v.join(",")),
                Op::NotIn(v) => format!("{} notin ({})", r.key, v.join(",")),
                Op::Exists => r.key.to_string(),
                Op::DoesNotExist => format!("!{}", r.key),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(yaml: &str, cilium: bool) -> Selector {
        let raw: RawSelector = serde_yaml::from_str(yaml).unwrap();
        Selector::parse(&raw, cilium, "s").unwrap()
    }

    #[test]
    fn operators_follow_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(sel("{}", false).matches(&l));
        assert!(sel("{matchLabels: {app: web}}", false).matches(&l));
        assert!(!sel("{matchLabels: {app: web, tier: back}}", false).matches(&l));
        assert!(sel(
            "{matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}",
            false
        )
        .matches(&l));
        assert!(sel(
            "{matchExpressions: [{key: env, operator: DoesNotExist}]}",
            false
        )
        .matches(&l));
        assert!(!sel(
            "{matchExpressions: [{key: app, operator: DoesNotExist}]}",
            false
        )
        .matches(&l));
        assert!(sel(
            "{matchExpressions: [{key: app, operator: In, values: [db, web]}]}",
            false
        )
        .matches(&l));
        assert!(!sel(
            "{matchExpressions: [{key: app, operator: NotIn, values: [web]}]}",
            false
        )
        .matches(&l));
    }

    #[test]
    fn cilium_sources() {
        let l = labels(&[("app", "web")]);
        assert!(sel("{matchLabels: {'k8s:app': web}}", true).matches(&l));
        assert!(sel("{matchLabels: {'any:app': web}}", true).matches(&l));
        assert!(!sel("{matchLabels: {'container:app': web}}", true).matches(&l));
        assert!(!sel("{matchLabels: {'reserved:host': ''}}", true).matches(&l));
    }

    #[test]
    fn bad_operators_are_errors() {
        let raw: RawSelector =
            serde_yaml::from_str("{matchExpressions: [{key: a, operator: Equals, values: [x]}]}")
                .unwrap();
        let (path, msg) = Selector::parse(&raw, false, "spec.podSelector").unwrap_err();
        assert_eq!(path, "spec.podSelector.matchExpressions[0].operator");
        assert!(msg.contains("Equals"));
    }
}
