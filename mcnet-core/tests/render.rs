//! Cluster rendering on both example topologies: every custom resource
//! valid against its upstream CRD schema, every built-in object unchanged by
//! its k8s-openapi type, ClusterMesh consistent, and the tree written
//! atomically.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mcnet_core::render::schema::CrdSchemas;
use mcnet_core::render::{self, builtin, DocKind, Options, Rendering};
use mcnet_core::topology::Topology;
use serde_json::{json, Value};

fn example(name: &str) -> Topology {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/topologies")
        .join(name);
    Topology::from_str_strict(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rendered(name: &str) -> (Topology, Rendering) {
    let t = example(name);
    let r = render::render(&t, &Options::default()).unwrap();
    (t, r)
}

const EXAMPLES: [&str; 2] = ["adr-003.yaml", "adr-003-redundant.yaml"];

#[test]
fn every_cluster_gets_every_part() {
    for ex in EXAMPLES {
        let (t, r) = rendered(ex);
        assert_eq!(r.clusters.len(), t.spec.clusters.len(), "{ex}");
        for c in &r.clusters {
            let paths: BTreeSet<&str> = c.files.iter().map(|f| f.path.as_str()).collect();
            for want in [
                "cilium/values.yaml",
                "cilium/configmaps.yaml",
                "resilience/cilium-pdb.yaml",
                "namespaces/production.yaml",
                "services/production.yaml",
                "policies/production/network-policies.yaml",
                "linkerd/links.yaml",
                "linkerd/production/authorization.yaml",
                "ingress/nginx.yaml",
                "preview/inventory.yaml",
            ] {
                assert!(paths.contains(want), "{ex}: {} lacks {want}", c.cluster);
            }
            assert!(
                c.files
                    .iter()
                    .any(|f| f.path.ends_with("cilium-l7-policies.yaml")),
                "{ex}: {} has no L7 policy",
                c.cluster
            );
            let gke = t.spec.clusters.iter().any(|x| {
                x.name == c.cluster && x.flavour == mcnet_core::topology::ClusterFlavour::Gke
            });
            assert_eq!(
                paths.contains("ingress/gke-global-ingress.yaml"),
                gke,
                "{ex}: the global Ingress is GKE's"
            );
        }
    }
}

#[test]
fn custom_resources_match_the_upstream_schemas() {
    let schemas = CrdSchemas::embedded().unwrap();
    for ex in EXAMPLES {
        let (_, r) = rendered(ex);
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for c in &r.clusters {
            for (f, d) in c.documents().filter(|(f, _)| f.kind == DocKind::Custom) {
                let kind = d["kind"].as_str().unwrap().to_string();
                match schemas.check(d) {
                    Some(problems) => {
                        assert!(
                            problems.is_empty(),
                            "{ex} {}/{}: {problems:?}",
                            c.cluster,
                            f.path
                        );
                        *kinds.entry(kind).or_default() += 1;
                    }
                    // GKE's ManagedCertificate and BackendConfig have no
                    // upstream schema here; the BackendConfig's health
                    // check is held to GKE's documented fields.
                    None if kind == "BackendConfig" => {
                        let h = d["spec"]["healthCheck"].as_object().unwrap();
                        let known = [
                            "checkIntervalSec",
                            "timeoutSec",
                            "healthyThreshold",
                            "unhealthyThreshold",
                            "type",
                            "requestPath",
                            "port",
                        ];
                        assert!(h.keys().all(|k| known.contains(&k.as_str())), "{d}");
                        assert!(["HTTP", "HTTPS", "HTTP2"].contains(&h["type"].as_str().unwrap()));
                        let n = |k: &str| h[k].as_u64().unwrap();
                        assert!(n("timeoutSec") <= n("checkIntervalSec"), "{d}");
                        assert!(n("healthyThreshold") >= 1 && n("unhealthyThreshold") >= 1);
                    }
                    None => assert_eq!(kind, "ManagedCertificate", "{ex}: no schema for {kind}"),
                }
            }
        }
        for kind in [
            "CiliumNetworkPolicy",
            "Link",
            "Server",
            "MeshTLSAuthentication",
            "AuthorizationPolicy",
        ] {
            assert!(
                kinds.get(kind).copied().unwrap_or(0) > 0,
                "{ex}: no {kind} checked"
            );
        }
    }
}

#[test]
fn the_schema_check_catches_broken_resources() {
    let schemas = CrdSchemas::embedded().unwrap();
    let (_, r) = rendered("adr-003.yaml");
    let find = |kind: &str| {
        r.clusters[0]
            .documents()
            .map(|(_, d)| d.clone())
            .find(|d| d["kind"] == kind)
            .unwrap()
    };
    // An AuthorizationPolicy without its target.
    let mut a = find("AuthorizationPolicy");
    a["spec"].as_object_mut().unwrap().remove("targetRef");
    assert!(!schemas.check(&a).unwrap().is_empty());
    // A Link whose gateway port is a number (the CRD wants a string).
    let mut l = find("Link");
    l["spec"]["gatewayPort"] = json!(4143);
    assert!(!schemas.check(&l).unwrap().is_empty());
    // A CiliumNetworkPolicy rule with a port list in place of an object.
    let mut p = find("CiliumNetworkPolicy");
    p["spec"]["ingress"][0]["toPorts"] = json!("8080");
    assert!(!schemas.check(&p).unwrap().is_empty());
    // An unknown kind has no schema.
    assert!(schemas
        .check(&json!({"apiVersion": "x/v1", "kind": "Y"}))
        .is_none());
}

#[test]
fn built_in_objects_round_trip_through_k8s_openapi() {
    for ex in EXAMPLES {
        let (_, r) = rendered(ex);
        let mut n = 0;
        for c in &r.clusters {
            for (f, d) in c
                .documents()
                .filter(|(f, _)| matches!(f.kind, DocKind::BuiltIn | DocKind::Preview))
            {
                assert_eq!(
                    &builtin(d.clone()).unwrap(),
                    d,
                    "{ex} {}/{}",
                    c.cluster,
                    f.path
                );
                n += 1;
            }
        }
        assert!(n > 20, "{ex}: only {n} built-in objects");
    }
    // And a field the type does not know is caught, not dropped silently.
    let bad =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dataa": {}});
    assert!(builtin(bad).is_err());
    let unknown = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    assert!(builtin(unknown).is_err());
}

fn values(r: &Rendering, cluster: &str) -> Value {
    r.clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .unwrap()
        .files
        .iter()
        .find(|f| f.path == "cilium/values.yaml")
        .unwrap()
        .documents[0]
        .clone()
}

fn config(r: &Rendering, cluster: &str) -> Value {
    r.clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .unwrap()
        .documents()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "cilium-config")
        .unwrap()["data"]
        .clone()
}

#[test]
fn clustermesh_is_consistent_across_clusters() {
    for ex in EXAMPLES {
        let (t, r) = rendered(ex);
        let t = mcnet_core::topology::ipam::allocate(&t).unwrap();
        let members: Vec<&str> = t
            .spec
            .clusters
            .iter()
            .filter(|c| c.cluster_mesh.is_some())
            .map(|c| c.name.as_str())
            .collect();
        assert!(members.len() >= 3, "{ex}");
        let mut ids = BTreeSet::new();
        let mut names = BTreeSet::new();
        let mut max = BTreeSet::new();
        for m in &members {
            let v = values(&r, m);
            let cfg = config(&r, m);
            let id = v["cluster"]["id"].as_u64().unwrap();
            let name = v["cluster"]["name"].as_str().unwrap().to_string();
            assert!((1..=255).contains(&id), "{ex}: {m} id {id}");
            assert_eq!(cfg["cluster-id"], json!(id.to_string()), "{ex}: {m}");
            assert_eq!(cfg["cluster-name"], json!(name), "{ex}: {m}");
            assert!(ids.insert(id), "{ex}: id {id} twice");
            assert!(names.insert(name.clone()), "{ex}: name {name} twice");
            max.insert(v["clustermesh"]["maxConnectedClusters"].as_u64().unwrap());
            max.insert(
                cfg["max-connected-clusters"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
            );
            // Every other member, exactly once, and not itself.
            let peers: BTreeSet<String> = v["clustermesh"]["config"]["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(
                v["clustermesh"]["config"]["clusters"]
                    .as_array()
                    .unwrap()
                    .len(),
                peers.len()
            );
            let others: BTreeSet<String> = members
                .iter()
                .filter(|o| *o != m)
                .map(|o| {
                    values(&r, o)["cluster"]["name"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert_eq!(peers, others, "{ex}: {m}");
        }
        assert_eq!(max.len(), 1, "{ex}: maxConnectedClusters differs: {max:?}");
        // The native-routing CIDR covers every member's pods.
        for m in &members {
            let cidr: ipnet::IpNet = values(&r, m)["ipv4NativeRoutingCIDR"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            for c in t.spec.clusters.iter().filter(|c| c.cluster_mesh.is_some()) {
                let pods = c.pod_cidr.net().unwrap();
                assert!(cidr.contains(&pods), "{ex}: {cidr} misses {pods}");
            }
        }
    }
    let (t, _) = rendered("adr-003.yaml");
    let r511 = render::render(
        &t,
        &Options {
            max_connected_clusters: 511,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(
        values(&r511, "eks-prod")["clustermesh"]["maxConnectedClusters"],
        511
    );
    let e = render::render(
        &t,
        &Options {
            max_connected_clusters: 300,
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("255 or 511"), "{e}");
}

#[test]
fn the_adr_settings_are_rendered() {
    let (_, r) = rendered("adr-003.yaml");
    let cfg = config(&r, "eks-prod");
    for (k, v) in [
        ("datapath-mode", "veth"),
        ("enable-bpf-masquerade", "true"),
        ("enable-ip-masq-agent", "false"),
        ("enable-bandwidth-manager", "true"),
        ("enable-local-redirect-policy", "true"),
        ("enable-host-legacy-routing", "false"),
        ("enable-host-port", "true"),
        ("enable-external-ips", "true"),
        ("enable-node-port", "true"),
        ("enable-wireguard", "true"),
        ("hubble-metrics", "dns drop tcp flow icmp http"),
        ("routing-mode", "native"),
    ] {
        assert_eq!(cfg[k], json!(v), "{k}");
    }
    let v = values(&r, "eks-prod");
    assert_eq!(v["encryption"]["type"], "wireguard");
    assert_eq!(
        v["hubble"]["metrics"]["enabled"],
        json!(["dns", "drop", "tcp", "flow", "icmp", "http"])
    );
    assert_eq!(v["ipam"]["mode"], "cluster-pool");
    assert_eq!(
        v["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
            ["topologyKey"],
        "kubernetes.io/hostname"
    );
    let pdb = r.clusters[0]
        .documents()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "PodDisruptionBudget")
        .unwrap();
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    // The L7 rule of the ADR, from the topology's HTTP dependency.
    let cnp = r.clusters[0]
        .documents()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "CiliumNetworkPolicy")
        .unwrap();
    assert_eq!(
        cnp["spec"]["ingress"][0]["toPorts"][0]["rules"]["http"],
        json!([{"method": "GET", "path": "/api/v1/.*"}, {"method": "POST", "path": "/api/v1/users"}])
    );
    // Chaining where the topology asks for it.
    let mut t = example("adr-003.yaml");
    t.spec.clusters[0].cni.chaining = mcnet_core::topology::CniChaining::AwsVpcCni;
    let r = render::render(&t, &Options::default()).unwrap();
    let v = values(&r, "eks-prod");
    assert_eq!(v["cni"]["chainingMode"], "aws-cni");
    assert_eq!(config(&r, "eks-prod")["cni-chaining-mode"], "aws-cni");
    assert_eq!(config(&r, "eks-prod")["enable-bpf-masquerade"], "false");
}

#[test]
fn an_invalid_topology_is_refused() {
    let mut t = example("adr-003.yaml");
    t.spec.clusters[1].cluster_mesh.as_mut().unwrap().id = 1;
    let e = render::render(&t, &Options::default()).unwrap_err();
    assert!(e.to_string().contains("clustermesh.id-duplicate"), "{e}");
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("mcnet-render-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn writing_replaces_only_our_own_tree() {
    let tmp = TempDir::new("write");
    let out = tmp.0.join("out");
    let (_, r) = rendered("adr-003-redundant.yaml");
    let s = render::write_dir(&r, &out).unwrap();
    // Every cluster, and the monitoring network's stack.
    assert_eq!(
        s.clusters.len(),
        r.clusters.len() + usize::from(r.monitoring.is_some())
    );
    assert!(out.join("eks-east/cilium/values.yaml").exists());
    // Re-rendering a smaller topology replaces the tree: nothing stale stays.
    let (_, small) = rendered("adr-003.yaml");
    render::write_dir(&small, &out).unwrap();
    assert!(!out.join("eks-east").exists());
    assert!(out.join("eks-prod/cilium/values.yaml").exists());
    // No staging or backup directories are left beside it.
    let names: Vec<String> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["out".to_string()]);
    // A directory holding someone else's files is refused and left alone.
    let theirs = tmp.0.join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("notes.txt"), "mine").unwrap();
    let e = render::write_dir(&small, &theirs).unwrap_err();
    assert!(e.to_string().contains("did not render"), "{e}");
    assert_eq!(
        std::fs::read_to_string(theirs.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// Every namespace the rendering writes, the ingress controller's
/// included, is default deny with only the allows its job needs.
#[test]
fn every_rendered_namespace_is_default_deny_with_its_allows() {
    use mcnet_core::policy::{Compiled, Decision, Manifests, Proto, Query, QueryEndpoint};

    for ex in EXAMPLES {
        let (_, r) = rendered(ex);
        for c in &r.clusters {
            let namespaces: Vec<&str> = c
                .files
                .iter()
                .filter(|f| f.path.starts_with("namespaces/"))
                .flat_map(|f| &f.documents)
                .map(|d| d["metadata"]["name"].as_str().unwrap())
                .collect();
            assert!(namespaces.contains(&"ingress-nginx"), "{ex} {}", c.cluster);
            for ns in &namespaces {
                let deny = c
                    .files
                    .iter()
                    .filter(|f| f.path == format!("policies/{ns}/network-policies.yaml"))
                    .flat_map(|f| &f.documents)
                    .any(|d| {
                        d["metadata"]["name"] == "default-deny-all"
                            && d["spec"]["podSelector"] == json!({})
                            && d["spec"]["policyTypes"] == json!(["Ingress", "Egress"])
                    });
                assert!(
                    deny,
                    "{ex} {}: namespace {ns} has no default deny",
                    c.cluster
                );
            }
            // The controller's allows, judged by the engine on the
            // rendered objects and the preview pods.
            let texts: Vec<String> = c
                .files
                .iter()
                .map(|f| {
                    f.documents
                        .iter()
                        .filter(|d| d.get("kind").is_some())
                        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
                        .collect()
                })
                .collect();
            let m = Manifests::load(texts.iter().map(|t| ("rendered", t.as_str()))).unwrap();
            let cmp = Compiled::new(&m);
            let ep = |s: &str| {
                if s.contains('/') {
                    QueryEndpoint {
                        pod: Some(s.into()),
                        ip: None,
                    }
                } else {
                    QueryEndpoint {
                        pod: None,
                        ip: Some(s.into()),
                    }
                }
            };
            let ask = |from: &str, to: &str, port: u16| {
                cmp.eval(&Query::l4(ep(from), ep(to), port, Proto::Tcp))
                    .unwrap()
                    .verdict
            };
            let nginx = "ingress-nginx/ingress-nginx-0";
            assert_eq!(
                ask("203.0.113.9", nginx, 443),
                Decision::Allow,
                "{}",
                c.cluster
            );
            assert_eq!(ask("203.0.113.9", nginx, 80), Decision::Allow);
            assert_eq!(ask("203.0.113.9", nginx, 22), Decision::Deny);
            assert_eq!(ask(nginx, "production/api-server-0", 8080), Decision::Allow);
            assert_eq!(ask(nginx, "production/api-server-0", 9090), Decision::Deny);
            assert_eq!(ask(nginx, "198.51.100.1", 443), Decision::Deny);
            assert_eq!(ask(nginx, "kube-system/kube-dns-0", 53), Decision::Allow);
        }
    }
}
