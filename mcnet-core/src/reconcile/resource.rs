//! The provider-neutral resource model: what the planner compares and what
//! providers create. Vendor types stay inside the provider modules; here a
//! VPC, a VNet and a GCP network are all a [`Spec::Network`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::id::{self, CloudId, ResourceId};
use crate::topology::ProviderKind;

/// Tag (label) naming the topology that owns a resource.
pub const TAG_TOPOLOGY: &str = "mcnet.io/topology";
/// Tag carrying a resource's logical id within its topology.
pub const TAG_ID: &str = "mcnet.io/id";
/// Tag marking a resource as managed by mcnet.
pub const TAG_MANAGED_BY: &str = "mcnet.io/managed-by";

/// Where a resource lives: one cloud, or the Megaport fabric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Amazon Web Services.
    Aws,
    /// Microsoft Azure.
    Azure,
    /// Google Cloud.
    Gcp,
    /// Megaport (MCR and VXCs).
    Megaport,
}

impl Scope {
    /// Every scope, in apply order of preference.
    pub const ALL: [Scope; 4] = [Scope::Aws, Scope::Azure, Scope::Gcp, Scope::Megaport];

    /// The scope of a cloud provider kind (`None` for on-premises).
    pub fn of(kind: ProviderKind) -> Option<Scope> {
        match kind {
            ProviderKind::Aws => Some(Scope::Aws),
            ProviderKind::Azure => Some(Scope::Azure),
            ProviderKind::Gcp => Some(Scope::Gcp),
            ProviderKind::OnPrem => None,
        }
    }

    /// The lower-case name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Aws => "aws",
            Scope::Azure => "azure",
            Scope::Gcp => "gcp",
            Scope::Megaport => "megaport",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of resource mcnet manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ResourceKind {
    /// A VPC or VNet.
    Network,
    /// A subnet.
    Subnet,
    /// A route table with its subnet associations.
    RouteTable,
    /// One route in a route table.
    Route,
    /// A peering between two networks of one cloud.
    Peering,
    /// An AWS transit gateway.
    TransitGateway,
    /// A network's attachment to a transit gateway.
    TransitGatewayAttachment,
    /// A static route in a transit gateway's route table.
    TransitGatewayRoute,
    /// A VPN or interconnect gateway in a network: an AWS virtual private
    /// gateway, an Azure ExpressRoute virtual network gateway.
    VpnGateway,
    /// The cloud's end of an interconnect: a Direct Connect gateway, an
    /// ExpressRoute circuit, a GCP Cloud Router.
    InterconnectGateway,
    /// The circuit onto that end: an AWS private VIF, an ExpressRoute
    /// connection, a GCP PARTNER interconnect attachment.
    InterconnectAttachment,
    /// A private endpoint to a cloud service.
    PrivateEndpoint,
    /// A Megaport Cloud Router.
    Router,
    /// A Megaport virtual cross connect.
    Vxc,
    /// The other end of a site-to-site VPN, as this cloud records it: an
    /// AWS customer gateway, an Azure local network gateway, a GCP external
    /// VPN gateway.
    VpnPeer,
    /// A site-to-site VPN from a network's VPN gateway to a peer: an AWS
    /// VPN connection, an Azure IPsec connection, GCP HA VPN tunnels.
    VpnConnection,
}

impl ResourceKind {
    /// The kebab-case name used in logical ids and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Network => "network",
            ResourceKind::Subnet => "subnet",
            ResourceKind::RouteTable => "route-table",
            ResourceKind::Route => "route",
            ResourceKind::Peering => "peering",
            ResourceKind::TransitGateway => "transit-gateway",
            ResourceKind::TransitGatewayAttachment => "transit-gateway-attachment",
            ResourceKind::TransitGatewayRoute => "transit-gateway-route",
            ResourceKind::VpnGateway => "vpn-gateway",
            ResourceKind::InterconnectGateway => "interconnect-gateway",
            ResourceKind::InterconnectAttachment => "interconnect-attachment",
            ResourceKind::PrivateEndpoint => "private-endpoint",
            ResourceKind::Router => "router",
            ResourceKind::Vxc => "vxc",
            ResourceKind::VpnPeer => "vpn-peer",
            ResourceKind::VpnConnection => "vpn-connection",
        }
    }

    /// Spec fields a provider can change in place; a change to any other
    /// field replaces the resource.
    pub fn mutable_fields(self) -> &'static [&'static str] {
        match self {
            ResourceKind::Network => &["cidrs"],
            ResourceKind::RouteTable => &["subnets", "propagatingGateways"],
            ResourceKind::Route => &["target"],
            ResourceKind::TransitGatewayAttachment => &["subnets"],
            ResourceKind::TransitGatewayRoute => &["attachment"],
            ResourceKind::InterconnectGateway => &["associations"],
            ResourceKind::PrivateEndpoint => &["subnets"],
            ResourceKind::Router => &["name"],
            ResourceKind::Vxc => &["name", "rateLimitMbps", "vlan", "bgp"],
            _ => &[],
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The desired or observed shape of a resource. Fields that name another
/// resource hold its logical id (`network/aws-vpc`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Spec {
    /// A VPC, VNet or GCP network.
    Network {
        /// Region (GCP networks are global; this is their subnets' region).
        region: String,
        /// Address space.
        cidrs: Vec<String>,
    },
    /// A subnet.
    Subnet {
        /// Its network.
        network: String,
        /// Its prefix.
        cidr: String,
        /// Availability zone, where the cloud has them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
    },
    /// A route table and the subnets it serves.
    RouteTable {
        /// Its network.
        network: String,
        /// Associated subnets.
        subnets: Vec<String>,
        /// Gateways whose BGP routes propagate into the table.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        propagating_gateways: Vec<String>,
    },
    /// A route.
    Route {
        /// Its route table.
        route_table: String,
        /// Destination prefix.
        destination: String,
        /// The next hop: a peering, a gateway or a transit gateway.
        target: String,
    },
    /// A peering. Clouds that peer in both directions (Azure) create both
    /// halves for one spec.
    Peering {
        /// The requesting network.
        requester: String,
        /// The accepting network.
        accepter: String,
        /// The accepter's region, when it differs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_region: Option<String>,
    },
    /// A transit gateway.
    TransitGateway {
        /// Region.
        region: String,
        /// Amazon-side ASN.
        asn: u32,
    },
    /// A network's transit gateway attachment.
    TransitGatewayAttachment {
        /// The transit gateway.
        transit_gateway: String,
        /// The network.
        network: String,
        /// One subnet per zone for the attachment's interfaces.
        subnets: Vec<String>,
    },
    /// A static transit gateway route.
    TransitGatewayRoute {
        /// The transit gateway.
        transit_gateway: String,
        /// Destination prefix.
        destination: String,
        /// The attachment traffic goes to.
        attachment: String,
    },
    /// A VPN or interconnect gateway attached to a network.
    VpnGateway {
        /// The network.
        network: String,
        /// The gateway's ASN, where it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asn: Option<u32>,
        /// A site-to-site (IPsec) gateway where the cloud makes it a
        /// separate one (an Azure VPN gateway, a GCP HA VPN gateway); an AWS
        /// virtual private gateway serves both.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ipsec: bool,
    },
    /// The cloud's end of an interconnect.
    InterconnectGateway {
        /// Region (or `global` for a Direct Connect gateway).
        region: String,
        /// The cloud side's ASN.
        asn: u32,
        /// Bandwidth, for circuits that have one (ExpressRoute).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bandwidth_mbps: Option<u32>,
        /// The network (GCP Cloud Router), if bound to one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
        /// Gateways associated with it (a DX gateway's virtual gateways).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        associations: Vec<String>,
    },
    /// A circuit onto the cloud's end of an interconnect.
    InterconnectAttachment {
        /// The interconnect gateway.
        gateway: String,
        /// The VXC carrying it, when the cloud side waits for one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vxc: Option<String>,
        /// The network gateway it connects (an ExpressRoute connection's
        /// virtual network gateway).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network_gateway: Option<String>,
        /// 802.1Q VLAN.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vlan: Option<u16>,
    },
    /// A private endpoint.
    PrivateEndpoint {
        /// Its network.
        network: String,
        /// The service, in the provider's spelling.
        service: String,
        /// The target sub-resource (Azure's `groupIds`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subresource: Option<String>,
        /// Subnets for its interfaces.
        subnets: Vec<String>,
    },
    /// A Megaport Cloud Router.
    Router {
        /// Product name.
        name: String,
        /// Megaport location id.
        location_id: u32,
        /// Port speed.
        speed_mbps: u32,
        /// The MCR's ASN.
        asn: u32,
        /// Diversity zone (`red`, `blue`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        diversity_zone: Option<String>,
        /// Contract term in months.
        term_months: u32,
    },
    /// A Megaport VXC from an MCR to a cloud on-ramp.
    Vxc {
        /// Product name.
        name: String,
        /// The MCR (A end).
        router: String,
        /// The on-ramp kind (`aws-direct-connect`, ...).
        target: String,
        /// The cloud resource whose key the B end needs (an ExpressRoute
        /// circuit's service key, a GCP attachment's pairing key).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partner: Option<String>,
        /// Rate limit.
        rate_limit_mbps: u32,
        /// A-end VLAN.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vlan: Option<u16>,
        /// BGP sessions and prefix filters, as the MCR's A-end config.
        bgp: VxcBgp,
    },
    /// The other end of a site-to-site VPN, as this cloud records it.
    VpnPeer {
        /// The network on this side (its region is the peer's).
        network: String,
        /// The other side's BGP ASN.
        asn: u32,
        /// The resource whose output is the other side's public address
        /// (its VPN gateway, or on AWS its VPN connection).
        address: String,
        /// That output's key (`publicIp`, `outsideIp`).
        address_output: String,
    },
    /// A site-to-site VPN from this side's gateway to its peer, with BGP
    /// over the tunnels.
    VpnConnection {
        /// This side's VPN gateway.
        gateway: String,
        /// The peer.
        peer: String,
    },
}

/// BGP on a VXC, as configured on the MCR.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VxcBgp {
    /// Sessions: (local address with prefix length, peer address, peer ASN).
    pub peers: Vec<(String, String, u32)>,
    /// Prefixes accepted from the cloud.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import: Vec<String>,
    /// Prefixes advertised to the cloud.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export: Vec<String>,
}

impl Spec {
    /// The kind of resource this spec describes.
    pub fn kind(&self) -> ResourceKind {
        match self {
            Spec::Network { .. } => ResourceKind::Network,
            Spec::Subnet { .. } => ResourceKind::Subnet,
            Spec::RouteTable { .. } => ResourceKind::RouteTable,
            Spec::Route { .. } => ResourceKind::Route,
            Spec::Peering { .. } => ResourceKind::Peering,
            Spec::TransitGateway { .. } => ResourceKind::TransitGateway,
            Spec::TransitGatewayAttachment { .. } => ResourceKind::TransitGatewayAttachment,
            Spec::TransitGatewayRoute { .. } => ResourceKind::TransitGatewayRoute,
            Spec::VpnGateway { .. } => ResourceKind::VpnGateway,
            Spec::InterconnectGateway { .. } => ResourceKind::InterconnectGateway,
            Spec::InterconnectAttachment { .. } => ResourceKind::InterconnectAttachment,
            Spec::PrivateEndpoint { .. } => ResourceKind::PrivateEndpoint,
            Spec::Router { .. } => ResourceKind::Router,
            Spec::Vxc { .. } => ResourceKind::Vxc,
            Spec::VpnPeer { .. } => ResourceKind::VpnPeer,
            Spec::VpnConnection { .. } => ResourceKind::VpnConnection,
        }
    }

    /// Every field that names another resource, in a fixed order.
    pub fn refs(&self) -> Vec<&String> {
        let mut v = Vec::new();
        match self {
            Spec::Network { .. } | Spec::TransitGateway { .. } | Spec::Router { .. } => {}
            Spec::Subnet { network, .. } => v.push(network),
            Spec::RouteTable {
                network,
                subnets,
                propagating_gateways,
            } => {
                v.push(network);
                v.extend(subnets);
                v.extend(propagating_gateways);
            }
            Spec::Route {
                route_table,
                target,
                ..
            } => v.extend([route_table, target]),
            Spec::Peering {
                requester,
                accepter,
                ..
            } => v.extend([requester, accepter]),
            Spec::TransitGatewayAttachment {
                transit_gateway,
                network,
                subnets,
            } => {
                v.extend([transit_gateway, network]);
                v.extend(subnets);
            }
            Spec::TransitGatewayRoute {
                transit_gateway,
                attachment,
                ..
            } => v.extend([transit_gateway, attachment]),
            Spec::VpnGateway { network, .. } => v.push(network),
            Spec::InterconnectGateway {
                network,
                associations,
                ..
            } => {
                v.extend(network);
                v.extend(associations);
            }
            Spec::InterconnectAttachment {
                gateway,
                vxc,
                network_gateway,
                ..
            } => {
                v.push(gateway);
                v.extend(vxc);
                v.extend(network_gateway);
            }
            Spec::PrivateEndpoint {
                network, subnets, ..
            } => {
                v.push(network);
                v.extend(subnets);
            }
            Spec::Vxc {
                router, partner, ..
            } => {
                v.push(router);
                v.extend(partner);
            }
            Spec::VpnPeer {
                network, address, ..
            } => v.extend([network, address]),
            Spec::VpnConnection { gateway, peer } => v.extend([gateway, peer]),
        }
        v
    }

    /// Rewrites every reference through `f` (logical id ↔ cloud id).
    pub fn map_refs(&mut self, mut f: impl FnMut(&str) -> String) {
        let mut fix = |s: &mut String| *s = f(s);
        match self {
            Spec::Network { .. } | Spec::TransitGateway { .. } | Spec::Router { .. } => {}
            Spec::Subnet { network, .. } => fix(network),
            Spec::RouteTable {
                network,
                subnets,
                propagating_gateways,
            } => {
                fix(network);
                subnets.iter_mut().for_each(&mut fix);
                propagating_gateways.iter_mut().for_each(&mut fix);
            }
            Spec::Route {
                route_table,
                target,
                ..
            } => {
                fix(route_table);
                fix(target);
            }
            Spec::Peering {
                requester,
                accepter,
                ..
            } => {
                fix(requester);
                fix(accepter);
            }
            Spec::TransitGatewayAttachment {
                transit_gateway,
                network,
                subnets,
            } => {
                fix(transit_gateway);
                fix(network);
                subnets.iter_mut().for_each(&mut fix);
            }
            Spec::TransitGatewayRoute {
                transit_gateway,
                attachment,
                ..
            } => {
                fix(transit_gateway);
                fix(attachment);
            }
            Spec::VpnGateway { network, .. } => fix(network),
            Spec::InterconnectGateway {
                network,
                associations,
                ..
            } => {
                network.iter_mut().for_each(&mut fix);
                associations.iter_mut().for_each(&mut fix);
            }
            Spec::InterconnectAttachment {
                gateway,
                vxc,
                network_gateway,
                ..
            } => {
                fix(gateway);
                vxc.iter_mut().for_each(&mut fix);
                network_gateway.iter_mut().for_each(&mut fix);
            }
            Spec::PrivateEndpoint {
                network, subnets, ..
            } => {
                fix(network);
                subnets.iter_mut().for_each(&mut fix);
            }
            Spec::Vxc {
                router, partner, ..
            } => {
                fix(router);
                partner.iter_mut().for_each(&mut fix);
            }
            Spec::VpnPeer {
                network, address, ..
            } => {
                fix(network);
                fix(address);
            }
            Spec::VpnConnection { gateway, peer } => {
                fix(gateway);
                fix(peer);
            }
        }
    }

    /// This desired spec with the fields the topology leaves to the cloud
    /// filled in from `observed`: a subnet without a zone gets the zone the
    /// cloud chose, so the choice is not a difference.
    pub fn settled_by(&self, observed: &Spec) -> Spec {
        let mut out = self.clone();
        if let (
            Spec::Subnet {
                zone: want @ None, ..
            },
            Spec::Subnet { zone: got, .. },
        ) = (&mut out, observed)
        {
            want.clone_from(got);
        }
        out
    }

    /// The fields whose values differ from `other`'s, with both values, in
    /// field order. Specs of different kinds differ in `kind`.
    pub fn diff(&self, other: &Spec) -> Vec<FieldChange> {
        let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
            (serde_json::to_value(self), serde_json::to_value(other))
        else {
            return vec![];
        };
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| FieldChange {
                field: k.clone(),
                from: b.get(k).cloned().unwrap_or(serde_json::Value::Null),
                to: a.get(k).cloned().unwrap_or(serde_json::Value::Null),
            })
            .collect()
    }
}

/// One changed field: `from` is what exists, `to` is what the topology wants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The spec field (camelCase).
    pub field: String,
    /// The observed value.
    pub from: serde_json::Value,
    /// The desired value.
    pub to: serde_json::Value,
}

/// A resource the topology asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// Logical id, unique in the topology: `subnet/aws-vpc/private-a`.
    pub id: ResourceId,
    /// Where it lives.
    pub scope: Scope,
    /// What it is.
    pub spec: Spec,
}

impl Desired {
    /// The kind of resource.
    pub fn kind(&self) -> ResourceKind {
        self.spec.kind()
    }
}

/// The lifecycle state of an observed resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", content = "status", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ResourceState {
    /// Usable.
    Ready,
    /// Still converging; the status is the cloud's own word
    /// (`pending-acceptance`, `DEPLOYABLE`, `Initiated`).
    Pending(String),
    /// Failed or rejected; it has to be replaced.
    Failed(String),
}

/// A resource as a provider observed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    /// Logical id, from the ownership tag.
    pub id: ResourceId,
    /// The cloud's own id (`vpc-0a1b...`, a Megaport product UID).
    pub cloud_id: CloudId,
    /// Where it lives.
    pub scope: Scope,
    /// Its shape; references to other mcnet resources as logical ids, and
    /// to anything else as `unmanaged:<cloud id>`.
    pub spec: Spec,
    /// Lifecycle state.
    pub state: ResourceState,
    /// Values other resources need: `serviceKey`, `pairingKey`, `vlan`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// The cloud ids behind `spec`'s references, in [`Spec::refs`] order,
    /// where the provider knows them. With duplicates about (two applies
    /// raced), they say which copy a reference really points at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

/// Who owns a set of resources: the topology's name, carried whole in the
/// [`TAG_TOPOLOGY`] tag (or the topology field of a [`mark`](Self::mark))
/// and compared whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The topology's `metadata.name`.
    pub topology: String,
}

impl Owner {
    /// The tags every resource for logical id `id` carries.
    pub fn tags(&self, id: &ResourceId) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TAG_TOPOLOGY.to_string(), self.topology.clone()),
            (TAG_ID.to_string(), id.to_string()),
            (TAG_MANAGED_BY.to_string(), "mcnet".to_string()),
        ])
    }

    /// Whether `tags` mark a resource of this owner; returns its logical id.
    /// The topology tag must equal this owner's name exactly (and no other
    /// topology tag may be present), and the id tag must be a logical id.
    pub fn owns<'a>(
        &self,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<ResourceId> {
        let (mut mine, mut other, mut id) = (false, false, None);
        for (k, v) in tags {
            if k == TAG_TOPOLOGY {
                if v == self.topology {
                    mine = true;
                } else {
                    other = true;
                }
            } else if k == TAG_ID {
                id = v.parse().ok();
            }
        }
        id.filter(|_| mine && !other)
    }

    /// The one-string ownership mark, `mcnet:<topology>:<id>`, for clouds
    /// whose resources carry no tags (a GCP description, a Megaport cost
    /// centre). The topology is percent-encoded like an id segment, so it
    /// never contains `:` and a valid name is written as is.
    pub fn mark(&self, id: &ResourceId) -> String {
        let mut out = String::from("mcnet:");
        id::encode_segment(&self.topology, &mut out);
        out.push(':');
        out.push_str(id.as_str());
        out
    }

    /// The logical id in a [`mark`](Self::mark) of this owner, and whatever
    /// the provider appended after a `;`. The topology field must be this
    /// owner's name, whole; the id must be a logical id in canonical form.
    pub fn marked<'a>(&self, text: &'a str) -> Option<(ResourceId, &'a str)> {
        let rest = text.strip_prefix("mcnet:")?;
        let (topology, rest) = rest.split_once(':')?;
        if id::decode_segment(topology)? != self.topology {
            return None;
        }
        let (id, extra) = rest.split_once(';').unwrap_or((rest, ""));
        Some((id.parse().ok()?, extra))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(name: &str) -> Owner {
        Owner {
            topology: name.into(),
        }
    }

    #[test]
    fn ownership_marks_name_their_topology_exactly() {
        let prod = owner("prod");
        let prod2 = owner("prod-2");
        let net = ResourceId::network("aws-vpc");
        let m = prod.mark(&net);
        assert_eq!(m, "mcnet:prod:network/aws-vpc");
        assert_eq!(prod.marked(&m), Some((net.clone(), "")));
        assert_eq!(
            prod.marked(&format!("{m};region=x")),
            Some((net.clone(), "region=x"))
        );
        // A topology whose name extends another's is a different owner.
        assert_eq!(prod.marked(&prod2.mark(&net)), None);
        assert_eq!(prod2.marked(&m), None);
        assert_eq!(prod.marked("finance:cost-centre-7"), None);
        // Tags: the topology must match, and the id is returned.
        let sub = ResourceId::subnet("a", "x");
        let tags = prod.tags(&sub);
        let it = || tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        assert_eq!(prod.owns(it()), Some(sub.clone()));
        assert_eq!(prod2.owns(it()), None);
    }

    #[test]
    fn an_owner_whose_name_has_another_owners_name_and_a_colon_is_not_that_owner() {
        let prod = owner("prod");
        let net = ResourceId::network("aws-vpc");
        for other in [
            "prod:x",
            "prod:network",
            "prod:",
            "prod:subnet/a",
            "prod;x",
            "prod%3Ax",
        ] {
            let o = owner(other);
            let m = o.mark(&net);
            assert_eq!(prod.marked(&m), None, "{other}: {m}");
            assert_eq!(prod.marked(&format!("{m};region=x")), None, "{other}: {m}");
            assert_eq!(o.marked(&m), Some((net.clone(), "")), "{other}: {m}");
            let tags = o.tags(&net);
            let it = || tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            assert_eq!(prod.owns(it()), None);
        }
        // What a `prod:x` mark looked like before owners were escaped.
        assert_eq!(prod.marked("mcnet:prod:x:network/aws-vpc"), None);
        assert_eq!(prod.marked("mcnet:prod:subnet/a:network/x"), None);
        // Two topology tags: not unambiguously this owner's.
        let both = [
            (TAG_TOPOLOGY, "prod"),
            (TAG_TOPOLOGY, "prod:x"),
            (TAG_ID, "network/aws-vpc"),
        ];
        assert_eq!(prod.owns(both), None);
        // An id tag that is not a logical id marks nothing.
        assert_eq!(
            prod.owns([(TAG_TOPOLOGY, "prod"), (TAG_ID, "x:network/a")]),
            None
        );
    }
}
