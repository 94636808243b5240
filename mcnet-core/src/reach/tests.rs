//! A denial at each layer, each with its explanation, and the allows
//! around them.

use super::*;
use crate::topology::{ipam, parse};

const ADR: &str = include_str!("../../../examples/topologies/adr-003.yaml");
const PRODUCTION: &str = include_str!("../../../examples/policies/adr-003-production.yaml");

/// The three ADR pods with no policy at all: every policy layer allows.
const OPEN: &str = "
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: production, labels: {app: frontend}}
spec: {containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api-server, namespace: production, labels: {app: api-server}}
spec: {containers: [{name: api, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.12.7.7}
---
apiVersion: v1
kind: Pod
metadata: {name: batch, namespace: production, labels: {app: batch}}
spec: {containers: [{name: job}]}
";

fn topology(edit: impl FnOnce(&mut Topology)) -> Topology {
    let mut t = parse(ADR).topology.expect("adr-003 parses");
    edit(&mut t);
    ipam::allocate(&t).expect("allocates")
}

fn model(t: &Topology, manifests: &str) -> Model {
    Model::new(t, [(Scope::All, "test.yaml", manifests)]).expect("model")
}

fn prove(m: &Model, from: &str, to: &str, port: u16) -> Proof {
    m.prove(&Query::parse(m, from, to, port).expect("query"))
}

/// The proof stops at `layer`, every earlier layer allowed, and the
/// denying hop's explanation says `why`.
fn assert_stops(p: &Proof, layer: Layer, why: &str) {
    assert_eq!(p.verdict, Verdict::Deny, "{p:#?}");
    assert_eq!(p.stopped_at, Some(layer), "{p:#?}");
    let last = p.hops.last().expect("hops");
    assert_eq!(last.layer, layer);
    assert_eq!(last.verdict, Verdict::Deny);
    assert!(
        last.explanation.contains(why),
        "{layer}: `{}` lacks `{why}`",
        last.explanation
    );
    let before: Vec<Layer> = p.hops[..p.hops.len() - 1].iter().map(|h| h.layer).collect();
    let expected: Vec<Layer> = Layer::ALL
        .iter()
        .copied()
        .take_while(|l| *l != layer)
        .collect();
    assert_eq!(before, expected, "every earlier layer is walked, in order");
    assert!(p.hops[..p.hops.len() - 1]
        .iter()
        .all(|h| h.verdict == Verdict::Allow));
}

fn assert_allows(p: &Proof) {
    assert_eq!(p.verdict, Verdict::Allow, "{p:#?}");
    assert_eq!(p.stopped_at, None);
    assert_eq!(
        p.hops.iter().map(|h| h.layer).collect::<Vec<_>>(),
        Layer::ALL.to_vec()
    );
}

#[test]
fn source_egress_denial_names_the_isolating_policies_and_cluster_scoping() {
    let m = model(&topology(|_| {}), PRODUCTION);
    let p = prove(
        &m,
        "eks-prod/production/frontend",
        "gke-prod/production/api-server",
        8080,
    );
    assert_stops(
        &p,
        Layer::SourceEgress,
        "NetworkPolicy production/default-deny-all",
    );
    assert!(p.hops[0]
        .explanation
        .contains("policy-default-local-cluster"));
    // The same pods in one cluster: allowed at L4 by the egress policy.
    let local = prove(
        &m,
        "eks-prod/production/frontend",
        "eks-prod/production/api-server",
        8080,
    );
    assert_allows(&local);
    assert!(local.hops[0].explanation.contains("frontend-egress-api"));
}

#[test]
fn cluster_cidr_denies_overlay_pods_without_clustermesh_and_own_cidrs() {
    let t = topology(|t| {
        let gke = t
            .spec
            .clusters
            .iter_mut()
            .find(|c| c.name == "gke-prod")
            .unwrap();
        gke.cni.mode = crate::topology::CniMode::Overlay;
        gke.cluster_mesh = None;
    });
    let m = model(&t, OPEN);
    let p = prove(
        &m,
        "eks-prod/production/frontend",
        "gke-prod/production/api-server",
        8080,
    );
    assert_stops(&p, Layer::ClusterCidr, "overlay pod addressing");
    // An address in the source cluster's own service CIDR never leaves it.
    let p = prove(&m, "eks-prod/production/frontend", "172.20.0.9", 443);
    assert_stops(&p, Layer::ClusterCidr, "eks-prod's own service CIDR");
}

#[test]
fn cloud_route_denies_failed_paths_filtered_prefixes_and_prefix_limits() {
    let m = model(&topology(|_| {}), OPEN);
    let to_gke = |m: &Model, failed: Vec<Component>| {
        m.prove(
            &Query::parse(
                m,
                "eks-prod/production/frontend",
                "gke-prod/production/api-server",
                8080,
            )
            .unwrap()
            .failing(failed),
        )
    };
    let p = to_gke(&m, vec![]);
    assert_allows(&p);
    assert!(
        p.hops[2].explanation.contains("interconnect"),
        "{:?}",
        p.hops[2]
    );
    assert!(
        p.hops[2].explanation.contains("vxc-gcp-pi"),
        "{:?}",
        p.hops[2]
    );
    let p = to_gke(&m, vec![Component::Router("multicloud-mcr".into())]);
    assert_stops(
        &p,
        Layer::CloudRoute,
        "uses a failed component (mcr/multicloud-mcr)",
    );

    // GCP's pod CIDR filtered out of what the MCR imports from GCP.
    let t = topology(|t| {
        let v = t
            .spec
            .interconnect
            .vxcs
            .iter_mut()
            .find(|v| v.name == "vxc-gcp-pi")
            .unwrap();
        v.bgp
            .prefix_filters
            .import
            .retain(|p| p.to_string() != "10.12.0.0/16");
    });
    let p = to_gke(&model(&t, OPEN), vec![]);
    assert_stops(&p, Layer::CloudRoute, "advertises no prefix holding 10.12.");
    // The node network is still imported: a node address gets through.
    let p = prove(
        &model(&t, OPEN),
        "eks-prod/production/frontend",
        "10.2.0.50",
        10250,
    );
    assert_allows(&p);

    // More prefixes toward AWS than its Direct Connect accepts.
    let t = topology(|t| t.spec.limits.aws_dx_private_vif_prefixes = 1);
    let p = to_gke(&model(&t, OPEN), vec![]);
    assert_stops(&p, Layer::CloudRoute, "BGP session is down");
}

#[test]
fn peering_routes_carry_network_cidrs_but_not_pod_cidrs() {
    // The monitoring VPC is peered with the AWS VPC and reached over it.
    let m = model(&topology(|_| {}), OPEN);
    let p = prove(&m, "eks-prod/production/frontend", "10.100.0.20", 8428);
    assert_allows(&p);
    assert!(p.hops[2].explanation.contains("peering"), "{:?}", p.hops[2]);
}

#[test]
fn clustermesh_denies_clusters_sharing_an_id() {
    let t = topology(|t| {
        for c in &mut t.spec.clusters {
            if let Some(cm) = &mut c.cluster_mesh {
                cm.id = 7;
            }
        }
    });
    let p = prove(
        &model(&t, OPEN),
        "eks-prod/production/frontend",
        "gke-prod/production/api-server",
        8080,
    );
    assert_stops(&p, Layer::Clustermesh, "both use ClusterMesh id 7");
}

#[test]
fn mesh_denies_unmeshed_sources_and_ports_the_service_lacks() {
    // eks-prod runs the clients only; the API runs in gke-prod. `ops` is
    // not a namespace of the topology, so Linkerd does not inject it.
    let t = topology(|_| {});
    let clients = "
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: production, labels: {app: frontend}}
---
apiVersion: v1
kind: Pod
metadata: {name: toolbox, namespace: ops, labels: {app: toolbox}}
";
    let server = "
apiVersion: v1
kind: Pod
metadata: {name: api-server, namespace: production, labels: {app: api-server}}
spec: {containers: [{name: api, ports: [{name: http, containerPort: 8080}]}]}
";
    let m = Model::new(
        &t,
        [
            (Scope::Cluster("eks-prod".into()), "clients.yaml", clients),
            (Scope::Cluster("gke-prod".into()), "server.yaml", server),
        ],
    )
    .unwrap();
    let svc = "api-service.production.svc.clusterset.local";
    let p = prove(&m, "eks-prod/ops/toolbox", svc, 8080);
    assert_stops(&p, Layer::Mesh, "not meshed");
    assert!(p.to.contains("via the gke-prod gateway"));
    // A meshed source gets through the gateway, and with no policy in
    // gke-prod the gateway's connection is allowed in.
    let p = prove(&m, "eks-prod/production/frontend", svc, 8080);
    assert_allows(&p);
    assert!(p.hops[4].explanation.contains("api-server-http-authz"));
    assert!(
        p.hops[0].explanation.contains(":4143"),
        "egress goes to the gateway"
    );
    assert!(p.hops[5].explanation.contains("linkerd-gateway"));
    // A port the service does not expose.
    let p = prove(&m, "eks-prod/production/frontend", svc, 9090);
    assert_stops(&p, Layer::Mesh, "exposes no port 9090");
}

#[test]
fn target_ingress_refuses_the_gateway_when_policy_admits_only_the_clients() {
    // The ADR's policy admits frontend pods only: behind the gateway the
    // api-server sees the gateway pod, so the call is refused there.
    let t = topology(|_| {});
    let clients = "
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: production, labels: {app: frontend}}
";
    let m = Model::new(
        &t,
        [
            (Scope::Cluster("eks-prod".into()), "fe.yaml", clients),
            (Scope::Cluster("gke-prod".into()), "prod.yaml", PRODUCTION),
        ],
    )
    .unwrap();
    let p = prove(
        &m,
        "eks-prod/production/frontend",
        "api-service.production.svc.clusterset.local",
        8080,
    );
    assert_stops(&p, Layer::TargetIngress, "default-deny-all");
    assert!(
        p.hops[5]
            .explanation
            .contains("linkerd-multicluster/linkerd-gateway"),
        "{:?}",
        p.hops[5]
    );
}

#[test]
fn target_ingress_denies_l7_requests_and_the_gateway_when_policy_omits_it() {
    let m = model(&topology(|_| {}), PRODUCTION);
    let q = |method: &str, path: &str| {
        Query::parse(
            &m,
            "aks-prod/production/frontend",
            "aks-prod/production/api-server",
            8080,
        )
        .unwrap()
        .http(method, path)
    };
    assert_allows(&m.prove(&q("GET", "/api/v1/orders")));
    assert_allows(&m.prove(&q("POST", "/api/v1/users")));
    for (method, path) in [("DELETE", "/api/v1/users"), ("GET", "/admin")] {
        let p = m.prove(&q(method, path));
        assert_stops(&p, Layer::TargetIngress, "matches none");
        assert!(p.hops[5].explanation.contains("api-access-policy"));
    }
    // batch is denied at its own egress first.
    let p = prove(
        &m,
        "aks-prod/production/batch",
        "aks-prod/production/api-server",
        8080,
    );
    assert_stops(&p, Layer::SourceEgress, "default-deny-all");
}

#[test]
fn target_ingress_sees_a_non_meshed_source_as_world() {
    // gke-prod leaves the ClusterMesh; its api-server admits only
    // frontend pods by label, so a pod of eks-prod (now just an address) is refused.
    let t = topology(|t| {
        t.spec
            .clusters
            .iter_mut()
            .find(|c| c.name == "gke-prod")
            .unwrap()
            .cluster_mesh = None;
    });
    let ingress_only = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-from-frontend, namespace: production}
spec:
  podSelector: {matchLabels: {app: api-server}}
  ingress: [{from: [{podSelector: {matchLabels: {app: frontend}}}]}]
";
    let text = format!("{OPEN}\n---\n{ingress_only}");
    let m = model(&t, &text);
    let p = prove(
        &m,
        "eks-prod/production/frontend",
        "gke-prod/production/api-server",
        8080,
    );
    assert_stops(&p, Layer::TargetIngress, "api-from-frontend");
    assert!(p.hops[3].explanation.contains("share no ClusterMesh"));
    let local = prove(
        &m,
        "gke-prod/production/frontend",
        "gke-prod/production/api-server",
        8080,
    );
    assert_allows(&local);
}

#[test]
fn pods_keep_manifest_addresses_inside_their_pod_cidr_and_get_one_otherwise() {
    let m = model(&topology(|_| {}), OPEN);
    let api = |c: &str| PodRef {
        cluster: c.into(),
        namespace: "production".into(),
        name: "api-server".into(),
    };
    let (gke, origin) = m.address(&api("gke-prod")).unwrap();
    assert_eq!(
        (gke.to_string().as_str(), origin),
        ("10.12.7.7", AddressOrigin::Manifest)
    );
    let (eks, origin) = m.address(&api("eks-prod")).unwrap();
    assert_eq!(origin, AddressOrigin::Assigned);
    assert!(eks.to_string().starts_with("10.10."), "{eks}");
    // An address resolves back to its pod.
    assert_eq!(m.target("10.12.7.7").unwrap(), Target::Pod(api("gke-prod")));
}

#[test]
fn bad_references_are_errors_naming_the_object() {
    let m = model(&topology(|_| {}), OPEN);
    for (to, want) in [
        ("nowhere/production/api-server", "nowhere"),
        ("eks-prod/production/ghost", "production/ghost"),
        ("nope.production.svc.clusterset.local", "nope"),
        ("eks-prod/api-server", "CLUSTER/NAMESPACE/POD"),
    ] {
        let e = Query::parse(&m, "eks-prod/production/frontend", to, 80).unwrap_err();
        assert!(e.to_string().contains(want), "{to}: {e}");
    }
    let e = Model::new(
        &topology(|_| {}),
        [(Scope::Cluster("mars".into()), "x.yaml", OPEN)],
    )
    .unwrap_err();
    assert!(e.to_string().contains("mars"), "{e}");
}

#[test]
fn the_matrix_counts_denials_per_layer() {
    let m = model(&topology(|_| {}), PRODUCTION);
    let x = m.matrix(&[]);
    // 9 pods; 6 serve port 8080; self pairs excluded.
    assert_eq!(x.cells.len(), 9 * 6 - 6);
    // frontend → api-server within each cluster, at L4.
    assert_eq!(x.allowed, 3);
    let denied: usize = x.denied_by_layer.values().sum();
    assert_eq!(denied + x.allowed, x.cells.len());
    assert!(x
        .cells
        .iter()
        .all(|c| c.verdict == Verdict::Allow || c.explanation.is_some()));
    let open = model(&topology(|_| {}), OPEN).matrix(&[Component::Router("multicloud-mcr".into())]);
    // With no policy and the MCR down, only same-cluster pairs remain.
    for c in &open.cells {
        let same = c.from.split('/').next() == c.to.split('/').next();
        assert_eq!(c.verdict == Verdict::Allow, same, "{c:?}");
        if !same {
            assert_eq!(c.stopped_at, Some(Layer::CloudRoute));
        }
    }
}

#[test]
fn json_has_the_documented_shape() {
    let m = model(&topology(|_| {}), PRODUCTION);
    let p = prove(
        &m,
        "eks-prod/production/frontend",
        "gke-prod/production/api-server",
        8080,
    );
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["verdict"], "deny");
    assert_eq!(v["stopped_at"], "source-egress");
    assert_eq!(v["hops"][0]["layer"], "source-egress");
    assert_eq!(v["hops"][0]["verdict"], "deny");
    assert!(v["hops"][0]["explanation"].is_string());
    let ok = prove(
        &m,
        "eks-prod/production/frontend",
        "eks-prod/production/api-server",
        8080,
    );
    assert_eq!(
        serde_json::to_value(&ok).unwrap()["stopped_at"],
        serde_json::Value::Null
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text as a source or target is parsed or refused with an
        /// error; a parsed query always gives a proof whose hops are in
        /// layer order and stop at the first denial.
        #[test]
        fn any_endpoint_text_is_parsed_or_refused(
            from in prop_oneof![
                Just("eks-prod/production/frontend".to_string()),
                "[a-z/.0-9-]{0,40}",
            ],
            to in prop_oneof![
                Just("gke-prod/production/api-server".to_string()),
                Just("api-service.production.svc.clusterset.local".to_string()),
                "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
                "[a-z/.0-9-]{0,60}",
            ],
            port in any::<u16>(),
        ) {
            let m = model(&topology(|_| {}), OPEN);
            if let Ok(q) = Query::parse(&m, &from, &to, port) {
                let p = m.prove(&q);
                let layers: Vec<Layer> = p.hops.iter().map(|h| h.layer).collect();
                let mut sorted = layers.clone();
                sorted.sort();
                prop_assert_eq!(&layers, &sorted);
                let first_deny = p.hops.iter().position(|h| h.verdict == Verdict::Deny);
                match first_deny {
                    Some(i) => {
                        prop_assert_eq!(i, p.hops.len() - 1);
                        prop_assert_eq!(p.stopped_at, Some(p.hops[i].layer));
                    }
                    None => prop_assert_eq!(p.hops.len(), Layer::ALL.len()),
                }
            }
        }
    }
}

#[test]
fn a_pod_reaching_itself_through_its_service_is_allowed_whatever_the_policy() {
    // default-deny-all isolates the frontend both ways, yet the call to its
    // own service lands on itself: Kubernetes never lets a pod block itself.
    let m = model(&topology(|_| {}), PRODUCTION);
    let p = prove(
        &m,
        "eks-prod/production/frontend",
        "frontend.production.svc.clusterset.local",
        8080,
    );
    assert_allows(&p);
    assert!(p.hops[0]
        .explanation
        .contains("cannot block access to itself"));
    // Another pod of the same namespace calling it is still stopped.
    let other = prove(
        &m,
        "eks-prod/production/batch",
        "frontend.production.svc.clusterset.local",
        8080,
    );
    assert_eq!(other.verdict, Verdict::Deny, "{other:#?}");
    assert_eq!(other.stopped_at, Some(Layer::SourceEgress));
}
