//! The `mcnet render` and `mcnet node tune` contracts, run as a user would:
//! the rendered policies, read back by `mcnet policy matrix`, allow exactly
//! the topology's declared dependencies (and the platform's entry points),
//! `mcnet policy lint` finds nothing, and node tuning changes a namespace
//! it creates, never the host.

use std::collections::BTreeSet;
use std::process::Command;

use mcnet_core::topology::{ipam, Topology};
use serde_json::Value;

mod common;
use common::{mcnet, TempDir};

const EXAMPLES: [&str; 2] = [
    concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml"),
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/topologies/adr-003-redundant.yaml"
    ),
];

/// Ports the matrix is computed on: every port the policies name, and some they do not.
const PORTS: [&str; 13] = [
    "53/UDP", "53/TCP", "8080/TCP", "8086/TCP", "8090/TCP", "4143/TCP", "5432/TCP", "80/TCP",
    "443/TCP", "8080/UDP", "9090/TCP", "4191/TCP", "8429/TCP",
];

/// What the topology declares, as this test reads it (independently of the renderer).
struct Declared {
    t: Topology,
}

impl Declared {
    fn new(path: &str) -> Declared {
        let t = Topology::from_str_strict(&std::fs::read_to_string(path).unwrap()).unwrap();
        Declared {
            t: ipam::allocate(&t).unwrap(),
        }
    }

    fn spans(&self, ns: &str) -> usize {
        self.t
            .spec
            .namespaces
            .iter()
            .find(|n| n.name == ns)
            .map_or(0, |n| n.clusters.len())
    }

    /// `ns/name` of the preview pod → (namespace, workload) for app pods.
    fn app(&self, pod: &str) -> Option<(String, String)> {
        let (ns, name) = pod.split_once('/')?;
        let w = name.strip_suffix("-0")?;
        self.t
            .spec
            .namespaces
            .iter()
            .find(|n| n.name == ns)?
            .workloads
            .iter()
            .find(|x| x.name == w)
            .map(|_| (ns.to_string(), w.to_string()))
    }

    /// The declared workload `(namespace, name)`.
    fn workload(&self, w: &(String, String)) -> &mcnet_core::topology::Workload {
        self.t
            .spec
            .namespaces
            .iter()
            .find(|n| n.name == w.0)
            .and_then(|n| n.workloads.iter().find(|x| x.name == w.1))
            .unwrap()
    }

    fn depends(
        &self,
        from: &(String, String),
        to: &(String, String),
        port: u16,
        proto: &str,
    ) -> bool {
        let w = self.workload(from);
        w.depends_on.iter().any(|d| {
            let (dns, dname) = d.workload.split_once('/').unwrap_or((&from.0, &d.workload));
            dns == to.0
                && dname == to.1
                && d.port == port
                && format!("{:?}", d.protocol).eq_ignore_ascii_case(proto)
        })
    }

    fn serves(&self, w: &(String, String), port: u16, proto: &str) -> bool {
        let w = self.workload(w);
        w.ports
            .iter()
            .any(|p| p.port == port && format!("{:?}", p.protocol).eq_ignore_ascii_case(proto))
    }

    fn backs_hostname(&self, cluster: &str, w: &(String, String)) -> bool {
        let svc = self.workload(w).service_name();
        self.t.spec.load_balancing.hostnames.iter().any(|h| {
            h.service.as_deref() == Some(&format!("{}/{svc}", w.0))
                && h.targets.iter().any(|t| t.cluster == cluster)
        })
    }

    /// Whether `src → dst` on `port/proto` should be allowed in `cluster`.
    fn expected(&self, cluster: &str, src: &str, dst: &str, port: u16, proto: &str) -> bool {
        let (s, d) = (self.app(src), self.app(dst));
        // The monitoring agents' namespace is rendered default deny: nothing
        // calls them; vmagent calls DNS and every pod's Linkerd admin port
        // (which the meshed namespaces admit), the Vector agent only DNS
        // (and, outside the pods, the monitoring network).
        const VMAGENT: &str = "mcnet-monitoring/vmagent-0";
        const VECTOR: &str = "mcnet-monitoring/vector-agent-0";
        let dns = dst == "kube-system/kube-dns-0" && port == 53;
        if dst == VMAGENT || dst == VECTOR {
            return false;
        }
        // The operator's namespace is rendered default deny: nothing calls
        // it; it calls DNS, and HTTPS only outside the cluster's ranges.
        const OPERATOR: &str = "mcnet-system/mcnet-operator-0";
        if dst == OPERATOR {
            return false;
        }
        if src == OPERATOR {
            return dns;
        }
        if src == VECTOR {
            return dns;
        }
        if src == VMAGENT && !(dns || (port == 4191 && proto == "TCP")) {
            return false;
        }
        // The ingress controller's namespace is rendered default deny: it
        // takes HTTP and HTTPS from anywhere, and calls DNS and the
        // backends of the hostnames it serves, on their ports.
        const NGINX: &str = "ingress-nginx/ingress-nginx-0";
        if dst == NGINX && (proto != "TCP" || ![80, 443].contains(&port)) {
            return false;
        }
        if src == NGINX {
            let backend = d
                .as_ref()
                .is_some_and(|dw| self.backs_hostname(cluster, dw) && self.serves(dw, port, proto));
            let dns = dst == "kube-system/kube-dns-0" && port == 53;
            if !(backend || dns) {
                return false;
            }
        }
        let egress = match &s {
            None => true, // platform pods are not isolated
            Some(sw) => {
                (dst == "kube-system/kube-dns-0" && port == 53)
                    || (dst == "linkerd/destination-0"
                        && proto == "TCP"
                        && [8080, 8086, 8090].contains(&port)
                        && self.spans(&sw.0) > 1)
                    || d.as_ref()
                        .is_some_and(|dw| self.depends(sw, dw, port, proto))
            }
        };
        let ingress = match &d {
            None => true,
            Some(dw) => {
                s.as_ref()
                    .is_some_and(|sw| self.depends(sw, dw, port, proto))
                    || (src == "ingress-nginx/ingress-nginx-0"
                        && self.backs_hostname(cluster, dw)
                        && self.serves(dw, port, proto))
                    || (src == "linkerd-multicluster/linkerd-gateway-0"
                        && self.spans(&dw.0) > 1
                        && self.serves(dw, port, proto))
                    || (src == VMAGENT && self.spans(&dw.0) > 1 && port == 4191 && proto == "TCP")
            }
        };
        egress && ingress
    }
}

#[test]
fn rendered_policies_allow_exactly_the_declared_dependencies() {
    for ex in EXAMPLES {
        let declared = Declared::new(ex);
        let out = TempDir::new("matrix");
        let dir = out.0.to_str().unwrap();
        let (code, stdout, stderr) = mcnet(&["render", ex, "-o", dir, "--output", "json"]);
        assert_eq!(code, 0, "{ex}: {stderr}");
        let summary: Value = serde_json::from_str(&stdout).unwrap();
        assert!(summary["custom_resources_checked"].as_u64().unwrap() > 0);
        for c in &declared.t.spec.clusters {
            assert!(
                summary["clusters"][&c.name].is_object(),
                "{ex}: {} missing",
                c.name
            );
            let cdir = format!("{dir}/{}", c.name);
            let mut args = vec!["policy", "matrix", "--manifests", &cdir, "--output", "json"];
            for p in PORTS {
                args.extend(["--port", p]);
            }
            let (code, stdout, stderr) = mcnet(&args);
            assert_eq!(code, 0, "{ex} {}: {stderr}", c.name);
            let m: Value = serde_json::from_str(&stdout).unwrap();
            let pods: Vec<String> = m["pods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect();
            assert!(pods.len() >= 6, "{ex} {}: {pods:?}", c.name);
            let mut declared_pairs = 0;
            for port in m["ports"].as_array().unwrap() {
                let (n, proto) = (
                    port["port"].as_u64().unwrap() as u16,
                    port["protocol"].as_str().unwrap().to_ascii_uppercase(),
                );
                let got: BTreeSet<(String, String)> = port["allowed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
                    .collect();
                let mut want = BTreeSet::new();
                for a in &pods {
                    for b in &pods {
                        if declared.expected(&c.name, a, b, n, &proto) {
                            want.insert((a.clone(), b.clone()));
                            if declared.app(a).is_some() && declared.app(b).is_some() {
                                declared_pairs += 1;
                            }
                        }
                    }
                }
                assert_eq!(
                    got, want,
                    "{ex} {}: {n}/{proto}: allowed pairs differ from the declared ones",
                    c.name
                );
            }
            // Every cluster has at least one app-to-app dependency, and it is reachable.
            assert!(declared_pairs > 0, "{ex} {}", c.name);
            let (code, stdout, stderr) = mcnet(&["policy", "lint", "--manifests", &cdir]);
            assert_eq!(code, 0, "{ex} {}: lint found {stdout} {stderr}", c.name);
        }
    }
}

#[test]
fn the_l7_rule_is_enforced_by_the_engine() {
    let out = TempDir::new("l7");
    let dir = out.0.to_str().unwrap();
    let (code, _, stderr) = mcnet(&["render", EXAMPLES[0], "-o", dir]);
    assert_eq!(code, 0, "{stderr}");
    let cdir = format!("{dir}/eks-prod");
    let eval = |method: &str, path: &str| {
        let (code, stdout, stderr) = mcnet(&[
            "policy",
            "eval",
            "--manifests",
            &cdir,
            "--from",
            "production/frontend-0",
            "--to",
            "production/api-server-0",
            "--port",
            "8080",
            "--method",
            method,
            "--path",
            path,
            "--output",
            "json",
        ]);
        assert!(code == 0 || code == 1, "{stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        v[0]["verdict"].as_str().unwrap().to_string()
    };
    assert_eq!(eval("GET", "/api/v1/orders"), "allow");
    assert_eq!(eval("POST", "/api/v1/users"), "allow");
    assert_eq!(eval("DELETE", "/api/v1/users"), "deny");
    assert_eq!(eval("GET", "/admin"), "deny");
}

#[test]
fn render_refuses_a_directory_it_does_not_own_and_an_invalid_topology() {
    let out = TempDir::new("refuse");
    std::fs::create_dir_all(&out.0).unwrap();
    std::fs::write(out.0.join("keep.txt"), "x").unwrap();
    let (code, _, stderr) = mcnet(&["render", EXAMPLES[0], "-o", out.0.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did not render"), "{stderr}");
    let bad = common::temp(
        "bad-mesh.yaml",
        &std::fs::read_to_string(EXAMPLES[0]).unwrap().replacen(
            "clusterMesh: {id: 2",
            "clusterMesh: {id: 1",
            1,
        ),
    );
    let (code, _, stderr) = mcnet(&["render", &bad, "-o", out.0.join("x").to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("clustermesh.id-duplicate"), "{stderr}");
    assert!(!out.0.join("x").exists());
}

/// Every path under `root`, relative, sorted.
fn tree(root: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn render_refuses_a_cluster_named_like_a_path_and_writes_nothing() {
    let dir = TempDir::new("escape");
    std::fs::create_dir_all(dir.0.join("a/b")).unwrap();
    let out = dir.path("a/b/out");
    let absolute = dir.path("abs");
    for (i, name) in ["../../escape", absolute.as_str()].into_iter().enumerate() {
        let t = common::temp(
            &format!("escape-{i}.yaml"),
            &format!(
                "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: t}}\nspec:\n  providers: [{{name: aws, kind: aws, regions: [us-east-1]}}]\n  networks: [{{name: n, provider: aws, region: us-east-1, cidrs: [10.0.0.0/16]}}]\n  clusters: [{{name: '{name}', flavour: eks, network: n, podCidr: 10.100.0.0/16, serviceCidr: 10.200.0.0/20}}]\n"
            ),
        );
        let (code, _, stderr) = mcnet(&["render", &t, "-o", &out]);
        assert!(code == 1 || code == 2, "{name}: exit {code}: {stderr}");
        assert!(
            stderr.contains("name.invalid") && stderr.contains("spec.clusters[0].name"),
            "{name}: {stderr}"
        );
        assert_eq!(tree(&dir.0), ["a", "a/b"], "{name}: something was written");
    }
}

// Node tuning, in a network namespace this test creates (root only).

const KEYS: [&str; 6] = [
    "net/core/somaxconn",
    "net/ipv4/tcp_max_syn_backlog",
    "net/core/netdev_max_backlog",
    "net/ipv4/tcp_congestion_control",
    "net/core/rmem_max",
    "net/core/wmem_max",
];

fn host_values() -> Vec<String> {
    KEYS.iter()
        .map(|k| std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_default())
        .collect()
}

struct Netns(String);
impl Netns {
    fn new() -> Netns {
        let name = format!("mcnet-tune-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }
}
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn tune(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["node", "tune"];
    all.extend(args);
    all.extend(["--output", "json"]);
    let (code, stdout, stderr) = mcnet(&all);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (code, v)
}

fn setting<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap()
}

#[test]
fn node_tune_checks_and_applies_inside_a_namespace_only() {
    if !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("needs root (CI runs it)");
        return;
    }
    let before = host_values();
    let ns = Netns::new();
    // A fresh namespace has the kernel defaults: somaxconn 4096 < 65535.
    let (code, check) = tune(&["--check", "--netns", &ns.0]);
    assert_eq!(code, 1, "{check}");
    assert!(check["deviations"].as_u64().unwrap() > 0);
    assert_eq!(setting(&check, "net.core.somaxconn")["ok"], false);
    assert_eq!(setting(&check, "net.core.rmem_max")["scope"], "global");
    assert_eq!(setting(&check, "net.core.somaxconn")["scope"], "per-netns");

    let (code, applied) = tune(&["--apply", "--netns", &ns.0]);
    assert_eq!(code, 0, "{applied}");
    for s in applied["settings"].as_array().unwrap() {
        match s["scope"].as_str().unwrap() {
            "per-netns" if s["ok"] == false => {
                assert_eq!(s["changed_to"], s["wanted"], "{s}");
            }
            "global" => {
                assert!(s.get("changed_to").is_none(), "a global was written: {s}");
                if s["ok"] == false {
                    assert!(s["skipped"].as_str().unwrap().contains("global"), "{s}");
                }
            }
            _ => {}
        }
    }
    assert!(applied["changed"].as_u64().unwrap() >= 1);

    // Now only globals may deviate inside the namespace.
    let (_, again) = tune(&["--check", "--netns", &ns.0]);
    for s in again["settings"].as_array().unwrap() {
        if s["scope"] == "per-netns" {
            assert_eq!(s["ok"], true, "{s}");
        }
    }
    assert_eq!(setting(&again, "net.core.somaxconn")["current"], "65535");
    assert_eq!(
        setting(&again, "net.ipv4.tcp_congestion_control")["current"],
        "bbr"
    );
    drop(ns);
    assert_eq!(host_values(), before, "the host's sysctls changed");

    // A namespace that does not exist is a usage error.
    let (code, _, stderr) = mcnet(&["node", "tune", "--check", "--netns", "mcnet-no-such-ns"]);
    assert_eq!(code, 2, "{stderr}");
}

/// The YAML documents of a rendered file.
fn documents(path: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&std::fs::read_to_string(path).unwrap())
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .collect()
}

#[test]
fn cloud_load_balancers_check_health_as_the_gslb_does() {
    let adr = std::fs::read_to_string(EXAMPLES[0]).unwrap();
    let with = |check: &str| {
        adr.replacen(
            "  loadBalancing:\n",
            &format!("  loadBalancing:\n    healthCheck: {check}\n"),
            1,
        )
    };
    let out = TempDir::new("lb");
    let topology = out.0.join("t.yaml");
    std::fs::write(
        &topology,
        with("{path: /ready, port: 8081, intervalSeconds: 10, timeoutSeconds: 3, healthyThreshold: 3, unhealthyThreshold: 4}"),
    )
    .unwrap();
    let t = topology.to_str().unwrap();
    let dir = out.0.join("r");
    let (code, _, stderr) = mcnet(&["render", t, "-o", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let file = |c: &str, f: &str| dir.join(c).join(f).to_str().unwrap().to_string();

    // The GSLB's check, from the same topology.
    let (code, yaml, stderr) = mcnet(&["gslb", "config", t]);
    assert_eq!(code, 0, "{stderr}");
    let gslb: Value = serde_yaml::from_str(&yaml).unwrap();
    let health = &gslb["records"][0]["endpoints"][0]["health"];
    assert!(
        health["http"].as_str().unwrap().ends_with(":8081/ready"),
        "{health}"
    );
    assert_eq!(
        (
            &health["interval_ms"],
            &health["timeout_ms"],
            &health["healthy"],
            &health["unhealthy"]
        ),
        (
            &Value::from(10_000),
            &Value::from(3000),
            &Value::from(3),
            &Value::from(4)
        )
    );

    // EKS: an NLB to the controller pods, checking the same way.
    let svc = &documents(&file("eks-prod", "ingress/load-balancer.yaml"))[0];
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    let a = &svc["metadata"]["annotations"];
    let aws = |k: &str| a[format!("service.beta.kubernetes.io/aws-load-balancer-{k}")].clone();
    assert_eq!(aws("type"), "external");
    assert_eq!(aws("healthcheck-path"), "/ready");
    assert_eq!(aws("healthcheck-port"), "8081");
    assert_eq!(aws("healthcheck-interval"), "10");
    assert_eq!(aws("healthcheck-timeout"), "3");
    assert_eq!(aws("healthcheck-healthy-threshold"), "3");
    assert_eq!(aws("healthcheck-unhealthy-threshold"), "4");
    // AKS: the Azure load balancer's probe.
    let a = documents(&file("aks-prod", "ingress/load-balancer.yaml"))[0]["metadata"]
        ["annotations"]
        .clone();
    let az = |k: &str| {
        a[format!("service.beta.kubernetes.io/azure-load-balancer-health-probe-{k}")].clone()
    };
    assert_eq!(az("request-path"), "/ready");
    assert_eq!(az("interval"), "10");
    assert_eq!(az("num-of-probe"), "4");
    // GKE: the global Ingress's backends through NEGs, with a BackendConfig.
    let bc = &documents(&file("gke-prod", "ingress/gke-backend-config.yaml"))[0];
    assert_eq!(bc["kind"], "BackendConfig");
    let h = &bc["spec"]["healthCheck"];
    assert_eq!(h["requestPath"], "/ready");
    assert_eq!(
        (&h["checkIntervalSec"], &h["timeoutSec"]),
        (&Value::from(10), &Value::from(3))
    );
    assert_eq!(
        (&h["healthyThreshold"], &h["unhealthyThreshold"]),
        (&Value::from(3), &Value::from(4))
    );
    let backends = documents(&file("gke-prod", "services/production.yaml"));
    for s in backends
        .iter()
        .filter(|s| ["frontend", "api-service"].contains(&s["metadata"]["name"].as_str().unwrap()))
    {
        let a = &s["metadata"]["annotations"];
        assert_eq!(
            a["cloud.google.com/backend-config"],
            "{\"default\": \"mcnet-ingress-health\"}"
        );
        assert_eq!(a["cloud.google.com/neg"], "{\"ingress\": true}");
    }

    // Below a cloud's minimum, the cloud gets its minimum; the GSLB the value.
    std::fs::write(&topology, with("{intervalSeconds: 1, timeoutSeconds: 1}")).unwrap();
    let dir2 = out.0.join("r2");
    let (code, _, stderr) = mcnet(&["render", t, "-o", dir2.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let a = documents(
        dir2.join("eks-prod/ingress/load-balancer.yaml")
            .to_str()
            .unwrap(),
    )[0]["metadata"]["annotations"]
        .clone();
    assert_eq!(
        a["service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval"],
        "5"
    );
    assert_eq!(
        a["service.beta.kubernetes.io/aws-load-balancer-healthcheck-timeout"],
        "2"
    );
    let (_, yaml, _) = mcnet(&["gslb", "config", t]);
    assert!(yaml.contains("interval_ms: 1000"), "{yaml}");

    // Out of range: named by field.
    std::fs::write(&topology, with("{intervalSeconds: 5, timeoutSeconds: 9}")).unwrap();
    let (code, _, stderr) = mcnet(&["render", t, "-o", out.0.join("r3").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("lb.health-check")
            && stderr.contains("spec.loadBalancing.healthCheck.timeoutSeconds"),
        "{stderr}"
    );
}

#[test]
fn the_operator_runs_in_one_cluster_with_the_crd_mcnet_crd_prints() {
    let out = TempDir::new("operator");
    let (code, _, stderr) = mcnet(&[
        "render",
        EXAMPLES[0],
        "-o",
        out.0.to_str().unwrap(),
        "--operator-image",
        "registry.example/mcnet:1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    // The first cluster by default, and only there.
    let holders: Vec<String> = std::fs::read_dir(&out.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("operator").is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(holders, ["eks-prod"]);
    let crd_file = std::fs::read_to_string(out.0.join("eks-prod/operator/crd.yaml")).unwrap();
    let rendered: Value = serde_yaml::from_str(&crd_file).unwrap();
    let (code, printed, _) = mcnet(&["crd"]);
    assert_eq!(code, 0);
    assert_eq!(rendered, serde_yaml::from_str::<Value>(&printed).unwrap());
    let deployment =
        std::fs::read_to_string(out.0.join("eks-prod/operator/deployment.yaml")).unwrap();
    assert!(
        deployment.contains("image: registry.example/mcnet:1"),
        "{deployment}"
    );

    let elsewhere = TempDir::new("operator-gke");
    let (code, _, stderr) = mcnet(&[
        "render",
        EXAMPLES[0],
        "-o",
        elsewhere.0.to_str().unwrap(),
        "--operator-cluster",
        "gke-prod",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(elsewhere.0.join("gke-prod/operator/rbac.yaml").is_file());
    assert!(!elsewhere.0.join("eks-prod/operator").exists());
    let (code, _, stderr) = mcnet(&[
        "render",
        EXAMPLES[0],
        "-o",
        elsewhere.0.join("x").to_str().unwrap(),
        "--operator-cluster",
        "nope",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--operator-cluster") && stderr.contains("`nope`"),
        "{stderr}"
    );
    assert!(!elsewhere.0.join("x").exists());
}

#[test]
fn the_operator_without_a_cluster_to_talk_to_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .args([
            "operator",
            "--state",
            std::env::temp_dir()
                .join("mcnet-operator-none")
                .to_str()
                .unwrap(),
        ])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Kubernetes API"));
}

#[test]
fn every_cluster_gets_the_agent_and_the_agent_needs_its_node() {
    let out = TempDir::new("agent");
    let (code, _, stderr) = mcnet(&["render", EXAMPLES[0], "-o", out.0.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    for c in ["eks-prod", "aks-prod", "gke-prod"] {
        let ds = std::fs::read_to_string(out.0.join(c).join("agent/daemonset.yaml")).unwrap();
        assert!(
            ds.contains("kind: DaemonSet") && ds.contains("hostNetwork: true"),
            "{c}: {ds}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .arg("agent")
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--node"));
}
