//! Policy generators: default deny per namespace, and policies from an
//! intent such as `frontend may GET /api/v1/.* and POST /api/v1/users on
//! api-server:8080`.

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
                "intent.syntax",
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
        let name = format!("{}-to-{}-{}", self.from, self.to, self.port);
        let egress = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": format!("allow-egress-{name}"), "namespace": namespace},
            "spec": {
                "podSelector": {"matchLabels": {label: self.from}},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{"podSelector": {"matchLabels": {label: self.to}}}],
                    "ports": [{"protocol": self.protocol, "port": self.port}]
                }]
            }
        });
        let ingress = if self.http.is_empty() {
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": format!("allow-ingress-{name}"), "namespace": namespace},
                "spec": {
                    "podSelector": {"matchLabels": {label: self.to}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{
                        "from": [{"podSelector": {"matchLabels": {label: self.from}}}],
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
            json!({
                "apiVersion": "cilium.io/v2",
                "kind": "CiliumNetworkPolicy",
                "metadata": {"name": format!("{}-l7-{name}", self.to), "namespace": namespace},
                "spec": {
                    "endpointSelector": {"matchLabels": {label: self.to}},
                    "ingress": [{
                        "fromEndpoints": [{"matchLabels": {label: self.from}}],
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
