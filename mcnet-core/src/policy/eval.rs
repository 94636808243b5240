//! Queries and explained verdicts. A connection is allowed when the
//! source's egress and the destination's ingress both allow it; a side that
//! is not a pod of the local cluster does not restrict it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::compile::{Compiled, Entry, NumericIdentity, RuleRef, WILDCARD};
use super::model::*;
use crate::{Error, Result};

/// One side of a query: a pod by `namespace/name`, or an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryEndpoint {
    /// `namespace/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// An address (a pod's, or one outside the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// An HTTP request, for L7 rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Method.
    #[serde(default)]
    pub method: String,
    /// Path.
    #[serde(default)]
    pub path: String,
    /// Headers: an object, or a list of `"Name: value"` strings.
    #[serde(default, deserialize_with = "headers")]
    pub headers: BTreeMap<String, String>,
    /// Host (else the `Host` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

fn headers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Map(BTreeMap<String, String>),
        List(Vec<String>),
    }
    Ok(match Option::<Form>::deserialize(d)? {
        None => BTreeMap::new(),
        Some(Form::Map(m)) => m,
        Some(Form::List(l)) => l
            .into_iter()
            .map(|h| match h.split_once(':') {
                Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                None => (h.trim().to_string(), String::new()),
            })
            .collect(),
    })
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn host(&self) -> Option<&str> {
        self.host.as_deref().or_else(|| self.header("host"))
    }
}

fn default_proto() -> Proto {
    Proto::Tcp
}

/// A query: may `from` open a connection to `to` on `port`?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Source.
    pub from: QueryEndpoint,
    /// Destination.
    pub to: QueryEndpoint,
    /// Destination port.
    pub port: u16,
    /// Protocol (TCP when missing).
    #[serde(default = "default_proto")]
    pub protocol: Proto,
    /// One HTTP request, to judge at L7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequest>,
}

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        })
    }
}

/// Why one side decided as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// This side is not a local pod, so no policy applies here.
    NotAPod,
    /// No policy isolates the pod in this direction.
    NotIsolated,
    /// Allow rules matched.
    AllowedByRule,
    /// The pod is isolated and no rule matched.
    NoRuleMatched,
    /// A deny rule matched.
    DeniedByRule,
    /// Rules allow the port, but the HTTP request matched none of their L7 rules.
    L7NoMatch,
}

/// A rule, named for people and programs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleName {
    /// `NetworkPolicy x/allow-a`.
    pub policy: String,
    /// `ingress`, `egress`, `ingressDeny`, `egressDeny`.
    pub section: String,
    /// Index in the section.
    pub index: usize,
    /// L7 rules that matched the request, when relevant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7: Option<String>,
}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} rule {}", self.policy, self.section, self.index)?;
        if let Some(l7) = &self.l7 {
            write!(f, " (http: {l7})")?;
        }
        Ok(())
    }
}

/// One side's verdict with its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    /// Verdict of this side.
    pub verdict: Decision,
    /// Why.
    pub reason: Reason,
    /// The pod this side is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Policies isolating the pod in this direction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolated_by: Vec<String>,
    /// Rules that decided: the allowing ones, the denying one, or those whose L7 rules did not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleName>,
    /// Whether the allowing rules restrict HTTP on this port (L7 enforced in a proxy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub l7_enforced: bool,
}

/// An explained verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Decision,
    /// One readable sentence.
    pub explanation: String,
    /// The source's egress.
    pub egress: Side,
    /// The destination's ingress.
    pub ingress: Side,
    /// Source identity.
    pub from_identity: NumericIdentity,
    /// Destination identity.
    pub to_identity: NumericIdentity,
}

/// A resolved query endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Resolved {
    /// The pod (inventory index), if it is one.
    pub pod: Option<usize>,
    /// Its identity.
    pub identity: NumericIdentity,
}

impl Compiled {
    /// Resolves a query endpoint.
    pub fn resolve_endpoint(&self, e: &QueryEndpoint, what: &str) -> Result<Resolved> {
        match (&e.pod, &e.ip) {
            (Some(p), None) => {
                let idx = self.inventory.pod(p).ok_or_else(|| Error::NotFound {
                    kind: "pod",
                    name: format!("{p} ({what})"),
                })?;
                Ok(Resolved {
                    pod: Some(idx),
                    identity: self.pod_identity[idx],
                })
            }
            (None, Some(ip)) => {
                // An IPv4-mapped address (`::ffff:a.b.c.d`) is an IPv4 peer.
                let addr = ip
                    .parse::<IpAddr>()
                    .map_err(|_| Error::NotFound {
                        kind: "IP address",
                        name: format!("{ip} ({what})"),
                    })?
                    .to_canonical();
                let pod = self.pod_by_ip(&addr);
                Ok(Resolved {
                    pod,
                    identity: self.identity_of_ip(addr),
                })
            }
            _ => Err(Error::NotFound {
                kind: "endpoint (give exactly one of pod or ip)",
                name: what.to_string(),
            }),
        }
    }

    /// Evaluates a query with an explanation.
    pub fn eval(&self, q: &Query) -> Result<Outcome> {
        let src = self.resolve_endpoint(&q.from, "from")?;
        let dst = self.resolve_endpoint(&q.to, "to")?;
        Ok(self.eval_resolved(src, dst, q.port, q.protocol, q.http.as_ref()))
    }

    /// Evaluates resolved endpoints: a few hash lookups per side.
    pub fn eval_resolved(
        &self,
        src: Resolved,
        dst: Resolved,
        port: u16,
        proto: Proto,
        http: Option<&HttpRequest>,
    ) -> Outcome {
        let egress = self.side(src, dst.identity, Direction::Egress, port, proto, http);
        let ingress = self.side(dst, src.identity, Direction::Ingress, port, proto, http);
        let verdict = if egress.verdict == Decision::Allow && ingress.verdict == Decision::Allow {
            Decision::Allow
        } else {
            Decision::Deny
        };
        let explanation = self.explain(verdict, &egress, &ingress, src, dst, port, proto, http);
        Outcome {
            verdict,
            explanation,
            egress,
            ingress,
            from_identity: src.identity,
            to_identity: dst.identity,
        }
    }

    /// The verdict alone (no explanation, no allocation on the common path).
    pub fn verdict(
        &self,
        src: NumericIdentity,
        dst: NumericIdentity,
        port: u16,
        proto: Proto,
    ) -> Decision {
        let ok = |subject: NumericIdentity, peer: NumericIdentity, d: Direction| -> bool {
            let Some(state) = self.states.get(&subject) else {
                return true;
            };
            let ds = state.dir(d);
            let mut allowed = false;
            let mut denied = false;
            for_each_entry(ds, peer, proto, port, |e| {
                if e.deny {
                    denied = true;
                } else {
                    allowed = true;
                }
            });
            !denied && (allowed || ds.isolated_by.is_empty())
        };
        if ok(src, dst, Direction::Egress) && ok(dst, src, Direction::Ingress) {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }

    fn rule_name(&self, r: &RuleRef, l7: Option<String>) -> RuleName {
        let p = &self.policies[r.policy];
        RuleName {
            policy: p.id.to_string(),
            section: p.section(r.direction, r.deny).to_string(),
            index: r.index,
            l7,
        }
    }

    fn side(
        &self,
        me: Resolved,
        peer: NumericIdentity,
        d: Direction,
        port: u16,
        proto: Proto,
        http: Option<&HttpRequest>,
    ) -> Side {
        let pod_name = me.pod.map(|p| self.inventory.pods[p].key());
        let local = me
            .pod
            .is_some_and(|p| self.inventory.pods[p].cluster == self.local_cluster);
        if !local {
            return Side {
                verdict: Decision::Allow,
                reason: Reason::NotAPod,
                pod: pod_name,
                isolated_by: vec![],
                rules: vec![],
                l7_enforced: false,
            };
        }
        let Some(state) = self.states.get(&me.identity) else {
            return Side {
                verdict: Decision::Allow,
                reason: Reason::NotIsolated,
                pod: pod_name,
                isolated_by: vec![],
                rules: vec![],
                l7_enforced: false,
            };
        };
        let ds = state.dir(d);
        let isolated_by: Vec<String> = ds
            .isolated_by
            .iter()
            .map(|&i| self.policies[i].id.to_string())
            .collect();
        let mut denies: Vec<&Entry> = Vec::new();
        let mut allows: Vec<&Entry> = Vec::new();
        for_each_entry(ds, peer, proto, port, |e| {
            if e.deny {
                denies.push(e)
            } else {
                allows.push(e)
            }
        });
        let names = |list: &[&Entry]| -> Vec<RuleName> {
            let mut refs: Vec<RuleRef> = list.iter().map(|e| e.origin).collect();
            refs.sort();
            refs.dedup();
            refs.iter().map(|r| self.rule_name(r, None)).collect()
        };
        if !denies.is_empty() {
            return Side {
                verdict: Decision::Deny,
                reason: Reason::DeniedByRule,
                pod: pod_name,
                isolated_by,
                rules: names(&denies),
                l7_enforced: false,
            };
        }
        if isolated_by.is_empty() {
            return Side {
                verdict: Decision::Allow,
                reason: Reason::NotIsolated,
                pod: pod_name,
                isolated_by,
                rules: names(&allows),
                l7_enforced: false,
            };
        }
        if allows.is_empty() {
            return Side {
                verdict: Decision::Deny,
                reason: Reason::NoRuleMatched,
                pod: pod_name,
                isolated_by,
                rules: vec![],
                l7_enforced: false,
            };
        }
        let l7_enforced = allows.iter().all(|e| e.http.is_some());
        if let (Some(req), true) = (http, l7_enforced) {
            let mut matched = Vec::new();
            for e in &allows {
                if let Some(rules) = &e.http {
                    if let Some(m) = rules.iter().find(|m| http_matches(m, req)) {
                        matched.push(self.rule_name(&e.origin, Some(m.text.clone())));
                    }
                }
            }
            if matched.is_empty() {
                let mut rules = names(&allows);
                for r in &mut rules {
                    let texts: Vec<String> = allows
                        .iter()
                        .filter(|e| self.rule_name(&e.origin, None) == *r)
                        .flat_map(|e| e.http.iter().flat_map(|h| h.iter().map(|m| m.text.clone())))
                        .collect();
                    r.l7 = Some(texts.join(" | "));
                }
                return Side {
                    verdict: Decision::Deny,
                    reason: Reason::L7NoMatch,
                    pod: pod_name,
                    isolated_by,
                    rules,
                    l7_enforced,
                };
            }
            matched.dedup();
            return Side {
                verdict: Decision::Allow,
                reason: Reason::AllowedByRule,
                pod: pod_name,
                isolated_by,
                rules: matched,
                l7_enforced,
            };
        }
        let rules = if http.is_some() {
            names(
                &allows
                    .iter()
                    .copied()
                    .filter(|e| e.http.is_none())
                    .collect::<Vec<_>>(),
            )
        } else {
            names(&allows)
        };
        Side {
            verdict: Decision::Allow,
            reason: Reason::AllowedByRule,
            pod: pod_name,
            isolated_by,
            rules,
            l7_enforced,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn explain(
        &self,
        verdict: Decision,
        egress: &Side,
        ingress: &Side,
        src: Resolved,
        dst: Resolved,
        port: u16,
        proto: Proto,
        http: Option<&HttpRequest>,
    ) -> String {
        let name = |r: Resolved| match r.pod {
            Some(p) => self.inventory.pods[p].key(),
            None => self
                .identity(r.identity)
                .map(|i| i.describe(&self.inventory))
                .unwrap_or_else(|| "world".into()),
        };
        let what = match http {
            Some(h) => format!(
                "{} → {} {proto}/{port} (HTTP {} {})",
                name(src),
                name(dst),
                h.method,
                h.path
            ),
            None => format!("{} → {} {proto}/{port}", name(src), name(dst)),
        };
        let side = |s: &Side, d: Direction| -> String {
            let who = s.pod.clone().unwrap_or_else(|| "the peer".into());
            let list = |v: &[RuleName]| {
                v.iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            match s.reason {
                Reason::NotAPod => format!(
                    "{d}: not enforced ({} is not a pod of this cluster)",
                    if d == Direction::Egress {
                        "the source"
                    } else {
                        "the destination"
                    }
                ),
                Reason::NotIsolated => {
                    format!("{d} of {who}: not isolated, no policy restricts {d}")
                }
                Reason::AllowedByRule => format!("{d} of {who}: allowed by {}", list(&s.rules)),
                Reason::NoRuleMatched => format!(
                    "{d} of {who}: isolated by {} and no {d} rule matched",
                    s.isolated_by.join(", ")
                ),
                Reason::DeniedByRule => format!(
                    "{d} of {who}: denied by {} (deny wins over allow)",
                    list(&s.rules)
                ),
                Reason::L7NoMatch => format!(
                    "{d} of {who}: the request matched none of the HTTP rules of {}",
                    list(&s.rules)
                ),
            }
        };
        let e = side(egress, Direction::Egress);
        let i = side(ingress, Direction::Ingress);
        match verdict {
            Decision::Allow => format!("allowed: {what}; {e}; {i}"),
            Decision::Deny => {
                let reasons: Vec<String> = [(egress, e), (ingress, i)]
                    .into_iter()
                    .filter(|(s, _)| s.verdict == Decision::Deny)
                    .map(|(_, t)| t)
                    .collect();
                format!("denied: {what}; {}", reasons.join("; "))
            }
        }
    }
}

/// Calls `f` for every entry of `ds` that covers (peer, proto, port).
fn for_each_entry<'a>(
    ds: &'a super::compile::DirState,
    peer: NumericIdentity,
    proto: Proto,
    port: u16,
    mut f: impl FnMut(&'a Entry),
) {
    let keys = [
        (peer, proto),
        (peer, Proto::Any),
        (WILDCARD, proto),
        (WILDCARD, Proto::Any),
    ];
    for (i, k) in keys.iter().enumerate() {
        if peer == WILDCARD && i >= 2 {
            break;
        }
        if let Some(list) = ds.entries.get(k) {
            for e in list {
                if e.lo <= port && port <= e.hi {
                    f(e);
                }
            }
        }
    }
}

/// Whether an HTTP rule matches a request (fields ANDed, regexes anchored).
pub fn http_matches(m: &HttpMatch, req: &HttpRequest) -> bool {
    m.method.as_ref().is_none_or(|r| r.is_match(&req.method))
        && m.path.as_ref().is_none_or(|r| r.is_match(&req.path))
        && m.host
            .as_ref()
            .is_none_or(|r| req.host().is_some_and(|h| r.is_match(h)))
        && m.headers.iter().all(|h| {
            h.lenient
                || match (req.header(&h.name), &h.value) {
                    (Some(v), Some(want)) => v == want,
                    (Some(_), None) => true,
                    (None, _) => false,
                }
        })
}
