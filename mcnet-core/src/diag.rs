//! Diagnostics: what validation and linting report.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// The input is invalid.
    Error,
    /// The input is valid but risky.
    Warning,
}

macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal,)*) => {
        /// A diagnostic's stable, machine-readable code, such as `cidr.overlap`.
        ///
        /// Serialised as its text. The code tables in `docs/` are checked
        /// against [`Code::ALL`] by a test, so a code documented is a code
        /// that exists, and the other way round.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Code {
            /// Every code, in the order of their text.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code's text, e.g. `cidr.overlap`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            // The variant's doc comment: "`code`: what it means."
            const fn doc(self) -> &'static str {
                match self {
                    $(Code::$variant => concat!($($doc),*),)*
                }
            }
        }
    };
}

codes! {
    /// `aws.dx-prefix-limit`: more than 100 prefixes towards a DX private VIF (suggests an aggregation).
    AwsDxPrefixLimit = "aws.dx-prefix-limit",
    /// `aws.peering-limit`: more than 50 peerings on one VPC.
    AwsPeeringLimit = "aws.peering-limit",
    /// `cidr.invalid`: not a canonical prefix.
    CidrInvalid = "cidr.invalid",
    /// `cidr.overlap`: network, pod and service prefixes that can route to each other overlap (same network, a peering, or an MCR between them).
    CidrOverlap = "cidr.overlap",
    /// `clustermesh.id-duplicate`: ids 1–255, unique.
    ClustermeshIdDuplicate = "clustermesh.id-duplicate",
    /// `clustermesh.id-range`: ids 1–255, unique.
    ClustermeshIdRange = "clustermesh.id-range",
    /// `clustermesh.name-duplicate`: names ≤ 32 of `[a-z0-9-]`, unique.
    ClustermeshNameDuplicate = "clustermesh.name-duplicate",
    /// `clustermesh.name-invalid`: names ≤ 32 of `[a-z0-9-]`, unique.
    ClustermeshNameInvalid = "clustermesh.name-invalid",
    /// `clustermesh.pod-cidr-overlap`: ClusterMesh pod CIDRs must not overlap.
    ClustermeshPodCidrOverlap = "clustermesh.pod-cidr-overlap",
    /// `cni.chaining`: chaining with another cloud's CNI.
    CniChaining = "cni.chaining",
    /// `cost.price-missing`: a cloud, region or link kind the price table has no price for.
    CostPriceMissing = "cost.price-missing",
    /// `cost.prices`: a price table that does not parse.
    CostPrices = "cost.prices",
    /// `cost.traffic`: a traffic matrix that does not parse or names unknown objects.
    CostTraffic = "cost.traffic",
    /// `crd.invalid`: a rendered custom resource that the upstream CRD schema rejects.
    CrdInvalid = "crd.invalid",
    /// `input.too-deep`: input nested deeper than the reader accepts.
    InputTooDeep = "input.too-deep",
    /// `input.too-large`: input larger than the reader accepts.
    InputTooLarge = "input.too-large",
    /// `intent.syntax`: an intent file that does not parse.
    IntentSyntax = "intent.syntax",
    /// `ipam.exhausted`: `auto` cannot be filled.
    IpamExhausted = "ipam.exhausted",
    /// `ipam.no-pool`: `auto` cannot be filled.
    IpamNoPool = "ipam.no-pool",
    /// `lb.health-check`: a health check out of range (a path without `/`, port 0, interval outside 1–300 s, timeout above the interval, thresholds outside 1–10).
    LbHealthCheck = "lb.health-check",
    /// `lint.allow-all`: a rule that allows every peer on every port.
    LintAllowAll = "lint.allow-all",
    /// `lint.no-default-deny`: a namespace with pods and no default-deny policy.
    LintNoDefaultDeny = "lint.no-default-deny",
    /// `lint.peer-selects-nothing`: a peer selector that matches no pod or namespace.
    LintPeerSelectsNothing = "lint.peer-selects-nothing",
    /// `lint.selects-nothing`: a policy whose subject selector matches no pod.
    LintSelectsNothing = "lint.selects-nothing",
    /// `lint.shadowed`: a rule that another rule of the same policy already covers.
    LintShadowed = "lint.shadowed",
    /// `lint.world-open`: a rule that lets the whole internet in.
    LintWorldOpen = "lint.world-open",
    /// `manifest.ignored`: a document of a kind the policy reader does not use.
    ManifestIgnored = "manifest.ignored",
    /// `manifest.kind`: a document without a usable apiVersion and kind.
    ManifestKind = "manifest.kind",
    /// `manifest.name`: an object whose name or namespace is not a valid name.
    ManifestName = "manifest.name",
    /// `manifest.schema`: a field of the wrong type.
    ManifestSchema = "manifest.schema",
    /// `manifest.shape`: a document that is not a mapping.
    ManifestShape = "manifest.shape",
    /// `manifest.syntax`: malformed YAML or JSON, with line and column.
    ManifestSyntax = "manifest.syntax",
    /// `manifest.unknown-field`: a field of a Pod or Namespace that the reader does not know (a warning).
    ManifestUnknownField = "manifest.unknown-field",
    /// `megaport.asn`: unusable ASN.
    MegaportAsn = "megaport.asn",
    /// `megaport.oversubscribed`: VXC rate limits exceed the MCR speed.
    MegaportOversubscribed = "megaport.oversubscribed",
    /// `megaport.rate-limit`: zero rate limit.
    MegaportRateLimit = "megaport.rate-limit",
    /// `megaport.speed`: MCR speed not in Megaport's set.
    MegaportSpeed = "megaport.speed",
    /// `megaport.vlan-duplicate`: VLAN 2–4093, unique per MCR.
    MegaportVlanDuplicate = "megaport.vlan-duplicate",
    /// `megaport.vlan-range`: VLAN 2–4093, unique per MCR.
    MegaportVlanRange = "megaport.vlan-range",
    /// `vpn.endpoints`: a VPN backup that does not join two networks of two different clouds, or has no bandwidth.
    VpnEndpoints = "vpn.endpoints",
    /// `monitoring.threshold`: an alert threshold out of range (a ratio outside 0–1, a non-positive latency or budget).
    MonitoringThreshold = "monitoring.threshold",
    /// `monitoring.unreachable`: a workload network the monitoring network cannot reach.
    MonitoringUnreachable = "monitoring.unreachable",
    /// `name.duplicate`: names: present, following [their rule](#names), unique among their kind.
    NameDuplicate = "name.duplicate",
    /// `name.empty`: names: present, following [their rule](#names), unique among their kind.
    NameEmpty = "name.empty",
    /// `name.invalid`: names: present, following [their rule](#names), unique among their kind.
    NameInvalid = "name.invalid",
    /// `parse.api-version`: wrong header.
    ParseApiVersion = "parse.api-version",
    /// `parse.kind`: wrong header.
    ParseKind = "parse.kind",
    /// `parse.schema`: a field of the wrong type or a missing required field.
    ParseSchema = "parse.schema",
    /// `parse.syntax`: malformed YAML/JSON, with line and column.
    ParseSyntax = "parse.syntax",
    /// `parse.unknown-field`: a field the schema does not have.
    ParseUnknownField = "parse.unknown-field",
    /// `peering.endpoints`: a peering must join two distinct networks.
    PeeringEndpoints = "peering.endpoints",
    /// `pod.ip`: a Pod IP that is not an IP address.
    PodIp = "pod.ip",
    /// `pod.port`: a Pod container port out of range or not TCP, UDP or SCTP.
    PodPort = "pod.port",
    /// `policy.cidr`: a CIDR or except block that is not a prefix.
    PolicyCidr = "policy.cidr",
    /// `policy.direction`: a rule field used in the wrong direction (toFQDNs on ingress, fromRequires on egress).
    PolicyDirection = "policy.direction",
    /// `policy.dns`: a DNS rule (matchName, matchPattern) that is not valid.
    PolicyDns = "policy.dns",
    /// `policy.empty`: a policy with no spec.
    PolicyEmpty = "policy.empty",
    /// `policy.end-port`: an endPort that is out of range, below its port or beside a named port.
    PolicyEndPort = "policy.end-port",
    /// `policy.entity`: an entity name Cilium does not define.
    PolicyEntity = "policy.entity",
    /// `policy.except-outside`: an except block outside its CIDR.
    PolicyExceptOutside = "policy.except-outside",
    /// `policy.icmp`: an ICMP type or family that is not valid.
    PolicyIcmp = "policy.icmp",
    /// `policy.icmp-ports`: icmps beside toPorts in one rule.
    PolicyIcmpPorts = "policy.icmp-ports",
    /// `policy.kafka`: a Kafka rule that is not valid.
    PolicyKafka = "policy.kafka",
    /// `policy.l7-deny`: L7 rules inside a deny rule.
    PolicyL7Deny = "policy.l7-deny",
    /// `policy.l7-dns`: DNS rules on a port that is not 53.
    PolicyL7Dns = "policy.l7-dns",
    /// `policy.l7-mixed`: two kinds of L7 rules on one port.
    PolicyL7Mixed = "policy.l7-mixed",
    /// `policy.l7-protocol`: an L7 protocol the engine does not know.
    PolicyL7Protocol = "policy.l7-protocol",
    /// `policy.not-enforced`: a field the engine or datapath cannot enforce; its traffic is denied.
    PolicyNotEnforced = "policy.not-enforced",
    /// `policy.peer`: a peer that is not valid (empty, or two kinds at once).
    PolicyPeer = "policy.peer",
    /// `policy.policy-types`: a policyTypes entry other than Ingress or Egress.
    PolicyPolicyTypes = "policy.policy-types",
    /// `policy.port`: a port out of range or a named port that is not a valid name.
    PolicyPort = "policy.port",
    /// `policy.protocol`: a protocol the engine does not know.
    PolicyProtocol = "policy.protocol",
    /// `policy.regex`: an HTTP path, method or header pattern that is not a valid regular expression.
    PolicyRegex = "policy.regex",
    /// `policy.selector`: a label selector that is not valid.
    PolicySelector = "policy.selector",
    /// `policy.subject`: a policy subject (podSelector, endpointSelector, nodeSelector) that is not valid.
    PolicySubject = "policy.subject",
    /// `policy.unknown-field`: a field the policy schema does not have.
    PolicyUnknownField = "policy.unknown-field",
    /// `private-endpoint.service`: a GCP private endpoint whose `service` is not a service attachment.
    PrivateEndpointService = "private-endpoint.service",
    /// `private-endpoint.subnets`: an Azure or GCP private endpoint not in exactly one subnet.
    PrivateEndpointSubnets = "private-endpoint.subnets",
    /// `private-endpoint.subresource`: a `subresource` on a private endpoint outside Azure.
    PrivateEndpointSubresource = "private-endpoint.subresource",
    /// `ref.dangling`: a reference to an undeclared object.
    RefDangling = "ref.dangling",
    /// `ref.provider-kind`: a cluster, VXC, peering or transit gateway on the wrong cloud.
    RefProviderKind = "ref.provider-kind",
    /// `ref.region`: a region the provider does not list.
    RefRegion = "ref.region",
    /// `render.builtin`: a built-in manifest that cannot be rendered.
    RenderBuiltin = "render.builtin",
    /// `render.io`: an output that could not be written.
    RenderIo = "render.io",
    /// `render.max-connected-clusters`: more ClusterMesh clusters than Cilium's maxConnectedClusters.
    RenderMaxConnectedClusters = "render.max-connected-clusters",
    /// `render.monitoring-dir`: the monitoring network's directory would be a cluster's.
    RenderMonitoringDir = "render.monitoring-dir",
    /// `render.output-not-ours`: an output directory holding files mcnet did not write.
    RenderOutputNotOurs = "render.output-not-ours",
    /// `render.path`: a name that cannot become a path in the output.
    RenderPath = "render.path",
    /// `render.remote-dependency`: a dependency that does not run in the cluster it serves.
    RenderRemoteDependency = "render.remote-dependency",
    /// `spof.mcr`: an MCR that is the only path between some networks.
    SpofMcr = "spof.mcr",
    /// `spof.vxc`: a network with a single VXC.
    SpofVxc = "spof.vxc",
    /// `subnet.outside-network`: a subnet outside its network.
    SubnetOutsideNetwork = "subnet.outside-network",
    /// `tgw.asn`: a transit gateway ASN outside AWS's private ranges.
    TgwAsn = "tgw.asn",
    /// `tgw.attachment`: a VPC attached twice to one transit gateway.
    TgwAttachment = "tgw.attachment",
    /// `tgw.route-conflict`: two VPCs joined by both a VPC peering and a transit gateway (their routes can point one way only).
    TgwRouteConflict = "tgw.route-conflict",
}

impl Code {
    /// What the code means, in one sentence (the table in
    /// `docs/diagnostics.md` is made of these).
    pub fn description(self) -> &'static str {
        let doc = self.doc().trim();
        let prefix_len = self.as_str().len() + "``: ".len();
        doc.get(prefix_len..).unwrap_or(doc)
    }

    /// The area a code belongs to: the text before its dot (`cidr` for
    /// `cidr.overlap`).
    pub fn area(self) -> &'static str {
        let text = self.as_str();
        text.split_once('.').map_or(text, |(area, _)| area)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not one of [`Code::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown diagnostic code {0:?}")]
pub struct UnknownCode(pub String);

impl std::str::FromStr for Code {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_string()))
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One problem found in a user's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// A stable, machine-readable code such as `cidr.overlap`.
    pub code: Code,
    /// The path of the offending field, e.g. `spec.clusters[1].podCidr`.
    pub path: String,
    /// A message that names the objects involved.
    pub message: String,
}

impl Diagnostic {
    /// Builds a diagnostic.
    pub fn new(code: Code, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "[{}] {}", self.code, self.message)
        } else {
            write!(f, "[{}] {}: {}", self.code, self.path, self.message)
        }
    }
}

/// Everything validation found: errors make the input invalid, warnings do not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Whether there are no errors.
    pub valid: bool,
    /// Problems that make the input invalid.
    pub errors: Vec<Diagnostic>,
    /// Risks that do not.
    pub warnings: Vec<Diagnostic>,
}

impl Report {
    /// Builds a report, setting `valid` from the errors.
    pub fn new(errors: Vec<Diagnostic>, warnings: Vec<Diagnostic>) -> Self {
        Report {
            valid: errors.is_empty(),
            errors,
            warnings,
        }
    }

    /// Whether an error with this code was reported.
    pub fn has_error(&self, code: Code) -> bool {
        self.errors.iter().any(|d| d.code == code)
    }

    /// Whether a warning with this code was reported.
    pub fn has_warning(&self, code: Code) -> bool {
        self.warnings.iter().any(|d| d.code == code)
    }
}
