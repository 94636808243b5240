//! The engine's own model: an inventory of namespaces and pods, and every
//! policy (Kubernetes or Cilium) normalised into one rule shape, with the
//! upstream defaults already applied.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::selector::Selector;

/// The derived label carrying a pod's namespace (Cilium).
pub const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// The prefix of derived namespace labels on pods (Cilium).
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
/// The derived label carrying a pod's cluster (Cilium ClusterMesh).
pub const CLUSTER_LABEL: &str = "io.cilium.k8s.policy.cluster";
/// The derived label carrying a pod's service account (Cilium).
pub const SERVICE_ACCOUNT_LABEL: &str = "io.cilium.k8s.policy.serviceaccount";
/// The label the API server puts on every namespace.
pub const METADATA_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The cluster name pods have unless they carry [`CLUSTER_LABEL`].
pub const DEFAULT_CLUSTER: &str = "default";

/// L4 protocol of a port rule or a query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Proto {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// ICMP (IPv4); the "port" is the ICMP type, as Cilium keys it.
    Icmp,
    /// ICMPv6; the "port" is the ICMPv6 type.
    #[serde(rename = "ICMPv6")]
    Icmpv6,
    /// Every protocol (only in rules): what a rule without ports covers.
    Any,
}

impl Proto {
    /// Parses `TCP`, `UDP`, `SCTP`, `ICMP`, `ICMPv6` or `ANY` (case-insensitive).
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            "ICMP" => Some(Proto::Icmp),
            "ICMPV6" => Some(Proto::Icmpv6),
            "ANY" => Some(Proto::Any),
            _ => None,
        }
    }

    /// Whether a rule protocol covers a packet protocol.
    pub fn covers(self, packet: Proto) -> bool {
        self == Proto::Any || self == packet
    }

    /// Whether this is ICMP or ICMPv6, whose "port" is the message type.
    pub fn is_icmp(self) -> bool {
        matches!(self, Proto::Icmp | Proto::Icmpv6)
    }

    /// The protocols a port rule's `protocol: ANY` stands for: Cilium
    /// expands it to TCP, UDP and SCTP, never ICMP.
    pub const L4_ANY: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Sctp];
}

impl<'de> Deserialize<'de> for Proto {
    /// Accepts `TCP`, `UDP`, `SCTP`, `ICMP`, `ICMPv6` and `ANY` in any case.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Proto::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "protocol `{s}` is not TCP, UDP, SCTP, ICMP, ICMPv6 or ANY"
            ))
        })
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Sctp => "SCTP",
            Proto::Icmp => "ICMP",
            Proto::Icmpv6 => "ICMPv6",
            Proto::Any => "ANY",
        })
    }
}

/// A namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels, including `kubernetes.io/metadata.name`.
    pub labels: BTreeMap<String, String>,
}

/// A named container port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamedPort {
    /// Port name.
    pub name: String,
    /// Number.
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
}

/// A pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// IPs; the first is `status.podIP`.
    pub ips: Vec<IpAddr>,
    /// Named container ports.
    pub named_ports: Vec<NamedPort>,
    /// Service account.
    pub service_account: String,
    /// ClusterMesh cluster (from the `io.cilium.k8s.policy.cluster` label).
    pub cluster: String,
}

impl Pod {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Namespaces and pods.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, Namespace>,
    /// Pods, in input order (a later object with the same name replaces an earlier one).
    pub pods: Vec<Pod>,
}

impl Inventory {
    /// Finds a pod by `namespace/name`.
    pub fn pod(&self, key: &str) -> Option<usize> {
        let (ns, name) = key.split_once('/')?;
        self.pods
            .iter()
            .position(|p| p.namespace == ns && p.name == name)
    }

    /// The labels of a pod's namespace.
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(ns)
            .map(|n| n.labels.clone())
            .unwrap_or_else(|| BTreeMap::from([(METADATA_NAME_LABEL.to_string(), ns.to_string())]))
    }
}

/// Which API a policy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyKind {
    /// `networking.k8s.io/v1` NetworkPolicy.
    NetworkPolicy,
    /// `cilium.io/v2` CiliumNetworkPolicy.
    CiliumNetworkPolicy,
    /// `cilium.io/v2` CiliumClusterwideNetworkPolicy.
    CiliumClusterwideNetworkPolicy,
}

/// Names a policy (and, for Cilium's `specs`, which spec).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PolicyId {
    /// Kind.
    pub kind: PolicyKind,
    /// Namespace (none for clusterwide policies).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Index into `specs` when the policy uses `specs`.
    pub spec: Option<usize>,
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        f.write_str(&self.name)?;
        if let Some(i) = self.spec {
            write!(f, " specs[{i}]")?;
        }
        Ok(())
    }
}

/// Direction of traffic relative to the selected pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Into the pod.
    Ingress,
    /// Out of the pod.
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// What a policy selects.
#[derive(Clone, Debug, PartialEq)]
pub enum Subject {
    /// A NetworkPolicy's podSelector, over the pod labels of its namespace.
    Pods {
        /// Namespace.
        namespace: String,
        /// Selector over pod labels.
        selector: Selector,
    },
    /// A Cilium endpointSelector over the pod's Cilium labels (already
    /// scoped to the namespace for a CiliumNetworkPolicy).
    Endpoints(Selector),
    /// A clusterwide nodeSelector: nodes, which the inventory does not model.
    Nodes(Selector),
}

/// Cilium entities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Entity {
    /// Outside the cluster.
    World,
    /// Outside the cluster, IPv4.
    WorldIpv4,
    /// Outside the cluster, IPv6.
    WorldIpv6,
    /// The local cluster: its pods and every reserved in-cluster identity.
    Cluster,
    /// The local node.
    Host,
    /// Other nodes.
    RemoteNode,
    /// The API server.
    KubeApiserver,
    /// Endpoints whose identity is not resolved yet.
    Init,
    /// Health-check endpoints.
    Health,
    /// Pods not managed by Cilium.
    Unmanaged,
    /// Cilium's ingress.
    Ingress,
    /// Everything.
    All,
    /// Nothing.
    None,
}

impl Entity {
    /// Parses an entity name.
    pub fn parse(s: &str) -> Option<Entity> {
        Some(match s {
            "world" => Entity::World,
            "world-ipv4" => Entity::WorldIpv4,
            "world-ipv6" => Entity::WorldIpv6,
            "cluster" => Entity::Cluster,
            "host" => Entity::Host,
            "remote-node" => Entity::RemoteNode,
            "kube-apiserver" => Entity::KubeApiserver,
            "init" => Entity::Init,
            "health" => Entity::Health,
            "unmanaged" => Entity::Unmanaged,
            "ingress" => Entity::Ingress,
            "all" => Entity::All,
            "none" => Entity::None,
            _ => return None,
        })
    }
}

/// A prefix minus some sub-prefixes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CidrSet {
    /// The prefix.
    pub cidr: IpNet,
    /// Excluded sub-prefixes.
    pub except: Vec<IpNet>,
}

impl CidrSet {
    /// Whether an address is in the set.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.cidr.contains(ip) && !self.except.iter().any(|e| e.contains(ip))
    }

    /// Whether every address of `p` is in the set (`p` never straddles an
    /// except boundary when it is the longest match among the policy prefixes).
    pub fn contains_prefix(&self, p: &IpNet) -> bool {
        self.cidr.contains(p) && !self.except.iter().any(|e| e.contains(p))
    }
}

impl fmt::Display for CidrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cidr)?;
        if !self.except.is_empty() {
            let e: Vec<String> = self.except.iter().map(|e| e.to_string()).collect();
            write!(f, " except {}", e.join(","))?;
        }
        Ok(())
    }
}

/// A peer of a rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Peer {
    /// A NetworkPolicy peer of pods: podSelector and/or namespaceSelector (ANDed).
    K8sPods {
        /// Over pod labels; `None` means every pod.
        pods: Option<Selector>,
        /// Over namespace labels; `None` means the policy's namespace.
        namespaces: Option<Selector>,
        /// The policy's namespace.
        policy_namespace: String,
    },
    /// A NetworkPolicy ipBlock: matches any address in it, pods' included.
    IpBlock(CidrSet),
    /// A Cilium endpoint selector, already scoped; `fromRequires` apply to it.
    Endpoints(Selector),
    /// A Cilium entity.
    Entity(Entity),
    /// A Cilium CIDR rule: matches addresses outside the cluster only.
    Cidr(CidrSet),
    /// A peer the engine cannot resolve offline (`toFQDNs`, `toServices`,
    /// `toGroups`, `fromNodes`, a `cidrGroupRef`): it may stand for any
    /// identity of its scope, so what it decides is "not evaluable", never
    /// an allow.
    Unresolved {
        /// The field, as written in the policy (`toFQDNs`).
        field: String,
        /// Which identities it may stand for.
        scope: UnresolvedScope,
    },
}

/// The identities an unresolved peer may stand for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnresolvedScope {
    /// Addresses outside the cluster (`toFQDNs`, `toGroups`, a `cidrGroupRef`).
    World,
    /// Nodes: the host and remote nodes (`fromNodes`, `toNodes`).
    Nodes,
    /// Any identity (`toServices`: a service may have pods or addresses behind it).
    Any,
}

/// Which peers a rule allows or denies.
#[derive(Clone, Debug, PartialEq)]
pub enum Peers {
    /// Every peer, inside the cluster and out (no L3 part).
    All,
    /// These peers (none when empty).
    Some(Vec<Peer>),
}

/// Port of a port rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortSpec {
    /// `lo..=hi`.
    Range(u16, u16),
    /// A named container port, resolved on the destination pod.
    Named(String),
}

/// A header requirement of an HTTP rule.
#[derive(Clone, Debug)]
pub struct HeaderReq {
    /// Header name (compared case-insensitively).
    pub name: String,
    /// Required exact value; `None` means present.
    pub value: Option<String>,
    /// Cilium `mismatch` action: the request passes even on a mismatch.
    pub lenient: bool,
}

/// One HTTP rule; its fields are ANDed, and regexes match whole values.
#[derive(Clone, Debug)]
pub struct HttpMatch {
    /// Method regex.
    pub method: Option<Regex>,
    /// Path regex.
    pub path: Option<Regex>,
    /// Host regex.
    pub host: Option<Regex>,
    /// Header requirements.
    pub headers: Vec<HeaderReq>,
    /// The rule as written, for explanations.
    pub text: String,
}

impl PartialEq for HttpMatch {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// One Kafka rule (Cilium's `PortRuleKafka`): its fields are ANDed, and an
/// empty field matches every request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaMatch {
    /// The API keys allowed (from `role` or `apiKey`); empty: every key.
    pub api_keys: Vec<u16>,
    /// The API version; `None`: every version.
    pub api_version: Option<u16>,
    /// The client id; `None`: every client.
    pub client_id: Option<String>,
    /// The topic; `None`: every topic.
    pub topic: Option<String>,
    /// The rule as written, for explanations.
    pub text: String,
}

/// One DNS rule (Cilium's `PortRuleDNS`): a name or a pattern, matched
/// case-insensitively against the fully qualified query name.
#[derive(Clone, Debug)]
pub struct DnsMatch {
    /// The compiled `matchName` or `matchPattern`, anchored.
    pub regex: Regex,
    /// The rule as written, for explanations.
    pub text: String,
}

impl PartialEq for DnsMatch {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Which L7 protocol a port's rules speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L7Parser {
    /// HTTP.
    Http,
    /// Kafka.
    Kafka,
    /// DNS.
    Dns,
}

impl fmt::Display for L7Parser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            L7Parser::Http => "http",
            L7Parser::Kafka => "kafka",
            L7Parser::Dns => "dns",
        })
    }
}

/// The L7 rules of a port: any of them may match a request.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum L7Rules {
    /// HTTP rules.
    Http(Vec<HttpMatch>),
    /// Kafka rules.
    Kafka(Vec<KafkaMatch>),
    /// DNS rules.
    Dns(Vec<DnsMatch>),
}

impl L7Rules {
    /// The protocol these rules speak.
    pub fn parser(&self) -> L7Parser {
        match self {
            L7Rules::Http(_) => L7Parser::Http,
            L7Rules::Kafka(_) => L7Parser::Kafka,
            L7Rules::Dns(_) => L7Parser::Dns,
        }
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        match self {
            L7Rules::Http(v) => v.len(),
            L7Rules::Kafka(v) => v.len(),
            L7Rules::Dns(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each rule as written.
    pub fn texts(&self) -> Vec<String> {
        match self {
            L7Rules::Http(v) => v.iter().map(|m| m.text.clone()).collect(),
            L7Rules::Kafka(v) => v.iter().map(|m| m.text.clone()).collect(),
            L7Rules::Dns(v) => v.iter().map(|m| m.text.clone()).collect(),
        }
    }
}

/// A port selection of a rule, with its L7 rules.
#[derive(Clone, Debug, PartialEq)]
pub struct PortSel {
    /// Protocol.
    pub proto: Proto,
    /// Port or range (for ICMP, the message type).
    pub port: PortSpec,
    /// L7 rules (any may match); `None` means every request.
    pub l7: Option<Arc<L7Rules>>,
}

/// Which ports a rule covers.
#[derive(Clone, Debug, PartialEq)]
pub enum Ports {
    /// Every port and protocol.
    All,
    /// These.
    Some(Vec<PortSel>),
}

/// One rule of a direction.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Index in the section it came from (for explanations).
    pub index: usize,
    /// Peers.
    pub peers: Peers,
    /// Ports.
    pub ports: Ports,
    /// A field of the rule the engine cannot evaluate offline (such as
    /// `authentication`): the rule never allows, its verdicts are
    /// "not evaluable".
    pub not_evaluable: Option<String>,
}

/// One direction of a policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DirPolicy {
    /// Whether selecting a pod isolates it in this direction (default deny).
    pub isolates: bool,
    /// Allow rules.
    pub allow: Vec<Rule>,
    /// Deny rules (Cilium); a matching deny wins over every allow.
    pub deny: Vec<Rule>,
    /// `fromRequires` / `toRequires` selectors.
    pub requires: Vec<Selector>,
}

/// A normalised policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Which policy.
    pub id: PolicyId,
    /// What it selects.
    pub subject: Subject,
    /// Ingress.
    pub ingress: DirPolicy,
    /// Egress.
    pub egress: DirPolicy,
    /// Lint findings the policy's owner accepts, from the label
    /// [`LINT_ALLOW_LABEL`] (`world-open` for a public entry point).
    pub lint_allow: Vec<String>,
}

/// The label on a policy naming a lint finding its owner accepts, such as
/// `mcnet.io/lint-allow: world-open` on an ingress controller's allow from
/// anywhere.
pub const LINT_ALLOW_LABEL: &str = "mcnet.io/lint-allow";

impl Policy {
    /// One direction.
    pub fn dir(&self, d: Direction) -> &DirPolicy {
        match d {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// The section name of a rule for explanations (`ingress`, `egressDeny`, ...).
    pub fn section(&self, d: Direction, deny: bool) -> &'static str {
        let cilium = self.id.kind != PolicyKind::NetworkPolicy;
        match (d, deny, cilium) {
            (Direction::Ingress, false, _) => "ingress",
            (Direction::Egress, false, _) => "egress",
            (Direction::Ingress, true, _) => "ingressDeny",
            (Direction::Egress, true, _) => "egressDeny",
        }
    }
}
