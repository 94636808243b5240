//! Queries and explained verdicts. A connection is allowed when the
//! source's egress and the destination's ingress both allow it; a side that
//! is not a pod of the local cluster does not restrict it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::compile::{Compiled, Entry, NumericIdentity, RuleRef, WILDCARD};
use super::kafka::{self, KafkaRequest};
use super::model::*;
use crate::{Error, Result};

mod query;
pub use query::{l7_match, DnsRequest, HttpRequest, L7Request, Query, QueryEndpoint};

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
    /// A rule the engine cannot evaluate offline (`toFQDNs`,
    /// `authentication`, ...) decides it. Never an allow: the datapath
    /// drops it.
    NotEvaluable,
}

impl Decision {
    /// Whether the connection is allowed (only [`Decision::Allow`] is).
    pub fn is_allow(self) -> bool {
        self == Decision::Allow
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::NotEvaluable => "not-evaluable",
        })
    }
}

/// Why one side decided as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
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
    /// Rules allow the port, but the L7 request matched none of their L7 rules.
    L7NoMatch,
    /// A rule the engine cannot evaluate offline may decide it.
    NotEvaluable,
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
    /// The L7 protocol of `l7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7_parser: Option<L7Parser>,
    /// The field that makes this rule not evaluable, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_evaluable: Option<String>,
}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} rule {}", self.policy, self.section, self.index)?;
        if let Some(l7) = &self.l7 {
            write!(f, " ({}: {l7})", self.l7_parser.unwrap_or(L7Parser::Http))?;
        }
        if let Some(field) = &self.not_evaluable {
            write!(f, " (`{field}` not evaluable offline)")?;
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
    /// Whether the allowing rules restrict L7 on this port (enforced in a proxy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub l7_enforced: bool,
}

impl Side {
    fn new(verdict: Decision, reason: Reason, pod: Option<String>) -> Side {
        Side {
            verdict,
            reason,
            pod,
            isolated_by: vec![],
            rules: vec![],
            l7_enforced: false,
        }
    }
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
        if let Some(L7Request::Kafka(k)) = q.l7() {
            k.api_keys().map_err(|e| Error::NotFound {
                kind: "Kafka request",
                name: e.to_string(),
            })?;
        }
        Ok(self.eval_resolved(src, dst, q.port, q.protocol, q.l7()))
    }

    /// Evaluates resolved endpoints: a few hash lookups per side.
    pub fn eval_resolved(
        &self,
        src: Resolved,
        dst: Resolved,
        port: u16,
        proto: Proto,
        l7: Option<L7Request<'_>>,
    ) -> Outcome {
        let egress = self.side(src, dst.identity, Direction::Egress, port, proto, l7);
        let ingress = self.side(dst, src.identity, Direction::Ingress, port, proto, l7);
        let verdict = combine(egress.verdict, ingress.verdict);
        let explanation = self.explain(verdict, &egress, &ingress, src, dst, port, proto, l7);
        Outcome {
            verdict,
            explanation,
            egress,
            ingress,
            from_identity: src.identity,
            to_identity: dst.identity,
        }
    }

    /// [`Compiled::eval_resolved`] without the explanation (left empty):
    /// the same verdict and sides, for callers on a hot path (the L7 proxy
    /// judges every request) that explain only what they refuse.
    pub fn eval_resolved_unexplained(
        &self,
        src: Resolved,
        dst: Resolved,
        port: u16,
        proto: Proto,
        l7: Option<L7Request<'_>>,
    ) -> Outcome {
        let egress = self.side(src, dst.identity, Direction::Egress, port, proto, l7);
        let ingress = self.side(dst, src.identity, Direction::Ingress, port, proto, l7);
        Outcome {
            verdict: combine(egress.verdict, ingress.verdict),
            explanation: String::new(),
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
        let side = |subject: NumericIdentity, peer: NumericIdentity, d: Direction| -> Decision {
            let Some(state) = self.states.get(&subject) else {
                return Decision::Allow;
            };
            let ds = state.dir(d);
            let (mut allowed, mut denied) = (false, false);
            let (mut maybe_allowed, mut maybe_denied) = (false, false);
            for_each_entry(ds, peer, proto, port, |e| {
                match (e.deny, e.not_evaluable.is_some()) {
                    (true, false) => denied = true,
                    (true, true) => maybe_denied = true,
                    (false, false) => allowed = true,
                    (false, true) => maybe_allowed = true,
                }
            });
            decide(
                denied,
                maybe_denied,
                allowed,
                maybe_allowed,
                ds.isolated_by.is_empty(),
            )
        };
        combine(
            side(src, dst, Direction::Egress),
            side(dst, src, Direction::Ingress),
        )
    }

    /// Policy `i`'s display name, as rendered when compiled.
    fn policy_name(&self, i: usize) -> String {
        match self.policy_names.get(i) {
            Some(n) => n.clone(),
            None => self.policies[i].id.to_string(),
        }
    }

    fn rule_name(&self, r: &RuleRef, l7: Option<(L7Parser, String)>) -> RuleName {
        let p = &self.policies[r.policy];
        let (l7_parser, l7) = match l7 {
            Some((parser, text)) => (Some(parser), Some(text)),
            None => (None, None),
        };
        RuleName {
            policy: self.policy_name(r.policy),
            section: p.section(r.direction, r.deny).to_string(),
            index: r.index,
            l7,
            l7_parser,
            not_evaluable: None,
        }
    }

    fn side(
        &self,
        me: Resolved,
        peer: NumericIdentity,
        d: Direction,
        port: u16,
        proto: Proto,
        l7: Option<L7Request<'_>>,
    ) -> Side {
        let pod_name = me.pod.map(|p| self.inventory.pods[p].key());
        let local = me
            .pod
            .is_some_and(|p| self.inventory.pods[p].cluster == self.local_cluster);
        if !local {
            return Side::new(Decision::Allow, Reason::NotAPod, pod_name);
        }
        let Some(state) = self.states.get(&me.identity) else {
            return Side::new(Decision::Allow, Reason::NotIsolated, pod_name);
        };
        let ds = state.dir(d);
        let isolated_by: Vec<String> = ds
            .isolated_by
            .iter()
            .map(|&i| self.policy_name(i))
            .collect();
        let mut denies: Vec<&Entry> = Vec::new();
        let mut maybe_denies: Vec<&Entry> = Vec::new();
        let mut allows: Vec<&Entry> = Vec::new();
        let mut maybe_allows: Vec<&Entry> = Vec::new();
        for_each_entry(ds, peer, proto, port, |e| {
            match (e.deny, e.not_evaluable.is_some()) {
                (true, false) => denies.push(e),
                (true, true) => maybe_denies.push(e),
                (false, false) => allows.push(e),
                (false, true) => maybe_allows.push(e),
            }
        });
        let names = |list: &[&Entry]| -> Vec<RuleName> {
            let mut refs: Vec<(RuleRef, Option<Arc<str>>)> = list
                .iter()
                .map(|e| (e.origin, e.not_evaluable.clone()))
                .collect();
            refs.sort();
            refs.dedup();
            refs.iter()
                .map(|(r, ne)| RuleName {
                    not_evaluable: ne.as_deref().map(str::to_string),
                    ..self.rule_name(r, None)
                })
                .collect()
        };
        let side = |verdict, reason, rules, l7_enforced| Side {
            verdict,
            reason,
            pod: pod_name.clone(),
            isolated_by: isolated_by.clone(),
            rules,
            l7_enforced,
        };
        if !denies.is_empty() {
            return side(Decision::Deny, Reason::DeniedByRule, names(&denies), false);
        }
        if !maybe_denies.is_empty() {
            return side(
                Decision::NotEvaluable,
                Reason::NotEvaluable,
                names(&maybe_denies),
                false,
            );
        }
        if isolated_by.is_empty() {
            return side(Decision::Allow, Reason::NotIsolated, names(&allows), false);
        }
        // What the evaluable allows decide; rules that cannot be evaluated
        // turn a denial into "not evaluable", never into an allow.
        let not_evaluable = |fallback: Side| -> Side {
            if maybe_allows.is_empty() {
                fallback
            } else {
                side(
                    Decision::NotEvaluable,
                    Reason::NotEvaluable,
                    names(&maybe_allows),
                    false,
                )
            }
        };
        if allows.is_empty() {
            return not_evaluable(side(Decision::Deny, Reason::NoRuleMatched, vec![], false));
        }
        let l7_enforced = allows.iter().all(|e| e.l7.is_some());
        if let (Some(req), true) = (l7, l7_enforced) {
            let mut matched = Vec::new();
            for e in &allows {
                if let Some(rules) = &e.l7 {
                    if let Ok(Some(text)) = l7_match(rules, req) {
                        matched.push(self.rule_name(&e.origin, Some((rules.parser(), text))));
                    }
                }
            }
            if matched.is_empty() {
                // Name each allowing rule with every L7 rule it carries.
                let mut by_rule: BTreeMap<RuleRef, (L7Parser, Vec<String>)> = BTreeMap::new();
                for e in &allows {
                    let Some(rules) = &e.l7 else { continue };
                    let (_, texts) = by_rule
                        .entry(e.origin)
                        .or_insert_with(|| (rules.parser(), Vec::new()));
                    for t in rules.texts() {
                        if !texts.contains(&t) {
                            texts.push(t);
                        }
                    }
                }
                let rules: Vec<RuleName> = by_rule
                    .into_iter()
                    .map(|(r, (parser, texts))| {
                        self.rule_name(&r, Some((parser, texts.join(" | "))))
                    })
                    .collect();
                return not_evaluable(side(Decision::Deny, Reason::L7NoMatch, rules, l7_enforced));
            }
            matched.dedup();
            return side(Decision::Allow, Reason::AllowedByRule, matched, l7_enforced);
        }
        let rules = if l7.is_some() {
            names(
                &allows
                    .iter()
                    .copied()
                    .filter(|e| e.l7.is_none())
                    .collect::<Vec<_>>(),
            )
        } else {
            names(&allows)
        };
        side(Decision::Allow, Reason::AllowedByRule, rules, l7_enforced)
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
        l7: Option<L7Request<'_>>,
    ) -> String {
        let name = |r: Resolved| match r.pod {
            Some(p) => self.inventory.pods[p].key(),
            None => self
                .identity(r.identity)
                .map(|i| i.describe(&self.inventory))
                .unwrap_or_else(|| "world".into()),
        };
        let what = match l7 {
            Some(r) => format!(
                "{} → {} {proto}/{port} ({})",
                name(src),
                name(dst),
                r.describe()
            ),
            None if proto.is_icmp() => {
                format!("{} → {} {proto} type {port}", name(src), name(dst))
            }
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
                    "{d} of {who}: the request matched none of the {} rules of {}",
                    match s.rules.iter().find_map(|r| r.l7_parser) {
                        Some(L7Parser::Kafka) => "Kafka",
                        Some(L7Parser::Dns) => "DNS",
                        _ => "HTTP",
                    },
                    list(&s.rules)
                ),
                Reason::NotEvaluable => format!(
                    "{d} of {who}: not evaluable: it depends on {}, which mcnet cannot evaluate offline (never an allow)",
                    list(&s.rules)
                ),
            }
        };
        let e = side(egress, Direction::Egress);
        let i = side(ingress, Direction::Ingress);
        match verdict {
            Decision::Allow => format!("allowed: {what}; {e}; {i}"),
            Decision::Deny | Decision::NotEvaluable => {
                let reasons: Vec<String> = [(egress, e), (ingress, i)]
                    .into_iter()
                    .filter(|(s, _)| s.verdict != Decision::Allow)
                    .map(|(_, t)| t)
                    .collect();
                let head = if verdict == Decision::Deny {
                    "denied"
                } else {
                    "not evaluable"
                };
                format!("{head}: {what}; {}", reasons.join("; "))
            }
        }
    }
}

/// One side's verdict from what its matching entries are.
fn decide(
    denied: bool,
    maybe_denied: bool,
    allowed: bool,
    maybe_allowed: bool,
    not_isolated: bool,
) -> Decision {
    if denied {
        Decision::Deny
    } else if maybe_denied {
        Decision::NotEvaluable
    } else if allowed || not_isolated {
        Decision::Allow
    } else if maybe_allowed {
        Decision::NotEvaluable
    } else {
        Decision::Deny
    }
}

/// Both sides: a deny anywhere denies, and only two allows allow.
fn combine(egress: Decision, ingress: Decision) -> Decision {
    match (egress, ingress) {
        (Decision::Deny, _) | (_, Decision::Deny) => Decision::Deny,
        (Decision::Allow, Decision::Allow) => Decision::Allow,
        _ => Decision::NotEvaluable,
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
