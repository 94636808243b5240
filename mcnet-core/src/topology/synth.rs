//! Synthetic topologies of any size, for benchmarks and property tests.

use super::cidr::Cidr;
use super::model::*;
use ipnet::{IpNet, Ipv4Net};
use std::net::Ipv4Addr;

fn v4(a: u32, len: u8) -> Cidr {
    Cidr::Net(IpNet::V4(
        Ipv4Net::new(Ipv4Addr::from(a), len).expect("valid length"),
    ))
}

/// A valid topology with `networks` networks (a /24 each, spread over AWS,
/// Azure and GCP), `clusters` clusters (one per network until they run
/// out), a chain of intra-cloud peerings and a redundant MCR pair with one
/// VXC per cloud each. Supports up to 65,536 networks and 4,096 clusters.
pub fn synthetic(networks: usize, clusters: usize) -> Topology {
    let kinds = [
        (
            "aws",
            ProviderKind::Aws,
            "us-east-1",
            ClusterFlavour::Eks,
            VxcTargetKind::AwsDirectConnect,
            PeeringKind::VpcPeering,
        ),
        (
            "azure",
            ProviderKind::Azure,
            "eastus",
            ClusterFlavour::Aks,
            VxcTargetKind::AzureExpressroute,
            PeeringKind::VnetPeering,
        ),
        (
            "gcp",
            ProviderKind::Gcp,
            "us-east4",
            ClusterFlavour::Gke,
            VxcTargetKind::GcpPartnerInterconnect,
            PeeringKind::NetworkPeering,
        ),
    ];
    let mut spec = TopologySpec {
        providers: kinds
            .iter()
            .map(|(n, k, r, ..)| Provider {
                name: n.to_string(),
                kind: *k,
                regions: vec![r.to_string()],
            })
            .collect(),
        ..TopologySpec::default()
    };
    for i in 0..networks {
        let (p, _, region, ..) = kinds[i % 3];
        spec.networks.push(Network {
            name: format!("net-{i}"),
            provider: p.into(),
            region: region.into(),
            role: NetworkRole::Workload,
            cidrs: vec![v4(0x0a00_0000 + ((i as u32) << 8), 24)],
            subnets: vec![Subnet {
                name: "a".into(),
                cidr: v4(0x0a00_0000 + ((i as u32) << 8), 26),
                prefix_length: None,
                zone: None,
            }],
        });
    }
    for c in 0..clusters.min(networks) {
        let (_, _, _, flavour, ..) = kinds[c % 3];
        spec.clusters.push(Cluster {
            name: format!("cluster-{c}"),
            flavour,
            network: format!("net-{c}"),
            // 100.64.0.0/10 in /22s, 172.16.0.0/12 in /24s.
            pod_cidr: v4(0x6440_0000 + ((c as u32) << 10), 22),
            service_cidr: v4(0xac10_0000 + ((c as u32) << 8), 24),
            pod_prefix_length: None,
            service_prefix_length: None,
            cluster_mesh: (c < 255).then(|| ClusterMesh {
                id: c as u32 + 1,
                name: format!("cluster-{c}"),
            }),
            cni: Cni::default(),
        });
    }
    for i in 0..networks.saturating_sub(3) {
        let (p, .., pk) = kinds[i % 3];
        spec.peerings.push(Peering {
            name: format!("{p}-peer-{i}"),
            kind: pk,
            networks: vec![format!("net-{i}"), format!("net-{}", i + 3)],
        });
    }
    for (zone, mcr) in [
        (DiversityZone::Red, "mcr-red"),
        (DiversityZone::Blue, "mcr-blue"),
    ] {
        spec.interconnect.routers.push(CloudRouter {
            name: mcr.into(),
            location: "Equinix DC2".into(),
            location_id: Some(1),
            speed_mbps: 100_000,
            asn: 133937,
            diversity_zone: Some(zone),
            term_months: Some(12),
        });
        for (k, (p, _, _, _, target, _)) in kinds.iter().enumerate() {
            spec.interconnect.vxcs.push(Vxc {
                name: format!("{mcr}-{p}"),
                router: mcr.into(),
                target: VxcTarget {
                    kind: *target,
                    networks: (0..networks)
                        .filter(|i| i % 3 == k)
                        .map(|i| format!("net-{i}"))
                        .collect(),
                    aws_connection: None,
                },
                rate_limit_mbps: 10_000,
                vlan: Some(100 + k as u16 + if zone == DiversityZone::Red { 0 } else { 10 }),
                bgp: Bgp {
                    peers: Vec::new(),
                    prefix_filters: PrefixFilters {
                        import: Vec::new(),
                        export: vec![v4(0x0a00_0000, 8), v4(0x6440_0000, 10)],
                    },
                },
            });
        }
    }
    Topology {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: Metadata {
            name: format!("synthetic-{networks}"),
            labels: Default::default(),
        },
        spec,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn synthetic_topologies_are_valid() {
        for (n, c) in [(10, 3), (1000, 100)] {
            let r = super::super::validate(&super::synthetic(n, c));
            assert!(r.valid, "{:?}", &r.errors[..r.errors.len().min(3)]);
        }
    }
}
