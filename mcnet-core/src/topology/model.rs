//! The typed topology: `apiVersion: mcnet.io/v1alpha1`, `kind: Topology`.
//!
//! Field names are camelCase in YAML and JSON. Every list of named objects
//! is referenced by name elsewhere in the document; [`validate`] checks those
//! references.
//!
//! [`validate`]: crate::topology::validate

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::cidr::Cidr;

/// The API version this crate reads and writes.
pub const API_VERSION: &str = "mcnet.io/v1alpha1";
/// The kind of a topology document.
pub const KIND: &str = "Topology";

/// A multi-cloud network topology.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    /// Must be `mcnet.io/v1alpha1`.
    pub api_version: String,
    /// Must be `Topology`.
    pub kind: String,
    /// Name and labels of the topology. The name goes into every ownership tag.
    pub metadata: Metadata,
    /// The topology itself.
    pub spec: TopologySpec,
}

/// Object metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The topology's name, `[a-z0-9-]`, at most 63 characters.
    pub name: String,
    /// Free-form labels, copied onto provider resources as tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Everything a topology declares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TopologySpec {
    /// Cloud providers (and on-premises sites) with the regions in use.
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// VPCs, VNets and on-premises networks.
    #[serde(default)]
    pub networks: Vec<Network>,
    /// Kubernetes clusters.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Megaport Cloud Routers and their VXCs.
    #[serde(default)]
    pub interconnect: Interconnect,
    /// Intra-cloud peerings between two networks.
    #[serde(default)]
    pub peerings: Vec<Peering>,
    /// AWS transit gateways: regional hubs that route between the VPCs
    /// attached to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transit_gateways: Vec<TransitGateway>,
    /// Internet site-to-site VPNs between networks of different clouds:
    /// the backup for the interconnect (ADR-003's mitigation for an MCR
    /// failure), BGP over IPsec at a worse preference than the VXC path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpn_backups: Vec<VpnBackup>,
    /// Private endpoints (PrivateLink, Private Endpoint, Private Service Connect).
    #[serde(default)]
    pub private_endpoints: Vec<PrivateEndpoint>,
    /// The monitoring network and what runs in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,
    /// Application namespaces and their workloads.
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// Global load balancing.
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    /// Pools from which `auto` CIDRs are allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamPools>,
    /// Overrides of published provider limits (raised quotas).
    #[serde(default, skip_serializing_if = "Limits::is_default")]
    pub limits: Limits,
}

/// A cloud provider or on-premises site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    /// Name other objects use to refer to this provider.
    pub name: String,
    /// Which cloud.
    pub kind: ProviderKind,
    /// Regions in use, in the provider's own spelling (`us-east-1`, `eastus`, `us-central1`).
    #[serde(default)]
    pub regions: Vec<String>,
}

/// The kind of a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProviderKind {
    /// Amazon Web Services.
    Aws,
    /// Microsoft Azure.
    Azure,
    /// Google Cloud.
    Gcp,
    /// An on-premises data centre.
    OnPrem,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Aws => "aws",
            ProviderKind::Azure => "azure",
            ProviderKind::Gcp => "gcp",
            ProviderKind::OnPrem => "on-prem",
        })
    }
}

/// A VPC, VNet or on-premises network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Unique name.
    pub name: String,
    /// The provider (by name) that hosts it.
    pub provider: String,
    /// The region, one of the provider's `regions`.
    pub region: String,
    /// What the network is for.
    #[serde(default)]
    pub role: NetworkRole,
    /// Address space: one or more prefixes (a VPC's primary and secondary CIDRs).
    pub cidrs: Vec<Cidr>,
    /// Subnets, each inside one of `cidrs`.
    #[serde(default)]
    pub subnets: Vec<Subnet>,
}

/// The role of a network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum NetworkRole {
    /// Runs application clusters.
    #[default]
    Workload,
    /// Runs the monitoring stack.
    Monitoring,
    /// Shared services (DNS, bastions, CI).
    Shared,
}

/// A subnet of a network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    /// Unique within its network.
    pub name: String,
    /// The prefix, or `auto` to allocate from the network's CIDRs.
    pub cidr: Cidr,
    /// Prefix length for an `auto` subnet (default: the network's length + 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<u8>,
    /// Availability zone, if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// A Kubernetes cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Unique name.
    pub name: String,
    /// Managed Kubernetes flavour.
    pub flavour: ClusterFlavour,
    /// Home network (by name): where the nodes live.
    pub network: String,
    /// Pod CIDR, or `auto`.
    pub pod_cidr: Cidr,
    /// Service CIDR, or `auto`.
    pub service_cidr: Cidr,
    /// Prefix length for an `auto` pod CIDR (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_prefix_length: Option<u8>,
    /// Prefix length for an `auto` service CIDR (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_prefix_length: Option<u8>,
    /// Cilium ClusterMesh membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_mesh: Option<ClusterMesh>,
    /// How Cilium is deployed.
    #[serde(default)]
    pub cni: Cni,
}

/// A managed Kubernetes flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ClusterFlavour {
    /// Amazon EKS.
    Eks,
    /// Azure AKS.
    Aks,
    /// Google GKE.
    Gke,
    /// Self-managed Kubernetes (kubeadm and the like).
    SelfManaged,
}

impl ClusterFlavour {
    /// The provider kind this flavour runs on, if it is a managed service.
    pub fn provider_kind(self) -> Option<ProviderKind> {
        match self {
            ClusterFlavour::Eks => Some(ProviderKind::Aws),
            ClusterFlavour::Aks => Some(ProviderKind::Azure),
            ClusterFlavour::Gke => Some(ProviderKind::Gcp),
            ClusterFlavour::SelfManaged => None,
        }
    }
}

/// Cilium ClusterMesh identity of a cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClusterMesh {
    /// `cluster.id`: 1–255, unique across the mesh.
    pub id: u32,
    /// `cluster.name`: at most 32 characters of `[a-z0-9-]`, unique across the mesh.
    pub name: String,
}

/// CNI configuration of a cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Cni {
    /// Routing mode.
    #[serde(default)]
    pub mode: CniMode,
    /// CNI chaining with the cloud's own CNI.
    #[serde(default)]
    pub chaining: CniChaining,
}

/// Cilium's routing mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum CniMode {
    /// Native routing: pod IPs are routed by the underlying network.
    #[default]
    Native,
    /// VXLAN/Geneve overlay: pod IPs stay inside the cluster.
    Overlay,
}

/// CNI chaining.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum CniChaining {
    /// Cilium alone.
    #[default]
    None,
    /// Cilium chained on the AWS VPC CNI (EKS only).
    AwsVpcCni,
    /// Cilium chained on Azure CNI (AKS only).
    AzureCni,
}

/// Megaport Cloud Routers and Virtual Cross Connects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Interconnect {
    /// Megaport Cloud Routers.
    #[serde(default)]
    pub routers: Vec<CloudRouter>,
    /// VXCs from a router to a cloud on-ramp.
    #[serde(default)]
    pub vxcs: Vec<Vxc>,
}

/// A Megaport Cloud Router.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CloudRouter {
    /// Unique name.
    pub name: String,
    /// Data-centre name, as Megaport lists it.
    pub location: String,
    /// Megaport location id, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<u32>,
    /// Port speed in Mbps: 1000, 2500, 5000, 10000, 25000, 50000 or 100000.
    pub speed_mbps: u32,
    /// The MCR's BGP ASN (Megaport's default is 133937).
    pub asn: u32,
    /// Diversity zone, for a redundant pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diversity_zone: Option<DiversityZone>,
    /// Contract term in months (1, 12, 24 or 36).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_months: Option<u32>,
}

/// Megaport diversity zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum DiversityZone {
    /// Red zone.
    Red,
    /// Blue zone.
    Blue,
}

/// A Virtual Cross Connect from an MCR to a cloud.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Vxc {
    /// Unique name.
    pub name: String,
    /// The MCR (by name) at the A end.
    pub router: String,
    /// The cloud at the B end.
    pub target: VxcTarget,
    /// Rate limit in Mbps.
    pub rate_limit_mbps: u32,
    /// The A-end VLAN, 2–4093 (omit to let Megaport choose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// BGP sessions and route filters.
    #[serde(default)]
    pub bgp: Bgp,
}

/// The B end of a VXC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct VxcTarget {
    /// Which on-ramp.
    pub kind: VxcTargetKind,
    /// Networks (by name) reachable through this VXC: the VPCs behind a Direct
    /// Connect gateway, the VNets on an ExpressRoute circuit, the VPCs behind
    /// a Cloud Router.
    pub networks: Vec<String>,
    /// For AWS Direct Connect: a hosted connection, on which the account
    /// creates its private VIF (the default), or a hosted VIF, which
    /// Megaport creates and the account accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_connection: Option<AwsConnection>,
}

/// How a VXC reaches AWS Direct Connect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AwsConnection {
    /// A hosted connection in the account; mcnet confirms it and creates
    /// the private VIF on it.
    #[default]
    HostedConnection,
    /// A private VIF Megaport creates in the account; mcnet accepts it onto
    /// the Direct Connect gateway.
    HostedVif,
}

/// Cloud on-ramps a VXC can reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum VxcTargetKind {
    /// AWS Direct Connect (hosted connection, private VIF).
    AwsDirectConnect,
    /// Azure ExpressRoute (private peering).
    AzureExpressroute,
    /// GCP Partner Interconnect.
    GcpPartnerInterconnect,
}

impl VxcTargetKind {
    /// The provider on the B end.
    pub fn provider_kind(self) -> ProviderKind {
        match self {
            VxcTargetKind::AwsDirectConnect => ProviderKind::Aws,
            VxcTargetKind::AzureExpressroute => ProviderKind::Azure,
            VxcTargetKind::GcpPartnerInterconnect => ProviderKind::Gcp,
        }
    }

    /// A short human label.
    pub fn label(self) -> &'static str {
        match self {
            VxcTargetKind::AwsDirectConnect => "AWS Direct Connect",
            VxcTargetKind::AzureExpressroute => "Azure ExpressRoute",
            VxcTargetKind::GcpPartnerInterconnect => "GCP Partner Interconnect",
        }
    }
}

/// BGP configuration of a VXC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Bgp {
    /// BGP sessions.
    #[serde(default)]
    pub peers: Vec<BgpPeer>,
    /// Prefix filters.
    #[serde(default)]
    pub prefix_filters: PrefixFilters,
}

/// One BGP session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct BgpPeer {
    /// The MCR's address with prefix length (`169.254.10.1/30`).
    pub local_address: Cidr,
    /// The peer's address (no prefix length).
    pub peer_address: String,
    /// The peer's ASN.
    pub peer_asn: u32,
}

/// Prefix filters of a VXC's BGP sessions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PrefixFilters {
    /// Prefixes accepted from the cloud (empty: accept all).
    #[serde(default)]
    pub import: Vec<Cidr>,
    /// Prefixes advertised to the cloud (empty: everything the MCR learns from its other VXCs).
    #[serde(default)]
    pub export: Vec<Cidr>,
}

/// A peering between two networks of the same provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Peering {
    /// Unique name.
    pub name: String,
    /// Kind of peering.
    pub kind: PeeringKind,
    /// The two networks (by name).
    pub networks: Vec<String>,
}

/// An internet site-to-site VPN between two networks of different clouds.
/// Each side gets its cloud's VPN objects: on AWS a virtual private
/// gateway, a customer gateway for the other side and a VPN connection (two
/// IPsec tunnels); on Azure a VPN virtual network gateway, a local network
/// gateway and a connection; on GCP an HA VPN gateway, an external VPN
/// gateway and tunnels on a Cloud Router. Routes are exchanged with BGP,
/// and the interconnect stays preferred while it is up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct VpnBackup {
    /// Unique name.
    pub name: String,
    /// The two networks (by name), on different clouds.
    pub networks: Vec<String>,
    /// Capacity of the tunnels, in Mbps (AWS: 1,250 per tunnel).
    #[serde(default = "default_vpn_mbps")]
    pub bandwidth_mbps: u32,
}

fn default_vpn_mbps() -> u32 {
    1250
}

/// An AWS transit gateway. Unlike a peering it is transitive: every VPC
/// attached to it reaches every other. mcnet attaches each VPC (through one
/// subnet per availability zone), adds a static route per VPC CIDR in the
/// gateway's route table, and routes the other VPCs' CIDRs to the gateway
/// in each VPC's route table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TransitGateway {
    /// Unique name.
    pub name: String,
    /// The AWS provider it belongs to (by name).
    pub provider: String,
    /// Its region; every attached VPC must be in it.
    pub region: String,
    /// The Amazon-side ASN (a private ASN; AWS's default is 64512).
    #[serde(default = "default_tgw_asn")]
    pub asn: u32,
    /// The VPCs attached (by network name).
    pub networks: Vec<String>,
}

fn default_tgw_asn() -> u32 {
    64512
}

/// Peering kinds. All are non-transitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PeeringKind {
    /// AWS VPC peering (also cross-region).
    VpcPeering,
    /// Azure VNet peering (also global).
    VnetPeering,
    /// GCP VPC Network Peering.
    NetworkPeering,
}

impl PeeringKind {
    /// The provider this peering kind belongs to.
    pub fn provider_kind(self) -> ProviderKind {
        match self {
            PeeringKind::VpcPeering => ProviderKind::Aws,
            PeeringKind::VnetPeering => ProviderKind::Azure,
            PeeringKind::NetworkPeering => ProviderKind::Gcp,
        }
    }
}

/// A private endpoint to a cloud service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PrivateEndpoint {
    /// Unique name.
    pub name: String,
    /// The network (by name) the endpoint lives in.
    pub network: String,
    /// The service, in the provider's spelling: an AWS service name
    /// (`com.amazonaws.us-east-1.s3`), the ARM id of an Azure Private Link
    /// resource, or a GCP service attachment
    /// (`projects/P/regions/R/serviceAttachments/NAME`).
    pub service: String,
    /// The target sub-resource of an Azure Private Link resource (ARM's
    /// `groupIds`: `blob`, `sqlServer`, ...); Azure only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// Subnets (by name, in `network`) for the endpoint's interfaces (one
    /// on Azure and GCP).
    #[serde(default)]
    pub subnets: Vec<String>,
}

/// The region of a GCP service attachment,
/// `projects/P/regions/R/serviceAttachments/NAME` (optionally as a full
/// Compute URL); `None` when `service` is not one.
pub fn service_attachment_region(service: &str) -> Option<&str> {
    let path = service
        .rsplit_once("/compute/v1/")
        .map_or(service, |(_, p)| p);
    let parts: Vec<&str> = path.split('/').collect();
    match parts[..] {
        ["projects", p, "regions", r, "serviceAttachments", n]
            if !p.is_empty() && !r.is_empty() && !n.is_empty() =>
        {
            Some(r)
        }
        _ => None,
    }
}

/// The monitoring network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// The network (by name) that hosts monitoring.
    pub network: String,
    /// What runs there.
    #[serde(default)]
    pub components: Vec<MonitoringComponent>,
    /// Thresholds of the alerts on the ADR's success metrics; the ADR's
    /// values when absent.
    #[serde(default)]
    pub alerts: AlertThresholds,
}

/// The thresholds the rendered alert rules fire on (ADR-003, "Success
/// Metrics").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct AlertThresholds {
    /// Cross-cluster request latency, p95, in milliseconds (ADR: < 50 ms).
    pub latency_p95_ms: f64,
    /// Packets lost, as a ratio of packets forwarded (ADR: < 0.01%).
    pub packet_loss_ratio: f64,
    /// Service-to-service requests that succeed, as a ratio (ADR: > 99.9%).
    pub success_ratio: f64,
    /// Warn when a workload certificate expires within this many days.
    pub certificate_expiry_days: u32,
    /// Monthly budget in US dollars; no cost alert without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_budget_usd: Option<f64>,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            latency_p95_ms: 50.0,
            packet_loss_ratio: 0.0001,
            success_ratio: 0.999,
            certificate_expiry_days: 7,
            monthly_budget_usd: None,
        }
    }
}

/// A monitoring component.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MonitoringComponent {
    /// Unique name.
    pub name: String,
    /// What it is.
    pub kind: MonitoringKind,
    /// Listening port, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// Monitoring component kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum MonitoringKind {
    /// VictoriaMetrics cluster (metrics storage).
    VictoriaMetrics,
    /// Grafana dashboards.
    Grafana,
    /// Vector log collector.
    Vector,
    /// Prometheus.
    Prometheus,
}

/// An application namespace deployed to one or more clusters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    /// Kubernetes namespace name.
    pub name: String,
    /// Clusters (by name) the namespace exists in.
    pub clusters: Vec<String>,
    /// Namespace labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Workloads in the namespace.
    #[serde(default)]
    pub workloads: Vec<Workload>,
}

/// A workload (Deployment, StatefulSet, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Unique within its namespace.
    pub name: String,
    /// Pod labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Ports it serves.
    #[serde(default)]
    pub ports: Vec<WorkloadPort>,
    /// Name of the Kubernetes Service in front of it (default: the workload's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Services it calls: the zero-trust allow list.
    #[serde(default)]
    pub depends_on: Vec<Dependency>,
}

impl Workload {
    /// The name of the Service in front of the workload.
    pub fn service_name(&self) -> &str {
        self.service.as_deref().unwrap_or(&self.name)
    }
}

/// A port a workload serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkloadPort {
    /// Port name (also the Kubernetes named port).
    pub name: String,
    /// Port number.
    pub port: u16,
    /// Protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

/// L4 protocol.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// A call from one workload to another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    /// Target workload, `name` (same namespace) or `namespace/name`.
    pub workload: String,
    /// Target port.
    pub port: u16,
    /// Protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Allowed HTTP requests (L7); empty means any traffic on the port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
}

/// An allowed HTTP request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Method regex, e.g. `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path regex, e.g. `/api/v1/.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Global load balancing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancing {
    /// Hostnames served by the global DNS tier.
    #[serde(default)]
    pub hostnames: Vec<GlobalHostname>,
    /// The health check of every cluster's ingress: the GSLB's, and the
    /// cloud load balancers' in front of the ingress controllers.
    #[serde(default)]
    pub health_check: HealthCheck,
}

/// How an ingress is checked, by the GSLB and by the cloud's load balancer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct HealthCheck {
    /// HTTP path (2xx or 3xx is healthy): ingress-nginx answers `/healthz`
    /// on its HTTP port.
    pub path: String,
    /// Check with a TCP connect instead of HTTP.
    pub tcp: bool,
    /// The port checked.
    pub port: u16,
    /// Seconds between checks.
    pub interval_seconds: u32,
    /// Seconds a check may take.
    pub timeout_seconds: u32,
    /// Consecutive good checks to turn healthy.
    pub healthy_threshold: u32,
    /// Consecutive failed checks to turn unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    /// `GET /healthz` on port 80 every 5 s (the shortest interval AWS's
    /// and Azure's load balancers take), within 2 s, two checks either way.
    fn default() -> Self {
        HealthCheck {
            path: "/healthz".into(),
            tcp: false,
            port: 80,
            interval_seconds: 5,
            timeout_seconds: 2,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }
}

/// A globally load-balanced hostname.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct GlobalHostname {
    /// Fully qualified name, e.g. `api.multicloud-k8s.com`.
    pub name: String,
    /// Routing policy.
    #[serde(default)]
    pub policy: RoutingPolicy,
    /// The Kubernetes Service behind it (`namespace/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Where traffic goes.
    pub targets: Vec<LbTarget>,
}

/// GSLB routing policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RoutingPolicy {
    /// Lowest `priority` healthy target wins.
    #[default]
    Failover,
    /// Split by `weight`.
    Weighted,
    /// Lowest measured latency.
    Latency,
    /// By client subnet.
    Geo,
}

/// A GSLB target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LbTarget {
    /// Cluster (by name).
    pub cluster: String,
    /// Weight for `weighted`.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Priority for `failover` (lower first).
    #[serde(default)]
    pub priority: u32,
}

fn default_weight() -> u32 {
    1
}

/// Pools for `auto` allocation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct IpamPools {
    /// Pool for `auto` pod CIDRs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<Cidr>,
    /// Pool for `auto` service CIDRs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Cidr>,
}

/// Provider limits; defaults are the published ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Active VPC peerings per AWS VPC (published default quota 50, adjustable to 125).
    #[serde(default = "default_peerings")]
    pub aws_peerings_per_vpc: u32,
    /// Prefixes advertised to AWS over a Direct Connect private VIF (hard limit 100).
    #[serde(default = "default_dx_prefixes")]
    pub aws_dx_private_vif_prefixes: u32,
}

fn default_peerings() -> u32 {
    50
}
fn default_dx_prefixes() -> u32 {
    100
}

impl Limits {
    fn is_default(&self) -> bool {
        *self == Limits::default()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            aws_peerings_per_vpc: default_peerings(),
            aws_dx_private_vif_prefixes: default_dx_prefixes(),
        }
    }
}

impl Topology {
    /// Looks up a network by name.
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.spec.networks.iter().find(|n| n.name == name)
    }

    /// Looks up a cluster by name.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.spec.clusters.iter().find(|c| c.name == name)
    }
}
