//! Flow replay: recorded flows judged again against a candidate policy set,
//! to see before rolling it out which of them it would have dropped (or
//! let through).
//!
//! Flows come as JSON lines in either of two formats, told apart per line:
//! mcnet's own flow events (`mcnet datapath enforce --flows`) and Hubble's
//! `hubble observe -o jsonpb` (a `GetFlowsResponse` per line, its `flow`
//! with `IP`, `l4`, `source`/`destination` endpoints and optional `l7`).
//! Each flow is resolved to pods and identities by its addresses (or, for
//! Hubble, its endpoints' `namespace`/`pod_name`), and judged by the
//! candidate policies; its old verdict is the baseline policies' when they
//! are given, else the verdict it was recorded with. Replies are skipped
//! (conntrack, not policy, passes them), and so are the L7 proxy's own
//! connections to a destination (their requests are the L7 flows).
//!
//! [`Replay`] streams: memory grows with the number of distinct flow keys
//! (source and destination pods, port, protocol, HTTP method and path),
//! not with the number of lines, and each distinct key is judged once
//! ([`Replay::with_cache`] bounds the verdict cache; it is cleared when
//! full). The report groups changed flows by the rule that decided the new
//! verdict, with counts and first and last times.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

use super::eval::{HttpRequest, L7Request, Outcome, QueryEndpoint, Resolved};
use super::{Compiled, Decision, Proto};

/// One side of a recorded flow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowEnd {
    /// Its address.
    pub ip: Option<IpAddr>,
    /// `namespace/name`, when the recorder knew the pod.
    pub pod: Option<String>,
}

/// A recorded flow, in either format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedFlow {
    /// When, as the recorder wrote it (ns since boot for mcnet, RFC 3339
    /// for Hubble).
    pub time: String,
    /// Source.
    pub src: FlowEnd,
    /// Destination.
    pub dst: FlowEnd,
    /// Destination port (ICMP type for ICMP).
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
    /// The HTTP request, for L7 flows.
    pub http: Option<(String, String)>,
    /// The verdict it was recorded with: allowed or not.
    pub allowed: Option<bool>,
    /// A reply (skipped).
    pub is_reply: bool,
    /// The L7 proxy's own connection to the destination, on a client's
    /// behalf (skipped: the client's requests are the flows judged).
    pub proxy_leg: bool,
}

/// Why a line is not a flow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(pub String);

fn proto_of(s: &str) -> Option<Proto> {
    match s.to_ascii_uppercase().as_str() {
        "TCP" => Some(Proto::Tcp),
        "UDP" => Some(Proto::Udp),
        "SCTP" => Some(Proto::Sctp),
        "ICMP" | "ICMPV4" => Some(Proto::Icmp),
        _ => None,
    }
}

/// A field under either of its spellings (protojson's original names or
/// lowerCamelCase).
fn field<'a>(v: &'a Value, names: &[&str]) -> &'a Value {
    names
        .iter()
        .map(|n| &v[*n])
        .find(|x| !x.is_null())
        .unwrap_or(&Value::Null)
}

fn ip(v: &Value) -> Option<IpAddr> {
    v.as_str()
        .and_then(|s| s.parse::<IpAddr>().ok())
        .map(|a| a.to_canonical())
}

/// Parses one line: `Ok(None)` for a blank line or a record that is not a
/// flow (Hubble's node status lines, mcnet's non-IP events).
pub fn parse_line(line: &str) -> Result<Option<RecordedFlow>, LineError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(line).map_err(|e| LineError(format!("not JSON: {e}")))?;
    if v.get("flow").is_some() {
        return hubble(&v["flow"], &v);
    }
    if v.get("src").is_some() && v.get("dport").is_some() {
        return mcnet(&v);
    }
    if v.get("node_status").is_some() || v.get("lost_events").is_some() {
        return Ok(None);
    }
    Err(LineError(
        "neither an mcnet flow event (src, dport) nor a Hubble GetFlowsResponse (flow)".into(),
    ))
}

fn mcnet(v: &Value) -> Result<Option<RecordedFlow>, LineError> {
    let end = |k: &str| -> Result<FlowEnd, LineError> {
        Ok(FlowEnd {
            ip: Some(ip(&v[k]).ok_or_else(|| LineError(format!("`{k}` is not an address")))?),
            pod: None,
        })
    };
    let proto = proto_of(v["protocol"].as_str().unwrap_or_default()).ok_or_else(|| {
        LineError(format!(
            "protocol {} is not TCP, UDP, SCTP or ICMP",
            v["protocol"]
        ))
    })?;
    let port = if proto == Proto::Icmp {
        v["icmp_type"].as_u64()
    } else {
        v["dport"].as_u64()
    }
    .and_then(|p| u16::try_from(p).ok())
    .ok_or_else(|| LineError("`dport` is not a port".into()))?;
    let http = v.get("http").filter(|h| h.is_object()).map(|h| {
        (
            h["method"].as_str().unwrap_or_default().to_string(),
            h["url"].as_str().unwrap_or_default().to_string(),
        )
    });
    Ok(Some(RecordedFlow {
        time: v["time_ns"]
            .as_u64()
            .map(|t| t.to_string())
            .unwrap_or_default(),
        src: end("src")?,
        dst: end("dst")?,
        port,
        proto,
        http,
        allowed: v["verdict"].as_str().map(|s| s == "allow"),
        is_reply: v["is_reply"].as_bool().unwrap_or(false),
        proxy_leg: v["reason"] == "allowed-l7-proxied",
    }))
}

fn hubble(f: &Value, outer: &Value) -> Result<Option<RecordedFlow>, LineError> {
    let ip_layer = field(f, &["IP", "ip"]);
    if ip_layer.is_null() {
        // An L2 or a non-IP event: nothing a policy decides.
        return Ok(None);
    }
    let end = |addr: &str, ep: &str| FlowEnd {
        ip: ip(&ip_layer[addr]),
        pod: {
            let e = &f[ep];
            let ns = e["namespace"].as_str().unwrap_or_default();
            let name = field(e, &["pod_name", "podName"])
                .as_str()
                .unwrap_or_default();
            (!ns.is_empty() && !name.is_empty()).then(|| format!("{ns}/{name}"))
        },
    };
    let l4 = &f["l4"];
    let (proto, port) = if let Some(t) = ["TCP", "UDP", "SCTP"]
        .iter()
        .find(|p| l4.get(**p).is_some())
    {
        let p = &l4[*t];
        (
            proto_of(t).unwrap_or_default(),
            field(p, &["destination_port", "destinationPort"]).as_u64(),
        )
    } else if let Some(i) = l4.get("ICMPv4") {
        (Proto::Icmp, i["type"].as_u64())
    } else {
        return Ok(None);
    };
    let port = port
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| LineError("the flow's l4 has no destination port".into()))?;
    let http = f["l7"]["http"].as_object().map(|h| {
        let url = h.get("url").and_then(Value::as_str).unwrap_or_default();
        // Hubble records the whole URL; policies see the path.
        let path = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
        (
            h.get("method")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            path.to_string(),
        )
    });
    let verdict = f["verdict"].as_str().unwrap_or_default();
    Ok(Some(RecordedFlow {
        time: f["time"]
            .as_str()
            .or_else(|| outer["time"].as_str())
            .unwrap_or_default()
            .to_string(),
        src: end("source", "source"),
        dst: end("destination", "destination"),
        port,
        proto,
        http,
        // AUDIT: a drop the policy would make, forwarded in audit mode.
        allowed: match verdict {
            "FORWARDED" | "REDIRECTED" | "AUDIT" => Some(true),
            "DROPPED" | "ERROR" => Some(false),
            _ => None,
        },
        is_reply: field(f, &["is_reply", "isReply"])
            .as_bool()
            .unwrap_or(false),
        proxy_leg: false,
    }))
}

/// How a flow's verdict moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Allowed before, dropped by the candidate.
    NewlyDenied,
    /// Dropped before, allowed by the candidate.
    NewlyAllowed,
}

/// Flows with one change, one decider and one shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangedFlows {
    /// The change.
    pub change: Change,
    /// The policy that decides the new verdict (for a flow no longer
    /// allowed by anything: the policy that isolates the pod).
    pub policy: Option<String>,
    /// The rule that decides the new verdict, when one does.
    pub rule: Option<String>,
    /// The rule that decided the old verdict, when the baseline says.
    pub was: Option<String>,
    /// Source pod (or address).
    pub from: String,
    /// Destination pod (or address).
    pub to: String,
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Proto,
    /// HTTP method and path, for L7 flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<(String, String)>,
    /// Flows recorded.
    pub count: u64,
    /// The first one's time.
    pub first_seen: String,
    /// The last one's time.
    pub last_seen: String,
    /// The candidate's explanation.
    pub explanation: String,
}

/// Counts by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplayCounts {
    /// Lines read.
    pub lines: u64,
    /// Flows judged.
    pub flows: u64,
    /// Replies, skipped.
    pub replies: u64,
    /// The L7 proxy's own connections (its clients' requests are judged
    /// instead), skipped.
    pub proxy_legs: u64,
    /// Lines that are not flows (non-IP events), skipped.
    pub not_flows: u64,
    /// Lines that could not be read.
    pub malformed: u64,
    /// Flows with no old verdict (no baseline, none recorded).
    pub unknown_before: u64,
    /// Flows whose verdict stays.
    pub unchanged: u64,
    /// Flows the candidate would drop.
    pub newly_denied: u64,
    /// Flows the candidate would let through.
    pub newly_allowed: u64,
    /// Distinct flow keys judged (each once).
    pub distinct: u64,
}

/// The report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Counts.
    pub counts: ReplayCounts,
    /// Changed flows, newly denied first, then by count.
    pub changes: Vec<ChangedFlows>,
    /// The first few malformed lines, with why.
    pub malformed: Vec<String>,
}

/// What identifies a flow for judging.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: FlowEnd,
    dst: FlowEnd,
    port: u16,
    proto: Proto,
    http: Option<(String, String)>,
}

/// A judged key: the candidate's verdict and decider, the baseline's.
#[derive(Clone, Debug)]
struct Judged {
    now: bool,
    before: Option<bool>,
    /// Where a changed flow is counted, and the candidate's explanation.
    group: Option<(GroupKey, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct GroupKey {
    change_now_allowed: bool,
    policy: Option<String>,
    rule: Option<String>,
    was: Option<String>,
    from: String,
    to: String,
    port: u16,
    proto: Proto,
    http: Option<(String, String)>,
}

/// The streaming replay.
pub struct Replay<'a> {
    candidate: &'a Compiled,
    baseline: Option<&'a Compiled>,
    cache: HashMap<Key, Judged>,
    cache_cap: usize,
    groups: BTreeMap<GroupKey, ChangedFlows>,
    counts: ReplayCounts,
    malformed: Vec<String>,
}

/// The rule that decided an outcome, and its policy: the denying or
/// L7-restricting side first, as the datapath's flow events name it.
fn decider(o: &Outcome) -> (Option<String>, Option<String>) {
    let side = if o.ingress.verdict != Decision::Allow || o.ingress.l7_enforced {
        &o.ingress
    } else if o.egress.verdict != Decision::Allow {
        &o.egress
    } else if !o.ingress.rules.is_empty() {
        &o.ingress
    } else {
        &o.egress
    };
    match side.rules.first() {
        Some(r) => (Some(r.policy.clone()), Some(r.to_string())),
        None => (side.isolated_by.first().cloned(), None),
    }
}

impl<'a> Replay<'a> {
    /// A replay against `candidate`, with old verdicts from `baseline`
    /// when given (else as recorded).
    pub fn new(candidate: &'a Compiled, baseline: Option<&'a Compiled>) -> Replay<'a> {
        Replay {
            candidate,
            baseline,
            cache: HashMap::new(),
            cache_cap: 1 << 20,
            groups: BTreeMap::new(),
            counts: ReplayCounts::default(),
            malformed: Vec::new(),
        }
    }

    /// Bounds the verdict cache (entries); at the bound it starts over.
    pub fn with_cache(mut self, entries: usize) -> Self {
        self.cache_cap = entries.max(1);
        self
    }

    fn resolve(c: &Compiled, e: &FlowEnd) -> Resolved {
        if let Some(ip) = e.ip {
            if c.pod_by_ip(&ip).is_some() || e.pod.is_none() {
                return Resolved {
                    pod: c.pod_by_ip(&ip),
                    identity: c.identity_of_ip(ip),
                };
            }
        }
        let by_name = e.pod.as_ref().and_then(|p| {
            c.resolve_endpoint(
                &QueryEndpoint {
                    pod: Some(p.clone()),
                    ip: None,
                },
                "flow",
            )
            .ok()
        });
        by_name.unwrap_or_else(|| {
            let ip = e.ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            Resolved {
                pod: None,
                identity: c.identity_of_ip(ip),
            }
        })
    }

    fn judge(c: &Compiled, k: &Key, explain: bool) -> Outcome {
        let (src, dst) = (Self::resolve(c, &k.src), Self::resolve(c, &k.dst));
        let req = k.http.as_ref().map(|(m, p)| HttpRequest {
            method: m.clone(),
            path: p.clone(),
            headers: BTreeMap::new(),
            host: None,
        });
        let l7 = req.as_ref().map(L7Request::Http);
        if explain {
            c.eval_resolved(src, dst, k.port, k.proto, l7)
        } else {
            c.eval_resolved_unexplained(src, dst, k.port, k.proto, l7)
        }
    }

    fn name(o: &Outcome, e: &FlowEnd, egress: bool) -> String {
        let side = if egress { &o.egress } else { &o.ingress };
        side.pod
            .clone()
            .or_else(|| e.pod.clone())
            .or_else(|| e.ip.map(|a| a.to_string()))
            .unwrap_or_else(|| "?".into())
    }

    /// The counts so far.
    pub fn counts(&self) -> &ReplayCounts {
        &self.counts
    }

    /// Reads one line.
    pub fn push_line(&mut self, line: &str) {
        self.counts.lines += 1;
        match parse_line(line) {
            Ok(Some(f)) => self.push(&f),
            Ok(None) => self.counts.not_flows += 1,
            Err(e) => {
                self.counts.malformed += 1;
                if self.malformed.len() < 10 {
                    self.malformed
                        .push(format!("line {}: {e}", self.counts.lines));
                }
            }
        }
    }

    /// Judges one flow.
    pub fn push(&mut self, f: &RecordedFlow) {
        if f.is_reply {
            self.counts.replies += 1;
            return;
        }
        if f.proxy_leg {
            self.counts.proxy_legs += 1;
            return;
        }
        self.counts.flows += 1;
        let key = Key {
            src: f.src.clone(),
            dst: f.dst.clone(),
            port: f.port,
            proto: f.proto,
            http: f.http.clone(),
        };
        if !self.cache.contains_key(&key) {
            if self.cache.len() >= self.cache_cap {
                self.cache.clear();
            }
            self.counts.distinct += 1;
            let now = Self::judge(self.candidate, &key, false);
            let base = self.baseline.map(|b| Self::judge(b, &key, false));
            let before = base.as_ref().map(|o| o.verdict.is_allow());
            let now_allowed = now.verdict.is_allow();
            let changes = match before.or(f.allowed) {
                Some(b) => b != now_allowed,
                None => false,
            };
            let group = changes.then(|| {
                // Explained once per key, only when it changes.
                let now = Self::judge(self.candidate, &key, true);
                let (policy, rule) = decider(&now);
                let was = base.as_ref().and_then(|o| decider(o).1);
                let g = GroupKey {
                    change_now_allowed: now_allowed,
                    policy,
                    rule,
                    was,
                    from: Self::name(&now, &key.src, true),
                    to: Self::name(&now, &key.dst, false),
                    port: key.port,
                    proto: key.proto,
                    http: key.http.clone(),
                };
                (g, now.explanation)
            });
            self.cache.insert(
                key.clone(),
                Judged {
                    now: now_allowed,
                    before,
                    group,
                },
            );
        }
        let j = &self.cache[&key];
        let before = j.before.or(f.allowed);
        match before {
            None => self.counts.unknown_before += 1,
            Some(b) if b == j.now => self.counts.unchanged += 1,
            Some(_) => {
                if j.now {
                    self.counts.newly_allowed += 1;
                } else {
                    self.counts.newly_denied += 1;
                }
                if let Some((g, why)) = &j.group {
                    let entry = self
                        .groups
                        .entry(g.clone())
                        .or_insert_with(|| ChangedFlows {
                            change: if g.change_now_allowed {
                                Change::NewlyAllowed
                            } else {
                                Change::NewlyDenied
                            },
                            policy: g.policy.clone(),
                            rule: g.rule.clone(),
                            was: g.was.clone(),
                            from: g.from.clone(),
                            to: g.to.clone(),
                            port: g.port,
                            protocol: g.proto,
                            http: g.http.clone(),
                            count: 0,
                            first_seen: f.time.clone(),
                            last_seen: f.time.clone(),
                            explanation: why.clone(),
                        });
                    entry.count += 1;
                    entry.last_seen.clone_from(&f.time);
                }
            }
        }
    }

    /// The report.
    pub fn finish(self) -> ReplayReport {
        let mut changes: Vec<ChangedFlows> = self.groups.into_values().collect();
        changes.sort_by(|a, b| a.change.cmp(&b.change).then(b.count.cmp(&a.count)));
        ReplayReport {
            counts: self.counts,
            changes,
            malformed: self.malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_read_as_flows() {
        let m = r#"{"time_ns":5,"type":"L3_L4","verdict":"allow","hubble_verdict":"FORWARDED","reason":"policy","src":"198.18.0.10","dst":"198.18.0.20","sport":40000,"dport":8080,"protocol":"TCP","direction":"egress","src_identity":1,"dst_identity":2,"is_reply":false,"l7":false,"ifindex":3}"#;
        let f = parse_line(m).unwrap().unwrap();
        assert_eq!((f.port, f.proto, f.allowed), (8080, Proto::Tcp, Some(true)));
        assert_eq!(f.src.ip, Some("198.18.0.10".parse().unwrap()));
        let h = r#"{"flow":{"time":"2026-12-06T03:00:00Z","verdict":"DROPPED","IP":{"source":"10.10.0.5","destination":"10.10.0.6","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":51000,"destination_port":8080}},"source":{"namespace":"production","pod_name":"batch"},"destination":{"namespace":"production","pod_name":"api-server"},"l7":{"http":{"method":"DELETE","url":"http://api:8080/api/v1/users"}},"is_reply":false},"node_name":"n1"}"#;
        let f = parse_line(h).unwrap().unwrap();
        assert_eq!(f.allowed, Some(false));
        assert_eq!(f.src.pod.as_deref(), Some("production/batch"));
        assert_eq!(
            f.http,
            Some(("DELETE".to_string(), "/api/v1/users".to_string()))
        );
        assert_eq!(parse_line("").unwrap(), None);
        assert!(parse_line("{}").is_err());
        assert!(parse_line("not json").is_err());
        // Hubble's camelCase spelling reads the same.
        let c = h
            .replace("source_port", "sourcePort")
            .replace("destination_port", "destinationPort")
            .replace("pod_name", "podName")
            .replace("is_reply", "isReply");
        assert_eq!(parse_line(&c).unwrap(), parse_line(h).unwrap());
    }

    proptest::proptest! {
        /// Recorded files are input from elsewhere: any line is a flow, not
        /// a flow, or an error, and never a panic.
        #[test]
        fn any_line_is_read_or_refused(line in ".{0,400}") {
            let _ = parse_line(&line);
        }

        /// Flow-shaped JSON with arbitrary values is read or refused too.
        #[test]
        fn flow_shaped_json_never_panics(
            src in proptest::prelude::any::<u32>(),
            port in proptest::prelude::any::<i64>(),
            proto in "[A-Za-z]{0,6}",
            verdict in "[a-z]{0,6}",
        ) {
            let m = format!(
                r#"{{"src":"{}","dst":"1.2.3.4","dport":{port},"protocol":"{proto}","verdict":"{verdict}"}}"#,
                std::net::Ipv4Addr::from(src)
            );
            let _ = parse_line(&m);
            let h = format!(
                r#"{{"flow":{{"IP":{{"source":"{}","destination":"x"}},"l4":{{"{proto}":{{"destination_port":{port}}}}},"verdict":"{verdict}"}}}}"#,
                std::net::Ipv4Addr::from(src)
            );
            let _ = parse_line(&h);
        }
    }
}
