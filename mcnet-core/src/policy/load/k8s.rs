//! Kubernetes NetworkPolicy: validation and normalisation into rules.

use super::*;

impl Loader {
    pub(super) fn network_policy(
        &mut self,
        object: &str,
        id: PolicyId,
        ns: &str,
        spec: raw::NetworkPolicySpec,
    ) -> Option<Policy> {
        let before = self.errors.len();
        let subject = self.selector(object, &spec.pod_selector, false, "spec.podSelector");
        let (mut ingress_on, mut egress_on) =
            (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty()));
        if let Some(types) = &spec.policy_types {
            ingress_on = false;
            egress_on = false;
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => ingress_on = true,
                    "Egress" => egress_on = true,
                    other => self.err(
                        Code::PolicyPolicyTypes,
                        format!("spec.policyTypes[{i}]"),
                        format!("{object}: policyType `{other}` is not Ingress or Egress"),
                    ),
                }
            }
        }
        let mut ingress = DirPolicy {
            isolates: ingress_on,
            ..DirPolicy::default()
        };
        let mut egress = DirPolicy {
            isolates: egress_on,
            ..DirPolicy::default()
        };
        if ingress_on {
            for (i, r) in spec.ingress.iter().flatten().enumerate() {
                let base = format!("spec.ingress[{i}]");
                let peers = self.k8s_peers(object, ns, r.from.as_deref(), &format!("{base}.from"));
                let ports = self.k8s_ports(object, r.ports.as_deref(), &format!("{base}.ports"));
                ingress.allow.push(Rule {
                    not_evaluable: None,
                    index: i,
                    peers,
                    ports,
                });
            }
        }
        if egress_on {
            for (i, r) in spec.egress.iter().flatten().enumerate() {
                let base = format!("spec.egress[{i}]");
                let peers = self.k8s_peers(object, ns, r.to.as_deref(), &format!("{base}.to"));
                let ports = self.k8s_ports(object, r.ports.as_deref(), &format!("{base}.ports"));
                egress.allow.push(Rule {
                    not_evaluable: None,
                    index: i,
                    peers,
                    ports,
                });
            }
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Policy {
            id,
            subject: Subject::Pods {
                namespace: ns.to_string(),
                selector: subject?,
            },
            ingress,
            egress,
            lint_allow: Vec::new(),
        })
    }

    pub(super) fn selector(
        &mut self,
        object: &str,
        raw: &RawSelector,
        cilium: bool,
        path: &str,
    ) -> Option<Selector> {
        match Selector::parse(raw, cilium, path) {
            Ok(s) => Some(s),
            Err((p, m)) => {
                self.err(Code::PolicySelector, p, format!("{object}: {m}"));
                None
            }
        }
    }

    pub(super) fn k8s_peers(
        &mut self,
        object: &str,
        ns: &str,
        peers: Option<&[raw::NetworkPolicyPeer]>,
        path: &str,
    ) -> Peers {
        let Some(list) = peers.filter(|l| !l.is_empty()) else {
            return Peers::All;
        };
        let mut out = Vec::new();
        for (i, p) in list.iter().enumerate() {
            let at = format!("{path}[{i}]");
            match (&p.pod_selector, &p.namespace_selector, &p.ip_block) {
                (None, None, None) => self.err(
                    Code::PolicyPeer,
                    at,
                    format!("{object}: a peer must set podSelector, namespaceSelector or ipBlock"),
                ),
                (_, _, Some(_)) if p.pod_selector.is_some() || p.namespace_selector.is_some() => self.err(
                    Code::PolicyPeer,
                    at,
                    format!("{object}: ipBlock cannot be combined with podSelector or namespaceSelector in one peer"),
                ),
                (_, _, Some(b)) => {
                    if let Some(set) = self.cidr_set(object, &b.cidr, b.except.as_deref(), &format!("{at}.ipBlock"), true) {
                        out.push(Peer::IpBlock(set));
                    }
                }
                (ps, nss, None) => {
                    let pods = ps.as_ref().and_then(|s| self.selector(object, s, false, &format!("{at}.podSelector")));
                    let namespaces = nss.as_ref().and_then(|s| self.selector(object, s, false, &format!("{at}.namespaceSelector")));
                    out.push(Peer::K8sPods { pods, namespaces, policy_namespace: ns.to_string() });
                }
            }
        }
        Peers::Some(out)
    }

    pub(super) fn cidr_set(
        &mut self,
        object: &str,
        cidr: &str,
        except: Option<&[String]>,
        path: &str,
        strict_subset: bool,
    ) -> Option<CidrSet> {
        let Some(net) = parse_net(cidr) else {
            self.err(
                Code::PolicyCidr,
                format!("{path}.cidr"),
                format!("{object}: `{cidr}` is not a CIDR"),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, e) in except.into_iter().flatten().enumerate() {
            let p = format!("{path}.except[{i}]");
            match parse_net(e) {
                None => {
                    self.err(
                        Code::PolicyCidr,
                        p,
                        format!("{object}: except `{e}` is not a CIDR"),
                    );
                    ok = false;
                }
                Some(en) => {
                    let inside =
                        net.contains(&en) && (!strict_subset || en.prefix_len() > net.prefix_len());
                    if !inside {
                        self.err(
                            Code::PolicyExceptOutside,
                            p,
                            format!(
                                "{object}: except {en} is not {} {net}",
                                if strict_subset {
                                    "a strict subset of"
                                } else {
                                    "inside"
                                }
                            ),
                        );
                        ok = false;
                    } else {
                        out.push(en);
                    }
                }
            }
        }
        ok.then_some(CidrSet {
            cidr: net,
            except: out,
        })
    }

    pub(super) fn k8s_ports(
        &mut self,
        object: &str,
        ports: Option<&[raw::NetworkPolicyPort]>,
        path: &str,
    ) -> Ports {
        let Some(list) = ports.filter(|l| !l.is_empty()) else {
            return Ports::All;
        };
        let mut out = Vec::new();
        for (i, p) in list.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let proto = match p.protocol.as_deref() {
                None => Proto::Tcp,
                Some("TCP") => Proto::Tcp,
                Some("UDP") => Proto::Udp,
                Some("SCTP") => Proto::Sctp,
                Some(other) => {
                    self.err(
                        Code::PolicyProtocol,
                        format!("{at}.protocol"),
                        format!("{object}: protocol `{other}` is not TCP, UDP or SCTP"),
                    );
                    continue;
                }
            };
            let port = match &p.port {
                None => {
                    if p.end_port.is_some() {
                        self.err(
                            Code::PolicyEndPort,
                            format!("{at}.endPort"),
                            format!("{object}: endPort requires port"),
                        );
                        continue;
                    }
                    PortSpec::Range(1, 65535)
                }
                Some(IntOrString::Int(n)) => {
                    if !(1..=65535).contains(n) {
                        self.err(
                            Code::PolicyPort,
                            format!("{at}.port"),
                            format!("{object}: port {n} is outside 1–65535"),
                        );
                        continue;
                    }
                    match p.end_port {
                        None => PortSpec::Range(*n as u16, *n as u16),
                        Some(e) if e < *n => {
                            self.err(
                                Code::PolicyEndPort,
                                format!("{at}.endPort"),
                                format!("{object}: endPort {e} is below port {n}"),
                            );
                            continue;
                        }
                        Some(e) if e > 65535 => {
                            self.err(
                                Code::PolicyEndPort,
                                format!("{at}.endPort"),
                                format!("{object}: endPort {e} is above 65535"),
                            );
                            continue;
                        }
                        Some(e) => PortSpec::Range(*n as u16, e as u16),
                    }
                }
                Some(IntOrString::Str(name)) => {
                    if p.end_port.is_some() {
                        self.err(
                            Code::PolicyEndPort,
                            format!("{at}.endPort"),
                            format!(
                                "{object}: endPort cannot be used with the named port `{name}`"
                            ),
                        );
                        continue;
                    }
                    if !valid_port_name(name) {
                        self.err(
                            Code::PolicyPort,
                            format!("{at}.port"),
                            format!("{object}: `{name}` is not a valid port name (1–15 of [a-z0-9-] with a letter) or number"),
                        );
                        continue;
                    }
                    PortSpec::Named(name.clone())
                }
            };
            out.push(PortSel {
                proto,
                port,
                l7: None,
            });
        }
        Ports::Some(out)
    }
}
