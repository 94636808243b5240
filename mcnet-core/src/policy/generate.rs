//! Policy generators: default deny per namespace, and policies from an
//! intent such as `frontend may GET /api/v1/.* and POST /api/v1/users on
//! api-server:8080`.

use crate::diag::Code;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::diag::Diagnostic;
use crate::{Error, Result};

/// A NetworkPolicy that isolates every pod of `namespace` in both directions.
pub fn default_deny(namespace: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny-all", "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    })
}

/// A NetworkPolicy letting every pod of `namespace` resolve names through
/// kube-dns (UDP and TCP 53 to `k8s-app=kube-dns` in kube-system), so that
/// default deny does not break DNS.
pub fn allow_dns(namespace: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-dns-egress", "namespace": namespace},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}
                }],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
            }]
        }
    })
}

/// An allowed call, parsed from an intent sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// Client workload (value of the `app` label).
    pub from: String,
    /// Server workload.
    pub to: String,
    /// Server port.
    pub port: u16,
    /// Protocol (`TCP` unless given as `:port/UDP`).
    pub protocol: String,
    /// Allowed `(method, path regex)` pairs; empty means any traffic on the port.
    pub http: Vec<(String, String)>,
}

impl Intent {
    /// Parses `<from> may <METHOD> <path> [and <METHOD> <path>]... on <to>:<port>[/<proto>]`
    /// or `<from> may connect to <to>:<port>[/<proto>]`.
    pub fn parse(s: &str) -> Result<Intent> {
        let bad = |why: &str| {
            Error::Invalid {
            what: "intent".into(),
            problems: vec![Diagnostic::new(
                Code::IntentSyntax,
                "",
                format!("`{s}`: {why}; expected `<from> may <METHOD> <path> [and <METHOD> <path>]... on <to>:<port>` or `<from> may connect to <to>:<port>`"),
            )],
        }
        };
        let words: Vec<&str> = s.split_whitespace().collect();
        if words.len() < 4 || words[1] != "may" {
            return Err(bad("missing `<from> may`"));
        }
        let from = words[0].to_string();
        let (target, http) =
            if words[2] == "connect" && words.get(3) == Some(&"to") && words.len() == 5 {
                (words[4], Vec::new())
            } else {
                let on = words
                    .iter()
                    .rposition(|w| *w == "on")
                    .ok_or_else(|| bad("missing `on <to>:<port>`"))?;
                if on + 2 != words.len() {
                    return Err(bad("`on <to>:<port>` must end the sentence"));
                }
                let mut http = Vec::new();
                for pair in words[2..on].split(|w| *w == "and") {
                    match pair {
                        [m, p] => {
                            if !m.chars().all(|c| c.is_ascii_uppercase()) {
                                return Err(bad(&format!("`{m}` is not an HTTP method")));
                            }
                            http.push((m.to_string(), p.to_string()));
                        }
                        _ => return Err(bad("each request is `<METHOD> <path>`")),
                    }
                }
                (words[on + 1], http)
            };
        let (to, port) = target
            .split_once(':')
            .ok_or_else(|| bad("the target is `<to>:<port>`"))?;
        let (port, protocol) = port.split_once('/').unwrap_or((port, "TCP"));
        let port: u16 = port
            .parse()
            .map_err(|_| bad(&format!("`{port}` is not a port")))?;
        let protocol = protocol.to_ascii_uppercase();
        if !["TCP", "UDP", "SCTP"].contains(&protocol.as_str()) {
            return Err(bad("protocol must be TCP, UDP or SCTP"));
        }
        if !http.is_empty() && protocol != "TCP" {
            return Err(bad("HTTP rules need TCP"));
        }
        Ok(Intent {
            from,
            to: to.to_string(),
            port,
            protocol,
            http,
        })
    }

    /// The policies for this intent in `namespace`, with workloads selected by
    /// `label` (usually `app`): a NetworkPolicy for the client's egress (L4)
    /// and, for the server's ingress, a CiliumNetworkPolicy carrying the HTTP
    /// rules (L7) or, without HTTP rules, a NetworkPolicy.
    ///
    /// The server's ingress is deliberately not also allowed by an L4
    /// NetworkPolicy when HTTP rules are given: in Cilium an L4 allow for the
    /// same peer and port would lift the L7 restriction.
    pub fn policies(&self, namespace: &str, label: &str) -> Vec<Value> {
        let side = |app: &str| Side {
            namespace: namespace.to_string(),
            name: app.to_string(),
            labels: [(label.to_string(), app.to_string())].into(),
        };
        Allow {
            from: side(&self.from),
            to: side(&self.to),
            port: self.port,
            protocol: self.protocol.clone(),
            http: self.http.clone(),
        }
        .policies()
    }
}

/// One side of an [`Allow`]: a workload's namespace, name and pod labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side {
    /// Namespace.
    pub namespace: String,
    /// Workload name (used in policy names).
    pub name: String,
    /// Labels selecting its pods.
    pub labels: BTreeMap<String, String>,
}

/// An allowed call between two workloads, possibly in different namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow {
    /// Client.
    pub from: Side,
    /// Server.
    pub to: Side,
    /// Server port.
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// Allowed `(method, path regex)` pairs; empty means any traffic on the port.
    pub http: Vec<(String, String)>,
}

impl Allow {
    /// A NetworkPolicy for the client's egress (L4), in the client's
    /// namespace, and for the server's ingress, in the server's namespace, a
    /// CiliumNetworkPolicy carrying the HTTP rules (L7) or, without HTTP
    /// rules, a NetworkPolicy.
    ///
    /// The server's ingress is deliberately not also allowed by an L4
    /// NetworkPolicy when HTTP rules are given: in Cilium an L4 allow for the
    /// same peer and port would lift the L7 restriction.
    pub fn policies(&self) -> Vec<Value> {
        let (from, to) = (&self.from, &self.to);
        let name = format!("{}-to-{}-{}", from.name, to.name, self.port);
        let same_ns = from.namespace == to.namespace;
        // A NetworkPolicy peer: the pods of `side`, naming its namespace when it is another one.
        let peer = |side: &Side| {
            let mut p = json!({"podSelector": {"matchLabels": side.labels}});
            if !same_ns {
                p["namespaceSelector"] =
                    json!({"matchLabels": {"kubernetes.io/metadata.name": side.namespace}});
            }
            p
        };
        let egress = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": format!("allow-egress-{name}"), "namespace": from.namespace},
            "spec": {
                "podSelector": {"matchLabels": from.labels},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [peer(to)],
                    "ports": [{"protocol": self.protocol, "port": self.port}]
                }]
            }
        });
        let ingress = if self.http.is_empty() {
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": format!("allow-ingress-{name}"), "namespace": to.namespace},
                "spec": {
                    "podSelector": {"matchLabels": to.labels},
                    "policyTypes": ["Ingress"],
                    "ingress": [{
                        "from": [peer(from)],
                        "ports": [{"protocol": self.protocol, "port": self.port}]
                    }]
                }
            })
        } else {
            let rules: Vec<Value> = self
                .http
                .iter()
                .map(|(m, p)| json!({"method": m, "path": p}))
                .collect();
            let mut client = from.labels.clone();
            if !same_ns {
                client.insert(
                    "k8s:io.kubernetes.pod.namespace".into(),
                    from.namespace.clone(),
                );
            }
            json!({
                "apiVersion": "cilium.io/v2",
                "kind": "CiliumNetworkPolicy",
                "metadata": {"name": format!("{}-l7-{name}", to.name), "namespace": to.namespace},
                "spec": {
                    "endpointSelector": {"matchLabels": to.labels},
                    "ingress": [{
                        "fromEndpoints": [{"matchLabels": client}],
                        "toPorts": [{
                            "ports": [{"port": self.port.to_string(), "protocol": "TCP"}],
                            "rules": {"http": rules}
                        }]
                    }]
                }
            })
        };
        vec![egress, ingress]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_adr_intent() {
        let i =
            Intent::parse("frontend may GET /api/v1/.* and POST /api/v1/users on api-server:8080")
                .unwrap();
        assert_eq!(i.from, "frontend");
        assert_eq!(i.to, "api-server");
        assert_eq!(i.port, 8080);
        assert_eq!(
            i.http,
            vec![
                ("GET".into(), "/api/v1/.*".into()),
                ("POST".into(), "/api/v1/users".into())
            ]
        );
        let j = Intent::parse("api may connect to db:5432").unwrap();
        assert!(j.http.is_empty());
        assert!(Intent::parse("frontend may get / on x:80").is_err());
        assert!(Intent::parse("frontend GET / on x:80").is_err());
        assert!(Intent::parse("frontend may GET / on x").is_err());
    }
}
