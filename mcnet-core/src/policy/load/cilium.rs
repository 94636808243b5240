//! CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy rules: peers,
//! entities, CIDRs, ICMP and ports, normalised into rules.

use super::*;

impl Loader {
    pub(super) fn cilium_rule(
        &mut self,
        object: &str,
        base: &str,
        id: PolicyId,
        clusterwide: bool,
        ns: &str,
        rule: raw::CiliumRule,
    ) -> Option<Policy> {
        let before = self.errors.len();
        let subject = match (&rule.endpoint_selector, &rule.node_selector) {
            (Some(_), Some(_)) | (None, None) => {
                self.err(
                    Code::PolicySubject,
                    base.to_string(),
                    format!(
                        "{object}: exactly one of endpointSelector and nodeSelector must be set"
                    ),
                );
                None
            }
            (None, Some(s)) => {
                if !clusterwide {
                    self.err(Code::PolicySubject, format!("{base}.nodeSelector"), format!("{object}: nodeSelector is only valid in a CiliumClusterwideNetworkPolicy"));
                }
                self.selector(object, s, true, &format!("{base}.nodeSelector"))
                    .map(Subject::Nodes)
            }
            (Some(s), None) => self
                .selector(object, s, true, &format!("{base}.endpointSelector"))
                .map(|sel| {
                    if clusterwide {
                        Subject::Endpoints(sel)
                    } else {
                        // A namespaced policy always selects its own namespace.
                        let mut sel = sel;
                        sel.reqs.retain(|r| {
                            !(r.key.name == NAMESPACE_LABEL
                                && matches!(r.key.source, Source::K8s | Source::Any))
                        });
                        Subject::Endpoints(sel.and(
                            Key {
                                source: Source::K8s,
                                name: NAMESPACE_LABEL.into(),
                            },
                            Op::In(vec![ns.to_string()]),
                        ))
                    }
                }),
        };
        let dd = rule.enable_default_deny.clone().unwrap_or_default();
        let mut dirs = Vec::new();
        for (dir, allow, deny, default) in [
            (
                Direction::Ingress,
                &rule.ingress,
                &rule.ingress_deny,
                dd.ingress,
            ),
            (
                Direction::Egress,
                &rule.egress,
                &rule.egress_deny,
                dd.egress,
            ),
        ] {
            let (sec, dsec) = match dir {
                Direction::Ingress => ("ingress", "ingressDeny"),
                Direction::Egress => ("egress", "egressDeny"),
            };
            let has_rules = allow.as_ref().is_some_and(|a| !a.is_empty())
                || deny.as_ref().is_some_and(|d| !d.is_empty());
            let mut d = DirPolicy {
                isolates: default.unwrap_or(has_rules),
                ..DirPolicy::default()
            };
            for (i, r) in allow.iter().flatten().enumerate() {
                let at = format!("{base}.{sec}[{i}]");
                for (j, req) in r.from_requires.iter().flatten().enumerate() {
                    let field = if dir == Direction::Ingress {
                        "fromRequires"
                    } else {
                        "toRequires"
                    };
                    if let Some(s) = self.selector(object, req, true, &format!("{at}.{field}[{j}]"))
                    {
                        let s = self.scope_peer(s, clusterwide, ns);
                        d.requires.push(s);
                    }
                }
                if let Some(rule) =
                    self.cilium_peer_rule(object, &at, i, dir, clusterwide, ns, r, false)
                {
                    d.allow.push(rule);
                }
            }
            for (i, r) in deny.iter().flatten().enumerate() {
                let at = format!("{base}.{dsec}[{i}]");
                if let Some(rule) =
                    self.cilium_peer_rule(object, &at, i, dir, clusterwide, ns, r, true)
                {
                    d.deny.push(rule);
                }
            }
            dirs.push(d);
        }
        if self.errors.len() > before {
            return None;
        }
        let egress = dirs.pop()?;
        let ingress = dirs.pop()?;
        Some(Policy {
            id,
            subject: subject?,
            ingress,
            egress,
            lint_allow: Vec::new(),
        })
    }

    /// Applies Cilium's scoping to a peer endpoint selector.
    pub(super) fn scope_peer(&self, sel: Selector, clusterwide: bool, ns: &str) -> Selector {
        if sel.has_reserved() {
            return sel;
        }
        let mut sel = sel;
        let names_ns = sel.mentions(NAMESPACE_LABEL);
        if !clusterwide {
            if !names_ns && !sel.mentions_prefix(NAMESPACE_LABELS_PREFIX) {
                sel = sel.and(
                    Key {
                        source: Source::K8s,
                        name: NAMESPACE_LABEL.into(),
                    },
                    Op::In(vec![ns.to_string()]),
                );
            }
        } else if !names_ns {
            sel = sel.and(
                Key {
                    source: Source::K8s,
                    name: NAMESPACE_LABEL.into(),
                },
                Op::Exists,
            );
        }
        if self.options.default_local_cluster && !sel.mentions(CLUSTER_LABEL) {
            sel = sel.and(
                Key {
                    source: Source::K8s,
                    name: CLUSTER_LABEL.into(),
                },
                Op::In(vec![self.options.local_cluster.clone()]),
            );
        }
        sel
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn cilium_peer_rule(
        &mut self,
        object: &str,
        at: &str,
        index: usize,
        dir: Direction,
        clusterwide: bool,
        ns: &str,
        r: &raw::CiliumPeerRule,
        deny: bool,
    ) -> Option<Rule> {
        let (ep, ent, cidr, cidrset, nodes) = match dir {
            Direction::Ingress => (
                "fromEndpoints",
                "fromEntities",
                "fromCIDR",
                "fromCIDRSet",
                "fromNodes",
            ),
            Direction::Egress => (
                "toEndpoints",
                "toEntities",
                "toCIDR",
                "toCIDRSet",
                "toNodes",
            ),
        };
        let has_l3 = r.from_endpoints.is_some()
            || r.from_entities.is_some()
            || r.from_cidr.is_some()
            || r.from_cidr_set.is_some()
            || r.from_nodes.is_some()
            || r.from_groups.is_some()
            || r.to_services.is_some()
            || r.to_fqdns.is_some();
        let has_icmps = r.icmps.as_ref().is_some_and(|i| !i.is_empty());
        let has_ports = r.to_ports.as_ref().is_some_and(|p| !p.is_empty()) || has_icmps;
        let mut peers = Vec::new();
        for (i, s) in r.from_endpoints.iter().flatten().enumerate() {
            if let Some(sel) = self.selector(object, s, true, &format!("{at}.{ep}[{i}]")) {
                peers.push(Peer::Endpoints(self.scope_peer(sel, clusterwide, ns)));
            }
        }
        for (i, e) in r.from_entities.iter().flatten().enumerate() {
            match Entity::parse(e) {
                Some(en) => peers.push(Peer::Entity(en)),
                None => self.err(
                    Code::PolicyEntity,
                    format!("{at}.{ent}[{i}]"),
                    format!("{object}: unknown entity `{e}` (expected world, cluster, host, remote-node, kube-apiserver, init, health, unmanaged, ingress, all, none)"),
                ),
            }
        }
        for (i, c) in r.from_cidr.iter().flatten().enumerate() {
            if let Some(set) = self.cidr_set(object, c, None, &format!("{at}.{cidr}[{i}]"), false) {
                peers.push(Peer::Cidr(set));
            }
        }
        for (i, c) in r.from_cidr_set.iter().flatten().enumerate() {
            let p = format!("{at}.{cidrset}[{i}]");
            match &c.cidr {
                Some(cidr) => {
                    if let Some(set) = self.cidr_set(object, cidr, c.except.as_deref(), &p, false) {
                        peers.push(Peer::Cidr(set));
                    }
                }
                None => peers.push(self.unresolved(
                    object,
                    &format!(
                        "{p}.{}",
                        if c.cidr_group_ref.is_some() {
                            "cidrGroupRef"
                        } else {
                            "cidrGroupSelector"
                        }
                    ),
                    if c.cidr_group_ref.is_some() {
                        "cidrGroupRef"
                    } else {
                        "cidrGroupSelector"
                    },
                    UnresolvedScope::World,
                    "a CiliumCIDRGroup is cluster state",
                )),
            }
        }
        // Peers that need live cluster state: they may stand for any
        // identity of their scope, so what they decide is not evaluable.
        let unresolved: [(bool, &str, UnresolvedScope, &str); 4] = [
            (
                r.from_nodes.is_some(),
                nodes,
                UnresolvedScope::Nodes,
                "nodes are not in the inventory",
            ),
            (
                r.to_services.is_some(),
                "toServices",
                UnresolvedScope::Any,
                "services and their endpoints are cluster state",
            ),
            (
                r.to_fqdns.is_some(),
                "toFQDNs",
                UnresolvedScope::World,
                "the addresses behind names are learnt from live DNS",
            ),
            (
                r.from_groups.is_some(),
                if dir == Direction::Ingress {
                    "fromGroups"
                } else {
                    "toGroups"
                },
                UnresolvedScope::World,
                "cloud groups are resolved by the cloud provider's API",
            ),
        ];
        for (present, field, scope, why) in unresolved {
            if present {
                peers.push(self.unresolved(object, &format!("{at}.{field}"), field, scope, why));
            }
        }
        let mut not_evaluable = None;
        if let Some(auth) = &r.authentication {
            let mode = auth
                .get("mode")
                .and_then(|m| m.as_str())
                .unwrap_or("required");
            if mode != "disabled" {
                self.not_enforced(
                    object,
                    &format!("{at}.authentication"),
                    "authentication",
                    &format!("mutual authentication (mode `{mode}`) is not enforced by mcnet; the rule never allows"),
                );
                not_evaluable = Some("authentication".to_string());
            }
        }
        let peers = if has_l3 {
            Peers::Some(peers)
        } else if has_ports {
            Peers::All
        } else {
            Peers::Some(Vec::new())
        };
        let ports = if has_icmps {
            if r.to_ports.as_ref().is_some_and(|p| !p.is_empty()) {
                self.err(
                    Code::PolicyIcmpPorts,
                    format!("{at}.icmps"),
                    format!("{object}: the ICMPs block may only be present without ToPorts. Define a separate rule to use ToPorts"),
                );
                None
            } else {
                self.icmp_ports(object, at, r.icmps.as_deref().unwrap_or_default())
            }
        } else {
            self.cilium_ports(
                object,
                at,
                dir,
                r.to_ports.as_deref(),
                deny,
                &mut not_evaluable,
            )
        };
        Some(Rule {
            index,
            peers,
            ports: ports?,
            not_evaluable,
        })
    }

    /// Records a field the engine reads but cannot enforce offline.
    pub(super) fn not_enforced(&mut self, object: &str, path: &str, field: &str, why: &str) {
        self.not_enforced.push(Diagnostic::new(
            Code::PolicyNotEnforced,
            path.to_string(),
            format!("{object}: `{field}` is not enforced: {why}"),
        ));
    }

    /// A peer that needs live cluster state, reported as not enforced.
    pub(super) fn unresolved(
        &mut self,
        object: &str,
        path: &str,
        field: &str,
        scope: UnresolvedScope,
        why: &str,
    ) -> Peer {
        self.not_enforced(
            object,
            path,
            field,
            &format!("{why}; verdicts it would decide are \"not evaluable\", never allow"),
        );
        Peer::Unresolved {
            field: field.to_string(),
            scope,
        }
    }

    /// The ports of an `icmps` list: one entry per ICMP type, keyed by
    /// protocol (ICMP or ICMPv6) with the type as the port.
    pub(super) fn icmp_ports(
        &mut self,
        object: &str,
        at: &str,
        rules: &[raw::IcmpRule],
    ) -> Option<Ports> {
        let before = self.errors.len();
        let mut out = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let fields = rule.fields.as_deref().unwrap_or_default();
            if fields.len() > MAX_ICMP_FIELDS {
                self.err(
                    Code::PolicyIcmp,
                    format!("{at}.icmps[{i}].fields"),
                    format!(
                        "{object}: {} ICMP fields, more than the {MAX_ICMP_FIELDS} Cilium accepts",
                        fields.len()
                    ),
                );
                continue;
            }
            for (j, f) in fields.iter().enumerate() {
                let p = format!("{at}.icmps[{i}].fields[{j}]");
                let proto = match f.family.as_deref() {
                    None | Some("") | Some("IPv4") => Proto::Icmp,
                    Some("IPv6") => Proto::Icmpv6,
                    Some(other) => {
                        self.err(
                            Code::PolicyIcmp,
                            format!("{p}.family"),
                            format!("{object}: ICMP family `{other}` is not IPv4 or IPv6"),
                        );
                        continue;
                    }
                };
                let Some(t) = &f.icmp_type else {
                    self.err(
                        Code::PolicyIcmp,
                        format!("{p}.type"),
                        format!("{object}: an ICMP field needs a type"),
                    );
                    continue;
                };
                match icmp_type(proto, t) {
                    Some(t) => out.push(PortSel {
                        proto,
                        port: PortSpec::Range(t.into(), t.into()),
                        l7: None,
                    }),
                    None => {
                        let shown = match t {
                            IntOrString::Int(n) => n.to_string(),
                            IntOrString::Str(s) => s.clone(),
                        };
                        self.err(
                            Code::PolicyIcmp,
                            format!("{p}.type"),
                            format!(
                                "{object}: `{shown}` is not an {} message type (a number 0–255 or a name such as {})",
                                proto,
                                if proto == Proto::Icmp { "EchoRequest" } else { "EchoRequest or NeighborSolicitation" }
                            ),
                        );
                    }
                }
            }
        }
        (self.errors.len() == before).then_some(Ports::Some(out))
    }

    pub(super) fn cilium_ports(
        &mut self,
        object: &str,
        at: &str,
        dir: Direction,
        rules: Option<&[raw::PortRule]>,
        deny: bool,
        not_evaluable: &mut Option<String>,
    ) -> Option<Ports> {
        let Some(list) = rules.filter(|l| !l.is_empty()) else {
            return Some(Ports::All);
        };
        let mut out = Vec::new();
        let before = self.errors.len();
        for (i, pr) in list.iter().enumerate() {
            let base = format!("{at}.toPorts[{i}]");
            // Port-rule fields that need the proxy and cluster state.
            let proxy_only: [(&str, bool); 4] = [
                ("terminatingTLS", pr.terminating_tls.is_some()),
                ("originatingTLS", pr.originating_tls.is_some()),
                ("serverNames", pr.server_names.is_some()),
                ("listener", pr.listener.is_some()),
            ];
            for (field, present) in proxy_only {
                if !present {
                    continue;
                }
                if deny {
                    self.err(
                        Code::PolicyL7Deny,
                        format!("{base}.{field}"),
                        format!("{object}: `{field}` is not allowed in deny rules"),
                    );
                } else {
                    self.not_enforced(
                        object,
                        &format!("{base}.{field}"),
                        field,
                        "it needs Cilium's Envoy proxy and cluster secrets; the rule never allows",
                    );
                    not_evaluable.get_or_insert_with(|| field.to_string());
                }
            }
            let l7 = match &pr.rules {
                Some(rules) if deny && l7_present(rules) => {
                    self.err(
                        Code::PolicyL7Deny,
                        format!("{base}.rules"),
                        format!("{object}: L7 rules are not allowed in deny rules"),
                    );
                    None
                }
                Some(rules) => {
                    self.l7_rules(object, &format!("{base}.rules"), dir, rules, not_evaluable)
                }
                None => None,
            };
            let ports = pr.ports.clone().unwrap_or_default();
            if ports.is_empty() {
                // Cilium reads a port rule without ports as every port of
                // every L4 protocol (ANY expands to TCP, UDP and SCTP).
                for proto in Proto::L4_ANY {
                    out.push(PortSel {
                        proto,
                        port: PortSpec::Range(0, 65535),
                        l7: l7.clone(),
                    });
                }
            }
            for (j, pp) in ports.iter().enumerate() {
                let p = format!("{base}.ports[{j}]");
                let proto = match pp.protocol.as_deref() {
                    None | Some("") => Proto::Any,
                    Some(s) => match Proto::parse(s).filter(|p| !p.is_icmp()) {
                        Some(pr) => pr,
                        None => {
                            self.err(
                                Code::PolicyProtocol,
                                format!("{p}.protocol"),
                                format!("{object}: protocol `{s}` is not TCP, UDP, SCTP or ANY (ICMP is written as `icmps`)"),
                            );
                            continue;
                        }
                    },
                };
                if l7.is_some() && !matches!(proto, Proto::Tcp | Proto::Udp | Proto::Any) {
                    self.err(
                        Code::PolicyL7Protocol,
                        format!("{p}.protocol"),
                        format!("{object}: L7 rules cannot apply to {proto}"),
                    );
                    continue;
                }
                let text = match &pp.port {
                    None => "0".to_string(),
                    Some(IntOrString::Int(n)) => n.to_string(),
                    Some(IntOrString::Str(s)) => s.clone(),
                };
                let port = if let Ok(n) = text.parse::<i64>() {
                    if !(0..=65535).contains(&n) {
                        self.err(
                            Code::PolicyPort,
                            format!("{p}.port"),
                            format!("{object}: port {n} is outside 0–65535"),
                        );
                        continue;
                    }
                    match pp.end_port {
                        None if n == 0 => PortSpec::Range(0, 65535),
                        None => PortSpec::Range(n as u16, n as u16),
                        Some(_) if n == 0 => {
                            self.err(
                                Code::PolicyEndPort,
                                format!("{p}.endPort"),
                                format!("{object}: endPort needs a non-zero port"),
                            );
                            continue;
                        }
                        Some(e) if e < n => {
                            self.err(
                                Code::PolicyEndPort,
                                format!("{p}.endPort"),
                                format!("{object}: endPort {e} is below port {n}"),
                            );
                            continue;
                        }
                        Some(e) if e > 65535 => {
                            self.err(
                                Code::PolicyEndPort,
                                format!("{p}.endPort"),
                                format!("{object}: endPort {e} is above 65535"),
                            );
                            continue;
                        }
                        Some(e) => PortSpec::Range(n as u16, e as u16),
                    }
                } else {
                    if pp.end_port.is_some() {
                        self.err(
                            Code::PolicyEndPort,
                            format!("{p}.endPort"),
                            format!(
                                "{object}: endPort cannot be used with the named port `{text}`"
                            ),
                        );
                        continue;
                    }
                    if !valid_port_name(&text.to_ascii_lowercase()) {
                        self.err(
                            Code::PolicyPort,
                            format!("{p}.port"),
                            format!(
                                "{object}: `{text}` is neither a port number nor a valid port name"
                            ),
                        );
                        continue;
                    }
                    PortSpec::Named(text.to_ascii_lowercase())
                };
                // `ANY` is TCP, UDP and SCTP (never ICMP), as Cilium expands it;
                // an L7 parser narrows it to the protocol it speaks.
                let protos: Vec<Proto> = match (proto, l7.as_deref().map(L7Rules::parser)) {
                    (Proto::Any, Some(L7Parser::Dns)) => vec![Proto::Udp, Proto::Tcp],
                    (Proto::Any, Some(_)) => vec![Proto::Tcp],
                    (Proto::Any, None) => Proto::L4_ANY.to_vec(),
                    (p, _) => vec![p],
                };
                for proto in protos {
                    if proto == Proto::Udp
                        && l7.as_deref().is_some_and(|r| r.parser() != L7Parser::Dns)
                    {
                        self.err(
                            Code::PolicyL7Protocol,
                            format!("{p}.protocol"),
                            format!("{object}: only DNS rules apply to UDP"),
                        );
                        continue;
                    }
                    out.push(PortSel {
                        proto,
                        port: port.clone(),
                        l7: l7.clone(),
                    });
                }
            }
        }
        (self.errors.len() == before).then_some(Ports::Some(out))
    }
}
