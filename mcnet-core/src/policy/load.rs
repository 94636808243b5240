//! Reading manifests: single documents, multi-document streams, YAML
//! sequences and `kind: List` (as `kubectl get -o yaml` prints it), in YAML
//! or JSON. Namespaces and Pods form the inventory; NetworkPolicy,
//! CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy are validated and
//! normalised. Every problem is reported at once, naming the object and the
//! field.

use crate::diag::Code;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use regex::Regex;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::model::*;
use super::raw::{self, IntOrString, RawSelector};
use super::selector::{Key, Op, Selector, Source};
use crate::diag::Diagnostic;
use crate::{Error, Result};

/// Options that change how Cilium policies are read.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The local cluster's name (pods without a cluster label belong to it).
    pub local_cluster: String,
    /// Cilium's `policy-default-local-cluster`: endpoint selectors that do
    /// not name a cluster select the local cluster only (the default since
    /// Cilium 1.19).
    pub default_local_cluster: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            local_cluster: DEFAULT_CLUSTER.into(),
            default_local_cluster: true,
        }
    }
}

/// Everything read from a set of manifests.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    /// Namespaces and pods.
    pub inventory: Inventory,
    /// Normalised policies.
    pub policies: Vec<Policy>,
    /// Things that are not errors but were not understood (ignored kinds,
    /// unknown fields of inventory objects).
    pub warnings: Vec<Diagnostic>,
    /// Policy fields the engine reads but cannot enforce offline
    /// (`toFQDNs`, `authentication`, ...), code `policy.not-enforced`. What
    /// they would decide is "not evaluable", never an allow; `policy lint`
    /// reports each as an error.
    pub not_enforced: Vec<Diagnostic>,
    /// The options used.
    pub options: LoadOptions,
}

#[derive(Default)]
struct Loader {
    options: LoadOptions,
    namespaces: BTreeMap<String, Namespace>,
    pods: Vec<Pod>,
    policies: Vec<Policy>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    not_enforced: Vec<Diagnostic>,
}

impl Manifests {
    /// Reads manifests from `(source name, text)` pairs.
    pub fn load<'a>(sources: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Manifests> {
        Self::load_with(sources, LoadOptions::default())
    }

    /// Reads manifests with options.
    pub fn load_with<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
        options: LoadOptions,
    ) -> Result<Manifests> {
        let mut l = Loader {
            options: options.clone(),
            ..Loader::default()
        };
        for (name, text) in sources {
            l.read_text(name, text);
        }
        if !l.errors.is_empty() {
            return Err(Error::Invalid {
                what: "manifests".into(),
                problems: l.errors,
            });
        }
        let mut namespaces = l.namespaces;
        for p in &l.pods {
            namespaces
                .entry(p.namespace.clone())
                .or_insert_with(|| Namespace {
                    name: p.namespace.clone(),
                    labels: BTreeMap::from([(
                        METADATA_NAME_LABEL.to_string(),
                        p.namespace.clone(),
                    )]),
                });
        }
        Ok(Manifests {
            inventory: Inventory {
                namespaces,
                pods: l.pods,
            },
            policies: l.policies,
            warnings: l.warnings,
            not_enforced: l.not_enforced,
            options,
        })
    }

    /// Reads one text.
    pub fn parse_str(text: &str) -> Result<Manifests> {
        Self::load([("<input>", text)])
    }
}

impl Loader {
    fn err(&mut self, code: Code, path: String, msg: String) {
        self.errors.push(Diagnostic::new(code, path, msg));
    }

    fn read_text(&mut self, source: &str, text: &str) {
        // Size and nesting are checked before the YAML parser runs.
        if let Err(Error::Invalid { problems, .. }) = crate::input::check(source, text) {
            self.errors.extend(problems);
            return;
        }
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            match serde_yaml::Value::deserialize(doc) {
                Ok(v) => self.read_value(source, &format!("{source}#{i}"), v),
                Err(e) => {
                    let loc = e
                        .location()
                        .map(|l| format!("line {} column {}: ", l.line(), l.column()))
                        .unwrap_or_default();
                    self.err(
                        Code::ManifestSyntax,
                        source.to_string(),
                        format!("{source}: {loc}{e}"),
                    );
                    return;
                }
            }
        }
    }

    fn read_value(&mut self, source: &str, at: &str, v: serde_yaml::Value) {
        use serde_yaml::Value;
        match v {
            Value::Null => {}
            Value::Sequence(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    self.read_value(source, &format!("{at}[{i}]"), item);
                }
            }
            Value::Mapping(ref m) => {
                let kind = m
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if kind == "List" || (kind.ends_with("List") && m.contains_key("items")) {
                    if let Some(Value::Sequence(items)) = m.get("items").cloned() {
                        for (i, item) in items.into_iter().enumerate() {
                            self.read_value(source, &format!("{at}.items[{i}]"), item);
                        }
                    }
                    return;
                }
                self.read_object(source, at, &kind, v);
            }
            other => self.err(
                Code::ManifestShape,
                at.to_string(),
                format!("{at}: expected a Kubernetes object, found {other:?}"),
            ),
        }
    }

    fn read_object(&mut self, source: &str, at: &str, kind: &str, v: serde_yaml::Value) {
        #[derive(Deserialize)]
        struct Head {
            #[serde(default)]
            metadata: raw::ObjectMeta,
        }
        let meta = serde_yaml::from_value::<Head>(v.clone())
            .map(|h| h.metadata)
            .unwrap_or_default();
        let ns = meta
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let object = match kind {
            "Namespace" | "NetworkPolicy" | "CiliumNetworkPolicy" | "Pod" => format!(
                "{kind} {}{}",
                if kind == "Namespace" {
                    String::new()
                } else {
                    format!("{ns}/")
                },
                meta.name
            ),
            _ => format!("{kind} {}", meta.name),
        };
        if meta.name.is_empty()
            && matches!(
                kind,
                "Namespace"
                    | "Pod"
                    | "NetworkPolicy"
                    | "CiliumNetworkPolicy"
                    | "CiliumClusterwideNetworkPolicy"
            )
        {
            self.err(
                Code::ManifestName,
                "metadata.name".into(),
                format!("{kind} in {at} has no metadata.name"),
            );
            return;
        }
        let lint_allow: Vec<String> = meta
            .labels
            .get(LINT_ALLOW_LABEL)
            .map(|v| v.split('.').map(str::to_string).collect())
            .unwrap_or_default();
        match kind {
            "Namespace" => {
                let mut labels = meta.labels;
                labels.insert(METADATA_NAME_LABEL.into(), meta.name.clone());
                self.namespaces.insert(
                    meta.name.clone(),
                    Namespace {
                        name: meta.name,
                        labels,
                    },
                );
            }
            "Pod" => {
                #[derive(Deserialize)]
                struct PodObj {
                    #[serde(default)]
                    spec: raw::PodSpec,
                    #[serde(default)]
                    status: raw::PodStatus,
                }
                if let Some(p) = self.typed::<PodObj>(&object, v, false) {
                    self.add_pod(&object, meta, ns, p.spec, p.status);
                }
            }
            "NetworkPolicy" => {
                #[derive(Deserialize)]
                struct Np {
                    #[serde(default)]
                    spec: raw::NetworkPolicySpec,
                }
                if let Some(np) = self.typed::<Np>(&object, v, true) {
                    let id = PolicyId {
                        kind: PolicyKind::NetworkPolicy,
                        namespace: Some(ns.clone()),
                        name: meta.name,
                        spec: None,
                    };
                    self.replace_policies(&id);
                    if let Some(mut p) = self.network_policy(&object, id, &ns, np.spec) {
                        p.lint_allow = lint_allow.clone();
                        self.policies.push(p);
                    }
                }
            }
            "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy" => {
                #[derive(Deserialize)]
                struct Cnp {
                    spec: Option<raw::CiliumRule>,
                    specs: Option<Vec<raw::CiliumRule>>,
                }
                let clusterwide = kind == "CiliumClusterwideNetworkPolicy";
                self.check_directions(&object, &v);
                if let Some(c) = self.typed::<Cnp>(&object, v, true) {
                    let base = PolicyId {
                        kind: if clusterwide {
                            PolicyKind::CiliumClusterwideNetworkPolicy
                        } else {
                            PolicyKind::CiliumNetworkPolicy
                        },
                        namespace: (!clusterwide).then(|| ns.clone()),
                        name: meta.name,
                        spec: None,
                    };
                    self.replace_policies(&base);
                    if c.spec.is_none() && c.specs.as_ref().is_none_or(|s| s.is_empty()) {
                        self.err(
                            Code::PolicyEmpty,
                            "spec".into(),
                            format!("{object}: has neither spec nor specs"),
                        );
                    }
                    if let Some(spec) = c.spec {
                        if let Some(mut p) =
                            self.cilium_rule(&object, "spec", base.clone(), clusterwide, &ns, spec)
                        {
                            p.lint_allow = lint_allow.clone();
                            self.policies.push(p);
                        }
                    }
                    for (i, spec) in c.specs.into_iter().flatten().enumerate() {
                        let id = PolicyId {
                            spec: Some(i),
                            ..base.clone()
                        };
                        if let Some(p) = self.cilium_rule(
                            &object,
                            &format!("specs[{i}]"),
                            id,
                            clusterwide,
                            &ns,
                            spec,
                        ) {
                            let mut p = p;
                            p.lint_allow = lint_allow.clone();
                            self.policies.push(p);
                        }
                    }
                }
            }
            "" => self.err(
                Code::ManifestKind,
                format!("{at}.kind"),
                format!("{at} in {source}: object has no kind"),
            ),
            other => self.warnings.push(Diagnostic::new(
                Code::ManifestIgnored,
                at.to_string(),
                format!(
                    "{other} {} ignored: not an inventory or policy kind",
                    object.split_once(' ').map(|x| x.1).unwrap_or("")
                ),
            )),
        }
    }

    /// Refuses peer fields of the other direction (`toEndpoints` in an
    /// ingress rule, `fromCIDR` in an egress one): the rule types share one
    /// serde shape here, but Cilium's API has no such field, so reading it
    /// as its counterpart would allow what Cilium would refuse.
    fn check_directions(&mut self, object: &str, v: &serde_yaml::Value) {
        let mut rules: Vec<(String, &serde_yaml::Value)> = Vec::new();
        if let Some(spec) = v.get("spec") {
            rules.push(("spec".into(), spec));
        }
        if let Some(specs) = v.get("specs").and_then(|s| s.as_sequence()) {
            rules.extend(
                specs
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("specs[{i}]"), s)),
            );
        }
        for (base, rule) in rules {
            for (section, foreign) in [
                ("ingress", "to"),
                ("ingressDeny", "to"),
                ("egress", "from"),
                ("egressDeny", "from"),
            ] {
                let Some(list) = rule.get(section).and_then(|l| l.as_sequence()) else {
                    continue;
                };
                for (i, r) in list.iter().enumerate() {
                    let Some(map) = r.as_mapping() else { continue };
                    for key in map.keys().filter_map(|k| k.as_str()) {
                        if key.starts_with(foreign) && key != "toPorts" {
                            self.err(
                                Code::PolicyDirection,
                                format!("{base}.{section}[{i}].{key}"),
                                format!(
                                    "{object}: `{key}` is not a field of an {} rule",
                                    if foreign == "to" { "ingress" } else { "egress" }
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    /// A later object with the same identity replaces an earlier one (as `kubectl apply` would).
    fn replace_policies(&mut self, id: &PolicyId) {
        self.policies.retain(|p| {
            !(p.id.kind == id.kind && p.id.namespace == id.namespace && p.id.name == id.name)
        });
    }

    /// Deserialises an object. An unknown field of a policy (`strict`) is an
    /// error, since a rule the engine does not understand must never allow;
    /// of other kinds it is a warning.
    fn typed<T: DeserializeOwned>(
        &mut self,
        object: &str,
        v: serde_yaml::Value,
        strict: bool,
    ) -> Option<T> {
        let before = self.errors.len();
        let mut unknown = Vec::new();
        let r: std::result::Result<T, _> = {
            let mut cb = |p: serde_ignored::Path<'_>| unknown.push(p.to_string());
            let de = serde_ignored::Deserializer::new(v, &mut cb);
            serde_path_to_error::deserialize(de)
        };
        match r {
            Ok(t) => {
                for u in unknown {
                    // serde_ignored writes `?` for each Option it passes.
                    let u = u.replace(".?", "").replace("?.", "");
                    if !u.starts_with("metadata")
                        && !u.starts_with("apiVersion")
                        && !u.starts_with("kind")
                        && !u.starts_with("status")
                    {
                        if strict {
                            self.err(
                                Code::PolicyUnknownField,
                                u.clone(),
                                format!("{object}: unknown field `{u}`: mcnet cannot enforce what it does not understand"),
                            );
                        } else {
                            self.warnings.push(Diagnostic::new(
                                Code::ManifestUnknownField,
                                u.clone(),
                                format!("{object}: unknown field `{u}` ignored"),
                            ));
                        }
                    }
                }
                if strict && self.errors.len() > before {
                    return None;
                }
                Some(t)
            }
            Err(e) => {
                let path = e.path().to_string();
                self.err(
                    Code::ManifestSchema,
                    path.clone(),
                    format!("{object}: {path}: {}", e.inner()),
                );
                None
            }
        }
    }

    fn add_pod(
        &mut self,
        object: &str,
        meta: raw::ObjectMeta,
        ns: String,
        spec: raw::PodSpec,
        status: raw::PodStatus,
    ) {
        let mut ips = Vec::new();
        let mut texts: Vec<(String, String)> = Vec::new();
        if let Some(ip) = &status.pod_ip {
            texts.push(("status.podIP".into(), ip.clone()));
        }
        for (i, p) in status.pod_ips.iter().flatten().enumerate() {
            texts.push((format!("status.podIPs[{i}].ip"), p.ip.clone()));
        }
        for (path, t) in texts {
            // An IPv4-mapped address is the IPv4 address it maps.
            match t.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
                Ok(ip) => {
                    if !ips.contains(&ip) {
                        ips.push(ip)
                    }
                }
                Err(_) => self.err(
                    Code::PodIp,
                    path,
                    format!("{object}: `{t}` is not an IP address"),
                ),
            }
        }
        let mut named_ports = Vec::new();
        for (ci, c) in spec.containers.iter().enumerate() {
            for (pi, p) in c.ports.iter().enumerate() {
                let path = format!("spec.containers[{ci}].ports[{pi}]");
                let proto = match p.protocol.as_deref().map(Proto::parse) {
                    None => Proto::Tcp,
                    Some(Some(pr)) if pr != Proto::Any => pr,
                    _ => {
                        self.err(
                            Code::PodPort,
                            format!("{path}.protocol"),
                            format!("{object}: protocol must be TCP, UDP or SCTP"),
                        );
                        continue;
                    }
                };
                if !(1..=65535).contains(&p.container_port) {
                    self.err(
                        Code::PodPort,
                        format!("{path}.containerPort"),
                        format!(
                            "{object}: containerPort {} is outside 1–65535",
                            p.container_port
                        ),
                    );
                    continue;
                }
                if let Some(name) = &p.name {
                    named_ports.push(NamedPort {
                        name: name.clone(),
                        port: p.container_port as u16,
                        proto,
                    });
                }
            }
        }
        let cluster = meta
            .labels
            .get(CLUSTER_LABEL)
            .cloned()
            .unwrap_or_else(|| self.options.local_cluster.clone());
        let pod = Pod {
            namespace: ns,
            name: meta.name,
            labels: meta.labels,
            ips,
            named_ports,
            service_account: spec
                .service_account_name
                .unwrap_or_else(|| "default".into()),
            cluster,
        };
        if let Some(existing) = self
            .pods
            .iter_mut()
            .find(|p| p.namespace == pod.namespace && p.name == pod.name)
        {
            *existing = pod;
        } else {
            self.pods.push(pod);
        }
    }

    // ---- NetworkPolicy ----

    fn network_policy(
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

    fn selector(
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

    fn k8s_peers(
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

    fn cidr_set(
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

    fn k8s_ports(
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

    // ---- Cilium ----

    fn cilium_rule(
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
    fn scope_peer(&self, sel: Selector, clusterwide: bool, ns: &str) -> Selector {
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
    fn cilium_peer_rule(
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
    fn not_enforced(&mut self, object: &str, path: &str, field: &str, why: &str) {
        self.not_enforced.push(Diagnostic::new(
            Code::PolicyNotEnforced,
            path.to_string(),
            format!("{object}: `{field}` is not enforced: {why}"),
        ));
    }

    /// A peer that needs live cluster state, reported as not enforced.
    fn unresolved(
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
    fn icmp_ports(&mut self, object: &str, at: &str, rules: &[raw::IcmpRule]) -> Option<Ports> {
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

    fn cilium_ports(
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

    /// A port rule's L7 rules: HTTP, Kafka or DNS (one parser per port
    /// rule, as Cilium requires). A generic `l7proto` is not evaluable.
    fn l7_rules(
        &mut self,
        object: &str,
        base: &str,
        dir: Direction,
        rules: &raw::L7Rules,
        not_evaluable: &mut Option<String>,
    ) -> Option<Arc<L7Rules>> {
        let http = rules.http.as_ref().filter(|h| !h.is_empty());
        let kafka = rules.kafka.as_ref().filter(|k| !k.is_empty());
        let dns = rules.dns.as_ref().filter(|d| !d.is_empty());
        let generic = rules.l7proto.is_some() || rules.l7.is_some();
        let kinds = [http.is_some(), kafka.is_some(), dns.is_some(), generic]
            .iter()
            .filter(|x| **x)
            .count();
        if kinds > 1 {
            self.err(
                Code::PolicyL7Mixed,
                base.to_string(),
                format!("{object}: a port rule may carry the rules of one L7 protocol only (http, kafka, dns or l7proto)"),
            );
            return None;
        }
        if generic {
            self.not_enforced(
                object,
                &format!("{base}.l7proto"),
                "l7proto",
                "generic L7 parsers run in Cilium's Envoy proxy; the rule never allows",
            );
            not_evaluable.get_or_insert_with(|| "l7proto".to_string());
            return None;
        }
        if let Some(h) = http {
            return self
                .http_rules(object, &format!("{base}.http"), h, not_evaluable)
                .map(|v| Arc::new(L7Rules::Http(v)));
        }
        if let Some(k) = kafka {
            return self
                .kafka_rules(object, &format!("{base}.kafka"), k)
                .map(|v| Arc::new(L7Rules::Kafka(v)));
        }
        if let Some(d) = dns {
            if dir == Direction::Ingress {
                self.err(
                    Code::PolicyL7Dns,
                    format!("{base}.dns"),
                    format!("{object}: DNS rules apply to egress only"),
                );
                return None;
            }
            return self
                .dns_rules(object, &format!("{base}.dns"), d)
                .map(|v| Arc::new(L7Rules::Dns(v)));
        }
        None
    }

    fn kafka_rules(
        &mut self,
        object: &str,
        path: &str,
        rules: &[raw::KafkaRule],
    ) -> Option<Vec<KafkaMatch>> {
        let before = self.errors.len();
        let mut out = Vec::new();
        for (i, k) in rules.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
            let (role, api_key) = (nonempty(&k.role), nonempty(&k.api_key));
            let api_keys = match (&role, &api_key) {
                (Some(_), Some(_)) => {
                    self.err(
                        Code::PolicyKafka,
                        at.clone(),
                        format!("{object}: role and apiKey are mutually exclusive"),
                    );
                    continue;
                }
                (Some(r), None) => match super::kafka::role_keys(r) {
                    Some(keys) => keys.to_vec(),
                    None => {
                        self.err(
                            Code::PolicyKafka,
                            format!("{at}.role"),
                            format!("{object}: Kafka role `{r}` is not produce or consume"),
                        );
                        continue;
                    }
                },
                (None, Some(a)) => match super::kafka::api_key(a) {
                    Some(n) => vec![n],
                    None => {
                        self.err(
                            Code::PolicyKafka,
                            format!("{at}.apiKey"),
                            format!("{object}: `{a}` is not a Kafka API key name"),
                        );
                        continue;
                    }
                },
                (None, None) => Vec::new(),
            };
            let api_version = match nonempty(&k.api_version) {
                None => None,
                Some(v) => match v.parse::<u16>() {
                    Ok(n) if n <= i16::MAX as u16 => Some(n),
                    _ => {
                        self.err(
                            Code::PolicyKafka,
                            format!("{at}.apiVersion"),
                            format!("{object}: apiVersion `{v}` is not a number 0–32767"),
                        );
                        continue;
                    }
                },
            };
            let topic = nonempty(&k.topic);
            if let Some(t) = &topic {
                if !super::kafka::valid_topic(t) {
                    self.err(
                        Code::PolicyKafka,
                        format!("{at}.topic"),
                        format!("{object}: topic `{t}` is not a valid Kafka topic (1–255 of a-z A-Z 0-9 . _ -)"),
                    );
                    continue;
                }
            }
            let client_id = nonempty(&k.client_id);
            let mut text = Vec::new();
            if let Some(r) = &role {
                text.push(format!("role={r}"));
            }
            if let Some(a) = &api_key {
                text.push(format!("apiKey={a}"));
            }
            if let Some(v) = api_version {
                text.push(format!("apiVersion={v}"));
            }
            if let Some(c) = &client_id {
                text.push(format!("clientID={c}"));
            }
            if let Some(t) = &topic {
                text.push(format!("topic={t}"));
            }
            out.push(KafkaMatch {
                api_keys,
                api_version,
                client_id,
                topic,
                text: if text.is_empty() {
                    "any request".into()
                } else {
                    text.join(" ")
                },
            });
        }
        (self.errors.len() == before).then_some(out)
    }

    fn dns_rules(
        &mut self,
        object: &str,
        path: &str,
        rules: &[raw::DnsRule],
    ) -> Option<Vec<DnsMatch>> {
        let before = self.errors.len();
        let mut out = Vec::new();
        for (i, d) in rules.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let compiled = match (&d.match_name, &d.match_pattern) {
                (Some(n), None) => super::dns::name_regex(n)
                    .map(|r| (r, format!("matchName={n}")))
                    .map_err(|e| e.to_string()),
                (None, Some(p)) => super::dns::pattern_regex(p)
                    .map(|r| (r, format!("matchPattern={p}")))
                    .map_err(|e| e.to_string()),
                (Some(_), Some(_)) => Err("give matchName or matchPattern, not both".to_string()),
                (None, None) => Err("a DNS rule needs matchName or matchPattern".to_string()),
            };
            match compiled {
                Ok((regex, text)) => out.push(DnsMatch { regex, text }),
                Err(e) => self.err(Code::PolicyDns, at, format!("{object}: {e}")),
            }
        }
        (self.errors.len() == before).then_some(out)
    }

    fn http_rules(
        &mut self,
        object: &str,
        path: &str,
        rules: &[raw::HttpRule],
        not_evaluable: &mut Option<String>,
    ) -> Option<Vec<HttpMatch>> {
        let mut out = Vec::new();
        let before = self.errors.len();
        for (i, h) in rules.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let mut re = |field: &str, v: &Option<String>| -> Option<Regex> {
                let v = v.as_ref()?;
                match Regex::new(&format!("^(?:{v})$")) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        let first = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                            .to_string();
                        self.errors.push(Diagnostic::new(
                            Code::PolicyRegex,
                            format!("{at}.{field}"),
                            format!("{object}: `{v}` is not a valid regex ({first})"),
                        ));
                        None
                    }
                }
            };
            let method = re("method", &h.method);
            let path_re = re("path", &h.path);
            let host = re("host", &h.host);
            let mut headers = Vec::new();
            for hd in h.headers.iter().flatten() {
                let hd = hd.trim();
                let (name, value) = match hd.split_once(' ') {
                    Some((n, v)) => (
                        n.trim_end_matches(':').to_string(),
                        Some(v.trim().to_string()),
                    ),
                    None => (hd.trim_end_matches(':').to_string(), None),
                };
                headers.push(HeaderReq {
                    name,
                    value,
                    lenient: false,
                });
            }
            for (j, hm) in h.header_matches.iter().flatten().enumerate() {
                if hm.secret.is_some() {
                    self.not_enforced(
                        object,
                        &format!("{at}.headerMatches[{j}].secret"),
                        "secret",
                        "a header value held in a Kubernetes secret is cluster state; the rule never allows",
                    );
                    not_evaluable.get_or_insert_with(|| "headerMatches.secret".to_string());
                }
                headers.push(HeaderReq {
                    name: hm.name.clone(),
                    value: hm.value.clone(),
                    lenient: hm.mismatch.is_some(),
                });
            }
            let mut text = Vec::new();
            if let Some(m) = &h.method {
                text.push(format!("method={m}"));
            }
            if let Some(p) = &h.path {
                text.push(format!("path={p}"));
            }
            if let Some(x) = &h.host {
                text.push(format!("host={x}"));
            }
            for hd in &headers {
                text.push(match &hd.value {
                    Some(v) => format!("header {}={v}", hd.name),
                    None => format!("header {}", hd.name),
                });
            }
            out.push(HttpMatch {
                method,
                path: path_re,
                host,
                headers,
                text: if text.is_empty() {
                    "any request".into()
                } else {
                    text.join(" ")
                },
            });
        }
        (self.errors.len() == before).then_some(out)
    }
}

/// The most ICMP fields one `icmps` entry may list (Cilium's limit).
pub const MAX_ICMP_FIELDS: usize = 40;

/// Whether a port rule's `rules` carries any L7 rule.
fn l7_present(r: &raw::L7Rules) -> bool {
    r.http.as_ref().is_some_and(|v| !v.is_empty())
        || r.kafka.as_ref().is_some_and(|v| !v.is_empty())
        || r.dns.as_ref().is_some_and(|v| !v.is_empty())
        || r.l7proto.is_some()
        || r.l7.is_some()
}

/// An ICMP type written as a number (0–255) or as one of Cilium's names
/// for the family.
pub fn icmp_type(proto: Proto, t: &IntOrString) -> Option<u8> {
    let text = match t {
        IntOrString::Int(n) => return u8::try_from(*n).ok(),
        IntOrString::Str(s) => s.as_str(),
    };
    if let Ok(n) = text.parse::<i64>() {
        return u8::try_from(n).ok();
    }
    let table: &[(&str, u8)] = if proto == Proto::Icmpv6 {
        ICMPV6_TYPES
    } else {
        ICMPV4_TYPES
    };
    table.iter().find(|(n, _)| *n == text).map(|&(_, v)| v)
}

/// Cilium's names of ICMP (IPv4) message types.
pub const ICMPV4_TYPES: &[(&str, u8)] = &[
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
    ("Photuris", 40),
    ("ExtendedEchoRequest", 42),
    ("ExtendedEchoReply", 43),
];

/// Cilium's names of ICMPv6 message types.
pub const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
    ("RouterRenumbering", 138),
    ("ICMPNodeInformationQuery", 139),
    ("ICMPNodeInformationResponse", 140),
    ("InverseNeighborDiscoverySolicitation", 141),
    ("InverseNeighborDiscoveryAdvertisement", 142),
    ("HomeAgentAddressDiscoveryRequest", 144),
    ("HomeAgentAddressDiscoveryReply", 145),
    ("MobilePrefixSolicitation", 146),
    ("MobilePrefixAdvertisement", 147),
    ("DuplicateAddressRequestCodeSuffix", 157),
    ("DuplicateAddressConfirmationCodeSuffix", 158),
    ("ExtendedEchoRequest", 160),
    ("ExtendedEchoReply", 161),
];

/// Parses a prefix, accepting a bare address as a host prefix and
/// truncating host bits (as Go's ParseCIDR-based validation does).
///
/// An IPv4-mapped prefix (`::ffff:10.0.0.0/104`) is the IPv4 prefix it maps
/// (`10.0.0.0/8`), as Go's `IPNet.Contains` reads it: such a prefix holds
/// IPv4 addresses, and no IPv6 prefix ever holds one.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    let net = match s.parse::<IpNet>() {
        Ok(n) => n.trunc(),
        Err(_) => IpNet::from(s.parse::<IpAddr>().ok()?),
    };
    Some(match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(ipnet::Ipv4Net::new(v4, n.prefix_len() - 96).ok()?),
            None => net,
        },
        _ => net,
    })
}

/// An IANA service name as Kubernetes validates port names: 1–15
/// characters of `[a-z0-9-]`, at least one letter, no leading, trailing or
/// double hyphen.
pub fn valid_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}
