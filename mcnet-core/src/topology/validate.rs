//! Validation: every problem at once, each with a stable code, the path of
//! the offending field and a message naming the objects involved.
//!
//! | code | severity | meaning |
//! |---|---|---|
//! | `parse.syntax`, `parse.schema`, `parse.unknown-field`, `parse.api-version`, `parse.kind` | error | the document itself |
//! | `name.empty`, `name.invalid`, `name.duplicate` | error | object names: every name is a DNS-1123 label (a hostname a DNS-1123 subdomain), unique among its kind |
//! | `ref.dangling`, `ref.region`, `ref.provider-kind` | error | references between objects |
//! | `cidr.invalid`, `cidr.overlap`, `subnet.outside-network` | error | address space |
//! | `ipam.no-pool`, `ipam.exhausted` | error | `auto` allocation |
//! | `clustermesh.id-range`, `clustermesh.id-duplicate`, `clustermesh.name-invalid`, `clustermesh.name-duplicate`, `clustermesh.pod-cidr-overlap` | error | Cilium ClusterMesh |
//! | `cni.chaining` | error | chaining with the wrong cloud's CNI |
//! | `megaport.speed`, `megaport.oversubscribed`, `megaport.rate-limit`, `megaport.vlan-range`, `megaport.vlan-duplicate`, `megaport.asn` | error | Megaport |
//! | `peering.endpoints` | error | a peering must join two distinct networks |
//! | `tgw.asn`, `tgw.attachment`, `tgw.route-conflict` | error | AWS transit gateways: a private ASN, each VPC once, not also peered with another attached VPC |
//! | `aws.dx-prefix-limit`, `aws.peering-limit` | error | published AWS limits |
//! | `spof.mcr`, `spof.vxc` | warning | single points of failure |
//! | `monitoring.unreachable` | warning | a workload network the monitoring network cannot reach |

use crate::diag::Code;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::IpNet;

use super::cidr::{span, Cidr};
use super::ipam;
use super::model::*;
use super::name;
use super::parse;
use super::paths::Connectivity;
use crate::diag::{Diagnostic, Report};

mod address;
mod interconnect;
mod names;
mod refs;

pub use interconnect::{advertised_prefixes, vpn_prefixes};

/// The one subnet name that is not a DNS-1123 label: Azure requires a
/// virtual network gateway's subnet to be called this.
pub const GATEWAY_SUBNET: &str = "GatewaySubnet";

/// Megaport's MCR port speeds, in Mbps.
pub const MCR_SPEEDS_MBPS: [u32; 7] = [1000, 2500, 5000, 10000, 25000, 50000, 100000];

/// Parses and validates a document.
pub fn validate_str(text: &str) -> Report {
    let parsed = parse::parse(text);
    match parsed.topology {
        None => Report::new(parsed.problems, Vec::new()),
        Some(t) => {
            let mut r = validate(&t);
            let mut errors = parsed.problems;
            errors.append(&mut r.errors);
            Report::new(errors, r.warnings)
        }
    }
}

/// Validates a parsed topology.
pub fn validate(t: &Topology) -> Report {
    let mut v = Validator::default();
    v.names(t);
    v.references(t);
    v.cidrs(t);
    // Overlap checks work on the allocated topology, so `auto` values are
    // checked too, and an allocation failure is reported instead.
    let allocated = match ipam::allocate(t) {
        Ok(a) => a,
        Err(problems) => {
            v.errors.extend(problems);
            t.clone()
        }
    };
    let conn = Connectivity::new(&allocated);
    v.overlaps(&allocated, &conn);
    v.cluster_mesh(&allocated);
    v.megaport(t);
    v.limits(&allocated, &conn);
    v.single_points_of_failure(t, &conn);
    v.monitoring(t, &conn);
    Report::new(v.errors, v.warnings)
}

#[derive(Default)]
struct Validator {
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// Who owns a CIDR, for messages.
#[derive(Clone, Debug)]
struct Owner {
    /// `network "aws-vpc"` or `cluster "eks-prod" pod CIDR`.
    label: String,
    path: String,
    /// Index of the network the prefix is routed in.
    network: Option<usize>,
    /// Cluster index, for pod/service prefixes.
    cluster: Option<usize>,
    kind: OwnerKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OwnerKind {
    Network,
    Pods,
    Services,
}

impl Validator {
    fn err(&mut self, code: Code, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(Diagnostic::new(code, path, msg));
    }

    fn warn(&mut self, code: Code, path: impl Into<String>, msg: impl Into<String>) {
        self.warnings.push(Diagnostic::new(code, path, msg));
    }
}

#[cfg(test)]
mod tests {
    use super::super::synth::synthetic;
    use super::*;

    /// A topology with one network and one cluster, named as given.
    fn named(network: &str, subnet: &str, cluster: &str) -> String {
        format!(
            "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: t}}\nspec:\n  providers: [{{name: aws, kind: aws, regions: [us-east-1]}}]\n  networks:\n    - {{name: '{network}', provider: aws, region: us-east-1, cidrs: [10.0.0.0/16], subnets: [{{name: '{subnet}', cidr: 10.0.1.0/24}}]}}\n  clusters:\n    - {{name: '{cluster}', flavour: eks, network: '{network}', podCidr: 10.100.0.0/16, serviceCidr: 10.200.0.0/20}}\n"
        )
    }

    fn invalid_names(y: &str) -> Vec<String> {
        validate_str(y)
            .errors
            .iter()
            .filter(|d| d.code == Code::NameInvalid)
            .map(|d| d.path.clone())
            .collect()
    }

    #[test]
    fn names_that_would_collide_as_ids_or_escape_as_paths_are_refused_with_their_path() {
        assert!(validate_str(&named("n", "a", "c")).valid);
        // `n/a` + `b` and `n` + `a/b` both spelled `subnet/n/a/b` once.
        assert_eq!(
            invalid_names(&named("n/a", "b", "c")),
            ["spec.networks[0].name"]
        );
        assert_eq!(
            invalid_names(&named("n", "a/b", "c")),
            ["spec.networks[0].subnets[0].name"]
        );
        for cluster in ["../../../escape", "/tmp/x", "..", "Prod", "a_b"] {
            assert_eq!(
                invalid_names(&named("n", "a", cluster)),
                ["spec.clusters[0].name"],
                "{cluster}"
            );
        }
        // Every problem at once, each with its path.
        let r = validate_str(&named("n:x", "s/1", "../c"));
        let paths: Vec<&str> = r
            .errors
            .iter()
            .filter(|d| d.code == Code::NameInvalid)
            .map(|d| d.path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "spec.networks[0].name",
                "spec.clusters[0].name",
                "spec.networks[0].subnets[0].name"
            ]
        );
        assert!(r.errors[0].message.contains("`n:x`"), "{}", r.errors[0]);
    }

    #[test]
    fn every_name_field_is_a_label() {
        let y = "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {name: 'prod:x'}\nspec:\n  providers: [{name: AWS, kind: aws, regions: [us-east-1]}]\n  networks: [{name: n, provider: AWS, region: us-east-1, cidrs: [10.0.0.0/16], subnets: [{name: s, cidr: 10.0.1.0/24}]}]\n  interconnect:\n    routers: [{name: r.1, location: X, speedMbps: 1000, asn: 133937}]\n    vxcs: [{name: 'v 1', router: r.1, target: {kind: aws-direct-connect, networks: [n]}, rateLimitMbps: 100}]\n  peerings: [{name: p/1, kind: vpc-peering, networks: [n, n]}]\n  transitGateways: [{name: -g, provider: AWS, region: us-east-1, networks: [n]}]\n  privateEndpoints: [{name: e_1, network: n, service: com.amazonaws.us-east-1.s3, subnets: [s]}]\n  monitoring: {network: n, components: [{name: Graf, kind: grafana}]}\n  namespaces: [{name: ns., clusters: [], workloads: [{name: w/x, service: S, ports: [{name: Http, port: 80}]}]}]\n  loadBalancing: {hostnames: [{name: 'a..b', targets: []}]}\n";
        let got: BTreeSet<String> = invalid_names(y).into_iter().collect();
        let want: BTreeSet<String> = [
            "metadata.name",
            "spec.providers[0].name",
            "spec.interconnect.routers[0].name",
            "spec.interconnect.vxcs[0].name",
            "spec.peerings[0].name",
            "spec.transitGateways[0].name",
            "spec.privateEndpoints[0].name",
            "spec.monitoring.components[0].name",
            "spec.namespaces[0].name",
            "spec.namespaces[0].workloads[0].name",
            "spec.namespaces[0].workloads[0].service",
            "spec.namespaces[0].workloads[0].ports[0].name",
            "spec.loadBalancing.hostnames[0].name",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn direct_connect_prefix_limit_suggests_aggregation() {
        let mut t = synthetic(300, 0);
        for v in t
            .spec
            .interconnect
            .vxcs
            .iter_mut()
            .filter(|v| v.target.kind == VxcTargetKind::AwsDirectConnect)
        {
            v.bgp.prefix_filters.export.clear();
        }
        let r = validate(&t);
        let e: Vec<_> = r
            .errors
            .iter()
            .filter(|d| d.code == Code::AwsDxPrefixLimit)
            .collect();
        assert_eq!(e.len(), 2, "{:?}", r.errors);
        assert!(
            e[0].message.contains("200 prefixes") && e[0].message.contains("at most 100"),
            "{}",
            e[0].message
        );
        assert!(e[0].message.contains("aggregat"), "{}", e[0].message);
    }

    #[test]
    fn aws_connection_is_for_direct_connect_only() {
        let mut t = synthetic(6, 0);
        let i = t
            .spec
            .interconnect
            .vxcs
            .iter()
            .position(|v| v.target.kind != VxcTargetKind::AwsDirectConnect)
            .unwrap();
        t.spec.interconnect.vxcs[i].target.aws_connection = Some(AwsConnection::HostedVif);
        let r = validate(&t);
        assert!(
            r.errors.iter().any(|d| d.code == Code::RefProviderKind
                && d.path == format!("spec.interconnect.vxcs[{i}].target.awsConnection")),
            "{:?}",
            r.errors
        );
    }

    #[test]
    fn private_endpoints_are_checked_per_cloud() {
        let codes = |pe: &str| -> Vec<(Code, String)> {
            let y = format!(
                "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: t}}\nspec:\n  providers: [{{name: aws, kind: aws, regions: [us-east-1]}}, {{name: az, kind: azure, regions: [eastus]}}, {{name: g, kind: gcp, regions: [us-east4]}}]\n  networks:\n    - {{name: a, provider: aws, region: us-east-1, cidrs: [10.0.0.0/16], subnets: [{{name: s1, cidr: 10.0.1.0/24, zone: us-east-1a}}, {{name: s2, cidr: 10.0.2.0/24, zone: us-east-1b}}]}}\n    - {{name: z, provider: az, region: eastus, cidrs: [10.3.0.0/16], subnets: [{{name: s1, cidr: 10.3.1.0/24}}, {{name: s2, cidr: 10.3.2.0/24}}]}}\n    - {{name: g, provider: g, region: us-east4, cidrs: [10.4.0.0/16], subnets: [{{name: s1, cidr: 10.4.1.0/24}}]}}\n  privateEndpoints: [{pe}]\n"
            );
            let r = validate_str(&y);
            r.errors.iter().map(|d| (d.code, d.path.clone())).collect()
        };
        let pair = |c: Code, p: &str| (c, format!("spec.privateEndpoints[0].{p}"));
        let blob =
            "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/acct";
        let attachment = "projects/p/regions/us-east4/serviceAttachments/db";
        // Well-formed on each cloud.
        for pe in [
            "{name: e, network: a, service: com.amazonaws.us-east-1.s3, subnets: [s1, s2]}"
                .to_string(),
            format!("{{name: e, network: z, service: {blob}, subresource: blob, subnets: [s1]}}"),
            format!("{{name: e, network: g, service: {attachment}, subnets: [s1]}}"),
        ] {
            assert!(codes(&pe).is_empty(), "{pe}: {:?}", codes(&pe));
        }
        assert_eq!(
            codes(&format!(
                "{{name: e, network: z, service: {blob}, subresource: blob, subnets: [s1, s2]}}"
            )),
            [pair(Code::PrivateEndpointSubnets, "subnets")]
        );
        assert_eq!(
            codes("{name: e, network: a, service: com.amazonaws.us-east-1.s3, subresource: blob, subnets: [s1]}"),
            [pair(Code::PrivateEndpointSubresource, "subresource")]
        );
        assert_eq!(
            codes("{name: e, network: g, service: all-apis, subnets: [s1]}"),
            [pair(Code::PrivateEndpointService, "service")]
        );
    }

    #[test]
    fn transit_gateways_are_checked() {
        let y = |tgw: &str| {
            format!(
                "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: t}}\nspec:\n  providers: [{{name: aws, kind: aws, regions: [us-east-1, eu-west-1]}}, {{name: az, kind: azure, regions: [eastus]}}]\n  networks:\n    - {{name: a, provider: aws, region: us-east-1, cidrs: [10.0.0.0/16]}}\n    - {{name: b, provider: aws, region: us-east-1, cidrs: [10.1.0.0/16]}}\n    - {{name: e, provider: aws, region: eu-west-1, cidrs: [10.2.0.0/16]}}\n    - {{name: z, provider: az, region: eastus, cidrs: [10.3.0.0/16]}}\n  peerings: [{{name: ab, kind: vpc-peering, networks: [a, b]}}]\n  transitGateways: [{tgw}]\n"
            )
        };
        let codes = |tgw: &str| -> Vec<(Code, String)> {
            let r = validate_str(&y(tgw));
            r.errors.iter().map(|d| (d.code, d.path.clone())).collect()
        };
        assert!(codes("{name: hub, provider: aws, region: us-east-1, networks: [a]}").is_empty());
        assert_eq!(
            codes("{name: hub, provider: aws, region: us-east-1, networks: [a, e]}"),
            [(
                Code::RefRegion,
                "spec.transitGateways[0].networks[1]".to_string()
            )]
        );
        assert_eq!(
            codes("{name: hub, provider: aws, region: us-east-1, networks: [a, z]}")[0].0,
            Code::RefProviderKind
        );
        assert_eq!(
            codes("{name: hub, provider: aws, region: us-east-1, asn: 65000000, networks: [a]}")[0],
            (Code::TgwAsn, "spec.transitGateways[0].asn".to_string())
        );
        assert_eq!(
            codes("{name: hub, provider: aws, region: us-east-1, networks: [a, b]}")[0].0,
            Code::TgwRouteConflict
        );
        assert_eq!(
            codes("{name: hub, provider: az, region: eastus, networks: [z]}")[0].0,
            Code::RefProviderKind
        );
    }

    #[test]
    fn peerings_per_vpc_are_limited() {
        let mut t = synthetic(60, 0);
        t.spec.peerings.clear();
        for i in (3..60).step_by(3) {
            t.spec.peerings.push(Peering {
                name: format!("p{i}"),
                kind: PeeringKind::VpcPeering,
                networks: vec!["net-0".into(), format!("net-{i}")],
            });
        }
        assert!(validate(&t).valid, "19 peerings are fine");
        let mut big = synthetic(200, 0);
        big.spec.peerings.clear();
        for i in (3..200).step_by(3) {
            big.spec.peerings.push(Peering {
                name: format!("p{i}"),
                kind: PeeringKind::VpcPeering,
                networks: vec!["net-0".into(), format!("net-{i}")],
            });
        }
        let r = validate(&big);
        let e: Vec<_> = r
            .errors
            .iter()
            .filter(|d| d.code == Code::AwsPeeringLimit)
            .collect();
        assert_eq!(e.len(), 1, "{:?}", r.errors);
        assert!(
            e[0].message.contains("net-0") && e[0].message.contains("66 VPC peerings"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn ipam_exhaustion_names_the_cluster_and_pool() {
        let mut t = synthetic(4, 4);
        t.spec.ipam = Some(IpamPools {
            pods: Some("10.200.0.0/15".parse().unwrap()),
            services: None,
        });
        for c in &mut t.spec.clusters {
            c.pod_cidr = Cidr::Auto;
        }
        let r = validate(&t);
        let e: Vec<_> = r
            .errors
            .iter()
            .filter(|d| d.code == Code::IpamExhausted)
            .collect();
        assert_eq!(e.len(), 2, "two /16s fit in a /15: {:?}", r.errors);
        assert!(
            e[0].message.contains("cluster-2") && e[0].message.contains("10.200.0.0/15"),
            "{}",
            e[0].message
        );
        assert_eq!(e[0].path, "spec.clusters[2].podCidr");
    }
}
