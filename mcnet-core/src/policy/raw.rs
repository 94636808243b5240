//! Serde shapes of the Kubernetes objects the engine reads, as the API
//! server serves them. Optional fields stay `Option` so that an empty list
//! and a missing one can mean different things, as they do upstream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `metadata` of any object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace (namespaced objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A label selector (`metav1.LabelSelector`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSelector {
    /// Equality requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<RawRequirement>>,
}

/// One set-based requirement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// A port given as a number or a name (`intstr.IntOrString`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A name, or a number as a string.
    Str(String),
}

// ---- networking.k8s.io/v1 NetworkPolicy ----

/// `NetworkPolicy.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Selects the pods the policy applies to; `{}` selects every pod of the namespace.
    #[serde(default)]
    pub pod_selector: RawSelector,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<NetworkPolicyIngressRule>>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<NetworkPolicyEgressRule>>,
    /// `Ingress`, `Egress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_types: Option<Vec<String>>,
}

/// An ingress rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyIngressRule {
    /// Sources; missing or empty matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<NetworkPolicyPeer>>,
    /// Ports; missing or empty matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<NetworkPolicyPort>>,
}

/// An egress rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyEgressRule {
    /// Destinations; missing or empty matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<NetworkPolicyPeer>>,
    /// Ports; missing or empty matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<NetworkPolicyPort>>,
}

/// A peer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPeer {
    /// Pods (in the policy's namespace unless `namespaceSelector` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<RawSelector>,
    /// Namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<RawSelector>,
    /// An IP block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// `ipBlock`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    /// The block.
    pub cidr: String,
    /// Sub-blocks excluded from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<Vec<String>>,
}

/// A port of a rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPort {
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Number or name; missing means every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    /// End of a range starting at `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
}

// ---- cilium.io/v2 CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy ----

/// A Cilium rule (`spec`, or one element of `specs`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiliumRule {
    /// Selects the endpoints the rule applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_selector: Option<RawSelector>,
    /// Selects nodes (clusterwide host policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<RawSelector>,
    /// Ingress allow rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<CiliumPeerRule>>,
    /// Ingress deny rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_deny: Option<Vec<CiliumPeerRule>>,
    /// Egress allow rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<CiliumPeerRule>>,
    /// Egress deny rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_deny: Option<Vec<CiliumPeerRule>>,
    /// Per-direction default deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_default_deny: Option<DefaultDeny>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Rule labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<serde_json::Value>,
    /// Policy-verdict log settings (no effect on verdicts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<serde_json::Value>,
}

/// `enableDefaultDeny`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultDeny {
    /// Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<bool>,
    /// Egress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<bool>,
}

/// One ingress or egress (allow or deny) rule. The `from*` fields are read
/// for ingress and the `to*` fields for egress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiliumPeerRule {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "toEndpoints"
    )]
    #[allow(missing_docs)]
    pub from_endpoints: Option<Vec<RawSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "toRequires")]
    #[allow(missing_docs)]
    pub from_requires: Option<Vec<RawSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "toEntities")]
    #[allow(missing_docs)]
    pub from_entities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "toCIDR")]
    #[allow(missing_docs)]
    #[serde(rename = "fromCIDR")]
    pub from_cidr: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "toCIDRSet")]
    #[allow(missing_docs)]
    #[serde(rename = "fromCIDRSet")]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "toNodes")]
    #[allow(missing_docs)]
    pub from_nodes: Option<Vec<RawSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "toServices")]
    #[allow(missing_docs)]
    pub to_services: Option<serde_json::Value>,
    #[serde(default, rename = "toFQDNs", skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub to_fqdns: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "toGroups")]
    #[allow(missing_docs)]
    pub from_groups: Option<serde_json::Value>,
    /// L4 ports with optional L7 rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    /// ICMP rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
    /// Auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<serde_json::Value>,
}

/// `ICMPRule`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IcmpRule {
    /// The ICMP messages the rule allows (or denies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<IcmpField>>,
}

/// `ICMPField`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IcmpField {
    /// `IPv4` (default) or `IPv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The message type: a number (0–255) or a name (`EchoRequest`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<IntOrString>,
}

/// `CIDRRule`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CidrRule {
    /// The prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Excluded sub-prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<Vec<String>>,
    /// A CiliumCIDRGroup reference (not resolved offline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_group_ref: Option<String>,
    /// A selector of CiliumCIDRGroups (not resolved offline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_group_selector: Option<serde_json::Value>,
}

/// `PortRule`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRule {
    /// Ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortProtocol>>,
    /// L7 rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
    /// TLS termination (needs the proxy and a secret: not evaluable here).
    #[serde(
        default,
        rename = "terminatingTLS",
        skip_serializing_if = "Option::is_none"
    )]
    pub terminating_tls: Option<serde_json::Value>,
    /// TLS origination (not evaluable here).
    #[serde(
        default,
        rename = "originatingTLS",
        skip_serializing_if = "Option::is_none"
    )]
    pub originating_tls: Option<serde_json::Value>,
    /// Allowed TLS server names (SNI; not evaluable here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_names: Option<serde_json::Value>,
    /// An Envoy listener (not evaluable here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<serde_json::Value>,
}

/// `PortProtocol`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortProtocol {
    /// Number (as a string or a number) or a named port; `0` means every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    /// End of the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
    /// TCP, UDP, SCTP or ANY (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// `L7Rules`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L7Rules {
    /// HTTP rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpRule>>,
    /// Kafka rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<Vec<KafkaRule>>,
    /// DNS rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<DnsRule>>,
    /// The name of a generic L7 parser (not evaluable here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7proto: Option<String>,
    /// Generic key-value L7 rules (not evaluable here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7: Option<serde_json::Value>,
}

/// `PortRuleKafka`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaRule {
    /// `produce` or `consume` (exclusive with `apiKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// One API key by name (`produce`, `fetch`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// One API version (a number as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The client id.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// `PortRuleDNS`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsRule {
    /// An exact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    /// A pattern where `*` stands for any run of name characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

/// `PortRuleHTTP`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRule {
    /// Path regex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Method regex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Host regex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `"Name"` (present) or `"Name: value"` (equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    /// Structured header matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_matches: Option<Vec<HeaderMatch>>,
}

/// `HeaderMatch`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Header name.
    pub name: String,
    /// Exact value; missing means "present".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// LOG, ADD, DELETE or REPLACE: on mismatch the request still passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
    /// A secret reference (not resolved offline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<serde_json::Value>,
}

// ---- v1 Pod and Namespace ----

/// `Pod.spec` (the parts the engine reads).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Containers.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Host network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
}

/// A container (its ports).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
}

/// A container port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    /// Name (for named ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port number.
    pub container_port: i64,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// `Pod.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// Primary IP.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "podIP")]
    pub pod_ip: Option<String>,
    /// All IPs.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIp>>,
}

/// One entry of `status.podIPs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodIp {
    /// The address.
    pub ip: String,
}
