//! Reading manifests: single documents, multi-document streams, YAML
//! sequences and `kind: List` (as `kubectl get -o yaml` prints it), in YAML
//! or JSON. Namespaces and Pods form the inventory; NetworkPolicy,
//! CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy are validated and
//! normalised. Every problem is reported at once, naming the object and the
//! field.

mod cilium;
mod k8s;
mod l7;

use crate::diag::Code;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
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

    /// Reads the manifests in files and directories, as `mcnet policy`
    /// does: directories are walked as [`manifest_files`] describes, each
    /// file is read through [`crate::input::read_file`] (regular files
    /// within the size and nesting limits), and each is named by its path.
    ///
    /// ```
    /// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap();
    /// use mcnet_core::policy::Manifests;
    /// let m = Manifests::from_paths(&["examples/policies/adr-003-production.yaml"])?;
    /// assert!(!m.policies.is_empty());
    /// # Ok::<(), mcnet_core::Error>(())
    /// ```
    pub fn from_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Manifests> {
        let files = manifest_files(paths)?;
        let texts = files
            .iter()
            .map(|f| Ok((f.display().to_string(), crate::input::read_file(f)?)))
            .collect::<Result<Vec<_>>>()?;
        Manifests::load(texts.iter().map(|(n, t)| (n.as_str(), t.as_str())))
    }
}

/// The most files [`manifest_files`] returns.
pub const MAX_MANIFEST_FILES: usize = 10_000;

/// The deepest directory nesting [`manifest_files`] walks.
pub const MAX_MANIFEST_DEPTH: usize = 16;

/// The manifest files named by `paths`: a file is itself; a directory (a
/// rendered cluster, a ConfigMap mount) is walked in name order for
/// `*.yaml`, `*.yml` and `*.json`, leaving out Helm values files
/// (`values.yaml`), hidden entries (a Secret or ConfigMap volume's `..data`
/// links) and symbolic links to directories, so a walk never loops. At
/// most [`MAX_MANIFEST_FILES`] files, [`MAX_MANIFEST_DEPTH`] levels deep.
pub fn manifest_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        let meta = std::fs::metadata(p).map_err(|source| Error::Io {
            path: p.display().to_string(),
            source,
        })?;
        if meta.is_dir() {
            walk(p, 0, &mut out)?;
        } else {
            out.push(p.to_path_buf());
        }
        if out.len() > MAX_MANIFEST_FILES {
            return Err(too_many(
                p,
                Code::InputTooLarge,
                "more than 10000 manifest files",
            ));
        }
    }
    Ok(out)
}

fn too_many(at: &Path, code: Code, why: &str) -> Error {
    Error::Invalid {
        what: "manifest paths".into(),
        problems: vec![Diagnostic::new(code, at.display().to_string(), why)],
    }
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if depth >= MAX_MANIFEST_DEPTH {
        return Err(too_many(
            dir,
            Code::InputTooDeep,
            "directories nested more than 16 deep",
        ));
    }
    let io = |source| Error::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map_err(io))
        .collect::<Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            walk(&path, depth + 1, out)?;
        } else if !kind.is_symlink() || !path.is_dir() {
            let manifest = path
                .extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json");
            let helm_values = path.file_stem().is_some_and(|s| s == "values");
            if manifest && !helm_values {
                out.push(path);
                if out.len() > MAX_MANIFEST_FILES {
                    return Err(too_many(
                        dir,
                        Code::InputTooLarge,
                        "more than 10000 manifest files",
                    ));
                }
            }
        }
    }
    Ok(())
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
